/* log.h - the one logging module of every daemon.
 *
 * Lines go to stderr (or a file reopened on SIGHUP) as
 *   2026-11-23T05:40:01.123Z prog[pid] level=warn <message>
 * The level is checked before the arguments are evaluated; log_debug()
 * compiles to nothing unless FULCRUM_DEBUG_LOG is defined (Debug builds).
 * Messages about dropped input go through a struct log_rl so a flood of bad
 * datagrams costs a few lines a second, with a count of what was suppressed.
 *
 * Thread: log_write() may be called from any thread (one write(2) a line);
 * log_open()/log_reopen() from the main thread only.
 */
#ifndef FULCRUM_LOG_H
#define FULCRUM_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG, LOG_LVL_MAX };

extern enum log_level log_level_cur;
/* "err".."debug", NULL-terminated (a CFG_ENUM's names). */
extern const char *const log_level_names[LOG_LVL_MAX + 1];

/* prog is kept by pointer (pass a string literal or argv[0]). path NULL or
 * "-" means stderr. Returns 0 or -errno (the file could not be opened). */
int log_open(const char *prog, const char *path, enum log_level level);
/* Reopens the file given to log_open (for logrotate, on SIGHUP). */
int log_reopen(void);
void log_close(void);

/* Parses "err|warn|info|debug". Returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);

void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(lvl, ...)                   \
    do {                                   \
        if ((lvl) <= log_level_cur)        \
            log_write((lvl), __VA_ARGS__); \
    } while (0)
#define log_err(...)  log_at(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#ifdef FULCRUM_DEBUG_LOG
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)
#else
#define log_debug(...) \
    do {               \
    } while (0)
#endif

/* A rate limiter for one kind of message: at most `burst` lines per
 * `window_ms`; the first line after a window with suppressed ones says how
 * many were suppressed. Zero-initialise, then set burst and window_ms. */
struct log_rl {
    unsigned burst;
    uint64_t window_ms;
    uint64_t start_ms;
    unsigned used;
    unsigned suppressed;
};

#define LOG_RL_INIT(b, w)              \
    {                                  \
        .burst = (b), .window_ms = (w) \
    }

/* True when a line may be written now. *suppressed gets the number of lines
 * dropped since the last allowed one (to append to the message). */
bool log_rl_allow(struct log_rl *rl, uint64_t now_ms, unsigned *suppressed);

#endif
