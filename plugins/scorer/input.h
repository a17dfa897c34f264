/* plugins/scorer/input.h — a scoring request's body read into rows of
 * float32 for a model (docs/ENDPOINTS.md). Pure: no I/O (fuzz_scorer_input
 * feeds it).
 *
 * JSON in any of the shapes Azure ML and MLflow clients send:
 *   {"input_data": {"columns": [...], "index": [...], "data": [[...], ...]}}
 *   {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
 *   {"dataframe_records": [{"col": v, ...}, ...]}
 *   {"instances": [[...], ...]} or [{"col": v}, ...]
 *   {"inputs": [[...], ...]} or {"col": [v, ...], ...} (by column)
 * A cell is a number, null (missing) or a boolean (1 or 0). With column
 * names, each of the model's features is found by name (a missing one, or
 * a name the model lacks, is refused); without, a row's values are the
 * features in order and its width must be the model's. Every refusal is a
 * 400 with a sentence naming the row, the column or the shape. CSV too
 * (ep_input_read_csv). */
#ifndef CAIRN_SCORER_INPUT_H
#define CAIRN_SCORER_INPUT_H

#include <stddef.h>

#include "cairn/err.h"

#define EP_ROWS_MAX 100000 /* rows a request may score */

typedef struct ep_rows {
    float *v; /* nrows x ncols, row-major; NaN: missing */
    size_t nrows, ncols;
} ep_rows_t;

/* The features a model takes: how many, and their names (NULL when it has
 * none). */
typedef struct ep_features {
    size_t n;
    const char *const *names;
} ep_features_t;

/* Read body (len bytes of JSON) into out (free with ep_rows_free); 0, or
 * -1 with a 400 (413 past EP_ROWS_MAX rows). */
int ep_input_read(const char *body, size_t len, const ep_features_t *f, ep_rows_t *out,
                  cairn_err_t *err);
/* The same from CSV text (text/csv): a first line of the model's feature
 * names is a header (columns found by name, in any order), else every line
 * is a row of the features in order; an empty cell is missing. */
int ep_input_read_csv(const char *body, size_t len, const ep_features_t *f,
                      ep_rows_t *out, cairn_err_t *err);
/* The same from msgpack (application/msgpack): the JSON shapes as maps. */
int ep_input_read_msgpack(const void *body, size_t len, const ep_features_t *f,
                          ep_rows_t *out, cairn_err_t *err);
void ep_rows_free(ep_rows_t *r);

#endif
