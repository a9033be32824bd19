/* rfc9111.c - the HTTP caching rules of RFC 9111 for a shared cache.
 *
 * Design notes (the rules and their sections are in docs/cache-rules.md):
 *
 * - Everything reads (pointer, length) pairs and never looks past a length:
 *   header values come from a peer and carry no NUL. Loops are bounded by
 *   the header count and value lengths the caller's parser already capped.
 * - Numbers saturate instead of overflowing: delta-seconds stop at
 *   C9_DELTA_MAX (§1.2.2), differences of times are clamped to
 *   [0, C9_DELTA_MAX] before anything is added to them.
 * - Where a header is duplicated or malformed the RFC lets a cache pick;
 *   we always pick the reading that reuses a stored response least.
 * - HTTP-dates are parsed in httpdate.c, Cache-Control in cachecontrol.c,
 *   Vary keys made in vary.c; this file keeps header lookups, list members,
 *   storing, freshness, age, serving, conditional requests and
 *   invalidation.
 */
#include "rfc9111.h"

#include "httpdate.h"

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

/* RFC 9110 §5.6.2 tchar; public (rfc9111.h) for the Cache-Control parser. */
bool c9_is_tchar(char ch)
{
    unsigned char c = (unsigned char)ch;

    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
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

int c9_parse_http_date(const char *s, size_t n, int64_t now, int64_t *out_epoch)
{
    return httpdate_parse(s, n, now, out_epoch);
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
    static const enum c9_store_verdict vary_verdict[C9_VARY_FORM_MAX] = {
        [C9_VARY_KEYABLE] = C9_STORE_OK,
        [C9_VARY_IS_STAR] = C9_VARY_STAR,
        [C9_VARY_BAD_NAME] = C9_VARY_INVALID,
        [C9_VARY_TOO_MANY] = C9_VARY_LIMIT,
    };
    struct c9_cc rq, rs;
    enum c9_store_verdict v;
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
    v = vary_verdict[c9_vary_form(resp, nresp)];
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
        httpdate_parse(h->value, h->value_len, response_time, &t) < 0)
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
    if (!c9_list_next(&it, &e, &len) || c9_parse_delta(e, len, false, &v) < 0)
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
            httpdate_parse(h->value, h->value_len, response_time, &expires) < 0)
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
    const char *s = h->value;
    size_t n = s != NULL ? h->value_len : 0, k = 0;

    /* "*" alone (one line, one member) matches any stored response */
    if (c9_hdr_count(req, nreq, "if-none-match") == 1) {
        while (k < n && is_ows(s[k]))
            k++;
        while (n > k && is_ows(s[n - 1]))
            n--;
        if (n - k == 1 && s[k] == '*')
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
    if (httpdate_parse(h->value, h->value_len, now, &ims) < 0 || ims > now)
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
