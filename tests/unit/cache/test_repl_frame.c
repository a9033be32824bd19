/* test_repl_frame.c - cache/repl_frame.c and cache/repl_payload.c: round
 * trips of every frame type, the stream decoder under any split of its
 * input, one test per rejection (header, tag, sequence, handshake, payload,
 * body), the worked example of docs/replication.md byte for byte, and
 * random streams (run it under ASan). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_frame.h"

#define STREAM_MAX (1 << 20)
#define FRAMES_MAX 64

struct got_frame {
    enum rframe_type type;
    uint64_t seq;
    size_t len;
    uint8_t *payload;
};

struct got {
    size_t n;
    struct got_frame f[FRAMES_MAX];
    int fail_at; /* callback returns -EIO on this frame (1-based); 0: never */
};

static struct key_ring kr_a;  /* key 00..1f: the docs' test key */
static struct key_ring kr_b;  /* another cluster */
static struct key_ring kr_ba; /* rotation: b first, a second */
static uint8_t nonce_a[RFRAME_NONCE_LEN];
static uint8_t nonce_b[RFRAME_NONCE_LEN];
static struct rframe_tx tx; /* A's sending side */
static uint8_t *stream;     /* A's bytes to B */
static size_t slen;
static struct got got;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void got_clear(struct got *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->f[i].payload);
    memset(g, 0, sizeof(*g));
}

static int collect(const struct rframe_frame *f, void *arg)
{
    struct got *g = arg;
    struct got_frame *gf;

    cr_assert_lt(g->n, FRAMES_MAX);
    gf = &g->f[g->n++];
    gf->type = f->type;
    gf->seq = f->seq;
    gf->len = f->len;
    gf->payload = malloc(f->len + 1);
    cr_assert_not_null(gf->payload);
    memcpy(gf->payload, f->payload, f->len);
    if (g->fail_at > 0 && (size_t)g->fail_at == g->n)
        return -EIO;
    return 0;
}

static void setup(void)
{
    memset(&kr_a, 0, sizeof(kr_a));
    memset(&kr_b, 0, sizeof(kr_b));
    memset(&kr_ba, 0, sizeof(kr_ba));
    kr_a.n = 1;
    kr_b.n = 1;
    kr_ba.n = 2;
    for (int i = 0; i < 32; i++) {
        kr_a.k[0][i] = (uint8_t)i;
        kr_b.k[0][i] = (uint8_t)(0x40 + i);
    }
    memcpy(kr_ba.k[0], kr_b.k[0], 32);
    memcpy(kr_ba.k[1], kr_a.k[0], 32);
    for (int i = 0; i < RFRAME_NONCE_LEN; i++) {
        nonce_a[i] = (uint8_t)(0xa0 + i);
        nonce_b[i] = (uint8_t)(0xb0 + i);
    }
    stream = malloc(STREAM_MAX);
    cr_assert_not_null(stream);
    slen = 0;
    memset(&got, 0, sizeof(got));
    rframe_tx_init(&tx, &kr_a, nonce_a);
}

static void teardown(void)
{
    got_clear(&got);
    free(stream);
    stream = NULL;
    rframe_tx_done(&tx);
}

TestSuite(repl_frame, .init = setup, .fini = teardown);

/* Appends an encoder's result to the stream; returns the frame's offset. */
static size_t add(int n)
{
    size_t at = slen;

    cr_assert_gt(n, 0, "encoder failed: %d", n);
    slen += (size_t)n;
    return at;
}

#define ROOM (STREAM_MAX - slen)

/* A's HELLO, then A knows B's nonce (as after B's HELLO). */
static void hello(void)
{
    add(rframe_encode_hello(&tx, "node-a", stream + slen, ROOM));
    rframe_tx_set_peer(&tx, nonce_b);
}

/* Feeds stream[0..n) to a fresh decoder for B in one call; returns rc. */
static int feed_all(const struct key_ring *kr, size_t n, enum rframe_reason *why)
{
    struct rframe_decoder *dec = rframe_decoder_new(kr, nonce_b);
    int rc = rframe_feed(dec, stream, n, collect, &got);

    if (rc == 0)
        rc = rframe_finish(dec);
    *why = rframe_decoder_reason(dec);
    rframe_decoder_free(dec);
    return rc;
}

/* Feeds the whole stream to B; expects this rejection. */
static void expect_reject(const struct key_ring *kr, int want_rc, enum rframe_reason want)
{
    enum rframe_reason why;
    int rc = feed_all(kr, slen, &why);

    cr_assert_eq(rc, want_rc, "rc %d, want %d", rc, want_rc);
    cr_assert_eq(why, want, "reason %s, want %s", rframe_reason_name(why),
                 rframe_reason_name(want));
}

static struct rframe_frame as_frame(const struct got_frame *g)
{
    struct rframe_frame f = {.type = g->type, .seq = g->seq, .payload = g->payload, .len = g->len};
    return f;
}

static struct rframe_str S(const char *s) {
    struct rframe_str r = {.p = s, .len = strlen(s)};
    return r;
}

static const uint8_t body_bytes[] = "0123456789abcdefghij";

static void sample_object(struct rframe_object *o)
{
    static const char hdrs[] = "content-type: text/plain\r\n\0binary";

    memset(o, 0, sizeof(*o));
    o->id = 7;
    o->primary = S("GET example.com/a?b");
    o->secondary = S("gzip");
    o->vary = S("accept-encoding");
    o->etag = S("\"v1\"");
    o->headers.p = hdrs;
    o->headers.len = sizeof(hdrs);
    o->status = 200;
    o->date = 1700000000;
    o->age_basis = 12;
    o->ttl = 288;
    o->stale = 60;
    o->body_size = 20;
    crypto_hash_sha256(o->sha256, body_bytes, 20);
}

/* --- round trips --- */

Test(repl_frame, every_type_round_trips)
{
    struct rframe_object o, od;
    struct rframe_chunk c = {.id = 7, .offset = 0, .data = body_bytes, .len = 20}, cd;
    struct rframe_purge p = {.kind = RFRAME_PURGE_INVALIDATE, .primary = S("GET example.com/a")},
                        pd;
    struct rframe_inv_entry inv[3] = {
        {S("GET a/1"), S(""), S("\"x\""), 1},
        {S("GET a/2"), S("br"), S(""), 2},
        {S("GET a/3"), S("gzip"), S("W/\"y\""), 3},
    };
    struct rframe_inv_entry e;
    struct rframe_inventory_end ie = {.pages = 1, .entries = 3}, ied;
    struct rframe_inventory id;
    struct rframe_hello h;
    struct rframe_frame f;
    enum rframe_reason why;
    uint64_t end_id;
    size_t pos = 0;

    sample_object(&o);
    hello();
    add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    add(rframe_encode_object_begin(&tx, &o, stream + slen, ROOM));
    add(rframe_encode_object_chunk(&tx, &c, stream + slen, ROOM));
    add(rframe_encode_object_end(&tx, 7, stream + slen, ROOM));
    add(rframe_encode_purge(&tx, &p, stream + slen, ROOM));
    add(rframe_encode_sync_request(&tx, stream + slen, ROOM));
    add(rframe_encode_inventory(&tx, 0, inv, 3, stream + slen, ROOM));
    add(rframe_encode_inventory_end(&tx, &ie, stream + slen, ROOM));
    cr_assert_eq(feed_all(&kr_a, slen, &why), 0);
    cr_assert_eq(why, RFRAME_R_NONE);
    cr_assert_eq(got.n, 9);
    for (size_t i = 0; i < got.n; i++) {
        cr_assert_eq(got.f[i].seq, i + 1);
        cr_assert_eq(got.f[i].type, (enum rframe_type)(RFRAME_HELLO + i));
    }

    f = as_frame(&got.f[0]);
    cr_assert_eq(rframe_decode_hello(&f, &h, NULL), 0);
    cr_assert_str_eq(h.name, "node-a");
    cr_assert_eq(h.version, 1);
    cr_assert_arr_eq(h.nonce, nonce_a, RFRAME_NONCE_LEN);

    f = as_frame(&got.f[1]);
    cr_assert_eq(rframe_decode_empty(&f, NULL), 0);

    f = as_frame(&got.f[2]);
    cr_assert_eq(rframe_decode_object_begin(&f, &od, NULL), 0);
    cr_assert_eq(od.id, 7);
    cr_assert_eq(od.status, 200);
    cr_assert_eq(od.date, 1700000000);
    cr_assert_eq(od.age_basis, 12);
    cr_assert_eq(od.ttl, 288);
    cr_assert_eq(od.stale, 60);
    cr_assert_eq(od.body_size, 20);
    cr_assert_arr_eq(od.sha256, o.sha256, 32);
    cr_assert_eq(od.primary.len, o.primary.len);
    cr_assert_arr_eq(od.primary.p, o.primary.p, o.primary.len);
    cr_assert_arr_eq(od.secondary.p, "gzip", 4);
    cr_assert_arr_eq(od.vary.p, "accept-encoding", 15);
    cr_assert_arr_eq(od.etag.p, "\"v1\"", 4);
    cr_assert_eq(od.headers.len, o.headers.len);
    cr_assert_arr_eq(od.headers.p, o.headers.p, o.headers.len);

    f = as_frame(&got.f[3]);
    cr_assert_eq(rframe_decode_object_chunk(&f, &cd, NULL), 0);
    cr_assert_eq(cd.id, 7);
    cr_assert_eq(cd.offset, 0);
    cr_assert_eq(cd.len, 20);
    cr_assert_arr_eq(cd.data, body_bytes, 20);

    f = as_frame(&got.f[4]);
    cr_assert_eq(rframe_decode_object_end(&f, &end_id, NULL), 0);
    cr_assert_eq(end_id, 7);

    f = as_frame(&got.f[5]);
    cr_assert_eq(rframe_decode_purge(&f, &pd, NULL), 0);
    cr_assert_eq(pd.kind, RFRAME_PURGE_INVALIDATE);
    cr_assert_eq(pd.primary.len, 17);
    cr_assert_arr_eq(pd.primary.p, "GET example.com/a", 17);

    f = as_frame(&got.f[6]);
    cr_assert_eq(rframe_decode_empty(&f, NULL), 0);

    f = as_frame(&got.f[7]);
    cr_assert_eq(rframe_decode_inventory(&f, &id, NULL), 0);
    cr_assert_eq(id.page, 0);
    cr_assert_eq(id.count, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rframe_inventory_next(&id, &pos, &e), 1);
        cr_assert_eq(e.primary.len, inv[i].primary.len);
        cr_assert_arr_eq(e.primary.p, inv[i].primary.p, e.primary.len);
        cr_assert_eq(e.secondary.len, inv[i].secondary.len);
        cr_assert_arr_eq(e.etag.p, inv[i].etag.p, e.etag.len);
        cr_assert_eq(e.date, i + 1);
    }
    cr_assert_eq(rframe_inventory_next(&id, &pos, &e), 0);

    f = as_frame(&got.f[8]);
    cr_assert_eq(rframe_decode_inventory_end(&f, &ied, NULL), 0);
    cr_assert_eq(ied.pages, 1);
    cr_assert_eq(ied.entries, 3);
}

Test(repl_frame, decoders_refuse_another_type)
{
    struct rframe_object o;
    struct rframe_purge p;
    enum rframe_reason why;
    struct rframe_frame f;
    const char *w = NULL;

    hello();
    add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    cr_assert_eq(feed_all(&kr_a, slen, &why), 0);
    f = as_frame(&got.f[1]);
    cr_assert_eq(rframe_decode_object_begin(&f, &o, &w), -EBADMSG);
    cr_assert_str_eq(w, "type");
    cr_assert_eq(rframe_decode_purge(&f, &p, NULL), -EBADMSG);
}

/* --- stream splits --- */

static void build_mixed_stream(void)
{
    struct rframe_object o;
    struct rframe_chunk c = {.id = 7, .offset = 0, .data = body_bytes, .len = 20};
    struct rframe_purge p = {.kind = RFRAME_PURGE_REMOVE, .primary = S("GET x/y")};

    sample_object(&o);
    hello();
    for (int i = 0; i < 3; i++)
        add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    add(rframe_encode_object_begin(&tx, &o, stream + slen, ROOM));
    add(rframe_encode_object_chunk(&tx, &c, stream + slen, ROOM));
    add(rframe_encode_object_end(&tx, 7, stream + slen, ROOM));
    add(rframe_encode_purge(&tx, &p, stream + slen, ROOM));
}

static void assert_same(const struct got *a, const struct got *b)
{
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_eq(a->f[i].type, b->f[i].type);
        cr_assert_eq(a->f[i].seq, b->f[i].seq);
        cr_assert_eq(a->f[i].len, b->f[i].len);
        cr_assert_arr_eq(a->f[i].payload, b->f[i].payload, a->f[i].len);
    }
}

Test(repl_frame, byte_by_byte_and_random_splits_agree)
{
    struct got whole = {0}, split = {0};
    struct rframe_decoder *dec;

    build_mixed_stream();
    dec = rframe_decoder_new(&kr_a, nonce_b);
    cr_assert_eq(rframe_feed(dec, stream, slen, collect, &whole), 0);
    cr_assert_eq(rframe_finish(dec), 0);
    rframe_decoder_free(dec);
    cr_assert_eq(whole.n, 8);

    dec = rframe_decoder_new(&kr_a, nonce_b);
    for (size_t i = 0; i < slen; i++)
        cr_assert_eq(rframe_feed(dec, stream + i, 1, collect, &split), 0);
    cr_assert_eq(rframe_finish(dec), 0);
    rframe_decoder_free(dec);
    assert_same(&whole, &split);
    got_clear(&split);

    for (int round = 0; round < 50; round++) {
        size_t at = 0;

        dec = rframe_decoder_new(&kr_a, nonce_b);
        while (at < slen) {
            size_t n = 1 + rnd() % 700;

            if (n > slen - at)
                n = slen - at;
            cr_assert_eq(rframe_feed(dec, stream + at, n, collect, &split), 0);
            at += n;
        }
        cr_assert_eq(rframe_finish(dec), 0);
        rframe_decoder_free(dec);
        assert_same(&whole, &split);
        got_clear(&split);
    }
    got_clear(&whole);
}

Test(repl_frame, rotation_second_key_accepted)
{
    enum rframe_reason why;

    hello();
    add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    cr_assert_eq(feed_all(&kr_ba, slen, &why), 0);
    cr_assert_eq(got.n, 2);
}

/* --- header rejections --- */

Test(repl_frame, bad_magic)
{

    hello();
    stream[0] = 'X';
    expect_reject(&kr_a, -EPROTO, RFRAME_R_BAD_MAGIC);
    cr_assert_eq(got.n, 0);
}

Test(repl_frame, bad_version)
{

    hello();
    stream[4] = 2;
    expect_reject(&kr_a, -EPROTONOSUPPORT, RFRAME_R_BAD_VERSION);
}

Test(repl_frame, flags_set_is_bad_version)
{

    hello();
    stream[7] = 1;
    expect_reject(&kr_a, -EPROTONOSUPPORT, RFRAME_R_BAD_VERSION);
}

Test(repl_frame, bad_type)
{

    hello();
    stream[5] = RFRAME_TYPE_MAX;
    expect_reject(&kr_a, -ENOMSG, RFRAME_R_BAD_TYPE);
    stream[5] = 0;
    expect_reject(&kr_a, -ENOMSG, RFRAME_R_BAD_TYPE);
}

/* The length is refused from the 20 header bytes alone. */
Test(repl_frame, oversize_length_refused_from_header)
{
    struct rframe_decoder *dec = rframe_decoder_new(&kr_a, nonce_b);
    size_t h;

    hello();
    h = add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    cr_assert_eq(rframe_feed(dec, stream, h, collect, &got), 0);
    /* a heartbeat's payload is empty: length 1 is already too large */
    stream[h + 19] = 1;
    cr_assert_eq(rframe_feed(dec, stream + h, RFRAME_HDR_LEN, collect, &got), -EMSGSIZE);
    cr_assert_eq(rframe_decoder_reason(dec), RFRAME_R_TOO_LARGE);
    /* failed for good: even valid bytes are refused now */
    cr_assert_eq(rframe_feed(dec, stream, 1, collect, &got), -EMSGSIZE);
    rframe_decoder_free(dec);

    /* an INVENTORY announcing 256 KiB + 1 */
    dec = rframe_decoder_new(&kr_a, nonce_b);
    cr_assert_eq(rframe_feed(dec, stream, h, collect, &got), 0);
    stream[h + 5] = RFRAME_INVENTORY;
    stream[h + 16] = 0;
    stream[h + 17] = 0x04;
    stream[h + 18] = 0;
    stream[h + 19] = 1;
    cr_assert_eq(rframe_feed(dec, stream + h, RFRAME_HDR_LEN, collect, &got), -EMSGSIZE);
    rframe_decoder_free(dec);
    stream[h + 16] = 0xff;
    dec = rframe_decoder_new(&kr_a, nonce_b);
    cr_assert_eq(rframe_feed(dec, stream, h + RFRAME_HDR_LEN, collect, &got), -EMSGSIZE);
    rframe_decoder_free(dec);
}

/* --- tag rejections --- */

Test(repl_frame, flipped_payload_bit_is_bad_mac)
{
    struct rframe_purge p = {.kind = RFRAME_PURGE_REMOVE, .primary = S("GET x/y")};
    size_t at;

    hello();
    at = add(rframe_encode_purge(&tx, &p, stream + slen, ROOM));
    stream[at + RFRAME_HDR_LEN + 4] ^= 0x01;
    expect_reject(&kr_a, -EACCES, RFRAME_R_BAD_MAC);
    cr_assert_eq(got.n, 1, "the HELLO passed, the purge did not");
}

Test(repl_frame, flipped_tag_bit_is_bad_mac)
{

    hello();
    add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    stream[slen - 1] ^= 0x80;
    expect_reject(&kr_a, -EACCES, RFRAME_R_BAD_MAC);
}

Test(repl_frame, tag_from_another_key_is_bad_mac)
{

    hello();
    expect_reject(&kr_b, -EACCES, RFRAME_R_BAD_MAC);
}

/* A frame of an earlier connection (other nonces) does not verify here,
 * even with the right key and the right sequence number. */
Test(repl_frame, frame_of_old_connection_is_bad_mac)
{
    uint8_t old_nonce[RFRAME_NONCE_LEN];
    struct rframe_tx old;
    uint8_t fr[256];
    int n;

    memset(old_nonce, 0x55, sizeof(old_nonce));
    rframe_tx_init(&old, &kr_a, nonce_a);
    cr_assert_gt(rframe_encode_hello(&old, "node-a", fr, sizeof(fr)), 0);
    rframe_tx_set_peer(&old, old_nonce); /* B's nonce back then */
    n = rframe_encode_heartbeat(&old, fr, sizeof(fr));
    cr_assert_gt(n, 0);
    hello();
    memcpy(stream + slen, fr, (size_t)n);
    slen += (size_t)n;
    expect_reject(&kr_a, -EACCES, RFRAME_R_BAD_MAC);
}

/* --- sequence rejections --- */

Test(repl_frame, replayed_sequence)
{
    size_t hb;
    int n;

    hello();
    hb = add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    n = (int)(slen - hb);
    add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    memcpy(stream + slen, stream + hb, (size_t)n); /* seq 2 again after 3 */
    slen += (size_t)n;
    expect_reject(&kr_a, -EALREADY, RFRAME_R_REPLAYED);
    cr_assert_eq(got.n, 3);
}

Test(repl_frame, out_of_order_sequence)
{
    uint8_t f2[128], f3[128];
    int n2, n3;

    hello();
    n2 = rframe_encode_heartbeat(&tx, f2, sizeof(f2));
    n3 = rframe_encode_heartbeat(&tx, f3, sizeof(f3));
    cr_assert_gt(n2, 0);
    cr_assert_gt(n3, 0);
    memcpy(stream + slen, f3, (size_t)n3);
    slen += (size_t)n3;
    memcpy(stream + slen, f2, (size_t)n2);
    slen += (size_t)n2;
    expect_reject(&kr_a, -EILSEQ, RFRAME_R_SEQ_GAP);
    cr_assert_eq(got.n, 1);
}

/* --- handshake order --- */

Test(repl_frame, frame_before_hello_is_unexpected)
{
    int n;

    hello();
    slen = 0;
    n = rframe_encode_heartbeat(&tx, stream, ROOM);
    slen = (size_t)n;
    expect_reject(&kr_a, -ENOTCONN, RFRAME_R_UNEXPECTED);
}

Test(repl_frame, second_hello_is_unexpected)
{
    struct rframe_tx tx2;

    hello();
    rframe_tx_init(&tx2, &kr_a, nonce_a);
    add(rframe_encode_hello(&tx2, "node-a", stream + slen, ROOM));
    expect_reject(&kr_a, -ENOTCONN, RFRAME_R_UNEXPECTED);
}

Test(repl_frame, reflected_hello_is_unexpected)
{
    struct rframe_decoder *dec = rframe_decoder_new(&kr_a, nonce_a); /* A reads its own */

    hello();
    cr_assert_eq(rframe_feed(dec, stream, slen, collect, &got), -ENOTCONN);
    cr_assert_eq(rframe_decoder_reason(dec), RFRAME_R_UNEXPECTED);
    rframe_decoder_free(dec);
}

Test(repl_frame, malformed_hello_in_stream)
{
    uint8_t *p = stream + RFRAME_HDR_LEN;

    /* version 1, nonce, name "a b": a signed but invalid name */
    p[0] = 0;
    p[1] = 1;
    memcpy(p + 2, nonce_a, RFRAME_NONCE_LEN);
    p[18] = 3;
    memcpy(p + 19, "a b", 3);
    slen = (size_t)rframe_seal(&tx, RFRAME_HELLO, stream, STREAM_MAX, 22);
    expect_reject(&kr_a, -EBADMSG, RFRAME_R_MALFORMED);
}

Test(repl_frame, truncated_at_finish)
{
    struct rframe_decoder *dec = rframe_decoder_new(&kr_a, nonce_b);

    hello();
    add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    cr_assert_eq(rframe_feed(dec, stream, slen - 1, collect, &got), 0);
    cr_assert_eq(got.n, 1);
    cr_assert_eq(rframe_finish(dec), -EPIPE);
    cr_assert_eq(rframe_decoder_reason(dec), RFRAME_R_TRUNCATED);
    rframe_decoder_free(dec);

    /* in the header too */
    dec = rframe_decoder_new(&kr_a, nonce_b);
    cr_assert_eq(rframe_feed(dec, stream, 5, collect, &got), 0);
    cr_assert_eq(rframe_finish(dec), -EPIPE);
    rframe_decoder_free(dec);
}

Test(repl_frame, callback_error_stops_and_sticks)
{
    struct rframe_decoder *dec = rframe_decoder_new(&kr_a, nonce_b);

    hello();
    add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    got.fail_at = 2;
    cr_assert_eq(rframe_feed(dec, stream, slen, collect, &got), -EIO);
    cr_assert_eq(got.n, 2, "the third frame was not delivered");
    cr_assert_eq(rframe_decoder_reason(dec), RFRAME_R_CALLBACK);
    cr_assert_eq(rframe_finish(dec), -EIO);
    rframe_decoder_free(dec);
}

/* --- encoder contracts --- */

Test(repl_frame, encoder_contracts)
{
    struct rframe_object o;
    uint8_t small[RFRAME_HDR_LEN + RFRAME_TAG_LEN + 10];
    struct rframe_chunk c = {.id = 1, .offset = 0, .data = body_bytes, .len = 20};

    cr_assert_eq(rframe_encode_heartbeat(&tx, stream, ROOM), -ENOTCONN, "HELLO comes first");
    cr_assert_eq(rframe_encode_hello(&tx, "bad name", stream, ROOM), -EINVAL);
    cr_assert_eq(rframe_encode_hello(&tx, "node-a", stream, 30), -EMSGSIZE);
    cr_assert_eq(tx.seq, 0, "failures do not use a sequence number");
    hello();
    cr_assert_eq(rframe_encode_hello(&tx, "node-a", stream, ROOM), -ENOTCONN);
    cr_assert_eq(rframe_encode_object_chunk(&tx, &c, small, sizeof(small)), -EMSGSIZE);
    cr_assert_eq(rframe_encode_heartbeat(&tx, small, RFRAME_HDR_LEN + RFRAME_TAG_LEN),
                 RFRAME_HDR_LEN + RFRAME_TAG_LEN);
    sample_object(&o);
    o.age_basis = -1;
    cr_assert_eq(rframe_encode_object_begin(&tx, &o, stream, ROOM), -EINVAL);
    sample_object(&o);
    o.body_size = RFRAME_BODY_MAX + 1;
    cr_assert_eq(rframe_encode_object_begin(&tx, &o, stream, ROOM), -EINVAL);
    c.offset = RFRAME_BODY_MAX - 10;
    cr_assert_eq(rframe_encode_object_chunk(&tx, &c, stream, ROOM), -EINVAL);
}

/* --- malformed payloads: signed correctly, wrong inside --- */

/* Writes an OBJECT_BEGIN payload by hand, field by field. */
static size_t raw_begin(uint8_t *p, uint64_t id, unsigned status, int64_t age, uint64_t size,
                        size_t primary_len, char fill)
{
    size_t n = 0;
    uint64_t v[] = {id, 1700000000, (uint64_t)age, 100, 0, size};

    for (int i = 7; i >= 0; i--)
        p[n + (size_t)(7 - i)] = (uint8_t)(v[0] >> (8 * i));
    n += 8;
    p[n++] = (uint8_t)(status >> 8);
    p[n++] = (uint8_t)status;
    for (int k = 1; k < 6; k++, n += 8) {
        for (int i = 7; i >= 0; i--)
            p[n + (size_t)(7 - i)] = (uint8_t)(v[k] >> (8 * i));
    }
    memset(p + n, 0x11, 32);
    n += 32;
    p[n++] = (uint8_t)(primary_len >> 8);
    p[n++] = (uint8_t)primary_len;
    memset(p + n, fill, primary_len);
    n += primary_len;
    memset(p + n, 0, 2 + 2 + 2 + 4); /* empty secondary, vary, etag, headers */
    return n + 10;
}

static int begin_decodes(size_t plen, const char **why)
{
    struct rframe_object o;
    struct rframe_frame f = {
        .type = RFRAME_OBJECT_BEGIN, .seq = 2, .payload = stream + RFRAME_HDR_LEN, .len = plen};

    return rframe_decode_object_begin(&f, &o, why);
}

Test(repl_frame, object_begin_raw_is_valid)
{
    const char *why = NULL;

    cr_assert_eq(begin_decodes(raw_begin(stream + RFRAME_HDR_LEN, 1, 200, 5, 10, 8, 'k'), &why), 0,
                 "%s", why);
}

Test(repl_frame, malformed_key_too_long)
{
    const char *why = NULL;
    size_t n = raw_begin(stream + RFRAME_HDR_LEN, 1, 200, 5, 10, RFRAME_KEY_MAX + 1, 'k');

    cr_assert_eq(begin_decodes(n, &why), -EBADMSG);
    cr_assert_str_eq(why, "primary");
    cr_assert_eq(begin_decodes(raw_begin(stream + RFRAME_HDR_LEN, 1, 200, 5, 10, 0, 'k'), &why),
                 -EBADMSG, "empty primary key");
}

Test(repl_frame, malformed_nul_in_key)
{
    const char *why = NULL;
    size_t n = raw_begin(stream + RFRAME_HDR_LEN, 1, 200, 5, 10, 8, '\0');

    cr_assert_eq(begin_decodes(n, &why), -EBADMSG);
    cr_assert_str_eq(why, "primary");
}

Test(repl_frame, malformed_negative_age_and_huge_size)
{
    const char *why = NULL;

    cr_assert_eq(begin_decodes(raw_begin(stream + RFRAME_HDR_LEN, 1, 200, -1, 10, 8, 'k'), &why),
                 -EBADMSG);
    cr_assert_str_eq(why, "age_basis");
    cr_assert_eq(
        begin_decodes(raw_begin(stream + RFRAME_HDR_LEN, 1, 200, INT64_MIN, 10, 8, 'k'), &why),
        -EBADMSG);
    cr_assert_eq(
        begin_decodes(raw_begin(stream + RFRAME_HDR_LEN, 1, 200, 5, RFRAME_BODY_MAX + 1, 8, 'k'),
                      &why),
        -EBADMSG);
    cr_assert_str_eq(why, "body_size");
    cr_assert_eq(
        begin_decodes(raw_begin(stream + RFRAME_HDR_LEN, 1, 200, 5, UINT64_MAX, 8, 'k'), &why),
        -EBADMSG);
    cr_assert_eq(begin_decodes(raw_begin(stream + RFRAME_HDR_LEN, 1, 99, 5, 10, 8, 'k'), &why),
                 -EBADMSG);
    cr_assert_str_eq(why, "status");
    cr_assert_eq(begin_decodes(raw_begin(stream + RFRAME_HDR_LEN, 0, 200, 5, 10, 8, 'k'), &why),
                 -EBADMSG);
    cr_assert_str_eq(why, "id");
}

Test(repl_frame, malformed_short_and_trailing)
{
    const char *why = NULL;
    size_t n = raw_begin(stream + RFRAME_HDR_LEN, 1, 200, 5, 10, 8, 'k');

    cr_assert_eq(begin_decodes(n - 1, &why), -EBADMSG);
    cr_assert_str_eq(why, "headers");
    cr_assert_eq(begin_decodes(n + 1, &why), -EBADMSG);
    cr_assert_str_eq(why, "trailing bytes");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(begin_decodes(i, NULL), -EBADMSG, "prefix of %zu bytes", i);
}

Test(repl_frame, malformed_chunk_past_the_end)
{
    uint8_t p[40];
    struct rframe_frame f = {.type = RFRAME_OBJECT_CHUNK, .seq = 2, .payload = p, .len = 20};
    struct rframe_chunk c;
    const char *why = NULL;

    memset(p, 0, sizeof(p));
    p[7] = 1;  /* id 1 */
    p[10] = 1; /* offset 2^40 */
    cr_assert_eq(rframe_decode_object_chunk(&f, &c, &why), -EBADMSG);
    cr_assert_str_eq(why, "offset");
    memset(p + 8, 0xff, 8); /* offset 2^64 - 1: no wrap-around */
    cr_assert_eq(rframe_decode_object_chunk(&f, &c, &why), -EBADMSG);
    memset(p + 8, 0, 8);
    f.len = 16; /* no data */
    cr_assert_eq(rframe_decode_object_chunk(&f, &c, &why), -EBADMSG);
    cr_assert_str_eq(why, "data");
    f.len = 20;
    cr_assert_eq(rframe_decode_object_chunk(&f, &c, &why), 0);
    cr_assert_eq(c.len, 4);
}

Test(repl_frame, malformed_purge_and_inventory)
{
    uint8_t p[64];
    struct rframe_frame f = {.type = RFRAME_PURGE, .seq = 2, .payload = p};
    struct rframe_purge pu;
    struct rframe_inventory inv;
    const char *why = NULL;

    p[0] = 2; /* unknown kind */
    p[1] = 0;
    p[2] = 1;
    p[3] = 'k';
    f.len = 4;
    cr_assert_eq(rframe_decode_purge(&f, &pu, &why), -EBADMSG);
    cr_assert_str_eq(why, "kind");
    p[0] = 0;
    cr_assert_eq(rframe_decode_purge(&f, &pu, &why), 0);
    p[2] = 2; /* length past the end */
    cr_assert_eq(rframe_decode_purge(&f, &pu, &why), -EBADMSG);

    /* inventory claiming 1000 entries in 30 bytes */
    memset(p, 0, sizeof(p));
    p[6] = 0x03;
    p[7] = 0xe8;
    f.type = RFRAME_INVENTORY;
    f.len = 30;
    cr_assert_eq(rframe_decode_inventory(&f, &inv, &why), -EBADMSG);
    cr_assert_str_eq(why, "count");
}

/* --- bodies --- */

static void body_start(struct rframe_body *b, struct rframe_object *o)
{
    sample_object(o);
    rframe_body_init(b, o);
}

static int chunk(struct rframe_body *b, uint64_t id, uint64_t off, size_t len)
{
    struct rframe_chunk c = {.id = id, .offset = off, .data = body_bytes + off, .len = len};
    return rframe_body_add(b, &c);
}

Test(repl_frame, body_in_chunks_verifies)
{
    struct rframe_body b;
    struct rframe_object o;

    body_start(&b, &o);
    cr_assert_eq(chunk(&b, 7, 0, 8), 0);
    cr_assert_eq(chunk(&b, 7, 8, 8), 0);
    cr_assert_eq(chunk(&b, 7, 16, 4), 0);
    cr_assert_eq(rframe_body_end(&b, 7), 0);
}

Test(repl_frame, body_overlap_gap_overflow_id)
{
    struct rframe_body b;
    struct rframe_object o;

    body_start(&b, &o);
    cr_assert_eq(chunk(&b, 7, 0, 8), 0);
    cr_assert_eq(chunk(&b, 7, 4, 8), -EEXIST, "overlap");
    cr_assert_eq(chunk(&b, 7, 9, 4), -EPROTO, "gap");
    cr_assert_eq(chunk(&b, 8, 8, 4), -EINVAL, "another object");
    {
        struct rframe_chunk c = {.id = 7, .offset = 8, .data = body_bytes, .len = 13};
        cr_assert_eq(rframe_body_add(&b, &c), -EFBIG, "past the declared size");
    }
    cr_assert_eq(b.got, 8, "refused chunks are not counted");
    cr_assert_eq(chunk(&b, 7, 8, 12), 0);
    cr_assert_eq(rframe_body_end(&b, 7), 0, "refused chunks were not hashed");
}

Test(repl_frame, body_digest_mismatch_and_short)
{
    struct rframe_body b;
    struct rframe_object o;
    struct rframe_chunk c = {
        .id = 7, .offset = 0, .data = (const uint8_t *)"0123456789abcdefghiX", .len = 20};

    body_start(&b, &o);
    cr_assert_eq(rframe_body_add(&b, &c), 0);
    cr_assert_eq(rframe_body_end(&b, 7), -EBADMSG);

    body_start(&b, &o);
    cr_assert_eq(chunk(&b, 7, 0, 19), 0);
    cr_assert_eq(rframe_body_end(&b, 7), -ENODATA);
    cr_assert_eq(rframe_body_end(&b, 6), -EINVAL);
}

/* --- the worked example of docs/replication.md --- */

static const char hello_hex[] = "46554c52010100000000000000000001000000190"
                                "001a0a1a2a3a4a5a6a7a8a9aaabacadaeaf066e6f64652d61"
                                "de3ada74607a01de997d72c31c85ccc6015318ad8e15b0424480d68e35550fe1";

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

Test(repl_frame, worked_example_bytes)
{
    char h[2 * 256 + 1];
    size_t at;

    hello();
    hex(stream, slen, h);
    cr_assert_str_eq(h, hello_hex);
    at = add(rframe_encode_heartbeat(&tx, stream + slen, ROOM));
    cr_assert_eq(slen - at, 52);
    hex(stream + at, 52, h);
    cr_assert_str_eq(h, "46554c5201020000000000000000000200000000"
                        "6262822d783fafcaaf8f247f53013ff14a667f99c0e6bf66d727e58009a7c9ba");
}

/* --- random input --- */

Test(repl_frame, random_streams_are_rejected)
{
    static uint8_t junk[4096];

    for (int round = 0; round < 1000; round++) {
        struct rframe_decoder *dec = rframe_decoder_new(&kr_a, nonce_b);
        size_t n = 1 + rnd() % sizeof(junk);
        int rc;

        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)rnd();
        if (round % 2) /* a plausible header, so the tag check is reached */
            memcpy(junk, "FULR\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x10",
                   20);
        rc = rframe_feed(dec, junk, n, collect, &got);
        if (rc == 0)
            rc = rframe_finish(dec);
        cr_assert_lt(rc, 0, "round %d: %zu random bytes accepted", round, n);
        cr_assert_eq(got.n, 0);
        rframe_decoder_free(dec);
    }
}

Test(repl_frame, any_flipped_byte_is_rejected)
{
    struct rframe_decoder *dec;

    build_mixed_stream();
    for (int round = 0; round < 1000; round++) {
        size_t at = rnd() % slen;
        uint8_t bit = (uint8_t)(1u << (rnd() % 8));
        int rc;

        stream[at] ^= bit;
        dec = rframe_decoder_new(&kr_a, nonce_b);
        rc = rframe_feed(dec, stream, slen, collect, &got);
        if (rc == 0)
            rc = rframe_finish(dec);
        cr_assert_lt(rc, 0, "flip at %zu accepted", at);
        rframe_decoder_free(dec);
        stream[at] ^= bit;
        got_clear(&got);
    }
}
