/* weight.h - turn an agent's report into a balancing weight.
 *
 * DESIGN.md "weights, not a winner": headroom (CPU idle and free RAM share)
 * with a mild RTT penalty gives a target; the weight moves toward it by
 * exponential smoothing, at most max_step per round, and is clamped to
 * [floor, cap]. Metrics alone never make a weight zero; only health does,
 * and that is the status table's business, not this module's.
 * The formula and the reasons for its constants are in docs/monitor.md.
 */
#ifndef FULCRUM_MONITOR_WEIGHT_H
#define FULCRUM_MONITOR_WEIGHT_H

#include "proto-t.h"

#define MON_WEIGHT_FLOOR 8
#define MON_WEIGHT_CAP   256

struct mon_weight_cfg {
    double cpu_share;  /* share of headroom from CPU idle, rest from RAM: 0.7 */
    double rtt_ref_ms; /* RTT that costs a third of the weight: 200 ms */
    double alpha;      /* smoothing: new = old + alpha * (target - old): 0.5 */
    double floor;      /* lowest weight from metrics: MON_WEIGHT_FLOOR */
    double cap;        /* highest weight: MON_WEIGHT_CAP */
    double max_step;   /* largest move per round: 32 */
};

/* Fills the defaults above. */
void mon_weight_cfg_default(struct mon_weight_cfg *cfg);

/* The weight the metrics call for, in [floor, cap]. rtt_ms < 0 means
 * unknown (no penalty). Inputs out of range are clamped, never trusted. */
double mon_weight_target(const struct mon_weight_cfg *cfg, const struct proto_metrics *m,
                         double rtt_ms);

/* One round's move from prev toward target: smoothed, at most max_step, in
 * [floor, cap]. prev <= 0 means "new node": start at target. */
double mon_weight_step(const struct mon_weight_cfg *cfg, double prev, double target);

#endif
