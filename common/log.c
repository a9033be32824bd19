/* log.c - timestamped, levelled log lines to stderr or a file. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_level_cur = LOG_LVL_INFO;

static const char *log_prog = "fulcrum";
static long log_pid;         /* cached: one syscall less per line */
static const char *log_path; /* NULL: stderr */
static int log_fd = STDERR_FILENO;

const char *const log_level_names[LOG_LVL_MAX + 1] = {"err", "warn", "info", "debug", NULL};

static int log_open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd == -1)
        return -errno;
    if (log_fd == STDERR_FILENO) { /* first open: before any thread logs */
        log_fd = fd;
        return 0;
    }
    /* Reopen: dup3 swaps the file under the same fd number atomically, so
     * a thread writing now never sees a closed (or reused) descriptor. It
     * stays close-on-exec (dup2 would clear it: a reload's new process
     * then kept every rotated log open). */
    if (dup3(fd, log_fd, O_CLOEXEC) == -1) {
        int r = -errno;

        close(fd);
        return r;
    }
    close(fd);
    return 0;
}

int log_open(const char *prog, const char *path, enum log_level level)
{
    log_prog = prog;
    log_level_cur = level;
    log_pid = (long)getpid();
    if (!path || !strcmp(path, "-")) {
        log_path = NULL;
        return 0;
    }
    log_path = path;
    return log_open_path(path);
}

int log_reopen(void)
{
    return log_path ? log_open_path(log_path) : 0;
}

void log_close(void)
{
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = STDERR_FILENO;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < LOG_LVL_MAX; i++) {
        if (!strcmp(s, log_level_names[i])) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    size_t n;
    int r;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%ld] level=%s ", (long)tv.tv_usec / 1000,
                 log_prog, log_pid, log_level_names[lvl]);
    if (r > 0)
        n += (size_t)r;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t)r;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    /* One write per line so lines from threads and processes do not mix. */
    while (write(log_fd, line, n) == -1 && errno == EINTR)
        ;
}

bool log_rl_allow(struct log_rl *rl, uint64_t now_ms, unsigned *suppressed)
{
    if (now_ms - rl->start_ms >= rl->window_ms || now_ms < rl->start_ms) {
        rl->start_ms = now_ms;
        rl->used = 0;
    }
    if (rl->used >= rl->burst) {
        rl->suppressed++;
        return false;
    }
    rl->used++;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    return true;
}
