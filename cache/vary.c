/* vary.c - the Vary secondary key (RFC 9111 §4.1, RFC 9110 §12.5.5);
 * contracts in vary.h.
 *
 * Design notes: the names a Vary lists are collected once, deduplicated
 * and sorted case-insensitively in a fixed table of C9_VARY_MAX_FIELDS, so
 * a response's key does not depend on the order or case of its names. The
 * request's values are read with the c9_list iterator of rfc9111.c (commas
 * in quoted strings, repeated lines) and written normalized and escaped
 * into the caller's buffer, never past its cap.
 */
#include "vary.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "rfc9111.h"

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Case-insensitive order of two names: <0, 0, >0. */
static int icmp_n(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i;

    for (i = 0; i < an && i < bn; i++) {
        int d = lower((unsigned char)a[i]) - lower((unsigned char)b[i]);
        if (d != 0)
            return d;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static bool hdr_named(const struct c9_hdr *h, const char *name, size_t name_len)
{
    return h->name != NULL && h->name_len == name_len &&
           icmp_n(h->name, name_len, name, name_len) == 0;
}

struct vary_name {
    const char *p;
    size_t len;
};

/* The response's Vary names, deduplicated and sorted case-insensitively. */
static enum c9_vary_form vary_names(const struct c9_hdr *resp, size_t n,
                                    struct vary_name names[C9_VARY_MAX_FIELDS], size_t *count)
{
    struct c9_list it;
    const char *e;
    size_t len, i, k;

    *count = 0;
    c9_list_init(&it, resp, n, "vary");
    while (c9_list_next(&it, &e, &len)) {
        int cmp = 1;

        if (len == 1 && e[0] == '*')
            return C9_VARY_IS_STAR;
        for (i = 0; i < len; i++) {
            if (!c9_is_tchar(e[i]))
                return C9_VARY_BAD_NAME;
        }
        for (k = 0; k < *count; k++) {
            cmp = icmp_n(e, len, names[k].p, names[k].len);
            if (cmp <= 0)
                break;
        }
        if (cmp == 0)
            continue; /* duplicate */
        if (*count == C9_VARY_MAX_FIELDS)
            return C9_VARY_TOO_MANY;
        memmove(&names[k + 1], &names[k], (*count - k) * sizeof(names[0]));
        names[k].p = e;
        names[k].len = len;
        (*count)++;
    }
    return C9_VARY_KEYABLE;
}

/* Output with a cap; one byte is kept for the NUL. */
struct key_out {
    char *p;
    size_t cap;
    size_t len;
    bool over;
};

static void put(struct key_out *o, char c)
{
    if (o->over || o->len + 1 >= o->cap || o->len >= INT_MAX) {
        o->over = true;
        return;
    }
    o->p[o->len++] = c;
}

/* A value byte: control bytes and '%' escaped so the key stays one line
 * per field and two different values never give the same key. */
static void put_value(struct key_out *o, char ch)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char c = (unsigned char)ch;

    if (c < 0x20 || c == 0x7f || c == '%') {
        put(o, '%');
        put(o, hex[c >> 4]);
        put(o, hex[c & 15]);
    } else {
        put(o, ch);
    }
}

/* The request's value of one field, as a normalized list (see header). */
static void put_request_value(struct key_out *o, const struct c9_hdr *req, size_t nreq,
                              const struct vary_name *name)
{
    struct c9_list it;
    const char *e;
    size_t len, i;
    bool first = true;

    it = (struct c9_list){.h = req, .n = nreq, .name = name->p, .name_len = name->len};
    while (c9_list_next(&it, &e, &len)) {
        bool quoted = false;

        if (!first)
            put(o, ',');
        first = false;
        for (i = 0; i < len; i++) {
            if (!quoted && is_ows(e[i])) {
                while (i + 1 < len && is_ows(e[i + 1]))
                    i++;
                put(o, ' ');
                continue;
            }
            if (quoted && e[i] == '\\' && i + 1 < len) {
                put_value(o, e[i++]);
            } else if (e[i] == '"') {
                quoted = !quoted;
            }
            put_value(o, e[i]);
        }
    }
}

/* Common start of the two Vary writers: out emptied, names collected. */
static int vary_begin(const struct c9_hdr *resp, size_t nresp,
                      struct vary_name names[C9_VARY_MAX_FIELDS], size_t *count, char *out,
                      size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    switch (vary_names(resp, nresp, names, count)) {
    case C9_VARY_KEYABLE:
        return cap > 0 ? 0 : -E2BIG;
    case C9_VARY_TOO_MANY:
        return -E2BIG;
    default:
        return -EINVAL; /* "*" or a member that is not a field name */
    }
}

int c9_vary_key(const struct c9_hdr *resp, size_t nresp, const struct c9_hdr *req, size_t nreq,
                char *out, size_t cap)
{
    struct vary_name names[C9_VARY_MAX_FIELDS];
    struct key_out o = {out, cap, 0, false};
    size_t count, k, i;
    int rc;

    if ((rc = vary_begin(resp, nresp, names, &count, out, cap)) < 0)
        return rc;
    for (k = 0; k < count; k++) {
        bool present = false;

        for (i = 0; i < names[k].len; i++)
            put(&o, (char)lower((unsigned char)names[k].p[i]));
        for (i = 0; i < nreq && !present; i++)
            present = hdr_named(&req[i], names[k].p, names[k].len);
        if (present) {
            put(&o, ':');
            put_request_value(&o, req, nreq, &names[k]);
        }
        put(&o, '\n');
    }
    if (o.over) {
        out[0] = '\0';
        return -E2BIG;
    }
    out[o.len] = '\0';
    return (int)o.len;
}

int c9_vary_names(const struct c9_hdr *resp, size_t nresp, char *out, size_t cap)
{
    struct vary_name names[C9_VARY_MAX_FIELDS];
    struct key_out o = {out, cap, 0, false};
    size_t count, k, i;
    int rc;

    if ((rc = vary_begin(resp, nresp, names, &count, out, cap)) < 0)
        return rc;
    for (k = 0; k < count; k++) {
        if (k > 0)
            put(&o, ',');
        for (i = 0; i < names[k].len; i++)
            put(&o, (char)lower((unsigned char)names[k].p[i]));
    }
    if (o.over) {
        out[0] = '\0';
        return -E2BIG;
    }
    out[o.len] = '\0';
    return (int)o.len;
}

enum c9_vary_form c9_vary_form(const struct c9_hdr *resp, size_t nresp)
{
    struct vary_name names[C9_VARY_MAX_FIELDS];
    size_t count;

    return vary_names(resp, nresp, names, &count);
}
