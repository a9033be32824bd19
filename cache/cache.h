/* cache.h - fulcrum-cache's request logic: an HTTP/1.1 caching reverse
 * proxy over the store (store.h), the RFC 9111 rules (rfc9111.h), and an
 * origin (origin.h) or a directory (docroot.h).
 *
 * Per request: GET/HEAD are looked up by "host+path?query" (HEAD answered
 * from GET entries, Vary variants by c9_vary_key); fresh hits are answered
 * from the store (X-Cache: HIT from NAME, Age); misses for one key coalesce
 * into one origin fetch whose result answers every waiter; storable
 * responses that fit are stored (X-Cache: MISS), others passed through
 * (X-Cache: PASS, never stored); responses over max-object are streamed
 * through as they arrive, never held whole (the leader of a coalesced miss
 * gets the stream, each other waiter a fetch of its own, and the key is
 * remembered as hit-for-pass for a while); stale entries are served while
 * revalidated in the background (X-Cache: STALE), revalidated first with a
 * conditional request, or served stale when that revalidation fails and
 * stale-if-error allows (X-Cache: STALE). Unsafe methods are proxied with
 * their bodies (at most max_request_body, else 413) and invalidate the key.
 * Docroot files over max-object are streamed from the file, never held
 * whole. PURGE and /_fulcrum/stats are for loopback peers only. The files
 * and design notes are listed in cache_int.h.
 *
 * Thread: everything runs on the loop given to cache_new().
 */
#ifndef FULCRUM_CACHE_CACHE_H
#define FULCRUM_CACHE_CACHE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

/* The daemon's configuration (main.c's table fills it). */
struct cache_cfg {
    char *listen;            /* HOST:PORT, port 0 allowed */
    char *origin;            /* "http://HOST:PORT" or "" */
    char *docroot;           /* directory or "" (exactly one of the two) */
    char *name;              /* for X-Cache; "" means the hostname */
    char *max_memory;        /* size text: bytes with an optional K/M/G suffix */
    char *max_object;        /* size text */
    char *max_request_body;  /* size text: request bodies buffered up to this, else 413 */
    long long default_ttl;   /* s, for responses without explicit freshness */
    double timeout_connect;  /* origin connect, s */
    double timeout_origin;   /* origin response silence, s */
    double timeout_client;   /* client idle, s */
    double timeout_coalesce; /* a request waiting on another's fetch, s; then 504 */
    char *log_file;
    int log_level;
    /* replication (peer.h): on when key and peer_listen are both given */
    char *key;             /* cluster key file */
    char *key_next;        /* second key accepted during a rotation, or "" */
    char *peer_listen;     /* HOST:PORT for peers, port 0 allowed, or "" */
    struct cfg_list peers; /* HOST:PORT of peers to connect to */
    /* ADDR[/LEN] networks allowed to PURGE besides 127.0.0.1 */
    struct cfg_list purge_allow;
};

struct cache;

/* Parses "123", "64K", "256M", "1G" into *out. Returns 0 or -EINVAL. */
int cache_parse_size(const char *s, size_t *out);

/* Builds the cache and starts listening on loop (plus a 1 s sweep timer).
 * With replication on, the HTTP listener is created only once the first
 * sync with the peers finished (peer_synced, polled every 20 ms), so a TCP
 * health check sees the node down until it holds the cluster's content.
 * Returns NULL with err filled on a bad option or a socket error. */
struct cache *cache_new(struct ev_loop *loop, const struct cache_cfg *cfg, char *err,
                        size_t errlen);
/* Calls cb once the HTTP listener is up: now when it already is. If the
 * deferred listener cannot be created, cb gets ok = false (and the loop is
 * broken). */
void cache_on_ready(struct cache *c, void (*cb)(struct cache *c, bool ok, void *arg), void *arg);
/* "IP:PORT" of the replication listener into buf (NET_ADDRSTRLEN bytes), or
 * NULL when replication is off. */
const char *cache_peer_listen(const struct cache *c, char *buf);
/* The bound port (host order) and the node name in use (once ready). */
unsigned cache_port(const struct cache *c);
const char *cache_name(const struct cache *c);
/* "IP:PORT" actually listened on, into buf (NET_ADDRSTRLEN bytes). */
const char *cache_listen(const struct cache *c, char *buf);
/* Stops listening, cancels fetches, answers nothing more, frees c. NULL is
 * a no-op. Not from inside a cache callback. */
void cache_free(struct cache *c);

#endif
