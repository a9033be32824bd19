/* origin.h - the HTTP/1.1 client fulcrum-cache uses to fetch from its
 * origin: one origin (an "http://HOST:PORT" URL, IPv4), requests with or
 * without a body (a body is sent whole, with Content-Length), responses
 * parsed with libhttp-parser (Content-Length, chunked and close-delimited
 * bodies; HEAD, 1xx, 204 and 304 handled), idle keep-alive connections
 * reused, every byte the origin controls capped.
 *
 * Thread: an origin and its fetches belong to the thread running the loop
 * given to origin_new(); every function must be called on that thread.
 *
 * Callbacks: the done callback of a fetch is called exactly once, from the
 * loop (never from inside origin_fetch()), unless the fetch is cancelled
 * with origin_fetch_cancel() or the origin freed first, in which case it is
 * never called. After the callback returns the fetch is freed: do not
 * cancel it. The callback may start new fetches and may call origin_free().
 *
 * Retries: a fetch sent on a reused keep-alive connection that is closed or
 * reset before any response byte arrives (the origin timed the idle
 * connection out) is retried once on a fresh connection. Only idempotent
 * methods (RFC 9110 §9.2.2) are sent on reused connections at all; the
 * others (POST, PATCH, ...) always get a fresh one, so they are never sent
 * twice and never lost to that race.
 *
 * Streaming: a fetch given stream ops (origin_request.stream) whose body
 * turns out larger than max_body does not fail with -E2BIG. Once the head
 * announces a larger Content-Length, or the body received passes max_body
 * (chunked or close-delimited), ops->head gets the head and the bytes held
 * so far, and every later piece goes to ops->body as it is read: the fetch
 * never holds more than max_body plus one read (ORIGIN_STREAM_READ bytes).
 * The callbacks steer the reading (enum origin_flow); the done callback
 * still ends the fetch exactly once: error 0 when the body ended as its
 * framing says, else the error that cut it short. The connection goes back
 * to the idle pool only after a clean end.
 */
#ifndef FULCRUM_CACHE_ORIGIN_H
#define FULCRUM_CACHE_ORIGIN_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rfc9111.h"

struct origin;
struct origin_fetch;

/* Every field must be > 0 (origin_new refuses zeros). */
struct origin_limits {
    double connect_timeout;  /* s (2) */
    double response_timeout; /* s of silence while a response is due (10) */
    size_t max_head;         /* response header names + values, bytes (32 KiB) */
    size_t max_headers;      /* response header lines (100) */
    size_t max_body;         /* response body bytes: the cache's max object (8 MiB) */
    unsigned max_idle;       /* idle keep-alive connections kept (8) */
};

/* Fills *lim with the defaults above. */
void origin_limits_default(struct origin_limits *lim);

/* What a fetch produced. Everything it points to is owned by the fetch and
 * valid only during the done callback: copy what you keep.
 * error is 0 or one of
 *   -ETIMEDOUT     connect or response timeout
 *   -ECONNREFUSED  the origin refused the connection
 *   -E2BIG         the body exceeds max_body (the caller may pass through)
 *   -EPROTO        a malformed response, or a head over max_head/max_headers
 *   -ECONNRESET    the connection closed or failed before the response ended
 *   other -errno   socket errors (-ENETUNREACH, ...)
 * and when error != 0 only request_time is meaningful. */
struct origin_result {
    int error;
    int status; /* final status (1xx skipped) */
    const struct c9_hdr *hdrs;
    size_t nhdrs;
    const char *body; /* NULL when body_len == 0 */
    size_t body_len;
    int64_t request_time;  /* wall s when the request went out */
    int64_t response_time; /* wall s when the response head arrived */
    /* streaming only: in ops->head, the announced Content-Length or -1
     * (chunked, close-delimited); in done, streamed says the body went to
     * ops->body (body is NULL then) */
    int64_t content_length;
    bool streamed;
};

typedef void (*origin_done_cb)(void *arg, const struct origin_result *res);

/* What a stream callback wants next. */
enum origin_flow {
    ORIGIN_GO,    /* go on reading */
    ORIGIN_PAUSE, /* read nothing more from the socket until origin_fetch_resume();
                   * the response timeout is suspended meanwhile. Bytes already
                   * read (at most ORIGIN_STREAM_READ) still reach ops->body, and
                   * the response may still end (done) */
    ORIGIN_STOP,  /* end the fetch as origin_fetch_cancel() does: the connection
                   * is closed, done is never called, the fetch is freed when the
                   * callback returns */
    ORIGIN_FLOW_MAX
};

/* Stream callbacks (see "Streaming" above). Both run from the loop, inside
 * the fetch's read: they may start and cancel other fetches, but must not
 * cancel this one (return ORIGIN_STOP) nor free the origin. */
struct origin_stream_ops {
    /* The body will not fit in max_body: res holds the status, the header
     * lines, content_length, the times, and the body bytes received so far
     * (body/body_len, at most max_body; valid during the call only). */
    enum origin_flow (*head)(void *arg, const struct origin_result *res);
    /* The next len bytes of the body (valid during the call only). */
    enum origin_flow (*body)(void *arg, const char *data, size_t len);
};

#define ORIGIN_STREAM_READ 16384 /* bytes read from the socket at a time */

struct origin_counters {
    uint64_t fetches;   /* fetches accepted by origin_fetch() */
    uint64_t responses; /* fetches completed with a response */
    uint64_t cancelled; /* fetches cancelled (or freed with the origin) */
    /* failed fetches, by error */
    uint64_t err_timeout;
    uint64_t err_refused;
    uint64_t err_too_big;
    uint64_t err_proto;
    uint64_t err_reset;
    uint64_t err_other;
    uint64_t conns_new;    /* connections opened */
    uint64_t conns_reused; /* fetches sent on an idle keep-alive connection */
    uint64_t retries;      /* stale keep-alive retries */
    uint64_t late_io;  /* timers that found the socket ready: a late loop, not a silent origin */
    uint64_t streamed; /* fetches whose body went to ops->body */
};

/* url is "http://HOST:PORT" (HOST: dotted IPv4 or a name resolved now, to
 * IPv4; an optional trailing "/" is accepted). *lim is copied. Returns NULL
 * with err filled when the URL or a limit is invalid. */
struct origin *origin_new(struct ev_loop *loop, const char *url, const struct origin_limits *lim,
                          char *err, size_t errlen);

/* Cancels every fetch (no callback), closes every connection, frees o.
 * origin_free(NULL) is a no-op. */
void origin_free(struct origin *o);

/* Starts `method path_and_query` with the caller's header lines (copied;
 * Host is added from the URL unless given; a given Connection or
 * Keep-Alive line is replaced by "Connection: keep-alive"). method must be
 * a token, path_and_query start with "/" and hold no whitespace or control
 * bytes, names be tokens and values hold no CR, LF or NUL: else -EINVAL
 * and nothing starts. Returns 0, and *out (when out is not NULL) gets a
 * handle valid until the callback runs or the fetch is cancelled. */
int origin_fetch(struct origin *o, const char *method, const char *path_and_query,
                 const struct c9_hdr *hdrs, size_t n, origin_done_cb cb, void *arg,
                 struct origin_fetch **out);

/* A request for origin_fetch_req(). Everything is copied by the call. */
struct origin_request {
    const char *method;         /* a token: "POST", ... */
    const char *path_and_query; /* "/...", as for origin_fetch() */
    const struct c9_hdr *hdrs;  /* the caller's lines, as for origin_fetch() */
    size_t n;
    /* NULL: no body, and the caller's lines go out as they are. Else
     * body[0..body_len) follows the head with "Content-Length: body_len"
     * (also when body_len is 0), and any Content-Length or
     * Transfer-Encoding line among hdrs is dropped. The caller caps
     * body_len (fulcrum-cache: --max-request-body). */
    const void *body;
    size_t body_len;
    /* NULL: a body over max_body fails the fetch with -E2BIG. Else the
     * fetch streams such a body through these (static) callbacks. */
    const struct origin_stream_ops *stream;
};

/* origin_fetch() for a struct origin_request: the same checks, results,
 * retries (idempotent methods only: a POST is never sent twice) and
 * callback contract. */
int origin_fetch_req(struct origin *o, const struct origin_request *rq, origin_done_cb cb,
                     void *arg, struct origin_fetch **out);

/* Cancels a fetch whose callback has not run: the callback is never called
 * and its connection is closed. Not from inside its own stream callbacks
 * (they return ORIGIN_STOP instead). */
void origin_fetch_cancel(struct origin_fetch *f);

/* Reading resumes after an ORIGIN_PAUSE (a no-op when not paused). Never
 * calls a callback itself: the bytes come from the loop. */
void origin_fetch_resume(struct origin_fetch *f);

/* Hands a streaming fetch over: from now on its stream callbacks are ops
 * (static), its done callback cb, with arg. May be called from inside its
 * head callback (the new ops->body gets the rest) or later, before done. */
void origin_fetch_retarget(struct origin_fetch *f, const struct origin_stream_ops *ops,
                           origin_done_cb cb, void *arg);

/* A copy of the counters. */
void origin_get_counters(const struct origin *o, struct origin_counters *out);

#endif
