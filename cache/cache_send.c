/* cache_send.c - fulcrum-cache's header lines and answers: the stored
 * header blob, keys from a request, and the responses themselves with
 * X-Cache and Age (shared declarations in cache_int.h). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cache_int.h"
#include "clock.h"
#include "log.h"
#include "xalloc.h"

int64_t cache_wall(void)
{
    return (int64_t)time(NULL);
}

bool cache_hdr_is(const struct c9_hdr *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

unsigned cache_hash(const char *s, unsigned buckets)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % buckets;
}

/* Fields never stored nor forwarded as they are. */
bool cache_hop_by_hop(const struct c9_hdr *h)
{
    static const char *const hop[] = {
        "connection", "keep-alive",       "transfer-encoding", "te",  "trailer",
        "upgrade",    "proxy-connection", "content-length",    "age", "x-cache",
        NULL};

    for (size_t i = 0; hop[i]; i++)
        if (cache_hdr_is(h, hop[i]))
            return true;
    return false;
}

bool cache_conditional(const struct c9_hdr *h)
{
    return cache_hdr_is(h, "if-none-match") || cache_hdr_is(h, "if-modified-since") ||
           cache_hdr_is(h, "if-match") || cache_hdr_is(h, "if-unmodified-since") ||
           cache_hdr_is(h, "if-range") || cache_hdr_is(h, "expect");
}

/* Serializes the storable lines of h into a new blob. */
char *cache_blob(const struct c9_hdr *h, size_t n, size_t *len)
{
    size_t cap = 1, off = 0;
    char *b;

    for (size_t i = 0; i < n; i++)
        cap += h[i].name_len + h[i].value_len + 4;
    b = xmalloc(cap);
    for (size_t i = 0; i < n; i++) {
        if (cache_hop_by_hop(&h[i]))
            continue;
        memcpy(b + off, h[i].name, h[i].name_len);
        off += h[i].name_len;
        memcpy(b + off, ": ", 2);
        memcpy(b + off + 2, h[i].value, h[i].value_len);
        off += 2 + h[i].value_len;
        memcpy(b + off, "\r\n", 2);
        off += 2;
    }
    b[off] = 0;
    *len = off;
    return b;
}

/* Splits a blob back into lines pointing into it; at most cap. */
size_t cache_unblob(const unsigned char *blob, size_t len, struct c9_hdr *h, size_t cap)
{
    const char *p = (const char *)blob, *end = p + len;
    size_t n = 0;

    while (p < end && n < cap) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        const char *colon;

        if (!eol)
            eol = end;
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            h[n].name = p;
            h[n].name_len = (size_t)(colon - p);
            h[n].value = colon + 2 <= eol ? colon + 2 : eol;
            h[n].value_len = (size_t)(eol - h[n].value);
            n++;
        }
        p = eol + 2;
    }
    return n;
}

bool cache_loopback(const struct http_exchange *ex)
{
    return ntohl(http_exchange_peer(ex)->sin_addr.s_addr) == INADDR_LOOPBACK;
}

bool cache_purge_allowed(const struct cache *c, const struct http_exchange *ex)
{
    uint32_t a = ntohl(http_exchange_peer(ex)->sin_addr.s_addr);

    if (a == INADDR_LOOPBACK)
        return true;
    for (unsigned i = 0; i < c->n_purge_allow; i++)
        if ((a & c->purge_allow[i].mask) == c->purge_allow[i].net)
            return true;
    return false;
}

/* "host path?query" into a new string. */
char *cache_primary(const struct http_exchange *ex)
{
    const char *host = http_exchange_host(ex), *path = http_exchange_path(ex);
    const char *q = http_exchange_query(ex);
    size_t n = strlen(host) + strlen(path) + strlen(q) + 3;
    char *k = xmalloc(n);

    snprintf(k, n, "%s %s%s%s", host, path, *q ? "?" : "", q);
    return k;
}

char *cache_path_query(const struct http_exchange *ex)
{
    const char *path = http_exchange_path(ex), *q = http_exchange_query(ex);
    size_t n = strlen(path) + strlen(q) + 2;
    char *k = xmalloc(n);

    snprintf(k, n, "%s%s%s", path, *q ? "?" : "", q);
    return k;
}

/* ---- answering ---- */

/* The lines an answer carries: h[0..n) less hop-by-hop ones, X-Cache, and
 * Age when age >= 0, into out[CACHE_HDR_MAX + 2] (xc and agebuf hold the
 * values). Returns the count. */
static size_t cache_out_hdrs(const struct cache *c, const struct c9_hdr *h, size_t n,
                             const char *xcache, int64_t age, struct c9_hdr *out, char xc[320],
                             char agebuf[24])
{
    size_t k = 0;

    for (size_t i = 0; i < n && k < CACHE_HDR_MAX; i++)
        if (!cache_hop_by_hop(&h[i]))
            out[k++] = h[i];
    snprintf(xc, 320, "%s from %s", xcache, c->name);
    out[k++] = (struct c9_hdr){"X-Cache", 7, xc, strlen(xc)};
    if (age >= 0) {
        snprintf(agebuf, 24, "%" PRId64, age);
        out[k++] = (struct c9_hdr){"Age", 3, agebuf, strlen(agebuf)};
    }
    return k;
}

void cache_send(struct cache *c, struct http_exchange *ex, int status, const struct c9_hdr *h,
                size_t n, const void *body, size_t len, const char *xcache, int64_t age)
{
    struct c9_hdr out[CACHE_HDR_MAX + 2];
    char xc[320], agebuf[24];
    size_t k = cache_out_hdrs(c, h, n, xcache, age, out, xc, agebuf);

    http_respond(ex, status, out, k, body, len);
}

int cache_send_start(struct cache *c, struct http_exchange *ex, int status, const struct c9_hdr *h,
                     size_t n, int64_t content_length, const char *xcache)
{
    struct c9_hdr out[CACHE_HDR_MAX + 2];
    char xc[320], agebuf[24];
    size_t k = cache_out_hdrs(c, h, n, xcache, -1, out, xc, agebuf);

    return http_respond_start(ex, status, out, k, content_length);
}

void cache_send_text(struct cache *c, struct http_exchange *ex, int status, const char *ctype,
                     const char *text, const char *xcache)
{
    struct c9_hdr h = {"Content-Type", 12, ctype, strlen(ctype)};

    cache_send(c, ex, status, &h, 1, text, strlen(text), xcache, -1);
}

/* The age basis plus the time resident here, measured on one clock in ms
 * (a difference of whole seconds would age an object a second early). */
int64_t cache_obj_age(const struct cstore_obj *o, uint64_t now_ms)
{
    uint64_t resident = now_ms > o->stored_at ? now_ms - o->stored_at : 0;

    return c9_age_from_basis(o->age_basis, 0, (int64_t)(resident / 1000));
}

/* Answers ex from a stored object: 304 when the request's conditions say
 * so. RELEASES ex. */
void cache_send_obj(struct cache *c, struct http_exchange *ex, const struct cstore_obj *o,
                    const char *xcache)
{
    struct c9_hdr h[CACHE_HDR_MAX];
    size_t n = cache_unblob(o->headers, o->headers_len, h, CACHE_HDR_MAX), nreq;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    const struct c9_hdr *lm = c9_hdr_get(h, n, "Last-Modified");
    int64_t lmt = o->date, now = cache_wall(), age = cache_obj_age(o, clock_mono_ms());
    enum http_req_method m = http_exchange_method_id(ex);

    if (lm && c9_parse_http_date(lm->value, lm->value_len, now, &lmt))
        lmt = o->date;
    if ((m == HTTP_REQ_GET || m == HTTP_REQ_HEAD) && o->status == 200 &&
        c9_not_modified(req, nreq, *o->etag ? o->etag : NULL, lmt, now)) {
        cache_send(c, ex, 304, h, n, NULL, 0, xcache, age);
        return;
    }
    cache_send(c, ex, o->status, h, n, o->body, o->body_len, xcache, age);
}

/* ---- logging ---- */

void cache_origin_warn(struct cache *c, const char *method, const char *path,
                       const struct origin_result *res)
{
    unsigned sup;

    if (!log_rl_allow(&c->rl_origin, clock_mono_ms(), &sup))
        return;
    if (res->error)
        log_warn("origin: %s %s failed: %s (%u suppressed)", method, path, strerror(-res->error),
                 sup);
    else
        log_warn("origin: %s %s answered %d (%u suppressed)", method, path, res->status, sup);
}
