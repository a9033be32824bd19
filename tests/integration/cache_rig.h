/* cache_rig.h - a counting origin and real fulcrum-cache nodes for the
 * replication integration tests (test_cache_repl.c).
 *
 * The origin is a thread of the test process (one thread per connection),
 * so a test counts the requests that reach it: a hit is proven by the count
 * not moving. Paths under /big/ answer RIG_BIG bytes that depend on the path
 * (rig_body_ok checks them), any other path "body:GET <path>"; every answer
 * is max-age=300 with an ETag, so nothing expires during a test.
 *
 * Nodes are started with --key, --peer-listen 127.0.0.1:0 and their --peer
 * list; readiness is the "ready listen=... peer_listen=..." line, which
 * fulcrum-cache prints only after its first sync. A node keeps its argv, so
 * it can be restarted with the same flags.
 */
#ifndef FULCRUM_TEST_CACHE_RIG_H
#define FULCRUM_TEST_CACHE_RIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

#define RIG_WAIT_MS   30000      /* hang guards: an ASan build on a loaded 2-core box */
#define RIG_BIG       (1u << 20) /* body bytes of /big/ objects */
#define RIG_PEERS_MAX 4

struct rig_origin {
    int lfd;
    unsigned port;
    atomic_int requests;
    pthread_t thr;
};

/* Listens on 127.0.0.1:0 and serves from a detached thread. */
void rig_origin_start(struct rig_origin *o);
int rig_origin_requests(struct rig_origin *o);

/* True when body/len is what the origin answers for path. */
bool rig_body_ok(const char *path, const char *body, size_t len);

struct rig_node {
    struct h_proc p;
    char name[16];
    unsigned port;      /* HTTP, from the ready line */
    unsigned peer_port; /* replication, from the ready line */
    char *argv[16 + 2 * RIG_PEERS_MAX];
    char s_origin[64], s_key[512], s_peers[RIG_PEERS_MAX][32];
};

/* Starts NAME against origin o, key keydir/key, connecting to the
 * replication ports peers[0..n). Does not wait. */
void rig_node_spawn(struct rig_node *nd, const struct rig_origin *o, const char *keydir,
                    const char *name, const unsigned *peers, size_t n);
/* Waits for the ready line (asserts it comes) and reads both ports off it. */
void rig_node_wait_ready(struct rig_node *nd);
void rig_node_start(struct rig_node *nd, const struct rig_origin *o, const char *keydir,
                    const char *name, const unsigned *peers, size_t n);
/* SIGKILL and reap. */
void rig_node_kill(struct rig_node *nd);
/* Spawns again with the same argv (the ports are re-read by wait_ready). */
void rig_node_respawn(struct rig_node *nd);
/* SIGTERM; asserts exit status 0 (under ASan: no leak either). */
void rig_node_stop(struct rig_node *nd);

/* One response, read to EOF. */
struct rig_resp {
    int code; /* -1: no response */
    char *raw;
    size_t len;
    const char *body;
    size_t body_len;
};

/* METHOD path on 127.0.0.1:port with Connection: close (and Cache-Control:
 * only-if-cached when asked: a miss is then a 504 that never reaches the
 * origin). Returns r->code. Free r with rig_resp_free. */
int rig_request(unsigned port, const char *method, const char *path, bool only_cached,
                struct rig_resp *r);
void rig_resp_free(struct rig_resp *r);
/* The value of header name (static copy), or "" when absent. */
const char *rig_hdr(const struct rig_resp *r, const char *name);

/* Removes the key files of h_make_keys() and their directory. */
void rig_keys_remove(const char *dir);

/* The counter name of GET /_fulcrum/stats on port; asserts it is there. */
uint64_t rig_stat(unsigned port, const char *name);
/* Polls the counter every 20 ms until it equals want (up or down) or
 * timeout_ms passed; returns its last value. */
uint64_t rig_wait_stat(unsigned port, const char *name, uint64_t want, int timeout_ms);

/* GET path only-if-cached: true when answered 200 "HIT from <name>" with
 * the origin's body. */
bool rig_is_hit(unsigned port, const char *name, const char *path);

#endif
