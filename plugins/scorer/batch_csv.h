/* plugins/scorer/batch_csv.h — a batch scoring job's CSV cut into
 * mini-batches, and each mini-batch read into rows of float32 for a model
 * (docs/ENDPOINTS.md, "Batch endpoints"). Pure: no I/O (fuzz_batch_csv
 * feeds it).
 *
 * cairn-batch-score reads a file once, in order, on one thread, and only
 * cuts it there: batch_cut_scan finds where each record ends (a line end
 * outside quotes, as sdk/csv.h reads them) without reading a field. Each
 * mini-batch's bytes are then read by a worker of its own, with a CSV
 * reader of its own (batch_parse): a bad cell or a ragged row fails that
 * mini-batch only, and the costly part, the numbers, runs in parallel.
 *
 * Part of the static library cairn_scorer_batch; no ABI of its own. */
#ifndef CAIRN_SCORER_BATCH_CSV_H
#define CAIRN_SCORER_BATCH_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

/* Where a scan stands between two calls: inside a quoted field, whether the
 * line has begun, whether the last byte was a CR (a LF after it ends no
 * other record). Zero it for a new input. */
typedef struct batch_cut {
    bool quoted, content, cr;
} batch_cut_t;

/* Scan n bytes of p for record ends, stopping right after the want-th:
 * the bytes consumed (n when fewer end there); *got receives how many
 * records ended. An empty line is not a record (as sdk/csv.h skips it). */
size_t batch_cut_scan(batch_cut_t *c, const char *p, size_t n, size_t want,
                      size_t *got);
/* The end of the input: 1 when a last record lacks its line end, else 0. */
size_t batch_cut_finish(batch_cut_t *c);

/* The columns of a file, from its header, matched to a model's features. */
typedef struct batch_cols batch_cols_t;

/* Read the header (len bytes: the file's first record, a UTF-8 BOM
 * allowed) of file (named in sentences) for a model of nfeat features
 * named names (NULL: it has none; the file's columns are then its
 * features, in order, and must be as many). Columns the model does not
 * take (an id, a label) are passed over. NULL with a 400 naming the
 * column when a feature is missing or the first record is not a header. */
batch_cols_t *batch_cols_new(const char *p, size_t len, size_t nfeat,
                             const char *const *names, const char *file,
                             cairn_err_t *err);
void batch_cols_destroy(batch_cols_t **self_p);
size_t batch_cols_width(const batch_cols_t *c); /* columns of the file */

/* Read a mini-batch: len bytes of whole records (no header) into out,
 * rows x nfeat floats, row-major (NaN: an empty cell, a missing value).
 * *nrows receives the records read; more than rows is an error. Row
 * numbers in sentences count from first_row (the file's data rows from
 * 0). 0, or -1 with a 400 naming the row and the column (or when the
 * records are not the rows it was cut to). */
int batch_parse(const batch_cols_t *cols, const char *p, size_t len, size_t rows,
                uint64_t first_row, float *out, size_t *nrows, cairn_err_t *err);

#endif
