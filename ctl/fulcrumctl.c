/* fulcrumctl.c - main(): parse, read the token, one request, print. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define CTL_TOKEN_MAX 1026 /* the server's ADMIN_TOKEN_MAX, a newline, a NUL */

/* The answer: raw with --json, else the human form; errors to stderr. */
static int ctl_show(const struct ctl_args *a, const struct ctl_resp *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    int rc = r->status >= 200 && r->status < 300 ? CTL_OK : CTL_SERVER;

    if (a->json)
        fwrite(r->body, 1, r->len, stdout);
    if (rc != CTL_OK)
        fprintf(stderr, "fulcrumctl: %d: %s\n", r->status,
                cJSON_IsString(e) ? e->valuestring : "error");
    else if (!j)
        fprintf(stderr, "fulcrumctl: the answer is not JSON\n");
    else if (!a->json && ctl_print(stdout, a->view, j) < 0)
        fprintf(stderr, "fulcrumctl: the answer does not have the expected shape\n");
    else {
        cJSON_Delete(j);
        return CTL_OK;
    }
    cJSON_Delete(j);
    return CTL_SERVER;
}

int main(int argc, char **argv)
{
    char err[512], path[256], token[CTL_TOKEN_MAX];
    struct ctl_args a;
    struct ctl_resp r;
    int rc;

    if (ctl_parse_args(argc, argv, &a, err, sizeof(err))) {
        fprintf(stderr, "fulcrumctl: %s\n", err);
        return CTL_USAGE;
    }
    if (a.help) {
        ctl_usage(stdout);
        return CTL_OK;
    }
    if (a.version) {
        printf("fulcrumctl %s\n", CTL_VERSION);
        return CTL_OK;
    }
    if (ctl_path(&a, path, sizeof(path))) {
        fprintf(stderr, "fulcrumctl: node name too long\n");
        return CTL_USAGE;
    }
    if (a.token_file && ctl_read_token(a.token_file, token, sizeof(token), err, sizeof(err))) {
        fprintf(stderr, "fulcrumctl: %s\n", err);
        return CTL_USAGE;
    }
    rc = ctl_http(a.admin, a.method, path, a.token_file ? token : NULL, a.body, &r, err,
                  sizeof(err));
    memset(token, 0, sizeof(token));
    if (rc) {
        fprintf(stderr, "fulcrumctl: %s\n", err);
        return rc == -EPROTO || rc == -EFBIG   ? CTL_SERVER
               : rc == -EINVAL || rc == -E2BIG ? CTL_USAGE
                                               : CTL_CONNECT;
    }
    rc = ctl_show(&a, &r);
    free(r.body);
    return rc;
}
