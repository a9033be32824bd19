/* fuzz_proto.c - libFuzzer target: the UDP control codec (common/proto.c).
 *
 * Input: one mode byte, then the data. By mode & 3:
 *   0  the data is a whole datagram, verified under a fixed two-key ring:
 *      fuzzes the size and tag checks (a random tag never verifies);
 *   1  the data is the JSON part: it is signed here with the ring's first
 *      key, so the fuzzer reaches the strict parser and every field check
 *      behind the tag;
 *   2  the same, signed with the ring's second key (key rotation);
 *   3  the same, signed with a key outside the ring: must never decode.
 *
 * Oracles besides ASan/UBSan:
 *   - a failed decode names its field and gives a known reason;
 *   - what decodes re-encodes (proto_encode refuses exactly what decode
 *     would refuse), decodes again to the same identity fields, and
 *     encodes again to the same bytes (encoding is idempotent).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "proto.h"

#define FUZZ_BUF (PROTO_MAX_DGRAM * 2 + PROTO_MAC_HEX + 2)

static struct key_ring ring;    /* two keys, as during a rotation */
static uint8_t foreign_key[32]; /* signs what must be refused */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_die(const char *what)
{
    fprintf(stderr, "fuzz_proto: oracle failed: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        fuzz_die("sodium_init");
    ring.n = 2;
    memset(ring.k[0], 0x42, sizeof(ring.k[0]));
    memset(ring.k[1], 0x43, sizeof(ring.k[1]));
    memset(foreign_key, 0x99, sizeof(foreign_key));
    return 0;
}

/* json + '\n' + hex HMAC-SHA256 under key, into out (FUZZ_BUF bytes). */
static size_t fuzz_sign(const uint8_t *key, const uint8_t *json, size_t n, char *out)
{
    unsigned char tag[crypto_auth_hmacsha256_BYTES];

    if (n > FUZZ_BUF - PROTO_MAC_HEX - 2)
        n = FUZZ_BUF - PROTO_MAC_HEX - 2;
    memcpy(out, json, n);
    out[n] = '\n';
    crypto_auth_hmacsha256(tag, json, n, key);
    sodium_bin2hex(out + n + 1, PROTO_MAC_HEX + 1, tag, sizeof(tag));
    return n + 1 + PROTO_MAC_HEX;
}

static void fuzz_check_error(enum proto_err e, const char *field)
{
    if ((unsigned)e >= PROTO_E_MAX || !strcmp(proto_err_name(e), "?"))
        fuzz_die("unknown error code");
    if (!field || !*field)
        fuzz_die("a rejection without a field name");
}

/* m decoded: it must survive encode -> decode -> encode unchanged. */
static void fuzz_round_trip(const struct proto_msg *m)
{
    char b1[PROTO_MAX_DGRAM + 1], b2[PROTO_MAX_DGRAM + 1];
    struct proto_msg m2;
    const char *field = NULL;
    int n1, n2;

    n1 = proto_encode(m, &ring, b1, sizeof(b1));
    if (n1 < 0)
        fuzz_die("a decoded message does not encode");
    if (proto_decode(b1, (size_t)n1, &ring, &m2, &field) != PROTO_OK)
        fuzz_die("an encoded message does not decode");
    if (m2.type != m->type || m2.seq != m->seq || m2.ts_ms != m->ts_ms ||
        strcmp(m2.nonce, m->nonce) || strcmp(m2.name, m->name) || strcmp(m2.boot, m->boot) ||
        strcmp(m2.m.ip, m->m.ip) || m2.m.port != m->m.port || m2.m.service_up != m->m.service_up ||
        m2.m.cgroup != m->m.cgroup || m2.m.cpu_milli != m->m.cpu_milli)
        fuzz_die("round trip changed an identity field");
    n2 = proto_encode(&m2, &ring, b2, sizeof(b2));
    if (n2 != n1 || memcmp(b1, b2, (size_t)n1) != 0)
        fuzz_die("encoding is not idempotent");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[FUZZ_BUF];
    struct proto_msg m;
    const char *field = NULL;
    enum proto_err e;
    size_t n;
    unsigned mode;

    if (size < 1)
        return 0;
    mode = data[0] & 3;
    data++;
    size--;
    switch (mode) {
    case 0:
        e = proto_decode((const char *)data, size, &ring, &m, &field);
        break;
    default:
        n = fuzz_sign(mode == 1 ? ring.k[0] : mode == 2 ? ring.k[1] : foreign_key, data, size, buf);
        e = proto_decode(buf, n, &ring, &m, &field);
        break;
    }
    if (e != PROTO_OK) {
        fuzz_check_error(e, field);
        return 0;
    }
    if (mode == 3)
        fuzz_die("a message signed with a foreign key was accepted");
    if ((unsigned)m.type >= PROTO_TYPE_MAX || m.version != PROTO_VERSION)
        fuzz_die("decoded type or version out of range");
    fuzz_round_trip(&m);
    return 0;
}
