/* test_history.c - balancer/history.c: the per-node rings behind
 * /history.json. Wraparound keeps the newest samples in order, a node
 * absent from a tick is dropped (and starts afresh when it returns), the
 * node cap and the memory bound hold, the JSON parses and lines up with the
 * tick clock, and the sampler reads the real node registry. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>

#include "admin_view.h"
#include "history.h"
#include "nodes.h"

#define LEN 8

static struct lb_history_sample smp(unsigned w, unsigned active, double rtt)
{
    return (struct lb_history_sample){.weight = w, .active = active, .rtt_ms = (float)rtt};
}

/* One tick at second t with the given names; node i gets weight t*10+i. */
static void tick(struct lb_history *h, unsigned t, const char *const *names, size_t n)
{
    lb_history_tick_begin(h, 1000000ull + t * 1000ull);
    for (size_t i = 0; i < n; i++) {
        struct lb_history_sample s = smp(t * 10 + (unsigned)i, t, i ? NAN : 0.5 * t);

        cr_assert_eq(lb_history_put(h, names[i], &s), 0, "tick %u %s", t, names[i]);
    }
    lb_history_tick_end(h);
}

static cJSON *json_of(const struct lb_history *h)
{
    struct admin_view_buf b = {0};
    cJSON *j;

    lb_history_json(h, &b);
    cr_assert_not(b.toobig);
    j = cJSON_Parse(b.p);
    cr_assert_not_null(j, "history.json does not parse:\n%s", b.p);
    admin_view_buf_done(&b);
    return j;
}

static const cJSON *json_node(const cJSON *j, const char *name)
{
    const cJSON *n;

    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(j, "nodes"))
    {
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(n, "name")->valuestring, name))
            return n;
    }
    return NULL;
}

Test(history, ring_wraps_keeping_the_newest_in_order)
{
    struct lb_history *h = lb_history_new(LEN, 16);
    const char *names[] = {"a", "b"};
    struct lb_history_sample out[LEN + 4];

    for (unsigned t = 1; t <= 3; t++)
        tick(h, t, names, 2);
    cr_assert_eq(lb_history_get(h, "a", out, LEN), 3);
    cr_assert_eq(out[0].weight, 10);
    cr_assert_eq(out[2].weight, 30);
    for (unsigned t = 4; t <= 3 * LEN + 3; t++) /* wraps three times, off by 3 */
        tick(h, t, names, 2);
    cr_assert_eq(lb_history_ticks(h), LEN);
    cr_assert_eq(lb_history_get(h, "b", out, LEN + 4), LEN);
    for (unsigned i = 0; i < LEN; i++) {
        unsigned t = 3 * LEN + 3 - LEN + 1 + i;

        cr_assert_eq(out[i].weight, t * 10 + 1, "sample %u: %u", i, out[i].weight);
        cr_assert_eq(out[i].active, t);
        cr_assert(isnan(out[i].rtt_ms));
    }
    cr_assert_eq(lb_history_get(h, "a", out, LEN), LEN);
    cr_assert_float_eq(out[LEN - 1].rtt_ms, 0.5 * (3 * LEN + 3), 1e-3);
    cr_assert_eq(lb_history_get(h, "nosuch", out, LEN), 0);
    lb_history_free(h);
}

Test(history, a_node_absent_from_a_tick_is_dropped_and_restarts_afresh)
{
    struct lb_history *h = lb_history_new(LEN, 16);
    const char *abc[] = {"a", "b", "c"}, *ac[] = {"a", "c"};
    struct lb_history_sample out[LEN];
    size_t full;

    for (unsigned t = 1; t <= 5; t++)
        tick(h, t, abc, 3);
    cr_assert_eq(lb_history_nodes(h), 3);
    full = lb_history_bytes(h);
    tick(h, 6, ac, 2);
    cr_assert_eq(lb_history_nodes(h), 2);
    cr_assert_eq(lb_history_get(h, "b", out, LEN), 0, "b left: its ring must go");
    cr_assert_lt(lb_history_bytes(h), full, "b's ring must be freed");
    cr_assert_eq(lb_history_get(h, "a", out, LEN), 6);
    tick(h, 7, abc, 3); /* b is back: a new ring, one sample */
    cr_assert_eq(lb_history_get(h, "b", out, LEN), 1);
    cr_assert_eq(out[0].weight, 71);
    lb_history_free(h);
}

Test(history, size_is_bounded_by_len_and_max_nodes)
{
    enum { MAXN = 5 };
    struct lb_history *h = lb_history_new(LEN, MAXN);
    struct lb_history_sample s = smp(1, 1, 1);
    size_t bound = 0;
    char name[16];

    for (unsigned t = 1; t <= 4 * LEN; t++) {
        lb_history_tick_begin(h, t * 1000ull);
        for (unsigned i = 0; i < 2 * MAXN; i++) {
            int r;

            snprintf(name, sizeof(name), "n%u", i);
            r = lb_history_put(h, name, &s);
            cr_assert_eq(r, i < MAXN ? 0 : -ENOSPC, "tick %u node %u: %d", t, i, r);
        }
        cr_assert_eq(lb_history_put(h, "n0", &s), -EEXIST, "twice in one tick");
        lb_history_tick_end(h);
        if (t == 1)
            bound = lb_history_bytes(h);
        cr_assert_eq(lb_history_bytes(h), bound, "memory grew at tick %u", t);
    }
    cr_assert_eq(lb_history_nodes(h), MAXN);
    cr_assert_eq(lb_history_ticks(h), LEN);
    cr_assert_eq(lb_history_dropped(h), 4 * LEN * MAXN);
    cr_assert_eq(lb_history_put(h, "", &s), -EINVAL);
    lb_history_free(h);
}

Test(history, json_lines_nodes_up_with_the_clock)
{
    struct lb_history *h = lb_history_new(LEN, 16);
    const char *ab[] = {"b", "a"}, *b_only[] = {"b"};
    const cJSON *tt, *a, *b;
    cJSON *j;

    for (unsigned t = 1; t <= LEN + 2; t++)
        tick(h, t, b_only, 1);
    tick(h, LEN + 3, ab, 2);
    tick(h, LEN + 4, ab, 2);
    j = json_of(h);
    tt = cJSON_GetObjectItemCaseSensitive(j, "t");
    cr_assert_eq(cJSON_GetArraySize(tt), LEN);
    cr_assert_float_eq(cJSON_GetArrayItem(tt, LEN - 1)->valuedouble, 1000.0 + LEN + 4, 1e-6);
    cr_assert_float_eq(cJSON_GetArrayItem(tt, 0)->valuedouble, 1000.0 + 5, 1e-6);
    a = json_node(j, "a");
    b = json_node(j, "b");
    cr_assert(a && b);
    cr_assert_str_eq(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "nodes"), 0)->child->valuestring,
        "a", "nodes sorted by name");
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(a, "first")->valueint, LEN - 2);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(a, "weight")), 2);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(b, "first")->valueint, 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "active")), LEN);
    /* b is the first put in ticks LEN+3, LEN+4: weight t*10 + 0, rtt 0.5 t. */
    cr_assert_eq(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "weight"), LEN - 1)->valueint,
        (LEN + 4) * 10);
    cr_assert(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a, "rtt_ms"), 0)));
    cJSON_Delete(j);
    lb_history_free(h);
}

Test(history, json_of_an_empty_history)
{
    struct lb_history *h = lb_history_new(LEN, 16);
    cJSON *j = json_of(h);

    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "t")), 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "nodes")), 0);
    cJSON_Delete(j);
    lb_history_free(h);
}

Test(history, json_trims_to_recent_ticks_for_many_nodes)
{
    enum { MANY = 4096 };
    struct lb_history *h = lb_history_new(LB_HISTORY_LEN, MANY);
    struct lb_history_sample s = smp(100, 2, 0.25);
    unsigned window = LB_HISTORY_JSON_CELLS / MANY;
    const cJSON *n;
    cJSON *j;
    char name[16];

    for (unsigned t = 1; t <= window + 10; t++) {
        lb_history_tick_begin(h, t * 1000ull);
        for (unsigned i = 0; i < MANY; i++) {
            snprintf(name, sizeof(name), "node-%04u", i);
            cr_assert_eq(lb_history_put(h, name, &s), 0);
        }
        lb_history_tick_end(h);
    }
    j = json_of(h);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "t")), (int)window);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "nodes")), MANY);
    n = json_node(j, "node-4095");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(n, "rtt_ms")), (int)window);
    cJSON_Delete(j);
    lb_history_free(h);
}

Test(history, sampler_reads_the_registry_and_skips_gone_nodes)
{
    struct lb_nodes_cfg cfg = {.grace_ms = 10000};
    struct lb_nodes *ns = lb_nodes_new(&cfg);
    struct lb_history *h = lb_history_new(LEN, 16);
    struct lb_history_sample out[LEN];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9001)};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lb_node *nd;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(lb_nodes_add_static(ns, &sa), 0);
    lb_nodes_refresh(ns, 1000);
    nd = lb_nodes_find(ns, "127.0.0.1:9001");
    cr_assert_not_null(nd);
    atomic_store(&nd->active, 7);
    lb_history_start(h, loop, ns, NULL); /* takes its first sample at once */
    lb_history_sample(h);
    cr_assert_eq(lb_history_get(h, "127.0.0.1:9001", out, LEN), 2);
    cr_assert_eq(out[1].active, 7);
    cr_assert_eq(out[1].weight, atomic_load(&nd->weight));
    cr_assert(isnan(out[1].rtt_ms), "a static node has no RTT");
    nd->gone = true;
    lb_history_sample(h);
    cr_assert_eq(lb_history_nodes(h), 0, "a gone node must be dropped");
    lb_history_free(h); /* stops the timer */
    ev_loop_destroy(loop);
    lb_nodes_free(ns);
}
