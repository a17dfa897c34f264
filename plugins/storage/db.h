/* plugins/storage/db.h — the tracking database: one SQLite connection in
 * WAL mode, migrated on open, with every hot statement prepared once. */
#ifndef STORAGE_DB_H
#define STORAGE_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"
#include "ridsets.h"

typedef enum db_stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_EXP_INSERT,
    ST_EXP_BY_ID,
    ST_EXP_BY_NAME,
    ST_EXP_TAGS,
    ST_EXP_TAG_SET,
    ST_EXP_TAG_DELETE,
    ST_EXP_RENAME,
    ST_EXP_SET_STAGE,
    ST_RUN_INSERT,
    ST_RUN_BY_UUID,
    ST_RUN_BY_RID,
    ST_RUN_UPDATE,
    ST_RUN_SET_STAGE,
    ST_RUN_PARAMS,
    ST_RUN_TAGS,
    ST_RUN_LATEST,
    ST_TAG_SET,
    ST_TAG_DELETE,
    ST_TAG_GET,
    ST_PARAM_INSERT,
    ST_PARAM_GET,
    ST_KEY_INSERT,
    ST_KEY_ID,
    ST_LATEST_UPSERT,
    ST_RECENT_UPSERT,
    ST_LATEST_GET,
    ST_VALUE_PUT,
    ST_VALUE_DEL,
    ST_SEG_TAIL,
    ST_SEG_INSERT,
    ST_SEG_UPDATE,
    ST_SEG_ALL,
    ST_JOURNAL_GET,
    ST_JOURNAL_SET,
    ST_DATASET_PUT,
    ST_DATASET_ID,
    ST_INPUT_PUT,
    ST_RUN_INPUTS,
    ST_RUN_HAS_INPUTS,
    ST_ANY_INPUTS,
    /* artifacts (role `artifacts`: artifacts.c, uploads.c) */
    ST_ART_RUN_STAGE,
    ST_ART_PUT,
    ST_ART_GET,
    ST_ART_NEXT,
    ST_ART_DEL,
    ST_ART_DEL_TREE,
    ST_ART_HASHES,
    ST_ART_REFERENCED,
    ST_ART_TREE,
    ST_PIN_PUT,
    ST_PIN_DROP,
    ST_PIN_HAS,
    ST_COUNT
} db_stmt_id_t;

typedef struct db db_t;

/* Open (creating and migrating) the database at path. durable_full: fsync
 * every commit (survives power loss); otherwise WAL with synchronous=NORMAL,
 * which survives any crash of the process (kill -9) but not of the OS. */
db_t *db_open(const char *path, bool durable_full, cairn_err_t *err);
void db_close(db_t **self_p);

sqlite3 *db_handle(db_t *db);
/* The file's path, as opened. */
const char *db_path(const db_t *db);
/* The prepared statement, reset and with bindings cleared. */
sqlite3_stmt *db_stmt(db_t *db, db_stmt_id_t id);
/* Run a statement that returns no rows (SQLITE_DONE expected). */
int db_exec_stmt(db_t *db, sqlite3_stmt *st, cairn_err_t *err);

int db_begin(db_t *db, cairn_err_t *err);
int db_commit(db_t *db, cairn_err_t *err);
void db_rollback(db_t *db);
/* A savepoint inside the open transaction (one request of a write group):
 * release keeps its writes; rollback_to undoes them and pops it, and fails
 * when the transaction itself is gone (SQLite rolled it back). */
int db_savepoint(db_t *db, cairn_err_t *err);
int db_release(db_t *db, cairn_err_t *err);
int db_rollback_to(db_t *db);

/* Copy the WAL back into the database file (a passive checkpoint), off
 * the request path: the plugin's tick calls it. A no-op once the
 * checkpointer runs. */
void db_checkpoint(db_t *db);
/* Checkpoint from a thread of its own (with its own connection) instead,
 * until db_close: a checkpoint of a busy WAL takes 100-300 ms, which no
 * request should wait behind. */
int db_checkpointer_start(db_t *db, cairn_err_t *err);

/* The connection's rid sets (ridsets.h). */
ridsets_t *db_ridsets(db_t *db);

/* The metric value index, folded in behind the writes (fold.h). start: on
 * the tracking instance; defers: whether a new row of (key_id, rid) is
 * written unfolded (and so mirrored, then noted); tick: fold, from the
 * plugin's tick, outside a transaction (everything when nothing was
 * committed since the last tick). */
int db_fold_start(db_t *db, cairn_err_t *err);
bool db_fold_defers(const db_t *db, int64_t key_id, int64_t rid);
void db_fold_noted(db_t *db);
long db_fold_tick(db_t *db, cairn_err_t *err);

/* Fill err with a 500 naming what failed and SQLite's message. */
int db_fail(db_t *db, const char *what, cairn_err_t *err);

/* The metric key's id, inserting it if new (a cache keeps this off the
 * database for known keys). */
int db_metric_key_id(db_t *db, const char *key, size_t len, int64_t *id,
                     cairn_err_t *err);

#endif
