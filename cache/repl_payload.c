/* repl_payload.c - encoders and decoders of the replication frame payloads.
 *
 * Integers are big-endian, signed ones two's complement; strings are a
 * length (u16, or u32 for the headers blob) and that many bytes, without a
 * NUL. Layouts are in docs/replication.md. Decoders trust nothing: every
 * length is checked against what is left of the payload and against its
 * cap, every number against its range, and the payload must be used up
 * exactly. Encoders refuse (-EINVAL) what the decoder would refuse, so a
 * bug here shows at the sender.
 */
#include <errno.h>
#include <string.h>

#include "proto.h"
#include "repl_frame.h"

/* Payload writer: buf is the frame buffer, payload starts at RFRAME_HDR_LEN
 * and may not go past cap (the type's cap, or what the buffer holds). */
struct rframe_w {
    uint8_t *p;
    size_t cap;
    size_t pos;
    bool over;
};

struct rframe_r {
    const uint8_t *p;
    size_t len;
    size_t pos;
    const char *why; /* first failure: its field */
};

static void rframe_w_init(struct rframe_w *w, enum rframe_type t, uint8_t *buf, size_t len)
{
    size_t room = len > RFRAME_HDR_LEN + RFRAME_TAG_LEN ? len - RFRAME_HDR_LEN - RFRAME_TAG_LEN : 0;
    size_t cap = rframe_payload_cap(t);

    w->p = buf + RFRAME_HDR_LEN;
    w->cap = room < cap ? room : cap;
    w->pos = 0;
    w->over = len < RFRAME_HDR_LEN + RFRAME_TAG_LEN;
}

static void rframe_w_bytes(struct rframe_w *w, const void *src, size_t n)
{
    if (w->over || n > w->cap - w->pos) {
        w->over = true;
        return;
    }
    if (n > 0)
        memcpy(w->p + w->pos, src, n);
    w->pos += n;
}

static void rframe_w_uint(struct rframe_w *w, uint64_t v, unsigned bytes)
{
    uint8_t b[8];

    for (unsigned i = bytes; i-- > 0; v >>= 8)
        b[i] = (uint8_t)v;
    rframe_w_bytes(w, b, bytes);
}

/* A string with a length prefix of lbytes (2 or 4). */
static void rframe_w_str(struct rframe_w *w, const struct rframe_str *s, unsigned lbytes)
{
    rframe_w_uint(w, s->len, lbytes);
    rframe_w_bytes(w, s->p, s->len);
}

static int rframe_w_seal(struct rframe_tx *tx, enum rframe_type t, struct rframe_w *w, uint8_t *buf,
                         size_t len)
{
    if (w->over)
        return -EMSGSIZE;
    return rframe_seal(tx, t, buf, len, w->pos);
}

static bool rframe_r_fail(struct rframe_r *r, const char *why)
{
    if (!r->why)
        r->why = why;
    return false;
}

static bool rframe_r_bytes(struct rframe_r *r, const char *why, size_t n, const uint8_t **out)
{
    if (r->why || n > r->len - r->pos)
        return rframe_r_fail(r, why);
    *out = r->p + r->pos;
    r->pos += n;
    return true;
}

static bool rframe_r_uint(struct rframe_r *r, const char *why, unsigned bytes, uint64_t *v)
{
    const uint8_t *b;

    *v = 0;
    if (!rframe_r_bytes(r, why, bytes, &b))
        return false;
    for (unsigned i = 0; i < bytes; i++)
        *v = *v << 8 | b[i];
    return true;
}

/* A signed 64-bit number in min..max. */
static bool rframe_r_int(struct rframe_r *r, const char *why, int64_t min, int64_t max,
                         int64_t *out)
{
    uint64_t u;
    int64_t v;

    if (!rframe_r_uint(r, why, 8, &u))
        return false;
    v = u > INT64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
    if (v < min || v > max)
        return rframe_r_fail(r, why);
    *out = v;
    return true;
}

/* A length-prefixed string of min..max bytes; text strings may hold no NUL. */
static bool rframe_r_str(struct rframe_r *r, const char *why, unsigned lbytes, size_t min,
                         size_t max, bool text, struct rframe_str *s)
{
    const uint8_t *b;
    uint64_t n;

    if (!rframe_r_uint(r, why, lbytes, &n))
        return false;
    if (n < min || n > max || !rframe_r_bytes(r, why, (size_t)n, &b))
        return rframe_r_fail(r, why);
    if (text && memchr(b, '\0', (size_t)n))
        return rframe_r_fail(r, why);
    s->p = (const char *)b;
    s->len = (size_t)n;
    return true;
}

/* Starts reading f, which must be of type t. */
static void rframe_r_init(struct rframe_r *r, const struct rframe_frame *f, enum rframe_type t)
{
    r->p = f->payload;
    r->len = f->len;
    r->pos = 0;
    r->why = f->type == t ? NULL : "type";
}

static int rframe_r_done(struct rframe_r *r, const char **why)
{
    if (!r->why && r->pos != r->len)
        r->why = "trailing bytes";
    if (why)
        *why = r->why ? r->why : "";
    return r->why ? -EBADMSG : 0;
}

static bool rframe_text_ok(const struct rframe_str *s, size_t min, size_t max)
{
    return s->len >= min && s->len <= max && (s->len == 0 || (s->p && !memchr(s->p, 0, s->len)));
}

/* --- HELLO, HEARTBEAT, SYNC_REQUEST --- */

int rframe_encode_hello(struct rframe_tx *tx, const char *name, uint8_t *buf, size_t len)
{
    struct rframe_w w;
    size_t n;

    if (!proto_name_valid(name))
        return -EINVAL;
    n = strlen(name);
    rframe_w_init(&w, RFRAME_HELLO, buf, len);
    rframe_w_uint(&w, RFRAME_VERSION, 2);
    rframe_w_bytes(&w, tx->local_nonce, RFRAME_NONCE_LEN);
    rframe_w_uint(&w, n, 1);
    rframe_w_bytes(&w, name, n);
    return rframe_w_seal(tx, RFRAME_HELLO, &w, buf, len);
}

int rframe_decode_hello(const struct rframe_frame *f, struct rframe_hello *out, const char **why)
{
    struct rframe_r r;
    struct rframe_str name;
    const uint8_t *nonce = NULL;
    uint64_t v;

    rframe_r_init(&r, f, RFRAME_HELLO);
    memset(out, 0, sizeof(*out));
    if (rframe_r_uint(&r, "version", 2, &v) && v != RFRAME_VERSION)
        rframe_r_fail(&r, "version");
    out->version = (uint16_t)v;
    if (rframe_r_bytes(&r, "nonce", RFRAME_NONCE_LEN, &nonce))
        memcpy(out->nonce, nonce, RFRAME_NONCE_LEN);
    if (rframe_r_str(&r, "name", 1, 1, RFRAME_NAME_MAX, true, &name)) {
        memcpy(out->name, name.p, name.len);
        if (!proto_name_valid(out->name))
            rframe_r_fail(&r, "name");
    }
    return rframe_r_done(&r, why);
}

int rframe_encode_heartbeat(struct rframe_tx *tx, uint8_t *buf, size_t len)
{
    return rframe_seal(tx, RFRAME_HEARTBEAT, buf, len, 0);
}

int rframe_encode_sync_request(struct rframe_tx *tx, uint8_t *buf, size_t len)
{
    return rframe_seal(tx, RFRAME_SYNC_REQUEST, buf, len, 0);
}

int rframe_decode_empty(const struct rframe_frame *f, const char **why)
{
    const char *w = NULL;

    if (f->type != RFRAME_HEARTBEAT && f->type != RFRAME_SYNC_REQUEST)
        w = "type";
    else if (f->len != 0)
        w = "trailing bytes";
    if (why)
        *why = w ? w : "";
    return w ? -EBADMSG : 0;
}

/* --- objects --- */

static bool rframe_seconds_ok(int64_t v)
{
    return v >= 0 && v <= RFRAME_SECONDS_MAX;
}

static bool rframe_object_ok(const struct rframe_object *o)
{
    return o->id > 0 && o->status >= 100 && o->status <= 599 && o->date >= 0 &&
           o->date <= RFRAME_DATE_MAX && rframe_seconds_ok(o->age_basis) &&
           rframe_seconds_ok(o->ttl) && rframe_seconds_ok(o->stale) &&
           o->body_size <= RFRAME_BODY_MAX && rframe_text_ok(&o->primary, 1, RFRAME_KEY_MAX) &&
           rframe_text_ok(&o->secondary, 0, RFRAME_KEY_MAX) &&
           rframe_text_ok(&o->vary, 0, RFRAME_KEY_MAX) &&
           rframe_text_ok(&o->etag, 0, RFRAME_ETAG_MAX) && o->headers.len <= RFRAME_HEADERS_MAX &&
           (o->headers.len == 0 || o->headers.p);
}

int rframe_encode_object_begin(struct rframe_tx *tx, const struct rframe_object *o, uint8_t *buf,
                               size_t len)
{
    struct rframe_w w;

    if (!rframe_object_ok(o))
        return -EINVAL;
    rframe_w_init(&w, RFRAME_OBJECT_BEGIN, buf, len);
    rframe_w_uint(&w, o->id, 8);
    rframe_w_uint(&w, (uint64_t)o->status, 2);
    rframe_w_uint(&w, (uint64_t)o->date, 8);
    rframe_w_uint(&w, (uint64_t)o->age_basis, 8);
    rframe_w_uint(&w, (uint64_t)o->ttl, 8);
    rframe_w_uint(&w, (uint64_t)o->stale, 8);
    rframe_w_uint(&w, o->body_size, 8);
    rframe_w_bytes(&w, o->sha256, RFRAME_SHA256_LEN);
    rframe_w_str(&w, &o->primary, 2);
    rframe_w_str(&w, &o->secondary, 2);
    rframe_w_str(&w, &o->vary, 2);
    rframe_w_str(&w, &o->etag, 2);
    rframe_w_str(&w, &o->headers, 4);
    return rframe_w_seal(tx, RFRAME_OBJECT_BEGIN, &w, buf, len);
}

int rframe_decode_object_begin(const struct rframe_frame *f, struct rframe_object *out,
                               const char **why)
{
    struct rframe_r r;
    const uint8_t *sha = NULL;
    uint64_t v = 0;

    rframe_r_init(&r, f, RFRAME_OBJECT_BEGIN);
    memset(out, 0, sizeof(*out));
    if (rframe_r_uint(&r, "id", 8, &out->id) && out->id == 0)
        rframe_r_fail(&r, "id");
    if (rframe_r_uint(&r, "status", 2, &v) && (v < 100 || v > 599))
        rframe_r_fail(&r, "status");
    out->status = (int)v;
    rframe_r_int(&r, "date", 0, RFRAME_DATE_MAX, &out->date);
    rframe_r_int(&r, "age_basis", 0, RFRAME_SECONDS_MAX, &out->age_basis);
    rframe_r_int(&r, "ttl", 0, RFRAME_SECONDS_MAX, &out->ttl);
    rframe_r_int(&r, "stale", 0, RFRAME_SECONDS_MAX, &out->stale);
    if (rframe_r_uint(&r, "body_size", 8, &out->body_size) && out->body_size > RFRAME_BODY_MAX)
        rframe_r_fail(&r, "body_size");
    if (rframe_r_bytes(&r, "sha256", RFRAME_SHA256_LEN, &sha))
        memcpy(out->sha256, sha, RFRAME_SHA256_LEN);
    rframe_r_str(&r, "primary", 2, 1, RFRAME_KEY_MAX, true, &out->primary);
    rframe_r_str(&r, "secondary", 2, 0, RFRAME_KEY_MAX, true, &out->secondary);
    rframe_r_str(&r, "vary", 2, 0, RFRAME_KEY_MAX, true, &out->vary);
    rframe_r_str(&r, "etag", 2, 0, RFRAME_ETAG_MAX, true, &out->etag);
    rframe_r_str(&r, "headers", 4, 0, RFRAME_HEADERS_MAX, false, &out->headers);
    return rframe_r_done(&r, why);
}

int rframe_encode_object_chunk(struct rframe_tx *tx, const struct rframe_chunk *c, uint8_t *buf,
                               size_t len)
{
    struct rframe_w w;

    if (c->id == 0 || c->len == 0 || c->len > RFRAME_CHUNK_MAX || !c->data ||
        c->offset > RFRAME_BODY_MAX - c->len)
        return -EINVAL;
    rframe_w_init(&w, RFRAME_OBJECT_CHUNK, buf, len);
    rframe_w_uint(&w, c->id, 8);
    rframe_w_uint(&w, c->offset, 8);
    rframe_w_bytes(&w, c->data, c->len);
    return rframe_w_seal(tx, RFRAME_OBJECT_CHUNK, &w, buf, len);
}

int rframe_decode_object_chunk(const struct rframe_frame *f, struct rframe_chunk *out,
                               const char **why)
{
    struct rframe_r r;

    rframe_r_init(&r, f, RFRAME_OBJECT_CHUNK);
    memset(out, 0, sizeof(*out));
    if (rframe_r_uint(&r, "id", 8, &out->id) && out->id == 0)
        rframe_r_fail(&r, "id");
    rframe_r_uint(&r, "offset", 8, &out->offset);
    out->len = r.why || r.len < r.pos ? 0 : r.len - r.pos;
    if (out->len == 0 || out->len > RFRAME_CHUNK_MAX)
        rframe_r_fail(&r, "data");
    else if (out->offset > RFRAME_BODY_MAX - out->len)
        rframe_r_fail(&r, "offset");
    else
        rframe_r_bytes(&r, "data", out->len, &out->data);
    return rframe_r_done(&r, why);
}

int rframe_encode_object_end(struct rframe_tx *tx, uint64_t id, uint8_t *buf, size_t len)
{
    struct rframe_w w;

    if (id == 0)
        return -EINVAL;
    rframe_w_init(&w, RFRAME_OBJECT_END, buf, len);
    rframe_w_uint(&w, id, 8);
    return rframe_w_seal(tx, RFRAME_OBJECT_END, &w, buf, len);
}

int rframe_decode_object_end(const struct rframe_frame *f, uint64_t *id, const char **why)
{
    struct rframe_r r;

    rframe_r_init(&r, f, RFRAME_OBJECT_END);
    if (rframe_r_uint(&r, "id", 8, id) && *id == 0)
        rframe_r_fail(&r, "id");
    return rframe_r_done(&r, why);
}

/* --- PURGE --- */

int rframe_encode_purge(struct rframe_tx *tx, const struct rframe_purge *p, uint8_t *buf,
                        size_t len)
{
    struct rframe_w w;

    if ((unsigned)p->kind >= RFRAME_PURGE_KIND_MAX ||
        !rframe_text_ok(&p->primary, 1, RFRAME_KEY_MAX))
        return -EINVAL;
    rframe_w_init(&w, RFRAME_PURGE, buf, len);
    rframe_w_uint(&w, (uint64_t)p->kind, 1);
    rframe_w_str(&w, &p->primary, 2);
    return rframe_w_seal(tx, RFRAME_PURGE, &w, buf, len);
}

int rframe_decode_purge(const struct rframe_frame *f, struct rframe_purge *out, const char **why)
{
    struct rframe_r r;
    uint64_t kind = 0;

    rframe_r_init(&r, f, RFRAME_PURGE);
    memset(out, 0, sizeof(*out));
    if (rframe_r_uint(&r, "kind", 1, &kind) && kind >= RFRAME_PURGE_KIND_MAX)
        rframe_r_fail(&r, "kind");
    out->kind = (enum rframe_purge_kind)kind;
    rframe_r_str(&r, "primary", 2, 1, RFRAME_KEY_MAX, true, &out->primary);
    return rframe_r_done(&r, why);
}

/* --- INVENTORY, INVENTORY_END --- */

size_t rframe_inv_entry_size(const struct rframe_inv_entry *e)
{
    return 2 + e->primary.len + 2 + e->secondary.len + 2 + e->etag.len + 8;
}

static bool rframe_inv_entry_ok(const struct rframe_inv_entry *e)
{
    return rframe_text_ok(&e->primary, 1, RFRAME_KEY_MAX) &&
           rframe_text_ok(&e->secondary, 0, RFRAME_KEY_MAX) &&
           rframe_text_ok(&e->etag, 0, RFRAME_ETAG_MAX) && e->date >= 0 &&
           e->date <= RFRAME_DATE_MAX;
}

int rframe_encode_inventory(struct rframe_tx *tx, uint32_t page, const struct rframe_inv_entry *e,
                            size_t n, uint8_t *buf, size_t len)
{
    struct rframe_w w;

    if (n == 0 || n > UINT32_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!rframe_inv_entry_ok(&e[i]))
            return -EINVAL;
    }
    rframe_w_init(&w, RFRAME_INVENTORY, buf, len);
    rframe_w_uint(&w, page, 4);
    rframe_w_uint(&w, n, 4);
    for (size_t i = 0; i < n && !w.over; i++) {
        rframe_w_str(&w, &e[i].primary, 2);
        rframe_w_str(&w, &e[i].secondary, 2);
        rframe_w_str(&w, &e[i].etag, 2);
        rframe_w_uint(&w, (uint64_t)e[i].date, 8);
    }
    return rframe_w_seal(tx, RFRAME_INVENTORY, &w, buf, len);
}

static bool rframe_r_inv_entry(struct rframe_r *r, struct rframe_inv_entry *e)
{
    return rframe_r_str(r, "primary", 2, 1, RFRAME_KEY_MAX, true, &e->primary) &&
           rframe_r_str(r, "secondary", 2, 0, RFRAME_KEY_MAX, true, &e->secondary) &&
           rframe_r_str(r, "etag", 2, 0, RFRAME_ETAG_MAX, true, &e->etag) &&
           rframe_r_int(r, "date", 0, RFRAME_DATE_MAX, &e->date);
}

int rframe_decode_inventory(const struct rframe_frame *f, struct rframe_inventory *out,
                            const char **why)
{
    struct rframe_r r;
    struct rframe_inv_entry e;
    uint64_t v = 0;

    rframe_r_init(&r, f, RFRAME_INVENTORY);
    memset(out, 0, sizeof(*out));
    rframe_r_uint(&r, "page", 4, &v);
    out->page = (uint32_t)v;
    /* Each entry takes at least 15 bytes: a count above what fits is a lie. */
    if (rframe_r_uint(&r, "count", 4, &v) && (v == 0 || v > (r.len - r.pos) / 15))
        rframe_r_fail(&r, "count");
    out->count = (uint32_t)v;
    out->entries = r.p + r.pos;
    for (uint32_t i = 0; !r.why && i < out->count; i++)
        rframe_r_inv_entry(&r, &e);
    out->len = r.why ? 0 : r.len - (size_t)(out->entries - r.p);
    return rframe_r_done(&r, why);
}

int rframe_inventory_next(const struct rframe_inventory *inv, size_t *pos,
                          struct rframe_inv_entry *e)
{
    struct rframe_r r = {.p = inv->entries, .len = inv->len, .pos = *pos};

    if (*pos >= inv->len || !rframe_r_inv_entry(&r, e))
        return 0;
    *pos = r.pos;
    return 1;
}

int rframe_encode_inventory_end(struct rframe_tx *tx, const struct rframe_inventory_end *ie,
                                uint8_t *buf, size_t len)
{
    struct rframe_w w;

    rframe_w_init(&w, RFRAME_INVENTORY_END, buf, len);
    rframe_w_uint(&w, ie->pages, 4);
    rframe_w_uint(&w, ie->entries, 8);
    return rframe_w_seal(tx, RFRAME_INVENTORY_END, &w, buf, len);
}

int rframe_decode_inventory_end(const struct rframe_frame *f, struct rframe_inventory_end *out,
                                const char **why)
{
    struct rframe_r r;
    uint64_t v = 0;

    rframe_r_init(&r, f, RFRAME_INVENTORY_END);
    memset(out, 0, sizeof(*out));
    rframe_r_uint(&r, "pages", 4, &v);
    out->pages = (uint32_t)v;
    rframe_r_uint(&r, "entries", 8, &out->entries);
    return rframe_r_done(&r, why);
}
