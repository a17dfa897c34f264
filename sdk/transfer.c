/* The C SDK's artifact transfers (cairn/tracking.h: cairn_log_artifact*,
 * cairn_download_artifact*), split from tracking.c.
 *
 * Artifacts move as msgpack (no base64): an upload reads the file in
 * CAIRN_ARTIFACT_CHUNK pieces, one ahead so that the last piece is known to
 * be the last, and sends each as a put_artifact; a download asks
 * get_artifact for a chunk at a time and writes it to a temporary file
 * beside the destination, renamed into place only when the hash of what
 * arrived is the server's. Memory is a few chunks whatever the size.
 *
 * The hash (chash.h) is SHA-256: an upload hashes with it and requires the
 * server's final reply to name it (hash_alg "sha256"; a server that names
 * another, or none, hashes with BLAKE2b: it is too old, and the upload
 * fails with a sentence that says so). A download hashes with what the
 * first reply names (no hash_alg: BLAKE2b, an older server), so artifacts
 * stored before SHA-256 still download and verify.
 *
 * An upload rides out a restart of the artifacts service (the server keeps
 * acknowledged chunks and resumes the upload at the next one): a chunk
 * answered 503 (restarting) or, after the first, not answered within the
 * ttl is sent again,
 * the same chunk at the same offset of the same upload, after 50 ms, then
 * twice as long each time up to 2 s, for at most ART_RETRY_MS (60 s; the
 * environment variable CAIRN_ARTIFACT_RETRY_S, in seconds, overrides it); a
 * 409 whose body says {expected_offset: N} (or, from an older server, whose
 * sentence says "expected offset N") goes on from N (from the chunk in hand,
 * or for a regular file re-read from N); a final chunk answered 404 after
 * a retry is checked against what the server stored at that path (its
 * first copy may have committed before the reply was lost). A download
 * rides it out the same way (get_artifact is idempotent): a get_artifact
 * answered 503 or, once a chunk has arrived, not answered within the ttl is
 * asked for again at the same offset, with the same backoff and budget
 * (s_retry_wait, shared); every reply must still carry the size and hash of
 * the first and follow on at the offset asked for, so a file that changed
 * meanwhile is refused. Either way, past the budget the transfer fails with
 * a sentence that begins "gave up" and says after how many tries and why. */
#define _GNU_SOURCE
#include "cairn/tracking.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/aio_abi.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cairn/msg.h"

#include "chash.h"
#include "dio_buf.h"
#include "tracking_int.h"

/* A transfer's try failed with err: a 503 (the service restarting) or a
 * 429 (no upload slot free) is tried again, and so is a 504 (no reply within the ttl,
 * from the client or the kernel) unless nothing of the transfer was answered yet
 * (first: most likely no cairnd at all, so err is left as it is, at once); then as
 * trk_retry_backoff, what given as a printf format and its arguments. */
static int s_retry_wait(retry_t *rt, bool first, cairn_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_retry_wait(retry_t *rt, bool first, cairn_err_t *err, const char *fmt, ...)
{
    /* 429: no upload slot free (or the kernel holds too many of this
     * client's replies) now; one frees when another transfer ends. */
    if (err->st != CAIRN_ST_UNAVAILABLE && err->st != CAIRN_ST_OVERLOADED &&
        (err->st != CAIRN_ST_TIMEOUT || first))
        return -1;
    char what[CAIRN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return trk_retry_backoff(rt, what,
                             "the artifacts service is restarting or unreachable", err);
}

/* ---- artifacts ------------------------------------------------------------------- */

#define CHUNK CAIRN_ARTIFACT_CHUNK
#define HASH_HEX CAIRN_ARTIFACT_HASH_HEX

static int s_sodium(cairn_err_t *err)
{
    return sodium_init() < 0
               ? cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "libsodium cannot start")
               : 0;
}

_Static_assert(HASH_HEX == CAIRN_CHASH_HEX, "CAIRN_ARTIFACT_HASH_HEX");

static const char *s_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A msgpack field of a type; NULL when absent or of another type. */
static const msgpack_object *s_mp(const msgpack_object *map, const char *key,
                                  msgpack_object_type type)
{
    const msgpack_object *v = map ? cairn_obj_get(map, key) : NULL;
    return v && v->type == type ? v : NULL;
}

static bool s_mp_hash(const msgpack_object *map, char out[HASH_HEX + 1])
{
    const msgpack_object *h = s_mp(map, "hash", MSGPACK_OBJECT_STR);
    if (!h || h->via.str.size != HASH_HEX) return false;
    memcpy(out, h->via.str.ptr, HASH_HEX);
    out[HASH_HEX] = '\0';
    return true;
}

/* The algorithm of the reply's hash: its hash_alg, absent from servers
 * older than SHA-256 (BLAKE2b); false when it names one this SDK does not
 * know (its name, cut, into name). */
static bool s_mp_alg(const msgpack_object *map, cairn_chash_alg_t *alg, char name[32])
{
    const msgpack_object *a = s_mp(map, "hash_alg", MSGPACK_OBJECT_STR);
    *alg = CAIRN_CHASH_BLAKE2B;
    snprintf(name, 32, "%.*s", a ? (int)a->via.str.size : 7,
             a ? a->via.str.ptr : "blake2b");
    return !a || cairn_chash_parse(a->via.str.ptr, a->via.str.size, alg);
}

/* An upload's artifact (a put_artifact's or a get_artifact's reply, map)
 * is hashed with SHA-256, as this SDK hashed the bytes: else the server is
 * too old to check it against (502 bad_reply, the sentence says so). */
static int s_check_sha256(const msgpack_object *map, const char *path, cairn_err_t *err)
{
    cairn_chash_alg_t alg;
    char name[32];
    if (s_mp_alg(map, &alg, name) && alg == CAIRN_CHASH_SHA256) return 0;
    return cairn_err_set(
        err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
        "the server is too old: it hashes artifacts with %s, and this "
        "SDK checks an upload against its SHA-256; '%s' was stored but "
        "not verified: upgrade cairnd",
        name, path);
}

/* Call artifacts.verb; *r receives a 2xx reply whose body is a map (*obj).
 * On failure *failed (when not NULL) receives the error reply if one came
 * (its body may say more than the sentence), else NULL. */
static int s_acall_ex(cairn_client_t *client, const char *verb,
                      const msgpack_sbuffer *sb, cairn_reply_t **r,
                      const msgpack_object **obj, cairn_reply_t **failed,
                      cairn_err_t *err)
{
    *r = NULL;
    if (failed) *failed = NULL;
    if (cairn_client_call(client, CAIRN_ARTIFACTS_SVC, verb, sb->data, sb->size, 0, r,
                          err) != 0) {
        if (failed) {
            *failed = *r;
            *r = NULL;
        }
        cairn_reply_destroy(r);
        return -1;
    }
    *obj = cairn_reply_object(*r);
    if (!*obj || (*obj)->type != MSGPACK_OBJECT_MAP) {
        cairn_reply_destroy(r);
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the reply of artifacts.%s is not a map", verb);
    }
    return 0;
}

static int s_acall(cairn_client_t *client, const char *verb, const msgpack_sbuffer *sb,
                   cairn_reply_t **r, const msgpack_object **obj, cairn_err_t *err)
{
    return s_acall_ex(client, verb, sb, r, obj, NULL, err);
}

static int s_check_artifact_args(cairn_client_t *client, const char *run_id,
                                 const char *path, const char *what, cairn_err_t *err)
{
    if (trk_check_client(client, err) != 0 || trk_check_run_id(run_id, NULL, err) != 0)
        return -1;
    if (path && trk_check_str(path, what, 0, true, NULL, err) != 0) return -1;
    return s_sodium(err);
}

/* Read up to n bytes (fewer only at the end of the file). */
static int s_read_full(int fd, unsigned char *buf, size_t n, size_t *got,
                       const char *name, cairn_err_t *err)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, buf + *got, n - *got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                                 "cannot read '%s': %s", name, strerror(errno));
        if (r == 0) break;
        *got += (size_t)r;
    }
    return 0;
}

static int s_write_full(int fd, const char *buf, size_t n, const char *name,
                        cairn_err_t *err)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                                 "cannot write '%s': %s", name, strerror(errno));
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

#define ART_RETRY_MS 60000 /* the longest a chunk is retried (default) */
#define ART_MOVES_MAX 16   /* 409 "expected offset N" followed per chunk */

/* Seconds, a positive number: overrides ART_RETRY_MS (tests use a small one). */
#define ART_RETRY_ENV "CAIRN_ARTIFACT_RETRY_S"

typedef struct upload {
    cairn_client_t *client;
    const char *run_id, *path;
    char upload_id[128];
    uint64_t offset; /* bytes sent and accepted */
    msgpack_sbuffer sb;
    int fd;              /* the source; re-read (pread) only when seekable */
    bool seekable;       /* a regular file: bytes before the chunk in hand */
    unsigned char *back; /* can be read again (into this, on demand) */
    bool lost_done;      /* the last chunk, retried, found no upload: 404 */
    uint64_t lost_size;  /* and the size the file has with it */
    uint64_t retry_ms;   /* the longest a chunk is retried */
    bool has_expected;   /* the last chunk's 409 had a body {expected_offset} */
    uint64_t expected;   /* and its value */
    bool resent;         /* chunks sent in a window are being sent again */
    uint64_t tried_ms;   /* and when the first of them was sent (0: none) */
} upload_t;

/* ART_RETRY_MS, or $CAIRN_ARTIFACT_RETRY_S (a positive number of seconds)
 * when it is set and valid. */
static uint64_t s_retry_ms(void)
{
    return trk_env_ms(ART_RETRY_ENV, ART_RETRY_MS);
}

/* One put_artifact; upload_id is filled from the first reply. The last
 * chunk's reply (its artifact) is left in *last. */
static int s_put_chunk(upload_t *u, const unsigned char *data, size_t n, bool done,
                       cairn_reply_t **last, cairn_err_t *err)
{
    msgpack_sbuffer_clear(&u->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &u->sb, msgpack_sbuffer_write);
    bool first = !u->upload_id[0];
    int fail = msgpack_pack_map(&pk, first ? 5 : 6);
    cairn_pack_kv_str(&pk, "run_id", u->run_id);
    cairn_pack_kv_str(&pk, "path", u->path);
    cairn_pack_cstr(&pk, "offset");
    fail |= msgpack_pack_uint64(&pk, u->offset);
    cairn_pack_cstr(&pk, "done");
    fail |= done ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    if (!first) cairn_pack_kv_str(&pk, "upload_id", u->upload_id);
    cairn_pack_cstr(&pk, "data");
    fail |= msgpack_pack_bin_with_body(&pk, data, n);
    if (fail) return trk_oom(err);
    cairn_reply_t *r = NULL, *failed = NULL;
    const msgpack_object *obj = NULL;
    u->has_expected = false;
    if (s_acall_ex(u->client, "put_artifact", &u->sb, &r, &obj, &failed, err) != 0) {
        /* A 409 says where the server is in its body (older servers only
         * in the sentence: s_expected_offset). */
        const msgpack_object *at =
            failed && cairn_reply_status(failed) == CAIRN_ST_CONFLICT
                ? s_mp(cairn_reply_object(failed), "expected_offset",
                       MSGPACK_OBJECT_POSITIVE_INTEGER)
                : NULL;
        if (at) {
            u->has_expected = true;
            u->expected = at->via.u64;
        }
        cairn_reply_destroy(&failed);
        return -1;
    }
    u->offset += n;
    if (done) {
        *last = r;
        return 0;
    }
    int rc = 0;
    const msgpack_object *id = s_mp(obj, "upload_id", MSGPACK_OBJECT_STR);
    const msgpack_object *next = s_mp(obj, "offset", MSGPACK_OBJECT_POSITIVE_INTEGER);
    if (!id || id->via.str.size == 0 || id->via.str.size >= sizeof u->upload_id)
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the reply of artifacts.put_artifact has no upload_id");
    else if (!first && (id->via.str.size != strlen(u->upload_id) ||
                        memcmp(id->via.str.ptr, u->upload_id, id->via.str.size) != 0))
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the upload id changed in the middle of the upload");
    else if (!next || next->via.u64 != u->offset)
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "after %" PRIu64 " bytes the server expects offset %" PRIu64,
                           u->offset, next ? next->via.u64 : 0);
    if (rc == 0 && first) {
        memcpy(u->upload_id, id->via.str.ptr, id->via.str.size);
        u->upload_id[id->via.str.size] = '\0';
    }
    cairn_reply_destroy(&r);
    return rc;
}

/* Where a 409 says the server is: its body's expected_offset, else (an
 * older server) the N of a sentence that says "expected offset N". */
static bool s_expected_offset(const upload_t *u, const cairn_err_t *err, uint64_t *n)
{
    static const char key[] = "expected offset ";
    if (err->st != CAIRN_ST_CONFLICT) return false;
    if (u->has_expected) {
        *n = u->expected;
        return true;
    }
    const char *p = strstr(err->msg, key);
    if (!p) return false;
    p += sizeof key - 1;
    if (*p < '0' || *p > '9') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno) return false;
    *n = v;
    return true;
}

/* One chunk, sent again while the service restarts (503) or does not
 * answer in time (504; s_retry_wait): 0 when it was accepted (u->offset
 * moved on), 1 when the server answered 409 "expected offset N" (*at = N),
 * -1 on any other failure or after u->retry_ms. */
static int s_put_retry(upload_t *u, const unsigned char *data, size_t n, bool done,
                       cairn_reply_t **last, uint64_t *at, cairn_err_t *err)
{
    retry_t rt;
    trk_retry_start(&rt, u->retry_ms);
    if (u->tried_ms) { /* its try in the window counts, from when it was sent */
        rt.t0 = u->tried_ms;
        rt.tries = 1;
        u->tried_ms = 0;
    }
    for (;;) {
        if (s_put_chunk(u, data, n, done, last, err) == 0) return 0;
        if (u->upload_id[0] && s_expected_offset(u, err, at)) return 1;
        if ((rt.tries || u->resent) && done && err->st == CAIRN_ST_NOT_FOUND) {
            u->lost_done = true;
            u->lost_size = u->offset + n;
        }
        /* No reply to a first chunk: nothing to resume yet either. */
        if (s_retry_wait(&rt, !u->upload_id[0], err,
                         "the chunk at offset %" PRIu64 " of '%s'", u->offset,
                         u->path) != 0)
            return -1;
    }
}

/* Send the chunk in hand, cur[0, n) at offset base of the file (done: the
 * last), with retries, from u->offset (where the server is: in the chunk,
 * or before it); where the server answers that it holds another length, go
 * on from there: within the chunk, or (a regular file) from bytes read
 * again. */
static int s_send(upload_t *u, uint64_t base, const unsigned char *cur, size_t n,
                  bool done, cairn_reply_t **last, cairn_err_t *err)
{
    for (int moves = 0;;) {
        uint64_t p = u->offset, at = 0;
        const unsigned char *src;
        size_t len;
        bool fin = false;
        if (p >= base) { /* from the chunk in hand */
            src = cur + (p - base);
            len = (size_t)(base + n - p);
            fin = done;
            if (len == 0 && !done) return 0;
        } else { /* bytes before it, read again */
            len = base - p < CHUNK ? (size_t)(base - p) : CHUNK;
            if (!u->back && !(u->back = malloc(CHUNK))) return trk_oom(err);
            ssize_t r = pread(u->fd, u->back, len, (off_t)p);
            if (r != (ssize_t)len)
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                                     "cannot read the file again from offset %" PRIu64
                                     " (the server lost what followed): %s",
                                     p, r < 0 ? strerror(errno) : "it is shorter");
            src = u->back;
        }
        int rc = s_put_retry(u, src, len, fin, last, &at, err);
        if (rc < 0) return -1;
        if (rc == 0) {
            if (p >= base) return 0;
            continue;
        }
        if (++moves > ART_MOVES_MAX || at > base + n || (at < base && !u->seekable))
            return cairn_err_set(
                err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                "the server holds %" PRIu64
                " bytes of the upload of '%s', which cannot "
                "go on from there (%" PRIu64 " bytes were sent%s)",
                at, u->path, base + n,
                at < base && !u->seekable ? "; the source cannot be read again" : "");
        u->offset = at;
    }
}

/* The last chunk was retried and its upload is gone: did its first copy
 * commit? Then the artifact at the path is the bytes that were sent. */
static int s_check_stored(upload_t *u, const char *hex, cairn_artifact_info_t *info,
                          cairn_err_t *err)
{
    cairn_err_t lost = *err, e2 = {0};
    msgpack_sbuffer_clear(&u->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &u->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "run_id", u->run_id);
    cairn_pack_kv_str(&pk, "path", u->path);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, u->lost_size);
    cairn_pack_cstr(&pk, "length");
    msgpack_pack_uint64(&pk, 0);
    cairn_reply_t *r = NULL;
    const msgpack_object *obj = NULL;
    char hash[HASH_HEX + 1];
    if (s_acall(u->client, "get_artifact", &u->sb, &r, &obj, &e2) != 0) {
        *err = lost;
        return -1;
    }
    const msgpack_object *size = s_mp(obj, "size", MSGPACK_OBJECT_POSITIVE_INTEGER);
    cairn_chash_alg_t alg;
    char name[32];
    bool same = size && size->via.u64 == u->lost_size && s_mp_hash(obj, hash) &&
                s_mp_alg(obj, &alg, name) && alg == CAIRN_CHASH_SHA256 &&
                strcmp(hash, hex) == 0;
    cairn_reply_destroy(&r);
    if (!same) {
        *err = lost;
        return -1;
    }
    if (info) {
        if (!(info->path = strdup(u->path))) return trk_oom(err);
        info->size = u->lost_size;
        memcpy(info->hash, hash, sizeof hash);
    }
    u->offset = u->lost_size;
    return 0;
}

/* Check the committed artifact against what was sent. */
static int s_upload_check(const upload_t *u, const char *hex, cairn_reply_t *r,
                          cairn_artifact_info_t *info, cairn_err_t *err)
{
    const msgpack_object *a =
        s_mp(cairn_reply_object(r), "artifact", MSGPACK_OBJECT_MAP);
    const msgpack_object *size = s_mp(a, "size", MSGPACK_OBJECT_POSITIVE_INTEGER);
    const msgpack_object *path = s_mp(a, "path", MSGPACK_OBJECT_STR);
    char hash[HASH_HEX + 1];
    if (!a || !size || !path || !s_mp_hash(a, hash))
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the last reply of artifacts.put_artifact has no artifact "
                             "{path, size, hash}");
    if (s_check_sha256(a, u->path, err) != 0) return -1;
    if (size->via.u64 != u->offset || strcmp(hash, hex) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "the server stored %" PRIu64
                             " bytes with hash %s, but %" PRIu64
                             " bytes with hash %s were sent",
                             size->via.u64, hash, u->offset, hex);
    if (info) {
        info->path = strndup(path->via.str.ptr, path->via.str.size);
        if (!info->path) return trk_oom(err);
        info->size = u->offset;
        memcpy(info->hash, hash, sizeof hash);
    }
    return 0;
}

/* ---- the window of an upload ----------------------------------------------- */

/* After the first chunk (which opens the upload and names it), up to
 * WINDOW chunks are in flight at once: the server takes them in order (one
 * connection, one loop), so while it writes and hashes one the next is on
 * the wire and the one after is read and hashed here. A chunk is packed
 * where it is read: its buffer keeps room for the request's head before
 * the data (written right-aligned once the chunk is read) and ends with
 * the done field, which is known once the next read says whether more
 * follows. Any failure in the window (a 503 of a restart, a 409, no reply)
 * drains the window and sends what is left of it again one chunk at a time
 * (s_send: the retries, the 409 moves and the lost last chunk as before),
 * then the window goes on. */
#define WINDOW 4
#define SLOTS (WINDOW + 2) /* in flight, the chunk in hand, the next read */
#define DONE_FIELD 6       /* fixstr "done" and a bool */

/* A slot's buffer, shared with libzmq while a request sent from it
 * (zero-copy) is queued or being written: whichever lets go last frees it. */
typedef struct slot_buf {
    atomic_int refs;
    unsigned char data[];
} slot_buf_t;

typedef struct slot {
    slot_buf_t *sb;
    unsigned char *buf; /* sb->data: head room, bin32 header, data, done field */
    size_t start;       /* where the packed request begins in buf */
    uint64_t off;       /* the file offset of its data */
    size_t n;           /* its data bytes */
    bool done;
    uint64_t id;      /* its request, while in flight */
    uint64_t due;     /* when to stop waiting for its reply (ms) */
    cairn_reply_t *r; /* its reply, once here */
} slot_t;

typedef struct window {
    slot_t slot[SLOTS];
    slot_t *q[WINDOW]; /* in flight, oldest first */
    int nq;
    size_t room; /* the head room: the longest head of this upload */
    uint32_t ttl_ms;
} window_t;

static unsigned char *s_data(const window_t *w, const slot_t *s)
{
    return s->buf + w->room;
}

/* A slot neither in flight nor in hand (there is always one). */
static slot_t *s_free_slot(window_t *w, const slot_t *cur)
{
    for (int i = 0; i < SLOTS; i++) {
        slot_t *s = &w->slot[i];
        bool busy = s == cur;
        for (int j = 0; j < w->nq && !busy; j++) busy = w->q[j] == s;
        if (!busy) return s;
    }
    return NULL;
}

static void s_win_init(window_t *w, const upload_t *u)
{
    memset(w, 0, sizeof *w);
    /* fixmap, 4 keys with their values (offset as uint64), the "data" key,
     * then the bin32 header of the data. */
    w->room = 1 + 7 + 5 + strlen(u->run_id) + 5 + 5 + strlen(u->path) + 7 + 9 + 10 + 5 +
              sizeof u->upload_id + 5 + 5;
    w->ttl_ms = cairn_client_default_ttl(u->client);
}

static void s_buf_unref(slot_buf_t *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}

/* libzmq is done with a request sent from a slot's buffer. */
static void s_buf_sent(void *data, void *hint)
{
    (void)data;
    s_buf_unref(hint);
}

static void s_win_free(window_t *w)
{
    for (int i = 0; i < SLOTS; i++) {
        s_buf_unref(w->slot[i].sb);
        cairn_reply_destroy(&w->slot[i].r);
    }
}

/* Read the next chunk of the file into s (its data area), hashing it. */
static int s_win_read(window_t *w, slot_t *s, int fd, uint64_t off, const char *name,
                      cairn_chash_t *st, cairn_err_t *err)
{
    s->off = off;
    s->done = false;
    /* libzmq may still hold the buffer (a request sent from it, its reply
     * in, the message not yet let go of): leave it to libzmq, take another */
    if (s->sb && atomic_load(&s->sb->refs) > 1) {
        s_buf_unref(s->sb);
        s->sb = NULL;
        s->buf = NULL;
    }
    /* on first use: a small file takes one chunk's buffer, not the window's */
    if (!s->sb) {
        if (!(s->sb = malloc(sizeof *s->sb + w->room + CHUNK + DONE_FIELD)))
            return trk_oom(err);
        atomic_init(&s->sb->refs, 1);
        s->buf = s->sb->data;
    }
    if (s_read_full(fd, s_data(w, s), CHUNK, &s->n, name, err) != 0) return -1;
    cairn_chash_update(st, s_data(w, s), s->n);
    return 0;
}

/* Pack s's request around its data: the head right-aligned before it,
 * the done field after it. */
static int s_win_pack(window_t *w, const upload_t *u, slot_t *s, cairn_err_t *err)
{
    msgpack_sbuffer hb;
    msgpack_sbuffer_init(&hb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &hb, msgpack_sbuffer_write);
    int fail = msgpack_pack_map(&pk, 6);
    cairn_pack_kv_str(&pk, "run_id", u->run_id);
    cairn_pack_kv_str(&pk, "path", u->path);
    cairn_pack_cstr(&pk, "offset");
    fail |= msgpack_pack_uint64(&pk, s->off);
    cairn_pack_kv_str(&pk, "upload_id", u->upload_id);
    cairn_pack_cstr(&pk, "data");
    if (fail || !hb.data || hb.size + 5 > w->room) {
        msgpack_sbuffer_destroy(&hb);
        return fail ? trk_oom(err)
                    : cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                                    "an upload's request head is too long");
    }
    unsigned char *d = s_data(w, s);
    s->start = w->room - 5 - hb.size;
    memcpy(s->buf + s->start, hb.data, hb.size);
    msgpack_sbuffer_destroy(&hb);
    d[-5] = 0xc6; /* bin32 */
    d[-4] = (unsigned char)(s->n >> 24);
    d[-3] = (unsigned char)(s->n >> 16);
    d[-2] = (unsigned char)(s->n >> 8);
    d[-1] = (unsigned char)s->n;
    memcpy(d + s->n,
           "\xa4"
           "done",
           5);
    d[s->n + 5] = s->done ? 0xc3 : 0xc2;
    return 0;
}

static int s_win_send(window_t *w, upload_t *u, slot_t *s, cairn_err_t *err)
{
    if (s_win_pack(w, u, s, err) != 0) return -1;
    size_t len = w->room - s->start + s->n + DONE_FIELD;
    /* Zero-copy: the request is sent from the slot's buffer, which libzmq
     * holds a reference to until it has written it (s_win_read takes
     * another buffer if a slot is reused before that). */
    zmq_msg_t m;
    atomic_fetch_add(&s->sb->refs, 1);
    if (zmq_msg_init_data(&m, s->buf + s->start, len, s_buf_sent, s->sb) != 0) {
        s_buf_unref(s->sb);
        return trk_oom(err);
    }
    if (cairn_client_send_msg(u->client, CAIRN_ARTIFACTS_SVC, "put_artifact", &m,
                              &s->id, err) != 0)
        return -1;
    /* As cairn_client_call: a little past the ttl, at which the kernel
     * answers 504 itself. */
    s->due = cairn_now_ms() + w->ttl_ms + 1000;
    cairn_reply_destroy(&s->r);
    w->q[w->nq++] = s;
    return 0;
}

/* Wait until s (in flight) has its reply, keeping those of the others
 * that come first; -1 (504) when none comes in time. */
static int s_win_wait(window_t *w, cairn_client_t *client, slot_t *s, cairn_err_t *err)
{
    while (!s->r) {
        uint64_t now = cairn_now_ms();
        cairn_reply_t *r = NULL;
        if (now >= s->due ||
            cairn_client_recv(client, (int)(s->due - now), &r, err) != 0) {
            if (now >= s->due || err->st == CAIRN_ST_TIMEOUT)
                return cairn_err_set(err, CAIRN_ST_TIMEOUT, "deadline_exceeded",
                                     "no reply from the kernel within %u ms (is cairnd "
                                     "running?)",
                                     w->ttl_ms);
            return -1;
        }
        int i = 0;
        while (i < w->nq && w->q[i]->id != cairn_reply_id(r)) i++;
        if (i < w->nq && !w->q[i]->r)
            w->q[i]->r = r;
        else
            cairn_reply_destroy(&r); /* a reply nothing waits for any more */
    }
    return 0;
}

static void s_win_pop(window_t *w)
{
    cairn_reply_destroy(&w->q[0]->r);
    memmove(w->q, w->q + 1, (size_t)(w->nq - 1) * sizeof w->q[0]);
    w->nq--;
}

/* The reply of s, a chunk in flight: 0 when it was taken (u->offset moves
 * past it; the last chunk's reply goes to *last), -1 with err when not. */
static int s_win_take(upload_t *u, slot_t *s, cairn_reply_t **last, cairn_err_t *err)
{
    int st = cairn_reply_status(s->r);
    if (st >= CAIRN_ST_BAD_REQUEST) {
        const msgpack_object *at =
            st == CAIRN_ST_CONFLICT ? s_mp(cairn_reply_object(s->r), "expected_offset",
                                           MSGPACK_OBJECT_POSITIVE_INTEGER)
                                    : NULL;
        u->has_expected = at != NULL;
        u->expected = at ? at->via.u64 : 0;
        const char *code = cairn_reply_code(s->r);
        return cairn_err_set(err, st, *code ? code : NULL, "%s",
                             cairn_reply_error(s->r));
    }
    const msgpack_object *obj = cairn_reply_object(s->r);
    if (!obj || obj->type != MSGPACK_OBJECT_MAP)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the reply of artifacts.put_artifact is not a map");
    uint64_t end = s->off + s->n;
    if (s->done) {
        u->offset = end;
        *last = s->r;
        s->r = NULL;
        return 0;
    }
    const msgpack_object *id = s_mp(obj, "upload_id", MSGPACK_OBJECT_STR);
    const msgpack_object *next = s_mp(obj, "offset", MSGPACK_OBJECT_POSITIVE_INTEGER);
    if (!id || id->via.str.size != strlen(u->upload_id) ||
        memcmp(id->via.str.ptr, u->upload_id, id->via.str.size) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the upload id changed in the middle of the upload");
    if (!next || next->via.u64 != end)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "after %" PRIu64
                             " bytes the server expects offset %" PRIu64,
                             end, next ? next->via.u64 : 0);
    u->offset = end;
    return 0;
}

/* May a chunk that failed in the window be sent again (s_send decides how
 * often)? A 503 or 429, or no reply (504); anything else (a deleted run's
 * 400, 404, 413...) ends the upload. A 409 that says where the server is
 * (*at) goes on from there. */
static bool s_win_retryable(const upload_t *u, const cairn_err_t *err, bool *moved,
                            uint64_t *at)
{
    if ((*moved = s_expected_offset(u, err, at))) return true;
    return err->st == CAIRN_ST_UNAVAILABLE || err->st == CAIRN_ST_TIMEOUT ||
           err->st == CAIRN_ST_OVERLOADED;
}

/* The oldest chunk in flight failed (err): wait for the others' replies
 * (one of them may have been taken: the server is then further on), then
 * send what is left of each again, in order, one at a time; the first of
 * them keeps the retry budget its try in the window started. */
static int s_win_recover(window_t *w, upload_t *u, cairn_reply_t **last,
                         cairn_err_t *err)
{
    uint64_t at = 0;
    const slot_t *first = w->q[0], *end = w->q[w->nq - 1];
    bool moved = false, retry = s_win_retryable(u, err, &moved, &at);
    for (int i = 1; i < w->nq; i++) {
        slot_t *s = w->q[i];
        cairn_err_t e2 = {0};
        if (s_win_wait(w, u->client, s, &e2) == 0 &&
            cairn_reply_status(s->r) < CAIRN_ST_BAD_REQUEST &&
            s_win_take(u, s, last, &e2) == 0 && *last)
            retry = true; /* the last chunk committed: nothing is left to send */
    }
    if (!retry) return -1;
    if (!moved) at = u->offset;
    if (!*last && at > end->off + end->n)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "the server holds %" PRIu64
                             " bytes of the upload of '%s', which cannot go on from "
                             "there (%" PRIu64 " bytes were sent)",
                             at, u->path, end->off + end->n);
    if (!*last) u->offset = at;
    u->resent = true;
    u->tried_ms = first->due - w->ttl_ms - 1000;
    int rc = 0;
    for (int i = 0; i < w->nq && rc == 0 && !*last; i++) {
        slot_t *s = w->q[i];
        uint64_t stop = s->off + s->n;
        if (stop < u->offset || (stop == u->offset && !s->done)) continue;
        rc = s_send(u, s->off, s_data(w, s), s->n, s->done, last, err);
    }
    u->resent = false;
    u->tried_ms = 0;
    while (w->nq) s_win_pop(w);
    return rc;
}

/* Make room in the window (all: empty it): take the oldest reply(s). */
static int s_win_reap(window_t *w, upload_t *u, bool all, cairn_progress_fn *progress,
                      void *arg, uint64_t total, cairn_reply_t **last, cairn_err_t *err)
{
    while (w->nq && (all || w->nq == WINDOW)) {
        slot_t *s = w->q[0];
        if (s_win_wait(w, u->client, s, err) != 0 || s_win_take(u, s, last, err) != 0)
            return s_win_recover(w, u, last, err);
        s_win_pop(w);
        /* a file that grew past its size: the total is no longer known */
        if (progress && !*last)
            progress(arg, u->offset, u->offset < total ? total : CAIRN_SIZE_UNKNOWN);
    }
    return 0;
}

/* An upload that failed for good leaves nothing on the server: its temp
 * file and slot go now rather than after upload_idle. Best effort (the
 * server may be the reason it failed), with a short ttl. */
static void s_abort(upload_t *u, const cairn_err_t *why)
{
    /* None when there is no upload left (404), or no server to ask (503,
     * 504: its budget is spent; the server drops it after upload_idle). */
    if (!u->upload_id[0] || why->st == CAIRN_ST_NOT_FOUND ||
        why->st == CAIRN_ST_UNAVAILABLE || why->st == CAIRN_ST_TIMEOUT)
        return;
    msgpack_sbuffer_clear(&u->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &u->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "run_id", u->run_id);
    cairn_pack_kv_str(&pk, "upload_id", u->upload_id);
    cairn_err_t e2 = {0};
    (void)cairn_client_call(u->client, CAIRN_ARTIFACTS_SVC, "abort_upload", u->sb.data,
                            u->sb.size, 2000, NULL, &e2);
}

/* Stream fd to put_artifact, CHUNK bytes a request, reading one chunk ahead
 * so that the last request carries done=true: the first alone (it names
 * the upload), the rest through the window. */
static int s_upload_chunks(upload_t *u, window_t *w, const char *name,
                           cairn_progress_fn *progress, void *arg, uint64_t total,
                           cairn_chash_t *st, cairn_reply_t **last, cairn_err_t *err)
{
    slot_t *cur = &w->slot[0];
    uint64_t pos = 0;
    int rc = s_win_read(w, cur, u->fd, pos, name, st, err);
    while (rc == 0) {
        pos += cur->n;
        slot_t *next = NULL;
        if (cur->n == CHUNK) {
            next = s_free_slot(w, cur);
            rc = s_win_read(w, next, u->fd, pos, name, st, err);
            if (rc != 0) break;
        }
        cur->done = !next || next->n == 0;
        if (!u->upload_id[0]) { /* the first: it opens the upload */
            rc = s_send(u, cur->off, s_data(w, cur), cur->n, cur->done, last, err);
            if (rc == 0 && !cur->done && progress)
                progress(arg, u->offset,
                         u->offset < total ? total : CAIRN_SIZE_UNKNOWN);
        } else {
            rc = s_win_reap(w, u, false, progress, arg, total, last, err);
            if (rc == 0) rc = s_win_send(w, u, cur, err);
        }
        if (rc != 0 || cur->done) break;
        cur = next;
    }
    if (rc == 0) rc = s_win_reap(w, u, true, progress, arg, total, last, err);
    return rc;
}

static int s_upload(cairn_client_t *client, const char *run_id, const char *path,
                    int fd, const char *name, cairn_progress_fn *progress, void *arg,
                    cairn_artifact_info_t *info, cairn_err_t *err)
{
    struct stat sbuf;
    if (fstat(fd, &sbuf) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "cannot read '%s': %s", name, strerror(errno));
    if (S_ISDIR(sbuf.st_mode))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "'%s' is a directory; upload its files one by one", name);
    uint64_t total =
        S_ISREG(sbuf.st_mode) ? (uint64_t)sbuf.st_size : CAIRN_SIZE_UNKNOWN;
    upload_t u = {.client = client,
                  .run_id = run_id,
                  .path = path,
                  .fd = fd,
                  .seekable = S_ISREG(sbuf.st_mode),
                  .retry_ms = s_retry_ms()};
    msgpack_sbuffer_init(&u.sb);
    cairn_chash_t st;
    cairn_chash_init(&st, CAIRN_CHASH_SHA256);
    cairn_reply_t *last = NULL;
    window_t w;
    s_win_init(&w, &u);
    int rc = s_upload_chunks(&u, &w, name, progress, arg, total, &st, &last, err);
    s_win_free(&w);
    free(u.back);
    char hex[HASH_HEX + 1];
    if (rc == 0) {
        cairn_chash_hex(&st, hex);
        rc = s_upload_check(&u, hex, last, info, err);
    } else if (u.lost_done) {
        cairn_chash_hex(&st, hex);
        rc = s_check_stored(&u, hex, info, err);
    } else {
        s_abort(&u, err);
    }
    msgpack_sbuffer_destroy(&u.sb);
    cairn_reply_destroy(&last);
    if (rc == 0 && progress) progress(arg, u.offset, u.offset);
    return rc;
}

int cairn_log_artifact_ex(cairn_client_t *client, const char *run_id,
                          const char *local_path, const char *artifact_path,
                          cairn_progress_fn *progress, void *arg,
                          cairn_artifact_info_t *info, cairn_err_t *err)
{
    if (info) memset(info, 0, sizeof *info);
    if (s_check_artifact_args(client, run_id, artifact_path, "the artifact path",
                              err) != 0 ||
        trk_check_str(local_path, "the local path", 0, true, NULL, err) != 0)
        return -1;
    const char *path = artifact_path ? artifact_path : s_basename(local_path);
    if (!*path)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "'%s' names no file", local_path);
    int fd = open(local_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "cannot open '%s': %s", local_path, strerror(errno));
    int rc = s_upload(client, run_id, path, fd, local_path, progress, arg, info, err);
    close(fd);
    return rc;
}

int cairn_log_artifact(cairn_client_t *client, const char *run_id,
                       const char *local_path, const char *artifact_path,
                       cairn_progress_fn *progress, void *arg, cairn_err_t *err)
{
    return cairn_log_artifact_ex(client, run_id, local_path, artifact_path, progress,
                                 arg, NULL, err);
}

int cairn_log_artifact_fd(cairn_client_t *client, const char *run_id, int fd,
                          const char *artifact_path, cairn_progress_fn *progress,
                          void *arg, cairn_artifact_info_t *info, cairn_err_t *err)
{
    if (info) memset(info, 0, sizeof *info);
    if (s_check_artifact_args(client, run_id, artifact_path, "the artifact path",
                              err) != 0)
        return -1;
    if (!artifact_path)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "uploading a descriptor needs an artifact path");
    char name[32];
    if (fd == STDIN_FILENO)
        snprintf(name, sizeof name, "stdin");
    else
        snprintf(name, sizeof name, "fd %d", fd);
    return s_upload(client, run_id, artifact_path, fd, name, progress, arg, info, err);
}

/* A download: the bytes go to fd (a temporary file beside dest, or the
 * caller's descriptor). */
typedef struct download {
    cairn_client_t *client;
    const char *run_id, *path;
    const char *dest; /* the file it becomes; NULL: the caller's fd */
    char *tmp;        /* the temporary file beside dest, until renamed */
    int fd;
    /* The temporary file written with O_DIRECT (s_direct_start): an
     * aligned staging buffer holding [stage_off, offset), fewer than
     * DL_ALIGN bytes between chunks; NULL: written through the page cache. */
    unsigned char *stage;
    uint64_t stage_off;
    bool direct;       /* fd is O_DIRECT now (cleared for the tail, or if refused) */
    aio_context_t aio; /* its writes go through kernel AIO (0: pwrite) */
    bool started;      /* a chunk arrived */
    uint64_t retry_ms; /* the longest a chunk is asked for again */
    uint64_t offset, size;
    char hash[HASH_HEX + 1]; /* the server's, from the first reply */
    cairn_chash_t st;        /* of the algorithm the first reply names */
    msgpack_sbuffer sb;
} download_t;

static int s_open_tmp(download_t *d, cairn_err_t *err)
{
    const char *base = s_basename(d->dest);
    size_t dirlen = (size_t)(base - d->dest);
    if (!*base)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "'%s' names no file", d->dest);
    d->tmp = malloc(strlen(d->dest) + 16);
    if (!d->tmp) return trk_oom(err);
    sprintf(d->tmp, "%.*s.%s.XXXXXX", (int)dirlen, d->dest, base);
    d->fd = mkstemp(d->tmp);
    if (d->fd >= 0) (void)fcntl(d->fd, F_SETFD, FD_CLOEXEC);
    if (d->fd < 0) {
        int e = errno;
        free(d->tmp);
        d->tmp = NULL;
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot create a file beside '%s': %s", d->dest,
                             strerror(e));
    }
    return 0;
}

/* Pack get_artifact for CHUNK bytes at off into d->sb. */
static int s_get_pack(download_t *d, uint64_t off, cairn_err_t *err)
{
    msgpack_sbuffer_clear(&d->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &d->sb, msgpack_sbuffer_write);
    int fail = msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "run_id", d->run_id);
    cairn_pack_kv_str(&pk, "path", d->path);
    cairn_pack_cstr(&pk, "offset");
    fail |= msgpack_pack_uint64(&pk, off);
    cairn_pack_cstr(&pk, "length");
    fail |= msgpack_pack_uint32(&pk, CHUNK);
    return fail ? trk_oom(err) : 0;
}

/* Start the writeback of what was just written to the temporary file, so
 * that the fsync before the rename has little left to wait for (as the
 * server does for a blob). Best effort; not for the caller's descriptor. */
static void s_kick_writeback(const download_t *d, uint64_t off, size_t n)
{
    if (d->tmp && n)
        (void)sync_file_range(d->fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
}

/* ---- O_DIRECT ------------------------------------------------------------ */

/* Writing a download through the page cache costs about as much CPU as
 * hashing it (a kernel copy of every byte; docs/PERFORMANCE.md). The
 * temporary file of a download of DL_DIRECT_MIN bytes or more is written
 * with O_DIRECT instead, where its filesystem allows it: each reply is
 * copied into an aligned staging buffer and its whole blocks written at
 * aligned offsets. The tail (fewer than DL_ALIGN bytes) waits in the
 * buffer for the next reply, and the last one is written buffered, by
 * clearing O_DIRECT, before the fsync and the rename: simpler than padding
 * it to a block and cutting the file back, and it only ever costs one
 * page. Keeping the tail in memory is safe here, unlike the server's
 * upload: a download that fails removes its temporary file and starts
 * again, so no byte of it is ever read back.
 *
 * A direct write returns when the device has the bytes, so each one goes
 * through kernel AIO where it can (io_setup may be refused: aio-max-nr)
 * and the reply is hashed while the device writes, as the server does
 * with io_uring. The file is first given its full size (fallocate): a
 * direct write past the end of the file is synchronous on ext4 even
 * through AIO, one within it is not. */
#define DL_ALIGN 4096u              /* the buffer, offsets and lengths */
#define DL_DIRECT_MIN (1u << 20)    /* smaller files: the page cache */
#define DL_STAGE (CHUNK + DL_ALIGN) /* a reply and a tail */

/* Switch the temporary file to O_DIRECT if the download is large enough
 * and its filesystem takes it (else it stays buffered: tmpfs before Linux
 * 6.6, FUSE, ...). */
static void s_direct_start(download_t *d)
{
    void *stage = NULL;
    int fl = fcntl(d->fd, F_GETFL);
    /* On huge pages where it can be: a 4 MiB reply leaves as one request
     * rather than four or more (dio_buf.h). */
    if (d->size < DL_DIRECT_MIN || fl < 0 || !(stage = cairn_dio_buf_alloc(DL_STAGE)))
        return;
    if (fcntl(d->fd, F_SETFL, fl | O_DIRECT) != 0) {
        cairn_dio_buf_free(stage, DL_STAGE);
        return;
    }
    d->stage = stage;
    d->stage_off = 0;
    d->direct = true;
    /* Best effort, both: without them the writes are synchronous. */
    (void)fallocate(d->fd, 0, 0, (off_t)d->size);
    if (syscall(SYS_io_setup, 1, &d->aio) != 0) d->aio = 0;
}

/* Write the n staged bytes (whole blocks) at stage_off through AIO and
 * hash the reply (buf, len) while the device writes. false when AIO is not
 * in use or refused the write (nothing was hashed); else true, with *done
 * the bytes written (less than n when it failed: the caller writes the
 * rest with pwrite, which says why if it fails again). */
static bool s_aio_write(download_t *d, size_t n, const void *buf, size_t len,
                        size_t *done)
{
    struct iocb cb = {.aio_fildes = (uint32_t)d->fd,
                      .aio_lio_opcode = IOCB_CMD_PWRITE,
                      .aio_buf = (uint64_t)(uintptr_t)d->stage,
                      .aio_nbytes = n,
                      .aio_offset = (int64_t)d->stage_off};
    struct iocb *cbs[1] = {&cb};
    struct io_event ev;
    *done = 0;
    if (!d->aio || !d->direct || syscall(SYS_io_submit, d->aio, 1L, cbs) != 1)
        return false;
    cairn_chash_update(&d->st, buf, len);
    long got;
    do got = syscall(SYS_io_getevents, d->aio, 1L, 1L, &ev, NULL);
    while (got < 0 && errno == EINTR);
    if (got != 1) { /* cannot happen; io_destroy waits for the write */
        syscall(SYS_io_destroy, d->aio);
        d->aio = 0;
        return true;
    }
    if (ev.res > 0) *done = (size_t)ev.res;
    return true;
}

/* Clear O_DIRECT on the temporary file: for the tail, or when the
 * filesystem took the flag but refuses the writes. */
static int s_direct_off(download_t *d)
{
    int fl = fcntl(d->fd, F_GETFL);
    if (fl < 0 || fcntl(d->fd, F_SETFL, fl & ~O_DIRECT) != 0) return -1;
    d->direct = false;
    return 0;
}

/* Write the staged bytes [done, n) at stage_off + done. An EINVAL from a
 * direct write (an alignment the device wants larger) takes it, and every
 * later one, through the page cache. */
static int s_stage_write(download_t *d, size_t done, size_t n, cairn_err_t *err)
{
    while (done < n) {
        ssize_t r =
            pwrite(d->fd, d->stage + done, n - done, (off_t)(d->stage_off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EINVAL && d->direct && s_direct_off(d) == 0) continue;
        if (r <= 0)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                                 "cannot write '%s': %s", d->tmp,
                                 strerror(r < 0 ? errno : EIO));
        done += (size_t)r;
    }
    return 0;
}

/* Hash a reply's n bytes and append them at d->offset (at most CHUNK: the
 * reply was checked) through the staging buffer: its whole blocks are
 * written, the tail kept. */
static int s_stage_put(download_t *d, const void *buf, size_t n, cairn_err_t *err)
{
    size_t staged = (size_t)(d->offset - d->stage_off);
    memcpy(d->stage + staged, buf, n);
    staged += n;
    size_t whole = staged / DL_ALIGN * DL_ALIGN, done = 0;
    if (!whole || !s_aio_write(d, whole, buf, n, &done))
        cairn_chash_update(&d->st, buf, n);
    if (whole > done && s_stage_write(d, done, whole, err) != 0) return -1;
    memmove(d->stage, d->stage + whole, staged - whole);
    d->stage_off += whole;
    return 0;
}

/* The last tail, buffered, before the fsync. */
static int s_stage_finish(download_t *d, cairn_err_t *err)
{
    if (!d->stage || d->offset == d->stage_off) return 0;
    if (d->direct && s_direct_off(d) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot write '%s': %s", d->tmp, strerror(errno));
    return s_stage_write(d, 0, (size_t)(d->offset - d->stage_off), err);
}

/* Hash a reply's bytes and write them at d->offset, through the page cache
 * or the staging buffer. */
static int s_put(download_t *d, const void *buf, size_t n, cairn_err_t *err)
{
    if (d->stage) return s_stage_put(d, buf, n, err);
    cairn_chash_update(&d->st, buf, n);
    int rc = s_write_full(d->fd, buf, n, d->tmp ? d->tmp : "the output", err);
    s_kick_writeback(d, d->offset, n);
    return rc;
}

/* A get_artifact reply (obj) for the chunk at d->offset: check that it
 * follows on and is of the same blob, hash it and write it. *done says
 * whether it was the last. */
static int s_get_take(download_t *d, const msgpack_object *obj, bool *done,
                      cairn_err_t *err)
{
    const msgpack_object *data = s_mp(obj, "data", MSGPACK_OBJECT_BIN);
    const msgpack_object *off = s_mp(obj, "offset", MSGPACK_OBJECT_POSITIVE_INTEGER);
    const msgpack_object *size = s_mp(obj, "size", MSGPACK_OBJECT_POSITIVE_INTEGER);
    const msgpack_object *fin = s_mp(obj, "done", MSGPACK_OBJECT_BOOLEAN);
    char hash[HASH_HEX + 1], name[32];
    cairn_chash_alg_t alg;
    int rc = 0;
    if (!data || !off || !size || !fin || !s_mp_hash(obj, hash))
        rc = cairn_err_set(
            err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
            "the reply of artifacts.get_artifact lacks data, offset, size, "
            "hash or done");
    else if (!s_mp_alg(obj, &alg, name))
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the server hashes '%s' with '%s', which this SDK does not "
                           "know: upgrade it",
                           d->path, name);
    else if (d->started && (size->via.u64 != d->size || strcmp(hash, d->hash) != 0 ||
                            alg != d->st.alg))
        rc = cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CHANGED,
                           "'%s' changed while it was being downloaded; try again",
                           d->path);
    else if (off->via.u64 != d->offset || data->via.bin.size > CHUNK ||
             d->offset + data->via.bin.size > size->via.u64 ||
             (!fin->via.boolean && data->via.bin.size == 0) ||
             (fin->via.boolean && d->offset + data->via.bin.size != size->via.u64))
        rc = cairn_err_set(
            err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
            "the reply of artifacts.get_artifact does not follow on: offset %" PRIu64
            ", %" PRIu32 " bytes of %" PRIu64 ", asked for offset %" PRIu64,
            off->via.u64, data->via.bin.size, size->via.u64, d->offset);
    if (rc == 0 && !d->started) {
        d->started = true;
        d->size = size->via.u64;
        memcpy(d->hash, hash, sizeof hash);
        cairn_chash_init(&d->st, alg);
        if (d->dest && (rc = s_open_tmp(d, err)) == 0) s_direct_start(d);
    }
    if (rc != 0) return -1;
    rc = s_put(d, data->via.bin.ptr, data->via.bin.size, err);
    d->offset += data->via.bin.size;
    *done = fin->via.boolean;
    return rc;
}

/* Ask for the next chunk and write it. *done says whether it was the last.
 * get_artifact is idempotent: while the service restarts (503) or does not
 * answer in time (504) it is asked for again, the same offset
 * (s_retry_wait); what comes must still be the same blob. */
static int s_get_chunk(download_t *d, bool *done, cairn_err_t *err)
{
    if (s_get_pack(d, d->offset, err) != 0) return -1;
    cairn_reply_t *r = NULL;
    const msgpack_object *obj = NULL;
    retry_t rt;
    trk_retry_start(&rt, d->retry_ms);
    while (s_acall(d->client, "get_artifact", &d->sb, &r, &obj, err) != 0)
        if (s_retry_wait(&rt, !d->started, err,
                         "the download of '%s' at offset %" PRIu64, d->path,
                         d->offset) != 0)
            return -1;
    int rc = s_get_take(d, obj, done, err);
    cairn_reply_destroy(&r);
    return rc;
}

/* ---- the window of a download ---------------------------------------------- */

/* After the first chunk (which says the size), up to WINDOW get_artifact
 * requests are in flight, at the offsets that follow; their replies are
 * taken in order (hashed and written as they come) while the server reads
 * and sends the next. A failed one (a restart's 503, no reply) drops the
 * window and goes on one chunk at a time from the first byte not written
 * (s_get_chunk: the retries as before), then the window goes on. */
typedef struct get_slot {
    uint64_t off, id, due;
    cairn_reply_t *r;
} get_slot_t;

typedef struct get_window {
    get_slot_t q[WINDOW]; /* in flight, oldest first */
    int nq;
    uint64_t next; /* the offset the next request asks for */
    uint32_t ttl_ms;
} get_window_t;

static void s_gwin_drop(get_window_t *w)
{
    for (int i = 0; i < w->nq; i++) cairn_reply_destroy(&w->q[i].r);
    w->nq = 0;
}

static int s_gwin_fill(get_window_t *w, download_t *d, cairn_err_t *err)
{
    while (w->nq < WINDOW && w->next < d->size) {
        get_slot_t *s = &w->q[w->nq];
        if (s_get_pack(d, w->next, err) != 0 ||
            cairn_client_send(d->client, CAIRN_ARTIFACTS_SVC, "get_artifact",
                              d->sb.data, d->sb.size, 0, &s->id, err) != 0)
            return -1;
        s->off = w->next;
        s->due = cairn_now_ms() + w->ttl_ms + 1000;
        s->r = NULL;
        w->nq++;
        w->next += CHUNK;
    }
    return 0;
}

/* Wait for the oldest request's reply, keeping the others' that come
 * first; -1 with err (504 when none came in time). */
static int s_gwin_wait(get_window_t *w, download_t *d, cairn_err_t *err)
{
    get_slot_t *s = &w->q[0];
    while (!s->r) {
        uint64_t now = cairn_now_ms();
        cairn_reply_t *r = NULL;
        if (now >= s->due ||
            cairn_client_recv(d->client, (int)(s->due - now), &r, err) != 0) {
            if (now >= s->due || err->st == CAIRN_ST_TIMEOUT)
                return cairn_err_set(err, CAIRN_ST_TIMEOUT, "deadline_exceeded",
                                     "no reply from the kernel within %u ms (is cairnd "
                                     "running?)",
                                     w->ttl_ms);
            return -1;
        }
        int i = 0;
        while (i < w->nq && w->q[i].id != cairn_reply_id(r)) i++;
        if (i < w->nq && !w->q[i].r)
            w->q[i].r = r;
        else
            cairn_reply_destroy(&r);
    }
    return 0;
}

/* Take the oldest reply of the window: 0 when written, 1 when it failed in
 * a way that asking again may mend (the window is then dropped), -1. */
static int s_gwin_take(get_window_t *w, download_t *d, bool *done, cairn_err_t *err)
{
    int rc = s_gwin_wait(w, d, err);
    cairn_reply_t *r = w->q[0].r;
    if (rc == 0 && cairn_reply_status(r) >= CAIRN_ST_BAD_REQUEST) {
        const char *code = cairn_reply_code(r);
        rc = cairn_err_set(err, cairn_reply_status(r), *code ? code : NULL, "%s",
                           cairn_reply_error(r));
    }
    if (rc != 0) {
        s_gwin_drop(w);
        bool again = err->st == CAIRN_ST_UNAVAILABLE || err->st == CAIRN_ST_TIMEOUT ||
                     err->st == CAIRN_ST_OVERLOADED;
        return again ? 1 : -1;
    }
    const msgpack_object *obj = cairn_reply_object(r);
    if (!obj || obj->type != MSGPACK_OBJECT_MAP)
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the reply of artifacts.get_artifact is not a map");
    else
        rc = s_get_take(d, obj, done, err);
    cairn_reply_destroy(&w->q[0].r);
    memmove(w->q, w->q + 1, (size_t)(w->nq - 1) * sizeof w->q[0]);
    w->nq--;
    return rc;
}

/* Every chunk, the first alone, then through the window. */
static int s_get_all(download_t *d, cairn_progress_fn *progress, void *arg,
                     cairn_err_t *err)
{
    get_window_t w = {.ttl_ms = cairn_client_default_ttl(d->client)};
    bool done = false;
    int rc = 0;
    while (rc == 0 && !done) {
        if (!d->started || w.nq == 0) w.next = d->offset;
        if (!d->started)
            rc = s_get_chunk(d, &done, err);
        else if ((rc = s_gwin_fill(&w, d, err)) == 0 &&
                 (rc = s_gwin_take(&w, d, &done, err)) == 1)
            rc = s_get_chunk(d, &done, err); /* with its retries, then the window */
        if (rc == 0 && progress) progress(arg, d->offset, d->size);
    }
    s_gwin_drop(&w);
    return rc;
}

/* The temporary file becomes dest, with the mode a new file would get. */
static int s_commit(download_t *d, cairn_err_t *err)
{
    mode_t mask = umask(0);
    umask(mask);
    if (s_stage_finish(d, err) != 0) return -1;
    if (fchmod(d->fd, 0666 & ~mask) != 0 || fsync(d->fd) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot write '%s': %s", d->tmp, strerror(errno));
    int rc = close(d->fd);
    d->fd = -1;
    if (rc != 0 || rename(d->tmp, d->dest) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot write '%s': %s", d->dest, strerror(errno));
    free(d->tmp);
    d->tmp = NULL;
    return 0;
}

static int s_download(cairn_client_t *client, const char *run_id,
                      const char *artifact_path, const char *dest, int fd,
                      cairn_progress_fn *progress, void *arg,
                      cairn_artifact_info_t *info, cairn_err_t *err)
{
    download_t d = {.client = client,
                    .run_id = run_id,
                    .path = artifact_path,
                    .dest = dest,
                    .fd = dest ? -1 : fd,
                    .retry_ms = s_retry_ms()};
    msgpack_sbuffer_init(&d.sb);
    int rc = s_get_all(&d, progress, arg, err);
    msgpack_sbuffer_destroy(&d.sb);
    char hex[HASH_HEX + 1];
    if (rc == 0) cairn_chash_hex(&d.st, hex);
    if (rc == 0 && strcmp(hex, d.hash) != 0)
        rc =
            cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                          "'%s' arrived corrupt: its bytes hash to %s, the server says "
                          "%s%s",
                          d.path, hex, d.hash, d.tmp ? "; nothing was written" : "");
    if (rc == 0 && d.tmp) rc = s_commit(&d, err);
    if (d.tmp) {
        if (d.fd >= 0) close(d.fd);
        unlink(d.tmp);
        free(d.tmp);
    }
    if (d.aio) syscall(SYS_io_destroy, d.aio); /* none in flight: see s_aio_write */
    cairn_dio_buf_free(d.stage, DL_STAGE);
    if (rc == 0 && info) {
        info->path = strdup(artifact_path);
        if (!info->path) return trk_oom(err);
        info->size = d.size;
        memcpy(info->hash, d.hash, sizeof d.hash);
    }
    return rc;
}

int cairn_download_artifact_ex(cairn_client_t *client, const char *run_id,
                               const char *artifact_path, const char *local_path,
                               cairn_progress_fn *progress, void *arg,
                               cairn_artifact_info_t *info, cairn_err_t *err)
{
    if (info) memset(info, 0, sizeof *info);
    if (s_check_artifact_args(client, run_id, artifact_path, "the artifact path",
                              err) != 0 ||
        trk_check_str(artifact_path, "the artifact path", 0, true, NULL, err) != 0 ||
        trk_check_str(local_path, "the local path", 0, true, NULL, err) != 0)
        return -1;
    return s_download(client, run_id, artifact_path, local_path, -1, progress, arg,
                      info, err);
}

int cairn_download_artifact(cairn_client_t *client, const char *run_id,
                            const char *artifact_path, const char *local_path,
                            cairn_progress_fn *progress, void *arg, cairn_err_t *err)
{
    return cairn_download_artifact_ex(client, run_id, artifact_path, local_path,
                                      progress, arg, NULL, err);
}

int cairn_download_artifact_fd(cairn_client_t *client, const char *run_id,
                               const char *artifact_path, int fd,
                               cairn_progress_fn *progress, void *arg,
                               cairn_artifact_info_t *info, cairn_err_t *err)
{
    if (info) memset(info, 0, sizeof *info);
    if (s_check_artifact_args(client, run_id, artifact_path, "the artifact path",
                              err) != 0 ||
        trk_check_str(artifact_path, "the artifact path", 0, true, NULL, err) != 0)
        return -1;
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "fd %d is not open", fd);
    return s_download(client, run_id, artifact_path, NULL, fd, progress, arg, info,
                      err);
}
