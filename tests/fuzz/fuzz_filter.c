/* libFuzzer target for the search filter compiler (plugins/storage/filter.c).
 *
 * The input is compiled both as a filter and as one order_by clause. An
 * accepted one must be SQL that SQLite prepares inside a search query like
 * the store's, with exactly as many placeholders as bound values, and that
 * runs with those values bound; a refused one must be a 400 whose sentence
 * leads with "filter: " / "order_by: ". Anything else aborts. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/err.h"
#include "filter.h"
#include "fold.h"
#include "schema.h"
#include "sqlbuf.h"

/* The tracking schema with a few rows, created once. */
static sqlite3 *db_once(void)
{
    static sqlite3 *db;
    if (db) return db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) abort();
    for (int i = 0; i < STORAGE_SCHEMA_VERSION; i++)
        if (sqlite3_exec(db, storage_migrations[i], NULL, NULL, NULL) != SQLITE_OK)
            abort();
    cairn_err_t err = {0};
    if (fold_attach(db, &err) != 0) abort();
    if (sqlite3_exec(db,
                     "PRAGMA case_sensitive_like = ON;"
                     "INSERT INTO runs (rid, run_uuid, experiment_id, start_time, "
                     "artifact_uri) VALUES (1, 'a', 1, 5, 'x'), (2, 'b', 1, NULL, 'y');"
                     "INSERT INTO metric_keys (key_id, key) VALUES (1, 'acc');"
                     /* one row folded into the value index, one not (fold.h) */
                     "INSERT INTO latest_metrics VALUES (1, 1, 0.5, 0, 0), "
                     "(2, 1, 0.7, 0, 0);"
                     "INSERT INTO metric_values VALUES (1, 0.5, 1);"
                     "INSERT INTO mem.recent VALUES (2, 1, 0.7, 0, 0);"
                     "INSERT INTO params VALUES (1, 'lr', '0.1');"
                     "INSERT INTO tags VALUES (2, 'mlflow.runName', 'r');",
                     NULL, NULL, NULL) != SQLITE_OK)
        abort();
    return db;
}

/* Prepare, bind and run sql; abort on any SQLite error. extra is how many
 * placeholders the query has besides the compiled ones (bound to 1). */
static void run_sql(const char *sql, const sql_binds_t *binds, int extra)
{
    sqlite3 *db = db_once();
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "prepare failed: %s\n%s\n", sqlite3_errmsg(db), sql);
        abort();
    }
    if (sqlite3_bind_parameter_count(st) != (int)binds->n + extra) abort();
    int next = sql_binds_apply(binds, st, 1);
    if (next < 0) abort();
    for (int i = 0; i < extra; i++)
        if (sqlite3_bind_int(st, next + i, 1) != SQLITE_OK) abort();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "step failed: %s\n%s\n", sqlite3_errmsg(db), sql);
        abort();
    }
    sqlite3_finalize(st);
}

static void check_refusal(const cairn_err_t *err, const char *lead)
{
    if (err->st != 400 || strcmp(err->code, "bad_request") != 0 ||
        strncmp(err->msg, lead, strlen(lead)) != 0)
        abort();
}

static void fuzz_filter(const char *text, size_t len)
{
    sqlbuf_t q;
    sql_binds_t binds;
    cairn_err_t err = {0};
    sqlbuf_init(&q);
    sql_binds_init(&binds);
    sqlbuf_add(&q,
               "SELECT r.run_uuid FROM runs r WHERE r.experiment_id IN (?, ?) AND "
               "r.lifecycle_stage = ? AND (");
    if (filter_compile(text, len, &q, &binds, &err) == 0) {
        sqlbuf_add(&q, ") ORDER BY r.start_time DESC, r.rid LIMIT ? OFFSET ?");
        if (q.oom) abort();
        /* The store's own values come first here, then the filter's. */
        sql_binds_t all;
        sql_binds_init(&all);
        for (int i = 0; i < 3; i++) sql_binds_int(&all, 1);
        for (size_t i = 0; i < binds.n; i++) {
            const sql_bind_t *b = &binds.v[i];
            if (b->kind == BIND_TEXT)
                sql_binds_text(&all, b->text, strlen(b->text));
            else if (b->kind == BIND_INT)
                sql_binds_int(&all, b->i);
            else
                sql_binds_real(&all, b->d);
        }
        run_sql(q.data, &all, 2);
        sql_binds_free(&all);
    } else {
        check_refusal(&err, "filter: ");
    }
    sqlbuf_free(&q);
    sql_binds_free(&binds);
}

static void fuzz_order(const char *text, size_t len)
{
    sqlbuf_t joins, terms;
    sql_binds_t binds;
    cairn_err_t err = {0};
    sqlbuf_init(&joins);
    sqlbuf_init(&terms);
    sql_binds_init(&binds);
    sqlbuf_add(&joins, "SELECT r.run_uuid FROM runs r");
    if (filter_compile_order(text, len, 1, &joins, &binds, &terms, &err) == 0) {
        sqlbuf_add(&joins, " WHERE r.experiment_id = ? ORDER BY ");
        sqlbuf_add(&joins, terms.data ? terms.data : "");
        sqlbuf_add(&joins, ", r.rid");
        if (joins.oom) abort();
        run_sql(joins.data, &binds, 1);
    } else {
        check_refusal(&err, "order_by: ");
    }
    sqlbuf_free(&joins);
    sqlbuf_free(&terms);
    sql_binds_free(&binds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_filter((const char *)data, size);
    fuzz_order((const char *)data, size);
    return 0;
}
