/* cache_flight.c - fulcrum-cache's misses: one fetch per key at a time (a
 * flight), the requests that wait on it with their coalesce timers, the
 * fetch itself from the origin or the docroot, and the answer each waiter
 * gets (a response over --max-object: a pass each, cache_pass.c). Design
 * notes in cache_int.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_int.h"
#include "docroot.h"
#include "log.h"
#include "xalloc.h"

static struct cache_flight *cache_flight_find(struct cache *c, const char *fkey)
{
    for (struct cache_flight *f = c->flights[cache_hash(fkey, CACHE_FLIGHT_BUCKETS)]; f;
         f = f->next)
        if (strcmp(f->fkey, fkey) == 0)
            return f;
    return NULL;
}

static void cache_flight_unlink(struct cache *c, struct cache_flight *f)
{
    struct cache_flight **pp = &c->flights[cache_hash(f->fkey, CACHE_FLIGHT_BUCKETS)];

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
    if (f->fd != -1)
        close(f->fd);
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

/* RFC 5861 §4: the revalidation of f->stale failed (or is too slow for
 * ex); answers ex with the stale object when its or ex's stale-if-error
 * allows. RELEASES ex and returns true, or returns false (ex untouched). */
static bool cache_answer_stale(struct cache *c, struct cache_flight *f, struct http_exchange *ex)
{
    size_t nreq;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);

    switch (cache_obj_serve(f->stale, req, nreq, true)) {
    case C9_SERVE_STALE_IF_ERROR:
        c->ctr.stale++;
        c->ctr.stale_if_error++;
        cache_send_obj(c, ex, f->stale, "STALE");
        return true;
    case C9_SERVE_FRESH: /* nothing needed the origin after all */
        c->ctr.hits++;
        cache_send_obj(c, ex, f->stale, "HIT");
        return true;
    default:
        return false;
    }
}

/* A joiner waited timeout_coalesce: 504, unless it waited on a
 * revalidation whose stale copy it may take (a slow origin is an error too,
 * RFC 5861 §4). */
static void cache_waiter_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct cache_waiter *w = container_of(t, struct cache_waiter, timer);
    struct http_exchange *ex = w->ex;
    struct cache_flight *f = w->f;
    struct cache *c = w->c;

    (void)loop;
    (void)revents;
    cache_waiter_remove(w);
    http_exchange_set_abort_cb(ex, NULL, NULL);
    if (f->stale && cache_answer_stale(c, f, ex))
        return;
    cache_send_text(c, ex, 504, "text/plain", "timed out waiting for the origin\n", "MISS");
}

/* Answers ex from a file result: 304 when its conditions match the
 * file's validators, else the file, streamed. RELEASES ex. */
static void cache_answer_file(struct cache *c, struct cache_flight *f, struct http_exchange *ex)
{
    struct c9_hdr h[CACHE_HDR_MAX];
    size_t n = cache_unblob((const unsigned char *)f->hblob, f->hlen, h, CACHE_HDR_MAX), nreq;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    const struct c9_hdr *et = c9_hdr_get(h, n, "ETag"), *lm = c9_hdr_get(h, n, "Last-Modified");
    int64_t now = cache_wall(), lmt = C9_NO_TIME;
    char tag[64] = "";

    if (lm && c9_parse_http_date(lm->value, lm->value_len, now, &lmt))
        lmt = C9_NO_TIME;
    if (et && et->value_len < sizeof(tag))
        memcpy(tag, et->value, et->value_len);
    if (c9_not_modified(req, nreq, *tag ? tag : NULL, lmt, now)) {
        cache_send(c, ex, 304, h, n, NULL, 0, "PASS", -1);
        return;
    }
    cache_stream_file(c, ex, f->fd, f->fsize, h, n);
}

/* Answers one waiter from f's result. RELEASES ex. */
static void cache_answer(struct cache *c, struct cache_flight *f, struct http_exchange *ex)
{
    struct c9_hdr h[CACHE_HDR_MAX];
    size_t n;

    if (f->failed && cache_answer_stale(c, f, ex))
        return;
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
    case CACHE_RES_FILE:
        cache_answer_file(c, f, ex);
        return;
    default:
        cache_send_text(c, ex, f->status, "text/plain",
                        f->status == 504 ? "origin timed out\n" : "origin failed\n", "MISS");
        return;
    }
}

/* A failure in the sense of stale-if-error (RFC 5861 §4): no response, or
 * one the origin would answer 500, 502, 503 or 504 with. */
static bool cache_origin_failed(const struct origin_result *res)
{
    return res->error || res->status == 500 || res->status == 502 || res->status == 503 ||
           res->status == 504;
}

/* Keeps a copy of a response that is not stored, for the waiters. Takes
 * blob. */
static void cache_flight_keep_copy(struct cache_flight *f, const struct origin_result *res,
                                   char *blob, size_t hlen)
{
    f->c->ctr.passed++;
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

/* Answers every waiter of f (unlinked, its result set) and frees it. */
static void cache_flight_finish(struct cache *c, struct cache_flight *f)
{
    struct cache_waiter *w;

    while ((w = f->waiters)) {
        struct http_exchange *ex = w->ex;

        cache_waiter_remove(w);
        http_exchange_set_abort_cb(ex, NULL, NULL);
        cache_answer(c, f, ex);
    }
    cache_flight_free(f);
}

/* The fetch of f finished (res from the origin or the docroot). */
static void cache_flight_done(void *arg, const struct origin_result *res)
{
    struct cache_flight *f = arg;
    struct cache *c = f->c;
    char *blob = NULL;
    size_t hlen = 0;

    f->fetch = NULL;
    cache_flight_unlink(c, f);
    f->failed = f->stale && cache_origin_failed(res);
    if (res->error) {
        c->ctr.origin_errors++;
        f->kind = CACHE_RES_ERROR;
        f->status = res->error == -ETIMEDOUT ? 504 : 502;
        cache_origin_warn(c, "GET", f->path, res);
    } else if (f->stale && res->status == 304) {
        f->obj = cache_refresh(c, f, res);
        f->kind = CACHE_RES_OBJ;
        f->refreshed = true;
    } else if (f->failed) {
        /* the stale object stays for stale-if-error; the 5xx is passed on */
        c->ctr.origin_errors++;
        cache_origin_warn(c, "GET", f->path, res);
        blob = cache_blob(res->hdrs, res->nhdrs, &hlen);
        cache_flight_keep_copy(f, res, blob, hlen);
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
            cache_flight_keep_copy(f, res, blob, hlen);
        }
    }
    cache_flight_finish(c, f);
}

/* The origin's response for f is over max-object (origin.h "Streaming"):
 * the flight ends here. Its oldest waiter (the leader, unless it left)
 * adopts the fetch and gets the stream; every other waiter is passed
 * through with a fetch of its own; the key is marked hit-for-pass. With
 * nobody waiting (a background revalidation) the fetch stops. */
static enum origin_flow cache_flight_head(void *arg, const struct origin_result *res)
{
    struct cache_flight *f = arg;
    struct cache *c = f->c;
    struct origin_fetch *fetch = f->fetch;
    struct cache_waiter *w, *lead = NULL;
    enum origin_flow fl = ORIGIN_STOP;
    bool error = res->status >= 500;

    f->fetch = NULL;
    cache_flight_unlink(c, f);
    c->ctr.passed++;
    if (f->stale && !error) /* a new representation, too large to keep */
        cstore_remove(c->store, f->primary);
    if (!error)
        cache_hfp_mark(c, f->primary, res);
    for (w = f->waiters; w; w = w->next)
        lead = w; /* waiters are pushed in front: the last is the oldest */
    while ((w = f->waiters)) {
        struct http_exchange *ex = w->ex;
        bool adopt = w == lead;

        cache_waiter_remove(w);
        http_exchange_set_abort_cb(ex, NULL, NULL);
        if (adopt)
            fl = cache_pass_adopt(c, ex, fetch, res);
        else
            cache_pass_start(c, ex, f->primary);
    }
    cache_flight_free(f);
    return fl;
}

/* Never called: the head callback hands the fetch over or stops it. */
static enum origin_flow cache_flight_body(void *arg, const char *data, size_t len)
{
    (void)arg;
    (void)data;
    (void)len;
    return ORIGIN_STOP;
}

static const struct origin_stream_ops cache_flight_ops = {cache_flight_head, cache_flight_body};

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

/* A docroot file over max-object for f: kept open, streamed to each
 * waiter, never read whole nor stored. Takes dr->fd. */
static void cache_flight_file(struct cache *c, struct cache_flight *f, struct docroot_resp *dr)
{
    cache_flight_unlink(c, f);
    if (f->stale) /* the file grew past max-object: the stored copy is old */
        cstore_remove(c->store, f->primary);
    c->ctr.passed++;
    f->kind = CACHE_RES_FILE;
    f->status = dr->status;
    f->hblob = cache_blob(dr->hdr, dr->nhdr, &f->hlen);
    f->fd = dr->fd;
    f->fsize = dr->content_length;
    dr->fd = -1;
    cache_flight_finish(c, f);
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
        cache_flight_file(c, f, &dr);
        docroot_resp_done(&dr);
        return;
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
    struct origin_request rq = {0};
    size_t nreq;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    unsigned b = cache_hash(fkey, CACHE_FLIGHT_BUCKETS);
    int r;

    f->c = c;
    f->fd = -1;
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
    rq.method = "GET";
    rq.path_and_query = f->path;
    rq.hdrs = f->req;
    rq.n = f->nreq;
    rq.stream = &cache_flight_ops;
    r = origin_fetch_req(c->origin, &rq, cache_flight_done, f, &f->fetch);
    if (r) {
        struct origin_result res = {.error = r};

        cache_flight_done(f, &res); /* logs; no waiters yet: only frees */
        return NULL;
    }
    return f;
}

/* Joins ex to the flight for fkey, starting it if there is none. RELEASES
 * ex (now, or when the flight ends). */
void cache_fetch(struct cache *c, struct http_exchange *ex, const char *fkey, const char *primary,
                 const struct cstore_obj *stale)
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
void cache_background(struct cache *c, struct http_exchange *ex, const char *fkey,
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

void cache_flights_free(struct cache *c)
{
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
}
