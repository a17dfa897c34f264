/* libFuzzer target: the CLI's JSON -> msgpack packing (tools/cli_json.c over
 * sdk/jsonmp.c).
 * `cairn call SVC VERB BODY` reads BODY (an argument or stdin) with jansson
 * and packs it as the request body, {"$bin": "BASE64"} as msgpack binary,
 * so the packer and the hand-written base64 decoder take arbitrary input.
 *
 * 1. The bytes as a body, read as the CLI reads it (CLI_JSON_DECODE_FLAGS):
 *    cli_pack_json either packs it, and then the msgpack is exactly one
 *    value that the server's pre-check (cairn_msgpack_check) and msgpack-c
 *    take, holding the same values (a {"$bin": s} as the bytes s decodes
 *    to); or it refuses it with EXIT_USAGE, and then the body holds a
 *    {"$bin": s} whose s is not base64, or is nested deeper than the
 *    server takes.
 * 2. The bytes as the string of a {"$bin": ...}: cairn_base64_decode writes
 *    at most len / 4 * 3 bytes (into a buffer of exactly that size, so
 *    that ASan sees one byte more), accepts exactly what a plain reading of
 *    RFC 4648 does, and what it accepts encodes back to the same length
 *    and decodes to the same bytes.
 * 3. The bytes as data: cairn_base64_encode, then decode, gives them back.
 * 4. The bytes as an HTTP body through cairn_json_text_pack (the gateway's
 *    log-batch, JSON text straight to msgpack): what it takes, json_loadb
 *    with JSON_REJECT_DUPLICATES takes too and cairn_json_pack packs to
 *    the same value, which the server's pre-check takes; what it gives up
 *    leaves the buffer as it was.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_cli_json
 * (tests/fuzz/make_corpus.py). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static const char s_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* RFC 4648 base64 with padding, read plainly: groups of 4 characters of
 * the alphabet, the last of which may end in "=" or "==". */
static bool s_is_base64(const char *s, size_t len)
{
    if (len % 4) return false;
    size_t pad = 0;
    if (len && s[len - 1] == '=') pad = len >= 2 && s[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++)
        if (!s[i] || !strchr(s_alphabet, s[i])) return false;
    return true;
}

/* Decode s into a heap buffer of exactly len / 4 * 3 bytes (at least one). */
static unsigned char *s_decode(const char *s, size_t len, bool *ok, size_t *n)
{
    size_t cap = len / 4 * 3;
    unsigned char *out = malloc(cap ? cap : 1);
    REQUIRE(out);
    *n = SIZE_MAX;
    *ok = cairn_base64_decode(s, len, out, n);
    REQUIRE(*ok == s_is_base64(s, len));
    if (*ok) REQUIRE(*n <= cap && *n + 2 >= cap);
    return out;
}

static const json_t *s_bin_string(const json_t *j)
{
    const json_t *b = json_object_size(j) == 1 ? json_object_get(j, "$bin") : NULL;
    return json_is_string(b) ? b : NULL;
}

/* The JSON value j and the msgpack value o hold the same values; *depth
 * is the deepest nesting of msgpack containers in o. */
static bool s_same(const json_t *j, const msgpack_object *o, int level, int *depth)
{
    const json_t *b = s_bin_string(j);
    if (b) {
        bool ok;
        size_t n;
        unsigned char *bytes =
            s_decode(json_string_value(b), json_string_length(b), &ok, &n);
        bool same = ok && o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == n &&
                    (n == 0 || memcmp(o->via.bin.ptr, bytes, n) == 0);
        free(bytes);
        return same;
    }
    if (json_is_object(j) || json_is_array(j)) {
        if (level + 1 > *depth) *depth = level + 1;
    }
    switch (json_typeof(j)) {
        case JSON_OBJECT: {
            if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != json_object_size(j))
                return false;
            /* Keys are unique in both (jansson holds each once), so a
             * lookup of each msgpack key in j pairs them one to one. */
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                const msgpack_object_kv *kv = &o->via.map.ptr[i];
                if (kv->key.type != MSGPACK_OBJECT_STR) return false;
                /* msgpack-c leaves an empty str's ptr NULL */
                const char *key = kv->key.via.str.size ? kv->key.via.str.ptr : "";
                const json_t *v = json_object_getn(j, key, kv->key.via.str.size);
                if (!v || !s_same(v, &kv->val, level + 1, depth)) return false;
            }
            return true;
        }
        case JSON_ARRAY:
            if (o->type != MSGPACK_OBJECT_ARRAY ||
                o->via.array.size != json_array_size(j))
                return false;
            for (uint32_t i = 0; i < o->via.array.size; i++)
                if (!s_same(json_array_get(j, i), &o->via.array.ptr[i], level + 1,
                            depth))
                    return false;
            return true;
        case JSON_STRING:
            return o->type == MSGPACK_OBJECT_STR &&
                   o->via.str.size == json_string_length(j) &&
                   (o->via.str.size == 0 ||
                    memcmp(o->via.str.ptr, json_string_value(j), o->via.str.size) == 0);
        case JSON_INTEGER: {
            json_int_t v = json_integer_value(j);
            return v >= 0
                       ? o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                             o->via.u64 == (uint64_t)v
                       : o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 == v;
        }
        case JSON_REAL: {
            double d = json_real_value(j);
            return o->type == MSGPACK_OBJECT_FLOAT64 &&
                   memcmp(&o->via.f64, &d, sizeof d) == 0;
        }
        case JSON_TRUE:
        case JSON_FALSE:
            return o->type == MSGPACK_OBJECT_BOOLEAN &&
                   o->via.boolean == json_is_true(j);
        case JSON_NULL:
            return o->type == MSGPACK_OBJECT_NIL;
    }
    return false;
}

/* Why cli_pack_json may refuse j: a {"$bin": s} whose s is not base64, or
 * msgpack containers nested deeper than CAIRN_MSGPACK_MAX_DEPTH. */
static bool s_unsendable(const json_t *j, int level)
{
    const json_t *b = s_bin_string(j);
    if (b) return !s_is_base64(json_string_value(b), json_string_length(b));
    if (!json_is_object(j) && !json_is_array(j)) return false;
    if (level >= CAIRN_MSGPACK_MAX_DEPTH) return true;
    size_t i;
    const char *k;
    const json_t *v;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) if (s_unsendable(v, level + 1)) return true;
    } else {
        json_object_foreach((json_t *)j, k,
                            v) if (s_unsendable(v, level + 1)) return true;
    }
    return false;
}

static void s_body(const uint8_t *data, size_t size)
{
    json_error_t e;
    json_t *j = json_loadb((const char *)data, size, CLI_JSON_DECODE_FLAGS, &e);
    if (!j) return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    fail_t f = {0};
    int rc = cli_pack_json(j, &pk, &f);
    if (rc == EXIT_OK) {
        cairn_err_t err = {0};
        REQUIRE(cairn_msgpack_check(sb.data, sb.size, &err) == 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        REQUIRE(msgpack_unpack_next(&u, sb.data, sb.size, &off) ==
                    MSGPACK_UNPACK_SUCCESS &&
                off == sb.size);
        int depth = 0;
        REQUIRE(s_same(j, &u.data, 0, &depth));
        REQUIRE(depth <= CAIRN_MSGPACK_MAX_DEPTH);
        msgpack_unpacked_destroy(&u);
    } else {
        REQUIRE(rc == EXIT_USAGE && f.code == EXIT_USAGE && f.msg[0]);
        REQUIRE(s_unsendable(j, 0));
    }
    msgpack_sbuffer_destroy(&sb);
    json_decref(j);
}

static void s_base64(const uint8_t *data, size_t size)
{
    /* 2. Arbitrary text. */
    bool ok;
    size_t n;
    unsigned char *bytes = s_decode((const char *)data, size, &ok, &n);
    if (ok) {
        char *enc = cairn_base64_encode(bytes, n);
        REQUIRE(enc && strlen(enc) == size);
        bool ok2;
        size_t n2;
        unsigned char *again = s_decode(enc, size, &ok2, &n2);
        REQUIRE(ok2 && n2 == n && (n == 0 || memcmp(again, bytes, n) == 0));
        free(again);
        free(enc);
    }
    free(bytes);
    /* 3. Arbitrary bytes. */
    char *enc = cairn_base64_encode(data, size);
    REQUIRE(enc);
    size_t len = strlen(enc);
    REQUIRE(len == (size + 2) / 3 * 4);
    bytes = s_decode(enc, len, &ok, &n);
    REQUIRE(ok && n == size && (n == 0 || memcmp(bytes, data, n) == 0));
    free(bytes);
    free(enc);
}

static void s_text(const uint8_t *data, size_t size)
{
    msgpack_sbuffer fast;
    msgpack_sbuffer_init(&fast);
    msgpack_sbuffer_write(&fast, "x", 1);
    int rc = cairn_json_text_pack((const char *)data, size, &fast, NULL);
    REQUIRE(rc == 0 || rc == CAIRN_JSON_TEXT_PLAIN);
    REQUIRE(fast.size >= 1 && fast.data[0] == 'x');
    if (rc != 0) {
        REQUIRE(fast.size == 1);
        msgpack_sbuffer_destroy(&fast);
        return;
    }
    cairn_err_t err = {0};
    REQUIRE(cairn_msgpack_check(fast.data + 1, fast.size - 1, &err) == 0);
    json_error_t e;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
    REQUIRE(j);
    msgpack_sbuffer slow;
    msgpack_sbuffer_init(&slow);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &slow, msgpack_sbuffer_write);
    REQUIRE(cairn_json_pack(j, &pk, &err) == 0);
    msgpack_unpacked a, b;
    msgpack_unpacked_init(&a);
    msgpack_unpacked_init(&b);
    size_t off_a = 1, off_b = 0;
    REQUIRE(msgpack_unpack_next(&a, fast.data, fast.size, &off_a) ==
                MSGPACK_UNPACK_SUCCESS &&
            off_a == fast.size);
    REQUIRE(msgpack_unpack_next(&b, slow.data, slow.size, &off_b) ==
            MSGPACK_UNPACK_SUCCESS);
    REQUIRE(msgpack_object_equal(a.data, b.data));
    msgpack_unpacked_destroy(&a);
    msgpack_unpacked_destroy(&b);
    msgpack_sbuffer_destroy(&slow);
    msgpack_sbuffer_destroy(&fast);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_body(data, size);
    s_base64(data, size);
    s_text(data, size);
    return 0;
}
