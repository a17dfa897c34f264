/* Environments (`env:NAME:VERSION`): what a job runs in, as Azure ML's: a
 * Python interpreter (or venv), its requirements, environment variables.
 * Versions are immutable, numbered per name, archived but never deleted
 * (assets.h). env_vars is stored as the msgpack map the request sent (a
 * BLOB in the TEXT column; '' for none) and packed back as it is. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"

#define ENV_PATH_MAX 4096 /* python */
#define ENV_VARS_MAX 100  /* env_vars entries */
#define ENV_VAR_KEY_MAX 256
#define ENV_VAR_VALUE_MAX 4096

static const reg_asset_kind_t s_env = {.kind = "env",
                                       .table = "environments",
                                       .noun = "environment",
                                       .one = "environment",
                                       .many = "environments"};

int reg_pack_env(registry_t *r, msgpack_packer *pk, const char *ws, const char *name,
                 int64_t version, cairn_err_t *err)
{
    sqlite3_stmt *st;
    if (reg_asset_row(
            r, &s_env,
            "SELECT python, requirements, env_vars, description, archived, "
            "user_id, created FROM environments WHERE ws = ? AND name = ? AND "
            "version = ?",
            ws, name, version, &st, err) != 0)
        return -1;
    reg_asset_pack_head(pk, 3, name, version);
    cairn_pack_kv_text(pk, "python", (const char *)sqlite3_column_text(st, 0));
    cairn_pack_cstr(pk, "requirements");
    cairn_pack_strn(pk, (const char *)sqlite3_column_text(st, 1),
                    (size_t)sqlite3_column_bytes(st, 1));
    cairn_pack_cstr(pk, "env_vars");
    if (sqlite3_column_type(st, 2) == SQLITE_BLOB && sqlite3_column_bytes(st, 2) > 0)
        msgpack_sbuffer_write(pk->data, sqlite3_column_blob(st, 2),
                              (size_t)sqlite3_column_bytes(st, 2));
    else
        msgpack_pack_map(pk, 0);
    return reg_asset_pack_tail(r, pk, &s_env, st, 3, ws, name, version, err);
}

static int s_bad(cairn_err_t *err, const char *fmt, const char *a)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, fmt, a);
}

static bool s_has_ctl(cairn_str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f) return true;
    return false;
}

/* python: absent, or an absolute path (an interpreter or a venv). */
static int s_python(const msgpack_object *b, cairn_str_t *py, cairn_err_t *err)
{
    int rc = cairn_field_str(b, "python", false, ENV_PATH_MAX, py, err);
    if (rc != 0) return rc < 0 ? -1 : 0;
    if (!py->len)
        return s_bad(err, "the field '%s' must not be empty (leave it out for none)",
                     "python");
    if (py->ptr[0] != '/' || s_has_ctl(*py))
        return s_bad(err,
                     "the field '%s' is an absolute path (an interpreter or a venv "
                     "directory) without control characters",
                     "python");
    return 0;
}

/* env_vars: absent, or a map of POSIX names to strings. */
static int s_env_vars(const msgpack_object *b, const msgpack_object **vars,
                      cairn_err_t *err)
{
    *vars = NULL;
    if (cairn_field_map(b, "env_vars", false, vars, err) < 0) return -1;
    if (!*vars) return 0;
    const msgpack_object_map *m = &(*vars)->via.map;
    if (m->size > ENV_VARS_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "env_vars holds at most %d variables", ENV_VARS_MAX);
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || !k->via.str.size ||
            k->via.str.size > ENV_VAR_KEY_MAX)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "env_vars: a variable's name is a string of 1 to %d "
                                 "bytes",
                                 ENV_VAR_KEY_MAX);
        const char *p = k->via.str.ptr;
        bool ok =
            (p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z') || p[0] == '_';
        for (uint32_t j = 1; ok && j < k->via.str.size; j++)
            ok = (p[j] >= 'A' && p[j] <= 'Z') || (p[j] >= 'a' && p[j] <= 'z') ||
                 (p[j] >= '0' && p[j] <= '9') || p[j] == '_';
        if (!ok)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "env_vars: '%.*s' is not a variable name "
                                 "([A-Za-z_][A-Za-z0-9_]*)",
                                 (int)k->via.str.size, p);
        if (v->type != MSGPACK_OBJECT_STR)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "env_vars: the value of %.*s is a string",
                                 (int)k->via.str.size, p);
        if (v->via.str.size > ENV_VAR_VALUE_MAX ||
            memchr(v->via.str.ptr, '\0', v->via.str.size))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "env_vars: the value of %.*s is at most %d bytes, "
                                 "without NUL",
                                 (int)k->via.str.size, p, ENV_VAR_VALUE_MAX);
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *o = &m->ptr[j].key;
            if (o->via.str.size == k->via.str.size &&
                !memcmp(o->via.str.ptr, p, k->via.str.size))
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                     "env_vars: %.*s is given twice",
                                     (int)k->via.str.size, p);
        }
    }
    return 0;
}

int reg_create_environment(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    const char *ws = reg_ws(req);
    cairn_str_t name, py = {"", 0}, reqs = {"", 0}, desc = {"", 0};
    const msgpack_object *vars = NULL, *tags = NULL;
    if (reg_field_name(b, "name", &name, err) != 0 || s_python(b, &py, err) != 0 ||
        cairn_field_str(b, "requirements", false, REG_TEXT_MAX, &reqs, err) < 0 ||
        s_env_vars(b, &vars, err) != 0 ||
        cairn_field_str(b, "description", false, REG_TEXT_MAX, &desc, err) < 0 ||
        reg_asset_field_tags(b, &tags, err) != 0)
        return -1;
    /* The variables as msgpack bytes (a map re-packed: the request's own
     * bytes are not at hand). */
    msgpack_sbuffer vb;
    msgpack_sbuffer_init(&vb);
    if (vars && vars->via.map.size) {
        msgpack_packer vp;
        msgpack_packer_init(&vp, &vb, msgpack_sbuffer_write);
        msgpack_pack_object(&vp, *vars);
    }
    sqlite3_stmt *st = reg_stmt(r,
                                "INSERT INTO environments (ws, name, version, python, "
                                "requirements, env_vars, description, user_id, "
                                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                err);
    int64_t version = 0;
    int rc = st ? reg_begin(r, err) : -1;
    if (rc == 0) rc = reg_asset_next_version(r, &s_env, ws, name, &version, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
        reg_bind_str(st, 2, name);
        sqlite3_bind_int64(st, 3, version);
        reg_bind_str(st, 4, py);
        reg_bind_str(st, 5, reqs);
        if (vb.size)
            sqlite3_bind_blob(st, 6, vb.data, (int)vb.size, SQLITE_STATIC);
        else
            sqlite3_bind_text(st, 6, "", 0, SQLITE_STATIC);
        reg_bind_str(st, 7, desc);
        sqlite3_bind_text(st, 8, reg_asset_user(req), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 9, (int64_t)cairn_wall_ms());
        rc = reg_step_done(r, st, "create an environment", err);
    }
    if (rc == 0) rc = reg_asset_tags_put(r, &s_env, ws, name, version, tags, err);
    if (rc == 0)
        rc = reg_commit(r, err);
    else
        reg_rollback(r);
    msgpack_sbuffer_destroy(&vb);
    if (rc != 0) return -1;
    char nm[REG_NAME_MAX + 1];
    snprintf(nm, sizeof nm, "%.*s", (int)name.len, name.ptr);
    reg_publish(r, "environment.created", req, nm, version, NULL);
    return reg_asset_reply(r, req, &s_env, reg_pack_env, ws, nm, version, err);
}

int reg_get_environment(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return reg_asset_get(state, req, &s_env, reg_pack_env, err);
}

int reg_list_environments(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return reg_asset_list(state, req, &s_env, reg_pack_env, err);
}

int reg_archive_environment(void *state, cairn_req_t *req, cairn_err_t *err)
{
    return reg_asset_archive(state, req, &s_env, reg_pack_env, err);
}

int reg_env_target(registry_t *r, cairn_req_t *req, const reg_ref_t *ref,
                   char name[REG_REF_NAME_MAX], cairn_err_t *err)
{
    int64_t version = 0;
    if (reg_asset_resolve(r, &s_env, reg_ws(req), ref->name,
                          ref->latest ? 0 : ref->version, &version, err) != 0)
        return -1;
    snprintf(name, REG_REF_NAME_MAX, "env:%.*s:%lld", (int)ref->name.len, ref->name.ptr,
             (long long)version);
    return 0;
}
