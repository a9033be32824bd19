/* policy.h - choosing a node for a new connection.
 *
 * lb_pick() turns the current view into candidates (eligible, not ejected,
 * not already tried by this connection), applies panic mode, and hands them
 * to the policy's ops. Policies see only a candidate array: they are pure
 * functions of it and of their per-worker state, so tests drive them alone.
 *
 *   weighted    power of two choices: two draws in proportion to weight, keep
 *               the one with the lower active/weight (cross-multiplied); a
 *               tie by lot, in proportion to the squared weights
 *   leastconn   lowest active count, weights ignored (metric-blind, like
 *               HAProxy leastconn with equal weights); ties rotate
 *   roundrobin  next candidate in turn, weights ignored (metric-blind)
 *   best        the highest weight, always (the naive single winner: herds)
 *
 * Thread: one lb_picker per worker thread; lb_pick reads node atomics.
 */
#ifndef FULCRUM_BALANCER_POLICY_H
#define FULCRUM_BALANCER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"

struct lb_cand {
    struct lb_node *node;
    unsigned weight; /* > 0 */
    unsigned active;
};

struct lb_policy_ops {
    const char *name;
    /* Per-worker state (RNG, cursor); seed makes tests reproducible. */
    void *(*state_new)(uint64_t seed);
    void (*state_free)(void *st);
    /* Index of the chosen candidate, 0 <= i < n; n >= 1. */
    unsigned (*pick)(void *st, const struct lb_cand *c, unsigned n);
};

extern const struct lb_policy_ops lb_policy_weighted;
extern const struct lb_policy_ops lb_policy_leastconn;
extern const struct lb_policy_ops lb_policy_roundrobin;
extern const struct lb_policy_ops lb_policy_best;

/* By name; NULL when unknown. */
const struct lb_policy_ops *lb_policy_find(const char *name);
/* "weighted|leastconn|roundrobin|best", for --help and errors. */
const char *lb_policy_names(void);

struct lb_picker {
    const struct lb_policy_ops *ops;
    void *st;
    struct lb_cand *cand; /* scratch, LB_NODES_MAX */
    unsigned panic_pct;   /* panic when fewer than this % of nodes are eligible */
    uint64_t panics;      /* picks made in panic mode */
};

void lb_picker_init(struct lb_picker *p, const struct lb_policy_ops *ops, unsigned panic_pct,
                    uint64_t seed);
void lb_picker_done(struct lb_picker *p);

/* Chooses a node for a new connection, or NULL when there is none.
 * tried[0..ntried) are nodes this connection already failed on; now_ms
 * (monotonic) decides ejections. Eligible: weight > 0, not ejected, not
 * tried. Panic: when fewer than panic_pct % of the view's non-drained nodes
 * are eligible, every non-drained, non-tried node is a candidate, all with
 * weight 1: better to spread over sick nodes (a failed connect is retried
 * elsewhere) than to crush the survivors (Envoy's panic threshold). */
struct lb_node *lb_pick(struct lb_picker *p, const struct lb_view *v, struct lb_node *const *tried,
                        unsigned ntried, uint64_t now_ms);

/* Passive health, called by workers. A failed connect counts against the
 * node; `max_fails` in a row eject it for eject_ms. A success resets. */
void lb_node_connect_failed(struct lb_node *n, unsigned max_fails, uint64_t eject_ms,
                            uint64_t now_ms);
void lb_node_connect_ok(struct lb_node *n);

#endif
