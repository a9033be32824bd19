/* proto-t.h - types of the UDP control protocol shared by agent and monitor.
 *
 * Only types and limits live here (HAProxy's "-t.h" rule): no prototypes,
 * no includes beyond other type headers and the C library.
 */
#ifndef FULCRUM_PROTO_T_H
#define FULCRUM_PROTO_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION       1
#define PROTO_MAX_DGRAM     1400 /* whole datagram, JSON + '\n' + MAC */
#define PROTO_MAC_HEX       64   /* HMAC-SHA256 tag as lowercase hex */
#define PROTO_NONCE_BYTES   16
#define PROTO_NONCE_HEX     (PROTO_NONCE_BYTES * 2)
#define PROTO_NAME_MAX      63 /* [A-Za-z0-9._-]{1,63} */
#define PROTO_KEY_BYTES     32
#define PROTO_MAX_SEQ       9007199254740991ULL /* 2^53 - 1: exact in a JSON double */
#define PROTO_MAX_BYTES     1125899906842624.0  /* 2^50: 1 PiB of RAM is plenty */
#define PROTO_MAX_LOAD      100000.0
#define PROTO_MAX_UPTIME    3153600000.0 /* 100 years in seconds */
#define PROTO_MAX_HOLD_MS   60000.0
#define PROTO_MAX_CPU_MILLI 16777216.0 /* 16384 CPUs in milli-CPUs, exact in any double */

enum proto_type {
    PROTO_PROBE_REQUEST = 0, /* monitor -> group (or unicast): "report now" */
    PROTO_PROBE_RESPONSE,    /* agent -> prober, unicast: metrics, echoes seq+nonce */
    PROTO_HELLO,             /* agent -> group at start: metrics, join now */
    PROTO_BYE,               /* agent -> group at stop: leave now */
    PROTO_TYPE_MAX
};

/* What an agent reports about its host and its cache node. */
struct proto_metrics {
    char ip[16];        /* dotted IPv4 of the cache node */
    uint16_t port;      /* TCP port of the cache node, 1..65535 */
    double ram_free;    /* bytes, 0..ram_total */
    double ram_total;   /* bytes, > 0 */
    double cpu_idle;    /* percent, 0..100 */
    double load1;       /* 1-minute load average, >= 0 */
    double uptime;      /* seconds the agent has run */
    bool service_up;    /* a TCP connect to ip:port succeeded */
    bool cgroup;        /* cpu/ram are against cgroup limits, not the host */
    uint32_t cpu_milli; /* CPUs the node may use, x1000 (its cgroup quota, else
                         * the online CPUs); 0 = unknown (an agent too old to
                         * send it): the monitor then assumes the median */
};

/* One decoded, verified message. Which fields are meaningful depends on type:
 *   all:            version, type, seq, ts_ms
 *   probe_request:  nonce (fresh random), seq (the monitor's round counter)
 *   probe_response: nonce + seq echoed from the request, name, boot, metrics
 *   hello:          name, boot, metrics (nonce: random, unused)
 *   bye:            name, boot
 * seq of hello/bye/response is the agent's own message counter when the type
 * is hello/bye (strictly increasing per boot), the echoed request seq for a
 * response.
 */
struct proto_msg {
    int version;
    enum proto_type type;
    uint64_t seq;
    uint64_t ts_ms; /* sender's wall clock, ms since epoch */
    char nonce[PROTO_NONCE_HEX + 1];
    char name[PROTO_NAME_MAX + 1];
    char boot[PROTO_NONCE_HEX + 1]; /* random id of this agent process */
    double hold_ms;                 /* response: how long the agent held it
                                     * (its jitter), so RTT excludes it */
    struct proto_metrics m;
};

/* Why a datagram was dropped. Every reason has a counter. */
enum proto_err {
    PROTO_OK = 0,
    PROTO_E_OVERSIZE, /* longer than PROTO_MAX_DGRAM */
    PROTO_E_NOMAC,    /* no '\n' + 64 hex tag at the end */
    PROTO_E_BADMAC,   /* tag does not verify under the cluster key */
    PROTO_E_JSON,     /* not one strict JSON object */
    PROTO_E_VERSION,  /* missing or unsupported "v" */
    PROTO_E_TYPE,     /* missing or unknown "type" */
    PROTO_E_FIELD,    /* a required field missing or of the wrong JSON type */
    PROTO_E_RANGE,    /* a number not finite or out of range, a bad string */
    PROTO_E_MAX
};

#endif
