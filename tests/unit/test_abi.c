/* The plugin ABI across versions, from the plugin's side: the built echo
 * plugin (compiled with today's plugin.h) run against host tables cut short
 * at every function, as a host built before that function existed would
 * pass. Functions past the cut are NULL, so an unchecked call crashes this
 * test; a checked one gives its fallback. (The other direction, a plugin
 * whose descriptor is shorter than today's, is test_loader's.) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/plugin.h"
#include "unit.h"

enum { VIA_NONE, VIA_REPLY, VIA_ERROR, VIA_ERR, VIA_ERROR_BODY };

typedef struct fake_req {
    msgpack_object body;
    int via, st;
    size_t body_len;
} fake_req_t;

static int s_calls_past_base; /* functions past the base the plugin reached */

static const msgpack_object *f_body(const cairn_req_t *r)
{
    return &((const fake_req_t *)r)->body;
}
static const char *f_verb(const cairn_req_t *r)
{
    (void)r;
    return "info";
}
static const char *f_principal(const cairn_req_t *r)
{
    (void)r;
    return "local";
}
static bool f_has_role(const cairn_req_t *r, const char *role)
{
    (void)r;
    return strcmp(role, "Owner") == 0;
}
static const char *f_workspace(const cairn_req_t *r)
{
    (void)r;
    return "default";
}
static const char *f_cid(const cairn_req_t *r)
{
    (void)r;
    return "c1";
}
static uint64_t f_deadline(const cairn_req_t *r)
{
    (void)r;
    return cairn_now_ms() + 1000;
}
static int f_reply(cairn_req_t *r, int st, const void *b, size_t n)
{
    (void)b;
    fake_req_t *q = (fake_req_t *)r;
    q->via = VIA_REPLY, q->st = st, q->body_len = n;
    return 0;
}
static int f_reply_error(cairn_req_t *r, int st, const char *code, const char *msg)
{
    (void)code, (void)msg;
    fake_req_t *q = (fake_req_t *)r;
    q->via = VIA_ERROR, q->st = st;
    return 0;
}
static int f_reply_err(cairn_req_t *r, const cairn_err_t *e)
{
    fake_req_t *q = (fake_req_t *)r;
    q->via = VIA_ERR, q->st = e->st;
    return 0;
}
static void f_defer(cairn_req_t *r)
{
    (void)r;
}
static const char *f_service(const cairn_ctx_t *c)
{
    (void)c;
    return "echo";
}
static const char *f_conf(const cairn_ctx_t *c, const char *key)
{
    (void)c;
    if (!strcmp(key, "greeting")) return "hello";
    if (!strcmp(key, "inline")) return "false"; /* init then drops flags */
    return "false";
}
static void f_log(cairn_ctx_t *c, int level, const char *fmt, ...)
{
    (void)c, (void)level, (void)fmt;
}
static int f_call(cairn_ctx_t *c, const char *svc, const char *verb, const void *b,
                  size_t n, uint32_t ttl, cairn_result_fn *cb, void *arg,
                  cairn_err_t *e)
{
    (void)c, (void)svc, (void)verb, (void)b, (void)n, (void)ttl, (void)cb, (void)arg;
    s_calls_past_base++;
    return cairn_err_set(e, 503, "unavailable", "the fake host has no kernel");
}
static int f_publish(cairn_ctx_t *c, const char *t, const void *b, size_t n)
{
    (void)c, (void)t, (void)b, (void)n;
    s_calls_past_base++;
    return 0;
}
static int f_subscribe(cairn_ctx_t *c, const char *p, cairn_event_fn *cb, void *a,
                       cairn_err_t *e)
{
    (void)c, (void)p, (void)cb, (void)a, (void)e;
    s_calls_past_base++;
    return 0;
}
static uint64_t f_timer_add(cairn_ctx_t *c, uint32_t a, uint32_t r, cairn_timer_fn *cb,
                            void *arg)
{
    (void)c, (void)a, (void)r, (void)cb, (void)arg;
    s_calls_past_base++;
    return 1;
}
static void f_timer_cancel(cairn_ctx_t *c, uint64_t id)
{
    (void)c, (void)id;
    s_calls_past_base++;
}
static cairn_ctx_t *f_req_ctx(const cairn_req_t *r)
{
    (void)r;
    s_calls_past_base++;
    return NULL;
}
static const char *f_role(const cairn_ctx_t *c)
{
    (void)c;
    s_calls_past_base++;
    return NULL;
}
static const char *f_state_dir(const cairn_ctx_t *c)
{
    (void)c;
    s_calls_past_base++;
    return "/tmp";
}
static void f_drop_flags(cairn_ctx_t *c, const char *v, uint32_t f)
{
    (void)c, (void)v, (void)f;
    s_calls_past_base++;
}
static int f_reply_error_body(cairn_req_t *r, int st, const char *code, const char *msg,
                              const void *b, size_t n)
{
    (void)code, (void)msg, (void)b;
    fake_req_t *q = (fake_req_t *)r;
    q->via = VIA_ERROR_BODY, q->st = st, q->body_len = n;
    s_calls_past_base++;
    return 0;
}
static bool f_req_inline(const cairn_req_t *r)
{
    (void)r;
    s_calls_past_base++;
    return false;
}

typedef struct fake_settings {
    const char *greeting;
    bool allow_crash, inline_verbs;
} fake_settings_t;
static const fake_settings_t s_settings = {"hello", false, false};

static void f_set_object(cairn_req_t *r, const char *object)
{
    (void)r;
    (void)object;
}

static const void *f_settings(const cairn_ctx_t *c)
{
    (void)c;
    s_calls_past_base++;
    return &s_settings;
}

static const cairn_api_t s_full = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_api_t),
    .body = f_body,
    .verb = f_verb,
    .principal = f_principal,
    .has_role = f_has_role,
    .workspace = f_workspace,
    .correlation_id = f_cid,
    .deadline_ms = f_deadline,
    .reply = f_reply,
    .reply_error = f_reply_error,
    .reply_err = f_reply_err,
    .defer = f_defer,
    .service = f_service,
    .conf = f_conf,
    .log = f_log,
    .call = f_call,
    .publish = f_publish,
    .subscribe = f_subscribe,
    .timer_add = f_timer_add,
    .timer_cancel = f_timer_cancel,
    .req_ctx = f_req_ctx,
    .role = f_role,
    .state_dir = f_state_dir,
    .verb_drop_flags = f_drop_flags,
    .reply_error_body = f_reply_error_body,
    .req_inline = f_req_inline,
    .settings = f_settings,
    .set_object = f_set_object,
};

/* A host table that stops at size bytes: the rest is NULL. */
static cairn_api_t s_cut(size_t size)
{
    cairn_api_t t = s_full;
    memset((char *)&t + size, 0, sizeof t - size);
    t.size = (uint32_t)size;
    return t;
}

static void *s_echo_dl(void)
{
    const char *b = getenv("CAIRN_BUILD_DIR");
    if (!b) return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/lib/cairn/plugins/cairn_echo.so", b);
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

static const cairn_verb_t *s_verb(const cairn_plugin_t *p, const char *name)
{
    for (const cairn_verb_t *v = p->verbs; v->name; v++)
        if (!strcmp(v->name, name)) return v;
    return NULL;
}

/* Run verb with a body packed by the caller into sb; returns the fake req. */
static fake_req_t s_run(const cairn_plugin_t *p, void *state, const char *verb,
                        const msgpack_sbuffer *sb)
{
    fake_req_t q = {.via = VIA_NONE};
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    size_t off = 0;
    q.body.type = MSGPACK_OBJECT_NIL;
    if (sb && sb->size) msgpack_unpack(sb->data, sb->size, &off, &zone, &q.body);
    const cairn_verb_t *v = s_verb(p, verb);
    cairn_err_t err = {0};
    /* As the runtime does: a handler's -1 is answered with its err. */
    if (v && v->handle(state, (cairn_req_t *)&q, &err) != 0 && q.via == VIA_NONE)
        q.via = VIA_ERR, q.st = err.st;
    msgpack_zone_destroy(&zone);
    return q;
}

TEST(older_hosts_get_fallbacks)
{
    void *dl = s_echo_dl();
    if (!dl) {
        printf("     SKIP: no built echo plugin (run through ctest)\n");
        return;
    }
    cairn_plugin_entry_fn *entry;
    *(void **)&entry = dlsym(dl, CAIRN_PLUGIN_ENTRY_SYMBOL); /* POSIX's way */
    if (!CHECK(entry)) return;

    /* Shorter than every host of this ABI: refused. */
    cairn_api_t tiny = s_cut(CAIRN_API_BASE_SIZE - sizeof(void *));
    CHECK(entry(&tiny) == NULL);

    msgpack_sbuffer fail_body;
    msgpack_sbuffer_init(&fail_body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fail_body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "st");
    msgpack_pack_uint32(&pk, 409);
    cairn_pack_cstr(&pk, "body");
    msgpack_pack_map(&pk, 0);
    msgpack_sbuffer relay_body;
    msgpack_sbuffer_init(&relay_body);
    msgpack_packer_init(&pk, &relay_body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "svc", "sys");
    cairn_pack_kv_str(&pk, "verb", "ping");

    int cuts = 0;
    for (size_t size = CAIRN_API_BASE_SIZE; size <= sizeof(cairn_api_t);
         size += sizeof(void *), cuts++) {
        cairn_api_t host = s_cut(size);
        const cairn_plugin_t *p = entry(&host);
        if (!CHECK(p)) continue;
        void *state = NULL;
        cairn_err_t err = {0};
        s_calls_past_base = 0;
        /* Echo needs typed settings: a host without them is refused in init
         * with a sentence, not a crash. */
        if (size < offsetof(cairn_api_t, settings) + sizeof(void *)) {
            CHECK(p->init((cairn_ctx_t *)&host, &state, &err) == -1);
            CHECK_STR(err.code, CAIRN_E_UNSUPPORTED);
            continue;
        }
        if (!CHECK(p->init((cairn_ctx_t *)&host, &state, &err) == 0)) continue;
        fake_req_t q = s_run(p, state, "info", NULL);
        CHECK_EQ(q.via, VIA_REPLY);
        CHECK_EQ(q.st, 200);
        /* An error with a body: the body where the host has the function,
         * else the error alone. */
        q = s_run(p, state, "fail", &fail_body);
        bool has_body =
            size >= offsetof(cairn_api_t, reply_error_body) + sizeof(void *);
        CHECK_EQ(q.via, has_body ? VIA_ERROR_BODY : VIA_ERROR);
        CHECK_EQ(q.st, 409);
        /* A nested call: refused with a sentence where the host has none. */
        q = s_run(p, state, "relay", &relay_body);
        CHECK(q.via != VIA_NONE);
        CHECK(q.st >= 500);
        p->fini(state);
    }
    CHECK_EQ(cuts,
             (int)((sizeof(cairn_api_t) - CAIRN_API_BASE_SIZE) / sizeof(void *)) + 1);
    CHECK(s_calls_past_base > 0); /* the full table was used in full */
    msgpack_sbuffer_destroy(&fail_body);
    msgpack_sbuffer_destroy(&relay_body);
    dlclose(dl);
}

int main(void)
{
    RUN(older_hosts_get_fallbacks);
    return unit_report();
}
