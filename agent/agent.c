/* agent.c - the agent's sockets, timers and replies.
 *
 * Design notes. A probe request is verified (tag, then fields), checked for
 * freshness (timestamp within max_skew of our clock, nonce not answered
 * before: a ring of the last AGENT_SEEN nonces), then answered after a
 * random delay of 0..jitter_ms from the socket it came in on, to its
 * sender. The response carries how long it was held (hold_ms) so the
 * monitor's RTT leaves the jitter out. Metrics are sampled at reply time,
 * at most every AGENT_MIN_SAMPLE_MS, so CPU idle is an average over the
 * probe interval. When no reply went out for longer than twice the last
 * gap between replies (at least AGENT_FRESH_MS * 2), the agent re-samples
 * every AGENT_FRESH_MS on its own: the first answer to a monitor that
 * starts, or comes back, then covers the last second, not the whole
 * silence (a balancer started after a load would otherwise learn an idle
 * figure of that load, and place its first connections by it). The cache
 * node is checked every check_interval, by a TCP
 * connect or an HTTP GET (check.c); the first result triggers hello.
 */
#include "agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "clock.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "xalloc.h"

#define AGENT_SEEN          4096  /* nonces remembered: 20 probes/s over a 30 s window */
#define AGENT_MIN_SAMPLE_MS 500   /* metrics are re-read at most this often */
#define AGENT_FRESH_MS      1000  /* while unprobed: re-sampled this often */
#define AGENT_SILENCE_MAX   30000 /* unprobed after at most this long */
#define AGENT_RX_BURST      64    /* datagrams read per wakeup */

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct agent_reply {
    ev_timer timer; /* fires after the jitter delay */
    struct agent *a;
    int fd;
    struct sockaddr_in to;
    uint64_t seq;
    uint64_t recv_us;
    char nonce[PROTO_NONCE_HEX + 1];
    bool busy;
};

struct agent {
    struct ev_loop *loop;
    const struct agent_cfg *cfg;
    struct key_ring kr;
    struct agent_metrics *am;
    struct sockaddr_in group, service, ucast;
    struct in_addr ifaddr;
    int gfd, ufd;
    ev_io gio, uio;
    char boot[PROTO_NONCE_HEX + 1];
    uint64_t msg_seq; /* our hello/bye counter */
    uint64_t start_ms;

    /* service check */
    struct check check;
    ev_timer check_timer;
    ev_timer hello_timer; /* hello waits for a meaningful first sample */
    bool service_up, checked, hello_sent;
    bool last_check; /* result of the latest check */
    unsigned streak; /* checks in a row with that result */

    /* metrics cache */
    struct agent_sample sample;
    uint64_t sample_ms;
    bool sampled;
    ev_timer fresh_timer;  /* re-samples while no monitor asks */
    uint64_t reply_ms;     /* last probe answered (0: none yet) */
    uint64_t reply_gap_ms; /* between the last two answers */

    unsigned char seen[AGENT_SEEN][PROTO_NONCE_BYTES];
    unsigned seen_next;

    struct agent_reply *replies;
    struct log_rl rl_drop;
    struct agent_stats st;
};

const struct agent_stats *agent_stats(const struct agent *a)
{
    return &a->st;
}

/* ---- sending ---- */

static void agent_resample(struct agent *a, uint64_t now)
{
    if (agent_metrics_sample(a->am, now, &a->sample) == 0) {
        a->sample_ms = now;
        a->sampled = true;
    }
}

/* Unprobed for longer than twice the last gap between answers: the next
 * answer's CPU window is kept to the last AGENT_FRESH_MS. */
static void agent_fresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent *a = w->data;
    uint64_t now = clock_mono_ms();
    uint64_t silence = 2 * a->reply_gap_ms;

    (void)loop;
    (void)revents;
    if (silence < 2 * AGENT_FRESH_MS)
        silence = 2 * AGENT_FRESH_MS;
    if (silence > AGENT_SILENCE_MAX)
        silence = AGENT_SILENCE_MAX;
    if ((a->reply_ms == 0 || now - a->reply_ms > silence) &&
        (!a->sampled || now - a->sample_ms >= AGENT_FRESH_MS)) {
        agent_resample(a, now);
        a->st.resampled++;
    }
}

/* Fills m from the cached sample, re-read when older than
 * AGENT_MIN_SAMPLE_MS. Returns the monotonic time it read (ms). */
static uint64_t agent_fill_metrics(struct agent *a, struct proto_metrics *m)
{
    uint64_t now = clock_mono_ms();

    if (!a->sampled || now - a->sample_ms >= AGENT_MIN_SAMPLE_MS)
        agent_resample(a, now);
    inet_ntop(AF_INET, &a->service.sin_addr, m->ip, sizeof(m->ip));
    m->port = ntohs(a->service.sin_port);
    m->ram_free = a->sample.ram_free;
    m->ram_total = a->sample.ram_total > 0 ? a->sample.ram_total : 1;
    if (m->ram_free > m->ram_total)
        m->ram_free = m->ram_total;
    m->cpu_idle = a->sample.cpu_idle;
    m->load1 = a->sample.load1;
    m->uptime = (double)(now - a->start_ms) / 1000.0;
    m->service_up = a->service_up;
    m->cgroup = a->sample.cgroup;
    m->cpu_milli = a->sample.cpu_milli;
    return now;
}

static void agent_send(struct agent *a, int fd, const struct sockaddr_in *to,
                       const struct proto_msg *msg)
{
    char buf[PROTO_MAX_DGRAM + 1], addr[NET_ADDRSTRLEN];
    int n = proto_encode(msg, &a->kr, buf, sizeof(buf));

    if (n < 0) {
        a->st.send_errors++;
        log_err("cannot encode %s: %s", proto_type_name(msg->type), strerror(-n));
        return;
    }
    if (sendto(fd, buf, (size_t)n, 0, (const struct sockaddr *)to, sizeof(*to)) == -1) {
        a->st.send_errors++;
        log_warn("send %s to %s: %s", proto_type_name(msg->type), net_ntop(to, addr),
                 strerror(errno));
    }
}

/* hello or bye to the group, with our own strictly increasing seq. */
static void agent_announce(struct agent *a, enum proto_type type)
{
    struct proto_msg msg = {.type = type, .seq = ++a->msg_seq, .ts_ms = clock_wall_ms()};

    snprintf(msg.name, sizeof(msg.name), "%s", a->cfg->name);
    memcpy(msg.boot, a->boot, sizeof(msg.boot));
    proto_nonce_new(msg.nonce);
    if (type == PROTO_HELLO)
        agent_fill_metrics(a, &msg.m);
    agent_send(a, a->gfd, &a->group, &msg);
}

static void agent_reply_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent_reply *r = container_of(w, struct agent_reply, timer);
    struct agent *a = r->a;
    struct proto_msg msg = {.type = PROTO_PROBE_RESPONSE, .seq = r->seq};
    uint64_t now;

    msg.ts_ms = clock_wall_ms();
    memcpy(msg.nonce, r->nonce, sizeof(msg.nonce));
    snprintf(msg.name, sizeof(msg.name), "%s", a->cfg->name);
    memcpy(msg.boot, a->boot, sizeof(msg.boot));
    now = agent_fill_metrics(a, &msg.m);
    msg.hold_ms = (double)(clock_mono_us() - r->recv_us) / 1000.0;
    if (msg.hold_ms > PROTO_MAX_HOLD_MS)
        msg.hold_ms = PROTO_MAX_HOLD_MS;
    agent_send(a, r->fd, &r->to, &msg);
    a->st.answered++;
    if (a->reply_ms != 0)
        a->reply_gap_ms = now - a->reply_ms;
    a->reply_ms = now;
    r->busy = false;
}

/* ---- receiving ---- */

static void agent_drop(struct agent *a, const struct sockaddr_in *from, const char *why,
                       const char *field)
{
    char addr[NET_ADDRSTRLEN];
    unsigned supp = 0;

    if (!log_rl_allow(&a->rl_drop, clock_mono_ms(), &supp))
        return;
    log_warn("dropped datagram from=%s reason=%s field=%s suppressed=%u", net_ntop(from, addr), why,
             field ? field : "", supp);
}

/* True when the nonce was answered before; remembers it otherwise. */
static bool agent_seen_nonce(struct agent *a, const char *nonce)
{
    unsigned char raw[PROTO_NONCE_BYTES];

    /* decode cannot fail: proto_decode checked 32 lowercase hex digits */
    sodium_hex2bin(raw, sizeof(raw), nonce, PROTO_NONCE_HEX, NULL, NULL, NULL);
    for (unsigned i = 0; i < AGENT_SEEN; i++) {
        if (!memcmp(a->seen[i], raw, sizeof(raw)))
            return true;
    }
    memcpy(a->seen[a->seen_next], raw, sizeof(raw));
    a->seen_next = (a->seen_next + 1) % AGENT_SEEN;
    return false;
}

static bool agent_fresh(const struct agent *a, uint64_t ts_ms)
{
    return proto_ts_fresh(ts_ms, clock_wall_ms(), (uint64_t)(a->cfg->max_skew * 1000.0));
}

static struct agent_reply *agent_reply_slot(struct agent *a)
{
    for (long long i = 0; i < a->cfg->max_pending; i++) {
        if (!a->replies[i].busy)
            return &a->replies[i];
    }
    return NULL;
}

static void agent_on_request(struct agent *a, int fd, const struct sockaddr_in *from,
                             const struct proto_msg *msg)
{
    struct agent_reply *r;
    double delay;

    if (!agent_fresh(a, msg->ts_ms)) {
        a->st.stale++;
        agent_drop(a, from, "stale_timestamp", "ts");
        return;
    }
    if (agent_seen_nonce(a, msg->nonce)) {
        a->st.replayed++;
        agent_drop(a, from, "replayed_nonce", "nonce");
        return;
    }
    r = agent_reply_slot(a);
    if (!r) {
        a->st.busy++;
        agent_drop(a, from, "too_many_pending", "");
        return;
    }
    r->busy = true;
    r->fd = fd;
    r->to = *from;
    r->seq = msg->seq;
    r->recv_us = clock_mono_us();
    memcpy(r->nonce, msg->nonce, sizeof(r->nonce));
    delay = a->cfg->jitter_ms > 0 ? randombytes_uniform((uint32_t)a->cfg->jitter_ms + 1) : 0;
    ev_timer_set(&r->timer, delay / 1000.0, 0.);
    ev_timer_start(a->loop, &r->timer);
}

static void agent_on_datagram(void *arg, int fd, const char *buf, size_t n,
                              const struct sockaddr_in *from)
{
    struct agent *a = arg;
    struct proto_msg msg;
    const char *field;
    enum proto_err e;

    a->st.rx++;
    e = proto_decode(buf, n, &a->kr, &msg, &field);
    if (e != PROTO_OK) {
        a->st.dropped[e]++;
        agent_drop(a, from, proto_err_name(e), field);
        return;
    }
    if (msg.type != PROTO_PROBE_REQUEST) {
        a->st.ignored++; /* other agents' hello/bye on the group */
        return;
    }
    agent_on_request(a, fd, from, &msg);
}

static void agent_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    char buf[PROTO_MAX_DGRAM + 1];
    int r = net_recv_burst(w->fd, buf, sizeof(buf), AGENT_RX_BURST, agent_on_datagram, w->data);

    if (r < 0)
        log_warn("recvfrom: %s", strerror(-r));
}

/* ---- service check ---- */

static void agent_check_done(void *arg, bool up, const char *why)
{
    struct agent *a = arg;
    char addr[NET_ADDRSTRLEN];

    if (!up)
        a->st.checks_failed++;
    /* Like HAProxy's fall/rise: one lost check on a busy node must not
     * take it out of rotation. The first result counts at once. */
    a->streak = up == a->last_check ? a->streak + 1 : 1;
    a->last_check = up;
    if (!a->checked ||
        (up != a->service_up && a->streak >= (unsigned)(up ? a->cfg->rise : a->cfg->fall))) {
        log_info("service %s is %s%s%s", net_ntop(&a->service, addr), up ? "up" : "down",
                 up ? "" : ": ", up ? "" : why);
        a->service_up = up;
    }
    a->checked = true;
    if (!a->hello_sent && !ev_is_active(&a->hello_timer)) {
        /* The first CPU figure needs an interval to mean anything. */
        uint64_t age = clock_mono_ms() - a->start_ms;

        ev_timer_set(&a->hello_timer,
                     age < AGENT_MIN_SAMPLE_MS ? (AGENT_MIN_SAMPLE_MS - age) / 1000.0 : 0., 0.);
        ev_timer_start(a->loop, &a->hello_timer);
    }
}

static void agent_hello_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct agent *a = container_of(w, struct agent, hello_timer);

    a->hello_sent = true;
    agent_announce(a, PROTO_HELLO);
    log_info("ready name=%s boot=%s", a->cfg->name, a->boot);
}

static void agent_check_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    /* A check still running when the next is due makes that one skip. */
    check_start(&container_of(w, struct agent, check_timer)->check);
}

/* ---- life cycle ---- */

static int agent_addresses(struct agent *a, char *err, size_t errlen)
{
    const struct agent_cfg *c = a->cfg;
    int r;

    if (!proto_name_valid(c->name)) {
        snprintf(err, errlen, "--name '%s': use 1..%d of A-Z a-z 0-9 . _ -", c->name,
                 PROTO_NAME_MAX);
        return -EINVAL;
    }
    if ((r = net_parse_hostport(c->service, false, &a->service, err, errlen)) ||
        (r = net_parse_hostport(c->group, false, &a->group, err, errlen)) ||
        (r = net_parse_ip(c->mcast_if, &a->ifaddr, err, errlen)))
        return r;
    if (a->service.sin_addr.s_addr == htonl(INADDR_ANY)) {
        snprintf(err, errlen, "--service %s: give the address clients reach it on", c->service);
        return -EINVAL;
    }
    if (c->listen && *c->listen)
        return net_parse_hostport(c->listen, true, &a->ucast, err, errlen);
    return 0;
}

static int agent_keys(struct agent *a, char *err, size_t errlen)
{
    int r;

    if (!a->cfg->key || !*a->cfg->key) {
        snprintf(err, errlen, "--key FILE is required (the cluster key)");
        return -EINVAL;
    }
    r = key_ring_load(&a->kr, a->cfg->key, err, errlen);
    if (r == 0 && a->cfg->key_next && *a->cfg->key_next)
        r = key_ring_load(&a->kr, a->cfg->key_next, err, errlen);
    return r;
}

static int agent_sockets(struct agent *a, char *err, size_t errlen)
{
    const struct agent_cfg *c = a->cfg;

    a->gfd = net_mcast_socket(&a->group, a->ifaddr, (int)c->ttl, err, errlen);
    if (a->gfd < 0)
        return a->gfd;
    ev_io_init(&a->gio, agent_read_cb, a->gfd, EV_READ);
    a->gio.data = a;
    if (!c->listen || !*c->listen)
        return 0;
    a->ufd = net_udp_socket(&a->ucast, a->ifaddr, (int)c->ttl, err, errlen);
    if (a->ufd < 0)
        return a->ufd;
    ev_io_init(&a->uio, agent_read_cb, a->ufd, EV_READ);
    a->uio.data = a;
    return 0;
}

static void agent_init_watchers(struct agent *a)
{
    a->replies = xcalloc((size_t)a->cfg->max_pending, sizeof(*a->replies));
    for (long long i = 0; i < a->cfg->max_pending; i++) {
        a->replies[i].a = a;
        ev_timer_init(&a->replies[i].timer, agent_reply_cb, 0., 0.);
    }
    ev_init(&a->hello_timer, agent_hello_cb);
    ev_timer_init(&a->fresh_timer, agent_fresh_cb, AGENT_FRESH_MS / 1000.0,
                  AGENT_FRESH_MS / 1000.0);
    a->fresh_timer.data = a;
    ev_timer_init(&a->check_timer, agent_check_timer_cb, a->cfg->check_interval,
                  a->cfg->check_interval);
}

static enum agent_cgroup_mode agent_cgroup_mode(const char *s)
{
    if (!strcmp(s, "auto"))
        return AGENT_CGROUP_AUTO;
    return strcmp(s, "off") ? AGENT_CGROUP_PATH : AGENT_CGROUP_OFF;
}

struct agent *agent_new(struct ev_loop *loop, const struct agent_cfg *cfg, char *err, size_t errlen)
{
    struct agent *a = xcalloc(1, sizeof(*a));

    a->loop = loop;
    a->cfg = cfg;
    a->gfd = a->ufd = -1;
    a->check.fd = -1;
    a->rl_drop = (struct log_rl)LOG_RL_INIT(5, 10000);
    a->start_ms = clock_mono_ms();
    if (agent_addresses(a, err, errlen) || agent_keys(a, err, errlen) ||
        agent_sockets(a, err, errlen) ||
        check_init(&a->check, loop, (enum check_kind)cfg->check, &a->service, cfg->check_path,
                   cfg->check_interval, agent_check_done, a, err, errlen))
        goto out_free;
    a->am = agent_metrics_new(agent_cgroup_mode(cfg->cgroup), cfg->cgroup, err, errlen);
    if (!a->am)
        goto out_free;
    proto_nonce_new(a->boot);
    agent_init_watchers(a);
    return a;
out_free:
    agent_free(a);
    return NULL;
}

void agent_start(struct agent *a)
{
    char addr[NET_ADDRSTRLEN];

    ev_io_start(a->loop, &a->gio);
    if (a->ufd >= 0) {
        ev_io_start(a->loop, &a->uio);
        log_info("listening for unicast probes on port %u", net_local_port(a->ufd));
    }
    log_info("agent %s joined %s metrics=%s", a->cfg->name, net_ntop(&a->group, addr),
             agent_metrics_describe(a->am));
    ev_timer_start(a->loop, &a->check_timer);
    ev_timer_start(a->loop, &a->fresh_timer);
    check_start(&a->check);
}

void agent_stop(struct agent *a)
{
    ev_io_stop(a->loop, &a->gio);
    ev_io_stop(a->loop, &a->uio);
    check_cancel(&a->check);
    ev_timer_stop(a->loop, &a->check_timer);
    ev_timer_stop(a->loop, &a->hello_timer);
    ev_timer_stop(a->loop, &a->fresh_timer);
    for (long long i = 0; a->replies && i < a->cfg->max_pending; i++)
        ev_timer_stop(a->loop, &a->replies[i].timer);
    if (a->hello_sent)
        agent_announce(a, PROTO_BYE);
}

void agent_free(struct agent *a)
{
    if (!a)
        return;
    if (a->gfd >= 0)
        close(a->gfd);
    if (a->ufd >= 0)
        close(a->ufd);
    if (a->check.loop)
        check_cancel(&a->check);
    agent_metrics_free(a->am);
    key_ring_done(&a->kr);
    free(a->replies);
    free(a);
}

void agent_log_stats(const struct agent *a)
{
    const struct agent_stats *s = &a->st;

    log_info("stats rx=%llu answered=%llu oversize=%llu no_mac=%llu bad_mac=%llu "
             "malformed_json=%llu bad_version=%llu bad_type=%llu bad_field=%llu out_of_range=%llu "
             "stale=%llu replayed=%llu busy=%llu ignored=%llu send_errors=%llu checks_failed=%llu "
             "resampled=%llu",
             (unsigned long long)s->rx, (unsigned long long)s->answered,
             (unsigned long long)s->dropped[PROTO_E_OVERSIZE],
             (unsigned long long)s->dropped[PROTO_E_NOMAC],
             (unsigned long long)s->dropped[PROTO_E_BADMAC],
             (unsigned long long)s->dropped[PROTO_E_JSON],
             (unsigned long long)s->dropped[PROTO_E_VERSION],
             (unsigned long long)s->dropped[PROTO_E_TYPE],
             (unsigned long long)s->dropped[PROTO_E_FIELD],
             (unsigned long long)s->dropped[PROTO_E_RANGE], (unsigned long long)s->stale,
             (unsigned long long)s->replayed, (unsigned long long)s->busy,
             (unsigned long long)s->ignored, (unsigned long long)s->send_errors,
             (unsigned long long)s->checks_failed, (unsigned long long)s->resampled);
}
