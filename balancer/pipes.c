/* pipes.c - the per-worker pipe pool for splice(2). */
#include "pipes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "xalloc.h"

void lb_pipes_init(struct lb_pipe_pool *pp, unsigned cap, unsigned size, _Atomic unsigned *gauge,
                   unsigned max_total)
{
    pp->free = xcalloc(cap ? cap : 1, sizeof(*pp->free));
    pp->nfree = 0;
    pp->cap = cap;
    pp->size = size;
    pp->in_use_total = gauge;
    pp->max_total = max_total;
}

void lb_pipes_done(struct lb_pipe_pool *pp)
{
    while (pp->nfree)
        lb_pipe_close(pp, &pp->free[--pp->nfree]);
    free(pp->free);
    pp->free = NULL;
}

int lb_pipe_get(struct lb_pipe_pool *pp, struct lb_pipe *out)
{
    int fds[2], sz;

    if (pp->nfree) {
        *out = pp->free[--pp->nfree];
        return 0;
    }
    /* Take a place under the budget first: workers race for it. */
    if (atomic_fetch_add_explicit(pp->in_use_total, 1, memory_order_relaxed) >= pp->max_total) {
        atomic_fetch_sub_explicit(pp->in_use_total, 1, memory_order_relaxed);
        return -EMFILE;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
        int r = -errno;

        atomic_fetch_sub_explicit(pp->in_use_total, 1, memory_order_relaxed);
        return r;
    }
    /* A bigger pipe moves more per splice; failure keeps the default. */
    if (pp->size)
        (void)fcntl(fds[0], F_SETPIPE_SZ, (int)pp->size);
    sz = fcntl(fds[0], F_GETPIPE_SZ);
    out->rfd = fds[0];
    out->wfd = fds[1];
    out->cap = sz > 0 ? (unsigned)sz : 65536;
    return 0;
}

void lb_pipe_close(struct lb_pipe_pool *pp, struct lb_pipe *p)
{
    if (p->rfd < 0)
        return;
    close(p->rfd);
    close(p->wfd);
    p->rfd = p->wfd = -1;
    atomic_fetch_sub_explicit(pp->in_use_total, 1, memory_order_relaxed);
}

void lb_pipe_put(struct lb_pipe_pool *pp, struct lb_pipe *p)
{
    if (p->rfd < 0)
        return;
    if (pp->nfree < pp->cap) {
        pp->free[pp->nfree++] = *p;
        p->rfd = p->wfd = -1;
        return;
    }
    lb_pipe_close(pp, p);
}
