/* origin_io.c - one origin fetch on its socket: connect (or an idle
 * socket), send the request, read and parse the response (pausing and
 * resuming a stream), retry a stale keep-alive connection once, time out,
 * and finish: the socket back to the pool or closed, the callback, the
 * memory freed (design notes in origin_int.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"
#include "origin_int.h"

void origin_io_stop(struct origin_fetch *f)
{
    ev_io_stop(f->o->loop, &f->io);
    ev_timer_stop(f->o->loop, &f->tm);
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
    struct origin_result res = {
        .error = err, .request_time = f->request_time, .streamed = f->streaming};
    struct c9_hdr *h = NULL;

    origin_io_stop(f);
    origin_fetch_unlink(f);
    if (f->fd != -1) {
        if (err == 0 && keep_alive)
            origin_idle_put(o, f->fd);
        else
            close(f->fd);
        f->fd = -1;
    }
    if (err == 0) {
        o->ctr.responses++;
        h = origin_parse_headers(f);
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
    origin_fetch_free(f);
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
        origin_io_stop(f);
        close(f->fd);
        f->fd = -1;
        f->retried = true;
        f->o->ctr.retries++;
        origin_parse_reset(f);
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
    size_t used = origin_parse_execute(f, buf, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&f->p);

    if (f->complete) {
        /* Bytes past the response, or a close, rule out reuse. */
        bool ka = n > 0 && used == n && http_should_keep_alive(&f->p);

        fetch_finish(f, 0, ka);
        return true;
    }
    if (e != HPE_OK && f->perr == -ECANCELED) {
        origin_fetch_cancel(f); /* ORIGIN_STOP from a stream callback */
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
        if (f->paused) { /* the consumer's queue is full: the origin waits */
            origin_io_stop(f);
            return;
        }
    }
}

void origin_fetch_resume(struct origin_fetch *f)
{
    if (!f->paused)
        return;
    f->paused = false;
    ev_io_start(f->o->loop, &f->io);
    ev_timer_again(f->o->loop, &f->tm);
}

/* The socket is ready for what f waits on (connected, writable or
 * readable): the I/O it would do from the loop. */
static void fetch_io(struct origin_fetch *f)
{
    int r;

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

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    fetch_io(container_of(w, struct origin_fetch, io));
}

/* Whether f's socket has, right now, what f's I/O watcher waits for. */
static bool fetch_ready(const struct origin_fetch *f)
{
    struct pollfd p = {.fd = f->fd, .events = f->state == FS_RECEIVING ? POLLIN : POLLOUT};

    return f->fd != -1 && ev_is_active(&f->io) && poll(&p, 1, 0) == 1;
}

/* A loop that was itself late (a long iteration, a starved or stopped
 * process) runs an expired timer before the I/O callbacks of the same
 * iteration (libev invokes the last queued first): the origin is called
 * silent only when its socket has nothing for the fetch. Otherwise the I/O
 * is done here, which restarts the timer (or ends the fetch). */
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct origin_fetch *f = container_of(w, struct origin_fetch, tm);

    (void)loop;
    (void)revents;
    if (f->deferred != 0) {
        fetch_finish(f, f->deferred, false);
        return;
    }
    if (fetch_ready(f)) {
        f->o->ctr.late_io++;
        fetch_io(f);
        return;
    }
    fetch_finish(f, -ETIMEDOUT, false);
}

void origin_io_begin(struct origin_fetch *f)
{
    struct origin *o = f->o;
    /* a request that may not be sent twice never risks a stale socket */
    int fd = f->idempotent ? origin_idle_take(o) : -1;

    ev_init(&f->io, io_cb);
    ev_init(&f->tm, timer_cb);
    if (fd != -1) {
        o->ctr.conns_reused++;
        f->fd = fd;
        f->reused = true;
        ev_io_set(&f->io, fd, EV_WRITE);
        fetch_send_start(f);
    } else {
        fetch_connect(f);
    }
}
