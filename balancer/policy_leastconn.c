/* policy_leastconn.c - the candidate with the fewest active connections,
 * weights ignored (metric-blind, like HAProxy leastconn with equal weights).
 *
 * Ties are broken by a rotating cursor: the scan starts one past the last
 * choice, so nodes with equal counts take turns instead of the first one
 * taking every connection that arrives before its count moves (a burst of
 * accepts in one loop iteration sees the same counts). The cursor starts at
 * the seed, so workers do not all begin on the same node.
 */
#include "policy.h"

#include <stdlib.h>

#include "xalloc.h"

struct leastconn_state {
    uint64_t cursor;
};

static void *leastconn_new(uint64_t seed)
{
    struct leastconn_state *s = xcalloc(1, sizeof(*s));

    s->cursor = seed;
    return s;
}

static void leastconn_free(void *st)
{
    free(st);
}

static unsigned leastconn_pick(void *st, const struct lb_cand *c, unsigned n)
{
    struct leastconn_state *s = st;
    unsigned start = (unsigned)(s->cursor % n);
    unsigned best = start, k;

    for (k = 1; k < n; k++) {
        unsigned i = (start + k) % n;

        if (c[i].active < c[best].active)
            best = i;
    }
    s->cursor = (uint64_t)best + 1;
    return best;
}

const struct lb_policy_ops lb_policy_leastconn = {
    .name = "leastconn",
    .state_new = leastconn_new,
    .state_free = leastconn_free,
    .pick = leastconn_pick,
};
