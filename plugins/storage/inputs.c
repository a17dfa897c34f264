/* A run's inputs: the datasets it read, as MLflow records them
 * (`mlflow.log_input`, MLflow's runs/log-inputs). A dataset is named by
 * (experiment, name, digest) and stored once per experiment; a run's input
 * links it with the input's own tags (mlflow.data.context = "training",
 * ...). Logging the same dataset to a run again changes nothing, as in
 * MLflow. get_run's reply carries them as `inputs.dataset_inputs`.
 *
 * This is MLflow's per-run record of what was read; the registry's data
 * assets (versioned, stored, with lineage) are the other, richer kind
 * (docs/REGISTRY.md, registry.log_input). */
#include <string.h>

#include "storage.h"

/* MLflow's limits (mlflow/utils/validation.py), bytes of UTF-8. */
#define LIMIT_DATASETS 1000 /* per request: Cairn's own */
#define LIMIT_DATASET_NAME 500
#define LIMIT_DATASET_DIGEST 36
#define LIMIT_DATASET_SOURCE_TYPE 36
#define LIMIT_DATASET_SOURCE 65535
#define LIMIT_DATASET_SCHEMA 1048575
#define LIMIT_DATASET_PROFILE 16384
#define LIMIT_INPUT_TAGS 100
#define LIMIT_INPUT_TAG_KEY 255
#define LIMIT_INPUT_TAG_VALUE 500

typedef struct dataset {
    cairn_str_t name, digest, source_type, source, schema, profile;
    bool has_schema, has_profile;
} dataset_t;

static int s_required(const msgpack_object *o, const char *key, size_t max,
                      cairn_str_t *out, cairn_err_t *err)
{
    if (cairn_field_str(o, key, true, max, out, err) != 0) return -1;
    if (!out->len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field '%s' must not be empty", key);
    return 0;
}

static int s_parse_dataset(const msgpack_object *in, dataset_t *d, cairn_err_t *err)
{
    const msgpack_object *o;
    if (cairn_field_map(in, "dataset", true, &o, err) != 0) return -1;
    int sch, prof;
    if (s_required(o, "name", LIMIT_DATASET_NAME, &d->name, err) != 0 ||
        s_required(o, "digest", LIMIT_DATASET_DIGEST, &d->digest, err) != 0 ||
        s_required(o, "source_type", LIMIT_DATASET_SOURCE_TYPE, &d->source_type, err) !=
            0 ||
        cairn_field_str(o, "source", true, LIMIT_DATASET_SOURCE, &d->source, err) !=
            0 ||
        (sch = cairn_field_str(o, "schema", false, LIMIT_DATASET_SCHEMA, &d->schema,
                               err)) < 0 ||
        (prof = cairn_field_str(o, "profile", false, LIMIT_DATASET_PROFILE, &d->profile,
                                err)) < 0)
        return -1;
    d->has_schema = sch == 0;
    d->has_profile = prof == 0;
    return 0;
}

/* The input's tags, checked, packed into sb as [{key, value}]. */
static int s_pack_tags(const msgpack_object *in, msgpack_sbuffer *sb, cairn_err_t *err)
{
    const msgpack_object *tags = NULL;
    if (cairn_field_array(in, "tags", false, &tags, err) < 0) return -1;
    uint32_t n = tags ? tags->via.array.size : 0;
    if (n > LIMIT_INPUT_TAGS)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "an input has %u tags, more than %d", n, LIMIT_INPUT_TAGS);
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *t = &tags->via.array.ptr[i];
        cairn_str_t k, v;
        if (s_required(t, "key", LIMIT_INPUT_TAG_KEY, &k, err) != 0 ||
            cairn_field_str(t, "value", true, LIMIT_INPUT_TAG_VALUE, &v, err) != 0)
            return storage_err_at(err, "tags", i);
        msgpack_pack_map(&pk, 2);
        cairn_pack_cstr(&pk, "key");
        cairn_pack_strn(&pk, k.ptr, k.len);
        cairn_pack_cstr(&pk, "value");
        cairn_pack_strn(&pk, v.ptr, v.len);
    }
    return 0;
}

static void s_bind_opt(sqlite3_stmt *st, int col, bool has, cairn_str_t v)
{
    if (has)
        sqlite3_bind_text(st, col, v.ptr, (int)v.len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, col);
}

/* The dataset's id in the run's experiment, stored first if new. */
static int s_dataset_id(db_t *db, int64_t experiment_id, const dataset_t *d,
                        int64_t *id, cairn_err_t *err)
{
    sqlite3_stmt *st = db_stmt(db, ST_DATASET_PUT);
    sqlite3_bind_int64(st, 1, experiment_id);
    sqlite3_bind_text(st, 2, d->name.ptr, (int)d->name.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->digest.ptr, (int)d->digest.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->source_type.ptr, (int)d->source_type.len,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 5, d->source.ptr, (int)d->source.len, SQLITE_STATIC);
    s_bind_opt(st, 6, d->has_schema, d->schema);
    s_bind_opt(st, 7, d->has_profile, d->profile);
    if (db_exec_stmt(db, st, err) != 0) return -1;
    st = db_stmt(db, ST_DATASET_ID);
    sqlite3_bind_int64(st, 1, experiment_id);
    sqlite3_bind_text(st, 2, d->name.ptr, (int)d->name.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->digest.ptr, (int)d->digest.len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "a dataset just stored cannot be read back");
    return 0;
}

static int s_log_input(storage_t *s, const run_ref_t *run, const msgpack_object *in,
                       msgpack_sbuffer *tags, cairn_err_t *err)
{
    dataset_t d = {0};
    int64_t id = 0;
    if (in->type != MSGPACK_OBJECT_MAP)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "must be a map {dataset, tags}");
    if (s_parse_dataset(in, &d, err) != 0 || s_pack_tags(in, tags, err) != 0) return -1;
    if (s_dataset_id(s->db, run->experiment_id, &d, &id, err) != 0) return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_INPUT_PUT);
    sqlite3_bind_int64(st, 1, run->rid);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_blob(st, 3, tags->data, (int)tags->size, SQLITE_STATIC);
    return db_exec_stmt(s->db, st, err);
}

/* log_inputs {run_id*, datasets* [{dataset* {name*, digest*, source_type*,
 * source*, schema, profile}, tags [{key, value}]}]} -> {}: all or none. */
int run_log_inputs(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_t *s = state;
    const msgpack_object *b = cairn_body(req), *list;
    run_ref_t run;
    if (storage_req_run(s->db, req, "logging to it", &run, NULL, err) != 0 ||
        cairn_field_array(b, "datasets", true, &list, err) != 0)
        return -1;
    if (list->via.array.size > LIMIT_DATASETS)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "%u datasets in one request, more than %d",
                             list->via.array.size, LIMIT_DATASETS);
    msgpack_sbuffer tags;
    msgpack_sbuffer_init(&tags);
    int rc = db_begin(s->db, err);
    for (uint32_t i = 0; rc == 0 && i < list->via.array.size; i++)
        if (s_log_input(s, &run, &list->via.array.ptr[i], &tags, err) != 0)
            rc = err->st == CAIRN_ST_BAD_REQUEST ? storage_err_at(err, "datasets", i)
                                                 : -1;
    msgpack_sbuffer_destroy(&tags);
    if (rc == 0) rc = db_commit(s->db, err);
    if (rc != 0) {
        db_rollback(s->db);
        return -1;
    }
    if (list->via.array.size) s->any_inputs = 1;
    msgpack_pack_map(storage_reply_begin(s), 0);
    return storage_reply_send(s, req, CAIRN_ST_OK);
}

static void s_pack_opt_text(msgpack_packer *pk, sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        msgpack_pack_nil(pk);
    else
        storage_pack_text(pk, st, col);
}

/* One row of ST_RUN_INPUTS as {tags, dataset}. */
static void s_pack_input_row(msgpack_packer *pk, sqlite3_stmt *st)
{
    static const char *const fields[] = {"name",   "digest", "source_type",
                                         "source", "schema", "profile"};
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "tags");
    /* written by s_pack_tags: a packed array, copied as it is */
    const void *tags = sqlite3_column_blob(st, 6);
    int n = sqlite3_column_bytes(st, 6);
    if (tags && n > 0)
        pk->callback(pk->data, tags, (size_t)n);
    else
        msgpack_pack_array(pk, 0);
    cairn_pack_cstr(pk, "dataset");
    msgpack_pack_map(pk, 6);
    for (int i = 0; i < 6; i++) {
        cairn_pack_cstr(pk, fields[i]);
        s_pack_opt_text(pk, st, i);
    }
}

static bool s_row(sqlite3_stmt *st)
{
    bool row = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return row;
}

bool storage_has_inputs(storage_t *s, int64_t rid)
{
    if (s->any_inputs < 0) s->any_inputs = s_row(db_stmt(s->db, ST_ANY_INPUTS));
    if (!s->any_inputs) return false;
    sqlite3_stmt *st = db_stmt(s->db, ST_RUN_HAS_INPUTS);
    sqlite3_bind_int64(st, 1, rid);
    return s_row(st);
}

void storage_pack_inputs(storage_t *s, msgpack_packer *pk, int64_t rid)
{
    sqlite3_stmt *st = db_stmt(s->db, ST_RUN_INPUTS);
    sqlite3_bind_int64(st, 1, rid);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "dataset_inputs");
    storage_pack_rows(s, pk, st, s_pack_input_row);
}
