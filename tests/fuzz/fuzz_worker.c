/* libFuzzer target: the worker-protocol header path of the kernel's
 * backend. The first byte is the command frame (HELLO, READY, FINAL, CALL,
 * PUBLISH, DISCONNECT, anything); the rest is the header frame. Like
 * cairnd, the header is checked with cairn_msgpack_check and unpacked with
 * msgpack_unpack into one reused zone (a failure reads as nil), then looked
 * up with cairn_obj_get and the cairn_field_* helpers, key by key, as the
 * handlers do:
 *   HELLO  {svc, mode, pid, plugin, abi, version}
 *   READY  {verbs: [{name, perm, flags, max_body}], concurrency}
 *   FINAL  {rid, st, code?, err?}
 *   CALL   {cid, svc, verb, ws, ttl}
 * Every getter's answer is checked against cairn_obj_get's view of the same
 * key, so the two lookups the kernel mixes cannot disagree.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_worker. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static msgpack_zone *s_zone;

/* What cairn_obj_get says about key: NULL (absent or nil) or the value. */
static const msgpack_object *s_present(const msgpack_object *m, const char *key)
{
    const msgpack_object *v = cairn_obj_get(m, key);
    return v && v->type == MSGPACK_OBJECT_NIL ? NULL : v;
}

/* The shared contract of every cairn_field_* call. */
static void s_check_rc(const msgpack_object *m, const char *key, bool required, int rc,
                       bool type_ok, const cairn_err_t *e)
{
    bool mapish = !m || m->type == MSGPACK_OBJECT_MAP || m->type == MSGPACK_OBJECT_NIL;
    const msgpack_object *v = mapish ? s_present(m, key) : NULL;
    if (!mapish) {
        REQUIRE(rc == -1 && e->st == 400 && strstr(e->msg, "must be a map"));
        return;
    }
    if (!v) {
        REQUIRE(rc == (required ? -1 : 1));
        if (required) REQUIRE(e->st == 400 && strstr(e->msg, key));
        return;
    }
    if (type_ok) {
        REQUIRE(rc == 0);
    } else {
        REQUIRE(rc == -1 && e->st == 400 && strcmp(e->code, "bad_request") == 0);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", key);
        REQUIRE(strstr(e->msg, quoted));
    }
}

static void s_str(const msgpack_object *m, const char *key, bool required, size_t max)
{
    cairn_str_t s = {0};
    cairn_err_t e = {0};
    int rc = cairn_field_str(m, key, required, max, &s, &e);
    const msgpack_object *v =
        m && m->type == MSGPACK_OBJECT_MAP ? s_present(m, key) : NULL;
    bool ok = v && v->type == MSGPACK_OBJECT_STR && (!max || v->via.str.size <= max);
    s_check_rc(m, key, required, rc, ok, &e);
    if (rc == 0) {
        REQUIRE(s.ptr == v->via.str.ptr && s.len == v->via.str.size);
        /* What the kernel does with it: a bounded copy, a heap copy. */
        char buf[128];
        snprintf(buf, sizeof buf, "%.*s", (int)s.len, s.ptr);
        char *d = cairn_str_dup(s);
        REQUIRE(d);
        REQUIRE(cairn_str_eq(s, d) == (strlen(d) == s.len));
        free(d);
    }
}

static void s_uint(const msgpack_object *m, const char *key, bool required)
{
    uint64_t u = 0;
    cairn_err_t e = {0};
    int rc = cairn_field_uint(m, key, required, &u, &e);
    const msgpack_object *v =
        m && m->type == MSGPACK_OBJECT_MAP ? s_present(m, key) : NULL;
    s_check_rc(m, key, required, rc, v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER,
               &e);
    if (rc == 0) REQUIRE(u == v->via.u64);
    /* The other numeric views of the same key agree with the type. */
    int64_t i;
    double d;
    cairn_err_t e2 = {0};
    int ri = cairn_field_int(m, key, false, &i, &e2);
    if (rc == 0) REQUIRE(ri == (u <= INT64_MAX ? 0 : -1));
    if (ri == 0 && rc == 0) REQUIRE((uint64_t)i == u);
    int rd = cairn_field_double(m, key, false, &d, &e2);
    if (rc == 0) REQUIRE(rd == 0);
}

static void s_hello(const msgpack_object *h)
{
    s_str(h, "svc", true, 64);
    s_str(h, "mode", true, 15);
    s_str(h, "plugin", false, 0);
    s_str(h, "version", false, 64);
    s_uint(h, "pid", false);
    s_uint(h, "abi", false);
    /* The kernel's own lookups (s_hdr_cstr). */
    const msgpack_object *svc = cairn_obj_get(h, "svc");
    if (svc && svc->type == MSGPACK_OBJECT_STR) {
        char buf[65];
        snprintf(buf, sizeof buf, "%.*s", (int)svc->via.str.size, svc->via.str.ptr);
        REQUIRE(strlen(buf) <= 64);
    }
}

static void s_ready(const msgpack_object *h)
{
    const msgpack_object *verbs = NULL;
    cairn_err_t e = {0};
    int rc = cairn_field_array(h, "verbs", true, &verbs, &e);
    const msgpack_object *v =
        h && h->type == MSGPACK_OBJECT_MAP ? s_present(h, "verbs") : NULL;
    s_check_rc(h, "verbs", true, rc, v && v->type == MSGPACK_OBJECT_ARRAY, &e);
    s_uint(h, "concurrency", false);
    if (rc != 0) return;
    REQUIRE(verbs == v);
    for (uint32_t i = 0; i < verbs->via.array.size; i++) {
        const msgpack_object *o = &verbs->via.array.ptr[i];
        s_str(o, "name", true, 64);
        s_str(o, "perm", false, 128);
        s_uint(o, "flags", false);
        s_uint(o, "max_body", false);
        const msgpack_object *m = NULL;
        cairn_err_t e2 = {0};
        (void)cairn_field_map(o, "help", false, &m, &e2);
    }
}

static void s_final(const msgpack_object *h)
{
    s_uint(h, "rid", true);
    s_uint(h, "st", true);
    s_str(h, "code", false, 31);
    s_str(h, "err", false, CAIRN_ERR_MSG_MAX - 1);
    bool b;
    cairn_err_t e = {0};
    (void)cairn_field_bool(h, "more", false, &b, &e);
}

static void s_call(const msgpack_object *h)
{
    s_uint(h, "cid", true);
    s_str(h, "svc", true, 64);
    s_str(h, "verb", true, 64);
    s_str(h, "ws", false, 64);
    s_uint(h, "ttl", false);
    const msgpack_object *m = NULL;
    cairn_err_t e = {0};
    (void)cairn_field_map(h, "body", false, &m, &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!s_zone) {
        s_zone = msgpack_zone_new(8192);
        REQUIRE(s_zone);
    }
    int cmd = data[0];
    data++;
    size--;
    msgpack_object h = {.type = MSGPACK_OBJECT_NIL};
    msgpack_zone_clear(s_zone);
    if (size) {
        /* As cairnd's backend does: the allocation-free check first, so a
         * declared count cannot make msgpack-c reserve gigabytes. */
        size_t off = 0;
        if (cairn_msgpack_check(data, size, NULL) != 0 ||
            msgpack_unpack((const char *)data, size, &off, s_zone, &h) !=
                MSGPACK_UNPACK_SUCCESS)
            h.type = MSGPACK_OBJECT_NIL;
    }
    switch (cmd) {
        case CAIRN_W_HELLO:
            s_hello(&h);
            break;
        case CAIRN_W_READY:
            s_ready(&h);
            break;
        case CAIRN_W_FINAL:
        case CAIRN_W_RESULT:
            s_final(&h);
            break;
        case CAIRN_W_CALL:
            s_call(&h);
            break;
        case CAIRN_W_PUBLISH:
            s_str(&h, "topic", true, 127);
            break;
        case CAIRN_W_DISCONNECT:
        case CAIRN_W_FAIL:
            s_str(&h, "err", false, 0);
            break;
        default:
            /* Unknown commands: every lookup on whatever came. */
            s_hello(&h);
            s_ready(&h);
            s_final(&h);
            s_call(&h);
    }
    return 0;
}
