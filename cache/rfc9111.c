/* rfc9111.c - the HTTP caching rules of RFC 9111 for a shared cache.
 *
 * Design notes (the rules and their sections are in docs/cache-rules.md):
 *
 * - Everything reads (pointer, length) pairs and never looks past a length:
 *   header values come from a peer and carry no NUL. Loops are bounded by
 *   the header count and value lengths the caller's parser already capped;
 *   the one table we fill (Vary names) has a fixed size, C9_VARY_MAX_FIELDS.
 * - Numbers saturate instead of overflowing: delta-seconds stop at
 *   C9_DELTA_MAX (§1.2.2), differences of times are clamped to
 *   [0, C9_DELTA_MAX] before anything is added to them.
 * - Where a header is duplicated or malformed the RFC lets a cache pick;
 *   we always pick the reading that reuses a stored response least.
 */
#include "rfc9111.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* ---- characters and small helpers ---------------------------------------- */

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

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(char ch)
{
    unsigned char c = (unsigned char)ch;

    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
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

/* (a, an) equals (b, bn), ASCII case-insensitively. */
static bool ieq_n(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;

    if (an != bn)
        return false;
    for (i = 0; i < an; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    }
    return true;
}

/* Case-insensitive order of two names: <0, 0, >0. */
static int icmp_n(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;

    for (i = 0; i < an && i < bn; i++) {
        int d = lower((unsigned char)a[i]) - lower((unsigned char)b[i]);
        if (d != 0)
            return d;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static bool hdr_named(const struct c9_hdr *h, const char *name, size_t name_len)
{
    return h->name != NULL && ieq_n(h->name, h->name_len, name, name_len);
}

/* v clamped to [0, C9_DELTA_MAX]. */
static int64_t clamp_delta(int64_t v)
{
    return v < 0 ? 0 : v > C9_DELTA_MAX ? C9_DELTA_MAX : v;
}

/* max(0, a - b), saturated at C9_DELTA_MAX, for any int64 a and b. */
static int64_t pos_diff(int64_t a, int64_t b)
{
    if (a <= b)
        return 0;
    if (b < 0 && a > INT64_MAX + b)
        return C9_DELTA_MAX;
    return clamp_delta(a - b);
}

/* a + b for a, b in [0, C9_DELTA_MAX], saturated. */
static int64_t sat_add(int64_t a, int64_t b)
{
    return clamp_delta(clamp_delta(a) + clamp_delta(b));
}

/* 1*DIGIT, saturating at C9_DELTA_MAX (§1.2.2). In a quoted string a
 * quoted-pair stands for its second character. */
static int parse_delta(const char *s, size_t n, bool quoted, int64_t *out)
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

/* ---- header lookups ------------------------------------------------------- */

const struct c9_hdr *c9_hdr_get(const struct c9_hdr *h, size_t n, const char *name)
{
    size_t len = strlen(name);
    size_t i;

    for (i = 0; i < n; i++) {
        if (hdr_named(&h[i], name, len))
            return &h[i];
    }
    return NULL;
}

size_t c9_hdr_count(const struct c9_hdr *h, size_t n, const char *name)
{
    size_t len = strlen(name);
    size_t i, count = 0;

    for (i = 0; i < n; i++)
        count += hdr_named(&h[i], name, len);
    return count;
}

static void list_init_n(struct c9_list *it, const struct c9_hdr *h, size_t n, const char *name,
                        size_t name_len)
{
    it->h = h;
    it->n = n;
    it->name = name;
    it->name_len = name_len;
    it->i = 0;
    it->pos = 0;
}

void c9_list_init(struct c9_list *it, const struct c9_hdr *h, size_t n, const char *name)
{
    list_init_n(it, h, n, name, strlen(name));
}

/* Offset of the comma ending the member that starts at `i`, or n. */
static size_t member_end(const char *s, size_t n, size_t i)
{
    bool quoted = false;

    for (; i < n; i++) {
        if (quoted && s[i] == '\\')
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && s[i] == ',')
            return i;
    }
    return n;
}

bool c9_list_next(struct c9_list *it, const char **elem, size_t *len)
{
    for (; it->i < it->n; it->i++, it->pos = 0) {
        const struct c9_hdr *h = &it->h[it->i];

        if (h->value == NULL || !hdr_named(h, it->name, it->name_len))
            continue;
        while (it->pos < h->value_len) {
            size_t start = it->pos;
            size_t end = member_end(h->value, h->value_len, start);

            it->pos = end < h->value_len ? end + 1 : end;
            while (start < end && is_ows(h->value[start]))
                start++;
            while (end > start && is_ows(h->value[end - 1]))
                end--;
            if (start < end) {
                *elem = h->value + start;
                *len = end - start;
                return true;
            }
        }
    }
    return false;
}

/* ---- dates (RFC 9110 §5.6.7) ---------------------------------------------- */

static const char *const wkday[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const weekday[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};
static const char *const month_name[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* A cursor over (s, n): every step checks what is left. */
struct cur {
    const char *s;
    size_t n;
    size_t i;
};

static bool lit(struct cur *c, const char *l)
{
    size_t k = strlen(l);

    if (c->n - c->i < k || memcmp(c->s + c->i, l, k) != 0)
        return false;
    c->i += k;
    return true;
}

/* Index of the table entry at the cursor (consumed), or -1. */
static int one_of(struct cur *c, const char *const *tab, int count)
{
    int k;

    for (k = 0; k < count; k++) {
        if (lit(c, tab[k]))
            return k;
    }
    return -1;
}

/* Exactly `count` digits. */
static bool digits(struct cur *c, int count, int *out)
{
    int v = 0;

    if (c->n - c->i < (size_t)count)
        return false;
    for (; count > 0; count--, c->i++) {
        if (!is_digit(c->s[c->i]))
            return false;
        v = v * 10 + (c->s[c->i] - '0');
    }
    *out = v;
    return true;
}

struct tm_parts {
    int year, mon, day, hour, min, sec; /* mon 0-11 */
};

/* time-of-day = hour ":" minute ":" second */
static bool time_of_day(struct cur *c, struct tm_parts *t)
{
    return digits(c, 2, &t->hour) && lit(c, ":") && digits(c, 2, &t->min) && lit(c, ":") &&
           digits(c, 2, &t->sec) && t->hour <= 23 && t->min <= 59 && t->sec <= 60;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int mon)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return mon == 1 && is_leap(y) ? 29 : dim[mon];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); m is 1-12. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The Gregorian year of an epoch time, clamped to [0, 9999]. */
static int64_t year_of(int64_t t)
{
    int64_t z, era, doe, yoe, y, doy, mp;

    if (t < -62167219200LL) /* 0000-01-01 */
        return 0;
    if (t >= 253402300800LL) /* 10000-01-01 */
        return 9999;
    z = t / 86400 - (t % 86400 < 0) + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    return mp >= 10 ? y + 1 : y;
}

/* §5.6.7: a two-digit year that "appears to be more than 50 years in the
 * future" is the most recent past year with those digits: the result lies
 * in [Y - 49, Y + 50] for now's year Y. */
static int64_t pivot_year(int yy, int64_t now)
{
    int64_t base = year_of(now) - 49;

    return base + (((yy - base) % 100) + 100) % 100;
}

static int parse_imf(struct cur *c, struct tm_parts *t)
{
    /* after "Sun," : SP 2DIGIT SP month SP 4DIGIT SP time SP "GMT" */
    if (!lit(c, " ") || !digits(c, 2, &t->day) || !lit(c, " "))
        return -EINVAL;
    if ((t->mon = one_of(c, month_name, 12)) < 0 || !lit(c, " ") || !digits(c, 4, &t->year))
        return -EINVAL;
    if (!lit(c, " ") || !time_of_day(c, t) || !lit(c, " GMT"))
        return -EINVAL;
    return 0;
}

static int parse_rfc850(struct cur *c, struct tm_parts *t, int64_t now)
{
    int yy;

    /* after "Sunday," : SP 2DIGIT "-" month "-" 2DIGIT SP time SP "GMT" */
    if (!lit(c, " ") || !digits(c, 2, &t->day) || !lit(c, "-"))
        return -EINVAL;
    if ((t->mon = one_of(c, month_name, 12)) < 0 || !lit(c, "-") || !digits(c, 2, &yy))
        return -EINVAL;
    if (!lit(c, " ") || !time_of_day(c, t) || !lit(c, " GMT"))
        return -EINVAL;
    t->year = (int)pivot_year(yy, now);
    return 0;
}

static int parse_asctime(struct cur *c, struct tm_parts *t)
{
    /* after "Sun " : month SP ( 2DIGIT / ( SP DIGIT ) ) SP time SP 4DIGIT */
    if ((t->mon = one_of(c, month_name, 12)) < 0 || !lit(c, " "))
        return -EINVAL;
    if (lit(c, " ")) {
        if (!digits(c, 1, &t->day))
            return -EINVAL;
    } else if (!digits(c, 2, &t->day)) {
        return -EINVAL;
    }
    if (!lit(c, " ") || !time_of_day(c, t) || !lit(c, " ") || !digits(c, 4, &t->year))
        return -EINVAL;
    return 0;
}

int c9_parse_http_date(const char *s, size_t n, int64_t now, int64_t *out_epoch)
{
    struct cur c = {s, n, 0};
    struct tm_parts t = {0};
    int rc;

    if (s == NULL)
        return -EINVAL;
    while (c.n > 0 && is_ows(s[c.n - 1]))
        c.n--;
    while (c.i < c.n && is_ows(s[c.i]))
        c.i++;
    if (one_of(&c, wkday, 7) >= 0) {
        if (lit(&c, ","))
            rc = parse_imf(&c, &t);
        else if (lit(&c, " "))
            rc = parse_asctime(&c, &t);
        else
            rc = -EINVAL;
        /* "Monday" also starts with "Mon": retry as RFC 850 below */
        if (rc < 0) {
            c.i = 0;
            while (c.i < c.n && is_ows(s[c.i]))
                c.i++;
        }
    } else {
        rc = -EINVAL;
    }
    if (rc < 0) {
        if (one_of(&c, weekday, 7) < 0 || !lit(&c, ","))
            return -EINVAL;
        rc = parse_rfc850(&c, &t, now);
        if (rc < 0)
            return rc;
    }
    if (c.i != c.n || t.day < 1 || t.day > days_in_month(t.year, t.mon))
        return -EINVAL;
    *out_epoch =
        days_from_civil(t.year, t.mon + 1, t.day) * 86400 + t.hour * 3600 + t.min * 60 + t.sec;
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
    while (i < len && is_tchar(m[i]))
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
            while (i < len && is_tchar(m[i]))
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
        ok = !m->bad && parse_delta(m->arg, m->arg_len, m->quoted, &v) == 0;
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

/* ---- Vary (RFC 9111 §4.1) ------------------------------------------------- */

struct vary_name {
    const char *p;
    size_t len;
};

/* The response's Vary names, deduplicated and sorted case-insensitively. */
static enum c9_store_verdict vary_names(const struct c9_hdr *resp, size_t n,
                                        struct vary_name names[C9_VARY_MAX_FIELDS], size_t *count)
{
    struct c9_list it;
    const char *e;
    size_t len, i, k;

    *count = 0;
    c9_list_init(&it, resp, n, "vary");
    while (c9_list_next(&it, &e, &len)) {
        int cmp = 1;

        if (len == 1 && e[0] == '*')
            return C9_VARY_STAR;
        for (i = 0; i < len; i++) {
            if (!is_tchar(e[i]))
                return C9_VARY_INVALID;
        }
        for (k = 0; k < *count; k++) {
            cmp = icmp_n(e, len, names[k].p, names[k].len);
            if (cmp <= 0)
                break;
        }
        if (cmp == 0)
            continue; /* duplicate */
        if (*count == C9_VARY_MAX_FIELDS)
            return C9_VARY_LIMIT;
        memmove(&names[k + 1], &names[k], (*count - k) * sizeof(names[0]));
        names[k].p = e;
        names[k].len = len;
        (*count)++;
    }
    return C9_STORE_OK;
}

/* Output with a cap; one byte is kept for the NUL. */
struct key_out {
    char *p;
    size_t cap;
    size_t len;
    bool over;
};

static void put(struct key_out *o, char c)
{
    if (o->over || o->len + 1 >= o->cap || o->len >= INT_MAX) {
        o->over = true;
        return;
    }
    o->p[o->len++] = c;
}

/* A value byte: control bytes and '%' escaped so the key stays one line
 * per field and two different values never give the same key. */
static void put_value(struct key_out *o, char ch)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char c = (unsigned char)ch;

    if (c < 0x20 || c == 0x7f || c == '%') {
        put(o, '%');
        put(o, hex[c >> 4]);
        put(o, hex[c & 15]);
    } else {
        put(o, ch);
    }
}

/* The request's value of one field, as a normalized list (see header). */
static void put_request_value(struct key_out *o, const struct c9_hdr *req, size_t nreq,
                              const struct vary_name *name)
{
    struct c9_list it;
    const char *e;
    size_t len, i;
    bool first = true;

    list_init_n(&it, req, nreq, name->p, name->len);
    while (c9_list_next(&it, &e, &len)) {
        bool quoted = false;

        if (!first)
            put(o, ',');
        first = false;
        for (i = 0; i < len; i++) {
            if (!quoted && is_ows(e[i])) {
                while (i + 1 < len && is_ows(e[i + 1]))
                    i++;
                put(o, ' ');
                continue;
            }
            if (quoted && e[i] == '\\' && i + 1 < len) {
                put_value(o, e[i++]);
            } else if (e[i] == '"') {
                quoted = !quoted;
            }
            put_value(o, e[i]);
        }
    }
}

/* Common start of the two Vary writers: out emptied, names collected. */
static int vary_begin(const struct c9_hdr *resp, size_t nresp,
                      struct vary_name names[C9_VARY_MAX_FIELDS], size_t *count, char *out,
                      size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    switch (vary_names(resp, nresp, names, count)) {
    case C9_STORE_OK:
        return cap > 0 ? 0 : -E2BIG;
    case C9_VARY_LIMIT:
        return -E2BIG;
    default:
        return -EINVAL; /* "*" or a member that is not a field name */
    }
}

int c9_vary_key(const struct c9_hdr *resp, size_t nresp, const struct c9_hdr *req, size_t nreq,
                char *out, size_t cap)
{
    struct vary_name names[C9_VARY_MAX_FIELDS];
    struct key_out o = {out, cap, 0, false};
    size_t count, k, i;
    int rc;

    if ((rc = vary_begin(resp, nresp, names, &count, out, cap)) < 0)
        return rc;
    for (k = 0; k < count; k++) {
        bool present = false;

        for (i = 0; i < names[k].len; i++)
            put(&o, (char)lower((unsigned char)names[k].p[i]));
        for (i = 0; i < nreq && !present; i++)
            present = hdr_named(&req[i], names[k].p, names[k].len);
        if (present) {
            put(&o, ':');
            put_request_value(&o, req, nreq, &names[k]);
        }
        put(&o, '\n');
    }
    if (o.over) {
        out[0] = '\0';
        return -E2BIG;
    }
    out[o.len] = '\0';
    return (int)o.len;
}

int c9_vary_names(const struct c9_hdr *resp, size_t nresp, char *out, size_t cap)
{
    struct vary_name names[C9_VARY_MAX_FIELDS];
    struct key_out o = {out, cap, 0, false};
    size_t count, k, i;
    int rc;

    if ((rc = vary_begin(resp, nresp, names, &count, out, cap)) < 0)
        return rc;
    for (k = 0; k < count; k++) {
        if (k > 0)
            put(&o, ',');
        for (i = 0; i < names[k].len; i++)
            put(&o, (char)lower((unsigned char)names[k].p[i]));
    }
    if (o.over) {
        out[0] = '\0';
        return -E2BIG;
    }
    out[o.len] = '\0';
    return (int)o.len;
}

/* ---- storing (RFC 9111 §3) ------------------------------------------------ */

/* Final statuses whose caching requirements we implement: those of
 * RFC 9110 that can answer a GET, less 206 (no range combining, §3.3) and
 * 304 (it updates a stored response, §4.3.4; it is not stored itself).
 * `heuristic`: RFC 9110 §15.1 "heuristically cacheable by default" (the
 * list also names 206, which we do not understand). */
static const struct {
    short code;
    bool heuristic;
} statuses[] = {
    {200, true},  {203, true},  {204, true},  {300, true},  {301, true},  {302, false},
    {303, false}, {307, false}, {308, true},  {400, false}, {401, false}, {402, false},
    {403, false}, {404, true},  {405, true},  {406, false}, {407, false}, {408, false},
    {409, false}, {410, true},  {411, false}, {412, false}, {413, false}, {414, true},
    {415, false}, {416, false}, {417, false}, {421, false}, {422, false}, {426, false},
    {500, false}, {501, true},  {502, false}, {503, false}, {504, false}, {505, false},
};

/* Index in statuses[] or -1 when we do not understand the status. */
static int status_index(int s)
{
    int k;

    for (k = 0; k < (int)(sizeof(statuses) / sizeof(statuses[0])); k++) {
        if (statuses[k].code == s)
            return k;
    }
    return -1;
}

static bool s_maxage_valid(const struct c9_cc *cc)
{
    return cc->s_maxage != C9_ABSENT && !(cc->malformed & C9_CC_S_MAXAGE);
}

enum c9_store_verdict c9_storable(const char *method, int status, const struct c9_hdr *req,
                                  size_t nreq, const struct c9_hdr *resp, size_t nresp,
                                  bool *heuristic_ok)
{
    struct vary_name names[C9_VARY_MAX_FIELDS];
    struct c9_cc rq, rs;
    enum c9_store_verdict v;
    size_t count;
    int st;
    bool explicit_fresh, heuristic;

    if (heuristic_ok != NULL)
        *heuristic_ok = false;
    if (method == NULL || strcmp(method, "GET") != 0)
        return C9_METHOD;
    if ((st = status_index(status)) < 0)
        return C9_STATUS;
    c9_parse_cc(req, nreq, &rq);
    c9_parse_cc(resp, nresp, &rs);
    if (rq.no_store)
        return C9_REQ_NO_STORE;
    /* §5.2.2.3: must-understand with a status we understand overrides no-store */
    if (rs.no_store && !rs.must_understand)
        return C9_NO_STORE;
    if (rs.is_private)
        return C9_PRIVATE;
    /* §3.5; a permission only counts when it is well-formed */
    if (c9_hdr_get(req, nreq, "authorization") != NULL && !rs.is_public && !s_maxage_valid(&rs) &&
        !(rs.must_revalidate && !(rs.malformed & C9_CC_MUST_REVALIDATE)))
        return C9_AUTHORIZATION;
    v = vary_names(resp, nresp, names, &count);
    if (v != C9_STORE_OK)
        return v;
    if (c9_hdr_get(resp, nresp, "set-cookie") != NULL && !rs.is_public && !s_maxage_valid(&rs))
        return C9_SET_COOKIE;
    explicit_fresh = rs.s_maxage != C9_ABSENT || rs.max_age != C9_ABSENT ||
                     c9_hdr_get(resp, nresp, "expires") != NULL;
    heuristic = !explicit_fresh && (statuses[st].heuristic || rs.is_public);
    if (!explicit_fresh && !heuristic)
        return C9_NOT_CACHEABLE;
    if (heuristic_ok != NULL)
        *heuristic_ok = heuristic;
    return C9_STORE_OK;
}

const char *c9_verdict_name(enum c9_store_verdict v)
{
    static const char *const names[C9_STORE_VERDICT_MAX] = {
        [C9_STORE_OK] = "ok",
        [C9_METHOD] = "method",
        [C9_STATUS] = "status",
        [C9_REQ_NO_STORE] = "request-no-store",
        [C9_NO_STORE] = "no-store",
        [C9_PRIVATE] = "private",
        [C9_AUTHORIZATION] = "authorization",
        [C9_VARY_STAR] = "vary-star",
        [C9_VARY_INVALID] = "vary-invalid",
        [C9_VARY_LIMIT] = "vary-limit",
        [C9_SET_COOKIE] = "set-cookie",
        [C9_NOT_CACHEABLE] = "not-cacheable",
    };

    if ((unsigned)v >= C9_STORE_VERDICT_MAX)
        return "unknown";
    return names[v];
}

/* ---- freshness and age (RFC 9111 §4.2) ------------------------------------ */

int64_t c9_date_value(const struct c9_hdr *resp, size_t n, int64_t response_time)
{
    const struct c9_hdr *h = c9_hdr_get(resp, n, "date");
    int64_t t;

    if (h == NULL || c9_hdr_count(resp, n, "date") != 1 ||
        c9_parse_http_date(h->value, h->value_len, response_time, &t) < 0)
        return response_time;
    return t;
}

int64_t c9_age_value(const struct c9_hdr *resp, size_t n)
{
    struct c9_list it;
    const char *e;
    size_t len;
    int64_t v;

    c9_list_init(&it, resp, n, "age");
    if (!c9_list_next(&it, &e, &len) || parse_delta(e, len, false, &v) < 0)
        return 0;
    return v;
}

int64_t c9_freshness_lifetime(const struct c9_hdr *resp, size_t n, int64_t response_time,
                              int64_t default_ttl, bool heuristic_ok)
{
    const struct c9_hdr *h;
    struct c9_cc cc;
    int64_t expires;

    c9_parse_cc(resp, n, &cc);
    if (cc.s_maxage != C9_ABSENT)
        return cc.s_maxage;
    if (cc.max_age != C9_ABSENT)
        return cc.max_age;
    h = c9_hdr_get(resp, n, "expires");
    if (h != NULL) {
        /* §5.3: an invalid Expires (e.g. "0") is a time in the past; §4.2.1:
         * a repeated one may be taken as stale. */
        if (c9_hdr_count(resp, n, "expires") != 1 ||
            c9_parse_http_date(h->value, h->value_len, response_time, &expires) < 0)
            return 0;
        return pos_diff(expires, c9_date_value(resp, n, response_time));
    }
    return heuristic_ok ? clamp_delta(default_ttl) : 0;
}

int64_t c9_age_basis(int64_t date_value, int64_t age_value, int64_t request_time,
                     int64_t response_time)
{
    int64_t apparent_age = pos_diff(response_time, date_value);
    int64_t response_delay = pos_diff(response_time, request_time);
    int64_t corrected_age_value = sat_add(age_value, response_delay);

    return apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
}

int64_t c9_age_from_basis(int64_t basis, int64_t basis_time, int64_t now)
{
    return sat_add(basis, pos_diff(now, basis_time));
}

int64_t c9_current_age(int64_t date_value, int64_t age_value, int64_t request_time,
                       int64_t response_time, int64_t now)
{
    return c9_age_from_basis(c9_age_basis(date_value, age_value, request_time, response_time),
                             response_time, now);
}

/* ---- serving (RFC 9111 §4.2.4, §5.2, RFC 5861) ---------------------------- */

static bool within(int64_t staleness, int64_t window)
{
    return window != C9_ABSENT && staleness < window;
}

/* The request (or a no-cache response) wants the origin asked even if the
 * stored response is fresh. */
static bool must_ask(const struct c9_cc *rq, const struct c9_cc *rs, int64_t lifetime, int64_t age)
{
    if (rs->no_cache || rq->no_cache || rq->max_age == 0)
        return true;
    if (rq->max_age != C9_ABSENT && age > rq->max_age)
        return true;
    return rq->min_fresh != C9_ABSENT && lifetime - age < rq->min_fresh;
}

enum c9_serve c9_can_serve(const struct c9_cc *req_cc, const struct c9_cc *resp_cc,
                           int64_t lifetime, int64_t age, bool origin_error)
{
    struct c9_cc none;
    const struct c9_cc *rq = req_cc, *rs = resp_cc;
    int64_t staleness;
    bool no_stale;

    if (rq == NULL || rs == NULL) {
        c9_parse_cc(NULL, 0, &none);
        rq = rq != NULL ? rq : &none;
        rs = rs != NULL ? rs : &none;
    }
    lifetime = clamp_delta(lifetime);
    age = clamp_delta(age);
    staleness = age >= lifetime ? age - lifetime : -1;
    /* §4.2.4: these forbid a stale response; s-maxage implies
     * proxy-revalidate for a shared cache (§5.2.2.10). */
    no_stale = rs->no_cache || rs->must_revalidate || rs->proxy_revalidate ||
               rs->s_maxage != C9_ABSENT || rq->no_cache;
    if (origin_error) {
        if (staleness < 0 && !must_ask(rq, rs, lifetime, age))
            return C9_SERVE_FRESH; /* nothing needed the origin */
        if (!no_stale &&
            (within(staleness, rs->stale_if_error) || within(staleness, rq->stale_if_error)))
            return C9_SERVE_STALE_IF_ERROR;
        return C9_SERVE_MISS;
    }
    if (!must_ask(rq, rs, lifetime, age)) {
        if (staleness < 0)
            return C9_SERVE_FRESH;
        if (!no_stale && within(staleness, rs->stale_while_revalidate))
            return C9_SERVE_STALE_WHILE_REVALIDATE;
    }
    return rq->only_if_cached ? C9_SERVE_MISS : C9_SERVE_MUST_REVALIDATE;
}

const char *c9_serve_name(enum c9_serve s)
{
    static const char *const names[C9_SERVE_MAX] = {
        [C9_SERVE_FRESH] = "fresh",
        [C9_SERVE_STALE_WHILE_REVALIDATE] = "stale-while-revalidate",
        [C9_SERVE_STALE_IF_ERROR] = "stale-if-error",
        [C9_SERVE_MUST_REVALIDATE] = "must-revalidate",
        [C9_SERVE_MISS] = "miss",
    };

    if ((unsigned)s >= C9_SERVE_MAX)
        return "unknown";
    return names[s];
}

/* ---- conditional requests (RFC 9110 §13) ---------------------------------- */

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE at s[*i]; on success the
 * opaque-tag (quotes included) and *i past it. etagc is %x21 / %x23-7E /
 * obs-text: no backslash escapes, commas allowed. */
static bool parse_etag(const char *s, size_t n, size_t *i, const char **tag, size_t *tag_len)
{
    size_t k = *i;

    if (n - k >= 2 && s[k] == 'W' && s[k + 1] == '/')
        k += 2;
    if (k >= n || s[k] != '"')
        return false;
    *tag = s + k;
    for (k++; k < n && s[k] != '"'; k++) {
        unsigned char c = (unsigned char)s[k];

        if (c < 0x21 || c == 0x7f)
            return false;
    }
    if (k >= n)
        return false;
    *tag_len = k + 1 - (size_t)(*tag - s);
    *i = k + 1;
    return true;
}

/* The stored ETag's opaque-tag, or false when it has none or a bad one. */
static bool stored_tag(const char *etag, const char **tag, size_t *tag_len)
{
    size_t n, i = 0;

    if (etag == NULL)
        return false;
    n = strlen(etag);
    while (i < n && is_ows(etag[i]))
        i++;
    while (n > i && is_ows(etag[n - 1]))
        n--;
    return parse_etag(etag, n, &i, tag, tag_len) && i == n;
}

/* One If-None-Match line against the stored opaque-tag (weak comparison,
 * §8.8.3.2). A malformed member is skipped up to the next comma. */
static bool inm_line_matches(const struct c9_hdr *h, const char *tag, size_t tag_len)
{
    const char *s = h->value;
    size_t n = h->value_len, i = 0;

    while (i < n) {
        const char *t;
        size_t tl;

        while (i < n && (is_ows(s[i]) || s[i] == ','))
            i++;
        if (i >= n)
            break;
        if (parse_etag(s, n, &i, &t, &tl)) {
            if (tl == tag_len && memcmp(t, tag, tl) == 0)
                return true;
            while (i < n && is_ows(s[i]))
                i++;
            if (i >= n || s[i] == ',')
                continue;
        }
        while (i < n && s[i] != ',')
            i++;
    }
    return false;
}

/* h is the first If-None-Match line. */
static bool inm_matches(const struct c9_hdr *h, const struct c9_hdr *req, size_t nreq,
                        const char *etag)
{
    const char *tag;
    size_t tag_len, i;
    struct cur c = {h->value, h->value != NULL ? h->value_len : 0, 0};

    /* "*" alone (one line, one member) matches any stored response */
    if (c9_hdr_count(req, nreq, "if-none-match") == 1) {
        while (c.i < c.n && is_ows(c.s[c.i]))
            c.i++;
        while (c.n > c.i && is_ows(c.s[c.n - 1]))
            c.n--;
        if (lit(&c, "*") && c.i == c.n)
            return true;
    }
    if (!stored_tag(etag, &tag, &tag_len))
        return false;
    for (i = 0; i < nreq; i++) {
        if (req[i].value != NULL && hdr_named(&req[i], "if-none-match", 13) &&
            inm_line_matches(&req[i], tag, tag_len))
            return true;
    }
    return false;
}

bool c9_not_modified(const struct c9_hdr *req, size_t nreq, const char *etag, int64_t last_modified,
                     int64_t now)
{
    const struct c9_hdr *h = c9_hdr_get(req, nreq, "if-none-match");
    int64_t ims;

    /* RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is
     * present, and when it is not one valid HTTP-date. */
    if (h != NULL)
        return inm_matches(h, req, nreq, etag);
    h = c9_hdr_get(req, nreq, "if-modified-since");
    if (h == NULL || c9_hdr_count(req, nreq, "if-modified-since") != 1)
        return false;
    if (c9_parse_http_date(h->value, h->value_len, now, &ims) < 0 || ims > now)
        return false;
    return last_modified != C9_NO_TIME && last_modified <= ims;
}

/* ---- invalidation (RFC 9111 §4.4) ----------------------------------------- */

bool c9_method_invalidates(const char *method, int status)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
    size_t k;

    if (status < 200 || status > 399)
        return false;
    if (method == NULL)
        return true;
    for (k = 0; k < sizeof(safe) / sizeof(safe[0]); k++) {
        if (strcmp(method, safe[k]) == 0)
            return false;
    }
    return true;
}
