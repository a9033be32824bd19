/* notify.c - sd_notify(3) for the balancer: see notify.h. */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef FULCRUM_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"

#define LB_NOTIFY_MAX 512

#ifdef FULCRUM_HAVE_SYSTEMD
static int lb_notify_send(const char *msg)
{
    return sd_notify(0, msg);
}
#else
/* The protocol of sd_notify(3) without libsystemd: one datagram to the
 * socket named by $NOTIFY_SOCKET, a path or, after '@', an abstract name. */
static int lb_notify_send(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = path ? strlen(path) : 0;
    socklen_t salen;
    ssize_t n;
    int fd, r;

    if (plen == 0)
        return 0;
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
        return -EINVAL;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    r = n == -1 ? -errno : 1;
    close(fd);
    return r;
}
#endif

int lb_notify(const char *fmt, ...)
{
    static bool said;
    char msg[LB_NOTIFY_MAX];
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= sizeof(msg))
        return -EMSGSIZE;
    r = lb_notify_send(msg);
    if (r < 0 && !said) {
        said = true;
        log_warn("cannot notify the service manager ($NOTIFY_SOCKET): %s", strerror(-r));
    }
    return r;
}
