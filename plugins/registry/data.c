/* Data assets (data:NAME:VERSION), as Azure ML's: a file (uri_file), a
 * folder (uri_folder) or a table (one CSV file), versioned per name,
 * immutable, archived but never deleted (assets.h).
 *
 * Bytes stored once: the path is runs:/RUN_ID/PATH, files the artifact
 * store already holds (the SDKs and the CLI upload a local file or folder
 * there first, as for models); they are pinned for the version's owner key
 * ("registry:<svc>:<ws>:data:<random>": the number is only known at the
 * end) and the version records their manifest (files), content_hash (as a
 * model version's), size and file count. A table's CSV is read through by
 * the store (sniff_pinned: sdk/csv.h): its row count and its columns'
 * names and types are kept (columns: the msgpack array it answered).
 *
 *   create_data_asset {name*, type* (uri_file, uri_folder, table), path*,
 *                      description, tags} -> data_asset
 *   get_data_asset {name*, version (a number or latest)} -> data_asset
 *   list_data_assets {name, include_archived, max_results, page_token}
 *       -> data_assets, next_page_token
 *   archive_data_asset {name*, version*, archived} -> data_asset
 *
 * data_asset: {name, version, type, path, content_hash, size, files, rows
 * (tables), columns [{name, type}] (tables), description, tags, archived,
 * user_id, creation_timestamp}. A version from a run is linked to it in
 * the lineage (run -> data, "produced"); the event data.created says so. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "assets.h"

static const reg_asset_kind_t s_data = {.kind = "data",
                                        .table = "data_versions",
                                        .noun = "data asset",
                                        .one = "data_asset",
                                        .many = "data_assets"};

static const char *const s_types[] = {"uri_file", "uri_folder", "table", NULL};

/* What a create_data_asset carries from the pin to the sniff to the row. */
typedef struct reg_data_new {
    cairn_str_t type, path, description;
    char content_hash[REG_HASH_MAX];
    uint64_t size, nfiles;
    msgpack_sbuffer files; /* the pin's files array, packed */
    bool has_rows;
    int64_t rows;
    msgpack_sbuffer columns; /* the sniffer's columns array, packed */
} reg_data_new_t;

void reg_data_new_free(reg_data_new_t *d)
{
    if (!d) return;
    msgpack_sbuffer_destroy(&d->files);
    msgpack_sbuffer_destroy(&d->columns);
    free(d);
}

/* ---- reading -------------------------------------------------------------- */

int reg_pack_data(registry_t *r, msgpack_packer *pk, const char *ws, const char *name,
                  int64_t version, cairn_err_t *err)
{
    sqlite3_stmt *st;
    if (reg_asset_row(
            r, &s_data,
            "SELECT type, path, content_hash, size, files, rows, columns, "
            "description, archived, user_id, created FROM data_versions WHERE "
            "ws = ? AND name = ? AND version = ?",
            ws, name, version, &st, err) != 0)
        return -1;
    bool table = sqlite3_column_type(st, 5) != SQLITE_NULL;
    reg_asset_pack_head(pk, table ? 7 : 5, name, version);
    cairn_pack_kv_text(pk, "type", (const char *)sqlite3_column_text(st, 0));
    cairn_pack_kv_text(pk, "path", (const char *)sqlite3_column_text(st, 1));
    cairn_pack_kv_text(pk, "content_hash", (const char *)sqlite3_column_text(st, 2));
    cairn_pack_cstr(pk, "size");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, 3));
    cairn_pack_cstr(pk, "files");
    msgpack_pack_int64(pk, sqlite3_column_int64(st, 4));
    if (table) {
        cairn_pack_cstr(pk, "rows");
        msgpack_pack_int64(pk, sqlite3_column_int64(st, 5));
        cairn_pack_cstr(pk, "columns");
        if (sqlite3_column_bytes(st, 6) > 0)
            msgpack_sbuffer_write(pk->data, sqlite3_column_blob(st, 6),
                                  (size_t)sqlite3_column_bytes(st, 6));
        else
            msgpack_pack_array(pk, 0);
    }
    return reg_asset_pack_tail(r, pk, &s_data, st, 7, ws, name, version, err);
}

int reg_data_target(registry_t *r, cairn_req_t *req, const reg_ref_t *ref,
                    char owner[REG_OWNER_MAX], char name[REG_REF_NAME_MAX],
                    char content_hash[REG_HASH_MAX], cairn_err_t *err)
{
    int64_t version = 0;
    if (reg_asset_resolve(r, &s_data, reg_ws(req), ref->name,
                          ref->latest ? 0 : ref->version, &version, err) != 0)
        return -1;
    sqlite3_stmt *st =
        reg_stmt(r,
                 "SELECT owner, content_hash FROM data_versions WHERE ws "
                 "= ? AND name = ? AND version = ?",
                 err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, reg_ws(req), -1, SQLITE_STATIC);
    reg_bind_str(st, 2, ref->name);
    sqlite3_bind_int64(st, 3, version);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(owner, REG_OWNER_MAX, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(content_hash, REG_HASH_MAX, "%s",
                 (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW) return reg_db_fail(r, "read a data asset", err);
    snprintf(name, REG_REF_NAME_MAX, "data:%.*s:%lld", (int)ref->name.len,
             ref->name.ptr, (long long)version);
    return 0;
}

int reg_get_data_asset(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return reg_asset_get(state, req, &s_data, reg_pack_data, err);
}

int reg_list_data_assets(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return reg_asset_list(state, req, &s_data, reg_pack_data, err);
}

int reg_archive_data_asset(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return reg_asset_archive(state, req, &s_data, reg_pack_data, err);
}

/* ---- creating ------------------------------------------------------------- */

/* Write the version: its number, row, tags, manifest and lineage edge, in
 * one transaction; publish and reply. */
static int s_write(reg_pending_t *p, cairn_err_t *err)
{
    registry_t *r = p->r;
    reg_data_new_t *d = p->data;
    cairn_str_t name = {p->name, strlen(p->name)};
    sqlite3_stmt *st =
        reg_stmt(r,
                 "INSERT INTO data_versions (ws, name, version, type, "
                 "path, owner, content_hash, size, files, rows, columns, "
                 "description, user_id, created) VALUES (?, ?, ?, ?, ?, "
                 "?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 err);
    msgpack_unpacked files;
    msgpack_unpacked_init(&files);
    int64_t version = 0;
    int rc = st && msgpack_unpack_next(&files, d->files.data, d->files.size, NULL) ==
                         MSGPACK_UNPACK_SUCCESS
                 ? reg_begin(r, err)
                 : (st ? cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                                       "the pinned files cannot be read back")
                       : -1);
    if (rc == 0) rc = reg_asset_next_version(r, &s_data, p->ws, name, &version, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, p->ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, version);
        reg_bind_str(st, 4, d->type);
        reg_bind_str(st, 5, d->path);
        sqlite3_bind_text(st, 6, p->owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, d->content_hash, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, (int64_t)d->size);
        sqlite3_bind_int64(st, 9, (int64_t)d->nfiles);
        if (d->has_rows) sqlite3_bind_int64(st, 10, d->rows);
        if (d->columns.size)
            sqlite3_bind_blob(st, 11, d->columns.data, (int)d->columns.size,
                              SQLITE_STATIC);
        else
            sqlite3_bind_text(st, 11, "", 0, SQLITE_STATIC);
        reg_bind_str(st, 12, d->description);
        sqlite3_bind_text(st, 13, reg_asset_user(p->req), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 14, (int64_t)cairn_wall_ms());
        rc = reg_step_done(r, st, "create a data asset", err);
    }
    if (rc == 0)
        rc = reg_asset_tags_put(r, &s_data, p->ws, name, version, p->tags, err);
    if (rc == 0) rc = reg_files_put(r, p->owner, &files.data, err);
    if (rc == 0) {
        char run[80], node[REG_REF_NAME_MAX];
        snprintf(run, sizeof run, "run:%.*s", (int)p->run_id.len, p->run_id.ptr);
        snprintf(node, sizeof node, "data:%s:%lld", p->name, (long long)version);
        rc = reg_edge_add(r, p->req, run, node, "produced", err);
    }
    msgpack_unpacked_destroy(&files);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    reg_publish(r, "data.created", p->req, p->name, version, NULL);
    return reg_asset_reply(r, p->req, &s_data, reg_pack_data, p->ws, p->name, version,
                           err);
}

/* Finish p: write it, or answer err and let its pins go. */
static void s_finish(reg_pending_t *p, int rc, cairn_err_t *err, bool pinned)
{
    if (rc == 0) rc = s_write(p, err);
    if (rc != 0) {
        if (pinned) reg_unpin_owner(p->r, p->ws, p->owner);
        cairn_reply_err(p->req, err);
    }
    reg_pending_free(p);
}

static void s_sniffed(void *arg, int st, const char *code, const char *msg,
                      const msgpack_object *body)
{
    reg_pending_t *p = arg;
    reg_data_new_t *d = p->data;
    cairn_err_t err = {0};
    const msgpack_object *cols = cairn_obj_get(body, "columns");
    int rc = 0;
    if (st >= CAIRN_ST_BAD_REQUEST)
        rc = cairn_err_set(&err, st, code, "%.*s is not a table: %s", (int)d->path.len,
                           d->path.ptr, msg ? msg : "the artifact store refused it");
    else if (cairn_field_int(body, "rows", true, &d->rows, &err) != 0 || !cols ||
             cols->type != MSGPACK_OBJECT_ARRAY)
        rc = cairn_err_set(&err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the artifact store's answer holds no rows and columns");
    if (rc == 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &d->columns, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *cols);
        d->has_rows = true;
    }
    s_finish(p, rc, &err, true);
}

/* Ask the store to read the table's one file through. */
static int s_sniff(reg_pending_t *p, const msgpack_object *file, cairn_err_t *err)
{
    cairn_str_t hash, alg;
    if (cairn_field_str(file, "hash", true, 128, &hash, err) != 0 ||
        cairn_field_str(file, "hash_alg", true, 16, &alg, err) != 0)
        return -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cairn_pack_kv_text(&pk, "owner", p->owner);
    cairn_pack_cstr(&pk, "hash");
    cairn_pack_strn(&pk, hash.ptr, hash.len);
    cairn_pack_cstr(&pk, "hash_alg");
    cairn_pack_strn(&pk, alg.ptr, alg.len);
    int rc = cairn_call_ws(p->r->ctx, p->ws, p->r->artifacts_svc, "sniff_pinned",
                           sb.data, sb.size, reg_ttl_left(p->req), s_sniffed, p, err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The pinned files: check them against the type, keep the manifest. */
static int s_take_files(reg_pending_t *p, const msgpack_object *files, cairn_err_t *err)
{
    reg_data_new_t *d = p->data;
    uint32_t n = files->via.array.size;
    bool folder = cairn_str_eq(d->type, "uri_folder");
    if (!folder && n != 1)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a %.*s is one file; %.*s holds %u (type uri_folder is a "
                             "folder)",
                             (int)d->type.len, d->type.ptr, (int)d->path.len,
                             d->path.ptr, n);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t size = 0;
        if (cairn_field_uint(&files->via.array.ptr[i], "size", true, &size, err) != 0)
            return -1;
        d->size += size;
    }
    d->nfiles = n;
    if (reg_manifest_hash(files, d->content_hash, err) != 0) return -1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &d->files, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *files);
    return 0;
}

static void s_pinned(void *arg, int st, const char *code, const char *msg,
                     const msgpack_object *body)
{
    reg_pending_t *p = arg;
    cairn_err_t err = {0};
    const msgpack_object *files = cairn_obj_get(body, "files");
    int rc = 0;
    if (st >= CAIRN_ST_BAD_REQUEST)
        rc = cairn_err_set(&err, st, code, "cannot register %.*s: %s",
                           (int)p->data->path.len, p->data->path.ptr,
                           msg ? msg : "the artifact store refused it");
    else if (!files || files->type != MSGPACK_OBJECT_ARRAY)
        rc = cairn_err_set(&err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the artifact store's answer holds no file list");
    else
        rc = s_take_files(p, files, &err);
    bool pinned = st < CAIRN_ST_BAD_REQUEST;
    if (rc == 0 && cairn_str_eq(p->data->type, "table")) {
        if (s_sniff(p, &files->via.array.ptr[0], &err) == 0)
            return; /* s_sniffed goes on */
        rc = -1;
    }
    s_finish(p, rc, &err, pinned);
}

static int s_type(const msgpack_object *b, cairn_str_t *type, cairn_err_t *err)
{
    if (cairn_field_str(b, "type", true, 16, type, err) != 0) return -1;
    for (const char *const *t = s_types; *t; t++)
        if (cairn_str_eq(*type, *t)) return 0;
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "type is uri_file, uri_folder or table");
}

int reg_create_data_asset(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req), *tags = NULL;
    cairn_str_t name, type, path, desc = {"", 0}, run_id, rel;
    if (reg_field_name(b, "name", &name, err) != 0 || s_type(b, &type, err) != 0 ||
        cairn_field_str(b, "path", true, REG_TEXT_MAX, &path, err) != 0 ||
        cairn_field_str(b, "description", false, REG_TEXT_MAX, &desc, err) < 0 ||
        reg_asset_field_tags(b, &tags, err) != 0)
        return -1;
    int runs = reg_source_parse(path, &run_id, &rel, err);
    if (runs < 0) return -1;
    if (runs > 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "path is runs:/RUN_ID/PATH, files the artifact store "
                             "holds (the SDKs and the CLI upload a local file or "
                             "folder first)");
    cairn_name_object(req, "data", name.ptr, name.len);
    reg_pending_t *p = calloc(1, sizeof *p);
    reg_data_new_t *d = calloc(1, sizeof *d);
    if (!p || !d) {
        free(p);
        free(d);
        return cairn_err_oom(err, NULL);
    }
    *d = (reg_data_new_t){.type = type, .path = path, .description = desc};
    msgpack_sbuffer_init(&d->files);
    msgpack_sbuffer_init(&d->columns);
    *p = (reg_pending_t){.r = r,
                         .req = req,
                         .run_id = run_id,
                         .path = rel,
                         .tags = tags,
                         .data = d,
                         .next = r->pending};
    snprintf(p->ws, sizeof p->ws, "%s", reg_ws(req));
    snprintf(p->name, sizeof p->name, "%.*s", (int)name.len, name.ptr);
    unsigned char nonce[12];
    char hex[sizeof nonce * 2 + 1];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2hex(hex, sizeof hex, nonce, sizeof nonce);
    snprintf(p->owner, sizeof p->owner, "registry:%s:%s:data:%s", cairn_service(r->ctx),
             p->ws, hex);
    r->pending = p;
    p->tags = reg_defer(req, "tags");
    if (reg_pin_source(p, s_pinned, err) != 0) {
        reg_pending_free(p);
        return -1;
    }
    return 0;
}
