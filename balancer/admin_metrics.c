/* admin_metrics.c - GET /metrics: the balancer, its nodes and the monitor in
 * the Prometheus text exposition format 0.0.4, rendered from one snapshot
 * (admin_view.h). Metric names, types and help texts are part of the API
 * (docs/admin.md): dashboards and alerts depend on them.
 */
#include "admin_metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "mon.h"
#include "proto.h"

static uint64_t ctr_get(_Atomic uint64_t *x)
{
    return atomic_load_explicit(x, memory_order_relaxed);
}

/* A label value with \, " and newline escaped, as the format requires. */
static void prom_label(struct admin_view_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            admin_view_buf_puts(b, "\\\\");
        else if (*s == '"')
            admin_view_buf_puts(b, "\\\"");
        else if (*s == '\n')
            admin_view_buf_puts(b, "\\n");
        else
            admin_view_buf_put(b, s, 1);
    }
}

static void prom_family(struct admin_view_buf *b, const char *name, const char *type,
                        const char *help)
{
    admin_view_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample `name{label="value"} v` (no labels when label is NULL). */
static void prom_sample(struct admin_view_buf *b, const char *name, const char *label,
                        const char *value, uint64_t v)
{
    admin_view_buf_puts(b, name);
    if (label) {
        admin_view_buf_printf(b, "{%s=\"", label);
        prom_label(b, value);
        admin_view_buf_puts(b, "\"}");
    }
    admin_view_buf_printf(b, " %" PRIu64 "\n", v);
}

static void prom_global(struct admin_view_buf *b, const char *name, const char *type,
                        const char *help, uint64_t v)
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

static uint64_t node_metric_value(const struct admin_view_node *v, enum node_metric m)
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

static void prom_nodes(struct admin_view_buf *b, const struct admin_view_snap *s)
{
    prom_family(b, "fulcrum_node_weight", "gauge",
                "Weight the balancer picks the node by (0: not picked).");
    for (size_t i = 0; i < s->n; i++) {
        admin_view_buf_puts(b, "fulcrum_node_weight{node=\"");
        prom_label(b, s->nodes[i].n->name);
        admin_view_buf_puts(b, "\",addr=\"");
        prom_label(b, s->nodes[i].addr);
        admin_view_buf_printf(b, "\"} %u\n", s->nodes[i].lb_weight);
    }
    prom_family(b, "fulcrum_node_state", "gauge", "1 for the node's current state, else 0.");
    for (size_t i = 0; i < s->n; i++) {
        for (int st = 0; st < MON_STATE_MAX; st++) {
            admin_view_buf_puts(b, "fulcrum_node_state{node=\"");
            prom_label(b, s->nodes[i].n->name);
            admin_view_buf_printf(b, "\",state=\"%s\"} %d\n", mon_state_name((enum mon_state)st),
                                  s->nodes[i].state == (enum mon_state)st);
        }
    }
    prom_family(b, "fulcrum_node_rtt_seconds", "gauge",
                "Smoothed probe round-trip time to the node's agent.");
    for (size_t i = 0; i < s->n; i++) {
        const struct mon_node *r = s->nodes[i].row;

        if (!r || !r->has_rtt || !isfinite(r->srtt_ms))
            continue;
        admin_view_buf_puts(b, "fulcrum_node_rtt_seconds{node=\"");
        prom_label(b, s->nodes[i].n->name);
        admin_view_buf_printf(b, "\"} %.6f\n", r->srtt_ms / 1000.0);
    }
    for (int m = 0; m < NM_MAX; m++) {
        prom_family(b, node_metrics[m].name, node_metrics[m].type, node_metrics[m].help);
        for (size_t i = 0; i < s->n; i++)
            prom_sample(b, node_metrics[m].name, "node", s->nodes[i].n->name,
                        node_metric_value(&s->nodes[i], (enum node_metric)m));
    }
}

static void prom_balancer(struct admin_view_buf *b, const struct lb_admin_ctx *ctx,
                          const struct admin_view_snap *s, uint64_t admin_refused)
{
    struct lb_counters *ctr = ctx->ctr;

    prom_global(b, "fulcrum_accepted_total", "counter", "Client connections accepted.",
                ctr_get(&ctr->accepted));
    prom_family(b, "fulcrum_refused_total", "counter",
                "Client connections closed at once: maxconn reached or out of descriptors.");
    prom_sample(b, "fulcrum_refused_total", "reason", "maxconn", ctr_get(&ctr->refused_maxconn));
    prom_sample(b, "fulcrum_refused_total", "reason", "emfile", ctr_get(&ctr->refused_emfile));
    prom_global(b, "fulcrum_retries_total", "counter", "Connects retried on another node.",
                ctr_get(&ctr->retries));
    prom_global(b, "fulcrum_connects_at_once_total", "counter",
                "Connects to a node done within connect(2) (a node on this host): relayed at once.",
                ctr_get(&ctr->connects_at_once));
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
                "Client connections allowed at once (--maxconn).", ctx->maxconn);
    prom_global(b, "fulcrum_bytes_in_total", "counter", "Bytes forwarded from clients to nodes.",
                ctr_get(&ctr->bytes_in));
    prom_global(b, "fulcrum_bytes_out_total", "counter", "Bytes forwarded from nodes to clients.",
                ctr_get(&ctr->bytes_out));
    prom_global(b, "fulcrum_pipes", "gauge", "Pipes held for splice, pooled and in use.",
                atomic_load_explicit(&ctr->pipes, memory_order_relaxed));
    prom_family(b, "fulcrum_uptime_seconds", "gauge", "Seconds since the balancer started.");
    admin_view_buf_printf(b, "fulcrum_uptime_seconds %.3f\n", admin_view_uptime_s(ctx, s));
    prom_global(b, "fulcrum_admin_refused_total", "counter",
                "Admin connections closed at once: too many open.", admin_refused);
}

static void prom_monitor(struct admin_view_buf *b, const struct lb_admin_ctx *ctx)
{
    const struct mon_stats *st;

    if (!ctx->mon)
        return;
    st = mon_stats(ctx->mon);
    prom_global(b, "fulcrum_monitor_nodes", "gauge", "Rows in the monitor's status table.",
                mon_count(ctx->mon));
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

int admin_metrics_prometheus(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                             struct admin_view_buf *out, const char **err)
{
    struct admin_view_snap s;

    admin_view_snap_take(ctx, &s);
    prom_nodes(out, &s);
    prom_balancer(out, ctx, &s, admin_refused);
    prom_monitor(out, ctx);
    admin_view_snap_done(&s);
    return 0;
}
