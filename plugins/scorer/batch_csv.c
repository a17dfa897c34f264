/* A batch job's CSV: cut into mini-batches, its header matched to the
 * model, each mini-batch read into floats (batch_csv.h). */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_csv.h"
#include "csv.h"

#define FLOAT_MAX 3.4028234663852886e38

static __attribute__((format(printf, 2, 3))) int s_bad(cairn_err_t *err,
                                                       const char *fmt, ...)
{
    char why[CAIRN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, "%s", why);
}

/* ---- cutting ------------------------------------------------------------------ */

/* One byte: true when it ends a record. */
static inline bool s_cut_byte(batch_cut_t *c, char ch)
{
    bool after_cr = c->cr;
    c->cr = false;
    if (c->quoted) {
        /* "" inside quotes closes and opens again: the state comes out right */
        if (ch == '"') c->quoted = false;
        return false;
    }
    if (ch == '\n' && after_cr) return false; /* the LF of a CRLF */
    if (ch == '\n' || ch == '\r') {
        bool ended = c->content;
        c->cr = ch == '\r';
        c->content = false;
        return ended;
    }
    if (ch == '"') c->quoted = true;
    c->content = true;
    return false;
}

size_t batch_cut_scan(batch_cut_t *c, const char *p, size_t n, size_t want, size_t *got)
{
    size_t i = 0, k = 0;
    while (i < n && k < want) {
        if (c->quoted || c->cr) {
            k += s_cut_byte(c, p[i++]);
            continue;
        }
        /* a line without a quote or a CR: memchr finds its end (the common
         * case, several times faster than a byte at a time) */
        const char *nl = memchr(p + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - (p + i)) : n - i;
        if (!memchr(p + i, '"', len) && !memchr(p + i, '\r', len)) {
            if (len) c->content = true;
            i += len;
            if (nl) k += s_cut_byte(c, p[i++]);
            continue;
        }
        for (size_t stop = nl ? i + len + 1 : n; i < stop && k < want;)
            k += s_cut_byte(c, p[i++]);
    }
    *got = k;
    return i;
}

size_t batch_cut_finish(batch_cut_t *c)
{
    size_t last = c->content ? 1 : 0;
    *c = (batch_cut_t){0};
    return last;
}

/* ---- the header ------------------------------------------------------------------ */

struct batch_cols {
    size_t width, nfeat;
    size_t *map;  /* feature k -> its column */
    char **names; /* the file's columns */
    char file[256];
};

void batch_cols_destroy(batch_cols_t **self_p)
{
    batch_cols_t *c = *self_p;
    if (!c) return;
    for (size_t i = 0; c->names && i < c->width; i++) free(c->names[i]);
    free(c->names);
    free(c->map);
    free(c);
    *self_p = NULL;
}

size_t batch_cols_width(const batch_cols_t *c)
{
    return c->width;
}

typedef struct header_read {
    batch_cols_t *c;
    bool seen;
} header_read_t;

static int s_header_row(void *arg, uint64_t line, const cairn_csv_field_t *f, size_t n,
                        cairn_err_t *err)
{
    (void)line;
    header_read_t *h = arg;
    batch_cols_t *c = h->c;
    if (h->seen) return s_bad(err, "%s: the header is more than one record", c->file);
    h->seen = true;
    if (!(c->names = calloc(n, sizeof *c->names))) return cairn_err_oom(err, NULL);
    c->width = n;
    for (size_t i = 0; i < n; i++) {
        cairn_csv_type_t t;
        if (!f[i].len ||
            (cairn_csv_cell_type(f[i].ptr, f[i].len, &t) && t != CAIRN_CSV_STRING))
            return s_bad(err,
                         "%s: its first line must be a header of column names; "
                         "column %zu is '%.40s'",
                         c->file, i + 1, f[i].ptr);
        if (!(c->names[i] = strdup(f[i].ptr))) return cairn_err_oom(err, NULL);
    }
    return 0;
}

/* Each feature's column: by name, or the columns in order when the model
 * names none. */
static int s_map(batch_cols_t *c, const char *const *names, cairn_err_t *err)
{
    if (!names && c->width != c->nfeat)
        return s_bad(err,
                     "%s has %zu columns; the model takes %zu features and names "
                     "none, so the columns must be exactly its features, in order",
                     c->file, c->width, c->nfeat);
    for (size_t k = 0; k < c->nfeat; k++) {
        size_t i = names ? 0 : k;
        while (names && i < c->width && strcmp(c->names[i], names[k])) i++;
        if (i == c->width)
            return s_bad(err, "%s: the model's feature '%.100s' is not a column of it",
                         c->file, names[k]);
        c->map[k] = i;
    }
    return 0;
}

batch_cols_t *batch_cols_new(const char *p, size_t len, size_t nfeat,
                             const char *const *names, const char *file,
                             cairn_err_t *err)
{
    batch_cols_t *c = calloc(1, sizeof *c);
    if (!c || !(c->map = calloc(nfeat ? nfeat : 1, sizeof *c->map))) {
        free(c);
        cairn_err_oom(err, NULL);
        return NULL;
    }
    c->nfeat = nfeat;
    snprintf(c->file, sizeof c->file, "%s", file);
    header_read_t h = {.c = c};
    cairn_csv_t *r = cairn_csv_new(',', s_header_row, &h, err);
    int rc = r ? 0 : -1;
    if (rc == 0) rc = cairn_csv_feed(r, p, len, err);
    if (rc == 0) rc = cairn_csv_finish(r, err);
    cairn_csv_destroy(&r);
    if (rc == 0 && !h.seen) rc = s_bad(err, "%s is empty: it has no header", file);
    if (rc == 0) rc = s_map(c, names, err);
    if (rc != 0) batch_cols_destroy(&c);
    return c;
}

/* ---- a mini-batch ------------------------------------------------------------------
 */

typedef struct rows_read {
    const batch_cols_t *c;
    float *out;
    size_t rows, n;
    uint64_t first;
} rows_read_t;

static const double s_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Digits at *p into *m (at most 19 kept; *sig counts the significant
 * ones, *drop those past the 19th); how many were read. */
static size_t s_digits(const char **p, const char *end, uint64_t *m, int *sig,
                       int *drop)
{
    const char *s = *p;
    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
        if (*m == 0 && **p == '0' && *sig == 0) continue; /* a leading zero */
        if (*sig < 19)
            *m = *m * 10 + (uint64_t)(**p - '0');
        else
            (*drop)++;
        (*sig)++;
    }
    return (size_t)(*p - s);
}

/* A plain decimal ([+-]digits[.digits][e[+-]digits]) of at most 15
 * significant digits whose power of ten is within 22: read exactly as
 * strtod rounds it, by one correctly rounded multiply or divide of two
 * exact doubles (Clinger's fast path), several times faster than strtod.
 * False for anything else, which strtod reads. */
static bool s_fast(const char *p, size_t n, double *out)
{
    const char *end = p + n;
    bool neg = p < end && *p == '-';
    if (p < end && (*p == '-' || *p == '+')) p++;
    uint64_t m = 0;
    int sig = 0, drop = 0, frac_sig = 0;
    size_t whole = s_digits(&p, end, &m, &sig, &drop), frac = 0;
    if (p < end && *p == '.') {
        p++;
        const char *f = p;
        frac = s_digits(&p, end, &m, &sig, &drop);
        /* fraction digits that count: all but leading zeros before any
         * significant one still scale the number */
        frac_sig = (int)(p - f);
    }
    if (!whole && !frac) return false;
    int e = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = p < end && *p == '-';
        if (p < end && (*p == '-' || *p == '+')) p++;
        if (p == end) return false;
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            if ((e = e * 10 + (*p - '0')) > 1000) return false;
        if (eneg) e = -e;
    }
    if (p != end || sig > 15 || drop) return false;
    e -= frac_sig;
    double d = (double)m;
    if (m == 0)
        d = 0;
    else if (e >= 0 && e <= 22)
        d *= s_pow10[e];
    else if (e < 0 && e >= -22)
        d /= s_pow10[-e];
    else
        return false;
    *out = neg ? -d : d;
    return true;
}

static int s_cell(const rows_read_t *r, const cairn_csv_field_t *x, size_t col,
                  float *cell, cairn_err_t *err)
{
    if (x->len == 0) {
        *cell = NAN;
        return 0;
    }
    double fast;
    if (s_fast(x->ptr, x->len, &fast)) {
        *cell = (float)fast;
        return 0;
    }
    char *end;
    double d = strtod(x->ptr, &end);
    /* NaN is a missing value, as pandas reads it; an infinity or a number
     * past float32 is not a feature value */
    if (end != x->ptr + x->len || (!isnan(d) && !(fabs(d) <= FLOAT_MAX)))
        return s_bad(err, "row %llu, column '%.60s': '%.40s' is not a number",
                     (unsigned long long)(r->first + r->n), r->c->names[col], x->ptr);
    *cell = (float)d;
    return 0;
}

static int s_row(void *arg, uint64_t line, const cairn_csv_field_t *f, size_t n,
                 cairn_err_t *err)
{
    (void)line;
    rows_read_t *r = arg;
    const batch_cols_t *c = r->c;
    if (n != c->width)
        return s_bad(err, "row %llu has %zu values; the header of %s has %zu",
                     (unsigned long long)(r->first + r->n), n, c->file, c->width);
    if (r->n == r->rows)
        return s_bad(err, "the mini-batch holds more than the %zu rows it was cut to",
                     r->rows);
    float *row = r->out + r->n * c->nfeat;
    for (size_t k = 0; k < c->nfeat; k++)
        if (s_cell(r, &f[c->map[k]], c->map[k], &row[k], err) != 0) return -1;
    r->n++;
    return 0;
}

int batch_parse(const batch_cols_t *cols, const char *p, size_t len, size_t rows,
                uint64_t first_row, float *out, size_t *nrows, cairn_err_t *err)
{
    rows_read_t r = {.c = cols, .out = out, .rows = rows, .first = first_row};
    cairn_csv_t *csv = cairn_csv_new(',', s_row, &r, err);
    int rc = csv ? 0 : -1;
    if (rc == 0) rc = cairn_csv_feed(csv, p, len, err);
    if (rc == 0) rc = cairn_csv_finish(csv, err);
    cairn_csv_destroy(&csv);
    *nrows = r.n;
    /* the cut and the reader disagree only on bytes no CSV holds (a BOM
     * at a mini-batch's start, which the reader skips) */
    if (rc == 0 && r.n != rows)
        rc = s_bad(err, "rows %llu to %llu: %zu records where %zu were cut",
                   (unsigned long long)first_row,
                   (unsigned long long)(first_row + rows - 1), r.n, rows);
    return rc;
}
