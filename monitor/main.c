/* main.c - fulcrum-monitor: the monitor library as a program that prints
 * the status table once a round, for `tail -f`. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "cfg.h"
#include "clock.h"
#include "log.h"
#include "mon.h"
#include "opts.h"
#include "net.h"
#include "xalloc.h"

struct monitor_cfg {
    char *group;
    char *mcast_if;
    char *probe_listen;
    struct cfg_list agents;
    char *key;
    char *key_next;
    double interval;
    double max_skew;
    double forget;
    long long ttl;
    long long miss_down;
    long long max_nodes;
    long long rounds;
    struct mon_weight_cfg weight;
    bool json;
    bool no_color;
    char *status_file;
    char *log_file;
    int log_level;
};

#define O(f) offsetof(struct monitor_cfg, f)
static const struct cfg_opt monitor_opts[] = {
    {"probe-listen", CFG_STR, O(probe_listen), 0, 255, "0.0.0.0:0", NULL, "ADDR:PORT",
     "where probes are sent from and replies come back"},
    {"agent", CFG_LIST, O(agents), 0, 0, NULL, NULL, "HOST:PORT",
     "also probe this agent by unicast (its --listen)"},
    {"forget", CFG_DOUBLE, O(forget), 1, 864000, "300", NULL, "SEC",
     "a down node leaves the table after this"},
    {"max-nodes", CFG_INT, O(max_nodes), 1, 65536, "4096", NULL, "N", "rows in the table at most"},
    {"ttl", CFG_INT, O(ttl), 1, 255, "1", NULL, "N", "multicast TTL of the probes"},
    {"json", CFG_BOOL, O(json), 0, 0, "no", NULL, NULL,
     "print one JSON object per round instead of the text table"},
    {"no-color", CFG_BOOL, O(no_color), 0, 0, "no", NULL, NULL,
     "no colours in the table on a terminal (also when NO_COLOR is set)"},
    {"rounds", CFG_INT, O(rounds), 0, 1e12, "0", NULL, "N", "exit after N rounds (0: never)"},
    {"status-file", CFG_STR, O(status_file), 0, 4095, "", NULL, "FILE",
     "also write the last round's table (JSON) here, atomically"},
    OPTS_GROUP(struct monitor_cfg),
    OPTS_ROUNDS(struct monitor_cfg),
    MON_WEIGHT_OPTS(struct monitor_cfg, weight),
    OPTS_KEY(struct monitor_cfg, NULL, "cluster key file (mode 0600)"),
    OPTS_LOG(struct monitor_cfg),
    {NULL},
};
#undef O

/* --check-config: what monitor_build_cfg() would refuse. */
static void monitor_check_hook(const void *obj, struct cfg_check *chk)
{
    const struct monitor_cfg *c = obj;

    if (cfg_check_required(chk, "key", c->key))
        cfg_check_key_file(chk, "key", c->key);
    cfg_check_key_file(chk, "key-next", c->key_next);
    cfg_check_hostport(chk, "group", c->group, false);
    cfg_check_ip(chk, "mcast-if", c->mcast_if);
    cfg_check_hostport(chk, "probe-listen", c->probe_listen, true);
    if (c->agents.n > MON_UNICAST_MAX)
        cfg_check_fail(chk, "agent", MON_UNICAST_MAX, "at most %d", MON_UNICAST_MAX);
    cfg_check_hostports(chk, "agent", &c->agents, false);
    if (c->weight.floor > c->weight.cap)
        cfg_check_fail(chk, "weight-floor", 0, "is above weight-cap (%g)", c->weight.cap);
    cfg_check_log_file(chk, "log-file", c->log_file);
    cfg_check_replaced_file(chk, "status-file", c->status_file);
}

static const struct cfg_prog monitor_prog = {
    .name = "fulcrum-monitor",
    .summary = "Probes Fulcrum agents every interval and prints the status table once a\n"
               "round on stdout (text, or --json lines), for `tail -f`.\n"
               "Signals: TERM/INT exit, HUP reopens the log, USR1 logs counters.\n"
               "Exit status: 0 --rounds reached or stopped by a signal (or --help, --version,\n"
               "--check-config OK); 2 bad options, configuration file, key or address; 1\n"
               "the log file or a socket cannot be set up.",
    .version = "0.1.0",
    .opts = monitor_opts,
    .check = monitor_check_hook,
};

#define MONITOR_OUT_MAX (1u << 22) /* 4 MiB: 4096 rows of JSON fit */

struct monitor {
    struct ev_loop *loop;
    const struct monitor_cfg *cfg;
    struct mon *mon;
    struct mon_node *rows;
    size_t max_rows;
    char *out;
    int status;
    bool tty;     /* stdout is a terminal: redraw the table in place */
    unsigned fmt; /* MON_FMT_COLOR on a terminal unless told not to */
};

/* Writes the table of this round to the status file: tmp + rename. */
static void monitor_write_status(const char *path, const char *text, size_t n)
{
    char tmp[4200];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        log_warn("status file %s: %s", tmp, strerror(errno));
        return;
    }
    fwrite(text, 1, n, f);
    fputc('\n', f);
    if (fclose(f) || rename(tmp, path) == -1)
        log_warn("status file %s: %s", path, strerror(errno));
}

/* The table's JSON line with the drop counters added as "stats". */
static int monitor_json(struct monitor *p, size_t n, uint64_t round)
{
    uint64_t now = clock_mono_ms(), wall = clock_wall_ms();
    int len = mon_table_format_json(p->rows, n, round, now, wall, p->out, MONITOR_OUT_MAX);
    int r;

    if (len < 2 || (size_t)len >= MONITOR_OUT_MAX - 4096 || p->out[len - 1] != '}')
        return -EMSGSIZE;
    len--; /* reopen the object */
    r = snprintf(p->out + len, MONITOR_OUT_MAX - (size_t)len, ",\"stats\":{");
    len += r;
    r = mon_format_stats(mon_stats(p->mon), true, p->out + len, MONITOR_OUT_MAX - (size_t)len);
    if (r < 0 || (size_t)(len + r + 3) >= MONITOR_OUT_MAX)
        return -EMSGSIZE;
    len += r;
    len += snprintf(p->out + len, MONITOR_OUT_MAX - (size_t)len, "}}");
    return len;
}

static int monitor_text(struct monitor *p, size_t n, uint64_t round)
{
    uint64_t now = clock_mono_ms(), wall = clock_wall_ms();
    int len, r;

    /* On a terminal: cursor home and clear, so the table updates in place. */
    r = p->tty ? snprintf(p->out, MONITOR_OUT_MAX, "\033[H\033[2J") : 0;
    len = mon_table_format_text_ex(p->rows, n, round, now, wall, p->fmt, p->out + r,
                                   MONITOR_OUT_MAX - (size_t)r);
    if (len >= 0)
        len += r;

    if (len < 0 || (size_t)len >= MONITOR_OUT_MAX - 4096)
        return -EMSGSIZE;
    r = snprintf(p->out + len, MONITOR_OUT_MAX - (size_t)len, "counters: ");
    len += r;
    r = mon_format_stats(mon_stats(p->mon), false, p->out + len, MONITOR_OUT_MAX - (size_t)len);
    if (r < 0 || (size_t)(len + r + 2) >= MONITOR_OUT_MAX)
        return -EMSGSIZE;
    len += r;
    len += snprintf(p->out + len, MONITOR_OUT_MAX - (size_t)len, "\n");
    return len;
}

/* Colour and redraw for a terminal only (https://no-color.org: NO_COLOR
 * set and not empty turns colour off; TERM=dumb gets neither). */
static void monitor_detect_tty(struct monitor *p)
{
    const char *term = getenv("TERM"), *nc = getenv("NO_COLOR");

    p->tty = !p->cfg->json && isatty(STDOUT_FILENO) && !(term && !strcmp(term, "dumb"));
    p->fmt = p->tty && !p->cfg->no_color && !(nc && *nc) ? MON_FMT_COLOR : 0;
}

static void monitor_on_round(struct mon *m, uint64_t round, void *arg)
{
    struct monitor *p = arg;
    size_t n = mon_snapshot(m, p->rows, p->max_rows);
    int len = p->cfg->json ? monitor_json(p, n, round) : monitor_text(p, n, round);

    if (len < 0) {
        log_err("round %llu: table too large to print", (unsigned long long)round);
    } else {
        fwrite(p->out, 1, (size_t)len, stdout);
        if (p->cfg->json)
            fputc('\n', stdout);
        fflush(stdout);
    }
    if (*p->cfg->status_file && len >= 0) {
        len = p->cfg->json ? len : monitor_json(p, n, round);
        if (len >= 0)
            monitor_write_status(p->cfg->status_file, p->out, (size_t)len);
    }
    if (p->cfg->rounds && round >= (uint64_t)p->cfg->rounds) {
        mon_stop(m);
        ev_break(p->loop, EVBREAK_ALL);
    }
}

static int monitor_build_cfg(const struct monitor_cfg *c, struct key_ring *kr, struct mon_cfg *mc,
                             char *err, size_t errlen)
{
    int r;

    mon_cfg_default(mc);
    if (!c->key || !*c->key) {
        snprintf(err, errlen, "--key FILE is required (the cluster key)");
        return -EINVAL;
    }
    if ((r = key_ring_load(kr, c->key, err, errlen)) ||
        (*c->key_next && (r = key_ring_load(kr, c->key_next, err, errlen))) ||
        (r = net_parse_hostport(c->group, false, &mc->group, err, errlen)) ||
        (r = net_parse_ip(c->mcast_if, &mc->mcast_if, err, errlen)) ||
        (r = net_parse_hostport(c->probe_listen, true, &mc->probe_bind, err, errlen)))
        return r;
    if (c->agents.n > MON_UNICAST_MAX) {
        snprintf(err, errlen, "--agent: at most %d", MON_UNICAST_MAX);
        return -E2BIG;
    }
    for (size_t i = 0; i < c->agents.n; i++) {
        if ((r = net_parse_hostport(c->agents.v[i], false, &mc->unicast[i], err, errlen)))
            return r;
    }
    mc->n_unicast = c->agents.n;
    mc->keys = kr;
    mc->ttl = (int)c->ttl;
    mc->interval = c->interval;
    mc->max_skew = c->max_skew;
    mc->table.max_nodes = (unsigned)c->max_nodes;
    mc->table.miss_down = (unsigned)c->miss_down;
    mc->table.forget_ms = (uint64_t)(c->forget * 1000.0);
    mc->table.weight = c->weight;
    return 0;
}

static void monitor_sig_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    log_info("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

static void monitor_sig_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (log_reopen())
        log_err("cannot reopen the log file");
}

static void monitor_sig_usr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct monitor *p = w->data;
    char buf[2048];

    if (mon_format_stats(mon_stats(p->mon), false, buf, sizeof(buf)) > 0)
        log_info("stats %s", buf);
}

static void monitor_syserr(const char *msg)
{
    log_err("libev: %s", msg);
    abort();
}

static int monitor_run(const struct monitor_cfg *c)
{
    struct monitor p = {.cfg = c, .status = 0, .loop = ev_default_loop(EVFLAG_AUTO)};
    struct key_ring kr = {0};
    struct mon_cfg mc;
    ev_signal s_term, s_int, s_hup, s_usr1;
    struct ev_loop *loop = p.loop;
    char err[512];

    if (monitor_build_cfg(c, &kr, &mc, err, sizeof(err))) {
        log_err("%s", err);
        return 2;
    }
    mc.on_round = monitor_on_round;
    mc.arg = &p;
    p.mon = mon_new(loop, &mc, err, sizeof(err));
    if (!p.mon) {
        log_err("%s", err);
        key_ring_done(&kr);
        return 1;
    }
    p.max_rows = (size_t)c->max_nodes;
    p.rows = xcalloc(p.max_rows, sizeof(*p.rows));
    p.out = xmalloc(MONITOR_OUT_MAX);
    monitor_detect_tty(&p);
    ev_signal_init(&s_term, monitor_sig_stop, SIGTERM);
    ev_signal_init(&s_int, monitor_sig_stop, SIGINT);
    ev_signal_init(&s_hup, monitor_sig_hup, SIGHUP);
    ev_signal_start(loop, &s_term);
    ev_signal_start(loop, &s_int);
    ev_signal_start(loop, &s_hup);
    ev_signal_init(&s_usr1, monitor_sig_usr1, SIGUSR1);
    s_usr1.data = &p;
    ev_signal_start(loop, &s_usr1);
    log_info("probing %s every %gs, replies on port %u", c->group, c->interval,
             mon_probe_port(p.mon));
    mon_start(p.mon);
    ev_run(loop, 0);
    ev_signal_stop(loop, &s_term);
    ev_signal_stop(loop, &s_int);
    ev_signal_stop(loop, &s_hup);
    ev_signal_stop(loop, &s_usr1);
    mon_free(p.mon);
    key_ring_done(&kr);
    free(p.rows);
    free(p.out);
    return p.status;
}

int main(int argc, char **argv)
{
    struct monitor_cfg cfg = {0};
    char err[512];
    int r;

    r = cfg_load(&monitor_prog, &cfg, argc, argv, err, sizeof(err));
    if (r) {
        if (r < 0)
            fprintf(stderr, "fulcrum-monitor: %s\n", err);
        cfg_done(&monitor_prog, &cfg);
        return r > 0 ? 0 : 2;
    }
    if (log_open("fulcrum-monitor", cfg.log_file, (enum log_level)cfg.log_level)) {
        fprintf(stderr, "fulcrum-monitor: cannot open log file %s\n", cfg.log_file);
        cfg_done(&monitor_prog, &cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    ev_set_syserr_cb(monitor_syserr);
    r = monitor_run(&cfg);
    log_close();
    cfg_done(&monitor_prog, &cfg);
    return r;
}
