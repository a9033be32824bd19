/* test_rfc9111.c - cache/rfc9111.c as tables of cases: what may be stored
 * and why not, Cache-Control parsing, HTTP-dates, freshness precedence, Age
 * arithmetic with skewed clocks, conditional requests, stale serving and
 * invalidation (Vary keys, cache/vary.c, are in test_vary.c). Every case
 * asserts a concrete value. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfc9111.h"

/* A header from two literals. */
#define H(n, v)                            \
    {                                      \
        n, sizeof(n) - 1, v, sizeof(v) - 1 \
    }
#define MAXH 6

#define NOW   1748736000LL /* 2025-06-01T00:00:00Z */
#define D1994 784111777LL  /* Sun, 06 Nov 1994 08:49:37 GMT */
#define NA    C9_ABSENT
#define BIG   C9_DELTA_MAX

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Number of used slots in a zero-terminated header array. */
static size_t nh(const struct c9_hdr *h)
{
    size_t n = 0;

    while (n < MAXH && h[n].name != NULL)
        n++;
    return n;
}

/* ---- storable ------------------------------------------------------------- */

struct store_case {
    const char *name;
    const char *method;
    int status;
    struct c9_hdr req[MAXH];
    struct c9_hdr resp[MAXH];
    enum c9_store_verdict want;
    bool heuristic;
};

static const struct store_case storable_cases[] = {
    {"plain 200: heuristic", "GET", 200, {{0}}, {{0}}, C9_STORE_OK, true},
    {"200 max-age", "GET", 200, {{0}}, {H("Cache-Control", "max-age=60")}, C9_STORE_OK, false},
    {"HEAD is answered from GET entries", "HEAD", 200, {{0}}, {{0}}, C9_METHOD, false},
    {"POST", "POST", 200, {{0}}, {H("Cache-Control", "max-age=60")}, C9_METHOD, false},
    {"methods are case-sensitive", "get", 200, {{0}}, {{0}}, C9_METHOD, false},
    {"NULL method", NULL, 200, {{0}}, {{0}}, C9_METHOD, false},
    {"206 not understood", "GET", 206, {{0}}, {H("Cache-Control", "max-age=60")}, C9_STATUS, false},
    {"304 is not stored", "GET", 304, {{0}}, {H("Cache-Control", "max-age=60")}, C9_STATUS, false},
    {"1xx is not final", "GET", 103, {{0}}, {{0}}, C9_STATUS, false},
    {"unknown status 299", "GET", 299, {{0}}, {H("Cache-Control", "max-age=60")}, C9_STATUS, false},
    {"request no-store",
     "GET",
     200,
     {H("Cache-Control", "no-store")},
     {{0}},
     C9_REQ_NO_STORE,
     false},
    {"response no-store",
     "GET",
     200,
     {{0}},
     {H("Cache-Control", "max-age=60, no-store")},
     C9_NO_STORE,
     false},
    {"NO-STORE uppercase", "GET", 200, {{0}}, {H("cache-control", "NO-STORE")}, C9_NO_STORE, false},
    {"no-store on a second line",
     "GET",
     200,
     {{0}},
     {H("Cache-Control", "max-age=60"), H("Content-Type", "text/plain"),
      H("Cache-Control", "no-store")},
     C9_NO_STORE,
     false},
    {"must-understand overrides no-store",
     "GET",
     200,
     {{0}},
     {H("Cache-Control", "no-store, must-understand, max-age=60")},
     C9_STORE_OK,
     false},
    {"private", "GET", 200, {{0}}, {H("Cache-Control", "private, max-age=60")}, C9_PRIVATE, false},
    {"qualified private",
     "GET",
     200,
     {{0}},
     {H("Cache-Control", "private=\"Set-Cookie\", max-age=60")},
     C9_PRIVATE,
     false},
    {"private beats public",
     "GET",
     200,
     {{0}},
     {H("Cache-Control", "public, private")},
     C9_PRIVATE,
     false},
    {"Authorization alone",
     "GET",
     200,
     {H("Authorization", "Basic eDp5")},
     {H("Cache-Control", "max-age=60")},
     C9_AUTHORIZATION,
     false},
    {"Authorization + public",
     "GET",
     200,
     {H("Authorization", "Basic eDp5")},
     {H("Cache-Control", "public")},
     C9_STORE_OK,
     true},
    {"Authorization + s-maxage",
     "GET",
     200,
     {H("authorization", "Bearer t")},
     {H("Cache-Control", "s-maxage=10")},
     C9_STORE_OK,
     false},
    {"Authorization + must-revalidate",
     "GET",
     200,
     {H("Authorization", "Bearer t")},
     {H("Cache-Control", "must-revalidate, max-age=10")},
     C9_STORE_OK,
     false},
    {"Authorization + malformed s-maxage",
     "GET",
     200,
     {H("Authorization", "Bearer t")},
     {H("Cache-Control", "s-maxage=ten")},
     C9_AUTHORIZATION,
     false},
    {"Authorization + public=1 (not public)",
     "GET",
     200,
     {H("Authorization", "Bearer t")},
     {H("Cache-Control", "public=1, max-age=10")},
     C9_AUTHORIZATION,
     false},
    {"Authorization + must-revalidate=1 (malformed)",
     "GET",
     200,
     {H("Authorization", "Bearer t")},
     {H("Cache-Control", "must-revalidate=1, max-age=10")},
     C9_AUTHORIZATION,
     false},
    {"Vary: *", "GET", 200, {{0}}, {H("Vary", "*")}, C9_VARY_STAR, false},
    {"Vary: Accept, *",
     "GET",
     200,
     {{0}},
     {H("Vary", "Accept"), H("Vary", "*")},
     C9_VARY_STAR,
     false},
    {"Vary member not a token",
     "GET",
     200,
     {{0}},
     {H("Vary", "Accept Encoding")},
     C9_VARY_INVALID,
     false},
    {"Vary: Accept-Encoding stored",
     "GET",
     200,
     {{0}},
     {H("Vary", "Accept-Encoding")},
     C9_STORE_OK,
     true},
    {"Set-Cookie",
     "GET",
     200,
     {{0}},
     {H("Set-Cookie", "id=1"), H("Cache-Control", "max-age=60")},
     C9_SET_COOKIE,
     false},
    {"Set-Cookie + public",
     "GET",
     200,
     {{0}},
     {H("Set-Cookie", "id=1"), H("Cache-Control", "public, max-age=60")},
     C9_STORE_OK,
     false},
    {"Set-Cookie + s-maxage",
     "GET",
     200,
     {{0}},
     {H("Set-Cookie", "id=1"), H("Cache-Control", "s-maxage=60")},
     C9_STORE_OK,
     false},
    {"302 without freshness", "GET", 302, {{0}}, {H("Location", "/x")}, C9_NOT_CACHEABLE, false},
    {"302 with max-age", "GET", 302, {{0}}, {H("Cache-Control", "max-age=5")}, C9_STORE_OK, false},
    {"302 public: heuristic", "GET", 302, {{0}}, {H("Cache-Control", "public")}, C9_STORE_OK, true},
    {"500 without freshness", "GET", 500, {{0}}, {{0}}, C9_NOT_CACHEABLE, false},
    {"500 with Expires",
     "GET",
     500,
     {{0}},
     {H("Expires", "Sun, 06 Nov 1994 08:49:37 GMT")},
     C9_STORE_OK,
     false},
    {"403 without freshness", "GET", 403, {{0}}, {{0}}, C9_NOT_CACHEABLE, false},
    {"404 heuristic", "GET", 404, {{0}}, {{0}}, C9_STORE_OK, true},
    {"410 heuristic", "GET", 410, {{0}}, {{0}}, C9_STORE_OK, true},
    {"501 heuristic", "GET", 501, {{0}}, {{0}}, C9_STORE_OK, true},
    {"308 heuristic", "GET", 308, {{0}}, {{0}}, C9_STORE_OK, true},
    {"response no-cache is stored",
     "GET",
     200,
     {{0}},
     {H("Cache-Control", "no-cache")},
     C9_STORE_OK,
     true},
    {"invalid Expires is explicit (stale)",
     "GET",
     307,
     {{0}},
     {H("Expires", "0")},
     C9_STORE_OK,
     false},
    {"request no-cache does not prevent storing",
     "GET",
     200,
     {H("Cache-Control", "no-cache")},
     {{0}},
     C9_STORE_OK,
     true},
};

static void storable_case(const struct store_case *c)
{
    bool heuristic = !c->heuristic;
    enum c9_store_verdict v =
        c9_storable(c->method, c->status, c->req, nh(c->req), c->resp, nh(c->resp), &heuristic);

    cr_expect_eq(v, c->want, "%s: got %s, want %s", c->name, c9_verdict_name(v),
                 c9_verdict_name(c->want));
    cr_expect_eq(heuristic, c->heuristic, "%s: heuristic_ok %d", c->name, heuristic);
}

Test(storable, table)
{
    size_t i;

    for (i = 0; i < COUNT(storable_cases); i++)
        storable_case(&storable_cases[i]);
}

Test(storable, vary_limit)
{
    struct c9_hdr resp[C9_VARY_MAX_FIELDS + 1];
    char names[C9_VARY_MAX_FIELDS + 1][8];
    size_t i;

    for (i = 0; i <= C9_VARY_MAX_FIELDS; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%zu", i);
        resp[i] = (struct c9_hdr){"Vary", 4, names[i], strlen(names[i])};
    }
    cr_assert_eq(c9_storable("GET", 200, NULL, 0, resp, C9_VARY_MAX_FIELDS, NULL), C9_STORE_OK);
    cr_assert_eq(c9_storable("GET", 200, NULL, 0, resp, C9_VARY_MAX_FIELDS + 1, NULL),
                 C9_VARY_LIMIT);
    /* the same name many times is one name */
    for (i = 0; i <= C9_VARY_MAX_FIELDS; i++)
        resp[i] = (struct c9_hdr){"Vary", 4, "Accept", 6};
    cr_assert_eq(c9_storable("GET", 200, NULL, 0, resp, C9_VARY_MAX_FIELDS + 1, NULL), C9_STORE_OK);
}

Test(storable, names)
{
    cr_assert_str_eq(c9_verdict_name(C9_STORE_OK), "ok");
    cr_assert_str_eq(c9_verdict_name(C9_NO_STORE), "no-store");
    cr_assert_str_eq(c9_verdict_name(C9_AUTHORIZATION), "authorization");
    cr_assert_str_eq(c9_verdict_name(C9_NOT_CACHEABLE), "not-cacheable");
    cr_assert_str_eq(c9_verdict_name(C9_STORE_VERDICT_MAX), "unknown");
    for (int v = 0; v < C9_STORE_VERDICT_MAX; v++)
        cr_assert_neq(c9_verdict_name((enum c9_store_verdict)v), NULL);
    cr_assert_str_eq(c9_serve_name(C9_SERVE_STALE_WHILE_REVALIDATE), "stale-while-revalidate");
    cr_assert_str_eq(c9_serve_name(C9_SERVE_MAX), "unknown");
}

/* ---- Cache-Control ------------------------------------------------------- */

enum {
    F_NS = 1 << 0,
    F_NC = 1 << 1,
    F_PRIV = 1 << 2,
    F_PUB = 1 << 3,
    F_MR = 1 << 4,
    F_PR = 1 << 5,
    F_NT = 1 << 6,
    F_MU = 1 << 7,
    F_OIC = 1 << 8,
};

struct cc_case {
    const char *name;
    struct c9_hdr h[MAXH];
    unsigned flags;
    int64_t d[6]; /* max-age, s-maxage, swr, sie, max-stale, min-fresh */
    unsigned malformed;
};

#define NONE                   \
    {                          \
        NA, NA, NA, NA, NA, NA \
    }

static const struct cc_case cc_cases[] = {
    {"max-age", {H("Cache-Control", "max-age=60")}, 0, {60, NA, NA, NA, NA, NA}, 0},
    {"uppercase name",
     {H("CACHE-CONTROL", "MAX-AGE=60, No-Store")},
     F_NS,
     {60, NA, NA, NA, NA, NA},
     0},
    {"quoted value", {H("Cache-Control", "max-age=\"60\"")}, 0, {60, NA, NA, NA, NA, NA}, 0},
    {"quoted-pair in value",
     {H("Cache-Control", "max-age=\"6\\0\"")},
     0,
     {60, NA, NA, NA, NA, NA},
     0},
    {"BWS around =", {H("Cache-Control", "max-age = 5")}, 0, {5, NA, NA, NA, NA, NA}, 0},
    {"duplicate max-age: stale",
     {H("Cache-Control", "max-age=60, max-age=60")},
     0,
     {0, NA, NA, NA, NA, NA},
     C9_CC_MAX_AGE},
    {"duplicate across lines",
     {H("Cache-Control", "max-age=60"), H("Cache-Control", "max-age=5")},
     0,
     {0, NA, NA, NA, NA, NA},
     C9_CC_MAX_AGE},
    {"non-numeric max-age",
     {H("Cache-Control", "max-age=abc")},
     0,
     {0, NA, NA, NA, NA, NA},
     C9_CC_MAX_AGE},
    {"negative max-age",
     {H("Cache-Control", "max-age=-1")},
     0,
     {0, NA, NA, NA, NA, NA},
     C9_CC_MAX_AGE},
    {"max-age without value",
     {H("Cache-Control", "max-age")},
     0,
     {0, NA, NA, NA, NA, NA},
     C9_CC_MAX_AGE},
    {"max-age with trailing junk",
     {H("Cache-Control", "max-age=5 6")},
     0,
     {0, NA, NA, NA, NA, NA},
     C9_CC_MAX_AGE},
    {"2^31 - 1 kept",
     {H("Cache-Control", "max-age=2147483647")},
     0,
     {2147483647LL, NA, NA, NA, NA, NA},
     0},
    {"2^31 + 1 is 2^31",
     {H("Cache-Control", "max-age=2147483649")},
     0,
     {BIG, NA, NA, NA, NA, NA},
     0},
    {"huge is 2^31",
     {H("Cache-Control", "s-maxage=99999999999999999999999999")},
     0,
     {NA, BIG, NA, NA, NA, NA},
     0},
    {"leading zeros",
     {H("Cache-Control", "max-age=0000000000000000000000000007")},
     0,
     {7, NA, NA, NA, NA, NA},
     0},
    {"two lines combine",
     {H("Cache-Control", "s-maxage=10"), H("Cache-Control", "public")},
     F_PUB,
     {NA, 10, NA, NA, NA, NA},
     0},
    {"no-cache field list with a comma",
     {H("Cache-Control", "no-cache=\"Set-Cookie, X-Foo\", max-age=5")},
     F_NC,
     {5, NA, NA, NA, NA, NA},
     0},
    {"garbage member ignored",
     {H("Cache-Control", "@@garbage;;, , max-age=5,")},
     0,
     {5, NA, NA, NA, NA, NA},
     0},
    {"unknown extension ignored", {H("Cache-Control", "community=\"UCI\", immutable")}, 0, NONE, 0},
    {"restrictive flag with junk still counts",
     {H("Cache-Control", "no-store foo")},
     F_NS,
     NONE,
     C9_CC_FLAG},
    {"must-revalidate with argument",
     {H("Cache-Control", "must-revalidate=1")},
     F_MR,
     NONE,
     C9_CC_FLAG | C9_CC_MUST_REVALIDATE},
    {"public with argument does not count",
     {H("Cache-Control", "public=yes")},
     0,
     NONE,
     C9_CC_PUBLIC},
    {"a bad public vetoes a good one",
     {H("Cache-Control", "public, public=1")},
     0,
     NONE,
     C9_CC_PUBLIC},
    {"all response flags",
     {H("Cache-Control", "no-store, no-cache, private, public, must-revalidate, proxy-revalidate, "
                         "no-transform, must-understand")},
     F_NS | F_NC | F_PRIV | F_PUB | F_MR | F_PR | F_NT | F_MU,
     NONE,
     0},
    {"RFC 5861 extensions",
     {H("Cache-Control", "stale-while-revalidate=30, stale-if-error=600")},
     0,
     {NA, NA, 30, 600, NA, NA},
     0},
    {"bare max-stale is any",
     {H("Cache-Control", "max-stale, only-if-cached")},
     F_OIC,
     {NA, NA, NA, NA, BIG, NA},
     0},
    {"max-stale with value",
     {H("Cache-Control", "max-stale=5, min-fresh=7")},
     0,
     {NA, NA, NA, NA, 5, 7},
     0},
    {"duplicate min-fresh: nothing fresh enough",
     {H("Cache-Control", "min-fresh=5, min-fresh=6")},
     0,
     {NA, NA, NA, NA, NA, BIG},
     C9_CC_MIN_FRESH},
    {"duplicate swr: no stale window",
     {H("Cache-Control", "stale-while-revalidate=5, stale-while-revalidate=6")},
     0,
     {NA, NA, 0, NA, NA, NA},
     C9_CC_SWR},
    {"unterminated quote eats the line", {H("Cache-Control", "foo=\"bar, max-age=5")}, 0, NONE, 0},
    {"unterminated quoted max-age",
     {H("Cache-Control", "max-age=\"5")},
     0,
     {0, NA, NA, NA, NA, NA},
     C9_CC_MAX_AGE},
    {"empty field", {H("Cache-Control", "")}, 0, NONE, 0},
    {"Pragma: no-cache without Cache-Control", {H("Pragma", "no-cache")}, F_NC, NONE, 0},
    {"Pragma ignored with Cache-Control",
     {H("Pragma", "no-cache"), H("Cache-Control", "max-age=5")},
     0,
     {5, NA, NA, NA, NA, NA},
     0},
    {"other fields ignored",
     {H("X-Cache-Control", "no-store"), H("Cache-Control2", "private")},
     0,
     NONE,
     0},
};

static void cc_case(const struct cc_case *c)
{
    struct c9_cc cc;
    unsigned flags;

    c9_parse_cc(c->h, nh(c->h), &cc);
    flags = (cc.no_store ? F_NS : 0) | (cc.no_cache ? F_NC : 0) | (cc.is_private ? F_PRIV : 0) |
            (cc.is_public ? F_PUB : 0) | (cc.must_revalidate ? F_MR : 0) |
            (cc.proxy_revalidate ? F_PR : 0) | (cc.no_transform ? F_NT : 0) |
            (cc.must_understand ? F_MU : 0) | (cc.only_if_cached ? F_OIC : 0);
    cr_expect_eq(flags, c->flags, "%s: flags %#x, want %#x", c->name, flags, c->flags);
    cr_expect_eq(cc.max_age, c->d[0], "%s: max-age %lld", c->name, (long long)cc.max_age);
    cr_expect_eq(cc.s_maxage, c->d[1], "%s: s-maxage %lld", c->name, (long long)cc.s_maxage);
    cr_expect_eq(cc.stale_while_revalidate, c->d[2], "%s: swr %lld", c->name,
                 (long long)cc.stale_while_revalidate);
    cr_expect_eq(cc.stale_if_error, c->d[3], "%s: sie %lld", c->name, (long long)cc.stale_if_error);
    cr_expect_eq(cc.max_stale, c->d[4], "%s: max-stale %lld", c->name, (long long)cc.max_stale);
    cr_expect_eq(cc.min_fresh, c->d[5], "%s: min-fresh %lld", c->name, (long long)cc.min_fresh);
    cr_expect_eq(cc.malformed, c->malformed, "%s: malformed %#x", c->name, cc.malformed);
}

Test(cc, table)
{
    size_t i;

    for (i = 0; i < COUNT(cc_cases); i++)
        cc_case(&cc_cases[i]);
}

/* ---- dates ---------------------------------------------------------------- */

struct date_case {
    const char *name;
    const char *s;
    int64_t now;
    int rc;
    int64_t want;
};

static const struct date_case date_cases[] = {
    {"IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", NOW, 0, D1994},
    {"RFC 850", "Sunday, 06-Nov-94 08:49:37 GMT", NOW, 0, D1994},
    {"asctime, space-padded day", "Sun Nov  6 08:49:37 1994", NOW, 0, D1994},
    {"asctime, two-digit day", "Sun Nov 06 08:49:37 1994", NOW, 0, D1994},
    {"surrounding OWS", " \tSun, 06 Nov 1994 08:49:37 GMT  ", NOW, 0, D1994},
    {"epoch", "Thu, 01 Jan 1970 00:00:00 GMT", NOW, 0, 0},
    {"before the epoch", "Thu, 01 Mar 1900 00:00:00 GMT", NOW, 0, -2203891200LL},
    {"far future", "Fri, 31 Dec 9999 23:59:59 GMT", NOW, 0, 253402300799LL},
    {"Feb 29 in a leap year", "Thu, 29 Feb 2024 12:00:00 GMT", NOW, 0, 1709208000LL},
    {"Feb 29 2000 (div by 400)", "Tue, 29 Feb 2000 00:00:00 GMT", NOW, 0, 951782400LL},
    {"leap second", "Fri, 31 Dec 1999 23:59:60 GMT", NOW, 0, 946684800LL},
    {"day-name not checked against date", "Mon, 06 Nov 1994 08:49:37 GMT", NOW, 0, D1994},
    {"RFC 850: 75 is 2075 in 2025", "Wednesday, 01-Jan-75 00:00:00 GMT", NOW, 0, 3313526400LL},
    {"RFC 850: 76 is 1976 in 2025", "Thursday, 01-Jan-76 00:00:00 GMT", NOW, 0, 189302400LL},
    {"RFC 850: 00 is 2000", "Saturday, 01-Jan-00 00:00:00 GMT", NOW, 0, 946684800LL},
    {"RFC 850: 30 is 2130 in 2090", "Monday, 01-Jan-30 00:00:00 GMT", 3799958400LL, 0,
     5049129600LL},
    {"RFC 850: 69 is 2069 in 2025", "Tuesday, 01-Jan-69 00:00:00 GMT", NOW, 0, 3124224000LL},
    {"RFC 850: 76 is 2076 on 2026-01-01", "Thursday, 01-Jan-76 00:00:00 GMT", 1767225600LL, 0,
     3345062400LL},
    {"RFC 850: 76 is 2076 on 2026-02-28", "Thursday, 01-Jan-76 00:00:00 GMT", 1772236800LL, 0,
     3345062400LL},
    {"Feb 30", "Fri, 30 Feb 2024 00:00:00 GMT", NOW, -EINVAL, 0},
    {"Feb 29 in a common year", "Wed, 29 Feb 2023 00:00:00 GMT", NOW, -EINVAL, 0},
    {"Feb 29 1900 (div by 100)", "Thu, 29 Feb 1900 00:00:00 GMT", NOW, -EINVAL, 0},
    {"Apr 31", "Thu, 31 Apr 2025 00:00:00 GMT", NOW, -EINVAL, 0},
    {"day 0", "Sun, 00 Nov 1994 08:49:37 GMT", NOW, -EINVAL, 0},
    {"hour 25", "Sun, 06 Nov 1994 25:49:37 GMT", NOW, -EINVAL, 0},
    {"hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", NOW, -EINVAL, 0},
    {"minute 60", "Sun, 06 Nov 1994 08:60:37 GMT", NOW, -EINVAL, 0},
    {"second 61", "Sun, 06 Nov 1994 08:49:61 GMT", NOW, -EINVAL, 0},
    {"UTC is not GMT", "Sun, 06 Nov 1994 08:49:37 UTC", NOW, -EINVAL, 0},
    {"lowercase day-name", "sun, 06 Nov 1994 08:49:37 GMT", NOW, -EINVAL, 0},
    {"lowercase month", "Sun, 06 nov 1994 08:49:37 GMT", NOW, -EINVAL, 0},
    {"one-digit day in IMF", "Sun, 6 Nov 1994 08:49:37 GMT", NOW, -EINVAL, 0},
    {"two-digit year in IMF", "Sun, 06 Nov 94 08:49:37 GMT", NOW, -EINVAL, 0},
    {"trailing junk", "Sun, 06 Nov 1994 08:49:37 GMT x", NOW, -EINVAL, 0},
    {"truncated", "Sun, 06 Nov 1994 08:49", NOW, -EINVAL, 0},
    {"short day-name in RFC 850", "Sun, 06-Nov-94 08:49:37 GMT", NOW, -EINVAL, 0},
    {"long day-name in IMF", "Sunday, 06 Nov 1994 08:49:37 GMT", NOW, -EINVAL, 0},
    {"asctime with GMT", "Sun Nov  6 08:49:37 1994 GMT", NOW, -EINVAL, 0},
    {"zero", "0", NOW, -EINVAL, 0},
    {"empty", "", NOW, -EINVAL, 0},
    {"numeric offset", "Sun, 06 Nov 1994 08:49:37 +0000", NOW, -EINVAL, 0},
};

static void date_case(const struct date_case *c)
{
    int64_t t = 12345;
    int rc = c9_parse_http_date(c->s, strlen(c->s), c->now, &t);

    cr_expect_eq(rc, c->rc, "%s: rc %d", c->name, rc);
    if (c->rc == 0)
        cr_expect_eq(t, c->want, "%s: got %lld, want %lld", c->name, (long long)t,
                     (long long)c->want);
    else
        cr_expect_eq(t, 12345, "%s: output touched on error", c->name);
}

Test(date, table)
{
    size_t i;

    for (i = 0; i < COUNT(date_cases); i++)
        date_case(&date_cases[i]);
}

Test(date, never_trusts_lengths)
{
    static const char s[] = "Sun, 06 Nov 1994 08:49:37 GMT";
    char buf[64];
    int64_t t;
    size_t n;

    /* every proper prefix fails; the length is the only terminator */
    for (n = 0; n < sizeof(s) - 1; n++) {
        memcpy(buf, s, n);
        memset(buf + n, 'X', sizeof(buf) - n);
        cr_assert_eq(c9_parse_http_date(buf, n, NOW, &t), -EINVAL, "prefix %zu", n);
    }
    cr_assert_eq(c9_parse_http_date(s, sizeof(s) - 1, NOW, &t), 0);
    /* a NUL inside the length is not whitespace */
    cr_assert_eq(c9_parse_http_date(s, sizeof(s), NOW, &t), -EINVAL);
    cr_assert_eq(c9_parse_http_date(NULL, 0, NOW, &t), -EINVAL);
}

/* ---- freshness ------------------------------------------------------------- */

struct fresh_case {
    const char *name;
    struct c9_hdr resp[MAXH];
    int64_t response_time;
    int64_t default_ttl;
    bool heuristic;
    int64_t want;
};

#define T0 784111777LL /* response_time = the Date below */

static const struct fresh_case fresh_cases[] = {
    {"s-maxage beats max-age", {H("Cache-Control", "max-age=20, s-maxage=10")}, T0, 60, false, 10},
    {"max-age beats Expires",
     {H("Cache-Control", "max-age=20"), H("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
      H("Expires", "Sun, 06 Nov 1994 09:49:37 GMT")},
     T0,
     60,
     false,
     20},
    {"Expires - Date",
     {H("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), H("Expires", "Sun, 06 Nov 1994 09:49:37 GMT")},
     T0 + 500,
     60,
     false,
     3600},
    {"Expires - response_time without Date",
     {H("Expires", "Sun, 06 Nov 1994 09:49:37 GMT")},
     T0 + 600,
     60,
     false,
     3000},
    {"invalid Date: response_time",
     {H("Date", "yesterday"), H("Expires", "Sun, 06 Nov 1994 09:49:37 GMT")},
     T0 + 60,
     60,
     false,
     3540},
    {"Expires in RFC 850 form",
     {H("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), H("Expires", "Sunday, 06-Nov-94 08:50:37 GMT")},
     T0,
     60,
     false,
     60},
    {"Expires 0 is already stale", {H("Expires", "0")}, T0, 60, true, 0},
    {"Expires before Date",
     {H("Date", "Sun, 06 Nov 1994 09:49:37 GMT"), H("Expires", "Sun, 06 Nov 1994 08:49:37 GMT")},
     T0,
     60,
     false,
     0},
    {"two Expires: stale",
     {H("Expires", "Sun, 06 Nov 1994 09:49:37 GMT"), H("Expires", "Sun, 06 Nov 1994 09:49:37 GMT")},
     T0,
     60,
     false,
     0},
    {"malformed max-age hides Expires",
     {H("Cache-Control", "max-age=soon"), H("Expires", "Sun, 06 Nov 1994 09:49:37 GMT")},
     T0,
     60,
     false,
     0},
    {"heuristic: default TTL", {H("Content-Type", "text/plain")}, T0, 60, true, 60},
    {"no heuristic: 0", {{0}}, T0, 60, false, 0},
    {"negative default TTL", {{0}}, T0, -5, true, 0},
    {"huge default TTL", {{0}}, T0, INT64_MAX, true, BIG},
    {"max-age beyond 2^31", {H("Cache-Control", "max-age=1099511627776")}, T0, 60, false, BIG},
    {"Expires far ahead is capped",
     {H("Expires", "Fri, 31 Dec 9999 23:59:59 GMT")},
     T0,
     60,
     false,
     BIG},
    {"no-cache does not change the lifetime",
     {H("Cache-Control", "no-cache, max-age=30")},
     T0,
     60,
     false,
     30},
};

static void fresh_case(const struct fresh_case *c)
{
    int64_t got =
        c9_freshness_lifetime(c->resp, nh(c->resp), c->response_time, c->default_ttl, c->heuristic);

    cr_expect_eq(got, c->want, "%s: got %lld, want %lld", c->name, (long long)got,
                 (long long)c->want);
}

Test(fresh, table)
{
    size_t i;

    for (i = 0; i < COUNT(fresh_cases); i++)
        fresh_case(&fresh_cases[i]);
}

Test(fresh, date_and_age_values)
{
    struct c9_hdr one[] = {H("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), H("Age", "30")};
    struct c9_hdr two[] = {H("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                           H("Date", "Sun, 06 Nov 1994 08:49:38 GMT"), H("Age", "7, 9")};
    struct c9_hdr bad[] = {H("Age", "-3")};
    struct c9_hdr big[] = {H("Age", "99999999999")};

    cr_assert_eq(c9_date_value(one, 2, 5), D1994);
    cr_assert_eq(c9_date_value(two, 3, 5), 5, "a repeated Date is treated as missing");
    cr_assert_eq(c9_date_value(NULL, 0, 5), 5);
    cr_assert_eq(c9_age_value(one, 2), 30);
    cr_assert_eq(c9_age_value(two, 3), 7, "first member of a list");
    cr_assert_eq(c9_age_value(bad, 1), 0, "invalid Age ignored");
    cr_assert_eq(c9_age_value(big, 1), BIG);
    cr_assert_eq(c9_age_value(NULL, 0), 0);
}

/* ---- age (§4.2.3) ---------------------------------------------------------- */

struct age_case {
    const char *name;
    int64_t date, age, req_t, resp_t, now;
    int64_t want;
};

static const struct age_case age_cases[] = {
    {"just received", 1000, 0, 1000, 1000, 1000, 0},
    {"resident time", 1000, 0, 1000, 1000, 1100, 100},
    {"apparent age from Date", 900, 0, 1000, 1000, 1000, 100},
    {"Age plus response delay", 1000, 300, 998, 1000, 1000, 302},
    {"apparent beats corrected Age", 800, 10, 990, 1000, 1050, 250},
    {"corrected Age beats apparent", 990, 10, 985, 1000, 1050, 75},
    {"Date in the future (skew)", 5000, 0, 1000, 1000, 1010, 10},
    {"Date in the future with Age", 5000, 20, 999, 1000, 1000, 21},
    {"request after response: no delay", 1000, 5, 1010, 1000, 1000, 5},
    {"now before response_time: no resident", 1000, 0, 1000, 1000, 900, 0},
    {"negative Age clamped", 1000, -50, 1000, 1000, 1000, 0},
    {"Age 2^31 saturates", 1000, BIG, 900, 1000, 2000, BIG},
    {"Age beyond 2^31", 1000, INT64_MAX, 1000, 1000, 1000, BIG},
    {"Date INT64_MIN", INT64_MIN, 0, 0, 1000, 1000, BIG},
    {"everything extreme", INT64_MAX, INT64_MAX, INT64_MIN, INT64_MAX, INT64_MIN, BIG},
    {"resident time extreme", 0, 0, 0, INT64_MIN, INT64_MAX, BIG},
    {"real dates", D1994 - 30, 10, D1994 - 1, D1994, D1994 + 60, 90},
};

static void age_case(const struct age_case *c)
{
    int64_t got = c9_current_age(c->date, c->age, c->req_t, c->resp_t, c->now);

    cr_expect_eq(got, c->want, "%s: got %lld, want %lld", c->name, (long long)got,
                 (long long)c->want);
}

Test(age, table)
{
    size_t i;

    for (i = 0; i < COUNT(age_cases); i++)
        age_case(&age_cases[i]);
}

Test(age, basis_for_replication)
{
    /* origin: Date 900, Age 10, asked at 995, answered at 1000 */
    int64_t basis = c9_age_basis(900, 10, 995, 1000);

    cr_assert_eq(basis, 100, "apparent age 100 beats corrected age 15");
    cr_assert_eq(c9_current_age(900, 10, 995, 1000, 1040), 140);
    /* the sender ships its current age at send time 1040; the replica's
     * clock is 5000 s off, but only its own interval is added */
    basis = c9_current_age(900, 10, 995, 1000, 1040);
    cr_assert_eq(c9_age_from_basis(basis, 6000, 6000), 140);
    cr_assert_eq(c9_age_from_basis(basis, 6000, 6025), 165);
    cr_assert_eq(c9_age_from_basis(basis, 6000, 5990), 140, "clock going back adds nothing");
    cr_assert_eq(c9_age_from_basis(-7, 0, 0), 0);
    cr_assert_eq(c9_age_from_basis(BIG, 0, 10), BIG);
}

/* ---- serving ---------------------------------------------------------------- */

struct serve_case {
    const char *name;
    const char *req_cc;
    const char *resp_cc;
    int64_t lifetime, age;
    bool origin_error;
    enum c9_serve want;
};

static const struct serve_case serve_cases[] = {
    {"fresh", "", "max-age=60", 60, 10, false, C9_SERVE_FRESH},
    {"age == lifetime is stale", "", "max-age=60", 60, 60, false, C9_SERVE_MUST_REVALIDATE},
    {"stale", "", "max-age=60", 60, 61, false, C9_SERVE_MUST_REVALIDATE},
    {"swr window", "", "max-age=60, stale-while-revalidate=30", 60, 89, false,
     C9_SERVE_STALE_WHILE_REVALIDATE},
    {"swr window ends", "", "max-age=60, stale-while-revalidate=30", 60, 90, false,
     C9_SERVE_MUST_REVALIDATE},
    {"swr=0 is no window", "", "max-age=60, stale-while-revalidate=0", 60, 60, false,
     C9_SERVE_MUST_REVALIDATE},
    {"response no-cache", "", "no-cache, max-age=60", 60, 1, false, C9_SERVE_MUST_REVALIDATE},
    {"request no-cache", "no-cache", "max-age=60", 60, 1, false, C9_SERVE_MUST_REVALIDATE},
    {"request max-age=0", "max-age=0", "max-age=60", 60, 0, false, C9_SERVE_MUST_REVALIDATE},
    {"request max-age below age", "max-age=5", "max-age=60", 60, 10, false,
     C9_SERVE_MUST_REVALIDATE},
    {"request max-age above age", "max-age=20", "max-age=60", 60, 10, false, C9_SERVE_FRESH},
    {"min-fresh unmet", "min-fresh=30", "max-age=60", 60, 40, false, C9_SERVE_MUST_REVALIDATE},
    {"min-fresh met", "min-fresh=10", "max-age=60", 60, 40, false, C9_SERVE_FRESH},
    {"request max-age=0 beats swr", "max-age=0", "max-age=60, stale-while-revalidate=30", 60, 70,
     false, C9_SERVE_MUST_REVALIDATE},
    {"must-revalidate forbids swr", "", "max-age=60, must-revalidate, stale-while-revalidate=30",
     60, 70, false, C9_SERVE_MUST_REVALIDATE},
    {"proxy-revalidate forbids swr", "", "max-age=60, proxy-revalidate, stale-while-revalidate=30",
     60, 70, false, C9_SERVE_MUST_REVALIDATE},
    {"s-maxage forbids swr", "", "s-maxage=60, stale-while-revalidate=30", 60, 70, false,
     C9_SERVE_MUST_REVALIDATE},
    {"must-revalidate while fresh", "", "max-age=60, must-revalidate", 60, 10, false,
     C9_SERVE_FRESH},
    {"max-stale is not used", "max-stale", "max-age=60", 60, 70, false, C9_SERVE_MUST_REVALIDATE},
    {"only-if-cached, fresh", "only-if-cached", "max-age=60", 60, 10, false, C9_SERVE_FRESH},
    {"only-if-cached, stale: 504", "only-if-cached", "max-age=60", 60, 70, false, C9_SERVE_MISS},
    {"only-if-cached, swr", "only-if-cached", "max-age=60, stale-while-revalidate=30", 60, 70,
     false, C9_SERVE_STALE_WHILE_REVALIDATE},
    {"sie window", "", "max-age=60, stale-if-error=600", 60, 300, true, C9_SERVE_STALE_IF_ERROR},
    {"sie window ends", "", "max-age=60, stale-if-error=600", 60, 660, true, C9_SERVE_MISS},
    {"no sie: error passes", "", "max-age=60", 60, 70, true, C9_SERVE_MISS},
    {"request sie", "stale-if-error=100", "max-age=60", 60, 70, true, C9_SERVE_STALE_IF_ERROR},
    {"must-revalidate forbids sie", "", "max-age=60, must-revalidate, stale-if-error=600", 60, 70,
     true, C9_SERVE_MISS},
    {"s-maxage forbids sie", "", "s-maxage=60, stale-if-error=600", 60, 70, true, C9_SERVE_MISS},
    {"no-cache forbids sie", "", "no-cache, stale-if-error=600", 60, 10, true, C9_SERVE_MISS},
    {"request no-cache forbids sie", "no-cache", "stale-if-error=600", 60, 70, true, C9_SERVE_MISS},
    {"origin error, fresh, nothing asked for the origin", "", "max-age=60", 60, 10, true,
     C9_SERVE_FRESH},
    {"origin error, fresh, request max-age unmet", "max-age=5", "max-age=60", 60, 10, true,
     C9_SERVE_MISS},
    {"origin error, fresh, request max-age unmet, sie", "max-age=5",
     "max-age=60, stale-if-error=60", 60, 10, true, C9_SERVE_STALE_IF_ERROR},
    {"negative inputs clamped", "", "", -5, -5, false, C9_SERVE_MUST_REVALIDATE},
    {"heuristic fresh", "", "", 60, 59, false, C9_SERVE_FRESH},
};

static void cc_from(const char *s, struct c9_cc *cc)
{
    struct c9_hdr h = {"Cache-Control", 13, s, strlen(s)};

    c9_parse_cc(&h, 1, cc);
}

static void serve_case(const struct serve_case *c)
{
    struct c9_cc rq, rs;
    enum c9_serve got;

    cc_from(c->req_cc, &rq);
    cc_from(c->resp_cc, &rs);
    got = c9_can_serve(&rq, &rs, c->lifetime, c->age, c->origin_error);
    cr_expect_eq(got, c->want, "%s: got %s, want %s", c->name, c9_serve_name(got),
                 c9_serve_name(c->want));
}

Test(serve, table)
{
    size_t i;

    for (i = 0; i < COUNT(serve_cases); i++)
        serve_case(&serve_cases[i]);
}

Test(serve, null_cc_means_none)
{
    cr_assert_eq(c9_can_serve(NULL, NULL, 60, 10, false), C9_SERVE_FRESH);
    cr_assert_eq(c9_can_serve(NULL, NULL, 60, 70, false), C9_SERVE_MUST_REVALIDATE);
    cr_assert_eq(c9_can_serve(NULL, NULL, 60, 70, true), C9_SERVE_MISS);
}

/* ---- conditional requests --------------------------------------------------- */

struct cond_case {
    const char *name;
    struct c9_hdr req[MAXH];
    const char *etag;
    int64_t last_modified;
    bool want;
};

#define LM 784111777LL /* = Sun, 06 Nov 1994 08:49:37 GMT */

static const struct cond_case cond_cases[] = {
    {"INM strong match", {H("If-None-Match", "\"abc\"")}, "\"abc\"", C9_NO_TIME, true},
    {"INM weak vs strong", {H("If-None-Match", "W/\"abc\"")}, "\"abc\"", C9_NO_TIME, true},
    {"INM strong vs weak", {H("If-None-Match", "\"abc\"")}, "W/\"abc\"", C9_NO_TIME, true},
    {"INM list", {H("If-None-Match", "\"x\", W/\"y\" ,\"abc\"")}, "\"abc\"", C9_NO_TIME, true},
    {"INM over two lines",
     {H("If-None-Match", "\"x\""), H("If-None-Match", "\"abc\"")},
     "\"abc\"",
     C9_NO_TIME,
     true},
    {"INM no match", {H("If-None-Match", "\"x\"")}, "\"abc\"", C9_NO_TIME, false},
    {"INM is case-sensitive", {H("If-None-Match", "\"ABC\"")}, "\"abc\"", C9_NO_TIME, false},
    {"INM comma inside a tag", {H("If-None-Match", "\"a,b\"")}, "\"a,b\"", C9_NO_TIME, true},
    {"INM *", {H("If-None-Match", " * ")}, NULL, C9_NO_TIME, true},
    {"INM * in a list is malformed",
     {H("If-None-Match", "*, \"x\"")},
     "\"abc\"",
     C9_NO_TIME,
     false},
    {"INM malformed member skipped",
     {H("If-None-Match", "abc, \"abc\"")},
     "\"abc\"",
     C9_NO_TIME,
     true},
    {"INM without stored ETag", {H("If-None-Match", "\"abc\"")}, NULL, LM, false},
    {"INM decides over IMS",
     {H("If-None-Match", "\"x\""), H("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")},
     "\"abc\"",
     LM,
     false},
    {"IMS equal", {H("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")}, NULL, LM, true},
    {"IMS later", {H("If-Modified-Since", "Mon, 07 Nov 1994 08:49:37 GMT")}, NULL, LM, true},
    {"IMS earlier", {H("If-Modified-Since", "Sat, 05 Nov 1994 08:49:37 GMT")}, NULL, LM, false},
    {"IMS RFC 850", {H("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")}, NULL, LM, true},
    {"IMS invalid", {H("If-Modified-Since", "yesterday")}, NULL, LM, false},
    {"IMS in the future",
     {H("If-Modified-Since", "Fri, 31 Dec 2100 00:00:00 GMT")},
     NULL,
     LM,
     false},
    {"IMS twice",
     {H("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
      H("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")},
     NULL,
     LM,
     false},
    {"IMS without Last-Modified",
     {H("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")},
     "\"abc\"",
     C9_NO_TIME,
     false},
    {"no conditional", {H("Accept", "*/*")}, "\"abc\"", LM, false},
};

static void cond_case(const struct cond_case *c)
{
    bool got = c9_not_modified(c->req, nh(c->req), c->etag, c->last_modified, NOW);

    cr_expect_eq(got, c->want, "%s: got %d", c->name, got);
}

Test(cond, table)
{
    size_t i;

    for (i = 0; i < COUNT(cond_cases); i++)
        cond_case(&cond_cases[i]);
}

/* ---- invalidation ------------------------------------------------------------ */

struct inval_case {
    const char *method;
    int status;
    bool want;
};

static const struct inval_case inval_cases[] = {
    {"GET", 200, false},  {"HEAD", 200, false},   {"OPTIONS", 204, false}, {"TRACE", 200, false},
    {"POST", 200, true},  {"PUT", 201, true},     {"DELETE", 204, true},   {"PATCH", 200, true},
    {"POST", 303, true},  {"PURGE", 200, true},   {"get", 200, true},      {NULL, 200, true},
    {"POST", 404, false}, {"DELETE", 500, false}, {"POST", 100, false},    {"PUT", 400, false},
};

static void inval_case(const struct inval_case *c)
{
    cr_expect_eq(c9_method_invalidates(c->method, c->status), c->want, "%s %d",
                 c->method ? c->method : "(null)", c->status);
}

Test(inval, table)
{
    size_t i;

    for (i = 0; i < COUNT(inval_cases); i++)
        inval_case(&inval_cases[i]);
}

/* ---- header lookups ------------------------------------------------------------ */

Test(hdr, lookups_and_lists)
{
    struct c9_hdr h[] = {H("Cache-Control", "a, \"b,c\" , ,d"), H("X", "1"),
                         H("cache-CONTROL", "e"), H("Cache-Control", "\"unterminated, f")};
    struct c9_list it;
    const char *e;
    size_t len;
    static const char *const want[] = {"a", "\"b,c\"", "d", "e", "\"unterminated, f"};
    size_t k = 0;

    cr_assert_eq(c9_hdr_get(h, 4, "x"), &h[1]);
    cr_assert_eq(c9_hdr_get(h, 4, "y"), NULL);
    cr_assert_eq(c9_hdr_get(NULL, 0, "x"), NULL);
    cr_assert_eq(c9_hdr_count(h, 4, "CACHE-control"), 3);
    c9_list_init(&it, h, 4, "cache-control");
    while (c9_list_next(&it, &e, &len)) {
        cr_assert_lt(k, 5);
        cr_assert_eq(len, strlen(want[k]), "member %zu", k);
        cr_assert(memcmp(e, want[k], len) == 0, "member %zu", k);
        k++;
    }
    cr_assert_eq(k, 5);
    cr_assert(!c9_list_next(&it, &e, &len), "stays exhausted");
}

/* ---- robustness ------------------------------------------------------------- */

/* Deterministic noise from a tiny LCG, biased toward the bytes the parsers
 * care about. Values live in exact-size heap blocks so that ASan catches
 * any read past a length. */
static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static char *noise(uint32_t *seed, size_t n)
{
    static const char alphabet[] = "\"\\,=; \t*W/0123456789-:GMTSunNovmax-ageno-storeVaryAcept\x01";
    char *p = malloc(n ? n : 1);
    size_t i;

    cr_assert_not_null(p);
    for (i = 0; i < n; i++)
        p[i] = (lcg(seed) & 3) ? alphabet[lcg(seed) % (sizeof(alphabet) - 1)] : (char)lcg(seed);
    return p;
}

Test(robust, random_bytes_stay_in_bounds)
{
    static const char *const names[] = {"Cache-Control",     "Vary", "If-None-Match",
                                        "If-Modified-Since", "Age",  "Expires"};
    uint32_t seed = 12345;
    int round;

    for (round = 0; round < 3000; round++) {
        struct c9_hdr h[4];
        char *v[4];
        char key[64];
        struct c9_cc cc;
        int64_t t;
        size_t k;
        int rc;

        for (k = 0; k < 4; k++) {
            size_t n = lcg(&seed) % 40;

            v[k] = noise(&seed, n);
            h[k] = (struct c9_hdr){names[lcg(&seed) % 6], 0, v[k], n};
            h[k].name_len = strlen(h[k].name);
        }
        c9_parse_cc(h, 4, &cc);
        cr_assert(cc.max_age >= C9_ABSENT && cc.max_age <= C9_DELTA_MAX);
        cr_assert(cc.min_fresh >= C9_ABSENT && cc.min_fresh <= C9_DELTA_MAX);
        (void)c9_parse_http_date(h[0].value, h[0].value_len, NOW, &t);
        rc = c9_vary_key(h, 4, h, 4, key, sizeof(key));
        cr_assert(rc == -EINVAL || rc == -E2BIG || (rc >= 0 && (size_t)rc == strlen(key)));
        (void)c9_not_modified(h, 4, "W/\"x\"", LM, NOW);
        (void)c9_storable("GET", 200, h, 4, h, 4, NULL);
        t = c9_freshness_lifetime(h, 4, NOW, 60, true);
        cr_assert(t >= 0 && t <= C9_DELTA_MAX);
        t = c9_age_value(h, 4);
        cr_assert(t >= 0 && t <= C9_DELTA_MAX);
        for (k = 0; k < 4; k++)
            free(v[k]);
    }
}
