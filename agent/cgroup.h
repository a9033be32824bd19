/* cgroup.h - read a cgroup's CPU quota, CPU usage and memory limit/usage,
 * for cgroup v1 (cpu, cpuacct, memory controllers) and v2 (unified).
 *
 * Pure file parsing under a root directory, so tests point it at fixture
 * trees instead of /sys/fs/cgroup and /proc/self/cgroup. Malformed file
 * content is -EINVAL. An empty directory string in struct cg_paths means the
 * controller was not found: no limit from it, and its usage is -ENOENT.
 * Functions keep no state; any thread may call them.
 */
#ifndef FULCRUM_AGENT_CGROUP_H
#define FULCRUM_AGENT_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cg_version { CG_NONE = 0, CG_V1, CG_V2 };

struct cg_paths {
    enum cg_version version;
    char cpu[4096];     /* v1: dir with cpu.cfs_quota_us; v2: the unified dir */
    char cpuacct[4096]; /* v1: dir with cpuacct.usage; v2: same as cpu */
    char memory[4096];  /* v1: dir with memory.limit_in_bytes; v2: same as cpu */
};

struct cg_limits {
    bool has_cpu_quota;
    double cpu_cores; /* quota / period, e.g. 0.2; valid if has_cpu_quota */
    bool has_mem_limit;
    uint64_t mem_limit; /* bytes; valid if has_mem_limit */
};

/* Resolves the agent's own cgroup: parses proc_cgroup (normally
 * "/proc/self/cgroup") and maps its lines to directories under fs_root
 * (normally "/sys/fs/cgroup"). v2 when a "0::/path" line exists and
 * fs_root/cgroup.controllers exists; else v1 from the "cpu,cpuacct" and
 * "memory" lines. A v1 hierarchy is fs_root/"cpu,cpuacct" as listed, else
 * fs_root/"cpu"; a cgroup path missing under it (cgroup namespaces) falls back
 * to the hierarchy's root. Returns 0, -ENOENT when no cgroup is found or the
 * file is missing, -EINVAL when a line is malformed, or -errno; *out is
 * zeroed on error. */
int cg_resolve(const char *proc_cgroup, const char *fs_root, struct cg_paths *out);

/* Uses a directory given by the operator: v2 if dir/cgroup.controllers or
 * dir/cpu.max exists, else v1 with cpu and cpuacct and memory all taken from
 * the same-named sibling hierarchies: "/sys/fs/cgroup/cpu/X" gives
 * ".../cpuacct/X" (or the same dir when cpuacct.usage is there) and
 * ".../memory/X". The dir may be any of the three controllers' dirs; a
 * sibling that does not exist is left empty. Returns 0, -ENOENT when dir is
 * not a cgroup directory, or -errno; *out is zeroed on error. */
int cg_from_dir(const char *dir, struct cg_paths *out);

/* Reads the limits. "max" / -1 / a memory limit >= 2^62 mean "no limit".
 * Returns 0 or -errno (a missing limit file is no limit, not an error; a v1
 * quota without its cpu.cfs_period_us is -ENOENT; malformed is -EINVAL).
 * *out says "no limit" on error. */
int cg_read_limits(const struct cg_paths *p, struct cg_limits *out);

/* Largest capacity cg_cpu_milli reports: 16384 CPUs. */
#define CG_CPU_MILLI_MAX (UINT32_C(1) << 24)

/* The CPUs a process under these limits may use, in thousandths of a CPU:
 * the quota (quota / period) when there is one, at most the online CPUs;
 * else the online CPUs. Rounded to the nearest milli-CPU, at least 1 and at
 * most CG_CPU_MILLI_MAX. online_cpus <= 0 means "not known": then only a
 * quota gives a figure. Returns 0 when nothing is known (no quota and no
 * online count), and ignores a quota that is not a positive finite number
 * as cg_read_limits never produces one. l may be NULL (no cgroup). */
uint32_t cg_cpu_milli(const struct cg_limits *l, long online_cpus);

/* CPU time used by the cgroup so far, in nanoseconds (v1 cpuacct.usage; v2
 * cpu.stat usage_usec * 1000). Returns 0 or -errno. */
int cg_read_cpu_usage_ns(const struct cg_paths *p, uint64_t *out);

/* Memory in use by the cgroup in bytes, not counting reclaimable page cache
 * (v1 memory.usage_in_bytes minus total_inactive_file from memory.stat; v2
 * memory.current minus inactive_file). Returns 0 or -errno. */
int cg_read_mem_usage(const struct cg_paths *p, uint64_t *out);

#endif
