/* Batch endpoints' rows in endpoints.db (scorer.h; the table is store.c's
 * migration 4), on the store's connection, with statements of their own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scorer.h"
#include "sqlite_util.h"

#define WHAT "the endpoints database"

enum { Q_INSERT, Q_GET, Q_UPDATE, Q_DELETE, Q_EACH, Q_N };

#define COLS                                                               \
    "ws, name, model, model_ref, path, mini_batch_size, max_concurrency, " \
    "error_threshold, max_retries, created, updated"

static const char *const s_sql[Q_N] = {
    [Q_INSERT] = "INSERT INTO batch_endpoints (" COLS
                 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    [Q_GET] = "SELECT " COLS " FROM batch_endpoints WHERE ws = ? AND name = ?",
    [Q_UPDATE] =
        "UPDATE batch_endpoints SET model = ?3, model_ref = ?4, path = ?5, "
        "mini_batch_size = ?6, max_concurrency = ?7, error_threshold = ?8, "
        "max_retries = ?9, updated = ?11 WHERE ws = ?1 AND name = ?2",
    [Q_DELETE] = "DELETE FROM batch_endpoints WHERE ws = ? AND name = ?",
    [Q_EACH] = "SELECT " COLS " FROM batch_endpoints WHERE ws = ? ORDER BY name",
};

struct batch_store {
    sqlite3 *h; /* the store's, borrowed */
    sqlite3_stmt *q[Q_N];
};

batch_store_t *batch_store_open(ep_store_t *s, cairn_err_t *err)
{
    batch_store_t *b = calloc(1, sizeof *b);
    if (!b) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    b->h = ep_store_db(s);
    if (cairn_sqlite_prepare(b->h, WHAT, s_sql, Q_N, b->q, err) != 0)
        batch_store_close(&b);
    return b;
}

void batch_store_close(batch_store_t **self_p)
{
    batch_store_t *b = *self_p;
    if (!b) return;
    cairn_sqlite_finalize(b->q, Q_N);
    free(b);
    *self_p = NULL;
}

static void s_bind(sqlite3_stmt *st, const batch_row_t *r)
{
    sqlite3_bind_text(st, 1, r->ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->model_ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r->mini_batch_size);
    sqlite3_bind_int64(st, 7, r->max_concurrency);
    sqlite3_bind_int64(st, 8, r->error_threshold);
    sqlite3_bind_int64(st, 9, r->max_retries);
    sqlite3_bind_int64(st, 10, r->created);
    sqlite3_bind_int64(st, 11, r->updated);
}

static void s_row(sqlite3_stmt *st, batch_row_t *r)
{
    *r = (batch_row_t){.mini_batch_size = sqlite3_column_int64(st, 5),
                       .max_concurrency = sqlite3_column_int64(st, 6),
                       .error_threshold = sqlite3_column_int64(st, 7),
                       .max_retries = sqlite3_column_int64(st, 8),
                       .created = sqlite3_column_int64(st, 9),
                       .updated = sqlite3_column_int64(st, 10)};
    cairn_sqlite_text(r->ws, sizeof r->ws, st, 0);
    cairn_sqlite_text(r->name, sizeof r->name, st, 1);
    cairn_sqlite_text(r->model, sizeof r->model, st, 2);
    cairn_sqlite_text(r->model_ref, sizeof r->model_ref, st, 3);
    cairn_sqlite_text(r->path, sizeof r->path, st, 4);
}

/* Step a write; 1 when it changed no row. */
static int s_write(batch_store_t *b, sqlite3_stmt *st, const char *doing,
                   cairn_err_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return cairn_sqlite_fail(b->h, WHAT, doing, err);
    return sqlite3_changes(b->h) ? 0 : 1;
}

int batch_store_insert(batch_store_t *b, const batch_row_t *r, cairn_err_t *err)
{
    sqlite3_stmt *st = cairn_sqlite_fresh(b->q[Q_INSERT]);
    s_bind(st, r);
    int rc = s_write(b, st, "store the batch endpoint", err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "a batch endpoint named '%s' exists in this workspace",
                             r->name);
    return rc;
}

int batch_store_get(batch_store_t *b, const char *ws, const char *name, batch_row_t *r,
                    cairn_err_t *err)
{
    sqlite3_stmt *st = cairn_sqlite_fresh(b->q[Q_GET]);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) s_row(st, r);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return 1;
    return cairn_sqlite_fail(b->h, WHAT, "read a batch endpoint", err);
}

int batch_store_update(batch_store_t *b, const batch_row_t *r, cairn_err_t *err)
{
    sqlite3_stmt *st = cairn_sqlite_fresh(b->q[Q_UPDATE]);
    s_bind(st, r);
    int rc = s_write(b, st, "update the batch endpoint", err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no batch endpoint named '%s' in this workspace", r->name);
    return rc;
}

int batch_store_delete(batch_store_t *b, const char *ws, const char *name,
                       cairn_err_t *err)
{
    sqlite3_stmt *st = cairn_sqlite_fresh(b->q[Q_DELETE]);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    return s_write(b, st, "delete the batch endpoint", err);
}

int batch_store_each(batch_store_t *b, const char *ws,
                     int (*fn)(void *arg, const batch_row_t *r), void *arg,
                     cairn_err_t *err)
{
    sqlite3_stmt *st = cairn_sqlite_fresh(b->q[Q_EACH]);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        batch_row_t r;
        s_row(st, &r);
        if (fn(arg, &r) != 0) break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cairn_sqlite_fail(b->h, WHAT, "list the batch endpoints", err);
    return 0;
}
