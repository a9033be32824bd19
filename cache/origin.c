/* origin.c - the origin client of fulcrum-cache (contract in origin.h):
 * the origin and its idle keep-alive pool, request building and the API.
 * A fetch's socket work is in origin_io.c, response parsing in
 * origin_parse.c; origin_int.h holds the shared types and design notes. */
#include "origin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <strings.h>
#include <unistd.h>

#include "net.h"
#include "origin_int.h"
#include "xalloc.h"

void origin_limits_default(struct origin_limits *lim)
{
    lim->connect_timeout = 2.0;
    lim->response_timeout = 10.0;
    lim->max_head = 32 * 1024;
    lim->max_headers = 100;
    lim->max_body = 8 * 1024 * 1024;
    lim->max_idle = 8;
}

/* ---- idle pool ------------------------------------------------------------ */

static void idle_unlink(struct origin *o, struct origin_idle *it)
{
    struct origin_idle **pp = &o->idle;

    while (*pp != it)
        pp = &(*pp)->next;
    *pp = it->next;
    o->nidle--;
}

static void idle_close(struct origin *o, struct origin_idle *it)
{
    ev_io_stop(o->loop, &it->io);
    close(it->fd);
    free(it);
}

/* Anything readable on an idle connection (EOF, a reset, stray bytes)
 * means it can no longer carry a request. */
static void idle_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct origin_idle *it = container_of(w, struct origin_idle, io);
    struct origin *o = it->o;

    (void)loop;
    (void)revents;
    idle_unlink(o, it);
    idle_close(o, it);
}

/* Parks fd in the pool, or closes it when the pool is full. */
void origin_idle_put(struct origin *o, int fd)
{
    struct origin_idle *it;

    if (o->nidle >= o->lim.max_idle) {
        close(fd);
        return;
    }
    it = xcalloc(1, sizeof(*it));
    it->fd = fd;
    it->o = o;
    ev_io_init(&it->io, idle_read_cb, fd, EV_READ);
    ev_io_start(o->loop, &it->io);
    it->next = o->idle;
    o->idle = it;
    o->nidle++;
}

/* The most recently used idle socket, or -1. */
int origin_idle_take(struct origin *o)
{
    struct origin_idle *it = o->idle;
    int fd;

    if (it == NULL)
        return -1;
    o->idle = it->next;
    o->nidle--;
    ev_io_stop(o->loop, &it->io);
    fd = it->fd;
    free(it);
    return fd;
}

void origin_fetch_unlink(struct origin_fetch *f)
{
    struct origin *o = f->o;

    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        o->active = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
}

void origin_fetch_free(struct origin_fetch *f)
{
    free(f->req);
    free(f->arena);
    free(f->hoff);
    free(f->body);
    free(f);
}

/* ---- request -------------------------------------------------------------- */

static bool token_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!c9_is_tchar(s[i]))
            return false;
    return true;
}

static bool value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

static bool path_ok(const char *s)
{
    if (s[0] != '/')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

static bool name_is(const struct c9_hdr *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

static void put(char *buf, size_t *off, const char *s, size_t n)
{
    memcpy(buf + *off, s, n);
    *off += n;
}

/* Whether line h is left out of the request: ours to write (Connection,
 * Keep-Alive; the framing when we send a body). */
static bool line_skipped(const struct c9_hdr *h, bool framing)
{
    return name_is(h, "connection") || name_is(h, "keep-alive") ||
           (framing && (name_is(h, "content-length") || name_is(h, "transfer-encoding")));
}

/* Builds the request (head, then the body if any) into a fresh buffer;
 * -EINVAL for a bad part. */
static int build_request(struct origin_fetch *f, const struct origin_request *rq)
{
    static const char ka[] = "Connection: keep-alive\r\n\r\n";
    bool has_host = false, framing = rq->body != NULL;
    char *buf, cl[40] = "";
    size_t len, off = 0;

    if (!token_ok(rq->method, strlen(rq->method)) || !path_ok(rq->path_and_query))
        return -EINVAL;
    if (framing)
        snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", rq->body_len);
    len = strlen(rq->method) + 1 + strlen(rq->path_and_query) + sizeof(" HTTP/1.1\r\n") +
          sizeof(ka) + sizeof("Host: \r\n") + strlen(f->o->host) + strlen(cl);
    for (size_t i = 0; i < rq->n; i++) {
        const struct c9_hdr *h = &rq->hdrs[i];

        if (!token_ok(h->name, h->name_len) || !value_ok(h->value, h->value_len))
            return -EINVAL;
        has_host |= name_is(h, "host");
        len += h->name_len + h->value_len + 4;
    }
    if (framing && rq->body_len > SIZE_MAX - len)
        return -EINVAL;
    buf = xmalloc(len + (framing ? rq->body_len : 0));
    put(buf, &off, rq->method, strlen(rq->method));
    put(buf, &off, " ", 1);
    put(buf, &off, rq->path_and_query, strlen(rq->path_and_query));
    put(buf, &off, " HTTP/1.1\r\n", 11);
    if (!has_host) {
        put(buf, &off, "Host: ", 6);
        put(buf, &off, f->o->host, strlen(f->o->host));
        put(buf, &off, "\r\n", 2);
    }
    for (size_t i = 0; i < rq->n; i++) {
        const struct c9_hdr *h = &rq->hdrs[i];

        if (line_skipped(h, framing))
            continue;
        put(buf, &off, h->name, h->name_len);
        put(buf, &off, ": ", 2);
        put(buf, &off, h->value, h->value_len);
        put(buf, &off, "\r\n", 2);
    }
    put(buf, &off, cl, strlen(cl));
    put(buf, &off, ka, sizeof(ka) - 1);
    if (framing && rq->body_len)
        put(buf, &off, rq->body, rq->body_len);
    f->req = buf;
    f->req_len = off;
    return 0;
}

static bool method_idempotent(const char *m)
{
    static const char *const ms[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};

    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
        if (strcmp(m, ms[i]) == 0)
            return true;
    return false;
}

int origin_fetch_req(struct origin *o, const struct origin_request *rq, origin_done_cb cb,
                     void *arg, struct origin_fetch **out)
{
    struct origin_fetch *f;
    int r;

    if (rq->method == NULL || rq->path_and_query == NULL || cb == NULL ||
        (rq->hdrs == NULL && rq->n > 0) ||
        (rq->stream != NULL && (rq->stream->head == NULL || rq->stream->body == NULL)))
        return -EINVAL;
    f = xcalloc(1, sizeof(*f));
    f->o = o;
    f->fd = -1;
    f->cb = cb;
    f->arg = arg;
    f->ops = rq->stream;
    r = build_request(f, rq);
    if (r != 0)
        goto out_free_fetch;
    f->head = strcmp(rq->method, "HEAD") == 0;
    f->idempotent = method_idempotent(rq->method);
    origin_parse_reset(f);
    f->next = o->active;
    if (o->active != NULL)
        o->active->prev = f;
    o->active = f;
    o->ctr.fetches++;
    origin_io_begin(f);
    if (out != NULL)
        *out = f;
    return 0;

out_free_fetch:
    origin_fetch_free(f);
    return r;
}

int origin_fetch(struct origin *o, const char *method, const char *path_and_query,
                 const struct c9_hdr *hdrs, size_t n, origin_done_cb cb, void *arg,
                 struct origin_fetch **out)
{
    struct origin_request rq = {method, path_and_query, hdrs, n, NULL, 0, NULL};

    return origin_fetch_req(o, &rq, cb, arg, out);
}

void origin_fetch_cancel(struct origin_fetch *f)
{
    origin_io_stop(f);
    origin_fetch_unlink(f);
    if (f->fd != -1)
        close(f->fd);
    f->o->ctr.cancelled++;
    origin_fetch_free(f);
}

void origin_fetch_retarget(struct origin_fetch *f, const struct origin_stream_ops *ops,
                           origin_done_cb cb, void *arg)
{
    f->ops = ops;
    f->cb = cb;
    f->arg = arg;
}

/* ---- origin --------------------------------------------------------------- */

struct origin *origin_new(struct ev_loop *loop, const char *url, const struct origin_limits *lim,
                          char *err, size_t errlen)
{
    static const char scheme[] = "http://";
    struct origin *o;
    char *hp;
    size_t len;

    if (lim->connect_timeout <= 0 || lim->response_timeout <= 0 || lim->max_head == 0 ||
        lim->max_headers == 0 || lim->max_body == 0 || lim->max_idle == 0) {
        snprintf(err, errlen, "origin limits must all be > 0");
        return NULL;
    }
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(err, errlen, "origin URL \"%s\" does not start with http://", url);
        return NULL;
    }
    o = xcalloc(1, sizeof(*o));
    hp = xstrdup(url + sizeof(scheme) - 1);
    len = strlen(hp);
    if (len > 0 && hp[len - 1] == '/')
        hp[--len] = '\0';
    if (len == 0 || hp[0] == ':' || hp[0] == '*' || strchr(hp, '/') != NULL ||
        strchr(hp, ':') == NULL) {
        snprintf(err, errlen, "origin URL \"%s\" is not http://HOST:PORT", url);
        goto out_free;
    }
    if (net_parse_hostport(hp, false, &o->addr, err, errlen) != 0)
        goto out_free;
    o->host = hp;
    o->loop = loop;
    o->lim = *lim;
    return o;

out_free:
    free(hp);
    free(o);
    return NULL;
}

void origin_free(struct origin *o)
{
    if (o == NULL)
        return;
    while (o->active != NULL)
        origin_fetch_cancel(o->active);
    while (o->idle != NULL) {
        struct origin_idle *it = o->idle;

        idle_unlink(o, it);
        idle_close(o, it);
    }
    free(o->host);
    free(o);
}

void origin_get_counters(const struct origin *o, struct origin_counters *out)
{
    *out = o->ctr;
}
