/* A model version's bytes, stored once: a source `runs:/RUN_ID/PATH` is
 * resolved at registration to the blobs the artifact store already holds,
 * and those blobs are pinned for the version (the artifacts service's
 * pin_artifacts, a nested call in the caller's workspace), so no byte is
 * copied and the run's files may go without taking the version's. The
 * version records content_hash: "sha256:" and the SHA-256 of its manifest,
 * one line per file in path order: path NUL alg ":" hash NUL size LF.
 *
 * Order of work, so that a crash leaves the version whole or absent: the
 * number is taken (committed) first, then the blobs are pinned for
 * "registry:<svc>:<ws>:<model id>:<version>", then the version row is
 * written. A crash between the two leaves pins without a version: space
 * kept, never a version without its bytes. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chash.h"
#include "registry.h"

#define RUNS_PREFIX "runs:/"

int reg_source_parse(cairn_str_t source, cairn_str_t *run_id, cairn_str_t *path,
                     cairn_err_t *err)
{
    size_t pre = sizeof RUNS_PREFIX - 1;
    if (source.len < pre || memcmp(source.ptr, RUNS_PREFIX, pre) != 0) return 1;
    const char *p = source.ptr + pre, *end = source.ptr + source.len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    *run_id = (cairn_str_t){p, (size_t)((slash ? slash : end) - p)};
    *path = slash ? (cairn_str_t){slash + 1, (size_t)(end - slash - 1)}
                  : (cairn_str_t){"", 0};
    if (!run_id->len || run_id->len > 64)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a source runs:/RUN_ID/PATH names a run id of 1 to 64 "
                             "bytes");
    return 0;
}

void reg_pin_owner(registry_t *r, const char *ws, int64_t model_id, int64_t version,
                   char *out, size_t cap)
{
    snprintf(out, cap, "registry:%s:%s:%lld:%lld", cairn_service(r->ctx), ws,
             (long long)model_id, (long long)version);
}

void reg_model_owner_prefix(registry_t *r, const char *ws, int64_t model_id, char *out,
                            size_t cap)
{
    snprintf(out, cap, "registry:%s:%s:%lld:", cairn_service(r->ctx), ws,
             (long long)model_id);
}

int reg_file_entry(const msgpack_object *f, cairn_str_t *path, cairn_str_t *alg,
                   cairn_str_t *hash, uint64_t *size, cairn_err_t *err)
{
    if (cairn_field_str(f, "path", true, 4096, path, err) != 0 ||
        cairn_field_str(f, "hash_alg", true, 16, alg, err) != 0 ||
        cairn_field_str(f, "hash", true, 128, hash, err) != 0 ||
        cairn_field_uint(f, "size", true, size, err) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the artifact store's list of the source is malformed");
    return 0;
}

/* content_hash of pin_artifacts' files. */
int reg_manifest_hash(const msgpack_object *files, char out[REG_HASH_MAX],
                      cairn_err_t *err)
{
    cairn_chash_t h;
    cairn_chash_init(&h, CAIRN_CHASH_SHA256);
    for (uint32_t i = 0; i < files->via.array.size; i++) {
        const msgpack_object *f = &files->via.array.ptr[i];
        cairn_str_t path, alg, hash;
        uint64_t size;
        if (reg_file_entry(f, &path, &alg, &hash, &size, err) != 0) return -1;
        char num[32];
        int n = snprintf(num, sizeof num, "%llu\n", (unsigned long long)size);
        cairn_chash_update(&h, path.ptr, path.len);
        cairn_chash_update(&h, "", 1);
        cairn_chash_update(&h, alg.ptr, alg.len);
        cairn_chash_update(&h, ":", 1);
        cairn_chash_update(&h, hash.ptr, hash.len);
        cairn_chash_update(&h, "", 1);
        cairn_chash_update(&h, num, (size_t)n);
    }
    memcpy(out, "sha256:", 7);
    cairn_chash_hex(&h, out + 7);
    return 0;
}

/* The pin's answer: write the version, reply. */
static void s_pinned(void *arg, int st, const char *code, const char *msg,
                     const msgpack_object *body)
{
    reg_pending_t *p = arg;
    cairn_err_t err = {0};
    char content_hash[REG_HASH_MAX];
    const msgpack_object *files = cairn_obj_get(body, "files");
    int rc;
    if (st >= CAIRN_ST_BAD_REQUEST)
        rc = cairn_err_set(&err, st, code, "cannot register %.*s: %s",
                           (int)p->source.len, p->source.ptr,
                           msg ? msg : "the artifact store refused it");
    else if (!files || files->type != MSGPACK_OBJECT_ARRAY)
        rc = cairn_err_set(&err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the artifact store's answer holds no file list");
    else
        rc = reg_manifest_hash(files, content_hash, &err);
    if (rc == 0) rc = reg_version_finish(p, content_hash, files, &err);
    if (rc != 0) {
        if (st < CAIRN_ST_BAD_REQUEST) reg_unpin(p->r, p->ws, p->model_id, p->version);
        cairn_reply_err(p->req, &err);
    }
    reg_pending_free(p);
}

uint32_t reg_ttl_left(cairn_req_t *req)
{
    uint64_t now = cairn_now_ms(), dl = cairn_deadline_ms(req);
    return dl > now + 1 ? (uint32_t)(dl - now) : 1;
}

int reg_pin_source(reg_pending_t *p, cairn_result_fn *done, cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cairn_pack_cstr(&pk, "run_id");
    cairn_pack_strn(&pk, p->run_id.ptr, p->run_id.len);
    cairn_pack_cstr(&pk, "path");
    cairn_pack_strn(&pk, p->path.ptr, p->path.len);
    cairn_pack_kv_text(&pk, "owner", p->owner);
    int rc = cairn_call_ws(p->r->ctx, p->ws, p->r->artifacts_svc, "pin_artifacts",
                           sb.data, sb.size, reg_ttl_left(p->req), done, p, err);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

int reg_source_pin(reg_pending_t *p, cairn_err_t *err)
{
    reg_pin_owner(p->r, p->ws, p->model_id, p->version, p->owner, sizeof p->owner);
    return reg_pin_source(p, s_pinned, err);
}

static void s_unpinned(void *arg, int st, const char *code, const char *msg,
                       const msgpack_object *body)
{
    (void)code, (void)body;
    registry_t *r = arg;
    if (st >= CAIRN_ST_BAD_REQUEST)
        cairn_log(r->ctx, CAIRN_LOG_WARN, "registry: unpin: %s", msg ? msg : "failed");
}

void reg_unpin(registry_t *r, const char *ws, int64_t model_id, int64_t version)
{
    char owner[REG_OWNER_MAX];
    reg_pin_owner(r, ws, model_id, version, owner, sizeof owner);
    reg_unpin_owner(r, ws, owner);
}

void reg_unpin_owner(registry_t *r, const char *ws, const char *owner)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_text(&pk, "owner", owner);
    cairn_err_t err = {0};
    if (cairn_call_ws(r->ctx, ws, r->artifacts_svc, "unpin_artifacts", sb.data, sb.size,
                      30000, s_unpinned, r, &err) != 0)
        cairn_log(r->ctx, CAIRN_LOG_WARN, "registry: unpin %s: %s", owner, err.msg);
    msgpack_sbuffer_destroy(&sb);
}

int reg_pinned(registry_t *r, int64_t model_id, int64_t version, int64_t *out,
               size_t cap, size_t *n, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_VERSIONS_PINNED];
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, version);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) /* counts them all, keeps cap */
        if ((*n)++ < cap) out[*n - 1] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : reg_db_fail(r, "list pinned versions", err);
}
