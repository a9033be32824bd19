/* ctl_args.c - fulcrumctl's command line: global options anywhere, then a
 * command and its words; and the token file. */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTL_WORDS_MAX 4
#define CTL_NAME_MAX  63

struct ctl_cmd {
    const char *word;
    int nargs;                                /* words after the command */
    const char *method, *path_pre, *path_suf; /* path: pre NAME suf */
    enum ctl_view view;
};

static const struct ctl_cmd ctl_cmds[] = {
    {"nodes", 0, "GET", "/api/nodes", "", CTL_VIEW_NODES},
    {"node", 1, "GET", "/api/nodes/", "", CTL_VIEW_NODE},
    {"drain", 1, "POST", "/api/nodes/", "/drain", CTL_VIEW_NODE},
    {"undrain", 1, "POST", "/api/nodes/", "/undrain", CTL_VIEW_NODE},
    {"weight", 2, "POST", "/api/nodes/", "/weight", CTL_VIEW_NODE},
    {"counters", 0, "GET", "/api/counters", "", CTL_VIEW_COUNTERS},
    {"config", 0, "GET", "/api/config", "", CTL_VIEW_CONFIG},
};

void ctl_usage(FILE *f)
{
    fputs("Usage: fulcrumctl [--admin HOST:PORT] [--token-file FILE] [--json] COMMAND\n"
          "Talks to fulcrum-balancer's admin port (its runtime API under /api/).\n\n"
          "Commands:\n"
          "  nodes                 every node: state, weights, override, drain, counters\n"
          "  node NAME             one node\n"
          "  drain NAME            no new connections to NAME; open ones finish\n"
          "  undrain NAME          NAME takes new connections again\n"
          "  weight NAME N         override NAME's weight with N (0..256; 0: no new\n"
          "                        connections), kept until cleared\n"
          "  weight NAME clear     back to the weight its agent reports\n"
          "  counters              every balancer and monitor counter (/metrics names)\n"
          "  config                every option: effective value and source\n\n"
          "Options:\n"
          "  --admin HOST:PORT     the admin port [default: " CTL_DEFAULT_ADMIN "]\n"
          "  --token-file FILE     send the token in FILE as Authorization: Bearer\n"
          "  --json                print the server's JSON instead of a table\n"
          "  --help                show this text\n"
          "  --version             show the version\n\n"
          "Exit status: 0 done; 1 the server answered with an error; 2 usage (or an\n"
          "unreadable token file); 3 cannot connect or no answer.\n",
          f);
}

static bool ctl_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CTL_NAME_MAX)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

static bool ctl_weight_valid(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= 3 && strspn(s, "0123456789") == n && strtol(s, NULL, 10) <= 256;
}

/* --opt VALUE or --opt=VALUE: the value, advancing *i; NULL if missing. */
static const char *ctl_optval(int argc, char *const *argv, int *i, const char *opt)
{
    size_t len = strlen(opt);
    const char *arg = argv[*i];

    if (arg[len] == '=')
        return arg + len + 1;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static bool ctl_is_opt(const char *arg, const char *opt)
{
    size_t len = strlen(opt);

    return !strncmp(arg, opt, len) && (arg[len] == '\0' || arg[len] == '=');
}

/* The command in words[0..n). */
static int ctl_command(struct ctl_args *a, const char *const *words, int n, char *err,
                       size_t errlen)
{
    const struct ctl_cmd *c = NULL;

    for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
        if (!strcmp(words[0], ctl_cmds[i].word))
            c = &ctl_cmds[i];
    if (!c) {
        snprintf(err, errlen, "unknown command '%s' (see --help)", words[0]);
        return -EINVAL;
    }
    if (n - 1 != c->nargs) {
        snprintf(err, errlen, "%s takes %d argument%s (see --help)", c->word, c->nargs,
                 c->nargs == 1 ? "" : "s");
        return -EINVAL;
    }
    a->method = c->method;
    a->path_pre = c->path_pre;
    a->path_suf = c->path_suf;
    a->view = c->view;
    if (c->nargs == 0)
        return 0;
    a->name = words[1];
    if (!ctl_name_valid(a->name)) {
        snprintf(err, errlen, "'%s' is not a node name ([A-Za-z0-9._:-], 1 to %d)", a->name,
                 CTL_NAME_MAX);
        return -EINVAL;
    }
    if (c->nargs == 2 && !strcmp(words[2], "clear")) {
        a->method = "DELETE";
    } else if (c->nargs == 2) {
        if (!ctl_weight_valid(words[2])) {
            snprintf(err, errlen, "weight '%s': give a whole number 0..256 or 'clear'", words[2]);
            return -EINVAL;
        }
        a->body = words[2];
    }
    return 0;
}

int ctl_parse_args(int argc, char *const *argv, struct ctl_args *a, char *err, size_t errlen)
{
    const char *words[CTL_WORDS_MAX];
    int n = 0;

    memset(a, 0, sizeof(*a));
    a->admin = CTL_DEFAULT_ADMIN;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], **dst = NULL, *opt = NULL;

        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            a->help = true;
            return 0;
        }
        if (!strcmp(arg, "--version")) {
            a->version = true;
            return 0;
        }
        if (!strcmp(arg, "--json")) {
            a->json = true;
            continue;
        }
        if (ctl_is_opt(arg, "--admin")) {
            dst = &a->admin;
            opt = "--admin";
        } else if (ctl_is_opt(arg, "--token-file")) {
            dst = &a->token_file;
            opt = "--token-file";
        }
        if (dst) {
            *dst = ctl_optval(argc, argv, &i, opt);
            if (!*dst || !**dst) {
                snprintf(err, errlen, "%s needs a value", opt);
                return -EINVAL;
            }
            continue;
        }
        if (arg[0] == '-' && arg[1]) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", arg);
            return -EINVAL;
        }
        if (n == CTL_WORDS_MAX) {
            snprintf(err, errlen, "too many arguments (see --help)");
            return -EINVAL;
        }
        words[n++] = arg;
    }
    if (n == 0) {
        snprintf(err, errlen, "no command (see --help)");
        return -EINVAL;
    }
    return ctl_command(a, words, n, err, errlen);
}

int ctl_path(const struct ctl_args *a, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s%s%s", a->path_pre, a->name ? a->name : "", a->path_suf);

    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ctl_read_token(const char *path, char *buf, size_t cap, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), r;
    ssize_t n;

    if (fd == -1) {
        r = -errno;
        snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
        return r;
    }
    n = 0; /* a pipe may give it in pieces */
    r = 0;
    while ((size_t)n < cap - 1) {
        ssize_t k = read(fd, buf + n, cap - 1 - (size_t)n);

        if (k == -1 && errno == EINTR)
            continue;
        if (k == -1)
            r = -errno;
        if (k <= 0)
            break;
        n += k;
    }
    close(fd);
    if (r) {
        explicit_bzero(buf, cap);
        snprintf(err, errlen, "token file %s: %s", path, strerror(-r));
        return r;
    }
    while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
        n--;
    buf[n] = '\0';
    if (n == 0 || (size_t)n == cap - 1 || strcspn(buf, " \t\r\n") != (size_t)n) {
        snprintf(err, errlen, "token file %s: not one word of at most %zu bytes", path, cap - 2);
        return -EINVAL;
    }
    return 0;
}
