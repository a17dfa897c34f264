/* sdk/sha256.h — SHA-256 (FIPS 180-4), incremental, on the CPU's SHA
 * extensions where it has them.
 *
 * Why not libsodium's crypto_hash_sha256: it is portable C, about 0.3 GB/s
 * here, while the x86 SHA extensions (SHA-NI, on every AMD Zen and recent
 * Intel core) do about 1.3 GB/s: content addressing hashes every byte of
 * every artifact on both ends of a transfer, so the hash is most of a
 * transfer's CPU. The compression function is chosen once, at the first
 * use; the portable one gives the same digests everywhere.
 *
 * A static library (cairn_sha256), linked into libcairn and the plugins
 * that hash content; no ABI of its own. */
#ifndef CAIRN_SHA256_H
#define CAIRN_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_SHA256_BYTES 32
#define CAIRN_SHA256_BLOCK 64

typedef struct cairn_sha256 {
    uint32_t h[8];
    uint64_t bytes; /* hashed so far */
    unsigned char buf[CAIRN_SHA256_BLOCK];
    size_t nbuf; /* bytes waiting in buf for a whole block */
} cairn_sha256_t;

void cairn_sha256_init(cairn_sha256_t *st);
void cairn_sha256_update(cairn_sha256_t *st, const void *data, size_t len);
/* The digest; st is wiped and must be initialized again before reuse. */
void cairn_sha256_final(cairn_sha256_t *st, unsigned char out[CAIRN_SHA256_BYTES]);
/* One call for a whole buffer. */
void cairn_sha256(unsigned char out[CAIRN_SHA256_BYTES], const void *data, size_t len);

/* Whether the SHA extensions are in use (for benches and logs). */
bool cairn_sha256_accelerated(void);
/* Tests: force the portable compression function (true) or the detected
 * one (false) for every later block. */
void cairn_sha256_force_portable(bool portable);

#endif
