/* cfg_int.h - what cfg.c, cfg_file.c and cfg_check.c share: one load in
 * progress and where each value came from. Not for the daemons. */
#ifndef FULCRUM_CFG_INT_H
#define FULCRUM_CFG_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

#define CFG_MAX_OPTS 64 /* entries in one table at most */

#define CFG_SRC_CLI UINT_MAX /* cfg_src line of a value from the command line */

/* Where an option's value came from: 0 default, CFG_SRC_CLI, or a line of
 * the file; a CFG_LIST has one line per value. */
struct cfg_src {
    unsigned line;
    unsigned *lines;
    size_t n;
};

/* One load in progress: which lists the command line has started. */
struct cfg_ctx {
    const struct cfg_prog *p;
    void *obj;
    bool list_from_cli[CFG_MAX_OPTS];
    bool cli;
    bool check;       /* --check-config: report every error, go on */
    unsigned line;    /* file line being read, 0 otherwise */
    unsigned errors;  /* reported so far */
    const char *path; /* the --config file */
    struct cfg_src src[CFG_MAX_OPTS];
    char *err;
    size_t errlen;
};

/* A --check-config run, as the daemon's hook sees it. */
struct cfg_check {
    struct cfg_ctx *c;
};

void *cfg_field(void *obj, const struct cfg_opt *o);
const struct cfg_opt *cfg_find(const struct cfg_prog *p, const char *key, size_t klen);

/* Stores v in o's field and notes its source (c->cli, c->line). Returns 0,
 * or -errno with why filled. */
int cfg_set_src(struct cfg_ctx *c, const struct cfg_opt *o, const char *v, char *why, size_t wlen);

/* Records one error: the first goes to c->err; with --check-config each is
 * printed to stderr after the program's name. Returns -EINVAL. */
int cfg_error(struct cfg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads `key = value` lines from path into c->obj (cfg_file.c). Returns 0,
 * or -EINVAL after cfg_error() for each bad line (the first only, unless
 * c->check). */
int cfg_load_file(struct cfg_ctx *c, const char *path);

#endif
