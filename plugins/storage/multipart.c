/* The storage plugin's `artifacts` role: multipart uploads, as S3 has them
 * and as MLflow's artifact proxy asks for them (the gateway's mpu routes):
 * a file sent as numbered parts, in any order and in parallel, then put
 * together in part order into one content-addressed blob.
 *
 * On disk, never in memory (mpuname.h names the files):
 *     ROOT/mpu/<upload_id>/meta          the record (upmeta.h): run, path
 *     ROOT/mpu/<upload_id>/num_parts     how many parts the file has
 *     ROOT/mpu/<upload_id>/<N>.<sha256>  part N, finished
 *     ROOT/mpu/<upload_id>/<N>.tmp-<tok> part N while one PUT of it streams
 * create_multipart writes the record in ROOT/mpu/.tmp-<id> and renames the
 * directory into place, so an upload exists whole or not at all. Each PUT
 * of a part streams into its own staging file (upload_part, in chunks of
 * at most 8 MiB, hashed with SHA-256 as they come) and, at its last chunk,
 * is renamed to <N>.<sha256>, replacing any earlier part N: a re-sent
 * part wins, and a PUT cut short leaves only its staging file. The part's
 * SHA-256 is its etag. A part answered 200 survives any crash of Cairn
 * (durability=process: the page cache; power: fdatasync before the rename
 * and the directory fsync'ed after it, as the record at create).
 *
 * complete_multipart checks the list of parts the client sends (each of 1
 * .. num_parts once, each etag the one of the part on disk), then copies
 * the parts in order into a blob writer (cas.h), ART_VERIFY_SLICE bytes per
 * turn of the loop with the request deferred, so that neither requests nor
 * heartbeats wait on a large file; each part is hashed again as it is
 * read (a part that no longer hashes to its name is 500 corrupt). The blob
 * is committed and indexed as put_artifact's are, then the upload's
 * directory goes. When the request's deadline nears before the copy is
 * done, it is answered {done: false, composed, size} and the copy goes on:
 * the caller asks again (the same request) and is answered when it ends.
 * The result stays known for upload_idle seconds after it, so a retried
 * complete gets the same answer.
 *
 * Limits: 1 .. 10,000 parts, a part at most 5 GiB (413 beyond), parts
 * being written at most uploads_max at once (429). A staging file idle
 * for upload_idle seconds goes (and its part must be sent again); an
 * upload idle for multipart_idle seconds goes whole. A deleted run takes
 * no part: its uploads go at the next part or complete (400). The start
 * removes staging files (no PUT survives a restart: its client resends
 * the part) and half-made records.
 *
 * Verbs (permission tracking.write):
 *   create_multipart {run_id*, path*, num_parts*} -> {upload_id, num_parts,
 *       part_max}
 *   upload_part {upload_id*, part_number*, offset*, data* (bin, <= 8 MiB),
 *       part_id, done, cancel, run_id} -> {part_id, offset} or, at done,
 *       {part_number, etag, size}; cancel drops the staging file of part_id
 *   complete_multipart {run_id*, upload_id*, parts* [{part_number*, etag*}],
 *       path} -> {done: true, artifact: {path, size, hash, hash_alg}} or
 *       {done: false, composed, size}
 *   abort_multipart {run_id*, upload_id*} -> {upload_id, aborted: true}
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas.h"
#include "mpuname.h"
#include "storage.h"
#include "upmeta.h"

#include "art.h"

#define MPU_PART_MAX (5ull << 30) /* S3's */
#define MPU_COMPOSES_MAX 16
#define MPU_BUF (1u << 20)
#define MPU_MARGIN_MS \
    2000 /* a deferred complete is answered this long before its deadline */

/* A PUT of a part, streaming into its staging file. */
typedef struct part_w {
    cairn_chash_t h; /* first: 64-byte aligned */
    char id[MPU_ID_LEN + 1], token[MPU_TOKEN_LEN + 1];
    uint32_t number;
    int fd;
    uint64_t size, flushed, last_ms;
    struct part_w *next;
} part_w_t;

typedef struct cpart {
    uint32_t number;
    char hex[MPU_HEX_LEN + 1];
    uint64_t size;
} cpart_t;

/* A complete_multipart: the copy in progress, or its result kept a while. */
typedef struct compose {
    cairn_chash_t ph; /* the part being read: first, 64-byte aligned */
    storage_t *s;
    char id[MPU_ID_LEN + 1];
    char run_id[ART_RUN_ID_MAX + 1];
    char path[ART_PATH_MAX + 1];
    int64_t rid;
    cairn_req_t *req;   /* deferred; NULL once answered {done: false} */
    uint64_t answer_by; /* when req is answered {done: false} (monotonic) */
    cpart_t *parts;
    uint32_t n, at;
    int fd;
    uint64_t off, composed, total;
    cas_writer_t *w;
    unsigned char *buf;
    uint64_t timer;
    /* the end: an artifact, or a failure */
    bool finished;
    cairn_err_t fail;
    art_blob_t blob;
    uint64_t size, finished_ms;
    struct compose *next;
} compose_t;

struct mpu {
    char *root; /* ROOT/mpu */
    part_w_t *writers;
    size_t nwriters;
    compose_t *composes;
    size_t ncomposes;
    uint64_t idle_ms, keep_ms;
    uint64_t timer;
};

/* The record of an upload. */
typedef struct rec {
    upmeta_t m;
    uint32_t num_parts;
} rec_t;

static void *s_aligned(size_t size)
{
    size_t n = (size + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n);
    if (p) memset(p, 0, n);
    return p;
}

static void s_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Remove a directory and the files in it (no subdirectories). */
static void s_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(path);
}

static int s_upload_dir(const struct mpu *m, const char *id, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", m->root, id);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int s_not_found(cairn_err_t *err, const char *id, const artifacts_t *a)
{
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "no multipart upload has the id '%.64s': it was completed, "
                         "aborted, or idle for more than %llu s",
                         id, (unsigned long long)(a->mpu->keep_ms / 1000));
}

/* Read the small file dir/name into buf (cap bytes); -1 when it is missing
 * or larger. */
static int s_read_small(const char *dir, const char *name, char *buf, size_t cap,
                        size_t *len)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    char extra;
    bool more = n == cap && read(fd, &extra, 1) > 0;
    close(fd);
    if (more) return -1;
    *len = n;
    return 0;
}

/* The record of upload id: 404 when there is none (or id is not one). */
static int s_load(artifacts_t *a, cairn_str_t id, char idz[MPU_ID_LEN + 1], rec_t *r,
                  cairn_err_t *err)
{
    char dir[PATH_MAX], buf[CAS_META_MAX], np[16];
    size_t len = 0, nlen = 0;
    snprintf(idz, MPU_ID_LEN + 1, "%.*s",
             (int)(id.len > MPU_ID_LEN ? MPU_ID_LEN : id.len), id.ptr);
    if (!mpu_hex_valid(id.ptr, id.len, MPU_ID_LEN) ||
        s_upload_dir(a->mpu, idz, dir, sizeof dir) != 0)
        return s_not_found(err, idz, a);
    if (s_read_small(dir, "meta", buf, sizeof buf, &len) != 0 ||
        s_read_small(dir, "num_parts", np, sizeof np, &nlen) != 0) {
        struct stat st;
        if (stat(dir, &st) != 0) return s_not_found(err, idz, a);
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "the record of multipart upload '%s' is unreadable: abort "
                             "it and start again",
                             idz);
    }
    if (!upmeta_parse(buf, len, &r->m) || r->m.committed ||
        !mpu_num_parts_parse(np, nlen, &r->num_parts))
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "the record of multipart upload '%s' is corrupt: abort it "
                             "and start again",
                             idz);
    return 0;
}

/* ---- part writers ---------------------------------------------------------- */

static void s_writer_drop(struct mpu *m, part_w_t *w, bool unlink_it)
{
    for (part_w_t **p = &m->writers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            m->nwriters--;
            break;
        }
    if (unlink_it) {
        char path[PATH_MAX], name[MPU_NAME_MAX];
        if (mpu_name_staging(name, sizeof name, w->number, w->token) > 0 &&
            snprintf(path, sizeof path, "%s/%s/%s", m->root, w->id, name) <
                (int)sizeof path)
            unlink(path);
    }
    if (w->fd >= 0) close(w->fd);
    free(w);
}

/* Drop every writer of upload id. */
static void s_writers_drop_id(struct mpu *m, const char *id)
{
    for (part_w_t *w = m->writers, *next; w; w = next) {
        next = w->next;
        if (!strcmp(w->id, id)) s_writer_drop(m, w, true);
    }
}

static compose_t *s_compose_find(struct mpu *m, const char *id)
{
    for (compose_t *c = m->composes; c; c = c->next)
        if (!strcmp(c->id, id)) return c;
    return NULL;
}

/* Remove upload id: its writers, its directory. */
static void s_drop_upload(struct mpu *m, const char *id)
{
    char dir[PATH_MAX];
    s_writers_drop_id(m, id);
    if (s_upload_dir(m, id, dir, sizeof dir) == 0) s_rmtree(dir);
}

/* The run of record r, as req's caller sees it: 404 when it is another
 * workspace's; with live, 400 when it is deleted (and the upload goes). */
static int s_rec_run(storage_t *s, cairn_req_t *req, const char *id, const rec_t *r,
                     bool live, cairn_err_t *err)
{
    artifacts_t *a = s->art;
    run_ref_t run;
    if (storage_find_run(a->db, cairn_workspace(req),
                         (cairn_str_t){r->m.run_id, strlen(r->m.run_id)}, &run, NULL,
                         err) != 0) {
        if (err->st == CAIRN_ST_NOT_FOUND) return s_not_found(err, id, a);
        return -1;
    }
    if (run.rid != r->m.rid) return s_not_found(err, id, a);
    if (!live) return 0;
    char then[128];
    snprintf(then, sizeof then, "; multipart upload '%s' is dropped with its parts",
             id);
    if (art_run_live(a, r->m.rid, r->m.run_id, then, err) != 0) {
        if (err->st != CAIRN_ST_INTERNAL) s_drop_upload(a->mpu, id);
        return -1;
    }
    return 0;
}

/* ---- create ---------------------------------------------------------------- */

static int s_write_file(const char *dir, const char *name, const char *buf, size_t len,
                        bool sync)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    int rc = off == len && (!sync || fdatasync(fd) == 0) ? 0 : -1;
    close(fd);
    return rc;
}

int art_mpu_create(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    struct mpu *m = a->mpu;
    const msgpack_object *b = cairn_body(req);
    char path[ART_PATH_MAX + 1];
    size_t plen = 0;
    uint64_t n = 0;
    run_ref_t run;
    if (storage_req_run(a->db, req, "storing artifacts in it", &run, NULL, err) != 0 ||
        art_field_path(b, "path", false, path, &plen, err) != 0 ||
        cairn_field_uint(b, "num_parts", true, &n, err) != 0)
        return -1;
    if (n < 1 || n > MPU_PARTS_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'num_parts' must be from 1 to %u, not %llu",
                             MPU_PARTS_MAX, (unsigned long long)n);
    if (art_check_shape(a, run.rid, path, err) != 0) return -1;
    unsigned char rnd[16];
    char id[MPU_ID_LEN + 1], tmp[PATH_MAX], dir[PATH_MAX], meta[CAS_META_MAX], np[16];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(id, sizeof id, rnd, sizeof rnd);
    upmeta_t u = {.rid = run.rid, .created = cairn_wall_ms()};
    snprintf(u.run_id, sizeof u.run_id, "%.*s", (int)run.id.len, run.id.ptr);
    memcpy(u.path, path, plen + 1);
    int mlen = upmeta_format(meta, sizeof meta, &u);
    int nlen = snprintf(np, sizeof np, "%llu\n", (unsigned long long)n);
    bool power = a->power;
    if (mlen < 0 ||
        snprintf(tmp, sizeof tmp, "%s/.tmp-%s", m->root, id) >= (int)sizeof tmp ||
        s_upload_dir(m, id, dir, sizeof dir) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "the multipart upload's record does not fit");
    if (mkdir(tmp, 0700) != 0 ||
        s_write_file(tmp, "meta", meta, (size_t)mlen, power) != 0 ||
        s_write_file(tmp, "num_parts", np, (size_t)nlen, power) != 0 ||
        (power && (s_fsync_path(tmp), 0)) || rename(tmp, dir) != 0) {
        int e = errno;
        s_rmtree(tmp);
        return cairn_err_set(
            err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
            "cannot write the record of a multipart upload under %s: %s", m->root,
            strerror(e));
    }
    if (power) s_fsync_path(m->root);
    cairn_log(s->ctx, CAIRN_LOG_INFO,
              "artifacts: multipart upload %s of '%s' (%llu parts) for run '%s'", id,
              path, (unsigned long long)n, u.run_id);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 3);
    cairn_pack_kv_str(pk, "upload_id", id);
    cairn_pack_cstr(pk, "num_parts");
    msgpack_pack_uint64(pk, n);
    cairn_pack_cstr(pk, "part_max");
    msgpack_pack_uint64(pk, MPU_PART_MAX);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

/* ---- parts ----------------------------------------------------------------- */

static part_w_t *s_writer_find(struct mpu *m, const char *id, uint32_t number,
                               cairn_str_t token)
{
    for (part_w_t *w = m->writers; w; w = w->next)
        if (w->number == number && !strcmp(w->id, id) && cairn_str_eq(token, w->token))
            return w;
    return NULL;
}

static part_w_t *s_writer_new(struct mpu *m, const char *id, uint32_t number,
                              cairn_err_t *err)
{
    part_w_t *w = s_aligned(sizeof *w);
    if (!w) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    unsigned char rnd[MPU_TOKEN_LEN / 2];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(w->token, sizeof w->token, rnd, sizeof rnd);
    snprintf(w->id, sizeof w->id, "%s", id);
    w->number = number;
    char path[PATH_MAX], name[MPU_NAME_MAX];
    w->fd = -1;
    if (mpu_name_staging(name, sizeof name, number, w->token) > 0 &&
        snprintf(path, sizeof path, "%s/%s/%s", m->root, id, name) < (int)sizeof path)
        w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        int e = errno;
        free(w);
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                      "cannot open a staging file for part %u of upload '%s': %s",
                      number, id, strerror(e));
        return NULL;
    }
    flock(w->fd, LOCK_EX | LOCK_NB); /* the start's sweep leaves it alone */
    cairn_chash_init(&w->h, CAS_ALG_NEW);
    w->last_ms = cairn_now_ms();
    w->next = m->writers;
    m->writers = w;
    m->nwriters++;
    return w;
}

static int s_writer_write(part_w_t *w, const void *data, size_t len, cairn_err_t *err)
{
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(w->fd, p + done, len - done, (off_t)(w->size + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                                 "cannot write part %u of upload '%s': %s", w->number,
                                 w->id, n < 0 ? strerror(errno) : "short write");
        done += (size_t)n;
    }
    cairn_chash_update(&w->h, data, len);
    /* Bounded dirty page cache: start this chunk's writeback, wait for the
     * one before (as cas.c does for uploads). */
    if (w->size > w->flushed)
        sync_file_range(w->fd, (off_t)w->flushed, (off_t)(w->size - w->flushed),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
    w->flushed = w->size;
    w->size += len;
    if (len)
        sync_file_range(w->fd, (off_t)w->flushed, (off_t)len, SYNC_FILE_RANGE_WRITE);
    w->last_ms = cairn_now_ms();
    return 0;
}

/* The part's last chunk is in: name it by its hash (replacing an earlier
 * part of that number), answer its etag. */
static int s_writer_finish(storage_t *s, cairn_req_t *req, part_w_t *w,
                           cairn_err_t *err)
{
    artifacts_t *a = s->art;
    struct mpu *m = a->mpu;
    char hex[CAS_HEX_LEN + 1], dir[PATH_MAX], from[MPU_NAME_MAX], to[MPU_NAME_MAX];
    cairn_chash_hex(&w->h, hex);
    uint64_t size = w->size;
    uint32_t number = w->number;
    if (s_upload_dir(m, w->id, dir, sizeof dir) != 0 ||
        mpu_name_staging(from, sizeof from, w->number, w->token) < 0 ||
        mpu_name_part(to, sizeof to, w->number, hex) < 0) {
        s_writer_drop(m, w, true);
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "a part's name does not fit");
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || (a->power && fdatasync(w->fd) != 0) ||
        renameat(dfd, from, dfd, to) != 0) {
        int e = errno;
        if (dfd >= 0) close(dfd);
        char id[MPU_ID_LEN + 1];
        memcpy(id, w->id, sizeof id);
        s_writer_drop(m, w, true);
        if (e == ENOENT) return s_not_found(err, id, a); /* aborted meanwhile */
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "cannot store part %u of upload '%s': %s", number, id,
                             strerror(e));
    }
    if (a->power) fsync(dfd);
    /* An earlier part of that number goes: the one sent last wins. */
    DIR *d = fdopendir(dfd);
    if (d) {
        struct dirent *e;
        mpu_name_t nm;
        while ((e = readdir(d)))
            if (mpu_name_parse(e->d_name, strlen(e->d_name), &nm) == MPU_PART &&
                nm.number == number && strcmp(nm.hex, hex) != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    } else {
        close(dfd);
    }
    s_writer_drop(m, w, false);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 3);
    cairn_pack_cstr(pk, "part_number");
    msgpack_pack_uint32(pk, number);
    cairn_pack_kv_str(pk, "etag", hex);
    cairn_pack_cstr(pk, "size");
    msgpack_pack_uint64(pk, size);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

/* A 409 naming the offset the part goes on from (body {expected_offset}). */
static int s_expected(storage_t *s, cairn_req_t *req, cairn_err_t *err, uint64_t want,
                      uint64_t got)
{
    cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                  "the chunk at offset %llu of this part is out of order: expected "
                  "offset %llu",
                  (unsigned long long)got, (unsigned long long)want);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "expected_offset");
    msgpack_pack_uint64(pk, want);
    cairn_reply_error_sbuf(req, err->st, err->code, err->msg, &s->sb);
    return 0;
}

int art_mpu_part(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    struct mpu *m = a->mpu;
    const msgpack_object *b = cairn_body(req), *data = NULL;
    cairn_str_t upload_id, part_id = {NULL, 0}, run_id = {NULL, 0};
    uint64_t number = 0, offset = 0;
    bool done = false, cancel = false;
    int has_part = 1, has_run = 1;
    if (cairn_field_str(b, "upload_id", true, 64, &upload_id, err) != 0 ||
        cairn_field_uint(b, "part_number", true, &number, err) != 0 ||
        cairn_field_uint(b, "offset", false, &offset, err) < 0 ||
        (has_part = cairn_field_str(b, "part_id", false, 64, &part_id, err)) < 0 ||
        (has_run = cairn_field_str(b, "run_id", false, ART_RUN_ID_MAX, &run_id, err)) <
            0 ||
        cairn_field_bool(b, "done", false, &done, err) < 0 ||
        cairn_field_bool(b, "cancel", false, &cancel, err) < 0)
        return -1;
    if (number < 1 || number > MPU_PARTS_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a part number is from 1 to %u, not %llu", MPU_PARTS_MAX,
                             (unsigned long long)number);
    data = cairn_obj_get(b, "data");
    if (!cancel && (!data || data->type != MSGPACK_OBJECT_BIN))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'data' is required, as bytes (msgpack bin)");
    if (!cancel && data->via.bin.size > ART_CHUNK_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "the field 'data' holds at most %u bytes per chunk",
                             ART_CHUNK_MAX);
    char id[MPU_ID_LEN + 1];
    rec_t r;
    if (s_load(a, upload_id, id, &r, err) != 0) return -1;
    if (has_run == 0 && !cairn_str_eq(run_id, r.m.run_id))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "multipart upload '%s' is for run '%s', not run '%.*s'",
                             id, r.m.run_id, (int)run_id.len, run_id.ptr);
    if (s_rec_run(s, req, id, &r, !cancel, err) != 0) return -1;
    part_w_t *w =
        has_part == 0 ? s_writer_find(m, id, (uint32_t)number, part_id) : NULL;
    if (cancel) {
        bool had = w != NULL;
        if (w) s_writer_drop(m, w, true);
        msgpack_packer *pk = storage_reply_begin(s);
        msgpack_pack_map(pk, 1);
        cairn_pack_cstr(pk, "cancelled");
        if (had)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        return storage_reply_send(s, req, CAIRN_ST_OK);
    }
    compose_t *c = s_compose_find(m, id);
    if (c && !c->finished)
        return cairn_err_set(
            err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
            "multipart upload '%s' is being completed: it takes no more "
            "parts",
            id);
    if (number > r.num_parts)
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "multipart upload '%s' has %u parts: there is no part %llu", id,
            r.num_parts, (unsigned long long)number);
    if (has_part == 0 && !w)
        return cairn_err_set(
            err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
            "part %llu of upload '%s' has no PUT '%.*s' in progress (the "
            "server restarted, or it was idle for more than %llu s): "
            "send the part again from its start",
            (unsigned long long)number, id, (int)(part_id.len > 32 ? 32 : part_id.len),
            part_id.ptr, (unsigned long long)(m->idle_ms / 1000));
    if (!w && offset != 0) return s_expected(s, req, err, 0, offset);
    if (w && offset != w->size) return s_expected(s, req, err, w->size, offset);
    if ((w ? w->size : 0) + data->via.bin.size > MPU_PART_MAX) {
        if (w) s_writer_drop(m, w, true);
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "a part holds at most %llu bytes (5 GiB)",
                             (unsigned long long)MPU_PART_MAX);
    }
    if (!w) {
        if (m->nwriters >= a->uploads_max)
            return cairn_err_set(
                err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                "the artifacts service is writing %zu parts, its limit (uploads_max): "
                "send this one again shortly",
                m->nwriters);
        if (!(w = s_writer_new(m, id, (uint32_t)number, err))) return -1;
    }
    if (s_writer_write(w, data->via.bin.ptr, data->via.bin.size, err) != 0) {
        s_writer_drop(m, w, true);
        return -1;
    }
    if (done) return s_writer_finish(s, req, w, err);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "part_id", w->token);
    cairn_pack_cstr(pk, "offset");
    msgpack_pack_uint64(pk, w->size);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

/* ---- complete ---------------------------------------------------------------- */

static void s_compose_free(struct mpu *m, compose_t *c, storage_t *s)
{
    for (compose_t **p = &m->composes; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            m->ncomposes--;
            break;
        }
    if (c->timer) cairn_timer_cancel(s->ctx, c->timer);
    if (c->fd >= 0) close(c->fd);
    cas_writer_abort(&c->w);
    free(c->parts);
    free(c->buf);
    free(c);
}

/* The copy's end: keep the result a while (a retried complete reads it),
 * free what the copy held. */
static void s_compose_end(compose_t *c)
{
    c->finished = true;
    c->finished_ms = cairn_now_ms();
    if (c->timer) cairn_timer_cancel(c->s->ctx, c->timer);
    c->timer = 0;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    cas_writer_abort(&c->w);
    free(c->parts);
    c->parts = NULL;
    free(c->buf);
    c->buf = NULL;
}

static int s_reply_result(storage_t *s, cairn_req_t *req, compose_t *c,
                          cairn_err_t *err)
{
    if (c->fail.st) {
        *err = c->fail;
        return -1;
    }
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "done");
    msgpack_pack_true(pk);
    cairn_pack_cstr(pk, "artifact");
    msgpack_pack_map(pk, 4);
    cairn_pack_kv_str(pk, "path", c->path);
    cairn_pack_cstr(pk, "size");
    msgpack_pack_uint64(pk, c->size);
    cairn_pack_kv_str(pk, "hash", c->blob.hex);
    cairn_pack_kv_str(pk, "hash_alg", cairn_chash_name(c->blob.alg));
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

static void s_reply_progress(storage_t *s, compose_t *c)
{
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 3);
    cairn_pack_cstr(pk, "done");
    msgpack_pack_false(pk);
    cairn_pack_cstr(pk, "composed");
    msgpack_pack_uint64(pk, c->composed);
    cairn_pack_cstr(pk, "size");
    msgpack_pack_uint64(pk, c->total);
    storage_reply_send(s, c->req, CAIRN_ST_OK);
    c->req = NULL;
}

/* The copy is over (c->fail set or not): answer the waiting request. A
 * failure told goes with the job (a later complete starts afresh); a
 * success stays known for retries. */
static void s_compose_answer(compose_t *c)
{
    cairn_err_t err = {0};
    if (!c->req) return;
    if (s_reply_result(c->s, c->req, c, &err) != 0) {
        cairn_reply_err(c->req, &err); /* deferred */
        c->req = NULL;
        s_compose_free(c->s->art->mpu, c, c->s);
        return;
    }
    c->req = NULL;
}

/* Commit the blob, index it, remove the upload. */
static void s_compose_commit(compose_t *c)
{
    storage_t *s = c->s;
    artifacts_t *a = s->art;
    c->blob.alg = cas_writer_alg(c->w);
    int rc = cas_writer_commit(&c->w, c->blob.hex, &c->size, NULL, &c->fail);
    if (rc == 0 && (rc = art_index_put(s, c->rid, c->run_id, c->path, &c->blob, c->size,
                                       &c->fail)) != 0)
        art_blob_unref(s, &c->blob);
    /* Indexed, or its run is gone or deleted: the parts go. Another failure
     * keeps them for a retry. */
    if (rc == 0 || c->fail.st == CAIRN_ST_BAD_REQUEST ||
        c->fail.st == CAIRN_ST_NOT_FOUND)
        s_drop_upload(a->mpu, c->id);
    if (rc == 0)
        cairn_log(
            s->ctx, CAIRN_LOG_INFO,
            "artifacts: multipart upload %s completed: '%s', %u parts, %llu bytes",
            c->id, c->path, c->n, (unsigned long long)c->size);
}

static void s_compose_step(void *arg);

static void s_compose_fail(compose_t *c)
{
    s_compose_end(c);
    s_compose_answer(c);
}

static void s_compose_step(void *arg)
{
    compose_t *c = arg;
    storage_t *s = c->s;
    artifacts_t *a = s->art;
    c->timer = 0;
    uint64_t budget = ART_VERIFY_SLICE;
    while (budget && c->at < c->n) {
        cpart_t *p = &c->parts[c->at];
        if (c->fd < 0) {
            char path[PATH_MAX], name[MPU_NAME_MAX];
            if (mpu_name_part(name, sizeof name, p->number, p->hex) > 0 &&
                snprintf(path, sizeof path, "%s/%s/%s", a->mpu->root, c->id, name) <
                    (int)sizeof path)
                c->fd = open(path, O_RDONLY | O_CLOEXEC);
            if (c->fd < 0) {
                cairn_err_set(
                    &c->fail, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                    "part %u of upload '%s' went while it was being completed "
                    "(aborted?)",
                    p->number, c->id);
                s_compose_fail(c);
                return;
            }
            cairn_chash_init(&c->ph, CAS_ALG_NEW);
            c->off = 0;
        }
        size_t want = MPU_BUF < budget ? MPU_BUF : (size_t)budget, got = 0;
        if (cas_pread(a->cas, c->fd, c->buf, want, c->off, &got, &c->fail) != 0) {
            s_compose_fail(c);
            return;
        }
        if (got == 0) { /* the part's end */
            char hex[CAS_HEX_LEN + 1];
            cairn_chash_hex(&c->ph, hex);
            close(c->fd);
            c->fd = -1;
            if (strcmp(hex, p->hex) != 0 || c->off != p->size) {
                cairn_err_set(
                    &c->fail, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                    "part %u of upload '%s' is corrupt: it hashes to %s (%llu "
                    "bytes), not its etag %s; send it again",
                    p->number, c->id, hex, (unsigned long long)c->off, p->hex);
                s_compose_fail(c);
                return;
            }
            c->at++;
            continue;
        }
        cairn_chash_update(&c->ph, c->buf, got);
        if (cas_writer_write(c->w, c->buf, got, &c->fail) != 0) {
            s_compose_fail(c);
            return;
        }
        c->off += got;
        c->composed += got;
        budget -= got;
        if (c->req && cairn_now_ms() >= c->answer_by) break; /* answer first */
    }
    if (c->at == c->n) {
        s_compose_commit(c);
        s_compose_end(c);
        s_compose_answer(c);
        return;
    }
    if (c->req && cairn_now_ms() >= c->answer_by) s_reply_progress(s, c);
    c->timer = cairn_timer_add(s->ctx, 0, 0, s_compose_step, c);
    if (!c->timer) {
        cairn_err_set(&c->fail, CAIRN_ST_INTERNAL, NULL,
                      "cannot schedule the rest of the multipart upload's completion");
        s_compose_fail(c);
    }
}

/* Wait (deferred) on c for req. */
static int s_compose_attach(compose_t *c, cairn_req_t *req)
{
    uint64_t now = cairn_now_ms(), dl = cairn_deadline_ms(req);
    uint64_t left = dl > now ? dl - now : 0;
    /* at half its time, at most MPU_MARGIN_MS before its deadline: a busy
     * machine's slack (the commit's fsync, the way back) */
    uint64_t wait = left / 2;
    if (left > MPU_MARGIN_MS && left - wait < MPU_MARGIN_MS)
        wait = left - MPU_MARGIN_MS;
    c->answer_by = now + wait;
    c->req = req;
    cairn_defer(req);
    return 0;
}

/* parts [{part_number, etag}] into want[1 .. n] (hex; "" where unlisted). */
static int s_parts_list(const msgpack_object *arr, uint32_t n,
                        char (*want)[MPU_HEX_LEN + 1], cairn_err_t *err)
{
    if (arr->via.array.size == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'parts' lists no part");
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        uint64_t num = 0;
        cairn_str_t etag;
        if (o->type != MSGPACK_OBJECT_MAP)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "parts[%u] must be a map {part_number, etag}", i);
        if (cairn_field_uint(o, "part_number", true, &num, err) != 0 ||
            cairn_field_str(o, "etag", true, 128, &etag, err) != 0)
            return storage_err_at(err, "parts", i);
        if (num < 1 || num > n)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "parts[%u]: the upload has parts 1 to %u, not %llu", i,
                                 n, (unsigned long long)num);
        if (want[num][0])
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "parts[%u]: part %llu is listed twice", i,
                                 (unsigned long long)num);
        if (!mpu_etag_parse(etag.ptr, etag.len, want[num]))
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "parts[%u]: the etag of part %llu is not one this server "
                "gave (64 hex digits)",
                i, (unsigned long long)num);
    }
    for (uint32_t k = 1; k <= n; k++)
        if (!want[k][0])
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "part %u of %u is missing from the field 'parts': list "
                "every part with the etag its PUT answered",
                k, n);
    return 0;
}

/* Find each wanted part on disk (its size into parts[]); 400 naming the
 * first one missing or whose etag differs. */
static int s_parts_find(artifacts_t *a, const char *id, uint32_t n,
                        char (*want)[MPU_HEX_LEN + 1], cpart_t *parts, uint64_t *total,
                        cairn_err_t *err)
{
    char dir[PATH_MAX];
    if (s_upload_dir(a->mpu, id, dir, sizeof dir) != 0) return s_not_found(err, id, a);
    DIR *d = opendir(dir);
    if (!d) return s_not_found(err, id, a);
    char(*held)[MPU_HEX_LEN + 1] = calloc(n + 1, sizeof *held);
    if (!held) {
        closedir(d);
        return cairn_err_oom(err, NULL);
    }
    struct dirent *e;
    mpu_name_t nm;
    while ((e = readdir(d))) {
        if (mpu_name_parse(e->d_name, strlen(e->d_name), &nm) != MPU_PART ||
            nm.number > n)
            continue;
        if (!held[nm.number][0] || !strcmp(nm.hex, want[nm.number]))
            memcpy(held[nm.number], nm.hex, sizeof nm.hex);
    }
    int rc = 0;
    *total = 0;
    for (uint32_t k = 1; k <= n && rc == 0; k++) {
        cpart_t *p = &parts[k - 1];
        struct stat st;
        char name[MPU_NAME_MAX];
        if (!held[k][0])
            rc = cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "part %u of upload '%s' was never uploaded (or its PUT did "
                "not finish): send it, then complete",
                k, id);
        else if (strcmp(held[k], want[k]) != 0)
            rc = cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "the etag given for part %u of upload '%s' is not the one "
                "of the part the server holds (%s): list the etag its "
                "last PUT answered",
                k, id, held[k]);
        else if (mpu_name_part(name, sizeof name, k, want[k]) < 0 ||
                 fstatat(dirfd(d), name, &st, 0) != 0)
            rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                               "part %u of upload '%s' went meanwhile: send it again",
                               k, id);
        else {
            p->number = k;
            memcpy(p->hex, want[k], sizeof p->hex);
            p->size = (uint64_t)st.st_size;
            *total += p->size;
        }
    }
    free(held);
    closedir(d);
    return rc;
}

int art_mpu_complete(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    struct mpu *m = a->mpu;
    const msgpack_object *b = cairn_body(req), *arr = NULL;
    cairn_str_t upload_id;
    char id[MPU_ID_LEN + 1], path[ART_PATH_MAX + 1];
    size_t plen = 0;
    int has_path = 1;
    run_ref_t run;
    if (cairn_field_str(b, "upload_id", true, 64, &upload_id, err) != 0 ||
        storage_req_run(a->db, req, NULL, &run, NULL, err) != 0 ||
        cairn_field_array(b, "parts", true, &arr, err) != 0)
        return -1;
    if (cairn_obj_get(b, "path")) {
        has_path = 0;
        if (art_field_path(b, "path", false, path, &plen, err) != 0) return -1;
    }
    snprintf(id, sizeof id, "%.*s",
             (int)(upload_id.len > MPU_ID_LEN ? MPU_ID_LEN : upload_id.len),
             upload_id.ptr);
    compose_t *c = mpu_hex_valid(upload_id.ptr, upload_id.len, MPU_ID_LEN)
                       ? s_compose_find(m, id)
                       : NULL;
    if (c && !cairn_str_eq(run.id, c->run_id)) return s_not_found(err, id, a);
    if (c && c->finished) { /* a retry, or the end of one answered {done: false} */
        int rc = s_reply_result(s, req, c, err);
        if (rc != 0) s_compose_free(m, c, s); /* a failure is told once */
        return rc;
    }
    if (c && c->req && cairn_now_ms() > cairn_deadline_ms(c->req))
        s_reply_progress(s, c); /* its caller has given up: this one waits */
    if (c && c->req)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "multipart upload '%s' is being completed by another "
                             "request",
                             id);
    if (c) return s_compose_attach(c, req); /* it asks again: wait on */
    rec_t r;
    if (s_load(a, upload_id, id, &r, err) != 0) return -1;
    if (!cairn_str_eq(run.id, r.m.run_id) || run.rid != r.m.rid)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "multipart upload '%s' is for run '%s', not run '%.*s'",
                             id, r.m.run_id, (int)run.id.len, run.id.ptr);
    if (has_path == 0 && strcmp(path, r.m.path) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "multipart upload '%s' is of '%s', not '%s'", id, r.m.path,
                             path);
    if (s_rec_run(s, req, id, &r, true, err) != 0) return -1;
    if (m->ncomposes >= MPU_COMPOSES_MAX)
        return cairn_err_set(
            err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
            "%d multipart uploads are being completed, the most at once: "
            "try again shortly",
            MPU_COMPOSES_MAX);
    char(*want)[MPU_HEX_LEN + 1] = calloc(r.num_parts + 1, sizeof *want);
    cpart_t *parts = calloc(r.num_parts, sizeof *parts);
    c = s_aligned(sizeof *c);
    unsigned char *buf = malloc(MPU_BUF);
    uint64_t total = 0;
    int rc = want && parts && c && buf ? 0 : cairn_err_oom(err, NULL);
    if (rc == 0) rc = s_parts_list(arr, r.num_parts, want, err);
    if (rc == 0) rc = s_parts_find(a, id, r.num_parts, want, parts, &total, err);
    if (rc == 0) rc = art_check_shape(a, r.m.rid, r.m.path, err);
    char name[CAS_NAME_MAX + 1];
    snprintf(name, sizeof name, "mpu-%s", id);
    if (rc == 0 && !(c->w = cas_writer_new(a->cas, name, err))) rc = -1;
    free(want);
    if (rc != 0) {
        free(parts);
        free(buf);
        free(c);
        return -1;
    }
    c->s = s;
    memcpy(c->id, id, sizeof c->id);
    snprintf(c->run_id, sizeof c->run_id, "%s", r.m.run_id);
    snprintf(c->path, sizeof c->path, "%s", r.m.path);
    c->rid = r.m.rid;
    c->parts = parts;
    c->n = r.num_parts;
    c->fd = -1;
    c->total = total;
    c->buf = buf;
    c->next = m->composes;
    m->composes = c;
    m->ncomposes++;
    /* Writers of this upload still streaming a part: they lose (their
     * part is not the one listed, or it is listed and finished already). */
    s_writers_drop_id(m, id);
    s_compose_attach(c, req);
    c->timer = cairn_timer_add(s->ctx, 0, 0, s_compose_step, c);
    if (!c->timer) {
        cairn_err_set(&c->fail, CAIRN_ST_INTERNAL, NULL,
                      "cannot schedule the multipart upload's completion");
        s_compose_fail(c);
    }
    return 0;
}

/* ---- abort --------------------------------------------------------------------- */

int art_mpu_abort(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    struct mpu *m = a->mpu;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t upload_id;
    char id[MPU_ID_LEN + 1];
    run_ref_t run;
    rec_t r;
    if (cairn_field_str(b, "upload_id", true, 64, &upload_id, err) != 0 ||
        storage_req_run(a->db, req, NULL, &run, NULL, err) != 0 ||
        s_load(a, upload_id, id, &r, err) != 0)
        return -1;
    if (!cairn_str_eq(run.id, r.m.run_id) || run.rid != r.m.rid)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "multipart upload '%s' is for run '%s', not run '%.*s'",
                             id, r.m.run_id, (int)run.id.len, run.id.ptr);
    compose_t *c = s_compose_find(m, id);
    if (c && !c->finished)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "multipart upload '%s' is being completed: it cannot be "
                             "aborted now",
                             id);
    s_drop_upload(m, id);
    cairn_log(s->ctx, CAIRN_LOG_INFO, "artifacts: aborted multipart upload %s of '%s'",
              id, r.m.path);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "upload_id", id);
    cairn_pack_cstr(pk, "aborted");
    msgpack_pack_true(pk);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

/* ---- sweeping, life cycle ------------------------------------------------------- */

/* When an upload's directory last changed (ms, wall clock): a part
 * finished, replaced or begun renames or makes a file in it; a part being
 * written is in the table of writers, which the sweep asks first. */
static int64_t s_changed_ms(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* Remove the staging files of dir no writer holds. */
static int s_sweep_staging(const char *dir)
{
    int gone = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    mpu_name_t nm;
    while ((e = readdir(d))) {
        if (mpu_name_parse(e->d_name, strlen(e->d_name), &nm) != MPU_STAGING) continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dirfd(d), e->d_name, 0) == 0)
            gone++;
        close(fd);
    }
    closedir(d);
    return gone;
}

/* Uploads idle longer than keep_ms go whole; with start, staging files
 * and half-made records too. */
static int s_sweep_dirs(struct mpu *m, bool start)
{
    int gone = 0;
    DIR *d = opendir(m->root);
    if (!d) return 0;
    struct dirent *e;
    int64_t now = (int64_t)cairn_wall_ms();
    while ((e = readdir(d))) {
        char dir[PATH_MAX];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            snprintf(dir, sizeof dir, "%s/%s", m->root, e->d_name) >= (int)sizeof dir)
            continue;
        bool tmp = !strncmp(e->d_name, ".tmp-", 5);
        if (!tmp && !mpu_hex_valid(e->d_name, strlen(e->d_name), MPU_ID_LEN)) continue;
        if (!tmp && !start) {
            bool busy = s_compose_find(m, e->d_name) != NULL;
            for (part_w_t *w = m->writers; w && !busy; w = w->next)
                busy = !strcmp(w->id, e->d_name);
            if (busy) continue;
        }
        if (tmp ? start || now - s_changed_ms(dir) > 60000
                : now - s_changed_ms(dir) > (int64_t)m->keep_ms) {
            s_rmtree(dir);
            gone++;
        } else if (start) {
            gone += s_sweep_staging(dir);
        }
    }
    closedir(d);
    return gone;
}

static void s_sweep(void *arg)
{
    storage_t *s = arg;
    struct mpu *m = s->art->mpu;
    uint64_t now = cairn_now_ms();
    for (part_w_t *w = m->writers, *next; w; w = next) {
        next = w->next;
        if (now - w->last_ms > m->idle_ms) s_writer_drop(m, w, true);
    }
    for (compose_t *c = m->composes, *next; c; c = next) {
        next = c->next;
        if (c->finished && !c->req && now - c->finished_ms > m->idle_ms)
            s_compose_free(m, c, s);
    }
    int gone = s_sweep_dirs(m, false);
    if (gone)
        cairn_log(s->ctx, CAIRN_LOG_INFO,
                  "artifacts: %d multipart upload%s idle for more than %llu s removed",
                  gone, gone == 1 ? "" : "s", (unsigned long long)(m->keep_ms / 1000));
}

int art_mpu_init(storage_t *s, cairn_err_t *err)
{
    artifacts_t *a = s->art;
    struct mpu *m = calloc(1, sizeof *m);
    if (!m) return cairn_err_oom(err, NULL);
    a->mpu = m;
    if (asprintf(&m->root, "%s/mpu", s->artifact_root) < 0) {
        m->root = NULL;
        return cairn_err_oom(err, NULL);
    }
    if (mkdir(m->root, 0700) != 0 && errno != EEXIST)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "cannot make %s: %s", m->root, strerror(errno));
    m->idle_ms = a->idle_ms;
    m->keep_ms = (uint64_t)s->set->multipart_idle * 1000;
    int swept = s_sweep_dirs(m, true);
    if (swept)
        cairn_log(s->ctx, CAIRN_LOG_INFO,
                  "artifacts: %d leftover%s of multipart uploads removed under %s",
                  swept, swept == 1 ? "" : "s", m->root);
    uint64_t every = m->idle_ms / 4;
    if (every < 100) every = 100;
    if (every > 30000) every = 30000;
    m->timer = cairn_timer_add(s->ctx, (uint32_t)every, (uint32_t)every, s_sweep, s);
    if (!m->timer)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "cannot add the multipart upload sweep timer");
    return 0;
}

void art_mpu_fini(storage_t *s)
{
    artifacts_t *a = s->art;
    struct mpu *m = a ? a->mpu : NULL;
    if (!m) return;
    if (m->timer) cairn_timer_cancel(s->ctx, m->timer);
    /* Parts being written: their staging files go (their PUTs fail and are
     * sent again); finished parts stay for the restart. Completions in
     * progress: the runtime answers their requests; the client completes
     * again. */
    while (m->writers) s_writer_drop(m, m->writers, true);
    while (m->composes) s_compose_free(m, m->composes, s);
    free(m->root);
    free(m);
    a->mpu = NULL;
}
