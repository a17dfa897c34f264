/* The content-addressed blob store (see cas.h). */
#define _GNU_SOURCE
#include "cas.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <sodium.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CAS_IO_MAX (1u << 30) /* largest single read or write submitted */
#define CAS_VERIFY_BUF (1u << 20)

struct cas {
    char *root;
    bool uring;
    struct io_uring ring;
    char reason[160];
};

struct cas_writer {
    crypto_generichash_state st; /* 64-byte aligned: see s_writer_alloc */
    cas_t *cas;
    int fd;
    uint64_t size;
    uint64_t kicked; /* writeback started for [0, kicked) */
    uint64_t waited; /* and completed for [0, waited) */
    char name[CAS_NAME_MAX + 1];
    char path[PATH_MAX];
};

/* ---- helpers ---------------------------------------------------------- */

static int s_errno(cairn_err_t *err, int e, const char *what, const char *path)
{
    return cairn_err_set(
        err, 500, e == ENOSPC || e == EDQUOT ? "storage_full" : "storage_error",
        "the artifact store failed to %s %s: %s", what, path, strerror(e));
}

/* mkdir -p; 0 when the directory exists afterwards. */
static int s_mkdirs(const char *path, cairn_err_t *err)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return cairn_err_set(err, 500, "storage_error",
                             "the artifact root '%s' is not usable", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return s_errno(err, errno, "create", buf);
        buf[i] = c;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cairn_err_set(err, 500, "storage_error", "'%s' is not a directory",
                             path);
    return 0;
}

static int s_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void s_hex(const unsigned char h[CAS_HASH_BYTES], char hex[CAS_HEX_LEN + 1])
{
    sodium_bin2hex(hex, CAS_HEX_LEN + 1, h, CAS_HASH_BYTES);
}

void cas_hash_buf(const void *buf, size_t len, char hex[CAS_HEX_LEN + 1])
{
    unsigned char h[CAS_HASH_BYTES];
    crypto_generichash(h, sizeof h, buf, len, NULL, 0);
    s_hex(h, hex);
}

bool cas_hex_valid(const char *hex, size_t len)
{
    if (!hex || len != CAS_HEX_LEN) return false;
    for (size_t i = 0; i < len; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return false;
    return true;
}

static bool s_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > CAS_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* ---- the store ---------------------------------------------------------- */

cas_t *cas_open(const char *root, bool try_uring, cairn_err_t *err)
{
    char sub[PATH_MAX];
    if (sodium_init() < 0) {
        cairn_err_set(err, 500, NULL, "libsodium failed to initialise");
        return NULL;
    }
    if (!root || !*root || strlen(root) > PATH_MAX - 128) {
        cairn_err_set(err, 500, "storage_error", "the artifact root '%s' is not usable",
                      root ? root : "");
        return NULL;
    }
    if (s_mkdirs(root, err) != 0) return NULL;
    snprintf(sub, sizeof sub, "%s/cas", root);
    if (s_mkdirs(sub, err) != 0) return NULL;
    snprintf(sub, sizeof sub, "%s/tmp", root);
    if (s_mkdirs(sub, err) != 0) return NULL;
    cas_t *c = calloc(1, sizeof *c);
    if (!c || !(c->root = strdup(root))) {
        free(c);
        cairn_err_set(err, 500, NULL, "out of memory");
        return NULL;
    }
    if (try_uring) {
        int rc = io_uring_queue_init(8, &c->ring, 0);
        if (rc == 0)
            c->uring = true;
        else
            snprintf(c->reason, sizeof c->reason, "io_uring_queue_init failed: %s",
                     strerror(-rc));
    } else {
        snprintf(c->reason, sizeof c->reason, "io_uring not requested");
    }
    return c;
}

void cas_destroy(cas_t **self_p)
{
    if (!self_p || !*self_p) return;
    cas_t *c = *self_p;
    if (c->uring) io_uring_queue_exit(&c->ring);
    free(c->root);
    free(c);
    *self_p = NULL;
}

const char *cas_io_mode(const cas_t *c)
{
    return c->uring ? "io_uring" : "pread/pwrite";
}

const char *cas_io_reason(const cas_t *c)
{
    return c->uring ? "" : c->reason;
}

const char *cas_root(const cas_t *c)
{
    return c->root;
}

int cas_blob_path(const cas_t *c, const char *hex, char *out, size_t cap)
{
    if (!hex || !cas_hex_valid(hex, strlen(hex))) return -1;
    int n = snprintf(out, cap, "%s/cas/%.2s/%s", c->root, hex, hex + 2);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int cas_remove(cas_t *c, const char *hex, uint64_t *freed, cairn_err_t *err)
{
    char path[PATH_MAX];
    struct stat stt;
    *freed = 0;
    if (cas_blob_path(c, hex, path, sizeof path) != 0)
        return cairn_err_set(err, 500, NULL, "not a blob name: '%.80s'", hex);
    if (stat(path, &stt) == 0) *freed = (uint64_t)stt.st_size;
    if (unlink(path) != 0 && errno != ENOENT) {
        *freed = 0;
        return cairn_err_set(err, 500, NULL, "cannot remove %s: %s", path,
                             strerror(errno));
    }
    return 0;
}

/* ---- raw I/O ------------------------------------------------------------- */

/* One io_uring read or write; returns bytes or -errno. Between submit and
 * reap it runs overlap(arg) (hashing the chunk being written). */
static long s_uring_io(cas_t *c, bool write, int fd, void *buf, size_t len,
                       uint64_t off, void (*overlap)(void *), void *arg)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
    if (!sqe) return -EBUSY;
    if (write)
        io_uring_prep_write(sqe, fd, buf, (unsigned)len, off);
    else
        io_uring_prep_read(sqe, fd, buf, (unsigned)len, off);
    int rc;
    do rc = io_uring_submit(&c->ring);
    while (rc == -EINTR);
    if (rc < 0) return rc;
    if (overlap) overlap(arg);
    struct io_uring_cqe *cqe;
    do rc = io_uring_wait_cqe(&c->ring, &cqe);
    while (rc == -EINTR);
    if (rc < 0) return rc;
    long res = cqe->res;
    io_uring_cqe_seen(&c->ring, cqe);
    return res;
}

typedef struct hash_job {
    crypto_generichash_state *st;
    const void *buf;
    size_t len;
    bool done;
} hash_job_t;

static void s_hash_job(void *arg)
{
    hash_job_t *j = arg;
    if (j->done) return;
    crypto_generichash_update(j->st, j->buf, j->len);
    j->done = true;
}

/* Write all of buf at off, hashing it into st (overlapped with the first
 * write when io_uring is in use). */
static int s_write_hashed(cas_t *c, int fd, const unsigned char *buf, size_t len,
                          uint64_t off, crypto_generichash_state *st, const char *path,
                          cairn_err_t *err)
{
    hash_job_t job = {st, buf, len, false};
    size_t done = 0;
    while (done < len) {
        size_t n = len - done > CAS_IO_MAX ? CAS_IO_MAX : len - done;
        long r;
        if (c->uring) {
            r = s_uring_io(c, true, fd, (void *)(buf + done), n, off + done, s_hash_job,
                           &job);
            if (r == -EAGAIN || r == -EINTR) continue;
            if (r == -EBUSY) r = -EAGAIN; /* no sqe: cannot happen with one in flight */
        } else {
            s_hash_job(&job);
            r = pwrite(fd, buf + done, n, (off_t)(off + done));
            if (r < 0) {
                if (errno == EINTR) continue;
                r = -errno;
            }
        }
        if (r < 0) return s_errno(err, (int)-r, "write", path);
        if (r == 0) return s_errno(err, EIO, "write", path);
        done += (size_t)r;
    }
    s_hash_job(&job); /* len == 0 */
    return 0;
}

int cas_pread(cas_t *c, int fd, void *buf, size_t len, uint64_t off, size_t *got,
              cairn_err_t *err)
{
    size_t done = 0;
    while (done < len) {
        size_t n = len - done > CAS_IO_MAX ? CAS_IO_MAX : len - done;
        long r;
        if (c->uring) {
            r = s_uring_io(c, false, fd, (unsigned char *)buf + done, n, off + done,
                           NULL, NULL);
            if (r == -EAGAIN || r == -EINTR) continue;
        } else {
            r = pread(fd, (unsigned char *)buf + done, n, (off_t)(off + done));
            if (r < 0) {
                if (errno == EINTR) continue;
                r = -errno;
            }
        }
        if (r < 0) return s_errno(err, (int)-r, "read", "a blob");
        if (r == 0) break; /* end of file */
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

/* ---- writers ---------------------------------------------------------- */

cas_writer_t *cas_writer_new(cas_t *c, const char *name, cairn_err_t *err)
{
    if (!s_name_valid(name)) {
        cairn_err_set(err, 400, "bad_request",
                      "a temp blob name is 1 to %d of [A-Za-z0-9_-]", CAS_NAME_MAX);
        return NULL;
    }
    cas_writer_t *w = aligned_alloc(alignof(cas_writer_t), sizeof(cas_writer_t));
    if (!w) {
        cairn_err_set(err, 500, NULL, "out of memory");
        return NULL;
    }
    memset(w, 0, sizeof *w);
    w->cas = c;
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(w->path, sizeof w->path, "%s/tmp/%s", c->root, name);
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        int e = errno;
        if (e == EEXIST)
            cairn_err_set(err, 409, "conflict", "the temp blob '%s' is in use", name);
        else
            s_errno(err, e, "create", w->path);
        free(w);
        return NULL;
    }
    crypto_generichash_init(&w->st, NULL, 0, CAS_HASH_BYTES);
    return w;
}

/* Keep an upload's dirty pages bounded: wait for the writeback started
 * after the previous write, then start it for this one. Without this a
 * multi-GiB upload piles up gigabytes of dirty page cache, and commit's
 * fsync would stall the plugin's loop (and its heartbeats) for as long as
 * the disk needs to write them; with it, commit flushes one chunk at most,
 * and the upload runs at the disk's pace. Best effort: fsync at commit is
 * what makes the blob durable. */
static void s_writeback(cas_writer_t *w)
{
    if (w->kicked > w->waited)
        sync_file_range(w->fd, (off_t)w->waited, (off_t)(w->kicked - w->waited),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
    w->waited = w->kicked;
    if (w->size > w->kicked)
        sync_file_range(w->fd, (off_t)w->kicked, (off_t)(w->size - w->kicked),
                        SYNC_FILE_RANGE_WRITE);
    w->kicked = w->size;
}

int cas_writer_write(cas_writer_t *w, const void *buf, size_t len, cairn_err_t *err)
{
    if (s_write_hashed(w->cas, w->fd, buf, len, w->size, &w->st, w->path, err) != 0)
        return -1;
    w->size += len;
    if (len) s_writeback(w);
    return 0;
}

uint64_t cas_writer_size(const cas_writer_t *w)
{
    return w->size;
}

void cas_writer_abort(cas_writer_t **w_p)
{
    if (!w_p || !*w_p) return;
    cas_writer_t *w = *w_p;
    if (w->fd >= 0) close(w->fd);
    unlink(w->path);
    free(w);
    *w_p = NULL;
}

int cas_writer_commit(cas_writer_t **w_p, char hex[CAS_HEX_LEN + 1], uint64_t *size,
                      bool *dedup, cairn_err_t *err)
{
    cas_writer_t *w = *w_p;
    cas_t *c = w->cas;
    unsigned char h[CAS_HASH_BYTES];
    char dir[PATH_MAX], blob[PATH_MAX];
    crypto_generichash_final(&w->st, h, sizeof h);
    s_hex(h, hex);
    if (size) *size = w->size;
    if (dedup) *dedup = false;
    snprintf(dir, sizeof dir, "%s/cas/%.2s", c->root, hex);
    snprintf(blob, sizeof blob, "%s/%s", dir, hex + 2);
    /* Same bytes stored before: keep that blob, drop ours. A blob of
     * another size under this name is damaged: ours replaces it. */
    struct stat sb;
    if (stat(blob, &sb) == 0 && S_ISREG(sb.st_mode) &&
        (uint64_t)sb.st_size == w->size) {
        if (dedup) *dedup = true;
        cas_writer_abort(w_p);
        return 0;
    }
    if (fchmod(w->fd, 0444) != 0 || fsync(w->fd) != 0) {
        s_errno(err, errno, "flush", w->path);
        cas_writer_abort(w_p);
        return -1;
    }
    bool new_dir = mkdir(dir, 0700) == 0;
    if (!new_dir && errno != EEXIST) {
        s_errno(err, errno, "create", dir);
        cas_writer_abort(w_p);
        return -1;
    }
    if (new_dir) {
        char casdir[PATH_MAX];
        snprintf(casdir, sizeof casdir, "%s/cas", c->root);
        s_fsync_dir(casdir);
    }
    if (rename(w->path, blob) != 0) {
        s_errno(err, errno, "move a blob into", blob);
        cas_writer_abort(w_p);
        return -1;
    }
    if (s_fsync_dir(dir) != 0) {
        s_errno(err, errno, "flush", dir);
        close(w->fd);
        free(w);
        *w_p = NULL;
        return -1;
    }
    close(w->fd);
    free(w);
    *w_p = NULL;
    return 0;
}

int cas_put(cas_t *c, const char *name, const void *buf, size_t len,
            char hex[CAS_HEX_LEN + 1], bool *dedup, cairn_err_t *err)
{
    cas_writer_t *w = cas_writer_new(c, name, err);
    if (!w) return -1;
    if (cas_writer_write(w, buf, len, err) != 0) {
        cas_writer_abort(&w);
        return -1;
    }
    return cas_writer_commit(&w, hex, NULL, dedup, err);
}

int cas_sweep_tmp(cas_t *c, uint64_t older_than_s)
{
    char dir[PATH_MAX], path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tmp", c->root);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path)
            continue;
        struct stat sb;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (older_than_s && (uint64_t)(now - sb.st_mtime) < older_than_s) continue;
        if (unlink(path) == 0) n++;
    }
    closedir(d);
    return n;
}

/* ---- reading ------------------------------------------------------------- */

int cas_open_blob(cas_t *c, const char *hex, int *fd, uint64_t *size, cairn_err_t *err)
{
    char path[PATH_MAX];
    if (cas_blob_path(c, hex, path, sizeof path) != 0)
        return cairn_err_set(err, 500, "corrupt", "'%.80s' is not a blob hash",
                             hex ? hex : "");
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT)
            return cairn_err_set(err, 404, "not_found", "the blob %s is missing", hex);
        return s_errno(err, errno, "open", path);
    }
    struct stat sb;
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(*fd);
        *fd = -1;
        return cairn_err_set(err, 500, "corrupt", "the blob %s is not a regular file",
                             hex);
    }
    *size = (uint64_t)sb.st_size;
    return 0;
}

int cas_verify(cas_t *c, const char *hex, bool *ok, char actual[CAS_HEX_LEN + 1],
               cairn_err_t *err)
{
    int fd;
    uint64_t size, off = 0;
    if (cas_open_blob(c, hex, &fd, &size, err) != 0) return -1;
    unsigned char *buf = malloc(CAS_VERIFY_BUF);
    if (!buf) {
        close(fd);
        return cairn_err_set(err, 500, NULL, "out of memory");
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, CAS_HASH_BYTES);
    int rc = 0;
    for (;;) {
        size_t got = 0;
        if ((rc = cas_pread(c, fd, buf, CAS_VERIFY_BUF, off, &got, err)) != 0) break;
        if (got == 0) break;
        crypto_generichash_update(&st, buf, got);
        off += got;
    }
    free(buf);
    close(fd);
    if (rc != 0) return -1;
    unsigned char h[CAS_HASH_BYTES];
    char hx[CAS_HEX_LEN + 1];
    crypto_generichash_final(&st, h, sizeof h);
    s_hex(h, hx);
    *ok = strcmp(hx, hex) == 0;
    if (actual) memcpy(actual, hx, sizeof hx);
    return 0;
}
