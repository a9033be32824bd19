/* vary.h - the Vary field of a stored response (RFC 9111 §4.1, RFC 9110
 * §12.5.5): whether it can key variants at all, the secondary key of a
 * request under it, and the normalized list of names a store keeps.
 *
 * Part of the RFC 9111 module: the names keep its c9_ prefix, and
 * rfc9111.h includes this header, so its users see one API. struct c9_hdr
 * is in rfc9111.h. No I/O, no allocation; reentrant, any thread. Header
 * values are read by (pointer, length), never past a length.
 */
#ifndef FULCRUM_CACHE_VARY_H
#define FULCRUM_CACHE_VARY_H

#include <stddef.h>

struct c9_hdr;

/* Most distinct field names a Vary may list before we refuse to key it. */
#define C9_VARY_MAX_FIELDS 32

/* What a response's Vary allows, in the order checked while reading it. */
enum c9_vary_form {
    C9_VARY_KEYABLE,  /* absent, empty, or field names: variants can be keyed */
    C9_VARY_IS_STAR,  /* a "*" member: never matches (§4.1) */
    C9_VARY_BAD_NAME, /* a member that is not a token */
    C9_VARY_TOO_MANY, /* more than C9_VARY_MAX_FIELDS distinct names */
    C9_VARY_FORM_MAX
};

/* Reads every Vary line of resp[0..nresp) (c9_storable's check). */
enum c9_vary_form c9_vary_form(const struct c9_hdr *resp, size_t nresp);

/* Writes into out[0..cap) the NUL-terminated secondary key of `req` under
 * the response's Vary: for each listed field name, lowercased, deduplicated
 * and sorted, "name:value\n" when the request has the field and "name\n"
 * when it does not (absent only matches absent). The value is the request's
 * lines combined as one list: members trimmed, joined by ",", runs of
 * whitespace outside quoted strings folded to one space, control bytes
 * escaped as %XX (and '%' as %25), so the key is unambiguous. No Vary or an
 * empty Vary gives "". Returns the key length (>= 0); -EINVAL for Vary: *
 * or a member that is not a token (never matches: do not store);
 * -E2BIG when the key needs more than cap bytes or Vary lists more than
 * C9_VARY_MAX_FIELDS names. out is always NUL-terminated when cap > 0. */
int c9_vary_key(const struct c9_hdr *resp, size_t nresp, const struct c9_hdr *req, size_t nreq,
                char *out, size_t cap);

/* Writes into out[0..cap) the response's Vary field names, lowercased,
 * deduplicated, sorted and joined by "," ("accept-encoding,user-agent"; ""
 * without Vary): what a store keeps with a variant. A header
 * {"Vary", that string} given back to c9_vary_key keys a later request
 * exactly as the original response would. Returns the length, or -EINVAL /
 * -E2BIG as c9_vary_key does. out is always NUL-terminated when cap > 0. */
int c9_vary_names(const struct c9_hdr *resp, size_t nresp, char *out, size_t cap);

#endif
