/* The auth database (see db.h). */
#define _GNU_SOURCE
#include "db.h"

#include <stdio.h>
#include <stdlib.h>

#define AUTH_SCHEMA_VERSION 1

/* Migrations: migrations[v] takes a file from version v to v + 1.
 * Times are wall-clock milliseconds; tokens are kept (revoked = 1) after a
 * revoke, so that a database that ever held a token never re-runs the
 * owner bootstrap. Role patterns are stored newline-separated (a pattern
 * never holds one). */
static const char *const migrations[AUTH_SCHEMA_VERSION] = {
    "CREATE TABLE users (name TEXT PRIMARY KEY, pwhash TEXT, created INTEGER NOT NULL);"
    "CREATE TABLE tokens (token_id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, "
    "  name TEXT NOT NULL, owner TEXT NOT NULL, kind TEXT NOT NULL, "
    "  created INTEGER NOT NULL, expires INTEGER NOT NULL, last_used INTEGER NOT NULL "
    "  DEFAULT 0, revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX tokens_owner ON tokens (owner);"
    "CREATE TABLE roles (name TEXT PRIMARY KEY, actions TEXT NOT NULL, "
    "  not_actions TEXT NOT NULL);"
    "CREATE TABLE assignments (principal TEXT NOT NULL, role TEXT NOT NULL, "
    "  ws TEXT NOT NULL, PRIMARY KEY (principal, role, ws));"
    "CREATE TABLE workspaces (name TEXT PRIMARY KEY, created INTEGER NOT NULL);"
    "INSERT INTO workspaces VALUES ('default', strftime('%s','now') * 1000);",
};

static const char *const s_sql[AST_COUNT] = {
    [AST_BEGIN] = "BEGIN IMMEDIATE",
    [AST_COMMIT] = "COMMIT",
    [AST_ROLLBACK] = "ROLLBACK",
    [AST_USER_INSERT] = "INSERT INTO users (name, pwhash, created) VALUES (?, ?, ?)",
    [AST_USER_GET] = "SELECT pwhash FROM users WHERE name = ?",
    [AST_USER_DELETE] = "DELETE FROM users WHERE name = ?",
    [AST_USER_SET_PW] = "UPDATE users SET pwhash = ? WHERE name = ?",
    [AST_TOKEN_COUNT] = "SELECT count(*) FROM tokens",
    [AST_TOKEN_INSERT] =
        "INSERT INTO tokens (token_id, hash, name, owner, kind, created, expires) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
    [AST_TOKEN_BY_HASH] =
        "SELECT token_id, hash, owner, expires, last_used, revoked FROM tokens "
        "WHERE hash = ?",
    [AST_TOKEN_TOUCH] = "UPDATE tokens SET last_used = ? WHERE token_id = ?",
    [AST_TOKEN_OWNER] = "SELECT owner FROM tokens WHERE token_id = ? AND revoked = 0",
    [AST_TOKEN_REVOKE] = "UPDATE tokens SET revoked = 1 WHERE token_id = ?",
    [AST_TOKEN_REVOKE_OWNER] =
        "UPDATE tokens SET revoked = 1 WHERE owner = ? AND revoked = 0",
    [AST_TOKEN_REVOKE_LOGINS] =
        "UPDATE tokens SET revoked = 1 WHERE owner = ? AND kind = 'login' AND "
        "revoked = 0",
    /* ?1 NULL: every owner's. Expired tokens are listed (expires says so). */
    [AST_TOKEN_LIST] =
        "SELECT token_id, name, owner, created, expires, last_used FROM tokens "
        "WHERE revoked = 0 AND (?1 IS NULL OR owner = ?1) ORDER BY created, token_id",
    [AST_ROLE_GET] = "SELECT actions, not_actions FROM roles WHERE name = ?",
    [AST_ROLE_UPSERT] =
        "INSERT INTO roles (name, actions, not_actions) VALUES (?, ?, ?) ON CONFLICT "
        "(name) DO UPDATE SET actions = excluded.actions, not_actions = "
        "excluded.not_actions",
    [AST_ROLE_LIST] = "SELECT name, actions, not_actions FROM roles ORDER BY name",
    [AST_ASSIGN_INSERT] =
        "INSERT INTO assignments (principal, role, ws) VALUES (?, ?, ?) ON CONFLICT "
        "DO NOTHING",
    [AST_ASSIGN_DELETE] =
        "DELETE FROM assignments WHERE principal = ? AND role = ? AND ws = ?",
    [AST_ASSIGN_OF] =
        "SELECT role, ws FROM assignments WHERE principal = ? ORDER BY ws, role",
    [AST_ASSIGN_DROP_PRINCIPAL] = "DELETE FROM assignments WHERE principal = ?",
    [AST_ASSIGN_DROP_WS] = "DELETE FROM assignments WHERE ws = ?",
    [AST_WS_INSERT] = "INSERT INTO workspaces (name, created) VALUES (?, ?)",
    [AST_WS_GET] = "SELECT created FROM workspaces WHERE name = ?",
    [AST_WS_LIST] = "SELECT name, created FROM workspaces ORDER BY name",
    [AST_WS_COUNT] = "SELECT count(*) FROM workspaces",
    [AST_WS_DELETE] = "DELETE FROM workspaces WHERE name = ?",
};

struct auth_db {
    sqlite3 *h;
    sqlite3_stmt *st[AST_COUNT];
};

int auth_db_fail(auth_db_t *db, const char *what, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                         "the auth database failed to %s: %s", what,
                         db && db->h ? sqlite3_errmsg(db->h) : "no handle");
}

static int s_exec(auth_db_t *db, const char *sql, const char *what, cairn_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                      "the auth database failed to %s: %s", what,
                      msg ? msg : "unknown error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int s_user_version(auth_db_t *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Run the migrations past the file's version, each in one transaction. */
static int s_migrate(auth_db_t *db, cairn_err_t *err)
{
    int v = s_user_version(db);
    if (v < 0) return auth_db_fail(db, "read its schema version", err);
    if (v > AUTH_SCHEMA_VERSION)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "the auth database has schema version %d, newer than this "
                             "Cairn knows (%d): upgrade Cairn",
                             v, AUTH_SCHEMA_VERSION);
    for (; v < AUTH_SCHEMA_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (s_exec(db, "BEGIN IMMEDIATE", "begin a migration", err) != 0) return -1;
        if (s_exec(db, migrations[v], "migrate", err) != 0 ||
            s_exec(db, pragma, "record the schema version", err) != 0 ||
            s_exec(db, "COMMIT", "commit a migration", err) != 0) {
            sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

auth_db_t *auth_db_open(const char *path, cairn_err_t *err)
{
    auth_db_t *db = calloc(1, sizeof *db);
    if (!db) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    if (sqlite3_open_v2(
            path, &db->h,
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
            NULL) != SQLITE_OK) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                      "cannot open the auth database %s: %s", path,
                      db->h ? sqlite3_errmsg(db->h) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(db->h, 10000);
    /* Credentials: every commit reaches the disk (FULL). */
    if (s_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL", "configure",
               err) != 0 ||
        s_migrate(db, err) != 0)
        goto fail;
    for (int i = 0; i < AST_COUNT; i++)
        if (sqlite3_prepare_v3(db->h, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &db->st[i], NULL) != SQLITE_OK) {
            auth_db_fail(db, "prepare a statement", err);
            goto fail;
        }
    return db;
fail:
    auth_db_close(&db);
    return NULL;
}

void auth_db_close(auth_db_t **self_p)
{
    if (!self_p || !*self_p) return;
    auth_db_t *db = *self_p;
    for (int i = 0; i < AST_COUNT; i++) sqlite3_finalize(db->st[i]);
    sqlite3_close(db->h);
    free(db);
    *self_p = NULL;
}

sqlite3_stmt *auth_db_stmt(auth_db_t *db, auth_stmt_id_t id)
{
    sqlite3_stmt *st = db->st[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

int auth_db_exec(auth_db_t *db, sqlite3_stmt *st, const char *what, cairn_err_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "%s: already exists", what);
    return auth_db_fail(db, what, err);
}

int auth_db_tx(auth_db_t *db, auth_stmt_id_t id, cairn_err_t *err)
{
    return auth_db_exec(db, auth_db_stmt(db, id),
                        id == AST_BEGIN    ? "begin"
                        : id == AST_COMMIT ? "commit"
                                           : "roll back",
                        err);
}

int auth_db_changes(auth_db_t *db)
{
    return sqlite3_changes(db->h);
}
