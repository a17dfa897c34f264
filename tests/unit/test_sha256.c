/* SHA-256 (sdk/sha256.h): FIPS 180-4's examples, and agreement with
 * libsodium's crypto_hash_sha256 for every length around the block and
 * padding edges, whole and fed in random pieces, through the SHA-extension
 * compression function (where the CPU has it) and the portable one. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "unit.h"

static void s_hex(const unsigned char d[CAIRN_SHA256_BYTES], char out[65])
{
    sodium_bin2hex(out, 65, d, CAIRN_SHA256_BYTES);
}

static void s_check_vectors(void)
{
    static const struct {
        const char *in, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned char d[CAIRN_SHA256_BYTES];
        char hex[65];
        cairn_sha256(d, v[i].in, strlen(v[i].in));
        s_hex(d, hex);
        CHECK(strcmp(hex, v[i].hex) == 0);
    }
}

/* Every length 0..600 and some large ones, whole and in random pieces,
 * against libsodium. */
static void s_check_against_sodium(void)
{
    size_t max = 1 << 20;
    unsigned char *buf = malloc(max);
    CHECK(buf != NULL);
    if (!buf) return;
    randombytes_buf(buf, max);
    size_t lens[700], n = 0;
    for (size_t l = 0; l <= 600; l++) lens[n++] = l;
    size_t big[] = {4095, 4096, 4097, 65536 + 63, 1 << 20};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) lens[n++] = big[i];
    for (size_t i = 0; i < n; i++) {
        size_t len = lens[i];
        unsigned char want[CAIRN_SHA256_BYTES], got[CAIRN_SHA256_BYTES];
        crypto_hash_sha256(want, buf, len);
        cairn_sha256(got, buf, len);
        CHECK(memcmp(want, got, sizeof got) == 0);
        cairn_sha256_t st;
        cairn_sha256_init(&st);
        for (size_t at = 0; at < len;) {
            size_t piece = 1 + randombytes_uniform(len < 200 ? 70 : 9000);
            if (piece > len - at) piece = len - at;
            cairn_sha256_update(&st, buf + at, piece);
            at += piece;
        }
        cairn_sha256_final(&st, got);
        CHECK(memcmp(want, got, sizeof got) == 0);
    }
    free(buf);
}

TEST(detected_compression)
{
    cairn_sha256_force_portable(false);
    printf("     (SHA extensions %s)\n",
           cairn_sha256_accelerated() ? "in use" : "absent");
    s_check_vectors();
    s_check_against_sodium();
}

TEST(portable_compression)
{
    cairn_sha256_force_portable(true);
    CHECK(!cairn_sha256_accelerated());
    s_check_vectors();
    s_check_against_sodium();
    cairn_sha256_force_portable(false);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    RUN(detected_compression);
    RUN(portable_compression);
    return unit_report();
}
