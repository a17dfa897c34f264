/* The worker protocol's headers, packed and parsed in one place (wire.h). */
#include "wire.h"

#include <string.h>

/* ---- field helpers --------------------------------------------------------- */

/* A string field: 0 (found), 1 (absent or nil), -1 (another type). */
static int s_str(const msgpack_object *h, const char *key, cairn_str_t *out)
{
    const msgpack_object *v = cairn_obj_get(h, key);
    *out = (cairn_str_t){"", 0};
    if (!v || v->type == MSGPACK_OBJECT_NIL) return 1;
    if (v->type != MSGPACK_OBJECT_STR) return -1;
    *out = (cairn_str_t){v->via.str.ptr, v->via.str.size};
    return 0;
}

/* An unsigned field: 0 (found), 1 (absent), -1 (another type). */
static int s_uint(const msgpack_object *h, const char *key, uint64_t *out)
{
    const msgpack_object *v = cairn_obj_get(h, key);
    *out = 0;
    if (!v || v->type == MSGPACK_OBJECT_NIL) return 1;
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return -1;
    *out = v->via.u64;
    return 0;
}

static uint32_t s_u32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void s_kv_slice(msgpack_packer *pk, const char *key, cairn_str_t v)
{
    cairn_pack_cstr(pk, key);
    cairn_pack_strn(pk, v.ptr ? v.ptr : "", v.ptr ? v.len : 0);
}

static void s_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
    cairn_pack_cstr(pk, key);
    msgpack_pack_uint64(pk, v);
}

/* ---- HELLO, WELCOME, READY ------------------------------------------------ */

void wire_pack_hello(msgpack_packer *pk, const wire_hello_t *m)
{
    msgpack_pack_map(pk, m->door ? 7 : 6);
    s_kv_slice(pk, "plugin", m->plugin);
    s_kv_slice(pk, "svc", m->svc);
    s_kv_slice(pk, "mode", m->mode);
    s_kv_slice(pk, "version", m->version);
    s_kv_uint(pk, "abi", m->abi);
    cairn_pack_cstr(pk, "pid");
    msgpack_pack_int64(pk, m->pid);
    if (m->door) s_kv_uint(pk, "door", m->door);
}

int wire_parse_hello(const msgpack_object *h, wire_hello_t *m)
{
    uint64_t abi, pid, door;
    memset(m, 0, sizeof *m);
    if (s_str(h, "svc", &m->svc) != 0 || s_str(h, "mode", &m->mode) != 0) return -1;
    if (s_str(h, "plugin", &m->plugin) < 0 || s_str(h, "version", &m->version) < 0)
        return -1;
    m->abi = s_uint(h, "abi", &abi) == 0 ? s_u32(abi) : 0;
    m->pid = s_uint(h, "pid", &pid) == 0 && pid <= INT64_MAX ? (int64_t)pid : 0;
    m->door = s_uint(h, "door", &door) == 0 ? door : 0;
    return 0;
}

void wire_pack_welcome(msgpack_packer *pk, const wire_welcome_t *m)
{
    msgpack_pack_map(pk, 6);
    s_kv_slice(pk, "svc", m->svc);
    s_kv_slice(pk, "state_dir", m->state_dir);
    s_kv_uint(pk, "hb_ms", m->hb_ms);
    s_kv_uint(pk, "liveness", m->liveness);
    cairn_pack_cstr(pk, "settings");
    if (m->settings && m->settings_len)
        pk->callback(pk->data, m->settings, m->settings_len);
    else
        msgpack_pack_map(pk, 0);
    s_kv_slice(pk, "events", m->events);
}

int wire_parse_welcome(const msgpack_object *h, wire_welcome_t *m)
{
    uint64_t v;
    memset(m, 0, sizeof *m);
    if (!h || h->type != MSGPACK_OBJECT_MAP) return -1;
    if (s_str(h, "svc", &m->svc) < 0 || s_str(h, "state_dir", &m->state_dir) < 0 ||
        s_str(h, "events", &m->events) < 0)
        return -1;
    m->hb_ms = s_uint(h, "hb_ms", &v) == 0 ? s_u32(v) : 0;
    m->liveness = s_uint(h, "liveness", &v) == 0 ? s_u32(v) : 0;
    const msgpack_object *set = cairn_obj_get(h, "settings");
    if (set && set->type == MSGPACK_OBJECT_MAP) m->settings_map = set;
    return 0;
}

void wire_pack_ready(msgpack_packer *pk, const cairn_verb_t *verbs,
                     const uint32_t *dropped, uint32_t concurrency)
{
    uint32_t n = 0;
    while (verbs[n].name) n++;
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "verbs");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        const cairn_verb_t *v = &verbs[i];
        msgpack_pack_map(pk, 4);
        cairn_pack_kv_str(pk, "name", v->name);
        cairn_pack_kv_str(pk, "perm", v->perm ? v->perm : "");
        s_kv_uint(pk, "flags", v->flags & ~(dropped ? dropped[i] : 0u));
        s_kv_uint(pk, "max_body", v->max_body);
    }
    s_kv_uint(pk, "concurrency", concurrency);
}

int wire_parse_ready(const msgpack_object *h, const msgpack_object **verbs,
                     uint32_t *concurrency)
{
    uint64_t c;
    const msgpack_object *v = cairn_obj_get(h, "verbs");
    *verbs = NULL;
    *concurrency = s_uint(h, "concurrency", &c) == 0 ? s_u32(c) : 0;
    if (!v || v->type != MSGPACK_OBJECT_ARRAY) return -1;
    *verbs = v;
    return 0;
}

int wire_parse_verb(const msgpack_object *row, wire_verb_t *v)
{
    uint64_t n;
    memset(v, 0, sizeof *v);
    if (s_str(row, "name", &v->name) != 0 || v->name.len == 0) return -1;
    if (s_str(row, "perm", &v->perm) < 0) v->perm = (cairn_str_t){"", 0};
    v->flags = s_uint(row, "flags", &n) == 0 ? s_u32(n) : 0;
    v->max_body = s_uint(row, "max_body", &n) == 0 ? s_u32(n) : 0;
    return 0;
}

/* ---- REQUEST, FINAL, RESULT, CALL ------------------------------------------------ */

void wire_pack_request(msgpack_packer *pk, const wire_request_t *m)
{
    msgpack_pack_map(pk, m->cid.len ? 8 : 7);
    s_kv_uint(pk, "rid", m->rid);
    s_kv_slice(pk, "svc", m->svc);
    s_kv_slice(pk, "verb", m->verb);
    s_kv_slice(pk, "ws", m->ws.len ? m->ws : (cairn_str_t){"default", 7});
    s_kv_slice(pk, "sub", m->sub);
    cairn_pack_cstr(pk, "roles");
    msgpack_pack_array(pk, (size_t)m->nroles);
    for (int i = 0; i < m->nroles; i++)
        cairn_pack_strn(pk, m->roles[i].ptr, m->roles[i].len);
    s_kv_uint(pk, "ttl", m->ttl);
    if (m->cid.len) /* absent: the runtime derives one from rid when asked */
        s_kv_slice(pk, "cid", m->cid);
}

int wire_parse_request(const msgpack_object *h, wire_request_t *m)
{
    memset(m, 0, sizeof *m);
    if (!h || h->type != MSGPACK_OBJECT_MAP || s_uint(h, "rid", &m->rid) != 0)
        return -1;
    if (s_str(h, "svc", &m->svc) < 0 || s_str(h, "verb", &m->verb) < 0 ||
        s_str(h, "ws", &m->ws) < 0 || s_str(h, "sub", &m->sub) < 0 ||
        s_str(h, "cid", &m->cid) < 0 || s_uint(h, "ttl", &m->ttl) < 0)
        return -1;
    const msgpack_object *roles = cairn_obj_get(h, "roles");
    if (!roles || roles->type == MSGPACK_OBJECT_NIL) return 0;
    if (roles->type != MSGPACK_OBJECT_ARRAY || roles->via.array.size > WIRE_MAX_ROLES)
        return -1;
    for (uint32_t i = 0; i < roles->via.array.size; i++) {
        const msgpack_object *r = &roles->via.array.ptr[i];
        if (r->type != MSGPACK_OBJECT_STR) return -1;
        m->roles[m->nroles++] = (cairn_str_t){r->via.str.ptr, r->via.str.size};
    }
    return 0;
}

static void s_pack_outcome(msgpack_packer *pk, const char *idkey, uint64_t id, int st,
                           const char *code, const char *err, const char *obj)
{
    bool failed = st >= CAIRN_ST_BAD_REQUEST, named = obj && *obj;
    msgpack_pack_map(pk, (failed ? 4 : 2) + (named ? 1 : 0));
    if (named) cairn_pack_kv_text(pk, "obj", obj);
    s_kv_uint(pk, idkey, id);
    s_kv_uint(pk, "st", st < 0 ? 500u : (uint64_t)st);
    if (failed) {
        cairn_pack_kv_text(pk, "code",
                           code && *code ? code : cairn_err_default_code(st));
        cairn_pack_kv_text(pk, "err", err && *err ? err : "request failed");
    }
}

void wire_pack_final(msgpack_packer *pk, uint64_t rid, int st, const char *code,
                     const char *err, const char *obj)
{
    s_pack_outcome(pk, "rid", rid, st, code, err, obj);
}

void wire_pack_result(msgpack_packer *pk, uint64_t cid, int st, const char *code,
                      const char *err)
{
    s_pack_outcome(pk, "cid", cid, st, code, err, NULL);
}

static int s_parse_outcome(const msgpack_object *h, const char *idkey,
                           wire_outcome_t *m)
{
    uint64_t st;
    memset(m, 0, sizeof *m);
    if (s_uint(h, idkey, &m->id) != 0) return -1;
    m->st = s_uint(h, "st", &st) == 0 && st <= 999 ? (int)st : 500;
    if (s_str(h, "code", &m->code) < 0) m->code = (cairn_str_t){"", 0};
    if (s_str(h, "err", &m->err) < 0) m->err = (cairn_str_t){"", 0};
    if (s_str(h, "obj", &m->obj) < 0 || m->obj.len > CAIRN_OBJECT_MAX)
        m->obj = (cairn_str_t){"", 0};
    return 0;
}

int wire_parse_final(const msgpack_object *h, wire_outcome_t *m)
{
    return s_parse_outcome(h, "rid", m);
}

int wire_parse_result(const msgpack_object *h, wire_outcome_t *m)
{
    return s_parse_outcome(h, "cid", m);
}

void wire_pack_call(msgpack_packer *pk, const wire_call_t *m)
{
    msgpack_pack_map(pk, m->ws.len ? 5 : 4);
    s_kv_uint(pk, "cid", m->cid);
    s_kv_slice(pk, "svc", m->svc);
    s_kv_slice(pk, "verb", m->verb);
    s_kv_uint(pk, "ttl", m->ttl);
    if (m->ws.len) s_kv_slice(pk, "ws", m->ws);
}

int wire_parse_call(const msgpack_object *h, wire_call_t *m)
{
    memset(m, 0, sizeof *m);
    if (s_uint(h, "cid", &m->cid) != 0) return -1;
    if (s_str(h, "svc", &m->svc) < 0 || s_str(h, "verb", &m->verb) < 0 ||
        s_str(h, "ws", &m->ws) < 0 || s_uint(h, "ttl", &m->ttl) < 0)
        return -1;
    return 0;
}

/* ---- PUBLISH, FAIL, DISCONNECT ------------------------------------------------- */

void wire_pack_topic(msgpack_packer *pk, const char *topic)
{
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "topic", topic);
}

int wire_parse_topic(const msgpack_object *h, cairn_str_t *topic)
{
    return s_str(h, "topic", topic) == 0 ? 0 : -1;
}

void wire_pack_err(msgpack_packer *pk, const char *err)
{
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_text(pk, "err", err);
}

int wire_parse_err(const msgpack_object *h, cairn_str_t *err)
{
    return s_str(h, "err", err) == 0 ? 0 : -1;
}
