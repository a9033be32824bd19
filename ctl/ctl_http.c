/* ctl_http.c - one HTTP/1.1 exchange with the admin port over a plain
 * socket: connect with a deadline, send the request, read to EOF (the admin
 * port closes after each answer), parse with libhttp-parser. */
#include "ctl.h"

#include <errno.h>
#include <http_parser.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "xalloc.h"

#define CTL_REQ_MAX 2048

static long long ctl_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline; 0, or -ETIMEDOUT / -errno. */
static int ctl_wait(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        long long left = deadline - ctl_now_ms();
        int r;

        if (left <= 0)
            return -ETIMEDOUT;
        r = poll(&p, 1, (int)left);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1)
            return -errno;
        if (r > 0)
            return 0;
    }
}

static int ctl_connect(const char *admin, long long deadline, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    char why[200];
    int fd, r;

    if (net_parse_hostport(admin, false, &sa, why, sizeof(why))) {
        snprintf(err, errlen, "--admin %s: %s", admin, why);
        return -EINVAL;
    }
    fd = net_tcp_connect_start(&sa);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", admin, strerror(-fd));
        return fd;
    }
    r = ctl_wait(fd, POLLOUT, deadline);
    if (r == 0)
        r = net_connect_result(fd);
    if (r) {
        snprintf(err, errlen, "cannot connect to %s: %s", admin, strerror(-r));
        close(fd);
        return r;
    }
    return fd;
}

static int ctl_send_all(int fd, const char *p, size_t n, long long deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w == -1 && errno == EINTR)
            continue;
        if (w == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if (w == -1) {
            int r = ctl_wait(fd, POLLOUT, deadline);

            if (r)
                return r;
            continue;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads to EOF into a growing buffer (at most CTL_BODY_MAX plus headers). */
static int ctl_recv_all(int fd, char **out, size_t *len, long long deadline)
{
    size_t cap = 16384, n = 0;
    char *buf = xmalloc(cap);

    for (;;) {
        ssize_t r;

        if (cap - n < 4096) {
            if (cap >= CTL_BODY_MAX + 65536) {
                free(buf);
                return -EFBIG;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        r = recv(fd, buf + n, cap - n - 1, 0);
        if (r == 0)
            break;
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = ctl_wait(fd, POLLIN, deadline);

            if (w) {
                free(buf);
                return w;
            }
            continue;
        }
        if (r == -1) {
            int e = -errno;

            free(buf);
            return e;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

struct ctl_parse {
    const char *body;
    size_t body_len;
    bool split, done;
};

static int ctl_on_body(http_parser *hp, const char *at, size_t len)
{
    struct ctl_parse *p = hp->data;

    if (!p->body)
        p->body = at;
    else if (at != p->body + p->body_len)
        p->split = true; /* chunked: the admin port never sends it */
    p->body_len += len;
    return 0;
}

static int ctl_on_complete(http_parser *hp)
{
    ((struct ctl_parse *)hp->data)->done = true;
    return 0;
}

/* Parses the whole answer in raw[0..n) into r. */
static int ctl_parse_resp(const char *raw, size_t n, struct ctl_resp *r)
{
    static const http_parser_settings st = {.on_body = ctl_on_body,
                                            .on_message_complete = ctl_on_complete};
    struct ctl_parse p = {0};
    http_parser hp;

    if (n == 0)
        return -ECONNRESET; /* closed without a byte: no answer */
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &p;
    http_parser_execute(&hp, &st, raw, n);
    if (!p.done && HTTP_PARSER_ERRNO(&hp) == HPE_OK) {
        http_parser_execute(&hp, &st, raw, 0); /* EOF ends a body without a length */
        if (HTTP_PARSER_ERRNO(&hp) == HPE_INVALID_EOF_STATE)
            return -ECONNRESET; /* closed in the middle of the answer */
    }
    if (HTTP_PARSER_ERRNO(&hp) != HPE_OK || !p.done || p.split)
        return -EPROTO;
    r->status = (int)hp.status_code;
    r->body = xmalloc(p.body_len + 1);
    if (p.body_len)
        memcpy(r->body, p.body, p.body_len);
    r->body[p.body_len] = '\0';
    r->len = p.body_len;
    return 0;
}

int ctl_http(const char *admin, const char *method, const char *path, const char *token,
             const char *body, struct ctl_resp *r, char *err, size_t errlen)
{
    long long deadline = ctl_now_ms() + CTL_TIMEOUT_MS;
    size_t blen = body ? strlen(body) : 0, rawlen = 0;
    char req[CTL_REQ_MAX], *raw = NULL;
    int fd, n, e;

    memset(r, 0, sizeof(*r));
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrumctl\r\n%s%s%s"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 method, path, admin, token ? "Authorization: Bearer " : "", token ? token : "",
                 token ? "\r\n" : "", blen);
    if (n < 0 || (size_t)n >= sizeof(req) || blen > sizeof(req) - (size_t)n) {
        snprintf(err, errlen, "request too long");
        return -E2BIG;
    }
    memcpy(req + n, body ? body : "", blen);
    fd = ctl_connect(admin, deadline, err, errlen);
    if (fd < 0) {
        explicit_bzero(req, sizeof(req));
        return fd;
    }
    e = ctl_send_all(fd, req, (size_t)n + blen, deadline);
    if (e == 0)
        e = ctl_recv_all(fd, &raw, &rawlen, deadline);
    close(fd);
    explicit_bzero(req, sizeof(req)); /* the token */
    if (e == -EFBIG)
        snprintf(err, errlen, "%s: the answer is over %u MiB", admin, CTL_BODY_MAX >> 20);
    else if (e)
        snprintf(err, errlen, "%s: no answer: %s", admin, strerror(-e));
    if (e)
        return e;
    e = ctl_parse_resp(raw, rawlen, r);
    free(raw);
    if (e == -ECONNRESET)
        snprintf(err, errlen, "%s: no complete answer: the connection closed after %zu bytes",
                 admin, rawlen);
    else if (e)
        snprintf(err, errlen, "%s: the answer is not HTTP", admin);
    return e;
}
