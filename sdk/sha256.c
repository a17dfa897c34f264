/* SHA-256 (see sha256.h): the buffering, a portable compression function,
 * and one on the x86 SHA extensions, chosen at the first block. */
#include "sha256.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define SHA256_X86 1
#endif

/* The first 32 bits of the fractional parts of the cube roots of the first
 * 64 primes (FIPS 180-4, 4.2.2). */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

typedef void(blocks_fn)(uint32_t h[8], const unsigned char *p, size_t n);

/* ---- portable ------------------------------------------------------------ */

static uint32_t s_rotr(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static uint32_t s_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void s_blocks_portable(uint32_t h[8], const unsigned char *p, size_t n)
{
    for (; n; n--, p += CAIRN_SHA256_BLOCK) {
        uint32_t w[64];
        for (int t = 0; t < 16; t++) w[t] = s_be32(p + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 =
                s_rotr(w[t - 15], 7) ^ s_rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 =
                s_rotr(w[t - 2], 17) ^ s_rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6],
                 hh = h[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = hh + (s_rotr(e, 6) ^ s_rotr(e, 11) ^ s_rotr(e, 25)) +
                          ((e & f) ^ (~e & g)) + K[t] + w[t];
            uint32_t t2 = (s_rotr(a, 2) ^ s_rotr(a, 13) ^ s_rotr(a, 22)) +
                          ((a & b) ^ (a & c) ^ (b & c));
            hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d;
        h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
    }
}

/* ---- the SHA extensions ------------------------------------------------------ */

#ifdef SHA256_X86
/* The extensions keep the state as two vectors, ABEF and CDGH, and take the
 * message four words at a time: sha256msg1/msg2 extend the schedule, and
 * each sha256rnds2 does two rounds. */
__attribute__((target("sha,sse4.1,ssse3"))) static void s_blocks_shani(
    uint32_t h[8], const unsigned char *p, size_t n)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&h[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&h[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    for (; n; n--, p += CAIRN_SHA256_BLOCK) {
        __m128i abef0 = abef, cdgh0 = cdgh, w[4];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) { /* rounds 4i .. 4i+3 */
            __m128i m;
            if (i < 4) {
                m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)),
                                     bswap);
            } else { /* w[i&3] is words 4(i-4).., then i-3, i-2, i-1 follow */
                m = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);
                m = _mm_add_epi32(m,
                                  _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4));
                m = _mm_sha256msg2_epu32(m, w[(i + 3) & 3]);
            }
            w[i & 3] = m;
            __m128i mk = _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&K[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, mk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(mk, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}

/* CPUID: leaf 7's EBX bit 29 (SHA), leaf 1's ECX bits 19 (SSE4.1) and 9
 * (SSSE3). (__builtin_cpu_supports("sha") is gcc's only.) */
static bool s_cpu_has_sha(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9)))
        return false;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29));
}
#endif

/* ---- the choice, and the buffering ------------------------------------------ */

static _Atomic(blocks_fn *) s_blocks;
static atomic_bool s_portable_forced;

static blocks_fn *s_choose(void)
{
    blocks_fn *f = atomic_load_explicit(&s_blocks, memory_order_relaxed);
    if (f) return f;
    f = s_blocks_portable;
#ifdef SHA256_X86
    if (!atomic_load(&s_portable_forced) && s_cpu_has_sha()) f = s_blocks_shani;
#endif
    atomic_store_explicit(&s_blocks, f, memory_order_relaxed);
    return f;
}

bool cairn_sha256_accelerated(void)
{
#ifdef SHA256_X86
    return s_choose() == s_blocks_shani;
#else
    return false;
#endif
}

void cairn_sha256_force_portable(bool portable)
{
    atomic_store(&s_portable_forced, portable);
    atomic_store(&s_blocks, (blocks_fn *)NULL);
}

void cairn_sha256_init(cairn_sha256_t *st)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(st->h, iv, sizeof iv);
    st->bytes = 0;
    st->nbuf = 0;
}

void cairn_sha256_update(cairn_sha256_t *st, const void *data, size_t len)
{
    const unsigned char *p = data;
    blocks_fn *blocks = s_choose();
    st->bytes += len;
    if (st->nbuf) { /* top up the waiting block first */
        size_t take =
            CAIRN_SHA256_BLOCK - st->nbuf < len ? CAIRN_SHA256_BLOCK - st->nbuf : len;
        memcpy(st->buf + st->nbuf, p, take);
        st->nbuf += take, p += take, len -= take;
        if (st->nbuf < CAIRN_SHA256_BLOCK) return;
        blocks(st->h, st->buf, 1);
        st->nbuf = 0;
    }
    size_t whole = len / CAIRN_SHA256_BLOCK;
    if (whole) blocks(st->h, p, whole);
    p += whole * CAIRN_SHA256_BLOCK, len -= whole * CAIRN_SHA256_BLOCK;
    memcpy(st->buf, p, len);
    st->nbuf = len;
}

void cairn_sha256_final(cairn_sha256_t *st, unsigned char out[CAIRN_SHA256_BYTES])
{
    uint64_t bits = st->bytes * 8;
    unsigned char pad[CAIRN_SHA256_BLOCK * 2] = {0x80};
    /* 0x80, zeros up to 56 mod 64, then the length in bits, big-endian */
    size_t n = (st->nbuf < 56 ? 56 : 120) - st->nbuf;
    for (int i = 0; i < 8; i++) pad[n + i] = (unsigned char)(bits >> (56 - 8 * i));
    cairn_sha256_update(st, pad, n + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(st->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(st->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(st->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)st->h[i];
    }
    memset(st, 0, sizeof *st);
}

void cairn_sha256(unsigned char out[CAIRN_SHA256_BYTES], const void *data, size_t len)
{
    cairn_sha256_t st;
    cairn_sha256_init(&st);
    cairn_sha256_update(&st, data, len);
    cairn_sha256_final(&st, out);
}
