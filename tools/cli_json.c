/* cli_json.c — the part of the `cairn` CLI that reads outside input
 * without a connection: failures (fail_t), base64 and JSON -> msgpack (a
 * request body given on the command line or stdin). It is its own file so
 * that the fuzz target tests/fuzz/fuzz_cli_json.c links it as the CLI
 * does. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- failures ------------------------------------------------------------ */

int cli_fail(fail_t *f, int code, const char *fmt, ...)
{
    f->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return code;
}

int cli_bad_usage(fail_t *f, const char *fmt, ...)
{
    f->code = EXIT_USAGE;
    f->hint = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_oom(fail_t *f)
{
    return cli_fail(f, EXIT_INTERNAL, "out of memory");
}

/* ---- base64 (RFC 4648, with padding) ----------------------------------- */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cli_base64_encode(const unsigned char *p, size_t n)
{
    if (n > SIZE_MAX / 2) return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < n ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? B64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int s_b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

bool cli_base64_decode(const char *s, size_t len, unsigned char *out, size_t *outlen)
{
    if (len % 4) return false;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=') : 0;
        uint32_t v = 0;
        for (int k = 0; k < 4 - pad; k++) {
            int d = s_b64_value(s[i + (size_t)k]);
            if (d < 0) return false;
            v = v << 6 | (uint32_t)d;
        }
        v <<= 6 * pad;
        out[n++] = (unsigned char)(v >> 16);
        if (pad < 2) out[n++] = (unsigned char)(v >> 8);
        if (pad < 1) out[n++] = (unsigned char)v;
    }
    *outlen = n;
    return true;
}

/* ---- JSON -> msgpack ----------------------------------------------------- */

static int s_pack(json_t *j, msgpack_packer *pk, int depth, fail_t *f);

/* An object {"$bin": "BASE64"} (that one key, a string value) is packed
 * as binary; *done says whether j was one. */
static int s_pack_bin_object(json_t *j, msgpack_packer *pk, bool *done, fail_t *f)
{
    json_t *b = json_object_size(j) == 1 ? json_object_get(j, "$bin") : NULL;
    *done = json_is_string(b);
    if (!*done) return EXIT_OK;
    size_t len = json_string_length(b), n = 0;
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (!buf) return cli_oom(f);
    int rc = EXIT_OK;
    if (!cli_base64_decode(json_string_value(b), len, buf, &n))
        rc = cli_fail(f, EXIT_USAGE,
                      "the value of a {\"$bin\": ...} object is not base64");
    else if (msgpack_pack_bin_with_body(pk, buf, n) != 0)
        rc = cli_oom(f);
    free(buf);
    return rc;
}

/* A map or an array inside depth others: CAIRN/1 takes msgpack nested at
 * most CAIRN_MSGPACK_MAX_DEPTH deep (cairn_msgpack_check, msgpack-c's own
 * limit), so a deeper body could not be read by the server. */
static int s_check_depth(int depth, fail_t *f)
{
    if (depth < CAIRN_MSGPACK_MAX_DEPTH) return EXIT_OK;
    return cli_fail(f, EXIT_USAGE,
                    "the JSON body is nested deeper than %d levels (arrays and "
                    "objects), which cairnd does not take",
                    CAIRN_MSGPACK_MAX_DEPTH);
}

static int s_pack_object(json_t *j, msgpack_packer *pk, int depth, fail_t *f)
{
    bool done = false;
    int rc = s_pack_bin_object(j, pk, &done, f);
    if (rc != EXIT_OK || done) return rc;
    if ((rc = s_check_depth(depth, f)) != EXIT_OK) return rc;
    if (msgpack_pack_map(pk, json_object_size(j)) != 0) return cli_oom(f);
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(j, key, klen, v)
    {
        if (msgpack_pack_str_with_body(pk, key, klen) != 0) return cli_oom(f);
        if ((rc = s_pack(v, pk, depth + 1, f)) != EXIT_OK) return rc;
    }
    return EXIT_OK;
}

static int s_pack_array(json_t *j, msgpack_packer *pk, int depth, fail_t *f)
{
    int rc = s_check_depth(depth, f);
    if (rc != EXIT_OK) return rc;
    if (msgpack_pack_array(pk, json_array_size(j)) != 0) return cli_oom(f);
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        if ((rc = s_pack(v, pk, depth + 1, f)) != EXIT_OK) return rc;
    }
    return EXIT_OK;
}

/* j, inside depth maps and arrays. */
static int s_pack(json_t *j, msgpack_packer *pk, int depth, fail_t *f)
{
    int rc = 0;
    switch (json_typeof(j)) {
        case JSON_OBJECT:
            return s_pack_object(j, pk, depth, f);
        case JSON_ARRAY:
            return s_pack_array(j, pk, depth, f);
        case JSON_STRING:
            rc = msgpack_pack_str_with_body(pk, json_string_value(j),
                                            json_string_length(j));
            break;
        case JSON_INTEGER:
            rc = msgpack_pack_int64(pk, json_integer_value(j));
            break;
        case JSON_REAL:
            rc = msgpack_pack_double(pk, json_real_value(j));
            break;
        case JSON_TRUE:
            rc = msgpack_pack_true(pk);
            break;
        case JSON_FALSE:
            rc = msgpack_pack_false(pk);
            break;
        case JSON_NULL:
            rc = msgpack_pack_nil(pk);
            break;
    }
    return rc == 0 ? EXIT_OK : cli_oom(f);
}

int cli_pack_json(json_t *j, msgpack_packer *pk, fail_t *f)
{
    return s_pack(j, pk, 0, f);
}
