/* net.h - IPv4 socket helpers: address parsing, the multicast group socket,
 * the unicast UDP socket, and a bounded TCP reachability check.
 *
 * Every socket is non-blocking and close-on-exec. Functions that can fail
 * return -errno and fill `err` with a sentence naming what failed.
 */
#ifndef FULCRUM_NET_H
#define FULCRUM_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#define NET_ADDRSTRLEN 22 /* "255.255.255.255:65535" + NUL */

/* Parses "HOST:PORT" (HOST: dotted IPv4, or a name resolved to IPv4; empty
 * or "*" means 0.0.0.0). Port 0 is accepted only if allow_port0. */
int net_parse_hostport(const char *s, bool allow_port0, struct sockaddr_in *out, char *err,
                       size_t errlen);
/* Parses a dotted IPv4 address. */
int net_parse_ip(const char *s, struct in_addr *out, char *err, size_t errlen);

/* "a.b.c.d:port" into buf (NET_ADDRSTRLEN bytes); returns buf. */
const char *net_ntop(const struct sockaddr_in *sa, char *buf);

/* A socket bound to group:port (binding to the group address filters other
 * traffic; IP_MULTICAST_ALL is off as well), joined on interface `ifaddr`,
 * sending multicast out of `ifaddr` with the given TTL and loopback on, so
 * processes on one host hear each other. SO_REUSEADDR lets several
 * processes of one host share the port. */
int net_mcast_socket(const struct sockaddr_in *group, struct in_addr ifaddr, int ttl, char *err,
                     size_t errlen);

/* A UDP socket bound to `bind_addr` (NULL: 0.0.0.0, ephemeral port) whose
 * multicast leaves through `ifaddr` with the given TTL. */
int net_udp_socket(const struct sockaddr_in *bind_addr, struct in_addr ifaddr, int ttl, char *err,
                   size_t errlen);

/* Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE when privileged,
 * else SO_RCVBUF, which the kernel caps at net.core.rmem_max). A monitor
 * hears a whole cluster answer within milliseconds: it needs room.
 * Returns the size the kernel granted, or -errno. */
int net_set_rcvbuf(int fd, int bytes);

/* Called for each datagram read by net_recv_burst(); n is the datagram's
 * real length, which exceeds the buffer when it was truncated. */
typedef void (*net_dgram_cb)(void *arg, int fd, const char *buf, size_t n,
                             const struct sockaddr_in *from);

/* Reads up to `burst` datagrams from the non-blocking fd into buf (cap
 * bytes), calling cb for each. Stops at EAGAIN; other errors are returned
 * as -errno (the caller logs them). Returns the number read. */
int net_recv_burst(int fd, char *buf, size_t cap, int burst, net_dgram_cb cb, void *arg);

/* Port of a bound socket in host order, or 0 on error. */
unsigned net_local_port(int fd);

/* TCP_NODELAY on a TCP socket: 0, or -1 with errno set. */
int net_tcp_nodelay(int fd);

/* A listening TCP socket on addr (SO_REUSEADDR; SO_REUSEPORT when
 * reuseport, so each worker thread can have its own). It has TCP_NODELAY,
 * which Linux copies to every socket accepted from it: no setsockopt per
 * connection. Returns the fd or -errno with err filled. */
int net_tcp_listen(const struct sockaddr_in *addr, bool reuseport, int backlog, char *err,
                   size_t errlen);

/* Starts a non-blocking TCP connect. Returns the fd (connect in progress or
 * done), or -errno. The caller waits for writability and reads SO_ERROR
 * with net_connect_result(). */
int net_tcp_connect_start(const struct sockaddr_in *addr);
/* 0 when the connect completed, else -errno from SO_ERROR. */
int net_connect_result(int fd);

#endif
