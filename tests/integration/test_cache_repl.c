/* test_cache_repl.c - replication between real fulcrum-cache processes.
 *
 * Three nodes in a mesh (A listens; B connects to A; C connects to A and
 * B) in front of one counting origin (cache_rig.h). Replication is awaited
 * on the nodes' /_fulcrum/stats counters; a hit is proven with an
 * only-if-cached request (a miss would be a 504, never an origin request)
 * and by the origin's request count not moving.
 *
 * The stalled and forged peers are this process speaking the replication
 * protocol over raw TCP with the frame codec (repl_frame.h), under the
 * cluster key the nodes load, or under another key.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cache_rig.h"
#include "clock.h"
#include "key.h"
#include "repl_frame.h"

#define N_SMALL  20 /* distinct small objects */
#define N_BIG    32 /* distinct 1 MiB objects: twice the 16 MiB queue cap */
#define FETCHERS 4

TestSuite(repl, .timeout = 120);

static struct rig_origin o;
static struct rig_node a, b, c;
static const char *keydir;

static void path_of(char *buf, size_t cap, const char *prefix, int i)
{
    snprintf(buf, cap, "%s%d", prefix, i);
}

/* GET path on node nd: 200, X-Cache "<want> from <name>", the origin's body. */
static void expect_get(const struct rig_node *nd, const char *path, const char *want)
{
    struct rig_resp r;
    char x[64];

    snprintf(x, sizeof(x), "%s from %s", want, nd->name);
    cr_assert_eq(rig_request(nd->port, "GET", path, false, &r), 200, "GET %s on %s", path,
                 nd->name);
    cr_assert_str_eq(rig_hdr(&r, "X-Cache"), x, "GET %s on %s", path, nd->name);
    cr_assert(rig_body_ok(path, r.body, r.body_len), "GET %s on %s: wrong body", path, nd->name);
    rig_resp_free(&r);
}

/* GET path only-if-cached on nd is a 504: nd does not hold it. */
static void expect_absent(const struct rig_node *nd, const char *path)
{
    struct rig_resp r;

    cr_assert_eq(rig_request(nd->port, "GET", path, true, &r), 504, "%s still holds %s", nd->name,
                 path);
    rig_resp_free(&r);
}

/* Waits until counter name on nd is want; asserts it got there. */
static void expect_stat(const struct rig_node *nd, const char *name, uint64_t want)
{
    uint64_t v = rig_wait_stat(nd->port, name, want, RIG_WAIT_MS);

    cr_assert_eq(v, want, "%s on %s: %llu, want %llu", name, nd->name, (unsigned long long)v,
                 (unsigned long long)want);
}

/* A: no --peer; B: --peer A; C: --peer A --peer B. Each ready line comes
 * after the node's first sync. */
static const char *start_nodes(bool with_c)
{
    const char *keys = keydir = h_make_keys();
    unsigned pb[1], pc[2];

    rig_origin_start(&o);
    rig_node_start(&a, &o, keys, "na", NULL, 0);
    pb[0] = pc[0] = a.peer_port;
    rig_node_start(&b, &o, keys, "nb", pb, 1);
    if (with_c) {
        pc[1] = b.peer_port;
        rig_node_start(&c, &o, keys, "nc", pc, 2);
    }
    /* Ready means one sync finished; both ends of every link ask for one.
     * Wait for all of them, so no sync answer carries a test's objects. */
    expect_stat(&a, "peer_syncs", with_c ? 2 : 1);
    expect_stat(&b, "peer_syncs", with_c ? 2 : 1);
    if (with_c)
        expect_stat(&c, "peer_syncs", 2);
    return keys;
}

/* SIGTERM to every node started (each must exit 0), then the key files go. */
static void stop_nodes(void)
{
    if (c.p.pid > 0)
        rig_node_stop(&c);
    rig_node_stop(&b);
    rig_node_stop(&a);
    rig_keys_remove(keydir);
}

/* Polls rig_is_hit every 20 ms, up to RIG_WAIT_MS. Where a counter cannot
 * tell (A's replicated_in also counts the copies of its own objects that a
 * restarted C sends back when answering A's SYNC_REQUEST), the object
 * itself is awaited. */
static bool await_hit(const struct rig_node *nd, const char *path)
{
    for (int waited = 0; waited < RIG_WAIT_MS; waited += 20) {
        if (rig_is_hit(nd->port, nd->name, path))
            return true;
        usleep(20 * 1000);
    }
    return false;
}

/* ---- concurrent clients ---------------------------------------------- */

struct fetcher {
    const struct rig_node *nd;
    const char *prefix;
    int from, to;
    int bad;
    char why[160];
    pthread_t t;
};

static void *fetch_run(void *arg)
{
    struct fetcher *f = arg;
    char path[64], want[64];

    snprintf(want, sizeof(want), "MISS from %s", f->nd->name);
    for (int i = f->from; i < f->to; i++) {
        struct rig_resp r;
        int code;

        path_of(path, sizeof(path), f->prefix, i);
        code = rig_request(f->nd->port, "GET", path, false, &r);
        if (code != 200 || strcmp(rig_hdr(&r, "X-Cache"), want) != 0 ||
            !rig_body_ok(path, r.body, r.body_len)) {
            if (!f->bad++)
                snprintf(f->why, sizeof(f->why), "%s: %d %s, %zu body bytes", path, code,
                         rig_hdr(&r, "X-Cache"), r.body_len);
        }
        rig_resp_free(&r);
    }
    return NULL;
}

/* n distinct objects prefix0..prefix<n-1> fetched on nd by FETCHERS
 * concurrent clients: every one a MISS with the right body. */
static void fetch_all(const struct rig_node *nd, const char *prefix, int n)
{
    struct fetcher f[FETCHERS];

    for (int i = 0; i < FETCHERS; i++) {
        f[i] = (struct fetcher){.nd = nd, .prefix = prefix};
        f[i].from = n * i / FETCHERS;
        f[i].to = n * (i + 1) / FETCHERS;
        cr_assert_eq(pthread_create(&f[i].t, NULL, fetch_run, &f[i]), 0);
    }
    for (int i = 0; i < FETCHERS; i++)
        pthread_join(f[i].t, NULL);
    for (int i = 0; i < FETCHERS; i++)
        cr_assert_eq(f[i].bad, 0, "%d bad answers, first %s", f[i].bad, f[i].why);
}

/* ---- 1. announce to every peer, purge everywhere ---------------------- */

Test(repl, three_nodes_miss_on_a_hit_on_b_and_c_purge_everywhere)
{
    char path[64];

    start_nodes(true);
    for (int i = 0; i < N_SMALL; i++) {
        path_of(path, sizeof(path), "/r/", i);
        expect_get(&a, path, "MISS");
    }
    cr_assert_eq(rig_origin_requests(&o), N_SMALL);
    expect_stat(&b, "replicated_in", N_SMALL);
    expect_stat(&c, "replicated_in", N_SMALL);
    cr_assert_eq(rig_stat(a.port, "replicated_out"), 2 * N_SMALL);
    cr_assert_eq(rig_stat(a.port, "replicated_in"), 0);
    cr_assert_eq(rig_stat(b.port, "replicated_out"), 0, "a replicated copy was sent on");
    for (int i = 0; i < N_SMALL; i++) {
        path_of(path, sizeof(path), "/r/", i);
        cr_assert(rig_is_hit(b.port, "nb", path), "%s is no HIT on nb", path);
        cr_assert(rig_is_hit(c.port, "nc", path), "%s is no HIT on nc", path);
    }
    cr_assert_eq(rig_origin_requests(&o), N_SMALL, "B or C fetched from the origin");

    /* PURGE on B: gone from A, B and C; the other objects stay */
    struct rig_resp r;
    cr_assert_eq(rig_request(b.port, "PURGE", "/r/0", false, &r), 200);
    cr_assert_str_eq(r.body, "{\"purged\":1}\n");
    rig_resp_free(&r);
    expect_stat(&a, "peer_purges_in", 1);
    expect_stat(&c, "peer_purges_in", 1);
    expect_absent(&a, "/r/0");
    expect_absent(&b, "/r/0");
    expect_absent(&c, "/r/0");
    cr_assert(rig_is_hit(a.port, "na", "/r/1"));
    cr_assert(rig_is_hit(c.port, "nc", "/r/1"));
    cr_assert_eq(rig_origin_requests(&o), N_SMALL);
    stop_nodes();
}

/* ---- 2. SIGKILL and restart: ready only once synced ------------------- */

Test(repl, killed_node_restarts_synced_and_serves_hits)
{
    char path[64];

    start_nodes(true);
    for (int i = 0; i < N_SMALL; i++) {
        path_of(path, sizeof(path), "/k/", i);
        expect_get(&a, path, "MISS");
    }
    expect_stat(&c, "replicated_in", N_SMALL);
    rig_node_kill(&c);
    rig_node_respawn(&c);
    cr_assert_not_null(h_wait_for(&c.p, 2, "syncing before serving", RIG_WAIT_MS));
    rig_node_wait_ready(&c);
    /* no waiting: the first request after the ready line is a hit (plain
     * GETs, so a miss would reach the origin and show in the count) */
    for (int i = 0; i < N_SMALL; i++) {
        path_of(path, sizeof(path), "/k/", i);
        expect_get(&c, path, "HIT");
    }
    cr_assert_eq(rig_origin_requests(&o), N_SMALL, "the restarted C fetched from the origin");
    cr_assert_geq(rig_stat(c.port, "peer_syncs"), 1);
    cr_assert_geq(rig_stat(c.port, "replicated_in"), N_SMALL);
    /* the restarted C announces its own origin fetches to A and B */
    expect_get(&c, "/k/after", "MISS");
    cr_assert(await_hit(&a, "/k/after"), "/k/after never reached na");
    cr_assert(await_hit(&b, "/k/after"), "/k/after never reached nb");
    cr_assert_eq(rig_origin_requests(&o), N_SMALL + 1);
    stop_nodes();
}

/* ---- raw peers: the protocol spoken by the test ------------------------ */

struct raw {
    int fd;
    struct rframe_tx tx;
    struct rframe_decoder *dec;
    uint8_t nonce[RFRAME_NONCE_LEN];
    bool hello; /* the node's HELLO arrived */
};

static struct key_ring kr_good, kr_bad;
static uint8_t fb[RFRAME_FRAME_MAX];

static void load_keys(const char *dir)
{
    char path[512], err[256];

    memset(&kr_good, 0, sizeof(kr_good));
    memset(&kr_bad, 0, sizeof(kr_bad));
    snprintf(path, sizeof(path), "%s/key", dir);
    cr_assert_eq(key_ring_load(&kr_good, path, err, sizeof(err)), 0, "%s", err);
    snprintf(path, sizeof(path), "%s/otherkey", dir);
    cr_assert_eq(key_ring_load(&kr_bad, path, err, sizeof(err)), 0, "%s", err);
}

/* Connects to a replication port; rcvbuf > 0 shrinks the receive buffer. */
static void raw_open(struct raw *r, unsigned port, const struct key_ring *kr, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};

    memset(r, 0, sizeof(*r));
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_neq(r->fd, -1);
    if (rcvbuf > 0)
        setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sa.sin_port = htons((uint16_t)port);
    cr_assert_eq(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    rframe_nonce_new(r->nonce);
    rframe_tx_init(&r->tx, kr, r->nonce);
    r->dec = rframe_decoder_new(&kr_good, r->nonce);
}

static void raw_send(struct raw *r, const void *p, size_t n)
{
    cr_assert_eq(send(r->fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static int raw_on_frame(const struct rframe_frame *f, void *arg)
{
    struct raw *r = arg;

    r->hello |= f->type == RFRAME_HELLO;
    return 0;
}

/* Reads the node's HELLO (the only frame it sends before ours), answers
 * with ours: the connection is ready both ways. */
static void raw_handshake(struct raw *r, const char *name)
{
    uint8_t in[512];
    int n;

    while (!r->hello) {
        ssize_t got = recv(r->fd, in, sizeof(in), 0);

        cr_assert_gt(got, 0, "no HELLO from the node");
        cr_assert_eq(rframe_feed(r->dec, in, (size_t)got, raw_on_frame, r), 0);
    }
    n = rframe_encode_hello(&r->tx, name, fb, sizeof(fb));
    cr_assert_gt(n, 0);
    raw_send(r, fb, (size_t)n);
    rframe_tx_set_peer(&r->tx, rframe_decoder_peer_nonce(r->dec));
}

/* Reads until the node closes: true on EOF or a reset, false after 10 s.
 * A handshaken peer sends heartbeats meanwhile, so the node's dead timer
 * (3 s) never closes it: only a refusal does. Frees r. */
static bool raw_closed(struct raw *r)
{
    static char sink[65536];
    struct timeval tv = {.tv_usec = 250 * 1000};
    uint8_t hb[RFRAME_HDR_LEN + RFRAME_TAG_LEN];
    ssize_t n = -1;

    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int quiet = 0; quiet < 40;) {
        n = recv(r->fd, sink, sizeof(sink), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
        if (n > 0)
            continue;
        quiet++;
        if (r->tx.peer_known && rframe_encode_heartbeat(&r->tx, hb, sizeof(hb)) > 0)
            (void)!send(r->fd, hb, sizeof(hb), MSG_NOSIGNAL);
    }
    close(r->fd);
    rframe_decoder_free(r->dec);
    rframe_tx_done(&r->tx);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Sends OBJECT_BEGIN, one chunk and OBJECT_END for primary with body (or
 * only BEGIN when declared is above obj_max), signed by tx. A wrong digest
 * when bad_digest. The node may close after BEGIN: later sends may fail. */
static void raw_send_object(struct raw *r, struct rframe_tx *tx, const char *primary,
                            const char *body, uint64_t declared, bool bad_digest)
{
    static const char hdrs[] = "Cache-Control: max-age=300\r\nETag: \"planted\"\r\n";
    struct rframe_object ob = {
        .id = 1,
        .primary = {primary, strlen(primary)},
        .etag = {"\"planted\"", 9},
        .headers = {hdrs, sizeof(hdrs) - 1},
        .status = 200,
        .date = time(NULL),
        .ttl = 300,
        .body_size = declared,
    };
    struct rframe_chunk ch = {.id = 1, .data = (const uint8_t *)body, .len = strlen(body)};
    int n;

    crypto_hash_sha256(ob.sha256, (const uint8_t *)body, strlen(body));
    ob.sha256[0] ^= bad_digest;
    n = rframe_encode_object_begin(tx, &ob, fb, sizeof(fb));
    cr_assert_gt(n, 0);
    raw_send(r, fb, (size_t)n);
    if (declared != strlen(body))
        return;
    n = rframe_encode_object_chunk(tx, &ch, fb, sizeof(fb));
    cr_assert_gt(n, 0);
    if (send(r->fd, fb, (size_t)n, MSG_NOSIGNAL) != n)
        return;
    n = rframe_encode_object_end(tx, 1, fb, sizeof(fb));
    cr_assert_gt(n, 0);
    (void)!send(r->fd, fb, (size_t)n, MSG_NOSIGNAL);
}

/* ---- 3. a peer that stops reading -------------------------------------- */

/* Keeps a stalled raw peer alive (it never reads) until the node drops it. */
struct beat {
    struct raw *r;
    atomic_bool stop;
    pthread_t t;
};

static void *beat_run(void *arg)
{
    struct beat *bt = arg;
    uint8_t hb[RFRAME_HDR_LEN + RFRAME_TAG_LEN];

    while (!atomic_load(&bt->stop)) {
        int n = rframe_encode_heartbeat(&bt->r->tx, hb, sizeof(hb));
        struct timespec ts = {.tv_nsec = 200 * 1000 * 1000};

        if (n < 0 || send(bt->r->fd, hb, (size_t)n, MSG_NOSIGNAL) != n)
            break;
        nanosleep(&ts, NULL); /* the heartbeat period: the behaviour, not a wait */
    }
    return NULL;
}

Test(repl, stalled_peer_is_dropped_and_clients_and_other_peers_go_on)
{
    struct raw stall;
    struct beat bt = {.r = &stall};
    char path[64];

    load_keys(start_nodes(false));
    raw_open(&stall, a.peer_port, &kr_good, 4096);
    raw_handshake(&stall, "stall");
    atomic_init(&bt.stop, false);
    cr_assert_eq(pthread_create(&bt.t, NULL, beat_run, &bt), 0);
    expect_stat(&a, "peers_ready", 2);
    /* 32 MiB announced to a peer that reads nothing: its queue passes the
     * 16 MiB cap, it is dropped; A's clients all get their objects */
    fetch_all(&a, "/big/t", N_BIG);
    cr_assert_eq(rig_origin_requests(&o), N_BIG);
    cr_assert_eq(rig_stat(a.port, "peer_drops"), 1);
    cr_assert_eq(rig_stat(a.port, "peers_ready"), 1);
    cr_assert_eq(rig_stat(a.port, "peer_rejected"), 0);
    atomic_store(&bt.stop, true);
    pthread_join(bt.t, NULL);
    cr_assert(raw_closed(&stall), "A did not close the stalled peer");
    /* B, reading, got every object */
    expect_stat(&b, "replicated_in", N_BIG);
    for (int i = 0; i < N_BIG; i++) {
        path_of(path, sizeof(path), "/big/t", i);
        cr_assert(rig_is_hit(b.port, "nb", path), "%s is no HIT on nb", path);
    }
    cr_assert_eq(rig_origin_requests(&o), N_BIG);
    stop_nodes();
}

Test(repl, stopped_peer_is_dropped_then_resyncs)
{
    char path[64];
    uint64_t drops, dead, stopped_at;

    start_nodes(false);
    expect_stat(&a, "peers_ready", 1);
    h_signal(&b.p, SIGSTOP);
    stopped_at = clock_mono_ms();
    fetch_all(&a, "/big/s", N_BIG);
    cr_assert_eq(rig_origin_requests(&o), N_BIG);
    /* B is dropped: at the queue cap, or by the dead timer (3 s without a
     * frame) when A took longer than that to fill the queue; a silent peer
     * is not a refused frame */
    expect_stat(&a, "peers_ready", 0);
    drops = rig_stat(a.port, "peer_drops");
    dead = rig_stat(a.port, "peer_dead");
    cr_assert_eq(drops + dead, 1, "drops %llu, dead %llu", (unsigned long long)drops,
                 (unsigned long long)dead);
    cr_assert_eq(rig_stat(a.port, "peer_rejected"), 0);
    cr_log_info("stopped peer: %s", drops ? "dropped at the queue cap" : "dead timer");
    /* B stays stopped past its own dead interval: on resuming, it must read
     * what A sent (heartbeats, then A's close) before its tick looks at the
     * time of the last frame, so it does not call A dead */
    while (clock_mono_ms() - stopped_at < 3000 + 500)
        usleep(50 * 1000);
    h_signal(&b.p, SIGCONT);
    /* B reconnects (5 s) and syncs a second time */
    cr_assert_eq(rig_wait_stat(b.port, "peer_syncs", 2, 3 * RIG_WAIT_MS), 2, "B did not resync");
    for (int i = 0; i < N_BIG; i++) {
        path_of(path, sizeof(path), "/big/s", i);
        cr_assert(rig_is_hit(b.port, "nb", path), "%s is no HIT on nb", path);
    }
    cr_assert_eq(rig_origin_requests(&o), N_BIG, "B fetched from the origin");
    cr_assert_eq(rig_stat(b.port, "peer_dead"), 0, "B called A dead on resuming");
    stop_nodes();
}

/* ---- 4. forged frames --------------------------------------------------- */

static uint64_t rejected; /* A's peer_rejected so far */

/* The raw connection is closed by A, peer_rejected rose by one, and A
 * logged the reason (when it logs one). */
static void expect_refused(struct raw *r, const char *log_needle)
{
    cr_assert(raw_closed(r), "A did not close the connection (%s)", log_needle);
    rejected++;
    cr_assert_eq(rig_stat(a.port, "peer_rejected"), rejected, "(%s)", log_needle);
    if (*log_needle)
        cr_assert_not_null(h_wait_for(&a.p, 2, log_needle, RIG_WAIT_MS), "no log: %s", log_needle);
}

Test(repl, forged_frames_are_refused_counted_and_change_nothing)
{
    struct raw r, x;
    struct rframe_tx bad;
    struct rframe_purge pg = {.kind = RFRAME_PURGE_REMOVE, .primary = {"test /f/0", 9}};
    /* FULR, version 1, OBJECT_CHUNK, no flags, seq 1, length 2^32 - 1 */
    uint8_t hdr[RFRAME_HDR_LEN] = {
        'F', 'U',  'L',  'R',  1,   RFRAME_OBJECT_CHUNK, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        1,   0xff, 0xff, 0xff, 0xff};
    uint8_t saved[RFRAME_HDR_LEN + RFRAME_TAG_LEN];
    char path[64];
    int n;

    load_keys(start_nodes(false));
    for (int i = 0; i < 3; i++) {
        path_of(path, sizeof(path), "/f/", i);
        expect_get(&a, path, "MISS");
    }
    expect_stat(&b, "replicated_in", 3);
    cr_assert_eq(rig_stat(a.port, "objects"), 3);
    rejected = rig_stat(a.port, "peer_rejected");
    cr_assert_eq(rejected, 0);

    /* (a) garbage */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_send(&r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    expect_refused(&r, "frame refused (bad_magic)");
    /* (b) HELLO under another key */
    raw_open(&r, a.peer_port, &kr_bad, 0);
    raw_handshake(&r, "forger");
    expect_refused(&r, "frame refused (bad_mac)");
    /* (c) a PURGE of a stored key, under another key, on a ready connection */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    bad = r.tx;
    bad.kr = &kr_bad;
    n = rframe_encode_purge(&bad, &pg, fb, sizeof(fb));
    raw_send(&r, fb, (size_t)n);
    r.tx.seq = bad.seq; /* were it accepted, the heartbeats go on from here */
    expect_refused(&r, "frame refused (bad_mac)");
    /* (d) an announced object under another key */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    bad = r.tx;
    bad.kr = &kr_bad;
    raw_send_object(&r, &bad, "test /forged", "body:GET /forged", 16, false);
    r.tx.seq = bad.seq;
    expect_refused(&r, "frame refused (bad_mac)");
    /* (e) a 4 GiB length: refused on the header, nothing more is awaited */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_send(&r, hdr, sizeof(hdr));
    expect_refused(&r, "frame refused (too_large)");
    /* (f) a frame replayed on its own connection */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    n = rframe_encode_heartbeat(&r.tx, saved, sizeof(saved));
    raw_send(&r, saved, (size_t)n);
    raw_send(&r, saved, (size_t)n);
    expect_refused(&r, "frame refused (replayed)");
    /* (g) a frame of an earlier connection, replayed on a new one */
    raw_open(&x, a.peer_port, &kr_good, 0);
    raw_handshake(&x, "forger");
    n = rframe_encode_heartbeat(&x.tx, saved, sizeof(saved));
    raw_send(&x, saved, (size_t)n);
    shutdown(x.fd, SHUT_WR); /* at a frame boundary: a clean close */
    cr_assert(raw_closed(&x));
    cr_assert_eq(rig_stat(a.port, "peer_rejected"), rejected, "a clean close was counted");
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    raw_send(&r, saved, (size_t)n);
    r.tx.seq++;
    expect_refused(&r, "frame refused (bad_mac)");
    /* (h) a deleted frame: the sequence number skips */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    rframe_encode_heartbeat(&r.tx, fb, sizeof(fb));
    n = rframe_encode_heartbeat(&r.tx, fb, sizeof(fb));
    raw_send(&r, fb, (size_t)n);
    expect_refused(&r, "frame refused (seq_gap)");
    /* (i) a PURGE cut short by the end of the stream */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    n = rframe_encode_purge(&r.tx, &pg, fb, sizeof(fb));
    raw_send(&r, fb, (size_t)n - 10);
    shutdown(r.fd, SHUT_WR);
    expect_refused(&r, ""); /* truncated: counted, not logged */
    /* (j) a signed object whose body does not match its digest */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    raw_send_object(&r, &r.tx, "test /forged", "body:GET /forged", 16, true);
    expect_refused(&r, "digest mismatch");
    /* (k) a signed object above A's --max-object */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    raw_send_object(&r, &r.tx, "test /forged", "body:GET /forged", 64u << 20, false);
    expect_refused(&r, "object body above obj_max");

    /* nothing changed on A */
    cr_assert_eq(rig_stat(a.port, "objects"), 3);
    cr_assert_eq(rig_stat(a.port, "peer_purges_in"), 0);
    cr_assert_eq(rig_stat(a.port, "replicated_in"), 0);
    for (int i = 0; i < 3; i++) {
        path_of(path, sizeof(path), "/f/", i);
        cr_assert(rig_is_hit(a.port, "na", path), "%s lost on na", path);
    }
    expect_absent(&a, "/forged");
    cr_assert_eq(rig_stat(a.port, "peers_ready"), 1, "the link to B was disturbed");

    /* legitimate replication both ways still works */
    expect_get(&a, "/f/after-a", "MISS");
    expect_stat(&b, "replicated_in", 4);
    cr_assert(rig_is_hit(b.port, "nb", "/f/after-a"));
    expect_get(&b, "/f/after-b", "MISS");
    expect_stat(&a, "replicated_in", 1);
    cr_assert(rig_is_hit(a.port, "na", "/f/after-b"));

    /* control: the same object, correctly signed, is stored, so the
     * refusals above were for what was forged */
    raw_open(&r, a.peer_port, &kr_good, 0);
    raw_handshake(&r, "forger");
    raw_send_object(&r, &r.tx, "test /forged", "body:GET /forged", 16, false);
    expect_stat(&a, "replicated_in", 2);
    cr_assert(rig_is_hit(a.port, "na", "/forged"));
    cr_assert_eq(rig_stat(a.port, "peer_rejected"), rejected);
    shutdown(r.fd, SHUT_WR);
    cr_assert(raw_closed(&r));
    cr_assert_eq(rig_origin_requests(&o), 5);
    stop_nodes();
}
