/* agent_swarm.c - many simulated fulcrum agents in one process, for the
 * control-plane benchmark (bench/control_plane.sh).
 *
 * Each simulated agent has its own UDP socket joined to the probe group and
 * its own name (PREFIX-NNNN), and answers every verified probe_request from
 * that socket after a random delay of 0..jitter ms, exactly as fulcrum-agent
 * does (hold_ms reported, so the monitor's RTT leaves the jitter out). The
 * metrics are made up but valid. With --tcp-base P it also listens on TCP
 * ports P..P+N-1 and answers HAProxy's agent-check ("up 73%\n", then
 * close), so HAProxy can check the same number of agents in the same run.
 *
 * Counters go to stdout at exit (SIGTERM/SIGINT): probes heard, replies
 * sent, send errors, datagrams dropped, agent-checks answered. "ready" is
 * printed once every socket is open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <sodium.h>

#include "clock.h"
#include "key.h"
#include "net.h"
#include "proto.h"

#define SWARM_MAX 8192

struct sim {
    int fd, tfd;
    ev_io io, tio;
    ev_timer timer;
    struct sockaddr_in to;
    uint64_t seq, recv_us;
    char nonce[PROTO_NONCE_HEX + 1];
    char boot[PROTO_NONCE_HEX + 1];
    char name[PROTO_NAME_MAX + 1];
    unsigned idx;
    bool busy;
};

static struct {
    struct key_ring kr;
    unsigned jitter_ms;
    uint64_t start_ms;
    uint64_t heard, replied, send_errors, dropped, busy, checks;
} sw;

static void sim_reply(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sim *s = w->data;
    struct proto_msg msg = {.type = PROTO_PROBE_RESPONSE, .seq = s->seq};
    char buf[PROTO_MAX_DGRAM + 1];
    int n;

    (void)loop;
    (void)revents;
    msg.ts_ms = clock_wall_ms();
    memcpy(msg.nonce, s->nonce, sizeof(msg.nonce));
    memcpy(msg.name, s->name, sizeof(msg.name));
    memcpy(msg.boot, s->boot, sizeof(msg.boot));
    snprintf(msg.m.ip, sizeof(msg.m.ip), "127.0.0.1");
    msg.m.port = (uint16_t)(20000 + s->idx % 40000);
    msg.m.ram_total = 16.0 * 1024 * 1024 * 1024;
    msg.m.ram_free = msg.m.ram_total * (0.2 + 0.6 * (s->idx % 7) / 7.0);
    msg.m.cpu_idle = 20.0 + (double)(s->idx % 71);
    msg.m.load1 = 0.5;
    msg.m.uptime = (double)(clock_mono_ms() - sw.start_ms) / 1000.0;
    msg.m.service_up = true;
    msg.hold_ms = (double)(clock_mono_us() - s->recv_us) / 1000.0;
    n = proto_encode(&msg, &sw.kr, buf, sizeof(buf));
    s->busy = false;
    if (n < 0 || sendto(s->fd, buf, (size_t)n, 0, (struct sockaddr *)&s->to, sizeof(s->to)) < 0) {
        sw.send_errors++;
        return;
    }
    sw.replied++;
}

static void sim_on_dgram(void *arg, int fd, const char *buf, size_t n,
                         const struct sockaddr_in *from)
{
    struct sim *s = arg;
    struct proto_msg msg;

    (void)fd;
    if (proto_decode(buf, n, &sw.kr, &msg, NULL) != PROTO_OK) {
        sw.dropped++;
        return;
    }
    if (msg.type != PROTO_PROBE_REQUEST)
        return; /* hellos and byes of others on the group */
    sw.heard++;
    if (s->busy) {
        sw.busy++;
        return;
    }
    s->busy = true;
    s->seq = msg.seq;
    s->to = *from;
    s->recv_us = clock_mono_us();
    memcpy(s->nonce, msg.nonce, sizeof(s->nonce));
    ev_timer_set(&s->timer,
                 sw.jitter_ms ? (double)randombytes_uniform(sw.jitter_ms + 1) / 1000.0 : 0.0, 0.0);
    ev_timer_start(ev_default_loop(0), &s->timer);
}

static void sim_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    char buf[PROTO_MAX_DGRAM + 2];

    (void)loop;
    (void)revents;
    net_recv_burst(w->fd, buf, sizeof(buf), 8, sim_on_dgram, w->data);
}

/* HAProxy agent-check: answer a weight and close. */
static void sim_check(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sim *s = w->data;
    char line[32];
    int c, len;

    (void)loop;
    (void)revents;
    while ((c = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        len = snprintf(line, sizeof(line), "up %u%%\n", 20 + s->idx % 71);
        if (write(c, line, (size_t)len) == len)
            sw.checks++;
        close(c);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: agent_swarm --key FILE --count N [--group ADDR:PORT] [--mcast-if ADDR]\n"
               "                   [--jitter-ms MS] [--prefix NAME] [--tcp-base PORT]\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"key", 1, 0, 'k'},      {"count", 1, 0, 'n'},     {"group", 1, 0, 'g'},
        {"mcast-if", 1, 0, 'i'}, {"jitter-ms", 1, 0, 'j'}, {"prefix", 1, 0, 'p'},
        {"tcp-base", 1, 0, 't'}, {"help", 0, 0, 'h'},      {0, 0, 0, 0},
    };
    const char *key = NULL, *group = "239.255.77.77:7777", *ifs = "127.0.0.1", *prefix = "sim";
    unsigned count = 0, tcp_base = 0;
    struct sockaddr_in g;
    struct in_addr ifaddr;
    struct ev_loop *loop;
    ev_signal sterm, sint;
    struct sim *sims;
    char err[256];
    int c;

    sw.jitter_ms = 50;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'k':
            key = optarg;
            break;
        case 'n':
            count = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'g':
            group = optarg;
            break;
        case 'i':
            ifs = optarg;
            break;
        case 'j':
            sw.jitter_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            prefix = optarg;
            break;
        case 't':
            tcp_base = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!key || !count || count > SWARM_MAX || (tcp_base && tcp_base + count > 65536)) {
        usage(stderr);
        return 2;
    }
    if (sodium_init() < 0 || key_ring_load(&sw.kr, key, err, sizeof(err)) ||
        net_parse_hostport(group, false, &g, err, sizeof(err)) ||
        net_parse_ip(ifs, &ifaddr, err, sizeof(err))) {
        fprintf(stderr, "agent_swarm: %s\n", err);
        return 2;
    }
    {
        struct rlimit rl = {.rlim_cur = 3 * count + 64, .rlim_max = 3 * count + 64};
        struct rlimit cur;

        getrlimit(RLIMIT_NOFILE, &cur);
        if (cur.rlim_cur < rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &rl)) {
            fprintf(stderr, "agent_swarm: raise the fd limit to %u: %s\n", 3 * count + 64,
                    strerror(errno));
            return 1;
        }
    }
    loop = ev_default_loop(0);
    sims = calloc(count, sizeof(*sims));
    if (!sims)
        return 1;
    sw.start_ms = clock_mono_ms();
    for (unsigned i = 0; i < count; i++) {
        struct sim *s = &sims[i];

        s->idx = i;
        s->tfd = -1;
        snprintf(s->name, sizeof(s->name), "%s-%04u", prefix, i);
        proto_nonce_new(s->boot);
        s->fd = net_mcast_socket(&g, ifaddr, 1, err, sizeof(err));
        if (s->fd < 0) {
            fprintf(stderr, "agent_swarm: agent %u: %s\n", i, err);
            return 1;
        }
        ev_io_init(&s->io, sim_readable, s->fd, EV_READ);
        s->io.data = s->timer.data = s;
        ev_init(&s->timer, sim_reply);
        ev_io_start(loop, &s->io);
        if (tcp_base) {
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)(tcp_base + i)),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

            s->tfd = net_tcp_listen(&a, false, 64, err, sizeof(err));
            if (s->tfd < 0) {
                fprintf(stderr, "agent_swarm: agent-check port %u: %s\n", tcp_base + i, err);
                return 1;
            }
            ev_io_init(&s->tio, sim_check, s->tfd, EV_READ);
            s->tio.data = s;
            ev_io_start(loop, &s->tio);
        }
    }
    ev_signal_init(&sterm, on_signal, SIGTERM);
    ev_signal_init(&sint, on_signal, SIGINT);
    ev_signal_start(loop, &sterm);
    ev_signal_start(loop, &sint);
    printf("ready count=%u\n", count);
    fflush(stdout);
    ev_run(loop, 0);
    printf("heard=%" PRIu64 " replied=%" PRIu64 " send_errors=%" PRIu64 " dropped=%" PRIu64
           " busy=%" PRIu64 " checks=%" PRIu64 "\n",
           sw.heard, sw.replied, sw.send_errors, sw.dropped, sw.busy, sw.checks);
    for (unsigned i = 0; i < count; i++) {
        close(sims[i].fd);
        if (sims[i].tfd >= 0)
            close(sims[i].tfd);
    }
    free(sims);
    key_ring_done(&sw.kr);
    return 0;
}
