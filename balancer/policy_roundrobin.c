/* policy_roundrobin.c - the next candidate in turn, weights ignored
 * (metric-blind). The cursor counts picks, so when the candidate set
 * changes size the rotation carries on from the same count rather than
 * restarting at 0. It starts at the seed, so workers do not march in step.
 */
#include "policy.h"

#include <stdlib.h>

#include "xalloc.h"

struct roundrobin_state {
    uint64_t cursor;
};

static void *roundrobin_new(uint64_t seed)
{
    struct roundrobin_state *s = xcalloc(1, sizeof(*s));

    s->cursor = seed;
    return s;
}

static void roundrobin_free(void *st)
{
    free(st);
}

static unsigned roundrobin_pick(void *st, const struct lb_cand *c, unsigned n)
{
    struct roundrobin_state *s = st;

    return (unsigned)(s->cursor++ % n);
}

const struct lb_policy_ops lb_policy_roundrobin = {
    .name = "roundrobin",
    .state_new = roundrobin_new,
    .state_free = roundrobin_free,
    .pick = roundrobin_pick,
};
