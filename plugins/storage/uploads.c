/* The storage plugin's `artifacts` role: uploads (put_artifact,
 * abort_upload), split from artifacts.c, whose banner describes the role,
 * its bytes and its verbs.
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

/* ---- uploads -------------------------------------------------------------- */

/* Remove u from the table. With keep, its temp file and sidecar stay on
 * disk (it may be resumed: a stop, a failed write); else they go. */
void art_upload_drop(artifacts_t *a, upload_t *u, bool keep)
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
    if (art_run_live(a, u->rid, u->run_id, then, err) == 0) return 0;
    if (err->st != CAIRN_ST_INTERNAL) art_upload_drop(a, u, false);
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

/* Commit a writer, index it, drop the upload's sidecar (upload_id; NULL
 * for a one-request upload, which has none) and reply. A blob that could
 * not be indexed (its run was deleted meanwhile, say) goes again unless
 * another artifact names it. */
static int s_commit(storage_t *s, cairn_req_t *req, cas_writer_t **w, int64_t rid,
                    const char *run_id, const char *path, const char *upload_id,
                    cairn_err_t *err)
{
    art_blob_t blob = {.alg = cas_writer_alg(*w)};
    uint64_t size = 0;
    int rc = cas_writer_commit(w, blob.hex, &size, NULL, err);
    if (rc == 0 && (rc = art_index_put(s, rid, run_id, path, &blob, size, err)) != 0)
        art_blob_unref(s, &blob);
    /* Indexed (or failed, and answered so): done with the sidecar, before
     * the reply, so that a client never sees it linger. */
    if (upload_id) cas_tmp_remove(s->art->cas, upload_id);
    if (rc != 0) return -1;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "artifact");
    msgpack_pack_map(pk, 4);
    cairn_pack_kv_str(pk, "path", path);
    cairn_pack_cstr(pk, "size");
    msgpack_pack_uint64(pk, size);
    cairn_pack_kv_str(pk, "hash", blob.hex);
    cairn_pack_kv_str(pk, "hash_alg", cairn_chash_name(blob.alg));
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
        art_upload_drop(a, u, true);
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
    m.alg = cas_writer_alg(u->w);
    int n = cas_writer_digest(u->w, m.hash, err) == 0
                ? upmeta_format(meta, sizeof meta, &m)
                : -1;
    if (n < 0 || cas_writer_set_meta(u->w, meta, (size_t)n, a->power, err) != 0) {
        if (!err->st)
            cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                          "the upload's record is too long");
        art_upload_drop(a, u, true);
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
    art_upload_drop(a, u, false);
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
        art_upload_drop(a, u, true);
        return -1;
    }
    if (left) {
        if (!u->deferred) {
            cairn_defer(u->req);
            u->deferred = true;
        }
        u->timer = cairn_timer_add(s->ctx, 0, 0, s_resume_step, u);
        if (!u->timer) {
            art_upload_drop(a, u, true);
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
    run_ref_t run;
    if (storage_req_run(a->db, req, NULL, &run, NULL, err) != 0) {
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
    if (art_run_live(a, m.rid, m.run_id, then, err) != 0) {
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
        art_field_path(b, "path", false, path, &plen, err) != 0 ||
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
    run_ref_t run;
    if (storage_req_run(a->db, req, "storing artifacts in it", &run, NULL, err) != 0)
        return -1;
    if (offset != 0) {
        cairn_err_set(
            err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
            "a new upload (no upload_id) starts at offset 0, not %llu: expected "
            "offset 0",
            (unsigned long long)offset);
        return s_reply_expected(s, req, err, 0);
    }
    if (art_check_shape(a, run.rid, path, err) != 0) return -1;
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
    /* The run must be the caller's workspace's (deleted or not): another's
     * is 404, as everywhere. */
    run_ref_t found;
    if (storage_find_run(a->db, cairn_workspace(req), run_id, &found, NULL, err) != 0)
        return -1;
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
        art_upload_drop(a, u, false); /* owner goes with it */
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
