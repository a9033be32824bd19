/* metrics.c - the agent's figures: RAM, CPU idle and load from libstatgrab,
 * or against the agent's cgroup CPU quota and memory limit when it has them.
 *
 * Design notes:
 * - libstatgrab is process-global: sg_init() must run once and sg_shutdown()
 *   once at the end. A static count of live agent_metrics objects guards
 *   that; create and free them from one thread (the agent's main thread).
 * - Host CPU idle is libstatgrab's new-diff percentage, whose baseline is per
 *   thread: _new primes it, so sample from the thread that called _new. A
 *   NaN (interval shorter than a tick) repeats the last value, which starts
 *   at the since-boot average returned by the priming call.
 * - With a CPU quota, idle is 100 * (1 - used / (elapsed * cores)) from the
 *   cgroup's CPU-time counter between samples. Elapsed time comes only from
 *   the caller's now_ms (CLOCK_MONOTONIC ms), so tests control it; _new
 *   takes the first baseline from CLOCK_MONOTONIC. A clock that goes back or
 *   a counter that resets starts a new interval and repeats the last value.
 * - Capacity (cpu_milli) is what the CPU idle share is a share of: the
 *   quota when there is one, else the CPUs online now (sysconf, read at
 *   every sample so hotplug shows). The monitor multiplies the two, so a
 *   node with a fifth of the CPU weighs a fifth when both are idle.
 */
#include "metrics.h"

#include "clock.h"
#include "xalloc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <statgrab.h>

#include "proto-t.h"

_Static_assert(CG_CPU_MILLI_MAX <= PROTO_MAX_CPU_MILLI, "a capacity the decoder would refuse");

#define MIB (1024.0 * 1024.0)

struct agent_metrics {
    struct cg_paths paths;   /* the cgroup found; version CG_NONE if none */
    struct cg_limits limits; /* what the cgroup limits; both false for host figures */
    double cg_cores;         /* quota in cores, at most the online CPUs */
    uint64_t cg_last_ms;     /* time of the CPU baseline (now_ms clock) */
    uint64_t cg_last_ns;     /* cgroup CPU time at the baseline */
    double last_idle;        /* repeated when an interval cannot be measured */
    char desc[4096 + 256];   /* a cg_paths dir and the figures */
};

/* Live agent_metrics objects; libstatgrab is initialised while > 0. */
static unsigned sg_users;

static double clamp_pct(double v)
{
    return v < 0.0 ? 0.0 : v > 100.0 ? 100.0 : v;
}

/* libstatgrab's errno when it has one, else -EIO. */
static int sg_errno(void)
{
    int e = sg_get_error_errno();

    return e > 0 ? -e : -EIO;
}

static int sg_acquire(char *err, size_t errlen)
{
    sg_error e;

    if (sg_users > 0) {
        sg_users++;
        return 0;
    }
    e = sg_init(1);
    if (e != SG_ERROR_NONE) {
        snprintf(err, errlen, "libstatgrab init: %s", sg_str_error(e));
        return -EIO;
    }
    sg_users = 1;
    return 0;
}

static void sg_release(void)
{
    if (sg_users > 0 && --sg_users == 0)
        sg_shutdown();
}

/* First new-diff call: starts the per-thread baseline and gives the
 * since-boot average as the value to repeat until a real interval. */
static void prime_host_cpu(struct agent_metrics *am)
{
    sg_cpu_percents *cp = sg_get_cpu_percents_of(sg_new_diff_cpu_percent, NULL);

    am->last_idle = 100.0;
    if (cp != NULL && !isnan(cp->idle))
        am->last_idle = clamp_pct(cp->idle);
}

/* Reads the limits of the cgroup in am->paths, takes the CPU baseline and
 * checks that the usage files the limits need can be read. */
static int load_cgroup(struct agent_metrics *am, char *err, size_t errlen)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t used;
    int rc = cg_read_limits(&am->paths, &am->limits);

    if (rc < 0) {
        snprintf(err, errlen, "cgroup limits under %s: %s", am->paths.cpu, strerror(-rc));
        return rc;
    }
    if (am->limits.has_mem_limit) {
        rc = cg_read_mem_usage(&am->paths, &used);
        if (rc < 0) {
            snprintf(err, errlen, "cgroup memory usage under %s: %s", am->paths.memory,
                     strerror(-rc));
            return rc;
        }
    }
    if (!am->limits.has_cpu_quota)
        return 0;
    am->cg_cores = am->limits.cpu_cores;
    if (ncpu > 0 && am->cg_cores > (double)ncpu)
        am->cg_cores = (double)ncpu;
    am->cg_last_ms = clock_mono_ms();
    am->last_idle = 100.0;
    rc = cg_read_cpu_usage_ns(&am->paths, &am->cg_last_ns);
    if (rc < 0)
        snprintf(err, errlen, "cgroup CPU usage under %s: %s", am->paths.cpuacct, strerror(-rc));
    return rc;
}

/* Finds the cgroup for mode. AUTO falls back to host figures on any error
 * (noted in the description); PATH fails. */
static int setup_cgroup(struct agent_metrics *am, enum agent_cgroup_mode mode, const char *cg_path,
                        char *err, size_t errlen)
{
    char why[256] = "";
    int rc;

    if (mode == AGENT_CGROUP_OFF)
        return 0;
    if (mode == AGENT_CGROUP_PATH) {
        rc = cg_path != NULL ? cg_from_dir(cg_path, &am->paths) : -EINVAL;
        if (rc < 0) {
            snprintf(err, errlen, "cgroup %s: %s", cg_path != NULL ? cg_path : "(none)",
                     strerror(-rc));
            return rc;
        }
        return load_cgroup(am, err, errlen);
    }
    rc = cg_resolve("/proc/self/cgroup", "/sys/fs/cgroup", &am->paths);
    if (rc == 0)
        rc = load_cgroup(am, why, sizeof(why));
    if (rc < 0) {
        memset(&am->paths, 0, sizeof(am->paths));
        memset(&am->limits, 0, sizeof(am->limits));
        if (rc != -ENOENT)
            snprintf(am->desc, sizeof(am->desc), "host (libstatgrab); cgroup ignored: %s",
                     why[0] != '\0' ? why : strerror(-rc));
    }
    return 0;
}

static void describe(struct agent_metrics *am)
{
    const struct cg_limits *l = &am->limits;
    char cpu[48] = "cpu=host", mem[48] = "mem=host";
    int v = am->paths.version == CG_V2 ? 2 : 1;

    if (am->desc[0] != '\0')
        return;
    if (am->paths.version == CG_NONE) {
        snprintf(am->desc, sizeof(am->desc), "host (libstatgrab)");
        return;
    }
    if (!l->has_cpu_quota && !l->has_mem_limit) {
        snprintf(am->desc, sizeof(am->desc), "host (libstatgrab); cgroup v%d at %s has no limits",
                 v, am->paths.cpu[0] != '\0' ? am->paths.cpu : am->paths.memory);
        return;
    }
    if (l->has_cpu_quota)
        snprintf(cpu, sizeof(cpu), "cpu=%.2f cores", am->cg_cores);
    if (l->has_mem_limit)
        snprintf(mem, sizeof(mem), "mem=%.0fMiB limit", (double)l->mem_limit / MIB);
    snprintf(am->desc, sizeof(am->desc), "cgroup v%d %s %s at %s", v, cpu, mem,
             l->has_cpu_quota ? am->paths.cpu : am->paths.memory);
}

struct agent_metrics *agent_metrics_new(enum agent_cgroup_mode mode, const char *cg_path, char *err,
                                        size_t errlen)
{
    struct agent_metrics *am;

    if (sg_acquire(err, errlen) < 0)
        return NULL;
    am = xcalloc(1, sizeof(*am));
    prime_host_cpu(am);
    if (setup_cgroup(am, mode, cg_path, err, errlen) < 0)
        goto out_free;
    describe(am);
    return am;
out_free:
    agent_metrics_free(am);
    return NULL;
}

void agent_metrics_free(struct agent_metrics *am)
{
    if (am == NULL)
        return;
    free(am);
    sg_release();
}

/* CPU idle against the quota over [cg_last_ms, now_ms]. */
static int cgroup_cpu_idle(struct agent_metrics *am, uint64_t now_ms, double *idle)
{
    uint64_t ns;
    double busy;
    int rc = cg_read_cpu_usage_ns(&am->paths, &ns);

    if (rc < 0)
        return rc;
    *idle = am->last_idle;
    if (now_ms < am->cg_last_ms || ns < am->cg_last_ns) {
        am->cg_last_ms = now_ms;
        am->cg_last_ns = ns;
        return 0;
    }
    if (now_ms == am->cg_last_ms)
        return 0;
    busy = (double)(ns - am->cg_last_ns) / ((double)(now_ms - am->cg_last_ms) * 1e6 * am->cg_cores);
    *idle = clamp_pct(100.0 * (1.0 - busy));
    am->cg_last_ms = now_ms;
    am->cg_last_ns = ns;
    am->last_idle = *idle;
    return 0;
}

static int host_cpu_idle(struct agent_metrics *am, double *idle)
{
    sg_cpu_percents *cp = sg_get_cpu_percents_of(sg_new_diff_cpu_percent, NULL);

    if (cp == NULL)
        return sg_errno();
    if (!isnan(cp->idle))
        am->last_idle = clamp_pct(cp->idle);
    *idle = am->last_idle;
    return 0;
}

/* Host RAM, then capped by the cgroup memory limit when there is one. */
static int ram(struct agent_metrics *am, struct agent_sample *s)
{
    sg_mem_stats *m = sg_get_mem_stats(NULL);
    uint64_t used;
    int rc;

    if (m == NULL)
        return sg_errno();
    s->ram_total = (double)m->total;
    s->ram_free = (double)m->free;
    if (!am->limits.has_mem_limit)
        return 0;
    rc = cg_read_mem_usage(&am->paths, &used);
    if (rc < 0)
        return rc;
    if ((double)am->limits.mem_limit < s->ram_total)
        s->ram_total = (double)am->limits.mem_limit;
    s->ram_free = (double)used < s->ram_total ? s->ram_total - (double)used : 0.0;
    return 0;
}

int agent_metrics_sample(struct agent_metrics *am, uint64_t now_ms, struct agent_sample *out)
{
    struct agent_sample s = {0};
    sg_load_stats *load;
    int rc;

    if (am->limits.has_cpu_quota)
        rc = cgroup_cpu_idle(am, now_ms, &s.cpu_idle);
    else
        rc = host_cpu_idle(am, &s.cpu_idle);
    if (rc < 0)
        return rc;
    rc = ram(am, &s);
    if (rc < 0)
        return rc;
    load = sg_get_load_stats(NULL);
    if (load == NULL)
        return sg_errno();
    s.load1 = isnan(load->min1) || load->min1 < 0.0 ? 0.0 : load->min1;
    s.cgroup = am->limits.has_cpu_quota || am->limits.has_mem_limit;
    s.cpu_milli = cg_cpu_milli(&am->limits, sysconf(_SC_NPROCESSORS_ONLN));
    *out = s;
    return 0;
}

const char *agent_metrics_describe(const struct agent_metrics *am)
{
    return am->desc;
}
