/* table.c - the monitor's status table: rows, state machine, ranks, output.
 *
 * Design notes (the long form, with the reasons, is docs/monitor.md):
 *
 * - Rows live in a uthash keyed by name, so a report costs one lookup
 *   whatever the size of the cluster. Allocation goes through xmalloc:
 *   running out of memory aborts with a message.
 * - A row keeps its health (up, suspect, down) apart from the operator's
 *   drain flag; the state callers see (draining included), the effective
 *   weight and the rank are derived from both by row_sync().
 * - Ranks: end_round() sorts once. Between rounds an effective weight moves
 *   only when one node joins, goes down, comes back or is drained; then
 *   rank_update() fixes every rank in one O(n) pass instead of sorting.
 * - Per round a row has three flags, cleared by begin_round() and
 *   end_round(): heard (a response or a hello: no miss), responded (a
 *   second response is a duplicate) and reported (new metrics: the weight
 *   takes a step at the end of the round).
 * - Tombstones: the (name, boot) of the last MON_TOMBSTONES agents that
 *   said bye, or were replaced by a new boot of the same name, in a ring.
 *   A hello or response from a tombstoned boot is stale.
 * - Capacities: weights are shares of the biggest node's capacity
 *   (weight.h, struct mon_weight_ref). ref_update() recomputes the
 *   reference at every end of round, and at once when a report names a
 *   capacity above it; when the biggest changes, every weight is rescaled
 *   to the new unit, so the step limit is not spent on a change of unit.
 */
#include "table.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xalloc.h"

/* uthash allocates through xmalloc, which aborts instead of returning NULL. */
#define uthash_malloc(sz)    xmalloc(sz)
#define uthash_free(ptr, sz) free(ptr)
#include <uthash.h>

#define MON_TOMBSTONES 64
#define MON_MAX_RTT_MS 1e9 /* display cap: about 11 days */

struct mon_row {
    struct mon_node n;     /* n.state, n.eff_weight and n.rank: see row_sync */
    enum mon_state health; /* MON_UP, MON_SUSPECT or MON_DOWN */
    bool seq_seen;         /* n.agent_seq holds a hello/bye seq of this boot */
    bool heard;            /* a response or a hello in this round */
    bool responded;        /* a response in this round */
    bool reported;         /* metrics in this round */
    UT_hash_handle hh;
};

struct mon_tombstone {
    char name[PROTO_NAME_MAX + 1];
    char boot[PROTO_NONCE_HEX + 1];
};

struct mon_table {
    struct mon_table_cfg cfg;
    struct mon_row *rows; /* uthash head */
    uint64_t round;
    struct mon_tombstone tomb[MON_TOMBSTONES];
    unsigned tomb_next;      /* ring slot the next tombstone overwrites */
    struct mon_row **sorted; /* scratch for end_round's sort */
    size_t sorted_cap;
    struct mon_weight_ref ref; /* the cluster's capacities (ref_update) */
    double *cpus;              /* scratch for ref_update */
    size_t cpus_cap;
};

void mon_table_cfg_default(struct mon_table_cfg *cfg)
{
    cfg->max_nodes = 4096;
    cfg->miss_down = 3;
    cfg->forget_ms = 300000;
    mon_weight_cfg_default(&cfg->weight);
}

struct mon_table *mon_table_new(const struct mon_table_cfg *cfg)
{
    struct mon_table *t = xcalloc(1, sizeof(*t));

    t->cfg = *cfg;
    if (t->cfg.miss_down == 0)
        t->cfg.miss_down = 1;
    return t;
}

void mon_table_free(struct mon_table *t)
{
    struct mon_row *r, *tmp;

    if (!t)
        return;
    HASH_ITER(hh, t->rows, r, tmp)
    {
        HASH_DEL(t->rows, r);
        free(r);
    }
    free(t->sorted);
    free(t->cpus);
    free(t);
}

/* Copies the string in src (an array of srcsz bytes, maybe unterminated)
 * into dst, truncated to dstsz - 1 bytes and NUL-terminated. */
static void copy_bounded(char *dst, size_t dstsz, const char *src, size_t srcsz)
{
    size_t n = strnlen(src, srcsz < dstsz - 1 ? srcsz : dstsz - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

static struct mon_row *row_find(const struct mon_table *t, const char *name)
{
    struct mon_row *r = NULL;
    size_t n = strnlen(name, PROTO_NAME_MAX + 1);

    if (n == 0 || n > PROTO_NAME_MAX)
        return NULL;
    HASH_FIND(hh, t->rows, name, n, r);
    return r;
}

static bool tomb_find(const struct mon_table *t, const char *name, const char *boot)
{
    for (size_t i = 0; i < MON_TOMBSTONES; i++) {
        const struct mon_tombstone *s = &t->tomb[i];

        if (s->name[0] && strcmp(s->name, name) == 0 && strcmp(s->boot, boot) == 0)
            return true;
    }
    return false;
}

static void tomb_add(struct mon_table *t, const char *name, const char *boot)
{
    struct mon_tombstone *s = &t->tomb[t->tomb_next];

    copy_bounded(s->name, sizeof(s->name), name, PROTO_NAME_MAX + 1);
    copy_bounded(s->boot, sizeof(s->boot), boot, PROTO_NONCE_HEX + 1);
    t->tomb_next = (t->tomb_next + 1) % MON_TOMBSTONES;
}

/* Weight for the balancer of a node in rotation: at least 1, since metrics
 * alone never take a node out. */
static unsigned eff_of(double w)
{
    if (!(w >= 1.0))
        return 1;
    if (w >= (double)UINT_MAX)
        return UINT_MAX;
    return (unsigned)lround(w);
}

/* Derives state and eff_weight from health, drain and weight. */
static void row_sync(struct mon_row *r)
{
    bool down = r->health == MON_DOWN;

    r->n.state = (r->n.drain && !down) ? MON_DRAINING : r->health;
    r->n.eff_weight = (down || r->n.drain) ? 0 : eff_of(r->n.weight);
}

/* Ranking order: heavier first, then by name. */
static bool precedes(const struct mon_row *a, const struct mon_row *b)
{
    if (a->n.eff_weight != b->n.eff_weight)
        return a->n.eff_weight > b->n.eff_weight;
    return strcmp(a->n.name, b->n.name) < 0;
}

static int cmp_weight(const void *pa, const void *pb)
{
    const struct mon_row *a = *(const struct mon_row *const *)pa;
    const struct mon_row *b = *(const struct mon_row *const *)pb;

    if (a == b)
        return 0;
    return precedes(a, b) ? -1 : 1;
}

/* Full ranking: 1..k over the rows with eff_weight > 0, 0 for the rest. */
static void rank_all(struct mon_table *t)
{
    size_t count = HASH_COUNT(t->rows);
    size_t k = 0;
    struct mon_row *r, *tmp;

    if (count > t->sorted_cap) {
        t->sorted = xrealloc(t->sorted, count * sizeof(*t->sorted));
        t->sorted_cap = count;
    }
    HASH_ITER(hh, t->rows, r, tmp)
    {
        r->n.rank = 0;
        if (r->n.eff_weight > 0)
            t->sorted[k++] = r;
    }
    if (k > 1)
        qsort(t->sorted, k, sizeof(*t->sorted), cmp_weight);
    for (size_t i = 0; i < k; i++)
        t->sorted[i]->n.rank = (unsigned)(i + 1);
}

/* x's eff_weight just changed (x->n.rank is still the old rank): take x out
 * of the ranking and put it back where its new weight belongs, in one pass.
 * The other rows keep their relative order, so each moves by at most one. */
static void rank_update(struct mon_table *t, struct mon_row *x)
{
    unsigned old = x->n.rank;
    bool in = x->n.eff_weight > 0;
    unsigned ahead = 0;
    struct mon_row *r, *tmp;

    HASH_ITER(hh, t->rows, r, tmp)
    {
        if (r == x || r->n.rank == 0)
            continue;
        if (old && r->n.rank > old)
            r->n.rank--;
        if (!in)
            continue;
        if (precedes(r, x))
            ahead++;
        else
            r->n.rank++;
    }
    x->n.rank = in ? ahead + 1 : 0;
}

/* row_sync, then fixes the ranks if the effective weight moved. */
static void row_sync_ranked(struct mon_table *t, struct mon_row *r)
{
    unsigned before = r->n.eff_weight;

    row_sync(r);
    if (r->n.eff_weight != before)
        rank_update(t, r);
}

static double row_target(const struct mon_table *t, const struct mon_row *r)
{
    return mon_weight_target(&t->cfg.weight, &t->ref, &r->n.m, r->n.has_rtt ? r->n.srtt_ms : -1.0);
}

/* Recomputes the capacity reference from every row that reports one. When
 * the largest capacity changes, weights are rescaled to it. Returns true
 * when weights moved (the caller re-syncs rows and ranks). */
static bool ref_update(struct mon_table *t)
{
    size_t count = HASH_COUNT(t->rows), k = 0;
    double old_max = t->ref.max_cpus;
    struct mon_row *r, *tmp;

    if (count > t->cpus_cap) {
        t->cpus = xrealloc(t->cpus, count * sizeof(*t->cpus));
        t->cpus_cap = count;
    }
    HASH_ITER(hh, t->rows, r, tmp)
    {
        double c = mon_weight_cpus(&r->n.m);

        if (c > 0.0)
            t->cpus[k++] = c;
    }
    mon_weight_ref_set(&t->ref, t->cpus, k);
    if (old_max <= 0.0 || t->ref.max_cpus <= 0.0 || old_max == t->ref.max_cpus)
        return false;
    HASH_ITER(hh, t->rows, r, tmp)
    {
        r->n.weight = mon_weight_rescale(&t->cfg.weight, r->n.weight, old_max, t->ref.max_cpus);
    }
    return true;
}

/* Every row's state and effective weight, then all ranks. */
static void table_resync(struct mon_table *t)
{
    struct mon_row *r, *tmp;

    HASH_ITER(hh, t->rows, r, tmp)
    {
        row_sync(r);
    }
    rank_all(t);
}

static void clear_round_flags(struct mon_table *t)
{
    struct mon_row *r, *tmp;

    HASH_ITER(hh, t->rows, r, tmp)
    {
        r->heard = false;
        r->responded = false;
        r->reported = false;
    }
}

void mon_table_begin_round(struct mon_table *t, uint64_t round, uint64_t now_ms)
{
    t->round = round;
    clear_round_flags(t);
}

static struct mon_row *row_new(struct mon_table *t, const char *name, uint64_t now_ms)
{
    struct mon_row *r = xcalloc(1, sizeof(*r));

    copy_bounded(r->n.name, sizeof(r->n.name), name, PROTO_NAME_MAX + 1);
    r->n.first_ms = now_ms;
    r->n.up_since_ms = now_ms;
    r->health = MON_UP;
    HASH_ADD(hh, t->rows, n.name[0], strlen(r->n.name), r);
    return r;
}

/* The checks of mon_table_report, which leave the table unchanged. */
static int report_check(struct mon_table *t, const struct proto_msg *msg, const char *name,
                        const char *boot, struct mon_row **out)
{
    struct mon_row *r;

    if (msg->type != PROTO_HELLO && msg->type != PROTO_PROBE_RESPONSE)
        return -EINVAL;
    if (name[0] == '\0')
        return -EINVAL;
    if (tomb_find(t, name, boot))
        return -ESTALE;
    r = row_find(t, name);
    *out = r;
    if (!r)
        return HASH_COUNT(t->rows) >= t->cfg.max_nodes ? -ENOSPC : 0;
    if (msg->type == PROTO_PROBE_RESPONSE && r->responded)
        return -EALREADY;
    if (msg->type == PROTO_HELLO && r->seq_seen && strcmp(r->n.boot, boot) == 0 &&
        msg->seq <= r->n.agent_seq)
        return -EALREADY;
    return 0;
}

/* A new boot under a known name: the old agent process is gone, so its
 * boot is tombstoned (a replay of its messages is stale) and the counters
 * start over. */
static void row_new_boot(struct mon_table *t, struct mon_row *r, const char *boot)
{
    if (strcmp(r->n.boot, boot) == 0)
        return;
    if (r->n.boot[0])
        tomb_add(t, r->n.name, r->n.boot);
    copy_bounded(r->n.boot, sizeof(r->n.boot), boot, PROTO_NONCE_HEX + 1);
    r->seq_seen = false;
    r->n.agent_seq = 0;
    r->n.missed = 0;
}

static void row_rtt(struct mon_row *r, double rtt_ms)
{
    if (!isfinite(rtt_ms) || rtt_ms < 0.0)
        return;
    r->n.rtt_ms = rtt_ms;
    r->n.srtt_ms = r->n.has_rtt ? r->n.srtt_ms * 7.0 / 8.0 + rtt_ms / 8.0 : rtt_ms;
    r->n.has_rtt = true;
}

int mon_table_report(struct mon_table *t, const struct proto_msg *msg, double rtt_ms,
                     uint64_t now_ms)
{
    char name[PROTO_NAME_MAX + 1];
    char boot[PROTO_NONCE_HEX + 1];
    bool hello = msg->type == PROTO_HELLO;
    bool rescaled;
    struct mon_row *r = NULL;
    int rc;

    copy_bounded(name, sizeof(name), msg->name, sizeof(msg->name));
    copy_bounded(boot, sizeof(boot), msg->boot, sizeof(msg->boot));
    rc = report_check(t, msg, name, boot, &r);
    if (rc < 0)
        return rc;

    if (!r)
        r = row_new(t, name, now_ms);
    row_new_boot(t, r, boot);
    if (hello) {
        r->n.agent_seq = msg->seq;
        r->seq_seen = true;
    } else {
        row_rtt(r, rtt_ms);
        r->responded = true;
    }
    r->n.m = msg->m;
    r->n.m.ip[sizeof(r->n.m.ip) - 1] = '\0';
    r->n.last_ms = now_ms;
    r->n.missed = 0;
    r->heard = true;
    r->reported = true;
    /* A capacity above the reference changes the unit of every weight. */
    rescaled = mon_weight_cpus(&r->n.m) > t->ref.max_cpus && ref_update(t);

    if (!r->n.m.service_up) {
        r->health = MON_DOWN;
    } else if (r->health != MON_UP) {
        if (r->health == MON_DOWN)
            r->n.up_since_ms = now_ms;
        r->health = MON_UP;
    }
    /* A node never weighed starts at its target (mon_weight_step's rule). */
    if (!(r->n.weight > 0.0))
        r->n.weight = mon_weight_step(&t->cfg.weight, 0.0, row_target(t, r));
    if (rescaled)
        table_resync(t);
    else
        row_sync_ranked(t, r);
    return 0;
}

int mon_table_bye(struct mon_table *t, const struct proto_msg *msg)
{
    char name[PROTO_NAME_MAX + 1];
    char boot[PROTO_NONCE_HEX + 1];
    struct mon_row *r;

    copy_bounded(name, sizeof(name), msg->name, sizeof(msg->name));
    copy_bounded(boot, sizeof(boot), msg->boot, sizeof(msg->boot));
    r = row_find(t, name);
    if (!r)
        return -ENOENT;
    if (strcmp(r->n.boot, boot) != 0)
        return -ESTALE;
    if (r->seq_seen && msg->seq <= r->n.agent_seq)
        return -EALREADY;

    tomb_add(t, name, boot);
    if (r->n.eff_weight > 0) {
        r->n.eff_weight = 0;
        rank_update(t, r);
    }
    HASH_DEL(t->rows, r);
    free(r);
    return 0;
}

/* One row's end of round: misses, health, weight. Returns true when the
 * row is to be forgotten. */
static bool row_end_round(struct mon_table *t, struct mon_row *r, uint64_t now_ms)
{
    if (r->heard) {
        r->n.missed = 0;
        if (r->health == MON_SUSPECT)
            r->health = MON_UP;
    } else {
        if (r->n.missed < UINT_MAX)
            r->n.missed++;
        if (r->n.missed >= t->cfg.miss_down)
            r->health = MON_DOWN;
        else if (r->health == MON_UP)
            r->health = MON_SUSPECT;
    }
    if (r->reported)
        r->n.weight = mon_weight_step(&t->cfg.weight, r->n.weight, row_target(t, r));
    row_sync(r);
    return r->health == MON_DOWN && now_ms > r->n.last_ms &&
           now_ms - r->n.last_ms > t->cfg.forget_ms;
}

void mon_table_end_round(struct mon_table *t, uint64_t now_ms)
{
    struct mon_row *r, *tmp;

    ref_update(t); /* row_end_round syncs every row and rank_all follows */
    HASH_ITER(hh, t->rows, r, tmp)
    {
        if (row_end_round(t, r, now_ms)) {
            HASH_DEL(t->rows, r);
            free(r);
        }
    }
    clear_round_flags(t);
    rank_all(t);
}

int mon_table_set_drain(struct mon_table *t, const char *name, bool drain)
{
    struct mon_row *r = row_find(t, name);

    if (!r)
        return -ENOENT;
    r->n.drain = drain;
    row_sync_ranked(t, r);
    return 0;
}

size_t mon_table_count(const struct mon_table *t)
{
    return HASH_COUNT(t->rows);
}

/* Snapshot order: ranked rows by rank, then the others by name. */
static int cmp_rank(const void *pa, const void *pb)
{
    const struct mon_row *a = *(const struct mon_row *const *)pa;
    const struct mon_row *b = *(const struct mon_row *const *)pb;
    unsigned ra = a->n.rank ? a->n.rank : UINT_MAX;
    unsigned rb = b->n.rank ? b->n.rank : UINT_MAX;

    if (ra != rb)
        return ra < rb ? -1 : 1;
    return strcmp(a->n.name, b->n.name);
}

size_t mon_table_snapshot(const struct mon_table *t, struct mon_node *out, size_t max)
{
    size_t count = HASH_COUNT(t->rows);
    size_t i = 0;
    struct mon_row **v;
    struct mon_row *r, *tmp;

    if (count == 0 || max == 0)
        return 0;
    v = xmalloc(count * sizeof(*v));
    HASH_ITER(hh, t->rows, r, tmp)
    {
        v[i++] = r;
    }
    qsort(v, count, sizeof(*v), cmp_rank);
    if (max > count)
        max = count;
    for (i = 0; i < max; i++)
        out[i] = v[i]->n;
    free(v);
    return max;
}

bool mon_table_get(const struct mon_table *t, const char *name, struct mon_node *out)
{
    const struct mon_row *r = row_find(t, name);

    if (!r)
        return false;
    *out = r->n;
    return true;
}

const char *mon_state_name(enum mon_state s)
{
    static const char *const names[MON_STATE_MAX] = {
        [MON_UP] = "up",
        [MON_SUSPECT] = "suspect",
        [MON_DOWN] = "down",
        [MON_DRAINING] = "draining",
    };

    if ((unsigned)s >= MON_STATE_MAX)
        return "unknown";
    return names[s];
}

/* ---- output ---------------------------------------------------------- */

/* snprintf-style appender: writes what fits, counts what the whole needs. */
struct out {
    char *buf;
    size_t len;
    size_t need;
};

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    size_t room = o->need < o->len ? o->len - o->need : 0;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(room ? o->buf + o->need : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->need += (size_t)n;
}

static int out_done(const struct out *o)
{
    return o->need > INT_MAX ? -EOVERFLOW : (int)o->need;
}

static double clamp_show(double x, double lo, double hi)
{
    if (isnan(x))
        return NAN;
    return x < lo ? lo : x > hi ? hi : x;
}

/* 7.8G, 15.6G, 512M, 100B: binary units, one decimal below 100. */
static void human_bytes(double b, char *buf, size_t len)
{
    static const char units[] = "BKMGTP";
    unsigned i = 0;

    b = clamp_show(b, 0.0, PROTO_MAX_BYTES);
    if (isnan(b)) {
        snprintf(buf, len, "-");
        return;
    }
    while (i + 1 < sizeof(units) - 1 && b >= 1023.5) {
        b /= 1024.0;
        i++;
    }
    if (i == 0)
        snprintf(buf, len, "%.0fB", b);
    else if (b < 99.95)
        snprintf(buf, len, "%.1f%c", b, units[i]);
    else
        snprintf(buf, len, "%.0f%c", b, units[i]);
}

static double age_s(const struct mon_node *r, uint64_t now_ms)
{
    return now_ms > r->last_ms ? (double)(now_ms - r->last_ms) / 1000.0 : 0.0;
}

enum col {
    COL_NAME = 0,
    COL_ADDR,
    COL_STATE,
    COL_CPU,
    COL_CPUS,
    COL_RAM_FREE,
    COL_RAM_TOTAL,
    COL_LOAD,
    COL_SERVICE,
    COL_RTT,
    COL_AGE,
    COL_WEIGHT,
    COL_RANK,
    COL_MAX
};

static const struct {
    const char *title;
    bool left; /* text columns are left-aligned, numbers right-aligned */
} cols[COL_MAX] = {
    [COL_NAME] = {"NAME", true},
    [COL_ADDR] = {"ADDR", true},
    [COL_STATE] = {"STATE", true},
    [COL_CPU] = {"CPU_IDLE", false},
    [COL_CPUS] = {"CPUS", false},
    [COL_RAM_FREE] = {"RAM_FREE", false},
    [COL_RAM_TOTAL] = {"RAM_TOTAL", false},
    [COL_LOAD] = {"LOAD1", false},
    [COL_SERVICE] = {"SERVICE", true},
    [COL_RTT] = {"RTT_MS", false},
    [COL_AGE] = {"AGE_S", false},
    [COL_WEIGHT] = {"WEIGHT", false},
    [COL_RANK] = {"RANK", false},
};

#define CELL_MAX 80

/* The CPUs the agent says its node may use (cpu_milli), NaN if none. */
static double node_cpus(const struct mon_node *r)
{
    if (r->m.cpu_milli == 0 || r->m.cpu_milli > PROTO_MAX_CPU_MILLI)
        return NAN;
    return r->m.cpu_milli / 1000.0;
}

/* One cell of the text table; NaN shows as "-". */
static void cell(const struct mon_node *r, enum col c, uint64_t now_ms, char *buf, size_t len)
{
    double v;

    switch (c) {
    case COL_NAME:
        snprintf(buf, len, "%.*s", (int)strnlen(r->name, PROTO_NAME_MAX), r->name);
        return;
    case COL_ADDR:
        snprintf(buf, len, "%.*s:%u", (int)strnlen(r->m.ip, sizeof(r->m.ip) - 1), r->m.ip,
                 (unsigned)r->m.port);
        return;
    case COL_STATE:
        snprintf(buf, len, "%s", mon_state_name(r->state));
        return;
    case COL_CPU:
        v = clamp_show(r->m.cpu_idle, 0.0, 100.0);
        snprintf(buf, len, isnan(v) ? "-" : "%.1f", v);
        return;
    case COL_CPUS: /* what CPU_IDLE is a share of; "-": the agent sent none */
        v = node_cpus(r);
        snprintf(buf, len, isnan(v) ? "-" : "%.2f", v);
        return;
    case COL_RAM_FREE:
        human_bytes(r->m.ram_free, buf, len);
        return;
    case COL_RAM_TOTAL:
        human_bytes(r->m.ram_total, buf, len);
        return;
    case COL_LOAD:
        v = clamp_show(r->m.load1, 0.0, PROTO_MAX_LOAD);
        snprintf(buf, len, isnan(v) ? "-" : "%.2f", v);
        return;
    case COL_SERVICE:
        snprintf(buf, len, "%s", r->m.service_up ? "up" : "down");
        return;
    case COL_RTT:
        v = r->has_rtt ? clamp_show(r->srtt_ms, 0.0, MON_MAX_RTT_MS) : NAN;
        snprintf(buf, len, isnan(v) ? "-" : "%.3f", v);
        return;
    case COL_AGE:
        snprintf(buf, len, "%.1f", age_s(r, now_ms));
        return;
    case COL_WEIGHT:
        snprintf(buf, len, "%u", r->eff_weight);
        return;
    case COL_RANK:
        if (r->rank)
            snprintf(buf, len, "%u", r->rank);
        else
            snprintf(buf, len, "-");
        return;
    case COL_MAX:
        break;
    }
    snprintf(buf, len, "?");
}

static void iso_utc(uint64_t wall_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;

    if ((uint64_t)secs != wall_ms / 1000 || !gmtime_r(&secs, &tm) ||
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "-");
}

/* The ANSI colour of a cell, or NULL: state and service only. */
static const char *cell_color(const struct mon_node *r, enum col c)
{
    static const char *const state_sgr[MON_STATE_MAX] = {
        [MON_UP] = "\033[32m",
        [MON_SUSPECT] = "\033[33m",
        [MON_DOWN] = "\033[1;31m",
        [MON_DRAINING] = "\033[36m",
    };

    if (c == COL_STATE && (unsigned)r->state < MON_STATE_MAX)
        return state_sgr[r->state];
    if (c == COL_SERVICE)
        return r->m.service_up ? "\033[32m" : "\033[1;31m";
    return NULL;
}

static void text_row(struct out *o, const int width[COL_MAX], const struct mon_node *r,
                     uint64_t now_ms, unsigned flags)
{
    char c[CELL_MAX];

    for (int i = 0; i < COL_MAX; i++) {
        const char *sep = i + 1 < COL_MAX ? "  " : "\n";
        const char *sgr = NULL;

        if (r) {
            cell(r, (enum col)i, now_ms, c, sizeof(c));
            if (flags & MON_FMT_COLOR)
                sgr = cell_color(r, (enum col)i);
        } else {
            snprintf(c, sizeof(c), "%s", cols[i].title);
            if (flags & MON_FMT_COLOR)
                sgr = "\033[1m";
        }
        if (sgr)
            out_printf(o, "%s", sgr);
        if (cols[i].left && i + 1 < COL_MAX)
            out_printf(o, "%-*s", width[i], c);
        else if (cols[i].left)
            out_printf(o, "%s", c);
        else
            out_printf(o, "%*s", width[i], c);
        out_printf(o, "%s%s", sgr ? "\033[0m" : "", sep);
    }
}

int mon_table_format_text(const struct mon_node *rows, size_t n, uint64_t round, uint64_t now_ms,
                          uint64_t wall_ms, char *buf, size_t len)
{
    return mon_table_format_text_ex(rows, n, round, now_ms, wall_ms, 0, buf, len);
}

int mon_table_format_text_ex(const struct mon_node *rows, size_t n, uint64_t round, uint64_t now_ms,
                             uint64_t wall_ms, unsigned flags, char *buf, size_t len)
{
    struct out o = {buf, buf ? len : 0, 0};
    int width[COL_MAX];
    char c[CELL_MAX];
    size_t up = 0;

    if (o.len)
        buf[0] = '\0';
    for (int i = 0; i < COL_MAX; i++)
        width[i] = (int)strlen(cols[i].title);
    for (size_t k = 0; k < n; k++) {
        if (rows[k].state == MON_UP)
            up++;
        for (int i = 0; i < COL_MAX; i++) {
            int w;

            cell(&rows[k], (enum col)i, now_ms, c, sizeof(c));
            w = (int)strlen(c);
            if (w > width[i])
                width[i] = w;
        }
    }
    iso_utc(wall_ms, c, sizeof(c));
    out_printf(&o, "round %llu  %s  nodes %zu  up %zu\n", (unsigned long long)round, c, n, up);
    text_row(&o, width, NULL, now_ms, flags);
    for (size_t k = 0; k < n; k++)
        text_row(&o, width, &rows[k], now_ms, flags);
    out_printf(&o, "\n");
    return out_done(&o);
}

static void json_oom(void)
{
    fprintf(stderr, "fulcrum: out of memory building the status JSON\n");
    abort();
}

static void json_check(const void *p)
{
    if (!p)
        json_oom();
}

/* Adds x rounded to `scale` (10 = one decimal), or null when not finite,
 * so cJSON's %1.15g prints 12.3, not 12.300000000000001. */
static void json_num(cJSON *o, const char *key, double x, double scale)
{
    if (isfinite(x))
        json_check(cJSON_AddNumberToObject(o, key, round(x * scale) / scale));
    else
        json_check(cJSON_AddNullToObject(o, key));
}

static void json_str(cJSON *o, const char *key, const char *s)
{
    json_check(cJSON_AddStringToObject(o, key, s));
}

static void json_node(cJSON *arr, const struct mon_node *r, uint64_t now_ms)
{
    cJSON *o = cJSON_CreateObject();
    char s[CELL_MAX];

    json_check(o);
    if (!cJSON_AddItemToArray(arr, o))
        json_oom();
    cell(r, COL_NAME, now_ms, s, sizeof(s));
    json_str(o, "name", s);
    cell(r, COL_ADDR, now_ms, s, sizeof(s));
    json_str(o, "addr", s);
    json_str(o, "state", mon_state_name(r->state));
    json_num(o, "cpu_idle", clamp_show(r->m.cpu_idle, 0.0, 100.0), 10.0);
    json_num(o, "cpus", node_cpus(r), 1000.0);
    json_num(o, "ram_free", clamp_show(r->m.ram_free, 0.0, PROTO_MAX_BYTES), 1.0);
    json_num(o, "ram_total", clamp_show(r->m.ram_total, 0.0, PROTO_MAX_BYTES), 1.0);
    json_num(o, "load1", clamp_show(r->m.load1, 0.0, PROTO_MAX_LOAD), 100.0);
    json_str(o, "service", r->m.service_up ? "up" : "down");
    json_num(o, "rtt_ms", r->has_rtt ? clamp_show(r->srtt_ms, 0.0, MON_MAX_RTT_MS) : NAN, 1000.0);
    json_num(o, "age_s", age_s(r, now_ms), 10.0);
    json_num(o, "weight", r->eff_weight, 1.0);
    json_num(o, "rank", r->rank, 1.0);
}

int mon_table_format_json(const struct mon_node *rows, size_t n, uint64_t round, uint64_t now_ms,
                          uint64_t wall_ms, char *buf, size_t len)
{
    struct out o = {buf, buf ? len : 0, 0};
    cJSON *root = cJSON_CreateObject();
    cJSON *arr;
    char *text;

    json_check(root);
    if (o.len)
        buf[0] = '\0';
    json_num(root, "round", (double)round, 1.0);
    json_num(root, "ts", (double)wall_ms / 1000.0, 1000.0);
    arr = cJSON_AddArrayToObject(root, "nodes");
    json_check(arr);
    for (size_t k = 0; k < n; k++)
        json_node(arr, &rows[k], now_ms);
    text = cJSON_PrintUnformatted(root);
    json_check(text);
    out_printf(&o, "%s", text);
    cJSON_free(text);
    cJSON_Delete(root);
    return out_done(&o);
}
