/* proto.h - encode, sign, verify and decode the UDP control messages.
 *
 * A datagram is a JSON object, a '\n', and the 64 lowercase hex digits of
 * HMAC-SHA256(key, json) (docs/protocol.md). The tag is checked before the
 * JSON is parsed, so nobody without the key reaches the parser. Freshness
 * (nonces, sequence numbers, the timestamp window) is the receiver's
 * business: it knows what it asked for.
 *
 * Thread: all functions are reentrant.
 */
#ifndef FULCRUM_PROTO_H
#define FULCRUM_PROTO_H

#include <stddef.h>

#include "key.h"
#include "proto-t.h"

/* Encodes msg (msg->version is ignored: PROTO_VERSION is written) and signs
 * it with the ring's first key into buf. Returns the datagram length, or
 * -EMSGSIZE when it would exceed PROTO_MAX_DGRAM or len, -EINVAL for a
 * message that would not decode (bad name, seq above PROTO_MAX_SEQ...). */
int proto_encode(const struct proto_msg *msg, const struct key_ring *kr, char *buf, size_t len);

/* Verifies and decodes one datagram of n bytes. On PROTO_OK *out is filled;
 * otherwise *field (if not NULL) names the offending field or check, for
 * the log line. Never reads past buf + n. */
enum proto_err proto_decode(const char *buf, size_t n, const struct key_ring *kr,
                            struct proto_msg *out, const char **field);

const char *proto_err_name(enum proto_err e);
const char *proto_type_name(enum proto_type t);

/* A fresh random nonce (libsodium randombytes), as PROTO_NONCE_HEX hex
 * digits plus NUL. */
void proto_nonce_new(char out[PROTO_NONCE_HEX + 1]);

/* True when a message stamped ts_ms (sender's wall clock) is within
 * skew_ms of now_ms either way: the replay window for unsolicited messages. */
bool proto_ts_fresh(uint64_t ts_ms, uint64_t now_ms, uint64_t skew_ms);

/* True when s is 1..PROTO_NAME_MAX of [A-Za-z0-9._-]. */
bool proto_name_valid(const char *s);

#endif
