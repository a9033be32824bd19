/* harness.c - process and socket helpers for the integration tests. */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_WRAP_MAX    32   /* words of FULCRUM_TEST_WRAPPER at most */
#define H_WRAPPED_MAX 256  /* daemons stopped at exit under a wrapper */
#define H_LOG_MAX     64   /* daemons of one test whose output is kept */
#define H_TAIL        8192 /* last bytes kept of each stream */

static long long h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the child: dies with the test. A parent gone before the signal was
 * set would leave an orphan holding pipes that ctest waits on. */
static void h_child_setup(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
        _exit(126);
}

/* FULCRUM_TEST_TIMEOUT_SCALE (a whole number, default 1) stretches every
 * wait of this file: daemons under valgrind start and stop slower. */
static long long h_scaled(int timeout_ms)
{
    const char *s = getenv("FULCRUM_TEST_TIMEOUT_SCALE");
    long k = s ? strtol(s, NULL, 10) : 1;

    return (long long)timeout_ms * (k >= 1 && k <= 100 ? k : 1);
}

/* In the child: runs argv, behind FULCRUM_TEST_WRAPPER's words when it is
 * set (e.g. "valgrind --leak-check=full"), so a daemon keeps its PID. */
static void h_exec(char *const argv[])
{
    const char *w = getenv("FULCRUM_TEST_WRAPPER");
    char *words, *save = NULL, *v[H_WRAP_MAX + 64];
    size_t n = 0;

    if (!w || !*w || !(words = strdup(w)))
        execv(argv[0], argv);
    else {
        for (char *t = strtok_r(words, " ", &save); t && n < H_WRAP_MAX;
             t = strtok_r(NULL, " ", &save))
            v[n++] = t;
        for (size_t i = 0; argv[i] && n < sizeof(v) / sizeof(v[0]) - 1; i++)
            v[n++] = argv[i];
        v[n] = NULL;
        execvp(v[0], v);
    }
    _exit(127);
}

/* Under a wrapper, the daemons still running when the test process exits
 * get SIGTERM and are waited for, so that valgrind's leak check runs in
 * them (PR_SET_PDEATHSIG's SIGKILL would cut it). */
static pid_t h_wrapped[H_WRAPPED_MAX];

static void h_forget(pid_t pid)
{
    for (size_t i = 0; i < H_WRAPPED_MAX; i++)
        if (h_wrapped[i] == pid)
            h_wrapped[i] = 0;
}

static void h_stop_wrapped(void)
{
    long long deadline = h_now_ms() + h_scaled(5000);
    int status;

    for (size_t i = 0; i < H_WRAPPED_MAX; i++)
        if (h_wrapped[i] > 0)
            kill(h_wrapped[i], SIGTERM);
    for (size_t i = 0; i < H_WRAPPED_MAX; i++) {
        while (h_wrapped[i] > 0 && waitpid(h_wrapped[i], &status, WNOHANG) == 0 &&
               h_now_ms() < deadline)
            poll(NULL, 0, 20);
        h_wrapped[i] = 0;
    }
}

bool h_under_wrapper(void)
{
    const char *w = getenv("FULCRUM_TEST_WRAPPER");

    return w && *w;
}

static void h_track(pid_t pid)
{
    static bool registered;

    if (!h_under_wrapper())
        return;
    if (!registered)
        registered = atexit(h_stop_wrapped) == 0;
    for (size_t i = 0; i < H_WRAPPED_MAX; i++) {
        if (h_wrapped[i] <= 0) {
            h_wrapped[i] = pid;
            return;
        }
    }
}

/* ---- what the daemons said, for a failed test -----------------------------
 * Every byte the harness reads from a daemon's stdout or stderr is also
 * kept, the last H_TAIL of each stream, in a table of this process (a
 * test's h_proc may be on a stack a failed assertion has left), for the
 * first H_LOG_MAX daemons. When the test process exits (after the test,
 * passed or failed by an assertion, and after the daemons under a wrapper
 * were stopped; not when it crashes or is killed on a timeout), what the
 * pipes hold is read too and everything is written to
 * FULCRUM_TEST_LOG_DIR/<binary>.<suite>::<test>.log; scripts/test.sh prints
 * the logs of the tests that failed. */
struct h_log {
    pid_t pid;
    char name[48];
    int fd[2];               /* stdout, stderr; -1 once closed */
    char tail[2][H_TAIL];    /* a ring: byte k of the stream at k % H_TAIL */
    unsigned long long n[2]; /* bytes seen */
};

static struct h_log h_logs[H_LOG_MAX];
static size_t h_nlogs;

static struct h_log *h_log_of(int fd, int *which)
{
    for (size_t i = h_nlogs; i-- > 0;) { /* the newest: fd numbers are reused */
        for (int k = 0; k < 2; k++) {
            if (h_logs[i].fd[k] == fd && fd >= 0) {
                *which = k;
                return &h_logs[i];
            }
        }
    }
    return NULL;
}

static void h_log_bytes(int fd, const char *p, size_t len)
{
    int k;
    struct h_log *l = h_log_of(fd, &k);

    for (size_t i = 0; l && i < len; i++)
        l->tail[k][l->n[k]++ % H_TAIL] = p[i];
}

static void h_log_stream(FILE *f, struct h_log *l, int k)
{
    unsigned long long from = l->n[k] > H_TAIL ? l->n[k] - H_TAIL : 0;

    fprintf(f, "==== %s pid %d %s: %llu bytes%s\n", l->name, (int)l->pid, k ? "stderr" : "stdout",
            l->n[k], from ? ", the last ones" : "");
    for (unsigned long long i = from; i < l->n[k]; i++)
        fputc(l->tail[k][i % H_TAIL], f);
    if (l->n[k] && l->tail[k][(l->n[k] - 1) % H_TAIL] != '\n')
        fputc('\n', f);
}

static void h_log_write(void)
{
    const struct criterion_test *t = criterion_current_test;
    char exe[256], path[768];
    const char *bin;
    ssize_t elen = readlink("/proc/self/exe", exe, sizeof(exe) - 1); /* not BoxFort's name */
    FILE *f;

    if (h_nlogs == 0 || !t || elen <= 0 ||
        (mkdir(FULCRUM_TEST_LOG_DIR, 0755) == -1 && errno != EEXIST))
        return;
    exe[elen] = '\0';
    bin = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
    snprintf(path, sizeof(path), "%s/%s.%s::%s.log", FULCRUM_TEST_LOG_DIR, bin, t->category,
             t->name);
    if (!(f = fopen(path, "w")))
        return;
    for (size_t i = 0; i < h_nlogs; i++) {
        for (int k = 0; k < 2; k++) { /* what the pipe holds now: a live */
            char buf[4096];           /* daemon may never stop writing */
            struct pollfd pfd = {.fd = h_logs[i].fd[k], .events = POLLIN};
            ssize_t n = 1;

            for (int r = 0; r < 256 && pfd.fd >= 0 && n > 0 && poll(&pfd, 1, 0) == 1; r++)
                if ((n = read(pfd.fd, buf, sizeof(buf))) > 0)
                    h_log_bytes(pfd.fd, buf, (size_t)n);
        }
        h_log_stream(f, &h_logs[i], 1);
        h_log_stream(f, &h_logs[i], 0);
    }
    fclose(f);
}

static void h_log_add(const struct h_proc *p, const char *argv0)
{
    const char *base = strrchr(argv0, '/');
    struct h_log *l;

    if (h_nlogs == 0 && atexit(h_log_write) != 0)
        return;
    if (h_nlogs == H_LOG_MAX)
        return;
    l = &h_logs[h_nlogs++];
    l->pid = p->pid;
    snprintf(l->name, sizeof(l->name), "%s", base ? base + 1 : argv0);
    l->fd[0] = p->out.fd;
    l->fd[1] = p->err.fd;
    l->n[0] = l->n[1] = 0;
}

void h_close(struct h_proc *p)
{
    int k;

    for (int i = 0; i < 2; i++) {
        int fd = i ? p->err.fd : p->out.fd;
        struct h_log *l = h_log_of(fd, &k);

        if (l)
            l->fd[k] = -1;
        if (fd >= 0)
            close(fd);
    }
    p->out.fd = p->err.fd = -1;
}

void h_spawn_nofile(struct h_proc *p, char *const argv[], unsigned nofile)
{
    int out[2], err[2];
    pid_t self;

    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
    self = getpid();
    p->pid = fork();
    cr_assert_neq(p->pid, -1);
    if (p->pid == 0) {
        struct rlimit rl = {.rlim_cur = nofile, .rlim_max = nofile};

        h_child_setup(self);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        if (!nofile)
            h_exec(argv);
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    p->out.fd = out[0];
    p->err.fd = err[0];
    p->out.len = p->out.seen = p->err.len = p->err.seen = 0;
    h_log_add(p, argv[0]); /* first: its atexit runs after h_track's, */
    if (!nofile)           /* once valgrind has had its say */
        h_track(p->pid);
}

void h_spawn(struct h_proc *p, char *const argv[])
{
    h_spawn_nofile(p, argv, 0);
}

/* Returns a complete unseen line in s, NUL-terminated in place, or NULL. */
static const char *h_take_line(struct h_stream *s)
{
    char *start = s->buf + s->seen;
    char *nl = memchr(start, '\n', s->len - s->seen);

    if (!nl)
        return NULL;
    *nl = '\0';
    s->seen = (size_t)(nl - s->buf) + 1;
    return start;
}

static const char *h_line_until(struct h_proc *p, int which, long long deadline)
{
    struct h_stream *s = which == 1 ? &p->out : &p->err;

    for (;;) {
        const char *line = h_take_line(s);
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        long long left = deadline - h_now_ms();
        ssize_t n;

        if (line)
            return line;
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return NULL;
        if (s->len == sizeof(s->buf) - 1) { /* full: drop what was read */
            memmove(s->buf, s->buf + s->seen, s->len - s->seen);
            s->len -= s->seen;
            s->seen = 0;
        }
        n = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
        if (n <= 0)
            return NULL;
        h_log_bytes(s->fd, s->buf + s->len, (size_t)n);
        s->len += (size_t)n;
    }
}

const char *h_next_line(struct h_proc *p, int which, int timeout_ms)
{
    return h_line_until(p, which, h_now_ms() + h_scaled(timeout_ms));
}

const char *h_wait_for(struct h_proc *p, int which, const char *needle, int timeout_ms)
{
    long long deadline = h_now_ms() + h_scaled(timeout_ms);
    const char *line;

    while ((line = h_line_until(p, which, deadline)) != NULL) {
        if (strstr(line, needle))
            return line;
    }
    return NULL;
}

void h_signal(struct h_proc *p, int sig)
{
    if (p->pid > 0)
        kill(p->pid, sig);
}

int h_reap(struct h_proc *p, int timeout_ms)
{
    long long deadline = h_now_ms() + h_scaled(timeout_ms);
    int status;

    while (h_now_ms() < deadline) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);

        if (r == p->pid) {
            h_forget(p->pid);
            p->pid = 0;
            return status;
        }
        /* Wait for the child's pipe to close rather than spin. */
        struct pollfd pfd = {.fd = p->err.fd, .events = POLLIN};
        if (poll(&pfd, 1, 10) > 0) {
            char sink[4096];
            ssize_t n = read(p->err.fd, sink, sizeof(sink));

            if (n > 0)
                h_log_bytes(p->err.fd, sink, (size_t)n);
        }
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    h_forget(p->pid);
    p->pid = 0;
    return -1;
}

unsigned h_free_udp_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    cr_assert_neq(fd, -1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void h_write_key(const char *dir, const char *name)
{
    char path[256];
    unsigned char k[32];
    int fd = open("/dev/urandom", O_RDONLY);

    cr_assert_eq(read(fd, k, sizeof(k)), (ssize_t)sizeof(k));
    close(fd);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_neq(fd, -1);
    cr_assert_eq(write(fd, k, sizeof(k)), (ssize_t)sizeof(k));
    close(fd);
}

/* The directories h_make_keys made in this test process; removed, with
 * whatever the test put in them, when it exits. */
static char h_keydirs[8][64];
static size_t h_nkeydirs;

static int h_rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void h_rm_keydirs(void)
{
    for (size_t i = 0; i < h_nkeydirs; i++)
        nftw(h_keydirs[i], h_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

const char *h_make_keys(void)
{
    static char dir[64];

    snprintf(dir, sizeof(dir), "/tmp/fulcrum-it-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    h_write_key(dir, "key");
    h_write_key(dir, "otherkey");
    if (h_nkeydirs < sizeof(h_keydirs) / sizeof(h_keydirs[0]) &&
        (h_nkeydirs > 0 || atexit(h_rm_keydirs) == 0))
        memcpy(h_keydirs[h_nkeydirs++], dir, sizeof(dir));
    return dir;
}

unsigned h_tcp_sink(pid_t *pid)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    pid_t self;

    cr_assert_neq(fd, -1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 128), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    self = getpid();
    *pid = fork();
    cr_assert_neq(*pid, -1);
    if (*pid == 0) {
        h_child_setup(self);
        for (;;) {
            int c = accept(fd, NULL, NULL);

            if (c >= 0)
                close(c);
        }
    }
    close(fd);
    return ntohs(sa.sin_port);
}
