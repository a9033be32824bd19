/* cfg.c - table-driven configuration from a file (libinih) and argv. */
#include "cfg.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "xalloc.h"

#define CFG_MAX_OPTS 64

/* One load in progress: which lists the command line has started. */
struct cfg_ctx {
    const struct cfg_prog *p;
    void *obj;
    bool list_from_cli[CFG_MAX_OPTS];
    bool cli;
    char *err;
    size_t errlen;
};

static void *cfg_field(void *obj, const struct cfg_opt *o)
{
    return (char *)obj + o->off;
}

static const struct cfg_opt *cfg_find(const struct cfg_prog *p, const char *key, size_t klen)
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

static void cfg_defaults(struct cfg_ctx *c)
{
    char why[128];

    for (const struct cfg_opt *o = c->p->opts; o->key; o++) {
        /* A default that does not parse is a programming error. */
        if (o->def && cfg_set(c, o, o->def, why, sizeof(why))) {
            fprintf(stderr, "%s: bad built-in default for %s: %s\n", c->p->name, o->key, why);
            abort();
        }
    }
}

/* State for one ini_parse call. libinih reports the line of the first
 * handler error as its return value; the handler keeps the first reason. */
struct cfg_file {
    struct cfg_ctx *c;
    char why[256];
    char key[64];
};

static int cfg_ini_fail(struct cfg_file *cf, const char *name, const char *why)
{
    if (!cf->why[0]) {
        snprintf(cf->key, sizeof(cf->key), "%s", name);
        snprintf(cf->why, sizeof(cf->why), "%s", why);
    }
    return 0;
}

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_file *cf = user;
    const struct cfg_opt *o = cfg_find(cf->c->p, name, strlen(name));
    char why[256];

    if (section && *section)
        return cfg_ini_fail(cf, name, "sections ([...]) are not used");
    if (!o || !strcmp(name, "config"))
        return cfg_ini_fail(cf, name, "unknown key");
    if (!value)
        return cfg_ini_fail(cf, name, "needs '= value'");
    if (cfg_set(cf->c, o, value, why, sizeof(why)))
        return cfg_ini_fail(cf, name, why);
    return 1;
}

static int cfg_load_file(struct cfg_ctx *c, const char *path)
{
    struct cfg_file cf = {.c = c};
    FILE *f = fopen(path, "r");
    int r;

    if (!f) {
        snprintf(c->err, c->errlen, "%s: %s", path, strerror(errno));
        return -EINVAL;
    }
    r = ini_parse_file(f, cfg_ini_handler, &cf);
    fclose(f);
    if (r == 0)
        return 0;
    if (r < 0)
        snprintf(c->err, c->errlen, "%s: out of memory while parsing", path);
    else if (cf.why[0])
        snprintf(c->err, c->errlen, "%s:%d: %s: %s", path, r, cf.key, cf.why);
    else
        snprintf(c->err, c->errlen, "%s:%d: cannot parse this line", path, r);
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

static int cfg_load_argv(struct cfg_ctx *c, int argc, char **argv)
{
    char why[256];

    c->cli = true;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val;
        const struct cfg_opt *o;

        if (strncmp(arg, "--", 2)) {
            snprintf(c->err, c->errlen, "unexpected argument '%s' (see --help)", arg);
            return -EINVAL;
        }
        o = cfg_flag(c->p, arg, &val);
        if (!strncmp(arg, "--config", 8) && (arg[8] == '\0' || arg[8] == '=')) {
            i += val ? 0 : 1; /* read before the defaults were overridden */
            continue;
        }
        if (!o) {
            snprintf(c->err, c->errlen, "unknown option '%s' (see --help)", arg);
            return -EINVAL;
        }
        if (!val && o->type == CFG_BOOL)
            val = "yes";
        if (!val && i + 1 < argc)
            val = argv[++i];
        if (!val) {
            snprintf(c->err, c->errlen, "--%s needs a value", o->key);
            return -EINVAL;
        }
        if (cfg_set(c, o, val, why, sizeof(why))) {
            snprintf(c->err, c->errlen, "--%s: %s", o->key, why);
            return -EINVAL;
        }
    }
    return 0;
}

/* Finds --config FILE / --config=FILE, --help, --version. */
static int cfg_scan_special(const struct cfg_prog *p, int argc, char **argv, const char **config)
{
    for (int i = 1; i < argc; i++) {
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

int cfg_load(const struct cfg_prog *p, void *obj, int argc, char **argv, char *err, size_t errlen)
{
    struct cfg_ctx c = {.p = p, .obj = obj, .err = err, .errlen = errlen};
    const char *config = NULL;
    int r;

    cfg_defaults(&c);
    r = cfg_scan_special(p, argc, argv, &config);
    if (r < 0)
        snprintf(err, errlen, "--config needs a file name");
    if (r)
        return r;
    if (config && (r = cfg_load_file(&c, config)))
        return r;
    return cfg_load_argv(&c, argc, argv);
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
    for (const struct cfg_opt *o = p->opts; o->key; o++)
        cfg_usage_opt(o, f);
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--help", "show this text and exit", "--version",
            "show the version and exit");
}
