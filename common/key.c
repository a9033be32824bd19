/* key.c - load the cluster key file with the checks an operator expects. */
#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

static int secret_check_stat(const char *what, const char *path, const struct stat *st, size_t min,
                             size_t max, char *err, size_t errlen)
{
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "%s %s: not a regular file", what, path);
        return -EINVAL;
    }
    if (st->st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen, "%s %s: mode %03o lets group or others in; chmod 600 it", what, path,
                 (unsigned)(st->st_mode & 0777));
        return -EPERM;
    }
    if ((size_t)st->st_size < min || (size_t)st->st_size > max) {
        snprintf(err, errlen, "%s %s: %lld bytes; it must hold %zu to %zu bytes", what, path,
                 (long long)st->st_size, min, max);
        return -EINVAL;
    }
    return 0;
}

int secret_file_read(const char *what, const char *path, uint8_t *buf, size_t min, size_t max,
                     size_t *len, char *err, size_t errlen)
{
    struct stat st;
    ssize_t n;
    int fd, r;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        r = -errno;
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return r;
    }
    if (fstat(fd, &st) == -1) {
        r = -errno;
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
    } else {
        r = secret_check_stat(what, path, &st, min, max, err, errlen);
    }
    if (r == 0) {
        n = read(fd, buf, max);
        if (n == -1 || (size_t)n < min) { /* shrank since the fstat, or failed */
            r = n == -1 ? -errno : -EINVAL;
            snprintf(err, errlen, "%s %s: short read", what, path);
            sodium_memzero(buf, max);
        } else {
            *len = (size_t)n;
        }
    }
    close(fd);
    return r;
}

int key_ring_load(struct key_ring *kr, const char *path, char *err, size_t errlen)
{
    uint8_t buf[KEY_FILE_MAX];
    size_t n;
    int r;

    if (kr->n >= KEY_RING_MAX) {
        snprintf(err, errlen, "key file %s: at most %d keys", path, KEY_RING_MAX);
        return -E2BIG;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -EIO;
    }
    r = secret_file_read("key file", path, buf, KEY_FILE_MIN, sizeof(buf), &n, err, errlen);
    if (r)
        return r;
    crypto_hash_sha256(kr->k[kr->n], buf, (unsigned long long)n);
    kr->n++;
    sodium_memzero(buf, sizeof(buf));
    return 0;
}

void key_ring_done(struct key_ring *kr)
{
    sodium_memzero(kr, sizeof(*kr));
}
