/* test_ctl.c - fulcrumctl's command line and token file (ctl/ctl_args.c)
 * and its human output (ctl/ctl_print.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

static int parse(struct ctl_args *a, char *path, const char *const *argv)
{
    char err[256];
    int argc = 0, r;

    while (argv[argc])
        argc++;
    r = ctl_parse_args(argc, (char *const *)argv, a, err, sizeof(err));
    if (r == 0 && !a->help && !a->version)
        cr_assert_eq(ctl_path(a, path, 256), 0);
    return r;
}

Test(ctl, commands_make_requests)
{
    struct ctl_args a;
    char path[256];

    cr_assert_eq(parse(&a, path, (const char *const[]){"ctl", "nodes", NULL}), 0);
    cr_assert_str_eq(a.method, "GET");
    cr_assert_str_eq(path, "/api/nodes");
    cr_assert_str_eq(a.admin, CTL_DEFAULT_ADMIN);
    cr_assert_eq(parse(&a, path,
                       (const char *const[]){"ctl", "--admin=10.0.0.5:9901", "drain", "cache-a",
                                             "--json", NULL}),
                 0);
    cr_assert_str_eq(a.method, "POST");
    cr_assert_str_eq(path, "/api/nodes/cache-a/drain");
    cr_assert_str_eq(a.admin, "10.0.0.5:9901");
    cr_assert(a.json);
    cr_assert_eq(parse(&a, path, (const char *const[]){"ctl", "weight", "n:1", "17", NULL}), 0);
    cr_assert_str_eq(path, "/api/nodes/n:1/weight");
    cr_assert_str_eq(a.body, "17");
    cr_assert_eq(parse(&a, path, (const char *const[]){"ctl", "weight", "n", "clear", NULL}), 0);
    cr_assert_str_eq(a.method, "DELETE");
    cr_assert_null(a.body);
    cr_assert_eq(
        parse(&a, path, (const char *const[]){"ctl", "--token-file", "/t", "config", NULL}), 0);
    cr_assert_str_eq(a.token_file, "/t");
    cr_assert_str_eq(path, "/api/config");
    cr_assert_eq(parse(&a, path, (const char *const[]){"ctl", "--help", NULL}), 0);
    cr_assert(a.help);
    cr_assert_eq(parse(&a, path, (const char *const[]){"ctl", "--version", NULL}), 0);
    cr_assert(a.version && !a.help);
}

Test(ctl, bad_command_lines)
{
    const char *const *const bad[] = {
        (const char *const[]){"ctl", NULL},
        (const char *const[]){"ctl", "frob", NULL},
        (const char *const[]){"ctl", "node", NULL},
        (const char *const[]){"ctl", "node", "a/../b", NULL},
        (const char *const[]){"ctl", "weight", "n", "257", NULL},
        (const char *const[]){"ctl", "weight", "n", "-1", NULL},
        (const char *const[]){"ctl", "nodes", "extra", NULL},
        (const char *const[]){"ctl", "--admin", NULL},
        (const char *const[]){"ctl", "--bogus", "nodes", NULL},
    };
    struct ctl_args a;
    char path[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(&a, path, bad[i]), -EINVAL, "case %zu", i);
}

Test(ctl, token_file)
{
    char path[] = "/tmp/fulcrum-ctl-XXXXXX", buf[64], err[256];
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "tok-en\n\n", 8), 8);
    close(fd);
    cr_assert_eq(ctl_read_token(path, buf, sizeof(buf), err, sizeof(err)), 0);
    cr_assert_str_eq(buf, "tok-en");
    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert_eq(write(fd, "two words\n", 10), 10);
    close(fd);
    cr_assert_eq(ctl_read_token(path, buf, sizeof(buf), err, sizeof(err)), -EINVAL);
    unlink(path);
    cr_assert_lt(ctl_read_token(path, buf, sizeof(buf), err, sizeof(err)), 0);
}

Test(ctl, human_output)
{
    cJSON *j = cJSON_Parse("{\"nodes\":[{\"name\":\"cache-a\",\"addr\":\"1.2.3.4:80\",\"state\":"
                           "\"up\",\"weight\":120,\"effective_weight\":0,\"override\":0,"
                           "\"drain\":false}]}");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    cr_assert_eq(ctl_print(f, CTL_VIEW_NODES, j), 0);
    cr_assert_eq(ctl_print(f, CTL_VIEW_COUNTERS, j), -EINVAL, "wrong shape");
    fclose(f);
    cr_assert(strstr(text, "NAME"), "%s", text);
    cr_assert(strstr(text, "cache-a"), "%s", text);
    cr_assert(strstr(text, "120"), "%s", text);
    free(text);
    cJSON_Delete(j);
}
