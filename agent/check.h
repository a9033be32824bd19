/* check.h - the agent's check of its cache node, one at a time, each
 * bounded by a timeout.
 *
 * tcp: a non-blocking connect; up when the handshake completes.
 * http: the same connect, then "GET PATH HTTP/1.1" with Connection: close;
 * up when a 2xx status line comes back. A cache process that is stopped
 * (SIGSTOP) or whose event loop is stuck still completes TCP handshakes, as
 * the kernel answers for it until its accept queue is full: only the http
 * check sees that it no longer serves.
 *
 * Source address (http): when the node's address is one of this host's but
 * not a loopback one, the check connects from 127.0.0.1, so that
 * fulcrum-cache, which answers /_fulcrum/stats to loopback clients only,
 * answers the agent beside it. A node on another host is checked from the
 * address the kernel picks.
 *
 * Runs in the caller's libev loop (one thread); the callback is called from
 * that loop, or from check_start() itself when the connect fails at once.
 */
#ifndef FULCRUM_AGENT_CHECK_H
#define FULCRUM_AGENT_CHECK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#define CHECK_PATH_MAX 200 /* bytes of --check-path */
#define CHECK_REQ_MAX  512 /* the request: line, Host, Connection, User-Agent */
#define CHECK_RESP_MAX 256 /* bytes read while looking for the status line */
#define CHECK_WHY_MAX  64

enum check_kind {
    CHECK_TCP = 0, /* connect only */
    CHECK_HTTP,    /* connect, GET, 2xx */
    CHECK_KIND_MAX
};

/* "tcp", "http", NULL: the names of enum check_kind, for the config table. */
extern const char *const check_kind_names[];

/* Whether path is a /PATH check_init() takes: 1..CHECK_PATH_MAX printable
 * characters, no spaces. */
bool check_path_ok(const char *path);

/* One check's result: up, or down with a short reason ("Connection
 * refused", "timed out", "HTTP 503", ...) valid during the call only. */
typedef void (*check_cb)(void *arg, bool up, const char *why);

/* Embedded in its owner; every field is private to check.c. */
struct check {
    struct ev_loop *loop;
    enum check_kind kind;
    struct sockaddr_in addr;
    bool from_lo; /* http: connect from 127.0.0.1 (see above) */
    double timeout;
    check_cb cb;
    void *arg;
    int fd; /* -1 between checks */
    bool connected;
    ev_io io;
    ev_timer timer;
    char req[CHECK_REQ_MAX];
    size_t req_len, sent;
    char resp[CHECK_RESP_MAX];
    size_t got;
};

/* Prepares ck to check addr. path (http only) must start with '/' and hold
 * 1..CHECK_PATH_MAX printable ASCII characters without spaces. timeout > 0,
 * in seconds. Returns 0, or -EINVAL with err filled. Nothing runs yet. */
int check_init(struct check *ck, struct ev_loop *loop, enum check_kind kind,
               const struct sockaddr_in *addr, const char *path, double timeout, check_cb cb,
               void *arg, char *err, size_t errlen);

/* Starts a check. Returns false, doing nothing, while one is running. */
bool check_start(struct check *ck);

bool check_running(const struct check *ck);

/* Stops a running check without calling back; closes its socket. Safe to
 * call at any time, also twice. */
void check_cancel(struct check *ck);

#endif
