/* test_log.c - the log file (common/log.c): reopening on SIGHUP keeps the
 * descriptor close-on-exec, so a reload's new process (balancer/reload.c)
 * does not inherit, and keep open, every rotated log. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* The descriptor of this process open on path, or -1. */
static int fd_on(const char *path)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1;

    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL && found < 0) {
        char link[300], target[PATH_MAX];
        ssize_t n;

        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            if (!strcmp(target, path))
                found = atoi(e->d_name);
        }
    }
    closedir(d);
    return found;
}

Test(log, the_reopened_file_stays_close_on_exec)
{
    char dir[] = "/tmp/fulcrum-log-XXXXXX", path[128], moved[160];
    int fd;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/t.log", dir);
    snprintf(moved, sizeof(moved), "%s.1", path);
    cr_assert_eq(log_open("test", path, LOG_LVL_INFO), 0);
    log_info("before the rotation");
    cr_assert_eq(rename(path, moved), 0);
    cr_assert_eq(log_reopen(), 0);
    log_info("after the rotation");
    fd = fd_on(path);
    cr_assert_geq(fd, 0, "the new log file is not open");
    cr_assert_lt(fd_on(moved), 0, "the rotated file is still open");
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "the reopened log fd %d lost FD_CLOEXEC", fd);
    log_close();
    unlink(path);
    unlink(moved);
    rmdir(dir);
}
