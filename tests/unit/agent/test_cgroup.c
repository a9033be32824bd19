/* test_cgroup.c - tests agent/cgroup.c against the fixture trees in
 * tests/fixtures/cgroup (v1 separate and combined hierarchies, v2, and
 * malformed files).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cgroup.h"

#define FIX FULCRUM_SOURCE_DIR "/tests/fixtures/cgroup"
#define MIB (UINT64_C(1) << 20)

/* Paths with all three controllers in one directory under FIX. */
static struct cg_paths paths_in(enum cg_version v, const char *rel)
{
    struct cg_paths p;
    int n;

    memset(&p, 0, sizeof(p));
    p.version = v;
    n = snprintf(p.cpu, sizeof(p.cpu), "%s/%s", FIX, rel);
    cr_assert(n > 0 && (size_t)n < sizeof(p.cpu));
    memcpy(p.cpuacct, p.cpu, sizeof(p.cpu));
    memcpy(p.memory, p.cpu, sizeof(p.cpu));
    return p;
}

static void assert_zeroed(const struct cg_paths *p)
{
    cr_assert_eq(p->version, CG_NONE);
    cr_assert_str_empty(p->cpu);
    cr_assert_str_empty(p->cpuacct);
    cr_assert_str_empty(p->memory);
}

/* cg_resolve */

Test(resolve, v1_separate_hierarchies_ignore_hybrid_v2_line)
{
    struct cg_paths p;

    cr_assert_eq(cg_resolve(FIX "/v1/proc-self-cgroup", FIX "/v1/fs", &p), 0);
    cr_assert_eq(p.version, CG_V1);
    cr_assert_str_eq(p.cpu, FIX "/v1/fs/cpu/app");
    cr_assert_str_eq(p.cpuacct, FIX "/v1/fs/cpuacct/app");
    cr_assert_str_eq(p.memory, FIX "/v1/fs/memory/app");
}

Test(resolve, v1_root_cgroup)
{
    struct cg_paths p;

    cr_assert_eq(cg_resolve(FIX "/v1/proc-self-cgroup-root", FIX "/v1/fs", &p), 0);
    cr_assert_eq(p.version, CG_V1);
    cr_assert_str_eq(p.cpu, FIX "/v1/fs/cpu");
    cr_assert_str_eq(p.cpuacct, FIX "/v1/fs/cpuacct");
    cr_assert_str_eq(p.memory, FIX "/v1/fs/memory");
}

Test(resolve, v1_missing_path_falls_back_to_hierarchy_root)
{
    struct cg_paths p;

    cr_assert_eq(cg_resolve(FIX "/v1/proc-self-cgroup-gone", FIX "/v1/fs", &p), 0);
    cr_assert_str_eq(p.cpu, FIX "/v1/fs/cpu");
    cr_assert_str_eq(p.cpuacct, FIX "/v1/fs/cpuacct");
    cr_assert_str_eq(p.memory, FIX "/v1/fs/memory");
}

Test(resolve, v1_memory_only)
{
    struct cg_paths p;
    struct cg_limits l;
    uint64_t ns;

    cr_assert_eq(cg_resolve(FIX "/v1/proc-self-cgroup-memonly", FIX "/v1/fs", &p), 0);
    cr_assert_eq(p.version, CG_V1);
    cr_assert_str_empty(p.cpu);
    cr_assert_str_empty(p.cpuacct);
    cr_assert_str_eq(p.memory, FIX "/v1/fs/memory/app");
    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_not(l.has_cpu_quota);
    cr_assert(l.has_mem_limit);
    cr_assert_eq(l.mem_limit, 512 * MIB);
    cr_assert_eq(cg_read_cpu_usage_ns(&p, &ns), -ENOENT);
}

Test(resolve, v1_combined_cpu_cpuacct)
{
    struct cg_paths p;

    cr_assert_eq(cg_resolve(FIX "/v1-combined/proc-self-cgroup", FIX "/v1-combined/fs", &p), 0);
    cr_assert_eq(p.version, CG_V1);
    cr_assert_str_eq(p.cpu, FIX "/v1-combined/fs/cpu,cpuacct/svc");
    cr_assert_str_eq(p.cpuacct, FIX "/v1-combined/fs/cpu,cpuacct/svc");
    cr_assert_str_eq(p.memory, FIX "/v1-combined/fs/memory/svc");
}

Test(resolve, v1_combined_found_through_symlinks)
{
    struct cg_paths p;

    /* "cpuacct,cpu" is not a directory: the "cpu" and "cpuacct" links are */
    cr_assert_eq(
        cg_resolve(FIX "/v1-combined/proc-self-cgroup-reordered", FIX "/v1-combined/fs", &p), 0);
    cr_assert_str_eq(p.cpu, FIX "/v1-combined/fs/cpu/svc");
    cr_assert_str_eq(p.cpuacct, FIX "/v1-combined/fs/cpuacct/svc");
    cr_assert_str_eq(p.memory, FIX "/v1-combined/fs/memory/svc");
}

Test(resolve, v2_nested)
{
    struct cg_paths p;

    cr_assert_eq(cg_resolve(FIX "/v2/proc-self-cgroup", FIX "/v2/fs", &p), 0);
    cr_assert_eq(p.version, CG_V2);
    cr_assert_str_eq(p.cpu, FIX "/v2/fs/app");
    cr_assert_str_eq(p.cpuacct, FIX "/v2/fs/app");
    cr_assert_str_eq(p.memory, FIX "/v2/fs/app");
}

Test(resolve, v2_root_and_missing_path_use_fs_root)
{
    struct cg_paths p;

    cr_assert_eq(cg_resolve(FIX "/v2/proc-self-cgroup-root", FIX "/v2/fs", &p), 0);
    cr_assert_eq(p.version, CG_V2);
    cr_assert_str_eq(p.cpu, FIX "/v2/fs");
    cr_assert_eq(cg_resolve(FIX "/v2/proc-self-cgroup-gone", FIX "/v2/fs", &p), 0);
    cr_assert_eq(p.version, CG_V2);
    cr_assert_str_eq(p.memory, FIX "/v2/fs");
}

Test(resolve, v2_path_outside_namespace_uses_fs_root)
{
    struct cg_paths p;

    /* "/../fs/app" would name an existing dir if joined blindly */
    cr_assert_eq(cg_resolve(FIX "/v2/proc-self-cgroup-dotdot", FIX "/v2/fs", &p), 0);
    cr_assert_eq(p.version, CG_V2);
    cr_assert_str_eq(p.cpu, FIX "/v2/fs");
}

Test(resolve, v2_line_without_unified_fs_is_not_found)
{
    struct cg_paths p;

    cr_assert_eq(cg_resolve(FIX "/v2/proc-self-cgroup", FIX "/v1/fs", &p), -ENOENT);
    assert_zeroed(&p);
}

Test(resolve, missing_or_empty_proc_file)
{
    struct cg_paths p;

    cr_assert_eq(cg_resolve(FIX "/no-such-file", FIX "/v1/fs", &p), -ENOENT);
    cr_assert_eq(cg_resolve("/dev/null", FIX "/v1/fs", &p), -ENOENT);
    assert_zeroed(&p);
}

Test(resolve, malformed_proc_files)
{
    static const char *const bad[] = {"bad-id",        "negative-id", "no-path",
                                      "relative-path", "garbage",     "good-then-bad"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[4096];
        struct cg_paths p;

        snprintf(path, sizeof(path), "%s/malformed/proc/%s", FIX, bad[i]);
        cr_assert_eq(cg_resolve(path, FIX "/v1/fs", &p), -EINVAL, "%s", bad[i]);
        assert_zeroed(&p);
    }
}

/* cg_from_dir */

Test(from_dir, v2_dir_with_trailing_slash)
{
    struct cg_paths p;

    cr_assert_eq(cg_from_dir(FIX "/v2/fs/app//", &p), 0);
    cr_assert_eq(p.version, CG_V2);
    cr_assert_str_eq(p.cpu, FIX "/v2/fs/app");
    cr_assert_str_eq(p.cpuacct, FIX "/v2/fs/app");
    cr_assert_str_eq(p.memory, FIX "/v2/fs/app");
}

Test(from_dir, v1_cpu_dir_finds_siblings)
{
    struct cg_paths p;

    cr_assert_eq(cg_from_dir(FIX "/v1/fs/cpu/app", &p), 0);
    cr_assert_eq(p.version, CG_V1);
    cr_assert_str_eq(p.cpu, FIX "/v1/fs/cpu/app");
    cr_assert_str_eq(p.cpuacct, FIX "/v1/fs/cpuacct/app");
    cr_assert_str_eq(p.memory, FIX "/v1/fs/memory/app");
}

Test(from_dir, v1_memory_dir_finds_siblings)
{
    struct cg_paths p;

    cr_assert_eq(cg_from_dir(FIX "/v1/fs/memory/app", &p), 0);
    cr_assert_str_eq(p.cpu, FIX "/v1/fs/cpu/app");
    cr_assert_str_eq(p.cpuacct, FIX "/v1/fs/cpuacct/app");
    cr_assert_str_eq(p.memory, FIX "/v1/fs/memory/app");
}

Test(from_dir, v1_hierarchy_root)
{
    struct cg_paths p;

    cr_assert_eq(cg_from_dir(FIX "/v1/fs/cpu", &p), 0);
    cr_assert_str_eq(p.cpu, FIX "/v1/fs/cpu");
    cr_assert_str_eq(p.cpuacct, FIX "/v1/fs/cpuacct");
    cr_assert_str_eq(p.memory, FIX "/v1/fs/memory");
}

Test(from_dir, v1_combined)
{
    struct cg_paths p;

    cr_assert_eq(cg_from_dir(FIX "/v1-combined/fs/cpu,cpuacct/svc", &p), 0);
    cr_assert_eq(p.version, CG_V1);
    cr_assert_str_eq(p.cpu, FIX "/v1-combined/fs/cpu,cpuacct/svc");
    cr_assert_str_eq(p.cpuacct, FIX "/v1-combined/fs/cpu,cpuacct/svc");
    cr_assert_str_eq(p.memory, FIX "/v1-combined/fs/memory/svc");
}

Test(from_dir, v1_combined_through_symlink)
{
    struct cg_paths p;

    cr_assert_eq(cg_from_dir(FIX "/v1-combined/fs/cpu/svc", &p), 0);
    cr_assert_str_eq(p.cpu, FIX "/v1-combined/fs/cpu/svc");
    cr_assert_str_eq(p.cpuacct, FIX "/v1-combined/fs/cpu/svc");
    cr_assert_str_eq(p.memory, FIX "/v1-combined/fs/memory/svc");
}

Test(from_dir, v1_missing_sibling_is_empty)
{
    struct cg_paths p;
    struct cg_limits l;

    cr_assert_eq(cg_from_dir(FIX "/malformed/v1/period-zero", &p), 0);
    cr_assert_eq(p.version, CG_V1);
    cr_assert_str_eq(p.cpu, FIX "/malformed/v1/period-zero");
    cr_assert_str_empty(p.cpuacct);
    cr_assert_str_empty(p.memory);
    cr_assert_eq(cg_read_limits(&p, &l), -EINVAL);
}

Test(from_dir, not_a_cgroup)
{
    struct cg_paths p;

    cr_assert_eq(cg_from_dir(FIX, &p), -ENOENT);
    assert_zeroed(&p);
    cr_assert_eq(cg_from_dir(FIX "/no/such/dir", &p), -ENOENT);
    cr_assert_eq(cg_from_dir(FIX "/v2/proc-self-cgroup", &p), -ENOENT);
    cr_assert_eq(cg_from_dir("", &p), -EINVAL);
}

/* cg_read_limits */

Test(limits, v1_quota_and_memory_limit)
{
    struct cg_paths p;
    struct cg_limits l;

    cr_assert_eq(cg_from_dir(FIX "/v1/fs/cpu/app", &p), 0);
    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert(l.has_cpu_quota);
    cr_assert_float_eq(l.cpu_cores, 0.2, 1e-12);
    cr_assert(l.has_mem_limit);
    cr_assert_eq(l.mem_limit, 512 * MIB);
}

Test(limits, v1_root_has_none)
{
    struct cg_paths p;
    struct cg_limits l;

    cr_assert_eq(cg_from_dir(FIX "/v1/fs/cpu", &p), 0);
    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_not(l.has_cpu_quota);
    cr_assert_not(l.has_mem_limit);
}

Test(limits, v1_combined_quota_without_memory_limit)
{
    struct cg_paths p;
    struct cg_limits l;

    cr_assert_eq(cg_from_dir(FIX "/v1-combined/fs/cpu/svc", &p), 0);
    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert(l.has_cpu_quota);
    cr_assert_float_eq(l.cpu_cores, 1.5, 1e-12);
    cr_assert_not(l.has_mem_limit); /* 9223372036854771712 */
}

Test(limits, v2_quota_and_memory_max)
{
    struct cg_paths p = paths_in(CG_V2, "v2/fs/app");
    struct cg_limits l;

    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert(l.has_cpu_quota);
    cr_assert_float_eq(l.cpu_cores, 0.5, 1e-12);
    cr_assert(l.has_mem_limit);
    cr_assert_eq(l.mem_limit, 1024 * MIB);
}

Test(limits, v2_max_is_no_limit)
{
    struct cg_paths p = paths_in(CG_V2, "v2/fs/nolimit");
    struct cg_limits l;

    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_not(l.has_cpu_quota);
    cr_assert_not(l.has_mem_limit);
}

Test(limits, v2_missing_files_are_no_limit)
{
    struct cg_paths p = paths_in(CG_V2, "v2/fs");
    struct cg_limits l;

    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_not(l.has_cpu_quota);
    cr_assert_not(l.has_mem_limit);
}

Test(limits, no_cgroup_is_no_limit)
{
    struct cg_paths p;
    struct cg_limits l;

    memset(&p, 0, sizeof(p));
    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_not(l.has_cpu_quota);
    cr_assert_not(l.has_mem_limit);
}

Test(limits, v2_malformed)
{
    static const char *const bad[] = {
        "cpumax-junk", "cpumax-zero-period", "cpumax-one-field", "cpumax-negative",
        "cpumax-huge", "memmax-junk",        "memmax-negative",  "memmax-nul",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char rel[256];
        struct cg_paths p;
        struct cg_limits l;

        snprintf(rel, sizeof(rel), "malformed/v2/%s", bad[i]);
        p = paths_in(CG_V2, rel);
        cr_assert_eq(cg_read_limits(&p, &l), -EINVAL, "%s", bad[i]);
        cr_assert_not(l.has_cpu_quota || l.has_mem_limit, "%s", bad[i]);
    }
}

Test(limits, v1_malformed)
{
    static const char *const bad[] = {
        "quota-junk",     "quota-float", "quota-minus-two", "period-zero",
        "limit-overflow", "limit-hex",   "limit-empty",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char rel[256];
        struct cg_paths p;
        struct cg_limits l;

        snprintf(rel, sizeof(rel), "malformed/v1/%s", bad[i]);
        p = paths_in(CG_V1, rel);
        cr_assert_eq(cg_read_limits(&p, &l), -EINVAL, "%s", bad[i]);
    }
}

Test(limits, v1_quota_without_period_file)
{
    struct cg_paths p = paths_in(CG_V1, "malformed/v1/period-missing");
    struct cg_limits l;

    cr_assert_eq(cg_read_limits(&p, &l), -ENOENT);
}

/* cg_read_cpu_usage_ns and cg_read_mem_usage */

Test(usage, v1_cpu_and_memory)
{
    struct cg_paths p;
    uint64_t v;

    cr_assert_eq(cg_from_dir(FIX "/v1/fs/cpu/app", &p), 0);
    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), 0);
    cr_assert_eq(v, UINT64_C(1500000000));
    cr_assert_eq(cg_read_mem_usage(&p, &v), 0);
    /* total_inactive_file, not inactive_file, is subtracted */
    cr_assert_eq(v, UINT64_C(268435456) - UINT64_C(67108864));
}

Test(usage, v1_combined)
{
    struct cg_paths p;
    uint64_t v;

    cr_assert_eq(cg_from_dir(FIX "/v1-combined/fs/cpu,cpuacct/svc", &p), 0);
    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), 0);
    cr_assert_eq(v, UINT64_C(42000000000));
    cr_assert_eq(cg_read_mem_usage(&p, &v), 0);
    cr_assert_eq(v, UINT64_C(100000000));
}

Test(usage, v2_cpu_and_memory)
{
    struct cg_paths p = paths_in(CG_V2, "v2/fs/app");
    uint64_t v;

    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), 0);
    cr_assert_eq(v, UINT64_C(2500000000));
    cr_assert_eq(cg_read_mem_usage(&p, &v), 0);
    cr_assert_eq(v, UINT64_C(536870912) - UINT64_C(134217728));
}

Test(usage, v2_inactive_above_current_clamps_to_zero)
{
    struct cg_paths p = paths_in(CG_V2, "v2/fs/nolimit");
    uint64_t v = 1;

    cr_assert_eq(cg_read_mem_usage(&p, &v), 0);
    cr_assert_eq(v, 0);
}

Test(usage, v2_root_has_cpu_but_no_memory_current)
{
    struct cg_paths p = paths_in(CG_V2, "v2/fs");
    uint64_t v;

    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), 0);
    cr_assert_eq(v, UINT64_C(9000000000000));
    cr_assert_eq(cg_read_mem_usage(&p, &v), -ENOENT);
}

Test(usage, no_cgroup)
{
    struct cg_paths p;
    uint64_t v;

    memset(&p, 0, sizeof(p));
    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), -ENOENT);
    cr_assert_eq(cg_read_mem_usage(&p, &v), -ENOENT);
}

Test(usage, malformed)
{
    struct cg_paths p;
    uint64_t v;

    p = paths_in(CG_V2, "malformed/v2/cpustat-nokey");
    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), -EINVAL);
    p = paths_in(CG_V2, "malformed/v2/cpustat-badval");
    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), -EINVAL);
    p = paths_in(CG_V2, "malformed/v2/cpustat-overflow");
    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), -ERANGE);
    p = paths_in(CG_V2, "malformed/v2/memcur-empty");
    cr_assert_eq(cg_read_mem_usage(&p, &v), -EINVAL);
    p = paths_in(CG_V2, "malformed/v2/memstat-nokey");
    cr_assert_eq(cg_read_mem_usage(&p, &v), -EINVAL);
    p = paths_in(CG_V1, "malformed/v1/usage-nostat-key");
    cr_assert_eq(cg_read_mem_usage(&p, &v), -EINVAL);
    p = paths_in(CG_V1, "malformed/v1/cpuacct-negative");
    cr_assert_eq(cg_read_cpu_usage_ns(&p, &v), -EINVAL);
}

/* cg_cpu_milli: the capacity the agent puts on the wire */

Test(capacity, quota_from_v1_and_v2_fixtures)
{
    struct cg_paths p;
    struct cg_limits l;

    cr_assert_eq(cg_from_dir(FIX "/v1/fs/cpu/app", &p), 0);
    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_eq(cg_cpu_milli(&l, 8), 200); /* 0.2 cores of 8 */
    cr_assert_eq(cg_cpu_milli(&l, 0), 200); /* online count unknown: the quota */
    cr_assert_eq(cg_from_dir(FIX "/v1-combined/fs/cpu/svc", &p), 0);
    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_eq(cg_cpu_milli(&l, 4), 1500);
    cr_assert_eq(cg_cpu_milli(&l, 1), 1000, "a quota above the online CPUs is capped");
    p = paths_in(CG_V2, "v2/fs/app");
    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_eq(cg_cpu_milli(&l, 2), 500);
}

Test(capacity, no_quota_is_the_online_cpus)
{
    struct cg_paths p = paths_in(CG_V2, "v2/fs/nolimit");
    struct cg_limits l;

    cr_assert_eq(cg_read_limits(&p, &l), 0);
    cr_assert_eq(cg_cpu_milli(&l, 2), 2000);
    cr_assert_eq(cg_cpu_milli(NULL, 64), 64000);
    cr_assert_eq(cg_cpu_milli(&l, 0), 0, "nothing known: unknown, not a guess");
    cr_assert_eq(cg_cpu_milli(NULL, -1), 0);
}

/* A malformed quota file leaves "no limit" behind (cg_read_limits says
 * -EINVAL), so the capacity falls back to the online CPUs, never to junk. */
Test(capacity, malformed_quota_gives_no_quota_figure)
{
    static const char *const bad[] = {"cpumax-junk", "cpumax-zero-period", "cpumax-negative",
                                      "cpumax-huge"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char rel[256];
        struct cg_paths p;
        struct cg_limits l;

        snprintf(rel, sizeof(rel), "malformed/v2/%s", bad[i]);
        p = paths_in(CG_V2, rel);
        cr_assert_eq(cg_read_limits(&p, &l), -EINVAL, "%s", bad[i]);
        cr_assert_eq(cg_cpu_milli(&l, 4), 4000, "%s", bad[i]);
    }
}

Test(capacity, rounding_and_bounds)
{
    struct cg_limits l = {.has_cpu_quota = true, .cpu_cores = 0.0004};

    cr_assert_eq(cg_cpu_milli(&l, 4), 1, "a tiny quota is at least 1 milli-CPU");
    l.cpu_cores = 0.0125;
    cr_assert_eq(cg_cpu_milli(&l, 4), 13);
    l.cpu_cores = 1e9;
    cr_assert_eq(cg_cpu_milli(&l, 0), CG_CPU_MILLI_MAX);
    cr_assert_eq(cg_cpu_milli(NULL, 1L << 30), CG_CPU_MILLI_MAX);
    /* Values cg_read_limits never makes are ignored, not trusted. */
    l.cpu_cores = -1.0;
    cr_assert_eq(cg_cpu_milli(&l, 3), 3000);
    l.cpu_cores = 0.0;
    cr_assert_eq(cg_cpu_milli(&l, 3), 3000);
    l.cpu_cores = NAN;
    cr_assert_eq(cg_cpu_milli(&l, 3), 3000);
    l.cpu_cores = INFINITY;
    cr_assert_eq(cg_cpu_milli(&l, 3), 3000);
    l.cpu_cores = 0.5;
    l.has_cpu_quota = false;
    cr_assert_eq(cg_cpu_milli(&l, 3), 3000, "cpu_cores without has_cpu_quota is not a quota");
}
