/* The tracking database (see db.h). */
#define _GNU_SOURCE
#include "db.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fold.h"
#include "schema.h"

/* SQL for every prepared statement, in db_stmt_id_t order. */
static const char *const s_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT req",
    [ST_RELEASE] = "RELEASE req",
    [ST_ROLLBACK_TO] = "ROLLBACK TO req",
    [ST_EXP_INSERT] =
        "INSERT INTO experiments (name, artifact_location, creation_time, "
        "last_update_time, ws) VALUES (?, ?, ?, ?, ?)",
    [ST_EXP_BY_ID] =
        "SELECT experiment_id, name, artifact_location, lifecycle_stage, "
        "creation_time, last_update_time FROM experiments WHERE "
        "experiment_id = ? AND ws = ?",
    [ST_EXP_BY_NAME] =
        "SELECT experiment_id, name, artifact_location, lifecycle_stage, "
        "creation_time, last_update_time FROM experiments WHERE name = ? "
        "AND ws = ?",
    [ST_EXP_TAGS] =
        "SELECT key, value FROM experiment_tags WHERE experiment_id = ? "
        "ORDER BY key",
    [ST_EXP_TAG_DELETE] =
        "DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?",
    [ST_EXP_TAG_SET] =
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES "
        "(?, ?, ?) ON CONFLICT (experiment_id, key) DO UPDATE SET value "
        "= excluded.value",
    [ST_EXP_RENAME] =
        "UPDATE experiments SET name = ?, last_update_time = ? WHERE "
        "experiment_id = ?",
    [ST_EXP_SET_STAGE] =
        "UPDATE experiments SET lifecycle_stage = ?, last_update_time "
        "= ? WHERE experiment_id = ?",
    [ST_RUN_INSERT] =
        "INSERT INTO runs (run_uuid, experiment_id, name, status, "
        "start_time, artifact_uri, parent_rid, user_id) VALUES (?, ?, ?, "
        "'RUNNING', ?, ?, ?, ?)",
    [ST_RUN_BY_UUID] =
        "SELECT rid, run_uuid, experiment_id, name, status, start_time, "
        "end_time, lifecycle_stage, artifact_uri, (SELECT p.run_uuid FROM "
        "runs p WHERE p.rid = runs.parent_rid), user_id FROM runs WHERE "
        "run_uuid = ?1 AND (?2 IS NULL OR (SELECT e.ws FROM experiments e "
        "WHERE e.experiment_id = runs.experiment_id) = ?2)",
    [ST_RUN_BY_RID] =
        "SELECT rid, run_uuid, experiment_id, name, status, start_time, "
        "end_time, lifecycle_stage, artifact_uri, (SELECT p.run_uuid FROM "
        "runs p WHERE p.rid = runs.parent_rid), user_id FROM runs WHERE rid "
        "= ?",
    [ST_RUN_UPDATE] =
        "UPDATE runs SET status = coalesce(?, status), end_time = "
        "coalesce(?, end_time), name = coalesce(?, name) WHERE rid = ?",
    [ST_RUN_SET_STAGE] = "UPDATE runs SET lifecycle_stage = ? WHERE rid = ?",
    [ST_RUN_PARAMS] = "SELECT key, value FROM params WHERE rid = ? ORDER BY key",
    [ST_RUN_TAGS] = "SELECT key, value FROM tags WHERE rid = ? ORDER BY key",
    [ST_RUN_LATEST] =
        "SELECT mk.key, lm.value, lm.timestamp, lm.step FROM "
        "latest_metrics lm JOIN metric_keys mk ON mk.key_id = lm.key_id "
        "WHERE lm.rid = ? ORDER BY mk.key",
    [ST_TAG_SET] =
        "INSERT INTO tags (rid, key, value) VALUES (?, ?, ?) ON CONFLICT "
        "(rid, key) DO UPDATE SET value = excluded.value",
    [ST_TAG_DELETE] = "DELETE FROM tags WHERE rid = ? AND key = ?",
    [ST_TAG_GET] = "SELECT value FROM tags WHERE rid = ? AND key = ?",
    [ST_PARAM_INSERT] =
        "INSERT INTO params (rid, key, value) VALUES (?, ?, ?) ON "
        "CONFLICT (rid, key) DO NOTHING",
    [ST_PARAM_GET] = "SELECT value FROM params WHERE rid = ? AND key = ?",
    /* A new key's rows are folded at once for runs before the newest, so
     * that its unfolded rows stay a short range of the newest rids. */
    [ST_KEY_INSERT] =
        "INSERT INTO metric_keys (key, folded_upto) VALUES (?, (SELECT "
        "coalesce(max(rid), 0) - 1 FROM runs)) ON CONFLICT (key) DO NOTHING",
    [ST_KEY_ID] = "SELECT key_id, folded_upto FROM metric_keys WHERE key = ?",
    /* Keep the newest point by (step, timestamp); NaN values read back as
     * NULL from REAL columns, which search treats as missing. */
    [ST_LATEST_UPSERT] =
        "INSERT INTO latest_metrics (rid, key_id, value, timestamp, "
        "step) VALUES (?, ?, ?, ?, ?) ON CONFLICT (rid, key_id) DO "
        "UPDATE SET value = excluded.value, timestamp = "
        "excluded.timestamp, step = excluded.step WHERE "
        "(excluded.step, excluded.timestamp) >= (step, timestamp)",
    /* A deferred row's mirror (fold.h), kept the same way. */
    [ST_RECENT_UPSERT] =
        "INSERT INTO mem.recent (rid, key_id, value, timestamp, step) VALUES (?, "
        "?, ?, ?, ?) ON CONFLICT (rid, key_id) DO UPDATE SET value = "
        "excluded.value, timestamp = excluded.timestamp, step = excluded.step "
        "WHERE (excluded.step, excluded.timestamp) >= (step, timestamp)",
    [ST_LATEST_GET] =
        "SELECT value, timestamp, step FROM latest_metrics WHERE rid = ? AND "
        "key_id = ?",
    [ST_VALUE_PUT] = "INSERT INTO metric_values (key_id, value, rid) VALUES (?, ?, ?)",
    [ST_VALUE_DEL] =
        "DELETE FROM metric_values WHERE key_id = ? AND value = ? AND rid = ?",
    [ST_SEG_TAIL] =
        "SELECT seq, n, data FROM metric_segments WHERE rid = ? AND key_id "
        "= ? ORDER BY seq DESC LIMIT 1",
    [ST_SEG_INSERT] =
        "INSERT INTO metric_segments (rid, key_id, seq, n, step_min, "
        "step_max, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
    [ST_SEG_UPDATE] =
        "UPDATE metric_segments SET n = ?, step_min = min(step_min, ?), "
        "step_max = max(step_max, ?), data = ? WHERE rid = ? AND key_id = ? "
        "AND seq = ?",
    [ST_SEG_ALL] =
        "SELECT data FROM metric_segments WHERE rid = ? AND key_id = ? ORDER "
        "BY seq",
    [ST_JOURNAL_GET] = "SELECT applied_seq, tag FROM metric_journal WHERE id = 1",
    [ST_JOURNAL_SET] = "UPDATE metric_journal SET applied_seq = ? WHERE id = 1",
    [ST_DATASET_PUT] =
        "INSERT INTO datasets (experiment_id, name, digest, source_type, source, "
        "schema, profile) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, "
        "name, digest) DO NOTHING",
    [ST_DATASET_ID] =
        "SELECT dataset_id FROM datasets WHERE experiment_id = ? AND name = ? AND "
        "digest = ?",
    [ST_INPUT_PUT] =
        "INSERT INTO run_inputs (rid, dataset_id, tags) VALUES (?, ?, ?) ON "
        "CONFLICT (rid, dataset_id) DO NOTHING",
    [ST_RUN_INPUTS] =
        "SELECT d.name, d.digest, d.source_type, d.source, d.schema, d.profile, "
        "i.tags FROM run_inputs i JOIN datasets d ON d.dataset_id = i.dataset_id "
        "WHERE i.rid = ? ORDER BY i.dataset_id",
    [ST_RUN_HAS_INPUTS] = "SELECT 1 FROM run_inputs WHERE rid = ? LIMIT 1",
    [ST_ANY_INPUTS] = "SELECT 1 FROM run_inputs LIMIT 1",
    /* artifacts */
    [ST_ART_RUN_STAGE] = "SELECT lifecycle_stage FROM runs WHERE rid = ?",
    [ST_ART_PUT] =
        "INSERT INTO artifacts (rid, path, hash, size, created, alg) VALUES (?, ?, ?, "
        "?, ?, ?) ON CONFLICT (rid, path) DO UPDATE SET hash = excluded.hash, size = "
        "excluded.size, created = excluded.created, alg = excluded.alg",
    [ST_ART_GET] = "SELECT hash, size, alg FROM artifacts WHERE rid = ? AND path = ?",
    /* The first path in [lo, hi): one seek in the primary key. */
    [ST_ART_NEXT] =
        "SELECT path, size FROM artifacts WHERE rid = ?1 AND path >= ?2 AND path "
        "< ?3 ORDER BY path LIMIT 1",
    [ST_ART_DEL] = "DELETE FROM artifacts WHERE rid = ? AND path = ?",
    [ST_ART_DEL_TREE] =
        "DELETE FROM artifacts WHERE rid = ? AND path >= ? AND path < ?",
    /* The blobs a delete of path (a file, or a directory [lo, hi)) lets go. */
    [ST_ART_HASHES] =
        "SELECT DISTINCT hash, alg FROM artifacts WHERE rid = ?1 AND (path = ?2 "
        "OR (path >= ?3 AND path < ?4))",
    /* A blob is named by (alg, hash): the index on hash finds the rows. */
    [ST_ART_REFERENCED] =
        ("SELECT 1 FROM artifacts WHERE hash = ?1 AND alg = ?2 UNION "
         "ALL SELECT 1 FROM pins WHERE hash = ?1 AND alg = ?2 LIMIT 1"),
    /* A file (path = ?2), or a directory's files [?3, ?4), in path order. */
    [ST_ART_TREE] = ("SELECT path, size, hash, alg FROM artifacts WHERE rid = ?1 AND "
                     "(path = ?2 OR (path >= ?3 AND path < ?4)) ORDER BY path"),
    [ST_PIN_PUT] = "INSERT OR IGNORE INTO pins (hash, alg, owner) VALUES (?, ?, ?)",
    [ST_PIN_DROP] = "DELETE FROM pins WHERE owner = ? RETURNING hash, alg",
    [ST_PIN_HAS] = "SELECT 1 FROM pins WHERE hash = ? AND alg = ? AND owner = ?",
};

/* A small cache of metric key ids (keys repeat across every batch). */
#define KEY_CACHE 4096

typedef struct key_entry {
    char *key;
    int64_t id;
} key_entry_t;

/* The checkpointer: a thread with its own connection that copies the WAL
 * back into the database file every CHECKPOINT_MS. A checkpoint of a busy
 * WAL takes 100-300 ms (page copies and an fsync of the file); on the
 * plugin's thread that stalled every request arriving meanwhile. */
#define CHECKPOINT_MS 100
/* Frames in the WAL (4 KiB each) past which the checkpointer truncates it:
 * checkpoints copy frames back but never start the WAL over while writes
 * keep coming (the WAL restarts only when a write begins with every frame
 * copied), so under a steady load it grew without bound: 17 GB in four
 * minutes of populating. */
#define WAL_TRUNCATE_FRAMES 16384
#define TRUNCATE_WAIT_MS 100
/* A passive pass this quick left little for TRUNCATE to copy: a stall of
 * the writer (it waits on TRUNCATE) about this long. */
#define QUICK_PASS_MS 30

typedef struct checkpointer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sqlite3 *h;
    bool running, stop;
    _Atomic int wal_frames; /* the WAL's size at the last passive pass */
} checkpointer_t;

struct db {
    sqlite3 *h;
    char *path;
    ridsets_t *rs;
    bool durable_full;
    sqlite3_stmt *st[ST_COUNT];
    key_entry_t keys[KEY_CACHE];
    bool keys_new; /* a key was inserted in the open transaction */
    fold_t *fold;  /* NULL: every metric row is written folded */
    uint64_t fold_commits_seen;
    checkpointer_t ck;
    uint64_t commits, commits_seen; /* db_commit calls; as of the last tick */
};

int db_fail(db_t *db, const char *what, cairn_err_t *err)
{
    int code = db && db->h ? sqlite3_extended_errcode(db->h) : 0;
    int st = (code & 0xff) == SQLITE_FULL ? 507 : 500;
    return cairn_err_set(err, st == 507 ? 500 : st, "storage_error",
                         "the tracking database failed to %s: %s", what,
                         db && db->h ? sqlite3_errmsg(db->h) : "no handle");
}

static int s_exec(db_t *db, const char *sql, const char *what, cairn_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                      "the tracking database failed to %s: %s", what,
                      msg ? msg : "unknown error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int s_user_version(db_t *db)
{
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Run the migrations past the file's version, each in its own transaction. */
static int s_migrate(db_t *db, cairn_err_t *err)
{
    int v = s_user_version(db);
    if (v < 0) return db_fail(db, "read its schema version", err);
    if (v > STORAGE_SCHEMA_VERSION)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "the tracking database has schema version %d, newer than "
                             "this Cairn knows (%d): upgrade Cairn",
                             v, STORAGE_SCHEMA_VERSION);
    for (; v < STORAGE_SCHEMA_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        if (s_exec(db, "BEGIN IMMEDIATE", "begin a migration", err) != 0) return -1;
        /* Another connection (a second storage instance: tracking and
         * artifacts) may have migrated while this one waited for the lock. */
        int now = s_user_version(db);
        if (now > v) {
            if (s_exec(db, "COMMIT", "commit a migration", err) != 0) return -1;
            v = now - 1;
            continue;
        }
        if (s_exec(db, storage_migrations[v], "migrate", err) != 0 ||
            (v == 0 &&
             s_exec(db,
                    "INSERT INTO experiments (experiment_id, name, artifact_location, "
                    "creation_time, last_update_time) VALUES (0, 'Default', "
                    "'cairn-artifacts:/0', strftime('%s','now') * 1000, "
                    "strftime('%s','now') * 1000)",
                    "create the Default experiment", err) != 0) ||
            s_exec(db, pragma, "record the schema version", err) != 0 ||
            s_exec(db, "COMMIT", "commit a migration", err) != 0) {
            sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    return 0;
}

static uint64_t s_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* PASSIVE copies what no reader still needs and never waits on anyone. A
 * large WAL is then started over with TRUNCATE, which holds back the next
 * write (reads go on) while it copies what is left and syncs: only right
 * after a quick passive pass, so that little is left to copy. Otherwise,
 * or when the writer or a reader stays busy, next time. */
static void s_checkpoint_once(checkpointer_t *ck)
{
    sqlite3 *h = ck->h;
    int log = 0;
    sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, NULL);
    atomic_store(&ck->wal_frames, log);
    if (log < WAL_TRUNCATE_FRAMES) return;
    uint64_t t0 = s_ms();
    sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (s_ms() - t0 <= QUICK_PASS_MS)
        sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
}

static void *s_checkpointer_main(void *arg)
{
    checkpointer_t *ck = arg;
    pthread_mutex_lock(&ck->mu);
    while (!ck->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)CHECKPOINT_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = 0;
        while (!ck->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&ck->cv, &ck->mu, &until);
        if (ck->stop) break;
        pthread_mutex_unlock(&ck->mu);
        s_checkpoint_once(ck);
        pthread_mutex_lock(&ck->mu);
    }
    pthread_mutex_unlock(&ck->mu);
    return NULL;
}

int db_checkpointer_start(db_t *db, cairn_err_t *err)
{
    checkpointer_t *ck = &db->ck;
    if (ck->running) return 0;
    if (sqlite3_open_v2(db->path, &ck->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_exec(ck->h,
                     db->durable_full ? "PRAGMA synchronous = FULL"
                                      : "PRAGMA synchronous = NORMAL",
                     NULL, NULL, NULL) != SQLITE_OK) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                      "cannot open the tracking database %s for checkpoints: %s",
                      db->path, ck->h ? sqlite3_errmsg(ck->h) : "out of memory");
        sqlite3_close(ck->h);
        ck->h = NULL;
        return -1;
    }
    /* A passive checkpoint never waits; TRUNCATE waits this long at most. */
    sqlite3_busy_timeout(ck->h, TRUNCATE_WAIT_MS);
    pthread_mutex_init(&ck->mu, NULL);
    pthread_cond_init(&ck->cv, NULL);
    ck->stop = false;
    int e = pthread_create(&ck->thread, NULL, s_checkpointer_main, ck);
    if (e != 0) {
        pthread_mutex_destroy(&ck->mu);
        pthread_cond_destroy(&ck->cv);
        sqlite3_close(ck->h);
        ck->h = NULL;
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "cannot start the checkpointer: %s", strerror(e));
    }
    ck->running = true;
    return 0;
}

static void s_checkpointer_stop(db_t *db)
{
    checkpointer_t *ck = &db->ck;
    if (!ck->running) return;
    pthread_mutex_lock(&ck->mu);
    ck->stop = true;
    pthread_cond_signal(&ck->cv);
    pthread_mutex_unlock(&ck->mu);
    pthread_join(ck->thread, NULL);
    pthread_mutex_destroy(&ck->mu);
    pthread_cond_destroy(&ck->cv);
    sqlite3_close(ck->h);
    ck->h = NULL;
    ck->running = false;
}

ridsets_t *db_ridsets(db_t *db)
{
    return db->rs;
}

db_t *db_open(const char *path, bool durable_full, cairn_err_t *err)
{
    db_t *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        cairn_err_oom(err, NULL);
        return NULL;
    }
    db->durable_full = durable_full;
    /* SQLite's memory statistics take a process-wide mutex on every
     * allocation; nothing here reads them. Only possible before SQLite's
     * first use in the process (a later call is refused, harmlessly). */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (sqlite3_open_v2(
            path, &db->h,
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
            NULL) != SQLITE_OK) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                      "cannot open the tracking database %s: %s", path,
                      db->h ? sqlite3_errmsg(db->h) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(db->h, 10000);
    /* More small allocations served from the connection's own slots rather
     * than malloc: a write of one run's batch makes thousands. */
    sqlite3_db_config(db->h, SQLITE_DBCONFIG_LOOKASIDE, NULL, 512, 1024);
    /* Two instances (tracking and artifacts) may open a new file at once:
     * switching it to WAL can then answer SQLITE_BUSY without waiting in
     * the busy handler, so wait here (up to the same 10 s). */
    for (int tries = 0; s_exec(db, "PRAGMA journal_mode = WAL", "enable WAL", err) != 0;
         tries++) {
        if ((sqlite3_errcode(db->h) & 0xff) != SQLITE_BUSY || tries >= 500) goto fail;
        sqlite3_sleep(20);
    }
    if (s_exec(
            db,
            durable_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
            "set durability", err) != 0 ||
        s_exec(db,
               "PRAGMA foreign_keys = OFF; PRAGMA case_sensitive_like = ON; "
               "PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; "
               /* Checkpoints run from the plugin's tick (db_checkpoint), not
                * inside whichever commit crosses the threshold. */
               "PRAGMA wal_autocheckpoint = 0",
               "configure", err) != 0 ||
        s_migrate(db, err) != 0 || fold_attach(db->h, err) != 0)
        goto fail;
    if (!(db->rs = ridsets_new())) {
        cairn_err_oom(err, "for rid sets");
        goto fail;
    }
    if (ridsets_register(db->rs, db->h, err) != 0) goto fail;
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(db->h, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &db->st[i], NULL) != SQLITE_OK) {
            db_fail(db, "prepare a statement", err);
            goto fail;
        }
    return db;
fail:
    db_close(&db);
    return NULL;
}

void db_close(db_t **self_p)
{
    if (!self_p || !*self_p) return;
    db_t *db = *self_p;
    s_checkpointer_stop(db);
    fold_free(&db->fold);
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(db->st[i]);
    for (int i = 0; i < KEY_CACHE; i++) free(db->keys[i].key);
    sqlite3_close(db->h);
    ridsets_free(&db->rs);
    free(db->path);
    free(db);
    *self_p = NULL;
}

const char *db_path(const db_t *db)
{
    return db->path;
}

sqlite3 *db_handle(db_t *db)
{
    return db->h;
}

sqlite3_stmt *db_stmt(db_t *db, db_stmt_id_t id)
{
    sqlite3_stmt *st = db->st[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

int db_exec_stmt(db_t *db, sqlite3_stmt *st, cairn_err_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_fail(db, "write", err);
    return 0;
}

int db_begin(db_t *db, cairn_err_t *err)
{
    db->keys_new = false;
    return db_exec_stmt(db, db_stmt(db, ST_BEGIN), err);
}

int db_commit(db_t *db, cairn_err_t *err)
{
    db->commits++;
    if (db_exec_stmt(db, db_stmt(db, ST_COMMIT), err) != 0) {
        db_rollback(db);
        return -1;
    }
    return 0;
}

/* A key inserted in a rolled-back transaction or savepoint is gone, and
 * its id may go to another key next: forget the cached ids (a rare event). */
static void s_forget_keys(db_t *db)
{
    for (int i = 0; i < KEY_CACHE; i++) {
        free(db->keys[i].key);
        db->keys[i].key = NULL;
    }
}

void db_rollback(db_t *db)
{
    if (!sqlite3_get_autocommit(db->h)) {
        sqlite3_stmt *st = db_stmt(db, ST_ROLLBACK);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    if (db->keys_new) s_forget_keys(db);
    db->keys_new = false;
}

int db_savepoint(db_t *db, cairn_err_t *err)
{
    return db_exec_stmt(db, db_stmt(db, ST_SAVEPOINT), err);
}

int db_release(db_t *db, cairn_err_t *err)
{
    return db_exec_stmt(db, db_stmt(db, ST_RELEASE), err);
}

int db_rollback_to(db_t *db)
{
    cairn_err_t err = {0};
    /* keys_new stays set: the transaction's other keys may roll back yet. */
    if (db->keys_new) s_forget_keys(db);
    if (sqlite3_get_autocommit(db->h)) return -1;
    if (db_exec_stmt(db, db_stmt(db, ST_ROLLBACK_TO), &err) != 0 ||
        db_exec_stmt(db, db_stmt(db, ST_RELEASE), &err) != 0)
        return -1;
    return 0;
}

static uint32_t s_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

int db_metric_key_id(db_t *db, const char *key, size_t len, int64_t *id,
                     cairn_err_t *err)
{
    key_entry_t *e = &db->keys[s_hash(key, len) % KEY_CACHE];
    if (e->key && strlen(e->key) == len && memcmp(e->key, key, len) == 0) {
        *id = e->id;
        return 0;
    }
    sqlite3_stmt *st = db_stmt(db, ST_KEY_INSERT);
    sqlite3_bind_text(st, 1, key, (int)len, SQLITE_STATIC);
    if (db_exec_stmt(db, st, err) != 0) return -1;
    if (sqlite3_changes(db->h) > 0) db->keys_new = true;
    st = db_stmt(db, ST_KEY_ID);
    sqlite3_bind_text(st, 1, key, (int)len, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) return db_fail(db, "find a metric key", err);
    *id = sqlite3_column_int64(st, 0);
    int64_t upto = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    if (fold_learn(db->fold, *id, upto, err) != 0) return -1;
    /* Ids never change once committed; one inserted by a transaction that
     * rolls back is dropped from the cache by db_rollback. */
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, key, len);
        copy[len] = '\0';
        free(e->key);
        e->key = copy;
        e->id = *id;
    }
    return 0;
}

void db_checkpoint(db_t *db)
{
    if (db->ck.running) {
        /* The checkpointer's thread copies the frames, and starts a large
         * WAL over when it can. Under a steady stream of writes it cannot
         * (it would hold them back too long), so this thread, the writer,
         * does, holding its own writes back meanwhile: the WAL's bound is
         * their backpressure. Reads alone never come here. */
        bool wrote = db->commits != db->commits_seen;
        db->commits_seen = db->commits;
        if (!wrote || atomic_load(&db->ck.wal_frames) < WAL_TRUNCATE_FRAMES) return;
        sqlite3_busy_timeout(db->h, 0); /* a reader or the checkpointer: next tick */
        int log = 0;
        if (sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log,
                                      NULL) == SQLITE_OK)
            atomic_store(&db->ck.wal_frames, log);
        sqlite3_busy_timeout(db->h, 10000);
        return;
    }
    /* PASSIVE: copy what no reader still needs; never waits on anyone. */
    sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

int db_fold_start(db_t *db, cairn_err_t *err)
{
    return db->fold ? 0 : fold_start(db->h, &db->fold, err);
}

bool db_fold_defers(const db_t *db, int64_t key_id, int64_t rid)
{
    return fold_defers(db->fold, key_id, rid);
}

void db_fold_noted(db_t *db)
{
    fold_noted(db->fold);
}

long db_fold_tick(db_t *db, cairn_err_t *err)
{
    if (!db->fold) return 0;
    bool idle = db->commits == db->fold_commits_seen;
    long n = fold_tick(db->fold, db->h, idle, err);
    if (n > 0) db->commits++; /* for db_checkpoint; not a write of a request */
    db->fold_commits_seen = db->commits;
    return n;
}
