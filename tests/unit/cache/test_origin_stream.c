/* test_origin_stream.c - the streaming side of cache/origin.c (origin.h
 * "Streaming"): a body over max_body handed to stream callbacks as it is
 * read (Content-Length, chunked, close-delimited), pause and resume, STOP,
 * retargeting, a response cut short, and the keep-alive pool after each.
 * The origin is a thread of the test process on 127.0.0.1 (kernel-chosen
 * port) with blocking sockets; the test thread runs the libev loop. Run
 * under ASan for the stop and cancel paths. */
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

#define BODY    300000 /* bytes of every large answer */
#define CUT     150000 /* where S_CUT stops */
#define MAXBODY 65536  /* the origin's max_body in these tests */

/* What the server answers on every request. */
enum shape {
    S_CL,      /* Content-Length: BODY, keep-alive */
    S_CHUNKED, /* chunked in 10000-byte chunks, keep-alive */
    S_CLOSE,   /* delimited by close */
    S_CUT,     /* Content-Length: BODY, then closes after CUT bytes */
    S_SMALL,   /* Content-Length: 1000: fits, never streamed */
};

static enum shape shape;
static int lfd = -1;
static pthread_t srv_thread;
static int written_pipe[2] = {-1, -1}; /* a byte per answer fully written */
static struct ev_loop *loop;
static struct origin *org;

static char pattern(size_t i)
{
    return (char)('a' + (i * 7 + i / 1000) % 26);
}

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

static bool read_request(int fd)
{
    char buf[4096];
    size_t n = 0;

    while (n < sizeof(buf) - 1) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

        if (r <= 0)
            return false;
        n += (size_t)r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return true;
    }
    return false;
}

/* One answer of the current shape; false when the connection must close. */
static bool answer(int fd)
{
    static char body[BODY];
    size_t len = shape == S_SMALL ? 1000 : shape == S_CUT ? CUT : BODY;
    char h[160];
    int k;

    for (size_t i = 0; i < BODY; i++)
        body[i] = pattern(i);
    if (shape == S_CHUNKED)
        k = snprintf(h, sizeof(h),
                     "HTTP/1.1 200 OK\r\nX-T: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
    else if (shape == S_CLOSE)
        k = snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nX-T: 1\r\nConnection: close\r\n\r\n");
    else
        k = snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nX-T: 1\r\nContent-Length: %d\r\n\r\n",
                     shape == S_SMALL ? 1000 : BODY);
    write_all(fd, h, (size_t)k);
    for (size_t off = 0; off < len; off += 10000) {
        if (shape == S_CHUNKED)
            write_all(fd, "2710\r\n", 6);
        write_all(fd, body + off, len - off < 10000 ? len - off : 10000);
        if (shape == S_CHUNKED)
            write_all(fd, "\r\n", 2);
    }
    if (shape == S_CHUNKED)
        write_all(fd, "0\r\n\r\n", 5);
    cr_assert_eq(write(written_pipe[1], "w", 1), 1);
    return shape == S_CL || shape == S_CHUNKED || shape == S_SMALL;
}

static void *server_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL), sndbuf = 1 << 20;

        if (fd == -1)
            return NULL;
        /* a whole answer fits in the socket buffers: the pause test waits
         * for it to be written while the client reads nothing */
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        while (read_request(fd) && answer(fd))
            ;
        close(fd);
    }
}

static void start(enum shape s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    struct origin_limits lim;
    char url[64], err[256];

    shape = s;
    cr_assert_eq(pipe(written_pipe), 0);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(lfd >= 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 16), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    cr_assert_eq(pthread_create(&srv_thread, NULL, server_main, NULL), 0);
    loop = ev_loop_new(EVFLAG_AUTO);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
    origin_limits_default(&lim);
    lim.max_body = MAXBODY;
    lim.response_timeout = 1.0; /* the pause test outlasts it */
    org = origin_new(loop, url, &lim, err, sizeof(err));
    cr_assert_not_null(org, "%s", err);
}

static void stop(void)
{
    origin_free(org);
    shutdown(lfd, SHUT_RDWR);
    pthread_join(srv_thread, NULL);
    close(lfd);
    close(written_pipe[0]);
    close(written_pipe[1]);
    ev_loop_destroy(loop);
}

static struct origin_counters counters(void)
{
    struct origin_counters c;

    origin_get_counters(org, &c);
    return c;
}

/* ---- what the callbacks saw ---- */

struct seen {
    int heads, dones, error;
    int64_t content_length;
    size_t head_body; /* bytes held when the head came */
    bool streamed, has_hdr;
    char body[BODY + 1];
    size_t len;           /* body bytes seen: the head's, then the pieces */
    enum origin_flow say; /* what body answers (first_say for the head) */
    enum origin_flow first_say;
    size_t pause_after; /* answer ORIGIN_PAUSE once len passes this (0: never) */
    bool paused;
};
static struct seen sn, sn2;
static struct origin_fetch *fetch;

static void take(struct seen *s, const char *data, size_t len)
{
    cr_assert_leq(s->len + len, sizeof(s->body));
    if (len)
        memcpy(s->body + s->len, data, len);
    s->len += len;
}

static enum origin_flow on_head(void *arg, const struct origin_result *res)
{
    struct seen *s = arg;

    s->heads++;
    s->content_length = res->content_length;
    s->head_body = res->body_len;
    s->has_hdr = c9_hdr_get(res->hdrs, res->nhdrs, "X-T") != NULL;
    cr_assert_eq(res->status, 200);
    cr_assert_leq(res->body_len, MAXBODY);
    take(s, res->body, res->body_len);
    return s->first_say;
}

static enum origin_flow on_body(void *arg, const char *data, size_t len)
{
    struct seen *s = arg;

    take(s, data, len);
    if (s->pause_after && s->len > s->pause_after && !s->paused) {
        s->paused = true;
        ev_break(loop, EVBREAK_ONE);
        return ORIGIN_PAUSE;
    }
    if (s->say == ORIGIN_STOP)
        ev_break(loop, EVBREAK_ONE);
    return s->say;
}

static void on_done(void *arg, const struct origin_result *res)
{
    struct seen *s = arg;

    s->dones++;
    s->error = res->error;
    s->streamed = res->streamed;
    if (!res->streamed)
        take(s, res->body, res->body_len);
    fetch = NULL;
    ev_break(loop, EVBREAK_ONE);
}

static const struct origin_stream_ops ops = {on_head, on_body};

static void begin(struct seen *s)
{
    struct origin_request rq = {.method = "GET", .path_and_query = "/", .stream = &ops};

    memset(s, 0, sizeof(*s));
    cr_assert_eq(origin_fetch_req(org, &rq, on_done, s, &fetch), 0);
}

/* The body seen is the server's, whole (or its first n bytes). */
static void assert_body(const struct seen *s, size_t n)
{
    cr_assert_eq(s->len, n, "%zu body bytes seen", s->len);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(s->body[i], pattern(i), "byte %zu", i);
}

/* A fetch that fits, and the connection it ran on (reused or new). */
static void then_small(bool reused)
{
    struct origin_counters before = counters();

    shape = S_SMALL;
    begin(&sn);
    ev_run(loop, 0);
    cr_assert_eq(sn.heads, 0);
    cr_assert_eq(sn.dones, 1);
    cr_assert_eq(sn.error, 0);
    cr_assert_not(sn.streamed);
    assert_body(&sn, 1000);
    cr_assert_eq(counters().conns_reused - before.conns_reused, reused ? 1 : 0);
}

Test(stream, content_length_over_max_body, .timeout = 10)
{
    start(S_CL);
    begin(&sn);
    ev_run(loop, 0);
    cr_assert_eq(sn.heads, 1);
    cr_assert_eq(sn.content_length, BODY);
    cr_assert_eq(sn.head_body, 0, "nothing held: the length said it all");
    cr_assert(sn.has_hdr);
    cr_assert_eq(sn.dones, 1);
    cr_assert_eq(sn.error, 0);
    cr_assert(sn.streamed);
    assert_body(&sn, BODY);
    cr_assert_eq(counters().streamed, 1);
    cr_assert_eq(counters().err_too_big, 0);
    then_small(true); /* a clean end pools the connection */
    stop();
}

Test(stream, chunked_over_max_body, .timeout = 10)
{
    start(S_CHUNKED);
    begin(&sn);
    ev_run(loop, 0);
    cr_assert_eq(sn.heads, 1);
    cr_assert_eq(sn.content_length, -1);
    cr_assert_gt(sn.head_body, 0, "the bytes held so far come with the head");
    cr_assert_eq(sn.dones, 1);
    cr_assert_eq(sn.error, 0);
    assert_body(&sn, BODY);
    then_small(true);
    stop();
}

Test(stream, close_delimited_over_max_body, .timeout = 10)
{
    start(S_CLOSE);
    begin(&sn);
    ev_run(loop, 0);
    cr_assert_eq(sn.heads, 1);
    cr_assert_eq(sn.content_length, -1);
    cr_assert_eq(sn.dones, 1);
    cr_assert_eq(sn.error, 0);
    assert_body(&sn, BODY);
    then_small(false);
    stop();
}

Test(stream, cut_short_is_an_error, .timeout = 10)
{
    start(S_CUT);
    begin(&sn);
    ev_run(loop, 0);
    cr_assert_eq(sn.heads, 1);
    cr_assert_eq(sn.dones, 1);
    cr_assert_neq(sn.error, 0, "a short body must not end cleanly");
    cr_assert(sn.streamed);
    assert_body(&sn, CUT);
    then_small(false);
    stop();
}

static void written_cb(struct ev_loop *l, ev_io *w, int revents)
{
    char c;

    (void)revents;
    cr_assert_eq(read(w->fd, &c, 1), 1);
    ev_io_stop(l, w);
    ev_break(l, EVBREAK_ONE);
}

static void later_cb(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(l, EVBREAK_ONE);
}

/* While paused nothing is read, whatever waits in the socket, and the
 * response timeout (1 s) does not run; resume reads the rest. */
Test(stream, pause_and_resume, .timeout = 10)
{
    ev_io wr;
    ev_timer later;
    size_t at_pause;

    start(S_CL);
    begin(&sn);
    sn.pause_after = 1;
    ev_run(loop, 0); /* to the pause */
    cr_assert(sn.paused);
    ev_io_init(&wr, written_cb, written_pipe[0], EV_READ);
    ev_io_start(loop, &wr);
    ev_run(loop, 0); /* the server wrote its whole answer (socket buffers) */
    at_pause = sn.len;
    ev_timer_init(&later, later_cb, 2.0, 0.);
    ev_timer_start(loop, &later);
    ev_run(loop, 0);
    cr_assert_eq(sn.len, at_pause, "read while paused");
    cr_assert_leq(at_pause, ORIGIN_STREAM_READ, "more than one read before the pause");
    cr_assert_eq(sn.dones, 0, "timed out while paused");
    origin_fetch_resume(fetch);
    origin_fetch_resume(fetch); /* twice is harmless */
    ev_run(loop, 0);
    cr_assert_eq(sn.dones, 1);
    cr_assert_eq(sn.error, 0);
    assert_body(&sn, BODY);
    then_small(true);
    stop();
}

Test(stream, cancel_while_paused, .timeout = 10)
{
    start(S_CL);
    begin(&sn);
    sn.pause_after = 1;
    ev_run(loop, 0);
    cr_assert(sn.paused);
    origin_fetch_cancel(fetch);
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(sn.dones, 0, "done after a cancel");
    cr_assert_eq(counters().cancelled, 1);
    then_small(false); /* a half-read connection is never pooled */
    stop();
}

Test(stream, stop_in_head, .timeout = 10)
{
    start(S_CL);
    begin(&sn);
    sn.first_say = ORIGIN_STOP;
    while (sn.heads == 0)
        ev_run(loop, EVRUN_ONCE);
    ev_run(loop, EVRUN_NOWAIT);
    cr_assert_eq(sn.dones, 0, "done after ORIGIN_STOP");
    cr_assert_eq(counters().cancelled, 1);
    then_small(false);
    stop();
}

Test(stream, stop_in_body, .timeout = 10)
{
    start(S_CHUNKED);
    begin(&sn);
    sn.say = ORIGIN_STOP;
    ev_run(loop, 0);
    cr_assert_eq(sn.heads, 1);
    cr_assert_eq(sn.dones, 0, "done after ORIGIN_STOP");
    cr_assert_eq(counters().cancelled, 1);
    then_small(false);
    stop();
}

/* The head callback hands the fetch to another consumer. */
static enum origin_flow handover_head(void *arg, const struct origin_result *res)
{
    struct seen *s = arg;

    s->heads++;
    origin_fetch_retarget(fetch, &ops, on_done, &sn2);
    take(&sn2, res->body, res->body_len);
    return ORIGIN_GO;
}

static enum origin_flow never_body(void *arg, const char *data, size_t len)
{
    (void)arg;
    (void)data;
    (void)len;
    cr_assert_fail("the old body callback after a retarget");
    return ORIGIN_STOP;
}

static void never_done(void *arg, const struct origin_result *res)
{
    (void)arg;
    (void)res;
    cr_assert_fail("the old done callback after a retarget");
}

Test(stream, retarget_in_head, .timeout = 10)
{
    static const struct origin_stream_ops first = {handover_head, never_body};
    struct origin_request rq = {.method = "GET", .path_and_query = "/", .stream = &first};

    start(S_CHUNKED);
    memset(&sn, 0, sizeof(sn));
    memset(&sn2, 0, sizeof(sn2));
    cr_assert_eq(origin_fetch_req(org, &rq, never_done, &sn, &fetch), 0);
    ev_run(loop, 0);
    cr_assert_eq(sn.heads, 1);
    cr_assert_eq(sn2.dones, 1);
    cr_assert_eq(sn2.error, 0);
    assert_body(&sn2, BODY);
    stop();
}

Test(stream, without_stream_ops_too_big_fails, .timeout = 10)
{
    struct origin_request rq = {.method = "GET", .path_and_query = "/"};
    static const struct origin_stream_ops half = {on_head, NULL};

    start(S_CL);
    memset(&sn, 0, sizeof(sn));
    cr_assert_eq(origin_fetch_req(org, &rq, on_done, &sn, NULL), 0);
    ev_run(loop, 0);
    cr_assert_eq(sn.error, -E2BIG);
    cr_assert_eq(sn.heads, 0);
    rq.stream = &half;
    cr_assert_eq(origin_fetch_req(org, &rq, on_done, &sn, NULL), -EINVAL);
    stop();
}
