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
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ev.h>

#include "admin.h"
#include "admin_auth.h"
#include "carry.h"
#include "clock.h"
#include "history.h"
#include "key.h"
#include "log.h"
#include "mon.h"
#include "net.h"
#include "notify.h"
#include "reload.h"
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
    struct lb_history *history; /* the status page's last minutes; with admin only */
    struct lb_worker *workers;
    unsigned nworkers;
    ev_timer refresh, stopping;
    ev_signal s_term, s_int, s_hup, s_usr1, s_usr2;
    ev_tstamp stop_deadline;
    struct sockaddr_in admin_sa;
    unsigned last_in, last_total; /* rotation size at the last round, for the log */
    bool held;                    /* workers wait for a node before accepting */
    bool said_closed;             /* "listeners closed" logged */
    /* reload (reload.h): the listeners handed over, the new process this one
     * starts (old side), what it inherited (new side) */
    const int *fds;
    size_t nfds;
    struct lb_reload reload;
    struct lb_inherit inh;
    struct lb_carry *carry; /* new side: drains and overrides not yet applied */
    bool serving;           /* lb_serve() ran: the workers accept, or may */
    bool can_serve;         /* a reload's new process knows a node */
    bool told_by_old;       /* the old process told systemd (MAINPID, READY) */
    bool handed_over;       /* old side: a new process took over */
    bool term_drained;      /* old side: the first TERM after the handover was taken */
    char listen_desc[512];
    int status;
};

static void lb_serve(struct lb_main *lm);

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
    if (closed)
        lb_nodes_round_closed(lm->sh.nodes);
    lb_carry_apply(lm->carry, lm->sh.nodes, m, clock_mono_ms()); /* before any pick */
    in = lb_in_rotation(lm, &total);
    if (in != lm->last_in || total != lm->last_total)
        log_info("%s %llu: %u of %u nodes in rotation", closed ? "round" : "during round",
                 (unsigned long long)round, in, total);
    lm->last_in = in;
    lm->last_total = total;
    /* A reload's new process waits for a node: the old one serves meanwhile. */
    if (!lm->serving && (in > 0 || (closed && !lb_inherit_active(&lm->inh))))
        lb_serve(lm);
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

/* Workers take in their accept queues and close their listeners; open
 * connections get --grace. */
static void lb_stop(struct lb_main *lm)
{
    struct ev_loop *loop = lm->loop;

    for (unsigned i = 0; i < lm->nworkers; i++)
        lb_worker_stop(&lm->workers[i], 1);
    if (lm->mon)
        mon_stop(lm->mon);
    lm->stop_deadline = ev_now(loop) + lm->cfg->grace;
    ev_timer_init(&lm->stopping, lb_stopping_cb, 0.05, 0.05);
    lm->stopping.data = lm;
    ev_timer_start(loop, &lm->stopping);
}

static void lb_sig_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct lb_main *lm = w->data;

    if (ev_is_active(&lm->stopping) && lm->handed_over && !lm->term_drained) {
        /* systemd's stop signals the whole cgroup: this one drains already */
        lm->term_drained = true;
        log_info("signal %d: handed over already, draining", w->signum);
        return;
    }
    if (ev_is_active(&lm->stopping)) {
        log_info("signal %d again: stopping now", w->signum);
        for (unsigned i = 0; i < lm->nworkers; i++)
            lb_worker_stop(&lm->workers[i], 2);
        return;
    }
    if (lb_inherit_active(&lm->inh)) {
        /* Not taken over yet: the old process keeps the sockets and their queues. */
        log_info("signal %d: stopping before taking over; the old process keeps serving",
                 w->signum);
        for (unsigned i = 0; i < lm->nworkers; i++)
            lb_worker_release(&lm->workers[i]);
        lb_inherit_done(&lm->inh, loop);
        lb_stop(lm);
        return;
    }
    log_info("signal %d: stopping; taking in the accept queues", w->signum);
    lb_notify("STOPPING=1\nSTATUS=stopping: connections get %gs to finish", lm->cfg->grace);
    lb_reload_abort(&lm->reload);
    lb_stop(lm);
}

/* SIGUSR2: starts a new process of this binary with the same arguments
 * and hands it the listeners once it is ready (reload.h). */
static void lb_sig_usr2(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct lb_main *lm = w->data;
    char err[256];
    size_t carried;

    if (ev_is_active(&lm->stopping) || lb_inherit_active(&lm->inh) ||
        lm->reload.state != LB_RELOAD_IDLE) {
        log_warn("signal %d: reload refused: %s", w->signum,
                 ev_is_active(&lm->stopping) ? "this process is stopping"
                 : lb_inherit_active(&lm->inh)
                     ? "this process is still taking over from the previous one"
                     : "a reload is under way");
        return;
    }
    log_info("signal %d: reloading: starting a new process", w->signum);
    /* MONOTONIC_USEC: when the reload began (sd_notify(3) asks for it with
     * RELOADING=1) */
    lb_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
              (unsigned long long)clock_mono_us());
    carried = lb_carry_export(lm->sh.nodes);
    if (lb_reload_start(&lm->reload, lm->fds, lm->nfds, err, sizeof(err))) {
        log_err("reload failed: %s; this process keeps serving", err);
        lb_notify("READY=1\nSTATUS=reload failed: %s", err);
        return;
    }
    log_info("reload: new process %d started with %zu listeners%s; this one serves until it is "
             "ready",
             (int)lm->reload.pid, lm->nfds,
             carried ? " and the admin drains and weight overrides" : "");
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
    mc.table.weight = c->weight;
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
        for (unsigned w = 0, inherited = 0, shared = 0; w < lm->nworkers; w++) {
            /* A reload adopts the old process's sockets, and their queues. */
            int fd = lb_inherit_take(&lm->inh, &sa);

            inherited += fd >= 0;
            /* Clients get TCP_NODELAY from the listener: an older process's
             * socket may not have it (net_tcp_listen sets it on new ones). */
            if (fd >= 0)
                net_tcp_nodelay(fd);

            /* More workers than the old process had: the extra ones share an
             * inherited socket. A socket of their own would take its share
             * of new clients at once (SO_REUSEPORT) but accept only on the
             * old process's go: if this process then failed, its queue
             * would be reset. A restart gives each worker its own. */
            if (fd < 0 && inherited > 0 && lb_inherit_active(&lm->inh)) {
                fd = fcntl(fds[(w % inherited) * nl + l], F_DUPFD_CLOEXEC, 0);
                if (fd < 0) {
                    snprintf(err, errlen, "listen %s: %s", c->listen.v[l], strerror(errno));
                    return -errno;
                }
                shared++;
            }
            if (fd < 0 && (fd = net_tcp_listen(&sa, true, LB_BACKLOG, err, errlen)) < 0)
                return fd;
            fds[w * nl + l] = fd;
            sa.sin_port = htons((uint16_t)net_local_port(fd)); /* port 0: the same for all */
            if (shared && w + 1 == lm->nworkers)
                log_info("reload: %s: %u workers share %u inherited sockets (a restart gives each "
                         "its own)",
                         c->listen.v[l], lm->nworkers, inherited);
        }
        off += (size_t)snprintf(listen_desc + off, off < dlen ? dlen - off : 0, "%s%s",
                                l ? "," : "", net_ntop(&sa, a));
    }
    lb_inherit_close_rest(&lm->inh);
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
        .token_file = lm->cfg->admin_token_file,
        .insecure = lm->cfg->admin_insecure,
        .prog = lm->cfg->prog,
        .cfg = lm->cfg,
        .argc = lm->cfg->argc,
        .argv = lm->cfg->argv,
    };
    struct sockaddr_in sa;
    int r;

    if (!*lm->cfg->admin)
        return 0;
    r = net_parse_hostport(lm->cfg->admin, true, &sa, err, errlen);
    if (r)
        return r;
    /* A reload binds it when the old process lets go (lb_on_go); its token
     * and address rules are checked now, so that a reload with a bad token
     * file fails and the old process keeps its admin port, instead of one
     * serving without it. */
    if (lb_inherit_active(&lm->inh))
        return admin_auth_validate(ctx.token_file, ctx.insecure, &sa, err, errlen);
    lm->history = ctx.history = lb_history_new(LB_HISTORY_LEN, LB_NODES_MAX);
    lm->admin = lb_admin_new(lm->loop, &sa, &ctx, err, errlen);
    if (!lm->admin)
        return -EINVAL;
    lb_history_start(lm->history, lm->loop, lm->sh.nodes, lm->mon);
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
    ev_signal_init(&lm->s_usr2, lb_sig_usr2, SIGUSR2);
    lm->s_term.data = lm->s_int.data = lm->s_hup.data = lm->s_usr1.data = lm;
    lm->s_usr2.data = lm;
    ev_signal_start(lm->loop, &lm->s_usr2);
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
    lm->held = (lm->mon && lm->cfg->nodes.n == 0) || lb_inherit_active(&lm->inh);
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

/* ---- serving, and reloads ---- */

static void lb_log_ready(struct lb_main *lm)
{
    const struct lb_cfg *c = lm->cfg;
    char a[NET_ADDRSTRLEN];

    log_info("ready listen=%s admin=%s workers=%u policy=%s static_nodes=%zu agents=%s",
             lm->listen_desc, lm->admin ? net_ntop(&lm->admin_sa, a) : "-", lm->nworkers, c->policy,
             c->nodes.n, lm->mon ? c->group : "off");
}

/* New process: the old one let go (or is gone); accept, and take the admin
 * port it freed. */
static void lb_on_go(void *arg, bool alone)
{
    struct lb_main *lm = arg;
    char err[512];

    lm->told_by_old = !alone;
    if (lm->can_serve)
        lb_serve(lm);
    if (lb_setup_admin(lm, err, sizeof(err)))
        log_err("reload: admin port: %s; serving without it", err);
    lb_log_ready(lm);
}

/* The workers may accept: a node is in rotation, a static one is given, or
 * (not in a reload) the first round closed without any. A reload's new
 * process tells the old one instead, and accepts on its go. READY=1 goes to
 * systemd here: the listeners are up and a node is known. */
static void lb_serve(struct lb_main *lm)
{
    unsigned in, total;

    lm->can_serve = true;
    if (lm->serving)
        return;
    if (lb_inherit_active(&lm->inh)) {
        lb_inherit_ready(&lm->inh, lm->loop, lb_on_go, lm);
        return;
    }
    lm->serving = true;
    in = lb_in_rotation(lm, &total);
    if (lm->held) {
        lm->held = false;
        for (unsigned i = 0; i < lm->nworkers; i++)
            lb_worker_open(&lm->workers[i]);
        log_info("accepting clients (rotation: %u of %u)", in, total);
    }
    if (!lm->told_by_old)
        lb_notify("MAINPID=%d\nREADY=1\nSTATUS=serving (rotation: %u of %u)", (int)getpid(), in,
                  total);
}

/* Old process: the new one can serve. It gets the admin port and, from
 * systemd's point of view, the service; this one drains as on TERM. */
static void lb_on_reload_ready(void *arg, pid_t pid)
{
    struct lb_main *lm = arg;

    log_info("reload: new process %d is ready; it takes over, this one stops accepting", (int)pid);
    lb_admin_free(lm->admin);
    lm->admin = NULL;
    lb_notify("MAINPID=%d\nREADY=1\nSTATUS=reloaded: new process %d", (int)pid, (int)pid);
    lm->handed_over = true;
    lb_stop(lm);
    lb_reload_go(&lm->reload);
}

static void lb_on_reload_failed(void *arg, pid_t pid, const char *why)
{
    struct lb_main *lm = arg;

    if (ev_is_active(&lm->stopping)) {
        log_info("reload abandoned: %s", why);
        return;
    }
    log_err("reload failed: %s; this process keeps serving", why);
    lb_notify("READY=1\nSTATUS=reload failed: %s", why);
}

static void lb_teardown(struct lb_main *lm)
{
    for (unsigned i = 0; i < lm->nworkers; i++)
        lb_worker_join(&lm->workers[i]);
    free(lm->workers);
    lb_admin_free(lm->admin);
    lb_history_free(lm->history);
    mon_free(lm->mon);
    free(lm->rows);
    key_ring_done(&lm->kr);
    lb_nodes_free(lm->sh.nodes);
    lb_carry_free(lm->carry);
    lb_reload_done(&lm->reload);
    lb_inherit_done(&lm->inh, lm->loop);
}

int lb_run(const struct lb_cfg *cfg)
{
    struct lb_main lm = {.cfg = cfg, .loop = ev_default_loop(EVFLAG_AUTO), .status = 0};
    char err[512];
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
    lm.fds = fds;
    lm.nfds = nfds;
    lm.carry = lb_carry_import(); /* what a reload's old process was told */
    lb_reload_init(&lm.reload, lm.loop, cfg->argv, cfg->reload_timeout, lb_on_reload_ready,
                   lb_on_reload_failed, &lm);
    if (lb_inherit_init(&lm.inh, err, sizeof(err)) || lb_setup_shared(&lm, err, sizeof(err)) ||
        lb_setup_monitor(&lm, err, sizeof(err)) ||
        lb_setup_listeners(&lm, fds, lm.listen_desc, sizeof(lm.listen_desc), err, sizeof(err)) ||
        lb_setup_admin(&lm, err, sizeof(err))) {
        log_err("%s", err);
        lb_inherit_fail(&lm.inh, err);
        for (size_t i = 0; i < nfds; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        lm.nworkers = 0;
        lm.status = 2;
        goto out;
    }
    lb_carry_apply(lm.carry, lm.sh.nodes, lm.mon, clock_mono_ms()); /* static nodes */
    lb_start_signals(&lm);
    if (lm.mon)
        mon_start(lm.mon);
    if (lb_start_workers(&lm, fds)) {
        lm.status = 1;
        goto out;
    }
    if (lb_inherit_active(&lm.inh))
        log_info("reload: took over %zu of %zu listeners from process %d; accepting once it "
                 "lets go",
                 lb_inherit_taken(&lm.inh), lb_inherit_count(&lm.inh), (int)getppid());
    else
        lb_log_ready(&lm);
    if (cfg->nodes.n)
        lb_serve(&lm);
    ev_run(lm.loop, 0);
    log_info("stopped: accepted=%llu",
             (unsigned long long)atomic_load_explicit(&lm.sh.ctr.accepted, memory_order_relaxed));
out:
    lb_teardown(&lm);
    free(fds);
    return lm.status;
}
