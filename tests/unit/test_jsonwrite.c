/* msgpack straight to JSON text (sdk/jsonmp.h, cairn_json_write): its
 * text parses back to what the tree's way (cairn_json_from_msgpack) makes,
 * for fixed cases and for random msgpack of every type, nested; reals read
 * back exactly; skip_nil and the prefix rewrite do what they say. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmp.h"
#include "unit.h"

/* cairn_json_write_bytes gives, byte for byte, what the tree's way gives
 * for the same bytes (nil, as cairn_reply_object makes it, when they are
 * not one valid msgpack value). */
static void s_bytes_same(const char *buf, size_t len, const cairn_json_write_opts_t *o)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj = {.type = MSGPACK_OBJECT_NIL};
    size_t off = 0;
    if (len && (cairn_msgpack_check_shape(buf, len, NULL) != 0 ||
                msgpack_unpack(buf, len, &off, &zone, &obj) != MSGPACK_UNPACK_SUCCESS))
        obj.type = MSGPACK_OBJECT_NIL;
    size_t n1 = 0, n2 = 0;
    char *want = cairn_json_write(&obj, o, &n1);
    char *got = cairn_json_write_bytes(buf, len, o, &n2);
    if (!CHECK(want && got && n1 == n2 && memcmp(want, got, n1) == 0))
        fprintf(stderr,
                "     %zu bytes, first %02x %02x; bytes: %.300s\n     tree:  %.300s\n",
                len, len ? (unsigned char)buf[0] : 0,
                len > 1 ? (unsigned char)buf[1] : 0, got ? got : "(none)",
                want ? want : "(none)");
    free(want);
    free(got);
    msgpack_zone_destroy(&zone);
}

static const char *const s_keys[] = {"artifact_uri", "artifact_location", NULL};
static const cairn_json_write_opts_t s_opts = {.skip_nil = true,
                                               .keys = s_keys,
                                               .from = "cairn-artifacts:/",
                                               .to = "mlflow-artifacts:/"};

/* The writer's text, parsed, equals the tree's value for the packed sb. */
static void s_same(const msgpack_sbuffer *sb)
{
    s_bytes_same(sb->data, sb->size, NULL);
    s_bytes_same(sb->data, sb->size, &s_opts);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (!CHECK(msgpack_unpack_next(&u, sb->data, sb->size, &off) ==
               MSGPACK_UNPACK_SUCCESS))
        return;
    if (u.data.type == MSGPACK_OBJECT_NIL) { /* no body: {} by design (fixed) */
        msgpack_unpacked_destroy(&u);
        return;
    }
    size_t len = 0;
    char *text = cairn_json_write(&u.data, NULL, &len);
    json_t *tree = cairn_json_from_msgpack(&u.data);
    json_error_t e;
    json_t *back =
        text ? json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e) : NULL;
    if (text && !back && strstr(text, "\\u0000")) {
        /* a NUL in a key: jansson does not read those back (the tree's
         * text holds the same) */
    } else if (!CHECK(text && tree && back && len == strlen(text)))
        fprintf(stderr, "     text: %.300s\n", text ? text : "(none)");
    else if (!CHECK(json_equal(tree, back))) {
        char *t = json_dumps(tree, JSON_ENCODE_ANY | JSON_COMPACT);
        fprintf(stderr, "     writer: %.300s\n     tree:   %.300s\n", text, t);
        free(t);
    }
    json_decref(back);
    json_decref(tree);
    free(text);
    msgpack_unpacked_destroy(&u);
}

static uint64_t s_rng = 88172645463325252ull;
static uint64_t s_next(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static void s_random(msgpack_packer *pk, int depth)
{
    static const char *const strs[] = {
        "",         "a",    "é\"\\\n\t\x01", "cairn-artifacts:/1/r",
        "\xc3\x28", "\xff", "a\0b",          "\u2028"};
    static const double reals[] = {0.1,       0.5,
                                   100.0,     1e300,
                                   -2.5e-300, 3.141592653589793,
                                   1.0 / 3,   5e-324,
                                   1e17,      123456789012345680.0};
    int k = (int)(s_next() % (depth > 4 ? 9 : 12));
    switch (k) {
        case 0:
            msgpack_pack_nil(pk);
            break;
        case 1:
            msgpack_pack_true(pk);
            break;
        case 2:
            msgpack_pack_uint64(pk, s_next() >> (s_next() % 64));
            break;
        case 3:
            msgpack_pack_int64(pk, -(int64_t)(s_next() >> (1 + s_next() % 63)));
            break;
        case 4:
            msgpack_pack_double(pk, reals[s_next() % 10] * (double)(s_next() % 7));
            break;
        case 5:
            msgpack_pack_float(pk, (float)reals[s_next() % 10]);
            break;
        case 6: {
            size_t at = (size_t)(s_next() % 8);
            const char *str = strs[at];
            /* "a\0b": its NUL counts (the 4th byte of the literal is its end) */
            msgpack_pack_str_with_body(pk, str, at == 6 ? 3 : strlen(str));
            break;
        }
        case 7:
            msgpack_pack_bin_with_body(pk, "\x00\x01\xff", 3);
            break;
        case 8:
            msgpack_pack_ext_with_body(pk, "xy", 2, (int8_t)(s_next() % 256 - 128));
            break;
        case 9:
        case 10: {
            uint32_t n = (uint32_t)(s_next() % 5);
            msgpack_pack_map(pk, n);
            for (uint32_t i = 0; i < n; i++) {
                if (s_next() % 4)
                    msgpack_pack_str_with_body(pk, i % 2 ? "artifact_uri" : "k",
                                               i % 2 ? 12 : 1);
                else
                    s_random(pk, depth + 3); /* a key of any type */
                s_random(pk, depth + 1);
            }
            break;
        }
        default: {
            uint32_t n = (uint32_t)(s_next() % 5);
            msgpack_pack_array(pk, n);
            for (uint32_t i = 0; i < n; i++) s_random(pk, depth + 1);
        }
    }
}

TEST(fixed)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_double(&pk, 0.1);
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_double(&pk, NAN);
    msgpack_pack_str_with_body(&pk, "big", 3);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_str_with_body(&pk, "hundred", 7);
    msgpack_pack_double(&pk, 100.0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS);
    char *text = cairn_json_write(&u.data, NULL, NULL);
    CHECK_STR(text,
              "{\"v\":0.1,\"n\":\"NaN\",\"big\":\"18446744073709551615\","
              "\"hundred\":100.0}");
    free(text);
    text = cairn_json_write(NULL, NULL, NULL);
    CHECK_STR(text, "{}");
    free(text);
    msgpack_unpacked_destroy(&u);
    s_same(&sb);
    msgpack_sbuffer_destroy(&sb);
}

TEST(options)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "end_time", 8);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "artifact_uri", 12);
    msgpack_pack_str_with_body(&pk, "cairn-artifacts:/1/r/artifacts", 30);
    msgpack_pack_str_with_body(&pk, "other", 5);
    msgpack_pack_str_with_body(&pk, "cairn-artifacts:/x", 18);
    msgpack_pack_str_with_body(&pk, "artifact_location", 17);
    msgpack_pack_str_with_body(&pk, "s3://b", 6);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS);
    static const char *const keys[] = {"artifact_uri", "artifact_location", NULL};
    cairn_json_write_opts_t o = {.skip_nil = true,
                                 .keys = keys,
                                 .from = "cairn-artifacts:/",
                                 .to = "mlflow-artifacts:/"};
    char *text = cairn_json_write(&u.data, &o, NULL);
    CHECK_STR(text,
              "[{\"artifact_uri\":\"mlflow-artifacts:/1/r/artifacts\","
              "\"other\":\"cairn-artifacts:/x\",\"artifact_location\":\"s3://b\"}]");
    free(text);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

TEST(random)
{
    for (int i = 0; i < 20000; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        s_random(&pk, 0);
        s_same(&sb);
        msgpack_sbuffer_destroy(&sb);
        if (unit_failed_ > 10) break;
    }
}

/* Bytes that are not what a reply holds: cut short, a byte changed, a
 * container declaring more than follows, nesting at and past msgpack-c's
 * stack, trailing bytes. */
TEST(bytes_mutated)
{
    for (int i = 0; i < 20000 && unit_failed_ <= 10; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        s_random(&pk, 0);
        if (sb.size) {
            size_t at = (size_t)(s_next() % sb.size);
            switch (s_next() % 4) {
                case 0:
                    sb.size = at;
                    break;
                case 1:
                    sb.data[at] = (char)s_next();
                    break;
                case 2:
                    msgpack_pack_nil(&pk);
                    break;
                default:
                    break;
            }
        }
        s_bytes_same(sb.data, sb.size, i % 2 ? &s_opts : NULL);
        msgpack_sbuffer_destroy(&sb);
    }
    for (int depth = 28; depth <= 36; depth++) {
        char buf[64];
        for (int d = 0; d < depth; d++) buf[d] = (char)0x91; /* [[[... */
        buf[depth] = 0x01;
        s_bytes_same(buf, (size_t)depth + 1, NULL);
        buf[depth - 1] = (char)0x81; /* ...{"a": 1} */
        buf[depth] = (char)0xa1;
        buf[depth + 1] = 'a';
        buf[depth + 2] = 0x01;
        s_bytes_same(buf, (size_t)depth + 3, NULL);
    }
    s_bytes_same("\xdd\xff\xff\xff\xff", 5, NULL); /* 4 G items declared */
    s_bytes_same("", 0, NULL);
}

int main(void)
{
    RUN(fixed);
    RUN(options);
    RUN(random);
    RUN(bytes_mutated);
    return unit_report();
}
