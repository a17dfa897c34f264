/* kernel/metrics.c — request counters per service and verb (metrics.h). */
#define _POSIX_C_SOURCE 200809L
#include "metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const uint64_t metrics_bounds_us[METRICS_NBOUNDS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

metrics_t *metrics_new(void)
{
    metrics_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 8;
    if (!(m->rows = calloc(m->cap, sizeof *m->rows))) {
        free(m);
        return NULL;
    }
    m->nrows = 1; /* row 0: the verb "" */
    return m;
}

void metrics_destroy(metrics_t **self_p)
{
    if (!self_p || !*self_p) return;
    free((*self_p)->rows);
    free(*self_p);
    *self_p = NULL;
}

uint32_t metrics_row(metrics_t *m, const char *verb, size_t len)
{
    if (!m || len == 0 || len > METRICS_VERB_MAX) return 0;
    for (size_t i = 1; i < m->nrows; i++)
        if (strncmp(m->rows[i].verb, verb, len) == 0 && m->rows[i].verb[len] == '\0')
            return (uint32_t)i;
    if (m->nrows == m->cap) {
        metrics_row_t *rows = realloc(m->rows, m->cap * 2 * sizeof *rows);
        if (!rows) return 0;
        m->rows = rows;
        m->cap *= 2;
    }
    metrics_row_t *r = &m->rows[m->nrows];
    memset(r, 0, sizeof *r);
    memcpy(r->verb, verb, len);
    r->verb[len] = '\0';
    return (uint32_t)m->nrows++;
}

void metrics_cumulative(const metrics_row_t *r, uint64_t out[METRICS_NBUCKETS])
{
    uint64_t sum = 0;
    for (size_t i = 0; i < METRICS_NBUCKETS; i++) out[i] = sum += r->bucket[i];
}

uint64_t metrics_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
