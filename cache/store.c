/* store.c - the in-memory object store: index, budget, LRU, expiry heap,
 * variants, conflict order, reference counts.
 *
 * Design notes (contracts in store.h, reasons in docs/cache-store.md):
 *
 * - One allocation per object: struct entry, then the body, the headers and
 *   the four NUL-terminated strings. Its size is exactly the accounted size
 *   minus one heap slot, so the budget tracks what malloc was asked for.
 * - The index is a uthash keyed by primary key whose element is the first
 *   (oldest) variant of that key; the variants of a key form a circular
 *   doubly linked list through var_prev/var_next, head->var_prev being the
 *   newest. When the head leaves, the next variant takes its place in the
 *   hash (its own copy of the key becomes the hash key). Variants are at most
 *   CSTORE_VARIANTS_MAX, so walking them is O(1).
 * - The LRU list is a utlist DL list: s->lru is the least recently used,
 *   s->lru->lru_prev the most recently used.
 * - Expiry: a binary min-heap on stale_until, each entry knowing its slot.
 *   It finds the dead objects an insert must evict first, and it is the
 *   sweep's cursor: dead objects are at its top, so a sweep that stopped
 *   after max_items resumes there without examining any live object.
 * - Reference counts: the index holds one. unindex() takes an entry out of
 *   every structure and its bytes out of the budget, then drops that
 *   reference; if readers remain, the entry is "pinned" and counted apart
 *   until the last cstore_unref().
 */
#include "store.h"

#include <errno.h>
#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

/* uthash allocates through xmalloc, which aborts instead of returning NULL. */
#define uthash_malloc(sz)    xmalloc(sz)
#define uthash_free(ptr, sz) free(ptr)
#include <uthash.h>
#include <utlist.h>

#define STATUS_MIN 100
#define STATUS_MAX 599
#define HEAP_MIN   64 /* first heap allocation, in slots */

struct entry {
    struct cstore_obj obj; /* what readers see; first member */
    struct cstore *store;  /* NULL once the store is freed under a reader */
    unsigned refs;         /* the index's one, plus readers' */
    bool indexed;          /* in the hash/variants, LRU and heap */
    bool pinned;           /* out of the index with readers left: in pinned_* */
    bool var_head;         /* this entry is the hash element of its primary */
    unsigned hv;           /* hash of obj.primary under the store's key */
    size_t plen;           /* strlen(obj.primary) */
    size_t heap_idx;
    struct entry *lru_prev, *lru_next;
    struct entry *var_prev, *var_next; /* circular */
    UT_hash_handle hh;                 /* used while var_head */
};

struct cstore {
    struct cstore_cfg cfg;
    struct entry *index;  /* uthash: one head entry per primary key */
    struct entry *lru;    /* utlist DL: least recently used first */
    struct entry *pinned; /* utlist DL through lru_*: out of the index, referenced */
    struct entry **heap;  /* min-heap on obj.stale_until */
    size_t heap_len;
    size_t heap_cap;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    struct cstore_stats st;
};

static struct entry *entry_of(const struct cstore_obj *obj)
{
    return (struct entry *)((char *)obj - offsetof(struct entry, obj));
}

static unsigned key_hash(const struct cstore *s, const char *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;

    crypto_shorthash(out, (const unsigned char *)key, len, s->hash_key);
    memcpy(&h, out, sizeof(h));
    return (unsigned)(h ^ (h >> 32));
}

static bool is_dead(const struct entry *e, uint64_t now_ms)
{
    return now_ms >= e->obj.stale_until;
}

/* ---- expiry heap ---- */

static void heap_set(struct cstore *s, size_t i, struct entry *e)
{
    s->heap[i] = e;
    e->heap_idx = i;
}

static void heap_up(struct cstore *s, size_t i)
{
    struct entry *e = s->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (s->heap[parent]->obj.stale_until <= e->obj.stale_until)
            break;
        heap_set(s, i, s->heap[parent]);
        i = parent;
    }
    heap_set(s, i, e);
}

static void heap_down(struct cstore *s, size_t i)
{
    struct entry *e = s->heap[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= s->heap_len)
            break;
        if (child + 1 < s->heap_len &&
            s->heap[child + 1]->obj.stale_until < s->heap[child]->obj.stale_until)
            child++;
        if (e->obj.stale_until <= s->heap[child]->obj.stale_until)
            break;
        heap_set(s, i, s->heap[child]);
        i = child;
    }
    heap_set(s, i, e);
}

static void heap_push(struct cstore *s, struct entry *e)
{
    if (s->heap_len == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : HEAP_MIN;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof(*s->heap));
    }
    heap_set(s, s->heap_len++, e);
    heap_up(s, e->heap_idx);
}

/* Restores the heap order around e: its stale_until changed, or it was
 * moved into a removed entry's slot. */
static void heap_fix(struct cstore *s, struct entry *e)
{
    heap_up(s, e->heap_idx);
    heap_down(s, e->heap_idx);
}

static void heap_remove(struct cstore *s, struct entry *e)
{
    size_t i = e->heap_idx;
    struct entry *last = s->heap[--s->heap_len];

    if (last == e)
        return;
    heap_set(s, i, last);
    heap_fix(s, last);
}

/* ---- variants: per primary key, circular, oldest at the hash ---- */

static struct entry *variants_find(const struct cstore *s, const char *primary, size_t plen,
                                   unsigned hv)
{
    struct entry *head;

    HASH_FIND_BYHASHVALUE(hh, s->index, primary, plen, hv, head);
    return head;
}

static void variant_link(struct cstore *s, struct entry *e)
{
    struct entry *head = variants_find(s, e->obj.primary, e->plen, e->hv);

    if (head == NULL) {
        e->var_prev = e->var_next = e;
        e->var_head = true;
        HASH_ADD_KEYPTR_BYHASHVALUE(hh, s->index, e->obj.primary, e->plen, e->hv, e);
        s->st.primaries++;
        return;
    }
    e->var_head = false;
    e->var_next = head;
    e->var_prev = head->var_prev;
    head->var_prev->var_next = e;
    head->var_prev = e;
}

static void variant_unlink(struct cstore *s, struct entry *e)
{
    struct entry *next = e->var_next;

    e->var_prev->var_next = next;
    next->var_prev = e->var_prev;
    if (e->var_head) {
        HASH_DELETE(hh, s->index, e);
        e->var_head = false;
        if (next == e) {
            s->st.primaries--;
        } else {
            next->var_head = true;
            HASH_ADD_KEYPTR_BYHASHVALUE(hh, s->index, next->obj.primary, next->plen, next->hv,
                                        next);
        }
    }
    e->var_prev = e->var_next = NULL;
}

/* ---- references and removal ---- */

static void entry_release(struct entry *e)
{
    if (--e->refs > 0)
        return;
    if (e->pinned && e->store != NULL) {
        DL_DELETE2(e->store->pinned, e, lru_prev, lru_next);
        e->store->st.pinned_objects--;
        e->store->st.pinned_bytes -= e->obj.size;
    }
    free(e);
}

/* Takes e out of every structure and the budget, counts it in *counter,
 * and drops the index's reference. */
static void unindex(struct cstore *s, struct entry *e, uint64_t *counter)
{
    variant_unlink(s, e);
    DL_DELETE2(s->lru, e, lru_prev, lru_next);
    heap_remove(s, e);
    e->indexed = false;
    s->st.objects--;
    s->st.bytes -= e->obj.size;
    if (counter != NULL)
        (*counter)++;
    if (e->refs > 1) {
        e->pinned = true;
        DL_APPEND2(s->pinned, e, lru_prev, lru_next);
        s->st.pinned_objects++;
        s->st.pinned_bytes += e->obj.size;
    }
    entry_release(e);
}

static void touch(struct cstore *s, struct entry *e)
{
    DL_DELETE2(s->lru, e, lru_prev, lru_next);
    DL_APPEND2(s->lru, e, lru_prev, lru_next);
}

/* Evicts dead objects, then least recently used ones, until `size` more
 * bytes fit. The caller checked size <= max_bytes. */
static void make_room(struct cstore *s, size_t size, uint64_t now_ms)
{
    while (s->st.bytes > s->cfg.max_bytes - size) {
        if (s->heap_len > 0 && is_dead(s->heap[0], now_ms))
            unindex(s, s->heap[0], &s->st.evicted_expired);
        else
            unindex(s, s->lru, &s->st.evicted_lru);
    }
}

/* ---- public API ---- */

void cstore_cfg_default(struct cstore_cfg *cfg)
{
    cfg->max_bytes = (size_t)64 << 20;
    cfg->max_object = (size_t)1 << 20;
}

struct cstore *cstore_new(const struct cstore_cfg *cfg)
{
    struct cstore *s;

    if (cfg->max_bytes == 0 || cfg->max_object == 0)
        return NULL;
    if (sodium_init() < 0)
        return NULL;
    s = xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    crypto_shorthash_keygen(s->hash_key);
    return s;
}

void cstore_free(struct cstore *s)
{
    struct entry *e, *tmp;

    if (s == NULL)
        return;
    /* The table hangs off the first head entry: free it while that lives.
     * Readers may hold references past this: detach their entries. */
    HASH_CLEAR(hh, s->index);
    DL_FOREACH_SAFE2(s->lru, e, tmp, lru_next)
    {
        e->indexed = false;
        e->store = NULL;
        entry_release(e);
    }
    DL_FOREACH_SAFE2(s->pinned, e, tmp, lru_next)
    {
        e->store = NULL;
    }
    free(s->heap);
    free(s);
}

size_t cstore_overhead(void)
{
    /* The entry, its heap slot, and the NULs of the four strings. */
    return sizeof(struct entry) + sizeof(struct entry *) + 4;
}

static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static const char *or_empty(const char *str)
{
    return str != NULL ? str : "";
}

size_t cstore_item_size(const struct cstore_item *it)
{
    size_t n = cstore_overhead();

    n = add_sat(n, it->primary != NULL ? strlen(it->primary) : 0);
    n = add_sat(n, strlen(or_empty(it->secondary)));
    n = add_sat(n, strlen(or_empty(it->vary)));
    n = add_sat(n, strlen(or_empty(it->etag)));
    n = add_sat(n, it->headers_len);
    return add_sat(n, it->body_len);
}

static bool item_valid(const struct cstore_item *it)
{
    if (it->primary == NULL || it->primary[0] == '\0')
        return false;
    if (strnlen(it->primary, CSTORE_KEY_MAX + 1) > CSTORE_KEY_MAX ||
        strnlen(or_empty(it->secondary), CSTORE_KEY_MAX + 1) > CSTORE_KEY_MAX ||
        strnlen(or_empty(it->vary), CSTORE_KEY_MAX + 1) > CSTORE_KEY_MAX ||
        strnlen(or_empty(it->etag), CSTORE_ETAG_MAX + 1) > CSTORE_ETAG_MAX)
        return false;
    if (it->headers_len > CSTORE_HEADERS_MAX)
        return false;
    if ((it->headers == NULL && it->headers_len > 0) || (it->body == NULL && it->body_len > 0))
        return false;
    if (it->status < STATUS_MIN || it->status > STATUS_MAX)
        return false;
    return it->stale_until >= it->expires_at;
}

/* The variant of (primary, secondary), or NULL. */
static struct entry *find_exact(const struct cstore *s, const char *primary, size_t plen,
                                unsigned hv, const char *secondary)
{
    struct entry *head = variants_find(s, primary, plen, hv);
    struct entry *e = head;

    if (head == NULL)
        return NULL;
    do {
        if (strcmp(e->obj.secondary, secondary) == 0)
            return e;
        e = e->var_next;
    } while (e != head);
    return NULL;
}

/* The conflict order between a stored copy and an incoming one: < 0 the
 * stored copy wins, 0 same content, > 0 the incoming copy wins. */
static int conflict_order(const struct cstore_obj *old, const struct cstore_item *it)
{
    const char *etag = or_empty(it->etag);
    int c;

    if (it->date != old->date)
        return it->date > old->date ? 1 : -1;
    c = strcmp(etag, old->etag);
    if (c != 0 || etag[0] != '\0')
        return c;
    if (it->body_len != old->body_len)
        return it->body_len > old->body_len ? 1 : -1;
    return it->body_len > 0 ? memcmp(it->body, old->body, it->body_len) : 0;
}

static void refresh(struct cstore *s, struct entry *e, const struct cstore_item *it)
{
    e->obj.age_basis = it->age_basis;
    e->obj.stored_at = it->stored_at;
    e->obj.expires_at = it->expires_at;
    e->obj.stale_until = it->stale_until;
    e->obj.origin = e->obj.origin || it->origin;
    heap_fix(s, e);
    touch(s, e);
    s->st.refreshed++;
}

static char *put_str(char **p, const char *str)
{
    size_t n = strlen(str) + 1;
    char *dst = *p;

    memcpy(dst, str, n);
    *p += n;
    return dst;
}

/* Allocates the entry for `it` (validated, `size` its accounted size). */
static struct entry *entry_new(struct cstore *s, const struct cstore_item *it, size_t size,
                               unsigned hv)
{
    struct entry *e = xmalloc(size - sizeof(struct entry *));
    unsigned char *p = (unsigned char *)(e + 1);
    char *str;

    memset(e, 0, sizeof(*e));
    e->store = s;
    e->refs = 1;
    e->hv = hv;
    e->plen = strlen(it->primary);
    if (it->body_len > 0)
        memcpy(p, it->body, it->body_len);
    e->obj.body = p;
    e->obj.body_len = it->body_len;
    p += it->body_len;
    if (it->headers_len > 0)
        memcpy(p, it->headers, it->headers_len);
    e->obj.headers = p;
    e->obj.headers_len = it->headers_len;
    str = (char *)(p + it->headers_len);
    e->obj.primary = put_str(&str, it->primary);
    e->obj.secondary = put_str(&str, or_empty(it->secondary));
    e->obj.vary = put_str(&str, or_empty(it->vary));
    e->obj.etag = put_str(&str, or_empty(it->etag));
    e->obj.status = it->status;
    e->obj.date = it->date;
    e->obj.age_basis = it->age_basis;
    e->obj.stored_at = it->stored_at;
    e->obj.expires_at = it->expires_at;
    e->obj.stale_until = it->stale_until;
    e->obj.origin = it->origin;
    e->obj.size = size;
    return e;
}

static void variants_make_room(struct cstore *s, const struct cstore_item *it, size_t plen,
                               unsigned hv)
{
    struct entry *head = variants_find(s, it->primary, plen, hv);
    struct entry *e = head;
    unsigned n = 0;

    if (head == NULL)
        return;
    do {
        n++;
        e = e->var_next;
    } while (e != head);
    if (n >= CSTORE_VARIANTS_MAX)
        unindex(s, head, &s->st.evicted_variant);
}

int cstore_insert(struct cstore *s, const struct cstore_item *it, uint64_t now_ms,
                  const struct cstore_obj **out)
{
    const char *secondary = or_empty(it->secondary);
    struct entry *old, *e;
    size_t size, plen;
    unsigned hv;

    if (out != NULL)
        *out = NULL;
    if (!item_valid(it))
        return -EINVAL;
    size = cstore_item_size(it);
    if (size > s->cfg.max_object || size > s->cfg.max_bytes) {
        s->st.too_big++;
        return -E2BIG;
    }
    if (it->stale_until <= now_ms)
        return -ESTALE;
    plen = strlen(it->primary);
    hv = key_hash(s, it->primary, plen);
    old = find_exact(s, it->primary, plen, hv, secondary);
    if (old != NULL && is_dead(old, now_ms)) {
        unindex(s, old, &s->st.evicted_expired);
        old = NULL;
    }
    if (old != NULL) {
        int order = conflict_order(&old->obj, it);

        if (order < 0) {
            s->st.kept++;
            return -EEXIST;
        }
        if (order == 0) {
            refresh(s, old, it);
            if (out != NULL)
                *out = cstore_ref(&old->obj);
            return 0;
        }
        unindex(s, old, &s->st.evicted_replaced);
    } else {
        variants_make_room(s, it, plen, hv);
    }
    make_room(s, size, now_ms);
    e = entry_new(s, it, size, hv);
    variant_link(s, e);
    DL_APPEND2(s->lru, e, lru_prev, lru_next);
    heap_push(s, e);
    e->indexed = true;
    s->st.objects++;
    s->st.bytes += size;
    s->st.inserted++;
    if (out != NULL)
        *out = cstore_ref(&e->obj);
    return 0;
}

static bool key_ok(const char *key)
{
    return key != NULL && key[0] != '\0' && strnlen(key, CSTORE_KEY_MAX + 1) <= CSTORE_KEY_MAX;
}

const struct cstore_obj *cstore_get(struct cstore *s, const char *primary, const char *secondary,
                                    uint64_t now_ms)
{
    struct entry *e;
    size_t plen;

    if (!key_ok(primary))
        return NULL;
    plen = strlen(primary);
    e = find_exact(s, primary, plen, key_hash(s, primary, plen), or_empty(secondary));
    if (e == NULL)
        return NULL;
    if (is_dead(e, now_ms)) {
        unindex(s, e, &s->st.evicted_expired);
        return NULL;
    }
    touch(s, e);
    return cstore_ref(&e->obj);
}

int cstore_variants(const struct cstore *s, const char *primary, uint64_t now_ms,
                    cstore_visit_fn fn, void *arg)
{
    struct entry *head, *e;
    size_t plen;

    if (!key_ok(primary))
        return 0;
    plen = strlen(primary);
    head = variants_find(s, primary, plen, key_hash(s, primary, plen));
    if (head == NULL)
        return 0;
    e = head;
    do {
        if (!is_dead(e, now_ms)) {
            int rc = fn(&e->obj, arg);

            if (rc != 0)
                return rc;
        }
        e = e->var_next;
    } while (e != head);
    return 0;
}

int cstore_each(const struct cstore *s, uint64_t now_ms, cstore_visit_fn fn, void *arg)
{
    struct entry *e;

    if (s->lru == NULL)
        return 0;
    e = s->lru->lru_prev; /* most recently used */
    for (;;) {
        if (!is_dead(e, now_ms)) {
            int rc = fn(&e->obj, arg);

            if (rc != 0)
                return rc;
        }
        if (e == s->lru)
            return 0;
        e = e->lru_prev;
    }
}

size_t cstore_remove(struct cstore *s, const char *primary)
{
    struct entry *head;
    size_t plen, n = 0;
    unsigned hv;

    if (!key_ok(primary))
        return 0;
    plen = strlen(primary);
    hv = key_hash(s, primary, plen);
    /* Each removal of the head promotes the next variant: look again. */
    while ((head = variants_find(s, primary, plen, hv)) != NULL) {
        unindex(s, head, &s->st.removed);
        n++;
    }
    return n;
}

size_t cstore_sweep(struct cstore *s, uint64_t now_ms, size_t max_items)
{
    size_t n = 0;

    while (n < max_items && s->heap_len > 0 && is_dead(s->heap[0], now_ms)) {
        unindex(s, s->heap[0], &s->st.evicted_expired);
        n++;
    }
    return n;
}

const struct cstore_obj *cstore_ref(const struct cstore_obj *obj)
{
    entry_of(obj)->refs++;
    return obj;
}

void cstore_unref(const struct cstore_obj *obj)
{
    if (obj == NULL)
        return;
    entry_release(entry_of(obj));
}

bool cstore_obj_indexed(const struct cstore_obj *obj)
{
    return entry_of(obj)->indexed;
}

void cstore_stats_get(const struct cstore *s, struct cstore_stats *st)
{
    *st = s->st;
}

/* ---- consistency check ---- */

static bool check_variants(const struct cstore *s, const struct entry *head, size_t *count)
{
    const struct entry *e = head;
    size_t n = 0;

    if (!head->var_head || !head->indexed)
        return false;
    do {
        if (++n > CSTORE_VARIANTS_MAX || !e->indexed || e->var_next->var_prev != e)
            return false;
        if (e != head && (e->var_head || strcmp(e->obj.primary, head->obj.primary) != 0))
            return false;
        for (const struct entry *o = head; o != e; o = o->var_next)
            if (strcmp(o->obj.secondary, e->obj.secondary) == 0)
                return false;
        e = e->var_next;
    } while (e != head);
    *count += n;
    return true;
}

bool cstore_check(const struct cstore *s)
{
    const struct entry *e, *tmp;
    size_t n = 0, bytes = 0, in_index = 0, heads = 0;

    DL_FOREACH2(s->lru, e, lru_next)
    {
        if (!e->indexed || e->store != s || e->refs == 0 || e->heap_idx >= s->heap_len ||
            s->heap[e->heap_idx] != e)
            return false;
        n++;
        bytes += e->obj.size;
    }
    if (n != s->st.objects || bytes != s->st.bytes || bytes > s->cfg.max_bytes || n != s->heap_len)
        return false;
    for (size_t i = 1; i < s->heap_len; i++)
        if (s->heap[(i - 1) / 2]->obj.stale_until > s->heap[i]->obj.stale_until)
            return false;
    HASH_ITER(hh, s->index, e, tmp)
    {
        heads++;
        if (variants_find(s, e->obj.primary, e->plen, e->hv) != e ||
            !check_variants(s, e, &in_index))
            return false;
    }
    n = bytes = 0;
    DL_FOREACH2(s->pinned, e, lru_next)
    {
        if (e->indexed || !e->pinned || e->store != s || e->refs == 0)
            return false;
        n++;
        bytes += e->obj.size;
    }
    if (n != s->st.pinned_objects || bytes != s->st.pinned_bytes)
        return false;
    return heads == s->st.primaries && in_index == s->st.objects;
}
