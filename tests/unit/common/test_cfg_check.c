/* test_cfg_check.c - --check-config (common/cfg.c, cfg_file.c, cfg_check.c):
 * every problem listed with its file, line and key, the hook's reports
 * placed on the line that set the value, and the shared checks. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"

struct tcfg {
    char *name;
    char *addr;
    char *key;
    char *log;
    char *dir;
    long long port;
    struct cfg_list peers;
};

#define O(f) offsetof(struct tcfg, f)
static const struct cfg_opt opts[] = {
    {"name", CFG_STR, O(name), 0, 8, NULL, NULL, "NAME", "a name"},
    {"addr", CFG_STR, O(addr), 0, 255, "127.0.0.1:1", NULL, "A", "an address"},
    {"key", CFG_STR, O(key), 0, 4095, "", NULL, "FILE", "a key file"},
    {"log", CFG_STR, O(log), 0, 4095, "-", NULL, "FILE", "a log file"},
    {"dir", CFG_STR, O(dir), 0, 4095, "", NULL, "DIR", "a directory"},
    {"port", CFG_INT, O(port), 1, 65535, "7777", NULL, "N", "a port"},
    {"peer", CFG_LIST, O(peers), 0, 0, NULL, NULL, "P", "peers"},
    {NULL},
};

/* The hook under test: name required, addresses, files, and port 13 is
 * refused so that a default can be reported. */
static void hook(const void *obj, struct cfg_check *chk)
{
    const struct tcfg *c = obj;

    cfg_check_required(chk, "name", c->name);
    cfg_check_hostport(chk, "addr", c->addr, false);
    cfg_check_hostports(chk, "peer", &c->peers, false);
    cfg_check_key_file(chk, "key", c->key);
    cfg_check_log_file(chk, "log", c->log);
    cfg_check_dir(chk, "dir", c->dir);
    if (c->port == 13)
        cfg_check_fail(chk, "port", 0, "13 is unlucky");
}

static const struct cfg_prog prog = {"test", "a test", "1", opts, hook};

static char err[512];
static struct tcfg cfg;

static void setup(void)
{
    cr_redirect_stderr();
    cr_redirect_stdout();
}

static int load(int argc, char **argv)
{
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    return cfg_load(&prog, &cfg, argc, argv, err, sizeof(err));
}

static char *write_file(const char *text, mode_t mode)
{
    static char paths[4][64];
    static int next;
    char *path = paths[next++ % 4];
    int fd;

    snprintf(path, 64, "/tmp/fulcrum-cfgchk-XXXXXX");
    fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

/* Everything written to the redirected stream so far (static buffer). */
static const char *output(FILE *f)
{
    static char buf[8192];
    size_t n;

    fflush(stdout);
    fflush(stderr);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    return buf;
}

static void assert_has(const char *text, const char *line)
{
    cr_assert(strstr(text, line), "missing \"%s\" in:\n%s", line, text);
}

TestSuite(cfg_check, .init = setup);

Test(cfg_check, good_config_prints_ok_and_returns_1)
{
    char *key = write_file("0123456789abcdef0123456789abcdef", 0600);
    char text[256];
    char *path;

    snprintf(text, sizeof(text), "name = a\naddr = 127.0.0.1:80\nkey = %s\npeer = 1.2.3.4:5\n",
             key);
    path = write_file(text, 0644);
    char *argv[] = {"t", "--config", path, "--check-config", NULL};

    cr_assert_eq(load(4, argv), 1, "%s", err);
    cr_assert_str_eq(output(cr_get_redirected_stdout()), "test: configuration OK\n");
    cr_assert_str_eq(output(cr_get_redirected_stderr()), "");
    cfg_done(&prog, &cfg);
    unlink(path);
    unlink(key);
}

Test(cfg_check, help_or_version_with_check_config_is_refused_not_ok)
{
    char *with_version[] = {"t", "--check-config", "--version", NULL};
    char *help_first[] = {"t", "--help", "--check-config", NULL};

    cr_assert_eq(load(3, with_version), -EINVAL, "--version made the check a no-op");
    cr_assert(strstr(err, "drop --help and --version"), "%s", err);
    cfg_done(&prog, &cfg);
    cr_assert_eq(load(3, help_first), -EINVAL, "--help before --check-config skipped it");
    cfg_done(&prog, &cfg);
    cr_assert_str_eq(output(cr_get_redirected_stdout()), "", "something said OK, or printed help");
}

Test(cfg_check, every_file_error_is_listed_with_line_and_key)
{
    char *path = write_file("name = a\n"
                            "jitter = 3\n"             /* 2: unknown key */
                            "port = 99999\n"           /* 3: out of range */
                            "# comment\n"              /* 4 */
                            "no equals sign\n"         /* 5: cannot parse */
                            "port = x\n"               /* 6: not a number */
                            "name = waytoolongname\n", /* 7 */
                            0644);
    char *argv[] = {"t", "--check-config", "--config", path, "--bogus", NULL};
    char want[256];
    const char *e;

    cr_assert_eq(load(5, argv), -EINVAL);
    cr_assert_str_eq(err, "6 problems in the configuration");
    e = output(cr_get_redirected_stderr());
    snprintf(want, sizeof(want), "test: %s:2: jitter: unknown key\n", path);
    assert_has(e, want);
    snprintf(want, sizeof(want), "test: %s:3: port: 99999 is out of range [1, 65535]\n", path);
    assert_has(e, want);
    snprintf(want, sizeof(want), "test: %s:5: cannot parse this line\n", path);
    assert_has(e, want);
    snprintf(want, sizeof(want), "test: %s:6: port: 'x' is not a whole number\n", path);
    assert_has(e, want);
    snprintf(want, sizeof(want), "test: %s:7: name: longer than 8 characters\n", path);
    assert_has(e, want);
    assert_has(e, "test: unknown option '--bogus' (see --help)\n");
    cr_assert_str_eq(output(cr_get_redirected_stdout()), "");
    cfg_done(&prog, &cfg);
    unlink(path);
}

Test(cfg_check, hook_reports_name_the_line_that_set_the_value)
{
    char *path = write_file("name = a\n"
                            "peer = 1.2.3.4:5\n"
                            "addr = 127.0.0.1:0\n"  /* 3: port 0 refused by the hook */
                            "peer = 1.2.3.4:nope\n" /* 4: the second peer */
                            "log = /nonexistent-dir/x.log\n",
                            0644);
    char *argv[] = {"t",      "--config", path, "--check-config", "--dir=/nonexistent-dir",
                    "--port", "13",       NULL};
    char want[256];
    const char *e;

    cr_assert_eq(load(7, argv), -EINVAL);
    e = output(cr_get_redirected_stderr());
    snprintf(want, sizeof(want), "test: %s:3: addr: ", path);
    assert_has(e, want);
    snprintf(want, sizeof(want), "test: %s:4: peer: ", path);
    assert_has(e, want);
    snprintf(want, sizeof(want), "test: %s:2: peer", path);
    cr_assert_null(strstr(e, want), "the good peer was reported:\n%s", e);
    snprintf(want, sizeof(want), "test: %s:5: log: /nonexistent-dir/x.log: ", path);
    assert_has(e, want);
    assert_has(e, "test: --dir: /nonexistent-dir: No such file or directory\n");
    assert_has(e, "test: --port: 13 is unlucky\n");
    cr_assert_str_eq(err, "5 problems in the configuration", "%s", e);
    cfg_done(&prog, &cfg);
    unlink(path);
}

Test(cfg_check, default_and_missing_values_name_the_key_alone)
{
    static const struct cfg_opt opts13[] = {
        {"name", CFG_STR, O(name), 0, 8, NULL, NULL, "NAME", "a name"},
        {"port", CFG_INT, O(port), 1, 65535, "13", NULL, "N", "a port"},
        {"addr", CFG_STR, O(addr), 0, 255, "", NULL, "A", "an address"},
        {"key", CFG_STR, O(key), 0, 4095, "", NULL, "FILE", "a key file"},
        {"log", CFG_STR, O(log), 0, 4095, "-", NULL, "FILE", "a log file"},
        {"dir", CFG_STR, O(dir), 0, 4095, "", NULL, "DIR", "a directory"},
        {"peer", CFG_LIST, O(peers), 0, 0, NULL, NULL, "P", "peers"},
        {NULL},
    };
    static const struct cfg_prog p13 = {"test", "a test", "1", opts13, hook};
    char *argv[] = {"t", "--check-config", NULL};
    const char *e;

    memset(&cfg, 0, sizeof(cfg));
    cr_assert_eq(cfg_load(&p13, &cfg, 2, argv, err, sizeof(err)), -EINVAL);
    e = output(cr_get_redirected_stderr());
    assert_has(e, "test: name: is required (set it in the file or as --name)\n");
    assert_has(e, "test: port: 13 is unlucky\n");
    cr_assert_str_eq(err, "2 problems in the configuration", "%s", e);
    cfg_done(&p13, &cfg);
}

Test(cfg_check, flag_list_replaces_file_lines)
{
    char *path = write_file("name = a\npeer = 1.2.3.4:bad\n", 0644);
    char *argv[] = {"t", "--config", path, "--check-config", "--peer", "x:y", NULL};
    const char *e;

    cr_assert_eq(load(6, argv), -EINVAL);
    e = output(cr_get_redirected_stderr());
    assert_has(e, "test: --peer: ");
    cr_assert_null(strstr(e, ":2: peer"), "the file's peer was kept:\n%s", e);
    cr_assert_str_eq(err, "1 problem in the configuration", "%s", e);
    cfg_done(&prog, &cfg);
    unlink(path);
}

Test(cfg_check, key_file_mode_is_checked)
{
    char *loose = write_file("0123456789abcdef0123456789abcdef", 0644);
    char *shortk = write_file("short", 0600);
    char a1[300], a2[300];
    char *argv[] = {"t", "--check-config", "--name=a", a1, NULL};
    const char *e;

    snprintf(a1, sizeof(a1), "--key=%s", loose);
    cr_assert_eq(load(4, argv), -EINVAL);
    snprintf(a2, sizeof(a2), "test: --key: ");
    e = output(cr_get_redirected_stderr());
    assert_has(e, a2);
    assert_has(e, loose);
    cfg_done(&prog, &cfg);
    snprintf(a1, sizeof(a1), "--key=%s", shortk);
    cr_assert_eq(load(4, argv), -EINVAL, "a 5-byte key passed");
    cfg_done(&prog, &cfg);
    unlink(loose);
    unlink(shortk);
}

Test(cfg_check, long_line_is_an_error_of_its_own)
{
    char text[600];
    char *path;

    snprintf(text, sizeof(text), "name = a\ndir = /%0300d\nport = 1\n", 0);
    path = write_file(text, 0644);
    char *argv[] = {"t", "--check-config", "--config", path, NULL};
    char want[256];
    const char *e;

    cr_assert_eq(load(4, argv), -EINVAL);
    e = output(cr_get_redirected_stderr());
    snprintf(want, sizeof(want), "test: %s:2: line longer than 198 characters\n", path);
    assert_has(e, want);
    cr_assert_str_eq(err, "1 problem in the configuration", "%s", e);
    cr_assert_eq(cfg.port, 1, "line 3 was not read after the long line");
    cfg_done(&prog, &cfg);
    unlink(path);
}

Test(cfg_check, without_check_config_the_first_error_stops_quietly)
{
    char *path = write_file("jitter = 3\nport = 0\n", 0644);
    char *argv[] = {"t", "--config", path, NULL};
    char want[256];

    cr_assert_eq(load(3, argv), -EINVAL);
    snprintf(want, sizeof(want), "%s:1: jitter: unknown key", path);
    cr_assert_str_eq(err, want);
    cr_assert_str_eq(output(cr_get_redirected_stderr()), "");
    cfg_done(&prog, &cfg);
    unlink(path);
}
