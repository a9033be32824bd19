/* cache_pass.c - fulcrum-cache's pass-through of origin responses too
 * large to store (over --max-object): streamed from the origin to one
 * client as they arrive, never held whole, never stored (X-Cache: PASS);
 * and the hit-for-pass table that sends later requests for such a key
 * straight to a pass of their own.
 *
 * Design notes.
 * - A pass is one client exchange bound to one origin fetch in stream mode
 *   (origin.h "Streaming"). It starts in one of two ways: with a fetch of
 *   its own (cache_pass_start: a key marked hit-for-pass, or a waiter of a
 *   flight that turned out too large), or by adopting a fetch whose head
 *   just said "too large" (cache_pass_adopt: a flight's leader, an unsafe
 *   request), from inside that fetch's head callback.
 * - A pass fetch whose response fits after all (the object shrank, or the
 *   origin answered 304 to the conditions passed on) comes back whole and
 *   is answered as it is; a fitting 2xx also ends the key's hit-for-pass
 *   mark, so the next request is an ordinary miss again.
 * - Backpressure both ways: http_respond_write() returns 1 once more than
 *   the server's max_output is queued for the client; the body callback
 *   then answers ORIGIN_PAUSE, the origin socket is no longer read (the
 *   origin's sender blocks on a full window), and the drain callback
 *   resumes it. A client that reads nothing is closed by the server after
 *   --timeout-client (a stalled write), which cancels the fetch. Memory of
 *   one pass: one origin read (16 KiB) beyond the client's output queue,
 *   plus, once, the body the origin client held before it knew the
 *   response was too large (at most --max-object, for a chunked or
 *   close-delimited body; nothing for a Content-Length over it).
 * - Framing: the client gets the origin's Content-Length when it gave
 *   one, else chunked (close-delimited for an HTTP/1.0 client). An origin
 *   failure mid-body ends the exchange with http_exchange_done(), which
 *   closes the connection: a short body under a Content-Length, no last
 *   chunk under chunked. A message that looks complete is always complete.
 * - Client gone (abort callback): the origin fetch is cancelled, its
 *   connection closed (never pooled half-read).
 * - HEAD: the GET's head is sent and the fetch stopped. http_respond_end()
 *   refuses a HEAD whose announced length was not written, and closes the
 *   connection: the client has the whole head, then EOF.
 * - Ownership: a pass is freed when its exchange is released (end, abort,
 *   failure) and by cache_passes_free() for any left at cache_free().
 * - Hit-for-pass (Varnish's name): once a key's response turned out too
 *   large, requests for it go straight to a pass of their own, without
 *   coalescing behind a fetch that would only be passed on anyway. The
 *   table is bounded (CACHE_HFP_MAX keys, the oldest mark evicted first);
 *   a mark lasts the response's freshness lifetime, or CACHE_HFP_TTL when
 *   it gives none (or 0), at most CACHE_HFP_TTL_MAX, and is forgotten
 *   sooner on PURGE, on an invalidating unsafe method, or when a pass
 *   fetch gets a 2xx that fits. A 5xx never marks a key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "clock.h"
#include "log.h"
#include "xalloc.h"

struct cache_pass {
    struct cache *c;
    struct http_exchange *ex;
    struct origin_fetch *fetch;     /* NULL once it ended */
    char *primary;                  /* hit-for-pass key, or NULL (unsafe methods) */
    char *path;                     /* path?query, for the log */
    uint64_t sent;                  /* body bytes handed to the client */
    bool started;                   /* the response head went out */
    struct cache_pass *prev, *next; /* in c->passes */
};

static enum origin_flow cache_pass_head(void *arg, const struct origin_result *res);
static enum origin_flow cache_pass_body(void *arg, const char *data, size_t len);
static void cache_pass_done(void *arg, const struct origin_result *res);

static const struct origin_stream_ops cache_pass_ops = {cache_pass_head, cache_pass_body};

static struct cache_pass *cache_pass_new(struct cache *c, struct http_exchange *ex,
                                         const char *primary)
{
    struct cache_pass *p = xcalloc(1, sizeof(*p));

    p->c = c;
    p->ex = ex;
    p->primary = primary ? xstrdup(primary) : NULL;
    p->path = cache_path_query(ex);
    p->next = c->passes;
    if (p->next)
        p->next->prev = p;
    c->passes = p;
    return p;
}

static void cache_pass_free(struct cache_pass *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->c->passes = p->next;
    if (p->next)
        p->next->prev = p->prev;
    free(p->primary);
    free(p->path);
    free(p);
}

/* Detaches p from its exchange (callbacks cleared) and frees p; returns
 * the exchange for the caller to release. */
static struct http_exchange *cache_pass_drop(struct cache_pass *p)
{
    struct http_exchange *ex = p->ex;

    http_exchange_set_abort_cb(ex, NULL, NULL);
    http_exchange_set_drain_cb(ex, NULL, NULL);
    cache_pass_free(p);
    return ex;
}

static void cache_pass_abort(struct http_exchange *ex, void *arg)
{
    struct cache_pass *p = arg;

    if (p->started)
        p->c->ctr.stream_errors++;
    if (p->fetch)
        origin_fetch_cancel(p->fetch);
    cache_pass_free(p);
    http_exchange_done(ex);
}

static void cache_pass_drain(struct http_exchange *ex, void *arg)
{
    struct cache_pass *p = arg;

    (void)ex;
    if (p->fetch)
        origin_fetch_resume(p->fetch);
}

/* Hands body bytes to the client: go on, pause until the drain callback,
 * or stop (the client is gone: p is freed, its exchange released). */
static enum origin_flow cache_pass_write(struct cache_pass *p, const void *data, size_t len)
{
    int r = http_respond_write(p->ex, data, len);

    if (r < 0) { /* detached, or the origin sent more than it announced */
        p->c->ctr.stream_errors++;
        http_exchange_done(cache_pass_drop(p));
        return ORIGIN_STOP;
    }
    p->sent += len;
    return r == 1 ? ORIGIN_PAUSE : ORIGIN_GO;
}

/* Whether the request's conditions match the response's validators (a
 * GET or HEAD only): then it gets 304 instead of the body. */
static bool cache_pass_not_modified(struct http_exchange *ex, const struct origin_result *res)
{
    enum http_req_method m = http_exchange_method_id(ex);
    size_t nreq;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    const struct c9_hdr *et = c9_hdr_get(res->hdrs, res->nhdrs, "ETag");
    const struct c9_hdr *lm = c9_hdr_get(res->hdrs, res->nhdrs, "Last-Modified");
    int64_t now = cache_wall(), lmt = C9_NO_TIME;
    char tag[128] = "";

    if ((m != HTTP_REQ_GET && m != HTTP_REQ_HEAD) || res->status != 200)
        return false;
    if (lm && c9_parse_http_date(lm->value, lm->value_len, now, &lmt))
        lmt = C9_NO_TIME;
    if (et && et->value_len < sizeof(tag))
        memcpy(tag, et->value, et->value_len);
    return c9_not_modified(req, nreq, *tag ? tag : NULL, lmt, now);
}

/* The response is too large to hold: its head goes to the client, then
 * what the origin client held so far. */
static enum origin_flow cache_pass_begin(struct cache_pass *p, const struct origin_result *res)
{
    struct cache *c = p->c;

    c->ctr.pass_large++;
    if (cache_pass_not_modified(p->ex, res)) {
        cache_send(c, cache_pass_drop(p), 304, res->hdrs, res->nhdrs, NULL, 0, "PASS", -1);
        return ORIGIN_STOP;
    }
    if (cache_send_start(c, p->ex, res->status, res->hdrs, res->nhdrs, res->content_length,
                         "PASS")) {
        http_exchange_done(cache_pass_drop(p));
        return ORIGIN_STOP;
    }
    p->started = true;
    if (http_exchange_method_id(p->ex) == HTTP_REQ_HEAD) {
        http_respond_end(cache_pass_drop(p)); /* see the notes: HEAD */
        return ORIGIN_STOP;
    }
    c->ctr.streamed++;
    http_exchange_set_abort_cb(p->ex, cache_pass_abort, p);
    http_exchange_set_drain_cb(p->ex, cache_pass_drain, p);
    if (res->body_len)
        return cache_pass_write(p, res->body, res->body_len);
    return ORIGIN_GO;
}

static enum origin_flow cache_pass_head(void *arg, const struct origin_result *res)
{
    struct cache_pass *p = arg;

    if (p->primary && res->status < 500)
        cache_hfp_mark(p->c, p->primary, res);
    return cache_pass_begin(p, res);
}

static enum origin_flow cache_pass_body(void *arg, const char *data, size_t len)
{
    return cache_pass_write(arg, data, len);
}

/* An origin failure after the head went out: the client must not see a
 * complete message. */
static void cache_pass_cut(struct cache_pass *p, const struct origin_result *res)
{
    struct cache *c = p->c;
    unsigned sup;

    c->ctr.origin_errors++;
    c->ctr.stream_errors++;
    if (log_rl_allow(&c->rl_origin, clock_mono_ms(), &sup))
        log_warn("origin: GET %s cut off after %" PRIu64 " body bytes: %s (%u suppressed)", p->path,
                 p->sent, strerror(-res->error), sup);
    http_exchange_done(cache_pass_drop(p)); /* closes: a short message */
}

static void cache_pass_done(void *arg, const struct origin_result *res)
{
    struct cache_pass *p = arg;
    struct cache *c = p->c;

    p->fetch = NULL;
    if (res->error && p->started) {
        cache_pass_cut(p, res);
    } else if (res->error) {
        c->ctr.origin_errors++;
        cache_origin_warn(c, http_exchange_method(p->ex), p->path, res);
        cache_send_text(c, cache_pass_drop(p), res->error == -ETIMEDOUT ? 504 : 502, "text/plain",
                        "origin failed\n", "PASS");
    } else if (res->streamed) {
        http_respond_end(cache_pass_drop(p));
    } else {
        /* it fits after all: answered whole; a 2xx ends the mark */
        if (p->primary && res->status >= 200 && res->status < 300)
            cache_hfp_forget(c, p->primary);
        cache_send(c, cache_pass_drop(p), res->status, res->hdrs, res->nhdrs, res->body,
                   res->body_len, "PASS", -1);
    }
}

/* Takes over fetch (too large: res from its head callback) for ex. */
enum origin_flow cache_pass_adopt(struct cache *c, struct http_exchange *ex,
                                  struct origin_fetch *fetch, const struct origin_result *res)
{
    struct cache_pass *p = cache_pass_new(c, ex, NULL);

    p->fetch = fetch;
    origin_fetch_retarget(fetch, &cache_pass_ops, cache_pass_done, p);
    return cache_pass_begin(p, res);
}

void cache_pass_start(struct cache *c, struct http_exchange *ex, const char *primary)
{
    struct c9_hdr h[CACHE_HDR_MAX];
    struct origin_request rq = {0};
    size_t nreq, n = 0;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    struct cache_pass *p;
    int r;

    /* the client's conditions go along: the origin answers them */
    for (size_t i = 0; i < nreq && n < CACHE_HDR_MAX; i++)
        if (!cache_hop_by_hop(&req[i]) && !cache_hdr_is(&req[i], "expect"))
            h[n++] = req[i];
    p = cache_pass_new(c, ex, primary);
    rq.method = "GET"; /* a HEAD too: the answer gets the GET's head */
    rq.path_and_query = p->path;
    rq.hdrs = h;
    rq.n = n;
    rq.stream = &cache_pass_ops;
    c->ctr.passed++;
    r = origin_fetch_req(c->origin, &rq, cache_pass_done, p, &p->fetch);
    if (r) {
        struct origin_result res = {.error = r};

        c->ctr.origin_errors++;
        cache_origin_warn(c, "GET", p->path, &res);
        cache_send_text(c, cache_pass_drop(p), 502, "text/plain", "origin failed\n", "PASS");
        return;
    }
    http_exchange_set_abort_cb(ex, cache_pass_abort, p);
}

void cache_passes_free(struct cache *c)
{
    while (c->passes) {
        struct cache_pass *p = c->passes;

        if (p->fetch)
            origin_fetch_cancel(p->fetch);
        http_exchange_done(cache_pass_drop(p));
    }
}

/* ---- hit-for-pass --------------------------------------------------------- */

struct cache_hfp {
    char *key;
    uint64_t expires;                /* monotonic ms */
    struct cache_hfp *hnext;         /* bucket chain */
    struct cache_hfp *older, *newer; /* marking order, for eviction */
};

static struct cache_hfp **cache_hfp_slot(struct cache *c, const char *key)
{
    struct cache_hfp **pp = &c->hfp[cache_hash(key, CACHE_HFP_BUCKETS)];

    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlinks the entry *pp points to (from its bucket and the order) and
 * frees it. */
static void cache_hfp_remove(struct cache *c, struct cache_hfp **pp)
{
    struct cache_hfp *e = *pp;

    *pp = e->hnext;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->hfp_oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        c->hfp_newest = e->older;
    c->hfp_n--;
    free(e->key);
    free(e);
}

void cache_hfp_mark(struct cache *c, const char *primary, const struct origin_result *res)
{
    int64_t ttl =
        c9_freshness_lifetime(res->hdrs, res->nhdrs, res->response_time, CACHE_HFP_TTL, true);
    struct cache_hfp **pp = cache_hfp_slot(c, primary), *e;

    if (ttl <= 0)
        ttl = CACHE_HFP_TTL;
    if (ttl > CACHE_HFP_TTL_MAX)
        ttl = CACHE_HFP_TTL_MAX;
    if (*pp) /* marked again: renewed, and the newest */
        cache_hfp_remove(c, pp);
    else if (c->hfp_n >= CACHE_HFP_MAX)
        cache_hfp_remove(c, cache_hfp_slot(c, c->hfp_oldest->key));
    e = xcalloc(1, sizeof(*e));
    e->key = xstrdup(primary);
    e->expires = clock_mono_ms() + (uint64_t)ttl * 1000;
    pp = cache_hfp_slot(c, primary);
    *pp = e;
    e->older = c->hfp_newest;
    if (e->older)
        e->older->newer = e;
    else
        c->hfp_oldest = e;
    c->hfp_newest = e;
    c->hfp_n++;
}

bool cache_hfp_check(struct cache *c, const char *primary)
{
    struct cache_hfp **pp = cache_hfp_slot(c, primary);

    if (!*pp)
        return false;
    if ((*pp)->expires > clock_mono_ms())
        return true;
    cache_hfp_remove(c, pp);
    return false;
}

void cache_hfp_forget(struct cache *c, const char *primary)
{
    struct cache_hfp **pp = cache_hfp_slot(c, primary);

    if (*pp)
        cache_hfp_remove(c, pp);
}

void cache_hfp_free(struct cache *c)
{
    while (c->hfp_oldest)
        cache_hfp_remove(c, cache_hfp_slot(c, c->hfp_oldest->key));
}
