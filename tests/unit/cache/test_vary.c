/* test_vary.c - cache/vary.c: what a Vary allows, secondary keys as a
 * table of cases (normalization, escaping, absent fields), order
 * independence, caps, and the stored names round trip. Every case asserts a
 * concrete value. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rfc9111.h"

/* A header from two literals. */
#define H(n, v)                            \
    {                                      \
        n, sizeof(n) - 1, v, sizeof(v) - 1 \
    }
#define MAXH 6

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Number of used slots in a zero-terminated header array. */
static size_t nh(const struct c9_hdr *h)
{
    size_t n = 0;

    while (n < MAXH && h[n].name != NULL)
        n++;
    return n;
}

struct vary_case {
    const char *name;
    struct c9_hdr resp[MAXH];
    struct c9_hdr req[MAXH];
    int err; /* 0: success, the key length is strlen(want) */
    const char *want;
};

static const struct vary_case vary_cases[] = {
    {"no Vary", {{0}}, {H("Accept", "text/html")}, 0, ""},
    {"empty Vary", {H("Vary", " , ")}, {H("Accept", "text/html")}, 0, ""},
    {"one field",
     {H("Vary", "Accept-Encoding")},
     {H("Accept-Encoding", "gzip, deflate")},
     0,
     "accept-encoding:gzip,deflate\n"},
    {"names lowercased and sorted",
     {H("Vary", "User-Agent, accept-encoding")},
     {H("user-agent", "curl/8"), H("ACCEPT-ENCODING", "br")},
     0,
     "accept-encoding:br\nuser-agent:curl/8\n"},
    {"names deduplicated",
     {H("Vary", "Accept, ACCEPT"), H("Vary", "accept")},
     {H("Accept", "*/*")},
     0,
     "accept:*/*\n"},
    {"absent field", {H("Vary", "X-Foo")}, {{0}}, 0, "x-foo\n"},
    {"empty field is not absent", {H("Vary", "X-Foo")}, {H("X-Foo", "")}, 0, "x-foo:\n"},
    {"lines combined",
     {H("Vary", "Accept-Encoding")},
     {H("Accept-Encoding", "gzip"), H("Accept-Encoding", " br ")},
     0,
     "accept-encoding:gzip,br\n"},
    {"whitespace folded",
     {H("Vary", "Accept")},
     {H("Accept", "text/html;\t  q=0.9 ,  */*")},
     0,
     "accept:text/html; q=0.9,*/*\n"},
    {"quoted whitespace kept",
     {H("Vary", "X-A")},
     {H("X-A", "\"a  b, c\"")},
     0,
     "x-a:\"a  b, c\"\n"},
    {"control bytes and % escaped",
     {H("Vary", "X-A")},
     {H("X-A", "a\x01%\x7f")},
     0,
     "x-a:a%01%25%7F\n"},
    {"Vary: *", {H("Vary", "*")}, {{0}}, -EINVAL, ""},
    {"* among names", {H("Vary", "Accept, *")}, {{0}}, -EINVAL, ""},
    {"bad name", {H("Vary", "Accept Language")}, {{0}}, -EINVAL, ""},
};

static void vary_case(const struct vary_case *c)
{
    char out[256];
    int rc;

    memset(out, 'Z', sizeof(out));
    rc = c9_vary_key(c->resp, nh(c->resp), c->req, nh(c->req), out, sizeof(out));
    cr_expect_eq(rc, c->err == 0 ? (int)strlen(c->want) : c->err, "%s: rc %d", c->name, rc);
    cr_expect_str_eq(out, c->want, "%s: key \"%s\"", c->name, out);
}

Test(vary, table)
{
    size_t i;

    for (i = 0; i < COUNT(vary_cases); i++)
        vary_case(&vary_cases[i]);
}

Test(vary, order_independent)
{
    struct c9_hdr r1[] = {H("Vary", "Accept-Encoding, Accept-Language")};
    struct c9_hdr r2[] = {H("Vary", "accept-language"), H("VARY", "ACCEPT-ENCODING")};
    struct c9_hdr q1[] = {H("Accept-Language", "en"), H("Accept-Encoding", "gzip, br")};
    struct c9_hdr q2[] = {H("accept-encoding", "gzip"), H("X-Other", "1"),
                          H("accept-encoding", "br"), H("ACCEPT-LANGUAGE", " en ")};
    struct c9_hdr q3[] = {H("Accept-Encoding", "br, gzip"), H("Accept-Language", "en")};
    char k1[128], k2[128], k3[128];

    cr_assert_gt(c9_vary_key(r1, 1, q1, 2, k1, sizeof(k1)), 0);
    cr_assert_gt(c9_vary_key(r2, 2, q2, 4, k2, sizeof(k2)), 0);
    cr_assert_str_eq(k1, k2);
    cr_assert_str_eq(k1, "accept-encoding:gzip,br\naccept-language:en\n");
    /* members are not reordered: a different order is a different variant */
    cr_assert_gt(c9_vary_key(r1, 1, q3, 2, k3, sizeof(k3)), 0);
    cr_assert_str_neq(k1, k3);
}

Test(vary, cap)
{
    struct c9_hdr resp[] = {H("Vary", "Accept")};
    struct c9_hdr req[] = {H("Accept", "text/html")};
    char out[32];

    /* "accept:text/html\n" is 17 bytes and needs 18 with the NUL */
    cr_assert_eq(c9_vary_key(resp, 1, req, 1, out, 18), 17);
    cr_assert_str_eq(out, "accept:text/html\n");
    memset(out, 'Z', sizeof(out));
    cr_assert_eq(c9_vary_key(resp, 1, req, 1, out, 17), -E2BIG);
    cr_assert_eq(out[0], '\0');
    cr_assert_eq(out[17], 'Z', "wrote past cap");
    cr_assert_eq(c9_vary_key(resp, 1, req, 1, out, 0), -E2BIG);
    cr_assert_eq(c9_vary_key(NULL, 0, req, 1, out, 1), 0);
}

Test(vary, too_many_names)
{
    struct c9_hdr resp[C9_VARY_MAX_FIELDS + 1];
    char names[C9_VARY_MAX_FIELDS + 1][8];
    char out[1024];
    size_t i;

    for (i = 0; i <= C9_VARY_MAX_FIELDS; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%zu", i);
        resp[i] = (struct c9_hdr){"Vary", 4, names[i], strlen(names[i])};
    }
    cr_assert_gt(c9_vary_key(resp, C9_VARY_MAX_FIELDS, NULL, 0, out, sizeof(out)), 0);
    cr_assert_eq(c9_vary_key(resp, C9_VARY_MAX_FIELDS + 1, NULL, 0, out, sizeof(out)), -E2BIG);
}

Test(vary, names_round_trip)
{
    struct c9_hdr resp[] = {H("Vary", "User-Agent, ACCEPT-Encoding"), H("Vary", "accept-encoding")};
    struct c9_hdr req[] = {H("Accept-Encoding", "gzip"), H("User-Agent", "curl/8")};
    struct c9_hdr star[] = {H("Vary", "*")};
    char names[64], k1[128], k2[128];
    struct c9_hdr stored;

    cr_assert_eq(c9_vary_names(resp, 2, names, sizeof(names)), 26);
    cr_assert_str_eq(names, "accept-encoding,user-agent");
    stored = (struct c9_hdr){"Vary", 4, names, strlen(names)};
    cr_assert_gt(c9_vary_key(resp, 2, req, 2, k1, sizeof(k1)), 0);
    cr_assert_gt(c9_vary_key(&stored, 1, req, 2, k2, sizeof(k2)), 0);
    cr_assert_str_eq(k1, k2);
    cr_assert_eq(c9_vary_names(NULL, 0, names, sizeof(names)), 0);
    cr_assert_str_eq(names, "");
    cr_assert_eq(c9_vary_names(star, 1, names, sizeof(names)), -EINVAL);
    cr_assert_eq(c9_vary_names(resp, 2, names, 26), -E2BIG);
    cr_assert_str_eq(names, "");
}

Test(vary, form)
{
    struct c9_hdr none[] = {H("Accept", "x")};
    struct c9_hdr names[] = {H("Vary", "Accept, Accept-Encoding"), H("Vary", "accept")};
    struct c9_hdr star[] = {H("Vary", "Accept"), H("Vary", "*")};
    struct c9_hdr bad[] = {H("Vary", "Accept Language")};
    struct c9_hdr many[C9_VARY_MAX_FIELDS + 1];
    char n[C9_VARY_MAX_FIELDS + 1][8];

    cr_assert_eq(c9_vary_form(NULL, 0), C9_VARY_KEYABLE);
    cr_assert_eq(c9_vary_form(none, 1), C9_VARY_KEYABLE);
    cr_assert_eq(c9_vary_form(names, 2), C9_VARY_KEYABLE);
    cr_assert_eq(c9_vary_form(star, 2), C9_VARY_IS_STAR);
    cr_assert_eq(c9_vary_form(bad, 1), C9_VARY_BAD_NAME);
    for (size_t i = 0; i <= C9_VARY_MAX_FIELDS; i++) {
        snprintf(n[i], sizeof(n[i]), "x-%zu", i);
        many[i] = (struct c9_hdr){"Vary", 4, n[i], strlen(n[i])};
    }
    cr_assert_eq(c9_vary_form(many, C9_VARY_MAX_FIELDS), C9_VARY_KEYABLE);
    cr_assert_eq(c9_vary_form(many, C9_VARY_MAX_FIELDS + 1), C9_VARY_TOO_MANY);
    /* a repeated name counts once */
    many[C9_VARY_MAX_FIELDS] = many[0];
    cr_assert_eq(c9_vary_form(many, C9_VARY_MAX_FIELDS + 1), C9_VARY_KEYABLE);
}
