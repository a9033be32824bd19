/* policy_best.c - the highest weight, always; ties go to the lowest index.
 *
 * Deliberately naive: between two probe rounds the weights do not move, so
 * every new connection lands on the same node (the herd effect of
 * DESIGN.md). Kept to show that effect in tests and benchmarks, never as a
 * default. Stateless: state_new returns NULL, which is not a failure here.
 */
#include "policy.h"

static void *best_new(uint64_t seed)
{
    return NULL;
}

static void best_free(void *st)
{
}

static unsigned best_pick(void *st, const struct lb_cand *c, unsigned n)
{
    unsigned best = 0, i;

    for (i = 1; i < n; i++) {
        if (c[i].weight > c[best].weight)
            best = i;
    }
    return best;
}

const struct lb_policy_ops lb_policy_best = {
    .name = "best",
    .state_new = best_new,
    .state_free = best_free,
    .pick = best_pick,
};
