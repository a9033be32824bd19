/* cache_fixture.h - what the fulcrum-cache integration tests share: a
 * counting origin (threads of the test process) and the real fulcrum-cache
 * started on a kernel-chosen port, awaited on its "ready" line.
 *
 * The origin answers by path:
 *   /nostore*  Cache-Control: no-store
 *   /slow*     waits 500 ms first (so concurrent misses overlap)
 *   /hold*     waits until `release` is set (at most 60 s), then answers
 *   /swr*      max-age=2, stale-while-revalidate=30
 *   /reval*    max-age=1; If-None-Match: "e1" answers 304
 *   /sie*      max-age=1, stale-if-error=60
 *   else       max-age=60
 * always with ETag: "e1" and Connection: close, except for the large
 * bodies (ETag: "big1", max-age=60), by what the path contains:
 *   large-cl        LARGE_SIZE bytes of large_fill() with Content-Length
 *   large-chunked   the same, chunked (64 KiB chunks)
 *   large-cut       Content-Length: LARGE_SIZE, then closes after LARGE_CUT
 *   large-cutchunk  chunked, closes after LARGE_CUT without the last chunk
 * (a path starting /slow waits first here too). The body is
 * "body:<method> <path>", followed by " len=<n> sha256=<hex>" when the
 * request had a body (by Content-Length: the body it read, hashed). While `fail` is
 * set every request is counted and then failed: 500 answers 500, 2 waits
 * 1 s and then answers 500, -1 closes the connection without an answer.
 */
#ifndef FULCRUM_TEST_CACHE_FIXTURE_H
#define FULCRUM_TEST_CACHE_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

#define CACHE_BIN  FULCRUM_BINARY_DIR "/cache/fulcrum-cache"
#define WAIT_MS    30000 /* hang guards: an ASan build on a loaded 2-core box */
#define SHA256_HEX 65    /* 64 hex digits and a NUL */
#define LARGE_SIZE (20u << 20)
#define LARGE_CUT  (5u << 20)

struct origin {
    int lfd;
    unsigned port;
    atomic_int requests;
    atomic_int conditional;  /* requests with If-None-Match: "e1" answered 304 */
    atomic_int fail;         /* 0; 500: answer 500; 2: 1 s, then 500; -1: close */
    atomic_llong large_sent; /* large body bytes written, all connections */
    atomic_int large_done;   /* large bodies written whole (or to LARGE_CUT) */
    atomic_int large_broken; /* large bodies whose peer (the cache) closed first */
    atomic_int answered;     /* requests answered (the answer written, or failed) */
    atomic_bool release;     /* lets /hold* requests answer */
    pthread_t thr;
};

/* The large bodies' bytes [off, off + len) into buf: a fixed function of
 * the position, so any piece can be made alone. */
void large_fill(char *buf, size_t off, size_t len);
/* The SHA-256 of the whole large body (LARGE_SIZE bytes), as hex. */
void large_sha256(char *out);

/* Listens on 127.0.0.1:0 and serves from a detached thread. */
void origin_start(struct origin *o);

struct cache {
    struct h_proc p;
    unsigned port;
};

/* Starts fulcrum-cache --name t1 with --origin (origin_port != 0) or
 * --docroot dir, plus the NULL-terminated flags in extra (may be NULL), and
 * waits for its ready line. */
void cache_start_argv(struct cache *c, unsigned origin_port, const char *docroot,
                      const char *const *extra);
/* The same with one extra flag and its value (both may be NULL). */
void cache_start_args(struct cache *c, unsigned origin_port, const char *docroot,
                      const char *extra1, const char *extra2);
void cache_start(struct cache *c, unsigned origin_port, const char *docroot);
/* SIGTERM; it must exit 0 (under ASan: no leak either). */
void cache_stop(struct cache *c);

/* Sends a raw request (Connection: close expected in it) and then body
 * [0..blen); returns the status, the response in buf (NUL-terminated). */
int raw_http_body(unsigned port, const char *req, const void *body, size_t blen, char *buf,
                  size_t cap);
int raw_http(unsigned port, const char *req, char *buf, size_t cap);
/* The value of header `name` in a response (a copy per thread), or NULL. */
const char *hdr(const char *resp, const char *name);
const char *body_of(const char *resp);
/* The SHA-256 of data as hex into out[SHA256_HEX]. */
void sha256_hex(const void *data, size_t len, char *out);
/* Stretches fd's receive timeout (be_connect's 10 s) to a hang guard for
 * a large body through an ASan build on a loaded box. */
void big_guard(int fd);
/* A /_fulcrum/stats counter of the cache on port, or -1. */
long long stat_of(unsigned port, const char *name);

#endif
