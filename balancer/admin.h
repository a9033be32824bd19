/* admin.h - the admin port: plain HTTP on the main thread's libev loop.
 *
 *   GET  /status            the status table as text (the monitor's format)
 *   GET  /status.json       the monitor's JSON schema, each node with its
 *                           balancer counters added (active, conns_total,
 *                           bytes_in, bytes_out, connect_failures,
 *                           ejections, lb_weight)
 *   GET  /metrics           Prometheus text format
 *   GET  /                  the live status page (status_page.html)
 *   GET  /history.json      the last minutes per node (history.h)
 *   POST /nodes/NAME/drain  no new connections to NAME; existing ones finish
 *   POST /nodes/NAME/undrain
 *   /api/...                the runtime API in JSON (admin_api.h)
 *
 * With an admin token (--admin-token-file) every write, and every read from
 * a peer outside 127.0.0.0/8, needs `Authorization: Bearer TOKEN`.
 *
 * One request per connection (Connection: close); request line and headers
 * capped at 8 KiB; idle connections closed after 5 s; at most 64 at once.
 */
#ifndef FULCRUM_BALANCER_ADMIN_H
#define FULCRUM_BALANCER_ADMIN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "cfg.h"
#include "counters.h"
#include "mon.h"
#include "nodes.h"

/* What the admin port reads and acts on; all owned by the caller and
 * outliving the admin server. */
struct lb_admin_ctx {
    struct lb_nodes *nodes;
    struct mon *mon; /* NULL when running without agents (static nodes only) */
    struct lb_counters *ctr;
    const char *policy;
    unsigned workers;
    unsigned maxconn;
    uint64_t start_ms;          /* monotonic */
    double idle_timeout;        /* seconds an admin connection may idle; 0: 5 s */
    struct lb_history *history; /* GET /history.json; NULL: served empty */
    /* the runtime API (admin_api.h) */
    const char *token_file;      /* --admin-token-file; NULL or "": no token */
    bool insecure;               /* --admin-insecure: no token needed beyond loopback */
    const struct cfg_prog *prog; /* GET /api/config: the table, */
    const void *cfg;             /* the config struct it filled, */
    int argc;                    /* and the command line it read */
    char *const *argv;
    const struct admin_auth *auth; /* set by lb_admin_new: the refusal counters */
};

struct lb_admin;
struct lb_history;
struct admin_api;

/* Listens on addr (port 0: ephemeral). NULL with err filled on failure,
 * which includes a bad token file and a non-loopback addr without a token
 * unless ctx->insecure. */
struct lb_admin *lb_admin_new(struct ev_loop *loop, const struct sockaddr_in *addr,
                              const struct lb_admin_ctx *ctx, char *err, size_t errlen);
unsigned lb_admin_port(const struct lb_admin *a);
void lb_admin_free(struct lb_admin *a);

#endif
