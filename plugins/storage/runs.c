/* Runs: create (nested too), update, read, delete/restore, tags. */
#define _GNU_SOURCE
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"

enum {
    COL_RID,
    COL_UUID,
    COL_EXP,
    COL_NAME,
    COL_STATUS,
    COL_START,
    COL_END,
    COL_STAGE,
    COL_URI,
    COL_PARENT,
    COL_USER
};

static void s_int_or_nil(msgpack_packer *pk, sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_int64(pk, sqlite3_column_int64(st, col));
}

void storage_pack_metric_row(msgpack_packer *pk, sqlite3_stmt *st)
{
    msgpack_pack_map(pk, 4);
    cairn_pack_cstr(pk, "key");
    storage_pack_text(pk, st, 0);
    cairn_pack_cstr(pk, "value");
    if (sqlite3_column_type(st, 1) == SQLITE_NULL) /* NaN is stored as NULL */
        msgpack_pack_double(pk, 0.0 / 0.0);
    else
        msgpack_pack_double(pk, sqlite3_column_double(st, 1));
    cairn_pack_cstr(pk, "timestamp");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, 2));
    cairn_pack_cstr(pk, "step");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, 3));
}

void storage_pack_run_info(msgpack_packer *pk, sqlite3_stmt *r)
{
    bool parent = sqlite3_column_type(r, COL_PARENT) != SQLITE_NULL;
    msgpack_pack_map(pk, parent ? 11 : 10);
    cairn_pack_cstr(pk, "run_id");
    storage_pack_text(pk, r, COL_UUID);
    cairn_pack_cstr(pk, "run_uuid");
    storage_pack_text(pk, r, COL_UUID);
    cairn_pack_cstr(pk, "experiment_id");
    char id[24];
    int n =
        snprintf(id, sizeof id, "%lld", (long long)sqlite3_column_int64(r, COL_EXP));
    cairn_pack_strn(pk, id, (size_t)n);
    cairn_pack_cstr(pk, "run_name");
    storage_pack_text(pk, r, COL_NAME);
    cairn_pack_cstr(pk, "status");
    storage_pack_text(pk, r, COL_STATUS);
    cairn_pack_cstr(pk, "start_time");
    s_int_or_nil(pk, r, COL_START);
    cairn_pack_cstr(pk, "end_time");
    s_int_or_nil(pk, r, COL_END);
    cairn_pack_cstr(pk, "artifact_uri");
    storage_pack_text(pk, r, COL_URI);
    cairn_pack_cstr(pk, "lifecycle_stage");
    storage_pack_text(pk, r, COL_STAGE);
    cairn_pack_cstr(pk, "user_id");
    storage_pack_text(pk, r, COL_USER);
    if (parent) {
        cairn_pack_cstr(pk, "parent_run_id");
        storage_pack_text(pk, r, COL_PARENT);
    }
}

int storage_pack_run(storage_t *s, msgpack_packer *pk, int64_t rid, cairn_err_t *err)
{
    sqlite3_stmt *r = db_stmt(s->db, ST_RUN_BY_RID);
    sqlite3_bind_int64(r, 1, rid);
    if (sqlite3_step(r) != SQLITE_ROW) {
        sqlite3_reset(r);
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "the run is gone");
    }
    bool inputs = storage_has_inputs(s, rid);
    msgpack_pack_map(pk, inputs ? 3 : 2);
    cairn_pack_cstr(pk, "info");
    storage_pack_run_info(pk, r);
    sqlite3_reset(r);
    cairn_pack_cstr(pk, "data");
    msgpack_pack_map(pk, 3);
    sqlite3_stmt *st = db_stmt(s->db, ST_RUN_LATEST);
    sqlite3_bind_int64(st, 1, rid);
    cairn_pack_cstr(pk, "metrics");
    storage_pack_rows(s, pk, st, storage_pack_metric_row);
    st = db_stmt(s->db, ST_RUN_PARAMS);
    sqlite3_bind_int64(st, 1, rid);
    cairn_pack_cstr(pk, "params");
    storage_pack_kv_rows(s, pk, st);
    st = db_stmt(s->db, ST_RUN_TAGS);
    sqlite3_bind_int64(st, 1, rid);
    cairn_pack_cstr(pk, "tags");
    storage_pack_kv_rows(s, pk, st);
    if (inputs) {
        cairn_pack_cstr(pk, "inputs");
        storage_pack_inputs(s, pk, rid);
    }
    return 0;
}

int storage_find_run(db_t *db, const char *ws, cairn_str_t run_id, run_ref_t *out,
                     char **uri, cairn_err_t *err)
{
    sqlite3_stmt *r = db_stmt(db, ST_RUN_BY_UUID);
    sqlite3_bind_text(r, 1, run_id.ptr, (int)run_id.len, SQLITE_STATIC);
    if (ws)
        sqlite3_bind_text(r, 2, ws, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(r, 2);
    int rc = sqlite3_step(r);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(r);
        if (rc != SQLITE_DONE) return db_fail(db, "find a run", err);
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no run has the id '%.*s'",
                             (int)(run_id.len > 64 ? 64 : run_id.len), run_id.ptr);
    }
    out->rid = sqlite3_column_int64(r, COL_RID);
    out->experiment_id = sqlite3_column_int64(r, COL_EXP);
    out->active =
        strcmp((const char *)sqlite3_column_text(r, COL_STAGE), "active") == 0;
    out->id = run_id;
    if (uri) {
        const char *u = (const char *)sqlite3_column_text(r, COL_URI);
        *uri = strdup(u ? u : "");
    }
    sqlite3_reset(r);
    if (uri && !*uri) return cairn_err_oom(err, NULL);
    return 0;
}

sqlite3_stmt *storage_find_experiment(db_t *db, const char *ws, int64_t id,
                                      cairn_err_t *err)
{
    sqlite3_stmt *st = db_stmt(db, ST_EXP_BY_ID);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, ws, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return st;
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        db_fail(db, "find an experiment", err);
    else
        cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                      "no experiment has the id '%lld'", (long long)id);
    return NULL;
}

int storage_req_run(db_t *db, cairn_req_t *req, const char *before, run_ref_t *out,
                    char **uri, cairn_err_t *err)
{
    if (storage_body_run(db, cairn_workspace(req), cairn_body(req), before, out, uri,
                         err) != 0)
        return -1;
    cairn_name_object(req, "run", out->id.ptr, out->id.len);
    return 0;
}

int storage_body_run(db_t *db, const char *ws, const msgpack_object *b,
                     const char *before, run_ref_t *out, char **uri, cairn_err_t *err)
{
    cairn_str_t id;
    if (uri) *uri = NULL;
    if (cairn_field_str(b, "run_id", true, RUN_ID_MAX, &id, err) != 0) return -1;
    if (id.len == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'run_id' must not be empty");
    if (storage_find_run(db, ws, id, out, uri, err) != 0) return -1;
    if (before && !out->active) {
        if (uri) {
            free(*uri);
            *uri = NULL;
        }
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "run '%.*s' is deleted: restore it before %s", (int)id.len,
                             id.ptr, before);
    }
    return 0;
}

static int s_reply_run(storage_t *s, cairn_req_t *req, int64_t rid, cairn_err_t *err)
{
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "run");
    if (storage_pack_run(s, pk, rid, err) != 0) return -1;
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

static int s_reply_empty(storage_t *s, cairn_req_t *req)
{
    msgpack_pack_map(storage_reply_begin(s), 0);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

static int s_put_tag(storage_t *s, int64_t rid, cairn_str_t k, cairn_str_t v,
                     cairn_err_t *err)
{
    sqlite3_stmt *st = db_stmt(s->db, ST_TAG_SET);
    sqlite3_bind_int64(st, 1, rid);
    sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, v.ptr, (int)v.len, SQLITE_STATIC);
    return db_exec_stmt(s->db, st, err);
}

static int s_put_tags(storage_t *s, int64_t rid, const msgpack_object *tags,
                      cairn_err_t *err)
{
    for (uint32_t i = 0; tags && i < tags->via.array.size; i++) {
        cairn_str_t k, v;
        const msgpack_object *t = &tags->via.array.ptr[i];
        if (storage_field_key(t, "key", &k, err) != 0 ||
            cairn_field_str(t, "value", true, LIMIT_TAG_VALUE, &v, err) != 0)
            return storage_err_at(err, "tags", i);
        if (s_put_tag(s, rid, k, v, err) != 0) return -1;
    }
    return 0;
}

typedef struct new_run {
    int64_t experiment_id;
    cairn_str_t name;
    int64_t start_time;
    const msgpack_object *tags;
    run_ref_t parent;
    bool has_parent;
    char parent_uuid[65];
} new_run_t;

static int s_parse_new_run(storage_t *s, cairn_req_t *req, new_run_t *nr,
                           cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    memset(nr, 0, sizeof *nr);
    cairn_str_t exp, parent = {NULL, 0};
    nr->start_time = (int64_t)cairn_wall_ms();
    if (cairn_field_str(b, "experiment_id", true, 32, &exp, err) != 0 ||
        storage_parse_id(exp, "experiment_id", &nr->experiment_id, err) != 0 ||
        cairn_field_str(b, "run_name", false, LIMIT_RUN_NAME, &nr->name, err) < 0 ||
        cairn_field_int(b, "start_time", false, &nr->start_time, err) < 0 ||
        cairn_field_array(b, "tags", false, &nr->tags, err) < 0 ||
        cairn_field_str(b, "parent_run_id", false, 64, &parent, err) < 0)
        return -1;
    if (parent.ptr && parent.len) {
        if (storage_find_run(s->db, cairn_workspace(req), parent, &nr->parent, NULL,
                             err) != 0) {
            err->st = 404;
            return -1;
        }
        nr->has_parent = true;
        snprintf(nr->parent_uuid, sizeof nr->parent_uuid, "%.*s", (int)parent.len,
                 parent.ptr);
    }
    return 0;
}

/* The experiment's artifact location, checking it exists and is active. */
static int s_experiment_location(storage_t *s, const char *ws, int64_t id, char *loc,
                                 size_t cap, cairn_err_t *err)
{
    sqlite3_stmt *e = storage_find_experiment(s->db, ws, id, err);
    if (!e) return -1;
    bool active = strcmp((const char *)sqlite3_column_text(e, 3), "active") == 0;
    snprintf(loc, cap, "%s", (const char *)sqlite3_column_text(e, 2));
    sqlite3_reset(e);
    if (!active)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "experiment %lld is deleted: restore it to add runs",
                             (long long)id);
    return 0;
}

int run_create(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    new_run_t nr;
    char loc[4200], uri[4400], uuid[33], name[80];
    if (s_parse_new_run(s, req, &nr, err) != 0 ||
        s_experiment_location(s, cairn_workspace(req), nr.experiment_id, loc,
                              sizeof loc, err) != 0)
        return -1;
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(uuid, sizeof uuid, raw, sizeof raw);
    cairn_name_object(req, "run", uuid, 32);
    snprintf(uri, sizeof uri, "%s/%s/artifacts", loc, uuid);
    if (!nr.name.ptr || nr.name.len == 0) {
        int n = snprintf(name, sizeof name, "run-%.8s", uuid);
        nr.name = (cairn_str_t){name, (size_t)n};
    }
    /* In the write group: answered once its transaction commits. */
    if (storage_group_begin(s, err) != 0) return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_RUN_INSERT);
    sqlite3_bind_text(st, 1, uuid, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, nr.experiment_id);
    sqlite3_bind_text(st, 3, nr.name.ptr, (int)nr.name.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, nr.start_time);
    sqlite3_bind_text(st, 5, uri, -1, SQLITE_STATIC);
    if (nr.has_parent) sqlite3_bind_int64(st, 6, nr.parent.rid);
    sqlite3_bind_text(st, 7, cairn_principal(req), -1, SQLITE_STATIC);
    int rc = db_exec_stmt(s->db, st, err);
    int64_t rid = sqlite3_last_insert_rowid(db_handle(s->db));
    if (rc == 0) storage_fresh_add(s, rid);
    /* MLflow's system tags, so MLflow clients find what they expect. */
    if (rc == 0 &&
        (s_put_tag(s, rid, (cairn_str_t){"mlflow.runName", 14}, nr.name, err) != 0 ||
         (nr.has_parent &&
          s_put_tag(s, rid, (cairn_str_t){"mlflow.parentRunId", 18},
                    (cairn_str_t){nr.parent_uuid, strlen(nr.parent_uuid)}, err) != 0) ||
         s_put_tags(s, rid, nr.tags, err) != 0))
        rc = -1;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "run");
    if (rc == 0) rc = storage_pack_run(s, pk, rid, err);
    if (storage_group_end(s, rc, err) != 0) return -1;
    storage_group_reply(s, req);
    return 0;
}

static bool s_status_ok(cairn_str_t st)
{
    static const char *ok[] = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (cairn_str_eq(st, ok[i])) return true;
    return false;
}

static void s_publish_status(storage_t *s, cairn_str_t run_id, cairn_str_t status)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "run_id");
    cairn_pack_strn(&pk, run_id.ptr, run_id.len);
    cairn_pack_cstr(&pk, "status");
    cairn_pack_strn(&pk, status.ptr, status.len);
    cairn_publish(s->ctx, "run.status", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

int run_update(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req);
    run_ref_t run;
    cairn_str_t status = {NULL, 0}, name = {NULL, 0}, id;
    int64_t end = 0;
    int has_end;
    if (storage_req_run(s->db, req, "changing it", &run, NULL, err) != 0 ||
        cairn_field_str(b, "status", false, 16, &status, err) < 0 ||
        (has_end = cairn_field_int(b, "end_time", false, &end, err)) < 0 ||
        cairn_field_str(b, "run_name", false, LIMIT_RUN_NAME, &name, err) < 0)
        return -1;
    cairn_field_str(b, "run_id", true, 64, &id, err);
    if (status.ptr && !s_status_ok(status)) {
        cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "status must be RUNNING, SCHEDULED, FINISHED, FAILED or KILLED, not "
            "'%.*s'",
            (int)status.len, status.ptr);
        return -1;
    }
    if (db_begin(s->db, err) != 0) return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_RUN_UPDATE);
    if (status.ptr)
        sqlite3_bind_text(st, 1, status.ptr, (int)status.len, SQLITE_STATIC);
    if (has_end == 0) sqlite3_bind_int64(st, 2, end);
    if (name.ptr && name.len)
        sqlite3_bind_text(st, 3, name.ptr, (int)name.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, run.rid);
    if (db_exec_stmt(s->db, st, err) != 0 ||
        (name.ptr && name.len &&
         s_put_tag(s, run.rid, (cairn_str_t){"mlflow.runName", 14}, name, err) != 0) ||
        db_commit(s->db, err) != 0) {
        db_rollback(s->db);
        return -1;
    }
    if (status.ptr) s_publish_status(s, id, status);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "run_info");
    sqlite3_stmt *r = db_stmt(s->db, ST_RUN_BY_RID);
    sqlite3_bind_int64(r, 1, run.rid);
    if (sqlite3_step(r) == SQLITE_ROW)
        storage_pack_run_info(pk, r);
    else
        msgpack_pack_nil(pk);
    sqlite3_reset(r);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

int run_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    run_ref_t run;
    if (storage_req_run(s->db, req, NULL, &run, NULL, err) != 0) return -1;
    return s_reply_run(s, req, run.rid, err);
}

static int s_set_stage(storage_t *s, cairn_req_t *req, const char *stage,
                       cairn_err_t *err)
{
    run_ref_t run;
    if (storage_req_run(s->db, req, NULL, &run, NULL, err) != 0) return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_RUN_SET_STAGE);
    sqlite3_bind_text(st, 1, stage, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, run.rid);
    if (db_exec_stmt(s->db, st, err) != 0) return -1;
    return s_reply_empty(s, req);
}

int run_delete(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_set_stage(state, req, "deleted", err);
}

int run_restore(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_set_stage(state, req, "active", err);
}

int run_set_tag(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req);
    run_ref_t run;
    cairn_str_t k, v;
    if (storage_req_run(s->db, req, "changing it", &run, NULL, err) != 0 ||
        storage_field_key(b, "key", &k, err) != 0 ||
        cairn_field_str(b, "value", true, LIMIT_TAG_VALUE, &v, err) != 0)
        return -1;
    if (s_put_tag(s, run.rid, k, v, err) != 0) return -1;
    if (cairn_str_eq(k, "mlflow.runName") && v.len) {
        sqlite3_stmt *st = db_stmt(s->db, ST_RUN_UPDATE);
        sqlite3_bind_text(st, 3, v.ptr, (int)v.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, run.rid);
        if (db_exec_stmt(s->db, st, err) != 0) return -1;
    }
    return s_reply_empty(s, req);
}

/* MLflow's record of the models logged to a run: a JSON array of their
 * MLmodel documents (as JSON) in this tag, appended to by log_model. */
#define MODEL_HISTORY_TAG "mlflow.log-model.history"
#define LIMIT_MODEL_JSON (256u << 10)
#define LIMIT_MODEL_HISTORY (1u << 20)

static bool s_json_object_text(cairn_str_t t)
{
    while (t.len && strchr(" \t\r\n", t.ptr[0])) t.ptr++, t.len--;
    while (t.len && strchr(" \t\r\n", t.ptr[t.len - 1])) t.len--;
    return t.len >= 2 && t.ptr[0] == '{' && t.ptr[t.len - 1] == '}';
}

/* log_model {run_id*, model_json*}: MLflow's runs/log-model. The history
 * is read and written in one transaction, so that two at once both land. */
int run_log_model(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    run_ref_t run;
    cairn_str_t m;
    if (storage_req_run(s->db, req, "logging to it", &run, NULL, err) != 0 ||
        cairn_field_str(cairn_body(req), "model_json", true, LIMIT_MODEL_JSON, &m,
                        err) != 0)
        return -1;
    if (!s_json_object_text(m))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "model_json must be a JSON object (an MLmodel as JSON)");
    if (db_begin(s->db, err) != 0) return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_TAG_GET);
    sqlite3_bind_int64(st, 1, run.rid);
    sqlite3_bind_text(st, 2, MODEL_HISTORY_TAG, -1, SQLITE_STATIC);
    char *old = NULL;
    size_t olen = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        olen = (size_t)sqlite3_column_bytes(st, 0);
        old = strndup((const char *)sqlite3_column_text(st, 0), olen);
    }
    sqlite3_reset(st);
    /* "[a, b]" + m -> "[a, b, m]"; anything else (set by hand) starts over */
    bool append = old && olen >= 2 && old[0] == '[' && old[olen - 1] == ']' && olen > 2;
    char *hist = NULL;
    int n =
        append ? asprintf(&hist, "%.*s, %.*s]", (int)(olen - 1), old, (int)m.len, m.ptr)
               : asprintf(&hist, "[%.*s]", (int)m.len, m.ptr);
    free(old);
    int rc = n < 0 ? cairn_err_oom(err, NULL) : 0;
    if (rc == 0 && (size_t)n > LIMIT_MODEL_HISTORY)
        rc = cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                           "the run's model history would pass %u bytes",
                           LIMIT_MODEL_HISTORY);
    if (rc == 0) {
        st = db_stmt(s->db, ST_TAG_SET);
        sqlite3_bind_int64(st, 1, run.rid);
        sqlite3_bind_text(st, 2, MODEL_HISTORY_TAG, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, hist, n, SQLITE_STATIC);
        rc = db_exec_stmt(s->db, st, err);
    }
    if (rc == 0) rc = db_commit(s->db, err);
    free(hist);
    if (rc != 0) {
        db_rollback(s->db);
        return -1;
    }
    return s_reply_empty(s, req);
}

int run_delete_tag(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req);
    run_ref_t run;
    cairn_str_t k;
    if (storage_req_run(s->db, req, "changing it", &run, NULL, err) != 0 ||
        storage_field_key(b, "key", &k, err) != 0)
        return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_TAG_DELETE);
    sqlite3_bind_int64(st, 1, run.rid);
    sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
    if (db_exec_stmt(s->db, st, err) != 0) return -1;
    if (sqlite3_changes(db_handle(s->db)) == 0) {
        cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                      "the run has no tag '%.*s'", (int)k.len, k.ptr);
        return -1;
    }
    return s_reply_empty(s, req);
}
