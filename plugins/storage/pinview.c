/* The storage plugin's `artifacts` role: pinned blobs seen by their owner.
 * A pin (pins.c) keeps a blob for an owner (the registry's model or data
 * asset version); these verbs let the owner read it without a run: a range
 * of its bytes, the shape of a CSV table, or a directory of its files for
 * a program that wants paths (a trainer, a scorer).
 *
 *   read_pinned {owner*, hash*, hash_alg*, offset (0), length (8 MiB)}
 *       -> {data (bin), size (the blob's), offset}: at most 8 MiB (a
 *       larger length is cut to it), read straight into the reply and
 *       checked against the blob's hash as get_artifact's reads are.
 *   sniff_pinned {owner*, hash*, hash_alg*}
 *       -> {rows, columns: [{name, type, nullable}], delimiter, header}: the
 *       blob read as a CSV table (sdk/csv.h: delimiter , ; TAB or |, line 1
 *       a header or not, each column's type int, float, bool or string over
 *       every row, rows without the header), 1 MiB per read, hashed as it
 *       goes (500 corrupt on a mismatch). 400 with the reader's sentence
 *       when the blob is not a table. The request is deferred and the blob
 *       read 8 MiB per turn of the plugin's loop (as verify_artifact), so
 *       other requests and heartbeats go on; at most 16 at once (429).
 *   materialize_pinned {owner*, files*: [{path*, hash*, hash_alg*}]
 *                       (1 .. 100,000)}
 *       -> {path}: a read-only directory, ARTIFACT_ROOT/views/<the SHA-256,
 *       in hex, of ws NUL owner>, holding each file at its relative path
 *       as a hard link to its blob (a copy where link fails: another
 *       filesystem, a link limit). Files are 0400 (the blobs' mode), the
 *       directories 0500. It is built in views/.tmp-* and renamed into
 *       place, so it appears whole or not at all; once it exists the verb
 *       answers it as it is (an owner's pins do not change). A path is
 *       relative, at most 1024 bytes, without an empty, '.' or '..'
 *       segment or a control character; two files may not share a path, or
 *       a file be another's directory (400).
 *
 * Each verb answers 404 unless owner pins every blob it names, in the
 * request's workspace. All need tracking.admin: the registry calls them as
 * its service, in the caller's workspace. unpin_artifacts removes the
 * owner's view (art_view_drop). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdalign.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas.h"
#include "csv.h"
#include "sha256.h"
#include "storage.h"
#include "upmeta.h"
#include "upslots.h"

#include "art.h"

#define VIEW_FILES_MAX 100000
#define SNIFF_READ (1u << 20)

/* ---- the blob a request names -------------------------------------------- */

/* The fields hash* and hash_alg* of o into blob (400 naming the field). */
static int s_field_blob(const msgpack_object *o, art_blob_t *blob, cairn_err_t *err)
{
    cairn_str_t h, alg;
    if (cairn_field_str(o, "hash", true, CAS_HEX_LEN, &h, err) != 0 ||
        cairn_field_str(o, "hash_alg", true, 16, &alg, err) != 0)
        return -1;
    if (!cas_hex_valid(h.ptr, h.len))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'hash' must be 64 lowercase hex digits");
    if (!cairn_chash_parse(alg.ptr, alg.len, &blob->alg))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'hash_alg' must be \"sha256\" or \"blake2b\"");
    memcpy(blob->hex, h.ptr, CAS_HEX_LEN);
    blob->hex[CAS_HEX_LEN] = '\0';
    return 0;
}

/* 0 when the owner key pins blob; 404 otherwise. */
static int s_pinned(artifacts_t *a, cairn_str_t key, cairn_str_t owner,
                    const art_blob_t *blob, cairn_err_t *err)
{
    sqlite3_stmt *st = db_stmt(a->db, ST_PIN_HAS);
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, blob->hex, CAS_HEX_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cairn_chash_name(blob->alg), -1, SQLITE_STATIC);
    art_bind_str(st, 3, key.ptr, key.len);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return db_fail(a->db, "look a pin up", err);
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "'%.*s' pins no blob %s:%s in this workspace", (int)owner.len,
                         owner.ptr, cairn_chash_name(blob->alg), blob->hex);
}

/* The request's owner and blob, checked to be pinned; the blob opened. */
static int s_open_pinned(storage_t *s, cairn_req_t *req, art_blob_t *blob,
                         char what[CAS_HEX_LEN + 16], int *fd, uint64_t *size,
                         cairn_err_t *err)
{
    char key[PIN_KEY_MAX + 1];
    cairn_str_t owner, raw;
    if (art_pin_owner(req, key, &owner, &raw, err) != 0 ||
        s_field_blob(cairn_body(req), blob, err) != 0)
        return -1;
    if (s_pinned(s->art, owner, raw, blob, err) != 0) return -1;
    snprintf(what, CAS_HEX_LEN + 16, "%s:%s", cairn_chash_name(blob->alg), blob->hex);
    if (cas_open_blob(s->art->cas, blob->alg, blob->hex, fd, size, err) != 0) {
        if (err->st == CAIRN_ST_NOT_FOUND)
            cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                          "the pinned blob %s is missing", what);
        return -1;
    }
    return 0;
}

/* ---- read_pinned ------------------------------------------------------------ */

int art_read_pinned(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req);
    uint64_t offset = 0, length = ART_CHUNK_MAX, size = 0;
    if (cairn_field_uint(b, "offset", false, &offset, err) < 0 ||
        cairn_field_uint(b, "length", false, &length, err) < 0)
        return -1;
    if (length > ART_CHUNK_MAX) length = ART_CHUNK_MAX;
    art_blob_t blob;
    char what[CAS_HEX_LEN + 16];
    int fd = -1;
    if (s_open_pinned(s, req, &blob, what, &fd, &size, err) != 0) return -1;
    if (offset > size) {
        close(fd);
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'offset' (%llu) is past the end of the blob "
                             "(%llu bytes)",
                             (unsigned long long)offset, (unsigned long long)size);
    }
    size_t n = (size_t)(size - offset < length ? size - offset : length);
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 3);
    cairn_pack_cstr(pk, "offset");
    msgpack_pack_uint64(pk, offset);
    cairn_pack_cstr(pk, "size");
    msgpack_pack_uint64(pk, size);
    cairn_pack_cstr(pk, "data");
    int rc = art_pack_range(s, &blob, what, fd, size, offset, n, err);
    close(fd);
    if (rc != 0) return -1;
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

/* ---- sniff_pinned ----------------------------------------------------------- */

/* A sniff reads the whole blob, SNIFF_SLICE bytes per turn of the plugin's
 * loop (the request is deferred, as verify_artifact's), so that a large
 * CSV blocks neither other requests nor the heartbeats for long. */
#define SNIFF_SLICE (8u << 20)
#define SNIFFS_MAX 16

struct sniff_job {
    cairn_chash_t st; /* first: its alignment is the job's */
    storage_t *s;
    cairn_req_t *req; /* deferred */
    cairn_csv_sniff_t *sn;
    int fd;
    uint64_t off;
    unsigned char *buf;
    art_blob_t blob;
    char what[CAS_HEX_LEN + 16];
    struct sniff_job *next;
};

static void s_sniff_free(artifacts_t *a, sniff_job_t *j)
{
    for (sniff_job_t **p = &a->sniffs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            a->nsniffs--;
            break;
        }
    if (j->fd >= 0) close(j->fd);
    cairn_csv_sniff_destroy(&j->sn);
    free(j->buf);
    free(j);
}

void art_sniffs_drop(storage_t *s)
{
    while (s->art->sniffs) s_sniff_free(s->art, s->art->sniffs);
}

static void s_sniff_reply(storage_t *s, cairn_req_t *req, const cairn_csv_sniff_t *sn)
{
    size_t cols = cairn_csv_sniff_columns(sn);
    char delim[2] = {cairn_csv_sniff_delimiter(sn), '\0'};
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 4);
    cairn_pack_cstr(pk, "rows");
    msgpack_pack_uint64(pk, cairn_csv_sniff_rows(sn));
    cairn_pack_cstr(pk, "columns");
    msgpack_pack_array(pk, (uint32_t)cols);
    for (size_t i = 0; i < cols; i++) {
        msgpack_pack_map(pk, 3);
        cairn_pack_kv_text(pk, "name", cairn_csv_sniff_name(sn, i));
        cairn_pack_kv_str(pk, "type", cairn_csv_type_name(cairn_csv_sniff_type(sn, i)));
        cairn_pack_cstr(pk, "nullable");
        if (cairn_csv_sniff_nullable(sn, i))
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
    cairn_pack_kv_str(pk, "delimiter", delim);
    cairn_pack_cstr(pk, "header");
    if (cairn_csv_sniff_header(sn))
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    storage_reply_send(s, req, CAIRN_ST_OK);
}

/* One slice: 1 MiB reads, each hashed and fed to the sniffer; at the end
 * the hash is checked and the table answered. */
static void s_sniff_step(void *arg)
{
    sniff_job_t *j = arg;
    storage_t *s = j->s;
    artifacts_t *a = s->art;
    cairn_err_t err = {0};
    uint64_t end = j->off + SNIFF_SLICE;
    int rc = 0;
    bool eof = false;
    while (rc == 0 && j->off < end) {
        size_t got = 0;
        rc = cas_pread(a->cas, j->fd, j->buf, SNIFF_READ, j->off, &got, &err);
        if (rc != 0) break;
        if (!got) {
            eof = true;
            break;
        }
        cairn_chash_update(&j->st, j->buf, got);
        j->off += got;
        rc = cairn_csv_sniff_feed(j->sn, j->buf, got, &err);
    }
    if (rc == 0 && eof) {
        char hex[CAS_HEX_LEN + 1];
        cairn_chash_hex(&j->st, hex);
        if (strcmp(hex, j->blob.hex) != 0)
            rc = cairn_err_set(&err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                               "the pinned blob %s is corrupt: it does not match its "
                               "hash",
                               j->what);
        if (rc == 0) rc = cairn_csv_sniff_finish(j->sn, &err);
        if (rc == 0) s_sniff_reply(s, j->req, j->sn);
    }
    if (rc == 0 && !eof && !cairn_timer_add(s->ctx, 0, 0, s_sniff_step, j))
        rc = cairn_err_set(&err, CAIRN_ST_INTERNAL, NULL,
                           "cannot schedule the rest of the sniff");
    if (rc != 0) cairn_reply_err(j->req, &err); /* deferred */
    if (rc != 0 || eof) s_sniff_free(a, j);
}

int art_sniff_pinned(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    artifacts_t *a = s->art;
    if (a->nsniffs >= SNIFFS_MAX)
        return cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                             "at most %d sniffs may run at once; try again shortly",
                             SNIFFS_MAX);
    art_blob_t blob;
    char what[CAS_HEX_LEN + 16];
    int fd = -1;
    uint64_t size = 0; /* the blob is read to its end, whatever its size */
    if (s_open_pinned(s, req, &blob, what, &fd, &size, err) != 0) return -1;
    sniff_job_t *j = aligned_alloc(alignof(sniff_job_t), sizeof(sniff_job_t));
    unsigned char *buf = malloc(SNIFF_READ);
    cairn_csv_sniff_t *sn = cairn_csv_sniff_new(err);
    if (!j || !buf || !sn) {
        free(j);
        free(buf);
        cairn_csv_sniff_destroy(&sn);
        close(fd);
        return cairn_err_oom(err, "for a sniff");
    }
    memset(j, 0, sizeof *j);
    j->s = s;
    j->req = req;
    j->sn = sn;
    j->fd = fd;
    j->buf = buf;
    j->blob = blob;
    memcpy(j->what, what, sizeof j->what);
    cairn_chash_init(&j->st, blob.alg);
    j->next = a->sniffs;
    a->sniffs = j;
    a->nsniffs++;
    cairn_defer(req);
    s_sniff_step(j);
    return 0;
}

/* ---- materialize_pinned ----------------------------------------------------- */

/* Prefix err's sentence with "files[i]: ", keeping its status. */
static int s_err_at(cairn_err_t *err, size_t i)
{
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    char code[sizeof err->code];
    snprintf(code, sizeof code, "%s", err->code);
    return cairn_err_set(err, err->st, code, "files[%zu]: %s", i, msg);
}

/* A view's path: ROOT/views/<hex of sha256(ws NUL owner)>. */
static char *s_view_path(storage_t *s, const char *ws, cairn_str_t owner)
{
    cairn_sha256_t st;
    cairn_sha256_init(&st);
    const char *w = ws && *ws ? ws : "default";
    cairn_sha256_update(&st, w, strlen(w) + 1);
    cairn_sha256_update(&st, owner.ptr, owner.len);
    unsigned char d[CAIRN_SHA256_BYTES];
    cairn_sha256_final(&st, d);
    char hex[2 * CAIRN_SHA256_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    char *p = NULL;
    if (asprintf(&p, "%s/views/%s", s->artifact_root, hex) < 0) return NULL;
    return p;
}

/* A file's path in a view: relative, no empty, '.' or '..' segment, no
 * control character (NUL included), valid UTF-8 (upmeta_path_norm). */
static int s_field_view_path(const msgpack_object *o, cairn_str_t *out,
                             cairn_err_t *err)
{
    cairn_str_t p;
    char norm[ART_PATH_MAX + 1];
    if (cairn_field_str(o, "path", true, ART_PATH_MAX, &p, err) != 0) return -1;
    *out = p;
    if (!p.len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'path' must not be empty");
    if (p.ptr[0] == '/')
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'path' must be relative (no leading '/')");
    for (size_t i = 0, seg = 0; i <= p.len; i++) {
        if (i < p.len && p.ptr[i] != '/') continue;
        size_t n = i - seg;
        const char *at = p.ptr + seg;
        if (n == 0 || (n == 1 && at[0] == '.'))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "the field 'path' must not have an empty or '.' "
                                 "segment");
        if (n == 2 && at[0] == '.' && at[1] == '.')
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "the field 'path' must not have a '..' segment");
        seg = i + 1;
    }
    size_t n = 0;
    switch (upmeta_path_norm(p.ptr, p.len, norm, &n)) {
        case UPMETA_PATH_OK:
            break;
        case UPMETA_PATH_UTF8:
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "the field 'path' must be valid UTF-8");
        default:
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "the field 'path' must not contain control characters "
                                 "(NUL among them)");
    }
    return n == p.len ? 0
                      : cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                      "the field 'path' is not a plain relative path");
}

static int s_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)f;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int s_chmod_rw(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)f;
    if (flag == FTW_D || flag == FTW_DNR) chmod(path, 0700);
    (void)sb;
    return 0;
}

static int s_chmod_ro(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)f;
    return flag == FTW_DP && chmod(path, 0500) != 0 ? -1 : 0;
}

/* Remove a view (or a half-built one): its directories are made writable
 * first (top down), then everything goes (bottom up). */
static void s_rm_tree(const char *dir)
{
    chmod(dir, 0700);
    nftw(dir, s_chmod_rw, 16, FTW_PHYS);
    nftw(dir, s_rm_entry, 16, FTW_PHYS | FTW_DEPTH);
}

/* Make the directories above rel (a file's path) under root. */
static int s_mkdirs(const char *root, const char *rel, cairn_err_t *err)
{
    char buf[PATH_MAX];
    int n = snprintf(buf, sizeof buf, "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof buf)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the path '%s' is too long for this filesystem", rel);
    for (char *p = buf + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        int rc = mkdir(buf, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST) {
            if (errno == ENOTDIR)
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                     "the path '%s' is under a file of the view", rel);
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                                 "cannot make a directory for '%s': %s", rel,
                                 strerror(errno));
        }
    }
    return 0;
}

/* Copy the blob at src to dst (0400), where a hard link cannot be made. */
static int s_copy(const char *src, const char *dst, const char *rel, cairn_err_t *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = in < 0 || out < 0 ? -1 : 0;
    char buf[1u << 16];
    while (rc == 0) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        for (ssize_t w = 0; rc == 0 && w < n;) {
            ssize_t k = write(out, buf + w, (size_t)(n - w));
            if (k < 0 && errno != EINTR) rc = -1;
            if (k > 0) w += k;
        }
    }
    if (rc == 0 && fchmod(out, 0400) != 0) rc = -1;
    int e = errno;
    if (in >= 0) close(in);
    if (out >= 0 && close(out) != 0 && rc == 0) rc = -1;
    if (rc != 0 && e == EEXIST)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "two files of the view are at '%s'", rel);
    if (rc != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "cannot copy a blob to '%s' in the view: %s", rel,
                             strerror(e));
    return 0;
}

typedef struct vfile {
    cairn_str_t path; /* in the request's body */
    art_blob_t blob;
} vfile_t;

/* Place every file in the temp directory tmp. */
static int s_build(storage_t *s, const char *tmp, const vfile_t *f, size_t n,
                   cairn_err_t *err)
{
    char src[PATH_MAX], dst[PATH_MAX], rel[ART_PATH_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        memcpy(rel, f[i].path.ptr, f[i].path.len);
        rel[f[i].path.len] = '\0';
        if (s_mkdirs(tmp, rel, err) != 0) return s_err_at(err, i);
        if (cas_blob_path(s->art->cas, f[i].blob.alg, f[i].blob.hex, src, sizeof src) !=
            0)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                                 "the blob path of files[%zu] does not fit", i);
        snprintf(dst, sizeof dst, "%s/%s", tmp, rel); /* fits: s_mkdirs checked */
        if (link(src, dst) == 0) continue;
        int e = errno;
        struct stat st;
        if (e == EEXIST && lstat(dst, &st) == 0 && S_ISDIR(st.st_mode))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "files[%zu]: '%s' is a directory of another file", i,
                                 rel);
        if (e == EEXIST)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "files[%zu]: two files of the view are at '%s'", i,
                                 rel);
        if (e == ENOTDIR)
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "files[%zu]: the path '%s' is under a file of the view", i, rel);
        if (e == ENOENT)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                                 "files[%zu]: the pinned blob %s is missing", i,
                                 f[i].blob.hex);
        if (s_copy(src, dst, rel, err) != 0) return s_err_at(err, i);
    }
    /* A file may not be another's directory: link refuses a path that
     * exists (EEXIST) or runs through a file (ENOTDIR). */
    return nftw(tmp, s_chmod_ro, 16, FTW_PHYS | FTW_DEPTH) == 0
               ? 0
               : cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                               "cannot make the view read-only: %s", strerror(errno));
}

/* The files* of the body, validated and checked to be pinned. */
static int s_files(storage_t *s, cairn_req_t *req, cairn_str_t key, cairn_str_t owner,
                   vfile_t **out, size_t *nout, cairn_err_t *err)
{
    const msgpack_object *arr;
    if (cairn_field_array(cairn_body(req), "files", true, &arr, err) != 0) return -1;
    size_t n = arr->via.array.size;
    if (!n)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'files' must not be empty");
    if (n > VIEW_FILES_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'files' holds at most %d files",
                             VIEW_FILES_MAX);
    vfile_t *f = malloc(n * sizeof *f);
    if (!f) return cairn_err_oom(err, "for a view's files");
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_MAP) {
            free(f);
            cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                          "a file must be a map {path, hash, hash_alg}");
            return storage_err_at(err, "files", i);
        }
        if (s_field_view_path(o, &f[i].path, err) != 0 ||
            s_field_blob(o, &f[i].blob, err) != 0) {
            free(f);
            return storage_err_at(err, "files", i);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (s_pinned(s->art, key, owner, &f[i].blob, err) != 0) {
            free(f);
            return s_err_at(err, i);
        }
    }
    *out = f;
    *nout = n;
    return 0;
}

static int s_reply_path(storage_t *s, cairn_req_t *req, const char *path)
{
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_text(pk, "path", path);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

int art_materialize_pinned(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    char key[PIN_KEY_MAX + 1];
    cairn_str_t owner, raw;
    vfile_t *f = NULL;
    size_t n = 0;
    if (art_pin_owner(req, key, &owner, &raw, err) != 0 ||
        s_files(s, req, owner, raw, &f, &n, err) != 0)
        return -1;
    char *view = s_view_path(s, cairn_workspace(req), raw);
    char *views = NULL, *tmp = NULL;
    if (!view || asprintf(&views, "%s/views", s->artifact_root) < 0) views = NULL;
    int rc = view && views ? 0 : cairn_err_oom(err, "for a view's path");
    struct stat st;
    if (rc == 0 && stat(view, &st) == 0 && S_ISDIR(st.st_mode)) {
        free(f);
        free(views);
        rc = s_reply_path(s, req, view);
        free(view);
        return rc;
    }
    if (rc == 0 && mkdir(views, 0700) != 0 && errno != EEXIST)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                           "cannot make %s: %s", views, strerror(errno));
    uint32_t r = randombytes_random();
    if (rc == 0 &&
        asprintf(&tmp, "%s/.tmp-%s-%08x", views, strrchr(view, '/') + 1, r) < 0)
        tmp = NULL, rc = cairn_err_oom(err, "for a view's path");
    if (rc == 0 && mkdir(tmp, 0700) != 0)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                           "cannot make %s: %s", tmp, strerror(errno));
    else if (rc == 0) {
        rc = s_build(s, tmp, f, n, err);
        /* rename refuses an existing non-empty directory: another request
         * built the same view first, and that one is answered */
        if (rc == 0 && rename(tmp, view) != 0) {
            if (errno != EEXIST && errno != ENOTEMPTY)
                rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                                   "cannot move the view into place: %s",
                                   strerror(errno));
            s_rm_tree(tmp);
        } else if (rc != 0) {
            s_rm_tree(tmp);
        }
    }
    free(f);
    free(tmp);
    free(views);
    if (rc == 0) rc = s_reply_path(s, req, view);
    free(view);
    return rc;
}

void art_view_drop(storage_t *s, const char *ws, cairn_str_t owner)
{
    char *view = s_view_path(s, ws, owner), *trash = NULL;
    if (!view) return;
    /* Out of the way first (one rename), then removed. */
    if (asprintf(&trash, "%s.drop-%08x", view, randombytes_random()) >= 0 &&
        rename(view, trash) == 0)
        s_rm_tree(trash);
    free(trash);
    free(view);
}

int art_views_sweep(storage_t *s, uint64_t older_than_s)
{
    char views[PATH_MAX];
    if ((size_t)snprintf(views, sizeof views, "%s/views", s->artifact_root) >=
        sizeof views)
        return 0;
    DIR *d = opendir(views);
    if (!d) return 0;
    time_t now = time(NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* .tmp-*: a build a crash cut short (or another instance's, in
         * progress: only old ones go); *.drop-*: a view on its way out
         * (whoever renamed it may have died before removing it). */
        bool building = !strncmp(e->d_name, ".tmp-", 5);
        bool dropped = strstr(e->d_name, ".drop-") != NULL;
        if (!building && !dropped) continue;
        char path[PATH_MAX];
        struct stat st;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", views, e->d_name) >=
                sizeof path ||
            lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (building && now - st.st_mtime < (time_t)older_than_s) continue;
        s_rm_tree(path);
        n++;
    }
    closedir(d);
    return n;
}
