/* plugins/gateway/seal.h: a signed download link's sealed part (seal.c).
 *
 * A link carries who asked (token, workspace), what (run, path) and until
 * when, in a libsodium secretbox under a key that only the running gateway
 * holds, as base64url (no padding): the nonce, then the box. Opening it
 * authenticates every byte before any field is read, so a link cannot be
 * forged or changed, and the token in it is never readable in the URL.
 * Pure: no I/O, no bus; the key is the caller's. */
#ifndef GW_SEAL_H
#define GW_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#define GW_SEAL_KEY_BYTES 32 /* crypto_secretbox_KEYBYTES */
#define GW_SEAL_TOKEN_MAX 511
#define GW_SEAL_WS_MAX 127
#define GW_SEAL_RUN_MAX 127
#define GW_SEAL_PATH_MAX 1024 /* the artifact store's path limit */
/* The sealed text at most: the longest fields fit (about 2,500 chars). */
#define GW_SEAL_TEXT_MAX 4096
/* A Content-Disposition value for a name of up to GW_SEAL_PATH_MAX bytes. */
#define GW_DISPOSITION_MAX (64 + 4 * GW_SEAL_PATH_MAX)

typedef struct gw_seal {
    char token[GW_SEAL_TOKEN_MAX + 1]; /* "": none (a kernel without auth) */
    char ws[GW_SEAL_WS_MAX + 1];       /* "": the kernel's default */
    char run[GW_SEAL_RUN_MAX + 1];
    char path[GW_SEAL_PATH_MAX + 1];
    uint64_t expires_ms; /* ms since the epoch */
} gw_seal_t;

/* s sealed under key as text into out (cap bytes, NUL-terminated): 0, or
 * -1 with err (400 when a field is too long for a link). */
int gw_seal(const unsigned char key[GW_SEAL_KEY_BYTES], const gw_seal_t *s, char *out,
            size_t cap, cairn_err_t *err);

/* The link's text (len bytes, from a URL: anything) opened into s: 0, or
 * -1 with err, 403 "this download link is not valid" (not ours, changed,
 * cut) or "this download link has expired" (now_ms past its expiry). */
int gw_unseal(const unsigned char key[GW_SEAL_KEY_BYTES], const char *text, size_t len,
              uint64_t now_ms, gw_seal_t *s, cairn_err_t *err);

/* The fields of an opened box (n bytes) into s; false when they are not
 * what gw_seal writes. Exposed for the fuzz target. */
bool gw_seal_fields(const unsigned char *p, size_t n, gw_seal_t *s);

/* len bytes of s onto out at *n (cap bytes, NUL-terminated, *n moved on),
 * each byte keep refuses as %XX; stops short rather than overflow. */
void gw_pct_encode(const char *s, size_t len, bool (*keep)(unsigned char), char *out,
                   size_t cap, size_t *n);

/* `attachment; filename="NAME"` for a file's last path segment into out
 * (cap >= GW_DISPOSITION_MAX): NAME with '"', '\\', control and non-ASCII
 * bytes made '_', and, when one was, RFC 6266's filename*=UTF-8''NAME
 * %-encoded too. */
void gw_disposition(const char *name, char *out, size_t cap);

#endif
