/* http_out.c - the exchange side of the HTTP server: the request accessors
 * and the response writer (status line and header framing: Content-Length,
 * chunked or close-delimited, Date, Connection; whole and streamed
 * responses; the release of exchanges, whose contract is in http.h).
 *
 * Nothing here calls a handler or frees a connection: a respond function
 * only queues bytes, tries one non-blocking write, changes the connection's
 * state and starts its write watcher; the loop (http.c) does the rest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "http_int.h"

/* ---- request accessors ---------------------------------------------------- */

enum http_req_method http_exchange_method_id(const struct http_exchange *ex)
{
    switch (ex->method) {
    case HTTP_GET:
        return HTTP_REQ_GET;
    case HTTP_HEAD:
        return HTTP_REQ_HEAD;
    case HTTP_POST:
        return HTTP_REQ_POST;
    case HTTP_PUT:
        return HTTP_REQ_PUT;
    case HTTP_DELETE:
        return HTTP_REQ_DELETE;
    case HTTP_OPTIONS:
        return HTTP_REQ_OPTIONS;
    case HTTP_PURGE:
        return HTTP_REQ_PURGE;
    default:
        return HTTP_REQ_OTHER;
    }
}

const char *http_exchange_method(const struct http_exchange *ex)
{
    return http_method_str((enum http_method)ex->method);
}

const char *http_exchange_url(const struct http_exchange *ex)
{
    return ex->arena;
}

const char *http_exchange_path(const struct http_exchange *ex)
{
    return ex->arena + ex->path_off;
}

const char *http_exchange_query(const struct http_exchange *ex)
{
    return ex->arena + ex->query_off;
}

const char *http_exchange_host(const struct http_exchange *ex)
{
    return ex->arena + ex->host_off;
}

const struct c9_hdr *http_exchange_headers(const struct http_exchange *ex, size_t *n)
{
    *n = ex->nh;
    return ex->hdrs;
}

const void *http_exchange_body(const struct http_exchange *ex, size_t *len)
{
    *len = ex->body_len;
    return ex->body;
}

bool http_exchange_keep_alive(const struct http_exchange *ex)
{
    return ex->keep_alive;
}

int http_exchange_version(const struct http_exchange *ex)
{
    return ex->version;
}

const struct sockaddr_in *http_exchange_peer(const struct http_exchange *ex)
{
    return &ex->peer;
}

bool http_exchange_aborted(const struct http_exchange *ex)
{
    return ex->aborted;
}

void http_exchange_set_abort_cb(struct http_exchange *ex, http_abort_cb cb, void *arg)
{
    ex->abort_cb = cb;
    ex->abort_arg = arg;
}

void http_exchange_set_drain_cb(struct http_exchange *ex, http_drain_cb cb, void *arg)
{
    ex->drain_cb = cb;
    ex->drain_arg = arg;
}

size_t http_exchange_pending(const struct http_exchange *ex)
{
    return ex->conn ? http_out_pending(ex->conn) : 0;
}

/* ---- responses ------------------------------------------------------------ */

static bool hdr_is(const struct c9_hdr *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Whether the server writes this line itself, or refuses it (CR, LF). */
static bool hdr_skip(const struct c9_hdr *h)
{
    return hdr_is(h, "Content-Length") || hdr_is(h, "Transfer-Encoding") ||
           hdr_is(h, "Connection") || hdr_is(h, "Keep-Alive") ||
           memchr(h->name, '\r', h->name_len) || memchr(h->name, '\n', h->name_len) ||
           memchr(h->value, '\r', h->value_len) || memchr(h->value, '\n', h->value_len);
}

static const char *http_date(struct http_server *s)
{
    time_t now = time(NULL);
    struct tm tm;

    if (now != s->date_sec && gmtime_r(&now, &tm)) {
        strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

/* Queues the status line and headers. clen >= 0: Content-Length; -1:
 * chunked (1.1) or close-delimited (1.0). Sets ex's framing. */
static void write_head(struct http_exchange *ex, int status, const struct c9_hdr *hdrs, size_t n,
                       int64_t clen)
{
    struct http_conn *c = ex->conn;
    bool bodyless = status < 200 || status == 204 || status == 304;
    char line[HTTP_HEAD_MAX];
    int k;

    ex->keep = ex->keep_alive && !c->no_more;
    ex->no_body = bodyless || ex->method == HTTP_HEAD;
    ex->chunked = false;
    ex->remaining = clen;
    if (clen < 0 && !bodyless) {
        if (ex->version >= 11)
            ex->chunked = true;
        else
            ex->keep = false;
    }
    k = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, http_reason(status));
    http_out_add(c, line, (size_t)k);
    for (size_t i = 0; i < n; i++) {
        if (hdr_skip(&hdrs[i]))
            continue;
        http_out_add(c, hdrs[i].name, hdrs[i].name_len);
        http_out_add(c, ": ", 2);
        http_out_add(c, hdrs[i].value, hdrs[i].value_len);
        http_out_add(c, "\r\n", 2);
    }
    k = 0;
    if (!c9_hdr_get(hdrs, n, "Date"))
        k += snprintf(line + k, sizeof(line) - (size_t)k, "Date: %s\r\n", http_date(c->srv));
    if (!bodyless && clen >= 0)
        k += snprintf(line + k, sizeof(line) - (size_t)k, "Content-Length: %lld\r\n",
                      (long long)clen);
    else if (ex->chunked)
        k += snprintf(line + k, sizeof(line) - (size_t)k, "Transfer-Encoding: chunked\r\n");
    if (!ex->keep)
        k += snprintf(line + k, sizeof(line) - (size_t)k, "Connection: close\r\n");
    else if (ex->version < 11)
        k += snprintf(line + k, sizeof(line) - (size_t)k, "Connection: keep-alive\r\n");
    k += snprintf(line + k, sizeof(line) - (size_t)k, "\r\n");
    http_out_add(c, line, (size_t)k);
    ex->head_sent = true;
    http_count_status(c->srv, status);
    if (bodyless)
        ex->remaining = 0;
}

/* The response of ex is complete: frees ex, lets the connection go on (from
 * the loop: the write watcher resumes parsing). */
static void finish(struct http_exchange *ex, bool keep)
{
    struct http_conn *c = ex->conn;

    c->ex_out = NULL;
    if (!keep)
        c->no_more = true;
    c->state = c->no_more ? CS_CLOSING : CS_IDLE;
    if (c->state == CS_IDLE)
        http_conn_timer(c, c->srv->lim.idle_timeout);
    http_conn_flush(c);
    ev_io_start(c->srv->loop, &c->wio);
    http_ex_free(ex);
}

static bool status_ok(int status)
{
    return status >= 200 && status <= 599;
}

int http_respond(struct http_exchange *ex, int status, const struct c9_hdr *hdrs, size_t n,
                 const void *body, size_t len)
{
    static const char oops[] = "handler error\n";
    int ret = 0;

    if (!ex->conn) {
        http_ex_free(ex);
        return -ECONNRESET;
    }
    if (ex->head_sent) {
        finish(ex, false);
        return -EINVAL;
    }
    if (!status_ok(status)) {
        status = 500, hdrs = NULL, n = 0, body = oops, len = sizeof(oops) - 1;
        ret = -EINVAL;
    }
    write_head(ex, status, hdrs, n, (int64_t)len);
    if (!ex->no_body)
        http_out_add(ex->conn, body, len);
    finish(ex, ex->keep);
    return ret;
}

int http_respond_start(struct http_exchange *ex, int status, const struct c9_hdr *hdrs, size_t n,
                       int64_t content_length)
{
    if (!ex->conn)
        return -ECONNRESET;
    if (ex->head_sent || !status_ok(status) || content_length < -1)
        return -EINVAL;
    write_head(ex, status, hdrs, n, content_length);
    http_conn_flush(ex->conn);
    ev_io_start(ex->conn->srv->loop, &ex->conn->wio);
    return 0;
}

int http_respond_write(struct http_exchange *ex, const void *data, size_t len)
{
    struct http_conn *c = ex->conn;
    char sz[24];
    int k;

    if (!c)
        return -ECONNRESET;
    if (!ex->head_sent)
        return -EINVAL;
    if (ex->remaining >= 0 && (uint64_t)len > (uint64_t)ex->remaining)
        return -EINVAL;
    if (ex->remaining >= 0)
        ex->remaining -= (int64_t)len;
    if (ex->no_body || len == 0)
        return 0;
    if (ex->chunked) {
        k = snprintf(sz, sizeof(sz), "%zx\r\n", len);
        http_out_add(c, sz, (size_t)k);
    }
    http_out_add(c, data, len);
    if (ex->chunked)
        http_out_add(c, "\r\n", 2);
    http_conn_flush(c);
    ev_io_start(c->srv->loop, &c->wio);
    if (http_out_pending(c) > c->srv->lim.max_output) {
        ex->drain_wanted = true;
        return 1;
    }
    return 0;
}

int http_respond_end(struct http_exchange *ex)
{
    if (!ex->conn) {
        http_ex_free(ex);
        return -ECONNRESET;
    }
    if (!ex->head_sent) {
        http_exchange_done(ex);
        return -EINVAL;
    }
    if (ex->remaining > 0 && !ex->no_body) { /* the framing is broken: close */
        finish(ex, false);
        return -EIO;
    }
    if (ex->chunked && !ex->no_body)
        http_out_add(ex->conn, "0\r\n\r\n", 5);
    finish(ex, ex->keep);
    return 0;
}

int http_exchange_done(struct http_exchange *ex)
{
    static const char msg[] = "no response from handler\n";

    if (!ex->conn)
        http_ex_free(ex);
    else if (!ex->head_sent)
        http_respond(ex, 500, NULL, 0, msg, sizeof(msg) - 1);
    else
        finish(ex, false);
    return 0;
}
