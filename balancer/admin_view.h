/* admin_view.h - what the admin port shows: the response body buffer, the
 * snapshot of the balancer the pages are rendered from, and the pages
 * GET /status, /status.json and / (the Prometheus page is admin_metrics.h).
 *
 * Thread: the thread that owns the node registry and the monitor (the admin
 * port's loop), like everything in admin.h.
 */
#ifndef FULCRUM_BALANCER_ADMIN_VIEW_H
#define FULCRUM_BALANCER_ADMIN_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h" /* struct lb_admin_ctx */
#include "net.h"   /* NET_ADDRSTRLEN */
#include "node.h"  /* struct lb_node */
#include "table.h" /* struct mon_node, enum mon_state */

#define ADMIN_VIEW_BUF_MAX (16u << 20) /* largest response body */

/* ---- the response body ---- */

/* A growable text buffer, embedded in its owner: all zeros is an empty
 * buffer, ready to use. The memory p points to is the buffer's own, freed
 * by admin_view_buf_done. When p is not NULL it holds len bytes and a NUL. */
struct admin_view_buf {
    char *p;
    size_t len, cap;
    bool toobig; /* something did not fit under ADMIN_VIEW_BUF_MAX: answer 500 */
};

/* Appends; past ADMIN_VIEW_BUF_MAX nothing more is appended and toobig is set.
 * Allocation failure aborts (xalloc.h). */
void admin_view_buf_put(struct admin_view_buf *b, const char *s, size_t n);
void admin_view_buf_puts(struct admin_view_buf *b, const char *s);
__attribute__((format(printf, 2, 3))) void admin_view_buf_printf(struct admin_view_buf *b,
                                                                 const char *fmt, ...);
/* Empties the buffer and clears toobig, keeping its memory. */
void admin_view_buf_reset(struct admin_view_buf *b);
/* Frees the memory: p NULL, len and cap 0. */
void admin_view_buf_done(struct admin_view_buf *b);

/* ---- the snapshot every page is built from ---- */

struct admin_view_node {
    const struct lb_node *n;
    const struct mon_node *row; /* NULL: static, gone, or no monitor */
    enum mon_state state;
    bool ejected;
    char addr[NET_ADDRSTRLEN];
    unsigned lb_weight, active;
    uint64_t conns, bytes_in, bytes_out, fails, ejections;
};

/* The monitor's rows and every balancer node with its atomics read once,
 * with name indexes. Filled by admin_view_snap_take, which allocates the
 * arrays; admin_view_snap_done frees them. The nodes point into the
 * registry: the snapshot must not outlive the request it serves. */
struct admin_view_snap {
    uint64_t now_ms, wall_ms, round;
    struct mon_node *rows; /* the monitor's, rank order */
    size_t nrows;
    const struct mon_node **rows_by_name;
    struct admin_view_node *nodes; /* every balancer node, by index */
    const struct admin_view_node **nodes_by_name;
    size_t n;
};

void admin_view_snap_take(const struct lb_admin_ctx *ctx, struct admin_view_snap *s);
void admin_view_snap_done(struct admin_view_snap *s);
/* Seconds from ctx->start_ms to the snapshot (0 if the clock went back). */
double admin_view_uptime_s(const struct lb_admin_ctx *ctx, const struct admin_view_snap *s);

/* ---- the pages ---- */

/* Each takes its own snapshot of ctx and appends the page to out (owned by
 * the caller, which sends it; out->toobig says it did not fit).
 * admin_refused: admin connections refused so far, for the pages that show
 * it. Returns 0, or -errno with *err set to a static text for the client
 * (out then holds nothing worth sending). */
int admin_view_status_text(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                           struct admin_view_buf *out, const char **err);
int admin_view_status_json(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                           struct admin_view_buf *out, const char **err);
int admin_view_html(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                    struct admin_view_buf *out, const char **err);

#endif
