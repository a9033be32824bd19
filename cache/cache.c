/* cache.c - fulcrum-cache's life cycle (contract in cache.h): options, the
 * store, the origin or the docroot, the replication peers, the HTTP
 * listener (deferred until the first sync when replicating) and the expiry
 * sweep. The request logic is in the other cache_*.c files; cache_int.h
 * lists them and holds the design notes. */
#include "cache.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache_int.h"
#include "clock.h"
#include "docroot.h"
#include "log.h"
#include "net.h"
#include "peer.h"
#include "xalloc.h"

/* --purge-allow ADDR[/LEN]: the network, its host bits cleared. */
static int cache_parse_allow(struct cache *c, const struct cfg_list *l, char *err, size_t errlen)
{
    for (size_t i = 0; i < l->n && i < CFG_LIST_MAX; i++) {
        char ip[INET_ADDRSTRLEN], *end;
        const char *slash = strchr(l->v[i], '/');
        size_t n = slash ? (size_t)(slash - l->v[i]) : strlen(l->v[i]);
        long len = 32;
        struct in_addr a;

        if (n >= sizeof(ip))
            goto bad;
        memcpy(ip, l->v[i], n);
        ip[n] = '\0';
        if (slash) {
            errno = 0;
            len = strtol(slash + 1, &end, 10);
            if (errno || end == slash + 1 || *end || len < 0 || len > 32)
                goto bad;
        }
        if (inet_pton(AF_INET, ip, &a) != 1)
            goto bad;
        c->purge_allow[i].mask = len ? ~(uint32_t)0 << (32 - len) : 0;
        c->purge_allow[i].net = ntohl(a.s_addr) & c->purge_allow[i].mask;
        c->n_purge_allow++;
        continue;
    bad:
        snprintf(err, errlen, "--purge-allow '%s': want an IPv4 ADDR or ADDR/LEN (LEN 0..32)",
                 l->v[i]);
        return -EINVAL;
    }
    return 0;
}

int cache_parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v, mul = 1;

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    switch (toupper((unsigned char)*end)) {
    case 0:
        break;
    case 'K':
        mul = 1ull << 10;
        break;
    case 'M':
        mul = 1ull << 20;
        break;
    case 'G':
        mul = 1ull << 30;
        break;
    default:
        return -EINVAL;
    }
    if (*end && end[1] && !(toupper((unsigned char)end[1]) == 'B' && !end[2]) &&
        !(toupper((unsigned char)end[1]) == 'I' && toupper((unsigned char)end[2]) == 'B' &&
          !end[3]))
        return -EINVAL;
    if (v == 0 || v > SIZE_MAX / mul)
        return -EINVAL;
    *out = (size_t)(v * mul);
    return 0;
}

static void cache_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct cache *c = w->data;

    (void)loop;
    (void)revents;
    cstore_sweep(c->store, clock_mono_ms(), CACHE_SWEEP_BATCH);
}

/* ---- life cycle ---- */

/* Creates the HTTP listener and tells the ready callback. */
static void cache_listen_now(struct cache *c)
{
    char err[256];

    c->srv = http_server_new(c->loop, &c->addr, &c->hl, cache_request_cb, c, err, sizeof(err));
    if (!c->srv) {
        log_err("%s", err);
        ev_break(c->loop, EVBREAK_ALL);
    }
    if (c->ready_cb)
        c->ready_cb(c, c->srv != NULL, c->ready_arg);
}

static void cache_sync_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct cache *c = w->data;

    (void)revents;
    if (!peer_synced(c->peers))
        return;
    ev_timer_stop(loop, w);
    cache_listen_now(c);
}

/* Loads the keys and starts the peer set, when replication is asked for. */
static int cache_peers_new(struct cache *c, const struct cache_cfg *cfg, char *err, size_t errlen)
{
    struct peer_cfg pc;
    struct sockaddr_in *addrs = NULL;
    bool key = cfg->key && *cfg->key, listen = cfg->peer_listen && *cfg->peer_listen;

    if (!key && !listen && !cfg->peers.n)
        return 0;
    if (!key || !listen) {
        snprintf(err, errlen, "replication needs both --key FILE and --peer-listen HOST:PORT");
        return -EINVAL;
    }
    if (key_ring_load(&c->kr, cfg->key, err, errlen) ||
        (cfg->key_next && *cfg->key_next && key_ring_load(&c->kr, cfg->key_next, err, errlen)))
        return -EINVAL;
    peer_cfg_default(&pc);
    pc.name = c->name;
    pc.kr = &c->kr;
    pc.obj_max = c->max_object;
    if (net_parse_hostport(cfg->peer_listen, true, &pc.listen, err, errlen))
        return -EINVAL;
    if (cfg->peers.n) {
        addrs = xcalloc(cfg->peers.n, sizeof(*addrs));
        for (size_t i = 0; i < cfg->peers.n; i++)
            if (net_parse_hostport(cfg->peers.v[i], false, &addrs[i], err, errlen)) {
                free(addrs);
                return -EINVAL;
            }
    }
    pc.peers = addrs;
    pc.n_peers = cfg->peers.n;
    c->peer_addr = pc.listen;
    c->peers = peer_set_new(c->loop, &pc, c->store, err, errlen);
    free(addrs);
    return c->peers ? 0 : -EINVAL;
}

struct cache *cache_new(struct ev_loop *loop, const struct cache_cfg *cfg, char *err, size_t errlen)
{
    struct cache *c = xcalloc(1, sizeof(*c));
    struct cstore_cfg sc;
    struct http_limits hl;
    struct origin_limits ol;
    size_t max_mem, max_req_body;

    c->loop = loop;
    if (cache_parse_size(cfg->max_memory, &max_mem) ||
        cache_parse_size(cfg->max_object, &c->max_object) ||
        cache_parse_size(cfg->max_request_body, &max_req_body)) {
        snprintf(err, errlen,
                 "--max-memory, --max-object and --max-request-body take a size: N, NK, NM or NG");
        goto out_free;
    }
    if (cache_parse_allow(c, &cfg->purge_allow, err, errlen))
        goto out_free;
    if (!!*cfg->origin == !!*cfg->docroot) {
        snprintf(err, errlen, "exactly one of --origin URL and --docroot DIR is needed");
        goto out_free;
    }
    if (net_parse_hostport(cfg->listen, true, &c->addr, err, errlen))
        goto out_free;
    if (*cfg->name)
        snprintf(c->name, sizeof(c->name), "%s", cfg->name);
    else if (gethostname(c->name, sizeof(c->name) - 1) == -1)
        snprintf(c->name, sizeof(c->name), "fulcrum-cache");
    c->default_ttl = cfg->default_ttl;
    c->rl_origin = (struct log_rl)LOG_RL_INIT(CACHE_LOG_BURST, CACHE_LOG_WINDOW_MS);
    c->rl_purge = (struct log_rl)LOG_RL_INIT(CACHE_LOG_BURST, CACHE_LOG_WINDOW_MS);
    c->timeout_coalesce = cfg->timeout_coalesce;
    cstore_cfg_default(&sc);
    sc.max_bytes = max_mem;
    sc.max_object = c->max_object;
    c->store = cstore_new(&sc);
    if (!c->store) {
        snprintf(err, errlen, "cannot make the store");
        goto out_free;
    }
    if (*cfg->origin) {
        origin_limits_default(&ol);
        ol.connect_timeout = cfg->timeout_connect;
        ol.response_timeout = cfg->timeout_origin;
        ol.max_body = c->max_object;
        c->origin = origin_new(loop, cfg->origin, &ol, err, errlen);
        if (!c->origin)
            goto out_free;
    } else {
        c->docroot = docroot_new(cfg->docroot, err, errlen);
        if (!c->docroot)
            goto out_free;
    }
    if (cache_peers_new(c, cfg, err, errlen))
        goto out_free;
    http_limits_default(&hl);
    hl.idle_timeout = cfg->timeout_client;
    hl.max_body = max_req_body;
    c->hl = hl;
    if (c->peers) {
        ev_timer_init(&c->sync_poll, cache_sync_poll_cb, 0, CACHE_SYNC_POLL);
        c->sync_poll.data = c;
        ev_timer_start(loop, &c->sync_poll);
    } else {
        c->srv = http_server_new(loop, &c->addr, &hl, cache_request_cb, c, err, errlen);
        if (!c->srv)
            goto out_free;
    }
    ev_timer_init(&c->sweep, cache_sweep_cb, 1, 1);
    c->sweep.data = c;
    ev_timer_start(loop, &c->sweep);
    return c;

out_free:
    cache_free(c);
    return NULL;
}

void cache_on_ready(struct cache *c, void (*cb)(struct cache *c, bool ok, void *arg), void *arg)
{
    c->ready_cb = cb;
    c->ready_arg = arg;
    if (c->srv)
        cb(c, true, arg);
}

const char *cache_peer_listen(const struct cache *c, char *buf)
{
    struct sockaddr_in a;

    if (!c->peers)
        return NULL;
    a = c->peer_addr;
    a.sin_port = htons((uint16_t)peer_listen_port(c->peers));
    return net_ntop(&a, buf);
}

unsigned cache_port(const struct cache *c)
{
    return c->srv ? http_server_port(c->srv) : 0;
}

const char *cache_listen(const struct cache *c, char *buf)
{
    struct sockaddr_in a = c->addr;

    a.sin_port = htons((uint16_t)cache_port(c));
    return net_ntop(&a, buf);
}

const char *cache_name(const struct cache *c)
{
    return c->name;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    ev_timer_stop(c->loop, &c->sweep);
    ev_timer_stop(c->loop, &c->sync_poll);
    /* held exchanges are detached: their abort callbacks release them */
    http_server_free(c->srv);
    c->srv = NULL;
    cache_flights_free(c);
    cache_streams_free(c);
    cache_passes_free(c);
    cache_hfp_free(c);
    origin_free(c->origin); /* cancels the unsafe fetches: no callbacks */
    c->origin = NULL;
    cache_unsafe_free_all(c);
    docroot_free(c->docroot);
    peer_set_free(c->peers); /* before the store it borrows */
    key_ring_done(&c->kr);
    cstore_free(c->store);
    free(c);
}
