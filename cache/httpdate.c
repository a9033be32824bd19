/* httpdate.c - HTTP-date parsing (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 and
 * asctime, to seconds since the epoch. Contract in httpdate.h.
 *
 * Design notes: a cursor over (s, n) checks what is left before every step,
 * so nothing reads past n. Calendar arithmetic is H. Hinnant's proleptic
 * Gregorian algorithms in int64_t: no struct tm, no timegm, no locale.
 */
#include "httpdate.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *const wkday[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const weekday[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};
static const char *const month_name[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* A cursor over (s, n): every step checks what is left. */
struct cur {
    const char *s;
    size_t n;
    size_t i;
};

static bool lit(struct cur *c, const char *l)
{
    size_t k = strlen(l);

    if (c->n - c->i < k || memcmp(c->s + c->i, l, k) != 0)
        return false;
    c->i += k;
    return true;
}

/* Index of the table entry at the cursor (consumed), or -1. */
static int one_of(struct cur *c, const char *const *tab, int count)
{
    int k;

    for (k = 0; k < count; k++) {
        if (lit(c, tab[k]))
            return k;
    }
    return -1;
}

/* Exactly `count` digits. */
static bool digits(struct cur *c, int count, int *out)
{
    int v = 0;

    if (c->n - c->i < (size_t)count)
        return false;
    for (; count > 0; count--, c->i++) {
        if (!is_digit(c->s[c->i]))
            return false;
        v = v * 10 + (c->s[c->i] - '0');
    }
    *out = v;
    return true;
}

struct tm_parts {
    int year, mon, day, hour, min, sec; /* mon 0-11 */
};

/* time-of-day = hour ":" minute ":" second */
static bool time_of_day(struct cur *c, struct tm_parts *t)
{
    return digits(c, 2, &t->hour) && lit(c, ":") && digits(c, 2, &t->min) && lit(c, ":") &&
           digits(c, 2, &t->sec) && t->hour <= 23 && t->min <= 59 && t->sec <= 60;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int mon)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return mon == 1 && is_leap(y) ? 29 : dim[mon];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); m is 1-12. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The Gregorian year of an epoch time, clamped to [0, 9999]. */
static int64_t year_of(int64_t t)
{
    int64_t z, era, doe, yoe, y, doy, mp;

    if (t < -62167219200LL) /* 0000-01-01 */
        return 0;
    if (t >= 253402300800LL) /* 10000-01-01 */
        return 9999;
    z = t / 86400 - (t % 86400 < 0) + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    return mp >= 10 ? y + 1 : y;
}

/* §5.6.7: a two-digit year that "appears to be more than 50 years in the
 * future" is the most recent past year with those digits: the result lies
 * in [Y - 49, Y + 50] for now's year Y. */
static int64_t pivot_year(int yy, int64_t now)
{
    int64_t base = year_of(now) - 49;

    return base + (((yy - base) % 100) + 100) % 100;
}

static int parse_imf(struct cur *c, struct tm_parts *t)
{
    /* after "Sun," : SP 2DIGIT SP month SP 4DIGIT SP time SP "GMT" */
    if (!lit(c, " ") || !digits(c, 2, &t->day) || !lit(c, " "))
        return -EINVAL;
    if ((t->mon = one_of(c, month_name, 12)) < 0 || !lit(c, " ") || !digits(c, 4, &t->year))
        return -EINVAL;
    if (!lit(c, " ") || !time_of_day(c, t) || !lit(c, " GMT"))
        return -EINVAL;
    return 0;
}

static int parse_rfc850(struct cur *c, struct tm_parts *t, int64_t now)
{
    int yy;

    /* after "Sunday," : SP 2DIGIT "-" month "-" 2DIGIT SP time SP "GMT" */
    if (!lit(c, " ") || !digits(c, 2, &t->day) || !lit(c, "-"))
        return -EINVAL;
    if ((t->mon = one_of(c, month_name, 12)) < 0 || !lit(c, "-") || !digits(c, 2, &yy))
        return -EINVAL;
    if (!lit(c, " ") || !time_of_day(c, t) || !lit(c, " GMT"))
        return -EINVAL;
    t->year = (int)pivot_year(yy, now);
    return 0;
}

static int parse_asctime(struct cur *c, struct tm_parts *t)
{
    /* after "Sun " : month SP ( 2DIGIT / ( SP DIGIT ) ) SP time SP 4DIGIT */
    if ((t->mon = one_of(c, month_name, 12)) < 0 || !lit(c, " "))
        return -EINVAL;
    if (lit(c, " ")) {
        if (!digits(c, 1, &t->day))
            return -EINVAL;
    } else if (!digits(c, 2, &t->day)) {
        return -EINVAL;
    }
    if (!lit(c, " ") || !time_of_day(c, t) || !lit(c, " ") || !digits(c, 4, &t->year))
        return -EINVAL;
    return 0;
}

int httpdate_parse(const char *s, size_t n, int64_t now, int64_t *out_epoch)
{
    struct cur c = {s, n, 0};
    struct tm_parts t = {0};
    int rc;

    if (s == NULL)
        return -EINVAL;
    while (c.n > 0 && is_ows(s[c.n - 1]))
        c.n--;
    while (c.i < c.n && is_ows(s[c.i]))
        c.i++;
    if (one_of(&c, wkday, 7) >= 0) {
        if (lit(&c, ","))
            rc = parse_imf(&c, &t);
        else if (lit(&c, " "))
            rc = parse_asctime(&c, &t);
        else
            rc = -EINVAL;
        /* "Monday" also starts with "Mon": retry as RFC 850 below */
        if (rc < 0) {
            c.i = 0;
            while (c.i < c.n && is_ows(s[c.i]))
                c.i++;
        }
    } else {
        rc = -EINVAL;
    }
    if (rc < 0) {
        if (one_of(&c, weekday, 7) < 0 || !lit(&c, ","))
            return -EINVAL;
        rc = parse_rfc850(&c, &t, now);
        if (rc < 0)
            return rc;
    }
    if (c.i != c.n || t.day < 1 || t.day > days_in_month(t.year, t.mon))
        return -EINVAL;
    *out_epoch =
        days_from_civil(t.year, t.mon + 1, t.day) * 86400 + t.hour * 3600 + t.min * 60 + t.sec;
    return 0;
}
