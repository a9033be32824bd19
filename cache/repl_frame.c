/* repl_frame.c - replication framing: sign outgoing frames, reassemble and
 * verify the incoming stream, check object bodies.
 *
 * Design notes (docs/replication.md is the long form):
 *   - The header is checked as soon as its 20 bytes are in: magic, version,
 *     flags, type, handshake order and the type's length cap. A peer that
 *     announces an oversized frame is refused before one payload byte is
 *     buffered, so the buffer never exceeds RFRAME_FRAME_MAX.
 *   - The tag covers both connection nonces, the header and the payload in
 *     one HMAC pass (libsodium's incremental API); it is checked under each
 *     key of the ring with sodium_memcmp, before the sequence number is
 *     looked at and before any payload is parsed.
 *   - Sequence numbers must be exactly last + 1: TCP loses nothing, so a
 *     skip means someone removed a frame (a PURGE, say).
 *   - A failed decoder stays failed: the caller closes the connection.
 */
#include "repl_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

struct rframe_decoder {
    const struct key_ring *kr;
    uint8_t local_nonce[RFRAME_NONCE_LEN];
    uint8_t peer_nonce[RFRAME_NONCE_LEN];
    bool hello_seen;
    uint64_t seq;              /* last accepted */
    enum rframe_reason reason; /* RFRAME_R_NONE while healthy */
    int err;                   /* the -errno returned since the failure */
    size_t have;               /* bytes in buf */
    size_t high;               /* most bytes buf ever held: what free wipes */
    size_t need;               /* whole frame length once the header is in, else 0 */
    uint8_t *buf;              /* RFRAME_FRAME_MAX bytes */
};

static const char *const rframe_reason_names[RFRAME_R_MAX] = {
    "none",     "bad_magic", "bad_version", "bad_type",  "too_large", "bad_mac",
    "replayed", "seq_gap",   "unexpected",  "malformed", "truncated", "callback",
};

static const char *const rframe_type_names[RFRAME_TYPE_MAX] = {
    "invalid",    "hello", "heartbeat",    "object_begin", "object_chunk",
    "object_end", "purge", "sync_request", "inventory",    "inventory_end",
};

/* The -errno of each reason; RFRAME_R_CALLBACK returns the callback's. */
static const int rframe_reason_errno[RFRAME_R_MAX] = {
    [RFRAME_R_NONE] = 0,
    [RFRAME_R_BAD_MAGIC] = -EPROTO,
    [RFRAME_R_BAD_VERSION] = -EPROTONOSUPPORT,
    [RFRAME_R_BAD_TYPE] = -ENOMSG,
    [RFRAME_R_TOO_LARGE] = -EMSGSIZE,
    [RFRAME_R_BAD_MAC] = -EACCES,
    [RFRAME_R_REPLAYED] = -EALREADY,
    [RFRAME_R_SEQ_GAP] = -EILSEQ,
    [RFRAME_R_UNEXPECTED] = -ENOTCONN,
    [RFRAME_R_MALFORMED] = -EBADMSG,
    [RFRAME_R_TRUNCATED] = -EPIPE,
    [RFRAME_R_CALLBACK] = -ECANCELED,
};

/* Largest payload per type. HELLO: version, nonce, name length, name. */
static const size_t rframe_caps[RFRAME_TYPE_MAX] = {
    [RFRAME_HELLO] = 2 + RFRAME_NONCE_LEN + 1 + RFRAME_NAME_MAX,
    [RFRAME_HEARTBEAT] = 0,
    [RFRAME_OBJECT_BEGIN] = RFRAME_BEGIN_MAX,
    [RFRAME_OBJECT_CHUNK] = 16 + RFRAME_CHUNK_MAX,
    [RFRAME_OBJECT_END] = 8,
    [RFRAME_PURGE] = 1 + 2 + RFRAME_KEY_MAX,
    [RFRAME_SYNC_REQUEST] = 0,
    [RFRAME_INVENTORY] = RFRAME_PAYLOAD_MAX,
    [RFRAME_INVENTORY_END] = 12,
};

static const uint8_t rframe_zero_nonce[RFRAME_NONCE_LEN];

const char *rframe_reason_name(enum rframe_reason r)
{
    return (unsigned)r < RFRAME_R_MAX ? rframe_reason_names[r] : "?";
}

const char *rframe_type_name(enum rframe_type t)
{
    return (unsigned)t < RFRAME_TYPE_MAX ? rframe_type_names[t] : "?";
}

size_t rframe_payload_cap(enum rframe_type type)
{
    if (type < RFRAME_HELLO || type >= RFRAME_TYPE_MAX)
        return 0;
    return rframe_caps[type];
}

void rframe_nonce_new(uint8_t out[RFRAME_NONCE_LEN])
{
    randombytes_buf(out, RFRAME_NONCE_LEN);
}

static void rframe_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void rframe_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void rframe_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint16_t rframe_get_u16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t rframe_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t rframe_get_u64(const uint8_t *p)
{
    return (uint64_t)rframe_get_u32(p) << 32 | rframe_get_u32(p + 4);
}

/* HMAC-SHA256(key, sender_nonce | receiver_nonce | header+payload). */
static void rframe_mac(const uint8_t key[32], const uint8_t *snd, const uint8_t *rcv,
                       const uint8_t *frame, size_t n, uint8_t tag[RFRAME_TAG_LEN])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, key, 32);
    crypto_auth_hmacsha256_update(&st, snd, RFRAME_NONCE_LEN);
    crypto_auth_hmacsha256_update(&st, rcv, RFRAME_NONCE_LEN);
    crypto_auth_hmacsha256_update(&st, frame, n);
    crypto_auth_hmacsha256_final(&st, tag);
    sodium_memzero(&st, sizeof(st));
}

/* --- sending --- */

void rframe_tx_init(struct rframe_tx *tx, const struct key_ring *kr,
                    const uint8_t local_nonce[RFRAME_NONCE_LEN])
{
    memset(tx, 0, sizeof(*tx));
    tx->kr = kr;
    memcpy(tx->local_nonce, local_nonce, RFRAME_NONCE_LEN);
}

void rframe_tx_set_peer(struct rframe_tx *tx, const uint8_t peer_nonce[RFRAME_NONCE_LEN])
{
    memcpy(tx->peer_nonce, peer_nonce, RFRAME_NONCE_LEN);
    tx->peer_known = true;
}

void rframe_tx_done(struct rframe_tx *tx)
{
    sodium_memzero(tx, sizeof(*tx));
}

int rframe_seal(struct rframe_tx *tx, enum rframe_type type, uint8_t *buf, size_t len,
                size_t payload_len)
{
    size_t n = RFRAME_HDR_LEN + payload_len;
    bool hello = type == RFRAME_HELLO;

    if (type < RFRAME_HELLO || type >= RFRAME_TYPE_MAX || !tx->kr || tx->kr->n == 0)
        return -EINVAL;
    if (payload_len > rframe_caps[type] || len < RFRAME_TAG_LEN || n > len - RFRAME_TAG_LEN)
        return -EMSGSIZE;
    if (hello ? tx->seq != 0 : (!tx->peer_known || tx->seq == 0))
        return -ENOTCONN;
    if (tx->seq == UINT64_MAX)
        return -EOVERFLOW;
    memcpy(buf, RFRAME_MAGIC, 4);
    buf[4] = RFRAME_VERSION;
    buf[5] = (uint8_t)type;
    rframe_put_u16(buf + 6, 0);
    rframe_put_u64(buf + 8, tx->seq + 1);
    rframe_put_u32(buf + 16, (uint32_t)payload_len);
    if (hello)
        rframe_mac(tx->kr->k[0], rframe_zero_nonce, rframe_zero_nonce, buf, n, buf + n);
    else
        rframe_mac(tx->kr->k[0], tx->local_nonce, tx->peer_nonce, buf, n, buf + n);
    tx->seq++;
    return (int)(n + RFRAME_TAG_LEN);
}

/* --- receiving --- */

struct rframe_decoder *rframe_decoder_new(const struct key_ring *kr,
                                          const uint8_t local_nonce[RFRAME_NONCE_LEN])
{
    struct rframe_decoder *dec = xcalloc(1, sizeof(*dec));

    dec->kr = kr;
    memcpy(dec->local_nonce, local_nonce, RFRAME_NONCE_LEN);
    dec->buf = xmalloc(RFRAME_FRAME_MAX);
    return dec;
}

void rframe_decoder_free(struct rframe_decoder *dec)
{
    if (!dec)
        return;
    sodium_memzero(dec->buf, dec->high); /* past it, buf never held a byte */
    free(dec->buf);
    sodium_memzero(dec, sizeof(*dec));
    free(dec);
}

enum rframe_reason rframe_decoder_reason(const struct rframe_decoder *dec)
{
    return dec->reason;
}

const uint8_t *rframe_decoder_peer_nonce(const struct rframe_decoder *dec)
{
    return dec->hello_seen ? dec->peer_nonce : NULL;
}

uint64_t rframe_decoder_seq(const struct rframe_decoder *dec)
{
    return dec->seq;
}

static int rframe_fail(struct rframe_decoder *dec, enum rframe_reason r, int err)
{
    dec->reason = r;
    dec->err = r == RFRAME_R_CALLBACK ? err : rframe_reason_errno[r];
    return dec->err;
}

/* The 20 header bytes are in: everything that can be refused before the
 * payload is buffered. Sets dec->need. */
static int rframe_check_header(struct rframe_decoder *dec)
{
    const uint8_t *h = dec->buf;
    unsigned type = h[5];
    uint32_t plen = rframe_get_u32(h + 16);

    if (memcmp(h, RFRAME_MAGIC, 4) != 0)
        return rframe_fail(dec, RFRAME_R_BAD_MAGIC, 0);
    if (h[4] != RFRAME_VERSION || rframe_get_u16(h + 6) != 0)
        return rframe_fail(dec, RFRAME_R_BAD_VERSION, 0);
    if (type < RFRAME_HELLO || type >= RFRAME_TYPE_MAX)
        return rframe_fail(dec, RFRAME_R_BAD_TYPE, 0);
    if (plen > rframe_caps[type])
        return rframe_fail(dec, RFRAME_R_TOO_LARGE, 0);
    if ((type == RFRAME_HELLO) == dec->hello_seen)
        return rframe_fail(dec, RFRAME_R_UNEXPECTED, 0);
    dec->need = RFRAME_HDR_LEN + (size_t)plen + RFRAME_TAG_LEN;
    return 0;
}

/* Constant time for each key; the number of keys tried is not secret. */
static bool rframe_mac_ok(const struct rframe_decoder *dec, const uint8_t *snd, const uint8_t *rcv,
                          size_t n)
{
    uint8_t tag[RFRAME_TAG_LEN];
    bool ok = false;

    for (unsigned i = 0; i < dec->kr->n && i < KEY_RING_MAX; i++) {
        rframe_mac(dec->kr->k[i], snd, rcv, dec->buf, n, tag);
        if (sodium_memcmp(tag, dec->buf + n, RFRAME_TAG_LEN) == 0)
            ok = true;
    }
    sodium_memzero(tag, sizeof(tag));
    return ok;
}

/* A whole frame is in dec->buf: verify it and hand it over. */
static int rframe_deliver(struct rframe_decoder *dec, rframe_frame_fn cb, void *arg)
{
    size_t n = dec->need - RFRAME_TAG_LEN;
    bool hello = dec->buf[5] == RFRAME_HELLO;
    struct rframe_frame f = {
        .type = (enum rframe_type)dec->buf[5],
        .seq = rframe_get_u64(dec->buf + 8),
        .payload = dec->buf + RFRAME_HDR_LEN,
        .len = n - RFRAME_HDR_LEN,
    };
    struct rframe_hello h;
    bool ok;
    int rc;

    if (hello)
        ok = rframe_mac_ok(dec, rframe_zero_nonce, rframe_zero_nonce, n);
    else
        ok = rframe_mac_ok(dec, dec->peer_nonce, dec->local_nonce, n);
    if (!ok)
        return rframe_fail(dec, RFRAME_R_BAD_MAC, 0);
    if (f.seq <= dec->seq)
        return rframe_fail(dec, RFRAME_R_REPLAYED, 0);
    if (f.seq != dec->seq + 1)
        return rframe_fail(dec, RFRAME_R_SEQ_GAP, 0);
    if (hello) {
        if (rframe_decode_hello(&f, &h, NULL) != 0)
            return rframe_fail(dec, RFRAME_R_MALFORMED, 0);
        /* Our own nonce back: a reflected HELLO, or a peer that is us. */
        if (sodium_memcmp(h.nonce, dec->local_nonce, RFRAME_NONCE_LEN) == 0)
            return rframe_fail(dec, RFRAME_R_UNEXPECTED, 0);
        memcpy(dec->peer_nonce, h.nonce, RFRAME_NONCE_LEN);
        dec->hello_seen = true;
    }
    dec->seq = f.seq;
    dec->have = 0;
    dec->need = 0;
    rc = cb(&f, arg);
    if (rc != 0)
        return rframe_fail(dec, RFRAME_R_CALLBACK, rc);
    return 0;
}

int rframe_feed(struct rframe_decoder *dec, const void *buf, size_t len, rframe_frame_fn cb,
                void *arg)
{
    const uint8_t *p = buf;
    size_t want, take;
    int rc;

    if (dec->reason != RFRAME_R_NONE)
        return dec->err;
    while (len > 0) {
        want = dec->need ? dec->need : RFRAME_HDR_LEN;
        take = want - dec->have < len ? want - dec->have : len;
        memcpy(dec->buf + dec->have, p, take);
        dec->have += take;
        if (dec->have > dec->high)
            dec->high = dec->have;
        p += take;
        len -= take;
        if (dec->have < want)
            break;
        if (!dec->need) {
            rc = rframe_check_header(dec);
            if (rc != 0)
                return rc;
            continue;
        }
        rc = rframe_deliver(dec, cb, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int rframe_finish(struct rframe_decoder *dec)
{
    if (dec->reason != RFRAME_R_NONE)
        return dec->err;
    if (dec->have > 0)
        return rframe_fail(dec, RFRAME_R_TRUNCATED, 0);
    return 0;
}

/* --- object bodies --- */

void rframe_body_init(struct rframe_body *b, const struct rframe_object *o)
{
    memset(b, 0, sizeof(*b));
    b->id = o->id;
    b->size = o->body_size;
    memcpy(b->sha256, o->sha256, RFRAME_SHA256_LEN);
    crypto_hash_sha256_init(&b->st);
}

int rframe_body_add(struct rframe_body *b, const struct rframe_chunk *c)
{
    if (c->id != b->id)
        return -EINVAL;
    if (c->offset < b->got)
        return -EEXIST;
    if (c->offset > b->got)
        return -EPROTO;
    if (c->len > b->size - b->got)
        return -EFBIG;
    crypto_hash_sha256_update(&b->st, c->data, c->len);
    b->got += c->len;
    return 0;
}

int rframe_body_end(struct rframe_body *b, uint64_t id)
{
    uint8_t digest[RFRAME_SHA256_LEN];

    if (id != b->id)
        return -EINVAL;
    if (b->got != b->size)
        return -ENODATA;
    crypto_hash_sha256_final(&b->st, digest);
    if (sodium_memcmp(digest, b->sha256, RFRAME_SHA256_LEN) != 0)
        return -EBADMSG;
    return 0;
}
