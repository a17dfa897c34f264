/* plugins/auth/auth.h — the auth plugin's shared state: users and their
 * passwords (users.c), API and login tokens (tokens.c), roles and their
 * assignments (roles.c), workspaces (workspaces.c), the password-hashing
 * thread (hasher.c) and the database (db.c). docs/AUTH.md describes the service. */
#ifndef AUTH_AUTH_H
#define AUTH_AUTH_H

#define CAIRN_PLUGIN_SOURCE
#include <sodium.h>

#include "cairn/plugin.h"
#include "db.h"

/* Request limits (docs/AUTH.md). */
#define AUTH_NAME_MAX 64 /* user, principal, role, workspace and token names */
#define AUTH_PASSWORD_MIN 8
#define AUTH_PASSWORD_MAX 1024
#define AUTH_PATTERNS_MAX 64 /* action patterns per list */
#define AUTH_TOKEN_PREFIX "cairn_"
#define AUTH_TOKEN_BYTES 32
#define AUTH_TOKEN_ID_BYTES 8            /* shown as 16 hex digits */
#define AUTH_LAST_USED_MS 60000          /* last_used is written at most this often */
#define AUTH_EXPIRES_IN_MAX 315576000ull /* ten years, in seconds */
#define AUTH_THROTTLE_SLOTS 1024         /* users whose failures are remembered */
#define AUTH_LOCKOUT_MAX_MS 3600000ull   /* the longest lockout window */
#define AUTH_ALL_WS "*"                  /* an assignment for every workspace */
#define AUTH_OWNER "owner"               /* the bootstrap principal */
#define AUTH_CHANGED "auth.changed"

typedef struct auth_settings {
    int64_t pwhash_ops;    /* Argon2id passes (crypto_pwhash opslimit) */
    uint64_t pwhash_mem;   /* Argon2id memory in bytes (memlimit) */
    int64_t login_ttl;     /* seconds a login token lives */
    int64_t max_failures;  /* wrong passwords before a lockout */
    int64_t addr_failures; /* the same from one client address (0: 10 x max_failures) */
    bool throttle_loopback; /* count loopback clients' failures per address too */
    int64_t lockout_ms;     /* the first lockout; it doubles per further failure */
    int64_t hash_queue;     /* hashes waiting at most; more are refused 429 */
} auth_settings_t;

/* Recent wrong passwords for one user name, or from one client address
 * ("@10.0.0.7": '@' starts no user name) (users.c). */
#define AUTH_ADDR_FORGET_MS 900000ull /* an address quiet this long starts over */
typedef struct auth_throttle {
    char user[AUTH_NAME_MAX + 2]; /* a name, or '@' and an address; "" = free */
    uint32_t failures;
    uint64_t locked_until; /* cairn_now_ms() */
    uint64_t touched;
} auth_throttle_t;

typedef struct hasher hasher_t;

typedef struct auth {
    cairn_ctx_t *ctx;
    const auth_settings_t *set;
    auth_db_t *db;
    hasher_t *hasher;
    uint64_t poll_timer; /* while hashes are in flight: collects their results */
    size_t in_flight;
    char dummy_hash[crypto_pwhash_STRBYTES]; /* verified for unknown users */
    auth_throttle_t throttle[AUTH_THROTTLE_SLOTS];
    msgpack_sbuffer sb; /* reused for replies and events */
    msgpack_packer pk;
} auth_t;

/* ---- replies and events (plugin.c) ---- */
msgpack_packer *auth_reply_begin(auth_t *a);
int auth_reply_send(auth_t *a, cairn_req_t *req);
/* Publish auth.changed with {key: value}, or {} when key is NULL. */
void auth_changed(auth_t *a, const char *key, const char *value);

/* ---- body fields (plugin.c) ---- */
/* A name: 1..AUTH_NAME_MAX bytes, each accepted by ok (NULL: any printable
 * ASCII); 400 when empty or badly formed, 413 when too long. Returns 0,
 * 1 when absent and not required, or -1. out is NUL-terminated. */
typedef bool(auth_char_fn)(char c);
int auth_field_name(const msgpack_object *body, const char *key, bool required,
                    auth_char_fn *ok, char out[AUTH_NAME_MAX + 1], cairn_err_t *err);
bool auth_user_char(char c); /* [A-Za-z0-9._@-] */
bool auth_role_char(char c); /* the same and space */
bool auth_ws_char(char c);   /* [A-Za-z0-9._-] */
/* Workspaces there may be: the kernel takes the list with every resolve
 * (kernel/authz.c's AUTHZ_MAX_WORKSPACES is the same bound). */
#define AUTH_MAX_WORKSPACES 10000
/* Pack every workspace's name as an array. */
int auth_pack_workspace_names(auth_t *a, msgpack_packer *pk, cairn_err_t *err);
/* A password: AUTH_PASSWORD_MIN..AUTH_PASSWORD_MAX bytes. */
int auth_field_password(const msgpack_object *body, const char *key, bool required,
                        cairn_str_t *out, cairn_err_t *err);

/* ---- permissions (roles.c) ---- */
/* Whether the caller may administer auth in the request's workspace: the
 * kernel stamped the Owner role, or the caller's assignments here grant
 * auth.admin. */
bool auth_is_admin(auth_t *a, cairn_req_t *req);
/* Pack [{ws, actions, not_actions}] for principal's assignments; with
 * only_ws (not NULL or ""), those of that workspace alone, an assignment
 * for every workspace narrowed to it (a token held to one workspace). */
int auth_pack_grants(auth_t *a, msgpack_packer *pk, const char *principal,
                     const char *only_ws, cairn_err_t *err);
/* Drop principal's assignments (delete_user). */
int auth_unassign_all(auth_t *a, const char *principal, cairn_err_t *err);

/* ---- tokens (tokens.c) ---- */
/* Make a token for owner: the secret (AUTH_TOKEN_PREFIX + base64url) into
 * secret, its id into id. expires: wall ms, 0 = never. ws: "" for every
 * workspace the owner may use, else that one alone. */
#define AUTH_SECRET_LEN (sizeof AUTH_TOKEN_PREFIX - 1 + 43)
#define AUTH_TOKEN_ID_LEN (2 * AUTH_TOKEN_ID_BYTES)
int auth_token_make(auth_t *a, const char *owner, const char *name, const char *kind,
                    const char *ws, uint64_t expires, char secret[AUTH_SECRET_LEN + 1],
                    char id[AUTH_TOKEN_ID_LEN + 1], cairn_err_t *err);

/* ---- password hashing off the loop thread (hasher.c) ---- */
enum { HASH_MAKE, HASH_VERIFY };
typedef struct hash_job hash_job_t;
typedef void(hash_done_fn)(auth_t *a, hash_job_t *job);
struct hash_job {
    int op;
    char *password; /* owned; wiped when the job is freed */
    size_t password_len;
    char stored[crypto_pwhash_STRBYTES]; /* VERIFY: the hash; MAKE: the result */
    int rc;                              /* 0: made / matched; -1: not */
    cairn_req_t *req;                    /* deferred; answered by done */
    hash_done_fn *done;                  /* on the loop thread */
    char user[AUTH_NAME_MAX + 1];
    char *next_password; /* change_password: hashed once the old one matched */
    size_t next_password_len;
    bool no_user; /* login: the dummy hash was checked, so refuse whatever it says */
    hash_job_t *next;
};
/* A job for op on password (copied); NULL when out of memory. */
hash_job_t *hash_job_new(int op, const char *password, size_t len);
void hash_job_free(hash_job_t *job);
hasher_t *hasher_start(uint64_t ops, size_t mem, cairn_err_t *err);
void hasher_stop(hasher_t **self_p);
/* Queue job (the request is deferred here); 429 when the queue is full,
 * then the job is still the caller's. */
int auth_hash(auth_t *a, hash_job_t *job, cairn_err_t *err);

/* ---- verbs ---- */
cairn_verb_fn auth_login, auth_whoami, auth_create_user, auth_delete_user,
    auth_change_password;
cairn_verb_fn auth_create_token, auth_revoke_token, auth_list_tokens, auth_resolve;
cairn_verb_fn auth_define_role, auth_assign_role, auth_unassign_role, auth_list_roles;
cairn_verb_fn auth_create_workspace, auth_list_workspaces, auth_delete_workspace;

/* ---- the owner bootstrap (tokens.c) ---- */
int auth_bootstrap(auth_t *a, cairn_err_t *err);

#endif
