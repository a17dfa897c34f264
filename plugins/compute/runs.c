/* Each job's run in tracking (compute.h): made at submit, in the job's
 * workspace (the experiment found by name, made when missing), and kept in
 * step with the job's status. Nested calls: asynchronous, on the loop
 * thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute.h"

#define TRACKING "tracking"
#define TTL_MS 30000

typedef struct make_run {
    inflight_t node; /* first */
    compute_t *c;
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char experiment_name[JOB_TEXT_MAX + 1], run_name[JOB_NAME_MAX + 1];
    char experiment_id[64];
    bool created; /* create_experiment was tried (a race: found it next) */
    job_run_done_fn *done;
    void *arg;
} make_run_t;

static void s_finish(make_run_t *m, const cairn_err_t *err, const char *run_id)
{
    inflight_del(&m->node);
    m->done(m->arg, err, m->experiment_id, run_id);
    free(m);
}

static void s_drop(inflight_t *n)
{
    free(n);
}

/* A failed nested call: 502, unless the service refused for a reason of
 * the caller's (4xx), which is passed on. */
static void s_fail(make_run_t *m, int st, const char *code, const char *msg,
                   const char *doing)
{
    cairn_err_t err = {0};
    cairn_err_set(&err, st >= 400 && st < 500 ? st : CAIRN_ST_BAD_GATEWAY,
                  code && *code ? code : CAIRN_E_BAD_REPLY,
                  "the job's run could not be made: tracking.%s answered %d: %s", doing,
                  st, msg ? msg : "");
    s_finish(m, &err, "");
}

static int s_call(make_run_t *m, const char *verb, msgpack_sbuffer *sb,
                  cairn_result_fn *cb, cairn_err_t *err)
{
    int rc = cairn_call_ws(m->c->ctx, m->ws, TRACKING, verb, sb->data, sb->size, TTL_MS,
                           cb, m, err);
    msgpack_sbuffer_destroy(sb);
    return rc;
}

static void s_packer(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

static void s_run_made(void *arg, int st, const char *code, const char *msg,
                       const msgpack_object *body)
{
    make_run_t *m = arg;
    if (st >= 400) {
        s_fail(m, st, code, msg, "create_run");
        return;
    }
    const msgpack_object *info = cairn_obj_get(cairn_obj_get(body, "run"), "info");
    const msgpack_object *id = cairn_obj_get(info, "run_id");
    if (!id || id->type != MSGPACK_OBJECT_STR || id->via.str.size >= 64) {
        s_fail(m, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY, "no run_id", "create_run");
        return;
    }
    char run_id[64];
    snprintf(run_id, sizeof run_id, "%.*s", (int)id->via.str.size, id->via.str.ptr);
    s_finish(m, NULL, run_id);
}

static void s_make_run(make_run_t *m)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    s_packer(&sb, &pk);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "experiment_id", m->experiment_id);
    cairn_pack_kv_str(&pk, "run_name", m->run_name);
    cairn_pack_cstr(&pk, "start_time");
    msgpack_pack_uint64(&pk, cairn_wall_ms());
    cairn_pack_cstr(&pk, "tags");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "key", "cairn.job");
    cairn_pack_kv_str(&pk, "value", m->run_name);
    cairn_err_t err = {0};
    if (s_call(m, "create_run", &sb, s_run_made, &err) != 0) s_finish(m, &err, "");
}

static void s_find_experiment(make_run_t *m);

static void s_experiment_made(void *arg, int st, const char *code, const char *msg,
                              const msgpack_object *body)
{
    make_run_t *m = arg;
    if (st == CAIRN_ST_CONFLICT) {
        s_find_experiment(m);
        return;
    } /* made meanwhile */
    if (st >= 400) {
        s_fail(m, st, code, msg, "create_experiment");
        return;
    }
    const msgpack_object *id = cairn_obj_get(body, "experiment_id");
    if (!id || id->type != MSGPACK_OBJECT_STR ||
        id->via.str.size >= sizeof m->experiment_id) {
        s_fail(m, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY, "no experiment_id",
               "create_experiment");
        return;
    }
    snprintf(m->experiment_id, sizeof m->experiment_id, "%.*s", (int)id->via.str.size,
             id->via.str.ptr);
    s_make_run(m);
}

static void s_experiment_found(void *arg, int st, const char *code, const char *msg,
                               const msgpack_object *body)
{
    make_run_t *m = arg;
    if (st == CAIRN_ST_NOT_FOUND && !m->created) {
        m->created = true;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        s_packer(&sb, &pk);
        msgpack_pack_map(&pk, 1);
        cairn_pack_kv_str(&pk, "name", m->experiment_name);
        cairn_err_t err = {0};
        if (s_call(m, "create_experiment", &sb, s_experiment_made, &err) != 0)
            s_finish(m, &err, "");
        return;
    }
    if (st >= 400) {
        s_fail(m, st, code, msg, "get_experiment_by_name");
        return;
    }
    const msgpack_object *id =
        cairn_obj_get(cairn_obj_get(body, "experiment"), "experiment_id");
    if (!id || id->type != MSGPACK_OBJECT_STR ||
        id->via.str.size >= sizeof m->experiment_id) {
        s_fail(m, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY, "no experiment_id",
               "get_experiment_by_name");
        return;
    }
    snprintf(m->experiment_id, sizeof m->experiment_id, "%.*s", (int)id->via.str.size,
             id->via.str.ptr);
    s_make_run(m);
}

static void s_find_experiment(make_run_t *m)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    s_packer(&sb, &pk);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "experiment_name", m->experiment_name);
    cairn_err_t err = {0};
    if (s_call(m, "get_experiment_by_name", &sb, s_experiment_found, &err) != 0)
        s_finish(m, &err, "");
}

int job_run_create(compute_t *c, const char *ws, const char *experiment_name,
                   const char *run_name, job_run_done_fn *done, void *arg,
                   cairn_err_t *err)
{
    make_run_t *m = calloc(1, sizeof *m);
    if (!m) return cairn_err_oom(err, NULL);
    *m = (make_run_t){.c = c, .done = done, .arg = arg};
    snprintf(m->ws, sizeof m->ws, "%s", ws);
    snprintf(m->experiment_name, sizeof m->experiment_name, "%s", experiment_name);
    snprintf(m->run_name, sizeof m->run_name, "%s", run_name);
    inflight_add(c, &m->node, s_drop);
    s_find_experiment(m);
    return 0;
}

/* ---- status mirroring ------------------------------------------------------ */

static void s_mirrored(void *arg, int st, const char *code, const char *msg,
                       const msgpack_object *body)
{
    compute_t *c = arg;
    (void)body;
    if (st >= 400)
        cairn_log(c->ctx, CAIRN_LOG_WARN, "a job's run kept its old status: %d %s %s",
                  st, code ? code : "", msg ? msg : "");
}

/* MLflow's run statuses: RUNNING, FINISHED, FAILED, KILLED (SCHEDULED
 * while queued is the run's state from create_run). */
static const char *s_run_status(job_status_t st)
{
    switch (st) {
        case JOB_RUNNING:
            return "RUNNING";
        case JOB_COMPLETED:
            return "FINISHED";
        case JOB_FAILED:
        case JOB_TIMED_OUT:
            return "FAILED";
        case JOB_CANCELED:
            return "KILLED";
        default:
            return NULL;
    }
}

void job_run_mirror(compute_t *c, const job_t *j)
{
    const char *status = s_run_status(j->status);
    if (!status || !j->run_id[0]) return;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    s_packer(&sb, &pk);
    bool done = job_status_done(j->status);
    msgpack_pack_map(&pk, done ? 3 : 2);
    cairn_pack_kv_str(&pk, "run_id", j->run_id);
    cairn_pack_kv_str(&pk, "status", status);
    if (done) {
        cairn_pack_cstr(&pk, "end_time");
        msgpack_pack_int64(&pk, j->ended);
    }
    cairn_err_t err = {0};
    if (cairn_call_ws(c->ctx, j->ws, TRACKING, "update_run", sb.data, sb.size, TTL_MS,
                      s_mirrored, c, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_WARN, "a job's run kept its old status: %s",
                  err.msg);
    msgpack_sbuffer_destroy(&sb);
}
