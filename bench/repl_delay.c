/* repl_delay.c - replication delay between two fulcrum-cache nodes on
 * loopback, for bench/cache.sh.
 *
 * Usage: repl_delay A_PORT B_PORT [-n COUNT] [-p PREFIX] [-i POLL_US] [-t TIMEOUT_MS]
 *
 * For each of COUNT distinct URLs PREFIX/0, PREFIX/1, ... it GETs the URL
 * from node A (an origin fetch there: X-Cache must say MISS), then polls
 * node B with the same URL and "Cache-Control: only-if-cached" (so B never
 * fetches it itself: it answers 504 until the copy arrived) every POLL_US
 * microseconds until B answers 200 with X-Cache "HIT ...". The delay is the
 * time from the last byte of A's answer (A stored the object and sent the
 * announce by then) to the last byte of B's first HIT; it overstates the
 * true delay by up to one poll interval plus one request round trip.
 * Both connections are kept alive throughout. The URLs are fetched one at
 * a time, so this measures the delay of a single announce, not throughput.
 *
 * Prints one line of key=value: n, p50_us, p90_us, p99_us, max_us,
 * over_1ms and over_5ms (how many delays exceeded that), polls_mean (B
 * requests per URL), fetch_p50_us and fetch_p99_us (A's MISS round trip,
 * origin fetch included), timeouts. Exits 0 when every URL became a HIT on
 * B in time, 1 otherwise, 2 on a usage or socket error. Only 127.0.0.1 is
 * ever contacted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX 65536

struct conn {
    int fd;
    unsigned port;
    char buf[RESP_MAX];
    size_t len; /* bytes buffered (a response may be followed by nothing else) */
};

struct resp {
    int status;
    char xcache[64];
    size_t body_len;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int parse_num(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int conn_open(struct conn *c, unsigned port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd == -1)
        return -errno;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) == -1) {
        int e = errno;

        close(c->fd);
        c->fd = -1;
        return -e;
    }
    c->port = port;
    c->len = 0;
    return 0;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

        if (k == -1 && errno == EINTR)
            continue;
        if (k == -1)
            return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The value of header name in the head [p, end), or NULL; *vlen its length. */
static const char *head_get(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);

    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;

            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t)(eol - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Reads one response with a Content-Length body (what fulcrum-cache always
 * sends) into r. Returns 0, or -errno / -EPROTO. */
static int read_resp(struct conn *c, struct resp *r)
{
    const char *hend = NULL, *v;
    size_t hlen = 0, vlen, need = 0;
    long clen;
    char num[24];

    for (;;) {
        ssize_t k;

        if (!hend && (hend = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
            hlen = (size_t)(hend - c->buf) + 4;
            v = head_get(strchr(c->buf, '\n') + 1, hend, "Content-Length", &vlen);
            if (!v || vlen >= sizeof(num))
                return -EPROTO;
            memcpy(num, v, vlen);
            num[vlen] = 0;
            if (parse_num(num, 0, RESP_MAX, &clen) || hlen + (size_t)clen > RESP_MAX)
                return -EPROTO;
            need = hlen + (size_t)clen;
        }
        if (hend && c->len >= need)
            break;
        if (c->len == RESP_MAX)
            return -EPROTO;
        k = recv(c->fd, c->buf + c->len, RESP_MAX - c->len, 0);
        if (k == -1 && errno == EINTR)
            continue;
        if (k == -1)
            return -errno;
        if (k == 0)
            return -ECONNRESET;
        c->len += (size_t)k;
    }
    if (sscanf(c->buf, "HTTP/1.%*c %d", &r->status) != 1)
        return -EPROTO;
    r->xcache[0] = 0;
    v = head_get(strchr(c->buf, '\n') + 1, hend, "X-Cache", &vlen);
    if (v) {
        vlen = vlen < sizeof(r->xcache) - 1 ? vlen : sizeof(r->xcache) - 1;
        memcpy(r->xcache, v, vlen);
        r->xcache[vlen] = 0;
    }
    r->body_len = need - hlen;
    memmove(c->buf, c->buf + need, c->len - need);
    c->len -= need;
    return 0;
}

static int get(struct conn *c, const char *path, bool only_cached, struct resp *r)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: bench\r\n%s\r\n", path,
                     only_cached ? "Cache-Control: only-if-cached\r\n" : "");
    int e;

    if (n < 0 || (size_t)n >= sizeof(req))
        return -ENAMETOOLONG;
    e = send_all(c->fd, req, (size_t)n);
    return e ? e : read_resp(c, r);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n), in µs. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
    size_t k = (size_t)(p * (double)n + 0.999999);

    if (n == 0)
        return 0;
    if (k == 0)
        k = 1;
    return (double)v[(k > n ? n : k) - 1] / 1000.0;
}

static void usage(void)
{
    fprintf(stderr, "usage: repl_delay A_PORT B_PORT [-n COUNT] [-p PREFIX] [-i POLL_US] "
                    "[-t TIMEOUT_MS]\n");
    exit(2);
}

/* One URL: fetch on A, poll B. Returns 0 with *delay and *fetch in ns,
 * 1 on a timeout, -errno on an error (message printed). */
static int one(struct conn *a, struct conn *b, const char *path, long poll_us, long timeout_ms,
               uint64_t *delay, uint64_t *fetch, unsigned long *polls)
{
    struct timespec gap = {poll_us / 1000000, (poll_us % 1000000) * 1000};
    struct resp r;
    uint64_t t0, t1, t;
    int e;

    t0 = now_ns();
    if ((e = get(a, path, false, &r)) != 0) {
        fprintf(stderr, "repl_delay: GET %s from A: %s\n", path, strerror(-e));
        return e;
    }
    t1 = now_ns();
    if (r.status != 200 || strncmp(r.xcache, "MISS", 4) != 0) {
        fprintf(stderr, "repl_delay: GET %s from A: status %d, X-Cache '%s' (want a MISS)\n", path,
                r.status, r.xcache);
        return -EPROTO;
    }
    *fetch = t1 - t0;
    for (;;) {
        if ((e = get(b, path, true, &r)) != 0) {
            fprintf(stderr, "repl_delay: GET %s from B: %s\n", path, strerror(-e));
            return e;
        }
        t = now_ns();
        ++*polls;
        if (r.status == 200 && strncmp(r.xcache, "HIT", 3) == 0)
            break;
        if (r.status != 504) {
            fprintf(stderr, "repl_delay: GET %s from B: status %d, X-Cache '%s'\n", path, r.status,
                    r.xcache);
            return -EPROTO;
        }
        if (t - t1 > (uint64_t)timeout_ms * 1000000u)
            return 1;
        if (poll_us > 0)
            nanosleep(&gap, NULL);
    }
    *delay = t - t1;
    return 0;
}

/* Measures count URLs and prints the summary line. Returns the exit code. */
static int measure(unsigned aport, unsigned bport, long count, const char *prefix, long poll_us,
                   long timeout_ms)
{
    struct conn *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    uint64_t *delay = calloc((size_t)count, sizeof(*delay));
    uint64_t *fetch = calloc((size_t)count, sizeof(*fetch));
    unsigned long polls = 0;
    size_t n = 0, timeouts = 0, over_1ms = 0, over_5ms = 0;
    int e, rc = 2;

    if (!a || !b || !delay || !fetch) {
        fprintf(stderr, "repl_delay: out of memory\n");
        goto out_free;
    }
    a->fd = b->fd = -1;
    if ((e = conn_open(a, aport)) || (e = conn_open(b, bport))) {
        fprintf(stderr, "repl_delay: connect: %s\n", strerror(-e));
        goto out_close;
    }
    for (long i = 0; i < count; i++) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%ld", prefix, i);
        e = one(a, b, path, poll_us, timeout_ms, &delay[n], &fetch[n], &polls);
        if (e < 0)
            goto out_close;
        if (e > 0)
            timeouts++;
        else
            n++;
    }
    for (size_t i = 0; i < n; i++) {
        over_1ms += delay[i] > 1000000u;
        over_5ms += delay[i] > 5000000u;
    }
    qsort(delay, n, sizeof(*delay), cmp_u64);
    qsort(fetch, n, sizeof(*fetch), cmp_u64);
    printf("n=%zu p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f over_1ms=%zu over_5ms=%zu "
           "polls_mean=%.2f fetch_p50_us=%.0f fetch_p99_us=%.0f poll_interval_us=%ld "
           "timeouts=%zu\n",
           n, pct_us(delay, n, 0.50), pct_us(delay, n, 0.90), pct_us(delay, n, 0.99),
           n ? (double)delay[n - 1] / 1000.0 : 0.0, over_1ms, over_5ms,
           (double)polls / (double)count, pct_us(fetch, n, 0.50), pct_us(fetch, n, 0.99), poll_us,
           timeouts);
    rc = timeouts ? 1 : 0;
out_close:
    if (a && a->fd != -1)
        close(a->fd);
    if (b && b->fd != -1)
        close(b->fd);
out_free:
    free(a);
    free(b);
    free(delay);
    free(fetch);
    return rc;
}

int main(int argc, char **argv)
{
    long aport, bport, count = 500, poll_us = 100, timeout_ms = 1000;
    const char *prefix = "/r/0";
    int opt;

    while ((opt = getopt(argc, argv, "n:p:i:t:")) != -1) {
        if ((opt == 'n' && parse_num(optarg, 1, 1000000, &count)) ||
            (opt == 'i' && parse_num(optarg, 0, 1000000, &poll_us)) ||
            (opt == 't' && parse_num(optarg, 1, 600000, &timeout_ms)) || opt == '?')
            usage();
        if (opt == 'p')
            prefix = optarg;
    }
    if (argc - optind != 2 || parse_num(argv[optind], 1, 65535, &aport) ||
        parse_num(argv[optind + 1], 1, 65535, &bport) || strlen(prefix) > 200)
        usage();
    return measure((unsigned)aport, (unsigned)bport, count, prefix, poll_us, timeout_ms);
}
