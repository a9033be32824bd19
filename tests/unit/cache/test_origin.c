/* test_origin.c - cache/origin.c against a tiny origin server: a thread of
 * the test process with blocking sockets on 127.0.0.1 (kernel-chosen port)
 * whose behaviour each test chooses. The test thread runs the libev loop
 * until the done callback breaks it. Run under ASan for the cancel and
 * error paths. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "origin.h"

/* What the server does on each connection. */
enum behaviour {
    B_CL,        /* 200 with Content-Length, keep-alive, every request */
    B_CHUNKED,   /* 200 chunked, keep-alive */
    B_CLOSE,     /* 200 delimited by close */
    B_HEAD,      /* 200 head announcing a body it does not send */
    B_304,       /* 304 with no body */
    B_CONTINUE,  /* 100 Continue, then 200 */
    B_ONESHOT,   /* one keep-alive response, then close (stale keep-alive) */
    B_SILENT,    /* read the request, never answer */
    B_BIG,       /* 200 with a 100000-byte body */
    B_BIG_CHUNK, /* the same, chunked */
    B_MALFORMED, /* not HTTP */
    B_BIG_HEAD,  /* a 4000-byte header line */
    B_TRAILER,   /* chunked with a trailer field */
    B_SWITCH,    /* 101 Switching Protocols */
    B_ECHO,      /* reads the request body (Content-Length), answers it back */
};

static enum behaviour beh;
static int lfd = -1;
static unsigned port;
static pthread_t srv_thread;
static atomic_int accepts;
static char last_req[4096];
static size_t last_req_len;           /* bytes in last_req: the head and what followed it */
static int notify_pipe[2] = {-1, -1}; /* the server writes a byte per request */

static struct ev_loop *loop;
static struct origin *org;

struct got {
    int calls;
    int error;
    int status;
    char body[200000];
    size_t body_len;
    char hdrs[2048]; /* "name=value;" ... */
};
static struct got got;

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Reads one request head; false at EOF. */
static bool read_request(int fd)
{
    char buf[4096];
    size_t n = 0;

    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

        if (r <= 0)
            return false;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    memcpy(last_req, buf, n + 1);
    last_req_len = n;
    if (notify_pipe[1] != -1)
        cr_assert_eq(write(notify_pipe[1], "r", 1), 1);
    return true;
}

static void send_big(int fd, bool chunked)
{
    static char body[100000];

    memset(body, 'x', sizeof(body));
    if (chunked) {
        const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        char line[32];

        write_all(fd, h, strlen(h));
        for (int i = 0; i < 10; i++) {
            int k = snprintf(line, sizeof(line), "2710\r\n"); /* 10000 */

            write_all(fd, line, (size_t)k);
            write_all(fd, body, 10000);
            write_all(fd, "\r\n", 2);
        }
        write_all(fd, "0\r\n\r\n", 5);
    } else {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";

        write_all(fd, h, strlen(h));
        write_all(fd, body, sizeof(body));
    }
}

/* B_ECHO: the body of the request in last_req, read to its
 * Content-Length, sent back as the response body. */
static void echo_body(int fd)
{
    static char body[300000];
    const char *end = strstr(last_req, "\r\n\r\n") + 4;
    const char *cl = strcasestr(last_req, "\r\nContent-Length: ");
    size_t clen = cl && cl < end ? strtoul(cl + 18, NULL, 10) : 0;
    size_t have = last_req_len - (size_t)(end - last_req);
    char h[80];
    int k;

    cr_assert_leq(clen, sizeof(body));
    memcpy(body, end, have < clen ? have : clen);
    while (have < clen) {
        ssize_t r = read(fd, body + have, clen - have);

        if (r <= 0)
            return;
        have += (size_t)r;
    }
    k = snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", clen);
    write_all(fd, h, (size_t)k);
    write_all(fd, body, clen);
}

static void serve_conn(int fd)
{
    static const char *const fixed[] = {
        [B_CL] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello",
        [B_CHUNKED] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        [B_CLOSE] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nclose-delimited",
        [B_HEAD] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        [B_304] = "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
        [B_CONTINUE] = "HTTP/1.1 100 Continue\r\nX-Info: 1\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok",
        [B_ONESHOT] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none",
        [B_MALFORMED] = "HTX/9 what\r\n\r\n",
        [B_TRAILER] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-H: 1\r\n\r\n"
                      "2\r\nab\r\n0\r\nX-Trailer: t\r\n\r\n",
        [B_SWITCH] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                     "Connection: upgrade\r\n\r\n",
    };

    while (read_request(fd)) {
        switch (beh) {
        case B_SILENT:
            continue;
        case B_BIG:
        case B_BIG_CHUNK:
            send_big(fd, beh == B_BIG_CHUNK);
            continue;
        case B_ECHO:
            echo_body(fd);
            continue;
        case B_BIG_HEAD: {
            static char h[4200];
            int k = snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nX-Big: %04000d\r\n\r\n", 1);

            write_all(fd, h, (size_t)k);
            continue;
        }
        default:
            write_all(fd, fixed[beh], strlen(fixed[beh]));
        }
        if (beh == B_CLOSE || beh == B_ONESHOT || beh == B_MALFORMED || beh == B_SWITCH)
            break;
    }
    close(fd);
}

static void *server_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);

        if (fd == -1)
            return NULL;
        atomic_fetch_add(&accepts, 1);
        serve_conn(fd);
    }
}

static struct origin_limits limits(void)
{
    struct origin_limits lim;

    origin_limits_default(&lim);
    return lim;
}

static void start(enum behaviour b, const struct origin_limits *lim)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    char url[64], err[256];
    struct origin_limits def = limits();

    beh = b;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(lfd >= 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 16), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&srv_thread, NULL, server_main, NULL), 0);
    loop = ev_loop_new(EVFLAG_AUTO);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    org = origin_new(loop, url, lim ? lim : &def, err, sizeof(err));
    cr_assert_not_null(org, "%s", err);
}

static void stop(void)
{
    origin_free(org);
    org = NULL;
    shutdown(lfd, SHUT_RDWR);
    pthread_join(srv_thread, NULL);
    close(lfd);
    ev_loop_destroy(loop);
    if (notify_pipe[0] != -1) {
        close(notify_pipe[0]);
        close(notify_pipe[1]);
        notify_pipe[0] = notify_pipe[1] = -1;
    }
}

static void done_cb(void *arg, const struct origin_result *res)
{
    size_t off = 0;

    (void)arg;
    got.calls++;
    got.error = res->error;
    got.status = res->status;
    got.body_len = res->body_len;
    cr_assert_leq(res->body_len, sizeof(got.body));
    if (res->body_len > 0)
        memcpy(got.body, res->body, res->body_len);
    got.hdrs[0] = '\0';
    for (size_t i = 0; i < res->nhdrs; i++) {
        int k = snprintf(got.hdrs + off, sizeof(got.hdrs) - off, "%.*s=%.*s;",
                         (int)res->hdrs[i].name_len, res->hdrs[i].name, (int)res->hdrs[i].value_len,
                         res->hdrs[i].value);

        if (k > 0 && (size_t)k < sizeof(got.hdrs) - off)
            off += (size_t)k;
    }
    if (res->error == 0) {
        cr_assert_gt(res->request_time, 0);
        cr_assert_geq(res->response_time, res->request_time);
    }
    ev_break(loop, EVBREAK_ONE);
}

/* One fetch, run to its callback. */
static void fetch(const char *method, const char *path)
{
    struct c9_hdr h[] = {{"X-Req", 5, "1", 1}};

    memset(&got, 0, sizeof(got));
    cr_assert_eq(origin_fetch(org, method, path, h, 1, done_cb, NULL, NULL), 0);
    ev_run(loop, 0);
    cr_assert_eq(got.calls, 1);
}

static struct origin_counters counters(void)
{
    struct origin_counters c;

    origin_get_counters(org, &c);
    return c;
}

Test(origin, content_length, .timeout = 10)
{
    char host[64];

    start(B_CL, NULL);
    fetch("GET", "/a?b=c");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(got.status, 200);
    cr_assert_eq(got.body_len, 5);
    cr_assert(memcmp(got.body, "hello", 5) == 0);
    cr_assert_str_eq(got.hdrs, "Content-Length=5;X-A=b;");
    cr_assert(strncmp(last_req, "GET /a?b=c HTTP/1.1\r\n", 21) == 0, "%s", last_req);
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%u\r\n", port);
    cr_assert_not_null(strstr(last_req, host), "%s", last_req);
    cr_assert_not_null(strstr(last_req, "\r\nConnection: keep-alive\r\n"));
    cr_assert_not_null(strstr(last_req, "\r\nX-Req: 1\r\n"));
    cr_assert_eq(counters().fetches, 1);
    cr_assert_eq(counters().responses, 1);
    stop();
}

Test(origin, chunked, .timeout = 10)
{
    start(B_CHUNKED, NULL);
    fetch("GET", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(got.status, 200);
    cr_assert_eq(got.body_len, 11);
    cr_assert(memcmp(got.body, "hello world", 11) == 0);
    stop();
}

Test(origin, close_delimited, .timeout = 10)
{
    start(B_CLOSE, NULL);
    fetch("GET", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(got.body_len, 15);
    cr_assert(memcmp(got.body, "close-delimited", 15) == 0);
    stop();
}

Test(origin, head_has_no_body, .timeout = 10)
{
    start(B_HEAD, NULL);
    fetch("HEAD", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(got.status, 200);
    cr_assert_eq(got.body_len, 0);
    cr_assert_str_eq(got.hdrs, "Content-Length=100;");
    /* The connection is still usable. */
    fetch("HEAD", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(atomic_load(&accepts), 1);
    stop();
}

Test(origin, not_modified, .timeout = 10)
{
    start(B_304, NULL);
    fetch("GET", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(got.status, 304);
    cr_assert_eq(got.body_len, 0);
    cr_assert_str_eq(got.hdrs, "ETag=\"v1\";");
    stop();
}

Test(origin, continue_skipped, .timeout = 10)
{
    start(B_CONTINUE, NULL);
    fetch("GET", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(got.status, 200);
    cr_assert_str_eq(got.hdrs, "Content-Length=2;X-Final=1;");
    cr_assert(memcmp(got.body, "ok", 2) == 0);
    stop();
}

Test(origin, keep_alive_reuse, .timeout = 10)
{
    start(B_CL, NULL);
    fetch("GET", "/1");
    cr_assert_eq(got.error, 0);
    fetch("GET", "/2");
    cr_assert_eq(got.error, 0);
    cr_assert(memcmp(got.body, "hello", 5) == 0);
    cr_assert_eq(atomic_load(&accepts), 1);
    cr_assert_eq(counters().conns_new, 1);
    cr_assert_eq(counters().conns_reused, 1);
    stop();
}

Test(origin, stale_keep_alive_retried, .timeout = 10)
{
    start(B_ONESHOT, NULL);
    fetch("GET", "/1");
    cr_assert_eq(got.error, 0);
    fetch("GET", "/2");
    cr_assert_eq(got.error, 0, "%d", got.error);
    cr_assert(memcmp(got.body, "one", 3) == 0);
    cr_assert_eq(atomic_load(&accepts), 2);
    cr_assert_eq(counters().conns_reused, 1);
    cr_assert_eq(counters().retries, 1);
    stop();
}

Test(origin, request_body, .timeout = 10)
{
    static char body[100000];
    struct c9_hdr h[] = {{"X-Req", 5, "1", 1},
                         {"Content-Length", 14, "5", 1},
                         {"Transfer-Encoding", 17, "chunked", 7}};
    struct origin_request rq = {"POST", "/up", h, 3, body, sizeof(body), NULL};

    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i * 7 % 251);
    start(B_ECHO, NULL);
    memset(&got, 0, sizeof(got));
    cr_assert_eq(origin_fetch_req(org, &rq, done_cb, NULL, NULL), 0);
    ev_run(loop, 0);
    cr_assert_eq(got.calls, 1);
    cr_assert_eq(got.error, 0, "%d", got.error);
    cr_assert_eq(got.body_len, sizeof(body));
    cr_assert(memcmp(got.body, body, sizeof(body)) == 0, "the body changed on the way");
    /* our framing replaces the caller's */
    cr_assert_not_null(strstr(last_req, "\r\nContent-Length: 100000\r\n"), "%s", last_req);
    cr_assert_null(strstr(last_req, "Content-Length: 5"), "%s", last_req);
    cr_assert_null(strcasestr(last_req, "Transfer-Encoding"), "%s", last_req);
    cr_assert_not_null(strstr(last_req, "\r\nX-Req: 1\r\n"));
    /* an empty body still says so (PUT: idempotent, so it takes the
     * kept-alive connection this one-connection-at-a-time server is on) */
    rq.method = "PUT";
    rq.body = "";
    rq.body_len = 0;
    rq.n = 1;
    memset(&got, 0, sizeof(got));
    cr_assert_eq(origin_fetch_req(org, &rq, done_cb, NULL, NULL), 0);
    ev_run(loop, 0);
    cr_assert_eq(got.error, 0, "%d", got.error);
    cr_assert_eq(got.body_len, 0);
    cr_assert_not_null(strstr(last_req, "\r\nContent-Length: 0\r\n"), "%s", last_req);
    stop();
}

/* A POST never takes an idle keep-alive connection, so the race with an
 * origin closing it cannot make it fail nor be sent twice. */
Test(origin, post_never_reuses_a_connection, .timeout = 10)
{
    start(B_ONESHOT, NULL);
    fetch("GET", "/1");
    cr_assert_eq(got.error, 0);
    fetch("POST", "/2");
    cr_assert_eq(got.error, 0, "%d", got.error);
    cr_assert(memcmp(got.body, "one", 3) == 0);
    cr_assert_eq(atomic_load(&accepts), 2);
    cr_assert_eq(counters().conns_reused, 0);
    cr_assert_eq(counters().retries, 0);
    stop();
}

Test(origin, connection_refused, .timeout = 10)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    struct origin_limits lim = limits();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[64], err[256];

    /* A port nobody listens on: bound, then closed. */
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    loop = ev_loop_new(EVFLAG_AUTO);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(sa.sin_port));
    org = origin_new(loop, url, &lim, err, sizeof(err));
    cr_assert_not_null(org, "%s", err);
    fetch("GET", "/");
    cr_assert_eq(got.error, -ECONNREFUSED, "%d", got.error);
    cr_assert_eq(counters().err_refused, 1);
    origin_free(org);
    ev_loop_destroy(loop);
}

Test(origin, response_timeout, .timeout = 10)
{
    struct origin_limits lim = limits();

    lim.response_timeout = 0.2;
    start(B_SILENT, &lim);
    fetch("GET", "/");
    cr_assert_eq(got.error, -ETIMEDOUT);
    cr_assert_eq(counters().err_timeout, 1);
    stop();
}

Test(origin, body_over_limit, .timeout = 10)
{
    struct origin_limits lim = limits();

    lim.max_body = 1000;
    start(B_BIG, &lim);
    fetch("GET", "/");
    cr_assert_eq(got.error, -E2BIG);
    cr_assert_eq(counters().err_too_big, 1);
    stop();
}

Test(origin, chunked_body_over_limit, .timeout = 10)
{
    struct origin_limits lim = limits();

    lim.max_body = 50000;
    start(B_BIG_CHUNK, &lim);
    fetch("GET", "/");
    cr_assert_eq(got.error, -E2BIG);
    stop();
}

Test(origin, body_at_limit, .timeout = 10)
{
    struct origin_limits lim = limits();

    lim.max_body = 100000;
    start(B_BIG_CHUNK, &lim);
    fetch("GET", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(got.body_len, 100000);
    stop();
}

Test(origin, malformed, .timeout = 10)
{
    start(B_MALFORMED, NULL);
    fetch("GET", "/");
    cr_assert_eq(got.error, -EPROTO);
    cr_assert_eq(counters().err_proto, 1);
    stop();
}

Test(origin, head_over_limit, .timeout = 10)
{
    struct origin_limits lim = limits();

    lim.max_head = 1024;
    start(B_BIG_HEAD, &lim);
    fetch("GET", "/");
    cr_assert_eq(got.error, -EPROTO);
    stop();
}

Test(origin, trailers_dropped, .timeout = 10)
{
    start(B_TRAILER, NULL);
    fetch("GET", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_str_eq(got.hdrs, "Transfer-Encoding=chunked;X-H=1;");
    cr_assert(memcmp(got.body, "ab", 2) == 0);
    /* Still reusable after the trailer. */
    fetch("GET", "/");
    cr_assert_eq(got.error, 0);
    cr_assert_eq(atomic_load(&accepts), 1);
    stop();
}

Test(origin, switching_protocols_refused, .timeout = 10)
{
    start(B_SWITCH, NULL);
    fetch("GET", "/");
    cr_assert_eq(got.error, -EPROTO);
    stop();
}

static struct origin_fetch *to_cancel;

/* The server has read the request: cancel while the response is due. */
static void notified_cb(struct ev_loop *l, ev_io *w, int revents)
{
    char c;

    (void)revents;
    cr_assert_eq(read(w->fd, &c, 1), 1);
    origin_fetch_cancel(to_cancel);
    ev_io_stop(l, w);
    ev_break(l, EVBREAK_ONE);
}

Test(origin, cancel, .timeout = 10)
{
    ev_io nw;

    cr_assert_eq(pipe(notify_pipe), 0);
    start(B_SILENT, NULL);
    memset(&got, 0, sizeof(got));
    cr_assert_eq(origin_fetch(org, "GET", "/", NULL, 0, done_cb, NULL, &to_cancel), 0);
    ev_io_init(&nw, notified_cb, notify_pipe[0], EV_READ);
    ev_io_start(loop, &nw);
    ev_run(loop, 0);
    /* Nothing left to run: the loop returns at once, no callback. */
    ev_run(loop, 0);
    cr_assert_eq(got.calls, 0);
    cr_assert_eq(counters().cancelled, 1);
    /* A fetch cancelled before it ever ran, and one left to origin_free. */
    cr_assert_eq(origin_fetch(org, "GET", "/", NULL, 0, done_cb, NULL, &to_cancel), 0);
    origin_fetch_cancel(to_cancel);
    cr_assert_eq(origin_fetch(org, "GET", "/", NULL, 0, done_cb, NULL, NULL), 0);
    stop();
    cr_assert_eq(got.calls, 0);
}

Test(origin, bad_arguments)
{
    struct origin_limits lim = limits();
    struct c9_hdr bad[] = {{"X-A", 3, "a\r\nb", 4}};
    char err[256];

    loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_null(origin_new(loop, "https://127.0.0.1:1", &lim, err, sizeof(err)));
    cr_assert_null(origin_new(loop, "http://127.0.0.1", &lim, err, sizeof(err)));
    cr_assert_null(origin_new(loop, "http://127.0.0.1:80/x", &lim, err, sizeof(err)));
    cr_assert_null(origin_new(loop, "http://:80", &lim, err, sizeof(err)));
    lim.max_idle = 0;
    cr_assert_null(origin_new(loop, "http://127.0.0.1:1", &lim, err, sizeof(err)));
    lim.max_idle = 8;
    org = origin_new(loop, "http://127.0.0.1:1", &lim, err, sizeof(err));
    cr_assert_not_null(org, "%s", err);
    cr_assert_eq(origin_fetch(org, "G ET", "/", NULL, 0, done_cb, NULL, NULL), -EINVAL);
    cr_assert_eq(origin_fetch(org, "GET", "x", NULL, 0, done_cb, NULL, NULL), -EINVAL);
    cr_assert_eq(origin_fetch(org, "GET", "/a b", NULL, 0, done_cb, NULL, NULL), -EINVAL);
    cr_assert_eq(origin_fetch(org, "GET", "/", bad, 1, done_cb, NULL, NULL), -EINVAL);
    cr_assert_eq(counters().fetches, 0);
    origin_free(org);
    ev_loop_destroy(loop);
}
