/* The names of a multipart upload's files and its identifiers
 * (mpuname.h). */
#include "mpuname.h"

#include <stdio.h>
#include <string.h>

bool mpu_hex_valid(const char *p, size_t len, size_t n)
{
    if (len != n) return false;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

bool mpu_number_parse(const char *p, size_t n, uint32_t *out)
{
    if (n == 0 || n > 5 || p[0] == '0') return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (uint32_t)(p[i] - '0');
    }
    if (v < 1 || v > MPU_PARTS_MAX) return false;
    *out = v;
    return true;
}

bool mpu_num_parts_parse(const char *p, size_t n, uint32_t *out)
{
    return n >= 2 && p[n - 1] == '\n' && mpu_number_parse(p, n - 1, out);
}

mpu_kind_t mpu_name_parse(const char *p, size_t n, mpu_name_t *out)
{
    memset(out, 0, sizeof *out);
    if (n == 4 && !memcmp(p, "meta", 4)) return out->kind = MPU_META;
    if (n == 9 && !memcmp(p, "num_parts", 9)) return out->kind = MPU_NUM_PARTS;
    const char *dot = memchr(p, '.', n);
    if (!dot || !mpu_number_parse(p, (size_t)(dot - p), &out->number)) {
        out->number = 0;
        return MPU_OTHER;
    }
    const char *rest = dot + 1;
    size_t rn = n - (size_t)(rest - p);
    if (mpu_hex_valid(rest, rn, MPU_HEX_LEN)) {
        memcpy(out->hex, rest, MPU_HEX_LEN);
        return out->kind = MPU_PART;
    }
    if (rn == 4 + MPU_TOKEN_LEN && !memcmp(rest, "tmp-", 4) &&
        mpu_hex_valid(rest + 4, MPU_TOKEN_LEN, MPU_TOKEN_LEN)) {
        memcpy(out->token, rest + 4, MPU_TOKEN_LEN);
        return out->kind = MPU_STAGING;
    }
    out->number = 0;
    return MPU_OTHER;
}

int mpu_name_part(char *buf, size_t cap, uint32_t number, const char *hex)
{
    if (number < 1 || number > MPU_PARTS_MAX || !hex ||
        !mpu_hex_valid(hex, strlen(hex), MPU_HEX_LEN))
        return -1;
    int n = snprintf(buf, cap, "%u.%s", (unsigned)number, hex);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int mpu_name_staging(char *buf, size_t cap, uint32_t number, const char *token)
{
    if (number < 1 || number > MPU_PARTS_MAX || !token ||
        !mpu_hex_valid(token, strlen(token), MPU_TOKEN_LEN))
        return -1;
    int n = snprintf(buf, cap, "%u.tmp-%s", (unsigned)number, token);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

bool mpu_etag_parse(const char *p, size_t n, char hex[MPU_HEX_LEN + 1])
{
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
        p++;
        n -= 2;
    }
    if (n != MPU_HEX_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        hex[i] = c;
    }
    hex[n] = '\0';
    return true;
}
