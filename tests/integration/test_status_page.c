/* test_status_page.c - the admin port's live status page (GET /) in a real
 * browser: Debian's headless chromium against a real fulcrum-balancer with
 * three fulcrum-agent nodes in front of echo backends.
 *
 * The browser runs with --dump-dom and a virtual time budget, which lets the
 * page's scripts run (fetches included) and prints the DOM they built. Its
 * network is held to loopback: everything else resolves to nothing and goes
 * to a dead proxy. Exits 77 (skipped) when chromium is not installed.
 *
 * FULCRUM_PAGE_SHOT=FILE.png (and FULCRUM_PAGE_SHOT_S, default 120) turns on
 * one more test: a few minutes of changing load, then a screenshot of the
 * page (docs/img/status-page.png is made so).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "fault_rig.h"
#include "harness.h"

#define NNODES     3
#define BROWSER_MS 120000 /* a hang guard: chromium starts slowly on a loaded machine */
#define DOM_MAX    (4u << 20)
#define HOLD       6 /* connections held open through the balancer */

static const char *chromium_bin(void)
{
    static const char *const cands[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser"};
    const char *env = getenv("FULCRUM_CHROMIUM");

    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
        if (access(cands[i], X_OK) == 0)
            return cands[i];
    return NULL;
}

/* ---- the cluster ---- */

struct page_rig {
    struct backend be[NNODES];
    struct fr_agent agent[NNODES];
    struct fr_lb lb;
    const char *keydir;
    char key[128], group[40], name[NNODES][16];
};

static void rig_start(struct page_rig *r, const char *slowstart)
{
    r->keydir = h_make_keys();
    snprintf(r->key, sizeof(r->key), "%s/key", r->keydir);
    snprintf(r->group, sizeof(r->group), "239.255.77.78:%u", h_free_udp_port());
    fr_lb_start(&r->lb, 0,
                (const char *const[]){"--key", r->key, "--group", r->group, "--interval", "0.5",
                                      "--slowstart", slowstart, "--policy", "leastconn", NULL});
    for (int i = 0; i < NNODES; i++) {
        be_start(&r->be[i], BE_ECHO, i);
        snprintf(r->name[i], sizeof(r->name[i]), "page-%d", i);
        fr_agent_start(&r->agent[i], r->name[i], r->be[i].port, r->group, r->key, "tcp");
    }
    cr_assert_not_null(h_wait_for(&r->lb.p, 2, "3 of 3 nodes in rotation", FR_WAIT_MS),
                       "the agents' nodes never joined");
}

/* A GET on the admin port; the body (static buffer) or NULL. */
static const char *admin_get(const struct page_rig *r, const char *path)
{
    static char buf[1 << 20];
    char *body;

    if (be_http(r->lb.admin, "GET", path, buf, sizeof(buf)) != 200)
        return NULL;
    body = strstr(buf, "\r\n\r\n");
    return body ? body + 4 : NULL;
}

/* The fewest samples any node holds in history.json (-1: not every node of
 * the rig is there yet). */
static int history_min_samples(const char *body)
{
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(j, "nodes"), *nd;
    int min = cJSON_GetArraySize(nodes) == NNODES ? INT_MAX : -1;

    cJSON_ArrayForEach(nd, nodes)
    {
        int k = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(nd, "weight"));

        min = min < k ? min : k;
    }
    cJSON_Delete(j);
    return min == INT_MAX ? -1 : min;
}

/* Waits until every node has at least n samples in history.json (the
 * sampler runs; a node that joined a tick late has one fewer). */
static void await_history(const struct page_rig *r, int n)
{
    for (int tries = 0;; tries++) {
        int k = history_min_samples(admin_get(r, "/history.json"));

        if (k >= n)
            return;
        cr_assert_lt(tries, 200, "history.json never had %d samples of every node (%d)", n, k);
        poll(NULL, 0, 100);
    }
}

/* Opens a connection through the balancer and checks it is relayed. */
static int hold_conn(unsigned port)
{
    int fd = be_connect(port);
    char c;

    cr_assert_geq(fd, 0, "connect to the balancer: %s", strerror(-fd));
    cr_assert_eq(write(fd, "x", 1), 1);
    cr_assert_eq(read(fd, &c, 1), 1, "connection not relayed");
    return fd;
}

static void await_active(const struct page_rig *r, long long want)
{
    for (int tries = 0; fr_lb_num(&r->lb, NULL, "active") != want; tries++) {
        cr_assert_lt(tries, 200, "balancer active never reached %lld", want);
        poll(NULL, 0, 50);
    }
}

/* ---- the browser ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Runs chromium on the admin page with `mode` (--dump-dom, --screenshot=..)
 * in a window of `size` ("W,H"); returns its stdout (malloc'd,
 * NUL-terminated). Fails the test when it does not exit 0 within
 * BROWSER_MS. */
static char *browse(const struct page_rig *r, const char *mode, const char *size,
                    unsigned budget_ms)
{
    char url[64], udd[] = "/tmp/fulcrum-page-XXXXXX", udd_arg[64], budget[48], errtail[2048],
                  win[48];
    char *out = calloc(1, DOM_MAX + 1);
    size_t len = 0, elen = 0;
    struct h_proc p;
    int status;
    bool open_out = true, open_err = true;
    struct timespec t0, t;

    cr_assert_not_null(out);
    cr_assert_not_null(mkdtemp(udd));
    snprintf(udd_arg, sizeof(udd_arg), "--user-data-dir=%s", udd);
    snprintf(budget, sizeof(budget), "--virtual-time-budget=%u", budget_ms);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", r->lb.admin);
    snprintf(win, sizeof(win), "--window-size=%s", size);
    char *argv[] = {(char *)chromium_bin(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--no-first-run", "--no-default-browser-check",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-extensions", "--disable-default-apps",
                    "--no-pings", "--disable-dev-shm-usage", "--mute-audio",
                    /* loopback only: names resolve to nothing, other hosts
                     * go to a proxy that is not there */
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                    "--proxy-server=127.0.0.1:9", win, udd_arg, budget, (char *)mode, url, NULL};

    h_spawn(&p, argv);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (open_out || open_err) {
        struct pollfd pf[2] = {{.fd = open_out ? p.out.fd : -1, .events = POLLIN},
                               {.fd = open_err ? p.err.fd : -1, .events = POLLIN}};
        long ms;

        clock_gettime(CLOCK_MONOTONIC, &t);
        ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        cr_assert_lt(ms, BROWSER_MS, "chromium did not finish in %d ms", BROWSER_MS);
        if (poll(pf, 2, 200) <= 0)
            continue;
        if (open_out && pf[0].revents) {
            ssize_t n = read(p.out.fd, out + len, DOM_MAX - len);

            if (n <= 0)
                open_out = false;
            else
                len += (size_t)n;
            cr_assert_lt(len, DOM_MAX, "the DOM is over %u bytes", DOM_MAX);
        }
        if (open_err && pf[1].revents) {
            char junk[4096];
            ssize_t n = read(p.err.fd, junk, sizeof(junk));

            if (n <= 0) {
                open_err = false;
            } else { /* keep the last lines for a failure message */
                size_t keep = (size_t)n < sizeof(errtail) - 1 ? (size_t)n : sizeof(errtail) - 1;

                if (elen + keep > sizeof(errtail) - 1)
                    elen = 0;
                memcpy(errtail + elen, junk + (size_t)n - keep, keep);
                elen += keep;
            }
        }
    }
    errtail[elen] = '\0';
    status = h_reap(&p, 5000);
    h_close(&p);
    nftw(udd, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "chromium failed (%d):\n%s", status,
              errtail);
    out[len] = '\0';
    return out;
}

/* The page's row for node name (from data-node to </tr>), or NULL. */
static const char *dom_row(const char *dom, const char *name, char *row, size_t cap)
{
    char needle[64];
    const char *s, *e;

    snprintf(needle, sizeof(needle), "data-node=\"%s\"><td", name);
    s = strstr(dom, needle);
    if (!s)
        return NULL;
    e = strstr(s, "</tr>");
    cr_assert_not_null(e);
    snprintf(row, cap, "%.*s", (int)(e - s), s);
    return row;
}

/* A numeric cell (data-k="key") of a row; -1 when absent or "-". */
static long long row_num(const char *row, const char *key)
{
    char needle[64];
    const char *s;

    snprintf(needle, sizeof(needle), "data-k=\"%s\">", key);
    s = strstr(row, needle);
    if (!s || s[strlen(needle)] == '-')
        return -1;
    return strtoll(s + strlen(needle), NULL, 10);
}

/* data-points of node name's line in chart `chart`; -1 when absent. */
static long chart_points(const char *dom, const char *chart, const char *name)
{
    char needle[64];
    const char *c, *end, *g;

    snprintf(needle, sizeof(needle), "data-chart=\"%s\"", chart);
    c = strstr(dom, needle);
    if (!c)
        return -1;
    end = strstr(c, "</svg>");
    snprintf(needle, sizeof(needle), "<g data-node=\"%s\" data-points=\"", name);
    g = strstr(c, needle);
    if (!g || (end && g > end))
        return -1;
    return strtol(g + strlen(needle), NULL, 10);
}

/* The page's count of status polls it has rendered (data-polls). */
static long body_polls(const char *dom)
{
    const char *s = strstr(dom, "data-polls=\"");

    return s ? strtol(s + 12, NULL, 10) : -1;
}

static long long body_ts_ms(const char *dom)
{
    const char *s = strstr(dom, "data-ts=\"");

    return s ? (long long)(strtod(s + 9, NULL) * 1000.0) : -1;
}

/* Sums a numeric cell over the nodes' rows; asserts every row is there. */
static long long dom_sum(const struct page_rig *r, const char *dom, const char *key)
{
    char row[8192];
    long long sum = 0;

    for (int i = 0; i < NNODES; i++) {
        cr_assert_not_null(dom_row(dom, r->name[i], row, sizeof(row)),
                           "node %s not in the rendered table", r->name[i]);
        cr_assert_geq(row_num(row, key), 0, "%s: no %s in %s", r->name[i], key, row);
        sum += row_num(row, key);
    }
    return sum;
}

static void rig_stop(struct page_rig *r)
{
    for (int i = 0; i < NNODES; i++) {
        fr_proc_kill(&r->agent[i].p);
        be_kill(&r->be[i]);
    }
    fr_proc_kill(&r->lb.p);
    rig_keys_remove(r->keydir);
}

/* ---- tests ---- */

Test(status_page, renders_every_node_with_history_and_updates, .timeout = 120)
{
    struct page_rig r;
    const char *page;
    char *dom1, *dom2;
    int fd[HOLD];
    long long conns1, conns2;

    rig_start(&r, "0");
    /* No-script fallback: the balancer's own table, no external anything. */
    page = admin_get(&r, "/");
    cr_assert_not_null(page);
    for (int i = 0; i < NNODES; i++)
        cr_assert(strstr(page, r.name[i]), "%s missing from the no-script table", r.name[i]);
    cr_assert_null(strstr(page, "src="), "external asset");
    cr_assert_null(strstr(page, "http://"), "a URL in the page");
    cr_assert_null(strstr(page, "https://"), "a URL in the page");

    /* The sampler's history goes back further than a page that just opened
     * could have polled itself (two polls in its 1.5 s of virtual time). */
    await_history(&r, 6);
    for (int i = 0; i < HOLD; i++)
        fd[i] = hold_conn(r.lb.port);
    await_active(&r, HOLD);
    dom1 = browse(&r, "--dump-dom", "1400,900", 1500);
    for (int i = 0; i < NNODES; i++) {
        long pts = chart_points(dom1, "weight", r.name[i]);

        cr_assert_geq(pts, 6, "%s: %ld points in the weight chart: no server history", r.name[i],
                      pts);
        cr_assert_geq(chart_points(dom1, "active", r.name[i]), 6);
        cr_assert_geq(chart_points(dom1, "rtt", r.name[i]), 1, "agents' nodes have an RTT");
    }
    cr_assert_geq(body_polls(dom1), 2, "the page did not poll again on its own");
    cr_assert_eq(dom_sum(&r, dom1, "active"), HOLD, "active connections in the page");
    conns1 = dom_sum(&r, dom1, "conns_total");
    cr_assert_eq(conns1, HOLD);
    cr_assert_geq(dom_sum(&r, dom1, "rtt_ms"), 0);

    /* Traffic moves the page's numbers: close the held connections, make
     * 20 more, and look again. */
    for (int i = 0; i < HOLD; i++)
        close(fd[i]);
    for (int i = 0; i < 20; i++)
        close(hold_conn(r.lb.port));
    await_active(&r, 0);
    dom2 = browse(&r, "--dump-dom", "1400,900", 1500);
    conns2 = dom_sum(&r, dom2, "conns_total");
    cr_assert_eq(conns2, HOLD + 20, "the page shows %lld connections, not %d", conns2, HOLD + 20);
    cr_assert_eq(dom_sum(&r, dom2, "active"), 0);
    cr_assert_gt(body_ts_ms(dom2), body_ts_ms(dom1), "the status stamp did not move");
    cr_assert_gt(body_ts_ms(dom1), 0);
    free(dom1);
    free(dom2);

    /* A node that leaves (its agent says bye) leaves the history too. */
    h_signal(&r.agent[2].p, SIGTERM);
    cr_assert_not_null(h_wait_for(&r.lb.p, 2, "2 of 2 nodes in rotation", FR_WAIT_MS));
    for (int tries = 0;; tries++) {
        const char *body = admin_get(&r, "/history.json");

        cr_assert_not_null(body);
        if (!strstr(body, "\"page-2\""))
            break;
        cr_assert_lt(tries, 100, "page-2 left but stays in history.json");
        poll(NULL, 0, 100);
    }
    cr_assert(strstr(admin_get(&r, "/history.json"), "\"page-1\""));
    rig_stop(&r);
}

/* Changing load for FULCRUM_PAGE_SHOT_S seconds, one node drained for a
 * while, then a screenshot to FULCRUM_PAGE_SHOT. */
Test(status_page, screenshot, .timeout = 900)
{
    const char *path = getenv("FULCRUM_PAGE_SHOT"), *secs = getenv("FULCRUM_PAGE_SHOT_S");
    int total = secs ? atoi(secs) : 120, fd[64], nfd = 0;
    struct page_rig r;
    char arg[600], drain[64];

    if (!path || !*path)
        cr_skip_test("FULCRUM_PAGE_SHOT not set");
    cr_assert(total > 10 && total < 800);
    rig_start(&r, "20");
    for (int s = 0; s < total; s++) {
        /* 4..40 connections held, in waves of 36 s, a few short ones each second */
        int phase = s % 36, want = 4 + 2 * (phase < 18 ? phase : 36 - phase);

        while (nfd < want && nfd < 64)
            fd[nfd++] = hold_conn(r.lb.port);
        while (nfd > want)
            close(fd[--nfd]);
        for (int i = 0; i < 5; i++)
            close(hold_conn(r.lb.port));
        if (s == total * 2 / 5 || s == total * 3 / 5) {
            char buf[256];

            snprintf(drain, sizeof(drain), "/nodes/page-2/%s",
                     s == total * 2 / 5 ? "drain" : "undrain");
            cr_assert_eq(be_http(r.lb.admin, "POST", drain, buf, sizeof(buf)), 200);
        }
        poll(NULL, 0, 1000);
    }
    snprintf(arg, sizeof(arg), "--screenshot=%s", path);
    free(browse(&r, arg, "1320,560", 3000));
    while (nfd > 0)
        close(fd[--nfd]);
    rig_stop(&r);
}

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests;
    int result = 0;

    if (!chromium_bin()) {
        fprintf(stderr, "test_status_page: SKIPPED: chromium not found (/usr/bin/chromium; "
                        "scripts/deps.sh test installs it, FULCRUM_CHROMIUM names another)\n");
        return 77;
    }
    tests = criterion_initialize();
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
