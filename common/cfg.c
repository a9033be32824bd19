/* cfg.c - table-driven configuration from a file (libinih) and argv.
 *
 * Each value set remembers where it came from (file line, command line or
 * default), so that --check-config can name the line of a value the
 * daemon's hook refuses after the whole file was read. Errors go through
 * cfg_error(): a normal load keeps the first one in err and stops; a
 * --check-config load prints each one and goes on.
 */
#include "cfg.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "cfg_int.h"
#include "xalloc.h"

void *cfg_field(void *obj, const struct cfg_opt *o)
{
    return (char *)obj + o->off;
}

const struct cfg_opt *cfg_find(const struct cfg_prog *p, const char *key, size_t klen)
{
    for (const struct cfg_opt *o = p->opts; o->key; o++) {
        if (strlen(o->key) == klen && !strncmp(o->key, key, klen))
            return o;
    }
    return NULL;
}

static int cfg_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i]) || !strcasecmp(v, no[i])) {
            *out = !strcasecmp(v, yes[i]);
            return 0;
        }
    }
    return -EINVAL;
}

/* v >= b and v <= b, exactly: a bound is a double, a long long above 2^53
 * may not be one, and (long long) of a double out of range is undefined. */
static bool cfg_ll_ge(long long v, double b)
{
    if (isnan(b) || b >= 0x1p63)
        return false;
    return b <= -0x1p63 || v >= (long long)ceil(b);
}

static bool cfg_ll_le(long long v, double b)
{
    if (isnan(b) || b < -0x1p63)
        return false;
    return b >= 0x1p63 || v <= (long long)floor(b);
}

/* Parses v for a CFG_INT (into *ll) or a CFG_DOUBLE (into *d). */
static int cfg_parse_num(const struct cfg_opt *o, const char *v, long long *ll, double *d,
                         char *why, size_t wlen)
{
    bool in;
    char *end;

    errno = 0;
    if (o->type == CFG_INT)
        *ll = strtoll(v, &end, 10);
    else
        *d = strtod(v, &end);
    if (errno || end == v || *end || (o->type != CFG_INT && !isfinite(*d))) {
        snprintf(why, wlen, "'%s' is not a %s", v, o->type == CFG_INT ? "whole number" : "number");
        return -EINVAL;
    }
    if (o->type == CFG_INT)
        in = cfg_ll_ge(*ll, o->min) && cfg_ll_le(*ll, o->max);
    else
        in = *d >= o->min && *d <= o->max;
    if (!in) {
        snprintf(why, wlen, "%s is out of range [%g, %g]", v, o->min, o->max);
        return -ERANGE;
    }
    return 0;
}

static int cfg_set_enum(const struct cfg_opt *o, void *f, const char *v, char *why, size_t wlen)
{
    size_t len = 0;

    for (int i = 0; o->names[i]; i++) {
        if (!strcmp(o->names[i], v)) {
            *(int *)f = i;
            return 0;
        }
    }
    len = (size_t)snprintf(why, wlen, "'%s' is not one of", v);
    for (int i = 0; o->names[i] && len < wlen; i++)
        len += (size_t)snprintf(why + len, wlen - len, " %s", o->names[i]);
    return -EINVAL;
}

static int cfg_list_add(struct cfg_list *l, const char *v, char *why, size_t wlen)
{
    if (l->n >= CFG_LIST_MAX) {
        snprintf(why, wlen, "more than %d values", CFG_LIST_MAX);
        return -E2BIG;
    }
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = xstrdup(v);
    return 0;
}

static void cfg_list_clear(struct cfg_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Stores one value. why gets the reason on error. */
static int cfg_set(struct cfg_ctx *c, const struct cfg_opt *o, const char *v, char *why,
                   size_t wlen)
{
    void *f = cfg_field(c->obj, o);
    long long ll = 0;
    double d = 0;
    int r;

    switch (o->type) {
    case CFG_STR:
        if (o->max > 0 && strlen(v) > (size_t)o->max) {
            snprintf(why, wlen, "longer than %g characters", o->max);
            return -E2BIG;
        }
        free(*(char **)f);
        *(char **)f = xstrdup(v);
        return 0;
    case CFG_INT:
    case CFG_DOUBLE:
        r = cfg_parse_num(o, v, &ll, &d, why, wlen);
        if (r)
            return r;
        if (o->type == CFG_INT)
            *(long long *)f = ll;
        else
            *(double *)f = d;
        return 0;
    case CFG_BOOL:
        if (cfg_parse_bool(v, (bool *)f)) {
            snprintf(why, wlen, "'%s' is not yes or no", v);
            return -EINVAL;
        }
        return 0;
    case CFG_ENUM:
        return cfg_set_enum(o, f, v, why, wlen);
    case CFG_LIST: {
        size_t idx = (size_t)(o - c->p->opts);

        if (c->cli && !c->list_from_cli[idx]) {
            cfg_list_clear(f);
            c->list_from_cli[idx] = true;
        }
        return cfg_list_add(f, v, why, wlen);
    }
    }
    return -EINVAL;
}

/* cfg_set() and a note of where the value came from. */
int cfg_set_src(struct cfg_ctx *c, const struct cfg_opt *o, const char *v, char *why, size_t wlen)
{
    struct cfg_src *s = &c->src[o - c->p->opts];
    int r = cfg_set(c, o, v, why, wlen);

    if (r)
        return r;
    s->line = c->cli ? CFG_SRC_CLI : c->line;
    if (o->type == CFG_LIST) {
        const struct cfg_list *l = cfg_field(c->obj, o);

        s->lines = xrealloc(s->lines, l->n * sizeof(*s->lines));
        s->n = l->n;
        s->lines[l->n - 1] = s->line;
    }
    return 0;
}

static void cfg_ctx_done(struct cfg_ctx *c)
{
    for (size_t i = 0; i < CFG_MAX_OPTS; i++) {
        free(c->src[i].lines);
        c->src[i].lines = NULL;
    }
}

static void cfg_defaults(struct cfg_ctx *c)
{
    char why[128];

    for (const struct cfg_opt *o = c->p->opts; o->key; o++) {
        if (o - c->p->opts >= CFG_MAX_OPTS) {
            fprintf(stderr, "%s: more than %d options in the table\n", c->p->name, CFG_MAX_OPTS);
            abort();
        }
        /* A default that does not parse is a programming error. */
        if (o->def && cfg_set_src(c, o, o->def, why, sizeof(why))) {
            fprintf(stderr, "%s: bad built-in default for %s: %s\n", c->p->name, o->key, why);
            abort();
        }
    }
}

/* Records one error: the first goes to err; with --check-config each is
 * printed. Returns -EINVAL. */
int cfg_error(struct cfg_ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->errors++ == 0)
        snprintf(c->err, c->errlen, "%s", msg);
    if (c->check)
        fprintf(stderr, "%s: %s\n", c->p->name, msg);
    return -EINVAL;
}

/* Splits "--key=value" / "--key value"; returns the option or NULL. */
static const struct cfg_opt *cfg_flag(const struct cfg_prog *p, const char *arg,
                                      const char **inline_val)
{
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t klen = eq ? (size_t)(eq - name) : strlen(name);

    *inline_val = eq ? eq + 1 : NULL;
    return cfg_find(p, name, klen);
}

/* One argument at argv[*i] (and its value after it). */
static int cfg_load_arg(struct cfg_ctx *c, int argc, char **argv, int *i)
{
    const char *arg = argv[*i], *val;
    const struct cfg_opt *o;
    char why[256];

    if (strncmp(arg, "--", 2))
        return cfg_error(c, "unexpected argument '%s' (see --help)", arg);
    o = cfg_flag(c->p, arg, &val);
    if (!strncmp(arg, "--config", 8) && (arg[8] == '\0' || arg[8] == '=')) {
        *i += val ? 0 : 1; /* read before the defaults were overridden */
        return 0;
    }
    if (!strcmp(arg, "--check-config"))
        return 0;
    if (!o)
        return cfg_error(c, "unknown option '%s' (see --help)", arg);
    if (!val && o->type == CFG_BOOL)
        val = "yes";
    if (!val && *i + 1 < argc)
        val = argv[++*i];
    if (!val)
        return cfg_error(c, "--%s needs a value", o->key);
    if (cfg_set_src(c, o, val, why, sizeof(why)))
        return cfg_error(c, "--%s: %s", o->key, why);
    return 0;
}

/* Stops at the first error, unless checking. */
static int cfg_load_argv(struct cfg_ctx *c, int argc, char **argv)
{
    int r = 0;

    c->cli = true;
    for (int i = 1; i < argc; i++) {
        if (cfg_load_arg(c, argc, argv, &i)) {
            r = -EINVAL;
            if (!c->check)
                break;
        }
    }
    return r;
}

/* Finds --config FILE / --config=FILE, --help, --version, --check-config. */
static int cfg_scan_special(const struct cfg_prog *p, int argc, char **argv, const char **config,
                            bool *check)
{
    for (int i = 1; i < argc; i++)
        *check = *check || !strcmp(argv[i], "--check-config");
    for (int i = 1; i < argc; i++) {
        if (*check &&
            (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "--version")))
            return -ENOTSUP; /* "OK" would say a check ran */
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cfg_usage(p, stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("%s %s\n", p->name, p->version);
            return 1;
        }
        if (!strncmp(argv[i], "--config=", 9))
            *config = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            *config = argv[++i];
        else if (!strcmp(argv[i], "--config"))
            return -EINVAL;
    }
    return 0;
}

/* The end of --check-config: the daemon's hook, then the verdict. */
static int cfg_check_finish(struct cfg_ctx *c)
{
    struct cfg_check chk = {.c = c};

    if (c->p->check)
        c->p->check(c->obj, &chk);
    if (c->errors) {
        snprintf(c->err, c->errlen, "%u problem%s in the configuration", c->errors,
                 c->errors == 1 ? "" : "s");
        return -EINVAL;
    }
    printf("%s: configuration OK\n", c->p->name);
    fflush(stdout);
    return 1;
}

int cfg_load(const struct cfg_prog *p, void *obj, int argc, char **argv, char *err, size_t errlen)
{
    struct cfg_ctx c = {.p = p, .obj = obj, .err = err, .errlen = errlen};
    const char *config = NULL;
    int r;

    cfg_defaults(&c);
    r = cfg_scan_special(p, argc, argv, &config, &c.check);
    if (r < 0)
        snprintf(err, errlen, "%s",
                 r == -ENOTSUP ? "--check-config checks a configuration: drop --help and --version"
                               : "--config needs a file name");
    r = r == -ENOTSUP ? -EINVAL : r;
    if (r)
        goto out;
    if (config)
        r = cfg_load_file(&c, config);
    if (!r || c.check)
        r = cfg_load_argv(&c, argc, argv) ? -EINVAL : r;
    if (c.check)
        r = cfg_check_finish(&c);
out:
    cfg_ctx_done(&c);
    return r;
}

void cfg_done(const struct cfg_prog *p, void *obj)
{
    for (const struct cfg_opt *o = p->opts; o->key; o++) {
        void *f = cfg_field(obj, o);

        if (o->type == CFG_STR) {
            free(*(char **)f);
            *(char **)f = NULL;
        } else if (o->type == CFG_LIST) {
            cfg_list_clear(f);
        }
    }
}

static void cfg_usage_opt(const struct cfg_opt *o, FILE *f)
{
    char left[64];

    if (o->type == CFG_BOOL)
        snprintf(left, sizeof(left), "--%s", o->key);
    else
        snprintf(left, sizeof(left), "--%s %s", o->key, o->metavar ? o->metavar : "VALUE");
    fprintf(f, "  %-28s %s", left, o->help);
    if (o->type == CFG_ENUM) {
        fprintf(f, " (");
        for (int i = 0; o->names[i]; i++)
            fprintf(f, "%s%s", i ? "|" : "", o->names[i]);
        fprintf(f, ")");
    }
    if (o->type == CFG_LIST)
        fprintf(f, " (repeatable)");
    if (o->def && *o->def)
        fprintf(f, " [default: %s]", o->def);
    fputc('\n', f);
}

void cfg_usage(const struct cfg_prog *p, FILE *f)
{
    fprintf(f, "Usage: %s [--config FILE] [OPTIONS]\n%s\n\nOptions:\n", p->name, p->summary);
    fprintf(f, "  %-28s %s\n", "--config FILE",
            "read `key = value` lines first; flags override them");
    fprintf(f, "  %-28s %s\n", "--check-config",
            "check the file and flags, print every problem or 'configuration OK', exit 2 or 0");
    for (const struct cfg_opt *o = p->opts; o->key; o++)
        cfg_usage_opt(o, f);
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--help", "show this text and exit", "--version",
            "show the version and exit");
}

/* ---- cfg_dump: each option's effective value and where it came from ---- */

struct cfg_dump_ctx {
    const struct cfg_prog *p;
    bool in_file[CFG_MAX_OPTS], in_argv[CFG_MAX_OPTS];
};

static int cfg_dump_ini(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_dump_ctx *d = user;
    const struct cfg_opt *o = cfg_find(d->p, name, strlen(name));

    if (o && (size_t)(o - d->p->opts) < CFG_MAX_OPTS)
        d->in_file[o - d->p->opts] = true;
    return 1;
}

/* The value of a non-list option as text: buf, or a string of obj's. */
static const char *cfg_dump_text(const struct cfg_opt *o, const void *f, char *buf, size_t len)
{
    int i;

    switch (o->type) {
    case CFG_STR:
        return *(char *const *)f ? *(char *const *)f : "";
    case CFG_INT:
        snprintf(buf, len, "%lld", *(const long long *)f);
        return buf;
    case CFG_DOUBLE:
        snprintf(buf, len, "%.15g", *(const double *)f);
        return buf;
    case CFG_BOOL:
        return *(const bool *)f ? "yes" : "no";
    case CFG_ENUM:
        for (i = 0; o->names[i] && i < *(const int *)f; i++)
            ;
        return o->names[i] ? o->names[i] : "";
    default:
        return "";
    }
}

int cfg_dump(const struct cfg_prog *p, const void *obj, int argc, char *const *argv, cfg_dump_fn fn,
             void *arg, char *err, size_t errlen)
{
    struct cfg_dump_ctx d = {.p = p};
    const char *config = NULL;
    char buf[64];
    FILE *f;

    /* The walk of cfg_load_argv, noting keys instead of storing values. */
    for (int i = 1; i < argc; i++) {
        const struct cfg_opt *o;
        const char *val;

        if (strncmp(argv[i], "--", 2))
            continue;
        o = cfg_flag(p, argv[i], &val);
        if (!strncmp(argv[i], "--config", 8) && (argv[i][8] == '\0' || argv[i][8] == '=')) {
            config = val ? val : i + 1 < argc ? argv[++i] : NULL;
            continue;
        }
        if (!o || (size_t)(o - p->opts) >= CFG_MAX_OPTS)
            continue;
        d.in_argv[o - p->opts] = true;
        i += !val && o->type != CFG_BOOL;
    }
    if (config) {
        f = fopen(config, "r");
        if (!f) {
            int e = errno;

            snprintf(err, errlen, "%s: %s", config, strerror(e));
            return -e;
        }
        ini_parse_file(f, cfg_dump_ini, &d); /* it loaded once: only the keys matter */
        fclose(f);
    }
    for (const struct cfg_opt *o = p->opts; o->key; o++) {
        size_t k = (size_t)(o - p->opts);
        const void *fp = (const char *)obj + o->off;
        const char *src = "default", *one;

        if (k < CFG_MAX_OPTS && d.in_argv[k])
            src = "flag";
        else if (k < CFG_MAX_OPTS && d.in_file[k])
            src = "file";
        if (o->type == CFG_LIST) {
            const struct cfg_list *l = fp;

            fn(arg, o, src, (const char *const *)l->v, l->n);
            continue;
        }
        one = cfg_dump_text(o, fp, buf, sizeof(buf));
        fn(arg, o, src, &one, 1);
    }
    return 0;
}
