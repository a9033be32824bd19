/* cachecontrol.c - Cache-Control parsing (RFC 9111 §5.2, RFC 5861) and
 * delta-seconds (§1.2.2). Contracts in cachecontrol.h.
 *
 * Design notes: directives are looked up in one table that says, for each,
 * what kind it is, which field of struct c9_cc it sets and which value a
 * repeated or malformed one gets (the value that reuses least). Members
 * come from the c9_list iterator, so commas inside quoted strings and
 * repeated lines are handled once, in rfc9111.c.
 */
#include "cachecontrol.h"

#include <errno.h>
#include <string.h>

#include "rfc9111.h"

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* (s, n) equals the NUL-terminated lit, ASCII case-insensitively. */
static bool ieq(const char *s, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (lit[i] == '\0' || lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
            return false;
    }
    return lit[i] == '\0';
}

int c9_parse_delta(const char *s, size_t n, bool quoted, int64_t *out)
{
    int64_t v = 0;
    size_t i;

    if (n == 0)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (quoted && c == '\\' && i + 1 < n)
            c = s[++i];
        if (!is_digit(c))
            return -EINVAL;
        if (v < C9_DELTA_MAX)
            v = v * 10 + (c - '0');
        if (v > C9_DELTA_MAX)
            v = C9_DELTA_MAX;
    }
    *out = v;
    return 0;
}

/* ---- Cache-Control (RFC 9111 §5.2) ---------------------------------------- */

enum cc_kind {
    CC_FLAG,      /* restrictive flag: counts even with an argument */
    CC_FLAG_LIST, /* no-cache, private: an optional field list, same meaning */
    CC_PUBLIC,    /* permissive flag: counts only bare */
    CC_DELTA,     /* "=" delta-seconds required */
    CC_DELTA_OPT, /* max-stale: delta-seconds optional */
};

struct cc_directive {
    const char *name;
    enum cc_kind kind;
    size_t off;    /* of the bool or int64_t field in struct c9_cc */
    unsigned bit;  /* enum c9_cc_bit, for deltas and public */
    int64_t worst; /* value of a repeated or malformed delta: reuses least */
};

#define CC_OFF(f) offsetof(struct c9_cc, f)

static const struct cc_directive cc_table[] = {
    {"no-store", CC_FLAG, CC_OFF(no_store), 0, 0},
    {"no-cache", CC_FLAG_LIST, CC_OFF(no_cache), 0, 0},
    {"private", CC_FLAG_LIST, CC_OFF(is_private), 0, 0},
    {"public", CC_PUBLIC, CC_OFF(is_public), C9_CC_PUBLIC, 0},
    {"must-revalidate", CC_FLAG, CC_OFF(must_revalidate), C9_CC_MUST_REVALIDATE, 0},
    {"proxy-revalidate", CC_FLAG, CC_OFF(proxy_revalidate), 0, 0},
    {"no-transform", CC_FLAG, CC_OFF(no_transform), 0, 0},
    {"must-understand", CC_FLAG, CC_OFF(must_understand), 0, 0},
    {"only-if-cached", CC_FLAG, CC_OFF(only_if_cached), 0, 0},
    {"max-age", CC_DELTA, CC_OFF(max_age), C9_CC_MAX_AGE, 0},
    {"s-maxage", CC_DELTA, CC_OFF(s_maxage), C9_CC_S_MAXAGE, 0},
    {"stale-while-revalidate", CC_DELTA, CC_OFF(stale_while_revalidate), C9_CC_SWR, 0},
    {"stale-if-error", CC_DELTA, CC_OFF(stale_if_error), C9_CC_SIE, 0},
    {"max-stale", CC_DELTA_OPT, CC_OFF(max_stale), C9_CC_MAX_STALE, 0},
    {"min-fresh", CC_DELTA, CC_OFF(min_fresh), C9_CC_MIN_FRESH, C9_DELTA_MAX},
};

/* One parsed member: name, optional argument, and whether it was clean. */
struct cc_member {
    const char *name;
    size_t name_len;
    const char *arg; /* NULL: no "=" */
    size_t arg_len;
    bool quoted;
    bool bad;
};

/* cache-directive = token [ "=" ( token / quoted-string ) ]; BWS tolerated
 * around "=". m is a trimmed list member. */
static void cc_split(const char *m, size_t len, struct cc_member *out)
{
    size_t i = 0;

    memset(out, 0, sizeof(*out));
    while (i < len && c9_is_tchar(m[i]))
        i++;
    out->name = m;
    out->name_len = i;
    while (i < len && is_ows(m[i]))
        i++;
    if (i < len && m[i] == '=') {
        for (i++; i < len && is_ows(m[i]); i++)
            ;
        out->arg = m + i;
        if (i < len && m[i] == '"') {
            out->quoted = true;
            out->arg++;
            for (i++; i < len && m[i] != '"'; i++) {
                if (m[i] == '\\')
                    i++;
            }
            if (i >= len) {
                out->bad = true; /* unterminated */
                out->arg_len = len - (size_t)(out->arg - m);
                return;
            }
            out->arg_len = i - (size_t)(out->arg - m);
            i++;
        } else {
            while (i < len && c9_is_tchar(m[i]))
                i++;
            out->arg_len = i - (size_t)(out->arg - m);
            out->bad = out->arg_len == 0;
        }
        while (i < len && is_ows(m[i]))
            i++;
    }
    if (i != len)
        out->bad = true;
}

static void cc_apply(struct c9_cc *cc, unsigned *seen, const struct cc_member *m)
{
    const struct cc_directive *d = NULL;
    int64_t *delta;
    int64_t v = 0;
    size_t k;
    bool ok;

    for (k = 0; k < sizeof(cc_table) / sizeof(cc_table[0]); k++) {
        if (ieq(m->name, m->name_len, cc_table[k].name)) {
            d = &cc_table[k];
            break;
        }
    }
    if (d == NULL)
        return; /* an extension we do not know: ignored (§5.2.3) */
    switch (d->kind) {
    case CC_FLAG:
    case CC_FLAG_LIST:
        *(bool *)((char *)cc + d->off) = true;
        if (m->bad || (m->arg != NULL && d->kind == CC_FLAG))
            cc->malformed |= C9_CC_FLAG | d->bit;
        return;
    case CC_PUBLIC:
        if (m->bad || m->arg != NULL)
            cc->malformed |= d->bit;
        else
            cc->is_public = true;
        return;
    case CC_DELTA:
    case CC_DELTA_OPT:
        break;
    }
    delta = (int64_t *)((char *)cc + d->off);
    if (m->arg == NULL)
        ok = !m->bad && d->kind == CC_DELTA_OPT;
    else
        ok = !m->bad && c9_parse_delta(m->arg, m->arg_len, m->quoted, &v) == 0;
    if (m->arg == NULL && ok)
        v = C9_DELTA_MAX; /* bare max-stale: any staleness */
    if (!ok || (*seen & d->bit)) {
        *delta = d->worst;
        cc->malformed |= d->bit;
    } else {
        *delta = v;
    }
    *seen |= d->bit;
}

void c9_parse_cc(const struct c9_hdr *h, size_t n, struct c9_cc *out)
{
    struct c9_list it;
    struct cc_member m;
    const char *e;
    size_t len;
    unsigned seen = 0;

    memset(out, 0, sizeof(*out));
    out->max_age = C9_ABSENT;
    out->s_maxage = C9_ABSENT;
    out->stale_while_revalidate = C9_ABSENT;
    out->stale_if_error = C9_ABSENT;
    out->max_stale = C9_ABSENT;
    out->min_fresh = C9_ABSENT;

    c9_list_init(&it, h, n, "cache-control");
    while (c9_list_next(&it, &e, &len)) {
        cc_split(e, len, &m);
        if (m.name_len > 0)
            cc_apply(out, &seen, &m);
    }
    if (out->malformed & C9_CC_PUBLIC)
        out->is_public = false; /* one bad "public" vetoes a good one */
    if (c9_hdr_get(h, n, "cache-control") != NULL)
        return;
    c9_list_init(&it, h, n, "pragma");
    while (c9_list_next(&it, &e, &len)) {
        if (ieq(e, len, "no-cache"))
            out->no_cache = true;
    }
}
