/* worker.h - a worker thread: its libev loop, listeners, connections, pipe
 * pool and picker. Internal to the balancer (conn.c and balancer.c).
 */
#ifndef FULCRUM_BALANCER_WORKER_H
#define FULCRUM_BALANCER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "counters.h"
#include "lb.h"
#include "log.h"
#include "nodes.h"
#include "pipes.h"
#include "policy.h"

#define LB_LISTEN_MAX  16
#define LB_RETRIES_MAX 8
#define LB_SCRATCH     16384 /* read/write bounce buffer, per worker */

/* What every worker shares, read-only after start except the atomics. */
struct lb_shared {
    const struct lb_cfg *cfg;
    const struct lb_policy_ops *policy;
    struct lb_nodes *nodes;
    struct lb_counters ctr;
    unsigned maxconn;
    unsigned pipes_max; /* splice pipes open at most: the descriptors maxconn leaves */
    double timeout_connect, timeout_client, timeout_server;
    unsigned retries, max_fails;
    uint64_t eject_ms;
};

struct lb_conn;

struct lb_worker {
    unsigned id;
    pthread_t thread;
    struct ev_loop *loop;
    struct lb_shared *sh;
    int lfd[LB_LISTEN_MAX];
    ev_io lio[LB_LISTEN_MAX];
    unsigned nlisten;
    ev_async wake;        /* the main thread asks to stop, or to start accepting */
    _Atomic int stop;     /* 1: stop accepting and drain; 2: close everything */
    _Atomic bool open;    /* the main thread lets a held worker accept */
    _Atomic bool release; /* a stop closes the listeners without taking in (reload.h) */
    bool held;            /* listening, but not accepting yet (see lb_worker_start) */
    bool accepting;
    ev_timer resume;               /* restarts accepting after a pause (out of fds) */
    _Atomic bool listeners_closed; /* a stop took in the accept queue and closed them */
    int reserve_fd;                /* released to accept-and-close on EMFILE */
    unsigned at_once_skips;        /* conn.c: connects not looked at (lb_conn_connected_at_once) */
    struct lb_picker picker;
    struct lb_pipe_pool pipes;
    struct lb_conn *conns; /* all open connections, doubly linked */
    unsigned nconns;
    struct log_rl rl;  /* refusals and errors logged by this worker */
    _Atomic bool done; /* the thread's loop has returned */
    char scratch[LB_SCRATCH];
};

/* Starts the worker thread on listener fds (taken over). With hold, it
 * does not accept until lb_worker_open(): clients wait in the kernel's
 * accept queue meanwhile. Returns 0/-errno. */
int lb_worker_start(struct lb_worker *w, struct lb_shared *sh, unsigned id, const int *lfds,
                    unsigned nlisten, bool hold);
/* Lets a held worker accept (main thread; idempotent). */
void lb_worker_open(struct lb_worker *w);
/* Asks the worker to stop: level 1 drains, level 2 closes everything. */
void lb_worker_stop(struct lb_worker *w, int level);
/* Before a stop: the listeners' queues are not taken in, because another
 * process holds the same sockets and accepts them (a reload's new process
 * that stops before it took over). Main thread. */
void lb_worker_release(struct lb_worker *w);
void lb_worker_join(struct lb_worker *w);

/* conn.c: a new client connection (fd non-blocking) accepted by w. */
void lb_conn_accepted(struct lb_worker *w, int cfd, const struct sockaddr_in *peer);
/* conn.c: closes every connection of w (forced stop). */
void lb_conn_close_all(struct lb_worker *w);

#endif
