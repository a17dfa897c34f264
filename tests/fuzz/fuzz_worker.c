/* libFuzzer target: the worker protocol's header codec (sdk/wire.c), the
 * one parser both cairnd and the plugin runtime use. The first byte picks
 * the command (HELLO, WELCOME, READY, REQUEST, FINAL, RESULT, CALL,
 * PUBLISH, FAIL/DISCONNECT, anything); the rest is the header frame,
 * checked with cairn_msgpack_check and unpacked into one reused zone as
 * the kernel and the runtime do. Properties: no crash, slices point into
 * the input, and whatever parses packs again into a header that parses to
 * the same fields (the two sides can never disagree about a key).
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_worker. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static msgpack_zone *s_zone, *s_zone2;

static bool s_same(cairn_str_t a, cairn_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Pack with fn's output into sb, then unpack it into s_zone2. */
static msgpack_object s_reparse(msgpack_sbuffer *sb)
{
    msgpack_object o;
    size_t off = 0;
    msgpack_zone_clear(s_zone2);
    REQUIRE(cairn_msgpack_check_shape(sb->data, sb->size, NULL) == 0);
    REQUIRE(msgpack_unpack(sb->data, sb->size, &off, s_zone2, &o) ==
            MSGPACK_UNPACK_SUCCESS);
    return o;
}

static void s_request(const msgpack_object *h, msgpack_sbuffer *sb, msgpack_packer *pk)
{
    wire_request_t a, b;
    if (wire_parse_request(h, &a) != 0) return;
    REQUIRE(a.nroles >= 0 && a.nroles <= WIRE_MAX_ROLES);
    wire_pack_request(pk, &a);
    msgpack_object o = s_reparse(sb);
    REQUIRE(wire_parse_request(&o, &b) == 0);
    REQUIRE(a.rid == b.rid && a.ttl == b.ttl && a.nroles == b.nroles);
    REQUIRE(s_same(a.svc, b.svc) && s_same(a.verb, b.verb) && s_same(a.sub, b.sub));
    REQUIRE(s_same(a.cid, b.cid));
    REQUIRE(s_same(a.ws, b.ws) || (a.ws.len == 0 && cairn_str_eq(b.ws, "default")));
    for (int i = 0; i < a.nroles; i++) REQUIRE(s_same(a.roles[i], b.roles[i]));
}

static void s_outcome(const msgpack_object *h, bool final, msgpack_sbuffer *sb,
                      msgpack_packer *pk)
{
    wire_outcome_t a, b;
    if ((final ? wire_parse_final(h, &a) : wire_parse_result(h, &a)) != 0) return;
    REQUIRE(a.st >= 0 && a.st <= 999);
    char code[64], err[512];
    snprintf(code, sizeof code, "%.*s", (int)a.code.len, a.code.ptr);
    snprintf(err, sizeof err, "%.*s", (int)a.err.len, a.err.ptr);
    if (final)
        wire_pack_final(pk, a.id, a.st, code, err, code);
    else
        wire_pack_result(pk, a.id, a.st, code, err);
    msgpack_object o = s_reparse(sb);
    REQUIRE((final ? wire_parse_final(&o, &b) : wire_parse_result(&o, &b)) == 0);
    REQUIRE(a.id == b.id && a.st == b.st);
    if (a.st >= 400) REQUIRE(b.err.len > 0 && b.code.len > 0);
}

static void s_hello(const msgpack_object *h, msgpack_sbuffer *sb, msgpack_packer *pk)
{
    wire_hello_t a, b;
    if (wire_parse_hello(h, &a) != 0) return;
    wire_pack_hello(pk, &a);
    msgpack_object o = s_reparse(sb);
    REQUIRE(wire_parse_hello(&o, &b) == 0);
    REQUIRE(s_same(a.svc, b.svc) && s_same(a.mode, b.mode) && a.door == b.door);
    REQUIRE(a.abi == b.abi && a.pid == b.pid);
}

static void s_welcome(const msgpack_object *h)
{
    wire_welcome_t a;
    if (wire_parse_welcome(h, &a) != 0) return;
    if (a.settings_map) REQUIRE(a.settings_map->type == MSGPACK_OBJECT_MAP);
}

static void s_ready(const msgpack_object *h)
{
    const msgpack_object *verbs;
    uint32_t conc;
    if (wire_parse_ready(h, &verbs, &conc) != 0) return;
    REQUIRE(verbs && verbs->type == MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < verbs->via.array.size; i++) {
        wire_verb_t v;
        if (wire_parse_verb(&verbs->via.array.ptr[i], &v) == 0) REQUIRE(v.name.len > 0);
    }
}

static void s_call(const msgpack_object *h, msgpack_sbuffer *sb, msgpack_packer *pk)
{
    wire_call_t a, b;
    if (wire_parse_call(h, &a) != 0) return;
    wire_pack_call(pk, &a);
    msgpack_object o = s_reparse(sb);
    REQUIRE(wire_parse_call(&o, &b) == 0);
    REQUIRE(a.cid == b.cid && a.ttl == b.ttl && s_same(a.svc, b.svc) &&
            s_same(a.verb, b.verb) && s_same(a.ws, b.ws));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!s_zone) {
        s_zone = msgpack_zone_new(8192);
        s_zone2 = msgpack_zone_new(8192);
        REQUIRE(s_zone && s_zone2);
    }
    int cmd = data[0];
    data++;
    size--;
    msgpack_object h = {.type = MSGPACK_OBJECT_NIL};
    msgpack_zone_clear(s_zone);
    if (size) {
        size_t off = 0;
        if (cairn_msgpack_check(data, size, NULL) != 0 ||
            msgpack_unpack((const char *)data, size, &off, s_zone, &h) !=
                MSGPACK_UNPACK_SUCCESS)
            h.type = MSGPACK_OBJECT_NIL;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_str_t s;
    switch (cmd) {
        case CAIRN_W_HELLO:
            s_hello(&h, &sb, &pk);
            break;
        case CAIRN_W_WELCOME:
            s_welcome(&h);
            break;
        case CAIRN_W_READY:
            s_ready(&h);
            break;
        case CAIRN_W_REQUEST:
            s_request(&h, &sb, &pk);
            break;
        case CAIRN_W_FINAL:
        case CAIRN_W_RESULT:
            s_outcome(&h, cmd == CAIRN_W_FINAL, &sb, &pk);
            break;
        case CAIRN_W_CALL:
            s_call(&h, &sb, &pk);
            break;
        case CAIRN_W_PUBLISH:
            if (wire_parse_topic(&h, &s) == 0) REQUIRE(s.ptr != NULL);
            break;
        case CAIRN_W_DISCONNECT:
        case CAIRN_W_FAIL:
            if (wire_parse_err(&h, &s) == 0) REQUIRE(s.ptr != NULL);
            break;
        default: /* unknown commands: every parser on whatever came */
            s_hello(&h, &sb, &pk);
            msgpack_sbuffer_clear(&sb);
            s_request(&h, &sb, &pk);
            msgpack_sbuffer_clear(&sb);
            s_call(&h, &sb, &pk);
            s_ready(&h);
            s_welcome(&h);
    }
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
