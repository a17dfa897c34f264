/* Unit tests of the request counters (kernel/metrics.c): the bucket a
 * latency falls in (Prometheus' le: at or under the bound), the cumulative
 * form, the status classes, and rows found by name, kept when the table
 * grows. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"
#include "unit.h"

TEST(bounds)
{
    /* 0.1, 0.25, 0.5, 1, 2.5, 5, 10, ... 10000 ms, strictly increasing. */
    CHECK_UEQ(metrics_bounds_us[0], 100);
    CHECK_UEQ(metrics_bounds_us[3], 1000);
    CHECK_UEQ(metrics_bounds_us[METRICS_NBOUNDS - 1], 10000000);
    for (size_t i = 1; i < METRICS_NBOUNDS; i++)
        CHECK(metrics_bounds_us[i] > metrics_bounds_us[i - 1]);
}

TEST(bucket_edges)
{
    CHECK_UEQ(metrics_bucket(0), 0);
    CHECK_UEQ(metrics_bucket(100), 0); /* le: a bound holds itself */
    CHECK_UEQ(metrics_bucket(101), 1);
    CHECK_UEQ(metrics_bucket(250), 1);
    CHECK_UEQ(metrics_bucket(251), 2);
    CHECK_UEQ(metrics_bucket(999), 3);
    CHECK_UEQ(metrics_bucket(1000), 3);
    CHECK_UEQ(metrics_bucket(10000000), METRICS_NBOUNDS - 1);
    CHECK_UEQ(metrics_bucket(10000001), METRICS_NBOUNDS); /* +Inf */
    CHECK_UEQ(metrics_bucket(UINT64_MAX), METRICS_NBOUNDS);
    for (size_t i = 0; i < METRICS_NBOUNDS; i++) {
        CHECK_UEQ(metrics_bucket(metrics_bounds_us[i]), i);
        CHECK_UEQ(metrics_bucket(metrics_bounds_us[i] + 1), i + 1);
    }
}

TEST(counts_and_cumulative)
{
    metrics_t *m = metrics_new();
    if (!CHECK(m)) return;
    uint32_t r = metrics_row(m, "echo", 4);
    CHECK_UEQ(r, 1);
    metrics_count(m, r, 200, 50);       /* bucket 0 */
    metrics_count(m, r, 201, 100);      /* bucket 0 */
    metrics_count(m, r, 400, 3000);     /* 5 ms: bucket 5 */
    metrics_count(m, r, 503, 3000);     /* bucket 5 */
    metrics_count(m, r, 504, 20000000); /* +Inf */
    metrics_count(m, r, 302, 1);        /* no class: only in count */
    const metrics_row_t *row = &m->rows[r];
    CHECK_UEQ(row->count_2xx, 2);
    CHECK_UEQ(row->count_4xx, 1);
    CHECK_UEQ(row->count_5xx, 2);
    CHECK_UEQ(row->count_503, 1);
    CHECK_UEQ(row->count_504, 1);
    CHECK_UEQ(row->count, 6);
    CHECK_UEQ(row->sum_us, 50 + 100 + 3000 + 3000 + 20000000 + 1);
    uint64_t cum[METRICS_NBUCKETS];
    metrics_cumulative(row, cum);
    CHECK_UEQ(cum[0], 3);
    for (size_t i = 1; i < 5; i++) CHECK_UEQ(cum[i], 3);
    for (size_t i = 5; i < METRICS_NBOUNDS; i++) CHECK_UEQ(cum[i], 5);
    CHECK_UEQ(cum[METRICS_NBOUNDS], row->count);
    /* Row 0 (the verb "") takes what names no row, and a NULL table nothing. */
    metrics_count(m, 999, 404, 10);
    CHECK_UEQ(m->rows[0].count_4xx, 1);
    metrics_count(NULL, 0, 200, 1);
    metrics_destroy(&m);
    CHECK(m == NULL);
}

TEST(rows_by_name)
{
    metrics_t *m = metrics_new();
    if (!CHECK(m)) return;
    CHECK_UEQ(m->nrows, 1);
    CHECK_STR(m->rows[0].verb, "");
    CHECK_UEQ(metrics_row(m, "", 0), 0);
    char name[METRICS_VERB_MAX + 2];
    memset(name, 'x', sizeof name);
    CHECK_UEQ(metrics_row(m, name, METRICS_VERB_MAX + 1), 0); /* too long */
    CHECK_UEQ(metrics_row(m, name, METRICS_VERB_MAX), 1);     /* the longest */
    /* Many rows: the table grows, indexes stay, a name finds its row. */
    for (int i = 0; i < 100; i++) {
        char v[16];
        int n = snprintf(v, sizeof v, "verb%d", i);
        CHECK_UEQ(metrics_row(m, v, (size_t)n), (uint32_t)i + 2);
        metrics_count(m, (uint32_t)i + 2, 200, (uint64_t)i);
    }
    CHECK_UEQ(metrics_row(m, "verb7", 5), 9);
    CHECK_UEQ(metrics_row(m, "verb", 4), 102); /* a prefix is another name */
    CHECK_UEQ(m->rows[9].count_2xx, 1);
    CHECK_UEQ(m->rows[9].sum_us, 7);
    metrics_destroy(&m);
}

int main(void)
{
    RUN(bounds);
    RUN(bucket_edges);
    RUN(counts_and_cumulative);
    RUN(rows_by_name);
    return unit_report();
}
