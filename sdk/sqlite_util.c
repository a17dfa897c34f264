/* The plugins' shared SQLite set-up (see sqlite_util.h). */
#include "sqlite_util.h"

#include <stdio.h>

int cairn_sqlite_fail(sqlite3 *h, const char *what, const char *doing, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE, "%s failed to %s: %s",
                         what, doing, h ? sqlite3_errmsg(h) : "no handle");
}

int cairn_sqlite_open(const char *path, const char *what, int busy_ms, sqlite3 **out,
                      cairn_err_t *err)
{
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(
            path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
            NULL) != SQLITE_OK) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE, "cannot open %s %s: %s",
                      what, path, h ? sqlite3_errmsg(h) : "out of memory");
        sqlite3_close(h);
        *out = NULL;
        return -1;
    }
    sqlite3_busy_timeout(h, busy_ms);
    *out = h;
    return 0;
}

int cairn_sqlite_exec(sqlite3 *h, const char *what, const char *sql, const char *doing,
                      cairn_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE, "%s failed to %s: %s", what,
                  doing, msg ? msg : sqlite3_errmsg(h));
    sqlite3_free(msg);
    return -1;
}

static int s_user_version(sqlite3 *h)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

int cairn_sqlite_migrate(sqlite3 *h, const char *what, const char *const *migrations,
                         int version, cairn_err_t *err)
{
    int v = s_user_version(h);
    if (v < 0) return cairn_sqlite_fail(h, what, "read its schema version", err);
    if (v > version)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "%s has schema version %d, newer than this Cairn knows "
                             "(%d): upgrade Cairn",
                             what, v, version);
    for (; v < version; v++) {
        if (cairn_sqlite_exec(h, what, "BEGIN IMMEDIATE", "begin a migration", err) !=
            0)
            return -1;
        int now = s_user_version(h); /* another connection may have migrated */
        if (now > v) {
            if (cairn_sqlite_exec(h, what, "COMMIT", "commit a migration", err) != 0)
                return -1;
            v = now - 1;
            continue;
        }
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (cairn_sqlite_exec(h, what, migrations[v], "migrate", err) != 0 ||
            cairn_sqlite_exec(h, what, pragma, "record the schema version", err) != 0 ||
            cairn_sqlite_exec(h, what, "COMMIT", "commit a migration", err) != 0) {
            sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

int cairn_sqlite_prepare(sqlite3 *h, const char *what, const char *const *sql, int n,
                         sqlite3_stmt **st, cairn_err_t *err)
{
    for (int i = 0; i < n; i++)
        if (sqlite3_prepare_v3(h, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i],
                               NULL) != SQLITE_OK)
            return cairn_sqlite_fail(h, what, "prepare a statement", err);
    return 0;
}

void cairn_sqlite_finalize(sqlite3_stmt **st, int n)
{
    for (int i = 0; i < n; i++) {
        sqlite3_finalize(st[i]);
        st[i] = NULL;
    }
}

sqlite3_stmt *cairn_sqlite_fresh(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

void cairn_sqlite_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}
