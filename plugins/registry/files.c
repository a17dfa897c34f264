/* What a version holds, file by file, and its bytes back.
 *
 * A model version registered from runs:/ (and a data asset version) keeps
 * its manifest in table `files`, keyed by its pin owner (source.c): the
 * paths, sizes and content hashes the artifact store answered when it
 * pinned them, written in the version's own transaction. The bytes stay
 * in the artifact store, pinned; nothing here copies them.
 *
 *   list_files {ref*, max_results (10000, <= 10000), page_token}
 *       -> {ref, content_hash, files: [{path, size, hash, hash_alg}],
 *          next_page_token?}: in path order, paths relative to the source.
 *   read_file {ref*, path*, offset (0), length (8 MiB, <= 8 MiB)}
 *       -> {path, offset, size (the file's), hash, hash_alg, data (bin)}:
 *       a range of one file, read from the artifact store (read_pinned, a
 *       nested call as this service: the caller needs registry.read only,
 *       not the run's tracking.read). The SDKs' downloads read each file
 *       in order and check its hash.
 * A reference is any of refs.c's; a version registered from a source that
 * the store does not hold (an external URI) has no files (409). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

#define FILES_PAGE_MAX 10000
#define READ_MAX (8u << 20)
#define PATH_MAX_BYTES 1024

int reg_files_put(registry_t *r, const char *owner, const msgpack_object *files,
                  cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_FILE_PUT];
    for (uint32_t i = 0; i < files->via.array.size; i++) {
        const msgpack_object *f = &files->via.array.ptr[i];
        cairn_str_t path, alg, hash;
        uint64_t size;
        if (reg_file_entry(f, &path, &alg, &hash, &size, err) != 0) return -1;
        sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
        reg_bind_str(st, 2, path);
        reg_bind_str(st, 3, hash);
        reg_bind_str(st, 4, alg);
        sqlite3_bind_int64(st, 5, (int64_t)size);
        if (reg_step_done(r, st, "record a version's files", err) != 0) return -1;
    }
    return 0;
}

int reg_files_drop(registry_t *r, const char *owner, bool prefix, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[prefix ? Q_FILES_DROP_PREFIX : Q_FILES_DROP];
    sqlite3_bind_text(st, 1, owner, -1, SQLITE_TRANSIENT);
    return reg_step_done(r, st, "drop a version's files", err);
}

/* The reference's owner key, canonical name and content hash. */
typedef struct {
    char owner[REG_OWNER_MAX];
    char name[REG_REF_NAME_MAX];
    char content_hash[REG_HASH_MAX];
} target_t;

static int s_target(registry_t *r, cairn_req_t *req, target_t *t, cairn_err_t *err)
{
    cairn_str_t text;
    reg_ref_t ref;
    if (cairn_field_str(cairn_body(req), "ref", true, REG_NAME_MAX + 64, &text, err) !=
            0 ||
        reg_ref_parse(text, &ref, err) != 0)
        return -1;
    if (ref.kind == REG_REF_ENV)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "an environment holds no files; ref names a model "
                             "version or a data asset");
    if (ref.kind == REG_REF_DATA)
        return reg_data_target(r, req, &ref, t->owner, t->name, t->content_hash, err);
    int64_t id, version;
    if (reg_ref_model(r, req, &ref, &id, &version, err) != 0) return -1;
    sqlite3_stmt *st = r->q[Q_VERSION_GET];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, version);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(t->content_hash, sizeof t->content_hash, "%s",
                 (const char *)sqlite3_column_text(st, 6));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "registered model '%.*s' has no version %lld",
                             (int)ref.name.len, ref.name.ptr, (long long)version);
    if (rc != SQLITE_ROW) return reg_db_fail(r, "read a model version", err);
    if (!t->content_hash[0])
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "model version %.*s:%lld was registered from a source "
                             "Cairn does not store; it has no files to read",
                             (int)ref.name.len, ref.name.ptr, (long long)version);
    reg_pin_owner(r, reg_ws(req), id, version, t->owner, sizeof t->owner);
    snprintf(t->name, sizeof t->name, "model:%.*s:%lld", (int)ref.name.len,
             ref.name.ptr, (long long)version);
    return 0;
}

int reg_list_files(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    uint64_t limit = FILES_PAGE_MAX;
    cairn_str_t after = {"", 0};
    target_t t;
    int got = cairn_field_uint(b, "max_results", false, &limit, err);
    if (got < 0 ||
        cairn_field_str(b, "page_token", false, PATH_MAX_BYTES * 4, &after, err) < 0)
        return -1;
    if (got == 0 && (limit < 1 || limit > FILES_PAGE_MAX))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "max_results is 1 to %d", FILES_PAGE_MAX);
    if (s_target(r, req, &t, err) != 0) return -1;
    sqlite3_stmt *st = r->q[Q_FILES_PAGE];
    sqlite3_bind_text(st, 1, t.owner, -1, SQLITE_STATIC);
    reg_bind_str(st, 2, after);
    sqlite3_bind_int64(st, 3, (int64_t)limit + 1);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint64_t n = 0;
    bool more = false;
    char last[PATH_MAX_BYTES * 4 + 1] = "";
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            more = true;
            break;
        }
        const char *path = (const char *)sqlite3_column_text(st, 0);
        snprintf(last, sizeof last, "%s", path);
        msgpack_pack_map(&rp, 4);
        cairn_pack_kv_text(&rp, "path", path);
        cairn_pack_cstr(&rp, "size");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 3));
        cairn_pack_kv_text(&rp, "hash", (const char *)sqlite3_column_text(st, 1));
        cairn_pack_kv_text(&rp, "hash_alg", (const char *)sqlite3_column_text(st, 2));
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        msgpack_sbuffer_destroy(&rows);
        return reg_db_fail(r, "list a version's files", err);
    }
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, more ? 4 : 3);
    cairn_pack_kv_text(pk, "ref", t.name);
    cairn_pack_kv_text(pk, "content_hash", t.content_hash);
    cairn_pack_cstr(pk, "files");
    msgpack_pack_array(pk, (uint32_t)n);
    msgpack_sbuffer_write(&r->sb, rows.data, rows.size);
    msgpack_sbuffer_destroy(&rows);
    if (more) cairn_pack_kv_text(pk, "next_page_token", last);
    return reg_reply(r, req, CAIRN_ST_OK);
}

/* read_pinned's answer, relayed. */
static void s_read(void *arg, int st, const char *code, const char *msg,
                   const msgpack_object *body)
{
    reg_pending_t *p = arg;
    cairn_err_t err = {0};
    const msgpack_object *data = cairn_obj_get(body, "data");
    uint64_t off = 0, size = 0;
    if (st >= CAIRN_ST_BAD_REQUEST)
        cairn_err_set(&err, st, code, "cannot read %s: %s", p->file_path,
                      msg ? msg : "the artifact store refused it");
    else if (!data || data->type != MSGPACK_OBJECT_BIN ||
             cairn_field_uint(body, "offset", true, &off, &err) != 0 ||
             cairn_field_uint(body, "size", true, &size, &err) != 0)
        cairn_err_set(&err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                      "the artifact store's answer holds no data");
    if (err.st) {
        cairn_reply_err(p->req, &err);
    } else {
        registry_t *r = p->r;
        msgpack_packer *pk = reg_reply_begin(r);
        msgpack_pack_map(pk, 6);
        cairn_pack_kv_text(pk, "path", p->file_path);
        cairn_pack_cstr(pk, "offset");
        msgpack_pack_uint64(pk, off);
        cairn_pack_cstr(pk, "size");
        msgpack_pack_uint64(pk, size);
        cairn_pack_kv_text(pk, "hash", p->file_hash);
        cairn_pack_kv_text(pk, "hash_alg", p->file_alg);
        cairn_pack_cstr(pk, "data");
        msgpack_pack_bin(pk, data->via.bin.size);
        msgpack_pack_bin_body(pk, data->via.bin.ptr, data->via.bin.size);
        reg_reply(r, p->req, CAIRN_ST_OK);
    }
    reg_pending_free(p);
}

/* The file's row of the manifest: hash, alg, size. */
static int s_file(registry_t *r, const target_t *t, cairn_str_t path, reg_pending_t *p,
                  cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_FILE_GET];
    sqlite3_bind_text(st, 1, t->owner, -1, SQLITE_STATIC);
    reg_bind_str(st, 2, path);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(p->file_hash, sizeof p->file_hash, "%s",
                 (const char *)sqlite3_column_text(st, 0));
        snprintf(p->file_alg, sizeof p->file_alg, "%s",
                 (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return reg_db_fail(r, "find a version's file", err);
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "%s holds no file '%.*s'", t->name, (int)path.len, path.ptr);
}

int reg_read_file(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t path;
    uint64_t offset = 0, length = READ_MAX;
    target_t t;
    if (cairn_field_str(b, "path", true, PATH_MAX_BYTES, &path, err) != 0 ||
        cairn_field_uint(b, "offset", false, &offset, err) < 0 ||
        cairn_field_uint(b, "length", false, &length, err) < 0 ||
        s_target(r, req, &t, err) != 0)
        return -1;
    if (length > READ_MAX) length = READ_MAX;
    reg_pending_t *p = calloc(1, sizeof *p);
    if (!p) return cairn_err_oom(err, NULL);
    *p = (reg_pending_t){.r = r, .req = req, .next = r->pending};
    r->pending = p;
    if (s_file(r, &t, path, p, err) != 0) {
        reg_pending_free(p);
        return -1;
    }
    snprintf(p->file_path, sizeof p->file_path, "%.*s", (int)path.len, path.ptr);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    cairn_pack_kv_text(&pk, "owner", t.owner);
    cairn_pack_kv_text(&pk, "hash", p->file_hash);
    cairn_pack_kv_text(&pk, "hash_alg", p->file_alg);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, offset);
    cairn_pack_cstr(&pk, "length");
    msgpack_pack_uint64(&pk, length);
    uint64_t now = cairn_now_ms(), dl = cairn_deadline_ms(req);
    uint32_t ttl = dl > now + 1 ? (uint32_t)(dl - now) : 1;
    cairn_defer(req);
    int rc = cairn_call_ws(r->ctx, reg_ws(req), r->artifacts_svc, "read_pinned",
                           sb.data, sb.size, ttl, s_read, p, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) reg_pending_free(p);
    return rc;
}
