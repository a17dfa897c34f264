/* The model registry from C (see cairn/registry.h). */
#define _POSIX_C_SOURCE 200809L
#include "cairn/registry.h"

#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"
#include "svc_call.h"

#define SVC CAIRN_REGISTRY_SVC

static const char *const s_keys[] = {"name",         "source",    "run_id",
                                     "flavor",       "signature", "description",
                                     "content_hash", "user_id",   "status"};
#define NKEYS (sizeof s_keys / sizeof s_keys[0])

struct cairn_model_version {
    int64_t version;
    char *text[NKEYS];
};

void cairn_model_version_free(cairn_model_version_t **v)
{
    if (!v || !*v) return;
    for (size_t i = 0; i < NKEYS; i++) free((*v)->text[i]);
    free(*v);
    *v = NULL;
}

int64_t cairn_model_version_number(const cairn_model_version_t *v)
{
    return v ? v->version : 0;
}

const char *cairn_model_version_get(const cairn_model_version_t *v, const char *key)
{
    for (size_t i = 0; v && key && i < NKEYS; i++)
        if (!strcmp(s_keys[i], key)) return v->text[i];
    return "";
}

/* The reply's model_version into *out. */
static int s_take_version(cairn_reply_t *r, cairn_model_version_t **out,
                          cairn_err_t *err)
{
    const msgpack_object *m = cairn_obj_get(cairn_reply_object(r), "model_version");
    int64_t number = 0;
    if (!m || m->type != MSGPACK_OBJECT_MAP ||
        !cairn_svc_obj_int(m, "version", &number))
        return cairn_svc_bad_reply(err, SVC, "lacks a model_version with its number");
    cairn_model_version_t *v = calloc(1, sizeof *v);
    if (!v) return cairn_err_oom(err, NULL);
    v->version = number;
    for (size_t i = 0; i < NKEYS; i++) {
        const msgpack_object *s = cairn_obj_get(m, s_keys[i]);
        cairn_str_t t = {"", 0};
        if (s && s->type == MSGPACK_OBJECT_STR)
            t = (cairn_str_t){s->via.str.ptr, s->via.str.size};
        if (!(v->text[i] = cairn_str_dup(t))) {
            cairn_model_version_free(&v);
            return cairn_err_oom(err, NULL);
        }
    }
    *out = v;
    return 0;
}

int cairn_registry_create_model(cairn_client_t *client, const char *name,
                                const char *description, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err))
        return -1;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, description ? 2 : 1);
    cairn_pack_kv_str(pk, "name", name);
    if (description) cairn_pack_kv_str(pk, "description", description);
    return cairn_svc_end(client, &c, "create_registered_model", NULL, err);
}

int cairn_registry_delete_model(cairn_client_t *client, const char *name,
                                cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err))
        return -1;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 1);
    cairn_pack_kv_str(pk, "name", name);
    return cairn_svc_end(client, &c, "delete_registered_model", NULL, err);
}

int cairn_registry_create_version(cairn_client_t *client, const char *name,
                                  const char *source, const char *flavor,
                                  cairn_model_version_t **out, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err) ||
        cairn_svc_need(source, "source", err) || cairn_svc_need(out, "out", err))
        return -1;
    *out = NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, flavor ? 3 : 2);
    cairn_pack_kv_str(pk, "name", name);
    cairn_pack_kv_str(pk, "source", source);
    if (flavor) cairn_pack_kv_str(pk, "flavor", flavor);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "create_model_version", &r, err) != 0) return -1;
    int rc = s_take_version(r, out, err);
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_registry_get(cairn_client_t *client, const char *ref,
                       cairn_model_version_t **out, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(ref, "ref", err) ||
        cairn_svc_need(out, "out", err))
        return -1;
    *out = NULL;
    const char *at = strrchr(ref, '@'), *colon = strrchr(ref, ':');
    const char *sep = at ? at : colon;
    if (!sep || sep == ref || !sep[1])
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a model reference is NAME@ALIAS or NAME:VERSION");
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 2);
    cairn_pack_cstr(pk, "name");
    cairn_pack_strn(pk, ref, (size_t)(sep - ref));
    cairn_pack_kv_str(pk, at ? "alias" : "version", sep + 1);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c,
                      at ? "get_model_version_by_alias" : "get_model_version", &r,
                      err) != 0)
        return -1;
    int rc = s_take_version(r, out, err);
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_registry_set_alias(cairn_client_t *client, const char *name,
                             const char *alias, int64_t version, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err) ||
        cairn_svc_need(alias, "alias", err))
        return -1;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 3);
    cairn_pack_kv_str(pk, "name", name);
    cairn_pack_kv_str(pk, "alias", alias);
    cairn_pack_cstr(pk, "version");
    msgpack_pack_int64(pk, version);
    return cairn_svc_end(client, &c, "set_alias", NULL, err);
}
