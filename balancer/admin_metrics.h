/* admin_metrics.h - the admin port's GET /metrics page: Prometheus text
 * format 0.0.4. Same contract and thread as the pages in admin_view.h.
 */
#ifndef FULCRUM_BALANCER_ADMIN_METRICS_H
#define FULCRUM_BALANCER_ADMIN_METRICS_H

#include <stdint.h>

#include "admin.h"
#include "admin_view.h"

/* Takes a snapshot of ctx and appends the exposition to out (owned by the
 * caller; out->toobig says it did not fit). admin_refused: admin connections
 * refused so far. Returns 0 (err is not used: this page cannot fail). */
int admin_metrics_prometheus(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                             struct admin_view_buf *out, const char **err);

#endif
