/* fault_rig.h - a whole cluster for the fault-injection tests
 * (test_faults*.c): the counting origin of cache_rig.c, real fulcrum-cache
 * nodes, one fulcrum-agent per node, fulcrum-balancer with its embedded
 * monitor, HTTP load through the balancer with every request recorded and
 * every body checked, and the figures each test prints and writes.
 *
 * Times are CLOCK_MONOTONIC microseconds (fr_now_us). A fault is injected
 * at a known instant; each request carries its start and end, so a test
 * tells the requests that were inside a node when it failed from the ones
 * that began after the balancer stopped using it.
 *
 * Results: one line per case on stderr and in
 * FULCRUM_BINARY_DIR/faults/<case>.txt (docs/reliability.md).
 */
#ifndef FULCRUM_TEST_FAULT_RIG_H
#define FULCRUM_TEST_FAULT_RIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cache_rig.h"
#include "harness.h"

#define FR_NODES_MAX   4
#define FR_WAIT_MS     20000 /* hang guard for anything awaited */
#define FR_CLIENT_S    8     /* a load request without an answer this long is lost */
#define FR_THREADS_MAX 16
#define FR_EXTRA_MAX   16 /* extra argv entries for a daemon */

/* ---- daemons ---- */

struct fr_node {
    struct h_proc p;
    char name[16];
    unsigned port;      /* HTTP, from the ready line */
    unsigned peer_port; /* replication, from the ready line; 0 without */
    char *argv[24 + FR_EXTRA_MAX];
    char s_origin[64], s_listen[32];
};

/* Starts fulcrum-cache NAME against origin o (NULL: extra gives
 * --docroot), with extra flags (NULL-terminated, may be NULL; they must
 * outlive the node), and waits for its ready line. */
void fr_node_start(struct fr_node *nd, const struct rig_origin *o, const char *name,
                   const char *const *extra);
/* Starts it again with the same flags on the same HTTP port (after a kill);
 * waits for its ready line, which with peers comes after its first sync. */
void fr_node_restart(struct fr_node *nd);
/* SIGKILL, then reaps: its port refuses from then on. */
void fr_node_kill(struct fr_node *nd);
/* SIGCONT, SIGKILL, reap, close its pipes; nothing when not running. */
void fr_proc_kill(struct h_proc *p);

struct fr_agent {
    struct h_proc p;
    char name[16], svc[32];
};

/* Starts fulcrum-agent NAME for 127.0.0.1:port with --check check (tcp or
 * http), 0.2 s checks, fall 2, rise 2, replies delayed up to 50 ms (the
 * default); waits for its ready line. */
void fr_agent_start(struct fr_agent *ag, const char *name, unsigned port, const char *group,
                    const char *key, const char *check);

struct fr_lb {
    struct h_proc p;
    unsigned port, admin;
};

/* Starts fulcrum-balancer on 127.0.0.1:port (0: any) with extra flags and
 * waits for its ready line. Fails the test when it does not start. */
void fr_lb_start(struct fr_lb *b, unsigned port, const char *const *extra);
/* The same, with RLIMIT_NOFILE (soft and hard) set to nofile in the child
 * before exec, so the balancer cannot raise it. */
void fr_lb_start_nofile(struct fr_lb *b, unsigned nofile, unsigned port, const char *const *extra);
/* GET /status.json; NULL when the admin port does not answer. */
cJSON *fr_lb_status(const struct fr_lb *b);
/* A number of status.json: node NAME's field, or (name NULL) the balancer
 * object's field ("ended.REASON" for its end reasons). -1 when absent or
 * unanswered. */
long long fr_lb_num(const struct fr_lb *b, const char *name, const char *field);
/* Polls every 20 ms until node NAME's lb_weight is 0 (zero) or above 0;
 * returns the time it happened (fr_now_us), or -1 after timeout_ms. */
int64_t fr_lb_await_weight(const struct fr_lb *b, const char *name, bool zero, int timeout_ms);

/* ---- a cluster: origin, n nodes with agents, the balancer ---- */

struct fr_cluster {
    struct rig_origin origin;
    const char *keydir;
    char key[128], group[40];
    size_t n;
    struct fr_node node[FR_NODES_MAX];
    struct fr_agent agent[FR_NODES_MAX];
    const char *names[FR_NODES_MAX];
    struct fr_lb lb;
};

/* Starts a balancer b for the cluster's agents (rounds of 0.25 s, 1 s
 * server timeout, no slow start, then lb_extra) on port (0: any). */
void fr_cluster_lb_start(struct fr_cluster *c, struct fr_lb *b, unsigned port,
                         const char *const *lb_extra);
/* n nodes cache-0.. (with node_extra flags) with agents (--check check)
 * and the balancer; returns once the balancer has every node in rotation. */
void fr_cluster_start(struct fr_cluster *c, size_t n, const char *check,
                      const char *const *node_extra, const char *const *lb_extra);
/* SIGCONT to every process (a stopped one cannot die by SIGTERM), then
 * SIGKILL and reap; removes the keys. */
void fr_cluster_stop(struct fr_cluster *c);
/* Polls until the balancer has all n nodes in rotation; asserts it. */
void fr_cluster_await_all(struct fr_cluster *c);

/* ---- load ---- */

enum fr_outcome {
    FR_OK = 0,     /* 200 and the origin's body */
    FR_REFUSED,    /* the connect failed */
    FR_CLOSED,     /* closed before a complete answer */
    FR_RESET,      /* reset before a complete answer */
    FR_LOST,       /* no answer and no close within FR_CLIENT_S: black-holed */
    FR_BAD_STATUS, /* an answer other than 200 */
    FR_BAD_BODY,   /* 200 with a body that is not the origin's */
    FR_OUTCOME_MAX
};

struct fr_req {
    int64_t start_us, end_us;
    uint8_t outcome; /* enum fr_outcome */
    int8_t node;     /* index in names[] from X-Cache "... from NAME", -1 unknown */
};

/* One blocking GET path on 127.0.0.1:port (Connection: close), checked
 * against the origin's body; *node from X-Cache. buf: at least
 * RIG_BIG + 64 KiB. */
enum fr_outcome fr_get(unsigned port, const char *path, const char *const *names, size_t nnames,
                       int *node, char *buf, size_t cap);

struct fr_thread {
    struct fr_load *l;
    int id;
    pthread_t thr;
    struct fr_req *req;
    size_t n, cap;
    char *buf;
};

struct fr_load {
    unsigned port;
    int nthreads;
    int pace_us;        /* one request per thread per pace_us at most */
    const char *prefix; /* paths are <prefix><k>, k < 64 */
    const char *const *names;
    size_t nnames;
    atomic_bool stop;
    struct fr_thread t[FR_THREADS_MAX];
};

/* Starts nthreads clients through port, each asking for <prefix><k> in
 * turn, k < 64 ("/obj/": small objects; "/big/": RIG_BIG bytes). */
void fr_load_start(struct fr_load *l, unsigned port, int nthreads, int pace_us, const char *prefix,
                   const char *const *names, size_t nnames);
/* Waits until every thread has finished at least one request after `after`
 * (fr_now_us): the load runs. */
void fr_load_await_progress(struct fr_load *l, int64_t after);
/* Waits until each of the load's nodes (names[]) has answered at least one
 * request with the right body: a fault on a node hits a node in use. */
void fr_load_await_every_node(struct fr_load *l);
void fr_load_stop(struct fr_load *l);
void fr_load_free(struct fr_load *l);

struct fr_sum {
    uint64_t sent, ok, failed; /* failed: every outcome but FR_OK */
    uint64_t by[FR_OUTCOME_MAX];
    uint64_t ok_node[FR_NODES_MAX];
    int64_t first_fail_start, last_fail_start; /* -1: none */
    int64_t max_ok_us;                         /* the slowest successful request */
};

/* Sums the requests that started in [from_us, to_us) among those finished
 * so far (safe while the load runs). */
void fr_load_sum(const struct fr_load *l, int64_t from_us, int64_t to_us, struct fr_sum *s);
/* The first request started at or after `after` that succeeded: its end
 * time, or -1. */
int64_t fr_load_first_ok(const struct fr_load *l, int64_t after);

int64_t fr_now_us(void);

/* Writes "case=NAME sent=.. ok=.. failed=.. lost=.. bad_body=.. max_ms=..
 * EXTRA" to stderr and FULCRUM_BINARY_DIR/faults/NAME.txt. */
void fr_report(const char *name, const struct fr_sum *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Failed requests by kind, for assertion messages (static buffer). */
const char *fr_sum_text(const struct fr_sum *s);

#endif
