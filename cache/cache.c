/* cache.c - fulcrum-cache's request logic (contract in cache.h).
 *
 * Design notes.
 * - Keys. The primary key is "host path?query" whatever the method, so a
 *   HEAD finds the GET entry and an unsafe method invalidates it. Misses
 *   always fetch GET (a HEAD miss too), so what comes back can be stored.
 * - Flights. A fetch in progress is a struct cache_flight in a small hash
 *   table keyed by the primary key (misses) or "R" + primary + secondary
 *   (revalidations). A request finding a flight joins it as a waiter with
 *   its own timer (timeout_coalesce, then 504); the request that started the
 *   flight is a waiter too, so an aborted client never stops the fetch. The
 *   result is kept as a stored object (a reference) or, when not stored, as
 *   a copy, and answers every waiter; a waiter whose Vary key differs from
 *   the one the result was stored under starts over (lookup, then maybe a
 *   flight of its own).
 * - Stored headers are a blob of "Name: value\r\n" lines without the
 *   hop-by-hop fields, Content-Length and Age, parsed back on each answer.
 * - Stale objects are kept past their freshness (stale_until) for
 *   stale-while-revalidate and, when they carry a validator, for
 *   conditional revalidation: up to CACHE_KEEP_STALE s.
 */
#include "cache.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "docroot.h"
#include "http.h"
#include "key.h"
#include "log.h"
#include "net.h"
#include "origin.h"
#include "peer.h"
#include "rfc9111.h"
#include "store.h"
#include "xalloc.h"

#define CACHE_FLIGHT_BUCKETS 1024
#define CACHE_KEEP_STALE     600 /* s a validatable stale object is kept */
#define CACHE_HDR_MAX        128 /* header lines of one answer */
#define CACHE_SWEEP_BATCH    1000
#define CACHE_SYNC_POLL      0.02 /* s between peer_synced checks before listening */

#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

struct cache_counters {
    uint64_t hits, misses, stale, coalesced, passed, stored, purged, origin_errors;
    uint64_t revalidated; /* 304s from the origin that refreshed an entry */
};

struct cache_flight;

/* A request waiting for a flight's result. */
struct cache_waiter {
    struct http_exchange *ex;
    struct cache_flight *f;
    struct cache_waiter *next;
    ev_timer timer;
    struct cache *c;
};

/* The answer a flight produced. */
enum cache_res_kind {
    CACHE_RES_NONE,  /* still fetching */
    CACHE_RES_OBJ,   /* stored (or refreshed): obj */
    CACHE_RES_COPY,  /* not stored: status, hdrs, body copied */
    CACHE_RES_ERROR, /* the origin failed: status 502 or 504 */
    CACHE_RES_KIND_MAX
};

struct cache_flight {
    struct cache *c;
    char *fkey;    /* hash key */
    char *primary; /* store key */
    char *path;    /* path?query sent to the origin */
    struct cache_flight *next;
    struct cache_waiter *waiters;
    struct origin_fetch *fetch;
    const struct cstore_obj *stale; /* revalidation: the object asked about */
    bool background;                /* stale-while-revalidate: nobody waits */
    bool refreshed;                 /* the origin answered 304: stale renewed */
    /* the leader's request headers (copied), for storability and Vary */
    struct c9_hdr *req;
    size_t nreq;
    char *reqbuf;
    /* result */
    enum cache_res_kind kind;
    const struct cstore_obj *obj;
    int status;
    char *hblob;
    size_t hlen;
    char *body;
    size_t blen;
};

struct cache {
    struct ev_loop *loop;
    struct http_server *srv;
    struct origin *origin;
    struct docroot *docroot;
    struct cstore *store;
    ev_timer sweep;
    char name[256];
    struct sockaddr_in addr; /* as parsed from --listen; the port is the bound one */
    size_t max_object;
    int64_t default_ttl;
    double timeout_coalesce;
    struct cache_flight *flights[CACHE_FLIGHT_BUCKETS];
    struct cache_unsafe *unsafe; /* unsafe requests at the origin */
    struct cache_counters ctr;
    /* replication: peers NULL when off */
    struct key_ring kr;
    struct peer_set *peers;
    struct sockaddr_in peer_addr; /* as parsed from --peer-listen */
    struct http_limits hl;        /* for the deferred listener */
    ev_timer sync_poll;           /* until peer_synced, then the listener */
    void (*ready_cb)(struct cache *c, bool ok, void *arg);
    void *ready_arg;
};

static void cache_handle(struct cache *c, struct http_exchange *ex);

/* ---- small helpers ---- */

int cache_parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v, mul = 1;

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    switch (toupper((unsigned char)*end)) {
    case 0:
        break;
    case 'K':
        mul = 1ull << 10;
        break;
    case 'M':
        mul = 1ull << 20;
        break;
    case 'G':
        mul = 1ull << 30;
        break;
    default:
        return -EINVAL;
    }
    if (*end && end[1] && !(toupper((unsigned char)end[1]) == 'B' && !end[2]) &&
        !(toupper((unsigned char)end[1]) == 'I' && toupper((unsigned char)end[2]) == 'B' &&
          !end[3]))
        return -EINVAL;
    if (v == 0 || v > SIZE_MAX / mul)
        return -EINVAL;
    *out = (size_t)(v * mul);
    return 0;
}

static int64_t cache_wall(void)
{
    return (int64_t)time(NULL);
}

static bool cache_hdr_is(const struct c9_hdr *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Fields never stored nor forwarded as they are. */
static bool cache_hop_by_hop(const struct c9_hdr *h)
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

static bool cache_conditional(const struct c9_hdr *h)
{
    return cache_hdr_is(h, "if-none-match") || cache_hdr_is(h, "if-modified-since") ||
           cache_hdr_is(h, "if-match") || cache_hdr_is(h, "if-unmodified-since") ||
           cache_hdr_is(h, "if-range") || cache_hdr_is(h, "expect");
}

/* Serializes the storable lines of h into a new blob. */
static char *cache_blob(const struct c9_hdr *h, size_t n, size_t *len)
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
static size_t cache_unblob(const unsigned char *blob, size_t len, struct c9_hdr *h, size_t cap)
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

static const char *cache_peer_ip(const struct http_exchange *ex, char *buf)
{
    net_ntop(http_exchange_peer(ex), buf);
    return buf;
}

static bool cache_loopback(const struct http_exchange *ex)
{
    return ntohl(http_exchange_peer(ex)->sin_addr.s_addr) == INADDR_LOOPBACK;
}

/* "host path?query" into a new string. */
static char *cache_primary(const struct http_exchange *ex)
{
    const char *host = http_exchange_host(ex), *path = http_exchange_path(ex);
    const char *q = http_exchange_query(ex);
    size_t n = strlen(host) + strlen(path) + strlen(q) + 3;
    char *k = xmalloc(n);

    snprintf(k, n, "%s %s%s%s", host, path, *q ? "?" : "", q);
    return k;
}

static char *cache_path_query(const struct http_exchange *ex)
{
    const char *path = http_exchange_path(ex), *q = http_exchange_query(ex);
    size_t n = strlen(path) + strlen(q) + 2;
    char *k = xmalloc(n);

    snprintf(k, n, "%s%s%s", path, *q ? "?" : "", q);
    return k;
}

/* ---- answering ---- */

/* Answers ex with status, the lines h[0..n) and X-Cache / Age. RELEASES ex. */
static void cache_send(struct cache *c, struct http_exchange *ex, int status,
                       const struct c9_hdr *h, size_t n, const void *body, size_t len,
                       const char *xcache, int64_t age)
{
    struct c9_hdr out[CACHE_HDR_MAX + 2];
    char xc[320], agebuf[24];
    size_t k = 0;

    for (size_t i = 0; i < n && k < CACHE_HDR_MAX; i++)
        if (!cache_hop_by_hop(&h[i]))
            out[k++] = h[i];
    snprintf(xc, sizeof(xc), "%s from %s", xcache, c->name);
    out[k++] = (struct c9_hdr){"X-Cache", 7, xc, strlen(xc)};
    if (age >= 0) {
        snprintf(agebuf, sizeof(agebuf), "%" PRId64, age);
        out[k++] = (struct c9_hdr){"Age", 3, agebuf, strlen(agebuf)};
    }
    http_respond(ex, status, out, k, body, len);
}

static void cache_send_text(struct cache *c, struct http_exchange *ex, int status,
                            const char *ctype, const char *text, const char *xcache)
{
    struct c9_hdr h = {"Content-Type", 12, ctype, strlen(ctype)};

    cache_send(c, ex, status, &h, 1, text, strlen(text), xcache, -1);
}

/* The age basis plus the time resident here, measured on one clock in ms
 * (a difference of whole seconds would age an object a second early). */
static int64_t cache_obj_age(const struct cstore_obj *o, uint64_t now_ms)
{
    uint64_t resident = now_ms > o->stored_at ? now_ms - o->stored_at : 0;

    return c9_age_from_basis(o->age_basis, 0, (int64_t)(resident / 1000));
}

/* Answers ex from a stored object: 304 when the request's conditions say
 * so. RELEASES ex. */
static void cache_send_obj(struct cache *c, struct http_exchange *ex, const struct cstore_obj *o,
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

/* ---- the store ---- */

struct cache_find {
    const struct c9_hdr *req;
    size_t nreq;
    char *secondary; /* CSTORE_KEY_MAX + 1 */
    bool found;
};

static int cache_find_variant(const struct cstore_obj *o, void *arg)
{
    struct cache_find *cf = arg;
    struct c9_hdr vary = {"Vary", 4, o->vary, strlen(o->vary)};
    int r =
        c9_vary_key(&vary, *o->vary ? 1 : 0, cf->req, cf->nreq, cf->secondary, CSTORE_KEY_MAX + 1);

    if (r >= 0 && strcmp(cf->secondary, o->secondary) == 0) {
        cf->found = true;
        return 1;
    }
    return 0;
}

/* The variant of primary matching the request, referenced, or NULL. */
static const struct cstore_obj *cache_lookup(struct cache *c, const char *primary,
                                             const struct c9_hdr *req, size_t nreq)
{
    static char secondary[CSTORE_KEY_MAX + 1];
    struct cache_find cf = {req, nreq, secondary, false};
    uint64_t now = clock_mono_ms();

    cstore_variants(c->store, primary, now, cache_find_variant, &cf);
    if (!cf.found)
        return NULL;
    return cstore_get(c->store, primary, secondary, now);
}

/* Stores a 200-class response fetched for flight f. Returns the stored
 * object referenced, or NULL when it may not or did not fit. */
static const struct cstore_obj *cache_store(struct cache *c, struct cache_flight *f,
                                            const struct origin_result *res, const char *hblob,
                                            size_t hlen)
{
    static char secondary[CSTORE_KEY_MAX + 1], vary[CSTORE_KEY_MAX + 1];
    bool heur = false;
    enum c9_store_verdict v =
        c9_storable("GET", res->status, f->req, f->nreq, res->hdrs, res->nhdrs, &heur);
    const struct c9_hdr *etag = c9_hdr_get(res->hdrs, res->nhdrs, "ETag");
    const struct c9_hdr *lm = c9_hdr_get(res->hdrs, res->nhdrs, "Last-Modified");
    char etagbuf[CSTORE_ETAG_MAX + 1] = "";
    struct cstore_item it = {0};
    struct c9_cc cc;
    const struct cstore_obj *out = NULL;
    int64_t life, keep, date, basis;
    uint64_t now = clock_mono_ms();

    if (v != C9_STORE_OK) {
        log_debug("not storing %s: %s", f->primary, c9_verdict_name(v));
        return NULL;
    }
    if (c9_vary_key(res->hdrs, res->nhdrs, f->req, f->nreq, secondary, sizeof(secondary)) < 0 ||
        c9_vary_names(res->hdrs, res->nhdrs, vary, sizeof(vary)) < 0)
        return NULL;
    if (etag && etag->value_len <= CSTORE_ETAG_MAX) {
        memcpy(etagbuf, etag->value, etag->value_len);
        etagbuf[etag->value_len] = 0;
    }
    c9_parse_cc(res->hdrs, res->nhdrs, &cc);
    life = c9_freshness_lifetime(res->hdrs, res->nhdrs, res->response_time, c->default_ttl, heur);
    date = c9_date_value(res->hdrs, res->nhdrs, res->response_time);
    basis = c9_age_basis(date, c9_age_value(res->hdrs, res->nhdrs), res->request_time,
                         res->response_time);
    keep = cc.stale_while_revalidate > 0 ? cc.stale_while_revalidate : 0;
    if ((etag || lm) && keep < CACHE_KEEP_STALE)
        keep = CACHE_KEEP_STALE;
    /* the freshness left: the lifetime minus the age it arrived with */
    life = life > basis ? life - basis : 0;
    if (life + keep == 0)
        return NULL; /* dead on arrival and nothing to revalidate with */
    it.primary = f->primary;
    it.secondary = secondary;
    it.vary = vary;
    it.etag = etagbuf;
    it.status = res->status;
    it.headers = hblob;
    it.headers_len = hlen;
    it.body = res->body;
    it.body_len = res->body_len;
    it.date = date;
    it.age_basis = basis;
    it.stored_at = now;
    it.expires_at = now + (uint64_t)life * 1000;
    it.stale_until = it.expires_at + (uint64_t)keep * 1000;
    it.origin = true;
    if (cstore_item_size(&it) > c->max_object)
        return NULL;
    if (cstore_insert(c->store, &it, now, &out) == 0) {
        c->ctr.stored++;
        if (c->peers)
            peer_announce(c->peers, out);
        return out;
    }
    /* -EEXIST: a copy that wins is stored: serve that one */
    return cstore_get(c->store, f->primary, secondary, now);
}

/* A 304 from the origin for f->stale: the stored object takes new timing. */
static const struct cstore_obj *cache_refresh(struct cache *c, struct cache_flight *f,
                                              const struct origin_result *res)
{
    const struct cstore_obj *o = f->stale, *out = NULL;
    struct c9_hdr h[CACHE_HDR_MAX];
    size_t n = cache_unblob(o->headers, o->headers_len, h, CACHE_HDR_MAX);
    struct cstore_item it = {0};
    bool heur = true;
    int64_t life, basis, date;
    struct c9_cc cc;
    uint64_t now = clock_mono_ms();

    if (c9_hdr_get(res->hdrs, res->nhdrs, "Cache-Control") ||
        c9_hdr_get(res->hdrs, res->nhdrs, "Expires")) {
        life =
            c9_freshness_lifetime(res->hdrs, res->nhdrs, res->response_time, c->default_ttl, false);
        c9_parse_cc(res->hdrs, res->nhdrs, &cc);
    } else {
        life = c9_freshness_lifetime(h, n, res->response_time, c->default_ttl, heur);
        c9_parse_cc(h, n, &cc);
    }
    date = c9_date_value(res->hdrs, res->nhdrs, res->response_time);
    if (date < o->date)
        date = o->date;
    basis = c9_age_basis(date, c9_age_value(res->hdrs, res->nhdrs), res->request_time,
                         res->response_time);
    life = life > basis ? life - basis : 0;
    it.primary = o->primary;
    it.secondary = o->secondary;
    it.vary = o->vary;
    it.etag = o->etag;
    it.status = o->status;
    it.headers = o->headers;
    it.headers_len = o->headers_len;
    it.body = o->body;
    it.body_len = o->body_len;
    it.date = date;
    it.age_basis = basis;
    it.stored_at = now;
    it.expires_at = now + (uint64_t)life * 1000;
    it.stale_until = it.expires_at + (uint64_t)(cc.stale_while_revalidate > CACHE_KEEP_STALE
                                                    ? cc.stale_while_revalidate
                                                    : CACHE_KEEP_STALE) *
                                         1000;
    it.origin = true;
    if (cstore_insert(c->store, &it, now, &out) == 0) {
        c->ctr.revalidated++;
        if (c->peers)
            peer_announce(c->peers, out);
        return out;
    }
    return cstore_ref(o); /* serve what we have: the origin said it is current */
}

/* ---- flights ---- */

static unsigned cache_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % CACHE_FLIGHT_BUCKETS;
}

static struct cache_flight *cache_flight_find(struct cache *c, const char *fkey)
{
    for (struct cache_flight *f = c->flights[cache_hash(fkey)]; f; f = f->next)
        if (strcmp(f->fkey, fkey) == 0)
            return f;
    return NULL;
}

static void cache_flight_unlink(struct cache *c, struct cache_flight *f)
{
    struct cache_flight **pp = &c->flights[cache_hash(f->fkey)];

    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
}

static void cache_flight_free(struct cache_flight *f)
{
    cstore_unref(f->stale);
    cstore_unref(f->obj);
    free(f->fkey);
    free(f->primary);
    free(f->path);
    free(f->req);
    free(f->reqbuf);
    free(f->hblob);
    free(f->body);
    free(f);
}

static void cache_waiter_abort(struct http_exchange *ex, void *arg);
static void cache_waiter_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* Detaches w from its flight and frees it (not the exchange). */
static void cache_waiter_remove(struct cache_waiter *w)
{
    struct cache_waiter **pp = &w->f->waiters;

    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
    ev_timer_stop(w->c->loop, &w->timer);
    free(w);
}

/* Adds ex to f's waiters. Joiners wait at most timeout_coalesce; the
 * request that started the fetch is bounded by the origin's timeouts. */
static void cache_flight_join(struct cache *c, struct cache_flight *f, struct http_exchange *ex,
                              bool leader)
{
    struct cache_waiter *w = xcalloc(1, sizeof(*w));

    w->ex = ex;
    w->f = f;
    w->c = c;
    w->next = f->waiters;
    f->waiters = w;
    ev_timer_init(&w->timer, cache_waiter_timeout, c->timeout_coalesce, 0);
    if (!leader)
        ev_timer_start(c->loop, &w->timer);
    http_exchange_set_abort_cb(ex, cache_waiter_abort, w);
}

static void cache_waiter_abort(struct http_exchange *ex, void *arg)
{
    struct cache_waiter *w = arg;

    cache_waiter_remove(w);
    http_exchange_done(ex);
}

static void cache_waiter_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct cache_waiter *w = container_of(t, struct cache_waiter, timer);
    struct http_exchange *ex = w->ex;
    struct cache *c = w->c;

    (void)loop;
    (void)revents;
    cache_waiter_remove(w);
    http_exchange_set_abort_cb(ex, NULL, NULL);
    cache_send_text(c, ex, 504, "text/plain", "timed out waiting for the origin\n", "MISS");
}

/* Whether ex may take the object f stored (its Vary key matches). */
static bool cache_variant_fits(const struct cstore_obj *o, struct http_exchange *ex)
{
    static char key[CSTORE_KEY_MAX + 1];
    struct c9_hdr vary = {"Vary", 4, o->vary, strlen(o->vary)};
    size_t nreq;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);

    if (!*o->vary)
        return true;
    return c9_vary_key(&vary, 1, req, nreq, key, sizeof(key)) >= 0 &&
           strcmp(key, o->secondary) == 0;
}

/* Answers one waiter from f's result. RELEASES ex. */
static void cache_answer(struct cache *c, struct cache_flight *f, struct http_exchange *ex)
{
    struct c9_hdr h[CACHE_HDR_MAX];
    size_t n;

    switch (f->kind) {
    case CACHE_RES_OBJ:
        if (!cache_variant_fits(f->obj, ex)) {
            cache_handle(c, ex); /* another variant: start over */
            return;
        }
        cache_send_obj(c, ex, f->obj, f->refreshed ? "REVALIDATED" : "MISS");
        return;
    case CACHE_RES_COPY:
        n = cache_unblob((const unsigned char *)f->hblob, f->hlen, h, CACHE_HDR_MAX);
        cache_send(c, ex, f->status, h, n, f->body, f->blen, "PASS", -1);
        return;
    default:
        cache_send_text(c, ex, f->status, "text/plain",
                        f->status == 504 ? "origin timed out\n" : "origin failed\n", "MISS");
        return;
    }
}

/* The fetch of f finished (res from the origin or the docroot). */
static void cache_flight_done(void *arg, const struct origin_result *res)
{
    struct cache_flight *f = arg;
    struct cache *c = f->c;
    struct cache_waiter *w;
    char *blob = NULL;
    size_t hlen = 0;

    f->fetch = NULL;
    cache_flight_unlink(c, f);
    if (res->error) {
        c->ctr.origin_errors++;
        f->kind = CACHE_RES_ERROR;
        f->status = res->error == -ETIMEDOUT ? 504 : 502;
        log_warn("origin fetch for %s failed: %s", f->path, strerror(-res->error));
    } else if (f->stale && res->status == 304) {
        f->obj = cache_refresh(c, f, res);
        f->kind = CACHE_RES_OBJ;
        f->refreshed = true;
    } else {
        blob = cache_blob(res->hdrs, res->nhdrs, &hlen);
        if (f->stale) /* a new representation replaces the stale one */
            cstore_remove(c->store, f->primary);
        if (hlen <= CSTORE_HEADERS_MAX)
            f->obj = cache_store(c, f, res, blob, hlen);
        if (f->obj) {
            f->kind = CACHE_RES_OBJ;
            free(blob);
        } else {
            c->ctr.passed++;
            f->kind = CACHE_RES_COPY;
            f->status = res->status;
            f->hblob = blob;
            f->hlen = hlen;
            if (res->body_len) {
                f->body = xmalloc(res->body_len);
                memcpy(f->body, res->body, res->body_len);
            }
            f->blen = res->body_len;
        }
    }
    while ((w = f->waiters)) {
        struct http_exchange *ex = w->ex;

        cache_waiter_remove(w);
        http_exchange_set_abort_cb(ex, NULL, NULL);
        cache_answer(c, f, ex);
    }
    cache_flight_free(f);
}

/* Copies the request's forwardable lines into f (conditionals dropped: the
 * cache answers those itself). */
static void cache_flight_copy_req(struct cache_flight *f, const struct c9_hdr *h, size_t n)
{
    size_t len = 0, off = 0;

    for (size_t i = 0; i < n; i++)
        len += h[i].name_len + h[i].value_len + 2;
    f->reqbuf = xmalloc(len + 1);
    f->req = xcalloc(n + 3, sizeof(*f->req));
    for (size_t i = 0; i < n; i++) {
        if (cache_hop_by_hop(&h[i]) || cache_conditional(&h[i]))
            continue;
        memcpy(f->reqbuf + off, h[i].name, h[i].name_len);
        f->req[f->nreq].name = f->reqbuf + off;
        f->req[f->nreq].name_len = h[i].name_len;
        off += h[i].name_len;
        f->reqbuf[off++] = 0;
        memcpy(f->reqbuf + off, h[i].value, h[i].value_len);
        f->req[f->nreq].value = f->reqbuf + off;
        f->req[f->nreq].value_len = h[i].value_len;
        off += h[i].value_len;
        f->reqbuf[off++] = 0;
        f->nreq++;
    }
}

/* Serves a GET for f from the docroot, synchronously, as an origin would. */
static void cache_docroot_fetch(struct cache *c, struct cache_flight *f)
{
    struct docroot_resp dr;
    struct origin_result res = {0};
    struct c9_hdr h[DOCROOT_HDR_MAX + 1];
    int64_t now = cache_wall();
    int r = docroot_serve(c->docroot, "GET", f->path, f->req, f->nreq, now, c->max_object, &dr);

    if (r == -E2BIG) {
        docroot_resp_done(&dr);
        r = docroot_serve(c->docroot, "GET", f->path, f->req, f->nreq, now, (size_t)1 << 30, &dr);
    }
    res.request_time = res.response_time = now;
    if (r < 0) {
        res.error = r;
    } else {
        memcpy(h, dr.hdr, dr.nhdr * sizeof(h[0]));
        res.status = dr.status;
        res.hdrs = h;
        res.nhdrs = dr.nhdr;
        res.body = dr.body;
        res.body_len = dr.body_len;
    }
    cache_flight_done(f, &res);
    docroot_resp_done(&dr);
}

/* Starts a flight: GET path for primary; conditional when stale is given. */
static struct cache_flight *cache_flight_start(struct cache *c, const char *fkey,
                                               const char *primary, struct http_exchange *ex,
                                               const struct cstore_obj *stale)
{
    struct cache_flight *f = xcalloc(1, sizeof(*f));
    size_t nreq;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    unsigned b = cache_hash(fkey);
    int r;

    f->c = c;
    f->fkey = xstrdup(fkey);
    f->primary = xstrdup(primary);
    f->path = cache_path_query(ex);
    cache_flight_copy_req(f, req, nreq);
    if (stale) {
        f->stale = cstore_ref(stale);
        if (*stale->etag) {
            f->req[f->nreq++] =
                (struct c9_hdr){"If-None-Match", 13, stale->etag, strlen(stale->etag)};
        } else {
            struct c9_hdr h[CACHE_HDR_MAX];
            size_t n = cache_unblob(stale->headers, stale->headers_len, h, CACHE_HDR_MAX);
            const struct c9_hdr *lm = c9_hdr_get(h, n, "Last-Modified");

            /* points into stale->headers, alive while f holds its reference */
            if (lm)
                f->req[f->nreq++] =
                    (struct c9_hdr){"If-Modified-Since", 17, lm->value, lm->value_len};
        }
    }
    f->next = c->flights[b];
    c->flights[b] = f;
    if (c->docroot)
        return f; /* the caller joins, then cache_docroot_fetch */
    r = origin_fetch(c->origin, "GET", f->path, f->req, f->nreq, cache_flight_done, f, &f->fetch);
    if (r) {
        struct origin_result res = {.error = r};

        log_warn("cannot fetch %s: %s", f->path, strerror(-r));
        cache_flight_done(f, &res); /* no waiters yet: only frees */
        return NULL;
    }
    return f;
}

/* Joins ex to the flight for fkey, starting it if there is none. RELEASES
 * ex (now, or when the flight ends). */
static void cache_fetch(struct cache *c, struct http_exchange *ex, const char *fkey,
                        const char *primary, const struct cstore_obj *stale)
{
    struct cache_flight *f = cache_flight_find(c, fkey);

    if (f) {
        c->ctr.coalesced++;
        cache_flight_join(c, f, ex, false);
        return;
    }
    c->ctr.misses++;
    f = cache_flight_start(c, fkey, primary, ex, stale);
    if (!f) {
        cache_send_text(c, ex, 502, "text/plain", "origin failed\n", "MISS");
        return;
    }
    cache_flight_join(c, f, ex, true);
    if (c->docroot)
        cache_docroot_fetch(c, f);
}

/* Starts a background revalidation of o (stale-while-revalidate). */
static void cache_background(struct cache *c, struct http_exchange *ex, const char *fkey,
                             const char *primary, const struct cstore_obj *o)
{
    struct cache_flight *f;

    if (cache_flight_find(c, fkey))
        return;
    f = cache_flight_start(c, fkey, primary, ex, o);
    if (f) {
        f->background = true;
        if (c->docroot)
            cache_docroot_fetch(c, f);
    }
}

/* ---- requests ---- */

static char *cache_rkey(const char *primary, const char *secondary)
{
    size_t n = strlen(primary) + strlen(secondary) + 3;
    char *k = xmalloc(n);

    snprintf(k, n, "R%s\n%s", primary, secondary);
    return k;
}

static void cache_get(struct cache *c, struct http_exchange *ex)
{
    size_t nreq;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    char *primary = cache_primary(ex), *rkey;
    const struct cstore_obj *o = cache_lookup(c, primary, req, nreq);
    struct c9_hdr h[CACHE_HDR_MAX];
    struct c9_cc req_cc, resp_cc;
    enum c9_serve s;
    int64_t life, age;
    size_t n;

    c9_parse_cc(req, nreq, &req_cc);
    if (!o) {
        if (req_cc.only_if_cached) {
            cache_send_text(c, ex, 504, "text/plain", "not cached\n", "MISS");
        } else {
            cache_fetch(c, ex, primary, primary, NULL);
        }
        free(primary);
        return;
    }
    n = cache_unblob(o->headers, o->headers_len, h, CACHE_HDR_MAX);
    c9_parse_cc(h, n, &resp_cc);
    life = (int64_t)((o->expires_at - o->stored_at) / 1000) + o->age_basis;
    age = cache_obj_age(o, clock_mono_ms());
    s = c9_can_serve(&req_cc, &resp_cc, life, age, false);
    switch (s) {
    case C9_SERVE_FRESH:
        c->ctr.hits++;
        cache_send_obj(c, ex, o, "HIT");
        break;
    case C9_SERVE_STALE_WHILE_REVALIDATE:
        c->ctr.stale++;
        rkey = cache_rkey(primary, o->secondary);
        cache_background(c, ex, rkey, primary, o);
        free(rkey);
        cache_send_obj(c, ex, o, "STALE");
        break;
    case C9_SERVE_MUST_REVALIDATE:
        rkey = cache_rkey(primary, o->secondary);
        cache_fetch(c, ex, rkey, primary, o);
        free(rkey);
        break;
    default:
        cache_send_text(c, ex, 504, "text/plain", "not cached\n", "MISS");
        break;
    }
    cstore_unref(o);
    free(primary);
}

/* An unsafe method: proxied, then the key invalidated on success. */
struct cache_unsafe {
    struct cache *c;
    struct http_exchange *ex;
    struct origin_fetch *fetch;
    char *primary;
    char method[16];
    struct cache_unsafe *prev, *next; /* in cache.unsafe, for cache_free */
};

static void cache_unsafe_free(struct cache_unsafe *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        u->c->unsafe = u->next;
    if (u->next)
        u->next->prev = u->prev;
    free(u->primary);
    free(u);
}

static void cache_unsafe_abort(struct http_exchange *ex, void *arg)
{
    (void)ex;
    ((struct cache_unsafe *)arg)->ex = NULL;
    http_exchange_done(ex);
}

static void cache_unsafe_done(void *arg, const struct origin_result *res)
{
    struct cache_unsafe *u = arg;
    struct cache *c = u->c;

    if (!res->error && c9_method_invalidates(u->method, res->status)) {
        cstore_remove(c->store, u->primary);
        if (c->peers)
            peer_purge(c->peers, u->primary);
    }
    if (u->ex) {
        http_exchange_set_abort_cb(u->ex, NULL, NULL);
        if (res->error) {
            c->ctr.origin_errors++;
            cache_send_text(c, u->ex, res->error == -ETIMEDOUT ? 504 : 502, "text/plain",
                            "origin failed\n", "PASS");
        } else {
            cache_send(c, u->ex, res->status, res->hdrs, res->nhdrs, res->body, res->body_len,
                       "PASS", -1);
        }
    }
    cache_unsafe_free(u);
}

static void cache_unsafe(struct cache *c, struct http_exchange *ex)
{
    struct cache_unsafe *u;
    struct c9_hdr h[CACHE_HDR_MAX + 1];
    size_t nreq, n = 0, blen;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    char *path;
    int r;

    http_exchange_body(ex, &blen);
    if (blen) {
        cache_send_text(c, ex, 501, "text/plain", "request bodies are not forwarded yet\n", "PASS");
        return;
    }
    if (c->docroot) {
        cache_send_text(c, ex, 405, "text/plain", "method not allowed\n", "PASS");
        return;
    }
    for (size_t i = 0; i < nreq && n < CACHE_HDR_MAX; i++)
        if (!cache_hop_by_hop(&req[i]) && !cache_hdr_is(&req[i], "expect"))
            h[n++] = req[i];
    h[n++] = (struct c9_hdr){"Content-Length", 14, "0", 1};
    u = xcalloc(1, sizeof(*u));
    u->c = c;
    u->ex = ex;
    u->primary = cache_primary(ex);
    u->next = c->unsafe;
    if (u->next)
        u->next->prev = u;
    c->unsafe = u;
    snprintf(u->method, sizeof(u->method), "%s", http_exchange_method(ex));
    path = cache_path_query(ex);
    c->ctr.passed++;
    r = origin_fetch(c->origin, http_exchange_method(ex), path, h, n, cache_unsafe_done, u,
                     &u->fetch);
    free(path);
    if (r) {
        cache_unsafe_free(u);
        cache_send_text(c, ex, 502, "text/plain", "origin failed\n", "PASS");
        return;
    }
    http_exchange_set_abort_cb(ex, cache_unsafe_abort, u);
}

static void cache_purge(struct cache *c, struct http_exchange *ex)
{
    char buf[64], *primary;
    size_t n;

    if (!cache_loopback(ex)) {
        log_warn("PURGE from %s refused", cache_peer_ip(ex, buf));
        cache_send_text(c, ex, 403, "text/plain", "forbidden\n", "PASS");
        return;
    }
    primary = cache_primary(ex);
    n = cstore_remove(c->store, primary);
    if (c->peers)
        peer_purge(c->peers, primary);
    free(primary);
    c->ctr.purged += n;
    snprintf(buf, sizeof(buf), "{\"purged\":%zu}\n", n);
    cache_send_text(c, ex, 200, "application/json", buf, "PASS");
}

static void cache_stats(struct cache *c, struct http_exchange *ex)
{
    struct cstore_stats st;
    struct peer_counters pc = {0};
    uint64_t rejected = 0;
    char buf[1536];

    if (!cache_loopback(ex)) {
        cache_send_text(c, ex, 403, "text/plain", "forbidden\n", "PASS");
        return;
    }
    cstore_stats_get(c->store, &st);
    if (c->peers) {
        peer_counters_get(c->peers, &pc);
        for (size_t i = 0; i < RFRAME_R_MAX; i++)
            rejected += pc.rejected[i];
        for (size_t i = 0; i < PEER_REJ_MAX; i++)
            rejected += pc.rejected_local[i];
    }
    snprintf(
        buf, sizeof(buf),
        "{\"hits\":%" PRIu64 ",\"misses\":%" PRIu64 ",\"stale\":%" PRIu64 ",\"coalesced\":%" PRIu64
        ",\"passed\":%" PRIu64 ",\"stored\":%" PRIu64 ",\"revalidated\":%" PRIu64
        ",\"evicted\":%" PRIu64 ",\"purged\":%" PRIu64 ",\"origin_errors\":%" PRIu64
        ",\"bytes\":%zu,\"objects\":%zu"
        ",\"replicated_out\":%" PRIu64 ",\"replicated_in\":%" PRIu64 ",\"peer_purges_out\":%" PRIu64
        ",\"peer_purges_in\":%" PRIu64 ",\"peer_rejected\":%" PRIu64 ",\"peer_drops\":%" PRIu64
        ",\"peer_syncs\":%" PRIu64 ",\"peers_ready\":%zu}\n",
        c->ctr.hits, c->ctr.misses, c->ctr.stale, c->ctr.coalesced, c->ctr.passed, c->ctr.stored,
        c->ctr.revalidated, st.evicted_lru + st.evicted_expired + st.evicted_variant, c->ctr.purged,
        c->ctr.origin_errors, st.bytes, st.objects, pc.objects_out, pc.inserted, pc.purges_out,
        pc.purges_in, rejected, pc.drops, pc.syncs,
        c->peers ? peer_ready_count(c->peers) : (size_t)0);
    cache_send_text(c, ex, 200, "application/json", buf, "PASS");
}

/* Routes one request. RELEASES ex (now or later). */
static void cache_handle(struct cache *c, struct http_exchange *ex)
{
    enum http_req_method m = http_exchange_method_id(ex);
    const char *method = http_exchange_method(ex);

    if (strcmp(http_exchange_path(ex), "/_fulcrum/stats") == 0 && m == HTTP_REQ_GET) {
        cache_stats(c, ex);
    } else if (m == HTTP_REQ_PURGE) {
        cache_purge(c, ex);
    } else if (m == HTTP_REQ_GET || m == HTTP_REQ_HEAD) {
        cache_get(c, ex);
    } else if (m == HTTP_REQ_POST || m == HTTP_REQ_PUT || m == HTTP_REQ_DELETE ||
               strcmp(method, "PATCH") == 0) {
        cache_unsafe(c, ex);
    } else {
        cache_send_text(c, ex, 501, "text/plain", "method not implemented\n", "PASS");
    }
}

static void cache_request_cb(struct http_exchange *ex, void *arg)
{
    cache_handle(arg, ex);
}

static void cache_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct cache *c = w->data;

    (void)loop;
    (void)revents;
    cstore_sweep(c->store, clock_mono_ms(), CACHE_SWEEP_BATCH);
}

/* ---- life cycle ---- */

/* Creates the HTTP listener and tells the ready callback. */
static void cache_listen_now(struct cache *c)
{
    char err[256];

    c->srv = http_server_new(c->loop, &c->addr, &c->hl, cache_request_cb, c, err, sizeof(err));
    if (!c->srv) {
        log_err("%s", err);
        ev_break(c->loop, EVBREAK_ALL);
    }
    if (c->ready_cb)
        c->ready_cb(c, c->srv != NULL, c->ready_arg);
}

static void cache_sync_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct cache *c = w->data;

    (void)revents;
    if (!peer_synced(c->peers))
        return;
    ev_timer_stop(loop, w);
    cache_listen_now(c);
}

/* Loads the keys and starts the peer set, when replication is asked for. */
static int cache_peers_new(struct cache *c, const struct cache_cfg *cfg, char *err, size_t errlen)
{
    struct peer_cfg pc;
    struct sockaddr_in *addrs = NULL;
    bool key = cfg->key && *cfg->key, listen = cfg->peer_listen && *cfg->peer_listen;

    if (!key && !listen && !cfg->peers.n)
        return 0;
    if (!key || !listen) {
        snprintf(err, errlen, "replication needs both --key FILE and --peer-listen HOST:PORT");
        return -EINVAL;
    }
    if (key_ring_load(&c->kr, cfg->key, err, errlen) ||
        (cfg->key_next && *cfg->key_next && key_ring_load(&c->kr, cfg->key_next, err, errlen)))
        return -EINVAL;
    peer_cfg_default(&pc);
    pc.name = c->name;
    pc.kr = &c->kr;
    pc.obj_max = c->max_object;
    if (net_parse_hostport(cfg->peer_listen, true, &pc.listen, err, errlen))
        return -EINVAL;
    if (cfg->peers.n) {
        addrs = xcalloc(cfg->peers.n, sizeof(*addrs));
        for (size_t i = 0; i < cfg->peers.n; i++)
            if (net_parse_hostport(cfg->peers.v[i], false, &addrs[i], err, errlen)) {
                free(addrs);
                return -EINVAL;
            }
    }
    pc.peers = addrs;
    pc.n_peers = cfg->peers.n;
    c->peer_addr = pc.listen;
    c->peers = peer_set_new(c->loop, &pc, c->store, err, errlen);
    free(addrs);
    return c->peers ? 0 : -EINVAL;
}

struct cache *cache_new(struct ev_loop *loop, const struct cache_cfg *cfg, char *err, size_t errlen)
{
    struct cache *c = xcalloc(1, sizeof(*c));
    struct cstore_cfg sc;
    struct http_limits hl;
    struct origin_limits ol;
    size_t max_mem;

    c->loop = loop;
    if (cache_parse_size(cfg->max_memory, &max_mem) ||
        cache_parse_size(cfg->max_object, &c->max_object)) {
        snprintf(err, errlen, "--max-memory and --max-object take a size: N, NK, NM or NG");
        goto out_free;
    }
    if (!!*cfg->origin == !!*cfg->docroot) {
        snprintf(err, errlen, "exactly one of --origin URL and --docroot DIR is needed");
        goto out_free;
    }
    if (net_parse_hostport(cfg->listen, true, &c->addr, err, errlen))
        goto out_free;
    if (*cfg->name)
        snprintf(c->name, sizeof(c->name), "%s", cfg->name);
    else if (gethostname(c->name, sizeof(c->name) - 1) == -1)
        snprintf(c->name, sizeof(c->name), "fulcrum-cache");
    c->default_ttl = cfg->default_ttl;
    c->timeout_coalesce = cfg->timeout_coalesce;
    cstore_cfg_default(&sc);
    sc.max_bytes = max_mem;
    sc.max_object = c->max_object;
    c->store = cstore_new(&sc);
    if (!c->store) {
        snprintf(err, errlen, "cannot make the store");
        goto out_free;
    }
    if (*cfg->origin) {
        origin_limits_default(&ol);
        ol.connect_timeout = cfg->timeout_connect;
        ol.response_timeout = cfg->timeout_origin;
        ol.max_body = c->max_object;
        c->origin = origin_new(loop, cfg->origin, &ol, err, errlen);
        if (!c->origin)
            goto out_free;
    } else {
        c->docroot = docroot_new(cfg->docroot, err, errlen);
        if (!c->docroot)
            goto out_free;
    }
    if (cache_peers_new(c, cfg, err, errlen))
        goto out_free;
    http_limits_default(&hl);
    hl.idle_timeout = cfg->timeout_client;
    c->hl = hl;
    if (c->peers) {
        ev_timer_init(&c->sync_poll, cache_sync_poll_cb, 0, CACHE_SYNC_POLL);
        c->sync_poll.data = c;
        ev_timer_start(loop, &c->sync_poll);
    } else {
        c->srv = http_server_new(loop, &c->addr, &hl, cache_request_cb, c, err, errlen);
        if (!c->srv)
            goto out_free;
    }
    ev_timer_init(&c->sweep, cache_sweep_cb, 1, 1);
    c->sweep.data = c;
    ev_timer_start(loop, &c->sweep);
    return c;

out_free:
    cache_free(c);
    return NULL;
}

void cache_on_ready(struct cache *c, void (*cb)(struct cache *c, bool ok, void *arg), void *arg)
{
    c->ready_cb = cb;
    c->ready_arg = arg;
    if (c->srv)
        cb(c, true, arg);
}

const char *cache_peer_listen(const struct cache *c, char *buf)
{
    struct sockaddr_in a;

    if (!c->peers)
        return NULL;
    a = c->peer_addr;
    a.sin_port = htons((uint16_t)peer_listen_port(c->peers));
    return net_ntop(&a, buf);
}

unsigned cache_port(const struct cache *c)
{
    return c->srv ? http_server_port(c->srv) : 0;
}

const char *cache_listen(const struct cache *c, char *buf)
{
    struct sockaddr_in a = c->addr;

    a.sin_port = htons((uint16_t)cache_port(c));
    return net_ntop(&a, buf);
}

const char *cache_name(const struct cache *c)
{
    return c->name;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    ev_timer_stop(c->loop, &c->sweep);
    ev_timer_stop(c->loop, &c->sync_poll);
    /* held exchanges are detached: their abort callbacks release them */
    http_server_free(c->srv);
    c->srv = NULL;
    for (size_t b = 0; b < CACHE_FLIGHT_BUCKETS; b++) {
        while (c->flights[b]) {
            struct cache_flight *f = c->flights[b];

            c->flights[b] = f->next;
            if (f->fetch)
                origin_fetch_cancel(f->fetch);
            while (f->waiters) {
                struct http_exchange *ex = f->waiters->ex;

                cache_waiter_remove(f->waiters);
                http_exchange_done(ex);
            }
            cache_flight_free(f);
        }
    }
    origin_free(c->origin); /* cancels the unsafe fetches: no callbacks */
    c->origin = NULL;
    while (c->unsafe)
        cache_unsafe_free(c->unsafe);
    docroot_free(c->docroot);
    peer_set_free(c->peers); /* before the store it borrows */
    key_ring_done(&c->kr);
    cstore_free(c->store);
    free(c);
}
