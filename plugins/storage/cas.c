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
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dio_buf.h"

#define CAS_IO_MAX (1u << 30) /* largest single read or write submitted */
#define CAS_VERIFY_BUF (1u << 20)
#define CAS_META_SUFFIX ".meta" /* '.' never occurs in a temp name */
/* O_DIRECT wants the buffer, the offset and the length aligned to the
 * device's logical block (512 or 4096 bytes): 4096 suits both. */
#define CAS_ALIGN 4096u
/* A writer goes direct from its first write of at least this much: a
 * small blob is cheaper through the page cache than with a staging buffer. */
#define CAS_DIRECT_MIN (1u << 20)

struct cas {
    char *root;
    bool uring;
    bool no_direct; /* O_DIRECT refused here (EINVAL) or turned off */
    struct io_uring ring;
    char reason[160];
};

struct cas_writer {
    cairn_chash_t st; /* 64-byte aligned: see s_writer_alloc */
    cas_t *cas;
    int fd;
    /* Direct writes (s_direct_start): the same file opened O_DIRECT, and a
     * CAS_ALIGN-aligned staging buffer holding the bytes [stage_off, size),
     * stage_off aligned and size - stage_off < CAS_ALIGN between writes. */
    int dfd;
    bool direct;          /* dfd takes the whole blocks (else fd: a fallback) */
    unsigned char *stage; /* NULL: every write is buffered through fd */
    size_t stage_cap;
    uint64_t stage_off;
    uint64_t size;
    uint64_t kicked;     /* writeback started for [0, kicked) */
    uint64_t waited;     /* and completed for [0, waited) */
    uint64_t hashed;     /* resumed: [0, hashed) rehashed so far (== size when ready) */
    unsigned char *rbuf; /* resumed: the rehash buffer, until it is done */
    bool meta;           /* a sidecar may exist: commit and abort remove it */
    bool keep_meta;      /* ... unless the owner removes it (cas_writer_keep_meta) */
    bool digested;       /* cas_writer_digest ran: no more writes; commit uses it */
    unsigned char digest[CAS_HASH_BYTES];
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
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
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
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "'%s' is not a directory", path);
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

/* Where the blobs of alg live, under the root. */
static const char *s_alg_dir(cairn_chash_alg_t alg)
{
    return alg == CAIRN_CHASH_SHA256 ? "sha256" : "cas";
}

void cas_hash_buf(cairn_chash_alg_t alg, const void *buf, size_t len,
                  char hex[CAS_HEX_LEN + 1])
{
    cairn_chash_t h;
    cairn_chash_init(&h, alg);
    cairn_chash_update(&h, buf, len);
    cairn_chash_hex(&h, hex);
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

/* A time as milliseconds since the epoch. */
static int64_t s_ms(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

/* ---- the store ---------------------------------------------------------- */

cas_t *cas_open(const char *root, bool try_uring, cairn_err_t *err)
{
    char sub[PATH_MAX];
    if (sodium_init() < 0) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "libsodium failed to initialise");
        return NULL;
    }
    if (!root || !*root || strlen(root) > PATH_MAX - 128) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                      "the artifact root '%s' is not usable", root ? root : "");
        return NULL;
    }
    if (s_mkdirs(root, err) != 0) return NULL;
    snprintf(sub, sizeof sub, "%s/cas", root);
    if (s_mkdirs(sub, err) != 0) return NULL;
    snprintf(sub, sizeof sub, "%s/%s", root, s_alg_dir(CAS_ALG_NEW));
    if (s_mkdirs(sub, err) != 0) return NULL;
    snprintf(sub, sizeof sub, "%s/tmp", root);
    if (s_mkdirs(sub, err) != 0) return NULL;
    cas_t *c = calloc(1, sizeof *c);
    if (!c || !(c->root = strdup(root))) {
        free(c);
        cairn_err_oom(err, NULL);
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

void cas_set_direct(cas_t *c, bool on)
{
    c->no_direct = !on;
}

int cas_blob_path(const cas_t *c, cairn_chash_alg_t alg, const char *hex, char *out,
                  size_t cap)
{
    if (!hex || !cas_hex_valid(hex, strlen(hex))) return -1;
    int n = snprintf(out, cap, "%s/%s/%.2s/%s", c->root, s_alg_dir(alg), hex, hex + 2);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int cas_remove(cas_t *c, cairn_chash_alg_t alg, const char *hex, uint64_t *freed,
               cairn_err_t *err)
{
    char path[PATH_MAX];
    struct stat stt;
    *freed = 0;
    if (cas_blob_path(c, alg, hex, path, sizeof path) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "not a blob name: '%.80s'",
                             hex);
    if (stat(path, &stt) == 0) *freed = (uint64_t)stt.st_size;
    if (unlink(path) != 0 && errno != ENOENT) {
        *freed = 0;
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "cannot remove %s: %s", path,
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
    cairn_chash_t *st;
    const void *buf;
    size_t len;
    bool done;
} hash_job_t;

static void s_hash_job(void *arg)
{
    hash_job_t *j = arg;
    if (j->done) return;
    cairn_chash_update(j->st, j->buf, j->len);
    j->done = true;
}

/* Write all of buf at off through fd, running job (hashing) during the
 * first write when io_uring is in use; 0 or -errno. */
static long s_write_job(cas_t *c, int fd, const unsigned char *buf, size_t len,
                        uint64_t off, hash_job_t *job)
{
    size_t done = 0;
    while (done < len) {
        size_t n = len - done > CAS_IO_MAX ? CAS_IO_MAX : len - done;
        long r;
        if (c->uring) {
            r = s_uring_io(c, true, fd, (void *)(buf + done), n, off + done, s_hash_job,
                           job);
            if (r == -EAGAIN || r == -EINTR) continue;
            if (r == -EBUSY) r = -EAGAIN; /* no sqe: cannot happen with one in flight */
        } else {
            s_hash_job(job);
            r = pwrite(fd, buf + done, n, (off_t)(off + done));
            if (r < 0) {
                if (errno == EINTR) continue;
                r = -errno;
            }
        }
        if (r < 0) return r;
        if (r == 0) return -EIO;
        done += (size_t)r;
    }
    return 0;
}

/* Write all of buf at off, hashing it into st (overlapped with the first
 * write when io_uring is in use). */
static int s_write_hashed(cas_t *c, int fd, const unsigned char *buf, size_t len,
                          uint64_t off, cairn_chash_t *st, const char *path,
                          cairn_err_t *err)
{
    hash_job_t job = {st, buf, len, false};
    long r = s_write_job(c, fd, buf, len, off, &job);
    if (r < 0) return s_errno(err, (int)-r, "write", path);
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

/* A zeroed writer for ROOT/tmp/<name> (no file opened yet; fd -1), its
 * hash state 64-byte aligned as libsodium wants. */
static cas_writer_t *s_writer_alloc(cas_t *c, const char *name, cairn_err_t *err)
{
    if (!s_name_valid(name)) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "a temp blob name is 1 to %d of [A-Za-z0-9_-]", CAS_NAME_MAX);
        return NULL;
    }
    cas_writer_t *w = aligned_alloc(alignof(cas_writer_t), sizeof(cas_writer_t));
    if (!w) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    memset(w, 0, sizeof *w);
    w->cas = c;
    w->fd = w->dfd = -1;
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(w->path, sizeof w->path, "%s/tmp/%s", c->root, name);
    return w;
}

cas_writer_t *cas_writer_new(cas_t *c, const char *name, cairn_err_t *err)
{
    cas_writer_t *w = s_writer_alloc(c, name, err);
    if (!w) return NULL;
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        int e = errno;
        if (e == EEXIST)
            cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                          "the temp blob '%s' is in use", name);
        else
            s_errno(err, e, "create", w->path);
        free(w);
        return NULL;
    }
    /* Held for the writer's life: the sweep and cas_writer_resume leave a
     * locked file alone. Best effort (a filesystem without flock). */
    (void)flock(w->fd, LOCK_EX | LOCK_NB);
    cairn_chash_init(&w->st, CAS_ALG_NEW);
    return w;
}

/* ROOT/tmp/<name>.meta into out. */
static void s_meta_path(const cas_t *c, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/tmp/%s" CAS_META_SUFFIX, c->root, name);
}

/* Close a writer and free it; with drop, remove its temp file and its
 * sidecar first. */
static void s_writer_free(cas_writer_t *w, bool drop)
{
    if (drop) {
        unlink(w->path);
        if (w->meta && !w->keep_meta) {
            char meta[PATH_MAX];
            s_meta_path(w->cas, w->name, meta, sizeof meta);
            unlink(meta);
        }
    }
    if (w->fd >= 0) close(w->fd);
    if (w->dfd >= 0) close(w->dfd);
    cairn_dio_buf_free(w->stage, w->stage_cap);
    free(w->rbuf);
    free(w);
}

static int s_write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len) {
        ssize_t r = write(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? -1 : (errno = EIO, -1);
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int cas_writer_set_meta(cas_writer_t *w, const void *meta, size_t len, bool sync,
                        cairn_err_t *err)
{
    char path[PATH_MAX], dir[PATH_MAX];
    if (len > CAS_META_MAX)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "a sidecar holds at most %d bytes, not %zu", CAS_META_MAX,
                             len);
    s_meta_path(w->cas, w->name, path, sizeof path);
    w->meta = true;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return s_errno(err, errno, "create", path);
    if (s_write_all(fd, meta, len) != 0 || (sync && fsync(fd) != 0)) {
        int e = errno;
        close(fd);
        return s_errno(err, e, "write", path);
    }
    close(fd);
    snprintf(dir, sizeof dir, "%s/tmp", w->cas->root);
    if (sync && s_fsync_dir(dir) != 0) return s_errno(err, errno, "flush", dir);
    return 0;
}

int cas_meta_read(cas_t *c, const char *name, void *buf, size_t cap, size_t *len,
                  int64_t *mtime_ms, cairn_err_t *err)
{
    char path[PATH_MAX];
    *len = 0;
    if (mtime_ms) *mtime_ms = 0;
    if (!s_name_valid(name))
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no temp blob is named '%.80s'", name ? name : "");
    s_meta_path(c, name, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                 "the temp blob '%s' has no sidecar", name);
        return s_errno(err, errno, "open", path);
    }
    size_t got = 0;
    for (;;) {
        if (got == cap) {
            char extra;
            ssize_t r = read(fd, &extra, 1);
            close(fd);
            if (r == 0) break;
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                                 "the sidecar %s is larger than %zu bytes", path, cap);
        }
        ssize_t r = read(fd, (char *)buf + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return s_errno(err, e, "read", path);
        }
        if (r == 0) {
            close(fd);
            break;
        }
        got += (size_t)r;
    }
    *len = got;
    struct stat sb;
    snprintf(path, sizeof path, "%s/tmp/%s", c->root, name);
    if (mtime_ms && stat(path, &sb) == 0) *mtime_ms = s_ms(&sb.st_mtim);
    return 0;
}

/* Remove the temp file at path (and its sidecar) unless a writer holds
 * it; how many files went. */
static int s_tmp_remove(const char *path)
{
    char meta[PATH_MAX];
    int n = 0;
    if ((size_t)snprintf(meta, sizeof meta, "%s" CAS_META_SUFFIX, path) >= sizeof meta)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd >= 0) {
        if (flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
            close(fd); /* a writer holds it */
            return 0;
        }
        if (unlink(path) == 0) n++;
        close(fd);
    } else if (errno != ENOENT) {
        return 0;
    }
    if (unlink(meta) == 0) n++;
    return n;
}

int cas_tmp_remove(cas_t *c, const char *name)
{
    char path[PATH_MAX];
    if (!s_name_valid(name)) return 0;
    snprintf(path, sizeof path, "%s/tmp/%s", c->root, name);
    return s_tmp_remove(path);
}

/* The resumed file is ours, holds at least upto bytes, and is cut to
 * upto. */
static int s_resume_check(cas_writer_t *w, uint64_t upto, uint64_t *have,
                          cairn_err_t *err)
{
    struct stat sb;
    if (flock(w->fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                             "the temp blob '%s' is held by another writer", w->name);
    if (fstat(w->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "the temp blob '%s' is not a regular file", w->name);
    uint64_t size = (uint64_t)sb.st_size;
    if (have) *have = size;
    if (size < upto)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "the temp blob '%s' holds %llu bytes, fewer than %llu",
                             w->name, (unsigned long long)size,
                             (unsigned long long)upto);
    if (size > upto && ftruncate(w->fd, (off_t)upto) != 0)
        return s_errno(err, errno, "truncate", w->path);
    return 0;
}

cas_writer_t *cas_writer_resume(cas_t *c, const char *name, uint64_t upto,
                                uint64_t *have, cairn_err_t *err)
{
    if (have) *have = 0;
    cas_writer_t *w = s_writer_alloc(c, name, err);
    if (!w) return NULL;
    w->meta = true;
    w->fd = open(w->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (w->fd < 0) {
        if (errno == ENOENT)
            cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                          "the temp blob '%s' is missing", name);
        else
            s_errno(err, errno, "open", w->path);
        free(w);
        return NULL;
    }
    if (s_resume_check(w, upto, have, err) != 0) {
        close(w->fd);
        free(w);
        return NULL;
    }
    w->size = w->kicked = w->waited = upto;
    w->hashed = 0;
    /* The rehash starts from the first byte, so a temp file written before
     * SHA-256 becomes a SHA-256 blob too. */
    cairn_chash_init(&w->st, CAS_ALG_NEW);
    return w;
}

int cas_writer_rehash(cas_writer_t *w, uint64_t max, uint64_t *left, cairn_err_t *err)
{
    uint64_t done = 0;
    *left = w->size - w->hashed;
    while (w->hashed < w->size && (max == 0 || done < max)) {
        if (!w->rbuf && !(w->rbuf = malloc(CAS_VERIFY_BUF)))
            return cairn_err_oom(err, NULL);
        uint64_t want = w->size - w->hashed;
        size_t n = want < CAS_VERIFY_BUF ? (size_t)want : CAS_VERIFY_BUF, got = 0;
        if (cas_pread(w->cas, w->fd, w->rbuf, n, w->hashed, &got, err) != 0) return -1;
        if (got != n)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                                 "the temp blob '%s' shrank below %llu bytes while it "
                                 "was being resumed",
                                 w->name, (unsigned long long)w->size);
        cairn_chash_update(&w->st, w->rbuf, got);
        w->hashed += got;
        done += got;
    }
    *left = w->size - w->hashed;
    if (*left == 0) {
        free(w->rbuf);
        w->rbuf = NULL;
    }
    return 0;
}

void cas_writer_release(cas_writer_t **w_p)
{
    if (!w_p || !*w_p) return;
    s_writer_free(*w_p, false);
    *w_p = NULL;
}

int cas_writer_sync(cas_writer_t *w, cairn_err_t *err)
{
    if (fdatasync(w->fd) != 0) return s_errno(err, errno, "flush", w->path);
    return 0;
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

/* A resumed writer takes no write (and no commit) before its rehash. */
static int s_ready(const cas_writer_t *w, cairn_err_t *err)
{
    if (w->hashed == w->size) return 0;
    return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                         "the temp blob '%s' is not rehashed yet (%llu of %llu bytes)",
                         w->name, (unsigned long long)w->hashed,
                         (unsigned long long)w->size);
}

/* ---- direct writes --------------------------------------------------------- */

/* A buffered write copies every byte into the page cache, which costs
 * more CPU than anything but the hash (about 1.3 s per GiB on a small VM;
 * docs/PERFORMANCE.md). A writer whose first write is large (and starts
 * on a block) instead copies what comes into an aligned staging buffer
 * and writes its whole blocks with O_DIRECT, at aligned offsets, through
 * the same io_uring path: the chunk is hashed while the device writes.
 *
 * The unaligned tail (fewer than CAS_ALIGN bytes) stays in the buffer for
 * the next write to complete, and is also written at once, buffered,
 * through fd, so that after every write the file holds every byte written,
 * as before: a chunk that was acknowledged is on file for a resume after
 * kill -9, cas_writer_sync's fdatasync makes it durable, and commit and
 * release need no extra step. (Keeping the tail only in memory until
 * commit would lose acknowledged bytes to a crash; padding it to a block
 * and cutting the file back would leave a padded file between chunks.)
 * The next direct write over that block makes the kernel write back and
 * drop its cached page first: one page per chunk at most, and none when
 * chunks are whole blocks (every chunk of a transfer but its last).
 *
 * O_DIRECT is tried once per store: a filesystem that refuses it (EINVAL,
 * at open or at the first write) leaves every writer buffered. */

/* Go direct, from this write (len bytes) on, where the store allows it. */
static void s_direct_start(cas_writer_t *w, size_t len)
{
    cas_t *c = w->cas;
    if (c->no_direct || w->stage || len < CAS_DIRECT_MIN || w->size % CAS_ALIGN) return;
    /* Sized for one write like this one and the tail before it, so that
     * each chunk of an upload is one direct write; at most CAS_STAGE_MAX
     * (larger writes go in pieces). */
    size_t cap = (len + 2 * CAS_ALIGN - 1) / CAS_ALIGN * CAS_ALIGN;
    if (cap > CAS_STAGE_MAX) cap = CAS_STAGE_MAX;
    int dfd = open(w->path, O_WRONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW);
    if (dfd < 0) {
        if (errno == EINVAL) c->no_direct = true; /* tmpfs before 6.6, ... */
        return;                                   /* buffered, as before */
    }
    /* On huge pages where it can be: a 4 MiB chunk leaves as one request
     * rather than four or more (dio_buf.h). */
    void *stage = cairn_dio_buf_alloc(cap);
    if (!stage) {
        close(dfd);
        return;
    }
    w->dfd = dfd;
    w->direct = true;
    w->stage = stage;
    w->stage_cap = cap;
    w->stage_off = w->size;
}

/* Write the staging buffer's first n bytes (whole blocks) at stage_off,
 * running job (the hash) meanwhile. A filesystem that took the O_DIRECT
 * open but refuses the write (EINVAL: an alignment it wants larger) gets
 * it through fd, and so does every later one. */
static int s_stage_put(cas_writer_t *w, size_t n, hash_job_t *job, cairn_err_t *err)
{
    long r = -EINVAL;
    if (w->direct) r = s_write_job(w->cas, w->dfd, w->stage, n, w->stage_off, job);
    if (r == -EINVAL && w->direct) {
        w->direct = false;
        w->cas->no_direct = true;
    }
    if (!w->direct) r = s_write_job(w->cas, w->fd, w->stage, n, w->stage_off, job);
    return r < 0 ? s_errno(err, (int)-r, "write", w->path) : 0;
}

/* The staged tail, [stage_off, size), written through fd (buffered). */
static int s_tail_put(cas_writer_t *w, cairn_err_t *err)
{
    size_t n = (size_t)(w->size - w->stage_off), done = 0;
    while (done < n) {
        ssize_t r =
            pwrite(w->fd, w->stage + done, n - done, (off_t)(w->stage_off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return s_errno(err, r < 0 ? errno : EIO, "write", w->path);
        done += (size_t)r;
    }
    return 0;
}

/* Append through the staging buffer: copy, write the whole blocks, keep
 * the tail (and write it buffered). */
static int s_write_staged(cas_writer_t *w, const unsigned char *buf, size_t len,
                          cairn_err_t *err)
{
    while (len) {
        size_t staged = (size_t)(w->size - w->stage_off);
        size_t n = len < w->stage_cap - staged ? len : w->stage_cap - staged;
        memcpy(w->stage + staged, buf, n);
        staged += n;
        size_t whole = staged / CAS_ALIGN * CAS_ALIGN;
        hash_job_t job = {&w->st, buf, n, false};
        if (whole && s_stage_put(w, whole, &job, err) != 0) return -1;
        s_hash_job(&job);
        memmove(w->stage, w->stage + whole, staged - whole);
        w->stage_off += whole;
        w->size += n;
        buf += n;
        len -= n;
    }
    return s_tail_put(w, err);
}

int cas_writer_write(cas_writer_t *w, const void *buf, size_t len, cairn_err_t *err)
{
    if (s_ready(w, err) != 0) return -1;
    if (w->digested)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "the temp blob '%s' is final already", w->name);
    s_direct_start(w, len);
    if (w->stage) {
        if (s_write_staged(w, buf, len, err) != 0) return -1;
    } else {
        if (s_write_hashed(w->cas, w->fd, buf, len, w->size, &w->st, w->path, err) != 0)
            return -1;
        w->size += len;
    }
    w->hashed = w->size;
    /* Direct writes leave no dirty pages but the tail's. */
    if (len && !w->direct) s_writeback(w);
    return 0;
}

bool cas_writer_direct(const cas_writer_t *w)
{
    return w->direct;
}

uint64_t cas_writer_size(const cas_writer_t *w)
{
    return w->size;
}

cairn_chash_alg_t cas_writer_alg(const cas_writer_t *w)
{
    return w->st.alg;
}

int cas_writer_digest(cas_writer_t *w, char hex[CAS_HEX_LEN + 1], cairn_err_t *err)
{
    if (s_ready(w, err) != 0) return -1;
    if (!w->digested) cairn_chash_final(&w->st, w->digest);
    w->digested = true;
    s_hex(w->digest, hex);
    return 0;
}

void cas_writer_keep_meta(cas_writer_t *w)
{
    w->keep_meta = true;
}

void cas_writer_abort(cas_writer_t **w_p)
{
    if (!w_p || !*w_p) return;
    s_writer_free(*w_p, true);
    *w_p = NULL;
}

int cas_writer_commit(cas_writer_t **w_p, char hex[CAS_HEX_LEN + 1], uint64_t *size,
                      bool *dedup, cairn_err_t *err)
{
    cas_writer_t *w = *w_p;
    cas_t *c = w->cas;
    unsigned char h[CAS_HASH_BYTES];
    char dir[PATH_MAX], blob[PATH_MAX];
    if (s_ready(w, err) != 0) {
        cas_writer_release(w_p);
        return -1;
    }
    if (!w->digested) cairn_chash_final(&w->st, w->digest);
    w->digested = true;
    memcpy(h, w->digest, sizeof h);
    s_hex(h, hex);
    if (size) *size = w->size;
    if (dedup) *dedup = false;
    const char *sub = s_alg_dir(w->st.alg);
    snprintf(dir, sizeof dir, "%s/%s/%.2s", c->root, sub, hex);
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
    /* Read-only, and private like the rest of the state dir. */
    if (fchmod(w->fd, 0400) != 0 || fsync(w->fd) != 0) {
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
        snprintf(casdir, sizeof casdir, "%s/%s", c->root, sub);
        s_fsync_dir(casdir);
    }
    if (rename(w->path, blob) != 0) {
        s_errno(err, errno, "move a blob into", blob);
        cas_writer_abort(w_p);
        return -1;
    }
    if (w->meta && !w->keep_meta) { /* the temp file is gone: nothing to resume */
        char meta[PATH_MAX];
        s_meta_path(c, w->name, meta, sizeof meta);
        unlink(meta);
    }
    int rc = s_fsync_dir(dir) != 0 ? s_errno(err, errno, "flush", dir) : 0;
    s_writer_free(w, false);
    *w_p = NULL;
    return rc;
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

/* name is <temp name>.meta: its temp name into base. */
static bool s_is_meta(const char *name, char base[CAS_NAME_MAX + 1])
{
    size_t n = strlen(name), k = sizeof CAS_META_SUFFIX - 1;
    if (n <= k || n - k > CAS_NAME_MAX || strcmp(name + n - k, CAS_META_SUFFIX) != 0)
        return false;
    memcpy(base, name, n - k);
    base[n - k] = '\0';
    return s_name_valid(base);
}

int cas_sweep_tmp(cas_t *c, uint64_t older_than_s)
{
    char dir[PATH_MAX], path[PATH_MAX], base[CAS_NAME_MAX + 1];
    snprintf(dir, sizeof dir, "%s/tmp", c->root);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = s_ms(&ts);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path)
            continue;
        struct stat sb;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        bool old =
            !older_than_s || now - s_ms(&sb.st_mtim) > (int64_t)older_than_s * 1000;
        if (s_is_meta(e->d_name, base)) {
            /* A sidecar goes with its temp file, or alone when that is gone
             * (a crash between the commit's rename and its unlink). */
            snprintf(path, sizeof path, "%s/%s", dir, base);
            if (lstat(path, &sb) != 0 && errno == ENOENT) {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                if (unlink(path) == 0) n++;
            }
            continue;
        }
        if (!s_name_valid(e->d_name)) { /* not ours: only when old */
            if (old && unlink(path) == 0) n++;
            continue;
        }
        char meta[PATH_MAX];
        snprintf(meta, sizeof meta, "%s" CAS_META_SUFFIX, path);
        bool resumable = lstat(meta, &sb) == 0;
        if (resumable && !old) continue;
        n += s_tmp_remove(path);
    }
    closedir(d);
    return n;
}

int cas_meta_alone(cas_t *c, cas_name_fn *fn, void *arg)
{
    char dir[PATH_MAX], path[PATH_MAX], base[CAS_NAME_MAX + 1];
    snprintf(dir, sizeof dir, "%s/tmp", c->root);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!s_is_meta(e->d_name, base)) continue;
        struct stat sb;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, base) >= sizeof path ||
            lstat(path, &sb) == 0 || errno != ENOENT)
            continue;
        fn(arg, base);
        n++;
    }
    closedir(d);
    return n;
}

/* ---- reading ------------------------------------------------------------- */

int cas_open_blob(cas_t *c, cairn_chash_alg_t alg, const char *hex, int *fd,
                  uint64_t *size, cairn_err_t *err)
{
    char path[PATH_MAX];
    if (cas_blob_path(c, alg, hex, path, sizeof path) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "'%.80s' is not a blob hash", hex ? hex : "");
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT)
            return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                 "the blob %s is missing", hex);
        return s_errno(err, errno, "open", path);
    }
    struct stat sb;
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(*fd);
        *fd = -1;
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "the blob %s is not a regular file", hex);
    }
    *size = (uint64_t)sb.st_size;
    return 0;
}

int cas_verify(cas_t *c, cairn_chash_alg_t alg, const char *hex, bool *ok,
               char actual[CAS_HEX_LEN + 1], cairn_err_t *err)
{
    int fd;
    uint64_t size, off = 0;
    if (cas_open_blob(c, alg, hex, &fd, &size, err) != 0) return -1;
    unsigned char *buf = malloc(CAS_VERIFY_BUF);
    if (!buf) {
        close(fd);
        return cairn_err_oom(err, NULL);
    }
    cairn_chash_t st;
    cairn_chash_init(&st, alg);
    int rc = 0;
    for (;;) {
        size_t got = 0;
        if ((rc = cas_pread(c, fd, buf, CAS_VERIFY_BUF, off, &got, err)) != 0) break;
        if (got == 0) break;
        cairn_chash_update(&st, buf, got);
        off += got;
    }
    free(buf);
    close(fd);
    if (rc != 0) return -1;
    char hx[CAS_HEX_LEN + 1];
    cairn_chash_hex(&st, hx);
    *ok = strcmp(hx, hex) == 0;
    if (actual) memcpy(actual, hx, sizeof hx);
    return 0;
}
