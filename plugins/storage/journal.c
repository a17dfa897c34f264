/* The metric journal (see journal.h). */
#define _GNU_SOURCE
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "le.h"

/* How long open waits for the lock: a predecessor that is being killed
 * (its kernel died; PR_SET_PDEATHSIG) lets go within milliseconds. Short:
 * init runs before the worker answers heartbeats (liveness is 1 s in the
 * tests). */
#define LOCK_WAIT_MS 300
/* The read buffer of replay: room for two whole records. */
#define READ_BUF (2 * JOURNAL_MAX_RECORD)

struct journal {
    int fd;
    char *path;
    uint64_t tag;
    bool sync;
    bool broken; /* a failed write could not be cut back: refuse appends */
    uint64_t size;
    uint64_t synced; /* the bytes known durable (sync: fdatasync'ed) */
    uint64_t next_seq;
    unsigned char *buf; /* one record, reused by every append */
};

/* ---- the record format ------------------------------------------------------ */

static uint64_t s_fnv1a64(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

size_t journal_record_size(const journal_point_t *pts, size_t n)
{
    size_t len = JOURNAL_HEADER_BYTES + 12 + JOURNAL_SUM_BYTES;
    for (size_t i = 0; i < n; i++) len += JOURNAL_POINT_FIXED + pts[i].key_len;
    return len;
}

size_t journal_encode(uint64_t seq, uint64_t tag, int64_t rid,
                      const journal_point_t *pts, size_t n, void *out, size_t cap)
{
    if (n < 1 || n > JOURNAL_MAX_POINTS) return 0;
    for (size_t i = 0; i < n; i++)
        if (pts[i].key_len < 1 || pts[i].key_len > JOURNAL_KEY_MAX) return 0;
    size_t len = journal_record_size(pts, n);
    if (len > cap) return 0;
    unsigned char *p = out, *q = p + JOURNAL_HEADER_BYTES;
    le_put32(p, JOURNAL_MAGIC);
    le_put32(p + 4, (uint32_t)(len - JOURNAL_HEADER_BYTES - JOURNAL_SUM_BYTES));
    le_put64(p + 8, seq);
    le_put64(p + 16, tag);
    le_put64(q, (uint64_t)rid);
    le_put32(q + 8, (uint32_t)n);
    q += 12;
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &pts[i].value, sizeof bits);
        le_put64(q, bits);
        le_put64(q + 8, (uint64_t)pts[i].timestamp);
        le_put64(q + 16, (uint64_t)pts[i].step);
        q[24] = (unsigned char)pts[i].key_len;
        memcpy(q + 25, pts[i].key, pts[i].key_len);
        q += JOURNAL_POINT_FIXED + pts[i].key_len;
    }
    le_put64(q, s_fnv1a64(p, (size_t)(q - p)));
    return len;
}

long journal_decode(const void *buf, size_t len, journal_rec_t *rec)
{
    const unsigned char *p = buf;
    if (len < 4) return 0;
    if (le_get32(p) != JOURNAL_MAGIC) return -1;
    if (len < 8) return 0;
    uint32_t plen = le_get32(p + 4);
    if (plen < 12 + JOURNAL_POINT_FIXED + 1 || plen > JOURNAL_MAX_PAYLOAD) return -1;
    size_t total = JOURNAL_HEADER_BYTES + (size_t)plen + JOURNAL_SUM_BYTES;
    if (len < total) return 0;
    const unsigned char *q = p + JOURNAL_HEADER_BYTES, *end = q + plen;
    if (le_get64(end) != s_fnv1a64(p, JOURNAL_HEADER_BYTES + (size_t)plen)) return -1;
    rec->seq = le_get64(p + 8);
    rec->tag = le_get64(p + 16);
    rec->rid = (int64_t)le_get64(q);
    rec->n = le_get32(q + 8);
    if (rec->n < 1 || rec->n > JOURNAL_MAX_POINTS) return -1;
    q += 12;
    for (size_t i = 0; i < rec->n; i++) {
        if ((size_t)(end - q) < JOURNAL_POINT_FIXED) return -1;
        journal_point_t *pt = &rec->pts[i];
        uint64_t bits = le_get64(q);
        memcpy(&pt->value, &bits, sizeof bits);
        pt->timestamp = (int64_t)le_get64(q + 8);
        pt->step = (int64_t)le_get64(q + 16);
        pt->key_len = q[24];
        q += JOURNAL_POINT_FIXED;
        if (pt->key_len < 1 || pt->key_len > JOURNAL_KEY_MAX ||
            (size_t)(end - q) < pt->key_len)
            return -1;
        pt->key = (const char *)q;
        q += pt->key_len;
    }
    if (q != end) return -1;
    return (long)total;
}

/* ---- the file ----------------------------------------------------------------- */

static int s_io_err(journal_t *j, const char *what, int e, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                         "the metric journal %s failed to %s: %s", j->path, what,
                         strerror(e));
}

/* Make the file's name durable (durability=power): fsync its directory. */
static void s_sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

/* Open and lock path; -1 with err. */
static int s_open_locked(const char *path, int flags, cairn_err_t *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | flags, 0600);
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "cannot open the metric journal %s: %s", path,
                             strerror(errno));
    for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited += 20) {
        int e = errno;
        if ((e != EWOULDBLOCK && e != EINTR) || waited >= LOCK_WAIT_MS) {
            close(fd);
            if (e == EWOULDBLOCK)
                return cairn_err_set(
                    err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                    "the metric journal %s is held by another tracking instance on "
                    "the same database: run one tracking instance per database",
                    path);
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                                 "cannot lock the metric journal %s: %s", path,
                                 strerror(e));
        }
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    }
    return fd;
}

journal_t *journal_open(const char *path, uint64_t tag, bool sync, cairn_err_t *err)
{
    journal_t *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path)) || !(j->buf = malloc(JOURNAL_MAX_RECORD))) {
        cairn_err_oom(err, NULL);
        goto fail;
    }
    j->fd = -1;
    j->tag = tag;
    j->sync = sync;
    j->next_seq = 1;
    if ((j->fd = s_open_locked(path, 0, err)) < 0) goto fail;
    struct stat st;
    if (fstat(j->fd, &st) != 0) {
        s_io_err(j, "stat", errno, err);
        goto fail;
    }
    j->size = (uint64_t)st.st_size;
    j->synced = j->size; /* a former process's: replay applies it, none waits */
    if (sync) s_sync_dir(path);
    return j;
fail:
    journal_destroy(&j);
    return NULL;
}

void journal_destroy(journal_t **self_p)
{
    if (!self_p || !*self_p) return;
    journal_t *j = *self_p;
    if (j->fd >= 0) close(j->fd); /* and with it the lock */
    free(j->path);
    free(j->buf);
    free(j);
    *self_p = NULL;
}

/* Records of another database: move the file aside and start an empty one
 * (locked before the old one is let go). */
static int s_set_aside(journal_t *j, journal_replay_info_t *info, cairn_err_t *err)
{
    snprintf(info->moved_to, sizeof info->moved_to, "%s.orphaned", j->path);
    if (rename(j->path, info->moved_to) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "the metric journal %s holds records of another database, "
                             "and moving it to %s failed: %s",
                             j->path, info->moved_to, strerror(errno));
    int fd = s_open_locked(j->path, O_EXCL, err);
    if (fd < 0) return -1;
    close(j->fd);
    j->fd = fd;
    j->size = 0;
    j->synced = j->size;
    j->broken = false;
    info->foreign = true;
    if (j->sync) s_sync_dir(j->path);
    return 0;
}

int journal_replay(journal_t *j, uint64_t after_seq, journal_rec_fn *fn, void *arg,
                   journal_replay_info_t *info, cairn_err_t *err)
{
    memset(info, 0, sizeof *info);
    unsigned char *buf = malloc(READ_BUF);
    journal_rec_t *rec = malloc(sizeof *rec);
    if (!buf || !rec) {
        free(buf);
        free(rec);
        return cairn_err_oom(err, NULL);
    }
    struct stat st;
    int rc = 0;
    if (fstat(j->fd, &st) != 0) {
        rc = s_io_err(j, "stat", errno, err);
        goto out;
    }
    uint64_t file_size = (uint64_t)st.st_size, base = 0, good_end = 0;
    size_t have = 0;
    bool stop = false, foreign = false;
    while (!stop) {
        size_t pos = 0;
        for (;;) {
            long r = journal_decode(buf + pos, have - pos, rec);
            if (r == 0) break; /* needs more bytes */
            if (r < 0 || rec->seq <= info->last_seq || rec->seq > INT64_MAX) {
                /* garbage, or a seq that does not grow (or does not fit
                 * the database's integer) */
                stop = true;
                break;
            }
            if (rec->tag != j->tag) {
                stop = foreign = true;
                break;
            }
            info->records++;
            info->last_seq = rec->seq;
            if (rec->seq <= after_seq) {
                info->skipped++;
            } else if (fn && fn(arg, rec, err) != 0) {
                rc = -1;
                goto out;
            }
            pos += (size_t)r;
            good_end = base + pos;
        }
        if (stop) break;
        memmove(buf, buf + pos, have - pos);
        have -= pos;
        base += pos;
        if (have == READ_BUF) break; /* cannot happen: a record fits twice */
        ssize_t n = pread(j->fd, buf + have, READ_BUF - have, (off_t)(base + have));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = s_io_err(j, "read", errno, err);
            goto out;
        }
        if (n == 0) break; /* the end; what is left in buf is a torn record */
        have += (size_t)n;
    }
    if (foreign) {
        rc = s_set_aside(j, info, err);
        if (rc != 0) goto out;
    } else {
        if (good_end < file_size) {
            if (ftruncate(j->fd, (off_t)good_end) != 0) {
                rc = s_io_err(j, "cut a torn record", errno, err);
                goto out;
            }
            info->cut_bytes = file_size - good_end;
        }
        j->size = good_end;
        j->synced = j->size;
    }
    j->broken = false;
    j->next_seq = (info->last_seq > after_seq ? info->last_seq : after_seq) + 1;
out:
    free(buf);
    free(rec);
    return rc;
}

int journal_write(journal_t *j, int64_t rid, const journal_point_t *pts, size_t n,
                  uint64_t *seq, cairn_err_t *err)
{
    if (j->broken) {
        /* Cut the torn record a failed write left, or refuse. */
        if (ftruncate(j->fd, (off_t)j->size) != 0)
            return s_io_err(j, "cut a failed write", errno, err);
        j->broken = false;
    }
    size_t len =
        journal_encode(j->next_seq, j->tag, rid, pts, n, j->buf, JOURNAL_MAX_RECORD);
    if (len == 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "a metric journal record must hold 1 to %d points with "
                             "keys of 1 to %d bytes",
                             JOURNAL_MAX_POINTS, JOURNAL_KEY_MAX);
    size_t done = 0;
    int e = 0;
    while (done < len) { /* one write(); more only after a short one */
        ssize_t w = write(j->fd, j->buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            e = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    if (e != 0) {
        if (ftruncate(j->fd, (off_t)j->size) != 0) j->broken = true;
        return s_io_err(j, "write", e, err);
    }
    j->size += len;
    if (!j->sync) j->synced = j->size; /* nothing to wait for */
    *seq = j->next_seq++;
    return 0;
}

int journal_sync(journal_t *j, cairn_err_t *err)
{
    if (j->synced == j->size) return 0;
    if (fdatasync(j->fd) == 0) {
        j->synced = j->size;
        return 0;
    }
    /* What the failed sync covered may or may not be on disk: cut it, so
     * that no replay ever applies a point whose caller was told it failed. */
    int e = errno;
    j->size = j->synced;
    if (ftruncate(j->fd, (off_t)j->size) != 0) j->broken = true;
    return s_io_err(j, "sync", e, err);
}

bool journal_unsynced(const journal_t *j)
{
    return j->synced != j->size;
}

int journal_append(journal_t *j, int64_t rid, const journal_point_t *pts, size_t n,
                   uint64_t *seq, cairn_err_t *err)
{
    return journal_write(j, rid, pts, n, seq, err) != 0 ? -1 : journal_sync(j, err);
}

int journal_reset(journal_t *j, cairn_err_t *err)
{
    if (j->size == 0 && !j->broken) return 0;
    if (ftruncate(j->fd, 0) != 0) return s_io_err(j, "empty itself", errno, err);
    j->size = 0;
    j->synced = j->size;
    j->broken = false;
    return 0;
}

uint64_t journal_next_seq(const journal_t *j)
{
    return j->next_seq;
}

void journal_set_next_seq(journal_t *j, uint64_t next)
{
    j->next_seq = next;
}

uint64_t journal_size(const journal_t *j)
{
    return j->size;
}

const char *journal_path(const journal_t *j)
{
    return j->path;
}
