/* Versioned assets: versions, tags, archive, list and get for any kind
 * (assets.h). The SQL names the kind's table, so its statements are built
 * per kind and kept prepared (reg_stmt). */
#define _GNU_SOURCE
#include "assets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- prepared statements, by SQL text ---------------------------------- */

struct reg_stmt {
    char *sql;
    sqlite3_stmt *st;
    struct reg_stmt *next;
};

sqlite3_stmt *reg_stmt(registry_t *r, const char *sql, cairn_err_t *err)
{
    for (struct reg_stmt *s = r->stmts; s; s = s->next)
        if (!strcmp(s->sql, sql)) return s->st;
    struct reg_stmt *s = calloc(1, sizeof *s);
    if (!s || !(s->sql = strdup(sql))) {
        free(s);
        cairn_err_oom(err, NULL);
        return NULL;
    }
    if (sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st, NULL) !=
        SQLITE_OK) {
        reg_db_fail(r, "prepare a statement", err);
        sqlite3_finalize(s->st);
        free(s->sql);
        free(s);
        return NULL;
    }
    s->next = r->stmts;
    r->stmts = s;
    return s->st;
}

void reg_stmts_free(registry_t *r)
{
    while (r->stmts) {
        struct reg_stmt *s = r->stmts;
        r->stmts = s->next;
        sqlite3_finalize(s->st);
        free(s->sql);
        free(s);
    }
}

/* The statement for fmt with the kind's table in it (fmt's one %s). */
static sqlite3_stmt *s_kstmt(registry_t *r, const reg_asset_kind_t *k, const char *fmt,
                             cairn_err_t *err)
{
    char sql[512];
    snprintf(sql, sizeof sql, fmt, k->table);
    return reg_stmt(r, sql, err);
}

static void s_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

const char *reg_asset_user(cairn_req_t *req)
{
    const char *by = cairn_principal(req);
    return by && *by ? by : "local";
}

/* ---- versions ------------------------------------------------------------ */

int reg_asset_next_version(registry_t *r, const reg_asset_kind_t *k, const char *ws,
                           cairn_str_t name, int64_t *version, cairn_err_t *err)
{
    sqlite3_stmt *st = s_kstmt(
        r, k, "SELECT coalesce(max(version), 0) + 1 FROM %s WHERE ws = ? AND name = ?",
        err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    reg_bind_str(st, 2, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *version = sqlite3_column_int64(st, 0);
    s_done(st);
    return rc == SQLITE_ROW ? 0 : reg_db_fail(r, "number a version", err);
}

int reg_asset_field_version(const msgpack_object *b, const char *key, bool required,
                            int64_t *out, cairn_err_t *err)
{
    const msgpack_object *v = cairn_obj_get(b, key);
    *out = 0;
    if (!v || v->type == MSGPACK_OBJECT_NIL) {
        if (!required) return 0;
    } else if (cairn_obj_is_str(v, "latest")) {
        return 0;
    }
    return reg_field_version(b, key, out, err);
}

int reg_asset_resolve(registry_t *r, const reg_asset_kind_t *k, const char *ws,
                      cairn_str_t name, int64_t want, int64_t *version,
                      cairn_err_t *err)
{
    /* max over the name's versions, and over those not archived; the one
     * wanted when it exists. */
    sqlite3_stmt *st = s_kstmt(
        r, k,
        "SELECT count(*), max(CASE WHEN archived = 0 THEN version END), "
        "count(CASE WHEN version = ?3 THEN 1 END) FROM %s WHERE ws = ?1 AND name = ?2",
        err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    reg_bind_str(st, 2, name);
    sqlite3_bind_int64(st, 3, want);
    int rc = sqlite3_step(st);
    int64_t n = 0, latest = 0, found = 0;
    if (rc == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
        latest = sqlite3_column_int64(st, 1); /* NULL: 0 */
        found = sqlite3_column_int64(st, 2);
    }
    s_done(st);
    if (rc != SQLITE_ROW) return reg_db_fail(r, "find a version", err);
    if (!n)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no %s is named '%.*s' in this workspace", k->noun,
                             (int)name.len, name.ptr);
    if (want > 0 && !found)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "%s '%.*s' has no version %lld", k->noun, (int)name.len,
                             name.ptr, (long long)want);
    if (want == 0 && !latest)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "every version of %s '%.*s' is archived: ask for one by "
                             "its number",
                             k->noun, (int)name.len, name.ptr);
    *version = want > 0 ? want : latest;
    return 0;
}

/* ---- tags ------------------------------------------------------------------ */

/* Tag i of checked tags (a map or [{key, value}]). */
static void s_tag_at(const msgpack_object *tags, uint32_t i, cairn_str_t *key,
                     cairn_str_t *value)
{
    const msgpack_object *k, *v;
    if (tags->type == MSGPACK_OBJECT_MAP) {
        k = &tags->via.map.ptr[i].key;
        v = &tags->via.map.ptr[i].val;
    } else {
        k = cairn_obj_get(&tags->via.array.ptr[i], "key");
        v = cairn_obj_get(&tags->via.array.ptr[i], "value");
    }
    *key = (cairn_str_t){k->via.str.ptr, k->via.str.size};
    *value = v && v->type == MSGPACK_OBJECT_STR
                 ? (cairn_str_t){v->via.str.ptr, v->via.str.size}
                 : (cairn_str_t){"", 0};
}

static uint32_t s_ntags(const msgpack_object *tags)
{
    return tags->type == MSGPACK_OBJECT_MAP ? tags->via.map.size : tags->via.array.size;
}

static int s_bad(cairn_err_t *err, const char *what, uint32_t i, const char *why)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, "%s[%u]: %s",
                         what, i, why);
}

int reg_asset_field_tags(const msgpack_object *b, const msgpack_object **tags,
                         cairn_err_t *err)
{
    *tags = cairn_obj_get(b, "tags");
    if (*tags && (*tags)->type == MSGPACK_OBJECT_NIL) *tags = NULL;
    if (!*tags) return 0;
    const msgpack_object *t = *tags;
    if (t->type != MSGPACK_OBJECT_MAP && t->type != MSGPACK_OBJECT_ARRAY)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'tags' is a map {key: value} (or a list "
                             "[{key, value}])");
    uint32_t n = s_ntags(t);
    if (n > REG_TAGS_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "at most %d tags in one request", REG_TAGS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k, *v;
        if (t->type == MSGPACK_OBJECT_MAP) {
            k = &t->via.map.ptr[i].key;
            v = &t->via.map.ptr[i].val;
        } else {
            const msgpack_object *e = &t->via.array.ptr[i];
            if (e->type != MSGPACK_OBJECT_MAP)
                return s_bad(err, "tags", i, "a tag is a map {key, value}");
            k = cairn_obj_get(e, "key");
            v = cairn_obj_get(e, "value");
            if (v && v->type == MSGPACK_OBJECT_NIL) v = NULL;
        }
        if (!k || k->type != MSGPACK_OBJECT_STR)
            return s_bad(err, "tags", i, "a tag's key is a string");
        if (!k->via.str.size || k->via.str.size > REG_TAG_KEY_MAX)
            return s_bad(err, "tags", i, "a tag's key is 1 to 250 bytes long");
        if (v && v->type != MSGPACK_OBJECT_STR)
            return s_bad(err, "tags", i, "a tag's value is a string");
        if (v && v->via.str.size > REG_TAG_VALUE_MAX)
            return s_bad(err, "tags", i, "a tag's value is at most 5000 bytes long");
        cairn_str_t ki, kj, vj;
        s_tag_at(t, i, &ki, &vj);
        for (uint32_t j = 0; j < i; j++) {
            s_tag_at(t, j, &kj, &vj);
            if (kj.len == ki.len && !memcmp(kj.ptr, ki.ptr, ki.len))
                return s_bad(err, "tags", i, "this key is given twice");
        }
    }
    return 0;
}

int reg_asset_tags_put(registry_t *r, const reg_asset_kind_t *k, const char *ws,
                       cairn_str_t name, int64_t version, const msgpack_object *tags,
                       cairn_err_t *err)
{
    if (!tags) return 0;
    sqlite3_stmt *st =
        reg_stmt(r,
                 "INSERT INTO asset_tags (ws, kind, name, version, key, value) VALUES "
                 "(?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value",
                 err);
    if (!st) return -1;
    for (uint32_t i = 0; i < s_ntags(tags); i++) {
        cairn_str_t key, value;
        s_tag_at(tags, i, &key, &value);
        sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, k->kind, -1, SQLITE_STATIC);
        reg_bind_str(st, 3, name);
        sqlite3_bind_int64(st, 4, version);
        reg_bind_str(st, 5, key);
        reg_bind_str(st, 6, value);
        if (reg_step_done(r, st, "store a tag", err) != 0) return -1;
    }
    return 0;
}

int reg_asset_pack_tags(registry_t *r, msgpack_packer *pk, const reg_asset_kind_t *k,
                        const char *ws, const char *name, int64_t version,
                        cairn_err_t *err)
{
    sqlite3_stmt *st = reg_stmt(r,
                                "SELECT key, value FROM asset_tags WHERE ws = ? AND "
                                "kind = ? AND name = ? AND version = ? ORDER BY key",
                                err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, k->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, version);
    /* Rows first, into a side buffer: the map's size comes before them. */
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cairn_pack_strn(&rp, (const char *)sqlite3_column_text(st, 0),
                        (size_t)sqlite3_column_bytes(st, 0));
        cairn_pack_strn(&rp, (const char *)sqlite3_column_text(st, 1),
                        (size_t)sqlite3_column_bytes(st, 1));
        n++;
    }
    s_done(st);
    if (rc == SQLITE_DONE) {
        msgpack_pack_map(pk, n);
        msgpack_sbuffer_write(pk->data, rows.data, rows.size);
    }
    msgpack_sbuffer_destroy(&rows);
    return rc == SQLITE_DONE ? 0 : reg_db_fail(r, "read tags", err);
}

/* ---- verbs ----------------------------------------------------------------- */

int reg_asset_reply(registry_t *r, cairn_req_t *req, const reg_asset_kind_t *k,
                    reg_asset_pack_fn pack, const char *ws, const char *name,
                    int64_t version, cairn_err_t *err)
{
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, k->one);
    if (pack(r, pk, ws, name, version, err) != 0) return -1;
    return reg_reply(r, req, CAIRN_ST_OK);
}

int reg_asset_get(registry_t *r, cairn_req_t *req, const reg_asset_kind_t *k,
                  reg_asset_pack_fn pack, cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    const char *ws = reg_ws(req);
    cairn_str_t name;
    int64_t want, version;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        reg_asset_field_version(b, "version", false, &want, err) != 0 ||
        reg_asset_resolve(r, k, ws, name, want, &version, err) != 0)
        return -1;
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    return reg_asset_reply(r, req, k, pack, ws, nm, version, err);
}

int reg_asset_archive(registry_t *r, cairn_req_t *req, const reg_asset_kind_t *k,
                      reg_asset_pack_fn pack, cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    const char *ws = reg_ws(req);
    cairn_str_t name;
    int64_t version;
    bool archived = true;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        reg_field_version(b, "version", &version, err) != 0 ||
        cairn_field_bool(b, "archived", false, &archived, err) < 0 ||
        reg_asset_resolve(r, k, ws, name, version, &version, err) != 0)
        return -1;
    sqlite3_stmt *st =
        s_kstmt(r, k,
                "UPDATE %s SET archived = ?4 WHERE ws = ?1 AND name = ?2 "
                "AND version = ?3 AND archived != ?4",
                err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    reg_bind_str(st, 2, name);
    sqlite3_bind_int64(st, 3, version);
    sqlite3_bind_int(st, 4, archived);
    if (reg_step_done(r, st, archived ? "archive a version" : "unarchive a version",
                      err) != 0)
        return -1;
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    if (sqlite3_changes(r->db) > 0) {
        char topic[64];
        snprintf(topic, sizeof topic, "%s.%s", k->one,
                 archived ? "archived" : "unarchived");
        reg_publish(r, topic, req, nm, version, NULL);
    }
    return reg_asset_reply(r, req, k, pack, ws, nm, version, err);
}

/* 0 when (ws, name) has a version, else 404 (or a database failure). */
static int s_exists(registry_t *r, const reg_asset_kind_t *k, const char *ws,
                    cairn_str_t name, cairn_err_t *err)
{
    sqlite3_stmt *st =
        s_kstmt(r, k, "SELECT 1 FROM %s WHERE ws = ? AND name = ? LIMIT 1", err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    reg_bind_str(st, 2, name);
    int rc = sqlite3_step(st);
    s_done(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return reg_db_fail(r, "find a name", err);
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "no %s is named '%.*s' in this workspace", k->noun,
                         (int)name.len, name.ptr);
}

int reg_asset_list(registry_t *r, cairn_req_t *req, const reg_asset_kind_t *k,
                   reg_asset_pack_fn pack, cairn_err_t *err)
{
    const msgpack_object *b = cairn_body(req);
    const char *ws = reg_ws(req);
    cairn_str_t name = {"", 0};
    bool all = false;
    uint64_t limit, offset;
    int has_name = 0;
    if (cairn_obj_get(b, "name") &&
        cairn_obj_get(b, "name")->type != MSGPACK_OBJECT_NIL) {
        if (reg_field_name(b, "name", &name, err) != 0) return -1;
        has_name = 1;
    }
    if (cairn_field_bool(b, "include_archived", false, &all, err) < 0 ||
        reg_page(b, REG_ASSET_LIST_DEFAULT, &limit, &offset, err) != 0)
        return -1;
    /* A name that never had a version is a 404, as get's. */
    if (has_name && s_exists(r, k, ws, name, err) != 0) return -1;
    sqlite3_stmt *st =
        has_name
            ? s_kstmt(r, k,
                      "SELECT name, version FROM %s WHERE ws = ?1 AND name = ?5 AND "
                      "(archived = 0 OR ?2) ORDER BY version DESC LIMIT ?3 OFFSET ?4",
                      err)
            : s_kstmt(r, k,
                      "SELECT name, max(version) FROM %s WHERE ws = ?1 AND (archived "
                      "= 0 OR ?2) GROUP BY name ORDER BY name LIMIT ?3 OFFSET ?4",
                      err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, all);
    sqlite3_bind_int64(st, 3, (int64_t)limit + 1);
    sqlite3_bind_int64(st, 4, (int64_t)offset);
    if (has_name) reg_bind_str(st, 5, name);
    /* The rows first (the statement is done before each version is packed). */
    typedef struct row {
        char *name;
        int64_t version;
    } row_t;
    row_t *rows = calloc(limit + 1, sizeof *rows);
    uint64_t n = 0;
    int rc = SQLITE_DONE;
    while (rows && n <= limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rows[n].version = sqlite3_column_int64(st, 1);
        if (!(rows[n++].name = strdup((const char *)sqlite3_column_text(st, 0)))) break;
    }
    bool failed = !rows || (rc != SQLITE_ROW && rc != SQLITE_DONE);
    s_done(st);
    bool more = n > limit;
    if (more) n = limit;
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, more ? 2 : 1);
    cairn_pack_cstr(pk, k->many);
    msgpack_pack_array(pk, (uint32_t)n);
    rc = failed
             ? (rows ? reg_db_fail(r, "list versions", err) : cairn_err_oom(err, NULL))
             : 0;
    for (uint64_t i = 0; rc == 0 && i < n; i++)
        rc = rows[i].name ? pack(r, pk, ws, rows[i].name, rows[i].version, err)
                          : cairn_err_oom(err, NULL);
    for (uint64_t i = 0; rows && i <= limit; i++) free(rows[i].name);
    free(rows);
    if (rc != 0) return -1;
    if (more) reg_pack_next_token(pk, offset + limit);
    return reg_reply(r, req, CAIRN_ST_OK);
}

/* ---- one version's row ---------------------------------------------------- */

int reg_asset_row(registry_t *r, const reg_asset_kind_t *k, const char *sql,
                  const char *ws, const char *name, int64_t version, sqlite3_stmt **out,
                  cairn_err_t *err)
{
    sqlite3_stmt *st = reg_stmt(r, sql, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, version);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = st;
        return 0;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) return reg_db_fail(r, "read a version", err);
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "%s '%s' has no version %lld", k->noun, name,
                         (long long)version);
}

void reg_asset_pack_head(msgpack_packer *pk, uint32_t nown, const char *name,
                         int64_t version)
{
    msgpack_pack_map(pk, REG_ASSET_COMMON_KEYS + nown);
    cairn_pack_kv_text(pk, "name", name);
    cairn_pack_cstr(pk, "version");
    msgpack_pack_int64(pk, version);
}

int reg_asset_pack_tail(registry_t *r, msgpack_packer *pk, const reg_asset_kind_t *k,
                        sqlite3_stmt *st, int col, const char *ws, const char *name,
                        int64_t version, cairn_err_t *err)
{
    cairn_pack_cstr(pk, "description");
    cairn_pack_strn(pk, (const char *)sqlite3_column_text(st, col),
                    (size_t)sqlite3_column_bytes(st, col));
    cairn_pack_cstr(pk, "archived");
    if (sqlite3_column_int(st, col + 1))
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    cairn_pack_kv_text(pk, "user_id", (const char *)sqlite3_column_text(st, col + 2));
    cairn_pack_cstr(pk, "creation_timestamp");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, col + 3));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    cairn_pack_cstr(pk, "tags");
    return reg_asset_pack_tags(r, pk, k, ws, name, version, err);
}
