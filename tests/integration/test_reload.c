/* test_reload.c - fulcrum-balancer's reload (SIGUSR2) under load, and its
 * systemd notifications.
 *
 * Two cache nodes with agents and a balancer started with --config FILE
 * (fault_rig.c). Client threads send requests through the balancer all
 * along, on new connections (fr_load) and on keep-alive connections of 20
 * requests each (below), every answer checked against the origin's body.
 * Two reloads in a row (the second while the first old process may still
 * drain), then two with a broken configuration file. Asserted: not one
 * request failed; each old process exits 0 once its connections are done,
 * before --grace; the new one serves on the same port; a broken reload
 * leaves the running process serving and logs the error of the new one.
 *
 * systemd is not PID 1 here: the test binds a unix datagram socket, names
 * it in NOTIFY_SOCKET, and reads what the balancers send with the sender's
 * pid (SO_PASSCRED), as systemd does for NotifyAccess=main.
 *
 * Every balancer process writes to the one stderr pipe of the first; the
 * test reads the lines as they come and tells the processes apart by the
 * pid in each line. It is a subreaper, so it reaps the new processes when
 * the old ones exit.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "fault_rig.h"
#include "harness.h"

#define THREADS    4
#define PACE_US    4000
#define KA_THREADS 4
#define KA_PER_CON 20
#define KA_PACE_US 2000
#define SETTLE_US  1000000 /* load kept on after each step */
#define GRACE_S    "30"    /* longer than any wait here: an old process must not need it */
#define PROCS_MAX  8
#define NOTES_MAX  64

/* The new balancers are the old ones' children, re-parented to the test (a
 * subreaper) when those exit: a test that fails half-way must not leave
 * them running after it. Criterion runs this after each test, failed or
 * not. */
static void kill_children(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL) {
        char path[300], buf[512], *close_paren;
        FILE *f;
        int ppid = 0;
        pid_t pid = (pid_t)atoi(e->d_name);

        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (fgets(buf, sizeof(buf), f) && (close_paren = strrchr(buf, ')')) &&
            sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == getpid()) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        fclose(f);
    }
    if (d)
        closedir(d);
}

TestSuite(reload, .timeout = 240, .fini = kill_children);

static struct fr_cluster c;
static struct fr_load load;
static char dir[64], conf[96], sock_path[108];
static int nfd = -1;

/* ---- the balancer processes, from their log lines ---- */

struct rl_proc {
    pid_t pid;
    unsigned port, admin; /* from its ready line */
    bool ready, exited, grace_over;
    pid_t handed_to; /* "reload: new process N is ready" */
    int status;
};

static struct rl_proc procs[PROCS_MAX];
static size_t nprocs;
static char failed_line[1024];

static struct rl_proc *rl_proc(pid_t pid)
{
    for (size_t i = 0; i < nprocs; i++)
        if (procs[i].pid == pid)
            return &procs[i];
    cr_assert_lt(nprocs, PROCS_MAX, "too many balancer processes");
    procs[nprocs].pid = pid;
    return &procs[nprocs++];
}

static void rl_line(const char *line)
{
    const char *s = strstr(line, "fulcrum-balancer["), *e;
    struct rl_proc *p;

    if (!s)
        return;
    p = rl_proc((pid_t)strtol(s + 17, NULL, 10));
    if ((s = strstr(line, " ready listen=127.0.0.1:"))) {
        p->ready = true;
        p->port = (unsigned)strtoul(s + 24, NULL, 10);
        s = strstr(line, "admin=127.0.0.1:");
        p->admin = s ? (unsigned)strtoul(s + 16, NULL, 10) : 0;
    }
    if ((s = strstr(line, "reload: new process ")) && strstr(line, " is ready"))
        p->handed_to = (pid_t)strtol(s + 20, NULL, 10);
    if ((s = strstr(line, "reload: new process ")) && (e = strstr(s, " exited (status "))) {
        /* Its parent, still draining, reaped it: waitpid here never will. */
        struct rl_proc *q = rl_proc((pid_t)strtol(s + 20, NULL, 10));
        int code, sig;

        if (!q->exited && sscanf(e, " exited (status %d, signal %d)", &code, &sig) == 2) {
            q->exited = true;
            q->status = code >= 0 ? W_EXITCODE(code, 0) : W_EXITCODE(0, sig);
        }
    }
    if (strstr(line, "grace period over"))
        p->grace_over = true;
    if (strstr(line, "reload failed: "))
        snprintf(failed_line, sizeof(failed_line), "%s", line);
}

/* Reads log lines for up to ms, and reaps the processes that exited. */
static void rl_pump(int ms)
{
    const char *line;

    while ((line = h_next_line(&c.lb.p, 2, ms)) != NULL) {
        rl_line(line);
        ms = 1;
    }
    for (size_t i = 0; i < nprocs; i++) {
        int st;

        if (!procs[i].exited && waitpid(procs[i].pid, &st, WNOHANG) == procs[i].pid) {
            procs[i].exited = true;
            procs[i].status = st;
        }
    }
}

/* Pumps until *flag is true; false after the hang guard. */
static bool rl_until(const bool *flag)
{
    int64_t end = fr_now_us() + (int64_t)FR_WAIT_MS * 1000;

    while (!*flag && fr_now_us() < end)
        rl_pump(20);
    return *flag;
}

/* ---- what they tell the service manager ---- */

struct rl_note {
    pid_t from;
    char text[256];
};

static struct rl_note notes[NOTES_MAX];
static size_t nnotes;

static void rl_notes_read(void)
{
    for (;;) {
        char cbuf[CMSG_SPACE(sizeof(struct ucred))], text[256];
        struct iovec iov = {.iov_base = text, .iov_len = sizeof(text) - 1};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
        struct cmsghdr *cm;
        ssize_t n = recvmsg(nfd, &mh, MSG_DONTWAIT);

        if (n < 0)
            return;
        cr_assert_lt(nnotes, NOTES_MAX);
        text[n] = '\0';
        snprintf(notes[nnotes].text, sizeof(notes[nnotes].text), "%s", text);
        cm = CMSG_FIRSTHDR(&mh);
        if (cm && cm->cmsg_type == SCM_CREDENTIALS)
            notes[nnotes].from = ((struct ucred *)CMSG_DATA(cm))->pid;
        nnotes++;
    }
}

/* The index of the first note from `from` at or after *at holding both a
 * and b (b may be NULL); *at moves past it. Asserts it came. */
static void expect_note(size_t *at, pid_t from, const char *a, const char *b)
{
    int64_t end = fr_now_us() + (int64_t)FR_WAIT_MS * 1000;

    do {
        rl_notes_read();
        for (size_t i = *at; i < nnotes; i++) {
            if (notes[i].from == from && strstr(notes[i].text, a) &&
                (!b || strstr(notes[i].text, b))) {
                *at = i + 1;
                return;
            }
        }
        rl_pump(20);
    } while (fr_now_us() < end);
    cr_assert_fail("no notification '%s'%s%s from %d (got %zu)", a, b ? " with " : "", b ? b : "",
                   (int)from, nnotes);
}

static void notify_open(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int on = 1;

    snprintf(sock_path, sizeof(sock_path), "%s/notify", dir);
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(nfd, 0);
    cr_assert_eq(setsockopt(nfd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
    cr_assert_eq(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
    setenv("NOTIFY_SOCKET", sock_path, 1);
}

/* ---- keep-alive clients ---- */

struct ka_load {
    unsigned port;
    atomic_bool stop;
    atomic_ullong sent, ok, conns;
    atomic_ullong failed; /* any error: connect, close, status, body */
    pthread_t thr[KA_THREADS];
    char why[256]; /* the first failure */
    pthread_mutex_t mu;
};

static struct ka_load ka;

static void ka_fail(const char *what, const char *path)
{
    atomic_fetch_add(&ka.failed, 1);
    pthread_mutex_lock(&ka.mu);
    if (!ka.why[0])
        snprintf(ka.why, sizeof(ka.why), "%s (%s)", what, path);
    pthread_mutex_unlock(&ka.mu);
}

/* One request on fd; the whole answer read by its Content-Length. */
static bool ka_request(int fd, const char *path, char *buf, size_t cap)
{
    char req[128];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    size_t have = 0, head, len;
    const char *end = NULL, *cl;
    int code = 0;

    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return ka_fail("send", path), false;
    while (!end || have < head + len) {
        ssize_t r = read(fd, buf + have, cap - 1 - have);

        if (r <= 0)
            return ka_fail(r == 0 ? "closed" : strerror(errno), path), false;
        have += (size_t)r;
        buf[have] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n"))) {
            head = (size_t)(end + 4 - buf);
            cl = strcasestr(buf, "\r\nContent-Length:");
            if (!cl || cl > end || sscanf(buf, "HTTP/1.1 %d", &code) != 1 || code != 200)
                return ka_fail("bad answer", path), false;
            len = strtoul(cl + 17, NULL, 10);
            if (head + len >= cap)
                return ka_fail("too big", path), false;
        }
    }
    if (have != head + len || !rig_body_ok(path, buf + head, len))
        return ka_fail("wrong body", path), false;
    return true;
}

static void *ka_run(void *arg)
{
    char *buf = malloc(65536), path[32];
    unsigned k = (unsigned)(uintptr_t)arg * 11;
    struct timeval tv = {.tv_sec = FR_CLIENT_S};

    cr_assert_not_null(buf);
    while (!atomic_load(&ka.stop)) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)ka.port)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        atomic_fetch_add(&ka.conns, 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
            atomic_fetch_add(&ka.sent, 1);
            ka_fail("connect", strerror(errno));
            close(fd);
            continue;
        }
        for (int i = 0; i < KA_PER_CON && !atomic_load(&ka.stop); i++) {
            snprintf(path, sizeof(path), "/obj/%u", k++ % 64);
            atomic_fetch_add(&ka.sent, 1);
            if (!ka_request(fd, path, buf, 65536))
                break;
            atomic_fetch_add(&ka.ok, 1);
            usleep(KA_PACE_US); /* pacing the load, not a wait */
        }
        close(fd);
    }
    free(buf);
    return NULL;
}

static void ka_start(unsigned port)
{
    memset(&ka, 0, sizeof(ka));
    pthread_mutex_init(&ka.mu, NULL);
    ka.port = port;
    for (uintptr_t i = 0; i < KA_THREADS; i++)
        cr_assert_eq(pthread_create(&ka.thr[i], NULL, ka_run, (void *)i), 0);
}

static void ka_stop(void)
{
    atomic_store(&ka.stop, true);
    for (int i = 0; i < KA_THREADS; i++)
        pthread_join(ka.thr[i], NULL);
}

/* ---- the rig ---- */

static void write_conf(const char *extra)
{
    FILE *f = fopen(conf, "w");

    cr_assert_not_null(f);
    fprintf(f, "# test_reload\ngrace = %s\nreload-timeout = 10\n%s", GRACE_S, extra);
    cr_assert_eq(fclose(f), 0);
}

static void start(void)
{
    const char *lb_extra[] = {"--config", conf, NULL};

    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    snprintf(dir, sizeof(dir), "/tmp/fulcrum-reload.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/balancer.conf", dir);
    write_conf("");
    notify_open();
    fr_cluster_start(&c, 2, "tcp", NULL, lb_extra);
    *rl_proc(c.lb.p.pid) =
        (struct rl_proc){.pid = c.lb.p.pid, .port = c.lb.port, .admin = c.lb.admin, .ready = true};
    fr_load_start(&load, c.lb.port, THREADS, PACE_US, "/obj/", c.names, c.n);
    ka_start(c.lb.port);
    fr_load_await_progress(&load, fr_now_us());
}

static void finish(void)
{
    for (size_t i = 0; i < nprocs; i++) {
        if (!procs[i].exited && procs[i].pid != c.lb.p.pid) {
            kill(procs[i].pid, SIGKILL);
            waitpid(procs[i].pid, NULL, 0);
        }
    }
    fr_load_free(&load);
    fr_cluster_stop(&c);
    close(nfd);
    unlink(sock_path);
    unlink(conf);
    rmdir(dir);
}

/* Sends USR2 to `old`, waits for the new process it hands over to and for
 * that one's ready line; returns it. */
static struct rl_proc *reload(pid_t old, size_t *note_at)
{
    struct rl_proc *o = rl_proc(old), *n;

    cr_assert_eq(kill(old, SIGUSR2), 0);
    expect_note(note_at, old, "RELOADING=1", "MONOTONIC_USEC=");
    while (!o->handed_to && rl_until(&o->exited) == false)
        ;
    cr_assert_neq(o->handed_to, 0, "process %d handed over to nobody", (int)old);
    n = rl_proc(o->handed_to);
    cr_assert(rl_until(&n->ready), "new process %d never logged ready", (int)n->pid);
    cr_assert_eq(n->port, c.lb.port, "the new process listens elsewhere");
    {
        char want[32];

        snprintf(want, sizeof(want), "MAINPID=%d\n", (int)n->pid);
        expect_note(note_at, old, want, "READY=1");
    }
    c.lb.admin = n->admin;
    return n;
}

/* The old process exits 0 by itself, its connections done before --grace. */
static void expect_old_gone(struct rl_proc *o)
{
    cr_assert(rl_until(&o->exited), "old process %d still runs", (int)o->pid);
    if (o->pid == c.lb.p.pid)
        c.lb.p.pid = 0; /* reaped here */
    cr_assert(WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0, "old process %d: status %d",
              (int)o->pid, o->status);
    cr_assert_not(o->grace_over, "old process %d needed the grace period", (int)o->pid);
}

/* A reload with a broken file: the new process fails, `cur` keeps serving. */
static void expect_reload_refused(struct rl_proc *cur, size_t *note_at, const char *extra,
                                  const char *why)
{
    failed_line[0] = '\0';
    write_conf(extra);
    cr_assert_eq(kill(cur->pid, SIGUSR2), 0);
    expect_note(note_at, cur->pid, "RELOADING=1", NULL);
    expect_note(note_at, cur->pid, "READY=1", "reload failed");
    rl_pump(20);
    cr_assert(strstr(failed_line, "exited with status 2"), "%s", failed_line);
    cr_assert(strstr(failed_line, why), "the new process's error is not logged: %s", failed_line);
    cr_assert_not(cur->exited);
    cr_assert_eq(kill(cur->pid, 0), 0);
    fr_load_await_progress(&load, fr_now_us() + SETTLE_US);
}

Test(reload, under_load_twice_then_broken_config)
{
    struct fr_sum all, after, during;
    struct rl_proc *p0, *p1, *p2;
    size_t at = 0;
    long long accepted;
    int64_t t_end, t_p1_gone, t_usr2;

    start();
    p0 = rl_proc(c.lb.p.pid);
    expect_note(&at, p0->pid, "READY=1", NULL);

    /* Two reloads in a row: the second while the first old one drains. */
    t_usr2 = fr_now_us();
    p1 = reload(p0->pid, &at);
    p2 = reload(p1->pid, &at);
    expect_old_gone(p0);
    expect_old_gone(p1);
    t_p1_gone = fr_now_us();
    fr_load_await_progress(&load, t_p1_gone + SETTLE_US);
    fr_load_sum(&load, 0, fr_now_us(), &all);
    cr_assert_eq(all.failed, 0, "requests failed across two reloads: %s", fr_sum_text(&all));
    cr_assert_eq(atomic_load(&ka.failed), 0, "keep-alive requests failed across two reloads: %s",
                 ka.why);
    accepted = fr_lb_num(&c.lb, NULL, "accepted");
    cr_assert_gt(accepted, 0, "the newest process %d served nothing", (int)p2->pid);

    /* Broken files: a key the table does not know, a policy lb_run refuses,
     * an admin token file that is not there (the new process once served
     * on without an admin port). */
    expect_reload_refused(p2, &at, "bogus-key = 1\n", "bogus-key");
    expect_reload_refused(p2, &at, "policy = nosuch\n", "nosuch");
    expect_reload_refused(p2, &at, "admin-token-file = /nonexistent/admin.token\n",
                          "admin token file /nonexistent/admin.token");

    fr_load_stop(&load);
    ka_stop();
    t_end = fr_now_us();
    fr_load_sum(&load, 0, t_end, &all);
    fr_load_sum(&load, t_p1_gone, t_end, &after);
    fr_load_sum(&load, t_usr2, t_p1_gone, &during);
    fr_report("reload_twice", &all,
              "during_sent=%llu during_ms=%.0f after_sent=%llu ka_sent=%llu ka_ok=%llu "
              "ka_conns=%llu ka_failed=%llu p2_accepted=%lld",
              (unsigned long long)during.sent, (double)(t_p1_gone - t_usr2) / 1000.0,
              (unsigned long long)after.sent, (unsigned long long)atomic_load(&ka.sent),
              (unsigned long long)atomic_load(&ka.ok), (unsigned long long)atomic_load(&ka.conns),
              (unsigned long long)atomic_load(&ka.failed), accepted);
    cr_assert_eq(all.failed, 0, "requests failed: %s", fr_sum_text(&all));
    cr_assert_gt(during.sent, 0, "no load while the processes handed over");
    cr_assert_gt(after.ok, 0);
    cr_assert_eq(atomic_load(&ka.failed), 0, "keep-alive requests failed: %s", ka.why);
    cr_assert_gt(atomic_load(&ka.ok), 0);

    cr_assert_eq(kill(p2->pid, SIGTERM), 0);
    expect_note(&at, p2->pid, "STOPPING=1", NULL);
    cr_assert(rl_until(&p2->exited), "the last process did not stop");
    cr_assert(WIFEXITED(p2->status) && WEXITSTATUS(p2->status) == 0);
    finish();
}

/* A reload that raises --workers and whose new process never gets ready
 * (no node known: killed after reload-timeout). The clients that came in
 * the meantime are the old process's: none is reset. The new process used
 * to bind a socket of its own for each extra worker; with SO_REUSEPORT the
 * kernel queued new clients there at once, and they were reset when that
 * process was killed: 34 of 40 clients connecting at once; of these 40
 * one after the other, the first to land there (it waits for the kill). */
Test(reload, more_workers_and_a_failed_reload_reset_no_client, .timeout = 60)
{
    char cf[128], *argv[] = {FULCRUM_BINARY_DIR "/balancer/fulcrum-balancer", "--config", cf, NULL};
    const char *kd = h_make_keys(), *line;
    struct h_proc p;
    unsigned port = 0, resets = 0, served = 0;
    FILE *f;

    snprintf(cf, sizeof(cf), "%s/workers.conf", kd);
    for (int workers = 1; workers <= 4; workers += 3) {
        cr_assert_not_null(f = fopen(cf, "w"));
        fprintf(f,
                "listen = 127.0.0.1:0\nkey = %s/key\ngroup = 239.255.77.77:%u\ninterval = 1\n"
                "workers = %d\nreload-timeout = 1\ngrace = 1\n",
                kd, h_free_udp_port(), workers);
        cr_assert_eq(fclose(f), 0);
        if (workers == 1) {
            h_spawn(&p, argv);
            line = h_wait_for(&p, 2, "ready listen=127.0.0.1:", FR_WAIT_MS);
            cr_assert_not_null(line, "the balancer did not start");
            port = (unsigned)strtoul(strstr(line, "listen=127.0.0.1:") + 17, NULL, 10);
        }
    }
    cr_assert_eq(kill(p.pid, SIGUSR2), 0);
    cr_assert_not_null(h_wait_for(&p, 2, "reload: took over", FR_WAIT_MS),
                       "the new process did not take the listeners");
    for (int i = 0; i < 40; i++) { /* the old one, without a node, closes each */
        int fd = be_connect_for(port, 6);
        char b[16];
        ssize_t n;

        cr_assert_geq(fd, 0, "connect: %s", strerror(-fd));
        n = recv(fd, b, sizeof(b), 0);
        if (n == -1 && errno == ECONNRESET)
            resets++;
        else if (n == 0)
            served++;
        close(fd);
    }
    cr_assert_not_null(h_wait_for(&p, 2, "reload failed", FR_WAIT_MS), "the reload did not fail");
    cr_assert_eq(resets, 0, "%u of 40 clients were reset (%u closed cleanly)", resets, served);
    cr_assert_eq(served, 40);
    h_signal(&p, SIGTERM);
    cr_assert_neq(h_reap(&p, FR_WAIT_MS), -1);
}

/* The admin port's value in a "ready listen=... admin=127.0.0.1:PORT" line. */
static unsigned admin_port_of(const char *line)
{
    const char *a = line ? strstr(line, " admin=127.0.0.1:") : NULL;

    cr_assert_not_null(a, "no admin address in: %s", line ? line : "(no line)");
    return (unsigned)strtoul(a + 17, NULL, 10);
}

/* A drain and a weight override taken by the old process are the new
 * one's too: a reload used to put a node drained for maintenance back
 * into rotation without a word. */
Test(reload, drains_and_overrides_survive_a_reload, .timeout = 60)
{
    char *argv[] = {FULCRUM_BINARY_DIR "/balancer/fulcrum-balancer",
                    "--listen",
                    "127.0.0.1:0",
                    "--admin",
                    "127.0.0.1:0",
                    "--node",
                    "127.0.0.1:9",
                    "--node",
                    "127.0.0.1:10",
                    "--node",
                    "127.0.0.1:11",
                    NULL};
    char buf[8192];
    const char *line;
    struct h_proc p;
    unsigned admin;

    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); /* the new process: kill_children */
    h_spawn(&p, argv);
    admin = admin_port_of(h_wait_for(&p, 2, "ready listen=", FR_WAIT_MS));
    cr_assert_eq(be_http(admin, "POST", "/api/nodes/127.0.0.1:9/drain", buf, sizeof(buf)), 200);
    cr_assert_eq(
        be_http(admin, "POST", "/api/nodes/127.0.0.1:10/weight?weight=7", buf, sizeof(buf)), 200,
        "%s", buf);
    cr_assert_eq(kill(p.pid, SIGUSR2), 0);
    cr_assert_not_null(h_wait_for(&p, 2, "and the admin drains and weight overrides", FR_WAIT_MS));
    line = h_wait_for(&p, 2, "ready listen=", FR_WAIT_MS); /* the new process's */
    admin = admin_port_of(line);
    cr_assert_eq(be_http(admin, "GET", "/api/nodes/127.0.0.1:9", buf, sizeof(buf)), 200);
    cr_assert(strstr(buf, "\"drain\":true"), "the drain was lost: %s", buf);
    cr_assert_eq(be_http(admin, "GET", "/api/nodes/127.0.0.1:10", buf, sizeof(buf)), 200);
    cr_assert(strstr(buf, "\"override\":7"), "the override was lost: %s", buf);
    cr_assert(strstr(buf, "\"drain\":false"), "%s", buf);
    cr_assert_eq(be_http(admin, "GET", "/api/nodes/127.0.0.1:11", buf, sizeof(buf)), 200);
    cr_assert(strstr(buf, "\"override\":null") && strstr(buf, "\"drain\":false"),
              "an untouched node changed: %s", buf);
    h_signal(&p, SIGTERM); /* the first process: it has handed over */
    h_reap(&p, FR_WAIT_MS);
} /* the second one goes in kill_children */
