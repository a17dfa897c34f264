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

/* The text field key of a version or an environment: text[i] is keys[i]'s. */
static const char *s_text_get(const char *const *keys, size_t n, char *const *text,
                              const char *key)
{
    for (size_t i = 0; text && key && i < n; i++)
        if (!strcmp(keys[i], key)) return text[i];
    return "";
}

/* Copy map m's string fields keys (absent or not a string: "") into text;
 * -1 when out of memory (what was copied is the caller's to free). */
static int s_take_texts(const msgpack_object *m, const char *const *keys, size_t n,
                        char **text)
{
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *s = cairn_obj_get(m, keys[i]);
        cairn_str_t t = {"", 0};
        if (s && s->type == MSGPACK_OBJECT_STR)
            t = (cairn_str_t){s->via.str.ptr, s->via.str.size};
        if (!(text[i] = cairn_str_dup(t))) return -1;
    }
    return 0;
}

/* The reply's map under key, with its version number; NULL when it lacks it. */
static const msgpack_object *s_reply_map(cairn_reply_t *r, const char *key,
                                         int64_t *number)
{
    const msgpack_object *m = cairn_obj_get(cairn_reply_object(r), key);
    if (!m || m->type != MSGPACK_OBJECT_MAP || !cairn_svc_obj_int(m, "version", number))
        return NULL;
    return m;
}

const char *cairn_model_version_get(const cairn_model_version_t *v, const char *key)
{
    return s_text_get(s_keys, NKEYS, v ? v->text : NULL, key);
}

/* The reply's model_version into *out. */
static int s_take_version(cairn_reply_t *r, cairn_model_version_t **out,
                          cairn_err_t *err)
{
    int64_t number = 0;
    const msgpack_object *m = s_reply_map(r, "model_version", &number);
    if (!m)
        return cairn_svc_bad_reply(err, SVC, "lacks a model_version with its number");
    cairn_model_version_t *v = calloc(1, sizeof *v);
    if (!v) return cairn_err_oom(err, NULL);
    v->version = number;
    if (s_take_texts(m, s_keys, NKEYS, v->text) != 0) {
        cairn_model_version_free(&v);
        return cairn_err_oom(err, NULL);
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

/* ---- environments ---------------------------------------------------------- */

static const char *const s_env_keys[] = {"name", "python", "requirements",
                                         "description", "user_id"};
#define ENV_NKEYS (sizeof s_env_keys / sizeof s_env_keys[0])

struct cairn_environment {
    int64_t version;
    bool archived;
    char *text[ENV_NKEYS];
    uint32_t nvars;
    char **vars; /* name, value, name, value ... */
};

void cairn_environment_free(cairn_environment_t **e)
{
    if (!e || !*e) return;
    for (size_t i = 0; i < ENV_NKEYS; i++) free((*e)->text[i]);
    for (uint32_t i = 0; (*e)->vars && i < 2 * (*e)->nvars; i++) free((*e)->vars[i]);
    free((*e)->vars);
    free(*e);
    *e = NULL;
}

int64_t cairn_environment_version(const cairn_environment_t *e)
{
    return e ? e->version : 0;
}

bool cairn_environment_archived(const cairn_environment_t *e)
{
    return e && e->archived;
}

const char *cairn_environment_get(const cairn_environment_t *e, const char *key)
{
    return s_text_get(s_env_keys, ENV_NKEYS, e ? e->text : NULL, key);
}

const char *cairn_environment_var(const cairn_environment_t *e, const char *var)
{
    for (uint32_t i = 0; e && var && i < e->nvars; i++)
        if (!strcmp(e->vars[2 * i], var)) return e->vars[2 * i + 1];
    return NULL;
}

/* The env_vars map {str: str} of m into e. */
static int s_take_vars(const msgpack_object *m, cairn_environment_t *e)
{
    const msgpack_object *vars = cairn_obj_get(m, "env_vars");
    if (!vars || vars->type != MSGPACK_OBJECT_MAP || !vars->via.map.size) return 0;
    if (!(e->vars = calloc(2 * (size_t)vars->via.map.size, sizeof *e->vars))) return -1;
    for (uint32_t i = 0; i < vars->via.map.size; i++) {
        const msgpack_object *k = &vars->via.map.ptr[i].key,
                             *v = &vars->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR) continue;
        char **slot = &e->vars[2 * e->nvars];
        slot[0] = cairn_str_dup((cairn_str_t){k->via.str.ptr, k->via.str.size});
        slot[1] = cairn_str_dup((cairn_str_t){v->via.str.ptr, v->via.str.size});
        e->nvars++; /* counted now: freed with the others */
        if (!slot[0] || !slot[1]) return -1;
    }
    return 0;
}

int cairn_registry_create_environment(cairn_client_t *client, const char *name,
                                      const char *python, const char *requirements,
                                      const char *description, int64_t *out_version,
                                      cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err))
        return -1;
    cairn_svc_call_t c;
    msgpack_packer *pk =
        cairn_svc_begin(&c, SVC, 1 + !!python + !!requirements + !!description);
    cairn_pack_kv_str(pk, "name", name);
    if (python) cairn_pack_kv_str(pk, "python", python);
    if (requirements) cairn_pack_kv_str(pk, "requirements", requirements);
    if (description) cairn_pack_kv_str(pk, "description", description);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "create_environment", &r, err) != 0) return -1;
    int64_t number = 0;
    int rc =
        s_reply_map(r, "environment", &number)
            ? 0
            : cairn_svc_bad_reply(err, SVC, "lacks an environment with its number");
    if (rc == 0 && out_version) *out_version = number;
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_registry_get_environment(cairn_client_t *client, const char *ref,
                                   cairn_environment_t **out, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(ref, "ref", err) ||
        cairn_svc_need(out, "out", err))
        return -1;
    *out = NULL;
    if (!strncmp(ref, "env:", 4)) ref += 4;
    /* NAME:VERSION when what follows the last ':' is a number or "latest";
     * else the whole of it is the name (the server refuses a ':' in one). */
    const char *colon = strrchr(ref, ':'), *version = NULL;
    size_t name_len = strlen(ref);
    if (colon && colon[1] &&
        (strspn(colon + 1, "0123456789") == strlen(colon + 1) ||
         !strcmp(colon + 1, "latest"))) {
        version = colon + 1;
        name_len = (size_t)(colon - ref);
    }
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, version ? 2 : 1);
    cairn_pack_cstr(pk, "name");
    cairn_pack_strn(pk, ref, name_len);
    if (version) cairn_pack_kv_str(pk, "version", version);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "get_environment", &r, err) != 0) return -1;
    int64_t number = 0;
    const msgpack_object *m = s_reply_map(r, "environment", &number);
    int rc =
        m ? 0 : cairn_svc_bad_reply(err, SVC, "lacks an environment with its number");
    cairn_environment_t *e = rc == 0 ? calloc(1, sizeof *e) : NULL;
    if (rc == 0 && !e) rc = cairn_err_oom(err, NULL);
    if (rc == 0) {
        e->version = number;
        const msgpack_object *a = cairn_obj_get(m, "archived");
        e->archived = a && a->type == MSGPACK_OBJECT_BOOLEAN && a->via.boolean;
        if (s_take_texts(m, s_env_keys, ENV_NKEYS, e->text) != 0 ||
            s_take_vars(m, e) != 0) {
            cairn_environment_free(&e);
            rc = cairn_err_oom(err, NULL);
        }
    }
    cairn_reply_destroy(&r);
    if (rc == 0) *out = e;
    return rc;
}
