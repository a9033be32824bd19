/* test_metrics.c - tests agent/metrics.c: host figures from libstatgrab, and
 * CPU idle and RAM against cgroup limits, using a v2 fixture copied to a
 * temporary directory so the test can move the usage counters.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

#define FIX FULCRUM_SOURCE_DIR "/tests/fixtures/cgroup"
#define MIB (1024.0 * 1024.0)

static char tmp[64];

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    f = fopen(path, "w");
    cr_assert_not_null(f, "open %s", path);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
}

static void copy_file(const char *src_dir, const char *name)
{
    char path[4096], buf[4096];
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", src_dir, name);
    f = fopen(path, "r");
    cr_assert_not_null(f, "open %s", path);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    write_file(name, buf);
}

/* A writable copy of the v2 "app" cgroup: cpu.max 0.5 cores,
 * memory.max 1 GiB, usage_usec 2500000. */
static void make_tmp_cgroup(void)
{
    static const char *const files[] = {"cgroup.controllers", "cpu.max",        "cpu.stat",
                                        "memory.max",         "memory.current", "memory.stat"};
    size_t i;

    snprintf(tmp, sizeof(tmp), "/tmp/fulcrum-cg-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        copy_file(FIX "/v2/fs/app", files[i]);
}

static void remove_tmp_cgroup(void)
{
    char path[512];
    struct dirent *e;
    DIR *d = opendir(tmp);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmp, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmp);
}

static void set_usage_usec(uint64_t usec)
{
    char text[64];

    snprintf(text, sizeof(text), "usage_usec %llu\nuser_usec 0\n", (unsigned long long)usec);
    write_file("cpu.stat", text);
}

static void assert_sane(const struct agent_sample *s)
{
    cr_assert_not(isnan(s->cpu_idle));
    cr_assert(s->cpu_idle >= 0.0 && s->cpu_idle <= 100.0, "cpu_idle %f", s->cpu_idle);
    cr_assert(s->ram_total > 0.0, "ram_total %f", s->ram_total);
    cr_assert(s->ram_free >= 0.0 && s->ram_free <= s->ram_total, "ram_free %f", s->ram_free);
    cr_assert_not(isnan(s->load1));
    cr_assert(s->load1 >= 0.0, "load1 %f", s->load1);
}

/* Host total RAM as the module reports it without a cgroup. */
static double host_ram_total(void)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *am = agent_metrics_new(AGENT_CGROUP_OFF, NULL, err, sizeof(err));

    cr_assert_not_null(am, "%s", err);
    cr_assert_eq(agent_metrics_sample(am, mono_ms(), &s), 0);
    agent_metrics_free(am);
    return s.ram_total;
}

Test(metrics, host_figures_are_sane)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *am = agent_metrics_new(AGENT_CGROUP_OFF, NULL, err, sizeof(err));
    int i;

    cr_assert_not_null(am, "%s", err);
    cr_assert_str_eq(agent_metrics_describe(am), "host (libstatgrab)");
    for (i = 0; i < 3; i++) {
        cr_assert_eq(agent_metrics_sample(am, mono_ms(), &s), 0);
        assert_sane(&s);
        cr_assert(s.ram_free > 0.0);
        cr_assert_not(s.cgroup);
        usleep(20000);
    }
    agent_metrics_free(am);
}

Test(metrics, auto_mode_on_this_host)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *am = agent_metrics_new(AGENT_CGROUP_AUTO, NULL, err, sizeof(err));

    cr_assert_not_null(am, "%s", err);
    cr_assert_str_not_empty(agent_metrics_describe(am));
    cr_assert_eq(agent_metrics_sample(am, mono_ms() + 1000, &s), 0);
    assert_sane(&s);
    agent_metrics_free(am);
}

Test(metrics, libstatgrab_survives_several_objects)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *a = agent_metrics_new(AGENT_CGROUP_OFF, NULL, err, sizeof(err));
    struct agent_metrics *b = agent_metrics_new(AGENT_CGROUP_OFF, NULL, err, sizeof(err));

    cr_assert_not_null(a);
    cr_assert_not_null(b);
    agent_metrics_free(a);
    cr_assert_eq(agent_metrics_sample(b, mono_ms(), &s), 0);
    assert_sane(&s);
    agent_metrics_free(b);
    agent_metrics_free(NULL);
    a = agent_metrics_new(AGENT_CGROUP_OFF, NULL, err, sizeof(err));
    cr_assert_not_null(a);
    cr_assert_eq(agent_metrics_sample(a, mono_ms(), &s), 0);
    assert_sane(&s);
    agent_metrics_free(a);
}

Test(metrics, bad_path_fails_with_message)
{
    char err[256] = "";

    cr_assert_null(agent_metrics_new(AGENT_CGROUP_PATH, FIX "/no/such", err, sizeof(err)));
    cr_assert_not_null(strstr(err, FIX "/no/such"), "err: %s", err);
    err[0] = '\0';
    cr_assert_null(
        agent_metrics_new(AGENT_CGROUP_PATH, FIX "/malformed/v2/cpumax-junk", err, sizeof(err)));
    cr_assert_str_not_empty(err);
    cr_assert_null(agent_metrics_new(AGENT_CGROUP_PATH, NULL, err, sizeof(err)));
}

Test(metrics, v1_fixture_limits)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *am;
    double total = fmin(512 * MIB, host_ram_total());

    am = agent_metrics_new(AGENT_CGROUP_PATH, FIX "/v1/fs/cpu/app", err, sizeof(err));
    cr_assert_not_null(am, "%s", err);
    cr_assert_str_eq(agent_metrics_describe(am),
                     "cgroup v1 cpu=0.20 cores mem=512MiB limit at " FIX "/v1/fs/cpu/app");
    /* the fixture's counter does not move: fully idle */
    cr_assert_eq(agent_metrics_sample(am, mono_ms() + 1000, &s), 0);
    cr_assert(s.cgroup);
    cr_assert_float_eq(s.cpu_idle, 100.0, 1e-9);
    cr_assert_float_eq(s.ram_total, total, 0.5);
    cr_assert_float_eq(s.ram_free, fmax(0.0, total - 192 * MIB), 0.5);
    agent_metrics_free(am);
}

Test(metrics, v2_no_limits_reports_host)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *am;

    am = agent_metrics_new(AGENT_CGROUP_PATH, FIX "/v2/fs/nolimit", err, sizeof(err));
    cr_assert_not_null(am, "%s", err);
    cr_assert_not_null(strstr(agent_metrics_describe(am), "has no limits"));
    cr_assert_eq(agent_metrics_sample(am, mono_ms(), &s), 0);
    assert_sane(&s);
    cr_assert_not(s.cgroup);
    agent_metrics_free(am);
}

TestSuite(metrics_cg, .init = make_tmp_cgroup, .fini = remove_tmp_cgroup);

Test(metrics_cg, cpu_idle_against_quota)
{
    char err[256], want[256];
    struct agent_sample s;
    struct agent_metrics *am = agent_metrics_new(AGENT_CGROUP_PATH, tmp, err, sizeof(err));
    uint64_t t = mono_ms() + 1000;

    cr_assert_not_null(am, "%s", err);
    snprintf(want, sizeof(want), "cgroup v2 cpu=0.50 cores mem=1024MiB limit at %s", tmp);
    cr_assert_str_eq(agent_metrics_describe(am), want);
    cr_assert_eq(agent_metrics_sample(am, t, &s), 0);
    cr_assert(s.cgroup);
    cr_assert_float_eq(s.cpu_idle, 100.0, 1e-9);

    /* 0.25 s of CPU in 1 s against 0.5 cores: half the quota used */
    set_usage_usec(2500000 + 250000);
    cr_assert_eq(agent_metrics_sample(am, t + 1000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 50.0, 1e-9);

    /* 0.125 s in 1 s: a quarter used */
    set_usage_usec(2750000 + 125000);
    cr_assert_eq(agent_metrics_sample(am, t + 2000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 75.0, 1e-9);

    /* more than the quota (bursting) clamps at 0 */
    set_usage_usec(2875000 + 1000000);
    cr_assert_eq(agent_metrics_sample(am, t + 3000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 0.0, 1e-9);
    agent_metrics_free(am);
}

Test(metrics_cg, unmeasurable_intervals_repeat_last_value)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *am = agent_metrics_new(AGENT_CGROUP_PATH, tmp, err, sizeof(err));

    cr_assert_not_null(am, "%s", err);
    /* a clock behind _new's baseline: new interval, initial value 100 */
    set_usage_usec(9000000);
    cr_assert_eq(agent_metrics_sample(am, 1000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 100.0, 1e-9);
    set_usage_usec(9000000 + 400000);
    cr_assert_eq(agent_metrics_sample(am, 2000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 20.0, 1e-9);
    /* same millisecond: repeat, keep the baseline */
    set_usage_usec(9400000 + 100000);
    cr_assert_eq(agent_metrics_sample(am, 2000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 20.0, 1e-9);
    cr_assert_eq(agent_metrics_sample(am, 3000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 80.0, 1e-9);
    /* counter reset (cgroup recreated): repeat, then measure again */
    set_usage_usec(0);
    cr_assert_eq(agent_metrics_sample(am, 4000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 80.0, 1e-9);
    set_usage_usec(500000);
    cr_assert_eq(agent_metrics_sample(am, 6000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 50.0, 1e-9);
    agent_metrics_free(am);
}

Test(metrics_cg, ram_against_memory_max)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *am;
    double total = fmin(1024 * MIB, host_ram_total());

    am = agent_metrics_new(AGENT_CGROUP_PATH, tmp, err, sizeof(err));
    cr_assert_not_null(am, "%s", err);
    /* memory.current 512 MiB, inactive_file 128 MiB: 384 MiB in use */
    cr_assert_eq(agent_metrics_sample(am, mono_ms(), &s), 0);
    cr_assert_float_eq(s.ram_total, total, 0.5);
    cr_assert_float_eq(s.ram_free, fmax(0.0, total - 384 * MIB), 0.5);

    /* over the limit: nothing free */
    write_file("memory.current", "2147483648\n");
    cr_assert_eq(agent_metrics_sample(am, mono_ms(), &s), 0);
    cr_assert_float_eq(s.ram_free, 0.0, 1e-9);

    /* a malformed file at sample time is an error, not a crash */
    write_file("memory.current", "junk\n");
    cr_assert_eq(agent_metrics_sample(am, mono_ms(), &s), -EINVAL);
    agent_metrics_free(am);
}

Test(metrics_cg, memory_limit_above_host_ram_and_no_quota)
{
    char err[256];
    struct agent_sample s;
    struct agent_metrics *am;
    double host = host_ram_total();

    write_file("cpu.max", "max 100000\n");
    write_file("memory.max", "1152921504606846976\n"); /* 2^60 bytes */
    am = agent_metrics_new(AGENT_CGROUP_PATH, tmp, err, sizeof(err));
    cr_assert_not_null(am, "%s", err);
    cr_assert_not_null(strstr(agent_metrics_describe(am), "cgroup v2 cpu=host mem="));
    cr_assert_eq(agent_metrics_sample(am, mono_ms(), &s), 0);
    assert_sane(&s);
    cr_assert(s.cgroup);
    cr_assert_float_eq(s.ram_total, host, 0.5);
    cr_assert_float_eq(s.ram_free, fmax(0.0, host - 384 * MIB), 0.5);
    agent_metrics_free(am);
}

Test(metrics_cg, quota_above_online_cpus_is_capped)
{
    char err[256], want[64];
    struct agent_sample s;
    struct agent_metrics *am;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t t = mono_ms() + 1000;

    cr_assert(ncpu > 0);
    write_file("cpu.max", "100000000 100000\n"); /* 1000 cores */
    am = agent_metrics_new(AGENT_CGROUP_PATH, tmp, err, sizeof(err));
    cr_assert_not_null(am, "%s", err);
    snprintf(want, sizeof(want), "cgroup v2 cpu=%.2f cores ", (double)ncpu);
    cr_assert_not_null(strstr(agent_metrics_describe(am), want), "%s", agent_metrics_describe(am));
    cr_assert_eq(agent_metrics_sample(am, t, &s), 0);
    set_usage_usec(2500000 + 500000);
    cr_assert_eq(agent_metrics_sample(am, t + 1000, &s), 0);
    cr_assert_float_eq(s.cpu_idle, 100.0 * (1.0 - 0.5 / (double)ncpu), 1e-9);
    agent_metrics_free(am);
}
