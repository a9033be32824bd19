/* counters.h - the balancer's global counters, written by the workers with
 * relaxed atomics and read by the admin port. Per-node counters live in
 * struct lb_node (node.h). */
#ifndef FULCRUM_BALANCER_COUNTERS_H
#define FULCRUM_BALANCER_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

/* How a client connection ended: one counter each, and the `end=` field of
 * the connection log line. */
enum lb_end {
    LB_END_DONE = 0,       /* both sides closed after their data: normal */
    LB_END_CLIENT_RESET,   /* the client reset or errored */
    LB_END_SERVER_RESET,   /* the node reset or errored mid-stream */
    LB_END_CLIENT_TIMEOUT, /* client idle longer than --timeout-client */
    LB_END_SERVER_TIMEOUT, /* node idle longer than --timeout-server */
    LB_END_NO_NODE,        /* no eligible node: closed at once */
    LB_END_CONNECT_FAILED, /* every try failed or timed out */
    LB_END_STOPPED,        /* cut by a stop that outlasted --grace */
    LB_END_MAX
};

struct lb_counters {
    _Atomic uint64_t accepted;
    _Atomic uint64_t refused_maxconn;  /* closed at once: --maxconn reached */
    _Atomic uint64_t refused_emfile;   /* closed at once: out of file descriptors */
    _Atomic uint64_t retries;          /* connects retried on another node */
    _Atomic uint64_t connects_at_once; /* connected within connect(2): no wait for writability */
    _Atomic uint64_t panic_picks;      /* choices made in panic mode */
    _Atomic uint64_t ended[LB_END_MAX];
    _Atomic uint64_t bytes_in, bytes_out;
    _Atomic unsigned active; /* client connections open now */
    _Atomic unsigned pipes;  /* pipes held (pooled and in use), all workers */
};

const char *lb_end_name(enum lb_end e);

#endif
