/* A scoring request's body read into rows (input.h). */
#include "input.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cairn/msg.h"
#include "csv.h"
#include "jsonmp.h"

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

void ep_rows_free(ep_rows_t *r)
{
    free(r->v);
    *r = (ep_rows_t){0};
}

/* One cell: a number, null (missing) or a boolean. */
static int s_cell(const json_t *v, size_t row, const char *col, float *out,
                  cairn_err_t *err)
{
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if (fabs(d) > 3.4028234663852886e38)
            return s_bad(err, "row %zu, column %s: %g is beyond float32's range", row,
                         col, d);
        *out = (float)d;
    } else if (json_is_null(v)) {
        *out = NAN;
    } else if (json_is_boolean(v)) {
        *out = json_is_true(v) ? 1.0f : 0.0f;
    } else {
        return s_bad(err, "row %zu, column %s: a number, null or a boolean, not %s",
                     row, col,
                     json_is_string(v) ? "a string" : "an array or an object");
    }
    return 0;
}

/* Where each of the model's features is among cols (a JSON array of
 * names, or NULL): map[k] = the column of feature k. */
static int s_map(const json_t *cols, const ep_features_t *f, size_t *map, size_t *width,
                 cairn_err_t *err)
{
    if (!cols) {
        for (size_t k = 0; k < f->n; k++) map[k] = k;
        *width = f->n;
        return 0;
    }
    if (!json_is_array(cols)) return s_bad(err, "columns must be an array of names");
    size_t n = json_array_size(cols);
    *width = n;
    for (size_t c = 0; c < n; c++)
        if (!json_is_string(json_array_get(cols, c)))
            return s_bad(err, "columns[%zu] is not a name (a string)", c);
    if (!f->names) { /* a model without names: the columns by position */
        if (n != f->n)
            return s_bad(err, "%zu columns given; the model takes %zu features", n,
                         f->n);
        for (size_t k = 0; k < f->n; k++) map[k] = k;
        return 0;
    }
    for (size_t c = 0; c < n; c++) {
        const char *name = json_string_value(json_array_get(cols, c));
        size_t k = 0;
        while (k < f->n && strcmp(f->names[k], name)) k++;
        if (k == f->n)
            return s_bad(err, "column '%.100s' is not one of the model's features",
                         name);
    }
    for (size_t k = 0; k < f->n; k++) {
        size_t c = 0;
        while (c < n && strcmp(json_string_value(json_array_get(cols, c)), f->names[k]))
            c++;
        if (c == n) return s_bad(err, "column '%.100s' is missing", f->names[k]);
        map[k] = c;
    }
    return 0;
}

static int s_alloc(ep_rows_t *out, size_t nrows, size_t ncols, cairn_err_t *err)
{
    if (nrows == 0) return s_bad(err, "no rows to score");
    if (nrows > EP_ROWS_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "%zu rows; a request scores at most %d", nrows,
                             EP_ROWS_MAX);
    out->v = malloc(nrows * (ncols ? ncols : 1) * sizeof *out->v);
    if (!out->v) return cairn_err_oom(err, NULL);
    out->nrows = nrows;
    out->ncols = ncols;
    return 0;
}

/* data: an array of rows, each an array of width cells (by map). */
static int s_split(const json_t *data, const json_t *cols, const ep_features_t *f,
                   ep_rows_t *out, cairn_err_t *err)
{
    if (!json_is_array(data)) return s_bad(err, "data must be an array of rows");
    size_t *map = malloc((f->n ? f->n : 1) * sizeof *map), width = 0;
    if (!map) return cairn_err_oom(err, NULL);
    int rc = s_map(cols, f, map, &width, err);
    if (rc == 0) rc = s_alloc(out, json_array_size(data), f->n, err);
    for (size_t r = 0; rc == 0 && r < out->nrows; r++) {
        const json_t *row = json_array_get(data, r);
        if (!json_is_array(row)) {
            rc = s_bad(err, "row %zu is not an array of values", r);
        } else if (json_array_size(row) != width) {
            rc = s_bad(err, "row %zu has %zu values; %zu expected", r,
                       json_array_size(row), width);
        }
        for (size_t k = 0; rc == 0 && k < f->n; k++) {
            char col[128];
            if (f->names)
                snprintf(col, sizeof col, "'%.100s'", f->names[k]);
            else
                snprintf(col, sizeof col, "%zu", k);
            rc =
                s_cell(json_array_get(row, map[k]), r, col, &out->v[r * f->n + k], err);
        }
    }
    free(map);
    return rc;
}

/* records: an array of objects {name: value}. */
static int s_records(const json_t *recs, const ep_features_t *f, ep_rows_t *out,
                     cairn_err_t *err)
{
    if (!f->names)
        return s_bad(err,
                     "records name their columns, and the model has no feature "
                     "names: send rows of values in order");
    int rc = s_alloc(out, json_array_size(recs), f->n, err);
    for (size_t r = 0; rc == 0 && r < out->nrows; r++) {
        const json_t *rec = json_array_get(recs, r);
        if (!json_is_object(rec)) return s_bad(err, "record %zu is not an object", r);
        const char *key;
        const json_t *val;
        json_object_foreach((json_t *)rec, key, val)
        {
            size_t k = 0;
            while (k < f->n && strcmp(f->names[k], key)) k++;
            if (k == f->n)
                return s_bad(err,
                             "record %zu: column '%.100s' is not one of the model's "
                             "features",
                             r, key);
        }
        for (size_t k = 0; rc == 0 && k < f->n; k++) {
            const json_t *v = json_object_get(rec, f->names[k]);
            char col[128];
            snprintf(col, sizeof col, "'%.100s'", f->names[k]);
            if (!v) return s_bad(err, "record %zu: column %s is missing", r, col);
            rc = s_cell(v, r, col, &out->v[r * f->n + k], err);
        }
    }
    return rc;
}

/* inputs as {name: [values]}: by column. */
static int s_columns(const json_t *obj, const ep_features_t *f, ep_rows_t *out,
                     cairn_err_t *err)
{
    if (!f->names)
        return s_bad(err, "inputs by column name need a model with feature names");
    const json_t *first = f->n ? json_object_get(obj, f->names[0]) : NULL;
    if (!json_is_array(first))
        return s_bad(err, "inputs: column '%.100s' is missing or not an array",
                     f->n ? f->names[0] : "");
    size_t n = json_array_size(first);
    int rc = s_alloc(out, n, f->n, err);
    for (size_t k = 0; rc == 0 && k < f->n; k++) {
        const json_t *col = json_object_get(obj, f->names[k]);
        char name[128];
        snprintf(name, sizeof name, "'%.100s'", f->names[k]);
        if (!json_is_array(col) || json_array_size(col) != n)
            return s_bad(err, "inputs: column %s is missing or not %zu values long",
                         name, n);
        for (size_t r = 0; rc == 0 && r < n; r++)
            rc = s_cell(json_array_get(col, r), r, name, &out->v[r * f->n + k], err);
    }
    return rc;
}

/* instances / inputs: rows of values, or records. */
static int s_rows(const json_t *v, const ep_features_t *f, ep_rows_t *out,
                  cairn_err_t *err)
{
    if (json_is_object(v)) return s_columns(v, f, out, err);
    if (!json_is_array(v)) return s_bad(err, "instances must be an array of rows");
    if (json_array_size(v) && json_is_object(json_array_get(v, 0)))
        return s_records(v, f, out, err);
    return s_split(v, NULL, f, out, err);
}

static int s_dispatch(const json_t *root, const ep_features_t *f, ep_rows_t *out,
                      cairn_err_t *err)
{
    const json_t *v;
    if ((v = json_object_get(root, "input_data")) ||
        (v = json_object_get(root, "dataframe_split"))) {
        if (!json_is_object(v))
            return s_bad(err, "input_data must be an object {columns, index, data}");
        return s_split(json_object_get(v, "data"), json_object_get(v, "columns"), f,
                       out, err);
    }
    if ((v = json_object_get(root, "dataframe_records"))) {
        if (!json_is_array(v)) return s_bad(err, "dataframe_records must be an array");
        return s_records(v, f, out, err);
    }
    if ((v = json_object_get(root, "instances")) ||
        (v = json_object_get(root, "inputs")))
        return s_rows(v, f, out, err);
    return s_bad(err,
                 "the body has none of input_data, dataframe_split, "
                 "dataframe_records, instances or inputs");
}

int ep_input_read(const char *body, size_t len, const ep_features_t *f, ep_rows_t *out,
                  cairn_err_t *err)
{
    *out = (ep_rows_t){0};
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return s_bad(err, "the body is not JSON: %s (line %d, column %d)", je.text,
                     je.line, je.column);
    int rc = json_is_object(root) ? s_dispatch(root, f, out, err)
                                  : s_bad(err, "the body must be a JSON object");
    json_decref(root);
    if (rc != 0) ep_rows_free(out);
    return rc;
}

/* ---- application/msgpack -------------------------------------------------- */

int ep_input_read_msgpack(const void *body, size_t len, const ep_features_t *f,
                          ep_rows_t *out, cairn_err_t *err)
{
    *out = (ep_rows_t){0};
    /* checked before msgpack-c allocates: a few bytes may declare billions */
    if (cairn_msgpack_check(body, len, err) != 0) {
        char why[CAIRN_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        return s_bad(err, "the body is not msgpack: %s", why);
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    json_t *root = NULL;
    if (msgpack_unpack_next(&u, body, len, NULL) == MSGPACK_UNPACK_SUCCESS)
        root = cairn_json_from_msgpack(&u.data);
    msgpack_unpacked_destroy(&u);
    if (!root) return s_bad(err, "the body is not a msgpack map of a scoring request");
    int rc = json_is_object(root) ? s_dispatch(root, f, out, err)
                                  : s_bad(err, "the body must be a msgpack map");
    json_decref(root);
    if (rc != 0) ep_rows_free(out);
    return rc;
}

/* ---- text/csv ----------------------------------------------------------------- */

typedef struct csv_rows {
    const ep_features_t *f;
    size_t *map; /* feature k -> column; NULL until the first record */
    size_t width, cap;
    ep_rows_t *out;
    bool header_seen;
} csv_rows_t;

/* Whether record f (n fields) names the model's features: a header. */
static bool s_is_header(const csv_rows_t *c, const cairn_csv_field_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cairn_csv_type_t t;
        if (f[i].len && cairn_csv_cell_type(f[i].ptr, f[i].len, &t) &&
            t != CAIRN_CSV_STRING)
            return false;
    }
    return n > 0 && (c->f->names || n == c->f->n);
}

static int s_csv_header(csv_rows_t *c, const cairn_csv_field_t *f, size_t n,
                        cairn_err_t *err)
{
    c->width = n;
    for (size_t k = 0; k < c->f->n; k++) {
        size_t i = c->f->names ? 0 : k;
        while (c->f->names && i < n && strcmp(f[i].ptr, c->f->names[k])) i++;
        if (i >= n)
            return s_bad(err, "column '%.100s' is missing from the CSV header",
                         c->f->names ? c->f->names[k] : "?");
        c->map[k] = i;
    }
    for (size_t i = 0; c->f->names && i < n; i++) {
        size_t k = 0;
        while (k < c->f->n && strcmp(f[i].ptr, c->f->names[k])) k++;
        if (k == c->f->n)
            return s_bad(err, "column '%.100s' is not one of the model's features",
                         f[i].ptr);
    }
    return 0;
}

static int s_csv_row(void *arg, uint64_t line, const cairn_csv_field_t *f, size_t n,
                     cairn_err_t *err)
{
    csv_rows_t *c = arg;
    if (!c->header_seen) {
        c->header_seen = true;
        if (s_is_header(c, f, n)) return s_csv_header(c, f, n, err);
        if (n != c->f->n)
            return s_bad(err, "line %llu has %zu values; the model takes %zu",
                         (unsigned long long)line, n, c->f->n);
        c->width = n;
        for (size_t k = 0; k < c->f->n; k++) c->map[k] = k;
    }
    ep_rows_t *o = c->out;
    if (o->nrows == EP_ROWS_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "more than %d rows; a request scores at most that many",
                             EP_ROWS_MAX);
    if (o->nrows == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        float *v = realloc(o->v, cap * (c->f->n ? c->f->n : 1) * sizeof *v);
        if (!v) return cairn_err_oom(err, NULL);
        o->v = v;
        c->cap = cap;
    }
    for (size_t k = 0; k < c->f->n; k++) {
        const cairn_csv_field_t *x = &f[c->map[k]];
        float *cell = &o->v[o->nrows * c->f->n + k];
        char *end;
        if (x->len == 0) {
            *cell = NAN;
            continue;
        }
        double d = strtod(x->ptr, &end);
        if (end != x->ptr + x->len || !isfinite(d) || fabs(d) > 3.4028234663852886e38)
            return s_bad(err, "line %llu, column %zu: '%.40s' is not a number",
                         (unsigned long long)line, c->map[k] + 1, x->ptr);
        *cell = (float)d;
    }
    o->nrows++;
    return 0;
}

int ep_input_read_csv(const char *body, size_t len, const ep_features_t *f,
                      ep_rows_t *out, cairn_err_t *err)
{
    *out = (ep_rows_t){.ncols = f->n};
    csv_rows_t c = {.f = f, .out = out};
    if (!(c.map = calloc(f->n ? f->n : 1, sizeof *c.map)))
        return cairn_err_oom(err, NULL);
    cairn_csv_t *r = cairn_csv_new(',', s_csv_row, &c, err);
    int rc = r ? 0 : -1;
    if (rc == 0) rc = cairn_csv_feed(r, body, len, err);
    if (rc == 0) rc = cairn_csv_finish(r, err);
    cairn_csv_destroy(&r);
    free(c.map);
    if (rc == 0 && out->nrows == 0) rc = s_bad(err, "no rows to score");
    if (rc != 0) ep_rows_free(out);
    return rc;
}
