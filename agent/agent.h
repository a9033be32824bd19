/* agent.h - the fulcrum-agent core: answers probe requests with the host's
 * metrics, announces itself with hello and bye, checks its cache node.
 *
 * Runs in the caller's libev loop (one thread). main.c owns config,
 * logging and signals; this module owns the sockets and timers.
 */
#ifndef FULCRUM_AGENT_H
#define FULCRUM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "key.h"
#include "metrics.h"
#include "proto-t.h"

/* Parsed configuration (filled from the cfg table in main.c). */
struct agent_cfg {
    char *name;
    char *service;  /* HOST:PORT of the cache node */
    char *group;    /* multicast ADDR:PORT */
    char *mcast_if; /* interface address for the group */
    char *listen;   /* optional unicast ADDR:PORT for probes */
    char *key;      /* key file */
    char *key_next; /* second key file accepted during a rotation */
    long long jitter_ms;
    long long ttl;
    long long max_pending;
    double check_interval; /* seconds between service checks, and their timeout */
    int check;             /* enum check_kind: tcp or http */
    char *check_path;      /* http: the path asked for */
    long long fall;        /* failed checks in a row that make the service down */
    long long rise;        /* good checks in a row that make it up again */
    double max_skew;       /* seconds a request's timestamp may be off */
    char *cgroup;          /* "auto", "off" or a cgroup directory */
    char *log_file;
    int log_level;
};

/* Why a datagram was dropped or ignored: one counter each. */
struct agent_stats {
    uint64_t rx;                   /* datagrams received */
    uint64_t answered;             /* probe responses sent */
    uint64_t dropped[PROTO_E_MAX]; /* by decode error */
    uint64_t stale;                /* timestamp outside the skew window */
    uint64_t replayed;             /* a nonce already answered */
    uint64_t busy;                 /* too many replies pending */
    uint64_t ignored;              /* valid, but not for an agent (hello...) */
    uint64_t send_errors;
    uint64_t checks_failed; /* service checks that failed */
    uint64_t resampled;     /* metrics re-read while no monitor asked */
};

struct agent;

/* Resolves addresses, loads the key(s), opens the sockets, starts metrics.
 * Returns NULL with err filled on any failure. Nothing is sent yet. */
struct agent *agent_new(struct ev_loop *loop, const struct agent_cfg *cfg, char *err,
                        size_t errlen);

/* Starts the first service check; hello goes out when it completes. */
void agent_start(struct agent *a);

/* Sends bye and stops all watchers; the loop then has nothing left. */
void agent_stop(struct agent *a);

void agent_free(struct agent *a);

const struct agent_stats *agent_stats(const struct agent *a);

/* Writes the counters as one logfmt line at info level. */
void agent_log_stats(const struct agent *a);

#endif
