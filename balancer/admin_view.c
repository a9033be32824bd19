/* admin_view.c - what the admin port shows: GET /status (aligned text),
 * /status.json and the no-script table of / (the live page around it is
 * admin_page.c), rendered into the growable response body
 * (struct admin_view_buf) from one snapshot per request. The HTTP side is
 * admin.c; /metrics is admin_metrics.c.
 *
 * Design notes.
 *
 * - The pages are built from one snapshot per request (struct
 *   admin_view_snap): the monitor's rows and every balancer node with its
 *   atomics read once, with name indexes so a cluster of 4096 nodes costs
 *   O(n log n).
 * - status.json takes the monitor's own JSON (mon_table_format_json) and adds
 *   the balancer's fields, so the two schemas cannot drift apart; /status
 *   likewise shows the monitor's own text table.
 * - The body grows as needed up to ADMIN_VIEW_BUF_MAX (with 4096 nodes
 *   status.json is about 1.5 MB, /metrics 2.7 MB); past it the buffer only
 *   records toobig and admin.c answers 500 instead.
 */
#include "admin_view.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_page.h"
#include "clock.h"
#include "counters.h"
#include "mon.h"
#include "nodes.h"
#include "xalloc.h"

#define CELL_MAX  96 /* one cell of a text table */
#define TCOLS_MAX 10

/* ---- the response body ---- */

/* Makes room for `more` bytes plus a NUL; false (and toobig) past the cap. */
static bool buf_room(struct admin_view_buf *b, size_t more)
{
    size_t need, cap;

    if (b->toobig)
        return false;
    if (more > ADMIN_VIEW_BUF_MAX || b->len + more + 1 > ADMIN_VIEW_BUF_MAX) {
        b->toobig = true;
        return false;
    }
    need = b->len + more + 1;
    if (need <= b->cap)
        return true;
    cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > ADMIN_VIEW_BUF_MAX)
        cap = ADMIN_VIEW_BUF_MAX;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
    return true;
}

void admin_view_buf_put(struct admin_view_buf *b, const char *s, size_t n)
{
    if (!buf_room(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void admin_view_buf_puts(struct admin_view_buf *b, const char *s)
{
    admin_view_buf_put(b, s, strlen(s));
}

void admin_view_buf_printf(struct admin_view_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!buf_room(b, 128))
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        if (!buf_room(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void admin_view_buf_reset(struct admin_view_buf *b)
{
    b->len = 0;
    b->toobig = false;
    if (b->p)
        b->p[0] = '\0';
}

void admin_view_buf_done(struct admin_view_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- the snapshot every page is built from ---- */

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
    return strcmp((*(const struct admin_view_node *const *)x)->n->name,
                  (*(const struct admin_view_node *const *)y)->n->name);
}

static int cmp_node_key(const void *key, const void *y)
{
    return strcmp(key, (*(const struct admin_view_node *const *)y)->n->name);
}

static const struct mon_node *snap_row(const struct admin_view_snap *s, const char *name)
{
    const struct mon_node *const *r;

    if (!s->nrows)
        return NULL;
    r = bsearch(name, s->rows_by_name, s->nrows, sizeof(*r), cmp_row_key);
    return r ? *r : NULL;
}

static const struct admin_view_node *snap_node(const struct admin_view_snap *s, const char *name)
{
    const struct admin_view_node *const *v;

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

void admin_view_snap_take(const struct lb_admin_ctx *ctx, struct admin_view_snap *s)
{
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
        struct admin_view_node *v = &s->nodes[i];
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

void admin_view_snap_done(struct admin_view_snap *s)
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

double admin_view_uptime_s(const struct lb_admin_ctx *ctx, const struct admin_view_snap *s)
{
    return s->now_ms > ctx->start_ms ? (double)(s->now_ms - ctx->start_ms) / 1000.0 : 0.0;
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
typedef bool (*admin_cells_fn)(const struct lb_admin_ctx *ctx, const struct admin_view_snap *s,
                               size_t i, char cell[][CELL_MAX]);

/* One aligned table: the title row, then the rows `fn` accepts. The first
 * nleft columns (names, addresses, states) are left-aligned, the numbers
 * after them right-aligned; no line ends in spaces. */
static void text_table(struct admin_view_buf *b, const struct lb_admin_ctx *ctx,
                       const struct admin_view_snap *s, const char *const *titles, unsigned ncols,
                       unsigned nleft, admin_cells_fn fn)
{
    char cell[TCOLS_MAX][CELL_MAX];
    int width[TCOLS_MAX];

    for (unsigned k = 0; k < ncols; k++)
        width[k] = (int)strlen(titles[k]);
    for (size_t i = 0; i < s->n; i++) {
        if (!fn(ctx, s, i, cell))
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
        } else if (!fn(ctx, s, i - 1, cell)) {
            continue;
        }
        for (unsigned k = 0; k < ncols; k++) {
            const char *sep = k ? "  " : "";

            if (k >= nleft)
                admin_view_buf_printf(b, "%s%*s", sep, width[k], cell[k]);
            else if (k + 1 < ncols)
                admin_view_buf_printf(b, "%s%-*s", sep, width[k], cell[k]);
            else
                admin_view_buf_printf(b, "%s%s", sep, cell[k]);
        }
        admin_view_buf_puts(b, "\n");
    }
}

/* Static nodes (every node when there is no monitor): NAME ADDR STATE WEIGHT. */
static bool static_cells(const struct lb_admin_ctx *ctx, const struct admin_view_snap *s, size_t i,
                         char cell[][CELL_MAX])
{
    const struct admin_view_node *v = &s->nodes[i];
    const char *st = mon_state_name(v->state);

    if (ctx->mon && v->n->src != LB_SRC_STATIC)
        return false;
    if (v->ejected && v->state != MON_DRAINING && v->state != MON_DOWN)
        st = "ejected";
    snprintf(cell[0], CELL_MAX, "%s", v->n->name);
    snprintf(cell[1], CELL_MAX, "%s", v->addr);
    snprintf(cell[2], CELL_MAX, "%s", st);
    snprintf(cell[3], CELL_MAX, "%u", v->n->metric_weight);
    return true;
}

static bool balancer_cells(const struct lb_admin_ctx *ctx, const struct admin_view_snap *s,
                           size_t i, char cell[][CELL_MAX])
{
    const struct admin_view_node *v = &s->nodes[i];

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
static void mon_text(struct admin_view_buf *b, const struct admin_view_snap *s)
{
    size_t room;
    int n;

    if (!buf_room(b, 4096))
        return;
    room = b->cap - b->len;
    n = mon_table_format_text(s->rows, s->nrows, s->round, s->now_ms, s->wall_ms, b->p + b->len,
                              room);
    if (n < 0) {
        admin_view_buf_printf(b, "(monitor table: %s)\n", strerror(-n));
        return;
    }
    if ((size_t)n >= room) {
        if (!buf_room(b, (size_t)n))
            return;
        mon_table_format_text(s->rows, s->nrows, s->round, s->now_ms, s->wall_ms, b->p + b->len,
                              b->cap - b->len);
    }
    b->len += (size_t)n;
}

int admin_view_status_text(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                           struct admin_view_buf *out, const char **err)
{
    static const char *const st_titles[] = {"NAME", "ADDR", "STATE", "WEIGHT"};
    static const char *const lb_titles[] = {"NODE",      "ACTIVE", "CONNS",   "BYTES_IN",
                                            "BYTES_OUT", "FAILS",  "EJECTED", "LB_WEIGHT"};
    struct admin_view_snap snap, *s = &snap;
    size_t nstatic = 0, up = 0;
    char ts[32];

    admin_view_snap_take(ctx, s);
    for (size_t i = 0; i < s->n; i++) {
        if (ctx->mon && s->nodes[i].n->src != LB_SRC_STATIC)
            continue;
        nstatic++;
        if (s->nodes[i].state == MON_UP && !s->nodes[i].ejected)
            up++;
    }
    iso_utc(s->wall_ms, ts, sizeof(ts));
    if (ctx->mon)
        mon_text(out, s);
    if (!ctx->mon || nstatic) {
        admin_view_buf_printf(out, "%s  %s  nodes %zu  up %zu\n", ctx->mon ? "static" : "nodes", ts,
                              nstatic, up);
        text_table(out, ctx, s, st_titles, 4, 3, static_cells);
        admin_view_buf_puts(out, "\n");
    }
    admin_view_buf_printf(
        out, "balancer  policy %s  workers %u  active %u/%u  accepted %" PRIu64 "  uptime %.0fs\n",
        ctx->policy ? ctx->policy : "-", ctx->workers,
        atomic_load_explicit(&ctx->ctr->active, memory_order_relaxed), ctx->maxconn,
        ctr_get(&ctx->ctr->accepted), admin_view_uptime_s(ctx, s));
    text_table(out, ctx, s, lb_titles, 8, 1, balancer_cells);
    admin_view_snap_done(s);
    return 0;
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
static cJSON *mon_json(const struct admin_view_snap *s)
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
static void json_lb_fields(cJSON *o, const struct admin_view_node *v)
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
static void json_node_norow(cJSON *arr, const struct admin_view_node *v)
{
    static const char *const nulls[] = {"cpu_idle", "cpus",    "ram_free", "ram_total",
                                        "load1",    "service", "rtt_ms",   "age_s"};
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

static cJSON *json_balancer(const struct lb_admin_ctx *ctx, const struct admin_view_snap *s,
                            uint64_t admin_refused)
{
    struct lb_counters *ctr = ctx->ctr;
    cJSON *o = json_check(cJSON_CreateObject());
    cJSON *ended = json_check(cJSON_CreateObject());

    json_u64(o, "accepted", ctr_get(&ctr->accepted));
    json_u64(o, "refused_maxconn", ctr_get(&ctr->refused_maxconn));
    json_u64(o, "refused_emfile", ctr_get(&ctr->refused_emfile));
    json_u64(o, "retries", ctr_get(&ctr->retries));
    json_u64(o, "connects_at_once", ctr_get(&ctr->connects_at_once));
    json_u64(o, "panic_picks", ctr_get(&ctr->panic_picks));
    json_u64(o, "active", atomic_load_explicit(&ctr->active, memory_order_relaxed));
    json_u64(o, "bytes_in", ctr_get(&ctr->bytes_in));
    json_u64(o, "bytes_out", ctr_get(&ctr->bytes_out));
    json_u64(o, "pipes", atomic_load_explicit(&ctr->pipes, memory_order_relaxed));
    for (int e = 0; e < LB_END_MAX; e++)
        json_u64(ended, lb_end_name((enum lb_end)e), ctr_get(&ctr->ended[e]));
    if (!cJSON_AddItemToObject(o, "ended", ended))
        json_oom();
    json_check(cJSON_AddStringToObject(o, "policy", ctx->policy ? ctx->policy : ""));
    json_u64(o, "workers", ctx->workers);
    json_u64(o, "maxconn", ctx->maxconn);
    json_check(
        cJSON_AddNumberToObject(o, "uptime_s", round(admin_view_uptime_s(ctx, s) * 10.0) / 10.0));
    json_u64(o, "admin_refused", admin_refused);
    return o;
}

/* mon_stats as a JSON object, through the monitor's own formatter. */
static cJSON *json_monitor(const struct lb_admin_ctx *ctx)
{
    char buf[2048];
    int n;

    if (!ctx->mon)
        return json_check(cJSON_CreateNull());
    buf[0] = '{';
    n = mon_format_stats(mon_stats(ctx->mon), true, buf + 1, sizeof(buf) - 2);
    if (n < 0 || (size_t)n >= sizeof(buf) - 2)
        return json_check(cJSON_CreateNull());
    buf[n + 1] = '}';
    return json_check(cJSON_ParseWithLength(buf, (size_t)n + 2));
}

int admin_view_status_json(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                           struct admin_view_buf *out, const char **err)
{
    struct admin_view_snap snap, *s = &snap;
    cJSON *root, *arr, *o;
    bool *seen;
    char *text;

    admin_view_snap_take(ctx, s);
    root = mon_json(s);
    if (!root) {
        admin_view_snap_done(s);
        *err = "monitor table did not format";
        return -EPROTO;
    }
    arr = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    seen = xcalloc(s->n, sizeof(*seen));
    cJSON_ArrayForEach(o, arr)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        const struct admin_view_node *v =
            cJSON_IsString(name) ? snap_node(s, name->valuestring) : NULL;
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
    if (!cJSON_AddItemToObject(root, "balancer", json_balancer(ctx, s, admin_refused)) ||
        !cJSON_AddItemToObject(root, "monitor", json_monitor(ctx)))
        json_oom();
    text = cJSON_PrintUnformatted(root);
    if (!text)
        json_oom();
    admin_view_buf_puts(out, text);
    admin_view_buf_puts(out, "\n");
    cJSON_free(text);
    cJSON_Delete(root);
    admin_view_snap_done(s);
    return 0;
}

/* ---- GET /: HTML ---- */

static void html_text(struct admin_view_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            admin_view_buf_puts(b, "&amp;");
            break;
        case '<':
            admin_view_buf_puts(b, "&lt;");
            break;
        case '>':
            admin_view_buf_puts(b, "&gt;");
            break;
        case '"':
            admin_view_buf_puts(b, "&quot;");
            break;
        default:
            admin_view_buf_put(b, s, 1);
        }
    }
}

static void html_num(struct admin_view_buf *b, double x, int decimals)
{
    if (isfinite(x))
        admin_view_buf_printf(b, "<td>%.*f</td>", decimals, x);
    else
        admin_view_buf_puts(b, "<td>-</td>");
}

static void html_row(struct admin_view_buf *b, const struct admin_view_node *v)
{
    const struct mon_node *r = v->row;
    const char *st = v->ejected && v->state == MON_UP ? "ejected" : mon_state_name(v->state);

    admin_view_buf_printf(b, "<tr class=\"%s\"><td class=\"l\">", st);
    html_text(b, v->n->name);
    admin_view_buf_printf(
        b, "</td><td class=\"l\">%s</td><td class=\"l\">%s</td><td class=\"l\">%s</td>", v->addr,
        v->n->src == LB_SRC_STATIC ? "static" : "agent", st);
    html_num(b, r ? r->m.cpu_idle : NAN, 1);
    html_num(b, r && r->m.ram_total > 0 ? 100.0 * r->m.ram_free / r->m.ram_total : NAN, 1);
    html_num(b, r && r->has_rtt ? r->srtt_ms : NAN, 2);
    admin_view_buf_printf(b,
                          "<td>%u</td><td>%u</td><td>%u</td><td>%" PRIu64 "</td><td>%" PRIu64
                          "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64
                          "</td></tr>\n",
                          r ? r->eff_weight : v->n->metric_weight, v->lb_weight, v->active,
                          v->conns, v->bytes_in, v->bytes_out, v->fails, v->ejections);
}

/* GET /: the live page (admin_page.c), with the table above in its
 * <noscript> block: a browser without JavaScript sees the table as of the
 * request, and the page reloads itself every 2 s. */
int admin_view_html(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                    struct admin_view_buf *out, const char **err)
{
    struct admin_page_part head, tail;
    struct admin_view_snap snap, *s = &snap;
    char ts[32];

    admin_page_parts(&head, &tail);
    admin_view_buf_put(out, head.p, head.len);
    admin_view_snap_take(ctx, s);
    iso_utc(s->wall_ms, ts, sizeof(ts));
    admin_view_buf_printf(out, "<p>%s &middot; round %" PRIu64 " &middot; policy ", ts, s->round);
    html_text(out, ctx->policy ? ctx->policy : "-");
    admin_view_buf_printf(out,
                          " &middot; workers %u &middot; active %u/%u &middot; accepted %" PRIu64
                          " &middot; uptime %.0f s</p>\n",
                          ctx->workers,
                          atomic_load_explicit(&ctx->ctr->active, memory_order_relaxed),
                          ctx->maxconn, ctr_get(&ctx->ctr->accepted), admin_view_uptime_s(ctx, s));
    admin_view_buf_puts(out,
                        "<table>\n<tr><th class=\"l\">node</th><th class=\"l\">addr</th>"
                        "<th class=\"l\">source</th><th class=\"l\">state</th><th>cpu idle %</th>"
                        "<th>ram free %</th><th>rtt ms</th><th>weight</th><th>lb weight</th>"
                        "<th>active</th><th>conns</th><th>bytes in</th><th>bytes out</th>"
                        "<th>fails</th><th>ejections</th></tr>\n");
    for (size_t i = 0; i < s->n; i++)
        html_row(out, s->nodes_by_name[i]);
    admin_view_buf_puts(out, "</table>\n");
    admin_view_snap_done(s);
    admin_view_buf_put(out, tail.p, tail.len);
    return 0;
}
