/* lb.h - fulcrum-balancer's configuration and entry point.
 *
 * main.c fills struct lb_cfg from the config table; lb_run() owns the rest:
 * the main thread (monitor, admin port, signals, weight refresh) and the
 * worker threads (listeners and connections).
 */
#ifndef FULCRUM_BALANCER_LB_H
#define FULCRUM_BALANCER_LB_H

#include <stdbool.h>

#include "cfg.h"
#include "weight.h"

#define LB_LISTEN_MAX 16 /* --listen addresses at most */

enum lb_splice_mode {
    LB_SPLICE_AUTO = 0, /* read/write first; splice once a read fills the buffer */
    LB_SPLICE_ALWAYS,   /* splice every byte */
    LB_SPLICE_NEVER,    /* read/write only */
};

struct lb_cfg {
    struct cfg_list listen; /* HOST:PORT, repeatable */
    char *admin;            /* HOST:PORT or "" */
    char *admin_token_file; /* "" : none */
    bool admin_insecure;    /* serve beyond loopback without a token */
    char *policy;
    long long workers;     /* 0: one per core */
    struct cfg_list nodes; /* static HOST:PORT */
    long long maxconn;
    double timeout_connect, timeout_client, timeout_server;
    long long retries;
    long long max_fails;
    double eject_time;
    double slowstart;
    long long panic;
    double grace;
    double reload_timeout; /* SIGUSR2: seconds the new process has to be ready */
    int splice;            /* enum lb_splice_mode */
    long long pipe_size;
    long long pipes_per_worker;
    bool log_conns;
    char *log_file;
    int log_level;
    /* the embedded monitor: on when a key is given */
    char *group, *mcast_if, *key, *key_next;
    double interval;
    long long miss_down;
    double max_skew;
    struct mon_weight_cfg weight; /* the monitor's weight formula (--weight-*) */
    /* not options: what main() read them from, for GET /api/config */
    const struct cfg_prog *prog;
    int argc;
    char *const *argv;
};

/* Runs the balancer until SIGTERM/SIGINT and a graceful stop. Returns the
 * process exit status: 0, 1 (runtime failure), 2 (bad configuration). */
int lb_run(const struct lb_cfg *cfg);

#endif
