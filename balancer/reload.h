/* reload.h - a reload that drops no connection: the running balancer starts
 * its own binary again with the same arguments (so the configuration file
 * is read again), hands it its listening sockets, and stops accepting only
 * once the new process can serve.
 *
 *   old process (SIGUSR2)                     new process
 *   posix_spawn(argv), listener fds and one    reads its configuration, adopts the
 *   end of a control socket inherited   --->   same listening sockets (one accept
 *                                              queue each, shared), starts its monitor
 *   keeps accepting                            and its workers, which do not accept
 *                                      <- 'R'  a node is in rotation
 *   frees its admin port, MAINPID= to
 *   systemd, closes its listeners and
 *   drains for --grace (as on TERM)    'G' ->  workers accept, binds the admin port
 *
 * Both processes hold the same sockets, so no accept queue is ever dropped:
 * whatever waits in it when the old one lets go is accepted by the new one.
 * A new process that fails (bad configuration: it sends 'E' and its error
 * before it exits), dies, or knows no node within the timeout is reaped or
 * killed; the old one logs why and goes on serving.
 *
 * Environment of the new process (unset by lb_inherit_init):
 *   FULCRUM_LISTEN_FDS=3,4,...  the old listeners, worker-major
 *   FULCRUM_RELOAD_FD=N         the control socket (SOCK_SEQPACKET)
 *
 * All calls from the main thread; lb_reload needs libev's default loop
 * (ev_child).
 */
#ifndef FULCRUM_BALANCER_RELOAD_H
#define FULCRUM_BALANCER_RELOAD_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <ev.h>

#define LB_INHERIT_MAX 1024 /* listeners handed over: workers x --listen */
#define LB_RELOAD_WHY  256  /* the new process's error text, at most */

/* ---- the old process: starting the new one ---- */

enum lb_reload_state {
    LB_RELOAD_IDLE = 0, /* no reload under way */
    LB_RELOAD_STARTING, /* the new process runs, not ready yet */
    LB_RELOAD_FAILING,  /* it failed or was killed: waiting to reap it */
    LB_RELOAD_HANDED,   /* it was told to go: it is the service now */
    LB_RELOAD_STATE_MAX
};

/* pid is ready to serve: release what it needs, then lb_reload_go(). */
typedef void (*lb_reload_ready_cb)(void *arg, pid_t pid);
/* The reload failed; why says how. The old process goes on. */
typedef void (*lb_reload_failed_cb)(void *arg, pid_t pid, const char *why);

struct lb_reload {
    struct ev_loop *loop; /* the default loop */
    char *const *argv;    /* borrowed: main's argv */
    double timeout;       /* seconds the new process has to become ready */
    lb_reload_ready_cb on_ready;
    lb_reload_failed_cb on_failed;
    void *arg;
    enum lb_reload_state state;
    pid_t pid;
    int fd; /* our end of the control socket, -1 */
    ev_io io;
    ev_child child;
    ev_timer timer;
    char why[LB_RELOAD_WHY]; /* the first reason it failed */
};

void lb_reload_init(struct lb_reload *r, struct ev_loop *loop, char *const *argv, double timeout,
                    lb_reload_ready_cb on_ready, lb_reload_failed_cb on_failed, void *arg);
/* Starts the new process with fds (the listeners) inherited. Returns 0, or
 * -errno with err filled (nothing started). Refused (-EBUSY) unless idle. */
int lb_reload_start(struct lb_reload *r, const int *fds, size_t nfds, char *err, size_t errlen);
/* After on_ready: tells the new process to accept. */
void lb_reload_go(struct lb_reload *r);
/* A stop came first: kills a new process that is not ready. */
void lb_reload_abort(struct lb_reload *r);
/* Stops the watchers; a new process not handed over is killed and reaped. */
void lb_reload_done(struct lb_reload *r);

/* ---- the new process: taking over ---- */

/* alone: the old process closed without saying go (it died): nobody told
 * the service manager about this one. */
typedef void (*lb_inherit_go_cb)(void *arg, bool alone);

struct lb_inherit {
    int fd[LB_INHERIT_MAX]; /* inherited listeners; -1 once taken */
    struct sockaddr_in sa[LB_INHERIT_MAX];
    size_t n, taken;
    int ctl; /* control socket to the old process; -1: not (or no longer) a reload */
    bool said_ready;
    ev_io io;
    lb_inherit_go_cb on_go;
    void *arg;
};

/* Reads and unsets the environment above. Not a reload: 0 and nothing
 * inherited. Returns -EINVAL with err filled when it is malformed. */
int lb_inherit_init(struct lb_inherit *in, char *err, size_t errlen);
/* True from start to the old process's go: the workers must wait. */
bool lb_inherit_active(const struct lb_inherit *in);
/* How many listeners were inherited, and how many of them taken. */
size_t lb_inherit_count(const struct lb_inherit *in);
size_t lb_inherit_taken(const struct lb_inherit *in);
/* An inherited listener bound to sa (port 0 in sa: the first one on its
 * address), now the caller's; -1 when there is none. */
int lb_inherit_take(struct lb_inherit *in, const struct sockaddr_in *sa);
/* Closes the listeners nobody took (the old process still holds them and
 * drains them when it stops). */
void lb_inherit_close_rest(struct lb_inherit *in);
/* Tells the old process this one can serve (once); on_go runs when it says
 * go, or when it is gone. */
void lb_inherit_ready(struct lb_inherit *in, struct ev_loop *loop, lb_inherit_go_cb on_go,
                      void *arg);
/* This process could not start: tells the old process why (err). */
void lb_inherit_fail(struct lb_inherit *in, const char *err);
/* Before lb_inherit_init (main's config errors): the same, from the
 * environment; nothing when this is no reload. */
void lb_inherit_fail_env(const char *err);
void lb_inherit_done(struct lb_inherit *in, struct ev_loop *loop);

#endif
