/* cache_stream.c - fulcrum-cache's file answers: a docroot file larger
 * than --max-object is never read whole. Its descriptor (docroot.h hands
 * it back with -E2BIG) is read in CACHE_STREAM_CHUNK pieces with pread and
 * written to the client as they come (X-Cache: PASS, never stored).
 *
 * Design notes.
 * - Backpressure: http_respond_write() says 1 once more than the server's
 *   max_output is queued for the connection; the stream then waits for the
 *   drain callback. Memory per stream is one chunk plus that queue.
 * - Fairness: a fast client never blocks the loop for a whole file: after
 *   CACHE_STREAM_BURST bytes the stream yields (a 0 s timer) and goes on at
 *   the next loop iteration. pread on a regular file blocks only as long as
 *   the disk does (the page cache, mostly).
 * - Each stream owns its descriptor (a dup of the flight's) and its own
 *   offset, so waiters coalesced on one flight stream independently.
 * - A HEAD gets the GET's head: the same Content-Length, nothing read.
 * - A file that shrinks while it is sent ends the answer short: the server
 *   closes the connection, so the client sees a truncated message.
 * - Ownership: a stream is freed when its answer ends or its exchange is
 *   aborted (which http_server_free() does to every held exchange), and by
 *   cache_streams_free() for any left.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_int.h"
#include "log.h"
#include "xalloc.h"

#define CACHE_STREAM_CHUNK (64 * 1024)
#define CACHE_STREAM_BURST (1024 * 1024) /* bytes per loop iteration */

struct cache_stream {
    struct cache *c;
    struct http_exchange *ex;
    int fd;
    bool head;     /* HEAD: count the bytes, read none */
    uint64_t off;  /* next byte of the file to send */
    uint64_t size; /* Content-Length announced */
    ev_timer resume;
    struct cache_stream *prev, *next; /* in c->streams */
    char buf[CACHE_STREAM_CHUNK];
};

static void cache_stream_free(struct cache_stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ev_timer_stop(s->c->loop, &s->resume);
    close(s->fd);
    free(s);
}

/* The answer is over: complete (ok) or cut short. RELEASES s->ex. */
static void cache_stream_end(struct cache_stream *s, bool ok)
{
    struct http_exchange *ex = s->ex;

    http_exchange_set_abort_cb(ex, NULL, NULL);
    http_exchange_set_drain_cb(ex, NULL, NULL);
    cache_stream_free(s);
    if (ok)
        http_respond_end(ex);
    else
        http_exchange_done(ex); /* closes: the client sees a short message */
}

/* The next piece into *data: read from the file, or zeros for a HEAD.
 * Returns its length, 0 when the file ended early, or -errno. */
static ssize_t cache_stream_read(struct cache_stream *s, const char **data)
{
    static const char zeros[CACHE_STREAM_CHUNK];
    size_t want = s->size - s->off < sizeof(s->buf) ? (size_t)(s->size - s->off) : sizeof(s->buf);
    ssize_t n;

    if (s->head) {
        *data = zeros;
        return (ssize_t)want;
    }
    do
        n = pread(s->fd, s->buf, want, (off_t)s->off);
    while (n == -1 && errno == EINTR);
    *data = s->buf;
    return n == -1 ? -errno : n;
}

/* Writes pieces until the file is sent, the connection's queue is full, or
 * the burst is spent. */
static void cache_stream_pump(struct cache_stream *s)
{
    size_t burst = 0;

    while (s->off < s->size) {
        const char *data;
        ssize_t n = cache_stream_read(s, &data);
        int r;

        if (n <= 0) {
            s->c->ctr.stream_errors++;
            log_warn("docroot file for %s ended at byte %llu of %llu: %s",
                     http_exchange_path(s->ex), (unsigned long long)s->off,
                     (unsigned long long)s->size, n ? strerror((int)-n) : "file shrank");
            cache_stream_end(s, false);
            return;
        }
        r = http_respond_write(s->ex, data, (size_t)n);
        if (r < 0) { /* detached: the abort callback is on its way or ran */
            cache_stream_end(s, false);
            return;
        }
        s->off += (uint64_t)n;
        burst += (size_t)n;
        if (r == 1 && s->off < s->size)
            return; /* the drain callback goes on */
        if (burst >= CACHE_STREAM_BURST && s->off < s->size) {
            ev_timer_set(&s->resume, 0., 0.);
            ev_timer_start(s->c->loop, &s->resume);
            return;
        }
    }
    cache_stream_end(s, true);
}

static void cache_stream_drain(struct http_exchange *ex, void *arg)
{
    (void)ex;
    cache_stream_pump(arg);
}

static void cache_stream_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    cache_stream_pump(container_of(w, struct cache_stream, resume));
}

static void cache_stream_abort(struct http_exchange *ex, void *arg)
{
    struct cache_stream *s = arg;

    s->c->ctr.stream_errors++;
    cache_stream_free(s);
    http_exchange_done(ex);
}

void cache_stream_file(struct cache *c, struct http_exchange *ex, int fd, uint64_t size,
                       const struct c9_hdr *h, size_t n)
{
    struct cache_stream *s;
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

    if (dfd == -1) {
        log_warn("cannot stream %s: %s", http_exchange_path(ex), strerror(errno));
        c->ctr.stream_errors++;
        cache_send_text(c, ex, 503, "text/plain", "out of file descriptors\n", "PASS");
        return;
    }
    if (cache_send_start(c, ex, 200, h, n, (int64_t)size, "PASS")) {
        close(dfd);
        http_exchange_done(ex);
        return;
    }
    s = xmalloc(sizeof(*s));
    s->c = c;
    s->ex = ex;
    s->fd = dfd;
    s->head = http_exchange_method_id(ex) == HTTP_REQ_HEAD;
    s->off = 0;
    s->size = size;
    ev_timer_init(&s->resume, cache_stream_resume, 0., 0.);
    s->prev = NULL;
    s->next = c->streams;
    if (s->next)
        s->next->prev = s;
    c->streams = s;
    c->ctr.streamed++;
    http_exchange_set_abort_cb(ex, cache_stream_abort, s);
    http_exchange_set_drain_cb(ex, cache_stream_drain, s);
    cache_stream_pump(s);
}

void cache_streams_free(struct cache *c)
{
    while (c->streams) {
        struct http_exchange *ex = c->streams->ex;

        cache_stream_free(c->streams);
        http_exchange_done(ex);
    }
}
