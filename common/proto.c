/* proto.c - the JSON + HMAC-SHA256 codec of the UDP control protocol.
 *
 * Decoding order matters: size, then tag, then strict JSON, then fields.
 * Every field is checked for JSON type and range; numbers must be finite
 * (cJSON reads "1e999" as inf) and integers exact. Unknown fields are
 * ignored so a newer peer can add some.
 */
#include "proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

static const char *const proto_type_names[PROTO_TYPE_MAX] = {"probe_request", "probe_response",
                                                             "hello", "bye"};

static const char *const proto_err_names[PROTO_E_MAX] = {
    "ok",          "oversize", "no_mac",    "bad_mac",     "malformed_json",
    "bad_version", "bad_type", "bad_field", "out_of_range"};

const char *proto_type_name(enum proto_type t)
{
    return (unsigned)t < PROTO_TYPE_MAX ? proto_type_names[t] : "?";
}

const char *proto_err_name(enum proto_err e)
{
    return (unsigned)e < PROTO_E_MAX ? proto_err_names[e] : "?";
}

bool proto_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > PROTO_NAME_MAX)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

bool proto_ts_fresh(uint64_t ts_ms, uint64_t now_ms, uint64_t skew_ms)
{
    return ts_ms + skew_ms >= now_ms && ts_ms <= now_ms + skew_ms;
}

static bool proto_hex_valid(const char *s, size_t want)
{
    return strlen(s) == want && strspn(s, "0123456789abcdef") == want;
}

static bool proto_ip_valid(const char *s)
{
    struct in_addr a;

    return inet_pton(AF_INET, s, &a) == 1;
}

void proto_nonce_new(char out[PROTO_NONCE_HEX + 1])
{
    unsigned char raw[PROTO_NONCE_BYTES];

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(out, PROTO_NONCE_HEX + 1, raw, sizeof(raw));
}

static void proto_mac_hex(const struct key_ring *kr, unsigned idx, const char *data, size_t n,
                          char out[PROTO_MAC_HEX + 1])
{
    unsigned char tag[crypto_auth_hmacsha256_BYTES];

    crypto_auth_hmacsha256(tag, (const unsigned char *)data, n, kr->k[idx]);
    sodium_bin2hex(out, PROTO_MAC_HEX + 1, tag, sizeof(tag));
}

/* ---- encoding ---- */

static bool proto_has_identity(enum proto_type t)
{
    return t != PROTO_PROBE_REQUEST;
}

static bool proto_has_metrics(enum proto_type t)
{
    return t == PROTO_PROBE_RESPONSE || t == PROTO_HELLO;
}

/* A whole number, written exactly. cJSON prints 15 significant digits
 * whenever they read back within its relative epsilon, which moves integers
 * above 10^15 (seq and ts up to PROTO_MAX_SEQ, RAM up to PROTO_MAX_BYTES) by
 * a few units; "%.0f" is exact for every integer up to 2^53. Anything else
 * (negative, NaN, too big) goes through cJSON and the decoder refuses it. */
static void proto_add_uint(cJSON *o, const char *name, double v)
{
    char num[24];

    if (v >= 0 && v <= (double)PROTO_MAX_SEQ) {
        snprintf(num, sizeof(num), "%.0f", v);
        cJSON_AddRawToObject(o, name, num);
    } else {
        cJSON_AddNumberToObject(o, name, v);
    }
}

static void proto_add_metrics(cJSON *o, const struct proto_metrics *m)
{
    cJSON_AddStringToObject(o, "ip", m->ip);
    proto_add_uint(o, "port", m->port);
    proto_add_uint(o, "ram_free", floor(m->ram_free));
    proto_add_uint(o, "ram_total", floor(m->ram_total));
    cJSON_AddNumberToObject(o, "cpu_idle", round(m->cpu_idle * 100.0) / 100.0);
    cJSON_AddNumberToObject(o, "load1", round(m->load1 * 100.0) / 100.0);
    proto_add_uint(o, "uptime", floor(m->uptime));
    cJSON_AddStringToObject(o, "service", m->service_up ? "up" : "down");
    cJSON_AddBoolToObject(o, "cgroup", m->cgroup);
    /* 0 is "unknown": left out, as an old agent would, never sent as 0. */
    if (m->cpu_milli > 0)
        proto_add_uint(o, "cpu_milli", m->cpu_milli);
}

static bool proto_msg_encodable(const struct proto_msg *msg)
{
    if ((unsigned)msg->type >= PROTO_TYPE_MAX || msg->seq > PROTO_MAX_SEQ ||
        msg->ts_ms > PROTO_MAX_SEQ || !proto_hex_valid(msg->nonce, PROTO_NONCE_HEX))
        return false;
    if (proto_has_identity(msg->type) &&
        (!proto_name_valid(msg->name) || !proto_hex_valid(msg->boot, PROTO_NONCE_HEX)))
        return false;
    if (proto_has_metrics(msg->type) && msg->m.cpu_milli > PROTO_MAX_CPU_MILLI)
        return false;
    return true;
}

int proto_encode(const struct proto_msg *msg, const struct key_ring *kr, char *buf, size_t len)
{
    /* cJSON_PrintPreallocated wants 5 bytes of slack (NOTES.md). */
    char json[PROTO_MAX_DGRAM + 8];
    size_t n;
    cJSON *o;
    int r = -EMSGSIZE;

    if (!proto_msg_encodable(msg) || kr->n == 0)
        return -EINVAL;
    o = cJSON_CreateObject();
    if (!o)
        return -ENOMEM;
    proto_add_uint(o, "v", PROTO_VERSION);
    cJSON_AddStringToObject(o, "type", proto_type_name(msg->type));
    proto_add_uint(o, "seq", (double)msg->seq);
    proto_add_uint(o, "ts", (double)msg->ts_ms);
    cJSON_AddStringToObject(o, "nonce", msg->nonce);
    if (proto_has_identity(msg->type)) {
        cJSON_AddStringToObject(o, "name", msg->name);
        cJSON_AddStringToObject(o, "boot", msg->boot);
    }
    if (msg->type == PROTO_PROBE_RESPONSE)
        cJSON_AddNumberToObject(o, "hold_ms", round(msg->hold_ms * 1000.0) / 1000.0);
    if (proto_has_metrics(msg->type))
        proto_add_metrics(o, &msg->m);
    if (!cJSON_PrintPreallocated(o, json, (int)sizeof(json), false))
        goto out_free;
    n = strlen(json);
    if (n + 1 + PROTO_MAC_HEX > PROTO_MAX_DGRAM || n + 1 + PROTO_MAC_HEX + 1 > len)
        goto out_free;
    memcpy(buf, json, n);
    buf[n] = '\n';
    proto_mac_hex(kr, 0, buf, n, buf + n + 1);
    r = (int)(n + 1 + PROTO_MAC_HEX);
out_free:
    cJSON_Delete(o);
    return r;
}

/* ---- decoding ---- */

struct proto_dec {
    const cJSON *root;
    const char **field;
};

static enum proto_err proto_fail(struct proto_dec *d, const char *name, enum proto_err e)
{
    if (d->field)
        *d->field = name;
    return e;
}

static enum proto_err proto_get_num(struct proto_dec *d, const char *name, double min, double max,
                                    double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(d->root, name);

    if (!cJSON_IsNumber(it))
        return proto_fail(d, name, PROTO_E_FIELD);
    if (!isfinite(it->valuedouble) || it->valuedouble < min || it->valuedouble > max)
        return proto_fail(d, name, PROTO_E_RANGE);
    *out = it->valuedouble;
    return PROTO_OK;
}

static enum proto_err proto_get_uint(struct proto_dec *d, const char *name, double max,
                                     uint64_t *out)
{
    double v;
    enum proto_err e = proto_get_num(d, name, 0, max, &v);

    if (e)
        return e;
    if (v != floor(v))
        return proto_fail(d, name, PROTO_E_RANGE);
    *out = (uint64_t)v;
    return PROTO_OK;
}

static enum proto_err proto_get_str(struct proto_dec *d, const char *name, char *out, size_t cap)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(d->root, name);
    size_t n;

    if (!cJSON_IsString(it) || !it->valuestring)
        return proto_fail(d, name, PROTO_E_FIELD);
    n = strlen(it->valuestring);
    if (n >= cap)
        return proto_fail(d, name, PROTO_E_RANGE);
    memcpy(out, it->valuestring, n + 1);
    return PROTO_OK;
}

static enum proto_err proto_get_hex(struct proto_dec *d, const char *name, char *out)
{
    enum proto_err e = proto_get_str(d, name, out, PROTO_NONCE_HEX + 1);

    if (e)
        return e;
    return proto_hex_valid(out, PROTO_NONCE_HEX) ? PROTO_OK : proto_fail(d, name, PROTO_E_RANGE);
}

/* Optional (agents before it did not send it): absent is 0, "unknown".
 * Present, it is an integer in 1..PROTO_MAX_CPU_MILLI; 0 is refused, since
 * a sender that does not know leaves the field out. */
static enum proto_err proto_get_cpu_milli(struct proto_dec *d, struct proto_metrics *m)
{
    uint64_t v;
    enum proto_err e;

    m->cpu_milli = 0;
    if (!cJSON_GetObjectItemCaseSensitive(d->root, "cpu_milli"))
        return PROTO_OK;
    if ((e = proto_get_uint(d, "cpu_milli", PROTO_MAX_CPU_MILLI, &v)))
        return e;
    if (v == 0)
        return proto_fail(d, "cpu_milli", PROTO_E_RANGE);
    m->cpu_milli = (uint32_t)v;
    return PROTO_OK;
}

static enum proto_err proto_get_metrics(struct proto_dec *d, struct proto_metrics *m)
{
    char svc[8];
    uint64_t port;
    const cJSON *cg;
    enum proto_err e;

    if ((e = proto_get_str(d, "ip", m->ip, sizeof(m->ip))))
        return e;
    if (!proto_ip_valid(m->ip))
        return proto_fail(d, "ip", PROTO_E_RANGE);
    if ((e = proto_get_uint(d, "port", 65535, &port)))
        return e;
    if (port == 0)
        return proto_fail(d, "port", PROTO_E_RANGE);
    m->port = (uint16_t)port;
    if ((e = proto_get_num(d, "ram_total", 1, PROTO_MAX_BYTES, &m->ram_total)) ||
        (e = proto_get_num(d, "ram_free", 0, m->ram_total, &m->ram_free)) ||
        (e = proto_get_num(d, "cpu_idle", 0, 100, &m->cpu_idle)) ||
        (e = proto_get_num(d, "load1", 0, PROTO_MAX_LOAD, &m->load1)) ||
        (e = proto_get_num(d, "uptime", 0, PROTO_MAX_UPTIME, &m->uptime)) ||
        (e = proto_get_str(d, "service", svc, sizeof(svc))))
        return e;
    if (strcmp(svc, "up") && strcmp(svc, "down"))
        return proto_fail(d, "service", PROTO_E_RANGE);
    m->service_up = svc[0] == 'u';
    cg = cJSON_GetObjectItemCaseSensitive(d->root, "cgroup");
    if (cg && !cJSON_IsBool(cg))
        return proto_fail(d, "cgroup", PROTO_E_FIELD);
    m->cgroup = cJSON_IsTrue(cg);
    return proto_get_cpu_milli(d, m);
}

static enum proto_err proto_get_type(struct proto_dec *d, enum proto_type *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(d->root, "type");

    if (!cJSON_IsString(it) || !it->valuestring)
        return proto_fail(d, "type", PROTO_E_TYPE);
    for (int i = 0; i < PROTO_TYPE_MAX; i++) {
        if (!strcmp(it->valuestring, proto_type_names[i])) {
            *out = (enum proto_type)i;
            return PROTO_OK;
        }
    }
    return proto_fail(d, "type", PROTO_E_TYPE);
}

static enum proto_err proto_get_fields(struct proto_dec *d, struct proto_msg *out)
{
    uint64_t v;
    enum proto_err e;

    if (proto_get_uint(d, "v", 1000, &v) || v != PROTO_VERSION)
        return proto_fail(d, "v", PROTO_E_VERSION);
    out->version = (int)v;
    if ((e = proto_get_type(d, &out->type)) ||
        (e = proto_get_uint(d, "seq", (double)PROTO_MAX_SEQ, &out->seq)) ||
        (e = proto_get_uint(d, "ts", (double)PROTO_MAX_SEQ, &out->ts_ms)) ||
        (e = proto_get_hex(d, "nonce", out->nonce)))
        return e;
    if (proto_has_identity(out->type)) {
        if ((e = proto_get_str(d, "name", out->name, sizeof(out->name))))
            return e;
        if (!proto_name_valid(out->name))
            return proto_fail(d, "name", PROTO_E_RANGE);
        if ((e = proto_get_hex(d, "boot", out->boot)))
            return e;
    }
    if (out->type == PROTO_PROBE_RESPONSE &&
        (e = proto_get_num(d, "hold_ms", 0, PROTO_MAX_HOLD_MS, &out->hold_ms)))
        return e;
    if (proto_has_metrics(out->type))
        return proto_get_metrics(d, &out->m);
    return PROTO_OK;
}

/* Checks the tag against every key of the ring, in constant time each. */
static bool proto_mac_ok(const struct key_ring *kr, const char *data, size_t n, const char *hex)
{
    unsigned char tag[crypto_auth_hmacsha256_BYTES];
    size_t tlen;

    if (sodium_hex2bin(tag, sizeof(tag), hex, PROTO_MAC_HEX, NULL, &tlen, NULL) != 0 ||
        tlen != sizeof(tag))
        return false;
    for (unsigned i = 0; i < kr->n; i++) {
        if (crypto_auth_hmacsha256_verify(tag, (const unsigned char *)data, n, kr->k[i]) == 0)
            return true;
    }
    return false;
}

enum proto_err proto_decode(const char *buf, size_t n, const struct key_ring *kr,
                            struct proto_msg *out, const char **field)
{
    char json[PROTO_MAX_DGRAM + 1];
    struct proto_dec d = {.field = field};
    const char *end = NULL;
    size_t jlen;
    cJSON *root;
    enum proto_err e;

    if (field)
        *field = "";
    if (n > PROTO_MAX_DGRAM)
        return proto_fail(&d, "size", PROTO_E_OVERSIZE);
    if (n < PROTO_MAC_HEX + 3 || buf[n - PROTO_MAC_HEX - 1] != '\n')
        return proto_fail(&d, "mac", PROTO_E_NOMAC);
    jlen = n - PROTO_MAC_HEX - 1;
    if (!proto_mac_ok(kr, buf, jlen, buf + jlen + 1))
        return proto_fail(&d, "mac", PROTO_E_BADMAC);
    /* Strict parse: NUL-terminate and require the parser to end exactly
     * there, so trailing garbage or an embedded NUL is malformed. */
    memcpy(json, buf, jlen);
    json[jlen] = '\0';
    root = cJSON_ParseWithLengthOpts(json, jlen + 1, &end, 1);
    if (!root || !cJSON_IsObject(root) || end != json + jlen) {
        cJSON_Delete(root);
        return proto_fail(&d, "json", PROTO_E_JSON);
    }
    memset(out, 0, sizeof(*out));
    d.root = root;
    e = proto_get_fields(&d, out);
    cJSON_Delete(root);
    return e;
}
