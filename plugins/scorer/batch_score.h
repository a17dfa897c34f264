/* plugins/scorer/batch_score.h — cairn-batch-score's parts: a batch
 * endpoint's job (docs/ENDPOINTS.md, "Batch endpoints").
 *
 *   batch_main.c  the command line, the input's files, the job's run
 *                 (progress and summary metrics), summary.json, the exit
 *   batch_run.c   the pipeline: one thread reads and cuts the CSV into
 *                 mini-batches (batch_csv.h), max_concurrency workers read
 *                 and score them, and the first thread writes their
 *                 predictions in input order
 *
 * Memory is bounded whatever the input's size: at most 2 x max_concurrency
 * mini-batches are held at once (their bytes and their predictions), and a
 * mini-batch is cut at BATCH_MB_BYTES_MAX bytes even when it has fewer
 * rows than asked. */
#ifndef CAIRN_SCORER_BATCH_SCORE_H
#define CAIRN_SCORER_BATCH_SCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "batch_csv.h"
#include "cairn/err.h"
#include "model.h"

#define BATCH_MB_ROWS_MAX 1000000       /* mini_batch_size at most */
#define BATCH_CONCURRENCY_MAX 64        /* max_concurrency at most */
#define BATCH_RETRIES_MAX 10            /* max_retries at most */
#define BATCH_MB_BYTES_MAX (256u << 20) /* a mini-batch's bytes at most */
#define BATCH_RECORD_MAX (64u << 20)    /* one record's bytes at most */
#define BATCH_FAILED_LISTED 1000        /* failures named in summary.json */
#define BATCH_PROGRESS_MS 1000          /* progress logged at most this often */

typedef struct batch_opts {
    const char *model;     /* the model's folder or file */
    const char *input;     /* a CSV file, or a folder of them */
    const char *out;       /* where predictions.csv and summary.json go */
    const char *model_ref; /* for the run's params (NULL: model) */
    const char *endpoint;  /* the batch endpoint's name, for a tag (NULL: none) */
    size_t mini_batch_size;
    int max_concurrency;
    long long error_threshold; /* failed mini-batches tolerated; -1: any */
    int max_retries;
} batch_opts_t;

/* One failed mini-batch, as summary.json lists it. */
typedef struct batch_failure {
    uint64_t index, first_row;
    size_t rows;
    int file;
    char why[CAIRN_ERR_MSG_MAX];
} batch_failure_t;

/* What a run did: counts for the metrics and summary.json. */
typedef struct batch_stats {
    uint64_t rows_scored, rows_failed, mini_batches, mini_batches_failed;
    batch_failure_t *failed; /* the first BATCH_FAILED_LISTED */
    size_t nfailed;
    bool stopped; /* more than error_threshold failed: the rest not read */
} batch_stats_t;

/* Called after each mini-batch is written, in order, on the reading
 * thread (progress for the job's run). */
typedef void(batch_progress_fn)(void *arg, const batch_stats_t *s);

typedef struct batch_input {
    char **files; /* absolute paths, in name order */
    char **names; /* their row-id prefixes ("" for a single file) */
    size_t n;
} batch_input_t;

/* Score every file of in with m into out_csv (open for writing; the
 * header written here). 0, or -1 with err for what stops the whole job (a
 * file that cannot be read, a header the model cannot take); failed
 * mini-batches are counted in *st, not errors. */
int batch_run(const batch_opts_t *o, const scorer_model_t *m, const batch_input_t *in,
              FILE *out_csv, batch_progress_fn *progress, void *arg, batch_stats_t *st,
              cairn_err_t *err);

#endif
