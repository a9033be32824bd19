/* test_admin.c - balancer/admin.c over real TCP on 127.0.0.1: the admin
 * server runs on a libev loop in a thread of the test process, against a
 * real node registry (two static nodes and one agent row) and counters set
 * by hand, optionally a real monitor fed a signed hello. Every endpoint, the
 * error statuses, the caps (8 KiB request, 64 connections), the idle
 * timeout and the request deadline, and drain/undrain. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "key.h"
#include "mon.h"
#include "nodes.h"
#include "proto.h"

#define NODE_A   "127.0.0.1:9001"
#define NODE_B   "127.0.0.1:9002"
#define AGENT    "cache-a"
#define MON_NODE "cache-m"

struct fixture {
    bool running;
    struct ev_loop *loop;
    ev_async stop;
    ev_async call;
    void (*call_fn)(void);
    sem_t call_done;
    pthread_t thr;
    struct lb_nodes *ns;
    struct lb_counters ctr;
    struct key_ring kr;
    struct mon *mon;
    struct lb_admin *adm;
    unsigned port;
};

static struct fixture fx;

/* ---- the server side ---- */

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void call_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    fx.call_fn();
    sem_post(&fx.call_done);
}

/* Runs fn on the loop's thread (the registry and the monitor are its). */
static void on_loop(void (*fn)(void))
{
    fx.call_fn = fn;
    ev_async_send(fx.loop, &fx.call);
    cr_assert_eq(sem_wait(&fx.call_done), 0);
}

static void *loop_main(void *arg)
{
    ev_run(fx.loop, 0);
    return NULL;
}

static struct sockaddr_in sin_of(const char *ip, unsigned port)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    cr_assert_eq(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    return sa;
}

static struct mon_node agent_row(const char *name, const char *ip, uint16_t port, unsigned w)
{
    struct mon_node r;
    uint64_t now = clock_mono_ms();

    memset(&r, 0, sizeof(r));
    snprintf(r.name, sizeof(r.name), "%s", name);
    snprintf(r.m.ip, sizeof(r.m.ip), "%s", ip);
    r.m.port = port;
    r.m.service_up = true;
    r.state = MON_UP;
    r.eff_weight = w;
    r.weight = w;
    r.last_ms = r.first_ms = r.up_since_ms = now;
    return r;
}

static void set_node(const char *name, unsigned active, uint64_t conns, uint64_t in, uint64_t out,
                     uint64_t fails, uint64_t ejections)
{
    struct lb_node *n = lb_nodes_find(fx.ns, name);

    cr_assert_not_null(n, "no node %s", name);
    atomic_store(&n->active, active);
    atomic_store(&n->conns_total, conns);
    atomic_store(&n->bytes_in, in);
    atomic_store(&n->bytes_out, out);
    atomic_store(&n->connect_failures, fails);
    atomic_store(&n->ejections, ejections);
}

/* Starts the admin server: idle timeout (0: the default), with a real
 * monitor or none, and `extra` static nodes on ports 10000.. */
static void start(double idle, bool with_mon, unsigned extra)
{
    struct lb_nodes_cfg ncfg = {.slowstart_ms = 0, .stale_ms = 60000, .grace_ms = 10000};
    struct sockaddr_in a = sin_of("127.0.0.1", 9001), b = sin_of("127.0.0.1", 9002);
    struct sockaddr_in any = sin_of("127.0.0.1", 0);
    struct mon_node row = agent_row(AGENT, "127.0.0.1", 9100, 50);
    struct lb_admin_ctx ctx;
    char err[256] = "";

    fx.ns = lb_nodes_new(&ncfg);
    cr_assert_eq(lb_nodes_add_static(fx.ns, &a), 0);
    cr_assert_eq(lb_nodes_add_static(fx.ns, &b), 0);
    for (unsigned i = 0; i < extra; i++) {
        struct sockaddr_in x = sin_of("127.0.0.1", 10000 + i);

        cr_assert_eq(lb_nodes_add_static(fx.ns, &x), 0);
    }
    if (!with_mon)
        lb_nodes_sync(fx.ns, &row, 1, clock_mono_ms());
    set_node(NODE_A, 3, 10, 1000, 2000, 1, 0);
    set_node(NODE_B, 0, 5, 500, 600, 4, 2);

    atomic_store(&fx.ctr.accepted, 42);
    atomic_store(&fx.ctr.refused_maxconn, 2);
    atomic_store(&fx.ctr.refused_emfile, 1);
    atomic_store(&fx.ctr.retries, 5);
    atomic_store(&fx.ctr.panic_picks, 6);
    atomic_store(&fx.ctr.ended[LB_END_DONE], 7);
    atomic_store(&fx.ctr.ended[LB_END_NO_NODE], 8);
    atomic_store(&fx.ctr.active, 3);

    fx.loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(fx.loop);
    if (with_mon) {
        struct mon_cfg mcfg;

        fx.kr.n = 1;
        memset(fx.kr.k[0], 0x5a, sizeof(fx.kr.k[0]));
        mon_cfg_default(&mcfg);
        mcfg.group.sin_port = 0; /* ephemeral: no clash with a real cluster */
        mcfg.probe_bind = any;
        mcfg.keys = &fx.kr;
        fx.mon = mon_new(fx.loop, &mcfg, err, sizeof(err));
        cr_assert_not_null(fx.mon, "mon_new: %s", err);
        /* One probe now and no round for an hour: the test's hello goes
         * to the probe socket, which hears every message type. */
        mcfg.interval = 3600;
    }
    if (fx.mon)
        mon_start(fx.mon);
    memset(&ctx, 0, sizeof(ctx));
    ctx.nodes = fx.ns;
    ctx.mon = fx.mon;
    ctx.ctr = &fx.ctr;
    ctx.policy = "weighted";
    ctx.workers = 2;
    ctx.maxconn = 1000;
    ctx.start_ms = clock_mono_ms();
    ctx.idle_timeout = idle;
    fx.adm = lb_admin_new(fx.loop, &any, &ctx, err, sizeof(err));
    cr_assert_not_null(fx.adm, "lb_admin_new: %s", err);
    fx.port = lb_admin_port(fx.adm);
    cr_assert_gt(fx.port, 0);

    ev_async_init(&fx.stop, stop_cb);
    ev_async_start(fx.loop, &fx.stop);
    ev_async_init(&fx.call, call_cb);
    ev_async_start(fx.loop, &fx.call);
    cr_assert_eq(sem_init(&fx.call_done, 0, 0), 0);
    cr_assert_eq(pthread_create(&fx.thr, NULL, loop_main, NULL), 0);
    fx.running = true;
}

static void stop(void)
{
    if (!fx.running)
        return;
    ev_async_send(fx.loop, &fx.stop);
    pthread_join(fx.thr, NULL);
    fx.running = false;
    lb_admin_free(fx.adm);
    fx.adm = NULL;
    mon_free(fx.mon);
    fx.mon = NULL;
    ev_loop_destroy(fx.loop);
    fx.loop = NULL;
    lb_nodes_free(fx.ns);
    fx.ns = NULL;
    sem_destroy(&fx.call_done);
}

TestSuite(admin, .fini = stop, .timeout = 30);

/* ---- the client side ---- */

struct resp {
    int code;
    char *raw;  /* whole response, NUL-terminated */
    char *body; /* into raw */
    size_t len, body_len;
    long clen; /* Content-Length, -1 if absent */
};

static void resp_free(struct resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof(*r));
}

static int dial(void)
{
    struct sockaddr_in sa = sin_of("127.0.0.1", fx.port);
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        cr_assert_gt(w, 0, "send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* Reads to EOF; returns the bytes read (0: closed without a response). A
 * reset counts as EOF only when reset_ok (a refused connection whose
 * request was never read). */
static size_t read_all_rst(int fd, char **out, bool reset_ok)
{
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);

    cr_assert_not_null(buf);
    for (;;) {
        ssize_t n;

        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        n = recv(fd, buf + len, cap - len - 1, 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == ECONNRESET && reset_ok)
            break;
        cr_assert_geq(n, 0, "recv: %s", strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    return len;
}

static size_t read_all(int fd, char **out)
{
    return read_all_rst(fd, out, false);
}

static void parse_resp(struct resp *r, bool head)
{
    char *end, *cl;

    cr_assert_gt(r->len, 12, "no response");
    cr_assert_eq(strncmp(r->raw, "HTTP/1.1 ", 9), 0, "status line: %.40s", r->raw);
    r->code = (int)strtol(r->raw + 9, NULL, 10);
    end = strstr(r->raw, "\r\n\r\n");
    cr_assert_not_null(end, "no end of headers");
    r->body = end + 4;
    r->body_len = r->len - (size_t)(r->body - r->raw);
    *end = '\0'; /* headers are a string of their own now */
    cl = strcasestr(r->raw, "\r\nContent-Length: ");
    r->clen = cl ? strtol(cl + 18, NULL, 10) : -1;
    cr_assert(strcasestr(r->raw, "\r\nConnection: close"), "no Connection: close");
    if (!head)
        cr_assert_eq((long)r->body_len, r->clen, "body %zu bytes, Content-Length %ld", r->body_len,
                     r->clen);
}

static struct resp exchange(const char *req, size_t n)
{
    struct resp r = {0};
    int fd = dial();

    send_all(fd, req, n);
    r.len = read_all(fd, &r.raw);
    close(fd);
    parse_resp(&r, !strncmp(req, "HEAD ", 5));
    return r;
}

static struct resp request(const char *method, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: test\r\nUser-Agent: t\r\n\r\n",
                     method, path);

    return exchange(req, (size_t)n);
}

static const char *header(const struct resp *r, const char *name)
{
    static char val[256];
    char key[64];
    const char *h;

    snprintf(key, sizeof(key), "\r\n%s: ", name);
    h = strcasestr(r->raw, key);
    if (!h)
        return NULL;
    h += strlen(key);
    snprintf(val, sizeof(val), "%.*s", (int)strcspn(h, "\r"), h);
    return val;
}

static cJSON *get_json(void)
{
    struct resp r = request("GET", "/status.json");
    cJSON *j;

    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(header(&r, "Content-Type"), "application/json");
    j = cJSON_ParseWithLength(r.body, r.body_len);
    cr_assert_not_null(j, "status.json does not parse");
    resp_free(&r);
    return j;
}

static const cJSON *json_node(const cJSON *root, const char *name)
{
    const cJSON *o;

    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(root, "nodes"))
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");

        if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
            return o;
    }
    return NULL;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    cr_assert(cJSON_IsNumber(v), "%s is not a number", key);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    cr_assert(cJSON_IsString(v), "%s is not a string", key);
    return v->valuestring;
}

static bool is_null(const cJSON *o, const char *key)
{
    return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool is_true(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    cr_assert(cJSON_IsBool(v), "%s is not a bool", key);
    return cJSON_IsTrue(v);
}

/* ---- Prometheus text format checks ---- */

static const char *metric_name(const char *p)
{
    if (!(*p == '_' || *p == ':' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return NULL;
    for (p++; *p == '_' || *p == ':' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9');
         p++)
        ;
    return p;
}

/* A sample line: name{label="value",...} number. The family must have had
 * a TYPE line (typed holds the families seen, space-separated). */
static bool sample_valid(const char *l, const char *typed)
{
    const char *p = metric_name(l), *v;
    char fam[128], key[132];
    char *end;

    if (!p || (size_t)(p - l) >= sizeof(fam))
        return false;
    snprintf(fam, sizeof(fam), "%.*s", (int)(p - l), l);
    snprintf(key, sizeof(key), " %s ", fam);
    if (!strstr(typed, key))
        return false;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            p = metric_name(p);
            if (!p || *p++ != '=' || *p++ != '"')
                return false;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    p++;
                    if (*p != '\\' && *p != '"' && *p != 'n')
                        return false;
                }
                p++;
            }
            if (*p++ != '"')
                return false;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return false;
        }
        p++;
    }
    if (*p++ != ' ')
        return false;
    v = p;
    strtod(v, &end);
    return end != v && *end == '\0';
}

/* Every line of /metrics is HELP, TYPE or a sample of a typed family. */
static void check_exposition(char *text)
{
    size_t cap = strlen(text) + 2, off = 1;
    char *typed = calloc(1, cap);
    char *save = NULL;
    size_t nlines = 0;

    cr_assert_not_null(typed);
    typed[0] = ' ';
    cr_assert(text[0] && text[strlen(text) - 1] == '\n', "does not end with a newline");
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        nlines++;
        if (!strncmp(l, "# HELP ", 7)) {
            const char *e = metric_name(l + 7);

            cr_assert(e && *e == ' ' && e[1], "bad HELP line: %s", l);
        } else if (!strncmp(l, "# TYPE ", 7)) {
            const char *e = metric_name(l + 7);

            cr_assert(e && *e == ' ', "bad TYPE line: %s", l);
            cr_assert(!strcmp(e + 1, "counter") || !strcmp(e + 1, "gauge"), "bad type: %s", l);
            off += (size_t)snprintf(typed + off, cap - off, "%.*s ", (int)(e - (l + 7)), l + 7);
        } else {
            cr_assert(sample_valid(l, typed), "bad sample line: %s", l);
        }
    }
    cr_assert_gt(nlines, 20);
    free(typed);
}

/* ---- tests ---- */

Test(admin, status_json_has_nodes_and_counters)
{
    cJSON *j;
    const cJSON *a, *b, *g, *bal, *ended;

    start(0, false, 0);
    j = get_json();
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "round")));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "ts")));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "nodes")), 3);

    a = json_node(j, NODE_A);
    cr_assert_not_null(a);
    cr_assert_str_eq(str(a, "addr"), NODE_A);
    cr_assert_str_eq(str(a, "state"), "up");
    cr_assert_str_eq(str(a, "source"), "static");
    cr_assert_eq(num(a, "active"), 3);
    cr_assert_eq(num(a, "conns_total"), 10);
    cr_assert_eq(num(a, "bytes_in"), 1000);
    cr_assert_eq(num(a, "bytes_out"), 2000);
    cr_assert_eq(num(a, "connect_failures"), 1);
    cr_assert_eq(num(a, "ejections"), 0);
    cr_assert_eq(num(a, "lb_weight"), LB_STATIC_WEIGHT);
    cr_assert_not(is_true(a, "drain"));
    cr_assert(is_null(a, "cpu_idle") && is_null(a, "rtt_ms") && is_null(a, "service"));

    b = json_node(j, NODE_B);
    cr_assert_not_null(b);
    cr_assert_eq(num(b, "connect_failures"), 4);
    cr_assert_eq(num(b, "ejections"), 2);

    g = json_node(j, AGENT);
    cr_assert_not_null(g);
    cr_assert_str_eq(str(g, "source"), "agent");
    cr_assert_str_eq(str(g, "state"), "up");
    cr_assert_str_eq(str(g, "addr"), "127.0.0.1:9100");
    cr_assert_eq(num(g, "lb_weight"), 50);

    bal = cJSON_GetObjectItemCaseSensitive(j, "balancer");
    cr_assert_not_null(bal);
    cr_assert_eq(num(bal, "accepted"), 42);
    cr_assert_eq(num(bal, "refused_maxconn"), 2);
    cr_assert_eq(num(bal, "refused_emfile"), 1);
    cr_assert_eq(num(bal, "retries"), 5);
    cr_assert_eq(num(bal, "panic_picks"), 6);
    cr_assert_eq(num(bal, "active"), 3);
    cr_assert_eq(num(bal, "workers"), 2);
    cr_assert_str_eq(str(bal, "policy"), "weighted");
    cr_assert_geq(num(bal, "uptime_s"), 0);
    ended = cJSON_GetObjectItemCaseSensitive(bal, "ended");
    cr_assert_eq(num(ended, "done"), 7);
    cr_assert_eq(num(ended, "no_node"), 8);
    cr_assert_eq(num(ended, "stopped"), 0);
    cr_assert_eq(cJSON_GetArraySize(ended), LB_END_MAX);
    cr_assert(is_null(j, "monitor"));
    cJSON_Delete(j);
}

Test(admin, metrics_are_valid_exposition)
{
    struct resp r;

    start(0, false, 0);
    r = request("GET", "/metrics");
    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(header(&r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    cr_assert(strstr(r.body, "\nfulcrum_node_active_connections{node=\"" NODE_A "\"} 3\n"));
    cr_assert(strstr(r.body, "\nfulcrum_node_active_connections{node=\"" NODE_B "\"} 0\n"));
    cr_assert(strstr(r.body, "\nfulcrum_node_connections_total{node=\"" NODE_A "\"} 10\n"));
    cr_assert(strstr(r.body, "\nfulcrum_node_bytes_out_total{node=\"" NODE_A "\"} 2000\n"));
    cr_assert(strstr(r.body, "\nfulcrum_node_ejections_total{node=\"" NODE_B "\"} 2\n"));
    cr_assert(
        strstr(r.body, "\nfulcrum_node_weight{node=\"" NODE_A "\",addr=\"" NODE_A "\"} 100\n"));
    cr_assert(strstr(r.body, "\nfulcrum_node_state{node=\"" NODE_A "\",state=\"up\"} 1\n"));
    cr_assert(strstr(r.body, "\nfulcrum_node_state{node=\"" NODE_A "\",state=\"draining\"} 0\n"));
    cr_assert(strstr(r.body, "\nfulcrum_accepted_total 42\n"));
    cr_assert(strstr(r.body, "\nfulcrum_refused_total{reason=\"maxconn\"} 2\n"));
    cr_assert(strstr(r.body, "\nfulcrum_refused_total{reason=\"emfile\"} 1\n"));
    cr_assert(strstr(r.body, "\nfulcrum_connections_ended_total{reason=\"done\"} 7\n"));
    cr_assert(strstr(r.body, "\nfulcrum_active_connections 3\n"));
    cr_assert(strstr(r.body, "\n# TYPE fulcrum_node_connections_total counter\n"));
    cr_assert(strstr(r.body, "\n# TYPE fulcrum_node_active_connections gauge\n"));
    cr_assert(strstr(r.body, "\nfulcrum_admin_refused_total 0\n"));
    cr_assert_null(strstr(r.body, "fulcrum_monitor_"), "monitor metrics without a monitor");
    check_exposition(r.body);
    resp_free(&r);
}

Test(admin, status_text_and_html)
{
    struct resp r;

    start(0, false, 0);
    r = request("GET", "/status");
    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(header(&r, "Content-Type"), "text/plain; charset=utf-8");
    cr_assert(strstr(r.body, "NAME"), "no static table:\n%s", r.body);
    cr_assert(strstr(r.body, "\nNODE  "), "no balancer table:\n%s", r.body);
    cr_assert(strstr(r.body, "LB_WEIGHT\n"));
    cr_assert(strstr(r.body, NODE_A), "%s", r.body);
    cr_assert(strstr(r.body, AGENT), "%s", r.body);
    resp_free(&r);

    r = request("GET", "/?refresh=1");
    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(header(&r, "Content-Type"), "text/html; charset=utf-8");
    cr_assert(strstr(r.body, "<meta http-equiv=\"refresh\" content=\"2\">"));
    cr_assert(strstr(r.body, NODE_B));
    cr_assert_null(strstr(r.body, "src="), "external asset");
    cr_assert_null(strstr(r.body, "http://"), "external link");
    cr_assert_null(strstr(r.body, "https://"), "external link");
    resp_free(&r);

    r = request("HEAD", "/status.json");
    cr_assert_eq(r.code, 200);
    cr_assert_gt(r.clen, 100);
    cr_assert_eq(r.body_len, 0);
    resp_free(&r);
}

Test(admin, drain_and_undrain)
{
    struct lb_node *n;
    struct resp r;
    cJSON *j;

    start(0, false, 0);
    n = lb_nodes_find(fx.ns, NODE_A);
    cr_assert_eq(atomic_load(&n->weight), LB_STATIC_WEIGHT);

    r = request("POST", "/nodes/" NODE_A "/drain");
    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(header(&r, "Content-Type"), "application/json");
    cr_assert_str_eq(r.body, "{\"node\":\"" NODE_A "\",\"drain\":true}\n");
    resp_free(&r);
    cr_assert_eq(atomic_load(&n->weight), 0);
    j = get_json();
    cr_assert(is_true(json_node(j, NODE_A), "drain"));
    cr_assert_str_eq(str(json_node(j, NODE_A), "state"), "draining");
    cr_assert_eq(num(json_node(j, NODE_A), "lb_weight"), 0);
    cr_assert_not(is_true(json_node(j, NODE_B), "drain"));
    cJSON_Delete(j);
    r = request("GET", "/metrics");
    cr_assert(strstr(r.body, "\nfulcrum_node_state{node=\"" NODE_A "\",state=\"draining\"} 1\n"));
    cr_assert(strstr(r.body, "\nfulcrum_node_state{node=\"" NODE_A "\",state=\"up\"} 0\n"));
    resp_free(&r);

    /* agent nodes drain the same way */
    r = request("POST", "/nodes/" AGENT "/drain");
    cr_assert_eq(r.code, 200);
    resp_free(&r);
    cr_assert_eq(atomic_load(&lb_nodes_find(fx.ns, AGENT)->weight), 0);

    r = request("POST", "/nodes/" NODE_A "/undrain");
    cr_assert_eq(r.code, 200);
    cr_assert_str_eq(r.body, "{\"node\":\"" NODE_A "\",\"drain\":false}\n");
    resp_free(&r);
    cr_assert_eq(atomic_load(&n->weight), LB_STATIC_WEIGHT);
    j = get_json();
    cr_assert_not(is_true(json_node(j, NODE_A), "drain"));
    cr_assert_str_eq(str(json_node(j, NODE_A), "state"), "up");
    cJSON_Delete(j);
}

Test(admin, drain_errors)
{
    struct resp r;

    start(0, false, 0);
    r = request("POST", "/nodes/127.0.0.1:9999/drain");
    cr_assert_eq(r.code, 404);
    cr_assert_str_eq(header(&r, "Content-Type"), "application/json");
    resp_free(&r);
    r = request("POST", "/nodes/no%20such/drain");
    cr_assert_eq(r.code, 400);
    resp_free(&r);
    r = request("POST", "/nodes/" NODE_A "/explode");
    cr_assert_eq(r.code, 404);
    resp_free(&r);
    r = request("POST", "/nodes//drain");
    cr_assert_eq(r.code, 400);
    resp_free(&r);
    r = request("POST", "/nodes/"
                        "a123456789b123456789c123456789d123456789e123456789f123456789g1234"
                        "/drain");
    cr_assert_eq(r.code, 400);
    resp_free(&r);
    r = request("GET", "/nodes/" NODE_A "/drain");
    cr_assert_eq(r.code, 405);
    cr_assert_str_eq(header(&r, "Allow"), "POST");
    resp_free(&r);
    cr_assert_eq(atomic_load(&lb_nodes_find(fx.ns, NODE_A)->weight), LB_STATIC_WEIGHT);
}

Test(admin, unknown_path_and_method)
{
    struct resp r;

    start(0, false, 0);
    r = request("GET", "/nope");
    cr_assert_eq(r.code, 404);
    resp_free(&r);
    r = request("GET", "/status/");
    cr_assert_eq(r.code, 404);
    resp_free(&r);
    r = request("PUT", "/status");
    cr_assert_eq(r.code, 405);
    cr_assert_str_eq(header(&r, "Allow"), "GET, HEAD");
    resp_free(&r);
    r = request("POST", "/metrics");
    cr_assert_eq(r.code, 405);
    resp_free(&r);
    r = request("GET", "/metrics?name[]=x");
    cr_assert_eq(r.code, 200);
    resp_free(&r);
}

Test(admin, oversize_and_garbage)
{
    char *big = malloc(9 * 1024 + 64);
    const char garbage[] = "\x01\x02\x03 hello there\r\n\r\n";
    const char body_big[] =
        "POST /nodes/x/drain HTTP/1.1\r\nHost: t\r\nContent-Length: 9000\r\n\r\n";
    struct resp r;
    size_t n;

    start(0, false, 0);
    cr_assert_not_null(big);
    n = (size_t)snprintf(big, 64, "GET /status HTTP/1.1\r\nX-Pad: ");
    memset(big + n, 'a', 9 * 1024 - n - 4);
    memcpy(big + 9 * 1024 - 4, "\r\n\r\n", 4);
    r = exchange(big, 9 * 1024);
    cr_assert_eq(r.code, 431);
    resp_free(&r);

    /* a body past the buffer: the headers were fine */
    memcpy(big, body_big, sizeof(body_big) - 1);
    memset(big + sizeof(body_big) - 1, 'b', 9000);
    r = exchange(big, sizeof(body_big) - 1 + 9000);
    cr_assert_eq(r.code, 413);
    resp_free(&r);
    free(big);

    r = exchange(garbage, sizeof(garbage) - 1);
    cr_assert_eq(r.code, 400);
    resp_free(&r);
    r = exchange("GET /status HTTP/9.9\r\n\r\n", 24);
    cr_assert_eq(r.code, 505);
    resp_free(&r);
    r = exchange("GET status HTTP/1.1\r\n\r\n", 23);
    cr_assert_eq(r.code, 400);
    resp_free(&r);
}

Test(admin, request_in_pieces)
{
    const char req[] = "GET /status.json?x=1 HTTP/1.1\r\nHost: t\r\n\r\n";
    struct resp r = {0};
    int fd;

    start(0, false, 0);
    fd = dial();
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        struct timespec ts = {.tv_nsec = 2000000};

        send_all(fd, req + i, 1);
        nanosleep(&ts, NULL);
    }
    r.len = read_all(fd, &r.raw);
    close(fd);
    parse_resp(&r, false);
    cr_assert_eq(r.code, 200);
    resp_free(&r);
}

Test(admin, idle_connections_time_out)
{
    uint64_t t0;
    char *out;
    int fd;

    start(0.3, false, 0);
    /* silent */
    fd = dial();
    t0 = clock_mono_ms();
    cr_assert_eq(read_all(fd, &out), 0);
    cr_assert_geq(clock_mono_ms() - t0, 250);
    cr_assert_lt(clock_mono_ms() - t0, 3000);
    free(out);
    close(fd);

    /* half a request, then silent */
    fd = dial();
    send_all(fd, "GET /sta", 8);
    t0 = clock_mono_ms();
    cr_assert_eq(read_all(fd, &out), 0);
    cr_assert_geq(clock_mono_ms() - t0, 250);
    cr_assert_lt(clock_mono_ms() - t0, 3000);
    free(out);
    close(fd);
}

Test(admin, trickling_client_is_cut)
{
    const char req[] = "GET /status HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    struct timespec ts = {.tv_nsec = 50000000};
    uint64_t t0;
    char *out;
    size_t i;
    int fd;

    start(0.3, false, 0);
    /* a byte every 50 ms is never idle, but the request is due in 0.6 s */
    fd = dial();
    t0 = clock_mono_ms();
    for (i = 0; i < sizeof(req) - 1; i++) {
        if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1)
            break;
        nanosleep(&ts, NULL);
    }
    cr_assert_lt(i, sizeof(req) - 1, "the whole request went through");
    cr_assert_lt(clock_mono_ms() - t0, 2000);
    cr_assert_eq(read_all_rst(fd, &out, true), 0);
    free(out);
    close(fd);
}

Test(admin, connection_cap)
{
    int fds[64], extra;
    char *out;
    struct resp r = {0};

    start(0, false, 0);
    for (int i = 0; i < 64; i++)
        fds[i] = dial();
    /* the 65th is accepted and closed at once */
    extra = dial();
    cr_assert_eq(read_all(extra, &out), 0);
    free(out);
    close(extra);
    for (int i = 0; i < 64; i++)
        close(fds[i]);
    /* the closes above reach the server in no particular order relative to
     * a new connection: retry until one is served */
    for (int tries = 0; tries < 200; tries++) {
        int fd = dial();

        send_all(fd, "GET /metrics HTTP/1.1\r\n\r\n", 25);
        r.len = read_all_rst(fd, &r.raw, true);
        close(fd);
        if (r.len)
            break;
        free(r.raw);
        r.raw = NULL;
    }
    parse_resp(&r, false);
    cr_assert_eq(r.code, 200);
    cr_assert(strstr(r.body, "\nfulcrum_admin_refused_total "));
    cr_assert_null(strstr(r.body, "\nfulcrum_admin_refused_total 0\n"));
    resp_free(&r);
}

Test(admin, large_cluster)
{
    struct resp r;
    cJSON *j;

    start(0, false, LB_NODES_MAX - 3); /* 2 static + 1 agent + these */
    j = get_json();
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "nodes")), LB_NODES_MAX);
    cr_assert_not_null(json_node(j, "127.0.0.1:14092"));
    cJSON_Delete(j);

    r = request("GET", "/metrics");
    cr_assert_eq(r.code, 200);
    cr_assert_gt(r.body_len, 1000000);
    check_exposition(r.body);
    resp_free(&r);
    r = request("GET", "/status");
    cr_assert_eq(r.code, 200);
    resp_free(&r);
    r = request("GET", "/");
    cr_assert_eq(r.code, 200);
    resp_free(&r);
}

/* ---- with a real monitor ---- */

static void send_hello(void)
{
    struct sockaddr_in to = sin_of("127.0.0.1", mon_probe_port(fx.mon));
    struct proto_msg m;
    char buf[PROTO_MAX_DGRAM];
    int fd, n;

    memset(&m, 0, sizeof(m));
    m.type = PROTO_HELLO;
    m.seq = 1;
    m.ts_ms = clock_wall_ms();
    proto_nonce_new(m.nonce);
    snprintf(m.name, sizeof(m.name), "%s", MON_NODE);
    memset(m.boot, 'b', PROTO_NONCE_HEX);
    snprintf(m.m.ip, sizeof(m.m.ip), "127.0.0.1");
    m.m.port = 9200;
    m.m.ram_free = 2e9;
    m.m.ram_total = 8e9;
    m.m.cpu_idle = 75;
    m.m.load1 = 0.5;
    m.m.uptime = 10;
    m.m.service_up = true;
    n = proto_encode(&m, &fx.kr, buf, sizeof(buf));
    cr_assert_gt(n, 0, "proto_encode: %d", n);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to)), n);
    close(fd);
}

static size_t mon_rows;

static void count_rows(void)
{
    mon_rows = mon_count(fx.mon);
}

static void sync_rows(void)
{
    struct mon_node rows[8];
    size_t n = mon_snapshot(fx.mon, rows, 8);

    lb_nodes_sync(fx.ns, rows, n, clock_mono_ms());
}

Test(admin, with_monitor)
{
    const cJSON *m, *mon;
    struct resp r;
    cJSON *j;

    start(0, true, 0);
    send_hello();
    for (int i = 0; i < 500 && !mon_rows; i++) {
        struct timespec ts = {.tv_nsec = 10000000};

        on_loop(count_rows);
        if (!mon_rows)
            nanosleep(&ts, NULL);
    }
    cr_assert_eq(mon_rows, 1, "the monitor never heard the hello");

    /* in the monitor's table, not yet in the registry: lb fields null */
    j = get_json();
    m = json_node(j, MON_NODE);
    cr_assert_not_null(m);
    cr_assert_eq(num(m, "cpu_idle"), 75);
    cr_assert(is_null(m, "active"));
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "nodes")), 3);
    mon = cJSON_GetObjectItemCaseSensitive(j, "monitor");
    cr_assert(cJSON_IsObject(mon));
    cr_assert_eq(num(mon, "hellos"), 1);
    cJSON_Delete(j);

    on_loop(sync_rows);
    j = get_json();
    m = json_node(j, MON_NODE);
    cr_assert_not_null(m);
    cr_assert_str_eq(str(m, "source"), "agent");
    cr_assert_str_eq(str(m, "addr"), "127.0.0.1:9200");
    cr_assert_eq(num(m, "cpu_idle"), 75);
    cr_assert_eq(num(m, "active"), 0);
    cr_assert_gt(num(m, "lb_weight"), 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "nodes")), 3);
    cJSON_Delete(j);

    r = request("POST", "/nodes/" MON_NODE "/drain");
    cr_assert_eq(r.code, 200);
    resp_free(&r);
    cr_assert_eq(atomic_load(&lb_nodes_find(fx.ns, MON_NODE)->weight), 0);
    j = get_json();
    cr_assert(is_true(json_node(j, MON_NODE), "drain"));
    cr_assert_str_eq(str(json_node(j, MON_NODE), "state"), "draining");
    cJSON_Delete(j);
    /* a static node is unknown to the monitor: still drained, still 200 */
    r = request("POST", "/nodes/" NODE_B "/drain");
    cr_assert_eq(r.code, 200);
    resp_free(&r);

    r = request("GET", "/metrics");
    cr_assert_eq(r.code, 200);
    cr_assert(strstr(r.body, "\nfulcrum_monitor_hellos_total 1\n"));
    cr_assert(strstr(r.body, "\nfulcrum_monitor_dropped_total{reason=\"bad_mac\"} 0\n"));
    cr_assert(strstr(r.body, "\nfulcrum_node_state{node=\"" MON_NODE "\",state=\"draining\"} 1\n"));
    check_exposition(r.body);
    resp_free(&r);

    r = request("GET", "/status");
    cr_assert_eq(r.code, 200);
    cr_assert(strstr(r.body, "round 0"), "%s", r.body);
    cr_assert(strstr(r.body, MON_NODE));
    cr_assert(strstr(r.body, "static  "), "%s", r.body);
    resp_free(&r);
}
