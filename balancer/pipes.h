/* pipes.h - a per-worker pool of pipes for splice(2).
 *
 * A connection takes a pipe only while bytes are in flight and gives it
 * back as soon as the pipe is empty, so an idle connection holds none
 * (HAProxy's rule). A pipe goes back to the pool only when empty.
 * Thread: one pool per worker, used from that worker only.
 */
#ifndef FULCRUM_BALANCER_PIPES_H
#define FULCRUM_BALANCER_PIPES_H

#include <stdatomic.h>
#include <stddef.h>

struct lb_pipe {
    int rfd, wfd; /* -1 when none */
    unsigned cap; /* bytes it holds (F_GETPIPE_SZ) */
};

struct lb_pipe_pool {
    struct lb_pipe *free;
    unsigned nfree;
    unsigned cap;                   /* pipes kept for reuse at most */
    unsigned size;                  /* F_SETPIPE_SZ; 0 = kernel default (64 KiB) */
    _Atomic unsigned *in_use_total; /* shared gauge of pipes open, all workers */
    unsigned max_total;             /* pipes open at most, all workers (the fd budget) */
};

/* max_total caps the shared gauge: past it lb_pipe_get says EMFILE without
 * trying, so pipes never take the descriptors the connections need. */
void lb_pipes_init(struct lb_pipe_pool *pp, unsigned cap, unsigned size, _Atomic unsigned *gauge,
                   unsigned max_total);
/* Closes every pooled pipe. Pipes held by connections are theirs to put. */
void lb_pipes_done(struct lb_pipe_pool *pp);

/* A pipe from the pool, or a new one. Returns 0 or -errno (EMFILE...). */
int lb_pipe_get(struct lb_pipe_pool *pp, struct lb_pipe *out);
/* Returns an EMPTY pipe to the pool (or closes it when the pool is full).
 * A pipe that may hold bytes must go to lb_pipe_close instead. */
void lb_pipe_put(struct lb_pipe_pool *pp, struct lb_pipe *p);
void lb_pipe_close(struct lb_pipe_pool *pp, struct lb_pipe *p);

#endif
