/* ctl_print.c - fulcrumctl's human output: the API's JSON as aligned tables
 * and key: value lines. --json bypasses all of this. */
#include "ctl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CELL_MAX 80
#define COLS_MAX 13

/* A JSON scalar as text: numbers without a fraction print as integers,
 * null as "-". */
static void cell_of(const cJSON *v, char *buf, size_t cap)
{
    if (cJSON_IsString(v))
        snprintf(buf, cap, "%s", v->valuestring);
    else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
             fabs(v->valuedouble) < 1e15)
        snprintf(buf, cap, "%.0f", v->valuedouble);
    else if (cJSON_IsNumber(v))
        snprintf(buf, cap, "%g", v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "yes" : "no");
    else
        snprintf(buf, cap, "-");
}

static const char *const node_cols[COLS_MAX] = {
    "name",   "addr",        "state",    "weight",    "effective_weight", "override", "drain",
    "active", "conns_total", "bytes_in", "bytes_out", "connect_failures", "source"};
static const char *const node_titles[COLS_MAX] = {
    "NAME",   "ADDR",  "STATE",    "WEIGHT",    "EFFECTIVE", "OVERRIDE", "DRAIN",
    "ACTIVE", "CONNS", "BYTES_IN", "BYTES_OUT", "FAILS",     "SOURCE"};

/* Two passes over the rows: widths, then the lines. Columns before nleft
 * are left-aligned, the others right-aligned. */
static void table(FILE *f, const cJSON *rows, const char *const *keys, const char *const *titles,
                  int ncols, int nleft)
{
    char cell[CELL_MAX];
    int width[COLS_MAX];
    const cJSON *row;

    for (int k = 0; k < ncols; k++)
        width[k] = (int)strlen(titles[k]);
    cJSON_ArrayForEach(row, rows)
    {
        for (int k = 0; k < ncols; k++) {
            cell_of(cJSON_GetObjectItemCaseSensitive(row, keys[k]), cell, sizeof(cell));
            if ((int)strlen(cell) > width[k])
                width[k] = (int)strlen(cell);
        }
    }
    for (int k = 0; k < ncols; k++)
        fprintf(f, k < nleft ? "%s%-*s" : "%s%*s", k ? "  " : "", width[k], titles[k]);
    fputc('\n', f);
    cJSON_ArrayForEach(row, rows)
    {
        for (int k = 0; k < ncols; k++) {
            cell_of(cJSON_GetObjectItemCaseSensitive(row, keys[k]), cell, sizeof(cell));
            fprintf(f, k < nleft ? "%s%-*s" : "%s%*s", k ? "  " : "", width[k], cell);
        }
        fputc('\n', f);
    }
}

static int print_node(FILE *f, const cJSON *j)
{
    const cJSON *it;
    char cell[CELL_MAX];

    if (!cJSON_IsObject(j) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "name")))
        return -EINVAL;
    cJSON_ArrayForEach(it, j)
    {
        cell_of(it, cell, sizeof(cell));
        fprintf(f, "%-17s %s\n", it->string, cell);
    }
    return 0;
}

/* name value, and name{a,b} value for the nested objects of labelled
 * families. prefix: the name so far. */
static void print_counters(FILE *f, const cJSON *o, const char *prefix, bool in_labels)
{
    const cJSON *it;
    char name[512], cell[CELL_MAX];

    cJSON_ArrayForEach(it, o)
    {
        if (!prefix)
            snprintf(name, sizeof(name), "%s", it->string);
        else
            snprintf(name, sizeof(name), "%s%s%s", prefix, in_labels ? "," : "{", it->string);
        if (cJSON_IsObject(it)) {
            print_counters(f, it, name, prefix != NULL);
            continue;
        }
        cell_of(it, cell, sizeof(cell));
        fprintf(f, "%s%s %s\n", name, prefix ? "}" : "", cell);
    }
}

/* An option's value: a list joined with commas. */
static void config_value(const cJSON *v, char *buf, size_t cap)
{
    const cJSON *e;
    size_t off = 0;

    if (!cJSON_IsArray(v)) {
        cell_of(v, buf, cap);
        return;
    }
    buf[0] = '\0';
    cJSON_ArrayForEach(e, v)
    {
        char one[CELL_MAX];

        cell_of(e, one, sizeof(one));
        if (off < cap)
            off += (size_t)snprintf(buf + off, cap - off, "%s%s", off ? "," : "", one);
    }
}

static int print_config(FILE *f, const cJSON *cfg)
{
    char val[CELL_MAX * 4], src[16];
    int wk = 3, wv = 5;
    const cJSON *it;

    cJSON_ArrayForEach(it, cfg)
    {
        config_value(cJSON_GetObjectItemCaseSensitive(it, "value"), val, sizeof(val));
        if ((int)strlen(it->string) > wk)
            wk = (int)strlen(it->string);
        if ((int)strlen(val) > wv)
            wv = (int)strlen(val);
    }
    fprintf(f, "%-*s  %-*s  %s\n", wk, "KEY", wv, "VALUE", "SOURCE");
    cJSON_ArrayForEach(it, cfg)
    {
        config_value(cJSON_GetObjectItemCaseSensitive(it, "value"), val, sizeof(val));
        cell_of(cJSON_GetObjectItemCaseSensitive(it, "source"), src, sizeof(src));
        fprintf(f, "%-*s  %-*s  %s\n", wk, it->string, wv, val, src);
    }
    return 0;
}

int ctl_print(FILE *f, enum ctl_view view, const cJSON *j)
{
    const cJSON *o;

    switch (view) {
    case CTL_VIEW_NODES:
        o = cJSON_GetObjectItemCaseSensitive(j, "nodes");
        if (!cJSON_IsArray(o))
            return -EINVAL;
        table(f, o, node_cols, node_titles, COLS_MAX, 3);
        return 0;
    case CTL_VIEW_NODE:
        return print_node(f, j);
    case CTL_VIEW_COUNTERS:
        o = cJSON_GetObjectItemCaseSensitive(j, "counters");
        if (!cJSON_IsObject(o))
            return -EINVAL;
        print_counters(f, o, NULL, false);
        return 0;
    case CTL_VIEW_CONFIG:
        o = cJSON_GetObjectItemCaseSensitive(j, "config");
        if (!cJSON_IsObject(o))
            return -EINVAL;
        return print_config(f, o);
    default:
        return -EINVAL;
    }
}
