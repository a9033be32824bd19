/* nodes.c - the main thread's registry of backend nodes: membership from
 * the monitor's rounds and --node flags, effective weights, and the views
 * workers pick from.
 *
 * Design notes (the long form, with the reasons, is docs/balancing.md):
 *
 * - Each node lives in an lb_entry that wraps the shared struct lb_node
 *   with what only this file needs (hash handle, slow-start and view
 *   bookkeeping). Entries are allocated once and freed only by
 *   lb_nodes_free(): workers may hold a node pointer for as long as they
 *   like. The array of entry pointers grows; a name hash (uthash) finds one
 *   in O(1) per monitor row.
 * - Views are immutable. A membership change builds a new one and publishes
 *   it with a release store; workers load it with acquire, which also makes
 *   the identity fields (name, addr) of every node in it visible. The
 *   replaced view goes on a retire list stamped with the time, and is freed
 *   by a later call once grace_ms have passed. lb_nodes_add_static() has no
 *   clock: what it retires is stamped by the next call that has one, which
 *   only lengthens the grace.
 * - Weights change in place (relaxed stores): base weight from the source
 *   (static, monitor, stale fallback), zero for drain and gone, then slow
 *   start. The `draining` atomic tells workers which zero weights are
 *   deliberate, so panic mode never sends work to a drained or gone node.
 * - Address changes. node.h promises workers that a published node's
 *   identity is fixed, so an address is never rewritten under a worker
 *   that might read it. A node whose address changes leaves the view
 *   (weight 0, draining) and gets the new address only once grace_ms have
 *   passed since the last view that held it was replaced; then it rejoins
 *   and ramps like any returning node. A node out of every live view (gone
 *   long enough, or never published) takes the new address at once.
 */
#include "nodes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* uthash allocates through xmalloc, which aborts instead of returning NULL. */
#define uthash_malloc(sz)    xmalloc(sz)
#define uthash_free(ptr, sz) free(ptr)
#include <uthash.h>

#define LB_NOW_UNKNOWN      UINT64_MAX
#define LB_SLOWSTART_MAX_MS ((uint64_t)UINT32_MAX) /* keeps base * elapsed in 64 bits */

struct lb_entry {
    struct lb_node n;            /* what callers and workers see */
    uint64_t last_ms;            /* the monitor's last report (agent nodes) */
    uint64_t out_since_ms;       /* left the current view at (published, !in_view) */
    struct sockaddr_in new_addr; /* applied once no live view holds the node */
    bool addr_pending;           /* new_addr waits: the node stays out */
    bool published;              /* has been in a view */
    bool in_view;                /* is in the current view */
    bool live;                   /* base weight > 0 at the last weighing */
    bool ramp;                   /* slow start runs from n.up_since_ms */
    bool seen;                   /* in the rows of the sync being applied */
    UT_hash_handle hh;
};

struct lb_retired {
    struct lb_view *v;
    uint64_t at; /* replaced at, monotonic ms; LB_NOW_UNKNOWN until stamped */
};

struct lb_nodes {
    struct lb_nodes_cfg cfg;
    struct lb_entry **e; /* by idx */
    size_t n, cap;
    struct lb_entry *by_name; /* uthash head */
    _Atomic(struct lb_view *) view;
    struct lb_retired *retired;
    size_t nretired, retired_cap;
    uint64_t gen;
    bool synced; /* a monitor round has ended: new nodes ramp from now on */
    bool dirty;  /* membership changed: publish before returning */
};

static struct lb_view *view_new(size_t n)
{
    struct lb_view *v = xmalloc(sizeof(*v) + n * sizeof(v->node[0]));

    v->gen = 0;
    v->n = (unsigned)n;
    return v;
}

struct lb_nodes *lb_nodes_new(const struct lb_nodes_cfg *cfg)
{
    struct lb_nodes *ns = xcalloc(1, sizeof(*ns));

    ns->cfg = *cfg;
    if (ns->cfg.slowstart_ms > LB_SLOWSTART_MAX_MS)
        ns->cfg.slowstart_ms = LB_SLOWSTART_MAX_MS;
    atomic_init(&ns->view, view_new(0));
    return ns;
}

void lb_nodes_free(struct lb_nodes *ns)
{
    size_t i;

    if (!ns)
        return;
    HASH_CLEAR(hh, ns->by_name);
    for (i = 0; i < ns->n; i++)
        free(ns->e[i]);
    free(ns->e);
    for (i = 0; i < ns->nretired; i++)
        free(ns->retired[i].v);
    free(ns->retired);
    free(atomic_load_explicit(&ns->view, memory_order_relaxed));
    free(ns);
}

static struct lb_entry *entry_find(const struct lb_nodes *ns, const char *name)
{
    struct lb_entry *e = NULL;
    size_t len = strnlen(name, PROTO_NAME_MAX + 1);

    if (len == 0 || len > PROTO_NAME_MAX)
        return NULL;
    HASH_FIND(hh, ns->by_name, name, len, e);
    return e;
}

/* A new entry named name[0..len), or NULL when LB_NODES_MAX are taken. Its
 * atomics are zero: calloc's zero bytes are a valid zero for lock-free
 * atomics on every platform we build for. */
static struct lb_entry *entry_new(struct lb_nodes *ns, const char *name, size_t len,
                                  enum lb_node_src src)
{
    struct lb_entry *e;

    if (ns->n >= LB_NODES_MAX)
        return NULL;
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 16;
        if (ns->cap > LB_NODES_MAX)
            ns->cap = LB_NODES_MAX;
        ns->e = xrealloc(ns->e, ns->cap * sizeof(*ns->e));
    }
    e = xcalloc(1, sizeof(*e));
    memcpy(e->n.name, name, len);
    e->n.name[len] = '\0';
    e->n.src = src;
    e->n.idx = (unsigned)ns->n;
    e->n.mon_state = -1;
    e->n.override = LB_OVERRIDE_NONE;
    ns->e[ns->n++] = e;
    HASH_ADD_KEYPTR(hh, ns->by_name, e->n.name, len, e);
    return e;
}

static void retire(struct lb_nodes *ns, struct lb_view *v, uint64_t now_ms)
{
    if (ns->nretired == ns->retired_cap) {
        ns->retired_cap = ns->retired_cap ? ns->retired_cap * 2 : 8;
        ns->retired = xrealloc(ns->retired, ns->retired_cap * sizeof(*ns->retired));
    }
    ns->retired[ns->nretired].v = v;
    ns->retired[ns->nretired].at = now_ms;
    ns->nretired++;
}

/* Frees the retired views whose grace has run out. Called before any
 * publication in the same call, so a view is never freed in the call that
 * replaced it, whatever grace_ms is. */
static void reap(struct lb_nodes *ns, uint64_t now_ms)
{
    size_t i, k = 0;

    for (i = 0; i < ns->nretired; i++) {
        struct lb_retired r = ns->retired[i];

        if (r.at == LB_NOW_UNKNOWN)
            r.at = now_ms;
        if (now_ms >= r.at && now_ms - r.at >= ns->cfg.grace_ms) {
            free(r.v);
            continue;
        }
        ns->retired[k++] = r;
    }
    ns->nretired = k;
}

static bool in_next_view(const struct lb_entry *e)
{
    return !e->n.gone && !e->addr_pending;
}

/* Builds and publishes a view of every node not gone and not waiting for an
 * address, in idx order; retires the previous view. now_ms may be
 * LB_NOW_UNKNOWN (add_static): then nothing leaves the view. */
static void publish(struct lb_nodes *ns, uint64_t now_ms)
{
    struct lb_view *v, *old;
    size_t i, cnt = 0, k = 0;

    for (i = 0; i < ns->n; i++) {
        if (in_next_view(ns->e[i]))
            cnt++;
    }
    v = view_new(cnt);
    v->gen = ++ns->gen;
    for (i = 0; i < ns->n; i++) {
        struct lb_entry *e = ns->e[i];

        if (in_next_view(e)) {
            v->node[k++] = &e->n;
            e->in_view = true;
            e->published = true;
        } else if (e->in_view) {
            e->in_view = false;
            e->out_since_ms = now_ms;
        }
    }
    old = atomic_load_explicit(&ns->view, memory_order_relaxed);
    atomic_store_explicit(&ns->view, v, memory_order_release);
    retire(ns, old, now_ms);
    ns->dirty = false;
}

/* True when no view a worker may still hold contains e: its identity may
 * be rewritten. */
static bool unheld(const struct lb_nodes *ns, const struct lb_entry *e, uint64_t now_ms)
{
    if (!e->published)
        return true;
    if (e->in_view)
        return false;
    return now_ms >= e->out_since_ms && now_ms - e->out_since_ms >= ns->cfg.grace_ms;
}

static bool same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

/* The address a row reports, or -EINVAL. The monitor's decoder has already
 * checked both fields; a row that fails here anyway is treated as absent. */
static int row_addr(const struct mon_node *row, struct sockaddr_in *out)
{
    char ip[sizeof(row->m.ip) + 1];
    size_t len = strnlen(row->m.ip, sizeof(row->m.ip));

    memcpy(ip, row->m.ip, len);
    ip[len] = '\0';
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons(row->m.port);
    if (row->m.port == 0 || inet_pton(AF_INET, ip, &out->sin_addr) != 1)
        return -EINVAL;
    return 0;
}

/* A row reports addr for an existing node. */
static void entry_set_addr(struct lb_nodes *ns, struct lb_entry *e, const struct sockaddr_in *addr,
                           uint64_t now_ms)
{
    if (same_addr(&e->n.addr, addr)) {
        if (e->addr_pending) { /* moved back before the move was applied */
            e->addr_pending = false;
            ns->dirty = true;
        }
        return;
    }
    if (unheld(ns, e, now_ms)) {
        e->n.addr = *addr;
        e->addr_pending = false;
        ns->dirty = true;
        return;
    }
    e->new_addr = *addr;
    if (!e->addr_pending) {
        e->addr_pending = true;
        ns->dirty = true;
    }
}

/* Pending addresses whose node no live view holds any more. */
static void apply_pending_addrs(struct lb_nodes *ns, uint64_t now_ms)
{
    size_t i;

    for (i = 0; i < ns->n; i++) {
        struct lb_entry *e = ns->e[i];

        if (!e->addr_pending || !unheld(ns, e, now_ms))
            continue;
        e->n.addr = e->new_addr;
        e->addr_pending = false;
        if (!e->n.gone) /* it rejoins the view */
            ns->dirty = true;
    }
}

static bool mon_in_rotation(const struct lb_node *n)
{
    return n->mon_state == MON_UP || n->mon_state == MON_SUSPECT;
}

/* Average metric weight of the agent nodes whose report is fresh and that
 * are in rotation: what a stale node falls back to. Rounded to nearest. */
static unsigned fresh_average(const struct lb_nodes *ns)
{
    uint64_t sum = 0, cnt = 0;
    size_t i;

    for (i = 0; i < ns->n; i++) {
        const struct lb_entry *e = ns->e[i];
        const struct lb_node *n = &e->n;

        if (n->src != LB_SRC_AGENT || n->gone || n->drain || e->addr_pending || n->stale)
            continue;
        if (!mon_in_rotation(n) || n->metric_weight == 0)
            continue;
        sum += n->metric_weight;
        cnt++;
    }
    if (cnt == 0)
        return LB_STATIC_WEIGHT;
    return (unsigned)((sum + cnt / 2) / cnt);
}

/* The weight before slow start. */
static unsigned base_weight(const struct lb_entry *e, unsigned avg)
{
    const struct lb_node *n = &e->n;

    if (n->gone || n->drain || e->addr_pending)
        return 0;
    if (n->src == LB_SRC_AGENT && !mon_in_rotation(n))
        return 0; /* down, or drained at the monitor: health beats an override */
    if (n->override != LB_OVERRIDE_NONE)
        return (unsigned)n->override;
    if (n->src == LB_SRC_STATIC)
        return LB_STATIC_WEIGHT;
    if (n->stale)
        return avg;
    return n->metric_weight;
}

static bool held_out(const struct lb_entry *e)
{
    const struct lb_node *n = &e->n;

    if (n->gone || n->drain || e->addr_pending || n->override == 0)
        return true;
    return n->src == LB_SRC_AGENT && n->mon_state == MON_DRAINING;
}

/* Slow start: from 1 at up_since_ms to base at up_since_ms + slowstart_ms,
 * linearly. base < 2^32 and elapsed < slowstart_ms <= 2^32: the product
 * fits in 64 bits. */
static unsigned ramp_weight(const struct lb_nodes *ns, struct lb_entry *e, unsigned base,
                            uint64_t now_ms)
{
    uint64_t elapsed = now_ms > e->n.up_since_ms ? now_ms - e->n.up_since_ms : 0;
    uint64_t w;

    if (elapsed >= ns->cfg.slowstart_ms) {
        e->ramp = false;
        return base;
    }
    w = (uint64_t)base * elapsed / ns->cfg.slowstart_ms;
    return w > 0 ? (unsigned)w : 1;
}

static void entry_weigh(const struct lb_nodes *ns, struct lb_entry *e, unsigned avg,
                        uint64_t now_ms)
{
    unsigned base = base_weight(e, avg), w = base;

    if (base == 0) {
        e->live = false;
        e->ramp = false;
    } else {
        if (!e->live) {
            /* Nodes of the first round and static nodes are not new: the
             * balancer just started, they have been serving all along. */
            e->live = true;
            e->n.up_since_ms = now_ms;
            e->ramp = ns->synced && e->n.src == LB_SRC_AGENT;
        }
        if (e->ramp)
            w = ramp_weight(ns, e, base, now_ms);
    }
    atomic_store_explicit(&e->n.draining, held_out(e), memory_order_relaxed);
    atomic_store_explicit(&e->n.weight, w, memory_order_relaxed);
}

void lb_nodes_refresh(struct lb_nodes *ns, uint64_t now_ms)
{
    unsigned avg;
    size_t i;

    reap(ns, now_ms);
    apply_pending_addrs(ns, now_ms);
    for (i = 0; i < ns->n; i++) {
        struct lb_entry *e = ns->e[i];

        if (e->n.src == LB_SRC_AGENT)
            e->n.stale = now_ms > e->last_ms && now_ms - e->last_ms > ns->cfg.stale_ms;
    }
    avg = fresh_average(ns);
    for (i = 0; i < ns->n; i++)
        entry_weigh(ns, ns->e[i], avg, now_ms);
    if (ns->dirty)
        publish(ns, now_ms);
}

int lb_nodes_add_static(struct lb_nodes *ns, const struct sockaddr_in *addr)
{
    char ip[INET_ADDRSTRLEN], name[PROTO_NAME_MAX + 1];
    struct lb_entry *e;
    int len;

    if (!inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof(ip)))
        return -EINVAL;
    len = snprintf(name, sizeof(name), "%s:%u", ip, (unsigned)ntohs(addr->sin_port));
    if (len < 0 || (size_t)len >= sizeof(name))
        return -EINVAL;
    if (entry_find(ns, name))
        return -EEXIST;
    e = entry_new(ns, name, (size_t)len, LB_SRC_STATIC);
    if (!e)
        return -ENOSPC;
    e->n.addr = *addr;
    e->n.addr.sin_family = AF_INET;
    e->n.metric_weight = LB_STATIC_WEIGHT;
    e->live = true;
    atomic_store_explicit(&e->n.weight, LB_STATIC_WEIGHT, memory_order_relaxed);
    publish(ns, LB_NOW_UNKNOWN);
    return 0;
}

/* One monitor row: find or create its node and copy the inputs of its
 * weight. Rows naming a static node, with a bad name or address, or past
 * LB_NODES_MAX are skipped (the node, if any, then counts as absent). */
static void sync_row(struct lb_nodes *ns, const struct mon_node *row, uint64_t now_ms)
{
    size_t len = strnlen(row->name, sizeof(row->name));
    struct sockaddr_in addr;
    struct lb_entry *e;

    if (len == 0 || len > PROTO_NAME_MAX || row_addr(row, &addr) != 0)
        return;
    e = entry_find(ns, row->name);
    if (e && e->n.src != LB_SRC_AGENT)
        return;
    if (!e) {
        e = entry_new(ns, row->name, len, LB_SRC_AGENT);
        if (!e)
            return;
        e->n.addr = addr;
        ns->dirty = true;
    } else {
        entry_set_addr(ns, e, &addr, now_ms);
    }
    e->n.metric_weight = row->eff_weight;
    e->n.mon_state = (int)row->state;
    e->last_ms = row->last_ms;
    e->seen = true;
    if (e->n.gone) {
        e->n.gone = false;
        ns->dirty = true;
    }
}

void lb_nodes_sync(struct lb_nodes *ns, const struct mon_node *rows, size_t n, uint64_t now_ms)
{
    size_t i;

    for (i = 0; i < ns->n; i++)
        ns->e[i]->seen = false;
    for (i = 0; i < n; i++)
        sync_row(ns, &rows[i], now_ms);
    for (i = 0; i < ns->n; i++) {
        struct lb_entry *e = ns->e[i];

        if (e->n.src == LB_SRC_AGENT && !e->seen && !e->n.gone) {
            e->n.gone = true;
            ns->dirty = true;
        }
    }
    lb_nodes_refresh(ns, now_ms);
}

void lb_nodes_round_closed(struct lb_nodes *ns)
{
    ns->synced = true;
}

/* Recomputes every weight, not only this node's: an agent node's drain
 * also moves the average that stale nodes fall back to. */
int lb_nodes_set_drain(struct lb_nodes *ns, const char *name, bool drain, uint64_t now_ms)
{
    struct lb_entry *e = entry_find(ns, name);

    if (!e)
        return -ENOENT;
    e->n.drain = drain;
    lb_nodes_refresh(ns, now_ms);
    return 0;
}

int lb_nodes_set_override(struct lb_nodes *ns, const char *name, int weight, uint64_t now_ms)
{
    struct lb_entry *e = entry_find(ns, name);

    if (!e)
        return -ENOENT;
    if (weight != LB_OVERRIDE_NONE && (weight < 0 || weight > LB_OVERRIDE_MAX))
        return -ERANGE;
    e->n.override = weight;
    lb_nodes_refresh(ns, now_ms);
    return 0;
}

const struct lb_view *lb_nodes_view(const struct lb_nodes *ns)
{
    return atomic_load_explicit(&ns->view, memory_order_acquire);
}

size_t lb_nodes_count(const struct lb_nodes *ns)
{
    return ns->n;
}

struct lb_node *lb_nodes_at(const struct lb_nodes *ns, size_t i)
{
    if (i >= ns->n)
        return NULL;
    return &ns->e[i]->n;
}

struct lb_node *lb_nodes_find(const struct lb_nodes *ns, const char *name)
{
    struct lb_entry *e = entry_find(ns, name);

    return e ? &e->n : NULL;
}
