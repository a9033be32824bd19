/* cache_fixture.c - the counting origin and the fulcrum-cache process of
 * the cache integration tests (see cache_fixture.h). */
#include "cache_fixture.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"

/* ---- the counting origin ---- */

struct origin_conn {
    struct origin *o;
    int fd;
};

/* Reads the rest of a request body of clen bytes (got of them already in
 * first) and hashes it. Returns 0, or -1 when the connection ended early. */
static int origin_read_body(int fd, const char *first, size_t got, size_t clen, char *hex)
{
    crypto_hash_sha256_state st;
    unsigned char md[crypto_hash_sha256_BYTES];
    char chunk[16384];

    crypto_hash_sha256_init(&st);
    if (got > clen)
        got = clen;
    crypto_hash_sha256_update(&st, (const unsigned char *)first, got);
    while (got < clen) {
        size_t want = clen - got < sizeof(chunk) ? clen - got : sizeof(chunk);
        ssize_t n = read(fd, chunk, want);

        if (n <= 0)
            return -1;
        crypto_hash_sha256_update(&st, (unsigned char *)chunk, (size_t)n);
        got += (size_t)n;
    }
    crypto_hash_sha256_final(&st, md);
    sodium_bin2hex(hex, SHA256_HEX, md, sizeof(md));
    return 0;
}

void large_fill(char *buf, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t z = ((off + i) >> 3) * 0x9E3779B97F4A7C15ull;

        z ^= z >> 29;
        z *= 0xBF58476D1CE4E5B9ull;
        z ^= z >> 32;
        buf[i] = (char)(z >> (((off + i) & 7) * 8));
    }
}

void large_sha256(char *out)
{
    crypto_hash_sha256_state st;
    unsigned char md[crypto_hash_sha256_BYTES];
    static char piece[1 << 16];

    crypto_hash_sha256_init(&st);
    for (size_t off = 0; off < LARGE_SIZE; off += sizeof(piece)) {
        large_fill(piece, off, sizeof(piece));
        crypto_hash_sha256_update(&st, (unsigned char *)piece, sizeof(piece));
    }
    crypto_hash_sha256_final(&st, md);
    sodium_bin2hex(out, SHA256_HEX, md, sizeof(md));
}

static bool send_all(struct origin *o, int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
        atomic_fetch_add(&o->large_sent, w);
    }
    return true;
}

/* The large answers (cache_fixture.h): 64 KiB pieces, cut when asked. */
static void origin_large(struct origin_conn *oc, const char *path)
{
    bool chunked = strstr(path, "large-chunked") || strstr(path, "large-cutchunk");
    size_t end = strstr(path, "large-cut") ? LARGE_CUT : LARGE_SIZE;
    char head[256], framing[64], line[16], *piece = malloc(1 << 16);
    int k;

    cr_assert_not_null(piece);
    if (chunked)
        snprintf(framing, sizeof(framing), "Transfer-Encoding: chunked");
    else
        snprintf(framing, sizeof(framing), "Content-Length: %u", LARGE_SIZE);
    k = snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: \"big1\"\r\n"
                 "%s\r\nConnection: close\r\n\r\n",
                 framing);
    if (!send_all(oc->o, oc->fd, head, (size_t)k))
        goto out_broken;
    for (size_t off = 0; off < end; off += 1 << 16) {
        large_fill(piece, off, 1 << 16);
        k = snprintf(line, sizeof(line), "10000\r\n");
        if ((chunked && !send_all(oc->o, oc->fd, line, (size_t)k)) ||
            !send_all(oc->o, oc->fd, piece, 1 << 16) ||
            (chunked && !send_all(oc->o, oc->fd, "\r\n", 2)))
            goto out_broken;
    }
    if (chunked && end == LARGE_SIZE && !send_all(oc->o, oc->fd, "0\r\n\r\n", 5))
        goto out_broken;
    atomic_fetch_add(&oc->o->large_done, 1);
    free(piece);
    return;

out_broken:
    atomic_fetch_add(&oc->o->large_broken, 1);
    free(piece);
}

static const char *origin_cc(const char *path)
{
    if (strncmp(path, "/nostore", 8) == 0)
        return "no-store";
    if (strncmp(path, "/swr", 4) == 0)
        return "max-age=2, stale-while-revalidate=30";
    if (strncmp(path, "/reval", 6) == 0)
        return "max-age=1";
    if (strncmp(path, "/sie", 4) == 0)
        return "max-age=1, stale-if-error=60";
    return "max-age=60";
}

/* Answers one request; false when the connection is to be closed unanswered. */
static bool origin_answer(struct origin_conn *oc, const char *req, const char *method,
                          const char *path, const char *bodyinfo)
{
    char resp[2048], body[1400];
    const char *cc = origin_cc(path);
    int fail = atomic_load(&oc->o->fail);

    if (fail == -1)
        return false;
    if (strstr(path, "large-") && fail == 0) {
        origin_large(oc, path);
        return true;
    }
    if (fail == 2)
        usleep(1000 * 1000);
    if (fail == 500 || fail == 2) {
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 14\r\n"
                 "Connection: close\r\n\r\norigin broken\n");
    } else if (strncmp(path, "/reval", 6) == 0 && strstr(req, "If-None-Match: \"e1\"")) {
        atomic_fetch_add(&oc->o->conditional, 1);
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 304 Not Modified\r\nCache-Control: %s\r\nETag: \"e1\"\r\n"
                 "Connection: close\r\n\r\n",
                 cc);
    } else {
        snprintf(body, sizeof(body), "body:%s %s%s", method, path, bodyinfo);
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 200 OK\r\nCache-Control: %s\r\nETag: \"e1\"\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s",
                 cc, strlen(body), body);
    }
    return write(oc->fd, resp, strlen(resp)) == (ssize_t)strlen(resp);
}

static void *origin_conn_run(void *arg)
{
    struct origin_conn *oc = arg;
    char req[8192] = "", method[16] = "", path[1024] = "", bodyinfo[128] = "";
    char hex[SHA256_HEX];
    const char *end, *cl;
    size_t len = 0;
    ssize_t n;

    while (len < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
        n = read(oc->fd, req + len, sizeof(req) - 1 - len);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        req[len] = 0;
    }
    end = strstr(req, "\r\n\r\n");
    if (!end || sscanf(req, "%15s %1023s", method, path) != 2)
        goto out;
    end += 4;
    cl = strcasestr(req, "\r\nContent-Length:");
    if (cl && cl < end && strtoul(cl + 17, NULL, 10) > 0) {
        size_t clen = strtoul(cl + 17, NULL, 10);

        if (origin_read_body(oc->fd, end, len - (size_t)(end - req), clen, hex))
            goto out;
        snprintf(bodyinfo, sizeof(bodyinfo), " len=%zu sha256=%s", clen, hex);
    }
    atomic_fetch_add(&oc->o->requests, 1);
    if (strncmp(path, "/slow", 5) == 0)
        usleep(500 * 1000);
    for (int i = 0; strncmp(path, "/hold", 5) == 0 && i < 60000; i++) {
        if (atomic_load(&oc->o->release))
            break;
        usleep(1000);
    }
    origin_answer(oc, req, method, path, bodyinfo);
    atomic_fetch_add(&oc->o->answered, 1);
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

void origin_start(struct origin *o)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    cr_assert_geq(sodium_init(), 0);
    atomic_init(&o->requests, 0);
    atomic_init(&o->conditional, 0);
    atomic_init(&o->fail, 0);
    atomic_init(&o->large_sent, 0);
    atomic_init(&o->large_done, 0);
    atomic_init(&o->large_broken, 0);
    atomic_init(&o->answered, 0);
    atomic_init(&o->release, false);
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

void cache_start_argv(struct cache *c, unsigned origin_port, const char *docroot,
                      const char *const *extra)
{
    char url[64];
    char *argv[32] = {CACHE_BIN, "--listen", "127.0.0.1:0", "--name", "t1"};
    const char *line, *p;
    int n = 5;

    for (size_t i = 0; extra && extra[i] && n < 28; i++)
        argv[n++] = (char *)extra[i];
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

void cache_start_args(struct cache *c, unsigned origin_port, const char *docroot,
                      const char *extra1, const char *extra2)
{
    const char *extra[] = {extra1, extra2, NULL};

    cache_start_argv(c, origin_port, docroot, extra1 ? extra : NULL);
}

void cache_start(struct cache *c, unsigned origin_port, const char *docroot)
{
    cache_start_argv(c, origin_port, docroot, NULL);
}

void cache_stop(struct cache *c)
{
    int st;

    h_signal(&c->p, SIGTERM);
    st = h_reap(&c->p, WAIT_MS);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fulcrum-cache exit status %d", st);
}

/* ---- requests ---- */

int raw_http_body(unsigned port, const char *req, const void *body, size_t blen, char *buf,
                  size_t cap)
{
    int fd = be_connect(port), code = -1;
    const char *b = body;
    ssize_t n;

    cr_assert_geq(fd, 0);
    cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    /* a refused body may be cut short: the answer is what counts */
    while (blen > 0 && (n = send(fd, b, blen, MSG_NOSIGNAL)) > 0) {
        b += n;
        blen -= (size_t)n;
    }
    n = be_read_all(fd, buf, cap - 1);
    if (n > 0) {
        buf[n] = 0;
        if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
            code = -1;
    }
    close(fd);
    return code;
}

int raw_http(unsigned port, const char *req, char *buf, size_t cap)
{
    return raw_http_body(port, req, NULL, 0, buf, cap);
}

const char *hdr(const char *resp, const char *name)
{
    static _Thread_local char val[256]; /* getter threads call it too */
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

const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");

    return b ? b + 4 : "";
}

void big_guard(int fd)
{
    struct timeval tv = {.tv_sec = 120};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

void sha256_hex(const void *data, size_t len, char *out)
{
    unsigned char md[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(md, data, len);
    sodium_bin2hex(out, SHA256_HEX, md, sizeof(md));
}

long long stat_of(unsigned port, const char *name)
{
    static char resp[4096];
    char key[64];
    const char *p;

    if (be_http(port, "GET", "/_fulcrum/stats", resp, sizeof(resp)) != 200)
        return -1;
    snprintf(key, sizeof(key), "\"%s\":", name);
    p = strstr(body_of(resp), key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}
