/* test_admin_api.c - the runtime API's parsing (balancer/admin_api.c) and
 * the admin token (balancer/admin_auth.c): weight values, /metrics parsed
 * back into JSON, node names, Bearer values, token files and the verdicts. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_api.h"
#include "admin_auth.h"

static int weight(const char *q, const char *body, int *w)
{
    const char *err = NULL;
    int r = admin_api_parse_weight(q, q ? strlen(q) : 0, body, body ? strlen(body) : 0, w, &err);

    if (r)
        cr_assert_not_null(err);
    return r;
}

Test(admin_api, weight_from_query_body_form_and_json)
{
    int w = -1;

    cr_assert_eq(weight("weight=7", NULL, &w), 0);
    cr_assert_eq(w, 7);
    cr_assert_eq(weight("x=1&weight=256", NULL, &w), 0);
    cr_assert_eq(w, 256);
    cr_assert_eq(weight(NULL, " 0\n", &w), 0);
    cr_assert_eq(w, 0);
    cr_assert_eq(weight(NULL, "weight=12", &w), 0);
    cr_assert_eq(w, 12);
    cr_assert_eq(weight(NULL, "{\"weight\": 42}", &w), 0);
    cr_assert_eq(w, 42);
    cr_assert_eq(weight(NULL, "{\"weight\": 43}\r\n", &w), 0, "whitespace after it is fine");
    cr_assert_eq(w, 43);
    cr_assert_eq(weight("weight=5", "9", &w), 0, "the query wins");
    cr_assert_eq(w, 5);
}

Test(admin_api, weight_rejects_what_is_not_0_to_256)
{
    int w = 99;

    cr_assert_eq(weight("weight=257", NULL, &w), -ERANGE);
    cr_assert_eq(weight(NULL, "-1", &w), -EINVAL);
    cr_assert_eq(weight(NULL, "1.5", &w), -EINVAL);
    cr_assert_eq(weight(NULL, "12abc", &w), -EINVAL);
    cr_assert_eq(weight(NULL, "99999999999999999999", &w), -ERANGE);
    cr_assert_eq(weight(NULL, "{\"weight\":1.5}", &w), -EINVAL);
    cr_assert_eq(weight(NULL, "{\"weight\":300}", &w), -ERANGE);
    cr_assert_eq(weight(NULL, "{\"weight\":\"3\"}", &w), -EINVAL);
    cr_assert_eq(weight(NULL, "{\"weight\":3", &w), -EINVAL);
    cr_assert_eq(weight(NULL, "{\"weight\":5}garbage", &w), -EINVAL, "junk after the object");
    cr_assert_eq(weight(NULL, "{\"weight\":5}{}", &w), -EINVAL, "two objects");
    cr_assert_eq(weight("weight=", NULL, &w), -EINVAL);
    cr_assert_eq(weight(NULL, "", &w), -EINVAL);
    cr_assert_eq(weight(NULL, NULL, &w), -EINVAL);
    cr_assert_eq(w, 99, "nothing stored on error");
}

Test(admin_api, prom_text_to_nested_json)
{
    static const char text[] = "# HELP a_total x\n# TYPE a_total counter\na_total 40\n"
                               "r_total{reason=\"maxconn\"} 1\nr_total{reason=\"emfile\"} 2\n"
                               "two{a=\"x\",b=\"q\\\"z\"} 3.5\nfulcrum_node_x{node=\"n\"} 9\n";
    cJSON *o = cJSON_CreateObject();
    const cJSON *r, *two;

    cr_assert_eq(admin_api_prom_to_json(text, strlen(text), "fulcrum_node_", o), 4);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(o, "a_total")->valuedouble, 40);
    r = cJSON_GetObjectItemCaseSensitive(o, "r_total");
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(r, "maxconn")->valuedouble, 1);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(r, "emfile")->valuedouble, 2);
    two = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "two"), "x");
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(two, "q\"z")->valuedouble, 3.5);
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "fulcrum_node_x"));
    cJSON_Delete(o);
}

Test(admin_api, prom_text_garbage_is_refused)
{
    static const char *const bad[] = {"a_total\n", "a_total{x=\"1\" 3\n", "a_total{x=1} 3\n",
                                      "a_total abc\n", "a_total{x=\"unterminated} 1\n"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *o = cJSON_CreateObject();

        cr_assert_eq(admin_api_prom_to_json(bad[i], strlen(bad[i]), NULL, o), -EINVAL, "%s",
                     bad[i]);
        cJSON_Delete(o);
    }
}

Test(admin_api, node_names)
{
    cr_assert(admin_api_name_valid("cache-a", 7));
    cr_assert(admin_api_name_valid("10.0.0.5:8080", 13));
    cr_assert_not(admin_api_name_valid("", 0));
    cr_assert_not(admin_api_name_valid("a/b", 3));
    cr_assert_not(admin_api_name_valid("a%2f", 4));
}

Test(admin_auth, bearer_values)
{
    const char *t;
    size_t n;

    cr_assert(admin_auth_bearer("Bearer abc", 10, &t, &n));
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(t, "abc", 3), 0);
    cr_assert(admin_auth_bearer("bearer   abc  ", 14, &t, &n));
    cr_assert_eq(n, 3);
    cr_assert_not(admin_auth_bearer("Basic abc", 9, &t, &n));
    cr_assert_not(admin_auth_bearer("Bearer", 6, &t, &n));
    cr_assert_not(admin_auth_bearer("Bearerabc", 9, &t, &n));
    cr_assert_not(admin_auth_bearer("Bearer a b", 10, &t, &n));
}

static const char *write_file(const char *text, mode_t mode)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/fulcrum-tok-XXXXXX");
    fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

Test(admin_auth, token_file_rules)
{
    uint8_t h[ADMIN_TOKEN_HASH];
    char err[256];
    const char *p;

    p = write_file("0123456789abcdef\n", 0600);
    cr_assert_eq(admin_auth_load(p, h, err, sizeof(err)), 0, "%s", err);
    unlink(p);
    p = write_file("0123456789abcdef\n", 0640);
    cr_assert_eq(admin_auth_load(p, h, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "chmod 600"), "%s", err);
    unlink(p);
    p = write_file("short\n", 0600);
    cr_assert_eq(admin_auth_load(p, h, err, sizeof(err)), -EINVAL);
    unlink(p);
    p = write_file("0123456789 abcdef\n", 0600);
    cr_assert_eq(admin_auth_load(p, h, err, sizeof(err)), -EINVAL);
    unlink(p);
    cr_assert_lt(admin_auth_load("/nonexistent/token", h, err, sizeof(err)), 0);
}

Test(admin_auth, verdicts_and_counts)
{
    struct sockaddr_in lo = {.sin_family = AF_INET}, wide = {.sin_family = AF_INET};
    const char *p = write_file("0123456789abcdef", 0600);
    struct admin_auth au;
    char err[256];

    lo.sin_addr.s_addr = htonl(0x7f000001);
    wide.sin_addr.s_addr = htonl(0);
    cr_assert_eq(admin_auth_init(&au, NULL, false, &lo, err, sizeof(err)), 0);
    cr_assert_eq(admin_auth_check(&au, true, false, NULL, 0, 0), ADMIN_AUTH_OK, "no token: open");
    cr_assert_eq(admin_auth_init(&au, "", false, &wide, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "--admin-token-file"), "%s", err);
    cr_assert_eq(admin_auth_init(&au, "", true, &wide, err, sizeof(err)), 0);
    cr_assert_eq(admin_auth_init(&au, p, false, &wide, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(admin_auth_check(&au, false, true, NULL, 0, 0), ADMIN_AUTH_OK);
    cr_assert_eq(admin_auth_check(&au, false, false, NULL, 0, 0), ADMIN_AUTH_MISSING);
    cr_assert_eq(admin_auth_check(&au, true, true, NULL, 0, 0), ADMIN_AUTH_MISSING);
    cr_assert_eq(admin_auth_check(&au, true, true, "Bearer 0123456789abcdef", 23, 1),
                 ADMIN_AUTH_OK);
    cr_assert_eq(admin_auth_check(&au, true, true, "Bearer 0123456789abcdeF", 23, 1),
                 ADMIN_AUTH_BAD);
    cr_assert_eq(admin_auth_check(&au, false, true, "Bearer 0123456789abcde", 22, 1),
                 ADMIN_AUTH_BAD, "a wrong token on a read is refused too");
    cr_assert_eq(admin_auth_check(&au, true, true, "Bearer 0123456789abcdef", 23, 2),
                 ADMIN_AUTH_BAD, "two Authorization headers");
    cr_assert_eq(au.refused[ADMIN_AUTH_MISSING], 2);
    cr_assert_eq(au.refused[ADMIN_AUTH_BAD], 3);
    admin_auth_done(&au);
    unlink(p);
}
