/* cfg_check.c - --check-config: reporting a problem under the key whose
 * value caused it, and the checks the daemons' hooks share (addresses, key
 * files, log files, directories). Nothing here binds, connects or creates
 * a file: a check must be safe to run beside the live daemon. */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg_int.h"
#include "key.h"
#include "net.h"

void cfg_check_fail(struct cfg_check *chk, const char *key, size_t idx, const char *fmt, ...)
{
    struct cfg_ctx *c = chk->c;
    const struct cfg_opt *o = cfg_find(c->p, key, strlen(key));
    const struct cfg_src *s = o ? &c->src[o - c->p->opts] : NULL;
    unsigned line = 0;
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (s)
        line = o->type == CFG_LIST ? (idx < s->n ? s->lines[idx] : 0) : s->line;
    if (line == CFG_SRC_CLI)
        cfg_error(c, "--%s: %s", key, why);
    else if (line)
        cfg_error(c, "%s:%u: %s: %s", c->path, line, key, why);
    else
        cfg_error(c, "%s: %s", key, why);
}

static bool cfg_unset(const char *v)
{
    return !v || !*v;
}

bool cfg_check_required(struct cfg_check *chk, const char *key, const char *v)
{
    if (!cfg_unset(v))
        return true;
    cfg_check_fail(chk, key, 0, "is required (set it in the file or as --%s)", key);
    return false;
}

bool cfg_check_hostport(struct cfg_check *chk, const char *key, const char *v, bool allow_port0)
{
    struct sockaddr_in sa;
    char err[256];

    if (cfg_unset(v) || !net_parse_hostport(v, allow_port0, &sa, err, sizeof(err)))
        return true;
    cfg_check_fail(chk, key, 0, "%s", err);
    return false;
}

bool cfg_check_hostports(struct cfg_check *chk, const char *key, const struct cfg_list *l,
                         bool allow_port0)
{
    struct sockaddr_in sa;
    char err[256];
    bool ok = true;

    for (size_t i = 0; i < l->n; i++) {
        if (net_parse_hostport(l->v[i], allow_port0, &sa, err, sizeof(err))) {
            cfg_check_fail(chk, key, i, "%s", err);
            ok = false;
        }
    }
    return ok;
}

bool cfg_check_ip(struct cfg_check *chk, const char *key, const char *v)
{
    struct in_addr a;
    char err[256];

    if (cfg_unset(v) || !net_parse_ip(v, &a, err, sizeof(err)))
        return true;
    cfg_check_fail(chk, key, 0, "%s", err);
    return false;
}

bool cfg_check_key_file(struct cfg_check *chk, const char *key, const char *path)
{
    struct key_ring kr = {0};
    char err[512];
    int r;

    if (cfg_unset(path))
        return true;
    r = key_ring_load(&kr, path, err, sizeof(err));
    key_ring_done(&kr);
    if (!r)
        return true;
    cfg_check_fail(chk, key, 0, "%s", err);
    return false;
}

bool cfg_check_log_file(struct cfg_check *chk, const char *key, const char *path)
{
    char dir[4096];
    struct stat st;
    int e;

    if (cfg_unset(path) || !strcmp(path, "-"))
        return true;
    if (stat(path, &st) == 0) { /* a file, or /dev/null, a FIFO...: log_open takes them */
        if (!S_ISDIR(st.st_mode) && access(path, W_OK) == 0)
            return true;
        cfg_check_fail(chk, key, 0, "%s: %s", path,
                       S_ISDIR(st.st_mode) ? strerror(EISDIR) : strerror(errno));
        return false;
    }
    e = errno;
    snprintf(dir, sizeof(dir), "%s", path);
    if (e == ENOENT && access(dirname(dir), W_OK | X_OK) == 0)
        return true;
    cfg_check_fail(chk, key, 0, "%s: %s", path, strerror(e == ENOENT ? errno : e));
    return false;
}

bool cfg_check_replaced_file(struct cfg_check *chk, const char *key, const char *path)
{
    char dir[4096];
    struct stat st;

    if (cfg_unset(path))
        return true;
    if (!strcmp(path, "-")) {
        cfg_check_fail(chk, key, 0, "'-' is not a file here: give a path");
        return false;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cfg_check_fail(chk, key, 0, "%s: %s", path, strerror(EISDIR));
        return false;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    if (access(dirname(dir), W_OK | X_OK) == 0)
        return true;
    cfg_check_fail(chk, key, 0, "%s: its directory: %s", path, strerror(errno));
    return false;
}

bool cfg_check_dir(struct cfg_check *chk, const char *key, const char *path)
{
    struct stat st;

    if (cfg_unset(path))
        return true;
    if (stat(path, &st) == -1) {
        cfg_check_fail(chk, key, 0, "%s: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        cfg_check_fail(chk, key, 0, "%s: not a directory", path);
        return false;
    }
    if (access(path, R_OK | X_OK) == -1) {
        cfg_check_fail(chk, key, 0, "%s: %s", path, strerror(errno));
        return false;
    }
    return true;
}
