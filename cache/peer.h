/* peer.h - the replication connection layer of fulcrum-cache: persistent TCP
 * connections to every peer, carrying the frames of repl_frame.h.
 *
 * Design notes:
 *
 * - Connections. peer_set_new() listens on cfg->listen and connects to every
 *   cfg->peers address; a lost outbound connection is retried every
 *   reconnect_ms. Both sides send HELLO first; the connection is ready once
 *   the peer's HELLO verified. A HELLO naming ourselves is closed (a node
 *   listed as its own peer). Every ready connection sends a HEARTBEAT every
 *   heartbeat_ms; one that received no frame for dead_ms is closed.
 * - Sync. On every ready connection, in both directions, each side sends a
 *   SYNC_REQUEST (so a connection that was dropped as slow resyncs whichever
 *   side missed objects). The responder answers with the live objects
 *   themselves (OBJECT_BEGIN/CHUNK/END, skipping those with < 1 s of
 *   freshness left; replicated copies included, the requester stores them
 *   with origin = false), most recently used first, then an INVENTORY_END whose
 *   `entries` counts the objects sent and `pages` is 0: no INVENTORY pages
 *   are sent, since the requester would only ask for all of them anyway.
 *   The objects are referenced (cstore_ref) when the request arrives and
 *   queued as the output drains below half the queue cap, so a sync never
 *   exceeds the cap. The requester counts a sync when INVENTORY_END arrives.
 * - Announce. peer_announce() sends an origin object to every ready
 *   connection, once per peer name (two connections to one peer, as in a
 *   full mesh, carry it once). Incoming objects are verified (rframe_body)
 *   and inserted with origin = false, so they are never announced again.
 *   Times travel as ages: the receiver computes expires_at on its own clock.
 *   A received PURGE removes every variant; an invalidation is applied as a
 *   removal too (the next request refetches). peer_purge sends removals.
 * - Bounded queues. Output is queued per connection and written when the
 *   socket is writable; serving never waits on a peer. When an announce
 *   leaves more than queue_cap bytes pending on a connection, that
 *   connection is closed (counters.drops); it resyncs when it comes back.
 * - Rejections. A frame the decoder refuses (forged, replayed, truncated,
 *   oversized...), a payload that does not decode, a body that fails
 *   verification, a body above obj_max, or a frame out of order closes the
 *   connection, counted by reason.
 *
 * Ownership: cfg is copied, except cfg->kr (borrowed: it must outlive the
 * set) and cfg->name (copied). The store is borrowed and must outlive the
 * set. peer_set_free() closes every socket and frees everything.
 * Thread: a set belongs to the thread running its loop; nothing locks.
 */
#ifndef FULCRUM_CACHE_PEER_H
#define FULCRUM_CACHE_PEER_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"
#include "repl_frame.h"
#include "store.h"

struct peer_cfg {
    const char *name;                /* this node, 1..63 of [A-Za-z0-9._-] */
    const struct key_ring *kr;       /* borrowed; at least one key */
    struct sockaddr_in listen;       /* port 0: the kernel chooses */
    const struct sockaddr_in *peers; /* n_peers addresses, copied */
    size_t n_peers;
    size_t queue_cap;      /* output bytes pending per connection before a drop */
    size_t obj_max;        /* largest body accepted from a peer */
    unsigned heartbeat_ms; /* 1000 */
    unsigned reconnect_ms; /* 5000 */
    unsigned dead_ms;      /* 3000: closed after this long without a frame */
};

/* Reasons beyond the decoder's, for counters.rejected_local. */
enum peer_reject {
    PEER_REJ_PAYLOAD = 0, /* a verified frame whose payload does not decode */
    PEER_REJ_BODY,        /* chunk out of order, short body, digest mismatch */
    PEER_REJ_OVERSIZE,    /* declared body above obj_max */
    PEER_REJ_ORDER,       /* a frame unexpected in this state (chunk without begin...) */
    PEER_REJ_SELF,        /* HELLO carrying our own name */
    PEER_REJ_DEAD,        /* no frame for dead_ms */
    PEER_REJ_MAX
};

struct peer_counters {
    uint64_t frames_in, frames_out;
    uint64_t objects_in;  /* complete verified objects received */
    uint64_t objects_out; /* objects queued (announce and sync) */
    uint64_t inserted;    /* objects_in that cstore_insert stored (0) */
    uint64_t purges_in, purges_out;
    uint64_t rejected[RFRAME_R_MAX];       /* by decoder reason */
    uint64_t rejected_local[PEER_REJ_MAX]; /* by enum peer_reject */
    uint64_t drops;      /* connections closed because the queue passed queue_cap */
    uint64_t reconnects; /* outbound connection attempts after the first */
    uint64_t connect_failures;
    uint64_t syncs; /* INVENTORY_END received for our SYNC_REQUEST */
    uint64_t syncs_served;
};

struct peer_set;

/* queue_cap 16 MiB, obj_max 1 MiB, 1 s / 5 s / 3 s; no peers; listen 0.0.0.0:0. */
void peer_cfg_default(struct peer_cfg *cfg);

/* Starts listening and connecting. Returns NULL with err filled on a bad
 * name, an empty key ring or a listen failure. */
struct peer_set *peer_set_new(struct ev_loop *loop, const struct peer_cfg *cfg,
                              struct cstore *store, char *err, size_t errlen);
/* Closes everything; NULL is a no-op. */
void peer_set_free(struct peer_set *ps);

unsigned peer_listen_port(const struct peer_set *ps);

/* Queues obj to every ready connection (once per peer name). Does nothing
 * for a replicated copy (origin false) or one with < 1 s of freshness left.
 * A connection whose queue passes queue_cap is closed (drops). */
void peer_announce(struct peer_set *ps, const struct cstore_obj *obj);

/* Sends PURGE (remove every variant of primary) to every ready connection.
 * The caller removes it from its own store. */
void peer_purge(struct peer_set *ps, const char *primary);

/* True once a sync with at least one peer finished, or when there are no
 * configured peers, or when every configured peer failed its first connect
 * and one reconnect attempt (an isolated node still starts serving). */
bool peer_synced(const struct peer_set *ps);

/* Ready connections right now (both directions). */
size_t peer_ready_count(const struct peer_set *ps);

void peer_counters_get(const struct peer_set *ps, struct peer_counters *out);

#endif
