/* notify.h - the service manager's readiness protocol (sd_notify(3)).
 *
 * Under systemd with Type=notify, $NOTIFY_SOCKET names a unix datagram
 * socket; each state change is one datagram of "KEY=VALUE" lines (READY=1,
 * RELOADING=1, STOPPING=1, MAINPID=N, STATUS=...). Without $NOTIFY_SOCKET
 * every call is a no-op. Built on libsystemd's sd_notify() when the build
 * found it (FULCRUM_HAVE_SYSTEMD), else on the same datagram sent here.
 * Main thread only.
 */
#ifndef FULCRUM_BALANCER_NOTIFY_H
#define FULCRUM_BALANCER_NOTIFY_H

/* Sends one state message (printf format; lines separated by '\n').
 * Returns 1 when sent, 0 when there is no service manager to tell, or
 * -errno; a failure is logged once. */
int lb_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
