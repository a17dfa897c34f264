/* Workspaces: create, list, delete. `default` always exists (the schema
 * makes it) and cannot be deleted; deleting another drops its role
 * assignments in the same commit. Both publish auth.changed {}: any
 * principal's grants may have changed, and the kernel learns the workspaces
 * that exist from resolve's answers (it refuses a request to any other). */
#define _GNU_SOURCE
#include <string.h>

#include "auth.h"

/* How many workspaces there are. */
static int s_count(auth_t *a, int64_t *n, cairn_err_t *err)
{
    sqlite3_stmt *c = auth_db_stmt(a->db, AST_WS_COUNT);
    int rc = sqlite3_step(c);
    *n = rc == SQLITE_ROW ? sqlite3_column_int64(c, 0) : 0;
    sqlite3_reset(c);
    return rc == SQLITE_ROW ? 0 : auth_db_fail(a->db, "count workspaces", err);
}

static int s_room_for_one(auth_t *a, cairn_err_t *err)
{
    int64_t n;
    if (s_count(a, &n, err) != 0) return -1;
    if (n >= AUTH_MAX_WORKSPACES)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "there are already %d workspaces, the most there may be",
                             AUTH_MAX_WORKSPACES);
    return 0;
}

int auth_create_workspace(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    char name[AUTH_NAME_MAX + 1];
    if (auth_field_name(cairn_body(req), "name", true, auth_ws_char, name, err) != 0 ||
        s_room_for_one(a, err) != 0)
        return -1;
    cairn_name_object(req, "workspace", name, strlen(name));
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_WS_INSERT);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (int64_t)cairn_wall_ms());
    if (auth_db_exec(a->db, st, "create a workspace", err) != 0) {
        if (err->st == CAIRN_ST_CONFLICT)
            cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                          "workspace '%s' already exists", name);
        return -1;
    }
    auth_changed(a, NULL, NULL);
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "name", name);
    return auth_reply_send(a, req);
}

int auth_pack_workspace_names(auth_t *a, msgpack_packer *pk, cairn_err_t *err)
{
    int64_t n;
    if (s_count(a, &n, err) != 0) return -1;
    msgpack_pack_array(pk, (uint32_t)n);
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_WS_LIST);
    int64_t i = 0;
    for (; i < n && sqlite3_step(st) == SQLITE_ROW; i++)
        cairn_pack_cstr(pk, (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    /* Same transaction-less connection, one thread: the count holds. */
    if (i != n) return auth_db_fail(a->db, "list workspaces", err);
    return 0;
}

int auth_list_workspaces(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_WS_LIST);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        msgpack_pack_map(&rp, 2);
        cairn_pack_kv_str(&rp, "name", (const char *)sqlite3_column_text(st, 0));
        cairn_pack_cstr(&rp, "created");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 1));
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        msgpack_sbuffer_destroy(&rows);
        return auth_db_fail(a->db, "list workspaces", err);
    }
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "workspaces");
    msgpack_pack_array(pk, n);
    msgpack_sbuffer_write(&a->sb, rows.data, rows.size);
    msgpack_sbuffer_destroy(&rows);
    return auth_reply_send(a, req);
}

/* delete_workspace {name*}. */
int auth_delete_workspace(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    char name[AUTH_NAME_MAX + 1];
    if (auth_field_name(cairn_body(req), "name", true, auth_ws_char, name, err) != 0)
        return -1;
    cairn_name_object(req, "workspace", name, strlen(name));
    if (strcmp(name, "default") == 0)
        return cairn_err_set(
            err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
            "the default workspace always exists and cannot be deleted");
    if (auth_db_tx(a->db, AST_BEGIN, err) != 0) return -1;
    sqlite3_stmt *d = auth_db_stmt(a->db, AST_WS_DELETE);
    sqlite3_bind_text(d, 1, name, -1, SQLITE_TRANSIENT);
    int rc = auth_db_exec(a->db, d, "delete a workspace", err);
    bool found = rc == 0 && auth_db_changes(a->db) > 0;
    if (found) {
        sqlite3_stmt *x = auth_db_stmt(a->db, AST_ASSIGN_DROP_WS);
        sqlite3_bind_text(x, 1, name, -1, SQLITE_TRANSIENT);
        rc = auth_db_exec(a->db, x, "drop the workspace's assignments", err);
    }
    if (rc != 0 || !found) {
        cairn_err_t ignored = {0};
        auth_db_tx(a->db, AST_ROLLBACK, &ignored);
        return rc != 0 ? -1
                       : cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                       "there is no workspace named '%s'", name);
    }
    if (auth_db_tx(a->db, AST_COMMIT, err) != 0) return -1;
    auth_changed(a, NULL, NULL);
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "name", name);
    return auth_reply_send(a, req);
}
