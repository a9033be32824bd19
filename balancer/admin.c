/* admin.c - the admin port: a small HTTP/1.1 server on the main thread's
 * libev loop (the contract is in admin.h, the API reference in
 * docs/admin.md).
 *
 * Design notes.
 *
 * - One request per connection, then Connection: close. The request is read
 *   into a fixed ADMIN_REQ_MAX buffer inside the connection and parsed as it
 *   arrives (libhttp-parser); a request that fills the buffer before it is
 *   complete gets 431. Every byte a peer controls is capped: the request by
 *   the buffer, the number of connections by ADMIN_CONNS_MAX (more are
 *   accepted and closed at once, and counted), the time by an idle timer
 *   restarted with ev_timer_again on every read or write that makes progress
 *   plus a deadline of two idle periods for the whole request (a client
 *   trickling a byte at a time must not hold a slot for hours), and the
 *   lingering read after the response by ADMIN_LINGER_MAX bytes and one
 *   idle period.
 * - A response is a header block and a heap body that grows as needed up to
 *   ADMIN_RESP_MAX (with 4096 nodes status.json is about 1.5 MB, /metrics
 *   2.7 MB). Both go out with sendmsg(MSG_NOSIGNAL) when the socket is
 *   writable, so a slow reader costs memory, never a blocked loop.
 * - After the response the write side is shut down and input is read and
 *   discarded until EOF (a "lingering close", as nginx does): closing a
 *   socket with unread input sends RST, which can destroy the response (a
 *   431 to a client still sending) before the client reads it.
 * - The views are built from one snapshot per request (struct admin_snap):
 *   the monitor's rows and every balancer node with its atomics read once,
 *   with name indexes so a cluster of 4096 nodes costs O(n log n).
 *   status.json takes the monitor's own JSON (mon_table_format_json) and adds
 *   the balancer's fields, so the two schemas cannot drift apart.
 *
 * Thread: everything runs on the thread of the loop given to lb_admin_new,
 * which must be the thread that owns the node registry and the monitor.
 */
#include "admin.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <http_parser.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "xalloc.h"

#define ADMIN_REQ_MAX      8192        /* request line, headers and body */
#define ADMIN_RESP_MAX     (16u << 20) /* largest response body */
#define ADMIN_CONNS_MAX    64          /* connections open at once */
#define ADMIN_BACKLOG      64
#define ADMIN_ACCEPT_BURST 64    /* accepts per wakeup */
#define ADMIN_IDLE_S       5.0   /* default idle timeout */
#define ADMIN_PAUSE_S      0.5   /* accept paused this long after EMFILE */
#define ADMIN_LINGER_MAX   65536 /* bytes discarded after the response */
#define ADMIN_NAME_MAX     63    /* a node name in a URL */
#define ADMIN_HEAD_MAX     512
#define CELL_MAX           96 /* one cell of a text table */
#define TCOLS_MAX          10

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- growable response body ---- */

struct abuf {
    char *p;
    size_t len, cap;
    bool toobig; /* something did not fit under ADMIN_RESP_MAX: answer 500 */
};

/* Makes room for `more` bytes plus a NUL; false (and toobig) past the cap. */
static bool abuf_room(struct abuf *b, size_t more)
{
    size_t need, cap;

    if (b->toobig)
        return false;
    if (more > ADMIN_RESP_MAX || b->len + more + 1 > ADMIN_RESP_MAX) {
        b->toobig = true;
        return false;
    }
    need = b->len + more + 1;
    if (need <= b->cap)
        return true;
    cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > ADMIN_RESP_MAX)
        cap = ADMIN_RESP_MAX;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
    return true;
}

static void abuf_put(struct abuf *b, const char *s, size_t n)
{
    if (!abuf_room(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void abuf_puts(struct abuf *b, const char *s)
{
    abuf_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void abuf_printf(struct abuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!abuf_room(b, 128))
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        if (!abuf_room(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static void abuf_reset(struct abuf *b)
{
    b->len = 0;
    b->toobig = false;
    if (b->p)
        b->p[0] = '\0';
}

static void abuf_free(struct abuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- server and connections ---- */

/* A connection's life: one request in, one response out, then close. */
enum admin_conn_state {
    ADMIN_READ = 0, /* reading and parsing the request */
    ADMIN_WRITE,    /* response built: writing it as the socket allows */
    ADMIN_LINGER,   /* response sent and write side shut: discarding input to EOF */
    ADMIN_STATE_MAX
};

struct admin_conn {
    struct lb_admin *a;
    struct admin_conn *prev, *next;
    int fd;
    enum admin_conn_state state;
    ev_io io;
    ev_timer idle;
    http_parser parser;
    char peer[NET_ADDRSTRLEN];
    size_t url_off, url_len; /* the URL within req */
    bool url_seen, headers_done, complete;
    bool head_only;  /* HEAD: headers without the body */
    ev_tstamp start; /* accepted: the request is due by start + 2 idle periods */
    size_t req_len;
    size_t lingered; /* bytes discarded in ADMIN_LINGER */
    char head[ADMIN_HEAD_MAX];
    size_t head_len;
    struct abuf body;
    size_t sent; /* of head + body */
    char req[ADMIN_REQ_MAX];
};

struct lb_admin {
    struct ev_loop *loop;
    struct lb_admin_ctx ctx;
    double idle_s;
    int fd;
    ev_io lio;
    ev_timer pause; /* accept resumes after running out of descriptors */
    struct admin_conn *conns;
    unsigned nconns;
    uint64_t refused; /* connections over ADMIN_CONNS_MAX, closed at once */
    struct log_rl rl_accept;
};

static void conn_close(struct admin_conn *c)
{
    struct lb_admin *a = c->a;

    ev_io_stop(a->loop, &c->io);
    ev_timer_stop(a->loop, &c->idle);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    abuf_free(&c->body);
    free(c);
}

/* Switches the io watcher to `events` (it must be stopped to be changed). */
static void conn_watch(struct admin_conn *c, int events)
{
    ev_io_stop(c->a->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(c->a->loop, &c->io);
}

static const char *http_reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Internal Server Error";
    }
}

static void conn_write(struct admin_conn *c);

/* Sends the body in c->body with this status; allow: the Allow header's
 * value for a 405, else NULL. */
static void conn_respond(struct admin_conn *c, int code, const char *ctype, const char *allow)
{
    size_t clen;
    int n;

    if (c->body.toobig) {
        abuf_reset(&c->body);
        abuf_puts(&c->body, "{\"error\":\"response too large\"}\n");
        code = 500;
        ctype = "application/json";
        allow = NULL;
        log_warn("admin: response to %s over %u bytes", c->peer, ADMIN_RESP_MAX);
    }
    clen = c->body.len;
    if (c->head_only)
        c->body.len = 0; /* Content-Length stays the one GET would send */
    n = snprintf(c->head, sizeof(c->head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 code, http_reason(code), ctype, clen, allow ? "Allow: " : "", allow ? allow : "",
                 allow ? "\r\n" : "");
    c->head_len = n > 0 && (size_t)n < sizeof(c->head) ? (size_t)n : 0;
    c->sent = 0;
    c->state = ADMIN_WRITE;
    conn_watch(c, EV_WRITE);
    conn_write(c);
}

/* An error response: a one-line JSON object naming what went wrong. */
static void conn_error(struct admin_conn *c, int code, const char *allow, const char *msg)
{
    abuf_reset(&c->body);
    abuf_printf(&c->body, "{\"error\":\"%s\"}\n", msg);
    conn_respond(c, code, "application/json", allow);
}

/* ---- the snapshot every view is built from ---- */

struct admin_node {
    const struct lb_node *n;
    const struct mon_node *row; /* NULL: static, gone, or no monitor */
    enum mon_state state;
    bool ejected;
    char addr[NET_ADDRSTRLEN];
    unsigned lb_weight, active;
    uint64_t conns, bytes_in, bytes_out, fails, ejections;
};

struct admin_snap {
    uint64_t now_ms, wall_ms, round;
    struct mon_node *rows; /* the monitor's, rank order */
    size_t nrows;
    const struct mon_node **rows_by_name;
    struct admin_node *nodes; /* every balancer node, by index */
    const struct admin_node **nodes_by_name;
    size_t n;
};

static int cmp_row_ptr(const void *x, const void *y)
{
    return strcmp((*(const struct mon_node *const *)x)->name,
                  (*(const struct mon_node *const *)y)->name);
}

static int cmp_row_key(const void *key, const void *y)
{
    return strcmp(key, (*(const struct mon_node *const *)y)->name);
}

static int cmp_node_ptr(const void *x, const void *y)
{
    return strcmp((*(const struct admin_node *const *)x)->n->name,
                  (*(const struct admin_node *const *)y)->n->name);
}

static int cmp_node_key(const void *key, const void *y)
{
    return strcmp(key, (*(const struct admin_node *const *)y)->n->name);
}

static const struct mon_node *snap_row(const struct admin_snap *s, const char *name)
{
    const struct mon_node *const *r;

    if (!s->nrows)
        return NULL;
    r = bsearch(name, s->rows_by_name, s->nrows, sizeof(*r), cmp_row_key);
    return r ? *r : NULL;
}

static const struct admin_node *snap_node(const struct admin_snap *s, const char *name)
{
    const struct admin_node *const *v;

    if (!s->n)
        return NULL;
    v = bsearch(name, s->nodes_by_name, s->n, sizeof(*v), cmp_node_key);
    return v ? *v : NULL;
}

/* The state shown for a node: the monitor's when it has a row, else what
 * the registry knows; a drained node that is not down shows draining. */
static enum mon_state node_state(const struct lb_node *n, const struct mon_node *row)
{
    enum mon_state st;

    if (row)
        st = row->state;
    else if (n->src == LB_SRC_STATIC)
        st = MON_UP;
    else if (n->gone || n->mon_state < 0 || n->mon_state >= MON_STATE_MAX)
        st = MON_DOWN;
    else
        st = (enum mon_state)n->mon_state;
    if (n->drain && st != MON_DOWN)
        st = MON_DRAINING;
    return st;
}

static void snap_take(const struct lb_admin *a, struct admin_snap *s)
{
    const struct lb_admin_ctx *ctx = &a->ctx;

    memset(s, 0, sizeof(*s));
    s->now_ms = clock_mono_ms();
    s->wall_ms = clock_wall_ms();
    if (ctx->mon) {
        size_t max = mon_count(ctx->mon);

        s->round = mon_stats(ctx->mon)->rounds;
        s->rows = xcalloc(max, sizeof(*s->rows));
        s->nrows = mon_snapshot(ctx->mon, s->rows, max);
        s->rows_by_name = xcalloc(s->nrows, sizeof(*s->rows_by_name));
        for (size_t i = 0; i < s->nrows; i++)
            s->rows_by_name[i] = &s->rows[i];
        qsort(s->rows_by_name, s->nrows, sizeof(*s->rows_by_name), cmp_row_ptr);
    }
    s->n = lb_nodes_count(ctx->nodes);
    s->nodes = xcalloc(s->n, sizeof(*s->nodes));
    s->nodes_by_name = xcalloc(s->n, sizeof(*s->nodes_by_name));
    for (size_t i = 0; i < s->n; i++) {
        struct admin_node *v = &s->nodes[i];
        struct lb_node *n = lb_nodes_at(ctx->nodes, i);

        v->n = n;
        v->row = snap_row(s, n->name);
        v->state = node_state(n, v->row);
        v->ejected = atomic_load_explicit(&n->ejected_until_ms, memory_order_relaxed) > s->now_ms;
        net_ntop(&n->addr, v->addr);
        v->lb_weight = atomic_load_explicit(&n->weight, memory_order_relaxed);
        v->active = atomic_load_explicit(&n->active, memory_order_relaxed);
        v->conns = atomic_load_explicit(&n->conns_total, memory_order_relaxed);
        v->bytes_in = atomic_load_explicit(&n->bytes_in, memory_order_relaxed);
        v->bytes_out = atomic_load_explicit(&n->bytes_out, memory_order_relaxed);
        v->fails = atomic_load_explicit(&n->connect_failures, memory_order_relaxed);
        v->ejections = atomic_load_explicit(&n->ejections, memory_order_relaxed);
        s->nodes_by_name[i] = v;
    }
    qsort(s->nodes_by_name, s->n, sizeof(*s->nodes_by_name), cmp_node_ptr);
}

static void snap_done(struct admin_snap *s)
{
    free(s->rows);
    free(s->rows_by_name);
    free(s->nodes);
    free(s->nodes_by_name);
    memset(s, 0, sizeof(*s));
}

static uint64_t ctr_get(_Atomic uint64_t *x)
{
    return atomic_load_explicit(x, memory_order_relaxed);
}

static double uptime_s(const struct lb_admin *a, const struct admin_snap *s)
{
    return s->now_ms > a->ctx.start_ms ? (double)(s->now_ms - a->ctx.start_ms) / 1000.0 : 0.0;
}

/* ---- GET /status: aligned text ---- */

static void iso_utc(uint64_t wall_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;

    if (!gmtime_r(&secs, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "-");
}

/* Fills the cells of node i (false: skip the row). */
typedef bool (*admin_cells_fn)(const struct lb_admin *a, const struct admin_snap *s, size_t i,
                               char cell[][CELL_MAX]);

/* One aligned table: the title row, then the rows `fn` accepts. The first
 * nleft columns (names, addresses, states) are left-aligned, the numbers
 * after them right-aligned; no line ends in spaces. */
static void text_table(struct abuf *b, const struct lb_admin *a, const struct admin_snap *s,
                       const char *const *titles, unsigned ncols, unsigned nleft, admin_cells_fn fn)
{
    char cell[TCOLS_MAX][CELL_MAX];
    int width[TCOLS_MAX];

    for (unsigned k = 0; k < ncols; k++)
        width[k] = (int)strlen(titles[k]);
    for (size_t i = 0; i < s->n; i++) {
        if (!fn(a, s, i, cell))
            continue;
        for (unsigned k = 0; k < ncols; k++) {
            int w = (int)strlen(cell[k]);

            if (w > width[k])
                width[k] = w;
        }
    }
    for (size_t i = 0; i <= s->n; i++) {
        if (i == 0) {
            for (unsigned k = 0; k < ncols; k++)
                snprintf(cell[k], CELL_MAX, "%s", titles[k]);
        } else if (!fn(a, s, i - 1, cell)) {
            continue;
        }
        for (unsigned k = 0; k < ncols; k++) {
            const char *sep = k ? "  " : "";

            if (k >= nleft)
                abuf_printf(b, "%s%*s", sep, width[k], cell[k]);
            else if (k + 1 < ncols)
                abuf_printf(b, "%s%-*s", sep, width[k], cell[k]);
            else
                abuf_printf(b, "%s%s", sep, cell[k]);
        }
        abuf_puts(b, "\n");
    }
}

/* Static nodes (every node when there is no monitor): NAME ADDR STATE WEIGHT. */
static bool static_cells(const struct lb_admin *a, const struct admin_snap *s, size_t i,
                         char cell[][CELL_MAX])
{
    const struct admin_node *v = &s->nodes[i];
    const char *st = mon_state_name(v->state);

    if (a->ctx.mon && v->n->src != LB_SRC_STATIC)
        return false;
    if (v->ejected && v->state != MON_DRAINING && v->state != MON_DOWN)
        st = "ejected";
    snprintf(cell[0], CELL_MAX, "%s", v->n->name);
    snprintf(cell[1], CELL_MAX, "%s", v->addr);
    snprintf(cell[2], CELL_MAX, "%s", st);
    snprintf(cell[3], CELL_MAX, "%u", v->n->metric_weight);
    return true;
}

static bool balancer_cells(const struct lb_admin *a, const struct admin_snap *s, size_t i,
                           char cell[][CELL_MAX])
{
    const struct admin_node *v = &s->nodes[i];

    snprintf(cell[0], CELL_MAX, "%s", v->n->name);
    snprintf(cell[1], CELL_MAX, "%u", v->active);
    snprintf(cell[2], CELL_MAX, "%" PRIu64, v->conns);
    snprintf(cell[3], CELL_MAX, "%" PRIu64, v->bytes_in);
    snprintf(cell[4], CELL_MAX, "%" PRIu64, v->bytes_out);
    snprintf(cell[5], CELL_MAX, "%" PRIu64, v->fails);
    snprintf(cell[6], CELL_MAX, "%" PRIu64, v->ejections);
    snprintf(cell[7], CELL_MAX, "%u", v->lb_weight);
    return true;
}

/* Appends the monitor's text table of the snapshot's rows. */
static void mon_text(struct abuf *b, const struct admin_snap *s)
{
    size_t room;
    int n;

    if (!abuf_room(b, 4096))
        return;
    room = b->cap - b->len;
    n = mon_table_format_text(s->rows, s->nrows, s->round, s->now_ms, s->wall_ms, b->p + b->len,
                              room);
    if (n < 0) {
        abuf_printf(b, "(monitor table: %s)\n", strerror(-n));
        return;
    }
    if ((size_t)n >= room) {
        if (!abuf_room(b, (size_t)n))
            return;
        mon_table_format_text(s->rows, s->nrows, s->round, s->now_ms, s->wall_ms, b->p + b->len,
                              b->cap - b->len);
    }
    b->len += (size_t)n;
}

static void page_status_text(struct admin_conn *c, const struct admin_snap *s)
{
    static const char *const st_titles[] = {"NAME", "ADDR", "STATE", "WEIGHT"};
    static const char *const lb_titles[] = {"NODE",      "ACTIVE", "CONNS",   "BYTES_IN",
                                            "BYTES_OUT", "FAILS",  "EJECTED", "LB_WEIGHT"};
    const struct lb_admin *a = c->a;
    const struct lb_admin_ctx *ctx = &a->ctx;
    struct abuf *b = &c->body;
    size_t nstatic = 0, up = 0;
    char ts[32];

    for (size_t i = 0; i < s->n; i++) {
        if (ctx->mon && s->nodes[i].n->src != LB_SRC_STATIC)
            continue;
        nstatic++;
        if (s->nodes[i].state == MON_UP && !s->nodes[i].ejected)
            up++;
    }
    iso_utc(s->wall_ms, ts, sizeof(ts));
    if (ctx->mon)
        mon_text(b, s);
    if (!ctx->mon || nstatic) {
        abuf_printf(b, "%s  %s  nodes %zu  up %zu\n", ctx->mon ? "static" : "nodes", ts, nstatic,
                    up);
        text_table(b, a, s, st_titles, 4, 3, static_cells);
        abuf_puts(b, "\n");
    }
    abuf_printf(
        b, "balancer  policy %s  workers %u  active %u/%u  accepted %" PRIu64 "  uptime %.0fs\n",
        ctx->policy ? ctx->policy : "-", ctx->workers,
        atomic_load_explicit(&ctx->ctr->active, memory_order_relaxed), ctx->maxconn,
        ctr_get(&ctx->ctr->accepted), uptime_s(a, s));
    text_table(b, a, s, lb_titles, 8, 1, balancer_cells);
    conn_respond(c, 200, "text/plain; charset=utf-8", NULL);
}

/* ---- GET /status.json ---- */

static void json_oom(void)
{
    fprintf(stderr, "fulcrum: out of memory building the admin JSON\n");
    abort();
}

static cJSON *json_check(cJSON *j)
{
    if (!j)
        json_oom();
    return j;
}

static void json_u64(cJSON *o, const char *key, uint64_t v)
{
    json_check(cJSON_AddNumberToObject(o, key, (double)v));
}

static void json_null(cJSON *o, const char *key)
{
    json_check(cJSON_AddNullToObject(o, key));
}

/* The monitor's JSON of the snapshot's rows, parsed back. */
static cJSON *mon_json(const struct admin_snap *s)
{
    size_t len = s->nrows * 320 + 256;
    cJSON *root = NULL;
    char *buf;
    int n;

    for (int tries = 0; tries < 2 && !root; tries++) {
        buf = xmalloc(len);
        n = mon_table_format_json(s->rows, s->nrows, s->round, s->now_ms, s->wall_ms, buf, len);
        if (n >= 0 && (size_t)n < len)
            root = cJSON_ParseWithLength(buf, (size_t)n);
        else if (n >= 0)
            len = (size_t)n + 1;
        free(buf);
        if (n < 0)
            break;
    }
    return root;
}

/* The balancer's fields of one node. */
static void json_lb_fields(cJSON *o, const struct admin_node *v)
{
    if (!v) {
        static const char *const keys[] = {"active",    "conns_total",      "bytes_in",
                                           "bytes_out", "connect_failures", "ejections",
                                           "lb_weight"};

        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            json_null(o, keys[k]);
        json_check(cJSON_AddStringToObject(o, "source", "agent"));
        json_check(cJSON_AddBoolToObject(o, "ejected", false));
        json_check(cJSON_AddBoolToObject(o, "gone", false));
        return;
    }
    json_u64(o, "active", v->active);
    json_u64(o, "conns_total", v->conns);
    json_u64(o, "bytes_in", v->bytes_in);
    json_u64(o, "bytes_out", v->bytes_out);
    json_u64(o, "connect_failures", v->fails);
    json_u64(o, "ejections", v->ejections);
    json_u64(o, "lb_weight", v->lb_weight);
    json_check(
        cJSON_AddStringToObject(o, "source", v->n->src == LB_SRC_STATIC ? "static" : "agent"));
    json_check(cJSON_AddBoolToObject(o, "ejected", v->ejected));
    json_check(cJSON_AddBoolToObject(o, "gone", v->n->gone));
}

/* A balancer node the monitor has no row for: the monitor's keys, its
 * metrics null. */
static void json_node_norow(cJSON *arr, const struct admin_node *v)
{
    static const char *const nulls[] = {"cpu_idle", "ram_free", "ram_total", "load1",
                                        "service",  "rtt_ms",   "age_s"};
    cJSON *o = json_check(cJSON_CreateObject());

    json_check(cJSON_AddStringToObject(o, "name", v->n->name));
    json_check(cJSON_AddStringToObject(o, "addr", v->addr));
    json_check(cJSON_AddStringToObject(o, "state", mon_state_name(v->state)));
    for (size_t k = 0; k < sizeof(nulls) / sizeof(nulls[0]); k++)
        json_null(o, nulls[k]);
    json_u64(o, "weight", v->n->gone ? 0 : v->n->metric_weight);
    json_null(o, "rank");
    json_lb_fields(o, v);
    json_check(cJSON_AddBoolToObject(o, "drain", v->n->drain));
    if (!cJSON_AddItemToArray(arr, o))
        json_oom();
}

static cJSON *json_balancer(const struct lb_admin *a, const struct admin_snap *s)
{
    struct lb_counters *ctr = a->ctx.ctr;
    cJSON *o = json_check(cJSON_CreateObject());
    cJSON *ended = json_check(cJSON_CreateObject());

    json_u64(o, "accepted", ctr_get(&ctr->accepted));
    json_u64(o, "refused_maxconn", ctr_get(&ctr->refused_maxconn));
    json_u64(o, "refused_emfile", ctr_get(&ctr->refused_emfile));
    json_u64(o, "retries", ctr_get(&ctr->retries));
    json_u64(o, "panic_picks", ctr_get(&ctr->panic_picks));
    json_u64(o, "active", atomic_load_explicit(&ctr->active, memory_order_relaxed));
    json_u64(o, "bytes_in", ctr_get(&ctr->bytes_in));
    json_u64(o, "bytes_out", ctr_get(&ctr->bytes_out));
    json_u64(o, "pipes", atomic_load_explicit(&ctr->pipes, memory_order_relaxed));
    for (int e = 0; e < LB_END_MAX; e++)
        json_u64(ended, lb_end_name((enum lb_end)e), ctr_get(&ctr->ended[e]));
    if (!cJSON_AddItemToObject(o, "ended", ended))
        json_oom();
    json_check(cJSON_AddStringToObject(o, "policy", a->ctx.policy ? a->ctx.policy : ""));
    json_u64(o, "workers", a->ctx.workers);
    json_u64(o, "maxconn", a->ctx.maxconn);
    json_check(cJSON_AddNumberToObject(o, "uptime_s", round(uptime_s(a, s) * 10.0) / 10.0));
    json_u64(o, "admin_refused", a->refused);
    return o;
}

/* mon_stats as a JSON object, through the monitor's own formatter. */
static cJSON *json_monitor(const struct lb_admin *a)
{
    char buf[2048];
    int n;

    if (!a->ctx.mon)
        return json_check(cJSON_CreateNull());
    buf[0] = '{';
    n = mon_format_stats(mon_stats(a->ctx.mon), true, buf + 1, sizeof(buf) - 2);
    if (n < 0 || (size_t)n >= sizeof(buf) - 2)
        return json_check(cJSON_CreateNull());
    buf[n + 1] = '}';
    return json_check(cJSON_ParseWithLength(buf, (size_t)n + 2));
}

static void page_status_json(struct admin_conn *c, const struct admin_snap *s)
{
    const struct lb_admin *a = c->a;
    cJSON *root = mon_json(s), *arr, *o;
    bool *seen;
    char *text;

    if (!root) {
        conn_error(c, 500, NULL, "monitor table did not format");
        return;
    }
    arr = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    seen = xcalloc(s->n, sizeof(*seen));
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        const struct admin_node *v = cJSON_IsString(name) ? snap_node(s, name->valuestring) : NULL;
        const struct mon_node *row = cJSON_IsString(name) ? snap_row(s, name->valuestring) : NULL;

        if (v)
            seen[v - s->nodes] = true;
        json_lb_fields(o, v);
        json_check(cJSON_AddBoolToObject(o, "drain", v ? v->n->drain : row && row->drain));
    }
    for (size_t i = 0; i < s->n; i++)
        if (!seen[i])
            json_node_norow(arr, &s->nodes[i]);
    free(seen);
    if (!cJSON_AddItemToObject(root, "balancer", json_balancer(a, s)) ||
        !cJSON_AddItemToObject(root, "monitor", json_monitor(a)))
        json_oom();
    text = cJSON_PrintUnformatted(root);
    if (!text)
        json_oom();
    abuf_puts(&c->body, text);
    abuf_puts(&c->body, "\n");
    cJSON_free(text);
    cJSON_Delete(root);
    conn_respond(c, 200, "application/json", NULL);
}

/* ---- GET /metrics: Prometheus text format 0.0.4 ---- */

/* A label value with \, " and newline escaped, as the format requires. */
static void prom_label(struct abuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            abuf_puts(b, "\\\\");
        else if (*s == '"')
            abuf_puts(b, "\\\"");
        else if (*s == '\n')
            abuf_puts(b, "\\n");
        else
            abuf_put(b, s, 1);
    }
}

static void prom_family(struct abuf *b, const char *name, const char *type, const char *help)
{
    abuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample `name{label="value"} v` (no labels when label is NULL). */
static void prom_sample(struct abuf *b, const char *name, const char *label, const char *value,
                        uint64_t v)
{
    abuf_puts(b, name);
    if (label) {
        abuf_printf(b, "{%s=\"", label);
        prom_label(b, value);
        abuf_puts(b, "\"}");
    }
    abuf_printf(b, " %" PRIu64 "\n", v);
}

static void prom_global(struct abuf *b, const char *name, const char *type, const char *help,
                        uint64_t v)
{
    prom_family(b, name, type, help);
    prom_sample(b, name, NULL, NULL, v);
}

enum node_metric {
    NM_ACTIVE = 0,
    NM_CONNS,
    NM_BYTES_IN,
    NM_BYTES_OUT,
    NM_FAILS,
    NM_EJECTIONS,
    NM_MAX
};

static const struct {
    const char *name, *type, *help;
} node_metrics[NM_MAX] = {
    [NM_ACTIVE] = {"fulcrum_node_active_connections", "gauge",
                   "Client connections open to the node now."},
    [NM_CONNS] = {"fulcrum_node_connections_total", "counter",
                  "Client connections sent to the node."},
    [NM_BYTES_IN] = {"fulcrum_node_bytes_in_total", "counter",
                     "Bytes forwarded from clients to the node."},
    [NM_BYTES_OUT] = {"fulcrum_node_bytes_out_total", "counter",
                      "Bytes forwarded from the node to clients."},
    [NM_FAILS] = {"fulcrum_node_connect_failures_total", "counter",
                  "Connects to the node that failed or timed out."},
    [NM_EJECTIONS] = {"fulcrum_node_ejections_total", "counter",
                      "Times the node was ejected after consecutive connect failures."},
};

static uint64_t node_metric_value(const struct admin_node *v, enum node_metric m)
{
    switch (m) {
    case NM_ACTIVE:
        return v->active;
    case NM_CONNS:
        return v->conns;
    case NM_BYTES_IN:
        return v->bytes_in;
    case NM_BYTES_OUT:
        return v->bytes_out;
    case NM_FAILS:
        return v->fails;
    default:
        return v->ejections;
    }
}

static void prom_nodes(struct abuf *b, const struct admin_snap *s)
{
    prom_family(b, "fulcrum_node_weight", "gauge",
                "Weight the balancer picks the node by (0: not picked).");
    for (size_t i = 0; i < s->n; i++) {
        abuf_puts(b, "fulcrum_node_weight{node=\"");
        prom_label(b, s->nodes[i].n->name);
        abuf_puts(b, "\",addr=\"");
        prom_label(b, s->nodes[i].addr);
        abuf_printf(b, "\"} %u\n", s->nodes[i].lb_weight);
    }
    prom_family(b, "fulcrum_node_state", "gauge", "1 for the node's current state, else 0.");
    for (size_t i = 0; i < s->n; i++) {
        for (int st = 0; st < MON_STATE_MAX; st++) {
            abuf_puts(b, "fulcrum_node_state{node=\"");
            prom_label(b, s->nodes[i].n->name);
            abuf_printf(b, "\",state=\"%s\"} %d\n", mon_state_name((enum mon_state)st),
                        s->nodes[i].state == (enum mon_state)st);
        }
    }
    prom_family(b, "fulcrum_node_rtt_seconds", "gauge",
                "Smoothed probe round-trip time to the node's agent.");
    for (size_t i = 0; i < s->n; i++) {
        const struct mon_node *r = s->nodes[i].row;

        if (!r || !r->has_rtt || !isfinite(r->srtt_ms))
            continue;
        abuf_puts(b, "fulcrum_node_rtt_seconds{node=\"");
        prom_label(b, s->nodes[i].n->name);
        abuf_printf(b, "\"} %.6f\n", r->srtt_ms / 1000.0);
    }
    for (int m = 0; m < NM_MAX; m++) {
        prom_family(b, node_metrics[m].name, node_metrics[m].type, node_metrics[m].help);
        for (size_t i = 0; i < s->n; i++)
            prom_sample(b, node_metrics[m].name, "node", s->nodes[i].n->name,
                        node_metric_value(&s->nodes[i], (enum node_metric)m));
    }
}

static void prom_balancer(struct abuf *b, const struct lb_admin *a, const struct admin_snap *s)
{
    struct lb_counters *ctr = a->ctx.ctr;

    prom_global(b, "fulcrum_accepted_total", "counter", "Client connections accepted.",
                ctr_get(&ctr->accepted));
    prom_family(b, "fulcrum_refused_total", "counter",
                "Client connections closed at once: maxconn reached or out of descriptors.");
    prom_sample(b, "fulcrum_refused_total", "reason", "maxconn", ctr_get(&ctr->refused_maxconn));
    prom_sample(b, "fulcrum_refused_total", "reason", "emfile", ctr_get(&ctr->refused_emfile));
    prom_global(b, "fulcrum_retries_total", "counter", "Connects retried on another node.",
                ctr_get(&ctr->retries));
    prom_global(b, "fulcrum_panic_picks_total", "counter",
                "Nodes chosen in panic mode (too few eligible nodes).", ctr_get(&ctr->panic_picks));
    prom_family(b, "fulcrum_connections_ended_total", "counter",
                "Client connections ended, by how they ended.");
    for (int e = 0; e < LB_END_MAX; e++)
        prom_sample(b, "fulcrum_connections_ended_total", "reason", lb_end_name((enum lb_end)e),
                    ctr_get(&ctr->ended[e]));
    prom_global(b, "fulcrum_active_connections", "gauge", "Client connections open now.",
                atomic_load_explicit(&ctr->active, memory_order_relaxed));
    prom_global(b, "fulcrum_max_connections", "gauge",
                "Client connections allowed at once (--maxconn).", a->ctx.maxconn);
    prom_global(b, "fulcrum_bytes_in_total", "counter", "Bytes forwarded from clients to nodes.",
                ctr_get(&ctr->bytes_in));
    prom_global(b, "fulcrum_bytes_out_total", "counter", "Bytes forwarded from nodes to clients.",
                ctr_get(&ctr->bytes_out));
    prom_global(b, "fulcrum_pipes", "gauge", "Pipes held for splice, pooled and in use.",
                atomic_load_explicit(&ctr->pipes, memory_order_relaxed));
    prom_family(b, "fulcrum_uptime_seconds", "gauge", "Seconds since the balancer started.");
    abuf_printf(b, "fulcrum_uptime_seconds %.3f\n", uptime_s(a, s));
    prom_global(b, "fulcrum_admin_refused_total", "counter",
                "Admin connections closed at once: too many open.", a->refused);
}

static void prom_monitor(struct abuf *b, const struct lb_admin *a)
{
    const struct mon_stats *st;

    if (!a->ctx.mon)
        return;
    st = mon_stats(a->ctx.mon);
    prom_global(b, "fulcrum_monitor_nodes", "gauge", "Rows in the monitor's status table.",
                mon_count(a->ctx.mon));
    prom_global(b, "fulcrum_monitor_rounds_total", "counter", "Probe rounds completed.",
                st->rounds);
    prom_global(b, "fulcrum_monitor_probes_sent_total", "counter", "Probe requests sent.",
                st->probes_sent);
    prom_global(b, "fulcrum_monitor_send_errors_total", "counter", "Probe requests not sent.",
                st->send_errors);
    prom_global(b, "fulcrum_monitor_received_total", "counter", "Datagrams received.", st->rx);
    prom_global(b, "fulcrum_monitor_responses_total", "counter", "Probe responses accepted.",
                st->responses);
    prom_global(b, "fulcrum_monitor_hellos_total", "counter", "Agent hellos accepted.", st->hellos);
    prom_global(b, "fulcrum_monitor_byes_total", "counter", "Agent byes accepted.", st->byes);
    prom_global(b, "fulcrum_monitor_ignored_total", "counter",
                "Probe requests heard (ours or another monitor's) and ignored.", st->ignored);
    prom_family(b, "fulcrum_monitor_dropped_total", "counter",
                "Datagrams dropped by the monitor, by reason.");
    for (int e = 1; e < PROTO_E_MAX; e++)
        prom_sample(b, "fulcrum_monitor_dropped_total", "reason", proto_err_name((enum proto_err)e),
                    st->dropped[e]);
    prom_sample(b, "fulcrum_monitor_dropped_total", "reason", "unknown_nonce", st->unknown_nonce);
    prom_sample(b, "fulcrum_monitor_dropped_total", "reason", "late", st->late);
    prom_sample(b, "fulcrum_monitor_dropped_total", "reason", "replayed", st->replayed);
    prom_sample(b, "fulcrum_monitor_dropped_total", "reason", "stale", st->stale);
    prom_sample(b, "fulcrum_monitor_dropped_total", "reason", "unknown_node", st->unknown_node);
    prom_sample(b, "fulcrum_monitor_dropped_total", "reason", "table_full", st->table_full);
}

static void page_metrics(struct admin_conn *c, const struct admin_snap *s)
{
    prom_nodes(&c->body, s);
    prom_balancer(&c->body, c->a, s);
    prom_monitor(&c->body, c->a);
    conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL);
}

/* ---- GET /: HTML ---- */

static void html_text(struct abuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            abuf_puts(b, "&amp;");
            break;
        case '<':
            abuf_puts(b, "&lt;");
            break;
        case '>':
            abuf_puts(b, "&gt;");
            break;
        case '"':
            abuf_puts(b, "&quot;");
            break;
        default:
            abuf_put(b, s, 1);
        }
    }
}

static void html_num(struct abuf *b, double x, int decimals)
{
    if (isfinite(x))
        abuf_printf(b, "<td>%.*f</td>", decimals, x);
    else
        abuf_puts(b, "<td>-</td>");
}

static void html_row(struct abuf *b, const struct admin_node *v)
{
    const struct mon_node *r = v->row;
    const char *st = v->ejected && v->state == MON_UP ? "ejected" : mon_state_name(v->state);

    abuf_printf(b, "<tr class=\"%s\"><td class=\"l\">", st);
    html_text(b, v->n->name);
    abuf_printf(b, "</td><td class=\"l\">%s</td><td class=\"l\">%s</td><td class=\"l\">%s</td>",
                v->addr, v->n->src == LB_SRC_STATIC ? "static" : "agent", st);
    html_num(b, r ? r->m.cpu_idle : NAN, 1);
    html_num(b, r && r->m.ram_total > 0 ? 100.0 * r->m.ram_free / r->m.ram_total : NAN, 1);
    html_num(b, r && r->has_rtt ? r->srtt_ms : NAN, 2);
    abuf_printf(b,
                "<td>%u</td><td>%u</td><td>%u</td><td>%" PRIu64 "</td><td>%" PRIu64
                "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>\n",
                r ? r->eff_weight : v->n->metric_weight, v->lb_weight, v->active, v->conns,
                v->bytes_in, v->bytes_out, v->fails, v->ejections);
}

static void page_html(struct admin_conn *c, const struct admin_snap *s)
{
    const struct lb_admin_ctx *ctx = &c->a->ctx;
    struct abuf *b = &c->body;
    char ts[32];

    iso_utc(s->wall_ms, ts, sizeof(ts));
    abuf_puts(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                 "<meta http-equiv=\"refresh\" content=\"2\"><title>fulcrum</title>\n<style>"
                 "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
                 "td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}"
                 ".l{text-align:left}tr.suspect{background:#fff3c4}tr.down{background:#f8d0d0}"
                 "tr.draining{background:#dde6f8}tr.ejected{background:#f8e0c0}"
                 "</style></head><body>\n<h1>fulcrum</h1>\n<p>");
    abuf_printf(b, "%s &middot; round %" PRIu64 " &middot; policy ", ts, s->round);
    html_text(b, ctx->policy ? ctx->policy : "-");
    abuf_printf(b,
                " &middot; workers %u &middot; active %u/%u &middot; accepted %" PRIu64
                " &middot; uptime %.0f s</p>\n",
                ctx->workers, atomic_load_explicit(&ctx->ctr->active, memory_order_relaxed),
                ctx->maxconn, ctr_get(&ctx->ctr->accepted), uptime_s(c->a, s));
    abuf_puts(b, "<table>\n<tr><th class=\"l\">node</th><th class=\"l\">addr</th>"
                 "<th class=\"l\">source</th><th class=\"l\">state</th><th>cpu idle %</th>"
                 "<th>ram free %</th><th>rtt ms</th><th>weight</th><th>lb weight</th>"
                 "<th>active</th><th>conns</th><th>bytes in</th><th>bytes out</th>"
                 "<th>fails</th><th>ejections</th></tr>\n");
    for (size_t i = 0; i < s->n; i++)
        html_row(b, s->nodes_by_name[i]);
    abuf_puts(b, "</table>\n<p><a href=\"/status\">text</a> &middot; "
                 "<a href=\"/status.json\">json</a> &middot; "
                 "<a href=\"/metrics\">metrics</a></p>\n</body></html>\n");
    conn_respond(c, 200, "text/html; charset=utf-8", NULL);
}

/* ---- POST /nodes/NAME/drain|undrain ---- */

/* Node names in URLs: agent names ([A-Za-z0-9._-]) and static "HOST:PORT". */
static bool admin_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > ADMIN_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

static void do_drain(struct admin_conn *c, const char *name, bool drain)
{
    const struct lb_admin_ctx *ctx = &c->a->ctx;
    int r = lb_nodes_set_drain(ctx->nodes, name, drain, clock_mono_ms());
    int rm = -ENOENT;

    /* A node the monitor knows but the registry has not synced yet is
     * drained in the monitor: the next round carries the flag over. */
    if (ctx->mon) {
        rm = mon_set_drain(ctx->mon, name, drain);
        if (rm < 0 && rm != -ENOENT)
            log_warn("admin: monitor refused to %s %s: %s", drain ? "drain" : "undrain", name,
                     strerror(-rm));
    }
    if (r == -ENOENT && rm == -ENOENT) {
        conn_error(c, 404, NULL, "unknown node");
        return;
    }
    if (r < 0 && r != -ENOENT) {
        log_warn("admin: %s %s: %s", drain ? "drain" : "undrain", name, strerror(-r));
        conn_error(c, 500, NULL, "drain failed");
        return;
    }
    log_info("admin: %s node=%s from=%s", drain ? "drain" : "undrain", name, c->peer);
    abuf_printf(&c->body, "{\"node\":\"%s\",\"drain\":%s}\n", name, drain ? "true" : "false");
    conn_respond(c, 200, "application/json", NULL);
}

/* "/nodes/NAME/drain" and "/nodes/NAME/undrain": true when path has this
 * shape (name not yet validated). */
static bool route_node(const char *p, size_t len, const char **name, size_t *nlen, bool *drain)
{
    static const char prefix[] = "/nodes/";
    const char *rest, *slash;
    size_t rlen;

    if (len <= sizeof(prefix) - 1 || memcmp(p, prefix, sizeof(prefix) - 1))
        return false;
    rest = p + sizeof(prefix) - 1;
    rlen = len - (sizeof(prefix) - 1);
    slash = memchr(rest, '/', rlen);
    if (!slash)
        return false;
    *name = rest;
    *nlen = (size_t)(slash - rest);
    rlen -= *nlen + 1;
    if (rlen == 5 && !memcmp(slash + 1, "drain", 5))
        *drain = true;
    else if (rlen == 7 && !memcmp(slash + 1, "undrain", 7))
        *drain = false;
    else
        return false;
    return true;
}

/* ---- request dispatch ---- */

typedef void (*admin_page_fn)(struct admin_conn *c, const struct admin_snap *s);

static const struct {
    const char *path;
    admin_page_fn fn;
} admin_pages[] = {
    {"/", page_html},
    {"/status", page_status_text},
    {"/status.json", page_status_json},
    {"/metrics", page_metrics},
};

static void conn_dispatch(struct admin_conn *c)
{
    unsigned method = c->parser.method;
    struct http_parser_url u;
    const char *p, *nm;
    size_t plen, nlen;
    bool drain;

    http_parser_url_init(&u);
    if (!c->url_seen ||
        http_parser_parse_url(c->req + c->url_off, c->url_len, method == HTTP_CONNECT, &u) ||
        !(u.field_set & (1u << UF_PATH))) {
        conn_error(c, 400, NULL, "bad request target");
        return;
    }
    if (c->parser.http_major != 1) {
        conn_error(c, 505, NULL, "only HTTP/1.x is served");
        return;
    }
    p = c->req + c->url_off + u.field_data[UF_PATH].off;
    plen = u.field_data[UF_PATH].len;
    log_debug("admin: %s %.*s from %s", http_method_str(method), (int)plen, p, c->peer);
    for (size_t i = 0; i < sizeof(admin_pages) / sizeof(admin_pages[0]); i++) {
        struct admin_snap s;

        if (strlen(admin_pages[i].path) != plen || memcmp(admin_pages[i].path, p, plen))
            continue;
        if (method != HTTP_GET && method != HTTP_HEAD) {
            conn_error(c, 405, "GET, HEAD", "method not allowed");
            return;
        }
        c->head_only = method == HTTP_HEAD;
        snap_take(c->a, &s);
        admin_pages[i].fn(c, &s);
        snap_done(&s);
        return;
    }
    if (route_node(p, plen, &nm, &nlen, &drain)) {
        char name[ADMIN_NAME_MAX + 1];

        if (method != HTTP_POST) {
            conn_error(c, 405, "POST", "method not allowed");
            return;
        }
        if (!admin_name_valid(nm, nlen)) {
            conn_error(c, 400, NULL, "bad node name");
            return;
        }
        memcpy(name, nm, nlen);
        name[nlen] = '\0';
        do_drain(c, name, drain);
        return;
    }
    conn_error(c, 404, NULL, "not found");
}

/* ---- parsing ---- */

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct admin_conn *c = hp->data;

    /* Pieces of the URL are contiguous: they all come from c->req. */
    if (!c->url_seen) {
        c->url_seen = true;
        c->url_off = (size_t)(at - c->req);
    }
    c->url_len += len;
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct admin_conn *c = hp->data;

    c->headers_done = true;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct admin_conn *c = hp->data;

    /* One request per connection: stop here, whatever follows. */
    c->complete = true;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings admin_parser_settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void conn_read(struct admin_conn *c)
{
    for (;;) {
        size_t room = sizeof(c->req) - c->req_len;
        ssize_t n = read(c->fd, c->req + c->req_len, room);

        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c);
            return;
        }
        if (n == 0) { /* EOF before a whole request: nobody to answer */
            conn_close(c);
            return;
        }
        if (ev_now(c->a->loop) - c->start > 2 * c->a->idle_s) {
            log_debug("admin: %s too slow to send its request: closed", c->peer);
            conn_close(c);
            return;
        }
        ev_timer_again(c->a->loop, &c->idle);
        http_parser_execute(&c->parser, &admin_parser_settings, c->req + c->req_len, (size_t)n);
        c->req_len += (size_t)n;
        if (c->complete) {
            conn_dispatch(c);
            return;
        }
        if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
            conn_error(c, 400, NULL, "malformed request");
            return;
        }
        if (c->req_len == sizeof(c->req)) {
            if (c->headers_done)
                conn_error(c, 413, NULL, "request body too large");
            else
                conn_error(c, 431, NULL, "request line and headers over 8 KiB");
            return;
        }
    }
}

static void conn_linger(struct admin_conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->req, sizeof(c->req));

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0 || c->lingered + (size_t)n > ADMIN_LINGER_MAX) {
            conn_close(c);
            return;
        }
        c->lingered += (size_t)n; /* the idle timer is not restarted: one period */
    }
}

static void conn_write(struct admin_conn *c)
{
    size_t total = c->head_len + c->body.len;

    while (c->sent < total) {
        struct iovec iov[2];
        struct msghdr mh = {.msg_iov = iov};
        ssize_t n;

        if (c->sent < c->head_len) {
            iov[0].iov_base = c->head + c->sent;
            iov[0].iov_len = c->head_len - c->sent;
            iov[1].iov_base = c->body.p;
            iov[1].iov_len = c->body.len;
            mh.msg_iovlen = c->body.len ? 2 : 1;
        } else {
            iov[0].iov_base = c->body.p + (c->sent - c->head_len);
            iov[0].iov_len = total - c->sent;
            mh.msg_iovlen = 1;
        }
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c);
            return; /* the write watcher calls again */
        }
        c->sent += (size_t)n;
        ev_timer_again(c->a->loop, &c->idle);
    }
    abuf_free(&c->body);
    shutdown(c->fd, SHUT_WR);
    c->state = ADMIN_LINGER;
    conn_watch(c, EV_READ);
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_conn *c = container_of(w, struct admin_conn, io);

    switch (c->state) {
    case ADMIN_READ:
        conn_read(c);
        break;
    case ADMIN_WRITE:
        conn_write(c);
        break;
    default:
        conn_linger(c);
        break;
    }
}

static void conn_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct admin_conn *c = container_of(w, struct admin_conn, idle);

    log_debug("admin: %s idle in state %d: closed", c->peer, (int)c->state);
    conn_close(c);
}

static void conn_new(struct lb_admin *a, int fd, const struct sockaddr_in *peer)
{
    struct admin_conn *c = xcalloc(1, sizeof(*c));

    c->a = a;
    c->fd = fd;
    c->state = ADMIN_READ;
    c->start = ev_now(a->loop);
    net_ntop(peer, c->peer);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    ev_timer_init(&c->idle, conn_idle_cb, 0.0, a->idle_s);
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    ev_io_start(a->loop, &c->io);
    ev_timer_again(a->loop, &c->idle);
}

/* ---- listening ---- */

static void admin_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lb_admin *a = container_of(w, struct lb_admin, pause);

    ev_io_start(loop, &a->lio);
}

static void admin_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lb_admin *a = container_of(w, struct lb_admin, lio);

    for (int i = 0; i < ADMIN_ACCEPT_BURST; i++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        unsigned suppressed;
        int fd = accept4(a->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory: the socket stays readable, so
             * stop listening for a moment instead of spinning. */
            if (log_rl_allow(&a->rl_accept, clock_mono_ms(), &suppressed))
                log_warn("admin: accept: %s (%u similar suppressed)", strerror(errno), suppressed);
            ev_io_stop(loop, &a->lio);
            ev_timer_set(&a->pause, ADMIN_PAUSE_S, 0.0);
            ev_timer_start(loop, &a->pause);
            return;
        }
        if (a->nconns >= ADMIN_CONNS_MAX) {
            close(fd);
            a->refused++;
            continue;
        }
        conn_new(a, fd, &peer);
    }
}

struct lb_admin *lb_admin_new(struct ev_loop *loop, const struct sockaddr_in *addr,
                              const struct lb_admin_ctx *ctx, char *err, size_t errlen)
{
    struct lb_admin *a = xcalloc(1, sizeof(*a));
    char why[200];

    a->loop = loop;
    a->ctx = *ctx;
    a->idle_s = ctx->idle_timeout > 0 ? ctx->idle_timeout : ADMIN_IDLE_S;
    a->rl_accept = (struct log_rl)LOG_RL_INIT(5, 10000);
    a->fd = net_tcp_listen(addr, false, ADMIN_BACKLOG, why, sizeof(why));
    if (a->fd < 0) {
        snprintf(err, errlen, "admin port: %s", why);
        goto out_free;
    }
    ev_io_init(&a->lio, admin_accept_cb, a->fd, EV_READ);
    ev_timer_init(&a->pause, admin_pause_cb, ADMIN_PAUSE_S, 0.0);
    ev_io_start(loop, &a->lio);
    return a;
out_free:
    free(a);
    return NULL;
}

unsigned lb_admin_port(const struct lb_admin *a)
{
    return net_local_port(a->fd);
}

void lb_admin_free(struct lb_admin *a)
{
    if (!a)
        return;
    while (a->conns)
        conn_close(a->conns);
    ev_io_stop(a->loop, &a->lio);
    ev_timer_stop(a->loop, &a->pause);
    close(a->fd);
    free(a);
}
