/* cairn-batch-score — a batch endpoint's job (docs/ENDPOINTS.md, "Batch
 * endpoints"; batch_score.h says how the parts fit).
 *
 *     cairn-batch-score --model PATH --input PATH --out DIR
 *         [--mini-batch-size N] [--max-concurrency N] [--error-threshold N]
 *         [--max-retries N] [--model-ref REF] [--endpoint NAME]
 *
 * The input is a CSV file or a folder of them (*.csv, in name order), each
 * with a header row; the model's features are found by name. DIR receives
 * predictions.csv (row_id, then the prediction or one column per class,
 * rows in input order, a failed mini-batch's rows left out) and
 * summary.json (the counts and each failed mini-batch with its sentence).
 * Inside a job ($CAIRN_RUN_ID set) the settings are logged as params,
 * progress as the metrics mini_batches_done and rows_done (step: the
 * mini-batches written) about once a second, and at the end rows_scored,
 * rows_failed, mini_batches, mini_batches_failed, seconds and
 * rows_per_second. Exit 0; 1 when more mini-batches failed than
 * error_threshold (the reason, naming them, also goes to
 * $CAIRN_JOB_REASON_FILE for the job's status) or the job cannot run at
 * all; 2 for a bad command line. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "batch_score.h"
#include "cairn/client.h"
#include "cairn/msg.h"
#include "cairn/tracking.h"

typedef struct job {
    batch_opts_t o;
    batch_input_t in;
    scorer_model_t *model;
    cairn_client_t *client; /* NULL: outside a job, or tracking gave up */
    cairn_batch_t *batch;
    uint64_t started_ms, logged_ms, logged_mb;
    char reason[CAIRN_ERR_MSG_MAX];
} job_t;

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-batch-score --model PATH --input PATH --out DIR\n"
            "         [--mini-batch-size N] [--max-concurrency N]\n"
            "         [--error-threshold N] [--max-retries N] [--model-ref REF]\n"
            "         [--endpoint NAME]\n"
            "  --input: a CSV file with a header, or a folder of *.csv files\n"
            "  --mini-batch-size: rows a mini-batch (default 10000)\n"
            "  --max-concurrency: mini-batches scored at once (default 4)\n"
            "  --error-threshold: failed mini-batches tolerated (-1: any)\n"
            "  --max-retries: tries again of a failed mini-batch (default 3)\n");
}

static bool s_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* One "--name value" option into o; false when it is not one or is bad. */
static bool s_opt(batch_opts_t *o, const char *name, const char *v)
{
    long long n;
    if (!strcmp(name, "--model")) return (o->model = v), true;
    if (!strcmp(name, "--input")) return (o->input = v), true;
    if (!strcmp(name, "--out")) return (o->out = v), true;
    if (!strcmp(name, "--model-ref")) return (o->model_ref = v), true;
    if (!strcmp(name, "--endpoint")) return (o->endpoint = v), true;
    if (!strcmp(name, "--mini-batch-size") && s_int(v, 1, BATCH_MB_ROWS_MAX, &n))
        return (o->mini_batch_size = (size_t)n), true;
    if (!strcmp(name, "--max-concurrency") && s_int(v, 1, BATCH_CONCURRENCY_MAX, &n))
        return (o->max_concurrency = (int)n), true;
    if (!strcmp(name, "--error-threshold") && s_int(v, -1, INT64_MAX, &n))
        return (o->error_threshold = n), true;
    if (!strcmp(name, "--max-retries") && s_int(v, 0, BATCH_RETRIES_MAX, &n))
        return (o->max_retries = (int)n), true;
    return false;
}

/* ---- the input's files ------------------------------------------------------------
 */

static int s_csv_name(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 4 && !strcasecmp(e->d_name + n - 4, ".csv");
}

static int s_add_file(batch_input_t *in, const char *path, const char *prefix,
                      cairn_err_t *err)
{
    if (!(in->files[in->n] = strdup(path)) || !(in->names[in->n] = strdup(prefix))) {
        free(in->files[in->n]);
        return cairn_err_oom(err, NULL);
    }
    in->n++;
    return 0;
}

static int s_folder(batch_input_t *in, const char *dir, cairn_err_t *err)
{
    struct dirent **v = NULL;
    int n = scandir(dir, &v, s_csv_name, alphasort);
    if (n < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "input: cannot list %s: %s", dir, strerror(errno));
    int rc = 0;
    in->files = calloc((size_t)n + 1, sizeof *in->files);
    in->names = calloc((size_t)n + 1, sizeof *in->names);
    if (!in->files || !in->names) rc = cairn_err_oom(err, NULL);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX], prefix[NAME_MAX + 2];
        snprintf(path, sizeof path, "%s/%s", dir, v[i]->d_name);
        snprintf(prefix, sizeof prefix, "%s:", v[i]->d_name);
        struct stat st;
        if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = s_add_file(in, path, prefix, err);
        free(v[i]);
    }
    free(v);
    if (rc == 0 && in->n == 0)
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "input: the folder %s holds no .csv file", dir);
    return rc;
}

static int s_input(batch_input_t *in, const char *path, cairn_err_t *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "input: %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return s_folder(in, path, err);
    in->files = calloc(1, sizeof *in->files);
    in->names = calloc(1, sizeof *in->names);
    if (!in->files || !in->names) return cairn_err_oom(err, NULL);
    return s_add_file(in, path, "", err);
}

static void s_input_free(batch_input_t *in)
{
    for (size_t i = 0; i < in->n; i++) {
        free(in->files[i]);
        free(in->names[i]);
    }
    free(in->files);
    free(in->names);
}

/* ---- the job's run ------------------------------------------------------------------
 */

/* Tracking is the job's report, not its work: a failure is told on stderr
 * and tracking stops; the scoring goes on. */
static void s_send(job_t *j)
{
    cairn_err_t err = {0};
    if (!j->client || cairn_batch_send(j->client, j->batch, &err) == 0) return;
    fprintf(stderr, "cairn-batch-score: the run is not updated any more: %s\n",
            err.msg);
    cairn_client_destroy(&j->client);
}

static void s_params(job_t *j)
{
    char v[32];
    cairn_batch_param(j->batch, "model", j->o.model_ref ? j->o.model_ref : j->o.model);
    cairn_batch_param(j->batch, "input", j->o.input);
    snprintf(v, sizeof v, "%zu", j->o.mini_batch_size);
    cairn_batch_param(j->batch, "mini_batch_size", v);
    snprintf(v, sizeof v, "%d", j->o.max_concurrency);
    cairn_batch_param(j->batch, "max_concurrency", v);
    snprintf(v, sizeof v, "%lld", j->o.error_threshold);
    cairn_batch_param(j->batch, "error_threshold", v);
    snprintf(v, sizeof v, "%d", j->o.max_retries);
    cairn_batch_param(j->batch, "max_retries", v);
    /* the batch endpoint and model the run is of, for search_runs */
    if (j->o.endpoint) cairn_batch_tag(j->batch, "cairn.batch_endpoint", j->o.endpoint);
    if (j->o.model_ref) cairn_batch_tag(j->batch, "cairn.model", j->o.model_ref);
    s_send(j);
}

static void s_progress_log(job_t *j, const batch_stats_t *s)
{
    int64_t step = (int64_t)s->mini_batches;
    cairn_batch_metric(j->batch, "mini_batches_done", (double)s->mini_batches, step, 0);
    cairn_batch_metric(j->batch, "rows_done", (double)(s->rows_scored + s->rows_failed),
                       step, 0);
    s_send(j);
    j->logged_ms = cairn_now_ms();
    j->logged_mb = s->mini_batches;
}

static void s_progress(void *arg, const batch_stats_t *s)
{
    job_t *j = arg;
    if (j->client && cairn_now_ms() - j->logged_ms >= BATCH_PROGRESS_MS)
        s_progress_log(j, s);
}

static void s_summary_metrics(job_t *j, const batch_stats_t *s, double secs)
{
    if (!j->client) return;
    if (j->logged_mb != s->mini_batches || !s->mini_batches) s_progress_log(j, s);
    static const char *const keys[] = {"rows_scored", "rows_failed", "mini_batches",
                                       "mini_batches_failed"};
    const uint64_t vals[] = {s->rows_scored, s->rows_failed, s->mini_batches,
                             s->mini_batches_failed};
    for (size_t i = 0; i < 4; i++)
        cairn_batch_metric(j->batch, keys[i], (double)vals[i], 0, 0);
    cairn_batch_metric(j->batch, "seconds", secs, 0, 0);
    cairn_batch_metric(j->batch, "rows_per_second",
                       secs > 0 ? (double)s->rows_scored / secs : 0, 0, 0);
    s_send(j);
}

/* ---- the end
 * ------------------------------------------------------------------------- */

/* Why the job fails: the count and the first failed mini-batches. */
static void s_reason(job_t *j, const batch_stats_t *s)
{
    size_t n =
        (size_t)snprintf(j->reason, sizeof j->reason,
                         "%llu mini-batch%s failed, more than error_threshold "
                         "%lld",
                         (unsigned long long)s->mini_batches_failed,
                         s->mini_batches_failed == 1 ? "" : "es", j->o.error_threshold);
    for (size_t i = 0; i < s->nfailed && n + 8 < sizeof j->reason; i++) {
        const batch_failure_t *f = &s->failed[i];
        n += (size_t)snprintf(j->reason + n, sizeof j->reason - n,
                              "%s mini-batch %llu (%srows %llu to %llu): %s",
                              i ? ";" : ":", (unsigned long long)f->index,
                              j->in.names[f->file], (unsigned long long)f->first_row,
                              (unsigned long long)(f->first_row + f->rows - 1), f->why);
    }
}

static json_t *s_failures(const job_t *j, const batch_stats_t *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->nfailed; i++) {
        const batch_failure_t *f = &s->failed[i];
        json_array_append_new(
            a, json_pack("{sI sI sI ss ss}", "mini_batch", (json_int_t)f->index,
                         "first_row", (json_int_t)f->first_row, "rows",
                         (json_int_t)f->rows, "file", j->in.files[f->file], "error",
                         f->why));
    }
    return a;
}

static int s_summary_file(const job_t *j, const batch_stats_t *s, double secs,
                          cairn_err_t *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/summary.json", j->o.out);
    json_t *doc = json_pack(
        "{ss ss sI si sI si sI sI sI sI sf sf sb ss so}", "model",
        j->o.model_ref ? j->o.model_ref : j->o.model, "input", j->o.input,
        "mini_batch_size", (json_int_t)j->o.mini_batch_size, "max_concurrency",
        j->o.max_concurrency, "error_threshold", (json_int_t)j->o.error_threshold,
        "max_retries", j->o.max_retries, "rows_scored", (json_int_t)s->rows_scored,
        "rows_failed", (json_int_t)s->rows_failed, "mini_batches",
        (json_int_t)s->mini_batches, "mini_batches_failed",
        (json_int_t)s->mini_batches_failed, "seconds", secs, "rows_per_second",
        secs > 0 ? (double)s->rows_scored / secs : 0.0, "stopped", s->stopped, "reason",
        j->reason, "failed_mini_batches", s_failures(j, s));
    int rc = doc && json_dump_file(doc, path, JSON_INDENT(2)) == 0
                 ? 0
                 : cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                                 "cannot write %s", path);
    json_decref(doc);
    return rc;
}

/* The reason also where the jobs plugin reads a failed job's reason. */
static void s_reason_file(const char *why)
{
    const char *path = getenv("CAIRN_JOB_REASON_FILE");
    FILE *f = path && *path ? fopen(path, "w") : NULL;
    if (!f) return;
    fputs(why, f);
    fclose(f);
}

/* ---- the job
 * ------------------------------------------------------------------------- */

static int s_open_run(job_t *j, cairn_err_t *err)
{
    const char *run = getenv("CAIRN_RUN_ID");
    if (!run || !*run) return 0;
    if (!(j->batch = cairn_batch_new(run)))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "CAIRN_RUN_ID is not a run id");
    if (!(j->client = cairn_client_new(NULL, NULL, err))) return -1;
    s_params(j);
    return 0;
}

static int s_score(job_t *j, FILE *out, batch_stats_t *st, cairn_err_t *err)
{
    j->started_ms = cairn_now_ms();
    int rc = batch_run(&j->o, j->model, &j->in, out, s_progress, j, st, err);
    if (fflush(out) != 0 && rc == 0)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                           "cannot write the predictions: %s", strerror(errno));
    double secs = (double)(cairn_now_ms() - j->started_ms) / 1000.0;
    if (rc == 0 && st->stopped) s_reason(j, st);
    if (rc != 0) snprintf(j->reason, sizeof j->reason, "%s", err->msg);
    s_summary_metrics(j, st, secs);
    cairn_err_t e2 = {0};
    if (s_summary_file(j, st, secs, &e2) != 0 && rc == 0) {
        *err = e2;
        rc = -1;
    }
    printf(
        "cairn-batch-score: %llu rows scored, %llu failed, in %llu mini-batches "
        "(%llu failed), %.3f s, %.0f rows/s\n",
        (unsigned long long)st->rows_scored, (unsigned long long)st->rows_failed,
        (unsigned long long)st->mini_batches,
        (unsigned long long)st->mini_batches_failed, secs,
        secs > 0 ? (double)st->rows_scored / secs : 0.0);
    return rc;
}

static int s_run(job_t *j, cairn_err_t *err)
{
    if (scorer_model_load(j->o.model, &j->model, err) != 0 ||
        s_input(&j->in, j->o.input, err) != 0)
        return -1;
    if (mkdir(j->o.out, 0755) != 0 && errno != EEXIST)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot make %s: %s", j->o.out, strerror(errno));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/predictions.csv", j->o.out);
    FILE *out = fopen(path, "w");
    if (!out)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot create %s: %s", path, strerror(errno));
    setvbuf(out, NULL, _IOFBF, 1u << 20);
    batch_stats_t st = {0};
    int rc = s_open_run(j, err);
    if (rc == 0) rc = s_score(j, out, &st, err);
    if (fclose(out) != 0 && rc == 0)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                           "cannot write %s: %s", path, strerror(errno));
    if (rc == 0 && st.stopped) {
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, "%s",
                           j->reason);
    }
    free(st.failed);
    return rc;
}

int main(int argc, char **argv)
{
    job_t j = {.o = {.mini_batch_size = 10000,
                     .max_concurrency = 4,
                     .error_threshold = -1,
                     .max_retries = 3}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            s_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc || !s_opt(&j.o, argv[i], argv[i + 1])) {
            fprintf(stderr, "cairn-batch-score: bad option %s\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
        i++;
    }
    if (!j.o.model || !j.o.input || !j.o.out) {
        s_usage(stderr);
        return 2;
    }
    cairn_err_t err = {0};
    int rc = s_run(&j, &err);
    if (rc != 0) {
        fprintf(stderr, "cairn-batch-score: %s\n", err.msg);
        s_reason_file(err.msg);
    }
    cairn_batch_destroy(&j.batch);
    cairn_client_destroy(&j.client);
    scorer_model_destroy(&j.model);
    s_input_free(&j.in);
    return rc == 0 ? 0 : 1;
}
