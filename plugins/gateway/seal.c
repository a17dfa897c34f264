/* A signed download link's sealed part (seal.h).
 *
 * The box's plaintext: a version byte (1), the expiry (u64, big-endian),
 * then token, workspace, run and path, each a u16 big-endian length and
 * its bytes. The text is base64url without padding of the random nonce
 * followed by crypto_secretbox_easy's box. */
#define _GNU_SOURCE
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "seal.h"

#define VERSION 1
#define NFIELDS 4
#define PLAIN_MAX                                                                 \
    (1 + 8 + NFIELDS * 2 + GW_SEAL_TOKEN_MAX + GW_SEAL_WS_MAX + GW_SEAL_RUN_MAX + \
     GW_SEAL_PATH_MAX)
#define BOX_MAX (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + PLAIN_MAX)
#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

_Static_assert(GW_SEAL_KEY_BYTES == crypto_secretbox_KEYBYTES, "the key's size");
_Static_assert(sodium_base64_ENCODED_LEN(BOX_MAX, B64) <= GW_SEAL_TEXT_MAX + 1,
               "the longest fields fit a link");

/* The fields in the plaintext's order, with their bounds. */
typedef struct {
    const char *name;
    size_t max;
} field_t;
static const field_t s_fields[NFIELDS] = {{"token", GW_SEAL_TOKEN_MAX},
                                          {"workspace", GW_SEAL_WS_MAX},
                                          {"run_id", GW_SEAL_RUN_MAX},
                                          {"path", GW_SEAL_PATH_MAX}};

static char *s_field_of(gw_seal_t *s, int i)
{
    char *f[NFIELDS] = {s->token, s->ws, s->run, s->path};
    return f[i];
}

static const char *s_cfield_of(const gw_seal_t *s, int i)
{
    const char *f[NFIELDS] = {s->token, s->ws, s->run, s->path};
    return f[i];
}

/* s's plaintext into p (PLAIN_MAX bytes): its length, or 0 with err when a
 * field is over its bound. */
static size_t s_pack(const gw_seal_t *s, unsigned char *p, cairn_err_t *err)
{
    size_t n = 0;
    p[n++] = VERSION;
    for (int i = 7; i >= 0; i--) p[n++] = (unsigned char)(s->expires_ms >> (8 * i));
    for (int i = 0; i < NFIELDS; i++) {
        const char *f = s_cfield_of(s, i);
        size_t len = strnlen(f, s_fields[i].max + 1);
        if (len > s_fields[i].max) {
            cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                          "the %s is over %zu bytes: too long for a download link",
                          s_fields[i].name, s_fields[i].max);
            return 0;
        }
        p[n++] = (unsigned char)(len >> 8);
        p[n++] = (unsigned char)len;
        memcpy(p + n, f, len);
        n += len;
    }
    return n;
}

int gw_seal(const unsigned char key[GW_SEAL_KEY_BYTES], const gw_seal_t *s, char *out,
            size_t cap, cairn_err_t *err)
{
    unsigned char plain[PLAIN_MAX], box[BOX_MAX];
    size_t n = s_pack(s, plain, err);
    if (!n) return -1;
    size_t boxed = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
    int rc = 0;
    if (sodium_base64_ENCODED_LEN(boxed, B64) > cap) {
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "the download link would be too long");
    } else {
        randombytes_buf(box, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, plain, n, box, key);
        sodium_bin2base64(out, cap, box, boxed, B64);
    }
    sodium_memzero(plain, sizeof plain);
    return rc;
}

bool gw_seal_fields(const unsigned char *p, size_t n, gw_seal_t *s)
{
    if (n < 9 || p[0] != VERSION) return false;
    s->expires_ms = 0;
    for (int i = 1; i <= 8; i++) s->expires_ms = s->expires_ms << 8 | p[i];
    size_t at = 9;
    for (int i = 0; i < NFIELDS; i++) {
        if (n - at < 2) return false;
        size_t len = (size_t)p[at] << 8 | p[at + 1];
        at += 2;
        /* a field becomes a C string: no NUL inside it */
        if (len > s_fields[i].max || n - at < len || memchr(p + at, 0, len))
            return false;
        char *f = s_field_of(s, i);
        memcpy(f, p + at, len);
        f[len] = '\0';
        at += len;
    }
    return at == n;
}

int gw_unseal(const unsigned char key[GW_SEAL_KEY_BYTES], const char *text, size_t len,
              uint64_t now_ms, gw_seal_t *s, cairn_err_t *err)
{
    unsigned char box[BOX_MAX], plain[PLAIN_MAX];
    size_t n = 0;
    const char *end = NULL;
    bool ok =
        len <= GW_SEAL_TEXT_MAX &&
        sodium_base642bin(box, sizeof box, text, len, NULL, &n, &end, B64) == 0 &&
        end == text + len &&
        n >= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES &&
        crypto_secretbox_open_easy(plain, box + crypto_secretbox_NONCEBYTES,
                                   n - crypto_secretbox_NONCEBYTES, box, key) == 0 &&
        gw_seal_fields(plain,
                       n - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, s);
    sodium_memzero(plain, sizeof plain);
    if (!ok) {
        sodium_memzero(s, sizeof *s);
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "this download link is not valid");
    }
    if (now_ms >= s->expires_ms) {
        sodium_memzero(s, sizeof *s);
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "this download link has expired");
    }
    return 0;
}

/* ---- Content-Disposition ------------------------------------------------- */

/* A byte that may stand in filename="..." as it is: printable ASCII, not a
 * quote or backslash (which quoting would need), not '%' (which some
 * browsers decode there). */
static bool s_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%';
}

/* RFC 5987's attr-char: what filename* keeps unencoded. */
static bool s_attr_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$&+-.^_`|~", c));
}

void gw_pct_encode(const char *s, size_t len, bool (*keep)(unsigned char), char *out,
                   size_t cap, size_t *n)
{
    for (size_t i = 0; i < len && *n + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (keep(c))
            out[(*n)++] = (char)c;
        else
            *n += (size_t)snprintf(out + *n, cap - *n, "%%%02X", c);
    }
    if (*n < cap) out[*n] = '\0';
}

void gw_disposition(const char *name, char *out, size_t cap)
{
    size_t len = strnlen(name, GW_SEAL_PATH_MAX), n = 0;
    if (!len) name = "download", len = 8;
    bool exact = true;
    n += (size_t)snprintf(out, cap, "attachment; filename=\"");
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)name[i];
        exact &= s_plain(c);
        out[n++] = s_plain(c) ? (char)c : '_';
    }
    n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "\"");
    if (!exact) {
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "; filename*=UTF-8''");
        if (n < cap) gw_pct_encode(name, len, s_attr_char, out, cap, &n);
    }
    out[n < cap ? n : cap - 1] = '\0';
}
