/* Packing a page of runs (search_runs) with four queries per chunk of runs
 * rather than four per run: info, latest metrics, params and tags are each
 * read for up to RUNPAGE_CHUNK runs at once, packed into a scratch buffer
 * of their own, and then copied out run by run in the page's order. On a
 * page of RUNPAGE_PARALLEL runs or more, the metrics (the biggest part:
 * a row per key) are read by the side reader (side.h) while this thread
 * reads the other three. */
#include <stdlib.h>
#include <string.h>

#include "side.h"
#include "sqlbuf.h"
#include "storage.h"

#define RUNPAGE_CHUNK 500    /* rids per IN (...) list */
#define RUNPAGE_PARALLEL 200 /* runs in a page worth a second thread */

enum { PART_INFO, PART_METRICS, PART_PARAMS, PART_TAGS, NPARTS };

typedef struct part {
    size_t off, len;
    uint32_t count;
} part_t;

typedef struct slot {
    int64_t rid;
    size_t index; /* position in the page */
} slot_t;

/* A metric key by id, for the rows of one page. */
typedef struct key_name {
    int64_t id;
    char *name;
    size_t len;
} key_name_t;

/* One latest-metric row of the run being read. */
typedef struct metric_row {
    const key_name_t *key;
    double value;
    bool null; /* NaN is stored as NULL */
    int64_t timestamp, step;
} metric_row_t;

typedef struct runpage {
    storage_t *s;
    const int64_t *rids;
    size_t n;
    slot_t *by_rid; /* sorted by rid, to find a row's run */
    part_t (*parts)[NPARTS];
    bool *found;
    msgpack_sbuffer scratch[NPARTS]; /* each part's rows: two threads may pack */
    msgpack_packer pk[NPARTS];
    key_name_t *keys; /* the metric keys met so far, by id (sorted) */
    size_t nkeys, keys_cap;
    metric_row_t *rows; /* the current run's metrics */
    size_t nrows, rows_cap;
    sqlite3_stmt *key_st; /* a key's name by id */
} runpage_t;

/* The statement for one part; rid is the last column (info keeps it first
 * too, as ST_RUN_BY_RID does). */
static const char *const s_part_sql[NPARTS] = {
    [PART_INFO] =
        "SELECT rid, run_uuid, experiment_id, name, status, start_time, "
        "end_time, lifecycle_stage, artifact_uri, (SELECT p.run_uuid FROM runs "
        "p WHERE p.rid = runs.parent_rid), user_id, rid FROM runs WHERE rid IN",
    /* key_id, not the key: joining metric_keys and sorting by key made
     * this half the cost of a page (26 of 48 ms for 1000 runs); the names
     * come from a small map, and each run's metrics are sorted by name
     * here (s_flush_metrics). */
    [PART_METRICS] = ("SELECT key_id, value, timestamp, step, rid FROM latest_metrics "
                      "WHERE rid IN"),
    [PART_PARAMS] = "SELECT key, value, rid FROM params WHERE rid IN",
    [PART_TAGS] = "SELECT key, value, rid FROM tags WHERE rid IN",
};

static int s_cmp_slot(const void *a, const void *b)
{
    int64_t x = ((const slot_t *)a)->rid, y = ((const slot_t *)b)->rid;
    return (x > y) - (x < y);
}

static const slot_t *s_find(const runpage_t *pg, int64_t rid)
{
    slot_t key = {rid, 0};
    return bsearch(&key, pg->by_rid, pg->n, sizeof key, s_cmp_slot);
}

/* 500 storage_error with h's message. */
static int s_fail(sqlite3 *h, const char *what, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                         "the tracking database failed to %s: %s", what,
                         sqlite3_errmsg(h));
}

static void s_pack_row(int part, msgpack_packer *pk, sqlite3_stmt *st)
{
    if (part == PART_INFO)
        storage_pack_run_info(pk, st);
    else
        storage_pack_kv_row(pk, st);
}

static int s_cmp_key_id(const void *a, const void *b)
{
    int64_t x = ((const key_name_t *)a)->id, y = ((const key_name_t *)b)->id;
    return (x > y) - (x < y);
}

/* The name of metric key id (read once per page); NULL on failure. Entries
 * stay sorted by id; a page meets few distinct keys. */
static const key_name_t *s_key_name(runpage_t *pg, sqlite3 *h, int64_t id,
                                    cairn_err_t *err)
{
    key_name_t probe = {id, NULL, 0};
    key_name_t *k =
        pg->nkeys ? bsearch(&probe, pg->keys, pg->nkeys, sizeof probe, s_cmp_key_id)
                  : NULL;
    if (k) return k;
    if (!pg->key_st &&
        sqlite3_prepare_v2(h, "SELECT key FROM metric_keys WHERE key_id = ?", -1,
                           &pg->key_st, NULL) != SQLITE_OK) {
        s_fail(h, "read a page of runs", err);
        return NULL;
    }
    sqlite3_reset(pg->key_st);
    sqlite3_bind_int64(pg->key_st, 1, id);
    if (sqlite3_step(pg->key_st) != SQLITE_ROW) {
        s_fail(h, "find a metric key", err);
        return NULL;
    }
    if (pg->nkeys == pg->keys_cap) {
        size_t cap = pg->keys_cap ? pg->keys_cap * 2 : 64;
        key_name_t *v = realloc(pg->keys, cap * sizeof *v);
        if (!v) goto oom;
        pg->keys = v;
        pg->keys_cap = cap;
    }
    size_t len = (size_t)sqlite3_column_bytes(pg->key_st, 0);
    char *name = malloc(len + 1);
    if (!name) goto oom;
    memcpy(name, sqlite3_column_text(pg->key_st, 0), len);
    name[len] = '\0';
    size_t at = 0;
    while (at < pg->nkeys && pg->keys[at].id < id) at++;
    memmove(&pg->keys[at + 1], &pg->keys[at], (pg->nkeys - at) * sizeof *pg->keys);
    pg->keys[at] = (key_name_t){id, name, len};
    pg->nkeys++;
    return &pg->keys[at];
oom:
    cairn_err_oom(err, NULL);
    return NULL;
}

static int s_cmp_row(const void *a, const void *b)
{
    const key_name_t *x = ((const metric_row_t *)a)->key;
    const key_name_t *y = ((const metric_row_t *)b)->key;
    int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Pack the current run's metrics (sorted by key, as get_run's) as its part. */
static void s_flush_metrics(runpage_t *pg, part_t *p)
{
    if (!pg->nrows) return;
    qsort(pg->rows, pg->nrows, sizeof *pg->rows, s_cmp_row);
    msgpack_sbuffer *sb = &pg->scratch[PART_METRICS];
    msgpack_packer *pk = &pg->pk[PART_METRICS];
    p->off = sb->size;
    for (size_t i = 0; i < pg->nrows; i++) {
        const metric_row_t *r = &pg->rows[i];
        msgpack_pack_map(pk, 4);
        cairn_pack_cstr(pk, "key");
        cairn_pack_strn(pk, r->key->name, r->key->len);
        cairn_pack_cstr(pk, "value");
        msgpack_pack_double(pk, r->null ? 0.0 / 0.0 : r->value);
        cairn_pack_cstr(pk, "timestamp");
        msgpack_pack_int64(pk, r->timestamp);
        cairn_pack_cstr(pk, "step");
        msgpack_pack_int64(pk, r->step);
    }
    p->len = sb->size - p->off;
    p->count = (uint32_t)pg->nrows;
    pg->nrows = 0;
}

/* Add a latest_metrics row to the current run's. */
static int s_add_metric(runpage_t *pg, sqlite3 *h, sqlite3_stmt *st, cairn_err_t *err)
{
    if (pg->nrows == pg->rows_cap) {
        size_t cap = pg->rows_cap ? pg->rows_cap * 2 : 64;
        metric_row_t *v = realloc(pg->rows, cap * sizeof *v);
        if (!v) return cairn_err_oom(err, NULL);
        pg->rows = v;
        pg->rows_cap = cap;
    }
    const key_name_t *k = s_key_name(pg, h, sqlite3_column_int64(st, 0), err);
    if (!k) return -1;
    bool null = sqlite3_column_type(st, 1) == SQLITE_NULL;
    pg->rows[pg->nrows++] =
        (metric_row_t){k, null ? 0 : sqlite3_column_double(st, 1), null,
                       sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3)};
    return 0;
}

/* The metrics part: rows come by (rid, key_id), each run's together. */
static int s_read_metrics(runpage_t *pg, sqlite3 *h, sqlite3_stmt *st, cairn_err_t *err)
{
    int rc;
    part_t *cur = NULL;
    int64_t cur_rid = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t rid = sqlite3_column_int64(st, 4);
        if (!cur || rid != cur_rid) {
            if (cur) s_flush_metrics(pg, cur);
            const slot_t *sl = s_find(pg, rid);
            cur = sl ? &pg->parts[sl->index][PART_METRICS] : NULL;
            cur_rid = rid;
            if (!cur) continue;
        }
        if (s_add_metric(pg, h, st, err) != 0) return -1;
    }
    if (cur) s_flush_metrics(pg, cur);
    pg->nrows = 0;
    if (rc != SQLITE_DONE) return s_fail(h, "read a page of runs", err);
    return 0;
}

/* Read one part for rids[from, from + k) into its scratch buffer, on h. */
static int s_read_part(runpage_t *pg, sqlite3 *h, int part, size_t from, size_t k,
                       cairn_err_t *err)
{
    sqlbuf_t sql;
    sqlbuf_init(&sql);
    sqlbuf_add(&sql, s_part_sql[part]);
    sqlbuf_add(&sql, " (");
    for (size_t i = 0; i < k; i++) sqlbuf_add(&sql, i ? ",?" : "?");
    /* Ordered by rid, then key: each run's rows come together. */
    static const char *const order[NPARTS] = {")", ") ORDER BY rid, key_id",
                                              ") ORDER BY 3, 1", ") ORDER BY 3, 1"};
    sqlbuf_add(&sql, order[part]);
    if (sql.oom) {
        sqlbuf_free(&sql);
        return cairn_err_oom(err, NULL);
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, sql.data, -1, &st, NULL);
    sqlbuf_free(&sql);
    if (rc != SQLITE_OK) return s_fail(h, "read a page of runs", err);
    for (size_t i = 0; i < k; i++)
        sqlite3_bind_int64(st, (int)i + 1, pg->rids[from + i]);
    if (part == PART_METRICS) {
        rc = s_read_metrics(pg, h, st, err);
        sqlite3_finalize(st);
        return rc;
    }
    int last_col = sqlite3_column_count(st) - 1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const slot_t *sl = s_find(pg, sqlite3_column_int64(st, last_col));
        if (!sl) continue;
        part_t *p = &pg->parts[sl->index][part];
        if (p->count == 0) p->off = pg->scratch[part].size;
        /* Rows of one run are contiguous (ordered by rid): extend its part. */
        s_pack_row(part, &pg->pk[part], st);
        p->len = pg->scratch[part].size - p->off;
        p->count++;
        if (part == PART_INFO) pg->found[sl->index] = true;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return s_fail(h, "read a page of runs", err);
    return 0;
}

/* Every chunk's metrics, on the side reader's connection. */
static int s_read_metrics_job(sqlite3 *h, void *arg, cairn_err_t *err)
{
    runpage_t *pg = arg;
    for (size_t from = 0; from < pg->n; from += RUNPAGE_CHUNK) {
        size_t k = pg->n - from < RUNPAGE_CHUNK ? pg->n - from : RUNPAGE_CHUNK;
        if (s_read_part(pg, h, PART_METRICS, from, k, err) != 0) return -1;
    }
    return 0;
}

static void s_write_part(runpage_t *pg, msgpack_packer *out, size_t i, int part)
{
    const part_t *p = &pg->parts[i][part];
    if (part != PART_INFO) msgpack_pack_array(out, p->count);
    if (p->len)
        msgpack_sbuffer_write(out->data, pg->scratch[part].data + p->off, p->len);
}

static void s_free(runpage_t *pg)
{
    free(pg->by_rid);
    free(pg->parts);
    free(pg->found);
    for (size_t i = 0; i < pg->nkeys; i++) free(pg->keys[i].name);
    free(pg->keys);
    free(pg->rows);
    sqlite3_finalize(pg->key_st);
    for (int part = 0; part < NPARTS; part++)
        msgpack_sbuffer_destroy(&pg->scratch[part]);
}

int storage_pack_runs(storage_t *s, msgpack_packer *pk, const int64_t *rids, size_t n,
                      cairn_err_t *err)
{
    runpage_t pg = {.s = s, .rids = rids, .n = n};
    for (int part = 0; part < NPARTS; part++) {
        msgpack_sbuffer_init(&pg.scratch[part]);
        msgpack_packer_init(&pg.pk[part], &pg.scratch[part], msgpack_sbuffer_write);
    }
    pg.by_rid = malloc((n ? n : 1) * sizeof *pg.by_rid);
    pg.parts = calloc(n ? n : 1, sizeof *pg.parts);
    pg.found = calloc(n ? n : 1, sizeof *pg.found);
    int rc = pg.by_rid && pg.parts && pg.found ? 0 : cairn_err_oom(err, NULL);
    for (size_t i = 0; rc == 0 && i < n; i++) pg.by_rid[i] = (slot_t){rids[i], i};
    if (rc == 0) qsort(pg.by_rid, n, sizeof *pg.by_rid, s_cmp_slot);
    struct side *side = rc == 0 && n >= RUNPAGE_PARALLEL ? storage_side(s) : NULL;
    sqlite3 *h = db_handle(s->db);
    if (side) side_run(side, s_read_metrics_job, &pg);
    for (size_t from = 0; rc == 0 && from < n; from += RUNPAGE_CHUNK) {
        size_t k = n - from < RUNPAGE_CHUNK ? n - from : RUNPAGE_CHUNK;
        for (int part = 0; rc == 0 && part < NPARTS; part++)
            if (!side || part != PART_METRICS)
                rc = s_read_part(&pg, h, part, from, k, err);
    }
    if (side) {
        cairn_err_t side_err = {0};
        if (side_wait(side, &side_err) != 0 && rc == 0) {
            *err = side_err;
            rc = -1;
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!pg.found[i]) {
            rc = cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                               "a run vanished while being read");
            break;
        }
        bool inputs = storage_has_inputs(s, rids[i]);
        msgpack_pack_map(pk, inputs ? 3 : 2);
        cairn_pack_cstr(pk, "info");
        s_write_part(&pg, pk, i, PART_INFO);
        cairn_pack_cstr(pk, "data");
        msgpack_pack_map(pk, 3);
        cairn_pack_cstr(pk, "metrics");
        s_write_part(&pg, pk, i, PART_METRICS);
        cairn_pack_cstr(pk, "params");
        s_write_part(&pg, pk, i, PART_PARAMS);
        cairn_pack_cstr(pk, "tags");
        s_write_part(&pg, pk, i, PART_TAGS);
        if (inputs) {
            cairn_pack_cstr(pk, "inputs");
            storage_pack_inputs(s, pk, rids[i]);
        }
    }
    s_free(&pg);
    return rc;
}
