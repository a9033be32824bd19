/* worker.c - a worker thread: accepts on its SO_REUSEPORT listeners and
 * runs the connections in its own libev loop.
 *
 * Accepting survives fd exhaustion with the reserve-fd trick (libev's
 * manual, "special problem of accept()ing when you can't"): on EMFILE the
 * worker frees its reserved fd, accepts the pending client, closes it at
 * once and reserves again, so the listener does not spin on a connection
 * it can never take. The fd table is the process's, not the worker's:
 * another thread may take the freed slot first, and then accepting pauses
 * for LB_ACCEPT_PAUSE instead of spinning on a listener that stays
 * readable. --maxconn is enforced the same way: accepted, closed, counted.
 * A stop takes in what waits in the accept queue before closing the
 * listeners, so no client that completed its handshake is reset.
 * A held worker listens without accepting until the main thread opens it
 * (it knows a node): a client that arrives first waits in the accept queue
 * rather than being closed for want of a node.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"

#define LB_ACCEPT_BURST 64
#define LB_ACCEPT_PAUSE 0.1 /* seconds without accepting after fd exhaustion */

static void lb_worker_refuse(struct lb_worker *w, int fd, _Atomic uint64_t *ctr, const char *why)
{
    unsigned supp = 0;

    /* Count first: whoever sees the close may read the counter at once. */
    atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed);
    close(fd);
    if (log_rl_allow(&w->rl, clock_mono_ms(), &supp))
        log_warn("refused a client: %s suppressed=%u", why, supp);
}

/* Stops watching the listeners for a moment; the resume timer restarts. */
static void lb_worker_pause(struct lb_worker *w)
{
    for (unsigned i = 0; i < w->nlisten; i++)
        ev_io_stop(w->loop, &w->lio[i]);
    if (!ev_is_active(&w->resume))
        ev_timer_start(w->loop, &w->resume);
}

static void lb_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct lb_worker *w = t->data;

    if (w->reserve_fd < 0)
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (unsigned i = 0; w->accepting && !w->held && i < w->nlisten; i++)
        ev_io_start(loop, &w->lio[i]);
}

/* Out of fds: turn one waiting client away with the reserve fd. Returns
 * false when that did not work (another thread took the slot). */
static bool lb_worker_emfile(struct lb_worker *w, int lfd)
{
    int fd;

    if (w->reserve_fd >= 0)
        close(w->reserve_fd);
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        lb_worker_refuse(w, fd, &w->sh->ctr.refused_emfile, "out of file descriptors");
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 && w->reserve_fd >= 0;
}

/* Accepts up to `burst` clients from one listener. Returns false when the
 * queue is empty or accepting had to pause. */
static bool lb_accept_some(struct lb_worker *w, int lfd, int burst)
{
    struct lb_shared *sh = w->sh;

    for (int i = 0; i < burst; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        unsigned supp = 0;

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN)
                return false;
            if ((errno == EMFILE || errno == ENFILE) && lb_worker_emfile(w, lfd))
                return false; /* one turned away; the next wakeup goes on */
            if (errno != EMFILE && errno != ENFILE && log_rl_allow(&w->rl, clock_mono_ms(), &supp))
                log_warn("accept: %s suppressed=%u", strerror(errno), supp);
            lb_worker_pause(w);
            return false;
        }
        if (atomic_load_explicit(&sh->ctr.active, memory_order_relaxed) >= sh->maxconn) {
            lb_worker_refuse(w, fd, &sh->ctr.refused_maxconn, "maxconn reached");
            continue;
        }
        lb_conn_accepted(w, fd, &peer);
    }
    return true;
}

static void lb_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    lb_accept_some(io->data, io->fd, LB_ACCEPT_BURST);
}

static void lb_worker_close_listeners(struct lb_worker *w)
{
    ev_timer_stop(w->loop, &w->resume);
    for (unsigned i = 0; i < w->nlisten; i++) {
        ev_io_stop(w->loop, &w->lio[i]);
        close(w->lfd[i]);
        w->lfd[i] = -1;
    }
    w->nlisten = 0;
    w->accepting = false;
    atomic_store_explicit(&w->listeners_closed, true, memory_order_release);
}

static void lb_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct lb_worker *w = a->data;
    int level = atomic_load_explicit(&w->stop, memory_order_acquire);

    if (w->held && atomic_load_explicit(&w->open, memory_order_acquire)) {
        w->held = false;
        for (unsigned i = 0; w->accepting && i < w->nlisten; i++)
            ev_io_start(loop, &w->lio[i]);
    }
    if (level >= 1 && w->accepting) {
        /* Take in whoever already completed a handshake, then close. */
        for (unsigned i = 0; !atomic_load(&w->release) && i < w->nlisten; i++)
            while (lb_accept_some(w, w->lfd[i], LB_ACCEPT_BURST))
                ;
        lb_worker_close_listeners(w);
    }
    if (level >= 2)
        lb_conn_close_all(w);
    if (level >= 1 && w->nconns == 0)
        ev_break(loop, EVBREAK_ONE);
}

static void *lb_worker_main(void *arg)
{
    struct lb_worker *w = arg;

    ev_run(w->loop, 0);
    lb_worker_close_listeners(w);
    lb_conn_close_all(w);
    atomic_store_explicit(&w->done, true, memory_order_release);
    return NULL;
}

int lb_worker_start(struct lb_worker *w, struct lb_shared *sh, unsigned id, const int *lfds,
                    unsigned nlisten, bool hold)
{
    uint64_t seed = clock_mono_us() ^ ((uint64_t)id << 32) ^ (uint64_t)getpid();
    int r;

    w->id = id;
    w->sh = sh;
    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (!w->loop)
        return -ENOMEM;
    w->rl = (struct log_rl)LOG_RL_INIT(5, 10000);
    w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    lb_picker_init(&w->picker, sh->policy, (unsigned)sh->cfg->panic, seed);
    lb_pipes_init(&w->pipes, (unsigned)sh->cfg->pipes_per_worker, (unsigned)sh->cfg->pipe_size,
                  &sh->ctr.pipes, sh->pipes_max);
    for (unsigned i = 0; i < nlisten; i++) {
        w->lfd[i] = lfds[i];
        ev_io_init(&w->lio[i], lb_accept_cb, lfds[i], EV_READ);
        w->lio[i].data = w;
        if (!hold)
            ev_io_start(w->loop, &w->lio[i]);
    }
    w->held = hold;
    w->nlisten = nlisten;
    w->accepting = true;
    ev_timer_init(&w->resume, lb_resume_cb, LB_ACCEPT_PAUSE, 0.);
    w->resume.data = w;
    ev_async_init(&w->wake, lb_wake_cb);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    r = pthread_create(&w->thread, NULL, lb_worker_main, w);
    return -r;
}

void lb_worker_open(struct lb_worker *w)
{
    atomic_store_explicit(&w->open, true, memory_order_release);
    ev_async_send(w->loop, &w->wake);
}

void lb_worker_release(struct lb_worker *w)
{
    atomic_store_explicit(&w->release, true, memory_order_release);
}

void lb_worker_stop(struct lb_worker *w, int level)
{
    atomic_store_explicit(&w->stop, level, memory_order_release);
    ev_async_send(w->loop, &w->wake);
}

void lb_worker_join(struct lb_worker *w)
{
    pthread_join(w->thread, NULL);
    lb_pipes_done(&w->pipes);
    lb_picker_done(&w->picker);
    if (w->reserve_fd >= 0)
        close(w->reserve_fd);
    ev_loop_destroy(w->loop);
    w->loop = NULL;
}
