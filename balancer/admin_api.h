/* admin_api.h - the admin port's runtime API: JSON answers with a stable
 * schema (docs/admin.md "Runtime API"), what fulcrumctl speaks.
 *
 *   GET    /api/nodes                    every node of the registry
 *   GET    /api/nodes/NAME               one node
 *   POST   /api/nodes/NAME/drain         no new connections (the node, after)
 *   POST   /api/nodes/NAME/undrain
 *   POST   /api/nodes/NAME/weight        override: ?weight=N, or a body "N",
 *                                        "weight=N" or {"weight":N}; 0..256
 *   DELETE /api/nodes/NAME/weight        clear the override
 *   POST   /api/nodes/NAME/weight/clear  the same
 *   GET    /api/counters                 every balancer and monitor counter,
 *                                        named as in /metrics
 *   GET    /api/config                   every option, its effective value
 *                                        and its source (default, file, flag)
 *
 * Errors are {"error":"..."} with the HTTP status. admin.c does the HTTP and
 * the token check (admin_auth.h) before calling in here.
 *
 * Thread: the admin port's loop, which owns the registry and the monitor.
 */
#ifndef FULCRUM_BALANCER_ADMIN_API_H
#define FULCRUM_BALANCER_ADMIN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "admin_view.h"

#define ADMIN_NAME_MAX 63 /* a node name in a URL */

/* One parsed request, pointing into the connection's buffer. */
struct admin_api_req {
    unsigned method;                 /* enum http_method */
    const char *path, *query, *body; /* query without '?'; NULL when absent */
    size_t path_len, query_len, body_len;
    const char *peer; /* "ADDR:PORT", for the log */
};

/* Serves rq if its path is /api or under /api/: appends the JSON answer to
 * out and returns the HTTP status (with *allow set for a 405). Returns 0
 * for any other path (out untouched). */
int admin_api_handle(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                     const struct admin_api_req *rq, struct admin_view_buf *out,
                     const char **allow);

/* Drain or undrain in the registry and, for agent nodes, in the monitor
 * (a node the monitor knows and the registry not yet is drained there).
 * Returns 0, -ENOENT when neither knows the node, or another -errno. */
int admin_api_set_drain(const struct lb_admin_ctx *ctx, const char *name, bool drain);

/* GET /metrics: admin_metrics_prometheus() and the admin port's own
 * counters (fulcrum_admin_auth_refused_total). Same contract. */
int admin_api_metrics(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                      struct admin_view_buf *out, const char **err);

/* Node names in URLs: agent names ([A-Za-z0-9._-]) and static "HOST:PORT",
 * 1..ADMIN_NAME_MAX characters. */
bool admin_api_name_valid(const char *s, size_t n);

/* The weight of a weight request: `weight=N` in the query (& separated),
 * else the body "N", "weight=N" or {"weight":N} (whitespace around it
 * ignored). 0 with *out in 0..LB_OVERRIDE_MAX, or -EINVAL / -ERANGE with
 * *err a static text for the client. */
int admin_api_parse_weight(const char *query, size_t qlen, const char *body, size_t blen, int *out,
                           const char **err);

/* Adds the samples of a Prometheus text page to obj: an unlabelled sample
 * as "name": value, a labelled one as nested objects keyed by its label
 * values in order ("name": {"v1": {"v2": value}}). Families whose name
 * starts with skip_prefix (NULL: none) are left out. Returns how many
 * samples were added, or -EINVAL at the first line it cannot parse. */
int admin_api_prom_to_json(const char *text, size_t len, const char *skip_prefix, cJSON *obj);

#endif
