/* The shared call path of the service SDK modules (see svc_call.h). */
#define _POSIX_C_SOURCE 200809L
#include "svc_call.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

msgpack_packer *cairn_svc_begin(cairn_svc_call_t *c, const char *svc, uint32_t nkeys)
{
    c->svc = svc;
    msgpack_sbuffer_init(&c->sb);
    msgpack_packer_init(&c->pk, &c->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&c->pk, nkeys);
    return &c->pk;
}

int cairn_svc_end(cairn_client_t *client, cairn_svc_call_t *c, const char *verb,
                  cairn_reply_t **reply, cairn_err_t *err)
{
    cairn_reply_t *r = NULL;
    int rc =
        cairn_client_call(client, c->svc, verb, c->sb.data, c->sb.size, 0, &r, err);
    if (c->sb.data) sodium_memzero(c->sb.data, c->sb.size);
    msgpack_sbuffer_destroy(&c->sb);
    if (rc == 0 && reply)
        *reply = r;
    else
        cairn_reply_destroy(&r);
    return rc;
}

int cairn_svc_need(const void *p, const char *what, cairn_err_t *err)
{
    return p ? 0
             : cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must not be NULL", what);
}

int cairn_svc_bad_reply(cairn_err_t *err, const char *svc, const char *what)
{
    return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                         "the %s service's reply %s", svc, what);
}

int cairn_svc_str(cairn_reply_t *r, const char *svc, const char *key, char **out,
                  cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(cairn_reply_object(r), key);
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the %s service's reply lacks the string '%s'", svc, key);
    if (!(*out = cairn_str_dup((cairn_str_t){o->via.str.ptr, o->via.str.size})))
        return cairn_err_oom(err, NULL);
    return 0;
}

int cairn_svc_opt_str(cairn_reply_t *r, const char *key, char **out, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(cairn_reply_object(r), key);
    *out = NULL;
    if (!o || o->type != MSGPACK_OBJECT_STR) return 0;
    return (*out = cairn_str_dup((cairn_str_t){o->via.str.ptr, o->via.str.size}))
               ? 0
               : cairn_err_oom(err, NULL);
}

bool cairn_svc_obj_int(const msgpack_object *map, const char *key, int64_t *out)
{
    const msgpack_object *o = cairn_obj_get(map, key);
    if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return true;
    }
    return false;
}

int cairn_svc_int(cairn_reply_t *r, const char *svc, const char *key, int64_t *out,
                  cairn_err_t *err)
{
    if (cairn_svc_obj_int(cairn_reply_object(r), key, out)) return 0;
    return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                         "the %s service's reply lacks the integer '%s'", svc, key);
}

void cairn_svc_reply_wipe(cairn_reply_t **r)
{
    if (!r || !*r) return;
    size_t n = 0;
    const void *body = cairn_reply_body(*r, &n);
    if (body && n) sodium_memzero((void *)body, n);
    cairn_reply_destroy(r);
}
