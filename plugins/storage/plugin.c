/* The storage plugin's descriptor: its settings, its two roles' verb
 * tables, and its life cycle. The handlers live one file per concern
 * (experiments.c, runs.c, logging.c, search.c, artifacts.c); the helpers
 * they share are in storage.c, which knows none of them. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "logging.h"
#include "side.h"
#include "storage.h"

/* Every tracking verb sees every acknowledged metric point: the journal's
 * pending points are applied before the verb runs (a no-op when none
 * wait). If that fails, the verb answers the failure and the points stay
 * journaled for the next try. log_metric and log_batch requests queued
 * for this thread are served first, so that requests keep their order.
 * log_metric and log_batch are not wrapped: they journal, or drain and
 * apply before they write themselves (logging.c). */
static int s_applied(storage_t *s, cairn_err_t *err)
{
    storage_journal_drain(s);
    return storage_journal_apply(s, err);
}

/* create_run joins the write group (group.c) rather than committing it
 * first, as s_applied does for the rest (storage_journal_apply). */
static int run_create_grouped(void *state, cairn_req_t *req, cairn_err_t *err)
{
    storage_journal_drain(state);
    if (storage_journal_apply_pending(state, err) != 0) return -1;
    return run_create(state, req, err);
}

#define APPLIED(fn)                                                          \
    static int fn##_applied(void *state, cairn_req_t *req, cairn_err_t *err) \
    {                                                                        \
        return s_applied(state, err) != 0 ? -1 : fn(state, req, err);        \
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
APPLIED(run_log_inputs)
APPLIED(run_log_model)
APPLIED(exp_delete_tag)
APPLIED(log_param)
APPLIED(run_search)
APPLIED(metric_history)
APPLIED(metric_history_sampled)
#undef APPLIED

static const cairn_verb_t storage_tracking_verbs[] = {
#define R "tracking.read"
#define W "tracking.write"
#define MUT CAIRN_VERB_MUTATING
    {.name = "create_experiment",
     .handle = exp_create_applied,
     .perm = W,
     .flags = MUT,
     .help = "{name*, tags, artifact_location}"},
    {.name = "get_experiment",
     .handle = exp_get_applied,
     .perm = R,
     .help = "{experiment_id*}"},
    {.name = "get_experiment_by_name",
     .handle = exp_get_by_name_applied,
     .perm = R,
     .help = "{experiment_name*}"},
    {.name = "search_experiments",
     .handle = exp_search_applied,
     .perm = R,
     .help = "{filter, view_type, max_results, page_token}"},
    {.name = "update_experiment",
     .handle = exp_update_applied,
     .perm = W,
     .flags = MUT,
     .help = "{experiment_id*, new_name*}"},
    {.name = "delete_experiment",
     .handle = exp_delete_applied,
     .perm = W,
     .flags = MUT,
     .help = "{experiment_id*}"},
    {.name = "restore_experiment",
     .handle = exp_restore_applied,
     .perm = W,
     .flags = MUT,
     .help = "{experiment_id*}"},
    {.name = "set_experiment_tag",
     .handle = exp_set_tag_applied,
     .perm = W,
     .flags = MUT,
     .help = "{experiment_id*, key*, value*}"},
    {.name = "delete_experiment_tag",
     .handle = exp_delete_tag_applied,
     .perm = W,
     .flags = MUT,
     .help = "{experiment_id*, key*}"},
    {.name = "create_run",
     .handle = run_create_grouped,
     .perm = W,
     .flags = MUT,
     .help = "{experiment_id*, run_name, start_time, tags, parent_run_id}"},
    {.name = "update_run",
     .handle = run_update_applied,
     .perm = W,
     .flags = MUT,
     .help = "{run_id*, status, end_time, run_name}"},
    {.name = "get_run", .handle = run_get_applied, .perm = R, .help = "{run_id*}"},
    {.name = "delete_run",
     .handle = run_delete_applied,
     .perm = W,
     .flags = MUT,
     .help = "{run_id*}"},
    {.name = "restore_run",
     .handle = run_restore_applied,
     .perm = W,
     .flags = MUT,
     .help = "{run_id*}"},
    {.name = "set_tag",
     .handle = run_set_tag_applied,
     .perm = W,
     .flags = MUT,
     .help = "{run_id*, key*, value*}"},
    {.name = "delete_tag",
     .handle = run_delete_tag_applied,
     .perm = W,
     .flags = MUT,
     .help = "{run_id*, key*}"},
    /* INLINE: see log_batch and log_metric (logging.c) */
    {.name = "log_batch",
     .handle = log_batch,
     .perm = W,
     .flags = MUT | CAIRN_VERB_INLINE,
     .help = "{run_id*, metrics, params, tags}"},
    /* INLINE: see log_metric (logging.c) */
    {.name = "log_metric",
     .handle = log_metric,
     .perm = W,
     .flags = MUT | CAIRN_VERB_INLINE,
     .help = "{run_id*, key*, value*, timestamp, step}"},
    {.name = "log_param",
     .handle = log_param_applied,
     .perm = W,
     .flags = MUT,
     .help = "{run_id*, key*, value*}"},
    {.name = "search_runs",
     .handle = run_search_applied,
     .perm = R,
     .help =
         "{experiment_ids*, filter, run_view_type, max_results, order_by, page_token}"},
    {.name = "log_inputs",
     .handle = run_log_inputs_applied,
     .perm = W,
     .flags = MUT,
     .help = "{run_id*, datasets* [{dataset* {name*, digest*, source_type*, source*, "
             "schema, profile}, tags}]}: MLflow's datasets (<= 1000)"},
    {.name = "log_model",
     .handle = run_log_model_applied,
     .perm = W,
     .flags = MUT,
     .help = "{run_id*, model_json* (<= 256 KiB)}: MLflow's runs/log-model, appended "
             "to the tag mlflow.log-model.history"},
    {.name = "get_metric_history",
     .handle = metric_history_applied,
     .perm = R,
     .help = "{run_id*, key*, max_results, page_token}"},
    {.name = "stats",
     .handle = tracking_stats,
     .perm = R,
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "{} -> counters {points_ingested (since start)}"},
    {.name = "get_metric_history_sampled",
     .handle = metric_history_sampled_applied,
     .perm = R,
     .help = "{run_id*, keys*, max_points}"},
#undef R
#undef W
#undef MUT
    {.name = NULL},
};

/* A put_artifact body: an 8 MiB chunk plus its fields. */
#define ART_PUT_MAX_BODY ((8u << 20) + (64u << 10))
#define ART_MAX_BODY (64u << 10)
/* A materialize_pinned body: up to 100,000 files, each a path and a hash. */
#define ART_VIEW_MAX_BODY (32u << 20)
/* A complete_multipart body: up to 10,000 parts, each a number and an etag. */
#define ART_MPU_MAX_BODY (2u << 20)

static const cairn_verb_t storage_artifacts_verbs[] = {
    {.name = "put_artifact",
     .handle = art_put,
     .perm = "tracking.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_PUT_MAX_BODY,
     .help = "{run_id*, path*, data* (bin, <= 8 MiB), offset*, upload_id, done}"},
    {.name = "get_artifact",
     .handle = art_get,
     .perm = "tracking.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = ART_MAX_BODY,
     .help = "{run_id*, path*, offset, length (<= 8 MiB)}"},
    {.name = "verify_artifact",
     .handle = art_verify,
     .perm = "tracking.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = ART_MAX_BODY,
     .help = "{run_id*, path*}"},
    {.name = "list_artifacts",
     .handle = art_list,
     .perm = "tracking.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = ART_MAX_BODY,
     .help = "{run_id*, path, max_results, page_token}"},
    {.name = "delete_artifact",
     .handle = art_delete,
     .perm = "tracking.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_MAX_BODY,
     .help = "{run_id*, path*}"},
    {.name = "pin_artifacts",
     .handle = art_pin,
     .perm = "tracking.admin",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_MAX_BODY,
     .help = "{run_id*, path*, owner*} -> files [{path, size, hash, hash_alg}], "
             "total_size: keeps the blobs for owner (the registry's model versions)"},
    {.name = "unpin_artifacts",
     .handle = art_unpin,
     .perm = "tracking.admin",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_MAX_BODY,
     .help = "{owner*} -> unpinned, freed"},
    {.name = "read_pinned",
     .handle = art_read_pinned,
     .perm = "tracking.admin",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = ART_MAX_BODY,
     .help = "{owner*, hash*, hash_alg*, offset, length (<= 8 MiB)} -> data, size, "
             "offset: a range of a blob owner pins"},
    {.name = "sniff_pinned",
     .handle = art_sniff_pinned,
     .perm = "tracking.admin",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = ART_MAX_BODY,
     .help = "{owner*, hash*, hash_alg*} -> rows, columns [{name, type, nullable}], "
             "delimiter, header: a pinned blob read as a CSV table"},
    {.name = "materialize_pinned",
     .handle = art_materialize_pinned,
     .perm = "tracking.admin",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = ART_VIEW_MAX_BODY,
     .help = "{owner*, files* [{path, hash, hash_alg}] (<= 100000)} -> path: a "
             "read-only directory of owner's pinned blobs, hard-linked"},
    {.name = "abort_upload",
     .handle = art_abort,
     .perm = "tracking.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_MAX_BODY,
     .help = "{run_id*, upload_id*}: drop an unfinished upload and free its slot"},
    {.name = "create_multipart",
     .handle = art_mpu_create,
     .perm = "tracking.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_MAX_BODY,
     .help = "{run_id*, path*, num_parts* (<= 10000)} -> upload_id: a file sent as "
             "parts, in any order (multipart.c)"},
    {.name = "upload_part",
     .handle = art_mpu_part,
     .perm = "tracking.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_PUT_MAX_BODY,
     .help =
         "{upload_id*, part_number*, offset*, data* (bin, <= 8 MiB), part_id, done, "
         "cancel} -> part_id, offset; at done part_number, etag, size"},
    {.name = "complete_multipart",
     .handle = art_mpu_complete,
     .perm = "tracking.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_MPU_MAX_BODY,
     .help = "{run_id*, upload_id*, parts* [{part_number, etag}], path} -> done, "
             "artifact (done false: composed, size; ask again)"},
    {.name = "abort_multipart",
     .handle = art_mpu_abort,
     .perm = "tracking.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = ART_MAX_BODY,
     .help = "{run_id*, upload_id*}: drop a multipart upload and its parts"},
    {.name = NULL},
};

static const cairn_role_t storage_roles[] = {
    {.name = "tracking",
     .verbs = storage_tracking_verbs,
     .help = "experiments, runs, params, metrics, tags"},
    {.name = "artifacts",
     .verbs = storage_artifacts_verbs,
     .help = "run artifacts: chunked, content-addressed (SHA-256), checksummed"},
    {.name = NULL},
};

#define AT(field) offsetof(storage_settings_t, field)
static const char *const storage_durabilities[] = {"process", "power", NULL};

static const cairn_setting_t storage_settings[] = {
    {.key = "db",
     .type = CAIRN_CONF_PATH,
     .offset = AT(db),
     .dflt = "",
     .help = "the SQLite file (default: STATE/tracking.db)"},
    {.key = "artifact_root",
     .type = CAIRN_CONF_PATH,
     .offset = AT(artifact_root),
     .dflt = "",
     .help = "where artifacts are stored (default: STATE/artifacts)"},
    {.key = "durability",
     .type = CAIRN_CONF_ENUM,
     .offset = AT(durability),
     .dflt = "process",
     .choices = storage_durabilities,
     .help = "process: a 200 survives any crash of Cairn (WAL, synchronous=NORMAL; the "
             "metric journal written before the reply); power: it survives power loss "
             "too (fsync on every commit; journal appends that arrive together share "
             "one)"},
    {.key = "upload_idle",
     .type = CAIRN_CONF_INT,
     .offset = AT(upload_idle),
     .dflt = "600",
     .min = 1,
     .max = 7 * 86400,
     .help = "artifacts: seconds an unfinished upload may sit idle before it is "
             "dropped (which frees its slot)"},
    {.key = "uploads_max",
     .type = CAIRN_CONF_INT,
     .offset = AT(uploads_max),
     .dflt = "0",
     .min = 0,
     .max = 1 << 20,
     .help = "artifacts: unfinished uploads held at once, all clients together (a "
             "whole file in one request holds none); past it a new upload is 429. 0: "
             "sized from memory: a quarter of the machine's (or the cgroup's limit, if "
             "lower) over 9 MiB an upload, at most half the open-file limit, at least "
             "16 (the start logs the figure)"},
    {.key = "uploads_per_principal",
     .type = CAIRN_CONF_INT,
     .offset = AT(uploads_per_principal),
     .dflt = "0",
     .min = 0,
     .max = 1 << 20,
     .help = "artifacts: unfinished uploads one principal may hold at once in one "
             "workspace; past it its new upload is 429 (finish or abort_upload one, or "
             "wait for upload_idle). Until auth lands every client is 'local' and the "
             "workspace tells them apart; then it is per user. 0: a quarter of "
             "uploads_max, at least 1"},
    {.key = "parallel_reads",
     .type = CAIRN_CONF_BOOL,
     .offset = AT(parallel_reads),
     .dflt = "true",
     .help = "tracking: a search's rid sets and a big page's parts are read on a "
             "second, read-only connection and thread too, in parallel"},
    {.key = "metrics_event_ms",
     .type = CAIRN_CONF_INT,
     .offset = AT(metrics_event_ms),
     .dflt = "500",
     .min = 0,
     .max = 3600000,
     .help = "tracking: the run.metrics event (the keys, step and time a run logged, "
             "for live charts) is published at most this often a run, in ms; 0: never"},
    {.key = "io_uring",
     .type = CAIRN_CONF_BOOL,
     .offset = AT(io_uring),
     .dflt = "true",
     .help = "artifacts: use io_uring for blob I/O where the kernel allows it (else "
             "pread/pwrite)"},
    {.key = "multipart_idle",
     .type = CAIRN_CONF_INT,
     .offset = AT(multipart_idle),
     .dflt = "86400",
     .min = 1,
     .max = 30 * 86400,
     .help = "artifacts: seconds a multipart upload (its finished parts) may sit idle "
             "before it is dropped whole"},
    {.key = NULL},
};
#undef AT

static char *s_path_or(cairn_ctx_t *ctx, const char *set, const char *leaf)
{
    char *p = NULL;
    if (set && *set) return strdup(set);
    if (asprintf(&p, "%s/%s", cairn_state_dir(ctx), leaf) < 0) return NULL;
    return p;
}

struct side *storage_side(storage_t *s)
{
    if (s->side || s->side_failed || !s->set->parallel_reads) return s->side;
    cairn_err_t err = {0};
    if (!(s->side = side_open(db_path(s->db), db_ridsets(s->db), &err))) {
        s->side_failed = true;
        cairn_log(s->ctx, CAIRN_LOG_WARN, "storage: searches read on one thread: %s",
                  err.msg);
    }
    return s->side;
}

static int storage_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const storage_settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
                             "storage: this host predates typed settings");
    storage_t *s = calloc(1, sizeof *s);
    if (!s) return cairn_err_oom(err, NULL);
    s->any_inputs = -1; /* looked up at the first run packed */
    s->ctx = ctx;
    s->set = set;
    msgpack_sbuffer_init(&s->sb);
    msgpack_sbuffer_init(&s->rows);
    msgpack_packer_init(&s->pk, &s->sb, msgpack_sbuffer_write);
    char *db_path = s_path_or(ctx, set->db, "tracking.db");
    s->artifact_root = s_path_or(ctx, set->artifact_root, "artifacts");
    mkdir(cairn_state_dir(ctx), 0700);
    bool power = set->durability == STORAGE_DURABILITY_POWER;
    if (!db_path || !s->artifact_root) {
        cairn_err_oom(err, NULL);
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
     * arrived together (mjournal.c): log_metric and log_batch stay off the
     * kernel's. */
    if (s->db && !artifacts &&
        live_open(s, (uint32_t)set->metrics_event_ms, err) != 0) {
        live_close(s);
        storage_journal_close(s);
        db_close(&s->db);
    }
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
    live_close(s);
    storage_journal_close(s); /* applies what is pending */
    side_close(&s->side);
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
    cairn_err_t err = {0};
    if (db_fold_tick(s->db, &err) < 0 && !s->fold_failing) {
        cairn_log(s->ctx, CAIRN_LOG_ERROR,
                  "storage: cannot fold metric values into their index (search "
                  "still sees them; retried every tick): %s",
                  err.msg);
        s->fold_failing = true;
    }
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
    .settings = storage_settings,
    .settings_size = sizeof(storage_settings_t),
    .init = storage_init,
    .fini = storage_fini,
    .tick = storage_tick,
    .tick_ms = 250,
    .concurrency = 64,
    .roles = storage_roles,
};

CAIRN_PLUGIN_DEFINE(storage_plugin)
