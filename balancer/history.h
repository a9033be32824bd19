/* history.h - the balancer's recent past for the status page: once a
 * second, every node's lb weight, active connections and smoothed RTT go
 * into a fixed ring per node, served as GET /history.json (docs/admin.md).
 *
 * Memory is bounded: at most max_nodes rings of len samples, each ring
 * allocated when its node first appears and freed as soon as the node is
 * absent from a tick (it left the monitor's table). A node that comes back
 * starts a new ring.
 *
 * The samples of a node are contiguous ticks ending at the latest one, so
 * a node holding c samples covers the last c entries of the tick clock.
 *
 * Thread: the thread of the loop given to lb_history_start (the main
 * thread, owner of the node registry and the monitor); nothing here locks.
 */
#ifndef FULCRUM_BALANCER_HISTORY_H
#define FULCRUM_BALANCER_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "admin.h" /* struct lb_admin_ctx */

#define LB_HISTORY_LEN        300           /* samples per node: 5 minutes at 1 s */
#define LB_HISTORY_INTERVAL_S 1.0           /* the sampler's period */
#define LB_HISTORY_JSON_CELLS (256u * 1024) /* node-samples in one history.json */

struct admin_view_buf;
struct lb_nodes;
struct mon;

struct lb_history_sample {
    uint32_t weight; /* the weight workers picked by (lb_weight) */
    uint32_t active; /* client connections open to the node */
    float rtt_ms;    /* smoothed probe RTT; NaN when none (static node, no response yet) */
};

struct lb_history;

/* An empty history of len (>= 2) samples per node for at most max_nodes
 * nodes. Aborts on allocation failure. */
struct lb_history *lb_history_new(unsigned len, unsigned max_nodes);
/* Stops the sampler if it runs and frees everything; NULL is a no-op. */
void lb_history_free(struct lb_history *h);

/* ---- recording: one tick is begin, put per node, end ---- */

/* Opens tick; wall_ms is its time (ms since the epoch), as shown. */
void lb_history_tick_begin(struct lb_history *h, uint64_t wall_ms);
/* Records node `name`'s sample for the open tick. Returns 0, -EEXIST when
 * the name was already recorded in this tick, -ENOSPC when max_nodes nodes
 * are held (the sample is dropped and counted), -EINVAL for an empty or
 * over-long name. */
int lb_history_put(struct lb_history *h, const char *name, const struct lb_history_sample *s);
/* Closes the tick: every node without a sample in it is dropped. */
void lb_history_tick_end(struct lb_history *h);

/* ---- reading ---- */

size_t lb_history_nodes(const struct lb_history *h);     /* nodes held */
size_t lb_history_ticks(const struct lb_history *h);     /* ticks held, at most len */
uint64_t lb_history_dropped(const struct lb_history *h); /* samples refused: -ENOSPC */
/* Bytes allocated for rings and the tick clock (tests check the bound). */
size_t lb_history_bytes(const struct lb_history *h);
/* Copies node name's samples, oldest first, into out (up to max); returns
 * how many the node holds (0: unknown node). */
size_t lb_history_get(const struct lb_history *h, const char *name, struct lb_history_sample *out,
                      size_t max);
/* Appends the JSON of the last ticks (at most LB_HISTORY_JSON_CELLS
 * node-samples, whole ticks) to out; nodes sorted by name. */
void lb_history_json(const struct lb_history *h, struct admin_view_buf *out);

/* ---- the sampler ---- */

/* Samples nodes (gone ones left out) with RTTs from mon (NULL: none) every
 * LB_HISTORY_INTERVAL_S on loop, starting with one sample now. Both must
 * outlive the history or the next lb_history_stop. */
void lb_history_start(struct lb_history *h, struct ev_loop *loop, struct lb_nodes *nodes,
                      struct mon *mon);
void lb_history_stop(struct lb_history *h);
/* One sample of every node now (the timer's work; tests call it). */
void lb_history_sample(struct lb_history *h);

/* GET /history.json: an admin page (admin.c's page signature); an empty
 * history when ctx->history is NULL. Never fails. */
int lb_history_page(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                    struct admin_view_buf *out, const char **err);

#endif
