/* The jobs table (compute.h): one SQLite file, STATE/jobs/jobs.db, one row
 * per job, its spec kept as submitted (msgpack). Every change is a commit
 * of its own, in WAL with synchronous=NORMAL: it survives any crash of a
 * process, as tracking's `durability: process` does. With power
 * (store_open's flag, the `durability` setting) a submitted job is
 * committed with a flush too (synchronous=FULL for that insert), so that
 * once acknowledged not even a power loss loses it; status changes never
 * are, since a machine that restarts fails its running jobs anyway and each
 * end is also in the shim's exit record, which is flushed: a flush per
 * change would cap the jobs a second at the disk's flush rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute.h"
#include "sqlite_util.h"

#define WHAT "the jobs database"
#define COLS                                                                        \
    "seq, ws, name, status, run_id, experiment_id, experiment_name, display_name, " \
    "reason, principal, priority, created, started, ended, exit_code, shim_pid, "   \
    "shim_start, pgid, cancel_asked, boot_id, token_id, retries, attempt, gpus, "   \
    "compute"

enum {
    Q_INSERT,
    Q_GET,
    Q_SPEC,
    Q_UPDATE,
    Q_EACH,
    Q_EACH_ALL,
    Q_NEXT,
    Q_COUNT_STATUS,
    Q_LIST,
    Q_COUNT_BUSY,
    Q_COUNT_ON,
    Q_CT_INSERT,
    Q_CT_GET,
    Q_CT_DELETE,
    Q_CT_EACH,
    Q_N
};

static const char *const s_sql[Q_N] = {
    [Q_INSERT] =
        "INSERT INTO jobs (ws, name, status, spec, run_id, experiment_id, "
        "experiment_name, display_name, principal, priority, created, retries, "
        "compute) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING "
        "RETURNING "
        "seq",
    [Q_GET] = "SELECT " COLS " FROM jobs WHERE ws = ? AND name = ?",
    [Q_SPEC] = "SELECT spec FROM jobs WHERE seq = ?",
    [Q_UPDATE] =
        "UPDATE jobs SET status = ?2, reason = ?3, started = ?4, ended = ?5, "
        "exit_code = ?6, shim_pid = ?7, shim_start = ?8, pgid = ?9, "
        "cancel_asked = ?10, boot_id = ?11, token_id = ?12, attempt = ?13, gpus = ?14 "
        "WHERE seq = ?1",
    [Q_EACH] = "SELECT " COLS " FROM jobs WHERE status = ? ORDER BY seq",
    [Q_EACH_ALL] = "SELECT " COLS " FROM jobs ORDER BY seq",
    [Q_NEXT] = "SELECT " COLS
               " FROM jobs WHERE status = 0 ORDER BY priority DESC, seq "
               "LIMIT ?1",
    [Q_COUNT_STATUS] = "SELECT count(*) FROM jobs WHERE status = ?",
    [Q_COUNT_BUSY] =
        "SELECT count(*) FROM jobs WHERE status IN (1, 2) AND ws = ? AND "
        "compute = ?",
    [Q_COUNT_ON] =
        "SELECT count(*) FROM jobs WHERE status = ? AND ws = ? AND compute = ?",
    [Q_CT_INSERT] =
        "INSERT INTO computes (ws, name, description, max_concurrent, created) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    [Q_CT_GET] =
        "SELECT ws, name, description, max_concurrent, created FROM computes "
        "WHERE ws = ? AND name = ?",
    [Q_CT_DELETE] = "DELETE FROM computes WHERE ws = ? AND name = ?",
    [Q_CT_EACH] =
        "SELECT ws, name, description, max_concurrent, created FROM computes "
        "WHERE ws = ? ORDER BY name",
    [Q_LIST] = "SELECT " COLS
               " FROM jobs WHERE ws = ?1 AND (?2 < 0 OR status = ?2) AND "
               "(?3 IS NULL OR experiment_name = ?3) AND created >= ?4 AND (?5 = 0 OR "
               "seq < ?5) ORDER BY seq DESC LIMIT ?6",
};

static const char *const s_migrations[] = {
    "CREATE TABLE jobs (seq INTEGER PRIMARY KEY, ws TEXT NOT NULL, name TEXT NOT NULL, "
    "status INTEGER NOT NULL, spec BLOB NOT NULL, run_id TEXT NOT NULL DEFAULT '', "
    "experiment_id TEXT NOT NULL DEFAULT '', experiment_name TEXT NOT NULL DEFAULT '', "
    "display_name TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', principal "
    "TEXT NOT NULL DEFAULT '', priority INTEGER NOT NULL DEFAULT 0, created INTEGER "
    "NOT "
    "NULL, started INTEGER NOT NULL DEFAULT 0, ended INTEGER NOT NULL DEFAULT 0, "
    "exit_code INTEGER NOT NULL DEFAULT -1, shim_pid INTEGER NOT NULL DEFAULT 0, "
    "shim_start INTEGER NOT NULL DEFAULT 0, pgid INTEGER NOT NULL DEFAULT 0, "
    "cancel_asked INTEGER NOT NULL DEFAULT 0, boot_id TEXT NOT NULL DEFAULT '', UNIQUE "
    "(ws, name));"
    "CREATE INDEX jobs_by_status ON jobs (status, priority DESC, seq);",
    /* 2: the id of the job's token (token.c), to revoke it at the end */
    "ALTER TABLE jobs ADD COLUMN token_id TEXT NOT NULL DEFAULT '';",
    /* 3: retries: the spec's, and the failed attempts so far */
    "ALTER TABLE jobs ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;",
    /* 4: the GPUs a started job holds ("0,2") */
    "ALTER TABLE jobs ADD COLUMN gpus TEXT NOT NULL DEFAULT '';",
    /* 5: compute targets (create_compute), and each job's */
    "ALTER TABLE jobs ADD COLUMN compute TEXT NOT NULL DEFAULT 'local';"
    "CREATE TABLE computes (ws TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT "
    "NULL DEFAULT '', max_concurrent INTEGER NOT NULL, created INTEGER NOT NULL, "
    "PRIMARY KEY (ws, name));",
};

struct store {
    sqlite3 *h;
    bool power; /* flush each submitted job */
    sqlite3_stmt *q[Q_N];
};

store_t *store_open(const char *path, bool power, cairn_err_t *err)
{
    store_t *s = calloc(1, sizeof *s);
    if (!s) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    s->power = power;
    if (cairn_sqlite_open(path, WHAT, 5000, &s->h, err) != 0 ||
        cairn_sqlite_exec(s->h, WHAT,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                          "configure", err) != 0 ||
        cairn_sqlite_migrate(s->h, WHAT, s_migrations,
                             (int)(sizeof s_migrations / sizeof s_migrations[0]),
                             err) != 0 ||
        cairn_sqlite_prepare(s->h, WHAT, s_sql, Q_N, s->q, err) != 0) {
        store_close(&s);
        return NULL;
    }
    return s;
}

void store_close(store_t **self_p)
{
    if (!self_p || !*self_p) return;
    store_t *s = *self_p;
    cairn_sqlite_finalize(s->q, Q_N);
    sqlite3_close(s->h);
    free(s);
    *self_p = NULL;
}

static sqlite3_stmt *s_q(store_t *s, int id)
{
    return cairn_sqlite_fresh(s->q[id]);
}

static void s_row(sqlite3_stmt *st, job_t *j)
{
    *j = (job_t){.seq = sqlite3_column_int64(st, 0)};
    cairn_sqlite_text(j->ws, sizeof j->ws, st, 1);
    cairn_sqlite_text(j->name, sizeof j->name, st, 2);
    int status = sqlite3_column_int(st, 3);
    j->status = status >= 0 && status < JOB_NSTATUS ? (job_status_t)status : JOB_FAILED;
    cairn_sqlite_text(j->run_id, sizeof j->run_id, st, 4);
    cairn_sqlite_text(j->experiment_id, sizeof j->experiment_id, st, 5);
    cairn_sqlite_text(j->experiment_name, sizeof j->experiment_name, st, 6);
    cairn_sqlite_text(j->display_name, sizeof j->display_name, st, 7);
    cairn_sqlite_text(j->reason, sizeof j->reason, st, 8);
    cairn_sqlite_text(j->principal, sizeof j->principal, st, 9);
    j->priority = sqlite3_column_int64(st, 10);
    j->created = sqlite3_column_int64(st, 11);
    j->started = sqlite3_column_int64(st, 12);
    j->ended = sqlite3_column_int64(st, 13);
    j->exit_code = sqlite3_column_int64(st, 14);
    j->shim_pid = sqlite3_column_int64(st, 15);
    j->shim_start = sqlite3_column_int64(st, 16);
    j->pgid = sqlite3_column_int64(st, 17);
    j->cancel_asked = sqlite3_column_int(st, 18) != 0;
    cairn_sqlite_text(j->boot_id, sizeof j->boot_id, st, 19);
    cairn_sqlite_text(j->token_id, sizeof j->token_id, st, 20);
    j->retries = sqlite3_column_int64(st, 21);
    j->attempt = sqlite3_column_int64(st, 22);
    cairn_sqlite_text(j->gpus, sizeof j->gpus, st, 23);
    cairn_sqlite_text(j->compute, sizeof j->compute, st, 24);
}

static int s_insert(store_t *s, job_t *j, const void *spec, size_t spec_len,
                    cairn_err_t *err);

static int s_sync(store_t *s, bool full, cairn_err_t *err)
{
    return cairn_sqlite_exec(
        s->h, WHAT, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
        "set durability", err);
}

int store_insert(store_t *s, job_t *j, const void *spec, size_t spec_len,
                 cairn_err_t *err)
{
    if (!s->power) return s_insert(s, j, spec, spec_len, err);
    if (s_sync(s, true, err) != 0) return -1;
    int rc = s_insert(s, j, spec, spec_len, err);
    cairn_err_t ignored = {0};
    s_sync(s, false, &ignored);
    return rc;
}

static int s_insert(store_t *s, job_t *j, const void *spec, size_t spec_len,
                    cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_INSERT);
    sqlite3_bind_text(st, 1, j->ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, (int)j->status);
    sqlite3_bind_blob(st, 4, spec, (int)spec_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, j->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, j->experiment_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, j->experiment_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, j->display_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, j->principal, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, j->priority);
    sqlite3_bind_int64(st, 11, j->created);
    sqlite3_bind_int64(st, 12, j->retries);
    sqlite3_bind_text(st, 13, j->compute[0] ? j->compute : "local", -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        j->seq = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    } else if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "a job named '%s' exists in this workspace", j->name);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : cairn_sqlite_fail(s->h, WHAT, "store a job", err);
}

int store_get(store_t *s, const char *ws, const char *name, job_t *j, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_GET);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) s_row(st, j);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return 1;
    return cairn_sqlite_fail(s->h, WHAT, "read a job", err);
}

int store_spec(store_t *s, int64_t seq, char **spec, size_t *len, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_SPEC);
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st);
    *spec = NULL;
    if (rc == SQLITE_ROW) {
        *len = (size_t)sqlite3_column_bytes(st, 0);
        *spec = malloc(*len ? *len : 1);
        if (*spec && *len) memcpy(*spec, sqlite3_column_blob(st, 0), *len);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return cairn_sqlite_fail(s->h, WHAT, "read a job's spec", err);
    return *spec ? 0 : cairn_err_oom(err, NULL);
}

int store_update(store_t *s, const job_t *j, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_UPDATE);
    sqlite3_bind_int64(st, 1, j->seq);
    sqlite3_bind_int(st, 2, (int)j->status);
    sqlite3_bind_text(st, 3, j->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, j->started);
    sqlite3_bind_int64(st, 5, j->ended);
    sqlite3_bind_int64(st, 6, j->exit_code);
    sqlite3_bind_int64(st, 7, j->shim_pid);
    sqlite3_bind_int64(st, 8, j->shim_start);
    sqlite3_bind_int64(st, 9, j->pgid);
    sqlite3_bind_int(st, 10, j->cancel_asked);
    sqlite3_bind_text(st, 11, j->boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, j->token_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 13, j->attempt);
    sqlite3_bind_text(st, 14, j->gpus, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : cairn_sqlite_fail(s->h, WHAT, "update a job", err);
}

/* Rows of st into fn, collected first: fn may write (store_update). */
static int s_collect(store_t *s, sqlite3_stmt *st, int (*fn)(void *arg, job_t *j),
                     void *arg, cairn_err_t *err)
{
    job_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            job_t *t = realloc(v, cap * sizeof *v);
            if (!t) {
                sqlite3_reset(st);
                free(v);
                return cairn_err_oom(err, NULL);
            }
            v = t;
        }
        s_row(st, &v[n++]);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return cairn_sqlite_fail(s->h, WHAT, "read the jobs", err);
    }
    int out = 0;
    for (size_t i = 0; i < n && out == 0; i++) out = fn(arg, &v[i]);
    free(v);
    return out;
}

int store_each(store_t *s, int st, int (*fn)(void *arg, job_t *j), void *arg,
               cairn_err_t *err)
{
    sqlite3_stmt *q = s_q(s, st < 0 ? Q_EACH_ALL : Q_EACH);
    if (st >= 0) sqlite3_bind_int(q, 1, st);
    return s_collect(s, q, fn, arg, err);
}

int store_queue(store_t *s, job_t *out, int max, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_NEXT);
    sqlite3_bind_int(st, 1, max);
    int n = 0, rc;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) s_row(st, &out[n++]);
    if (n < max && rc != SQLITE_DONE) {
        sqlite3_reset(st);
        return cairn_sqlite_fail(s->h, WHAT, "read the queue", err);
    }
    sqlite3_reset(st);
    return n;
}

int64_t store_count(store_t *s, job_status_t status)
{
    sqlite3_stmt *st = s_q(s, Q_COUNT_STATUS);
    sqlite3_bind_int(st, 1, (int)status);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return n;
}

int store_list(store_t *s, const job_query_t *q, int (*fn)(void *arg, job_t *j),
               void *arg, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_LIST);
    sqlite3_bind_text(st, 1, q->ws, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, q->status);
    if (q->experiment) sqlite3_bind_text(st, 3, q->experiment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->since);
    sqlite3_bind_int64(st, 5, q->before);
    sqlite3_bind_int(st, 6, q->limit);
    return s_collect(s, st, fn, arg, err);
}

int64_t store_count_busy(store_t *s, const char *ws, const char *compute)
{
    sqlite3_stmt *st = s_q(s, Q_COUNT_BUSY);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, compute, -1, SQLITE_STATIC);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return n;
}

int64_t store_count_on(store_t *s, const char *ws, const char *compute,
                       job_status_t status)
{
    sqlite3_stmt *st = s_q(s, Q_COUNT_ON);
    sqlite3_bind_int(st, 1, (int)status);
    sqlite3_bind_text(st, 2, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, compute, -1, SQLITE_STATIC);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return n;
}

int store_compute_insert(store_t *s, const compute_target_t *t, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_CT_INSERT);
    sqlite3_bind_text(st, 1, t->ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->description, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, t->max_concurrent);
    sqlite3_bind_int64(st, 5, t->created);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return cairn_sqlite_fail(s->h, WHAT, "store the compute", err);
    if (sqlite3_changes(s->h) == 0)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "a compute named '%s' exists in this workspace", t->name);
    return 0;
}

static void s_target_row(sqlite3_stmt *st, compute_target_t *t)
{
    *t = (compute_target_t){.max_concurrent = sqlite3_column_int64(st, 3),
                            .created = sqlite3_column_int64(st, 4)};
    cairn_sqlite_text(t->ws, sizeof t->ws, st, 0);
    cairn_sqlite_text(t->name, sizeof t->name, st, 1);
    cairn_sqlite_text(t->description, sizeof t->description, st, 2);
}

int store_compute_get(store_t *s, const char *ws, const char *name, compute_target_t *t,
                      cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_CT_GET);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) s_target_row(st, t);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return 1;
    return cairn_sqlite_fail(s->h, WHAT, "read a compute", err);
}

int store_compute_delete(store_t *s, const char *ws, const char *name, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_CT_DELETE);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return cairn_sqlite_fail(s->h, WHAT, "delete a compute", err);
    return sqlite3_changes(s->h) ? 0 : 1;
}

int store_compute_each(store_t *s, const char *ws,
                       int (*fn)(void *arg, const compute_target_t *t), void *arg,
                       cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_CT_EACH);
    sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        compute_target_t t;
        s_target_row(st, &t);
        if (fn(arg, &t) != 0) break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cairn_sqlite_fail(s->h, WHAT, "list the computes", err);
    return 0;
}
