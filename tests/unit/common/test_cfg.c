/* test_cfg.c - the configuration table: defaults, file, flags, errors. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

struct tcfg {
    char *name;
    long long port;
    double interval;
    bool json;
    int mode;
    struct cfg_list peers;
};

static const char *const modes[] = {"auto", "off", "path", NULL};

#define O(f) offsetof(struct tcfg, f)
static const struct cfg_opt opts[] = {
    {"name", CFG_STR, O(name), 0, 8, "node", NULL, "NAME", "a name"},
    {"port", CFG_INT, O(port), 1, 65535, "7777", NULL, "N", "a port"},
    {"interval", CFG_DOUBLE, O(interval), 0.05, 60, "5", NULL, "SEC", "seconds"},
    {"json", CFG_BOOL, O(json), 0, 0, "no", NULL, NULL, "json"},
    {"mode", CFG_ENUM, O(mode), 0, 0, "auto", modes, "M", "mode"},
    {"peer", CFG_LIST, O(peers), 0, 0, NULL, NULL, "P", "peers"},
    {NULL},
};
static const struct cfg_prog prog = {"test", "a test", "1", opts, NULL};

static char err[512];

static int load(struct tcfg *c, int argc, char **argv)
{
    memset(c, 0, sizeof(*c));
    err[0] = '\0';
    return cfg_load(&prog, c, argc, argv, err, sizeof(err));
}

static char *write_file(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/fulcrum-cfg-XXXXXX");
    fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(cfg, defaults)
{
    struct tcfg c;
    char *argv[] = {"t", NULL};

    cr_assert_eq(load(&c, 1, argv), 0, "%s", err);
    cr_assert_str_eq(c.name, "node");
    cr_assert_eq(c.port, 7777);
    cr_assert_float_eq(c.interval, 5.0, 1e-9);
    cr_assert_eq(c.json, false);
    cr_assert_eq(c.mode, 0);
    cr_assert_eq(c.peers.n, 0);
    cfg_done(&prog, &c);
    cr_assert_null(c.name);
}

Test(cfg, flags_both_forms)
{
    struct tcfg c;
    char *argv[] = {"t",      "--name", "abc",        "--port=80",  "--json", "--mode", "path",
                    "--peer", "a:1",    "--peer=b:2", "--interval", "0.5",    NULL};

    cr_assert_eq(load(&c, 12, argv), 0, "%s", err);
    cr_assert_str_eq(c.name, "abc");
    cr_assert_eq(c.port, 80);
    cr_assert_eq(c.json, true);
    cr_assert_eq(c.mode, 2);
    cr_assert_eq(c.peers.n, 2);
    cr_assert_str_eq(c.peers.v[1], "b:2");
    cr_assert_float_eq(c.interval, 0.5, 1e-9);
    cfg_done(&prog, &c);
}

Test(cfg, file_then_flags_override)
{
    struct tcfg c;
    char *path = write_file("# comment\nname = fromfile\nport = 90\npeer = x:1\npeer = y:2\n"
                            "json = yes\n");
    char *argv[] = {"t", "--config", path, "--port", "91", NULL};

    cr_assert_eq(load(&c, 5, argv), 0, "%s", err);
    cr_assert_str_eq(c.name, "fromfile");
    cr_assert_eq(c.port, 91);
    cr_assert_eq(c.json, true);
    cr_assert_eq(c.peers.n, 2);
    cfg_done(&prog, &c);
    unlink(path);
}

Test(cfg, flag_list_replaces_file_list)
{
    struct tcfg c;
    char *path = write_file("peer = x:1\npeer = y:2\n");
    char *argv[] = {"t", "--peer", "z:3", "--config", path, NULL};

    cr_assert_eq(load(&c, 5, argv), 0, "%s", err);
    cr_assert_eq(c.peers.n, 1);
    cr_assert_str_eq(c.peers.v[0], "z:3");
    cfg_done(&prog, &c);
    unlink(path);
}

Test(cfg, file_error_names_file_line_and_key)
{
    struct tcfg c;
    char *path = write_file("name = ok\n\nport = 99999\n");
    char *argv[] = {"t", "--config", path, NULL};
    char want[128];

    cr_assert_eq(load(&c, 3, argv), -EINVAL);
    snprintf(want, sizeof(want), "%s:3: port:", path);
    cr_assert(strstr(err, want), "%s", err);
    cr_assert(strstr(err, "out of range"), "%s", err);
    cfg_done(&prog, &c);
    unlink(path);
}

Test(cfg, file_unknown_key)
{
    struct tcfg c;
    char *path = write_file("nmae = typo\n");
    char *argv[] = {"t", "--config", path, NULL};

    cr_assert_eq(load(&c, 3, argv), -EINVAL);
    cr_assert(strstr(err, ":1: nmae: unknown key"), "%s", err);
    cfg_done(&prog, &c);
    unlink(path);
}

Test(cfg, missing_file)
{
    struct tcfg c;
    char *argv[] = {"t", "--config", "/nonexistent/x.conf", NULL};

    cr_assert_eq(load(&c, 3, argv), -EINVAL);
    cr_assert(strstr(err, "/nonexistent/x.conf"), "%s", err);
    cfg_done(&prog, &c);
}

Test(cfg, a_directory_is_no_config_file)
{
    struct tcfg c;
    char dir[] = "/tmp/fulcrum-cfgdir-XXXXXX";
    char *argv[] = {"t", "--config", dir, NULL};

    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(load(&c, 3, argv), -EINVAL, "a directory was read as an empty file");
    cr_assert(strstr(err, "Is a directory"), "%s", err);
    cfg_done(&prog, &c);
    rmdir(dir);
}

Test(cfg, an_indented_setting_is_an_error_not_a_continuation)
{
    struct tcfg c;
    char *path = write_file("name = first\n    port = 91\n  # an indented comment is fine\n");
    char *argv[] = {"t", "--config", path, NULL};

    cr_assert_eq(load(&c, 3, argv), -EINVAL, "name became '%s'", c.name ? c.name : "");
    cr_assert(strstr(err, ":2: an indented line"), "%s", err);
    cfg_done(&prog, &c);
    unlink(path);
}

Test(cfg, rejects_bad_numbers)
{
    const char *bad[][2] = {{"--port", "12x"},      {"--port", ""},
                            {"--port", "0"},        {"--port", "1e3"},
                            {"--interval", "nan"},  {"--interval", "inf"},
                            {"--interval", "0.01"}, {"--port", "99999999999999999999"}};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tcfg c;
        char *argv[] = {"t", (char *)bad[i][0], (char *)bad[i][1], NULL};

        cr_assert_eq(load(&c, 3, argv), -EINVAL, "%s %s accepted", bad[i][0], bad[i][1]);
        cr_assert(strstr(err, bad[i][0]), "%s", err);
        cfg_done(&prog, &c);
    }
}

Test(cfg, rejects_bad_enum_bool_and_long_string)
{
    struct tcfg c;
    char *a1[] = {"t", "--mode", "sometimes", NULL};
    char *a2[] = {"t", "--json=perhaps", NULL};
    char *a3[] = {"t", "--name", "much-too-long", NULL};

    cr_assert_eq(load(&c, 3, a1), -EINVAL);
    cr_assert(strstr(err, "auto off path"), "%s", err);
    cfg_done(&prog, &c);
    cr_assert_eq(load(&c, 2, a2), -EINVAL);
    cfg_done(&prog, &c);
    cr_assert_eq(load(&c, 3, a3), -EINVAL);
    cfg_done(&prog, &c);
}

Test(cfg, unknown_flag_and_missing_value)
{
    struct tcfg c;
    char *a1[] = {"t", "--nope", NULL};
    char *a2[] = {"t", "--port", NULL};
    char *a3[] = {"t", "stray", NULL};

    cr_assert_eq(load(&c, 2, a1), -EINVAL);
    cr_assert(strstr(err, "--nope"), "%s", err);
    cfg_done(&prog, &c);
    cr_assert_eq(load(&c, 2, a2), -EINVAL);
    cr_assert(strstr(err, "needs a value"), "%s", err);
    cfg_done(&prog, &c);
    cr_assert_eq(load(&c, 2, a3), -EINVAL);
    cfg_done(&prog, &c);
}

Test(cfg, help_returns_one)
{
    struct tcfg c;
    char *argv[] = {"t", "--port", "1", "--help", NULL};

    cr_redirect_stdout();
    cr_assert_eq(load(&c, 4, argv), 1);
    cfg_done(&prog, &c);
}

/* Found by fuzz_cfg (fuzz/corpus/fuzz_cfg/regress-int-llong-max): integers
 * went through a double, so a value above 2^53 lost its low bits and
 * LLONG_MAX became 2^63, converted back with undefined behaviour (LLONG_MIN
 * on x86). They are now parsed and range-checked as long long. */
struct wcfg {
    long long wide;
};

static const struct cfg_opt wide_opts[] = {
    {"wide", CFG_INT, offsetof(struct wcfg, wide), (double)LLONG_MIN, (double)LLONG_MAX, "0", NULL,
     "N", "any long long"},
    {.key = NULL},
};
static const struct cfg_prog wide_prog = {"test", "a test", "1", wide_opts, NULL};

static long long load_wide(const char *v, int want)
{
    struct wcfg w = {0};
    char *argv[] = {"t", "--wide", (char *)v, NULL};

    cr_assert_eq(cfg_load(&wide_prog, &w, 3, argv, err, sizeof(err)), want, "%s: %s", v, err);
    cfg_done(&wide_prog, &w);
    return w.wide;
}

Test(cfg, int_keeps_every_bit_of_a_long_long)
{
    cr_assert_eq(load_wide("9223372036854775807", 0), LLONG_MAX);
    cr_assert_eq(load_wide("-9223372036854775808", 0), LLONG_MIN);
    cr_assert_eq(load_wide("9007199254740993", 0), 9007199254740993LL);
    cr_assert_eq(load_wide("-9007199254740993", 0), -9007199254740993LL);
    load_wide("9223372036854775808", -EINVAL);
}
