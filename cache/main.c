/* main.c - fulcrum-cache: configuration table, logging, signals, the loop
 * (the request logic is cache.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "cache.h"
#include "cfg.h"
#include "log.h"
#include "opts.h"

#define O(f) offsetof(struct cache_cfg, f)
static const struct cfg_opt cache_opts[] = {
    {"listen", CFG_STR, O(listen), 0, 255, "", NULL, "HOST:PORT",
     "serve HTTP here (port 0: any free port; the ready line says which)"},
    {"origin", CFG_STR, O(origin), 0, 255, "", NULL, "URL",
     "origin server, http://HOST:PORT (or --docroot)"},
    {"docroot", CFG_STR, O(docroot), 0, 4095, "", NULL, "DIR",
     "serve this directory as the origin (or --origin)"},
    {"name", CFG_STR, O(name), 0, 255, "", NULL, "NAME",
     "node name in X-Cache (default: the hostname)"},
    {"max-memory", CFG_STR, O(max_memory), 0, 31, "256M", NULL, "SIZE",
     "budget for stored objects, bytes (K, M, G suffixes)"},
    {"max-object", CFG_STR, O(max_object), 0, 31, "8M", NULL, "SIZE",
     "largest object stored; larger responses are passed through"},
    {"max-request-body", CFG_STR, O(max_request_body), 0, 31, "1M", NULL, "SIZE",
     "largest request body forwarded to the origin; larger requests get 413"},
    {"default-ttl", CFG_INT, O(default_ttl), 0, 31536000, "60", NULL, "SEC",
     "freshness of responses that give none but may be cached"},
    {"timeout-connect", CFG_DOUBLE, O(timeout_connect), 0.001, 3600, "2", NULL, "SEC",
     "connect to the origin"},
    {"timeout-origin", CFG_DOUBLE, O(timeout_origin), 0.001, 3600, "10", NULL, "SEC",
     "origin silence while a response is due"},
    {"timeout-client", CFG_DOUBLE, O(timeout_client), 0.001, 86400, "30", NULL, "SEC",
     "idle keep-alive client connections are closed after this"},
    {"timeout-coalesce", CFG_DOUBLE, O(timeout_coalesce), 0.001, 3600, "15", NULL, "SEC",
     "a request waiting on another's origin fetch gets 504 after this"},
    OPTS_KEY(struct cache_cfg, "", "cluster key file (mode 0600): signs replication"),
    {"peer-listen", CFG_STR, O(peer_listen), 0, 255, "", NULL, "HOST:PORT",
     "accept replication peers here (port 0: any; with --key, replication is on)"},
    {"peer", CFG_LIST, O(peers), 0, 255, NULL, NULL, "HOST:PORT", "replication peer to connect to"},
    {"purge-allow", CFG_LIST, O(purge_allow), 0, 255, NULL, NULL, "ADDR[/LEN]",
     "clients in this network may PURGE, besides 127.0.0.1"},
    OPTS_LOG(struct cache_cfg),
    {NULL},
};
#undef O

/* ADDR[/LEN] as cache_new() takes it for --purge-allow. */
static bool cache_allow_ok(const char *v)
{
    const char *slash = strchr(v, '/');
    size_t n = slash ? (size_t)(slash - v) : strlen(v);
    char ip[INET_ADDRSTRLEN], *end;
    struct in_addr a;
    long len = 32;

    if (n >= sizeof(ip))
        return false;
    memcpy(ip, v, n);
    ip[n] = '\0';
    if (slash) {
        errno = 0;
        len = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end)
            return false;
    }
    return len >= 0 && len <= 32 && inet_pton(AF_INET, ip, &a) == 1;
}

/* The origin as http://HOST:PORT[/], as origin_new() takes it. */
static void cache_check_origin(struct cfg_check *chk, const char *url)
{
    char hp[256];
    size_t n;

    if (!*url)
        return;
    if (strncmp(url, "http://", 7)) {
        cfg_check_fail(chk, "origin", 0, "'%s' does not start with http://", url);
        return;
    }
    n = (size_t)snprintf(hp, sizeof(hp), "%s", url + 7);
    if (n > 0 && n < sizeof(hp) && hp[n - 1] == '/')
        hp[n - 1] = '\0';
    if (!*hp || strchr(hp, '/') || !strchr(hp, ':') || *hp == ':' || *hp == '*')
        cfg_check_fail(chk, "origin", 0, "'%s' is not http://HOST:PORT", url);
    else
        cfg_check_hostport(chk, "origin", hp, false);
}

/* --check-config: what cache_new() would refuse before it binds. */
static void cache_check_hook(const void *obj, struct cfg_check *chk)
{
    static const char *const sizes[] = {"max-memory", "max-object", "max-request-body"};
    const struct cache_cfg *c = obj;
    const char *size_v[] = {c->max_memory, c->max_object, c->max_request_body};
    bool key = *c->key, plisten = *c->peer_listen;
    size_t sz;

    if (cfg_check_required(chk, "listen", c->listen))
        cfg_check_hostport(chk, "listen", c->listen, true);
    if (!!*c->origin == !!*c->docroot)
        cfg_check_fail(chk, *c->origin ? "docroot" : "origin", 0,
                       "exactly one of origin URL and docroot DIR is needed");
    cache_check_origin(chk, c->origin);
    cfg_check_dir(chk, "docroot", c->docroot);
    for (size_t i = 0; i < 3; i++)
        if (cache_parse_size(size_v[i], &sz))
            cfg_check_fail(chk, sizes[i], 0, "'%s' is not a size: N, NK, NM or NG", size_v[i]);
    for (size_t i = 0; i < c->purge_allow.n; i++)
        if (!cache_allow_ok(c->purge_allow.v[i]))
            cfg_check_fail(chk, "purge-allow", i, "'%s': want an IPv4 ADDR or ADDR/LEN (0..32)",
                           c->purge_allow.v[i]);
    if ((key || plisten || c->peers.n) && !(key && plisten))
        cfg_check_fail(chk, key ? "peer-listen" : "key", 0,
                       "replication needs both key FILE and peer-listen HOST:PORT");
    cfg_check_key_file(chk, "key", c->key);
    cfg_check_key_file(chk, "key-next", c->key_next);
    cfg_check_hostport(chk, "peer-listen", c->peer_listen, true);
    cfg_check_hostports(chk, "peer", &c->peers, false);
    cfg_check_log_file(chk, "log-file", c->log_file);
}

static const struct cfg_prog cache_prog = {
    .name = "fulcrum-cache",
    .summary = "HTTP/1.1 caching reverse proxy (RFC 9111) in front of an origin or a directory.\n"
               "Signals: TERM/INT stop; HUP reopens the log.\n"
               "Exit status: 0 stopped by a signal (or --help, --version, --check-config\n"
               "OK); 1 start-up error (origin, docroot, sizes, key, a port in use); 2 bad\n"
               "options or configuration file.",
    .version = "0.1.0",
    .opts = cache_opts,
    .check = cache_check_hook,
};

static void cache_syserr(const char *msg)
{
    log_err("libev: %s", msg);
    abort();
}

static void cache_sig_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    log_info("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

static void cache_sig_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    if (log_reopen())
        log_err("cannot reopen the log file");
    else
        log_info("log reopened");
}

static void cache_ready(struct cache *c, bool ok, void *arg)
{
    char addr[32], paddr[32];

    *(int *)arg = ok ? 0 : 1;
    if (!ok)
        return;
    if (cache_peer_listen(c, paddr))
        log_info("ready listen=%s name=%s peer_listen=%s", cache_listen(c, addr), cache_name(c),
                 paddr);
    else
        log_info("ready listen=%s name=%s", cache_listen(c, addr), cache_name(c));
}

static int cache_run(const struct cache_cfg *cfg)
{
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    ev_signal s_term, s_int, s_hup;
    struct cache *c;
    char err[512], paddr[32];
    int rc = 0;

    c = cache_new(loop, cfg, err, sizeof(err));
    if (!c) {
        log_err("%s", err);
        return 1;
    }
    ev_signal_init(&s_term, cache_sig_stop, SIGTERM);
    ev_signal_init(&s_int, cache_sig_stop, SIGINT);
    ev_signal_init(&s_hup, cache_sig_hup, SIGHUP);
    ev_signal_start(loop, &s_term);
    ev_signal_start(loop, &s_int);
    ev_signal_start(loop, &s_hup);
    if (cache_peer_listen(c, paddr))
        log_info("replication listen=%s name=%s: syncing before serving", paddr, cache_name(c));
    cache_on_ready(c, cache_ready, &rc);
    if (!rc)
        ev_run(loop, 0);
    cache_free(c);
    ev_signal_stop(loop, &s_term);
    ev_signal_stop(loop, &s_int);
    ev_signal_stop(loop, &s_hup);
    ev_loop_destroy(loop);
    log_info("stopped");
    return rc;
}

int main(int argc, char **argv)
{
    struct cache_cfg cfg = {0};
    char err[512];
    int r;

    r = cfg_load(&cache_prog, &cfg, argc, argv, err, sizeof(err));
    if (r == 0 && !*cfg.listen) {
        snprintf(err, sizeof(err), "--listen HOST:PORT is required (see --help)");
        r = -1;
    }
    if (r) {
        if (r < 0)
            fprintf(stderr, "fulcrum-cache: %s\n", err);
        cfg_done(&cache_prog, &cfg);
        return r > 0 ? 0 : 2;
    }
    if (log_open("fulcrum-cache", cfg.log_file, (enum log_level)cfg.log_level)) {
        fprintf(stderr, "fulcrum-cache: cannot open log file %s\n", cfg.log_file);
        cfg_done(&cache_prog, &cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    ev_set_syserr_cb(cache_syserr);
    r = cache_run(&cfg);
    log_close();
    cfg_done(&cache_prog, &cfg);
    return r;
}
