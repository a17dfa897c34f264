/* The auth database (see db.h). */
#define _GNU_SOURCE
#include "db.h"

#include <stdlib.h>

#include "sqlite_util.h"

#define AUTH_SCHEMA_VERSION 2

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
    /* 2: a token may be held to one workspace (a job's: create_token ws) */
    "ALTER TABLE tokens ADD COLUMN ws TEXT NOT NULL DEFAULT '';",
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
        "INSERT INTO tokens (token_id, hash, name, owner, kind, created, expires, ws) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    [AST_TOKEN_BY_HASH] =
        "SELECT token_id, hash, owner, expires, last_used, revoked, ws FROM tokens "
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

#define WHAT "the auth database"

int auth_db_fail(auth_db_t *db, const char *what, cairn_err_t *err)
{
    return cairn_sqlite_fail(db ? db->h : NULL, WHAT, what, err);
}

auth_db_t *auth_db_open(const char *path, cairn_err_t *err)
{
    auth_db_t *db = calloc(1, sizeof *db);
    if (!db) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    /* Credentials: every commit reaches the disk (FULL). */
    if (cairn_sqlite_open(path, WHAT, 10000, &db->h, err) != 0 ||
        cairn_sqlite_exec(db->h, WHAT,
                          "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL",
                          "configure", err) != 0 ||
        cairn_sqlite_migrate(db->h, WHAT, migrations, AUTH_SCHEMA_VERSION, err) != 0 ||
        cairn_sqlite_prepare(db->h, WHAT, s_sql, AST_COUNT, db->st, err) != 0) {
        auth_db_close(&db);
        return NULL;
    }
    return db;
}

void auth_db_close(auth_db_t **self_p)
{
    if (!self_p || !*self_p) return;
    auth_db_t *db = *self_p;
    cairn_sqlite_finalize(db->st, AST_COUNT);
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
