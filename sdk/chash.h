/* sdk/chash.h — the content hash of an artifact: one running hash of
 * either algorithm the artifact store names blobs by.
 *
 * SHA-256 (sha256.h, on the CPU's SHA extensions) names every blob stored
 * now; BLAKE2b-256 (libsodium's crypto_generichash, 32 bytes) every blob
 * stored before, which stays readable. The server (plugins/storage/cas.c)
 * and the C SDK's transfers (transfer.c) hash with the same code, and the
 * replies name the algorithm ("hash_alg": cairn_chash_name).
 *
 * Part of the static library cairn_sha256 (linked into libcairn, hidden
 * there, and into the storage plugin and the bench); no ABI of its own. */
#ifndef CAIRN_CHASH_H
#define CAIRN_CHASH_H

#include <stdbool.h>
#include <stddef.h>

#include <sodium.h>

#include "sha256.h"

#define CAIRN_CHASH_BYTES 32
#define CAIRN_CHASH_HEX 64 /* plus a NUL: char hex[CAIRN_CHASH_HEX + 1] */

/* BLAKE2B is 0: what a record written before SHA-256 (no alg) means. */
typedef enum { CAIRN_CHASH_BLAKE2B = 0, CAIRN_CHASH_SHA256 = 1 } cairn_chash_alg_t;

typedef struct cairn_chash {
    union {
        crypto_generichash_state b2; /* 64-byte aligned */
        cairn_sha256_t s2;
    } u;
    cairn_chash_alg_t alg;
} cairn_chash_t;

/* "sha256" or "blake2b". */
const char *cairn_chash_name(cairn_chash_alg_t alg);
/* The algorithm named by the n bytes at s; false when it is neither. */
bool cairn_chash_parse(const char *s, size_t n, cairn_chash_alg_t *alg);

void cairn_chash_init(cairn_chash_t *h, cairn_chash_alg_t alg);
void cairn_chash_update(cairn_chash_t *h, const void *buf, size_t len);
/* The digest; h must be initialized again before reuse. */
void cairn_chash_final(cairn_chash_t *h, unsigned char out[CAIRN_CHASH_BYTES]);
/* The same as 64 lowercase hex digits. */
void cairn_chash_hex(cairn_chash_t *h, char hex[CAIRN_CHASH_HEX + 1]);

#endif
