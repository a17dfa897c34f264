/* plugins/auth/db.h — the auth database: <state>/auth.db, WAL, its schema
 * versioned with PRAGMA user_version, every statement prepared once. Used
 * from the plugin's loop thread only. */
#ifndef AUTH_DB_H
#define AUTH_DB_H

#include <sqlite3.h>

#include "cairn/err.h"

typedef enum auth_stmt_id {
    AST_BEGIN,
    AST_COMMIT,
    AST_ROLLBACK,
    AST_USER_INSERT,
    AST_USER_GET,
    AST_USER_DELETE,
    AST_USER_SET_PW,
    AST_TOKEN_COUNT,
    AST_TOKEN_INSERT,
    AST_TOKEN_BY_HASH,
    AST_TOKEN_TOUCH,
    AST_TOKEN_OWNER,
    AST_TOKEN_REVOKE,
    AST_TOKEN_REVOKE_OWNER,
    AST_TOKEN_REVOKE_LOGINS,
    AST_TOKEN_LIST,
    AST_ROLE_GET,
    AST_ROLE_UPSERT,
    AST_ROLE_LIST,
    AST_ASSIGN_INSERT,
    AST_ASSIGN_DELETE,
    AST_ASSIGN_OF,
    AST_ASSIGN_DROP_PRINCIPAL,
    AST_ASSIGN_DROP_WS,
    AST_WS_INSERT,
    AST_WS_GET,
    AST_WS_LIST,
    AST_WS_COUNT,
    AST_WS_DELETE,
    AST_COUNT
} auth_stmt_id_t;

typedef struct auth_db auth_db_t;

auth_db_t *auth_db_open(const char *path, cairn_err_t *err);
void auth_db_close(auth_db_t **self_p);
/* The statement, reset and unbound. */
sqlite3_stmt *auth_db_stmt(auth_db_t *db, auth_stmt_id_t id);
/* Step a statement that returns no rows (then reset it): 0, or -1 with a
 * 500 (409 conflict for a constraint). */
int auth_db_exec(auth_db_t *db, sqlite3_stmt *st, const char *what, cairn_err_t *err);
/* Run st (BEGIN/COMMIT/ROLLBACK). */
int auth_db_tx(auth_db_t *db, auth_stmt_id_t id, cairn_err_t *err);
int auth_db_fail(auth_db_t *db, const char *what, cairn_err_t *err);
/* Rows changed by the last statement. */
int auth_db_changes(auth_db_t *db);

#endif
