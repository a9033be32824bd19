/* repl_frame.h - the replication frame codec: no sockets, no clock.
 *
 * Cache nodes keep one TCP connection per peer and exchange frames
 * (docs/replication.md has the byte layout and a worked example):
 *
 *   header (20 bytes) | payload (0..RFRAME_PAYLOAD_MAX) | tag (32 bytes)
 *   "FULR" version:u8 type:u8 flags:u16 seq:u64 len:u32   (big-endian)
 *   tag = HMAC-SHA256(key, sender_nonce | receiver_nonce | header | payload)
 *
 * The first frame each way is HELLO, tagged with an all-zero nonce pair; it
 * carries the sender's fresh random connection nonce. Every later frame of
 * the connection is tagged with both nonces (sender's first), so a frame of
 * an old connection, or one reflected back to its sender, never verifies.
 * Sequence numbers start at 1 and go up by exactly one per frame in each
 * direction: a replayed, reordered or deleted frame is rejected. The tag is
 * computed under the ring's first key and accepted under either key, in
 * constant time.
 *
 * Two layers:
 *   - framing: struct rframe_tx signs outgoing frames; struct
 *     rframe_decoder reassembles a byte stream, checks the header (length
 *     cap before any payload is buffered), tag and sequence, and calls back
 *     once per verified frame;
 *   - payloads (repl_payload.c): one encoder per frame type into a caller
 *     buffer, and decoders that range-check every field. Decoded strings
 *     and blobs point into the frame: valid only during the callback.
 * plus struct rframe_body, which checks an object's chunks arrive in order
 * and hash to the declared SHA-256.
 *
 * Ownership: the key ring passed to rframe_tx_init/rframe_decoder_new is
 * borrowed and must outlive them. Thread: none of this locks; a decoder or
 * tx belongs to its connection's thread.
 */
#ifndef FULCRUM_CACHE_REPL_FRAME_H
#define FULCRUM_CACHE_REPL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "key.h"

#define RFRAME_MAGIC       "FULR"
#define RFRAME_VERSION     1
#define RFRAME_HDR_LEN     20
#define RFRAME_TAG_LEN     32
#define RFRAME_NONCE_LEN   16
#define RFRAME_PAYLOAD_MAX (256u * 1024u)
#define RFRAME_FRAME_MAX   (RFRAME_HDR_LEN + RFRAME_PAYLOAD_MAX + RFRAME_TAG_LEN)
#define RFRAME_CHUNK_MAX   (64u * 1024u)         /* body bytes in one OBJECT_CHUNK */
#define RFRAME_BEGIN_MAX   (64u * 1024u + 8192u) /* whole OBJECT_BEGIN payload */
#define RFRAME_NAME_MAX    63                    /* node name, [A-Za-z0-9._-] */
#define RFRAME_KEY_MAX     8192                  /* primary, secondary, vary (= CSTORE_KEY_MAX) */
#define RFRAME_ETAG_MAX    1024                  /* = CSTORE_ETAG_MAX */
#define RFRAME_HEADERS_MAX 65536                 /* stored headers blob (= CSTORE_HEADERS_MAX) */
#define RFRAME_BODY_MAX    (1ull << 40)          /* declared body size */
#define RFRAME_SECONDS_MAX (100ll * 366 * 86400) /* age basis, ttl, stale window */
#define RFRAME_DATE_MAX    253402300799ll        /* 9999-12-31T23:59:59Z */
#define RFRAME_SHA256_LEN  32

/* Frame types: the byte on the wire. */
enum rframe_type {
    RFRAME_HELLO = 1,     /* first frame each way: name, version, connection nonce */
    RFRAME_HEARTBEAT,     /* every second; empty payload */
    RFRAME_OBJECT_BEGIN,  /* object metadata, body size and digest */
    RFRAME_OBJECT_CHUNK,  /* object id, offset, body bytes */
    RFRAME_OBJECT_END,    /* object id: body complete, check the digest */
    RFRAME_PURGE,         /* primary key to remove or mark stale */
    RFRAME_SYNC_REQUEST,  /* a joining node asks for the inventory; empty */
    RFRAME_INVENTORY,     /* one page of (primary, secondary, etag, date) */
    RFRAME_INVENTORY_END, /* pages and entries sent */
    RFRAME_TYPE_MAX       /* sentinel */
};

/* Why a decoder refused a stream. The connection is then closed. */
enum rframe_reason {
    RFRAME_R_NONE = 0,    /* no error */
    RFRAME_R_BAD_MAGIC,   /* -EPROTO: not "FULR" */
    RFRAME_R_BAD_VERSION, /* -EPROTONOSUPPORT: version != 1 or flags set */
    RFRAME_R_BAD_TYPE,    /* -ENOMSG: unknown type byte */
    RFRAME_R_TOO_LARGE,   /* -EMSGSIZE: length above the type's cap (seen in the header) */
    RFRAME_R_BAD_MAC,     /* -EACCES: tag under no key of the ring */
    RFRAME_R_REPLAYED,    /* -EALREADY: sequence number not above the last one */
    RFRAME_R_SEQ_GAP,     /* -EILSEQ: sequence number skips (a frame was deleted) */
    RFRAME_R_UNEXPECTED,  /* -ENOTCONN: HELLO not first, second HELLO, or own nonce */
    RFRAME_R_MALFORMED,   /* -EBADMSG: a verified HELLO whose payload does not decode */
    RFRAME_R_TRUNCATED,   /* -EPIPE: rframe_finish() in the middle of a frame */
    RFRAME_R_CALLBACK,    /* the callback returned non-zero; rframe_feed returns that */
    RFRAME_R_MAX          /* sentinel */
};

/* Signing state of one direction of one connection. */
struct rframe_tx {
    const struct key_ring *kr;
    uint64_t seq; /* last sequence number sent; 0 before HELLO */
    uint8_t local_nonce[RFRAME_NONCE_LEN];
    uint8_t peer_nonce[RFRAME_NONCE_LEN];
    bool peer_known; /* peer's HELLO seen: frames other than HELLO may be sent */
};

/* One verified frame, as the decoder hands it to its callback. payload is
 * valid only during the callback. */
struct rframe_frame {
    enum rframe_type type;
    uint64_t seq;
    const uint8_t *payload;
    size_t len;
};

/* Called once per verified frame. Return 0 to go on; any other value
 * (a -errno) stops rframe_feed, which returns it and fails the decoder. */
typedef int (*rframe_frame_fn)(const struct rframe_frame *f, void *arg);

struct rframe_decoder;

/* --- framing (repl_frame.c) --- */

/* local_nonce: this side's fresh random nonce (rframe_nonce_new), the one
 * sent in our HELLO. kr must have at least one key. */
void rframe_tx_init(struct rframe_tx *tx, const struct key_ring *kr,
                    const uint8_t local_nonce[RFRAME_NONCE_LEN]);

/* Records the peer's nonce from its HELLO: from now on frames carry both. */
void rframe_tx_set_peer(struct rframe_tx *tx, const uint8_t peer_nonce[RFRAME_NONCE_LEN]);

/* Wipes tx (nonces included). */
void rframe_tx_done(struct rframe_tx *tx);

/* Fills out with RFRAME_NONCE_LEN random bytes (libsodium randombytes). */
void rframe_nonce_new(uint8_t out[RFRAME_NONCE_LEN]);

/* Low level: the payload_len bytes at buf + RFRAME_HDR_LEN are written;
 * writes the header before them and the tag after, with the next sequence
 * number. Returns the frame length, -EMSGSIZE when len cannot hold it or the
 * payload is above the type's cap, -ENOTCONN for a non-HELLO frame before
 * rframe_tx_set_peer (or a HELLO after the first frame), -EINVAL for an
 * unknown type, -EOVERFLOW when sequence numbers are exhausted. tx->seq
 * moves only on success. */
int rframe_seal(struct rframe_tx *tx, enum rframe_type type, uint8_t *buf, size_t len,
                size_t payload_len);

/* The largest payload a frame of this type may carry (0 for unknown types). */
size_t rframe_payload_cap(enum rframe_type type);

/* A decoder for the bytes the peer sends us. Its buffer is RFRAME_FRAME_MAX
 * bytes, allocated here (xmalloc: aborts on failure). */
struct rframe_decoder *rframe_decoder_new(const struct key_ring *kr,
                                          const uint8_t local_nonce[RFRAME_NONCE_LEN]);

/* Frees dec (NULL is a no-op) after wiping it. */
void rframe_decoder_free(struct rframe_decoder *dec);

/* Consumes len bytes of the stream; calls cb once per complete verified
 * frame, in order. A HELLO is decoded here too (the decoder needs the peer
 * nonce) before cb sees it. Returns 0, the callback's non-zero value, or the
 * -errno of enum rframe_reason. After an error the decoder is failed: every
 * later call returns the same error without reading. */
int rframe_feed(struct rframe_decoder *dec, const void *buf, size_t len, rframe_frame_fn cb,
                void *arg);

/* The peer closed its side. Returns 0 at a frame boundary, -EPIPE
 * (RFRAME_R_TRUNCATED) in the middle of a frame, or the earlier error. */
int rframe_finish(struct rframe_decoder *dec);

/* Why the decoder failed (RFRAME_R_NONE while it has not). */
enum rframe_reason rframe_decoder_reason(const struct rframe_decoder *dec);

/* The peer's nonce, once its HELLO was accepted; NULL before. */
const uint8_t *rframe_decoder_peer_nonce(const struct rframe_decoder *dec);

/* The last sequence number accepted from the peer. */
uint64_t rframe_decoder_seq(const struct rframe_decoder *dec);

const char *rframe_reason_name(enum rframe_reason r);
const char *rframe_type_name(enum rframe_type t);

/* --- payloads (repl_payload.c) --- */

/* A string or blob inside a decoded frame: not NUL-terminated. */
struct rframe_str {
    const char *p;
    size_t len;
};

struct rframe_hello {
    uint16_t version; /* replication protocol version: RFRAME_VERSION */
    uint8_t nonce[RFRAME_NONCE_LEN];
    char name[RFRAME_NAME_MAX + 1]; /* NUL-terminated, 1..63 of [A-Za-z0-9._-] */
};

/* OBJECT_BEGIN: what the receiver needs to store the copy, with times as
 * ages so clocks need not agree. */
struct rframe_object {
    uint64_t id;                 /* per-connection counter, > 0 and increasing */
    struct rframe_str primary;   /* 1..RFRAME_KEY_MAX, no NUL */
    struct rframe_str secondary; /* 0..RFRAME_KEY_MAX, no NUL */
    struct rframe_str vary;      /* 0..RFRAME_KEY_MAX, no NUL */
    struct rframe_str etag;      /* 0..RFRAME_ETAG_MAX, no NUL */
    struct rframe_str headers;   /* 0..RFRAME_HEADERS_MAX, opaque */
    int status;                  /* 100..599 */
    int64_t date;                /* Date header, epoch seconds, 0..RFRAME_DATE_MAX */
    int64_t age_basis;           /* age at send time, seconds, 0..RFRAME_SECONDS_MAX */
    int64_t ttl;                 /* freshness left at send time, seconds, 0..RFRAME_SECONDS_MAX */
    int64_t stale;               /* stale window after that, seconds, 0..RFRAME_SECONDS_MAX */
    uint64_t body_size;          /* 0..RFRAME_BODY_MAX */
    uint8_t sha256[RFRAME_SHA256_LEN]; /* of the whole body */
};

struct rframe_chunk {
    uint64_t id;     /* the OBJECT_BEGIN's id */
    uint64_t offset; /* offset + len <= RFRAME_BODY_MAX */
    const uint8_t *data;
    size_t len; /* 1..RFRAME_CHUNK_MAX */
};

enum rframe_purge_kind {
    RFRAME_PURGE_REMOVE = 0,     /* PURGE: drop every variant */
    RFRAME_PURGE_INVALIDATE = 1, /* invalidation: mark every variant stale */
    RFRAME_PURGE_KIND_MAX
};

struct rframe_purge {
    enum rframe_purge_kind kind;
    struct rframe_str primary; /* 1..RFRAME_KEY_MAX, no NUL */
};

struct rframe_inv_entry {
    struct rframe_str primary;   /* 1..RFRAME_KEY_MAX, no NUL */
    struct rframe_str secondary; /* 0..RFRAME_KEY_MAX, no NUL */
    struct rframe_str etag;      /* 0..RFRAME_ETAG_MAX, no NUL */
    int64_t date;                /* 0..RFRAME_DATE_MAX */
};

/* A decoded INVENTORY page: every entry was checked by the decoder; walk
 * them with rframe_inventory_next. */
struct rframe_inventory {
    uint32_t page;  /* 0, 1, 2... per SYNC_REQUEST */
    uint32_t count; /* entries in this page, >= 1 */
    const uint8_t *entries;
    size_t len;
};

struct rframe_inventory_end {
    uint32_t pages;   /* INVENTORY frames sent */
    uint64_t entries; /* entries in them */
};

/* Encoders: the whole frame (header, payload, tag) into buf, signed by tx.
 * Return the frame length or a -errno of rframe_seal; -EINVAL for a field
 * out of the ranges above (what the decoder would refuse). */
int rframe_encode_hello(struct rframe_tx *tx, const char *name, uint8_t *buf, size_t len);
int rframe_encode_heartbeat(struct rframe_tx *tx, uint8_t *buf, size_t len);
int rframe_encode_object_begin(struct rframe_tx *tx, const struct rframe_object *o, uint8_t *buf,
                               size_t len);
int rframe_encode_object_chunk(struct rframe_tx *tx, const struct rframe_chunk *c, uint8_t *buf,
                               size_t len);
int rframe_encode_object_end(struct rframe_tx *tx, uint64_t id, uint8_t *buf, size_t len);
int rframe_encode_purge(struct rframe_tx *tx, const struct rframe_purge *p, uint8_t *buf,
                        size_t len);
int rframe_encode_sync_request(struct rframe_tx *tx, uint8_t *buf, size_t len);
int rframe_encode_inventory(struct rframe_tx *tx, uint32_t page, const struct rframe_inv_entry *e,
                            size_t n, uint8_t *buf, size_t len);
int rframe_encode_inventory_end(struct rframe_tx *tx, const struct rframe_inventory_end *ie,
                                uint8_t *buf, size_t len);

/* Bytes one entry takes in an INVENTORY payload, to fill pages up to
 * RFRAME_PAYLOAD_MAX - 8. */
size_t rframe_inv_entry_size(const struct rframe_inv_entry *e);

/* Decoders of a verified frame's payload. Return 0 or -EBADMSG (with *why,
 * if not NULL, naming the field) for a wrong type, a field out of range, a
 * short or long payload. */
int rframe_decode_hello(const struct rframe_frame *f, struct rframe_hello *out, const char **why);
int rframe_decode_object_begin(const struct rframe_frame *f, struct rframe_object *out,
                               const char **why);
int rframe_decode_object_chunk(const struct rframe_frame *f, struct rframe_chunk *out,
                               const char **why);
int rframe_decode_object_end(const struct rframe_frame *f, uint64_t *id, const char **why);
int rframe_decode_purge(const struct rframe_frame *f, struct rframe_purge *out, const char **why);
int rframe_decode_inventory(const struct rframe_frame *f, struct rframe_inventory *out,
                            const char **why);
int rframe_decode_inventory_end(const struct rframe_frame *f, struct rframe_inventory_end *out,
                                const char **why);
/* HEARTBEAT and SYNC_REQUEST: checks the payload is empty. */
int rframe_decode_empty(const struct rframe_frame *f, const char **why);

/* Next entry of a decoded page: 1 and *e filled, 0 at the end. *pos starts
 * at 0. */
int rframe_inventory_next(const struct rframe_inventory *inv, size_t *pos,
                          struct rframe_inv_entry *e);

/* --- body verification (repl_frame.c) --- */

/* Chunks of one object, in order, hashed as they arrive. */
struct rframe_body {
    uint64_t id;
    uint64_t size; /* declared */
    uint64_t got;  /* bytes accepted so far: the next offset expected */
    uint8_t sha256[RFRAME_SHA256_LEN];
    crypto_hash_sha256_state st;
};

void rframe_body_init(struct rframe_body *b, const struct rframe_object *o);

/* Accepts the next chunk. Returns 0, -EINVAL for another object's id,
 * -EEXIST when it overlaps bytes already accepted, -EPROTO when it leaves a
 * gap, -EFBIG when it runs past the declared size. Nothing is hashed on
 * error. */
int rframe_body_add(struct rframe_body *b, const struct rframe_chunk *c);

/* OBJECT_END for id (call once): returns 0 when all bytes arrived and the digest
 * matches, -EINVAL for another id, -ENODATA when bytes are missing,
 * -EBADMSG on a digest mismatch. */
int rframe_body_end(struct rframe_body *b, uint64_t id);

#endif
