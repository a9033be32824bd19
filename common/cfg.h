/* cfg.h - configuration as a table (STYLE.md 12).
 *
 * One table of {key, type, offset, min, max, default, help} per daemon serves
 * the command line (--key VALUE, --key=VALUE, --flag for booleans), the
 * config file (`key = value` lines, '#' or ';' comments, parsed by libinih),
 * and --help. Precedence: defaults, then the file named by --config, then
 * the command line. A repeatable key (CFG_LIST) accumulates within one
 * source; values on the command line replace the file's.
 * Numbers are parsed with full checks; every error names the file, line and
 * key, or the flag.
 *
 * --check-config reads the file and flags as a start would, runs the
 * daemon's check hook (what the table cannot say: required keys, addresses,
 * key files; never a bind), and prints every problem, not just the first,
 * then "configuration OK" or nothing; see cfg_load().
 */
#ifndef FULCRUM_CFG_H
#define FULCRUM_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cfg_type {
    CFG_STR,    /* char * (owned; freed by cfg_done); max = longest length */
    CFG_INT,    /* long long in [min, max] */
    CFG_DOUBLE, /* double in [min, max], finite */
    CFG_BOOL,   /* bool; yes/no/true/false/on/off/1/0 */
    CFG_ENUM,   /* int: index into names[] */
    CFG_LIST,   /* struct cfg_list: repeatable string */
};

struct cfg_list {
    char **v;
    size_t n;
};

#define CFG_LIST_MAX 256 /* values of one repeatable key */

struct cfg_opt {
    const char *key; /* flag without "--", and file key */
    enum cfg_type type;
    size_t off; /* offsetof the field in the daemon's config struct */
    double min, max;
    const char *def;          /* default as text, or NULL */
    const char *const *names; /* CFG_ENUM: NULL-terminated */
    const char *metavar;
    const char *help;
};

struct cfg_check; /* a --check-config run in progress (cfg.c) */

/* The daemon's own validation for --check-config: called once the file and
 * flags are read (even when they had errors), with the filled config
 * struct; reports each problem with cfg_check_fail() or the cfg_check_*()
 * helpers. Must not bind, connect or change anything. */
typedef void (*cfg_check_fn)(const void *obj, struct cfg_check *chk);

struct cfg_prog {
    const char *name;    /* "fulcrum-agent" */
    const char *summary; /* paragraph for --help: what it does, signals, exit codes */
    const char *version;
    const struct cfg_opt *opts; /* ends with {.key = NULL} */
    cfg_check_fn check;         /* NULL: only the table's checks */
};

/* Fills obj from defaults, file and argv. Returns 0 to run, 1 when --help or
 * --version was printed (exit 0), or -EINVAL with err filled. obj must be
 * zeroed by the caller; free with cfg_done() whatever this returns.
 * With --check-config: every problem is written to stderr, one line each
 * ("NAME: FILE:LINE: KEY: reason", "NAME: --KEY: reason"); then it returns
 * 1 after printing "NAME: configuration OK" on stdout, or -EINVAL with err
 * saying how many problems there were (the caller exits 2). */
int cfg_load(const struct cfg_prog *p, void *obj, int argc, char **argv, char *err, size_t errlen);

/* Frees the strings and lists cfg_load allocated in obj. */
void cfg_done(const struct cfg_prog *p, void *obj);

/* Writes --help text: usage, summary, one entry per key with its default. */
void cfg_usage(const struct cfg_prog *p, FILE *f);

/* Reports one problem found by a check hook with key's value (for a
 * CFG_LIST, its idx-th value; else idx is 0). Says where the value came
 * from: "FILE:LINE: KEY: why" from the file, "--KEY: why" from the command
 * line, "KEY: why" for a default or a key never given. */
void cfg_check_fail(struct cfg_check *chk, const char *key, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Helpers for check hooks (cfg_check.c). Each reports under key and
 * returns true when the value is good; all but cfg_check_required() accept
 * NULL or "" (not set) as good. */
bool cfg_check_required(struct cfg_check *chk, const char *key, const char *v);
bool cfg_check_hostport(struct cfg_check *chk, const char *key, const char *v, bool allow_port0);
bool cfg_check_hostports(struct cfg_check *chk, const char *key, const struct cfg_list *l,
                         bool allow_port0);
bool cfg_check_ip(struct cfg_check *chk, const char *key, const char *v);
/* A cluster key file as key_ring_load() takes it: regular, 32..4096
 * bytes, mode 0600 or stricter, readable by this user. */
bool cfg_check_key_file(struct cfg_check *chk, const char *key, const char *path);
/* A log file: "-" (stderr), or a file that can be opened for append, a
 * device or a FIFO included (checked with access(2), nothing is created). */
bool cfg_check_log_file(struct cfg_check *chk, const char *key, const char *path);
/* A file written whole and renamed into place (PATH.tmp, then rename): its
 * directory must be writable; not "-", not a directory. */
bool cfg_check_replaced_file(struct cfg_check *chk, const char *key, const char *path);
/* A directory that exists and that this user may read. */
bool cfg_check_dir(struct cfg_check *chk, const char *key, const char *path);

/* Where an option's effective value came from, for cfg_dump. */
typedef void (*cfg_dump_fn)(void *arg, const struct cfg_opt *o, const char *source,
                            const char *const *vals, size_t n);

/* Calls fn once per option of p, in table order, with its value in obj as
 * text (CFG_INT and CFG_DOUBLE as numbers, CFG_BOOL "yes"/"no", CFG_ENUM
 * the name, CFG_STR the string; a CFG_LIST gives its n values, others n =
 * 1) and its source: "flag" when argv sets it, else "file" when the file
 * argv names with --config has the key, else "default". argc/argv are the
 * ones cfg_load was given; the file is read again here. Returns 0, or
 * -errno with err filled when the file cannot be read (nothing is called). */
int cfg_dump(const struct cfg_prog *p, const void *obj, int argc, char *const *argv, cfg_dump_fn fn,
             void *arg, char *err, size_t errlen);

#endif
