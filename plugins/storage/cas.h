/* plugins/storage/cas.h — the content-addressed blob store under the
 * artifact root.
 *
 * A blob is named by the hash of its bytes, as 64 lowercase hex digits,
 * under the directory of its algorithm: new blobs by their SHA-256 at
 * ROOT/sha256/<first 2 hex>/<other 62 hex>, blobs stored before SHA-256 by
 * their BLAKE2b-256 (libsodium crypto_generichash, 32 bytes) at
 * ROOT/cas/<2>/<62>, where they stay readable. The same bytes are stored
 * once per algorithm: (algorithm, hash) names a blob.
 *
 * Blobs are written through a writer that streams into ROOT/tmp/<name>,
 * hashing as it goes (never holding the blob in memory); commit fsyncs the
 * file, renames it into place (or drops it when the blob exists: dedup) and
 * fsyncs the directory, so a crash leaves either no blob or a whole one —
 * never a torn file under cas/ or sha256/. Leftovers in tmp/ are swept by
 * cas_sweep_tmp.
 *
 * Resuming. A writer may carry a sidecar, ROOT/tmp/<name>.meta (the '.'
 * never occurs in a name), holding whatever its owner needs to take the
 * writer up again after a restart (the artifacts role: run and path).
 * cas_writer_resume reopens ROOT/tmp/<name>, cuts it to the length the
 * owner last acknowledged and rebuilds the hash state from the bytes on
 * disk (cas_writer_rehash, in slices the caller chooses). Commit and abort
 * remove the sidecar (unless cas_writer_keep_meta leaves that to the
 * owner, who may record the final hash in it first); cas_writer_release closes a writer
 * and keeps both files for a later resume. A writer holds an flock on its temp file for
 * its life, so that two writers (two instances sharing a root) never hold
 * the same file and the sweep never takes a file a writer holds.
 *
 * File I/O goes through io_uring where the kernel allows it (a write is
 * queued, the chunk is hashed while it is in flight, then the completion
 * is reaped) and falls back to pwrite/pread where io_uring_queue_init
 * fails (seccomp in containers, io_uring_disabled). A writer whose first
 * write is large writes its whole blocks with O_DIRECT from an aligned
 * staging buffer (no page-cache copy; cas.c, "direct writes") where the
 * filesystem allows it, and buffered otherwise; the file is the same
 * either way. A cas_t and its writers belong to one thread.
 */
#ifndef STORAGE_CAS_H
#define STORAGE_CAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"
#include "chash.h"

#define CAS_HASH_BYTES CAIRN_CHASH_BYTES
#define CAS_HEX_LEN CAIRN_CHASH_HEX /* plus a NUL: char hex[CAS_HEX_LEN + 1] */
#define CAS_NAME_MAX 64             /* longest writer (tmp file) name */

typedef struct cas cas_t;
typedef struct cas_writer cas_writer_t;

/* Open (creating ROOT, ROOT/cas, ROOT/sha256 and ROOT/tmp) the store at
 * root. With try_uring, set up an io_uring and fall back to pread/pwrite
 * if that fails; cas_io_mode says which is in use and why. */
cas_t *cas_open(const char *root, bool try_uring, cairn_err_t *err);
void cas_destroy(cas_t **self_p);

/* "io_uring" or "pread/pwrite". */
const char *cas_io_mode(const cas_t *c);
/* Why io_uring is not in use ("" when it is, or was not tried). */
const char *cas_io_reason(const cas_t *c);
const char *cas_root(const cas_t *c);
/* Whether writers may write with O_DIRECT (on by default; off for good
 * once the filesystem refuses it). Tests turn it off to take the
 * buffered path. */
void cas_set_direct(cas_t *c, bool on);
/* The most a writer's staging buffer for O_DIRECT holds: a writer's
 * memory, beside its hash state, where a buffered one would hold a chunk of
 * dirty page cache. */
#define CAS_STAGE_MAX ((8u << 20) + 4096u)

/* Hashing. A blob's content hash is one of two algorithms (sdk/chash.h,
 * shared with the SDK's transfers): BLAKE2b-256 (every blob stored before
 * SHA-256) or SHA-256 (on the CPU's SHA extensions: twice as fast here).
 * What every writer hashes with: a blob's name is final, so the legacy
 * algorithm is only ever read. */
#define CAS_ALG_NEW CAIRN_CHASH_SHA256
/* The hash of a buffer in one go. */
void cas_hash_buf(cairn_chash_alg_t alg, const void *buf, size_t len,
                  char hex[CAS_HEX_LEN + 1]);
/* 64 lowercase hex digits and nothing else. */
bool cas_hex_valid(const char *hex, size_t len);

/* ---- writing --------------------------------------------------------- */

/* A new blob being written to ROOT/tmp/<name>; name is [A-Za-z0-9_-],
 * 1..CAS_NAME_MAX bytes, and must not be in use (409 if it is). */
cas_writer_t *cas_writer_new(cas_t *c, const char *name, cairn_err_t *err);
/* Append len bytes (hashed as they go). On failure the writer is still
 * valid but its content is unknown: abort it. */
int cas_writer_write(cas_writer_t *w, const void *buf, size_t len, cairn_err_t *err);
uint64_t cas_writer_size(const cas_writer_t *w);
/* Whether its whole blocks are written with O_DIRECT (tests). */
bool cas_writer_direct(const cas_writer_t *w);
/* The algorithm its hash is (CAS_ALG_NEW): what commit names the blob by. */
cairn_chash_alg_t cas_writer_alg(const cas_writer_t *w);
/* Make the bytes durable and content-addressed: fsync, then rename into
 * the directory of the writer's algorithm (or drop the temp file when
 * that blob exists already). Frees the writer (success or not) and sets
 * *w_p to NULL. dedup (may be NULL) tells whether the blob was already
 * there. */
int cas_writer_commit(cas_writer_t **w_p, char hex[CAS_HEX_LEN + 1], uint64_t *size,
                      bool *dedup, cairn_err_t *err);
/* The hash of everything written, ahead of commit (which then uses it); the
 * writer takes no more writes. */
int cas_writer_digest(cas_writer_t *w, char hex[CAS_HEX_LEN + 1], cairn_err_t *err);
/* Commit and abort leave this writer's sidecar in place: its owner removes
 * it (cas_tmp_remove) once the blob is recorded where it needs to be, so
 * that a crash in between can be recovered from the sidecar. */
void cas_writer_keep_meta(cas_writer_t *w);
/* Drop a writer, its temp file and its sidecar; safe with NULL. */
void cas_writer_abort(cas_writer_t **w_p);
/* Close a writer and keep its temp file and sidecar (a later
 * cas_writer_resume takes them up); safe with NULL. */
void cas_writer_release(cas_writer_t **w_p);
/* fdatasync what was written so far (durability=power: before a chunk is
 * acknowledged). */
int cas_writer_sync(cas_writer_t *w, cairn_err_t *err);

/* Write the writer's sidecar (at most CAS_META_MAX bytes, replacing any).
 * With sync it is fsync'ed, and so is ROOT/tmp, which makes the temp
 * file's and the sidecar's names durable too. */
#define CAS_META_MAX 4096
int cas_writer_set_meta(cas_writer_t *w, const void *meta, size_t len, bool sync,
                        cairn_err_t *err);
/* Read the sidecar of the temp blob name into buf (cap bytes; *len gets
 * its length). 404 not_found when there is none or name is not a temp
 * name; 500 when it is larger than cap. *mtime_ms (may be NULL) gets the
 * temp file's last modification (wall clock, ms since the epoch), 0 when
 * the temp file is missing. */
int cas_meta_read(cas_t *c, const char *name, void *buf, size_t cap, size_t *len,
                  int64_t *mtime_ms, cairn_err_t *err);
/* Remove the temp file name and its sidecar unless a writer holds them;
 * returns how many files went. */
int cas_tmp_remove(cas_t *c, const char *name);

/* Take up the writer of ROOT/tmp/<name> again after a restart: the file
 * must hold at least upto bytes (409 conflict otherwise; *have, may be
 * NULL, gets its size whenever the file was found), is cut to upto bytes
 * (anything after may be a write that was never acknowledged), and its
 * hash state is rebuilt from [0, upto) by cas_writer_rehash before any
 * write. 404 not_found when the file is missing; 503 unavailable when
 * another writer holds it (a process that is still dying: try again). The sidecar is
 * kept (and removed at commit or abort). */
cas_writer_t *cas_writer_resume(cas_t *c, const char *name, uint64_t upto,
                                uint64_t *have, cairn_err_t *err);
/* Hash up to max bytes (0: all) more of a resumed writer's content, 1 MiB
 * per read; *left gets what remains (0: ready; writes before are refused).
 * On failure the writer is still valid: release it (the bytes stay). */
int cas_writer_rehash(cas_writer_t *w, uint64_t max, uint64_t *left, cairn_err_t *err);

/* Store a buffer in one go (tests, small blobs). */
int cas_put(cas_t *c, const char *name, const void *buf, size_t len,
            char hex[CAS_HEX_LEN + 1], bool *dedup, cairn_err_t *err);

/* Sweep ROOT/tmp; returns how many files were removed. A temp file a
 * writer holds stays. Of the others: a temp file with its sidecar stays
 * while it was modified at most older_than_s seconds ago (it may be
 * resumed), else both go (0: all go); a temp file without a sidecar (no
 * one can resume it), a sidecar without its temp file and anything else
 * go. */
int cas_sweep_tmp(cas_t *c, uint64_t older_than_s);

/* Call fn(arg, name) for each sidecar in ROOT/tmp whose temp file is gone
 * (fn may remove it); returns how many. */
typedef void(cas_name_fn)(void *arg, const char *name);
int cas_meta_alone(cas_t *c, cas_name_fn *fn, void *arg);

/* ---- reading --------------------------------------------------------- */

/* The path of a blob: ROOT/sha256/ab/cdef... or ROOT/cas/ab/cdef... (-1 if
 * hex is not a hash or the path does not fit). */
int cas_blob_path(const cas_t *c, cairn_chash_alg_t alg, const char *hex, char *out,
                  size_t cap);
/* Remove a blob no artifact names any more; *freed gets its size (0 when
 * it was already gone). Open descriptors keep reading what they had. */
int cas_remove(cas_t *c, cairn_chash_alg_t alg, const char *hex, uint64_t *freed,
               cairn_err_t *err);
/* Open a blob read-only: *fd and *size; 404 not_found when missing. */
int cas_open_blob(cas_t *c, cairn_chash_alg_t alg, const char *hex, int *fd,
                  uint64_t *size, cairn_err_t *err);
/* Read up to len bytes at off into buf; *got < len only at the end of
 * the file. */
int cas_pread(cas_t *c, int fd, void *buf, size_t len, uint64_t off, size_t *got,
              cairn_err_t *err);
/* Rehash a blob with its algorithm, streaming (1 MiB at a time). *ok is
 * whether it matches its name; actual (may be NULL) receives the hash of
 * what is on disk. A missing blob is an error (404). */
int cas_verify(cas_t *c, cairn_chash_alg_t alg, const char *hex, bool *ok,
               char actual[CAS_HEX_LEN + 1], cairn_err_t *err);

#endif
