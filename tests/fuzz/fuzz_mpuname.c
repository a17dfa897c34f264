/* libFuzzer target: the names of a multipart upload's files and the
 * identifiers a client sends for it (plugins/storage/mpuname.c). The
 * names are read back from a directory after a restart (a stranger's
 * file, a torn rename), the part numbers and etags come from clients.
 *
 * 1. mpu_name_parse either says MPU_OTHER or names a file whose fields obey
 *    the rules (a part number 1 .. MPU_PARTS_MAX; a hash of 64 lowercase
 *    hex digits; a token of 16), and mpu_name_part / mpu_name_staging
 *    write it back to exactly the same bytes.
 * 2. mpu_number_parse and mpu_num_parts_parse accept only what "%u" and
 *    "%u\n" write, in range.
 * 3. mpu_etag_parse gives 64 lowercase hex digits, which parse to
 *    themselves, and accepts the bytes with their quotes taken off (or
 *    put on) alike.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_mpuname
 * (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpuname.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static void s_names(const char *p, size_t n)
{
    mpu_name_t nm;
    char back[MPU_NAME_MAX];
    int len = -1;
    switch (mpu_name_parse(p, n, &nm)) {
        case MPU_OTHER:
            return;
        case MPU_META:
            REQUIRE(n == 4 && !memcmp(p, "meta", 4));
            return;
        case MPU_NUM_PARTS:
            REQUIRE(n == 9 && !memcmp(p, "num_parts", 9));
            return;
        case MPU_PART:
            REQUIRE(mpu_hex_valid(nm.hex, strlen(nm.hex), MPU_HEX_LEN));
            len = mpu_name_part(back, sizeof back, nm.number, nm.hex);
            break;
        case MPU_STAGING:
            REQUIRE(mpu_hex_valid(nm.token, strlen(nm.token), MPU_TOKEN_LEN));
            len = mpu_name_staging(back, sizeof back, nm.number, nm.token);
            break;
    }
    REQUIRE(nm.number >= 1 && nm.number <= MPU_PARTS_MAX);
    REQUIRE(len >= 0 && (size_t)len == n && !memcmp(back, p, n));
}

static void s_numbers(const char *p, size_t n)
{
    uint32_t v = 0;
    char back[16];
    if (mpu_number_parse(p, n, &v)) {
        REQUIRE(v >= 1 && v <= MPU_PARTS_MAX);
        int k = snprintf(back, sizeof back, "%u", (unsigned)v);
        REQUIRE((size_t)k == n && !memcmp(back, p, n));
    }
    if (mpu_num_parts_parse(p, n, &v)) {
        REQUIRE(v >= 1 && v <= MPU_PARTS_MAX);
        int k = snprintf(back, sizeof back, "%u\n", (unsigned)v);
        REQUIRE((size_t)k == n && !memcmp(back, p, n));
    }
}

static void s_etag(const char *p, size_t n)
{
    char hex[MPU_HEX_LEN + 1], again[MPU_HEX_LEN + 1], quoted[MPU_HEX_LEN + 3];
    if (!mpu_etag_parse(p, n, hex)) return;
    REQUIRE(strlen(hex) == MPU_HEX_LEN && mpu_hex_valid(hex, MPU_HEX_LEN, MPU_HEX_LEN));
    REQUIRE(mpu_etag_parse(hex, MPU_HEX_LEN, again) && !strcmp(hex, again));
    snprintf(quoted, sizeof quoted, "\"%s\"", hex);
    REQUIRE(mpu_etag_parse(quoted, MPU_HEX_LEN + 2, again) && !strcmp(hex, again));
    REQUIRE(n == MPU_HEX_LEN || n == MPU_HEX_LEN + 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes: ASan sees any read past them */
    char *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    s_names(p, size);
    s_numbers(p, size);
    s_etag(p, size);
    (void)mpu_hex_valid(p, size, MPU_ID_LEN);
    free(p);
    return 0;
}
