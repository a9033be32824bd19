/* check.c - the agent's tcp or http check of its cache node (check.h).
 *
 * Design notes. One check at a time: connect (non-blocking), then for http
 * write the request and read until the status line is complete; the timer
 * bounds the whole of it. Only the status line is read: the rest of the
 * answer is not needed, and closing early is cheaper for both sides than
 * reading a body. A check that ends early (timeout, error) closes its
 * socket at once, so a stopped node's accept queue holds at most one of
 * our connections per check.
 */
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* The request cannot be truncated: path, host and the fixed text fit. */
_Static_assert(CHECK_PATH_MAX + NET_ADDRSTRLEN + 96 < CHECK_REQ_MAX, "CHECK_REQ_MAX too small");

const char *const check_kind_names[] = {"tcp", "http", NULL};

bool check_path_ok(const char *path)
{
    size_t n = strlen(path);

    if (n == 0 || n > CHECK_PATH_MAX || path[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (path[i] <= ' ' || path[i] > '~')
            return false;
    }
    return true;
}

/* True when addr is an address of this host but not a loopback one: a UDP
 * socket bound to 127.0.0.1 can be connected (no packet is sent) only to
 * addresses the kernel delivers locally; to others it says EINVAL. */
static bool check_local_not_lo(const struct sockaddr_in *addr)
{
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool local;
    int fd;

    if ((ntohl(addr->sin_addr.s_addr) >> 24) == 127)
        return false;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return false;
    local = bind(fd, (struct sockaddr *)&lo, sizeof(lo)) == 0 &&
            connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0;
    close(fd);
    return local;
}

/* Ends the running check and reports it. */
static void check_end(struct check *ck, bool up, const char *why)
{
    check_cancel(ck);
    ck->cb(ck->arg, up, why);
}

static void check_end_errno(struct check *ck, int err)
{
    check_end(ck, false, strerror(err));
}

/* 0: no complete status line yet; 1: 2xx; -1: anything else. why is filled
 * whenever the result is not 0. */
static int check_status(const struct check *ck, char *why, size_t whylen)
{
    const char *nl = memchr(ck->resp, '\n', ck->got);
    const char *p = ck->resp;
    int code;

    if (!nl)
        return ck->got == sizeof(ck->resp) ? (snprintf(why, whylen, "not an HTTP answer"), -1) : 0;
    if (nl - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' || p[9] > '5' ||
        p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9') {
        snprintf(why, whylen, "not an HTTP answer");
        return -1;
    }
    code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    snprintf(why, whylen, "HTTP %d", code);
    return code >= 200 && code < 300 ? 1 : -1;
}

static void check_read(struct check *ck)
{
    char why[CHECK_WHY_MAX];
    ssize_t n = recv(ck->fd, ck->resp + ck->got, sizeof(ck->resp) - ck->got, MSG_DONTWAIT);
    int r;

    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR)
            check_end_errno(ck, errno);
        return;
    }
    if (n == 0) {
        check_end(ck, false, "closed before answering");
        return;
    }
    ck->got += (size_t)n;
    r = check_status(ck, why, sizeof(why));
    if (r != 0)
        check_end(ck, r > 0, why);
}

static void check_write(struct check *ck)
{
    ssize_t n =
        send(ck->fd, ck->req + ck->sent, ck->req_len - ck->sent, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (n == -1) {
        if (errno != EAGAIN && errno != EINTR)
            check_end_errno(ck, errno);
        return;
    }
    ck->sent += (size_t)n;
    if (ck->sent == ck->req_len) {
        ev_io_stop(ck->loop, &ck->io);
        ev_io_set(&ck->io, ck->fd, EV_READ);
        ev_io_start(ck->loop, &ck->io);
    }
}

static void check_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct check *ck = container_of(w, struct check, io);
    int r;

    if (!ck->connected) {
        r = net_connect_result(ck->fd);
        if (r != 0) {
            check_end_errno(ck, -r);
            return;
        }
        if (ck->kind == CHECK_TCP) {
            check_end(ck, true, "");
            return;
        }
        ck->connected = true;
    }
    if (ck->sent < ck->req_len)
        check_write(ck);
    else if (revents & EV_READ)
        check_read(ck);
}

static void check_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    check_end_errno(container_of(w, struct check, timer), ETIMEDOUT);
}

/* A non-blocking connect from 127.0.0.1 (see check.h). */
static int check_connect_from_lo(const struct sockaddr_in *addr)
{
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), r;

    if (fd == -1)
        return -errno;
    if (bind(fd, (struct sockaddr *)&lo, sizeof(lo)) == -1 ||
        (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == -1 && errno != EINPROGRESS)) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

bool check_start(struct check *ck)
{
    int fd;

    if (ck->fd >= 0)
        return false;
    fd = ck->from_lo ? check_connect_from_lo(&ck->addr) : net_tcp_connect_start(&ck->addr);
    if (fd < 0) {
        ck->cb(ck->arg, false, strerror(-fd));
        return true;
    }
    ck->fd = fd;
    ck->connected = false;
    ck->sent = ck->got = 0;
    ev_io_set(&ck->io, fd, EV_WRITE);
    ev_io_start(ck->loop, &ck->io);
    ev_timer_set(&ck->timer, ck->timeout, 0.);
    ev_timer_start(ck->loop, &ck->timer);
    return true;
}

bool check_running(const struct check *ck)
{
    return ck->fd >= 0;
}

void check_cancel(struct check *ck)
{
    ev_io_stop(ck->loop, &ck->io);
    ev_timer_stop(ck->loop, &ck->timer);
    if (ck->fd >= 0)
        close(ck->fd);
    ck->fd = -1;
}

int check_init(struct check *ck, struct ev_loop *loop, enum check_kind kind,
               const struct sockaddr_in *addr, const char *path, double timeout, check_cb cb,
               void *arg, char *err, size_t errlen)
{
    char host[NET_ADDRSTRLEN];
    int n;

    memset(ck, 0, sizeof(*ck));
    ck->fd = -1;
    if ((unsigned)kind >= CHECK_KIND_MAX || !(timeout > 0) || !cb) {
        snprintf(err, errlen, "bad service check settings");
        return -EINVAL;
    }
    ck->loop = loop;
    ck->kind = kind;
    ck->addr = *addr;
    ck->timeout = timeout;
    ck->cb = cb;
    ck->arg = arg;
    ev_init(&ck->io, check_io_cb);
    ev_init(&ck->timer, check_timeout_cb);
    if (kind == CHECK_TCP)
        return 0;
    if (!path || !check_path_ok(path)) {
        snprintf(err, errlen,
                 "--check-path '%s': give /PATH, 1..%d printable characters, no spaces",
                 path ? path : "", CHECK_PATH_MAX);
        return -EINVAL;
    }
    n = snprintf(ck->req, sizeof(ck->req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-agent\r\n"
                 "Connection: close\r\n\r\n",
                 path, net_ntop(addr, host));
    ck->req_len = (size_t)n;
    ck->from_lo = check_local_not_lo(addr);
    return 0;
}
