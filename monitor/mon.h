/* mon.h - the monitor library: probes agents every interval, verifies and
 * matches their replies, measures RTT, and keeps the status table.
 *
 * Embeddable: it owns two UDP sockets and three libev watchers in the
 * caller's loop, and nothing global. The caller reads the table through
 * mon_snapshot() (a consistent copy) and learns of each finished round from
 * the on_round callback. All calls from the loop's thread.
 *
 * Sockets: the group socket (bound to the group address and port) hears
 * hello and bye; the probe socket (ephemeral port, or --probe-listen) sends
 * the probe to the group and to each unicast agent, and hears the replies.
 */
#ifndef FULCRUM_MONITOR_MON_H
#define FULCRUM_MONITOR_MON_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "key.h"
#include "table.h"

#define MON_UNICAST_MAX 256

struct mon;

/* Called after each round closed; rows are in mon_snapshot(). */
typedef void (*mon_round_cb)(struct mon *m, uint64_t round, void *arg);

struct mon_cfg {
    struct sockaddr_in group;
    struct in_addr mcast_if;
    struct sockaddr_in probe_bind; /* port 0: ephemeral */
    int ttl;
    double interval;                             /* seconds between probes */
    double max_skew;                             /* seconds hello/bye timestamps may be off */
    struct sockaddr_in unicast[MON_UNICAST_MAX]; /* agents probed directly */
    size_t n_unicast;
    struct mon_table_cfg table;
    const struct key_ring *keys; /* borrowed; outlives the monitor */
    mon_round_cb on_round;
    /* Optional: called at once when a node joins (hello, or the first
     * answer of a node new to the table) or leaves (bye), so an embedder
     * need not wait for the end of the round. Same arg. */
    mon_round_cb on_change;
    void *arg;
};

/* Why datagrams were dropped, and what happened. */
struct mon_stats {
    uint64_t rounds;
    uint64_t probes_sent;
    uint64_t send_errors;
    uint64_t rx;
    uint64_t responses;            /* accepted probe responses */
    uint64_t hellos, byes;         /* accepted */
    uint64_t dropped[PROTO_E_MAX]; /* by decode error */
    uint64_t unknown_nonce;        /* a response to no probe of ours */
    uint64_t late;                 /* a response to the previous round */
    uint64_t replayed;             /* second answer in a round, old hello/bye */
    uint64_t stale;                /* hello/bye timestamp outside max_skew */
    uint64_t unknown_node;         /* bye from a node not in the table */
    uint64_t table_full;
    uint64_t ignored; /* probe requests (ours or another monitor's) */
    /* Gauges of the last closed round: responses accepted, and the time
     * from sending its probe to accepting the last of them. */
    uint64_t round_replies;
    uint64_t round_span_us;
};

void mon_cfg_default(struct mon_cfg *cfg);

/* Opens the sockets. Returns NULL with err filled on failure. */
struct mon *mon_new(struct ev_loop *loop, const struct mon_cfg *cfg, char *err, size_t errlen);

/* Sends the first probe now and one every interval after. */
void mon_start(struct mon *m);
void mon_stop(struct mon *m);
void mon_free(struct mon *m);

/* Copies up to max rows (mon_table_snapshot order). */
size_t mon_snapshot(const struct mon *m, struct mon_node *out, size_t max);
size_t mon_count(const struct mon *m);
int mon_set_drain(struct mon *m, const char *name, bool drain);

const struct mon_stats *mon_stats(const struct mon *m);
/* Port of the probe socket (where replies come back). */
unsigned mon_probe_port(const struct mon *m);

/* The counters of mon_stats as `key=value` pairs separated by spaces, or as
 * a JSON object's members (no braces). snprintf contract. */
int mon_format_stats(const struct mon_stats *s, bool json, char *buf, size_t len);

#endif
