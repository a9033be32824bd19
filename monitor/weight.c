/* weight.c - turn an agent's report into a balancing weight.
 *
 * Design notes (the long form is docs/monitor.md):
 *
 *   headroom  h = s * idle + (1 - s) * ram        in [0, 1]
 *             idle = cpu_idle / 100, ram = ram_free / ram_total
 *   penalty   p = 1 / (1 + rtt / (2 * rtt_ref))   in (0, 1], p(rtt_ref) = 2/3
 *   target    floor + (cap - floor) * h * p, clamped to [floor, cap]
 *   step      prev + alpha * (target - prev), moved at most max_step,
 *             clamped to [floor, cap]
 *
 * Every input is clamped to its range before use and a NaN counts as the
 * worst value it could have stood for (no idle CPU, no free RAM, an endless
 * RTT), so no NaN or infinity can leave this file. The weight is never
 * below floor: only health (the status table) takes a node out.
 */
#include "weight.h"

#include <math.h>

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

double mon_weight_target(const struct mon_weight_cfg *cfg, const struct proto_metrics *m,
                         double rtt_ms)
{
    double lo, hi;
    double w;

    bounds(cfg, &lo, &hi);
    w = lo + (hi - lo) * headroom(cfg, m) * rtt_penalty(cfg, rtt_ms);
    return clamp_or(w, lo, hi, lo);
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
