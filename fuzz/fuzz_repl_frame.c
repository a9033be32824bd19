/* fuzz_repl_frame.c - libFuzzer target: the replication stream decoder
 * (cache/repl_frame.c) and the payload codecs (cache/repl_payload.c).
 *
 * Input: mode byte, seed byte, then the stream description. By mode & 3:
 *   0  the rest is the raw byte stream a peer sends (almost all of it dies
 *      at the header or the tag: fuzzes framing and the refusals);
 *   1  the rest is a list of records [type:u8][len:u16 big-endian][len
 *      bytes]; each becomes a frame signed here under the ring's first key
 *      with the right nonces and sequence numbers, after a valid HELLO, so
 *      the fuzzer reaches the payload decoders behind the tag;
 *   2  the same without the HELLO: the first record must be one;
 *   3  the same as 1, signed with the ring's second key (rotation).
 * A record whose type or length rframe_seal refuses is written raw (header
 * and payload unsigned), which the decoder must refuse.
 * By (mode >> 2) & 3 the stream is fed whole, a byte at a time, or in
 * pseudo-random pieces drawn from the seed byte.
 *
 * Oracles besides ASan/UBSan:
 *   - the stream fed in pieces delivers the same frames and ends with the
 *     same result as the stream fed whole;
 *   - every decoder but the frame type's own refuses the frame;
 *   - a payload that decodes re-encodes to exactly the same bytes;
 *   - an INVENTORY page walks to exactly its count of entries;
 *   - object bodies go through struct rframe_body without overrunning it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repl_frame.h"

#define FUZZ_INV_MAX (RFRAME_PAYLOAD_MAX / 15 + 1)

static struct key_ring ring, ring_next; /* ring_next: the same two keys, swapped */
static const uint8_t local_nonce[RFRAME_NONCE_LEN] = {
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11};
static const uint8_t peer_nonce[RFRAME_NONCE_LEN] = {
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22};

/* What one pass over the stream saw. */
struct fuzz_pass {
    uint64_t frames;
    uint64_t digest; /* FNV-1a over type, seq, len and payload of each frame */
    int rc;          /* first non-zero rframe_feed result, then rframe_finish's */
    struct rframe_body body;
    bool in_object;
    struct rframe_tx re;          /* re-encodes decoded payloads */
    uint8_t *scratch;             /* RFRAME_FRAME_MAX */
    struct rframe_inv_entry *inv; /* FUZZ_INV_MAX */
    struct rframe_decoder *dec;
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz_repl_frame: oracle failed: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        fuzz_die("sodium_init");
    ring.n = ring_next.n = 2;
    memset(ring.k[0], 0x42, 32);
    memset(ring.k[1], 0x43, 32);
    memcpy(ring_next.k[0], ring.k[1], 32);
    memcpy(ring_next.k[1], ring.k[0], 32);
    return 0;
}

static void fuzz_hash(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 1099511628211ull;
}

/* ---- building the stream ---- */

struct fuzz_buf {
    uint8_t *p;
    size_t len, cap;
};

static uint8_t *fuzz_room(struct fuzz_buf *b, size_t n)
{
    if (b->cap - b->len < n) {
        while (b->cap - b->len < n)
            b->cap = b->cap ? 2 * b->cap : 4096;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            fuzz_die("out of memory");
    }
    return b->p + b->len;
}

/* One record: sealed when rframe_seal accepts it, else written raw. */
static void fuzz_record(struct fuzz_buf *b, struct rframe_tx *tx, unsigned type,
                        const uint8_t *payload, size_t plen)
{
    size_t room = RFRAME_HDR_LEN + plen + RFRAME_TAG_LEN;
    uint8_t *f = fuzz_room(b, room);
    int n;

    memcpy(f + RFRAME_HDR_LEN, payload, plen);
    n = rframe_seal(tx, (enum rframe_type)type, f, room, plen);
    if (n > 0) {
        b->len += (size_t)n;
        return;
    }
    memcpy(f, RFRAME_MAGIC, 4);
    f[4] = RFRAME_VERSION;
    f[5] = (uint8_t)type;
    memset(f + 6, 0, 14);
    f[8 + 7] = (uint8_t)(tx->seq + 1);
    f[16] = (uint8_t)(plen >> 24);
    f[17] = (uint8_t)(plen >> 16);
    f[18] = (uint8_t)(plen >> 8);
    f[19] = (uint8_t)plen;
    b->len += RFRAME_HDR_LEN + plen;
}

static void fuzz_build(struct fuzz_buf *b, unsigned mode, const uint8_t *p, size_t n)
{
    struct rframe_tx tx;
    uint8_t hello[RFRAME_HDR_LEN + 128 + RFRAME_TAG_LEN];
    int h;

    rframe_tx_init(&tx, mode == 3 ? &ring_next : &ring, peer_nonce);
    if (mode != 2) {
        h = rframe_encode_hello(&tx, "peer-a", hello, sizeof(hello));
        if (h < 0)
            fuzz_die("cannot encode HELLO");
        memcpy(fuzz_room(b, (size_t)h), hello, (size_t)h);
        b->len += (size_t)h;
    }
    rframe_tx_set_peer(&tx, local_nonce);
    while (n >= 3) {
        unsigned type = p[0];
        size_t plen = (size_t)p[1] << 8 | p[2];

        p += 3;
        n -= 3;
        if (plen > n)
            plen = n;
        if (type == RFRAME_HELLO && tx.seq == 0) {
            tx.peer_known = false;            /* rframe_seal: a HELLO only first */
            if (plen >= 2 + RFRAME_NONCE_LEN) /* later frames: the nonce it announces */
                memcpy(tx.local_nonce, p + 2, RFRAME_NONCE_LEN);
        }
        fuzz_record(b, &tx, type, p, plen);
        tx.peer_known = true;
        p += plen;
        n -= plen;
    }
    rframe_tx_done(&tx);
}

/* ---- checking each verified frame ---- */

static void fuzz_same(struct fuzz_pass *ps, const struct rframe_frame *f, int n)
{
    if (n < 0)
        fuzz_die("a decoded payload does not re-encode");
    if ((size_t)n != RFRAME_HDR_LEN + f->len + RFRAME_TAG_LEN ||
        (f->len && memcmp(ps->scratch + RFRAME_HDR_LEN, f->payload, f->len)))
        fuzz_die("a decoded payload re-encodes to other bytes");
}

/* Every decoder but the frame's own must refuse it. */
static void fuzz_cross(const struct rframe_frame *f)
{
    union {
        struct rframe_hello h;
        struct rframe_object o;
        struct rframe_chunk c;
        struct rframe_purge p;
        struct rframe_inventory i;
        struct rframe_inventory_end e;
        uint64_t id;
    } u;
    int t = f->type;

    if ((t != RFRAME_HELLO && !rframe_decode_hello(f, &u.h, NULL)) ||
        (t != RFRAME_OBJECT_BEGIN && !rframe_decode_object_begin(f, &u.o, NULL)) ||
        (t != RFRAME_OBJECT_CHUNK && !rframe_decode_object_chunk(f, &u.c, NULL)) ||
        (t != RFRAME_OBJECT_END && !rframe_decode_object_end(f, &u.id, NULL)) ||
        (t != RFRAME_PURGE && !rframe_decode_purge(f, &u.p, NULL)) ||
        (t != RFRAME_INVENTORY && !rframe_decode_inventory(f, &u.i, NULL)) ||
        (t != RFRAME_INVENTORY_END && !rframe_decode_inventory_end(f, &u.e, NULL)) ||
        (t != RFRAME_HEARTBEAT && t != RFRAME_SYNC_REQUEST && !rframe_decode_empty(f, NULL)))
        fuzz_die("a decoder accepted a frame of another type");
}

static int fuzz_inventory(struct fuzz_pass *ps, const struct rframe_frame *f)
{
    struct rframe_inventory inv;
    size_t pos = 0, k = 0;

    if (rframe_decode_inventory(f, &inv, NULL))
        return -EBADMSG;
    while (k < FUZZ_INV_MAX && rframe_inventory_next(&inv, &pos, &ps->inv[k]))
        k++;
    if (k != inv.count || pos != inv.len)
        fuzz_die("an INVENTORY page does not walk to its count");
    fuzz_same(
        ps, f,
        rframe_encode_inventory(&ps->re, inv.page, ps->inv, k, ps->scratch, RFRAME_FRAME_MAX));
    return 0;
}

static int fuzz_object(struct fuzz_pass *ps, const struct rframe_frame *f)
{
    struct rframe_object o;
    struct rframe_chunk c;
    uint64_t id;

    switch (f->type) {
    case RFRAME_OBJECT_BEGIN:
        if (rframe_decode_object_begin(f, &o, NULL))
            return -EBADMSG;
        fuzz_same(ps, f, rframe_encode_object_begin(&ps->re, &o, ps->scratch, RFRAME_FRAME_MAX));
        rframe_body_init(&ps->body, &o);
        ps->in_object = true;
        return 0;
    case RFRAME_OBJECT_CHUNK:
        if (rframe_decode_object_chunk(f, &c, NULL))
            return -EBADMSG;
        fuzz_same(ps, f, rframe_encode_object_chunk(&ps->re, &c, ps->scratch, RFRAME_FRAME_MAX));
        if (ps->in_object && rframe_body_add(&ps->body, &c) == 0 && ps->body.got > ps->body.size)
            fuzz_die("a body took more than its declared size");
        return 0;
    default:
        if (rframe_decode_object_end(f, &id, NULL))
            return -EBADMSG;
        fuzz_same(ps, f, rframe_encode_object_end(&ps->re, id, ps->scratch, RFRAME_FRAME_MAX));
        if (ps->in_object && rframe_body_end(&ps->body, id) != -EINVAL)
            ps->in_object = false;
        return 0;
    }
}

static int fuzz_frame(const struct rframe_frame *f, void *arg)
{
    struct fuzz_pass *ps = arg;
    struct rframe_hello h;
    struct rframe_purge pg;
    struct rframe_inventory_end ie;
    struct rframe_tx htx;

    ps->frames++;
    fuzz_hash(&ps->digest, &f->type, sizeof(f->type));
    fuzz_hash(&ps->digest, &f->seq, sizeof(f->seq));
    fuzz_hash(&ps->digest, &f->len, sizeof(f->len));
    fuzz_hash(&ps->digest, f->payload, f->len);
    if (f->len > rframe_payload_cap(f->type) || !strcmp(rframe_type_name(f->type), "?"))
        fuzz_die("a frame over its type's cap, or of no type, was delivered");
    if (rframe_decoder_seq(ps->dec) != f->seq || !rframe_decoder_peer_nonce(ps->dec))
        fuzz_die("a frame delivered before its sequence number or the peer's HELLO");
    fuzz_cross(f);
    switch (f->type) {
    case RFRAME_HELLO:
        if (rframe_decode_hello(f, &h, NULL))
            fuzz_die("the decoder delivered a HELLO that does not decode");
        if (memcmp(rframe_decoder_peer_nonce(ps->dec), h.nonce, RFRAME_NONCE_LEN))
            fuzz_die("the peer nonce is not the HELLO's");
        rframe_tx_init(&htx, &ring, h.nonce);
        fuzz_same(ps, f, rframe_encode_hello(&htx, h.name, ps->scratch, RFRAME_FRAME_MAX));
        return 0;
    case RFRAME_HEARTBEAT:
    case RFRAME_SYNC_REQUEST:
        if (rframe_decode_empty(f, NULL))
            fuzz_die("an empty frame type carried a payload");
        return 0;
    case RFRAME_OBJECT_BEGIN:
    case RFRAME_OBJECT_CHUNK:
    case RFRAME_OBJECT_END:
        return fuzz_object(ps, f);
    case RFRAME_PURGE:
        if (rframe_decode_purge(f, &pg, NULL))
            return -EBADMSG;
        fuzz_same(ps, f, rframe_encode_purge(&ps->re, &pg, ps->scratch, RFRAME_FRAME_MAX));
        return 0;
    case RFRAME_INVENTORY:
        return fuzz_inventory(ps, f);
    case RFRAME_INVENTORY_END:
        if (rframe_decode_inventory_end(f, &ie, NULL))
            return -EBADMSG;
        fuzz_same(ps, f, rframe_encode_inventory_end(&ps->re, &ie, ps->scratch, RFRAME_FRAME_MAX));
        return 0;
    default:
        fuzz_die("a frame of an unknown type was delivered");
        return 0;
    }
}

/* ---- feeding ---- */

static size_t fuzz_piece(unsigned split, uint32_t *rng, size_t left)
{
    size_t n;

    if (split == 0)
        return left;
    if (split == 1)
        return 1;
    *rng ^= *rng << 13; /* xorshift32 */
    *rng ^= *rng >> 17;
    *rng ^= *rng << 5;
    n = 1 + *rng % (split == 2 ? 64 : 4096);
    return n < left ? n : left;
}

static void fuzz_pass_run(struct fuzz_pass *ps, const struct fuzz_buf *b, unsigned split,
                          uint8_t seed)
{
    static const uint8_t re_local[RFRAME_NONCE_LEN] = {1}, re_peer[RFRAME_NONCE_LEN] = {2};
    struct rframe_decoder *dec = ps->dec = rframe_decoder_new(&ring, local_nonce);
    uint32_t rng = 0x9e3779b9u ^ seed;
    size_t off = 0;

    ps->digest = 14695981039346656037ull;
    rframe_tx_init(&ps->re, &ring, re_local);
    rframe_tx_set_peer(&ps->re, re_peer);
    ps->re.seq = 1; /* as after a HELLO */
    while (off < b->len && ps->rc == 0) {
        size_t n = fuzz_piece(split, &rng, b->len - off);

        ps->rc = rframe_feed(dec, b->p + off, n, fuzz_frame, ps);
        off += n;
    }
    if (ps->rc == 0)
        ps->rc = rframe_finish(dec);
    else if (rframe_feed(dec, "x", 1, fuzz_frame, ps) != ps->rc)
        fuzz_die("a failed decoder did not stay failed");
    if ((ps->rc != 0) != (rframe_decoder_reason(dec) != RFRAME_R_NONE) ||
        !strcmp(rframe_reason_name(rframe_decoder_reason(dec)), "?"))
        fuzz_die("result and reason disagree");
    rframe_decoder_free(dec);
    rframe_tx_done(&ps->re);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *scratch;
    static struct rframe_inv_entry *inv;
    struct fuzz_buf b = {0};
    struct fuzz_pass whole = {0}, split = {0};
    unsigned mode;

    if (size < 2)
        return 0;
    if (!scratch) {
        scratch = malloc(RFRAME_FRAME_MAX);
        inv = calloc(FUZZ_INV_MAX, sizeof(*inv));
        if (!scratch || !inv)
            fuzz_die("out of memory");
    }
    mode = data[0] & 3;
    if (mode == 0) {
        b.p = (uint8_t *)data + 2;
        b.len = size - 2;
    } else {
        fuzz_build(&b, mode, data + 2, size - 2);
    }
    whole.scratch = split.scratch = scratch;
    whole.inv = split.inv = inv;
    fuzz_pass_run(&whole, &b, 0, data[1]);
    if ((data[0] >> 2) & 3) { /* a decoder costs 256 KiB: a second pass only when it differs */
        fuzz_pass_run(&split, &b, (data[0] >> 2) & 3, data[1]);
        if (whole.frames != split.frames || whole.digest != split.digest || whole.rc != split.rc)
            fuzz_die("the stream in pieces and the stream whole disagree");
    }
    if (mode != 0)
        free(b.p);
    return 0;
}
