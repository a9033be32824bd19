/* test_key.c - the cluster key file checks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "key.h"

static char path[64];

static void make_key(size_t len, mode_t mode)
{
    char buf[8192];
    int fd;

    if (path[0]) /* a test that makes a second key: drop the first */
        unlink(path);
    snprintf(path, sizeof(path), "/tmp/fulcrum-key-XXXXXX");
    fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    memset(buf, 'k', sizeof(buf));
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
    cr_assert_eq(chmod(path, mode), 0);
}

static void done(void)
{
    if (path[0])
        unlink(path);
    path[0] = 0;
}

TestSuite(key, .fini = done);

Test(key, loads_a_good_key)
{
    struct key_ring kr = {0};
    char err[256];

    make_key(32, 0600);
    cr_assert_eq(key_ring_load(&kr, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(kr.n, 1);
    make_key(64, 0400);
    cr_assert_eq(key_ring_load(&kr, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(kr.n, 2);
    cr_assert_neq(memcmp(kr.k[0], kr.k[1], 32), 0);
    cr_assert_eq(key_ring_load(&kr, path, err, sizeof(err)), -E2BIG);
    key_ring_done(&kr);
    cr_assert_eq(kr.n, 0);
}

Test(key, refuses_missing)
{
    struct key_ring kr = {0};
    char err[256];

    cr_assert_eq(key_ring_load(&kr, "/nonexistent/key", err, sizeof(err)), -ENOENT);
    cr_assert(strstr(err, "/nonexistent/key"));
}

Test(key, refuses_short)
{
    struct key_ring kr = {0};
    char err[256];

    make_key(31, 0600);
    cr_assert_eq(key_ring_load(&kr, path, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "31 bytes"), "%s", err);
}

Test(key, refuses_group_or_world_readable)
{
    struct key_ring kr = {0};
    char err[256];

    make_key(32, 0640);
    cr_assert_eq(key_ring_load(&kr, path, err, sizeof(err)), -EPERM);
    cr_assert(strstr(err, "chmod 600"), "%s", err);
    chmod(path, 0604);
    cr_assert_eq(key_ring_load(&kr, path, err, sizeof(err)), -EPERM);
    cr_assert_eq(kr.n, 0);
}

Test(key, refuses_directory)
{
    struct key_ring kr = {0};
    char err[256];
    char dir[] = "/tmp/fulcrum-keydir-XXXXXX";

    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0700);
    cr_assert_eq(key_ring_load(&kr, dir, err, sizeof(err)), -EINVAL);
    rmdir(dir);
}
