/* The sidecar of a resumable upload, and the rules of an artifact path
 * (upmeta.h). */
#define _POSIX_C_SOURCE 200809L
#include "upmeta.h"

#include "cairn/msg.h"

#include <stdio.h>
#include <string.h>

static const char s_magic[] = "cairn-upload 1\n";

/* ---- paths ----------------------------------------------------------------- */

static bool s_has_control(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f) return true;
    }
    return false;
}

upmeta_path_err_t upmeta_path_norm(const char *p, size_t n, char *out, size_t *out_len)
{
    if (n && p[0] == '/') return UPMETA_PATH_ABSOLUTE;
    if (s_has_control(p, n)) return UPMETA_PATH_CONTROL;
    if (!cairn_utf8_valid(p, n)) return UPMETA_PATH_UTF8;
    size_t o = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '/') j++;
        size_t seg = j - i;
        if (seg == 2 && p[i] == '.' && p[i + 1] == '.') return UPMETA_PATH_DOTDOT;
        if (seg && !(seg == 1 && p[i] == '.')) {
            if (o) out[o++] = '/';
            memcpy(out + o, p + i, seg);
            o += seg;
        }
        i = j + 1;
    }
    out[o] = '\0';
    *out_len = o;
    return UPMETA_PATH_OK;
}

/* A path of 1 .. UPMETA_PATH_MAX bytes that normalizes to itself. */
static bool s_path_valid(const char *p, size_t n)
{
    char norm[UPMETA_PATH_MAX + 1];
    size_t nn = 0;
    return n >= 1 && n <= UPMETA_PATH_MAX &&
           upmeta_path_norm(p, n, norm, &nn) == UPMETA_PATH_OK && nn == n &&
           memcmp(norm, p, n) == 0;
}

static bool s_run_id_valid(const char *p, size_t n)
{
    return n >= 1 && n <= UPMETA_RUN_ID_MAX && !s_has_control(p, n);
}

/* ---- the sidecar --------------------------------------------------------------- */

int upmeta_format(char *buf, size_t cap, const upmeta_t *m)
{
    size_t rl = strnlen(m->run_id, sizeof m->run_id),
           pl = strnlen(m->path, sizeof m->path);
    if (!s_run_id_valid(m->run_id, rl) || !s_path_valid(m->path, pl) ||
        (m->committed && !cas_hex_valid(m->hash, strnlen(m->hash, sizeof m->hash))))
        return -1;
    int n =
        snprintf(buf, cap, "%srid %lld\nrun_id %s\ncreated %llu\npath %s\n", s_magic,
                 (long long)m->rid, m->run_id, (unsigned long long)m->created, m->path);
    if (n < 0 || (size_t)n >= cap) return -1;
    if (!m->committed) return n;
    /* BLAKE2b is the absence of the line: sidecars written before SHA-256. */
    char alg[32] = "";
    if (m->alg != CAIRN_CHASH_BLAKE2B)
        snprintf(alg, sizeof alg, "alg %s\n", cairn_chash_name(m->alg));
    int t = snprintf(buf + n, cap - (size_t)n, "%shash %s\nsize %llu\n", alg, m->hash,
                     (unsigned long long)m->size);
    return t < 0 || (size_t)t >= cap - (size_t)n ? -1 : n + t;
}

/* The value of the line "key value\n" at *p (advanced past it) into out
 * (NUL-terminated) and its length into *len; false when the line is not
 * that key or the value does not fit. */
static bool s_line(const char **p, const char *end, const char *key, char *out,
                   size_t cap, size_t *len)
{
    size_t k = strlen(key);
    if ((size_t)(end - *p) < k + 1 || memcmp(*p, key, k) != 0 || (*p)[k] != ' ')
        return false;
    const char *v = *p + k + 1, *nl = memchr(v, '\n', (size_t)(end - v));
    if (!nl || (size_t)(nl - v) >= cap) return false;
    memcpy(out, v, (size_t)(nl - v));
    out[nl - v] = '\0';
    *len = (size_t)(nl - v);
    *p = nl + 1;
    return true;
}

/* A decimal number as upmeta_format writes it: digits, no leading zero
 * (but "0"), no space or '+', no overflow; a '-' only when neg_ok, and
 * not "-0". The magnitude goes into *v. */
static bool s_dec(const char *s, size_t n, bool neg_ok, bool *neg, uint64_t *v)
{
    *neg = n && s[0] == '-';
    if (*neg) {
        if (!neg_ok) return false;
        s++, n--;
    }
    if (n == 0 || (s[0] == '0' && (n > 1 || *neg))) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

static bool s_line_u64(const char **p, const char *end, const char *key, uint64_t *out)
{
    char num[24];
    size_t n = 0;
    bool neg = false;
    return s_line(p, end, key, num, sizeof num, &n) && s_dec(num, n, false, &neg, out);
}

/* The optional "alg NAME" line before a hash: absent is BLAKE2b, and only
 * another algorithm is written (so that a sidecar has one spelling). */
static bool s_line_alg(const char **p, const char *end, cairn_chash_alg_t *alg)
{
    char name[16];
    size_t n = 0;
    *alg = CAIRN_CHASH_BLAKE2B;
    if ((size_t)(end - *p) < 4 || memcmp(*p, "alg ", 4) != 0) return true;
    return s_line(p, end, "alg", name, sizeof name, &n) &&
           cairn_chash_parse(name, n, alg) && *alg != CAIRN_CHASH_BLAKE2B;
}

bool upmeta_parse(const char *buf, size_t len, upmeta_t *m)
{
    char num[24];
    size_t n = 0, k = sizeof s_magic - 1;
    bool neg = false;
    uint64_t v = 0;
    memset(m, 0, sizeof *m);
    if (!buf || len < k || memcmp(buf, s_magic, k) != 0) return false;
    const char *p = buf + k, *end = buf + len;
    if (!s_line(&p, end, "rid", num, sizeof num, &n) ||
        !s_dec(num, n, true, &neg, &v) || v > (uint64_t)INT64_MAX + neg)
        return false;
    m->rid = neg ? (v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (!s_line(&p, end, "run_id", m->run_id, sizeof m->run_id, &n) ||
        !s_run_id_valid(m->run_id, n) || !s_line_u64(&p, end, "created", &m->created) ||
        !s_line(&p, end, "path", m->path, sizeof m->path, &n) ||
        !s_path_valid(m->path, n))
        return false;
    if (p == end) return true;
    if (!s_line_alg(&p, end, &m->alg) ||
        !s_line(&p, end, "hash", m->hash, sizeof m->hash, &n) ||
        !cas_hex_valid(m->hash, n) || !s_line_u64(&p, end, "size", &m->size) ||
        p != end)
        return false;
    m->committed = true;
    return true;
}
