/* loadgen_stats.c - histograms and counters of bench/loadgen.c.
 *
 * Design notes:
 * - The histogram is log-linear, like HdrHistogram with 2 significant
 *   digits: a value v (us) below 2 * LG_SUB is its own bucket; above, with
 *   msb the index of its highest set bit and shift = msb - LG_SUB_BITS, the
 *   bucket is 2*LG_SUB + (shift - 1) * LG_SUB + (v >> shift) - LG_SUB. A
 *   percentile reports the highest value its bucket holds, so it never
 *   understates.
 * - The series keeps one small histogram per time bucket (32-bit counts),
 *   allocated up front for the whole run: 34 KiB a bucket, so a few MiB for
 *   a few minutes in 1 s buckets.
 */
#include "loadgen_stats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LG_SUB_BITS 8
#define LG_SUB      (1u << LG_SUB_BITS)
#define LG_MSB_MAX  40 /* 2^40 us is 12 days: larger values are clamped */
#define LG_BUCKETS  (2 * LG_SUB + (LG_MSB_MAX - LG_SUB_BITS) * LG_SUB)

static const char *const err_name[LG_ERR_MAX] = {"connect", "timeout", "io",
                                                 "status",  "parse",   "dropped"};

struct lg_sec {
    uint32_t scheduled, ok, errors;
    uint32_t node[LG_NODES_MAX];
    uint32_t hist[LG_BUCKETS];
};

struct lg_stats {
    unsigned nbuckets, warmup_s;
    uint64_t bucket_ns;
    unsigned nnodes;
    char names[LG_NODES_MAX][LG_NAME_MAX + 1];
    uint64_t other_nodes; /* responses naming a node past LG_NODES_MAX */
    uint64_t scheduled, ok, errors, bytes, lat_sum_us;
    uint64_t err[LG_ERR_MAX];
    uint64_t node[LG_NODES_MAX];
    uint64_t hist[LG_BUCKETS];
    uint64_t late[LG_BUCKETS]; /* the generator's start lateness, whole run */
    uint64_t late_n;
    struct lg_sec *sec; /* nbuckets entries */
    FILE *trace;        /* lg_stats_trace(), or NULL */
};

static void *lg_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        abort();
    }
    return p;
}

struct lg_stats *lg_stats_new(uint64_t run_ns, unsigned bucket_ms, unsigned warmup_s)
{
    struct lg_stats *st = lg_calloc(1, sizeof(*st));

    st->bucket_ns = (uint64_t)(bucket_ms > 0 ? bucket_ms : 1000) * 1000000u;
    st->nbuckets = (unsigned)((run_ns + st->bucket_ns - 1) / st->bucket_ns);
    if (st->nbuckets == 0)
        st->nbuckets = 1;
    st->warmup_s = warmup_s;
    st->sec = lg_calloc(st->nbuckets, sizeof(*st->sec));
    return st;
}

void lg_stats_free(struct lg_stats *st)
{
    if (st == NULL)
        return;
    free(st->sec);
    free(st);
}

static unsigned bucket_of(uint64_t us)
{
    unsigned msb, shift;

    if (us < 2 * LG_SUB)
        return (unsigned)us;
    msb = 63u - (unsigned)__builtin_clzll(us);
    if (msb >= LG_MSB_MAX)
        return LG_BUCKETS - 1;
    shift = msb - LG_SUB_BITS;
    return 2 * LG_SUB + (shift - 1) * LG_SUB + (unsigned)(us >> shift) - LG_SUB;
}

/* The highest value bucket b holds. */
static uint64_t bucket_top(unsigned b)
{
    unsigned shift;
    uint64_t base;

    if (b < 2 * LG_SUB)
        return b;
    shift = (b - 2 * LG_SUB) / LG_SUB + 1;
    base = (uint64_t)((b - 2 * LG_SUB) % LG_SUB + LG_SUB) << shift;
    return base + ((uint64_t)1 << shift) - 1;
}

/* The value at quantile q of a histogram of n values (0 when empty). */
static uint64_t hist_quantile64(const uint64_t *h, uint64_t n, double q)
{
    uint64_t want = (uint64_t)((double)n * q + 0.999999), seen = 0;

    if (n == 0)
        return 0;
    if (want < 1)
        want = 1;
    for (unsigned b = 0; b < LG_BUCKETS; b++) {
        seen += h[b];
        if (seen >= want)
            return bucket_top(b);
    }
    return bucket_top(LG_BUCKETS - 1);
}

static uint64_t hist_quantile32(const uint32_t *h, uint64_t n, double q)
{
    uint64_t want = (uint64_t)((double)n * q + 0.999999), seen = 0;

    if (n == 0)
        return 0;
    if (want < 1)
        want = 1;
    for (unsigned b = 0; b < LG_BUCKETS; b++) {
        seen += h[b];
        if (seen >= want)
            return bucket_top(b);
    }
    return bucket_top(LG_BUCKETS - 1);
}

/* Index of node name, added when new; -1 for none or past the table. */
static int node_index(struct lg_stats *st, const char *name)
{
    unsigned i;

    if (name == NULL || *name == '\0')
        return -1;
    for (i = 0; i < st->nnodes; i++)
        if (strcmp(st->names[i], name) == 0)
            return (int)i;
    if (st->nnodes == LG_NODES_MAX) {
        st->other_nodes++;
        return -1;
    }
    snprintf(st->names[i], sizeof(st->names[i]), "%s", name);
    st->nnodes++;
    return (int)i;
}

static struct lg_sec *sec_of(struct lg_stats *st, uint64_t sched_rel_ns)
{
    uint64_t s = sched_rel_ns / st->bucket_ns;

    return s < st->nbuckets ? &st->sec[s] : NULL;
}

static bool measured(const struct lg_stats *st, uint64_t sched_rel_ns)
{
    return sched_rel_ns >= (uint64_t)st->warmup_s * 1000000000u;
}

void lg_stats_started(struct lg_stats *st, uint64_t sched_rel_ns, uint64_t late_ns)
{
    struct lg_sec *s = sec_of(st, sched_rel_ns);

    if (s != NULL)
        s->scheduled++;
    st->late[bucket_of(late_ns / 1000)]++;
    st->late_n++;
    if (measured(st, sched_rel_ns))
        st->scheduled++;
}

void lg_stats_trace(struct lg_stats *st, FILE *f)
{
    st->trace = f;
}

/* One line of the trace; lat_ns UINT64_MAX: none (a failed request). */
static void trace_line(const struct lg_stats *st, uint64_t sched_rel_ns, uint64_t lat_ns,
                       const char *node, const char *what)
{
    if (st->trace == NULL)
        return;
    fprintf(st->trace, "%.6f\t", (double)sched_rel_ns / 1e9);
    if (lat_ns == UINT64_MAX)
        fputs("-", st->trace);
    else
        fprintf(st->trace, "%" PRIu64, lat_ns / 1000);
    fprintf(st->trace, "\t%s\t%s\n", node != NULL && node[0] != '\0' ? node : "-", what);
}

void lg_stats_ok(struct lg_stats *st, uint64_t sched_rel_ns, uint64_t lat_ns, const char *node,
                 uint64_t bytes)
{
    struct lg_sec *s = sec_of(st, sched_rel_ns);
    int n = node_index(st, node);
    unsigned b = bucket_of(lat_ns / 1000);

    if (s != NULL) {
        s->ok++;
        s->hist[b]++;
        if (n >= 0)
            s->node[n]++;
    }
    if (!measured(st, sched_rel_ns))
        return;
    st->ok++;
    st->hist[b]++;
    st->lat_sum_us += lat_ns / 1000;
    st->bytes += bytes;
    if (n >= 0)
        st->node[n]++;
    trace_line(st, sched_rel_ns, lat_ns, node, "ok");
}

void lg_stats_err(struct lg_stats *st, uint64_t sched_rel_ns, enum lg_err e, const char *node)
{
    struct lg_sec *s = sec_of(st, sched_rel_ns);
    int n = node_index(st, node);

    if (s != NULL) {
        s->errors++;
        if (n >= 0)
            s->node[n]++;
    }
    if (!measured(st, sched_rel_ns))
        return;
    st->errors++;
    st->err[e]++;
    if (n >= 0)
        st->node[n]++;
    trace_line(st, sched_rel_ns, UINT64_MAX, node, err_name[e]);
}

void lg_stats_report(const struct lg_stats *st, FILE *out, double measured_s)
{
    uint64_t answered = st->ok + st->err[LG_ERR_STATUS];
    unsigned i;

    fprintf(out, "measured_s=%.3f\nscheduled=%" PRIu64 "\nok=%" PRIu64 "\nerrors=%" PRIu64 "\n",
            measured_s, st->scheduled, st->ok, st->errors);
    for (i = 0; i < LG_ERR_MAX; i++)
        fprintf(out, "err_%s=%" PRIu64 "\n", err_name[i], st->err[i]);
    fprintf(out, "offered_rps=%.1f\nthroughput_rps=%.1f\nbytes=%" PRIu64 "\n",
            measured_s > 0 ? (double)st->scheduled / measured_s : 0.0,
            measured_s > 0 ? (double)st->ok / measured_s : 0.0, st->bytes);
    fprintf(out, "lat_mean_us=%.1f\n", st->ok ? (double)st->lat_sum_us / (double)st->ok : 0.0);
    fprintf(out, "lat_p50_us=%" PRIu64 "\nlat_p90_us=%" PRIu64 "\nlat_p99_us=%" PRIu64 "\n",
            hist_quantile64(st->hist, st->ok, 0.50), hist_quantile64(st->hist, st->ok, 0.90),
            hist_quantile64(st->hist, st->ok, 0.99));
    fprintf(out, "lat_p999_us=%" PRIu64 "\nlat_max_us=%" PRIu64 "\n",
            hist_quantile64(st->hist, st->ok, 0.999), hist_quantile64(st->hist, st->ok, 1.0));
    fprintf(out, "late_p50_us=%" PRIu64 "\nlate_p99_us=%" PRIu64 "\nlate_max_us=%" PRIu64 "\n",
            hist_quantile64(st->late, st->late_n, 0.50),
            hist_quantile64(st->late, st->late_n, 0.99),
            hist_quantile64(st->late, st->late_n, 1.0));
    fprintf(out, "nodes_other=%" PRIu64 "\n", st->other_nodes);
    for (i = 0; i < st->nnodes; i++)
        fprintf(out, "node %s %" PRIu64 " %.4f\n", st->names[i], st->node[i],
                answered ? (double)st->node[i] / (double)answered : 0.0);
}

int lg_stats_write_series(const struct lg_stats *st, const char *path)
{
    FILE *f = fopen(path, "w");
    unsigned s, i;
    int rc = 0;

    if (f == NULL)
        return -errno;
    fprintf(f, "t_s\tscheduled\tok\terrors\tp50_us\tp99_us");
    for (i = 0; i < st->nnodes; i++)
        fprintf(f, "\t%s", st->names[i]);
    fputc('\n', f);
    for (s = 0; s < st->nbuckets; s++) {
        const struct lg_sec *x = &st->sec[s];

        fprintf(f, "%.3f\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu64 "\t%" PRIu64,
                (double)s * (double)st->bucket_ns / 1e9, x->scheduled, x->ok, x->errors,
                hist_quantile32(x->hist, x->ok, 0.50), hist_quantile32(x->hist, x->ok, 0.99));
        for (i = 0; i < st->nnodes; i++)
            fprintf(f, "\t%" PRIu32, x->node[i]);
        fputc('\n', f);
    }
    if (ferror(f))
        rc = -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
