/* harness.h - run the real daemons from integration tests.
 *
 * Children get PR_SET_PDEATHSIG(SIGKILL), so they die with the test process
 * even when Criterion kills it on a timeout or an assertion ends it.
 * Readiness is a line on a child's stdout or stderr, never a sleep.
 */
#ifndef FULCRUM_TEST_HARNESS_H
#define FULCRUM_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define H_BUF (1 << 16) /* lines are short; the buffer compacts */

struct h_stream {
    int fd;
    char buf[H_BUF];
    size_t len;  /* bytes in buf */
    size_t seen; /* bytes already returned as lines */
};

struct h_proc {
    pid_t pid;
    struct h_stream out, err;
};

/* Starts argv[0] with stdout and stderr on pipes. Asserts on failure.
 * With FULCRUM_TEST_WRAPPER set (space-separated words, e.g. "valgrind
 * --leak-check=full"), runs argv behind those words; the wrapper must exec
 * argv in its own process (valgrind does), so signals reach the daemon.
 * FULCRUM_TEST_TIMEOUT_SCALE=N multiplies the waits below by N. */
void h_spawn(struct h_proc *p, char *const argv[]);

/* True when FULCRUM_TEST_WRAPPER is set: the daemons run under a wrapper
 * (valgrind), so their timing and their RSS are the wrapper's, and a test
 * skips what it asserts about those (it still checks every result). */
bool h_under_wrapper(void);

/* h_spawn with RLIMIT_NOFILE set to nofile in the child (0: inherited, and
 * the same as h_spawn). With a limit, no wrapper is used. */
void h_spawn_nofile(struct h_proc *p, char *const argv[], unsigned nofile);

/* Closes p's pipes (the daemon is reaped or left to die with the test). */
void h_close(struct h_proc *p);

/* What a test's daemons wrote (the last 8 KiB of each stream: what the
 * test read and what the pipes still held) is written when the test
 * process exits, a failed assertion included (not a crash or a timeout),
 * to FULCRUM_TEST_LOG_DIR/<binary>.<suite>::<test>.log (BUILD/test-logs);
 * scripts/test.sh prints those of the tests that failed. */

/* Returns the next complete line of stdout (which=1) or stderr (which=2),
 * waiting up to timeout_ms; NULL on timeout or EOF. The line stays valid
 * until the next call on the same stream. */
const char *h_next_line(struct h_proc *p, int which, int timeout_ms);

/* Waits for a line containing `needle`; returns it or NULL. */
const char *h_wait_for(struct h_proc *p, int which, const char *needle, int timeout_ms);

void h_signal(struct h_proc *p, int sig);
/* Waits for the child's exit; returns its wait status, or -1 after
 * timeout_ms (then it is SIGKILLed). */
int h_reap(struct h_proc *p, int timeout_ms);

/* A free UDP port on 127.0.0.1 (bound then released). */
unsigned h_free_udp_port(void);

/* A directory under /tmp with a mode 0600 cluster key "key" of 32 random
 * bytes, and a second "otherkey". Returns the directory path (static). The
 * directory and all in it are removed when the test process exits. */
const char *h_make_keys(void);

/* A TCP listener on 127.0.0.1:0 served by a child that accepts and closes.
 * Returns its port; *pid gets the child. */
unsigned h_tcp_sink(pid_t *pid);

#endif
