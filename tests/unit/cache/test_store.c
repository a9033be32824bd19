/* test_store.c - cache/store.c: the byte budget under random load, LRU and
 * expired-first eviction, size refusal, variants, the conflict order,
 * purge, reference counts past eviction (run it under ASan), the bounded
 * sweep, and the inventory walk. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define FOREVER UINT64_MAX

static struct cstore_cfg cfg;
static struct cstore *s;
static char body_buf[1 << 16];

static void setup(void)
{
    cstore_cfg_default(&cfg);
    s = cstore_new(&cfg);
    cr_assert_not_null(s);
    for (size_t i = 0; i < sizeof(body_buf); i++)
        body_buf[i] = (char)('a' + i % 26);
}

static void teardown(void)
{
    cstore_free(s);
    s = NULL;
}

/* Replaces the default store by one with this budget. */
static void budget(size_t max_bytes, size_t max_object)
{
    cstore_free(s);
    cfg.max_bytes = max_bytes;
    cfg.max_object = max_object;
    s = cstore_new(&cfg);
    cr_assert_not_null(s);
}

static struct cstore_item item(const char *primary, const char *secondary, size_t body_len)
{
    struct cstore_item it;

    memset(&it, 0, sizeof(it));
    it.primary = primary;
    it.secondary = secondary;
    it.vary = "";
    it.etag = "";
    it.status = 200;
    it.headers = "Content-Type: text/plain\r\n";
    it.headers_len = strlen(it.headers);
    it.body = body_buf;
    it.body_len = body_len;
    it.date = 1000;
    it.expires_at = FOREVER;
    it.stale_until = FOREVER;
    it.origin = true;
    return it;
}

static int put(const char *primary, const char *secondary, size_t body_len, uint64_t stale_until,
               uint64_t now)
{
    struct cstore_item it = item(primary, secondary, body_len);

    it.expires_at = it.stale_until = stale_until;
    return cstore_insert(s, &it, now, NULL);
}

/* True if (primary, secondary) is stored and alive at now (touches LRU). */
static bool has(const char *primary, const char *secondary, uint64_t now)
{
    const struct cstore_obj *o = cstore_get(s, primary, secondary, now);

    cstore_unref(o);
    return o != NULL;
}

static struct cstore_stats stats(void)
{
    struct cstore_stats st;

    cstore_stats_get(s, &st);
    return st;
}

/* The accounted size recomputed from the object's own fields. */
static size_t obj_size(const struct cstore_obj *o)
{
    return cstore_overhead() + strlen(o->primary) + strlen(o->secondary) + strlen(o->vary) +
           strlen(o->etag) + o->headers_len + o->body_len;
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, new_refuses_bad_config)
{
    struct cstore_cfg bad = {.max_bytes = 0, .max_object = 10};

    cr_assert_null(cstore_new(&bad));
    bad.max_bytes = 10;
    bad.max_object = 0;
    cr_assert_null(cstore_new(&bad));
    cstore_free(NULL);
    cstore_unref(NULL);
}

Test(store, accounted_size_is_overhead_plus_lengths)
{
    struct cstore_item it = item("GET h/x", "gzip", 300);
    const struct cstore_obj *o;

    it.vary = "accept-encoding";
    it.etag = "\"v1\"";
    cr_assert_gt(cstore_overhead(), 100);
    cr_assert_eq(cstore_item_size(&it),
                 cstore_overhead() + 7 + 4 + 15 + 4 + strlen(it.headers) + 300);
    cr_assert_eq(cstore_insert(s, &it, 0, &o), 0);
    cr_assert_eq(o->size, cstore_item_size(&it));
    cr_assert_eq(obj_size(o), o->size);
    cr_assert_eq(stats().bytes, o->size);
    cr_assert_str_eq(o->vary, "accept-encoding");
    cr_assert_eq(memcmp(o->body, body_buf, 300), 0);
    cr_assert_eq(memcmp(o->headers, it.headers, it.headers_len), 0);
    cstore_unref(o);
}

Test(store, lru_evicts_least_recently_used)
{
    size_t one =
        cstore_item_size(&(struct cstore_item){.primary = "A", .headers_len = 26, .body_len = 100});

    budget(3 * one, one);
    cr_assert_eq(put("A", "", 100, FOREVER, 0), 0);
    cr_assert_eq(put("B", "", 100, FOREVER, 0), 0);
    cr_assert_eq(put("C", "", 100, FOREVER, 0), 0);
    cr_assert_eq(stats().bytes, 3 * one);
    cr_assert(has("A", "", 1));
    cr_assert_eq(put("D", "", 100, FOREVER, 2), 0);
    cr_assert_eq(stats().evicted_lru, 1);
    cr_assert_eq(stats().objects, 3);
    cr_assert_not(has("B", "", 3));
    cr_assert(has("A", "", 3));
    cr_assert(has("C", "", 3));
    cr_assert(has("D", "", 3));
    /* A, C, D were just used in that order: E evicts A. */
    cr_assert_eq(put("E", "", 100, FOREVER, 4), 0);
    cr_assert_not(has("A", "", 5));
    cr_assert(has("C", "", 5));
    cr_assert(cstore_check(s));
}

Test(store, dead_objects_go_before_lru)
{
    size_t one =
        cstore_item_size(&(struct cstore_item){.primary = "A", .headers_len = 26, .body_len = 100});

    budget(3 * one, one);
    cr_assert_eq(put("A", "", 100, 100, 0), 0);
    cr_assert_eq(put("B", "", 100, FOREVER, 0), 0);
    cr_assert_eq(put("C", "", 100, FOREVER, 0), 0);
    cr_assert(has("A", "", 10)); /* A is the most recently used now */
    cr_assert_eq(put("D", "", 100, FOREVER, 200), 0);
    cr_assert_eq(stats().evicted_expired, 1);
    cr_assert_eq(stats().evicted_lru, 0);
    cr_assert(has("B", "", 200));
    cr_assert(has("C", "", 200));
    cr_assert(has("D", "", 200));
    /* Nothing dead left: the least recently used (B) goes. */
    cr_assert_eq(put("E", "", 100, FOREVER, 200), 0);
    cr_assert_eq(stats().evicted_lru, 1);
    cr_assert_not(has("B", "", 200));
}

Test(store, too_big_is_refused_and_counted)
{
    struct cstore_item it = item("GET h/big", "", 0);
    size_t fixed = cstore_item_size(&it);

    budget(10000, 1000);
    it.body_len = 1000 - fixed;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), 0); /* exactly max_object */
    it.body_len++;
    it.primary = "GET h/bi2"; /* same length: one byte over */
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -E2BIG);
    it.body_len = SIZE_MAX; /* saturates, never read */
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -E2BIG);
    cr_assert_eq(stats().too_big, 2);
    cr_assert_eq(stats().objects, 1);
    cr_assert_not(has("GET h/bi2", "", 0));

    /* max_object above max_bytes: the budget is the limit. */
    budget(1000, 5000);
    it.body_len = 1001 - fixed;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -E2BIG);
    cr_assert_eq(stats().too_big, 1);
    cr_assert_eq(stats().bytes, 0);
}

Test(store, invalid_items)
{
    char *longkey = malloc(CSTORE_KEY_MAX + 2);
    struct cstore_item it = item("GET h/x", "", 10);

    memset(longkey, 'k', CSTORE_KEY_MAX + 1);
    longkey[CSTORE_KEY_MAX + 1] = '\0';
    it.primary = longkey;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -EINVAL);
    cr_assert_null(cstore_get(s, longkey, "", 0));
    longkey[CSTORE_KEY_MAX] = '\0'; /* exactly the cap */
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), 0);
    cr_assert(has(longkey, "", 0));
    longkey[CSTORE_KEY_MAX] = 'k';
    it.primary = "GET h/x";
    it.secondary = longkey;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -EINVAL);

    it = item("", "", 10);
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -EINVAL);
    it = item("GET h/x", "", 10);
    it.headers_len = CSTORE_HEADERS_MAX + 1;
    it.headers = body_buf;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -EINVAL);
    it = item("GET h/x", "", 10);
    it.status = 99;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -EINVAL);
    it.status = 600;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -EINVAL);
    it = item("GET h/x", "", 10);
    it.body = NULL;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -EINVAL);
    it = item("GET h/x", "", 10);
    it.expires_at = 500;
    it.stale_until = 400;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), -EINVAL);
    it.stale_until = 500;
    cr_assert_eq(cstore_insert(s, &it, 500, NULL), -ESTALE);
    cr_assert_eq(stats().objects, 1);
    cr_assert_eq(stats().too_big, 0);
    free(longkey);
}

Test(store, variants_of_one_primary)
{
    struct cstore_item en = item("GET h/doc", "en", 10);
    struct cstore_item fr = item("GET h/doc", "fr", 20);
    const struct cstore_obj *o;

    en.vary = fr.vary = "accept-language";
    cr_assert_eq(cstore_insert(s, &en, 0, NULL), 0);
    cr_assert_eq(cstore_insert(s, &fr, 0, NULL), 0);
    cr_assert_eq(stats().objects, 2);
    cr_assert_eq(stats().primaries, 1);
    o = cstore_get(s, "GET h/doc", "fr", 0);
    cr_assert_not_null(o);
    cr_assert_eq(o->body_len, 20);
    cr_assert_str_eq(o->secondary, "fr");
    cstore_unref(o);
    o = cstore_get(s, "GET h/doc", "en", 0);
    cr_assert_not_null(o);
    cr_assert_eq(o->body_len, 10);
    cstore_unref(o);
    cr_assert_null(cstore_get(s, "GET h/doc", "de", 0));
    cr_assert_null(cstore_get(s, "GET h/doc", NULL, 0));
}

struct seen {
    size_t n;
    const char *keys[64];
    int stop_at; /* return this from the first visit when non-zero */
};

static int record(const struct cstore_obj *o, void *arg)
{
    struct seen *sn = arg;

    cr_assert_lt(sn->n, 64);
    sn->keys[sn->n++] = strcmp(o->secondary, "") != 0 ? o->secondary : o->primary;
    return sn->stop_at;
}

Test(store, seventeenth_variant_replaces_the_oldest)
{
    char sec[CSTORE_VARIANTS_MAX + 1][8];
    struct seen sn = {0};

    for (int i = 0; i <= CSTORE_VARIANTS_MAX; i++) {
        snprintf(sec[i], sizeof(sec[i]), "v%d", i);
        cr_assert_eq(put("GET h/v", sec[i], 10, FOREVER, (uint64_t)i), 0);
    }
    cr_assert_eq(stats().objects, CSTORE_VARIANTS_MAX);
    cr_assert_eq(stats().evicted_variant, 1);
    cr_assert_eq(stats().primaries, 1);
    cr_assert_not(has("GET h/v", "v0", 100));
    for (int i = 1; i <= CSTORE_VARIANTS_MAX; i++)
        cr_assert(has("GET h/v", sec[i], 100), "%s", sec[i]);
    cr_assert_eq(cstore_variants(s, "GET h/v", 100, record, &sn), 0);
    cr_assert_eq(sn.n, CSTORE_VARIANTS_MAX);
    cr_assert_str_eq(sn.keys[0], "v1"); /* oldest stored first */
    cr_assert_str_eq(sn.keys[CSTORE_VARIANTS_MAX - 1], "v16");
    /* A new copy of a stored variant replaces that one, not the oldest. */
    struct cstore_item it = item("GET h/v", "v5", 10);
    it.date = 2000;
    cr_assert_eq(cstore_insert(s, &it, 200, NULL), 0);
    cr_assert_eq(stats().evicted_variant, 1);
    cr_assert_eq(stats().evicted_replaced, 1);
    cr_assert(has("GET h/v", "v1", 200));
    cr_assert(cstore_check(s));
}

Test(store, conflicts_newer_date_wins_same_etag_refreshes)
{
    struct cstore_item it = item("GET h/c", "", 0);
    const struct cstore_obj *o, *out;

    it.body = "one";
    it.body_len = 3;
    it.etag = "\"a\"";
    it.date = 100;
    it.expires_at = 1000;
    it.stale_until = 2000;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), 0);

    it.body = "two";
    it.etag = "\"b\"";
    it.date = 99;
    cr_assert_eq(cstore_insert(s, &it, 0, &out), -EEXIST);
    cr_assert_null(out);
    cr_assert_eq(stats().kept, 1);
    o = cstore_get(s, "GET h/c", "", 0);
    cr_assert_eq(memcmp(o->body, "one", 3), 0);
    cstore_unref(o);

    it.body = "three";
    it.body_len = 5;
    it.etag = "\"c\"";
    it.date = 101;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), 0);
    cr_assert_eq(stats().evicted_replaced, 1);
    cr_assert_eq(stats().objects, 1);
    o = cstore_get(s, "GET h/c", "", 0);
    cr_assert_eq(o->body_len, 5);
    cr_assert_eq(memcmp(o->body, "three", 5), 0);
    cr_assert_eq(o->date, 101);
    size_t bytes = stats().bytes;

    /* Same Date and ETag: the same content, only the timing moves. */
    it.body = "xx";
    it.body_len = 2;
    it.age_basis = 7;
    it.stored_at = 42;
    it.expires_at = 5000;
    it.stale_until = 9000;
    it.origin = false;
    cr_assert_eq(cstore_insert(s, &it, 10, &out), 0);
    cr_assert_eq(out, o);
    cr_assert_eq(stats().refreshed, 1);
    cr_assert_eq(stats().evicted_replaced, 1);
    cr_assert_eq(stats().bytes, bytes);
    cr_assert_eq(o->body_len, 5);
    cr_assert_eq(memcmp(o->body, "three", 5), 0);
    cr_assert_eq(o->age_basis, 7);
    cr_assert_eq(o->stored_at, 42);
    cr_assert_eq(o->expires_at, 5000);
    cr_assert_eq(o->stale_until, 9000);
    cr_assert(o->origin); /* an origin copy stays one */
    cstore_unref(out);
    cstore_unref(o);
    /* The expiry order followed the refresh. */
    cr_assert_eq(cstore_sweep(s, 2000, 10), 0);
    cr_assert_eq(cstore_sweep(s, 9000, 10), 1);
    cr_assert(cstore_check(s));
}

Test(store, refresh_makes_a_replicated_copy_an_origin_one)
{
    struct cstore_item it = item("GET h/r", "", 4);
    const struct cstore_obj *o;

    it.etag = "\"e\"";
    it.origin = false;
    cr_assert_eq(cstore_insert(s, &it, 0, &o), 0);
    cr_assert_not(o->origin);
    it.origin = true;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), 0);
    cr_assert(o->origin);
    cstore_unref(o);
}

/* Inserts a then b into a fresh store; returns the body of what stays. */
static char winner(struct cstore_item a, struct cstore_item b)
{
    struct cstore *t = cstore_new(&cfg);
    const struct cstore_obj *o;
    char c;

    cstore_insert(t, &a, 0, NULL);
    cstore_insert(t, &b, 0, NULL);
    o = cstore_get(t, a.primary, a.secondary, 0);
    cr_assert_not_null(o);
    c = (char)o->body[0];
    cstore_unref(o);
    cstore_free(t);
    return c;
}

Test(store, equal_dates_converge_whatever_the_arrival_order)
{
    struct cstore_item x = item("GET h/t", "", 1);
    struct cstore_item y = item("GET h/t", "", 1);

    x.body = "X";
    y.body = "Y";
    x.etag = "\"b\"";
    y.etag = "\"a\"";
    cr_assert_eq(winner(x, y), 'X');
    cr_assert_eq(winner(y, x), 'X');
    /* No ETags: the greater body, by length then bytes. */
    x.etag = y.etag = "";
    cr_assert_eq(winner(x, y), 'Y');
    cr_assert_eq(winner(y, x), 'Y');
    y.body = "Zz";
    y.body_len = 2;
    cr_assert_eq(winner(x, y), 'Z');
    cr_assert_eq(winner(y, x), 'Z');
    /* An ETag beats none. */
    x.etag = "\"e\"";
    cr_assert_eq(winner(x, y), 'X');
    cr_assert_eq(winner(y, x), 'X');

    /* No ETags and the same body: the same content, a refresh. */
    x = item("GET h/t", "", 5);
    y = x;
    y.expires_at = y.stale_until = 777;
    cr_assert_eq(cstore_insert(s, &x, 0, NULL), 0);
    cr_assert_eq(cstore_insert(s, &y, 0, NULL), 0);
    cr_assert_eq(stats().refreshed, 1);
    cr_assert_eq(stats().inserted, 1);
}

Test(store, a_dead_copy_does_not_compete)
{
    struct cstore_item it = item("GET h/d", "", 4);

    it.date = 200;
    it.expires_at = it.stale_until = 100;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), 0);
    it.date = 100;
    it.expires_at = it.stale_until = 1000;
    cr_assert_eq(cstore_insert(s, &it, 100, NULL), 0);
    cr_assert_eq(stats().evicted_expired, 1);
    cr_assert_eq(stats().kept, 0);
    cr_assert(has("GET h/d", "", 100));
}

Test(store, get_removes_a_dead_object_and_returns_stale_ones)
{
    struct cstore_item it = item("GET h/g", "", 4);
    const struct cstore_obj *o;

    it.expires_at = 50;
    it.stale_until = 100;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), 0);
    o = cstore_get(s, "GET h/g", "", 99); /* stale, servable */
    cr_assert_not_null(o);
    cstore_unref(o);
    cr_assert_null(cstore_get(s, "GET h/g", "", 100));
    cr_assert_eq(stats().objects, 0);
    cr_assert_eq(stats().evicted_expired, 1);
}

Test(store, remove_takes_every_variant)
{
    cr_assert_eq(put("GET h/p", "a", 10, FOREVER, 0), 0);
    cr_assert_eq(put("GET h/p", "b", 10, FOREVER, 0), 0);
    cr_assert_eq(put("GET h/p", "c", 10, 5, 0), 0); /* dead by now: removed too */
    cr_assert_eq(put("GET h/q", "a", 10, FOREVER, 0), 0);
    cr_assert_eq(cstore_remove(s, "GET h/p"), 3);
    cr_assert_eq(stats().removed, 3);
    cr_assert_eq(stats().objects, 1);
    cr_assert_eq(stats().primaries, 1);
    cr_assert_not(has("GET h/p", "a", 10));
    cr_assert_not(has("GET h/p", "b", 10));
    cr_assert(has("GET h/q", "a", 10));
    cr_assert_eq(cstore_remove(s, "GET h/p"), 0);
    cr_assert_eq(cstore_remove(s, ""), 0);
    cr_assert_eq(stats().bytes,
                 cstore_item_size(&(struct cstore_item){
                     .primary = "GET h/q", .secondary = "a", .headers_len = 26, .body_len = 10}));
    cr_assert(cstore_check(s));
}

Test(store, evicted_object_stays_readable_until_unref)
{
    size_t one = cstore_item_size(
        &(struct cstore_item){.primary = "A", .headers_len = 26, .body_len = 1000});
    const struct cstore_obj *a;
    struct cstore_stats st;

    budget(2 * one, one);
    cr_assert_eq(put("A", "", 1000, FOREVER, 0), 0);
    a = cstore_get(s, "A", "", 0);
    cr_assert_not_null(a);
    cr_assert_eq(put("B", "", 1000, FOREVER, 0), 0);
    cr_assert_eq(put("C", "", 1000, FOREVER, 0), 0); /* evicts A */
    st = stats();
    cr_assert_eq(st.evicted_lru, 1);
    cr_assert_not(cstore_obj_indexed(a));
    cr_assert_null(cstore_get(s, "A", "", 0));
    /* Out of the budget at once, counted as pinned until the last unref. */
    cr_assert_eq(st.bytes, 2 * one);
    cr_assert_eq(st.objects, 2);
    cr_assert_eq(st.pinned_objects, 1);
    cr_assert_eq(st.pinned_bytes, one);
    cr_assert(cstore_check(s));
    /* Readable (ASan reports a use after free otherwise). */
    cr_assert_str_eq(a->primary, "A");
    cr_assert_eq(memcmp(a->body, body_buf, 1000), 0);
    cstore_ref(a);
    cstore_unref(a);
    cr_assert_eq(stats().pinned_objects, 1);
    cstore_unref(a);
    st = stats();
    cr_assert_eq(st.pinned_objects, 0);
    cr_assert_eq(st.pinned_bytes, 0);
    cr_assert(cstore_check(s));
}

Test(store, purged_and_replaced_objects_are_pinned_too)
{
    struct cstore_item it = item("GET h/x", "", 100);
    const struct cstore_obj *old, *purged;

    cr_assert_eq(cstore_insert(s, &it, 0, &old), 0);
    it.date++;
    it.body = "newer body";
    it.body_len = 10;
    cr_assert_eq(cstore_insert(s, &it, 0, NULL), 0);
    cr_assert_not(cstore_obj_indexed(old));
    cr_assert_eq(old->body_len, 100);
    cr_assert_eq(memcmp(old->body, body_buf, 100), 0);
    purged = cstore_get(s, "GET h/x", "", 0);
    cr_assert(cstore_obj_indexed(purged));
    cr_assert_eq(cstore_remove(s, "GET h/x"), 1);
    cr_assert_eq(stats().bytes, 0);
    cr_assert_eq(stats().pinned_objects, 2);
    cr_assert_eq(stats().pinned_bytes, old->size + purged->size);
    cr_assert_eq(memcmp(purged->body, "newer body", 10), 0);
    cstore_unref(purged);
    cr_assert_eq(stats().pinned_bytes, old->size);
    cstore_unref(old);
    cr_assert_eq(stats().pinned_bytes, 0);
}

Test(store, references_outlive_the_store)
{
    const struct cstore_obj *a, *b;

    cr_assert_eq(put("A", "", 50, FOREVER, 0), 0);
    cr_assert_eq(put("B", "", 60, FOREVER, 0), 0);
    a = cstore_get(s, "A", "", 0);
    b = cstore_get(s, "B", "", 0);
    cr_assert_eq(cstore_remove(s, "B"), 1); /* b pinned, a indexed */
    cstore_free(s);
    s = NULL;
    cr_assert_eq(a->body_len, 50);
    cr_assert_eq(memcmp(b->body, body_buf, 60), 0);
    cstore_unref(a);
    cstore_unref(b); /* LeakSanitizer checks both were freed */
}

Test(store, sweep_is_bounded_and_continues)
{
    char key[16];

    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "dead%d", i);
        cr_assert_eq(put(key, "", 10, 100 + (uint64_t)i, 0), 0);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "live%d", i);
        cr_assert_eq(put(key, "", 10, 1000, 0), 0);
    }
    cr_assert_eq(cstore_sweep(s, 99, 100), 0);
    cr_assert_eq(cstore_sweep(s, 500, 0), 0);
    /* At 105, dead0..dead5 are dead: four go, earliest first. */
    cr_assert_eq(cstore_sweep(s, 105, 4), 4);
    cr_assert_eq(stats().objects, 11);
    cr_assert_not(has("dead3", "", 0));
    cr_assert(has("dead4", "", 0));
    cr_assert_eq(cstore_sweep(s, 500, 3), 3);
    cr_assert_eq(cstore_sweep(s, 500, 3), 3);
    cr_assert_eq(cstore_sweep(s, 500, 3), 0);
    cr_assert_eq(stats().objects, 5);
    cr_assert_eq(stats().evicted_expired, 10);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "live%d", i);
        cr_assert(has(key, "", 500), "%s", key);
    }
    cr_assert_eq(cstore_sweep(s, 1000, 2), 2);
    cr_assert_eq(cstore_sweep(s, 1000, 10), 3);
    cr_assert_eq(stats().objects, 0);
    cr_assert_eq(stats().bytes, 0);
    cr_assert_eq(stats().primaries, 0);
}

Test(store, each_sees_exactly_the_live_objects)
{
    const struct cstore_obj *e;
    struct seen sn = {0};

    cr_assert_eq(put("a", "", 1, FOREVER, 0), 0);
    cr_assert_eq(put("b", "", 1, FOREVER, 0), 0);
    cr_assert_eq(put("c", "", 1, FOREVER, 0), 0);
    cr_assert_eq(put("d", "", 1, 50, 0), 0); /* dead at 100, not swept */
    cr_assert_eq(put("e", "", 1, FOREVER, 0), 0);
    cr_assert_eq(put("f", "", 1, FOREVER, 0), 0);
    cr_assert_eq(cstore_remove(s, "c"), 1);
    e = cstore_get(s, "e", "", 0);
    cr_assert_eq(cstore_remove(s, "e"), 1); /* pinned: not in the inventory */
    cr_assert_eq(cstore_each(s, 100, record, &sn), 0);
    cr_assert_eq(sn.n, 3);
    cr_assert_str_eq(sn.keys[0], "f"); /* most recently used first */
    cr_assert_str_eq(sn.keys[1], "b");
    cr_assert_str_eq(sn.keys[2], "a");
    cr_assert(has("a", "", 100));
    sn.n = 0;
    cr_assert_eq(cstore_each(s, 100, record, &sn), 0);
    cr_assert_eq(sn.n, 3);
    cr_assert_str_eq(sn.keys[0], "a");
    sn.n = 0;
    sn.stop_at = 7;
    cr_assert_eq(cstore_each(s, 100, record, &sn), 7);
    cr_assert_eq(sn.n, 1);
    cstore_unref(e);
}

/* ---- random load ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t n)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (rng * 0x2545f4914f6cdd1dull) % n;
}

struct sum {
    size_t n;
    size_t bytes;
};

static int add_up(const struct cstore_obj *o, void *arg)
{
    struct sum *sm = arg;

    cr_assert_eq(o->size, obj_size(o));
    sm->n++;
    sm->bytes += o->size;
    return 0;
}

#define HELD 32

static void check_all(const struct cstore_obj **held, size_t nheld)
{
    struct cstore_stats st = stats();
    struct sum sm = {0};
    size_t pinned = 0, pinned_n = 0;

    cr_assert_leq(st.bytes, cfg.max_bytes);
    cr_assert_eq(cstore_each(s, 0, add_up, &sm), 0); /* at 0 nothing is dead */
    cr_assert_eq(sm.bytes, st.bytes);
    cr_assert_eq(sm.n, st.objects);
    cr_assert_eq(st.objects, st.inserted - st.evicted_lru - st.evicted_expired -
                                 st.evicted_replaced - st.evicted_variant - st.removed);
    for (size_t i = 0; i < nheld; i++) {
        bool dup = false;

        for (size_t j = 0; j < i; j++)
            dup |= held[j] == held[i];
        if (!dup && !cstore_obj_indexed(held[i])) {
            pinned += held[i]->size;
            pinned_n++;
        }
    }
    cr_assert_eq(st.pinned_bytes, pinned);
    cr_assert_eq(st.pinned_objects, pinned_n);
    cr_assert(cstore_check(s));
}

Test(store, budget_holds_under_random_load, .timeout = 60)
{
    static const char *etags[] = {"", "\"a\"", "\"b\""};
    const struct cstore_obj *held[HELD];
    size_t nheld = 0, inserts = 0;
    uint64_t now = 1;
    char primary[32], secondary[16];
    struct cstore_stats st;

    budget(128 * 1024, 24 * 1024);
    while (inserts < 10000) {
        uint64_t op = rnd(100);

        now += rnd(8);
        snprintf(primary, sizeof(primary), "GET h/%u", (unsigned)rnd(4));
        secondary[0] = rnd(4) == 0 ? '\0' : (char)('a' + rnd(18));
        secondary[1] = '\0';
        if (op < 60) {
            size_t len = (size_t)(rnd(5) == 0 ? rnd(26 * 1024) : rnd(1024));
            struct cstore_item it = item(primary, secondary, len);
            const struct cstore_obj *o = NULL;
            int rc;

            it.vary = secondary[0] != '\0' ? "accept-language" : "";
            it.etag = etags[rnd(3)];
            it.date = 1000 + (int64_t)rnd(2);
            it.expires_at = now + rnd(500);
            it.stale_until = it.expires_at + rnd(3000);
            rc = cstore_insert(s, &it, now, nheld < HELD ? &o : NULL);
            cr_assert(rc == 0 || rc == -E2BIG || rc == -EEXIST || rc == -ESTALE, "rc %d", rc);
            cr_assert_eq(rc == -E2BIG, cstore_item_size(&it) > cfg.max_object);
            if (o != NULL)
                held[nheld++] = o;
            inserts++;
        } else if (op < 75) {
            const struct cstore_obj *o = cstore_get(s, primary, secondary, now);

            if (o != NULL) {
                cr_assert_str_eq(o->primary, primary);
                cr_assert_gt(o->stale_until, now);
                if (nheld < HELD)
                    held[nheld++] = o;
                else
                    cstore_unref(o);
            }
        } else if (op < 88) {
            if (nheld > 0) {
                size_t i = (size_t)rnd(nheld);

                cr_assert_eq(held[i]->size, obj_size(held[i])); /* still readable */
                cstore_unref(held[i]);
                held[i] = held[--nheld];
            }
        } else if (op < 90) {
            cstore_remove(s, primary);
        } else {
            cstore_sweep(s, now, (size_t)rnd(6));
        }
        check_all(held, nheld);
    }
    st = stats();
    /* The load went through every path. */
    cr_assert_gt(st.evicted_lru, 100);
    cr_assert_gt(st.evicted_expired, 100);
    cr_assert_gt(st.evicted_replaced, 10);
    cr_assert_gt(st.too_big, 10);
    cr_assert_gt(st.kept, 10);
    cr_assert_gt(st.refreshed, 10);
    cr_assert_gt(st.removed, 10);
    cr_assert_gt(st.evicted_variant, 0);
    while (nheld > 0)
        cstore_unref(held[--nheld]);
    check_all(held, 0);
}
