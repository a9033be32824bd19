/* test_policy.c - balancer/policy*.c: the four policies driven on candidate
 * arrays (two statistical: weighted shares in steady state, and no herding
 * within a probe round), then lb_pick's candidate rules, panic mode and
 * passive health on hand-built nodes and views.
 *
 * The statistical tests are deterministic (fixed seeds) but their bounds
 * are wide enough to hold for any seed; each prints what it measured so
 * docs/balancing.md can quote it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define MAXN 8

static uint64_t test_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned test_below(uint64_t *s, unsigned bound)
{
    return (unsigned)(test_rng(s) % bound);
}

static void cands(struct lb_cand *c, const unsigned *w, const unsigned *active, unsigned n)
{
    unsigned i;

    memset(c, 0, n * sizeof(*c));
    for (i = 0; i < n; i++) {
        c[i].weight = w[i];
        c[i].active = active ? active[i] : 0;
    }
}

/* Opens `steps` connections through ops. After each open, with probability
 * open/target (capped at 1), one open connection chosen uniformly closes:
 * the system settles around `target` open connections, and a connection's
 * lifetime does not depend on its node. picks[i] counts opens on node i. */
static void simulate(const struct lb_policy_ops *ops, uint64_t seed, const unsigned *w, unsigned n,
                     unsigned steps, unsigned target, unsigned *picks)
{
    struct lb_cand c[MAXN];
    void *st = ops->state_new(seed);
    uint64_t rng = seed ^ 0x5555;
    unsigned open = 0, s, i;

    cands(c, w, NULL, n);
    memset(picks, 0, n * sizeof(*picks));
    for (s = 0; s < steps; s++) {
        i = ops->pick(st, c, n);
        cr_assert_lt(i, n);
        picks[i]++;
        c[i].active++;
        open++;
        if (test_below(&rng, target) < open) {
            unsigned r = test_below(&rng, open);

            for (i = 0; r >= c[i].active; i++)
                r -= c[i].active;
            c[i].active--;
            open--;
        }
    }
    ops->state_free(st);
}

Test(weighted, shares_follow_weights_in_steady_state)
{
    static const unsigned w[] = {100, 200, 300};
    static const uint64_t seeds[] = {1, 2, 3};
    unsigned picks[3], k, i;
    const unsigned steps = 60000;

    for (k = 0; k < 3; k++) {
        simulate(&lb_policy_weighted, seeds[k], w, 3, steps, 50, picks);
        for (i = 0; i < 3; i++) {
            double share = 100.0 * picks[i] / steps;
            double want = 100.0 * w[i] / 600;

            fprintf(stderr, "weighted steady seed %u node %u weight %u: %.2f%% (want %.2f%%)\n",
                    (unsigned)seeds[k], i, w[i], share, want);
            cr_expect(share > want - 3 && share < want + 3,
                      "seed %u node %u: share %.2f%%, want %.2f%% +- 3", (unsigned)seeds[k], i,
                      share, want);
        }
    }
}

/* One probe round: weights frozen, 1000 new connections, none closes.
 * Nearly equal weights are where "best" herds hardest. */
static void round_of(const struct lb_policy_ops *ops, uint64_t seed, unsigned *picks)
{
    static const unsigned w[] = {100, 101, 100};
    struct lb_cand c[3];
    void *st = ops->state_new(seed);
    unsigned s, i;

    cands(c, w, NULL, 3);
    memset(picks, 0, 3 * sizeof(*picks));
    for (s = 0; s < 1000; s++) {
        i = ops->pick(st, c, 3);
        picks[i]++;
        c[i].active++;
    }
    ops->state_free(st);
}

Test(weighted, no_herd_within_a_round)
{
    unsigned picks[3], i;
    uint64_t seed;

    for (seed = 1; seed <= 5; seed++) {
        round_of(&lb_policy_weighted, seed, picks);
        fprintf(stderr, "weighted round seed %u: %u %u %u of 1000\n", (unsigned)seed, picks[0],
                picks[1], picks[2]);
        for (i = 0; i < 3; i++)
            cr_expect_leq(picks[i], 400, "seed %u node %u got %u of 1000", (unsigned)seed, i,
                          picks[i]);
    }
    round_of(&lb_policy_best, 1, picks);
    fprintf(stderr, "best round: %u %u %u of 1000\n", picks[0], picks[1], picks[2]);
    cr_expect_eq(picks[1], 1000, "best herds onto the 101: got %u", picks[1]);
}

/* Two distinct draws: with two candidates both are always compared, so
 * the loaded one is never chosen (drawn with replacement it was, whenever
 * both draws were it: 1/4 of the time). */
Test(weighted, keeps_the_less_loaded_of_two_draws)
{
    static const unsigned w[] = {100, 100};
    static const unsigned active[] = {10, 0};
    struct lb_cand c[2];
    void *st = lb_policy_weighted.state_new(9);
    unsigned picks[2] = {0, 0}, s;

    cands(c, w, active, 2);
    for (s = 0; s < 20000; s++)
        picks[lb_policy_weighted.pick(st, c, 2)]++;
    lb_policy_weighted.state_free(st);
    fprintf(stderr, "weighted two draws: loaded node %u of 20000\n", picks[0]);
    cr_expect_eq(picks[0], 0, "loaded node got %u of 20000, want 0", picks[0]);
}

/* active/weight by cross-multiplication: 10/100 > 20/300, so node 1 is
 * less loaded although its count is higher; and 32-bit products would
 * overflow here (in 32 bits 4e9 * 4e9 wraps to 1983905792 and
 * 3999999999 * 4e9 to 2278873088, which reverses the order and would give
 * node 0 about half the picks). */
Test(weighted, compares_active_per_weight)
{
    static const unsigned w[] = {100, 300};
    static const unsigned active[] = {10, 20};
    static const unsigned wbig[] = {4000000000u, 4000000000u};
    static const unsigned abig[] = {4000000000u, 3999999999u};
    struct lb_cand c[2];
    void *st = lb_policy_weighted.state_new(3);
    unsigned picks[2] = {0, 0}, s;

    cands(c, w, active, 2);
    for (s = 0; s < 4000; s++)
        picks[lb_policy_weighted.pick(st, c, 2)]++;
    fprintf(stderr, "weighted cross-multiplication: node 0 %u of 4000\n", picks[0]);
    cr_expect_eq(picks[0], 0, "node 0 got %u", picks[0]);

    cands(c, wbig, abig, 2);
    picks[0] = picks[1] = 0;
    for (s = 0; s < 4000; s++)
        picks[lb_policy_weighted.pick(st, c, 2)]++;
    cr_expect_eq(picks[0], 0, "node 0 got %u", picks[0]);
    cr_expect_eq(lb_policy_weighted.pick(st, c, 1), 0);
    lb_policy_weighted.state_free(st);
}

/* Frozen counts, weights 100/200/300 (W = 600). The pair {i, j} is drawn
 * with probability w_i/W * w_j/(W - w_i) + w_j/W * w_i/(W - w_j):
 *   {0,1} = 1/6 * 2/5 + 2/6 * 1/4 = 0.15
 *   {0,2} = 1/6 * 3/5 + 3/6 * 1/3 = 4/15 (0.2667)
 *   {1,2} = 2/6 * 3/4 + 3/6 * 2/3 = 7/12 (0.5833)
 * With active 3/2/1 (per weight 0.03 > 0.01 > 0.0033) the pair's second
 * node wins: node 0 never, node 1 0.15, node 2 0.85. (With replacement it
 * was 1/36, 2/9 and 3/4.) With every count 0 all pairs tie and each pair is
 * drawn by lot in proportion to the squares of the weights: {0,1} 1:4,
 * {0,2} 1:9, {1,2} 4:9, so node 0 gets 0.15/5 + (4/15)/10 = 0.0567, node 1
 * 0.15*4/5 + (7/12)*4/13 = 0.2995, node 2 (4/15)*9/10 + (7/12)*9/13 = 0.6438
 * (the heavier of each pair, as until 2026-11-23: 0 / 0.15 / 0.85). */
static void frozen_shares(const unsigned *active, double *share)
{
    static const unsigned w[] = {100, 200, 300};
    const unsigned picks_n = 60000;
    struct lb_cand c[3];
    void *st = lb_policy_weighted.state_new(5);
    unsigned picks[3] = {0, 0, 0}, s;

    cands(c, w, active, 3);
    for (s = 0; s < picks_n; s++)
        picks[lb_policy_weighted.pick(st, c, 3)]++;
    lb_policy_weighted.state_free(st);
    for (s = 0; s < 3; s++)
        share[s] = (double)picks[s] / picks_n;
}

Test(weighted, distinct_draws_exact_distribution)
{
    static const unsigned loaded[] = {3, 2, 1};
    static const unsigned idle[] = {0, 0, 0};
    static const unsigned pair01[] = {0, 0, 9}; /* node 2 loses every pair */
    double sh[3];

    frozen_shares(loaded, sh);
    fprintf(stderr, "weighted frozen 3/2/1: %.4f %.4f %.4f (want 0 0.15 0.85)\n", sh[0], sh[1],
            sh[2]);
    cr_expect_eq(sh[0], 0.0);
    cr_expect(fabs(sh[1] - 0.15) < 0.006, "node 1: %.4f", sh[1]);
    cr_expect(fabs(sh[2] - 0.85) < 0.006, "node 2: %.4f", sh[2]);
    frozen_shares(idle, sh);
    fprintf(stderr, "weighted frozen idle: %.4f %.4f %.4f (want 0.0567 0.2995 0.6438)\n", sh[0],
            sh[1], sh[2]);
    cr_expect(fabs(sh[0] - 0.0567) < 0.006, "node 0: %.4f", sh[0]);
    cr_expect(fabs(sh[1] - 0.2995) < 0.006, "node 1: %.4f", sh[1]);
    cr_expect(fabs(sh[2] - 0.6438) < 0.006, "node 2: %.4f", sh[2]);
    /* node 2 last: node 0 wins {0,2} (4/15), node 1 wins {1,2} (7/12), and
     * {0,1} (0.15) is a 0/0 tie drawn 1:4 */
    frozen_shares(pair01, sh);
    fprintf(stderr, "weighted frozen 0/0/9: %.4f %.4f %.4f (want 0.2967 0.7033 0)\n", sh[0], sh[1],
            sh[2]);
    cr_expect(fabs(sh[0] - (4.0 / 15.0 + 0.15 / 5)) < 0.006, "node 0: %.4f", sh[0]);
    cr_expect(fabs(sh[1] - (7.0 / 12.0 + 0.15 * 4 / 5)) < 0.006, "node 1: %.4f", sh[1]);
    cr_expect_eq(sh[2], 0.0);
}

/* How many of 20000 weighted picks over three candidates (weights w, counts
 * active, frozen) go to node `node`. */
static unsigned picks_of(void *st, const unsigned *w, const unsigned *active, unsigned node)
{
    struct lb_cand c[3];
    unsigned got = 0, s;

    cands(c, w, active, 3);
    for (s = 0; s < 20000; s++)
        got += lb_policy_weighted.pick(st, c, 3) == node;
    return got;
}

/* The skewed cluster: a node with a tiny weight is never chosen while both
 * others are idle and it holds a connection (it loses every pair on load),
 * and hardly ever while it is idle too: it is always drawn with one of them
 * and wins the tie at 0 by a lot of 16^2 against 256^2, 1 in 257. */
Test(weighted, weakest_hardly_chosen_while_others_idle)
{
    static const unsigned w[] = {256, 256, 16};
    struct lb_cand c[3];
    void *st = lb_policy_weighted.state_new(11);
    unsigned picks[3] = {0, 0, 0}, s, k;

    for (k = 1; k < 4; k++) {
        unsigned active[] = {0, 0, k};

        cands(c, w, active, 3);
        for (s = 0; s < 20000; s++)
            picks[lb_policy_weighted.pick(st, c, 3)]++;
    }
    fprintf(stderr, "weighted weakest at 1-3, others idle: %u %u %u of 60000\n", picks[0], picks[1],
            picks[2]);
    cr_expect_eq(picks[2], 0, "the weakest got %u", picks[2]);
    cr_expect_gt(picks[0], 27000);
    cr_expect_gt(picks[1], 27000);
    /* all idle: P(the pair holds node 2) = 0.0873, and it wins 1/257 of
     * those ties: 0.034 %, about 7 of 20000 (by weight it would be 8.7 %
     * of those pairs, 1747, and the heavier-wins rule gave it 0) */
    static const unsigned idle[] = {0, 0, 0};

    picks[2] = picks_of(st, w, idle, 2);
    fprintf(stderr, "weighted weakest, all idle: %u of 20000\n", picks[2]);
    cr_expect_lt(picks[2], 30, "the weakest got %u", picks[2]);
    /* once both others hold a connection, the weakest at 0 wins its pairs */
    static const unsigned busy[] = {1, 1, 0};

    picks[2] = picks_of(st, w, busy, 2);
    fprintf(stderr, "weighted weakest, others at 1: %u of 20000\n", picks[2]);
    /* P(the pair holds node 2) = 16/528 + 2 * 256/528 * 16/272 = 0.0873 */
    cr_expect(picks[2] > 1600 && picks[2] < 1900, "the weakest got %u", picks[2]);
    lb_policy_weighted.state_free(st);
}

/* Two near-equal nodes idle: the ties between them are split near 50/50,
 * not all handed to the one a few points heavier. That rule made the two
 * swap 80/20 every few seconds in bench/skew.sh: the heavier took every idle
 * decision, ran over its CPU quota, reported less idle and handed the next
 * round to the other. Weights 166/152/50 (a round of that benchmark), all
 * idle; exact shares from the pair probabilities and lots of w^2:
 * 0.5247 / 0.4444 / 0.0309 (heavier wins: 0.8361 / 0.1639 / 0; a lot in
 * proportion to weight: 0.4832 / 0.4348 / 0.0820). */
Test(weighted, near_equal_nodes_share_idle_ties)
{
    static const unsigned w[] = {166, 152, 50};
    struct lb_cand c[3];
    void *st = lb_policy_weighted.state_new(23);
    unsigned picks[3] = {0, 0, 0}, s;
    double sh[3];

    cands(c, w, NULL, 3);
    for (s = 0; s < 60000; s++)
        picks[lb_policy_weighted.pick(st, c, 3)]++;
    lb_policy_weighted.state_free(st);
    for (s = 0; s < 3; s++)
        sh[s] = picks[s] / 60000.0;
    fprintf(stderr, "weighted near-equal idle: %.4f %.4f %.4f (want 0.5247 0.4444 0.0309)\n", sh[0],
            sh[1], sh[2]);
    cr_expect(fabs(sh[0] - 0.5247) < 0.006, "node 0: %.4f", sh[0]);
    cr_expect(fabs(sh[1] - 0.4444) < 0.006, "node 1: %.4f", sh[1]);
    cr_expect(fabs(sh[2] - 0.0309) < 0.004, "node 2: %.4f", sh[2]);
}

Test(weighted, same_seed_same_picks)
{
    static const unsigned w[] = {10, 20, 30, 40};
    struct lb_cand c[4];
    void *a = lb_policy_weighted.state_new(77), *b = lb_policy_weighted.state_new(77);
    unsigned s;

    cands(c, w, NULL, 4);
    for (s = 0; s < 100; s++)
        cr_assert_eq(lb_policy_weighted.pick(a, c, 4), lb_policy_weighted.pick(b, c, 4));
    lb_policy_weighted.state_free(a);
    lb_policy_weighted.state_free(b);
}

Test(leastconn, picks_min_active_and_alternates_on_ties)
{
    static const unsigned w[] = {500, 1, 1};
    static const unsigned a1[] = {5, 2, 7};
    static const unsigned a2[] = {3, 3, 9};
    static const unsigned a3[] = {4, 4, 4};
    struct lb_cand c[3];
    void *st = lb_policy_leastconn.state_new(0);
    unsigned s;

    cands(c, w, a1, 3);
    for (s = 0; s < 5; s++)
        cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 1, "weight is ignored");

    cands(c, w, a2, 3);
    cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 0);
    cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 1);
    cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 0);
    cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 1);

    cands(c, w, a3, 3);
    cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 2);
    cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 0);
    cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 1);
    cr_expect_eq(lb_policy_leastconn.pick(st, c, 3), 2);
    lb_policy_leastconn.state_free(st);
}

Test(roundrobin, cycles_ignoring_weight)
{
    static const unsigned w[] = {1, 1000, 1};
    struct lb_cand c[3];
    void *st = lb_policy_roundrobin.state_new(0);
    unsigned s;

    cands(c, w, NULL, 3);
    for (s = 0; s < 9; s++)
        cr_expect_eq(lb_policy_roundrobin.pick(st, c, 3), s % 3);
    lb_policy_roundrobin.state_free(st);

    st = lb_policy_roundrobin.state_new(1);
    cr_expect_eq(lb_policy_roundrobin.pick(st, c, 3), 1, "the seed offsets the start");
    cr_expect_eq(lb_policy_roundrobin.pick(st, c, 3), 2);
    cr_expect_eq(lb_policy_roundrobin.pick(st, c, 3), 0);
    lb_policy_roundrobin.state_free(st);
}

Test(best, highest_weight_lowest_index_on_ties)
{
    static const unsigned w1[] = {5, 9, 7};
    static const unsigned w2[] = {5, 9, 9};
    static const unsigned active[] = {0, 1000, 0};
    struct lb_cand c[3];
    void *st = lb_policy_best.state_new(0);

    cands(c, w1, active, 3);
    cr_expect_eq(lb_policy_best.pick(st, c, 3), 1, "active is ignored");
    cands(c, w2, NULL, 3);
    cr_expect_eq(lb_policy_best.pick(st, c, 3), 1);
    lb_policy_best.state_free(st);
}

Test(registry, find_and_names)
{
    cr_expect_eq(lb_policy_find("weighted"), &lb_policy_weighted);
    cr_expect_eq(lb_policy_find("leastconn"), &lb_policy_leastconn);
    cr_expect_eq(lb_policy_find("roundrobin"), &lb_policy_roundrobin);
    cr_expect_eq(lb_policy_find("best"), &lb_policy_best);
    cr_expect_null(lb_policy_find("Weighted"));
    cr_expect_null(lb_policy_find(""));
    cr_expect_null(lb_policy_find(NULL));
    cr_expect_str_eq(lb_policy_names(), "weighted|leastconn|roundrobin|best");
}

/* lb_pick on hand-built nodes. */

static struct lb_node nodes[MAXN];

static struct lb_view *view_of(unsigned n)
{
    struct lb_view *v = malloc(sizeof(*v) + n * sizeof(v->node[0]));
    unsigned i;

    cr_assert_not_null(v);
    v->gen = 1;
    v->n = n;
    for (i = 0; i < n; i++)
        v->node[i] = &nodes[i];
    return v;
}

static void node_set(unsigned i, unsigned weight, bool draining)
{
    snprintf(nodes[i].name, sizeof(nodes[i].name), "n%u", i);
    atomic_store(&nodes[i].weight, weight);
    atomic_store(&nodes[i].draining, draining);
}

static void reset_nodes(void)
{
    memset(nodes, 0, sizeof(nodes));
}

TestSuite(pick, .init = reset_nodes);

static unsigned node_index(const struct lb_node *n)
{
    return (unsigned)(n - nodes);
}

Test(pick, skips_tried_zero_weight_and_ejected)
{
    struct lb_view *v = view_of(4);
    struct lb_picker p;
    struct lb_node *tried[2] = {&nodes[0], &nodes[3]};
    unsigned counts[4] = {0, 0, 0, 0}, s;

    node_set(0, 100, false);
    node_set(1, 0, false);
    node_set(2, 100, false);
    node_set(3, 100, false);
    atomic_store(&nodes[2].ejected_until_ms, 5000);
    lb_picker_init(&p, &lb_policy_weighted, 0, 1);

    for (s = 0; s < 1000; s++)
        counts[node_index(lb_pick(&p, v, tried, 1, 4000))]++;
    cr_expect_eq(counts[3], 1000, "only node 3 is eligible and untried: %u %u %u %u", counts[0],
                 counts[1], counts[2], counts[3]);

    cr_expect_null(lb_pick(&p, v, tried, 2, 4999), "0 tried, 1 weight 0, 2 ejected, 3 tried");
    cr_expect_eq(lb_pick(&p, v, tried, 2, 5000), &nodes[2], "ejection over at ejected_until");

    for (s = 0; s < 4; s++)
        node_set(s, 0, false);
    cr_expect_null(lb_pick(&p, v, NULL, 0, 4000));
    cr_expect_eq(p.panics, 0);
    lb_picker_done(&p);

    v->n = 0;
    lb_picker_init(&p, &lb_policy_roundrobin, 50, 1);
    cr_expect_null(lb_pick(&p, v, NULL, 0, 0), "an empty view");
    lb_picker_done(&p);
    free(v);
}

/* 6 nodes: 0 healthy, 1-3 sick (weight 0 or ejected), 4-5 drained. One of
 * four non-drained nodes is eligible: 25% < 50%, panic. */
Test(pick, panic_spreads_over_non_drained)
{
    struct lb_view *v = view_of(6);
    struct lb_picker p;
    unsigned counts[6] = {0}, s, i;

    node_set(0, 100, false);
    node_set(1, 0, false);
    node_set(2, 0, false);
    node_set(3, 100, false);
    atomic_store(&nodes[3].ejected_until_ms, 1000000);
    node_set(4, 0, true);
    node_set(5, 0, true);
    lb_picker_init(&p, &lb_policy_weighted, 50, 4);

    for (s = 0; s < 4000; s++) {
        struct lb_node *n = lb_pick(&p, v, NULL, 0, 1000);

        cr_assert_not_null(n);
        counts[node_index(n)]++;
        atomic_fetch_add(&n->active, 1);
    }
    fprintf(stderr, "panic: %u %u %u %u | drained %u %u\n", counts[0], counts[1], counts[2],
            counts[3], counts[4], counts[5]);
    for (i = 0; i < 4; i++)
        cr_expect_gt(counts[i], 600, "node %u got %u of 4000", i, counts[i]);
    cr_expect_eq(counts[4] + counts[5], 0, "drained nodes never");
    cr_expect_eq(p.panics, 4000);

    /* a tried node stays out in panic mode too */
    {
        struct lb_node *tried[3] = {&nodes[0], &nodes[1], &nodes[2]};

        cr_expect_eq(lb_pick(&p, v, tried, 3, 1000), &nodes[3]);
    }
    lb_picker_done(&p);
    free(v);
}

/* 2 of 4 eligible at panic_pct 50 is not panic; tried nodes do not count
 * against the cluster: a retry on a healthy cluster stays out of panic. */
Test(pick, no_panic_at_threshold_or_on_retry)
{
    struct lb_view *v = view_of(4);
    struct lb_picker p;
    struct lb_node *tried[1] = {&nodes[0]};
    unsigned s;

    node_set(0, 100, false);
    node_set(1, 100, false);
    node_set(2, 0, false);
    node_set(3, 0, false);
    lb_picker_init(&p, &lb_policy_weighted, 50, 4);
    for (s = 0; s < 200; s++) {
        struct lb_node *n = lb_pick(&p, v, NULL, 0, 0);

        cr_assert(n == &nodes[0] || n == &nodes[1], "picked %s", n ? n->name : "NULL");
    }
    for (s = 0; s < 200; s++)
        cr_assert_eq(lb_pick(&p, v, tried, 1, 0), &nodes[1]);
    cr_expect_eq(p.panics, 0);

    node_set(1, 0, false); /* now 1 of 4: panic */
    cr_expect_not_null(lb_pick(&p, v, NULL, 0, 0));
    cr_expect_eq(p.panics, 1);
    lb_picker_done(&p);
    free(v);
}

Test(pick, passive_health_ejects_and_expires)
{
    struct lb_node *n = &nodes[0];
    struct lb_view *v = view_of(2);
    struct lb_picker p;

    node_set(0, 100, false);
    node_set(1, 100, false);
    lb_node_connect_failed(n, 3, 2000, 100);
    lb_node_connect_failed(n, 3, 2000, 110);
    cr_expect_eq(atomic_load(&n->consec_failures), 2);
    lb_node_connect_ok(n);
    cr_expect_eq(atomic_load(&n->consec_failures), 0, "a success resets the count");
    lb_node_connect_failed(n, 3, 2000, 120);
    lb_node_connect_failed(n, 3, 2000, 130);
    cr_expect_eq(atomic_load(&n->ejected_until_ms), 0, "2 in a row: not yet");
    lb_node_connect_failed(n, 3, 2000, 140);
    cr_expect_eq(atomic_load(&n->ejected_until_ms), 2140);
    cr_expect_eq(atomic_load(&n->ejections), 1);
    cr_expect_eq(atomic_load(&n->consec_failures), 0);
    cr_expect_eq(atomic_load(&n->connect_failures), 5);

    lb_picker_init(&p, &lb_policy_roundrobin, 0, 0);
    cr_expect_eq(lb_pick(&p, v, NULL, 0, 2139), &nodes[1]);
    cr_expect_eq(lb_pick(&p, v, NULL, 0, 2139), &nodes[1], "still ejected at 2139");
    cr_expect_eq(lb_pick(&p, v, NULL, 0, 2140), &nodes[0], "back at ejected_until");
    lb_picker_done(&p);

    lb_node_connect_failed(&nodes[1], 0, 2000, 0);
    lb_node_connect_failed(&nodes[1], 0, 2000, 0);
    cr_expect_eq(atomic_load(&nodes[1].ejected_until_ms), 0, "max_fails 0: never eject");
    free(v);
}
