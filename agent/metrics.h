/* metrics.h - what an agent measures about its host: RAM, CPU idle, load,
 * read from libstatgrab, or against the limits of the agent's cgroup (v1 or
 * v2) when it has a CPU quota or a memory limit.
 *
 * Thread: one agent_metrics is used from one thread only (libstatgrab keeps
 * its CPU baseline per thread).
 */
#ifndef FULCRUM_AGENT_METRICS_H
#define FULCRUM_AGENT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cgroup.h"

enum agent_cgroup_mode {
    AGENT_CGROUP_AUTO = 0, /* find the agent's own cgroup in /proc/self/cgroup */
    AGENT_CGROUP_OFF,      /* host figures only */
    AGENT_CGROUP_PATH,     /* the cgroup directory given */
};

struct agent_sample {
    double ram_free;  /* bytes */
    double ram_total; /* bytes */
    double cpu_idle;  /* percent 0..100 */
    double load1;
    bool cgroup;        /* cpu_idle or ram are against cgroup limits */
    uint32_t cpu_milli; /* CPUs usable, x1000: the cgroup quota, else the online
                         * CPUs (cg_cpu_milli); 0 if neither is known */
};

/* Opaque: libstatgrab state and the cgroup limits found at start. */
struct agent_metrics;

/* Calls sg_init(), primes the CPU baseline, resolves the cgroup. With
 * AGENT_CGROUP_PATH, cg_path names a cgroup v2 directory or a v1 cpu/memory
 * controller pair given as "/sys/fs/cgroup/cpu/X" style paths (see cgroup.h).
 * AUTO falls back to host figures when no usable cgroup is found (the
 * description says why); PATH fails instead. Returns NULL and fills err on
 * failure. Free with agent_metrics_free(). libstatgrab is initialised by the
 * first live object and shut down with the last: create and free all of them
 * from one thread. */
struct agent_metrics *agent_metrics_new(enum agent_cgroup_mode mode, const char *cg_path, char *err,
                                        size_t errlen);
void agent_metrics_free(struct agent_metrics *am);

/* Fills *out with figures since the previous call (CPU idle is a difference
 * over that interval; the first call after _new reports since the priming).
 * now_ms is CLOCK_MONOTONIC in milliseconds (clock_mono_ms()); it times the
 * cgroup CPU interval, so tests can pass their own. Never returns NaN: an
 * interval too short to measure, a clock that goes back or a counter that
 * resets repeats the last value (100 before the first cgroup interval).
 * Returns 0, or -errno with *out unchanged (a cgroup file gone or malformed). */
int agent_metrics_sample(struct agent_metrics *am, uint64_t now_ms, struct agent_sample *out);

/* A line that says where the figures come from, for the startup log. */
const char *agent_metrics_describe(const struct agent_metrics *am);

#endif
