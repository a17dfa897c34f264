/* JSON text straight to msgpack (sdk/jsonmp.h, cairn_json_text_pack): what
 * it takes it packs exactly as json_loadb (JSON_REJECT_DUPLICATES) and
 * cairn_json_pack do, for fixed cases and for many mutations of a
 * log-batch body; what it gives up (escapes it does not handle, bytes
 * outside ASCII, {"$bin"}, duplicate keys, bad JSON, ...) leaves the
 * buffer as it was; the member hook's depth and mark. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmp.h"
#include "unit.h"

/* Pack text both ways: the fast way's code; when it took the text, the
 * tree's way must take it too and give the same value. */
static int s_both(const char *text, size_t len)
{
    msgpack_sbuffer fast, slow;
    msgpack_sbuffer_init(&fast);
    msgpack_sbuffer_init(&slow);
    msgpack_sbuffer_write(&fast, "x", 1); /* what was there stays */
    int rc = cairn_json_text_pack(text, len, &fast, NULL);
    CHECK(rc == 0 || rc == CAIRN_JSON_TEXT_PLAIN);
    CHECK(fast.size >= 1 && fast.data[0] == 'x');
    if (rc == CAIRN_JSON_TEXT_PLAIN) CHECK_EQ(fast.size, 1);
    if (rc == 0) {
        json_error_t e;
        json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
        if (!CHECK(j != NULL))
            fprintf(stderr, "     jansson refused %.*s\n", (int)len, text);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &slow, msgpack_sbuffer_write);
        cairn_err_t err = {0};
        if (j && CHECK(cairn_json_pack(j, &pk, &err) == 0)) {
            msgpack_unpacked a, b;
            msgpack_unpacked_init(&a);
            msgpack_unpacked_init(&b);
            size_t off_a = 1, off_b = 0;
            CHECK(msgpack_unpack_next(&a, fast.data, fast.size, &off_a) ==
                  MSGPACK_UNPACK_SUCCESS);
            CHECK(off_a == fast.size);
            CHECK(msgpack_unpack_next(&b, slow.data, slow.size, &off_b) ==
                  MSGPACK_UNPACK_SUCCESS);
            if (!CHECK(msgpack_object_equal(a.data, b.data)))
                fprintf(stderr, "     differ on %.*s\n", (int)len, text);
            cairn_err_t cerr = {0};
            CHECK(cairn_msgpack_check(fast.data + 1, fast.size - 1, &cerr) == 0);
            msgpack_unpacked_destroy(&a);
            msgpack_unpacked_destroy(&b);
        }
        json_decref(j);
    }
    msgpack_sbuffer_destroy(&fast);
    msgpack_sbuffer_destroy(&slow);
    return rc;
}

static int s_one(const char *text)
{
    return s_both(text, strlen(text));
}

TEST(taken)
{
    static const char *const texts[] = {
        "{}",
        " {\"a\": 1}\n",
        "{\"run_id\": \"abc\", \"metrics\": [{\"key\": \"m\", \"value\": 0.5, "
        "\"timestamp\": 1700000000000, \"step\": 3}]}",
        "{\"a\": [], \"b\": {}, \"c\": [[1, 2], {\"d\": null}], \"e\": true, \"f\": "
        "false}",
        "{\"n\": -0, \"m\": -12, \"r\": 1.5e3, \"s\": -2.25E-2, \"t\": 0.1, \"u\": "
        "1e-400}",
        "{\"big\": 999999999999999999, \"max\": 9223372036854775807, \"min\": "
        "-9223372036854775808}",
        "{\"esc\": \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\", \"\": \"empty key\"}",
        "{\"s\": \"\\\"\", \"t\": \"x\\\\\"}",
        "{\r\n\t\"a\" :\t[ 1 , 2 ] }",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!CHECK(s_one(texts[i]) == 0))
            fprintf(stderr, "     not taken: %s\n", texts[i]);
}

TEST(given_up)
{
    static const char *const texts[] = {
        "",
        "[1, 2]",
        "\"a\"",
        "{\"a\": 1} x",
        "{\"a\": 1,}",
        "{\"a\" 1}",
        "{\"a\": 01}",
        "{\"a\": 1.}",
        "{\"a\": .5}",
        "{\"a\": 1e}",
        "{\"a\": -}",
        "{\"a\": tru}",
        "{\"a\": NaN}",
        "{\"a\": Infinity}",
        "{\"a\": 1e400}",
        "{\"a\": 9223372036854775808}",
        "{\"a\": -9223372036854775809}",
        "{\"a\": \"\\u00e9\"}",
        "{\"a\": \"\xc3\xa9\"}",
        "{\"a\": \"\x01\"}",
        "{\"a\\n\": 1}",
        "{\"$bin\": \"AAAA\"}",
        "{\"a\": 1, \"a\": 2}",
        "{\"a\": \"unterminated}",
        "{\"a\": [1, 2}",
        "{\"a\": {\"b\": 1]}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!CHECK(s_one(texts[i]) == CAIRN_JSON_TEXT_PLAIN))
            fprintf(stderr, "     taken: %s\n", texts[i]);
    /* Nesting: 31 objects inside the top one are taken, 32 are not. */
    for (int deep = 31; deep <= 32; deep++) {
        char buf[512];
        size_t n = 0;
        n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
        for (int i = 0; i < deep; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "\"a\": {");
        for (int i = 0; i <= deep; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "}");
        CHECK_EQ(s_both(buf, n), deep == 31 ? 0 : CAIRN_JSON_TEXT_PLAIN);
    }
    /* 32 members are taken, 33 are not. */
    for (int members = 32; members <= 33; members++) {
        char buf[1024];
        size_t n = (size_t)snprintf(buf, sizeof buf, "{");
        for (int i = 0; i < members; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"k%d\": %d",
                                  i ? ", " : "", i, i);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "}");
        CHECK_EQ(s_both(buf, n), members == 32 ? 0 : CAIRN_JSON_TEXT_PLAIN);
    }
}

/* A log-batch body, each of many single-byte changes of it packed both
 * ways (a fixed xorshift stream: the same changes every run). */
TEST(mutations)
{
    char body[4096];
    size_t n =
        (size_t)snprintf(body, sizeof body, "{\"run_id\": \"r1\", \"metrics\": [");
    for (int i = 0; i < 8; i++)
        n += (size_t)snprintf(
            body + n, sizeof body - n,
            "%s{\"key\": \"m%d\", \"value\": %.17g, \"timestamp\": %lld, "
            "\"step\": %d}",
            i ? ", " : "", i, i / 7.0, 1700000000000LL + i, i);
    n += (size_t)snprintf(
        body + n, sizeof body - n,
        "], \"params\": [{\"key\": \"p\", \"value\": \"v\\n\"}], \"tags\": []}");
    CHECK(s_both(body, n) == 0);
    static const char alphabet[] = "{}[]\":,.-+eE0123456789 \\tfnu$a\x80";
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int taken = 0;
    for (int round = 0; round < 20000; round++) {
        char m[sizeof body];
        memcpy(m, body, n);
        for (int k = 0; k < 1 + round % 3; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m[x % n] = alphabet[(x >> 32) % (sizeof alphabet - 1)];
        }
        taken += s_both(m, n) == 0;
    }
    CHECK(taken > 100); /* many changes are still JSON */
}

/* The hook sees string members with their depth and mark. */
static int s_hook(void *arg, const char *key, size_t klen, const char *s, size_t n,
                  bool marked, int depth, msgpack_packer *pk)
{
    (void)s;
    (void)n;
    int *calls = arg;
    ++*calls;
    if (klen == 1 && key[0] == 'v' && marked)
        return msgpack_pack_int64(pk, depth) ? -1 : 1;
    if (klen == 1 && key[0] == 'x') return CAIRN_JSON_TEXT_PLAIN;
    return 0;
}

TEST(hook)
{
    const char *text =
        "{\"v\": \"top\", \"metrics\": [{\"v\": \"in\", \"w\": \"as is\"}, [{\"v\": "
        "\"deeper\"}]], "
        "\"o\": {\"v\": \"unmarked\"}}";
    int calls = 0;
    cairn_json_text_opts_t o = {.str_member = s_hook, .mark = "metrics", .arg = &calls};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CHECK_EQ(cairn_json_text_pack(text, strlen(text), &sb, &o), 0);
    CHECK_EQ(calls, 5);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS);
    char out[512];
    msgpack_object_print_buffer(out, sizeof out, u.data);
    CHECK_STR(
        out,
        "{\"v\"=>\"top\", \"metrics\"=>[{\"v\"=>2, \"w\"=>\"as is\"}, [{\"v\"=>3}]], "
        "\"o\"=>{\"v\"=>\"unmarked\"}}");
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_clear(&sb);
    const char *gives_up = "{\"a\": 1, \"x\": \"no\"}";
    CHECK_EQ(cairn_json_text_pack(gives_up, strlen(gives_up), &sb, &o),
             CAIRN_JSON_TEXT_PLAIN);
    CHECK_EQ(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* cairn_json_dump_flags' precision: the most digits any real needs (the
 * least that read back exactly, more for an integral value whose %g would
 * turn to an exponent), as the plain search over every real finds it. */
static int s_ref_digits(double d)
{
    char buf[40];
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, d);
        if (strtod(buf, NULL) == d) break;
    }
    snprintf(buf, sizeof buf, "%.*e", digits - 1, d);
    long exp10 = strtol(strchr(buf, 'e') + 1, NULL, 10);
    return exp10 >= digits && exp10 < 17 ? (int)exp10 + 1 : digits;
}

TEST(precision)
{
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (int round = 0; round < 3000; round++) {
        json_t *arr = json_array();
        int want = 0, n = 1 + round % 7;
        for (int i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            double d;
            switch ((x >> 60) % 6) {
                case 0: /* random bits */
                    memcpy(&d, &x, sizeof d);
                    if (!isfinite(d)) d = 1.5;
                    break;
                case 1: /* in [0, 1) */
                    d = (double)(x >> 11) / 9007199254740992.0;
                    break;
                case 2: /* a short decimal */
                    d = (double)(x % 100000) / 1000.0;
                    break;
                case 3: /* integral, up to 10^18 */
                    d = (double)(x % 1000000000000000000ull);
                    break;
                case 4: /* a power of two */
                    d = ldexp(1.0, (int)(x % 200) - 100);
                    break;
                default: /* a multiple of 2^-16 (bench_gateway's values) */
                    d = (double)(x & 0xffff) / 65536.0;
            }
            if (x & 1) d = -d;
            json_array_append_new(arr, json_real(d));
            int need = s_ref_digits(d);
            if (need > want) want = need;
        }
        size_t flags = cairn_json_dump_flags(arr, false);
        CHECK_EQ((flags >> 11) & 0x1f, want);
        json_decref(arr);
    }
}

int main(void)
{
    RUN(precision);
    RUN(taken);
    RUN(given_up);
    RUN(mutations);
    RUN(hook);
    return unit_report();
}
