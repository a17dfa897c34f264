/* The echo plugin: diagnostics for the bus. It echoes bodies (the bench's
 * peer), sleeps without blocking its loop (deadline tests), calls other
 * services through the kernel, publishes events, answers errors that carry
 * a body, and can crash on request (supervision tests; only when its conf
 * allows it). */
#define _GNU_SOURCE
#define CAIRN_PLUGIN_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/plugin.h"

/* The settings, typed: the runtime parses them into this struct before
 * init (echo_settings, below, says how). */
typedef struct echo_settings {
    const char *greeting;
    bool allow_crash;
    bool inline_verbs;
} echo_settings_t;

#define ECHO_AT(f) offsetof(echo_settings_t, f)
static const cairn_setting_t echo_settings[] = {
    {.key = "greeting",
     .type = CAIRN_CONF_STR,
     .offset = ECHO_AT(greeting),
     .dflt = "hello",
     .help = "a string info reports"},
    {.key = "allow_crash",
     .type = CAIRN_CONF_BOOL,
     .offset = ECHO_AT(allow_crash),
     .dflt = "false",
     .help = "enable the crash and block verbs"},
    {.key = "inline",
     .type = CAIRN_CONF_BOOL,
     .offset = ECHO_AT(inline_verbs),
     .dflt = "true",
     .help = "false: serve the *_inline verbs without CAIRN_VERB_INLINE (always on the "
             "plugin's thread)"},
    {.key = NULL},
};

typedef struct echo {
    cairn_ctx_t *ctx;
    const char *greeting; /* borrowed from the settings */
    bool allow_crash;
    uint64_t served;
} echo_t;

static int echo_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const echo_settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(
            err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
            "this host predates typed settings; echo needs a newer one");
    echo_t *e = calloc(1, sizeof *e);
    if (!e) return cairn_err_oom(err, NULL);
    e->ctx = ctx;
    e->greeting = set->greeting;
    e->allow_crash = set->allow_crash;
    if (!set->inline_verbs) /* shows verb_drop_flags */
        for (const char *const *v =
                 (const char *const[]){"echo_inline", "sleep_inline", "relay_inline",
                                       "fail_inline", NULL};
             *v; v++)
            cairn_verb_drop_flags(ctx, *v, CAIRN_VERB_INLINE);
    *state = e;
    return 0;
}

static void echo_fini(void *state)
{
    free(state);
}

/* echo: the body back, as sent (nil stays nil). */
static int echo_echo(void *state, cairn_req_t *req, cairn_err_t *err)
{
    (void)err; /* this verb cannot fail */
    echo_t *e = state;
    e->served++;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const msgpack_object *body = cairn_body(req);
    if (body->type != MSGPACK_OBJECT_NIL) msgpack_pack_object(&pk, *body);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sb);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* info: who asked, and this instance's settings. */
static int echo_info(void *state, cairn_req_t *req, cairn_err_t *err)
{
    (void)err; /* this verb cannot fail */
    echo_t *e = state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    cairn_pack_kv_str(&pk, "service", cairn_service(e->ctx));
    cairn_pack_kv_str(&pk, "cid", cairn_correlation_id(req));
    cairn_pack_kv_str(&pk, "greeting", e->greeting);
    cairn_pack_kv_str(&pk, "principal", cairn_principal(req));
    cairn_pack_kv_str(&pk, "workspace", cairn_workspace(req));
    cairn_pack_cstr(&pk, "pid");
    msgpack_pack_int64(&pk, (int64_t)getpid());
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sb);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

static void echo_wake(void *arg)
{
    cairn_req_t *req = arg;
    cairn_reply(req, CAIRN_ST_OK, NULL, 0);
}

/* sleep {ms*}: answer after ms without blocking the loop. */
static int echo_sleep(void *state, cairn_req_t *req, cairn_err_t *err)
{
    echo_t *e = state;
    uint64_t ms;
    if (cairn_field_uint(cairn_body(req), "ms", true, &ms, err) != 0) return -1;
    if (ms > 600000)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "ms is at most 600000");
    cairn_defer(req);
    cairn_timer_add(e->ctx, (uint32_t)ms, 0, echo_wake, req);
    return 0;
}

/* block {ms*}: hold the loop thread (a hung handler, for heartbeat tests). */
static int echo_block(void *state, cairn_req_t *req, cairn_err_t *err)
{
    echo_t *e = state;
    uint64_t ms;
    if (!e->allow_crash)
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "block is disabled (settings.allow_crash: false)");
    if (cairn_field_uint(cairn_body(req), "ms", true, &ms, err) != 0) return -1;
    uint64_t until = cairn_now_ms() + (ms > 60000 ? 60000 : ms);
    while (cairn_now_ms() < until) usleep(1000);
    cairn_reply(req, CAIRN_ST_OK, NULL, 0);
    return 0;
}

/* crash: die at once, as a buggy plugin would. */
static int echo_crash(void *state, cairn_req_t *req, cairn_err_t *err)
{
    echo_t *e = state;
    if (!e->allow_crash)
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "crash is disabled (settings.allow_crash: false)");
    (void)req; /* never answered: the process dies */
    raise(SIGKILL);
    return 0;
}

typedef struct relay {
    cairn_req_t *req;
} relay_t;

/* The nested call's answer, as it came (an error's body included). */
static void echo_relayed(void *arg, int st, const char *code, const char *err,
                         const msgpack_object *body)
{
    relay_t *r = arg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (body->type != MSGPACK_OBJECT_NIL) msgpack_pack_object(&pk, *body);
    if (st >= CAIRN_ST_BAD_REQUEST)
        cairn_reply_error_sbuf(r->req, st, code, err, &sb);
    else
        cairn_reply_sbuf(r->req, st, &sb);
    msgpack_sbuffer_destroy(&sb);
    free(r);
}

/* relay {svc*, verb*, body}: a nested call through the kernel. */
static int echo_relay(void *state, cairn_req_t *req, cairn_err_t *err)
{
    echo_t *e = state;
    cairn_str_t svc, verb;
    const msgpack_object *b = cairn_body(req);
    if (cairn_field_str(b, "svc", true, 64, &svc, err) != 0 ||
        cairn_field_str(b, "verb", true, 64, &verb, err) != 0)
        return -1;
    char s[65], v[65];
    memcpy(s, svc.ptr, svc.len);
    s[svc.len] = '\0';
    memcpy(v, verb.ptr, verb.len);
    v[verb.len] = '\0';
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const msgpack_object *inner = cairn_obj_get(b, "body");
    if (inner) msgpack_pack_object(&pk, *inner);
    relay_t *r = malloc(sizeof *r);
    if (!r) {
        msgpack_sbuffer_destroy(&sb);
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                             "out of memory");
    }
    r->req = req;
    cairn_defer(req);
    uint64_t left = cairn_deadline_ms(req) - cairn_now_ms();
    int rc = cairn_call(e->ctx, s, v, sb.data, sb.size, (uint32_t)left, echo_relayed, r,
                        err);
    if (rc != 0) free(r); /* the runtime answers err, deferred or not */
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* fail {st*, code, err, body}: an error reply (st >= 400) carrying body
 * (none when absent). */
static int echo_fail(void *state, cairn_req_t *req, cairn_err_t *err)
{
    (void)state;
    uint64_t st;
    cairn_str_t code = {"", 0}, msg = {"", 0};
    const msgpack_object *b = cairn_body(req);
    if (cairn_field_uint(b, "st", true, &st, err) != 0 ||
        cairn_field_str(b, "code", false, 63, &code, err) < 0 ||
        cairn_field_str(b, "err", false, 255, &msg, err) < 0)
        return -1;
    if (st < CAIRN_ST_BAD_REQUEST || st > 599)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "st must be from 400 to 599");
    char c[64], m[256];
    snprintf(c, sizeof c, "%.*s", (int)code.len, code.ptr);
    snprintf(m, sizeof m, "%.*s", (int)msg.len, msg.ptr);
    const msgpack_object *inner = cairn_obj_get(b, "body");
    if (!inner) return cairn_err_set(err, (int)st, c, "%s", m);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *inner);
    cairn_reply_error_sbuf(req, (int)st, c, m, &sb);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* publish {topic*, body}: put an event on the bus. */
static int echo_publish(void *state, cairn_req_t *req, cairn_err_t *err)
{
    echo_t *e = state;
    cairn_str_t topic;
    const msgpack_object *b = cairn_body(req);
    if (cairn_field_str(b, "topic", true, 120, &topic, err) != 0) return -1;
    char t[121];
    memcpy(t, topic.ptr, topic.len);
    t[topic.len] = '\0';
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const msgpack_object *inner = cairn_obj_get(b, "body");
    if (inner)
        msgpack_pack_object(&pk, *inner);
    else
        msgpack_pack_nil(&pk);
    cairn_publish(e->ctx, t, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    cairn_reply(req, CAIRN_ST_OK, NULL, 0);
    return 0;
}

static const cairn_verb_t echo_verbs[] = {
    {.name = "echo",
     .handle = echo_echo,
     .perm = "echo.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "the body back"},
    {.name = "info",
     .handle = echo_info,
     .perm = "echo.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "caller and settings"},
    {.name = "sleep",
     .handle = echo_sleep,
     .perm = "echo.read",
     .help = "reply after {ms} milliseconds"},
    {.name = "block",
     .handle = echo_block,
     .perm = "echo.admin",
     .flags = CAIRN_VERB_MUTATING, /* audited: a test times one out */
     .help = "hold the loop for {ms} (tests)"},
    {.name = "crash",
     .handle = echo_crash,
     .perm = "echo.admin",
     .help = "kill this plugin's process (tests)"},
    {.name = "relay",
     .handle = echo_relay,
     .perm = "echo.write",
     .help = "call {svc, verb, body} via the kernel"},
    {.name = "publish",
     .handle = echo_publish,
     .perm = "echo.write",
     .help = "publish {topic, body}"},
    {.name = "small",
     .handle = echo_echo,
     .perm = "echo.read",
     .max_body = 1024,
     .help = "echo with a 1 KiB body limit"},
    {.name = "fail",
     .handle = echo_fail,
     .perm = "echo.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "an error reply {st, code, err} carrying {body}"},
    /* The same handlers flagged INLINE: served on the kernel's thread when
     * inproc and idle (tests and bench_bus). */
    {.name = "echo_inline",
     .handle = echo_echo,
     .perm = "echo.read",
     .flags = CAIRN_VERB_IDEMPOTENT | CAIRN_VERB_INLINE,
     .help = "echo, INLINE"},
    {.name = "sleep_inline",
     .handle = echo_sleep,
     .perm = "echo.read",
     .flags = CAIRN_VERB_INLINE,
     .help = "sleep, INLINE"},
    {.name = "relay_inline",
     .handle = echo_relay,
     .perm = "echo.write",
     .flags = CAIRN_VERB_INLINE,
     .help = "relay, INLINE: refused (no nested calls inside INLINE verbs)"},
    {.name = "fail_inline",
     .handle = echo_fail,
     .perm = "echo.read",
     .flags = CAIRN_VERB_IDEMPOTENT | CAIRN_VERB_INLINE,
     .help = "fail, INLINE"},
    {.name = NULL},
};

static const cairn_plugin_t echo_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "echo",
    .version = "1.0.0",
    .description = "bus diagnostics: echo, sleep, relay, publish, fail",
    .verbs = echo_verbs,
    .settings = echo_settings,
    .settings_size = sizeof(echo_settings_t),
    .init = echo_init,
    .fini = echo_fini,
    .concurrency = 1024,
};

CAIRN_PLUGIN_DEFINE(echo_plugin)
