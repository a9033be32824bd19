/* http.c - the HTTP/1.1 server of fulcrum-cache: listener, connections,
 * request parsing and limits (contract in http.h, limits and status codes
 * in docs/cache-http.md). The request accessors and the response writer
 * are in http_out.c; what both files share is in http_int.h.
 *
 * Design notes.
 *
 * - One struct http_conn per connection: a fixed input buffer, a growing
 *   output buffer, one http_parser, two io watchers and one timer, all
 *   embedded and recovered with container_of.
 * - Pipelining: on_message_complete pauses the parser, so
 *   http_parser_execute() returns right after a complete request; the rest
 *   of the input stays in the buffer. The request is dispatched and the
 *   connection enters CS_DISPATCHED, where input is still read (to notice a
 *   client going away) but not parsed, until the input buffer is full. When
 *   the handler releases the exchange the connection goes back to CS_IDLE
 *   and parsing resumes: at once if the release happened inside the request
 *   callback (the parse loop is still on the stack), else from the write
 *   watcher, started by the release, so a handler is never re-entered from
 *   a respond call.
 * - Requests are parsed into a per-exchange arena of NUL-terminated strings
 *   (URL, then name/value pairs) recorded as offsets while it grows; the
 *   struct c9_hdr array points into it once the head is complete and the
 *   arena no longer moves.
 * - Nothing user-visible is called from a respond function: they only queue
 *   bytes, try one non-blocking write, change state and start the write
 *   watcher. Errors found while writing are acted on from the loop. Hence
 *   a connection is only ever freed from its own watcher callbacks or from
 *   http_server_free(), never below a handler's stack frame.
 * - Timeouts use one timer per connection with ev_timer_again: idle between
 *   requests, a fixed deadline for the head, idle between body reads, and
 *   a write-stall idle while output is pending.
 * - Errors found by the server (400, 408, 413, 414, 417, 431) get a short
 *   text body, Connection: close, then a lingering close: the write side is
 *   shut and input discarded until EOF or LINGER_S, so the client reads the
 *   answer instead of a reset.
 */
#include "http.h"
#include "http_int.h"

#include <errno.h>
#include <http_parser.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "xalloc.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define BACKLOG      511
#define ACCEPT_BURST 64
#define LINGER_S     2.0
#define LATE_GRACE_S 1.0 /* see conn_timer_cb */

static struct log_rl accept_rl = LOG_RL_INIT(5, 1000);

void http_limits_default(struct http_limits *lim)
{
    lim->max_url = 8192;
    lim->max_header_bytes = 16384;
    lim->max_headers = 100;
    lim->max_body = 1 << 20;
    lim->max_output = 256 * 1024;
    lim->idle_timeout = 30.0;
    lim->request_timeout = 10.0;
    lim->max_conns = 10000;
}

/* ---- exchanges ---------------------------------------------------------- */

static struct http_exchange *ex_new(struct http_conn *c)
{
    struct http_exchange *ex = xcalloc(1, sizeof(*ex));

    ex->conn = c;
    ex->peer = c->peer;
    ex->remaining = -1;
    return ex;
}

void http_ex_free(struct http_exchange *ex)
{
    if (!ex)
        return;
    free(ex->arena);
    free(ex->hoff);
    free(ex->hdrs);
    free(ex->body);
    free(ex);
}

/* Appends to a buffer that may grow to cap bytes; -E2BIG beyond. */
static int buf_add(char **b, size_t *len, size_t *bcap, size_t cap, const void *p, size_t n)
{
    if (n > cap - *len)
        return -E2BIG;
    if (n == 0)
        return 0;
    if (*len + n > *bcap) {
        size_t nc = *bcap ? *bcap : 256;

        while (nc < *len + n)
            nc *= 2;
        *b = xrealloc(*b, nc);
        *bcap = nc;
    }
    memcpy(*b + *len, p, n);
    *len += n;
    return 0;
}

/* ---- output ------------------------------------------------------------- */

void http_out_add(struct http_conn *c, const void *p, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    buf_add(&c->out, &c->out_len, &c->out_cap, SIZE_MAX, p, n);
}

size_t http_out_pending(const struct http_conn *c)
{
    return c->out_len - c->out_off;
}

void http_conn_timer(struct http_conn *c, double secs)
{
    c->late = false;
    c->tm.repeat = secs;
    ev_timer_again(c->srv->loop, &c->tm);
}

/* Writes what the socket takes. Calls nothing outside this file; a failure
 * only marks the connection broken (the loop acts on it). */
void http_conn_flush(struct http_conn *c)
{
    bool progress = false;

    while (!c->broken && http_out_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out + c->out_off, http_out_pending(c), MSG_NOSIGNAL);

        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c->broken = true;
            break;
        }
        c->out_off += (size_t)n;
        progress = true;
    }
    if (http_out_pending(c) == 0)
        c->out_off = c->out_len = 0;
    if (progress && c->state != CS_HEAD && c->state != CS_LINGER)
        http_conn_timer(c, c->srv->lim.idle_timeout);
}

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;

    ev_io_stop(s->loop, &c->rio);
    ev_io_stop(s->loop, &c->wio);
    ev_timer_stop(s->loop, &c->tm);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->ctr.conns_open--;
    http_ex_free(c->ex_in);
    free(c->out);
    free(c);
}

/* Closes c. A held exchange is detached first and its abort callback runs
 * (it may release the exchange; nothing here touches it afterwards). */
static void conn_abort(struct http_conn *c)
{
    struct http_exchange *ex = c->ex_out;

    if (ex)
        c->srv->ctr.aborted++;
    c->ex_out = NULL;
    conn_free(c);
    if (ex) {
        ex->conn = NULL;
        ex->aborted = true;
        if (ex->abort_cb)
            ex->abort_cb(ex, ex->abort_arg);
    }
}

const char *http_reason(int status)
{
    const char *r = http_status_str((enum http_status)status);

    return strcmp(r, "<unknown>") == 0 ? "Unknown" : r;
}

void http_count_status(struct http_server *s, int status)
{
    if (status >= 100 && status < 600)
        s->ctr.responses[status / 100]++;
}

/* Answers a request the server refuses: status, one line of reason, close. */
static void conn_error(struct http_conn *c, int status, const char *why)
{
    struct http_server *s = c->srv;
    char head[HTTP_HEAD_MAX];
    int n;

    switch (status) {
    case 408:
        s->ctr.timeout++;
        break;
    case 413:
        s->ctr.body_too_large++;
        break;
    case 414:
        s->ctr.url_too_long++;
        break;
    case 431:
        s->ctr.headers_too_large++;
        break;
    default:
        s->ctr.bad_request++;
        break;
    }
    http_count_status(s, status);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s\n",
                 status, http_reason(status), strlen(why) + 1, why);
    http_out_add(c, head, (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1);
    http_ex_free(c->ex_in);
    c->ex_in = NULL;
    c->no_more = true;
    c->state = CS_CLOSING;
}

/* ---- parser callbacks ------------------------------------------------------
 * A callback that refuses the request calls conn_error() and returns -1;
 * the parse loop then sees c->state == CS_CLOSING. */

static int refuse(struct http_conn *c, int status, const char *why)
{
    conn_error(c, status, why);
    return -1;
}

static int arena_add(struct http_conn *c, const char *p, size_t n)
{
    struct http_exchange *ex = c->ex_in;

    if (buf_add(&ex->arena, &ex->arena_len, &ex->arena_cap, c->srv->lim.max_header_bytes, p, n))
        return refuse(c, 431, "request header fields too large");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;

    c->ex_in = ex_new(c);
    c->state = CS_HEAD;
    http_conn_timer(c, c->srv->lim.request_timeout);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;

    c->ex_in->url_len += n;
    if (c->ex_in->url_len > c->srv->lim.max_url)
        return refuse(c, 414, "request target too long");
    return arena_add(c, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    struct http_exchange *ex = c->ex_in;

    if (ex->headers_done) { /* trailers: counted, dropped */
        ex->trailer_bytes += n;
        return ex->trailer_bytes > c->srv->lim.max_header_bytes
                   ? refuse(c, 431, "trailer fields too large")
                   : 0;
    }
    if (ex->nh == 0 || ex->in_value) { /* a new line: end the URL or the last value */
        if (ex->nh == c->srv->lim.max_headers)
            return refuse(c, 431, "too many header fields");
        if (arena_add(c, "", 1))
            return -1;
        if (ex->nh == ex->hcap) {
            ex->hcap = ex->hcap ? 2 * ex->hcap : 16;
            ex->hoff = xrealloc(ex->hoff, ex->hcap * sizeof(*ex->hoff));
        }
        ex->hoff[ex->nh++] = (struct hoff){.name_off = ex->arena_len};
        ex->in_value = false;
    }
    ex->hoff[ex->nh - 1].name_len += n;
    return arena_add(c, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    struct http_exchange *ex = c->ex_in;

    if (ex->headers_done) {
        ex->trailer_bytes += n;
        return ex->trailer_bytes > c->srv->lim.max_header_bytes
                   ? refuse(c, 431, "trailer fields too large")
                   : 0;
    }
    if (!ex->in_value) {
        if (arena_add(c, "", 1))
            return -1;
        ex->hoff[ex->nh - 1].value_off = ex->arena_len;
        ex->in_value = true;
    }
    ex->hoff[ex->nh - 1].value_len += n;
    return arena_add(c, at, n);
}

/* Adds a NUL-terminated copy to the arena, lowercased if lower, and returns
 * its offset or -1 (refused). The source is the literal lit, or when lit is
 * NULL the arena's own bytes at src_off (taken by offset: the arena moves). */
static long arena_dup(struct http_conn *c, const char *lit, size_t src_off, size_t n, bool lower)
{
    struct http_exchange *ex = c->ex_in;
    size_t off = ex->arena_len;

    if (n + 1 > c->srv->lim.max_header_bytes - ex->arena_len) {
        refuse(c, 431, "request header fields too large");
        return -1;
    }
    if (off + n + 1 > ex->arena_cap) {
        ex->arena_cap = 2 * (off + n + 1);
        ex->arena = xrealloc(ex->arena, ex->arena_cap);
    }
    memcpy(ex->arena + off, lit ? lit : ex->arena + src_off, n);
    ex->arena[off + n] = '\0';
    ex->arena_len += n + 1;
    for (size_t i = 0; lower && i < n; i++)
        if (ex->arena[off + i] >= 'A' && ex->arena[off + i] <= 'Z')
            ex->arena[off + i] = (char)(ex->arena[off + i] - 'A' + 'a');
    return (long)off;
}

/* Splits the target into path, query and host (absolute form wins over the
 * Host field, RFC 9112 §3.2.2). host_idx: the Host line, or -1. */
static int split_target(struct http_conn *c, long host_idx)
{
    struct http_exchange *ex = c->ex_in;
    struct http_parser_url u;
    long off;

    http_parser_url_init(&u);
    if (ex->url_len == 1 && ex->arena[0] == '*') {
        if ((off = arena_dup(c, "*", 0, 1, false)) < 0)
            return -1;
        ex->path_off = (size_t)off;
        ex->query_off = ex->path_off + 1; /* its NUL: "" */
    } else {
        /* the URL is first in the arena */
        if (http_parser_parse_url(ex->arena, ex->url_len, 0, &u) != 0)
            return refuse(c, 400, "invalid request target");
        if (u.field_set & (1 << UF_PATH))
            off = arena_dup(c, NULL, u.field_data[UF_PATH].off, u.field_data[UF_PATH].len, false);
        else
            off = arena_dup(c, "/", 0, 1, false);
        if (off < 0)
            return -1;
        ex->path_off = (size_t)off;
        if (u.field_set & (1 << UF_QUERY))
            off = arena_dup(c, NULL, u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len, false);
        else
            off = arena_dup(c, "", 0, 0, false);
        if (off < 0)
            return -1;
        ex->query_off = (size_t)off;
    }
    if (u.field_set & (1 << UF_HOST)) { /* host[:port] as written */
        size_t b = u.field_data[UF_HOST].off, e = b + u.field_data[UF_HOST].len;

        if (u.field_set & (1 << UF_PORT))
            e = u.field_data[UF_PORT].off + u.field_data[UF_PORT].len;
        off = arena_dup(c, NULL, b, e - b, true);
    } else if (host_idx >= 0) {
        off = arena_dup(c, NULL, ex->hoff[host_idx].value_off, ex->hoff[host_idx].value_len, true);
    } else {
        off = arena_dup(c, "", 0, 0, false);
    }
    if (off < 0)
        return -1;
    ex->host_off = (size_t)off;
    return 0;
}

static int check_expect(struct http_conn *c, const struct c9_hdr *h, bool has_body)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (!h || c->ex_in->version < 11)
        return 0; /* RFC 9110 §10.1.1: ignored for HTTP/1.0 */
    if (h->value_len != 12 || strncasecmp(h->value, "100-continue", 12) != 0)
        return refuse(c, 417, "unsupported Expect");
    if (has_body)
        http_out_add(c, cont, sizeof(cont) - 1);
    return 0;
}

static void build_hdrs(struct http_exchange *ex)
{
    ex->hdrs = xcalloc(ex->nh ? ex->nh : 1, sizeof(*ex->hdrs));
    for (size_t i = 0; i < ex->nh; i++)
        ex->hdrs[i] = (struct c9_hdr){ex->arena + ex->hoff[i].name_off, ex->hoff[i].name_len,
                                      ex->arena + ex->hoff[i].value_off, ex->hoff[i].value_len};
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_exchange *ex = c->ex_in;
    const struct c9_hdr *host;
    bool has_body;

    if (ex->url_len == 0)
        return refuse(c, 400, "empty request target");
    if (ex->nh > 0 && !ex->in_value && arena_add(c, "", 1)) /* a name without value */
        return -1;
    if (ex->nh > 0 && !ex->in_value)
        ex->hoff[ex->nh - 1].value_off = ex->arena_len - 1;
    if (arena_add(c, "", 1)) /* ends the last value (or the URL) */
        return -1;
    ex->headers_done = true;
    ex->version = p->http_minor >= 1 ? 11 : 10; /* 1.x above 1.1: as 1.1 (RFC 9110 6.2) */
    if (p->http_major != 1)
        return refuse(c, 400, "unsupported HTTP version");
    ex->method = p->method;
    ex->keep_alive = http_should_keep_alive(p) != 0;
    /* split_target() still grows the arena: the pointers are taken again */
    build_hdrs(ex);
    if (c9_hdr_count(ex->hdrs, ex->nh, "Host") > 1)
        return refuse(c, 400, "more than one Host header");
    host = c9_hdr_get(ex->hdrs, ex->nh, "Host");
    if (!host && ex->version >= 11)
        return refuse(c, 400, "missing Host header");
    if (split_target(c, host ? (long)(host - ex->hdrs) : -1))
        return -1;
    free(ex->hdrs);
    build_hdrs(ex); /* the arena may have moved */
    has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->lim.max_body)
        return refuse(c, 413, "request body too large");
    if (check_expect(c, c9_hdr_get(ex->hdrs, ex->nh, "Expect"), has_body))
        return -1;
    if (has_body) {
        c->state = CS_BODY;
        http_conn_timer(c, c->srv->lim.idle_timeout);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct http_conn *c = p->data;
    struct http_exchange *ex = c->ex_in;

    if (buf_add(&ex->body, &ex->body_len, &ex->body_cap, c->srv->lim.max_body, at, n))
        return refuse(c, 413, "request body too large");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;

    if (p->upgrade) { /* no protocol switch here: answer, then close */
        c->ex_in->keep_alive = false;
        c->no_more = true;
    }
    http_parser_pause(p, 1); /* execute() returns here: one request at a time */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the connection's loop side ------------------------------------------ */

static void conn_dispatch(struct http_conn *c)
{
    struct http_server *s = c->srv;
    struct http_exchange *ex = c->ex_in;

    c->ex_in = NULL;
    c->ex_out = ex;
    c->state = CS_DISPATCHED;
    ev_timer_stop(s->loop, &c->tm);
    s->ctr.requests++;
    s->cb(ex, s->arg); /* may release ex before returning */
}

static int parse_error_status(enum http_errno e)
{
    return e == HPE_HEADER_OVERFLOW ? 431 : 400;
}

/* Parses and dispatches buffered requests while the state allows. */
static void conn_process(struct http_conn *c)
{
    while (c->in_off < c->in_len && c->state <= CS_BODY && !c->broken && !c->no_more &&
           http_out_pending(c) <= c->srv->lim.max_output) {
        size_t avail = c->in_len - c->in_off;
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in + c->in_off, avail);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

        c->in_off += n;
        if (c->state == CS_CLOSING) /* a callback refused the request */
            break;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
        } else if (e != HPE_OK) {
            conn_error(c, parse_error_status(e), http_errno_description(e));
        }
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
}

/* Sets the watchers from the state; starts the linger when closing is done. */
static void conn_update(struct http_conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    bool over = http_out_pending(c) > c->srv->lim.max_output;
    bool rd;

    if (c->state == CS_CLOSING && http_out_pending(c) == 0) {
        shutdown(c->fd, SHUT_WR);
        c->state = CS_LINGER;
        http_conn_timer(c, LINGER_S);
    }
    switch (c->state) {
    case CS_DISPATCHED:
        rd = c->in_len < HTTP_IN_CAP || c->in_off > 0;
        break;
    case CS_CLOSING:
        rd = false;
        break;
    case CS_LINGER:
        rd = true;
        break;
    default:
        rd = !over;
        break;
    }
    if (rd)
        ev_io_start(loop, &c->rio);
    else
        ev_io_stop(loop, &c->rio);
    /* A handler waiting for its drain callback keeps the write watcher on
     * even when a read-side flush emptied the output: it calls the drain. */
    if (http_out_pending(c) > 0 || (c->ex_out && c->ex_out->drain_wanted))
        ev_io_start(loop, &c->wio);
    else
        ev_io_stop(loop, &c->wio);
    if (c->state == CS_DISPATCHED) { /* the timer only watches a write stall */
        if (http_out_pending(c) > 0 && !ev_is_active(&c->tm))
            http_conn_timer(c, c->srv->lim.idle_timeout);
        else if (http_out_pending(c) == 0)
            ev_timer_stop(loop, &c->tm);
    }
}

/* Everything a watcher does after its own work: parse, write, rearm. */
static void conn_kick(struct http_conn *c)
{
    conn_process(c);
    http_conn_flush(c);
    if (c->broken) {
        conn_abort(c);
        return;
    }
    if (c->state == CS_IDLE && c->no_more) {
        c->state = CS_CLOSING;
    }
    conn_update(c);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_conn *c = container_of(w, struct http_conn, rio);
    char sink[4096];
    ssize_t n;

    if (c->state == CS_LINGER) {
        n = read(c->fd, sink, sizeof(sink));
        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
            conn_free(c);
        return;
    }
    if (c->in_len == HTTP_IN_CAP && c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len == HTTP_IN_CAP) { /* pipelined input waits for the handler */
        ev_io_stop(loop, w);
        return;
    }
    n = read(c->fd, c->in + c->in_len, HTTP_IN_CAP - c->in_len);
    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* EOF or error: a held exchange is aborted */
        if (n == 0 && !c->ex_out && http_out_pending(c) > 0) {
            /* half-closed: finish writing the answers already made; a
             * request cut short by the EOF can never complete: dropped */
            http_ex_free(c->ex_in);
            c->ex_in = NULL;
            c->no_more = true;
            c->state = CS_CLOSING;
            c->in_off = c->in_len = 0;
            conn_update(c);
            return;
        }
        conn_abort(c);
        return;
    }
    c->in_len += (size_t)n;
    if (c->state == CS_BODY)
        http_conn_timer(c, c->srv->lim.idle_timeout);
    conn_kick(c);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_conn *c = container_of(w, struct http_conn, wio);
    struct http_exchange *ex = c->ex_out;

    http_conn_flush(c);
    if (c->broken) {
        conn_abort(c);
        return;
    }
    if (ex && ex->drain_wanted && http_out_pending(c) <= c->srv->lim.max_output / 2) {
        ex->drain_wanted = false;
        if (ex->drain_cb)
            ex->drain_cb(ex, ex->drain_arg); /* may release ex, never frees c */
    }
    conn_kick(c);
}

/* Whether the socket has, right now, what an active watcher of c's waits
 * for: the client did its part and the loop has not looked yet. */
static bool conn_ready(const struct http_conn *c)
{
    struct pollfd p = {.fd = c->fd, .events = 0};

    if (ev_is_active(&c->rio))
        p.events |= POLLIN;
    if (ev_is_active(&c->wio))
        p.events |= POLLOUT;
    return p.events != 0 && poll(&p, 1, 0) == 1 && (p.revents & p.events) != 0;
}

/* A loop that was itself late (a long iteration, a starved or stopped
 * process) runs an expired timer before the I/O of the same iteration, or
 * before the poll that would report it: a client whose request (or window)
 * is already in the socket is not the one that timed out. Once per arming,
 * such a timer waits LATE_GRACE_S more, for the I/O watchers to run; a
 * client that only trickles still meets its timeout, a grace later. */
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct http_conn *c = container_of(w, struct http_conn, tm);

    (void)revents;
    if (c->state != CS_LINGER && !c->late && conn_ready(c)) {
        c->srv->ctr.late_io++;
        c->late = true;
        w->repeat = LATE_GRACE_S; /* not http_conn_timer: that re-allows it */
        ev_timer_again(loop, w);
        return;
    }
    switch (c->state) {
    case CS_HEAD:
    case CS_BODY:
        conn_error(c, 408, "request timeout");
        conn_kick(c);
        return;
    case CS_DISPATCHED: /* the client stopped reading */
        c->srv->ctr.timeout++;
        conn_abort(c);
        return;
    default:
        conn_free(c);
        return;
    }
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_server *s = container_of(w, struct http_server, lio);

    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        int fd;
        struct http_conn *c;

        fd = accept4(s->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            unsigned sup;

            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                log_rl_allow(&accept_rl, clock_mono_ms(), &sup))
                log_warn("http: accept: %s (%u suppressed)", strerror(errno), sup);
            return;
        }
        if (s->ctr.conns_open >= s->lim.max_conns) {
            s->ctr.too_many_conns++;
            close(fd);
            continue;
        }
        c = xcalloc(1, sizeof(*c)); /* TCP_NODELAY: from the listener */
        c->srv = s;
        c->fd = fd;
        c->peer = peer;
        c->state = CS_IDLE;
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
        ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
        ev_init(&c->tm, conn_timer_cb);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->ctr.conns_accepted++;
        s->ctr.conns_open++;
        ev_io_start(loop, &c->rio);
        http_conn_timer(c, s->lim.idle_timeout);
    }
}

/* ---- server --------------------------------------------------------------- */

struct http_server *http_server_new(struct ev_loop *loop, const struct sockaddr_in *addr,
                                    const struct http_limits *lim, http_request_cb cb, void *arg,
                                    char *err, size_t errlen)
{
    struct http_server *s;
    struct http_limits def;
    int fd;

    if (!lim) {
        http_limits_default(&def);
        lim = &def;
    }
    if (!lim->max_url || !lim->max_header_bytes || !lim->max_headers || !lim->max_body ||
        !lim->max_output || !(lim->idle_timeout > 0) || !(lim->request_timeout > 0) ||
        !lim->max_conns || !cb) {
        snprintf(err, errlen, "http: every limit must be positive and a callback given");
        return NULL;
    }
    fd = net_tcp_listen(addr, false, BACKLOG, err, errlen);
    if (fd < 0)
        return NULL;
    s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->lim = *lim;
    s->cb = cb;
    s->arg = arg;
    s->fd = fd;
    s->port = net_local_port(fd);
    ev_io_init(&s->lio, accept_cb, fd, EV_READ);
    ev_io_start(loop, &s->lio);
    return s;
}

unsigned http_server_port(const struct http_server *s)
{
    return s->port;
}

const struct http_counters *http_server_counters(const struct http_server *s)
{
    return &s->ctr;
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    ev_io_stop(s->loop, &s->lio);
    close(s->fd);
    while (s->conns)
        conn_abort(s->conns);
    free(s);
}
