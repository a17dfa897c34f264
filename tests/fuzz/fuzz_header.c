/* libFuzzer target: the CAIRN/1 request header, as the kernel's frontend
 * sees it. Arbitrary bytes go through cairn_hdr_decode with one reused zone
 * (as cairnd does), then cairn_hdr_pack_reply answers with the result, and
 * the reply is decoded again to check that it is one well-formed map that
 * carries the request's id back.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static msgpack_zone *s_zone, *s_reply_zone;

static bool s_inside(const char *p, size_t n, const uint8_t *buf, size_t len)
{
    return (const uint8_t *)p >= buf && (const uint8_t *)p + n <= buf + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_zone) {
        s_zone = msgpack_zone_new(8192);
        s_reply_zone = msgpack_zone_new(1024);
        REQUIRE(s_zone && s_reply_zone);
    }
    msgpack_zone_clear(s_zone);
    cairn_hdr_t h;
    cairn_err_t e = {0};
    int rc = cairn_hdr_decode(data, size, s_zone, &h, &e);
    /* The allocation-free pre-check gates the decoder: what it refuses, the
     * decoder refuses (an oversized declared count would otherwise show up
     * here as libFuzzer's malloc limit). */
    cairn_err_t ce = {0};
    int checked = cairn_msgpack_check(data, size, &ce);
    REQUIRE(checked == 0 || checked == -1);
    REQUIRE(cairn_msgpack_check(data, size, NULL) == checked);
    if (checked != 0) REQUIRE(rc == -1 && ce.st == 400 && ce.msg[0]);
    if (rc == 0) {
        REQUIRE(e.st == 0);
        REQUIRE(h.svc.ptr && h.svc.len && s_inside(h.svc.ptr, h.svc.len, data, size));
        REQUIRE(h.verb.ptr && h.verb.len &&
                s_inside(h.verb.ptr, h.verb.len, data, size));
        REQUIRE(!h.tok.ptr || s_inside(h.tok.ptr, h.tok.len, data, size));
        REQUIRE(!h.ws.ptr || s_inside(h.ws.ptr, h.ws.len, data, size));
        REQUIRE(!h.cid.ptr || s_inside(h.cid.ptr, h.cid.len, data, size));
        /* What routing does with the slices. */
        char *svc = cairn_str_dup(h.svc), *verb = cairn_str_dup(h.verb);
        REQUIRE(svc && verb);
        REQUIRE(strlen(svc) <= h.svc.len && strlen(verb) <= h.verb.len);
        REQUIRE(cairn_str_eq(h.svc, svc) == (strlen(svc) == h.svc.len));
        free(svc);
        free(verb);
    } else {
        REQUIRE(rc == -1 && e.st == 400 && strcmp(e.code, "bad_request") == 0);
        REQUIRE(e.msg[0] != '\0');
    }
    if (h.id_type == CAIRN_ID_STR)
        REQUIRE(s_inside(h.id_str.ptr, h.id_str.len, data, size));
    REQUIRE(h.id_type == CAIRN_ID_NONE || h.id_type == CAIRN_ID_UINT ||
            h.id_type == CAIRN_ID_STR);

    /* The reply the kernel would send: 200, or the 400 itself. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int st = rc == 0 ? 200 : e.st;
    cairn_hdr_pack_reply(&pk, &h, st, rc == 0 ? NULL : e.code, rc == 0 ? NULL : e.msg);
    msgpack_zone_clear(s_reply_zone);
    msgpack_object r;
    size_t off = 0;
    REQUIRE(msgpack_unpack(sb.data, sb.size, &off, s_reply_zone, &r) ==
            MSGPACK_UNPACK_SUCCESS);
    REQUIRE(off == sb.size && r.type == MSGPACK_OBJECT_MAP);
    REQUIRE(r.via.map.size == (st >= 400 ? 4u : 2u));
    const msgpack_object *id = cairn_obj_get(&r, "id"), *rst = cairn_obj_get(&r, "st");
    REQUIRE(id && rst && rst->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            rst->via.u64 == (uint64_t)st);
    switch (h.id_type) {
        case CAIRN_ID_UINT:
            REQUIRE(id->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                    id->via.u64 == h.id_uint);
            break;
        case CAIRN_ID_STR:
            REQUIRE(id->type == MSGPACK_OBJECT_STR &&
                    id->via.str.size == h.id_str.len &&
                    (h.id_str.len == 0 ||
                     memcmp(id->via.str.ptr, h.id_str.ptr, h.id_str.len) == 0));
            break;
        default:
            REQUIRE(id->type == MSGPACK_OBJECT_NIL);
    }
    if (st >= 400) {
        const msgpack_object *err = cairn_obj_get(&r, "err"),
                             *code = cairn_obj_get(&r, "code");
        REQUIRE(err && err->type == MSGPACK_OBJECT_STR && err->via.str.size > 0);
        REQUIRE(code && cairn_obj_is_str(code, "bad_request"));
    }
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
