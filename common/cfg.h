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

struct cfg_prog {
    const char *name;    /* "fulcrum-agent" */
    const char *summary; /* one line for --help */
    const char *version;
    const struct cfg_opt *opts; /* ends with {.key = NULL} */
};

/* Fills obj from defaults, file and argv. Returns 0 to run, 1 when --help or
 * --version was printed (exit 0), or -EINVAL with err filled. obj must be
 * zeroed by the caller; free with cfg_done() whatever this returns. */
int cfg_load(const struct cfg_prog *p, void *obj, int argc, char **argv, char *err, size_t errlen);

/* Frees the strings and lists cfg_load allocated in obj. */
void cfg_done(const struct cfg_prog *p, void *obj);

/* Writes --help text: usage, summary, one entry per key with its default. */
void cfg_usage(const struct cfg_prog *p, FILE *f);

#endif
