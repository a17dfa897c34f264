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
 * cas/<2 hex>/<62 hex>, named by the BLAKE2b-256 of their bytes (cas.c).
 * An upload streams into tmp/<upload_id>, hashed as it is written; the
 * final chunk fsyncs it and renames it into cas/ (or drops it when that
 * blob exists: the same bytes are stored once, across runs), and only then
 * is the index row written. A crash never leaves an index row without its
 * blob.
 *
 * Resuming. No crash loses an acknowledged chunk: the first chunk also
 * writes a sidecar, tmp/<upload_id>.meta (rid, run_id, path, created; see
 * upmeta.h), and the in-memory table of uploads is only a cache of
 * what tmp/ holds. A chunk naming an upload_id this instance does not hold
 * (cairnd or the plugin process restarted since; a stop keeps uploads on
 * disk too) finds its sidecar, checks run_id and path against it (409),
 * reopens the temp file, cuts it to the chunk's offset (which must not be
 * past its end: 409 "expected offset <size>"; bytes after it may be a
 * write that was never acknowledged), rehashes what is left 32 MiB per
 * turn of the loop (the request deferred; other chunks of that upload get
 * 503 meanwhile), then applies the chunk. With durability=power a chunk is
 * fdatasync'ed before its 200 (and the sidecar and tmp/ fsync'ed at the
 * first), so that a power loss keeps it too; with process the page cache
 * is enough (it survives kill -9). Temp files and sidecars not resumed
 * within upload_idle of their last write go (the start's sweep and the
 * idle timer), and so do temp files without a sidecar and sidecars without
 * a temp file; a file a writer holds (flock) stays.
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
 * written in a transaction that checks the run first (s_index_put), so a
 * delete_run in the tracking instance either precedes it (refused) or
 * waits for it.
 *
 * Memory. Nothing holds a whole file: a request carries at most 8 MiB
 * (ART_CHUNK_MAX), an upload is an open fd plus a hash state, a download
 * reads the requested range straight into the reply buffer. An upload's
 * dirty page cache is bounded too (cas.c starts the writeback of each
 * chunk and waits for the previous one's), so commit's fsync is short and
 * never stalls the loop (and its heartbeats) on gigabytes of dirty pages.
 *
 * Verbs (permission tracking.read / tracking.write):
 *   put_artifact {run_id*, path*, data* (bin <= 8 MiB), offset*, upload_id,
 *                 done}
 *       The first chunk (no upload_id, offset 0) opens an upload and
 *       answers {upload_id, offset: next expected}; later chunks name the
 *       upload_id and must arrive in order (offset == expected, else 409
 *       whose sentence says "expected offset N" and whose body is
 *       {expected_offset: N}); the chunk with done=true
 *       commits and answers {artifact: {path, size, hash}}. A whole small
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
 *       -> {offset, size (total), hash, done, data (bin)}. The BLAKE2b is
 *       checked when a read reaches the end: a whole-file read hashes what
 *       it read; a sequential download (offset 0, then each next offset)
 *       is followed by one of ART_CURSORS running hash states; another read
 *       that ends the file rehashes the blob when it is at most 64 MiB.
 *       A mismatch (or a blob of the wrong size, or missing) is
 *       500 `corrupt` naming the path.
 *   verify_artifact {run_id*, path*} -> {ok: true, hash}: rehashes the
 *       blob, streaming, 32 MiB per turn of the plugin's loop (the request
 *       is deferred), so a large blob blocks neither other requests nor
 *       heartbeats; 500 `corrupt` naming the path if it differs. About
 *       2 s per GiB: give a large one a longer ttl.
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

#define ART_CHUNK_MAX (8u << 20)
#define ART_PATH_MAX 1024
/* What an unfinished upload may hold in memory (upslots.h): one chunk of
 * dirty page cache, and while it is resumed a 1 MiB rehash buffer (cas.c);
 * its hash state, path and record are small beside them. */
#define ART_UPLOAD_BYTES (ART_CHUNK_MAX + (1u << 20))
#define ART_CURSORS 32
#define ART_REHASH_MAX (64u << 20)
#define ART_LIST_DEFAULT 10000
#define ART_LIST_MAX 50000
#define ART_RUN_ID_MAX 64
#define ART_VERIFIES_MAX 16
#define ART_VERIFY_BUF (1u << 20)
#define ART_VERIFY_SLICE (32u << 20) /* hashed per turn of the loop */

/* A sidecar (upmeta.h) holds any run_id and path a request may carry. */
_Static_assert(ART_PATH_MAX == UPMETA_PATH_MAX, "ART_PATH_MAX");
_Static_assert(ART_RUN_ID_MAX == UPMETA_RUN_ID_MAX, "ART_RUN_ID_MAX");

typedef enum art_stmt_id {
    AST_RUN,
    AST_RUN_STAGE,
    AST_PUT,
    AST_GET,
    AST_NEXT,
    AST_DEL,
    AST_DEL_TREE,
    AST_HASHES,
    AST_REFERENCED,
    AST_COUNT
} art_stmt_id_t;

static const char *const s_sql[AST_COUNT] = {
    [AST_RUN] =
        "SELECT rid, artifact_uri, lifecycle_stage FROM runs WHERE run_uuid = ?",
    [AST_RUN_STAGE] = "SELECT lifecycle_stage FROM runs WHERE rid = ?",
    [AST_PUT] =
        "INSERT INTO artifacts (rid, path, hash, size, created) VALUES (?, ?, ?, ?, "
        "?) ON CONFLICT (rid, path) DO UPDATE SET hash = excluded.hash, size = "
        "excluded.size, created = excluded.created",
    [AST_GET] = "SELECT hash, size FROM artifacts WHERE rid = ? AND path = ?",
    /* The first path in [lo, hi): one seek in the primary key. */
    [AST_NEXT] =
        "SELECT path, size FROM artifacts WHERE rid = ?1 AND path >= ?2 AND path "
        "< ?3 ORDER BY path LIMIT 1",
    [AST_DEL] = "DELETE FROM artifacts WHERE rid = ? AND path = ?",
    [AST_DEL_TREE] = "DELETE FROM artifacts WHERE rid = ? AND path >= ? AND path < ?",
    /* The blobs a delete of path (a file, or a directory [lo, hi)) lets go. */
    [AST_HASHES] =
        "SELECT DISTINCT hash FROM artifacts WHERE rid = ?1 AND (path = ?2 "
        "OR (path >= ?3 AND path < ?4))",
    [AST_REFERENCED] = "SELECT 1 FROM artifacts WHERE hash = ? LIMIT 1",
};

/* Above every valid UTF-8 string: 0xF5 never occurs in UTF-8. */
static const char s_top[] = "\xf5";

typedef struct upload {
    char id[33];
    char run_id[ART_RUN_ID_MAX + 1];
    int64_t rid;
    char *path;
    /* Whose slot it takes (uploads_per_principal): the principal and the
     * workspace of the request that opened (or resumed) it. */
    char *principal, *ws;
    cas_writer_t *w;
    uint64_t last_ms;
    struct storage *s;
    /* Being resumed (s_resume): the rehash runs, then this chunk. */
    bool resuming, deferred, done;
    cairn_req_t *req;
    const void *data; /* in req's body: valid until its reply */
    size_t dlen;
    uint64_t timer;
    struct upload *next;
} upload_t;

/* A running hash of a sequential download. */
typedef struct cursor {
    crypto_generichash_state st;
    char hash[CAS_HEX_LEN + 1];
    uint64_t next; /* the offset the next read must start at */
    uint64_t last_ms;
    bool used;
} cursor_t;

/* A verification in progress (verify_artifact). */
typedef struct verify_job {
    crypto_generichash_state st;
    storage_t *s;
    cairn_req_t *req; /* deferred */
    int fd;
    uint64_t off, size;
    unsigned char *buf;
    char hash[CAS_HEX_LEN + 1];
    char path[ART_PATH_MAX + 1];
    struct verify_job *next;
} verify_job_t;

struct artifacts {
    cas_t *cas;
    verify_job_t *verifies;
    size_t nverifies;
    sqlite3_stmt *st[AST_COUNT];
    upload_t *uploads;
    size_t nuploads;
    size_t uploads_max;   /* unfinished uploads held at once, in all */
    size_t per_principal; /* ... per principal and workspace */
    cursor_t *cursors;    /* ART_CURSORS of them, 64-byte aligned */
    uint64_t idle_ms;
    uint64_t timer;
    bool power; /* durability=power: a chunk is fdatasync'ed before its 200 */
};

/* ---- helpers ------------------------------------------------------------ */

static sqlite3_stmt *s_stmt(artifacts_t *a, art_stmt_id_t id)
{
    sqlite3_stmt *st = a->st[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static void s_bind_str(sqlite3_stmt *st, int i, const char *p, size_t n)
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
    char (*hex)[CAS_HEX_LEN + 1];
    size_t n, cap;
} blob_set_t;

static int s_blobs_add(blob_set_t *b, const unsigned char *hex, size_t len,
                       cairn_err_t *err)
{
    if (!hex || len != CAS_HEX_LEN) return 0; /* not a blob name: nothing to free */
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        void *p = realloc(b->hex, cap * sizeof *b->hex);
        if (!p) return cairn_err_oom(err, NULL);
        b->hex = p;
        b->cap = cap;
    }
    memcpy(b->hex[b->n], hex, len);
    b->hex[b->n++][len] = '\0';
    return 0;
}

/* Remove each blob of the set that no artifact names any more. A failure
 * only leaves a blob behind (space, not data): logged, not answered. */
static void s_blobs_release(storage_t *s, blob_set_t *b, uint64_t *nfreed,
                            uint64_t *bytes)
{
    artifacts_t *a = s->art;
    for (size_t i = 0; i < b->n; i++) {
        sqlite3_stmt *st = s_stmt(a, AST_REFERENCED);
        s_bind_str(st, 1, b->hex[i], CAS_HEX_LEN);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) continue; /* still named (or unknown): keep it */
        cairn_err_t err = {0};
        uint64_t got = 0;
        if (cas_remove(a->cas, b->hex[i], &got, &err) != 0) {
            cairn_log(s->ctx, CAIRN_LOG_WARN, "artifacts: %s", err.msg);
            continue;
        }
        if (got) (*nfreed)++;
        *bytes += got;
    }
    free(b->hex);
    memset(b, 0, sizeof *b);
}

/* Validate and normalize an artifact path (upmeta_path_norm: the rules)
 * into out (NUL-terminated, at most ART_PATH_MAX bytes). An absent or
 * empty path is allowed only when allow_root (it means the root, ""). */
static int s_field_path(const msgpack_object *b, const char *field, bool allow_root,
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

typedef struct art_run {
    int64_t rid;
    bool active;
    cairn_str_t id;
} art_run_t;

/* run_id* from the body, resolved; uri (may be NULL) gets a heap copy of
 * its artifact_uri. */
static int s_find_run(artifacts_t *a, const msgpack_object *b, bool need_active,
                      art_run_t *run, char **uri, cairn_err_t *err)
{
    if (cairn_field_str(b, "run_id", true, ART_RUN_ID_MAX, &run->id, err) != 0)
        return -1;
    if (run->id.len == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'run_id' must not be empty");
    sqlite3_stmt *st = s_stmt(a, AST_RUN);
    s_bind_str(st, 1, run->id.ptr, run->id.len);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                                 "the tracking database failed "
                                 "to find a run: %s",
                                 sqlite3_errmsg(sqlite3_db_handle(st)));
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no run has the id '%.*s'", (int)run->id.len, run->id.ptr);
    }
    run->rid = sqlite3_column_int64(st, 0);
    const char *stage = (const char *)sqlite3_column_text(st, 2);
    run->active = stage && strcmp(stage, "active") == 0;
    if (uri) {
        const char *u = (const char *)sqlite3_column_text(st, 1);
        *uri = strdup(u ? u : "");
    }
    sqlite3_reset(st);
    if (uri && !*uri) return cairn_err_oom(err, NULL);
    if (need_active && !run->active)
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "run '%.*s' is deleted: restore it before storing artifacts in it",
            (int)run->id.len, run->id.ptr);
    return 0;
}

/* Is run rid (whose id is run_id) still active? 400 bad_request when it
 * is deleted (as log_metric to a deleted run answers), 404 not_found when
 * it is gone; the sentence names the run and ends with then (e.g. "; upload
 * 'U' is dropped ..."). */
static int s_run_live(artifacts_t *a, int64_t rid, const char *run_id, const char *then,
                      cairn_err_t *err)
{
    sqlite3_stmt *st = s_stmt(a, AST_RUN_STAGE);
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
static int s_lookup(artifacts_t *a, const art_run_t *run, const char *path,
                    char hash[CAS_HEX_LEN + 1], uint64_t *size, cairn_err_t *err)
{
    sqlite3_stmt *st = s_stmt(a, AST_GET);
    sqlite3_bind_int64(st, 1, run->rid);
    s_bind_str(st, 2, path, strlen(path));
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
    bool ok = cas_hex_valid(h, hl);
    if (ok) memcpy(hash, h, CAS_HEX_LEN + 1);
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
    sqlite3_stmt *st = s_stmt(a, AST_NEXT);
    sqlite3_bind_int64(st, 1, rid);
    s_bind_str(st, 2, lo, lo_len);
    s_bind_str(st, 3, hi, hi_len);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && first)
        snprintf(first, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* A path may not be both a file and a directory: no ancestor of path may be
 * a file, and path may not have files below it. */
static int s_check_shape(artifacts_t *a, int64_t rid, const char *path,
                         cairn_err_t *err)
{
    size_t n = strlen(path);
    char lo[ART_PATH_MAX + 2], hi[ART_PATH_MAX + 2], first[ART_PATH_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        if (path[i] != '/') continue;
        sqlite3_stmt *st = s_stmt(a, AST_GET);
        sqlite3_bind_int64(st, 1, rid);
        s_bind_str(st, 2, path, i);
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

/* ---- uploads -------------------------------------------------------------- */

/* Remove u from the table. With keep, its temp file and sidecar stay on
 * disk (it may be resumed: a stop, a failed write); else they go. */
static void s_upload_drop(artifacts_t *a, upload_t *u, bool keep)
{
    for (upload_t **p = &a->uploads; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            a->nuploads--;
            break;
        }
    if (u->timer) cairn_timer_cancel(u->s->ctx, u->timer);
    if (keep)
        cas_writer_release(&u->w);
    else
        cas_writer_abort(&u->w);
    free(u->path);
    free(u->principal);
    free(u->ws);
    free(u);
}

/* Before a chunk of upload u is applied: is its run still active? When it
 * is deleted (400) or gone (404) the upload is dropped with its temp file
 * and sidecar, so that nothing of it lingers; a restore does not bring it
 * back (the file is uploaded again). */
static int s_upload_live(artifacts_t *a, upload_t *u, cairn_err_t *err)
{
    char then[96];
    snprintf(then, sizeof then, "; upload '%s' is dropped with the bytes it held",
             u->id);
    if (s_run_live(a, u->rid, u->run_id, then, err) == 0) return 0;
    if (err->st != CAIRN_ST_INTERNAL) s_upload_drop(a, u, false);
    return -1;
}

static upload_t *s_upload_find(artifacts_t *a, cairn_str_t id)
{
    for (upload_t *u = a->uploads; u; u = u->next)
        if (strlen(u->id) == id.len && memcmp(u->id, id.ptr, id.len) == 0) return u;
    return NULL;
}

/* May req open (or resume) one more upload? Each takes a slot until it is
 * finished, aborted, failed or dropped (idle, or its run deleted): at most
 * uploads_max in all, and uploads_per_principal per principal and
 * workspace, so that one client cannot take them all. The plugin does not
 * see the client's connection; until auth lands every client is principal
 * 'local', so the workspace (the ws header) is what tells them apart. 429
 * naming the limit, its value and how to free a slot. */
static int s_slot_check(artifacts_t *a, cairn_req_t *req, cairn_err_t *err)
{
    const char *who = cairn_principal(req), *ws = cairn_workspace(req);
    unsigned long long idle_s = (unsigned long long)(a->idle_ms / 1000);
    if (a->nuploads >= a->uploads_max)
        return cairn_err_set(
            err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
            "the artifacts service holds %zu unfinished uploads, its limit "
            "(uploads_max: %zu): finish one (its last chunk with done: true) or "
            "abort one (abort_upload), or try again later: an upload idle for "
            "%llu s (upload_idle: %llu s) is dropped",
            a->nuploads, a->uploads_max, idle_s, idle_s);
    size_t mine = 0;
    for (upload_t *u = a->uploads; u; u = u->next)
        if (strcmp(u->principal, who) == 0 && strcmp(u->ws, ws) == 0) mine++;
    if (mine >= a->per_principal)
        return cairn_err_set(
            err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
            "principal '%.100s' in workspace '%.64s' has %zu unfinished uploads, its "
            "limit (uploads_per_principal: %zu): finish one (its last chunk with "
            "done: true) or abort one (abort_upload), or wait: an upload idle for "
            "%llu s (upload_idle: %llu s) is dropped",
            who, ws, mine, a->per_principal, idle_s, idle_s);
    return 0;
}

static upload_t *s_upload_add(storage_t *s, cairn_req_t *req, const char *id,
                              cairn_str_t run_id, int64_t rid, const char *path,
                              cas_writer_t *w)
{
    artifacts_t *a = s->art;
    upload_t *u = calloc(1, sizeof *u);
    if (!u || !(u->path = strdup(path)) ||
        !(u->principal = strdup(cairn_principal(req))) ||
        !(u->ws = strdup(cairn_workspace(req)))) {
        if (u) {
            free(u->path);
            free(u->principal);
        }
        free(u);
        return NULL;
    }
    snprintf(u->id, sizeof u->id, "%s", id);
    snprintf(u->run_id, sizeof u->run_id, "%.*s", (int)run_id.len, run_id.ptr);
    u->s = s;
    u->rid = rid;
    u->w = w;
    u->last_ms = cairn_now_ms();
    u->next = a->uploads;
    a->uploads = u;
    a->nuploads++;
    return u;
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
            s_upload_drop(a, u, false);
            continue;
        }
        /* Its run deleted: no chunk of it would be taken, so its slot and
         * its files go now rather than at the idle limit. */
        if (s_run_live(a, u->rid, u->run_id, "", &err) != 0 &&
            err.st != CAIRN_ST_INTERNAL) {
            cairn_log(s->ctx, CAIRN_LOG_INFO,
                      "artifacts: dropped upload %s of '%s': its run '%s' is %s", u->id,
                      u->path, u->run_id,
                      err.st == CAIRN_ST_NOT_FOUND ? "gone" : "deleted");
            s_upload_drop(a, u, false);
        }
    }
    for (int i = 0; i < ART_CURSORS; i++)
        if (a->cursors[i].used && now - a->cursors[i].last_ms > a->idle_ms)
            a->cursors[i].used = false;
    int n = cas_sweep_tmp(a->cas, a->idle_ms / 1000);
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
static int s_index_put(storage_t *s, int64_t rid, const char *run_id, const char *path,
                       const char *hash, uint64_t size, cairn_err_t *err)
{
    artifacts_t *a = s->art;
    char then[ART_PATH_MAX + 96];
    snprintf(then, sizeof then,
             "; nothing was stored: upload '%s' again once the run is restored", path);
    if (db_begin(s->db, err) != 0) return -1;
    if (s_run_live(a, rid, run_id, then, err) != 0 ||
        s_check_shape(a, rid, path, err) != 0) {
        db_rollback(s->db);
        return -1;
    }
    /* An overwrite may let the old content's blob go. */
    blob_set_t old = {0};
    sqlite3_stmt *st = s_stmt(a, AST_GET);
    sqlite3_bind_int64(st, 1, rid);
    s_bind_str(st, 2, path, strlen(path));
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW &&
        ((size_t)sqlite3_column_bytes(st, 0) != CAS_HEX_LEN ||
         memcmp(sqlite3_column_text(st, 0), hash, CAS_HEX_LEN) != 0))
        rc = s_blobs_add(&old, sqlite3_column_text(st, 0),
                         (size_t)sqlite3_column_bytes(st, 0), err);
    sqlite3_reset(st);
    if (rc == 0) {
        st = s_stmt(a, AST_PUT);
        sqlite3_bind_int64(st, 1, rid);
        s_bind_str(st, 2, path, strlen(path));
        s_bind_str(st, 3, hash, CAS_HEX_LEN);
        sqlite3_bind_int64(st, 4, (int64_t)size);
        sqlite3_bind_int64(st, 5, (int64_t)cairn_wall_ms());
        rc = db_exec_stmt(s->db, st, err);
    }
    if (rc == 0) rc = db_commit(s->db, err);
    if (rc != 0) {
        db_rollback(s->db);
        free(old.hex);
        return -1;
    }
    uint64_t nfreed = 0, bytes = 0;
    s_blobs_release(s, &old, &nfreed, &bytes);
    return 0;
}

/* A blob just committed whose index row could not be written: remove it
 * unless some artifact names it (the same bytes stored before). */
static void s_blob_unref(storage_t *s, const char *hash)
{
    cairn_err_t err = {0};
    blob_set_t b = {0};
    uint64_t nfreed = 0, bytes = 0;
    if (s_blobs_add(&b, (const unsigned char *)hash, CAS_HEX_LEN, &err) == 0)
        s_blobs_release(s, &b, &nfreed, &bytes);
}

/* Commit a writer, index it, drop the upload's sidecar (upload_id; NULL
 * for a one-request upload, which has none) and reply. A blob that could
 * not be indexed (its run was deleted meanwhile, say) goes again unless
 * another artifact names it. */
static int s_commit(storage_t *s, cairn_req_t *req, cas_writer_t **w, int64_t rid,
                    const char *run_id, const char *path, const char *upload_id,
                    cairn_err_t *err)
{
    char hash[CAS_HEX_LEN + 1];
    uint64_t size = 0;
    int rc = cas_writer_commit(w, hash, &size, NULL, err);
    if (rc == 0 && (rc = s_index_put(s, rid, run_id, path, hash, size, err)) != 0)
        s_blob_unref(s, hash);
    /* Indexed (or failed, and answered so): done with the sidecar, before
     * the reply, so that a client never sees it linger. */
    if (upload_id) cas_tmp_remove(s->art->cas, upload_id);
    if (rc != 0) return -1;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "artifact");
    msgpack_pack_map(pk, 3);
    cairn_pack_kv_str(pk, "path", path);
    cairn_pack_cstr(pk, "size");
    msgpack_pack_uint64(pk, size);
    cairn_pack_kv_str(pk, "hash", hash);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

static int s_reply_progress(storage_t *s, cairn_req_t *req, const upload_t *u)
{
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "upload_id", u->id);
    cairn_pack_cstr(pk, "offset");
    msgpack_pack_uint64(pk, cas_writer_size(u->w));
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

/* A 409 that tells the client where to go on from: the sentence ends
 * "expected offset N" (for people, and for clients older than the body)
 * and the body is {expected_offset: N} (what the SDKs read). */
static int s_reply_expected(storage_t *s, cairn_req_t *req, const cairn_err_t *err,
                            uint64_t expected)
{
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "expected_offset");
    msgpack_pack_uint64(pk, expected);
    cairn_reply_error_sbuf(req, err->st, err->code, err->msg, &s->sb);
    return 0;
}

/* The sidecar (upmeta.h) of an upload of run_id (rid) to path, created
 * now; not committed. */
static void s_meta_init(upmeta_t *m, int64_t rid, cairn_str_t run_id, const char *path)
{
    memset(m, 0, sizeof *m);
    m->rid = rid;
    m->created = cairn_wall_ms();
    snprintf(m->run_id, sizeof m->run_id, "%.*s", (int)run_id.len, run_id.ptr);
    snprintf(m->path, sizeof m->path, "%s", path);
}

/* Append a chunk to an upload in the table and reply: its progress, or
 * (done) the artifact. A failed write keeps what was acknowledged before
 * it on disk: the client may resume from there. */
static int s_apply(storage_t *s, cairn_req_t *req, upload_t *u, const void *data,
                   size_t len, bool done, cairn_err_t *err)
{
    artifacts_t *a = s->art;
    u->last_ms = cairn_now_ms();
    if (cas_writer_write(u->w, data, len, err) != 0 ||
        (!done && a->power && cas_writer_sync(u->w, err) != 0)) {
        s_upload_drop(a, u, true);
        return -1;
    }
    if (!done) return s_reply_progress(s, req, u);
    /* Record the hash in the sidecar before the blob moves: a crash between
     * the move and the index row is then recovered at the next start. */
    char id[sizeof u->id], meta[CAS_META_MAX];
    snprintf(id, sizeof id, "%s", u->id);
    upmeta_t m;
    s_meta_init(&m, u->rid, (cairn_str_t){u->run_id, strlen(u->run_id)}, u->path);
    m.committed = true;
    m.size = cas_writer_size(u->w);
    int n = cas_writer_digest(u->w, m.hash, err) == 0
                ? upmeta_format(meta, sizeof meta, &m)
                : -1;
    if (n < 0 || cas_writer_set_meta(u->w, meta, (size_t)n, a->power, err) != 0) {
        if (!err->st)
            cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                          "the upload's record is too long");
        s_upload_drop(a, u, true);
        return -1;
    }
    cas_writer_keep_meta(u->w);
    cas_writer_t *w = u->w;
    u->w = NULL;
    int64_t rid = u->rid;
    char run_id[sizeof u->run_id];
    memcpy(run_id, u->run_id, sizeof run_id);
    char *upath = u->path;
    u->path = NULL;
    s_upload_drop(a, u, false);
    int rc = s_commit(s, req, &w, rid, run_id, upath, id, err);
    free(upath);
    return rc;
}

/* A resumed upload's rehash, ART_VERIFY_SLICE bytes per turn of the loop
 * (a timer, the request deferred), so that a large one blocks neither
 * other requests nor heartbeats; then the chunk that resumed it. */
static void s_resume_step(void *arg);

static int s_resume_turn(upload_t *u, cairn_err_t *err)
{
    storage_t *s = u->s;
    artifacts_t *a = s->art;
    uint64_t left = 0;
    u->timer = 0;
    u->last_ms = cairn_now_ms();
    if (cas_writer_rehash(u->w, ART_VERIFY_SLICE, &left, err) != 0) {
        s_upload_drop(a, u, true);
        return -1;
    }
    if (left) {
        if (!u->deferred) {
            cairn_defer(u->req);
            u->deferred = true;
        }
        u->timer = cairn_timer_add(s->ctx, 0, 0, s_resume_step, u);
        if (!u->timer) {
            s_upload_drop(a, u, true);
            cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                          "cannot schedule the rest of the resume");
            return -1;
        }
        return 0;
    }
    cairn_req_t *req = u->req;
    bool late = u->deferred && cairn_now_ms() > cairn_deadline_ms(req);
    u->resuming = u->deferred = false;
    u->req = NULL;
    /* The run may have been deleted while the bytes were rehashed. */
    if (s_upload_live(a, u, err) != 0) return -1;
    if (late) { /* its sender has had its timeout: it sends the chunk again */
        cairn_err_set(
            err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
            "upload '%s' is resumed, but the chunk's deadline passed: send it "
            "again at offset %llu",
            u->id, (unsigned long long)cas_writer_size(u->w));
        return -1;
    }
    return s_apply(s, req, u, u->data, u->dlen, u->done, err);
}

static void s_resume_step(void *arg)
{
    upload_t *u = arg;
    cairn_req_t *req = u->req; /* u may be gone when the turn fails */
    cairn_err_t err = {0};
    if (s_resume_turn(u, &err) != 0) cairn_reply_err(req, &err); /* deferred */
}

static bool s_upload_id_valid(cairn_str_t id)
{
    if (id.len != 32) return false;
    for (size_t i = 0; i < id.len; i++)
        if (!((id.ptr[i] >= '0' && id.ptr[i] <= '9') ||
              (id.ptr[i] >= 'a' && id.ptr[i] <= 'f')))
            return false;
    return true;
}

/* A chunk naming an upload this instance does not hold: resume it from
 * its sidecar and temp file (a restart of cairnd or of the plugin came in
 * between), else 404. */
static int s_resume(storage_t *s, cairn_req_t *req, cairn_str_t run_id,
                    const char *path, cairn_str_t upload_id, uint64_t offset,
                    const msgpack_object *data, bool done, cairn_err_t *err)
{
    artifacts_t *a = s->art;
    char id[33], buf[CAS_META_MAX];
    size_t len = 0;
    int64_t mtime = 0;
    upmeta_t m;
    uint64_t idle_s = a->idle_ms / 1000;
    snprintf(id, sizeof id, "%.*s", (int)upload_id.len, upload_id.ptr);
    int rc = s_upload_id_valid(upload_id)
                 ? cas_meta_read(a->cas, id, buf, sizeof buf, &len, &mtime, err)
                 : cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                 "not an upload id");
    if (rc == 0 && mtime == 0) { /* a sidecar without its temp file */
        cas_tmp_remove(a->cas, id);
        rc = cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                           "its temp file is gone");
    }
    if (rc == 0 && (int64_t)cairn_wall_ms() - mtime > (int64_t)a->idle_ms) {
        cas_tmp_remove(a->cas, id);
        rc = cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND, "idle");
    }
    if (rc != 0 && err->st == CAIRN_ST_NOT_FOUND) {
        cairn_err_set(
            err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
            "no upload has the id '%.*s': it finished, failed, was aborted, or was "
            "idle for more than %llu s",
            (int)upload_id.len, upload_id.ptr, (unsigned long long)idle_s);
        return -1;
    }
    if (rc != 0) return -1;
    if (!upmeta_parse(buf, len, &m)) {
        cairn_log(s->ctx, CAIRN_LOG_WARN,
                  "artifacts: the sidecar of upload %s is unreadable; it cannot be "
                  "resumed",
                  id);
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                      "upload '%s' cannot be resumed: its record on the server is "
                      "unreadable; start the upload again",
                      id);
        return -1;
    }
    if (!cairn_str_eq(run_id, m.run_id) || strcmp(path, m.path) != 0) {
        /* As for an upload held in memory: the request names another file. */
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "upload '%s' is for run '%s' path '%s', not run '%.*s' path '%s'",
                      id, m.run_id, m.path, (int)run_id.len, run_id.ptr, path);
        return -1;
    }
    /* Its run deleted or gone: the upload goes with its files (as one
     * held in memory, s_upload_live). */
    char then[96];
    snprintf(then, sizeof then, "; upload '%s' is dropped with the bytes it held", id);
    art_run_t run;
    if (s_find_run(a, cairn_body(req), false, &run, NULL, err) != 0) {
        if (err->st == CAIRN_ST_NOT_FOUND) {
            cas_tmp_remove(a->cas, id);
            cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                          "no run has the id '%s'%s", m.run_id, then);
        }
        return -1;
    }
    if (run.rid != m.rid) {
        cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                      "upload '%s' was opened for another run than '%s' (rid %lld, not "
                      "%lld)",
                      id, m.run_id, (long long)m.rid, (long long)run.rid);
        return -1;
    }
    if (s_run_live(a, m.rid, m.run_id, then, err) != 0) {
        if (err->st != CAIRN_ST_INTERNAL) cas_tmp_remove(a->cas, id);
        return -1;
    }
    if (s_slot_check(a, req, err) != 0) return -1;
    uint64_t have = 0;
    cas_writer_t *w = cas_writer_resume(a->cas, id, offset, &have, err);
    if (!w &&
        err->st == CAIRN_ST_CONFLICT) { /* the only 409: it holds less than offset */
        cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                      "the server holds %llu bytes of upload '%s' (it restarted since "
                      "your last chunk), not %llu: expected offset %llu",
                      (unsigned long long)have, id, (unsigned long long)offset,
                      (unsigned long long)have);
        return s_reply_expected(s, req, err, have);
    }
    if (!w) {
        if (err->st == CAIRN_ST_NOT_FOUND)
            cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                          "no upload has the id '%s': its temp file is gone", id);
        else if (err->st == CAIRN_ST_UNAVAILABLE)
            cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                          "upload '%s' is still held by another writer (a process that "
                          "is stopping); send the chunk again shortly",
                          id);
        return -1;
    }
    upload_t *u = s_upload_add(s, req, id, run_id, m.rid, m.path, w);
    if (!u) {
        cas_writer_release(&w);
        cairn_err_oom(err, NULL);
        return -1;
    }
    cairn_log(
        s->ctx, CAIRN_LOG_INFO,
        "artifacts: resuming upload %s of '%s' at offset %llu (%llu bytes were on "
        "disk)",
        id, m.path, (unsigned long long)offset, (unsigned long long)have);
    u->resuming = true;
    u->req = req;
    /* msgpack-c leaves bin data in the request's body frame, which the
     * runtime keeps until the (possibly deferred) request is answered. */
    u->data = data->via.bin.ptr;
    u->dlen = data->via.bin.size;
    u->done = done;
    return s_resume_turn(u, err);
}

int art_put(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    const msgpack_object *b = cairn_body(req), *data = NULL;
    char path[ART_PATH_MAX + 1];
    size_t plen = 0;
    cairn_str_t run_id, upload_id = {NULL, 0};
    uint64_t offset = 0;
    bool done = false;
    int has_upload = 1;
    if (cairn_field_str(b, "run_id", true, ART_RUN_ID_MAX, &run_id, err) != 0 ||
        s_field_path(b, "path", false, path, &plen, err) != 0 ||
        cairn_field_uint(b, "offset", true, &offset, err) != 0 ||
        (has_upload = cairn_field_str(b, "upload_id", false, 64, &upload_id, err)) <
            0 ||
        cairn_field_bool(b, "done", false, &done, err) < 0)
        return -1;
    data = cairn_obj_get(b, "data");
    if (!data || data->type == MSGPACK_OBJECT_NIL) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'data' is required");
        return -1;
    }
    if (data->type != MSGPACK_OBJECT_BIN) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'data' must be bytes (msgpack bin)");
        return -1;
    }
    if (data->via.bin.size > ART_CHUNK_MAX) {
        cairn_err_set(
            err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
            "the field 'data' holds at most %u bytes (8 MiB) per chunk; this one "
            "has %u",
            ART_CHUNK_MAX, data->via.bin.size);
        return -1;
    }
    if (has_upload == 0 && upload_id.len == 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'upload_id' must not be empty");
        return -1;
    }

    if (has_upload == 0) {
        /* A later chunk of an upload in progress. */
        upload_t *u = s_upload_find(a, upload_id);
        if (!u)
            return s_resume(s, req, run_id, path, upload_id, offset, data, done, err);
        if (!cairn_str_eq(run_id, u->run_id) || strcmp(path, u->path) != 0) {
            cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "upload '%s' is for run '%s' path '%s', not run '%.*s' path '%s'",
                u->id, u->run_id, u->path, (int)run_id.len, run_id.ptr, path);
            return -1;
        }
        if (u->resuming) {
            cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                          "upload '%s' is being resumed after a restart (its bytes are "
                          "rehashed); send the chunk again shortly",
                          u->id);
            return -1;
        }
        /* Every chunk, in order or not: a run deleted since the last one
         * takes no more bytes (and the upload goes). */
        if (s_upload_live(a, u, err) != 0) return -1;
        uint64_t expected = cas_writer_size(u->w);
        if (offset != expected) {
            cairn_err_set(
                err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                "the chunk at offset %llu of upload '%s' is out of order: expected "
                "offset %llu",
                (unsigned long long)offset, u->id, (unsigned long long)expected);
            return s_reply_expected(s, req, err, expected);
        }
        return s_apply(s, req, u, data->via.bin.ptr, data->via.bin.size, done, err);
    }

    /* A first chunk: a new upload (or a whole file in one request). */
    art_run_t run;
    if (s_find_run(a, b, true, &run, NULL, err) != 0) return -1;
    if (offset != 0) {
        cairn_err_set(
            err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
            "a new upload (no upload_id) starts at offset 0, not %llu: expected "
            "offset 0",
            (unsigned long long)offset);
        return s_reply_expected(s, req, err, 0);
    }
    if (s_check_shape(a, run.rid, path, err) != 0) return -1;
    /* A whole file in one request holds no slot. */
    if (!done && s_slot_check(a, req, err) != 0) return -1;
    unsigned char rnd[16];
    char id[33], meta[CAS_META_MAX];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(id, sizeof id, rnd, sizeof rnd);
    cas_writer_t *w = cas_writer_new(a->cas, id, err);
    if (!w) return -1;
    if (cas_writer_write(w, data->via.bin.ptr, data->via.bin.size, err) != 0) {
        cas_writer_abort(&w);
        return -1;
    }
    if (done) {
        char rid_s[ART_RUN_ID_MAX + 1];
        snprintf(rid_s, sizeof rid_s, "%.*s", (int)run.id.len, run.id.ptr);
        return s_commit(s, req, &w, run.rid, rid_s, path, NULL, err);
    }
    /* The sidecar lets a restart resume the upload (s_resume). */
    upmeta_t m;
    s_meta_init(&m, run.rid, run_id, path);
    int mlen = upmeta_format(meta, sizeof meta, &m);
    if (mlen < 0)
        cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "the upload's record does not fit");
    if (mlen < 0 || cas_writer_set_meta(w, meta, (size_t)mlen, a->power, err) != 0 ||
        (a->power && cas_writer_sync(w, err) != 0)) {
        cas_writer_abort(&w);
        return -1;
    }
    upload_t *u = s_upload_add(s, req, id, run_id, run.rid, path, w);
    if (!u) {
        cas_writer_abort(&w);
        cairn_err_oom(err, NULL);
        return -1;
    }
    return s_reply_progress(s, req, u);
}

/* abort_upload {run_id*, upload_id*} -> {upload_id, aborted: true}: drop
 * an unfinished upload with its temp file and sidecar, whether it is held
 * in memory or only on disk (a restart came in between), which frees its
 * slot. Any principal may abort an upload whose id and run it names, as
 * any may send its chunks. */
int art_abort(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t run_id, upload_id;
    if (cairn_field_str(b, "run_id", true, ART_RUN_ID_MAX, &run_id, err) != 0 ||
        cairn_field_str(b, "upload_id", true, 64, &upload_id, err) != 0)
        return -1;
    if (run_id.len == 0 || upload_id.len == 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field '%s' must not be empty",
                      run_id.len == 0 ? "run_id" : "upload_id");
        return -1;
    }
    char id[65], buf[CAS_META_MAX];
    snprintf(id, sizeof id, "%.*s", (int)upload_id.len, upload_id.ptr);
    const char *owner = NULL; /* the upload's run, NULL when unreadable */
    upmeta_t m;
    upload_t *u = s_upload_find(a, upload_id);
    if (u) {
        owner = u->run_id;
    } else {
        size_t len = 0;
        int rc = s_upload_id_valid(upload_id)
                     ? cas_meta_read(a->cas, id, buf, sizeof buf, &len, NULL, err)
                     : cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                     "not an upload id");
        if (rc != 0 && err->st == CAIRN_ST_NOT_FOUND)
            cairn_err_set(
                err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                "no upload has the id '%s': it finished, failed, was aborted, "
                "or was idle for more than %llu s",
                id, (unsigned long long)(a->idle_ms / 1000));
        if (rc != 0) return -1;
        if (upmeta_parse(buf, len, &m)) owner = m.run_id;
    }
    if (owner && !cairn_str_eq(run_id, owner)) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "upload '%s' is for run '%s', not run '%.*s'", id, owner,
                      (int)run_id.len, run_id.ptr);
        return -1;
    }
    if (u && u->resuming) {
        cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                      "upload '%s' is being resumed after a restart (its bytes are "
                      "rehashed); send the abort again shortly",
                      id);
        return -1;
    }
    char run[ART_RUN_ID_MAX + 1];
    snprintf(run, sizeof run, "%.*s", (int)run_id.len, run_id.ptr);
    if (u) {
        s_upload_drop(a, u, false); /* owner goes with it */
    } else if (cas_tmp_remove(a->cas, id) == 0) {
        cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                      "upload '%s' is still held by another writer (a process that is "
                      "stopping); send the abort again shortly",
                      id);
        return -1;
    }
    cairn_log(s->ctx, CAIRN_LOG_INFO, "artifacts: aborted upload %s of run '%s'", id,
              run);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "upload_id", id);
    cairn_pack_cstr(pk, "aborted");
    msgpack_pack_true(pk);
    storage_reply_send(s, req, CAIRN_ST_OK);
    return 0;
}

/* ---- downloads ------------------------------------------------------------ */

static int s_corrupt(cairn_err_t *err, const char *path, const char *hash,
                     const char *why)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                         "the artifact '%s' is corrupt: its blob %s %s", path, hash,
                         why);
}

static cursor_t *s_cursor_find(artifacts_t *a, const char *hash, uint64_t off)
{
    for (int i = 0; i < ART_CURSORS; i++) {
        cursor_t *c = &a->cursors[i];
        if (c->used && c->next == off && strcmp(c->hash, hash) == 0) return c;
    }
    return NULL;
}

static cursor_t *s_cursor_new(artifacts_t *a, const char *hash)
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
    memcpy(best->hash, hash, sizeof best->hash);
    crypto_generichash_init(&best->st, NULL, 0, CAS_HASH_BYTES);
    return best;
}

/* Check the bytes just read (buf, n at off of a blob of size bytes):
 * 0 when verified or not yet checkable, -1 with a corrupt error. */
static int s_check_read(artifacts_t *a, const char *path, const char *hash,
                        uint64_t size, uint64_t off, const unsigned char *buf, size_t n,
                        cairn_err_t *err)
{
    bool end = off + n == size;
    if (off == 0 && end) { /* a whole-file read */
        char got[CAS_HEX_LEN + 1];
        cas_hash_buf(buf, n, got);
        return strcmp(got, hash) == 0
                   ? 0
                   : s_corrupt(err, path, hash, "does not match its hash");
    }
    cursor_t *c = off == 0 ? s_cursor_new(a, hash) : s_cursor_find(a, hash, off);
    if (c) {
        crypto_generichash_update(&c->st, buf, n);
        c->next = off + n;
        c->last_ms = cairn_now_ms();
        if (!end) return 0;
        unsigned char h[CAS_HASH_BYTES];
        char got[CAS_HEX_LEN + 1];
        crypto_generichash_final(&c->st, h, sizeof h);
        sodium_bin2hex(got, sizeof got, h, sizeof h);
        c->used = false;
        return strcmp(got, hash) == 0
                   ? 0
                   : s_corrupt(err, path, hash, "does not match its hash");
    }
    if (!end || size > ART_REHASH_MAX) return 0;
    bool ok = false;
    if (cas_verify(a->cas, hash, &ok, NULL, err) != 0) return -1;
    return ok ? 0 : s_corrupt(err, path, hash, "does not match its hash");
}

int art_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    const msgpack_object *b = cairn_body(req);
    char path[ART_PATH_MAX + 1], hash[CAS_HEX_LEN + 1];
    size_t plen;
    uint64_t offset = 0, length = ART_CHUNK_MAX, size = 0, disk = 0;
    art_run_t run;
    if (s_find_run(a, b, false, &run, NULL, err) != 0 ||
        s_field_path(b, "path", false, path, &plen, err) != 0 ||
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
    if (s_lookup(a, &run, path, hash, &size, err) != 0) return -1;
    if (offset > size) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "the field 'offset' (%llu) is past the end of '%s' (%llu bytes)",
                      (unsigned long long)offset, path, (unsigned long long)size);
        return -1;
    }
    int fd = -1;
    if (cas_open_blob(a->cas, hash, &fd, &disk, err) != 0) {
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
    msgpack_pack_map(pk, 5);
    cairn_pack_cstr(pk, "offset");
    msgpack_pack_uint64(pk, offset);
    cairn_pack_cstr(pk, "size");
    msgpack_pack_uint64(pk, size);
    cairn_pack_kv_str(pk, "hash", hash);
    cairn_pack_cstr(pk, "done");
    if (done)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    cairn_pack_cstr(pk, "data");
    msgpack_pack_bin(pk, n);
    /* Read straight into the reply buffer, after the bin header. */
    msgpack_sbuffer *sb = &s->sb;
    if (sb->alloc - sb->size < n) {
        char *p = realloc(sb->data, sb->size + n);
        if (!p) {
            close(fd);
            cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                          "out of memory for a %zu-byte read", n);
            return -1;
        }
        sb->data = p;
        sb->alloc = sb->size + n;
    }
    unsigned char *dst = (unsigned char *)sb->data + sb->size;
    size_t got = 0;
    int rc = cas_pread(a->cas, fd, dst, n, offset, &got, err);
    close(fd);
    if (rc != 0) return -1;
    if (got != n) {
        s_corrupt(err, path, hash, "is shorter than its index entry says");
        return -1;
    }
    if (s_check_read(a, path, hash, size, offset, dst, n, err) != 0) return -1;
    sb->size += n;
    storage_reply_send(s, req, CAIRN_ST_OK);
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
        crypto_generichash_update(&j->st, j->buf, got);
        j->off += got;
    }
    if (j->off < end) { /* the end of the blob */
        unsigned char h[CAS_HASH_BYTES];
        char got[CAS_HEX_LEN + 1];
        crypto_generichash_final(&j->st, h, sizeof h);
        sodium_bin2hex(got, sizeof got, h, sizeof h);
        if (strcmp(got, j->hash) != 0 || j->off != j->size) {
            char why[160];
            snprintf(why, sizeof why, "hashes to %s (%llu bytes)", got,
                     (unsigned long long)j->off);
            s_corrupt(&err, j->path, j->hash, why);
            cairn_reply_err(j->req, &err); /* deferred */
        } else {
            msgpack_packer *pk = storage_reply_begin(s);
            msgpack_pack_map(pk, 2);
            cairn_pack_cstr(pk, "ok");
            msgpack_pack_true(pk);
            cairn_pack_kv_str(pk, "hash", j->hash);
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
    char path[ART_PATH_MAX + 1], hash[CAS_HEX_LEN + 1];
    size_t plen;
    uint64_t size = 0, disk = 0;
    art_run_t run;
    int fd = -1;
    if (s_find_run(a, b, false, &run, NULL, err) != 0 ||
        s_field_path(b, "path", false, path, &plen, err) != 0 ||
        s_lookup(a, &run, path, hash, &size, err) != 0)
        return -1;
    if (a->nverifies >= ART_VERIFIES_MAX) {
        cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                      "at most %d verifications may run at once; try again shortly",
                      ART_VERIFIES_MAX);
        return -1;
    }
    if (cas_open_blob(a->cas, hash, &fd, &disk, err) != 0) {
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
    crypto_generichash_init(&j->st, NULL, 0, CAS_HASH_BYTES);
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
    art_run_t run;
    int has_token = 1;
    if (s_find_run(a, b, false, &run, &uri, err) != 0 ||
        s_field_path(b, "path", true, dir, &dlen, err) != 0 ||
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
    sqlite3_stmt *st = s_stmt(a, AST_NEXT);
    for (;;) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, run.rid);
        s_bind_str(st, 2, lo, lo_len);
        s_bind_str(st, 3, hi, hi_len);
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
    art_run_t run;
    if (s_find_run(a, b, true, &run, NULL, err) != 0 ||
        s_field_path(b, "path", false, path, &plen, err) != 0)
        return -1;
    int64_t deleted = 0;
    blob_set_t blobs = {0};
    memcpy(lo, path, plen);
    memcpy(hi, path, plen);
    lo[plen] = '/';
    hi[plen] = '0';
    if (db_begin(s->db, err) != 0) return -1;
    sqlite3_stmt *st = s_stmt(a, AST_HASHES);
    sqlite3_bind_int64(st, 1, run.rid);
    s_bind_str(st, 2, path, plen);
    s_bind_str(st, 3, lo, plen + 1);
    s_bind_str(st, 4, hi, plen + 1);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        rc = s_blobs_add(&blobs, sqlite3_column_text(st, 0),
                         (size_t)sqlite3_column_bytes(st, 0), err);
    sqlite3_reset(st);
    if (rc == 0) {
        st = s_stmt(a, AST_DEL);
        sqlite3_bind_int64(st, 1, run.rid);
        s_bind_str(st, 2, path, plen);
        rc = db_exec_stmt(s->db, st, err);
    }
    if (rc == 0) {
        deleted += sqlite3_changes(db_handle(s->db));
        st = s_stmt(a, AST_DEL_TREE);
        sqlite3_bind_int64(st, 1, run.rid);
        s_bind_str(st, 2, lo, plen + 1);
        s_bind_str(st, 3, hi, plen + 1);
        rc = db_exec_stmt(s->db, st, err);
        if (rc == 0) deleted += sqlite3_changes(db_handle(s->db));
    }
    if (rc == 0 && deleted == 0) {
        db_rollback(s->db);
        free(blobs.hex);
        cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                      "run '%.*s' has no artifact '%s'", (int)run.id.len, run.id.ptr,
                      path);
        return -1;
    }
    if (rc == 0) rc = db_commit(s->db, err);
    if (rc != 0) {
        db_rollback(s->db);
        free(blobs.hex);
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
 * takes only a normalized path (the rules of s_field_path), and its rid
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
    if (!m.committed || cas_open_blob(a->cas, m.hash, &fd, &size, &err) != 0) return;
    close(fd);
    if (size != m.size) return;
    sqlite3_stmt *st = s_stmt(a, AST_RUN);
    s_bind_str(st, 1, m.run_id, strlen(m.run_id));
    bool same_run =
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == m.rid;
    sqlite3_reset(st);
    if (!same_run) {
        cairn_log(s->ctx, CAIRN_LOG_WARN,
                  "artifacts: upload %s of '%s' was stored before a crash but is not "
                  "indexed: its run '%s' (rid %lld) is not in the database",
                  name, m.path, m.run_id, (long long)m.rid);
        return;
    }
    if (s_index_put(s, m.rid, m.run_id, m.path, m.hash, m.size, &err) != 0) {
        cairn_log(s->ctx, CAIRN_LOG_WARN,
                  "artifacts: upload %s of '%s' was stored before a crash but cannot "
                  "be indexed: %s",
                  name, m.path, err.msg);
        /* A run deleted meanwhile takes no artifact: the upload goes (its
         * sidecar, and its blob unless another artifact names it). Other
         * failures leave the sidecar to the sweep. */
        if (err.st == CAIRN_ST_BAD_REQUEST || err.st == CAIRN_ST_NOT_FOUND) {
            cas_tmp_remove(a->cas, name);
            s_blob_unref(s, m.hash);
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
    sqlite3 *h = db_handle(s->db);
    for (int i = 0; i < AST_COUNT; i++)
        if (sqlite3_prepare_v3(h, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &a->st[i],
                               NULL) != SQLITE_OK)
            return db_fail(s->db, "prepare an artifacts statement", err);
    /* An upload whose temp file and sidecar were written to less than
     * upload_idle ago may be resumed (s_resume); older ones, and temp
     * files without a sidecar, are leftovers. Files a writer holds (another
     * instance's) stay. */
    cas_meta_alone(a->cas, s_recover_committed, s); /* before the sweep takes them */
    int swept = cas_sweep_tmp(a->cas, (uint64_t)set->upload_idle);
    const char *why = cas_io_reason(a->cas);
    cairn_log(s->ctx, CAIRN_LOG_INFO,
              "artifacts: blobs under %s/cas; file I/O through %s%s%s%s; %d stale temp "
              "file%s removed",
              s->artifact_root, cas_io_mode(a->cas), *why ? " (" : "", why,
              *why ? ")" : "", swept, swept == 1 ? "" : "s");
    uint64_t every = a->idle_ms / 4;
    if (every < 100) every = 100;
    if (every > 30000) every = 30000;
    a->timer = cairn_timer_add(s->ctx, (uint32_t)every, (uint32_t)every, s_sweep, s);
    if (!a->timer)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "cannot add the upload sweep timer");
    return 0;
}

void artifacts_fini(storage_t *s)
{
    artifacts_t *a = s->art;
    if (!a) return;
    if (a->timer) cairn_timer_cancel(s->ctx, a->timer);
    /* Uploads in progress stay on disk, to be resumed after the restart;
     * the runtime answers a resume's deferred request. */
    while (a->uploads) s_upload_drop(a, a->uploads, true);
    /* Deferred verifications: the runtime answers their requests. */
    while (a->verifies) s_verify_free(a, a->verifies);
    for (int i = 0; i < AST_COUNT; i++) sqlite3_finalize(a->st[i]);
    cas_destroy(&a->cas);
    free(a->cursors);
    free(a);
    s->art = NULL;
}
