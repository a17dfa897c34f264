/* search_runs: MLflow's filter syntax (plus OR and parentheses, filter.c)
 * compiled to one SQL query over indexed tables; stable offset paging with
 * start_time DESC, rid as the final tiebreakers. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "paging.h"
#include "sqlbuf.h"
#include "storage.h"

#define MAX_ORDER_BY 10
#define MAX_EXPERIMENT_IDS 1000

typedef struct query {
    sqlbuf_t sql, joins, where, order;
    sql_binds_t join_binds, where_binds;
} query_t;

static void s_query_init(query_t *q)
{
    sqlbuf_init(&q->sql);
    sqlbuf_init(&q->joins);
    sqlbuf_init(&q->where);
    sqlbuf_init(&q->order);
    sql_binds_init(&q->join_binds);
    sql_binds_init(&q->where_binds);
}

static void s_query_free(query_t *q)
{
    sqlbuf_free(&q->sql);
    sqlbuf_free(&q->joins);
    sqlbuf_free(&q->where);
    sqlbuf_free(&q->order);
    sql_binds_free(&q->join_binds);
    sql_binds_free(&q->where_binds);
}

static int s_experiments(const msgpack_object *b, query_t *q, cairn_err_t *err)
{
    const msgpack_object *ids;
    if (cairn_field_array(b, "experiment_ids", true, &ids, err) != 0) return -1;
    uint32_t n = ids->via.array.size;
    if (n == 0 || n > MAX_EXPERIMENT_IDS)
        return cairn_err_set(err, 400, "bad_request",
                             "experiment_ids must name 1 to %d experiments",
                             MAX_EXPERIMENT_IDS);
    sqlbuf_add(&q->where, "r.experiment_id IN (");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &ids->via.array.ptr[i];
        cairn_str_t s;
        int64_t id;
        if (o->type != MSGPACK_OBJECT_STR)
            return cairn_err_set(err, 400, "bad_request",
                                 "experiment_ids[%u] must be a string", i);
        s = (cairn_str_t){o->via.str.ptr, o->via.str.size};
        if (storage_parse_id(s, "experiment_id", &id, err) != 0) id = -1; /* no match */
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
        return cairn_err_set(err, 400, "bad_request",
                             "run_view_type must be ACTIVE_ONLY, DELETED_ONLY or ALL");
    return 0;
}

static int s_filter(const msgpack_object *b, query_t *q, cairn_err_t *err)
{
    cairn_str_t f = {"", 0};
    if (cairn_field_str(b, "filter", false, 0, &f, err) < 0) return -1;
    sqlbuf_add(&q->where, " AND (");
    if (filter_compile(f.ptr, f.len, &q->where, &q->where_binds, err) != 0) return -1;
    sqlbuf_add(&q->where, ")");
    return 0;
}

static int s_order(const msgpack_object *b, query_t *q, cairn_err_t *err)
{
    const msgpack_object *ob = NULL;
    if (cairn_field_array(b, "order_by", false, &ob, err) < 0) return -1;
    uint32_t n = ob ? ob->via.array.size : 0;
    if (n > MAX_ORDER_BY)
        return cairn_err_set(err, 400, "bad_request", "order_by takes at most %d clauses",
                             MAX_ORDER_BY);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &ob->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR)
            return cairn_err_set(err, 400, "bad_request", "order_by[%u] must be a string",
                                 i);
        if (i) sqlbuf_add(&q->order, ", ");
        if (filter_compile_order(o->via.str.ptr, o->via.str.size, (int)i, &q->joins,
                                 &q->join_binds, &q->order, err) != 0)
            return -1;
    }
    sqlbuf_add(&q->order, n ? ", r.start_time DESC, r.rid" : "r.start_time DESC, r.rid");
    return 0;
}

void run_search(void *state, cairn_req_t *req)
{
    storage_t *s = state;
    cairn_err_t err = {0};
    const msgpack_object *b = cairn_body(req);
    query_t q;
    page_t page;
    sqlite3_stmt *st = NULL;
    int64_t *rids = NULL;
    s_query_init(&q);
    if (page_parse(b, 1000, LIMIT_SEARCH_RESULTS, &page, &err) != 0 ||
        s_experiments(b, &q, &err) != 0 || s_view(b, &q, &err) != 0 ||
        s_filter(b, &q, &err) != 0 || s_order(b, &q, &err) != 0)
        goto fail;
    sqlbuf_addf(&q.sql, "SELECT r.rid FROM runs r %s WHERE %s ORDER BY %s LIMIT ? OFFSET ?",
                q.joins.data ? q.joins.data : "", q.where.data, q.order.data);
    if (q.sql.oom || q.joins.oom || q.where.oom || q.order.oom || q.where_binds.oom ||
        q.join_binds.oom) {
        cairn_err_set(&err, 500, NULL, "out of memory");
        goto fail;
    }
    int idx;
    if (sqlite3_prepare_v2(db_handle(s->db), q.sql.data, -1, &st, NULL) != SQLITE_OK ||
        (idx = sql_binds_apply(&q.join_binds, st, 1)) < 0 ||
        (idx = sql_binds_apply(&q.where_binds, st, idx)) < 0 ||
        sqlite3_bind_int64(st, idx, (int64_t)page.limit + 1) != SQLITE_OK ||
        sqlite3_bind_int64(st, idx + 1, (int64_t)page.offset) != SQLITE_OK) {
        db_fail(s->db, "search runs", &err);
        goto fail;
    }
    rids = malloc((page.limit + 1) * sizeof *rids);
    if (!rids) {
        cairn_err_set(&err, 500, NULL, "out of memory");
        goto fail;
    }
    size_t n = 0;
    int rc;
    while (n <= page.limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
        rids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    bool more = n > page.limit;
    if (more) n = page.limit;
    msgpack_packer *pk = storage_reply_begin(s);
    msgpack_pack_map(pk, more ? 2 : 1);
    cairn_pack_cstr(pk, "runs");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        if (storage_pack_run(s, pk, rids[i], &err) != 0) goto fail;
    if (more) page_pack_next(pk, &page);
    free(rids);
    s_query_free(&q);
    return storage_reply_send(s, req, 200);
fail:
    sqlite3_finalize(st);
    free(rids);
    s_query_free(&q);
    storage_reply_err(req, &err);
}
