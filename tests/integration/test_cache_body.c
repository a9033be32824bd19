/* test_cache_body.c - the real fulcrum-cache with large bodies: request
 * bodies forwarded to the origin (Content-Length and chunked, byte-exact by
 * SHA-256, invalidating the cached GET), the --max-request-body cap (413),
 * and a docroot file over --max-object streamed to the client without being
 * held in memory (byte-exact, and the process's peak RSS barely moves).
 *
 * The origin (cache_fixture.h) hashes each request body it reads and says
 * "len=<n> sha256=<hex>" in its answer.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "cache_fixture.h"
#include "harness.h"

static char buf[1 << 16];

/* len bytes of deterministic noise (a small LCG). */
static char *noise(size_t len, unsigned seed)
{
    char *p = malloc(len);

    cr_assert_not_null(p);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (char)(seed >> 16);
    }
    return p;
}

/* The origin's answer for a body it read: "body:M P len=N sha256=H". */
static void want_body(char *out, size_t cap, const char *mp, const void *body, size_t len)
{
    char hex[SHA256_HEX];

    sha256_hex(body, len, hex);
    snprintf(out, cap, "body:%s len=%zu sha256=%s", mp, len, hex);
}

/* body as a chunked message: pieces of 1000, 7000, 30000, ... bytes. */
static char *chunked(const char *body, size_t len, size_t *outlen)
{
    static const size_t sizes[] = {1000, 7000, 30000, 65536};
    size_t cap = len + len / 100 + 64, off = 0;
    char *p = malloc(cap), *q = p;

    cr_assert_not_null(p);
    for (size_t i = 0; off < len; i++) {
        size_t n = sizes[i % 4] < len - off ? sizes[i % 4] : len - off;

        q += snprintf(q, cap - (size_t)(q - p), "%zx\r\n", n);
        memcpy(q, body + off, n);
        q += n;
        memcpy(q, "\r\n", 2);
        q += 2;
        off += n;
    }
    memcpy(q, "0\r\n\r\n", 5);
    *outlen = (size_t)(q + 5 - p);
    return p;
}

Test(body, post_and_chunked_put_reach_origin_and_invalidate, .timeout = 60)
{
    const size_t len = 100 * 1000;
    char *body = noise(len, 1), *put = noise(70000, 2), *enc, want[256], head[256];
    const char *extra[] = {"--max-request-body", "128K", NULL};
    struct origin o;
    struct cache c;
    size_t enclen;

    origin_start(&o);
    cache_start_argv(&c, o.port, NULL, extra);
    cr_assert_eq(be_http(c.port, "GET", "/doc", buf, sizeof(buf)), 200);
    cr_assert_eq(be_http(c.port, "GET", "/doc", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "HIT from t1");
    /* Content-Length: every byte reaches the origin, and the GET is gone */
    snprintf(head, sizeof(head),
             "POST /doc HTTP/1.1\r\nHost: test\r\nContent-Length: %zu\r\n"
             "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
             len);
    cr_assert_eq(raw_http_body(c.port, head, body, len, buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "PASS from t1");
    want_body(want, sizeof(want), "POST /doc", body, len);
    cr_assert_str_eq(body_of(buf), want);
    cr_assert_eq(atomic_load(&o.requests), 2);
    cr_assert_eq(be_http(c.port, "GET", "/doc", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_eq(atomic_load(&o.requests), 3);
    /* chunked: reassembled and sent on with a Content-Length */
    enc = chunked(put, 70000, &enclen);
    cr_assert_eq(raw_http_body(c.port,
                               "PUT /doc HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                               "Connection: close\r\n\r\n",
                               enc, enclen, buf, sizeof(buf)),
                 200);
    want_body(want, sizeof(want), "PUT /doc", put, 70000);
    cr_assert_str_eq(body_of(buf), want);
    cr_assert_eq(be_http(c.port, "GET", "/doc", buf, sizeof(buf)), 200);
    cr_assert_str_eq(hdr(buf, "X-Cache"), "MISS from t1");
    cr_assert_eq(atomic_load(&o.requests), 5);
    cr_assert_eq(stat_of(c.port, "request_body_bytes"), (long long)(len + 70000));
    cache_stop(&c);
    free(body);
    free(put);
    free(enc);
}

Test(body, over_the_cap_is_413, .timeout = 60)
{
    const size_t mib = 1 << 20;
    char *body = noise(mib + 1, 3), *enc, want[256], head[256];
    const char *extra[] = {"--max-request-body", "128K", NULL};
    struct origin o;
    struct cache c, d;
    size_t enclen;

    origin_start(&o);
    cache_start_argv(&c, o.port, NULL, extra);
    snprintf(head, sizeof(head),
             "POST /up HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
             128 * 1024 + 1);
    cr_assert_eq(raw_http_body(c.port, head, body, 128 * 1024 + 1, buf, sizeof(buf)), 413);
    enc = chunked(body, 200 * 1000, &enclen);
    cr_assert_eq(raw_http_body(c.port,
                               "POST /up HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                               "Connection: close\r\n\r\n",
                               enc, enclen, buf, sizeof(buf)),
                 413);
    /* exactly the cap passes */
    snprintf(head, sizeof(head),
             "POST /up HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
             128 * 1024);
    cr_assert_eq(raw_http_body(c.port, head, body, 128 * 1024, buf, sizeof(buf)), 200);
    cr_assert_eq(atomic_load(&o.requests), 1, "a refused body reached the origin");
    cache_stop(&c);
    /* the default cap is 1 MiB */
    cache_start(&d, o.port, NULL);
    snprintf(head, sizeof(head),
             "POST /up HTTP/1.1\r\nHost: test\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             mib + 1);
    cr_assert_eq(raw_http_body(d.port, head, body, mib + 1, buf, sizeof(buf)), 413);
    snprintf(head, sizeof(head),
             "POST /up HTTP/1.1\r\nHost: test\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             mib);
    cr_assert_eq(raw_http_body(d.port, head, body, mib, buf, sizeof(buf)), 200);
    want_body(want, sizeof(want), "POST /up", body, mib);
    cr_assert_str_eq(body_of(buf), want);
    cr_assert_eq(atomic_load(&o.requests), 2);
    cache_stop(&d);
    free(body);
    free(enc);
}

/* Peak resident memory of process pid, KiB (VmHWM). */
static long peak_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* One GET or HEAD with Connection: close; the whole response into a new
 * buffer (*len bytes). Returns the status. */
static int fetch_big(unsigned port, const char *req, char **resp, size_t *len)
{
    const size_t cap = 24 << 20;
    int fd = be_connect(port), code = -1;
    ssize_t n;

    *resp = malloc(cap + 1);
    cr_assert_not_null(*resp);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    n = be_read_all(fd, *resp, cap);
    close(fd);
    cr_assert_gt(n, 0);
    (*resp)[n] = 0;
    *len = (size_t)n;
    cr_assert_eq(sscanf(*resp, "HTTP/1.1 %d", &code), 1);
    return code;
}

Test(body, docroot_file_over_max_object_is_streamed, .timeout = 120)
{
    const size_t size = 20 << 20;
    char dir[] = "/tmp/fulcrum-big-XXXXXX", path[128], req[256], etag[128];
    char *file = noise(size, 4), *resp, *b, want[SHA256_HEX], got[SHA256_HEX];
    const char *extra[] = {"--max-object", "1M", NULL};
    struct cache c;
    size_t len;
    long before, after;
    int fd;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/big.bin", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, file, size), (ssize_t)size);
    close(fd);
    sha256_hex(file, size, want);
    cache_start_argv(&c, 0, dir, extra);
    before = peak_kib(c.p.pid);
    cr_assert_eq(fetch_big(c.port,
                           "GET /big.bin HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
                           &resp, &len),
                 200);
    after = peak_kib(c.p.pid);
    cr_assert_str_eq(hdr(resp, "X-Cache"), "PASS from t1");
    cr_assert_str_eq(hdr(resp, "Content-Length"), "20971520");
    b = strstr(resp, "\r\n\r\n") + 4;
    cr_assert_eq(len - (size_t)(b - resp), size, "body of %zu bytes", len - (size_t)(b - resp));
    sha256_hex(b, size, got);
    cr_assert_str_eq(got, want);
    /* the file was never held whole: the peak grew by far less than it */
    cr_assert_lt(after - before, 8 * 1024, "peak RSS grew by %ld KiB", after - before);
    snprintf(etag, sizeof(etag), "%s", hdr(resp, "ETag"));
    free(resp);
    /* HEAD: the GET's head, no body */
    cr_assert_eq(fetch_big(c.port,
                           "HEAD /big.bin HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
                           &resp, &len),
                 200);
    cr_assert_str_eq(hdr(resp, "Content-Length"), "20971520");
    cr_assert_str_eq(body_of(resp), "");
    free(resp);
    /* its validators still answer 304 */
    snprintf(
        req, sizeof(req),
        "GET /big.bin HTTP/1.1\r\nHost: test\r\nIf-None-Match: %s\r\nConnection: close\r\n\r\n",
        etag);
    cr_assert_eq(raw_http(c.port, req, buf, sizeof(buf)), 304);
    cr_assert_eq(stat_of(c.port, "streamed"), 2);
    cr_assert_eq(stat_of(c.port, "stored"), 0);
    /* a client that leaves mid-file: the stream ends (counted), nothing
     * leaks (cache_stop checks the exit status, LeakSanitizer's under ASan) */
    fd = be_connect(c.port);
    cr_assert_geq(fd, 0);
    snprintf(req, sizeof(req), "GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n");
    cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    cr_assert_gt(read(fd, buf, sizeof(buf)), 0);
    close(fd);
    for (int i = 0; i < 500 && stat_of(c.port, "stream_errors") < 1; i++)
        usleep(10 * 1000);
    cr_assert_eq(stat_of(c.port, "stream_errors"), 1);
    cr_assert_eq(stat_of(c.port, "streamed"), 3);
    cache_stop(&c);
    unlink(path);
    rmdir(dir);
    free(file);
}
