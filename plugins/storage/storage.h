/* plugins/storage/storage.h — the storage plugin's shared state and the
 * verb handlers of its tracking role. */
#ifndef STORAGE_STORAGE_H
#define STORAGE_STORAGE_H

#define CAIRN_PLUGIN_SOURCE
#include <stdatomic.h>
#include "cairn/plugin.h"
#include "db.h"
#include "segment.h"

/* MLflow's limits, and ours where we go further (docs/TRACKING.md). */
#define LIMIT_KEY 250
#define LIMIT_PARAM_VALUE 6000
#define LIMIT_TAG_VALUE 8000
#define LIMIT_EXPERIMENT_NAME 500
#define LIMIT_RUN_NAME 500
#define LIMIT_BATCH_METRICS 100000
#define LIMIT_BATCH_PARAMS 10000
#define LIMIT_BATCH_TAGS 10000
#define LIMIT_SEARCH_RESULTS 50000
#define LIMIT_HISTORY_RESULTS 100000
#define DEFAULT_HISTORY_RESULTS 25000
#define LIMIT_SAMPLED_POINTS 100000

/* The plugin's settings (plugin.c's table; the runtime fills them). */
enum { STORAGE_DURABILITY_PROCESS, STORAGE_DURABILITY_POWER };
typedef struct storage_settings {
    const char *db;                /* "" = STATE/tracking.db */
    const char *artifact_root;     /* "" = STATE/artifacts */
    int durability;                /* STORAGE_DURABILITY_* */
    int64_t upload_idle;           /* seconds an unfinished upload may sit idle */
    int64_t uploads_max;           /* 0 = sized from memory */
    int64_t uploads_per_principal; /* 0 = a quarter of uploads_max */
    bool io_uring;
    int64_t multipart_idle; /* seconds an unfinished multipart upload may sit idle */
    bool parallel_reads;    /* big searches read on a second connection too (side.h) */
    int64_t metrics_event_ms; /* run.metrics at most this often a run (0: off) */
} storage_settings_t;

#define STORAGE_FRESH_RUNS 512

typedef struct storage {
    cairn_ctx_t *ctx;
    const storage_settings_t *set;
    db_t *db;
    char *artifact_root; /* where artifact blobs live (content-addressed) */
    msgpack_sbuffer sb;  /* reused for replies */
    msgpack_packer pk;
    msgpack_sbuffer rows; /* reused scratch: rows packed before their count */
    /* reused scratch for batches and history */
    metric_point_t *pts;
    size_t pts_cap;
    unsigned char *blob;   /* scratch: a tail segment plus a write's points of a key */
    struct mjournal *mj;   /* role `tracking` only: the metric journal (mjournal.c) */
    struct artifacts *art; /* role `artifacts` only (artifacts.c) */
    struct wgroup *wg;     /* role `tracking`: the write group (group.c) */
    struct live *live;     /* role `tracking`: the run.metrics event (live.c) */
    /* Runs this instance created lately and has logged no metric to: their
     * first batch skips reading each key's tail segment (there is none).
     * Only a hint: a wrong one costs a refused insert and the usual path. */
    int64_t fresh[STORAGE_FRESH_RUNS];
    unsigned fresh_next;
    bool fold_failing; /* the tick's fold failed (logged once) */
    /* Points taken by log_metric and log_batch since start (the kernel's
     * thread counts too: INLINE), for the stats verb. */
    _Atomic uint64_t points_ingested;
    /* The second reader (side.h), opened at the first search big enough
     * to use it; side_failed: it could not be (logged once, not retried). */
    struct side *side;
    bool side_failed;
    /* Some run has inputs (inputs.c); until then no run's are looked up. */
    int any_inputs; /* -1: not known yet, 0, 1 */
} storage_t;

/* Start a reply in s->sb (cleared) and return its packer. */
msgpack_packer *storage_reply_begin(storage_t *s);
/* Send the reply packed since storage_reply_begin; returns 0, for handlers
 * to `return storage_reply_send(...)`. */
int storage_reply_send(storage_t *s, cairn_req_t *req, int st);
/* Pack a TEXT column ("" for NULL). */
void storage_pack_text(msgpack_packer *pk, sqlite3_stmt *st, int col);
/* Pack every row of a bound statement as an array, each row by pack_row;
 * the statement is stepped once (rows go to a scratch buffer until their
 * count is known) and reset. */
typedef void(storage_row_fn)(msgpack_packer *pk, sqlite3_stmt *st);
void storage_pack_rows(storage_t *s, msgpack_packer *pk, sqlite3_stmt *st,
                       storage_row_fn *pack_row);
/* The (key, value) rows of a bound statement as [{key, value}, ...]. */
void storage_pack_kv_rows(storage_t *s, msgpack_packer *pk, sqlite3_stmt *st);
/* Prefix err's sentence with "what[i]: " (an item of a batch), as a 400. */
int storage_err_at(cairn_err_t *err, const char *what, size_t i);
/* The fresh-run hint (above): note a run just created; whether rid is one;
 * forget it (once its first metrics are written). */
void storage_fresh_add(storage_t *s, int64_t rid);
bool storage_fresh_has(storage_t *s, int64_t rid);
void storage_fresh_forget(storage_t *s, int64_t rid);
/* Make sure s->pts holds n points. */
int storage_reserve_points(storage_t *s, size_t n, cairn_err_t *err);

/* A field that must be a key (non-empty, at most LIMIT_KEY bytes). */
int storage_field_key(const msgpack_object *o, const char *field, cairn_str_t *out,
                      cairn_err_t *err);
/* Parse an id string ("42") into an integer; 400/404 naming the field. */
int storage_parse_id(cairn_str_t s, const char *field, int64_t *out, cairn_err_t *err);

/* The one run lookup (runs.c), for every verb of both roles. */
#define RUN_ID_MAX 64 /* bytes of a run_id field */
typedef struct run_ref {
    int64_t rid;
    int64_t experiment_id;
    bool active;
    cairn_str_t id; /* as the request named it */
} run_ref_t;
/* The run whose public id is run_id in workspace ws: 404 if none, or if it
 * is another workspace's (its existence does not leak). ws NULL: any
 * workspace, for the plugin's own recovery only. uri (may be NULL) gets a
 * heap copy of its artifact_uri. */
int storage_find_run(db_t *db, const char *ws, cairn_str_t run_id, run_ref_t *out,
                     char **uri, cairn_err_t *err);
/* The run that the body of req names by run_id* (non-empty, at most
 * RUN_ID_MAX bytes), in req's workspace. With before (e.g. "logging to it"),
 * a deleted run is 400 "run X is deleted: restore it before <before>". */
int storage_req_run(db_t *db, cairn_req_t *req, const char *before, run_ref_t *out,
                    char **uri, cairn_err_t *err);
/* The same for a body b (a rewritten one) and workspace ws. */
int storage_body_run(db_t *db, const char *ws, const msgpack_object *b,
                     const char *before, run_ref_t *out, char **uri, cairn_err_t *err);
/* The experiment with this id in workspace ws, as a row of ST_EXP_BY_ID
 * (the caller resets it), or NULL with 404 set. */
sqlite3_stmt *storage_find_experiment(db_t *db, const char *ws, int64_t id,
                                      cairn_err_t *err);

/* Pack a run (info + data) by rid. */
int storage_pack_run(storage_t *s, msgpack_packer *pk, int64_t rid, cairn_err_t *err);
/* Pack n runs in the given order, reading them a chunk at a time
 * (runpage.c); 404 if one vanished. */
/* The second reader, when parallel_reads allows it (opened now if need
 * be); NULL: read on this thread alone. */
struct side *storage_side(storage_t *s);
int storage_pack_runs(storage_t *s, msgpack_packer *pk, const int64_t *rids, size_t n,
                      cairn_err_t *err);
/* Row packers: a run's info (columns as ST_RUN_BY_RID), a latest-metric
 * row (key, value, timestamp, step), a (key, value) row. */
void storage_pack_run_info(msgpack_packer *pk, sqlite3_stmt *st);
void storage_pack_metric_row(msgpack_packer *pk, sqlite3_stmt *st);
void storage_pack_kv_row(msgpack_packer *pk, sqlite3_stmt *st);

/* experiments.c */
int exp_create(void *state, cairn_req_t *req, cairn_err_t *err);
int exp_get(void *state, cairn_req_t *req, cairn_err_t *err);
int exp_get_by_name(void *state, cairn_req_t *req, cairn_err_t *err);
int exp_search(void *state, cairn_req_t *req, cairn_err_t *err);
int exp_update(void *state, cairn_req_t *req, cairn_err_t *err);
int exp_delete(void *state, cairn_req_t *req, cairn_err_t *err);
int exp_restore(void *state, cairn_req_t *req, cairn_err_t *err);
int exp_set_tag(void *state, cairn_req_t *req, cairn_err_t *err);
int exp_delete_tag(void *state, cairn_req_t *req, cairn_err_t *err);

/* runs.c */
int run_create(void *state, cairn_req_t *req, cairn_err_t *err);
int run_update(void *state, cairn_req_t *req, cairn_err_t *err);
int run_get(void *state, cairn_req_t *req, cairn_err_t *err);
int run_delete(void *state, cairn_req_t *req, cairn_err_t *err);
int run_restore(void *state, cairn_req_t *req, cairn_err_t *err);
int run_set_tag(void *state, cairn_req_t *req, cairn_err_t *err);
int run_delete_tag(void *state, cairn_req_t *req, cairn_err_t *err);

/* mjournal.c: the metric journal (role `tracking`; journal.h). log_metric
 * and log_batch requests of at most JOURNAL_MAX_POINTS points and nothing
 * else are appended to it and answered at once; their points wait in memory
 * and reach SQLite in one transaction (recording the journal's applied
 * sequence number) before any other verb runs (storage.c wraps the verb
 * table; log_batch and log_param apply before they write themselves), from
 * the tick, when MJ_PENDING_MAX points wait, and at fini. */
/* Open the journal beside the database (db_path + "-mj"), replay it and
 * apply what it holds. */
int storage_journal_open(storage_t *s, const char *db_path, bool power,
                         cairn_err_t *err);
/* Apply the pending points; 0 when there are none. On failure they stay
 * pending (and journaled). */
int storage_journal_apply(storage_t *s, cairn_err_t *err);
/* The same, but an open write group (group.c) stays open when no points
 * are pending: for create_run and log_batch, which join it. */
int storage_journal_apply_pending(storage_t *s, cairn_err_t *err);
/* Serve the log_metric requests queued for this thread (log_metric); every
 * other verb does this first, so that requests keep their order. */
void storage_journal_drain(storage_t *s);
/* The tick's apply: logs when it starts and stops failing. */
void storage_journal_tick(storage_t *s);
/* Apply what is pending (or leave it for the next start), close; safe
 * twice and without a journal. */
void storage_journal_close(storage_t *s);

/* logging.c: verbs */
int log_batch(void *state, cairn_req_t *req, cairn_err_t *err);
int log_metric(void *state, cairn_req_t *req, cairn_err_t *err);
int log_param(void *state, cairn_req_t *req, cairn_err_t *err);
int tracking_stats(void *state, cairn_req_t *req, cairn_err_t *err);
int metric_history(void *state, cairn_req_t *req, cairn_err_t *err);
int metric_history_sampled(void *state, cairn_req_t *req, cairn_err_t *err);

/* group.c: create_run and log_batch requests that arrive together share one
 * transaction, each in a savepoint, and are answered 200 only after it
 * commits: at once when this thread has served what its socket holds,
 * before any other verb (storage_group_flush), and at fini. */
typedef struct wgroup wgroup_t;
/* Join the group's transaction (opening it if none is), in a savepoint. */
int storage_group_begin(storage_t *s, cairn_err_t *err);
/* End the request's savepoint: kept when rc is 0, else undone. Returns 0,
 * or -1 (err says why, for this request) when the request failed. */
int storage_group_end(storage_t *s, int rc, cairn_err_t *err);
/* Answer 200 with s->sb once the group commits (now if none is open). */
int storage_group_reply(storage_t *s, cairn_req_t *req);
/* Commit and answer the group; -1 when the commit failed (its requests
 * are answered the failure). */
int storage_group_flush(storage_t *s);
/* Roll the group back, answering its requests err. */
void storage_group_fail(storage_t *s, const cairn_err_t *err);
/* Flush and free (fini). */
void storage_group_close(storage_t *s);

/* inputs.c: MLflow's datasets, a run's inputs */
int run_log_inputs(void *state, cairn_req_t *req, cairn_err_t *err);
/* runs.c */
int run_log_model(void *state, cairn_req_t *req, cairn_err_t *err);
/* Whether the run rid has inputs; a run's reply holds `inputs` only then
 * (as MLflow's proto3 JSON omits an empty field). */
bool storage_has_inputs(storage_t *s, int64_t rid);
/* {dataset_inputs: [{tags, dataset}]} of the run rid. */
void storage_pack_inputs(storage_t *s, msgpack_packer *pk, int64_t rid);

/* search.c */
int run_search(void *state, cairn_req_t *req, cairn_err_t *err);

/* artifacts.c: the `artifacts` role */
typedef struct artifacts artifacts_t;
int artifacts_init(storage_t *s, cairn_err_t *err);
void artifacts_fini(storage_t *s); /* safe after a failed init, and twice */
int art_put(void *state, cairn_req_t *req, cairn_err_t *err);
int art_get(void *state, cairn_req_t *req, cairn_err_t *err);
int art_verify(void *state, cairn_req_t *req, cairn_err_t *err);
int art_list(void *state, cairn_req_t *req, cairn_err_t *err);
int art_pin(void *state, cairn_req_t *req, cairn_err_t *err); /* pins.c */
int art_unpin(void *state, cairn_req_t *req, cairn_err_t *err);
int art_read_pinned(void *state, cairn_req_t *req, cairn_err_t *err); /* pinview.c */
int art_sniff_pinned(void *state, cairn_req_t *req, cairn_err_t *err);
int art_materialize_pinned(void *state, cairn_req_t *req, cairn_err_t *err);
int art_delete(void *state, cairn_req_t *req, cairn_err_t *err);
int art_abort(void *state, cairn_req_t *req, cairn_err_t *err);
/* multipart.c */
int art_mpu_create(void *state, cairn_req_t *req, cairn_err_t *err);
int art_mpu_part(void *state, cairn_req_t *req, cairn_err_t *err);
int art_mpu_complete(void *state, cairn_req_t *req, cairn_err_t *err);
int art_mpu_abort(void *state, cairn_req_t *req, cairn_err_t *err);

#endif
