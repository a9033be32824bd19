/* main.c - fulcrum-balancer: configuration table, logging, then lb_run(). */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <ev.h>

#include "admin_auth.h"
#include "cfg.h"
#include "lb.h"
#include "log.h"
#include "net.h"
#include "opts.h"
#include "reload.h"
#include "policy.h"

static const char *const lb_splice_names[] = {"auto", "always", "never", NULL};

#define O(f) offsetof(struct lb_cfg, f)
static const struct cfg_opt lb_opts[] = {
    {"listen", CFG_LIST, O(listen), 0, 0, NULL, NULL, "HOST:PORT",
     "accept clients here (port 0: any free port)"},
    {"admin", CFG_STR, O(admin), 0, 255, "", NULL, "HOST:PORT",
     "admin HTTP port: /status, /status.json, /metrics, drain, /api/"},
    {"admin-token-file", CFG_STR, O(admin_token_file), 0, 4095, "", NULL, "FILE",
     "admin token (mode 0600): writes, and reads beyond loopback, need Bearer it"},
    {"admin-insecure", CFG_BOOL, O(admin_insecure), 0, 0, "no", NULL, NULL,
     "allow --admin beyond loopback without a token (anyone reaching it may drain)"},
    {"policy", CFG_STR, O(policy), 0, 31, "weighted", NULL, "NAME",
     "weighted|leastconn|roundrobin|best"},
    {"workers", CFG_INT, O(workers), 0, 64, "0", NULL, "N", "worker threads (0: one per core)"},
    {"node", CFG_LIST, O(nodes), 0, 0, NULL, NULL, "HOST:PORT",
     "a static node, used without an agent"},
    {"maxconn", CFG_INT, O(maxconn), 1, 1000000, "8000", NULL, "N",
     "client connections at most; more are closed at once"},
    {"timeout-connect", CFG_DOUBLE, O(timeout_connect), 0.001, 3600, "2", NULL, "SEC",
     "a connect to a node slower than this fails and is retried"},
    {"timeout-client", CFG_DOUBLE, O(timeout_client), 0.001, 86400, "60", NULL, "SEC",
     "close a connection whose client is idle this long"},
    {"timeout-server", CFG_DOUBLE, O(timeout_server), 0.001, 86400, "60", NULL, "SEC",
     "close a connection whose node is idle this long"},
    {"retries", CFG_INT, O(retries), 0, 7, "2", NULL, "N",
     "connect tries on other nodes after a failure"},
    {"max-fails", CFG_INT, O(max_fails), 1, 1000, "3", NULL, "N",
     "failed connects in a row that eject a node"},
    {"eject-time", CFG_DOUBLE, O(eject_time), 0.1, 3600, "10", NULL, "SEC",
     "an ejected node gets no new connections this long"},
    {"slowstart", CFG_DOUBLE, O(slowstart), 0, 3600, "10", NULL, "SEC",
     "a node that joins or recovers ramps up to its weight over this"},
    {"panic", CFG_INT, O(panic), 0, 100, "50", NULL, "PCT",
     "below this % of eligible nodes, spread over all of them"},
    {"grace", CFG_DOUBLE, O(grace), 0, 3600, "10", NULL, "SEC",
     "on SIGTERM, open connections get this long to finish"},
    {"reload-timeout", CFG_DOUBLE, O(reload_timeout), 0.1, 3600, "30", NULL, "SEC",
     "on SIGUSR2, the new process must know a node within this, or it is killed"},
    {"splice", CFG_ENUM, O(splice), 0, 0, "auto", lb_splice_names, "MODE",
     "move bytes with splice(2): auto = once a transfer is bulk"},
    {"pipe-size", CFG_INT, O(pipe_size), 0, 1 << 20, "262144", NULL, "BYTES",
     "size of each splice pipe (0: kernel default)"},
    {"pipes", CFG_INT, O(pipes_per_worker), 0, 100000, "256", NULL, "N",
     "idle pipes kept per worker for reuse"},
    {"log-conns", CFG_BOOL, O(log_conns), 0, 0, "yes", NULL, NULL,
     "one logfmt line per closed connection (--log-conns=no to turn off)"},
    OPTS_GROUP(struct lb_cfg),
    OPTS_ROUNDS(struct lb_cfg),
    MON_WEIGHT_OPTS(struct lb_cfg, weight),
    OPTS_KEY(struct lb_cfg, "",
             "cluster key: turns on the embedded monitor (agents' nodes join by themselves)"),
    OPTS_LOG(struct lb_cfg),
    {NULL},
};
#undef O

/* The same node twice: lb_run() refuses it. */
static void lb_check_nodes_once(struct cfg_check *chk, const struct cfg_list *nodes)
{
    struct sockaddr_in a, b;
    char err[256];

    for (size_t i = 0; i < nodes->n; i++) {
        if (net_parse_hostport(nodes->v[i], false, &a, err, sizeof(err)))
            continue; /* cfg_check_hostports said so */
        for (size_t j = 0; j < i; j++) {
            if (!net_parse_hostport(nodes->v[j], false, &b, err, sizeof(err)) &&
                a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port) {
                cfg_check_fail(chk, "node", 0, "%s: given twice", nodes->v[i]);
                break;
            }
        }
    }
}

/* The admin port's rules as lb_run() applies them: the token file as
 * admin_auth_load() reads it, and no port beyond loopback without a token
 * or admin-insecure. */
static void lb_check_admin(struct cfg_check *chk, const struct lb_cfg *c)
{
    struct sockaddr_in sa;
    char err[512];

    if (!*c->admin || net_parse_hostport(c->admin, true, &sa, err, sizeof(err)))
        return; /* no admin port, or cfg_check_hostport said why */
    if (admin_auth_validate(c->admin_token_file, c->admin_insecure, &sa, err, sizeof(err)))
        cfg_check_fail(chk, *c->admin_token_file ? "admin-token-file" : "admin", 0, "%s", err);
}

/* --check-config: what lb_run() would refuse before it binds. */
static void lb_check_hook(const void *obj, struct cfg_check *chk)
{
    const struct lb_cfg *c = obj;

    if (c->listen.n == 0 || c->listen.n > LB_LISTEN_MAX)
        cfg_check_fail(chk, "listen", 0, "is required, at most %d times", LB_LISTEN_MAX);
    cfg_check_hostports(chk, "listen", &c->listen, true);
    cfg_check_hostport(chk, "admin", c->admin, true);
    if (!lb_policy_find(c->policy))
        cfg_check_fail(chk, "policy", 0, "'%s': use one of %s", c->policy, lb_policy_names());
    cfg_check_hostports(chk, "node", &c->nodes, false);
    lb_check_nodes_once(chk, &c->nodes);
    lb_check_admin(chk, c);
    if (!*c->key && !c->nodes.n)
        cfg_check_fail(chk, "node", 0, "no nodes: give node HOST:PORT or key FILE");
    cfg_check_key_file(chk, "key", c->key);
    cfg_check_key_file(chk, "key-next", c->key_next);
    cfg_check_hostport(chk, "group", c->group, false);
    cfg_check_ip(chk, "mcast-if", c->mcast_if);
    if (c->weight.floor > c->weight.cap)
        cfg_check_fail(chk, "weight-floor", 0, "is above weight-cap (%g)", c->weight.cap);
    cfg_check_log_file(chk, "log-file", c->log_file);
}

static const struct cfg_prog lb_prog = {
    .name = "fulcrum-balancer",
    .summary = "Spreads TCP connections over cache nodes by their agents' metrics and its own\n"
               "live connection counts, moving bytes with splice(2).\n"
               "Signals: TERM/INT stop accepting and let connections finish (--grace), a\n"
               "second one stops at once; HUP reopens the log; USR1 logs counters; USR2\n"
               "reloads: a new process reads the configuration and takes the listeners over.\n"
               "Exit status: 0 stopped by a signal (or --help, --version, --check-config\n"
               "OK); 2 bad options or configuration file, or a start-up error (addresses,\n"
               "key, a port in use); 1 the log file or a worker thread cannot be started.",
    .version = "0.1.0",
    .opts = lb_opts,
    .check = lb_check_hook,
};

static void lb_syserr(const char *msg)
{
    log_err("libev: %s", msg);
    abort();
}

int main(int argc, char **argv)
{
    struct lb_cfg cfg = {0};
    char err[512];
    int r;

    r = cfg_load(&lb_prog, &cfg, argc, argv, err, sizeof(err));
    if (r == 0 && (cfg.listen.n == 0 || cfg.listen.n > LB_LISTEN_MAX)) {
        snprintf(err, sizeof(err), "--listen HOST:PORT is required, at most %d times (see --help)",
                 LB_LISTEN_MAX);
        r = -1;
    }
    if (r) {
        if (r < 0) {
            fprintf(stderr, "fulcrum-balancer: %s\n", err);
            lb_inherit_fail_env(err); /* a reload's new process: tell the old one */
        }
        cfg_done(&lb_prog, &cfg);
        return r > 0 ? 0 : 2;
    }
    if (log_open("fulcrum-balancer", cfg.log_file, (enum log_level)cfg.log_level)) {
        fprintf(stderr, "fulcrum-balancer: cannot open log file %s\n", cfg.log_file);
        lb_inherit_fail_env("cannot open the log file");
        cfg_done(&lb_prog, &cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    ev_set_syserr_cb(lb_syserr);
    cfg.prog = &lb_prog; /* GET /api/config */
    cfg.argc = argc;
    cfg.argv = argv;
    r = lb_run(&cfg);
    log_close();
    cfg_done(&lb_prog, &cfg);
    return r;
}
