/* backend.c - stand-in backends and a blocking HTTP client for tests. */
#include "backend.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void be_serve_http(int fd, int id)
{
    char req[8192], resp[256], body[32];
    size_t have = 0;

    while (have < sizeof(req) - 1) {
        ssize_t n = read(fd, req + have, sizeof(req) - 1 - have);

        if (n <= 0)
            return;
        have += (size_t)n;
        req[have] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    snprintf(body, sizeof(body), "backend-%d", id);
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body),
             body);
    (void)!write(fd, resp, strlen(resp));
}

static void be_serve_echo(int fd)
{
    char buf[65536];
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t m = write(fd, buf + off, (size_t)(n - off));

            if (m <= 0)
                return;
            off += m;
        }
    }
    shutdown(fd, SHUT_WR);
}

static void be_serve_read_all(int fd)
{
    char buf[65536], resp[64];
    unsigned long long total = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0)
        total += (unsigned long long)n;
    snprintf(resp, sizeof(resp), "got %llu bytes", total);
    (void)!write(fd, resp, strlen(resp));
}

/* Sends 384 KiB, waits until the peer's kernel acked every byte (SIOCOUTQ
 * 0: it is all inside the balancer), then resets and says so on ev. */
static void be_serve_send_reset(int fd, int ev)
{
    static char data[384 << 10];
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    int outq = 1;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7);
    for (size_t off = 0; off < sizeof(data);) {
        ssize_t n = write(fd, data + off, sizeof(data) - off);

        if (n <= 0)
            return;
        off += (size_t)n;
    }
    for (int i = 0; i < 5000 && outq > 0; i++) { /* the kernel offers no event for this */
        struct timespec ts = {.tv_nsec = 1000 * 1000};

        if (ioctl(fd, SIOCOUTQ, &outq) == -1)
            return;
        nanosleep(&ts, NULL);
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    (void)!write(ev, "r", 1);
}

/* A slow stream: the pauses are the behaviour under test, not a wait. */
static void be_serve_trickle(int fd)
{
    static char chunk[65536];

    memset(chunk, 't', sizeof(chunk));
    for (int i = 0; i < 20; i++) {
        struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};

        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
            return;
        nanosleep(&ts, NULL);
    }
}

static void be_loop(int lfd, enum be_kind kind, int id, int ev)
{
    pid_t self = getpid();

    signal(SIGCHLD, SIG_IGN); /* connection children reap themselves */
    for (;;) {
        int fd = accept(lfd, NULL, NULL);

        if (fd < 0)
            continue;
        if (fork() == 0) {
            /* parent gone before the death signal was set: go too (an
             * orphan would hold the test's stdout open, and ctest waits) */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != self)
                _exit(0);
            close(lfd);
            if (kind == BE_HTTP)
                be_serve_http(fd, id);
            else if (kind == BE_ECHO)
                be_serve_echo(fd);
            else if (kind == BE_TRICKLE)
                be_serve_trickle(fd);
            else if (kind == BE_SEND_RESET)
                be_serve_send_reset(fd, ev);
            else
                be_serve_read_all(fd);
            close(fd);
            _exit(0);
        }
        close(fd);
    }
}

void be_start(struct backend *b, enum be_kind kind, int id)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int one = 1, evp[2], lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    pid_t self;

    cr_assert_neq(lfd, -1);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 512), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    b->port = ntohs(sa.sin_port);
    b->id = id;
    cr_assert_eq(pipe2(evp, O_CLOEXEC), 0);
    self = getpid();
    b->pid = fork();
    cr_assert_neq(b->pid, -1);
    if (b->pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != self)
            _exit(0);
        close(evp[0]);
        be_loop(lfd, kind, id, evp[1]);
    }
    close(evp[1]);
    b->event_fd = evp[0];
    close(lfd); /* listening before fork: ready as soon as we return */
}

int be_wait_event(struct backend *b, int timeout_ms)
{
    struct pollfd p = {.fd = b->event_fd, .events = POLLIN};
    char c;

    if (poll(&p, 1, timeout_ms) != 1 || read(b->event_fd, &c, 1) != 1)
        return -1;
    return 0;
}

void be_kill(struct backend *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, NULL, 0); /* gone, and its listener with it */
        b->pid = 0;
    }
}

int be_connect(unsigned port)
{
    return be_connect_for(port, 10);
}

int be_connect_for(unsigned port, int secs)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = secs};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        int r = -errno;

        close(fd);
        return r;
    }
    return fd;
}

ssize_t be_read_all(int fd, char *buf, size_t cap)
{
    size_t have = 0;

    while (have < cap) {
        ssize_t n = read(fd, buf + have, cap - have);

        if (n == 0)
            break;
        if (n < 0)
            return have ? (ssize_t)have : -errno;
        have += (size_t)n;
    }
    return (ssize_t)have;
}

int be_http(unsigned port, const char *method, const char *path, char *buf, size_t cap)
{
    char req[512];
    int fd = be_connect(port), code = -1;
    ssize_t n;

    if (fd < 0)
        return -1;
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", method,
             path);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
        goto out;
    n = be_read_all(fd, buf, cap - 1);
    if (n <= 0)
        goto out;
    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
        code = -1;
out:
    close(fd);
    return code;
}
