/* sdk/sqlite_util.h — what the plugins that keep a SQLite file of their own
 * share (auth, secrets, audit): one connection for the plugin's loop thread,
 * set up, its schema migrated by PRAGMA user_version, its statements
 * prepared once. A small static library (cairn_sqlite) that each of them
 * links into itself, so that no plugin links another; never installed.
 *
 *     sqlite3 *h = NULL;
 *     if (cairn_sqlite_open(path, "the audit database", 5000, &h, err) != 0 ||
 *         cairn_sqlite_exec(h, "the audit database",
 *                           "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
 *                           "configure", err) != 0 ||
 *         cairn_sqlite_prepare(h, "the audit database", sql, N, st, err) != 0)
 *         ... close: cairn_sqlite_finalize(st, N); sqlite3_close(h);
 *
 * what names the database in every error sentence ("the auth database");
 * errors are 500 storage_error with SQLite's own message. */
#ifndef CAIRN_SDK_SQLITE_UTIL_H
#define CAIRN_SDK_SQLITE_UTIL_H

#include <sqlite3.h>
#include <stddef.h>

#include "cairn/err.h"

/* Open (creating it when missing) path read-write, for one thread
 * (SQLITE_OPEN_NOMUTEX), with a busy timeout of busy_ms. On failure *out
 * is NULL: "cannot open <what> <path>: why". */
int cairn_sqlite_open(const char *path, const char *what, int busy_ms, sqlite3 **out,
                      cairn_err_t *err);

/* sqlite3_exec(sql): 0, or -1 with "<what> failed to <doing>: why". */
int cairn_sqlite_exec(sqlite3 *h, const char *what, const char *sql, const char *doing,
                      cairn_err_t *err);

/* -1 with "<what> failed to <doing>: <sqlite3_errmsg>". */
int cairn_sqlite_fail(sqlite3 *h, const char *what, const char *doing,
                      cairn_err_t *err);

/* Bring the file to schema version `version`: migrations[v] takes it from
 * v to v + 1, each in one transaction that also records the version. A file
 * newer than version is refused (an older Cairn must not write it). Another
 * connection that migrated meanwhile is noticed and not redone. */
int cairn_sqlite_migrate(sqlite3 *h, const char *what, const char *const *migrations,
                         int version, cairn_err_t *err);

/* Prepare sql[0..n) once each (SQLITE_PREPARE_PERSISTENT) into st[0..n). On
 * failure the ones made stay in st for cairn_sqlite_finalize. */
int cairn_sqlite_prepare(sqlite3 *h, const char *what, const char *const *sql, int n,
                         sqlite3_stmt **st, cairn_err_t *err);

/* st reset and its bindings cleared, for its next use; st itself. */
sqlite3_stmt *cairn_sqlite_fresh(sqlite3_stmt *st);

/* Column col of st's row as text into dst (cap bytes, cut short to fit;
 * "" for NULL). */
void cairn_sqlite_text(char *dst, size_t cap, sqlite3_stmt *st, int col);

/* Finalize st[0..n) and set each to NULL (NULL entries are skipped). */
void cairn_sqlite_finalize(sqlite3_stmt **st, int n);

#endif
