/* fuzz_http.c - libFuzzer target: the HTTP/1.1 server of fulcrum-cache
 * (cache/http.c and http_out.c on libhttp-parser), through its real
 * listener and connection code.
 *
 * http.c takes connections only from its listening socket, so each input
 * is one TCP connection on 127.0.0.1 to a server living for the whole run
 * (one libev loop in this thread, pumped with EVRUN_NOWAIT): the client
 * writes the input in pieces, pumping the loop between pieces, then shuts
 * down its write side and pumps until the server has closed.
 *
 * Input: mode, script and seed bytes, then what the client sends.
 *   mode bit 0: the server with the default limits, or one with tiny
 *               limits (every 413/414/431 and output backpressure);
 *   mode bit 1: the handler answers inside the request callback, or
 *               holds the exchange and answers from the loop (async);
 *   mode bits 2-3: pieces of the whole input, 1 byte, up to 64 bytes
 *               or up to 1024 bytes (sizes drawn from the seed byte);
 *   mode bit 4: hang up while exchanges are held (abort callbacks, respond
 *               calls on detached exchanges);
 *   mode bit 5: a slow reader: a 4 KiB receive buffer, read only when a
 *               send blocks or at the end (output backpressure, drain
 *               callbacks, on the tiny server with 24 KiB streamed bodies);
 *   mode bit 6 with bit 0: the tiny server with 2 ms timeouts (408, idle
 *               close, write stalls; timing-dependent, so the output is
 *               not checked).
 *   script: two bits per request, cycling every 4 requests: answer whole,
 *           streamed with a length, streamed chunked, or no answer (500).
 *
 * Oracles besides ASan/UBSan/LSan:
 *   - request accessors give NUL-terminated strings within the limits,
 *     a lowercase host and headers whose names and values end with NUL;
 *   - unless hung up early or timed out, everything the server sends parses as a
 *     sequence of valid HTTP/1.1 responses (responses to HEAD, 1xx, 204
 *     and 304 without a body);
 *   - the server closes the connection after the client's EOF.
 */
#include <errno.h>
#include <ev.h>
#include <http_parser.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

#define FUZZ_HELD    256  /* requests of one input the checks keep track of */
#define FUZZ_GUARD   5.0  /* seconds for answers to complete, and for the close */
#define FUZZ_SERVERS 3    /* default limits, tiny limits, tiny limits and timeouts */
#define FUZZ_FILLER  4096 /* bytes of one streamed piece */
#define FUZZ_PIECES  16   /* pieces of a big answer: past the socket buffers */
#define FUZZ_QUIET   3    /* pumps dispatching nothing before the client's EOF */

struct fuzz_held {
    struct http_exchange *ex;
    unsigned act;
};

/* One input's connection, as the client sees it. */
struct fuzz_client {
    int fd;
    bool eof;
    bool check; /* parse the server's output */
    bool slow;  /* read only when a send blocks, and at the end */
    http_parser rp;
    size_t nresp;    /* final responses parsed */
    const char *bad; /* first problem found in the output */
};

static struct ev_loop *loop;
static struct http_server *srv[FUZZ_SERVERS];
static struct http_limits lims[FUZZ_SERVERS];
static char filler[FUZZ_FILLER];
static const struct http_limits *cur_lim; /* of the server this input talks to */
static unsigned script, nreq;
static unsigned streaming; /* answers paused until their output drains */
static bool async_mode;
static bool is_head[FUZZ_HELD];
static struct fuzz_held held[FUZZ_HELD];
static size_t nheld;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz_http: oracle failed: %s\n", what);
    abort();
}

/* ---- the handler ---------------------------------------------------------- */

static void fuzz_check_request(struct http_exchange *ex, const struct http_limits *lim)
{
    const struct c9_hdr *h;
    const char *host = http_exchange_host(ex);
    size_t n, blen;

    if (!http_exchange_method(ex) || !http_exchange_url(ex) || !*http_exchange_path(ex) ||
        !http_exchange_query(ex) || !host || (unsigned)http_exchange_method_id(ex) >= HTTP_REQ_MAX)
        fuzz_die("a request accessor gave nothing");
    if (strlen(http_exchange_url(ex)) > lim->max_url)
        fuzz_die("a URL over max_url was dispatched");
    for (const char *p = host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            fuzz_die("the host is not lowercased");
    if (http_exchange_version(ex) != 10 && http_exchange_version(ex) != 11)
        fuzz_die("a version other than 1.0 or 1.1 was dispatched");
    h = http_exchange_headers(ex, &n);
    if (n > lim->max_headers || (n && !h))
        fuzz_die("more headers than max_headers");
    for (size_t i = 0; i < n; i++)
        if (h[i].name[h[i].name_len] || h[i].value[h[i].value_len] || !h[i].name_len)
            fuzz_die("a header name or value not NUL-terminated, or empty name");
    if (http_exchange_body(ex, &blen), blen > lim->max_body)
        fuzz_die("a body over max_body was dispatched");
}

static void fuzz_stream(struct http_exchange *ex, unsigned left);

/* A streamed answer waiting for its output to drain: pieces left to write. */
static void fuzz_on_drain(struct http_exchange *ex, void *arg)
{
    if (http_exchange_aborted(ex))
        fuzz_die("drain callback on a detached exchange");
    streaming--;
    fuzz_stream(ex, (unsigned)(uintptr_t)arg);
}

/* Detached while waiting to drain: nobody else will release it. */
static void fuzz_stream_abort(struct http_exchange *ex, void *arg)
{
    (void)arg;
    streaming--;
    http_respond_end(ex);
}

/* Writes `left` filler pieces, pausing whenever the server says its output
 * is over max_output (the drain callback resumes); then ends the answer. */
static void fuzz_stream(struct http_exchange *ex, unsigned left)
{
    while (left > 0) {
        int r = http_respond_write(ex, filler, sizeof(filler));

        left--;
        if (r == 1 && left > 0) {
            http_exchange_set_drain_cb(ex, fuzz_on_drain, (void *)(uintptr_t)left);
            http_exchange_set_abort_cb(ex, fuzz_stream_abort, NULL);
            streaming++;
            return;
        }
        if (r < 0)
            break;
    }
    http_respond_end(ex);
}

/* Answers ex by act: whole, streamed with a length, chunked, or not at all.
 * Always releases ex exactly once. */
static void fuzz_answer(struct http_exchange *ex, unsigned act, unsigned idx)
{
    static const int statuses[] = {200, 404, 200, 304, 204, 599, 100};
    const struct c9_hdr *rh;
    size_t nh = 0, blen;
    const char *body = http_exchange_body(ex, &blen);
    char text[256];
    int status = statuses[idx % 7], k, r, big;
    struct c9_hdr hdrs[4] = {
        {"X-Fuzz", 6, "yes", 3},
        {"Content-Length", 14, "999", 3},
        {"X-Bad", 5, "a\r\nInjected: 1", 14},
        {"X-Echo", 6, "", 0},
    };

    rh = http_exchange_headers(ex, &nh);
    if (nh > 0)
        hdrs[3].value = rh[0].value, hdrs[3].value_len = rh[0].value_len;
    k = snprintf(text, sizeof(text), "%s %.64s ?%.64s host=%.64s body=%zu\n",
                 http_exchange_method(ex), http_exchange_path(ex), http_exchange_query(ex),
                 http_exchange_host(ex), blen);
    switch (act) {
    case 0:
        http_respond(ex, status, hdrs, 4, text, (size_t)k);
        return;
    case 1:
    case 2:
        big = cur_lim->max_output < FUZZ_FILLER;
        r = http_respond_start(ex, status == 100 ? 200 : status, hdrs, 4,
                               act == 1 ? k + (int64_t)blen + big * FUZZ_PIECES * FUZZ_FILLER : -1);
        if (r == 0) {
            http_respond_write(ex, text, (size_t)k);
            http_respond_write(ex, body, blen);
        }
        if (r == 0 && big)
            fuzz_stream(ex, FUZZ_PIECES); /* releases ex, maybe from the drain callback */
        else
            http_respond_end(ex);
        return;
    default:
        http_exchange_done(ex);
        return;
    }
}

static void fuzz_on_abort(struct http_exchange *ex, void *arg)
{
    (void)arg;
    if (!http_exchange_aborted(ex) || http_exchange_pending(ex) != 0)
        fuzz_die("abort callback on a live exchange");
}

static void fuzz_request(struct http_exchange *ex, void *arg)
{
    const struct http_limits *lim = arg;
    unsigned idx = nreq++;
    unsigned act = (script >> ((idx % 4) * 2)) & 3;

    fuzz_check_request(ex, lim);
    if (idx < FUZZ_HELD)
        is_head[idx] = http_exchange_method_id(ex) == HTTP_REQ_HEAD;
    http_exchange_set_abort_cb(ex, fuzz_on_abort, NULL);
    if (async_mode && nheld < FUZZ_HELD) {
        held[nheld++] = (struct fuzz_held){ex, act};
        return;
    }
    fuzz_answer(ex, act, idx);
}

static void fuzz_release_held(void)
{
    for (size_t i = 0; i < nheld; i++)
        fuzz_answer(held[i].ex, held[i].act, (unsigned)i);
    nheld = 0;
}

/* ---- the client's view of the output -------------------------------------- */

static int fuzz_resp_headers(http_parser *p)
{
    struct fuzz_client *cl = p->data;
    unsigned st = p->status_code;
    size_t idx;

    if (st / 100 == 1)
        return 0;
    idx = cl->nresp++;
    if (st == 204 || st == 304)
        return 1;
    return idx < nreq && idx < FUZZ_HELD && is_head[idx] ? 1 : 0;
}

static const http_parser_settings resp_settings = {.on_headers_complete = fuzz_resp_headers};

static void fuzz_parse(struct fuzz_client *cl, const char *p, size_t n)
{
    size_t done;

    if (!cl->check || cl->bad)
        return;
    done = http_parser_execute(&cl->rp, &resp_settings, p, n);
    if (HTTP_PARSER_ERRNO(&cl->rp) != HPE_OK)
        cl->bad = http_errno_description(HTTP_PARSER_ERRNO(&cl->rp));
    else if (done != n && !cl->rp.upgrade)
        cl->bad = "bytes after the last response";
}

static void fuzz_drain(struct fuzz_client *cl)
{
    char buf[16384];
    ssize_t n;

    while (!cl->eof) {
        n = recv(cl->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            fuzz_parse(cl, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            cl->eof = true;
        return;
    }
}

/* Lets the server read, answer and write; then the client reads (if
 * read) and held exchanges are answered (if release). */
static void fuzz_pump(struct fuzz_client *cl, bool release, bool read)
{
    for (int i = 0; i < 3; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        if (read)
            fuzz_drain(cl);
    }
    if (release && nheld > 0) {
        fuzz_release_held();
        ev_run(loop, EVRUN_NOWAIT);
        if (read)
            fuzz_drain(cl);
    }
}

/* Sends all of p, pumping the loop after each send. A blocked send (the
 * server stopped reading) pumps with release and reading, else a held
 * exchange and a full socket would wait on each other. */
static void fuzz_wake(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

/* Lets the loop wait up to 5 ms: the 2 ms timeouts of the tiny server
 * (request, idle, write stall) fire in between. */
static void fuzz_wait(struct fuzz_client *cl)
{
    ev_timer t;

    ev_timer_init(&t, fuzz_wake, 0.005, 0);
    ev_timer_start(loop, &t);
    ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
    fuzz_drain(cl);
}

static void fuzz_send(struct fuzz_client *cl, const uint8_t *p, size_t n, bool release)
{
    while (n > 0 && !cl->eof) {
        ssize_t k = send(cl->fd, p, n, MSG_NOSIGNAL);
        bool blocked = k == -1 && (errno == EAGAIN || errno == EINTR);

        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (!blocked) {
            return; /* the server closed: the rest is not needed */
        }
        fuzz_pump(cl, release || blocked, !cl->slow || blocked);
    }
}

/* Bytes the client has sent that are still in its own send queue. */
static int fuzz_unsent(const struct fuzz_client *cl)
{
    int n = 0;

    return ioctl(cl->fd, SIOCOUTQNSD, &n) == 0 ? n : 0;
}

static int fuzz_connect(unsigned port, bool slow)
{
    int rcvbuf = 4096;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct linger lg = {1, 0}; /* close with RST: no TIME_WAIT for 100k connections */
    struct pollfd pfd;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1)
        fuzz_die("socket");
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    /* each piece leaves at once: Nagle would hold small pieces back until
     * the server's delayed ACK (up to 40 ms), past the pumps below */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (slow) /* before connect: a small window makes the server queue output */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == -1 && errno != EINPROGRESS)
        fuzz_die("connect to the server on loopback");
    pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
    if (poll(&pfd, 1, 5000) != 1)
        fuzz_die("connect did not complete");
    return fd;
}

/* The server's end of our connection, found by its peer address, gets a
 * small send buffer: with the client's small receive buffer, a few KiB of
 * output then wait in the server, over the tiny server's max_output. */
static void fuzz_shrink_server_sndbuf(int cfd)
{
    struct sockaddr_in me, peer;
    socklen_t len = sizeof(me);
    int sz = 4096;

    if (getsockname(cfd, (struct sockaddr *)&me, &len) == -1)
        return;
    for (int fd = 3; fd < 1024; fd++) {
        len = sizeof(peer);
        if (fd != cfd && getpeername(fd, (struct sockaddr *)&peer, &len) == 0 &&
            peer.sin_family == AF_INET && peer.sin_port == me.sin_port &&
            peer.sin_addr.s_addr == me.sin_addr.s_addr) {
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
            return;
        }
    }
}

/* ---- libFuzzer entry points ------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char err[256];

    (void)argc;
    (void)argv;
    loop = ev_loop_new(EVFLAG_AUTO);
    http_limits_default(&lims[0]);
    lims[1] = (struct http_limits){.max_url = 64,
                                   .max_header_bytes = 512,
                                   .max_headers = 8,
                                   .max_body = 1024,
                                   .max_output = 2048,
                                   .idle_timeout = 60,
                                   .request_timeout = 60,
                                   .max_conns = 4};
    lims[2] = lims[1];
    lims[2].idle_timeout = lims[2].request_timeout = 0.002;
    memset(filler, 'f', sizeof(filler));
    for (int i = 0; i < FUZZ_SERVERS; i++) {
        srv[i] = loop
                     ? http_server_new(loop, &a, &lims[i], fuzz_request, &lims[i], err, sizeof(err))
                     : NULL;
        if (!srv[i])
            fuzz_die(err);
    }
    return 0;
}

static double fuzz_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t fuzz_piece(unsigned split, uint32_t *rng, size_t left)
{
    size_t n;

    if (split == 0)
        return left;
    if (split == 1)
        return 1;
    *rng ^= *rng << 13; /* xorshift32 */
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    n = 1 + *rng % (split == 2 ? 64 : 1024);
    return n < left ? n : left;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_client cl = {0};
    const struct http_counters *ctr;
    unsigned which, split;
    bool hangup;
    uint32_t rng;
    double deadline;

    if (size < 3)
        return 0;
    which = (data[0] & 1) ? ((data[0] & 64) ? 2 : 1) : 0;
    async_mode = data[0] & 2;
    split = (data[0] >> 2) & 3;
    hangup = async_mode && (data[0] & 16);
    cl.slow = data[0] & 32;
    cl.check = !hangup && which != 2;
    script = data[1];
    rng = 0x9e3779b9u ^ data[2];
    data += 3;
    size -= 3;
    nreq = 0;
    cur_lim = &lims[which];
    ctr = http_server_counters(srv[which]);
    cl.fd = fuzz_connect(http_server_port(srv[which]), cl.slow);
    http_parser_init(&cl.rp, HTTP_RESPONSE);
    cl.rp.data = &cl;
    if (cl.slow) {
        ev_run(loop, EVRUN_NOWAIT); /* accept */
        fuzz_shrink_server_sndbuf(cl.fd);
    }
    while (size > 0) {
        size_t n = fuzz_piece(split, &rng, size);

        fuzz_send(&cl, data, n, !hangup);
        data += n;
        size -= n;
    }
    if (which == 2)
        fuzz_wait(&cl);
    /* A half-close aborts held exchanges (http.h): answer them all first.
     * The server parses the next pipelined request from its write watcher,
     * a loop iteration or more after an answer ended, so "nothing held or
     * streaming" is not enough: the client waits for FUZZ_QUIET pumps in a
     * row that dispatched nothing, with all it sent out of its own queue. */
    deadline = fuzz_now() + FUZZ_GUARD;
    for (int round = 0, quiet = 0; !hangup && quiet < FUZZ_QUIET && !cl.eof; round++) {
        unsigned before = nreq;

        fuzz_pump(&cl, true, !cl.slow || round > 0);
        quiet =
            nheld == 0 && streaming == 0 && nreq == before && fuzz_unsent(&cl) == 0 ? quiet + 1 : 0;
        if (fuzz_now() > deadline)
            fuzz_die("held or streamed answers never completed");
    }
    shutdown(cl.fd, SHUT_WR);
    /* After a hang-up, held exchanges are released only once the server
     * had the chance to see the EOF and detach them. */
    deadline = fuzz_now() + FUZZ_GUARD;
    for (int round = 0; !cl.eof || ctr->conns_open > 0; round++) {
        fuzz_pump(&cl, !hangup || round >= 4, true);
        if (fuzz_now() > deadline)
            fuzz_die("the server did not close the connection after the client's EOF");
    }
    fuzz_release_held();      /* held past the hang-up: detached now */
    fuzz_parse(&cl, NULL, 0); /* EOF ends a close-delimited body */
    close(cl.fd);
    if (cl.bad) {
        fprintf(stderr, "fuzz_http: response %zu: %s\n", cl.nresp, cl.bad);
        fuzz_die("the server's output does not parse as HTTP/1.1 responses");
    }
    return 0;
}
