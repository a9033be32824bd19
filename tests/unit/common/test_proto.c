/* test_proto.c - the UDP codec: round trips and every rejection path.
 *
 * Datagrams for the rejection tests are signed here with libsodium
 * directly, not with proto_encode, so each test reaches exactly the check
 * it names (a bad field behind a good tag).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "proto.h"

static struct key_ring ring;

static void setup(void)
{
    cr_assert(sodium_init() >= 0);
    ring.n = 1;
    memset(ring.k[0], 0x42, 32);
}

TestSuite(proto, .init = setup);

/* JSON text + '\n' + hex HMAC under key k. Returns the datagram length. */
static size_t sign_with(const uint8_t *k, const char *json, char *out, size_t cap)
{
    unsigned char tag[32];
    size_t n = strlen(json);

    cr_assert(n + 66 <= cap);
    memcpy(out, json, n);
    out[n] = '\n';
    crypto_auth_hmacsha256(tag, (const unsigned char *)json, n, k);
    sodium_bin2hex(out + n + 1, 65, tag, 32);
    return n + 65;
}

static enum proto_err decode_json(const char *json, struct proto_msg *m, const char **field)
{
    char buf[4096];
    size_t n = sign_with(ring.k[0], json, buf, sizeof(buf));

    return proto_decode(buf, n, &ring, m, field);
}

#define NONCE "0123456789abcdef0123456789abcdef"
#define BOOT  "fedcba9876543210fedcba9876543210"
#define HDR(type) \
    "{\"v\":1,\"type\":\"" type "\",\"seq\":7,\"ts\":1700000000000,\"nonce\":\"" NONCE "\""
#define ID ",\"name\":\"cache-a\",\"boot\":\"" BOOT "\""
#define METRICS                                                                                   \
    ",\"ip\":\"127.0.0.1\",\"port\":8080,\"ram_free\":1000,\"ram_total\":4000,\"cpu_idle\":55.5," \
    "\"load1\":0.25,\"uptime\":12,\"service\":\"up\""
#define RESPONSE HDR("probe_response") ID ",\"hold_ms\":12.5" METRICS

static void expect_err(const char *json, enum proto_err want, const char *want_field)
{
    struct proto_msg m;
    const char *field = NULL;
    enum proto_err e = decode_json(json, &m, &field);

    cr_assert_eq(e, want, "%s: got %s want %s", json, proto_err_name(e), proto_err_name(want));
    if (want_field)
        cr_assert_str_eq(field, want_field);
}

static struct proto_msg sample_msg(enum proto_type t)
{
    struct proto_msg m = {.type = t, .seq = 99, .ts_ms = 1700000000123ULL, .hold_ms = 3.25};

    memcpy(m.nonce, NONCE, sizeof(m.nonce));
    memcpy(m.boot, BOOT, sizeof(m.boot));
    snprintf(m.name, sizeof(m.name), "node-1.example");
    snprintf(m.m.ip, sizeof(m.m.ip), "10.1.2.3");
    m.m.port = 11211;
    m.m.ram_total = 17179869184.0;
    m.m.ram_free = 8589934592.0;
    m.m.cpu_idle = 87.25;
    m.m.load1 = 1.5;
    m.m.uptime = 3600;
    m.m.service_up = true;
    m.m.cgroup = true;
    m.m.cpu_milli = 2500;
    return m;
}

static void round_trip(enum proto_type t)
{
    struct proto_msg in = sample_msg(t), out;
    char buf[PROTO_MAX_DGRAM + 1];
    int n = proto_encode(&in, &ring, buf, sizeof(buf));

    cr_assert_gt(n, 0);
    cr_assert_leq(n, PROTO_MAX_DGRAM);
    cr_assert_eq(proto_decode(buf, (size_t)n, &ring, &out, NULL), PROTO_OK);
    cr_assert_eq(out.type, t);
    cr_assert_eq(out.version, PROTO_VERSION);
    cr_assert_eq(out.seq, in.seq);
    cr_assert_eq(out.ts_ms, in.ts_ms);
    cr_assert_str_eq(out.nonce, in.nonce);
    if (t == PROTO_PROBE_REQUEST)
        return;
    cr_assert_str_eq(out.name, in.name);
    cr_assert_str_eq(out.boot, in.boot);
    if (t == PROTO_BYE)
        return;
    cr_assert_str_eq(out.m.ip, "10.1.2.3");
    cr_assert_eq(out.m.port, 11211);
    cr_assert_float_eq(out.m.ram_total, in.m.ram_total, 0.5);
    cr_assert_float_eq(out.m.ram_free, in.m.ram_free, 0.5);
    cr_assert_float_eq(out.m.cpu_idle, 87.25, 1e-9);
    cr_assert_float_eq(out.m.load1, 1.5, 1e-9);
    cr_assert_eq(out.m.service_up, true);
    cr_assert_eq(out.m.cgroup, true);
    cr_assert_eq(out.m.cpu_milli, 2500);
    if (t == PROTO_PROBE_RESPONSE)
        cr_assert_float_eq(out.hold_ms, 3.25, 1e-9);
}

Test(proto, round_trip_probe_request)
{
    round_trip(PROTO_PROBE_REQUEST);
}
Test(proto, round_trip_probe_response)
{
    round_trip(PROTO_PROBE_RESPONSE);
}
Test(proto, round_trip_hello)
{
    round_trip(PROTO_HELLO);
}
Test(proto, round_trip_bye)
{
    round_trip(PROTO_BYE);
}

Test(proto, encode_refuses_what_would_not_decode)
{
    struct proto_msg m = sample_msg(PROTO_HELLO);
    char buf[PROTO_MAX_DGRAM + 1];

    snprintf(m.name, sizeof(m.name), "bad name");
    cr_assert_eq(proto_encode(&m, &ring, buf, sizeof(buf)), -EINVAL);
    m = sample_msg(PROTO_HELLO);
    m.seq = PROTO_MAX_SEQ + 1;
    cr_assert_eq(proto_encode(&m, &ring, buf, sizeof(buf)), -EINVAL);
    m = sample_msg(PROTO_HELLO);
    m.m.cpu_milli = (uint32_t)PROTO_MAX_CPU_MILLI + 1;
    cr_assert_eq(proto_encode(&m, &ring, buf, sizeof(buf)), -EINVAL);
    m = sample_msg(PROTO_HELLO);
    cr_assert_eq(proto_encode(&m, &ring, buf, 100), -EMSGSIZE);
}

Test(proto, accepts_response_and_ignores_unknown_fields)
{
    struct proto_msg m;

    cr_assert_eq(decode_json(RESPONSE ",\"future\":{\"x\":[1,2]}}", &m, NULL), PROTO_OK);
    cr_assert_str_eq(m.name, "cache-a");
    cr_assert_eq(m.m.port, 8080);
    cr_assert_eq(m.m.cgroup, false);
}

Test(proto, rejects_oversize)
{
    char buf[PROTO_MAX_DGRAM + 10];
    struct proto_msg m;

    memset(buf, 'a', sizeof(buf));
    cr_assert_eq(proto_decode(buf, PROTO_MAX_DGRAM + 1, &ring, &m, NULL), PROTO_E_OVERSIZE);
}

Test(proto, rejects_missing_mac)
{
    const char *j = RESPONSE "}";
    struct proto_msg m;

    cr_assert_eq(proto_decode(j, strlen(j), &ring, &m, NULL), PROTO_E_NOMAC);
    cr_assert_eq(proto_decode("", 0, &ring, &m, NULL), PROTO_E_NOMAC);
}

Test(proto, rejects_truncated_datagram)
{
    char buf[2048];
    size_t n = sign_with(ring.k[0], RESPONSE "}", buf, sizeof(buf));
    struct proto_msg m;

    /* Cut anywhere: the tag no longer sits after a '\n' or no longer verifies. */
    for (size_t cut = 1; cut < n; cut += 7) {
        enum proto_err e = proto_decode(buf, n - cut, &ring, &m, NULL);

        cr_assert(e == PROTO_E_NOMAC || e == PROTO_E_BADMAC, "cut %zu gave %s", cut,
                  proto_err_name(e));
    }
}

Test(proto, rejects_mac_of_another_key)
{
    uint8_t other[32];
    char buf[2048];
    struct proto_msg m;
    size_t n;

    memset(other, 0x43, sizeof(other));
    n = sign_with(other, RESPONSE "}", buf, sizeof(buf));
    cr_assert_eq(proto_decode(buf, n, &ring, &m, NULL), PROTO_E_BADMAC);
}

Test(proto, rejects_tampered_body)
{
    char buf[2048];
    struct proto_msg m;
    size_t n = sign_with(ring.k[0], RESPONSE "}", buf, sizeof(buf));
    char *p = strstr(buf, "55.5");

    p[0] = '9'; /* claim more idle CPU */
    cr_assert_eq(proto_decode(buf, n, &ring, &m, NULL), PROTO_E_BADMAC);
}

Test(proto, rejects_non_hex_mac)
{
    char buf[2048];
    struct proto_msg m;
    size_t n = sign_with(ring.k[0], RESPONSE "}", buf, sizeof(buf));

    buf[n - 1] = 'z';
    cr_assert_eq(proto_decode(buf, n, &ring, &m, NULL), PROTO_E_BADMAC);
}

Test(proto, accepts_second_key_of_ring)
{
    struct key_ring two = ring;
    char buf[2048];
    struct proto_msg m;
    size_t n;

    two.n = 2;
    memset(two.k[1], 0x77, 32);
    n = sign_with(two.k[1], RESPONSE "}", buf, sizeof(buf));
    cr_assert_eq(proto_decode(buf, n, &two, &m, NULL), PROTO_OK);
    cr_assert_eq(proto_decode(buf, n, &ring, &m, NULL), PROTO_E_BADMAC);
}

Test(proto, rejects_malformed_json)
{
    expect_err("{\"v\":1,", PROTO_E_JSON, "json");
}
Test(proto, rejects_trailing_garbage)
{
    expect_err(RESPONSE "} x", PROTO_E_JSON, "json");
}
Test(proto, rejects_non_object)
{
    expect_err("[1,2,3]", PROTO_E_JSON, "json");
}

Test(proto, rejects_embedded_nul)
{
    char json[512], buf[2048];
    struct proto_msg m;
    size_t jl, n;
    unsigned char tag[32];

    jl = (size_t)snprintf(json, sizeof(json), "%s}", RESPONSE);
    json[jl] = '\0';
    memcpy(json + jl + 1, "xx", 2); /* {...}\0xx, signed as a whole */
    jl += 3;
    memcpy(buf, json, jl);
    buf[jl] = '\n';
    crypto_auth_hmacsha256(tag, (unsigned char *)json, jl, ring.k[0]);
    sodium_bin2hex(buf + jl + 1, 65, tag, 32);
    n = jl + 65;
    cr_assert_eq(proto_decode(buf, n, &ring, &m, NULL), PROTO_E_JSON);
}

Test(proto, rejects_missing_version)
{
    expect_err("{\"type\":\"bye\",\"seq\":1,\"ts\":1,\"nonce\":\"" NONCE "\"}", PROTO_E_VERSION,
               "v");
}

Test(proto, rejects_wrong_version)
{
    expect_err("{\"v\":2,\"type\":\"bye\"}", PROTO_E_VERSION, "v");
}

Test(proto, rejects_missing_type)
{
    expect_err("{\"v\":1,\"seq\":1}", PROTO_E_TYPE, "type");
}

Test(proto, rejects_unknown_type)
{
    expect_err("{\"v\":1,\"type\":\"probe_reqest\",\"seq\":1}", PROTO_E_TYPE, "type");
}

Test(proto, rejects_type_of_wrong_json_type)
{
    expect_err("{\"v\":1,\"type\":3,\"seq\":1}", PROTO_E_TYPE, "type");
}

Test(proto, rejects_seq_as_string)
{
    expect_err("{\"v\":1,\"type\":\"probe_request\",\"seq\":\"7\",\"ts\":1,\"nonce\":\"" NONCE
               "\"}",
               PROTO_E_FIELD, "seq");
}

Test(proto, rejects_negative_seq)
{
    expect_err("{\"v\":1,\"type\":\"probe_request\",\"seq\":-1,\"ts\":1,\"nonce\":\"" NONCE "\"}",
               PROTO_E_RANGE, "seq");
}

Test(proto, rejects_fractional_seq)
{
    expect_err("{\"v\":1,\"type\":\"probe_request\",\"seq\":1.5,\"ts\":1,\"nonce\":\"" NONCE "\"}",
               PROTO_E_RANGE, "seq");
}

Test(proto, rejects_huge_seq)
{
    expect_err("{\"v\":1,\"type\":\"probe_request\",\"seq\":1e300,\"ts\":1,\"nonce\":\"" NONCE
               "\"}",
               PROTO_E_RANGE, "seq");
}

Test(proto, rejects_infinite_number)
{
    /* cJSON reads 1e999 as inf: it must not pass as a number. */
    expect_err(HDR("probe_response") ID ",\"hold_ms\":1e999" METRICS "}", PROTO_E_RANGE, "hold_ms");
}

Test(proto, rejects_missing_nonce)
{
    expect_err("{\"v\":1,\"type\":\"probe_request\",\"seq\":1,\"ts\":1}", PROTO_E_FIELD, "nonce");
}

Test(proto, rejects_bad_nonce)
{
    expect_err("{\"v\":1,\"type\":\"probe_request\",\"seq\":1,\"ts\":1,\"nonce\":\"0123\"}",
               PROTO_E_RANGE, "nonce");
    expect_err("{\"v\":1,\"type\":\"probe_request\",\"seq\":1,\"ts\":1,\"nonce\":"
               "\"0123456789ABCDEF0123456789abcdef\"}",
               PROTO_E_RANGE, "nonce");
}

Test(proto, rejects_bad_name)
{
    expect_err(HDR("bye") ",\"name\":\"a b\",\"boot\":\"" BOOT "\"}", PROTO_E_RANGE, "name");
    expect_err(HDR("bye") ",\"name\":\"\",\"boot\":\"" BOOT "\"}", PROTO_E_RANGE, "name");
    expect_err(
        HDR("bye") ",\"name\":"
                   "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                   "\"boot\":\"" BOOT "\"}",
        PROTO_E_RANGE, "name");
}

Test(proto, rejects_missing_boot)
{
    expect_err(HDR("bye") ",\"name\":\"a\"}", PROTO_E_FIELD, "boot");
}

Test(proto, rejects_missing_metric)
{
    expect_err(HDR("hello") ID ",\"ip\":\"127.0.0.1\",\"port\":80}", PROTO_E_FIELD, "ram_total");
}

Test(proto, rejects_cpu_idle_out_of_range)
{
    expect_err(HDR("hello") ID ",\"ip\":\"127.0.0.1\",\"port\":8080,\"ram_free\":1,"
                               "\"ram_total\":4,\"cpu_idle\":100.5,\"load1\":0,\"uptime\":1,"
                               "\"service\":\"up\"}",
               PROTO_E_RANGE, "cpu_idle");
}

Test(proto, rejects_more_free_than_total)
{
    expect_err(HDR("hello") ID ",\"ip\":\"127.0.0.1\",\"port\":8080,\"ram_free\":5,"
                               "\"ram_total\":4,\"cpu_idle\":1,\"load1\":0,\"uptime\":1,"
                               "\"service\":\"up\"}",
               PROTO_E_RANGE, "ram_free");
}

Test(proto, rejects_bad_port)
{
    expect_err(HDR("hello") ID ",\"ip\":\"127.0.0.1\",\"port\":0}", PROTO_E_RANGE, "port");
    expect_err(HDR("hello") ID ",\"ip\":\"127.0.0.1\",\"port\":65536}", PROTO_E_RANGE, "port");
}

Test(proto, rejects_bad_ip)
{
    expect_err(HDR("hello") ID ",\"ip\":\"127.0.0.256\",\"port\":80}", PROTO_E_RANGE, "ip");
    expect_err(HDR("hello") ID ",\"ip\":\"127.0.0.1.1.1.1.1.1\",\"port\":80}", PROTO_E_RANGE, "ip");
}

Test(proto, rejects_bad_service)
{
    expect_err(HDR("hello") ID ",\"ip\":\"127.0.0.1\",\"port\":8080,\"ram_free\":1,"
                               "\"ram_total\":4,\"cpu_idle\":1,\"load1\":0,\"uptime\":1,"
                               "\"service\":\"maybe\"}",
               PROTO_E_RANGE, "service");
}

Test(proto, rejects_cgroup_of_wrong_type)
{
    expect_err(RESPONSE ",\"cgroup\":\"yes\"}", PROTO_E_FIELD, "cgroup");
}

/* cpu_milli is optional: an old agent does not send it (0, unknown); an
 * unknown capacity is left out on the wire rather than sent as 0. */
Test(proto, cpu_milli_is_optional)
{
    struct proto_msg in = sample_msg(PROTO_PROBE_RESPONSE), out;
    char buf[PROTO_MAX_DGRAM + 1];
    int n;

    cr_assert_eq(decode_json(RESPONSE "}", &out, NULL), PROTO_OK);
    cr_assert_eq(out.m.cpu_milli, 0);
    cr_assert_eq(decode_json(RESPONSE ",\"cpu_milli\":200}", &out, NULL), PROTO_OK);
    cr_assert_eq(out.m.cpu_milli, 200);
    cr_assert_eq(decode_json(RESPONSE ",\"cpu_milli\":16777216}", &out, NULL), PROTO_OK);
    cr_assert_eq(out.m.cpu_milli, 16777216);
    cr_assert_eq(decode_json(RESPONSE ",\"cpu_milli\":1e3}", &out, NULL), PROTO_OK);
    cr_assert_eq(out.m.cpu_milli, 1000);
    in.m.cpu_milli = 0;
    n = proto_encode(&in, &ring, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_null(strstr(buf, "cpu_milli"));
    cr_assert_eq(proto_decode(buf, (size_t)n, &ring, &out, NULL), PROTO_OK);
    cr_assert_eq(out.m.cpu_milli, 0);
}

Test(proto, rejects_bad_cpu_milli)
{
    expect_err(RESPONSE ",\"cpu_milli\":0}", PROTO_E_RANGE, "cpu_milli");
    expect_err(RESPONSE ",\"cpu_milli\":-1000}", PROTO_E_RANGE, "cpu_milli");
    expect_err(RESPONSE ",\"cpu_milli\":2.5}", PROTO_E_RANGE, "cpu_milli");
    expect_err(RESPONSE ",\"cpu_milli\":16777217}", PROTO_E_RANGE, "cpu_milli");
    expect_err(RESPONSE ",\"cpu_milli\":1e999}", PROTO_E_RANGE, "cpu_milli");
    expect_err(RESPONSE ",\"cpu_milli\":\"2000\"}", PROTO_E_FIELD, "cpu_milli");
    expect_err(RESPONSE ",\"cpu_milli\":null}", PROTO_E_FIELD, "cpu_milli");
    expect_err(RESPONSE ",\"cpu_milli\":true}", PROTO_E_FIELD, "cpu_milli");
}

Test(proto, rejects_negative_hold)
{
    expect_err(HDR("probe_response") ID ",\"hold_ms\":-1" METRICS "}", PROTO_E_RANGE, "hold_ms");
}

Test(proto, nonces_are_fresh_and_hex)
{
    char a[PROTO_NONCE_HEX + 1], b[PROTO_NONCE_HEX + 1];

    proto_nonce_new(a);
    proto_nonce_new(b);
    cr_assert_eq(strlen(a), PROTO_NONCE_HEX);
    cr_assert_eq(strspn(a, "0123456789abcdef"), PROTO_NONCE_HEX);
    cr_assert_str_neq(a, b);
}

/* Found by fuzz_proto (fuzz/corpus/fuzz_proto/regress-seq-above-1e15):
 * cJSON prints a number with 15 significant digits whenever that reads back
 * within its relative epsilon, so integers above 10^15 moved by a few units
 * on the wire: a ts or seq of 2^53 - 1 (PROTO_MAX_SEQ, documented as exact)
 * arrived as ...990, and RAM sizes near PROTO_MAX_BYTES changed too. */
Test(proto, integers_up_to_2_pow_53_are_exact_on_the_wire)
{
    static const uint64_t big[] = {PROTO_MAX_SEQ, PROTO_MAX_SEQ - 1, 1000000000000001ULL,
                                   1234567890123457ULL};
    char buf[PROTO_MAX_DGRAM + 1];
    struct proto_msg in = sample_msg(PROTO_HELLO), out;

    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        int n;

        in.seq = big[i];
        in.ts_ms = big[sizeof(big) / sizeof(big[0]) - 1 - i];
        in.m.ram_total = PROTO_MAX_BYTES - 1;
        in.m.ram_free = PROTO_MAX_BYTES - 3;
        n = proto_encode(&in, &ring, buf, sizeof(buf));
        cr_assert_gt(n, 0);
        cr_assert_eq(proto_decode(buf, (size_t)n, &ring, &out, NULL), PROTO_OK);
        cr_assert_eq(out.seq, in.seq, "seq %llu arrived as %llu", (unsigned long long)in.seq,
                     (unsigned long long)out.seq);
        cr_assert_eq(out.ts_ms, in.ts_ms);
        cr_assert_eq(out.m.ram_total, in.m.ram_total);
        cr_assert_eq(out.m.ram_free, in.m.ram_free);
    }
}
