/* test_check.c - tests agent/check.c against real sockets on this host: a
 * server thread answers (or not) the way a cache node would, and the check
 * runs in its own libev loop until it calls back.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

struct result {
    int calls;
    bool up;
    char why[CHECK_WHY_MAX];
    struct ev_loop *loop;
};

static void on_result(void *arg, bool up, const char *why)
{
    struct result *r = arg;

    r->calls++;
    r->up = up;
    snprintf(r->why, sizeof(r->why), "%s", why);
    ev_break(r->loop, EVBREAK_ALL);
}

/* A listener on addr (port 0: any); returns its fd, the port in *port. */
static int listen_on(in_addr_t ip, unsigned *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = ip};
    socklen_t sl = sizeof(sa);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_neq(fd, -1);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* ---- a one-shot server thread ---- */

struct server {
    int lfd;
    const char *answer; /* NULL: close after the request without a word */
    bool trickle;       /* one byte per write */
    char request[1024]; /* what the check sent */
    struct sockaddr_in peer;
    pthread_t thr;
};

static void *server_run(void *arg)
{
    struct server *s = arg;
    socklen_t pl = sizeof(s->peer);
    int fd = accept(s->lfd, (struct sockaddr *)&s->peer, &pl);
    size_t have = 0;

    if (fd < 0)
        return NULL;
    while (have < sizeof(s->request) - 1 && !strstr(s->request, "\r\n\r\n")) {
        ssize_t n = read(fd, s->request + have, sizeof(s->request) - 1 - have);

        if (n <= 0)
            break;
        have += (size_t)n;
        s->request[have] = '\0';
    }
    for (size_t off = 0, len = s->answer ? strlen(s->answer) : 0; off < len;) {
        ssize_t n = send(fd, s->answer + off, s->trickle ? 1 : len - off, MSG_NOSIGNAL);

        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    return NULL;
}

static unsigned server_start(struct server *s, in_addr_t ip, const char *answer, bool trickle)
{
    unsigned port;

    memset(s, 0, sizeof(*s));
    s->lfd = listen_on(ip, &port);
    s->answer = answer;
    s->trickle = trickle;
    cr_assert_eq(pthread_create(&s->thr, NULL, server_run, s), 0);
    return port;
}

static void server_join(struct server *s)
{
    pthread_join(s->thr, NULL);
    close(s->lfd);
}

/* ---- running one check ---- */

static struct result run_at(enum check_kind kind, const struct sockaddr_in *sa, const char *path,
                            double timeout)
{
    struct result r = {.loop = ev_loop_new(EVFLAG_AUTO)};
    struct check ck;
    char err[256];

    cr_assert_eq(check_init(&ck, r.loop, kind, sa, path, timeout, on_result, &r, err, sizeof(err)),
                 0, "%s", err);
    cr_assert(check_start(&ck));
    if (r.calls == 0) {
        cr_assert(check_running(&ck));
        cr_assert_not(check_start(&ck), "a second check started while one runs");
        ev_run(r.loop, 0);
    }
    cr_assert_eq(r.calls, 1, "called back %d times", r.calls);
    cr_assert_not(check_running(&ck));
    check_cancel(&ck); /* a no-op now */
    ev_loop_destroy(r.loop);
    return r;
}

static struct result run(enum check_kind kind, unsigned port, double timeout)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};

    return run_at(kind, &sa, "/_fulcrum/stats", timeout);
}

static struct result http_answer(const char *answer, bool trickle, struct server *s)
{
    unsigned port = server_start(s, htonl(INADDR_LOOPBACK), answer, trickle);
    struct result r = run(CHECK_HTTP, port, 5.0);

    server_join(s);
    return r;
}

Test(check, http_2xx_is_up_and_the_request_is_a_plain_get)
{
    struct server s;
    struct result r = http_answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, &s);

    cr_assert(r.up, "down: %s", r.why);
    cr_assert(strncmp(s.request, "GET /_fulcrum/stats HTTP/1.1\r\n", 30) == 0, "%s", s.request);
    cr_assert(strstr(s.request, "\r\nHost: 127.0.0.1:"), "%s", s.request);
    cr_assert(strstr(s.request, "\r\nConnection: close\r\n"), "%s", s.request);
}

Test(check, http_status_line_in_single_bytes_and_other_2xx_are_up)
{
    struct server s;
    struct result r = http_answer("HTTP/1.0 204 No Content\r\n\r\n", true, &s);

    cr_assert(r.up, "down: %s", r.why);
    r = http_answer("HTTP/1.1 299 Whatever\n\n", false, &s);
    cr_assert(r.up, "down: %s", r.why);
}

Test(check, http_other_statuses_are_down_with_the_code)
{
    static const char *const answers[] = {
        "HTTP/1.1 403 Forbidden\r\n\r\n", "HTTP/1.1 503 Service Unavailable\r\n\r\n",
        "HTTP/1.1 301 Moved\r\nLocation: /x\r\n\r\n", "HTTP/1.1 199 Odd\r\n\r\n"};
    static const char *const whys[] = {"HTTP 403", "HTTP 503", "HTTP 301", "HTTP 199"};

    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
        struct server s;
        struct result r = http_answer(answers[i], false, &s);

        cr_assert_not(r.up, "%s counted as up", answers[i]);
        cr_assert_str_eq(r.why, whys[i]);
    }
}

Test(check, http_garbage_and_silent_close_are_down)
{
    static char longline[400];
    struct server s;
    struct result r = http_answer("SSH-2.0-OpenSSH_9.2\r\n", false, &s);

    cr_assert_not(r.up);
    cr_assert_str_eq(r.why, "not an HTTP answer");
    memset(longline, 'x', sizeof(longline) - 1);
    r = http_answer(longline, false, &s);
    cr_assert_not(r.up);
    cr_assert_str_eq(r.why, "not an HTTP answer");
    r = http_answer(NULL, false, &s);
    cr_assert_not(r.up);
    cr_assert_str_eq(r.why, "closed before answering");
}

/* A listener nobody accepts on: the kernel still completes the handshake,
 * which is what a SIGSTOPped cache process looks like from outside. */
Test(check, stopped_server_passes_tcp_and_fails_http_by_timeout)
{
    unsigned port;
    int lfd = listen_on(htonl(INADDR_LOOPBACK), &port);
    struct result r = run(CHECK_TCP, port, 2.0);

    cr_assert(r.up, "tcp: %s", r.why);
    r = run(CHECK_HTTP, port, 0.2);
    cr_assert_not(r.up, "http check passed on a server that never answers");
    cr_assert_str_eq(r.why, strerror(ETIMEDOUT));
    close(lfd);
}

Test(check, refused_is_down_for_both)
{
    unsigned port;
    int lfd = listen_on(htonl(INADDR_LOOPBACK), &port);
    struct result r;

    close(lfd); /* nothing listens there now */
    r = run(CHECK_TCP, port, 2.0);
    cr_assert_not(r.up);
    cr_assert_str_eq(r.why, strerror(ECONNREFUSED));
    r = run(CHECK_HTTP, port, 2.0);
    cr_assert_not(r.up);
    cr_assert_str_eq(r.why, strerror(ECONNREFUSED));
}

Test(check, bad_settings_are_refused)
{
    static const char *const bad[] = {"", "x", "/a b", "/\x01", "/caf\xc3\xa9"};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char err[256], longpath[CHECK_PATH_MAX + 2];
    struct check ck;
    struct result r = {.loop = loop};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(
            check_init(&ck, loop, CHECK_HTTP, &sa, bad[i], 1, on_result, &r, err, sizeof(err)),
            -EINVAL, "path '%s' accepted", bad[i]);
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    cr_assert_eq(check_init(&ck, loop, CHECK_HTTP, &sa, longpath, 1, on_result, &r, err, 256),
                 -EINVAL);
    longpath[CHECK_PATH_MAX] = '\0';
    cr_assert_eq(check_init(&ck, loop, CHECK_HTTP, &sa, longpath, 1, on_result, &r, err, 256), 0,
                 "%s", err);
    cr_assert_eq(check_init(&ck, loop, CHECK_HTTP, &sa, "/", 0, on_result, &r, err, 256), -EINVAL);
    cr_assert_eq(check_init(&ck, loop, CHECK_KIND_MAX, &sa, "/", 1, on_result, &r, err, 256),
                 -EINVAL);
    cr_assert_eq(check_init(&ck, loop, CHECK_TCP, &sa, NULL, 1, on_result, &r, err, 256), 0);
    ev_loop_destroy(loop);
}

/* An IPv4 address of this host that is not a loopback one, or 0. */
static in_addr_t host_address(void)
{
    struct ifaddrs *ifs, *i;
    in_addr_t ip = 0;

    if (getifaddrs(&ifs) == -1)
        return 0;
    for (i = ifs; i && !ip; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !(i->ifa_flags & IFF_LOOPBACK) &&
            (i->ifa_flags & IFF_UP))
            ip = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
    }
    freeifaddrs(ifs);
    return ip;
}

/* fulcrum-cache answers /_fulcrum/stats to loopback clients only: an agent
 * beside its node, whose --service is the host's own address, must come
 * from 127.0.0.1 to be answered. */
Test(check, http_to_an_address_of_this_host_comes_from_loopback)
{
    in_addr_t ip = host_address();
    struct server s;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = ip};
    struct result r;

    if (!ip)
        cr_skip_test("no non-loopback IPv4 address on this host");
    sa.sin_port = htons((uint16_t)server_start(&s, ip, "HTTP/1.1 200 OK\r\n\r\n", false));
    r = run_at(CHECK_HTTP, &sa, "/_fulcrum/stats", 5.0);
    server_join(&s);
    cr_assert(r.up, "down: %s", r.why);
    cr_assert_eq(ntohl(s.peer.sin_addr.s_addr), INADDR_LOOPBACK, "the check came from %s",
                 inet_ntoa(s.peer.sin_addr));
}
