/* nodes.h - the main thread's registry of backend nodes: static --node
 * entries and the nodes the monitor reports, their effective weights
 * (monitor weight, drain, slow start, stale fallback), and the view that
 * workers pick from.
 *
 * Thread: everything here runs on the main thread except lb_nodes_view(),
 * which workers call (an acquire load of the published view).
 */
#ifndef FULCRUM_BALANCER_NODES_H
#define FULCRUM_BALANCER_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"
#include "table.h" /* struct mon_node: the monitor library is linked by design */

struct lb_nodes_cfg {
    uint64_t slowstart_ms; /* a node that (re)joins ramps from 1 to its weight: 10000 */
    uint64_t stale_ms;     /* a report older than this uses the average weight: 3 rounds */
    uint64_t grace_ms;     /* old views are freed this long after replacement: 10000 */
};

struct lb_nodes;

struct lb_nodes *lb_nodes_new(const struct lb_nodes_cfg *cfg);
/* Frees every node and view: only once no worker runs. */
void lb_nodes_free(struct lb_nodes *ns);

/* Adds a static node named "HOST:PORT" with LB_STATIC_WEIGHT. Returns 0,
 * -EEXIST, or -ENOSPC past LB_NODES_MAX. */
int lb_nodes_add_static(struct lb_nodes *ns, const struct sockaddr_in *addr);

/* Applies a monitor round: rows (mon_table_snapshot) add, update, and by
 * their absence mark gone the agent nodes. A node whose address changed is
 * updated in place. Then recomputes weights and republishes the view if
 * membership changed. now_ms: monotonic. */
void lb_nodes_sync(struct lb_nodes *ns, const struct mon_node *rows, size_t n, uint64_t now_ms);

/* The monitor's round ended (its rows are synced): a node that comes into
 * rotation from now on is new and ramps up over slowstart. Every node the
 * first round brought, whenever in that round its answer arrived, has been
 * serving all along and starts at its weight. */
void lb_nodes_round_closed(struct lb_nodes *ns);

/* Recomputes every weight (call every second: slow start moves smoothly). */
void lb_nodes_refresh(struct lb_nodes *ns, uint64_t now_ms);

/* Admin drain; effective at the next pick. Returns 0 or -ENOENT. */
int lb_nodes_set_drain(struct lb_nodes *ns, const char *name, bool drain, uint64_t now_ms);

/* Admin weight override: weight (0..LB_OVERRIDE_MAX) replaces the node's
 * metric weight until cleared with LB_OVERRIDE_NONE; monitor rounds keep it.
 * Drain, gone and a down node still weigh 0; an override of 0 holds the
 * node out like a drain (not even panic mode picks it). Effective at the
 * next pick. Returns 0, -ENOENT or -ERANGE. */
int lb_nodes_set_override(struct lb_nodes *ns, const char *name, int weight, uint64_t now_ms);

/* The current view (workers). Valid for at least grace_ms after a newer one
 * is published. Never NULL. */
const struct lb_view *lb_nodes_view(const struct lb_nodes *ns);

/* Every node ever published, gone ones included, by index (admin, metrics). */
size_t lb_nodes_count(const struct lb_nodes *ns);
struct lb_node *lb_nodes_at(const struct lb_nodes *ns, size_t i);
struct lb_node *lb_nodes_find(const struct lb_nodes *ns, const char *name);

#endif
