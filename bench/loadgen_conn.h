/* loadgen_conn.h - the connections and requests of bench/loadgen.c, and the
 * generator's global state they share with its scheduler.
 *
 * One thread, one libev loop. lg_start() starts (or, keep-alive with a full
 * pool, queues) one request; every request ends exactly once, as a 2xx
 * response or an error, in lg_stats. lg_maybe_done() breaks the loop once
 * the schedule is over and nothing is in flight.
 */
#ifndef FULCRUM_BENCH_LOADGEN_CONN_H
#define FULCRUM_BENCH_LOADGEN_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#define LG_TARGETS_MAX 16
#define LG_PATHS_MAX   16
#define LG_PATH_MAX    256

struct lg_stats;

struct lg_path {
    char tmpl[LG_PATH_MAX];
    unsigned weight;
};

struct lg {
    /* options */
    struct sockaddr_in targets[LG_TARGETS_MAX];
    unsigned ntargets;
    struct lg_path paths[LG_PATHS_MAX];
    unsigned npaths, path_wsum;
    char host[128];
    double rate, duration_s, timeout_s, max_inflight;
    unsigned warmup_s, conns;
    bool keepalive;
    const char *series;
    /* run */
    struct ev_loop *loop;
    struct lg_stats *stats;
    uint64_t t0;      /* CLOCK_MONOTONIC ns at the start */
    uint64_t end_rel; /* no request is scheduled at or after t0 + end_rel */
    uint64_t next;    /* number of the next request */
    bool scheduling;  /* requests are still to be started */
    int tfd;          /* the schedule's timerfd (open loop) */
    unsigned inflight;
};

extern struct lg lg;

uint64_t lg_now_ns(void);

/* Starts request number seq, scheduled at sched_rel ns after t0, on target
 * index target (closed loop: the next request of that slot follows its
 * end). Counts it dropped when --max-inflight requests are in flight. */
void lg_start(uint64_t sched_rel, uint64_t seq, unsigned target);

/* Breaks the loop when the schedule is over and nothing is in flight. */
void lg_maybe_done(void);

/* Ends everything still in flight or queued as a timeout and closes every
 * connection (at the hard deadline, and once at the end). */
void lg_abort_all(void);

/* Frees the connection structs kept for reuse. */
void lg_conn_free_all(void);

#endif
