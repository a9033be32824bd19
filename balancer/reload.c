/* reload.c - the two sides of a reload (see reload.h for the sequence).
 *
 * Design notes. The new process is started with posix_spawn(3), not
 * fork(2): the old one runs worker threads, and posix_spawn resets every
 * signal handler and the signal mask in the child before exec (libev's
 * handlers must not run in a child that still shares the parent's signal
 * pipe). Every descriptor of the balancer is close-on-exec; the listeners
 * and the control socket are made inheritable by dup2(fd, fd) file actions,
 * which clear FD_CLOEXEC in the child only.
 * The control socket is SOCK_SEQPACKET: one message per send, so 'R', 'G'
 * and "E<text>" need no framing. Its end of file tells either side that the
 * other is gone.
 */
#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define LB_ENV_FDS "FULCRUM_LISTEN_FDS"
#define LB_ENV_CTL "FULCRUM_RELOAD_FD"

extern char **environ;

/* ---- the old process ---- */

static void lb_reload_fail(struct lb_reload *r, const char *why)
{
    if (!r->why[0])
        snprintf(r->why, sizeof(r->why), "%s", why);
}

/* Stops listening to the new process (it said go, failed, or closed). */
static void lb_reload_close_ctl(struct lb_reload *r)
{
    if (r->fd < 0)
        return;
    ev_io_stop(r->loop, &r->io);
    close(r->fd);
    r->fd = -1;
}

static void lb_reload_kill(struct lb_reload *r, const char *why)
{
    lb_reload_fail(r, why);
    ev_timer_stop(r->loop, &r->timer);
    lb_reload_close_ctl(r);
    if (kill(r->pid, SIGKILL) == -1 && errno != ESRCH)
        log_warn("reload: cannot kill new process %d: %s", (int)r->pid, strerror(errno));
    r->state = LB_RELOAD_FAILING;
}

/* Reads one message of the new process into msg (NUL-terminated) and
 * keeps its error ("E<why>"). Returns recv's result. */
static ssize_t lb_reload_recv(struct lb_reload *r, char *msg, size_t cap)
{
    ssize_t n = recv(r->fd, msg, cap - 1, MSG_DONTWAIT);

    if (n > 0) {
        msg[n] = '\0';
        if (msg[0] == 'E')
            lb_reload_fail(r, msg + 1);
    }
    return n;
}

static void lb_reload_ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lb_reload *r = w->data;
    char msg[LB_RELOAD_WHY];
    ssize_t n = lb_reload_recv(r, msg, sizeof(msg));

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* Gone before it was ready: its exit status tells why. */
        lb_reload_close_ctl(r);
        return;
    }
    if (msg[0] == 'R' && r->state == LB_RELOAD_STARTING) {
        ev_timer_stop(loop, &r->timer);
        r->on_ready(r->arg, r->pid);
    }
}

static void lb_reload_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lb_reload *r = w->data;
    char why[64];

    snprintf(why, sizeof(why), "not ready within %gs (no node in rotation): killed", r->timeout);
    lb_reload_kill(r, why);
}

static void lb_reload_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct lb_reload *r = w->data;
    char why[LB_RELOAD_WHY + 64];
    int st = w->rstatus;

    ev_child_stop(loop, w);
    ev_timer_stop(loop, &r->timer);
    /* Its exit can be seen before its last message: read what it said
     * (its "E<why>") before the socket goes. */
    if (r->fd >= 0) {
        char msg[LB_RELOAD_WHY];

        while (lb_reload_recv(r, msg, sizeof(msg)) > 0)
            ;
    }
    lb_reload_close_ctl(r);
    if (r->state == LB_RELOAD_HANDED) {
        /* status 0: it stopped, or handed over to a newer one in turn */
        log_at(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? LOG_LVL_INFO : LOG_LVL_WARN,
               "reload: new process %d exited (status %d, signal %d) while this one drains",
               (int)r->pid, WIFEXITED(st) ? WEXITSTATUS(st) : -1,
               WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        return;
    }
    if (WIFEXITED(st))
        snprintf(why, sizeof(why), "new process %d exited with status %d before it was ready%s%s",
                 (int)r->pid, WEXITSTATUS(st), r->why[0] ? ": " : "", r->why);
    else
        snprintf(why, sizeof(why), "new process %d died of signal %d before it was ready%s%s",
                 (int)r->pid, WIFSIGNALED(st) ? WTERMSIG(st) : 0, r->why[0] ? ": " : "", r->why);
    r->state = LB_RELOAD_IDLE;
    r->on_failed(r->arg, r->pid, why);
}

void lb_reload_init(struct lb_reload *r, struct ev_loop *loop, char *const *argv, double timeout,
                    lb_reload_ready_cb on_ready, lb_reload_failed_cb on_failed, void *arg)
{
    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->argv = argv;
    r->timeout = timeout;
    r->on_ready = on_ready;
    r->on_failed = on_failed;
    r->arg = arg;
    r->fd = -1;
}

/* environ without our variables, plus them; NULL-terminated, freed by
 * lb_reload_env_free. */
static char **lb_reload_env(const int *fds, size_t nfds, int ctl)
{
    size_t n = 0, k = 0, cap = sizeof(LB_ENV_FDS) + nfds * 12;
    char **env, *list;

    while (environ[n])
        n++;
    env = xcalloc(n + 3, sizeof(*env));
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], LB_ENV_FDS "=", sizeof(LB_ENV_FDS)) &&
            strncmp(environ[i], LB_ENV_CTL "=", sizeof(LB_ENV_CTL)))
            env[k++] = environ[i];
    }
    list = xmalloc(cap);
    n = (size_t)snprintf(list, cap, "%s=", LB_ENV_FDS);
    for (size_t i = 0; i < nfds; i++)
        n += (size_t)snprintf(list + n, cap - n, "%s%d", i ? "," : "", fds[i]);
    env[k++] = list;
    env[k] = xmalloc(sizeof(LB_ENV_CTL) + 12);
    snprintf(env[k++], sizeof(LB_ENV_CTL) + 12, "%s=%d", LB_ENV_CTL, ctl);
    env[k] = NULL;
    return env;
}

static void lb_reload_env_free(char **env)
{
    size_t k = 0;

    while (env[k])
        k++;
    free(env[k - 2]); /* the two we added, last */
    free(env[k - 1]);
    free(env);
}

/* posix_spawnp with fds and ctl inherited, default signal handling and an
 * empty signal mask. Returns 0 or an errno. */
static int lb_reload_spawn(struct lb_reload *r, const int *fds, size_t nfds, int ctl)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t all, none;
    char **env = lb_reload_env(fds, nfds, ctl);
    int e = 0;

    sigfillset(&all);
    sigemptyset(&none);
    if ((e = posix_spawn_file_actions_init(&fa)))
        goto out_free_env;
    if ((e = posix_spawnattr_init(&at)))
        goto out_free_fa;
    for (size_t i = 0; !e && i < nfds; i++)
        e = posix_spawn_file_actions_adddup2(&fa, fds[i], fds[i]);
    if (!e)
        e = posix_spawn_file_actions_adddup2(&fa, ctl, ctl);
    if (!e)
        e = posix_spawnattr_setsigdefault(&at, &all);
    if (!e)
        e = posix_spawnattr_setsigmask(&at, &none);
    if (!e)
        e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (!e)
        e = posix_spawnp(&r->pid, r->argv[0], &fa, &at, r->argv, env);
    posix_spawnattr_destroy(&at);
out_free_fa:
    posix_spawn_file_actions_destroy(&fa);
out_free_env:
    lb_reload_env_free(env);
    return e;
}

int lb_reload_start(struct lb_reload *r, const int *fds, size_t nfds, char *err, size_t errlen)
{
    int sv[2], e;

    if (r->state != LB_RELOAD_IDLE) {
        snprintf(err, errlen, "a reload is under way (new process %d)", (int)r->pid);
        return -EBUSY;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
        e = errno;
        snprintf(err, errlen, "socketpair: %s", strerror(e));
        return -e;
    }
    e = lb_reload_spawn(r, fds, nfds, sv[1]);
    close(sv[1]);
    if (e) {
        close(sv[0]);
        snprintf(err, errlen, "cannot start %s: %s", r->argv[0], strerror(e));
        return -e;
    }
    (void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
    r->fd = sv[0];
    r->why[0] = '\0';
    r->state = LB_RELOAD_STARTING;
    ev_io_init(&r->io, lb_reload_ctl_cb, r->fd, EV_READ);
    ev_child_init(&r->child, lb_reload_child_cb, r->pid, 0);
    ev_timer_init(&r->timer, lb_reload_timer_cb, r->timeout, 0.);
    r->io.data = r->child.data = r->timer.data = r;
    ev_io_start(r->loop, &r->io);
    ev_child_start(r->loop, &r->child);
    ev_timer_start(r->loop, &r->timer);
    return 0;
}

void lb_reload_go(struct lb_reload *r)
{
    if (r->state != LB_RELOAD_STARTING)
        return;
    if (r->fd >= 0 && send(r->fd, "G", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
        log_warn("reload: cannot tell new process %d to go: %s (it goes when it sees us close)",
                 (int)r->pid, strerror(errno));
    lb_reload_close_ctl(r); /* its end of file means go as well */
    r->state = LB_RELOAD_HANDED;
}

void lb_reload_abort(struct lb_reload *r)
{
    if (r->state == LB_RELOAD_STARTING)
        lb_reload_kill(r, "this process was stopped first: killed");
}

void lb_reload_done(struct lb_reload *r)
{
    if (!r->loop)
        return;
    if (r->state == LB_RELOAD_STARTING || r->state == LB_RELOAD_FAILING) {
        lb_reload_kill(r, "stopped");
        (void)waitpid(r->pid, NULL, 0);
    }
    ev_timer_stop(r->loop, &r->timer);
    ev_child_stop(r->loop, &r->child);
    lb_reload_close_ctl(r);
    r->state = LB_RELOAD_IDLE;
}

/* ---- the new process ---- */

/* A non-negative int made of the whole of s, else -1. */
static int lb_parse_fd(const char *s, const char **end)
{
    char *e;
    long v;

    errno = 0;
    v = strtol(s, &e, 10);
    if (e == s || errno || v < 0 || v > 1 << 20)
        return -1;
    *end = e;
    return (int)v;
}

/* fd is a listening IPv4 TCP socket: keep it (close-on-exec again). */
static int lb_inherit_add(struct lb_inherit *in, int fd, char *err, size_t errlen)
{
    socklen_t sl = sizeof(in->sa[0]), il = sizeof(int);
    int acc = 0;

    if (in->n == LB_INHERIT_MAX) {
        snprintf(err, errlen, "%s: more than %d listeners", LB_ENV_FDS, LB_INHERIT_MAX);
        return -EINVAL;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &il) == -1 || !acc ||
        getsockname(fd, (struct sockaddr *)&in->sa[in->n], &sl) == -1 ||
        in->sa[in->n].sin_family != AF_INET) {
        snprintf(err, errlen, "%s: descriptor %d is not a listening IPv4 socket", LB_ENV_FDS, fd);
        return -EINVAL;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    (void)fcntl(fd, F_SETFL, O_NONBLOCK);
    in->fd[in->n++] = fd;
    return 0;
}

static int lb_inherit_parse(struct lb_inherit *in, const char *fds, const char *ctl, char *err,
                            size_t errlen)
{
    const char *end = NULL;
    int fd = lb_parse_fd(ctl, &end);

    if (fd < 0 || *end || fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
        snprintf(err, errlen, "%s=%s: not an open descriptor", LB_ENV_CTL, ctl);
        return -EINVAL;
    }
    in->ctl = fd;
    (void)fcntl(fd, F_SETFL, O_NONBLOCK);
    while (fds && *fds) {
        int r;

        fd = lb_parse_fd(fds, &end);
        if (fd < 0 || (*end && *end != ',')) {
            snprintf(err, errlen, "%s: malformed", LB_ENV_FDS);
            return -EINVAL;
        }
        if ((r = lb_inherit_add(in, fd, err, errlen)))
            return r;
        fds = *end ? end + 1 : end;
    }
    return 0;
}

int lb_inherit_init(struct lb_inherit *in, char *err, size_t errlen)
{
    const char *fds = getenv(LB_ENV_FDS), *ctl = getenv(LB_ENV_CTL);
    int r = 0;

    memset(in, 0, sizeof(*in));
    in->ctl = -1;
    if (ctl)
        r = lb_inherit_parse(in, fds, ctl, err, errlen);
    unsetenv(LB_ENV_FDS);
    unsetenv(LB_ENV_CTL);
    return r;
}

bool lb_inherit_active(const struct lb_inherit *in)
{
    return in->ctl >= 0;
}

size_t lb_inherit_count(const struct lb_inherit *in)
{
    return in->n;
}

size_t lb_inherit_taken(const struct lb_inherit *in)
{
    return in->taken;
}

int lb_inherit_take(struct lb_inherit *in, const struct sockaddr_in *sa)
{
    for (size_t i = 0; i < in->n; i++) {
        int fd = in->fd[i];

        if (fd >= 0 && in->sa[i].sin_addr.s_addr == sa->sin_addr.s_addr &&
            (sa->sin_port == 0 || in->sa[i].sin_port == sa->sin_port)) {
            in->fd[i] = -1;
            in->taken++;
            return fd;
        }
    }
    return -1;
}

void lb_inherit_close_rest(struct lb_inherit *in)
{
    for (size_t i = 0; i < in->n; i++) {
        if (in->fd[i] >= 0)
            close(in->fd[i]);
        in->fd[i] = -1;
    }
}

static void lb_inherit_go(struct lb_inherit *in, struct ev_loop *loop, bool alone)
{
    ev_io_stop(loop, &in->io);
    close(in->ctl);
    in->ctl = -1;
    in->on_go(in->arg, alone);
}

static void lb_inherit_ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lb_inherit *in = w->data;
    char c;
    ssize_t n = recv(in->ctl, &c, 1, MSG_DONTWAIT);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0)
        log_warn("reload: the old process closed the control socket: serving alone");
    lb_inherit_go(in, loop, n <= 0); /* 'G', or the old process is gone */
}

void lb_inherit_ready(struct lb_inherit *in, struct ev_loop *loop, lb_inherit_go_cb on_go,
                      void *arg)
{
    if (in->ctl < 0 || in->said_ready)
        return;
    in->said_ready = true;
    in->on_go = on_go;
    in->arg = arg;
    ev_io_init(&in->io, lb_inherit_ctl_cb, in->ctl, EV_READ);
    in->io.data = in;
    if (send(in->ctl, "R", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
        log_warn("reload: cannot reach the old process (%s): serving alone", strerror(errno));
        lb_inherit_go(in, loop, true);
        return;
    }
    ev_io_start(loop, &in->io);
}

static void lb_inherit_send_err(int fd, const char *err)
{
    char msg[LB_RELOAD_WHY];
    int n = snprintf(msg, sizeof(msg), "E%s", err);

    if (n > (int)sizeof(msg) - 1)
        n = (int)sizeof(msg) - 1;
    (void)send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void lb_inherit_fail(struct lb_inherit *in, const char *err)
{
    if (in->ctl >= 0)
        lb_inherit_send_err(in->ctl, err);
}

void lb_inherit_fail_env(const char *err)
{
    const char *ctl = getenv(LB_ENV_CTL), *end = NULL;
    int fd = ctl ? lb_parse_fd(ctl, &end) : -1;

    if (fd >= 0 && !*end)
        lb_inherit_send_err(fd, err);
}

void lb_inherit_done(struct lb_inherit *in, struct ev_loop *loop)
{
    lb_inherit_close_rest(in);
    if (in->ctl < 0)
        return;
    if (in->said_ready)
        ev_io_stop(loop, &in->io);
    close(in->ctl);
    in->ctl = -1;
}
