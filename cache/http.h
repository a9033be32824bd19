/* http.h - the HTTP/1.1 server side of fulcrum-cache: accepts connections,
 * parses requests with libhttp-parser (keep-alive, pipelining, chunked and
 * Content-Length bodies, HTTP/1.0 and 1.1), enforces the limits of struct
 * http_limits, hands each complete request to one callback as a struct
 * http_exchange, and writes the response the handler gives, whole or
 * streamed. Limits, status codes and the design are in docs/cache-http.md.
 *
 * Thread: a server and all its exchanges belong to the thread running the
 * loop given to http_server_new(); every function here must be called on
 * that thread.
 *
 * ---- Exchange ownership (read this before writing a handler) -------------
 *
 * The request callback receives an exchange `ex`. From that moment the
 * handler holds it, and it stays valid (request accessors included) until
 * the handler RELEASES it by calling exactly one of:
 *
 *     http_respond()          a complete response
 *     http_respond_end()      the end of a streamed response
 *     http_exchange_done()    "I am finished with it" (see below)
 *
 * whatever these return. After the release call `ex` is freed: the handler
 * must not use it again, and must not call a release function twice.
 * http_respond_start(), http_respond_write() and the accessors never
 * release. The handler may release inside the callback (a synchronous
 * answer) or later from any callback of the same loop (an asynchronous
 * one). A handler that never releases an exchange leaks it and stalls its
 * connection (pipelined requests behind it wait).
 *
 * Aborts. When the client goes away (EOF, reset, write error, or a write
 * stalled for idle_timeout) while the handler holds the exchange, or when
 * http_server_free() runs, the exchange is DETACHED: it is marked aborted,
 * its connection is closed, and the abort callback (if set) is called once.
 * A detached exchange is still owned by the handler and its request
 * accessors still work; respond calls on it send nothing and return
 * -ECONNRESET, and the handler still releases it exactly once (the abort
 * callback itself may do so, e.g. by calling http_exchange_done()). So the
 * memory of an exchange is freed in exactly one place: the release call.
 *
 * Callbacks (request, abort, drain) are only called from the loop, never
 * from inside a respond function: a handler calling http_respond() is never
 * re-entered.
 */
#ifndef FULCRUM_CACHE_HTTP_H
#define FULCRUM_CACHE_HTTP_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rfc9111.h"

/* What a peer may send or hold. Every field must be > 0 (http_server_new
 * refuses zeros). */
struct http_limits {
    size_t max_url;          /* request target bytes (8 KiB); more: 414 */
    size_t max_header_bytes; /* request head: URL, names, values (16 KiB); more: 431 */
    size_t max_headers;      /* header lines (100); more: 431 */
    size_t max_body;         /* buffered request body (1 MiB); more: 413 */
    size_t max_output;       /* response bytes queued before backpressure (256 KiB) */
    double idle_timeout;     /* keep-alive idle, body or write stall, s (30) */
    double request_timeout;  /* whole head from its first byte, s (10); then 408 */
    unsigned max_conns;      /* open connections (10000); more are accepted and closed */
};

/* Fills *lim with the defaults above. */
void http_limits_default(struct http_limits *lim);

/* responses[] is indexed by status class: [2] counts 2xx, ... [5] 5xx
 * (error answers made by the server itself are counted there as well). */
struct http_counters {
    uint64_t conns_accepted; /* connections accepted (refused ones excluded) */
    uint64_t conns_open;     /* connections open now */
    uint64_t requests;       /* complete requests handed to the callback */
    uint64_t responses[6];
    uint64_t aborted; /* exchanges detached by a client going away */
    /* errors by reason */
    uint64_t bad_request;       /* 400 (parse error, missing Host, ...) and 417 */
    uint64_t url_too_long;      /* 414 */
    uint64_t headers_too_large; /* 431 */
    uint64_t body_too_large;    /* 413 */
    uint64_t timeout;           /* 408, and write stalls */
    uint64_t too_many_conns;    /* accepted over max_conns and closed */
    uint64_t late_io; /* timers that found the socket ready: a late loop, not a silent client */
};

/* The request methods the cache tells apart; the rest are HTTP_REQ_OTHER
 * (http_exchange_method() still gives their name). */
enum http_req_method {
    HTTP_REQ_GET,
    HTTP_REQ_HEAD,
    HTTP_REQ_POST,
    HTTP_REQ_PUT,
    HTTP_REQ_DELETE,
    HTTP_REQ_OPTIONS,
    HTTP_REQ_PURGE,
    HTTP_REQ_OTHER,
    HTTP_REQ_MAX
};

struct http_server;
struct http_exchange;

/* Called once per complete request, on the loop thread. */
typedef void (*http_request_cb)(struct http_exchange *ex, void *arg);
/* Called once when a held exchange is detached (see the header comment). */
typedef void (*http_abort_cb)(struct http_exchange *ex, void *arg);
/* Called once when output queued over max_output has drained below half of
 * it (see http_respond_write). */
typedef void (*http_drain_cb)(struct http_exchange *ex, void *arg);

/* Listens on addr (port 0: the kernel chooses; see http_server_port) and
 * serves on loop. lim NULL means the defaults; it is copied. Returns NULL
 * with err filled when the socket cannot be made or lim is invalid. */
struct http_server *http_server_new(struct ev_loop *loop, const struct sockaddr_in *addr,
                                    const struct http_limits *lim, http_request_cb cb, void *arg,
                                    char *err, size_t errlen);
/* The bound port in host order. */
unsigned http_server_port(const struct http_server *s);
const struct http_counters *http_server_counters(const struct http_server *s);
/* Closes the listener and every connection; held exchanges are detached
 * (their abort callbacks run) and remain the handlers' to release. NULL is a
 * no-op. Must not be called from inside a server callback. */
void http_server_free(struct http_server *s);

/* ---- the request (valid until release) ---------------------------------- */

enum http_req_method http_exchange_method_id(const struct http_exchange *ex);
const char *http_exchange_method(const struct http_exchange *ex); /* "GET", ... */
const char *http_exchange_url(const struct http_exchange *ex);    /* as received */
const char *http_exchange_path(const struct http_exchange *ex);   /* "/a/b" ("*" for OPTIONS *) */
const char *http_exchange_query(const struct http_exchange *ex);  /* after '?', "" if none */
/* The host of an absolute-form target, else the Host field ("" when an
 * HTTP/1.0 request has none). Lowercased; the port, if any, is kept. */
const char *http_exchange_host(const struct http_exchange *ex);
/* The request's header lines in order (names and values also NUL-terminated). */
const struct c9_hdr *http_exchange_headers(const struct http_exchange *ex, size_t *n);
/* The request body (chunked ones reassembled); len 0 when none. */
const void *http_exchange_body(const struct http_exchange *ex, size_t *len);
/* Whether the connection stays open after this response (HTTP/1.1 without
 * Connection: close, or 1.0 with Connection: keep-alive). */
bool http_exchange_keep_alive(const struct http_exchange *ex);
/* 10 for HTTP/1.0, 11 for 1.1. */
int http_exchange_version(const struct http_exchange *ex);
const struct sockaddr_in *http_exchange_peer(const struct http_exchange *ex);
/* True once detached: nothing more will reach the client. */
bool http_exchange_aborted(const struct http_exchange *ex);

/* Replaces the abort callback (cb NULL: none). */
void http_exchange_set_abort_cb(struct http_exchange *ex, http_abort_cb cb, void *arg);
/* Replaces the drain callback (cb NULL: none). */
void http_exchange_set_drain_cb(struct http_exchange *ex, http_drain_cb cb, void *arg);
/* Response bytes queued for this connection and not yet written (0 when
 * detached). */
size_t http_exchange_pending(const struct http_exchange *ex);

/* ---- the response ---------------------------------------------------------
 * hdrs are the handler's header lines (may be NULL when n == 0); the server
 * drops any Content-Length, Transfer-Encoding, Connection and Keep-Alive
 * among them and any line containing CR or LF, and writes its own framing:
 * Content-Length (or chunked), Date if absent, Connection: close when the
 * connection will close. 1xx, 204 and 304 responses carry no body; a HEAD
 * request gets the headers of the GET answer and no body. status must be in
 * 200..599 (else a 500 is sent and -EINVAL returned). */

/* RELEASES ex. Queues the whole response (the body is copied). Returns 0,
 * -ECONNRESET if detached, -EINVAL for misuse (after http_respond_start). */
int http_respond(struct http_exchange *ex, int status, const struct c9_hdr *hdrs, size_t n,
                 const void *body, size_t len);

/* Starts a streamed response. content_length >= 0: exactly that many bytes
 * will follow; -1: chunked for HTTP/1.1, close-delimited for HTTP/1.0.
 * Does not release ex. Returns 0, -ECONNRESET if detached, -EINVAL if a
 * response was already started or the status is invalid. */
int http_respond_start(struct http_exchange *ex, int status, const struct c9_hdr *hdrs, size_t n,
                       int64_t content_length);

/* Queues len body bytes (always all of them: the data is copied). Returns 0
 * when the connection's queued output is at most lim.max_output, 1 when it
 * is over: the caller should stop writing (stop reading its origin) until
 * the drain callback runs; writing more is allowed but costs memory.
 * -ECONNRESET if detached, -EINVAL before http_respond_start or beyond the
 * announced content length (nothing is queued then). */
int http_respond_write(struct http_exchange *ex, const void *data, size_t len);

/* RELEASES ex. Finishes a streamed response. Returns 0; -ECONNRESET if
 * detached; -EIO if fewer bytes than the announced length were written (the
 * connection is closed, so the client sees a truncated message; not for
 * HEAD or a bodiless status, which write no body); -EINVAL
 * without http_respond_start (a 500 is sent). */
int http_respond_end(struct http_exchange *ex);

/* RELEASES ex. Without any response started, sends 500; in the middle of a
 * streamed response, closes the connection (the client sees a truncated
 * message); on a detached exchange, only frees it. Returns 0. */
int http_exchange_done(struct http_exchange *ex);

#endif
