/* One verb that every later plugin (jobs, endpoints) calls to turn a
 * reference into the object it names and, for stored bytes, a local path.
 *
 *   resolve {ref*} -> {ref (canonical: model:NAME:V, data:NAME:V,
 *                     env:NAME:V), kind (model_version, data_asset,
 *                     environment), <kind>: the object as its get verb
 *                     answers it, path (stored bytes only)}
 *
 * path is a read-only folder holding the version's files at their paths,
 * hard links to the artifact store's blobs (the store's
 * materialize_pinned: built once per version, nothing copied), for a
 * process on this host to read. A model version registered from a source
 * Cairn does not store (an external URI) and an environment have none.
 * The path exists while the version does: deleting a model version drops
 * its pins and with them the folder. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

#define RESOLVE_FILES_MAX 100000

/* materialize_pinned's answer: the path ends the reply. */
static void s_materialized(void *arg, int st, const char *code, const char *msg,
                           const msgpack_object *body)
{
    reg_pending_t *p = arg;
    cairn_err_t err = {0};
    cairn_str_t path;
    if (st >= CAIRN_ST_BAD_REQUEST)
        cairn_err_set(&err, st, code, "cannot lay out %s's files: %s", p->file_path,
                      msg ? msg : "the artifact store refused it");
    else if (cairn_field_str(body, "path", true, 0, &path, &err) != 0)
        cairn_err_set(&err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                      "the artifact store's answer names no path");
    if (err.st) {
        cairn_reply_err(p->req, &err);
    } else {
        msgpack_packer *pk = reg_reply_begin(p->r);
        msgpack_sbuffer_write(&p->r->sb, p->resolved->data, p->resolved->size);
        cairn_pack_cstr(pk, "path");
        cairn_pack_strn(pk, path.ptr, path.len);
        reg_reply(p->r, p->req, CAIRN_ST_OK);
    }
    reg_pending_free(p);
}

/* Ask the store for owner's folder, listing its files from the manifest. */
static int s_materialize(registry_t *r, reg_pending_t *p, const char *owner,
                         cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_FILES_PAGE];
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, "", 0, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, RESOLVE_FILES_MAX);
    msgpack_sbuffer files;
    msgpack_sbuffer_init(&files);
    msgpack_packer fp;
    msgpack_packer_init(&fp, &files, msgpack_sbuffer_write);
    uint32_t n = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        msgpack_pack_map(&fp, 3);
        cairn_pack_kv_text(&fp, "path", (const char *)sqlite3_column_text(st, 0));
        cairn_pack_kv_text(&fp, "hash", (const char *)sqlite3_column_text(st, 1));
        cairn_pack_kv_text(&fp, "hash_alg", (const char *)sqlite3_column_text(st, 2));
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int rc = step == SQLITE_DONE ? 0 : reg_db_fail(r, "list a version's files", err);
    if (rc == 0 && !n)
        rc = cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                           "%s has no files recorded", p->file_path);
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    if (rc == 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        cairn_pack_kv_text(&pk, "owner", owner);
        cairn_pack_cstr(&pk, "files");
        msgpack_pack_array(&pk, n);
        msgpack_sbuffer_write(&req, files.data, files.size);
        cairn_defer(p->req);
        rc = cairn_call_ws(r->ctx, p->ws, r->artifacts_svc, "materialize_pinned",
                           req.data, req.size, reg_ttl_left(p->req), s_materialized, p,
                           err);
    }
    msgpack_sbuffer_destroy(&files);
    msgpack_sbuffer_destroy(&req);
    return rc;
}

/* The object of a reference into p->resolved: {ref, kind, <kind>: ...}
 * (one key short of the reply when stored bytes follow). *owner: the pins'
 * owner, "" when there are no stored bytes. */
static int s_object(registry_t *r, cairn_req_t *req, const reg_ref_t *ref,
                    reg_pending_t *p, char owner[REG_OWNER_MAX], cairn_err_t *err)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, p->resolved, msgpack_sbuffer_write);
    char hash[REG_HASH_MAX] = "";
    owner[0] = '\0';
    if (ref->kind == REG_REF_ENV) {
        if (reg_env_target(r, req, ref, p->file_path, err) != 0) return -1;
        msgpack_pack_map(&pk, 3);
        cairn_pack_kv_text(&pk, "ref", p->file_path);
        cairn_pack_kv_str(&pk, "kind", "environment");
        cairn_pack_cstr(&pk, "environment");
        return reg_pack_env(r, &pk, p->ws, p->name,
                            atoll(strrchr(p->file_path, ':') + 1), err);
    }
    if (ref->kind == REG_REF_DATA) {
        if (reg_data_target(r, req, ref, owner, p->file_path, hash, err) != 0)
            return -1;
        msgpack_pack_map(&pk, 4);
        cairn_pack_kv_text(&pk, "ref", p->file_path);
        cairn_pack_kv_str(&pk, "kind", "data_asset");
        cairn_pack_cstr(&pk, "data_asset");
        return reg_pack_data(r, &pk, p->ws, p->name,
                             atoll(strrchr(p->file_path, ':') + 1), err);
    }
    int64_t id, version;
    if (reg_ref_model(r, req, ref, &id, &version, err) != 0) return -1;
    snprintf(p->file_path, sizeof p->file_path, "model:%s:%lld", p->name,
             (long long)version);
    msgpack_sbuffer obj;
    msgpack_sbuffer_init(&obj);
    msgpack_packer op;
    msgpack_packer_init(&op, &obj, msgpack_sbuffer_write);
    int rc = reg_pack_version(r, &op, id, p->name, version, err);
    if (rc == 0) { /* stored bytes: a content hash */
        sqlite3_stmt *st = r->q[Q_VERSION_GET];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, version);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 6) > 0)
            reg_pin_owner(r, p->ws, id, version, owner, REG_OWNER_MAX);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        msgpack_pack_map(&pk, owner[0] ? 4 : 3);
        cairn_pack_kv_text(&pk, "ref", p->file_path);
        cairn_pack_kv_str(&pk, "kind", "model_version");
        cairn_pack_cstr(&pk, "model_version");
        msgpack_sbuffer_write(p->resolved, obj.data, obj.size);
    }
    msgpack_sbuffer_destroy(&obj);
    return rc;
}

int reg_resolve(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    cairn_str_t text;
    reg_ref_t ref;
    if (cairn_field_str(cairn_body(req), "ref", true, REG_REF_NAME_MAX, &text, err) !=
            0 ||
        reg_ref_parse(text, &ref, err) != 0)
        return -1;
    reg_pending_t *p = calloc(1, sizeof *p);
    if (!p || !(p->resolved = msgpack_sbuffer_new())) {
        free(p);
        return cairn_err_oom(err, NULL);
    }
    p->r = r;
    p->req = req;
    p->next = r->pending;
    r->pending = p;
    snprintf(p->ws, sizeof p->ws, "%s", reg_ws(req));
    snprintf(p->name, sizeof p->name, "%.*s", (int)ref.name.len, ref.name.ptr);
    char owner[REG_OWNER_MAX];
    int rc = s_object(r, req, &ref, p, owner, err);
    if (rc == 0 && owner[0]) { /* s_materialized replies and frees p */
        if (s_materialize(r, p, owner, err) == 0) return 0;
        rc = -1;
    } else if (rc == 0) {
        reg_reply_begin(r);
        msgpack_sbuffer_write(&r->sb, p->resolved->data, p->resolved->size);
        rc = reg_reply(r, req, CAIRN_ST_OK);
    }
    reg_pending_free(p);
    return rc;
}

/* MLflow's get_model_version_download_uri {name*, version*} ->
 * {artifact_uri}: models:/NAME/VERSION for a version whose bytes Cairn
 * stores (the SDKs download it by that reference), else its source. */
int reg_get_model_version_download_uri(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name;
    int64_t id, version;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        reg_field_version(b, "version", &version, err) != 0 ||
        reg_model_find(r, req, name, &id, err) != 0)
        return -1;
    sqlite3_stmt *st = r->q[Q_VERSION_GET];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        msgpack_packer *pk = reg_reply_begin(r);
        msgpack_pack_map(pk, 1);
        cairn_pack_cstr(pk, "artifact_uri");
        if (sqlite3_column_bytes(st, 6) > 0) {
            char uri[REG_NAME_MAX + 64];
            int n = snprintf(uri, sizeof uri, "models:/%.*s/%lld", (int)name.len,
                             name.ptr, (long long)version);
            cairn_pack_strn(pk, uri, (size_t)n);
        } else {
            cairn_pack_strn(pk, (const char *)sqlite3_column_text(st, 1),
                            (size_t)sqlite3_column_bytes(st, 1));
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (step == SQLITE_DONE)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "registered model '%.*s' has no version %lld",
                             (int)name.len, name.ptr, (long long)version);
    if (step != SQLITE_ROW) return reg_db_fail(r, "read a model version", err);
    return reg_reply(r, req, CAIRN_ST_OK);
}
