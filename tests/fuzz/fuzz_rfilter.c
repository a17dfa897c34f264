/* libFuzzer target for the registry's filter compiler
 * (plugins/registry/rfilter.c).
 *
 * The input is compiled over models and over versions. An accepted one must
 * be SQL that SQLite prepares inside a search query like the plugin's,
 * with exactly as many placeholders as bound values (plus the workspace),
 * and that runs with those values bound; a refused one must be a 400 whose
 * sentence leads with "filter: ". Anything else aborts. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/err.h"
#include "rfilter.h"
#include "reg_schema.h"

static sqlite3 *db_once(void)
{
    static sqlite3 *db;
    if (db) return db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) abort();
    for (int i = 0; i < REGISTRY_SCHEMA_VERSION; i++)
        if (sqlite3_exec(db, registry_migrations[i], NULL, NULL, NULL) != SQLITE_OK)
            abort();
    if (sqlite3_exec(
            db,
            "INSERT INTO models (id, ws, name, created, updated) VALUES (1, "
            "'default', 'churn', 1, 1);"
            "INSERT INTO versions (model_id, version, source, run_id, created, "
            "updated) VALUES (1, 1, 'runs:/r/m', 'r', 1, 1);"
            "INSERT INTO model_tags VALUES (1, 'team', 'risk');"
            "INSERT INTO version_tags VALUES (1, 1, 'stage', 'prod');",
            NULL, NULL, NULL) != SQLITE_OK)
        abort();
    return db;
}

static void run(const rfilter_t *f, rfilter_target_t target)
{
    char sql[RFILTER_SQL_MAX + 256];
    snprintf(sql, sizeof sql,
             target == RFILTER_MODELS
                 ? "SELECT m.name FROM models m WHERE m.ws = ? AND (%s)"
                 : "SELECT v.version FROM versions v JOIN models m ON m.id = "
                   "v.model_id WHERE m.ws = ? AND (%s)",
             f->sql);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_once(), sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "does not prepare: %s\n%s\n", sqlite3_errmsg(db_once()), sql);
        abort();
    }
    if (sqlite3_bind_parameter_count(st) != f->nbinds + 1) abort();
    sqlite3_bind_text(st, 1, "default", -1, SQLITE_STATIC);
    for (int i = 0; i < f->nbinds; i++) {
        if (f->bind_int[i])
            sqlite3_bind_int64(st, 2 + i, strtoll(f->binds[i].ptr, NULL, 10));
        else
            sqlite3_bind_text(st, 2 + i, f->binds[i].ptr, (int)f->binds[i].len,
                              SQLITE_STATIC);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) abort();
    sqlite3_finalize(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rfilter_t f;
    for (int t = 0; t < 2; t++) {
        cairn_err_t err = {0};
        rfilter_target_t target = t ? RFILTER_VERSIONS : RFILTER_MODELS;
        if (rfilter_compile((const char *)data, size, target, &f, &err) == 0)
            run(&f, target);
        else if (err.st != CAIRN_ST_BAD_REQUEST || strncmp(err.msg, "filter: ", 8) != 0)
            abort();
    }
    return 0;
}
