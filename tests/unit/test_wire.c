/* Unit tests for sdk/wire.c: the worker protocol's headers round-trip, and
 * what a command needs is refused when missing or mistyped. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "wire.h"

typedef struct buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone zone;
    msgpack_object o;
} buf_t;

static void b_init(buf_t *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
    msgpack_zone_init(&b->zone, 2048);
}

static const msgpack_object *b_obj(buf_t *b)
{
    size_t off = 0;
    msgpack_unpack(b->sb.data, b->sb.size, &off, &b->zone, &b->o);
    return &b->o;
}

static void b_free(buf_t *b)
{
    msgpack_sbuffer_destroy(&b->sb);
    msgpack_zone_destroy(&b->zone);
}

#define S(lit) ((cairn_str_t){lit, sizeof lit - 1})

TEST(request_round_trip)
{
    buf_t b;
    b_init(&b);
    wire_request_t in = {.rid = 7,
                         .svc = S("tracking"),
                         .verb = S("get_run"),
                         .sub = S("local"),
                         .cid = S("c-9"),
                         .ttl = 1500,
                         .nroles = 2};
    in.roles[0] = S("Owner");
    in.roles[1] = S("Reader");
    wire_pack_request(&b.pk, &in);
    wire_request_t out;
    CHECK_EQ(wire_parse_request(b_obj(&b), &out), 0);
    CHECK_UEQ(out.rid, 7);
    CHECK_UEQ(out.ttl, 1500);
    CHECK(cairn_str_eq(out.ws, "default")); /* an empty ws goes as default */
    CHECK(cairn_str_eq(out.cid, "c-9"));
    CHECK_EQ(out.nroles, 2);
    CHECK(cairn_str_eq(out.roles[1], "Reader"));
    b_free(&b);

    /* No rid, a mistyped key, too many roles: refused. */
    b_init(&b);
    msgpack_pack_map(&b.pk, 1);
    cairn_pack_kv_str(&b.pk, "svc", "x");
    CHECK_EQ(wire_parse_request(b_obj(&b), &out), -1);
    b_free(&b);
    b_init(&b);
    msgpack_pack_map(&b.pk, 2);
    cairn_pack_cstr(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, 1);
    cairn_pack_cstr(&b.pk, "sub");
    msgpack_pack_int(&b.pk, 5);
    CHECK_EQ(wire_parse_request(b_obj(&b), &out), -1);
    b_free(&b);
    b_init(&b);
    msgpack_pack_map(&b.pk, 2);
    cairn_pack_cstr(&b.pk, "rid");
    msgpack_pack_uint64(&b.pk, 1);
    cairn_pack_cstr(&b.pk, "roles");
    msgpack_pack_array(&b.pk, WIRE_MAX_ROLES + 1);
    for (int i = 0; i <= WIRE_MAX_ROLES; i++) cairn_pack_cstr(&b.pk, "r");
    CHECK_EQ(wire_parse_request(b_obj(&b), &out), -1);
    b_free(&b);
}

TEST(outcomes)
{
    buf_t b;
    b_init(&b);
    wire_pack_final(&b.pk, 3, 200, "ignored", "ignored", "run/r1");
    wire_outcome_t o;
    CHECK_EQ(wire_parse_final(b_obj(&b), &o), 0);
    CHECK_UEQ(o.id, 3);
    CHECK_EQ(o.st, 200);
    CHECK_UEQ(o.err.len, 0);                   /* only failures carry code and err */
    CHECK(cairn_str_eq(o.obj, "run/r1"));      /* the object, for the audit record */
    CHECK_EQ(wire_parse_result(&b.o, &o), -1); /* a FINAL names rid, not cid */
    b_free(&b);
    b_init(&b);
    wire_pack_result(&b.pk, 4, 404, NULL, "no run \xff");
    CHECK_EQ(wire_parse_result(b_obj(&b), &o), 0);
    CHECK_EQ(o.st, 404);
    CHECK(cairn_str_eq(o.code, "not_found")); /* the default code of 404 */
    CHECK(cairn_str_eq(o.err, "no run ?"));   /* packed as valid UTF-8 */
    b_free(&b);
}

TEST(hello_welcome_ready_call)
{
    buf_t b;
    b_init(&b);
    wire_hello_t h = {.plugin = S("echo"),
                      .svc = S("e"),
                      .mode = S("inproc"),
                      .version = S("1"),
                      .abi = 1,
                      .pid = 42,
                      .door = 99};
    wire_pack_hello(&b.pk, &h);
    wire_hello_t h2;
    CHECK_EQ(wire_parse_hello(b_obj(&b), &h2), 0);
    CHECK(cairn_str_eq(h2.mode, "inproc") && h2.pid == 42 && h2.door == 99);
    b_free(&b);

    b_init(&b);
    msgpack_sbuffer set;
    msgpack_sbuffer_init(&set);
    msgpack_packer sp;
    msgpack_packer_init(&sp, &set, msgpack_sbuffer_write);
    msgpack_pack_map(&sp, 1);
    cairn_pack_kv_str(&sp, "greeting", "hi");
    wire_welcome_t w = {.svc = S("e"),
                        .state_dir = S("/s"),
                        .events = S("ipc://x"),
                        .hb_ms = 100,
                        .liveness = 3,
                        .settings = set.data,
                        .settings_len = set.size};
    wire_pack_welcome(&b.pk, &w);
    wire_welcome_t w2;
    CHECK_EQ(wire_parse_welcome(b_obj(&b), &w2), 0);
    CHECK(w2.hb_ms == 100 && w2.liveness == 3 && cairn_str_eq(w2.state_dir, "/s"));
    CHECK(w2.settings_map && w2.settings_map->via.map.size == 1);
    msgpack_sbuffer_destroy(&set);
    b_free(&b);

    b_init(&b);
    static const cairn_verb_t verbs[] = {
        {.name = "a", .perm = "x.read", .flags = 3, .max_body = 10},
        {.name = "b"},
        {.name = NULL}};
    uint32_t dropped[] = {1, 0};
    wire_pack_ready(&b.pk, verbs, dropped, 8);
    const msgpack_object *arr;
    uint32_t conc;
    CHECK_EQ(wire_parse_ready(b_obj(&b), &arr, &conc), 0);
    CHECK_UEQ(conc, 8);
    wire_verb_t v;
    CHECK_EQ(wire_parse_verb(&arr->via.array.ptr[0], &v), 0);
    CHECK(cairn_str_eq(v.name, "a") && v.flags == 2 && v.max_body == 10);
    CHECK_EQ(wire_parse_verb(&arr->via.array.ptr[1], &v), 0);
    CHECK_UEQ(v.perm.len, 0);
    b_free(&b);

    b_init(&b);
    wire_call_t c = {.cid = 5, .svc = S("tracking"), .verb = S("get_run"), .ttl = 9};
    wire_pack_call(&b.pk, &c);
    wire_call_t c2;
    CHECK_EQ(wire_parse_call(b_obj(&b), &c2), 0);
    CHECK(c2.cid == 5 && c2.ttl == 9 && c2.ws.len == 0 &&
          cairn_str_eq(c2.verb, "get_run"));
    b_free(&b);
}

int main(void)
{
    RUN(request_round_trip);
    RUN(outcomes);
    RUN(hello_welcome_ready_call);
    return unit_report();
}
