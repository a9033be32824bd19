/* conn.c - one client connection: choose a node, connect, relay both ways.
 *
 * Design notes.
 * State machine (enum lb_conn_state): CONNECTING while a non-blocking
 * connect to the chosen node is in flight (a failure or timeout counts
 * against that node and the next try goes to another one; a connect the
 * kernel finished inside connect(2), as to a node on this host, goes
 * straight on); RELAY once
 * connected, until both directions have ended; ABORTING when one side
 * reset: what it sent is delivered first (a source error only ends its
 * direction once the pipe or leftover is drained), the kernel is left to
 * get it acknowledged, and only then is the other side reset, so a
 * truncated stream never looks like a complete one.
 * Each direction (up: client -> node, down: node -> client) moves bytes on
 * its own: read/write through the worker's scratch buffer, keeping only a
 * short write's leftover (allocated then, freed when sent); or splice(2)
 * through a pipe taken from the pool only while bytes are in it. In auto
 * mode a direction switches to splice the first time one read fills the
 * scratch buffer: small exchanges stay on read/write, bulk goes in-kernel.
 * Backpressure: a direction with bytes its destination has not taken stops
 * reading its source, so nothing is buffered beyond one pipe or one
 * scratch-sized leftover per direction.
 * Half-close: a FIN read on one side is passed on (shutdown SHUT_WR) once
 * that direction holds no more bytes; the other direction goes on.
 * Timeouts: one timer per connection; events only stamp the side's last
 * activity, and the timer re-arms itself for the earliest deadline
 * ("be smart about timeouts", ev.pod).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "net.h"
#include "worker.h"
#include "xalloc.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define LB_PUMP_ROUNDS    16         /* moves per direction per event, for fairness */
#define LB_SPLICE_CHUNK   (1u << 20) /* bytes asked of one splice */
#define LB_AT_ONCE_MISSES 8          /* see lb_conn_connected_at_once */
#define LB_AT_ONCE_PROBE  64

enum lb_conn_state {
    LB_CONN_CONNECTING = 0, /* accepted; a connect to c->node is in flight */
    LB_CONN_RELAY,          /* connected; bytes move until both directions end */
    LB_CONN_ABORTING,       /* one side reset: the other gets what we hold, then a reset */
    LB_CONN_STATE_MAX
};

struct lb_dir {
    int from, to;        /* the connection's fds, by role */
    struct lb_pipe pipe; /* held only while bytes are in it */
    size_t in_pipe;
    char *buf; /* leftover of a short write (LB_SCRATCH bytes) or NULL */
    size_t off, len;
    bool splice;  /* this direction moves bytes with splice(2) */
    bool eof;     /* its source sent FIN, or failed (src_err) */
    bool src_err; /* its source reset: deliver what we hold, then reset the destination */
    bool shut;    /* FIN passed on to its destination */
    uint64_t bytes;
};

struct lb_conn {
    struct lb_worker *w;
    enum lb_conn_state state;
    int cfd, sfd;
    ev_io cio, sio;
    ev_timer timer;
    struct lb_node *node;
    struct lb_node *tried[LB_RETRIES_MAX + 1];
    unsigned ntried;
    struct lb_dir up, down;
    struct sockaddr_in peer;
    ev_tstamp start, last_client, last_server;
    int abort_fd; /* ABORTING: the side to reset once it has our bytes */
    enum lb_end abort_why;
    struct lb_conn *prev, *next;
};

/* What a pump found: go on, or which side failed. */
enum lb_pump { LB_PUMP_OK = 0, LB_PUMP_FROM_ERR, LB_PUMP_TO_ERR };

static void lb_conn_try(struct lb_conn *c);

static bool lb_dir_pending(const struct lb_dir *d)
{
    return d->in_pipe > 0 || d->len > 0;
}

static bool lb_dir_done(const struct lb_dir *d)
{
    return d->eof && d->shut && !lb_dir_pending(d);
}

/* ---- closing ---- */

static void lb_dir_release(struct lb_conn *c, struct lb_dir *d)
{
    if (d->in_pipe)
        lb_pipe_close(&c->w->pipes, &d->pipe);
    else
        lb_pipe_put(&c->w->pipes, &d->pipe);
    free(d->buf);
    d->buf = NULL;
}

static void lb_conn_log(const struct lb_conn *c, enum lb_end why)
{
    char caddr[NET_ADDRSTRLEN];

    log_info("conn client=%s node=%s bytes_in=%llu bytes_out=%llu duration_ms=%.1f retries=%u "
             "end=%s",
             net_ntop(&c->peer, caddr), c->node ? c->node->name : "-",
             (unsigned long long)c->up.bytes, (unsigned long long)c->down.bytes,
             (ev_now(c->w->loop) - c->start) * 1000.0, c->ntried ? c->ntried - 1 : 0,
             lb_end_name(why));
}

static void lb_conn_count(const struct lb_conn *c, enum lb_end why)
{
    struct lb_counters *ctr = &c->w->sh->ctr;

    atomic_fetch_add_explicit(&ctr->ended[why], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->bytes_in, c->up.bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->bytes_out, c->down.bytes, memory_order_relaxed);
    atomic_fetch_sub_explicit(&ctr->active, 1, memory_order_relaxed);
    if (!c->node)
        return;
    atomic_fetch_sub_explicit(&c->node->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->node->bytes_in, c->up.bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->node->bytes_out, c->down.bytes, memory_order_relaxed);
}

static void lb_conn_close(struct lb_conn *c, enum lb_end why)
{
    struct lb_worker *w = c->w;

    if (w->sh->cfg->log_conns)
        lb_conn_log(c, why);
    lb_conn_count(c, why);
    ev_io_stop(w->loop, &c->cio);
    ev_io_stop(w->loop, &c->sio);
    ev_timer_stop(w->loop, &c->timer);
    close(c->cfd);
    if (c->sfd >= 0)
        close(c->sfd);
    lb_dir_release(c, &c->up);
    lb_dir_release(c, &c->down);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    free(c);
    if (w->nconns == 0 && atomic_load_explicit(&w->stop, memory_order_relaxed))
        ev_break(w->loop, EVBREAK_ONE);
}

void lb_conn_close_all(struct lb_worker *w)
{
    while (w->conns)
        lb_conn_close(w->conns, LB_END_STOPPED);
}

/* ---- moving bytes ---- */

static enum lb_pump lb_dir_flush(struct lb_dir *d)
{
    while (d->len) {
        ssize_t n = send(d->to, d->buf + d->off, d->len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return LB_PUMP_OK; /* wait for EV_WRITE: the data is pending */
            return LB_PUMP_TO_ERR;
        }
        d->off += (size_t)n;
        d->len -= (size_t)n;
        d->bytes += (uint64_t)n;
    }
    free(d->buf);
    d->buf = NULL;
    d->off = 0;
    return LB_PUMP_OK;
}

/* read/write through the worker's scratch buffer. */
static enum lb_pump lb_dir_rw(struct lb_conn *c, struct lb_dir *d)
{
    char *scratch = c->w->scratch;
    enum lb_pump r = lb_dir_flush(d);

    for (int i = 0; r == LB_PUMP_OK && !d->len && !d->eof && i < LB_PUMP_ROUNDS; i++) {
        ssize_t n = recv(d->from, scratch, LB_SCRATCH, MSG_DONTWAIT), m;

        if (n == 0) {
            d->eof = true;
            break;
        }
        if (n == -1) {
            if (errno != EAGAIN && errno != EINTR)
                d->eof = d->src_err = true;
            break;
        }
        m = send(d->to, scratch, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (m == -1 && errno != EAGAIN && errno != EINTR)
            return LB_PUMP_TO_ERR;
        m = m < 0 ? 0 : m;
        d->bytes += (uint64_t)m;
        if (m < n) { /* keep the rest; stop reading until it is sent */
            d->buf = xmalloc((size_t)(n - m));
            d->off = 0;
            d->len = (size_t)(n - m);
            memcpy(d->buf, scratch + m, d->len);
        }
        if (n == LB_SCRATCH && c->w->sh->cfg->splice == LB_SPLICE_AUTO) {
            d->splice = true; /* bulk: the next moves go in-kernel */
            break;
        }
        /* A short read drained the socket: another recv would only say
         * EAGAIN. Level-triggered epoll wakes us for more (or the FIN). */
        if ((size_t)n < LB_SCRATCH)
            break;
    }
    return r;
}

/* splice(2): source -> pipe -> destination. */
static enum lb_pump lb_dir_splice(struct lb_conn *c, struct lb_dir *d)
{
    const unsigned fl = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

    /* Bytes read before the switch to splice go first, in order. */
    if (d->len) {
        enum lb_pump r = lb_dir_flush(d);

        if (r != LB_PUMP_OK || d->len)
            return r; /* an error, or the rest waits for EV_WRITE */
    }
    if (d->pipe.rfd < 0 && lb_pipe_get(&c->w->pipes, &d->pipe)) {
        d->splice = false; /* out of fds: read/write needs none */
        return lb_dir_rw(c, d);
    }
    for (int i = 0; i < LB_PUMP_ROUNDS; i++) {
        bool moved = false, drained = false;
        ssize_t n;

        if (!d->eof) {
            n = splice(d->from, NULL, d->pipe.wfd, NULL, LB_SPLICE_CHUNK, fl);
            if (n > 0) {
                d->in_pipe += (size_t)n;
                moved = true;
                /* Short, and clearly not because the pipe is full (it fills
                 * by slots, not bytes): the socket is drained. */
                drained = (size_t)n < LB_SPLICE_CHUNK && d->in_pipe < d->pipe.cap / 2;
            } else if (n == 0) {
                d->eof = true;
            } else if (errno != EAGAIN && errno != EINTR) {
                d->eof = d->src_err = true; /* the pipe's bytes still go out */
            }
        }
        if (d->in_pipe) {
            n = splice(d->pipe.rfd, NULL, d->to, NULL, d->in_pipe, fl);
            if (n > 0) {
                d->in_pipe -= (size_t)n;
                d->bytes += (uint64_t)n;
                moved = true;
            } else if (n == -1 && errno != EAGAIN && errno != EINTR) {
                return LB_PUMP_TO_ERR;
            } else {
                break; /* destination full: EV_WRITE resumes */
            }
        }
        if (!moved || (drained && !d->in_pipe))
            break;
    }
    if (!d->in_pipe)
        lb_pipe_put(&c->w->pipes, &d->pipe);
    return LB_PUMP_OK;
}

static enum lb_pump lb_dir_pump(struct lb_conn *c, struct lb_dir *d)
{
    enum lb_pump r = d->splice ? lb_dir_splice(c, d) : lb_dir_rw(c, d);

    if (r != LB_PUMP_OK || !d->eof || lb_dir_pending(d))
        return r;
    /* Everything the source sent is delivered: pass its end on. */
    if (d->src_err)
        return LB_PUMP_FROM_ERR;
    if (!d->shut) {
        struct lb_dir *other = d == &c->up ? &c->down : &c->up;

        /* When the other direction is over too, close() follows at once
         * and sends the FIN itself: skip a syscall per connection. */
        if (!lb_dir_done(other))
            shutdown(d->to, SHUT_WR);
        d->shut = true;
    }
    return LB_PUMP_OK;
}

/* ---- events ---- */

static void lb_io_want(struct ev_loop *loop, ev_io *io, int events)
{
    if ((io->events & (EV_READ | EV_WRITE)) == events && ev_is_active(io))
        return;
    ev_io_stop(loop, io);
    if (!events)
        return;
    ev_io_set(io, io->fd, events);
    ev_io_start(loop, io);
}

/* Reads a side only while the direction it feeds holds nothing unsent. */
static void lb_conn_update_io(struct lb_conn *c)
{
    int ce = 0, se = 0;

    if (!c->up.eof && !lb_dir_pending(&c->up))
        ce |= EV_READ;
    if (lb_dir_pending(&c->down))
        ce |= EV_WRITE;
    if (!c->down.eof && !lb_dir_pending(&c->down))
        se |= EV_READ;
    if (lb_dir_pending(&c->up))
        se |= EV_WRITE;
    lb_io_want(c->w->loop, &c->cio, ce);
    lb_io_want(c->w->loop, &c->sio, se);
}

/* Pumps one direction; closes the connection and returns false when it ended. */
/* Resets `alive` and closes: the side still alive learns of the failure
 * as a reset, never as a clean FIN that would pass a truncated stream for
 * a whole one. */
static void lb_conn_reset(struct lb_conn *c, int alive, enum lb_end why)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    setsockopt(alive, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    lb_conn_close(c, why);
}

static int lb_unsent(int fd)
{
    int q = 0;

    return ioctl(fd, SIOCOUTQ, &q) == 0 ? q : 0;
}

static void lb_abort_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lb_conn *c = container_of(w, struct lb_conn, timer);
    int alive = c->abort_fd;

    /* A reset would discard what the kernel still holds for the peer: wait
     * until it is acknowledged, or until the peer's idle timeout says it
     * is not reading. */
    if (lb_unsent(alive) > 0 && ev_now(loop) - c->last_client < c->w->sh->timeout_client &&
        ev_now(loop) - c->last_server < c->w->sh->timeout_server)
        return;
    lb_conn_reset(c, alive, c->abort_why);
}

/* One side failed after the other was handed all its bytes. */
static void lb_conn_abort(struct lb_conn *c, int alive, enum lb_end why)
{
    struct ev_loop *loop = c->w->loop;

    if (lb_unsent(alive) == 0) {
        lb_conn_reset(c, alive, why);
        return;
    }
    c->state = LB_CONN_ABORTING;
    c->abort_fd = alive;
    c->abort_why = why;
    ev_io_stop(loop, &c->cio);
    ev_io_stop(loop, &c->sio);
    ev_timer_stop(loop, &c->timer);
    ev_timer_init(&c->timer, lb_abort_cb, 0.005, 0.005);
    ev_timer_start(loop, &c->timer);
}

static bool lb_conn_step(struct lb_conn *c, struct lb_dir *d)
{
    uint64_t before = d->bytes;
    enum lb_pump r = lb_dir_pump(c, d);

    /* Bytes delivered mean both ends are alive: the source sent them and
     * the destination took them. A download to a quiet client is not idle. */
    if (d->bytes != before)
        c->last_client = c->last_server = ev_now(c->w->loop);
    if (r != LB_PUMP_OK) {
        bool client = (r == LB_PUMP_FROM_ERR) == (d == &c->up);

        lb_conn_abort(c, r == LB_PUMP_FROM_ERR ? d->to : d->from,
                      client ? LB_END_CLIENT_RESET : LB_END_SERVER_RESET);
        return false;
    }
    if (lb_dir_done(&c->up) && lb_dir_done(&c->down)) {
        lb_conn_close(c, LB_END_DONE);
        return false;
    }
    return true;
}

static void lb_client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lb_conn *c = container_of(w, struct lb_conn, cio);

    c->last_client = ev_now(loop);
    if ((revents & EV_READ) && !lb_conn_step(c, &c->up))
        return;
    if ((revents & EV_WRITE) && !lb_conn_step(c, &c->down))
        return;
    lb_conn_update_io(c);
}

static void lb_server_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lb_conn *c = container_of(w, struct lb_conn, sio);

    c->last_server = ev_now(loop);
    if ((revents & EV_READ) && !lb_conn_step(c, &c->down))
        return;
    if ((revents & EV_WRITE) && !lb_conn_step(c, &c->up))
        return;
    lb_conn_update_io(c);
}

static void lb_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lb_conn *c = container_of(w, struct lb_conn, timer);
    const struct lb_shared *sh = c->w->sh;
    ev_tstamp now = ev_now(loop);
    ev_tstamp cl = c->last_client + sh->timeout_client - now;
    ev_tstamp sv = c->last_server + sh->timeout_server - now;

    if (cl <= 0) {
        lb_conn_close(c, LB_END_CLIENT_TIMEOUT);
        return;
    }
    if (sv <= 0) {
        lb_conn_close(c, LB_END_SERVER_TIMEOUT);
        return;
    }
    w->repeat = cl < sv ? cl : sv;
    ev_timer_again(loop, w);
}

static void lb_conn_relay(struct lb_conn *c)
{
    struct ev_loop *loop = c->w->loop;
    const struct lb_shared *sh = c->w->sh;
    bool splice = sh->cfg->splice == LB_SPLICE_ALWAYS;

    c->state = LB_CONN_RELAY;
    net_tcp_nodelay(c->sfd);
    c->up = (struct lb_dir){.from = c->cfd, .to = c->sfd, .pipe = {-1, -1, 0}, .splice = splice};
    c->down = (struct lb_dir){.from = c->sfd, .to = c->cfd, .pipe = {-1, -1, 0}, .splice = splice};
    c->last_client = c->last_server = ev_now(loop);
    ev_io_stop(loop, &c->sio);
    ev_init(&c->sio, lb_server_cb);
    ev_io_set(&c->sio, c->sfd, 0);
    ev_timer_stop(loop, &c->timer);
    ev_init(&c->timer, lb_idle_cb);
    c->timer.repeat =
        sh->timeout_client < sh->timeout_server ? sh->timeout_client : sh->timeout_server;
    ev_timer_again(loop, &c->timer);
    /* The client may have spoken already: move it now. */
    if (lb_conn_step(c, &c->up))
        lb_conn_update_io(c);
}

/* ---- connecting ---- */

static void lb_conn_failed_try(struct lb_conn *c)
{
    const struct lb_shared *sh = c->w->sh;

    lb_node_connect_failed(c->node, sh->max_fails, sh->eject_ms, clock_mono_ms());
    atomic_fetch_sub_explicit(&c->node->active, 1, memory_order_relaxed);
    c->node = NULL;
    ev_io_stop(c->w->loop, &c->sio);
    ev_timer_stop(c->w->loop, &c->timer);
    if (c->sfd >= 0)
        close(c->sfd);
    c->sfd = -1;
    if (c->ntried > sh->retries) {
        lb_conn_close(c, LB_END_CONNECT_FAILED);
        return;
    }
    lb_conn_try(c);
}

/* The connect to c->node succeeded. */
static void lb_conn_connected(struct lb_conn *c)
{
    lb_node_connect_ok(c->node);
    atomic_fetch_add_explicit(&c->node->conns_total, 1, memory_order_relaxed);
    lb_conn_relay(c);
}

static void lb_connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lb_conn *c = container_of(w, struct lb_conn, sio);

    if (net_connect_result(c->sfd) != 0) {
        lb_conn_failed_try(c);
        return;
    }
    lb_conn_connected(c);
}

/* Was the connect to c->node done by the time connect(2) returned? To a
 * node on this host (loopback, the host's own addresses) the kernel runs
 * the whole handshake inside connect(2), which still says EINPROGRESS: a
 * getpeername(2) that succeeds spares the wait for writability (an
 * epoll_ctl, a loop turn and a getsockopt per connection). After
 * LB_AT_ONCE_MISSES connects in a row that were not (a remote node), a
 * worker looks only 1 in LB_AT_ONCE_PROBE times, so such a node costs
 * next to nothing. A refused or reset connect fails getpeername too and
 * takes the usual path, where SO_ERROR says why. */
static bool lb_conn_connected_at_once(struct lb_conn *c)
{
    _Atomic unsigned *run = &c->node->connect_async_run;
    unsigned misses = atomic_load_explicit(run, memory_order_relaxed);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    if (misses >= LB_AT_ONCE_MISSES && ++c->w->at_once_skips % LB_AT_ONCE_PROBE)
        return false;
    if (getpeername(c->sfd, (struct sockaddr *)&sa, &sl) == 0) {
        if (misses)
            atomic_store_explicit(run, 0, memory_order_relaxed);
        return true;
    }
    if (misses < LB_AT_ONCE_MISSES)
        atomic_store_explicit(run, misses + 1, memory_order_relaxed);
    return false;
}

static void lb_connect_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    lb_conn_failed_try(container_of(w, struct lb_conn, timer));
}

/* Picks a node not tried yet and starts connecting to it. */
static void lb_conn_try(struct lb_conn *c)
{
    struct lb_worker *w = c->w;
    uint64_t panics = w->picker.panics;
    struct lb_node *n =
        lb_pick(&w->picker, lb_nodes_view(w->sh->nodes), c->tried, c->ntried, clock_mono_ms());

    if (w->picker.panics != panics)
        atomic_fetch_add_explicit(&w->sh->ctr.panic_picks, 1, memory_order_relaxed);
    if (!n) {
        lb_conn_close(c, c->ntried ? LB_END_CONNECT_FAILED : LB_END_NO_NODE);
        return;
    }
    if (c->ntried)
        atomic_fetch_add_explicit(&w->sh->ctr.retries, 1, memory_order_relaxed);
    c->tried[c->ntried++] = n;
    c->node = n;
    atomic_fetch_add_explicit(&n->active, 1, memory_order_relaxed);
    c->sfd = net_tcp_connect_start(&n->addr);
    if (c->sfd == -EMFILE || c->sfd == -ENFILE || c->sfd == -ENOBUFS || c->sfd == -ENOMEM ||
        c->sfd == -EADDRNOTAVAIL || c->sfd == -EAGAIN) {
        /* Our shortage, not the node's fault: do not count it against it. */
        atomic_fetch_sub_explicit(&n->active, 1, memory_order_relaxed);
        c->node = NULL;
        c->sfd = -1;
        lb_conn_close(c, LB_END_CONNECT_FAILED);
        return;
    }
    if (c->sfd < 0) { /* failed at once (no route, unreachable) */
        c->sfd = -1;
        lb_conn_failed_try(c);
        return;
    }
    if (lb_conn_connected_at_once(c)) {
        atomic_fetch_add_explicit(&w->sh->ctr.connects_at_once, 1, memory_order_relaxed);
        lb_conn_connected(c);
        return;
    }
    ev_io_init(&c->sio, lb_connect_cb, c->sfd, EV_WRITE);
    ev_io_start(w->loop, &c->sio);
    ev_timer_init(&c->timer, lb_connect_timeout_cb, w->sh->timeout_connect, 0.);
    ev_timer_start(w->loop, &c->timer);
}

void lb_conn_accepted(struct lb_worker *w, int cfd, const struct sockaddr_in *peer)
{
    struct lb_conn *c = xcalloc(1, sizeof(*c));

    c->w = w;
    c->state = LB_CONN_CONNECTING;
    c->cfd = cfd;
    c->sfd = -1;
    c->peer = *peer;
    c->up.pipe = c->down.pipe = (struct lb_pipe){-1, -1, 0};
    c->start = ev_now(w->loop);
    ev_init(&c->cio, lb_client_cb);
    ev_io_set(&c->cio, cfd, 0); /* TCP_NODELAY: from the listener (net_tcp_listen) */
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    atomic_fetch_add_explicit(&w->sh->ctr.accepted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->sh->ctr.active, 1, memory_order_relaxed);
    lb_conn_try(c);
}
