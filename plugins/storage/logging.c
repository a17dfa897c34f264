/* Logging metrics, params and tags; reading metric history.
 *
 * log_batch is the hot path: one transaction per batch; the points of each
 * key are appended to that key's tail segment (or new segments), so the
 * database sees a few rows per key rather than one per point; the latest
 * value per key is kept current for get_run and search. A reply of 200
 * means the transaction committed.
 *
 * Lock-step logging (log_metric, and log_batch of a few points and nothing
 * else) goes through the metric journal instead (mjournal.c): one append to
 * a file and a 200, the points kept in memory and written to SQLite many
 * calls at a time, by the same code, before anything can read them. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "logging.h"
#include "paging.h"
#include "storage.h"

static uint32_t s_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

void lg_batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->ngroups; i++) free(b->groups[i].idx);
    free(b->groups);
    free(b->slots);
}

/* Size b's index for at most cap groups. */
int lg_batch_init(batch_t *b, metric_point_t *pts, size_t cap, cairn_err_t *err)
{
    b->pts = pts;
    b->cap = cap;
    b->nslots = 16;
    while (b->nslots < b->cap * 2) b->nslots *= 2;
    b->groups = calloc(b->cap ? b->cap : 1, sizeof *b->groups);
    b->slots = calloc(b->nslots, sizeof *b->slots);
    if (!b->groups || !b->slots) return cairn_err_oom(err, NULL);
    return 0;
}

key_group_t *lg_group_for(batch_t *b, int64_t rid, const char *key, size_t len,
                          cairn_err_t *err)
{
    size_t mask = b->nslots - 1;
    size_t i = (s_hash(key, len) ^ ((uint32_t)rid * 2654435761u)) & mask;
    while (b->slots[i]) {
        key_group_t *g = &b->groups[b->slots[i] - 1];
        if (g->rid == rid && g->key_len == len && memcmp(g->key, key, len) == 0)
            return g;
        i = (i + 1) & mask;
    }
    if (b->ngroups == b->cap) {
        cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                      "too many distinct metric keys in one batch");
        return NULL;
    }
    key_group_t *g = &b->groups[b->ngroups++];
    memset(g, 0, sizeof *g);
    g->rid = rid;
    g->key = key;
    g->key_len = len;
    b->slots[i] = b->ngroups;
    return g;
}

int lg_group_add(key_group_t *g, size_t idx, cairn_err_t *err)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        size_t *p = realloc(g->idx, cap * sizeof *p);
        if (!p) return cairn_err_oom(err, NULL);
        g->idx = p;
        g->cap = cap;
    }
    g->idx[g->n++] = idx;
    return 0;
}

static int s_value(const msgpack_object *o, double *v)
{
    switch (o->type) {
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            *v = o->via.f64;
            return 0;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            *v = (double)o->via.u64;
            return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            *v = (double)o->via.i64;
            return 0;
        case MSGPACK_OBJECT_STR: /* MLflow clients send NaN and infinities as strings */
            if (o->via.str.size == 3 && !strncasecmp(o->via.str.ptr, "NaN", 3))
                *v = NAN;
            else if (o->via.str.size == 8 && !strncmp(o->via.str.ptr, "Infinity", 8))
                *v = INFINITY;
            else if (o->via.str.size == 9 && !strncmp(o->via.str.ptr, "-Infinity", 9))
                *v = -INFINITY;
            else
                return -1;
            return 0;
        default:
            return -1;
    }
}

/* Decode and validate metrics[i]; timestamp defaults to now, step to 0. */
int lg_parse_point(const msgpack_object *m, size_t i, int64_t now, metric_point_t *p,
                   cairn_str_t *key, cairn_err_t *err)
{
    const msgpack_object *v = cairn_obj_get(m, "value");
    p->timestamp = now;
    p->step = 0;
    if (storage_field_key(m, "key", key, err) != 0 ||
        cairn_field_int(m, "timestamp", false, &p->timestamp, err) < 0 ||
        cairn_field_int(m, "step", false, &p->step, err) < 0)
        return storage_err_at(err, "metrics", i);
    if (!v || s_value(v, &p->value) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "metrics[%zu]: the field 'value' must be a number", i);
    return 0;
}

/* Decode and validate metrics[] into points grouped by key. */
static int s_parse_metrics(storage_t *s, int64_t rid, const msgpack_object *arr,
                           batch_t *b, cairn_err_t *err)
{
    size_t n = arr->via.array.size;
    if (n > LIMIT_BATCH_METRICS)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "a batch holds at most %d metric points; this one has %zu",
                             LIMIT_BATCH_METRICS, n);
    if (storage_reserve_points(s, n, err) != 0 ||
        lg_batch_init(b, s->pts, n < 4096 ? n : 4096, err) != 0)
        return -1;
    int64_t now = (int64_t)cairn_wall_ms();
    for (size_t i = 0; i < n; i++) {
        cairn_str_t key;
        if (lg_parse_point(&arr->via.array.ptr[i], i, now, &b->pts[i], &key, err) != 0)
            return -1;
        key_group_t *g = lg_group_for(b, rid, key.ptr, key.len, err);
        if (!g || lg_group_add(g, i, err) != 0) return -1;
    }
    return 0;
}

static int s_insert_segments(storage_t *s, int64_t rid, int64_t key_id,
                             const metric_point_t *pts, size_t n, int64_t seq,
                             unsigned char *blob, cairn_err_t *err);

static void s_bind_point(sqlite3_stmt *st, int64_t rid, int64_t key_id,
                         const metric_point_t *p)
{
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_int64(st, 2, key_id);
    if (!isnan(p->value)) sqlite3_bind_double(st, 3, p->value);
    sqlite3_bind_int64(st, 4, p->timestamp);
    sqlite3_bind_int64(st, 5, p->step);
}

/* Move (rid, key_id)'s entry in metric_values from old (a NULL column:
 * none) to p's value (none for NaN). */
static int s_move_value(storage_t *s, int64_t rid, int64_t key_id, sqlite3_stmt *old,
                        const metric_point_t *p, cairn_err_t *err)
{
    if (old && sqlite3_column_type(old, 0) != SQLITE_NULL) {
        sqlite3_stmt *st = db_stmt(s->db, ST_VALUE_DEL);
        sqlite3_bind_int64(st, 1, key_id);
        sqlite3_bind_double(st, 2, sqlite3_column_double(old, 0));
        sqlite3_bind_int64(st, 3, rid);
        if (db_exec_stmt(s->db, st, err) != 0) return -1;
    }
    if (isnan(p->value)) return 0;
    sqlite3_stmt *st = db_stmt(s->db, ST_VALUE_PUT);
    sqlite3_bind_int64(st, 1, key_id);
    sqlite3_bind_double(st, 2, p->value);
    sqlite3_bind_int64(st, 3, rid);
    return db_exec_stmt(s->db, st, err);
}

/* Keep (rid, key_id)'s latest point, the newest by (step, timestamp). A
 * deferred row (fold.h) is mirrored in mem.recent, by the same rule; any
 * other keeps its metric_values entry current at once. */
static int s_write_latest(storage_t *s, int64_t rid, int64_t key_id,
                          const metric_point_t *lp, cairn_err_t *err)
{
    bool defer = db_fold_defers(s->db, key_id, rid);
    sqlite3_stmt *old = NULL;
    if (!defer) {
        old = db_stmt(s->db, ST_LATEST_GET);
        sqlite3_bind_int64(old, 1, rid);
        sqlite3_bind_int64(old, 2, key_id);
        int rc = sqlite3_step(old);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_fail(s->db, "read", err);
        if (rc == SQLITE_DONE) {
            old = NULL;
        } else if (lp->step < sqlite3_column_int64(old, 2) ||
                   (lp->step == sqlite3_column_int64(old, 2) &&
                    lp->timestamp < sqlite3_column_int64(old, 1))) {
            sqlite3_reset(old);
            return 0; /* an older point: nothing changes */
        }
    }
    sqlite3_stmt *st = db_stmt(s->db, ST_LATEST_UPSERT);
    s_bind_point(st, rid, key_id, lp);
    int rc = db_exec_stmt(s->db, st, err);
    if (rc == 0 && defer) {
        st = db_stmt(s->db, ST_RECENT_UPSERT);
        s_bind_point(st, rid, key_id, lp);
        if ((rc = db_exec_stmt(s->db, st, err)) == 0) db_fold_noted(s->db);
    } else if (rc == 0) {
        rc = s_move_value(s, rid, key_id, old, lp, err);
    }
    if (old) sqlite3_reset(old);
    return rc;
}

/* Write one (run, key)'s points: latest value, then segments. fresh: the
 * run is new to metrics (storage_fresh_has), so its key has no tail
 * segment to read; if it has one after all, the insert is refused and the
 * usual path runs. */
static int s_write_group(storage_t *s, const batch_t *b, const key_group_t *g,
                         bool fresh, metric_point_t *tmp, unsigned char *blob,
                         cairn_err_t *err)
{
    int64_t rid = g->rid, key_id;
    if (db_metric_key_id(s->db, g->key, g->key_len, &key_id, err) != 0) return -1;
    size_t latest = g->idx[0];
    for (size_t i = 0; i < g->n; i++) {
        tmp[i] = b->pts[g->idx[i]];
        if (!segment_later(&b->pts[latest], &tmp[i])) latest = g->idx[i];
    }
    if (s_write_latest(s, rid, key_id, &b->pts[latest], err) != 0) return -1;
    if (fresh) {
        int rc = s_insert_segments(s, rid, key_id, tmp, g->n, 0, blob, err);
        if (rc == 0 || (sqlite3_errcode(db_handle(s->db)) & 0xff) != SQLITE_CONSTRAINT)
            return rc;
        cairn_err_clear(err); /* not fresh after all: the usual path */
    }
    /* Fill the tail segment if it has room, then new segments. */
    size_t done = 0;
    int64_t seq = 0;
    sqlite3_stmt *st = db_stmt(s->db, ST_SEG_TAIL);
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_int64(st, 2, key_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        seq = sqlite3_column_int64(st, 0);
        size_t have = (size_t)sqlite3_column_int64(st, 1);
        if (have + g->n <= SEGMENT_TAIL_MERGE) {
            size_t bytes = (size_t)sqlite3_column_bytes(st, 2);
            memcpy(blob, sqlite3_column_blob(st, 2), bytes);
            segment_encode(tmp, g->n, blob + bytes);
            int64_t mn = tmp[0].step, mx = tmp[0].step;
            for (size_t i = 0; i < g->n; i++) {
                if (tmp[i].step < mn) mn = tmp[i].step;
                if (tmp[i].step > mx) mx = tmp[i].step;
            }
            sqlite3_stmt *u = db_stmt(s->db, ST_SEG_UPDATE);
            sqlite3_bind_int64(u, 1, (int64_t)(have + g->n));
            sqlite3_bind_int64(u, 2, mn); /* combined with the old bounds in SQL */
            sqlite3_bind_int64(u, 3, mx);
            sqlite3_bind_blob(u, 4, blob, (int)(bytes + g->n * SEGMENT_POINT_BYTES),
                              SQLITE_STATIC);
            sqlite3_bind_int64(u, 5, rid);
            sqlite3_bind_int64(u, 6, key_id);
            sqlite3_bind_int64(u, 7, seq);
            sqlite3_reset(st);
            if (db_exec_stmt(s->db, u, err) != 0) return -1;
            done = g->n;
        }
    }
    sqlite3_reset(st);
    return s_insert_segments(s, rid, key_id, tmp + done, g->n - done, seq, blob, err);
}

/* n points as new segments of (rid, key_id), numbered after seq. */
static int s_insert_segments(storage_t *s, int64_t rid, int64_t key_id,
                             const metric_point_t *pts, size_t n, int64_t seq,
                             unsigned char *blob, cairn_err_t *err)
{
    size_t done = 0;
    while (done < n) {
        size_t k = n - done < SEGMENT_POINTS ? n - done : SEGMENT_POINTS;
        int64_t mn = pts[done].step, mx = pts[done].step;
        for (size_t i = done; i < done + k; i++) {
            if (pts[i].step < mn) mn = pts[i].step;
            if (pts[i].step > mx) mx = pts[i].step;
        }
        segment_encode(pts + done, k, blob);
        sqlite3_stmt *ins = db_stmt(s->db, ST_SEG_INSERT);
        sqlite3_bind_int64(ins, 1, rid);
        sqlite3_bind_int64(ins, 2, key_id);
        sqlite3_bind_int64(ins, 3, ++seq);
        sqlite3_bind_int64(ins, 4, (int64_t)k);
        sqlite3_bind_int64(ins, 5, mn);
        sqlite3_bind_int64(ins, 6, mx);
        sqlite3_bind_blob(ins, 7, blob, (int)(k * SEGMENT_POINT_BYTES), SQLITE_STATIC);
        if (db_exec_stmt(s->db, ins, err) != 0) return -1;
        done += k;
    }
    return 0;
}

int lg_write_metrics(storage_t *s, const batch_t *b, cairn_err_t *err)
{
    size_t most = 0;
    for (size_t i = 0; i < b->ngroups; i++)
        if (b->groups[i].n > most) most = b->groups[i].n;
    metric_point_t *tmp = malloc((most ? most : 1) * sizeof *tmp);
    /* A tail segment plus one write's points for a key never exceed this. */
    if (!s->blob) s->blob = malloc((size_t)2 * SEGMENT_POINTS * SEGMENT_POINT_BYTES);
    int rc = tmp && s->blob ? 0 : cairn_err_oom(err, NULL);
    int64_t memo_rid = 0; /* groups of one run come together: ask once per run */
    bool fresh = false, any_fresh = false;
    for (size_t i = 0; rc == 0 && i < b->ngroups; i++) {
        if (b->groups[i].rid != memo_rid) {
            memo_rid = b->groups[i].rid;
            any_fresh |= fresh = storage_fresh_has(s, memo_rid);
        }
        rc = s_write_group(s, b, &b->groups[i], fresh, tmp, s->blob, err);
    }
    memo_rid = 0;
    for (size_t i = 0; any_fresh && i < b->ngroups; i++)
        if (b->groups[i].rid != memo_rid)
            storage_fresh_forget(s, memo_rid = b->groups[i].rid);
    free(tmp);
    return rc;
}

/* Params are write-once: the same value again is fine, another is 409. */
static int s_write_params(storage_t *s, int64_t rid, const msgpack_object *arr,
                          cairn_err_t *err)
{
    if (arr->via.array.size > LIMIT_BATCH_PARAMS)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "a batch holds at most %d params; this one has %u",
                             LIMIT_BATCH_PARAMS, arr->via.array.size);
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *p = &arr->via.array.ptr[i];
        cairn_str_t k, v;
        if (storage_field_key(p, "key", &k, err) != 0 ||
            cairn_field_str(p, "value", true, LIMIT_PARAM_VALUE, &v, err) != 0)
            return storage_err_at(err, "params", i);
        sqlite3_stmt *st = db_stmt(s->db, ST_PARAM_INSERT);
        sqlite3_bind_int64(st, 1, rid);
        sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, v.ptr, (int)v.len, SQLITE_STATIC);
        if (db_exec_stmt(s->db, st, err) != 0) return -1;
        if (sqlite3_changes(db_handle(s->db)) == 1) continue;
        st = db_stmt(s->db, ST_PARAM_GET);
        sqlite3_bind_int64(st, 1, rid);
        sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
        int same = sqlite3_step(st) == SQLITE_ROW &&
                   (size_t)sqlite3_column_bytes(st, 0) == v.len &&
                   memcmp(sqlite3_column_text(st, 0), v.ptr, v.len) == 0;
        sqlite3_reset(st);
        if (!same)
            return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                                 "param '%.*s' is already logged with another value; "
                                 "params are write-once",
                                 (int)k.len, k.ptr);
    }
    return 0;
}

static int s_write_tags(storage_t *s, int64_t rid, const msgpack_object *arr,
                        cairn_err_t *err)
{
    if (arr->via.array.size > LIMIT_BATCH_TAGS)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "a batch holds at most %d tags; this one has %u",
                             LIMIT_BATCH_TAGS, arr->via.array.size);
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *t = &arr->via.array.ptr[i];
        cairn_str_t k, v;
        if (storage_field_key(t, "key", &k, err) != 0 ||
            cairn_field_str(t, "value", true, LIMIT_TAG_VALUE, &v, err) != 0)
            return storage_err_at(err, "tags", i);
        sqlite3_stmt *st = db_stmt(s->db, ST_TAG_SET);
        sqlite3_bind_int64(st, 1, rid);
        sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, v.ptr, (int)v.len, SQLITE_STATIC);
        if (db_exec_stmt(s->db, st, err) != 0) return -1;
    }
    return 0;
}

/* The active run body b names, in req's workspace (b: req's body, or the
 * batch log_metric and log_param rewrite theirs into). */
static int s_active_run(storage_t *s, cairn_req_t *req, const msgpack_object *b,
                        run_ref_t *run, cairn_err_t *err)
{
    if (storage_body_run(s->db, cairn_workspace(req), b, "logging to it", run, NULL,
                         err) != 0)
        return -1;
    cairn_name_object(req, "run", run->id.ptr, run->id.len);
    return 0;
}

int lg_reply_ok(storage_t *s, cairn_req_t *req)
{
    msgpack_pack_map(storage_reply_begin(s), 0);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

/* ---- log_batch, log_metric, log_param ------------------------------------------ */

/* A batch the metric journal takes: at most JOURNAL_MAX_POINTS metrics and
 * nothing else. */
bool lg_journal_takes(const msgpack_object *metrics, const msgpack_object *params,
                      const msgpack_object *tags)
{
    return !params && !tags &&
           (!metrics || metrics->via.array.size <= JOURNAL_MAX_POINTS);
}

/* The whole batch in one transaction: all of it is stored, or none. A few
 * points and nothing else go to the metric journal instead (one record:
 * all or none too). */
static int s_log(storage_t *s, cairn_req_t *req, const msgpack_object *body,
                 bool *grouped, cairn_err_t *err)
{
    const msgpack_object *metrics = NULL, *params = NULL, *tags = NULL;
    run_ref_t run;
    batch_t b = {0};
    if (s_active_run(s, req, body, &run, err) != 0 ||
        cairn_field_array(body, "metrics", false, &metrics, err) < 0 ||
        cairn_field_array(body, "params", false, &params, err) < 0 ||
        cairn_field_array(body, "tags", false, &tags, err) < 0)
        return -1;
    uint32_t npoints = metrics ? metrics->via.array.size : 0;
    if (s->mj && lg_journal_takes(metrics, params, tags)) {
        int jrc = mj_log_journaled(s, run.rid, run.id, metrics, err);
        if (jrc == 0)
            atomic_fetch_add_explicit(&s->points_ingested, npoints,
                                      memory_order_relaxed);
        return jrc;
    }
    if (metrics && s_parse_metrics(s, run.rid, metrics, &b, err) != 0) {
        lg_batch_free(&b);
        return -1;
    }
    /* Points acknowledged before this batch go in first: order decides
     * which of two points with equal (step, timestamp) is the latest. */
    int rc = storage_journal_apply_pending(s, err);
    /* In the write group (group.c): answered once its transaction commits. */
    if (rc == 0) rc = storage_group_begin(s, err);
    if (rc != 0) {
        lg_batch_free(&b);
        return rc;
    }
    *grouped = true;
    if (params) rc = s_write_params(s, run.rid, params, err);
    if (rc == 0 && tags) rc = s_write_tags(s, run.rid, tags, err);
    if (rc == 0 && metrics) rc = lg_write_metrics(s, &b, err);
    rc = storage_group_end(s, rc, err);
    if (rc == 0) {
        atomic_fetch_add_explicit(&s->points_ingested, npoints, memory_order_relaxed);
        if (metrics) live_note_batch(s, run.id, &b, npoints);
    }
    lg_batch_free(&b);
    return rc;
}

static int s_reply_logged(storage_t *s, cairn_req_t *req, int rc, bool grouped,
                          cairn_err_t *err)
{
    if (rc != 0) return -1;
    if (grouped) { /* its writes wait for the write group's commit */
        msgpack_pack_map(storage_reply_begin(s), 0);
        return storage_group_reply(s, req);
    }
    /* Its record, or one before it, waits for the group's fdatasync. */
    if (mj_unsynced(s)) return mj_wait(s, req, err);
    return lg_reply_ok(s, req);
}

int lg_log_batch(storage_t *s, cairn_req_t *req, cairn_err_t *err)
{
    bool grouped = false;
    int rc = s_log(s, req, cairn_body(req), &grouped, err);
    return s_reply_logged(s, req, rc, grouped, err);
}

/* Flagged CAIRN_VERB_INLINE, like log_metric (below): on the kernel's thread
 * only a batch the journal takes at once is served; one that writes SQLite
 * (params, tags, more points) or must apply first, and every request behind
 * it, is queued for this instance's own thread. */
int log_batch(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    if (s->mj && cairn_req_inline(req) &&
        (mj_queued(s) || mj_quick_points(s, cairn_body(req)) < 0) &&
        mj_defer(s, req, true))
        return 0;
    storage_journal_drain(s); /* requests that came first go first */
    return lg_log_batch(s, req, err);
}

/* log_metric and log_param rewrite their body as a one-entry batch. */
int lg_log_one(storage_t *s, cairn_req_t *req, const char *field, cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    if (b->type != MSGPACK_OBJECT_MAP) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the request body must be a map");
        return -1;
    }
    const msgpack_object *run_id = cairn_obj_get(b, "run_id");
    msgpack_object_kv kv[2];
    msgpack_object arr, one = *b, wrapped;
    arr.type = MSGPACK_OBJECT_ARRAY;
    arr.via.array.size = 1;
    arr.via.array.ptr = &one;
    kv[0].key.type = MSGPACK_OBJECT_STR;
    kv[0].key.via.str.ptr = "run_id";
    kv[0].key.via.str.size = 6;
    if (run_id)
        kv[0].val = *run_id;
    else
        kv[0].val.type = MSGPACK_OBJECT_NIL;
    kv[1].key.type = MSGPACK_OBJECT_STR;
    kv[1].key.via.str.ptr = field;
    kv[1].key.via.str.size = (uint32_t)strlen(field);
    kv[1].val = arr;
    wrapped.type = MSGPACK_OBJECT_MAP;
    wrapped.via.map.size = 2;
    wrapped.via.map.ptr = kv;
    bool grouped = false;
    int rc = s_log(s, req, &wrapped, &grouped, err);
    if (rc != 0 && err->st == CAIRN_ST_BAD_REQUEST) {
        /* Say "value", not "metrics[0]: value", for the single forms. */
        const char *colon = strstr(err->msg, "]: ");
        if (colon) memmove(err->msg, colon + 3, strlen(colon + 3) + 1);
    }
    return s_reply_logged(s, req, rc, grouped, err);
}

/* Flagged CAIRN_VERB_INLINE: an idle inproc instance may be served on the
 * kernel's thread, so it must stay quick there. The journal append is; an
 * apply (MJ_PENDING_MAX points wait) is not: that request, and every
 * log_metric behind it, is queued for this instance's own thread. (Under
 * durability=power, where every append waits for fdatasync, storage_init
 * drops the flag instead.) */
int log_metric(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    if (s->mj && (mj_queued(s) || mj_full(s)) && mj_defer(s, req, false)) return 0;
    return lg_log_one(s, req, "metrics", err);
}

/* stats {} -> {counters: {points_ingested}}: for Prometheus (the
 * gateway's /metrics renders each counter as cairn_NAME_total{service}). */
int tracking_stats(void *state, cairn_req_t *req, cairn_err_t *err)
{
    (void)err;
    storage_t *s = state;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "counters");
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "points_ingested");
    msgpack_pack_uint64(
        pk, atomic_load_explicit(&s->points_ingested, memory_order_relaxed));
    cairn_pack_cstr(pk, "metrics_events_dropped");
    msgpack_pack_uint64(pk, live_dropped(s));
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

int log_param(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return lg_log_one(state, req, "params", err);
}

/* ---- history ---------------------------------------------------------- */

/* Load every point of (run, key) into s->pts, sorted by (step, timestamp).
 * *n is 0 for an unknown key. */
static int s_load_series(storage_t *s, int64_t rid, cairn_str_t key, size_t *n,
                         cairn_err_t *err)
{
    *n = 0;
    sqlite3_stmt *st = db_stmt(s->db, ST_KEY_ID);
    sqlite3_bind_text(st, 1, key.ptr, (int)key.len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return 0;
    }
    int64_t key_id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    st = db_stmt(s->db, ST_SEG_ALL);
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_int64(st, 2, key_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t bytes = (size_t)sqlite3_column_bytes(st, 0);
        long k = segment_count(bytes);
        if (k < 0 || storage_reserve_points(s, *n + (size_t)k, err) != 0) {
            sqlite3_reset(st);
            return k < 0 ? cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                                         "a metric segment is corrupt")
                         : -1;
        }
        segment_decode(sqlite3_column_blob(st, 0), bytes, s->pts + *n, (size_t)k);
        *n += (size_t)k;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_fail(s->db, "read metric history", err);
    segment_sort(s->pts, *n);
    return 0;
}

static void s_pack_point(msgpack_packer *pk, cairn_str_t key, const metric_point_t *p)
{
    msgpack_pack_map(pk, 4);
    cairn_pack_cstr(pk, "key");
    cairn_pack_strn(pk, key.ptr, key.len);
    cairn_pack_cstr(pk, "value");
    msgpack_pack_double(pk, p->value);
    cairn_pack_cstr(pk, "timestamp");
    msgpack_pack_int64(pk, p->timestamp);
    cairn_pack_cstr(pk, "step");
    msgpack_pack_int64(pk, p->step);
}

int metric_history(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req);
    run_ref_t run;
    cairn_str_t key;
    page_t page;
    size_t n;
    if (storage_req_run(s->db, req, NULL, &run, NULL, err) != 0 ||
        storage_field_key(b, "key", &key, err) != 0 ||
        page_parse(b, DEFAULT_HISTORY_RESULTS, LIMIT_HISTORY_RESULTS, &page, err) !=
            0 ||
        s_load_series(s, run.rid, key, &n, err) != 0)
        return -1;
    size_t from = page.offset < n ? (size_t)page.offset : n;
    size_t count = n - from < page.limit ? n - from : (size_t)page.limit;
    bool more = from + count < n;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, more ? 2 : 1);
    cairn_pack_cstr(pk, "metrics");
    msgpack_pack_array(pk, count);
    for (size_t i = from; i < from + count; i++) s_pack_point(pk, key, &s->pts[i]);
    if (more) page_pack_next(pk, &page);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

/* The part of a history a sampled read covers: steps and times, each
 * bound inclusive and optional (a zoomed chart asks for its range only). */
typedef struct {
    int64_t step_lo, step_hi, time_lo, time_hi;
    bool any;
} history_range_t;

static int s_range_bound(const msgpack_object *b, const char *key, int64_t *v,
                         bool *any, cairn_err_t *err)
{
    int rc = cairn_field_int(b, key, false, v, err);
    if (rc == 0) *any = true;
    return rc < 0 ? -1 : 0;
}

static int s_parse_range(const msgpack_object *b, history_range_t *r, cairn_err_t *err)
{
    *r = (history_range_t){INT64_MIN, INT64_MAX, INT64_MIN, INT64_MAX, false};
    if (s_range_bound(b, "start_step", &r->step_lo, &r->any, err) != 0 ||
        s_range_bound(b, "end_step", &r->step_hi, &r->any, err) != 0 ||
        s_range_bound(b, "start_time", &r->time_lo, &r->any, err) != 0 ||
        s_range_bound(b, "end_time", &r->time_hi, &r->any, err) != 0)
        return -1;
    if (r->step_lo > r->step_hi || r->time_lo > r->time_hi)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "start_step must not pass end_step, nor start_time "
                             "end_time");
    return 0;
}

/* Keep, in order, the points of pts[0..n) within r; their count. */
static size_t s_clip(metric_point_t *pts, size_t n, const history_range_t *r)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const metric_point_t *p = &pts[i];
        if (p->step >= r->step_lo && p->step <= r->step_hi &&
            p->timestamp >= r->time_lo && p->timestamp <= r->time_hi)
            pts[m++] = *p;
    }
    return m;
}

int metric_history_sampled(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req), *keys;
    run_ref_t run;
    uint64_t max_points = 1000;
    history_range_t range;
    if (storage_req_run(s->db, req, NULL, &run, NULL, err) != 0 ||
        cairn_field_array(b, "keys", true, &keys, err) != 0 ||
        cairn_field_uint(b, "max_points", false, &max_points, err) < 0 ||
        s_parse_range(b, &range, err) != 0)
        return -1;
    if (max_points < 2 || max_points > LIMIT_SAMPLED_POINTS ||
        keys->via.array.size > 1000) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "max_points must be from 2 to %d, and keys at most 1000",
                      LIMIT_SAMPLED_POINTS);
        return -1;
    }
    metric_point_t *out = malloc(max_points * sizeof *out);
    if (!out) {
        cairn_err_oom(err, NULL);
        return -1;
    }
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "series");
    msgpack_pack_array(pk, keys->via.array.size);
    for (uint32_t k = 0; k < keys->via.array.size; k++) {
        const msgpack_object *ko = &keys->via.array.ptr[k];
        size_t n = 0;
        cairn_str_t key = {"", 0};
        if (ko->type != MSGPACK_OBJECT_STR || ko->via.str.size > LIMIT_KEY) {
            free(out);
            cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                          "keys[%u] must be a metric key", k);
            return -1;
        }
        key = (cairn_str_t){ko->via.str.ptr, ko->via.str.size};
        if (s_load_series(s, run.rid, key, &n, err) != 0) {
            free(out);
            return -1;
        }
        size_t in_range = range.any ? s_clip(s->pts, n, &range) : n;
        size_t m = segment_downsample(s->pts, in_range, (size_t)max_points, out);
        msgpack_pack_map(pk, range.any ? 4 : 3);
        cairn_pack_cstr(pk, "key");
        cairn_pack_strn(pk, key.ptr, key.len);
        cairn_pack_cstr(pk, "total_points");
        msgpack_pack_uint64(pk, n);
        if (range.any) {
            cairn_pack_cstr(pk, "range_points");
            msgpack_pack_uint64(pk, in_range);
        }
        cairn_pack_cstr(pk, "metrics");
        msgpack_pack_array(pk, m);
        for (size_t i = 0; i < m; i++) s_pack_point(pk, key, &out[i]);
    }
    free(out);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}
