/* test_docroot.c - cache/docroot.c: bodies and headers, HEAD, conditional
 * requests, changes, missing files, traversal and symlink escapes (with
 * openat2 and with the per-segment walk), bad escapes, directories,
 * methods and the body cap. Each test works in its own temp directory:
 * TMP/root is the docroot, TMP/secret.txt lies outside it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docroot.h"

#define T0  ((int64_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 GMT */
#define NOW (T0 + 100)
#define BIG ((size_t)1 << 20)

static char tmp[64];
static char rootdir[128];
static struct docroot *d;
static struct docroot_resp r;

static void put(const char *rel, const char *body, int64_t mtime)
{
    char p[256];
    struct timespec ts[2];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", tmp, rel);
    f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(body, f);
    fclose(f);
    ts[0].tv_sec = ts[1].tv_sec = (time_t)mtime;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void mkd(const char *rel)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/%s", tmp, rel);
    cr_assert_eq(mkdir(p, 0755), 0, "%s", p);
}

static void setup(void)
{
    char err[128];

    snprintf(tmp, sizeof(tmp), "/tmp/test_docroot.XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
    snprintf(rootdir, sizeof(rootdir), "%s/root", tmp);
    mkd("root");
    mkd("root/a");
    mkd("root/a/b");
    mkd("root/dir");
    put("secret.txt", "top secret\n", T0);
    put("root/index.html", "<p>hello</p>\n", T0);
    put("root/a/b/data.json", "{\"x\":1}", T0);
    put("root/blob", "0123456789", T0);
    put("root/big.bin", "0123456789abcdef", T0);
    put("root/dir/index.html", "in dir", T0);
    d = docroot_new(rootdir, err, sizeof(err));
    cr_assert_not_null(d, "%s", err);
    memset(&r, 0, sizeof(r));
    r.fd = -1;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void teardown(void)
{
    docroot_resp_done(&r);
    docroot_free(d);
    d = NULL;
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(docroot, .init = setup, .fini = teardown);

/* The value of header `name` in r, or NULL. */
static const char *hdr(const char *name)
{
    static char buf[128];
    const struct c9_hdr *h = c9_hdr_get(r.hdr, r.nhdr, name);

    if (h == NULL)
        return NULL;
    snprintf(buf, sizeof(buf), "%.*s", (int)h->value_len, h->value);
    return buf;
}

static int serve_h(const char *method, const char *path, const struct c9_hdr *h, size_t n,
                   size_t max)
{
    docroot_resp_done(&r);
    return docroot_serve(d, method, path, h, n, NOW, max, &r);
}

static int get(const char *path)
{
    return serve_h("GET", path, NULL, 0, BIG);
}

static struct c9_hdr mkhdr(const char *name, const char *value)
{
    struct c9_hdr h = {name, strlen(name), value, strlen(value)};
    return h;
}

/* Copies the ETag of a GET of path into out[0..128). */
static void etag_of(const char *path, char *out)
{
    cr_assert_eq(get(path), 0);
    cr_assert_eq(r.status, 200);
    snprintf(out, 128, "%s", hdr("ETag"));
}

Test(docroot, get_200)
{
    cr_assert_eq(get("/index.html"), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 13);
    cr_assert_eq(r.content_length, 13);
    cr_assert_eq(memcmp(r.body, "<p>hello</p>\n", 13), 0);
    cr_assert_str_eq(hdr("Content-Type"), "text/html; charset=utf-8");
    cr_assert_str_eq(hdr("Last-Modified"), "Tue, 14 Nov 2023 22:13:20 GMT");
    /* "<size hex>-<mtime ns hex>": 13 bytes, 1700000000 s */
    cr_assert_str_eq(hdr("ETag"), "\"d-17979cfe362a0000\"");
    cr_assert_null(hdr("Cache-Control"));
    cr_assert_eq(r.fd, -1);
}

Test(docroot, content_types_and_query)
{
    cr_assert_eq(get("/a/b/data.json?x=1#frag"), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(hdr("Content-Type"), "application/json");
    cr_assert_eq(r.body_len, 7);
    cr_assert_eq(get("/blob"), 0);
    cr_assert_str_eq(hdr("Content-Type"), "application/octet-stream");
    cr_assert_eq(get("/a//b/./data.json"), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(get("/%61/b/data%2Ejson"), 0);
    cr_assert_eq(r.status, 200);
}

Test(docroot, head)
{
    cr_assert_eq(serve_h("HEAD", "/index.html", NULL, 0, BIG), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_null(r.body);
    cr_assert_eq(r.body_len, 0);
    cr_assert_eq(r.content_length, 13);
    cr_assert_str_eq(hdr("Content-Type"), "text/html; charset=utf-8");
    cr_assert_not_null(hdr("ETag"));
    cr_assert_not_null(hdr("Last-Modified"));
    /* HEAD is not subject to the body cap */
    cr_assert_eq(serve_h("HEAD", "/big.bin", NULL, 0, 4), 0);
    cr_assert_eq(r.status, 200);
}

Test(docroot, if_none_match_304)
{
    char etag[128];
    struct c9_hdr h;

    etag_of("/index.html", etag);
    h = mkhdr("If-None-Match", etag);
    cr_assert_eq(serve_h("GET", "/index.html", &h, 1, BIG), 0);
    cr_assert_eq(r.status, 304);
    cr_assert_null(r.body);
    cr_assert_eq(r.content_length, 0);
    cr_assert_str_eq(hdr("ETag"), etag);
    cr_assert_str_eq(hdr("Last-Modified"), "Tue, 14 Nov 2023 22:13:20 GMT");
    h = mkhdr("If-None-Match", "\"nope\"");
    cr_assert_eq(serve_h("GET", "/index.html", &h, 1, BIG), 0);
    cr_assert_eq(r.status, 200);
}

Test(docroot, if_modified_since)
{
    struct c9_hdr h = mkhdr("If-Modified-Since", "Tue, 14 Nov 2023 22:13:20 GMT");

    cr_assert_eq(serve_h("GET", "/index.html", &h, 1, BIG), 0);
    cr_assert_eq(r.status, 304);
    h = mkhdr("If-Modified-Since", "Tue, 14 Nov 2023 22:13:50 GMT");
    cr_assert_eq(serve_h("HEAD", "/index.html", &h, 1, BIG), 0);
    cr_assert_eq(r.status, 304);
    h = mkhdr("If-Modified-Since", "Tue, 14 Nov 2023 22:13:19 GMT");
    cr_assert_eq(serve_h("GET", "/index.html", &h, 1, BIG), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 13);
}

Test(docroot, changed_file_new_etag)
{
    char e1[128], e2[128];
    struct c9_hdr h;

    etag_of("/blob", e1);
    put("root/blob", "9876543210", T0 + 50); /* same size, later mtime */
    etag_of("/blob", e2);
    cr_assert_str_neq(e1, e2);
    h = mkhdr("If-None-Match", e1);
    cr_assert_eq(serve_h("GET", "/blob", &h, 1, BIG), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(memcmp(r.body, "9876543210", 10), 0);
    h = mkhdr("If-Modified-Since", "Tue, 14 Nov 2023 22:13:20 GMT");
    cr_assert_eq(serve_h("GET", "/blob", &h, 1, BIG), 0);
    cr_assert_eq(r.status, 200);
}

Test(docroot, future_mtime_clamped)
{
    put("root/blob", "x", NOW + 1000);
    cr_assert_eq(get("/blob"), 0);
    cr_assert_str_eq(hdr("Last-Modified"), "Tue, 14 Nov 2023 22:15:00 GMT");
}

Test(docroot, missing_404)
{
    cr_assert_eq(get("/nope.html"), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_null(r.body);
    cr_assert_eq(get("/index.html/x"), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_eq(get("/a/nope/data.json"), 0);
    cr_assert_eq(r.status, 404);
}

static void traversal(void)
{
    static const char *const bad[] = {
        "/../etc/passwd",
        "/a/%2e%2e/b",
        "/%2e%2e%2fetc",
        "/%2E%2E/secret.txt",
        "/../secret.txt",
        "/a/../../secret.txt",
        "/..",
        "/a/b/..%2f..%2f..%2fsecret.txt",
        "/%2e%2e%5csecret.txt",
        "//../secret.txt",
        "/.%2e/secret.txt",
    };
    size_t k;

    for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        cr_assert_eq(get(bad[k]), 0, "%s", bad[k]);
        cr_assert(r.status == 400 || r.status == 404, "%s -> %d", bad[k], r.status);
        cr_assert_null(r.body, "%s", bad[k]);
    }
}

Test(docroot, traversal_refused)
{
    traversal();
}

Test(docroot, traversal_refused_walk)
{
    docroot_force_walk(d);
    traversal();
    cr_assert_eq(get("/a/b/data.json"), 0);
    cr_assert_eq(r.status, 200);
}

static void symlinks(void)
{
    char p[256];

    snprintf(p, sizeof(p), "%s/secret.txt", tmp);
    snprintf(p + 128, 128, "%s/root/leak.txt", tmp);
    cr_assert_eq(symlink(p, p + 128), 0);
    snprintf(p + 128, 128, "%s/root/up", tmp);
    cr_assert_eq(symlink("..", p + 128), 0);
    snprintf(p + 128, 128, "%s/root/inside.html", tmp);
    cr_assert_eq(symlink("index.html", p + 128), 0);
    snprintf(p + 128, 128, "%s/root/adir", tmp);
    cr_assert_eq(symlink("a", p + 128), 0);

    cr_assert_eq(get("/leak.txt"), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_null(r.body);
    cr_assert_eq(get("/up/secret.txt"), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_null(r.body);
    /* no symlink is followed, even one staying inside */
    cr_assert_eq(get("/inside.html"), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_eq(get("/adir/b/data.json"), 0);
    cr_assert_eq(r.status, 404);
}

Test(docroot, symlink_not_served)
{
    symlinks();
}

Test(docroot, symlink_not_served_walk)
{
    docroot_force_walk(d);
    symlinks();
}

Test(docroot, bad_escapes_400)
{
    static const char *const bad[] = {
        "/index%00.html", "/%00",  "/index.html%", "/index.html%2", "/%zz",
        "/%2g",           "/a%0a", "/%7f",         "relative",      "",
    };
    size_t k;

    for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        cr_assert_eq(get(bad[k]), 0, "%s", bad[k]);
        cr_assert_eq(r.status, 400, "%s -> %d", bad[k], r.status);
    }
    /* a query is not decoded: a bad escape there is not ours to refuse */
    cr_assert_eq(get("/index.html?q=%zz%00"), 0);
    cr_assert_eq(r.status, 200);
}

Test(docroot, directory_404)
{
    cr_assert_eq(get("/dir"), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_eq(get("/dir/"), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_eq(get("/"), 0);
    cr_assert_eq(r.status, 404);
    docroot_force_walk(d);
    cr_assert_eq(get("/dir/"), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_eq(get("/"), 0);
    cr_assert_eq(r.status, 404);
}

Test(docroot, methods_405)
{
    static const char *const m[] = {"POST", "PUT", "DELETE", "get", "OPTIONS", ""};
    size_t k;

    for (k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        cr_assert_eq(serve_h(m[k], "/index.html", NULL, 0, BIG), 0);
        cr_assert_eq(r.status, 405, "%s", m[k]);
        cr_assert_str_eq(hdr("Allow"), "GET, HEAD");
        cr_assert_null(r.body);
    }
}

Test(docroot, over_max_body_e2big)
{
    char buf[32];

    cr_assert_eq(serve_h("GET", "/big.bin", NULL, 0, 15), -E2BIG);
    cr_assert_eq(r.status, 200);
    cr_assert_null(r.body);
    cr_assert_eq(r.content_length, 16);
    cr_assert_not_null(hdr("ETag"));
    cr_assert_geq(r.fd, 0);
    cr_assert_eq(read(r.fd, buf, sizeof(buf)), 16);
    cr_assert_eq(memcmp(buf, "0123456789abcdef", 16), 0);
    /* exactly max_body is served */
    cr_assert_eq(serve_h("GET", "/big.bin", NULL, 0, 16), 0);
    cr_assert_eq(r.body_len, 16);
    cr_assert_eq(r.fd, -1);
}

Test(docroot, path_cap_414)
{
    char *p = malloc(DOCROOT_PATH_MAX + 2);

    memset(p, 'a', DOCROOT_PATH_MAX + 1);
    p[0] = '/';
    p[DOCROOT_PATH_MAX + 1] = '\0';
    cr_assert_eq(get(p), 0);
    cr_assert_eq(r.status, 414);
    p[DOCROOT_PATH_MAX] = '\0'; /* at the cap: looked up (name too long: 404) */
    cr_assert_eq(get(p), 0);
    cr_assert_eq(r.status, 404);
    free(p);
}

Test(docroot, new_refuses_non_directory)
{
    char p[256], err[128];

    snprintf(p, sizeof(p), "%s/secret.txt", tmp);
    cr_assert_null(docroot_new(p, err, sizeof(err)));
    cr_assert_neq(err[0], '\0');
    snprintf(p, sizeof(p), "%s/missing", tmp);
    cr_assert_null(docroot_new(p, err, sizeof(err)));
    cr_assert_null(docroot_new("", err, sizeof(err)));
    docroot_free(NULL);
}
