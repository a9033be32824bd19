/* ctl.h - fulcrumctl, the admin API's command-line client: its command
 * line (ctl_args.c), one HTTP exchange over a plain socket (ctl_http.c), and
 * the human tables (ctl_print.c). The API it speaks is docs/admin.md
 * "Runtime API"; the exit codes are part of its contract:
 *   0 done, 1 the server answered with an error (or garbage),
 *   2 usage (bad command line, unreadable token file), 3 cannot connect.
 */
#ifndef FULCRUM_CTL_H
#define FULCRUM_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

enum ctl_exit {
    CTL_OK = 0,
    CTL_SERVER = 1,  /* a non-2xx answer, or an answer that is not HTTP/JSON */
    CTL_USAGE = 2,   /* bad command line, unreadable token file */
    CTL_CONNECT = 3, /* no connection, or no answer at all */
};

#define CTL_VERSION       "0.1.0" /* the daemons' version */
#define CTL_DEFAULT_ADMIN "127.0.0.1:9901"
#define CTL_TIMEOUT_MS    10000
#define CTL_BODY_MAX      (32u << 20) /* largest answer read */

/* What the human output shows for the answer. */
enum ctl_view {
    CTL_VIEW_NODES = 0, /* {"nodes":[...]} as a table */
    CTL_VIEW_NODE,      /* one node object as key: value lines */
    CTL_VIEW_COUNTERS,  /* {"counters":{...}} as name value lines */
    CTL_VIEW_CONFIG,    /* {"config":{...}} as a KEY VALUE SOURCE table */
    CTL_VIEW_MAX
};

/* One invocation, parsed. Strings point into argv or are static. */
struct ctl_args {
    const char *admin;      /* HOST:PORT */
    const char *token_file; /* NULL: no Authorization header */
    bool json;              /* print the server's JSON as it came */
    bool help;
    bool version;
    const char *method, *path_pre, *path_suf, *name, *body; /* path: pre NAME suf */
    enum ctl_view view;
};

/* Parses argv. Returns 0, or -EINVAL with err filled (exit CTL_USAGE).
 * With --help (or --version), a->help (a->version) is set and nothing
 * else is required. */
int ctl_parse_args(int argc, char *const *argv, struct ctl_args *a, char *err, size_t errlen);
void ctl_usage(FILE *f);

/* The request path for a into buf: 0, or -ENAMETOOLONG. */
int ctl_path(const struct ctl_args *a, char *buf, size_t cap);

/* The token in path (trailing whitespace dropped) into buf, NUL-terminated.
 * 0 or -errno with err filled. */
int ctl_read_token(const char *path, char *buf, size_t cap, char *err, size_t errlen);

struct ctl_resp {
    int status;
    char *body; /* malloc'd, NUL-terminated; free() it */
    size_t len;
};

/* One request to admin (HOST:PORT) with Connection: close. token and body
 * may be NULL. Returns 0 with *r filled (any status), or -errno with err
 * filled: -E2BIG when the request is too long (CTL_USAGE); -EPROTO when the
 * answer is not HTTP and -EFBIG when it is over CTL_BODY_MAX (CTL_SERVER);
 * anything else when there is no connection or no complete answer
 * (CTL_CONNECT), -ECONNRESET for a close before or within the answer. */
int ctl_http(const char *admin, const char *method, const char *path, const char *token,
             const char *body, struct ctl_resp *r, char *err, size_t errlen);

/* Writes j in the human form of view to f; -EINVAL when j has not the
 * shape the view expects. */
int ctl_print(FILE *f, enum ctl_view view, const cJSON *j);

#endif
