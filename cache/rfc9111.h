/* rfc9111.h - the HTTP caching rules of RFC 9111 for a shared cache, as pure
 * functions over already-parsed header fields: what may be stored, for how
 * long it is fresh, how old it is, whether it may be served (fresh, stale,
 * or only after revalidation), the Vary secondary key, conditional requests
 * and invalidation.
 *
 * No I/O, no allocation, no clock: every time is passed in, as seconds since
 * the epoch. All functions are reentrant and may be called from any thread.
 * Every input is bounded by the lengths given; nothing here trusts a NUL
 * terminator in a header value. The rules, their RFC sections and the
 * choices made where the RFC leaves room are in docs/cache-rules.md.
 *
 * Three parts live in their own files: Cache-Control parsing in
 * cachecontrol.c and the Vary secondary key in vary.c (declared in
 * cachecontrol.h and vary.h, both included here, so this header still
 * declares the whole c9_ API), and HTTP-date parsing in httpdate.c
 * (httpdate.h), which c9_parse_http_date() wraps.
 */
#ifndef FULCRUM_CACHE_RFC9111_H
#define FULCRUM_CACHE_RFC9111_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cachecontrol.h"
#include "vary.h"

/* RFC 9111 §1.2.2: a delta-seconds value (or a calculation) larger than this
 * is taken as this. Every lifetime and age returned here is in [0, this]. */
#define C9_DELTA_MAX ((int64_t)2147483648LL)
/* A delta-seconds directive that is absent. */
#define C9_ABSENT ((int64_t)-1)
/* "No such time" (no Last-Modified, ...): never a plausible date. */
#define C9_NO_TIME INT64_MIN

/* One header field line as a parser saw it. Neither string needs a NUL;
 * the caller owns both and keeps them alive for the duration of a call. */
struct c9_hdr {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* ---- header lookups ------------------------------------------------------
 * Names compare ASCII case-insensitively (RFC 9110 §5.1). `name` is a
 * NUL-terminated literal chosen by the caller; `h` may be NULL when n == 0. */

/* The first line named `name`, or NULL. */
const struct c9_hdr *c9_hdr_get(const struct c9_hdr *h, size_t n, const char *name);

/* How many lines are named `name`. */
size_t c9_hdr_count(const struct c9_hdr *h, size_t n, const char *name);

/* Iterator over the members of a list-based field (RFC 9110 §5.6.1) across
 * all its lines, in order (§5.3: repeated lines combine as one list). Commas
 * inside quoted strings do not split; members are trimmed of OWS; empty
 * members are skipped. An unterminated quoted string ends at its line's end.
 * Embedded on the caller's stack; no cleanup. */
struct c9_list {
    const struct c9_hdr *h;
    size_t n;
    const char *name;
    size_t name_len;
    size_t i;   /* current line */
    size_t pos; /* offset in the current line's value */
};

void c9_list_init(struct c9_list *it, const struct c9_hdr *h, size_t n, const char *name);

/* Next member: true and (*elem, *len) pointing into the caller's header
 * value, or false when the list is exhausted. */
bool c9_list_next(struct c9_list *it, const char **elem, size_t *len);

/* Whether ch is a tchar, a character of a token (RFC 9110 §5.6.2). */
bool c9_is_tchar(char ch);

/* ---- dates ---------------------------------------------------------------- */

/* Parses an HTTP-date (RFC 9110 §5.6.7); exactly httpdate_parse(), whose
 * contract is in httpdate.h. Kept under the c9_ name that the tests and
 * docs/cache-rules.md use. */
int c9_parse_http_date(const char *s, size_t n, int64_t now, int64_t *out_epoch);

/* ---- Cache-Control --------------------------------------------------------
 * struct c9_cc, c9_parse_cc() and c9_parse_delta() are in cachecontrol.h,
 * included above. */

/* ---- storing (RFC 9111 §3) ----------------------------------------------- */

/* Why a response may or may not be stored, in the order checked. The
 * permissions (public and s-maxage; for Authorization also must-revalidate)
 * only count when well-formed. */
enum c9_store_verdict {
    C9_STORE_OK,      /* store it */
    C9_METHOD,        /* not GET (HEAD is answered from GET entries) */
    C9_STATUS,        /* not a final status we understand (206, 304, 1xx, unknown) */
    C9_REQ_NO_STORE,  /* request Cache-Control: no-store (§5.2.1.5) */
    C9_NO_STORE,      /* response no-store without must-understand (§5.2.2.5) */
    C9_PRIVATE,       /* private, qualified or not (§5.2.2.7) */
    C9_AUTHORIZATION, /* request Authorization, response allows no sharing (§3.5) */
    C9_VARY_STAR,     /* Vary: * (§4.1) */
    C9_VARY_INVALID,  /* Vary member that is not a field name */
    C9_VARY_LIMIT,    /* Vary lists more than C9_VARY_MAX_FIELDS names */
    C9_SET_COOKIE,    /* Set-Cookie without public or s-maxage (our choice) */
    C9_NOT_CACHEABLE, /* no explicit freshness, not public, status not
                         heuristically cacheable (§3, RFC 9110 §15.1) */
    C9_STORE_VERDICT_MAX
};

/* The RFC 9111 §3 decision for a shared cache. method is the request
 * method (case-sensitive, NUL-terminated; NULL counts as unknown), status
 * the final response status. When heuristic_ok is not NULL it is set to
 * whether a heuristic lifetime may be used (§4.2.2: verdict OK, no explicit
 * expiration, and a heuristically cacheable status or public). */
enum c9_store_verdict c9_storable(const char *method, int status, const struct c9_hdr *req,
                                  size_t nreq, const struct c9_hdr *resp, size_t nresp,
                                  bool *heuristic_ok);

/* A static name for logs and counters ("ok", "no-store", ...); "unknown"
 * for a value out of range. */
const char *c9_verdict_name(enum c9_store_verdict v);

/* ---- freshness (RFC 9111 §4.2.1, §4.2.2) --------------------------------- */

/* The Date of a response: the single valid Date line, else response_time
 * (RFC 9110 §6.6.1: a recipient supplies a missing Date from its own clock;
 * a repeated or invalid Date is treated as missing). */
int64_t c9_date_value(const struct c9_hdr *resp, size_t n, int64_t response_time);

/* The Age of a response (§5.1): the first member of the first Age line as
 * delta-seconds, 0 when absent or invalid. In [0, C9_DELTA_MAX]. */
int64_t c9_age_value(const struct c9_hdr *resp, size_t n);

/* Freshness lifetime in seconds for a shared cache: s-maxage, else max-age,
 * else Expires - Date (Date from c9_date_value; a repeated or invalid
 * Expires means already stale: 0), else default_ttl when heuristic_ok
 * (from c9_storable), else 0. In [0, C9_DELTA_MAX]. */
int64_t c9_freshness_lifetime(const struct c9_hdr *resp, size_t n, int64_t response_time,
                              int64_t default_ttl, bool heuristic_ok);

/* ---- age (RFC 9111 §4.2.3) ------------------------------------------------
 * date_value: the response's Date (c9_date_value); age_value: its Age
 * (c9_age_value); request_time / response_time: our clock when the request
 * went out and the response came in; now: our clock. Negative differences
 * (clock skew, a Date in the future, misordered times) are clamped to 0 and
 * every sum saturates at C9_DELTA_MAX: no overflow for any int64 input. */

/* corrected_initial_age = max(apparent_age, corrected_age_value), where
 * apparent_age = max(0, response_time - date_value) and corrected_age_value
 * = age_value + max(0, response_time - request_time). This is the "age
 * basis": the age the response had at response_time. */
int64_t c9_age_basis(int64_t date_value, int64_t age_value, int64_t request_time,
                     int64_t response_time);

/* basis + max(0, now - basis_time). For replication: the sender ships
 * c9_current_age(..., send_time) as the basis, and the replica computes its
 * own age as c9_age_from_basis(basis, its receive time, its now), so only
 * intervals measured on one clock are ever subtracted (no cross-node skew);
 * the transfer time is not counted (under a second on a LAN). */
int64_t c9_age_from_basis(int64_t basis, int64_t basis_time, int64_t now);

/* current_age = corrected_initial_age + resident_time (now - response_time). */
int64_t c9_current_age(int64_t date_value, int64_t age_value, int64_t request_time,
                       int64_t response_time, int64_t now);

/* ---- serving (RFC 9111 §4, §4.2.4, RFC 5861) ----------------------------- */

enum c9_serve {
    C9_SERVE_FRESH,                  /* serve the stored response as is */
    C9_SERVE_STALE_WHILE_REVALIDATE, /* serve it stale, revalidate in background */
    C9_SERVE_STALE_IF_ERROR,         /* origin failed: serve it stale */
    C9_SERVE_MUST_REVALIDATE,        /* ask the origin (conditionally) before serving */
    C9_SERVE_MISS,                   /* it may not be used for this request */
    C9_SERVE_MAX
};

/* May the stored response (resp_cc, freshness `lifetime`, current `age`)
 * answer a request with req_cc? Either cc may be NULL (no directives).
 * With origin_error false (the lookup): FRESH, STALE_WHILE_REVALIDATE or
 * MUST_REVALIDATE; MISS only for only-if-cached when the origin would have
 * to be asked (the caller answers 504, §5.2.1.7).
 * With origin_error true (the origin could not be reached or answered 5xx
 * while we revalidated): STALE_IF_ERROR, or MISS (the caller passes the
 * error on); FRESH only if nothing required asking the origin at all.
 * Stale serving is refused by response no-cache, must-revalidate,
 * proxy-revalidate and s-maxage (§4.2.4) and by request no-cache; a request
 * max-age=0, a request max-age below the age, or an unmet min-fresh asks for
 * revalidation; max-stale is parsed but never used to serve stale. */
enum c9_serve c9_can_serve(const struct c9_cc *req_cc, const struct c9_cc *resp_cc,
                           int64_t lifetime, int64_t age, bool origin_error);

/* A static name for logs ("fresh", "stale-while-revalidate", ...). */
const char *c9_serve_name(enum c9_serve s);

/* ---- conditional requests (RFC 9110 §13, RFC 9111 §4.3.2) ---------------- */

/* Should a GET or HEAD request be answered 304 from a stored response whose
 * ETag field value is `etag` (NULL: none) and whose Last-Modified is
 * last_modified (C9_NO_TIME: none; callers pass the stored Date instead,
 * §4.3.2)? If-None-Match, when present, decides alone (RFC 9110 §13.2.2):
 * "*" matches any stored response, otherwise a weak comparison of the entity
 * tags in its list (§8.8.3.2). Else If-Modified-Since: one valid HTTP-date
 * not later than `now`, and last_modified <= it; a repeated, invalid or
 * future If-Modified-Since is ignored (false). */
bool c9_not_modified(const struct c9_hdr *req, size_t nreq, const char *etag, int64_t last_modified,
                     int64_t now);

/* ---- invalidation (RFC 9111 §4.4) ---------------------------------------- */

/* True when a response `status` to `method` must invalidate the stored
 * responses for the target URI: the method is not a known safe one
 * (GET, HEAD, OPTIONS, TRACE; case-sensitive, NULL counts as unknown) and
 * the status is not an error (2xx or 3xx). */
bool c9_method_invalidates(const char *method, int status);

#endif
