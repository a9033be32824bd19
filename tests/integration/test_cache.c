/* test_cache.c - the real fulcrum-cache in front of a counting origin.
 *
 * The origin is a thread of this test (one thread per connection), so the
 * test can count the requests that reach it: a cache hit is proven by the
 * count not moving. The cache listens on a port the kernel picks and says
 * so on its "ready" line, the readiness signal.
 *
 * Origin paths: /nostore* answers Cache-Control: no-store; /slow* waits
 * 500 ms first (so concurrent misses overlap); anything else answers
 * max-age=60 with an ETag. The body is "body:<method> <path>".
 */
#include <criterion/criterion.h>
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
#include <unistd.h>

#include "backend.h"
#include "harness.h"

#define CACHE_BIN FULCRUM_BINARY_DIR "/cache/fulcrum-cache"
#define WAIT_MS   10000

/* ---- the counting origin ---- */

struct origin {
    int lfd;
    unsigned port;
    atomic_int requests;
    atomic_int conditional; /* requests with If-None-Match: "e1" answered 304 */
    pthread_t thr;
};

struct origin_conn {
    struct origin *o;
    int fd;
};

static void *origin_conn_run(void *arg)
{
    struct origin_conn *oc = arg;
    char req[8192] = "", method[16] = "", path[1024] = "", resp[2048], body[1200];
    size_t len = 0;
    ssize_t n;
    const char *cc = "max-age=60";

    while (len < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
        n = read(oc->fd, req + len, sizeof(req) - 1 - len);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        req[len] = 0;
    }
    if (sscanf(req, "%15s %1023s", method, path) != 2)
        goto out;
    atomic_fetch_add(&oc->o->requests, 1);
    if (strncmp(path, "/nostore", 8) == 0)
        cc = "no-store";
    if (strncmp(path, "/slow", 5) == 0)
        usleep(500 * 1000);
    if (strncmp(path, "/swr", 4) == 0)
        cc = "max-age=2, stale-while-revalidate=30";
    if (strncmp(path, "/reval", 6) == 0) {
        cc = "max-age=1";
        if (strstr(req, "If-None-Match: \"e1\"")) {
            atomic_fetch_add(&oc->o->conditional, 1);
            snprintf(resp, sizeof(resp),
                     "HTTP/1.1 304 Not Modified\r\nCache-Control: %s\r\nETag: \"e1\"\r\n"
                     "Connection: close\r\n\r\n",
                     cc);
            if (write(oc->fd, resp, strlen(resp)) < 0)
                goto out;
            goto out;
        }
    }
    snprintf(body, sizeof(body), "body:%s %s", method, path);
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 200 OK\r\nCache-Control: %s\r\nETag: \"e1\"\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             cc, strlen(body), body);
    if (write(oc->fd, resp, strlen(resp)) < 0)
        goto out;
out:
    close(oc->fd);
    free(oc);
    return NULL;
}

static void *origin_run(void *arg)
{
    struct origin *o = arg;

    for (;;) {
        int fd = accept(o->lfd, NULL, NULL);
        struct origin_conn *oc;
        pthread_t t;

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        oc = malloc(sizeof(*oc));
        cr_assert_not_null(oc);
        oc->o = o;
        oc->fd = fd;
        cr_assert_eq(pthread_create(&t, NULL, origin_conn_run, oc), 0);
        pthread_detach(t);
    }
}

static void origin_start(struct origin *o)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    atomic_init(&o->requests, 0);
    atomic_init(&o->conditional, 0);
    o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(o->lfd, -1);
    cr_assert_eq(bind(o->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(o->lfd, 256), 0);
    cr_assert_eq(getsockname(o->lfd, (struct sockaddr *)&a, &alen), 0);
    o->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&o->thr, NULL, origin_run, o), 0);
    pthread_detach(o->thr);
}

/* ---- the cache ---- */

struct cache {
    struct h_proc p;
    unsigned port;
};

/* Starts fulcrum-cache with --origin (port != 0) or --docroot dir. */
static void cache_start_args(struct cache *c, unsigned origin_port, const char *docroot,
                             const char *extra1, const char *extra2)
{
    char url[64];
    char *argv[16] = {CACHE_BIN, "--listen", "127.0.0.1:0", "--name", "t1"};
    int n = 5;

    if (extra1) {
        argv[n++] = (char *)extra1;
        argv[n++] = (char *)extra2;
    }
    const char *line, *p;

    if (docroot) {
        argv[n++] = "--docroot";
        argv[n++] = (char *)docroot;
    } else {
        snprintf(url, sizeof(url), "http://127.0.0.1:%u", origin_port);
        argv[n++] = "--origin";
        argv[n++] = url;
    }
    argv[n] = NULL;
    h_spawn(&c->p, argv);
    line = h_wait_for(&c->p, 2, "ready listen=", WAIT_MS);
    cr_assert_not_null(line, "fulcrum-cache did not start");
    cr_assert_not_null(strstr(line, "name=t1"), "ready line: %s", line);
    p = strstr(line, "listen=127.0.0.1:");
    cr_assert_not_null(p, "ready line: %s", line);
    c->port = (unsigned)strtoul(p + 17, NULL, 10);
    cr_assert_neq(c->port, 0);
}

static void cache_start(struct cache *c, unsigned origin_port, const char *docroot)
{
    cache_start_args(c, origin_port, docroot, NULL, NULL);
}

/* SIGTERM; it must exit 0 (under ASan: no leak either). */
static void cache_stop(struct cache *c)
{
    int st;

    h_signal(&c->p, SIGTERM);
    st = h_reap(&c->p, WAIT_MS);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fulcrum-cache exit status %d", st);
}

/* Sends a raw request (Connection: close expected in it); returns the
 * status, the response in buf. */
static int raw_http(unsigned port, const char *req, char *buf, size_t cap)
{
    int fd = be_connect(port), code = -1;
    ssize_t n;

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    n = be_read_all(fd, buf, cap - 1);
    if (n > 0) {
        buf[n] = 0;
        if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
            code = -1;
    }
    close(fd);
    return code;
}

/* The value of header `name` in a response (static copy), or NULL. */
static const char *hdr(const char *resp, const char *name)
{
    static char val[256];
    const char *end = strstr(resp, "\r\n\r\n"), *p = resp;
    size_t nl = strlen(name);

    while ((p = strstr(p, "\r\n")) && p < end) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e = strstr(v, "\r\n");

            while (*v == ' ')
                v++;
            snprintf(val, sizeof(val), "%.*s", (int)(e - v), v);
            return val;
        }
    }
    return NULL;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");

    return b ? b + 4 : "";
}

static char buf[1 << 16];

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
    cr_assert_geq(atoi(hdr(buf, "Age")), 1, "Age %s", hdr(buf, "Age"));
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
    int code;
    char resp[4096];
};

static void *par_get(void *arg)
{
    struct par *p = arg;

    p->code = be_http(p->port, "GET", "/slow/one", p->resp, sizeof(p->resp));
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

    origin_start(&o);
    cache_start(&c, o.port, NULL);
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    sleep(2); /* max-age=1: stale now, no stale-while-revalidate */
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "REVALIDATED from t1");
    cr_assert_str_eq(body_of(buf), "body:GET /reval");
    cr_assert_eq(atomic_load(&o.requests), 2);
    cr_assert_eq(atomic_load(&o.conditional), 1, "the revalidation was not conditional");
    cr_assert_eq(be_http(c.port, "GET", "/reval", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
    cr_assert_eq(atomic_load(&o.requests), 2);
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
    cr_assert_eq(be_http(c.port, "GET", "/swr", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
    cr_assert_eq(atomic_load(&o.requests), 2);
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
static bool tcp_accepting(unsigned port)
{
    int fd = be_connect(port);

    if (fd < 0)
        return false;
    close(fd);
    return true;
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
        cr_assert(!tcp_accepting(port), "C accepts HTTP before it synced");
        usleep(20 * 1000);
    }
    h_signal(&a.c.p, SIGCONT);
    node_wait_ready(&c, "nc");
    cr_assert_eq(c.c.port, port);
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
