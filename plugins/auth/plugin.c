/* The auth plugin's descriptor: its settings, its verb table, its life
 * cycle, and the helpers every verb file shares (replies, events, fields).
 * The handlers live one file per concern: users.c (passwords, login),
 * tokens.c (tokens, resolve, the owner bootstrap), roles.c (roles,
 * assignments, whoami), workspaces.c. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define AUTH_AT(f) offsetof(auth_settings_t, f)
static const cairn_setting_t auth_settings[] = {
    {.key = "pwhash_ops",
     .type = CAIRN_CONF_INT,
     .offset = AUTH_AT(pwhash_ops),
     .dflt = "3",
     .help = "Argon2id passes per password hash (libsodium opslimit)",
     .min = 1,
     .max = 64},
    {.key = "pwhash_mem",
     .type = CAIRN_CONF_SIZE,
     .offset = AUTH_AT(pwhash_mem),
     .dflt = "32MiB",
     .help = "Argon2id memory per password hash (libsodium memlimit)",
     .min = 8192,
     .max = 4294967296},
    {.key = "login_ttl",
     .type = CAIRN_CONF_INT,
     .offset = AUTH_AT(login_ttl),
     .dflt = "43200",
     .help = "seconds a token from login stays valid",
     .min = 60,
     .max = 31557600},
    {.key = "max_failures",
     .type = CAIRN_CONF_INT,
     .offset = AUTH_AT(max_failures),
     .dflt = "5",
     .help = "wrong passwords in a row before a user's logins are refused for a while",
     .min = 1,
     .max = 1000},
    {.key = "addr_failures",
     .type = CAIRN_CONF_INT,
     .offset = AUTH_AT(addr_failures),
     .dflt = "0",
     .help = "wrong passwords from one client address (any user names) before its "
             "logins are refused for a while; 0 = 10 x max_failures",
     .min = 0,
     .max = 100000},
    {.key = "throttle_loopback",
     .type = CAIRN_CONF_BOOL,
     .offset = AUTH_AT(throttle_loopback),
     .dflt = "false",
     .help = "count the failures of loopback clients per address too (false: every "
             "local user shares 127.0.0.1, and one could lock the others out)"},
    {.key = "lockout_ms",
     .type = CAIRN_CONF_INT,
     .offset = AUTH_AT(lockout_ms),
     .dflt = "30000",
     .help = "the first lockout window; it doubles with each further failure, up to "
             "an hour",
     .min = 1,
     .max = 3600000},
    {.key = "hash_queue",
     .type = CAIRN_CONF_INT,
     .offset = AUTH_AT(hash_queue),
     .dflt = "64",
     .help = "password hashes that may wait for the hashing thread; more are "
             "answered 429",
     .min = 1,
     .max = 100000},
    {.key = NULL},
};

msgpack_packer *auth_reply_begin(auth_t *a)
{
    msgpack_sbuffer_clear(&a->sb);
    return &a->pk;
}

int auth_reply_send(auth_t *a, cairn_req_t *req)
{
    cairn_reply(req, CAIRN_ST_OK, a->sb.data, a->sb.size);
    return 0;
}

void auth_changed(auth_t *a, const char *key, const char *value)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, key ? 1 : 0);
    if (key) cairn_pack_kv_str(&pk, key, value);
    if (cairn_publish(a->ctx, AUTH_CHANGED, sb.data, sb.size) != 0)
        cairn_log(a->ctx, CAIRN_LOG_WARN, "could not publish %s", AUTH_CHANGED);
    msgpack_sbuffer_destroy(&sb);
}

bool auth_user_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '@';
}

bool auth_role_char(char c)
{
    return auth_user_char(c) || c == ' ';
}

bool auth_ws_char(char c)
{
    return auth_user_char(c) && c != '@';
}

int auth_field_name(const msgpack_object *body, const char *key, bool required,
                    auth_char_fn *ok, char out[AUTH_NAME_MAX + 1], cairn_err_t *err)
{
    cairn_str_t s;
    int rc = cairn_field_str(body, key, required, 0, &s, err);
    if (rc != 0) return rc;
    if (s.len == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must not be empty", key);
    if (s.len > AUTH_NAME_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "%s is longer than %d bytes", key, AUTH_NAME_MAX);
    for (size_t i = 0; i < s.len; i++)
        if (ok ? !ok(s.ptr[i]) : (s.ptr[i] < 0x20 || s.ptr[i] > 0x7e))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "%s may hold only %s", key,
                                 ok == auth_user_char ? "letters, digits and . _ - @"
                                 : ok == auth_role_char
                                     ? "letters, digits, spaces and . _ - @"
                                 : ok == auth_ws_char ? "letters, digits and . _ -"
                                                      : "printable ASCII");
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return 0;
}

int auth_field_password(const msgpack_object *body, const char *key, bool required,
                        cairn_str_t *out, cairn_err_t *err)
{
    int rc = cairn_field_str(body, key, required, 0, out, err);
    if (rc != 0) return rc;
    if (out->len < AUTH_PASSWORD_MIN)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must be at least %d bytes", key, AUTH_PASSWORD_MIN);
    if (out->len > AUTH_PASSWORD_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "%s is longer than %d bytes", key, AUTH_PASSWORD_MAX);
    return 0;
}

static int auth_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const auth_settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(
            err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
            "this host predates typed settings; auth needs a newer one");
    if (sodium_init() < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INIT_FAILED,
                             "libsodium failed to initialize");
    auth_t *a = calloc(1, sizeof *a);
    if (!a) return cairn_err_oom(err, NULL);
    a->ctx = ctx;
    a->set = set;
    msgpack_sbuffer_init(&a->sb);
    msgpack_packer_init(&a->pk, &a->sb, msgpack_sbuffer_write);
    char path[4096];
    snprintf(path, sizeof path, "%s/auth.db", cairn_state_dir(ctx));
    /* Unknown users are checked against this hash, so that a login for a
     * user who does not exist takes as long as one with a wrong password. */
    if (!(a->db = auth_db_open(path, err)) ||
        crypto_pwhash_str(a->dummy_hash, "no such user", 12,
                          (unsigned long long)set->pwhash_ops,
                          (size_t)set->pwhash_mem) != 0 ||
        auth_bootstrap(a, err) != 0 ||
        !(a->hasher =
              hasher_start((uint64_t)set->pwhash_ops, (size_t)set->pwhash_mem, err))) {
        if (a->db && !err->st)
            cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INIT_FAILED,
                          "pwhash_mem (%llu bytes) is more than this machine can give "
                          "Argon2id",
                          (unsigned long long)set->pwhash_mem);
        auth_db_close(&a->db);
        msgpack_sbuffer_destroy(&a->sb);
        free(a);
        return -1;
    }
    *state = a;
    return 0;
}

static void auth_fini(void *state)
{
    auth_t *a = state;
    hasher_stop(&a->hasher);
    auth_db_close(&a->db);
    msgpack_sbuffer_destroy(&a->sb);
    sodium_memzero(a->throttle, sizeof a->throttle);
    free(a);
}

static const cairn_verb_t auth_verbs[] = {
    {.name = "login",
     .handle = auth_login,
     .flags = CAIRN_VERB_PUBLIC | CAIRN_VERB_MUTATING,
     .max_body = 4096,
     .help = "{user, password} -> a login token"},
    {.name = "whoami",
     .handle = auth_whoami,
     .perm = "auth.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "the caller's principal and roles"},
    {.name = "create_user",
     .handle = auth_create_user,
     .perm = "auth.admin",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = 4096,
     .help = "{user, password}"},
    {.name = "delete_user",
     .handle = auth_delete_user,
     .perm = "auth.admin",
     .flags = CAIRN_VERB_MUTATING,
     .help = "{user}: its tokens and role assignments go too"},
    {.name = "change_password",
     .handle = auth_change_password,
     .perm = "auth.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = 4096,
     .help = "{user, password, old_password}: revokes the user's login tokens"},
    {.name = "create_token",
     .handle = auth_create_token,
     .perm = "auth.write",
     .flags = CAIRN_VERB_MUTATING,
     .help = "{name, expires_in, owner, ws (held to that workspace: no auth.write or "
             "auth.admin)} -> token (shown once), token_id"},
    {.name = "revoke_token",
     .handle = auth_revoke_token,
     .perm = "auth.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .help = "{token_id}"},
    {.name = "list_tokens",
     .handle = auth_list_tokens,
     .perm = "auth.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "the caller's tokens (an admin's: everyone's), without secrets"},
    {.name = "resolve",
     .handle = auth_resolve,
     .perm = "auth.admin",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "{token} -> principal, token_id, expires, grants (for the kernel)"},
    {.name = "define_role",
     .handle = auth_define_role,
     .perm = "auth.admin",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .help = "{name, actions, not_actions}: a custom role, made or replaced"},
    {.name = "assign_role",
     .handle = auth_assign_role,
     .perm = "auth.admin",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .help = "{principal, role, workspace}: absent workspace = every workspace"},
    {.name = "unassign_role",
     .handle = auth_unassign_role,
     .perm = "auth.admin",
     .flags = CAIRN_VERB_MUTATING,
     .help = "{principal, role, workspace}"},
    {.name = "list_roles",
     .handle = auth_list_roles,
     .perm = "auth.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "built-in and custom roles with their action patterns"},
    {.name = "create_workspace",
     .handle = auth_create_workspace,
     .perm = "auth.admin",
     .flags = CAIRN_VERB_MUTATING,
     .help = "{name}"},
    {.name = "list_workspaces",
     .handle = auth_list_workspaces,
     .perm = "auth.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "every workspace"},
    {.name = "delete_workspace",
     .handle = auth_delete_workspace,
     .perm = "auth.admin",
     .flags = CAIRN_VERB_MUTATING,
     .help = "{name}: not `default`; its role assignments go too"},
    {.name = NULL},
};

static const cairn_plugin_t auth_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "auth",
    .version = "1.0.0",
    .description =
        "users, tokens, roles and workspaces; resolves tokens for the kernel",
    .verbs = auth_verbs,
    .settings = auth_settings,
    .settings_size = sizeof(auth_settings_t),
    .init = auth_init,
    .fini = auth_fini,
};

CAIRN_PLUGIN_DEFINE(auth_plugin)
