/* cgroup.c - find a cgroup's directories and read its CPU quota, CPU usage
 * and memory limit/usage, for cgroup v1 and v2.
 *
 * Design notes:
 * - Pure file parsing: every path is built from the arguments, so tests run
 *   against fixture trees. No libstatgrab here.
 * - Files are read whole into a bounded buffer (CG_FILE_MAX); a larger file
 *   is -EFBIG. Numbers are parsed strictly: digits first, the whole token
 *   consumed, only whitespace after it. Anything else is -EINVAL.
 * - An empty directory string in struct cg_paths means "controller not
 *   found": its limits are "no limit" and its usage is -ENOENT.
 * - v1 hierarchies are found by name under fs_root: first the controller
 *   list as /proc/self/cgroup spells it ("cpu,cpuacct"), then the single
 *   controller name ("cpu", a symlink on Debian). A cgroup path that does not
 *   exist under its hierarchy (a cgroup namespace shows "/" or a host path)
 *   falls back to the hierarchy's root.
 */
#include "cgroup.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest cgroup file we read; memory.stat on v2 is about 2 KiB. */
#define CG_FILE_MAX 16384

/* v1 limits at or above 2^62 are the kernel's "unlimited" rounded to pages. */
#define CG_NO_LIMIT_MIN (UINT64_C(1) << 62)

/* The three controllers we use and the file that marks a v1 directory of each. */
enum cg_ctrl { CTRL_CPU, CTRL_CPUACCT, CTRL_MEMORY, CTRL_MAX };

static const char *const ctrl_name[CTRL_MAX] = {"cpu", "cpuacct", "memory"};
static const char *const ctrl_marker[CTRL_MAX] = {"cpu.cfs_quota_us", "cpuacct.usage",
                                                  "memory.limit_in_bytes"};

/* One parsed line of /proc/self/cgroup; pointers into the read buffer. */
struct cg_line {
    const char *ctrls; /* "cpu,cpuacct", "" for v2 */
    const char *path;  /* starts with '/' */
};

static char *ctrl_dir(struct cg_paths *p, enum cg_ctrl c)
{
    if (c == CTRL_CPU)
        return p->cpu;
    if (c == CTRL_CPUACCT)
        return p->cpuacct;
    return p->memory;
}

/* Writes "a/b" (or just a when b is empty or "/") into out. */
static int path_join(char *out, size_t cap, const char *a, const char *b)
{
    int n;

    while (*b == '/')
        b++;
    if (*b == '\0')
        n = snprintf(out, cap, "%s", a);
    else
        n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* True when the first dir_len bytes of dir, joined with name, exist. */
static bool has_file_n(const char *dir, size_t dir_len, const char *name)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%.*s/%s", (int)dir_len, dir, name);

    if (n < 0 || (size_t)n >= sizeof(path))
        return false;
    return access(path, F_OK) == 0;
}

static bool has_file(const char *dir, const char *name)
{
    return has_file_n(dir, strlen(dir), name);
}

/* Reads a whole file into buf (NUL-terminated). Returns 0, -EFBIG when it
 * does not fit, -EINVAL when it holds a NUL byte, or -errno. */
static int read_text(const char *path, char *buf, size_t cap)
{
    size_t len = 0;
    int rc = 0;
    FILE *f = fopen(path, "re");

    if (f == NULL)
        return -errno;
    for (;;) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (ferror(f)) {
            rc = -EIO;
            goto out_close;
        }
        if (feof(f) || (len == cap - 1 && fgetc(f) == EOF && !ferror(f)))
            break;
        if (len == cap - 1) {
            rc = -EFBIG;
            goto out_close;
        }
    }
    buf[len] = '\0';
    if (strlen(buf) != len)
        rc = -EINVAL;
out_close:
    fclose(f);
    return rc;
}

static int read_file_in(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[4096];
    int rc;

    if (dir[0] == '\0')
        return -ENOENT;
    rc = path_join(path, sizeof(path), dir, name);
    if (rc < 0)
        return rc;
    return read_text(path, buf, cap);
}

static bool only_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    return *s == '\0';
}

/* Parses an unsigned decimal that fills s up to trailing whitespace. */
static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || !only_space(end))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Reads a file that holds one unsigned number. */
static int read_u64_in(const char *dir, const char *name, uint64_t *out)
{
    char buf[256];
    int rc = read_file_in(dir, name, buf, sizeof(buf));

    if (rc < 0)
        return rc == -EFBIG ? -EINVAL : rc;
    return parse_u64(buf, out);
}

/* Finds "key value" in a flat-keyed file (cpu.stat, memory.stat). Returns 0,
 * -EINVAL when the key is absent or its value is malformed, or -errno. */
static int read_stat_key(const char *dir, const char *name, const char *key, uint64_t *out)
{
    char buf[CG_FILE_MAX];
    size_t klen = strlen(key);
    char *line;
    int rc = read_file_in(dir, name, buf, sizeof(buf));

    if (rc < 0)
        return rc;
    for (line = buf; *line != '\0';) {
        char *nl = strchr(line, '\n');
        char *next = nl != NULL ? nl + 1 : line + strlen(line);

        if (nl != NULL)
            *nl = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return parse_u64(line + klen + 1, out);
        line = next;
    }
    return -EINVAL;
}

/* True when the comma-separated list ctrls names the controller name. */
static bool list_has(const char *ctrls, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = ctrls;

    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

        if (len == nlen && strncmp(p, name, len) == 0)
            return true;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return false;
}

/* Splits one "ID:controllers:/path" line in place. */
static int parse_line(char *line, struct cg_line *out, bool *v2)
{
    char *c1 = strchr(line, ':');
    char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    uint64_t id;

    if (c2 == NULL)
        return -EINVAL;
    *c1 = '\0';
    *c2 = '\0';
    if (parse_u64(line, &id) < 0 || c2[1] != '/')
        return -EINVAL;
    out->ctrls = c1 + 1;
    out->path = c2 + 1;
    *v2 = id == 0 && *out->ctrls == '\0';
    return 0;
}

/* Parses the whole /proc/self/cgroup text: the v2 line and, per controller,
 * the v1 line naming it. Unfound entries keep a NULL path. */
static int parse_proc(char *buf, struct cg_line *v2, struct cg_line v1[CTRL_MAX])
{
    char *line = buf;

    while (*line != '\0') {
        char *nl = strchr(line, '\n');
        char *next = nl != NULL ? nl + 1 : line + strlen(line);
        struct cg_line l;
        bool is_v2;
        int c;

        if (nl != NULL)
            *nl = '\0';
        if (*line != '\0') {
            if (parse_line(line, &l, &is_v2) < 0)
                return -EINVAL;
            if (is_v2)
                *v2 = l;
            for (c = 0; c < CTRL_MAX && !is_v2; c++)
                if (list_has(l.ctrls, ctrl_name[c]))
                    v1[c] = l;
        }
        line = next;
    }
    return 0;
}

/* True when path has a ".." component: a cgroup outside our cgroup
 * namespace shows as "/../x", which names nothing under our mount. */
static bool has_dotdot(const char *path)
{
    const char *p = strstr(path, "/..");

    for (; p != NULL; p = strstr(p + 1, "/.."))
        if (p[3] == '/' || p[3] == '\0')
            return true;
    return false;
}

/* dir of a cgroup path under a mount; the mount itself when it is missing. */
static int cgroup_dir(char *out, size_t cap, const char *mount, const char *path)
{
    int rc = path_join(out, cap, mount, has_dotdot(path) ? "" : path);

    if (rc < 0)
        return rc;
    if (!is_dir(out))
        return path_join(out, cap, mount, "");
    return 0;
}

/* v1: finds the hierarchy for controller c and the cgroup's dir in it. */
static int v1_dir(const char *fs_root, const struct cg_line *l, enum cg_ctrl c, char *out,
                  size_t cap)
{
    char mount[4096];
    int rc = path_join(mount, sizeof(mount), fs_root, l->ctrls);

    if (rc < 0)
        return rc;
    if (!is_dir(mount)) {
        rc = path_join(mount, sizeof(mount), fs_root, ctrl_name[c]);
        if (rc < 0)
            return rc;
        if (!is_dir(mount))
            return 0; /* not mounted: leave out empty */
    }
    return cgroup_dir(out, cap, mount, l->path);
}

static int resolve_v2(const char *fs_root, const struct cg_line *l, struct cg_paths *out)
{
    int rc = cgroup_dir(out->cpu, sizeof(out->cpu), fs_root, l->path);

    if (rc < 0)
        return rc;
    out->version = CG_V2;
    memcpy(out->cpuacct, out->cpu, sizeof(out->cpu));
    memcpy(out->memory, out->cpu, sizeof(out->cpu));
    return 0;
}

static int resolve_v1(const char *fs_root, const struct cg_line v1[CTRL_MAX], struct cg_paths *out)
{
    bool found = false;
    int c, rc;

    for (c = 0; c < CTRL_MAX; c++) {
        char *dir = ctrl_dir(out, c);

        if (v1[c].path == NULL)
            continue;
        rc = v1_dir(fs_root, &v1[c], c, dir, sizeof(out->cpu));
        if (rc < 0)
            return rc;
        found = found || dir[0] != '\0';
    }
    if (!found)
        return -ENOENT;
    out->version = CG_V1;
    return 0;
}

int cg_resolve(const char *proc_cgroup, const char *fs_root, struct cg_paths *out)
{
    char buf[CG_FILE_MAX];
    struct cg_line v2 = {NULL, NULL};
    struct cg_line v1[CTRL_MAX] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
    int rc;

    memset(out, 0, sizeof(*out));
    rc = read_text(proc_cgroup, buf, sizeof(buf));
    if (rc < 0)
        return rc;
    rc = parse_proc(buf, &v2, v1);
    if (rc < 0)
        return rc;
    /* On a hybrid host the "0::" line exists but fs_root is v1 tmpfs. */
    if (v2.path != NULL && has_file(fs_root, "cgroup.controllers"))
        rc = resolve_v2(fs_root, &v2, out);
    else
        rc = resolve_v1(fs_root, v1, out);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* Length of the prefix of dir (no trailing '/') that is its v1 hierarchy
 * root: the topmost ancestor that still holds the controller's marker. */
static size_t hierarchy_root_len(const char *dir, const char *marker)
{
    size_t len = strlen(dir);

    while (len > 0) {
        size_t plen = len - 1;

        while (plen > 0 && dir[plen] != '/')
            plen--;
        if (plen == 0 || !has_file_n(dir, plen, marker))
            break;
        len = plen;
    }
    return len;
}

/* v1: the dir of controller c in the sibling hierarchy base/name/rel, or
 * dir itself when it holds c's marker too (combined hierarchies). */
static int v1_sibling(const char *dir, size_t root_len, enum cg_ctrl c, char *out, size_t cap)
{
    size_t base_len = root_len;
    int n;

    if (has_file(dir, ctrl_marker[c]))
        return path_join(out, cap, dir, "");
    /* base keeps its trailing '/'; empty for a relative "cpu/x" */
    while (base_len > 0 && dir[base_len - 1] != '/')
        base_len--;
    n = snprintf(out, cap, "%.*s%s%s", (int)base_len, dir, ctrl_name[c], dir + root_len);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    if (!has_file(out, ctrl_marker[c]))
        out[0] = '\0';
    return 0;
}

static int from_dir_v1(const char *dir, struct cg_paths *out)
{
    size_t root_len = 0;
    int c, own = -1, rc;

    for (c = 0; c < CTRL_MAX && own < 0; c++)
        if (has_file(dir, ctrl_marker[c]))
            own = c;
    if (own < 0)
        return -ENOENT;
    root_len = hierarchy_root_len(dir, ctrl_marker[own]);
    for (c = 0; c < CTRL_MAX; c++) {
        rc = v1_sibling(dir, root_len, c, ctrl_dir(out, c), sizeof(out->cpu));
        if (rc < 0)
            return rc;
    }
    out->version = CG_V1;
    return 0;
}

int cg_from_dir(const char *dir, struct cg_paths *out)
{
    char d[sizeof(out->cpu)];
    size_t len;
    int rc;

    memset(out, 0, sizeof(*out));
    len = strlen(dir);
    if (len == 0 || len >= sizeof(d))
        return len == 0 ? -EINVAL : -ENAMETOOLONG;
    memcpy(d, dir, len + 1);
    while (len > 1 && d[len - 1] == '/')
        d[--len] = '\0';
    if (!is_dir(d))
        return -ENOENT;
    if (has_file(d, "cgroup.controllers") || has_file(d, "cpu.max")) {
        out->version = CG_V2;
        memcpy(out->cpu, d, len + 1);
        memcpy(out->cpuacct, d, len + 1);
        memcpy(out->memory, d, len + 1);
        return 0;
    }
    rc = from_dir_v1(d, out);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* v1 quota: cpu.cfs_quota_us is -1 (none) or a positive count of us. */
static int read_cpu_v1(const char *dir, struct cg_limits *out)
{
    char buf[256];
    uint64_t quota, period;
    int rc = read_file_in(dir, "cpu.cfs_quota_us", buf, sizeof(buf));

    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc == -EFBIG ? -EINVAL : rc;
    if (strncmp(buf, "-1", 2) == 0 && only_space(buf + 2))
        return 0;
    rc = parse_u64(buf, &quota);
    if (rc < 0)
        return rc;
    rc = read_u64_in(dir, "cpu.cfs_period_us", &period);
    if (rc < 0)
        return rc;
    if (quota == 0 || period == 0)
        return -EINVAL;
    out->has_cpu_quota = true;
    out->cpu_cores = (double)quota / (double)period;
    return 0;
}

/* v2 quota: cpu.max is "max PERIOD" (none) or "QUOTA PERIOD". */
static int read_cpu_v2(const char *dir, struct cg_limits *out)
{
    char buf[256];
    uint64_t quota, period;
    char *sp;
    int rc = read_file_in(dir, "cpu.max", buf, sizeof(buf));

    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc == -EFBIG ? -EINVAL : rc;
    sp = strchr(buf, ' ');
    if (sp == NULL)
        return strncmp(buf, "max", 3) == 0 && only_space(buf + 3) ? 0 : -EINVAL;
    *sp = '\0';
    rc = parse_u64(sp + 1, &period);
    if (rc < 0 || period == 0)
        return -EINVAL;
    if (strcmp(buf, "max") == 0)
        return 0;
    rc = parse_u64(buf, &quota);
    if (rc < 0 || quota == 0)
        return -EINVAL;
    out->has_cpu_quota = true;
    out->cpu_cores = (double)quota / (double)period;
    return 0;
}

/* v1 memory.limit_in_bytes or v2 memory.max ("max" on v2 only). */
static int read_mem_limit(const char *dir, enum cg_version v, struct cg_limits *out)
{
    char buf[256];
    uint64_t limit;
    const char *name = v == CG_V2 ? "memory.max" : "memory.limit_in_bytes";
    int rc = read_file_in(dir, name, buf, sizeof(buf));

    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc == -EFBIG ? -EINVAL : rc;
    if (v == CG_V2 && strncmp(buf, "max", 3) == 0 && only_space(buf + 3))
        return 0;
    rc = parse_u64(buf, &limit);
    if (rc < 0)
        return rc;
    if (limit >= CG_NO_LIMIT_MIN)
        return 0;
    out->has_mem_limit = true;
    out->mem_limit = limit;
    return 0;
}

int cg_read_limits(const struct cg_paths *p, struct cg_limits *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (p->version == CG_NONE)
        return 0;
    if (p->version == CG_V2)
        rc = read_cpu_v2(p->cpu, out);
    else
        rc = read_cpu_v1(p->cpu, out);
    if (rc == 0)
        rc = read_mem_limit(p->memory, p->version, out);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

uint32_t cg_cpu_milli(const struct cg_limits *l, long online_cpus)
{
    double cores = online_cpus > 0 ? (double)online_cpus : 0.0;
    double milli;

    if (l != NULL && l->has_cpu_quota && isfinite(l->cpu_cores) && l->cpu_cores > 0.0 &&
        (cores == 0.0 || l->cpu_cores < cores))
        cores = l->cpu_cores;
    if (cores == 0.0)
        return 0;
    milli = round(cores * 1000.0);
    if (milli < 1.0)
        return 1;
    if (milli > (double)CG_CPU_MILLI_MAX)
        return CG_CPU_MILLI_MAX;
    return (uint32_t)milli;
}

int cg_read_cpu_usage_ns(const struct cg_paths *p, uint64_t *out)
{
    uint64_t usec;
    int rc;

    if (p->version == CG_V1)
        return read_u64_in(p->cpuacct, "cpuacct.usage", out);
    if (p->version != CG_V2)
        return -ENOENT;
    rc = read_stat_key(p->cpuacct, "cpu.stat", "usage_usec", &usec);
    if (rc < 0)
        return rc;
    if (usec > UINT64_MAX / 1000)
        return -ERANGE;
    *out = usec * 1000;
    return 0;
}

int cg_read_mem_usage(const struct cg_paths *p, uint64_t *out)
{
    bool v2 = p->version == CG_V2;
    uint64_t usage, inactive;
    int rc;

    if (p->version == CG_NONE)
        return -ENOENT;
    rc = read_u64_in(p->memory, v2 ? "memory.current" : "memory.usage_in_bytes", &usage);
    if (rc < 0)
        return rc;
    rc = read_stat_key(p->memory, "memory.stat", v2 ? "inactive_file" : "total_inactive_file",
                       &inactive);
    if (rc < 0)
        return rc;
    *out = usage > inactive ? usage - inactive : 0;
    return 0;
}
