/* Logging metrics, params and tags; reading metric history.
 *
 * log_batch is the hot path: one transaction per batch; the points of each
 * key are appended to that key's tail segment (or new segments), so the
 * database sees a few rows per key rather than one per point; the latest
 * value per key is kept current for get_run and search. A reply of 200
 * means the transaction committed. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paging.h"
#include "storage.h"

/* One key's points inside a batch, in logging order. */
typedef struct key_group {
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

static uint32_t s_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void s_batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->ngroups; i++) free(b->groups[i].idx);
    free(b->groups);
    free(b->slots);
}

static key_group_t *s_group_for(batch_t *b, const char *key, size_t len,
                                cairn_err_t *err)
{
    size_t mask = b->nslots - 1, i = s_hash(key, len) & mask;
    while (b->slots[i]) {
        key_group_t *g = &b->groups[b->slots[i] - 1];
        if (g->key_len == len && memcmp(g->key, key, len) == 0) return g;
        i = (i + 1) & mask;
    }
    if (b->ngroups == b->cap) {
        cairn_err_set(err, 413, "too_large",
                      "too many distinct metric keys in one batch");
        return NULL;
    }
    key_group_t *g = &b->groups[b->ngroups++];
    memset(g, 0, sizeof *g);
    g->key = key;
    g->key_len = len;
    b->slots[i] = b->ngroups;
    return g;
}

static int s_group_add(key_group_t *g, size_t idx, cairn_err_t *err)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        size_t *p = realloc(g->idx, cap * sizeof *p);
        if (!p) return cairn_err_set(err, 500, NULL, "out of memory");
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

/* Decode and validate metrics[] into points grouped by key. */
static int s_parse_metrics(storage_t *s, const msgpack_object *arr, batch_t *b,
                           cairn_err_t *err)
{
    size_t n = arr->via.array.size;
    if (n > LIMIT_BATCH_METRICS)
        return cairn_err_set(err, 413, "too_large",
                             "a batch holds at most %d metric points; this one has %zu",
                             LIMIT_BATCH_METRICS, n);
    if (storage_reserve_points(s, n, err) != 0) return -1;
    b->pts = s->pts;
    b->cap = n < 4096 ? n : 4096;
    b->nslots = 16;
    while (b->nslots < b->cap * 2) b->nslots *= 2;
    b->groups = calloc(b->cap ? b->cap : 1, sizeof *b->groups);
    b->slots = calloc(b->nslots, sizeof *b->slots);
    if (!b->groups || !b->slots) return cairn_err_set(err, 500, NULL, "out of memory");
    int64_t now = (int64_t)cairn_wall_ms();
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *m = &arr->via.array.ptr[i];
        cairn_str_t key;
        const msgpack_object *v = cairn_obj_get(m, "value");
        metric_point_t *p = &b->pts[i];
        p->timestamp = now;
        p->step = 0;
        if (storage_field_key(m, "key", &key, err) != 0 ||
            cairn_field_int(m, "timestamp", false, &p->timestamp, err) < 0 ||
            cairn_field_int(m, "step", false, &p->step, err) < 0)
            return cairn_err_set(err, 400, "bad_request", "metrics[%zu]: %s", i,
                                 err->msg);
        if (!v || s_value(v, &p->value) != 0)
            return cairn_err_set(err, 400, "bad_request",
                                 "metrics[%zu]: the field 'value' must be a number", i);
        key_group_t *g = s_group_for(b, key.ptr, key.len, err);
        if (!g || s_group_add(g, i, err) != 0) return -1;
    }
    return 0;
}

/* Write one key's points: latest value, then segments. */
static int s_write_group(storage_t *s, int64_t rid, const batch_t *b,
                         const key_group_t *g, metric_point_t *tmp, unsigned char *blob,
                         cairn_err_t *err)
{
    int64_t key_id;
    if (db_metric_key_id(s->db, g->key, g->key_len, &key_id, err) != 0) return -1;
    size_t latest = g->idx[0];
    for (size_t i = 0; i < g->n; i++) {
        tmp[i] = b->pts[g->idx[i]];
        if (!segment_later(&b->pts[latest], &tmp[i])) latest = g->idx[i];
    }
    const metric_point_t *lp = &b->pts[latest];
    sqlite3_stmt *st = db_stmt(s->db, ST_LATEST_UPSERT);
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_int64(st, 2, key_id);
    if (!isnan(lp->value)) sqlite3_bind_double(st, 3, lp->value);
    sqlite3_bind_int64(st, 4, lp->timestamp);
    sqlite3_bind_int64(st, 5, lp->step);
    if (db_exec_stmt(s->db, st, err) != 0) return -1;
    /* Fill the tail segment if it has room, then new segments. */
    size_t done = 0;
    int64_t seq = 0;
    st = db_stmt(s->db, ST_SEG_TAIL);
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
    while (done < g->n) {
        size_t k = g->n - done < SEGMENT_POINTS ? g->n - done : SEGMENT_POINTS;
        int64_t mn = tmp[done].step, mx = tmp[done].step;
        for (size_t i = done; i < done + k; i++) {
            if (tmp[i].step < mn) mn = tmp[i].step;
            if (tmp[i].step > mx) mx = tmp[i].step;
        }
        segment_encode(tmp + done, k, blob);
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

static int s_write_metrics(storage_t *s, int64_t rid, const batch_t *b,
                           cairn_err_t *err)
{
    size_t most = 0;
    for (size_t i = 0; i < b->ngroups; i++)
        if (b->groups[i].n > most) most = b->groups[i].n;
    metric_point_t *tmp = malloc((most ? most : 1) * sizeof *tmp);
    /* A tail segment plus one batch's points for a key never exceed this. */
    unsigned char *blob = malloc((size_t)2 * SEGMENT_POINTS * SEGMENT_POINT_BYTES);
    int rc = tmp && blob ? 0 : cairn_err_set(err, 500, NULL, "out of memory");
    for (size_t i = 0; rc == 0 && i < b->ngroups; i++)
        rc = s_write_group(s, rid, b, &b->groups[i], tmp, blob, err);
    free(tmp);
    free(blob);
    return rc;
}

/* Params are write-once: the same value again is fine, another is 409. */
static int s_write_params(storage_t *s, int64_t rid, const msgpack_object *arr,
                          cairn_err_t *err)
{
    if (arr->via.array.size > LIMIT_BATCH_PARAMS)
        return cairn_err_set(err, 413, "too_large",
                             "a batch holds at most %d params; this one has %u",
                             LIMIT_BATCH_PARAMS, arr->via.array.size);
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *p = &arr->via.array.ptr[i];
        cairn_str_t k, v;
        if (storage_field_key(p, "key", &k, err) != 0 ||
            cairn_field_str(p, "value", true, LIMIT_PARAM_VALUE, &v, err) != 0)
            return cairn_err_set(err, 400, "bad_request", "params[%u]: %s", i,
                                 err->msg);
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
            return cairn_err_set(err, 409, "conflict",
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
        return cairn_err_set(err, 413, "too_large",
                             "a batch holds at most %d tags; this one has %u",
                             LIMIT_BATCH_TAGS, arr->via.array.size);
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *t = &arr->via.array.ptr[i];
        cairn_str_t k, v;
        if (storage_field_key(t, "key", &k, err) != 0 ||
            cairn_field_str(t, "value", true, LIMIT_TAG_VALUE, &v, err) != 0)
            return cairn_err_set(err, 400, "bad_request", "tags[%u]: %s", i, err->msg);
        sqlite3_stmt *st = db_stmt(s->db, ST_TAG_SET);
        sqlite3_bind_int64(st, 1, rid);
        sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, v.ptr, (int)v.len, SQLITE_STATIC);
        if (db_exec_stmt(s->db, st, err) != 0) return -1;
    }
    return 0;
}

static int s_active_run(storage_t *s, const msgpack_object *b, run_ref_t *run,
                        cairn_err_t *err)
{
    cairn_str_t id;
    if (cairn_field_str(b, "run_id", true, 64, &id, err) != 0 ||
        storage_find_run(s, id, run, err) != 0)
        return -1;
    if (!run->active)
        return cairn_err_set(err, 400, "bad_request",
                             "run '%.*s' is deleted: restore it before logging to it",
                             (int)id.len, id.ptr);
    return 0;
}

/* The whole batch in one transaction: all of it is stored, or none. */
static int s_log(storage_t *s, const msgpack_object *body, cairn_err_t *err)
{
    const msgpack_object *metrics = NULL, *params = NULL, *tags = NULL;
    run_ref_t run;
    batch_t b = {0};
    if (s_active_run(s, body, &run, err) != 0 ||
        cairn_field_array(body, "metrics", false, &metrics, err) < 0 ||
        cairn_field_array(body, "params", false, &params, err) < 0 ||
        cairn_field_array(body, "tags", false, &tags, err) < 0 ||
        (metrics && s_parse_metrics(s, metrics, &b, err) != 0)) {
        s_batch_free(&b);
        return -1;
    }
    int rc = db_begin(s->db, err);
    if (rc == 0 && params) rc = s_write_params(s, run.rid, params, err);
    if (rc == 0 && tags) rc = s_write_tags(s, run.rid, tags, err);
    if (rc == 0 && metrics) rc = s_write_metrics(s, run.rid, &b, err);
    if (rc == 0) rc = db_commit(s->db, err);
    if (rc != 0) db_rollback(s->db);
    s_batch_free(&b);
    return rc;
}

static void s_reply_logged(storage_t *s, cairn_req_t *req, int rc,
                           const cairn_err_t *err)
{
    if (rc != 0) return storage_reply_err(req, err);
    msgpack_pack_map(storage_reply_begin(s), 0);
    storage_reply_send(s, req, 200);
}

void log_batch(void *state, cairn_req_t *req)
{
    storage_t *s = state;
    cairn_err_t err = {0};
    int rc = s_log(s, cairn_body(req), &err);
    s_reply_logged(s, req, rc, &err);
}

/* log_metric and log_param rewrite their body as a one-entry batch. */
static void s_log_one(storage_t *s, cairn_req_t *req, const char *field)
{
    cairn_err_t err = {0};
    const msgpack_object *b = cairn_body(req);
    if (b->type != MSGPACK_OBJECT_MAP) {
        cairn_err_set(&err, 400, "bad_request", "the request body must be a map");
        return storage_reply_err(req, &err);
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
    int rc = s_log(s, &wrapped, &err);
    if (rc != 0 && err.st == 400) {
        /* Say "value", not "metrics[0]: value", for the single forms. */
        const char *colon = strstr(err.msg, "]: ");
        if (colon) memmove(err.msg, colon + 3, strlen(colon + 3) + 1);
    }
    s_reply_logged(s, req, rc, &err);
}

void log_metric(void *state, cairn_req_t *req)
{
    s_log_one(state, req, "metrics");
}

void log_param(void *state, cairn_req_t *req)
{
    s_log_one(state, req, "params");
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
            return k < 0 ? cairn_err_set(err, 500, "storage_error",
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

void metric_history(void *state, cairn_req_t *req)
{
    storage_t *s = state;
    cairn_err_t err = {0};
    const msgpack_object *b = cairn_body(req);
    run_ref_t run;
    cairn_str_t id, key;
    page_t page;
    size_t n;
    if (cairn_field_str(b, "run_id", true, 64, &id, &err) != 0 ||
        storage_find_run(s, id, &run, &err) != 0 ||
        storage_field_key(b, "key", &key, &err) != 0 ||
        page_parse(b, DEFAULT_HISTORY_RESULTS, LIMIT_HISTORY_RESULTS, &page, &err) !=
            0 ||
        s_load_series(s, run.rid, key, &n, &err) != 0)
        return storage_reply_err(req, &err);
    size_t from = page.offset < n ? (size_t)page.offset : n;
    size_t count = n - from < page.limit ? n - from : (size_t)page.limit;
    bool more = from + count < n;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, more ? 2 : 1);
    cairn_pack_cstr(pk, "metrics");
    msgpack_pack_array(pk, count);
    for (size_t i = from; i < from + count; i++) s_pack_point(pk, key, &s->pts[i]);
    if (more) page_pack_next(pk, &page);
    storage_reply_send(s, req, 200);
}

void metric_history_sampled(void *state, cairn_req_t *req)
{
    storage_t *s = state;
    cairn_err_t err = {0};
    const msgpack_object *b = cairn_body(req), *keys;
    run_ref_t run;
    cairn_str_t id;
    uint64_t max_points = 1000;
    if (cairn_field_str(b, "run_id", true, 64, &id, &err) != 0 ||
        storage_find_run(s, id, &run, &err) != 0 ||
        cairn_field_array(b, "keys", true, &keys, &err) != 0 ||
        cairn_field_uint(b, "max_points", false, &max_points, &err) < 0)
        return storage_reply_err(req, &err);
    if (max_points < 2 || max_points > LIMIT_SAMPLED_POINTS ||
        keys->via.array.size > 1000) {
        cairn_err_set(&err, 400, "bad_request",
                      "max_points must be from 2 to %d, and keys at most 1000",
                      LIMIT_SAMPLED_POINTS);
        return storage_reply_err(req, &err);
    }
    metric_point_t *out = malloc(max_points * sizeof *out);
    if (!out) {
        cairn_err_set(&err, 500, NULL, "out of memory");
        return storage_reply_err(req, &err);
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
            cairn_err_set(&err, 400, "bad_request", "keys[%u] must be a metric key", k);
            return storage_reply_err(req, &err);
        }
        key = (cairn_str_t){ko->via.str.ptr, ko->via.str.size};
        if (s_load_series(s, run.rid, key, &n, &err) != 0) {
            free(out);
            return storage_reply_err(req, &err);
        }
        size_t m = segment_downsample(s->pts, n, (size_t)max_points, out);
        msgpack_pack_map(pk, 3);
        cairn_pack_cstr(pk, "key");
        cairn_pack_strn(pk, key.ptr, key.len);
        cairn_pack_cstr(pk, "total_points");
        msgpack_pack_uint64(pk, n);
        cairn_pack_cstr(pk, "metrics");
        msgpack_pack_array(pk, m);
        for (size_t i = 0; i < m; i++) s_pack_point(pk, key, &out[i]);
    }
    free(out);
    storage_reply_send(s, req, 200);
}
