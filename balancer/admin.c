/* admin.c - the admin port: a small HTTP/1.1 server on the main thread's
 * libev loop (the contract is in admin.h, the API reference in
 * docs/admin.md). It listens, accepts, parses, routes and answers; the pages
 * themselves are rendered by admin_view.c and admin_metrics.c.
 *
 * Design notes.
 *
 * - One request per connection, then Connection: close. The request is read
 *   into a fixed ADMIN_REQ_MAX buffer inside the connection and parsed as it
 *   arrives (libhttp-parser); a request that fills the buffer before it is
 *   complete gets 431. Every byte a peer controls is capped: the request by
 *   the buffer, the number of connections by ADMIN_CONNS_MAX (more are
 *   accepted and closed at once, and counted), the time by an idle timer
 *   restarted with ev_timer_again on every read or write that makes progress
 *   plus a deadline of two idle periods for the whole request (a client
 *   trickling a byte at a time must not hold a slot for hours), and the
 *   lingering read after the response by ADMIN_LINGER_MAX bytes and one
 *   idle period.
 * - A response is a header block and a heap body that grows as needed up to
 *   ADMIN_VIEW_BUF_MAX (with 4096 nodes status.json is about 1.5 MB, /metrics
 *   2.7 MB). Both go out with sendmsg(MSG_NOSIGNAL) when the socket is
 *   writable, so a slow reader costs memory, never a blocked loop.
 * - After the response the write side is shut down and input is read and
 *   discarded until EOF (a "lingering close", as nginx does): closing a
 *   socket with unread input sends RST, which can destroy the response (a
 *   431 to a client still sending) before the client reads it.
 * - Each page takes its own snapshot of the balancer and the monitor
 *   (admin_view.h) and appends itself to the connection's body.
 *
 * Thread: everything runs on the thread of the loop given to lb_admin_new,
 * which must be the thread that owns the node registry and the monitor.
 */
#include "admin.h"

#include <errno.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "admin_api.h"
#include "admin_auth.h"
#include "admin_metrics.h"
#include "admin_view.h"
#include "clock.h"
#include "history.h"
#include "log.h"
#include "net.h"
#include "xalloc.h"

#define ADMIN_REQ_MAX      8192 /* request line, headers and body */
#define ADMIN_CONNS_MAX    64   /* connections open at once */
#define ADMIN_BACKLOG      64
#define ADMIN_ACCEPT_BURST 64    /* accepts per wakeup */
#define ADMIN_IDLE_S       5.0   /* default idle timeout */
#define ADMIN_PAUSE_S      0.5   /* accept paused this long after EMFILE */
#define ADMIN_LINGER_MAX   65536 /* bytes discarded after the response */
#define ADMIN_HEAD_MAX     512

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- server and connections ---- */

/* A connection's life: one request in, one response out, then close. */
enum admin_conn_state {
    ADMIN_READ = 0, /* reading and parsing the request */
    ADMIN_WRITE,    /* response built: writing it as the socket allows */
    ADMIN_LINGER,   /* response sent and write side shut: discarding input to EOF */
    ADMIN_STATE_MAX
};

struct admin_conn {
    struct lb_admin *a;
    struct admin_conn *prev, *next;
    int fd;
    enum admin_conn_state state;
    ev_io io;
    ev_timer idle;
    http_parser parser;
    char peer[NET_ADDRSTRLEN];
    size_t url_off, url_len; /* the URL within req */
    bool url_seen, headers_done, complete;
    bool head_only; /* HEAD: headers without the body */
    bool peer_loopback;
    /* Authorization header and body within req (admin_auth.h, admin_api.h) */
    size_t hdr_off, hdr_len; /* the header field being parsed */
    bool in_value, value_is_auth;
    unsigned nauth;            /* Authorization headers seen */
    size_t auth_off, auth_len; /* the first one's value */
    size_t body_off, body_len;
    bool body_split; /* chunked: the body is not one piece of req */
    ev_tstamp start; /* accepted: the request is due by start + 2 idle periods */
    size_t req_len;
    size_t lingered; /* bytes discarded in ADMIN_LINGER */
    char head[ADMIN_HEAD_MAX];
    size_t head_len;
    struct admin_view_buf body;
    size_t sent; /* of head + body */
    char req[ADMIN_REQ_MAX];
};

struct lb_admin {
    struct ev_loop *loop;
    struct lb_admin_ctx ctx;
    double idle_s;
    int fd;
    ev_io lio;
    ev_timer pause; /* accept resumes after running out of descriptors */
    struct admin_conn *conns;
    unsigned nconns;
    uint64_t refused; /* connections over ADMIN_CONNS_MAX, closed at once */
    struct admin_auth auth;
    struct log_rl rl_accept;
};

static void conn_close(struct admin_conn *c)
{
    struct lb_admin *a = c->a;

    ev_io_stop(a->loop, &c->io);
    ev_timer_stop(a->loop, &c->idle);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    admin_view_buf_done(&c->body);
    free(c);
}

/* Switches the io watcher to `events` (it must be stopped to be changed). */
static void conn_watch(struct admin_conn *c, int events)
{
    ev_io_stop(c->a->loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(c->a->loop, &c->io);
}

static const char *http_reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Internal Server Error";
    }
}

static void conn_write(struct admin_conn *c);

/* Sends the body in c->body with this status; allow: the Allow header's
 * value for a 405, else NULL. */
static void conn_respond(struct admin_conn *c, int code, const char *ctype, const char *allow)
{
    size_t clen;
    int n;

    if (c->body.toobig) {
        admin_view_buf_reset(&c->body);
        admin_view_buf_puts(&c->body, "{\"error\":\"response too large\"}\n");
        code = 500;
        ctype = "application/json";
        allow = NULL;
        log_warn("admin: response to %s over %u bytes", c->peer, ADMIN_VIEW_BUF_MAX);
    }
    clen = c->body.len;
    if (c->head_only)
        c->body.len = 0; /* Content-Length stays the one GET would send */
    n = snprintf(c->head, sizeof(c->head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s"
                 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                 code, http_reason(code), ctype, clen, allow ? "Allow: " : "", allow ? allow : "",
                 allow ? "\r\n" : "",
                 code == 401 ? "WWW-Authenticate: Bearer realm=\"fulcrum-admin\"\r\n" : "");
    c->head_len = n > 0 && (size_t)n < sizeof(c->head) ? (size_t)n : 0;
    c->sent = 0;
    c->state = ADMIN_WRITE;
    conn_watch(c, EV_WRITE);
    conn_write(c);
}

/* An error response: a one-line JSON object naming what went wrong. */
static void conn_error(struct admin_conn *c, int code, const char *allow, const char *msg)
{
    admin_view_buf_reset(&c->body);
    admin_view_buf_printf(&c->body, "{\"error\":\"%s\"}\n", msg);
    conn_respond(c, code, "application/json", allow);
}

/* ---- POST /nodes/NAME/drain|undrain ---- */

static void do_drain(struct admin_conn *c, const char *name, bool drain)
{
    int r = admin_api_set_drain(&c->a->ctx, name, drain);

    if (r == -ENOENT) {
        conn_error(c, 404, NULL, "unknown node");
        return;
    }
    if (r < 0) {
        log_warn("admin: %s %s: %s", drain ? "drain" : "undrain", name, strerror(-r));
        conn_error(c, 500, NULL, "drain failed");
        return;
    }
    log_info("admin: %s node=%s from=%s", drain ? "drain" : "undrain", name, c->peer);
    admin_view_buf_printf(&c->body, "{\"node\":\"%s\",\"drain\":%s}\n", name,
                          drain ? "true" : "false");
    conn_respond(c, 200, "application/json", NULL);
}

/* "/nodes/NAME/drain" and "/nodes/NAME/undrain": true when path has this
 * shape (name not yet validated). */
static bool route_node(const char *p, size_t len, const char **name, size_t *nlen, bool *drain)
{
    static const char prefix[] = "/nodes/";
    const char *rest, *slash;
    size_t rlen;

    if (len <= sizeof(prefix) - 1 || memcmp(p, prefix, sizeof(prefix) - 1))
        return false;
    rest = p + sizeof(prefix) - 1;
    rlen = len - (sizeof(prefix) - 1);
    slash = memchr(rest, '/', rlen);
    if (!slash)
        return false;
    *name = rest;
    *nlen = (size_t)(slash - rest);
    rlen -= *nlen + 1;
    if (rlen == 5 && !memcmp(slash + 1, "drain", 5))
        *drain = true;
    else if (rlen == 7 && !memcmp(slash + 1, "undrain", 7))
        *drain = false;
    else
        return false;
    return true;
}

/* ---- request dispatch ---- */

/* A page: appends itself to out; 0, or -errno with *err for the client. */
typedef int (*admin_page_fn)(const struct lb_admin_ctx *ctx, uint64_t admin_refused,
                             struct admin_view_buf *out, const char **err);

static const struct {
    const char *path;
    admin_page_fn fn;
    const char *ctype;
} admin_pages[] = {
    {"/", admin_view_html, "text/html; charset=utf-8"},
    {"/status", admin_view_status_text, "text/plain; charset=utf-8"},
    {"/status.json", admin_view_status_json, "application/json"},
    {"/metrics", admin_api_metrics, "text/plain; version=0.0.4; charset=utf-8"},
    {"/history.json", lb_history_page, "application/json"},
};

/* The token check (admin_auth.h): false when refused (and answered 401). */
static bool conn_authorized(struct admin_conn *c, unsigned method)
{
    bool write = method != HTTP_GET && method != HTTP_HEAD;
    enum admin_auth_verdict v =
        admin_auth_check(&c->a->auth, write, c->peer_loopback,
                         c->nauth ? c->req + c->auth_off : NULL, c->auth_len, c->nauth);

    if (v == ADMIN_AUTH_OK)
        return true;
    log_info("admin: %s %s from %s refused: token %s", http_method_str(method),
             write ? "write" : "read", c->peer, admin_auth_verdict_name(v));
    conn_error(c, 401, NULL,
               v == ADMIN_AUTH_BAD ? "bad admin token" : "admin token required (Bearer)");
    return false;
}

/* /api/...: true when the runtime API answered (admin_api.h). */
static bool conn_api(struct admin_conn *c, const struct http_parser_url *u, const char *p,
                     size_t plen)
{
    struct admin_api_req rq = {
        .method = c->parser.method, .path = p, .path_len = plen, .peer = c->peer};
    const char *allow = NULL;
    int code;

    if (u->field_set & (1u << UF_QUERY)) {
        rq.query = c->req + c->url_off + u->field_data[UF_QUERY].off;
        rq.query_len = u->field_data[UF_QUERY].len;
    }
    if (c->body_len && !c->body_split) {
        rq.body = c->req + c->body_off;
        rq.body_len = c->body_len;
    }
    c->head_only = rq.method == HTTP_HEAD;
    code = admin_api_handle(&c->a->ctx, c->a->refused, &rq, &c->body, &allow);
    if (code == 0)
        return false;
    if (c->body_split && code < 300)
        log_debug("admin: %s sent a chunked body; it was ignored", c->peer);
    conn_respond(c, code, "application/json", code == 405 ? allow : NULL);
    return true;
}

static void conn_dispatch(struct admin_conn *c)
{
    unsigned method = c->parser.method;
    struct http_parser_url u;
    const char *p, *nm;
    size_t plen, nlen;
    bool drain;

    http_parser_url_init(&u);
    if (!c->url_seen ||
        http_parser_parse_url(c->req + c->url_off, c->url_len, method == HTTP_CONNECT, &u) ||
        !(u.field_set & (1u << UF_PATH))) {
        conn_error(c, 400, NULL, "bad request target");
        return;
    }
    if (c->parser.http_major != 1) {
        conn_error(c, 505, NULL, "only HTTP/1.x is served");
        return;
    }
    p = c->req + c->url_off + u.field_data[UF_PATH].off;
    plen = u.field_data[UF_PATH].len;
    log_debug("admin: %s %.*s from %s", http_method_str(method), (int)plen, p, c->peer);
    if (!conn_authorized(c, method) || conn_api(c, &u, p, plen))
        return;
    for (size_t i = 0; i < sizeof(admin_pages) / sizeof(admin_pages[0]); i++) {
        const char *err = NULL;

        if (strlen(admin_pages[i].path) != plen || memcmp(admin_pages[i].path, p, plen))
            continue;
        if (method != HTTP_GET && method != HTTP_HEAD) {
            conn_error(c, 405, "GET, HEAD", "method not allowed");
            return;
        }
        c->head_only = method == HTTP_HEAD;
        if (admin_pages[i].fn(&c->a->ctx, c->a->refused, &c->body, &err) < 0)
            conn_error(c, 500, NULL, err);
        else
            conn_respond(c, 200, admin_pages[i].ctype, NULL);
        return;
    }
    if (route_node(p, plen, &nm, &nlen, &drain)) {
        char name[ADMIN_NAME_MAX + 1];

        if (method != HTTP_POST) {
            conn_error(c, 405, "POST", "method not allowed");
            return;
        }
        if (!admin_api_name_valid(nm, nlen)) {
            conn_error(c, 400, NULL, "bad node name");
            return;
        }
        memcpy(name, nm, nlen);
        name[nlen] = '\0';
        do_drain(c, name, drain);
        return;
    }
    conn_error(c, 404, NULL, "not found");
}

/* ---- parsing ---- */

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct admin_conn *c = hp->data;

    /* Pieces of the URL are contiguous: they all come from c->req. */
    if (!c->url_seen) {
        c->url_seen = true;
        c->url_off = (size_t)(at - c->req);
    }
    c->url_len += len;
    return 0;
}

/* Header fields and values arrive in pieces, all contiguous in c->req. */
static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct admin_conn *c = hp->data;

    if (c->in_value || c->hdr_len == 0 || at != c->req + c->hdr_off + c->hdr_len) {
        c->in_value = false;
        c->hdr_off = (size_t)(at - c->req);
        c->hdr_len = 0;
    }
    c->hdr_len += len;
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct admin_conn *c = hp->data;

    if (!c->in_value) {
        c->in_value = true;
        c->value_is_auth =
            c->hdr_len == 13 && !strncasecmp(c->req + c->hdr_off, "authorization", 13);
        if (c->value_is_auth && c->nauth++ == 0)
            c->auth_off = (size_t)(at - c->req);
        else if (c->value_is_auth)
            c->value_is_auth = false; /* a second one: only counted */
    }
    if (c->value_is_auth)
        c->auth_len += len;
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct admin_conn *c = hp->data;
    size_t off = (size_t)(at - c->req);

    if (c->body_len == 0)
        c->body_off = off;
    else if (off != c->body_off + c->body_len)
        c->body_split = true;
    c->body_len += len;
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct admin_conn *c = hp->data;

    c->headers_done = true;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct admin_conn *c = hp->data;

    /* One request per connection: stop here, whatever follows. */
    c->complete = true;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings admin_parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_body = on_body,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void conn_read(struct admin_conn *c)
{
    for (;;) {
        size_t room = sizeof(c->req) - c->req_len;
        ssize_t n = read(c->fd, c->req + c->req_len, room);

        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c);
            return;
        }
        if (n == 0) { /* EOF before a whole request: nobody to answer */
            conn_close(c);
            return;
        }
        if (ev_now(c->a->loop) - c->start > 2 * c->a->idle_s) {
            log_debug("admin: %s too slow to send its request: closed", c->peer);
            conn_close(c);
            return;
        }
        ev_timer_again(c->a->loop, &c->idle);
        http_parser_execute(&c->parser, &admin_parser_settings, c->req + c->req_len, (size_t)n);
        c->req_len += (size_t)n;
        if (c->complete) {
            conn_dispatch(c);
            return;
        }
        if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
            conn_error(c, 400, NULL, "malformed request");
            return;
        }
        if (c->req_len == sizeof(c->req)) {
            if (c->headers_done)
                conn_error(c, 413, NULL, "request body too large");
            else
                conn_error(c, 431, NULL, "request line and headers over 8 KiB");
            return;
        }
    }
}

static void conn_linger(struct admin_conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->req, sizeof(c->req));

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0 || c->lingered + (size_t)n > ADMIN_LINGER_MAX) {
            conn_close(c);
            return;
        }
        c->lingered += (size_t)n; /* the idle timer is not restarted: one period */
    }
}

static void conn_write(struct admin_conn *c)
{
    size_t total = c->head_len + c->body.len;

    while (c->sent < total) {
        struct iovec iov[2];
        struct msghdr mh = {.msg_iov = iov};
        ssize_t n;

        if (c->sent < c->head_len) {
            iov[0].iov_base = c->head + c->sent;
            iov[0].iov_len = c->head_len - c->sent;
            iov[1].iov_base = c->body.p;
            iov[1].iov_len = c->body.len;
            mh.msg_iovlen = c->body.len ? 2 : 1;
        } else {
            iov[0].iov_base = c->body.p + (c->sent - c->head_len);
            iov[0].iov_len = total - c->sent;
            mh.msg_iovlen = 1;
        }
        n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c);
            return; /* the write watcher calls again */
        }
        c->sent += (size_t)n;
        ev_timer_again(c->a->loop, &c->idle);
    }
    admin_view_buf_done(&c->body);
    shutdown(c->fd, SHUT_WR);
    c->state = ADMIN_LINGER;
    conn_watch(c, EV_READ);
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_conn *c = container_of(w, struct admin_conn, io);

    switch (c->state) {
    case ADMIN_READ:
        conn_read(c);
        break;
    case ADMIN_WRITE:
        conn_write(c);
        break;
    default:
        conn_linger(c);
        break;
    }
}

static void conn_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct admin_conn *c = container_of(w, struct admin_conn, idle);

    log_debug("admin: %s idle in state %d: closed", c->peer, (int)c->state);
    conn_close(c);
}

static void conn_new(struct lb_admin *a, int fd, const struct sockaddr_in *peer)
{
    struct admin_conn *c = xcalloc(1, sizeof(*c));

    c->a = a;
    c->fd = fd;
    c->state = ADMIN_READ;
    c->start = ev_now(a->loop);
    net_ntop(peer, c->peer);
    c->peer_loopback = admin_auth_is_loopback(&peer->sin_addr);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    ev_timer_init(&c->idle, conn_idle_cb, 0.0, a->idle_s);
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    ev_io_start(a->loop, &c->io);
    ev_timer_again(a->loop, &c->idle);
}

/* ---- listening ---- */

static void admin_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lb_admin *a = container_of(w, struct lb_admin, pause);

    ev_io_start(loop, &a->lio);
}

static void admin_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lb_admin *a = container_of(w, struct lb_admin, lio);

    for (int i = 0; i < ADMIN_ACCEPT_BURST; i++) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        unsigned suppressed;
        int fd = accept4(a->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory: the socket stays readable, so
             * stop listening for a moment instead of spinning. */
            if (log_rl_allow(&a->rl_accept, clock_mono_ms(), &suppressed))
                log_warn("admin: accept: %s (%u similar suppressed)", strerror(errno), suppressed);
            ev_io_stop(loop, &a->lio);
            ev_timer_set(&a->pause, ADMIN_PAUSE_S, 0.0);
            ev_timer_start(loop, &a->pause);
            return;
        }
        if (a->nconns >= ADMIN_CONNS_MAX) {
            close(fd);
            a->refused++;
            continue;
        }
        conn_new(a, fd, &peer);
    }
}

struct lb_admin *lb_admin_new(struct ev_loop *loop, const struct sockaddr_in *addr,
                              const struct lb_admin_ctx *ctx, char *err, size_t errlen)
{
    struct lb_admin *a = xcalloc(1, sizeof(*a));
    char why[200];

    a->loop = loop;
    a->ctx = *ctx;
    a->idle_s = ctx->idle_timeout > 0 ? ctx->idle_timeout : ADMIN_IDLE_S;
    a->rl_accept = (struct log_rl)LOG_RL_INIT(5, 10000);
    a->ctx.auth = &a->auth;
    if (admin_auth_init(&a->auth, ctx->token_file, ctx->insecure, addr, err, errlen))
        goto out_free;
    a->fd = net_tcp_listen(addr, false, ADMIN_BACKLOG, why, sizeof(why));
    if (a->fd < 0) {
        snprintf(err, errlen, "admin port: %s", why);
        goto out_free;
    }
    ev_io_init(&a->lio, admin_accept_cb, a->fd, EV_READ);
    ev_timer_init(&a->pause, admin_pause_cb, ADMIN_PAUSE_S, 0.0);
    ev_io_start(loop, &a->lio);
    return a;
out_free:
    admin_auth_done(&a->auth);
    free(a);
    return NULL;
}

unsigned lb_admin_port(const struct lb_admin *a)
{
    return net_local_port(a->fd);
}

void lb_admin_free(struct lb_admin *a)
{
    if (!a)
        return;
    while (a->conns)
        conn_close(a->conns);
    ev_io_stop(a->loop, &a->lio);
    ev_timer_stop(a->loop, &a->pause);
    close(a->fd);
    admin_auth_done(&a->auth);
    free(a);
}
