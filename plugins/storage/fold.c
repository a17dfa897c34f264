/* The metric value index, folded in behind the writes (see fold.h). */
#define _GNU_SOURCE
#include "fold.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Under a stream of writes, fold keys once mem.recent holds this many
 * rows, until it holds half as many: a fold of k rows into an index of p
 * pages writes about min(k, p) pages, so larger folds write less per row;
 * this bounds the memory (about 100 bytes a row). */
#define FOLD_BUSY_ROWS 262144
/* How long a tick folds under writes, which wait meanwhile; past
 * FOLD_BEHIND_ROWS (writes outpacing it) it goes on until the half. */
#define FOLD_BUSY_BUDGET_MS 50
#define FOLD_BEHIND_ROWS (4 * FOLD_BUSY_ROWS)
/* When idle, fold for at most this long a tick. */
#define FOLD_IDLE_BUDGET_MS 150

enum {
    F_COUNT,  /* rows and newest rid of a key in mem.recent */
    F_NEXT,   /* the next key in mem.recent after one */
    F_FOLD,   /* a key's rows into metric_values, in value order */
    F_UPTO,   /* the key's new folded_upto */
    F_FORGET, /* drop a key's rows from mem.recent */
    F_TOTAL,  /* all rows in mem.recent */
    F_NSTMT
};

static const char *const s_sql[F_NSTMT] = {
    [F_COUNT] = "SELECT count(*), max(rid) FROM mem.recent WHERE key_id = ?",
    [F_NEXT] = "SELECT key_id FROM mem.recent WHERE key_id > ? ORDER BY key_id LIMIT 1",
    /* parenthesized: one string, not two elements (clang's -Wstring-concatenation) */
    [F_FOLD] = ("INSERT INTO metric_values (key_id, value, rid) SELECT key_id, value, "
                "rid FROM mem.recent WHERE key_id = ?1 AND value IS NOT NULL ORDER BY "
                "value, rid"),
    [F_UPTO] =
        "UPDATE metric_keys SET folded_upto = max(folded_upto, ?) WHERE key_id = ?",
    [F_FORGET] = "DELETE FROM mem.recent WHERE key_id = ?",
    [F_TOTAL] = "SELECT count(*) FROM mem.recent",
};

struct fold {
    sqlite3_stmt *st[F_NSTMT];
    int64_t *upto; /* by key_id; keys past n: not known yet */
    size_t n;
    long pending;   /* rows noted since the last exact count */
    int64_t cursor; /* the last key folded: keys take turns */
};

/* Run sql (no rows) on h; a 500 naming what failed. */
static int s_exec(sqlite3 *h, const char *sql, const char *what, cairn_err_t *err)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE, "cannot %s: %s", what,
                  msg ? msg : "out of memory");
    sqlite3_free(msg);
    return -1;
}

int fold_attach(sqlite3 *h, cairn_err_t *err)
{
    return s_exec(h,
                  "ATTACH DATABASE ':memory:' AS mem;"
                  "CREATE TABLE mem.recent (rid INTEGER NOT NULL, key_id INTEGER "
                  "NOT NULL, value REAL, timestamp INTEGER NOT NULL, step INTEGER "
                  "NOT NULL, PRIMARY KEY (rid, key_id)) WITHOUT ROWID;"
                  "CREATE INDEX mem.recent_by_value ON recent (key_id, value);",
                  "attach the in-memory metric index", err);
}

static int s_fail(sqlite3 *h, const char *what, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE, "%s: %s", what,
                         sqlite3_errmsg(h));
}

int fold_learn(fold_t *f, int64_t key_id, int64_t upto, cairn_err_t *err)
{
    if (!f || key_id < 0) return 0;
    if ((uint64_t)key_id >= f->n) {
        size_t n = f->n ? f->n : 64;
        while (n <= (uint64_t)key_id) n *= 2;
        int64_t *v = realloc(f->upto, n * sizeof *v);
        if (!v) return cairn_err_oom(err, NULL);
        /* A key not learned yet defers nothing: safe either way. */
        for (size_t i = f->n; i < n; i++) v[i] = INT64_MAX;
        f->upto = v;
        f->n = n;
    }
    f->upto[key_id] = upto;
    return 0;
}

bool fold_defers(const fold_t *f, int64_t key_id, int64_t rid)
{
    return f && key_id >= 0 && (uint64_t)key_id < f->n && rid > f->upto[key_id];
}

void fold_noted(fold_t *f)
{
    if (f) f->pending++;
}

static int s_load(fold_t *f, sqlite3 *h, cairn_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, "SELECT key_id, folded_upto FROM metric_keys", -1,
                                &st, NULL);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        if (fold_learn(f, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                       err) != 0) {
            sqlite3_finalize(st);
            return -1;
        }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) return s_fail(h, "read the metric keys", err);
    /* Unfolded rows are newer than their key's folded_upto: a range of
     * the primary key, short unless the process stopped mid-populate. */
    if (s_exec(h,
               "INSERT INTO mem.recent SELECT lm.rid, lm.key_id, lm.value, "
               "lm.timestamp, lm.step FROM latest_metrics lm JOIN metric_keys mk "
               "ON mk.key_id = lm.key_id WHERE lm.rid > (SELECT "
               "coalesce(min(folded_upto), 0) FROM metric_keys) AND lm.rid > "
               "mk.folded_upto",
               "load the unfolded metric rows", err) != 0)
        return -1;
    f->pending = sqlite3_changes(h);
    return 0;
}

int fold_start(sqlite3 *h, fold_t **out, cairn_err_t *err)
{
    fold_t *f = calloc(1, sizeof *f);
    if (!f) return cairn_err_oom(err, NULL);
    for (int i = 0; i < F_NSTMT; i++)
        if (sqlite3_prepare_v3(h, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &f->st[i],
                               NULL) != SQLITE_OK) {
            s_fail(h, "prepare the metric folder", err);
            fold_free(&f);
            return -1;
        }
    if (s_load(f, h, err) != 0) {
        fold_free(&f);
        return -1;
    }
    *out = f;
    return 0;
}

void fold_free(fold_t **self_p)
{
    if (!self_p || !*self_p) return;
    fold_t *f = *self_p;
    for (int i = 0; i < F_NSTMT; i++) sqlite3_finalize(f->st[i]);
    free(f->upto);
    free(f);
    *self_p = NULL;
}

static sqlite3_stmt *s_st(fold_t *f, int id)
{
    sqlite3_reset(f->st[id]);
    sqlite3_clear_bindings(f->st[id]);
    return f->st[id];
}

static int s_step_done(sqlite3 *h, sqlite3_stmt *st, const char *what, cairn_err_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : s_fail(h, what, err);
}

/* The next key in mem.recent after the cursor, wrapping: 0 when empty. */
static int64_t s_next_key(fold_t *f)
{
    for (int pass = 0; pass < 2; pass++) {
        sqlite3_stmt *st = s_st(f, F_NEXT);
        sqlite3_bind_int64(st, 1, pass ? INT64_MIN : f->cursor);
        if (sqlite3_step(st) == SQLITE_ROW) {
            int64_t k = sqlite3_column_int64(st, 0);
            sqlite3_reset(st);
            return k;
        }
        sqlite3_reset(st);
    }
    return 0;
}

/* Insert the key's rows into metric_values in value order (the index's
 * pages in turn), raise its folded_upto, drop them from mem.recent. */
static int s_fold_rows(fold_t *f, sqlite3 *h, int64_t key, int64_t newest,
                       cairn_err_t *err)
{
    sqlite3_stmt *st = s_st(f, F_FOLD);
    sqlite3_bind_int64(st, 1, key);
    if (s_step_done(h, st, "fold metric values", err) != 0) return -1;
    st = s_st(f, F_UPTO);
    sqlite3_bind_int64(st, 1, newest);
    sqlite3_bind_int64(st, 2, key);
    if (s_step_done(h, st, "record a fold", err) != 0) return -1;
    st = s_st(f, F_FORGET);
    sqlite3_bind_int64(st, 1, key);
    return s_step_done(h, st, "forget folded rows", err);
}

/* Fold one key in a transaction of its own. Returns the rows folded. */
static long s_fold_key(fold_t *f, sqlite3 *h, int64_t key, cairn_err_t *err)
{
    sqlite3_stmt *st = s_st(f, F_COUNT);
    sqlite3_bind_int64(st, 1, key);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        return s_fail(h, "count unfolded rows", err);
    }
    long rows = (long)sqlite3_column_int64(st, 0);
    int64_t newest = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    if (rows == 0) return 0;
    if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return s_fail(h, "begin a fold", err);
    if (s_fold_rows(f, h, key, newest, err) != 0 ||
        sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        if (!err->st) s_fail(h, "commit a fold", err);
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    /* Rows of this key up to newest are all folded now: write the next
     * ones folded too (an older run's new key, say). */
    if (fold_learn(f, key,
                   f->upto && (uint64_t)key < f->n && f->upto[key] > newest
                       ? f->upto[key]
                       : newest,
                   err) != 0)
        return -1;
    f->cursor = key;
    f->pending = f->pending > rows ? f->pending - rows : 0;
    return rows;
}

static uint64_t s_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* The exact count, when the estimate says a fold is due. */
static long s_total(fold_t *f)
{
    sqlite3_stmt *st = s_st(f, F_TOTAL);
    long n = sqlite3_step(st) == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return f->pending = n;
}

/* Whether to fold another key, after folded rows for ms this tick. */
static bool s_more(const fold_t *f, bool idle, uint64_t ms, bool behind)
{
    if (f->pending <= 0) return false;
    if (idle) return ms < FOLD_IDLE_BUDGET_MS;
    return f->pending > FOLD_BUSY_ROWS / 2 && (behind || ms < FOLD_BUSY_BUDGET_MS);
}

long fold_tick(fold_t *f, sqlite3 *h, bool idle, cairn_err_t *err)
{
    if (!f || f->pending == 0 || !sqlite3_get_autocommit(h)) return 0;
    if (!idle && (f->pending < FOLD_BUSY_ROWS || s_total(f) < FOLD_BUSY_ROWS)) return 0;
    bool behind = !idle && f->pending >= FOLD_BEHIND_ROWS;
    uint64_t t0 = s_ms();
    long folded = 0;
    do {
        int64_t key = s_next_key(f);
        if (key == 0 && s_total(f) == 0) break;
        long n = s_fold_key(f, h, key, err);
        if (n < 0) return -1;
        folded += n;
    } while (s_more(f, idle, s_ms() - t0, behind));
    return folded;
}
