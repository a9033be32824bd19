/* cache_object.c - fulcrum-cache's stored objects: finding the variant a
 * request selects (RFC 9111 §4.1), how it may answer (fresh, stale, or
 * after revalidation: §4.2, RFC 5861), what a fetched response becomes in
 * the store (§3, §4.2: storability, lifetime, age basis, how long it is
 * kept stale), and its refresh by a 304 (§4.3.4). Shared declarations in
 * cache_int.h. */
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "clock.h"
#include "log.h"
#include "peer.h"

/* ---- finding ---- */

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

const struct cstore_obj *cache_lookup(struct cache *c, const char *primary,
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

bool cache_variant_fits(const struct cstore_obj *o, struct http_exchange *ex)
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

enum c9_serve cache_obj_serve(const struct cstore_obj *o, const struct c9_hdr *req, size_t nreq,
                              bool origin_error)
{
    struct c9_hdr h[CACHE_HDR_MAX];
    size_t n = cache_unblob(o->headers, o->headers_len, h, CACHE_HDR_MAX);
    int64_t life = (int64_t)((o->expires_at - o->stored_at) / 1000) + o->age_basis;
    struct c9_cc req_cc, resp_cc;

    c9_parse_cc(req, nreq, &req_cc);
    c9_parse_cc(h, n, &resp_cc);
    return c9_can_serve(&req_cc, &resp_cc, life, cache_obj_age(o, clock_mono_ms()), origin_error);
}

/* ---- storing ---- */

/* How long past its freshness an object with Cache-Control cc is kept
 * (s): for stale-while-revalidate, stale-if-error, and, when it has a
 * validator, for a conditional revalidation; at most CACHE_KEEP_STALE_MAX. */
static int64_t cache_keep(const struct c9_cc *cc, bool validator)
{
    int64_t keep = validator ? CACHE_KEEP_STALE : 0;

    if (cc->stale_while_revalidate > keep)
        keep = cc->stale_while_revalidate;
    if (cc->stale_if_error > keep)
        keep = cc->stale_if_error;
    return keep < CACHE_KEEP_STALE_MAX ? keep : CACHE_KEEP_STALE_MAX;
}

/* Stores a 200-class response fetched for flight f. Returns the stored
 * object referenced, or NULL when it may not or did not fit. */
const struct cstore_obj *cache_store(struct cache *c, struct cache_flight *f,
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
    keep = cache_keep(&cc, etag || lm);
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
const struct cstore_obj *cache_refresh(struct cache *c, struct cache_flight *f,
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
    it.stale_until = it.expires_at + (uint64_t)cache_keep(&cc, true) * 1000;
    it.origin = true;
    if (cstore_insert(c->store, &it, now, &out) == 0) {
        c->ctr.revalidated++;
        if (c->peers)
            peer_announce(c->peers, out);
        return out;
    }
    return cstore_ref(o); /* serve what we have: the origin said it is current */
}
