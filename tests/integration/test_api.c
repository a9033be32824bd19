/* test_api.c - the admin port's runtime API through fulcrumctl, run as a
 * real process against a real fulcrum-balancer with forked HTTP backends
 * (backend.c) and, for the override, real fulcrum-agents and the embedded
 * monitor (fault_rig.c starts them). What is checked: a weight override
 * moves the share of new connections and outlives monitor rounds, clearing
 * it brings the node back; drain/undrain; counters agree with the traffic;
 * config names a flag's source; the admin token (401 without, 200 with, a
 * bad one counted); the refusal to bind beyond loopback without a token;
 * fulcrumctl's exit codes. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "fault_rig.h"
#include "harness.h"

#define CTL_BIN FULCRUM_BINARY_DIR "/ctl/fulcrumctl"
#define WAIT_MS 15000
#define TOKEN   "s3cret-admin-token-0123456789"

/* Runs fulcrumctl --admin 127.0.0.1:admin [--token-file tok] --json ARGS...
 * (args NULL-terminated); returns its exit status, *out its parsed stdout
 * (NULL when none or not JSON; the caller frees). */
static int ctl(unsigned admin, const char *tok, cJSON **out, const char *const *args)
{
    char addr[32], *argv[16] = {CTL_BIN, "--admin", addr, "--json"};
    const char *line;
    struct h_proc p;
    int n = 4, st;

    snprintf(addr, sizeof(addr), "127.0.0.1:%u", admin);
    if (tok) {
        argv[n++] = "--token-file";
        argv[n++] = (char *)tok;
    }
    for (; *args && n < 15; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    h_spawn(&p, argv);
    line = h_next_line(&p, 1, WAIT_MS);
    if (out)
        *out = line ? cJSON_Parse(line) : NULL;
    st = h_reap(&p, WAIT_MS);
    cr_assert(st != -1 && WIFEXITED(st), "fulcrumctl did not exit");
    return WEXITSTATUS(st);
}

static double jget(const cJSON *o, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);

    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    cr_assert(cJSON_IsNumber(v), "no number %s.%s", a, b ? b : "");
    return v->valuedouble;
}

/* Which backend answers a request through the balancer; -1 on failure. */
static int backend_of(unsigned port)
{
    char buf[4096];
    const char *b;

    if (be_http(port, "GET", "/x", buf, sizeof(buf)) != 200)
        return -1;
    b = strstr(buf, "backend-");
    return b ? (int)strtol(b + 8, NULL, 10) : -1;
}

/* n requests; counts[i] gets backend i's share. */
static void spread(unsigned port, int n, int counts[2])
{
    counts[0] = counts[1] = 0;
    for (int i = 0; i < n; i++) {
        int id = backend_of(port);

        cr_assert(id == 0 || id == 1, "request %d failed", i);
        counts[id]++;
    }
}

static const char *token_file(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/fulcrum-api-XXXXXX");
    fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fchmod(fd, 0600), 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void two_static(struct backend be[2], struct fr_lb *b, const char *const *extra)
{
    char a[2][32];
    const char *args[24] = {"--node", a[0], "--node", a[1]};
    int n = 4;

    for (int i = 0; i < 2; i++) {
        be_start(&be[i], BE_HTTP, i);
        snprintf(a[i], sizeof(a[i]), "127.0.0.1:%u", be[i].port);
    }
    for (; extra && *extra && n < 23; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    fr_lb_start(b, 0, args);
}

static double monitor_rounds(unsigned admin)
{
    cJSON *j;
    double r;

    cr_assert_eq(ctl(admin, NULL, &j, (const char *const[]){"counters", NULL}), 0);
    r = jget(cJSON_GetObjectItemCaseSensitive(j, "counters"), "fulcrum_monitor_rounds_total", NULL);
    cJSON_Delete(j);
    return r;
}

/* A number of node name, through fulcrumctl node NAME. */
static double node_num(unsigned admin, const char *name, const char *field)
{
    cJSON *j;
    double v;

    cr_assert_eq(ctl(admin, NULL, &j, (const char *const[]){"node", name, NULL}), 0);
    v = jget(j, field, NULL);
    cJSON_Delete(j);
    return v;
}

/* Opens n connections through the balancer to echo nodes and keeps them:
 * each is relayed (a byte echoed) before the next, so every pick sees the
 * active counts of the ones before it. Returns how many went to name. */
static int hold(unsigned port, unsigned admin, const char *name, int *fds, int n)
{
    double before = node_num(admin, name, "conns_total");
    char ch;

    for (int i = 0; i < n; i++) {
        fds[i] = be_connect(port);
        cr_assert_geq(fds[i], 0);
        cr_assert_eq(write(fds[i], "x", 1), 1);
        cr_assert_eq(read(fds[i], &ch, 1), 1, "connection %d not relayed", i);
    }
    return (int)(node_num(admin, name, "conns_total") - before);
}

static void set_weight(unsigned admin, const char *name, const char *w)
{
    cJSON *j;

    cr_assert_eq(ctl(admin, NULL, &j, (const char *const[]){"weight", name, w, NULL}), 0);
    if (strcmp(w, "clear"))
        cr_assert_eq(jget(j, "override", NULL), strtol(w, NULL, 10));
    else
        cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "override")));
    cJSON_Delete(j);
}

/* Echo nodes behind agents, so the override meets real monitor rounds; the
 * weighted policy picks the lower active/weight of the two, and held
 * connections make the active counts exact. */
Test(api, weight_override_moves_shares_and_outlives_monitor_rounds, .timeout = 120)
{
    const char *dir = h_make_keys();
    char key[128], group[40], svc[32];
    struct backend be[2];
    struct fr_agent ag[2];
    struct fr_lb b;
    int fds[80], nfd = 0, got;
    double r0;

    snprintf(key, sizeof(key), "%s/key", dir);
    snprintf(group, sizeof(group), "239.255.77.77:%u", h_free_udp_port());
    for (int i = 0; i < 2; i++) {
        be_start(&be[i], BE_ECHO, i);
        snprintf(svc, sizeof(svc), "cache-%d", i);
        fr_agent_start(&ag[i], svc, be[i].port, group, key, "tcp");
    }
    fr_lb_start(&b, 0,
                (const char *const[]){"--key", key, "--group", group, "--interval", "0.2",
                                      "--slowstart", "0", NULL});
    for (int i = 0; i < 2; i++)
        cr_assert_neq(fr_lb_await_weight(&b, i ? "cache-1" : "cache-0", false, WAIT_MS), -1);

    /* weight 0: cache-0 gets no new connection */
    set_weight(b.admin, "cache-0", "0");
    cr_assert_eq(node_num(b.admin, "cache-0", "effective_weight"), 0);
    got = hold(b.port, b.admin, "cache-0", fds + nfd, 10);
    nfd += 10;
    cr_assert_eq(got, 0, "cache-0 at weight 0 got %d of 10", got);

    /* three monitor rounds later the override still holds */
    r0 = monitor_rounds(b.admin);
    while (monitor_rounds(b.admin) < r0 + 3)
        usleep(50000); /* polling the round counter: the counter is the signal */
    cr_assert_eq(node_num(b.admin, "cache-0", "override"), 0);
    cr_assert_eq(node_num(b.admin, "cache-0", "effective_weight"), 0);
    cr_assert_gt(node_num(b.admin, "cache-0", "weight"), 0, "the agent's weight still shows");
    got = hold(b.port, b.admin, "cache-0", fds + nfd, 10);
    nfd += 10;
    cr_assert_eq(got, 0, "after new rounds cache-0 got %d of 10", got);

    /* 1 against 256 with 20 open on cache-1: cache-0 takes one, then
     * 1 * 256 > active(cache-1) * 1 keeps the rest on cache-1 */
    set_weight(b.admin, "cache-0", "1");
    set_weight(b.admin, "cache-1", "256");
    got = hold(b.port, b.admin, "cache-0", fds + nfd, 20);
    nfd += 20;
    cr_assert_leq(got, 2, "cache-0 at weight 1 of 257 got %d of 20", got);

    /* clear: the agents' weights again, and cache-0 catches up */
    set_weight(b.admin, "cache-0", "clear");
    set_weight(b.admin, "cache-1", "clear");
    got = hold(b.port, b.admin, "cache-0", fds + nfd, 20);
    nfd += 20;
    cr_assert_geq(got, 10, "cleared cache-0 got only %d of 20", got);
    for (int i = 0; i < nfd; i++)
        close(fds[i]);
    fr_proc_kill(&b.p);
    for (int i = 0; i < 2; i++)
        fr_proc_kill(&ag[i].p);
}

Test(api, drain_and_undrain, .timeout = 60)
{
    struct backend be[2];
    struct fr_lb b;
    char name[32];
    int c[2];
    cJSON *j;

    two_static(be, &b, NULL);
    snprintf(name, sizeof(name), "127.0.0.1:%u", be[1].port);
    cr_assert_eq(ctl(b.admin, NULL, &j, (const char *const[]){"drain", name, NULL}), 0);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "drain")));
    cJSON_Delete(j);
    spread(b.port, 30, c);
    cr_assert_eq(c[1], 0, "a drained node got %d of 30", c[1]);
    cr_assert_eq(ctl(b.admin, NULL, &j, (const char *const[]){"undrain", name, NULL}), 0);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "drain")));
    cJSON_Delete(j);
    spread(b.port, 40, c);
    cr_assert_gt(c[1], 0, "the undrained node got nothing");
    fr_proc_kill(&b.p);
}

Test(api, counters_agree_with_traffic, .timeout = 60)
{
    struct backend be[2];
    struct fr_lb b;
    double total = 0;
    const cJSON *n;
    cJSON *j, *ctr;
    int c[2];

    two_static(be, &b, NULL);
    spread(b.port, 25, c);
    cr_assert_eq(ctl(b.admin, NULL, &j, (const char *const[]){"counters", NULL}), 0);
    ctr = cJSON_GetObjectItemCaseSensitive(j, "counters");
    cr_assert_eq(jget(ctr, "fulcrum_accepted_total", NULL), 25);
    cr_assert_eq(jget(ctr, "fulcrum_refused_total", "maxconn"), 0);
    cr_assert_gt(jget(ctr, "fulcrum_bytes_out_total", NULL), 0);
    cJSON_Delete(j);
    cr_assert_eq(ctl(b.admin, NULL, &j, (const char *const[]){"nodes", NULL}), 0);
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(j, "nodes")) total +=
        jget(n, "conns_total", NULL);
    cr_assert_eq(total, 25);
    cJSON_Delete(j);
    fr_proc_kill(&b.p);
}

Test(api, config_shows_values_and_sources, .timeout = 60)
{
    const char *file = token_file("retries = 5\nmaxconn = 999\n");
    struct backend be[2];
    struct fr_lb b;
    cJSON *j, *cfg;

    two_static(be, &b, (const char *const[]){"--config", file, "--maxconn", "1234", NULL});
    cr_assert_eq(ctl(b.admin, NULL, &j, (const char *const[]){"config", NULL}), 0);
    cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    cr_assert_eq(jget(cfg, "maxconn", "value"), 1234);
    cr_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "maxconn"), "source")
            ->valuestring,
        "flag");
    cr_assert_eq(jget(cfg, "retries", "value"), 5);
    cr_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "retries"), "source")
            ->valuestring,
        "file");
    cr_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "policy"), "source")
            ->valuestring,
        "default");
    cJSON_Delete(j);
    fr_proc_kill(&b.p);
    unlink(file);
}

Test(api, token_required_for_writes_and_bad_token_counted, .timeout = 60)
{
    char good[64], bad[64], name[32], path[96], buf[4096];
    struct backend be[2];
    struct fr_lb b;
    cJSON *j, *ctr;

    snprintf(good, sizeof(good), "%s", token_file(TOKEN "\n"));
    snprintf(bad, sizeof(bad), "%s", token_file("not-the-admin-token-at-all\n"));
    two_static(be, &b, (const char *const[]){"--admin-token-file", good, NULL});
    snprintf(name, sizeof(name), "127.0.0.1:%u", be[0].port);
    snprintf(path, sizeof(path), "/api/nodes/%s/weight?weight=3", name);
    cr_assert_eq(be_http(b.admin, "POST", path, buf, sizeof(buf)), 401);
    cr_assert(strstr(buf, "WWW-Authenticate: Bearer"), "%s", buf);
    cr_assert_eq(ctl(b.admin, NULL, NULL, (const char *const[]){"weight", name, "3", NULL}), 1);
    cr_assert_eq(ctl(b.admin, bad, NULL, (const char *const[]){"weight", name, "3", NULL}), 1);
    cr_assert_eq(ctl(b.admin, good, &j, (const char *const[]){"weight", name, "3", NULL}), 0);
    cr_assert_eq(jget(j, "override", NULL), 3);
    cJSON_Delete(j);
    /* reads from loopback stay open */
    cr_assert_eq(be_http(b.admin, "GET", "/metrics", buf, sizeof(buf)), 200);
    cr_assert_eq(ctl(b.admin, NULL, &j, (const char *const[]){"counters", NULL}), 0);
    ctr = cJSON_GetObjectItemCaseSensitive(j, "counters");
    cr_assert_eq(jget(ctr, "fulcrum_admin_auth_refused_total", "missing"), 2);
    cr_assert_eq(jget(ctr, "fulcrum_admin_auth_refused_total", "bad"), 1);
    cJSON_Delete(j);
    fr_proc_kill(&b.p);
    unlink(good);
    unlink(bad);
}

/* Starts the balancer with --admin 0.0.0.0:0 and extra flags; returns its
 * exit status, or 0 when it became ready (then it is killed). */
static int start_wide(const char *const *extra, struct h_proc *p)
{
    char *argv[16] = {FULCRUM_BINARY_DIR "/balancer/fulcrum-balancer",
                      "--listen",
                      "127.0.0.1:0",
                      "--admin",
                      "0.0.0.0:0",
                      "--node",
                      "127.0.0.1:9",
                      "--workers",
                      "1"};
    int n = 9, st;

    for (; *extra && n < 15; extra++)
        argv[n++] = (char *)*extra;
    argv[n] = NULL;
    h_spawn(p, argv);
    if (h_wait_for(p, 2, "ready listen=", WAIT_MS)) {
        h_signal(p, SIGKILL);
        h_reap(p, WAIT_MS);
        return 0;
    }
    st = h_reap(p, WAIT_MS);
    cr_assert(st != -1 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

Test(api, admin_beyond_loopback_needs_a_token_or_insecure, .timeout = 60)
{
    const char *tok = token_file(TOKEN);
    char path[64];
    struct h_proc p;

    snprintf(path, sizeof(path), "%s", tok);
    cr_assert_eq(start_wide((const char *const[]){NULL}, &p), 2);
    cr_assert_eq(start_wide((const char *const[]){"--admin-insecure", NULL}, &p), 0);
    cr_assert_eq(start_wide((const char *const[]){"--admin-token-file", path, NULL}, &p), 0);
    chmod(path, 0644); /* the cluster key's rule: group and others stay out */
    cr_assert_eq(start_wide((const char *const[]){"--admin-token-file", path, NULL}, &p), 2);
    unlink(path);
}

/* A server that answers every connection with the head of a 100-byte
 * answer and 10 bytes of it, then closes. Returns its port; *pid the child. */
static unsigned cut_short_server(pid_t *pid)
{
    static const char part[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"nodes\":";
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_neq(fd, -1);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *pid = fork();
    cr_assert_neq(*pid, -1);
    if (*pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            char req[4096];
            int c = accept(fd, NULL, NULL);

            if (c < 0)
                continue;
            (void)!read(c, req, sizeof(req));
            (void)!write(c, part, sizeof(part) - 1);
            close(c);
        }
    }
    close(fd);
    return ntohs(sa.sin_port);
}

Test(api, fulcrumctl_exit_codes, .timeout = 60)
{
    struct backend be[2];
    struct fr_lb b;
    unsigned dead;
    pid_t sink;

    two_static(be, &b, NULL);
    cr_assert_eq(ctl(b.admin, NULL, NULL, (const char *const[]){"node", "no-such-node", NULL}), 1);
    cr_assert_eq(ctl(b.admin, NULL, NULL, (const char *const[]){"weight", "x", "300", NULL}), 2);
    cr_assert_eq(ctl(b.admin, NULL, NULL, (const char *const[]){"frobnicate", NULL}), 2);
    dead = h_tcp_sink(&sink); /* accepts and closes: no answer at all */
    cr_assert_eq(ctl(dead, NULL, NULL, (const char *const[]){"nodes", NULL}), 3,
                 "a close without an answer is 'no answer' (3), not a bad answer (1)");
    kill(sink, SIGKILL);
    waitpid(sink, NULL, 0);
    cr_assert_eq(ctl(dead, NULL, NULL, (const char *const[]){"nodes", NULL}), 3);
    dead = cut_short_server(&sink);
    cr_assert_eq(ctl(dead, NULL, NULL, (const char *const[]){"nodes", NULL}), 3,
                 "an answer cut short is 'no complete answer' (3)");
    kill(sink, SIGKILL);
    waitpid(sink, NULL, 0);
    fr_proc_kill(&b.p);
}
