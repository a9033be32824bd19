/* httpdate.h - parsing of HTTP-dates (RFC 9110 §5.6.7) into seconds since
 * the epoch: the IMF-fixdate form senders must use and the two obsolete
 * forms (RFC 850, asctime) recipients must still accept.
 *
 * No I/O, no allocation, no clock (the caller passes `now`). Reentrant; may
 * be called from any thread. The input is bounded by its length; no NUL
 * terminator is needed or trusted.
 */
#ifndef FULCRUM_CACHE_HTTPDATE_H
#define FULCRUM_CACHE_HTTPDATE_H

#include <stddef.h>
#include <stdint.h>

/* Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT"), and the obsolete RFC 850
 * ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37 1994")
 * forms. Surrounding OWS is ignored; anything else must match the grammar
 * exactly (names and "GMT" are case-sensitive), the day must exist in its
 * month (leap years counted), hour <= 23, minute <= 59, second <= 60. The
 * day-name is checked against the grammar, not against the date.
 * A two-digit RFC 850 year is placed in the 100-year window ending 50 years
 * after `now`'s year (§5.6.7: a date more than 50 years in the future means
 * the past century); `now` is only used for that.
 * s may be NULL (-EINVAL). Returns 0 and *out_epoch, or -EINVAL (*out_epoch
 * untouched). */
int httpdate_parse(const char *s, size_t n, int64_t now, int64_t *out_epoch);

#endif
