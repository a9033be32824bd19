/* balancer.c - lb_run(): the main thread of fulcrum-balancer.
 *
 * The main thread owns the embedded monitor, the node registry, the admin
 * port, the signals and a one-second refresh of the weights (slow start);
 * the workers own the listeners and the connections. A stop (SIGTERM or
 * SIGINT) closes the listeners at once, lets open connections finish for
 * up to --grace seconds, then cuts the rest.
 * With agents and no static node, the workers listen from the start but
 * accept only once the monitor has put a node in rotation, or closed its
 * first round with none: a balancer (re)started under load, or taking over
 * a port from another (SO_REUSEPORT), keeps its first clients waiting in
 * the accept queue for the agents' first answers instead of closing them.
 */
#include "lb.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ev.h>

#include "admin.h"
#include "clock.h"
#include "key.h"
#include "log.h"
#include "mon.h"
#include "net.h"
#include "worker.h"
#include "xalloc.h"

#define LB_WORKERS_MAX 64
#define LB_BACKLOG     4096

struct lb_main {
    struct ev_loop *loop;
    const struct lb_cfg *cfg;
    struct lb_shared sh;
    struct key_ring kr;
    struct mon *mon;
    struct mon_node *rows;
    struct lb_admin *admin;
    struct lb_worker *workers;
    unsigned nworkers;
    ev_timer refresh, stopping;
    ev_signal s_term, s_int, s_hup, s_usr1;
    ev_tstamp stop_deadline;
    struct sockaddr_in admin_sa;
    unsigned last_in, last_total; /* rotation size at the last round, for the log */
    bool held;                    /* workers wait for a node before accepting */
    bool said_closed;             /* "listeners closed" logged */
    int status;
};

/* Nodes with a weight now, out of all published ones. */
static unsigned lb_in_rotation(const struct lb_main *lm, unsigned *total)
{
    const struct lb_view *v = lb_nodes_view(lm->sh.nodes);
    unsigned in = 0;

    for (unsigned i = 0; i < v->n; i++)
        in += atomic_load_explicit(&v->node[i]->weight, memory_order_relaxed) > 0;
    *total = v->n;
    return in;
}

/* Takes the monitor's table over. closed: a round ended (else a node
 * joined or left within one). */
static void lb_sync(struct lb_main *lm, struct mon *m, uint64_t round, bool closed)
{
    size_t n = mon_snapshot(m, lm->rows, LB_NODES_MAX);
    unsigned in, total;

    lb_nodes_sync(lm->sh.nodes, lm->rows, n, clock_mono_ms());
    in = lb_in_rotation(lm, &total);
    if (in != lm->last_in || total != lm->last_total)
        log_info("%s %llu: %u of %u nodes in rotation", closed ? "round" : "during round",
                 (unsigned long long)round, in, total);
    lm->last_in = in;
    lm->last_total = total;
    if (lm->held && (in > 0 || closed)) {
        lm->held = false;
        for (unsigned i = 0; i < lm->nworkers; i++)
            lb_worker_open(&lm->workers[i]);
        log_info("accepting clients (rotation: %u of %u)", in, total);
    }
}

static void lb_on_round(struct mon *m, uint64_t round, void *arg)
{
    lb_sync(arg, m, round, true);
}

static void lb_on_change(struct mon *m, uint64_t round, void *arg)
{
    lb_sync(arg, m, round, false);
}

static void lb_refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lb_main *lm = w->data;

    lb_nodes_refresh(lm->sh.nodes, clock_mono_ms());
}

/* ---- stopping ---- */

static bool lb_workers_done(const struct lb_main *lm)
{
    for (unsigned i = 0; i < lm->nworkers; i++) {
        if (!atomic_load_explicit(&lm->workers[i].done, memory_order_acquire))
            return false;
    }
    return true;
}

static bool lb_listeners_closed(const struct lb_main *lm)
{
    for (unsigned i = 0; i < lm->nworkers; i++) {
        if (!atomic_load_explicit(&lm->workers[i].listeners_closed, memory_order_acquire))
            return false;
    }
    return true;
}

static void lb_stopping_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lb_main *lm = w->data;

    if (!lm->said_closed && lb_listeners_closed(lm)) {
        lm->said_closed = true;
        log_info("listeners closed: no new connections; %u open get %gs to finish",
                 atomic_load_explicit(&lm->sh.ctr.active, memory_order_relaxed), lm->cfg->grace);
    }
    if (lb_workers_done(lm)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (ev_now(loop) >= lm->stop_deadline) {
        log_warn("grace period over: closing %u connections",
                 atomic_load_explicit(&lm->sh.ctr.active, memory_order_relaxed));
        for (unsigned i = 0; i < lm->nworkers; i++)
            lb_worker_stop(&lm->workers[i], 2);
        lm->stop_deadline = ev_now(loop) + 3600; /* once */
    }
}

static void lb_sig_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct lb_main *lm = w->data;

    if (ev_is_active(&lm->stopping)) {
        log_info("signal %d again: stopping now", w->signum);
        for (unsigned i = 0; i < lm->nworkers; i++)
            lb_worker_stop(&lm->workers[i], 2);
        return;
    }
    log_info("signal %d: stopping; taking in the accept queues", w->signum);
    for (unsigned i = 0; i < lm->nworkers; i++)
        lb_worker_stop(&lm->workers[i], 1);
    if (lm->mon)
        mon_stop(lm->mon);
    lm->stop_deadline = ev_now(loop) + lm->cfg->grace;
    ev_timer_init(&lm->stopping, lb_stopping_cb, 0.05, 0.05);
    lm->stopping.data = lm;
    ev_timer_start(loop, &lm->stopping);
}

static void lb_sig_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    const struct lb_counters *c = &((struct lb_main *)w->data)->sh.ctr;

    log_info("stats accepted=%llu active=%u refused_maxconn=%llu refused_emfile=%llu "
             "retries=%llu panic_picks=%llu done=%llu no_node=%llu connect_failed=%llu "
             "client_timeout=%llu server_timeout=%llu bytes_in=%llu bytes_out=%llu",
             (unsigned long long)atomic_load(&c->accepted), atomic_load(&c->active),
             (unsigned long long)atomic_load(&c->refused_maxconn),
             (unsigned long long)atomic_load(&c->refused_emfile),
             (unsigned long long)atomic_load(&c->retries),
             (unsigned long long)atomic_load(&c->panic_picks),
             (unsigned long long)atomic_load(&c->ended[LB_END_DONE]),
             (unsigned long long)atomic_load(&c->ended[LB_END_NO_NODE]),
             (unsigned long long)atomic_load(&c->ended[LB_END_CONNECT_FAILED]),
             (unsigned long long)atomic_load(&c->ended[LB_END_CLIENT_TIMEOUT]),
             (unsigned long long)atomic_load(&c->ended[LB_END_SERVER_TIMEOUT]),
             (unsigned long long)atomic_load(&c->bytes_in),
             (unsigned long long)atomic_load(&c->bytes_out));
}

static void lb_sig_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (log_reopen())
        log_err("cannot reopen the log file");
    else
        log_info("log reopened");
}

/* ---- setting up ---- */

/* Raises the fd limit to its hard maximum and keeps maxconn within it: two
 * sockets per connection, plus listeners and a margin. Pipes get what is
 * left, two descriptors each, and no more: a pipe past that budget would
 * take the descriptor an accept needs, and a worker out of descriptors can
 * neither serve nor cleanly refuse the clients in its accept queue. A
 * direction that cannot have a pipe moves its bytes with read/write. */
static void lb_fd_budget(struct lb_main *lm)
{
    struct rlimit rl;
    long long avail, left;
    unsigned fit;

    lm->sh.pipes_max = UINT_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    avail = (long long)rl.rlim_cur - 64 - (long long)lm->nworkers * LB_LISTEN_MAX;
    fit = avail > 2 ? (unsigned)(avail / 2) : 1;
    if (lm->sh.maxconn > fit) {
        log_warn("maxconn %u needs more file descriptors than the limit of %llu allows: "
                 "using maxconn %u",
                 lm->sh.maxconn, (unsigned long long)rl.rlim_cur, fit);
        lm->sh.maxconn = fit;
    }
    left = (avail - 2 * (long long)lm->sh.maxconn) / 2;
    lm->sh.pipes_max = left <= 0 ? 0 : left >= UINT_MAX ? UINT_MAX : (unsigned)left;
}

static int lb_setup_shared(struct lb_main *lm, char *err, size_t errlen)
{
    const struct lb_cfg *c = lm->cfg;
    struct lb_nodes_cfg ncfg = {
        .slowstart_ms = (uint64_t)(c->slowstart * 1000.0),
        .stale_ms = (uint64_t)(c->interval * 3000.0),
        .grace_ms = 10000,
    };

    lm->sh.cfg = c;
    lm->sh.policy = lb_policy_find(c->policy);
    if (!lm->sh.policy) {
        snprintf(err, errlen, "--policy %s: use one of %s", c->policy, lb_policy_names());
        return -EINVAL;
    }
    lm->sh.maxconn = (unsigned)c->maxconn;
    lb_fd_budget(lm);
    lm->sh.timeout_connect = c->timeout_connect;
    lm->sh.timeout_client = c->timeout_client;
    lm->sh.timeout_server = c->timeout_server;
    lm->sh.retries = (unsigned)c->retries;
    lm->sh.max_fails = (unsigned)c->max_fails;
    lm->sh.eject_ms = (uint64_t)(c->eject_time * 1000.0);
    lm->sh.nodes = lb_nodes_new(&ncfg);
    for (size_t i = 0; i < c->nodes.n; i++) {
        struct sockaddr_in sa;
        int r = net_parse_hostport(c->nodes.v[i], false, &sa, err, errlen);

        if (r)
            return r;
        r = lb_nodes_add_static(lm->sh.nodes, &sa);
        if (r) {
            snprintf(err, errlen, "--node %s: %s", c->nodes.v[i],
                     r == -EEXIST ? "given twice" : strerror(-r));
            return r;
        }
    }
    return 0;
}

static int lb_setup_monitor(struct lb_main *lm, char *err, size_t errlen)
{
    const struct lb_cfg *c = lm->cfg;
    struct mon_cfg mc;
    int r;

    if (!*c->key)
        return c->nodes.n ? 0
                          : (snprintf(err, errlen,
                                      "no nodes: give --node HOST:PORT or "
                                      "--key FILE to learn them from agents"),
                             -EINVAL);
    mon_cfg_default(&mc);
    if ((r = key_ring_load(&lm->kr, c->key, err, errlen)) ||
        (*c->key_next && (r = key_ring_load(&lm->kr, c->key_next, err, errlen))) ||
        (r = net_parse_hostport(c->group, false, &mc.group, err, errlen)) ||
        (r = net_parse_ip(c->mcast_if, &mc.mcast_if, err, errlen)))
        return r;
    mc.keys = &lm->kr;
    mc.interval = c->interval;
    mc.max_skew = c->max_skew;
    mc.table.miss_down = (unsigned)c->miss_down;
    mc.table.max_nodes = LB_NODES_MAX;
    mc.on_round = lb_on_round;
    mc.on_change = lb_on_change; /* a node that says hello takes traffic at once */
    mc.arg = lm;
    lm->mon = mon_new(lm->loop, &mc, err, errlen);
    if (!lm->mon)
        return -EINVAL;
    lm->rows = xcalloc(LB_NODES_MAX, sizeof(*lm->rows));
    return 0;
}

/* fds[w * nl + l]: listener l of worker w, all sharing each address. */
static int lb_setup_listeners(struct lb_main *lm, int *fds, char *listen_desc, size_t dlen,
                              char *err, size_t errlen)
{
    const struct lb_cfg *c = lm->cfg;
    size_t nl = c->listen.n, off = 0;

    for (size_t l = 0; l < nl; l++) {
        struct sockaddr_in sa;
        char a[NET_ADDRSTRLEN];
        int r = net_parse_hostport(c->listen.v[l], true, &sa, err, errlen);

        if (r)
            return r;
        for (unsigned w = 0; w < lm->nworkers; w++) {
            int fd = net_tcp_listen(&sa, true, LB_BACKLOG, err, errlen);

            if (fd < 0)
                return fd;
            fds[w * nl + l] = fd;
            sa.sin_port = htons((uint16_t)net_local_port(fd)); /* port 0: the same for all */
        }
        off += (size_t)snprintf(listen_desc + off, off < dlen ? dlen - off : 0, "%s%s",
                                l ? "," : "", net_ntop(&sa, a));
    }
    return 0;
}

static int lb_setup_admin(struct lb_main *lm, char *err, size_t errlen)
{
    struct lb_admin_ctx ctx = {
        .nodes = lm->sh.nodes,
        .mon = lm->mon,
        .ctr = &lm->sh.ctr,
        .policy = lm->cfg->policy,
        .workers = lm->nworkers,
        .maxconn = lm->sh.maxconn,
        .start_ms = clock_mono_ms(),
    };
    struct sockaddr_in sa;
    int r;

    if (!*lm->cfg->admin)
        return 0;
    r = net_parse_hostport(lm->cfg->admin, true, &sa, err, errlen);
    if (r)
        return r;
    lm->admin = lb_admin_new(lm->loop, &sa, &ctx, err, errlen);
    if (!lm->admin)
        return -EINVAL;
    lm->admin_sa = sa;
    lm->admin_sa.sin_port = htons((uint16_t)lb_admin_port(lm->admin));
    return 0;
}

static void lb_start_signals(struct lb_main *lm)
{
    ev_signal_init(&lm->s_term, lb_sig_stop, SIGTERM);
    ev_signal_init(&lm->s_int, lb_sig_stop, SIGINT);
    ev_signal_init(&lm->s_hup, lb_sig_hup, SIGHUP);
    ev_signal_init(&lm->s_usr1, lb_sig_usr1, SIGUSR1);
    lm->s_term.data = lm->s_int.data = lm->s_hup.data = lm->s_usr1.data = lm;
    ev_signal_start(lm->loop, &lm->s_usr1);
    ev_signal_start(lm->loop, &lm->s_term);
    ev_signal_start(lm->loop, &lm->s_int);
    ev_signal_start(lm->loop, &lm->s_hup);
    ev_timer_init(&lm->refresh, lb_refresh_cb, 1., 1.);
    lm->refresh.data = lm;
    ev_timer_start(lm->loop, &lm->refresh);
}

static int lb_start_workers(struct lb_main *lm, const int *fds)
{
    size_t nl = lm->cfg->listen.n;

    lm->workers = xcalloc(lm->nworkers, sizeof(*lm->workers));
    lm->held = lm->mon && lm->cfg->nodes.n == 0;
    for (unsigned w = 0; w < lm->nworkers; w++) {
        int r = lb_worker_start(&lm->workers[w], &lm->sh, w, fds + w * nl, (unsigned)nl, lm->held);

        if (r) {
            log_err("worker %u: %s", w, strerror(-r));
            lm->nworkers = w;
            for (unsigned i = 0; i < w; i++) /* they must end before the join */
                lb_worker_stop(&lm->workers[i], 2);
            return r;
        }
    }
    return 0;
}

static void lb_teardown(struct lb_main *lm)
{
    for (unsigned i = 0; i < lm->nworkers; i++)
        lb_worker_join(&lm->workers[i]);
    free(lm->workers);
    lb_admin_free(lm->admin);
    mon_free(lm->mon);
    free(lm->rows);
    key_ring_done(&lm->kr);
    lb_nodes_free(lm->sh.nodes);
}

int lb_run(const struct lb_cfg *cfg)
{
    struct lb_main lm = {.cfg = cfg, .loop = ev_default_loop(EVFLAG_AUTO), .status = 0};
    char err[512], listen_desc[512] = "", admin_desc[NET_ADDRSTRLEN];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nfds;
    int *fds;

    lm.nworkers = cfg->workers ? (unsigned)cfg->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (lm.nworkers > LB_WORKERS_MAX)
        lm.nworkers = LB_WORKERS_MAX;
    nfds = lm.nworkers * cfg->listen.n;
    fds = xmalloc((nfds ? nfds : 1) * sizeof(*fds));
    for (size_t i = 0; i < nfds; i++)
        fds[i] = -1;
    if (lb_setup_shared(&lm, err, sizeof(err)) || lb_setup_monitor(&lm, err, sizeof(err)) ||
        lb_setup_listeners(&lm, fds, listen_desc, sizeof(listen_desc), err, sizeof(err)) ||
        lb_setup_admin(&lm, err, sizeof(err))) {
        log_err("%s", err);
        for (size_t i = 0; i < nfds; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        lm.nworkers = 0;
        lm.status = 2;
        goto out;
    }
    lb_start_signals(&lm);
    if (lm.mon)
        mon_start(lm.mon);
    if (lb_start_workers(&lm, fds)) {
        lm.status = 1;
        goto out;
    }
    log_info("ready listen=%s admin=%s workers=%u policy=%s static_nodes=%zu agents=%s",
             listen_desc, lm.admin ? net_ntop(&lm.admin_sa, admin_desc) : "-", lm.nworkers,
             cfg->policy, cfg->nodes.n, lm.mon ? cfg->group : "off");
    ev_run(lm.loop, 0);
    log_info("stopped: accepted=%llu",
             (unsigned long long)atomic_load_explicit(&lm.sh.ctr.accepted, memory_order_relaxed));
out:
    lb_teardown(&lm);
    free(fds);
    return lm.status;
}
