/* backend.h - stand-in backends for the balancer's integration tests:
 * forked TCP servers on 127.0.0.1 that die with the test (PDEATHSIG). */
#ifndef FULCRUM_TEST_BACKEND_H
#define FULCRUM_TEST_BACKEND_H

#include <stddef.h>
#include <sys/types.h>

enum be_kind {
    BE_HTTP,       /* reads a request head, answers 200 with body "backend-<id>", closes */
    BE_ECHO,       /* echoes every byte; on EOF, shuts its write side and closes */
    BE_READ_ALL,   /* reads to EOF, then answers "got <n> bytes" and closes */
    BE_SEND_RESET, /* sends 384 KiB, waits until all of it is acked, then resets */
    BE_TRICKLE,    /* sends 20 chunks of 64 KiB, 100 ms apart, then closes */
};

struct backend {
    pid_t pid;
    unsigned port;
    int id;
    int event_fd; /* read end of the children's event pipe */
};

/* Starts a backend; one child process per accepted connection. */
void be_start(struct backend *b, enum be_kind kind, int id);

/* For BE_SEND_RESET: waits until a connection child has reset its
 * connection (it writes a byte to a pipe then). Returns 0 or -1. */
int be_wait_event(struct backend *b, int timeout_ms);
/* SIGKILL, and waits until it is dead: its port refuses from then on. */
void be_kill(struct backend *b);

/* Connects to 127.0.0.1:port (blocking, 10 s receive/send timeouts).
 * Returns the fd or -errno. */
int be_connect(unsigned port);
/* The same with secs-second timeouts. */
int be_connect_for(unsigned port, int secs);

/* One HTTP/1.1 request with Connection: close; the whole response into buf
 * (NUL-terminated). Returns the status code, or -1 when the connection
 * failed or closed without a response. */
int be_http(unsigned port, const char *method, const char *path, char *buf, size_t cap);

/* Reads until EOF (or cap); returns the bytes read, or -errno. */
ssize_t be_read_all(int fd, char *buf, size_t cap);

#endif
