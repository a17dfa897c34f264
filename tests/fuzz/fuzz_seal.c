/* libFuzzer target: a signed download link's sealed part and the name it
 * sends (plugins/gateway/seal.h). The sealed text comes from a URL,
 * anyone's; the fields are read only from a box that opened, but are
 * fuzzed directly too (no input could forge a box).
 *
 * 1. gw_unseal of any text under a fixed key fails with 403 (or, for a
 *    real link, opens to bounded fields), never reads past the text.
 * 2. gw_seal_fields either refuses the bytes or gives fields that gw_seal
 *    seals and gw_unseal opens back to the same fields.
 * 3. gw_disposition of any name is one header line (no control byte) in
 *    its bound, and its filename* (when there) decodes back to the name.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_seal
 * (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seal.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static const unsigned char s_key[GW_SEAL_KEY_BYTES] = "fuzz_seal: a fixed test key....";

static void s_bounded(const gw_seal_t *s)
{
    REQUIRE(strlen(s->token) <= GW_SEAL_TOKEN_MAX && strlen(s->ws) <= GW_SEAL_WS_MAX);
    REQUIRE(strlen(s->run) <= GW_SEAL_RUN_MAX && strlen(s->path) <= GW_SEAL_PATH_MAX);
}

static void s_unseal(const char *p, size_t n)
{
    gw_seal_t s;
    cairn_err_t err = {0};
    if (gw_unseal(s_key, p, n, 0, &s, &err) == 0)
        s_bounded(&s);
    else
        REQUIRE(err.st == 403);
}

static void s_fields(const unsigned char *p, size_t n)
{
    gw_seal_t s, back;
    char text[GW_SEAL_TEXT_MAX + 1];
    cairn_err_t err = {0};
    if (!gw_seal_fields(p, n, &s)) return;
    s_bounded(&s);
    REQUIRE(gw_seal(s_key, &s, text, sizeof text, &err) == 0);
    int rc = gw_unseal(s_key, text, strlen(text), 0, &back, &err);
    if (!s.expires_ms) { /* expired at 0 */
        REQUIRE(rc == -1 && err.st == 403);
        return;
    }
    REQUIRE(rc == 0 && back.expires_ms == s.expires_ms);
    REQUIRE(!strcmp(back.token, s.token) && !strcmp(back.ws, s.ws));
    REQUIRE(!strcmp(back.run, s.run) && !strcmp(back.path, s.path));
}

static int s_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void s_disposition(const char *name)
{
    static char out[GW_DISPOSITION_MAX], back[GW_SEAL_PATH_MAX + 1];
    gw_disposition(name, out, sizeof out);
    size_t len = strlen(out);
    REQUIRE(len < sizeof out && !strncmp(out, "attachment; filename=\"", 22));
    for (size_t i = 0; i < len; i++)
        REQUIRE((unsigned char)out[i] >= 0x20 && (unsigned char)out[i] < 0x7f);
    const char *close = strchr(out + 22, '"'); /* the quoted name holds none */
    REQUIRE(close && !strchr(out + 22, '\\'));
    if (!close[1]) return;
    REQUIRE(!strncmp(close + 1, "; filename*=UTF-8''", 19));
    size_t n = 0;
    for (const char *c = close + 20; *c; n++)
        if (*c == '%') {
            REQUIRE(s_hex(c[1]) >= 0 && s_hex(c[2]) >= 0);
            back[n] = (char)(s_hex(c[1]) << 4 | s_hex(c[2]));
            c += 3;
        } else {
            back[n] = *c++;
        }
    REQUIRE(n == strnlen(name, GW_SEAL_PATH_MAX) && !memcmp(back, name, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) REQUIRE(sodium_init() >= 0);
    ready = true;
    /* a copy of exactly size bytes: ASan sees any read past them */
    char *p = malloc(size + 1);
    if (!p) return 0;
    memcpy(p, data, size);
    s_unseal(p, size);
    s_fields((const unsigned char *)p, size);
    p[size] = '\0';
    s_disposition(p);
    free(p);
    return 0;
}
