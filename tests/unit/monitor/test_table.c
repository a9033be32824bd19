/* test_table.c - monitor/table.c driven round by round: the state machine,
 * replay and tombstone rules, ranks, drain, forgetting, and both output
 * formats with the snprintf contract. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "table.h"

#define GIB    (1024.0 * 1024.0 * 1024.0)
#define MIB    (1024.0 * 1024.0)
#define BOOT_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define BOOT_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define BOOT_C "cccccccccccccccccccccccccccccccc"

static struct mon_table_cfg cfg;
static struct mon_table *t;

static void setup(void)
{
    mon_table_cfg_default(&cfg);
    t = mon_table_new(&cfg);
}

static void teardown(void)
{
    mon_table_free(t);
    t = NULL;
}

TestSuite(table, .init = setup, .fini = teardown);

static struct proto_msg msg(enum proto_type type, const char *name, const char *boot, uint64_t seq)
{
    struct proto_msg m;

    memset(&m, 0, sizeof(m));
    m.version = PROTO_VERSION;
    m.type = type;
    m.seq = seq;
    snprintf(m.name, sizeof(m.name), "%s", name);
    snprintf(m.boot, sizeof(m.boot), "%s", boot);
    snprintf(m.m.ip, sizeof(m.m.ip), "10.0.0.1");
    m.m.port = 8080;
    m.m.ram_free = 4 * GIB;
    m.m.ram_total = 8 * GIB;
    m.m.cpu_idle = 50;
    m.m.load1 = 0.5;
    m.m.uptime = 100;
    m.m.service_up = true;
    return m;
}

static int hello(const char *name, const char *boot, uint64_t seq, uint64_t now)
{
    struct proto_msg m = msg(PROTO_HELLO, name, boot, seq);

    return mon_table_report(t, &m, -1, now);
}

static int respond(const char *name, const char *boot, uint64_t round, double cpu, uint64_t now)
{
    struct proto_msg m = msg(PROTO_PROBE_RESPONSE, name, boot, round);

    m.m.cpu_idle = cpu;
    return mon_table_report(t, &m, 2.0, now);
}

static int bye(const char *name, const char *boot, uint64_t seq)
{
    struct proto_msg m = msg(PROTO_BYE, name, boot, seq);

    return mon_table_bye(t, &m);
}

static struct mon_node get(const char *name)
{
    struct mon_node n;

    cr_assert(mon_table_get(t, name, &n), "node %s not found", name);
    return n;
}

/* Ranks must be 1..k over the nodes with eff_weight > 0, ordered by
 * eff_weight descending then name, and 0 elsewhere. */
static void assert_ranks_consistent(void)
{
    size_t n = mon_table_count(t);
    struct mon_node *rows = calloc(n ? n : 1, sizeof(*rows));
    size_t got = mon_table_snapshot(t, rows, n);
    size_t k = 0;

    cr_assert_eq(got, n);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].eff_weight == 0) {
            cr_assert_eq(rows[i].rank, 0, "%s has weight 0, rank %u", rows[i].name, rows[i].rank);
            continue;
        }
        cr_assert_eq(rows[i].rank, ++k, "%s: rank %u, expected %zu", rows[i].name, rows[i].rank, k);
        if (k > 1) {
            const struct mon_node *p = &rows[i - 1];

            cr_assert(p->eff_weight > rows[i].eff_weight || (p->eff_weight == rows[i].eff_weight &&
                                                             strcmp(p->name, rows[i].name) < 0),
                      "%s ranked before %s", p->name, rows[i].name);
        }
    }
    free(rows);
}

Test(table, defaults)
{
    cr_assert_eq(cfg.max_nodes, 4096);
    cr_assert_eq(cfg.miss_down, 3);
    cr_assert_eq(cfg.forget_ms, 300000);
    cr_assert_eq(mon_table_count(t), 0);
    cr_assert_str_eq(mon_state_name(MON_UP), "up");
    cr_assert_str_eq(mon_state_name(MON_SUSPECT), "suspect");
    cr_assert_str_eq(mon_state_name(MON_DOWN), "down");
    cr_assert_str_eq(mon_state_name(MON_DRAINING), "draining");
    cr_assert_str_eq(mon_state_name(MON_STATE_MAX), "unknown");
}

Test(table, hello_adds_node)
{
    struct mon_node n;

    mon_table_begin_round(t, 1, 1000);
    cr_assert_eq(hello("alpha", BOOT_A, 1, 1200), 0);
    cr_assert_eq(mon_table_count(t), 1);
    n = get("alpha");
    cr_assert_str_eq(n.name, "alpha");
    cr_assert_str_eq(n.boot, BOOT_A);
    cr_assert_str_eq(n.m.ip, "10.0.0.1");
    cr_assert_eq(n.m.port, 8080);
    cr_assert_eq(n.state, MON_UP);
    cr_assert_eq(n.rank, 1);
    /* target of cpu 50 %, ram 50 %: 256 * 0.5 */
    cr_assert_float_eq(n.weight, 128.0, 1e-9);
    cr_assert_eq(n.eff_weight, 128);
    cr_assert_eq(n.first_ms, 1200);
    cr_assert_eq(n.last_ms, 1200);
    cr_assert_eq(n.up_since_ms, 1200);
    cr_assert_eq(n.agent_seq, 1);
    cr_assert_eq(n.missed, 0);
    cr_assert(!n.has_rtt);
    cr_assert(!n.drain);
    cr_assert(!mon_table_get(t, "beta", &n));

    /* the hello counts as the answer of this round */
    mon_table_end_round(t, 2000);
    n = get("alpha");
    cr_assert_eq(n.state, MON_UP);
    cr_assert_eq(n.missed, 0);
    cr_assert_eq(n.rank, 1);
}

Test(table, missed_rounds_suspect_then_down)
{
    struct mon_node n;

    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 50, 10), 0);
    mon_table_end_round(t, 100);
    cr_assert_eq(get("alpha").state, MON_UP);

    mon_table_begin_round(t, 2, 5000);
    mon_table_end_round(t, 5100);
    n = get("alpha");
    cr_assert_eq(n.state, MON_SUSPECT);
    cr_assert_eq(n.missed, 1);
    cr_assert_eq(n.eff_weight, 127, "a suspect node stays in rotation: 128 / 1.005");
    cr_assert_eq(n.rank, 1);

    mon_table_begin_round(t, 3, 10000);
    mon_table_end_round(t, 10100);
    n = get("alpha");
    cr_assert_eq(n.state, MON_SUSPECT);
    cr_assert_eq(n.missed, 2);
    cr_assert_eq(n.rank, 1);

    mon_table_begin_round(t, 4, 15000);
    mon_table_end_round(t, 15100);
    n = get("alpha");
    cr_assert_eq(n.state, MON_DOWN);
    cr_assert_eq(n.missed, 3);
    cr_assert_eq(n.eff_weight, 0);
    cr_assert_eq(n.rank, 0);

    mon_table_begin_round(t, 5, 20000);
    mon_table_end_round(t, 20100);
    n = get("alpha");
    cr_assert_eq(n.state, MON_DOWN);
    cr_assert_eq(n.missed, 4);
}

Test(table, report_restores_up)
{
    struct mon_node n;

    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 50, 10), 0);
    mon_table_end_round(t, 100);
    for (uint64_t r = 2; r <= 4; r++) {
        mon_table_begin_round(t, r, r * 5000);
        mon_table_end_round(t, r * 5000 + 100);
    }
    cr_assert_eq(get("alpha").state, MON_DOWN);

    mon_table_begin_round(t, 5, 25000);
    cr_assert_eq(respond("alpha", BOOT_A, 5, 50, 25010), 0);
    /* at once, not at the end of the round */
    n = get("alpha");
    cr_assert_eq(n.state, MON_UP);
    cr_assert_eq(n.missed, 0);
    cr_assert_eq(n.up_since_ms, 25010);
    cr_assert_eq(n.first_ms, 10);
    cr_assert_eq(n.rank, 1);
    cr_assert_gt(n.eff_weight, 0);
    mon_table_end_round(t, 25100);
    cr_assert_eq(get("alpha").state, MON_UP);
}

Test(table, suspect_restored_by_report)
{
    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 50, 10), 0);
    mon_table_end_round(t, 100);
    mon_table_begin_round(t, 2, 5000);
    mon_table_end_round(t, 5100);
    cr_assert_eq(get("alpha").state, MON_SUSPECT);

    mon_table_begin_round(t, 3, 10000);
    cr_assert_eq(respond("alpha", BOOT_A, 3, 50, 10010), 0);
    cr_assert_eq(get("alpha").state, MON_UP);
    cr_assert_eq(get("alpha").missed, 0);
    /* was never down: slow start does not begin again */
    cr_assert_eq(get("alpha").up_since_ms, 10);
    mon_table_end_round(t, 10100);
    cr_assert_eq(get("alpha").state, MON_UP);
}

Test(table, service_down_is_down_at_once)
{
    struct proto_msg m = msg(PROTO_PROBE_RESPONSE, "alpha", BOOT_A, 2);
    struct mon_node n;

    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 90, 10), 0);
    cr_assert_eq(respond("beta", BOOT_B, 1, 40, 10), 0);
    mon_table_end_round(t, 100);
    cr_assert_eq(get("alpha").rank, 1);
    cr_assert_eq(get("beta").rank, 2);

    mon_table_begin_round(t, 2, 5000);
    m.m.service_up = false;
    cr_assert_eq(mon_table_report(t, &m, 1.0, 5010), 0);
    n = get("alpha");
    cr_assert_eq(n.state, MON_DOWN);
    cr_assert_eq(n.eff_weight, 0);
    cr_assert_eq(n.rank, 0);
    cr_assert(!n.m.service_up);
    cr_assert_eq(get("beta").rank, 1, "beta moves up at once");
    mon_table_end_round(t, 5100);
    cr_assert_eq(get("alpha").state, MON_DOWN);
    cr_assert_eq(get("alpha").missed, 0, "it answered: down for its service, not for silence");

    /* service back: up at once, slow start from now */
    mon_table_begin_round(t, 3, 10000);
    cr_assert_eq(respond("alpha", BOOT_A, 3, 90, 10010), 0);
    n = get("alpha");
    cr_assert_eq(n.state, MON_UP);
    cr_assert_eq(n.up_since_ms, 10010);
    cr_assert_eq(n.rank, 1);
    assert_ranks_consistent();
}

Test(table, new_node_with_service_down)
{
    struct proto_msg m = msg(PROTO_HELLO, "alpha", BOOT_A, 1);

    m.m.service_up = false;
    cr_assert_eq(mon_table_report(t, &m, -1, 10), 0);
    cr_assert_eq(get("alpha").state, MON_DOWN);
    cr_assert_eq(get("alpha").eff_weight, 0);
    cr_assert_eq(get("alpha").rank, 0);
}

Test(table, bye_removes)
{
    cr_assert_eq(hello("alpha", BOOT_A, 1, 10), 0);
    cr_assert_eq(hello("beta", BOOT_B, 1, 10), 0);
    cr_assert_eq(bye("alpha", BOOT_A, 2), 0);
    cr_assert_eq(mon_table_count(t), 1);
    cr_assert(!mon_table_get(t, "alpha", &(struct mon_node){0}));
    cr_assert_eq(get("beta").rank, 1);
    cr_assert_eq(bye("alpha", BOOT_A, 3), -ENOENT);
}

Test(table, bye_errors)
{
    cr_assert_eq(bye("nobody", BOOT_A, 5), -ENOENT);
    cr_assert_eq(hello("alpha", BOOT_A, 5, 10), 0);
    cr_assert_eq(bye("alpha", BOOT_B, 6), -ESTALE);
    cr_assert_eq(bye("alpha", BOOT_A, 5), -EALREADY);
    cr_assert_eq(bye("alpha", BOOT_A, 4), -EALREADY);
    cr_assert_eq(mon_table_count(t), 1, "a refused bye changes nothing");
    cr_assert_eq(bye("alpha", BOOT_A, 6), 0);
    cr_assert_eq(mon_table_count(t), 0);
}

Test(table, replayed_hello)
{
    cr_assert_eq(hello("alpha", BOOT_A, 7, 10), 0);
    cr_assert_eq(hello("alpha", BOOT_A, 7, 20), -EALREADY);
    cr_assert_eq(hello("alpha", BOOT_A, 3, 20), -EALREADY);
    cr_assert_eq(get("alpha").last_ms, 10, "a refused hello changes nothing");
    cr_assert_eq(hello("alpha", BOOT_A, 8, 30), 0);
    cr_assert_eq(get("alpha").agent_seq, 8);
    cr_assert_eq(get("alpha").last_ms, 30);
}

Test(table, hello_after_bye_is_stale)
{
    cr_assert_eq(hello("alpha", BOOT_A, 1, 10), 0);
    cr_assert_eq(bye("alpha", BOOT_A, 2), 0);
    cr_assert_eq(hello("alpha", BOOT_A, 1, 20), -ESTALE);
    cr_assert_eq(hello("alpha", BOOT_A, 3, 20), -ESTALE);
    /* a late response from the boot that left is stale too */
    cr_assert_eq(respond("alpha", BOOT_A, 1, 50, 20), -ESTALE);
    cr_assert_eq(mon_table_count(t), 0);
    /* the agent started again: a new boot is welcome */
    cr_assert_eq(hello("alpha", BOOT_B, 1, 30), 0);
    cr_assert_eq(get("alpha").state, MON_UP);
}

Test(table, tombstones_are_a_ring_of_64)
{
    char name[16];

    cr_assert_eq(hello("n0", BOOT_A, 1, 10), 0);
    cr_assert_eq(bye("n0", BOOT_A, 2), 0);
    for (int i = 1; i <= 63; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        cr_assert_eq(hello(name, BOOT_A, 1, 10), 0);
        cr_assert_eq(bye(name, BOOT_A, 2), 0);
    }
    cr_assert_eq(hello("n0", BOOT_A, 3, 20), -ESTALE, "64 byes: n0 still remembered");
    cr_assert_eq(hello("n64", BOOT_A, 1, 10), 0);
    cr_assert_eq(bye("n64", BOOT_A, 2), 0);
    cr_assert_eq(hello("n0", BOOT_A, 3, 20), 0, "the 65th bye pushed n0 out");
    cr_assert_eq(hello("n1", BOOT_A, 3, 20), -ESTALE);
}

Test(table, agent_restart)
{
    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(hello("alpha", BOOT_A, 40, 10), 0);
    mon_table_end_round(t, 100);
    mon_table_begin_round(t, 2, 5000);
    mon_table_end_round(t, 5100);
    cr_assert_eq(get("alpha").missed, 1);

    /* a new boot restarts its counter: seq 1 is fine */
    cr_assert_eq(hello("alpha", BOOT_B, 1, 6000), 0);
    cr_assert_str_eq(get("alpha").boot, BOOT_B);
    cr_assert_eq(get("alpha").agent_seq, 1);
    cr_assert_eq(get("alpha").missed, 0);
    cr_assert_eq(get("alpha").state, MON_UP);
    cr_assert_eq(mon_table_count(t), 1);
    /* the old process is gone: its messages are replays */
    cr_assert_eq(hello("alpha", BOOT_A, 41, 6100), -ESTALE);
    cr_assert_eq(bye("alpha", BOOT_A, 42), -ESTALE);
    cr_assert_str_eq(get("alpha").boot, BOOT_B);
}

Test(table, restart_seen_first_in_a_response)
{
    cr_assert_eq(hello("alpha", BOOT_A, 40, 10), 0);
    mon_table_begin_round(t, 9, 5000);
    cr_assert_eq(respond("alpha", BOOT_B, 9, 50, 5010), 0);
    cr_assert_str_eq(get("alpha").boot, BOOT_B);
    cr_assert_eq(get("alpha").agent_seq, 0);
    /* the new boot's hello (seq 1) arrives late: accepted */
    cr_assert_eq(hello("alpha", BOOT_B, 1, 5020), 0);
    cr_assert_eq(get("alpha").agent_seq, 1);
}

Test(table, duplicate_response)
{
    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 50, 10), 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 90, 20), -EALREADY);
    cr_assert_float_eq(get("alpha").m.cpu_idle, 50.0, 1e-9, "refused: unchanged");
    cr_assert_eq(get("alpha").last_ms, 10);
    /* a hello does not count as the round's answer for duplicates */
    cr_assert_eq(hello("alpha", BOOT_A, 1, 30), 0);
    cr_assert_eq(hello("beta", BOOT_B, 1, 30), 0);
    cr_assert_eq(respond("beta", BOOT_B, 1, 50, 40), 0);
    cr_assert_eq(respond("beta", BOOT_B, 1, 50, 40), -EALREADY);
    mon_table_end_round(t, 100);

    mon_table_begin_round(t, 2, 5000);
    cr_assert_eq(respond("alpha", BOOT_A, 2, 50, 5010), 0);
    cr_assert_eq(respond("beta", BOOT_B, 2, 50, 5010), 0);
}

Test(table, response_does_not_touch_agent_seq)
{
    cr_assert_eq(hello("alpha", BOOT_A, 5, 10), 0);
    mon_table_begin_round(t, 1000, 5000);
    cr_assert_eq(respond("alpha", BOOT_A, 1000, 50, 5010), 0);
    cr_assert_eq(get("alpha").agent_seq, 5);
    cr_assert_eq(hello("alpha", BOOT_A, 6, 5020), 0);
    cr_assert_eq(bye("alpha", BOOT_A, 7), 0);
}

Test(table, rtt_smoothing)
{
    struct proto_msg m = msg(PROTO_PROBE_RESPONSE, "alpha", BOOT_A, 1);
    struct mon_node n;

    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(mon_table_report(t, &m, 8.0, 10), 0);
    n = get("alpha");
    cr_assert(n.has_rtt);
    cr_assert_float_eq(n.rtt_ms, 8.0, 1e-12);
    cr_assert_float_eq(n.srtt_ms, 8.0, 1e-12);
    mon_table_end_round(t, 100);

    mon_table_begin_round(t, 2, 5000);
    m.seq = 2;
    cr_assert_eq(mon_table_report(t, &m, 16.0, 5010), 0);
    n = get("alpha");
    cr_assert_float_eq(n.rtt_ms, 16.0, 1e-12);
    cr_assert_float_eq(n.srtt_ms, 9.0, 1e-12);

    /* a hello carries no RTT */
    cr_assert_eq(hello("alpha", BOOT_A, 1, 5020), 0);
    cr_assert_float_eq(get("alpha").srtt_ms, 9.0, 1e-12);
}

Test(table, weight_steps_once_a_round)
{
    struct mon_node n;

    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 0, 10), 0);
    mon_table_end_round(t, 100);
    n = get("alpha");
    /* cpu 0, ram 0.5, rtt 2 ms: 256 * 0.15 / (1 + 2/400) */
    double low = 256.0 * 0.15 / (1.0 + 2.0 / 400.0);
    cr_assert_float_eq(n.weight, low, 1e-9);

    /* now fully idle CPU: the target jumps, the weight moves 32 a round */
    mon_table_begin_round(t, 2, 5000);
    cr_assert_eq(respond("alpha", BOOT_A, 2, 100, 5010), 0);
    cr_assert_float_eq(get("alpha").weight, low, 1e-9, "no step before the round ends");
    mon_table_end_round(t, 5100);
    cr_assert_float_eq(get("alpha").weight, low + 32.0, 1e-9);
    cr_assert_eq(get("alpha").eff_weight, (unsigned)lround(low + 32.0));

    /* a round without a report does not move the weight */
    mon_table_begin_round(t, 3, 10000);
    mon_table_end_round(t, 10100);
    cr_assert_float_eq(get("alpha").weight, low + 32.0, 1e-9);
}

static int respond_sized(const char *name, const char *boot, uint64_t round, double cpu,
                         uint32_t cpu_milli, uint64_t now)
{
    struct proto_msg m = msg(PROTO_PROBE_RESPONSE, name, boot, round);

    m.m.cpu_idle = cpu;
    m.m.cpu_milli = cpu_milli;
    return mon_table_report(t, &m, -1, now);
}

/* Weights are shares of the biggest node: a node a fifth the size weighs a
 * fifth; a bigger node that arrives rescales everyone at once, without
 * waiting for the step limit; an agent that sends no capacity counts as
 * the median. */
Test(table, weights_follow_capacity)
{
    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond_sized("c", BOOT_A, 1, 100, 20, 10), 0);
    /* alone, c is the biggest: 256 * (0.7 + 0.3 * 0.5) */
    cr_assert_float_eq(get("c").weight, 217.6, 1e-9);
    cr_assert_eq(respond_sized("a", BOOT_B, 1, 100, 100, 20), 0);
    cr_assert_float_eq(get("a").weight, 217.6, 1e-9);
    cr_assert_float_eq(get("c").weight, 217.6 / 5.0, 1e-9, "rescaled when a arrived");
    cr_assert_eq(get("a").rank, 1);
    cr_assert_eq(get("c").rank, 2);
    cr_assert_eq(respond_sized("old", BOOT_C, 1, 100, 0, 30), 0);
    mon_table_end_round(t, 100);
    /* the median of 0.1 and 0.02 is 0.06: old weighs 0.6 of a */
    cr_assert_float_eq(get("old").weight, 217.6 * 0.6, 1e-9);
    cr_assert_float_eq(get("c").weight, 217.6 / 5.0, 1e-9);
    cr_assert_eq(get("c").eff_weight, 44);

    /* a leaves: at the end of the next round c is the biggest again */
    mon_table_begin_round(t, 2, 5000);
    cr_assert_eq(respond_sized("c", BOOT_A, 2, 100, 20, 5010), 0);
    cr_assert_eq(respond_sized("old", BOOT_C, 2, 100, 0, 5020), 0);
    cr_assert_eq(bye("a", BOOT_B, 2), 0);
    mon_table_end_round(t, 5100);
    cr_assert_float_eq(get("c").weight, 217.6, 1e-9);
    /* old: 0.6 of a is 3 times c, capped at 256, then half way to c's
     * 217.6 since the median is c's 0.02 now */
    cr_assert_float_eq(get("old").weight, 236.8, 1e-9);
    assert_ranks_consistent();
}

Test(table, max_nodes)
{
    mon_table_free(t);
    cfg.max_nodes = 3;
    t = mon_table_new(&cfg);
    cr_assert_eq(hello("a", BOOT_A, 1, 10), 0);
    cr_assert_eq(hello("b", BOOT_A, 1, 10), 0);
    cr_assert_eq(hello("c", BOOT_A, 1, 10), 0);
    cr_assert_eq(hello("d", BOOT_A, 1, 10), -ENOSPC);
    cr_assert_eq(respond("d", BOOT_A, 1, 50, 10), -ENOSPC);
    cr_assert_eq(mon_table_count(t), 3);
    cr_assert(!mon_table_get(t, "d", &(struct mon_node){0}));
    /* known nodes still report */
    cr_assert_eq(hello("c", BOOT_A, 2, 20), 0);
    cr_assert_eq(bye("c", BOOT_A, 3), 0);
    cr_assert_eq(hello("d", BOOT_A, 1, 10), 0);
}

Test(table, drain)
{
    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 90, 10), 0);
    cr_assert_eq(respond("beta", BOOT_B, 1, 60, 10), 0);
    cr_assert_eq(respond("gamma", BOOT_C, 1, 30, 10), 0);
    mon_table_end_round(t, 100);
    cr_assert_eq(get("alpha").rank, 1);

    cr_assert_eq(mon_table_set_drain(t, "alpha", true), 0);
    struct mon_node n = get("alpha");
    cr_assert_eq(n.state, MON_DRAINING);
    cr_assert(n.drain);
    cr_assert_eq(n.eff_weight, 0);
    cr_assert_eq(n.rank, 0);
    cr_assert_gt(n.weight, 8.0, "the metrics weight is kept for later");
    cr_assert_eq(get("beta").rank, 1);
    cr_assert_eq(get("gamma").rank, 2);

    /* still draining after a round in which it answered */
    mon_table_begin_round(t, 2, 5000);
    cr_assert_eq(respond("alpha", BOOT_A, 2, 90, 5010), 0);
    mon_table_end_round(t, 5100);
    cr_assert_eq(get("alpha").state, MON_DRAINING);
    cr_assert_eq(get("alpha").eff_weight, 0);

    cr_assert_eq(mon_table_set_drain(t, "alpha", false), 0);
    cr_assert_eq(get("alpha").state, MON_UP);
    cr_assert_eq(get("alpha").rank, 1);
    cr_assert_gt(get("alpha").eff_weight, 0);
    cr_assert_eq(get("beta").rank, 2);
    assert_ranks_consistent();

    cr_assert_eq(mon_table_set_drain(t, "nobody", true), -ENOENT);
}

Test(table, drain_of_a_down_node_shows_down)
{
    struct proto_msg m = msg(PROTO_PROBE_RESPONSE, "alpha", BOOT_A, 1);

    m.m.service_up = false;
    cr_assert_eq(mon_table_report(t, &m, 1.0, 10), 0);
    cr_assert_eq(mon_table_set_drain(t, "alpha", true), 0);
    cr_assert_eq(get("alpha").state, MON_DOWN);
    cr_assert(get("alpha").drain);
    /* service back: draining, still out of rotation */
    mon_table_begin_round(t, 2, 5000);
    cr_assert_eq(respond("alpha", BOOT_A, 2, 50, 5010), 0);
    cr_assert_eq(get("alpha").state, MON_DRAINING);
    cr_assert_eq(get("alpha").eff_weight, 0);
}

Test(table, ranks_ordered_by_weight)
{
    static const struct {
        const char *name;
        double cpu;
    } nodes[] = {{"e", 10}, {"b", 90}, {"d", 30}, {"a", 70}, {"c", 50}, {"f", 70}};
    static const char *const order[] = {"b", "a", "f", "c", "d", "e"};
    struct mon_node rows[8];
    size_t n;

    mon_table_begin_round(t, 1, 0);
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(respond(nodes[i].name, BOOT_A, 1, nodes[i].cpu, 10), 0);
    mon_table_end_round(t, 100);
    n = mon_table_snapshot(t, rows, 8);
    cr_assert_eq(n, 6);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_str_eq(rows[i].name, order[i]);
        cr_assert_eq(rows[i].rank, i + 1);
    }
    cr_assert_eq(rows[1].eff_weight, rows[2].eff_weight, "a and f tie, broken by name");
    cr_assert_gt(rows[0].eff_weight, rows[1].eff_weight);
    cr_assert_gt(rows[4].eff_weight, rows[5].eff_weight);
    /* a short snapshot keeps the best */
    n = mon_table_snapshot(t, rows, 2);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(rows[0].name, "b");
    cr_assert_str_eq(rows[1].name, "a");
    cr_assert_eq(mon_table_snapshot(t, rows, 0), 0);
}

Test(table, snapshot_puts_unranked_last_by_name)
{
    struct mon_node rows[4];

    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("zed", BOOT_A, 1, 10, 10), 0);
    cr_assert_eq(respond("yak", BOOT_A, 1, 90, 10), 0);
    cr_assert_eq(respond("bob", BOOT_A, 1, 50, 10), 0);
    cr_assert_eq(respond("amy", BOOT_A, 1, 50, 10), 0);
    mon_table_end_round(t, 100);
    cr_assert_eq(mon_table_set_drain(t, "bob", true), 0);
    cr_assert_eq(mon_table_set_drain(t, "amy", true), 0);
    cr_assert_eq(mon_table_snapshot(t, rows, 4), 4);
    cr_assert_str_eq(rows[0].name, "yak");
    cr_assert_str_eq(rows[1].name, "zed");
    cr_assert_str_eq(rows[2].name, "amy");
    cr_assert_str_eq(rows[3].name, "bob");
}

Test(table, ranks_stay_consistent_under_churn)
{
    char name[16];
    unsigned seed = 12345;

    for (int round = 1; round <= 40; round++) {
        mon_table_begin_round(t, (uint64_t)round, (uint64_t)round * 5000);
        for (int i = 0; i < 50; i++) {
            struct proto_msg m;

            seed = seed * 1103515245u + 12345u;
            snprintf(name, sizeof(name), "node%02d", i);
            m = msg(PROTO_PROBE_RESPONSE, name, BOOT_A, (uint64_t)round);
            m.m.cpu_idle = (seed >> 8) % 101;
            m.m.service_up = (seed >> 20) % 7 != 0;
            if ((seed >> 4) % 5 == 0)
                continue; /* this one misses the round */
            cr_assert_eq(mon_table_report(t, &m, (seed >> 12) % 50, (uint64_t)round * 5000 + 1), 0);
            if ((seed >> 16) % 9 == 0)
                cr_assert_eq(mon_table_set_drain(t, name, (seed >> 24) % 2), 0);
            assert_ranks_consistent();
        }
        mon_table_end_round(t, (uint64_t)round * 5000 + 4000);
        assert_ranks_consistent();
    }
}

Test(table, forget_old_down_nodes)
{
    mon_table_begin_round(t, 1, 0);
    cr_assert_eq(respond("alpha", BOOT_A, 1, 50, 1000), 0);
    cr_assert_eq(respond("beta", BOOT_B, 1, 50, 1000), 0);
    mon_table_end_round(t, 1100);
    for (uint64_t r = 2; r <= 4; r++) {
        mon_table_begin_round(t, r, r * 5000);
        cr_assert_eq(respond("beta", BOOT_B, r, 50, r * 5000 + 10), 0);
        mon_table_end_round(t, r * 5000 + 100);
    }
    cr_assert_eq(get("alpha").state, MON_DOWN);

    /* exactly forget_ms after its last report: still there */
    mon_table_begin_round(t, 5, 300000);
    cr_assert_eq(respond("beta", BOOT_B, 5, 50, 300000), 0);
    mon_table_end_round(t, 1000 + 300000);
    cr_assert_eq(mon_table_count(t), 2);

    mon_table_begin_round(t, 6, 301000);
    cr_assert_eq(respond("beta", BOOT_B, 6, 50, 301000), 0);
    mon_table_end_round(t, 1000 + 300001);
    cr_assert_eq(mon_table_count(t), 1);
    cr_assert(!mon_table_get(t, "alpha", &(struct mon_node){0}));
    cr_assert_eq(get("beta").rank, 1, "an up node is never forgotten");

    /* it may come back as a new node */
    cr_assert_eq(hello("alpha", BOOT_A, 1, 302000), 0);
    cr_assert_eq(get("alpha").first_ms, 302000);
}

Test(table, bad_input_is_refused_or_bounded)
{
    struct proto_msg m = msg(PROTO_HELLO, "", BOOT_A, 1);

    cr_assert_eq(mon_table_report(t, &m, -1, 10), -EINVAL, "empty name");
    m = msg(PROTO_PROBE_REQUEST, "alpha", BOOT_A, 1);
    cr_assert_eq(mon_table_report(t, &m, -1, 10), -EINVAL, "not a report");
    m = msg(PROTO_BYE, "alpha", BOOT_A, 1);
    cr_assert_eq(mon_table_report(t, &m, -1, 10), -EINVAL, "not a report");
    cr_assert_eq(mon_table_count(t), 0);

    /* unterminated strings are cut at their limits */
    m = msg(PROTO_PROBE_RESPONSE, "x", BOOT_A, 1);
    memset(m.name, 'n', sizeof(m.name));
    memset(m.boot, 'b', sizeof(m.boot));
    memset(m.m.ip, '9', sizeof(m.m.ip));
    m.m.cpu_idle = NAN;
    m.m.ram_free = INFINITY;
    m.m.ram_total = -1;
    m.m.load1 = NAN;
    cr_assert_eq(mon_table_report(t, &m, NAN, 10), 0);
    cr_assert_eq(mon_table_count(t), 1);

    struct mon_node rows[1];
    char want[PROTO_NAME_MAX + 1];
    char buf[4096];

    cr_assert_eq(mon_table_snapshot(t, rows, 1), 1);
    cr_assert_eq(strlen(rows[0].name), PROTO_NAME_MAX);
    cr_assert_eq(strlen(rows[0].boot), PROTO_NONCE_HEX);
    cr_assert_eq(strlen(rows[0].m.ip), 15);
    cr_assert(!rows[0].has_rtt, "a NaN RTT is no sample");
    cr_assert_geq(rows[0].eff_weight, MON_WEIGHT_FLOOR);
    memset(want, 'n', PROTO_NAME_MAX);
    want[PROTO_NAME_MAX] = '\0';
    cr_assert(mon_table_get(t, want, &rows[0]));
    cr_assert_gt(mon_table_format_text(rows, 1, 1, 10, 0, buf, sizeof(buf)), 0);
    cr_assert(strstr(buf, want));
    cr_assert_gt(mon_table_format_json(rows, 1, 1, 10, 0, buf, sizeof(buf)), 0);
    cJSON *j = cJSON_Parse(buf);
    cr_assert_not_null(j);
    cJSON *node = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "nodes"), 0);
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(node, "cpu_idle")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(node, "load1")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(node, "rtt_ms")));
    cJSON_Delete(j);

    /* a name longer than the limit is simply unknown */
    char longname[PROTO_NAME_MAX + 8];

    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert(!mon_table_get(t, longname, &rows[0]));
    cr_assert_eq(mon_table_set_drain(t, longname, true), -ENOENT);
    cr_assert_eq(mon_table_set_drain(t, "", true), -ENOENT);
}

/* ---- output ---------------------------------------------------------- */

static size_t two_nodes(struct mon_node *rows, size_t max)
{
    struct proto_msg m = msg(PROTO_PROBE_RESPONSE, "cache-long-name-01", BOOT_A, 1);

    mon_table_begin_round(t, 1, 0);
    m.m.ram_free = 7.8 * GIB;
    m.m.ram_total = 16 * GIB;
    m.m.cpu_idle = 87.25;
    m.m.load1 = 1.5;
    m.m.cpu_milli = 2500; /* c2 sends none */
    cr_assert_eq(mon_table_report(t, &m, 1.234567, 1000), 0);
    m = msg(PROTO_HELLO, "c2", BOOT_B, 1);
    snprintf(m.m.ip, sizeof(m.m.ip), "192.168.100.200");
    m.m.port = 65535;
    m.m.ram_free = 512 * MIB;
    m.m.ram_total = 1 * GIB;
    m.m.cpu_idle = 12.34;
    cr_assert_eq(mon_table_report(t, &m, -1, 2000), 0);
    mon_table_end_round(t, 3000);
    return mon_table_snapshot(t, rows, max);
}

/* Offset of the first occurrence of word in line (as a column). */
static long col_of(const char *line, const char *word)
{
    const char *p = strstr(line, word);

    return p ? p - line : -1;
}

Test(table, format_text)
{
    struct mon_node rows[2];
    char buf[4096];
    char *lines[8];
    int n_lines = 0;
    int len;

    cr_assert_eq(two_nodes(rows, 2), 2);
    /* 2023-11-14T22:13:20Z */
    len = mon_table_format_text(rows, 2, 7, 5500, 1700000000123ULL, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    cr_assert_eq((size_t)len, strlen(buf));
    cr_assert(len >= 2 && buf[len - 1] == '\n' && buf[len - 2] == '\n', "ends with a blank line");

    for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l && n_lines < 8;
         l = strtok_r(NULL, "\n", &save))
        lines[n_lines++] = l;
    cr_assert_eq(n_lines, 4);
    cr_assert_str_eq(lines[0], "round 7  2023-11-14T22:13:20Z  nodes 2  up 2");
    cr_assert_eq(strncmp(lines[1], "NAME ", 5), 0);
    /* the NAME column fits the longest name */
    cr_assert_eq(col_of(lines[1], "ADDR"), (long)strlen("cache-long-name-01") + 2);
    /* left-aligned columns start where their title starts */
    cr_assert_eq(strncmp(lines[2], "cache-long-name-01  10.0.0.1:8080 ", 34), 0);
    cr_assert_eq(strncmp(lines[3], "c2  ", 4), 0);
    cr_assert_eq(col_of(lines[2], "10.0.0.1:8080"), col_of(lines[1], "ADDR"));
    cr_assert_eq(col_of(lines[3], "192.168.100.200:65535"), col_of(lines[1], "ADDR"));
    cr_assert_eq(col_of(lines[2], " up "), col_of(lines[1], " STATE"));
    /* every line has the same length: right-aligned numbers end together */
    cr_assert_eq(strlen(lines[2]), strlen(lines[1]));
    cr_assert_eq(strlen(lines[3]), strlen(lines[1]));
    /* right-aligned: values end where their titles end */
    long rank_end = col_of(lines[1], "RANK") + 4;
    cr_assert_eq((long)strlen(lines[1]), rank_end);
    long ram_end = col_of(lines[1], "RAM_TOTAL") + 9;
    cr_assert_eq(col_of(lines[2], "16.0G") + 5, ram_end);
    cr_assert_eq(col_of(lines[3], "1.0G") + 4, ram_end);
    cr_assert_eq(col_of(lines[2], " 7.8G ") + 5, col_of(lines[1], "RAM_FREE") + 8);
    cr_assert_eq(col_of(lines[3], " 512M ") + 5, col_of(lines[1], "RAM_FREE") + 8);
    /* values */
    cr_assert_not_null(strstr(lines[2], " 87.2 ") ? strstr(lines[2], " 87.2 ")
                                                  : strstr(lines[2], " 87.3 "));
    cr_assert_not_null(strstr(lines[3], " 12.3 "));
    cr_assert_not_null(strstr(lines[2], " 1.50 "));
    cr_assert_not_null(strstr(lines[2], " 1.235 "), "srtt with 3 decimals");
    cr_assert_not_null(strstr(lines[2], " 4.5 "), "age 5.5 s - 1.0 s");
    cr_assert_not_null(strstr(lines[3], " 3.5 "), "age 5.5 s - 2.0 s");
    cr_assert_eq(lines[2][strlen(lines[2]) - 1], '1', "rank 1");
    cr_assert_eq(lines[3][strlen(lines[3]) - 1], '2', "rank 2");
    /* the hello-only node has no RTT */
    cr_assert_not_null(strstr(lines[3], " - "));
    for (int i = 0; i < 2; i++) {
        char w[16];

        snprintf(w, sizeof(w), " %u ", rows[i].eff_weight);
        cr_assert_not_null(strstr(lines[2 + i], w));
    }
    /* CPUS: what the agent says its node may use, "-" when it sends none */
    cr_assert_eq(col_of(lines[2], " 2.50 ") + 5, col_of(lines[1], "CPUS") + 4);
    cr_assert_eq(col_of(lines[3] + col_of(lines[1], "CPUS"), "-"), 3, "%s", lines[3]);
    static const char *const titles[] = {"NAME",     "ADDR",      "STATE", "CPU_IDLE", "CPUS",
                                         "RAM_FREE", "RAM_TOTAL", "LOAD1", "SERVICE",  "RTT_MS",
                                         "AGE_S",    "WEIGHT",    "RANK"};
    long prev = -1;
    for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++) {
        long c = col_of(lines[1], titles[i]);

        cr_assert_gt(c, prev, "%s out of order", titles[i]);
        prev = c;
    }
}

Test(table, format_text_states)
{
    struct mon_node rows[3];
    char buf[4096];
    struct proto_msg m = msg(PROTO_HELLO, "down1", BOOT_C, 1);

    cr_assert_eq(two_nodes(rows, 2), 2);
    m.m.service_up = false;
    cr_assert_eq(mon_table_report(t, &m, -1, 3000), 0);
    cr_assert_eq(mon_table_set_drain(t, "c2", true), 0);
    cr_assert_eq(mon_table_snapshot(t, rows, 3), 3);
    cr_assert_gt(mon_table_format_text(rows, 3, 1, 3000, 0, buf, sizeof(buf)), 0);
    cr_assert_not_null(strstr(buf, "1970-01-01T00:00:00Z  nodes 3  up 1\n"));
    cr_assert_not_null(strstr(buf, "draining"));
    cr_assert_not_null(strstr(buf, " down "));
    cr_assert_not_null(strstr(buf, "down1 "));
}

/* Drops every ESC [ ... m sequence. */
static void strip_sgr(const char *in, char *out)
{
    while (*in) {
        if (in[0] == '\033' && in[1] == '[') {
            in += 2;
            while (*in && *in != 'm')
                in++;
            if (*in)
                in++;
            continue;
        }
        *out++ = *in++;
    }
    *out = '\0';
}

Test(table, format_text_color)
{
    struct mon_node rows[3];
    char plain[4096], color[8192], stripped[8192];
    struct proto_msg m = msg(PROTO_HELLO, "down1", BOOT_C, 1);
    int lp, lc;

    cr_assert_eq(two_nodes(rows, 2), 2);
    m.m.service_up = false;
    cr_assert_eq(mon_table_report(t, &m, -1, 3000), 0);
    cr_assert_eq(mon_table_set_drain(t, "c2", true), 0);
    cr_assert_eq(mon_table_snapshot(t, rows, 3), 3);
    lp = mon_table_format_text_ex(rows, 3, 1, 3000, 0, 0, plain, sizeof(plain));
    lc = mon_table_format_text_ex(rows, 3, 1, 3000, 0, MON_FMT_COLOR, color, sizeof(color));
    cr_assert_gt(lp, 0);
    cr_assert_gt(lc, lp, "colour adds escapes");
    cr_assert_null(strchr(plain, '\033'), "no escapes without the flag");
    cr_assert_not_null(strstr(color, "\033[32mup"), "up in green: %s", color);
    cr_assert_not_null(strstr(color, "\033[36mdraining"), "draining in cyan");
    cr_assert_not_null(strstr(color, "\033[1;31mdown"), "down in red");
    /* Same text and the same alignment once the escapes are gone. */
    strip_sgr(color, stripped);
    cr_assert_str_eq(stripped, plain);
}

Test(table, format_json)
{
    struct mon_node rows[2];
    char buf[4096];
    int len;
    cJSON *j, *nodes, *n;

    cr_assert_eq(two_nodes(rows, 2), 2);
    len = mon_table_format_json(rows, 2, 7, 5500, 1700000000123ULL, buf, sizeof(buf));
    cr_assert_gt(len, 0);
    cr_assert_eq((size_t)len, strlen(buf));
    cr_assert_null(strchr(buf, '\n'), "one line, no newline");
    cr_assert_not_null(strstr(buf, "\"ts\":1700000000.123"), "tidy ts: %s", buf);
    cr_assert_not_null(strstr(buf, "\"rtt_ms\":1.235"), "tidy rtt: %s", buf);
    cr_assert_not_null(strstr(buf, "\"cpu_idle\":12.3,"), "tidy cpu: %s", buf);
    cr_assert_not_null(strstr(buf, "\"rtt_ms\":null"));

    j = cJSON_Parse(buf);
    cr_assert_not_null(j);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "round")));
    cr_assert_eq(cJSON_GetObjectItem(j, "round")->valuedouble, 7);
    cr_assert_float_eq(cJSON_GetObjectItem(j, "ts")->valuedouble, 1700000000.123, 1e-6);
    nodes = cJSON_GetObjectItem(j, "nodes");
    cr_assert(cJSON_IsArray(nodes));
    cr_assert_eq(cJSON_GetArraySize(nodes), 2);

    n = cJSON_GetArrayItem(nodes, 0);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(n, "name")), "cache-long-name-01");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(n, "addr")), "10.0.0.1:8080");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(n, "state")), "up");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(n, "service")), "up");
    static const char *const numbers[] = {"cpu_idle", "cpus",  "ram_free", "ram_total", "load1",
                                          "rtt_ms",   "age_s", "weight",   "rank"};
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(n, numbers[i])), "%s", numbers[i]);
    cr_assert_eq(cJSON_GetArraySize(n), 13, "exactly the documented fields");
    cr_assert_float_eq(cJSON_GetObjectItem(n, "cpus")->valuedouble, 2.5, 1e-9);
    cr_assert_float_eq(cJSON_GetObjectItem(n, "cpu_idle")->valuedouble, 87.3, 0.051);
    cr_assert_float_eq(cJSON_GetObjectItem(n, "ram_free")->valuedouble, round(7.8 * GIB), 0.5);
    cr_assert_float_eq(cJSON_GetObjectItem(n, "ram_total")->valuedouble, 16 * GIB, 0.5);
    cr_assert_float_eq(cJSON_GetObjectItem(n, "load1")->valuedouble, 1.5, 1e-9);
    cr_assert_float_eq(cJSON_GetObjectItem(n, "rtt_ms")->valuedouble, 1.235, 1e-9);
    cr_assert_float_eq(cJSON_GetObjectItem(n, "age_s")->valuedouble, 4.5, 1e-9);
    cr_assert_eq(cJSON_GetObjectItem(n, "weight")->valuedouble, rows[0].eff_weight);
    cr_assert_eq(cJSON_GetObjectItem(n, "rank")->valuedouble, 1);

    n = cJSON_GetArrayItem(nodes, 1);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(n, "name")), "c2");
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(n, "addr")), "192.168.100.200:65535");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(n, "rtt_ms")));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(n, "cpus")), "no cpu_milli: null");
    cr_assert_eq(cJSON_GetObjectItem(n, "rank")->valuedouble, 2);
    cr_assert_float_eq(cJSON_GetObjectItem(n, "ram_free")->valuedouble, 512 * MIB, 0.5);
    cJSON_Delete(j);

    /* no rows: an empty array */
    len = mon_table_format_json(rows, 0, 8, 0, 0, buf, sizeof(buf));
    cr_assert_str_eq(buf, "{\"round\":8,\"ts\":0,\"nodes\":[]}");
    cr_assert_eq(len, (int)strlen(buf));
}

typedef int (*format_fn)(const struct mon_node *, size_t, uint64_t, uint64_t, uint64_t, char *,
                         size_t);

static void check_snprintf_contract(format_fn f)
{
    struct mon_node rows[2];
    char full[4096];
    char small[16];
    char *exact;
    int need, got;

    cr_assert_eq(two_nodes(rows, 2), 2);
    need = f(rows, 2, 3, 5000, 0, full, sizeof(full));
    cr_assert_gt(need, 40);
    cr_assert_eq((size_t)need, strlen(full));

    cr_assert_eq(f(rows, 2, 3, 5000, 0, NULL, 0), need, "NULL, 0 measures");

    memset(small, 'X', sizeof(small));
    got = f(rows, 2, 3, 5000, 0, small, sizeof(small));
    cr_assert_eq(got, need, "a short buffer still reports the full length");
    cr_assert_eq(small[sizeof(small) - 1], '\0');
    cr_assert_eq(strncmp(small, full, sizeof(small) - 1), 0, "truncated prefix");

    memset(small, 'X', sizeof(small));
    cr_assert_eq(f(rows, 2, 3, 5000, 0, small, 1), need);
    cr_assert_eq(small[0], '\0');
    cr_assert_eq(small[1], 'X', "wrote past len");

    exact = malloc((size_t)need + 1);
    cr_assert_eq(f(rows, 2, 3, 5000, 0, exact, (size_t)need + 1), need);
    cr_assert_str_eq(exact, full);
    memset(exact, 'X', (size_t)need + 1);
    cr_assert_eq(f(rows, 2, 3, 5000, 0, exact, (size_t)need), need);
    cr_assert_eq(exact[need - 1], '\0', "one byte short: cut, terminated");
    cr_assert_eq(strncmp(exact, full, (size_t)need - 1), 0);
    free(exact);
}

Test(table, text_snprintf_contract)
{
    check_snprintf_contract(mon_table_format_text);
}

Test(table, json_snprintf_contract)
{
    check_snprintf_contract(mon_table_format_json);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 4096 nodes: every report is a hash lookup, not a scan or a sort. The
 * bound is loose (sanitizers, parallel jobs); a linear design misses it by
 * far once the ranks are re-sorted per report. */
Test(table, scales_to_4096_nodes, .timeout = 60)
{
    char name[16];
    unsigned n = 4096;
    double t0, per_report;
    size_t reports = 0;

    mon_table_free(t);
    cfg.max_nodes = n;
    t = mon_table_new(&cfg);
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "node%04u", i);
        cr_assert_eq(hello(name, BOOT_A, 1, 10), 0);
    }
    cr_assert_eq(hello("one-too-many", BOOT_A, 1, 10), -ENOSPC);
    assert_ranks_consistent();

    t0 = now_s();
    for (uint64_t round = 1; round <= 5; round++) {
        mon_table_begin_round(t, round, round * 5000);
        for (unsigned i = 0; i < n; i++) {
            snprintf(name, sizeof(name), "node%04u", i);
            cr_assert_eq(respond(name, BOOT_A, round, (i * 7 + round) % 101, round * 5000 + 1), 0);
            reports++;
        }
        mon_table_end_round(t, round * 5000 + 4000);
    }
    per_report = (now_s() - t0) / (double)reports;
    cr_assert_lt(per_report, 100e-6, "%.1f us per report", per_report * 1e6);
    cr_assert_eq(mon_table_count(t), n);
    assert_ranks_consistent();
    cr_assert_eq(get("node0000").rank > 0, true);
}

/* RAM columns in binary units; rows built by hand, as any caller may. */
Test(table, human_units)
{
    static const struct {
        double bytes;
        const char *text;
    } cases[] = {
        {0, "0B"},
        {100, "100B"},
        {1023, "1023B"},
        {1023.7, "1.0K"},
        {1536, "1.5K"},
        {512 * MIB, "512M"},
        {99.9 * MIB, "99.9M"},
        {7.8 * GIB, "7.8G"},
        {15.6 * GIB, "15.6G"},
        {1023.9 * MIB, "1.0G"},
        {-5, "0B"},
        {NAN, "-"},
        {INFINITY, "1.0P"},
    };
    struct mon_node row;
    char buf[1024];
    char want[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&row, 0, sizeof(row));
        snprintf(row.name, sizeof(row.name), "n");
        row.m.ram_total = cases[i].bytes;
        row.m.ram_free = 0;
        cr_assert_gt(mon_table_format_text(&row, 1, 1, 0, 0, buf, sizeof(buf)), 0);
        snprintf(want, sizeof(want), " %s  ", cases[i].text);
        cr_assert_not_null(strstr(buf, want), "%g bytes: want \"%s\" in\n%s", cases[i].bytes,
                           cases[i].text, buf);
    }
}
