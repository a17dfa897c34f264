/* Experiments: create, read, search, rename, delete/restore, tags. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paging.h"
#include "sqlbuf.h"
#include "storage.h"

static void s_pack_id(msgpack_packer *pk, int64_t id)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)id);
    cairn_pack_strn(pk, buf, (size_t)n);
}

/* Pack the experiment the row of st (columns of ST_EXP_BY_*) describes. */
static int s_pack_experiment(storage_t *s, msgpack_packer *pk, sqlite3_stmt *row,
                             cairn_err_t *err)
{
    int64_t id = sqlite3_column_int64(row, 0);
    msgpack_pack_map(pk, 7);
    cairn_pack_cstr(pk, "experiment_id");
    s_pack_id(pk, id);
    cairn_pack_cstr(pk, "name");
    storage_pack_text(pk, row, 1);
    cairn_pack_cstr(pk, "artifact_location");
    storage_pack_text(pk, row, 2);
    cairn_pack_cstr(pk, "lifecycle_stage");
    storage_pack_text(pk, row, 3);
    cairn_pack_cstr(pk, "creation_time");
    msgpack_pack_int64(pk, sqlite3_column_int64(row, 4));
    cairn_pack_cstr(pk, "last_update_time");
    msgpack_pack_int64(pk, sqlite3_column_int64(row, 5));
    cairn_pack_cstr(pk, "tags");
    sqlite3_stmt *t = db_stmt(s->db, ST_EXP_TAGS);
    sqlite3_bind_int64(t, 1, id);
    storage_pack_kv_rows(s, pk, t);
    (void)err;
    return 0;
}

/* Find the experiment req's experiment_id names in req's workspace; leaves
 * the row on ST_EXP_BY_ID. */
static sqlite3_stmt *s_find(storage_t *s, cairn_req_t *req, int64_t *id,
                            cairn_err_t *err)
{
    cairn_str_t sid;
    if (cairn_field_str(cairn_body(req), "experiment_id", true, 32, &sid, err) != 0)
        return NULL;
    if (storage_parse_id(sid, "experiment_id", id, err) != 0) return NULL;
    cairn_name_object(req, "experiment", sid.ptr, sid.len);
    return storage_find_experiment(s->db, cairn_workspace(req), *id, err);
}

static int s_reply_experiment(storage_t *s, cairn_req_t *req, sqlite3_stmt *row)
{
    cairn_err_t err = {0};
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "experiment");
    s_pack_experiment(s, pk, row, &err);
    sqlite3_reset(row);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

/* tags [{key, value}] on an experiment, inside the caller's transaction. */
static int s_set_tags(storage_t *s, int64_t id, const msgpack_object *tags,
                      cairn_err_t *err)
{
    for (uint32_t i = 0; tags && i < tags->via.array.size; i++) {
        const msgpack_object *t = &tags->via.array.ptr[i];
        cairn_str_t k, v;
        if (storage_field_key(t, "key", &k, err) != 0 ||
            cairn_field_str(t, "value", true, LIMIT_TAG_VALUE, &v, err) != 0)
            return storage_err_at(err, "tags", i);
        sqlite3_stmt *st = db_stmt(s->db, ST_EXP_TAG_SET);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, v.ptr, (int)v.len, SQLITE_STATIC);
        if (db_exec_stmt(s->db, st, err) != 0) return -1;
    }
    return 0;
}

int exp_create(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req), *tags = NULL;
    cairn_str_t name, loc = {NULL, 0};
    if (cairn_field_str(b, "name", true, LIMIT_EXPERIMENT_NAME, &name, err) != 0 ||
        cairn_field_str(b, "artifact_location", false, 4096, &loc, err) < 0 ||
        cairn_field_array(b, "tags", false, &tags, err) < 0)
        return -1;
    if (name.len == 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'name' must not be empty");
        return -1;
    }
    if (db_begin(s->db, err) != 0) return -1;
    int64_t now = (int64_t)cairn_wall_ms();
    sqlite3_stmt *st = db_stmt(s->db, ST_EXP_INSERT);
    sqlite3_bind_text(st, 1, name.ptr, (int)name.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, loc.ptr ? loc.ptr : "", (int)loc.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_text(st, 5, cairn_workspace(req), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT) {
        db_rollback(s->db);
        cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                      "an experiment named '%.*s' already exists", (int)name.len,
                      name.ptr);
        return -1;
    }
    int64_t id = sqlite3_last_insert_rowid(db_handle(s->db));
    if (rc != SQLITE_DONE) {
        db_fail(s->db, "create the experiment", err);
        goto fail;
    }
    if (!loc.ptr || loc.len == 0) {
        /* The default location names the experiment's id. */
        char def[64];
        snprintf(def, sizeof def, "cairn-artifacts:/%lld", (long long)id);
        sqlite3 *h = db_handle(s->db);
        sqlite3_stmt *u;
        if (sqlite3_prepare_v2(h,
                               "UPDATE experiments SET artifact_location = ? WHERE "
                               "experiment_id = ?",
                               -1, &u, NULL) != SQLITE_OK) {
            db_fail(s->db, "set the artifact location", err);
            goto fail;
        }
        sqlite3_bind_text(u, 1, def, -1, SQLITE_STATIC);
        sqlite3_bind_int64(u, 2, id);
        rc = db_exec_stmt(s->db, u, err);
        sqlite3_finalize(u);
        if (rc != 0) goto fail;
    }
    if (s_set_tags(s, id, tags, err) != 0 || db_commit(s->db, err) != 0) goto fail;
    char sid[24];
    int n = snprintf(sid, sizeof sid, "%lld", (long long)id);
    cairn_name_object(req, "experiment", sid, (size_t)n);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "experiment_id");
    s_pack_id(pk, id);
    return storage_reply_send(s, req, CAIRN_ST_OK);
fail:
    db_rollback(s->db);
    return -1;
}

int exp_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    int64_t id;
    sqlite3_stmt *row = s_find(s, req, &id, err);
    if (!row) return -1;
    return s_reply_experiment(s, req, row);
}

int exp_get_by_name(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    cairn_str_t name;
    if (cairn_field_str(cairn_body(req), "experiment_name", true, LIMIT_EXPERIMENT_NAME,
                        &name, err) != 0)
        return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_EXP_BY_NAME);
    sqlite3_bind_text(st, 1, name.ptr, (int)name.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cairn_workspace(req), -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                      "no experiment is named '%.*s'", (int)name.len, name.ptr);
        return -1;
    }
    return s_reply_experiment(s, req, st);
}

/* A tiny filter for experiments: clauses `name OP 'value'` joined by AND,
 * OP one of = != LIKE ILIKE (what MLflow's UI and clients send). */
static int s_exp_filter(cairn_str_t f, sqlbuf_t *sql, sql_binds_t *binds,
                        cairn_err_t *err)
{
    size_t i = 0;
    while (i < f.len) {
        while (i < f.len && f.ptr[i] == ' ') i++;
        if (i == f.len) break;
        size_t start = i;
        if (f.len - i < 4 || strncasecmp(f.ptr + i, "name", 4) != 0)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "filter: at position %zu: only 'name' clauses are "
                                 "supported for experiments",
                                 start + 1);
        i += 4;
        while (i < f.len && f.ptr[i] == ' ') i++;
        const char *op = NULL;
        static const char *ops[][2] = {
            {"!=", "!="}, {"=", "="}, {"ILIKE", "ILIKE"}, {"LIKE", "LIKE"}};
        for (size_t k = 0; k < 4 && !op; k++)
            if (f.len - i >= strlen(ops[k][0]) &&
                strncasecmp(f.ptr + i, ops[k][0], strlen(ops[k][0])) == 0) {
                op = ops[k][1];
                i += strlen(ops[k][0]);
            }
        if (!op)
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "filter: at position %zu: expected =, !=, LIKE or ILIKE", i + 1);
        while (i < f.len && f.ptr[i] == ' ') i++;
        if (i == f.len || (f.ptr[i] != '\'' && f.ptr[i] != '"'))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "filter: at position %zu: expected a quoted string",
                                 i + 1);
        char q = f.ptr[i++];
        size_t vstart = i;
        while (i < f.len && f.ptr[i] != q) i++;
        if (i == f.len)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "filter: at position %zu: unterminated string",
                                 vstart);
        sqlbuf_add(sql, !strcmp(op, "ILIKE")  ? " AND lower(name) LIKE lower(?)"
                        : !strcmp(op, "LIKE") ? " AND name LIKE ?"
                        : !strcmp(op, "=")    ? " AND name = ?"
                                              : " AND name != ?");
        sql_binds_text(binds, f.ptr + vstart, i - vstart);
        i++;
        while (i < f.len && f.ptr[i] == ' ') i++;
        if (i < f.len) {
            if (f.len - i < 3 || strncasecmp(f.ptr + i, "AND", 3) != 0)
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                     "filter: at position %zu: expected AND", i + 1);
            i += 3;
        }
    }
    return 0;
}

static int s_view_clause(const msgpack_object *b, const char *field, sqlbuf_t *sql,
                         const char *col, cairn_err_t *err)
{
    cairn_str_t v = {"ACTIVE_ONLY", 11};
    if (cairn_field_str(b, field, false, 32, &v, err) < 0) return -1;
    if (cairn_str_eq(v, "ACTIVE_ONLY"))
        sqlbuf_addf(sql, " AND %s = 'active'", col);
    else if (cairn_str_eq(v, "DELETED_ONLY"))
        sqlbuf_addf(sql, " AND %s = 'deleted'", col);
    else if (!cairn_str_eq(v, "ALL"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must be ACTIVE_ONLY, DELETED_ONLY or ALL", field);
    return 0;
}

int exp_search(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t filter = {"", 0};
    page_t page;
    sqlbuf_t sql;
    sql_binds_t binds;
    sqlbuf_init(&sql);
    sql_binds_init(&binds);
    sqlite3_stmt *st = NULL;
    sqlbuf_add(&sql,
               "SELECT experiment_id, name, artifact_location, lifecycle_stage, "
               "creation_time, last_update_time FROM experiments WHERE ws = ?");
    sql_binds_text(&binds, cairn_workspace(req), strlen(cairn_workspace(req)));
    if (page_parse(b, 1000, LIMIT_SEARCH_RESULTS, &page, err) != 0 ||
        cairn_field_str(b, "filter", false, 65536, &filter, err) < 0 ||
        s_view_clause(b, "view_type", &sql, "lifecycle_stage", err) != 0 ||
        s_exp_filter(filter, &sql, &binds, err) != 0)
        goto fail;
    sqlbuf_add(&sql, " ORDER BY experiment_id LIMIT ? OFFSET ?");
    sql_binds_int(&binds, (int64_t)page.limit + 1);
    sql_binds_int(&binds, (int64_t)page.offset);
    if (sql.oom || binds.oom) {
        cairn_err_oom(err, NULL);
        goto fail;
    }
    if (sqlite3_prepare_v2(db_handle(s->db), sql.data, -1, &st, NULL) != SQLITE_OK ||
        sql_binds_apply(&binds, st, 1) < 0) {
        db_fail(s->db, "search experiments", err);
        goto fail;
    }
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) n++;
    sqlite3_reset(st);
    bool more = n > page.limit;
    if (more) n = page.limit;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, more ? 2 : 1);
    cairn_pack_cstr(pk, "experiments");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n && sqlite3_step(st) == SQLITE_ROW; i++)
        s_pack_experiment(s, pk, st, err);
    if (more) page_pack_next(pk, &page);
    sqlite3_finalize(st);
    sqlbuf_free(&sql);
    sql_binds_free(&binds);
    return storage_reply_send(s, req, CAIRN_ST_OK);
fail:
    sqlite3_finalize(st);
    sqlbuf_free(&sql);
    sql_binds_free(&binds);
    return -1;
}

/* Run one UPDATE on an existing experiment in its own transaction. */
static int s_update(storage_t *s, cairn_req_t *req, db_stmt_id_t which,
                    const char *text, size_t len, bool require_active, cairn_err_t *err)
{
    int64_t id;
    sqlite3_stmt *row = s_find(s, req, &id, err);
    if (!row) return -1;
    bool active = strcmp((const char *)sqlite3_column_text(row, 3), "active") == 0;
    sqlite3_reset(row);
    if (id == 0 && which == ST_EXP_SET_STAGE) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the Default experiment cannot be deleted");
        return -1;
    }
    if (require_active && !active) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "experiment %lld is deleted: restore it first", (long long)id);
        return -1;
    }
    sqlite3_stmt *st = db_stmt(s->db, which);
    sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)cairn_wall_ms());
    sqlite3_bind_int64(st, 3, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT) {
        cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                      "an experiment named '%.*s' already exists", (int)len, text);
        return -1;
    }
    if (rc != SQLITE_DONE) {
        db_fail(s->db, "update the experiment", err);
        return -1;
    }
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 0);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

int exp_update(void *state, cairn_req_t *req, cairn_err_t *err)
{
    cairn_str_t name;
    if (cairn_field_str(cairn_body(req), "new_name", true, LIMIT_EXPERIMENT_NAME, &name,
                        err) != 0)
        return -1;
    if (name.len == 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'new_name' must not be empty");
        return -1;
    }
    return s_update(state, req, ST_EXP_RENAME, name.ptr, name.len, true, err);
}

int exp_delete(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_update(state, req, ST_EXP_SET_STAGE, "deleted", 7, false, err);
}

int exp_restore(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_update(state, req, ST_EXP_SET_STAGE, "active", 6, false, err);
}

int exp_delete_tag(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    int64_t id;
    sqlite3_stmt *row = s_find(s, req, &id, err);
    if (!row) return -1;
    sqlite3_reset(row);
    cairn_str_t k;
    if (storage_field_key(cairn_body(req), "key", &k, err) != 0) return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_EXP_TAG_DELETE);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
    if (db_exec_stmt(s->db, st, err) != 0) return -1;
    if (sqlite3_changes(db_handle(s->db)) == 0)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "the experiment has no tag '%.*s'", (int)k.len, k.ptr);
    msgpack_pack_map(storage_reply_begin(s), 0);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

int exp_set_tag(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    int64_t id;
    sqlite3_stmt *row = s_find(s, req, &id, err);
    if (!row) return -1;
    sqlite3_reset(row);
    cairn_str_t k, v;
    const msgpack_object *b = cairn_body(req);
    if (storage_field_key(b, "key", &k, err) != 0 ||
        cairn_field_str(b, "value", true, LIMIT_TAG_VALUE, &v, err) != 0)
        return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_EXP_TAG_SET);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, k.ptr, (int)k.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, v.ptr, (int)v.len, SQLITE_STATIC);
    if (db_exec_stmt(s->db, st, err) != 0) return -1;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 0);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}
