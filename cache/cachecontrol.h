/* cachecontrol.h - the Cache-Control field of a request or a response
 * (RFC 9111 §5.2, RFC 5861) parsed into struct c9_cc, and the delta-seconds
 * numbers (§1.2.2) its arguments and the Age field are written in.
 *
 * Part of the RFC 9111 module: the names keep its c9_ prefix, and
 * rfc9111.h includes this header, so its users see one API. The header
 * types (struct c9_hdr) and the constants C9_ABSENT and C9_DELTA_MAX are in
 * rfc9111.h. No I/O, no allocation; reentrant, any thread.
 */
#ifndef FULCRUM_CACHE_CACHECONTROL_H
#define FULCRUM_CACHE_CACHECONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct c9_hdr;

/* Bits of c9_cc.malformed: directives seen more than once or with a value
 * that is not what their grammar asks for. */
enum c9_cc_bit {
    C9_CC_MAX_AGE = 1u << 0,
    C9_CC_S_MAXAGE = 1u << 1,
    C9_CC_SWR = 1u << 2,
    C9_CC_SIE = 1u << 3,
    C9_CC_MAX_STALE = 1u << 4,
    C9_CC_MIN_FRESH = 1u << 5,
    C9_CC_PUBLIC = 1u << 6,
    C9_CC_FLAG = 1u << 7,            /* a restrictive flag carried an argument */
    C9_CC_MUST_REVALIDATE = 1u << 8, /* ... and it was must-revalidate */
};

/* Cache-Control of a request or a response (RFC 9111 §5.2, RFC 5861).
 * Delta-seconds fields are C9_ABSENT or in [0, C9_DELTA_MAX].
 *
 * The RFC says a duplicated or invalid directive makes the field invalid
 * (§4.2.1, §5.2); we take the most conservative reading, the one that
 * reuses least: a delta directive that is repeated or malformed gets the
 * value 0 (min-fresh: C9_DELTA_MAX), and its bit is set in `malformed`.
 * Restrictive flags (no-store, no-cache, private, must-revalidate,
 * proxy-revalidate, only-if-cached, must-understand) count even when they
 * carry an unexpected argument; `public` counts only bare. Unknown
 * directives and unparsable members are ignored. */
struct c9_cc {
    bool no_store;
    bool no_cache;   /* bare or with a field list: both mean "revalidate" */
    bool is_private; /* bare or with a field list: both mean "not shared" */
    bool is_public;
    bool must_revalidate;
    bool proxy_revalidate;
    bool no_transform;
    bool must_understand;
    bool only_if_cached;            /* request */
    int64_t max_age;                /* request or response */
    int64_t s_maxage;               /* response */
    int64_t stale_while_revalidate; /* response (RFC 5861 §3) */
    int64_t stale_if_error;         /* request or response (RFC 5861 §4) */
    int64_t max_stale;              /* request; no value = C9_DELTA_MAX (any) */
    int64_t min_fresh;              /* request */
    unsigned malformed;             /* enum c9_cc_bit */
};

/* Fills *out from every Cache-Control line in h[0..n). When there is no
 * Cache-Control line at all, `Pragma: no-cache` counts as no-cache
 * (RFC 9111 §5.4, for HTTP/1.0 peers). Never fails. */
void c9_parse_cc(const struct c9_hdr *h, size_t n, struct c9_cc *out);

/* delta-seconds = 1*DIGIT (RFC 9111 §1.2.2) in (s, n), saturating at
 * C9_DELTA_MAX. With `quoted` (the inside of a quoted-string, quotes
 * removed) a quoted-pair stands for its second character. Returns 0 and
 * *out, or -EINVAL for an empty or non-digit input (*out untouched). */
int c9_parse_delta(const char *s, size_t n, bool quoted, int64_t *out);

#endif
