/* loadgen_conn.c - connections, requests and response parsing of
 * bench/loadgen.c.
 *
 * Design notes:
 * - A connection is one struct with its ev_io and ev_timer embedded; structs
 *   are kept on a free list and reused. Every open connection is on the
 *   `live` list so that the end of the run can close them all.
 * - Responses: a head of at most LG_HEAD_MAX bytes, then a Content-Length
 *   body or, without one, a body up to EOF. Chunked bodies are not spoken
 *   (parse error): fulcrum-cache, nginx and HAProxy in TCP mode send
 *   Content-Length for what the benchmark asks.
 * - The request's timer runs from its start on the connection (a keep-alive
 *   request's wait in the queue is not bounded by it; the run's deadline
 *   bounds everything). In close mode the same timer then bounds the wait
 *   for the server's FIN.
 */
#define _GNU_SOURCE
#include "loadgen_conn.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen_stats.h"

#define LG_HEAD_MAX                   4096
#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

enum lg_state {
    LG_ST_CONNECTING, /* non-blocking connect() in progress */
    LG_ST_SENDING,    /* request partly written */
    LG_ST_HEAD,       /* reading the response head */
    LG_ST_BODY,       /* reading the body */
    LG_ST_DRAIN,      /* close mode: response done, waiting for the server's FIN */
    LG_ST_IDLE,       /* keep-alive: in the idle FIFO */
    LG_ST_MAX
};

struct lg_conn {
    int fd;
    enum lg_state state;
    unsigned target;
    bool busy; /* a request is in flight on it */
    ev_io io;
    ev_timer timer;
    uint64_t sched_rel, seq;
    char out[LG_PATH_MAX + 256];
    size_t out_len, out_off;
    char head[LG_HEAD_MAX + 1];
    size_t head_len;
    int64_t body_left; /* -1: until EOF */
    uint64_t bytes;
    int status;
    bool server_close;
    char node[LG_NAME_MAX + 1];
    struct lg_conn *prev, *next;           /* live list */
    struct lg_conn *idle_prev, *idle_next; /* idle FIFO; next also links the free list */
};

struct lg_pending {
    uint64_t sched_rel, seq;
};

static struct lg_conn *free_list, *live, *idle_head, *idle_tail;
static unsigned nconns; /* keep-alive connections open */
static struct lg_pending *pq;
static size_t pq_cap, pq_head, pq_len;
static unsigned next_target;
static uint64_t rng = 0x9e3779b97f4a7c15u;
static char scratch[65536];

static void on_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void dispatch(void);

static void *lg_alloc(size_t size)
{
    void *p = calloc(1, size);

    if (p == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        abort();
    }
    return p;
}

static void watch(struct lg_conn *c, int events)
{
    ev_io_stop(lg.loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(lg.loop, &c->io);
}

static void idle_remove(struct lg_conn *c)
{
    if (c->idle_prev != NULL)
        c->idle_prev->idle_next = c->idle_next;
    else
        idle_head = c->idle_next;
    if (c->idle_next != NULL)
        c->idle_next->idle_prev = c->idle_prev;
    else
        idle_tail = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
}

static void idle_push(struct lg_conn *c)
{
    c->state = LG_ST_IDLE;
    c->idle_prev = idle_tail;
    c->idle_next = NULL;
    if (idle_tail != NULL)
        idle_tail->idle_next = c;
    else
        idle_head = c;
    idle_tail = c;
}

static void conn_close(struct lg_conn *c)
{
    ev_io_stop(lg.loop, &c->io);
    ev_timer_stop(lg.loop, &c->timer);
    close(c->fd);
    c->fd = -1;
    if (c->state == LG_ST_IDLE)
        idle_remove(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        live = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (lg.keepalive)
        nconns--;
    c->next = free_list;
    free_list = c;
}

/* A new connection to target, connecting; NULL with errno set on failure. */
static struct lg_conn *conn_open(unsigned target)
{
    struct lg_conn *c = free_list;
    int one = 1, fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return NULL;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&lg.targets[target], sizeof(lg.targets[target])) == -1 &&
        errno != EINPROGRESS) {
        int e = errno;

        close(fd);
        errno = e;
        return NULL;
    }
    if (c != NULL)
        free_list = c->next;
    else
        c = lg_alloc(sizeof(*c));
    memset(c, 0, offsetof(struct lg_conn, out));
    c->fd = fd;
    c->target = target;
    c->state = LG_ST_CONNECTING;
    c->prev = NULL;
    c->next = live;
    c->idle_prev = c->idle_next = NULL;
    if (live != NULL)
        live->prev = c;
    live = c;
    ev_io_init(&c->io, on_io, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    if (lg.keepalive)
        nconns++;
    return c;
}

static void restart_slot(int revents, void *arg)
{
    uint64_t rel = lg_now_ns() - lg.t0;

    (void)revents;
    if (!lg.scheduling)
        return;
    if (rel >= lg.end_rel) {
        lg.scheduling = false;
        lg_maybe_done();
        return;
    }
    lg_start(rel, lg.next++, (unsigned)(uintptr_t)arg);
}

/* One request is over (its result already counted). */
static void req_end(unsigned target)
{
    lg.inflight--;
    if (lg.rate == 0 && lg.scheduling) /* closed loop: the slot's next, from the loop */
        ev_once(lg.loop, -1, 0, 0.0, restart_slot, (void *)(uintptr_t)target);
    lg_maybe_done();
}

static void fail(struct lg_conn *c, enum lg_err e)
{
    unsigned target = c->target;

    lg_stats_err(lg.stats, c->sched_rel, e, c->node[0] != '\0' ? c->node : NULL);
    c->busy = false;
    conn_close(c);
    req_end(target);
    if (lg.keepalive)
        dispatch();
}

/* Appends src to the request buffer with every "{n}" replaced by seq. */
static void build_request(struct lg_conn *c)
{
    unsigned pick = 0, i = 0;
    const char *t;
    char path[LG_PATH_MAX + 32], num[24];
    size_t len = 0;
    int n;

    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    if (lg.npaths > 1)
        for (pick = (unsigned)(rng % lg.path_wsum); pick >= lg.paths[i].weight; i++)
            pick -= lg.paths[i].weight;
    snprintf(num, sizeof(num), "%" PRIu64, c->seq);
    for (t = lg.paths[i].tmpl; *t != '\0' && len + sizeof(num) < sizeof(path);) {
        if (strncmp(t, "{n}", 3) == 0) {
            len += (size_t)snprintf(path + len, sizeof(path) - len, "%s", num);
            t += 3;
        } else {
            path[len++] = *t++;
        }
    }
    path[len] = '\0';
    n = snprintf(c->out, sizeof(c->out),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fulcrum-loadgen\r\n%s\r\n", path,
                 lg.host, lg.keepalive ? "" : "Connection: close\r\n");
    c->out_len = n > 0 && (size_t)n < sizeof(c->out) ? (size_t)n : sizeof(c->out) - 1;
    c->out_off = 0;
}

static void do_send(struct lg_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n >= 0) {
            c->out_off += (size_t)n;
        } else if (errno == EAGAIN) {
            c->state = LG_ST_SENDING;
            watch(c, EV_WRITE);
            return;
        } else if (errno != EINTR) {
            fail(c, LG_ERR_IO);
            return;
        }
    }
    c->state = LG_ST_HEAD;
    watch(c, EV_READ);
}

/* Puts request (sched_rel, seq) on c, which is connecting or idle. */
static void conn_begin(struct lg_conn *c, uint64_t sched_rel, uint64_t seq)
{
    bool connecting = c->state == LG_ST_CONNECTING;

    if (c->state == LG_ST_IDLE)
        idle_remove(c);
    c->busy = true;
    c->sched_rel = sched_rel;
    c->seq = seq;
    c->head_len = 0;
    c->body_left = 0;
    c->bytes = 0;
    c->status = 0;
    c->server_close = false;
    c->node[0] = '\0';
    build_request(c);
    ev_timer_set(&c->timer, lg.timeout_s, 0);
    ev_timer_start(lg.loop, &c->timer);
    if (connecting) {
        ev_io_start(lg.loop, &c->io);
        return;
    }
    do_send(c);
}

/* The complete response on c. */
static void complete(struct lg_conn *c, bool eof)
{
    uint64_t lat = lg_now_ns() - (lg.t0 + c->sched_rel);
    unsigned target = c->target;

    if (c->status >= 200 && c->status <= 299)
        lg_stats_ok(lg.stats, c->sched_rel, lat, c->node, c->bytes);
    else
        lg_stats_err(lg.stats, c->sched_rel, LG_ERR_STATUS, c->node);
    c->busy = false;
    ev_timer_stop(lg.loop, &c->timer);
    if (eof || (lg.keepalive && c->server_close)) {
        conn_close(c);
    } else if (!lg.keepalive) {
        c->state = LG_ST_DRAIN;
        ev_timer_set(&c->timer, lg.timeout_s, 0);
        ev_timer_start(lg.loop, &c->timer);
    } else {
        idle_push(c);
    }
    req_end(target);
    if (lg.keepalive)
        dispatch();
}

static bool name_is(const char *line, size_t nlen, const char *name)
{
    return nlen == strlen(name) && strncasecmp(line, name, nlen) == 0;
}

/* One "Name: value" line of the head. Returns false on a bad value. */
static bool parse_header(struct lg_conn *c, const char *line, const char *end)
{
    const char *colon = memchr(line, ':', (size_t)(end - line));
    const char *v, *from;
    char *e;
    size_t nlen;

    if (colon == NULL)
        return false;
    nlen = (size_t)(colon - line);
    for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
        ;
    if (name_is(line, nlen, "content-length")) {
        errno = 0;
        c->body_left = (int64_t)strtoll(v, &e, 10);
        return errno == 0 && e == end && c->body_left >= 0;
    }
    if (name_is(line, nlen, "transfer-encoding"))
        return false; /* chunked is not spoken here */
    if (name_is(line, nlen, "connection"))
        c->server_close = c->server_close || strncasecmp(v, "close", 5) == 0;
    if (name_is(line, nlen, "x-cache")) {
        from = memmem(v, (size_t)(end - v), " from ", 6);
        if (from != NULL)
            snprintf(c->node, sizeof(c->node), "%.*s", (int)(end - from - 6), from + 6);
    }
    return true;
}

/* Parses the head (hlen bytes, ending in CRLF CRLF). */
static bool parse_head(struct lg_conn *c, size_t hlen)
{
    const char *p = c->head, *end = c->head + hlen - 2, *eol;

    long status;
    char *e;

    if (hlen < 16 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return false;
    status = strtol(p + 9, &e, 10);
    if (e != p + 12 || status < 100 || status > 999)
        return false;
    c->status = (int)status;
    c->body_left = -1;
    for (p = strstr(p, "\r\n") + 2; p < end; p = eol + 2) {
        eol = strstr(p, "\r\n");
        if (!parse_header(c, p, eol))
            return false;
    }
    if (c->status == 204 || c->status == 304 || c->status < 200)
        c->body_left = 0;
    return true;
}

/* Takes n body bytes; returns false when they are more than announced. */
static bool take_body(struct lg_conn *c, size_t n)
{
    c->bytes += n;
    if (c->body_left < 0)
        return true;
    if ((int64_t)n > c->body_left)
        return false;
    c->body_left -= (int64_t)n;
    return true;
}

/* New bytes in the head buffer: parses it once it is whole. Returns true
 * when the response is complete. */
static int on_head_bytes(struct lg_conn *c, size_t old)
{
    char *end;
    size_t hlen;

    c->head[c->head_len] = '\0';
    end = strstr(c->head + (old > 3 ? old - 3 : 0), "\r\n\r\n");
    if (end == NULL)
        return c->head_len == LG_HEAD_MAX ? -1 : 0;
    hlen = (size_t)(end - c->head) + 4;
    if (!parse_head(c, hlen) || !take_body(c, c->head_len - hlen))
        return -1;
    c->state = LG_ST_BODY;
    return c->body_left == 0 ? 1 : 0;
}

static void do_read(struct lg_conn *c)
{
    for (;;) {
        bool head = c->state == LG_ST_HEAD;
        char *buf = head ? c->head + c->head_len : scratch;
        size_t cap = head ? LG_HEAD_MAX - c->head_len : sizeof(scratch);
        ssize_t n = read(c->fd, buf, cap);
        int done = 0;

        if (n > 0 && (c->state == LG_ST_DRAIN || c->state == LG_ST_IDLE)) {
            if (c->state == LG_ST_IDLE) { /* unasked-for bytes: drop the connection */
                conn_close(c);
                return;
            }
            continue;
        }
        if (n > 0 && head) {
            c->head_len += (size_t)n;
            done = on_head_bytes(c, c->head_len - (size_t)n);
        } else if (n > 0) {
            done = take_body(c, (size_t)n) ? c->body_left == 0 : -1;
        } else if (n == 0) {
            if (c->state == LG_ST_BODY && c->body_left < 0)
                complete(c, true);
            else if (c->busy)
                fail(c, LG_ERR_IO);
            else
                conn_close(c);
            return;
        } else if (errno == EAGAIN) {
            return;
        } else if (errno != EINTR) {
            if (c->busy)
                fail(c, LG_ERR_IO);
            else
                conn_close(c);
            return;
        }
        if (done < 0) {
            fail(c, LG_ERR_PARSE);
            return;
        }
        if (done > 0) {
            complete(c, false);
            if (lg.keepalive)
                return; /* c may carry a new request now */
        }
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lg_conn *c = container_of(w, struct lg_conn, io);
    int err = 0;
    socklen_t len = sizeof(err);

    (void)loop;
    if (c->state == LG_ST_CONNECTING) {
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0) {
            fail(c, LG_ERR_CONNECT);
            return;
        }
        do_send(c);
    } else if (c->state == LG_ST_SENDING && (revents & EV_WRITE)) {
        do_send(c);
    } else if (revents & EV_READ) {
        do_read(c);
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lg_conn *c = container_of(w, struct lg_conn, timer);

    (void)loop;
    (void)revents;
    if (c->busy)
        fail(c, LG_ERR_TIMEOUT);
    else
        conn_close(c);
}

static void pq_push(uint64_t sched_rel, uint64_t seq)
{
    if (pq_len == pq_cap) {
        size_t cap = pq_cap ? pq_cap * 2 : 1024;
        struct lg_pending *n = lg_alloc(cap * sizeof(*n));

        for (size_t i = 0; i < pq_len; i++)
            n[i] = pq[(pq_head + i) % pq_cap];
        free(pq);
        pq = n;
        pq_cap = cap;
        pq_head = 0;
    }
    pq[(pq_head + pq_len) % pq_cap] = (struct lg_pending){sched_rel, seq};
    pq_len++;
}

static struct lg_pending pq_pop(void)
{
    struct lg_pending p = pq[pq_head];

    pq_head = (pq_head + 1) % pq_cap;
    pq_len--;
    return p;
}

/* Keep-alive: gives queued requests to idle connections, or new ones while
 * the pool is not full. */
static void dispatch(void)
{
    while (pq_len > 0) {
        struct lg_conn *c = idle_head;
        struct lg_pending p;
        unsigned target = next_target++ % lg.ntargets;

        if (c == NULL && nconns >= lg.conns)
            return;
        p = pq_pop();
        if (c == NULL && (c = conn_open(target)) == NULL) {
            lg_stats_err(lg.stats, p.sched_rel, LG_ERR_CONNECT, NULL);
            req_end(target);
            continue;
        }
        conn_begin(c, p.sched_rel, p.seq);
    }
}

void lg_start(uint64_t sched_rel, uint64_t seq, unsigned target)
{
    uint64_t now = lg_now_ns(), due = lg.t0 + sched_rel;
    struct lg_conn *c;

    lg_stats_started(lg.stats, sched_rel, now > due ? now - due : 0);
    if (lg.inflight >= lg.max_inflight) {
        lg_stats_err(lg.stats, sched_rel, LG_ERR_DROPPED, NULL);
        return;
    }
    lg.inflight++;
    if (lg.keepalive) {
        pq_push(sched_rel, seq);
        dispatch();
        return;
    }
    c = conn_open(target);
    if (c == NULL) {
        lg_stats_err(lg.stats, sched_rel, LG_ERR_CONNECT, NULL);
        req_end(target);
        return;
    }
    conn_begin(c, sched_rel, seq);
}

void lg_maybe_done(void)
{
    if (!lg.scheduling && lg.inflight == 0)
        ev_break(lg.loop, EVBREAK_ALL);
}

void lg_abort_all(void)
{
    lg.scheduling = false;
    while (pq_len > 0) {
        struct lg_pending p = pq_pop();

        lg_stats_err(lg.stats, p.sched_rel, LG_ERR_TIMEOUT, NULL);
        lg.inflight--;
    }
    while (live != NULL) {
        struct lg_conn *c = live;

        if (c->busy) {
            lg_stats_err(lg.stats, c->sched_rel, LG_ERR_TIMEOUT, NULL);
            lg.inflight--;
        }
        c->busy = false;
        conn_close(c);
    }
}

void lg_conn_free_all(void)
{
    while (free_list != NULL) {
        struct lg_conn *c = free_list;

        free_list = c->next;
        free(c);
    }
    free(pq);
    pq = NULL;
    pq_cap = pq_len = pq_head = 0;
}
