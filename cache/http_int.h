/* http_int.h - what http.c (connections, parsing) and http_out.c (the
 * response writer) share. Private to the fulcrum_cache_http library: no
 * other module includes it. The contracts are those of http.h; the design
 * notes are at the top of http.c.
 */
#ifndef FULCRUM_CACHE_HTTP_INT_H
#define FULCRUM_CACHE_HTTP_INT_H

#include <ev.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "http.h"

#define HTTP_IN_CAP   16384 /* input buffer of a connection */
#define HTTP_HEAD_MAX 512   /* status line and the server's own header lines */

/* A connection's state (the timer's meaning depends on it). */
enum conn_state {
    CS_IDLE,       /* between requests; idle timeout */
    CS_HEAD,       /* reading a request head; request timeout from its first byte */
    CS_BODY,       /* reading a request body; idle timeout between reads */
    CS_DISPATCHED, /* the handler holds the exchange; input read, not parsed */
    CS_CLOSING,    /* last response queued: flush, then linger */
    CS_LINGER,     /* write side shut; discarding input until EOF or LINGER_S */
    CS_STATE_MAX
};

struct hoff {
    size_t name_off, name_len, value_off, value_len;
};

struct http_exchange {
    struct http_conn *conn; /* NULL once detached */
    /* request */
    char *arena;
    size_t arena_len, arena_cap;
    struct hoff *hoff;
    size_t nh, hcap;
    struct c9_hdr *hdrs;
    size_t url_len, path_off, query_off, host_off;
    size_t trailer_bytes;
    char *body;
    size_t body_len, body_cap;
    unsigned method;
    int version;
    bool keep_alive, in_value, headers_done;
    struct sockaddr_in peer;
    /* response */
    bool aborted, head_sent, chunked, no_body, keep;
    int64_t remaining; /* content-length mode: bytes still due; -1 otherwise */
    http_abort_cb abort_cb;
    void *abort_arg;
    http_drain_cb drain_cb;
    void *drain_arg;
    bool drain_wanted;
};

struct http_conn {
    struct http_server *srv;
    struct http_conn *prev, *next;
    int fd;
    enum conn_state state;
    bool broken;  /* a write failed: abort from the loop */
    bool no_more; /* no further request on this connection */
    bool late;    /* the timer found the socket ready once since it was armed */
    ev_io rio, wio;
    ev_timer tm;
    http_parser parser;
    struct http_exchange *ex_in;  /* being parsed: the connection owns it */
    struct http_exchange *ex_out; /* dispatched: the handler owns it */
    char in[HTTP_IN_CAP];
    size_t in_off, in_len;
    char *out;
    size_t out_off, out_len, out_cap;
    struct sockaddr_in peer;
};

struct http_server {
    struct ev_loop *loop;
    struct http_limits lim;
    http_request_cb cb;
    void *arg;
    int fd;
    unsigned port;
    ev_io lio;
    struct http_conn *conns;
    struct http_counters ctr;
    time_t date_sec;
    char date[40];
};

/* ---- shared by http.c and http_out.c (defined in http.c) ---- */

/* Frees an exchange and everything it owns; NULL is a no-op. */
void http_ex_free(struct http_exchange *ex);
/* Appends to the connection's output buffer (grows; allocation aborts). */
void http_out_add(struct http_conn *c, const void *p, size_t n);
/* Bytes queued and not yet written. */
size_t http_out_pending(const struct http_conn *c);
/* (Re)arms the connection timer for secs with ev_timer_again. */
void http_conn_timer(struct http_conn *c, double secs);
/* Writes what the socket takes; never calls a handler; a failure only
 * marks the connection broken, for the loop to act on. */
void http_conn_flush(struct http_conn *c);
/* Counts a response in its status class. */
void http_count_status(struct http_server *s, int status);
/* The reason phrase of a status ("Unknown" when it has none). */
const char *http_reason(int status);

#endif
