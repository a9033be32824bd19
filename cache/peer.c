/* peer.c - replication connections: sockets, queues, heartbeats,
 * reconnects, sync and object transfer over repl_frame. Design notes in
 * peer.h. */
#include "peer.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "rfc9111.h"
#include "xalloc.h"

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

#define PEER_READ_BUF  65536
#define PEER_MIN_FRESH 1000 /* ms of freshness an object needs to be sent */

enum conn_state {
    CONN_CONNECTING = 0, /* outbound connect() in progress */
    CONN_HELLO,          /* our HELLO queued, waiting for the peer's */
    CONN_READY,          /* both HELLOs exchanged: any frame may flow */
    CONN_STATE_MAX
};

/* An object being received: metadata from OBJECT_BEGIN, body so far. */
struct rx_obj {
    bool active;
    struct rframe_body vb;
    char *primary, *secondary, *vary, *etag;
    uint8_t *headers;
    size_t headers_len;
    uint8_t *body;
    int status;
    int64_t date, age_basis, ttl, stale;
};

struct peer_conn {
    struct peer_set *ps;
    struct peer_conn *next;
    int fd;
    int slot; /* index in ps->slots for outbound, -1 inbound */
    enum conn_state state;
    ev_io rd, wr;
    ev_timer tick;
    ev_tstamp last_rx;
    struct rframe_tx tx;
    struct rframe_decoder *dec;
    uint8_t nonce[RFRAME_NONCE_LEN];
    char name[RFRAME_NAME_MAX + 1];
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    uint64_t next_id;
    struct rx_obj rx;
    const struct cstore_obj **sync; /* objects left to send for a SYNC_REQUEST */
    size_t sync_n, sync_i;
    bool sync_pending; /* answering a SYNC_REQUEST: INVENTORY_END still due */
};

/* One configured peer address. */
struct peer_slot {
    struct peer_set *ps;
    struct sockaddr_in addr;
    struct peer_conn *conn;
    ev_timer retry;
    unsigned failures; /* connects that failed in a row */
};

struct peer_set {
    struct ev_loop *loop;
    struct peer_cfg cfg;
    char name[RFRAME_NAME_MAX + 1];
    struct cstore *store;
    int lfd;
    ev_io lio;
    struct peer_slot *slots;
    struct peer_conn *conns;
    bool synced;
    struct peer_counters ctr;
    uint8_t rbuf[PEER_READ_BUF];
};

static void conn_close(struct peer_conn *c);
static int conn_flush(struct peer_conn *c);
static void slot_connect(struct peer_slot *s);

void peer_cfg_default(struct peer_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen.sin_family = AF_INET;
    cfg->queue_cap = 16u << 20;
    cfg->obj_max = 1u << 20;
    cfg->heartbeat_ms = 1000;
    cfg->reconnect_ms = 5000;
    cfg->dead_ms = 3000;
}

/* ---- output queue ---------------------------------------------------- */

static size_t conn_pending(const struct peer_conn *c)
{
    return c->out_len - c->out_off;
}

/* Room for n more bytes at c->out + c->out_len. */
static uint8_t *conn_reserve(struct peer_conn *c, size_t n)
{
    if (c->out_off == c->out_len) {
        c->out_off = 0;
        c->out_len = 0;
    }
    if (c->out_len + n > c->out_cap && c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    return c->out + c->out_len;
}

/* Commits an encoder's result r (frame length or -errno). */
static int conn_commit(struct peer_conn *c, int r)
{
    if (r < 0)
        return r;
    c->out_len += (size_t)r;
    c->ps->ctr.frames_out++;
    if (c->state != CONN_CONNECTING)
        ev_io_start(c->ps->loop, &c->wr);
    return 0;
}

static int send_empty(struct peer_conn *c, enum rframe_type t)
{
    size_t n = RFRAME_HDR_LEN + RFRAME_TAG_LEN + 16;
    uint8_t *p = conn_reserve(c, n);
    int r = t == RFRAME_HEARTBEAT ? rframe_encode_heartbeat(&c->tx, p, n)
                                  : rframe_encode_sync_request(&c->tx, p, n);
    return conn_commit(c, r);
}

/* Queues OBJECT_BEGIN, the chunks and OBJECT_END of obj. -EMSGSIZE (too
 * big a header block to replicate), -EINVAL (a field the codec refuses) and
 * -EAGAIN (nearly expired) are skips: OBJECT_BEGIN fails before anything is
 * queued. Any other error leaves the stream unusable: close. */
static int send_object(struct peer_conn *c, const struct cstore_obj *obj, uint64_t now_ms)
{
    struct rframe_object o;
    size_t n;
    int r;

    if (obj->expires_at < now_ms + PEER_MIN_FRESH)
        return -EAGAIN;
    memset(&o, 0, sizeof(o));
    o.id = ++c->next_id;
    o.primary = (struct rframe_str){obj->primary, strlen(obj->primary)};
    o.secondary = (struct rframe_str){obj->secondary, strlen(obj->secondary)};
    o.vary = (struct rframe_str){obj->vary, strlen(obj->vary)};
    o.etag = (struct rframe_str){obj->etag, strlen(obj->etag)};
    o.headers = (struct rframe_str){(const char *)obj->headers, obj->headers_len};
    o.status = obj->status;
    o.date = obj->date;
    o.age_basis = c9_age_from_basis(obj->age_basis, (int64_t)(obj->stored_at / 1000),
                                    (int64_t)(now_ms / 1000));
    o.ttl = (int64_t)((obj->expires_at - now_ms) / 1000);
    o.stale = (int64_t)((obj->stale_until - obj->expires_at) / 1000);
    o.body_size = obj->body_len;
    crypto_hash_sha256(o.sha256, obj->body, obj->body_len);

    n = RFRAME_HDR_LEN + RFRAME_BEGIN_MAX + RFRAME_TAG_LEN;
    r = conn_commit(c, rframe_encode_object_begin(&c->tx, &o, conn_reserve(c, n), n));
    if (r < 0)
        return r;
    for (size_t off = 0; off < obj->body_len; off += RFRAME_CHUNK_MAX) {
        struct rframe_chunk ch = {.id = o.id, .offset = off, .data = obj->body + off};
        ch.len = obj->body_len - off < RFRAME_CHUNK_MAX ? obj->body_len - off : RFRAME_CHUNK_MAX;
        n = RFRAME_HDR_LEN + 16 + ch.len + RFRAME_TAG_LEN;
        r = conn_commit(c, rframe_encode_object_chunk(&c->tx, &ch, conn_reserve(c, n), n));
        if (r < 0)
            return r;
    }
    n = RFRAME_HDR_LEN + 8 + RFRAME_TAG_LEN;
    r = conn_commit(c, rframe_encode_object_end(&c->tx, o.id, conn_reserve(c, n), n));
    if (r == 0)
        c->ps->ctr.objects_out++;
    return r;
}

static void sync_release(struct peer_conn *c)
{
    for (size_t i = c->sync_i; i < c->sync_n; i++)
        cstore_unref(c->sync[i]);
    free(c->sync);
    c->sync = NULL;
    c->sync_n = c->sync_i = 0;
}

/* Feeds the objects of a pending sync while the queue is under half the
 * cap, then INVENTORY_END. */
static int sync_pump(struct peer_conn *c)
{
    uint64_t now = clock_mono_ms();
    int r;

    if (!c->sync_pending)
        return 0;
    while (c->sync_i < c->sync_n && conn_pending(c) < c->ps->cfg.queue_cap / 2) {
        const struct cstore_obj *o = c->sync[c->sync_i++];
        r = cstore_obj_indexed(o) ? send_object(c, o, now) : -EAGAIN;
        cstore_unref(o);
        if (r < 0 && r != -EAGAIN && r != -EMSGSIZE && r != -EINVAL)
            return r;
    }
    if (c->sync_i < c->sync_n)
        return 0;
    size_t n = RFRAME_HDR_LEN + 12 + RFRAME_TAG_LEN;
    struct rframe_inventory_end ie = {.pages = 0, .entries = c->sync_n};
    sync_release(c);
    c->sync_pending = false;
    c->ps->ctr.syncs_served++;
    return conn_commit(c, rframe_encode_inventory_end(&c->tx, &ie, conn_reserve(c, n), n));
}

static int sync_collect(const struct cstore_obj *obj, void *arg)
{
    struct peer_conn *c = arg;

    if ((c->sync_n & (c->sync_n + 1)) == 0 || c->sync_n == 0)
        c->sync = xrealloc(c->sync, (c->sync_n * 2 + 2) * sizeof(*c->sync));
    c->sync[c->sync_n++] = cstore_ref(obj);
    return 0;
}

/* Writes what it can. 0, or -errno when the connection failed. */
static int conn_flush(struct peer_conn *c)
{
    for (;;) {
        while (conn_pending(c) > 0) {
            ssize_t w = send(c->fd, c->out + c->out_off, conn_pending(c), MSG_NOSIGNAL);
            if (w == -1) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    ev_io_start(c->ps->loop, &c->wr);
                    return 0;
                }
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            c->out_off += (size_t)w;
        }
        if (!c->sync_pending)
            break;
        int r = sync_pump(c);
        if (r < 0)
            return r;
    }
    ev_io_stop(c->ps->loop, &c->wr);
    return 0;
}

/* ---- receiving ------------------------------------------------------- */

static char *str_dup(struct rframe_str s)
{
    char *p = xmalloc(s.len + 1);
    memcpy(p, s.p, s.len);
    p[s.len] = '\0';
    return p;
}

static void rx_reset(struct rx_obj *rx)
{
    free(rx->primary);
    free(rx->secondary);
    free(rx->vary);
    free(rx->etag);
    free(rx->headers);
    free(rx->body);
    memset(rx, 0, sizeof(*rx));
}

static int reject(struct peer_conn *c, enum peer_reject why, const char *what)
{
    c->ps->ctr.rejected_local[why]++;
    log_warn("peer %s: %s, closing", c->name[0] ? c->name : "?", what);
    return -EPROTO;
}

static int rx_begin(struct peer_conn *c, const struct rframe_frame *f)
{
    struct rframe_object o;
    struct rx_obj *rx = &c->rx;

    if (rframe_decode_object_begin(f, &o, NULL) < 0)
        return reject(c, PEER_REJ_PAYLOAD, "bad OBJECT_BEGIN");
    if (rx->active)
        return reject(c, PEER_REJ_ORDER, "OBJECT_BEGIN inside an object");
    if (o.body_size > c->ps->cfg.obj_max)
        return reject(c, PEER_REJ_OVERSIZE, "object body above obj_max");
    rx->active = true;
    rframe_body_init(&rx->vb, &o);
    rx->primary = str_dup(o.primary);
    rx->secondary = str_dup(o.secondary);
    rx->vary = str_dup(o.vary);
    rx->etag = str_dup(o.etag);
    rx->headers = xmalloc(o.headers.len + 1);
    memcpy(rx->headers, o.headers.p, o.headers.len);
    rx->headers_len = o.headers.len;
    rx->body = xmalloc(o.body_size + 1);
    rx->status = o.status;
    rx->date = o.date;
    rx->age_basis = o.age_basis;
    rx->ttl = o.ttl;
    rx->stale = o.stale;
    return 0;
}

static int rx_chunk(struct peer_conn *c, const struct rframe_frame *f)
{
    struct rframe_chunk ch;

    if (rframe_decode_object_chunk(f, &ch, NULL) < 0)
        return reject(c, PEER_REJ_PAYLOAD, "bad OBJECT_CHUNK");
    if (!c->rx.active)
        return reject(c, PEER_REJ_ORDER, "OBJECT_CHUNK without OBJECT_BEGIN");
    if (rframe_body_add(&c->rx.vb, &ch) < 0)
        return reject(c, PEER_REJ_BODY, "object chunk out of order");
    memcpy(c->rx.body + ch.offset, ch.data, ch.len);
    return 0;
}

static int rx_end(struct peer_conn *c, const struct rframe_frame *f)
{
    struct rx_obj *rx = &c->rx;
    uint64_t id, now = clock_mono_ms();

    if (rframe_decode_object_end(f, &id, NULL) < 0)
        return reject(c, PEER_REJ_PAYLOAD, "bad OBJECT_END");
    if (!rx->active)
        return reject(c, PEER_REJ_ORDER, "OBJECT_END without OBJECT_BEGIN");
    if (rframe_body_end(&rx->vb, id) < 0)
        return reject(c, PEER_REJ_BODY, "object body incomplete or digest mismatch");

    /* The basis is the age when sent; the transfer time is not counted. */
    struct cstore_item it = {
        .primary = rx->primary,
        .secondary = rx->secondary,
        .vary = rx->vary,
        .etag = rx->etag,
        .status = rx->status,
        .headers = rx->headers,
        .headers_len = rx->headers_len,
        .body = rx->body,
        .body_len = rx->vb.size,
        .date = rx->date,
        .age_basis = rx->age_basis,
        .stored_at = now,
        .expires_at = now + (uint64_t)rx->ttl * 1000,
        .origin = false,
    };
    it.stale_until = it.expires_at + (uint64_t)rx->stale * 1000;
    c->ps->ctr.objects_in++;
    if (cstore_insert(c->ps->store, &it, now, NULL) == 0)
        c->ps->ctr.inserted++;
    rx_reset(rx);
    return 0;
}

static int rx_hello(struct peer_conn *c, const struct rframe_frame *f)
{
    struct rframe_hello h;

    if (rframe_decode_hello(f, &h, NULL) < 0)
        return reject(c, PEER_REJ_PAYLOAD, "bad HELLO");
    if (strcmp(h.name, c->ps->name) == 0)
        return reject(c, PEER_REJ_SELF, "HELLO with our own name");
    memcpy(c->name, h.name, sizeof(c->name));
    rframe_tx_set_peer(&c->tx, rframe_decoder_peer_nonce(c->dec));
    c->state = CONN_READY;
    if (c->slot >= 0)
        c->ps->slots[c->slot].failures = 0;
    return send_empty(c, RFRAME_SYNC_REQUEST);
}

static int on_frame(const struct rframe_frame *f, void *arg)
{
    struct peer_conn *c = arg;
    struct rframe_purge pg;
    struct rframe_inventory_end ie;
    char *key;

    c->ps->ctr.frames_in++;
    c->last_rx = ev_now(c->ps->loop);
    if (f->type == RFRAME_HELLO)
        return rx_hello(c, f);
    switch (f->type) {
    case RFRAME_HEARTBEAT:
        return rframe_decode_empty(f, NULL) < 0 ? reject(c, PEER_REJ_PAYLOAD, "bad HEARTBEAT") : 0;
    case RFRAME_OBJECT_BEGIN:
        return rx_begin(c, f);
    case RFRAME_OBJECT_CHUNK:
        return rx_chunk(c, f);
    case RFRAME_OBJECT_END:
        return rx_end(c, f);
    case RFRAME_PURGE:
        if (rframe_decode_purge(f, &pg, NULL) < 0)
            return reject(c, PEER_REJ_PAYLOAD, "bad PURGE");
        key = str_dup(pg.primary);
        /* An invalidation is applied as a removal: the next request refetches. */
        cstore_remove(c->ps->store, key);
        free(key);
        c->ps->ctr.purges_in++;
        return 0;
    case RFRAME_SYNC_REQUEST:
        if (rframe_decode_empty(f, NULL) < 0)
            return reject(c, PEER_REJ_PAYLOAD, "bad SYNC_REQUEST");
        if (c->sync_pending)
            return reject(c, PEER_REJ_ORDER, "SYNC_REQUEST during a sync");
        cstore_each(c->ps->store, clock_mono_ms(), sync_collect, c);
        c->sync_pending = true;
        return sync_pump(c);
    case RFRAME_INVENTORY_END:
        if (rframe_decode_inventory_end(f, &ie, NULL) < 0)
            return reject(c, PEER_REJ_PAYLOAD, "bad INVENTORY_END");
        c->ps->ctr.syncs++;
        c->ps->synced = true;
        return 0;
    default: /* INVENTORY pages: this layer never asks for them */
        return reject(c, PEER_REJ_ORDER, "unexpected frame type");
    }
}

/* ---- connection life ------------------------------------------------- */

/* One recv and the frames in it. Returns 1 when bytes were taken in, 0 when
 * there was nothing to read, -1 when c was closed (and freed). */
static int conn_read(struct peer_conn *c)
{
    struct peer_set *ps = c->ps;
    ssize_t n;
    int r;

    n = recv(c->fd, ps->rbuf, sizeof(ps->rbuf), 0);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        if (n == 0 && rframe_finish(c->dec) == -EPIPE)
            ps->ctr.rejected[RFRAME_R_TRUNCATED]++;
        conn_close(c);
        return -1;
    }
    r = rframe_feed(c->dec, ps->rbuf, (size_t)n, on_frame, c);
    if (r < 0) {
        enum rframe_reason why = rframe_decoder_reason(c->dec);
        if (why != RFRAME_R_CALLBACK && why != RFRAME_R_NONE) {
            ps->ctr.rejected[why]++;
            log_warn("peer %s: frame refused (%s), closing", c->name[0] ? c->name : "?",
                     rframe_reason_name(why));
        }
        conn_close(c);
        return -1;
    }
    if (conn_flush(c) < 0) {
        conn_close(c);
        return -1;
    }
    return 1;
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    (void)conn_read(container_of(w, struct peer_conn, rd));
}

static void send_hello(struct peer_conn *c)
{
    size_t n = RFRAME_HDR_LEN + 82 + RFRAME_TAG_LEN;

    c->state = CONN_HELLO;
    conn_commit(c, rframe_encode_hello(&c->tx, c->ps->name, conn_reserve(c, n), n));
    ev_io_start(c->ps->loop, &c->rd);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    struct peer_conn *c = container_of(w, struct peer_conn, wr);

    (void)loop;
    (void)revents;
    if (c->state == CONN_CONNECTING) {
        if (net_connect_result(c->fd) < 0) {
            c->ps->ctr.connect_failures++;
            conn_close(c);
            return;
        }
        send_hello(c);
    }
    if (conn_flush(c) < 0)
        conn_close(c);
}

static bool conn_stale(const struct peer_conn *c, struct ev_loop *loop)
{
    return ev_now(loop) - c->last_rx > c->ps->cfg.dead_ms / 1000.0;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct peer_conn *c = container_of(w, struct peer_conn, tick);

    (void)revents;
    /* A process resumed after a long stall (SIGSTOP, swap) gets its timers
     * before its reads (epoll_wait returns EINTR on SIGCONT): take in what
     * the peer sent meanwhile before judging it silent. */
    while (c->state != CONN_CONNECTING && ev_is_active(&c->rd) && conn_stale(c, loop)) {
        int r = conn_read(c);

        if (r < 0)
            return;
        if (r == 0)
            break;
    }
    if (conn_stale(c, loop)) {
        if (c->state == CONN_CONNECTING)
            c->ps->ctr.connect_failures++;
        else
            reject(c, PEER_REJ_DEAD, "no frame within the dead interval");
        conn_close(c);
        return;
    }
    if (c->state == CONN_READY && (send_empty(c, RFRAME_HEARTBEAT) < 0 || conn_flush(c) < 0))
        conn_close(c);
}

static struct peer_conn *conn_new(struct peer_set *ps, int fd, int slot)
{
    struct peer_conn *c = xcalloc(1, sizeof(*c));
    double hb = ps->cfg.heartbeat_ms / 1000.0;

    /* An announce is a few small frames: without this, Nagle holds the
     * next one while the peer delays its ACK of the last (up to 40 ms). */
    if (net_tcp_nodelay(fd) == -1)
        log_warn("peer: TCP_NODELAY: %s", strerror(errno));
    c->ps = ps;
    c->fd = fd;
    c->slot = slot;
    rframe_nonce_new(c->nonce);
    rframe_tx_init(&c->tx, ps->cfg.kr, c->nonce);
    c->dec = rframe_decoder_new(ps->cfg.kr, c->nonce);
    ev_io_init(&c->rd, on_read, fd, EV_READ);
    ev_io_init(&c->wr, on_write, fd, EV_WRITE);
    ev_timer_init(&c->tick, on_tick, hb, hb);
    ev_timer_start(ps->loop, &c->tick);
    c->last_rx = ev_now(ps->loop);
    c->next = ps->conns;
    ps->conns = c;
    return c;
}

/* Closes and frees c; an outbound connection schedules its reconnect. */
static void conn_close(struct peer_conn *c)
{
    struct peer_set *ps = c->ps;
    struct peer_conn **pp;

    for (pp = &ps->conns; *pp != c; pp = &(*pp)->next)
        ;
    *pp = c->next;
    ev_io_stop(ps->loop, &c->rd);
    ev_io_stop(ps->loop, &c->wr);
    ev_timer_stop(ps->loop, &c->tick);
    close(c->fd);
    if (c->slot >= 0) {
        struct peer_slot *s = &ps->slots[c->slot];
        if (c->state != CONN_READY)
            s->failures++;
        s->conn = NULL;
        ev_timer_set(&s->retry, ps->cfg.reconnect_ms / 1000.0, 0.);
        ev_timer_start(ps->loop, &s->retry);
    }
    sync_release(c);
    rx_reset(&c->rx);
    rframe_decoder_free(c->dec);
    rframe_tx_done(&c->tx);
    free(c->out);
    free(c);
}

static void slot_connect(struct peer_slot *s)
{
    int fd = net_tcp_connect_start(&s->addr);

    if (fd < 0) {
        s->ps->ctr.connect_failures++;
        s->failures++;
        ev_timer_set(&s->retry, s->ps->cfg.reconnect_ms / 1000.0, 0.);
        ev_timer_start(s->ps->loop, &s->retry);
        return;
    }
    s->conn = conn_new(s->ps, fd, (int)(s - s->ps->slots));
    s->conn->state = CONN_CONNECTING;
    ev_io_start(s->ps->loop, &s->conn->wr);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct peer_slot *s = container_of(w, struct peer_slot, retry);

    (void)loop;
    (void)revents;
    s->ps->ctr.reconnects++;
    slot_connect(s);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct peer_set *ps = container_of(w, struct peer_set, lio);

    (void)loop;
    (void)revents;
    for (;;) {
        int fd = accept4(ps->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        send_hello(conn_new(ps, fd, -1));
    }
}

/* ---- public ---------------------------------------------------------- */

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > RFRAME_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

struct peer_set *peer_set_new(struct ev_loop *loop, const struct peer_cfg *cfg,
                              struct cstore *store, char *err, size_t errlen)
{
    struct peer_set *ps;

    if (!name_ok(cfg->name) || !cfg->kr || cfg->kr->n == 0 || cfg->queue_cap == 0 ||
        cfg->heartbeat_ms == 0) {
        snprintf(err, errlen, "peer: bad name, key ring, queue cap or heartbeat");
        return NULL;
    }
    ps = xcalloc(1, sizeof(*ps));
    ps->loop = loop;
    ps->cfg = *cfg;
    ps->store = store;
    snprintf(ps->name, sizeof(ps->name), "%s", cfg->name);
    ps->cfg.name = ps->name;
    ps->lfd = net_tcp_listen(&cfg->listen, false, 64, err, errlen);
    if (ps->lfd < 0)
        goto out_free;
    ev_io_init(&ps->lio, on_accept, ps->lfd, EV_READ);
    ev_io_start(loop, &ps->lio);
    ps->slots = xcalloc(cfg->n_peers + 1, sizeof(*ps->slots));
    for (size_t i = 0; i < cfg->n_peers; i++) {
        struct peer_slot *s = &ps->slots[i];
        s->ps = ps;
        s->addr = cfg->peers[i];
        ev_timer_init(&s->retry, on_retry, 0., 0.);
        slot_connect(s);
    }
    ps->cfg.peers = NULL;
    return ps;

out_free:
    free(ps);
    return NULL;
}

void peer_set_free(struct peer_set *ps)
{
    if (!ps)
        return;
    while (ps->conns)
        conn_close(ps->conns);
    for (size_t i = 0; i < ps->cfg.n_peers; i++)
        ev_timer_stop(ps->loop, &ps->slots[i].retry);
    ev_io_stop(ps->loop, &ps->lio);
    close(ps->lfd);
    free(ps->slots);
    free(ps);
}

unsigned peer_listen_port(const struct peer_set *ps)
{
    return net_local_port(ps->lfd);
}

/* True when an earlier ready connection in the list goes to the same peer. */
static bool name_seen(const struct peer_set *ps, const struct peer_conn *c)
{
    for (const struct peer_conn *p = ps->conns; p != c; p = p->next)
        if (p->state == CONN_READY && strcmp(p->name, c->name) == 0)
            return true;
    return false;
}

void peer_announce(struct peer_set *ps, const struct cstore_obj *obj)
{
    uint64_t now = clock_mono_ms();
    struct peer_conn *c, *next;

    if (!obj->origin || obj->expires_at < now + PEER_MIN_FRESH)
        return;
    for (c = ps->conns; c; c = next) {
        next = c->next;
        if (c->state != CONN_READY || name_seen(ps, c))
            continue;
        int r = send_object(c, obj, now);
        if (r == 0)
            r = conn_flush(c);
        if (r == 0 && conn_pending(c) > ps->cfg.queue_cap) {
            ps->ctr.drops++;
            log_warn("peer %s: queue above %zu bytes, dropping to resync later", c->name,
                     ps->cfg.queue_cap);
            r = -ENOBUFS;
        }
        if (r < 0 && r != -EMSGSIZE && r != -EINVAL)
            conn_close(c);
    }
}

void peer_purge(struct peer_set *ps, const char *primary)
{
    struct rframe_purge p = {.kind = RFRAME_PURGE_REMOVE, .primary = {primary, strlen(primary)}};
    size_t n = RFRAME_HDR_LEN + 3 + p.primary.len + RFRAME_TAG_LEN;
    struct peer_conn *c, *next;

    for (c = ps->conns; c; c = next) {
        next = c->next;
        if (c->state != CONN_READY || name_seen(ps, c))
            continue;
        int r = conn_commit(c, rframe_encode_purge(&c->tx, &p, conn_reserve(c, n), n));
        if (r == 0) {
            ps->ctr.purges_out++;
            r = conn_flush(c);
        }
        if (r < 0 && r != -EINVAL)
            conn_close(c);
    }
}

bool peer_synced(const struct peer_set *ps)
{
    if (ps->synced || ps->cfg.n_peers == 0)
        return true;
    for (size_t i = 0; i < ps->cfg.n_peers; i++)
        if (ps->slots[i].failures < 2)
            return false;
    return true;
}

size_t peer_ready_count(const struct peer_set *ps)
{
    size_t n = 0;

    for (const struct peer_conn *c = ps->conns; c; c = c->next)
        n += c->state == CONN_READY;
    return n;
}

void peer_counters_get(const struct peer_set *ps, struct peer_counters *out)
{
    *out = ps->ctr;
}
