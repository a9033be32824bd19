/* test_weight.c - properties of monitor/weight.c: monotone in each input,
 * clamped to [floor, cap] whatever comes in, bounded steps, convergence;
 * proportional to capacity, the fallback for an unknown capacity, and the
 * --weight-* options that set the constants. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "cfg.h"
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

    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &idle, -1), 256.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &idle, 0), 256.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &busy, -1), 8.0, 1e-9);
    /* h = 0.5: 256 * 0.5, proportional, no offset */
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &half, -1), 128.0, 1e-9);
    /* rtt_ref costs a third: 256 * 2/3 */
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &idle, 200), 256.0 * 2.0 / 3.0, 1e-9);
    /* twice rtt_ref costs half */
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &idle, 400), 128.0, 1e-9);
    /* ram_total unknown: the RAM part counts as half: h = 0.7 + 0.3 * 0.5 */
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &noram, -1), 256.0 * 0.85, 1e-9);
}

Test(weight, rtt_penalty_is_mild)
{
    struct proto_metrics m = metrics(100, 8 * GIB, 8 * GIB);

    /* A LAN RTT costs almost nothing. */
    cr_assert_gt(mon_weight_target(&cfg, NULL, &m, 1.0), 255.0);
    cr_assert_gt(mon_weight_target(&cfg, NULL, &m, 10.0), 249.0);
}

Test(weight, monotone_in_cpu_idle)
{
    for (int r = 0; r <= 8; r++) {
        double prev = -1;

        for (int i = 0; i <= 1000; i++) {
            struct proto_metrics m = metrics(i / 10.0, r * GIB, 8 * GIB);
            double w = mon_weight_target(&cfg, NULL, &m, 5.0);

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
            double w = mon_weight_target(&cfg, NULL, &m, 5.0);

            assert_in_bounds(w);
            cr_assert_geq(w, prev, "ram_free step %d: %f < %f", i, w, prev);
            prev = w;
        }
    }
    /* strictly better with more RAM when everything else is equal */
    struct proto_metrics lo = metrics(50, 1 * GIB, 8 * GIB);
    struct proto_metrics hi = metrics(50, 7 * GIB, 8 * GIB);

    cr_assert_gt(mon_weight_target(&cfg, NULL, &hi, 5), mon_weight_target(&cfg, NULL, &lo, 5));
}

Test(weight, monotone_in_rtt)
{
    struct proto_metrics m = metrics(80, 6 * GIB, 8 * GIB);
    double prev = INFINITY;

    for (int i = 0; i <= 20000; i++) {
        double w = mon_weight_target(&cfg, NULL, &m, i * 0.5);

        assert_in_bounds(w);
        cr_assert_leq(w, prev, "rtt %.1f: %f > %f", i * 0.5, w, prev);
        prev = w;
    }
    cr_assert_lt(prev, mon_weight_target(&cfg, NULL, &m, 0));
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
                    assert_in_bounds(mon_weight_target(&cfg, NULL, &m, junk[d]));
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
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &nan_cpu, -1), 256.0 * 0.3, 1e-9);
    /* NaN RAM counts as none free. */
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &nan_ram, -1), 256.0 * 0.7, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &nan_total, -1), 256.0 * 0.7, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &all_nan, -1), 8.0, 1e-9);
    /* NaN RTT counts as endless. */
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &good, NAN), 8.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &good, INFINITY), 8.0, 1e-9);
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

    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &over, -1), 256.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, NULL, &under, -1), 8.0, 1e-9);
}

Test(weight, never_below_floor_from_metrics)
{
    struct proto_metrics worst = metrics(0, 0, 8 * GIB);
    double w = 0;

    for (int i = 0; i < 100; i++) {
        w = mon_weight_step(&cfg, w, mon_weight_target(&cfg, NULL, &worst, 1e6));
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
    double t_busy = mon_weight_target(&cfg, NULL, &busy, 2.0);
    double t_idle = mon_weight_target(&cfg, NULL, &idle, 2.0);
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
    cr_assert_float_eq(mon_weight_target(&c, NULL, &idle, -1), 100.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&c, NULL, &busy, -1), 1.0, 1e-9);
    cr_assert_float_eq(mon_weight_step(&c, 50, 100), 55.0, 1e-9);
    /* cpu_share 1: RAM does not matter */
    c.cpu_share = 1.0;
    struct proto_metrics no_ram = metrics(50, 0, 8 * GIB);
    struct proto_metrics all_ram = metrics(50, 8 * GIB, 8 * GIB);

    cr_assert_float_eq(mon_weight_target(&c, NULL, &no_ram, -1),
                       mon_weight_target(&c, NULL, &all_ram, -1), 1e-9);
    cr_assert_float_eq(mon_weight_target(&c, NULL, &no_ram, -1), 50.0, 1e-9);
}

/* ---- capacity ---- */

static struct proto_metrics sized(double cpu_idle, uint32_t cpu_milli)
{
    struct proto_metrics m = metrics(cpu_idle, 7.76 * GIB, 8 * GIB); /* 97 % free */

    m.cpu_milli = cpu_milli;
    return m;
}

/* The skewed cluster of bench/skew.sh: A and B 0.1 core, C 0.02. */
static struct mon_weight_ref skew_ref(void)
{
    double cpus[] = {0.1, 0.02, 0.1};
    struct mon_weight_ref ref;

    mon_weight_ref_set(&ref, cpus, 3);
    return ref;
}

Test(weight, five_times_the_capacity_five_times_the_weight)
{
    struct mon_weight_ref ref = skew_ref();
    static const double idle[] = {100, 80, 50, 20, 3};

    cr_assert_float_eq(ref.max_cpus, 0.1, 1e-12);
    cr_assert_float_eq(ref.median_cpus, 0.1, 1e-12);
    for (size_t i = 0; i < sizeof(idle) / sizeof(idle[0]); i++) {
        struct proto_metrics a = sized(idle[i], 100), c = sized(idle[i], 20);
        double wa = mon_weight_target(&cfg, &ref, &a, 0.5);
        double wc = mon_weight_target(&cfg, &ref, &c, 0.5);

        fprintf(stderr, "idle %.0f %%: A %.2f C %.2f ratio %.3f\n", idle[i], wa, wc, wa / wc);
        cr_assert_float_eq(wa / wc, 5.0, 1e-9, "idle %.0f: A %f C %f", idle[i], wa, wc);
    }
    /* Idle, the big one is at the cap and the small one a fifth of it. */
    struct proto_metrics a = metrics(100, 8 * GIB, 8 * GIB), c = a;

    a.cpu_milli = 100;
    c.cpu_milli = 20;
    cr_assert_float_eq(mon_weight_target(&cfg, &ref, &a, -1), 256.0, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &ref, &c, -1), 51.2, 1e-9);
}

/* Free capacity, not headroom: a big node at 80 % busy still outweighs an
 * idle node a tenth its size. */
Test(weight, free_capacity_not_headroom)
{
    double cpus[] = {8, 0.8};
    struct mon_weight_ref ref;
    struct proto_metrics big = metrics(20, 0, 8 * GIB), small = metrics(100, 0, 8 * GIB);

    mon_weight_ref_set(&ref, cpus, 2);
    big.cpu_milli = 8000;
    small.cpu_milli = 800;
    cr_assert_gt(mon_weight_target(&cfg, &ref, &big, -1),
                 mon_weight_target(&cfg, &ref, &small, -1));
    cr_assert_float_eq(mon_weight_target(&cfg, &ref, &big, -1), 256.0 * 0.7 * 0.2, 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &ref, &small, -1), 256.0 * 0.1 * 0.7, 1e-9);
}

/* An agent that sends no capacity counts as the cluster's median; with no
 * capacity known anywhere every node counts as the same size. */
Test(weight, unknown_capacity_is_the_median)
{
    double cpus[] = {4, 1, 2};
    double even[] = {1, 8, 2, 4};
    struct mon_weight_ref ref, none;
    struct proto_metrics old = sized(60, 0), two = sized(60, 2000), four = sized(60, 4000);

    mon_weight_ref_set(&ref, cpus, 3);
    cr_assert_float_eq(ref.max_cpus, 4.0, 1e-12);
    cr_assert_float_eq(ref.median_cpus, 2.0, 1e-12);
    cr_assert_float_eq(mon_weight_target(&cfg, &ref, &old, -1),
                       mon_weight_target(&cfg, &ref, &two, -1), 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &ref, &old, -1) * 2.0,
                       mon_weight_target(&cfg, &ref, &four, -1), 1e-9);
    mon_weight_ref_set(&ref, even, 4);
    cr_assert_float_eq(ref.median_cpus, 3.0, 1e-12);
    cr_assert_float_eq(ref.max_cpus, 8.0, 1e-12);
    mon_weight_ref_set(&none, NULL, 0);
    cr_assert_float_eq(none.max_cpus, 0.0, 1e-12);
    cr_assert_float_eq(mon_weight_target(&cfg, &none, &old, -1),
                       mon_weight_target(&cfg, NULL, &old, -1), 1e-9);
    cr_assert_float_eq(mon_weight_target(&cfg, &none, &four, -1),
                       mon_weight_target(&cfg, NULL, &old, -1), 1e-9);
}

Test(weight, capacity_inputs_are_clamped)
{
    struct mon_weight_ref ref = skew_ref();
    struct mon_weight_ref bad[] = {{NAN, NAN}, {-1, -1}, {INFINITY, 1}, {0.1, NAN}, {0.1, -3}};
    struct proto_metrics over = sized(100, 4000000000u), c = sized(100, 20);

    /* More than the reference (a report newer than the ref): the cap. */
    cr_assert_leq(mon_weight_target(&cfg, &ref, &over, -1), 256.0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proto_metrics unknown = sized(50, 0);

        assert_in_bounds(mon_weight_target(&cfg, &bad[i], &c, -1));
        assert_in_bounds(mon_weight_target(&cfg, &bad[i], &unknown, -1));
        assert_in_bounds(mon_weight_target(&cfg, &bad[i], &over, -1));
    }
    cr_assert_float_eq(mon_weight_cpus(&over), 0.0, 1e-12, "beyond the wire's range: unknown");
    cr_assert_float_eq(mon_weight_cpus(&c), 0.02, 1e-12);
}

/* When the biggest node changes, weights are re-expressed in the new unit. */
Test(weight, rescale_to_a_new_reference)
{
    cr_assert_float_eq(mon_weight_rescale(&cfg, 256.0, 0.02, 0.1), 51.2, 1e-9);
    cr_assert_float_eq(mon_weight_rescale(&cfg, 40.0, 0.1, 0.02), 200.0, 1e-9);
    cr_assert_float_eq(mon_weight_rescale(&cfg, 200.0, 0.1, 0.02), 256.0, 1e-9, "capped");
    cr_assert_float_eq(mon_weight_rescale(&cfg, 10.0, 1.0, 100.0), 8.0, 1e-9, "floored");
    cr_assert_float_eq(mon_weight_rescale(&cfg, 0.0, 1.0, 2.0), 0.0, 1e-9, "new node: untouched");
    cr_assert_float_eq(mon_weight_rescale(&cfg, 100.0, 0.0, 2.0), 100.0, 1e-9);
    cr_assert_float_eq(mon_weight_rescale(&cfg, 100.0, 1.0, NAN), 100.0, 1e-9);
}

/* ---- the options ---- */

struct wopts {
    struct mon_weight_cfg w;
};

static const struct cfg_opt wopts_table[] = {
    MON_WEIGHT_OPTS(struct wopts, w),
    {NULL},
};

static const struct cfg_prog wprog = {
    .name = "test-weight",
    .summary = "",
    .version = "0",
    .opts = wopts_table,
};

static int load(struct wopts *o, int argc, char **argv)
{
    char err[256] = "";
    int r;

    memset(o, 0, sizeof(*o));
    r = cfg_load(&wprog, o, argc, argv, err, sizeof(err));
    if (r)
        fprintf(stderr, "cfg_load: %s\n", err);
    cfg_done(&wprog, o);
    return r;
}

Test(weight, option_defaults_are_the_cfg_defaults)
{
    struct wopts o;
    char *argv[] = {"t", NULL};

    cr_assert_eq(load(&o, 1, argv), 0);
    cr_assert_eq(memcmp(&o.w, &cfg, sizeof(cfg)), 0, "the table and mon_weight_cfg_default differ");
}

Test(weight, step_limit_is_a_flag)
{
    struct wopts o;
    struct proto_metrics idle = metrics(100, 8 * GIB, 8 * GIB);
    char *argv[] = {"t", "--weight-step-max", "100", "--weight-alpha=1", NULL};
    char *nolimit[] = {"t", "--weight-step-max=0", "--weight-alpha", "1", NULL};

    cr_assert_eq(load(&o, 4, argv), 0);
    cr_assert_float_eq(o.w.max_step, 100.0, 1e-12);
    cr_assert_float_eq(o.w.alpha, 1.0, 1e-12);
    /* floor to cap in one round would be 248; the flag allows 100 */
    cr_assert_float_eq(mon_weight_step(&o.w, 8.0, mon_weight_target(&o.w, NULL, &idle, -1)), 108.0,
                       1e-9);
    cr_assert_float_eq(mon_weight_step(&cfg, 8.0, 256.0), 40.0, 1e-9, "default: 32 at most");
    cr_assert_eq(load(&o, 4, nolimit), 0);
    cr_assert_float_eq(mon_weight_step(&o.w, 8.0, 256.0), 256.0, 1e-9, "0: no limit");
}

Test(weight, other_flags_set_the_formula)
{
    struct wopts o;
    struct proto_metrics m = metrics(50, 0, 8 * GIB);
    char *argv[] = {"t",
                    "--weight-cpu-share=1",
                    "--weight-rtt-ms=0",
                    "--weight-cap",
                    "1000",
                    "--weight-floor=2",
                    NULL};
    char *bad[] = {"t", "--weight-cpu-share=1.5", NULL};
    char err[128];

    cr_assert_eq(load(&o, 6, argv), 0);
    /* h = idle only, RTT ignored, cap 1000 */
    cr_assert_float_eq(mon_weight_target(&o.w, NULL, &m, 5000.0), 500.0, 1e-9);
    cr_assert_float_eq(o.w.floor, 2.0, 1e-12);
    cr_assert_eq(mon_weight_cfg_check(&o.w, err, sizeof(err)), 0);
    o.w.floor = 2000;
    cr_assert_eq(mon_weight_cfg_check(&o.w, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "--weight-floor") != NULL);
    cr_assert_eq(load(&o, 2, bad), -EINVAL);
}
