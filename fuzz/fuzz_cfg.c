/* fuzz_cfg.c - libFuzzer target: the configuration table (common/cfg.c),
 * its `key = value` file (libinih) and its command line.
 *
 * Input: one mode byte, then the data.
 *   mode & 1 == 0: the whole data is the config file;
 *   mode & 1 == 1: the data up to the first NUL is the config file, the
 *                  rest is argv, one argument per NUL-separated piece (at
 *                  most FUZZ_ARGS). An argument starting with "--config" is
 *                  replaced by this file's own --config, so the fuzzer never
 *                  opens a path of its choosing (/dev/zero would not end).
 * The file lives in a memfd and is read back through /proc/self/fd/N.
 *
 * The table has every option kind, ranges at the extremes of a double and
 * of a long long, and the shared log options (common/opts.h). After a
 * successful load every field must lie within its option's bounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"
#include "opts.h"

#define FUZZ_ARGS 32

struct fcfg {
    char *name; /* CFG_STR with a cap */
    char *text; /* CFG_STR without one */
    long long port;
    long long wide; /* the whole long long range */
    long long neg;
    double interval;
    double any; /* the whole finite double range */
    bool json;
    int mode;
    struct cfg_list peers;
    char *log_file;
    int log_level;
};

static const char *const fuzz_modes[] = {"auto", "off", "path", NULL};

#define O(f) offsetof(struct fcfg, f)
static const struct cfg_opt fuzz_opts[] = {
    {"name", CFG_STR, O(name), 0, 16, "node", NULL, "NAME", "a capped string"},
    {"text", CFG_STR, O(text), 0, 0, "", NULL, "TEXT", "an uncapped string"},
    {"port", CFG_INT, O(port), 1, 65535, "7777", NULL, "N", "a port"},
    {"wide", CFG_INT, O(wide), (double)LLONG_MIN, (double)LLONG_MAX, "0", NULL, "N", "any"},
    {"neg", CFG_INT, O(neg), -1000, -1, "-5", NULL, "N", "negative only"},
    {"interval", CFG_DOUBLE, O(interval), 0.05, 3600, "5", NULL, "SEC", "seconds"},
    {"any", CFG_DOUBLE, O(any), -1.7976931348623157e308, 1.7976931348623157e308, "0", NULL, "X",
     "any finite number"},
    {"json", CFG_BOOL, O(json), 0, 0, "no", NULL, NULL, "a flag"},
    {"mode", CFG_ENUM, O(mode), 0, 0, "auto", fuzz_modes, "M", "an enum"},
    {"peer", CFG_LIST, O(peers), 0, 255, NULL, NULL, "P", "a repeatable key"},
    OPTS_LOG(struct fcfg),
    {.key = NULL},
};
#undef O

static const struct cfg_prog fuzz_prog = {"fuzz_cfg", "a table of every kind", "1", fuzz_opts,
                                          NULL};

static int cfg_fd = -1;
static char cfg_path[64], cfg_arg[80];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz_cfg: oracle failed: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int null_fd = open("/dev/null", O_WRONLY);

    (void)argc;
    (void)argv;
    cfg_fd = memfd_create("fuzz_cfg", MFD_CLOEXEC);
    if (cfg_fd == -1 || null_fd == -1)
        fuzz_die("memfd_create or /dev/null");
    dup2(null_fd, STDOUT_FILENO); /* --help and --version print there */
    close(null_fd);
    snprintf(cfg_path, sizeof(cfg_path), "/proc/self/fd/%d", cfg_fd);
    snprintf(cfg_arg, sizeof(cfg_arg), "--config=%s", cfg_path);
    return 0;
}

static void fuzz_write_file(const uint8_t *p, size_t n)
{
    if (ftruncate(cfg_fd, 0) == -1 || (n > 0 && pwrite(cfg_fd, p, n, 0) != (ssize_t)n))
        fuzz_die("cannot write the memfd");
}

/* Splits data into argv pieces (copies, NUL-terminated); returns argc. */
static int fuzz_argv(const uint8_t *p, size_t n, char **argv, char *store)
{
    int argc = 0;

    argv[argc++] = "fuzz_cfg";
    argv[argc++] = cfg_arg;
    memcpy(store, p, n);
    store[n] = '\0';
    for (size_t i = 0; i < n && argc < FUZZ_ARGS + 2;) {
        char *a = store + i;

        argv[argc++] = strncmp(a, "--config", 8) ? a : cfg_arg;
        i += strlen(a) + 1;
    }
    return argc;
}

static bool fuzz_in(double v, const struct cfg_opt *o)
{
    return v >= o->min && v <= o->max;
}

/* Every field within its option's bounds after a successful load. */
static void fuzz_check(const struct fcfg *c)
{
    if (!c->name || strlen(c->name) > 16 || !c->text || !c->log_file)
        fuzz_die("string missing or over its cap");
    if (!fuzz_in((double)c->port, &fuzz_opts[2]) || !fuzz_in((double)c->wide, &fuzz_opts[3]) ||
        !fuzz_in((double)c->neg, &fuzz_opts[4]))
        fuzz_die("integer out of range");
    if (!isfinite(c->interval) || !fuzz_in(c->interval, &fuzz_opts[5]) || !isfinite(c->any))
        fuzz_die("double out of range");
    if (c->mode < 0 || c->mode > 2 || c->log_level < 0 || c->log_level >= LOG_LVL_MAX)
        fuzz_die("enum out of range");
    if (c->peers.n > CFG_LIST_MAX || (c->peers.n && !c->peers.v))
        fuzz_die("list out of bounds");
    for (size_t i = 0; i < c->peers.n; i++)
        if (!c->peers.v[i])
            fuzz_die("list entry missing");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[FUZZ_ARGS + 3] = {0};
    char err[512], *store = NULL;
    struct fcfg c = {0};
    const uint8_t *nul;
    size_t flen;
    int argc = 2, r;

    if (size < 1)
        return 0;
    argv[0] = "fuzz_cfg";
    argv[1] = cfg_arg;
    nul = (data[0] & 1) ? memchr(data + 1, '\0', size - 1) : NULL;
    flen = nul ? (size_t)(nul - (data + 1)) : size - 1;
    fuzz_write_file(data + 1, flen);
    if (nul) {
        store = malloc(size);
        if (!store)
            return 0;
        argc = fuzz_argv(nul + 1, size - 1 - flen - 1, argv, store);
    }
    err[0] = '\0';
    r = cfg_load(&fuzz_prog, &c, argc, argv, err, sizeof(err));
    if (r < 0 && !err[0])
        fuzz_die("an error without a message");
    if (r == 0)
        fuzz_check(&c);
    cfg_done(&fuzz_prog, &c);
    free(store);
    return 0;
}
