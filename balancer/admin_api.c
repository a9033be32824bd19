/* admin_api.c - the runtime API under /api/ (routes in admin_api.h, schema
 * in docs/admin.md "Runtime API"): nodes with their weights and counters,
 * drain, the weight override, counters and the effective configuration.
 *
 * Design notes.
 *
 * - Every answer is built with cJSON from one snapshot (admin_view.h), so a
 *   node's fields agree with each other; a write answers with the node as
 *   it is after the write.
 * - /api/counters is /metrics parsed back (admin_api_prom_to_json) minus the
 *   per-node families, which /api/nodes already gives: the two cannot drift
 *   apart, and a counter added to /metrics shows up here by itself.
 * - /api/config asks cfg_dump() for the table, the config struct and the
 *   command line the balancer started with; the source of a value is found
 *   again from the command line and the file, not remembered.
 */
#include "admin_api.h"

#include <errno.h>
#include <http_parser.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_auth.h"
#include "admin_metrics.h"
#include "clock.h"
#include "log.h"
#include "mon.h"
#include "nodes.h"

#define PROM_FIELD_MAX  256 /* a metric name or label value in /metrics */
#define PROM_LABELS_MAX 4

/* ---- JSON helpers: allocation failure aborts, as xalloc does ---- */

static cJSON *jcheck(cJSON *j)
{
    if (!j) {
        fprintf(stderr, "fulcrum: out of memory building the admin API JSON\n");
        abort();
    }
    return j;
}

static void jnum(cJSON *o, const char *k, double v)
{
    jcheck(cJSON_AddNumberToObject(o, k, v));
}

static void jstr(cJSON *o, const char *k, const char *v)
{
    jcheck(cJSON_AddStringToObject(o, k, v));
}

static void jbool(cJSON *o, const char *k, bool v)
{
    jcheck(cJSON_AddBoolToObject(o, k, v));
}

static void jadd(cJSON *o, const char *k, cJSON *item)
{
    if (!cJSON_AddItemToObject(o, k, item))
        jcheck(NULL);
}

/* Appends j (consumed) to out as one line. */
static void jsend(cJSON *j, struct admin_view_buf *out)
{
    char *text = cJSON_PrintUnformatted(j);

    if (!text)
        jcheck(NULL);
    admin_view_buf_puts(out, text);
    admin_view_buf_puts(out, "\n");
    cJSON_free(text);
    cJSON_Delete(j);
}

static int api_error(struct admin_view_buf *out, int code, const char *msg)
{
    cJSON *j = jcheck(cJSON_CreateObject());

    jstr(j, "error", msg);
    admin_view_buf_reset(out);
    jsend(j, out);
    return code;
}

/* ---- nodes ---- */

bool admin_api_name_valid(const char *s, size_t n)
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

static cJSON *node_json(const struct admin_view_node *v)
{
    const struct lb_node *n = v->n;
    cJSON *o = jcheck(cJSON_CreateObject());
    unsigned reported = v->row ? v->row->eff_weight : n->gone ? 0 : n->metric_weight;

    jstr(o, "name", n->name);
    jstr(o, "addr", v->addr);
    jstr(o, "source", n->src == LB_SRC_STATIC ? "static" : "agent");
    jstr(o, "state", mon_state_name(v->state));
    jnum(o, "weight", reported);
    jnum(o, "effective_weight", v->lb_weight);
    if (n->override == LB_OVERRIDE_NONE)
        jcheck(cJSON_AddNullToObject(o, "override"));
    else
        jnum(o, "override", n->override);
    jbool(o, "drain", n->drain);
    jbool(o, "ejected", v->ejected);
    jbool(o, "gone", n->gone);
    jnum(o, "active", v->active);
    jnum(o, "conns_total", (double)v->conns);
    jnum(o, "bytes_in", (double)v->bytes_in);
    jnum(o, "bytes_out", (double)v->bytes_out);
    jnum(o, "connect_failures", (double)v->fails);
    jnum(o, "ejections", (double)v->ejections);
    return o;
}

/* Appends node `name` as it is now; 404 when the registry lacks it. */
static int send_node(const struct lb_admin_ctx *ctx, const char *name, struct admin_view_buf *out)
{
    const struct lb_node *n = lb_nodes_find(ctx->nodes, name);
    struct admin_view_snap s;

    if (!n)
        return api_error(out, 404, "unknown node");
    admin_view_snap_take(ctx, &s);
    jsend(node_json(&s.nodes[n->idx]), out); /* snapshot nodes are by index */
    admin_view_snap_done(&s);
    return 200;
}

static int send_nodes(const struct lb_admin_ctx *ctx, struct admin_view_buf *out)
{
    cJSON *root = jcheck(cJSON_CreateObject()), *arr = jcheck(cJSON_CreateArray());
    struct admin_view_snap s;

    admin_view_snap_take(ctx, &s);
    for (size_t i = 0; i < s.n; i++)
        if (!cJSON_AddItemToArray(arr, node_json(s.nodes_by_name[i])))
            jcheck(NULL);
    admin_view_snap_done(&s);
    jadd(root, "nodes", arr);
    jsend(root, out);
    return 200;
}

int admin_api_set_drain(const struct lb_admin_ctx *ctx, const char *name, bool drain)
{
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
    if (r == -ENOENT && rm == -ENOENT)
        return -ENOENT;
    return r == -ENOENT ? 0 : r;
}

static int do_drain(const struct lb_admin_ctx *ctx, const struct admin_api_req *rq,
                    const char *name, bool drain, struct admin_view_buf *out)
{
    int r = admin_api_set_drain(ctx, name, drain);

    if (r == -ENOENT)
        return api_error(out, 404, "unknown node");
    if (r < 0)
        return api_error(out, 500, "drain failed");
    log_info("admin: %s node=%s from=%s", drain ? "drain" : "undrain", name, rq->peer);
    if (!lb_nodes_find(ctx->nodes, name)) { /* only the monitor has it so far */
        cJSON *j = jcheck(cJSON_CreateObject());

        jstr(j, "name", name);
        jbool(j, "drain", drain);
        jsend(j, out);
        return 200;
    }
    return send_node(ctx, name, out);
}

static int do_weight(const struct lb_admin_ctx *ctx, const struct admin_api_req *rq,
                     const char *name, bool clear, struct admin_view_buf *out)
{
    const char *why = NULL;
    int w = LB_OVERRIDE_NONE, r;

    if (!clear &&
        admin_api_parse_weight(rq->query, rq->query_len, rq->body, rq->body_len, &w, &why) < 0)
        return api_error(out, 400, why);
    r = lb_nodes_set_override(ctx->nodes, name, w, clock_mono_ms());
    if (r == -ENOENT)
        return api_error(out, 404, "unknown node");
    if (r < 0)
        return api_error(out, 400, "weight out of range 0..256");
    if (clear)
        log_info("admin: weight node=%s override cleared from=%s", name, rq->peer);
    else
        log_info("admin: weight node=%s override=%d from=%s", name, w, rq->peer);
    return send_node(ctx, name, out);
}

/* ---- counters and config ---- */

int admin_api_metrics(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                      struct admin_view_buf *out, const char **err)
{
    static const enum admin_auth_verdict why[] = {ADMIN_AUTH_MISSING, ADMIN_AUTH_BAD};
    int r = admin_metrics_prometheus(ctx, admin_refused, out, err);

    if (r < 0)
        return r;
    admin_view_buf_puts(out, "# HELP fulcrum_admin_auth_refused_total Admin requests refused "
                             "with 401: token missing or bad.\n"
                             "# TYPE fulcrum_admin_auth_refused_total counter\n");
    for (size_t i = 0; i < sizeof(why) / sizeof(why[0]); i++)
        admin_view_buf_printf(out, "fulcrum_admin_auth_refused_total{reason=\"%s\"} %llu\n",
                              admin_auth_verdict_name(why[i]),
                              ctx->auth ? (unsigned long long)ctx->auth->refused[why[i]] : 0ULL);
    return 0;
}

static int send_counters(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                         struct admin_view_buf *out)
{
    struct admin_view_buf prom = {0};
    cJSON *root = jcheck(cJSON_CreateObject()), *ctr = jcheck(cJSON_CreateObject());
    const char *err = "metrics failed";
    int r = admin_api_metrics(ctx, admin_refused, &prom, &err);

    if (r == 0 && !prom.toobig)
        r = admin_api_prom_to_json(prom.p, prom.len, "fulcrum_node_", ctr);
    admin_view_buf_done(&prom);
    jadd(root, "counters", ctr);
    if (r < 0) {
        cJSON_Delete(root);
        log_warn("admin: /metrics did not parse back for /api/counters");
        return api_error(out, 500, err);
    }
    jsend(root, out);
    return 200;
}

static void config_add(void *arg, const struct cfg_opt *o, const char *source,
                       const char *const *vals, size_t n)
{
    cJSON *opt = jcheck(cJSON_CreateObject()), *v;

    switch (o->type) {
    case CFG_LIST:
        v = jcheck(cJSON_CreateArray());
        for (size_t i = 0; i < n; i++)
            if (!cJSON_AddItemToArray(v, jcheck(cJSON_CreateString(vals[i]))))
                jcheck(NULL);
        break;
    case CFG_INT:
    case CFG_DOUBLE:
        v = jcheck(cJSON_CreateNumber(strtod(vals[0], NULL)));
        break;
    case CFG_BOOL:
        v = jcheck(cJSON_CreateBool(!strcmp(vals[0], "yes")));
        break;
    default:
        v = jcheck(cJSON_CreateString(vals[0]));
        break;
    }
    jadd(opt, "value", v);
    jstr(opt, "source", source);
    jadd(arg, o->key, opt);
}

static int send_config(const struct lb_admin_ctx *ctx, struct admin_view_buf *out)
{
    cJSON *root, *cfg;
    char err[256];

    if (!ctx->prog || !ctx->cfg)
        return api_error(out, 404, "configuration not available");
    root = jcheck(cJSON_CreateObject());
    cfg = jcheck(cJSON_CreateObject());
    jadd(root, "config", cfg);
    if (cfg_dump(ctx->prog, ctx->cfg, ctx->argc, ctx->argv, config_add, cfg, err, sizeof(err))) {
        cJSON_Delete(root);
        log_warn("admin: /api/config: %s", err);
        return api_error(out, 500, "cannot read the config file again");
    }
    jsend(root, out);
    return 200;
}

/* ---- routing ---- */

static bool seg_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && !memcmp(s, lit, n);
}

/* /api/nodes/NAME[/ACTION[/clear]]: rest is what follows "/api/nodes/". */
static int route_node(const struct lb_admin_ctx *ctx, const struct admin_api_req *rq,
                      const char *rest, size_t rlen, struct admin_view_buf *out, const char **allow)
{
    const char *slash = memchr(rest, '/', rlen), *act = NULL;
    size_t nlen = slash ? (size_t)(slash - rest) : rlen, alen = 0;
    char name[ADMIN_NAME_MAX + 1];
    bool get = rq->method == HTTP_GET || rq->method == HTTP_HEAD;
    bool post = rq->method == HTTP_POST;

    if (!admin_api_name_valid(rest, nlen))
        return api_error(out, 400, "bad node name");
    memcpy(name, rest, nlen);
    name[nlen] = '\0';
    if (slash) {
        act = slash + 1;
        alen = rlen - nlen - 1;
    }
    if (!act) {
        *allow = "GET, HEAD";
        return get ? send_node(ctx, name, out) : api_error(out, 405, "method not allowed");
    }
    if (seg_is(act, alen, "drain") || seg_is(act, alen, "undrain")) {
        *allow = "POST";
        return post ? do_drain(ctx, rq, name, alen == 5, out)
                    : api_error(out, 405, "method not allowed");
    }
    if (seg_is(act, alen, "weight")) {
        *allow = "POST, DELETE";
        if (!post && rq->method != HTTP_DELETE)
            return api_error(out, 405, "method not allowed");
        return do_weight(ctx, rq, name, rq->method == HTTP_DELETE, out);
    }
    if (seg_is(act, alen, "weight/clear")) {
        *allow = "POST";
        return post ? do_weight(ctx, rq, name, true, out)
                    : api_error(out, 405, "method not allowed");
    }
    return api_error(out, 404, "not found");
}

int admin_api_handle(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                     const struct admin_api_req *rq, struct admin_view_buf *out, const char **allow)
{
    static const char nodes_prefix[] = "/api/nodes/";
    const size_t np = sizeof(nodes_prefix) - 1;
    const char *p = rq->path;
    size_t n = rq->path_len;
    bool get = rq->method == HTTP_GET || rq->method == HTTP_HEAD;

    if (!(seg_is(p, n, "/api") || (n > 4 && !memcmp(p, "/api/", 5))))
        return 0;
    *allow = NULL;
    if (n > np && !memcmp(p, nodes_prefix, np))
        return route_node(ctx, rq, p + np, n - np, out, allow);
    if (!seg_is(p, n, "/api/nodes") && !seg_is(p, n, "/api/counters") &&
        !seg_is(p, n, "/api/config"))
        return api_error(out, 404, "not found");
    *allow = "GET, HEAD";
    if (!get)
        return api_error(out, 405, "method not allowed");
    if (seg_is(p, n, "/api/nodes"))
        return send_nodes(ctx, out);
    if (seg_is(p, n, "/api/counters"))
        return send_counters(ctx, admin_refused, out);
    return send_config(ctx, out);
}

/* ---- parsing ---- */

/* s[0..n) without the whitespace around it. */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && strchr(" \t\r\n", **s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && strchr(" \t\r\n", (*s)[*n - 1]))
        (*n)--;
}

/* A weight in decimal digits only: no sign, no spaces inside. */
static int weight_digits(const char *s, size_t n, int *out, const char **err)
{
    unsigned long v = 0;

    trim(&s, &n);
    if (n == 0 || n > 9) {
        *err = n ? "weight out of range 0..256" : "weight is empty";
        return n ? -ERANGE : -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            *err = "weight is not a whole number";
            return -EINVAL;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > LB_OVERRIDE_MAX) {
        *err = "weight out of range 0..256";
        return -ERANGE;
    }
    *out = (int)v;
    return 0;
}

/* The value of `key` in an &-separated key=value list; false if absent. */
static bool form_value(const char *s, size_t n, const char *key, const char **v, size_t *vn)
{
    size_t klen = strlen(key);

    while (n > 0) {
        const char *amp = memchr(s, '&', n);
        size_t len = amp ? (size_t)(amp - s) : n;

        if (len > klen && !memcmp(s, key, klen) && s[klen] == '=') {
            *v = s + klen + 1;
            *vn = len - klen - 1;
            return true;
        }
        if (!amp)
            break;
        n -= len + 1;
        s = amp + 1;
    }
    return false;
}

static int weight_json(const char *s, size_t n, int *out, const char **err)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "weight");
    int r = 0;

    while (end && end < s + n && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (!cJSON_IsObject(j) || !cJSON_IsNumber(w) || end != s + n) {
        *err = "body is not {\"weight\":N}";
        r = -EINVAL;
    } else if (!isfinite(w->valuedouble) || w->valuedouble != floor(w->valuedouble)) {
        *err = "weight is not a whole number";
        r = -EINVAL;
    } else if (w->valuedouble < 0 || w->valuedouble > LB_OVERRIDE_MAX) {
        *err = "weight out of range 0..256";
        r = -ERANGE;
    } else {
        *out = (int)w->valuedouble;
    }
    cJSON_Delete(j);
    return r;
}

int admin_api_parse_weight(const char *query, size_t qlen, const char *body, size_t blen, int *out,
                           const char **err)
{
    const char *v;
    size_t vn;

    if (query && form_value(query, qlen, "weight", &v, &vn))
        return weight_digits(v, vn, out, err);
    if (body)
        trim(&body, &blen);
    if (!body || blen == 0) {
        *err = "no weight: send ?weight=N or a body N";
        return -EINVAL;
    }
    if (body[0] == '{')
        return weight_json(body, blen, out, err);
    if (form_value(body, blen, "weight", &v, &vn))
        return weight_digits(v, vn, out, err);
    return weight_digits(body, blen, out, err);
}

/* One Prometheus label value at s (after the opening quote), unescaped into
 * buf; returns the bytes consumed including the closing quote, or -EINVAL. */
static int prom_label_value(const char *s, size_t n, char *buf, size_t cap)
{
    size_t i = 0, k = 0;

    for (; i < n && s[i] != '"'; i++) {
        char ch = s[i];

        if (ch == '\\') {
            if (++i >= n)
                return -EINVAL;
            ch = s[i] == 'n' ? '\n' : s[i];
        }
        if (k + 1 >= cap)
            return -EINVAL;
        buf[k++] = ch;
    }
    if (i >= n)
        return -EINVAL;
    buf[k] = '\0';
    return (int)(i + 1);
}

/* Puts v at obj[name][vals[0]]...[vals[nv-1]]; false on a shape conflict. */
static bool prom_insert(cJSON *obj, const char *name, char vals[][PROM_FIELD_MAX], size_t nv,
                        double v)
{
    const char *key = name;

    for (size_t i = 0; i < nv; i++) {
        cJSON *child = cJSON_GetObjectItemCaseSensitive(obj, key);

        if (!child) {
            child = jcheck(cJSON_CreateObject());
            jadd(obj, key, child);
        } else if (!cJSON_IsObject(child)) {
            return false;
        }
        obj = child;
        key = vals[i];
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        return false;
    jnum(obj, key, v);
    return true;
}

/* One sample line; 1 when added, 0 when skipped, -EINVAL. */
static int prom_line(const char *s, size_t n, const char *skip, cJSON *obj)
{
    char name[PROM_FIELD_MAX], vals[PROM_LABELS_MAX][PROM_FIELD_MAX], num[64];
    size_t i = 0, nv = 0;
    char *end;
    double v;

    while (i < n && s[i] != '{' && s[i] != ' ')
        i++;
    if (i == 0 || i >= n || i >= sizeof(name))
        return -EINVAL;
    memcpy(name, s, i);
    name[i] = '\0';
    if (skip && !strncmp(name, skip, strlen(skip)))
        return 0;
    if (s[i] == '{') {
        while (++i < n && s[i] != '}') {
            const char *eq = memchr(s + i, '=', n - i);
            int used;

            if (!eq || (size_t)(eq - s) + 1 >= n || eq[1] != '"' || nv == PROM_LABELS_MAX)
                return -EINVAL;
            i = (size_t)(eq - s) + 2;
            used = prom_label_value(s + i, n - i, vals[nv++], PROM_FIELD_MAX);
            if (used < 0)
                return -EINVAL;
            i += (size_t)used;
            if (i < n && s[i] != ',' && s[i] != '}')
                return -EINVAL;
            if (i < n && s[i] == '}')
                break;
        }
        if (i >= n)
            return -EINVAL;
        i++;
    }
    if (i >= n || s[i] != ' ' || n - i - 1 >= sizeof(num) || n - i - 1 == 0)
        return -EINVAL;
    memcpy(num, s + i + 1, n - i - 1);
    num[n - i - 1] = '\0';
    v = strtod(num, &end);
    if (end == num || *end)
        return -EINVAL;
    return prom_insert(obj, name, vals, nv, v) ? 1 : 0;
}

int admin_api_prom_to_json(const char *text, size_t len, const char *skip_prefix, cJSON *obj)
{
    const char *p = text, *end = text + len;
    int count = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);

        if (n > 0 && p[0] != '#') {
            int r = prom_line(p, n, skip_prefix, obj);

            if (r < 0)
                return r;
            count += r;
        }
        p += n + 1;
    }
    return count;
}
