/* origin_int.h - what the files of fulcrum-cache's origin client share
 * (origin.h is the public contract). Not for use outside origin*.c.
 *
 * The files:
 *   origin.c        the origin, its idle pool, request building, the API
 *   origin_io.c     a fetch on its socket: connect, send, receive, retry,
 *                   timeouts, the end of a fetch
 *   origin_parse.c  the response, parsed with libhttp-parser into a header
 *                   arena and a body, every byte capped
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
 * - Streaming (origin.h) switches inside the parser's callbacks: at
 *   on_headers_complete for a Content-Length over max_body, or in on_body
 *   when the next piece would pass it. From then on body bytes go to
 *   ops->body straight from the read buffer; nothing is kept. A pause is
 *   honoured after the current read buffer is parsed (so at most one more
 *   ORIGIN_READ_CHUNK reaches the consumer): the read watcher and the
 *   response timer stop until origin_fetch_resume(). ORIGIN_STOP fails the
 *   parser callback with perr -ECANCELED, and the fetch is then cancelled.
 *
 * Thread: the loop's, as in origin.h.
 */
#ifndef FULCRUM_CACHE_ORIGIN_INT_H
#define FULCRUM_CACHE_ORIGIN_INT_H

#include <ev.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "origin.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define ORIGIN_READ_CHUNK ORIGIN_STREAM_READ

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
    const struct origin_stream_ops *ops; /* NULL: no streaming */
    bool streaming;                      /* the body goes to ops->body */
    bool paused;                         /* ORIGIN_PAUSE: not reading */
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

/* ---- origin.c ---- */

/* Parks a connected socket with nothing pending in the idle pool (or
 * closes it when the pool is full). */
void origin_idle_put(struct origin *o, int fd);
/* Takes the most recently used idle socket, or returns -1. */
int origin_idle_take(struct origin *o);
/* Removes f from o->active. */
void origin_fetch_unlink(struct origin_fetch *f);
/* Frees f's memory (not its socket or watchers). */
void origin_fetch_free(struct origin_fetch *f);

/* ---- origin_io.c ---- */

/* Sets up f's watchers and starts it on an idle socket or a new one. */
void origin_io_begin(struct origin_fetch *f);
/* Stops f's watchers. */
void origin_io_stop(struct origin_fetch *f);

/* ---- origin_parse.c ---- */

/* Readies f's parser for a (new) response. */
void origin_parse_reset(struct origin_fetch *f);
/* Feeds n bytes (n == 0: EOF) to f's parser; returns the bytes used. The
 * outcome is in f->complete, f->perr and HTTP_PARSER_ERRNO(&f->p). */
size_t origin_parse_execute(struct origin_fetch *f, const char *buf, size_t n);
/* The header lines of the complete response, as views into f's arena; a
 * new array the caller frees (at least one element). */
struct c9_hdr *origin_parse_headers(const struct origin_fetch *f);

#endif
