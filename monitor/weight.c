/* weight.c - turn an agent's report into a balancing weight.
 *
 * Design notes (the long form is docs/monitor.md):
 *
 *   headroom  h = s * idle + (1 - s) * ram        in [0, 1]
 *             idle = cpu_idle / 100, ram = ram_free / ram_total
 *   size      z = cpus / max_cpus                 in (0, 1]
 *             cpus from the agent (cpu_milli / 1000), the cluster's median
 *             capacity for an agent that sends none; max_cpus the largest
 *   penalty   p = 1 / (1 + rtt / (2 * rtt_ref))   in (0, 1], p(rtt_ref) = 2/3
 *   target    cap * z * h * p, clamped to [floor, cap]
 *   step      prev + alpha * (target - prev), moved at most max_step,
 *             clamped to [floor, cap]
 *
 * z * h is the node's free capacity (what it can still absorb) as a share
 * of the biggest node, and the target is proportional to it, with no
 * offset: the balancer draws in proportion to weight, so an idle node with
 * a fifth of the CPUs must weigh a fifth, not a fifth plus a constant.
 *
 * Every input is clamped to its range before use and a NaN counts as the
 * worst value it could have stood for (no idle CPU, no free RAM, an endless
 * RTT), so no NaN or infinity can leave this file. The weight is never
 * below floor: only health (the status table) takes a node out.
 */
#include "weight.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define RAM_UNKNOWN_SHARE 0.5 /* ram_total <= 0: neither good nor bad */

void mon_weight_cfg_default(struct mon_weight_cfg *cfg)
{
    cfg->cpu_share = 0.7;
    cfg->rtt_ref_ms = 200.0;
    cfg->alpha = 0.5;
    cfg->floor = MON_WEIGHT_FLOOR;
    cfg->cap = MON_WEIGHT_CAP;
    cfg->max_step = 32.0;
}

int mon_weight_cfg_check(const struct mon_weight_cfg *cfg, char *err, size_t errlen)
{
    if (!(cfg->floor <= cfg->cap)) {
        snprintf(err, errlen, "--weight-floor %g is above --weight-cap %g", cfg->floor, cfg->cap);
        return -EINVAL;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

void mon_weight_ref_set(struct mon_weight_ref *ref, double *cpus, size_t n)
{
    ref->max_cpus = 0.0;
    ref->median_cpus = 0.0;
    if (n == 0)
        return;
    qsort(cpus, n, sizeof(*cpus), cmp_double);
    ref->max_cpus = cpus[n - 1];
    ref->median_cpus = n % 2 ? cpus[n / 2] : (cpus[n / 2 - 1] + cpus[n / 2]) / 2.0;
}

double mon_weight_cpus(const struct proto_metrics *m)
{
    if (m->cpu_milli == 0 || m->cpu_milli > PROTO_MAX_CPU_MILLI)
        return 0.0;
    return m->cpu_milli / 1000.0;
}

/* x clamped to [lo, hi]; NaN becomes `worst`. */
static double clamp_or(double x, double lo, double hi, double worst)
{
    if (isnan(x))
        return worst;
    if (x < lo)
        return lo;
    if (x > hi)
        return hi;
    return x;
}

/* The bounds of the weight, made sane even for a broken config: a floor
 * that is not a positive number becomes MON_WEIGHT_FLOOR, a cap below the
 * floor becomes the floor. */
static void bounds(const struct mon_weight_cfg *cfg, double *lo, double *hi)
{
    double floor_w = cfg->floor;
    double cap_w = cfg->cap;

    if (!isfinite(floor_w) || floor_w <= 0.0)
        floor_w = MON_WEIGHT_FLOOR;
    if (!isfinite(cap_w) || cap_w < floor_w)
        cap_w = floor_w;
    *lo = floor_w;
    *hi = cap_w;
}

/* Share of the host that is free, in [0, 1]. */
static double headroom(const struct mon_weight_cfg *cfg, const struct proto_metrics *m)
{
    double share = clamp_or(cfg->cpu_share, 0.0, 1.0, 0.5);
    double idle = clamp_or(m->cpu_idle, 0.0, 100.0, 0.0) / 100.0;
    double ram;

    if (isnan(m->ram_total)) {
        ram = 0.0;
    } else if (m->ram_total <= 0.0) {
        ram = RAM_UNKNOWN_SHARE;
    } else {
        double total = m->ram_total > PROTO_MAX_BYTES ? PROTO_MAX_BYTES : m->ram_total;
        double avail = clamp_or(m->ram_free, 0.0, total, 0.0);

        ram = avail / total;
    }
    return share * idle + (1.0 - share) * ram;
}

/* The node's size as a share of the biggest, in (0, 1]; 1 when no capacity
 * is known anywhere, so the formula is headroom alone. */
static double size_share(const struct mon_weight_ref *ref, const struct proto_metrics *m)
{
    double cpus = mon_weight_cpus(m);

    if (!ref || !isfinite(ref->max_cpus) || ref->max_cpus <= 0.0)
        return 1.0;
    if (cpus <= 0.0)
        cpus = ref->median_cpus;
    if (!isfinite(cpus) || cpus <= 0.0)
        return 1.0;
    return cpus >= ref->max_cpus ? 1.0 : cpus / ref->max_cpus;
}

/* RTT penalty in [0, 1]: 1 at 0 ms, 2/3 at rtt_ref_ms, 1/2 at twice that.
 * rtt_ms < 0 is "not measured": no penalty. NaN is the worst case. */
static double rtt_penalty(const struct mon_weight_cfg *cfg, double rtt_ms)
{
    double ref = cfg->rtt_ref_ms;

    if (isnan(rtt_ms))
        return 0.0;
    if (rtt_ms < 0.0 || !isfinite(ref) || ref <= 0.0)
        return 1.0;
    if (isinf(rtt_ms))
        return 0.0;
    return 1.0 / (1.0 + rtt_ms / (2.0 * ref));
}

double mon_weight_target(const struct mon_weight_cfg *cfg, const struct mon_weight_ref *ref,
                         const struct proto_metrics *m, double rtt_ms)
{
    double lo, hi;
    double w;

    bounds(cfg, &lo, &hi);
    w = hi * size_share(ref, m) * headroom(cfg, m) * rtt_penalty(cfg, rtt_ms);
    return clamp_or(w, lo, hi, lo);
}

double mon_weight_rescale(const struct mon_weight_cfg *cfg, double w, double old_max,
                          double new_max)
{
    double lo, hi;

    if (!(w > 0.0) || !isfinite(old_max) || !isfinite(new_max) || old_max <= 0.0 || new_max <= 0.0)
        return w;
    bounds(cfg, &lo, &hi);
    return clamp_or(w * old_max / new_max, lo, hi, lo);
}

double mon_weight_step(const struct mon_weight_cfg *cfg, double prev, double target)
{
    double lo, hi;
    double alpha = clamp_or(cfg->alpha, 0.0, 1.0, 1.0);
    double limit = cfg->max_step;
    double delta;

    bounds(cfg, &lo, &hi);
    target = clamp_or(target, lo, hi, lo);
    if (isnan(prev) || prev <= 0.0)
        return target;
    delta = alpha * (target - prev);
    /* max_step that is not a positive number means "no limit". */
    if (!isnan(limit) && limit > 0.0)
        delta = clamp_or(delta, -limit, limit, 0.0);
    return clamp_or(prev + delta, lo, hi, lo);
}
