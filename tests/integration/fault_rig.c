/* fault_rig.c - daemons, cluster, recorded HTTP load and results for the
 * fault-injection tests (fault_rig.h). */
#include "fault_rig.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

#define FR_CACHE_BIN FULCRUM_BINARY_DIR "/cache/fulcrum-cache"
#define FR_AGENT_BIN FULCRUM_BINARY_DIR "/agent/fulcrum-agent"
#define FR_LB_BIN    FULCRUM_BINARY_DIR "/balancer/fulcrum-balancer"
#define FR_RESULTS   FULCRUM_BINARY_DIR "/faults"
#define FR_REQ_CAP   (1u << 17) /* requests recorded per load thread */

int64_t fr_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void fr_pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* ---- daemons ---- */

static size_t fr_argv_add(char **argv, size_t k, size_t cap, const char *const *extra)
{
    for (; extra && *extra; extra++) {
        cr_assert_lt(k, cap - 1, "too many arguments");
        argv[k++] = (char *)*extra;
    }
    argv[k] = NULL;
    return k;
}

void fr_node_start(struct fr_node *nd, const struct rig_origin *o, const char *name,
                   const char *const *extra)
{
    size_t k = 0, cap = sizeof(nd->argv) / sizeof(nd->argv[0]);

    /* The origin thread of this process writes to nodes that tests kill. */
    signal(SIGPIPE, SIG_IGN);
    memset(nd, 0, sizeof(*nd));
    snprintf(nd->name, sizeof(nd->name), "%s", name);
    snprintf(nd->s_listen, sizeof(nd->s_listen), "127.0.0.1:0");
    nd->argv[k++] = FR_CACHE_BIN;
    nd->argv[k++] = "--listen";
    nd->argv[k++] = nd->s_listen;
    nd->argv[k++] = "--name";
    nd->argv[k++] = nd->name;
    if (o) {
        snprintf(nd->s_origin, sizeof(nd->s_origin), "http://127.0.0.1:%u", o->port);
        nd->argv[k++] = "--origin";
        nd->argv[k++] = nd->s_origin;
    }
    fr_argv_add(nd->argv, k, cap, extra);
    fr_node_restart(nd);
}

void fr_node_restart(struct fr_node *nd)
{
    const char *line, *p;

    h_spawn(&nd->p, nd->argv);
    line = h_wait_for(&nd->p, 2, "ready listen=", FR_WAIT_MS);
    cr_assert_not_null(line, "fulcrum-cache %s did not start", nd->name);
    p = strstr(line, "listen=127.0.0.1:");
    cr_assert_not_null(p, "%s", line);
    nd->port = (unsigned)strtoul(p + 17, NULL, 10);
    p = strstr(line, "peer_listen=127.0.0.1:");
    nd->peer_port = p ? (unsigned)strtoul(p + 22, NULL, 10) : 0;
    /* Started again, it keeps this port. */
    snprintf(nd->s_listen, sizeof(nd->s_listen), "127.0.0.1:%u", nd->port);
}

void fr_proc_kill(struct h_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGCONT); /* a stopped process dies of SIGKILL too, but reap it awake */
    h_signal(p, SIGKILL);
    h_reap(p, FR_WAIT_MS);
    h_close(p);
}

void fr_node_kill(struct fr_node *nd)
{
    fr_proc_kill(&nd->p);
}

void fr_agent_start(struct fr_agent *ag, const char *name, unsigned port, const char *group,
                    const char *key, const char *check)
{
    char *argv[] = {FR_AGENT_BIN, "--name",      ag->name,      "--service",
                    ag->svc,      "--group",     (char *)group, "--key",
                    (char *)key,  "--check",     (char *)check, "--check-interval",
                    "0.2",        "--fall",      "2",           "--rise",
                    "2",          "--jitter-ms", "50",          NULL};

    snprintf(ag->name, sizeof(ag->name), "%s", name);
    snprintf(ag->svc, sizeof(ag->svc), "127.0.0.1:%u", port);
    h_spawn(&ag->p, argv);
    cr_assert_not_null(h_wait_for(&ag->p, 2, "ready name=", FR_WAIT_MS), "agent %s did not start",
                       name);
}

void fr_lb_start_nofile(struct fr_lb *b, unsigned nofile, unsigned port, const char *const *extra)
{
    char listen[32], *argv[64] = {FR_LB_BIN,     "--listen",  listen, "--admin",
                                  "127.0.0.1:0", "--workers", "2",    "--log-conns=no"};
    const char *line, *p;

    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    fr_argv_add(argv, 8, 64, extra);
    h_spawn_nofile(&b->p, argv, nofile);
    line = h_wait_for(&b->p, 2, "ready listen=", FR_WAIT_MS);
    cr_assert_not_null(line, "the balancer did not start");
    p = strstr(line, "listen=127.0.0.1:");
    cr_assert_not_null(p, "%s", line);
    b->port = (unsigned)strtoul(p + 17, NULL, 10);
    p = strstr(line, "admin=127.0.0.1:");
    cr_assert_not_null(p, "%s", line);
    b->admin = (unsigned)strtoul(p + 16, NULL, 10);
}

void fr_lb_start(struct fr_lb *b, unsigned port, const char *const *extra)
{
    fr_lb_start_nofile(b, 0, port, extra);
}

cJSON *fr_lb_status(const struct fr_lb *b)
{
    static _Thread_local char buf[1 << 18];
    const char *body;

    if (be_http(b->admin, "GET", "/status.json", buf, sizeof(buf)) != 200)
        return NULL;
    body = strstr(buf, "\r\n\r\n");
    return body ? cJSON_Parse(body + 4) : NULL;
}

static const cJSON *fr_status_node(const cJSON *st, const char *name)
{
    const cJSON *n;

    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(st, "nodes"))
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(n, "name");

        if (cJSON_IsString(nm) && !strcmp(nm->valuestring, name))
            return n;
    }
    return NULL;
}

long long fr_lb_num(const struct fr_lb *b, const char *name, const char *field)
{
    cJSON *st = fr_lb_status(b);
    const cJSON *o, *v;
    long long r = -1;

    if (!st)
        return -1;
    o = name ? fr_status_node(st, name) : cJSON_GetObjectItemCaseSensitive(st, "balancer");
    if (o && !strncmp(field, "ended.", 6)) {
        o = cJSON_GetObjectItemCaseSensitive(o, "ended");
        field += 6;
    }
    v = o ? cJSON_GetObjectItemCaseSensitive(o, field) : NULL;
    if (cJSON_IsNumber(v))
        r = (long long)v->valuedouble;
    cJSON_Delete(st);
    return r;
}

int64_t fr_lb_await_weight(const struct fr_lb *b, const char *name, bool zero, int timeout_ms)
{
    int64_t deadline = fr_now_us() + (int64_t)timeout_ms * 1000;

    while (fr_now_us() < deadline) {
        long long w = fr_lb_num(b, name, "lb_weight");

        if (w >= 0 && (zero ? w == 0 : w > 0))
            return fr_now_us();
        fr_pause_ms(20); /* polling the admin port: the counter is the signal */
    }
    return -1;
}

/* ---- the cluster ---- */

void fr_cluster_lb_start(struct fr_cluster *c, struct fr_lb *b, unsigned port,
                         const char *const *lb_extra)
{
    const char *args[48] = {
        "--key",       c->key, "--group",          c->group, "--interval",        "0.25",
        "--slowstart", "0",    "--timeout-server", "1",      "--timeout-connect", "0.5"};
    size_t k = 12;

    for (; lb_extra && *lb_extra && k < 47; lb_extra++)
        args[k++] = *lb_extra;
    args[k] = NULL;
    fr_lb_start(b, port, args);
}

void fr_cluster_await_all(struct fr_cluster *c)
{
    for (size_t i = 0; i < c->n; i++)
        cr_assert_neq(fr_lb_await_weight(&c->lb, c->names[i], false, FR_WAIT_MS), -1,
                      "%s never came into rotation", c->names[i]);
}

void fr_cluster_start(struct fr_cluster *c, size_t n, const char *check,
                      const char *const *node_extra, const char *const *lb_extra)
{
    static const char *const names[FR_NODES_MAX] = {"cache-0", "cache-1", "cache-2", "cache-3"};

    cr_assert_leq(n, FR_NODES_MAX);
    memset(c, 0, sizeof(*c));
    c->n = n;
    rig_origin_start(&c->origin);
    c->keydir = h_make_keys();
    snprintf(c->key, sizeof(c->key), "%s/key", c->keydir);
    snprintf(c->group, sizeof(c->group), "239.255.77.77:%u", h_free_udp_port());
    for (size_t i = 0; i < n; i++) {
        c->names[i] = names[i];
        fr_node_start(&c->node[i], &c->origin, names[i], node_extra);
        fr_agent_start(&c->agent[i], names[i], c->node[i].port, c->group, c->key, check);
    }
    fr_cluster_lb_start(c, &c->lb, 0, lb_extra);
    fr_cluster_await_all(c);
}

void fr_cluster_stop(struct fr_cluster *c)
{
    fr_proc_kill(&c->lb.p);
    for (size_t i = 0; i < c->n; i++) {
        fr_proc_kill(&c->agent[i].p);
        fr_proc_kill(&c->node[i].p);
    }
    rig_keys_remove(c->keydir);
}

/* ---- one request ---- */

/* The node named in X-Cache ("HIT from cache-1"), as an index, or -1. */
static int fr_node_of(const char *head, const char *const *names, size_t nnames)
{
    const char *x = strstr(head, "\r\nX-Cache: ");
    const char *from = x ? strstr(x, " from ") : NULL;
    const char *eol = from ? strstr(from, "\r\n") : NULL;

    if (!eol)
        return -1;
    from += 6;
    for (size_t i = 0; i < nnames; i++) {
        if (strlen(names[i]) == (size_t)(eol - from) && !strncmp(from, names[i], eol - from))
            return (int)i;
    }
    return -1;
}

enum fr_outcome fr_get(unsigned port, const char *path, const char *const *names, size_t nnames,
                       int *node, char *buf, size_t cap)
{
    char req[256];
    int fd = be_connect_for(port, FR_CLIENT_S),
        n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
                     path);
    size_t have = 0, body;
    const char *end, *cl;
    int code = 0;

    *node = -1;
    if (fd == -EINPROGRESS || fd == -ETIMEDOUT)
        return FR_LOST; /* the handshake never completed */
    if (fd < 0)
        return FR_REFUSED;
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return errno == EAGAIN ? FR_LOST : FR_RESET;
    }
    for (;;) {
        ssize_t r = read(fd, buf + have, cap - 1 - have);

        if (r == 0 || have == cap - 1)
            break;
        if (r < 0) {
            int e = errno;

            close(fd);
            if (e == EAGAIN || e == EWOULDBLOCK)
                return FR_LOST;
            return have ? FR_RESET : (e == ECONNRESET ? FR_RESET : FR_CLOSED);
        }
        have += (size_t)r;
    }
    close(fd);
    buf[have] = '\0';
    end = strstr(buf, "\r\n\r\n");
    if (!end || sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
        return FR_CLOSED;
    if (code != 200)
        return FR_BAD_STATUS;
    *node = fr_node_of(buf, names, nnames);
    body = have - (size_t)(end + 4 - buf);
    /* Cut short, and the Content-Length says so: a failure the client
     * sees. A whole length with other bytes: a wrong body served. */
    cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < end && strtoull(cl + 17, NULL, 10) > body)
        return FR_CLOSED;
    return rig_body_ok(path, end + 4, body) ? FR_OK : FR_BAD_BODY;
}

/* ---- load ---- */

static void *fr_load_run(void *arg)
{
    struct fr_thread *t = arg;
    struct fr_load *l = t->l;
    int64_t next = fr_now_us();
    unsigned k = (unsigned)t->id * 7;

    while (!atomic_load(&l->stop) && t->n < t->cap) {
        struct fr_req *r = &t->req[t->n];
        char path[64];
        int node;
        int64_t now;

        snprintf(path, sizeof(path), "%s%u", l->prefix, k++ % 64);
        r->start_us = fr_now_us();
        r->outcome =
            (uint8_t)fr_get(l->port, path, l->names, l->nnames, &node, t->buf, RIG_BIG + 65536);
        r->end_us = fr_now_us();
        r->node = (int8_t)node;
        /* read by fr_load_await_progress: a request is whole before it counts */
        __atomic_store_n(&t->n, t->n + 1, __ATOMIC_RELEASE);
        next += l->pace_us;
        now = fr_now_us();
        if (next > now)
            fr_pause_ms((int)((next - now) / 1000)); /* pacing the load, not a wait */
        else
            next = now;
    }
    return NULL;
}

/* A whole number from the environment within [min, max]; def when unset.
 * The long variants of bench/faults.sh set these. */
static long fr_env(const char *name, long def, long min, long max)
{
    const char *s = getenv(name);
    char *end;
    long v;

    if (!s || !*s)
        return def;
    errno = 0;
    v = strtol(s, &end, 10);
    cr_assert(!errno && !*end && v >= min && v <= max, "%s=%s: not a number in %ld..%ld", name, s,
              min, max);
    return v;
}

void fr_load_start(struct fr_load *l, unsigned port, int nthreads, int pace_us, const char *prefix,
                   const char *const *names, size_t nnames)
{
    /* FULCRUM_FAULTS_THREADS and _PACE_US: more, or faster, clients. */
    nthreads = (int)fr_env("FULCRUM_FAULTS_THREADS", nthreads, 1, FR_THREADS_MAX);
    pace_us = (int)fr_env("FULCRUM_FAULTS_PACE_US", pace_us, 100, 1000000);
    cr_assert_leq(nthreads, FR_THREADS_MAX);
    memset(l, 0, sizeof(*l));
    l->port = port;
    l->nthreads = nthreads;
    l->pace_us = pace_us;
    l->prefix = prefix;
    l->names = names;
    l->nnames = nnames;
    atomic_init(&l->stop, false);
    for (int i = 0; i < nthreads; i++) {
        struct fr_thread *t = &l->t[i];

        t->l = l;
        t->id = i;
        t->cap = FR_REQ_CAP;
        t->req = calloc(t->cap, sizeof(*t->req));
        t->buf = malloc(RIG_BIG + 65536);
        cr_assert(t->req && t->buf);
        cr_assert_eq(pthread_create(&t->thr, NULL, fr_load_run, t), 0);
    }
}

/* The number of requests thread t finished, read while it runs. */
static size_t fr_thread_done(const struct fr_thread *t)
{
    return __atomic_load_n(&t->n, __ATOMIC_ACQUIRE);
}

void fr_load_await_progress(struct fr_load *l, int64_t after)
{
    /* FULCRUM_FAULTS_HOLD_S: the load runs this much longer at every wait
     * (before the fault and after each reaction). */
    int64_t hold = fr_env("FULCRUM_FAULTS_HOLD_S", 0, 0, 3600) * 1000000;
    int64_t deadline = fr_now_us() + hold + (int64_t)FR_WAIT_MS * 1000;

    after += hold;
    for (int i = 0; i < l->nthreads; i++) {
        const struct fr_thread *t = &l->t[i];

        for (;;) {
            size_t n = fr_thread_done(t);

            if (n > 0 && t->req[n - 1].start_us >= after)
                break;
            cr_assert_lt(fr_now_us(), deadline, "load thread %d makes no progress", i);
            fr_pause_ms(10);
        }
    }
}

void fr_load_await_every_node(struct fr_load *l)
{
    int64_t deadline = fr_now_us() + (int64_t)FR_WAIT_MS * 1000;
    size_t seen[FR_THREADS_MAX] = {0};
    bool served[FR_NODES_MAX] = {false};
    size_t missing = l->nnames;

    cr_assert_leq(l->nnames, FR_NODES_MAX);
    for (;;) {
        for (int i = 0; i < l->nthreads; i++) {
            const struct fr_thread *t = &l->t[i];
            size_t n = fr_thread_done(t);

            for (; seen[i] < n; seen[i]++) {
                const struct fr_req *r = &t->req[seen[i]];

                if (r->outcome == FR_OK && r->node >= 0 && (size_t)r->node < l->nnames &&
                    !served[r->node]) {
                    served[r->node] = true;
                    missing--;
                }
            }
        }
        if (!missing)
            return;
        for (size_t k = 0; k < l->nnames; k++)
            cr_assert(served[k] || fr_now_us() < deadline, "%s has served no request", l->names[k]);
        fr_pause_ms(10);
    }
}

void fr_load_stop(struct fr_load *l)
{
    atomic_store(&l->stop, true);
    for (int i = 0; i < l->nthreads; i++)
        pthread_join(l->t[i].thr, NULL);
}

void fr_load_free(struct fr_load *l)
{
    for (int i = 0; i < l->nthreads; i++) {
        free(l->t[i].req);
        free(l->t[i].buf);
        l->t[i].req = NULL;
        l->t[i].buf = NULL;
    }
}

void fr_load_sum(const struct fr_load *l, int64_t from_us, int64_t to_us, struct fr_sum *s)
{
    memset(s, 0, sizeof(*s));
    s->first_fail_start = s->last_fail_start = -1;
    for (int i = 0; i < l->nthreads; i++) {
        for (size_t j = 0, n = fr_thread_done(&l->t[i]); j < n; j++) {
            const struct fr_req *r = &l->t[i].req[j];

            if (r->start_us < from_us || r->start_us >= to_us)
                continue;
            s->sent++;
            s->by[r->outcome]++;
            if (r->outcome == FR_OK) {
                s->ok++;
                if (r->end_us - r->start_us > s->max_ok_us)
                    s->max_ok_us = r->end_us - r->start_us;
                if (r->node >= 0 && r->node < FR_NODES_MAX)
                    s->ok_node[r->node]++;
                continue;
            }
            s->failed++;
            if (s->first_fail_start < 0 || r->start_us < s->first_fail_start)
                s->first_fail_start = r->start_us;
            if (r->start_us > s->last_fail_start)
                s->last_fail_start = r->start_us;
        }
    }
}

int64_t fr_load_first_ok(const struct fr_load *l, int64_t after)
{
    int64_t best = -1;

    for (int i = 0; i < l->nthreads; i++) {
        for (size_t j = 0, n = fr_thread_done(&l->t[i]); j < n; j++) {
            const struct fr_req *r = &l->t[i].req[j];

            if (r->start_us >= after && r->outcome == FR_OK && (best < 0 || r->end_us < best))
                best = r->end_us;
        }
    }
    return best;
}

/* ---- results ---- */

static const char *const fr_outcome_names[FR_OUTCOME_MAX] = {
    "ok", "refused", "closed", "reset", "lost", "bad_status", "bad_body"};

const char *fr_sum_text(const struct fr_sum *s)
{
    static char buf[256];
    size_t off = 0;

    for (int i = 1; i < FR_OUTCOME_MAX; i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s=%llu", i > 1 ? " " : "",
                                fr_outcome_names[i], (unsigned long long)s->by[i]);
    return buf;
}

void fr_report(const char *name, const struct fr_sum *s, const char *fmt, ...)
{
    char extra[512], line[1024], path[256];
    va_list ap;
    FILE *f;

    va_start(ap, fmt);
    vsnprintf(extra, sizeof(extra), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line),
             "case=%s sent=%llu ok=%llu failed=%llu lost=%llu bad_body=%llu max_ms=%.0f %s (%s)\n",
             name, (unsigned long long)s->sent, (unsigned long long)s->ok,
             (unsigned long long)s->failed, (unsigned long long)s->by[FR_LOST],
             (unsigned long long)s->by[FR_BAD_BODY], (double)s->max_ok_us / 1000.0, extra,
             fr_sum_text(s));
    fputs(line, stderr);
    mkdir(FR_RESULTS, 0755);
    snprintf(path, sizeof(path), "%s/%s.txt", FR_RESULTS, name);
    f = fopen(path, "w");
    if (f) {
        fputs(line, f);
        fclose(f);
    }
}
