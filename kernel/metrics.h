/* kernel/metrics.h — request counters per service and verb, for sys.metrics
 * (docs/PROTOCOL.md, "The sys service").
 *
 * A service's metrics_t holds one row per verb name it has ever had (rows
 * are only appended, so a row's index stays valid for the life of the
 * service, across restarts and verb-table changes), row 0 being the verb ""
 * (requests to the service whose verb is not known to it). Counting is a
 * handful of integer adds on the broker's thread: no lock, no allocation.
 * Rows are added when a verb table becomes known (a READY), not while
 * counting. */
#ifndef KERNEL_METRICS_H
#define KERNEL_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Bucket bounds in microseconds: 0.1 ms ... 10 s, then +Inf. */
#define METRICS_NBOUNDS 16
#define METRICS_NBUCKETS (METRICS_NBOUNDS + 1)
#define METRICS_VERB_MAX 64

extern const uint64_t metrics_bounds_us[METRICS_NBOUNDS];

typedef struct metrics_row {
    char verb[METRICS_VERB_MAX + 1];
    uint64_t count_2xx, count_4xx, count_5xx, count_503, count_504;
    uint64_t count, sum_us;
    uint64_t bucket[METRICS_NBUCKETS]; /* per bucket, not cumulative */
} metrics_row_t;

typedef struct metrics {
    size_t nrows, cap;
    metrics_row_t *rows;
} metrics_t;

/* A table with its row 0 (the verb ""); NULL when out of memory. */
metrics_t *metrics_new(void);
void metrics_destroy(metrics_t **self_p);

/* The row of verb (len bytes), appended when it has none: its index, or 0
 * (the row "") when out of memory or the name is too long. */
uint32_t metrics_row(metrics_t *m, const char *verb, size_t len);

/* The bucket a latency falls in: the first whose bound is >= us
 * (Prometheus' le), METRICS_NBOUNDS for +Inf. */
static inline unsigned metrics_bucket(uint64_t us)
{
    unsigned i = 0;
    while (i < METRICS_NBOUNDS && us > metrics_bounds_us[i]) i++;
    return i;
}

/* Count one answered request: its status and its latency. */
static inline void metrics_count(metrics_t *m, uint32_t row, int st, uint64_t us)
{
    if (!m) return;
    metrics_row_t *r = &m->rows[row < m->nrows ? row : 0];
    if (st >= 200 && st < 300)
        r->count_2xx++;
    else if (st >= 400 && st < 500)
        r->count_4xx++;
    else if (st >= 500) {
        r->count_5xx++;
        r->count_503 += st == 503;
        r->count_504 += st == 504;
    }
    r->count++;
    r->sum_us += us;
    r->bucket[metrics_bucket(us)]++;
}

/* The row's buckets made cumulative, as Prometheus wants them: out[i] is
 * the count at or under bound i, out[METRICS_NBOUNDS] the count. */
void metrics_cumulative(const metrics_row_t *r, uint64_t out[METRICS_NBUCKETS]);

/* Monotonic microseconds. */
uint64_t metrics_now_us(void);

#endif
