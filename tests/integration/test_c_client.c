/* test_c_client — the C SDK (cairn/client.h) against a private cairnd:
 * the sys bodies' shapes (docs/PROTOCOL.md), an echo round trip, the
 * kernel's errors (404, 413, 504), pipelining 10,000 requests, a local 504
 * when nothing listens, and the stash of out-of-order replies. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/client.h"
#include "cairn/msg.h"
#include "harness.h"

/* ---- small helpers ----------------------------------------------------- */

static bool is_str(const msgpack_object *o)
{
    return o && o->type == MSGPACK_OBJECT_STR;
}
static bool is_uint(const msgpack_object *o)
{
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}
static bool is_bool(const msgpack_object *o)
{
    return o && o->type == MSGPACK_OBJECT_BOOLEAN;
}
static bool is_array(const msgpack_object *o)
{
    return o && o->type == MSGPACK_OBJECT_ARRAY;
}
static bool is_one_of(const msgpack_object *o, const char *const *names)
{
    for (; *names; names++)
        if (cairn_obj_is_str(o, *names)) return true;
    return false;
}
static bool array_has_str(const msgpack_object *a, const char *s)
{
    if (!is_array(a)) return false;
    for (uint32_t i = 0; i < a->via.array.size; i++)
        if (cairn_obj_is_str(&a->via.array.ptr[i], s)) return true;
    return false;
}
/* The element of an array of maps whose "name" is name. */
static const msgpack_object *by_name(const msgpack_object *a, const char *name)
{
    if (!is_array(a)) return NULL;
    for (uint32_t i = 0; i < a->via.array.size; i++)
        if (cairn_obj_is_str(cairn_obj_get(&a->via.array.ptr[i], "name"), name))
            return &a->via.array.ptr[i];
    return NULL;
}

/* {key: n} packed into sb (caller destroys sb). */
static void pack_uint_map(msgpack_sbuffer *sb, const char *key, uint64_t n)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_cstr(&pk, key);
    msgpack_pack_uint64(&pk, n);
}

/* ---- sys ----------------------------------------------------------------- */

static void test_ping(cairn_client_t *c)
{
    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, "sys", "ping", NULL, 0, 5000, &r, &err);
    CHECK(rc == 0, "sys.ping failed: %d %s %s", err.st, err.code, err.msg);
    if (!r) return;
    CHECK(cairn_reply_status(r) == 200, "ping st %d", cairn_reply_status(r));
    const msgpack_object *b = cairn_reply_object(r);
    CHECK(b->type == MSGPACK_OBJECT_MAP, "ping body is not a map (type %d)", b->type);
    const msgpack_object *pong = cairn_obj_get(b, "pong");
    CHECK(is_bool(pong) && pong->via.boolean, "ping body lacks pong: true");
    CHECK(is_str(cairn_obj_get(b, "version")), "ping body lacks a version string");
    CHECK(strcmp(cairn_reply_code(r), "") == 0 && strcmp(cairn_reply_error(r), "") == 0,
          "a 200 carries code '%s' err '%s'", cairn_reply_code(r),
          cairn_reply_error(r));
    cairn_reply_destroy(&r);
    cairn_reply_destroy(&r); /* safe twice */
    CHECK(r == NULL, "cairn_reply_destroy leaves the pointer set");

    /* "body in: anything": a map body is fine too. */
    msgpack_sbuffer sb;
    pack_uint_map(&sb, "x", 1);
    rc = cairn_client_call(c, "sys", "ping", sb.data, sb.size, 5000, NULL, &err);
    CHECK(rc == 0, "sys.ping with a body failed: %d %s", err.st, err.msg);
    msgpack_sbuffer_destroy(&sb);
}

static void test_services(cairn_client_t *c)
{
    static const char *const modes[] = {"inproc", "process", "remote", NULL};
    static const char *const states[] = {"up", "down", "restarting", NULL};
    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, "sys", "services", NULL, 0, 5000, &r, &err);
    CHECK(rc == 0, "sys.services failed: %d %s %s", err.st, err.code, err.msg);
    if (!r) return;
    const msgpack_object *b = cairn_reply_object(r);
    const msgpack_object *svcs = cairn_obj_get(b, "services");
    CHECK(is_array(svcs), "services body lacks a services array");
    if (!is_array(svcs)) goto done;
    for (uint32_t i = 0; i < svcs->via.array.size; i++) {
        const msgpack_object *s = &svcs->via.array.ptr[i];
        CHECK(s->type == MSGPACK_OBJECT_MAP, "services[%u] is not a map", i);
        CHECK(is_str(cairn_obj_get(s, "name")), "services[%u].name is not a string", i);
        CHECK(is_str(cairn_obj_get(s, "plugin")), "services[%u].plugin is not a string",
              i);
        CHECK(is_one_of(cairn_obj_get(s, "mode"), modes), "services[%u].mode is bad",
              i);
        CHECK(is_one_of(cairn_obj_get(s, "state"), states), "services[%u].state is bad",
              i);
        const msgpack_object *verbs = cairn_obj_get(s, "verbs");
        CHECK(is_array(verbs), "services[%u].verbs is not an array", i);
        if (is_array(verbs))
            for (uint32_t j = 0; j < verbs->via.array.size; j++)
                CHECK(is_str(&verbs->via.array.ptr[j]),
                      "services[%u].verbs[%u] not a str", i, j);
    }
    const msgpack_object *sys = by_name(svcs, "sys");
    CHECK(sys != NULL, "sys.services does not list sys");
    if (sys)
        CHECK(array_has_str(cairn_obj_get(sys, "verbs"), "ping") &&
                  array_has_str(cairn_obj_get(sys, "verbs"), "services") &&
                  array_has_str(cairn_obj_get(sys, "verbs"), "health"),
              "sys lacks ping/services/health");
    const msgpack_object *echo = by_name(svcs, "echo");
    CHECK(echo != NULL, "sys.services does not list echo");
    if (echo) {
        CHECK(cairn_obj_is_str(cairn_obj_get(echo, "plugin"), "echo"), "echo.plugin");
        CHECK(cairn_obj_is_str(cairn_obj_get(echo, "mode"), "inproc"), "echo.mode");
        CHECK(cairn_obj_is_str(cairn_obj_get(echo, "state"), "up"), "echo.state");
        const msgpack_object *v = cairn_obj_get(echo, "verbs");
        CHECK(array_has_str(v, "echo") && array_has_str(v, "sleep") &&
                  array_has_str(v, "small"),
              "echo's verbs lack echo/sleep/small");
    }
done:
    cairn_reply_destroy(&r);
}

static void test_health(cairn_client_t *c)
{
    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, "sys", "health", NULL, 0, 5000, &r, &err);
    CHECK(rc == 0, "sys.health failed: %d %s %s", err.st, err.code, err.msg);
    if (!r) return;
    const msgpack_object *b = cairn_reply_object(r);
    const msgpack_object *ok = cairn_obj_get(b, "ok");
    CHECK(is_bool(ok) && ok->via.boolean, "health.ok is not true");
    const msgpack_object *pl = cairn_obj_get(b, "plugins");
    CHECK(is_array(pl), "health lacks a plugins array");
    if (is_array(pl)) {
        for (uint32_t i = 0; i < pl->via.array.size; i++) {
            const msgpack_object *p = &pl->via.array.ptr[i];
            CHECK(is_str(cairn_obj_get(p, "name")), "plugins[%u].name", i);
            CHECK(is_str(cairn_obj_get(p, "state")), "plugins[%u].state", i);
            CHECK(is_uint(cairn_obj_get(p, "restarts")), "plugins[%u].restarts", i);
        }
        const msgpack_object *echo = by_name(pl, "echo");
        CHECK(echo && cairn_obj_is_str(cairn_obj_get(echo, "state"), "up"),
              "health: echo is not up");
        CHECK(echo && is_uint(cairn_obj_get(echo, "restarts")) &&
                  cairn_obj_get(echo, "restarts")->via.u64 == 0,
              "health: echo has restarted");
    }
    cairn_reply_destroy(&r);
}

/* ---- echo ---------------------------------------------------------------- */

static void test_echo(cairn_client_t *c)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    cairn_pack_cstr(&pk, "hello");
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, -2);
    msgpack_pack_double(&pk, 3.5);
    cairn_pack_kv_str(&pk, "s", "ünïcode");
    cairn_pack_cstr(&pk, "bin");
    msgpack_pack_bin(&pk, 4);
    msgpack_pack_bin_body(&pk, "\0\1\2\3", 4);
    cairn_pack_cstr(&pk, "nil");
    msgpack_pack_nil(&pk);
    cairn_pack_cstr(&pk, "big");
    msgpack_pack_uint64(&pk, UINT64_MAX);

    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, "echo", "echo", sb.data, sb.size, 5000, &r, &err);
    CHECK(rc == 0, "echo.echo failed: %d %s %s", err.st, err.code, err.msg);
    if (r) {
        size_t len = 0;
        const void *body = cairn_reply_body(r, &len);
        CHECK(len == sb.size && body && memcmp(body, sb.data, len) == 0,
              "echo changed the body (%zu bytes sent, %zu back)", sb.size, len);
        msgpack_zone z;
        msgpack_zone_init(&z, 1024);
        msgpack_object sent;
        size_t off = 0;
        msgpack_unpack(sb.data, sb.size, &off, &z, &sent);
        CHECK(msgpack_object_equal(sent, *cairn_reply_object(r)),
              "the decoded echo differs from what was sent");
        msgpack_zone_destroy(&z);
        cairn_reply_destroy(&r);
    }
    msgpack_sbuffer_destroy(&sb);

    /* nil stays nil: an empty body frame. */
    rc = cairn_client_call(c, "echo", "echo", NULL, 0, 5000, &r, &err);
    CHECK(rc == 0, "echo.echo nil failed: %d %s", err.st, err.msg);
    if (r) {
        size_t len = 99;
        cairn_reply_body(r, &len);
        CHECK(len == 0, "a nil echo came back with %zu bytes", len);
        CHECK(cairn_reply_object(r)->type == MSGPACK_OBJECT_NIL, "nil echo not nil");
        cairn_reply_destroy(&r);
    }

    /* A 256 KiB string (well under the default frame limit). */
    size_t n = 256 * 1024;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_pack_strn(&pk, big, n);
    rc = cairn_client_call(c, "echo", "echo", sb.data, sb.size, 5000, &r, &err);
    CHECK(rc == 0, "a 256 KiB echo failed: %d %s", err.st, err.msg);
    if (r) {
        size_t len = 0;
        const void *body = cairn_reply_body(r, &len);
        CHECK(len == sb.size && memcmp(body, sb.data, len) == 0,
              "a 256 KiB echo changed");
        cairn_reply_destroy(&r);
    }
    msgpack_sbuffer_destroy(&sb);
    free(big);
}

/* ---- errors -------------------------------------------------------------- */

/* When the plugin's own (late) reply to the 3 s sleep is due. */
static uint64_t s_late_reply_at;

static void expect_error(cairn_client_t *c, const char *svc, const char *verb,
                         const void *body, size_t len, uint32_t ttl, int st,
                         const char *code)
{
    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, svc, verb, body, len, ttl, &r, &err);
    CHECK(rc == -1, "%s.%s succeeded, expected %d", svc, verb, st);
    CHECK(err.st == st, "%s.%s: err.st %d, expected %d (%s)", svc, verb, err.st, st,
          err.msg);
    CHECK(strcmp(err.code, code) == 0, "%s.%s: err.code '%s', expected '%s'", svc, verb,
          err.code, code);
    CHECK(err.msg[0] != '\0', "%s.%s: no error sentence", svc, verb);
    CHECK(r != NULL, "%s.%s: the kernel's reply is not handed back", svc, verb);
    if (r) {
        CHECK(cairn_reply_status(r) == st, "%s.%s: reply st %d", svc, verb,
              cairn_reply_status(r));
        CHECK(strcmp(cairn_reply_code(r), code) == 0, "%s.%s: reply code '%s'", svc,
              verb, cairn_reply_code(r));
        CHECK(cairn_reply_error(r)[0] != '\0', "%s.%s: reply lacks err", svc, verb);
        cairn_reply_destroy(&r);
    }
}

/* An error reply may carry a body (echo.fail; fail_inline through the
 * kernel's door when the worker is idle): the client hands it back. */
static void test_error_body(cairn_client_t *c)
{
    for (int inl = 0; inl < 2; inl++) {
        const char *verb = inl ? "fail_inline" : "fail";
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        cairn_pack_cstr(&pk, "st");
        msgpack_pack_uint32(&pk, 409);
        cairn_pack_kv_str(&pk, "code", "conflict");
        cairn_pack_kv_str(&pk, "err", "expected offset 7");
        cairn_pack_cstr(&pk, "body");
        msgpack_pack_map(&pk, 1);
        cairn_pack_cstr(&pk, "expected_offset");
        msgpack_pack_uint64(&pk, 7);
        cairn_err_t err = {0};
        cairn_reply_t *r = NULL;
        int rc = cairn_client_call(c, "echo", verb, sb.data, sb.size, 5000, &r, &err);
        msgpack_sbuffer_destroy(&sb);
        CHECK(rc == -1 && err.st == 409 && strcmp(err.code, "conflict") == 0 &&
                  strcmp(err.msg, "expected offset 7") == 0,
              "echo.%s: rc %d, %d %s %s", verb, rc, err.st, err.code, err.msg);
        CHECK(r != NULL, "echo.%s: the error reply is not handed back", verb);
        if (!r) continue;
        const msgpack_object *at =
            cairn_obj_get(cairn_reply_object(r), "expected_offset");
        CHECK(is_uint(at) && at->via.u64 == 7, "echo.%s: the error's body is lost",
              verb);
        cairn_reply_destroy(&r);
    }
}

static void test_errors(cairn_client_t *c)
{
    expect_error(c, "nope", "echo", NULL, 0, 5000, 404, "no_service");
    expect_error(c, "echo", "nope", NULL, 0, 5000, 404, "no_verb");
    expect_error(c, "sys", "nope", NULL, 0, 5000, 404, "no_verb");

    /* 413: the verb `small` takes at most 1 KiB; send 2 KiB. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char blob[2048];
    memset(blob, 'x', sizeof blob);
    cairn_pack_strn(&pk, blob, sizeof blob);
    expect_error(c, "echo", "small", sb.data, sb.size, 5000, 413, "too_large");
    msgpack_sbuffer_destroy(&sb);
    /* ... and a small body still passes. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_pack_strn(&pk, blob, 100);
    cairn_err_t err = {0};
    CHECK(
        cairn_client_call(c, "echo", "small", sb.data, sb.size, 5000, NULL, &err) == 0,
        "echo.small with 100 bytes: %d %s", err.st, err.msg);
    msgpack_sbuffer_destroy(&sb);

    /* 400: sleep needs {ms}; the sentence names the field. */
    cairn_reply_t *r = NULL;
    CHECK(cairn_client_call(c, "echo", "sleep", NULL, 0, 5000, &r, &err) == -1 &&
              err.st == 400 && strstr(err.msg, "ms"),
          "sleep without ms: %d %s", err.st, err.msg);
    cairn_reply_destroy(&r);

    /* 504 from the kernel at about the ttl: sleep 3 s with a ttl of 300 ms. */
    pack_uint_map(&sb, "ms", 3000);
    uint64_t t0 = harness_now_ms();
    s_late_reply_at = t0 + 3000;
    int rc = cairn_client_call(c, "echo", "sleep", sb.data, sb.size, 300, &r, &err);
    uint64_t dt = harness_now_ms() - t0;
    CHECK(rc == -1 && err.st == 504, "sleep past the ttl: rc %d st %d %s", rc, err.st,
          err.msg);
    CHECK(dt < 2500, "the 504 took %llu ms (ttl 300)", (unsigned long long)dt);
    CHECK(dt >= 250, "the 504 came after %llu ms, before the ttl of 300",
          (unsigned long long)dt);
    CHECK(r != NULL, "the 504 was local (no reply from the kernel after %llu ms)",
          (unsigned long long)dt);
    if (r) {
        CHECK(cairn_reply_status(r) == 504 && cairn_reply_code(r)[0] != '\0',
              "kernel 504: st %d code '%s'", cairn_reply_status(r),
              cairn_reply_code(r));
        cairn_reply_destroy(&r);
    }
    msgpack_sbuffer_destroy(&sb);
    /* The plugin's late reply (at 3 s) must not reach this client later:
     * checked after the pipelining test, which drains the socket. */
}

/* ---- pipelining ---------------------------------------------------------- */

#define PIPE_N 10000
#define PIPE_WINDOW 128

static void test_pipelining(cairn_client_t *c)
{
    uint64_t *ids = calloc(PIPE_N, sizeof *ids); /* request i -> id */
    unsigned char *seen = calloc(PIPE_N, 1);     /* answered, by i */
    cairn_err_t err = {0};
    int sent = 0, got = 0, dup = 0, bad = 0, stray = 0, failed = 0;
    uint64_t first_id = 0;
    uint64_t t0 = harness_now_ms();
    while (got + failed < PIPE_N) {
        while (sent < PIPE_N && sent - got - failed < PIPE_WINDOW) {
            msgpack_sbuffer sb;
            pack_uint_map(&sb, "i", (uint64_t)sent);
            int rc = cairn_client_send(c, "echo", "echo", sb.data, sb.size, 10000,
                                       &ids[sent], &err);
            msgpack_sbuffer_destroy(&sb);
            if (rc != 0) {
                CHECK(rc == 0, "send %d: %d %s", sent, err.st, err.msg);
                goto out;
            }
            if (sent == 0) first_id = ids[0];
            sent++;
        }
        cairn_reply_t *r = NULL;
        if (cairn_client_recv(c, 10000, &r, &err) != 0) {
            CHECK(false, "recv after %d of %d replies: %d %s", got, PIPE_N, err.st,
                  err.msg);
            goto out;
        }
        uint64_t id = cairn_reply_id(r);
        if (id < first_id || id - first_id >= (uint64_t)sent) {
            stray++;
        } else {
            size_t i = (size_t)(id - first_id);
            if (ids[i] != id) bad++;
            if (seen[i]) dup++;
            seen[i] = 1;
            const msgpack_object *v = cairn_obj_get(cairn_reply_object(r), "i");
            if (cairn_reply_status(r) != 200) {
                failed++;
                if (failed <= 3)
                    fprintf(stderr, "pipelined %zu: %d %s %s\n", i,
                            cairn_reply_status(r), cairn_reply_code(r),
                            cairn_reply_error(r));
            } else {
                if (!is_uint(v) || v->via.u64 != i) bad++;
                got++;
            }
        }
        cairn_reply_destroy(&r);
    }
out:;
    uint64_t dt = harness_now_ms() - t0;
    int missing = 0;
    for (int i = 0; i < sent; i++)
        if (!seen[i]) missing++;
    CHECK(sent == PIPE_N, "sent %d of %d", sent, PIPE_N);
    CHECK(got == PIPE_N && failed == 0, "answered 200: %d of %d (%d failed)", got,
          PIPE_N, failed);
    CHECK(missing == 0, "%d requests never answered", missing);
    CHECK(dup == 0, "%d requests answered twice", dup);
    CHECK(bad == 0, "%d replies carry the wrong body or id", bad);
    CHECK(stray == 0, "%d replies carry an id never sent", stray);
    printf("pipelining: %d requests, window %d, %llu ms\n", PIPE_N, PIPE_WINDOW,
           (unsigned long long)dt);
    /* Nothing more arrives: every id was answered exactly once. */
    cairn_reply_t *r = NULL;
    CHECK(cairn_client_recv(c, 200, &r, &err) == -1 && err.st == 504,
          "an extra reply arrived (id %llu)",
          r ? (unsigned long long)cairn_reply_id(r) : 0);
    cairn_reply_destroy(&r);
    free(ids);
    free(seen);
}

/* ---- the stash ----------------------------------------------------------- */

static void test_stash(cairn_client_t *c)
{
    cairn_err_t err = {0};
    msgpack_sbuffer sb;
    cairn_reply_t *r = NULL;

    /* The brief's order: a slow request in flight, then a call. The call's
     * own reply comes first and the slow one is then read by recv. */
    uint64_t slow;
    pack_uint_map(&sb, "ms", 300);
    CHECK(
        cairn_client_send(c, "echo", "sleep", sb.data, sb.size, 5000, &slow, &err) == 0,
        "send sleep: %s", err.msg);
    msgpack_sbuffer_destroy(&sb);
    pack_uint_map(&sb, "n", 7);
    int rc = cairn_client_call(c, "echo", "echo", sb.data, sb.size, 5000, &r, &err);
    CHECK(rc == 0 && r, "call echo with a sleep in flight: %d %s", err.st, err.msg);
    if (r) {
        CHECK(cairn_reply_id(r) != slow, "call returned the sleep's reply");
        const msgpack_object *n = cairn_obj_get(cairn_reply_object(r), "n");
        CHECK(is_uint(n) && n->via.u64 == 7, "call returned another body");
        cairn_reply_destroy(&r);
    }
    msgpack_sbuffer_destroy(&sb);
    /* The echo answered first: nothing is stashed or waiting yet. */
    cairn_reply_t *early = NULL;
    rc = cairn_client_recv(c, 0, &early, &err);
    CHECK(rc == -1 && err.st == 504,
          "the sleep's reply came before the echo's (id %llu)",
          early ? (unsigned long long)cairn_reply_id(early) : 0);
    if (early)
        r = early; /* still check it below */
    else
        rc = cairn_client_recv(c, 5000, &r, &err);
    CHECK(rc == 0 && r && cairn_reply_id(r) == slow && cairn_reply_status(r) == 200,
          "recv after the call: rc %d id %llu (want %llu) st %d", rc,
          r ? (unsigned long long)cairn_reply_id(r) : 0, (unsigned long long)slow,
          r ? cairn_reply_status(r) : err.st);
    cairn_reply_destroy(&r);

    /* The stash proper: two fast requests in flight, then a slow call. Their
     * replies arrive while the call waits; the call must keep them, and recv
     * must hand them out afterwards, in arrival order, once each. */
    uint64_t a, b;
    pack_uint_map(&sb, "n", 1);
    CHECK(cairn_client_send(c, "echo", "echo", sb.data, sb.size, 5000, &a, &err) == 0,
          "send a");
    msgpack_sbuffer_destroy(&sb);
    pack_uint_map(&sb, "n", 2);
    CHECK(cairn_client_send(c, "echo", "echo", sb.data, sb.size, 5000, &b, &err) == 0,
          "send b");
    msgpack_sbuffer_destroy(&sb);
    pack_uint_map(&sb, "ms", 200);
    rc = cairn_client_call(c, "echo", "sleep", sb.data, sb.size, 5000, &r, &err);
    msgpack_sbuffer_destroy(&sb);
    CHECK(rc == 0 && r && cairn_reply_id(r) != a && cairn_reply_id(r) != b,
          "the slow call: rc %d st %d", rc, err.st);
    cairn_reply_destroy(&r);
    uint64_t want[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        rc = cairn_client_recv(c, 0, &r, &err); /* stashed: no wait needed */
        CHECK(rc == 0 && r && cairn_reply_id(r) == want[i],
              "stashed reply %d: rc %d id %llu, want %llu", i, rc,
              r ? (unsigned long long)cairn_reply_id(r) : 0,
              (unsigned long long)want[i]);
        if (r) {
            const msgpack_object *n = cairn_obj_get(cairn_reply_object(r), "n");
            CHECK(is_uint(n) && n->via.u64 == (uint64_t)i + 1, "stashed body %d", i);
        }
        cairn_reply_destroy(&r);
    }
    rc = cairn_client_recv(c, 100, &r, &err);
    CHECK(rc == -1 && err.st == 504, "a third reply after the stash (id %llu)",
          r ? (unsigned long long)cairn_reply_id(r) : 0);
    cairn_reply_destroy(&r);

    /* A stashed reply is not lost when the client is destroyed with it. */
    pack_uint_map(&sb, "n", 3);
    cairn_client_send(c, "echo", "echo", sb.data, sb.size, 5000, NULL, &err);
    msgpack_sbuffer_destroy(&sb);
    CHECK(cairn_client_call(c, "sys", "ping", NULL, 0, 5000, NULL, &err) == 0, "ping");
}

/* ---- a call that gave up ------------------------------------------------------ */

/* cairnd stalls (SIGSTOP) past a call's ttl: the call gives up with 504.
 * Once it runs again its late reply arrives; the client drops it instead
 * of keeping it for a recv that will never want it. */
static void test_abandoned_reply(const harness_kernel_t *k, cairn_client_t *c)
{
    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    /* What earlier tests left (test_stash's last echo may still be on its
     * way: wait for quiet, not just for what has arrived). */
    while (cairn_client_recv(c, 500, &r, &err) == 0) cairn_reply_destroy(&r);
    if (kill(k->pid, SIGSTOP) != 0) {
        CHECK(false, "SIGSTOP cairnd");
        return;
    }
    int rc = cairn_client_call(c, "sys", "ping", NULL, 0, 100, NULL, &err);
    kill(k->pid, SIGCONT);
    CHECK(rc == -1 && err.st == 504, "a call to a stopped cairnd: rc %d st %d", rc,
          err.st);
    /* The late reply comes now; a ping behind it shows it has. */
    CHECK(cairn_client_call(c, "sys", "ping", NULL, 0, 10000, NULL, &err) == 0,
          "ping after SIGCONT: %s", err.msg);
    rc = cairn_client_recv(c, 200, &r, &err);
    CHECK(rc == -1 && err.st == 504, "recv handed out an abandoned reply (id %llu)",
          r ? (unsigned long long)cairn_reply_id(r) : 0);
    cairn_reply_destroy(&r);
    /* A process-mode plugin may have missed heartbeats meanwhile: let it be
     * up again before the next test looks. */
    uint64_t until = harness_now_ms() + 20000;
    bool ok = false;
    while (!ok && harness_now_ms() < until) {
        if (cairn_client_call(c, "sys", "health", NULL, 0, 2000, &r, &err) == 0) {
            const msgpack_object *o = cairn_obj_get(cairn_reply_object(r), "ok");
            ok = o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
        }
        cairn_reply_destroy(&r);
        if (!ok) nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    CHECK(ok, "cairnd is not healthy again after SIGSTOP/SIGCONT");
}

/* ---- nothing listening ---------------------------------------------------- */

/* The workspace a client's requests carry: its option, $CAIRN_WORKSPACE,
 * cairn_client_set_workspace; none is `default` (echo.info says which). */
static const char *s_workspace_seen(cairn_client_t *c, char *out, size_t cap)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    out[0] = '\0';
    if (cairn_client_call(c, "echo", "info", NULL, 0, 0, &r, &err) == 0) {
        const msgpack_object *w = cairn_obj_get(cairn_reply_object(r), "workspace");
        if (w && w->type == MSGPACK_OBJECT_STR)
            snprintf(out, cap, "%.*s", (int)w->via.str.size, w->via.str.ptr);
    }
    cairn_reply_destroy(&r);
    return out;
}

static void test_workspace(const harness_kernel_t *k)
{
    char seen[80];
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new_opts(
        &(cairn_client_opts_t){.endpoint = k->endpoint, .workspace = "team-w"}, &err);
    CHECK(c != NULL, "cairn_client_new_opts: %s", err.msg);
    if (!c) return;
    CHECK(!strcmp(s_workspace_seen(c, seen, sizeof seen), "team-w"), "opts: %s", seen);
    cairn_client_set_workspace(c, NULL);
    CHECK(!strcmp(s_workspace_seen(c, seen, sizeof seen), "default"), "none: %s", seen);
    cairn_client_destroy(&c);
    setenv("CAIRN_WORKSPACE", "from-env", 1);
    c = cairn_client_new(k->endpoint, NULL, &err);
    unsetenv("CAIRN_WORKSPACE");
    CHECK(c != NULL, "cairn_client_new: %s", err.msg);
    if (!c) return;
    CHECK(!strcmp(s_workspace_seen(c, seen, sizeof seen), "from-env"), "env: %s", seen);
    cairn_client_set_workspace(c, "set-later");
    CHECK(!strcmp(s_workspace_seen(c, seen, sizeof seen), "set-later"), "set: %s",
          seen);
    cairn_client_destroy(&c);
}

static void test_nothing_listening(void)
{
    int port = harness_free_port();
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(ep, NULL, &err);
    CHECK(c != NULL, "client for %s: %s", ep, err.msg);
    if (!c) return;
    const uint32_t ttl = 500;
    cairn_reply_t *r = NULL;
    uint64_t t0 = harness_now_ms();
    int rc = cairn_client_call(c, "sys", "ping", NULL, 0, ttl, &r, &err);
    uint64_t dt = harness_now_ms() - t0;
    CHECK(rc == -1 && err.st == 504, "nothing listening: rc %d st %d %s", rc, err.st,
          err.msg);
    CHECK(err.code[0] != '\0' && err.msg[0] != '\0',
          "local 504 lacks code or sentence");
    CHECK(r == NULL, "a reply came from nowhere");
    CHECK(dt >= ttl, "the local 504 came after %llu ms, before the ttl",
          (unsigned long long)dt);
    CHECK(dt <= ttl + 1000 + 300, "the local 504 took %llu ms (ttl %u + 1 s)",
          (unsigned long long)dt, ttl);
    /* recv with a timeout: also a local 504. */
    t0 = harness_now_ms();
    rc = cairn_client_recv(c, 200, &r, &err);
    dt = harness_now_ms() - t0;
    CHECK(rc == -1 && err.st == 504 && dt < 1200,
          "recv on nothing: rc %d st %d %llu ms", rc, err.st, (unsigned long long)dt);
    cairn_client_destroy(&c);
    cairn_client_destroy(&c); /* safe twice */
    CHECK(c == NULL, "cairn_client_destroy leaves the pointer set");

    /* A bad endpoint fails at once with a sentence. */
    c = cairn_client_new("not-an-endpoint", NULL, &err);
    CHECK(c == NULL && err.st >= 400 && err.msg[0], "a bad endpoint was accepted");
    cairn_client_destroy(&c);
}

/* ---- stopping with a deferred request in flight ------------------------------ */

/* SIGTERM while a plugin holds a deferred request: cairnd must still exit 0.
 * (Under ASan a deferred request that the runtime never releases shows up
 * as a leak and a non-zero exit.) */
static void test_stop_with_deferred(void)
{
    harness_kernel_t k;
    if (harness_start(&k, HARNESS_ECHO_INPROC) != 0) {
        CHECK(false, "a second cairnd did not start");
        return;
    }
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(k.endpoint, NULL, &err);
    CHECK(c != NULL, "client: %s", err.msg);
    if (c) {
        msgpack_sbuffer sb;
        pack_uint_map(&sb, "ms", 20000);
        uint64_t id;
        CHECK(cairn_client_send(c, "echo", "sleep", sb.data, sb.size, 30000, &id,
                                &err) == 0,
              "send sleep: %s", err.msg);
        msgpack_sbuffer_destroy(&sb);
        /* The echo loop takes requests in order: once this call is answered,
         * the sleep has been received and deferred. */
        CHECK(cairn_client_call(c, "echo", "echo", NULL, 0, 5000, NULL, &err) == 0,
              "echo behind the sleep: %s", err.msg);
    }
    int rc = harness_stop(&k);
    CHECK(rc == 0, "cairnd stopped with a deferred request in flight exited %d", rc);
    if (rc != 0) harness_dump_log(&k);
    cairn_client_destroy(&c);
    harness_cleanup(&k);
}

int main(void)
{
    harness_kernel_t k;
    if (harness_start(&k, HARNESS_ECHO_INPROC) != 0) {
        CHECK(false, "cairnd did not start");
        return harness_summary();
    }
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(k.endpoint, NULL, &err);
    CHECK(c != NULL, "cairn_client_new: %s", err.msg);
    if (c) {
        test_ping(c);
        test_services(c);
        test_health(c);
        test_echo(c);
        test_errors(c);
        test_error_body(c);
        test_pipelining(c);
        test_stash(c);
        test_abandoned_reply(&k, c);
        /* The kernel must still be healthy after all that. */
        test_health(c);
        cairn_client_destroy(&c);
    }
    test_workspace(&k);
    test_nothing_listening();
    /* Let the plugin send its late reply to the 3 s sleep before stopping, so
     * that this kernel's exit status is about the rest of the test; stopping
     * with a request in flight is test_stop_with_deferred's subject. */
    while (s_late_reply_at && harness_now_ms() < s_late_reply_at + 500) {
        cairn_err_t e = {0};
        cairn_client_t *p = cairn_client_new(k.endpoint, NULL, &e);
        if (p) cairn_client_call(p, "sys", "ping", NULL, 0, 1000, NULL, &e);
        cairn_client_destroy(&p);
        if (harness_now_ms() < s_late_reply_at + 500) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    int rc = harness_stop(&k);
    CHECK(rc == 0, "cairnd exited with %d after SIGTERM", rc);
    if (harness_failed) harness_dump_log(&k);
    harness_cleanup(&k);
    test_stop_with_deferred();
    return harness_summary();
}
