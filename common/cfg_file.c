/* cfg_file.c - the configuration file: `key = value` lines read with
 * libinih, each error named by file, line and key.
 *
 * libinih tells a handler neither its line nor (without INI_HANDLER_LINENO,
 * which Debian's build leaves off) which lines it could not parse, and
 * reports only the first bad line. So the reader passed to
 * ini_parse_stream() counts the lines itself and notices a line that holds
 * a setting but never reached the handler: --check-config can then list
 * every bad line, not just the first.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "cfg_int.h"

/* State for one ini_parse_stream() call. The reader counts lines (libinih
 * tells a handler neither its line nor, without INI_HANDLER_LINENO, which
 * lines it could not parse) and notices a line that should have reached the
 * handler but did not: that is a line libinih could not parse. */
struct cfg_file {
    struct cfg_ctx *c;
    FILE *f;
    bool expect;  /* it holds a setting: the handler should see it */
    bool handled; /* the handler saw it, or it was reported already */
};

static void cfg_ini_settle(struct cfg_file *cf)
{
    if (cf->expect && !cf->handled)
        cfg_error(cf->c, "%s:%u: cannot parse this line", cf->c->path, cf->c->line);
    cf->expect = false;
}

/* A line that is neither blank, nor a comment, nor a section header. */
static bool cfg_ini_expects(const char *s, unsigned line)
{
    if (line == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
        s += 3;
    s += strspn(s, " \t\r\n");
    return *s && !strchr(";#[", *s);
}

static char *cfg_ini_reader(char *str, int num, void *stream)
{
    struct cfg_file *cf = stream;
    size_t n;
    int ch;

    cfg_ini_settle(cf);
    if (!fgets(str, num, cf->f))
        return NULL;
    cf->c->line++; /* a longer line is read whole below: one call, one line */
    n = strlen(str);
    cf->handled = false;
    cf->expect = cfg_ini_expects(str, cf->c->line);
    if (cf->expect && (str[0] == ' ' || str[0] == '\t')) {
        /* libinih would append it to the previous key's value */
        cfg_error(cf->c, "%s:%u: an indented line: settings start at the beginning of a line",
                  cf->c->path, cf->c->line);
        cf->handled = true;
        str[0] = '\0';
        return str;
    }
    if (n && str[n - 1] != '\n' && !feof(cf->f)) {
        while ((ch = fgetc(cf->f)) != EOF && ch != '\n')
            ;
        cfg_error(cf->c, "%s:%u: line longer than %d characters", cf->c->path, cf->c->line,
                  num - 2);
        cf->handled = true;
        str[0] = '\0'; /* libinih sees a blank line */
    }
    return str;
}

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_file *cf = user;
    struct cfg_ctx *c = cf->c;
    const struct cfg_opt *o = cfg_find(c->p, name, strlen(name));
    const char *why = NULL;
    char buf[256];

    cf->handled = true;
    if (section && *section)
        why = "sections ([...]) are not used";
    else if (!o || !strcmp(name, "config"))
        why = "unknown key";
    else if (!value)
        why = "needs '= value'";
    else if (cfg_set_src(c, o, value, buf, sizeof(buf)))
        why = buf;
    if (!why)
        return 1;
    cfg_error(c, "%s:%u: %s: %s", c->path, c->line, name, why);
    return 0;
}

int cfg_load_file(struct cfg_ctx *c, const char *path)
{
    struct cfg_file cf = {.c = c};
    unsigned before = c->errors;
    struct stat st;
    int r;

    c->path = path;
    cf.f = fopen(path, "r");
    if (!cf.f)
        return cfg_error(c, "%s: %s", path, strerror(errno));
    if (fstat(fileno(cf.f), &st) == 0 && S_ISDIR(st.st_mode)) { /* fopen takes one */
        fclose(cf.f);
        return cfg_error(c, "%s: %s", path, strerror(EISDIR));
    }
    r = ini_parse_stream(cfg_ini_reader, &cf, cfg_ini_handler, &cf);
    cfg_ini_settle(&cf);
    if (ferror(cf.f)) { /* libinih takes a failed read for the end of the file */
        int e = errno;

        fclose(cf.f);
        c->line = 0;
        return cfg_error(c, "%s: read error: %s", path, strerror(e));
    }
    fclose(cf.f);
    c->line = 0;
    if (r < 0)
        return cfg_error(c, "%s: out of memory while parsing", path);
    if (r > 0 && c->errors == before) /* a refusal the reader did not see */
        return cfg_error(c, "%s:%d: cannot parse this line", path, r);
    return c->errors == before ? 0 : -EINVAL;
}
