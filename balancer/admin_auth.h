/* admin_auth.h - who may use the admin port: the admin token
 * (--admin-token-file), the rule that a port reachable beyond loopback needs
 * one, and the check of each request's `Authorization: Bearer TOKEN`.
 *
 * Policy (docs/admin.md "Authentication"):
 * - no token: every request is served; allowed only when the port is bound
 *   to 127.0.0.0/8, or with --admin-insecure;
 * - with a token: writes (any method but GET and HEAD) need it from
 *   everyone; reads need it from peers outside 127.0.0.0/8; a request that
 *   sends an Authorization header must send the right one, read or not.
 *
 * The token file follows the cluster key's rules (common/key.c): a regular
 * file, no permission for group or others. It holds ADMIN_TOKEN_MIN to
 * ADMIN_TOKEN_MAX visible ASCII characters (trailing whitespace and newline
 * ignored). Only its SHA-256 is kept; a presented token is hashed and the
 * digests compared with sodium_memcmp, so neither the content nor the length
 * of the token leaks through timing.
 *
 * Thread: the admin port's loop.
 */
#ifndef FULCRUM_BALANCER_ADMIN_AUTH_H
#define FULCRUM_BALANCER_ADMIN_AUTH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADMIN_TOKEN_MIN  16
#define ADMIN_TOKEN_MAX  1024
#define ADMIN_TOKEN_HASH 32

/* What a request's credentials came to. */
enum admin_auth_verdict {
    ADMIN_AUTH_OK = 0,  /* served */
    ADMIN_AUTH_MISSING, /* needed and not sent: 401 */
    ADMIN_AUTH_BAD,     /* sent and wrong, malformed, or sent twice: 401 */
    ADMIN_AUTH_MAX
};

/* Embedded in the admin server; all zeros is "no token". */
struct admin_auth {
    bool have_token;
    uint8_t hash[ADMIN_TOKEN_HASH];
    uint64_t refused[ADMIN_AUTH_MAX]; /* by verdict; [ADMIN_AUTH_OK] unused */
};

/* Loads token_file (NULL or "": none) and applies the bind rule for addr.
 * Returns 0, or -errno with err filled: unreadable or bad token file, or a
 * non-loopback addr without a token and without insecure. */
int admin_auth_init(struct admin_auth *au, const char *token_file, bool insecure,
                    const struct sockaddr_in *addr, char *err, size_t errlen);

/* What admin_auth_init() would refuse, with nothing kept (--check-config, and
 * a reload's new process before it says ready). Returns 0 or its error. */
int admin_auth_validate(const char *token_file, bool insecure, const struct sockaddr_in *addr,
                        char *err, size_t errlen);
/* Wipes the digest. */
void admin_auth_done(struct admin_auth *au);

/* Reads the token in path into hash. 0 or -errno with err filled. */
int admin_auth_load(const char *path, uint8_t hash[ADMIN_TOKEN_HASH], char *err, size_t errlen);

/* The token of an Authorization value "Bearer TOKEN" (scheme in any case,
 * spaces around the token ignored): true with *tok and *toklen, else false. */
bool admin_auth_bearer(const char *v, size_t len, const char **tok, size_t *toklen);

/* The verdict on one request, counted in au->refused. write: not GET/HEAD.
 * authz: the Authorization header's value (NULL: none); nauthz: how many
 * Authorization headers came (more than one is ADMIN_AUTH_BAD). */
enum admin_auth_verdict admin_auth_check(struct admin_auth *au, bool write, bool peer_loopback,
                                         const char *authz, size_t len, unsigned nauthz);

/* True for an address in 127.0.0.0 to 127.255.255.255. */
bool admin_auth_is_loopback(const struct in_addr *a);

const char *admin_auth_verdict_name(enum admin_auth_verdict v);

#endif
