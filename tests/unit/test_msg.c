/* Unit tests of the CAIRN/1 header codec and the msgpack field helpers
 * (sdk/msg.c): cairn_hdr_decode on good and malformed headers, the reply
 * header cairn_hdr_pack_reply writes, and the cairn_field_* getters. */
#define _GNU_SOURCE
#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn/msg.h"
#include "unit.h"

/* ---- building msgpack inputs ------------------------------------------ */

typedef struct buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} buf_t;

static void buf_init(buf_t *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

static void buf_free(buf_t *b)
{
    msgpack_sbuffer_destroy(&b->sb);
}

static void kstr(buf_t *b, const char *k, const char *v)
{
    cairn_pack_kv_str(&b->pk, k, v);
}

static void kuint(buf_t *b, const char *k, uint64_t v)
{
    cairn_pack_cstr(&b->pk, k);
    msgpack_pack_uint64(&b->pk, v);
}

/* One zone for every decode, cleared in between, as the kernel does. */
static msgpack_zone s_zone;

static int decode(const buf_t *b, cairn_hdr_t *h, cairn_err_t *e)
{
    msgpack_zone_clear(&s_zone);
    cairn_err_clear(e);
    return cairn_hdr_decode(b->sb.data, b->sb.size, &s_zone, h, e);
}

static int decode_raw(const void *p, size_t n, cairn_hdr_t *h, cairn_err_t *e)
{
    msgpack_zone_clear(&s_zone);
    cairn_err_clear(e);
    return cairn_hdr_decode(p, n, &s_zone, h, e);
}

/* Expect a 400 bad_request whose sentence contains want. */
#define CHECK_400(rc, e, want)              \
    do {                                    \
        CHECK_EQ((rc), -1);                 \
        CHECK_EQ((e).st, 400);              \
        CHECK_STR((e).code, "bad_request"); \
        CHECK_HAS((e).msg, (want));         \
    } while (0)

/* ---- cairn_hdr_decode: good headers ------------------------------------- */

TEST(decode_uint_id)
{
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kuint(&b, "id", 7);
    kstr(&b, "svc", "sys");
    kstr(&b, "verb", "ping");
    cairn_hdr_t h;
    cairn_err_t e;
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_EQ(e.st, 0);
    CHECK_EQ(h.id_type, CAIRN_ID_UINT);
    CHECK_UEQ(h.id_uint, 7);
    CHECK_SLICE(h.svc.ptr, h.svc.len, "sys");
    CHECK_SLICE(h.verb.ptr, h.verb.len, "ping");
    CHECK(h.tok.ptr == NULL && h.tok.len == 0);
    CHECK(h.ws.ptr == NULL && h.ws.len == 0);
    CHECK(h.cid.ptr == NULL && h.cid.len == 0);
    CHECK_UEQ(h.ttl, 0);
    /* The slices point into the frame itself (no copy). */
    CHECK(h.svc.ptr >= b.sb.data && h.svc.ptr < b.sb.data + b.sb.size);
    buf_free(&b);

    /* The largest id, and an id of 0, survive. */
    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kstr(&b, "svc", "s");
    kstr(&b, "verb", "v");
    kuint(&b, "id", UINT64_MAX);
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_EQ(h.id_type, CAIRN_ID_UINT);
    CHECK_UEQ(h.id_uint, UINT64_MAX);
    buf_free(&b);

    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kuint(&b, "id", 0);
    kstr(&b, "svc", "s");
    kstr(&b, "verb", "v");
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_EQ(h.id_type, CAIRN_ID_UINT);
    CHECK_UEQ(h.id_uint, 0);
    buf_free(&b);
}

TEST(decode_str_id)
{
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kstr(&b, "svc", "tracking");
    kstr(&b, "verb", "log_batch");
    kstr(&b, "id", "req-42");
    cairn_hdr_t h;
    cairn_err_t e;
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_EQ(h.id_type, CAIRN_ID_STR);
    CHECK_SLICE(h.id_str.ptr, h.id_str.len, "req-42");
    CHECK_SLICE(h.svc.ptr, h.svc.len, "tracking");
    CHECK_SLICE(h.verb.ptr, h.verb.len, "log_batch");
    buf_free(&b);

    /* An empty string id is still a string id. */
    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kstr(&b, "id", "");
    kstr(&b, "svc", "s");
    kstr(&b, "verb", "v");
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_EQ(h.id_type, CAIRN_ID_STR);
    CHECK_UEQ(h.id_str.len, 0);
    buf_free(&b);
}

TEST(decode_missing_and_nil_id)
{
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    kstr(&b, "svc", "sys");
    kstr(&b, "verb", "ping");
    cairn_hdr_t h;
    cairn_err_t e;
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_EQ(h.id_type, CAIRN_ID_NONE);
    buf_free(&b);

    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    cairn_pack_cstr(&b.pk, "id");
    msgpack_pack_nil(&b.pk);
    kstr(&b, "svc", "sys");
    kstr(&b, "verb", "ping");
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_EQ(h.id_type, CAIRN_ID_NONE);
    buf_free(&b);
}

TEST(decode_optional_keys)
{
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 7);
    kuint(&b, "ttl", 5000);
    kstr(&b, "ws", "team-a");
    kstr(&b, "tok", "secret-token");
    kstr(&b, "cid", "corr-1");
    kstr(&b, "svc", "tracking");
    kstr(&b, "verb", "search_runs");
    kuint(&b, "id", 1);
    cairn_hdr_t h;
    cairn_err_t e;
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_UEQ(h.ttl, 5000);
    CHECK_SLICE(h.ws.ptr, h.ws.len, "team-a");
    CHECK_SLICE(h.tok.ptr, h.tok.len, "secret-token");
    CHECK_SLICE(h.cid.ptr, h.cid.len, "corr-1");
    CHECK_SLICE(h.svc.ptr, h.svc.len, "tracking");
    CHECK_SLICE(h.verb.ptr, h.verb.len, "search_runs");
    buf_free(&b);

    /* ttl 0 is allowed and reads as absent; a huge ttl is kept as sent. */
    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kuint(&b, "ttl", UINT64_MAX);
    kstr(&b, "svc", "s");
    kstr(&b, "verb", "v");
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_UEQ(h.ttl, UINT64_MAX);
    buf_free(&b);
}

TEST(decode_unknown_keys_ignored)
{
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 8);
    kstr(&b, "svc", "sys");
    cairn_pack_cstr(&b.pk, "future");
    msgpack_pack_array(&b.pk, 2);
    msgpack_pack_int(&b.pk, 1);
    msgpack_pack_map(&b.pk, 1);
    kstr(&b, "deep", "x");
    kstr(&b, "verb", "ping");
    cairn_pack_cstr(&b.pk, "flag");
    msgpack_pack_true(&b.pk);
    cairn_pack_cstr(&b.pk, "f");
    msgpack_pack_double(&b.pk, 2.5);
    /* Keys that are not strings are skipped too. */
    msgpack_pack_int(&b.pk, 5);
    cairn_pack_cstr(&b.pk, "int key");
    msgpack_pack_nil(&b.pk);
    msgpack_pack_nil(&b.pk);
    /* Names that merely start like known keys are not them. */
    kuint(&b, "svcx", 1);
    cairn_hdr_t h;
    cairn_err_t e;
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_SLICE(h.svc.ptr, h.svc.len, "sys");
    CHECK_SLICE(h.verb.ptr, h.verb.len, "ping");
    CHECK_EQ(h.id_type, CAIRN_ID_NONE);
    buf_free(&b);

    /* Keys of other sizes that share a prefix with a known key ("i", "ids",
     * "tt", "verbose") are unknown, whatever their value's type. */
    buf_init(&b);
    msgpack_pack_map(&b.pk, 6);
    kstr(&b, "svc", "s");
    kstr(&b, "verb", "v");
    cairn_pack_cstr(&b.pk, "ids");
    msgpack_pack_double(&b.pk, 1.0);
    cairn_pack_cstr(&b.pk, "i");
    msgpack_pack_array(&b.pk, 0);
    cairn_pack_cstr(&b.pk, "tt");
    msgpack_pack_int(&b.pk, -1);
    cairn_pack_cstr(&b.pk, "verbose");
    msgpack_pack_int(&b.pk, 3);
    CHECK_EQ(decode(&b, &h, &e), 0);
    CHECK_SLICE(h.verb.ptr, h.verb.len, "v");
    buf_free(&b);
}

/* Every string the kernel accepts is bounded: at its limit it passes, one
 * byte past it is a 400 that says so (a 2,000-byte cid once crashed the
 * runtime that copied it). */
TEST(decode_header_limits)
{
    static const struct {
        const char *key;
        size_t max;
    } lim[] = {{"svc", CAIRN_HDR_NAME_MAX},   {"verb", CAIRN_HDR_NAME_MAX},
               {"ws", CAIRN_HDR_NAME_MAX},    {"cid", CAIRN_HDR_CID_MAX},
               {"tok", CAIRN_HDR_TOK_MAX},    {"id", CAIRN_HDR_ID_MAX},
               {"extra", CAIRN_HDR_EXTRA_MAX}};
    char *big = malloc(CAIRN_HDR_TOK_MAX + 2);
    memset(big, 'a', CAIRN_HDR_TOK_MAX + 1);
    for (size_t i = 0; i < sizeof lim / sizeof *lim; i++) {
        for (size_t extra = 0; extra < 2; extra++) {
            buf_t b;
            buf_init(&b);
            bool own = strcmp(lim[i].key, "svc") && strcmp(lim[i].key, "verb");
            msgpack_pack_map(&b.pk, own ? 3 : 2);
            if (strcmp(lim[i].key, "svc")) kstr(&b, "svc", "s");
            if (strcmp(lim[i].key, "verb")) kstr(&b, "verb", "v");
            cairn_pack_cstr(&b.pk, lim[i].key);
            cairn_pack_strn(&b.pk, big, lim[i].max + extra);
            cairn_hdr_t h;
            cairn_err_t e = {0};
            int rc = decode(&b, &h, &e);
            if (extra) {
                CHECK_400(rc, e, "at most");
            } else {
                CHECK_EQ(rc, 0);
            }
            buf_free(&b);
        }
    }
    free(big);

    /* A long key, too many keys, a NUL inside a known string. */
    buf_t b;
    cairn_hdr_t h;
    cairn_err_t e = {0};
    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kstr(&b, "svc", "s");
    kstr(&b, "verb", "v");
    kuint(&b, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 1);
    CHECK_400(decode(&b, &h, &e), e, "keys are at most");
    buf_free(&b);
    buf_init(&b);
    msgpack_pack_map(&b.pk, CAIRN_HDR_KEYS_MAX + 1);
    kstr(&b, "svc", "s");
    kstr(&b, "verb", "v");
    for (int i = 2; i <= CAIRN_HDR_KEYS_MAX; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        kuint(&b, k, 1);
    }
    CHECK_400(decode(&b, &h, &e), e, "keys");
    buf_free(&b);
    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kstr(&b, "svc", "s");
    kstr(&b, "verb", "v");
    cairn_pack_cstr(&b.pk, "cid");
    cairn_pack_strn(&b.pk, "a\0b", 3);
    CHECK_400(decode(&b, &h, &e), e, "NUL");
    buf_free(&b);
}

TEST(utf8_rules)
{
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain", true},
        {"\xc3\xbc", true},          /* ü */
        {"\xe2\x82\xac", true},      /* € */
        {"\xf0\x9f\x98\x80", true},  /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", true},  /* U+10FFFF */
        {"\xc3\x28", false},         /* bad continuation */
        {"\xc0\xaf", false},         /* overlong / */
        {"\xe0\x80\xaf", false},     /* overlong, 3 bytes */
        {"\xed\xa0\x80", false},     /* a surrogate */
        {"\xf4\x90\x80\x80", false}, /* past U+10FFFF */
        {"\xe2\x82", false},         /* cut short */
        {"\xff", false},
        {"\x80", false}, /* a lone continuation byte */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_EQ(cairn_utf8_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok);
    /* In msgpack: a str key or value that is not UTF-8 is a 400; bin is not a str. */
    static const unsigned char bad_val[] = {0x81, 0xa1, 'k', 0xa2, 0xc3, 0x28};
    static const unsigned char bad_key[] = {0x81, 0xa2, 0xc3, 0x28, 0xc0};
    static const unsigned char bad_str8[] = {0x91, 0xd9, 0x01, 0xff};
    static const unsigned char bin_ok[] = {0x81, 0xa1, 'k', 0xc4, 0x02, 0xc3, 0x28};
    cairn_err_t e = {0};
    CHECK_400(cairn_msgpack_check(bad_val, sizeof bad_val, &e), e, "UTF-8");
    CHECK_400(cairn_msgpack_check(bad_key, sizeof bad_key, &e), e, "UTF-8");
    CHECK_400(cairn_msgpack_check(bad_str8, sizeof bad_str8, &e), e, "UTF-8");
    CHECK_EQ(cairn_msgpack_check(bin_ok, sizeof bin_ok, &e), 0);

    /* A sentence cut mid-character, or quoting bad bytes, packs as valid
     * UTF-8 of the same length. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_pack_text(&pk, "cut \xe2\x82 and \xff, kept \xc3\xbc");
    CHECK_EQ(cairn_msgpack_check(sb.data, sb.size, &e), 0);
    msgpack_zone_clear(&s_zone);
    msgpack_object o;
    size_t off = 0;
    CHECK_EQ(msgpack_unpack(sb.data, sb.size, &off, &s_zone, &o),
             MSGPACK_UNPACK_SUCCESS);
    CHECK_SLICE(o.via.str.ptr, o.via.str.size, "cut ?? and ?, kept \xc3\xbc");
    msgpack_sbuffer_destroy(&sb);
}

/* ---- cairn_hdr_decode: malformed shapes --------------------------------- */

TEST(decode_not_msgpack)
{
    cairn_hdr_t h;
    cairn_err_t e;
    /* 0xc1 is never used in msgpack. */
    const unsigned char never[] = {0xc1};
    CHECK_400(decode_raw(never, sizeof never, &h, &e), e, "msgpack");
    /* A map header promising 3 pairs, with only one present. */
    const unsigned char truncated[] = {0x83, 0xa3, 's', 'v', 'c', 0xa3, 's', 'y', 's'};
    CHECK_400(decode_raw(truncated, sizeof truncated, &h, &e), e, "msgpack");
    /* A str8 whose length runs past the end. */
    const unsigned char shortstr[] = {0xd9, 0x20, 'a', 'b'};
    CHECK_400(decode_raw(shortstr, sizeof shortstr, &h, &e), e, "msgpack");
    /* The empty frame. */
    CHECK_400(decode_raw("", 0, &h, &e), e, "msgpack");
    /* Plain text. */
    const char *text = "{\"svc\": \"sys\"}";
    CHECK_400(decode_raw(text, strlen(text), &h, &e), e, "msgpack");
}

TEST(decode_trailing_bytes)
{
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    kstr(&b, "svc", "sys");
    kstr(&b, "verb", "ping");
    msgpack_pack_nil(&b.pk); /* a second value after the map */
    cairn_hdr_t h;
    cairn_err_t e;
    CHECK_400(decode(&b, &h, &e), e, "msgpack");
    buf_free(&b);

    /* Two whole maps back to back. */
    buf_init(&b);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_map(&b.pk, 2);
        kstr(&b, "svc", "sys");
        kstr(&b, "verb", "ping");
    }
    CHECK_400(decode(&b, &h, &e), e, "msgpack");
    buf_free(&b);
}

TEST(decode_not_a_map)
{
    cairn_hdr_t h;
    cairn_err_t e;
    buf_t b;

    buf_init(&b);
    msgpack_pack_array(&b.pk, 2);
    cairn_pack_cstr(&b.pk, "svc");
    cairn_pack_cstr(&b.pk, "sys");
    CHECK_400(decode(&b, &h, &e), e, "must be a map");
    buf_free(&b);

    buf_init(&b);
    cairn_pack_cstr(&b.pk, "svc=sys");
    CHECK_400(decode(&b, &h, &e), e, "must be a map");
    buf_free(&b);

    buf_init(&b);
    msgpack_pack_nil(&b.pk);
    CHECK_400(decode(&b, &h, &e), e, "must be a map");
    buf_free(&b);

    buf_init(&b);
    msgpack_pack_int(&b.pk, 42);
    CHECK_400(decode(&b, &h, &e), e, "must be a map");
    buf_free(&b);

    /* An empty map is a map, but lacks svc. */
    buf_init(&b);
    msgpack_pack_map(&b.pk, 0);
    CHECK_400(decode(&b, &h, &e), e, "'svc'");
    buf_free(&b);
}

/* A header {id: 3, svc: "sys", verb: "ping"} with key `key` set to a value
 * that `bad` packs; expect a 400 naming the key. */
typedef void (*packfn)(msgpack_packer *);
static void p_int(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 12);
}
static void p_neg(msgpack_packer *pk)
{
    msgpack_pack_int(pk, -1);
}
static void p_str(msgpack_packer *pk)
{
    cairn_pack_cstr(pk, "100");
}
static void p_float(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 1.5);
}
static void p_float32(msgpack_packer *pk)
{
    msgpack_pack_float(pk, 3.0f);
}
static void p_array(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
}
static void p_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 0);
}
static void p_bool(msgpack_packer *pk)
{
    msgpack_pack_true(pk);
}
static void p_bin(msgpack_packer *pk)
{
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "sys", 3);
}
static void p_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}

static void expect_bad(const char *key, packfn bad, const char *want, int line)
{
    buf_t b;
    buf_init(&b);
    int n = 3;
    bool has_id = strcmp(key, "id") == 0, has_svc = strcmp(key, "svc") == 0,
         has_verb = strcmp(key, "verb") == 0;
    if (!has_id && !has_svc && !has_verb) n++;
    msgpack_pack_map(&b.pk, n);
    if (has_id) {
        cairn_pack_cstr(&b.pk, "id");
        bad(&b.pk);
    } else {
        kuint(&b, "id", 3);
    }
    if (has_svc) {
        cairn_pack_cstr(&b.pk, "svc");
        bad(&b.pk);
    } else {
        kstr(&b, "svc", "sys");
    }
    if (has_verb) {
        cairn_pack_cstr(&b.pk, "verb");
        bad(&b.pk);
    } else {
        kstr(&b, "verb", "ping");
    }
    if (n == 4) {
        cairn_pack_cstr(&b.pk, key);
        bad(&b.pk);
    }
    cairn_hdr_t h;
    cairn_err_t e;
    int rc = decode(&b, &h, &e);
    if (!CHECK(rc == -1 && e.st == 400 && strcmp(e.code, "bad_request") == 0 &&
               strstr(e.msg, want) != NULL))
        fprintf(stderr,
                "     (case at line %d, key '%s': rc %d, st %d, code '%s', msg '%s')\n",
                line, key, rc, e.st, e.code, e.msg);
    /* When the id itself is fine, the error still knows it, so that the
     * kernel can address its 400. */
    if (!has_id && !CHECK(h.id_type == CAIRN_ID_UINT && h.id_uint == 3))
        fprintf(stderr, "     (case at line %d: the id was lost)\n", line);
    buf_free(&b);
}
#define BAD(key, fn, want) expect_bad((key), (fn), (want), __LINE__)

TEST(decode_bad_types_name_the_key)
{
    BAD("svc", p_int, "'svc' must be a string");
    BAD("svc", p_bin, "'svc' must be a string");
    BAD("svc", p_array, "'svc'");
    BAD("svc", p_nil, "'svc'");
    BAD("verb", p_int, "'verb' must be a string");
    BAD("verb", p_map, "'verb'");
    BAD("tok", p_int, "'tok' must be a string");
    BAD("ws", p_bool, "'ws' must be a string");
    BAD("cid", p_float, "'cid' must be a string");
    BAD("ttl", p_neg, "'ttl' must be an unsigned integer");
    BAD("ttl", p_str, "'ttl' must be an unsigned integer");
    BAD("ttl", p_float, "'ttl'");
    BAD("ttl", p_nil, "'ttl'");
    BAD("id", p_float, "'id' must be an unsigned integer or a string");
    BAD("id", p_float32, "'id'");
    BAD("id", p_array, "'id' must be an unsigned integer or a string");
    BAD("id", p_map, "'id'");
    BAD("id", p_neg, "'id'");
    BAD("id", p_bool, "'id'");
    BAD("id", p_bin, "'id'");
}

TEST(decode_missing_svc_or_verb)
{
    cairn_hdr_t h;
    cairn_err_t e;
    buf_t b;

    buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    kuint(&b, "id", 5);
    kstr(&b, "verb", "ping");
    CHECK_400(decode(&b, &h, &e), e, "lacks 'svc'");
    CHECK_EQ(h.id_type, CAIRN_ID_UINT);
    CHECK_UEQ(h.id_uint, 5);
    buf_free(&b);

    buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    kstr(&b, "id", "x");
    kstr(&b, "svc", "sys");
    CHECK_400(decode(&b, &h, &e), e, "lacks 'verb'");
    CHECK_EQ(h.id_type, CAIRN_ID_STR);
    buf_free(&b);

    /* Empty strings count as missing. */
    buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    kstr(&b, "svc", "");
    kstr(&b, "verb", "ping");
    CHECK_400(decode(&b, &h, &e), e, "'svc'");
    buf_free(&b);

    buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    kstr(&b, "svc", "sys");
    kstr(&b, "verb", "");
    CHECK_400(decode(&b, &h, &e), e, "'verb'");
    buf_free(&b);

    /* Only unknown keys. */
    buf_init(&b);
    msgpack_pack_map(&b.pk, 1);
    kstr(&b, "service", "sys");
    CHECK_400(decode(&b, &h, &e), e, "lacks 'svc'");
    buf_free(&b);
}

TEST(decode_err_may_be_null)
{
    /* A NULL err is allowed: the result is still -1. */
    const unsigned char never[] = {0xc1};
    cairn_hdr_t h;
    msgpack_zone_clear(&s_zone);
    CHECK_EQ(cairn_hdr_decode(never, 1, &s_zone, &h, NULL), -1);
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 1);
    kuint(&b, "svc", 1);
    msgpack_zone_clear(&s_zone);
    CHECK_EQ(cairn_hdr_decode(b.sb.data, b.sb.size, &s_zone, &h, NULL), -1);
    buf_free(&b);
}

TEST(decode_many_times_one_zone)
{
    /* The reused zone: many decodes in a row, each cleared; the last
     * decode's slices are intact. */
    buf_t b;
    cairn_hdr_t h;
    cairn_err_t e;
    for (int i = 0; i < 2000; i++) {
        buf_init(&b);
        msgpack_pack_map(&b.pk, 4);
        kuint(&b, "id", (uint64_t)i);
        kstr(&b, "svc", "tracking");
        kstr(&b, "verb", "log_batch");
        cairn_pack_cstr(&b.pk, "pad");
        msgpack_pack_array(&b.pk, (size_t)(i % 50));
        for (int j = 0; j < i % 50; j++) msgpack_pack_int(&b.pk, j);
        int rc = decode(&b, &h, &e);
        if (rc != 0 || h.id_uint != (uint64_t)i) {
            CHECK(rc == 0 && h.id_uint == (uint64_t)i);
            buf_free(&b);
            break;
        }
        buf_free(&b);
    }
    CHECK(1);
}

TEST(decode_huge_declared_counts)
{
    /* A few bytes that declare a container of 2^32-1 entries (or a string
     * of 4 GiB) are refused like any other truncated frame, without the
     * decoder reserving memory for what the frame only claims: msgpack-c's
     * msgpack_unpack preallocates count * sizeof(object) from the zone
     * before it reads a single element (msgpack/msgpack-c#1013), so
     * cairn_hdr_decode must bound the counts by the bytes left itself.
     * Without sanitizers the 64 GiB malloc usually just fails; under ASan
     * (CI's build) it aborts the process. Each case runs in a child so the
     * rest of this file still reports. */
    static const struct {
        const char *what;
        unsigned char b[12];
        size_t n;
    } t[] = {
        {"map32 of 2^32-1 pairs", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5},
        {"array32 of 2^32-1 items", {0xdd, 0xff, 0xff, 0xff, 0xff}, 5},
        {"map32 of 2^28 pairs", {0xdf, 0x10, 0x00, 0x00, 0x00}, 5},
        {"id: array32 of 2^32-1",
         {0x81, 0xa2, 'i', 'd', 0xdd, 0xff, 0xff, 0xff, 0xff},
         9},
        {"str32 of 4 GiB", {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, 6},
        {"bin32 of 4 GiB", {0xc6, 0xff, 0xff, 0xff, 0xff, 'x'}, 6},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(!"fork failed");
            return;
        }
        if (pid == 0) {
            cairn_hdr_t h;
            cairn_err_t e;
            int rc = decode_raw(t[i].b, t[i].n, &h, &e);
            _exit(rc == -1 && e.st == 400 ? 0 : 1);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            fprintf(stderr, "     %s (%zu bytes): %s %d\n", t[i].what, t[i].n,
                    WIFSIGNALED(status) ? "the decoder died with signal"
                                        : "the decoder's process exited",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
}

/* ---- cairn_msgpack_check ---------------------------------------------- */

/* msgpack-c's verdict on a buffer: 1 for one complete value and nothing
 * after, 0 for a refusal, -1 when it is not asked: msgpack_unpack reserves
 * count * sizeof(object) for an array32/map32 before reading the items, so
 * on buffers that may declare a 32-bit count above 65536 (anywhere, even
 * inside a string: this is conservative) it could ask for up to 128 GiB,
 * which ASan turns into an abort. */
/* Whether every str in o (keys included) is valid UTF-8: the one rule
 * cairn_msgpack_check adds to msgpack-c's. */
static bool strs_utf8(const msgpack_object *o)
{
    switch (o->type) {
        case MSGPACK_OBJECT_STR:
            return cairn_utf8_valid(o->via.str.ptr, o->via.str.size);
        case MSGPACK_OBJECT_ARRAY:
            for (uint32_t i = 0; i < o->via.array.size; i++)
                if (!strs_utf8(&o->via.array.ptr[i])) return false;
            return true;
        case MSGPACK_OBJECT_MAP:
            for (uint32_t i = 0; i < o->via.map.size; i++)
                if (!strs_utf8(&o->via.map.ptr[i].key) ||
                    !strs_utf8(&o->via.map.ptr[i].val))
                    return false;
            return true;
        default:
            return true;
    }
}

/* 1 when msgpack-c decodes p as one value whose strings are UTF-8, 0 when
 * not, -1 when it is not asked (it would allocate too much). */
static int unpack_ok(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i + 4 < n; i++)
        if ((b[i] == 0xdd || b[i] == 0xdf) &&
            (((uint32_t)b[i + 1] << 24) | ((uint32_t)b[i + 2] << 16) |
             ((uint32_t)b[i + 3] << 8) | b[i + 4]) > 65536)
            return -1;
    msgpack_zone_clear(&s_zone);
    msgpack_object o;
    size_t off = 0;
    return msgpack_unpack(p, n, &off, &s_zone, &o) == MSGPACK_UNPACK_SUCCESS &&
           off == n && strs_utf8(&o);
}

static bool check_ok(const void *p, size_t n)
{
    cairn_err_t e = {0};
    int rc = cairn_msgpack_check(p, n, &e);
    if (rc != 0) {
        /* Every refusal is a 400 with a sentence. */
        CHECK(rc == -1 && e.st == 400 && e.msg[0] != '\0');
    }
    return rc == 0;
}

/* A value holding one of every msgpack format msgpack-c's packer emits. */
static void pack_everything(buf_t *b)
{
    char big[300];
    memset(big, 'z', sizeof big);
    msgpack_packer *pk = &b->pk;
    msgpack_pack_array(pk, 31);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_false(pk);
    msgpack_pack_uint64(pk, 7);          /* positive fixint */
    msgpack_pack_uint64(pk, 200);        /* uint8 */
    msgpack_pack_uint64(pk, 60000);      /* uint16 */
    msgpack_pack_uint64(pk, 4000000000); /* uint32 */
    msgpack_pack_uint64(pk, UINT64_MAX); /* uint64 */
    msgpack_pack_int64(pk, -5);          /* negative fixint */
    msgpack_pack_int64(pk, -100);        /* int8 */
    msgpack_pack_int64(pk, -30000);      /* int16 */
    msgpack_pack_int64(pk, -2000000000); /* int32 */
    msgpack_pack_int64(pk, INT64_MIN);   /* int64 */
    msgpack_pack_float(pk, 1.5f);
    msgpack_pack_double(pk, -2.25);
    cairn_pack_strn(pk, big, 5);   /* fixstr */
    cairn_pack_strn(pk, big, 40);  /* str8 */
    cairn_pack_strn(pk, big, 300); /* str16 */
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, big, 3); /* bin8 */
    msgpack_pack_bin(pk, 300);
    msgpack_pack_bin_body(pk, big, 300); /* bin16 */
    static const size_t ext_sizes[] = {1,  2, 4,  8,
                                       16, 3, 300}; /* fixext*, ext8, ext16 */
    for (size_t i = 0; i < 7; i++) {
        msgpack_pack_ext(pk, ext_sizes[i], 5);
        msgpack_pack_ext_body(pk, big, ext_sizes[i]);
    }
    msgpack_pack_array(pk, 0);
    msgpack_pack_map(pk, 0);
    msgpack_pack_array(pk, 20); /* array16 */
    for (int i = 0; i < 20; i++) msgpack_pack_int(pk, i);
    msgpack_pack_map(pk, 20); /* map16 */
    for (int i = 0; i < 20; i++) {
        msgpack_pack_int(pk, i);
        msgpack_pack_array(pk, 1);
        msgpack_pack_map(pk, 0);
    }
}

TEST(msgpack_check_accepts_every_format)
{
    buf_t b;
    buf_init(&b);
    pack_everything(&b);
    CHECK(unpack_ok(b.sb.data, b.sb.size) == 1);
    CHECK(check_ok(b.sb.data, b.sb.size));
    CHECK_EQ(cairn_msgpack_check(b.sb.data, b.sb.size, NULL), 0);

    /* Every proper prefix is refused, by both. */
    size_t disagree = 0, accepted = 0;
    for (size_t n = 0; n < b.sb.size; n++) {
        bool c = check_ok(b.sb.data, n);
        if (c) accepted++;
        int u = unpack_ok(b.sb.data, n);
        if (u >= 0 && c != (u == 1)) disagree++;
    }
    if (!CHECK(accepted == 0 && disagree == 0))
        fprintf(stderr, "     prefixes: %zu accepted, %zu disagreements\n", accepted,
                disagree);

    /* A byte more is "not one value". */
    msgpack_pack_nil(&b.pk);
    CHECK(!check_ok(b.sb.data, b.sb.size));
    buf_free(&b);

    /* The 32-bit forms the packer never picks for small values. */
    static const struct {
        unsigned char b[12];
        size_t n;
    } t[] = {
        {{0xdd, 0, 0, 0, 1, 0xc0}, 6},                 /* array32 [nil] */
        {{0xdf, 0, 0, 0, 1, 0xa1, 'a', 0x01}, 8},      /* map32 {a: 1} */
        {{0xdb, 0, 0, 0, 2, 'h', 'i'}, 7},             /* str32 */
        {{0xc6, 0, 0, 0, 1, 'x'}, 6},                  /* bin32 */
        {{0xc9, 0, 0, 0, 1, 5, 'x'}, 7},               /* ext32 */
        {{0xc8, 0, 1, 5, 'x'}, 5},                     /* ext16 */
        {{0xc7, 0, 5}, 3},                             /* ext8, empty */
        {{0xdc, 0, 0}, 3},                             /* array16 [] */
        {{0xde, 0, 0}, 3},                             /* map16 {} */
        {{0xd9, 0}, 2},                                /* str8 "" */
        {{0xc4, 0}, 2},                                /* bin8 empty */
        {{0xcf, 1, 2, 3, 4, 5, 6, 7, 8}, 9},           /* uint64 */
        {{0xd8, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 12}, /* fixext16, cut: refused */
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        bool c = check_ok(t[i].b, t[i].n);
        int u = unpack_ok(t[i].b, t[i].n);
        if (!CHECK(c == (u == 1) && (i + 1 == sizeof t / sizeof *t ? !c : c)))
            fprintf(stderr, "     case %zu (0x%02x...): check %d, msgpack-c %d\n", i,
                    t[i].b[0], c, u);
    }
}

TEST(msgpack_check_refuses)
{
    cairn_err_t e = {0};
    static const struct {
        const char *what;
        unsigned char b[12];
        size_t n;
    } t[] = {
        {"empty", {0}, 0},
        {"reserved 0xc1", {0xc1}, 1},
        {"0xc1 inside an array", {0x92, 0x01, 0xc1}, 3},
        {"0xc1 as a map key", {0x81, 0xc1, 0x01}, 3},
        {"array32 of 2^32-1", {0xdd, 0xff, 0xff, 0xff, 0xff}, 5},
        {"map32 of 2^32-1", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5},
        {"map16 of 65535", {0xde, 0xff, 0xff, 0x01, 0x02}, 5},
        {"str32 of 4 GiB", {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, 6},
        {"bin32 of 4 GiB", {0xc6, 0xff, 0xff, 0xff, 0xff, 'x'}, 6},
        {"ext32 of 4 GiB", {0xc9, 0xff, 0xff, 0xff, 0xff, 1, 'x'}, 7},
        {"ext8 without its type", {0xc7, 0x01}, 2},
        {"str8 without its length", {0xd9}, 1},
        {"uint64 cut", {0xcf, 1, 2, 3}, 4},
        {"float64 cut", {0xcb, 0, 0}, 3},
        {"fixmap missing a value", {0x81, 0xa1, 'k'}, 3},
        {"fixarray of 3 with 2", {0x93, 0x01, 0x02}, 3},
        {"two values", {0x01, 0x02}, 2},
        {"nil then garbage", {0xc0, 0xc1}, 2},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        cairn_err_clear(&e);
        int rc = cairn_msgpack_check(t[i].b, t[i].n, &e);
        int u = t[i].n ? unpack_ok(t[i].b, t[i].n) : 0;
        if (!CHECK(rc == -1 && e.st == 400 && strcmp(e.code, "bad_request") == 0 &&
                   e.msg[0] && u != 1))
            fprintf(stderr, "     %s: rc %d, msg '%s', msgpack-c %s\n", t[i].what, rc,
                    e.msg,
                    u == 1   ? "accepts"
                    : u == 0 ? "refuses"
                             : "not asked");
        /* And the header decoder refuses the same with a 400. */
        cairn_hdr_t h;
        CHECK_EQ(decode_raw(t[i].b, t[i].n, &h, &e), -1);
        CHECK_EQ(e.st, 400);
    }
    CHECK_EQ(cairn_msgpack_check("\xc1", 1, NULL), -1);
}

TEST(msgpack_check_depth)
{
    /* Nesting: d arrays of one, around a nil (or an empty array). Up to
     * CAIRN_MSGPACK_MAX_DEPTH levels pass; deeper is refused; and both
     * verdicts are msgpack-c's own, so nothing the check passes fails to
     * unpack. */
    unsigned char b[200];
    for (int inner = 0; inner < 2; inner++) {
        for (int d = 1; d <= 40; d++) {
            memset(b, 0x91, (size_t)d);
            b[d] = inner ? 0x90 : 0xc0;
            size_t n = (size_t)d + 1;
            bool c = check_ok(b, n), u = unpack_ok(b, n) == 1;
            if (!CHECK(c == u))
                fprintf(stderr, "     depth %d (+%s): check %d, msgpack-c %d\n", d,
                        inner ? "[]" : "nil", c, u);
            if (d <= CAIRN_MSGPACK_MAX_DEPTH - 1) CHECK(c);
            if (d > CAIRN_MSGPACK_MAX_DEPTH + 1) CHECK(!c);
        }
    }
    /* Maps nest too: {0: {0: ... nil}}. */
    for (int d = 1; d <= 40; d++) {
        size_t n = 0;
        for (int i = 0; i < d; i++) {
            b[n++] = 0x81;
            b[n++] = 0x00;
        }
        b[n++] = 0xc0;
        bool c = check_ok(b, n), u = unpack_ok(b, n) == 1;
        if (!CHECK(c == u))
            fprintf(stderr, "     map depth %d: check %d, msgpack-c %d\n", d, c, u);
    }
}

TEST(msgpack_check_mutations_agree)
{
    /* A small fuzz with a fixed seed: mutate a rich value and compare the
     * check's verdict with msgpack-c's on every mutant. A check that passes
     * what msgpack-c refuses lets bad frames through; one that refuses what
     * msgpack-c takes refuses good ones. */
    buf_t b;
    buf_init(&b);
    pack_everything(&b);
    size_t n0 = b.sb.size;
    unsigned char *m = malloc(n0 + 16);
    if (!CHECK(m)) return;
    uint64_t x = 0x2545f4914f6cdd1dULL;
    size_t disagree = 0, accepted = 0, asked = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, b.sb.data, n0);
        size_t n = n0;
        int nmut = 1 + (int)(iter % 3);
        for (int k = 0; k < nmut; k++) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            uint64_t r = x * 0x2545f4914f6cdd1dULL;
            size_t at = (size_t)(r >> 8) % n;
            switch (r % 4) {
                case 0:
                    m[at] = (unsigned char)(r >> 40);
                    break; /* any byte */
                case 1:
                    m[at] ^= (unsigned char)(1u << ((r >> 40) % 8));
                    break; /* a bit */
                case 2:
                    n = at + 1;
                    break; /* cut */
                default:
                    m[at] = (unsigned char[]){0xc1, 0xdd, 0xdf, 0xdb,
                                              0x00, 0xff, 0x91, 0x80}[(r >> 40) % 8];
            }
        }
        bool c = check_ok(m, n);
        int u = unpack_ok(m, n);
        if (c) accepted++;
        if (u < 0) continue;
        asked++;
        if (c != (u == 1)) {
            if (disagree++ < 5) {
                fprintf(stderr,
                        "     mutant %d (%zu bytes): check %d, msgpack-c %d:", iter, n,
                        c, u);
                for (size_t i = 0; i < n && i < 48; i++) fprintf(stderr, " %02x", m[i]);
                fprintf(stderr, "%s\n", n > 48 ? " ..." : "");
            }
        }
    }
    CHECK_UEQ(disagree, 0);
    CHECK(accepted > 0);  /* some mutants stay valid (e.g. a changed int) */
    CHECK(asked > 15000); /* and most were compared */
    free(m);
    buf_free(&b);
}

/* ---- cairn_hdr_pack_reply ---------------------------------------------- */

/* msgpack-c's unpacker points strings into the input buffer, so the reply
 * keeps its buffer until reply_free. */
typedef struct reply {
    buf_t b;
    msgpack_unpacked up;
    const msgpack_object *map;
} reply_t;

static void pack_reply(reply_t *r, const cairn_hdr_t *req, int st, const char *code,
                       const char *msg)
{
    buf_init(&r->b);
    cairn_hdr_pack_reply(&r->b.pk, req, st, code, msg);
    msgpack_unpacked_init(&r->up);
    size_t off = 0;
    int rc = msgpack_unpack_next(&r->up, r->b.sb.data, r->b.sb.size, &off);
    CHECK_EQ(rc, MSGPACK_UNPACK_SUCCESS);
    CHECK_UEQ(off, r->b.sb.size);
    r->map = &r->up.data;
    CHECK_EQ(r->map->type, MSGPACK_OBJECT_MAP);
}

static void reply_free(reply_t *r)
{
    msgpack_unpacked_destroy(&r->up);
    buf_free(&r->b);
}

static void check_str_val(const msgpack_object *map, const char *key, const char *want)
{
    const msgpack_object *v = cairn_obj_get(map, key);
    if (!CHECK(v && v->type == MSGPACK_OBJECT_STR)) {
        fprintf(stderr, "     (reply key '%s')\n", key);
        return;
    }
    CHECK_SLICE(v->via.str.ptr, v->via.str.size, want);
}

TEST(pack_reply_echoes_id)
{
    cairn_hdr_t req = {0};
    reply_t r;

    req.id_type = CAIRN_ID_UINT;
    req.id_uint = 123456789012345ULL;
    pack_reply(&r, &req, 200, NULL, NULL);
    CHECK_UEQ(r.map->via.map.size, 2);
    const msgpack_object *id = cairn_obj_get(r.map, "id");
    CHECK(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
          id->via.u64 == 123456789012345ULL);
    const msgpack_object *st = cairn_obj_get(r.map, "st");
    CHECK(st && st->type == MSGPACK_OBJECT_POSITIVE_INTEGER && st->via.u64 == 200);
    CHECK(cairn_obj_get(r.map, "err") == NULL);
    CHECK(cairn_obj_get(r.map, "code") == NULL);
    reply_free(&r);

    req.id_uint = UINT64_MAX;
    pack_reply(&r, &req, 201, "ignored", "ignored too");
    id = cairn_obj_get(r.map, "id");
    CHECK(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
          id->via.u64 == UINT64_MAX);
    CHECK_UEQ(r.map->via.map.size, 2);
    CHECK(cairn_obj_get(r.map, "err") == NULL);
    reply_free(&r);

    req.id_type = CAIRN_ID_STR;
    req.id_str.ptr = "abc-xyz and more";
    req.id_str.len = 7; /* a slice, not NUL-terminated where it ends */
    pack_reply(&r, &req, 200, NULL, NULL);
    check_str_val(r.map, "id", "abc-xyz");
    reply_free(&r);

    /* No id: nil, and so with no request at all. */
    req = (cairn_hdr_t){0};
    pack_reply(&r, &req, 200, NULL, NULL);
    id = cairn_obj_get(r.map, "id");
    CHECK(id && id->type == MSGPACK_OBJECT_NIL);
    reply_free(&r);

    pack_reply(&r, NULL, 400, "bad_request", "the header frame must be a map");
    id = cairn_obj_get(r.map, "id");
    CHECK(id && id->type == MSGPACK_OBJECT_NIL);
    reply_free(&r);
}

TEST(pack_reply_errors_only_when_failed)
{
    cairn_hdr_t req = {.id_type = CAIRN_ID_UINT, .id_uint = 9};
    reply_t r;

    pack_reply(&r, &req, 404, "no_service", "there is no service 'nope'");
    CHECK_UEQ(r.map->via.map.size, 4);
    const msgpack_object *st = cairn_obj_get(r.map, "st");
    CHECK(st && st->type == MSGPACK_OBJECT_POSITIVE_INTEGER && st->via.u64 == 404);
    check_str_val(r.map, "code", "no_service");
    check_str_val(r.map, "err", "there is no service 'nope'");
    const msgpack_object *id = cairn_obj_get(r.map, "id");
    CHECK(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER && id->via.u64 == 9);
    reply_free(&r);

    /* 400 is the first failing status; 399 is not one. */
    pack_reply(&r, &req, 400, "bad_request", "x");
    CHECK_UEQ(r.map->via.map.size, 4);
    reply_free(&r);
    pack_reply(&r, &req, 399, "bad_request", "x");
    CHECK_UEQ(r.map->via.map.size, 2);
    CHECK(cairn_obj_get(r.map, "err") == NULL);
    CHECK(cairn_obj_get(r.map, "code") == NULL);
    reply_free(&r);

    /* NULL or empty code and message get defaults, never a missing key. */
    pack_reply(&r, &req, 503, NULL, NULL);
    CHECK_UEQ(r.map->via.map.size, 4);
    check_str_val(r.map, "code", "unavailable");
    const msgpack_object *err = cairn_obj_get(r.map, "err");
    CHECK(err && err->type == MSGPACK_OBJECT_STR && err->via.str.size > 0);
    reply_free(&r);

    pack_reply(&r, &req, 504, "", "");
    check_str_val(r.map, "code", "deadline_exceeded");
    err = cairn_obj_get(r.map, "err");
    CHECK(err && err->type == MSGPACK_OBJECT_STR && err->via.str.size > 0);
    reply_free(&r);

    pack_reply(&r, &req, 500, NULL, "boom");
    check_str_val(r.map, "code", "internal");
    check_str_val(r.map, "err", "boom");
    reply_free(&r);
}

TEST(decode_then_reply_round_trip)
{
    /* What the kernel does with a bad header: decode fails after the id is
     * read, and the 400 still reaches the right request. */
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 3);
    kstr(&b, "id", "q1");
    kuint(&b, "svc", 1);
    kstr(&b, "verb", "ping");
    cairn_hdr_t h;
    cairn_err_t e;
    CHECK_EQ(decode(&b, &h, &e), -1);
    reply_t r;
    pack_reply(&r, &h, e.st, e.code, e.msg);
    check_str_val(r.map, "id", "q1");
    check_str_val(r.map, "code", "bad_request");
    check_str_val(r.map, "err", "header key 'svc' must be a string");
    reply_free(&r);
    buf_free(&b);
}

/* ---- field helpers ----------------------------------------------------- */

static buf_t s_body_buf; /* the body's strings point into it */
static msgpack_unpacked s_body_up;
static const msgpack_object *s_body;

static void make_body(void)
{
    buf_t b;
    buf_init(&b);
    msgpack_pack_map(&b.pk, 13);
    kstr(&b, "name", "abc");
    kuint(&b, "n", 5);
    cairn_pack_cstr(&b.pk, "neg");
    msgpack_pack_int64(&b.pk, -3);
    kuint(&b, "big", UINT64_MAX);
    kuint(&b, "i64max", (uint64_t)INT64_MAX);
    cairn_pack_cstr(&b.pk, "d");
    msgpack_pack_double(&b.pk, 1.5);
    cairn_pack_cstr(&b.pk, "f");
    msgpack_pack_float(&b.pk, 0.25f);
    cairn_pack_cstr(&b.pk, "b");
    msgpack_pack_true(&b.pk);
    cairn_pack_cstr(&b.pk, "m");
    msgpack_pack_map(&b.pk, 1);
    kuint(&b, "inner", 1);
    cairn_pack_cstr(&b.pk, "a");
    msgpack_pack_array(&b.pk, 2);
    msgpack_pack_int(&b.pk, 1);
    msgpack_pack_int(&b.pk, 2);
    cairn_pack_cstr(&b.pk, "nil");
    msgpack_pack_nil(&b.pk);
    kstr(&b, "ten", "0123456789");
    kstr(&b, "eleven", "0123456789A");
    msgpack_unpacked_init(&s_body_up);
    size_t off = 0;
    CHECK_EQ(msgpack_unpack_next(&s_body_up, b.sb.data, b.sb.size, &off),
             MSGPACK_UNPACK_SUCCESS);
    s_body = &s_body_up.data;
    s_body_buf = b;
}

/* Expect -1 with a 400 whose sentence contains both the quoted field name
 * and want. */
static void expect_field_err(int rc, const cairn_err_t *e, const char *field,
                             const char *want, int line)
{
    char quoted[80];
    snprintf(quoted, sizeof quoted, "'%s'", field);
    if (!CHECK(rc == -1 && e->st == 400 && strcmp(e->code, "bad_request") == 0 &&
               strstr(e->msg, quoted) && strstr(e->msg, want)))
        fprintf(stderr, "     (line %d: rc %d, st %d, msg '%s'; want %s and '%s')\n",
                line, rc, e->st, e->msg, quoted, want);
}
#define FIELD_ERR(rc, field, want) expect_field_err((rc), &e, (field), (want), __LINE__)

TEST(field_str)
{
    cairn_err_t e = {0};
    cairn_str_t s = {0};
    CHECK_EQ(cairn_field_str(s_body, "name", true, 0, &s, &e), 0);
    CHECK_SLICE(s.ptr, s.len, "abc");
    CHECK_EQ(cairn_field_str(s_body, "name", false, 3, &s, &e), 0);

    /* Absent: 1 when optional (out untouched), a 400 when required. */
    s = (cairn_str_t){"keep", 4};
    CHECK_EQ(cairn_field_str(s_body, "nope", false, 0, &s, &e), 1);
    CHECK_SLICE(s.ptr, s.len, "keep");
    FIELD_ERR(cairn_field_str(s_body, "nope", true, 0, &s, &e), "nope", "is required");

    /* nil counts as absent. */
    CHECK_EQ(cairn_field_str(s_body, "nil", false, 0, &s, &e), 1);
    FIELD_ERR(cairn_field_str(s_body, "nil", true, 0, &s, &e), "nil", "required");

    /* Mistyped, required or not. */
    FIELD_ERR(cairn_field_str(s_body, "n", true, 0, &s, &e), "n", "a string");
    FIELD_ERR(cairn_field_str(s_body, "m", false, 0, &s, &e), "m", "a string");

    /* The length limit: at it is fine, past it names the limit. */
    CHECK_EQ(cairn_field_str(s_body, "ten", true, 10, &s, &e), 0);
    CHECK_UEQ(s.len, 10);
    cairn_err_clear(&e);
    FIELD_ERR(cairn_field_str(s_body, "eleven", true, 10, &s, &e), "eleven", "10");
    CHECK_HAS(e.msg, "limit");
    CHECK_HAS(e.msg, "11");
    CHECK_EQ(cairn_field_str(s_body, "eleven", true, 0, &s, &e), 0);
}

TEST(field_numbers)
{
    cairn_err_t e = {0};
    uint64_t u = 0;
    int64_t i = 0;
    double d = 0;

    CHECK_EQ(cairn_field_uint(s_body, "n", true, &u, &e), 0);
    CHECK_UEQ(u, 5);
    CHECK_EQ(cairn_field_uint(s_body, "big", true, &u, &e), 0);
    CHECK_UEQ(u, UINT64_MAX);
    CHECK_EQ(cairn_field_uint(s_body, "nope", false, &u, &e), 1);
    FIELD_ERR(cairn_field_uint(s_body, "nope", true, &u, &e), "nope", "required");
    FIELD_ERR(cairn_field_uint(s_body, "neg", true, &u, &e), "neg",
              "non-negative integer");
    FIELD_ERR(cairn_field_uint(s_body, "name", false, &u, &e), "name", "integer");
    FIELD_ERR(cairn_field_uint(s_body, "d", false, &u, &e), "d", "integer");

    CHECK_EQ(cairn_field_int(s_body, "neg", true, &i, &e), 0);
    CHECK_EQ(i, -3);
    CHECK_EQ(cairn_field_int(s_body, "n", true, &i, &e), 0);
    CHECK_EQ(i, 5);
    CHECK_EQ(cairn_field_int(s_body, "i64max", true, &i, &e), 0);
    CHECK(i == INT64_MAX);
    FIELD_ERR(cairn_field_int(s_body, "big", true, &i, &e), "big", "an integer");
    FIELD_ERR(cairn_field_int(s_body, "d", true, &i, &e), "d", "an integer");
    FIELD_ERR(cairn_field_int(s_body, "b", true, &i, &e), "b", "an integer");
    CHECK_EQ(cairn_field_int(s_body, "nope", false, &i, &e), 1);
    FIELD_ERR(cairn_field_int(s_body, "nope", true, &i, &e), "nope", "required");

    CHECK_EQ(cairn_field_double(s_body, "d", true, &d, &e), 0);
    CHECK(d == 1.5);
    CHECK_EQ(cairn_field_double(s_body, "f", true, &d, &e), 0);
    CHECK(d == 0.25);
    CHECK_EQ(cairn_field_double(s_body, "n", true, &d, &e), 0);
    CHECK(d == 5.0);
    CHECK_EQ(cairn_field_double(s_body, "neg", true, &d, &e), 0);
    CHECK(d == -3.0);
    FIELD_ERR(cairn_field_double(s_body, "name", true, &d, &e), "name", "a number");
    FIELD_ERR(cairn_field_double(s_body, "a", false, &d, &e), "a", "a number");
    CHECK_EQ(cairn_field_double(s_body, "nil", false, &d, &e), 1);
}

TEST(field_bool_map_array)
{
    cairn_err_t e = {0};
    bool bv = false;
    const msgpack_object *o = NULL;

    CHECK_EQ(cairn_field_bool(s_body, "b", true, &bv, &e), 0);
    CHECK(bv == true);
    FIELD_ERR(cairn_field_bool(s_body, "n", true, &bv, &e), "n", "a boolean");
    FIELD_ERR(cairn_field_bool(s_body, "name", true, &bv, &e), "name", "a boolean");
    CHECK_EQ(cairn_field_bool(s_body, "nope", false, &bv, &e), 1);

    CHECK_EQ(cairn_field_map(s_body, "m", true, &o, &e), 0);
    CHECK(o && o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 1);
    FIELD_ERR(cairn_field_map(s_body, "a", true, &o, &e), "a", "a map");
    FIELD_ERR(cairn_field_map(s_body, "nope", true, &o, &e), "nope", "required");

    CHECK_EQ(cairn_field_array(s_body, "a", true, &o, &e), 0);
    CHECK(o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 2);
    FIELD_ERR(cairn_field_array(s_body, "m", true, &o, &e), "m", "an array");
    CHECK_EQ(cairn_field_array(s_body, "nil", false, &o, &e), 1);
}

TEST(field_body_shapes)
{
    cairn_err_t e = {0};
    cairn_str_t s;
    uint64_t u;

    /* A NULL or nil body has no fields. */
    CHECK_EQ(cairn_field_str(NULL, "x", false, 0, &s, &e), 1);
    FIELD_ERR(cairn_field_str(NULL, "x", true, 0, &s, &e), "x", "required");
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    CHECK_EQ(cairn_field_uint(&nil, "x", false, &u, &e), 1);
    FIELD_ERR(cairn_field_uint(&nil, "x", true, &u, &e), "x", "required");

    /* A body that is not a map is a 400 saying so. */
    msgpack_object arr = {.type = MSGPACK_OBJECT_ARRAY};
    cairn_err_clear(&e);
    CHECK_EQ(cairn_field_str(&arr, "x", false, 0, &s, &e), -1);
    CHECK_EQ(e.st, 400);
    CHECK_HAS(e.msg, "must be a map");
    msgpack_object num = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    cairn_err_clear(&e);
    CHECK_EQ(cairn_field_uint(&num, "x", true, &u, &e), -1);
    CHECK_HAS(e.msg, "must be a map");
}

TEST(obj_and_str_helpers)
{
    const msgpack_object *v = cairn_obj_get(s_body, "name");
    CHECK(cairn_obj_is_str(v, "abc"));
    CHECK(!cairn_obj_is_str(v, "ab"));
    CHECK(!cairn_obj_is_str(v, "abcd"));
    CHECK(!cairn_obj_is_str(NULL, "abc"));
    CHECK(!cairn_obj_is_str(cairn_obj_get(s_body, "n"), "5"));
    CHECK(cairn_obj_get(NULL, "name") == NULL);
    CHECK(cairn_obj_get(cairn_obj_get(s_body, "a"), "name") == NULL);
    CHECK(cairn_obj_get(s_body, "nam") == NULL);
    CHECK(cairn_obj_get(s_body, "names") == NULL);
    CHECK(cairn_obj_get(s_body, "") == NULL);

    cairn_str_t sl = {"hello world", 5};
    char *dup = cairn_str_dup(sl);
    CHECK_STR(dup, "hello");
    free(dup);
    dup = cairn_str_dup((cairn_str_t){NULL, 0});
    CHECK_STR(dup, "");
    free(dup);
    CHECK(cairn_str_eq(sl, "hello"));
    CHECK(!cairn_str_eq(sl, "hell"));
    CHECK(!cairn_str_eq(sl, "hello world"));
    CHECK(cairn_str_eq((cairn_str_t){NULL, 0}, ""));

    uint64_t a = cairn_now_ms(), b = cairn_now_ms();
    CHECK(b >= a);
    CHECK(cairn_wall_ms() > 1600000000000ULL); /* after 2020 */
}

int main(void)
{
    msgpack_zone_init(&s_zone, 4096);
    RUN(decode_uint_id);
    RUN(decode_str_id);
    RUN(decode_missing_and_nil_id);
    RUN(decode_optional_keys);
    RUN(decode_unknown_keys_ignored);
    RUN(decode_header_limits);
    RUN(utf8_rules);
    RUN(decode_not_msgpack);
    RUN(decode_trailing_bytes);
    RUN(decode_not_a_map);
    RUN(decode_bad_types_name_the_key);
    RUN(decode_missing_svc_or_verb);
    RUN(decode_err_may_be_null);
    RUN(decode_many_times_one_zone);
    RUN(decode_huge_declared_counts);
    RUN(msgpack_check_accepts_every_format);
    RUN(msgpack_check_refuses);
    RUN(msgpack_check_depth);
    RUN(msgpack_check_mutations_agree);
    RUN(pack_reply_echoes_id);
    RUN(pack_reply_errors_only_when_failed);
    RUN(decode_then_reply_round_trip);
    make_body();
    RUN(field_str);
    RUN(field_numbers);
    RUN(field_bool_map_array);
    RUN(field_body_shapes);
    RUN(obj_and_str_helpers);
    msgpack_unpacked_destroy(&s_body_up);
    buf_free(&s_body_buf);
    msgpack_zone_destroy(&s_zone);
    return unit_report();
}
