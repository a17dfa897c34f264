/* plugins/trainer/table.h — a CSV file as a typed table for training.
 *
 * The file is read by the streaming reader of sdk/csv.h (its grammar and
 * limits, comma-delimited, line 1 a header naming every column), in one
 * pass that types each column as it goes: a column is numeric while its
 * cells are numbers (ints, floats, inf excepted) or bools (true/false in
 * any case: 1 and 0), and becomes categorical at its first other cell; a
 * column that turns categorical after numbers were stored is read again
 * in a second pass (at most one, for all such columns).
 *
 *   - numbers are parsed as strtod parses them, then cast to float (a fast
 *     path for plain decimals that is exact, strtod for the rest);
 *   - an empty cell is missing: NaN;
 *   - a categorical column is one-hot by default: one 0/1 feature per
 *     category ("col=value", categories in byte order), all NaN when the
 *     cell is empty; with `categorical` set it is one feature holding the
 *     category's index (XGBoost's feature type "c"), NaN when empty;
 *   - the target column: for classification its labels (ints, bools or
 *     strings) become 0..K-1 (K >= 2: numeric labels in numeric order,
 *     others in byte order); for regression it must be numbers. A target
 *     cell may not be empty.
 * Refusals are 400s with a sentence (the line, the column); the limits
 * (categories per column, classes, features) are 413s.
 *
 * A table is read-only once loaded and owns its memory. */
#ifndef CAIRN_TRAINER_TABLE_H
#define CAIRN_TRAINER_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"
#include "config.h"

#define TRAINER_CATEGORIES_MAX 1000 /* per categorical column (default) */
#define TRAINER_CLASSES_MAX 1000
#define TRAINER_FEATURES_MAX 65536
#define TRAINER_ROWS_MAX (UINT32_MAX - 1u)

typedef struct trainer_table trainer_table_t;

typedef struct trainer_table_opts {
    const char *target; /* the label column's name */
    trainer_task_t task;
    bool categorical;      /* XGBoost categoricals, else one-hot */
    size_t max_categories; /* per column; 0: TRAINER_CATEGORIES_MAX */
} trainer_table_opts_t;

/* Load a CSV file / the CSV in buf[0, len). NULL with err on failure. */
trainer_table_t *trainer_table_load(const char *path, const trainer_table_opts_t *o,
                                    cairn_err_t *err);
trainer_table_t *trainer_table_load_mem(const void *buf, size_t len,
                                        const trainer_table_opts_t *o,
                                        cairn_err_t *err);
void trainer_table_destroy(trainer_table_t **self_p);

size_t trainer_table_rows(const trainer_table_t *t);
/* How many times the file was read (1, or 2 after a late categorical). */
int trainer_table_passes(const trainer_table_t *t);

/* Features: the model's input columns, after one-hot expansion. Names
 * and types ('q' number, 'c' categorical) are borrowed. */
size_t trainer_table_features(const trainer_table_t *t);
const char *trainer_table_feature_name(const trainer_table_t *t, size_t j);
char trainer_table_feature_type(const trainer_table_t *t, size_t j);
const char *const *trainer_table_feature_names(const trainer_table_t *t);

/* Source columns (the CSV's, the target left out) for a model's signature:
 * name, type ("int", "float", "bool" or "string"), and for a string
 * column its categories in feature order. */
size_t trainer_table_columns(const trainer_table_t *t);
const char *trainer_table_column_name(const trainer_table_t *t, size_t i);
const char *trainer_table_column_type(const trainer_table_t *t, size_t i);
bool trainer_table_column_missing(const trainer_table_t *t, size_t i);
size_t trainer_table_column_categories(const trainer_table_t *t, size_t i);
const char *trainer_table_category(const trainer_table_t *t, size_t i, size_t k);

/* Classification: K classes and class k's label text (k in 0..K-1); 0 for
 * regression. */
size_t trainer_table_classes(const trainer_table_t *t);
const char *trainer_table_class(const trainer_table_t *t, size_t k);
/* Every row's label (class index or value), row order. */
const float *trainer_table_labels(const trainer_table_t *t);

/* Rows rows[0, n) (indices < rows) as a row-major n x features matrix into
 * x, and their labels into y (may be NULL). */
void trainer_table_gather(const trainer_table_t *t, const uint32_t *rows, size_t n,
                          float *x, float *y);

/* The cell text p (NUL-terminated, n bytes) as strtod reads it, or false
 * when it is not a number; exposed for the unit tests. */
bool trainer_parse_number(const char *p, size_t n, double *out);

#endif
