/* The storage plugin: experiment tracking (role `tracking`) on SQLite, and
 * run artifacts (role `artifacts`, artifacts.c) in a content-addressed store.
 * Verb names and semantics follow MLflow's tracking service; see
 * docs/TRACKING.md for where Cairn differs. */
#define _GNU_SOURCE
#include "storage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

msgpack_packer *storage_reply_begin(storage_t *s)
{
    msgpack_sbuffer_clear(&s->sb);
    return &s->pk;
}

void storage_reply_send(storage_t *s, cairn_req_t *req, int st)
{
    cairn_reply(req, st, s->sb.data, s->sb.size);
}

void storage_pack_text(msgpack_packer *pk, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    cairn_pack_strn(pk, t ? (const char *)t : "",
                    (size_t)sqlite3_column_bytes(st, col));
}

void storage_pack_rows(storage_t *s, msgpack_packer *pk, sqlite3_stmt *st,
                       storage_row_fn *pack_row)
{
    msgpack_sbuffer_clear(&s->rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &s->rows, msgpack_sbuffer_write);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        pack_row(&rp, st);
        n++;
    }
    sqlite3_reset(st);
    msgpack_pack_array(pk, n);
    if (s->rows.size) msgpack_sbuffer_write(pk->data, s->rows.data, s->rows.size);
}

void storage_pack_kv_row(msgpack_packer *pk, sqlite3_stmt *st)
{
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "key");
    storage_pack_text(pk, st, 0);
    cairn_pack_cstr(pk, "value");
    storage_pack_text(pk, st, 1);
}

void storage_pack_kv_rows(storage_t *s, msgpack_packer *pk, sqlite3_stmt *st)
{
    storage_pack_rows(s, pk, st, storage_pack_kv_row);
}

void storage_reply_err(cairn_req_t *req, const cairn_err_t *err)
{
    cairn_reply_err(req, err);
}

int storage_err_at(cairn_err_t *err, const char *what, size_t i)
{
    char msg[sizeof err->msg]; /* err->msg is both source and target */
    snprintf(msg, sizeof msg, "%s", err->msg);
    return cairn_err_set(err, 400, "bad_request", "%s[%zu]: %s", what, i, msg);
}

int storage_reserve_points(storage_t *s, size_t n, cairn_err_t *err)
{
    if (n <= s->pts_cap) return 0;
    size_t cap = s->pts_cap ? s->pts_cap : 1024;
    while (cap < n) cap *= 2;
    metric_point_t *p = realloc(s->pts, cap * sizeof *p);
    if (!p) return cairn_err_set(err, 500, NULL, "out of memory for %zu points", n);
    s->pts = p;
    s->pts_cap = cap;
    return 0;
}

int storage_field_key(const msgpack_object *o, const char *field, cairn_str_t *out,
                      cairn_err_t *err)
{
    if (cairn_field_str(o, field, true, LIMIT_KEY, out, err) != 0) return -1;
    if (out->len == 0)
        return cairn_err_set(err, 400, "bad_request",
                             "the field '%s' must not be empty", field);
    return 0;
}

int storage_parse_id(cairn_str_t s, const char *field, int64_t *out, cairn_err_t *err)
{
    int64_t v = 0;
    if (s.len == 0 || s.len > 18) goto bad;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') goto bad;
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = v;
    return 0;
bad:
    return cairn_err_set(err, 404, "not_found", "no experiment has the %s '%.*s'",
                         field, (int)(s.len > 64 ? 64 : s.len), s.ptr);
}

/* Every tracking verb sees every acknowledged metric point: the journal's
 * pending points are applied before the verb runs (a no-op when none
 * wait). If that fails, the verb answers the failure and the points stay
 * journaled for the next try. log_metric and log_batch requests queued
 * for this thread are served first, so that requests keep their order.
 * log_metric and log_batch are not wrapped: they journal, or drain and
 * apply before they write themselves (logging.c). */
static bool s_applied(storage_t *s, cairn_req_t *req)
{
    storage_journal_drain(s);
    cairn_err_t err = {0};
    if (storage_journal_apply(s, &err) == 0) return true;
    storage_reply_err(req, &err);
    return false;
}

/* create_run joins the write group (group.c) rather than committing it
 * first, as s_applied does for the rest (storage_journal_apply). */
static void run_create_grouped(void *state, cairn_req_t *req)
{
    storage_journal_drain(state);
    cairn_err_t err = {0};
    if (storage_journal_apply_pending(state, &err) != 0)
        return storage_reply_err(req, &err);
    run_create(state, req);
}

#define APPLIED(fn)                                         \
    static void fn##_applied(void *state, cairn_req_t *req) \
    {                                                       \
        if (s_applied(state, req)) fn(state, req);          \
    }
APPLIED(exp_create)
APPLIED(exp_get)
APPLIED(exp_get_by_name)
APPLIED(exp_search)
APPLIED(exp_update)
APPLIED(exp_delete)
APPLIED(exp_restore)
APPLIED(exp_set_tag)
APPLIED(run_update)
APPLIED(run_get)
APPLIED(run_delete)
APPLIED(run_restore)
APPLIED(run_set_tag)
APPLIED(run_delete_tag)
APPLIED(log_param)
APPLIED(run_search)
APPLIED(metric_history)
APPLIED(metric_history_sampled)
#undef APPLIED

static const cairn_verb_t storage_tracking_verbs[] = {
#define R "tracking.read"
#define W "tracking.write"
#define MUT CAIRN_VERB_MUTATING
    {"create_experiment", exp_create_applied, W, MUT, 0,
     "{name*, tags, artifact_location}"},
    {"get_experiment", exp_get_applied, R, 0, 0, "{experiment_id*}"},
    {"get_experiment_by_name", exp_get_by_name_applied, R, 0, 0, "{experiment_name*}"},
    {"search_experiments", exp_search_applied, R, 0, 0,
     "{filter, view_type, max_results, page_token}"},
    {"update_experiment", exp_update_applied, W, MUT, 0, "{experiment_id*, new_name*}"},
    {"delete_experiment", exp_delete_applied, W, MUT, 0, "{experiment_id*}"},
    {"restore_experiment", exp_restore_applied, W, MUT, 0, "{experiment_id*}"},
    {"set_experiment_tag", exp_set_tag_applied, W, MUT, 0,
     "{experiment_id*, key*, value*}"},
    {"create_run", run_create_grouped, W, MUT, 0,
     "{experiment_id*, run_name, start_time, tags, parent_run_id}"},
    {"update_run", run_update_applied, W, MUT, 0,
     "{run_id*, status, end_time, run_name}"},
    {"get_run", run_get_applied, R, 0, 0, "{run_id*}"},
    {"delete_run", run_delete_applied, W, MUT, 0, "{run_id*}"},
    {"restore_run", run_restore_applied, W, MUT, 0, "{run_id*}"},
    {"set_tag", run_set_tag_applied, W, MUT, 0, "{run_id*, key*, value*}"},
    {"delete_tag", run_delete_tag_applied, W, MUT, 0, "{run_id*, key*}"},
    /* INLINE: see log_batch and log_metric (logging.c) */
    {"log_batch", log_batch, W, MUT | CAIRN_VERB_INLINE, 0,
     "{run_id*, metrics, params, tags}"},
    /* INLINE: see log_metric (logging.c) */
    {"log_metric", log_metric, W, MUT | CAIRN_VERB_INLINE, 0,
     "{run_id*, key*, value*, timestamp, step}"},
    {"log_param", log_param_applied, W, MUT, 0, "{run_id*, key*, value*}"},
    {"search_runs", run_search_applied, R, 0, 0,
     "{experiment_ids*, filter, run_view_type, max_results, order_by, page_token}"},
    {"get_metric_history", metric_history_applied, R, 0, 0,
     "{run_id*, key*, max_results, page_token}"},
    {"get_metric_history_sampled", metric_history_sampled_applied, R, 0, 0,
     "{run_id*, keys*, max_points}"},
#undef R
#undef W
#undef MUT
    {NULL, NULL, NULL, 0, 0, NULL},
};

/* A put_artifact body: an 8 MiB chunk plus its fields. */
#define ART_PUT_MAX_BODY ((8u << 20) + (64u << 10))
#define ART_MAX_BODY (64u << 10)

static const cairn_verb_t storage_artifacts_verbs[] = {
    {"put_artifact", art_put, "tracking.write", CAIRN_VERB_MUTATING, ART_PUT_MAX_BODY,
     "{run_id*, path*, data* (bin, <= 8 MiB), offset*, upload_id, done}"},
    {"get_artifact", art_get, "tracking.read", CAIRN_VERB_IDEMPOTENT, ART_MAX_BODY,
     "{run_id*, path*, offset, length (<= 8 MiB)}"},
    {"verify_artifact", art_verify, "tracking.read", CAIRN_VERB_IDEMPOTENT,
     ART_MAX_BODY, "{run_id*, path*}"},
    {"list_artifacts", art_list, "tracking.read", CAIRN_VERB_IDEMPOTENT, ART_MAX_BODY,
     "{run_id*, path, max_results, page_token}"},
    {"delete_artifact", art_delete, "tracking.write", CAIRN_VERB_MUTATING, ART_MAX_BODY,
     "{run_id*, path*}"},
    {"abort_upload", art_abort, "tracking.write", CAIRN_VERB_MUTATING, ART_MAX_BODY,
     "{run_id*, upload_id*}: drop an unfinished upload and free its slot"},
    {NULL, NULL, NULL, 0, 0, NULL},
};

static const cairn_role_t storage_roles[] = {
    {"tracking", storage_tracking_verbs, "experiments, runs, params, metrics, tags"},
    {"artifacts", storage_artifacts_verbs,
     "run artifacts: chunked, content-addressed (BLAKE2b), checksummed"},
    {NULL, NULL, NULL},
};

static const cairn_conf_key_t storage_conf[] = {
    {"db", CAIRN_CONF_PATH, "", "the SQLite file (default: STATE/tracking.db)"},
    {"artifact_root", CAIRN_CONF_PATH, "",
     "where artifacts are stored (default: STATE/artifacts)"},
    {"durability", CAIRN_CONF_STR, "process",
     "process: a 200 survives any crash of Cairn (WAL, synchronous=NORMAL; the "
     "metric journal written before the reply); power: it survives power loss "
     "too (fsync on every commit; journal appends that arrive together share one)"},
    {"upload_idle", CAIRN_CONF_INT, "600",
     "artifacts: seconds an unfinished upload may sit idle before it is dropped "
     "(which frees its slot)"},
    {"uploads_max", CAIRN_CONF_INT, "0",
     "artifacts: unfinished uploads held at once, all clients together (a whole "
     "file in one request holds none); past it a new upload is 429. 0: sized "
     "from memory: a quarter of the machine's (or the cgroup's limit, if lower) "
     "over 9 MiB an upload, at most half the open-file limit, at least 16 (the "
     "start logs the figure)"},
    {"uploads_per_principal", CAIRN_CONF_INT, "0",
     "artifacts: unfinished uploads one principal may hold at once in one "
     "workspace; past it its new upload is 429 (finish or abort_upload one, or "
     "wait for upload_idle). Until auth lands every client is 'local' and the "
     "workspace tells them apart; then it is per user. 0: a quarter of "
     "uploads_max, at least 1"},
    {"io_uring", CAIRN_CONF_BOOL, "true",
     "artifacts: use io_uring for blob I/O where the kernel allows it (else "
     "pread/pwrite)"},
    {NULL, 0, NULL, NULL},
};

static char *s_path_or(cairn_ctx_t *ctx, const char *key, const char *leaf)
{
    const char *v = cairn_conf(ctx, key);
    char *p = NULL;
    if (v && *v) return strdup(v);
    if (asprintf(&p, "%s/%s", cairn_state_dir(ctx), leaf) < 0) return NULL;
    return p;
}

static int storage_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const char *dur = cairn_conf(ctx, "durability");
    if (strcmp(dur, "process") != 0 && strcmp(dur, "power") != 0)
        return cairn_err_set(
            err, 400, "bad_conf",
            "storage: durability must be 'process' or 'power', not '%s'", dur);
    storage_t *s = calloc(1, sizeof *s);
    if (!s) return cairn_err_set(err, 500, NULL, "out of memory");
    s->ctx = ctx;
    msgpack_sbuffer_init(&s->sb);
    msgpack_sbuffer_init(&s->rows);
    msgpack_packer_init(&s->pk, &s->sb, msgpack_sbuffer_write);
    char *db_path = s_path_or(ctx, "db", "tracking.db");
    s->artifact_root = s_path_or(ctx, "artifact_root", "artifacts");
    mkdir(cairn_state_dir(ctx), 0700);
    bool power = strcmp(dur, "power") == 0;
    if (!db_path || !s->artifact_root) {
        cairn_err_set(err, 500, NULL, "out of memory");
    } else {
        s->db = db_open(db_path, power, err);
    }
    const char *role = cairn_role(ctx);
    bool artifacts = role && strcmp(role, "artifacts") == 0;
    /* The artifacts role opens the same database but never the journal:
     * only the tracking instance logs metrics. */
    if (s->db && (artifacts ? artifacts_init(s, err)
                            : storage_journal_open(s, db_path, power, err)) != 0) {
        artifacts_fini(s);
        storage_journal_close(s);
        db_close(&s->db);
    }
    free(db_path);
    /* Under durability=power a journal append is answered only after an
     * fdatasync, which this thread runs once for all the appends that
     * arrived together (logging.c): log_metric and log_batch stay off the
     * kernel's. */
    if (s->db && !artifacts && power) {
        cairn_verb_drop_flags(ctx, "log_metric", CAIRN_VERB_INLINE);
        cairn_verb_drop_flags(ctx, "log_batch", CAIRN_VERB_INLINE);
    }
    if (!s->db) {
        free(s->artifact_root);
        free(s->blob);
        msgpack_sbuffer_destroy(&s->sb);
        msgpack_sbuffer_destroy(&s->rows);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

static void storage_fini(void *state)
{
    storage_t *s = state;
    if (!s) return;
    artifacts_fini(s);
    storage_journal_close(s); /* applies what is pending */
    db_close(&s->db);
    free(s->artifact_root);
    free(s->pts);
    free(s->blob);
    msgpack_sbuffer_destroy(&s->sb);
    msgpack_sbuffer_destroy(&s->rows);
    free(s);
}

static void storage_tick(void *state, uint64_t now_ms)
{
    storage_t *s = state;
    (void)now_ms;
    storage_journal_tick(s);
    db_checkpoint(s->db);
}

static const cairn_plugin_t storage_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "storage",
    .version = "1.0.0",
    .description =
        "experiment tracking on SQLite; artifacts in a content-addressed store",
    .verbs = NULL,
    .conf = storage_conf,
    .init = storage_init,
    .fini = storage_fini,
    .tick = storage_tick,
    .tick_ms = 250,
    .concurrency = 64,
    .roles = storage_roles,
};

CAIRN_PLUGIN_DEFINE(storage_plugin)
