/* test_balancer.c - the real fulcrum-balancer between real sockets.
 *
 * Backends are forked servers (backend.c); the balancer listens on a port
 * the kernel picks and says so on its "ready" line, which is the readiness
 * signal. Counters are read back from its admin port.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#include "backend.h"
#include "harness.h"

#define LB_BIN    FULCRUM_BINARY_DIR "/balancer/fulcrum-balancer"
#define AGENT_BIN FULCRUM_BINARY_DIR "/agent/fulcrum-agent"
#define WAIT_MS   10000

struct lb {
    struct h_proc p;
    unsigned port, admin;
};

/* Starts the balancer with the given extra arguments (NULL-terminated). */
static void lb_start(struct lb *b, const char *const *extra)
{
    char *argv[64] = {LB_BIN,      "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                      "--workers", "2"};
    int n = 7;
    const char *line, *p;

    for (; *extra && n < 62; extra++)
        argv[n++] = (char *)*extra;
    argv[n] = NULL;
    h_spawn(&b->p, argv);
    line = h_wait_for(&b->p, 2, "ready listen=", WAIT_MS);
    cr_assert_not_null(line, "the balancer did not start");
    p = strstr(line, "listen=127.0.0.1:");
    cr_assert_not_null(p);
    b->port = (unsigned)strtoul(p + 17, NULL, 10);
    p = strstr(line, "admin=127.0.0.1:");
    cr_assert_not_null(p);
    b->admin = (unsigned)strtoul(p + 16, NULL, 10);
}

static cJSON *lb_status(const struct lb *b)
{
    static char buf[1 << 20];
    int code = be_http(b->admin, "GET", "/status.json", buf, sizeof(buf));
    char *body = strstr(buf, "\r\n\r\n");
    cJSON *j;

    cr_assert_eq(code, 200);
    cr_assert_not_null(body);
    j = cJSON_Parse(body + 4);
    cr_assert_not_null(j, "status.json does not parse");
    return j;
}

static long long jnum(const cJSON *o, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);

    cr_assert(cJSON_IsNumber(it), "no number %s", k);
    return (long long)it->valuedouble;
}

static const cJSON *status_node(const cJSON *st, const char *name)
{
    const cJSON *n;

    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(st, "nodes"))
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(n, "name");

        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name))
            return n;
    }
    return NULL;
}

static const char *node_arg(char *buf, size_t cap, const struct backend *be)
{
    snprintf(buf, cap, "127.0.0.1:%u", be->port);
    return buf;
}

/* Which backend answered, from a BE_HTTP body; -1 if none. */
static int http_backend(unsigned port)
{
    char buf[4096];
    const char *b;

    if (be_http(port, "GET", "/x", buf, sizeof(buf)) != 200)
        return -1;
    b = strstr(buf, "backend-");
    return b ? atoi(b + 8) : -1;
}

Test(balancer, http_reaches_every_backend_and_is_logged, .timeout = 60)
{
    struct backend be[3];
    char a[3][32];
    struct lb b;
    int seen[3] = {0};
    const char *line;

    for (int i = 0; i < 3; i++)
        be_start(&be[i], BE_HTTP, i);
    lb_start(&b, (const char *const[]){
                     "--policy", "roundrobin", "--node", node_arg(a[0], 32, &be[0]), "--node",
                     node_arg(a[1], 32, &be[1]), "--node", node_arg(a[2], 32, &be[2]), NULL});
    for (int i = 0; i < 30; i++) {
        int id = http_backend(b.port);

        cr_assert(id >= 0 && id < 3, "request %d failed", i);
        seen[id]++;
    }
    for (int i = 0; i < 3; i++)
        cr_assert_gt(seen[i], 0, "backend %d never chosen", i);
    line = h_wait_for(&b.p, 2, "conn client=127.0.0.1:", WAIT_MS);
    cr_assert_not_null(line, "no connection log line");
    cr_assert(strstr(line, "end=done") && strstr(line, "bytes_in=") && strstr(line, "node="), "%s",
              line);
}

/* Sends `total` pseudo-random bytes through fd while reading the echo;
 * compares SHA-256 of both streams. */
static void echo_transfer(int fd, size_t total)
{
    crypto_hash_sha256_state hs, hr;
    unsigned char ds[32], dr[32], chunk[65536], in[65536];
    size_t sent = 0, recvd = 0, off = 0, len = 0;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    bool shut = false;

    crypto_hash_sha256_init(&hs);
    crypto_hash_sha256_init(&hr);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0)};

        cr_assert_eq(poll(&p, 1, WAIT_MS), 1, "transfer stalled at %zu/%zu", recvd, total);
        if ((p.revents & POLLOUT) && sent < total) {
            if (off == len) {
                len = total - sent < sizeof(chunk) ? total - sent : sizeof(chunk);
                for (size_t i = 0; i < len; i++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    chunk[i] = (unsigned char)x;
                }
                crypto_hash_sha256_update(&hs, chunk, len);
                off = 0;
            }
            ssize_t n = write(fd, chunk + off, len - off);
            if (n > 0) {
                off += (size_t)n;
                sent += (size_t)n;
            }
        }
        if (sent == total && !shut) {
            shutdown(fd, SHUT_WR); /* half-close: the echo must still come back */
            shut = true;
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(fd, in, sizeof(in));

            if (n == 0)
                break;
            if (n > 0) {
                crypto_hash_sha256_update(&hr, in, (size_t)n);
                recvd += (size_t)n;
            }
        }
    }
    crypto_hash_sha256_final(&hs, ds);
    crypto_hash_sha256_final(&hr, dr);
    cr_assert_eq(recvd, total, "echoed %zu of %zu bytes", recvd, total);
    cr_assert_eq(memcmp(ds, dr, 32), 0, "the echo differs from what was sent");
}

static void bulk(const char *mode)
{
    struct backend be;
    char a[32];
    struct lb b;
    int fd;
    cJSON *st;

    cr_assert(sodium_init() >= 0);
    be_start(&be, BE_ECHO, 0);
    lb_start(&b, (const char *const[]){"--splice", mode, "--node", node_arg(a, 32, &be),
                                       "--log-conns=no", NULL});
    fd = be_connect(b.port);
    cr_assert_geq(fd, 0);
    echo_transfer(fd, 100u << 20);
    close(fd);
    /* The node's byte counters saw 100 MB each way once the connection closed. */
    for (int i = 0; i < 50; i++) {
        const cJSON *n;

        st = lb_status(&b);
        n = status_node(st, a);
        cr_assert_not_null(n);
        if (jnum(n, "active") == 0)
            break;
        cJSON_Delete(st);
        st = NULL;
        poll(NULL, 0, 20); /* the close is asynchronous; no event to await here */
    }
    cr_assert_not_null(st, "the connection never closed");
    cr_assert_eq(jnum(status_node(st, a), "bytes_in"), 100ll << 20);
    cr_assert_eq(jnum(status_node(st, a), "bytes_out"), 100ll << 20);
    cJSON_Delete(st);
}

Test(balancer, bulk_100mb_each_way_spliced_byte_exact, .timeout = 120)
{
    bulk("always");
}
Test(balancer, bulk_100mb_each_way_auto_byte_exact, .timeout = 120)
{
    bulk("auto");
}
Test(balancer, bulk_100mb_each_way_read_write_byte_exact, .timeout = 120)
{
    bulk("never");
}

/* A client with a small receive buffer makes the balancer's writes to it
 * short now and then, in read/write and in splice mode: every byte must
 * still arrive, in order. (The one short write that matters most, right
 * after the read that switches a direction to splice, cannot be forced
 * from outside; this only makes it possible.) */
Test(balancer, auto_splice_keeps_order_with_short_writes, .timeout = 120)
{
    struct backend be;
    char a[32];
    struct lb b;
    int fd, small = 32768;

    cr_assert(sodium_init() >= 0);
    be_start(&be, BE_ECHO, 0);
    lb_start(&b, (const char *const[]){"--splice", "auto", "--node", node_arg(a, 32, &be),
                                       "--log-conns=no", NULL});
    for (int i = 0; i < 4; i++) {
        fd = be_connect(b.port);
        cr_assert_geq(fd, 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        echo_transfer(fd, 4u << 20);
        close(fd);
    }
}

Test(balancer, half_closed_connection_completes, .timeout = 60)
{
    struct backend be;
    char a[32], buf[256];
    struct lb b;
    const char *msg = "0123456789";
    int fd;
    ssize_t n;

    be_start(&be, BE_READ_ALL, 0);
    lb_start(&b, (const char *const[]){"--node", node_arg(a, 32, &be), "--log-conns=no", NULL});
    fd = be_connect(b.port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, msg, 10), 10);
    /* The backend answers only after our FIN reached it through the balancer. */
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    n = be_read_all(fd, buf, sizeof(buf) - 1);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_str_eq(buf, "got 10 bytes");
    close(fd);
}

Test(balancer, sigkill_backend_under_load_no_failed_request, .timeout = 90)
{
    struct backend be[3];
    char a[3][32];
    struct lb b;
    cJSON *st;
    int failures = 0;

    for (int i = 0; i < 3; i++)
        be_start(&be[i], BE_HTTP, i);
    lb_start(&b,
             (const char *const[]){"--policy", "roundrobin", "--retries", "2", "--node",
                                   node_arg(a[0], 32, &be[0]), "--node", node_arg(a[1], 32, &be[1]),
                                   "--node", node_arg(a[2], 32, &be[2]), "--log-conns=no", NULL});
    for (int i = 0; i < 300; i++) {
        if (i == 100)
            be_kill(&be[1]); /* no more connections: refused from now on */
        if (http_backend(b.port) < 0)
            failures++;
    }
    cr_assert_eq(failures, 0, "%d requests failed", failures);
    st = lb_status(&b);
    cr_assert_gt(jnum(cJSON_GetObjectItemCaseSensitive(st, "balancer"), "retries"), 0);
    cr_assert_gt(jnum(status_node(st, a[1]), "connect_failures"), 0);
    cr_assert_gt(jnum(status_node(st, a[1]), "ejections"), 0, "passive health never ejected it");
    cJSON_Delete(st);
}

Test(balancer, status_and_metrics_agree_with_traffic, .timeout = 60)
{
    struct backend be[2];
    char a[2][32], buf[1 << 16];
    struct lb b;
    cJSON *st;
    char want[64];
    long long conns = 0, at_once;
    const cJSON *n;

    for (int i = 0; i < 2; i++)
        be_start(&be[i], BE_HTTP, i);
    lb_start(&b, (const char *const[]){"--node", node_arg(a[0], 32, &be[0]), "--node",
                                       node_arg(a[1], 32, &be[1]), "--log-conns=no", NULL});
    for (int i = 0; i < 40; i++)
        cr_assert_geq(http_backend(b.port), 0);
    st = lb_status(&b);
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(st, "nodes")) conns +=
        jnum(n, "conns_total");
    cr_assert_eq(conns, 40);
    cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(st, "balancer"), "accepted"), 40);
    /* loopback nodes: the kernel finishes the handshake inside connect(2),
     * and the balancer relays without waiting for writability (a few may
     * miss it if softirqs are deferred on a loaded machine) */
    at_once = jnum(cJSON_GetObjectItemCaseSensitive(st, "balancer"), "connects_at_once");
    cr_assert(at_once >= 30 && at_once <= 40, "connects_at_once %lld of 40", at_once);
    cJSON_Delete(st);
    cr_assert_eq(be_http(b.admin, "GET", "/metrics", buf, sizeof(buf)), 200);
    cr_assert(strstr(buf, "\nfulcrum_accepted_total 40\n"), "%s", buf);
    snprintf(want, sizeof(want), "\nfulcrum_connects_at_once_total %lld\n", at_once);
    cr_assert(strstr(buf, want), "no%s in %s", want, buf);
    cr_assert(strstr(buf, "# TYPE fulcrum_node_connections_total counter"), "%s", buf);
}

Test(balancer, drain_stops_new_connections_and_lets_old_ones_finish, .timeout = 60)
{
    struct backend be[2];
    char a[2][32], path[96], buf[4096];
    struct lb b;
    int fd;

    be_start(&be[0], BE_ECHO, 0);
    be_start(&be[1], BE_HTTP, 1);
    lb_start(&b, (const char *const[]){"--policy", "best", "--node", node_arg(a[0], 32, &be[0]),
                                       "--log-conns=no", NULL});
    fd = be_connect(b.port); /* held open through the drain, to the echo node */
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "ping", 4), 4);
    cr_assert_eq(read(fd, buf, 4), 4);
    snprintf(path, sizeof(path), "/nodes/%s/drain", a[0]);
    cr_assert_eq(be_http(b.admin, "POST", path, buf, sizeof(buf)), 200);
    /* No node left: a new client is closed at once. */
    cr_assert_eq(be_http(b.port, "GET", "/x", buf, sizeof(buf)), -1);
    /* The old connection still works. */
    cr_assert_eq(write(fd, "pong", 4), 4);
    cr_assert_eq(read(fd, buf, 4), 4);
    cr_assert_eq(memcmp(buf, "pong", 4), 0);
    close(fd);
    snprintf(path, sizeof(path), "/nodes/%s/undrain", a[0]);
    cr_assert_eq(be_http(b.admin, "POST", path, buf, sizeof(buf)), 200);
    fd = be_connect(b.port);
    cr_assert_eq(write(fd, "back", 4), 4);
    cr_assert_eq(read(fd, buf, 4), 4, "undrained node takes connections again");
    close(fd);
}

Test(balancer, maxconn_refuses_cleanly_and_recovers, .timeout = 60)
{
    struct backend be;
    char a[32], buf[16];
    struct lb b;
    int fd[3];
    cJSON *st;

    be_start(&be, BE_ECHO, 0);
    lb_start(&b, (const char *const[]){"--maxconn", "2", "--node", node_arg(a, 32, &be),
                                       "--log-conns=no", NULL});
    for (int i = 0; i < 2; i++) {
        fd[i] = be_connect(b.port);
        cr_assert_eq(write(fd[i], "x", 1), 1);
        cr_assert_eq(read(fd[i], buf, 1), 1, "connection %d not relayed", i);
    }
    fd[2] = be_connect(b.port);
    cr_assert_geq(fd[2], 0);
    cr_assert_leq(read(fd[2], buf, 1), 0, "the third connection must be closed at once");
    close(fd[2]);
    st = lb_status(&b);
    cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(st, "balancer"), "refused_maxconn"), 1);
    cJSON_Delete(st);
    close(fd[0]);
    /* Room again once one closes (the close reaches the balancer asynchronously). */
    for (int tries = 0;; tries++) {
        int f = be_connect(b.port);
        ssize_t n;

        cr_assert_lt(tries, 100, "never accepted again");
        cr_assert_eq(write(f, "y", 1), 1);
        n = read(f, buf, 1);
        close(f);
        if (n == 1)
            break;
        poll(NULL, 0, 20);
    }
    close(fd[1]);
}

Test(balancer, agents_nodes_join_the_rotation_by_themselves, .timeout = 60)
{
    struct backend be[3];
    struct h_proc agents[3];
    char group[32], key[128], svc[3][32], name[3][16];
    struct lb b;
    const char *dir = h_make_keys();
    int seen[3] = {0};

    snprintf(key, sizeof(key), "%s/key", dir);
    snprintf(group, sizeof(group), "239.255.77.77:%u", h_free_udp_port());
    /* Round robin: every node that joined must be picked. Weighted, a node
     * whose agent sampled the CPU while other tests ran can sit at the
     * weight floor, 8 of about 520, and miss 60 picks one time in three. */
    lb_start(&b, (const char *const[]){"--key", key, "--group", group, "--interval", "0.5",
                                       "--slowstart", "0", "--log-conns=no", "--policy",
                                       "roundrobin", NULL});
    for (int i = 0; i < 3; i++) {
        char *argv[] = {AGENT_BIN, "--name", name[i], "--service",   svc[i], "--group",
                        group,     "--key",  key,     "--jitter-ms", "10",   NULL};

        be_start(&be[i], BE_HTTP, i);
        snprintf(name[i], sizeof(name[i]), "cache-%d", i);
        snprintf(svc[i], sizeof(svc[i]), "127.0.0.1:%u", be[i].port);
        h_spawn(&agents[i], argv);
        cr_assert_not_null(h_wait_for(&agents[i], 2, "ready name=", WAIT_MS));
    }
    cr_assert_not_null(h_wait_for(&b.p, 2, "3 of 3 nodes in rotation", WAIT_MS),
                       "the agents' nodes never joined");
    for (int i = 0; i < 60; i++) {
        int id = http_backend(b.port);

        cr_assert(id >= 0 && id < 3, "request %d failed", i);
        seen[id]++;
    }
    for (int i = 0; i < 3; i++)
        cr_assert_gt(seen[i], 0, "node %d got nothing", i);
    /* An agent that leaves takes its node out of the rotation. */
    h_signal(&agents[2], SIGTERM);
    cr_assert_not_null(h_wait_for(&b.p, 2, "2 of 2 nodes in rotation", WAIT_MS));
    for (int i = 0; i < 30; i++)
        cr_assert_neq(http_backend(b.port), 2, "a node that left still gets connections");
}

Test(balancer, sigterm_lets_open_connections_finish, .timeout = 60)
{
    struct backend be;
    char a[32], buf[8];
    struct lb b;
    int fd, status;

    be_start(&be, BE_ECHO, 0);
    lb_start(&b, (const char *const[]){"--node", node_arg(a, 32, &be), "--grace", "30",
                                       "--log-conns=no", NULL});
    fd = be_connect(b.port);
    cr_assert_eq(write(fd, "a", 1), 1);
    cr_assert_eq(read(fd, buf, 1), 1);
    h_signal(&b.p, SIGTERM);
    cr_assert_not_null(h_wait_for(&b.p, 2, "no new connections", WAIT_MS));
    /* New clients are turned away; the open one still works. */
    cr_assert_lt(be_connect(b.port), 0, "the listener must be closed");
    cr_assert_eq(write(fd, "b", 1), 1);
    cr_assert_eq(read(fd, buf, 1), 1);
    close(fd);
    status = h_reap(&b.p, WAIT_MS);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "no clean exit after the drain");
}

Test(balancer, idle_client_is_closed_after_client_timeout, .timeout = 60)
{
    struct backend be;
    char a[32], buf[8];
    struct lb b;
    cJSON *st;
    int fd;

    be_start(&be, BE_ECHO, 0);
    lb_start(&b, (const char *const[]){"--node", node_arg(a, 32, &be), "--timeout-client", "0.3",
                                       "--log-conns=no", NULL});
    fd = be_connect(b.port);
    cr_assert_geq(fd, 0);
    /* Say nothing: the balancer must close us (read returns 0, not the
     * 10 s receive timeout of be_connect). */
    cr_assert_eq(read(fd, buf, sizeof(buf)), 0);
    close(fd);
    st = lb_status(&b);
    cr_assert_eq(jnum(cJSON_GetObjectItemCaseSensitive(
                          cJSON_GetObjectItemCaseSensitive(st, "balancer"), "ended"),
                      "client_timeout"),
                 1);
    cJSON_Delete(st);
}

Test(balancer, a_long_download_to_a_quiet_client_is_not_idle, .timeout = 60)
{
    static char buf[2 << 20];
    struct backend be;
    char a[32];
    struct lb b;
    int fd;

    be_start(&be, BE_TRICKLE, 0);
    /* The stream lasts 2 s; the client never writes; 0.5 s of client
     * silence must not cut it while bytes flow to it. */
    lb_start(&b, (const char *const[]){"--node", node_arg(a, 32, &be), "--timeout-client", "0.5",
                                       "--log-conns=no", NULL});
    fd = be_connect(b.port);
    cr_assert_geq(fd, 0);
    cr_assert_eq(be_read_all(fd, buf, sizeof(buf)), 20 * 65536);
    close(fd);
}

static void reset_after_data(const char *mode)
{
    static unsigned char buf[1 << 20];
    struct backend be;
    char a[32];
    struct lb b;
    int fd, small = 16384;
    size_t have = 0;
    ssize_t n;

    be_start(&be, BE_SEND_RESET, 0);
    lb_start(&b, (const char *const[]){"--splice", mode, "--node", node_arg(a, 32, &be), NULL});
    fd = be_connect(b.port);
    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* Read nothing until the node has sent all and reset: its bytes now sit
     * in the balancer (socket buffers, pipe) and must all still arrive. */
    cr_assert_eq(be_wait_event(&be, WAIT_MS), 0, "the node never reset");
    while ((n = read(fd, buf + have, sizeof(buf) - have)) > 0)
        have += (size_t)n;
    cr_assert_eq(have, 384u << 10, "got %zu of %u bytes; %s", have, 384u << 10,
                 h_wait_for(&b.p, 2, "conn client", 2000));
    for (size_t i = 0; i < have; i++)
        cr_assert_eq(buf[i], (unsigned char)(i * 7), "byte %zu differs", i);
    /* And the end is a reset, not a FIN that would pass for a whole answer. */
    cr_assert_eq(n, -1, "the truncation was hidden behind a clean end of stream");
    cr_assert_eq(errno, ECONNRESET);
    close(fd);
}

Test(balancer, node_reset_delivers_its_bytes_then_resets_spliced, .timeout = 60)
{
    reset_after_data("always");
}

Test(balancer, node_reset_delivers_its_bytes_then_resets_read_write, .timeout = 60)
{
    reset_after_data("never");
}

/* A listener whose accept queue is full and never drained: a connect to it
 * hangs (the kernel drops the SYN), which is how a hung node looks. */
static unsigned blackhole(int *keep, int nkeep)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    keep[0] = lfd;
    for (int i = 1; i < nkeep; i++) { /* fill the queue */
        keep[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(keep[i], (struct sockaddr *)&sa, sizeof(sa));
    }
    return ntohs(sa.sin_port);
}

Test(balancer, connect_timeout_is_retried_on_another_node, .timeout = 60)
{
    struct backend be;
    char a[32], h[32];
    struct lb b;
    int keep[4];
    cJSON *st;

    be_start(&be, BE_HTTP, 7);
    snprintf(h, sizeof(h), "127.0.0.1:%u", blackhole(keep, 4));
    lb_start(&b,
             (const char *const[]){"--policy", "roundrobin", "--timeout-connect", "0.2", "--node",
                                   h, "--node", node_arg(a, 32, &be), "--log-conns=no", NULL});
    for (int i = 0; i < 10; i++)
        cr_assert_eq(http_backend(b.port), 7, "request %d did not reach the live node", i);
    st = lb_status(&b);
    cr_assert_gt(jnum(status_node(st, h), "connect_failures"), 0,
                 "the hung node was never tried: the test proves nothing");
    cr_assert_eq(jnum(status_node(st, h), "conns_total"), 0);
    cJSON_Delete(st);
    for (int i = 0; i < 4; i++)
        close(keep[i]);
}
