/* test_faults_slow.c - hostile clients under HTTP load through the
 * balancer: 2,000 idle or byte-at-a-time connections against the balancer
 * and 2,000 against a cache node; then file descriptors run out in the
 * balancer (a low RLIMIT_NOFILE set before exec).
 *
 * Every request of the ordinary load is recorded and its body checked
 * (fault_rig.h); times are measured and printed, never asserted.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "backend.h"
#include "fault_rig.h"

#define SLOW_EACH     1000       /* idle, and as many byte-at-a-time, per target */
#define TRICKLE_MS    200        /* a byte per slow connection this often */
#define SLOW_INFLIGHT 100        /* slow connects in progress at most */
#define SLOW_GUARD_MS 40000      /* the cache's request-head timeout is 10 s */
#define NOFILE        200        /* the balancer's descriptor limit */
#define HOLDERS       100        /* big downloads held open by clients that do not read */
#define HUGE          (3u << 20) /* bytes of /huge */
#define MAXCONN       "48"       /* 96 of the 200 descriptors; pipes get what is left */

TestSuite(faults_slow, .timeout = 180);

/* ---- slow clients --------------------------------------------------------- */

enum slow_kind { SLOW_IDLE = 0, SLOW_TRICKLE };

enum slow_state {
    SLOW_NEW = 0,    /* not started */
    SLOW_CONNECTING, /* connect in progress */
    SLOW_OPEN,       /* connected, idle or trickling */
    SLOW_CLOSED,     /* closed by the other side */
    SLOW_STATE_MAX
};

struct slow {
    int fd;
    uint8_t kind;   /* enum slow_kind */
    uint8_t target; /* 0: the balancer, 1: the cache node */
    uint8_t state;  /* enum slow_state */
    unsigned port;
    int code;          /* status of an answer, 0 when none came */
    int64_t closed_us; /* when the other side closed */
    unsigned trickled; /* bytes sent one at a time */
};

static struct slow *slow_conns;
static size_t nslow;
static int64_t slow_next_us; /* the next round of single bytes */

/* Adds SLOW_EACH idle and SLOW_EACH byte-at-a-time connections to port;
 * slow_drive() opens them. */
static void slow_add(unsigned port, uint8_t target)
{
    for (size_t i = 0; i < 2 * SLOW_EACH; i++)
        slow_conns[nslow++] = (struct slow){
            .fd = -1, .kind = i % 2 ? SLOW_TRICKLE : SLOW_IDLE, .target = target, .port = port};
}

/* Starts connects, at most SLOW_INFLIGHT at a time: a burst of thousands
 * overflows a listener's queue, and SYNs retried with backoff would then
 * connect tens of seconds late. */
static void slow_connect_more(size_t *next, size_t *inflight)
{
    for (; *next < nslow && *inflight < SLOW_INFLIGHT; ++*next, ++*inflight) {
        struct slow *s = &slow_conns[*next];
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)s->port)};

        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        cr_assert_geq(s->fd, 0, "slow connection %zu: %s", *next, strerror(errno));
        cr_assert(connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS,
                  "slow connection %zu: %s", *next, strerror(errno));
        s->state = SLOW_CONNECTING;
    }
}

static void slow_connected(struct slow *s, size_t *inflight)
{
    int err = 0;
    socklen_t len = sizeof(err);

    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    cr_assert_eq(err, 0, "a slow connection failed: %s", strerror(err));
    s->state = SLOW_OPEN;
    --*inflight;
}

static void slow_closed(struct slow *s)
{
    close(s->fd);
    s->state = SLOW_CLOSED;
    s->closed_us = fr_now_us();
}

static void slow_read(struct slow *s)
{
    char buf[4096];
    ssize_t n = recv(s->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    if (n > 0) {
        buf[n] = '\0';
        if (!s->code)
            sscanf(buf, "HTTP/1.%*d %d", &s->code);
        return;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
        slow_closed(s);
}

/* The next byte of a request head that never ends: a request line, a Host,
 * then one header whose value grows a byte at a time. */
static char slow_byte(unsigned i)
{
    static const char head[] = "GET /obj/slow HTTP/1.1\r\nHost: t\r\nX-Slow: ";

    return i < sizeof(head) - 1 ? head[i] : 'a';
}

static void slow_trickle(void)
{
    for (size_t i = 0; i < nslow; i++) {
        struct slow *s = &slow_conns[i];
        char b;

        if (s->state != SLOW_OPEN || s->kind != SLOW_TRICKLE)
            continue;
        b = slow_byte(s->trickled);
        if (send(s->fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
            s->trickled++;
        else if (errno != EAGAIN)
            slow_closed(s);
    }
    slow_next_us = fr_now_us() + TRICKLE_MS * 1000;
}

/* "open: N (balancer idle N, ...)" for a failure message. */
static const char *slow_left(void)
{
    static char buf[256];
    size_t n[2][2] = {{0}}, total = 0, connecting = 0;

    for (size_t i = 0; i < nslow; i++) {
        const struct slow *s = &slow_conns[i];

        connecting += s->state == SLOW_CONNECTING || s->state == SLOW_NEW;
        if (s->state != SLOW_CLOSED) {
            n[s->target][s->kind]++;
            total++;
        }
    }
    snprintf(buf, sizeof(buf),
             "%zu not closed: balancer idle %zu, trickle %zu; node idle %zu, trickle %zu; "
             "%zu never connected",
             total, n[0][0], n[0][1], n[1][0], n[1][1], connecting);
    return buf;
}

/* Opens, trickles and polls every slow connection until all are closed. */
static void slow_drive(void)
{
    struct pollfd *p = calloc(nslow, sizeof(*p));
    size_t *idx = calloc(nslow, sizeof(*idx)), next = 0, inflight = 0, closed = 0;
    int64_t deadline = fr_now_us() + (int64_t)SLOW_GUARD_MS * 1000;

    cr_assert(p && idx);
    while (closed < nslow) {
        size_t n = 0;

        cr_assert_lt(fr_now_us(), deadline, "%s", slow_left());
        slow_connect_more(&next, &inflight);
        if (fr_now_us() >= slow_next_us)
            slow_trickle();
        closed = 0;
        for (size_t i = 0; i < next; i++) {
            const struct slow *s = &slow_conns[i];

            closed += s->state == SLOW_CLOSED;
            if (s->state != SLOW_OPEN && s->state != SLOW_CONNECTING)
                continue;
            p[n] = (struct pollfd){.fd = s->fd, .events = s->state == SLOW_OPEN ? POLLIN : POLLOUT};
            idx[n++] = i;
        }
        if (poll(p, n, 50) <= 0)
            continue;
        for (size_t j = 0; j < n; j++) {
            struct slow *s = &slow_conns[idx[j]];

            if (!p[j].revents)
                continue;
            if (s->state == SLOW_CONNECTING)
                slow_connected(s, &inflight);
            else
                slow_read(s);
        }
    }
    free(p);
    free(idx);
}

struct slow_sum {
    size_t n, code408;
    int64_t last_close_us;
};

static void slow_summary(uint8_t target, uint8_t kind, struct slow_sum *out)
{
    *out = (struct slow_sum){0};
    for (size_t i = 0; i < nslow; i++) {
        const struct slow *s = &slow_conns[i];

        if (s->target != target || s->kind != kind)
            continue;
        out->n++;
        out->code408 += s->code == 408;
        if (s->closed_us > out->last_close_us)
            out->last_close_us = s->closed_us;
    }
}

Test(faults_slow, slow_clients_against_the_balancer_and_a_node)
{
    /* The balancer's idle timeout is the shorter: it, not the node behind,
     * must close the idle clients it holds. Both are well above the 0.2 s
     * between single bytes, which a busy machine can stretch to a second;
     * the node's answers get more than the cluster's 1 s. */
    static const char *const node_extra[] = {"--timeout-client", "8", NULL};
    static const char *const lb_extra[] = {"--timeout-client", "5", "--timeout-server", "10", NULL};
    struct slow_sum lb_idle, lb_trickle, nd_idle, nd_trickle;
    struct fr_cluster c;
    struct fr_load load;
    struct fr_sum all;
    int64_t t_open, t_end;
    long long timeouts;

    fr_cluster_start(&c, 3, "http", node_extra, lb_extra);
    fr_load_start(&load, c.lb.port, 4, 4000, "/obj/", c.names, c.n);
    fr_load_await_progress(&load, fr_now_us());
    slow_conns = calloc(4 * SLOW_EACH, sizeof(*slow_conns));
    cr_assert_not_null(slow_conns);
    t_open = fr_now_us();
    slow_add(c.lb.port, 0);
    slow_add(c.node[0].port, 1);
    slow_drive();
    fr_load_await_progress(&load, fr_now_us());
    fr_load_stop(&load);
    t_end = fr_now_us();
    timeouts = fr_lb_num(&c.lb, NULL, "ended.client_timeout");
    fr_load_sum(&load, 0, t_end, &all);
    slow_summary(0, SLOW_IDLE, &lb_idle);
    slow_summary(0, SLOW_TRICKLE, &lb_trickle);
    slow_summary(1, SLOW_IDLE, &nd_idle);
    slow_summary(1, SLOW_TRICKLE, &nd_trickle);
    fr_report("slow_clients", &all,
              "slow=%zu lb_idle_closed_ms=%.0f lb_trickle_closed_ms=%.0f lb_trickle_408=%zu "
              "node_idle_closed_ms=%.0f node_trickle_closed_ms=%.0f node_trickle_408=%zu "
              "lb_client_timeouts=%lld",
              nslow, (double)(lb_idle.last_close_us - t_open) / 1000.0,
              (double)(lb_trickle.last_close_us - t_open) / 1000.0, lb_trickle.code408,
              (double)(nd_idle.last_close_us - t_open) / 1000.0,
              (double)(nd_trickle.last_close_us - t_open) / 1000.0, nd_trickle.code408, timeouts);
    cr_assert_eq(all.failed, 0, "ordinary clients failed beside the slow ones: %s",
                 fr_sum_text(&all));
    cr_assert_eq(all.by[FR_LOST], 0);
    cr_assert_geq(timeouts, SLOW_EACH, "the balancer's idle timeout closed %lld clients", timeouts);
    /* Byte-at-a-time heads end with 408 from the node (through the
     * balancer too); idle ones just close. */
    cr_assert_eq(nd_trickle.code408, SLOW_EACH, "node: %zu of %d slow heads got 408",
                 nd_trickle.code408, SLOW_EACH);
    cr_assert_eq(lb_trickle.code408, SLOW_EACH, "balancer: %zu of %d slow heads got 408",
                 lb_trickle.code408, SLOW_EACH);
    free(slow_conns);
    slow_conns = NULL;
    nslow = 0;
    fr_load_free(&load);
    fr_cluster_stop(&c);
}

/* ---- descriptors run out in the balancer ---------------------------------- */

/* The nodes serve a directory: /obj/<k> with the bodies the load expects
 * (the counting origin's), and /huge, larger than the socket buffers
 * between a client and the balancer, so a client that does not read makes
 * the balancer hold a full splice pipe for it. */
static char docroot[64];

static char huge_byte(size_t i)
{
    return (char)('a' + (i * 7 + (i >> 13)) % 26);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static void docroot_make(void)
{
    char path[128], body[64], *huge = malloc(HUGE);

    cr_assert_not_null(huge);
    snprintf(docroot, sizeof(docroot), "/tmp/fulcrum-fd-XXXXXX");
    cr_assert_not_null(mkdtemp(docroot));
    snprintf(path, sizeof(path), "%s/obj", docroot);
    cr_assert_eq(mkdir(path, 0755), 0);
    for (int k = 0; k < 64; k++) {
        int n = snprintf(body, sizeof(body), "body:GET /obj/%d", k);

        snprintf(path, sizeof(path), "%s/obj/%d", docroot, k);
        write_file(path, body, (size_t)n);
    }
    for (size_t i = 0; i < HUGE; i++)
        huge[i] = huge_byte(i);
    snprintf(path, sizeof(path), "%s/huge", docroot);
    write_file(path, huge, HUGE);
    free(huge);
}

static void docroot_remove(void)
{
    char path[128];

    for (int k = 0; k < 64; k++) {
        snprintf(path, sizeof(path), "%s/obj/%d", docroot, k);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/obj", docroot);
    rmdir(path);
    snprintf(path, sizeof(path), "%s/huge", docroot);
    unlink(path);
    rmdir(docroot);
}

enum hold_end { HOLD_OK = 0, HOLD_REFUSED, HOLD_BAD };

/* A client that asks for /huge and reads nothing until told to: its
 * connection holds two sockets and a full splice pipe in the balancer. */
static int hold_open(unsigned port)
{
    static const char req[] = "GET /huge HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = FR_CLIENT_S};
    int small = 4096, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
    (void)!send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL); /* a refused one may be reset already */
    return fd;
}

/* Reads the held answer to its end: whole and right, refused (closed or
 * reset before any answer), or anything else. */
static enum hold_end hold_finish(int fd, char *buf, size_t cap)
{
    ssize_t n = be_read_all(fd, buf, cap - 1);
    const char *end;
    size_t len;
    int code = 0;

    close(fd);
    if (n <= 0)
        return n == -EAGAIN ? HOLD_BAD : HOLD_REFUSED;
    buf[n] = '\0';
    end = strstr(buf, "\r\n\r\n");
    if (!end || sscanf(buf, "HTTP/1.%*d %d", &code) != 1 || code != 200)
        return HOLD_BAD;
    len = (size_t)n - (size_t)(end + 4 - buf);
    if (len != HUGE)
        return HOLD_BAD;
    for (size_t i = 0; i < len; i++) {
        if (end[4 + i] != huge_byte(i))
            return HOLD_BAD;
    }
    return HOLD_OK;
}

/* Clients the balancer turned away, whichever way. */
static long long refusals(const struct fr_lb *b)
{
    return fr_lb_num(b, NULL, "refused_maxconn") + fr_lb_num(b, NULL, "refused_emfile") +
           fr_lb_num(b, NULL, "ended.connect_failed") + fr_lb_num(b, NULL, "ended.no_node");
}

Test(faults_slow, fd_exhaustion_refuses_cleanly_and_recovers)
{
    static const char *const names[] = {"cache-0", "cache-1", "cache-2"};
    const char *const node_extra[] = {"--docroot", docroot, NULL};
    struct fr_node nd[3];
    struct fr_lb lb;
    struct fr_load load;
    struct fr_sum all, after;
    char a[3][32], *buf = malloc(HUGE + 65536);
    int fds[HOLDERS], ends[3] = {0};
    long long counted, maxconn, pipes;
    int64_t t_release, t_freed, t_end;

    cr_assert_not_null(buf);
    docroot_make();
    for (int i = 0; i < 3; i++) {
        fr_node_start(&nd[i], NULL, names[i], node_extra);
        snprintf(a[i], sizeof(a[i]), "127.0.0.1:%u", nd[i].port);
    }
    /* 48 connections fit 200 descriptors; held downloads would want a pipe
     * each on top (4 descriptors a connection): more than the limit. */
    fr_lb_start_nofile(&lb, NOFILE, 0,
                       (const char *const[]){"--node", a[0], "--node", a[1], "--node", a[2],
                                             "--splice", "always", "--maxconn", MAXCONN, NULL});
    maxconn = fr_lb_num(&lb, NULL, "maxconn");
    fr_load_start(&load, lb.port, 4, 4000, "/obj/", names, 3);
    fr_load_await_progress(&load, fr_now_us());
    for (int i = 0; i < HOLDERS; i++)
        fds[i] = hold_open(lb.port);
    /* At the limit: the ordinary load goes on against it for longer than a
     * client waits (FR_CLIENT_S), so a client left in an accept queue is
     * seen as lost. */
    fr_load_await_progress(&load, fr_now_us() + (FR_CLIENT_S + 1) * 1000000);
    pipes = fr_lb_num(&lb, NULL, "pipes");
    t_release = fr_now_us();
    for (int i = 0; i < HOLDERS; i++)
        ends[hold_finish(fds[i], buf, HUGE + 65536)]++;
    t_freed = fr_now_us();
    fr_load_await_progress(&load, t_freed + 1500000);
    fr_load_stop(&load);
    t_end = fr_now_us();
    counted = refusals(&lb);
    fr_load_sum(&load, 0, t_end, &all);
    fr_load_sum(&load, t_freed + 500000, t_end, &after);
    fr_report("fd_exhaustion", &all,
              "nofile=%d maxconn=%lld pipes_held=%lld holders=%d held_ok=%d held_refused=%d "
              "held_bad=%d refused_maxconn=%lld refused_emfile=%lld connect_failed=%lld "
              "first_ok_after_release_ms=%.0f after_recovery_sent=%llu after_recovery_failed=%llu",
              NOFILE, maxconn, pipes, HOLDERS, ends[HOLD_OK], ends[HOLD_REFUSED], ends[HOLD_BAD],
              fr_lb_num(&lb, NULL, "refused_maxconn"), fr_lb_num(&lb, NULL, "refused_emfile"),
              fr_lb_num(&lb, NULL, "ended.connect_failed"),
              (double)(fr_load_first_ok(&load, t_release) - t_release) / 1000.0,
              (unsigned long long)after.sent, (unsigned long long)after.failed);
    cr_assert_gt(fr_lb_num(&lb, NULL, "refused_maxconn"), 0,
                 "nobody was refused: the test never reached the limit");
    cr_assert_gt(pipes, 0, "nothing was spliced");
    cr_assert_eq(fr_lb_num(&lb, NULL, "refused_emfile"), 0,
                 "the balancer ran out of descriptors: pipes took what accepts need");
    cr_assert_eq(ends[HOLD_BAD], 0, "held downloads cut or wrong");
    cr_assert_eq(all.by[FR_LOST], 0, "clients left hanging: %s", fr_sum_text(&all));
    cr_assert_eq(all.by[FR_BAD_BODY] + all.by[FR_BAD_STATUS], 0, "%s", fr_sum_text(&all));
    cr_assert_eq(counted, ends[HOLD_REFUSED] + (long long)all.failed,
                 "%lld refusals counted, %lld seen by clients", counted,
                 ends[HOLD_REFUSED] + (long long)all.failed);
    cr_assert_gt(after.sent, 0);
    cr_assert_eq(after.failed, 0, "no recovery once the load dropped: %s", fr_sum_text(&after));
    fr_load_free(&load);
    fr_proc_kill(&lb.p);
    for (int i = 0; i < 3; i++)
        fr_proc_kill(&nd[i].p);
    docroot_remove();
    free(buf);
}
