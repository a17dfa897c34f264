/* Registered models: create, get, search, rename, describe, delete, tags. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "rfilter.h"

/* Pack model id (found by name) as MLflow's registered_model: name,
 * timestamps, description, tags, aliases and latest_versions (the newest
 * version, when there is one). */
static int s_pack_model(registry_t *r, msgpack_packer *pk, cairn_req_t *req,
                        cairn_str_t name, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_MODEL_BY_NAME];
    sqlite3_bind_text(st, 1, reg_ws(req), -1, SQLITE_STATIC);
    reg_bind_str(st, 2, name);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_DONE
                   ? cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                   "no registered model is named '%.*s' in this "
                                   "workspace",
                                   (int)name.len, name.ptr)
                   : reg_db_fail(r, "read a registered model", err);
    }
    int64_t id = sqlite3_column_int64(st, 0);
    char *nm = strdup((const char *)sqlite3_column_text(st, 1));
    msgpack_pack_map(pk, 7);
    cairn_pack_kv_text(pk, "name", (const char *)sqlite3_column_text(st, 1));
    cairn_pack_cstr(pk, "creation_timestamp");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, 3));
    cairn_pack_cstr(pk, "last_updated_timestamp");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, 4));
    cairn_pack_kv_text(pk, "description", (const char *)sqlite3_column_text(st, 2));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (!nm) return cairn_err_oom(err, NULL);
    cairn_pack_cstr(pk, "tags");
    sqlite3_bind_int64(r->q[Q_MODEL_TAGS], 1, id);
    rc = reg_pack_tags(r, pk, r->q[Q_MODEL_TAGS], err);
    if (rc == 0) {
        cairn_pack_cstr(pk, "aliases");
        rc = reg_pack_aliases(r, pk, id, 0, err);
    }
    int64_t latest = 0;
    if (rc == 0) {
        st = r->q[Q_VERSION_LATEST];
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW) latest = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        cairn_pack_cstr(pk, "latest_versions");
        msgpack_pack_array(pk, latest > 0);
        if (latest > 0) rc = reg_pack_version(r, pk, id, nm, latest, err);
    }
    free(nm);
    return rc;
}

static int s_reply_model(registry_t *r, cairn_req_t *req, cairn_str_t name, int st,
                         cairn_err_t *err)
{
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "registered_model");
    if (s_pack_model(r, pk, req, name, err) != 0) return -1;
    return reg_reply(r, req, st);
}

static int s_put_tags(registry_t *r, int64_t id, const msgpack_object *tags,
                      cairn_err_t *err)
{
    for (uint32_t i = 0; tags && i < tags->via.array.size; i++) {
        const msgpack_object *t = &tags->via.array.ptr[i];
        cairn_str_t k = {"", 0}, v = {"", 0};
        cairn_field_str(t, "key", true, REG_TAG_KEY_MAX, &k, err);
        cairn_field_str(t, "value", false, REG_TAG_VALUE_MAX, &v, err);
        sqlite3_stmt *st = r->q[Q_MODEL_TAG_PUT];
        sqlite3_bind_int64(st, 1, id);
        reg_bind_str(st, 2, k);
        reg_bind_str(st, 3, v);
        if (reg_step_done(r, st, "store a tag", err) != 0) return -1;
    }
    return 0;
}

int reg_create_registered_model(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req), *tags = NULL;
    cairn_str_t name, desc = {"", 0};
    if (reg_field_name(b, "name", &name, err) != 0 ||
        cairn_field_str(b, "description", false, REG_TEXT_MAX, &desc, err) < 0 ||
        reg_field_tags(b, &tags, err) != 0)
        return -1;
    cairn_name_object(req, "model", name.ptr, name.len);
    if (reg_begin(r, err) != 0) return -1;
    sqlite3_stmt *st = r->q[Q_MODEL_INSERT];
    sqlite3_bind_text(st, 1, reg_ws(req), -1, SQLITE_STATIC);
    reg_bind_str(st, 2, name);
    reg_bind_str(st, 3, desc);
    sqlite3_bind_int64(st, 4, (int64_t)cairn_wall_ms());
    int step = sqlite3_step(st);
    int64_t id = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int rc = step == SQLITE_ROW ? 0
             : step == SQLITE_DONE
                 ? cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                                 "a registered model named '%.*s' exists already",
                                 (int)name.len, name.ptr)
                 : reg_db_fail(r, "create a registered model", err);
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    if (rc == 0) rc = s_put_tags(r, id, tags, err);
    if (rc == 0)
        rc = reg_history_add(r, req, id, nm, "model_created", (cairn_str_t){"", 0}, 0,
                             NULL, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    return s_reply_model(r, req, name, CAIRN_ST_OK, err);
}

int reg_get_registered_model(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    cairn_str_t name;
    if (reg_field_name(cairn_body(req), "name", &name, err) != 0) return -1;
    return s_reply_model(r, req, name, CAIRN_ST_OK, err);
}

static const reg_order_col_t s_model_cols[] = {
    {"name", "m.name"},
    {"creation_timestamp", "m.created"},
    {"last_updated_timestamp", "m.updated"},
};

int reg_search_registered_models(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t filter = {"", 0};
    uint64_t limit, offset;
    char order[256];
    if (cairn_field_str(b, "filter", false, RFILTER_MAX_LEN, &filter, err) < 0 ||
        reg_page(b, 100, &limit, &offset, err) != 0 ||
        reg_order(b, s_model_cols, 3, "m.name ASC, m.id", order, sizeof order, err) !=
            0)
        return -1;
    sqlite3_stmt *st = reg_search_prepare(r, RFILTER_MODELS, filter,
                                          "SELECT m.name FROM models m WHERE m.ws = ?",
                                          order, reg_ws(req), limit + 1, offset, err);
    if (!st) return -1;
    int rc = SQLITE_DONE;
    /* Names first (the statement stays open while each model is packed). */
    char **names = calloc(limit + 1, sizeof *names);
    uint64_t n = 0;
    while (names && n <= limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
        if (!(names[n++] = strdup((const char *)sqlite3_column_text(st, 0)))) break;
    bool failed = !names || (rc != SQLITE_ROW && rc != SQLITE_DONE);
    sqlite3_finalize(st);
    bool more = n > limit;
    if (more) n = limit;
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, more ? 2 : 1);
    cairn_pack_cstr(pk, "registered_models");
    msgpack_pack_array(pk, (uint32_t)n);
    rc = failed ? (names ? reg_db_fail(r, "search registered models", err)
                         : cairn_err_oom(err, NULL))
                : 0;
    for (uint64_t i = 0; rc == 0 && i < n; i++)
        rc = names[i] ? s_pack_model(r, pk, req,
                                     (cairn_str_t){names[i], strlen(names[i])}, err)
                      : cairn_err_oom(err, NULL);
    for (uint64_t i = 0; names && i <= limit; i++) free(names[i]);
    free(names);
    if (rc != 0) return -1;
    if (more) reg_pack_next_token(pk, offset + limit);
    return reg_reply(r, req, CAIRN_ST_OK);
}

int reg_rename_registered_model(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, new_name;
    int64_t id;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        reg_field_name(b, "new_name", &new_name, err) != 0)
        return -1;
    cairn_name_object(req, "model", name.ptr, name.len);
    if (reg_begin(r, err) != 0) return -1;
    int rc = reg_model_find(r, req, name, &id, err);
    int64_t other;
    if (rc == 0 &&
        !(name.len == new_name.len && !memcmp(name.ptr, new_name.ptr, name.len)) &&
        reg_model_find(r, req, new_name, &other, &(cairn_err_t){0}) == 0)
        rc = cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                           "a registered model named '%.*s' exists already",
                           (int)new_name.len, new_name.ptr);
    if (rc == 0) {
        sqlite3_stmt *st = r->q[Q_MODEL_RENAME];
        reg_bind_str(st, 1, new_name);
        sqlite3_bind_int64(st, 2, (int64_t)cairn_wall_ms());
        sqlite3_bind_int64(st, 3, id);
        rc = reg_step_done(r, st, "rename a registered model", err);
    }
    char nm[REG_NAME_MAX + 1], detail[REG_NAME_MAX + 16];
    snprintf(nm, sizeof nm, "%.*s", (int)new_name.len, new_name.ptr);
    snprintf(detail, sizeof detail, "from %.*s", (int)name.len, name.ptr);
    if (rc == 0)
        rc = reg_history_add(r, req, id, nm, "model_renamed", (cairn_str_t){"", 0}, 0,
                             detail, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    return s_reply_model(r, req, new_name, CAIRN_ST_OK, err);
}

int reg_update_registered_model(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, desc = {"", 0};
    int64_t id;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        cairn_field_str(b, "description", false, REG_TEXT_MAX, &desc, err) < 0)
        return -1;
    cairn_name_object(req, "model", name.ptr, name.len);
    if (reg_begin(r, err) != 0) return -1;
    int rc = reg_model_find(r, req, name, &id, err);
    if (rc == 0) {
        sqlite3_stmt *st = r->q[Q_MODEL_DESCRIBE];
        reg_bind_str(st, 1, desc);
        sqlite3_bind_int64(st, 2, (int64_t)cairn_wall_ms());
        sqlite3_bind_int64(st, 3, id);
        rc = reg_step_done(r, st, "update a registered model", err);
    }
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    if (rc == 0)
        rc = reg_history_add(r, req, id, nm, "description_updated",
                             (cairn_str_t){"", 0}, 0, NULL, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    return s_reply_model(r, req, name, CAIRN_ST_OK, err);
}

int reg_delete_registered_model(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    cairn_str_t name;
    int64_t id;
    if (reg_field_name(cairn_body(req), "name", &name, err) != 0) return -1;
    cairn_name_object(req, "model", name.ptr, name.len);
    /* The versions whose pins go once the model is gone. */
    size_t npinned = 0, cap = 0;
    int64_t *pinned = NULL;
    if (reg_model_find(r, req, name, &id, err) != 0 ||
        reg_pinned(r, id, 0, NULL, 0, &cap, err) != 0)
        return -1;
    if (cap && !(pinned = malloc(cap * sizeof *pinned)))
        return cairn_err_oom(err, NULL);
    if (reg_pinned(r, id, 0, pinned, cap, &npinned, err) != 0 ||
        reg_begin(r, err) != 0) {
        free(pinned);
        return -1;
    }
    int rc = 0;
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    /* Each alias's end is history too: "which version was champion" keeps
     * an answer for the time the model existed. */
    sqlite3_stmt *st = r->q[Q_ALIASES_DROP];
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, 0);
        int step;
        char aliases[64][REG_ALIAS_MAX + 1];
        int64_t versions[64];
        size_t na = 0;
        while ((step = sqlite3_step(st)) == SQLITE_ROW && na < 64) {
            snprintf(aliases[na], sizeof aliases[na], "%s",
                     (const char *)sqlite3_column_text(st, 0));
            versions[na++] = sqlite3_column_int64(st, 1);
        }
        while (step == SQLITE_ROW) step = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (step != SQLITE_DONE) rc = reg_db_fail(r, "drop the aliases", err);
        for (size_t i = 0; rc == 0 && i < na; i++)
            rc = reg_history_add(r, req, id, nm, "alias_deleted",
                                 (cairn_str_t){aliases[i], strlen(aliases[i])},
                                 versions[i], "the model was deleted", err);
    }
    static const int drops[] = {Q_VERSION_TAGS_DROP, Q_VERSIONS_DROP, Q_MODEL_TAGS_DROP,
                                Q_MODEL_DELETE};
    for (size_t i = 0; rc == 0 && i < sizeof drops / sizeof drops[0]; i++) {
        st = r->q[drops[i]];
        sqlite3_bind_int64(st, 1, id);
        if (drops[i] == Q_VERSION_TAGS_DROP) sqlite3_bind_int64(st, 2, 0);
        rc = reg_step_done(r, st, "delete a registered model", err);
    }
    if (rc == 0) {
        char prefix[REG_OWNER_MAX];
        reg_model_owner_prefix(r, reg_ws(req), id, prefix, sizeof prefix);
        rc = reg_files_drop(r, prefix, true, err);
    }
    if (rc == 0)
        rc = reg_history_add(r, req, id, nm, "model_deleted", (cairn_str_t){"", 0}, 0,
                             NULL, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        free(pinned);
        return -1;
    }
    for (size_t i = 0; i < npinned && i < cap; i++)
        reg_unpin(r, reg_ws(req), id, pinned[i]);
    free(pinned);
    return reg_reply_empty(r, req);
}

/* set/delete_registered_model_tag {name*, key*, value}. */
static int s_model_tag(registry_t *r, cairn_req_t *req, bool set, cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, key, value = {"", 0};
    int64_t id;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        cairn_field_str(b, "key", true, REG_TAG_KEY_MAX, &key, err) != 0 ||
        (set && cairn_field_str(b, "value", false, REG_TAG_VALUE_MAX, &value, err) < 0))
        return -1;
    if (!key.len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a tag's key must not be empty");
    cairn_name_object(req, "model", name.ptr, name.len);
    if (reg_begin(r, err) != 0) return -1;
    int rc = reg_model_find(r, req, name, &id, err);
    sqlite3_stmt *st = r->q[set ? Q_MODEL_TAG_PUT : Q_MODEL_TAG_DEL];
    if (rc == 0) {
        sqlite3_bind_int64(st, 1, id);
        reg_bind_str(st, 2, key);
        if (set) reg_bind_str(st, 3, value);
        rc = reg_step_done(r, st, set ? "set a tag" : "delete a tag", err);
    }
    if (rc == 0 && !set && sqlite3_changes(r->db) == 0)
        rc = cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                           "the model has no tag '%.*s'", (int)key.len, key.ptr);
    if (rc == 0) {
        sqlite3_stmt *touch = r->q[Q_MODEL_TOUCH];
        sqlite3_bind_int64(touch, 1, (int64_t)cairn_wall_ms());
        sqlite3_bind_int64(touch, 2, id);
        rc = reg_step_done(r, touch, "update a registered model", err);
    }
    if (rc == 0) rc = reg_history_tag(r, req, id, name, 0, set, key, value, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    return reg_reply_empty(r, req);
}

int reg_set_registered_model_tag(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_model_tag(state, req, true, err);
}

int reg_delete_registered_model_tag(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_model_tag(state, req, false, err);
}

/* get_model_history {name*, max_results, page_token}: every change, oldest
 * first (the token is the last seq seen). */
int reg_get_model_history(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name;
    int64_t id;
    uint64_t limit, after;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        reg_page(b, REG_PAGE_MAX, &limit, &after, err) != 0 ||
        reg_model_find(r, req, name, &id, err) != 0)
        return -1;
    sqlite3_stmt *st = r->q[Q_HISTORY_OF_MODEL];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)after);
    sqlite3_bind_int64(st, 3, (int64_t)limit + 1);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint64_t n = 0, last = 0;
    bool more = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            more = true;
            break;
        }
        last = (uint64_t)sqlite3_column_int64(st, 0);
        msgpack_pack_map(&rp, 6);
        cairn_pack_kv_text(&rp, "kind", (const char *)sqlite3_column_text(st, 1));
        cairn_pack_kv_text(&rp, "alias", (const char *)sqlite3_column_text(st, 2));
        cairn_pack_cstr(&rp, "version");
        if (sqlite3_column_type(st, 3) == SQLITE_NULL)
            msgpack_pack_nil(&rp);
        else
            msgpack_pack_int64(&rp, sqlite3_column_int64(st, 3));
        cairn_pack_kv_text(&rp, "detail", (const char *)sqlite3_column_text(st, 4));
        cairn_pack_kv_text(&rp, "by", (const char *)sqlite3_column_text(st, 5));
        cairn_pack_cstr(&rp, "at");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 6));
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        msgpack_sbuffer_destroy(&rows);
        return reg_db_fail(r, "read the history", err);
    }
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, more ? 2 : 1);
    cairn_pack_cstr(pk, "history");
    msgpack_pack_array(pk, (uint32_t)n);
    msgpack_sbuffer_write(&r->sb, rows.data, rows.size);
    if (more) reg_pack_next_token(pk, last);
    msgpack_sbuffer_destroy(&rows);
    return reg_reply(r, req, CAIRN_ST_OK);
}

/* A model reference's model and version (refs.c parses it). */
int reg_ref_model(registry_t *r, cairn_req_t *req, const reg_ref_t *ref, int64_t *id,
                  int64_t *version, cairn_err_t *err)
{
    if (reg_model_find(r, req, ref->name, id, err) != 0) return -1;
    if (ref->alias.len) {
        if (reg_alias_version(r, *id, ref->alias, version, err) != 0) return -1;
        if (*version > 0) return 0;
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "registered model '%.*s' has no alias '%.*s'",
                             (int)ref->name.len, ref->name.ptr, (int)ref->alias.len,
                             ref->alias.ptr);
    }
    if (!ref->latest) {
        *version = ref->version;
        return 0;
    }
    sqlite3_stmt *st = r->q[Q_VERSION_LATEST];
    sqlite3_bind_int64(st, 1, *id);
    int rc = sqlite3_step(st);
    *version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW) return reg_db_fail(r, "find the latest version", err);
    if (*version > 0) return 0;
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "registered model '%.*s' has no version", (int)ref->name.len,
                         ref->name.ptr);
}
