/* cache_int.h - what the files of fulcrum-cache's request logic share
 * (cache.h is the public contract). Not for use outside cache_*.c.
 *
 * The files:
 *   cache.c         life cycle: options, store, origin or docroot, peers,
 *                   the listener (deferred until the first sync), sweep
 *   cache_request.c request dispatch, hits, PURGE, stats
 *   cache_flight.c  misses: flights, coalesced waiters, origin or docroot
 *                   fetches and their answers
 *   cache_object.c  stored objects: variant lookup, how one may answer
 *                   (fresh, stale, revalidate), storing a fetched
 *                   response, refreshing on 304
 *   cache_unsafe.c  unsafe methods proxied to the origin, invalidation
 *   cache_stream.c  docroot files over --max-object sent in pieces
 *   cache_pass.c    origin responses over --max-object streamed through
 *                   (passes), and the hit-for-pass table
 *   cache_send.c    header blobs and the answers themselves (X-Cache, Age)
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
 *   stale-while-revalidate, stale-if-error and, when they carry a
 *   validator, for conditional revalidation (CACHE_KEEP_STALE s), at most
 *   CACHE_KEEP_STALE_MAX s.
 * - Stale-if-error (RFC 5861 §4, RFC 9111 §4.2.4). A revalidation flight
 *   whose fetch fails (connect or I/O error, timeout, or a 500/502/503/504
 *   answer) keeps the stale object in the store and answers each waiter
 *   with it (X-Cache: STALE) when the response's or that request's
 *   stale-if-error window covers its staleness; other waiters get the
 *   error (502/504, or the origin's 5xx passed through). A joiner whose
 *   coalesce timer fires first is judged the same way.
 * - Too large. A flight whose origin response turns out larger than
 *   --max-object (origin.h "Streaming") ends in its fetch's head
 *   callback: its oldest waiter (the leader, unless it left) adopts the
 *   fetch as a pass and gets the stream; every other waiter gets a pass
 *   fetch of its own (never a 502), and the key is marked hit-for-pass so
 *   later requests skip the flight (cache_pass.c).
 * - Request bodies are read whole by the HTTP server (at most the
 *   server's max_body, --max-request-body) and copied into the origin
 *   request, so a client that goes away never leaves the fetch pointing at
 *   freed memory.
 *
 * Thread: everything runs on the loop given to cache_new().
 */
#ifndef FULCRUM_CACHE_CACHE_INT_H
#define FULCRUM_CACHE_CACHE_INT_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "http.h"
#include "key.h"
#include "log.h"
#include "origin.h"
#include "rfc9111.h"
#include "store.h"

#define CACHE_FLIGHT_BUCKETS 1024
#define CACHE_HFP_BUCKETS    1024
#define CACHE_HFP_MAX        4096  /* hit-for-pass keys remembered */
#define CACHE_HFP_TTL        60    /* s a key stays hit-for-pass without freshness info */
#define CACHE_HFP_TTL_MAX    3600  /* s at most */
#define CACHE_KEEP_STALE     600   /* s a validatable stale object is kept */
#define CACHE_KEEP_STALE_MAX 86400 /* s any object is kept past its freshness */
#define CACHE_HDR_MAX        128   /* header lines of one answer */
#define CACHE_SWEEP_BATCH    1000
#define CACHE_SYNC_POLL      0.02  /* s between peer_synced checks before listening */
#define CACHE_LOG_BURST      5     /* warnings of one kind ... */
#define CACHE_LOG_WINDOW_MS  10000 /* ... per this many ms */

#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

struct cache_counters {
    uint64_t hits, misses, stale, coalesced, passed, stored, purged, origin_errors;
    uint64_t revalidated;        /* 304s from the origin that refreshed an entry */
    uint64_t stale_if_error;     /* stale answers because the origin failed (in stale too) */
    uint64_t request_body_bytes; /* request body bytes forwarded to the origin */
    uint64_t streamed;           /* answers sent in pieces: docroot files, passes */
    uint64_t stream_errors;      /* of those, cut short (client gone, file shrank, origin) */
    uint64_t pass_large;         /* origin responses over max-object streamed through */
    uint64_t hit_for_pass;       /* requests sent straight to a pass by the table */
};

struct cache_flight;
struct cache_unsafe;
struct cache_stream;
struct cache_pass;
struct cache_hfp;

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
    CACHE_RES_FILE,  /* a docroot file over max-object: fd, fsize, hdrs */
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
    bool failed;                    /* revalidation: error or 5xx (stale-if-error) */
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
    int fd;         /* CACHE_RES_FILE: the open file (streams dup it), else -1 */
    uint64_t fsize; /* CACHE_RES_FILE: its size */
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
    struct cache_unsafe *unsafe;  /* unsafe requests at the origin */
    struct cache_stream *streams; /* files being sent */
    struct cache_pass *passes;    /* origin responses being passed through */
    struct cache_hfp *hfp[CACHE_HFP_BUCKETS];
    struct cache_hfp *hfp_oldest, *hfp_newest;
    size_t hfp_n;
    struct cache_counters ctr;
    struct log_rl rl_origin; /* origin failures: a dead origin fails every request */
    struct log_rl rl_purge;  /* PURGE refused: the client decides how often */
    /* replication: peers NULL when off */
    struct key_ring kr;
    struct peer_set *peers;
    struct sockaddr_in peer_addr; /* as parsed from --peer-listen */
    struct http_limits hl;        /* for the deferred listener */
    ev_timer sync_poll;           /* until peer_synced, then the listener */
    void (*ready_cb)(struct cache *c, bool ok, void *arg);
    void *ready_arg;
    struct cache_net {
        uint32_t net, mask;      /* host order */
    } purge_allow[CFG_LIST_MAX]; /* --purge-allow, besides 127.0.0.1 */
    unsigned n_purge_allow;
};

/* ---- cache_send.c: header lines, keys, answers ---- */

int64_t cache_wall(void);
bool cache_hdr_is(const struct c9_hdr *h, const char *name);
/* FNV-1a of s, modulo buckets. */
unsigned cache_hash(const char *s, unsigned buckets);
/* Fields never stored nor forwarded as they are (hop-by-hop, framing, Age,
 * X-Cache). */
bool cache_hop_by_hop(const struct c9_hdr *h);
/* If-* and Expect: the cache answers those itself. */
bool cache_conditional(const struct c9_hdr *h);
/* Serializes the storable lines of h into a new blob (caller frees). */
char *cache_blob(const struct c9_hdr *h, size_t n, size_t *len);
/* Splits a blob back into lines pointing into it; at most cap. */
size_t cache_unblob(const unsigned char *blob, size_t len, struct c9_hdr *h, size_t cap);
bool cache_loopback(const struct http_exchange *ex);
/* 127.0.0.1 or a --purge-allow network. */
bool cache_purge_allowed(const struct cache *c, const struct http_exchange *ex);
/* "host path?query" and "path?query" into new strings (caller frees). */
char *cache_primary(const struct http_exchange *ex);
char *cache_path_query(const struct http_exchange *ex);
/* The age of o at now_ms (monotonic), from its age basis. */
int64_t cache_obj_age(const struct cstore_obj *o, uint64_t now_ms);
/* Answers ex with status, the lines h[0..n) and X-Cache (and Age when
 * age >= 0). RELEASES ex. */
void cache_send(struct cache *c, struct http_exchange *ex, int status, const struct c9_hdr *h,
                size_t n, const void *body, size_t len, const char *xcache, int64_t age);
/* Starts a streamed answer (http_respond_start) with X-Cache. Does not
 * release ex; returns what http_respond_start does. */
int cache_send_start(struct cache *c, struct http_exchange *ex, int status, const struct c9_hdr *h,
                     size_t n, int64_t content_length, const char *xcache);
void cache_send_text(struct cache *c, struct http_exchange *ex, int status, const char *ctype,
                     const char *text, const char *xcache);
/* Answers ex from a stored object: 304 when the request's conditions say
 * so. RELEASES ex. */
void cache_send_obj(struct cache *c, struct http_exchange *ex, const struct cstore_obj *o,
                    const char *xcache);

/* Logs an origin failure (res->error, or a status worth a warning) for
 * `method path`, rate limited (rl_origin). */
void cache_origin_warn(struct cache *c, const char *method, const char *path,
                       const struct origin_result *res);

/* ---- cache_request.c ---- */

/* Routes one request. RELEASES ex (now or later). */
void cache_handle(struct cache *c, struct http_exchange *ex);
/* The http_server request callback (arg is the cache). */
void cache_request_cb(struct http_exchange *ex, void *arg);

/* ---- cache_flight.c ---- */

/* Joins ex to the flight for fkey, starting it if there is none (a
 * conditional one when stale is given). RELEASES ex (now, or when the
 * flight ends). */
void cache_fetch(struct cache *c, struct http_exchange *ex, const char *fkey, const char *primary,
                 const struct cstore_obj *stale);
/* Starts a background revalidation of o (stale-while-revalidate), unless
 * one for fkey is under way. Does not release ex (only reads it). */
void cache_background(struct cache *c, struct http_exchange *ex, const char *fkey,
                      const char *primary, const struct cstore_obj *o);
/* Cancels every flight and releases its waiters (for cache_free). */
void cache_flights_free(struct cache *c);

/* ---- cache_object.c ---- */

/* The variant of primary that the request lines req[0..nreq) select,
 * referenced (cstore_unref it), or NULL. */
const struct cstore_obj *cache_lookup(struct cache *c, const char *primary,
                                      const struct c9_hdr *req, size_t nreq);
/* Whether ex selects o by its Vary key (o was stored for another request). */
bool cache_variant_fits(const struct cstore_obj *o, struct http_exchange *ex);

/* Stores a 200-class response fetched for flight f. Returns the stored
 * object referenced, or NULL when it may not or did not fit. */
const struct cstore_obj *cache_store(struct cache *c, struct cache_flight *f,
                                     const struct origin_result *res, const char *hblob,
                                     size_t hlen);
/* How o may answer a request with the header lines req[0..nreq) now
 * (c9_can_serve); origin_error: the origin just failed to revalidate it. */
enum c9_serve cache_obj_serve(const struct cstore_obj *o, const struct c9_hdr *req, size_t nreq,
                              bool origin_error);
/* A 304 from the origin for f->stale: the stored object takes new timing.
 * Returns it referenced. */
const struct cstore_obj *cache_refresh(struct cache *c, struct cache_flight *f,
                                       const struct origin_result *res);

/* ---- cache_unsafe.c ---- */

/* Proxies an unsafe request to the origin; a 2xx/3xx invalidates its
 * primary key here and on the peers. RELEASES ex (now or later). */
void cache_unsafe(struct cache *c, struct http_exchange *ex);
/* Frees every unsafe request record (their fetches are gone with the
 * origin already). */
void cache_unsafe_free_all(struct cache *c);

/* ---- cache_stream.c ---- */

/* Answers ex (GET or HEAD) with the file fd of `size` bytes and the lines
 * h[0..n), read in pieces under backpressure. fd stays the caller's (the
 * stream uses a duplicate). RELEASES ex (now or later). */
void cache_stream_file(struct cache *c, struct http_exchange *ex, int fd, uint64_t size,
                       const struct c9_hdr *h, size_t n);
/* Ends every stream (for cache_free). */
void cache_streams_free(struct cache *c);

/* ---- cache_pass.c ---- */

/* Passes ex (GET or HEAD) through to the origin with a fetch of its own,
 * streamed when the response is over max-object; such a response (re)marks
 * primary hit-for-pass. RELEASES ex (now or later). */
void cache_pass_start(struct cache *c, struct http_exchange *ex, const char *primary);
/* From inside fetch's head callback (res: too large): ex takes the fetch
 * over and gets the stream. RELEASES ex (now or later); returns what the
 * head callback is to return. */
enum origin_flow cache_pass_adopt(struct cache *c, struct http_exchange *ex,
                                  struct origin_fetch *fetch, const struct origin_result *res);
/* Ends every pass, cancelling its fetch (for cache_free). */
void cache_passes_free(struct cache *c);
/* Marks primary hit-for-pass for the lifetime res gives (see cache_pass.c). */
void cache_hfp_mark(struct cache *c, const char *primary, const struct origin_result *res);
/* Whether primary is marked now (an expired mark is dropped). */
bool cache_hfp_check(struct cache *c, const char *primary);
void cache_hfp_forget(struct cache *c, const char *primary);
void cache_hfp_free(struct cache *c);

#endif
