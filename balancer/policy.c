/* policy.c - from a view to a node: candidates, panic mode, the policy
 * registry and passive health. The policies themselves are one file each
 * (policy_weighted.c, policy_leastconn.c, policy_roundrobin.c,
 * policy_best.c), as HAProxy keeps lb_*.c apart.
 *
 * Design notes (the long form is docs/balancing.md):
 *
 * - lb_pick() reads each node's atomics once, relaxed: a weight or an
 *   ejection that changes during the scan only moves one pick, and the main
 *   thread never needs a lock against workers.
 * - The panic ratio is a property of the cluster, not of one connection:
 *   nodes this connection already tried still count as eligible there, so
 *   a retry on a healthy cluster never tips into panic. Drained nodes (the
 *   `draining` atomic) count on neither side: an operator who drains half
 *   the nodes has not made the cluster sick.
 */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static const struct lb_policy_ops *const lb_policies[] = {
    &lb_policy_weighted,
    &lb_policy_leastconn,
    &lb_policy_roundrobin,
    &lb_policy_best,
};

const struct lb_policy_ops *lb_policy_find(const char *name)
{
    size_t i;

    if (!name)
        return NULL;
    for (i = 0; i < sizeof(lb_policies) / sizeof(lb_policies[0]); i++) {
        if (strcmp(lb_policies[i]->name, name) == 0)
            return lb_policies[i];
    }
    return NULL;
}

const char *lb_policy_names(void)
{
    return "weighted|leastconn|roundrobin|best";
}

/* Thread: the worker that owns p. cand is scratch for LB_NODES_MAX, the
 * most a view can hold. */
void lb_picker_init(struct lb_picker *p, const struct lb_policy_ops *ops, unsigned panic_pct,
                    uint64_t seed)
{
    p->ops = ops;
    p->st = ops->state_new(seed);
    p->cand = xcalloc(LB_NODES_MAX, sizeof(*p->cand));
    p->panic_pct = panic_pct;
    p->panics = 0;
}

void lb_picker_done(struct lb_picker *p)
{
    if (p->ops)
        p->ops->state_free(p->st);
    p->st = NULL;
    free(p->cand);
    p->cand = NULL;
    p->ops = NULL;
}

static bool was_tried(const struct lb_node *n, struct lb_node *const *tried, unsigned ntried)
{
    unsigned i;

    for (i = 0; i < ntried; i++) {
        if (tried[i] == n)
            return true;
    }
    return false;
}

/* Panic candidates: every non-drained, non-tried node, all with weight 1.
 * Returns how many. */
static unsigned panic_candidates(struct lb_picker *p, const struct lb_view *v,
                                 struct lb_node *const *tried, unsigned ntried)
{
    unsigned i, nc = 0;

    for (i = 0; i < v->n && nc < LB_NODES_MAX; i++) {
        struct lb_node *n = v->node[i];

        if (atomic_load_explicit(&n->draining, memory_order_relaxed))
            continue;
        if (was_tried(n, tried, ntried))
            continue;
        p->cand[nc].node = n;
        p->cand[nc].weight = 1;
        p->cand[nc].active = atomic_load_explicit(&n->active, memory_order_relaxed);
        nc++;
    }
    return nc;
}

struct lb_node *lb_pick(struct lb_picker *p, const struct lb_view *v, struct lb_node *const *tried,
                        unsigned ntried, uint64_t now_ms)
{
    uint64_t nondrained = 0, eligible = 0;
    unsigned i, nc = 0;

    for (i = 0; i < v->n; i++) {
        struct lb_node *n = v->node[i];
        unsigned w;

        if (atomic_load_explicit(&n->draining, memory_order_relaxed))
            continue;
        nondrained++;
        w = atomic_load_explicit(&n->weight, memory_order_relaxed);
        if (w == 0)
            continue;
        if (atomic_load_explicit(&n->ejected_until_ms, memory_order_relaxed) > now_ms)
            continue;
        eligible++;
        if (was_tried(n, tried, ntried) || nc >= LB_NODES_MAX)
            continue;
        p->cand[nc].node = n;
        p->cand[nc].weight = w;
        p->cand[nc].active = atomic_load_explicit(&n->active, memory_order_relaxed);
        nc++;
    }
    if (eligible * 100 < (uint64_t)p->panic_pct * nondrained) {
        nc = panic_candidates(p, v, tried, ntried);
        if (nc > 0)
            p->panics++;
    }
    if (nc == 0)
        return NULL;
    return p->cand[p->ops->pick(p->st, p->cand, nc)].node;
}

/* Thread: any worker. Two workers may fail on one node at once: the
 * exchange lets exactly one of them eject it. max_fails 0: never eject. */
void lb_node_connect_failed(struct lb_node *n, unsigned max_fails, uint64_t eject_ms,
                            uint64_t now_ms)
{
    unsigned c;

    atomic_fetch_add_explicit(&n->connect_failures, 1, memory_order_relaxed);
    c = atomic_fetch_add_explicit(&n->consec_failures, 1, memory_order_relaxed) + 1;
    if (max_fails == 0 || c < max_fails)
        return;
    if (atomic_exchange_explicit(&n->consec_failures, 0, memory_order_relaxed) < max_fails)
        return;
    atomic_store_explicit(&n->ejected_until_ms, now_ms + eject_ms, memory_order_relaxed);
    atomic_fetch_add_explicit(&n->ejections, 1, memory_order_relaxed);
}

void lb_node_connect_ok(struct lb_node *n)
{
    /* Read first: a store on every connect would bounce the line between
     * the workers' cores for nothing. */
    if (atomic_load_explicit(&n->consec_failures, memory_order_relaxed))
        atomic_store_explicit(&n->consec_failures, 0, memory_order_relaxed);
}
