/* search_runs: MLflow's filter syntax (plus OR and parentheses, filter.c)
 * compiled to one SQL query over indexed tables; stable offset paging with
 * start_time DESC, rid as the final tiebreakers. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter.h"
#include "paging.h"
#include "sqlbuf.h"
#include "side.h"
#include "storage.h"

#define MAX_ORDER_BY 10
#define MAX_EXPERIMENT_IDS 1000

/* Key clauses become rid sets (filter.h) up to this many; a filter with
 * more compiles them as subqueries (each set is a bitmap of every rid). */
#define MAX_RID_SETS 16

typedef struct query {
    sqlbuf_t sql, joins, where, order;
    sql_binds_t join_binds, where_binds;
    filter_sets_t sets;
    /* With required sets: their intersection is set `cand`, holding ncand
     * rids of at most nrids. cand < 0: no required set. */
    long cand;
    uint64_t ncand, nrids;
} query_t;

static void s_query_init(query_t *q)
{
    q->cand = -1;
    q->ncand = q->nrids = 0;
    sqlbuf_init(&q->sql);
    sqlbuf_init(&q->joins);
    sqlbuf_init(&q->where);
    sqlbuf_init(&q->order);
    sql_binds_init(&q->join_binds);
    sql_binds_init(&q->where_binds);
    filter_sets_init(&q->sets);
}

static void s_query_free(query_t *q)
{
    sqlbuf_free(&q->sql);
    sqlbuf_free(&q->joins);
    sqlbuf_free(&q->where);
    sqlbuf_free(&q->order);
    sql_binds_free(&q->join_binds);
    sql_binds_free(&q->where_binds);
    filter_sets_free(&q->sets);
}

/* r.experiment_id IN (the ids named): an id that is not an experiment of
 * workspace ws matches nothing, as an unknown one does. */
static int s_experiments(storage_t *st, const char *ws, const msgpack_object *b,
                         query_t *q, cairn_err_t *err)
{
    const msgpack_object *ids;
    if (cairn_field_array(b, "experiment_ids", true, &ids, err) != 0) return -1;
    uint32_t n = ids->via.array.size;
    if (n == 0 || n > MAX_EXPERIMENT_IDS)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "experiment_ids must name 1 to %d experiments",
                             MAX_EXPERIMENT_IDS);
    sqlbuf_add(&q->where, "r.experiment_id IN (");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &ids->via.array.ptr[i];
        cairn_str_t s;
        int64_t id;
        if (o->type != MSGPACK_OBJECT_STR)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "experiment_ids[%u] must be a string", i);
        s = (cairn_str_t){o->via.str.ptr, o->via.str.size};
        if (storage_parse_id(s, "experiment_id", &id, err) != 0) id = -1; /* no match */
        sqlite3_stmt *row =
            id < 0 ? NULL : storage_find_experiment(st->db, ws, id, err);
        if (row)
            sqlite3_reset(row);
        else if (id >= 0 && err->st != CAIRN_ST_NOT_FOUND)
            return -1;
        else
            id = -1;
        cairn_err_clear(err);
        sqlbuf_add(&q->where, i ? ", ?" : "?");
        sql_binds_int(&q->where_binds, id);
    }
    sqlbuf_add(&q->where, ")");
    return 0;
}

static int s_view(const msgpack_object *b, query_t *q, cairn_err_t *err)
{
    cairn_str_t v = {"ACTIVE_ONLY", 11};
    if (cairn_field_str(b, "run_view_type", false, 32, &v, err) < 0) return -1;
    if (cairn_str_eq(v, "ACTIVE_ONLY"))
        sqlbuf_add(&q->where, " AND r.lifecycle_stage = 'active'");
    else if (cairn_str_eq(v, "DELETED_ONLY"))
        sqlbuf_add(&q->where, " AND r.lifecycle_stage = 'deleted'");
    else if (!cairn_str_eq(v, "ALL"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "run_view_type must be ACTIVE_ONLY, DELETED_ONLY or ALL");
    return 0;
}

static int s_filter(const msgpack_object *b, query_t *q, cairn_err_t *err)
{
    cairn_str_t f = {"", 0};
    if (cairn_field_str(b, "filter", false, 0, &f, err) < 0) return -1;
    sqlbuf_add(&q->where, " AND (");
    size_t len0 = q->where.len, binds0 = q->where_binds.n;
    if (filter_compile_sets(f.ptr, f.len, &q->where, &q->where_binds, &q->sets, err) !=
        0)
        return -1;
    if (q->sets.n > MAX_RID_SETS) { /* compile it again, without sets */
        filter_sets_free(&q->sets);
        q->where.len = len0;
        q->where.data[len0] = '\0';
        while (q->where_binds.n > binds0)
            free(q->where_binds.v[--q->where_binds.n].text);
        if (filter_compile(f.ptr, f.len, &q->where, &q->where_binds, err) != 0)
            return -1;
    }
    sqlbuf_add(&q->where, ")");
    return 0;
}

/* Fill rid set k from one scan of its query, on connection h. */
static int s_fill_one(sqlite3 *h, const filter_set_t *set, size_t k, cairn_err_t *err)
{
    sqlbuf_t sql;
    sqlbuf_init(&sql);
    sqlbuf_addf(&sql, "SELECT cairn_rid_fill(%zu, rid) FROM (%s)", k, set->sql.data);
    if (sql.oom) {
        sqlbuf_free(&sql);
        return cairn_err_oom(err, NULL);
    }
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(h, sql.data, -1, &st, NULL) != SQLITE_OK ||
        sql_binds_apply(&set->binds, st, 1) < 0 || sqlite3_step(st) != SQLITE_ROW)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                           "the tracking database failed to search runs: %s",
                           sqlite3_errmsg(h));
    sqlite3_finalize(st);
    sqlbuf_free(&sql);
    return rc;
}

/* The sets one connection fills: their indexes into q->sets. */
typedef struct fill_job {
    const query_t *q;
    size_t ks[MAX_RID_SETS], n;
} fill_job_t;

static int s_fill_job(sqlite3 *h, void *arg, cairn_err_t *err)
{
    fill_job_t *f = arg;
    for (size_t i = 0; i < f->n; i++)
        if (s_fill_one(h, &f->q->sets.v[f->ks[i]], f->ks[i], err) != 0) return -1;
    return 0;
}

/* Split the sets between this thread and the side (side.h): a set that
 * reads the plugin's in-memory metric index stays here; the others go to
 * the side, keeping this thread at least one when it has none of its own.
 * False when there is nothing to split. */
static bool s_split(const query_t *q, fill_job_t *here, fill_job_t *side)
{
    if (q->sets.n < 2) return false;
    for (size_t k = 0; k < q->sets.n; k++) {
        bool mem = strstr(q->sets.v[k].sql.data, "mem.") != NULL;
        fill_job_t *to = mem ? here : side;
        to->ks[to->n++] = k;
    }
    if (!here->n) here->ks[here->n++] = side->ks[--side->n];
    return side->n > 0;
}

/* Fill the rid sets' bitmaps, each from one scan of its query (two at once
 * when the side reader is there); then, when some are required, their
 * intersection (the candidates) as one more. */
static int s_fill_sets(storage_t *s, query_t *q, cairn_err_t *err)
{
    if (q->sets.n == 0) return 0;
    sqlite3 *h = db_handle(s->db);
    ridsets_t *rs = db_ridsets(s->db);
    sqlite3_stmt *st = NULL;
    int64_t max_rid = -1;
    if (sqlite3_prepare_v2(h, "SELECT max(rid) FROM runs", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return db_fail(s->db, "search runs", err);
    }
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        max_rid = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    size_t required[MAX_RID_SETS], nreq = 0;
    for (size_t k = 0; k < q->sets.n; k++)
        if (q->sets.v[k].required) required[nreq++] = k;
    if (ridsets_reset(rs, q->sets.n + (nreq ? 1 : 0), max_rid, err) != 0) return -1;
    fill_job_t here = {.q = q}, there = {.q = q};
    struct side *side = s_split(q, &here, &there) ? storage_side(s) : NULL;
    int rc;
    if (side) {
        side_run(side, s_fill_job, &there);
        rc = s_fill_job(h, &here, err);
        cairn_err_t side_err = {0};
        if (side_wait(side, &side_err) != 0 && rc == 0) {
            *err = side_err;
            rc = -1;
        }
    } else {
        fill_job_t all = {.q = q, .n = q->sets.n};
        for (size_t k = 0; k < q->sets.n; k++) all.ks[k] = k;
        rc = s_fill_job(h, &all, err);
    }
    if (rc == 0 && nreq) {
        q->cand = (long)q->sets.n;
        q->ncand = ridsets_and(rs, q->sets.n, required, nreq);
        q->nrids = (uint64_t)(max_rid + 1);
    }
    return rc;
}

static int s_order(const msgpack_object *b, query_t *q, cairn_err_t *err)
{
    const msgpack_object *ob = NULL;
    if (cairn_field_array(b, "order_by", false, &ob, err) < 0) return -1;
    uint32_t n = ob ? ob->via.array.size : 0;
    if (n > MAX_ORDER_BY)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "order_by takes at most %d clauses", MAX_ORDER_BY);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &ob->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "order_by[%u] must be a string", i);
        if (i) sqlbuf_add(&q->order, ", ");
        if (filter_compile_order(o->via.str.ptr, o->via.str.size, (int)i, &q->joins,
                                 &q->join_binds, &q->order, err) != 0)
            return -1;
    }
    sqlbuf_add(&q->order,
               n ? ", r.start_time DESC, r.rid" : "r.start_time DESC, r.rid");
    return 0;
}

/* ---- ordering by one metric: driven by the (key, value) index ---------- */

/* True when order_by is exactly one "metrics.KEY [ASC|DESC]" clause (the
 * common "best runs" query); *key points into the body. */
static bool s_single_metric_order(const msgpack_object *b, cairn_str_t *key, bool *desc)
{
    const msgpack_object *ob = cairn_obj_get(b, "order_by");
    if (!ob || ob->type != MSGPACK_OBJECT_ARRAY || ob->via.array.size != 1 ||
        ob->via.array.ptr[0].type != MSGPACK_OBJECT_STR)
        return false;
    const char *p = ob->via.array.ptr[0].via.str.ptr;
    const char *end = p + ob->via.array.ptr[0].via.str.size;
    while (p < end && *p == ' ') p++;
    size_t pre = end - p > 8 && !strncasecmp(p, "metrics.", 8)  ? 8
                 : end - p > 7 && !strncasecmp(p, "metric.", 7) ? 7
                                                                : 0;
    if (!pre) return false;
    p += pre;
    const char *k = p;
    if (*p == '`' || *p == '"') {
        char q = *p++;
        k = p;
        while (p < end && *p != q) p++;
        if (p == end) return false;
        *key = (cairn_str_t){k, (size_t)(p - k)};
        p++;
    } else {
        while (p < end && *p != ' ') p++;
        *key = (cairn_str_t){k, (size_t)(p - k)};
    }
    while (p < end && *p == ' ') p++;
    *desc = false;
    if (end - p >= 4 && !strncasecmp(p, "DESC", 4)) {
        *desc = true;
        p += 4;
    } else if (end - p >= 3 && !strncasecmp(p, "ASC", 3)) {
        p += 3;
    }
    while (p < end && *p == ' ') p++;
    return p == end && key->len > 0 && key->len <= LIMIT_KEY;
}

/* Step a prepared statement, appending rids to out (at most cap in all). */
static int s_collect(db_t *db, sqlite3_stmt *st, int64_t *out, size_t *n, size_t cap,
                     cairn_err_t *err)
{
    int rc;
    while (*n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW)
        out[(*n)++] = sqlite3_column_int64(st, 0);
    if (*n < cap && rc != SQLITE_DONE) return db_fail(db, "search runs", err);
    return 0;
}

/* Prepare sql and bind, in order: for each of arms, the key then the
 * filter's binds (key_first), or the filter's binds then the key; then
 * ints. A query of the value index has two arms (fold.h). */
static sqlite3_stmt *s_prepare(db_t *db, const char *sql, const query_t *q,
                               cairn_str_t key, bool key_first, int arms,
                               const int64_t *ints, int nints, cairn_err_t *err)
{
    sqlite3_stmt *st = NULL;
    int idx = 1;
    if (sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL) != SQLITE_OK) goto fail;
    for (int arm = 0; arm < arms; arm++) {
        if (key_first)
            sqlite3_bind_text(st, idx++, key.ptr, (int)key.len, SQLITE_STATIC);
        if ((idx = sql_binds_apply(&q->where_binds, st, idx)) < 0) goto fail;
        if (!key_first)
            sqlite3_bind_text(st, idx++, key.ptr, (int)key.len, SQLITE_STATIC);
    }
    for (int i = 0; i < nints; i++) sqlite3_bind_int64(st, idx++, ints[i]);
    return st;
fail:
    db_fail(db, "search runs", err);
    sqlite3_finalize(st);
    return NULL;
}

#define KEY_ID "(SELECT key_id FROM metric_keys WHERE key = ?)"

/* Runs with the metric, in value order: the folded rows straight off the
 * value index merged with the unfolded ones (fold.h), then (for NULLs
 * last) runs without it, newest first. Offsets span both parts. */
static int s_fetch_by_metric(storage_t *s, const query_t *q, cairn_str_t key, bool desc,
                             const page_t *page, int64_t *rids, size_t *n,
                             cairn_err_t *err)
{
    size_t want = (size_t)page->limit + 1;
    sqlbuf_t sql;
    sqlbuf_init(&sql);
    /* CROSS JOIN keeps the metric rows outermost, so each arm's index gives
     * the order; the compound ORDER BY merges the two arms. */
    sqlbuf_addf(&sql,
                "SELECT r.rid, o.value, r.start_time FROM metric_values o CROSS JOIN "
                "runs r ON r.rid = o.rid WHERE o.key_id = " KEY_ID
                " AND %s UNION ALL "
                "SELECT r.rid, o.value, r.start_time FROM mem.recent o CROSS JOIN "
                "runs r ON r.rid = o.rid WHERE o.key_id = " KEY_ID
                " AND o.value IS NOT NULL AND %s "
                "ORDER BY 2 %s, 3 DESC, 1 LIMIT ? OFFSET ?",
                q->where.data, q->where.data, desc ? "DESC" : "ASC");
    int64_t lo[2] = {(int64_t)want, (int64_t)page->offset};
    sqlite3_stmt *st =
        sql.oom ? NULL : s_prepare(s->db, sql.data, q, key, true, 2, lo, 2, err);
    int rc = st ? s_collect(s->db, st, rids, n, want, err) : -1;
    sqlite3_finalize(st);
    sqlbuf_free(&sql);
    if (rc != 0 || *n == want) return rc;
    /* How many runs have the metric: known unless this page began past them. */
    int64_t with = (int64_t)page->offset + (int64_t)*n;
    if (*n == 0 && page->offset > 0) {
        sqlbuf_init(&sql);
        sqlbuf_addf(
            &sql,
            "SELECT (SELECT count(*) FROM metric_values o CROSS JOIN runs r ON "
            "r.rid = o.rid WHERE o.key_id = " KEY_ID
            " AND %s) + (SELECT count(*) "
            "FROM mem.recent o CROSS JOIN runs r ON r.rid = o.rid WHERE o.key_id "
            "= " KEY_ID " AND o.value IS NOT NULL AND %s)",
            q->where.data, q->where.data);
        st = sql.oom ? NULL : s_prepare(s->db, sql.data, q, key, true, 2, NULL, 0, err);
        rc = st && sqlite3_step(st) == SQLITE_ROW ? 0
                                                  : db_fail(s->db, "count runs", err);
        if (rc == 0) with = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlbuf_free(&sql);
        if (rc != 0) return rc;
    }
    int64_t off_b = (int64_t)page->offset > with ? (int64_t)page->offset - with : 0;
    sqlbuf_init(&sql);
    sqlbuf_addf(&sql,
                "SELECT r.rid FROM runs r WHERE %s AND NOT EXISTS (SELECT 1 FROM "
                "latest_metrics x WHERE x.rid = r.rid AND x.key_id = " KEY_ID
                " AND x.value IS NOT NULL) ORDER BY r.start_time DESC, r.rid "
                "LIMIT ? OFFSET ?",
                q->where.data);
    int64_t lo_b[2] = {(int64_t)(want - *n), off_b};
    st = sql.oom ? NULL : s_prepare(s->db, sql.data, q, key, false, 1, lo_b, 2, err);
    rc = st ? s_collect(s->db, st, rids, n, want, err) : -1;
    sqlite3_finalize(st);
    sqlbuf_free(&sql);
    return rc;
}

/* Whether to read the candidates by rid and sort them, rather than walk
 * the runs in the page's order until enough match. */
static bool s_list_plan(const query_t *q, const page_t *page)
{
    double want = (double)page->offset + (double)page->limit + 1;
    return q->cand >= 0 && ridsets_list_wins(q->ncand, q->nrids, want);
}

/* Any other ordering: one query, with the order's LEFT JOINs, driven by
 * the candidates' rids or by the order (s_list_plan). */
static int s_fetch_general(storage_t *s, query_t *q, const page_t *page, int64_t *rids,
                           size_t *n, cairn_err_t *err)
{
    if (s_list_plan(q, page)) /* CROSS JOIN keeps the candidates outermost */
        sqlbuf_addf(&q->sql,
                    "SELECT r.rid FROM cairn_rids(%ld) c CROSS JOIN runs r ON r.rid = "
                    "c.rid %s WHERE %s ORDER BY %s LIMIT ? OFFSET ?",
                    q->cand, q->joins.data ? q->joins.data : "", q->where.data,
                    q->order.data);
    else
        sqlbuf_addf(&q->sql,
                    "SELECT r.rid FROM runs r %s WHERE %s ORDER BY %s LIMIT ? OFFSET ?",
                    q->joins.data ? q->joins.data : "", q->where.data, q->order.data);
    if (q->sql.oom || q->joins.oom || q->order.oom || q->join_binds.oom)
        return cairn_err_oom(err, NULL);
    sqlite3_stmt *st = NULL;
    int idx, rc = -1;
    if (sqlite3_prepare_v2(db_handle(s->db), q->sql.data, -1, &st, NULL) != SQLITE_OK ||
        (idx = sql_binds_apply(&q->join_binds, st, 1)) < 0 ||
        (idx = sql_binds_apply(&q->where_binds, st, idx)) < 0 ||
        sqlite3_bind_int64(st, idx, (int64_t)page->limit + 1) != SQLITE_OK ||
        sqlite3_bind_int64(st, idx + 1, (int64_t)page->offset) != SQLITE_OK)
        db_fail(s->db, "search runs", err);
    else
        rc = s_collect(s->db, st, rids, n, (size_t)page->limit + 1, err);
    sqlite3_finalize(st);
    return rc;
}

int run_search(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req);
    query_t q;
    page_t page;
    int64_t *rids = NULL;
    cairn_str_t key;
    bool desc;
    size_t n = 0;
    s_query_init(&q);
    if (page_parse(b, 1000, LIMIT_SEARCH_RESULTS, &page, err) != 0 ||
        s_experiments(s, cairn_workspace(req), b, &q, err) != 0 ||
        s_view(b, &q, err) != 0 || s_filter(b, &q, err) != 0 ||
        s_order(b, &q, err) != 0)
        goto fail;
    if (q.where.oom || q.where_binds.oom ||
        !(rids = malloc((page.limit + 1) * sizeof *rids))) {
        cairn_err_oom(err, NULL);
        goto fail;
    }
    if (s_fill_sets(s, &q, err) != 0) goto fail;
    if (s_single_metric_order(b, &key, &desc)
            ? s_fetch_by_metric(s, &q, key, desc, &page, rids, &n, err)
            : s_fetch_general(s, &q, &page, rids, &n, err))
        goto fail;

    bool more = n > page.limit;
    if (more) n = page.limit;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, more ? 2 : 1);
    cairn_pack_cstr(pk, "runs");
    msgpack_pack_array(pk, n);
    if (storage_pack_runs(s, pk, rids, n, err) != 0) goto fail;
    if (more) page_pack_next(pk, &page);
    free(rids);
    s_query_free(&q);
    return storage_reply_send(s, req, CAIRN_ST_OK);
fail:
    free(rids);
    s_query_free(&q);
    return -1;
}
