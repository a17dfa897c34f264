/* Unit tests of the search filter compiler (plugins/storage/filter.c):
 *   - a table of accepted filters (SQL fragment, bound-value count, and
 *     the SQL prepares inside a realistic search query);
 *   - a table of rejected filters (400 bad_request naming the position);
 *   - semantics: filters run against an in-memory tracking database with
 *     six runs, and the matching run ids are compared with the expected;
 *   - order_by: compiled clauses ordering the same runs, NULLs last;
 *   - limits: length, nesting, wide chains, value counts, rollback. */
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/err.h"
#include "filter.h"
#include "fold.h"
#include "ridsets.h"
#include "schema.h"
#include "sqlbuf.h"
#include "unit.h"

static sqlite3 *s_db;

/* ---- helpers ------------------------------------------------------------------ */

typedef struct compiled {
    int rc;
    sqlbuf_t sql;
    sql_binds_t binds;
    cairn_err_t err;
} compiled_t;

static void compile_n(compiled_t *c, const char *text, size_t len)
{
    memset(c, 0, sizeof *c);
    sqlbuf_init(&c->sql);
    sql_binds_init(&c->binds);
    c->rc = filter_compile(text, len, &c->sql, &c->binds, &c->err);
}

static void compile(compiled_t *c, const char *text)
{
    compile_n(c, text, strlen(text));
}

static void compiled_free(compiled_t *c)
{
    sqlbuf_free(&c->sql);
    sql_binds_free(&c->binds);
}

/* Prepare the filter inside a query shaped like the store's search (with
 * parameters of its own around it); returns 1 when it prepares and its
 * placeholders are exactly ours plus the query's five. */
static int prepares_in_search(const compiled_t *c)
{
    char *q = NULL;
    if (asprintf(&q,
                 "SELECT r.run_uuid FROM runs r LEFT JOIN latest_metrics o0 ON o0.rid "
                 "= r.rid "
                 "WHERE r.experiment_id IN (?, ?) AND r.lifecycle_stage = ? AND (%s) "
                 "ORDER BY r.start_time DESC, r.rid LIMIT ? OFFSET ?",
                 c->sql.data) < 0)
        return 0;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s_db, q, -1, &st, NULL);
    int ok = rc == SQLITE_OK && sqlite3_bind_parameter_count(st) == (int)c->binds.n + 5;
    if (rc != SQLITE_OK) fprintf(stderr, "     prepare: %s\n", sqlite3_errmsg(s_db));
    sqlite3_finalize(st);
    free(q);
    return ok;
}

/* Run "SELECT run_uuid ... WHERE <filter> ORDER BY rid" and write the ids
 * comma-separated into got; returns -1 when it does not compile or run. */
static int select_ids(const char *filter, char *got, size_t cap)
{
    compiled_t c;
    compile(&c, filter);
    got[0] = '\0';
    int rc = -1;
    char *q = NULL;
    sqlite3_stmt *st = NULL;
    if (c.rc != 0) {
        fprintf(stderr, "     compile: %s\n", c.err.msg);
        goto out;
    }
    if (asprintf(&q, "SELECT r.run_uuid FROM runs r WHERE %s ORDER BY r.rid",
                 c.sql.data) < 0)
        goto out;
    if (sqlite3_prepare_v2(s_db, q, -1, &st, NULL) != SQLITE_OK ||
        sql_binds_apply(&c.binds, st, 1) < 0)
        goto out;
    size_t o = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        o += (size_t)snprintf(got + o, cap - o, "%s%s", o ? "," : "",
                              (const char *)sqlite3_column_text(st, 0));
    rc = rc == SQLITE_DONE ? 0 : -1;
out:
    sqlite3_finalize(st);
    free(q);
    compiled_free(&c);
    return rc;
}

/* The ids in the order the order_by clauses give (ties by rid). */
static int order_ids(const char *const *clauses, int n, char *got, size_t cap)
{
    sqlbuf_t joins, terms;
    sql_binds_t binds;
    sqlbuf_init(&joins);
    sqlbuf_init(&terms);
    sql_binds_init(&binds);
    sqlbuf_add(&joins, "");
    got[0] = '\0';
    int rc = -1;
    char *q = NULL;
    sqlite3_stmt *st = NULL;
    for (int i = 0; i < n; i++) {
        cairn_err_t err = {0};
        if (i) sqlbuf_add(&terms, ", ");
        if (filter_compile_order(clauses[i], strlen(clauses[i]), i, &joins, &binds,
                                 &terms, &err) < 0) {
            fprintf(stderr, "     order: %s\n", err.msg);
            goto out;
        }
    }
    if (asprintf(&q, "SELECT r.run_uuid FROM runs r%s ORDER BY %s, r.rid", joins.data,
                 terms.data) < 0)
        goto out;
    if (sqlite3_prepare_v2(s_db, q, -1, &st, NULL) != SQLITE_OK ||
        sql_binds_apply(&binds, st, 1) < 0) {
        fprintf(stderr, "     prepare: %s\n     %s\n", sqlite3_errmsg(s_db), q);
        goto out;
    }
    size_t o = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        o += (size_t)snprintf(got + o, cap - o, "%s%s", o ? "," : "",
                              (const char *)sqlite3_column_text(st, 0));
    rc = rc == SQLITE_DONE ? 0 : -1;
out:
    sqlite3_finalize(st);
    free(q);
    sqlbuf_free(&joins);
    sqlbuf_free(&terms);
    sql_binds_free(&binds);
    return rc;
}

/* ---- the database --------------------------------------------------------------- */

static const char s_data[] =
    "INSERT INTO experiments (experiment_id, name, artifact_location, "
    "lifecycle_stage, creation_time, last_update_time) VALUES (1, 'e', '/a', "
    "'active', 0, 0);"
    "INSERT INTO runs (rid, run_uuid, experiment_id, name, status, start_time, "
    "end_time,"
    "  lifecycle_stage, artifact_uri, user_id) VALUES"
    "  (1, 'r1', 1, 'alpha', 'FINISHED', 1000, 2000, 'active', 'file:///a/r1', 'ann'),"
    "  (2, 'r2', 1, 'beta', 'FAILED', 2000, 2500, 'active', 'file:///b/r2', 'bob'),"
    "  (3, 'r3', 1, 'gamma', 'RUNNING', 3000, NULL, 'active', 'file:///b/r3', 'ann'),"
    "  (4, 'r4', 1, 'delta', 'FINISHED', 4000, 5000, 'deleted', 'file:///b/r4', "
    "'carl'),"
    "  (5, 'r5', 1, 'Alpha2', 'KILLED', 5000, 5500, 'active', 'file:///b/r5', 'dan'),"
    "  (6, 'r6', 1, 'zeta', 'FINISHED', 6000, 7000, 'active', 'file:///b/r6', 'bob');"
    "INSERT INTO metric_keys (key_id, key) VALUES (1, 'acc'), (2, 'loss'), "
    "(3, 'val loss');"
    /* r4's acc is NaN, which SQLite stores as NULL; r5 logged no metrics.
     * r3's, r4's loss and r6's rows are not folded into the value index yet
     * (fold.h): each query must read both halves. */
    "INSERT INTO latest_metrics VALUES (1, 1, 0.9, 0, 0), (1, 2, 0.1, 0, 0),"
    "  (1, 3, 0.3, 0, 0), (2, 1, 0.7, 0, 0), (2, 2, 0.5, 0, 0), (3, 1, 0.95, 0, 0),"
    "  (4, 1, NULL, 0, 0), (4, 2, 0.2, 0, 0), (6, 1, 0.8, 0, 0), (6, 3, 0.25, 0, 0);"
    "INSERT INTO metric_values SELECT key_id, value, rid FROM latest_metrics WHERE "
    "value IS NOT NULL AND rid IN (1, 2, 4) AND NOT (rid = 4 AND key_id = 2);"
    "INSERT INTO mem.recent SELECT * FROM latest_metrics WHERE rid IN (3, 6) OR "
    "(rid = 4 AND key_id = 2);"
    "INSERT INTO params VALUES (1, 'lr', '0.1'), (1, 'model', 'CNN'),"
    "  (1, 'optimizer', 'adam'), (2, 'lr', '0.01'), (2, 'model', 'cnn'),"
    "  (3, 'lr', '0.1'), (3, 'model', 'RNN'), (4, 'model', 'Transformer'),"
    "  (6, 'lr', '1e-3'), (6, 'model', 'cnn-v2');"
    "INSERT INTO tags VALUES (1, 'mlflow.source.name', 'train.py'), (1, 'team', "
    "'Vision'),"
    "  (2, 'mlflow.source.name', 'eval.py'), (2, 'team', 'vision'), (3, 'team', 'nlp'),"
    "  (5, 'team', 'Vision'), (5, 'note', 'it''s'), (6, 'my tag', 'x'),"
    "  (6, 'path', 'a\\b');";

static int open_db(void)
{
    char *msg = NULL;
    int rc = sqlite3_open(":memory:", &s_db);
    for (int i = 0; rc == SQLITE_OK && i < STORAGE_SCHEMA_VERSION; i++)
        rc = sqlite3_exec(s_db, storage_migrations[i], NULL, NULL, &msg);
    cairn_err_t err = {0};
    if (rc == SQLITE_OK && fold_attach(s_db, &err) != 0) {
        fprintf(stderr, "database setup: %s\n", err.msg);
        return -1;
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s_db, "PRAGMA case_sensitive_like = ON;", NULL, NULL, &msg);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s_db, s_data, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "database setup: %s\n", msg ? msg : sqlite3_errmsg(s_db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* ---- accepted ------------------------------------------------------------------- */

typedef struct ok_case {
    int line;
    const char *text;
    size_t nbinds;
    const char *sql; /* a substring of the SQL */
} ok_case_t;

#define METRIC_SQL(op)                                                            \
    "r.rid IN (SELECT rid FROM metric_values WHERE key_id = (SELECT key_id FROM " \
    "metric_keys WHERE key = ?) AND value " op                                    \
    " ? UNION ALL SELECT rid FROM "                                               \
    "mem.recent WHERE key_id = (SELECT key_id FROM metric_keys WHERE key = ?) "   \
    "AND value " op " ?)"

static const ok_case_t s_ok[] = {
    {__LINE__, "", 0, "1"},
    {__LINE__, " \t\n ", 0, "1"},
    {__LINE__, "metrics.acc > 0.9", 4, METRIC_SQL(">")},
    {__LINE__, "metric.acc <> 1", 4, METRIC_SQL("!=")},
    {__LINE__, "METRICS.acc=1", 4, METRIC_SQL("=")},
    {__LINE__, "metrics.acc>=-0.5e-3", 4, METRIC_SQL(">=")},
    {__LINE__, "metrics.acc < +.5", 4, METRIC_SQL("<")},
    {__LINE__, "metrics.acc <= 5.", 4, METRIC_SQL("<=")},
    {__LINE__, "metrics.acc != 1E10", 4, METRIC_SQL("!=")},
    {__LINE__, "metrics.\"val/loss\" < 1", 4, "metric_keys WHERE key = ?) AND value"},
    {__LINE__, "metrics.`val loss` < 1", 4, "metric_keys WHERE key = ?) AND value"},
    {__LINE__, "metrics.`a``b` < 1", 4, "metric_keys WHERE key = ?) AND value"},
    {__LINE__, "metrics.2hello > 1", 4, "metric_keys WHERE key = ?) AND value"},
    {__LINE__, "metrics.\xc3\xa9t\xc3\xa9 > 1", 4,
     "metric_keys WHERE key = ?) AND value"},
    {__LINE__, "params.lr = '0.1'", 2,
     "r.rid IN (SELECT rid FROM params WHERE key = ? AND value = ?)"},
    {__LINE__, "param.lr != \"0.1\"", 2, "key = ? AND value != ?)"},
    {__LINE__, "parameter.lr LIKE '0.%'", 2, "value LIKE ?"},
    {__LINE__, "params.model ILIKE '%cnn%'", 2, "lower(value) LIKE lower(?)"},
    {__LINE__, "params.model not ilike 'x'", 2, "lower(value) NOT LIKE lower(?)"},
    {__LINE__, "params.model NOT LIKE 'x'", 2, "value NOT LIKE ?"},
    {__LINE__, "params.model IN ('a', \"b\",'c')", 4, "value IN (?, ?, ?)"},
    {__LINE__, "params.x = ''", 2, "value = ?"},
    {__LINE__, "params.x = 'a''b' AND params.y = \"a\\\"b\"", 4, " AND "},
    {__LINE__, "tags.model NOT IN ('a')", 2,
     "r.rid IN (SELECT rid FROM tags WHERE key = ? AND value NOT IN (?))"},
    {__LINE__, "tags.mlflow.source.name = 'x'", 2, "FROM tags"},
    {__LINE__, "tag.`my key` = 'x'", 2, "FROM tags"},
    {__LINE__, "tags.and = 'x'", 2, "FROM tags"},
    {__LINE__, "attributes.run_id = 'abc'", 1, "r.run_uuid = ?"},
    {__LINE__, "attribute.run_name = 'x'", 1, "r.name = ?"},
    {__LINE__, "attributes.`run name` = 'x'", 1, "r.name = ?"},
    {__LINE__, "attr.status != 'FAILED'", 1, "r.status != ?"},
    {__LINE__, "run.user_id LIKE 'a%'", 1, "r.user_id LIKE ?"},
    {__LINE__, "artifact_uri ILIKE 'S3://%'", 1, "lower(r.artifact_uri) LIKE lower(?)"},
    {__LINE__, "lifecycle_stage IN ('active')", 1, "r.lifecycle_stage IN (?)"},
    {__LINE__, "status NOT IN ('A', 'B')", 2, "r.status NOT IN (?, ?)"},
    {__LINE__, "start_time >= 1700000000000", 1, "r.start_time >= ?"},
    {__LINE__, "end_time < 1.5e12", 1, "r.end_time < ?"},
    {__LINE__, "created > 0", 1, "r.start_time > ?"},
    {__LINE__, "Created > 0 AND STATUS = 'x'", 2, "r.start_time > ?"},
    {__LINE__, "(metrics.a > 1)", 4, "r.rid IN"},
    {__LINE__, "((((status = 'x'))))", 1, "r.status = ?"},
    {__LINE__, "\t\n metrics.a>1\n", 4, "AND value > ?"},
    {__LINE__, "metrics.a > 1 and params.b = 'c' or tags.d = 'e'", 8, " OR "},
    {__LINE__, "status = 'a' OR (status = 'b' AND (status = 'c' OR status = 'd'))", 4,
     " AND "},
    {__LINE__, "params.x='a'and params.y='b'", 4, " AND "},
};

TEST(accepted)
{
    for (size_t i = 0; i < sizeof s_ok / sizeof s_ok[0]; i++) {
        const ok_case_t *k = &s_ok[i];
        compiled_t c;
        compile(&c, k->text);
        if (!CHECK(c.rc == 0)) {
            fprintf(stderr, "     line %d: %s: %s\n", k->line, k->text, c.err.msg);
        } else {
            CHECK_UEQ(c.binds.n, k->nbinds);
            CHECK_HAS(c.sql.data, k->sql);
            if (!CHECK(prepares_in_search(&c)))
                fprintf(stderr, "     line %d: %s\n", k->line, c.sql.data);
        }
        compiled_free(&c);
    }
}

/* The exact SQL and bound values of a few. */
TEST(exact_sql)
{
    compiled_t c;
    /* A group is written before plain clauses (see deepest_first in filter.c). */
    compile(&c, "metrics.acc > 0.9 AND (params.m ILIKE 'C%' OR status IN ('A', 'B'))");
    CHECK_STR(c.sql.data,
              "((r.rid IN (SELECT rid FROM params WHERE key = ? AND lower(value) "
              "LIKE lower(?)) OR r.status IN (?, ?)) AND " METRIC_SQL(">") ")");
    if (CHECK(c.binds.n == 8)) {
        CHECK_STR(c.binds.v[0].text, "m");
        CHECK_STR(c.binds.v[1].text, "C%");
        CHECK_STR(c.binds.v[2].text, "A");
        CHECK_STR(c.binds.v[3].text, "B");
        /* The metric's key and value, once for each half of the index. */
        for (int arm = 0; arm < 2; arm++) {
            CHECK_STR(c.binds.v[4 + 2 * arm].text, "acc");
            CHECK(c.binds.v[5 + 2 * arm].kind == BIND_REAL &&
                  c.binds.v[5 + 2 * arm].d == 0.9);
        }
    }
    compiled_free(&c);

    /* An AND group inside OR needs no parentheses; plain clauses keep
     * their order. */
    compile(&c, "status = 'a' OR status = 'b' AND run_id = 'c'");
    CHECK_STR(c.sql.data, "(r.status = ? AND r.run_uuid = ? OR r.status = ?)");
    compiled_free(&c);
    compile(&c, "(status = 'a' OR status = 'b') AND run_id = 'c'");
    CHECK_STR(c.sql.data, "((r.status = ? OR r.status = ?) AND r.run_uuid = ?)");
    compiled_free(&c);

    /* Escapes undone; other backslashes kept; numbers typed. */
    compile(
        &c,
        "params.a = 'it''s' AND params.b = 'it\\'s' AND params.c = \"say \"\"hi\"\"\""
        " AND params.d LIKE 'a\\_b\\\\c' AND start_time > 17 AND end_time < 1.5"
        " AND metrics.`x``y` = 2 AND tags.\"q\"\"k\" = 'v'");
    if (CHECK(c.rc == 0 && c.binds.n == 16)) {
        CHECK_STR(c.binds.v[1].text, "it's");
        CHECK_STR(c.binds.v[3].text, "it's");
        CHECK_STR(c.binds.v[5].text, "say \"hi\"");
        CHECK_STR(c.binds.v[7].text, "a\\_b\\c");
        CHECK(c.binds.v[8].kind == BIND_INT && c.binds.v[8].i == 17);
        CHECK(c.binds.v[9].kind == BIND_REAL && c.binds.v[9].d == 1.5);
        CHECK_STR(c.binds.v[10].text, "x`y");
        CHECK(c.binds.v[11].kind == BIND_REAL && c.binds.v[11].d == 2.0);
        CHECK_STR(c.binds.v[12].text, "x`y");
        CHECK(c.binds.v[13].kind == BIND_REAL && c.binds.v[13].d == 2.0);
        CHECK_STR(c.binds.v[14].text, "q\"k");
    }
    compiled_free(&c);

    /* An integer too large for int64 binds as REAL. */
    compile(&c, "start_time > 99999999999999999999");
    CHECK(c.rc == 0 && c.binds.n == 1 && c.binds.v[0].kind == BIND_REAL);
    compiled_free(&c);
}

/* ---- rejected ------------------------------------------------------------------- */

typedef struct bad_case {
    int line;
    const char *text;
    const char *pos; /* "at position N:" */
    const char *msg; /* a substring of the sentence */
} bad_case_t;

static const bad_case_t s_bad[] = {
    {__LINE__, "metrics.acc foo 1", "at position 13:",
     "expected a comparison operator after 'metrics.acc', found 'foo'"},
    {__LINE__, "metrics.acc > 'high'",
     "at position 15:", "expected a number for metrics.acc, found 'high'"},
    {__LINE__, "params.lr = 0.1",
     "at position 13:", "expected a quoted string for params.lr, found '0.1'"},
    {__LINE__, "metrics.acc > 1 AND params.model = CNN",
     "at position 36:", "expected a quoted string for params.model, found 'CNN'"},
    {__LINE__, "params.`a` = `b`", "at position 14:", "expected a quoted string"},
    {__LINE__, "tags.x > 'a'",
     "at position 8:", "'>' is not a valid comparator for tags"},
    {__LINE__, "metrics.acc LIKE '1'",
     "at position 13:", "'LIKE' is not a valid comparator for metrics"},
    {__LINE__, "metrics.a IN (1, 2)",
     "at position 11:", "'IN' is not a valid comparator"},
    {__LINE__, "start_time LIKE '1'",
     "at position 12:", "not a valid comparator for attribute 'start_time'"},
    {__LINE__, "start_time NOT IN (1)", "at position 12:", "'NOT IN' is not a valid"},
    {__LINE__, "status > 'A'", "at position 8:", "for attribute 'status'; use one of"},
    {__LINE__, "foo = 'x'", "at position 1:",
     "unknown attribute 'foo'; valid attributes are run_id, run_name, status"},
    {__LINE__, "attributes.foo = 'x'", "at position 12:", "unknown attribute 'foo'"},
    {__LINE__, "datasets.name = 'x'",
     "at position 1:", "unknown entity type 'datasets'"},
    {__LINE__, "metrics = 1",
     "at position 1:", "expected '.' and a key name after 'metrics'"},
    {__LINE__, "metrics. = 1",
     "at position 10:", "expected a key name after 'metrics.', found '='"},
    {__LINE__, "metrics.\"\" > 1", "at position 9:", "the key name is empty"},
    {__LINE__, "metrics.acc > 1 AND", "at position 20:",
     "expected an identifier (metrics.<key>, params.<key>, tags.<key> or an attribute "
     "such as status), found the end of the filter"},
    {__LINE__, "metrics.acc > 1 OR OR metrics.b > 1", "at position 20:", "found 'OR'"},
    {__LINE__, "AND metrics.a > 1", "at position 1:", "found 'AND'"},
    {__LINE__, "NOT status = 'x'", "at position 1:", "found 'NOT'"},
    {__LINE__, "(metrics.acc > 1",
     "at position 17:", "expected AND, OR or ')', found the end of the filter"},
    {__LINE__, "metrics.acc > 1)",
     "at position 16:", "expected AND, OR or the end of the filter, found ')'"},
    {__LINE__, "metrics.acc > 1 metrics.b > 2",
     "at position 17:", "expected AND, OR or the end of the filter, found 'metrics.b'"},
    {__LINE__, "()", "at position 2:", "found ')'"},
    {__LINE__, "params.x = 'abc",
     "at position 12:", "unterminated quoted text (no closing ')"},
    {__LINE__, "params.x = \"abc", "at position 12:", "unterminated"},
    {__LINE__, "metrics.`abc > 1", "at position 9:", "unterminated"},
    {__LINE__, "params.x = 'a\\'", "at position 12:", "unterminated"},
    {__LINE__, "params.x = 'a' 'b'", "at position 16:", "found 'b'"},
    {__LINE__, "metrics.a > 1.2.3", "at position 13:", "malformed number '1.2.3'"},
    {__LINE__, "metrics.a > 1abc", "at position 13:", "malformed number '1abc'"},
    {__LINE__, "metrics.a > 1e", "at position 13:", "malformed number"},
    {__LINE__, "metrics.a > --1", "at position 13:", "unexpected character '-'"},
    {__LINE__, "metrics.a > .", "at position 13:", "unexpected character '.'"},
    {__LINE__, "params.x = 'a' && params.y = 'b'",
     "at position 16:", "unexpected character '&'"},
    {__LINE__, "params.x IN 'a'",
     "at position 13:", "expected '(' after IN, found 'a'"},
    {__LINE__, "params.x IN ()", "at position 14:", "expected a quoted string"},
    {__LINE__, "params.x IN ('a',)", "at position 18:", "found ')'"},
    {__LINE__, "params.x IN ('a' 'b')",
     "at position 18:", "expected ',' or ')' in the IN list"},
    {__LINE__, "params.x IN ('a'", "at position 17:", "found the end of the filter"},
    {__LINE__, "params.x NOT = 'a'",
     "at position 14:", "expected LIKE, ILIKE or IN after NOT"},
    {__LINE__, "params.x == 'a'",
     "at position 10:", "expected a comparison operator after 'params.x', found '=='"},
    {__LINE__, "params.x ! 'a'", "at position 10:", "found '!'"},
    {__LINE__, "params.x = 'a' AND status", "at position 26:",
     "expected a comparison operator after 'status', found the end of the filter"},
    {__LINE__, "\"status\" = 'x'", "at position 1:", "expected an identifier"},
    {__LINE__, "metrics.a > 1 AND 5 > 3", "at position 19:", "found '5'"},
    {__LINE__, "params.x = 'a';", "at position 15:", "unexpected character ';'"},
    /* Positions count characters: "é" is one. */
    {__LINE__, "tags.\xc3\xa9 = 'x' AND foo = 'y'",
     "at position 18:", "unknown attribute 'foo'"},
    /* Invalid UTF-8 is shown as '?'. */
    {__LINE__, "metrics.a \xff 1", "at position 11:", "found '?'"},
};

static void check_rejected(const char *text, size_t len, const char *pos,
                           const char *msg, int line)
{
    compiled_t c;
    compile_n(&c, text, len);
    if (!CHECK(c.rc == -1)) {
        fprintf(stderr, "     line %d: accepted: %s\n", line, c.sql.data);
    } else {
        CHECK_EQ(c.err.st, 400);
        CHECK_STR(c.err.code, "bad_request");
        if (!CHECK(strncmp(c.err.msg, "filter: ", 8) == 0 && strstr(c.err.msg, pos) &&
                   strstr(c.err.msg, msg)))
            fprintf(stderr, "     line %d: \"%s\"\n     want \"%s\" ... \"%s\"\n", line,
                    c.err.msg, pos, msg);
    }
    CHECK_UEQ(c.sql.len, 0);
    CHECK_UEQ(c.binds.n, 0);
    compiled_free(&c);
}

TEST(rejected)
{
    for (size_t i = 0; i < sizeof s_bad / sizeof s_bad[0]; i++)
        check_rejected(s_bad[i].text, strlen(s_bad[i].text), s_bad[i].pos, s_bad[i].msg,
                       s_bad[i].line);
    /* NUL bytes, anywhere. */
    check_rejected("params.x = 'a\0b'", 16, "at position 14:", "unexpected NUL byte",
                   __LINE__);
    check_rejected("params.x = 'a'\0", 15, "at position 15:", "unexpected NUL byte",
                   __LINE__);
}

/* ---- semantics ------------------------------------------------------------------ */

typedef struct sem_case {
    int line;
    const char *filter;
    const char *ids;
} sem_case_t;

static const sem_case_t s_sem[] = {
    {__LINE__, "", "r1,r2,r3,r4,r5,r6"},
    {__LINE__, "metrics.acc > 0.8", "r1,r3"},
    {__LINE__, "metrics.acc >= 0.8", "r1,r3,r6"},
    /* != never matches a run without the key (r5) or with a NaN (r4). */
    {__LINE__, "metrics.acc != 0.9", "r2,r3,r6"},
    {__LINE__, "metrics.acc > -1", "r1,r2,r3,r6"},
    {__LINE__, "metrics.acc < 1e0", "r1,r2,r3,r6"},
    {__LINE__, "metrics.loss < 0.3 AND metrics.acc > 0.5", "r1"},
    {__LINE__, "metrics.`val loss` <= 0.3", "r1,r6"},
    {__LINE__, "metrics.\"val loss\" < 0.3", "r6"},
    {__LINE__, "params.lr = '0.1'", "r1,r3"},
    {__LINE__, "params.lr != '0.1'", "r2,r6"},
    {__LINE__, "params.lr = \"1e-3\"", "r6"},
    /* LIKE is case-sensitive, ILIKE is not. */
    {__LINE__, "params.model LIKE 'cnn%'", "r2,r6"},
    {__LINE__, "params.model ILIKE 'cnn%'", "r1,r2,r6"},
    {__LINE__, "params.model NOT LIKE '%N%'", "r2,r4,r6"},
    {__LINE__, "params.model NOT ILIKE 'cnn%'", "r3,r4"},
    {__LINE__, "params.model IN ('CNN', 'RNN')", "r1,r3"},
    {__LINE__, "params.model NOT IN ('CNN', 'RNN')", "r2,r4,r6"},
    {__LINE__, "params.model = 'cnn'", "r2"},
    {__LINE__, "tags.mlflow.source.name = 'train.py'", "r1"},
    {__LINE__, "tags.mlflow.source.name LIKE '%.py'", "r1,r2"},
    {__LINE__, "tags.team = 'Vision' OR tags.team = 'nlp'", "r1,r3,r5"},
    {__LINE__, "tags.team ILIKE 'vision'", "r1,r2,r5"},
    {__LINE__, "tags.note = 'it''s'", "r5"},
    {__LINE__, "tags.note = 'it\\'s'", "r5"},
    {__LINE__, "tags.note = \"it's\"", "r5"},
    {__LINE__, "tags.path = 'a\\\\b'", "r6"},
    {__LINE__, "tags.`my tag` = 'x'", "r6"},
    {__LINE__, "tags.\"my tag\" != 'y'", "r6"},
    {__LINE__, "status = 'FINISHED'", "r1,r4,r6"},
    {__LINE__, "status = 'finished'", ""},
    {__LINE__, "attributes.status IN ('FAILED', 'KILLED')", "r2,r5"},
    {__LINE__, "attributes.status NOT IN ('FINISHED')", "r2,r3,r5"},
    {__LINE__, "run_name LIKE 'alpha%'", "r1"},
    {__LINE__, "run_name ILIKE 'alpha%'", "r1,r5"},
    {__LINE__, "run.status = 'KILLED'", "r5"},
    {__LINE__, "attr.user_id = 'bob'", "r2,r6"},
    {__LINE__, "user_id = 'ann' and lifecycle_stage = 'active'", "r1,r3"},
    {__LINE__, "lifecycle_stage = 'deleted'", "r4"},
    {__LINE__, "run_id IN ('r2', 'r6')", "r2,r6"},
    {__LINE__, "artifact_uri LIKE 'file:///a/%'", "r1"},
    {__LINE__, "attributes.start_time >= 3000 AND attributes.end_time < 6000", "r4,r5"},
    {__LINE__, "end_time != 2000", "r2,r4,r5,r6"},
    {__LINE__, "created < 2500", "r1,r2"},
    {__LINE__, "start_time = 4000.0", "r4"},
    {__LINE__, "((metrics.acc > 0.5))", "r1,r2,r3,r6"},
    {__LINE__, "(params.lr = '0.1' OR params.model = 'cnn') AND status != 'RUNNING'",
     "r1,r2"},
    /* AND binds tighter than OR. */
    {__LINE__, "params.lr = '0.1' OR params.model = 'cnn' AND status = 'RUNNING'",
     "r1,r3"},
    {__LINE__, "tags.team LIKE 'V%' OR (metrics.loss > 0.4 AND params.lr = '0.01')",
     "r1,r2,r5"},
    {__LINE__,
     "(status = 'FINISHED' OR status = 'KILLED') AND (user_id = 'bob' OR "
     "user_id = 'dan')",
     "r5,r6"},
    {__LINE__,
     "status = 'FAILED' or (status = 'FINISHED' and (metrics.acc > 0.85 or "
     "(params.model = 'Transformer' and metrics.loss < 0.25)))",
     "r1,r2,r4"},
};

TEST(semantics)
{
    for (size_t i = 0; i < sizeof s_sem / sizeof s_sem[0]; i++) {
        char got[256];
        int rc = select_ids(s_sem[i].filter, got, sizeof got);
        if (!CHECK(rc == 0 && strcmp(got, s_sem[i].ids) == 0))
            fprintf(stderr, "     line %d: %s\n     got \"%s\", want \"%s\"\n",
                    s_sem[i].line, s_sem[i].filter, got, s_sem[i].ids);
    }
}

/* The same filters compiled with rid sets (filter_compile_sets, as search
 * does): each set's query fills its set (ridsets.h), cairn_rid_in tests
 * it; the runs must be the same. With required sets, the same again driven
 * by their intersection (search.c's list plan): a set marked required that
 * is not would lose runs here. */
static ridsets_t *s_rs;

static int fill_sets(const filter_sets_t *sets, size_t *required, size_t *nreq)
{
    sqlite3_stmt *st = NULL;
    int64_t max_rid = -1;
    if (sqlite3_prepare_v2(s_db, "SELECT max(rid) FROM runs", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        max_rid = -2;
    else
        max_rid = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    cairn_err_t err = {0};
    *nreq = 0;
    for (size_t k = 0; k < sets->n; k++)
        if (sets->v[k].required) required[(*nreq)++] = k;
    if (max_rid < -1 || ridsets_reset(s_rs, sets->n + 1, max_rid, &err) != 0) return -1;
    for (size_t k = 0; k < sets->n; k++) {
        char *q = NULL;
        int rc = asprintf(&q, "SELECT cairn_rid_fill(%zu, rid) FROM (%s)", k,
                          sets->v[k].sql.data) < 0
                     ? -1
                     : 0;
        if (rc == 0)
            rc = sqlite3_prepare_v2(s_db, q, -1, &st, NULL) == SQLITE_OK &&
                         sql_binds_apply(&sets->v[k].binds, st, 1) >= 0 &&
                         sqlite3_step(st) == SQLITE_ROW
                     ? 0
                     : -1;
        sqlite3_finalize(st);
        free(q);
        if (rc != 0) return -1;
    }
    ridsets_and(s_rs, sets->n, required, *nreq);
    return 0;
}

/* list: drive the query by the required sets' intersection, when there
 * are any (*listed says whether there were). */
static int select_ids_sets(const char *filter, bool list, char *got, size_t cap,
                           size_t *nsets, bool *listed)
{
    sqlbuf_t sql;
    sql_binds_t binds;
    filter_sets_t sets;
    cairn_err_t err = {0};
    sqlbuf_init(&sql);
    sql_binds_init(&binds);
    filter_sets_init(&sets);
    got[0] = '\0';
    int rc = filter_compile_sets(filter, strlen(filter), &sql, &binds, &sets, &err);
    char *q = NULL;
    sqlite3_stmt *st = NULL;
    size_t required[64], nreq = 0;
    *nsets = sets.n;
    if (rc == 0 && (sets.n > 64 || fill_sets(&sets, required, &nreq) != 0)) rc = -1;
    *listed = list && nreq > 0;
    if (rc == 0 && *listed &&
        asprintf(
            &q,
            "SELECT r.run_uuid FROM cairn_rids(%zu) c CROSS JOIN runs r ON r.rid = "
            "c.rid WHERE %s ORDER BY r.rid",
            sets.n, sql.data) < 0)
        rc = -1;
    if (rc == 0 && !*listed &&
        asprintf(&q, "SELECT r.run_uuid FROM runs r WHERE %s ORDER BY r.rid",
                 sql.data) < 0)
        rc = -1;
    if (rc == 0 && (sqlite3_prepare_v2(s_db, q, -1, &st, NULL) != SQLITE_OK ||
                    sql_binds_apply(&binds, st, 1) < 0))
        rc = -1;
    size_t o = 0;
    while (rc == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        o += (size_t)snprintf(got + o, cap - o, "%s%s", o ? "," : "",
                              (const char *)sqlite3_column_text(st, 0));
        rc = 0;
    }
    rc = rc == SQLITE_DONE || rc == 0 ? 0 : -1;
    sqlite3_finalize(st);
    free(q);
    sqlbuf_free(&sql);
    sql_binds_free(&binds);
    filter_sets_free(&sets);
    return rc;
}

TEST(semantics_with_rid_sets)
{
    cairn_err_t err = {0};
    CHECK((s_rs = ridsets_new()) != NULL);
    CHECK(ridsets_register(s_rs, s_db, &err) == 0);
    size_t with_sets = 0, listed_n = 0;
    for (int list = 0; list < 2; list++)
        for (size_t i = 0; i < sizeof s_sem / sizeof s_sem[0]; i++) {
            char got[256];
            size_t n = 0;
            bool listed = false;
            int rc =
                select_ids_sets(s_sem[i].filter, list, got, sizeof got, &n, &listed);
            with_sets += !list && n > 0;
            listed_n += listed;
            if (!CHECK(rc == 0 && strcmp(got, s_sem[i].ids) == 0))
                fprintf(stderr, "     line %d (%s): %s\n     got \"%s\", want \"%s\"\n",
                        s_sem[i].line, list ? "list" : "walk", s_sem[i].filter, got,
                        s_sem[i].ids);
        }
    CHECK(with_sets > 10); /* most of the table has metric, param or tag clauses */
    CHECK(listed_n > 5);   /* and many require one */
    CHECK(listed_n < with_sets); /* but not all: OR */
}

/* cairn_rids(K) lists set K's rids in order, across words; an unknown set
 * is empty; the table needs K. */
TEST(rids_table)
{
    cairn_err_t err = {0};
    ridsets_t *rs = ridsets_new();
    sqlite3 *h = NULL;
    CHECK(sqlite3_open(":memory:", &h) == SQLITE_OK);
    CHECK(ridsets_register(rs, h, &err) == 0);
    CHECK(ridsets_reset(rs, 3, 191, &err) == 0); /* 3 words: 0 to 191 */
    CHECK(
        sqlite3_exec(h,
                     "SELECT cairn_rid_fill(0, value) FROM (SELECT 0 AS value UNION "
                     "ALL SELECT 63 UNION ALL SELECT 64 UNION ALL SELECT 130 UNION ALL "
                     "SELECT 191 UNION ALL SELECT 192 UNION ALL SELECT -1);"
                     "SELECT cairn_rid_fill(1, value) FROM (SELECT 63 AS value UNION "
                     "ALL SELECT 130 UNION ALL SELECT 190)",
                     NULL, NULL, NULL) == SQLITE_OK);
    size_t both[2] = {0, 1};
    CHECK(ridsets_and(rs, 2, both, 2) == 2);
    static const struct {
        const char *sql, *want;
    } cases[] = {
        {"SELECT group_concat(rid) FROM cairn_rids(0)", "0,63,64,130,191"},
        {"SELECT group_concat(rid) FROM cairn_rids(2)", "63,130"},
        {"SELECT count(*) FROM cairn_rids(7)", "0"},
        {"SELECT count(*) FROM cairn_rids(-1)", "0"},
        {"SELECT cairn_rid_in(0, 191) || cairn_rid_in(0, 190) || cairn_rid_in(9, 1)",
         "100"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sqlite3_stmt *st = NULL;
        CHECK(sqlite3_prepare_v2(h, cases[i].sql, -1, &st, NULL) == SQLITE_OK);
        CHECK(sqlite3_step(st) == SQLITE_ROW);
        const char *got = (const char *)sqlite3_column_text(st, 0);
        if (!CHECK(got && strcmp(got, cases[i].want) == 0))
            fprintf(stderr, "     %s: got %s, want %s\n", cases[i].sql,
                    got ? got : "NULL", cases[i].want);
        sqlite3_finalize(st);
    }
    sqlite3_stmt *st = NULL; /* no K: refused, not a scan of nothing */
    CHECK(sqlite3_prepare_v2(h, "SELECT rid FROM cairn_rids", -1, &st, NULL) !=
          SQLITE_OK);
    sqlite3_finalize(st);
    sqlite3_close(h);
    ridsets_free(&rs);
}

/* ---- order_by ------------------------------------------------------------------- */

typedef struct order_case {
    int line;
    const char *clauses[3];
    const char *ids;
} order_case_t;

static const order_case_t s_order[] = {
    {__LINE__, {"metrics.acc DESC"}, "r3,r1,r6,r2,r4,r5"},
    {__LINE__, {"metrics.acc"}, "r2,r6,r1,r3,r4,r5"},
    {__LINE__, {"metrics.acc asc"}, "r2,r6,r1,r3,r4,r5"},
    {__LINE__, {"metrics.`val loss` ASC"}, "r6,r1,r2,r3,r4,r5"},
    {__LINE__, {"params.model ASC"}, "r1,r3,r4,r2,r6,r5"},
    {__LINE__, {"param.model DESC"}, "r6,r2,r4,r3,r1,r5"},
    {__LINE__, {"attributes.end_time DESC"}, "r6,r5,r4,r2,r1,r3"},
    {__LINE__, {"end_time"}, "r1,r2,r4,r5,r6,r3"},
    {__LINE__, {"start_time DESC"}, "r6,r5,r4,r3,r2,r1"},
    {__LINE__, {"created"}, "r1,r2,r3,r4,r5,r6"},
    {__LINE__, {"run_name"}, "r5,r1,r2,r4,r3,r6"},
    {__LINE__, {"tags.team ASC", "metrics.acc DESC"}, "r1,r5,r3,r2,r6,r4"},
    {__LINE__, {"status", "tags.team DESC", "params.lr"}, "r2,r1,r6,r4,r5,r3"},
};

TEST(order_by)
{
    for (size_t i = 0; i < sizeof s_order / sizeof s_order[0]; i++) {
        const order_case_t *k = &s_order[i];
        int n = 0;
        while (n < 3 && k->clauses[n]) n++;
        char got[256];
        int rc = order_ids(k->clauses, n, got, sizeof got);
        if (!CHECK(rc == 0 && strcmp(got, k->ids) == 0))
            fprintf(stderr, "     line %d: %s\n     got \"%s\", want \"%s\"\n", k->line,
                    k->clauses[0], got, k->ids);
    }

    /* The exact pieces. */
    sqlbuf_t joins, out;
    sql_binds_t binds;
    cairn_err_t err = {0};
    sqlbuf_init(&joins);
    sqlbuf_init(&out);
    sql_binds_init(&binds);
    CHECK(filter_compile_order("metrics.rmse DESC", 17, 2, &joins, &binds, &out,
                               &err) == 0);
    CHECK_STR(joins.data,
              " LEFT JOIN latest_metrics o2 ON o2.rid = r.rid AND o2.key_id = "
              "(SELECT key_id FROM metric_keys WHERE key = ?)");
    CHECK_STR(out.data, "o2.value IS NULL, o2.value DESC");
    CHECK(binds.n == 1 && strcmp(binds.v[0].text, "rmse") == 0);
    sqlbuf_add(&out, ", ");
    CHECK(filter_compile_order("tags.`a b`", 10, 3, &joins, &binds, &out, &err) == 0);
    CHECK_HAS(joins.data, " LEFT JOIN tags o3 ON o3.rid = r.rid AND o3.key = ?");
    CHECK_HAS(out.data, ", o3.value IS NULL, o3.value ASC");
    CHECK(binds.n == 2 && strcmp(binds.v[1].text, "a b") == 0);
    sqlbuf_add(&out, ", ");
    CHECK(filter_compile_order("status DESC", 11, 4, &joins, &binds, &out, &err) == 0);
    CHECK_HAS(out.data, ", r.status DESC");
    CHECK_UEQ(binds.n, 2);
    sqlbuf_free(&joins);
    sqlbuf_free(&out);
    sql_binds_free(&binds);
}

static const bad_case_t s_bad_order[] = {
    {__LINE__, "", "at position 1:", "expected an identifier"},
    {__LINE__, "  ", "at position 3:", "found the end of the clause"},
    {__LINE__, "metrics.acc DOWN",
     "at position 13:", "expected ASC, DESC or the end of the clause, found 'DOWN'"},
    {__LINE__, "metrics.acc DESC ASC", "at position 18:", "found 'ASC'"},
    {__LINE__, "metrics.acc > 1", "at position 13:", "found '>'"},
    {__LINE__, "foo", "at position 1:", "unknown attribute 'foo'"},
    {__LINE__, "params.", "at position 8:", "expected a key name after 'params.'"},
    {__LINE__, "tags.`x", "at position 6:", "unterminated"},
    {__LINE__, "metrics.a, metrics.b", "at position 10:", "found ','"},
};

TEST(order_by_rejected)
{
    for (size_t i = 0; i < sizeof s_bad_order / sizeof s_bad_order[0]; i++) {
        const bad_case_t *k = &s_bad_order[i];
        sqlbuf_t joins, out;
        sql_binds_t binds;
        cairn_err_t err = {0};
        sqlbuf_init(&joins);
        sqlbuf_init(&out);
        sql_binds_init(&binds);
        sqlbuf_add(&joins, "J");
        sqlbuf_add(&out, "O");
        int rc = filter_compile_order(k->text, strlen(k->text), 0, &joins, &binds, &out,
                                      &err);
        if (CHECK(rc == -1)) {
            CHECK_EQ(err.st, 400);
            if (!CHECK(strncmp(err.msg, "order_by: ", 10) == 0 &&
                       strstr(err.msg, k->pos) && strstr(err.msg, k->msg)))
                fprintf(stderr, "     line %d: \"%s\"\n     want \"%s\" ... \"%s\"\n",
                        k->line, err.msg, k->pos, k->msg);
        }
        CHECK_STR(joins.data, "J");
        CHECK_STR(out.data, "O");
        CHECK_UEQ(binds.n, 0);
        sqlbuf_free(&joins);
        sqlbuf_free(&out);
        sql_binds_free(&binds);
    }
}

/* ---- limits ------------------------------------------------------------------- */

/* n clauses joined by op: "status = 'x' OR status = 'x' ..." */
static char *repeat_clause(int n, const char *clause, const char *op)
{
    sqlbuf_t b;
    sqlbuf_init(&b);
    for (int i = 0; i < n; i++) {
        if (i) sqlbuf_add(&b, op);
        sqlbuf_add(&b, clause);
    }
    return b.data;
}

/* depth levels of "c OR (c AND (c OR (...)))", alternating. */
static char *alternating(int depth, const char *c)
{
    sqlbuf_t b;
    sqlbuf_init(&b);
    for (int i = 0; i < depth; i++) sqlbuf_addf(&b, "%s %s (", c, i % 2 ? "AND" : "OR");
    sqlbuf_add(&b, c);
    for (int i = 0; i < depth; i++) sqlbuf_add(&b, ")");
    return b.data;
}

TEST(limits)
{
    compiled_t c;
    /* Parentheses: 64 levels are fine, 65 are not. */
    char deep[200];
    for (int levels = 64; levels <= 65; levels++) {
        memset(deep, '(', (size_t)levels);
        strcpy(deep + levels, "status = 'x'");
        memset(deep + levels + 12, ')', (size_t)levels);
        deep[2 * levels + 12] = '\0';
        if (levels == 64) {
            compile(&c, deep);
            CHECK(c.rc == 0 && strcmp(c.sql.data, "r.status = ?") == 0);
            compiled_free(&c);
        } else {
            check_rejected(deep, strlen(deep),
                           "at position 65:", "parentheses nest deeper than 64 levels",
                           __LINE__);
        }
    }

    /* Alternating AND/OR nested 64 deep prepares and runs. */
    char *alt = alternating(64, "metrics.acc > 0.5");
    compile(&c, alt);
    CHECK(c.rc == 0 && prepares_in_search(&c));
    compiled_free(&c);
    char got[128];
    CHECK(select_ids(alt, got, sizeof got) == 0 && strcmp(got, "r1,r2,r3,r6") == 0);
    free(alt);
    alt = alternating(64, "params.model IN ('CNN', 'x')");
    compile(&c, alt);
    CHECK(c.rc == 0 && prepares_in_search(&c));
    compiled_free(&c);
    free(alt);

    /* Thousands of clauses in one chain stay under SQLite's depth limit. */
    char *wide = repeat_clause(3000, "metrics.acc > 0.9", " OR ");
    compile(&c, wide);
    CHECK(c.rc == 0 && c.binds.n == 12000 && prepares_in_search(&c));
    compiled_free(&c);
    CHECK(select_ids(wide, got, sizeof got) == 0 && strcmp(got, "r3") == 0);
    free(wide);
    wide = repeat_clause(2500, "status = 'FAILED'", " AND ");
    CHECK(select_ids(wide, got, sizeof got) == 0 && strcmp(got, "r2") == 0);
    free(wide);

    /* Nested groups of two deep subgroups: accepted and preparing, or
     * refused as too complex — never a failed prepare. */
    const char *seed = "status = 'a'";
    char *t = strdup(seed);
    int accepted = 0;
    for (int level = 0; level < 13 && t; level++) {
        char *n = NULL;
        if (asprintf(&n, "(%s) %s (%s)", t, level % 2 ? "AND" : "OR", t) < 0) n = NULL;
        free(t);
        t = n;
        if (!t || strlen(t) > 65536) break;
        compile(&c, t);
        if (c.rc == 0) {
            accepted++;
            CHECK(prepares_in_search(&c));
        } else {
            CHECK(strstr(c.err.msg, "too complex") != NULL);
        }
        compiled_free(&c);
    }
    free(t);
    CHECK(accepted > 5);

    /* 64 levels of eight-clause groups: the expression-height budget. */
    sqlbuf_t b;
    sqlbuf_init(&b);
    for (int i = 0; i < 64; i++)
        sqlbuf_addf(&b,
                    "status = 'a' %s status = 'b' %s status = 'c' %s status = 'd' %s "
                    "status = 'e' %s status = 'f' %s status = 'g' %s (",
                    i % 2 ? "AND" : "OR", i % 2 ? "AND" : "OR", i % 2 ? "AND" : "OR",
                    i % 2 ? "AND" : "OR", i % 2 ? "AND" : "OR", i % 2 ? "AND" : "OR",
                    i % 2 ? "AND" : "OR");
    sqlbuf_add(&b, "status = 'z'");
    for (int i = 0; i < 64; i++) sqlbuf_add(&b, ")");
    compile(&c, b.data);
    CHECK(c.rc == 0 ? prepares_in_search(&c)
                    : strstr(c.err.msg, "too complex") != NULL);
    compiled_free(&c);
    sqlbuf_free(&b);

    /* Length: 64 KiB of blanks is fine; one byte more is not. */
    char *big = malloc(65537);
    memset(big, ' ', 65537);
    compile_n(&c, big, 65536);
    CHECK(c.rc == 0 && strcmp(c.sql.data, "1") == 0);
    compiled_free(&c);
    compile_n(&c, big, 65537);
    CHECK(c.rc == -1 && c.err.st == 400 && strstr(c.err.msg, "limit is 65536 bytes"));
    compiled_free(&c);
    free(big);

    /* At most 10000 values. */
    sqlbuf_init(&b);
    sqlbuf_add(&b, "run_id IN (");
    for (int i = 0; i < 10001; i++) sqlbuf_add(&b, i ? ",''" : "''");
    sqlbuf_add(&b, ")");
    compile(&c, b.data);
    CHECK(c.rc == -1 && strstr(c.err.msg, "at position 30012:") &&
          strstr(c.err.msg, "too many values"));
    compiled_free(&c);
    b.data[b.len - 4] = ')';
    b.data[b.len - 3] = '\0';
    compile(&c, b.data);
    CHECK(c.rc == 0 && c.binds.n == 10000 && prepares_in_search(&c));
    compiled_free(&c);
    sqlbuf_free(&b);

    /* A NULL text is an empty filter. */
    compile_n(&c, NULL, 0);
    CHECK(c.rc == 0 && strcmp(c.sql.data, "1") == 0);
    compiled_free(&c);
}

/* Compiling appends to what the buffers hold; a failure leaves them as
 * they were. */
TEST(appends_and_rolls_back)
{
    sqlbuf_t out;
    sql_binds_t binds;
    cairn_err_t err = {0};
    sqlbuf_init(&out);
    sql_binds_init(&binds);
    sqlbuf_add(&out, "r.experiment_id = ? AND ");
    sql_binds_int(&binds, 7);
    const char *good = "metrics.a > 1 OR params.b = 'c'";
    CHECK(filter_compile(good, strlen(good), &out, &binds, &err) == 0);
    CHECK_UEQ(binds.n, 7);
    size_t len = out.len;
    const char *bad = "metrics.a > 1 OR params.b = 'c' AND";
    CHECK(filter_compile(bad, strlen(bad), &out, &binds, &err) == -1);
    CHECK_UEQ(out.len, len);
    CHECK_UEQ(strlen(out.data), len);
    CHECK_UEQ(binds.n, 7);
    CHECK(binds.v[0].kind == BIND_INT && binds.v[0].i == 7);
    sqlbuf_free(&out);
    sql_binds_free(&binds);
}

int main(void)
{
    if (open_db() < 0) return 1;
    RUN(accepted);
    RUN(exact_sql);
    RUN(rejected);
    RUN(semantics);
    RUN(semantics_with_rid_sets);
    RUN(rids_table);
    RUN(order_by);
    RUN(order_by_rejected);
    RUN(limits);
    RUN(appends_and_rolls_back);
    sqlite3_close(s_db);
    ridsets_free(&s_rs);
    return unit_report();
}
