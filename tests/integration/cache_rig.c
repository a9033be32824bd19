/* cache_rig.c - counting origin, fulcrum-cache nodes, a blocking HTTP
 * client and stats readers for the replication tests (cache_rig.h). */
#include "cache_rig.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"

#define RIG_BIN      FULCRUM_BINARY_DIR "/cache/fulcrum-cache"
#define RIG_RESP_MAX (RIG_BIG + 65536)

/* ---- the origin ------------------------------------------------------ */

struct rig_conn {
    struct rig_origin *o;
    int fd;
};

static uint32_t rig_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The origin's body for path into a new buffer (*len its size), or NULL
 * when out of memory. No assert: client and origin threads call it. */
static char *rig_body_new(const char *path, size_t *len)
{
    uint32_t h = rig_hash(path);
    char *b;

    if (strncmp(path, "/big/", 5) != 0) {
        size_t n = strlen(path) + 16;

        b = malloc(n);
        if (!b)
            return NULL;
        *len = (size_t)snprintf(b, n, "body:GET %s", path);
        return b;
    }
    b = malloc(RIG_BIG);
    if (!b)
        return NULL;
    for (size_t i = 0; i < RIG_BIG; i++)
        b[i] = (char)('a' + (h + i * 7 + (i >> 12)) % 26);
    *len = RIG_BIG;
    return b;
}

bool rig_body_ok(const char *path, const char *body, size_t len)
{
    size_t n;
    char *want = rig_body_new(path, &n);
    bool ok = want && n == len && memcmp(want, body, n) == 0;

    free(want);
    return ok;
}

static bool rig_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void *rig_conn_run(void *arg)
{
    struct rig_conn *rc = arg;
    char req[8192] = "", method[16], path[1024], head[512];
    size_t len = 0, blen;
    char *body;

    while (len < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t n = read(rc->fd, req + len, sizeof(req) - 1 - len);

        if (n <= 0)
            goto out;
        len += (size_t)n;
        req[len] = '\0';
    }
    if (sscanf(req, "%15s %1023s", method, path) != 2)
        goto out;
    atomic_fetch_add(&rc->o->requests, 1);
    body = rig_body_new(path, &blen);
    if (!body)
        goto out;
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\nETag: \"%08x\"\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             rig_hash(path), blen);
    if (rig_write_all(rc->fd, head, strlen(head)))
        rig_write_all(rc->fd, body, blen);
    free(body);
out:
    close(rc->fd);
    free(rc);
    return NULL;
}

static void *rig_origin_run(void *arg)
{
    struct rig_origin *o = arg;

    for (;;) {
        int fd = accept(o->lfd, NULL, NULL);
        struct rig_conn *rc;
        pthread_t t;

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        rc = malloc(sizeof(*rc));
        cr_assert_not_null(rc);
        rc->o = o;
        rc->fd = fd;
        cr_assert_eq(pthread_create(&t, NULL, rig_conn_run, rc), 0);
        pthread_detach(t);
    }
}

void rig_origin_start(struct rig_origin *o)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    atomic_init(&o->requests, 0);
    o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(o->lfd, -1);
    cr_assert_eq(bind(o->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(o->lfd, 256), 0);
    cr_assert_eq(getsockname(o->lfd, (struct sockaddr *)&a, &alen), 0);
    o->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&o->thr, NULL, rig_origin_run, o), 0);
    pthread_detach(o->thr);
}

int rig_origin_requests(struct rig_origin *o)
{
    return atomic_load(&o->requests);
}

/* ---- nodes ----------------------------------------------------------- */

void rig_node_spawn(struct rig_node *nd, const struct rig_origin *o, const char *keydir,
                    const char *name, const unsigned *peers, size_t n)
{
    size_t k = 0;

    cr_assert_leq(n, RIG_PEERS_MAX);
    memset(nd, 0, sizeof(*nd));
    snprintf(nd->name, sizeof(nd->name), "%s", name);
    snprintf(nd->s_origin, sizeof(nd->s_origin), "http://127.0.0.1:%u", o->port);
    snprintf(nd->s_key, sizeof(nd->s_key), "%s/key", keydir);
    nd->argv[k++] = RIG_BIN;
    nd->argv[k++] = "--listen";
    nd->argv[k++] = "127.0.0.1:0";
    nd->argv[k++] = "--name";
    nd->argv[k++] = nd->name;
    nd->argv[k++] = "--origin";
    nd->argv[k++] = nd->s_origin;
    nd->argv[k++] = "--key";
    nd->argv[k++] = nd->s_key;
    nd->argv[k++] = "--peer-listen";
    nd->argv[k++] = "127.0.0.1:0";
    for (size_t i = 0; i < n; i++) {
        snprintf(nd->s_peers[i], sizeof(nd->s_peers[i]), "127.0.0.1:%u", peers[i]);
        nd->argv[k++] = "--peer";
        nd->argv[k++] = nd->s_peers[i];
    }
    nd->argv[k] = NULL;
    h_spawn(&nd->p, nd->argv);
}

void rig_node_wait_ready(struct rig_node *nd)
{
    char want[32];
    const char *line, *p;

    line = h_wait_for(&nd->p, 2, "ready listen=", RIG_WAIT_MS);
    cr_assert_not_null(line, "fulcrum-cache %s did not get ready", nd->name);
    snprintf(want, sizeof(want), "name=%s ", nd->name);
    cr_assert_not_null(strstr(line, want), "ready line: %s", line);
    p = strstr(line, "listen=127.0.0.1:");
    cr_assert_not_null(p, "ready line: %s", line);
    nd->port = (unsigned)strtoul(p + 17, NULL, 10);
    p = strstr(line, "peer_listen=127.0.0.1:");
    cr_assert_not_null(p, "ready line: %s", line);
    nd->peer_port = (unsigned)strtoul(p + 22, NULL, 10);
    cr_assert(nd->port && nd->peer_port, "ready line: %s", line);
}

void rig_node_start(struct rig_node *nd, const struct rig_origin *o, const char *keydir,
                    const char *name, const unsigned *peers, size_t n)
{
    rig_node_spawn(nd, o, keydir, name, peers, n);
    rig_node_wait_ready(nd);
}

void rig_node_kill(struct rig_node *nd)
{
    h_signal(&nd->p, SIGKILL);
    h_reap(&nd->p, RIG_WAIT_MS);
    h_close(&nd->p);
    nd->port = nd->peer_port = 0;
}

void rig_node_respawn(struct rig_node *nd)
{
    h_spawn(&nd->p, nd->argv);
}

void rig_node_stop(struct rig_node *nd)
{
    int st;

    h_signal(&nd->p, SIGTERM);
    st = h_reap(&nd->p, RIG_WAIT_MS);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fulcrum-cache %s exit status %d", nd->name,
              st);
    h_close(&nd->p);
}

void rig_keys_remove(const char *dir)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/key", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/otherkey", dir);
    unlink(path);
    rmdir(dir);
}

/* ---- client ---------------------------------------------------------- */

int rig_request(unsigned port, const char *method, const char *path, bool only_cached,
                struct rig_resp *r)
{
    struct timeval guard = {.tv_sec = RIG_WAIT_MS / 1000};
    char req[1280];
    const char *end;
    int fd, n;

    memset(r, 0, sizeof(*r));
    r->code = -1;
    r->body = "";
    n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\n%sConnection: close\r\n\r\n",
                 method, path, only_cached ? "Cache-Control: only-if-cached\r\n" : "");
    fd = be_connect(port);
    if (fd < 0)
        return -1;
    r->raw = malloc(RIG_RESP_MAX + 1);
    if (!r->raw) { /* no assert: fetcher threads call this */
        close(fd);
        return -1;
    }
    /* a hang guard for an ASan build on a loaded box, not a timing check */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard));
    if (write(fd, req, (size_t)n) == n) {
        ssize_t got = be_read_all(fd, r->raw, RIG_RESP_MAX);

        r->len = got > 0 ? (size_t)got : 0;
    }
    close(fd);
    r->raw[r->len] = '\0';
    end = strstr(r->raw, "\r\n\r\n");
    if (!end || sscanf(r->raw, "HTTP/1.%*d %d", &r->code) != 1)
        return r->code = -1;
    r->body = end + 4;
    r->body_len = r->len - (size_t)(r->body - r->raw);
    return r->code;
}

void rig_resp_free(struct rig_resp *r)
{
    free(r->raw);
    r->raw = NULL;
}

const char *rig_hdr(const struct rig_resp *r, const char *name)
{
    static _Thread_local char val[256];
    const char *p = r->raw, *end = r->raw ? strstr(r->raw, "\r\n\r\n") : NULL;
    size_t nl = strlen(name);

    val[0] = '\0';
    while (end && (p = strstr(p, "\r\n")) && p < end) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e = strstr(v, "\r\n");

            while (*v == ' ')
                v++;
            snprintf(val, sizeof(val), "%.*s", (int)(e - v), v);
            break;
        }
    }
    return val;
}

uint64_t rig_stat(unsigned port, const char *name)
{
    struct rig_resp r;
    char key[64];
    const char *p;
    uint64_t v;

    cr_assert_eq(rig_request(port, "GET", "/_fulcrum/stats", false, &r), 200);
    snprintf(key, sizeof(key), "\"%s\":", name);
    p = strstr(r.body, key);
    cr_assert_not_null(p, "no %s in %s", name, r.body);
    v = strtoull(p + strlen(key), NULL, 10);
    rig_resp_free(&r);
    return v;
}

uint64_t rig_wait_stat(unsigned port, const char *name, uint64_t want, int timeout_ms)
{
    uint64_t v = rig_stat(port, name);

    for (int waited = 0; v != want && waited < timeout_ms; waited += 20) {
        usleep(20 * 1000);
        v = rig_stat(port, name);
    }
    return v;
}

bool rig_is_hit(unsigned port, const char *name, const char *path)
{
    struct rig_resp r;
    char want[64];
    bool ok;

    snprintf(want, sizeof(want), "HIT from %s", name);
    ok = rig_request(port, "GET", path, true, &r) == 200 &&
         strcmp(rig_hdr(&r, "X-Cache"), want) == 0 && rig_body_ok(path, r.body, r.body_len);
    rig_resp_free(&r);
    return ok;
}
