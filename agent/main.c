/* main.c - fulcrum-agent: configuration, logging, signals, the loop. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "agent.h"
#include "cfg.h"
#include "check.h"
#include "log.h"
#include "net.h"
#include "opts.h"
#include "proto.h"

#define O(f) offsetof(struct agent_cfg, f)
static const struct cfg_opt agent_opts[] = {
    {"name", CFG_STR, O(name), 0, 63, NULL, NULL, "NAME", "node name (A-Z a-z 0-9 . _ -)"},
    {"service", CFG_STR, O(service), 0, 255, NULL, NULL, "HOST:PORT",
     "the cache node this agent reports (address clients reach)"},
    {"listen", CFG_STR, O(listen), 0, 255, "", NULL, "ADDR:PORT",
     "also answer unicast probes on this address (networks without multicast)"},
    {"jitter-ms", CFG_INT, O(jitter_ms), 0, 5000, "50", NULL, "MS",
     "random delay before a reply, up to this"},
    {"ttl", CFG_INT, O(ttl), 1, 255, "1", NULL, "N", "multicast TTL of hello and bye"},
    {"max-pending", CFG_INT, O(max_pending), 1, 4096, "64", NULL, "N",
     "replies waiting for their delay at most"},
    {"check-interval", CFG_DOUBLE, O(check_interval), 0.05, 3600, "1", NULL, "SEC",
     "seconds between checks of the service (also their timeout)"},
    {"check", CFG_ENUM, O(check), 0, 0, "tcp", check_kind_names, "KIND",
     "tcp: connect to the service; http: GET --check-path, up on 2xx"},
    {"check-path", CFG_STR, O(check_path), 0, CHECK_PATH_MAX, "/_fulcrum/stats", NULL, "PATH",
     "what the http check asks for"},
    {"fall", CFG_INT, O(fall), 1, 100, "3", NULL, "N",
     "failed checks in a row before the service is reported down"},
    {"rise", CFG_INT, O(rise), 1, 100, "2", NULL, "N",
     "good checks in a row before it is reported up again"},
    {"cgroup", CFG_STR, O(cgroup), 0, 4095, "auto", NULL, "auto|off|DIR",
     "report CPU and RAM against a cgroup's limits: the agent's own, none, or DIR"},
    OPTS_GROUP(struct agent_cfg),
    OPTS_KEY(struct agent_cfg, NULL, "cluster key file (mode 0600)"),
    OPTS_LOG(struct agent_cfg),
    {NULL},
};
#undef O

/* --check-config: what agent_new() would refuse, short of opening sockets. */
static void agent_check_hook(const void *obj, struct cfg_check *chk)
{
    const struct agent_cfg *c = obj;
    struct sockaddr_in sa;
    char err[256];

    if (cfg_check_required(chk, "name", c->name) && !proto_name_valid(c->name))
        cfg_check_fail(chk, "name", 0, "'%s': use 1..%d of A-Z a-z 0-9 . _ -", c->name,
                       PROTO_NAME_MAX);
    if (cfg_check_required(chk, "service", c->service) &&
        cfg_check_hostport(chk, "service", c->service, false) &&
        !net_parse_hostport(c->service, false, &sa, err, sizeof(err)) &&
        sa.sin_addr.s_addr == htonl(INADDR_ANY))
        cfg_check_fail(chk, "service", 0, "%s: give the address clients reach it on", c->service);
    cfg_check_hostport(chk, "listen", c->listen, true);
    cfg_check_hostport(chk, "group", c->group, false);
    cfg_check_ip(chk, "mcast-if", c->mcast_if);
    if (!check_path_ok(c->check_path))
        cfg_check_fail(chk, "check-path", 0,
                       "'%s': give /PATH, 1..%d printable characters, no spaces", c->check_path,
                       CHECK_PATH_MAX);
    if (strcmp(c->cgroup, "auto") && strcmp(c->cgroup, "off") && c->cgroup[0] != '/')
        cfg_check_fail(chk, "cgroup", 0, "'%s' is not auto, off or an absolute directory",
                       c->cgroup);
    else if (c->cgroup[0] == '/')
        cfg_check_dir(chk, "cgroup", c->cgroup);
    if (cfg_check_required(chk, "key", c->key))
        cfg_check_key_file(chk, "key", c->key);
    cfg_check_key_file(chk, "key-next", c->key_next);
    cfg_check_log_file(chk, "log-file", c->log_file);
}

static const struct cfg_prog agent_prog = {
    .name = "fulcrum-agent",
    .summary = "Answers the Fulcrum monitor's probes with this host's free RAM, CPU idle,\n"
               "load and the state of its cache node, signed with the cluster key.\n"
               "Signals: TERM/INT send bye and exit, HUP reopens the log, USR1 logs counters.\n"
               "Exit status: 0 stopped by a signal (or --help, --version, --check-config\n"
               "OK); 1 start-up error (key, addresses, sockets, cgroup); 2 bad options or\n"
               "configuration file.",
    .version = "0.1.0",
    .opts = agent_opts,
    .check = agent_check_hook,
};

static void agent_syserr(const char *msg)
{
    log_err("libev: %s", msg);
    abort();
}

static void agent_sig_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct agent *a = w->data;

    log_info("signal %d: sending bye and stopping", w->signum);
    agent_stop(a);
    ev_break(loop, EVBREAK_ALL);
}

static void agent_sig_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (log_reopen())
        log_err("cannot reopen the log file");
}

static void agent_sig_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    agent_log_stats(w->data);
}

static int agent_check_cfg(const struct agent_cfg *c, char *err, size_t errlen)
{
    if (!c->name || !c->service) {
        snprintf(err, errlen, "--name and --service are required (see --help)");
        return -1;
    }
    if (strcmp(c->cgroup, "auto") && strcmp(c->cgroup, "off") && c->cgroup[0] != '/') {
        snprintf(err, errlen, "--cgroup: '%s' is not auto, off or an absolute directory",
                 c->cgroup);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct agent_cfg cfg = {0};
    ev_signal sig_term, sig_int, sig_hup, sig_usr1;
    struct ev_loop *loop;
    struct agent *a;
    char err[512];
    int r, status = 1;

    r = cfg_load(&agent_prog, &cfg, argc, argv, err, sizeof(err));
    if (r == 0 && agent_check_cfg(&cfg, err, sizeof(err)))
        r = -1;
    if (r) {
        if (r < 0)
            fprintf(stderr, "fulcrum-agent: %s\n", err);
        cfg_done(&agent_prog, &cfg);
        return r > 0 ? 0 : 2;
    }
    if (log_open("fulcrum-agent", cfg.log_file, (enum log_level)cfg.log_level)) {
        fprintf(stderr, "fulcrum-agent: cannot open log file %s\n", cfg.log_file);
        goto out_cfg;
    }
    signal(SIGPIPE, SIG_IGN);
    ev_set_syserr_cb(agent_syserr);
    loop = ev_default_loop(EVFLAG_AUTO);
    a = agent_new(loop, &cfg, err, sizeof(err));
    if (!a) {
        log_err("%s", err);
        goto out_log;
    }
    ev_signal_init(&sig_term, agent_sig_stop, SIGTERM);
    ev_signal_init(&sig_int, agent_sig_stop, SIGINT);
    ev_signal_init(&sig_hup, agent_sig_hup, SIGHUP);
    ev_signal_init(&sig_usr1, agent_sig_usr1, SIGUSR1);
    sig_term.data = sig_int.data = sig_usr1.data = a;
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_int);
    ev_signal_start(loop, &sig_hup);
    ev_signal_start(loop, &sig_usr1);
    agent_start(a);
    ev_run(loop, 0);
    agent_log_stats(a);
    agent_free(a);
    status = 0;
out_log:
    log_close();
out_cfg:
    cfg_done(&agent_prog, &cfg);
    return status;
}
