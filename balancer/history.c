/* history.c - per-node rings of recent samples for the status page
 * (contract in history.h, the JSON in docs/admin.md).
 *
 * Design notes.
 *
 * - One clock ring of len tick times, and per node a ring of len samples
 *   with a head and a count. Every held node gets a sample in every tick
 *   (one that misses a tick is dropped), so a node's samples are always the
 *   last `count` ticks: no per-sample time is stored.
 * - Nodes are found by name in a uthash; the hash is the only index, and
 *   history.json sorts a pointer array by name when it is asked for.
 * - The sampler reads the registry's atomics (relaxed, as the admin pages
 *   do) and the monitor's smoothed RTT from one mon_snapshot per tick,
 *   sorted by name; the row buffer is kept between ticks.
 * - history.json is written by hand, not with cJSON: 4096 nodes of 300
 *   samples would be over a million cJSON items. Past LB_HISTORY_JSON_CELLS
 *   node-samples only the most recent ticks are sent, so the answer stays
 *   around 5 MB whatever the cluster's size.
 */
#include "history.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "admin_view.h"
#include "clock.h"
#include "mon.h"
#include "nodes.h"
#include "xalloc.h"

/* uthash allocates through xmalloc, which aborts instead of returning NULL. */
#define uthash_malloc(sz)  xmalloc(sz)
#define uthash_free(p, sz) free(p)
#include <uthash.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct hist_node {
    char name[PROTO_NAME_MAX + 1];
    uint64_t tick; /* the last tick with a sample */
    unsigned head; /* where the next sample goes */
    unsigned count;
    struct lb_history_sample *ring; /* len samples */
    UT_hash_handle hh;
};

struct lb_history {
    unsigned len, max_nodes;
    uint64_t tick;     /* ticks opened so far; the open or last one is tick */
    unsigned nticks;   /* held in the clock, at most len */
    uint64_t *wall_ms; /* clock ring: tick t at (t - 1) % len */
    struct hist_node *by_name;
    size_t nnodes;
    uint64_t dropped;
    /* the sampler */
    struct ev_loop *loop;
    ev_timer timer;
    struct lb_nodes *reg;
    struct mon *mon;
    struct mon_node *rows; /* the monitor's snapshot, kept between ticks */
    const struct mon_node **rows_by_name;
    size_t rows_cap;
};

struct lb_history *lb_history_new(unsigned len, unsigned max_nodes)
{
    struct lb_history *h = xcalloc(1, sizeof(*h));

    h->len = len < 2 ? 2 : len;
    h->max_nodes = max_nodes;
    h->wall_ms = xcalloc(h->len, sizeof(*h->wall_ms));
    return h;
}

static void node_drop(struct lb_history *h, struct hist_node *n)
{
    HASH_DEL(h->by_name, n);
    h->nnodes--;
    free(n->ring);
    free(n);
}

void lb_history_free(struct lb_history *h)
{
    struct hist_node *n, *tmp;

    if (!h)
        return;
    lb_history_stop(h);
    HASH_ITER(hh, h->by_name, n, tmp)
    node_drop(h, n);
    free(h->rows);
    free(h->rows_by_name);
    free(h->wall_ms);
    free(h);
}

/* ---- recording ---- */

void lb_history_tick_begin(struct lb_history *h, uint64_t wall_ms)
{
    h->tick++;
    h->wall_ms[(h->tick - 1) % h->len] = wall_ms;
    if (h->nticks < h->len)
        h->nticks++;
}

int lb_history_put(struct lb_history *h, const char *name, const struct lb_history_sample *s)
{
    size_t nlen = strlen(name);
    struct hist_node *n;

    if (nlen == 0 || nlen > PROTO_NAME_MAX)
        return -EINVAL;
    HASH_FIND(hh, h->by_name, name, nlen, n);
    if (n && n->tick == h->tick)
        return -EEXIST;
    if (!n) {
        if (h->nnodes >= h->max_nodes) {
            h->dropped++;
            return -ENOSPC;
        }
        n = xcalloc(1, sizeof(*n));
        memcpy(n->name, name, nlen + 1);
        n->ring = xcalloc(h->len, sizeof(*n->ring));
        HASH_ADD(hh, h->by_name, name, nlen, n);
        h->nnodes++;
    }
    n->ring[n->head] = *s;
    n->head = (n->head + 1) % h->len;
    if (n->count < h->len)
        n->count++;
    n->tick = h->tick;
    return 0;
}

void lb_history_tick_end(struct lb_history *h)
{
    struct hist_node *n, *tmp;

    HASH_ITER(hh, h->by_name, n, tmp)
    {
        if (n->tick != h->tick)
            node_drop(h, n);
    }
}

/* ---- reading ---- */

size_t lb_history_nodes(const struct lb_history *h)
{
    return h->nnodes;
}

size_t lb_history_ticks(const struct lb_history *h)
{
    return h->nticks;
}

uint64_t lb_history_dropped(const struct lb_history *h)
{
    return h->dropped;
}

size_t lb_history_bytes(const struct lb_history *h)
{
    return h->len * sizeof(*h->wall_ms) +
           h->nnodes * (sizeof(struct hist_node) + h->len * sizeof(struct lb_history_sample));
}

/* Sample i (0: the oldest held) of n. */
static const struct lb_history_sample *node_at(const struct lb_history *h,
                                               const struct hist_node *n, unsigned i)
{
    return &n->ring[(n->head + h->len - n->count + i) % h->len];
}

size_t lb_history_get(const struct lb_history *h, const char *name, struct lb_history_sample *out,
                      size_t max)
{
    struct hist_node *n;

    HASH_FIND_STR(h->by_name, name, n);
    if (!n)
        return 0;
    for (unsigned i = 0; i < n->count && i < max; i++)
        out[i] = *node_at(h, n, i);
    return n->count;
}

/* ---- history.json ---- */

static int cmp_node_ptr(const void *x, const void *y)
{
    return strcmp((*(const struct hist_node *const *)x)->name,
                  (*(const struct hist_node *const *)y)->name);
}

/* A JSON string; names are [A-Za-z0-9._:-], anything else is escaped. */
static void json_str(struct admin_view_buf *b, const char *s)
{
    admin_view_buf_puts(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch < 0x20 || ch == '"' || ch == '\\')
            admin_view_buf_printf(b, "\\u%04x", ch);
        else
            admin_view_buf_put(b, s, 1);
    }
    admin_view_buf_puts(b, "\"");
}

/* One node's arrays over its last k samples. */
static void json_node(struct admin_view_buf *b, const struct lb_history *h,
                      const struct hist_node *n, unsigned k, unsigned window)
{
    static const char *const keys[] = {"weight", "active", "rtt_ms"};

    admin_view_buf_puts(b, "{\"name\":");
    json_str(b, n->name);
    admin_view_buf_printf(b, ",\"first\":%u", window - k);
    for (unsigned f = 0; f < 3; f++) {
        admin_view_buf_printf(b, ",\"%s\":[", keys[f]);
        for (unsigned i = n->count - k; i < n->count; i++) {
            const struct lb_history_sample *s = node_at(h, n, i);
            const char *sep = i + k == n->count ? "" : ",";

            if (f == 0)
                admin_view_buf_printf(b, "%s%u", sep, s->weight);
            else if (f == 1)
                admin_view_buf_printf(b, "%s%u", sep, s->active);
            else if (isfinite(s->rtt_ms))
                admin_view_buf_printf(b, "%s%.3f", sep, (double)s->rtt_ms);
            else
                admin_view_buf_printf(b, "%snull", sep);
        }
        admin_view_buf_puts(b, "]");
    }
    admin_view_buf_puts(b, "}");
}

void lb_history_json(const struct lb_history *h, struct admin_view_buf *out)
{
    unsigned window = h->nticks;
    struct hist_node **sorted, *n, *tmp;
    size_t i = 0;

    if (h->nnodes && window > LB_HISTORY_JSON_CELLS / h->nnodes)
        window = (unsigned)(LB_HISTORY_JSON_CELLS / h->nnodes);
    if (window == 0 && h->nticks)
        window = 1;
    admin_view_buf_printf(out, "{\"interval_s\":%g,\"len\":%u,\"t\":[", LB_HISTORY_INTERVAL_S,
                          h->len);
    for (uint64_t t = h->tick - window + 1; t <= h->tick && window; t++)
        admin_view_buf_printf(out, "%s%.3f", t + window == h->tick + 1 ? "" : ",",
                              (double)h->wall_ms[(t - 1) % h->len] / 1000.0);
    admin_view_buf_puts(out, "],\"nodes\":[");
    sorted = xcalloc(h->nnodes ? h->nnodes : 1, sizeof(*sorted));
    HASH_ITER(hh, h->by_name, n, tmp)
    sorted[i++] = n;
    qsort(sorted, h->nnodes, sizeof(*sorted), cmp_node_ptr);
    for (i = 0; i < h->nnodes; i++) {
        unsigned k = sorted[i]->count < window ? sorted[i]->count : window;

        if (i)
            admin_view_buf_puts(out, ",");
        json_node(out, h, sorted[i], k, window);
    }
    free(sorted);
    admin_view_buf_printf(out, "],\"dropped\":%llu}\n", (unsigned long long)h->dropped);
}

int lb_history_page(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                    struct admin_view_buf *out, const char **err)
{
    if (ctx->history) {
        lb_history_json(ctx->history, out);
    } else {
        admin_view_buf_printf(out, "{\"interval_s\":%g,\"len\":0,\"t\":[],\"nodes\":[]}\n",
                              LB_HISTORY_INTERVAL_S);
    }
    return 0;
}

/* ---- the sampler ---- */

static int cmp_row_ptr(const void *x, const void *y)
{
    return strcmp((*(const struct mon_node *const *)x)->name,
                  (*(const struct mon_node *const *)y)->name);
}

static int cmp_row_key(const void *key, const void *y)
{
    return strcmp(key, (*(const struct mon_node *const *)y)->name);
}

/* Takes the monitor's rows and sorts them by name; returns how many. */
static size_t rows_take(struct lb_history *h)
{
    size_t n, want;

    if (!h->mon)
        return 0;
    want = mon_count(h->mon);
    if (want > h->rows_cap) {
        free(h->rows);
        free(h->rows_by_name);
        h->rows = xcalloc(want, sizeof(*h->rows));
        h->rows_by_name = xcalloc(want, sizeof(*h->rows_by_name));
        h->rows_cap = want;
    }
    if (!want)
        return 0;
    n = mon_snapshot(h->mon, h->rows, want);
    for (size_t i = 0; i < n; i++)
        h->rows_by_name[i] = &h->rows[i];
    qsort(h->rows_by_name, n, sizeof(*h->rows_by_name), cmp_row_ptr);
    return n;
}

void lb_history_sample(struct lb_history *h)
{
    size_t nrows = rows_take(h), n = lb_nodes_count(h->reg);

    lb_history_tick_begin(h, clock_wall_ms());
    for (size_t i = 0; i < n; i++) {
        const struct lb_node *nd = lb_nodes_at(h->reg, i);
        const struct mon_node *const *r;
        struct lb_history_sample s;

        if (nd->gone)
            continue;
        r = nrows ? bsearch(nd->name, h->rows_by_name, nrows, sizeof(*r), cmp_row_key) : NULL;
        s.weight = atomic_load_explicit(&nd->weight, memory_order_relaxed);
        s.active = atomic_load_explicit(&nd->active, memory_order_relaxed);
        s.rtt_ms = r && (*r)->has_rtt ? (float)(*r)->srtt_ms : NAN;
        (void)lb_history_put(h, nd->name, &s); /* -ENOSPC is counted in dropped */
    }
    lb_history_tick_end(h);
}

static void history_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    lb_history_sample(container_of(w, struct lb_history, timer));
}

void lb_history_start(struct lb_history *h, struct ev_loop *loop, struct lb_nodes *nodes,
                      struct mon *mon)
{
    h->loop = loop;
    h->reg = nodes;
    h->mon = mon;
    lb_history_sample(h);
    ev_timer_init(&h->timer, history_timer_cb, LB_HISTORY_INTERVAL_S, LB_HISTORY_INTERVAL_S);
    ev_timer_start(loop, &h->timer);
}

void lb_history_stop(struct lb_history *h)
{
    if (h->loop)
        ev_timer_stop(h->loop, &h->timer);
    h->loop = NULL;
}
