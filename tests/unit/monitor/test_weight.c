/* test_weight.c - properties of monitor/weight.c: monotone in each input,
 * clamped to [floor, cap] whatever comes in, bounded steps, convergence. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "weight.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

static struct mon_weight_cfg cfg;

static void setup(void)
{
    mon_weight_cfg_default(&cfg);
}

TestSuite(weight, .init = setup);

static struct proto_metrics metrics(double cpu_idle, double ram_free, double ram_total)
{
    struct proto_metrics m;

    memset(&m, 0, sizeof(m));
    memcpy(m.ip, "10.0.0.1", sizeof("10.0.0.1"));
    m.port = 8080;
    m.cpu_idle = cpu_idle;
    m.ram_free = ram_free;
    m.ram_total = ram_total;
    m.service_up = true;
    return m;
}

static void assert_in_bounds(double w)
{
    cr_assert(!isnan(w), "NaN escaped");
    cr_assert(w >= MON_WEIGHT_FLOOR && w <= MON_WEIGHT_CAP, "weight %f out of [%d, %d]", w,
              MON_WEIGHT_FLOOR, MON_WEIGHT_CAP);
}

Test(weight, defaults)
{
    cr_assert_float_eq(cfg.cpu_share, 0.7, 1e-12);
    cr_assert_float_eq(cfg.rtt_ref_ms, 200.0, 1e-12);
    cr_assert_float_eq(cfg.alpha, 0.5, 1e-12);
    cr_assert_float_eq(cfg.floor, MON_WEIGHT_FLOOR, 1e-12);
    cr_assert_float_eq(cfg.cap, MON_WEIGHT_CAP, 1e-12);
    cr_assert_float_eq(cfg.max_step, 32.0, 1e-12);
}

Test(weight, concrete_values)
{
    struct proto_metrics idle = metrics(100, 8 * GIB, 8 * GIB);
    struct proto_metrics busy = metrics(0, 0, 8 * GIB);
    struct proto_metrics half = metrics(50, 4 * GIB, 8 * GIB);
    struct proto_metrics noram = metrics(100, 0, 0);

    cr_assert_float_eq(mon_weight_target(&cfg, &idle, -1), 256.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &idle, 0), 256.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &busy, -1), 8.0, 1e-9);
    /* h = 0.5: 8 + 248 * 0.5 */
    cr_assert_float_eq(mon_weight_target(&cfg, &half, -1), 132.0, 1e-9);
    /* rtt_ref costs a third of the headroom part: 8 + 248 * 2/3 */
    cr_assert_float_eq(mon_weight_target(&cfg, &idle, 200), 8.0 + 248.0 * 2.0 / 3.0, 1e-9);
    /* twice rtt_ref costs half */
    cr_assert_float_eq(mon_weight_target(&cfg, &idle, 400), 132.0, 1e-9);
    /* ram_total unknown: the RAM part counts as half: h = 0.7 + 0.3 * 0.5 */
    cr_assert_float_eq(mon_weight_target(&cfg, &noram, -1), 8.0 + 248.0 * 0.85, 1e-9);
}

Test(weight, rtt_penalty_is_mild)
{
    struct proto_metrics m = metrics(100, 8 * GIB, 8 * GIB);

    /* A LAN RTT costs almost nothing. */
    cr_assert_gt(mon_weight_target(&cfg, &m, 1.0), 255.0);
    cr_assert_gt(mon_weight_target(&cfg, &m, 10.0), 249.0);
}

Test(weight, monotone_in_cpu_idle)
{
    for (int r = 0; r <= 8; r++) {
        double prev = -1;

        for (int i = 0; i <= 1000; i++) {
            struct proto_metrics m = metrics(i / 10.0, r * GIB, 8 * GIB);
            double w = mon_weight_target(&cfg, &m, 5.0);

            assert_in_bounds(w);
            cr_assert_geq(w, prev, "cpu_idle %.1f: %f < %f", i / 10.0, w, prev);
            prev = w;
        }
    }
}

Test(weight, monotone_in_ram_free)
{
    for (int c = 0; c <= 100; c += 10) {
        double prev = -1;

        for (int i = 0; i <= 1024; i++) {
            struct proto_metrics m = metrics(c, i * (8 * GIB / 1024), 8 * GIB);
            double w = mon_weight_target(&cfg, &m, 5.0);

            assert_in_bounds(w);
            cr_assert_geq(w, prev, "ram_free step %d: %f < %f", i, w, prev);
            prev = w;
        }
    }
    /* strictly better with more RAM when everything else is equal */
    struct proto_metrics lo = metrics(50, 1 * GIB, 8 * GIB);
    struct proto_metrics hi = metrics(50, 7 * GIB, 8 * GIB);

    cr_assert_gt(mon_weight_target(&cfg, &hi, 5), mon_weight_target(&cfg, &lo, 5));
}

Test(weight, monotone_in_rtt)
{
    struct proto_metrics m = metrics(80, 6 * GIB, 8 * GIB);
    double prev = INFINITY;

    for (int i = 0; i <= 20000; i++) {
        double w = mon_weight_target(&cfg, &m, i * 0.5);

        assert_in_bounds(w);
        cr_assert_leq(w, prev, "rtt %.1f: %f > %f", i * 0.5, w, prev);
        prev = w;
    }
    cr_assert_lt(prev, mon_weight_target(&cfg, &m, 0));
}

Test(weight, garbage_inputs_are_clamped)
{
    static const double junk[] = {NAN, -NAN,  INFINITY, -INFINITY, -1.0,
                                  0.0, 1e308, -1e308,   150.0,     5e-324};
    size_t n = sizeof(junk) / sizeof(junk[0]);

    for (size_t a = 0; a < n; a++) {
        for (size_t b = 0; b < n; b++) {
            for (size_t c = 0; c < n; c++) {
                struct proto_metrics m = metrics(junk[a], junk[b], junk[c]);

                m.load1 = junk[a];
                for (size_t d = 0; d < n; d++)
                    assert_in_bounds(mon_weight_target(&cfg, &m, junk[d]));
            }
        }
    }
}

Test(weight, nan_is_worst_case)
{
    struct proto_metrics good = metrics(100, 8 * GIB, 8 * GIB);
    struct proto_metrics nan_cpu = metrics(NAN, 8 * GIB, 8 * GIB);
    struct proto_metrics nan_ram = metrics(100, NAN, 8 * GIB);
    struct proto_metrics nan_total = metrics(100, 8 * GIB, NAN);
    struct proto_metrics all_nan = metrics(NAN, NAN, NAN);

    /* NaN CPU idle counts as 0 %: only the RAM part (0.3) remains. */
    cr_assert_float_eq(mon_weight_target(&cfg, &nan_cpu, -1), 8.0 + 248.0 * 0.3, 1e-9);
    /* NaN RAM counts as none free. */
    cr_assert_float_eq(mon_weight_target(&cfg, &nan_ram, -1), 8.0 + 248.0 * 0.7, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &nan_total, -1), 8.0 + 248.0 * 0.7, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &all_nan, -1), 8.0, 1e-9);
    /* NaN RTT counts as endless. */
    cr_assert_float_eq(mon_weight_target(&cfg, &good, NAN), 8.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &good, INFINITY), 8.0, 1e-9);
    /* step: NaN target is the floor, NaN prev is "new node" */
    cr_assert_float_eq(mon_weight_step(&cfg, NAN, 100.0), 100.0, 1e-9);
    cr_assert_float_eq(mon_weight_step(&cfg, 100.0, NAN), 68.0, 1e-9);
    assert_in_bounds(mon_weight_step(&cfg, INFINITY, INFINITY));
    assert_in_bounds(mon_weight_step(&cfg, -INFINITY, -INFINITY));
}

Test(weight, out_of_range_inputs_are_clamped)
{
    struct proto_metrics over = metrics(250, 16 * GIB, 8 * GIB);
    struct proto_metrics under = metrics(-50, -1 * GIB, 8 * GIB);

    cr_assert_float_eq(mon_weight_target(&cfg, &over, -1), 256.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &under, -1), 8.0, 1e-9);
}

Test(weight, never_below_floor_from_metrics)
{
    struct proto_metrics worst = metrics(0, 0, 8 * GIB);
    double w = 0;

    for (int i = 0; i < 100; i++) {
        w = mon_weight_step(&cfg, w, mon_weight_target(&cfg, &worst, 1e6));
        cr_assert_geq(w, MON_WEIGHT_FLOOR);
    }
    cr_assert_float_eq(w, MON_WEIGHT_FLOOR, 1e-9);
}

Test(weight, new_node_starts_at_target)
{
    cr_assert_float_eq(mon_weight_step(&cfg, 0.0, 200.0), 200.0, 1e-12);
    cr_assert_float_eq(mon_weight_step(&cfg, -5.0, 20.0), 20.0, 1e-12);
    /* a target outside the bounds is clamped even for a new node */
    cr_assert_float_eq(mon_weight_step(&cfg, 0.0, 1000.0), 256.0, 1e-12);
    cr_assert_float_eq(mon_weight_step(&cfg, 0.0, 1.0), 8.0, 1e-12);
}

Test(weight, smoothing)
{
    /* alpha 0.5, inside max_step: halfway */
    cr_assert_float_eq(mon_weight_step(&cfg, 100.0, 140.0), 120.0, 1e-12);
    cr_assert_float_eq(mon_weight_step(&cfg, 100.0, 60.0), 80.0, 1e-12);
    /* far away: limited to max_step */
    cr_assert_float_eq(mon_weight_step(&cfg, 10.0, 256.0), 42.0, 1e-12);
    cr_assert_float_eq(mon_weight_step(&cfg, 256.0, 8.0), 224.0, 1e-12);
}

Test(weight, bounded_step)
{
    for (int p = MON_WEIGHT_FLOOR; p <= MON_WEIGHT_CAP; p += 3) {
        for (int q = 0; q <= 300; q += 7) {
            double next = mon_weight_step(&cfg, p, q);

            assert_in_bounds(next);
            cr_assert_leq(fabs(next - p), cfg.max_step + 1e-9, "step %d -> %f (target %d)", p, next,
                          q);
            /* moves toward the target, never past it */
            double t = fmin(fmax(q, MON_WEIGHT_FLOOR), MON_WEIGHT_CAP);

            if (t >= p)
                cr_assert(next >= p && next <= t + 1e-9, "%d -> %f past %f", p, next, t);
            else
                cr_assert(next <= p && next >= t - 1e-9, "%d -> %f past %f", p, next, t);
        }
    }
}

Test(weight, converges_to_target)
{
    struct proto_metrics busy = metrics(5, 1 * GIB, 8 * GIB);
    struct proto_metrics idle = metrics(95, 7 * GIB, 8 * GIB);
    double t_busy = mon_weight_target(&cfg, &busy, 2.0);
    double t_idle = mon_weight_target(&cfg, &idle, 2.0);
    double w = t_busy;
    int rounds = 0;

    cr_assert_gt(t_idle - t_busy, 150.0);
    while (fabs(w - t_idle) > 0.5 && rounds < 100) {
        w = mon_weight_step(&cfg, w, t_idle);
        rounds++;
    }
    /* at most 32 per round: (t_idle - t_busy) / 32 rounds at least */
    cr_assert_geq(rounds, (int)((t_idle - t_busy) / 32.0));
    cr_assert_lt(rounds, 15, "took %d rounds", rounds);
    for (int i = 0; i < 60; i++)
        w = mon_weight_step(&cfg, w, t_idle);
    cr_assert_float_eq(w, t_idle, 1e-6);
}

Test(weight, custom_bounds)
{
    struct mon_weight_cfg c = cfg;
    struct proto_metrics idle = metrics(100, 8 * GIB, 8 * GIB);
    struct proto_metrics busy = metrics(0, 0, 8 * GIB);

    c.floor = 1;
    c.cap = 100;
    c.max_step = 5;
    c.alpha = 1.0;
    cr_assert_float_eq(mon_weight_target(&c, &idle, -1), 100.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&c, &busy, -1), 1.0, 1e-9);
    cr_assert_float_eq(mon_weight_step(&c, 50, 100), 55.0, 1e-9);
    /* cpu_share 1: RAM does not matter */
    c.cpu_share = 1.0;
    struct proto_metrics no_ram = metrics(50, 0, 8 * GIB);
    struct proto_metrics all_ram = metrics(50, 8 * GIB, 8 * GIB);

    cr_assert_float_eq(mon_weight_target(&c, &no_ram, -1), mon_weight_target(&c, &all_ram, -1),
                       1e-9);
    cr_assert_float_eq(mon_weight_target(&c, &no_ram, -1), 50.5, 1e-9);
}
