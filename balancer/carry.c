/* carry.c - admin drains and weight overrides across a reload (carry.h). */
#include "carry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "node.h"
#include "xalloc.h"

struct lb_carry_entry {
    char name[PROTO_NAME_MAX + 1];
    bool drain, done;
    int override; /* LB_OVERRIDE_NONE: none */
};

struct lb_carry {
    size_t n;
    struct lb_carry_entry e[];
};

size_t lb_carry_export(const struct lb_nodes *ns)
{
    size_t cap = 256, len = 0, named = 0;
    char *s = xmalloc(cap);

    s[0] = '\0';
    for (size_t i = 0; i < lb_nodes_count(ns); i++) {
        const struct lb_node *nd = lb_nodes_at(ns, i);
        char one[PROTO_NAME_MAX + 32];
        int k;

        if (!nd->drain && nd->override == LB_OVERRIDE_NONE)
            continue;
        k = snprintf(one, sizeof(one), "%s%s%s", len ? "," : "", nd->name, nd->drain ? "/d" : "");
        if (nd->override != LB_OVERRIDE_NONE)
            k += snprintf(one + k, sizeof(one) - (size_t)k, "/w%d", nd->override);
        while (len + (size_t)k + 1 > cap)
            s = xrealloc(s, cap *= 2);
        memcpy(s + len, one, (size_t)k + 1);
        len += (size_t)k;
        named++;
    }
    if (named)
        setenv(LB_ENV_RUNTIME, s, 1);
    else
        unsetenv(LB_ENV_RUNTIME);
    free(s);
    return named;
}

/* One "NAME/d/wN" entry into e; false when it is malformed. */
static bool lb_carry_parse(const char *p, size_t len, struct lb_carry_entry *e)
{
    const char *slash = memchr(p, '/', len), *end = p + len;
    size_t nlen = slash ? (size_t)(slash - p) : len;

    if (!slash || nlen == 0 || nlen > PROTO_NAME_MAX)
        return false;
    memcpy(e->name, p, nlen);
    e->name[nlen] = '\0';
    e->drain = e->done = false;
    e->override = LB_OVERRIDE_NONE;
    for (p = slash; p < end && *p == '/';) {
        char *stop;
        long w;

        p++;
        if (p < end && *p == 'd') {
            e->drain = true;
            p++;
        } else if (p < end && *p == 'w') {
            errno = 0;
            w = strtol(p + 1, &stop, 10);
            if (stop == p + 1 || stop > end || errno || w < 0 || w > LB_OVERRIDE_MAX)
                return false;
            e->override = (int)w;
            p = stop;
        } else {
            return false;
        }
    }
    return p == end && (e->drain || e->override != LB_OVERRIDE_NONE);
}

struct lb_carry *lb_carry_import(void)
{
    const char *s = getenv(LB_ENV_RUNTIME);
    struct lb_carry *c;
    size_t n = 1;

    if (!s || !*s) {
        unsetenv(LB_ENV_RUNTIME);
        return NULL;
    }
    for (const char *p = s; *p; p++)
        n += *p == ',';
    c = xcalloc(1, sizeof(*c) + n * sizeof(c->e[0]));
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        if (lb_carry_parse(p, len, &c->e[c->n]))
            c->n++;
        else
            log_warn("reload: %s: '%.*s' is not NAME/d/wN: skipped", LB_ENV_RUNTIME, (int)len, p);
        if (!comma)
            break;
        p = comma + 1;
    }
    unsetenv(LB_ENV_RUNTIME); /* this process's own reloads set it afresh */
    if (c->n == 0) {
        free(c);
        return NULL;
    }
    return c;
}

void lb_carry_apply(struct lb_carry *c, struct lb_nodes *ns, struct mon *mon, uint64_t now_ms)
{
    for (size_t i = 0; c && i < c->n; i++) {
        struct lb_carry_entry *e = &c->e[i];

        if (e->done || !lb_nodes_find(ns, e->name))
            continue;
        e->done = true;
        if (e->drain) {
            lb_nodes_set_drain(ns, e->name, true, now_ms);
            if (mon) /* -ENOENT for a static node: the registry's drain holds it */
                (void)mon_set_drain(mon, e->name, true);
        }
        if (e->override != LB_OVERRIDE_NONE)
            lb_nodes_set_override(ns, e->name, e->override, now_ms);
        if (e->override != LB_OVERRIDE_NONE)
            log_info("reload: node %s: %sweight override %d carried over", e->name,
                     e->drain ? "drain and " : "", e->override);
        else
            log_info("reload: node %s: drain carried over", e->name);
    }
}

void lb_carry_free(struct lb_carry *c)
{
    free(c);
}
