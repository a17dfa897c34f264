/* The registry plugin (service `registry`): versioned models with tags and
 * aliases, and the history of every change to them (who, when), so that
 * "which version was champion on that day" has an answer. Names and reply
 * keys follow MLflow's model registry (a gateway maps its REST routes onto
 * these verbs one to one). See registry.h for the files. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "assets.h"
#include "registry.h"
#include "rfilter.h"
#include "reg_schema.h"
#include "sqlite_util.h"

#define WHAT "the registry database"
#define REG_MAX_BODY (4 * REG_TEXT_MAX)

typedef struct settings {
    const char *db;        /* "" = STATE/registry.db */
    const char *artifacts; /* the service that pins runs:/ sources */
} settings_t;

static const cairn_setting_t registry_settings[] = {
    {.key = "db",
     .type = CAIRN_CONF_PATH,
     .offset = offsetof(settings_t, db),
     .dflt = "",
     .help = "the SQLite file (default: STATE/registry.db)"},
    {.key = "artifacts_service",
     .type = CAIRN_CONF_STR,
     .offset = offsetof(settings_t, artifacts),
     .dflt = "artifacts",
     .help = "the artifact store's service: a runs:/ source's blobs are pinned there "
             "(no copy)"},
    {.key = NULL},
};

static const char *const s_sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_MODEL_INSERT] =
        "INSERT INTO models (ws, name, description, created, updated) "
        "VALUES (?, ?, ?, ?, ?4) ON CONFLICT DO NOTHING RETURNING id",
    [Q_MODEL_BY_NAME] = ("SELECT id, name, description, created, updated FROM models "
                         "WHERE ws = ? AND name = ?"),
    [Q_MODEL_TOUCH] = "UPDATE models SET updated = ? WHERE id = ?",
    [Q_MODEL_DESCRIBE] = "UPDATE models SET description = ?, updated = ? WHERE id = ?",
    [Q_MODEL_RENAME] = "UPDATE models SET name = ?, updated = ? WHERE id = ?",
    [Q_MODEL_DELETE] = "DELETE FROM models WHERE id = ?",
    [Q_MODEL_NEXT_VERSION] = ("UPDATE models SET next_version = next_version + 1, "
                              "updated = ? WHERE id = ? RETURNING next_version - 1"),
    [Q_MODEL_TAG_PUT] = ("INSERT INTO model_tags (model_id, key, value) VALUES (?, ?, "
                         "?) ON CONFLICT (model_id, key) DO UPDATE SET value = "
                         "excluded.value"),
    [Q_MODEL_TAG_DEL] = "DELETE FROM model_tags WHERE model_id = ? AND key = ?",
    [Q_MODEL_TAGS] =
        "SELECT key, value FROM model_tags WHERE model_id = ? ORDER BY key",
    [Q_MODEL_TAGS_DROP] = "DELETE FROM model_tags WHERE model_id = ?",
    [Q_VERSION_INSERT] =
        ("INSERT INTO versions (model_id, version, source, run_id, flavor, signature, "
         "description, content_hash, user_id, created, updated) VALUES (?, ?, ?, ?, ?, "
         "?, ?, ?, ?, ?, ?10)"),
    [Q_VERSION_GET] =
        ("SELECT version, source, run_id, flavor, signature, description, "
         "content_hash, user_id, created, updated FROM versions WHERE "
         "model_id = ? AND version = ?"),
    [Q_VERSION_LATEST] = "SELECT max(version) FROM versions WHERE model_id = ?",
    [Q_VERSION_DESCRIBE] = ("UPDATE versions SET description = ?, updated = ? WHERE "
                            "model_id = ? AND version = ?"),
    [Q_VERSION_DELETE] = "DELETE FROM versions WHERE model_id = ? AND version = ?",
    [Q_VERSIONS_DROP] = "DELETE FROM versions WHERE model_id = ?",
    /* Versions whose bytes are pinned in the artifact store (source.c). */
    [Q_VERSIONS_PINNED] = ("SELECT version FROM versions WHERE model_id = ?1 AND "
                           "content_hash != '' AND (version = ?2 OR ?2 = 0)"),
    [Q_VERSION_TAG_PUT] =
        ("INSERT INTO version_tags (model_id, version, key, value) "
         "VALUES (?, ?, ?, ?) ON CONFLICT (model_id, version, key) DO "
         "UPDATE SET value = excluded.value"),
    [Q_VERSION_TAG_DEL] = ("DELETE FROM version_tags WHERE model_id = ? AND version = "
                           "? AND key = ?"),
    [Q_VERSION_TAGS] = ("SELECT key, value FROM version_tags WHERE model_id = ? AND "
                        "version = ? ORDER BY key"),
    [Q_VERSION_TAGS_DROP] = ("DELETE FROM version_tags WHERE model_id = ? AND (version "
                             "= ?2 OR ?2 = 0)"),
    [Q_ALIAS_PUT] = ("INSERT INTO aliases (model_id, alias, version) VALUES (?, ?, ?) "
                     "ON CONFLICT (model_id, alias) DO UPDATE SET version = "
                     "excluded.version"),
    [Q_ALIAS_GET] = "SELECT version FROM aliases WHERE model_id = ? AND alias = ?",
    [Q_ALIAS_DEL] = "DELETE FROM aliases WHERE model_id = ? AND alias = ?",
    [Q_ALIASES_OF_MODEL] = ("SELECT alias, version FROM aliases WHERE model_id = ? "
                            "ORDER BY alias"),
    [Q_ALIASES_OF_VERSION] = ("SELECT alias, version FROM aliases WHERE model_id = ? "
                              "AND version = ? ORDER BY alias"),
    /* get_model_version_by_alias in one statement (aliases.c): the
     * version's row (Q_VERSION_GET's columns) once per alias it holds, in
     * alias order, whether it has tags, and the model's id */
    [Q_ALIAS_LOOKUP] =
        ("SELECT v.version, v.source, v.run_id, v.flavor, v.signature, "
         "v.description, v.content_hash, v.user_id, v.created, v.updated, a2.alias, "
         "EXISTS (SELECT 1 FROM version_tags t WHERE t.model_id = m.id AND "
         "t.version = v.version), m.id FROM models m JOIN aliases a ON a.model_id = "
         "m.id AND a.alias = ?3 JOIN versions v ON v.model_id = m.id AND v.version = "
         "a.version JOIN aliases a2 ON a2.model_id = m.id AND a2.version = v.version "
         "WHERE m.ws = ?1 AND m.name = ?2 ORDER BY a2.alias"),
    [Q_ALIASES_DROP] = ("DELETE FROM aliases WHERE model_id = ? AND (version = ?2 OR "
                        "?2 = 0) RETURNING alias, version"),
    [Q_HISTORY_ADD] = ("INSERT INTO history (model_id, name, kind, alias, version, "
                       "detail, by, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
    [Q_HISTORY_OF_ALIAS] = ("SELECT kind, version, by, at FROM history WHERE model_id "
                            "= ? AND alias = ? ORDER BY at, seq"),
    [Q_HISTORY_OF_MODEL] =
        ("SELECT seq, kind, alias, version, detail, by, at FROM history "
         "WHERE model_id = ? AND seq > ? ORDER BY seq LIMIT ?"),
    [Q_EDGE_PUT] =
        ("INSERT OR IGNORE INTO edges (ws, src, dst, kind, at) VALUES (?, ?, ?, "
         "?, ?)"),
    [Q_MODEL_NAME_BY_ID] = "SELECT name FROM models WHERE id = ?",
    [Q_FILE_PUT] = ("INSERT OR REPLACE INTO files (owner, path, hash, alg, size) "
                    "VALUES (?, ?, ?, ?, ?)"),
    [Q_FILE_GET] = "SELECT hash, alg, size FROM files WHERE owner = ? AND path = ?",
    [Q_FILES_PAGE] = ("SELECT path, hash, alg, size FROM files WHERE owner = ?1 AND "
                      "path > ?2 ORDER BY path LIMIT ?3"),
    [Q_FILES_DROP] = "DELETE FROM files WHERE owner = ?",
    /* every owner key under a prefix ending in ':' (';' follows it) */
    [Q_FILES_DROP_PREFIX] = ("DELETE FROM files WHERE owner > ?1 AND owner < "
                             "substr(?1, 1, length(?1) - 1) || ';'"),
    [Q_HISTORY_AT] = ("SELECT kind, version FROM history WHERE model_id = ? AND alias "
                      "= ? AND at <= ? ORDER BY at DESC, seq DESC LIMIT 1"),
};

/* ---- helpers -------------------------------------------------------------- */

const char *reg_ws(cairn_req_t *req)
{
    const char *ws = cairn_workspace(req);
    return ws && *ws ? ws : "default";
}

int reg_db_fail(registry_t *r, const char *doing, cairn_err_t *err)
{
    return cairn_sqlite_fail(r->db, WHAT, doing, err);
}

int reg_step_done(registry_t *r, sqlite3_stmt *st, const char *doing, cairn_err_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : reg_db_fail(r, doing, err);
}

int reg_begin(registry_t *r, cairn_err_t *err)
{
    return reg_step_done(r, r->q[Q_BEGIN], "begin a transaction", err);
}

int reg_commit(registry_t *r, cairn_err_t *err)
{
    if (reg_step_done(r, r->q[Q_COMMIT], "commit", err) == 0) return 0;
    reg_rollback(r);
    return -1;
}

void reg_rollback(registry_t *r)
{
    if (!sqlite3_get_autocommit(r->db))
        reg_step_done(r, r->q[Q_ROLLBACK], "roll back", &(cairn_err_t){0});
}

msgpack_packer *reg_reply_begin(registry_t *r)
{
    msgpack_sbuffer_clear(&r->sb);
    return &r->pk;
}

int reg_reply(registry_t *r, cairn_req_t *req, int st)
{
    cairn_reply_sbuf(req, st, &r->sb);
    return 0;
}

const msgpack_object *reg_defer(cairn_req_t *req, const char *key)
{
    cairn_defer(req);
    const msgpack_object *o = cairn_obj_get(cairn_body(req), key);
    return o && o->type != MSGPACK_OBJECT_NIL ? o : NULL;
}

int reg_reply_empty(registry_t *r, cairn_req_t *req)
{
    msgpack_pack_map(reg_reply_begin(r), 0);
    return reg_reply(r, req, CAIRN_ST_OK);
}

void reg_bind_str(sqlite3_stmt *st, int i, cairn_str_t s)
{
    sqlite3_bind_text(st, i, s.ptr ? s.ptr : "", (int)s.len, SQLITE_STATIC);
}

int reg_field_name(const msgpack_object *b, const char *key, cairn_str_t *out,
                   cairn_err_t *err)
{
    if (cairn_field_str(b, key, true, REG_NAME_MAX, out, err) != 0) return -1;
    if (!out->len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field '%s' must not be empty", key);
    for (size_t i = 0; i < out->len; i++) {
        unsigned char c = (unsigned char)out->ptr[i];
        if (c < 0x20 || c == 0x7f || c == ':' || c == '@')
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "the field '%s' holds no control characters and no "
                                 "':' or '@' (references use them)",
                                 key);
    }
    return 0;
}

int reg_model_find(registry_t *r, cairn_req_t *req, cairn_str_t name, int64_t *id,
                   cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_MODEL_BY_NAME];
    sqlite3_bind_text(st, 1, reg_ws(req), -1, SQLITE_STATIC);
    reg_bind_str(st, 2, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return reg_db_fail(r, "find a registered model", err);
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "no registered model is named '%.*s' in this workspace",
                         (int)name.len, name.ptr);
}

int reg_field_version(const msgpack_object *b, const char *key, int64_t *out,
                      cairn_err_t *err)
{
    const msgpack_object *v = cairn_obj_get(b, key);
    if (!v)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field '%s' is required", key);
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 >= 1 &&
        v->via.u64 <= INT32_MAX) {
        *out = (int64_t)v->via.u64;
        return 0;
    }
    if (v->type == MSGPACK_OBJECT_STR && v->via.str.size >= 1 && v->via.str.size <= 9) {
        int64_t n = 0;
        for (uint32_t i = 0; i < v->via.str.size; i++) {
            char c = v->via.str.ptr[i];
            if (c < '0' || c > '9') goto bad;
            n = n * 10 + (c - '0');
        }
        if (n >= 1) {
            *out = n;
            return 0;
        }
    }
bad:
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "the field '%s' is a version number: an integer from 1, or "
                         "a string of its digits",
                         key);
}

int reg_field_tags(const msgpack_object *b, const msgpack_object **tags,
                   cairn_err_t *err)
{
    *tags = NULL;
    if (cairn_field_array(b, "tags", false, tags, err) < 0) return -1;
    if (!*tags) return 0;
    if ((*tags)->via.array.size > REG_TAGS_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "at most %d tags in one request", REG_TAGS_MAX);
    for (uint32_t i = 0; i < (*tags)->via.array.size; i++) {
        const msgpack_object *t = &(*tags)->via.array.ptr[i];
        cairn_str_t k, v;
        if (t->type != MSGPACK_OBJECT_MAP)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "tags[%u] must be a map {key, value}", i);
        if (cairn_field_str(t, "key", true, REG_TAG_KEY_MAX, &k, err) != 0 ||
            cairn_field_str(t, "value", false, REG_TAG_VALUE_MAX, &v, err) < 0)
            return -1;
        if (!k.len)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "tags[%u]: a tag's key must not be empty", i);
    }
    return 0;
}

int reg_pack_tags(registry_t *r, msgpack_packer *pk, sqlite3_stmt *st, cairn_err_t *err)
{
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        msgpack_pack_map(&rp, 2);
        cairn_pack_kv_text(&rp, "key", (const char *)sqlite3_column_text(st, 0));
        cairn_pack_kv_text(&rp, "value", (const char *)sqlite3_column_text(st, 1));
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) {
        msgpack_pack_array(pk, n);
        msgpack_sbuffer_write(pk->data, rows.data, rows.size);
    }
    msgpack_sbuffer_destroy(&rows);
    return rc == SQLITE_DONE ? 0 : reg_db_fail(r, "read tags", err);
}

int reg_page(const msgpack_object *b, uint64_t dflt, uint64_t *limit, uint64_t *offset,
             cairn_err_t *err)
{
    cairn_str_t tok = {"", 0};
    *limit = dflt;
    *offset = 0;
    if (cairn_field_uint(b, "max_results", false, limit, err) < 0 ||
        cairn_field_str(b, "page_token", false, 32, &tok, err) < 0)
        return -1;
    if (*limit < 1 || *limit > REG_PAGE_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "max_results is from 1 to %d", REG_PAGE_MAX);
    if (!tok.len) return 0;
    /* "o<offset>": opaque to clients, checked here. */
    bool ok = tok.len >= 2 && tok.len <= 12 && tok.ptr[0] == 'o';
    for (size_t i = 1; ok && i < tok.len; i++) {
        if (tok.ptr[i] < '0' || tok.ptr[i] > '9') ok = false;
        *offset = *offset * 10 + (uint64_t)(tok.ptr[i] - '0');
    }
    if (!ok)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "page_token is not one this server gave out");
    return 0;
}

int reg_order(const msgpack_object *b, const reg_order_col_t *cols, size_t ncols,
              const char *tail, char *out, size_t cap, cairn_err_t *err)
{
    const msgpack_object *ob = NULL;
    if (cairn_field_array(b, "order_by", false, &ob, err) < 0) return -1;
    size_t o = 0;
    for (uint32_t i = 0; ob && i < ob->via.array.size; i++) {
        const msgpack_object *e = &ob->via.array.ptr[i];
        const char *col = NULL, *dir = "ASC";
        if (e->type == MSGPACK_OBJECT_STR && i < ncols && e->via.str.size < 64) {
            char text[64];
            snprintf(text, sizeof text, "%.*s", (int)e->via.str.size, e->via.str.ptr);
            char *sp = strchr(text, ' ');
            if (sp) {
                *sp++ = '\0';
                while (*sp == ' ') sp++;
                dir = !strcasecmp(sp, "DESC")  ? "DESC"
                      : !strcasecmp(sp, "ASC") ? "ASC"
                                               : NULL;
            }
            for (size_t c = 0; dir && c < ncols; c++)
                if (!strcmp(text, cols[c].key)) col = cols[c].col;
        }
        if (!col) {
            char keys[256];
            size_t k = 0;
            for (size_t c = 0; c < ncols && k < sizeof keys; c++)
                k += (size_t)snprintf(keys + k, sizeof keys - k, "%s%s", c ? ", " : "",
                                      cols[c].key);
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "order_by[%u]: one of %s, then ASC or DESC (at most "
                                 "%zu clauses)",
                                 i, keys, ncols);
        }
        o += (size_t)snprintf(out + o, cap - o, "%s %s, ", col, dir);
    }
    snprintf(out + o, cap - o, "%s", tail);
    return 0;
}

void reg_pack_next_token(msgpack_packer *pk, uint64_t offset)
{
    char tok[32];
    snprintf(tok, sizeof tok, "o%llu", (unsigned long long)offset);
    cairn_pack_kv_str(pk, "next_page_token", tok);
}

sqlite3_stmt *reg_search_prepare(registry_t *r, int target, cairn_str_t filter,
                                 const char *head, const char *order, const char *ws,
                                 uint64_t limit, uint64_t offset, cairn_err_t *err)
{
    rfilter_t *f = malloc(sizeof *f);
    char *sql = NULL;
    sqlite3_stmt *st = NULL;
    if (!f) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    if (rfilter_compile(filter.ptr, filter.len, (rfilter_target_t)target, f, err) != 0)
        goto done;
    if (asprintf(&sql, "%s AND (%s) ORDER BY %s LIMIT ? OFFSET ?", head, f->sql,
                 order) < 0) {
        sql = NULL;
        cairn_err_oom(err, NULL);
        goto done;
    }
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) {
        reg_db_fail(r, "search", err);
        goto done;
    }
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_TRANSIENT);
    for (int i = 0; i < f->nbinds; i++) {
        if (f->bind_int[i])
            sqlite3_bind_int64(st, 2 + i, strtoll(f->binds[i].ptr, NULL, 10));
        else
            sqlite3_bind_text(st, 2 + i, f->binds[i].ptr, (int)f->binds[i].len,
                              SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(st, 2 + f->nbinds, (int64_t)limit);
    sqlite3_bind_int64(st, 3 + f->nbinds, (int64_t)offset);
done:
    free(sql);
    free(f);
    return st;
}

int reg_history_add(registry_t *r, cairn_req_t *req, int64_t model_id, const char *name,
                    const char *kind, cairn_str_t alias, int64_t version,
                    const char *detail, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_HISTORY_ADD];
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    reg_bind_str(st, 4, alias);
    if (version > 0) sqlite3_bind_int64(st, 5, version);
    sqlite3_bind_text(st, 6, detail ? detail : "", -1, SQLITE_STATIC);
    const char *by = cairn_principal(req);
    sqlite3_bind_text(st, 7, by && *by ? by : "local", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (int64_t)cairn_wall_ms());
    return reg_step_done(r, st, "record the change in the history", err);
}

int reg_history_tag(registry_t *r, cairn_req_t *req, int64_t model_id, cairn_str_t name,
                    int64_t version, bool set, cairn_str_t key, cairn_str_t value,
                    cairn_err_t *err)
{
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    char *detail = NULL;
    if (asprintf(&detail, set ? "%.*s=%.*s" : "%.*s", (int)key.len, key.ptr,
                 (int)value.len, value.ptr) < 0)
        return cairn_err_oom(err, NULL);
    int rc = reg_history_add(r, req, model_id, nm, set ? "tag_set" : "tag_deleted",
                             (cairn_str_t){"", 0}, version, detail, err);
    free(detail);
    return rc;
}

void reg_publish(registry_t *r, const char *topic, cairn_req_t *req, const char *name,
                 int64_t version, const char *alias)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, alias ? 4 : 3);
    cairn_pack_kv_str(&pk, "ws", reg_ws(req));
    cairn_pack_kv_text(&pk, "name", name);
    cairn_pack_cstr(&pk, "version");
    msgpack_pack_int64(&pk, version);
    if (alias) cairn_pack_kv_text(&pk, "alias", alias);
    cairn_publish(r->ctx, topic, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void registry_fini(void *state)
{
    registry_t *r = state;
    if (!r) return;
    while (r->pending) reg_pending_free(r->pending); /* their callbacks are dropped */
    reg_alias_cache_close(r);
    cairn_sqlite_finalize(r->q, Q_COUNT);
    reg_stmts_free(r);
    sqlite3_close(r->db);
    msgpack_sbuffer_destroy(&r->sb);
    free(r);
}

static int registry_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
                             "registry: this host predates typed settings");
    registry_t *r = calloc(1, sizeof *r);
    if (!r) return cairn_err_oom(err, NULL);
    r->ctx = ctx;
    r->artifacts_svc = set->artifacts;
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
    char *path = NULL;
    int rc = 0;
    if (set->db && *set->db)
        path = strdup(set->db);
    else if (asprintf(&path, "%s/registry.db", cairn_state_dir(ctx)) < 0)
        path = NULL;
    if (!path)
        rc = cairn_err_oom(err, NULL);
    else if (cairn_sqlite_open(path, WHAT, 5000, &r->db, err) != 0 ||
             cairn_sqlite_exec(r->db, WHAT,
                               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                               "PRAGMA foreign_keys=OFF",
                               "configure", err) != 0 ||
             cairn_sqlite_migrate(r->db, WHAT, registry_migrations,
                                  REGISTRY_SCHEMA_VERSION, err) != 0 ||
             cairn_sqlite_prepare(r->db, WHAT, s_sql, Q_COUNT, r->q, err) != 0 ||
             reg_alias_cache_open(r, err) != 0)
        rc = -1;
    free(path);
    if (rc != 0) {
        registry_fini(r);
        return -1;
    }
    *state = r;
    return 0;
}

static const cairn_verb_t registry_verbs[] = {
    {.name = "create_registered_model",
     .handle = reg_create_registered_model,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, description, tags} -> registered_model"},
    {.name = "get_registered_model",
     .handle = reg_get_registered_model,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name*} -> registered_model"},
    {.name = "search_registered_models",
     .handle = reg_search_registered_models,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{filter, max_results, order_by, page_token} -> registered_models, "
             "next_page_token"},
    {.name = "rename_registered_model",
     .handle = reg_rename_registered_model,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, new_name*} -> registered_model"},
    {.name = "update_registered_model",
     .handle = reg_update_registered_model,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, description} -> registered_model"},
    {.name = "delete_registered_model",
     .handle = reg_delete_registered_model,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*}: the model, its versions, tags and aliases"},
    {.name = "set_registered_model_tag",
     .handle = reg_set_registered_model_tag,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, key*, value}"},
    {.name = "delete_registered_model_tag",
     .handle = reg_delete_registered_model_tag,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, key*}"},
    {.name = "create_model_version",
     .handle = reg_create_model_version,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, source*, run_id, flavor, signature, tags, description} -> "
             "model_version"},
    {.name = "get_model_version",
     .handle = reg_get_model_version,
     .perm = "registry.read",
     /* a few indexed reads: served on the kernel's thread when idle (every
      * scoring request's rollout asks it) */
     .flags = CAIRN_VERB_IDEMPOTENT | CAIRN_VERB_INLINE,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version*} -> model_version"},
    {.name = "search_model_versions",
     .handle = reg_search_model_versions,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{filter, max_results, order_by, page_token} -> model_versions, "
             "next_page_token"},
    {.name = "update_model_version",
     .handle = reg_update_model_version,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version*, description} -> model_version"},
    {.name = "delete_model_version",
     .handle = reg_delete_model_version,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version*}: its aliases go too"},
    {.name = "set_model_version_tag",
     .handle = reg_set_model_version_tag,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version*, key*, value}"},
    {.name = "delete_model_version_tag",
     .handle = reg_delete_model_version_tag,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version*, key*}"},
    {.name = "set_alias",
     .handle = reg_set_alias,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, alias*, version*}: moves the alias, kept in the history"},
    {.name = "delete_alias",
     .handle = reg_delete_alias,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, alias*}"},
    {.name = "get_model_version_by_alias",
     .handle = reg_get_model_version_by_alias,
     .perm = "registry.read",
     /* a few indexed reads: served on the kernel's thread when idle (every
      * scoring request's rollout asks it) */
     .flags = CAIRN_VERB_IDEMPOTENT | CAIRN_VERB_INLINE,
     .max_body = REG_MAX_BODY,
     .help = "{name*, alias*} -> model_version"},
    {.name = "get_alias_history",
     .handle = reg_get_alias_history,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name*, alias*, at (ms)} -> history [{version, action, set_by, set_at}], "
             "or with at the model_version in force then"},
    {.name = "get_model_history",
     .handle = reg_get_model_history,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name*, max_results, page_token} -> history [{kind, alias, version, "
             "detail, by, at}], oldest first: every change to the model"},
    {.name = "log_input",
     .handle = reg_log_input,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{run_id*, input* (data:NAME:VERSION, model:NAME:VERSION, env:...)}: the "
             "run read it (lineage)"},
    {.name = "log_deployment",
     .handle = reg_log_deployment,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help =
         "{endpoint*, name*, model*}: the endpoints service deployed the model "
         "version (lineage: model -> deployment:ENDPOINT/NAME -> endpoint:ENDPOINT)"},
    {.name = "lineage",
     .handle = reg_lineage,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help =
         "{node*, direction (up, down, both), depth (1..50)} -> nodes [{id, type}], "
         "edges [{from, to, kind}]"},
    {.name = "list_files",
     .handle = reg_list_files,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{ref*, max_results, page_token} -> ref, content_hash, files [{path, "
             "size, hash, hash_alg}], next_page_token"},
    {.name = "read_file",
     .handle = reg_read_file,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{ref*, path*, offset, length} -> path, offset, size, hash, hash_alg, "
             "data"},
    {.name = "resolve",
     .handle = reg_resolve,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{ref*} -> ref, kind, model_version | data_asset | environment, path "
             "(a local folder of its files)"},
    {.name = "get_model_version_download_uri",
     .handle = reg_get_model_version_download_uri,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version*} -> artifact_uri"},
    {.name = "create_environment",
     .handle = reg_create_environment,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, python, requirements, env_vars, description, tags} -> "
             "environment (the next version)"},
    {.name = "get_environment",
     .handle = reg_get_environment,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version (a number or latest, the default)} -> environment"},
    {.name = "list_environments",
     .handle = reg_list_environments,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name, include_archived, max_results, page_token} -> environments, "
             "next_page_token (no name: the latest of each)"},
    {.name = "archive_environment",
     .handle = reg_archive_environment,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version*, archived (default true)} -> environment"},
    {.name = "create_data_asset",
     .handle = reg_create_data_asset,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = REG_MAX_BODY,
     .help = "{name*, type* (uri_file, uri_folder, table), path* (runs:/...), "
             "description, tags} -> data_asset (the next version)"},
    {.name = "get_data_asset",
     .handle = reg_get_data_asset,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version (a number or latest, the default)} -> data_asset"},
    {.name = "list_data_assets",
     .handle = reg_list_data_assets,
     .perm = "registry.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name, include_archived, max_results, page_token} -> data_assets, "
             "next_page_token (no name: the latest of each)"},
    {.name = "archive_data_asset",
     .handle = reg_archive_data_asset,
     .perm = "registry.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .max_body = REG_MAX_BODY,
     .help = "{name*, version*, archived (default true)} -> data_asset"},
    {.name = NULL},
};

static const cairn_plugin_t registry_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "registry",
    .version = "0.1.0",
    .description = "versioned models with tags, aliases and their history",
    .verbs = registry_verbs,
    .settings = registry_settings,
    .settings_size = sizeof(settings_t),
    .init = registry_init,
    .fini = registry_fini,
    .concurrency = 64,
};
CAIRN_PLUGIN_DEFINE(registry_plugin)
