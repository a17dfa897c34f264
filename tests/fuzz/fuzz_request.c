/* libFuzzer target: a REQUEST as the worker runtime serves it. A real
 * runtime (cairn_runtime_run, on its own thread, as an inproc worker) says
 * HELLO to a fake kernel here, gets WELCOME and sends READY; then every
 * input goes through the inline door the kernel uses (cairn_door_try), so
 * it takes the runtime's own path: the header decoded and checked (rid,
 * svc, verb, ws, sub, roles, ttl, cid), the stamped strings copied, the
 * verb looked up, the body checked and unpacked, a handler of the tiny
 * plugin below run, its reply handed back (or, deferred, sent as a FINAL on
 * the socket, which is read and checked here).
 *
 * Input: one mode byte, a 2-byte little-endian header length, the header
 * section, then the body frame (the rest, as is).
 *   mode even: the header section is the header frame, raw bytes;
 *   mode odd:  it describes one: records [key, type, len16, payload] that
 *              replace or add fields of a kernel-like header {rid, svc,
 *              verb: "probe", ws, sub, roles: ["Owner"], ttl}, so that a
 *              2,000-byte cid or 17 roles take a few bytes to say.
 * Oracle, beside ASan/UBSan: the status is the one the header and body
 * call for (500 without a uint rid, 400 for unfit strings, 404 for an
 * unknown verb, 400 for a bad body); a handler sees exactly the header's
 * strings (never a cut one), its roles, its ttl, its body; the reply the
 * kernel would pack from the result is valid msgpack with valid UTF-8.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_request. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "../../sdk/runtime.h"
#include "cairn/msg.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

#define STRBUF 2048 /* the runtime's room for ws, sub, cid and roles */
#define MAX_ROLES 16
#define ENDPOINT "inproc://fuzz-request"

static const cairn_api_t *api;

/* ---- the plugin: each verb answers another way, reading every accessor ---- */

static void s_pack_body(msgpack_packer *pk, const cairn_req_t *r)
{
    msgpack_pack_object(pk, *api->body(r));
}

/* probe: every accessor of the request and its context, sent back. */
static int s_probe(void *state, cairn_req_t *r, cairn_err_t *err)
{
    (void)err; /* this verb cannot fail */
    (void)state;
    cairn_ctx_t *ctx = api->req_ctx(r);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 11);
    cairn_pack_kv_str(&pk, "verb", api->verb(r));
    cairn_pack_kv_str(&pk, "addr", api->peer_address(r));
    cairn_pack_kv_str(&pk, "ws", api->workspace(r));
    cairn_pack_kv_str(&pk, "sub", api->principal(r));
    cairn_pack_kv_str(&pk, "cid", api->correlation_id(r));
    cairn_pack_cstr(&pk, "left");
    msgpack_pack_int64(&pk, (int64_t)(api->deadline_ms(r) - cairn_now_ms()));
    cairn_pack_cstr(&pk, "inline");
    api->req_inline(r) ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    cairn_pack_kv_str(&pk, "svc", api->service(ctx));
    cairn_pack_kv_str(&pk, "conf", api->conf(ctx, "colour"));
    REQUIRE(api->role(ctx) == NULL && api->state_dir(ctx) != NULL);
    /* has_role for the strings the body's "roles" lists (else a fixed set). */
    static const char *fixed[] = {"Owner", "Reader", ""};
    const msgpack_object *b = api->body(r), *q = NULL;
    cairn_err_t e = {0};
    if (cairn_field_array(b, "roles", false, &q, &e) != 0) q = NULL;
    uint32_t nq = q ? q->via.array.size : 3;
    cairn_pack_cstr(&pk, "has");
    msgpack_pack_array(&pk, nq);
    for (uint32_t i = 0; i < nq; i++) {
        char role[256] = "";
        if (!q)
            snprintf(role, sizeof role, "%s", fixed[i]);
        else if (q->via.array.ptr[i].type == MSGPACK_OBJECT_STR &&
                 q->via.array.ptr[i].via.str.size < sizeof role)
            memcpy(role, q->via.array.ptr[i].via.str.ptr,
                   q->via.array.ptr[i].via.str.size);
        api->has_role(r, role) ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    }
    cairn_pack_cstr(&pk, "body");
    s_pack_body(&pk, r);
    REQUIRE(api->reply(r, 200, sb.data, sb.size) == 0);
    REQUIRE(api->reply(r, 200, NULL, 0) == -1); /* exactly one reply */
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* fields: the body through the field helpers, as the services read it. */
static int s_fields(void *state, cairn_req_t *r, cairn_err_t *err)
{
    (void)err; /* this verb cannot fail */
    (void)state;
    const msgpack_object *b = api->body(r), *o;
    cairn_err_t e = {0};
    cairn_str_t s;
    uint64_t u;
    int64_t i;
    double d;
    bool t;
    if (cairn_field_str(b, "run_id", true, 64, &s, &e) < 0 ||
        cairn_field_str(b, "key", false, 250, &s, &e) < 0 ||
        cairn_field_int(b, "step", false, &i, &e) < 0 ||
        cairn_field_uint(b, "max_results", false, &u, &e) < 0 ||
        cairn_field_double(b, "value", false, &d, &e) < 0 ||
        cairn_field_bool(b, "done", false, &t, &e) < 0 ||
        cairn_field_array(b, "metrics", false, &o, &e) < 0 ||
        cairn_field_map(b, "tags", false, &o, &e) < 0) {
        REQUIRE(e.st == 400 && e.msg[0]);
        api->reply_err(r, &e);
        return 0;
    }
    api->reply(r, 204, NULL, 0);
    return 0;
}

/* fail {st, code, err}: an error reply carrying the body back; without err,
 * a handler's -1 with cairn_err_t. */
static int s_fail(void *state, cairn_req_t *r, cairn_err_t *err)
{
    (void)state;
    const msgpack_object *b = api->body(r);
    cairn_err_t e = {0};
    uint64_t st = 418;
    cairn_str_t code = {"", 0}, msg = {"", 0};
    if (cairn_field_uint(b, "st", false, &st, &e) < 0) st = 999;
    (void)cairn_field_str(b, "code", false, 0, &code, &e);
    (void)cairn_field_str(b, "err", false, 0, &msg, &e);
    char c[512], m[4096];
    snprintf(c, sizeof c, "%.*s", (int)(code.len < 500 ? code.len : 500), code.ptr);
    snprintf(m, sizeof m, "%.*s", (int)(msg.len < 4000 ? msg.len : 4000), msg.ptr);
    /* No sentence: fail as a handler does, for the runtime to answer (any
     * st, even one below 400). */
    if (!msg.len) return cairn_err_set(err, (int)(st > 999 ? 999 : st), c, "fuzzed");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_pack_body(&pk, r);
    api->reply_error_body(r, (int)(st > 999 ? 999 : st), c, m, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* call: a nested call, which a request served through the door may not make. */
static int s_call(void *state, cairn_req_t *r, cairn_err_t *err)
{
    (void)err; /* this verb cannot fail */
    (void)state;
    cairn_err_t e = {0};
    REQUIRE(api->call(api->req_ctx(r), "fuzz", "probe", NULL, 0, 100, NULL, NULL, &e) ==
            -1);
    REQUIRE(e.st == 500);
    api->reply_err(r, &e);
    return 0;
}

/* defer: deferred (its body gets its own zone), then answered at once. */
static int s_defer(void *state, cairn_req_t *r, cairn_err_t *err)
{
    (void)err; /* this verb cannot fail */
    (void)state;
    api->defer(r);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_pack_body(&pk, r);
    api->reply(r, 200, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static void s_later_fire(void *arg)
{
    cairn_req_t *r = arg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_pack_body(&pk, r);
    api->reply(r, 200, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void s_never(void *arg)
{
    (void)arg;
    __builtin_trap(); /* cancelled before it could fire */
}

/* later: deferred, answered by a timer on the worker's own thread (a FINAL
 * on the socket); a second timer is cancelled at once. */
static int s_later(void *state, cairn_req_t *r, cairn_err_t *err)
{
    (void)err; /* this verb cannot fail */
    (void)state;
    cairn_ctx_t *ctx = api->req_ctx(r);
    api->defer(r);
    uint64_t id = api->timer_add(ctx, 0, 0, s_later_fire, r);
    REQUIRE(id > 0);
    uint64_t never = api->timer_add(ctx, 1, 0, s_never, NULL);
    REQUIRE(never > 0);
    api->timer_cancel(ctx, never);
    return 0;
}

static const cairn_verb_t s_verbs[] = {
    {"probe", s_probe, "fuzz.read", CAIRN_VERB_INLINE, 0, "every accessor"},
    {"fields", s_fields, "fuzz.read", CAIRN_VERB_INLINE, 0, "the field helpers"},
    {"fail", s_fail, "fuzz.read", CAIRN_VERB_INLINE, 0, "an error with a body"},
    {"call", s_call, "fuzz.read", CAIRN_VERB_INLINE, 0, "a refused nested call"},
    {"defer", s_defer, "fuzz.read", CAIRN_VERB_INLINE, 0, "deferred, answered"},
    {"later", s_later, "fuzz.read", CAIRN_VERB_INLINE, 0, "answered by a timer"},
    {NULL, NULL, NULL, 0, 0, NULL},
};

static const cairn_conf_key_t s_conf[] = {
    {"colour", CAIRN_CONF_STR, "blue", "a setting probe reads"},
    {NULL, 0, NULL, NULL},
};

static int s_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    (void)ctx;
    (void)err;
    *state = NULL;
    return 0;
}

static const cairn_plugin_t s_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "fuzz",
    .version = "1",
    .description = "fuzz_request's plugin",
    .verbs = s_verbs,
    .conf = s_conf,
    .init = s_init,
};

/* ---- the fake kernel ------------------------------------------------------ */

static void *s_zctx, *s_router;
static cairn_door_t *s_door;
static atomic_int s_stop;
static char s_worker_id[256];
static size_t s_worker_id_len;
static msgpack_zone *s_zone, *s_zone2;

static void *s_worker(void *arg)
{
    (void)arg;
    cairn_runtime_opts_t o = {.zctx = s_zctx,
                              .endpoint = ENDPOINT,
                              .service = "fuzz",
                              .mode = "inproc",
                              .plugin = &s_plugin,
                              .stop = &s_stop,
                              .door = s_door};
    cairn_err_t err = {0};
    if (cairn_runtime_run(&o, &err) != 0) {
        fprintf(stderr, "fuzz_request: the runtime ended: %s\n", err.msg);
        abort();
    }
    return NULL;
}

/* One message from the worker: [id, CAIRNW/1, cmd, header, body?]. */
typedef struct wmsg {
    zmq_msg_t part[5];
    int n;
} wmsg_t;

static int s_recv(wmsg_t *m, int flags)
{
    m->n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t p;
        zmq_msg_init(&p);
        if (zmq_msg_recv(&p, s_router, m->n ? 0 : flags) < 0) {
            zmq_msg_close(&p);
            REQUIRE(m->n == 0);
            return -1;
        }
        more = zmq_msg_more(&p);
        REQUIRE(m->n < 5);
        m->part[m->n++] = p;
    }
    REQUIRE(m->n >= 3 && zmq_msg_size(&m->part[1]) == strlen(CAIRN_WORKER_TAG) &&
            zmq_msg_size(&m->part[2]) == 1);
    return *(unsigned char *)zmq_msg_data(&m->part[2]);
}

static void s_close(wmsg_t *m)
{
    for (int i = 0; i < m->n; i++) zmq_msg_close(&m->part[i]);
    m->n = 0;
}

static void s_setup(void)
{
    api = cairn_runtime_api();
    s_zone = msgpack_zone_new(8192);
    s_zone2 = msgpack_zone_new(8192);
    s_zctx = zmq_ctx_new();
    s_router = zmq_socket(s_zctx, ZMQ_ROUTER);
    s_door = cairn_door_new();
    REQUIRE(api && s_zone && s_zone2 && s_zctx && s_router && s_door);
    int zero = 0;
    zmq_setsockopt(s_router, ZMQ_LINGER, &zero, sizeof zero);
    REQUIRE(zmq_bind(s_router, ENDPOINT) == 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, s_worker, NULL) == 0);
    pthread_detach(t);
    wmsg_t m;
    int cmd;
    while ((cmd = s_recv(&m, 0)) != CAIRN_W_HELLO) s_close(&m);
    s_worker_id_len = zmq_msg_size(&m.part[0]);
    REQUIRE(s_worker_id_len <= sizeof s_worker_id);
    memcpy(s_worker_id, zmq_msg_data(&m.part[0]), s_worker_id_len);
    s_close(&m);
    /* WELCOME: heartbeats so rare that the worker sleeps in its poll (and
     * so leaves the door open) for as long as a fuzzing run lasts. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "svc", "fuzz");
    cairn_pack_cstr(&pk, "hb_ms");
    msgpack_pack_uint32(&pk, 3600 * 1000);
    cairn_pack_cstr(&pk, "liveness");
    msgpack_pack_uint32(&pk, 1000);
    cairn_pack_cstr(&pk, "settings");
    msgpack_pack_map(&pk, 0);
    unsigned char c = CAIRN_W_WELCOME;
    zmq_send(s_router, s_worker_id, s_worker_id_len, ZMQ_SNDMORE);
    zmq_send(s_router, CAIRN_WORKER_TAG, strlen(CAIRN_WORKER_TAG), ZMQ_SNDMORE);
    zmq_send(s_router, &c, 1, ZMQ_SNDMORE);
    zmq_send(s_router, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
    while ((cmd = s_recv(&m, 0)) != CAIRN_W_READY) s_close(&m);
    s_close(&m);
}

/* ---- building a header from a description (odd modes) --------------------- */

enum { V_STR, V_REPEAT, V_UINT, V_NIL, V_ROLES, V_NEG, V_BIN, V_NTYPES };
static const char *s_keys[] = {"rid", "svc", "verb",    "ws", "sub", "roles",
                               "ttl", "cid", "x-extra", "id", "addr"};
#define NKEYS (sizeof s_keys / sizeof s_keys[0])

typedef struct field {
    const char *key;
    int type;
    const uint8_t *p; /* V_STR, V_BIN, V_ROLES: the payload */
    size_t len;   /* V_STR, V_BIN: its length; V_REPEAT: the count; V_ROLES: roles */
    uint8_t fill; /* V_REPEAT */
    uint64_t u;   /* V_UINT, V_NEG: the value; V_ROLES: the payload's length */
} field_t;

static void s_pack_repeat(msgpack_packer *pk, uint8_t fill, size_t n)
{
    msgpack_pack_str(pk, n);
    char chunk[256];
    memset(chunk, fill, sizeof chunk);
    for (size_t left = n; left;) {
        size_t k = left < sizeof chunk ? left : sizeof chunk;
        msgpack_pack_str_body(pk, chunk, k);
        left -= k;
    }
}

/* roles: f->len roles from f->u payload bytes, each [rlen, bytes] (rlen &
 * 0x80: a repeated fill byte, (rlen & 0x7f) * 16 of it). */
static void s_pack_roles(msgpack_packer *pk, const field_t *f)
{
    const uint8_t *p = f->p;
    size_t left = f->u;
    msgpack_pack_array(pk, f->len);
    for (size_t i = 0; i < f->len; i++) {
        uint8_t rl = 5;
        if (left) rl = *p++, left--;
        if (rl & 0x80) {
            uint8_t fill = 'r';
            if (left) fill = *p++, left--;
            s_pack_repeat(pk, fill, (size_t)(rl & 0x7f) * 16);
        } else {
            size_t k = rl < left ? rl : left;
            msgpack_pack_str(pk, k);
            msgpack_pack_str_body(pk, p, k);
            p += k;
            left -= k;
        }
    }
}

static void s_build(const uint8_t *p, size_t n, msgpack_sbuffer *sb)
{
    static const char *roles_owner = "\x05Owner";
    field_t f[48] = {
        {.key = "rid", .type = V_UINT, .u = 42}, /* fixed: inputs replay alike */
        {.key = "svc", .type = V_STR, .p = (const uint8_t *)"fuzz", .len = 4},
        {.key = "verb", .type = V_STR, .p = (const uint8_t *)"probe", .len = 5},
        {.key = "ws", .type = V_STR, .p = (const uint8_t *)"default", .len = 7},
        {.key = "sub", .type = V_STR, .p = (const uint8_t *)"local", .len = 5},
        {.key = "roles",
         .type = V_ROLES,
         .p = (const uint8_t *)roles_owner,
         .len = 1,
         .u = 6},
        {.key = "ttl", .type = V_UINT, .u = 30000},
    };
    size_t nf = 7;
    bool replaced[NKEYS] = {false};
    while (n >= 4 && nf < sizeof f / sizeof f[0]) {
        unsigned k = p[0] % NKEYS;
        field_t v = {
            .key = s_keys[k], .type = p[1] % V_NTYPES, .len = p[2] | p[3] << 8};
        p += 4;
        n -= 4;
        switch (v.type) {
            case V_STR:
            case V_BIN:
                if (v.len > n) v.len = n;
                v.p = p;
                p += v.len;
                n -= v.len;
                break;
            case V_REPEAT:
                v.fill = n ? *p : 'x';
                if (n) p++, n--;
                break;
            case V_UINT:
            case V_NEG:
                for (int i = 0; i < 8 && n; i++, p++, n--)
                    v.u |= (uint64_t)*p << (8 * i);
                break;
            case V_ROLES: /* len: 5 bits of count, 11 of payload bytes */
                v.p = p;
                v.u = (v.len >> 5) < n ? v.len >> 5 : n;
                v.len &= 0x1f;
                p += v.u;
                n -= v.u;
                break;
        }
        /* The first record of a key replaces its default; later ones add
         * a duplicate key. */
        size_t at = nf;
        if (!replaced[k])
            for (size_t i = 0; i < nf; i++)
                if (strcmp(f[i].key, v.key) == 0) at = i;
        replaced[k] = true;
        f[at] = v;
        if (at == nf) nf++;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, nf);
    for (size_t i = 0; i < nf; i++) {
        cairn_pack_cstr(&pk, f[i].key);
        switch (f[i].type) {
            case V_STR:
                msgpack_pack_str(&pk, f[i].len);
                msgpack_pack_str_body(&pk, f[i].p, f[i].len);
                break;
            case V_BIN:
                msgpack_pack_bin(&pk, f[i].len);
                msgpack_pack_bin_body(&pk, f[i].p, f[i].len);
                break;
            case V_REPEAT:
                s_pack_repeat(&pk, f[i].fill, f[i].len);
                break;
            case V_UINT:
                msgpack_pack_uint64(&pk, f[i].u);
                break;
            case V_NEG:
                msgpack_pack_int64(&pk, -(int64_t)(f[i].u >> 1) - 1);
                break;
            case V_NIL:
                msgpack_pack_nil(&pk);
                break;
            case V_ROLES:
                s_pack_roles(&pk, &f[i]);
                break;
        }
    }
}

/* ---- the model: what the runtime must do with a header --------------------- */

/* Two readings of a header are in use: a lenient one (a mistyped ws, sub,
 * cid or role reads as "", a mistyped ttl as none, more than 16 roles is
 * a 400) and a strict one (any mistyped key, or more than 16 roles, and the
 * request is not taken: 500; an absent ws, sub or cid still takes a byte
 * of the strings' room). The model accepts either where they differ, and
 * nothing else. */
enum { STRINGS_OK, STRINGS_BAD, STRINGS_EITHER };

typedef struct model {
    bool taken;  /* a map with a uint rid: served */
    bool typed;  /* every known key of its type (else a strict reader says 500) */
    int strings; /* ws, sub, cid and roles fit, without a NUL */
    uint64_t rid;
    const msgpack_object *verb, *ws, *sub, *cid, *roles, *ttl, *addr;
} model_t;

static bool s_typed(const msgpack_object *o, msgpack_object_type t)
{
    return !o || o->type == MSGPACK_OBJECT_NIL || o->type == t;
}

/* The room a header string takes (its bytes and a NUL); false for a NUL
 * inside. Not a str: none (lenient), or 1 byte when absent (strict). */
static bool s_need(const msgpack_object *o, size_t *need, size_t *absent)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) {
        if (!o || o->type == MSGPACK_OBJECT_NIL) ++*absent;
        return true;
    }
    *need += o->via.str.size + 1;
    return !memchr(o->via.str.ptr, '\0', o->via.str.size);
}

static void s_model(const void *hdr, size_t len, model_t *m)
{
    memset(m, 0, sizeof *m);
    msgpack_object h;
    size_t off = 0;
    msgpack_zone_clear(s_zone);
    if (!len || cairn_msgpack_check(hdr, len, NULL) != 0 ||
        msgpack_unpack(hdr, len, &off, s_zone, &h) != MSGPACK_UNPACK_SUCCESS ||
        h.type != MSGPACK_OBJECT_MAP)
        return;
    const msgpack_object *rid = cairn_obj_get(&h, "rid");
    if (!rid || rid->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return;
    m->taken = true;
    m->rid = rid->via.u64;
    m->verb = cairn_obj_get(&h, "verb");
    m->ws = cairn_obj_get(&h, "ws");
    m->sub = cairn_obj_get(&h, "sub");
    m->cid = cairn_obj_get(&h, "cid");
    m->roles = cairn_obj_get(&h, "roles");
    m->ttl = cairn_obj_get(&h, "ttl");
    m->addr = cairn_obj_get(&h, "addr");
    m->typed =
        s_typed(cairn_obj_get(&h, "svc"), MSGPACK_OBJECT_STR) &&
        s_typed(m->verb, MSGPACK_OBJECT_STR) && s_typed(m->ws, MSGPACK_OBJECT_STR) &&
        s_typed(m->sub, MSGPACK_OBJECT_STR) && s_typed(m->cid, MSGPACK_OBJECT_STR) &&
        s_typed(m->ttl, MSGPACK_OBJECT_POSITIVE_INTEGER) &&
        s_typed(m->roles, MSGPACK_OBJECT_ARRAY) &&
        s_typed(m->addr, MSGPACK_OBJECT_STR) &&
        (!m->addr || m->addr->type != MSGPACK_OBJECT_STR ||
         m->addr->via.str.size <= 64); /* WIRE_ADDR_MAX: longer is unreadable */
    size_t need = 0, absent = 0, ignored = 0;
    bool ok = s_need(m->ws, &need, &absent);
    ok &= s_need(m->sub, &need, &absent);
    ok &= s_need(m->cid, &need, &absent);
    ok &= s_need(m->addr, &need, &absent);
    if (m->roles && m->roles->type == MSGPACK_OBJECT_ARRAY) {
        if (m->roles->via.array.size > MAX_ROLES) ok = m->typed = false;
        for (uint32_t i = 0; i < m->roles->via.array.size; i++) {
            const msgpack_object *e = &m->roles->via.array.ptr[i];
            if (e->type != MSGPACK_OBJECT_STR) m->typed = false;
            ok &= s_need(e, &need, &ignored);
        }
    }
    bool lenient = ok && need <= STRBUF, strict = ok && need + absent <= STRBUF;
    m->strings = lenient && strict     ? STRINGS_OK
                 : !lenient && !strict ? STRINGS_BAD
                                       : STRINGS_EITHER;
}

static const cairn_verb_t *s_verb_of(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) return NULL;
    for (const cairn_verb_t *v = s_verbs; v->name; v++)
        if (strlen(v->name) == o->via.str.size &&
            memcmp(v->name, o->via.str.ptr, o->via.str.size) == 0)
            return v;
    return NULL;
}

/* The C string a handler must see for a header string: its bytes, or "". */
static bool s_same(const msgpack_object *reply, const char *key,
                   const msgpack_object *hdr)
{
    const msgpack_object *v = cairn_obj_get(reply, key);
    REQUIRE(v && v->type == MSGPACK_OBJECT_STR);
    if (!hdr || hdr->type != MSGPACK_OBJECT_STR) return v->via.str.size == 0;
    return v->via.str.size == hdr->via.str.size &&
           memcmp(v->via.str.ptr, hdr->via.str.ptr, hdr->via.str.size) == 0;
}

/* The workspace a handler sees: the header's, or "default" for none. */
static bool s_same_ws(const msgpack_object *reply, const msgpack_object *hdr)
{
    if (hdr && hdr->type == MSGPACK_OBJECT_STR && hdr->via.str.size)
        return s_same(reply, "ws", hdr);
    const msgpack_object *v = cairn_obj_get(reply, "ws");
    return v && v->type == MSGPACK_OBJECT_STR && v->via.str.size == 7 &&
           memcmp(v->via.str.ptr, "default", 7) == 0;
}

/* The body as the handler packed it back equals the body as sent. */
static void s_same_body(const msgpack_object *echoed, const void *body, size_t len)
{
    msgpack_object want = {.type = MSGPACK_OBJECT_NIL};
    size_t off = 0;
    msgpack_zone_clear(s_zone2);
    if (len)
        REQUIRE(msgpack_unpack(body, len, &off, s_zone2, &want) ==
                MSGPACK_UNPACK_SUCCESS);
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    msgpack_packer pa, pb;
    msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
    msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
    msgpack_pack_object(&pa, *echoed);
    msgpack_pack_object(&pb, want);
    REQUIRE(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

static void s_check_probe(const model_t *m, const void *body, size_t blen,
                          const void *reply, size_t rlen)
{
    msgpack_object r;
    size_t off = 0;
    msgpack_zone *z = msgpack_zone_new(8192);
    REQUIRE(z && msgpack_unpack(reply, rlen, &off, z, &r) == MSGPACK_UNPACK_SUCCESS &&
            r.type == MSGPACK_OBJECT_MAP);
    /* Exactly the header's strings, never a cut one. */
    REQUIRE(s_same_ws(&r, m->ws) && s_same(&r, "sub", m->sub));
    REQUIRE(s_same(&r, "addr", m->addr));
    REQUIRE(s_same(&r, "verb", m->verb));
    const msgpack_object *cid = cairn_obj_get(&r, "cid");
    REQUIRE(cid && cid->type == MSGPACK_OBJECT_STR);
    if (m->cid && m->cid->type == MSGPACK_OBJECT_STR && m->cid->via.str.size) {
        REQUIRE(s_same(&r, "cid", m->cid));
    } else { /* none given: derived from the rid */
        char want[24];
        snprintf(want, sizeof want, "k%llx", (unsigned long long)m->rid);
        REQUIRE(cid->via.str.size == strlen(want) &&
                memcmp(cid->via.str.ptr, want, strlen(want)) == 0);
    }
    const msgpack_object *v = cairn_obj_get(&r, "inline");
    REQUIRE(v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean);
    REQUIRE(cairn_obj_is_str(cairn_obj_get(&r, "svc"), "fuzz"));
    REQUIRE(cairn_obj_is_str(cairn_obj_get(&r, "conf"), "blue"));
    /* The deadline: ttl from now (30 s without one); never in the past
     * for a ttl the kernel can send (max_ttl_ms is a u32). */
    v = cairn_obj_get(&r, "left");
    REQUIRE(v && (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                  v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER));
    int64_t left = v->via.i64;
    uint64_t ttl = m->ttl && m->ttl->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                       ? m->ttl->via.u64
                       : 30000;
    if (ttl == 0) /* none, or none left: both readings are in use */
        REQUIRE(left <= 30000 && left >= -60000);
    else if (ttl <= UINT32_MAX)
        REQUIRE(left <= (int64_t)ttl && left >= (int64_t)ttl - 60000);
    /* has_role: true exactly when one role (a non-str reads as "") is it. */
    const msgpack_object *has = cairn_obj_get(&r, "has"),
                         *b = cairn_obj_get(&r, "body");
    REQUIRE(has && has->type == MSGPACK_OBJECT_ARRAY && b);
    const msgpack_object *q =
        b->type == MSGPACK_OBJECT_MAP ? cairn_obj_get(b, "roles") : NULL;
    if (q && q->type != MSGPACK_OBJECT_ARRAY) q = NULL;
    static const char *fixed[] = {"Owner", "Reader", ""};
    REQUIRE(has->via.array.size == (q ? q->via.array.size : 3));
    for (uint32_t i = 0; i < has->via.array.size; i++) {
        char want[256] = "";
        if (!q)
            snprintf(want, sizeof want, "%s", fixed[i]);
        else if (q->via.array.ptr[i].type == MSGPACK_OBJECT_STR &&
                 q->via.array.ptr[i].via.str.size < sizeof want)
            memcpy(want, q->via.array.ptr[i].via.str.ptr,
                   q->via.array.ptr[i].via.str.size);
        bool expect = false;
        if (m->roles && m->roles->type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t j = 0; j < m->roles->via.array.size; j++) {
                const msgpack_object *e = &m->roles->via.array.ptr[j];
                const char *s = e->type == MSGPACK_OBJECT_STR ? e->via.str.ptr : "";
                size_t n = e->type == MSGPACK_OBJECT_STR ? e->via.str.size : 0;
                if (strlen(want) == n && memcmp(want, s, n) == 0) expect = true;
            }
        REQUIRE(has->via.array.ptr[i].type == MSGPACK_OBJECT_BOOLEAN &&
                has->via.array.ptr[i].via.boolean == expect);
    }
    s_same_body(b, body, blen);
    msgpack_zone_free(z);
}

/* What the kernel sends the client from a door's answer: one valid map. */
static void s_check_client_reply(int st, const char *code, const char *msg)
{
    REQUIRE(st >= 100 && st <= 999);
    REQUIRE(memchr(code, '\0', 64) && memchr(msg, '\0', CAIRN_ERR_MSG_MAX));
    cairn_hdr_t req = {.id_type = CAIRN_ID_UINT, .id_uint = 1};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_hdr_pack_reply(&pk, &req, st, code, msg);
    REQUIRE(cairn_msgpack_check(sb.data, sb.size, NULL) == 0);
    msgpack_sbuffer_destroy(&sb);
}

/* A FINAL the worker sent on its socket (a deferred answer). */
static void s_take_final(const model_t *m, const void *body, size_t blen)
{
    wmsg_t w;
    int cmd;
    while ((cmd = s_recv(&w, 0)) != CAIRN_W_FINAL) s_close(&w); /* heartbeats */
    REQUIRE(w.n == 5);
    msgpack_object h;
    size_t off = 0;
    msgpack_zone *z = msgpack_zone_new(1024);
    REQUIRE(z);
    REQUIRE(cairn_msgpack_check(zmq_msg_data(&w.part[3]), zmq_msg_size(&w.part[3]),
                                NULL) == 0);
    REQUIRE(msgpack_unpack(zmq_msg_data(&w.part[3]), zmq_msg_size(&w.part[3]), &off, z,
                           &h) == MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *rid = cairn_obj_get(&h, "rid"), *st = cairn_obj_get(&h, "st");
    REQUIRE(rid && rid->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            rid->via.u64 == m->rid);
    REQUIRE(st && st->type == MSGPACK_OBJECT_POSITIVE_INTEGER && st->via.u64 == 200);
    msgpack_object echoed = {.type = MSGPACK_OBJECT_NIL};
    off = 0;
    if (zmq_msg_size(&w.part[4]))
        REQUIRE(msgpack_unpack(zmq_msg_data(&w.part[4]), zmq_msg_size(&w.part[4]), &off,
                               z, &echoed) == MSGPACK_UNPACK_SUCCESS);
    s_same_body(&echoed, body, blen);
    msgpack_zone_free(z);
    s_close(&w);
}

static void s_serve_one(const void *hdr, size_t hlen, const uint8_t *body, size_t blen)
{
    model_t m;
    s_model(hdr, hlen, &m);
    zmq_msg_t msg;
    REQUIRE(zmq_msg_init_size(&msg, blen) == 0);
    if (blen) memcpy(zmq_msg_data(&msg), body, blen);
    cairn_door_reply_t out;
    cairn_door_rc_t rc;
    /* The worker leaves the door open while it sleeps in its poll; it
     * wakes only for its (hourly) heartbeat and for what is sent to it. */
    for (long spins = 0;
         (rc = cairn_door_try(s_door, hdr, hlen, &msg, &out)) == CAIRN_DOOR_BUSY;
         spins++) {
        REQUIRE(spins < 10L * 1000 * 1000);
        sched_yield();
    }
    zmq_msg_close(&msg);
    const cairn_verb_t *v = s_verb_of(m.verb);
    bool body_ok = !blen || cairn_msgpack_check(body, blen, NULL) == 0;
    if (rc == CAIRN_DOOR_DEFERRED) {
        REQUIRE(m.taken && m.strings != STRINGS_BAD && v && body_ok &&
                strcmp(v->name, "later") == 0);
        s_take_final(&m, body, blen);
        return;
    }
    REQUIRE(rc == CAIRN_DOOR_REPLIED);
    s_check_client_reply(out.st, out.code, out.msg);
    const void *rb = zmq_msg_data(&out.body);
    size_t rlen = zmq_msg_size(&out.body);
    if (rlen) REQUIRE(cairn_msgpack_check(rb, rlen, NULL) == 0);
    bool refused_strings = out.st == 400 && strstr(out.msg, "header strings");
    if (!m.taken) {
        REQUIRE(out.st == 500);
    } else if (!m.typed && out.st == 500 && strcmp(out.code, "internal") == 0) {
        /* the strict reading: not taken */
    } else if (m.strings == STRINGS_BAD ||
               (m.strings == STRINGS_EITHER && refused_strings)) {
        REQUIRE(refused_strings && strcmp(out.code, "bad_request") == 0);
    } else if (!v) {
        REQUIRE(out.st == 404 && strcmp(out.code, "no_verb") == 0);
    } else if (!body_ok) {
        REQUIRE(out.st == 400 && strstr(out.msg, "body"));
    } else if (strcmp(v->name, "probe") == 0) {
        REQUIRE(out.st == 200);
        s_check_probe(&m, body, blen, rb, rlen);
    } else if (strcmp(v->name, "fields") == 0) {
        REQUIRE(out.st == 204 || out.st == 400);
    } else if (strcmp(v->name, "fail") == 0) {
        REQUIRE(out.st >= 400 && out.st <= 999);
    } else if (strcmp(v->name, "call") == 0) {
        REQUIRE(out.st == 500);
    } else if (strcmp(v->name, "defer") == 0) {
        REQUIRE(out.st == 200);
        msgpack_object echoed = {.type = MSGPACK_OBJECT_NIL};
        size_t off = 0;
        msgpack_zone *z = msgpack_zone_new(1024);
        REQUIRE(z);
        if (rlen)
            REQUIRE(msgpack_unpack(rb, rlen, &off, z, &echoed) ==
                    MSGPACK_UNPACK_SUCCESS);
        s_same_body(&echoed, body, blen);
        msgpack_zone_free(z);
    } else {
        REQUIRE(0); /* "later" always defers */
    }
    zmq_msg_close(&out.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!api) s_setup();
    if (size < 3) return 0;
    int mode = data[0];
    size_t hlen = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (hlen > size) hlen = size;
    if (mode & 1) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        s_build(data, hlen, &sb);
        s_serve_one(sb.data, sb.size, data + hlen, size - hlen);
        msgpack_sbuffer_destroy(&sb);
    } else {
        s_serve_one(data, hlen, data + hlen, size - hlen);
    }
    return 0;
}
