/* The secrets plugin: a key vault. Values are sealed at rest (vault.h)
 * in the plugin's own SQLite file, one row per (workspace, name); a value
 * is only ever in the clear in sodium_malloc'd memory (locked, out of core
 * dumps, zeroed) and in the get_secret reply. Never logged, never in an
 * error sentence. Verbs: set_secret, get_secret, list_secrets (names and
 * metadata only), delete_secret, rotate_master_key. */
#define _GNU_SOURCE
#define CAIRN_PLUGIN_SOURCE
#include <sodium.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/plugin.h"
#include "sqlite_util.h"
#include "vault.h"

#define NAME_MAX_LEN 128
#define VALUE_MAX (64u * 1024u)
#define AD_MAX (64 + 1 + NAME_MAX_LEN)

typedef struct settings {
    const char *db;      /* "" = STATE/secrets.db */
    const char *key;     /* "" = STATE/secrets.key */
    const char *key_env; /* a variable holding the key in hex, when set */
} settings_t;

#define AT(f) offsetof(settings_t, f)
static const cairn_setting_t secrets_settings[] = {
    {.key = "db",
     .type = CAIRN_CONF_PATH,
     .offset = AT(db),
     .dflt = "",
     .help = "the SQLite file of sealed values (default: STATE/secrets.db)"},
    {.key = "key_file",
     .type = CAIRN_CONF_PATH,
     .offset = AT(key),
     .dflt = "",
     .help = "the master key file, mode 0600, created at the first start (default: "
             "STATE/secrets.key)"},
    {.key = "key_env",
     .type = CAIRN_CONF_STR,
     .offset = AT(key_env),
     .dflt = "CAIRN_SECRETS_KEY",
     .help = "an environment variable that, when set, holds the master key (64 hex "
             "characters) instead of the file"},
    {.key = NULL},
};
#undef AT

enum {
    Q_PUT,
    Q_GET,
    Q_LIST,
    Q_DELETE,
    Q_ALL,
    Q_RESEAL,
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_COUNT
};

static const char *const s_sql[Q_COUNT] = {
    [Q_PUT] =
        "INSERT INTO secrets (ws, name, sealed, key_id, created, updated, version) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1) ON CONFLICT (ws, name) DO UPDATE SET "
        "sealed = excluded.sealed, key_id = excluded.key_id, updated = "
        "excluded.updated, version = version + 1 RETURNING version",
    [Q_GET] = "SELECT sealed, key_id, version FROM secrets WHERE ws = ? AND name = ?",
    [Q_LIST] = ("SELECT name, created, updated, version FROM secrets WHERE ws = ? AND "
                "name > ? ORDER BY name LIMIT ?"),
    [Q_DELETE] = "DELETE FROM secrets WHERE ws = ? AND name = ?",
    [Q_ALL] = "SELECT ws, name, sealed, key_id FROM secrets WHERE key_id != ?",
    [Q_RESEAL] = "UPDATE secrets SET sealed = ?, key_id = ? WHERE ws = ? AND name = ?",
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
};

static const char s_schema[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS secrets (ws TEXT NOT NULL, name TEXT NOT NULL, "
    "sealed BLOB NOT NULL, key_id INTEGER NOT NULL, created INTEGER NOT NULL, "
    "updated INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (ws, name))"
    " WITHOUT ROWID;";

typedef struct secrets {
    cairn_ctx_t *ctx;
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    vault_t *vault;
    unsigned char *plain; /* sodium_malloc'd, VALUE_MAX: a value in the clear */
    msgpack_sbuffer sb;
} secrets_t;

static int s_db_fail(secrets_t *s, const char *doing, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE, "secrets: %s: %s",
                         doing, s->db ? sqlite3_errmsg(s->db) : "no database");
}

static int s_step_done(secrets_t *s, sqlite3_stmt *st, const char *doing,
                       cairn_err_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : s_db_fail(s, doing, err);
}

/* The associated data of a row: "ws\0name". */
static size_t s_ad(char *ad, const char *ws, cairn_str_t name)
{
    size_t w = strlen(ws);
    memcpy(ad, ws, w);
    ad[w] = '\0';
    memcpy(ad + w + 1, name.ptr, name.len);
    return w + 1 + name.len;
}

static int s_name(const msgpack_object *b, cairn_str_t *name, cairn_err_t *err)
{
    if (cairn_field_str(b, "name", true, NAME_MAX_LEN, name, err) != 0) return -1;
    if (!name->len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'name' must not be empty");
    for (size_t i = 0; i < name->len; i++) {
        char c = name->ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/'))
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "a secret's name holds letters, digits and . _ - / only");
    }
    return 0;
}

static const char *s_ws(cairn_req_t *req)
{
    const char *ws = cairn_workspace(req);
    return ws && *ws ? ws : "default";
}

static int s_reply_map0(secrets_t *s, cairn_req_t *req, int st)
{
    msgpack_sbuffer_clear(&s->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 0);
    cairn_reply_sbuf(req, st, &s->sb);
    return 0;
}

/* set_secret {name*, value*}: str or bin, at most 64 KiB. */
static int secrets_set(void *state, cairn_req_t *req, cairn_err_t *err)
{
    secrets_t *s = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name;
    if (s_name(b, &name, err) != 0) return -1;
    cairn_name_object(req, "secret", name.ptr, name.len);
    const msgpack_object *v = cairn_obj_get(b, "value");
    if (!v || (v->type != MSGPACK_OBJECT_STR && v->type != MSGPACK_OBJECT_BIN))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'value' (str or bin) is required");
    const char *ptr = v->type == MSGPACK_OBJECT_STR ? v->via.str.ptr : v->via.bin.ptr;
    size_t n = v->type == MSGPACK_OBJECT_STR ? v->via.str.size : v->via.bin.size;
    if (n > VALUE_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "a secret's value is at most %u bytes", VALUE_MAX);
    size_t slen = n + VAULT_NONCE_BYTES + VAULT_TAG_BYTES;
    unsigned char *sealed = malloc(slen);
    if (!sealed) return cairn_err_oom(err, "sealing a value");
    char ad[AD_MAX + 1];
    size_t ad_len = s_ad(ad, s_ws(req), name);
    uint32_t kid = vault_key_id(s->vault);
    int rc = vault_seal(s->vault, kid, (const unsigned char *)ptr, n, ad, ad_len,
                        sealed, err);
    sqlite3_stmt *st = s->q[Q_PUT];
    if (rc == 0) {
        sqlite3_bind_text(st, 1, s_ws(req), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name.ptr, (int)name.len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, sealed, (int)slen, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, kid);
        sqlite3_bind_int64(st, 5, (int64_t)cairn_wall_ms());
        rc = sqlite3_step(st) == SQLITE_ROW ? 0 : s_db_fail(s, "store a secret", err);
    }
    int64_t version = rc == 0 ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(sealed);
    if (rc != 0) return -1;
    msgpack_sbuffer_clear(&s->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "name");
    cairn_pack_strn(&pk, name.ptr, name.len);
    cairn_pack_cstr(&pk, "version");
    msgpack_pack_int64(&pk, version);
    cairn_reply_sbuf(req, version == 1 ? CAIRN_ST_CREATED : CAIRN_ST_OK, &s->sb);
    return 0;
}

/* get_secret {name*} -> value (as stored: the bytes set_secret took, a str
 * when they are UTF-8), version. */
static int secrets_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    secrets_t *s = state;
    cairn_str_t name;
    if (s_name(cairn_body(req), &name, err) != 0) return -1;
    sqlite3_stmt *st = s->q[Q_GET];
    sqlite3_bind_text(st, 1, s_ws(req), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name.ptr, (int)name.len, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step != SQLITE_ROW) {
        sqlite3_reset(st);
        return step == SQLITE_DONE
                   ? cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                   "no secret is named '%.*s' in this workspace",
                                   (int)name.len, name.ptr)
                   : s_db_fail(s, "read a secret", err);
    }
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    char ad[AD_MAX + 1];
    size_t ad_len = s_ad(ad, s_ws(req), name);
    size_t n = len >= VAULT_NONCE_BYTES + VAULT_TAG_BYTES
                   ? len - VAULT_NONCE_BYTES - VAULT_TAG_BYTES
                   : 0;
    int rc = n <= VALUE_MAX
                 ? vault_open_value(s->vault, (uint32_t)sqlite3_column_int64(st, 1),
                                    sqlite3_column_blob(st, 0), len, ad, ad_len,
                                    s->plain, err)
                 : cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                                 "secrets: a stored value is too long");
    int64_t version = sqlite3_column_int64(st, 2);
    sqlite3_reset(st);
    if (rc != 0) return -1;
    msgpack_sbuffer_clear(&s->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "value");
    if (cairn_utf8_valid((const char *)s->plain, n)) {
        msgpack_pack_str(&pk, n);
        msgpack_pack_str_body(&pk, s->plain, n);
    } else {
        msgpack_pack_bin(&pk, n);
        msgpack_pack_bin_body(&pk, s->plain, n);
    }
    cairn_pack_cstr(&pk, "version");
    msgpack_pack_int64(&pk, version);
    sodium_memzero(s->plain, n);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &s->sb);
    sodium_memzero(s->sb.data, s->sb.size);
    return 0;
}

/* list_secrets {max_results, page_token} -> secrets [{name, created,
 * updated, version}] (never a value), next_page_token. */
static int secrets_list(void *state, cairn_req_t *req, cairn_err_t *err)
{
    secrets_t *s = state;
    const msgpack_object *b = cairn_body(req);
    uint64_t max = 1000;
    cairn_str_t after = {"", 0};
    if (cairn_field_uint(b, "max_results", false, &max, err) < 0 ||
        cairn_field_str(b, "page_token", false, NAME_MAX_LEN, &after, err) < 0)
        return -1;
    if (max < 1 || max > 1000)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "max_results is from 1 to 1000");
    sqlite3_stmt *st = s->q[Q_LIST];
    sqlite3_bind_text(st, 1, s_ws(req), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after.ptr, (int)after.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)max + 1);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    size_t n = 0;
    char last[NAME_MAX_LEN + 1] = "";
    bool more = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == max) {
            more = true;
            break;
        }
        const char *nm = (const char *)sqlite3_column_text(st, 0);
        snprintf(last, sizeof last, "%s", nm);
        msgpack_pack_map(&rp, 4);
        cairn_pack_kv_str(&rp, "name", nm);
        cairn_pack_cstr(&rp, "created");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 1));
        cairn_pack_cstr(&rp, "updated");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 2));
        cairn_pack_cstr(&rp, "version");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 3));
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        msgpack_sbuffer_destroy(&rows);
        return s_db_fail(s, "list the secrets", err);
    }
    msgpack_sbuffer_clear(&s->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, more ? 2 : 1);
    cairn_pack_cstr(&pk, "secrets");
    msgpack_pack_array(&pk, n);
    msgpack_sbuffer_write(&s->sb, rows.data, rows.size);
    if (more) cairn_pack_kv_str(&pk, "next_page_token", last);
    msgpack_sbuffer_destroy(&rows);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &s->sb);
    return 0;
}

static int secrets_delete(void *state, cairn_req_t *req, cairn_err_t *err)
{
    secrets_t *s = state;
    cairn_str_t name;
    if (s_name(cairn_body(req), &name, err) != 0) return -1;
    cairn_name_object(req, "secret", name.ptr, name.len);
    sqlite3_stmt *st = s->q[Q_DELETE];
    sqlite3_bind_text(st, 1, s_ws(req), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name.ptr, (int)name.len, SQLITE_STATIC);
    if (s_step_done(s, st, "delete a secret", err) != 0) return -1;
    if (sqlite3_changes(s->db) == 0)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no secret is named '%.*s' in this workspace",
                             (int)name.len, name.ptr);
    return s_reply_map0(s, req, CAIRN_ST_OK);
}

/* Re-seal every row not under key kid with it, in the caller's
 * transaction; *count gets how many. */
static int s_reseal_all(secrets_t *s, uint32_t kid, int64_t *count, cairn_err_t *err)
{
    sqlite3_stmt *all = s->q[Q_ALL], *up = s->q[Q_RESEAL];
    sqlite3_bind_int64(all, 1, kid);
    int rc = 0, step;
    *count = 0;
    unsigned char *sealed = malloc(VALUE_MAX + VAULT_NONCE_BYTES + VAULT_TAG_BYTES);
    if (!sealed) rc = cairn_err_oom(err, "re-sealing");
    while (rc == 0 && (step = sqlite3_step(all)) == SQLITE_ROW) {
        const char *ws = (const char *)sqlite3_column_text(all, 0);
        cairn_str_t name = {(const char *)sqlite3_column_text(all, 1),
                            (size_t)sqlite3_column_bytes(all, 1)};
        size_t len = (size_t)sqlite3_column_bytes(all, 2);
        char ad[AD_MAX + 1];
        if (len < VAULT_NONCE_BYTES + VAULT_TAG_BYTES ||
            len > VALUE_MAX + VAULT_NONCE_BYTES + VAULT_TAG_BYTES || strlen(ws) > 64 ||
            name.len > NAME_MAX_LEN) {
            rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                               "secrets: a stored row is malformed");
            break;
        }
        size_t ad_len = s_ad(ad, ws, name),
               n = len - VAULT_NONCE_BYTES - VAULT_TAG_BYTES;
        rc = vault_open_value(s->vault, (uint32_t)sqlite3_column_int64(all, 3),
                              sqlite3_column_blob(all, 2), len, ad, ad_len, s->plain,
                              err);
        if (rc == 0)
            rc = vault_seal(s->vault, kid, s->plain, n, ad, ad_len, sealed, err);
        sodium_memzero(s->plain, n);
        if (rc != 0) break;
        sqlite3_bind_blob(up, 1, sealed, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(up, 2, kid);
        sqlite3_bind_text(up, 3, ws, -1, SQLITE_STATIC);
        sqlite3_bind_text(up, 4, name.ptr, (int)name.len, SQLITE_STATIC);
        rc = s_step_done(s, up, "re-seal a secret", err);
        (*count)++;
    }
    sqlite3_reset(all);
    free(sealed);
    return rc;
}

/* Re-seal everything under the next key and make it current. */
static int s_rotate(secrets_t *s, uint32_t next, int64_t *count, cairn_err_t *err)
{
    if (s_step_done(s, s->q[Q_BEGIN], "begin", err) != 0) return -1;
    if (s_reseal_all(s, next, count, err) != 0 ||
        s_step_done(s, s->q[Q_COMMIT], "commit the re-sealed values", err) != 0) {
        s_step_done(s, s->q[Q_ROLLBACK], "roll back", &(cairn_err_t){0});
        return -1;
    }
    return vault_rotate_commit(s->vault, err);
}

/* rotate_master_key {} -> key_id, resealed. */
static int secrets_rotate(void *state, cairn_req_t *req, cairn_err_t *err)
{
    secrets_t *s = state;
    uint32_t next = 0;
    int64_t count = 0;
    if (vault_rotate_begin(s->vault, &next, err) != 0) return -1;
    if (s_rotate(s, next, &count, err) != 0) {
        vault_rotate_abort(s->vault);
        return -1;
    }
    cairn_log(s->ctx, CAIRN_LOG_INFO, "secrets: master key %u now seals %lld values",
              next, (long long)count);
    msgpack_sbuffer_clear(&s->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "key_id");
    msgpack_pack_uint32(&pk, next);
    cairn_pack_cstr(&pk, "resealed");
    msgpack_pack_int64(&pk, count);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &s->sb);
    return 0;
}

static char *s_path_or(cairn_ctx_t *ctx, const char *set, const char *leaf)
{
    char *p = NULL;
    if (set && *set) return strdup(set);
    return asprintf(&p, "%s/%s", cairn_state_dir(ctx), leaf) < 0 ? NULL : p;
}

static int s_db_open(secrets_t *s, const char *path, cairn_err_t *err)
{
    return cairn_sqlite_open(path, "the secrets database", 5000, &s->db, err) != 0 ||
                   cairn_sqlite_exec(s->db, "the secrets database", s_schema,
                                     "create its schema", err) != 0 ||
                   cairn_sqlite_prepare(s->db, "the secrets database", s_sql, Q_COUNT,
                                        s->q, err) != 0
               ? -1
               : 0;
}

static void secrets_fini(void *state)
{
    secrets_t *s = state;
    if (!s) return;
    cairn_sqlite_finalize(s->q, Q_COUNT);
    sqlite3_close(s->db);
    vault_close(&s->vault);
    if (s->plain) sodium_free(s->plain);
    msgpack_sbuffer_destroy(&s->sb);
    free(s);
}

static int secrets_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
                             "secrets: this host predates typed settings");
    secrets_t *s = calloc(1, sizeof *s);
    if (!s) return cairn_err_oom(err, NULL);
    s->ctx = ctx;
    msgpack_sbuffer_init(&s->sb);
    char *db = s_path_or(ctx, set->db, "secrets.db");
    char *key = s_path_or(ctx, set->key, "secrets.key");
    int rc = !db || !key || !(s->plain = sodium_malloc(VALUE_MAX))
                 ? cairn_err_oom(err, NULL)
             : !(s->vault = vault_open(key, set->key_env, err)) ? -1
                                                                : s_db_open(s, db, err);
    /* A rotation cut short by a crash: finish it before serving. */
    int64_t count = 0;
    if (rc == 0 && vault_has_key(s->vault, vault_key_id(s->vault) + 1))
        rc = s_rotate(s, vault_key_id(s->vault) + 1, &count, err);
    free(db);
    free(key);
    if (rc != 0) {
        secrets_fini(s);
        return -1;
    }
    *state = s;
    return 0;
}

static const cairn_verb_t secrets_verbs[] = {
    {.name = "set_secret",
     .handle = secrets_set,
     .perm = "secrets.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .max_body = VALUE_MAX + 1024,
     .help = "{name*, value* (str or bin, <= 64 KiB)} -> name, version"},
    {.name = "get_secret",
     .handle = secrets_get,
     .perm = "secrets.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 1024,
     .help = "{name*} -> value, version"},
    {.name = "list_secrets",
     .handle = secrets_list,
     .perm = "secrets.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 1024,
     .help =
         "{max_results, page_token} -> secrets [{name, created, updated, version}]"},
    {.name = "delete_secret",
     .handle = secrets_delete,
     .perm = "secrets.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = 1024,
     .help = "{name*}"},
    {.name = "rotate_master_key",
     .handle = secrets_rotate,
     .perm = "secrets.admin",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = 1024,
     .help = "{} -> key_id, resealed: every value re-sealed under a new master key"},
    {.name = NULL},
};

static const cairn_plugin_t secrets_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "secrets",
    .version = "1.0.0",
    .description = "a key vault: values sealed at rest (XChaCha20-Poly1305)",
    .verbs = secrets_verbs,
    .settings = secrets_settings,
    .settings_size = sizeof(settings_t),
    .init = secrets_init,
    .fini = secrets_fini,
    .concurrency = 64,
};

CAIRN_PLUGIN_DEFINE(secrets_plugin)
