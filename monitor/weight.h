/* weight.h - turn an agent's report into a balancing weight.
 *
 * DESIGN.md "weights, not a winner": a node's free capacity (the CPUs it
 * may use times its headroom, CPU idle and free RAM share) relative to the
 * largest node of the cluster, with a mild RTT penalty, gives a target; the
 * weight moves toward it by exponential smoothing, at most max_step per
 * round, and is clamped to [floor, cap]. Metrics alone never make a weight
 * zero; only health does, and that is the status table's business, not
 * this module's. The formula and the reasons for its constants are in
 * docs/monitor.md.
 */
#ifndef FULCRUM_MONITOR_WEIGHT_H
#define FULCRUM_MONITOR_WEIGHT_H

#include <stddef.h>

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

/* The cluster's capacities, which a node's own is measured against. */
struct mon_weight_ref {
    double max_cpus;    /* the largest capacity reported; 0: none reported */
    double median_cpus; /* stands in for a node that reports none */
};

/* Config-table entries for a daemon that embeds a struct mon_weight_cfg as
 * member f of its config struct T (fulcrum-monitor, fulcrum-balancer).
 * The defaults are mon_weight_cfg_default()'s; test_weight checks that. */
#define MON_WEIGHT_OPTS(T, f)                                                                  \
    {"weight-cpu-share",                                                                       \
     CFG_DOUBLE,                                                                               \
     offsetof(T, f.cpu_share),                                                                 \
     0,                                                                                        \
     1,                                                                                        \
     "0.7",                                                                                    \
     NULL,                                                                                     \
     "FRAC",                                                                                   \
     "share of a node's headroom from CPU idle; the rest from free RAM"},                      \
        {"weight-rtt-ms",                                                                      \
         CFG_DOUBLE,                                                                           \
         offsetof(T, f.rtt_ref_ms),                                                            \
         0,                                                                                    \
         60000,                                                                                \
         "200",                                                                                \
         NULL,                                                                                 \
         "MS",                                                                                 \
         "probe RTT that costs a node a third of its weight (0: RTT ignored)"},                \
        {"weight-alpha",                                                                       \
         CFG_DOUBLE,                                                                           \
         offsetof(T, f.alpha),                                                                 \
         0.01,                                                                                 \
         1,                                                                                    \
         "0.5",                                                                                \
         NULL,                                                                                 \
         "FRAC",                                                                               \
         "a weight moves this share of the way to its target each round"},                     \
        {"weight-step-max",                                                                    \
         CFG_DOUBLE,                                                                           \
         offsetof(T, f.max_step),                                                              \
         0,                                                                                    \
         65536,                                                                                \
         "32",                                                                                 \
         NULL,                                                                                 \
         "N",                                                                                  \
         "a weight moves at most this much per round (0: no limit)"},                          \
        {"weight-floor",                                                                       \
         CFG_DOUBLE,                                                                           \
         offsetof(T, f.floor),                                                                 \
         1,                                                                                    \
         65536,                                                                                \
         "8",                                                                                  \
         NULL,                                                                                 \
         "N",                                                                                  \
         "lowest weight metrics can give a node in rotation"},                                 \
    {                                                                                          \
        "weight-cap", CFG_DOUBLE, offsetof(T, f.cap), 1, 65536, "256", NULL, "N",              \
            "weight of an idle node as big as the cluster's biggest (at least --weight-floor)" \
    }

/* Fills the defaults above. */
void mon_weight_cfg_default(struct mon_weight_cfg *cfg);

/* 0, or -EINVAL with a message in err for a config the options table would
 * not catch: a floor above the cap. */
int mon_weight_cfg_check(const struct mon_weight_cfg *cfg, char *err, size_t errlen);

/* Sets ref from the capacities (CPUs, > 0) of the nodes that report one:
 * their largest and their median (the mean of the middle two for an even
 * count). Sorts cpus in place. n == 0 gives an empty ref (no capacity
 * known: every node counts as the same size). */
void mon_weight_ref_set(struct mon_weight_ref *ref, double *cpus, size_t n);

/* The capacity m reports, in CPUs, or 0 when it reports none. */
double mon_weight_cpus(const struct proto_metrics *m);

/* The weight the metrics call for, in [floor, cap]:
 *   cap * (cpus / ref->max_cpus) * headroom * rtt_penalty
 * where a node without a capacity counts as ref->median_cpus, and a NULL or
 * empty ref makes every node the same size. rtt_ms < 0 means unknown (no
 * penalty). Inputs out of range are clamped, never trusted. */
double mon_weight_target(const struct mon_weight_cfg *cfg, const struct mon_weight_ref *ref,
                         const struct proto_metrics *m, double rtt_ms);

/* One round's move from prev toward target: smoothed, at most max_step, in
 * [floor, cap]. prev <= 0 means "new node": start at target. */
double mon_weight_step(const struct mon_weight_cfg *cfg, double prev, double target);

/* A weight measured against ref max_cpus old_max, expressed against
 * new_max (both > 0; otherwise w unchanged), in [floor, cap]: when the
 * biggest node changes, the unit changes, and that is not a change of
 * load the step limit should slow down. */
double mon_weight_rescale(const struct mon_weight_cfg *cfg, double w, double old_max,
                          double new_max);

#endif
