/* The content hash of an artifact, of either algorithm (chash.h). */
#include "chash.h"

#include <string.h>

const char *cairn_chash_name(cairn_chash_alg_t alg)
{
    return alg == CAIRN_CHASH_SHA256 ? "sha256" : "blake2b";
}

bool cairn_chash_parse(const char *s, size_t n, cairn_chash_alg_t *alg)
{
    for (int a = CAIRN_CHASH_BLAKE2B; a <= CAIRN_CHASH_SHA256; a++) {
        const char *name = cairn_chash_name((cairn_chash_alg_t)a);
        if (s && strlen(name) == n && memcmp(name, s, n) == 0) {
            *alg = (cairn_chash_alg_t)a;
            return true;
        }
    }
    return false;
}

void cairn_chash_init(cairn_chash_t *h, cairn_chash_alg_t alg)
{
    h->alg = alg;
    if (alg == CAIRN_CHASH_SHA256)
        cairn_sha256_init(&h->u.s2);
    else
        crypto_generichash_init(&h->u.b2, NULL, 0, CAIRN_CHASH_BYTES);
}

void cairn_chash_update(cairn_chash_t *h, const void *buf, size_t len)
{
    if (h->alg == CAIRN_CHASH_SHA256)
        cairn_sha256_update(&h->u.s2, buf, len);
    else
        crypto_generichash_update(&h->u.b2, buf, len);
}

void cairn_chash_final(cairn_chash_t *h, unsigned char out[CAIRN_CHASH_BYTES])
{
    if (h->alg == CAIRN_CHASH_SHA256)
        cairn_sha256_final(&h->u.s2, out);
    else
        crypto_generichash_final(&h->u.b2, out, CAIRN_CHASH_BYTES);
}

void cairn_chash_hex(cairn_chash_t *h, char hex[CAIRN_CHASH_HEX + 1])
{
    unsigned char d[CAIRN_CHASH_BYTES];
    cairn_chash_final(h, d);
    sodium_bin2hex(hex, CAIRN_CHASH_HEX + 1, d, sizeof d);
}
