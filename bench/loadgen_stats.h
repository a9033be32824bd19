/* loadgen_stats.h - what bench/loadgen.c measures: latency histograms, error
 * counts and per-node response counts, for the whole measured window and for
 * every time bucket of the run.
 *
 * Times are nanoseconds of CLOCK_MONOTONIC; latencies are kept in
 * microseconds in a log-linear histogram (exact below 512 us, then 256
 * sub-buckets per power of two: at most 0.4 % off). A request belongs to the
 * time bucket (1 s by default) in which it was SCHEDULED to start, so that a
 * stall shows where it began; it counts in the summary when it is scheduled
 * after the warm-up.
 * Single-threaded: the load generator's loop only.
 */
#ifndef FULCRUM_BENCH_LOADGEN_STATS_H
#define FULCRUM_BENCH_LOADGEN_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LG_NODES_MAX 16 /* distinct X-Cache "from NAME" names counted */
#define LG_NAME_MAX  63

enum lg_err {
    LG_ERR_CONNECT, /* connect() failed or was refused */
    LG_ERR_TIMEOUT, /* no complete response within --timeout */
    LG_ERR_IO,      /* reset, EOF before a complete response, read/write error */
    LG_ERR_STATUS,  /* a status outside 200-299 */
    LG_ERR_PARSE,   /* a response we cannot parse (or chunked) */
    LG_ERR_DROPPED, /* not started: --max-inflight requests already in flight */
    LG_ERR_MAX
};

struct lg_stats;

/* run_ns: length of the whole run (warm-up included), cut into buckets of
 * bucket_ms for the series (0: 1000); warmup_s: leading seconds left out of
 * the summary. Never NULL (allocation failure aborts). */
struct lg_stats *lg_stats_new(uint64_t run_ns, unsigned bucket_ms, unsigned warmup_s);
void lg_stats_free(struct lg_stats *st);

/* A request scheduled at sched_ns after the run's start (t0) and started
 * late_ns after that. */
void lg_stats_started(struct lg_stats *st, uint64_t sched_rel_ns, uint64_t late_ns);

/* A complete 2xx response: its latency from the scheduled start and the
 * node named in its X-Cache header (NULL or "" when there was none). */
void lg_stats_ok(struct lg_stats *st, uint64_t sched_rel_ns, uint64_t lat_ns, const char *node,
                 uint64_t bytes);

/* A failed request; node as for lg_stats_ok (a non-2xx response has one). */
void lg_stats_err(struct lg_stats *st, uint64_t sched_rel_ns, enum lg_err e, const char *node);

/* From now on, writes one line per finished request scheduled after the
 * warm-up to f (NULL: stop): its scheduled start in seconds after t0, its
 * latency in microseconds, the node named in X-Cache ("-" when none) and
 * "ok" or the error's name. Tab-separated, no header; f stays the caller's. */
void lg_stats_trace(struct lg_stats *st, FILE *f);

/* Prints the summary as key=value lines: measured seconds, rates, latency
 * percentiles, errors by kind, the generator's own lateness, then one
 * "node NAME count share" line per node. */
void lg_stats_report(const struct lg_stats *st, FILE *out, double measured_s);

/* Writes the series as tab-separated columns with a header: the bucket's
 * start (t_s, seconds after t0), scheduled, ok, errors, p50_us, p99_us, then
 * one count of answered requests per node. Returns 0 or -errno. */
int lg_stats_write_series(const struct lg_stats *st, const char *path);

#endif
