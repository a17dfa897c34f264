/* The storage plugin's `artifacts` role: MLflow's artifact store, chunked,
 * content-addressed, checksummed, in bounded memory.
 *
 * Service. The same storage .so run as role `artifacts`, e.g.
 *     artifacts:
 *       plugin: storage
 *       mode: inproc
 * It opens the same tracking.db as `tracking` (WAL: readers and the other
 * instance's writer do not block each other) to resolve a run_id to its
 * rid, and keeps the index in table `artifacts` (migration 2):
 * (rid, path) -> (hash, size, created).
 *
 * Bytes. Under artifact_root (default STATE/artifacts) blobs live at
 * sha256/<2 hex>/<62 hex>, named by the SHA-256 of their bytes (cas.c);
 * blobs stored before SHA-256 stay at cas/<2 hex>/<62 hex>, named by their
 * BLAKE2b-256, and are read and verified with it. The index row records
 * which (column alg, migration 6), and every reply that carries a `hash`
 * carries `hash_alg` ("sha256" or "blake2b") too. An upload streams into
 * tmp/<upload_id>, hashed as it is written; the final chunk fsyncs it and
 * renames it into sha256/ (or drops it when that
 * blob exists: the same bytes are stored once, across runs), and only then
 * is the index row written. A crash never leaves an index row without its
 * blob.
 *
 * Resuming: see uploads.c (put_artifact and abort_upload live there).
 * Multipart uploads (S3's, as MLflow's proxy sends them): see multipart.c.
 *
 * Writes and reads use io_uring where the kernel allows it: a chunk's
 * write is queued and the chunk is hashed while it is in flight. Where
 * io_uring_queue_init fails (seccomp, io_uring_disabled) pread/pwrite are
 * used; a log line at start says which.
 *
 * Deleted runs. Every chunk (first, middle, last; held in memory, resumed,
 * or a whole file in one request) checks that its run is active: 400 when
 * it is deleted (as log_metric), 404 when it is gone, and an upload in
 * progress is then dropped with its temp file and sidecar (s_upload_live);
 * the idle timer drops one whose run was deleted too. The index row is
 * written in a transaction that checks the run first (art_index_put), so a
 * delete_run in the tracking instance either precedes it (refused) or
 * waits for it.
 *
 * Memory. Nothing holds a whole file: a request carries at most 8 MiB
 * (ART_CHUNK_MAX), an upload is an open fd plus a hash state, a download
 * reads the requested range straight into the reply buffer. An upload's
 * dirty page cache is bounded too (cas.c starts the writeback of each
 * chunk and waits for the previous one's), so commit's fsync is short and
 * never stalls the loop (and its heartbeats) on gigabytes of dirty pages;
 * a large upload is written with O_DIRECT (cas.c, "direct writes") and
 * holds a staging buffer of about a chunk instead.
 *
 * Verbs (permission tracking.read / tracking.write):
 *   put_artifact {run_id*, path*, data* (bin <= 8 MiB), offset*, upload_id,
 *                 done}
 *       The first chunk (no upload_id, offset 0) opens an upload and
 *       answers {upload_id, offset: next expected}; later chunks name the
 *       upload_id and must arrive in order (offset == expected, else 409
 *       whose sentence says "expected offset N" and whose body is
 *       {expected_offset: N}); the chunk with done=true commits and
 *       answers {artifact: {path, size, hash, hash_alg}}. A whole small
 *       file is one request: offset 0, done true. After a restart the next
 *       chunk resumes the upload (above): its offset may then be any up to
 *       what the server has (the same 409 beyond). An unknown
 *       upload_id is 404; an upload idle longer than `upload_idle` seconds
 *       (600) is dropped with its tmp file. Putting an existing path
 *       replaces its index entry. A path may not be both a file and a
 *       directory (409). An unfinished upload takes a slot: at most
 *       uploads_max in all (sized from memory and the open-file limit,
 *       upslots.h) and uploads_per_principal per principal and workspace
 *       (s_slot_check); past either a new upload is 429 naming the limit.
 *       A whole file in one request takes none.
 *   abort_upload {run_id*, upload_id*} -> {upload_id, aborted: true}:
 *       drops an unfinished upload (in memory, or only on disk after a
 *       restart) with its temp file and sidecar, and frees its slot.
 *   get_artifact {run_id*, path*, offset (0), length (8 MiB, at most 8 MiB)}
 *       -> {offset, size (total), hash, hash_alg, done, data (bin)}. The
 *       hash (with its algorithm) is checked when a read reaches the end:
 *       a whole-file read hashes what it read; a sequential download
 *       (offset 0, then each next offset) is followed by one of
 *       ART_CURSORS running hash states; another read that ends the file
 *       rehashes the blob when it is at most 64 MiB. A mismatch (or a blob
 *       of the wrong size, or missing) is 500 `corrupt` naming the path.
 *   verify_artifact {run_id*, path*} -> {ok: true, hash, hash_alg}:
 *       rehashes the blob, streaming, 32 MiB per turn of the plugin's loop
 *       (the request is deferred), so a large blob blocks neither other
 *       requests nor heartbeats; 500 `corrupt` naming the path if it
 *       differs. About 1 s per GiB with SHA-256 (2 with BLAKE2b): give a
 *       large one a longer ttl.
 *   list_artifacts {run_id*, path (directory, default the root),
 *                   max_results (10000, at most 50000), page_token}
 *       -> {root_uri, files: [{path, is_dir, file_size}], next_page_token?}
 *       one level deep, as MLflow: directories are synthesized from the
 *       paths (file_size nil). Each entry is one index seek (a directory's
 *       files are skipped in one step), so listing a directory with few
 *       children is cheap however many files lie below them.
 *   delete_artifact {run_id*, path*} -> {deleted: n}: a file, or a whole
 *       directory. Index only: blobs stay (other rows may share them).
 *       Future work: a GC that removes blobs no row names (the index on
 *       artifacts(hash) is for it), with a grace period for uploads in
 *       flight.
 *
 * Paths are relative, '/'-separated, valid UTF-8, at most 1024 bytes, no
 * control characters, no '..' segment and no leading '/'; empty and '.'
 * segments are dropped ("a//./b" is stored as "a/b").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sodium.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cas.h"
#include "storage.h"
#include "upmeta.h"
#include "upslots.h"

#include "art.h"

/* Above every valid UTF-8 string: 0xF5 never occurs in UTF-8. */
static const char s_top[] = "\xf5";

/* ---- helpers ------------------------------------------------------------ */

void art_bind_str(sqlite3_stmt *st, int i, const char *p, size_t n)
{
    sqlite3_bind_text(st, i, p, (int)n, SQLITE_STATIC);
}

/* ---- blob garbage collection ---------------------------------------------- */

/* Blobs are shared (content addressing): one is removed when the last
 * artifact naming it goes, by delete_artifact or by an overwrite. The
 * instance is single-threaded and an upload commits its blob and its index
 * row in one handler, so no upload can slip in between the check and the
 * unlink. */
typedef struct blob_set {
    art_blob_t *blob;
    size_t n, cap;
} blob_set_t;

bool art_col_alg(sqlite3_stmt *st, int i, cairn_chash_alg_t *alg)
{
    return cairn_chash_parse((const char *)sqlite3_column_text(st, i),
                             (size_t)sqlite3_column_bytes(st, i), alg);
}

static int s_blobs_add(blob_set_t *b, cairn_chash_alg_t alg, const unsigned char *hex,
                       size_t len, cairn_err_t *err)
{
    if (!hex || len != CAS_HEX_LEN) return 0; /* not a blob name: nothing to free */
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        void *p = realloc(b->blob, cap * sizeof *b->blob);
        if (!p) return cairn_err_oom(err, NULL);
        b->blob = p;
        b->cap = cap;
    }
    art_blob_t *o = &b->blob[b->n++];
    o->alg = alg;
    memcpy(o->hex, hex, len);
    o->hex[len] = '\0';
    return 0;
}

/* The blob named by the row st is on (hash in column 0, alg in column
 * alg_col) into b; a row naming no blob adds nothing. */
static int s_blobs_add_row(blob_set_t *b, sqlite3_stmt *st, int alg_col,
                           cairn_err_t *err)
{
    cairn_chash_alg_t alg;
    if (!art_col_alg(st, alg_col, &alg)) return 0;
    return s_blobs_add(b, alg, sqlite3_column_text(st, 0),
                       (size_t)sqlite3_column_bytes(st, 0), err);
}

/* Remove each blob of the set that no artifact names any more. A failure
 * only leaves a blob behind (space, not data): logged, not answered. */
static void s_blobs_release(storage_t *s, blob_set_t *b, uint64_t *nfreed,
                            uint64_t *bytes)
{
    artifacts_t *a = s->art;
    for (size_t i = 0; i < b->n; i++) {
        const art_blob_t *o = &b->blob[i];
        const char *alg = cairn_chash_name(o->alg);
        sqlite3_stmt *st = db_stmt(a->db, ST_ART_REFERENCED);
        art_bind_str(st, 1, o->hex, CAS_HEX_LEN);
        art_bind_str(st, 2, alg, strlen(alg));
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) continue; /* still named (or unknown): keep it */
        cairn_err_t err = {0};
        uint64_t got = 0;
        if (cas_remove(a->cas, o->alg, o->hex, &got, &err) != 0) {
            cairn_log(s->ctx, CAIRN_LOG_WARN, "artifacts: %s", err.msg);
            continue;
        }
        if (got) (*nfreed)++;
        *bytes += got;
    }
    free(b->blob);
    memset(b, 0, sizeof *b);
}

/* Validate and normalize an artifact path (upmeta_path_norm: the rules)
 * into out (NUL-terminated, at most ART_PATH_MAX bytes). An absent or
 * empty path is allowed only when allow_root (it means the root, ""). */
int art_field_path(const msgpack_object *b, const char *field, bool allow_root,
                   char out[ART_PATH_MAX + 1], size_t *out_len, cairn_err_t *err)
{
    cairn_str_t p = {"", 0};
    int r = cairn_field_str(b, field, !allow_root, ART_PATH_MAX, &p, err);
    if (r < 0) return -1;
    size_t n = 0;
    switch (upmeta_path_norm(p.ptr, p.len, out, &n)) {
        case UPMETA_PATH_OK:
            break;
        case UPMETA_PATH_ABSOLUTE:
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "the field '%s' must be a relative path (no leading '/')", field);
        case UPMETA_PATH_CONTROL:
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "the field '%s' must not contain control characters",
                                 field);
        case UPMETA_PATH_UTF8:
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "the field '%s' must be valid UTF-8", field);
        case UPMETA_PATH_DOTDOT:
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "the field '%s' must not contain a '..' segment",
                                 field);
    }
    if (n == 0 && !allow_root)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field '%s' must name a file (it is empty)", field);
    *out_len = n;
    return 0;
}

/* Is run rid (whose id is run_id) still active? 400 bad_request when it
 * is deleted (as log_metric to a deleted run answers), 404 not_found when
 * it is gone; the sentence names the run and ends with then (e.g. "; upload
 * 'U' is dropped ..."). */
int art_run_live(artifacts_t *a, int64_t rid, const char *run_id, const char *then,
                 cairn_err_t *err)
{
    sqlite3_stmt *st = db_stmt(a->db, ST_ART_RUN_STAGE);
    sqlite3_bind_int64(st, 1, rid);
    int rc = sqlite3_step(st);
    const char *stage =
        rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    bool active = stage && strcmp(stage, "active") == 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "the tracking database failed to find a run: %s",
                             sqlite3_errmsg(sqlite3_db_handle(st)));
    if (rc == SQLITE_DONE)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no run has the id '%s'%s", run_id, then);
    if (!active)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "run '%s' is deleted: restore it before storing artifacts "
                             "in it%s",
                             run_id, then);
    return 0;
}

/* The index row of (rid, path): 404 naming the path when none. */
static int s_lookup(artifacts_t *a, const run_ref_t *run, const char *path,
                    art_blob_t *blob, uint64_t *size, cairn_err_t *err)
{
    sqlite3_stmt *st = db_stmt(a->db, ST_ART_GET);
    sqlite3_bind_int64(st, 1, run->rid);
    art_bind_str(st, 2, path, strlen(path));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return cairn_err_set(
                err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                "the tracking database failed to read the artifact index");
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "run '%.*s' has no artifact '%s'", (int)run->id.len,
                             run->id.ptr, path);
    }
    const char *h = (const char *)sqlite3_column_text(st, 0);
    size_t hl = (size_t)sqlite3_column_bytes(st, 0);
    *size = (uint64_t)sqlite3_column_int64(st, 1);
    bool ok = cas_hex_valid(h, hl) && art_col_alg(st, 2, &blob->alg);
    if (ok) memcpy(blob->hex, h, CAS_HEX_LEN + 1);
    sqlite3_reset(st);
    if (!ok)
        return cairn_err_set(
            err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
            "the artifact '%s' is corrupt: its index entry names no blob", path);
    return 0;
}

/* Is there any row in [lo, hi)? Copies the first path to first (cap). */
static int s_any(artifacts_t *a, int64_t rid, const char *lo, size_t lo_len,
                 const char *hi, size_t hi_len, char *first, size_t cap)
{
    sqlite3_stmt *st = db_stmt(a->db, ST_ART_NEXT);
    sqlite3_bind_int64(st, 1, rid);
    art_bind_str(st, 2, lo, lo_len);
    art_bind_str(st, 3, hi, hi_len);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && first)
        snprintf(first, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* A path may not be both a file and a directory: no ancestor of path may be
 * a file, and path may not have files below it. */
int art_check_shape(artifacts_t *a, int64_t rid, const char *path, cairn_err_t *err)
{
    size_t n = strlen(path);
    char lo[ART_PATH_MAX + 2], hi[ART_PATH_MAX + 2], first[ART_PATH_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        if (path[i] != '/') continue;
        sqlite3_stmt *st = db_stmt(a->db, ST_ART_GET);
        sqlite3_bind_int64(st, 1, rid);
        art_bind_str(st, 2, path, i);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_ROW)
            return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                                 "'%.*s' is a file, so '%s' cannot be stored below it",
                                 (int)i, path, path);
    }
    memcpy(lo, path, n);
    memcpy(hi, path, n);
    lo[n] = '/';
    hi[n] = '0'; /* '/' + 1 */
    int rc = s_any(a, rid, lo, n + 1, hi, n + 1, first, sizeof first);
    if (rc < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "the tracking database failed to read the artifact index");
    if (rc == 1)
        return cairn_err_set(
            err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
            "'%s' is a directory (it holds '%s'), so it cannot be a file", path, first);
    return 0;
}

/* Drop idle uploads and idle download cursors (the timer); sweep the
 * temp files no one resumed within upload_idle (an earlier life's). */
static void s_sweep(void *arg)
{
    storage_t *s = arg;
    artifacts_t *a = s->art;
    uint64_t now = cairn_now_ms();
    cairn_err_t err = {0};
    for (upload_t *u = a->uploads, *next; u; u = next) {
        next = u->next;
        if (u->resuming) continue;
        if (now - u->last_ms > a->idle_ms) {
            cairn_log(
                s->ctx, CAIRN_LOG_INFO,
                "artifacts: dropped upload %s of '%s' (idle for more than %llu s)",
                u->id, u->path, (unsigned long long)(a->idle_ms / 1000));
            art_upload_drop(a, u, false);
            continue;
        }
        /* Its run deleted: no chunk of it would be taken, so its slot and
         * its files go now rather than at the idle limit. */
        if (art_run_live(a, u->rid, u->run_id, "", &err) != 0 &&
            err.st != CAIRN_ST_INTERNAL) {
            cairn_log(s->ctx, CAIRN_LOG_INFO,
                      "artifacts: dropped upload %s of '%s': its run '%s' is %s", u->id,
                      u->path, u->run_id,
                      err.st == CAIRN_ST_NOT_FOUND ? "gone" : "deleted");
            art_upload_drop(a, u, false);
        }
    }
    for (int i = 0; i < ART_CURSORS; i++)
        if (a->cursors[i].used && now - a->cursors[i].last_ms > a->idle_ms)
            a->cursors[i].used = false;
    int n = cas_sweep_tmp(a->cas, a->idle_ms / 1000) +
            art_views_sweep(s, a->idle_ms / 1000);
    if (n)
        cairn_log(
            s->ctx, CAIRN_LOG_INFO,
            "artifacts: removed %d temp file(s) of uploads not resumed within %llu s",
            n, (unsigned long long)(a->idle_ms / 1000));
}

/* Write the index row of run rid (run_id), replacing any at that path, in
 * one transaction that first checks that the run is still active.
 *
 * The tracking instance (another thread, or another process) deletes a run
 * with one UPDATE, which needs the database's write lock. BEGIN IMMEDIATE
 * takes that lock before the check, so a delete_run has either committed
 * before it (the check sees the run deleted: 400, nothing is stored) or
 * waits until this row is committed (the artifact was stored before the
 * run was deleted, as any other of its artifacts). No row is ever written
 * under a run that was deleted when it was written. */
int art_index_put(storage_t *s, int64_t rid, const char *run_id, const char *path,
                  const art_blob_t *blob, uint64_t size, cairn_err_t *err)
{
    artifacts_t *a = s->art;
    char then[ART_PATH_MAX + 96];
    snprintf(then, sizeof then,
             "; nothing was stored: upload '%s' again once the run is restored", path);
    if (db_begin(s->db, err) != 0) return -1;
    if (art_run_live(a, rid, run_id, then, err) != 0 ||
        art_check_shape(a, rid, path, err) != 0) {
        db_rollback(s->db);
        return -1;
    }
    /* An overwrite may let the old content's blob go. */
    blob_set_t old = {0};
    sqlite3_stmt *st = db_stmt(a->db, ST_ART_GET);
    sqlite3_bind_int64(st, 1, rid);
    art_bind_str(st, 2, path, strlen(path));
    int rc = 0;
    cairn_chash_alg_t was;
    if (sqlite3_step(st) == SQLITE_ROW &&
        ((size_t)sqlite3_column_bytes(st, 0) != CAS_HEX_LEN ||
         memcmp(sqlite3_column_text(st, 0), blob->hex, CAS_HEX_LEN) != 0 ||
         !art_col_alg(st, 2, &was) || was != blob->alg))
        rc = s_blobs_add_row(&old, st, 2, err);
    sqlite3_reset(st);
    if (rc == 0) {
        const char *alg = cairn_chash_name(blob->alg);
        st = db_stmt(a->db, ST_ART_PUT);
        sqlite3_bind_int64(st, 1, rid);
        art_bind_str(st, 2, path, strlen(path));
        art_bind_str(st, 3, blob->hex, CAS_HEX_LEN);
        sqlite3_bind_int64(st, 4, (int64_t)size);
        sqlite3_bind_int64(st, 5, (int64_t)cairn_wall_ms());
        art_bind_str(st, 6, alg, strlen(alg));
        rc = db_exec_stmt(s->db, st, err);
    }
    if (rc == 0) rc = db_commit(s->db, err);
    if (rc != 0) {
        db_rollback(s->db);
        free(old.blob);
        return -1;
    }
    uint64_t nfreed = 0, bytes = 0;
    s_blobs_release(s, &old, &nfreed, &bytes);
    return 0;
}

/* A blob just committed whose index row could not be written: remove it
 * unless some artifact names it (the same bytes stored before). */
uint64_t art_blob_unref(storage_t *s, const art_blob_t *blob)
{
    cairn_err_t err = {0};
    blob_set_t b = {0};
    uint64_t nfreed = 0, bytes = 0;
    if (s_blobs_add(&b, blob->alg, (const unsigned char *)blob->hex, CAS_HEX_LEN,
                    &err) == 0)
        s_blobs_release(s, &b, &nfreed, &bytes);
    return nfreed;
}

/* ---- downloads ------------------------------------------------------------ */

static int s_corrupt(cairn_err_t *err, const char *path, const char *hash,
                     const char *why)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                         "the artifact '%s' is corrupt: its blob %s %s", path, hash,
                         why);
}

static cursor_t *s_cursor_find(artifacts_t *a, const art_blob_t *blob, uint64_t off)
{
    for (int i = 0; i < ART_CURSORS; i++) {
        cursor_t *c = &a->cursors[i];
        if (c->used && c->next == off && c->st.alg == blob->alg &&
            strcmp(c->hash, blob->hex) == 0)
            return c;
    }
    return NULL;
}

static cursor_t *s_cursor_new(artifacts_t *a, const art_blob_t *blob)
{
    cursor_t *best = &a->cursors[0];
    for (int i = 0; i < ART_CURSORS; i++) {
        cursor_t *c = &a->cursors[i];
        if (!c->used) {
            best = c;
            break;
        }
        if (c->last_ms < best->last_ms) best = c;
    }
    best->used = true;
    best->next = 0;
    memcpy(best->hash, blob->hex, sizeof best->hash);
    cairn_chash_init(&best->st, blob->alg);
    return best;
}

/* Check the bytes just read (buf, n at off of a blob of size bytes):
 * 0 when verified or not yet checkable, -1 with a corrupt error. */
static int s_check_read(artifacts_t *a, const char *path, const art_blob_t *blob,
                        uint64_t size, uint64_t off, const unsigned char *buf, size_t n,
                        cairn_err_t *err)
{
    const char *hash = blob->hex;
    bool end = off + n == size;
    if (off == 0 && end) { /* a whole-file read */
        char got[CAS_HEX_LEN + 1];
        cas_hash_buf(blob->alg, buf, n, got);
        return strcmp(got, hash) == 0
                   ? 0
                   : s_corrupt(err, path, hash, "does not match its hash");
    }
    cursor_t *c = off == 0 ? s_cursor_new(a, blob) : s_cursor_find(a, blob, off);
    if (c) {
        cairn_chash_update(&c->st, buf, n);
        c->next = off + n;
        c->last_ms = cairn_now_ms();
        if (!end) return 0;
        char got[CAS_HEX_LEN + 1];
        cairn_chash_hex(&c->st, got);
        c->used = false;
        return strcmp(got, hash) == 0
                   ? 0
                   : s_corrupt(err, path, hash, "does not match its hash");
    }
    if (!end || size > ART_REHASH_MAX) return 0;
    bool ok = false;
    if (cas_verify(a->cas, blob->alg, hash, &ok, NULL, err) != 0) return -1;
    return ok ? 0 : s_corrupt(err, path, hash, "does not match its hash");
}

int art_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    const msgpack_object *b = cairn_body(req);
    char path[ART_PATH_MAX + 1];
    art_blob_t blob;
    const char *hash = blob.hex;
    size_t plen;
    uint64_t offset = 0, length = ART_CHUNK_MAX, size = 0, disk = 0;
    run_ref_t run;
    if (storage_req_run(a->db, req, NULL, &run, NULL, err) != 0 ||
        art_field_path(b, "path", false, path, &plen, err) != 0 ||
        cairn_field_uint(b, "offset", false, &offset, err) < 0 ||
        cairn_field_uint(b, "length", false, &length, err) < 0)
        return -1;
    if (length > ART_CHUNK_MAX) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'length' is at most %u (8 MiB); ask for the rest in "
                      "further reads",
                      ART_CHUNK_MAX);
        return -1;
    }
    if (s_lookup(a, &run, path, &blob, &size, err) != 0) return -1;
    if (offset > size) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'offset' (%llu) is past the end of '%s' (%llu bytes)",
                      (unsigned long long)offset, path, (unsigned long long)size);
        return -1;
    }
    int fd = -1;
    if (cas_open_blob(a->cas, blob.alg, hash, &fd, &disk, err) != 0) {
        if (err->st == CAIRN_ST_NOT_FOUND) s_corrupt(err, path, hash, "is missing");
        return -1;
    }
    if (disk != size) {
        close(fd);
        char why[96];
        snprintf(why, sizeof why, "holds %llu bytes, not %llu",
                 (unsigned long long)disk, (unsigned long long)size);
        s_corrupt(err, path, hash, why);
        return -1;
    }
    size_t n = (size_t)(size - offset < length ? size - offset : length);
    bool done = offset + n == size;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 6);
    cairn_pack_cstr(pk, "offset");
    msgpack_pack_uint64(pk, offset);
    cairn_pack_cstr(pk, "size");
    msgpack_pack_uint64(pk, size);
    cairn_pack_kv_str(pk, "hash", hash);
    cairn_pack_kv_str(pk, "hash_alg", cairn_chash_name(blob.alg));
    cairn_pack_cstr(pk, "done");
    if (done)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    cairn_pack_cstr(pk, "data");
    int rc = art_pack_range(s, &blob, path, fd, size, offset, n, err);
    close(fd);
    if (rc != 0) return -1;
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

int art_pack_range(storage_t *s, const art_blob_t *blob, const char *what, int fd,
                   uint64_t size, uint64_t off, size_t n, cairn_err_t *err)
{
    msgpack_pack_bin(&s->pk, n);
    /* Read straight into the reply buffer, after the bin header. */
    msgpack_sbuffer *sb = &s->sb;
    if (sb->alloc - sb->size < n) {
        char *p = realloc(sb->data, sb->size + n);
        if (!p)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                                 "out of memory for a %zu-byte read", n);
        sb->data = p;
        sb->alloc = sb->size + n;
    }
    unsigned char *dst = (unsigned char *)sb->data + sb->size;
    size_t got = 0;
    if (cas_pread(s->art->cas, fd, dst, n, off, &got, err) != 0) return -1;
    if (got != n)
        return s_corrupt(err, what, blob->hex, "is shorter than its index entry says");
    if (s_check_read(s->art, what, blob, size, off, dst, n, err) != 0) return -1;
    sb->size += n;
    return 0;
}

/* verify_artifact rehashes in slices of ART_VERIFY_SLICE bytes, one per
 * turn of the plugin's loop (a timer), so that verifying a large blob
 * neither blocks other requests nor the heartbeats for long. */
static void s_verify_free(artifacts_t *a, verify_job_t *j)
{
    for (verify_job_t **p = &a->verifies; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            a->nverifies--;
            break;
        }
    if (j->fd >= 0) close(j->fd);
    free(j->buf);
    free(j);
}

static void s_verify_step(void *arg)
{
    verify_job_t *j = arg;
    storage_t *s = j->s;
    artifacts_t *a = s->art;
    cairn_err_t err = {0};
    uint64_t end = j->off + ART_VERIFY_SLICE;
    while (j->off < end) {
        size_t got = 0;
        if (cas_pread(a->cas, j->fd, j->buf, ART_VERIFY_BUF, j->off, &got, &err) != 0) {
            cairn_reply_err(j->req, &err); /* deferred */
            s_verify_free(a, j);
            return;
        }
        if (got == 0) break;
        cairn_chash_update(&j->st, j->buf, got);
        j->off += got;
    }
    if (j->off < end) { /* the end of the blob */
        char got[CAS_HEX_LEN + 1];
        cairn_chash_hex(&j->st, got);
        if (strcmp(got, j->hash) != 0 || j->off != j->size) {
            char why[160];
            snprintf(why, sizeof why, "hashes to %s (%llu bytes)", got,
                     (unsigned long long)j->off);
            s_corrupt(&err, j->path, j->hash, why);
            cairn_reply_err(j->req, &err); /* deferred */
        } else {
            msgpack_packer *pk = storage_reply_begin(s);
            msgpack_pack_map(pk, 3);
            cairn_pack_cstr(pk, "ok");
            msgpack_pack_true(pk);
            cairn_pack_kv_str(pk, "hash", j->hash);
            cairn_pack_kv_str(pk, "hash_alg", cairn_chash_name(j->st.alg));
            storage_reply_send(s, j->req, CAIRN_ST_OK);
        }
        s_verify_free(a, j);
        return;
    }
    if (!cairn_timer_add(s->ctx, 0, 0, s_verify_step, j)) {
        cairn_err_set(&err, CAIRN_ST_INTERNAL, NULL,
                      "cannot schedule the rest of the verification");
        cairn_reply_err(j->req, &err); /* deferred */
        s_verify_free(a, j);
    }
}

int art_verify(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    const msgpack_object *b = cairn_body(req);
    char path[ART_PATH_MAX + 1];
    art_blob_t blob;
    const char *hash = blob.hex;
    size_t plen;
    uint64_t size = 0, disk = 0;
    run_ref_t run;
    int fd = -1;
    if (storage_req_run(a->db, req, NULL, &run, NULL, err) != 0 ||
        art_field_path(b, "path", false, path, &plen, err) != 0 ||
        s_lookup(a, &run, path, &blob, &size, err) != 0)
        return -1;
    if (a->nverifies >= ART_VERIFIES_MAX) {
        cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                      "at most %d verifications may run at once; try again shortly",
                      ART_VERIFIES_MAX);
        return -1;
    }
    if (cas_open_blob(a->cas, blob.alg, hash, &fd, &disk, err) != 0) {
        if (err->st == CAIRN_ST_NOT_FOUND) s_corrupt(err, path, hash, "is missing");
        return -1;
    }
    verify_job_t *j = aligned_alloc(alignof(verify_job_t), sizeof(verify_job_t));
    unsigned char *buf = malloc(ART_VERIFY_BUF);
    if (!j || !buf) {
        free(j);
        free(buf);
        close(fd);
        cairn_err_oom(err, NULL);
        return -1;
    }
    memset(j, 0, sizeof *j);
    j->s = s;
    j->req = req;
    j->fd = fd;
    j->buf = buf;
    j->size = size;
    memcpy(j->hash, hash, sizeof j->hash);
    memcpy(j->path, path, plen + 1);
    cairn_chash_init(&j->st, blob.alg);
    j->next = a->verifies;
    a->verifies = j;
    a->nverifies++;
    cairn_defer(req);
    s_verify_step(j);
    return 0;
}

/* ---- listing and deleting ------------------------------------------------- */

int art_list(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    const msgpack_object *b = cairn_body(req);
    char dir[ART_PATH_MAX + 1], lo[ART_PATH_MAX + 2], hi[ART_PATH_MAX + 2];
    size_t dlen = 0, lo_len, hi_len;
    uint64_t max = ART_LIST_DEFAULT;
    cairn_str_t token = {NULL, 0};
    char *uri = NULL;
    run_ref_t run;
    int has_token = 1;
    if (storage_req_run(a->db, req, NULL, &run, &uri, err) != 0 ||
        art_field_path(b, "path", true, dir, &dlen, err) != 0 ||
        cairn_field_uint(b, "max_results", false, &max, err) < 0 ||
        (has_token =
             cairn_field_str(b, "page_token", false, 2 * sizeof lo, &token, err)) < 0) {
        free(uri);
        return -1;
    }
    if (max < 1 || max > ART_LIST_MAX) {
        free(uri);
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'max_results' must be from 1 to %d", ART_LIST_MAX);
        return -1;
    }
    /* Children of dir are the paths in [dir/, dir0); of the root, all. */
    size_t pre = dlen ? dlen + 1 : 0;
    memcpy(lo, dir, dlen);
    memcpy(hi, dir, dlen);
    if (dlen) {
        lo[dlen] = '/';
        hi[dlen] = '0';
        hi_len = dlen + 1;
    } else {
        memcpy(hi, s_top, sizeof s_top - 1);
        hi_len = sizeof s_top - 1;
    }
    lo_len = pre;
    if (has_token == 0) {
        size_t n = 0;
        if (sodium_hex2bin((unsigned char *)lo, sizeof lo, token.ptr, token.len, NULL,
                           &n, NULL) != 0 ||
            n < pre || memcmp(lo, dir, dlen) != 0 || (dlen && lo[dlen] != '/')) {
            free(uri);
            cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                          "the field 'page_token' does not belong to this listing");
            return -1;
        }
        lo_len = n;
    }
    msgpack_sbuffer files;
    msgpack_packer fp;
    msgpack_sbuffer_init(&files);
    msgpack_packer_init(&fp, &files, msgpack_sbuffer_write);
    size_t count = 0;
    bool more = false;
    sqlite3_stmt *st = db_stmt(a->db, ST_ART_NEXT);
    for (;;) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, run.rid);
        art_bind_str(st, 2, lo, lo_len);
        art_bind_str(st, 3, hi, hi_len);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) {
            sqlite3_reset(st);
            msgpack_sbuffer_destroy(&files);
            free(uri);
            db_fail(s->db, "list artifacts", err);
            return -1;
        }
        if (count == max) {
            more = true;
            break;
        }
        const char *p = (const char *)sqlite3_column_text(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        const char *slash = n > pre ? memchr(p + pre, '/', n - pre) : NULL;
        if (slash) { /* a directory: emit it, then skip past everything in it */
            size_t k = (size_t)(slash - p);
            msgpack_pack_map(&fp, 3);
            cairn_pack_cstr(&fp, "path");
            cairn_pack_strn(&fp, p, k);
            cairn_pack_cstr(&fp, "is_dir");
            msgpack_pack_true(&fp);
            cairn_pack_cstr(&fp, "file_size");
            msgpack_pack_nil(&fp);
            memcpy(lo, p, k);
            lo[k] = '0';
            lo_len = k + 1;
        } else {
            msgpack_pack_map(&fp, 3);
            cairn_pack_cstr(&fp, "path");
            cairn_pack_strn(&fp, p, n);
            cairn_pack_cstr(&fp, "is_dir");
            msgpack_pack_false(&fp);
            cairn_pack_cstr(&fp, "file_size");
            msgpack_pack_int64(&fp, sqlite3_column_int64(st, 1));
            /* the least string above p: paths hold no control characters */
            memcpy(lo, p, n);
            lo[n] = '\x01';
            lo_len = n + 1;
        }
        count++;
    }
    sqlite3_reset(st);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, more ? 3 : 2);
    cairn_pack_kv_str(pk, "root_uri", uri);
    cairn_pack_cstr(pk, "files");
    msgpack_pack_array(pk, count);
    msgpack_sbuffer_write(&s->sb, files.data, files.size);
    msgpack_sbuffer_destroy(&files);
    free(uri);
    if (more) {
        char tok[2 * sizeof lo + 1];
        sodium_bin2hex(tok, sizeof tok, (const unsigned char *)lo, lo_len);
        cairn_pack_kv_str(pk, "next_page_token", tok);
    }
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

int art_delete(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    const msgpack_object *b = cairn_body(req);
    char path[ART_PATH_MAX + 1], lo[ART_PATH_MAX + 2], hi[ART_PATH_MAX + 2];
    size_t plen;
    run_ref_t run;
    if (storage_req_run(a->db, req, "storing artifacts in it", &run, NULL, err) != 0 ||
        art_field_path(b, "path", false, path, &plen, err) != 0)
        return -1;
    int64_t deleted = 0;
    blob_set_t blobs = {0};
    memcpy(lo, path, plen);
    memcpy(hi, path, plen);
    lo[plen] = '/';
    hi[plen] = '0';
    if (db_begin(s->db, err) != 0) return -1;
    sqlite3_stmt *st = db_stmt(a->db, ST_ART_HASHES);
    sqlite3_bind_int64(st, 1, run.rid);
    art_bind_str(st, 2, path, plen);
    art_bind_str(st, 3, lo, plen + 1);
    art_bind_str(st, 4, hi, plen + 1);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        rc = s_blobs_add_row(&blobs, st, 1, err);
    sqlite3_reset(st);
    if (rc == 0) {
        st = db_stmt(a->db, ST_ART_DEL);
        sqlite3_bind_int64(st, 1, run.rid);
        art_bind_str(st, 2, path, plen);
        rc = db_exec_stmt(s->db, st, err);
    }
    if (rc == 0) {
        deleted += sqlite3_changes(db_handle(s->db));
        st = db_stmt(a->db, ST_ART_DEL_TREE);
        sqlite3_bind_int64(st, 1, run.rid);
        art_bind_str(st, 2, lo, plen + 1);
        art_bind_str(st, 3, hi, plen + 1);
        rc = db_exec_stmt(s->db, st, err);
        if (rc == 0) deleted += sqlite3_changes(db_handle(s->db));
    }
    if (rc == 0 && deleted == 0) {
        db_rollback(s->db);
        free(blobs.blob);
        cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                      "run '%.*s' has no artifact '%s'", (int)run.id.len, run.id.ptr,
                      path);
        return -1;
    }
    if (rc == 0) rc = db_commit(s->db, err);
    if (rc != 0) {
        db_rollback(s->db);
        free(blobs.blob);
        return -1;
    }
    uint64_t nfreed = 0, bytes = 0;
    s_blobs_release(s, &blobs, &nfreed, &bytes);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 3);
    cairn_pack_cstr(pk, "deleted");
    msgpack_pack_int64(pk, deleted);
    cairn_pack_cstr(pk, "blobs_freed");
    msgpack_pack_uint64(pk, nfreed);
    cairn_pack_cstr(pk, "bytes_freed");
    msgpack_pack_uint64(pk, bytes);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

/* ---- recovery ---------------------------------------------------------------- */

/* A sidecar alone whose upload was committed (it names the hash) and whose
 * blob is in place: the process died between moving the blob and writing
 * its index row. Write the row now; the client's retry of the last chunk
 * then finds the artifact. Anything else is left to the sweep. The sidecar
 * is read from disk, so it is held to what a request is: upmeta_parse
 * takes only a normalized path (the rules of art_field_path), and its rid
 * must be the run its run_id names. */
static void s_recover_committed(void *arg, const char *name)
{
    storage_t *s = arg;
    artifacts_t *a = s->art;
    char buf[CAS_META_MAX];
    size_t len = 0;
    upmeta_t m;
    cairn_err_t err = {0};
    int fd = -1;
    uint64_t size = 0;
    if (cas_meta_read(a->cas, name, buf, sizeof buf, &len, NULL, &err) != 0) return;
    if (!upmeta_parse(buf, len, &m)) {
        cairn_log(s->ctx, CAIRN_LOG_WARN,
                  "artifacts: the sidecar of upload %s is unreadable; it is not "
                  "indexed",
                  name);
        return;
    }
    art_blob_t blob = {.alg = m.alg};
    memcpy(blob.hex, m.hash, sizeof blob.hex);
    if (!m.committed || cas_open_blob(a->cas, m.alg, m.hash, &fd, &size, &err) != 0)
        return;
    close(fd);
    if (size != m.size) return;
    run_ref_t run;
    cairn_err_t why = {0};
    if (storage_find_run(a->db, NULL, (cairn_str_t){m.run_id, strlen(m.run_id)}, &run,
                         NULL, &why) != 0 ||
        run.rid != m.rid) {
        cairn_log(s->ctx, CAIRN_LOG_WARN,
                  "artifacts: upload %s of '%s' was stored before a crash but is not "
                  "indexed: its run '%s' (rid %lld) is not in the database",
                  name, m.path, m.run_id, (long long)m.rid);
        return;
    }
    if (art_index_put(s, m.rid, m.run_id, m.path, &blob, m.size, &err) != 0) {
        cairn_log(s->ctx, CAIRN_LOG_WARN,
                  "artifacts: upload %s of '%s' was stored before a crash but cannot "
                  "be indexed: %s",
                  name, m.path, err.msg);
        /* A run deleted meanwhile takes no artifact: the upload goes (its
         * sidecar, and its blob unless another artifact names it). Other
         * failures leave the sidecar to the sweep. */
        if (err.st == CAIRN_ST_BAD_REQUEST || err.st == CAIRN_ST_NOT_FOUND) {
            cas_tmp_remove(a->cas, name);
            art_blob_unref(s, &blob);
        }
        return;
    }
    cairn_log(s->ctx, CAIRN_LOG_INFO,
              "artifacts: indexed upload %s of '%s' (%llu bytes), stored just before "
              "a crash",
              name, m.path, (unsigned long long)m.size);
    cas_tmp_remove(a->cas, name);
}

/* ---- life cycle --------------------------------------------------------------- */

int artifacts_init(storage_t *s, cairn_err_t *err)
{
    const storage_settings_t *set = s->set; /* checked by the runtime */
    long long max = set->uploads_max, per = set->uploads_per_principal;
    artifacts_t *a = calloc(1, sizeof *a);
    if (!a) return cairn_err_oom(err, NULL);
    s->art = a;
    a->idle_ms = (uint64_t)set->upload_idle * 1000;
    /* Upload slots: sized from memory and the open-file limit unless set. */
    upslots_t sz;
    upslots_size(ART_UPLOAD_BYTES, &sz);
    a->uploads_max = max > 0 ? (size_t)max : sz.max;
    a->per_principal = per > 0 ? (size_t)per : a->uploads_max / 4;
    if (a->per_principal < 1) a->per_principal = 1;
    char how[256];
    if (max > 0)
        snprintf(how, sizeof how, "uploads_max, as set");
    else
        snprintf(how, sizeof how,
                 "uploads_max; sized from %llu MiB of memory (%s) at %u MiB an upload, "
                 "and an open-file limit of %llu",
                 (unsigned long long)(sz.mem >> 20), sz.mem_from,
                 ART_UPLOAD_BYTES >> 20, (unsigned long long)sz.nofile);
    cairn_log(
        s->ctx, CAIRN_LOG_INFO,
        "artifacts: at most %zu unfinished uploads at once (%s), %zu per principal "
        "and workspace (uploads_per_principal%s)",
        a->uploads_max, how, a->per_principal, per > 0 ? ", as set" : "");
    a->power = set->durability == STORAGE_DURABILITY_POWER;
    a->cursors = aligned_alloc(alignof(cursor_t), ART_CURSORS * sizeof(cursor_t));
    if (!a->cursors) return cairn_err_oom(err, NULL);
    memset(a->cursors, 0, ART_CURSORS * sizeof(cursor_t));
    a->cas = cas_open(s->artifact_root, set->io_uring, err);
    if (!a->cas) return -1;
    a->db = s->db;
    /* An upload whose temp file and sidecar were written to less than
     * upload_idle ago may be resumed (s_resume); older ones, and temp
     * files without a sidecar, are leftovers. Files a writer holds (another
     * instance's) stay. */
    cas_meta_alone(a->cas, s_recover_committed, s); /* before the sweep takes them */
    int swept = cas_sweep_tmp(a->cas, (uint64_t)set->upload_idle) +
                art_views_sweep(s, (uint64_t)set->upload_idle);
    const char *why = cas_io_reason(a->cas);
    cairn_log(s->ctx, CAIRN_LOG_INFO,
              "artifacts: blobs under %s/sha256 (and %s/cas, before SHA-256); file I/O "
              "through %s%s%s%s; %d stale temp "
              "file%s removed",
              s->artifact_root, s->artifact_root, cas_io_mode(a->cas), *why ? " (" : "",
              why, *why ? ")" : "", swept, swept == 1 ? "" : "s");
    uint64_t every = a->idle_ms / 4;
    if (every < 100) every = 100;
    if (every > 30000) every = 30000;
    a->timer = cairn_timer_add(s->ctx, (uint32_t)every, (uint32_t)every, s_sweep, s);
    if (!a->timer)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "cannot add the upload sweep timer");
    return art_mpu_init(s, err);
}

void artifacts_fini(storage_t *s)
{
    artifacts_t *a = s->art;
    if (!a) return;
    if (a->timer) cairn_timer_cancel(s->ctx, a->timer);
    art_mpu_fini(s);
    /* Uploads in progress stay on disk, to be resumed after the restart;
     * the runtime answers a resume's deferred request. */
    while (a->uploads) art_upload_drop(a, a->uploads, true);
    /* Deferred verifications: the runtime answers their requests. */
    while (a->verifies) s_verify_free(a, a->verifies);
    art_sniffs_drop(s);
    cas_destroy(&a->cas);
    free(a->cursors);
    free(a);
    s->art = NULL;
}
