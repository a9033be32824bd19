/* cache_request.c - fulcrum-cache's request dispatch: GET and HEAD looked
 * up (Vary variants included) and answered from the store when RFC 9111
 * allows, else handed to a flight; PURGE and /_fulcrum/stats for loopback
 * clients; unsafe methods to cache_unsafe.c. Shared declarations in
 * cache_int.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "clock.h"
#include "log.h"
#include "net.h"
#include "peer.h"
#include "xalloc.h"

static const char *cache_peer_ip(const struct http_exchange *ex, char *buf)
{
    net_ntop(http_exchange_peer(ex), buf);
    return buf;
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
    struct c9_cc req_cc;

    if (!o) {
        c9_parse_cc(req, nreq, &req_cc);
        if (req_cc.only_if_cached) {
            cache_send_text(c, ex, 504, "text/plain", "not cached\n", "MISS");
        } else if (c->origin && cache_hfp_check(c, primary)) {
            c->ctr.hit_for_pass++; /* too large last time: no flight to wait on */
            cache_pass_start(c, ex, primary);
        } else {
            cache_fetch(c, ex, primary, primary, NULL);
        }
        free(primary);
        return;
    }
    switch (cache_obj_serve(o, req, nreq, false)) {
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

static void cache_purge(struct cache *c, struct http_exchange *ex)
{
    char buf[64], *primary;
    unsigned sup;
    size_t n;

    if (!cache_purge_allowed(c, ex)) {
        if (log_rl_allow(&c->rl_purge, clock_mono_ms(), &sup))
            log_warn("PURGE from %s refused: not 127.0.0.1 nor in --purge-allow (%u suppressed)",
                     cache_peer_ip(ex, buf), sup);
        cache_send_text(c, ex, 403, "text/plain", "forbidden\n", "PASS");
        return;
    }
    primary = cache_primary(ex);
    n = cstore_remove(c->store, primary);
    cache_hfp_forget(c, primary);
    if (c->peers)
        peer_purge(c->peers, primary);
    free(primary);
    c->ctr.purged += n;
    snprintf(buf, sizeof(buf), "{\"purged\":%zu}\n", n);
    cache_send_text(c, ex, 200, "application/json", buf, "PASS");
}

/* One number of /_fulcrum/stats. */
struct cache_stat {
    const char *name;
    uint64_t v;
};

/* The counters as one JSON object into buf (docs/operations.md lists them). */
static void cache_stats_json(struct cache *c, char *buf, size_t cap)
{
    struct cstore_stats st;
    struct peer_counters pc = {0};
    struct origin_counters oc = {0};
    const struct http_counters *hc = http_server_counters(c->srv);
    uint64_t rejected = 0, dead = 0;
    size_t off = 1;

    cstore_stats_get(c->store, &st);
    if (c->origin)
        origin_get_counters(c->origin, &oc);
    if (c->peers) {
        peer_counters_get(c->peers, &pc);
        for (size_t i = 0; i < RFRAME_R_MAX; i++)
            rejected += pc.rejected[i];
        for (size_t i = 0; i < PEER_REJ_MAX; i++)
            if (i != PEER_REJ_DEAD)
                rejected += pc.rejected_local[i];
        dead = pc.rejected_local[PEER_REJ_DEAD]; /* silence, not a bad frame */
    }
    const struct cache_stat s[] = {
        {"hits", c->ctr.hits},
        {"misses", c->ctr.misses},
        {"stale", c->ctr.stale},
        {"stale_if_error", c->ctr.stale_if_error},
        {"coalesced", c->ctr.coalesced},
        {"passed", c->ctr.passed},
        {"stored", c->ctr.stored},
        {"revalidated", c->ctr.revalidated},
        {"evicted", st.evicted_lru + st.evicted_expired + st.evicted_variant},
        {"purged", c->ctr.purged},
        {"origin_errors", c->ctr.origin_errors},
        {"request_body_bytes", c->ctr.request_body_bytes},
        {"streamed", c->ctr.streamed},
        {"stream_errors", c->ctr.stream_errors},
        {"pass_large", c->ctr.pass_large},
        {"hit_for_pass", c->ctr.hit_for_pass},
        {"bytes", st.bytes},
        {"objects", st.objects},
        {"replicated_out", pc.objects_out},
        {"replicated_in", pc.inserted},
        {"peer_purges_out", pc.purges_out},
        {"peer_purges_in", pc.purges_in},
        {"peer_rejected", rejected},
        {"peer_dead", dead},
        {"peer_drops", pc.drops},
        {"peer_syncs", pc.syncs},
        {"peers_ready", c->peers ? peer_ready_count(c->peers) : 0},
        /* the client side (cache/http.c) */
        {"client_conns_accepted", hc->conns_accepted},
        {"client_conns_open", hc->conns_open},
        {"client_requests", hc->requests},
        {"client_aborted", hc->aborted},
        {"client_bad_request", hc->bad_request},
        {"client_url_too_long", hc->url_too_long},
        {"client_headers_too_large", hc->headers_too_large},
        {"client_body_too_large", hc->body_too_large},
        {"client_timeouts", hc->timeout},
        {"client_too_many_conns", hc->too_many_conns},
        {"client_late_io", hc->late_io},
        /* the origin side (cache/origin*.c) */
        {"origin_fetches", oc.fetches},
        {"origin_responses", oc.responses},
        {"origin_cancelled", oc.cancelled},
        {"origin_timeouts", oc.err_timeout},
        {"origin_refused", oc.err_refused},
        {"origin_too_big", oc.err_too_big},
        {"origin_bad_response", oc.err_proto},
        {"origin_resets", oc.err_reset},
        {"origin_other_errors", oc.err_other},
        {"origin_conns_new", oc.conns_new},
        {"origin_conns_reused", oc.conns_reused},
        {"origin_retries", oc.retries},
        {"origin_late_io", oc.late_io},
    };

    buf[0] = '{';
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]) && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s\"%s\":%" PRIu64, i ? "," : "", s[i].name,
                                s[i].v);
    if (off < cap)
        snprintf(buf + off, cap - off, "}\n");
}

static void cache_stats(struct cache *c, struct http_exchange *ex)
{
    char buf[4096];

    if (!cache_loopback(ex)) {
        cache_send_text(c, ex, 403, "text/plain", "forbidden\n", "PASS");
        return;
    }
    cache_stats_json(c, buf, sizeof(buf));
    cache_send_text(c, ex, 200, "application/json", buf, "PASS");
}

/* Routes one request. RELEASES ex (now or later). */
void cache_handle(struct cache *c, struct http_exchange *ex)
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

void cache_request_cb(struct http_exchange *ex, void *arg)
{
    cache_handle(arg, ex);
}
