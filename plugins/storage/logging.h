/* plugins/storage/logging.h — private to logging.c (the verbs: log_batch,
 * log_metric, log_param, the batch writer), mjournal.c (the metric
 * journal) and live.c (the run.metrics event): what each uses of the
 * others. */
#ifndef STORAGE_LOGGING_H
#define STORAGE_LOGGING_H

#include <stdbool.h>

#include "storage.h"

/* Pending journaled points before they are applied at once, whatever the
 * tick: keys are at most 250 bytes, so this bounds them at about 1 MiB. */
#define MJ_PENDING_MAX 4096

/* One (run, key)'s points inside a batch, in logging order. */
typedef struct key_group {
    int64_t rid;
    const char *key;
    size_t key_len;
    size_t *idx; /* indices into the batch's points */
    size_t n, cap;
} key_group_t;

typedef struct batch {
    metric_point_t *pts; /* s->pts */
    key_group_t *groups;
    size_t ngroups, cap;
    size_t *slots; /* open-addressing index: group number + 1, 0 = empty */
    size_t nslots;
} batch_t;

/* logging.c: the batch writer, which the journal's apply uses too. */
int lg_batch_init(batch_t *b, metric_point_t *pts, size_t cap, cairn_err_t *err);
void lg_batch_free(batch_t *b);
key_group_t *lg_group_for(batch_t *b, int64_t rid, const char *key, size_t len,
                          cairn_err_t *err);
int lg_group_add(key_group_t *g, size_t idx, cairn_err_t *err);
int lg_write_metrics(storage_t *s, const batch_t *b, cairn_err_t *err);
/* One metric point of a body ({key, value, timestamp, step}); now fills a
 * missing timestamp. */
int lg_parse_point(const msgpack_object *m, size_t i, int64_t now, metric_point_t *p,
                   cairn_str_t *key, cairn_err_t *err);
/* A batch the journal takes: at most JOURNAL_MAX_POINTS metrics, nothing else. */
bool lg_journal_takes(const msgpack_object *metrics, const msgpack_object *params,
                      const msgpack_object *tags);
int lg_reply_ok(storage_t *s, cairn_req_t *req);
/* Serve a log_batch / log_metric (field "metrics") or log_param: 0 once
 * answered or deferred, -1 with err. */
int lg_log_batch(storage_t *s, cairn_req_t *req, cairn_err_t *err);
int lg_log_one(storage_t *s, cairn_req_t *req, const char *field, cairn_err_t *err);

/* mjournal.c */
/* Journal a few points for run rid (one record; run_id, for the
 * run.metrics event) and keep them pending. */
int mj_log_journaled(storage_t *s, int64_t rid, cairn_str_t run_id,
                     const msgpack_object *arr, cairn_err_t *err);
/* Answer req after the group's fdatasync (durability=power). */
int mj_wait(storage_t *s, cairn_req_t *req, cairn_err_t *err);
/* Queue a request for this instance's thread; false when it must be served
 * now. */
bool mj_defer(storage_t *s, cairn_req_t *req, bool batch);
bool mj_unsynced(const storage_t *s); /* a record waits for its fdatasync */
bool mj_queued(const storage_t *s);   /* requests wait in the queue */
bool mj_full(const storage_t *s);     /* MJ_PENDING_MAX points wait */
/* The points of a log_batch body the journal would take without an apply
 * first; -1 for any other body. */
long mj_quick_points(const storage_t *s, const msgpack_object *body);

/* live.c: the run.metrics event, published at most every_ms per run (0:
 * off, and the notes do nothing). A request's accepted points for run_id
 * are noted from their parsed form: a batch's npoints points (grouped by
 * key), or a journal record's n; cheap, any thread. */
typedef struct live live_t;
struct journal_point;
int live_open(storage_t *s, uint32_t every_ms, cairn_err_t *err);
void live_note_batch(storage_t *s, cairn_str_t run_id, const batch_t *b,
                     size_t npoints);
void live_note_points(storage_t *s, cairn_str_t run_id, const struct journal_point *jp,
                      size_t n);
uint64_t live_dropped(const storage_t *s); /* runs past a window's bound */
void live_close(storage_t *s);

#endif
