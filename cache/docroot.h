/* docroot.h - a directory served as the origin (fulcrum-cache --docroot):
 * maps a request's URL path to a regular file beneath the directory and
 * builds the response, with Content-Type, Last-Modified and a strong ETag,
 * answering If-None-Match / If-Modified-Since with 304 (c9_not_modified).
 *
 * File I/O only, no sockets. A struct docroot is immutable after
 * docroot_new, so docroot_serve may be called from any number of threads at
 * once on one instance; a struct docroot_resp belongs to one caller.
 *
 * Safety (everything in the path is the peer's):
 *  - the path before '?' or '#' is capped at DOCROOT_PATH_MAX bytes (414);
 *  - %-escapes are decoded strictly: '%' must be followed by two hex digits,
 *    and a decoded NUL or other control byte is refused (400);
 *  - the decoded path is split on '/' (so %2F separates too); empty and "."
 *    segments are dropped, a ".." segment is refused (400);
 *  - the file is opened relative to the directory fd, never by an absolute
 *    name: with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) when the
 *    kernel has it (probed once in docroot_new), else by a walk of openat()
 *    calls, one per segment, each with O_NOFOLLOW. No symlink is followed
 *    anywhere in the path, inside or outside the root: it answers 404;
 *  - only regular files are served. A directory answers 404 (no index.html,
 *    no listing: our choice, it keeps "/dir" and "/dir/" from needing a
 *    redirect). Files are opened O_NONBLOCK so a FIFO cannot hang us; it is
 *    then refused by its type (404).
 */
#ifndef FULCRUM_CACHE_DOCROOT_H
#define FULCRUM_CACHE_DOCROOT_H

#include <stddef.h>
#include <stdint.h>

#include "rfc9111.h"

/* Longest URL path (before any query) we look at; longer answers 414. */
#define DOCROOT_PATH_MAX 4096
/* Most header lines a response carries (Content-Type, Last-Modified, ETag;
 * Allow on a 405). */
#define DOCROOT_HDR_MAX 4

struct docroot;

/* A response. Filled by docroot_serve, released by docroot_resp_done. The
 * header values point into etag / last_modified inside the struct itself,
 * so it must not be copied or moved while the headers are in use. Header
 * names are static strings. Content-Length and Date are the caller's
 * (content_length below); no Cache-Control is set, so the cache applies its
 * default TTL. */
struct docroot_resp {
    int status; /* 200, 304, 400, 403, 404, 405, 414 */
    struct c9_hdr hdr[DOCROOT_HDR_MAX];
    size_t nhdr;
    char *body;              /* owned; NULL for HEAD, 304 and errors */
    size_t body_len;         /* bytes in body */
    uint64_t content_length; /* what a GET sends: the file size (also for HEAD
                                and -E2BIG); 0 for 304 and errors */
    int fd;                  /* -E2BIG only: the open file for the caller to
                                stream; owned here until the caller takes it
                                (and sets fd to -1); else -1 */
    char etag[48];
    char last_modified[32];
};

/* Opens `dir` (which must be a directory) as the root. Returns NULL and a
 * NUL-terminated reason in err[0..errlen) on failure (err may be NULL when
 * errlen is 0). */
struct docroot *docroot_new(const char *dir, char *err, size_t errlen);

/* Closes the root. NULL is a no-op. */
void docroot_free(struct docroot *d);

/* Makes d resolve by the per-segment openat() walk even where openat2 is
 * available: for the tests of the fallback, and for kernels whose openat2
 * misbehaves. Call before d is shared between threads. */
void docroot_force_walk(struct docroot *d);

/* Answers `method` (NUL-terminated, case-sensitive; only GET and HEAD are
 * served, others 405 with Allow) on `path` (NUL-terminated URL path, may
 * carry %-escapes, a query and a fragment, both ignored) given the request
 * header lines req[0..n) (for If-None-Match / If-Modified-Since) and our
 * clock `now` (seconds since the epoch; a Last-Modified later than now is
 * sent as now). A body larger than max_body is not read.
 * `out` is always initialised (docroot_resp_done is always safe after).
 * Returns:
 *   0       an HTTP answer is in out (any status, including 4xx);
 *   -E2BIG  a GET for a regular file larger than max_body: out has status
 *           200, the headers, content_length and the open file in out->fd,
 *           and no body, so the caller can stream it;
 *   -errno  a local failure (EMFILE, EIO, ...): answer 500.
 */
int docroot_serve(struct docroot *d, const char *method, const char *path, const struct c9_hdr *req,
                  size_t n, int64_t now, size_t max_body, struct docroot_resp *out);

/* Frees the body, closes fd if still owned, and leaves r empty (fd -1).
 * Only for a struct docroot_serve has filled (a zeroed one has fd 0). */
void docroot_resp_done(struct docroot_resp *r);

#endif
