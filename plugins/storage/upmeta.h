/* plugins/storage/upmeta.h — the sidecar of a resumable upload: what a
 * restart needs to resume an upload of the artifacts role (artifacts.c).
 *
 * ROOT/tmp/<upload_id>.meta (cas.c), text:
 *     cairn-upload 1
 *     rid 42
 *     run_id 5c0f...
 *     created 1717171717171      (wall clock, ms)
 *     path model/weights.bin     (normalized: no control characters)
 * and, once the last chunk is in (just before the blob is moved into
 * place):
 *     alg sha256                 (the hash's algorithm, cas.h)
 *     hash 3ececd8c...           (of the whole file)
 *     size 20000000
 * A committed sidecar without the alg line is BLAKE2b-256: every sidecar
 * written before SHA-256 (so "alg blake2b" is never written, nor taken).
 * A sidecar with a hash whose temp file is gone is an upload that was
 * committed but maybe not indexed when the process died: the next start
 * indexes it (artifacts.c, s_recover_committed).
 *
 * The file is read back from disk after a crash, so upmeta_parse takes
 * arbitrary bytes (a torn write, garbage; tests/fuzz/fuzz_upmeta.c). It
 * accepts exactly what upmeta_format writes: numbers in decimal without
 * sign (rid may be negative), leading zeros or spaces; a run_id of 1 ..
 * UPMETA_RUN_ID_MAX bytes without control characters; a path that is
 * already normalized (upmeta_path_norm leaves it as it is: no '..', no
 * control characters, valid UTF-8); an alg line only before a hash; a
 * hash of 64 lowercase hex digits;
 * nothing after the last line. So a sidecar it accepts formats back to
 * the same bytes.
 */
#ifndef STORAGE_UPMETA_H
#define STORAGE_UPMETA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cas.h"

#define UPMETA_RUN_ID_MAX 64 /* bytes of a run_id */
#define UPMETA_PATH_MAX 1024 /* bytes of an artifact path */

typedef struct upmeta {
    int64_t rid;
    uint64_t created; /* wall clock, ms */
    char run_id[UPMETA_RUN_ID_MAX + 1];
    char path[UPMETA_PATH_MAX + 1];
    bool committed; /* alg, hash and size are set */
    cairn_chash_alg_t alg;
    char hash[CAS_HEX_LEN + 1];
    uint64_t size;
} upmeta_t;

/* Write m's sidecar into buf (NUL-terminated; alg, hash and size only
 * when m->committed) and return its length; -1 when it does not fit in cap or
 * a field breaks a rule upmeta_parse holds it to. */
int upmeta_format(char *buf, size_t cap, const upmeta_t *m);

/* Read a sidecar (len bytes, not NUL-terminated) into *m; false when it
 * is not one upmeta_format could have written. */
bool upmeta_parse(const char *buf, size_t len, upmeta_t *m);

/* Artifact paths (the rules of artifacts.c, held here so that a sidecar's
 * path obeys them too): relative, '/'-separated, valid UTF-8, no control
 * characters, no '..' segment and no leading '/'; empty and '.' segments
 * are dropped ("a//./b" is "a/b"). */
typedef enum upmeta_path_err {
    UPMETA_PATH_OK = 0,
    UPMETA_PATH_ABSOLUTE, /* a leading '/' */
    UPMETA_PATH_CONTROL,  /* a byte < 0x20 or 0x7f */
    UPMETA_PATH_UTF8,     /* not valid UTF-8 */
    UPMETA_PATH_DOTDOT,   /* a '..' segment */
} upmeta_path_err_t;

/* Normalize the n bytes at p into out (which holds n + 1 bytes; NUL-
 * terminated) and its length into *out_len (0: the root); on an error
 * out is unspecified. */
upmeta_path_err_t upmeta_path_norm(const char *p, size_t n, char *out, size_t *out_len);

#endif
