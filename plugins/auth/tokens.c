/* Tokens: API tokens (create_token), login tokens (users.c) and the owner
 * token made at first start; revoke, list, and resolve (the kernel's
 * question: who is this token, and what may they do).
 *
 * A token is AUTH_TOKEN_PREFIX plus 32 random bytes in base64url. Only its
 * BLAKE2b-256 hash is stored; the secret is shown once, in the reply that
 * made it (or in owner.token). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"

static void s_token_hash(const char *secret, size_t len,
                         unsigned char out[crypto_generichash_BYTES])
{
    crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)secret,
                       len, NULL, 0);
}

int auth_token_make(auth_t *a, const char *owner, const char *name, const char *kind,
                    const char *ws, uint64_t expires, char secret[AUTH_SECRET_LEN + 1],
                    char id[AUTH_TOKEN_ID_LEN + 1], cairn_err_t *err)
{
    unsigned char raw[AUTH_TOKEN_BYTES], idraw[AUTH_TOKEN_ID_BYTES];
    unsigned char hash[crypto_generichash_BYTES];
    randombytes_buf(raw, sizeof raw);
    randombytes_buf(idraw, sizeof idraw);
    memcpy(secret, AUTH_TOKEN_PREFIX, sizeof AUTH_TOKEN_PREFIX - 1);
    _Static_assert(
        sizeof AUTH_TOKEN_PREFIX - 1 +
                sodium_base64_ENCODED_LEN(AUTH_TOKEN_BYTES,
                                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) ==
            AUTH_SECRET_LEN + 1,
        "AUTH_SECRET_LEN");
    sodium_bin2base64(secret + sizeof AUTH_TOKEN_PREFIX - 1,
                      AUTH_SECRET_LEN + 1 - (sizeof AUTH_TOKEN_PREFIX - 1), raw,
                      sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    sodium_bin2hex(id, AUTH_TOKEN_ID_LEN + 1, idraw, sizeof idraw);
    s_token_hash(secret, AUTH_SECRET_LEN, hash);
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_TOKEN_INSERT);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, hash, sizeof hash, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (int64_t)cairn_wall_ms());
    sqlite3_bind_int64(st, 7, (int64_t)expires);
    sqlite3_bind_text(st, 8, ws ? ws : "", -1, SQLITE_STATIC);
    int rc = auth_db_exec(a->db, st, "store a token", err);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Write the owner's secret to path: created here (O_EXCL, 0600), written
 * and synced, or nothing left behind. */
static int s_write_owner_file(const char *path, const char *secret, cairn_err_t *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        return cairn_err_set(
            err, CAIRN_ST_INTERNAL, CAIRN_E_INIT_FAILED,
            "%s exists, but the auth database holds no token: it "
            "belongs to another database; move it away and start again",
            path);
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INIT_FAILED,
                             "cannot create %s: %s", path, strerror(errno));
    char line[AUTH_SECRET_LEN + 2];
    int n = snprintf(line, sizeof line, "%s\n", secret);
    bool ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    sodium_memzero(line, sizeof line);
    int saved = errno;
    close(fd);
    if (ok) return 0;
    unlink(path);
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INIT_FAILED,
                         "cannot write %s: %s", path, strerror(saved));
}

/* Make the owner principal, its Owner role everywhere and its token, in one
 * transaction that commits only once owner.token is on disk. */
static int s_bootstrap_owner(auth_t *a, const char *path, cairn_err_t *err)
{
    char secret[AUTH_SECRET_LEN + 1], id[AUTH_TOKEN_ID_LEN + 1];
    if (auth_db_tx(a->db, AST_BEGIN, err) != 0) return -1;
    sqlite3_stmt *u = auth_db_stmt(a->db, AST_USER_INSERT);
    sqlite3_bind_text(u, 1, AUTH_OWNER, -1, SQLITE_STATIC);
    sqlite3_bind_null(u, 2); /* no password: the owner logs in with its token */
    sqlite3_bind_int64(u, 3, (int64_t)cairn_wall_ms());
    sqlite3_stmt *r = auth_db_stmt(a->db, AST_ASSIGN_INSERT);
    sqlite3_bind_text(r, 1, AUTH_OWNER, -1, SQLITE_STATIC);
    sqlite3_bind_text(r, 2, "Owner", -1, SQLITE_STATIC);
    sqlite3_bind_text(r, 3, AUTH_ALL_WS, -1, SQLITE_STATIC);
    int rc = -1;
    if (auth_db_exec(a->db, u, "create the owner", err) == 0 &&
        auth_db_exec(a->db, r, "make the owner an Owner", err) == 0 &&
        auth_token_make(a, AUTH_OWNER, "owner", "api", "", 0, secret, id, err) == 0 &&
        s_write_owner_file(path, secret, err) == 0) {
        rc = auth_db_tx(a->db, AST_COMMIT, err);
        if (rc != 0) unlink(path);
    }
    sodium_memzero(secret, sizeof secret);
    if (rc != 0) {
        cairn_err_t ignored = {0};
        auth_db_tx(a->db, AST_ROLLBACK, &ignored);
        return -1;
    }
    cairn_log(a->ctx, CAIRN_LOG_INFO, "wrote the owner token (id %s) to %s", id, path);
    return 0;
}

int auth_bootstrap(auth_t *a, cairn_err_t *err)
{
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_TOKEN_COUNT);
    if (sqlite3_step(st) != SQLITE_ROW) return auth_db_fail(a->db, "count tokens", err);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (n > 0) return 0; /* only a database that never held a token */
    char path[4096];
    snprintf(path, sizeof path, "%s/owner.token", cairn_state_dir(a->ctx));
    return s_bootstrap_owner(a, path, err);
}

/* create_token {name*, expires_in, owner, ws}: owner (another principal's
 * token) needs admin rights; by default the token is the caller's. ws
 * holds the token to that one workspace (a job's token). */
int auth_create_token(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    const msgpack_object *b = cairn_body(req);
    char name[AUTH_NAME_MAX + 1], owner[AUTH_NAME_MAX + 1], ws[AUTH_NAME_MAX + 1] = "";
    uint64_t expires_in = 0;
    int has_owner;
    if (auth_field_name(b, "name", true, NULL, name, err) != 0 ||
        cairn_field_uint(b, "expires_in", false, &expires_in, err) < 0 ||
        (has_owner = auth_field_name(b, "owner", false, auth_user_char, owner, err)) <
            0 ||
        auth_field_name(b, "ws", false, auth_ws_char, ws, err) < 0)
        return -1;
    if (expires_in > AUTH_EXPIRES_IN_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "expires_in is at most %llu seconds (ten years); 0 or "
                             "absent means never",
                             (unsigned long long)AUTH_EXPIRES_IN_MAX);
    const char *me = cairn_principal(req);
    if (has_owner == 0 && strcmp(owner, me) != 0 && !auth_is_admin(a, req))
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "only an admin (auth.admin) may make tokens for another "
                             "principal");
    if (has_owner != 0) snprintf(owner, sizeof owner, "%s", me);
    uint64_t expires = expires_in ? cairn_wall_ms() + expires_in * 1000 : 0;
    char secret[AUTH_SECRET_LEN + 1], id[AUTH_TOKEN_ID_LEN + 1];
    if (auth_token_make(a, owner, name, "api", ws, expires, secret, id, err) != 0)
        return -1;
    cairn_name_object(req, "token", id, strlen(id));
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 3);
    cairn_pack_kv_str(pk, "token", secret);
    cairn_pack_kv_str(pk, "token_id", id);
    cairn_pack_cstr(pk, "expires");
    msgpack_pack_uint64(pk, expires);
    sodium_memzero(secret, sizeof secret);
    auth_reply_send(a, req);
    sodium_memzero(a->sb.data, a->sb.size); /* the secret lived there too */
    return 0;
}

/* revoke_token {token_id*}: one's own, or anyone's for an admin. */
int auth_revoke_token(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    char id[AUTH_NAME_MAX + 1];
    if (auth_field_name(cairn_body(req), "token_id", true, auth_ws_char, id, err) != 0)
        return -1;
    cairn_name_object(req, "token", id, strlen(id));
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_TOKEN_OWNER);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    bool mine = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0),
                                           cairn_principal(req)) == 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return auth_db_fail(a->db, "look a token up", err);
    if (rc == SQLITE_DONE)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no live token has the id '%s'", id);
    if (!mine && !auth_is_admin(a, req))
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "token %s is not yours; only an admin (auth.admin) may "
                             "revoke another principal's token",
                             id);
    st = auth_db_stmt(a->db, AST_TOKEN_REVOKE);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    if (auth_db_exec(a->db, st, "revoke a token", err) != 0) return -1;
    auth_changed(a, "token_id", id);
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "token_id", id);
    return auth_reply_send(a, req);
}

static void s_pack_token_row(msgpack_packer *pk, sqlite3_stmt *st)
{
    static const char *const keys[] = {"token_id", "name",    "owner",
                                       "created",  "expires", "last_used"};
    msgpack_pack_map(pk, 6);
    for (int c = 0; c < 6; c++) {
        cairn_pack_cstr(pk, keys[c]);
        if (c < 3)
            cairn_pack_cstr(pk, (const char *)sqlite3_column_text(st, c));
        else
            msgpack_pack_int64(pk, sqlite3_column_int64(st, c));
    }
}

/* list_tokens: the caller's live tokens, or everyone's for an admin. */
int auth_list_tokens(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_TOKEN_LIST);
    if (!auth_is_admin(a, req))
        sqlite3_bind_text(st, 1, cairn_principal(req), -1, SQLITE_TRANSIENT);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        s_pack_token_row(&rp, st);
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        msgpack_sbuffer_destroy(&rows);
        return auth_db_fail(a->db, "list tokens", err);
    }
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "tokens");
    msgpack_pack_array(pk, n);
    msgpack_sbuffer_write(&a->sb, rows.data, rows.size);
    msgpack_sbuffer_destroy(&rows);
    return auth_reply_send(a, req);
}

static int s_unauthenticated(cairn_err_t *err)
{
    /* One sentence for unknown, revoked and expired alike, never quoting
     * the token: a probe learns nothing. */
    return cairn_err_set(err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                         "the token is unknown, revoked or expired");
}

/* last_used is written at most once a minute per token: resolves are
 * frequent and a write each would cost a synced commit. */
static void s_touch(auth_t *a, const char *id, int64_t last_used)
{
    int64_t now = (int64_t)cairn_wall_ms();
    if (now - last_used < AUTH_LAST_USED_MS) return;
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_TOKEN_TOUCH);
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    cairn_err_t ignored = {0};
    if (auth_db_exec(a->db, st, "note a token's use", &ignored) != 0)
        cairn_log(a->ctx, CAIRN_LOG_WARN, "%s", ignored.msg);
}

/* resolve {token*} -> {principal, token_id, expires, grants, workspaces}
 * (workspaces: the names of all that exist, for the kernel's check). */
int auth_resolve(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    cairn_str_t tok;
    if (cairn_field_str(cairn_body(req), "token", true, 0, &tok, err) != 0) return -1;
    if (tok.len != AUTH_SECRET_LEN ||
        memcmp(tok.ptr, AUTH_TOKEN_PREFIX, sizeof AUTH_TOKEN_PREFIX - 1) != 0)
        return s_unauthenticated(err);
    unsigned char hash[crypto_generichash_BYTES];
    s_token_hash(tok.ptr, tok.len, hash);
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_TOKEN_BY_HASH);
    sqlite3_bind_blob(st, 1, hash, sizeof hash, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) return sqlite3_reset(st), s_unauthenticated(err);
    if (rc != SQLITE_ROW)
        return sqlite3_reset(st), auth_db_fail(a->db, "find a token", err);
    char id[AUTH_TOKEN_ID_LEN + 1], owner[AUTH_NAME_MAX + 1];
    snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(owner, sizeof owner, "%s", (const char *)sqlite3_column_text(st, 2));
    bool same = sqlite3_column_bytes(st, 1) == (int)sizeof hash &&
                sodium_memcmp(sqlite3_column_blob(st, 1), hash, sizeof hash) == 0;
    int64_t expires = sqlite3_column_int64(st, 3),
            last_used = sqlite3_column_int64(st, 4);
    bool revoked = sqlite3_column_int(st, 5) != 0;
    char only_ws[AUTH_NAME_MAX + 1];
    snprintf(only_ws, sizeof only_ws, "%s", (const char *)sqlite3_column_text(st, 6));
    sqlite3_reset(st);
    if (!same || revoked || (expires && expires <= (int64_t)cairn_wall_ms()))
        return s_unauthenticated(err);
    s_touch(a, id, last_used);
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 5);
    cairn_pack_kv_str(pk, "principal", owner);
    cairn_pack_kv_str(pk, "token_id", id);
    cairn_pack_cstr(pk, "expires");
    msgpack_pack_int64(pk, expires);
    cairn_pack_cstr(pk, "grants");
    if (auth_pack_grants(a, pk, owner, only_ws, err) != 0) return -1;
    cairn_pack_cstr(pk, "workspaces");
    if (auth_pack_workspace_names(a, pk, err) != 0) return -1;
    return auth_reply_send(a, req);
}
