/* node.h - the balancer's backend nodes, shared by the main thread and the
 * worker threads.
 *
 * Ownership and threads. Nodes are created and updated by the main thread
 * only (from the monitor's rounds, --node flags and the admin port) and are
 * never freed while workers run: a node that leaves is marked gone and gets
 * weight 0, and a node that comes back under the same name reuses its
 * struct. Workers read `weight` and update the connection counters with
 * relaxed atomics; nothing else in a node is theirs to touch.
 *
 * The set workers choose from is an immutable lb_view, republished by the
 * main thread when membership changes (atomic pointer swap, old views freed
 * after a grace period). Weights change in place, so a drain takes effect
 * on the very next pick.
 */
#ifndef FULCRUM_BALANCER_NODE_H
#define FULCRUM_BALANCER_NODE_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto-t.h"

#define LB_NODES_MAX     4096
#define LB_STATIC_WEIGHT 100 /* weight of a --node without agent */
/* Admin weight override (POST /api/nodes/NAME/weight): 0..256, the range of
 * the monitor's weights (MON_WEIGHT_CAP); NONE when the source's weight
 * applies. */
#define LB_OVERRIDE_MAX  256
#define LB_OVERRIDE_NONE (-1)

enum lb_node_src {
    LB_SRC_STATIC = 0, /* --node HOST:PORT: always in rotation unless ejected */
    LB_SRC_AGENT,      /* learnt from the monitor: follows its state and weight */
};

struct lb_node {
    /* identity, fixed once published */
    char name[PROTO_NAME_MAX + 1];
    struct sockaddr_in addr;
    enum lb_node_src src;
    unsigned idx; /* position in lb_nodes, stable for the process's life */

    /* what policies use for new connections: 0 = none. Main thread writes. */
    _Atomic unsigned weight;
    /* Out of rotation on purpose: admin drain, the monitor's draining state,
     * gone, or waiting out an address change. Main thread writes, workers
     * read (relaxed): such a node is never a candidate, not even in panic
     * mode, and does not count in the panic ratio. `drain` below is the
     * admin's input and main-thread only; this is what workers may read. */
    _Atomic bool draining;

    /* main thread only: inputs of the weight */
    unsigned metric_weight; /* the monitor's eff_weight (static: LB_STATIC_WEIGHT) */
    int mon_state;          /* enum mon_state of the last round; -1 for static */
    bool drain;             /* admin drain: no new connections */
    int override;           /* admin weight in place of metric_weight, or LB_OVERRIDE_NONE */
    bool gone;              /* left the monitor's table (bye or forgotten) */
    bool stale;             /* report older than stale_rounds */
    uint64_t up_since_ms;   /* last became eligible: slow start runs from here */

    /* passive health: workers write */
    _Atomic unsigned consec_failures;
    _Atomic uint64_t ejected_until_ms; /* monotonic ms; 0 = not ejected */

    /* counters: workers write, the admin port reads */
    _Atomic unsigned active;
    _Atomic uint64_t conns_total;
    _Atomic uint64_t bytes_in;  /* client -> node */
    _Atomic uint64_t bytes_out; /* node -> client */
    _Atomic uint64_t connect_failures;
    _Atomic uint64_t ejections;
    /* Connects in a row that were still in progress when connect(2)
     * returned (conn.c: a node on this host is usually connected by then).
     * Workers write, relaxed; only a change is written. */
    _Atomic unsigned connect_async_run;
};

/* An immutable snapshot of the node set, for workers. */
struct lb_view {
    uint64_t gen;
    unsigned n;
    struct lb_node *node[]; /* every published node, gone ones excluded */
};

#endif
