/* test_peer.c - cache/peer.c: several peer sets, each with its own store,
 * in one libev loop of the test process, over real TCP on 127.0.0.1 with
 * kernel-chosen ports. The loop runs EVRUN_ONCE until a condition holds or a
 * deadline passes; nothing sleeps. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "peer.h"
#include "repl_frame.h"
#include "store.h"

#define NODES_MAX 4

static struct ev_loop *loop;
static struct key_ring kr_good, kr_bad;
static struct cstore *st[NODES_MAX];
static struct peer_set *ps[NODES_MAX];
static struct ev_timer wake;
static bool short_timers; /* heartbeat 50 ms, dead 300 ms, reconnect 100 ms */
static bool long_dead;    /* dead 10 min: only the queue cap can drop a peer */
static uint16_t listen_port;

static void on_wake(struct ev_loop *l, ev_timer *w, int revents)
{
    (void)l;
    (void)w;
    (void)revents;
}

static void setup(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    kr_good.n = 1;
    memset(kr_good.k[0], 0x11, 32);
    kr_bad.n = 1;
    memset(kr_bad.k[0], 0x22, 32);
    /* A 50 ms wake-up so EVRUN_ONCE never blocks past the deadline check. */
    ev_timer_init(&wake, on_wake, 0.05, 0.05);
    ev_timer_start(loop, &wake);
}

static void teardown(void)
{
    for (int i = 0; i < NODES_MAX; i++) {
        peer_set_free(ps[i]);
        ps[i] = NULL;
        cstore_free(st[i]);
        st[i] = NULL;
    }
    ev_timer_stop(loop, &wake);
    ev_loop_destroy(loop);
}

TestSuite(peer, .init = setup, .fini = teardown, .timeout = 30);

static struct sockaddr_in addr_of(int i)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)peer_listen_port(ps[i]));
    return a;
}

/* Starts node i connecting to the nodes listed in peers (-1 ends). */
static void start(int i, const struct key_ring *kr, size_t cap, const int *peers)
{
    struct peer_cfg cfg;
    struct sockaddr_in pa[NODES_MAX];
    struct cstore_cfg sc;
    char name[16], err[128];
    size_t n = 0;

    cstore_cfg_default(&sc);
    st[i] = cstore_new(&sc);
    peer_cfg_default(&cfg);
    snprintf(name, sizeof(name), "node%d", i);
    cfg.name = name;
    cfg.kr = kr;
    cfg.listen.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (cap)
        cfg.queue_cap = cap;
    if (short_timers) {
        cfg.heartbeat_ms = 50;
        cfg.dead_ms = 300;
        cfg.reconnect_ms = 100;
    }
    if (long_dead)
        cfg.dead_ms = 600000;
    cfg.listen.sin_port = htons(listen_port);
    for (; peers && peers[n] >= 0; n++)
        pa[n] = addr_of(peers[n]);
    cfg.peers = pa;
    cfg.n_peers = n;
    ps[i] = peer_set_new(loop, &cfg, st[i], err, sizeof(err));
    cr_assert_not_null(ps[i], "%s", err);
}

typedef bool (*cond_fn)(void);

static bool run_until(cond_fn cond, uint64_t ms)
{
    uint64_t end = clock_mono_ms() + ms;

    while (!cond()) {
        if (clock_mono_ms() > end)
            return false;
        ev_run(loop, EVRUN_ONCE);
    }
    return true;
}

static struct peer_counters ctr(int i)
{
    struct peer_counters c;
    peer_counters_get(ps[i], &c);
    return c;
}

static unsigned char body_buf[300000];

static const struct cstore_obj *put(int i, const char *key, size_t body_len, uint64_t ttl_ms)
{
    uint64_t now = clock_mono_ms();
    const struct cstore_obj *o = NULL;

    for (size_t k = 0; k < body_len; k++)
        body_buf[k] = (unsigned char)(k * 7 + 3);
    struct cstore_item it = {
        .primary = key,
        .secondary = "gzip",
        .vary = "accept-encoding",
        .etag = "\"v1\"",
        .status = 200,
        .headers = "content-type: text/plain\r\n",
        .headers_len = 26,
        .body = body_buf,
        .body_len = body_len,
        .date = 1700000000,
        .age_basis = 5,
        .stored_at = now,
        .expires_at = now + ttl_ms,
        .stale_until = now + ttl_ms + 10000,
        .origin = true,
    };
    cr_assert_eq(cstore_insert(st[i], &it, now, &o), 0);
    return o;
}

static void check_copy(int i, const char *key, size_t body_len)
{
    const struct cstore_obj *o = cstore_get(st[i], key, "gzip", clock_mono_ms());

    cr_assert_not_null(o, "node%d lacks %s", i, key);
    cr_assert_eq(o->origin, false);
    cr_assert_eq(o->body_len, body_len);
    for (size_t k = 0; k < body_len; k++)
        cr_assert_eq(o->body[k], (unsigned char)(k * 7 + 3));
    cr_assert_str_eq(o->etag, "\"v1\"");
    cr_assert_str_eq(o->vary, "accept-encoding");
    cr_assert_eq(o->headers_len, 26);
    cr_assert_eq(memcmp(o->headers, "content-type: text/plain\r\n", 26), 0);
    cr_assert_eq(o->status, 200);
    cr_assert_eq(o->date, 1700000000);
    cr_assert(o->age_basis >= 5 && o->age_basis <= 6);
    cr_assert(o->expires_at > clock_mono_ms() + 50000);
    cstore_unref(o);
}

static bool all3_synced(void)
{
    return peer_synced(ps[0]) && peer_synced(ps[1]) && peer_synced(ps[2]) &&
           peer_ready_count(ps[0]) == 2 && peer_ready_count(ps[1]) == 2 &&
           peer_ready_count(ps[2]) == 2;
}
static bool got_b_c(void)
{
    return ctr(1).objects_in >= 1 && ctr(2).objects_in >= 1;
}
static bool purged_b_c(void)
{
    return ctr(1).purges_in >= 1 && ctr(2).purges_in >= 1;
}

/* Star: node0 listens, nodes 1 and 2 connect to it and to each other. */
Test(peer, announce_arrives_once_not_reannounced_then_purge)
{
    start(0, &kr_good, 0, NULL);
    start(1, &kr_good, 0, (int[]){0, -1});
    start(2, &kr_good, 0, (int[]){0, 1, -1});
    cr_assert(run_until(all3_synced, 5000));

    const struct cstore_obj *o = put(0, "GET a/x", 150000, 60000);
    peer_announce(ps[0], o);
    cstore_unref(o);
    cr_assert(run_until(got_b_c, 5000));
    check_copy(1, "GET a/x", 150000);
    check_copy(2, "GET a/x", 150000);

    /* A replicated copy is never announced again. */
    o = cstore_get(st[1], "GET a/x", "gzip", clock_mono_ms());
    peer_announce(ps[1], o);
    cstore_unref(o);
    uint64_t end = clock_mono_ms() + 300;
    while (clock_mono_ms() < end)
        ev_run(loop, EVRUN_ONCE);
    cr_assert_eq(ctr(0).objects_out, 2);
    cr_assert_eq(ctr(1).objects_out, 0);
    cr_assert_eq(ctr(2).objects_out, 0);
    cr_assert_eq(ctr(1).objects_in, 1);
    cr_assert_eq(ctr(2).objects_in, 1);
    cr_assert_eq(ctr(0).objects_in, 0);

    peer_purge(ps[0], "GET a/x");
    cstore_remove(st[0], "GET a/x");
    cr_assert(run_until(purged_b_c, 5000));
    cr_assert_null(cstore_get(st[1], "GET a/x", "gzip", clock_mono_ms()));
    cr_assert_null(cstore_get(st[2], "GET a/x", "gzip", clock_mono_ms()));
}

static bool late_synced(void)
{
    return peer_synced(ps[1]) && ctr(1).syncs >= 1;
}

Test(peer, late_joiner_syncs_live_objects)
{
    start(0, &kr_good, 0, NULL);
    const struct cstore_obj *o = put(0, "GET a/1", 1000, 60000);
    cstore_unref(o);
    o = put(0, "GET a/2", 200000, 60000);
    cstore_unref(o);
    o = put(0, "GET a/nearly-expired", 10, 500);
    cstore_unref(o);

    start(1, &kr_good, 0, (int[]){0, -1});
    cr_assert_not(peer_synced(ps[1]));
    cr_assert(run_until(late_synced, 5000));
    check_copy(1, "GET a/1", 1000);
    check_copy(1, "GET a/2", 200000);
    cr_assert_null(cstore_get(st[1], "GET a/nearly-expired", "gzip", clock_mono_ms()));
    cr_assert_eq(ctr(1).objects_in, 2);
    cr_assert_eq(ctr(0).syncs_served, 1);
    /* node0 asked node1 too: an empty store answers with no objects. */
    cr_assert(peer_synced(ps[0]));
}

Test(peer, no_peers_is_synced)
{
    start(0, &kr_good, 0, NULL);
    cr_assert(peer_synced(ps[0]));
}

static bool bad_key_seen(void)
{
    return ctr(0).rejected[RFRAME_R_BAD_MAC] >= 1 && ctr(1).rejected[RFRAME_R_BAD_MAC] >= 1;
}

Test(peer, wrong_key_rejected_never_inserts)
{
    start(0, &kr_good, 0, NULL);
    const struct cstore_obj *o = put(0, "GET a/1", 1000, 60000);
    cstore_unref(o);
    start(1, &kr_bad, 0, (int[]){0, -1});
    cr_assert(run_until(bad_key_seen, 5000));
    cr_assert_eq(peer_ready_count(ps[0]), 0);
    cr_assert_eq(peer_ready_count(ps[1]), 0);
    cr_assert_eq(ctr(1).objects_in, 0);
    cr_assert_not(peer_synced(ps[1]));
    struct cstore_stats ss;
    cstore_stats_get(st[1], &ss);
    cr_assert_eq(ss.objects, 0);
}

/* ---- a raw peer that completes HELLO, then never reads ----------------- */

static bool raw_hello_seen;

static int raw_cb(const struct rframe_frame *f, void *arg)
{
    (void)arg;
    if (f->type == RFRAME_HELLO)
        raw_hello_seen = true;
    return 0;
}

static bool cond_ready1(void);

struct raw {
    int fd;
    struct rframe_tx tx;
    struct rframe_decoder *dec;
};

/* Connects a raw socket to node i and completes HELLO both ways. */
static void raw_open(struct raw *rw, int i, int rcvbuf)
{
    uint8_t nonce[RFRAME_NONCE_LEN], buf[256];
    struct sockaddr_in a = addr_of(i);
    int n;

    raw_hello_seen = false;
    rw->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        setsockopt(rw->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    cr_assert_eq(connect(rw->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    rframe_nonce_new(nonce);
    rframe_tx_init(&rw->tx, &kr_good, nonce);
    rw->dec = rframe_decoder_new(&kr_good, nonce);
    n = rframe_encode_hello(&rw->tx, "raw", buf, sizeof(buf));
    cr_assert_gt(n, 0);
    cr_assert_eq(write(rw->fd, buf, (size_t)n), n);
    uint64_t end = clock_mono_ms() + 5000;
    while (!raw_hello_seen && clock_mono_ms() < end) {
        ev_run(loop, EVRUN_NOWAIT);
        ssize_t r = recv(rw->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0)
            cr_assert_eq(rframe_feed(rw->dec, buf, (size_t)r, raw_cb, NULL), 0);
    }
    cr_assert(raw_hello_seen);
    rframe_tx_set_peer(&rw->tx, rframe_decoder_peer_nonce(rw->dec));
}

static void raw_close(struct raw *rw)
{
    rframe_decoder_free(rw->dec);
    rframe_tx_done(&rw->tx);
    close(rw->fd);
}

static bool node0_has_no_ready(void)
{
    return peer_ready_count(ps[0]) == 0;
}

/* A verified HELLO, then one frame spoiled by mode: the connection closes
 * and the reason is counted. */
static void spoiled(int mode, enum rframe_reason want)
{
    struct raw rw;
    uint8_t buf[256];
    int n;

    start(0, &kr_good, 0, NULL);
    raw_open(&rw, 0, 0);
    cr_assert(run_until(cond_ready1, 5000));
    n = rframe_encode_heartbeat(&rw.tx, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    if (mode == 0)
        buf[n - 1] ^= 1; /* forged tag */
    if (mode == 1)
        buf[19] = 0xff; /* 255-byte heartbeat: over the cap */
    if (mode == 2) {
        /* replay: the same frame twice */
        cr_assert_eq(write(rw.fd, buf, (size_t)n), n);
    }
    if (mode == 3)
        n -= 5; /* truncated, then closed */
    cr_assert_eq(write(rw.fd, buf, (size_t)n), n);
    if (mode == 3)
        shutdown(rw.fd, SHUT_WR);
    cr_assert(run_until(node0_has_no_ready, 5000));
    cr_assert_eq(ctr(0).rejected[want], 1, "reason %s", rframe_reason_name(want));
    raw_close(&rw);
}

Test(peer, forged_frame_rejected)
{
    spoiled(0, RFRAME_R_BAD_MAC);
}
Test(peer, oversized_frame_rejected)
{
    spoiled(1, RFRAME_R_TOO_LARGE);
}
Test(peer, replayed_frame_rejected)
{
    spoiled(2, RFRAME_R_REPLAYED);
}
Test(peer, truncated_frame_rejected)
{
    spoiled(3, RFRAME_R_TRUNCATED);
}

static bool dead_seen(void)
{
    return ctr(0).rejected_local[PEER_REJ_DEAD] >= 1 && peer_ready_count(ps[0]) == 0;
}

Test(peer, silent_peer_closed_as_dead)
{
    struct raw rw;

    short_timers = true;
    start(0, &kr_good, 0, NULL);
    raw_open(&rw, 0, 0);
    cr_assert(run_until(dead_seen, 5000));
    raw_close(&rw);
    short_timers = false;
}

static bool one_synced(void)
{
    return ctr(1).syncs >= 1 && peer_ready_count(ps[1]) == 1;
}
static bool resynced(void)
{
    return ctr(1).syncs >= 2 && ctr(1).objects_in >= 1;
}

Test(peer, reconnects_and_resyncs)
{
    short_timers = true;
    start(0, &kr_good, 0, NULL);
    start(1, &kr_good, 0, (int[]){0, -1});
    cr_assert(run_until(one_synced, 5000));
    listen_port = (uint16_t)peer_listen_port(ps[0]);
    peer_set_free(ps[0]);
    cstore_free(st[0]);
    start(0, &kr_good, 0, NULL);
    listen_port = 0;
    const struct cstore_obj *o = put(0, "GET a/1", 5000, 60000);
    cstore_unref(o);
    cr_assert(run_until(resynced, 5000));
    cr_assert_geq(ctr(1).reconnects, 1);
    check_copy(1, "GET a/1", 5000);
    short_timers = false;
}

static int ready_count_is_2_0(void)
{
    return peer_ready_count(ps[0]) == 2;
}
static bool cond_ready1(void)
{
    return peer_ready_count(ps[0]) == 1;
}
static bool cond_ready2(void)
{
    return ready_count_is_2_0();
}

static bool dropped(void)
{
    return ctr(0).drops >= 1;
}

static uint64_t b_want;
static bool b_caught_up(void)
{
    return ctr(1).objects_in >= b_want;
}
static bool b_has_after(void)
{
    const struct cstore_obj *o = cstore_get(st[1], "GET a/after", "gzip", clock_mono_ms());
    cstore_unref(o);
    return o != NULL;
}

Test(peer, stalled_peer_dropped_sender_keeps_working)
{
    struct raw rw;

    /* On a slow machine the 400 announces can outlast the dead interval:
     * this test is about the queue cap */
    long_dead = true;
    start(0, &kr_good, 1 << 20, NULL);
    start(1, &kr_good, 0, (int[]){0, -1});
    raw_open(&rw, 0, 4096); /* then never reads */
    cr_assert(run_until(cond_ready2, 5000));

    /* 200 KB objects until node0's queue to the raw peer passes 1 MiB. */
    const struct cstore_obj *o = put(0, "GET a/big", 200000, 60000);
    for (int i = 0; i < 400 && !dropped(); i++) {
        peer_announce(ps[0], o);
        b_want = ctr(1).objects_in + 1;
        cr_assert(run_until(b_caught_up, 5000), "healthy peer fell behind");
    }
    cstore_unref(o);
    cr_assert(dropped());
    cr_assert_eq(peer_ready_count(ps[0]), 1);

    /* node1 still gets new objects. */
    o = put(0, "GET a/after", 1000, 60000);
    peer_announce(ps[0], o);
    cstore_unref(o);
    cr_assert(run_until(b_has_after, 5000));
    check_copy(1, "GET a/after", 1000);

    raw_close(&rw);
    long_dead = false;
}
