/* Model versions: numbered 1, 2, 3 ... per model (a number is never given
 * out twice, even after a delete), immutable but for their description and
 * tags. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "rfilter.h"

static const char *const s_flavors[] = {"xgboost", "python", "onnx",
                                        "mlflow",  "custom", NULL};

int reg_pack_version(registry_t *r, msgpack_packer *pk, int64_t model_id,
                     const char *name, int64_t version, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_VERSION_GET];
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, version);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_DONE
                   ? cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                   "registered model '%s' has no version %lld", name,
                                   (long long)version)
                   : reg_db_fail(r, "read a model version", err);
    }
    reg_pack_version_head(pk, st, name, version);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    cairn_pack_cstr(pk, "tags");
    st = r->q[Q_VERSION_TAGS];
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, version);
    if (reg_pack_tags(r, pk, st, err) != 0) return -1;
    cairn_pack_cstr(pk, "aliases");
    return reg_pack_aliases(r, pk, model_id, version, err);
}

void reg_pack_version_head(msgpack_packer *pk, sqlite3_stmt *st, const char *name,
                           int64_t version)
{
    msgpack_pack_map(pk, 14);
    cairn_pack_kv_text(pk, "name", name);
    cairn_pack_cstr(pk, "version");
    msgpack_pack_int64(pk, version);
    cairn_pack_cstr(pk, "creation_timestamp");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, 8));
    cairn_pack_cstr(pk, "last_updated_timestamp");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, 9));
    static const struct {
        const char *key;
        int col;
    } texts[] = {{"source", 1},    {"run_id", 2},      {"flavor", 3},
                 {"signature", 4}, {"description", 5}, {"content_hash", 6},
                 {"user_id", 7}};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        cairn_pack_kv_text(pk, texts[i].key,
                           (const char *)sqlite3_column_text(st, texts[i].col));
    cairn_pack_kv_str(pk, "status", "READY");
}

/* Reply {model_version} for (model, version). */
static int s_reply_version(registry_t *r, cairn_req_t *req, int64_t id,
                           cairn_str_t name, int64_t version, cairn_err_t *err)
{
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "model_version");
    if (reg_pack_version(r, pk, id, nm, version, err) != 0) return -1;
    return reg_reply(r, req, CAIRN_ST_OK);
}

static int s_flavor(const msgpack_object *b, cairn_str_t *flavor, cairn_err_t *err)
{
    if (cairn_field_str(b, "flavor", false, 32, flavor, err) < 0) return -1;
    if (!flavor->len) return 0;
    for (const char *const *f = s_flavors; *f; f++)
        if (cairn_str_eq(*flavor, *f)) return 0;
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "flavor is one of xgboost, python, onnx, mlflow, custom");
}

static int s_insert(registry_t *r, cairn_req_t *req, int64_t id, int64_t version,
                    const cairn_str_t *text, const msgpack_object *tags,
                    const char *content_hash, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_VERSION_INSERT];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    for (int i = 0; i < 5; i++) reg_bind_str(st, 3 + i, text[i]); /* source..desc */
    sqlite3_bind_text(st, 8, content_hash, -1, SQLITE_STATIC);
    const char *by = cairn_principal(req);
    sqlite3_bind_text(st, 9, by && *by ? by : "local", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, (int64_t)cairn_wall_ms());
    if (reg_step_done(r, st, "create a model version", err) != 0) return -1;
    for (uint32_t i = 0; tags && i < tags->via.array.size; i++) {
        cairn_str_t k = {"", 0}, v = {"", 0};
        cairn_field_str(&tags->via.array.ptr[i], "key", true, REG_TAG_KEY_MAX, &k, err);
        cairn_field_str(&tags->via.array.ptr[i], "value", false, REG_TAG_VALUE_MAX, &v,
                        err);
        st = r->q[Q_VERSION_TAG_PUT];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, version);
        reg_bind_str(st, 3, k);
        reg_bind_str(st, 4, v);
        if (reg_step_done(r, st, "store a tag", err) != 0) return -1;
    }
    return 0;
}

/* Take the model's next number (committed: a number is never given out
 * twice, even when the version then fails). */
static int s_take_number(registry_t *r, cairn_req_t *req, cairn_str_t name, int64_t *id,
                         int64_t *version, cairn_err_t *err)
{
    if (reg_model_find(r, req, name, id, err) != 0) return -1;
    sqlite3_stmt *st = r->q[Q_MODEL_NEXT_VERSION];
    sqlite3_bind_int64(st, 1, (int64_t)cairn_wall_ms());
    sqlite3_bind_int64(st, 2, *id);
    *version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return *version > 0 ? 0 : reg_db_fail(r, "number a model version", err);
}

/* Write the version row, its tags and its history entry, in one
 * transaction; publish and reply. */
static int s_write_version(registry_t *r, cairn_req_t *req, const char *name,
                           int64_t id, int64_t version, const cairn_str_t *text,
                           const msgpack_object *tags, const char *content_hash,
                           const char *owner, const msgpack_object *files,
                           cairn_err_t *err)
{
    if (reg_begin(r, err) != 0) return -1;
    int rc = s_insert(r, req, id, version, text, tags, content_hash, err);
    if (rc == 0 && files) rc = reg_files_put(r, owner, files, err);
    if (rc == 0)
        rc = reg_history_add(r, req, id, name, "version_created", (cairn_str_t){"", 0},
                             version, NULL, err);
    if (rc == 0 && text[1].len) { /* the run that produced it */
        char run[80], node[64];
        snprintf(run, sizeof run, "run:%.*s", (int)text[1].len, text[1].ptr);
        reg_version_node(id, version, node, sizeof node);
        rc = reg_edge_add(r, req, run, node, "produced", err);
    }
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    reg_publish(r, "model.registered", req, name, version, NULL);
    return s_reply_version(r, req, id, (cairn_str_t){name, strlen(name)}, version, err);
}

int reg_version_finish(reg_pending_t *p, const char *content_hash,
                       const msgpack_object *files, cairn_err_t *err)
{
    char owner[512];
    reg_pin_owner(p->r, p->ws, p->model_id, p->version, owner, sizeof owner);
    return s_write_version(p->r, p->req, p->name, p->model_id, p->version, p->text,
                           p->tags, content_hash, owner, files, err);
}

void reg_pending_free(reg_pending_t *p)
{
    for (reg_pending_t **pp = &p->r->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    free(p->owned_signature);
    reg_data_new_free(p->data);
    if (p->resolved) msgpack_sbuffer_free(p->resolved);
    free(p);
}

/* A runs:/ source: defer, pin its blobs, finish when they are pinned. */
static int s_create_pinned(registry_t *r, cairn_req_t *req, const char *name,
                           int64_t id, int64_t version, const cairn_str_t *text,
                           const msgpack_object *tags, cairn_str_t run_id,
                           cairn_str_t path, cairn_err_t *err)
{
    reg_pending_t *p = calloc(1, sizeof *p);
    if (!p) return cairn_err_oom(err, NULL);
    *p = (reg_pending_t){.r = r,
                         .req = req,
                         .model_id = id,
                         .version = version,
                         .source = text[0],
                         .run_id = run_id,
                         .path = path,
                         .tags = tags,
                         .next = r->pending};
    memcpy(p->text, text, sizeof p->text);
    snprintf(p->ws, sizeof p->ws, "%s", reg_ws(req));
    snprintf(p->name, sizeof p->name, "%s", name);
    r->pending = p;
    p->tags = reg_defer(req, "tags");
    /* an MLflow model folder names its own flavor and signature */
    bool probe = !text[2].len || !text[3].len;
    if ((probe ? reg_mlmodel_probe(p, err) : reg_source_pin(p, err)) != 0) {
        reg_pending_free(p);
        return -1; /* the runtime answers err, deferred or not */
    }
    return 0;
}

int reg_create_model_version(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req), *tags = NULL;
    cairn_str_t name, text[5] = {{"", 0}, {"", 0}, {"", 0}, {"", 0}, {"", 0}};
    cairn_str_t run_id, path;
    int runs;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        cairn_field_str(b, "source", true, REG_TEXT_MAX, &text[0], err) != 0 ||
        cairn_field_str(b, "run_id", false, 64, &text[1], err) < 0 ||
        s_flavor(b, &text[2], err) != 0 ||
        cairn_field_str(b, "signature", false, REG_TEXT_MAX, &text[3], err) < 0 ||
        cairn_field_str(b, "description", false, REG_TEXT_MAX, &text[4], err) < 0 ||
        reg_field_tags(b, &tags, err) != 0 ||
        (runs = reg_source_parse(text[0], &run_id, &path, err)) < 0)
        return -1;
    if (!text[0].len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'source' must not be empty");
    if (runs == 0 && text[1].len &&
        !(text[1].len == run_id.len && !memcmp(text[1].ptr, run_id.ptr, run_id.len)))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "run_id names another run than the source does");
    if (runs == 0) text[1] = run_id;
    cairn_name_object(req, "model", name.ptr, name.len);
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    int64_t id = 0, version = 0;
    if (reg_begin(r, err) != 0) return -1;
    if (s_take_number(r, req, name, &id, &version, err) != 0 ||
        reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    if (runs == 0)
        return s_create_pinned(r, req, nm, id, version, text, tags, run_id, path, err);
    return s_write_version(r, req, nm, id, version, text, tags, "", NULL, NULL, err);
}

/* {name*, version*}: the model's id and the version, which exists. */
static int s_target(registry_t *r, cairn_req_t *req, cairn_str_t *name, int64_t *id,
                    int64_t *version, cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    if (reg_field_name(b, "name", name, err) != 0 ||
        reg_field_version(b, "version", version, err) != 0)
        return -1;
    cairn_name_object(req, "model", name->ptr, name->len);
    if (reg_model_find(r, req, *name, id, err) != 0) return -1;
    sqlite3_stmt *st = r->q[Q_VERSION_GET];
    sqlite3_bind_int64(st, 1, *id);
    sqlite3_bind_int64(st, 2, *version);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return reg_db_fail(r, "find a model version", err);
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "registered model '%.*s' has no version %lld", (int)name->len,
                         name->ptr, (long long)*version);
}

int reg_get_model_version(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    cairn_str_t name;
    int64_t id, version;
    if (s_target(r, req, &name, &id, &version, err) != 0) return -1;
    return s_reply_version(r, req, id, name, version, err);
}

static const reg_order_col_t s_version_cols[] = {
    {"name", "m.name"},
    {"version_number", "v.version"},
    {"creation_timestamp", "v.created"},
    {"last_updated_timestamp", "v.updated"},
};

int reg_search_model_versions(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t filter = {"", 0};
    uint64_t limit, offset;
    char order[320];
    if (cairn_field_str(b, "filter", false, RFILTER_MAX_LEN, &filter, err) < 0 ||
        reg_page(b, 1000, &limit, &offset, err) != 0 ||
        reg_order(b, s_version_cols, 4, "m.name ASC, v.version DESC", order,
                  sizeof order, err) != 0)
        return -1;
    sqlite3_stmt *st = reg_search_prepare(
        r, RFILTER_VERSIONS, filter,
        "SELECT v.model_id, m.name, v.version FROM versions v JOIN models m ON m.id = "
        "v.model_id WHERE m.ws = ?",
        order, reg_ws(req), limit + 1, offset, err);
    if (!st) return -1;
    /* Packed as they come: reg_pack_version uses other statements. */
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint64_t n = 0;
    int rc = 0, step;
    while (rc == 0 && n < limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = reg_pack_version(r, &rp, sqlite3_column_int64(st, 0),
                              (const char *)sqlite3_column_text(st, 1),
                              sqlite3_column_int64(st, 2), err);
        n++;
    }
    bool more = rc == 0 && n == limit && sqlite3_step(st) == SQLITE_ROW;
    if (rc == 0 && n < limit && step != SQLITE_DONE)
        rc = reg_db_fail(r, "search model versions", err);
    sqlite3_finalize(st);
    if (rc == 0) {
        msgpack_packer *pk = reg_reply_begin(r);
        msgpack_pack_map(pk, more ? 2 : 1);
        cairn_pack_cstr(pk, "model_versions");
        msgpack_pack_array(pk, (uint32_t)n);
        msgpack_sbuffer_write(&r->sb, rows.data, rows.size);
        if (more) reg_pack_next_token(pk, offset + limit);
    }
    msgpack_sbuffer_destroy(&rows);
    return rc == 0 ? reg_reply(r, req, CAIRN_ST_OK) : -1;
}

int reg_update_model_version(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    cairn_str_t name, desc = {"", 0};
    int64_t id, version;
    if (cairn_field_str(cairn_body(req), "description", false, REG_TEXT_MAX, &desc,
                        err) < 0 ||
        s_target(r, req, &name, &id, &version, err) != 0)
        return -1;
    sqlite3_stmt *st = r->q[Q_VERSION_DESCRIBE];
    if (reg_begin(r, err) != 0) return -1;
    reg_bind_str(st, 1, desc);
    sqlite3_bind_int64(st, 2, (int64_t)cairn_wall_ms());
    sqlite3_bind_int64(st, 3, id);
    sqlite3_bind_int64(st, 4, version);
    int rc = reg_step_done(r, st, "update a model version", err);
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    if (rc == 0)
        rc = reg_history_add(r, req, id, nm, "description_updated",
                             (cairn_str_t){"", 0}, version, NULL, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    return s_reply_version(r, req, id, name, version, err);
}

int reg_delete_model_version(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    cairn_str_t name;
    int64_t id, version;
    int64_t pinned[1];
    size_t npinned = 0;
    if (s_target(r, req, &name, &id, &version, err) != 0 ||
        reg_pinned(r, id, version, pinned, 1, &npinned, err) != 0 ||
        reg_begin(r, err) != 0)
        return -1;
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    /* Its aliases go with it (as MLflow's), each end recorded. */
    sqlite3_stmt *st = r->q[Q_ALIASES_DROP];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    char aliases[64][REG_ALIAS_MAX + 1];
    size_t na = 0;
    int step, rc = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        if (na < 64)
            snprintf(aliases[na++], sizeof aliases[0], "%s",
                     (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (step != SQLITE_DONE) rc = reg_db_fail(r, "drop the version's aliases", err);
    for (size_t i = 0; rc == 0 && i < na; i++)
        rc = reg_history_add(r, req, id, nm, "alias_deleted",
                             (cairn_str_t){aliases[i], strlen(aliases[i])}, version,
                             "the version was deleted", err);
    static const int drops[] = {Q_VERSION_TAGS_DROP, Q_VERSION_DELETE};
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        st = r->q[drops[i]];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, version);
        rc = reg_step_done(r, st, "delete a model version", err);
    }
    if (rc == 0) {
        char owner[REG_OWNER_MAX];
        reg_pin_owner(r, reg_ws(req), id, version, owner, sizeof owner);
        rc = reg_files_drop(r, owner, false, err);
    }
    if (rc == 0)
        rc = reg_history_add(r, req, id, nm, "version_deleted", (cairn_str_t){"", 0},
                             version, NULL, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    if (npinned) reg_unpin(r, reg_ws(req), id, version);
    return reg_reply_empty(r, req);
}

static int s_version_tag(registry_t *r, cairn_req_t *req, bool set, cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, key, value = {"", 0};
    int64_t id, version;
    if (cairn_field_str(b, "key", true, REG_TAG_KEY_MAX, &key, err) != 0 ||
        (set &&
         cairn_field_str(b, "value", false, REG_TAG_VALUE_MAX, &value, err) < 0) ||
        s_target(r, req, &name, &id, &version, err) != 0)
        return -1;
    if (!key.len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a tag's key must not be empty");
    sqlite3_stmt *st = r->q[set ? Q_VERSION_TAG_PUT : Q_VERSION_TAG_DEL];
    if (reg_begin(r, err) != 0) return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    reg_bind_str(st, 3, key);
    if (set) reg_bind_str(st, 4, value);
    int rc = reg_step_done(r, st, set ? "set a tag" : "delete a tag", err);
    if (rc == 0 && !set && sqlite3_changes(r->db) == 0)
        rc =
            cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                          "the model version has no tag '%.*s'", (int)key.len, key.ptr);
    if (rc == 0) rc = reg_history_tag(r, req, id, name, version, set, key, value, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    return reg_reply_empty(r, req);
}

int reg_set_model_version_tag(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_version_tag(state, req, true, err);
}

int reg_delete_model_version_tag(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return s_version_tag(state, req, false, err);
}
