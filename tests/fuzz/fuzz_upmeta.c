/* libFuzzer target: the sidecar of a resumable upload and the artifact
 * path rules (plugins/storage/upmeta.c). The sidecar is a file the next
 * start reads after a crash (to resume an upload, or to index one that was
 * committed just before it), so its parser takes arbitrary bytes: a torn
 * write, garbage, a hand-edited file. A path is what a client sends.
 *
 * 1. upmeta_parse either refuses the bytes or accepts a sidecar whose
 *    fields obey the rules (a run_id of 1 .. UPMETA_RUN_ID_MAX bytes
 *    without control characters; a normalized path: no '..', '.' or empty
 *    segment, no leading '/', no control character; a lowercase hex hash
 *    when committed); upmeta_format writes it back to exactly the same
 *    bytes, which parse to the same values (created and committed too).
 *    A committed sidecar cut after its path line is the same upload, not
 *    committed.
 * 2. upmeta_path_norm on the same bytes as a client's path: what it
 *    accepts comes out no longer, normalized, and normalizes to itself.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_upmeta
 * (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upmeta.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static bool s_no_control(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) return false;
    return true;
}

/* A normalized path: segments of 1+ bytes, none "." or "..", joined by
 * single '/', no control characters. */
static bool s_normalized(const char *p, size_t n)
{
    if (!s_no_control(p, n)) return false;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/') j++;
        size_t seg = j - i;
        if (seg == 0 || (seg == 1 && p[i] == '.') ||
            (seg == 2 && p[i] == '.' && p[i + 1] == '.'))
            return false;
        if (j == n - 1) return false; /* a trailing '/' */
        i = j + 1;
    }
    return true;
}

static bool s_same(const upmeta_t *a, const upmeta_t *b)
{
    return a->rid == b->rid && a->created == b->created &&
           strcmp(a->run_id, b->run_id) == 0 && strcmp(a->path, b->path) == 0 &&
           a->committed == b->committed &&
           (!a->committed ||
            (a->alg == b->alg && strcmp(a->hash, b->hash) == 0 && a->size == b->size));
}

static void s_sidecar(const uint8_t *data, size_t size)
{
    static upmeta_t m, again;
    static char buf[CAS_META_MAX];
    if (!upmeta_parse((const char *)data, size, &m)) return;
    size_t rl = strlen(m.run_id), pl = strlen(m.path);
    REQUIRE(rl >= 1 && rl <= UPMETA_RUN_ID_MAX && s_no_control(m.run_id, rl));
    REQUIRE(pl >= 1 && pl <= UPMETA_PATH_MAX && s_normalized(m.path, pl));
    if (m.committed) REQUIRE(cas_hex_valid(m.hash, strlen(m.hash)));
    if (!m.committed) REQUIRE(m.alg == CAIRN_CHASH_BLAKE2B);
    int n = upmeta_format(buf, sizeof buf, &m);
    REQUIRE(n > 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
    REQUIRE(upmeta_parse(buf, (size_t)n, &again) && s_same(&m, &again));
    if (m.committed) {
        /* The same upload before its last chunk: up to the path line. */
        const char *path = memmem(buf, (size_t)n, "\npath ", 6);
        REQUIRE(path);
        size_t cut = (size_t)(path - buf) + 6 + pl + 1;
        REQUIRE(upmeta_parse(buf, cut, &again) && !again.committed);
        again.committed = true;
        again.alg = m.alg;
        memcpy(again.hash, m.hash, sizeof again.hash);
        again.size = m.size;
        REQUIRE(s_same(&m, &again));
    }
}

static void s_path(const uint8_t *data, size_t size)
{
    char *out = malloc(size + 1), *out2 = malloc(size + 1);
    REQUIRE(out && out2);
    size_t n = SIZE_MAX, n2 = SIZE_MAX;
    if (upmeta_path_norm((const char *)data, size, out, &n) == UPMETA_PATH_OK) {
        REQUIRE(n <= size && out[n] == '\0' && s_normalized(out, n));
        REQUIRE(upmeta_path_norm(out, n, out2, &n2) == UPMETA_PATH_OK && n2 == n &&
                memcmp(out, out2, n) == 0);
    }
    free(out);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_sidecar(data, size);
    s_path(data, size);
    return 0;
}
