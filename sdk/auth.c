/* The auth service from C (see cairn/auth.h): each wrapper packs its body,
 * makes one synchronous call and reads what the reply holds. */
#define _POSIX_C_SOURCE 200809L
#include "cairn/auth.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"
#include "svc_call.h"

static msgpack_packer *s_begin(cairn_svc_call_t *c, uint32_t nkeys)
{
    return cairn_svc_begin(c, CAIRN_AUTH_SVC, nkeys);
}

static int s_str(cairn_reply_t *r, const char *key, char **out, cairn_err_t *err)
{
    return cairn_svc_str(r, CAIRN_AUTH_SVC, key, out, err);
}

static void s_free_secret(char **s)
{
    if (*s) sodium_memzero(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

int cairn_auth_login(cairn_client_t *client, const char *user, const char *password,
                     char **token, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(user, "user", err) ||
        cairn_svc_need(password, "password", err) ||
        cairn_svc_need(token, "token", err))
        return -1;
    *token = NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk = s_begin(&c, 2);
    cairn_pack_kv_str(pk, "user", user);
    cairn_pack_kv_str(pk, "password", password);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "login", &r, err) != 0) return -1;
    int rc = s_str(r, "token", token, err);
    cairn_reply_destroy(&r);
    return rc;
}

void cairn_auth_strv_free(char **v)
{
    for (char **p = v; p && *p; p++) free(*p);
    free(v);
}

static int s_strv(cairn_reply_t *r, const char *key, char ***out, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(cairn_reply_object(r), key);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the auth service's reply lacks the list '%s'", key);
    char **v = calloc(o->via.array.size + 1, sizeof *v);
    if (!v) return cairn_err_oom(err, NULL);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR ||
            !(v[i] = cairn_str_dup((cairn_str_t){e->via.str.ptr, e->via.str.size}))) {
            cairn_auth_strv_free(v);
            return e->type != MSGPACK_OBJECT_STR
                       ? cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                                       "'%s' in the auth service's reply holds a "
                                       "non-string",
                                       key)
                       : cairn_err_oom(err, NULL);
        }
    }
    *out = v;
    return 0;
}

int cairn_auth_whoami(cairn_client_t *client, char **user, char ***roles,
                      cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(user, "user", err))
        return -1;
    *user = NULL;
    if (roles) *roles = NULL;
    cairn_svc_call_t c;
    s_begin(&c, 0);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "whoami", &r, err) != 0) return -1;
    int rc = s_str(r, "user", user, err);
    if (rc == 0 && roles && (rc = s_strv(r, "roles", roles, err)) != 0) {
        free(*user);
        *user = NULL;
    }
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_auth_create_token(cairn_client_t *client, const char *name,
                            uint64_t expires_in, char **token, char **token_id,
                            cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err) ||
        cairn_svc_need(token, "token", err))
        return -1;
    *token = NULL;
    if (token_id) *token_id = NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk = s_begin(&c, 2);
    cairn_pack_kv_str(pk, "name", name);
    cairn_pack_cstr(pk, "expires_in");
    msgpack_pack_uint64(pk, expires_in);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "create_token", &r, err) != 0) return -1;
    int rc = s_str(r, "token", token, err);
    if (rc == 0 && token_id && (rc = s_str(r, "token_id", token_id, err)) != 0)
        s_free_secret(token);
    cairn_reply_destroy(&r);
    return rc;
}

/* A verb whose body is string fields only (NULL values left out) and whose
 * reply is not read. */
static int s_simple(cairn_client_t *client, const char *verb, const char *const *kv,
                    size_t npairs, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err)) return -1;
    uint32_t n = 0;
    for (size_t i = 0; i < npairs; i++) n += kv[2 * i + 1] != NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk = s_begin(&c, n);
    for (size_t i = 0; i < npairs; i++)
        if (kv[2 * i + 1]) cairn_pack_kv_str(pk, kv[2 * i], kv[2 * i + 1]);
    return cairn_svc_end(client, &c, verb, NULL, err);
}

#define SIMPLE(verb, ...)                                      \
    s_simple(client, verb, (const char *const[]){__VA_ARGS__}, \
             sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *) / 2, err)

int cairn_auth_revoke_token(cairn_client_t *client, const char *token_id,
                            cairn_err_t *err)
{
    if (cairn_svc_need(token_id, "token_id", err)) return -1;
    return SIMPLE("revoke_token", "token_id", token_id);
}

int cairn_auth_create_user(cairn_client_t *client, const char *user,
                           const char *password, cairn_err_t *err)
{
    if (cairn_svc_need(user, "user", err) || cairn_svc_need(password, "password", err))
        return -1;
    return SIMPLE("create_user", "user", user, "password", password);
}

int cairn_auth_delete_user(cairn_client_t *client, const char *user, cairn_err_t *err)
{
    if (cairn_svc_need(user, "user", err)) return -1;
    return SIMPLE("delete_user", "user", user);
}

int cairn_auth_change_password(cairn_client_t *client, const char *user,
                               const char *password, const char *old_password,
                               cairn_err_t *err)
{
    if (cairn_svc_need(user, "user", err) || cairn_svc_need(password, "password", err))
        return -1;
    return SIMPLE("change_password", "user", user, "password", password, "old_password",
                  old_password);
}

int cairn_auth_create_workspace(cairn_client_t *client, const char *name,
                                cairn_err_t *err)
{
    if (cairn_svc_need(name, "name", err)) return -1;
    return SIMPLE("create_workspace", "name", name);
}

int cairn_auth_delete_workspace(cairn_client_t *client, const char *name,
                                cairn_err_t *err)
{
    if (cairn_svc_need(name, "name", err)) return -1;
    return SIMPLE("delete_workspace", "name", name);
}

static void s_pack_strs(msgpack_packer *pk, const char *key, const char *const *v,
                        size_t n)
{
    cairn_pack_cstr(pk, key);
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) cairn_pack_cstr(pk, v[i]);
}

int cairn_auth_define_role(cairn_client_t *client, const char *name,
                           const char *const *actions, size_t nactions,
                           const char *const *not_actions, size_t nnot,
                           cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err) ||
        cairn_svc_need(actions, "actions", err) ||
        (nnot && cairn_svc_need(not_actions, "not_actions", err)))
        return -1;
    for (size_t i = 0; i < nactions; i++)
        if (cairn_svc_need(actions[i], "an action pattern", err)) return -1;
    for (size_t i = 0; i < nnot; i++)
        if (cairn_svc_need(not_actions[i], "a not_action pattern", err)) return -1;
    cairn_svc_call_t c;
    msgpack_packer *pk = s_begin(&c, 3);
    cairn_pack_kv_str(pk, "name", name);
    s_pack_strs(pk, "actions", actions, nactions);
    s_pack_strs(pk, "not_actions", not_actions, nnot);
    return cairn_svc_end(client, &c, "define_role", NULL, err);
}

int cairn_auth_assign_role(cairn_client_t *client, const char *principal,
                           const char *role, const char *workspace, cairn_err_t *err)
{
    if (cairn_svc_need(principal, "principal", err) ||
        cairn_svc_need(role, "role", err))
        return -1;
    return SIMPLE("assign_role", "principal", principal, "role", role, "workspace",
                  workspace);
}

int cairn_auth_unassign_role(cairn_client_t *client, const char *principal,
                             const char *role, const char *workspace, cairn_err_t *err)
{
    if (cairn_svc_need(principal, "principal", err) ||
        cairn_svc_need(role, "role", err))
        return -1;
    return SIMPLE("unassign_role", "principal", principal, "role", role, "workspace",
                  workspace);
}
