/* endpoints.db (scorer.h): one row per endpoint (its keys with it: the
 * file is 0600 in the 0700 state dir) and one per deployment, each change
 * a commit of its own (WAL, synchronous=NORMAL: it survives any crash of
 * a process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scorer.h"
#include "sqlite_util.h"

#define WHAT "the endpoints database"

enum {
    Q_EP_INSERT,
    Q_EP_GET,
    Q_EP_GET_ANY,
    Q_EP_DELETE,
    Q_EP_DEPS_DELETE,
    Q_EP_KEYS,
    Q_EP_EACH,
    Q_EP_EACH_ALL,
    Q_DEP_INSERT,
    Q_DEP_GET,
    Q_DEP_DELETE,
    Q_DEP_EACH,
    Q_DEP_EACH_ALL,
    Q_DEP_TRAFFIC,
    Q_DEP_ZERO,
    Q_DEP_UPDATE,
    Q_DEP_MIRROR_ZERO,
    Q_DEP_MIRROR,
    Q_N
};

#define EP_COLS "ws, name, auth_mode, key1, key2, created"
#define DEP_COLS                                                                 \
    "endpoint, name, model, model_ref, path, instance_count, traffic, created, " \
    "mirror, follow, code, scoring_script, request_timeout_ms, max_concurrent"

static const char *const s_sql[Q_N] = {
    [Q_EP_INSERT] = "INSERT INTO endpoints (" EP_COLS
                    ") VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
    [Q_EP_GET] = "SELECT " EP_COLS " FROM endpoints WHERE ws = ?1 AND name = ?2",
    [Q_EP_GET_ANY] = "SELECT " EP_COLS " FROM endpoints WHERE name = ?2 AND ?1 IS NULL",
    [Q_EP_DELETE] = "DELETE FROM endpoints WHERE name = ?",
    [Q_EP_DEPS_DELETE] = "DELETE FROM deployments WHERE endpoint = ?",
    [Q_EP_KEYS] = "UPDATE endpoints SET key1 = ?2, key2 = ?3 WHERE name = ?1",
    [Q_EP_EACH] = "SELECT " EP_COLS " FROM endpoints WHERE ws = ? ORDER BY name",
    [Q_EP_EACH_ALL] = "SELECT " EP_COLS " FROM endpoints ORDER BY name",
    [Q_DEP_INSERT] =
        "INSERT INTO deployments (" DEP_COLS
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    [Q_DEP_GET] =
        "SELECT " DEP_COLS " FROM deployments WHERE endpoint = ? AND name = ?",
    [Q_DEP_DELETE] = "DELETE FROM deployments WHERE endpoint = ? AND name = ?",
    [Q_DEP_EACH] =
        "SELECT " DEP_COLS " FROM deployments WHERE endpoint = ? ORDER BY name",
    [Q_DEP_EACH_ALL] = "SELECT " DEP_COLS " FROM deployments ORDER BY endpoint, name",
    [Q_DEP_TRAFFIC] =
        "UPDATE deployments SET traffic = ?3 WHERE endpoint = ?1 AND "
        "name = ?2",
    [Q_DEP_ZERO] = "UPDATE deployments SET traffic = 0 WHERE endpoint = ?",
    [Q_DEP_MIRROR_ZERO] = "UPDATE deployments SET mirror = 0 WHERE endpoint = ?",
    [Q_DEP_MIRROR] =
        "UPDATE deployments SET mirror = ?3 WHERE endpoint = ?1 AND name = ?2",
    [Q_DEP_UPDATE] =
        "UPDATE deployments SET model = ?3, model_ref = ?4, path = ?5, "
        "instance_count = ?6, follow = ?7, code = ?8, scoring_script = ?9, "
        "request_timeout_ms = ?10, max_concurrent = ?11 WHERE endpoint = ?1 AND name = "
        "?2",
};

static const char *const s_migrations[] = {
    "CREATE TABLE endpoints (ws TEXT NOT NULL, name TEXT PRIMARY KEY, auth_mode TEXT "
    "NOT NULL, key1 TEXT NOT NULL, key2 TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE deployments (endpoint TEXT NOT NULL, name TEXT NOT NULL, model TEXT "
    "NOT NULL, model_ref TEXT NOT NULL, path TEXT NOT NULL, instance_count INTEGER NOT "
    "NULL, traffic INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, PRIMARY KEY "
    "(endpoint, name));",
    /* 2: mirrored traffic (update_mirror), a percent of the live requests */
    "ALTER TABLE deployments ADD COLUMN mirror INTEGER NOT NULL DEFAULT 0;",
    /* 3: a deployment that follows its model's alias as it moves */
    "ALTER TABLE deployments ADD COLUMN follow INTEGER NOT NULL DEFAULT 0;",
    /* 4: the python flavor (a code snapshot and its scoring script) and the
     * request settings */
    "ALTER TABLE deployments ADD COLUMN code TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE deployments ADD COLUMN scoring_script TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE deployments ADD COLUMN request_timeout_ms INTEGER NOT NULL DEFAULT "
    "5000;"
    "ALTER TABLE deployments ADD COLUMN max_concurrent INTEGER NOT NULL DEFAULT 0;",
    /* 5: batch endpoints (batch.c, batch_store.c), unique in a workspace */
    "CREATE TABLE batch_endpoints (ws TEXT NOT NULL, name TEXT NOT NULL, model TEXT "
    "NOT NULL, model_ref TEXT NOT NULL, path TEXT NOT NULL, mini_batch_size INTEGER "
    "NOT NULL, max_concurrency INTEGER NOT NULL, error_threshold INTEGER NOT NULL, "
    "max_retries "
    "INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY "
    "(ws, name));",
};

struct ep_store {
    sqlite3 *h;
    sqlite3_stmt *q[Q_N];
};

ep_store_t *ep_store_open(const char *path, cairn_err_t *err)
{
    ep_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    if (cairn_sqlite_open(path, WHAT, 5000, &s->h, err) != 0 ||
        cairn_sqlite_exec(s->h, WHAT,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                          "configure", err) != 0 ||
        cairn_sqlite_migrate(s->h, WHAT, s_migrations,
                             (int)(sizeof s_migrations / sizeof s_migrations[0]),
                             err) != 0 ||
        cairn_sqlite_prepare(s->h, WHAT, s_sql, Q_N, s->q, err) != 0) {
        ep_store_close(&s);
        return NULL;
    }
    return s;
}

sqlite3 *ep_store_db(ep_store_t *s)
{
    return s->h;
}

void ep_store_close(ep_store_t **self_p)
{
    ep_store_t *s = *self_p;
    if (!s) return;
    cairn_sqlite_finalize(s->q, Q_N);
    sqlite3_close(s->h);
    free(s);
    *self_p = NULL;
}

static sqlite3_stmt *s_q(ep_store_t *s, int id)
{
    return cairn_sqlite_fresh(s->q[id]);
}

static void s_ep_row(sqlite3_stmt *st, ep_row_t *e)
{
    *e = (ep_row_t){.created = sqlite3_column_int64(st, 5)};
    cairn_sqlite_text(e->ws, sizeof e->ws, st, 0);
    cairn_sqlite_text(e->name, sizeof e->name, st, 1);
    cairn_sqlite_text(e->auth_mode, sizeof e->auth_mode, st, 2);
    cairn_sqlite_text(e->key1, sizeof e->key1, st, 3);
    cairn_sqlite_text(e->key2, sizeof e->key2, st, 4);
}

static void s_dep_row(sqlite3_stmt *st, dep_row_t *d)
{
    *d = (dep_row_t){.instance_count = sqlite3_column_int64(st, 5),
                     .traffic = sqlite3_column_int64(st, 6),
                     .created = sqlite3_column_int64(st, 7),
                     .mirror = sqlite3_column_int64(st, 8),
                     .follow = sqlite3_column_int(st, 9) != 0,
                     .timeout_ms = sqlite3_column_int64(st, 12),
                     .max_concurrent = sqlite3_column_int64(st, 13)};
    cairn_sqlite_text(d->endpoint, sizeof d->endpoint, st, 0);
    cairn_sqlite_text(d->name, sizeof d->name, st, 1);
    cairn_sqlite_text(d->model, sizeof d->model, st, 2);
    cairn_sqlite_text(d->model_ref, sizeof d->model_ref, st, 3);
    cairn_sqlite_text(d->path, sizeof d->path, st, 4);
    cairn_sqlite_text(d->code, sizeof d->code, st, 10);
    cairn_sqlite_text(d->script, sizeof d->script, st, 11);
}

/* The python flavor's columns and the request settings, from ?first on. */
static void s_bind_flavor(sqlite3_stmt *st, int first, const dep_row_t *d)
{
    sqlite3_bind_text(st, first, d->code, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, first + 1, d->script, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, first + 2, d->timeout_ms);
    sqlite3_bind_int64(st, first + 3, d->max_concurrent);
}

/* Step a write; 1 when it changed no row. */
static int s_write(ep_store_t *s, sqlite3_stmt *st, const char *doing, cairn_err_t *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return cairn_sqlite_fail(s->h, WHAT, doing, err);
    return sqlite3_changes(s->h) ? 0 : 1;
}

int ep_store_insert(ep_store_t *s, const ep_row_t *e, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_EP_INSERT);
    sqlite3_bind_text(st, 1, e->ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->auth_mode, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->key1, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, e->key2, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, e->created);
    int rc = s_write(s, st, "store the endpoint", err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "an endpoint named '%s' exists (endpoint names are unique "
                             "on this Cairn: they are in the scoring URI)",
                             e->name);
    return rc;
}

int ep_store_get(ep_store_t *s, const char *ws, const char *name, ep_row_t *e,
                 cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, ws ? Q_EP_GET : Q_EP_GET_ANY);
    if (ws) sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) s_ep_row(st, e);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return 1;
    return cairn_sqlite_fail(s->h, WHAT, "read an endpoint", err);
}

int ep_store_delete(ep_store_t *s, const char *name, cairn_err_t *err)
{
    if (cairn_sqlite_exec(s->h, WHAT, "BEGIN", "begin", err) != 0) return -1;
    sqlite3_stmt *st = s_q(s, Q_EP_DEPS_DELETE);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = s_write(s, st, "delete the deployments", err) < 0 ? -1 : 0;
    if (rc == 0) {
        st = s_q(s, Q_EP_DELETE);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = s_write(s, st, "delete the endpoint", err) < 0 ? -1 : 0;
    }
    cairn_err_t ignored = {0};
    cairn_sqlite_exec(s->h, WHAT, rc == 0 ? "COMMIT" : "ROLLBACK", "end", &ignored);
    return rc;
}

int ep_store_set_keys(ep_store_t *s, const ep_row_t *e, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_EP_KEYS);
    sqlite3_bind_text(st, 1, e->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->key1, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->key2, -1, SQLITE_STATIC);
    return s_write(s, st, "store the keys", err) < 0 ? -1 : 0;
}

int ep_store_each(ep_store_t *s, const char *ws,
                  int (*fn)(void *arg, const ep_row_t *e), void *arg, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, ws ? Q_EP_EACH : Q_EP_EACH_ALL);
    if (ws) sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ep_row_t e;
        s_ep_row(st, &e);
        if (fn(arg, &e) != 0) break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cairn_sqlite_fail(s->h, WHAT, "list the endpoints", err);
    return 0;
}

int dep_store_insert(ep_store_t *s, const dep_row_t *d, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_DEP_INSERT);
    sqlite3_bind_text(st, 1, d->endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->model_ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, d->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, d->instance_count);
    sqlite3_bind_int64(st, 7, d->traffic);
    sqlite3_bind_int64(st, 8, d->created);
    sqlite3_bind_int(st, 9, d->follow);
    s_bind_flavor(st, 10, d);
    int rc = s_write(s, st, "store the deployment", err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "endpoint '%s' has a deployment named '%s'", d->endpoint,
                             d->name);
    return rc;
}

int dep_store_get(ep_store_t *s, const char *endpoint, const char *name, dep_row_t *d,
                  cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_DEP_GET);
    sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) s_dep_row(st, d);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) return 1;
    return cairn_sqlite_fail(s->h, WHAT, "read a deployment", err);
}

int dep_store_delete(ep_store_t *s, const char *endpoint, const char *name,
                     cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_DEP_DELETE);
    sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    return s_write(s, st, "delete the deployment", err);
}

int dep_store_each(ep_store_t *s, const char *endpoint,
                   int (*fn)(void *arg, const dep_row_t *d), void *arg,
                   cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, endpoint ? Q_DEP_EACH : Q_DEP_EACH_ALL);
    if (endpoint) sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        dep_row_t d;
        s_dep_row(st, &d);
        if (fn(arg, &d) != 0) break;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cairn_sqlite_fail(s->h, WHAT, "list the deployments", err);
    return 0;
}

int dep_store_update(ep_store_t *s, const dep_row_t *d, cairn_err_t *err)
{
    sqlite3_stmt *st = s_q(s, Q_DEP_UPDATE);
    sqlite3_bind_text(st, 1, d->endpoint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->model_ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, d->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, d->instance_count);
    sqlite3_bind_int(st, 7, d->follow);
    s_bind_flavor(st, 8, d);
    int rc = s_write(s, st, "update the deployment", err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "endpoint '%s' has no deployment named '%s'", d->endpoint,
                             d->name);
    return rc;
}

/* Each named deployment's share (traffic or mirror: the statements that
 * zero the endpoint's and set one), others 0, in one transaction. */
static int s_set_shares(ep_store_t *s, int zero_q, int set_q, const char *endpoint,
                        const char *const *names, const int64_t *pct, int n,
                        cairn_err_t *err)
{
    if (cairn_sqlite_exec(s->h, WHAT, "BEGIN", "begin", err) != 0) return -1;
    sqlite3_stmt *st = s_q(s, zero_q);
    sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
    int rc = s_write(s, st, "set the shares", err) < 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        st = s_q(s, set_q);
        sqlite3_bind_text(st, 1, endpoint, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, names[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, pct[i]);
        rc = s_write(s, st, "set the shares", err) < 0 ? -1 : 0;
    }
    cairn_err_t ignored = {0};
    cairn_sqlite_exec(s->h, WHAT, rc == 0 ? "COMMIT" : "ROLLBACK", "end", &ignored);
    return rc;
}

int dep_store_set_traffic(ep_store_t *s, const char *endpoint, const char *const *names,
                          const int64_t *pct, int n, cairn_err_t *err)
{
    return s_set_shares(s, Q_DEP_ZERO, Q_DEP_TRAFFIC, endpoint, names, pct, n, err);
}

int dep_store_set_mirror(ep_store_t *s, const char *endpoint, const char *const *names,
                         const int64_t *pct, int n, cairn_err_t *err)
{
    return s_set_shares(s, Q_DEP_MIRROR_ZERO, Q_DEP_MIRROR, endpoint, names, pct, n,
                        err);
}
