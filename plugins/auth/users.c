/* Users: passwords (Argon2id, libsodium's crypto_pwhash_str form), login,
 * and the throttle on wrong passwords.
 *
 * Hashing runs on the hashing thread (hasher.c): a verb that hashes checks
 * its body, queues a job and defers; the job's continuation (here, on the
 * loop thread) writes the database and replies.
 *
 * Throttle: after max_failures wrong passwords in a row for one user name
 * (existing or not), logins for it are refused 429 for lockout_ms, doubling
 * with each further failure up to an hour; a right password clears it.
 * The same holds per client address (a guesser trying many names), at
 * addr_failures (10 times the count by default, since many users may share
 * one address: a NAT; loopback clients only with throttle_loopback); a right
 * password does not clear an address (a guesser's own
 * account would), but AUTH_ADDR_FORGET_MS without failures does. The checks
 * come before any hashing, so that a locked-out guesser costs no CPU.
 * Remembered in memory (AUTH_THROTTLE_SLOTS entries, the least recently
 * touched forgotten first): a restart forgives. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static auth_throttle_t *s_throttle_find(auth_t *a, const char *user, bool make)
{
    auth_throttle_t *oldest = &a->throttle[0];
    for (size_t i = 0; i < AUTH_THROTTLE_SLOTS; i++) {
        auth_throttle_t *t = &a->throttle[i];
        if (t->user[0] && strcmp(t->user, user) == 0) return t;
        if (!t->user[0] || (oldest->user[0] && t->touched < oldest->touched))
            oldest = t;
    }
    if (!make) return NULL;
    memset(oldest, 0, sizeof *oldest);
    snprintf(oldest->user, sizeof oldest->user, "%s", user);
    return oldest;
}

static bool s_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
           strncmp(addr, "::ffff:127.", 11) == 0;
}

/* The throttle entry of req's client address ("" when it has none, or when
 * loopback clients are not throttled per address). */
static void s_addr_key(auth_t *a, cairn_req_t *req, char key[AUTH_NAME_MAX + 2])
{
    const char *addr = cairn_peer_address(req);
    if (*addr && (a->set->throttle_loopback || !s_loopback(addr)))
        snprintf(key, AUTH_NAME_MAX + 2, "@%s", addr);
    else
        key[0] = '\0';
}

static int s_throttle_check_one(auth_t *a, const char *key, cairn_err_t *err)
{
    auth_throttle_t *t = key[0] ? s_throttle_find(a, key, false) : NULL;
    uint64_t now = cairn_now_ms();
    if (!t || t->locked_until <= now) return 0;
    uint64_t secs = (t->locked_until - now + 999) / 1000;
    return cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                         "too many wrong passwords %s '%s': try again in %llu s",
                         key[0] == '@' ? "from" : "for", key + (key[0] == '@'),
                         (unsigned long long)secs);
}

/* 429 when the user name, or the address req comes from, is locked out. */
static int s_throttle_check(auth_t *a, cairn_req_t *req, const char *user,
                            cairn_err_t *err)
{
    char addr[AUTH_NAME_MAX + 2];
    s_addr_key(a, req, addr);
    return s_throttle_check_one(a, user, err) != 0 ? -1
                                                   : s_throttle_check_one(a, addr, err);
}

static void s_throttle_fail_one(auth_t *a, const char *key, uint64_t max)
{
    auth_throttle_t *t = s_throttle_find(a, key, true);
    uint64_t now = cairn_now_ms();
    if (key[0] == '@' && t->touched && now - t->touched > AUTH_ADDR_FORGET_MS)
        t->failures = 0;
    t->touched = now;
    t->failures++;
    if (t->failures < max) return;
    uint64_t shift = t->failures - max, ms = (uint64_t)a->set->lockout_ms;
    for (; shift && ms < AUTH_LOCKOUT_MAX_MS; shift--) ms *= 2;
    t->locked_until = now + (ms < AUTH_LOCKOUT_MAX_MS ? ms : AUTH_LOCKOUT_MAX_MS);
    cairn_log(a->ctx, CAIRN_LOG_WARN, "%u wrong passwords %s '%s': locked for %llu ms",
              t->failures, key[0] == '@' ? "from" : "for", key + (key[0] == '@'),
              (unsigned long long)(t->locked_until - now));
}

/* A wrong password for user, from req's address. */
static void s_throttle_fail(auth_t *a, cairn_req_t *req, const char *user)
{
    uint64_t max = (uint64_t)a->set->max_failures;
    char addr[AUTH_NAME_MAX + 2];
    s_addr_key(a, req, addr);
    s_throttle_fail_one(a, user, max);
    uint64_t addr_max =
        a->set->addr_failures ? (uint64_t)a->set->addr_failures : max * 10;
    if (addr[0]) s_throttle_fail_one(a, addr, addr_max);
}

static void s_throttle_clear(auth_t *a, const char *user)
{
    auth_throttle_t *t = s_throttle_find(a, user, false);
    if (t) memset(t, 0, sizeof *t);
}

/* The user's stored hash: 0, 1 when there is no such user or it has no
 * password (the owner), -1 on error. */
static int s_user_hash(auth_t *a, const char *user, char out[crypto_pwhash_STRBYTES],
                       cairn_err_t *err)
{
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_USER_GET);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT;
    if (found) snprintf(out, crypto_pwhash_STRBYTES, "%s", sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return auth_db_fail(a->db, "look a user up", err);
    return found ? 0 : 1;
}

/* Queue job for req, or answer req's error here when the request is
 * already deferred (a follow-up job). */
static int s_queue(auth_t *a, hash_job_t *job, cairn_err_t *err)
{
    if (auth_hash(a, job, err) == 0) return 0;
    hash_job_free(job);
    return -1;
}

static hash_job_t *s_job(int op, cairn_str_t pw, cairn_req_t *req, hash_done_fn *done,
                         const char *user, cairn_err_t *err)
{
    hash_job_t *j = hash_job_new(op, pw.ptr, pw.len);
    if (!j) {
        cairn_err_oom(err, "queue a password hash");
        return NULL;
    }
    j->req = req;
    j->done = done;
    snprintf(j->user, sizeof j->user, "%s", user);
    return j;
}

/* ---- login ---- */

static int s_login_ok(auth_t *a, hash_job_t *j, cairn_err_t *err)
{
    /* The user may have been deleted, or its password changed, while the
     * hash ran: the token is made only for the hash that was verified. */
    char now_hash[crypto_pwhash_STRBYTES];
    if (s_user_hash(a, j->user, now_hash, err) < 0) return -1;
    if (strcmp(now_hash, j->stored) != 0)
        return cairn_err_set(err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                             "wrong user name or password");
    char secret[AUTH_SECRET_LEN + 1], id[AUTH_TOKEN_ID_LEN + 1];
    uint64_t expires = cairn_wall_ms() + (uint64_t)a->set->login_ttl * 1000;
    if (auth_token_make(a, j->user, "login", "login", "", expires, secret, id, err) !=
        0)
        return -1;
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 3);
    cairn_pack_kv_str(pk, "token", secret);
    cairn_pack_kv_str(pk, "token_id", id);
    cairn_pack_cstr(pk, "expires");
    msgpack_pack_uint64(pk, expires);
    sodium_memzero(secret, sizeof secret);
    auth_reply_send(a, j->req);
    sodium_memzero(a->sb.data, a->sb.size);
    return 0;
}

static void s_login_done(auth_t *a, hash_job_t *j)
{
    cairn_err_t err = {0};
    if (j->rc != 0 || j->no_user) {
        s_throttle_fail(a, j->req, j->user);
        cairn_err_set(&err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                      "wrong user name or password");
    } else {
        s_throttle_clear(a, j->user);
        if (s_login_ok(a, j, &err) == 0) return;
    }
    cairn_reply_err(j->req, &err);
}

/* login {user*, password*} -> {token, token_id, expires}. */
int auth_login(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    const msgpack_object *b = cairn_body(req);
    char user[AUTH_NAME_MAX + 1];
    cairn_str_t pw;
    if (auth_field_name(b, "user", true, auth_user_char, user, err) != 0) return -1;
    cairn_name_object(req, "user", user, strlen(user)); /* failed logins are audited */
    if (auth_field_password(b, "password", true, &pw, err) != 0 ||
        s_throttle_check(a, req, user, err) != 0)
        return -1;
    hash_job_t *j = s_job(HASH_VERIFY, pw, req, s_login_done, user, err);
    if (!j) return -1;
    int found = s_user_hash(a, user, j->stored, err);
    if (found < 0) {
        hash_job_free(j);
        return -1;
    }
    if (found > 0) { /* the same work as a real check, then a refusal */
        memcpy(j->stored, a->dummy_hash, sizeof j->stored);
        j->no_user = true;
    }
    return s_queue(a, j, err);
}

/* ---- create_user ---- */

static void s_create_user_done(auth_t *a, hash_job_t *j)
{
    cairn_err_t err = {0};
    if (j->rc != 0) {
        cairn_err_set(&err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                      "Argon2id could not get pwhash_mem bytes of memory");
        cairn_reply_err(j->req, &err);
        return;
    }
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_USER_INSERT);
    sqlite3_bind_text(st, 1, j->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->stored, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)cairn_wall_ms());
    int rc = auth_db_exec(a->db, st, "create a user", &err);
    sqlite3_clear_bindings(st);
    if (rc != 0) {
        if (err.st == CAIRN_ST_CONFLICT)
            cairn_err_set(&err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                          "user '%s' already exists", j->user);
        cairn_reply_err(j->req, &err);
        return;
    }
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "user", j->user);
    auth_reply_send(a, j->req);
}

static int s_user_exists(auth_t *a, const char *user, cairn_err_t *err)
{
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_USER_GET);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return auth_db_fail(a->db, "look a user up", err);
    return rc == SQLITE_ROW;
}

/* create_user {user*, password*}. */
int auth_create_user(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    const msgpack_object *b = cairn_body(req);
    char user[AUTH_NAME_MAX + 1];
    cairn_str_t pw;
    if (auth_field_name(b, "user", true, auth_user_char, user, err) != 0 ||
        auth_field_password(b, "password", true, &pw, err) != 0)
        return -1;
    cairn_name_object(req, "user", user, strlen(user));
    int exists = s_user_exists(a, user, err);
    if (exists < 0) return -1;
    if (exists) /* said before spending a hash; the insert checks again */
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "user '%s' already exists", user);
    hash_job_t *j = s_job(HASH_MAKE, pw, req, s_create_user_done, user, err);
    return j ? s_queue(a, j, err) : -1;
}

/* ---- delete_user ---- */

/* delete_user {user*}: the user, every token it owns and its role
 * assignments, in one commit. */
int auth_delete_user(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    char user[AUTH_NAME_MAX + 1];
    if (auth_field_name(cairn_body(req), "user", true, auth_user_char, user, err) != 0)
        return -1;
    cairn_name_object(req, "user", user, strlen(user));
    if (auth_db_tx(a->db, AST_BEGIN, err) != 0) return -1;
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_USER_DELETE);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
    int rc = auth_db_exec(a->db, st, "delete a user", err);
    bool found = rc == 0 && auth_db_changes(a->db) > 0;
    if (found) {
        st = auth_db_stmt(a->db, AST_TOKEN_REVOKE_OWNER);
        sqlite3_bind_text(st, 1, user, -1, SQLITE_TRANSIENT);
        rc = auth_db_exec(a->db, st, "revoke the user's tokens", err);
    }
    if (found && rc == 0) rc = auth_unassign_all(a, user, err);
    if (rc != 0 || !found) {
        cairn_err_t ignored = {0};
        auth_db_tx(a->db, AST_ROLLBACK, &ignored);
        return rc != 0 ? -1
                       : cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                                       "there is no user named '%s'", user);
    }
    if (auth_db_tx(a->db, AST_COMMIT, err) != 0) return -1;
    s_throttle_clear(a, user);
    auth_changed(a, "principal", user);
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "user", user);
    return auth_reply_send(a, req);
}

/* ---- change_password ---- */

/* The new hash is made: store it and revoke the user's login tokens (a
 * session opened with the old password ends; named API tokens stay, they
 * are revoked one by one). */
static void s_set_password_done(auth_t *a, hash_job_t *j)
{
    cairn_err_t err = {0};
    if (j->rc != 0) {
        cairn_err_set(&err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                      "Argon2id could not get pwhash_mem bytes of memory");
        cairn_reply_err(j->req, &err);
        return;
    }
    int rc = auth_db_tx(a->db, AST_BEGIN, &err);
    sqlite3_stmt *st = auth_db_stmt(a->db, AST_USER_SET_PW);
    sqlite3_bind_text(st, 1, j->stored, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->user, -1, SQLITE_STATIC);
    if (rc == 0) rc = auth_db_exec(a->db, st, "change a password", &err);
    sqlite3_clear_bindings(st);
    bool found = rc == 0 && auth_db_changes(a->db) > 0;
    if (found) {
        st = auth_db_stmt(a->db, AST_TOKEN_REVOKE_LOGINS);
        sqlite3_bind_text(st, 1, j->user, -1, SQLITE_TRANSIENT);
        rc = auth_db_exec(a->db, st, "revoke login tokens", &err);
    }
    if (rc == 0 && found) rc = auth_db_tx(a->db, AST_COMMIT, &err);
    if (rc != 0 || !found) {
        cairn_err_t ignored = {0};
        auth_db_tx(a->db, AST_ROLLBACK, &ignored);
        if (rc == 0)
            cairn_err_set(&err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                          "there is no user named '%s'", j->user);
        cairn_reply_err(j->req, &err);
        return;
    }
    auth_changed(a, "principal", j->user);
    msgpack_packer *pk = auth_reply_begin(a);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "user", j->user);
    auth_reply_send(a, j->req);
}

/* The old password was checked: on a match, hash the new one. */
static void s_old_password_done(auth_t *a, hash_job_t *j)
{
    cairn_err_t err = {0};
    if (j->rc != 0) {
        s_throttle_fail(a, j->req, j->user);
        cairn_err_set(&err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                      "old_password is wrong");
        cairn_reply_err(j->req, &err);
        return;
    }
    s_throttle_clear(a, j->user);
    cairn_str_t pw = {j->next_password, j->next_password_len};
    hash_job_t *next = s_job(HASH_MAKE, pw, j->req, s_set_password_done, j->user, &err);
    if (!next || s_queue(a, next, &err) != 0) cairn_reply_err(j->req, &err);
}

/* change_password {user*, password*, old_password}: one's own password
 * needs old_password; an admin may set anyone's without it. */
int auth_change_password(void *state, cairn_req_t *req, cairn_err_t *err)
{
    auth_t *a = state;
    const msgpack_object *b = cairn_body(req);
    char user[AUTH_NAME_MAX + 1];
    cairn_str_t pw, old;
    int has_old;
    if (auth_field_name(b, "user", true, auth_user_char, user, err) != 0 ||
        auth_field_password(b, "password", true, &pw, err) != 0 ||
        (has_old = cairn_field_str(b, "old_password", false, AUTH_PASSWORD_MAX, &old,
                                   err)) < 0)
        return -1;
    cairn_name_object(req, "user", user, strlen(user));
    bool self = strcmp(user, cairn_principal(req)) == 0;
    if (!self && !auth_is_admin(a, req))
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "only an admin (auth.admin) may change another user's "
                             "password");
    if (has_old != 0 && self && !auth_is_admin(a, req))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "old_password is required to change your own password");
    char stored[crypto_pwhash_STRBYTES];
    int found = s_user_hash(a, user, stored, err);
    if (found < 0) return -1;
    if (found > 0 && (has_old == 0 || s_user_exists(a, user, err) != 1))
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "there is no user named '%s' with a password", user);
    if (has_old != 0) {
        hash_job_t *j = s_job(HASH_MAKE, pw, req, s_set_password_done, user, err);
        return j ? s_queue(a, j, err) : -1;
    }
    if (s_throttle_check(a, req, user, err) != 0) return -1;
    hash_job_t *j = s_job(HASH_VERIFY, old, req, s_old_password_done, user, err);
    if (!j) return -1;
    memcpy(j->stored, stored, sizeof stored);
    if (!(j->next_password = malloc(pw.len + 1))) {
        hash_job_free(j);
        return cairn_err_oom(err, NULL);
    }
    memcpy(j->next_password, pw.ptr, pw.len);
    j->next_password_len = pw.len;
    return s_queue(a, j, err);
}
