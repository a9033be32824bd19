/* origin.c - the origin client of fulcrum-cache (contract in origin.h).
 *
 * Design notes.
 * - A fetch owns its socket while it runs: one ev_io (write while the
 *   request goes out, then read) and one ev_timer, both embedded and
 *   recovered with container_of. The timer is the connect timeout while
 *   connecting, then the response timeout, restarted with ev_timer_again
 *   on every byte (libev's "be smart about timeouts").
 * - A finished fetch whose response allowed keep-alive, and which read
 *   nothing past the response, hands its socket to the idle pool (LIFO,
 *   at most max_idle). An idle socket is watched for reads: anything that
 *   arrives (EOF, stray bytes) closes it.
 * - Errors that must be reported after origin_fetch() returns (a connect
 *   that fails at once) are deferred through the timer at 0 s, so the
 *   callback never runs inside origin_fetch().
 * - Header bytes go into one arena, recorded as offsets (the arena moves
 *   while it grows) and turned into struct c9_hdr views at the end.
 */
#include "origin.h"

#include <errno.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"
#include "xalloc.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define ORIGIN_READ_CHUNK 16384

struct origin_idle {
    int fd;
    ev_io io;
    struct origin *o;
    struct origin_idle *next;
};

struct origin {
    struct ev_loop *loop;
    struct sockaddr_in addr;
    char *host; /* the Host value: HOST:PORT as in the URL */
    struct origin_limits lim;
    struct origin_idle *idle; /* LIFO */
    unsigned nidle;
    struct origin_fetch *active; /* doubly linked */
    struct origin_counters ctr;
};

/* A fetch's states. */
enum fetch_state {
    FS_CONNECTING, /* connect in progress, waiting for writability */
    FS_SENDING,    /* writing the request */
    FS_RECEIVING,  /* reading the response */
    FS_STATE_MAX
};

/* One header line as arena offsets. */
struct hdr_off {
    size_t name, name_len, value, value_len;
};

struct origin_fetch {
    struct origin *o;
    struct origin_fetch *prev, *next;
    origin_done_cb cb;
    void *arg;
    enum fetch_state state;
    int fd;
    ev_io io;
    ev_timer tm;
    int deferred; /* error to report from the timer, or 0 */
    bool head;    /* HEAD: the response has no body */
    bool idempotent;
    bool reused; /* the socket came from the idle pool */
    bool retried;
    bool got_byte; /* a response byte arrived on this socket */
    char *req;
    size_t req_len, req_off;
    /* response */
    http_parser p;
    int perr; /* error set by a parser callback */
    bool complete;
    bool in_value;     /* last header callback was a value */
    bool headers_done; /* later field callbacks are trailers: dropped */
    char *arena;
    size_t arena_len, arena_cap;
    struct hdr_off *hoff;
    size_t nhdrs, hcap;
    char *body;
    size_t body_len, body_cap;
    int64_t request_time, response_time;
};

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

static void idle_put(struct origin *o, int fd)
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

/* Takes the most recently used idle socket, or returns -1. */
static int idle_take(struct origin *o)
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

/* ---- response parsing ----------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    struct origin_fetch *f = p->data;

    /* Also after a 1xx: forget its header lines. */
    f->arena_len = 0;
    f->nhdrs = 0;
    f->in_value = false;
    f->headers_done = false;
    f->body_len = 0;
    return 0;
}

static int arena_add(struct origin_fetch *f, const char *at, size_t len)
{
    if (len > f->o->lim.max_head - f->arena_len) {
        f->perr = -EPROTO;
        return -1;
    }
    if (f->arena_len + len > f->arena_cap) {
        size_t cap = f->arena_cap ? f->arena_cap : 1024;

        while (cap < f->arena_len + len)
            cap *= 2;
        if (cap > f->o->lim.max_head)
            cap = f->o->lim.max_head;
        f->arena = xrealloc(f->arena, cap);
        f->arena_cap = cap;
    }
    memcpy(f->arena + f->arena_len, at, len);
    f->arena_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct origin_fetch *f = p->data;

    if (f->headers_done)
        return 0;
    if (f->nhdrs == 0 || f->in_value) {
        /* A new line. */
        if (f->nhdrs >= f->o->lim.max_headers) {
            f->perr = -EPROTO;
            return -1;
        }
        if (f->nhdrs == f->hcap) {
            f->hcap = f->hcap ? f->hcap * 2 : 16;
            f->hoff = xrealloc(f->hoff, f->hcap * sizeof(*f->hoff));
        }
        f->hoff[f->nhdrs++] = (struct hdr_off){.name = f->arena_len};
        f->in_value = false;
    }
    f->hoff[f->nhdrs - 1].name_len += len;
    return arena_add(f, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct origin_fetch *f = p->data;
    struct hdr_off *h;

    if (f->headers_done)
        return 0;
    if (f->nhdrs == 0)
        return -1;
    h = &f->hoff[f->nhdrs - 1];
    if (!f->in_value) {
        h->value = f->arena_len;
        f->in_value = true;
    }
    h->value_len += len;
    return arena_add(f, at, len);
}

static int on_headers_complete(http_parser *p)
{
    struct origin_fetch *f = p->data;

    f->headers_done = true;
    if (p->status_code == 101) {
        f->perr = -EPROTO; /* we never ask to switch protocols */
        return -1;
    }
    if (p->status_code >= 100 && p->status_code < 200)
        return 0;
    f->response_time = (int64_t)(clock_wall_ms() / 1000);
    if (f->head)
        return 1; /* no body whatever the head says */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > f->o->lim.max_body) {
        f->perr = -E2BIG;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct origin_fetch *f = p->data;

    if (len > f->o->lim.max_body - f->body_len) {
        f->perr = -E2BIG;
        return -1;
    }
    if (f->body_len + len > f->body_cap) {
        size_t cap = f->body_cap ? f->body_cap : 4096;

        if ((p->flags & F_CONTENTLENGTH) && f->body_cap == 0)
            cap = f->body_len + len + (size_t)p->content_length;
        while (cap < f->body_len + len)
            cap *= 2;
        if (cap > f->o->lim.max_body)
            cap = f->o->lim.max_body;
        f->body = xrealloc(f->body, cap);
        f->body_cap = cap;
    }
    memcpy(f->body + f->body_len, at, len);
    f->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct origin_fetch *f = p->data;

    if (p->status_code >= 100 && p->status_code < 200)
        return 0;
    f->complete = true;
    http_parser_pause(p, 1); /* whatever follows is not ours */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- fetch life ----------------------------------------------------------- */

static void fetch_unlink(struct origin_fetch *f)
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

static void fetch_stop_io(struct origin_fetch *f)
{
    ev_io_stop(f->o->loop, &f->io);
    ev_timer_stop(f->o->loop, &f->tm);
}

static void fetch_free(struct origin_fetch *f)
{
    free(f->req);
    free(f->arena);
    free(f->hoff);
    free(f->body);
    free(f);
}

static void count_error(struct origin_counters *c, int err)
{
    switch (err) {
    case -ETIMEDOUT:
        c->err_timeout++;
        break;
    case -ECONNREFUSED:
        c->err_refused++;
        break;
    case -E2BIG:
        c->err_too_big++;
        break;
    case -EPROTO:
        c->err_proto++;
        break;
    case -ECONNRESET:
        c->err_reset++;
        break;
    default:
        c->err_other++;
        break;
    }
}

/* Ends f: its socket goes to the pool (keep_alive) or is closed, the
 * callback runs, f is freed. Touches neither o nor f's loop after the
 * callback (which may free the origin). */
static void fetch_finish(struct origin_fetch *f, int err, bool keep_alive)
{
    struct origin *o = f->o;
    struct origin_result res = {.error = err, .request_time = f->request_time};
    struct c9_hdr *h = NULL;

    fetch_stop_io(f);
    fetch_unlink(f);
    if (f->fd != -1) {
        if (err == 0 && keep_alive)
            idle_put(o, f->fd);
        else
            close(f->fd);
        f->fd = -1;
    }
    if (err == 0) {
        o->ctr.responses++;
        h = xcalloc(f->nhdrs ? f->nhdrs : 1, sizeof(*h));
        for (size_t i = 0; i < f->nhdrs; i++) {
            h[i].name = f->arena + f->hoff[i].name;
            h[i].name_len = f->hoff[i].name_len;
            h[i].value = f->arena + f->hoff[i].value;
            h[i].value_len = f->hoff[i].value_len;
        }
        res.status = (int)f->p.status_code;
        res.hdrs = h;
        res.nhdrs = f->nhdrs;
        res.body = f->body_len ? f->body : NULL;
        res.body_len = f->body_len;
        res.response_time = f->response_time;
    } else {
        count_error(&o->ctr, err);
    }
    f->cb(f->arg, &res);
    free(h);
    fetch_free(f);
}

static void fetch_reset_response(struct origin_fetch *f)
{
    http_parser_init(&f->p, HTTP_RESPONSE);
    f->p.data = f;
    f->perr = 0;
    f->complete = false;
    f->got_byte = false;
    f->arena_len = 0;
    f->nhdrs = 0;
    f->body_len = 0;
    f->req_off = 0;
}

static void fetch_watch(struct origin_fetch *f, int events)
{
    ev_io_stop(f->o->loop, &f->io);
    ev_io_set(&f->io, f->fd, events);
    ev_io_start(f->o->loop, &f->io);
}

/* Sends the request on a connected socket (fresh or reused). */
static void fetch_send_start(struct origin_fetch *f)
{
    f->state = FS_SENDING;
    f->request_time = (int64_t)(clock_wall_ms() / 1000);
    f->tm.repeat = f->o->lim.response_timeout;
    ev_timer_again(f->o->loop, &f->tm);
    fetch_watch(f, EV_WRITE);
}

/* Opens a fresh connection, or arranges for the error to be reported. */
static void fetch_connect(struct origin_fetch *f)
{
    struct origin *o = f->o;
    int fd = net_tcp_connect_start(&o->addr);

    f->reused = false;
    if (fd < 0) {
        f->deferred = fd;
        ev_timer_set(&f->tm, 0., 0.);
        ev_timer_start(o->loop, &f->tm);
        return;
    }
    o->ctr.conns_new++;
    f->fd = fd;
    f->state = FS_CONNECTING;
    ev_io_set(&f->io, fd, EV_WRITE);
    ev_io_start(o->loop, &f->io);
    ev_timer_set(&f->tm, o->lim.connect_timeout, 0.);
    ev_timer_start(o->loop, &f->tm);
}

/* The socket failed (err) or closed before the response ended: retry a
 * stale keep-alive connection once, else end the fetch. */
static void fetch_fail(struct origin_fetch *f, int err)
{
    if (f->reused && !f->got_byte && !f->retried && f->idempotent &&
        (err == -ECONNRESET || err == -EPIPE)) {
        fetch_stop_io(f);
        close(f->fd);
        f->fd = -1;
        f->retried = true;
        f->o->ctr.retries++;
        fetch_reset_response(f);
        fetch_connect(f);
        return;
    }
    if (err == -EPIPE)
        err = -ECONNRESET;
    fetch_finish(f, err, false);
}

static void fetch_write(struct origin_fetch *f)
{
    while (f->req_off < f->req_len) {
        ssize_t w = send(f->fd, f->req + f->req_off, f->req_len - f->req_off, MSG_NOSIGNAL);

        if (w == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            fetch_fail(f, -errno);
            return;
        }
        f->req_off += (size_t)w;
        ev_timer_again(f->o->loop, &f->tm);
    }
    f->state = FS_RECEIVING;
    fetch_watch(f, EV_READ);
}

/* Feeds n bytes (n == 0: EOF) to the parser; ends f when the response is
 * complete or wrong. Returns true when f is gone. */
static bool fetch_parse(struct origin_fetch *f, const char *buf, size_t n)
{
    size_t used = http_parser_execute(&f->p, &parser_settings, buf, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&f->p);

    if (f->complete) {
        /* Bytes past the response, or a close, rule out reuse. */
        bool ka = n > 0 && used == n && http_should_keep_alive(&f->p);

        fetch_finish(f, 0, ka);
        return true;
    }
    if (e != HPE_OK) {
        fetch_finish(f, f->perr ? f->perr : -EPROTO, false);
        return true;
    }
    if (n == 0) {
        fetch_finish(f, -ECONNRESET, false); /* closed mid-response */
        return true;
    }
    return false;
}

static void fetch_read(struct origin_fetch *f)
{
    char buf[ORIGIN_READ_CHUNK];

    for (;;) {
        ssize_t r = recv(f->fd, buf, sizeof(buf), 0);

        if (r == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            fetch_fail(f, -errno);
            return;
        }
        if (r == 0 && !f->got_byte) {
            fetch_fail(f, -ECONNRESET);
            return;
        }
        f->got_byte = true;
        ev_timer_again(f->o->loop, &f->tm);
        if (fetch_parse(f, buf, (size_t)r) || r == 0)
            return;
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct origin_fetch *f = container_of(w, struct origin_fetch, io);
    int r;

    (void)loop;
    (void)revents;
    switch (f->state) {
    case FS_CONNECTING:
        r = net_connect_result(f->fd);
        if (r != 0) {
            fetch_finish(f, r, false);
            return;
        }
        ev_timer_stop(f->o->loop, &f->tm);
        fetch_send_start(f);
        fetch_write(f);
        break;
    case FS_SENDING:
        fetch_write(f);
        break;
    case FS_RECEIVING:
        fetch_read(f);
        break;
    default:
        break;
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct origin_fetch *f = container_of(w, struct origin_fetch, tm);

    (void)loop;
    (void)revents;
    if (f->deferred != 0)
        fetch_finish(f, f->deferred, false);
    else
        fetch_finish(f, -ETIMEDOUT, false);
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

/* Builds the request into a fresh buffer; -EINVAL for a bad part. */
static int build_request(struct origin_fetch *f, const char *method, const char *path,
                         const struct c9_hdr *hdrs, size_t n)
{
    static const char ka[] = "Connection: keep-alive\r\n\r\n";
    size_t len, off = 0;
    bool has_host = false;
    char *buf;

    if (!token_ok(method, strlen(method)) || !path_ok(path))
        return -EINVAL;
    len = strlen(method) + 1 + strlen(path) + sizeof(" HTTP/1.1\r\n") + sizeof(ka) +
          sizeof("Host: \r\n") + strlen(f->o->host);
    for (size_t i = 0; i < n; i++) {
        if (!token_ok(hdrs[i].name, hdrs[i].name_len) ||
            !value_ok(hdrs[i].value, hdrs[i].value_len))
            return -EINVAL;
        has_host |= name_is(&hdrs[i], "host");
        len += hdrs[i].name_len + hdrs[i].value_len + 4;
    }
    buf = xmalloc(len);
    put(buf, &off, method, strlen(method));
    put(buf, &off, " ", 1);
    put(buf, &off, path, strlen(path));
    put(buf, &off, " HTTP/1.1\r\n", 11);
    if (!has_host) {
        put(buf, &off, "Host: ", 6);
        put(buf, &off, f->o->host, strlen(f->o->host));
        put(buf, &off, "\r\n", 2);
    }
    for (size_t i = 0; i < n; i++) {
        if (name_is(&hdrs[i], "connection") || name_is(&hdrs[i], "keep-alive"))
            continue;
        put(buf, &off, hdrs[i].name, hdrs[i].name_len);
        put(buf, &off, ": ", 2);
        put(buf, &off, hdrs[i].value, hdrs[i].value_len);
        put(buf, &off, "\r\n", 2);
    }
    put(buf, &off, ka, sizeof(ka) - 1);
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

int origin_fetch(struct origin *o, const char *method, const char *path_and_query,
                 const struct c9_hdr *hdrs, size_t n, origin_done_cb cb, void *arg,
                 struct origin_fetch **out)
{
    struct origin_fetch *f;
    int r, fd;

    if (method == NULL || path_and_query == NULL || cb == NULL || (hdrs == NULL && n > 0))
        return -EINVAL;
    f = xcalloc(1, sizeof(*f));
    f->o = o;
    f->fd = -1;
    f->cb = cb;
    f->arg = arg;
    r = build_request(f, method, path_and_query, hdrs, n);
    if (r != 0)
        goto out_free_fetch;
    f->head = strcmp(method, "HEAD") == 0;
    f->idempotent = method_idempotent(method);
    ev_init(&f->io, io_cb);
    ev_init(&f->tm, timer_cb);
    fetch_reset_response(f);
    f->next = o->active;
    if (o->active != NULL)
        o->active->prev = f;
    o->active = f;
    o->ctr.fetches++;

    fd = idle_take(o);
    if (fd != -1) {
        o->ctr.conns_reused++;
        f->fd = fd;
        f->reused = true;
        ev_io_set(&f->io, fd, EV_WRITE);
        fetch_send_start(f);
    } else {
        fetch_connect(f);
    }
    if (out != NULL)
        *out = f;
    return 0;

out_free_fetch:
    fetch_free(f);
    return r;
}

void origin_fetch_cancel(struct origin_fetch *f)
{
    fetch_stop_io(f);
    fetch_unlink(f);
    if (f->fd != -1)
        close(f->fd);
    f->o->ctr.cancelled++;
    fetch_free(f);
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
