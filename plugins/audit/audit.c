/* The audit plugin: the audit trail. The kernel sends it one record per
 * request to a mutating verb and per refused request, grouped (`append`);
 * it stores them in its own SQLite file as a hash chain (chain.h), one
 * transaction per group, and answers `query` and `verify`. Only the kernel
 * may append. */
#define _GNU_SOURCE
#define CAIRN_PLUGIN_SOURCE
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/plugin.h"
#include "chain.h"
#include "sqlite_util.h"

#define APPEND_MAX 4096 /* records in one append */
#define FIELD_MAX 256   /* bytes of a record's string field */

typedef struct settings {
    const char *db; /* "" = STATE/audit.db */
} settings_t;

static const cairn_setting_t audit_settings[] = {
    {.key = "db",
     .type = CAIRN_CONF_PATH,
     .offset = offsetof(settings_t, db),
     .dflt = "",
     .help = "the SQLite file of the trail (default: STATE/audit.db)"},
    {.key = NULL},
};

enum { Q_INSERT, Q_LAST, Q_TIME_OF, Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_COUNT };
static const char *const s_sql[Q_COUNT] = {
    [Q_INSERT] =
        ("INSERT INTO records (seq, time, principal, ws, svc, verb, object, "
         "status, cid, digest, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
    [Q_LAST] = "SELECT seq, hash, time FROM records ORDER BY seq DESC LIMIT 1",
    [Q_TIME_OF] = "SELECT time FROM records WHERE seq >= ? ORDER BY seq LIMIT 1",
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
};

typedef struct audit {
    cairn_ctx_t *ctx;
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    int64_t last_seq, last_time;
    unsigned char last_hash[AUDIT_HASH_BYTES];
    msgpack_sbuffer sb;
} audit_t;

static int s_db_fail(audit_t *a, const char *doing, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE, "audit: %s: %s",
                         doing, sqlite3_errmsg(a->db));
}

static int s_exec(audit_t *a, int q, const char *doing, cairn_err_t *err)
{
    int rc = sqlite3_step(a->q[q]);
    sqlite3_reset(a->q[q]);
    return rc == SQLITE_DONE ? 0 : s_db_fail(a, doing, err);
}

/* A string field of a record into buf ("" when absent). */
static int s_field(const msgpack_object *r, const char *key, char *buf,
                   cairn_err_t *err)
{
    cairn_str_t v = {"", 0};
    if (cairn_field_str(r, key, false, FIELD_MAX, &v, err) < 0) return -1;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    return 0;
}

typedef struct rec_buf {
    char principal[FIELD_MAX + 1], ws[FIELD_MAX + 1], svc[FIELD_MAX + 1],
        verb[FIELD_MAX + 1], object[FIELD_MAX + 1], cid[FIELD_MAX + 1],
        digest[FIELD_MAX + 1];
} rec_buf_t;

static int s_parse(const msgpack_object *o, audit_rec_t *r, rec_buf_t *b,
                   cairn_err_t *err)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a record is a map");
    if (cairn_field_int(o, "time", true, &r->time, err) != 0 ||
        cairn_field_int(o, "status", true, &r->status, err) != 0 ||
        s_field(o, "principal", b->principal, err) != 0 ||
        s_field(o, "ws", b->ws, err) != 0 || s_field(o, "svc", b->svc, err) != 0 ||
        s_field(o, "verb", b->verb, err) != 0 ||
        s_field(o, "object", b->object, err) != 0 ||
        s_field(o, "cid", b->cid, err) != 0 ||
        s_field(o, "digest", b->digest, err) != 0)
        return -1;
    r->principal = b->principal, r->ws = b->ws, r->svc = b->svc, r->verb = b->verb;
    r->object = b->object, r->cid = b->cid, r->digest = b->digest;
    return 0;
}

static int s_insert(audit_t *a, audit_rec_t *r, unsigned char hash[AUDIT_HASH_BYTES],
                    cairn_err_t *err)
{
    sqlite3_stmt *st = a->q[Q_INSERT];
    sqlite3_bind_int64(st, 1, r->seq);
    sqlite3_bind_int64(st, 2, r->time);
    const char *txt[] = {r->principal, r->ws, r->svc, r->verb, r->object};
    for (int i = 0; i < 5; i++) sqlite3_bind_text(st, 3 + i, txt[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, r->status);
    sqlite3_bind_text(st, 9, r->cid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, r->digest, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 11, hash, AUDIT_HASH_BYTES, SQLITE_STATIC);
    return s_exec(a, Q_INSERT, "append a record", err);
}

/* append {records*}: the kernel's, only; one transaction, chained. */
static int audit_append(void *state, cairn_req_t *req, cairn_err_t *err)
{
    audit_t *a = state;
    if (strcmp(cairn_principal(req), "kernel") != 0)
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "only the kernel appends to the audit trail");
    const msgpack_object *recs;
    if (cairn_field_array(cairn_body(req), "records", true, &recs, err) != 0) return -1;
    if (recs->via.array.size > APPEND_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "an append holds at most %d records", APPEND_MAX);
    if (s_exec(a, Q_BEGIN, "begin", err) != 0) return -1;
    int64_t seq = a->last_seq, time = a->last_time;
    unsigned char prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
    memcpy(prev, a->last_hash, sizeof prev);
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < recs->via.array.size; i++) {
        audit_rec_t r = {.seq = seq + 1};
        rec_buf_t b;
        rc = s_parse(&recs->via.array.ptr[i], &r, &b, err);
        if (rc != 0) break;
        /* Time never goes back along the chain (a clock stepped back is
         * read as no time passing), so that a time range is a seq range. */
        if (r.time < time) r.time = time;
        time = r.time;
        audit_chain_hash(prev, &r, h);
        rc = s_insert(a, &r, h, err);
        if (rc == 0) {
            seq++;
            memcpy(prev, h, sizeof prev);
        }
    }
    if (rc == 0) rc = s_exec(a, Q_COMMIT, "commit", err);
    if (rc != 0) {
        s_exec(a, Q_ROLLBACK, "roll back", &(cairn_err_t){0});
        return -1;
    }
    a->last_seq = seq;
    a->last_time = time;
    memcpy(a->last_hash, prev, sizeof prev);
    msgpack_sbuffer_clear(&a->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &a->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "appended");
    msgpack_pack_uint32(&pk, recs->via.array.size);
    cairn_pack_cstr(&pk, "last_seq");
    msgpack_pack_int64(&pk, seq);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &a->sb);
    return 0;
}

/* The WHERE of a query: each given field narrows it. */
typedef struct filter {
    cairn_str_t principal, svc, verb, object;
    int64_t since, until, after;
    int64_t min_status, max_status; /* 0: not given */
    uint64_t max;
} filter_t;

static int s_filter(const msgpack_object *b, filter_t *f, cairn_err_t *err)
{
    *f = (filter_t){.max = 100};
    cairn_str_t tok = {"", 0};
    if (cairn_field_str(b, "principal", false, FIELD_MAX, &f->principal, err) < 0 ||
        cairn_field_str(b, "svc", false, FIELD_MAX, &f->svc, err) < 0 ||
        cairn_field_str(b, "verb", false, FIELD_MAX, &f->verb, err) < 0 ||
        cairn_field_str(b, "object", false, FIELD_MAX, &f->object, err) < 0 ||
        cairn_field_int(b, "since", false, &f->since, err) < 0 ||
        cairn_field_int(b, "until", false, &f->until, err) < 0 ||
        cairn_field_int(b, "min_status", false, &f->min_status, err) < 0 ||
        cairn_field_int(b, "max_status", false, &f->max_status, err) < 0 ||
        cairn_field_uint(b, "max_results", false, &f->max, err) < 0 ||
        cairn_field_str(b, "page_token", false, 20, &tok, err) < 0)
        return -1;
    if (f->max < 1 || f->max > 1000)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "max_results is from 1 to 1000");
    if (f->min_status < 0 || f->min_status > 999 || f->max_status < 0 ||
        f->max_status > 999 || (f->max_status && f->min_status > f->max_status))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "min_status and max_status are HTTP-like statuses (100 "
                             "to 999), min_status not above max_status");
    /* A seq: digits, at most INT64_MAX (20 nines would overflow). */
    for (size_t i = 0; i < tok.len; i++) {
        int d = tok.ptr[i] - '0';
        if (d < 0 || d > 9 || f->after > (INT64_MAX - d) / 10)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "page_token is the one a query gave");
        f->after = f->after * 10 + d;
    }
    return 0;
}

static void s_bind_opt(sqlite3_stmt *st, int i, cairn_str_t v)
{
    if (v.ptr)
        sqlite3_bind_text(st, i, v.ptr, (int)v.len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void s_pack_row(msgpack_packer *pk, sqlite3_stmt *st)
{
    static const char *const keys[] = {"seq", "time", "principal", "ws",
                                       "svc", "verb", "object",    "status"};
    msgpack_pack_map(pk, 8);
    for (int c = 0; c < 8; c++) {
        cairn_pack_cstr(pk, keys[c]);
        if (sqlite3_column_type(st, c) == SQLITE_INTEGER)
            msgpack_pack_int64(pk, sqlite3_column_int64(st, c));
        else
            cairn_pack_strn(pk, (const char *)sqlite3_column_text(st, c),
                            (size_t)sqlite3_column_bytes(st, c));
    }
}

/* The time of the first record at or after seq; INT64_MAX past the end. */
static int s_time_at(audit_t *a, int64_t seq, int64_t *time, cairn_err_t *err)
{
    sqlite3_stmt *st = a->q[Q_TIME_OF];
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st);
    *time = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : INT64_MAX;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : s_db_fail(a, "query", err);
}

/* The first seq whose time is at least t (last_seq + 1 when none is): a
 * binary search, since times never go back along seq (audit_append). */
static int s_seq_at_time(audit_t *a, int64_t t, int64_t *out, cairn_err_t *err)
{
    int64_t lo = 1, hi = a->last_seq + 1; /* the answer is in [lo, hi] */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, tm;
        if (s_time_at(a, mid, &tm, err) != 0) return -1;
        if (tm >= t)
            hi = mid;
        else
            lo = mid + 1;
    }
    *out = lo;
    return 0;
}

/* The query's SQL: only the clauses given, so that SQLite can use the
 * (principal, seq) index and the seq range of since/until. */
static void s_query_sql(const filter_t *f, char *sql, size_t cap)
{
    snprintf(sql, cap,
             "SELECT seq, time, principal, ws, svc, verb, object, status FROM records "
             "WHERE seq > ?1 AND seq < ?2%s%s%s%s%s%s ORDER BY seq LIMIT ?7",
             f->principal.ptr ? " AND principal = ?3" : "",
             f->svc.ptr ? " AND svc = ?4" : "", f->verb.ptr ? " AND verb = ?5" : "",
             f->object.ptr ? " AND object = ?6" : "",
             f->min_status ? " AND status >= ?8" : "",
             f->max_status ? " AND status <= ?9" : "");
}

/* query {principal, svc, verb, object, since, until, min_status,
 * max_status, max_results, page_token} -> records (oldest first),
 * next_page_token. */
static int audit_query(void *state, cairn_req_t *req, cairn_err_t *err)
{
    audit_t *a = state;
    filter_t f;
    if (s_filter(cairn_body(req), &f, err) != 0) return -1;
    int64_t first = 1, end = a->last_seq + 1; /* seq in [first, end) */
    if ((f.since && s_seq_at_time(a, f.since, &first, err) != 0) ||
        (f.until && s_seq_at_time(a, f.until, &end, err) != 0))
        return -1;
    if (f.after < first - 1) f.after = first - 1;
    char sql[512];
    s_query_sql(&f, sql, sizeof sql);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK)
        return s_db_fail(a, "query", err);
    sqlite3_bind_int64(st, 1, f.after);
    sqlite3_bind_int64(st, 2, end);
    s_bind_opt(st, 3, f.principal);
    s_bind_opt(st, 4, f.svc);
    s_bind_opt(st, 5, f.verb);
    s_bind_opt(st, 6, f.object);
    sqlite3_bind_int64(st, 7, (int64_t)f.max + 1);
    if (f.min_status)
        sqlite3_bind_int64(st, 8, f.min_status); /* only when in the SQL */
    if (f.max_status) sqlite3_bind_int64(st, 9, f.max_status);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint64_t n = 0;
    int64_t last = 0;
    bool more = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == f.max) {
            more = true;
            break;
        }
        last = sqlite3_column_int64(st, 0);
        s_pack_row(&rp, st);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        msgpack_sbuffer_destroy(&rows);
        return s_db_fail(a, "query", err);
    }
    msgpack_sbuffer_clear(&a->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &a->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, more ? 2 : 1);
    cairn_pack_cstr(&pk, "records");
    msgpack_pack_array(&pk, (uint32_t)n);
    msgpack_sbuffer_write(&a->sb, rows.data, rows.size);
    if (more) {
        char tok[24];
        snprintf(tok, sizeof tok, "%lld", (long long)last);
        cairn_pack_kv_str(&pk, "next_page_token", tok);
    }
    msgpack_sbuffer_destroy(&rows);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &a->sb);
    return 0;
}

/* verify {} -> ok, records, first_bad_seq (when not ok). */
static int audit_verify(void *state, cairn_req_t *req, cairn_err_t *err)
{
    audit_t *a = state;
    int64_t checked = 0, bad = 0;
    char why[256];
    if (audit_chain_verify(a->db, &checked, &bad, why, sizeof why) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE, "audit: %s", why);
    msgpack_sbuffer_clear(&a->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &a->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, bad ? 3 : 2);
    cairn_pack_cstr(&pk, "ok");
    if (bad)
        msgpack_pack_false(&pk);
    else
        msgpack_pack_true(&pk);
    cairn_pack_cstr(&pk, "records");
    msgpack_pack_int64(&pk, checked);
    if (bad) {
        cairn_pack_cstr(&pk, "first_bad_seq");
        msgpack_pack_int64(&pk, bad);
    }
    cairn_reply_sbuf(req, CAIRN_ST_OK, &a->sb);
    return 0;
}

static void audit_fini(void *state)
{
    audit_t *a = state;
    if (!a) return;
    cairn_sqlite_finalize(a->q, Q_COUNT);
    sqlite3_close(a->db);
    msgpack_sbuffer_destroy(&a->sb);
    free(a);
}

/* Where the chain ends: the last record's seq and hash. */
static int s_load_tail(audit_t *a, cairn_err_t *err)
{
    sqlite3_stmt *st = a->q[Q_LAST];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        a->last_seq = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) == AUDIT_HASH_BYTES)
            memcpy(a->last_hash, sqlite3_column_blob(st, 1), AUDIT_HASH_BYTES);
        a->last_time = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
                                                 : s_db_fail(a, "read the tail", err);
}

static int audit_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
                             "audit: this host predates typed settings");
    audit_t *a = calloc(1, sizeof *a);
    if (!a) return cairn_err_oom(err, NULL);
    a->ctx = ctx;
    msgpack_sbuffer_init(&a->sb);
    char *path = NULL;
    if (set->db && *set->db)
        path = strdup(set->db);
    else if (asprintf(&path, "%s/audit.db", cairn_state_dir(ctx)) < 0)
        path = NULL;
    int rc = path ? 0 : cairn_err_oom(err, NULL);
    if (rc == 0 &&
        (cairn_sqlite_open(path, "the audit database", 5000, &a->db, err) != 0 ||
         cairn_sqlite_exec(
             a->db, "the audit database",
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" AUDIT_SCHEMA,
             "create its schema", err) != 0 ||
         cairn_sqlite_prepare(a->db, "the audit database", s_sql, Q_COUNT, a->q, err) !=
             0))
        rc = -1;
    if (rc == 0) rc = s_load_tail(a, err);
    free(path);
    if (rc != 0) {
        audit_fini(a);
        return -1;
    }
    *state = a;
    return 0;
}

static const cairn_verb_t audit_verbs[] = {
    {.name = "append",
     .handle = audit_append,
     .perm = "audit.append",
     .flags = CAIRN_VERB_MUTATING,
     .help = "{records*} (the kernel only): chained, one transaction"},
    {.name = "query",
     .handle = audit_query,
     .perm = "audit.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 4096,
     .help = "{principal, svc, verb, object, since, until, min_status, max_status, "
             "max_results, page_token} -> "
             "records"},
    {.name = "verify",
     .handle = audit_verify,
     .perm = "audit.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 1024,
     .help = "{} -> ok, records, first_bad_seq"},
    {.name = NULL},
};

static const cairn_plugin_t audit_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "audit",
    .version = "1.0.0",
    .description =
        "the audit trail: a hash chain of every mutating and refused request",
    .verbs = audit_verbs,
    .settings = audit_settings,
    .settings_size = sizeof(settings_t),
    .init = audit_init,
    .fini = audit_fini,
    .concurrency = 64,
};

CAIRN_PLUGIN_DEFINE(audit_plugin)
