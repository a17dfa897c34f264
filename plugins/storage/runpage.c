/* Packing a page of runs (search_runs) with four queries per chunk of runs
 * rather than four per run: info, latest metrics, params and tags are each
 * read for up to RUNPAGE_CHUNK runs at once, packed into a scratch buffer,
 * and then copied out run by run in the page's order. */
#include <stdlib.h>
#include <string.h>

#include "sqlbuf.h"
#include "storage.h"

#define RUNPAGE_CHUNK 500 /* rids per IN (...) list */

enum { PART_INFO, PART_METRICS, PART_PARAMS, PART_TAGS, NPARTS };

typedef struct part {
    size_t off, len;
    uint32_t count;
} part_t;

typedef struct slot {
    int64_t rid;
    size_t index; /* position in the page */
} slot_t;

typedef struct runpage {
    storage_t *s;
    const int64_t *rids;
    size_t n;
    slot_t *by_rid; /* sorted by rid, to find a row's run */
    part_t (*parts)[NPARTS];
    bool *found;
    msgpack_sbuffer scratch;
    msgpack_packer pk;
} runpage_t;

/* The statement for one part; rid is the last column of the row packers'
 * (info keeps it first, as ST_RUN_BY_RID does). */
static const char *const s_part_sql[NPARTS] = {
    [PART_INFO] =
        "SELECT rid, run_uuid, experiment_id, name, status, start_time, "
        "end_time, lifecycle_stage, artifact_uri, (SELECT p.run_uuid FROM runs "
        "p WHERE p.rid = runs.parent_rid), user_id, rid FROM runs WHERE rid IN",
    [PART_METRICS] =
        "SELECT mk.key, lm.value, lm.timestamp, lm.step, lm.rid FROM "
        "latest_metrics lm JOIN metric_keys mk ON mk.key_id = lm.key_id "
        "WHERE lm.rid IN",
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

static void s_pack_row(int part, msgpack_packer *pk, sqlite3_stmt *st)
{
    if (part == PART_INFO)
        storage_pack_run_info(pk, st);
    else if (part == PART_METRICS)
        storage_pack_metric_row(pk, st);
    else
        storage_pack_kv_row(pk, st);
}

/* Read one part for rids[from, from + k) into the scratch buffer. */
static int s_read_part(runpage_t *pg, int part, size_t from, size_t k, cairn_err_t *err)
{
    sqlbuf_t sql;
    sqlbuf_init(&sql);
    sqlbuf_add(&sql, s_part_sql[part]);
    sqlbuf_add(&sql, " (");
    for (size_t i = 0; i < k; i++) sqlbuf_add(&sql, i ? ",?" : "?");
    /* Ordered by rid, then key: each run's rows come together. */
    static const char *const order[NPARTS] = {")", ") ORDER BY 5, 1", ") ORDER BY 3, 1",
                                              ") ORDER BY 3, 1"};
    sqlbuf_add(&sql, order[part]);
    if (sql.oom) {
        sqlbuf_free(&sql);
        return cairn_err_oom(err, NULL);
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(pg->s->db), sql.data, -1, &st, NULL);
    sqlbuf_free(&sql);
    if (rc != SQLITE_OK) return db_fail(pg->s->db, "read a page of runs", err);
    for (size_t i = 0; i < k; i++)
        sqlite3_bind_int64(st, (int)i + 1, pg->rids[from + i]);
    int last_col = sqlite3_column_count(st) - 1;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const slot_t *sl = s_find(pg, sqlite3_column_int64(st, last_col));
        if (!sl) continue;
        part_t *p = &pg->parts[sl->index][part];
        if (p->count == 0) p->off = pg->scratch.size;
        /* Rows of one run are contiguous (ordered by rid): extend its part. */
        s_pack_row(part, &pg->pk, st);
        p->len = pg->scratch.size - p->off;
        p->count++;
        if (part == PART_INFO) pg->found[sl->index] = true;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return db_fail(pg->s->db, "read a page of runs", err);
    return 0;
}

static void s_write_part(runpage_t *pg, msgpack_packer *out, size_t i, int part)
{
    const part_t *p = &pg->parts[i][part];
    if (part != PART_INFO) msgpack_pack_array(out, p->count);
    if (p->len) msgpack_sbuffer_write(out->data, pg->scratch.data + p->off, p->len);
}

static void s_free(runpage_t *pg)
{
    free(pg->by_rid);
    free(pg->parts);
    free(pg->found);
    msgpack_sbuffer_destroy(&pg->scratch);
}

int storage_pack_runs(storage_t *s, msgpack_packer *pk, const int64_t *rids, size_t n,
                      cairn_err_t *err)
{
    runpage_t pg = {.s = s, .rids = rids, .n = n};
    msgpack_sbuffer_init(&pg.scratch);
    msgpack_packer_init(&pg.pk, &pg.scratch, msgpack_sbuffer_write);
    pg.by_rid = malloc((n ? n : 1) * sizeof *pg.by_rid);
    pg.parts = calloc(n ? n : 1, sizeof *pg.parts);
    pg.found = calloc(n ? n : 1, sizeof *pg.found);
    int rc = pg.by_rid && pg.parts && pg.found ? 0 : cairn_err_oom(err, NULL);
    for (size_t i = 0; rc == 0 && i < n; i++) pg.by_rid[i] = (slot_t){rids[i], i};
    if (rc == 0) qsort(pg.by_rid, n, sizeof *pg.by_rid, s_cmp_slot);
    for (size_t from = 0; rc == 0 && from < n; from += RUNPAGE_CHUNK) {
        size_t k = n - from < RUNPAGE_CHUNK ? n - from : RUNPAGE_CHUNK;
        for (int part = 0; rc == 0 && part < NPARTS; part++)
            rc = s_read_part(&pg, part, from, k, err);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!pg.found[i]) {
            rc = cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                               "a run vanished while being read");
            break;
        }
        msgpack_pack_map(pk, 2);
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
    }
    s_free(&pg);
    return rc;
}
