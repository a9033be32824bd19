/* net.c - IPv4 sockets for the control plane. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int net_parse_ip(const char *s, struct in_addr *out, char *err, size_t errlen)
{
    if (inet_pton(AF_INET, s, out) != 1) {
        snprintf(err, errlen, "'%s' is not an IPv4 address", s);
        return -EINVAL;
    }
    return 0;
}

static int net_resolve(const char *host, struct in_addr *out, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int r;

    if (!*host || !strcmp(host, "*")) {
        out->s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (inet_pton(AF_INET, host, out) == 1)
        return 0;
    r = getaddrinfo(host, NULL, &hints, &res);
    if (r != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(r));
        return -EHOSTUNREACH;
    }
    *out = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

int net_parse_hostport(const char *s, bool allow_port0, struct sockaddr_in *out, char *err,
                       size_t errlen)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    unsigned long port;
    char *end;
    size_t hl;

    if (!colon || (hl = (size_t)(colon - s)) >= sizeof(host)) {
        snprintf(err, errlen, "'%s' is not HOST:PORT", s);
        return -EINVAL;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port > 65535 || (port == 0 && !allow_port0)) {
        snprintf(err, errlen, "'%s': bad port", s);
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return net_resolve(host, &out->sin_addr, err, errlen);
}

const char *net_ntop(const struct sockaddr_in *sa, char *buf)
{
    char ip[INET_ADDRSTRLEN];

    inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
    snprintf(buf, NET_ADDRSTRLEN, "%s:%u", ip, (unsigned)ntohs(sa->sin_port));
    return buf;
}

static int net_fail(int fd, const char *what, char *err, size_t errlen)
{
    int r = -errno;

    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    if (fd >= 0)
        close(fd);
    return r;
}

static int net_mcast_out(int fd, struct in_addr ifaddr, int ttl, char *err, size_t errlen)
{
    unsigned char t = (unsigned char)ttl, loop = 1;

    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof(ifaddr)) == -1)
        return net_fail(fd, "IP_MULTICAST_IF", err, errlen);
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &t, sizeof(t)) == -1)
        return net_fail(fd, "IP_MULTICAST_TTL", err, errlen);
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) == -1)
        return net_fail(fd, "IP_MULTICAST_LOOP", err, errlen);
    return fd;
}

int net_mcast_socket(const struct sockaddr_in *group, struct in_addr ifaddr, int ttl, char *err,
                     size_t errlen)
{
    struct ip_mreq mreq = {.imr_multiaddr = group->sin_addr, .imr_interface = ifaddr};
    int fd, one = 1, zero = 0;

    if (!IN_MULTICAST(ntohl(group->sin_addr.s_addr))) {
        snprintf(err, errlen, "%s is not a multicast address", inet_ntoa(group->sin_addr));
        return -EINVAL;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return net_fail(-1, "socket", err, errlen);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        return net_fail(fd, "SO_REUSEADDR", err, errlen);
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero)) == -1)
        return net_fail(fd, "IP_MULTICAST_ALL", err, errlen);
    if (bind(fd, (const struct sockaddr *)group, sizeof(*group)) == -1)
        return net_fail(fd, "bind to the group", err, errlen);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) == -1)
        return net_fail(fd, "IP_ADD_MEMBERSHIP", err, errlen);
    return net_mcast_out(fd, ifaddr, ttl, err, errlen);
}

int net_udp_socket(const struct sockaddr_in *bind_addr, struct in_addr ifaddr, int ttl, char *err,
                   size_t errlen)
{
    struct sockaddr_in any = {.sin_family = AF_INET};
    int fd, zero = 0;

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return net_fail(-1, "socket", err, errlen);
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero)) == -1)
        return net_fail(fd, "IP_MULTICAST_ALL", err, errlen);
    if (bind(fd, (const struct sockaddr *)(bind_addr ? bind_addr : &any), sizeof(any)) == -1)
        return net_fail(fd, "bind", err, errlen);
    return net_mcast_out(fd, ifaddr, ttl, err, errlen);
}

int net_set_rcvbuf(int fd, int bytes)
{
    socklen_t sl = sizeof(bytes);

    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) == -1 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) == -1)
        return -errno;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, &sl) == -1)
        return -errno;
    return bytes;
}

int net_recv_burst(int fd, char *buf, size_t cap, int burst, net_dgram_cb cb, void *arg)
{
    int i;

    for (i = 0; i < burst; i++) {
        struct sockaddr_in from;
        socklen_t fl = sizeof(from);
        /* MSG_TRUNC: the real length, so an oversize datagram is seen as such. */
        ssize_t n = recvfrom(fd, buf, cap, MSG_TRUNC, (struct sockaddr *)&from, &fl);

        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return -errno;
        }
        cb(arg, fd, buf, (size_t)n, &from);
    }
    return i;
}

unsigned net_local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    if (getsockname(fd, (struct sockaddr *)&sa, &sl) == -1)
        return 0;
    return ntohs(sa.sin_port);
}

int net_tcp_nodelay(int fd)
{
    int one = 1;

    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int net_tcp_listen(const struct sockaddr_in *addr, bool reuseport, int backlog, char *err,
                   size_t errlen)
{
    char a[NET_ADDRSTRLEN], what[64];
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return net_fail(-1, "socket", err, errlen);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        return net_fail(fd, "SO_REUSEADDR", err, errlen);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        return net_fail(fd, "SO_REUSEPORT", err, errlen);
    /* Before listen(): the accepted sockets are copies of this one. */
    if (net_tcp_nodelay(fd) == -1)
        return net_fail(fd, "TCP_NODELAY", err, errlen);
    snprintf(what, sizeof(what), "bind %s", net_ntop(addr, a));
    if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) == -1)
        return net_fail(fd, what, err, errlen);
    if (listen(fd, backlog) == -1)
        return net_fail(fd, "listen", err, errlen);
    return fd;
}

int net_tcp_connect_start(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1)
        return -errno;
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == -1 && errno != EINPROGRESS) {
        int r = -errno;

        close(fd);
        return r;
    }
    return fd;
}

int net_connect_result(int fd)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
        return -errno;
    return -soerr;
}
