/* loadgen.c - an open-loop HTTP/1.1 load generator for bench/skew.sh.
 *
 * wrk is closed-loop: when the server stalls, wrk stops sending, and the
 * requests it did not send are never measured (coordinated omission). Here
 * request i is SCHEDULED at t0 + i / rate whatever happened before, and its
 * latency runs from that scheduled time to the last byte of the response,
 * so a stall counts for every request it delayed. The schedule is driven by
 * a timerfd (nanosecond resolution, timer slack set to 1 us) rather than a
 * libev timer, whose epoll backend rounds to milliseconds; how late the
 * generator itself started each request is reported too (late_*).
 *
 * Modes:
 *   default      every request on a new connection with "Connection: close";
 *                the response is complete at its last byte, and the socket
 *                is closed once the server has closed its side (so the
 *                TIME_WAIT stays on the server side, as with real clients).
 *   --keepalive  a pool of up to --conns connections; a request takes an
 *                idle one (oldest first), opens a new one while the pool is
 *                not full, or waits in a FIFO (its wait counts in latency).
 *   --rate 0     closed loop instead (for measuring capacity): --conns
 *                requests in flight, each followed at once by the next.
 *
 * Each response's X-Cache "... from NAME" is counted per NAME, in total and
 * per second of the run (--series FILE). Output: key=value lines on stdout
 * (see lg_stats_report). Requests whose scheduled time falls in the first
 * --warmup seconds are left out of the summary, not out of the series.
 * --exec-at SEC:CMD runs CMD with /bin/sh at that time of the run, not
 * waited for (bench/skew.sh starts its CPU hog this way, on the same clock
 * as the series).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "loadgen_conn.h"
#include "loadgen_stats.h"

struct lg lg;
static unsigned bucket_ms = 1000;
static const char *exec_cmd;   /* --exec-at */
static const char *trace_path; /* --trace */
static double exec_at;
static double t0_unix; /* wall clock at t0, to line the series up with other logs */

uint64_t lg_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: loadgen --target HOST:PORT [OPTIONS]\n"
            "Open-loop HTTP/1.1 load: requests scheduled at a fixed rate, latency from the\n"
            "scheduled start. Prints key=value lines.\n\n"
            "  --target IP:PORT     where to connect (repeatable: requests rotate over them)\n"
            "  --rate R             requests per second; 0: closed loop with --conns [1000]\n"
            "  --duration SEC       measured seconds, after the warm-up [10]\n"
            "  --warmup SEC         seconds run first and left out of the summary [0]\n"
            "  --keepalive          reuse connections (pool of --conns); default: a new\n"
            "                       connection per request with Connection: close\n"
            "  --conns N            keep-alive pool size, or closed-loop concurrency [64]\n"
            "  --path PATH[@W]      request PATH with weight W (repeatable) [/]; \"{n}\" in\n"
            "                       PATH becomes the request's number\n"
            "  --host NAME          Host header [bench]\n"
            "  --timeout SEC        a request not answered in this long fails [10]\n"
            "  --max-inflight N     more requests in flight than this are dropped [8000]\n"
            "  --series FILE        write counts, latency and per-node counts per bucket (TSV)\n"
            "  --bucket-ms MS       length of a series bucket [1000]\n"
            "  --trace FILE         write every measured request (TSV: scheduled start s,\n"
            "                       latency us, node, ok or error)\n"
            "  --exec-at SEC:CMD    run CMD (/bin/sh -c) SEC seconds into the run\n");
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "loadgen: --%s: '%s' is not a number in [%g, %g]\n", opt, s, lo, hi);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int add_target(const char *s)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    double port;
    struct sockaddr_in *a;

    if (lg.ntargets == LG_TARGETS_MAX || colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
        fprintf(stderr, "loadgen: --target '%s': IPv4:PORT, %d at most\n", s, LG_TARGETS_MAX);
        return -EINVAL;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (parse_num("target", colon + 1, 1, 65535, &port) < 0)
        return -EINVAL;
    a = &lg.targets[lg.ntargets];
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
        fprintf(stderr, "loadgen: --target '%s': not an IPv4 address\n", s);
        return -EINVAL;
    }
    lg.ntargets++;
    return 0;
}

static int add_path(const char *s)
{
    const char *at = strrchr(s, '@');
    size_t len = at != NULL ? (size_t)(at - s) : strlen(s);
    double w = 1;

    if (lg.npaths == LG_PATHS_MAX || len == 0 || len >= LG_PATH_MAX || s[0] != '/' ||
        strpbrk(s, " \r\n") != NULL) {
        fprintf(stderr, "loadgen: --path '%s': /PATH[@WEIGHT], %d at most\n", s, LG_PATHS_MAX);
        return -EINVAL;
    }
    if (at != NULL && parse_num("path weight", at + 1, 1, 1e6, &w) < 0)
        return -EINVAL;
    memcpy(lg.paths[lg.npaths].tmpl, s, len);
    lg.paths[lg.npaths].tmpl[len] = '\0';
    lg.paths[lg.npaths].weight = (unsigned)w;
    lg.path_wsum += (unsigned)w;
    lg.npaths++;
    return 0;
}

static int parse_exec_at(const char *s)
{
    const char *colon = strchr(s, ':');
    char num[32];

    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(num) || colon[1] == '\0') {
        fprintf(stderr, "loadgen: --exec-at '%s': SEC:COMMAND\n", s);
        return -EINVAL;
    }
    memcpy(num, s, (size_t)(colon - s));
    num[colon - s] = '\0';
    exec_cmd = colon + 1;
    return parse_num("exec-at", num, 0, 86400, &exec_at);
}

static const struct option opts[] = {
    {"target", required_argument, NULL, 't'},   {"rate", required_argument, NULL, 'r'},
    {"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
    {"keepalive", no_argument, NULL, 'k'},      {"conns", required_argument, NULL, 'c'},
    {"path", required_argument, NULL, 'p'},     {"host", required_argument, NULL, 'H'},
    {"timeout", required_argument, NULL, 'T'},  {"max-inflight", required_argument, NULL, 'm'},
    {"series", required_argument, NULL, 's'},   {"bucket-ms", required_argument, NULL, 'b'},
    {"exec-at", required_argument, NULL, 'x'},  {"trace", required_argument, NULL, 'R'},
    {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
};

static int parse_args(int argc, char **argv)
{
    double v;
    int o, rc = 0;

    while (rc == 0 && (o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            rc = add_target(optarg);
            break;
        case 'r':
            rc = parse_num("rate", optarg, 0, 1e7, &lg.rate);
            break;
        case 'd':
            rc = parse_num("duration", optarg, 0.1, 86400, &lg.duration_s);
            break;
        case 'w':
            rc = parse_num("warmup", optarg, 0, 3600, &v), lg.warmup_s = (unsigned)v;
            break;
        case 'k':
            lg.keepalive = true;
            break;
        case 'c':
            rc = parse_num("conns", optarg, 1, 100000, &v), lg.conns = (unsigned)v;
            break;
        case 'p':
            rc = add_path(optarg);
            break;
        case 'H':
            snprintf(lg.host, sizeof(lg.host), "%s", optarg);
            break;
        case 'T':
            rc = parse_num("timeout", optarg, 0.01, 3600, &lg.timeout_s);
            break;
        case 'm':
            rc = parse_num("max-inflight", optarg, 1, 1e6, &v), lg.max_inflight = v;
            break;
        case 's':
            lg.series = optarg;
            break;
        case 'b':
            rc = parse_num("bucket-ms", optarg, 1, 60000, &v), bucket_ms = (unsigned)v;
            break;
        case 'x':
            rc = parse_exec_at(optarg);
            break;
        case 'R':
            trace_path = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            rc = -EINVAL;
            break;
        }
    }
    if (rc == 0 && (optind != argc || lg.ntargets == 0)) {
        fprintf(stderr, "loadgen: --target is required and nothing else may follow\n");
        rc = -EINVAL;
    }
    if (rc == 0 && lg.npaths == 0)
        rc = add_path("/");
    return rc;
}

/* The scheduled time of request i, ns after t0. */
static uint64_t sched_rel(uint64_t i)
{
    return (uint64_t)((double)i * 1e9 / lg.rate);
}

static void arm_timerfd(uint64_t abs_ns)
{
    struct itimerspec its = {{0, 0},
                             {(time_t)(abs_ns / 1000000000u), (long)(abs_ns % 1000000000u)}};

    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1; /* zero would disarm it */
    if (timerfd_settime(lg.tfd, TFD_TIMER_ABSTIME, &its, NULL) == -1) {
        perror("loadgen: timerfd_settime");
        exit(1);
    }
}

/* Starts every request whose time has come; arms the timer for the next. */
static void on_tick(struct ev_loop *loop, ev_io *w, int revents)
{
    uint64_t exp, now = lg_now_ns();

    (void)revents;
    if (read(lg.tfd, &exp, sizeof(exp)) == -1 && errno != EAGAIN) {
        perror("loadgen: timerfd read");
        exit(1);
    }
    while (lg.t0 + sched_rel(lg.next) <= now && sched_rel(lg.next) < lg.end_rel) {
        lg_start(sched_rel(lg.next), lg.next, lg.next % lg.ntargets);
        lg.next++;
    }
    if (sched_rel(lg.next) >= lg.end_rel) {
        ev_io_stop(loop, w);
        lg.scheduling = false;
        lg_maybe_done();
        return;
    }
    arm_timerfd(lg.t0 + sched_rel(lg.next));
}

/* The hard stop: timeout seconds after the last scheduled start. */
static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    lg_abort_all();
    ev_break(loop, EVBREAK_ALL);
}

/* --exec-at: runs the command, not waited for (libev reaps it). */
static void on_exec(struct ev_loop *loop, ev_timer *w, int revents)
{
    pid_t pid;

    (void)loop;
    (void)w;
    (void)revents;
    pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", exec_cmd, (char *)NULL);
        _exit(127);
    }
    if (pid == -1)
        perror("loadgen: fork for --exec-at");
}

static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            perror("loadgen: setrlimit(RLIMIT_NOFILE)");
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < lg.max_inflight + 64) {
        lg.max_inflight = rl.rlim_cur > 128 ? rl.rlim_cur - 64 : 64;
        fprintf(stderr, "loadgen: --max-inflight lowered to %.0f (ulimit -n)\n", lg.max_inflight);
    }
}

static void run(void)
{
    ev_io tick;
    ev_timer deadline, exec;
    double total = lg.warmup_s + lg.duration_s;
    FILE *trace = NULL;
    struct timespec wall;

    lg.loop = ev_default_loop(EVFLAG_AUTO);
    lg.end_rel = (uint64_t)(total * 1e9);
    lg.stats = lg_stats_new(lg.end_rel, bucket_ms, lg.warmup_s);
    if (trace_path != NULL) {
        trace = fopen(trace_path, "w");
        if (trace == NULL) {
            fprintf(stderr, "loadgen: %s: %s\n", trace_path, strerror(errno));
            exit(1);
        }
        setvbuf(trace, NULL, _IOFBF, 1 << 20);
        lg_stats_trace(lg.stats, trace);
    }
    lg.scheduling = true;
    ev_now_update(lg.loop);
    lg.t0 = lg_now_ns();
    clock_gettime(CLOCK_REALTIME, &wall);
    t0_unix = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
    ev_timer_init(&deadline, on_deadline, total + lg.timeout_s + 1.0, 0);
    ev_timer_start(lg.loop, &deadline);
    ev_timer_init(&exec, on_exec, exec_at, 0);
    if (exec_cmd != NULL)
        ev_timer_start(lg.loop, &exec);
    if (lg.rate > 0) {
        lg.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (lg.tfd == -1) {
            perror("loadgen: timerfd_create");
            exit(1);
        }
        ev_io_init(&tick, on_tick, lg.tfd, EV_READ);
        ev_io_start(lg.loop, &tick);
        arm_timerfd(lg.t0);
    } else {
        for (unsigned i = 0; i < lg.conns; i++)
            lg_start(0, lg.next++, i % lg.ntargets);
    }
    ev_run(lg.loop, 0);
    ev_timer_stop(lg.loop, &deadline);
    ev_timer_stop(lg.loop, &exec);
    if (lg.rate > 0) {
        ev_io_stop(lg.loop, &tick);
        close(lg.tfd);
    }
    lg_abort_all();
    lg_stats_trace(lg.stats, NULL);
    if (trace != NULL) {
        int failed = ferror(trace);

        if (fclose(trace) != 0 || failed) {
            fprintf(stderr, "loadgen: %s: write failed\n", trace_path);
            exit(1);
        }
    }
}

int main(int argc, char **argv)
{
    int rc;

    lg.rate = 1000;
    lg.duration_s = 10;
    lg.conns = 64;
    lg.timeout_s = 10;
    lg.max_inflight = 8000;
    snprintf(lg.host, sizeof(lg.host), "bench");
    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    raise_nofile();
    run();
    printf("mode=%s\nrate=%.1f\nconns=%u\nwarmup_s=%u\nt0_unix=%.3f\n",
           lg.keepalive ? "keepalive" : "close", lg.rate, lg.conns, lg.warmup_s, t0_unix);
    lg_stats_report(lg.stats, stdout, lg.duration_s);
    if (lg.series != NULL && (rc = lg_stats_write_series(lg.stats, lg.series)) < 0) {
        fprintf(stderr, "loadgen: %s: %s\n", lg.series, strerror(-rc));
        return 1;
    }
    lg_stats_free(lg.stats);
    lg_conn_free_all();
    return 0;
}
