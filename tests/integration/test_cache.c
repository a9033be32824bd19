/* test_cache.c - the real fulcrum-cache in front of a counting origin:
 * hits, misses, coalescing, revalidation, stale serving (while
 * revalidating and on origin errors), PURGE, and replication between
 * nodes.
 *
 * The origin is a thread of this test (one thread per connection), so the
 * test can count the requests that reach it: a cache hit is proven by the
 * count not moving. The cache listens on a port the kernel picks and says
 * so on its "ready" line, the readiness signal. Origin paths and modes are
 * in cache_fixture.h.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "cache_fixture.h"
#include "harness.h"

static char buf[1 << 16];

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* GET path, which was stored fresh (max-age of 1 or 2 s) at `since`: a HIT
 * without asking the origin when the request goes out within half a
 * second; later, on a loaded machine, the copy may be stale again and any
 * answer with the body goes. */
static void get_fresh(unsigned port, const char *path, double since, struct origin *o)
{
    bool quick = now_s() - since < 0.5;
    int before = atomic_load(&o->requests);

    cr_assert_eq(be_http(port, "GET", path, buf, sizeof(buf)), 200);
    if (quick) {
        cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
        cr_assert_eq(atomic_load(&o->requests), before);
    }
}

Test(cache, miss_then_hit)
{
    struct origin o;
    struct cache c;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    cr_assert_eq(be_http(c.port, "GET", "/a?x=1", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_str_eq(body_of(buf), "body:GET /a?x=1");
    cr_assert_eq(atomic_load(&o.requests), 1);
    sleep(1);
    cr_assert_eq(be_http(c.port, "GET", "/a?x=1", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
    cr_assert_not_null(hdr(buf, "Age"));
    cr_assert_geq(strtol(hdr(buf, "Age"), NULL, 10), 1, "Age %s", hdr(buf, "Age"));
    cr_assert_str_eq(body_of(buf), "body:GET /a?x=1");
    cr_assert_eq(atomic_load(&o.requests), 1, "the hit reached the origin");
    /* HEAD is answered from the GET entry */
    cr_assert_eq(be_http(c.port, "HEAD", "/a?x=1", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
    cr_assert_str_eq(body_of(buf), "");
    /* another query is another key */
    cr_assert_eq(be_http(c.port, "GET", "/a?x=2", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_eq(atomic_load(&o.requests), 2);
    /* a conditional request on a hit: 304 */
    cr_assert_eq(raw_http(c.port,
                          "GET /a?x=1 HTTP/1.1\r\nHost: test\r\nIf-None-Match: \"e1\"\r\n"
                          "Connection: close\r\n\r\n",
                          buf, sizeof(buf)),
                 304);
    cache_stop(&c);
}

Test(cache, no_store_never_cached)
{
    struct origin o;
    struct cache c;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(be_http(c.port, "GET", "/nostore", buf, sizeof(buf)), 200);
        cr_assert_str_eq(hdr(buf, "X-Cache"), "PASS from t1");
        cr_assert_str_eq(body_of(buf), "body:GET /nostore");
    }
    cr_assert_eq(atomic_load(&o.requests), 2);
    cache_stop(&c);
}

Test(cache, purge)
{
    struct origin o;
    struct cache c;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    cr_assert_eq(be_http(c.port, "GET", "/p", buf, sizeof(buf)), 200);
    cr_assert_eq(be_http(c.port, "GET", "/p", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
    cr_assert_eq(be_http(c.port, "PURGE", "/p", buf, sizeof(buf)), 200);
    cr_assert_str_eq(body_of(buf), "{\"purged\":1}\n");
    cr_assert_eq(be_http(c.port, "GET", "/p", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_eq(atomic_load(&o.requests), 2);
    cr_assert_eq(be_http(c.port, "GET", "/_fulcrum/stats", buf, sizeof(buf)), 200);
    cr_assert_not_null(strstr(body_of(buf), "\"hits\":1,"), "%s", body_of(buf));
    cr_assert_not_null(strstr(body_of(buf), "\"purged\":1,"), "%s", body_of(buf));
    cache_stop(&c);
}

struct par {
    unsigned port;
    const char *path; /* NULL: /slow/one */
    int code;
    char resp[4096];
};

static void *par_get(void *arg)
{
    struct par *p = arg;

    p->code = be_http(p->port, "GET", p->path ? p->path : "/slow/one", p->resp, sizeof(p->resp));
    return NULL;
}

Test(cache, concurrent_misses_coalesce)
{
    static struct par ps[100];
    pthread_t t[100];
    struct origin o;
    struct cache c;
    int miss = 0;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    for (int i = 0; i < 100; i++) {
        ps[i].port = c.port;
        cr_assert_eq(pthread_create(&t[i], NULL, par_get, &ps[i]), 0);
    }
    for (int i = 0; i < 100; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(ps[i].code, 200, "request %d: %d", i, ps[i].code);
        cr_assert_str_eq(body_of(ps[i].resp), "body:GET /slow/one");
        miss += strcmp(hdr(ps[i].resp, "X-Cache"), "MISS from t1") == 0;
    }
    cr_assert_eq(atomic_load(&o.requests), 1, "origin saw %d requests", atomic_load(&o.requests));
    cr_assert_gt(miss, 1, "the requests did not overlap");
    cr_assert_eq(be_http(c.port, "GET", "/_fulcrum/stats", buf, sizeof(buf)), 200);
    cr_assert_not_null(strstr(body_of(buf), "\"misses\":1,"), "%s", body_of(buf));
    cache_stop(&c);
}

Test(cache, post_invalidates)
{
    struct origin o;
    struct cache c;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    cr_assert_eq(be_http(c.port, "GET", "/doc", buf, sizeof(buf)), 200);
    cr_assert_eq(be_http(c.port, "GET", "/doc", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
    cr_assert_eq(be_http(c.port, "POST", "/doc", buf, sizeof(buf)), 200);
    cr_assert_str_eq(body_of(buf), "body:POST /doc");
    cr_assert_eq(atomic_load(&o.requests), 2);
    cr_assert_eq(be_http(c.port, "GET", "/doc", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_eq(atomic_load(&o.requests), 3);
    cache_stop(&c);
}

Test(cache, docroot_etag_304)
{
    char dir[] = "/tmp/fulcrum-docroot-XXXXXX", path[128], req[512], etag[128];
    struct cache c;
    FILE *f;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/hello.txt", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("hello docroot\n", f);
    fclose(f);
    cache_start(&c, 0, dir);
    cr_assert_eq(be_http(c.port, "GET", "/hello.txt", buf, sizeof(buf)), 200);
    cr_assert_str_eq(body_of(buf), "hello docroot\n");
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_not_null(hdr(buf, "ETag"));
    snprintf(etag, sizeof(etag), "%s", hdr(buf, "ETag"));
    cr_assert_eq(be_http(c.port, "GET", "/hello.txt", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
    snprintf(req, sizeof(req),
             "GET /hello.txt HTTP/1.1\r\nHost: test\r\nIf-None-Match: %s\r\n"
             "Connection: close\r\n\r\n",
             etag);
    cr_assert_eq(raw_http(c.port, req, buf, sizeof(buf)), 304);
    cr_assert_str_eq(body_of(buf), "");
    cr_assert_eq(raw_http(c.port,
                          "GET /hello.txt HTTP/1.1\r\nHost: test\r\nIf-None-Match: \"other\"\r\n"
                          "Connection: close\r\n\r\n",
                          buf, sizeof(buf)),
                 200);
    cr_assert_eq(be_http(c.port, "GET", "/missing", buf, sizeof(buf)), 404);
    cache_stop(&c);
    unlink(path);
    rmdir(dir);
}

Test(cache, must_revalidate_304_refreshes)
{
    struct origin o;
    struct cache c;
    double t0;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    sleep(2); /* max-age=1: stale now, no stale-while-revalidate */
    t0 = now_s();
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "REVALIDATED from t1");
    cr_assert_str_eq(body_of(buf), "body:GET /reval");
    cr_assert_eq(atomic_load(&o.requests), 2);
    cr_assert_eq(atomic_load(&o.conditional), 1, "the revalidation was not conditional");
    cr_assert_eq(stat_of(c.port, "revalidated"), 1);
    get_fresh(c.port, "/reval", t0, &o);
    cache_stop(&c);
}

Test(cache, stale_while_revalidate)
{
    struct origin o;
    struct cache c;
    int i;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    cr_assert_eq(be_http(c.port, "GET", "/swr", buf, sizeof(buf)), 200);
    sleep(3);
    cr_assert_eq(be_http(c.port, "GET", "/swr", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "STALE from t1");
    cr_assert_str_eq(body_of(buf), "body:GET /swr");
    for (i = 0; i < 100 && atomic_load(&o.requests) < 2; i++)
        usleep(20 * 1000);
    cr_assert_eq(atomic_load(&o.requests), 2, "no background refresh");
    /* the refresh lands in the store: stored goes from 1 to 2 */
    for (i = 0; i < 100; i++) {
        cr_assert_eq(be_http(c.port, "GET", "/_fulcrum/stats", buf, sizeof(buf)), 200);
        if (strstr(body_of(buf), "\"stored\":2,"))
            break;
        usleep(20 * 1000);
    }
    cr_assert_lt(i, 100, "the refresh was not stored: %s", body_of(buf));
    get_fresh(c.port, "/swr", now_s(), &o);
    cache_stop(&c);
}

/* RFC 5861 stale-if-error: the origin fails (500, then a closed
 * connection) while a stale copy with stale-if-error=60 is stored: the
 * copy is served STALE; once the origin is back it replaces the copy. */
Test(cache, stale_if_error_serves_stale)
{
    struct origin o;
    struct cache c;
    double t0;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    cr_assert_eq(be_http(c.port, "GET", "/sie", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    sleep(2); /* max-age=1: stale now */
    atomic_store(&o.fail, 500);
    cr_assert_eq(be_http(c.port, "GET", "/sie", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "STALE from t1");
    cr_assert_str_eq(body_of(buf), "body:GET /sie");
    cr_assert_geq(strtol(hdr(buf, "Age"), NULL, 10), 1, "Age %s", hdr(buf, "Age"));
    atomic_store(&o.fail, -1);
    cr_assert_eq(be_http(c.port, "GET", "/sie", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "STALE from t1");
    cr_assert_str_eq(body_of(buf), "body:GET /sie");
    cr_assert_eq(atomic_load(&o.requests), 3);
    cr_assert_eq(stat_of(c.port, "stale_if_error"), 2);
    cr_assert_eq(stat_of(c.port, "origin_errors"), 2);
    /* the origin is back: a new copy replaces the stale one */
    atomic_store(&o.fail, 0);
    t0 = now_s();
    cr_assert_eq(be_http(c.port, "GET", "/sie", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_eq(atomic_load(&o.requests), 4);
    cr_assert_eq(stat_of(c.port, "stored"), 2);
    get_fresh(c.port, "/sie", t0, &o);
    cache_stop(&c);
}

/* A revalidation slower than --timeout-coalesce (the origin waits 1 s,
 * then answers 500): the request that joined it takes the stale copy at its
 * timeout rather than a 504, and the one that started it takes it when the
 * 500 arrives. */
Test(cache, stale_if_error_on_slow_origin)
{
    struct par a = {0};
    pthread_t ta;
    struct origin o;
    struct cache c;

    origin_start(&o);
    cache_start_args(&c, o.port, NULL, "--timeout-coalesce", "0.2");
    cr_assert_eq(be_http(c.port, "GET", "/sie", buf, sizeof(buf)), 200);
    sleep(2); /* max-age=1: stale now */
    atomic_store(&o.fail, 2);
    a.port = c.port;
    a.path = "/sie";
    cr_assert_eq(pthread_create(&ta, NULL, par_get, &a), 0);
    while (atomic_load(&o.requests) < 2)
        usleep(5 * 1000);
    cr_assert_eq(be_http(c.port, "GET", "/sie", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "STALE from t1");
    cr_assert_str_eq(body_of(buf), "body:GET /sie");
    pthread_join(ta, NULL);
    cr_assert_eq(a.code, 200);
    cr_assert_str_eq(hdr(a.resp, "X-Cache"), "STALE from t1");
    cr_assert_eq(atomic_load(&o.requests), 2, "the joiner fetched on its own");
    cr_assert_eq(stat_of(c.port, "stale_if_error"), 2);
    cache_stop(&c);
}

/* Without stale-if-error the origin's failure is passed on (its 500, or
 * 502 for a closed connection) and the stale copy stays for later; a
 * request's own Cache-Control: stale-if-error takes it. */
Test(cache, origin_error_without_stale_if_error)
{
    struct origin o;
    struct cache c;
    const char *sie = "GET /reval HTTP/1.1\r\nHost: test\r\n"
                      "Cache-Control: stale-if-error=60\r\nConnection: close\r\n\r\n";

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    sleep(2); /* max-age=1: stale now */
    atomic_store(&o.fail, 500);
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 500);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "PASS from t1");
    cr_assert_str_eq(body_of(buf), "origin broken\n");
    atomic_store(&o.fail, -1);
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 502);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_eq(raw_http(c.port, sie, buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "STALE from t1");
    cr_assert_str_eq(body_of(buf), "body:GET /reval");
    cr_assert_eq(atomic_load(&o.requests), 4);
    /* the origin is back: the kept copy is revalidated, not refetched */
    atomic_store(&o.fail, 0);
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "REVALIDATED from t1");
    cr_assert_eq(atomic_load(&o.conditional), 1);
    cache_stop(&c);
}

Test(cache, purge_and_stats_loopback_only)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    struct origin o;
    struct cache c;
    const char *req = "PURGE /p HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    ssize_t n;
    int fd;

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons((uint16_t)c.port);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    n = be_read_all(fd, buf, sizeof(buf) - 1);
    close(fd);
    cr_assert_gt(n, 0);
    buf[n] = 0;
    cr_assert(strncmp(buf, "HTTP/1.1 403", 12) == 0, "%s", buf);
    cache_stop(&c);
}

/* One request from source address src to the node; the status line. */
static int request_from(unsigned port, const char *src_ip, const char *req)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    char resp[4096];
    ssize_t n;
    int fd, status = -1;

    inet_pton(AF_INET, src_ip, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons((uint16_t)port);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    n = be_read_all(fd, resp, sizeof(resp) - 1);
    close(fd);
    if (n > 12) {
        resp[n] = 0;
        sscanf(resp, "HTTP/1.1 %d", &status);
    }
    return status;
}

/* --purge-allow opens PURGE to a network (and nothing else: stats stay
 * loopback only); an address outside it is still refused. */
Test(cache, purge_allow_network)
{
    const char *purge = "PURGE /p HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    const char *stats = "GET /_fulcrum/stats HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    struct origin o;
    struct cache c;

    origin_start(&o);
    cache_start_args(&c, o.port, NULL, "--purge-allow", "127.0.0.8/29");
    cr_assert_eq(request_from(c.port, "127.0.0.9", purge), 200, "allowed: {\"purged\":0}");
    cr_assert_eq(request_from(c.port, "127.0.0.15", purge), 200);
    cr_assert_eq(request_from(c.port, "127.0.0.16", purge), 403, "outside the /29");
    cr_assert_eq(request_from(c.port, "127.0.0.7", purge), 403);
    cr_assert_eq(request_from(c.port, "127.0.0.9", stats), 403, "stats stay loopback only");
    cr_assert_eq(request_from(c.port, "127.0.0.1", purge), 200, "127.0.0.1 always may");
    cache_stop(&c);
}

/* A request waiting on another's fetch longer than --timeout-coalesce: 504;
 * the first request still gets its answer. */
Test(cache, coalesce_timeout_504)
{
    struct par a, b;
    pthread_t ta, tb;
    struct origin o;
    struct cache c;

    origin_start(&o);
    cache_start_args(&c, o.port, NULL, "--timeout-coalesce", "0.2");
    a.port = b.port = c.port;
    cr_assert_eq(pthread_create(&ta, NULL, par_get, &a), 0);
    while (atomic_load(&o.requests) < 1)
        usleep(5 * 1000);
    cr_assert_eq(pthread_create(&tb, NULL, par_get, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a.code, 200);
    cr_assert_eq(b.code, 504);
    cr_assert_eq(atomic_load(&o.requests), 1);
    cache_stop(&c);
}

/* ---- replication ---- */

struct node {
    struct cache c;
    unsigned peer_port;
};

/* Starts fulcrum-cache NAME replicating (--key, --peer-listen 127.0.0.1:0)
 * and connecting to peer_port when not 0; waits for its ready line, which
 * comes only once it synced. */
static void node_spawn(struct node *nd, unsigned origin_port, const char *keydir, const char *name,
                       unsigned listen_port, unsigned peer_port)
{
    char url[64], key[512], peer[64], listen[64];
    char *argv[20] = {CACHE_BIN, "--listen",      listen,        "--name",   (char *)name, "--key",
                      key,       "--peer-listen", "127.0.0.1:0", "--origin", url};
    int n = 11;

    snprintf(listen, sizeof(listen), "127.0.0.1:%u", listen_port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", origin_port);
    snprintf(key, sizeof(key), "%s/key", keydir);
    if (peer_port) {
        snprintf(peer, sizeof(peer), "127.0.0.1:%u", peer_port);
        argv[n++] = "--peer";
        argv[n++] = peer;
    }
    argv[n] = NULL;
    h_spawn(&nd->c.p, argv);
}

static void node_wait_ready(struct node *nd, const char *name)
{
    char want[80];
    const char *line, *p;

    line = h_wait_for(&nd->c.p, 2, "ready listen=", WAIT_MS);
    cr_assert_not_null(line, "fulcrum-cache %s did not start", name);
    snprintf(want, sizeof(want), "name=%s ", name);
    cr_assert_not_null(strstr(line, want), "ready line: %s", line);
    p = strstr(line, "listen=127.0.0.1:");
    cr_assert_not_null(p, "ready line: %s", line);
    nd->c.port = (unsigned)strtoul(p + 17, NULL, 10);
    p = strstr(line, "peer_listen=127.0.0.1:");
    cr_assert_not_null(p, "ready line: %s", line);
    nd->peer_port = (unsigned)strtoul(p + 22, NULL, 10);
    cr_assert_neq(nd->c.port, 0);
    cr_assert_neq(nd->peer_port, 0);
}

static void node_start(struct node *nd, unsigned origin_port, const char *keydir, const char *name,
                       unsigned peer_port)
{
    node_spawn(nd, origin_port, keydir, name, 0, peer_port);
    node_wait_ready(nd, name);
}

/* A TCP port on 127.0.0.1 that was free a moment ago (bound then released). */
static unsigned free_tcp_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_neq(fd, -1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* True when something accepts TCP connections on 127.0.0.1:port. */
/* Whether process pid holds a TCP socket listening on port. Not "does the
 * port accept": in a parallel run another test may have bound the port
 * free_tcp_port() found (a CI run failed on that). */
static bool pid_listens_on(pid_t pid, unsigned port)
{
    unsigned long inodes[64];
    size_t n = 0;
    char line[512], path[64];
    FILE *f = fopen("/proc/net/tcp", "r");
    DIR *d;
    struct dirent *e;
    bool found = false;

    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f) && n < 64) {
        unsigned lport, st;
        unsigned long inode;

        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*d %lu", &lport, &st,
                   &inode) == 3 &&
            lport == port && st == 0x0A /* TCP_LISTEN */)
            inodes[n++] = inode;
    }
    fclose(f);
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    cr_assert_not_null(d, "%s", path);
    while (!found && (e = readdir(d)) != NULL) {
        char link[330], target[64];
        unsigned long inode;
        ssize_t k;

        snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
        k = readlink(link, target, sizeof(target) - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        if (sscanf(target, "socket:[%lu]", &inode) == 1)
            for (size_t i = 0; i < n && !found; i++)
                found = inodes[i] == inode;
    }
    closedir(d);
    return found;
}

/* GETs path on port every 20 ms until X-Cache is want, up to 5 s. The
 * requests say only-if-cached, so polling never reaches the origin (a 504
 * until the copy arrived). */
static bool poll_xcache(unsigned port, const char *path, const char *want)
{
    char req[512];

    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: test\r\nCache-Control: only-if-cached\r\n"
             "Connection: close\r\n\r\n",
             path);
    for (int i = 0; i < 250; i++) {
        const char *x;

        if (raw_http(port, req, buf, sizeof(buf)) == 200 && (x = hdr(buf, "X-Cache")) &&
            strcmp(x, want) == 0)
            return true;
        usleep(20 * 1000);
    }
    return false;
}

Test(cache, replication_announce_and_purge)
{
    struct origin o;
    struct node a, b;
    const char *keys = h_make_keys();

    origin_start(&o);
    node_start(&a, o.port, keys, "na", 0);
    node_start(&b, o.port, keys, "nb", a.peer_port);
    cr_assert_eq(be_http(a.c.port, "GET", "/x", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from na");
    cr_assert_eq(atomic_load(&o.requests), 1);
    /* nothing to await: poll B until the announce arrived */
    cr_assert(poll_xcache(b.c.port, "/x", "HIT from nb"), "B never served /x as a HIT: %s", buf);
    cr_assert_str_eq(body_of(buf), "body:GET /x");
    cr_assert_eq(atomic_load(&o.requests), 1, "B fetched /x from the origin");
    cr_assert_eq(be_http(b.c.port, "GET", "/_fulcrum/stats", buf, sizeof(buf)), 200);
    cr_assert_not_null(strstr(body_of(buf), "\"replicated_in\":1,"), "%s", body_of(buf));
    cr_assert_eq(be_http(a.c.port, "GET", "/_fulcrum/stats", buf, sizeof(buf)), 200);
    cr_assert_not_null(strstr(body_of(buf), "\"replicated_out\":1,"), "%s", body_of(buf));
    /* a PURGE on B removes /x from A too */
    cr_assert_eq(be_http(b.c.port, "PURGE", "/x", buf, sizeof(buf)), 200);
    cr_assert_str_eq(body_of(buf), "{\"purged\":1}\n");
    for (int i = 0; i < 250; i++) {
        cr_assert_eq(be_http(a.c.port, "GET", "/_fulcrum/stats", buf, sizeof(buf)), 200);
        if (!strstr(body_of(buf), "\"peer_purges_in\":0,"))
            break;
        usleep(20 * 1000);
    }
    cr_assert_eq(be_http(a.c.port, "GET", "/x", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from na");
    cr_assert_eq(atomic_load(&o.requests), 2);
    cache_stop(&b.c);
    cache_stop(&a.c);
}

Test(cache, replication_sync_before_ready)
{
    struct origin o;
    struct node a, c;
    const char *keys = h_make_keys();
    unsigned port;

    origin_start(&o);
    node_start(&a, o.port, keys, "na", 0);
    cr_assert_eq(be_http(a.c.port, "GET", "/y", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from na");
    cr_assert_eq(atomic_load(&o.requests), 1);
    /* A is stopped: C connects (the kernel accepts) but cannot sync, so its
     * HTTP port must stay closed and no ready line may appear */
    h_signal(&a.c.p, SIGSTOP);
    port = free_tcp_port();
    node_spawn(&c, o.port, keys, "nc", port, a.peer_port);
    cr_assert_not_null(h_wait_for(&c.c.p, 2, "syncing before serving", WAIT_MS));
    for (int i = 0; i < 25; i++) {
        cr_assert(!pid_listens_on(c.c.p.pid, port), "C listens for HTTP before it synced");
        usleep(20 * 1000);
    }
    h_signal(&a.c.p, SIGCONT);
    node_wait_ready(&c, "nc");
    cr_assert_eq(c.c.port, port);
    cr_assert(pid_listens_on(c.c.p.pid, port),
              "C's listener is not seen: the check above is blind");
    /* the ready line came after the sync: the first request is a hit */
    cr_assert_eq(be_http(c.c.port, "GET", "/y", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from nc");
    cr_assert_str_eq(body_of(buf), "body:GET /y");
    cr_assert_eq(atomic_load(&o.requests), 1, "C fetched /y from the origin");
    cr_assert_eq(be_http(c.c.port, "GET", "/_fulcrum/stats", buf, sizeof(buf)), 200);
    cr_assert_not_null(strstr(body_of(buf), "\"peer_syncs\":1,"), "%s", body_of(buf));
    cache_stop(&c.c);
    cache_stop(&a.c);
}
