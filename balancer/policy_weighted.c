/* policy_weighted.c - the default policy: power of two choices over weights.
 *
 * Two candidates are drawn independently, each with probability
 * proportional to its weight (prefix sums of the weights, then a binary
 * search for a uniform number below their total). Of the two, the one with
 * the lower active/weight wins, compared by cross-multiplication as nginx's
 * least_conn does: a.active * b.weight < b.active * a.weight, in 64 bits,
 * no division. Ties keep the first draw.
 *
 * Why two and not the least loaded of all: weights come from reports up to
 * a round old, and a deterministic "best" herds onto one node for the whole
 * round (Mitzenmacher 2000). The random draw spreads new connections in
 * proportion to weight; the live active count, which is never stale, keeps
 * any one node from running ahead. docs/balancing.md has the figures.
 *
 * Per-worker state: a splitmix64 generator (Steele, Lea, Flood 2014; the
 * seeder of xoshiro) and the prefix-sum scratch, grown on demand.
 */
#include "policy.h"

#include <stdlib.h>

#include "xalloc.h"

struct weighted_state {
    uint64_t rng;
    uint64_t *prefix; /* prefix[i] = weight of candidates 0..i */
    unsigned cap;
};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound), bound > 0, without modulo bias: reject the few
 * values below 2^64 mod bound. */
static uint64_t rng_below(uint64_t *s, uint64_t bound)
{
    uint64_t threshold = -bound % bound;
    uint64_t x;

    do {
        x = splitmix64(s);
    } while (x < threshold);
    return x % bound;
}

/* The smallest i with prefix[i] > r: candidate i owns [prefix[i-1], prefix[i]). */
static unsigned prefix_search(const uint64_t *prefix, unsigned n, uint64_t r)
{
    unsigned lo = 0, hi = n - 1;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;

        if (prefix[mid] > r)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void *weighted_new(uint64_t seed)
{
    struct weighted_state *s = xcalloc(1, sizeof(*s));

    s->rng = seed;
    return s;
}

static void weighted_free(void *st)
{
    struct weighted_state *s = st;

    if (!s)
        return;
    free(s->prefix);
    free(s);
}

static unsigned weighted_pick(void *st, const struct lb_cand *c, unsigned n)
{
    struct weighted_state *s = st;
    uint64_t total = 0;
    unsigned i, a, b;

    if (n == 1)
        return 0;
    if (n > s->cap) {
        s->prefix = xrealloc(s->prefix, n * sizeof(*s->prefix));
        s->cap = n;
    }
    for (i = 0; i < n; i++) {
        total += c[i].weight;
        s->prefix[i] = total;
    }
    if (total == 0) /* candidates promise weight > 0; be safe anyway */
        return 0;
    a = prefix_search(s->prefix, n, rng_below(&s->rng, total));
    b = prefix_search(s->prefix, n, rng_below(&s->rng, total));
    if (a == b)
        return a;
    if ((uint64_t)c[b].active * c[a].weight < (uint64_t)c[a].active * c[b].weight)
        return b;
    return a;
}

const struct lb_policy_ops lb_policy_weighted = {
    .name = "weighted",
    .state_new = weighted_new,
    .state_free = weighted_free,
    .pick = weighted_pick,
};
