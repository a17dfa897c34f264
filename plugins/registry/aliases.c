/* Aliases (champion, challenger ...): a name for one version of a model,
 * moved by set_alias. Every move and deletion is kept in the history with
 * who and when, so get_alias_history answers which version held an alias
 * at any moment. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "registry.h"

/* Letters, digits, _ and -; not "latest" nor v<digits> (MLflow reserves
 * them for versions). */
static int s_field_alias(const msgpack_object *b, cairn_str_t *alias, cairn_err_t *err)
{
    if (cairn_field_str(b, "alias", true, REG_ALIAS_MAX, alias, err) != 0) return -1;
    bool ok = alias->len > 0,
         digits_after_v =
             alias->len > 1 && (alias->ptr[0] == 'v' || alias->ptr[0] == 'V');
    for (size_t i = 0; ok && i < alias->len; i++) {
        char c = alias->ptr[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (i && !(c >= '0' && c <= '9')) digits_after_v = false;
    }
    if (!ok)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "an alias is 1 to %d letters, digits, _ or -",
                             REG_ALIAS_MAX);
    if (digits_after_v || cairn_str_eq(*alias, "latest"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the alias '%.*s' is reserved (latest and v<number> name "
                             "versions)",
                             (int)alias->len, alias->ptr);
    return 0;
}

int reg_pack_aliases(registry_t *r, msgpack_packer *pk, int64_t model_id,
                     int64_t version, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[version > 0 ? Q_ALIASES_OF_VERSION : Q_ALIASES_OF_MODEL];
    sqlite3_bind_int64(st, 1, model_id);
    if (version > 0) sqlite3_bind_int64(st, 2, version);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *alias = (const char *)sqlite3_column_text(st, 0);
        if (version > 0) {
            cairn_pack_cstr(&rp, alias);
        } else {
            msgpack_pack_map(&rp, 2);
            cairn_pack_kv_text(&rp, "alias", alias);
            cairn_pack_cstr(&rp, "version");
            msgpack_pack_int64(&rp, sqlite3_column_int64(st, 1));
        }
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) {
        msgpack_pack_array(pk, n);
        msgpack_sbuffer_write(pk->data, rows.data, rows.size);
    }
    msgpack_sbuffer_destroy(&rows);
    return rc == SQLITE_DONE ? 0 : reg_db_fail(r, "read aliases", err);
}

/* The version alias points to now: 0 when it points nowhere. */
int reg_alias_version(registry_t *r, int64_t id, cairn_str_t alias, int64_t *version,
                      cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_ALIAS_GET];
    sqlite3_bind_int64(st, 1, id);
    reg_bind_str(st, 2, alias);
    int rc = sqlite3_step(st);
    *version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
                                                 : reg_db_fail(r, "read an alias", err);
}

static void s_cstr(char *out, size_t cap, cairn_str_t s)
{
    snprintf(out, cap, "%.*s", (int)s.len, s.ptr);
}

int reg_set_alias(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, alias;
    int64_t id, version, was = 0;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        s_field_alias(b, &alias, err) != 0 ||
        reg_field_version(b, "version", &version, err) != 0)
        return -1;
    cairn_name_object(req, "model", name.ptr, name.len);
    char nm[REG_NAME_MAX + 1], al[REG_ALIAS_MAX + 1];
    s_cstr(nm, sizeof nm, name);
    s_cstr(al, sizeof al, alias);
    if (reg_begin(r, err) != 0) return -1;
    int rc = reg_model_find(r, req, name, &id, err);
    if (rc == 0) { /* the version must exist */
        msgpack_sbuffer scratch;
        msgpack_sbuffer_init(&scratch);
        msgpack_packer sp;
        msgpack_packer_init(&sp, &scratch, msgpack_sbuffer_write);
        rc = reg_pack_version(r, &sp, id, nm, version, err);
        msgpack_sbuffer_destroy(&scratch);
    }
    if (rc == 0) rc = reg_alias_version(r, id, alias, &was, err);
    if (rc == 0 && was != version) {
        sqlite3_stmt *st = r->q[Q_ALIAS_PUT];
        sqlite3_bind_int64(st, 1, id);
        reg_bind_str(st, 2, alias);
        sqlite3_bind_int64(st, 3, version);
        rc = reg_step_done(r, st, "set an alias", err);
        if (rc == 0)
            rc =
                reg_history_add(r, req, id, nm, "alias_set", alias, version, NULL, err);
    }
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    if (was != version) reg_publish(r, "model.alias_moved", req, nm, version, al);
    return reg_reply_empty(r, req);
}

int reg_delete_alias(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, alias;
    int64_t id, was = 0;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        s_field_alias(b, &alias, err) != 0)
        return -1;
    cairn_name_object(req, "model", name.ptr, name.len);
    char nm[REG_NAME_MAX + 1];
    s_cstr(nm, sizeof nm, name);
    if (reg_begin(r, err) != 0) return -1;
    int rc = reg_model_find(r, req, name, &id, err);
    if (rc == 0) rc = reg_alias_version(r, id, alias, &was, err);
    if (rc == 0 && !was)
        rc = cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                           "registered model '%s' has no alias '%.*s'", nm,
                           (int)alias.len, alias.ptr);
    if (rc == 0) {
        sqlite3_stmt *st = r->q[Q_ALIAS_DEL];
        sqlite3_bind_int64(st, 1, id);
        reg_bind_str(st, 2, alias);
        rc = reg_step_done(r, st, "delete an alias", err);
    }
    if (rc == 0)
        rc = reg_history_add(r, req, id, nm, "alias_deleted", alias, was, NULL, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    return reg_reply_empty(r, req);
}

int reg_get_model_version_by_alias(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, alias;
    int64_t id, version = 0;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        s_field_alias(b, &alias, err) != 0 ||
        reg_model_find(r, req, name, &id, err) != 0 ||
        reg_alias_version(r, id, alias, &version, err) != 0)
        return -1;
    char nm[REG_NAME_MAX + 1];
    s_cstr(nm, sizeof nm, name);
    if (!version)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "registered model '%s' has no alias '%.*s'", nm,
                             (int)alias.len, alias.ptr);
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "model_version");
    if (reg_pack_version(r, pk, id, nm, version, err) != 0) return -1;
    return reg_reply(r, req, CAIRN_ST_OK);
}

/* With at: the version that held the alias at that moment. */
static int s_history_at(registry_t *r, cairn_req_t *req, int64_t id, const char *nm,
                        cairn_str_t alias, int64_t at, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_HISTORY_AT];
    sqlite3_bind_int64(st, 1, id);
    reg_bind_str(st, 2, alias);
    sqlite3_bind_int64(st, 3, at);
    int rc = sqlite3_step(st);
    bool set = rc == SQLITE_ROW &&
               !strcmp((const char *)sqlite3_column_text(st, 0), "alias_set");
    int64_t version = set ? sqlite3_column_int64(st, 1) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return reg_db_fail(r, "read the history", err);
    if (!set)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no version of '%s' held the alias '%.*s' at %lld", nm,
                             (int)alias.len, alias.ptr, (long long)at);
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "model_version");
    if (reg_pack_version(r, pk, id, nm, version, err) != 0) {
        if (err->st == CAIRN_ST_NOT_FOUND)
            cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                          "version %lld of '%s' held the alias '%.*s' then, and has "
                          "been deleted since",
                          (long long)version, nm, (int)alias.len, alias.ptr);
        return -1;
    }
    return reg_reply(r, req, CAIRN_ST_OK);
}

int reg_get_alias_history(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, alias;
    int64_t id, at = 0;
    int has_at;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        s_field_alias(b, &alias, err) != 0 ||
        (has_at = cairn_field_int(b, "at", false, &at, err)) < 0 ||
        reg_model_find(r, req, name, &id, err) != 0)
        return -1;
    char nm[REG_NAME_MAX + 1];
    s_cstr(nm, sizeof nm, name);
    if (has_at == 0) return s_history_at(r, req, id, nm, alias, at, err);
    sqlite3_stmt *st = r->q[Q_HISTORY_OF_ALIAS];
    sqlite3_bind_int64(st, 1, id);
    reg_bind_str(st, 2, alias);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool set = !strcmp((const char *)sqlite3_column_text(st, 0), "alias_set");
        msgpack_pack_map(&rp, 4);
        cairn_pack_cstr(&rp, "version");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 1));
        cairn_pack_kv_str(&rp, "action", set ? "set" : "deleted");
        cairn_pack_kv_text(&rp, "set_by", (const char *)sqlite3_column_text(st, 2));
        cairn_pack_cstr(&rp, "set_at");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 3));
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) {
        msgpack_packer *pk = reg_reply_begin(r);
        msgpack_pack_map(pk, 1);
        cairn_pack_cstr(pk, "history");
        msgpack_pack_array(pk, n);
        msgpack_sbuffer_write(&r->sb, rows.data, rows.size);
    }
    msgpack_sbuffer_destroy(&rows);
    return rc == SQLITE_DONE ? reg_reply(r, req, CAIRN_ST_OK)
                             : reg_db_fail(r, "read the history", err);
}
