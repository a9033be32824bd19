/* test_cluster.c - real agents and a real monitor on loopback multicast.
 *
 * Each test gets its own group port (and so its own cluster), so Criterion
 * may run them in parallel. The monitor runs with --interval 1 --json; the
 * tests read its round lines as their clock and readiness signal.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "clock.h"
#include "harness.h"
#include "key.h"
#include "net.h"
#include "proto.h"

#define AGENT_BIN   FULCRUM_BINARY_DIR "/agent/fulcrum-agent"
#define MONITOR_BIN FULCRUM_BINARY_DIR "/monitor/fulcrum-monitor"
#define NAGENTS     3
#define LINE_MS     5000 /* one round is 1 s; a line later than this is a failure */

struct cluster {
    const char *dir;
    char key[128], otherkey[128];
    char group[32];
    struct sockaddr_in group_sa;
    unsigned sink_port;
    pid_t sink;
    unsigned probe_port;
    struct h_proc mon;
    struct h_proc agents[NAGENTS];
};

static const char *const names[NAGENTS] = {"cache-a", "cache-b", "cache-c"};

static void cluster_init(struct cluster *c)
{
    char err[256];

    memset(c, 0, sizeof(*c));
    cr_assert(sodium_init() >= 0);
    c->dir = h_make_keys();
    snprintf(c->key, sizeof(c->key), "%s/key", c->dir);
    snprintf(c->otherkey, sizeof(c->otherkey), "%s/otherkey", c->dir);
    snprintf(c->group, sizeof(c->group), "239.255.77.77:%u", h_free_udp_port());
    cr_assert_eq(net_parse_hostport(c->group, false, &c->group_sa, err, sizeof(err)), 0);
    c->sink_port = h_tcp_sink(&c->sink);
}

static void start_monitor(struct cluster *c, char *extra)
{
    char *argv[] = {MONITOR_BIN,  "--group", c->group, "--key", c->key,
                    "--interval", "1",       "--json", extra,   NULL};
    const char *line;

    h_spawn(&c->mon, argv);
    line = h_wait_for(&c->mon, 2, "replies on port ", LINE_MS);
    cr_assert_not_null(line, "monitor did not start");
    c->probe_port = (unsigned)strtoul(strstr(line, "replies on port ") + 16, NULL, 10);
    cr_assert_gt(c->probe_port, 0);
}

static void start_agent_argv(struct cluster *c, int i, char *const argv[])
{
    h_spawn(&c->agents[i], argv);
    cr_assert_not_null(h_wait_for(&c->agents[i], 2, "ready name=", LINE_MS),
                       "agent %s did not start", names[i]);
}

static void start_agent(struct cluster *c, int i)
{
    char service[32];
    char *argv[] = {
        AGENT_BIN, "--name", (char *)names[i], "--service",   service, "--group",
        c->group,  "--key",  c->key,           "--jitter-ms", "20",    "--check-interval",
        "0.2",     NULL};

    snprintf(service, sizeof(service), "127.0.0.1:%u", c->sink_port);
    start_agent_argv(c, i, argv);
}

/* The next round's JSON line from the monitor, parsed. Caller frees. */
static cJSON *next_round(struct cluster *c)
{
    const char *line = h_next_line(&c->mon, 1, LINE_MS);
    cJSON *j;

    cr_assert_not_null(line, "no round line from the monitor");
    j = cJSON_Parse(line);
    cr_assert_not_null(j, "bad JSON line: %s", line);
    return j;
}

static long long jint(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);

    cr_assert(cJSON_IsNumber(it), "no number %s", k);
    return (long long)it->valuedouble;
}

static const cJSON *find_node(const cJSON *round, const char *name)
{
    const cJSON *n;

    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(round, "nodes"))
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(n, "name");

        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name))
            return n;
    }
    return NULL;
}

static const char *node_state(const cJSON *round, const char *name)
{
    const cJSON *n = find_node(round, name);

    return n ? cJSON_GetObjectItemCaseSensitive(n, "state")->valuestring : NULL;
}

static bool all_up(const cJSON *round, int count)
{
    for (int i = 0; i < count; i++) {
        const char *s = node_state(round, names[i]);

        if (!s || strcmp(s, "up"))
            return false;
    }
    return true;
}

static bool has_rtt(const cJSON *round, int count)
{
    for (int i = 0; i < count; i++) {
        const cJSON *n = find_node(round, names[i]);

        if (!n || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(n, "rtt_ms")))
            return false;
    }
    return true;
}

/* Reads rounds until all agents are up; returns that round (caller frees). */
static cJSON *wait_all_up(struct cluster *c, int count)
{
    for (int i = 0; i < 10; i++) {
        cJSON *r = next_round(c);

        if (all_up(r, count))
            return r;
        cJSON_Delete(r);
    }
    cr_assert_fail("agents not all up within 10 rounds");
    return NULL;
}

static void start_cluster(struct cluster *c)
{
    cluster_init(c);
    start_monitor(c, NULL);
    for (int i = 0; i < NAGENTS; i++)
        start_agent(c, i);
}

Test(cluster, agents_appear_up_with_metrics_and_rtt, .timeout = 40)
{
    struct cluster c;
    char addr[32];
    bool ranks[NAGENTS + 1] = {false};
    cJSON *r, *stats;

    start_cluster(&c);
    /* hello puts a node up at once, without an RTT; the next answered
     * probe gives it one. */
    for (int i = 0;; i++) {
        cr_assert_lt(i, 5, "no RTT for every node within 5 rounds");
        r = wait_all_up(&c, NAGENTS);
        if (has_rtt(r, NAGENTS))
            break;
        cJSON_Delete(r);
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", c.sink_port);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "nodes")), NAGENTS);
    for (int i = 0; i < NAGENTS; i++) {
        const cJSON *n = find_node(r, names[i]);
        const cJSON *rtt = cJSON_GetObjectItemCaseSensitive(n, "rtt_ms");
        double idle = cJSON_GetObjectItemCaseSensitive(n, "cpu_idle")->valuedouble;
        long long rank = jint(n, "rank");

        cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(n, "addr")->valuestring, addr);
        cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(n, "service")->valuestring, "up");
        cr_assert(idle >= 0 && idle <= 100, "cpu_idle %f", idle);
        cr_assert_gt(jint(n, "ram_total"), 0);
        cr_assert_leq(jint(n, "ram_free"), jint(n, "ram_total"));
        cr_assert(cJSON_IsNumber(rtt) && rtt->valuedouble >= 0, "%s has no RTT", names[i]);
        cr_assert_lt(rtt->valuedouble, 1000.0, "RTT must exclude nothing but the network");
        cr_assert_gt(jint(n, "weight"), 0);
        cr_assert(rank >= 1 && rank <= NAGENTS && !ranks[rank], "rank %lld", rank);
        ranks[rank] = true;
    }
    stats = cJSON_GetObjectItemCaseSensitive(r, "stats");
    /* The monitor was ready before the agents: it heard every hello. */
    cr_assert_eq(jint(stats, "hellos"), NAGENTS);
    cr_assert_eq(jint(stats, "bad_mac"), 0);
    cJSON_Delete(r);
    /* A whole round: every agent answered it, after the probe went out. */
    r = next_round(&c);
    stats = cJSON_GetObjectItemCaseSensitive(r, "stats");
    cr_assert_eq(jint(stats, "round_replies"), NAGENTS);
    cr_assert_gt(jint(stats, "round_span_us"), 0);
    cJSON_Delete(r);
}

Test(cluster, sigkill_goes_down_within_three_rounds, .timeout = 40)
{
    struct cluster c;
    cJSON *r;
    long long killed_round, down_round = 0;

    start_cluster(&c);
    r = wait_all_up(&c, NAGENTS);
    killed_round = jint(r, "round");
    cJSON_Delete(r);
    h_signal(&c.agents[0], SIGKILL);
    h_reap(&c.agents[0], 2000);
    while (!down_round) {
        const char *s;

        r = next_round(&c);
        s = node_state(r, names[0]);
        cr_assert_not_null(s, "a killed node stays in the table (no bye was sent)");
        if (!strcmp(s, "down")) {
            down_round = jint(r, "round");
            /* The gauge counts this round's answers: the dead one is missing. */
            cr_assert_eq(jint(cJSON_GetObjectItemCaseSensitive(r, "stats"), "round_replies"),
                         NAGENTS - 1);
        } else
            cr_assert(!strcmp(s, "suspect") || !strcmp(s, "up"), "state %s", s);
        cr_assert_str_eq(node_state(r, names[1]), "up");
        cr_assert_str_eq(node_state(r, names[2]), "up");
        cr_assert_leq(jint(r, "round"), killed_round + 4, "not down within 3 rounds");
        cJSON_Delete(r);
    }
    /* Missing 3 rounds takes at least 3 rounds. */
    cr_assert_geq(down_round, killed_round + 3);
}

Test(cluster, sigterm_leaves_at_once, .timeout = 40)
{
    struct cluster c;
    cJSON *r;
    long long term_round;
    int status;

    start_cluster(&c);
    r = wait_all_up(&c, NAGENTS);
    term_round = jint(r, "round");
    cJSON_Delete(r);
    h_signal(&c.agents[1], SIGTERM);
    status = h_reap(&c.agents[1], 5000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "agent did not exit cleanly");
    for (;;) {
        r = next_round(&c);
        if (!find_node(r, names[1]))
            break;
        /* The bye can only miss the round that was closing as it left. */
        cr_assert_leq(jint(r, "round"), term_round + 1, "bye did not remove the node");
        cJSON_Delete(r);
    }
    cr_assert_eq(jint(cJSON_GetObjectItemCaseSensitive(r, "stats"), "byes"), 1);
    cr_assert_str_eq(node_state(r, names[0]), "up");
    cJSON_Delete(r);
}

Test(cluster, service_down_is_reported_down, .timeout = 40)
{
    struct cluster c;
    char service[32];
    char *argv[] = {AGENT_BIN, "--name", "cache-a", "--service", service,
                    "--group", c.group,  "--key",   c.key,       NULL};
    cJSON *r;

    cluster_init(&c);
    /* A port nothing listens on: the free UDP port number is as good as any. */
    snprintf(service, sizeof(service), "127.0.0.1:%u", h_free_udp_port());
    argv[6] = c.group;
    argv[8] = c.key;
    start_monitor(&c, NULL);
    start_agent_argv(&c, 0, argv);
    for (int i = 0; i < 3; i++) {
        r = next_round(&c);
        if (find_node(r, "cache-a"))
            break;
        cJSON_Delete(r);
        r = NULL;
    }
    cr_assert_not_null(r, "the agent never appeared");
    cr_assert_str_eq(node_state(r, "cache-a"), "down");
    cr_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(find_node(r, "cache-a"), "service")->valuestring, "down");
    cr_assert_eq(jint(find_node(r, "cache-a"), "rank"), 0);
    cr_assert_eq(jint(find_node(r, "cache-a"), "weight"), 0);
    cJSON_Delete(r);
}

Test(cluster, unicast_probes_without_multicast, .timeout = 40)
{
    struct cluster c;
    char service[32], agent_group[32], listen[32], target[48];
    char *argv[] = {AGENT_BIN,   "--name", "cache-a", "--service", service, "--group",
                    agent_group, "--key",  NULL,      "--listen",  listen,  NULL};
    cJSON *r = NULL;
    unsigned uport = h_free_udp_port();

    cluster_init(&c);
    argv[8] = c.key;
    snprintf(service, sizeof(service), "127.0.0.1:%u", c.sink_port);
    /* The agent listens on another group: only unicast can reach it. */
    snprintf(agent_group, sizeof(agent_group), "239.255.77.78:%u", h_free_udp_port());
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", uport);
    snprintf(target, sizeof(target), "--agent=127.0.0.1:%u", uport);
    start_agent_argv(&c, 0, argv);
    start_monitor(&c, target);
    for (int i = 0; i < 5 && !(r && all_up(r, 1)); i++) {
        cJSON_Delete(r);
        r = next_round(&c);
    }
    cr_assert(all_up(r, 1), "unicast agent not up");
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(find_node(r, "cache-a"), "rtt_ms")));
    cJSON_Delete(r);
}

/* ---- hostile input ---- */

static int udp_sender(void)
{
    struct in_addr lo = {.s_addr = htonl(INADDR_LOOPBACK)};
    char err[256];
    int fd = net_udp_socket(NULL, lo, 1, err, sizeof(err));

    cr_assert_geq(fd, 0, "%s", err);
    return fd;
}

static void send_to(int fd, const void *buf, size_t n, const struct sockaddr_in *to)
{
    cr_assert_eq(sendto(fd, buf, n, 0, (const struct sockaddr *)to, sizeof(*to)), (ssize_t)n);
}

/* Receives one datagram on fd within timeout_ms; returns its length or -1. */
static ssize_t recv_within(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    if (poll(&pfd, 1, timeout_ms) != 1)
        return -1;
    return recv(fd, buf, cap, 0);
}

/* Captures a hello of `name` heard on the group socket gfd. */
static size_t capture_hello(int gfd, const struct key_ring *kr, const char *name, char *out)
{
    for (int i = 0; i < 50; i++) {
        struct proto_msg m;
        ssize_t n = recv_within(gfd, out, PROTO_MAX_DGRAM + 1, LINE_MS);

        cr_assert_gt(n, 0, "no hello heard");
        if (proto_decode(out, (size_t)n, kr, &m, NULL) == PROTO_OK && m.type == PROTO_HELLO &&
            !strcmp(m.name, name))
            return (size_t)n;
    }
    cr_assert_fail("hello of %s not seen", name);
    return 0;
}

static long long drops(const cJSON *stats)
{
    static const char *const k[] = {"oversize",    "no_mac",   "bad_mac",   "malformed_json",
                                    "bad_version", "bad_type", "bad_field", "out_of_range"};
    long long sum = 0;

    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
        sum += jint(stats, k[i]);
    return sum;
}

Test(cluster, forged_replayed_and_random_datagrams_change_nothing, .timeout = 60)
{
    struct cluster c;
    struct key_ring good = {0}, evil = {0};
    struct sockaddr_in probe = {.sin_family = AF_INET};
    char err[256], hello[PROTO_MAX_DGRAM + 1], buf[2048];
    struct proto_msg m = {.type = PROTO_HELLO};
    size_t hello_len;
    long long base_drops, base_replayed, base_unknown;
    cJSON *r, *stats;
    int gfd, sfd, n;

    cluster_init(&c);
    cr_assert_eq(key_ring_load(&good, c.key, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(key_ring_load(&evil, c.otherkey, err, sizeof(err)), 0, "%s", err);
    gfd = net_mcast_socket(&c.group_sa, (struct in_addr){htonl(INADDR_LOOPBACK)}, 1, err,
                           sizeof(err));
    cr_assert_geq(gfd, 0, "%s", err);
    start_monitor(&c, NULL);
    for (int i = 0; i < NAGENTS; i++)
        start_agent(&c, i);
    hello_len = capture_hello(gfd, &good, "cache-a", hello);
    r = wait_all_up(&c, NAGENTS);
    stats = cJSON_GetObjectItemCaseSensitive(r, "stats");
    base_drops = drops(stats);
    base_replayed = jint(stats, "replayed");
    base_unknown = jint(stats, "unknown_nonce");
    cJSON_Delete(r);

    sfd = udp_sender();
    probe.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    probe.sin_port = htons((uint16_t)c.probe_port);

    /* 1. A node claiming 100% idle CPU, signed with another key, to the
     * group (monitor and agents hear it) and to the probe port. */
    snprintf(m.name, sizeof(m.name), "evil");
    proto_nonce_new(m.nonce);
    proto_nonce_new(m.boot);
    m.ts_ms = clock_wall_ms();
    m.seq = 1;
    snprintf(m.m.ip, sizeof(m.m.ip), "127.0.0.1");
    m.m.port = 1;
    m.m.ram_total = m.m.ram_free = 1e12;
    m.m.cpu_idle = 100;
    m.m.service_up = true;
    n = proto_encode(&m, &evil, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    send_to(sfd, buf, (size_t)n, &c.group_sa);
    m.type = PROTO_PROBE_RESPONSE;
    n = proto_encode(&m, &evil, buf, sizeof(buf));
    send_to(sfd, buf, (size_t)n, &probe);

    /* 2. cache-a's own hello, replayed. */
    send_to(sfd, hello, hello_len, &c.group_sa);

    /* 3. A response correctly signed but to no probe of the monitor's. */
    m.type = PROTO_PROBE_RESPONSE;
    snprintf(m.name, sizeof(m.name), "cache-b");
    n = proto_encode(&m, &good, buf, sizeof(buf));
    send_to(sfd, buf, (size_t)n, &probe);

    /* 4. 1000 random datagrams of 0..1500 bytes. */
    for (int i = 0; i < 1000; i++) {
        size_t len = randombytes_uniform(1501);

        randombytes_buf(buf, len);
        send_to(sfd, buf, len, &probe);
    }

    for (int i = 0;; i++) {
        cr_assert_lt(i, 6, "counters never reached the datagrams sent");
        r = next_round(&c);
        stats = cJSON_GetObjectItemCaseSensitive(r, "stats");
        if (drops(stats) - base_drops >= 1002)
            break;
        cJSON_Delete(r);
    }
    cr_assert_eq(drops(stats) - base_drops, 1002, "each bad datagram counted once");
    cr_assert_geq(jint(stats, "bad_mac"), 2);
    cr_assert_eq(jint(stats, "replayed") - base_replayed, 1);
    cr_assert_eq(jint(stats, "unknown_nonce") - base_unknown, 1);
    cr_assert_null(find_node(r, "evil"), "a forged node entered the table");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "nodes")), NAGENTS);
    cr_assert(all_up(r, NAGENTS), "the cluster changed");
    cJSON_Delete(r);
    /* The agents dropped the forged hello too, and said so. */
    cr_assert_not_null(h_wait_for(&c.agents[0], 2, "reason=bad_mac", LINE_MS));
    close(sfd);
    close(gfd);
}

/* ---- the first answer after a silence ---- */

/* A writable cgroup v2 directory of 0.5 cores and 1 GiB, with usage_usec
 * set by cg_usage (written to a temporary file and renamed, so the agent
 * never reads half a file). */
static void cg_write(const char *dir, const char *name, const char *text)
{
    char path[256], tmp[272];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    cr_assert_not_null(f, "open %s", tmp);
    cr_assert_geq(fputs(text, f), 0);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, path), 0);
}

static void cg_usage(const char *dir, unsigned long long usec)
{
    char text[64];

    snprintf(text, sizeof(text), "usage_usec %llu\nuser_usec 0\n", usec);
    cg_write(dir, "cpu.stat", text);
}

/* The agent's resampled counter, from the stats line SIGUSR1 makes it log. */
static long long agent_resampled(struct h_proc *p)
{
    const char *line, *at;

    h_signal(p, SIGUSR1);
    line = h_wait_for(p, 2, " resampled=", LINE_MS);
    cr_assert_not_null(line, "no stats line from the agent");
    at = strstr(line, " resampled=");
    return strtoll(at + 11, NULL, 10);
}

/* A monitor that starts (or comes back) after the agent went unprobed
 * through a busy stretch must learn the node's CPU as it is now: a
 * balancer started right after a load placed its first keep-alive
 * connections by an idle figure averaged over that load (the skew
 * benchmark, docs/benchmarks.md). The node here is busy at its whole
 * quota, then idle; no monitor asks meanwhile. */
Test(cluster, first_answer_after_a_silence_covers_the_last_second, .timeout = 60)
{
    struct cluster c;
    struct key_ring kr = {0};
    struct proto_msg req = {.type = PROTO_PROBE_REQUEST}, resp;
    struct sockaddr_in to = {.sin_family = AF_INET};
    char service[32], listen[32], cg[] = "/tmp/fulcrum-cg-XXXXXX", err[256];
    char buf[PROTO_MAX_DGRAM + 1];
    char *argv[] = {AGENT_BIN, "--name", "cache-a",  "--service", service,    "--group", NULL,
                    "--key",   NULL,     "--listen", listen,      "--cgroup", cg,        NULL};
    unsigned uport = h_free_udp_port();
    unsigned long long usage = 1000000;
    long long n0;
    int fd, n;

    cluster_init(&c);
    cr_assert_eq(key_ring_load(&kr, c.key, err, sizeof(err)), 0, "%s", err);
    cr_assert_not_null(mkdtemp(cg));
    cg_write(cg, "cgroup.controllers", "cpu memory\n");
    cg_write(cg, "cpu.max", "50000 100000\n");
    cg_write(cg, "memory.max", "1073741824\n");
    cg_write(cg, "memory.current", "104857600\n");
    cg_write(cg, "memory.stat", "anon 104857600\nfile 0\ninactive_file 0\n");
    cg_usage(cg, usage);
    argv[6] = c.group;
    argv[8] = c.key;
    snprintf(service, sizeof(service), "127.0.0.1:%u", c.sink_port);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", uport);
    start_agent_argv(&c, 0, argv);

    /* 2.5 s busy: 50 ms of CPU every 100 ms, the whole 0.5-core quota. */
    for (int i = 0; i < 25; i++) {
        usage += 50000;
        cg_usage(cg, usage);
        poll(NULL, 0, 100);
    }
    /* Idle from now: wait until the agent has read its metrics twice more
     * on its own, so both ends of the next answer's window are idle. */
    n0 = agent_resampled(&c.agents[0]);
    for (int i = 0; agent_resampled(&c.agents[0]) < n0 + 2; i++) {
        cr_assert_lt(i, 100, "the unprobed agent does not re-read its metrics");
        poll(NULL, 0, 100);
    }

    fd = udp_sender();
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)uport);
    req.seq = 1;
    req.ts_ms = clock_wall_ms();
    proto_nonce_new(req.nonce);
    n = proto_encode(&req, &kr, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    send_to(fd, buf, (size_t)n, &to);
    n = (int)recv_within(fd, buf, sizeof(buf), LINE_MS);
    cr_assert_gt(n, 0, "no answer to the probe");
    cr_assert_eq(proto_decode(buf, (size_t)n, &kr, &resp, NULL), PROTO_OK);
    cr_assert_eq(resp.type, PROTO_PROBE_RESPONSE);
    cr_assert(resp.m.cgroup);
    cr_assert_eq(resp.m.cpu_milli, 500);
    cr_assert_geq(resp.m.cpu_idle, 90.0,
                  "cpu_idle %.1f: the first answer averaged the busy stretch in", resp.m.cpu_idle);
    close(fd);
    for (const char *const *f =
             (const char *const[]){"cgroup.controllers", "cpu.max", "memory.max", "memory.current",
                                   "memory.stat", "cpu.stat", NULL};
         *f; f++) {
        snprintf(buf, sizeof(buf), "%s/%s", cg, *f);
        unlink(buf);
    }
    rmdir(cg);
}
