/* The storage plugin's `artifacts` role: pins. A pin keeps a blob for an
 * owner outside the artifact index, so that the registry can register a
 * run's files as a model version without copying a byte, and the version's
 * bytes outlive the run's files (migration 8; a blob goes when neither an
 * index row nor a pin names it: artifacts.c, ST_ART_REFERENCED).
 *
 *   pin_artifacts {run_id*, path* (a file, or a directory: "" is the
 *                  run's root), owner*}
 *       -> {files: [{path, size, hash, hash_alg}], total_size}: every file at
 *       or under path, in path order, paths relative to it (a file's own
 *       name when path is a file). Pins each blob for owner, in one
 *       transaction. 404 when path names no file.
 *   unpin_artifacts {owner*} -> {unpinned, freed}: drops owner's pins and
 *       its view (materialize_pinned, pinview.c), and frees the blobs
 *       nothing names any more.
 *
 * Owners are opaque strings of at most 256 bytes ("registry:<svc>:<id>:<n>"),
 * kept per workspace (the request's). Both verbs need tracking.admin: the
 * registry calls them as its service, in the caller's workspace. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cas.h"
#include "storage.h"
#include "upmeta.h"
#include "upslots.h"

#include "art.h"

#define PIN_FILES_MAX 100000 /* files in one pin */

/* The range [path/, path0) of a directory's files ("" the whole run). */
static void s_tree_range(const char *dir, size_t dlen, char *lo, size_t *lo_len,
                         char *hi, size_t *hi_len)
{
    memcpy(lo, dir, dlen);
    memcpy(hi, dir, dlen);
    if (dlen) {
        lo[dlen] = '/';
        hi[dlen] = '0';
        *lo_len = *hi_len = dlen + 1;
    } else {
        *lo_len = 0;
        hi[0] = '\xf5'; /* above every valid UTF-8 string */
        *hi_len = 1;
    }
}

/* One file of the tree: pin its blob, pack its entry. */
static int s_pin_row(storage_t *s, sqlite3_stmt *st, size_t strip, cairn_str_t owner,
                     msgpack_packer *fp, uint64_t *total, cairn_err_t *err)
{
    const char *path = (const char *)sqlite3_column_text(st, 0);
    size_t plen = (size_t)sqlite3_column_bytes(st, 0);
    cairn_chash_alg_t alg;
    if (!art_col_alg(st, 3, &alg))
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "the artifact '%s' names no known hash algorithm", path);
    const char *alg_name = cairn_chash_name(alg);
    sqlite3_stmt *put = db_stmt(s->art->db, ST_PIN_PUT);
    sqlite3_reset(put);
    sqlite3_bind_text(put, 1, (const char *)sqlite3_column_text(st, 2),
                      sqlite3_column_bytes(st, 2), SQLITE_STATIC);
    sqlite3_bind_text(put, 2, alg_name, -1, SQLITE_STATIC);
    art_bind_str(put, 3, owner.ptr, owner.len);
    int rc = sqlite3_step(put);
    sqlite3_reset(put);
    if (rc != SQLITE_DONE) return db_fail(s->art->db, "pin an artifact's blob", err);
    uint64_t size = (uint64_t)sqlite3_column_int64(st, 1);
    *total += size;
    const char *rel = plen > strip ? path + strip : path; /* a file: its name */
    if (plen <= strip) {
        const char *slash = strrchr(path, '/');
        rel = slash ? slash + 1 : path;
    }
    msgpack_pack_map(fp, 4);
    cairn_pack_kv_text(fp, "path", rel);
    cairn_pack_cstr(fp, "size");
    msgpack_pack_uint64(fp, size);
    cairn_pack_kv_text(fp, "hash", (const char *)sqlite3_column_text(st, 2));
    cairn_pack_kv_str(fp, "hash_alg", alg_name);
    return 0;
}

/* Pin every file at or under dir; pack them into fp. */
static int s_pin_tree(storage_t *s, int64_t rid, const char *dir, size_t dlen,
                      cairn_str_t owner, msgpack_packer *fp, uint32_t *count,
                      uint64_t *total, cairn_err_t *err)
{
    char lo[ART_PATH_MAX + 2], hi[ART_PATH_MAX + 2];
    size_t lo_len, hi_len;
    s_tree_range(dir, dlen, lo, &lo_len, hi, &hi_len);
    sqlite3_stmt *st = db_stmt(s->art->db, ST_ART_TREE);
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, rid);
    art_bind_str(st, 2, dir, dlen);
    art_bind_str(st, 3, lo, lo_len);
    art_bind_str(st, 4, hi, hi_len);
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*count == PIN_FILES_MAX) {
            rc = cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                               "at most %d files are pinned at once", PIN_FILES_MAX);
            break;
        }
        rc = s_pin_row(s, st, dlen ? dlen + 1 : 0, owner, fp, total, err);
        (*count)++;
    }
    if (rc == 0 && step != SQLITE_DONE) rc = db_fail(s->art->db, "list artifacts", err);
    sqlite3_reset(st);
    return rc;
}

/* The body's owner, stored in the request's workspace ("<ws>/<owner>"), so
 * that no workspace can drop another's pins. */
int art_pin_owner(cairn_req_t *req, char key[PIN_KEY_MAX + 1], cairn_str_t *out,
                  cairn_str_t *raw, cairn_err_t *err)
{
    cairn_str_t owner;
    if (cairn_field_str(cairn_body(req), "owner", true, PIN_OWNER_MAX, &owner, err) !=
        0)
        return -1;
    if (!owner.len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'owner' must not be empty");
    const char *ws = cairn_workspace(req);
    int n = snprintf(key, PIN_KEY_MAX + 1, "%s/%.*s", ws && *ws ? ws : "default",
                     (int)owner.len, owner.ptr);
    *out = (cairn_str_t){key, n > 0 ? (size_t)n : 0};
    if (raw) *raw = owner;
    return 0;
}

int art_pin(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    const msgpack_object *b = cairn_body(req);
    char dir[ART_PATH_MAX + 1];
    size_t dlen = 0;
    char key[PIN_KEY_MAX + 1];
    cairn_str_t owner;
    run_ref_t run;
    if (storage_req_run(a->db, req, NULL, &run, NULL, err) != 0 ||
        art_field_path(b, "path", true, dir, &dlen, err) != 0 ||
        art_pin_owner(req, key, &owner, NULL, err) != 0)
        return -1;
    cairn_name_object(req, "run", run.id.ptr, run.id.len);
    msgpack_sbuffer files;
    msgpack_sbuffer_init(&files);
    msgpack_packer fp;
    msgpack_packer_init(&fp, &files, msgpack_sbuffer_write);
    uint32_t count = 0;
    uint64_t total = 0;
    int rc = db_begin(a->db, err);
    if (rc == 0)
        rc = s_pin_tree(s, run.rid, dir, dlen, owner, &fp, &count, &total, err);
    if (rc == 0 && count == 0)
        rc = cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                           "run %.*s has no artifact at '%s'", (int)run.id.len,
                           run.id.ptr, dlen ? dir : "(the root)");
    if (rc == 0) rc = db_commit(a->db, err);
    if (rc != 0) {
        db_rollback(a->db);
        msgpack_sbuffer_destroy(&files);
        return -1;
    }
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "files");
    msgpack_pack_array(pk, count);
    msgpack_sbuffer_write(pk->data, files.data, files.size);
    cairn_pack_cstr(pk, "total_size");
    msgpack_pack_uint64(pk, total);
    msgpack_sbuffer_destroy(&files);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

int art_unpin(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    char key[PIN_KEY_MAX + 1];
    cairn_str_t owner, raw;
    if (art_pin_owner(req, key, &owner, &raw, err) != 0) return -1;
    art_blob_t *blobs = NULL;
    size_t n = 0, cap = 0;
    int rc = db_begin(a->db, err), step = SQLITE_DONE;
    sqlite3_stmt *st = db_stmt(a->db, ST_PIN_DROP);
    sqlite3_reset(st);
    art_bind_str(st, 1, owner.ptr, owner.len);
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        cairn_chash_alg_t alg;
        if (!art_col_alg(st, 1, &alg) || sqlite3_column_bytes(st, 0) != CAS_HEX_LEN)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            art_blob_t *v = realloc(blobs, ncap * sizeof *v);
            if (!v) {
                rc = cairn_err_oom(err, NULL);
                break;
            }
            blobs = v;
            cap = ncap;
        }
        blobs[n].alg = alg;
        memcpy(blobs[n].hex, sqlite3_column_text(st, 0), CAS_HEX_LEN);
        blobs[n++].hex[CAS_HEX_LEN] = '\0';
    }
    if (rc == 0 && step != SQLITE_DONE) rc = db_fail(a->db, "drop pins", err);
    sqlite3_reset(st);
    if (rc == 0) rc = db_commit(a->db, err);
    if (rc != 0) {
        db_rollback(a->db);
        free(blobs);
        return -1;
    }
    art_view_drop(s, cairn_workspace(req), raw); /* before its blobs go */
    uint64_t freed = 0;
    for (size_t i = 0; i < n; i++) freed += art_blob_unref(s, &blobs[i]);
    free(blobs);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "unpinned");
    msgpack_pack_uint64(pk, n);
    cairn_pack_cstr(pk, "freed");
    msgpack_pack_uint64(pk, freed);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}
