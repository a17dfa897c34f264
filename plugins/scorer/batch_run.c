/* cairn-batch-score's pipeline (batch_score.h): this thread reads each
 * file, cuts it into mini-batches and writes their predictions in input
 * order; max_concurrency workers read and score the mini-batches between.
 * The slots form a ring of 2 x max_concurrency: a mini-batch is read into
 * slot i % window only once slot i - window is written, so the reader
 * never runs further ahead than that. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch_score.h"

#define READ_CHUNK (1u << 20)

typedef enum { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE } slot_state_t;

typedef struct slot {
    slot_state_t state;
    uint64_t index, first_row;
    size_t rows;
    int file;
    char *bytes; /* its records, whole */
    size_t len;
    char *text; /* its predictions as CSV lines */
    size_t text_len;
    bool failed, skipped;
    char why[CAIRN_ERR_MSG_MAX];
} slot_t;

typedef struct pipeline {
    const batch_opts_t *o;
    const scorer_model_t *m;
    const batch_input_t *in;
    batch_cols_t **cols; /* each file's, made when the reader reaches it */
    char **id_open;      /* each file's row-id prefix, CSV-quoted as needed */
    bool *id_quoted;
    size_t nfeat, nout;
    FILE *out;
    batch_progress_fn *progress;
    void *arg;
    batch_stats_t *st;
    pthread_mutex_t lock;
    pthread_cond_t ready, done;
    slot_t *slots;
    size_t window;
    uint64_t next_read, next_score, next_write; /* mini-batch numbers */
    bool eof, stop;                             /* under lock */
} pipeline_t;

/* ---- the workers -------------------------------------------------------------- */

typedef struct worker {
    pipeline_t *p;
    pthread_t tid;
    float *rows, *preds;
    size_t rows_cap, preds_cap;
} worker_t;

static int s_grow(float **v, size_t *cap, size_t n, cairn_err_t *err)
{
    if (n <= *cap) return 0;
    float *nv = realloc(*v, n * sizeof *nv);
    if (!nv) return cairn_err_oom(err, "for a mini-batch");
    *v = nv;
    *cap = n;
    return 0;
}

/* The slot's predictions as lines "ROW_ID,P[,P...]". */
static int s_format(pipeline_t *p, slot_t *s, const float *preds, cairn_err_t *err)
{
    const char *open = p->id_open[s->file];
    bool quoted = p->id_quoted[s->file];
    size_t line_max = strlen(open) + 24 + p->nout * 18 + 2;
    char *t = malloc(s->rows * line_max + 1);
    if (!t) return cairn_err_oom(err, "for a mini-batch's predictions");
    size_t n = 0;
    for (size_t r = 0; r < s->rows; r++) {
        n += (size_t)snprintf(t + n, line_max, "%s%llu%s", open,
                              (unsigned long long)(s->first_row + r),
                              quoted ? "\"" : "");
        for (size_t k = 0; k < p->nout; k++)
            n += (size_t)snprintf(t + n, 18, ",%.9g", (double)preds[r * p->nout + k]);
        t[n++] = '\n';
    }
    s->text = t;
    s->text_len = n;
    return 0;
}

static int s_score_once(worker_t *w, slot_t *s, cairn_err_t *err)
{
    pipeline_t *p = w->p;
    size_t got = 0;
    if (s_grow(&w->rows, &w->rows_cap, s->rows * p->nfeat + 1, err) != 0 ||
        s_grow(&w->preds, &w->preds_cap, s->rows * p->nout + 1, err) != 0)
        return -1;
    if (batch_parse(p->cols[s->file], s->bytes, s->len, s->rows, s->first_row, w->rows,
                    &got, err) != 0)
        return -1;
    if (scorer_model_predict(p->m, w->rows, got, p->nfeat, w->preds, err) != 0)
        return -1;
    return s_format(p, s, w->preds, err);
}

/* Score s, again up to max_retries times when it fails: each attempt reads
 * its bytes afresh. */
static void s_score(worker_t *w, slot_t *s)
{
    int tries = 1 + w->p->o->max_retries;
    const char *file = w->p->in->names[s->file];
    for (int a = 1; a <= tries; a++) {
        cairn_err_t err = {0};
        if (s_score_once(w, s, &err) == 0) {
            s->failed = false;
            return;
        }
        snprintf(s->why, sizeof s->why, "%s", err.msg);
        fprintf(stderr,
                "cairn-batch-score: mini-batch %llu (%srows %llu to %llu), attempt %d "
                "of %d: %s\n",
                (unsigned long long)s->index, file, (unsigned long long)s->first_row,
                (unsigned long long)(s->first_row + s->rows - 1), a, tries, err.msg);
    }
    s->failed = true;
}

static void *s_worker(void *arg)
{
    worker_t *w = arg;
    pipeline_t *p = w->p;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->next_score < p->next_read) {
            slot_t *s = &p->slots[p->next_score++ % p->window];
            s->state = SLOT_BUSY;
            bool skip = p->stop;
            pthread_mutex_unlock(&p->lock);
            if (skip)
                s->skipped = true; /* the job stops: no use scoring it */
            else
                s_score(w, s);
            pthread_mutex_lock(&p->lock);
            s->state = SLOT_DONE;
            pthread_cond_broadcast(&p->done);
        } else if (p->eof) {
            break;
        } else {
            pthread_cond_wait(&p->ready, &p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- writing, in order ----------------------------------------------------------- */

static void s_note_failure(pipeline_t *p, const slot_t *s)
{
    batch_stats_t *st = p->st;
    st->mini_batches_failed++;
    st->rows_failed += s->rows;
    if (st->nfailed < BATCH_FAILED_LISTED)
        st->failed[st->nfailed++] = (batch_failure_t){.index = s->index,
                                                      .first_row = s->first_row,
                                                      .rows = s->rows,
                                                      .file = s->file};
    if (st->nfailed && st->failed[st->nfailed - 1].index == s->index)
        snprintf(st->failed[st->nfailed - 1].why, CAIRN_ERR_MSG_MAX, "%s", s->why);
    long long t = p->o->error_threshold;
    if (t >= 0 && st->mini_batches_failed > (uint64_t)t) st->stopped = true;
}

/* Wait for the oldest mini-batch in flight, write its predictions (or
 * count its failure) and free its slot. */
static int s_write_oldest(pipeline_t *p, cairn_err_t *err)
{
    slot_t *s = &p->slots[p->next_write % p->window];
    pthread_mutex_lock(&p->lock);
    while (s->state != SLOT_DONE) pthread_cond_wait(&p->done, &p->lock);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->lock);
    int rc = 0;
    if (!s->skipped && !stop) {
        p->st->mini_batches++;
        if (s->failed) {
            s_note_failure(p, s);
        } else if (fwrite(s->text, 1, s->text_len, p->out) != s->text_len) {
            rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                               "cannot write the predictions: %s", strerror(errno));
        } else {
            p->st->rows_scored += s->rows;
        }
        if (p->progress) p->progress(p->arg, p->st);
    }
    free(s->bytes);
    free(s->text);
    pthread_mutex_lock(&p->lock);
    *s = (slot_t){.state = SLOT_FREE};
    if (p->st->stopped || rc != 0) p->stop = true;
    pthread_mutex_unlock(&p->lock);
    p->next_write++;
    return rc;
}

/* Hand a mini-batch's bytes to the workers, once its slot is free: 0, 1
 * when the job stops (more than error_threshold failed), -1 on error. */
static int s_emit(pipeline_t *p, int file, const char *bytes, size_t len, size_t rows,
                  uint64_t first_row, cairn_err_t *err)
{
    while (p->next_read - p->next_write >= p->window)
        if (s_write_oldest(p, err) != 0) return -1;
    if (p->st->stopped) return 1;
    slot_t *s = &p->slots[p->next_read % p->window];
    char *copy = malloc(len + 1);
    if (!copy) return cairn_err_oom(err, "for a mini-batch");
    memcpy(copy, bytes, len);
    copy[len] = '\0';
    pthread_mutex_lock(&p->lock);
    *s = (slot_t){.state = SLOT_READY,
                  .index = p->next_read,
                  .first_row = first_row,
                  .rows = rows,
                  .file = file,
                  .bytes = copy,
                  .len = len};
    p->next_read++;
    pthread_cond_signal(&p->ready);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* ---- reading and cutting ------------------------------------------------------------
 */

typedef struct reader {
    const char *path;
    int fd;
    char *buf;
    size_t cap, have, start, pos; /* [start, have) not yet handed on */
    bool eof;
    batch_cut_t cut;
} reader_t;

/* Read more: what was handed on is dropped first, and the buffer grows
 * when the records not yet handed on fill it. */
static int s_fill(reader_t *r, cairn_err_t *err)
{
    if (r->start) {
        memmove(r->buf, r->buf + r->start, r->have - r->start);
        r->have -= r->start;
        r->pos -= r->start;
        r->start = 0;
    }
    if (r->cap - r->have < READ_CHUNK) {
        size_t cap = r->cap ? r->cap * 2 : 4 * READ_CHUNK;
        char *b = realloc(r->buf, cap);
        if (!b) return cairn_err_oom(err, "for the input");
        r->buf = b;
        r->cap = cap;
    }
    ssize_t n;
    do n = read(r->fd, r->buf + r->have, r->cap - r->have);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_FILE,
                             "cannot read %s: %s", r->path, strerror(errno));
    r->have += (size_t)n;
    r->eof = n == 0;
    return 0;
}

/* Cut the next records, up to want of them or BATCH_MB_BYTES_MAX bytes:
 * they are [r->start, end); *rows receives how many (0 at the end). */
static int s_cut(reader_t *r, size_t want, size_t *rows, size_t *end, cairn_err_t *err)
{
    size_t got = 0, last = r->start;
    while (got < want && last - r->start < BATCH_MB_BYTES_MAX) {
        size_t one;
        r->pos += batch_cut_scan(&r->cut, r->buf + r->pos, r->have - r->pos, 1, &one);
        if (one) {
            got++;
            last = r->pos;
        } else if (r->eof) {
            if (batch_cut_finish(&r->cut)) got++;
            last = r->pos;
            break;
        } else if (r->pos - last > BATCH_RECORD_MAX) {
            return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                                 "%s: a record longer than %u bytes (a quote left "
                                 "open?)",
                                 r->path, BATCH_RECORD_MAX);
        } else {
            size_t off = last - r->start;
            if (s_fill(r, err) != 0) return -1;
            last = r->start + off;
        }
    }
    *rows = got;
    *end = last;
    return 0;
}

/* The file's header, then its mini-batches: 0, 1 when the job stops. */
static int s_file(pipeline_t *p, int file, const char *const *feat, cairn_err_t *err)
{
    reader_t r = {.path = p->in->files[file]};
    if ((r.fd = open(r.path, O_RDONLY | O_CLOEXEC)) < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "cannot open %s: %s", r.path, strerror(errno));
    size_t rows, end;
    uint64_t first = 0;
    int rc = s_cut(&r, 1, &rows, &end, err);
    if (rc == 0 && !(p->cols[file] = batch_cols_new(r.buf + r.start, end - r.start,
                                                    p->nfeat, feat, r.path, err)))
        rc = -1;
    r.start = end;
    while (rc == 0) {
        if ((rc = s_cut(&r, p->o->mini_batch_size, &rows, &end, err)) != 0 || !rows)
            break;
        rc = s_emit(p, file, r.buf + r.start, end - r.start, rows, first, err);
        r.start = end;
        first += rows;
    }
    close(r.fd);
    free(r.buf);
    return rc;
}

/* ---- the whole run ------------------------------------------------------------------
 */

/* Each file's row-id prefix: "" for a lone file, else "NAME:" (quoted as
 * CSV wants when NAME holds a comma, a quote or a line end). */
static int s_ids(pipeline_t *p, cairn_err_t *err)
{
    for (size_t i = 0; i < p->in->n; i++) {
        const char *n = p->in->names[i];
        bool q = strpbrk(n, ",\"\r\n") != NULL;
        char *o = malloc(2 * strlen(n) + 4), *w = o;
        if (!o) return cairn_err_oom(err, NULL);
        if (q) *w++ = '"';
        for (; *n; n++) {
            if (*n == '"') *w++ = '"';
            *w++ = *n;
        }
        *w = '\0';
        p->id_open[i] = o;
        p->id_quoted[i] = q;
    }
    return 0;
}

static int s_header(pipeline_t *p, cairn_err_t *err)
{
    fputs("row_id", p->out);
    for (size_t k = 0; k < p->nout; k++)
        if (p->nout == 1)
            fputs(",prediction", p->out);
        else
            fprintf(p->out, ",prediction_%zu", k);
    if (fputc('\n', p->out) == EOF)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot write the predictions: %s", strerror(errno));
    return 0;
}

static void s_free(pipeline_t *p)
{
    for (size_t i = 0; i < p->in->n; i++) {
        if (p->cols) batch_cols_destroy(&p->cols[i]);
        if (p->id_open) free(p->id_open[i]);
    }
    free(p->cols);
    free(p->id_open);
    free(p->id_quoted);
    free(p->slots);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->done);
}

/* Every file in turn; then what is in flight is written (or dropped, when
 * the job stops) and the workers end. */
static int s_files(pipeline_t *p, const char *const *feat, cairn_err_t *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->in->n; i++) rc = s_file(p, (int)i, feat, err);
    pthread_mutex_lock(&p->lock);
    p->eof = true;
    if (rc < 0) p->stop = true;
    pthread_cond_broadcast(&p->ready);
    pthread_mutex_unlock(&p->lock);
    while (p->next_write < p->next_read) {
        cairn_err_t later = {0};
        if (s_write_oldest(p, rc < 0 ? &later : err) != 0 && rc >= 0) rc = -1;
    }
    return rc < 0 ? -1 : 0;
}

int batch_run(const batch_opts_t *o, const scorer_model_t *m, const batch_input_t *in,
              FILE *out_csv, batch_progress_fn *progress, void *arg, batch_stats_t *st,
              cairn_err_t *err)
{
    pipeline_t p = {.o = o,
                    .m = m,
                    .in = in,
                    .nfeat = scorer_model_features(m),
                    .nout = scorer_model_outputs(m),
                    .out = out_csv,
                    .progress = progress,
                    .arg = arg,
                    .st = st,
                    .window = 2 * (size_t)o->max_concurrency};
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.ready, NULL);
    pthread_cond_init(&p.done, NULL);
    const char **feat = calloc(p.nfeat + 1, sizeof *feat);
    worker_t *w = calloc((size_t)o->max_concurrency, sizeof *w);
    p.cols = calloc(in->n, sizeof *p.cols);
    p.id_open = calloc(in->n, sizeof *p.id_open);
    p.id_quoted = calloc(in->n, sizeof *p.id_quoted);
    p.slots = calloc(p.window, sizeof *p.slots);
    st->failed = calloc(BATCH_FAILED_LISTED, sizeof *st->failed);
    int rc = feat && w && p.cols && p.id_open && p.id_quoted && p.slots && st->failed
                 ? 0
                 : cairn_err_oom(err, NULL);
    for (size_t k = 0; rc == 0 && k < p.nfeat; k++)
        feat[k] = scorer_model_feature_name(m, k);
    if (rc == 0) rc = s_ids(&p, err);
    if (rc == 0) rc = s_header(&p, err);
    int started = 0;
    while (rc == 0 && started < o->max_concurrency) {
        w[started].p = &p;
        if (pthread_create(&w[started].tid, NULL, s_worker, &w[started]) != 0)
            rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                               "cannot start a worker thread");
        else
            started++;
    }
    /* a model without feature names takes the columns in order */
    if (rc == 0) rc = s_files(&p, p.nfeat && feat[0] ? feat : NULL, err);
    pthread_mutex_lock(&p.lock);
    p.eof = true;
    pthread_cond_broadcast(&p.ready);
    pthread_mutex_unlock(&p.lock);
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].tid, NULL);
        free(w[i].rows);
        free(w[i].preds);
    }
    free(w);
    free(feat);
    s_free(&p);
    return rc;
}
