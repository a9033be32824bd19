/* policy_weighted.c - the default policy: power of two choices over weights.
 *
 * Two distinct candidates are drawn, each with probability proportional to
 * its weight: the first from all of them (prefix sums of the weights, then
 * a binary search for a uniform number below their total), the second from
 * the others (a uniform number below the total less the first's weight,
 * stepped over the first's interval). Of the two, the one with the lower
 * active/weight wins, compared by cross-multiplication as nginx's
 * least_conn does: a.active * b.weight < b.active * a.weight, in 64 bits,
 * no division. A tie is drawn by lot, each in proportion to the square of
 * its weight.
 *
 * Why distinct: drawn with replacement, a light node is the choice whenever
 * both draws are it, whatever its load: (w / sum)^2 of all decisions, about
 * a tenth for the weakest of three nearly equal weights. Without
 * replacement it is chosen only when its active/weight is the lower of the
 * pair.
 *
 * Why a lot in proportion to the square of the weight on a tie. The common
 * tie is 0/0, an idle pair, most decisions when each connection is short.
 * Keeping the first draw (in proportion to weight) hands a light node w / sum
 * of the idle decisions, more than its share of capacity when its weight is
 * held up by free memory or by being idle. Giving every tie to the heavier,
 * as this policy did until 2026-11-23, is worse between near-equal nodes:
 * the one a point heavier takes every idle decision for the round, runs
 * over its CPU quota, reports less idle and hands the next round to the
 * other, and the two swap 80/20 every few seconds (bench/skew.sh measured
 * it, and its p99.9 was 12-21 ms). Squares keep near-equal nodes near
 * 50/50 (weights 166 and 152: 54/46) and still keep a light node off idle
 * pairs (256 against 16: 1 in 257).
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

/* A candidate other than a, in proportion to weight among the others: a
 * number below the others' total, moved past a's interval
 * [prefix[a-1], prefix[a]). Returns a only when the others weigh nothing. */
static unsigned draw_other(struct weighted_state *s, unsigned n, uint64_t total, unsigned a)
{
    uint64_t lo = a > 0 ? s->prefix[a - 1] : 0;
    uint64_t wa = s->prefix[a] - lo;
    uint64_t r;

    if (total == wa)
        return a;
    r = rng_below(&s->rng, total - wa);
    if (r >= lo)
        r += wa;
    return prefix_search(s->prefix, n, r);
}

/* The lower active/weight of a and b (cross-multiplied: 32-bit factors, so
 * 64-bit products cannot wrap); a tie by lot, in proportion to the square
 * of each weight (both halved while either is 2^31 or more, so that the sum
 * of the squares fits in 64 bits). */
static unsigned better(struct weighted_state *s, const struct lb_cand *c, unsigned a, unsigned b)
{
    uint64_t la = (uint64_t)c[a].active * c[b].weight;
    uint64_t lb = (uint64_t)c[b].active * c[a].weight;
    uint64_t wa = c[a].weight, wb = c[b].weight;

    if (lb != la)
        return lb < la ? b : a;
    while ((wa | wb) >= (UINT64_C(1) << 31)) {
        wa >>= 1;
        wb >>= 1;
    }
    if (wa == 0 && wb == 0)
        return a;
    return rng_below(&s->rng, wa * wa + wb * wb) < wb * wb ? b : a;
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
    b = draw_other(s, n, total, a);
    return better(s, c, a, b);
}

const struct lb_policy_ops lb_policy_weighted = {
    .name = "weighted",
    .state_new = weighted_new,
    .state_free = weighted_free,
    .pick = weighted_pick,
};
