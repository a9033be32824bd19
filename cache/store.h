/* store.h - fulcrum-cache's in-memory object store: a byte budget, LRU
 * eviction, expiry, Vary variants, conflict resolution between copies of
 * one response, and reference counts for readers that outlive an eviction.
 *
 * Design notes (the long form is docs/cache-store.md):
 *
 * - Keys. An object is found by its primary key (e.g. "GET host/path?query")
 *   and its secondary key (the request's values of the response's Vary
 *   headers, computed by the HTTP layer; "" when the response has no Vary).
 *   A primary key holds at most CSTORE_VARIANTS_MAX variants; a new variant
 *   beyond that replaces the oldest one stored.
 * - Budget. Every object is accounted at cstore_item_size(): body + stored
 *   headers + the four strings (primary, secondary, vary, etag) + a fixed
 *   overhead, cstore_overhead() (the store's per-object structures). The sum
 *   over the objects in the index, stats.bytes, never exceeds max_bytes. An
 *   object larger than max_object or max_bytes is refused (-E2BIG).
 * - Eviction order when an insert needs room: first objects whose
 *   stale_until has passed (earliest first), then least recently used
 *   objects. A cstore_get() hit, an insert and a refresh make an object the
 *   most recently used. All of it is O(1) except the expiry order, a binary
 *   heap on stale_until: O(log n).
 * - Dead objects. An object is dead once now_ms >= stale_until: it can no
 *   longer be served, even stale. cstore_get() removes a dead object it finds;
 *   cstore_sweep() removes them in bounded batches; cstore_each() and
 *   cstore_variants() skip them.
 * - Conflicts. Inserting a copy of a (primary, secondary) that is already
 *   stored keeps the newer Date; on equal Dates the greater ETag (bytewise),
 *   or with no ETags the greater body (length, then bytes). This is a total
 *   order, so every node keeps the same copy whatever order copies arrive in.
 *   Equal Date and equal non-empty ETag (or both ETags empty and equal
 *   bodies) is the same content: the stored object stays and only its timing
 *   is refreshed (see cstore_insert).
 * - References. The index holds one reference to each object; cstore_get()
 *   and cstore_insert(..., &out) give the caller another. An object removed
 *   from the index (evicted, replaced, purged, swept) leaves stats.bytes at
 *   once; while someone still holds a reference it stays readable and its
 *   memory is counted in stats.pinned_bytes; the memory is freed at the last
 *   cstore_unref(). So memory in use is stats.bytes + stats.pinned_bytes.
 * - Hashing. Primary keys come from clients: they are hashed with SipHash
 *   (libsodium crypto_shorthash) under a random key per store, so a client
 *   cannot choose URLs that collide.
 *
 * Thread: a store and its objects belong to one thread (the owner); nothing
 * here locks. Times are the caller's: now_ms, stored_at, expires_at and
 * stale_until are monotonic milliseconds of this node (clock_mono_ms()).
 */
#ifndef FULCRUM_CACHE_STORE_H
#define FULCRUM_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CSTORE_KEY_MAX      8192  /* primary, secondary and vary: bytes, without NUL */
#define CSTORE_ETAG_MAX     1024  /* etag: bytes, without NUL */
#define CSTORE_HEADERS_MAX  65536 /* stored response headers: bytes */
#define CSTORE_VARIANTS_MAX 16    /* variants per primary key */

struct cstore_cfg {
    size_t max_bytes;  /* budget for the accounted size of indexed objects */
    size_t max_object; /* an object's accounted size above this: -E2BIG */
};

/* What cstore_insert() copies into a new object. Strings are NUL-terminated;
 * NULL secondary, vary or etag means "". headers and body may be NULL when
 * their length is 0. */
struct cstore_item {
    const char *primary;   /* 1..CSTORE_KEY_MAX bytes */
    const char *secondary; /* Vary key: the request's values of the Vary headers */
    const char *vary;      /* normalized Vary header names of this response */
    const char *etag;      /* the ETag header, "" when none */
    int status;            /* 100..599 */
    const void *headers;   /* opaque blob from the HTTP layer */
    size_t headers_len;    /* <= CSTORE_HEADERS_MAX */
    const void *body;
    size_t body_len;
    int64_t date;         /* Date header, seconds since the epoch */
    int64_t age_basis;    /* corrected initial age at storage, seconds */
    uint64_t stored_at;   /* monotonic ms when stored */
    uint64_t expires_at;  /* monotonic ms when it stops being fresh */
    uint64_t stale_until; /* monotonic ms until which it may be served stale; >= expires_at */
    bool origin;          /* fetched from the origin here (false: a replicated copy) */
};

/* A stored object, as readers see it: read-only. The pointers stay valid
 * while the reader holds a reference. The timing fields (age_basis,
 * stored_at, expires_at, stale_until) and origin change when a copy with the
 * same content refreshes the object (cstore_insert); nothing else changes. */
struct cstore_obj {
    const char *primary;
    const char *secondary;
    const char *vary;
    const char *etag;
    const unsigned char *headers;
    size_t headers_len;
    const unsigned char *body;
    size_t body_len;
    int status;
    int64_t date;
    int64_t age_basis;
    uint64_t stored_at;
    uint64_t expires_at;
    uint64_t stale_until;
    bool origin;
    size_t size; /* accounted size: cstore_item_size() of the item stored */
};

struct cstore_stats {
    size_t objects;            /* objects in the index (dead ones not yet removed included) */
    size_t bytes;              /* their accounted size: <= max_bytes */
    size_t primaries;          /* distinct primary keys in the index */
    size_t pinned_objects;     /* out of the index, still referenced */
    size_t pinned_bytes;       /* their accounted size: memory not yet returned */
    uint64_t inserted;         /* objects added to the index */
    uint64_t refreshed;        /* inserts of the same content: timing refreshed */
    uint64_t kept;             /* inserts refused because the stored copy wins (-EEXIST) */
    uint64_t too_big;          /* inserts refused by size (-E2BIG) */
    uint64_t evicted_lru;      /* removed to make room, least recently used */
    uint64_t evicted_expired;  /* removed dead: by an insert, cstore_get or cstore_sweep */
    uint64_t evicted_replaced; /* superseded by a winning copy of the same key */
    uint64_t evicted_variant;  /* pushed out by a new variant past CSTORE_VARIANTS_MAX */
    uint64_t removed;          /* by cstore_remove (PURGE, invalidation) */
};

/* Visitor for cstore_each() and cstore_variants(): return 0 to go on, any
 * other value to stop (the iterator returns it). It may call cstore_ref() on
 * obj, but nothing that changes the store. */
typedef int (*cstore_visit_fn)(const struct cstore_obj *obj, void *arg);

struct cstore;

/* max_bytes 64 MiB, max_object 1 MiB. */
void cstore_cfg_default(struct cstore_cfg *cfg);

/* Returns a new empty store (cfg is copied), or NULL when max_bytes or
 * max_object is 0 or libsodium cannot start. Aborts on allocation failure. */
struct cstore *cstore_new(const struct cstore_cfg *cfg);
/* Drops the index's reference to every object and frees the store. Objects a
 * reader still references stay valid until their last cstore_unref(), which
 * may come after this. NULL is a no-op. */
void cstore_free(struct cstore *s);

/* The fixed part of every object's accounted size. */
size_t cstore_overhead(void);
/* The accounted size of the object `it` would make: cstore_overhead() +
 * strlen of the four strings + headers_len + body_len (saturates at
 * SIZE_MAX). */
size_t cstore_item_size(const struct cstore_item *it);

/* Copies `it` into the store at time now_ms. Returns
 *   0        stored (a stored copy that loses by the order above was
 *            removed: evicted_replaced), or refreshed: the same content was
 *            already stored, so the stored object stays and takes it->
 *            age_basis, stored_at, expires_at and stale_until; its origin
 *            becomes true if either copy's is; its headers and body stay.
 *   -EEXIST  a stored copy of this (primary, secondary) wins: unchanged
 *   -E2BIG   accounted size above max_object or max_bytes: nothing stored
 *   -ESTALE  it->stale_until <= now_ms: dead already, nothing stored
 *   -EINVAL  a string or the headers over its cap, an empty primary, a
 *            status outside 100..599, stale_until < expires_at, or a NULL
 *            pointer with a non-zero length
 * To make room it evicts dead objects, then least recently used ones, and
 * a new variant past CSTORE_VARIANTS_MAX replaces the oldest variant. On 0,
 * when out is not NULL, *out is the object now stored for the key with a
 * new reference the caller must cstore_unref(); otherwise *out is NULL. */
int cstore_insert(struct cstore *s, const struct cstore_item *it, uint64_t now_ms,
                  const struct cstore_obj **out);

/* The object stored for (primary, secondary), with a new reference the
 * caller must cstore_unref(), and made the most recently used. NULL if there
 * is none, or if it is dead (then it is removed: evicted_expired). Stale
 * objects (past expires_at, before stale_until) are returned: the HTTP
 * layer decides. secondary NULL means "". */
const struct cstore_obj *cstore_get(struct cstore *s, const char *primary, const char *secondary,
                                    uint64_t now_ms);

/* Calls fn for each live variant of primary, oldest stored first, so the
 * HTTP layer can compute each variant's secondary key from the request with
 * obj->vary. Does not touch the LRU order (cstore_get does). Returns 0, or
 * the first non-zero value fn returned. */
int cstore_variants(const struct cstore *s, const char *primary, uint64_t now_ms,
                    cstore_visit_fn fn, void *arg);

/* Calls fn for each live object, most recently used first (a joining peer
 * receives the hottest objects first). Returns 0 or fn's non-zero value. */
int cstore_each(const struct cstore *s, uint64_t now_ms, cstore_visit_fn fn, void *arg);

/* Removes every variant of primary, dead or alive (PURGE, invalidation).
 * Returns how many were removed. */
size_t cstore_remove(struct cstore *s, const char *primary);

/* Removes up to max_items dead objects, earliest stale_until first, and
 * returns how many it removed. The work is bounded by max_items (each
 * removal is O(log n)); the next call goes on where this one stopped. */
size_t cstore_sweep(struct cstore *s, uint64_t now_ms, size_t max_items);

/* Takes one more reference to obj and returns it. */
const struct cstore_obj *cstore_ref(const struct cstore_obj *obj);
/* Drops a reference; the last one frees the object (only possible once it
 * left the index). NULL is a no-op. */
void cstore_unref(const struct cstore_obj *obj);
/* True while obj is in its store's index (not evicted, replaced, purged). */
bool cstore_obj_indexed(const struct cstore_obj *obj);

void cstore_stats_get(const struct cstore *s, struct cstore_stats *st);

/* Walks every structure and checks the invariants (budget, byte and object
 * counts, LRU and variant lists, heap order, hash index). O(n): for tests
 * and debugging. Returns true when all hold. */
bool cstore_check(const struct cstore *s);

#endif
