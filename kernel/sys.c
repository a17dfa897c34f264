/* The sys service, served by the kernel itself (docs/PROTOCOL.md, "The sys
 * service"). */
#include <string.h>

#include "broker_int.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.0.0"
#endif

static void s_ping(broker_t *b, msgpack_packer *pk)
{
    (void)b;
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "pong");
    msgpack_pack_true(pk);
    cairn_pack_kv_str(pk, "version", CAIRN_VERSION);
}

static void s_services(broker_t *b, msgpack_packer *pk);
static void s_health(broker_t *b, msgpack_packer *pk);

/* The sys service's verbs: a table like any plugin's, so that sys.services
 * lists them with their permissions and flags, and authorization reads
 * them from here, not from the routing code. */
typedef struct sys_verb {
    verb_info_t info;
    void (*serve)(broker_t *b, msgpack_packer *pk);
} sys_verb_t;

#define SYS_OPEN (CAIRN_VERB_PUBLIC | CAIRN_VERB_IDEMPOTENT)
static const sys_verb_t s_verbs[] = {
    {.info = {.name = "ping", .flags = SYS_OPEN}, .serve = s_ping},
    {.info = {.name = "services", .perm = "sys.read", .flags = CAIRN_VERB_IDEMPOTENT},
     .serve = s_services},
    {.info = {.name = "health", .flags = SYS_OPEN}, .serve = s_health},
};
#define SYS_NVERBS (sizeof s_verbs / sizeof s_verbs[0])

/* "verb": ["mutating", "idempotent", "public", "inline"] (those it has). */
static void s_pack_flags(msgpack_packer *pk, const verb_info_t *v)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{CAIRN_VERB_MUTATING, "mutating"},
                 {CAIRN_VERB_IDEMPOTENT, "idempotent"},
                 {CAIRN_VERB_PUBLIC, "public"},
                 {CAIRN_VERB_INLINE, "inline"}};
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (v->flags & names[i].bit) n++;
    cairn_pack_cstr(pk, v->name);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (v->flags & names[i].bit) cairn_pack_cstr(pk, names[i].name);
}

static void s_services(broker_t *b, msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "services");
    msgpack_pack_array(pk, b->nservices + 1);
    msgpack_pack_map(pk, 7);
    cairn_pack_kv_str(pk, "name", "sys");
    cairn_pack_kv_str(pk, "plugin", "cairnd");
    cairn_pack_kv_str(pk, "mode", "inproc");
    cairn_pack_kv_str(pk, "state", "up");
    cairn_pack_cstr(pk, "verbs");
    msgpack_pack_array(pk, SYS_NVERBS);
    for (size_t i = 0; i < SYS_NVERBS; i++) cairn_pack_cstr(pk, s_verbs[i].info.name);
    cairn_pack_cstr(pk, "perms");
    msgpack_pack_map(pk, SYS_NVERBS);
    for (size_t i = 0; i < SYS_NVERBS; i++)
        cairn_pack_kv_str(pk, s_verbs[i].info.name,
                          s_verbs[i].info.perm ? s_verbs[i].info.perm : "");
    cairn_pack_cstr(pk, "flags");
    msgpack_pack_map(pk, SYS_NVERBS);
    for (size_t i = 0; i < SYS_NVERBS; i++) s_pack_flags(pk, &s_verbs[i].info);
    for (size_t i = 0; i < b->nservices; i++) {
        const service_t *s = &b->services[i];
        msgpack_pack_map(pk, 7);
        cairn_pack_kv_str(pk, "name", s->conf->name);
        cairn_pack_kv_str(pk, "plugin", s->conf->plugin);
        cairn_pack_kv_str(pk, "mode", conf_mode_name(s->conf->mode));
        cairn_pack_kv_str(pk, "state", svc_state_name(s->state));
        cairn_pack_cstr(pk, "verbs");
        msgpack_pack_array(pk, s->nverbs);
        for (size_t j = 0; j < s->nverbs; j++) cairn_pack_cstr(pk, s->verbs[j].name);
        cairn_pack_cstr(pk, "perms");
        msgpack_pack_map(pk, s->nverbs);
        for (size_t j = 0; j < s->nverbs; j++)
            cairn_pack_kv_str(pk, s->verbs[j].name,
                              s->verbs[j].perm ? s->verbs[j].perm : "");
        cairn_pack_cstr(pk, "flags");
        msgpack_pack_map(pk, s->nverbs);
        for (size_t j = 0; j < s->nverbs; j++) s_pack_flags(pk, &s->verbs[j]);
    }
}

static void s_health(broker_t *b, msgpack_packer *pk)
{
    bool ok = true;
    for (size_t i = 0; i < b->nservices; i++)
        if (b->services[i].state != SVC_UP) ok = false;
    msgpack_pack_map(pk, 4);
    cairn_pack_cstr(pk, "ok");
    if (ok)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    cairn_pack_cstr(pk, "pending");
    msgpack_pack_uint64(pk, pending_count(b->pending));
    cairn_pack_cstr(pk, "memory"); /* what clients cost the kernel (clients.h) */
    msgpack_pack_map(pk, 4);
    cairn_pack_cstr(pk, "queued_bytes");
    msgpack_pack_uint64(pk, clients_queued_total(b->clients));
    cairn_pack_cstr(pk, "unsent_bytes");
    msgpack_pack_uint64(pk, clients_unsent_total(b->clients));
    cairn_pack_cstr(pk, "clients");
    msgpack_pack_uint64(pk, clients_count(b->clients));
    cairn_pack_cstr(pk, "replies_dropped");
    msgpack_pack_uint64(pk, b->replies_dropped);
    cairn_pack_cstr(pk, "plugins");
    msgpack_pack_array(pk, b->nservices);
    for (size_t i = 0; i < b->nservices; i++) {
        const service_t *s = &b->services[i];
        uint32_t inflight = 0;
        for (const worker_t *w = s->workers; w; w = w->next) inflight += w->inflight;
        msgpack_pack_map(pk, 8);
        cairn_pack_kv_str(pk, "name", s->conf->name);
        cairn_pack_kv_str(pk, "state", svc_state_name(s->state));
        cairn_pack_cstr(pk, "restarts");
        msgpack_pack_uint32(pk, s->restarts);
        cairn_pack_kv_str(pk, "mode", conf_mode_name(s->conf->mode));
        cairn_pack_cstr(pk, "pid");
        msgpack_pack_int64(pk, s->pid);
        cairn_pack_cstr(pk, "inflight");
        msgpack_pack_uint32(pk, inflight);
        cairn_pack_cstr(pk, "queued");
        msgpack_pack_uint32(pk, s->qlen);
        cairn_pack_kv_str(pk, "error", s->last_error);
    }
}

int sys_handle(broker_t *b, cairn_str_t verb, sys_caller_t *caller,
               msgpack_sbuffer *body, cairn_err_t *err)
{
    const sys_verb_t *v = NULL;
    for (size_t i = 0; i < SYS_NVERBS && !v; i++)
        if (cairn_str_eq(verb, s_verbs[i].info.name)) v = &s_verbs[i];
    if (!v)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NO_VERB,
                             "the service 'sys' has no verb '%.*s' (it has ping, "
                             "services, health)",
                             (int)verb.len, verb.ptr);
    const char *perm = (v->info.flags & CAIRN_VERB_PUBLIC) ? NULL : v->info.perm;
    authz_principal_t who = {.sub = ""};
    int rc = caller->who
                 ? authz_permits(b->authz, caller->who, perm, err)
                 : authz_check(b->authz, caller->tok, caller->ws, perm, &who, err);
    if (rc != 0) {
        caller->refused_sub = caller->who ? caller->who->sub : who.sub ? who.sub : "";
        return -1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, body, msgpack_sbuffer_write);
    v->serve(b, &pk);
    return 0;
}
