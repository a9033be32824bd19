/* test_http.c - cache/http.c over real sockets: the server runs its libev
 * loop in a thread of the test process, the test talks to it on 127.0.0.1
 * with blocking sockets and parses answers with http_parser. Covers GET,
 * HEAD, keep-alive, pipelining (synchronous and asynchronous answers),
 * request bodies, every limit and its status, the request timeout,
 * streamed responses, client aborts (run it under ASan) and max_conns. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <http_parser.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

/* What the handler does with each request. */
enum mode {
    M_ECHO,      /* answer at once with a description of the request */
    M_ASYNC,     /* answer after ?d=<ms> from an ev_timer */
    M_STREAM,    /* stream three pieces, content length unknown */
    M_STREAM_CL, /* stream three pieces with a content length */
    M_HEAD_CL,   /* announce a content length, write nothing if HEAD */
    M_HOLD,      /* never answer; the abort callback releases */
    M_HOLD_LATE, /* answer 300 ms later, after the client has gone */
};

static struct ev_loop *loop;
static struct http_server *srv;
static pthread_t thread;
static ev_async stop_w;
static struct http_counters ctr; /* a copy taken when the server stops */
static unsigned port;
static enum mode mode;
static atomic_int dispatched, aborts, late_rc, late_done, last_version;

struct later {
    ev_timer t;
    struct http_exchange *ex;
};

static void echo(struct http_exchange *ex)
{
    char body[8192];
    size_t blen, n;
    const char *b = http_exchange_body(ex, &blen);
    struct c9_hdr h[] = {{"X-Test", 6, "yes", 3}, {"Content-Length", 14, "999", 3}};
    int k = snprintf(body, sizeof(body), "%s %s ?%s host=%s body=%zu:", http_exchange_method(ex),
                     http_exchange_path(ex), http_exchange_query(ex), http_exchange_host(ex), blen);

    n = blen < sizeof(body) - (size_t)k ? blen : sizeof(body) - (size_t)k;
    if (n > 0)
        memcpy(body + k, b, n);
    cr_assert_eq(http_respond(ex, 200, h, 2, body, (size_t)k + n), 0);
}

static void later_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    struct later *lt = (struct later *)w;

    if (mode == M_HOLD_LATE) {
        cr_assert(http_exchange_aborted(lt->ex));
        atomic_store(&late_rc, http_respond(lt->ex, 200, NULL, 0, "x", 1));
        atomic_store(&late_done, 1);
    } else {
        echo(lt->ex);
    }
    free(lt);
}

static void answer_later(struct http_exchange *ex, double secs)
{
    struct later *lt = calloc(1, sizeof(*lt));

    lt->ex = ex;
    ev_timer_init(&lt->t, later_cb, secs, 0);
    ev_timer_start(loop, &lt->t);
}

static void on_abort(struct http_exchange *ex, void *arg)
{
    atomic_fetch_add(&aborts, 1);
    if (mode == M_HOLD)
        http_exchange_done(ex);
}

static void stream(struct http_exchange *ex, bool with_len)
{
    static const char *const parts[] = {"hello ", "chunked ", "world"};

    cr_assert_eq(http_respond_start(ex, 200, NULL, 0, with_len ? 19 : -1), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_geq(http_respond_write(ex, parts[i], strlen(parts[i])), 0);
    cr_assert_eq(http_respond_end(ex), 0);
}

static void handler(struct http_exchange *ex, void *arg)
{
    const char *q = http_exchange_query(ex);

    atomic_fetch_add(&dispatched, 1);
    atomic_store(&last_version, http_exchange_version(ex));
    switch (mode) {
    case M_ECHO:
        echo(ex);
        break;
    case M_ASYNC:
        answer_later(ex, strncmp(q, "d=", 2) == 0 ? strtol(q + 2, NULL, 10) / 1000.0 : 0);
        break;
    case M_STREAM:
        stream(ex, false);
        break;
    case M_HEAD_CL:
        cr_assert_eq(http_respond_start(ex, 200, NULL, 0, 19), 0);
        if (http_exchange_method_id(ex) != HTTP_REQ_HEAD)
            cr_assert_geq(http_respond_write(ex, "hello chunked world", 19), 0);
        cr_assert_eq(http_respond_end(ex), 0);
        break;
    case M_STREAM_CL:
        stream(ex, true);
        break;
    case M_HOLD:
        http_exchange_set_abort_cb(ex, on_abort, NULL);
        break;
    case M_HOLD_LATE:
        http_exchange_set_abort_cb(ex, on_abort, NULL);
        answer_later(ex, 0.3);
        break;
    }
}

static void stop_cb(struct ev_loop *l, ev_async *w, int revents)
{
    ctr = *http_server_counters(srv);
    http_server_free(srv);
    srv = NULL;
    ev_break(l, EVBREAK_ALL);
}

static void *loop_main(void *arg)
{
    ev_run(loop, 0);
    return NULL;
}

/* With late_ns > 0 (start_late()), the loop sleeps that long before each
 * poll: always late, as a starved or stopped process is. */
static ev_prepare late_w;
static long late_ns;

static void late_cb(struct ev_loop *l, ev_prepare *w, int revents)
{
    struct timespec ts = {.tv_nsec = late_ns};

    (void)l;
    (void)w;
    (void)revents;
    nanosleep(&ts, NULL);
}

static void start(const struct http_limits *lim, enum mode m)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char err[256];

    mode = m;
    loop = ev_loop_new(EVFLAG_AUTO);
    srv = http_server_new(loop, &a, lim, handler, NULL, err, sizeof(err));
    cr_assert_not_null(srv, "%s", err);
    port = http_server_port(srv);
    cr_assert_gt(port, 0);
    ev_async_init(&stop_w, stop_cb);
    ev_async_start(loop, &stop_w);
    if (late_ns > 0) {
        ev_prepare_init(&late_w, late_cb);
        ev_prepare_start(loop, &late_w);
    }
    cr_assert_eq(pthread_create(&thread, NULL, loop_main, NULL), 0);
}

static void start_late(const struct http_limits *lim, enum mode m, long ns)
{
    late_ns = ns;
    mode = m;
    start(lim, m);
}

static void stop(void)
{
    ev_async_send(loop, &stop_w);
    pthread_join(thread, NULL);
    ev_loop_destroy(loop);
    loop = NULL;
    late_ns = 0;
}

static bool wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 600 && atomic_load(v) < want; i++)
        usleep(5000);
    return atomic_load(v) >= want;
}

/* ---- client ---- */

static int cli(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 3};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void sendall(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

        cr_assert_gt(k, 0, "send: %s", strerror(errno));
        s += k;
        n -= (size_t)k;
    }
}

static void sends(int fd, const char *s)
{
    sendall(fd, s, strlen(s));
}

struct resp {
    int status;
    char hdrs[4096];
    size_t hlen;
    char body[8192];
    size_t blen;
};

struct reader {
    http_parser p;
    struct resp *r;
    int want, got;
    bool head, in_field;
};

static int r_hfield(http_parser *p, const char *at, size_t n)
{
    struct reader *rd = p->data;
    struct resp *r = &rd->r[rd->got];

    /* called once per byte (readn feeds one at a time): "\nName:value" */
    if (r->hlen + n + 3 < sizeof(r->hdrs)) {
        if (!rd->in_field)
            r->hdrs[r->hlen++] = '\n';
        memcpy(r->hdrs + r->hlen, at, n);
        r->hlen += n;
        r->hdrs[r->hlen] = '\0';
    }
    rd->in_field = true;
    return 0;
}

static int r_hvalue(http_parser *p, const char *at, size_t n)
{
    struct reader *rd = p->data;
    struct resp *r = &rd->r[rd->got];

    if (rd->in_field && r->hlen + 1 < sizeof(r->hdrs))
        r->hdrs[r->hlen++] = ':';
    rd->in_field = false;
    if (r->hlen + n + 2 < sizeof(r->hdrs)) {
        memcpy(r->hdrs + r->hlen, at, n);
        r->hlen += n;
        r->hdrs[r->hlen] = '\0';
    }
    return 0;
}

static int r_hdone(http_parser *p)
{
    struct reader *rd = p->data;

    rd->r[rd->got].status = (int)p->status_code;
    rd->in_field = false;
    return rd->head ? 1 : 0;
}

static int r_body(http_parser *p, const char *at, size_t n)
{
    struct reader *rd = p->data;
    struct resp *r = &rd->r[rd->got];

    cr_assert_lt(r->blen + n, sizeof(r->body));
    memcpy(r->body + r->blen, at, n);
    r->blen += n;
    r->body[r->blen] = '\0';
    return 0;
}

static int r_done(http_parser *p)
{
    struct reader *rd = p->data;

    if (++rd->got == rd->want)
        http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings r_settings = {
    .on_header_field = r_hfield,
    .on_header_value = r_hvalue,
    .on_headers_complete = r_hdone,
    .on_body = r_body,
    .on_message_complete = r_done,
};

/* Reads `want` responses (HEAD ones if head); returns how many came whole.
 * One byte at a time, so nothing of a later response is consumed. */
static int readn(int fd, struct resp *r, int want, bool head)
{
    struct reader rd = {.r = r, .want = want, .head = head};
    char ch;

    memset(r, 0, sizeof(*r) * (size_t)want);
    http_parser_init(&rd.p, HTTP_RESPONSE);
    rd.p.data = &rd;
    while (rd.got < want) {
        ssize_t n = recv(fd, &ch, 1, 0);

        if (n <= 0) {
            http_parser_execute(&rd.p, &r_settings, NULL, 0);
            break;
        }
        if (http_parser_execute(&rd.p, &r_settings, &ch, 1) != 1)
            break;
    }
    return rd.got;
}

static struct resp one(int fd, bool head)
{
    struct resp r;

    cr_assert_eq(readn(fd, &r, 1, head), 1);
    return r;
}

/* True when the server closed the connection (EOF or reset). */
static bool closed(int fd)
{
    char buf[256];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        ;
    return n == 0 || (n == -1 && errno == ECONNRESET);
}

static struct resp exchange(const char *req, bool head)
{
    int fd = cli();
    struct resp r;

    sends(fd, req);
    r = one(fd, head);
    close(fd);
    return r;
}

/* ---- tests ---- */

Test(http, get)
{
    struct resp r;

    start(NULL, M_ECHO);
    r = exchange("GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nUser-Agent: t\r\n\r\n", false);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "GET /a/b ?x=1 host=example.com:8080 body=0:");
    cr_assert_not_null(strstr(r.hdrs, "\nX-Test:yes"));
    cr_assert_not_null(strstr(r.hdrs, "\nDate:"));
    cr_assert_null(strstr(r.hdrs, "999"), "the handler's Content-Length is dropped");
    r = exchange("GET http://Other.example/p HTTP/1.1\r\nHost: ignored\r\n\r\n", false);
    cr_assert_str_eq(r.body, "GET /p ? host=other.example body=0:");
    r = exchange("GET /old HTTP/1.0\r\n\r\n", false);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "GET /old ? host= body=0:");
    stop();
    cr_assert_eq(ctr.requests, 3);
    cr_assert_eq(ctr.responses[2], 3);
}

Test(http, head_has_length_and_no_body)
{
    int fd;
    struct resp r;

    start(NULL, M_ECHO);
    fd = cli();
    sends(fd, "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n");
    r = one(fd, true);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.hdrs, "\nContent-Length:24"), "%s",
                       r.hdrs); /* "HEAD /h ? host=a body=0:" */
    cr_assert_eq(r.blen, 0);
    sends(fd, "GET /g HTTP/1.1\r\nHost: a\r\n\r\n"); /* no stray body bytes before it */
    r = one(fd, false);
    cr_assert_str_eq(r.body, "GET /g ? host=a body=0:");
    close(fd);
    stop();
}

Test(http, keep_alive_three_requests)
{
    int fd;
    struct resp r;
    char req[128], want[128];

    start(NULL, M_ECHO);
    fd = cli();
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof(req), "GET /k%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        snprintf(want, sizeof(want), "GET /k%d ? host=h body=0:", i);
        sends(fd, req);
        r = one(fd, false);
        cr_assert_str_eq(r.body, want);
        cr_assert_null(strstr(r.hdrs, "Connection"));
    }
    sends(fd, "GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    r = one(fd, false);
    cr_assert_not_null(strstr(r.hdrs, "\nConnection:close"));
    cr_assert(closed(fd));
    close(fd);
    stop();
    cr_assert_eq(ctr.conns_accepted, 1);
    cr_assert_eq(ctr.requests, 4);
}

static void pipeline(enum mode m)
{
    int fd;
    struct resp r[3];

    start(NULL, m);
    fd = cli();
    sends(fd, "GET /1?d=80 HTTP/1.1\r\nHost: h\r\n\r\n"
              "GET /2?d=40 HTTP/1.1\r\nHost: h\r\n\r\n"
              "GET /3?d=0 HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert_eq(readn(fd, r, 3, false), 3);
    cr_assert_str_eq(r[0].body, "GET /1 ?d=80 host=h body=0:");
    cr_assert_str_eq(r[1].body, "GET /2 ?d=40 host=h body=0:");
    cr_assert_str_eq(r[2].body, "GET /3 ?d=0 host=h body=0:");
    close(fd);
    stop();
    cr_assert_eq(ctr.requests, 3);
}

Test(http, pipelining_sync)
{
    pipeline(M_ECHO);
}

Test(http, pipelining_async_in_order)
{
    pipeline(M_ASYNC);
}

Test(http, bodies)
{
    struct resp r;

    start(NULL, M_ECHO);
    r = exchange("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
                 false);
    cr_assert_str_eq(r.body, "POST /c ? host=h body=11:hello world");
    r = exchange("PUT /l HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", false);
    cr_assert_str_eq(r.body, "PUT /l ? host=h body=5:hello");
    stop();
}

Test(http, expect_continue)
{
    int fd = -1;
    char buf[64] = {0};
    struct resp r;

    start(NULL, M_ECHO);
    fd = cli();
    sends(fd, "POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    cr_assert_eq(recv(fd, buf, 25, MSG_WAITALL), 25);
    cr_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    sends(fd, "ok");
    r = one(fd, false);
    cr_assert_str_eq(r.body, "POST /e ? host=h body=2:ok");
    close(fd);
    r = exchange("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: magic\r\n\r\n",
                 false);
    cr_assert_eq(r.status, 417);
    stop();
}

/* Sends req (len SIZE_MAX: a string), expects status, the reason body if
 * not NULL, and a closed connection. */
static void refused(const char *req, size_t len, int status, const char *body)
{
    int fd = cli();
    struct resp r;

    if (len == SIZE_MAX)
        len = strlen(req);
    sendall(fd, req, len);
    r = one(fd, false);
    cr_assert_eq(r.status, status, "got %d", r.status);
    cr_assert_not_null(strstr(r.hdrs, "\nConnection:close"));
    if (body)
        cr_assert_str_eq(r.body, body);
    cr_assert(closed(fd));
    close(fd);
}

static char big[64 * 1024];

Test(http, limits)
{
    struct http_limits lim;
    size_t n;

    http_limits_default(&lim);
    lim.max_body = 16;
    start(&lim, M_ECHO);
    /* 414 */
    n = (size_t)snprintf(big, sizeof(big), "GET /");
    memset(big + n, 'a', 9000);
    n += 9000;
    n += (size_t)snprintf(big + n, sizeof(big) - n, " HTTP/1.1\r\nHost: h\r\n\r\n");
    refused(big, n, 414, "request target too long\n");
    /* 431: too many lines */
    n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: v\r\n", i);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
    refused(big, n, 431, "too many header fields\n");
    /* 431: too many bytes */
    n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    memset(big + n, 'b', 17000);
    n += 17000;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n\r\n");
    refused(big, n, 431, "request header fields too large\n");
    /* 413: announced, then chunked */
    refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n01234567890123456", SIZE_MAX,
            413, NULL);
    n = (size_t)snprintf(big, sizeof(big),
                         "POST / HTTP/1.1\r\nHost: h\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"
                         "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n");
    refused(big, n, 413, "request body too large\n");
    /* 400 */
    refused("BLAH\x01 /\r\n\r\n", 11, 400, NULL);
    refused("GET / HTTP/1.1\r\n\r\n", SIZE_MAX, 400, "missing Host header\n");
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", SIZE_MAX, 400, NULL);
    stop();
    cr_assert_eq(ctr.url_too_long, 1);
    cr_assert_eq(ctr.headers_too_large, 2);
    cr_assert_eq(ctr.body_too_large, 2);
    cr_assert_eq(ctr.bad_request, 3);
    cr_assert_eq(ctr.requests, 0);
    cr_assert_eq(ctr.responses[4], 8);
}

Test(http, request_timeout)
{
    struct http_limits lim;
    int fd;
    struct resp r;

    http_limits_default(&lim);
    lim.request_timeout = 0.2;
    start(&lim, M_ECHO);
    fd = cli();
    sends(fd, "GET / HTTP/1.1\r\nHost:");
    r = one(fd, false);
    cr_assert_eq(r.status, 408);
    cr_assert(closed(fd));
    close(fd);
    stop();
    cr_assert_eq(ctr.timeout, 1);
}

/* A client that trickles its head a byte every 5 ms to a loop that is
 * always 300 ms late has something in the socket whenever the timer looks:
 * the late-loop grace (one second, once per arming) must not let it hold
 * the connection past its timeout for ever. */
Test(http, trickled_head_still_times_out, .timeout = 30)
{
    const char *line = "X-Trickle: abcdefghijklmnopqrstuvwxyz\r\n";
    struct http_limits lim;
    struct pollfd p;
    int fd, i;
    struct resp r;

    http_limits_default(&lim);
    lim.request_timeout = 0.2;
    start_late(&lim, M_ECHO, 300000000);
    fd = cli();
    sends(fd, "GET / HTTP/1.1\r\nHost: h\r\n");
    p = (struct pollfd){.fd = fd, .events = POLLIN};
    /* at most 2000 bytes, 53 fields: under the head limits, so no 431 */
    for (i = 0; i < 2000 && poll(&p, 1, 5) == 0; i++)
        (void)send(fd, line + i % strlen(line), 1, MSG_NOSIGNAL);
    cr_assert_lt(i, 2000, "10 s of trickle and no answer");
    r = one(fd, false);
    cr_assert_eq(r.status, 408);
    close(fd);
    stop();
    cr_assert_eq(ctr.timeout, 1);
    cr_assert_eq(ctr.late_io, 1, "the grace was given %" PRIu64 " times", ctr.late_io);
}

Test(http, idle_timeout_closes)
{
    struct http_limits lim;
    int fd;

    http_limits_default(&lim);
    lim.idle_timeout = 0.2;
    start(&lim, M_ECHO);
    fd = cli();
    sends(fd, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    one(fd, false);
    cr_assert(closed(fd));
    close(fd);
    stop();
    cr_assert_eq(ctr.timeout, 0);
}

Test(http, stream_chunked_and_length)
{
    struct resp r;
    int fd;

    start(NULL, M_STREAM);
    r = exchange("GET /s HTTP/1.1\r\nHost: h\r\n\r\n", false);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.hdrs, "\nTransfer-Encoding:chunked"));
    cr_assert_str_eq(r.body, "hello chunked world");
    /* HTTP/1.0: close-delimited */
    fd = cli();
    sends(fd, "GET /s HTTP/1.0\r\n\r\n");
    r = one(fd, false);
    cr_assert_str_eq(r.body, "hello chunked world");
    cr_assert_not_null(strstr(r.hdrs, "\nConnection:close"));
    close(fd);
    stop();
    start(NULL, M_STREAM_CL);
    r = exchange("GET /s HTTP/1.1\r\nHost: h\r\n\r\n", false);
    cr_assert_not_null(strstr(r.hdrs, "\nContent-Length:19"));
    cr_assert_str_eq(r.body, "hello chunked world");
    stop();
}

/* A streamed answer to HEAD announces the GET's length and writes no body:
 * that is complete, and the connection stays open for the next request. */
Test(http, streamed_head_keeps_the_connection)
{
    struct resp r;
    int fd;

    start(NULL, M_HEAD_CL);
    fd = cli();
    sends(fd, "HEAD /s HTTP/1.1\r\nHost: h\r\n\r\n");
    r = one(fd, true);
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.hdrs, "\nContent-Length:19"));
    cr_assert_eq(r.blen, 0);
    sends(fd, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n");
    r = one(fd, false);
    cr_assert_eq(r.status, 200, "connection closed after the HEAD");
    cr_assert_str_eq(r.body, "hello chunked world");
    close(fd);
    stop();
}

Test(http, client_abort_released_in_callback)
{
    int fd;

    start(NULL, M_HOLD);
    fd = cli();
    sends(fd, "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(wait_for(&dispatched, 1));
    close(fd);
    cr_assert(wait_for(&aborts, 1));
    stop();
    cr_assert_eq(ctr.aborted, 1);
    cr_assert_eq(ctr.conns_open, 0);
}

Test(http, client_abort_then_late_respond)
{
    int fd;

    start(NULL, M_HOLD_LATE);
    fd = cli();
    /* a pipelined second request stays buffered and dies with the conn */
    sends(fd, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(wait_for(&dispatched, 1));
    close(fd);
    cr_assert(wait_for(&aborts, 1));
    cr_assert(wait_for(&late_done, 1));
    cr_assert_eq(atomic_load(&late_rc), -ECONNRESET);
    stop();
    cr_assert_eq(atomic_load(&dispatched), 1);
}

Test(http, server_free_detaches_held)
{
    int fd;

    start(NULL, M_HOLD);
    fd = cli();
    sends(fd, "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_assert(wait_for(&dispatched, 1));
    stop(); /* the abort callback releases the exchange */
    cr_assert_eq(atomic_load(&aborts), 1);
    close(fd);
}

Test(http, max_conns)
{
    struct http_limits lim;
    int a, b;
    struct resp r;

    http_limits_default(&lim);
    lim.max_conns = 1;
    start(&lim, M_ECHO);
    a = cli();
    sends(a, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    r = one(a, false);
    cr_assert_eq(r.status, 200);
    b = cli();
    cr_assert(closed(b));
    close(b);
    close(a);
    stop();
    cr_assert_eq(ctr.too_many_conns, 1);
    cr_assert_eq(ctr.conns_accepted, 1);
}

/* Found by fuzz_http (fuzz/corpus/fuzz_http/regress-http-1-2): "HTTP/1.2"
 * was dispatched with http_exchange_version() 12, outside its contract (10
 * or 11). A 1.x request above 1.1 is served as 1.1 (RFC 9110 section 6.2). */
Test(http, minor_version_above_one_is_served_as_1_1)
{
    struct resp r;

    start(NULL, M_ECHO);
    r = exchange("GET /v HTTP/1.2\r\nHost: a\r\n\r\n", false);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(atomic_load(&last_version), 11);
    r = exchange("GET /v HTTP/1.0\r\n\r\n", false);
    cr_assert_eq(atomic_load(&last_version), 10);
    stop();
}

/* ---- drain after a flush from the read side (single-threaded) ----------- */

/* Found by fuzz_http (fuzz/corpus/fuzz_http/regress-drain-after-read-flush):
 * a handler paused on backpressure waits for its drain callback, which only
 * the write watcher called. When the client sent a byte while reading, the
 * read watcher ran first and its flush emptied the output; the write watcher
 * was then stopped (nothing pending) and the drain never came: the response
 * stalled for good. Here the loop runs in the test thread, pumped without
 * blocking, so the read and write events reach the server together. */
struct drain_st {
    int pieces_left;
    bool done, paused;
};

static void drain_stream(struct http_exchange *ex, struct drain_st *st);

static void drain_resume(struct http_exchange *ex, void *arg)
{
    drain_stream(ex, arg);
}

static void drain_stream(struct http_exchange *ex, struct drain_st *st)
{
    static char piece[4096];

    memset(piece, 'p', sizeof(piece));
    while (st->pieces_left > 0) {
        int r = http_respond_write(ex, piece, sizeof(piece));

        st->pieces_left--;
        if (r == 1 && st->pieces_left > 0) {
            st->paused = true;
            http_exchange_set_drain_cb(ex, drain_resume, st);
            return;
        }
        cr_assert_geq(r, 0);
    }
    cr_assert_eq(http_respond_end(ex), 0);
    st->done = true;
}

static void drain_handler(struct http_exchange *ex, void *arg)
{
    struct drain_st *st = arg;

    cr_assert_eq(http_respond_start(ex, 200, NULL, 0, -1), 0);
    drain_stream(ex, st);
}

/* The server's end of client socket cfd (by its peer address) gets a small
 * send buffer, so output queues in the server instead of the kernel. */
static void shrink_server_sndbuf(int cfd)
{
    struct sockaddr_in me, peer;
    socklen_t len = sizeof(me);
    int sz = 4096;

    cr_assert_eq(getsockname(cfd, (struct sockaddr *)&me, &len), 0);
    for (int fd = 3; fd < 1024; fd++) {
        len = sizeof(peer);
        if (fd != cfd && getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
            peer.sin_port == me.sin_port && peer.sin_addr.s_addr == me.sin_addr.s_addr) {
            cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
            return;
        }
    }
    cr_assert_fail("the server's socket was not found");
}

Test(http, drain_after_a_flush_from_the_read_side)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct http_limits lim;
    struct drain_st st = {.pieces_left = 32};
    struct ev_loop *l = ev_loop_new(EVFLAG_AUTO);
    struct http_server *s;
    char err[256], buf[16384];
    int fd, rcvbuf = 4096, round;

    http_limits_default(&lim);
    lim.max_output = 2048;
    s = http_server_new(l, &a, &lim, drain_handler, &st, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    a.sin_port = htons((uint16_t)http_server_port(s));
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
    for (int i = 0; i < 100 && http_server_counters(s)->conns_open == 0; i++)
        ev_run(l, EVRUN_NOWAIT);
    shrink_server_sndbuf(fd);
    sendall(fd, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
    for (int i = 0; i < 100 && !st.paused; i++)
        ev_run(l, EVRUN_NOWAIT);
    cr_assert(st.paused, "the handler never met backpressure");
    /* Each round: read what came, send one byte of a next request, pump. */
    for (round = 0; round < 2000 && !st.done; round++) {
        while (recv(fd, buf, sizeof(buf), 0) > 0)
            ;
        if (round < 20)
            cr_assert_eq(send(fd, "GET /next HTTP/1.1\r\n" + round, 1, MSG_NOSIGNAL), 1);
        for (int i = 0; i < 3; i++)
            ev_run(l, EVRUN_NOWAIT);
    }
    cr_assert(st.done, "the streamed response stalled with %d pieces left", st.pieces_left);
    close(fd);
    http_server_free(s);
    ev_loop_destroy(l);
}

/* Found by fuzz_http (fuzz/corpus/fuzz_http/regress-eof-mid-request):
 * a client that pipelined a complete request and the start of another, then
 * half-closed, lost the end of the first answer when it was still queued in
 * the server: an EOF in the middle of a request head aborted the connection
 * instead of finishing the answers already made. */
static void big_handler(struct http_exchange *ex, void *arg)
{
    static char body[65536];

    memset(body, 'b', sizeof(body));
    cr_assert_eq(http_respond(ex, 200, NULL, 0, body, sizeof(body)), 0);
}

Test(http, half_close_mid_request_still_gets_earlier_answers)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static const char reqs[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHo";
    struct ev_loop *l = ev_loop_new(EVFLAG_AUTO);
    struct http_server *s;
    char err[256], buf[16384];
    size_t got = 0, body = 0;
    const char *hend = NULL;
    int fd, rcvbuf = 4096;
    static char resp[1 << 17];

    s = http_server_new(l, &a, NULL, big_handler, NULL, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    a.sin_port = htons((uint16_t)http_server_port(s));
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
    for (int i = 0; i < 100 && http_server_counters(s)->conns_open == 0; i++)
        ev_run(l, EVRUN_NOWAIT);
    shrink_server_sndbuf(fd);
    sendall(fd, reqs, sizeof(reqs) - 1);
    for (int i = 0; i < 10; i++) /* answered; most of it still queued in the server */
        ev_run(l, EVRUN_NOWAIT);
    cr_assert_eq(http_server_counters(s)->requests, 1);
    shutdown(fd, SHUT_WR);
    for (int round = 0; round < 5000; round++) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);

        if (n == 0)
            break;
        if (n > 0) {
            cr_assert_leq(got + (size_t)n, sizeof(resp));
            memcpy(resp + got, buf, (size_t)n);
            got += (size_t)n;
        }
        ev_run(l, EVRUN_NOWAIT);
    }
    resp[got < sizeof(resp) ? got : sizeof(resp) - 1] = '\0';
    hend = strstr(resp, "\r\n\r\n");
    cr_assert_not_null(hend, "no response head");
    body = got - (size_t)(hend + 4 - resp);
    cr_assert_eq(body, 65536, "the first answer was cut at %zu of 65536 body bytes", body);
    close(fd);
    http_server_free(s);
    ev_loop_destroy(l);
}
