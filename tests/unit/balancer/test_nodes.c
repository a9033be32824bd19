/* test_nodes.c - balancer/nodes.c driven by hand-built monitor rows: static
 * nodes, membership from rounds, slow start, drain, stale fallback, view
 * generations and grace, address changes, and the draining flag that lb_pick
 * reads in panic mode. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nodes.h"
#include "policy.h"

/* Under AddressSanitizer, leak checks run inside the test body: Criterion
 * fails neither a test whose worker reports leaks at exit nor one whose
 * .fini asserts. */
#if defined(__SANITIZE_ADDRESS__)
#define LEAK_CHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEAK_CHECK 1
#endif
#endif
#ifdef LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

#define SLOWSTART 10000
#define STALE     15000
#define GRACE     10000

static struct lb_nodes *ns;

static void setup(void)
{
    struct lb_nodes_cfg cfg = {.slowstart_ms = SLOWSTART, .stale_ms = STALE, .grace_ms = GRACE};

    ns = lb_nodes_new(&cfg);
}

static void teardown(void)
{
    lb_nodes_free(ns);
    ns = NULL;
}

TestSuite(nodes, .init = setup, .fini = teardown);

static struct mon_node row(const char *name, const char *ip, uint16_t port, enum mon_state state,
                           unsigned eff_weight, uint64_t last_ms)
{
    struct mon_node r;

    memset(&r, 0, sizeof(r));
    snprintf(r.name, sizeof(r.name), "%s", name);
    snprintf(r.m.ip, sizeof(r.m.ip), "%s", ip);
    r.m.port = port;
    r.m.service_up = state != MON_DOWN;
    r.state = state;
    r.eff_weight = eff_weight;
    r.weight = eff_weight;
    r.last_ms = last_ms;
    r.first_ms = last_ms;
    r.up_since_ms = last_ms;
    return r;
}

/* A monitor round that ends: its rows, then the round's close. */
static void sync_round(struct lb_nodes *n, const struct mon_node *rows, size_t k, uint64_t now_ms)
{
    lb_nodes_sync(n, rows, k, now_ms);
    lb_nodes_round_closed(n);
}

static unsigned weight_of(const char *name)
{
    struct lb_node *n = lb_nodes_find(ns, name);

    cr_assert_not_null(n, "no node %s", name);
    return atomic_load(&n->weight);
}

static bool draining_of(const char *name)
{
    struct lb_node *n = lb_nodes_find(ns, name);

    cr_assert_not_null(n, "no node %s", name);
    return atomic_load(&n->draining);
}

static bool in_view(const char *name)
{
    const struct lb_view *v = lb_nodes_view(ns);
    unsigned i;

    for (i = 0; i < v->n; i++) {
        if (strcmp(v->node[i]->name, name) == 0)
            return true;
    }
    return false;
}

static struct sockaddr_in sin_of(const char *ip, uint16_t port)
{
    struct sockaddr_in a;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

Test(nodes, empty_view_is_never_null)
{
    const struct lb_view *v = lb_nodes_view(ns);

    cr_assert_not_null(v);
    cr_expect_eq(v->n, 0);
    cr_expect_eq(lb_nodes_count(ns), 0);
    cr_expect_null(lb_nodes_at(ns, 0));
    cr_expect_null(lb_nodes_find(ns, "nope"));
    lb_nodes_refresh(ns, 1000);
    sync_round(ns, NULL, 0, 2000);
    cr_expect_eq(lb_nodes_view(ns)->n, 0);
}

Test(nodes, static_node_full_weight_no_ramp)
{
    struct sockaddr_in a = sin_of("10.0.0.1", 80), b = sin_of("10.0.0.2", 8080);
    struct mon_node r = row("agent1", "10.0.1.1", 8080, MON_UP, 50, 1000);
    struct lb_node *n;

    cr_assert_eq(lb_nodes_add_static(ns, &a), 0);
    cr_expect_eq(lb_nodes_add_static(ns, &a), -EEXIST);
    n = lb_nodes_find(ns, "10.0.0.1:80");
    cr_assert_not_null(n);
    cr_expect_eq(n->src, LB_SRC_STATIC);
    cr_expect_eq(n->idx, 0);
    cr_expect_eq(n->mon_state, -1);
    cr_expect_eq(atomic_load(&n->weight), LB_STATIC_WEIGHT);
    cr_expect_eq(n->addr.sin_port, htons(80));
    cr_expect(in_view("10.0.0.1:80"));

    /* a round without it: static nodes are not the monitor's */
    sync_round(ns, &r, 1, 1000);
    sync_round(ns, &r, 1, 2000);
    cr_expect_eq(atomic_load(&n->weight), LB_STATIC_WEIGHT);
    cr_expect(!n->gone);

    /* added after the first round: still no ramp */
    cr_assert_eq(lb_nodes_add_static(ns, &b), 0);
    cr_expect_eq(weight_of("10.0.0.2:8080"), LB_STATIC_WEIGHT);
    lb_nodes_refresh(ns, 2001);
    cr_expect_eq(weight_of("10.0.0.2:8080"), LB_STATIC_WEIGHT);
    cr_expect_eq(lb_nodes_view(ns)->n, 3);
    cr_expect_eq(lb_nodes_count(ns), 3);
}

Test(nodes, sync_adds_agents_first_round_does_not_ramp)
{
    struct mon_node rows[2] = {row("a", "10.0.0.1", 8080, MON_UP, 120, 1000),
                               row("b", "10.0.0.2", 8081, MON_SUSPECT, 80, 1000)};
    struct lb_node *a;

    sync_round(ns, rows, 2, 1000);
    cr_assert_eq(lb_nodes_count(ns), 2);
    a = lb_nodes_at(ns, 0);
    cr_expect_str_eq(a->name, "a");
    cr_expect_eq(a->src, LB_SRC_AGENT);
    cr_expect_eq(a->idx, 0);
    cr_expect_eq(a->addr.sin_family, AF_INET);
    cr_expect_eq(a->addr.sin_port, htons(8080));
    cr_expect_eq(a->addr.sin_addr.s_addr, htonl(0x0a000001));
    cr_expect_eq(a->mon_state, MON_UP);
    cr_expect_eq(a->metric_weight, 120);
    cr_expect_eq(weight_of("a"), 120, "present at the first round: no ramp");
    cr_expect_eq(weight_of("b"), 80, "suspect stays in rotation");
    cr_expect_eq(lb_nodes_view(ns)->n, 2);

    /* weights follow the monitor in place */
    rows[0].eff_weight = 200;
    rows[0].last_ms = rows[1].last_ms = 6000;
    sync_round(ns, rows, 2, 6000);
    cr_expect_eq(weight_of("a"), 200);

    /* a node new after the first round ramps from 1 */
    {
        struct mon_node more[3] = {rows[0], rows[1],
                                   row("c", "10.0.0.3", 8080, MON_UP, 100, 11000)};

        sync_round(ns, more, 3, 11000);
        cr_expect_eq(weight_of("c"), 1);
        cr_expect_eq(lb_nodes_find(ns, "c")->up_since_ms, 11000);
        cr_expect_eq(lb_nodes_find(ns, "c")->idx, 2);
        lb_nodes_refresh(ns, 11000 + SLOWSTART / 4);
        cr_expect_eq(weight_of("c"), 25);
    }
}

/* Agents answer the first probe at different times, and the monitor hands
 * each answer over as it comes: a node whose answer came later in the
 * first round has been serving all along as much as the first one. Ramping
 * it from 1 left the early node (in a benchmark, the slowest one) with
 * every new connection for seconds. */
Test(nodes, every_node_of_the_first_round_starts_at_its_weight)
{
    struct mon_node rows[3] = {row("c", "10.0.0.3", 8080, MON_UP, 8, 1000),
                               row("a", "10.0.0.1", 8080, MON_UP, 38, 1030),
                               row("b", "10.0.0.2", 8080, MON_UP, 29, 1045)};

    lb_nodes_sync(ns, rows, 1, 1000); /* c answered first */
    lb_nodes_sync(ns, rows, 2, 1030);
    lb_nodes_sync(ns, rows, 3, 1045);
    cr_expect_eq(weight_of("c"), 8);
    cr_expect_eq(weight_of("a"), 38, "joined within the first round: no ramp");
    cr_expect_eq(weight_of("b"), 29, "joined within the first round: no ramp");
    lb_nodes_round_closed(ns);
    lb_nodes_refresh(ns, 1500);
    cr_expect_eq(weight_of("a"), 38);

    /* after the first round, a newcomer ramps, even within a round */
    {
        struct mon_node more[4] = {rows[0], rows[1], rows[2],
                                   row("d", "10.0.0.4", 8080, MON_UP, 100, 2100)};

        lb_nodes_sync(ns, more, 4, 2100);
        cr_expect_eq(weight_of("d"), 1);
    }
}

Test(nodes, missing_node_is_gone_and_comes_back_ramping)
{
    struct mon_node rows[2] = {row("a", "10.0.0.1", 8080, MON_UP, 100, 1000),
                               row("b", "10.0.0.2", 8080, MON_UP, 80, 1000)};
    struct lb_node *b;
    uint64_t t = 20000;

    sync_round(ns, rows, 2, 1000);
    b = lb_nodes_find(ns, "b");
    cr_expect_eq(atomic_load(&b->weight), 80);

    rows[0].last_ms = 6000;
    sync_round(ns, rows, 1, 6000);
    cr_expect(b->gone);
    cr_expect_eq(atomic_load(&b->weight), 0);
    cr_expect(atomic_load(&b->draining), "gone is out even for panic mode");
    cr_expect(!in_view("b"));
    cr_expect(in_view("a"));
    cr_expect_eq(lb_nodes_count(ns), 2, "gone nodes stay in the registry");
    cr_expect_eq(lb_nodes_find(ns, "b"), b);

    rows[0].last_ms = rows[1].last_ms = t;
    sync_round(ns, rows, 2, t);
    cr_expect_eq(lb_nodes_find(ns, "b"), b, "same struct");
    cr_expect(!b->gone);
    cr_expect(!atomic_load(&b->draining));
    cr_expect(in_view("b"));
    cr_expect_eq(b->up_since_ms, t);
    cr_expect_eq(atomic_load(&b->weight), 1);
    lb_nodes_refresh(ns, t + SLOWSTART / 2);
    cr_expect(atomic_load(&b->weight) >= 39 && atomic_load(&b->weight) <= 41, "half of 80: %u",
              atomic_load(&b->weight));
    lb_nodes_refresh(ns, t + SLOWSTART - 1);
    cr_expect_eq(atomic_load(&b->weight), 79);
    lb_nodes_refresh(ns, t + SLOWSTART);
    cr_expect_eq(atomic_load(&b->weight), 80);
    cr_expect_eq(weight_of("a"), 100, "a never left: no ramp");
}

Test(nodes, down_and_monitor_draining_give_zero)
{
    struct mon_node rows[3] = {row("a", "10.0.0.1", 8080, MON_UP, 100, 1000),
                               row("b", "10.0.0.2", 8080, MON_DOWN, 0, 1000),
                               row("c", "10.0.0.3", 8080, MON_DRAINING, 0, 1000)};

    sync_round(ns, rows, 3, 1000);
    cr_expect_eq(weight_of("a"), 100);
    cr_expect_eq(weight_of("b"), 0);
    cr_expect_eq(weight_of("c"), 0);
    cr_expect(!draining_of("b"), "down is sick, not drained: panic mode may use it");
    cr_expect(draining_of("c"));
    cr_expect(in_view("b") && in_view("c"), "down and draining nodes stay in the view");

    /* a weight the monitor still reports does not override the state */
    rows[1].eff_weight = 77;
    rows[2].eff_weight = 77;
    sync_round(ns, rows, 3, 2000);
    cr_expect_eq(weight_of("b"), 0);
    cr_expect_eq(weight_of("c"), 0);

    /* a goes down, then comes back up after the first round: ramps */
    rows[0].state = MON_DOWN;
    sync_round(ns, rows, 3, 3000);
    cr_expect_eq(weight_of("a"), 0);
    rows[0].state = MON_UP;
    rows[0].last_ms = 4000;
    sync_round(ns, rows, 3, 4000);
    cr_expect_eq(weight_of("a"), 1);
}

Test(nodes, admin_drain_is_immediate_and_undrain_ramps)
{
    struct mon_node r = row("a", "10.0.0.1", 8080, MON_UP, 100, 1000);
    struct sockaddr_in s = sin_of("10.9.9.9", 80);
    struct lb_node *a;

    sync_round(ns, &r, 1, 1000);
    a = lb_nodes_find(ns, "a");
    cr_expect_eq(atomic_load(&a->weight), 100);

    cr_expect_eq(lb_nodes_set_drain(ns, "a", true, 1500), 0);
    cr_expect_eq(atomic_load(&a->weight), 0, "at once, not at the next round");
    cr_expect(atomic_load(&a->draining));
    cr_expect(a->drain);
    cr_expect(in_view("a"), "drained nodes stay in the view");
    sync_round(ns, &r, 1, 2000);
    cr_expect_eq(atomic_load(&a->weight), 0, "a round does not undrain");

    r.last_ms = 5000;
    sync_round(ns, &r, 1, 5000);
    cr_expect_eq(lb_nodes_set_drain(ns, "a", false, 5000), 0);
    cr_expect(!atomic_load(&a->draining));
    cr_expect_eq(atomic_load(&a->weight), 1);
    lb_nodes_refresh(ns, 5000 + SLOWSTART / 2);
    cr_expect(atomic_load(&a->weight) >= 49 && atomic_load(&a->weight) <= 51, "%u",
              atomic_load(&a->weight));
    lb_nodes_refresh(ns, 5000 + SLOWSTART);
    cr_expect_eq(atomic_load(&a->weight), 100);

    cr_expect_eq(lb_nodes_set_drain(ns, "nope", true, 6000), -ENOENT);

    cr_assert_eq(lb_nodes_add_static(ns, &s), 0);
    cr_expect_eq(lb_nodes_set_drain(ns, "10.9.9.9:80", true, 7000), 0);
    cr_expect_eq(weight_of("10.9.9.9:80"), 0);
    cr_expect_eq(lb_nodes_set_drain(ns, "10.9.9.9:80", false, 7001), 0);
    cr_expect_eq(weight_of("10.9.9.9:80"), LB_STATIC_WEIGHT, "static nodes do not ramp");
}

Test(nodes, stale_report_uses_average_of_fresh)
{
    struct mon_node rows[4] = {row("a", "10.0.0.1", 8080, MON_UP, 100, 30000),
                               row("b", "10.0.0.2", 8080, MON_UP, 201, 30000),
                               row("c", "10.0.0.3", 8080, MON_SUSPECT, 40, 30000 - STALE - 1),
                               row("d", "10.0.0.4", 8080, MON_DOWN, 0, 30000 - STALE - 1)};

    sync_round(ns, rows, 4, 30000);
    cr_expect(lb_nodes_find(ns, "c")->stale);
    cr_expect_eq(weight_of("c"), 151, "(100 + 201) / 2 rounded");
    cr_expect_eq(weight_of("d"), 0, "stale and down stays out");
    cr_expect_eq(weight_of("a"), 100);

    /* exactly stale_ms old is not stale yet */
    rows[2].last_ms = 30000 - STALE;
    sync_round(ns, rows, 4, 30000);
    cr_expect(!lb_nodes_find(ns, "c")->stale);
    cr_expect_eq(weight_of("c"), 40);

    /* no fresh node left: every in-rotation node falls back to the static weight */
    lb_nodes_refresh(ns, 30000 + STALE + 1);
    cr_expect_eq(weight_of("a"), LB_STATIC_WEIGHT);
    cr_expect_eq(weight_of("b"), LB_STATIC_WEIGHT);
    cr_expect_eq(weight_of("d"), 0);
}

Test(nodes, gen_moves_on_membership_only)
{
    struct mon_node rows[2] = {row("a", "10.0.0.1", 8080, MON_UP, 100, 1000),
                               row("b", "10.0.0.2", 8080, MON_UP, 100, 1000)};
    const struct lb_view *v0 = lb_nodes_view(ns), *v1, *v2;

    sync_round(ns, rows, 2, 1000);
    v1 = lb_nodes_view(ns);
    cr_expect_gt(v1->gen, v0->gen);
    cr_expect_eq(v1->n, 2);

    rows[0].eff_weight = 50;
    rows[1].state = MON_DOWN;
    sync_round(ns, rows, 2, 2000);
    lb_nodes_set_drain(ns, "a", true, 2100);
    lb_nodes_refresh(ns, 2200);
    cr_expect_eq(lb_nodes_view(ns), v1, "weights, states and drain keep the view");

    sync_round(ns, rows, 1, 3000);
    v2 = lb_nodes_view(ns);
    cr_expect_gt(v2->gen, v1->gen, "b left");
    cr_expect_eq(v2->n, 1);
    sync_round(ns, rows, 1, 4000);
    cr_expect_eq(lb_nodes_view(ns), v2, "still gone: no change");
    sync_round(ns, rows, 2, 5000);
    cr_expect_gt(lb_nodes_view(ns)->gen, v2->gen, "b is back");
}

/* A view handed out must stay readable for grace_ms after it is replaced
 * (ASan reports a use after free otherwise), and every view is freed in
 * the end (LeakSanitizer). */
Test(nodes, old_views_live_through_grace_then_go)
{
    struct mon_node rows[2] = {row("a", "10.0.0.1", 8080, MON_UP, 100, 0),
                               row("b", "10.0.0.2", 8080, MON_UP, 100, 0)};
    const struct lb_view *held;
    uint64_t t = 1000, gen;
    unsigned i;

    sync_round(ns, rows, 2, t);
    held = lb_nodes_view(ns);
    gen = held->gen;
    for (i = 0; i < 100; i++) {
        t += GRACE / 200; /* 100 cycles within one grace period */
        rows[0].last_ms = rows[1].last_ms = t;
        sync_round(ns, rows, 1 + (i % 2), t);
        cr_assert_eq(held->n, 2);
        cr_assert_str_eq(held->node[1]->name, "b");
        cr_assert_eq(held->gen, gen);
    }
    cr_expect_eq(lb_nodes_view(ns)->gen, gen + 100);

    /* and 100 more, spread over many grace periods: only fresh views read */
    for (i = 0; i < 100; i++) {
        const struct lb_view *v;

        t += GRACE / 3;
        rows[0].last_ms = rows[1].last_ms = t;
        sync_round(ns, rows, 1 + (i % 2), t);
        v = lb_nodes_view(ns);
        cr_assert_eq(v->n, 1 + (i % 2));
        cr_assert_str_eq(v->node[0]->name, "a");
    }
    /* every retired view reaped; then a few more that are still retired
     * when lb_nodes_free runs: both paths must free them */
    t += 10 * GRACE;
    lb_nodes_refresh(ns, t);
    for (i = 0; i < 4; i++)
        sync_round(ns, rows, 1 + (i % 2), t + i);
    lb_nodes_free(ns);
    ns = NULL;
#ifdef LEAK_CHECK
    cr_expect_eq(__lsan_do_recoverable_leak_check(), 0, "leaks: see LeakSanitizer's report");
#endif
}

Test(nodes, address_change_waits_out_the_grace)
{
    struct mon_node r = row("a", "10.0.0.1", 8080, MON_UP, 100, 1000);
    struct lb_node *a;
    const struct lb_view *v1;

    sync_round(ns, &r, 1, 1000);
    a = lb_nodes_find(ns, "a");
    v1 = lb_nodes_view(ns);

    r.m.port = 9090;
    r.last_ms = 2000;
    sync_round(ns, &r, 1, 2000);
    cr_expect_eq(a->addr.sin_port, htons(8080), "a worker may still read the old one");
    cr_expect_eq(atomic_load(&a->weight), 0);
    cr_expect(atomic_load(&a->draining));
    cr_expect(!in_view("a"));
    cr_expect_gt(lb_nodes_view(ns)->gen, v1->gen);

    lb_nodes_refresh(ns, 2000 + GRACE - 1);
    cr_expect_eq(a->addr.sin_port, htons(8080));
    r.last_ms = 2000 + GRACE;
    sync_round(ns, &r, 1, 2000 + GRACE);
    cr_expect_eq(a->addr.sin_port, htons(9090));
    cr_expect(in_view("a"));
    cr_expect(!atomic_load(&a->draining));
    cr_expect_eq(atomic_load(&a->weight), 1, "a moved node ramps");
    cr_expect_eq(lb_nodes_find(ns, "a"), a, "updated in place");

    /* gone long enough: a new address applies at once */
    sync_round(ns, NULL, 0, 20000);
    r.m.port = 7070;
    r.last_ms = 20000 + GRACE;
    sync_round(ns, &r, 1, 20000 + GRACE);
    cr_expect_eq(a->addr.sin_port, htons(7070));
    cr_expect(in_view("a"));
}

Test(nodes, bad_rows_and_static_names_are_skipped)
{
    struct sockaddr_in s = sin_of("10.0.0.1", 80);
    struct mon_node rows[4] = {row("ok", "10.0.0.2", 80, MON_UP, 100, 1000),
                               row("badip", "10.0.0.300", 80, MON_UP, 100, 1000),
                               row("noport", "10.0.0.3", 0, MON_UP, 100, 1000),
                               row("10.0.0.1:80", "10.0.0.4", 80, MON_UP, 5, 1000)};

    cr_assert_eq(lb_nodes_add_static(ns, &s), 0);
    sync_round(ns, rows, 4, 1000);
    cr_expect_eq(lb_nodes_count(ns), 2);
    cr_expect_null(lb_nodes_find(ns, "badip"));
    cr_expect_null(lb_nodes_find(ns, "noport"));
    cr_expect_eq(lb_nodes_find(ns, "10.0.0.1:80")->src, LB_SRC_STATIC);
    cr_expect_eq(weight_of("10.0.0.1:80"), LB_STATIC_WEIGHT);
}

/* The registry and lb_pick together: 3 of 4 non-drained nodes down, one
 * drained at the admin port. Panic spreads over the 4, never the drained. */
Test(nodes, panic_never_reaches_a_drained_node)
{
    struct mon_node rows[5] = {
        row("a", "10.0.0.1", 80, MON_UP, 100, 1000), row("b", "10.0.0.2", 80, MON_DOWN, 0, 1000),
        row("c", "10.0.0.3", 80, MON_DOWN, 0, 1000), row("d", "10.0.0.4", 80, MON_DOWN, 0, 1000),
        row("e", "10.0.0.5", 80, MON_UP, 100, 1000)};
    struct lb_picker p;
    unsigned s, picked_e = 0, picked_b = 0;

    sync_round(ns, rows, 5, 1000);
    lb_nodes_set_drain(ns, "e", true, 1000);
    lb_picker_init(&p, &lb_policy_weighted, 50, 11);
    for (s = 0; s < 1000; s++) {
        struct lb_node *n = lb_pick(&p, lb_nodes_view(ns), NULL, 0, 1000);

        cr_assert_not_null(n);
        picked_e += n == lb_nodes_find(ns, "e");
        picked_b += n == lb_nodes_find(ns, "b");
    }
    cr_expect_eq(picked_e, 0);
    cr_expect_gt(picked_b, 150);
    cr_expect_eq(p.panics, 1000);
    lb_picker_done(&p);
}
