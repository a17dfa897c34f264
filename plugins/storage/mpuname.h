/* plugins/storage/mpuname.h — the names of a multipart upload's files
 * (multipart.c), read back from a directory after a restart, and the
 * identifiers a client sends for it (an upload id, a part's etag).
 *
 * ROOT/mpu/<upload_id>/ holds:
 *     meta               the upload's record (upmeta.h: rid, run_id,
 *                        created, path), never committed
 *     num_parts          "N\n", N from 1 to MPU_PARTS_MAX
 *     <N>.<64 hex>       part N, finished: named by its SHA-256 (its etag)
 *     <N>.tmp-<16 hex>   part N being written (one per PUT of it)
 * N is written in decimal without sign or leading zeros, from 1 to
 * MPU_PARTS_MAX. Anything else in the directory is a stranger.
 *
 * Pure functions over arbitrary bytes (tests/fuzz/fuzz_mpuname.c). */
#ifndef STORAGE_MPUNAME_H
#define STORAGE_MPUNAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MPU_PARTS_MAX 10000u
#define MPU_ID_LEN 32    /* lowercase hex */
#define MPU_TOKEN_LEN 16 /* lowercase hex */
#define MPU_HEX_LEN 64   /* a part's SHA-256 */
#define MPU_NAME_MAX 96  /* the longest name above, with room */

typedef enum mpu_kind {
    MPU_OTHER = 0,
    MPU_META,
    MPU_NUM_PARTS,
    MPU_PART,    /* number, hex */
    MPU_STAGING, /* number, token */
} mpu_kind_t;

typedef struct mpu_name {
    mpu_kind_t kind;
    uint32_t number;
    char hex[MPU_HEX_LEN + 1];     /* MPU_PART */
    char token[MPU_TOKEN_LEN + 1]; /* MPU_STAGING */
} mpu_name_t;

/* What the n bytes at p name (a directory entry; need not be
 * NUL-terminated). */
mpu_kind_t mpu_name_parse(const char *p, size_t n, mpu_name_t *out);

/* Write the name of a part (hex) or a staging file (token) into buf
 * (cap bytes, NUL-terminated); -1 when the fields break the rules. */
int mpu_name_part(char *buf, size_t cap, uint32_t number, const char *hex);
int mpu_name_staging(char *buf, size_t cap, uint32_t number, const char *token);

/* n lowercase hex digits exactly. */
bool mpu_hex_valid(const char *p, size_t len, size_t n);

/* A part number as the client sends it in a URL: decimal, no sign, no
 * leading zero, 1 .. MPU_PARTS_MAX. */
bool mpu_number_parse(const char *p, size_t n, uint32_t *out);

/* The file num_parts ("N\n", N a part number); false for anything else. */
bool mpu_num_parts_parse(const char *p, size_t n, uint32_t *out);

/* An etag as a client returns it: 64 hex digits, in double quotes or not
 * (HTTP's ETag header quotes it; S3-minded clients keep the quotes), any
 * case: into hex (lowercase, NUL-terminated). */
bool mpu_etag_parse(const char *p, size_t n, char hex[MPU_HEX_LEN + 1]);

#endif
