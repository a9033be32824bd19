/* docroot.c - a directory served as the origin: path decoding and safe
 * resolution beneath a directory fd, then the response (see docroot.h for
 * the rules). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "docroot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

struct docroot {
    int dirfd;
    bool have_openat2; /* probed once in docroot_new */
};

/* Flags for opening the file itself: never follow a final symlink, never
 * block on a FIFO, never become our controlling terminal. */
#define FILE_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

/* ---- the root ------------------------------------------------------------- */

static long sys_openat2(int dirfd, const char *path, int flags, uint64_t resolve)
{
    struct open_how how;

    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)flags;
    how.resolve = resolve;
    return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

#define RESOLVE_FLAGS (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* Whether openat2 with our resolve flags works here (Linux >= 5.6, and not
 * blocked by a seccomp filter). */
static bool probe_openat2(int dirfd)
{
    long fd = sys_openat2(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_FLAGS);

    if (fd == -1)
        return false;
    close((int)fd);
    return true;
}

struct docroot *docroot_new(const char *dir, char *err, size_t errlen)
{
    struct docroot *d;
    int fd;

    if (dir == NULL || dir[0] == '\0') {
        if (errlen > 0)
            snprintf(err, errlen, "docroot: empty directory name");
        return NULL;
    }
    fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        if (errlen > 0)
            snprintf(err, errlen, "docroot %s: %s", dir, strerror(errno));
        return NULL;
    }
    d = xcalloc(1, sizeof(*d));
    d->dirfd = fd;
    d->have_openat2 = probe_openat2(fd);
    return d;
}

void docroot_free(struct docroot *d)
{
    if (d == NULL)
        return;
    close(d->dirfd);
    free(d);
}

/* ---- the path ------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Turns the URL path into a relative name "a/b/c" in rel[0..cap): stops at
 * '?' or '#', decodes %-escapes, drops empty and "." segments. Returns 0,
 * or the HTTP status refusing it (400, 414). An empty result (the root
 * itself) is returned as ".". */
static int path_to_rel(const char *path, char *rel, size_t cap)
{
    size_t len = strcspn(path, "?#");
    size_t i, o = 0, seg = 0; /* seg: where the current segment starts in rel */

    if (len > DOCROOT_PATH_MAX || cap < DOCROOT_PATH_MAX + 1)
        return 414;
    if (len == 0 || path[0] != '/')
        return 400;
    for (i = 0; i <= len; i++) {
        unsigned char c;

        if (i == len || path[i] == '/') {
            c = '/';
        } else if (path[i] == '%') {
            int hi, lo;

            if (i + 2 >= len)
                return 400;
            hi = hexval(path[i + 1]);
            lo = hexval(path[i + 2]);
            if (hi < 0 || lo < 0)
                return 400;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else {
            c = (unsigned char)path[i];
        }
        if (c < 0x20 || c == 0x7f)
            return 400;
        if (c != '/') {
            rel[o++] = (char)c;
            continue;
        }
        /* end of a segment rel[seg..o) */
        if (o - seg == 2 && rel[seg] == '.' && rel[seg + 1] == '.')
            return 400;
        if (o == seg || (o - seg == 1 && rel[seg] == '.')) {
            o = seg; /* drop it */
            continue;
        }
        rel[o++] = '/';
        seg = o;
    }
    if (o == 0) {
        rel[o++] = '.';
    } else {
        o--; /* the trailing separator */
    }
    rel[o] = '\0';
    return 0;
}

/* ---- resolution ----------------------------------------------------------- */

/* The fallback: one openat() per segment of rel ("a/b/c", no "..", no empty
 * segment), each intermediate one a directory opened O_PATH | O_NOFOLLOW
 * (a symlink there fails with ENOTDIR), the last with FILE_FLAGS (a symlink
 * fails with ELOOP). rel is modified during the walk and restored. Returns
 * the fd or -errno. */
static int walk_beneath(int root, char *rel)
{
    int cur = root, fd, err;
    char *seg = rel, *slash;

    while ((slash = strchr(seg, '/')) != NULL) {
        *slash = '\0';
        fd = openat(cur, seg, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        err = errno;
        *slash = '/';
        if (cur != root)
            close(cur);
        if (fd == -1)
            return -err;
        cur = fd;
        seg = slash + 1;
    }
    fd = openat(cur, seg, FILE_FLAGS);
    err = errno;
    if (cur != root)
        close(cur);
    return fd == -1 ? -err : fd;
}

/* Opens rel beneath the root without following any symlink. Returns the fd
 * or -errno. */
static int open_beneath(const struct docroot *d, char *rel)
{
    int tries;

    if (!d->have_openat2)
        return walk_beneath(d->dirfd, rel);
    /* RESOLVE_BENEATH answers EAGAIN when a rename raced the lookup. */
    for (tries = 0; tries < 3; tries++) {
        long fd = sys_openat2(d->dirfd, rel, FILE_FLAGS, RESOLVE_FLAGS);

        if (fd != -1)
            return (int)fd;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
    }
    return -EAGAIN;
}

void docroot_force_walk(struct docroot *d)
{
    d->have_openat2 = false;
}

/* ---- the response --------------------------------------------------------- */

static const struct {
    const char *ext;
    const char *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"mp4", "video/mp4"},
};

/* The Content-Type for the last segment of rel, by extension (ASCII
 * case-insensitive); application/octet-stream when unknown. */
static const char *content_type(const char *rel)
{
    const char *base = strrchr(rel, '/');
    const char *dot;
    size_t k;

    base = base != NULL ? base + 1 : rel;
    dot = strrchr(base, '.');
    if (dot != NULL && dot != base) {
        for (k = 0; k < sizeof(mime_types) / sizeof(mime_types[0]); k++) {
            if (strcasecmp(dot + 1, mime_types[k].ext) == 0)
                return mime_types[k].type;
        }
    }
    return "application/octet-stream";
}

/* Writes t as an IMF-fixdate (RFC 9110 §5.6.7) into buf[0..cap). Returns
 * 0, or -EINVAL for a time gmtime cannot represent in four digits. */
static int format_imf(int64_t t, char *buf, size_t cap)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    int len;

    if (gmtime_r(&tt, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
        return -EINVAL;
    len = snprintf(buf, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                   months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return len < 0 || (size_t)len >= cap ? -EINVAL : 0;
}

static void add_hdr(struct docroot_resp *r, const char *name, const char *value)
{
    struct c9_hdr *h;

    if (r->nhdr >= DOCROOT_HDR_MAX || value == NULL || value[0] == '\0')
        return;
    h = &r->hdr[r->nhdr++];
    h->name = name;
    h->name_len = strlen(name);
    h->value = value;
    h->value_len = strlen(value);
}

/* Fills r->etag and r->last_modified from st; returns the Last-Modified
 * time (C9_NO_TIME when it cannot be written). */
static int64_t set_validators(struct docroot_resp *r, const struct stat *st, int64_t now)
{
    uint64_t ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    int64_t lm = st->st_mtim.tv_sec;

    snprintf(r->etag, sizeof(r->etag), "\"%llx-%llx\"", (unsigned long long)st->st_size,
             (unsigned long long)ns);
    /* RFC 9110 §8.8.2.1: never later than our Date. */
    if (lm > now)
        lm = now;
    if (lm < 0 || format_imf(lm, r->last_modified, sizeof(r->last_modified)) < 0) {
        r->last_modified[0] = '\0';
        return C9_NO_TIME;
    }
    return lm;
}

/* Reads up to size bytes of fd into a new r->body. Returns 0 or -errno. A
 * file that shrank since fstat gives what is left; one that grew is cut at
 * size. */
static int read_body(int fd, size_t size, struct docroot_resp *r)
{
    size_t got = 0;

    r->body = xmalloc(size > 0 ? size : 1);
    while (got < size) {
        ssize_t k = pread(fd, r->body + got, size - got, (off_t)got);

        if (k == -1) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    r->body_len = got;
    r->content_length = got;
    return 0;
}

/* The answer to a failed open: 404 for what is absent or refused by the
 * resolution rules (symlinks, escapes), 403 for permissions, else -err. */
static int open_failed(struct docroot_resp *r, int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
    case -ELOOP:
    case -EXDEV:
    case -ENAMETOOLONG:
    case -EISDIR:
    case -ENXIO:
        r->status = 404;
        return 0;
    case -EACCES:
    case -EPERM:
        r->status = 403;
        return 0;
    default:
        return err;
    }
}

int docroot_serve(struct docroot *d, const char *method, const char *path, const struct c9_hdr *req,
                  size_t n, int64_t now, size_t max_body, struct docroot_resp *out)
{
    char rel[DOCROOT_PATH_MAX + 1];
    struct stat st;
    int64_t lm;
    bool head;
    int fd, rc;

    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (d == NULL || method == NULL || path == NULL)
        return -EINVAL;
    head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        out->status = 405;
        add_hdr(out, "Allow", "GET, HEAD");
        return 0;
    }
    rc = path_to_rel(path, rel, sizeof(rel));
    if (rc != 0) {
        out->status = rc;
        return 0;
    }
    fd = open_beneath(d, rel);
    if (fd < 0)
        return open_failed(out, fd);
    if (fstat(fd, &st) == -1) {
        rc = -errno;
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        out->status = 404;
        goto out_close;
    }
    lm = set_validators(out, &st, now);
    if (c9_not_modified(req, n, out->etag, lm, now)) {
        out->status = 304;
        add_hdr(out, "ETag", out->etag);
        add_hdr(out, "Last-Modified", out->last_modified);
        goto out_close;
    }
    out->status = 200;
    add_hdr(out, "Content-Type", content_type(rel));
    add_hdr(out, "Last-Modified", out->last_modified);
    add_hdr(out, "ETag", out->etag);
    out->content_length = (uint64_t)st.st_size;
    if (head)
        goto out_close;
    if ((uint64_t)st.st_size > max_body) {
        out->fd = fd;
        return -E2BIG;
    }
    rc = read_body(fd, (size_t)st.st_size, out);
    if (rc < 0)
        docroot_resp_done(out);
out_close:
    close(fd);
    return rc;
}

void docroot_resp_done(struct docroot_resp *r)
{
    free(r->body);
    r->body = NULL;
    if (r->fd >= 0)
        close(r->fd);
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}
