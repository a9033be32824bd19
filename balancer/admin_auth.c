/* admin_auth.c - the admin token and the check of each admin request (the
 * policy is in admin_auth.h, the operator's view in docs/admin.md). */
#include "admin_auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "key.h"

#define ADMIN_TOKEN_FILE_MAX 4096 /* bytes read, whitespace included */

static const char *const verdict_names[ADMIN_AUTH_MAX] = {
    [ADMIN_AUTH_OK] = "ok",
    [ADMIN_AUTH_MISSING] = "missing",
    [ADMIN_AUTH_BAD] = "bad",
};

const char *admin_auth_verdict_name(enum admin_auth_verdict v)
{
    return (unsigned)v < ADMIN_AUTH_MAX ? verdict_names[v] : "?";
}

bool admin_auth_is_loopback(const struct in_addr *a)
{
    return (ntohl(a->s_addr) >> 24) == 127;
}

/* buf[0..n) minus trailing whitespace must be a token: returns its length,
 * or -EINVAL with err filled. */
static int token_text(const char *path, const char *buf, size_t n, char *err, size_t errlen)
{
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    if (n < ADMIN_TOKEN_MIN || n > ADMIN_TOKEN_MAX) {
        snprintf(err, errlen,
                 "admin token file %s: the token has %zu characters; it needs %d to %d", path, n,
                 ADMIN_TOKEN_MIN, ADMIN_TOKEN_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (buf[i] < 0x21 || buf[i] > 0x7e) {
            snprintf(err, errlen,
                     "admin token file %s: byte %zu is not visible ASCII (a token is one word)",
                     path, i);
            return -EINVAL;
        }
    }
    return (int)n;
}

int admin_auth_load(const char *path, uint8_t hash[ADMIN_TOKEN_HASH], char *err, size_t errlen)
{
    char buf[ADMIN_TOKEN_FILE_MAX];
    size_t n;
    int r;

    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -EIO;
    }
    /* the cluster key's rules (common/key.h): regular, nobody else may touch it */
    r = secret_file_read("admin token file", path, (uint8_t *)buf, 0, sizeof(buf), &n, err, errlen);
    if (r)
        return r;
    r = token_text(path, buf, n, err, errlen);
    if (r >= 0)
        crypto_hash_sha256(hash, (const unsigned char *)buf, (unsigned long long)r);
    sodium_memzero(buf, sizeof(buf));
    return r < 0 ? r : 0;
}

int admin_auth_init(struct admin_auth *au, const char *token_file, bool insecure,
                    const struct sockaddr_in *addr, char *err, size_t errlen)
{
    int r;

    memset(au, 0, sizeof(*au));
    if (token_file && *token_file) {
        r = admin_auth_load(token_file, au->hash, err, errlen);
        if (r)
            return r;
        au->have_token = true;
        return 0;
    }
    if (!admin_auth_is_loopback(&addr->sin_addr) && !insecure) {
        char ip[INET_ADDRSTRLEN] = "?";

        inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof(ip));
        snprintf(err, errlen,
                 "admin port on %s is reachable beyond loopback: give it a token "
                 "(--admin-token-file FILE) or, to serve it without one, --admin-insecure",
                 ip);
        return -EPERM;
    }
    return 0;
}

int admin_auth_validate(const char *token_file, bool insecure, const struct sockaddr_in *addr,
                        char *err, size_t errlen)
{
    struct admin_auth au;
    int r = admin_auth_init(&au, token_file, insecure, addr, err, errlen);

    admin_auth_done(&au);
    return r;
}

void admin_auth_done(struct admin_auth *au)
{
    sodium_memzero(au->hash, sizeof(au->hash));
    au->have_token = false;
}

bool admin_auth_bearer(const char *v, size_t len, const char **tok, size_t *toklen)
{
    static const char scheme[] = "Bearer";
    size_t i = sizeof(scheme) - 1, end;

    if (len <= i || strncasecmp(v, scheme, i) || (v[i] != ' ' && v[i] != '\t'))
        return false;
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    end = len;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    if (end == i || memchr(v + i, ' ', end - i) || memchr(v + i, '\t', end - i))
        return false;
    *tok = v + i;
    *toklen = end - i;
    return true;
}

static bool token_matches(const struct admin_auth *au, const char *authz, size_t len)
{
    uint8_t h[ADMIN_TOKEN_HASH];
    const char *tok;
    size_t tlen;
    bool ok;

    if (!admin_auth_bearer(authz, len, &tok, &tlen))
        return false;
    crypto_hash_sha256(h, (const unsigned char *)tok, (unsigned long long)tlen);
    ok = sodium_memcmp(h, au->hash, sizeof(h)) == 0;
    sodium_memzero(h, sizeof(h));
    return ok;
}

enum admin_auth_verdict admin_auth_check(struct admin_auth *au, bool write, bool peer_loopback,
                                         const char *authz, size_t len, unsigned nauthz)
{
    enum admin_auth_verdict v = ADMIN_AUTH_OK;

    if (!au->have_token)
        return ADMIN_AUTH_OK;
    if (nauthz > 1 || (authz && !token_matches(au, authz, len)))
        v = ADMIN_AUTH_BAD;
    else if (!authz && (write || !peer_loopback))
        v = ADMIN_AUTH_MISSING;
    if (v != ADMIN_AUTH_OK)
        au->refused[v]++;
    return v;
}
