/* key.c - load the cluster key file with the checks an operator expects. */
#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

static int key_check_stat(const char *path, const struct stat *st, char *err, size_t errlen)
{
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, errlen, "key file %s: not a regular file", path);
        return -EINVAL;
    }
    if (st->st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen, "key file %s: mode %03o lets group or others in; chmod 600 it", path,
                 (unsigned)(st->st_mode & 0777));
        return -EPERM;
    }
    if (st->st_size < KEY_FILE_MIN || st->st_size > KEY_FILE_MAX) {
        snprintf(err, errlen, "key file %s: %lld bytes; it must hold %d to %d bytes", path,
                 (long long)st->st_size, KEY_FILE_MIN, KEY_FILE_MAX);
        return -EINVAL;
    }
    return 0;
}

int key_ring_load(struct key_ring *kr, const char *path, char *err, size_t errlen)
{
    uint8_t buf[KEY_FILE_MAX];
    struct stat st;
    ssize_t n;
    int fd, r;

    if (kr->n >= KEY_RING_MAX) {
        snprintf(err, errlen, "key file %s: at most %d keys", path, KEY_RING_MAX);
        return -E2BIG;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -EIO;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        r = -errno;
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        return r;
    }
    if (fstat(fd, &st) == -1) {
        r = -errno;
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        goto out_close;
    }
    r = key_check_stat(path, &st, err, errlen);
    if (r)
        goto out_close;
    n = read(fd, buf, sizeof(buf));
    if (n < KEY_FILE_MIN) {
        r = n == -1 ? -errno : -EINVAL;
        snprintf(err, errlen, "key file %s: short read", path);
        goto out_wipe;
    }
    crypto_hash_sha256(kr->k[kr->n], buf, (unsigned long long)n);
    kr->n++;
    r = 0;
out_wipe:
    sodium_memzero(buf, sizeof(buf));
out_close:
    close(fd);
    return r;
}

void key_ring_done(struct key_ring *kr)
{
    sodium_memzero(kr, sizeof(*kr));
}
