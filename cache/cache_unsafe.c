/* cache_unsafe.c - fulcrum-cache's unsafe methods (POST, PUT, PATCH,
 * DELETE): proxied to the origin and passed back (X-Cache: PASS; an answer
 * over --max-object streamed, cache_pass.c); a 2xx or 3xx answer
 * invalidates the target's primary key here and on every peer (RFC 9111
 * §4.4). Shared declarations in cache_int.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "peer.h"
#include "xalloc.h"

/* An unsafe method: proxied, then the key invalidated on success. */
struct cache_unsafe {
    struct cache *c;
    struct http_exchange *ex;
    struct origin_fetch *fetch;
    char *primary;
    char *path; /* path?query, as sent */
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
    free(u->path);
    free(u);
}

/* Invalidates u's key here and on the peers when its answer says so. */
static void cache_unsafe_invalidate(struct cache_unsafe *u, int status)
{
    struct cache *c = u->c;

    if (!c9_method_invalidates(u->method, status))
        return;
    cstore_remove(c->store, u->primary);
    cache_hfp_forget(c, u->primary);
    if (c->peers)
        peer_purge(c->peers, u->primary);
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

    if (res->error) {
        c->ctr.origin_errors++;
        cache_origin_warn(c, u->method, u->path, res);
    } else {
        cache_unsafe_invalidate(u, res->status);
    }
    if (u->ex) {
        http_exchange_set_abort_cb(u->ex, NULL, NULL);
        if (res->error)
            cache_send_text(c, u->ex, res->error == -ETIMEDOUT ? 504 : 502, "text/plain",
                            "origin failed\n", "PASS");
        else
            cache_send(c, u->ex, res->status, res->hdrs, res->nhdrs, res->body, res->body_len,
                       "PASS", -1);
    }
    cache_unsafe_free(u);
}

/* The answer is over --max-object: invalidation now, and the client (if
 * still there) takes the fetch over as a pass (cache_pass.c). */
static enum origin_flow cache_unsafe_head(void *arg, const struct origin_result *res)
{
    struct cache_unsafe *u = arg;
    struct http_exchange *ex = u->ex;
    struct origin_fetch *fetch = u->fetch;
    struct cache *c = u->c;

    cache_unsafe_invalidate(u, res->status);
    cache_unsafe_free(u);
    if (!ex)
        return ORIGIN_STOP; /* the client left: nobody to stream to */
    http_exchange_set_abort_cb(ex, NULL, NULL);
    return cache_pass_adopt(c, ex, fetch, res);
}

/* Never called: the head callback hands the fetch over or stops it. */
static enum origin_flow cache_unsafe_body(void *arg, const char *data, size_t len)
{
    (void)arg;
    (void)data;
    (void)len;
    return ORIGIN_STOP;
}

static const struct origin_stream_ops cache_unsafe_ops = {cache_unsafe_head, cache_unsafe_body};

/* A new record for ex, linked in c->unsafe. */
static struct cache_unsafe *cache_unsafe_new(struct cache *c, struct http_exchange *ex)
{
    struct cache_unsafe *u = xcalloc(1, sizeof(*u));

    u->c = c;
    u->ex = ex;
    u->primary = cache_primary(ex);
    u->path = cache_path_query(ex);
    u->next = c->unsafe;
    if (u->next)
        u->next->prev = u;
    c->unsafe = u;
    snprintf(u->method, sizeof(u->method), "%s", http_exchange_method(ex));
    return u;
}

void cache_unsafe(struct cache *c, struct http_exchange *ex)
{
    struct cache_unsafe *u;
    struct c9_hdr h[CACHE_HDR_MAX];
    struct origin_request rq = {0};
    size_t nreq, n = 0;
    const struct c9_hdr *req = http_exchange_headers(ex, &nreq);
    int r;

    if (c->docroot) {
        cache_send_text(c, ex, 405, "text/plain", "method not allowed\n", "PASS");
        return;
    }
    /* framing and Expect are ours: the body (read whole by the server, at
     * most --max-request-body) goes out with its own Content-Length */
    for (size_t i = 0; i < nreq && n < CACHE_HDR_MAX; i++)
        if (!cache_hop_by_hop(&req[i]) && !cache_hdr_is(&req[i], "expect"))
            h[n++] = req[i];
    u = cache_unsafe_new(c, ex);
    rq.method = http_exchange_method(ex);
    rq.path_and_query = u->path;
    rq.hdrs = h;
    rq.n = n;
    rq.body = http_exchange_body(ex, &rq.body_len);
    if (!rq.body)
        rq.body = "";
    rq.stream = &cache_unsafe_ops;
    c->ctr.passed++;
    c->ctr.request_body_bytes += rq.body_len;
    r = origin_fetch_req(c->origin, &rq, cache_unsafe_done, u, &u->fetch);
    if (r) {
        cache_unsafe_free(u);
        cache_send_text(c, ex, 502, "text/plain", "origin failed\n", "PASS");
        return;
    }
    http_exchange_set_abort_cb(ex, cache_unsafe_abort, u);
}

void cache_unsafe_free_all(struct cache *c)
{
    while (c->unsafe)
        cache_unsafe_free(c->unsafe);
}
