/* mon.c - the monitor's rounds, sockets and reply matching.
 *
 * Design notes. A round starts by sending one probe_request with a fresh
 * nonce and seq = round number to the group and to every unicast agent.
 * A response is accepted only when it echoes the current round's nonce and
 * seq; its RTT is the time since the probe went out minus the time the
 * agent says it held the reply (its jitter). A response to the previous
 * round's nonce is "late", any other nonce is "unknown": neither touches the
 * table. hello and bye carry no nonce of ours, so they are checked against
 * the clock (max_skew) and against the node's (boot, seq) in the table.
 * The next round starts when the interval timer fires, right after the
 * current one is closed and reported through on_round.
 */
#include "mon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "xalloc.h"

#define MON_RX_BURST 256       /* datagrams read per wakeup */
#define MON_RCVBUF   (4 << 20) /* bytes: 1000 agents' replies with room to spare */

struct mon {
    struct ev_loop *loop;
    struct mon_cfg cfg;
    struct mon_table *t;
    int gfd, pfd;
    ev_io gio, pio;
    ev_timer round_timer;
    uint64_t round;
    uint64_t sent_us;
    uint64_t cur_replies; /* accepted responses in the open round */
    uint64_t cur_span_us; /* probe sent until the last of them */
    char nonce[PROTO_NONCE_HEX + 1];
    char prev_nonce[PROTO_NONCE_HEX + 1];
    struct log_rl rl_drop;
    struct mon_stats st;
};

void mon_cfg_default(struct mon_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->group.sin_family = AF_INET;
    cfg->group.sin_addr.s_addr = htonl(0xEFFF4D4D); /* 239.255.77.77 */
    cfg->group.sin_port = htons(7777);
    cfg->mcast_if.s_addr = htonl(INADDR_LOOPBACK);
    cfg->probe_bind.sin_family = AF_INET;
    cfg->ttl = 1;
    cfg->interval = 5.0;
    cfg->max_skew = 30.0;
    mon_table_cfg_default(&cfg->table);
}

const struct mon_stats *mon_stats(const struct mon *m)
{
    return &m->st;
}

unsigned mon_probe_port(const struct mon *m)
{
    return net_local_port(m->pfd);
}

size_t mon_snapshot(const struct mon *m, struct mon_node *out, size_t max)
{
    return mon_table_snapshot(m->t, out, max);
}

size_t mon_count(const struct mon *m)
{
    return mon_table_count(m->t);
}

int mon_set_drain(struct mon *m, const char *name, bool drain)
{
    return mon_table_set_drain(m->t, name, drain);
}

/* ---- probing ---- */

static void mon_send_probe(struct mon *m, const struct sockaddr_in *to, const char *buf, size_t n)
{
    char addr[NET_ADDRSTRLEN];

    if (sendto(m->pfd, buf, n, 0, (const struct sockaddr *)to, sizeof(*to)) == -1) {
        m->st.send_errors++;
        log_warn("probe to %s: %s", net_ntop(to, addr), strerror(errno));
        return;
    }
    m->st.probes_sent++;
}

static void mon_probe(struct mon *m)
{
    struct proto_msg msg = {.type = PROTO_PROBE_REQUEST};
    char buf[PROTO_MAX_DGRAM + 1];
    int n;

    m->round++;
    memcpy(m->prev_nonce, m->nonce, sizeof(m->nonce));
    proto_nonce_new(m->nonce);
    mon_table_begin_round(m->t, m->round, clock_mono_ms());
    msg.seq = m->round;
    msg.ts_ms = clock_wall_ms();
    memcpy(msg.nonce, m->nonce, sizeof(msg.nonce));
    n = proto_encode(&msg, m->cfg.keys, buf, sizeof(buf));
    if (n < 0) {
        log_err("cannot encode the probe: %s", strerror(-n));
        return;
    }
    m->sent_us = clock_mono_us();
    m->cur_replies = 0;
    m->cur_span_us = 0;
    mon_send_probe(m, &m->cfg.group, buf, (size_t)n);
    for (size_t i = 0; i < m->cfg.n_unicast; i++)
        mon_send_probe(m, &m->cfg.unicast[i], buf, (size_t)n);
}

static void mon_round_cb_ev(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mon *m = w->data;

    mon_table_end_round(m->t, clock_mono_ms());
    m->st.rounds++;
    m->st.round_replies = m->cur_replies;
    m->st.round_span_us = m->cur_span_us;
    if (m->cfg.on_round)
        m->cfg.on_round(m, m->round, m->cfg.arg);
    /* on_round may have stopped us (--rounds N). */
    if (ev_is_active(&m->round_timer))
        mon_probe(m);
}

/* ---- receiving ---- */

static void mon_drop(struct mon *m, const struct sockaddr_in *from, const char *why,
                     const char *detail)
{
    char addr[NET_ADDRSTRLEN];
    unsigned supp = 0;

    if (!log_rl_allow(&m->rl_drop, clock_mono_ms(), &supp))
        return;
    log_warn("dropped datagram from=%s reason=%s detail=%s suppressed=%u", net_ntop(from, addr),
             why, detail, supp);
}

static bool mon_fresh(const struct mon *m, uint64_t ts_ms)
{
    return proto_ts_fresh(ts_ms, clock_wall_ms(), (uint64_t)(m->cfg.max_skew * 1000.0));
}

/* Maps a table error to its counter and log reason. */
static void mon_table_refused(struct mon *m, const struct sockaddr_in *from,
                              const struct proto_msg *msg, int r)
{
    const char *why = "replayed";

    if (r == -ENOSPC) {
        m->st.table_full++;
        why = "table_full";
    } else if (r == -ENOENT) {
        m->st.unknown_node++;
        why = "unknown_node";
    } else {
        m->st.replayed++;
    }
    mon_drop(m, from, why, msg->name);
}

static void mon_changed(struct mon *m)
{
    if (m->cfg.on_change)
        m->cfg.on_change(m, m->round, m->cfg.arg);
}

static void mon_on_response(struct mon *m, const struct sockaddr_in *from,
                            const struct proto_msg *msg)
{
    uint64_t now_us;
    size_t before;
    double rtt;
    int r;

    if (msg->seq != m->round || strcmp(msg->nonce, m->nonce)) {
        if (!strcmp(msg->nonce, m->prev_nonce) && msg->seq + 1 == m->round) {
            m->st.late++;
            return;
        }
        m->st.unknown_nonce++;
        mon_drop(m, from, "unknown_nonce", msg->name);
        return;
    }
    now_us = clock_mono_us();
    rtt = (double)(now_us - m->sent_us) / 1000.0 - msg->hold_ms;
    if (rtt < 0)
        rtt = 0;
    before = mon_table_count(m->t);
    r = mon_table_report(m->t, msg, rtt, clock_mono_ms());
    if (r) {
        mon_table_refused(m, from, msg, r);
        return;
    }
    m->st.responses++;
    m->cur_replies++;
    m->cur_span_us = now_us - m->sent_us;
    if (mon_table_count(m->t) != before)
        mon_changed(m);
}

static void mon_on_announce(struct mon *m, const struct sockaddr_in *from,
                            const struct proto_msg *msg)
{
    char addr[NET_ADDRSTRLEN];
    bool hello = msg->type == PROTO_HELLO;
    int r;

    if (!mon_fresh(m, msg->ts_ms)) {
        m->st.stale++;
        mon_drop(m, from, "stale_timestamp", msg->name);
        return;
    }
    r = hello ? mon_table_report(m->t, msg, -1.0, clock_mono_ms()) : mon_table_bye(m->t, msg);
    if (r) {
        mon_table_refused(m, from, msg, r);
        return;
    }
    if (hello)
        m->st.hellos++;
    else
        m->st.byes++;
    log_info("node %s %s (%s from %s)", msg->name, hello ? "joined" : "left",
             proto_type_name(msg->type), net_ntop(from, addr));
    mon_changed(m);
}

static void mon_on_datagram(void *arg, int fd, const char *buf, size_t n,
                            const struct sockaddr_in *from)
{
    struct mon *m = arg;
    struct proto_msg msg;
    const char *field;
    enum proto_err e;

    m->st.rx++;
    e = proto_decode(buf, n, m->cfg.keys, &msg, &field);
    if (e != PROTO_OK) {
        m->st.dropped[e]++;
        mon_drop(m, from, proto_err_name(e), field);
        return;
    }
    switch (msg.type) {
    case PROTO_PROBE_RESPONSE:
        mon_on_response(m, from, &msg);
        break;
    case PROTO_HELLO:
    case PROTO_BYE:
        mon_on_announce(m, from, &msg);
        break;
    default:
        m->st.ignored++; /* probes: our own looped back, or another monitor's */
        break;
    }
}

static void mon_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    char buf[PROTO_MAX_DGRAM + 1];
    int r = net_recv_burst(w->fd, buf, sizeof(buf), MON_RX_BURST, mon_on_datagram, w->data);

    if (r < 0)
        log_warn("recvfrom: %s", strerror(-r));
}

/* ---- life cycle ---- */

struct mon *mon_new(struct ev_loop *loop, const struct mon_cfg *cfg, char *err, size_t errlen)
{
    struct mon *m = xcalloc(1, sizeof(*m));

    m->loop = loop;
    m->cfg = *cfg;
    m->gfd = m->pfd = -1;
    m->rl_drop = (struct log_rl)LOG_RL_INIT(5, 10000);
    if (!cfg->keys || cfg->keys->n == 0) {
        snprintf(err, errlen, "the monitor needs the cluster key");
        goto out_free;
    }
    if (mon_weight_cfg_check(&cfg->table.weight, err, errlen) < 0)
        goto out_free;
    m->gfd = net_mcast_socket(&cfg->group, cfg->mcast_if, cfg->ttl, err, errlen);
    if (m->gfd < 0)
        goto out_free;
    m->pfd = net_udp_socket(&cfg->probe_bind, cfg->mcast_if, cfg->ttl, err, errlen);
    if (m->pfd < 0)
        goto out_free;
    /* Replies of a large cluster arrive in one burst; hello/bye rarely. */
    if (net_set_rcvbuf(m->pfd, MON_RCVBUF) < MON_RCVBUF / 4)
        log_warn("probe socket receive buffer is small (raise net.core.rmem_max)");
    net_set_rcvbuf(m->gfd, MON_RCVBUF / 4);
    m->t = mon_table_new(&cfg->table);
    ev_io_init(&m->gio, mon_read_cb, m->gfd, EV_READ);
    ev_io_init(&m->pio, mon_read_cb, m->pfd, EV_READ);
    ev_timer_init(&m->round_timer, mon_round_cb_ev, cfg->interval, cfg->interval);
    m->gio.data = m->pio.data = m->round_timer.data = m;
    return m;
out_free:
    mon_free(m);
    return NULL;
}

void mon_start(struct mon *m)
{
    ev_io_start(m->loop, &m->gio);
    ev_io_start(m->loop, &m->pio);
    ev_timer_start(m->loop, &m->round_timer);
    mon_probe(m);
}

void mon_stop(struct mon *m)
{
    ev_io_stop(m->loop, &m->gio);
    ev_io_stop(m->loop, &m->pio);
    ev_timer_stop(m->loop, &m->round_timer);
}

void mon_free(struct mon *m)
{
    if (!m)
        return;
    if (m->loop)
        mon_stop(m);
    if (m->gfd >= 0)
        close(m->gfd);
    if (m->pfd >= 0)
        close(m->pfd);
    mon_table_free(m->t);
    free(m);
}

int mon_format_stats(const struct mon_stats *s, bool json, char *buf, size_t len)
{
    const struct {
        const char *k;
        uint64_t v;
    } kv[] = {
        {"rounds", s->rounds},
        {"probes_sent", s->probes_sent},
        {"send_errors", s->send_errors},
        {"rx", s->rx},
        {"responses", s->responses},
        {"hellos", s->hellos},
        {"byes", s->byes},
        {"oversize", s->dropped[PROTO_E_OVERSIZE]},
        {"no_mac", s->dropped[PROTO_E_NOMAC]},
        {"bad_mac", s->dropped[PROTO_E_BADMAC]},
        {"malformed_json", s->dropped[PROTO_E_JSON]},
        {"bad_version", s->dropped[PROTO_E_VERSION]},
        {"bad_type", s->dropped[PROTO_E_TYPE]},
        {"bad_field", s->dropped[PROTO_E_FIELD]},
        {"out_of_range", s->dropped[PROTO_E_RANGE]},
        {"unknown_nonce", s->unknown_nonce},
        {"late", s->late},
        {"replayed", s->replayed},
        {"stale", s->stale},
        {"unknown_node", s->unknown_node},
        {"table_full", s->table_full},
        {"ignored", s->ignored},
        {"round_replies", s->round_replies},
        {"round_span_us", s->round_span_us},
    };
    size_t off = 0;

    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        int r = snprintf(off < len ? buf + off : NULL, off < len ? len - off : 0,
                         json ? "%s\"%s\":%" PRIu64 : "%s%s=%" PRIu64, i ? (json ? "," : " ") : "",
                         kv[i].k, kv[i].v);

        if (r < 0)
            return -EINVAL;
        off += (size_t)r;
    }
    return (int)off;
}
