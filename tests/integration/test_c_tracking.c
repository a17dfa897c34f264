/* test_c_tracking — the C SDK's tracking API (cairn/tracking.h) against a
 * private cairnd with the storage plugin (inproc): every function, the
 * server's errors (404 unknown run, 409 param conflict, 400 bad status),
 * batches refused locally (over the limits, bad keys and values), the
 * encoder's integer and string forms round-tripped through
 * get_metric_history, and a pipelined window of 8 batches × 10,000 points
 * whose every point is then found in the history; artifacts: a ~10 MiB
 * round trip through cairn_log_artifact / cairn_download_artifact with
 * progress, a missing local file, an unknown path (404) leaving nothing
 * behind. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/cairn.h"
#include "harness.h"

#define TRACKING_SERVICES                                  \
    "  tracking:\n    plugin: storage\n    mode: inproc\n" \
    "  artifacts:\n    plugin: storage\n    mode: inproc\n"

/* ---- helpers --------------------------------------------------------------------- */

static bool s_is(const msgpack_object *o, const char *s)
{
    return cairn_obj_is_str(o, s);
}

static int64_t s_int(const msgpack_object *o)
{
    if (!o) return INT64_MIN;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (int64_t)o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return o->via.i64;
    return INT64_MIN;
}

static double s_num(const msgpack_object *o)
{
    if (!o) return -12345.678;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        return o->via.f64;
    return (double)s_int(o);
}

/* The value of {key, value} entry `key` in a list, or NULL. */
static const msgpack_object *s_kv(const msgpack_object *list, const char *key)
{
    if (!list || list->type != MSGPACK_OBJECT_ARRAY) return NULL;
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *e = &list->via.array.ptr[i];
        if (s_is(cairn_obj_get(e, "key"), key)) return cairn_obj_get(e, "value");
    }
    return NULL;
}

/* A call with a {run_id: id} (+ more) body; the reply or NULL. */
static cairn_reply_t *s_get_run(cairn_client_t *c, const char *run_id, cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "run_id", run_id);
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, "tracking", "get_run", sb.data, sb.size, 0, &r, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) cairn_reply_destroy(&r);
    return r;
}

static const msgpack_object *s_run_field(cairn_reply_t *r, const char *part,
                                         const char *f)
{
    return cairn_obj_get(
        cairn_obj_get(cairn_obj_get(cairn_reply_object(r), "run"), part), f);
}

static cairn_reply_t *s_history(cairn_client_t *c, const char *run_id, const char *key,
                                cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cairn_pack_kv_str(&pk, "run_id", run_id);
    cairn_pack_kv_str(&pk, "key", key);
    cairn_pack_cstr(&pk, "max_results");
    msgpack_pack_uint32(&pk, 100000);
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, "tracking", "get_metric_history", sb.data, sb.size, 0,
                               &r, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) cairn_reply_destroy(&r);
    return r;
}

/* The metrics array of a history reply (NULL when not an array). */
static const msgpack_object *s_points(cairn_reply_t *r)
{
    const msgpack_object *m =
        r ? cairn_obj_get(cairn_reply_object(r), "metrics") : NULL;
    return m && m->type == MSGPACK_OBJECT_ARRAY ? m : NULL;
}

static size_t s_history_count(cairn_client_t *c, const char *run_id, const char *key)
{
    cairn_err_t err = {0};
    cairn_reply_t *r = s_history(c, run_id, key, &err);
    const msgpack_object *m = s_points(r);
    size_t n = m ? m->via.array.size : (size_t)-1;
    cairn_reply_destroy(&r);
    return n;
}

/* Nothing is waiting on the socket (a refused batch sent nothing). */
static bool s_nothing_pending(cairn_client_t *c)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    int rc = cairn_client_recv(c, 200, &r, &err);
    cairn_reply_destroy(&r);
    return rc != 0 && err.st == 504;
}

/* ---- experiments ----------------------------------------------------------------- */

static char *test_experiments(cairn_client_t *c)
{
    cairn_err_t err = {0};
    char *id = NULL, *id2 = NULL, *id3 = NULL;
    int rc = cairn_create_experiment(c, "c-tracking", &id, &err);
    CHECK(rc == 0 && id && *id, "create_experiment: %d %s", err.st, err.msg);
    CHECK(id && strcmp(id, "0") != 0, "a new experiment got the Default id");

    rc = cairn_create_experiment(c, "c-tracking", &id2, &err);
    CHECK(rc == -1 && err.st == 409 && !strcmp(err.code, "conflict") && !id2,
          "a second create_experiment with the same name: rc %d st %d %s", rc, err.st,
          err.code);

    rc = cairn_get_experiment_id(c, "c-tracking", false, &id2, &err);
    CHECK(rc == 0 && id && id2 && !strcmp(id, id2),
          "get_experiment_id: %d %s (%s vs %s)", err.st, err.msg, id ? id : "-",
          id2 ? id2 : "-");
    free(id2);
    id2 = NULL;

    rc = cairn_get_experiment_id(c, "no-such-experiment", false, &id2, &err);
    CHECK(rc == -1 && err.st == 404 && !id2,
          "get_experiment_id of a missing name: %d %d", rc, err.st);

    rc = cairn_get_experiment_id(c, "made-on-demand", true, &id2, &err);
    CHECK(rc == 0 && id2, "get_experiment_id(create_if_missing): %d %s", err.st,
          err.msg);
    rc = cairn_get_experiment_id(c, "made-on-demand", true, &id3, &err);
    CHECK(rc == 0 && id2 && id3 && !strcmp(id2, id3),
          "get_experiment_id(create_if_missing) twice gave two ids");
    CHECK(id2 && id && strcmp(id2, id) != 0, "two experiments share an id");
    free(id2);
    free(id3);

    rc = cairn_get_experiment_id(c, "Default", false, &id2, &err);
    CHECK(rc == 0 && id2 && !strcmp(id2, "0"), "the Default experiment's id is not 0");
    free(id2);

    /* Local refusals: nothing NULL or empty reaches the server. */
    id2 = NULL;
    CHECK(cairn_create_experiment(c, "", &id2, &err) == -1 && err.st == 400,
          "an empty experiment name was not refused");
    CHECK(cairn_create_experiment(c, NULL, &id2, &err) == -1 && err.st == 400,
          "a NULL experiment name was not refused");
    CHECK(cairn_create_experiment(NULL, "x", &id2, &err) == -1 && err.st == 400,
          "a NULL client was not refused");
    return id;
}

/* ---- runs and single entries ----------------------------------------------------- */

static char *test_runs(cairn_client_t *c, const char *exp)
{
    cairn_err_t err = {0};
    char *run = NULL, *child = NULL, *unnamed = NULL, *bad = NULL;
    int rc = cairn_create_run(c, exp, "first", NULL, &run, &err);
    CHECK(rc == 0 && run && strlen(run) >= 16, "create_run: %d %s", err.st, err.msg);
    if (!run) return NULL;

    cairn_reply_t *r = s_get_run(c, run, &err);
    CHECK(r != NULL, "get_run: %d %s", err.st, err.msg);
    if (r) {
        CHECK(s_is(s_run_field(r, "info", "run_name"), "first"),
              "the run name is not kept");
        CHECK(s_is(s_run_field(r, "info", "status"), "RUNNING"),
              "a new run is not RUNNING");
        CHECK(s_is(s_run_field(r, "info", "experiment_id"), exp),
              "the run is not in its experiment");
        CHECK(!s_run_field(r, "info", "parent_run_id"), "a top-level run has a parent");
    }
    cairn_reply_destroy(&r);

    rc = cairn_create_run(c, exp, NULL, run, &child, &err);
    CHECK(rc == 0 && child, "create_run (nested, unnamed): %d %s", err.st, err.msg);
    r = child ? s_get_run(c, child, &err) : NULL;
    if (r) {
        CHECK(s_is(s_run_field(r, "info", "parent_run_id"), run),
              "the nested run does not name its parent");
        const msgpack_object *name = s_run_field(r, "info", "run_name");
        CHECK(name && name->type == MSGPACK_OBJECT_STR && name->via.str.size > 0,
              "an unnamed run got no name from the server");
        CHECK(s_is(s_kv(s_run_field(r, "data", "tags"), "mlflow.parentRunId"), run),
              "the nested run lacks the mlflow.parentRunId tag");
    }
    cairn_reply_destroy(&r);

    rc = cairn_create_run(c, exp, NULL, "0123456789abcdef0123456789abcdef", &unnamed,
                          &err);
    CHECK(rc == -1 && err.st == 404 && !unnamed,
          "create_run under a missing parent: %d %d", rc, err.st);
    rc = cairn_create_run(c, "999999", "x", NULL, &bad, &err);
    CHECK(rc == -1 && err.st == 404 && !bad,
          "create_run in a missing experiment: %d %d", rc, err.st);

    /* log_metric, explicit timestamp, then "now". */
    rc = cairn_log_metric(c, run, "loss", 0.25, 3, 1234567, &err);
    CHECK(rc == 0, "log_metric: %d %s", err.st, err.msg);
    uint64_t before = cairn_wall_ms();
    rc = cairn_log_metric(c, run, "loss", 0.125, 4, 0, &err);
    CHECK(rc == 0, "log_metric (timestamp now): %d %s", err.st, err.msg);
    r = s_history(c, run, "loss", &err);
    const msgpack_object *pts = s_points(r);
    CHECK(pts && pts->via.array.size == 2, "loss history has %d points, not 2",
          pts ? (int)pts->via.array.size : -1);
    if (pts && pts->via.array.size == 2) {
        const msgpack_object *p0 = &pts->via.array.ptr[0], *p1 = &pts->via.array.ptr[1];
        CHECK(s_num(cairn_obj_get(p0, "value")) == 0.25 &&
                  s_int(cairn_obj_get(p0, "step")) == 3 &&
                  s_int(cairn_obj_get(p0, "timestamp")) == 1234567,
              "the first loss point is not (0.25, step 3, ts 1234567)");
        int64_t ts = s_int(cairn_obj_get(p1, "timestamp"));
        CHECK(s_num(cairn_obj_get(p1, "value")) == 0.125 &&
                  ts >= (int64_t)before - 1000 && ts <= (int64_t)cairn_wall_ms() + 1000,
              "timestamp 0 was not 'now' (got %lld)", (long long)ts);
    }
    cairn_reply_destroy(&r);

    rc = cairn_log_metric(c, "0123456789abcdef0123456789abcdef", "loss", 1, 0, 0, &err);
    CHECK(rc == -1 && err.st == 404 && !strcmp(err.code, "not_found"),
          "log_metric to an unknown run: %d %d %s", rc, err.st, err.code);
    rc = cairn_log_metric(c, run, "", 1, 0, 0, &err);
    CHECK(rc == -1 && err.st == 400, "an empty metric key was not refused");

    /* Params: write-once. */
    rc = cairn_log_param(c, run, "lr", "0.01", &err);
    CHECK(rc == 0, "log_param: %d %s", err.st, err.msg);
    rc = cairn_log_param(c, run, "lr", "0.01", &err);
    CHECK(rc == 0, "log_param with the same value again: %d %s", err.st, err.msg);
    rc = cairn_log_param(c, run, "lr", "0.02", &err);
    CHECK(rc == -1 && err.st == 409 && !strcmp(err.code, "conflict"),
          "log_param with another value: %d %d %s", rc, err.st, err.code);
    CHECK(strstr(err.msg, "lr") != NULL, "the conflict does not name the param: %s",
          err.msg);
    rc = cairn_log_param(c, "0123456789abcdef0123456789abcdef", "lr", "1", &err);
    CHECK(rc == -1 && err.st == 404, "log_param to an unknown run: %d %d", rc, err.st);
    char big[CAIRN_MAX_PARAM_VALUE + 2];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rc = cairn_log_param(c, run, "big", big, &err);
    CHECK(rc == -1 && err.st == 400 && strstr(err.msg, "6000"),
          "a 6001-byte param value was not refused locally: %d %s", err.st, err.msg);

    /* Tags overwrite. */
    rc = cairn_set_tag(c, run, "team", "vision", &err);
    CHECK(rc == 0, "set_tag: %d %s", err.st, err.msg);
    rc = cairn_set_tag(c, run, "team", "speech", &err);
    CHECK(rc == 0, "set_tag (overwrite): %d %s", err.st, err.msg);
    rc = cairn_set_tag(c, "0123456789abcdef0123456789abcdef", "team", "x", &err);
    CHECK(rc == -1 && err.st == 404, "set_tag on an unknown run: %d %d", rc, err.st);

    r = s_get_run(c, run, &err);
    if (r) {
        CHECK(s_is(s_kv(s_run_field(r, "data", "params"), "lr"), "0.01"),
              "get_run lacks the param lr = 0.01");
        CHECK(s_is(s_kv(s_run_field(r, "data", "tags"), "team"), "speech"),
              "the tag was not overwritten");
        CHECK(s_num(s_kv(s_run_field(r, "data", "metrics"), "loss")) == 0.125,
              "get_run's latest loss is not the step-4 point");
    }
    cairn_reply_destroy(&r);

    /* end_run: FINISHED by default, another status when given, 400 when bad. */
    rc = cairn_end_run(c, child, NULL, &err);
    CHECK(rc == 0, "end_run: %d %s", err.st, err.msg);
    r = child ? s_get_run(c, child, &err) : NULL;
    if (r) {
        CHECK(s_is(s_run_field(r, "info", "status"), "FINISHED"),
              "end_run(NULL) did not finish the run");
        CHECK(s_int(s_run_field(r, "info", "end_time")) > 0, "end_run set no end_time");
    }
    cairn_reply_destroy(&r);
    rc = cairn_end_run(c, child, "KILLED", &err);
    CHECK(rc == 0, "end_run(KILLED): %d %s", err.st, err.msg);
    r = child ? s_get_run(c, child, &err) : NULL;
    if (r)
        CHECK(s_is(s_run_field(r, "info", "status"), "KILLED"),
              "the status is not KILLED");
    cairn_reply_destroy(&r);
    rc = cairn_end_run(c, child, "EXPLODED", &err);
    CHECK(rc == -1 && err.st == 400, "end_run with a bad status: %d %d", rc, err.st);
    rc = cairn_end_run(c, "0123456789abcdef0123456789abcdef", NULL, &err);
    CHECK(rc == -1 && err.st == 404, "end_run of an unknown run: %d %d", rc, err.st);
    free(child);
    return run;
}

/* ---- batches --------------------------------------------------------------------- */

/* The run's experiment is the one named name. */
static void s_check_run_in(cairn_client_t *c, const char *run, const char *name)
{
    cairn_err_t err = {0};
    char *exp = NULL;
    cairn_reply_t *r = s_get_run(c, run, &err);
    CHECK(r != NULL, "get_run: %d %s", err.st, err.msg);
    CHECK(cairn_get_experiment_id(c, name, false, &exp, &err) == 0,
          "experiment '%s' was not created: %s", name, err.msg);
    if (r && exp)
        CHECK(s_is(s_run_field(r, "info", "experiment_id"), exp),
              "the run is not in experiment '%s'", name);
    cairn_reply_destroy(&r);
    free(exp);
}

/* cairn_start_run: a new run in a named (or $CAIRN_EXPERIMENT_NAME's, or
 * Default) experiment, created once; inside a job $CAIRN_RUN_ID's run,
 * which must exist. */
static void test_start_run(cairn_client_t *c)
{
    cairn_err_t err = {0};
    char *a = NULL, *b = NULL, *d = NULL, *job = NULL, *bad = NULL;
    bool attached = true;
    unsetenv("CAIRN_RUN_ID");
    unsetenv("CAIRN_EXPERIMENT_NAME");
    CHECK(cairn_start_run(c, "c-start", "one", &a, &attached, &err) == 0,
          "start_run: %d %s", err.st, err.msg);
    CHECK(!attached, "a new run reads as attached");
    CHECK(cairn_start_run(c, "c-start", NULL, &b, NULL, &err) == 0,
          "start_run again: %d %s", err.st, err.msg);
    if (a && b) {
        CHECK(strcmp(a, b) != 0, "two start_run calls gave one run");
        s_check_run_in(c, a, "c-start");
        s_check_run_in(c, b, "c-start");
    }
    setenv("CAIRN_EXPERIMENT_NAME", "c-start-env", 1);
    CHECK(cairn_start_run(c, NULL, NULL, &d, NULL, &err) == 0,
          "start_run from $CAIRN_EXPERIMENT_NAME: %d %s", err.st, err.msg);
    if (d) s_check_run_in(c, d, "c-start-env");
    unsetenv("CAIRN_EXPERIMENT_NAME");
    if (a) {
        setenv("CAIRN_RUN_ID", a, 1);
        CHECK(cairn_start_run(c, "ignored", NULL, &job, &attached, &err) == 0,
              "start_run in a job: %d %s", err.st, err.msg);
        CHECK(job && !strcmp(job, a) && attached, "the job's run was not attached to");
        char *none = NULL;
        CHECK(cairn_get_experiment_id(c, "ignored", false, &none, &err) != 0,
              "an experiment was created for a job's run");
        free(none);
    }
    setenv("CAIRN_RUN_ID", "0000000000000000000000000000dead", 1);
    CHECK(cairn_start_run(c, NULL, NULL, &bad, &attached, &err) == -1 && !bad,
          "a job's run that does not exist was attached to");
    CHECK(err.st == 404 && strstr(err.msg, "$CAIRN_RUN_ID"), "a missing job run: %d %s",
          err.st, err.msg);
    unsetenv("CAIRN_RUN_ID");
    free(a);
    free(b);
    free(d);
    free(job);
}

static void test_batch_basics(cairn_client_t *c, const char *exp)
{
    cairn_err_t err = {0};
    char *run = NULL, *run2 = NULL;
    if (cairn_create_run(c, exp, "batches", NULL, &run, &err) != 0 ||
        cairn_create_run(c, exp, "batches-2", NULL, &run2, &err) != 0) {
        CHECK(false, "create_run: %s", err.msg);
        free(run);
        return;
    }
    CHECK(cairn_batch_new(NULL) == NULL, "a batch without a run id was made");
    CHECK(cairn_batch_new("") == NULL, "a batch with an empty run id was made");
    char longid[CAIRN_MAX_RUN_ID + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    CHECK(cairn_batch_new(longid) == NULL, "a batch with a 65-byte run id was made");

    cairn_batch_t *b = cairn_batch_new(run);
    CHECK(b != NULL, "cairn_batch_new");
    if (!b) goto out;
    CHECK(cairn_batch_size(b) == 0 && cairn_batch_error(b) == NULL,
          "a new batch is not empty");
    uint64_t id = 99;
    CHECK(cairn_batch_send(c, b, &err) == 0, "sending an empty batch failed");
    CHECK(cairn_batch_send_async(c, b, &id, &err) == 0 && id == 0,
          "an empty async send did not answer 0 with id 0");
    CHECK(s_nothing_pending(c), "an empty batch sent something");

    /* Mixed: metrics, params, tags; 20 params and 20 tags (array16 headers). */
    for (int i = 0; i < 10; i++)
        CHECK(cairn_batch_metric(b, "acc", 0.5 + i / 100.0, i, 1000 + i) == 0,
              "batch_metric");
    CHECK(cairn_batch_metric(b, "nan", NAN, 0, 1) == 0, "batch_metric NaN");
    CHECK(cairn_batch_metric(b, "inf", -INFINITY, 0, 1) == 0, "batch_metric -inf");
    char k[32], v[32];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "p%02d", i);
        snprintf(v, sizeof v, "v%d", i);
        CHECK(cairn_batch_param(b, k, v) == 0, "batch_param");
        snprintf(k, sizeof k, "t%02d", i);
        CHECK(cairn_batch_tag(b, k, v) == 0, "batch_tag");
    }
    CHECK(cairn_batch_size(b) == 52 && cairn_batch_metrics(b) == 12,
          "batch size %zu (metrics %zu), not 52 (12)", cairn_batch_size(b),
          cairn_batch_metrics(b));
    int rc = cairn_batch_send(c, b, &err);
    CHECK(rc == 0, "batch_send: %d %s", err.st, err.msg);
    CHECK(cairn_batch_size(b) == 0, "the batch is not empty after a send");
    cairn_reply_t *r = s_get_run(c, run, &err);
    if (r) {
        const msgpack_object *params = s_run_field(r, "data", "params");
        const msgpack_object *tags = s_run_field(r, "data", "tags");
        CHECK(params && params->type == MSGPACK_OBJECT_ARRAY &&
                  params->via.array.size == 20,
              "the run has not 20 params");
        CHECK(s_is(s_kv(params, "p07"), "v7") && s_is(s_kv(tags, "t19"), "v19"),
              "a batch param or tag is missing");
        const msgpack_object *m = s_run_field(r, "data", "metrics");
        CHECK(fabs(s_num(s_kv(m, "acc")) - 0.59) < 1e-12, "the latest acc is not 0.59");
        CHECK(isnan(s_num(s_kv(m, "nan"))), "NaN did not round-trip");
        CHECK(isinf(s_num(s_kv(m, "inf"))) && s_num(s_kv(m, "inf")) < 0,
              "-inf did not round-trip");
    }
    cairn_reply_destroy(&r);
    CHECK(s_history_count(c, run, "acc") == 10, "acc history is not 10 points");

    /* The encoder's integer forms, and key/value string forms, round-trip. */
    static const int64_t steps[] = {-(INT64_C(1) << 62),
                                    INT32_MIN,
                                    -70000,
                                    -200,
                                    -33,
                                    -1,
                                    0,
                                    127,
                                    128,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    UINT32_MAX,
                                    (INT64_C(1) << 40),
                                    INT64_MAX};
    const size_t nsteps = sizeof steps / sizeof steps[0];
    char key250[CAIRN_MAX_KEY + 1];
    memset(key250, 'k', CAIRN_MAX_KEY);
    key250[CAIRN_MAX_KEY] = '\0';
    for (size_t i = 0; i < nsteps; i++)
        CHECK(cairn_batch_metric(b, key250, (double)i, steps[i], steps[i] ^ 1) == 0,
              "batch_metric with a 250-byte key");
    char val8000[CAIRN_MAX_TAG_VALUE + 1];
    memset(val8000, 't', CAIRN_MAX_TAG_VALUE);
    val8000[CAIRN_MAX_TAG_VALUE] = '\0';
    CHECK(cairn_batch_tag(b, "long", val8000) == 0,
          "an 8000-byte tag value was refused");
    CHECK(cairn_batch_param(b, "empty", "") == 0, "an empty param value was refused");
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == 0, "batch_send (edge integers): %d %s", err.st, err.msg);
    r = s_history(c, run, key250, &err);
    const msgpack_object *pts = s_points(r);
    CHECK(pts && pts->via.array.size == nsteps,
          "the 250-byte key's history has %d points",
          pts ? (int)pts->via.array.size : -1);
    for (size_t i = 0; pts && i < nsteps && i < pts->via.array.size; i++) {
        const msgpack_object *p = &pts->via.array.ptr[i];
        CHECK(s_int(cairn_obj_get(p, "step")) == steps[i] &&
                  s_int(cairn_obj_get(p, "timestamp")) == (steps[i] ^ 1) &&
                  s_num(cairn_obj_get(p, "value")) == (double)i,
              "edge point %zu did not round-trip (step %lld)", i, (long long)steps[i]);
    }
    cairn_reply_destroy(&r);
    r = s_get_run(c, run, &err);
    if (r) {
        const msgpack_object *t = s_kv(s_run_field(r, "data", "tags"), "long");
        CHECK(t && t->type == MSGPACK_OBJECT_STR &&
                  t->via.str.size == CAIRN_MAX_TAG_VALUE,
              "the 8000-byte tag did not round-trip");
        CHECK(s_is(s_kv(s_run_field(r, "data", "params"), "empty"), ""),
              "the empty param did not round-trip");
    }
    cairn_reply_destroy(&r);

    /* set_run: the same batch object logs to another run. */
    CHECK(cairn_batch_set_run(b, run2) == 0, "batch_set_run");
    CHECK(cairn_batch_set_run(b, "") == -1, "batch_set_run accepted an empty id");
    CHECK(cairn_batch_metric(b, "other", 1.0, 0, 0) == 0, "batch_metric");
    CHECK(cairn_batch_send(c, b, &err) == 0, "batch_send to run2: %s", err.msg);
    CHECK(
        s_history_count(c, run2, "other") == 1 && s_history_count(c, run, "other") == 0,
        "set_run did not move the batch to run2");

    /* Server errors: unknown run (404); a param conflict (409) stores none
     * of the batch. */
    CHECK(cairn_batch_set_run(b, "0123456789abcdef0123456789abcdef") == 0, "set_run");
    CHECK(cairn_batch_metric(b, "x", 1.0, 0, 0) == 0, "batch_metric");
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == -1 && err.st == 404 && !strcmp(err.code, "not_found"),
          "a batch to an unknown run: %d %d %s", rc, err.st, err.code);
    CHECK(cairn_batch_size(b) == 0, "the batch is not empty after a failed send");
    cairn_batch_set_run(b, run);
    CHECK(cairn_batch_metric(b, "atomic", 1.0, 0, 0) == 0, "batch_metric");
    CHECK(cairn_batch_param(b, "p03", "changed") == 0, "batch_param");
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == -1 && err.st == 409 && strstr(err.msg, "p03"),
          "a batch with a conflicting param: %d %d %s", rc, err.st, err.msg);
    CHECK(s_history_count(c, run, "atomic") == 0,
          "a refused batch stored its metric (not one transaction)");
    /* ... and asynchronously: the reply carries the 409. */
    CHECK(cairn_batch_metric(b, "atomic", 1.0, 0, 0) == 0, "batch_metric");
    CHECK(cairn_batch_param(b, "p03", "changed") == 0, "batch_param");
    rc = cairn_batch_send_async(c, b, &id, &err);
    CHECK(rc == 0 && id != 0, "batch_send_async: %d %s", err.st, err.msg);
    r = NULL;
    rc = cairn_client_recv(c, 10000, &r, &err);
    CHECK(rc == 0 && r && cairn_reply_id(r) == id && cairn_reply_status(r) == 409,
          "the async conflict's reply: rc %d st %d", rc, r ? cairn_reply_status(r) : 0);
    cairn_reply_destroy(&r);
    CHECK(s_history_count(c, run, "atomic") == 0,
          "a refused async batch stored its metric");

out:
    cairn_batch_destroy(&b);
    cairn_batch_destroy(&b); /* safe twice */
    CHECK(b == NULL, "batch_destroy did not clear the pointer");
    free(run);
    free(run2);
}

/* Entries that break a limit are refused at once; the batch keeps the
 * error; the next send refuses the whole batch locally and sends nothing. */
static void test_batch_limits(cairn_client_t *c, const char *exp)
{
    cairn_err_t err = {0};
    char *run = NULL;
    if (cairn_create_run(c, exp, "limits", NULL, &run, &err) != 0) {
        CHECK(false, "create_run: %s", err.msg);
        return;
    }
    cairn_batch_t *b = cairn_batch_new(run);
    if (!b) {
        CHECK(false, "cairn_batch_new");
        free(run);
        return;
    }
    /* Exactly the limit is fine (an array32 header: > 65535 points). */
    int bad = 0;
    for (int i = 0; i < CAIRN_BATCH_MAX_POINTS; i++)
        bad +=
            cairn_batch_metric(b, "full", (double)i * 0.5, i, 1700000000000 + i) != 0;
    CHECK(bad == 0 && cairn_batch_error(b) == NULL, "%d of 100,000 points refused",
          bad);
    int rc = cairn_batch_send(c, b, &err);
    CHECK(rc == 0, "a batch of exactly 100,000 points: %d %s", err.st, err.msg);
    cairn_reply_t *r = s_history(c, run, "full", &err);
    const msgpack_object *pts = s_points(r);
    CHECK(pts && pts->via.array.size == CAIRN_BATCH_MAX_POINTS,
          "the 100,000-point batch's history has %d points",
          pts ? (int)pts->via.array.size : -1);
    if (pts && pts->via.array.size == CAIRN_BATCH_MAX_POINTS) {
        const msgpack_object *p = &pts->via.array.ptr[77777];
        CHECK(s_num(cairn_obj_get(p, "value")) == 77777 * 0.5 &&
                  s_int(cairn_obj_get(p, "step")) == 77777,
              "point 77777 of the full batch is wrong");
    }
    cairn_reply_destroy(&r);

    /* One over: refused locally with 413, and nothing is sent. */
    for (int i = 0; i < CAIRN_BATCH_MAX_POINTS; i++)
        cairn_batch_metric(b, "over", 1.0, i, 1);
    rc = cairn_batch_metric(b, "over", 1.0, CAIRN_BATCH_MAX_POINTS, 1);
    const cairn_err_t *be = cairn_batch_error(b);
    CHECK(rc == -1 && be && be->st == 413 && strstr(be->msg, "100000"),
          "point 100,001 was not refused with a 413 naming the limit: rc %d %s", rc,
          be ? be->msg : "(no error)");
    CHECK(cairn_batch_metrics(b) == CAIRN_BATCH_MAX_POINTS,
          "a refused point was added (%zu points)", cairn_batch_metrics(b));
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == -1 && err.st == 413 && !strcmp(err.code, "too_large"),
          "an over-limit batch was not refused locally: %d %d %s", rc, err.st,
          err.code);
    CHECK(cairn_batch_size(b) == 0 && !cairn_batch_error(b),
          "a refused batch is not empty and clean afterwards");
    CHECK(s_nothing_pending(c), "the refused batch reached the server");
    CHECK(s_history_count(c, run, "over") == 0,
          "points of a refused batch were stored");

    /* The same through the async path. */
    for (int i = 0; i <= CAIRN_BATCH_MAX_POINTS; i++)
        cairn_batch_metric(b, "over", 1.0, i, 1);
    uint64_t id = 7;
    rc = cairn_batch_send_async(c, b, &id, &err);
    CHECK(rc == -1 && err.st == 413 && id == 0, "an over-limit async batch: %d %d", rc,
          err.st);
    CHECK(s_nothing_pending(c), "the refused async batch reached the server");

    /* Bad keys and values: 400, the batch refused as a whole. */
    char key251[CAIRN_MAX_KEY + 2];
    memset(key251, 'k', CAIRN_MAX_KEY + 1);
    key251[CAIRN_MAX_KEY + 1] = '\0';
    CHECK(cairn_batch_metric(b, "good", 1.0, 0, 1) == 0, "batch_metric");
    CHECK(cairn_batch_metric(b, key251, 1.0, 0, 1) == -1,
          "a 251-byte key was accepted");
    be = cairn_batch_error(b);
    CHECK(be && be->st == 400 && strstr(be->msg, "250"), "the long key's error: %s",
          be ? be->msg : "(none)");
    CHECK(cairn_batch_metric(b, "", 1.0, 0, 1) == -1, "an empty key was accepted");
    CHECK(cairn_batch_metric(b, NULL, 1.0, 0, 1) == -1, "a NULL key was accepted");
    /* The first refusal is the one reported. */
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == -1 && err.st == 400 && strstr(err.msg, "250"),
          "the batch with a long key: %d %d %s", rc, err.st, err.msg);
    CHECK(s_history_count(c, run, "good") == 0,
          "the good point of a refused batch was sent");

    char big[CAIRN_MAX_TAG_VALUE + 2];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(cairn_batch_tag(b, "t", big) == -1, "an 8001-byte tag value was accepted");
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == -1 && err.st == 400 && strstr(err.msg, "8000"), "tag value: %d %s",
          err.st, err.msg);
    big[CAIRN_MAX_PARAM_VALUE + 1] = '\0';
    CHECK(cairn_batch_param(b, "p", big) == -1, "a 6001-byte param value was accepted");
    CHECK(cairn_batch_param(b, "p", NULL) == -1, "a NULL param value was accepted");
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == -1 && err.st == 400 && strstr(err.msg, "6000"), "param value: %d %s",
          err.st, err.msg);

    char k[32];
    for (int i = 0; i < CAIRN_BATCH_MAX_PARAMS; i++) {
        snprintf(k, sizeof k, "p%d", i);
        bad += cairn_batch_param(b, k, "v") != 0;
    }
    CHECK(bad == 0, "params up to the limit were refused");
    CHECK(cairn_batch_param(b, "one-more", "v") == -1, "param 10,001 was accepted");
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == -1 && err.st == 413 && strstr(err.msg, "10000"), "10,001 params: %d %s",
          err.st, err.msg);
    for (int i = 0; i <= CAIRN_BATCH_MAX_TAGS; i++) {
        snprintf(k, sizeof k, "t%d", i);
        cairn_batch_tag(b, k, "v");
    }
    rc = cairn_batch_send(c, b, &err);
    CHECK(rc == -1 && err.st == 413, "10,001 tags: %d %s", err.st, err.msg);
    CHECK(s_nothing_pending(c), "a refused batch reached the server");

    /* cairn_batch_clear drops a refusal too. */
    cairn_batch_metric(b, NULL, 0, 0, 0);
    cairn_batch_clear(b);
    CHECK(!cairn_batch_error(b) && cairn_batch_size(b) == 0,
          "batch_clear kept something");
    CHECK(cairn_batch_metric(b, "after", 2.0, 0, 1) == 0 &&
              cairn_batch_send(c, b, &err) == 0,
          "the batch is not usable after a refusal: %s", err.msg);
    CHECK(s_history_count(c, run, "after") == 1,
          "the batch after a refusal was not stored");
    cairn_batch_destroy(&b);
    free(run);
}

/* A window of 8 batches of 10,000 points each in flight at once (10 keys ×
 * 1000 steps per batch); then every point is in the history. */
#define PIPE_BATCHES 8
#define PIPE_KEYS 10
#define PIPE_STEPS 1000

static double s_pipe_value(int key, int64_t step)
{
    return key * 1000.0 + (double)step * 0.001 - 0.5;
}

static void test_pipelined(cairn_client_t *c, const char *exp)
{
    cairn_err_t err = {0};
    char *run = NULL;
    if (cairn_create_run(c, exp, "pipelined", NULL, &run, &err) != 0) {
        CHECK(false, "create_run: %s", err.msg);
        return;
    }
    cairn_batch_t *b = cairn_batch_new(run);
    if (!b) {
        CHECK(false, "cairn_batch_new");
        free(run);
        return;
    }
    char keys[PIPE_KEYS][16];
    for (int k = 0; k < PIPE_KEYS; k++)
        snprintf(keys[k], sizeof keys[k], "pipe/m%d", k);
    uint64_t ids[PIPE_BATCHES];
    for (int i = 0; i < PIPE_BATCHES; i++) {
        for (int s = 0; s < PIPE_STEPS; s++) {
            int64_t step = (int64_t)i * PIPE_STEPS + s;
            for (int k = 0; k < PIPE_KEYS; k++)
                cairn_batch_metric(b, keys[k], s_pipe_value(k, step), step,
                                   1700000000000 + step);
        }
        CHECK(cairn_batch_size(b) == 10000, "batch %d holds %zu points", i,
              cairn_batch_size(b));
        int rc = cairn_batch_send_async(c, b, &ids[i], &err);
        CHECK(rc == 0 && ids[i] != 0, "send_async %d: %d %s", i, err.st, err.msg);
    }
    bool seen[PIPE_BATCHES] = {false};
    int ok = 0;
    for (int i = 0; i < PIPE_BATCHES; i++) {
        cairn_reply_t *r = NULL;
        if (cairn_client_recv(c, 30000, &r, &err) != 0) {
            CHECK(false, "reply %d of %d: %d %s", i + 1, PIPE_BATCHES, err.st, err.msg);
            break;
        }
        for (int j = 0; j < PIPE_BATCHES; j++)
            if (cairn_reply_id(r) == ids[j] && !seen[j]) {
                seen[j] = true;
                ok += cairn_reply_status(r) == 200;
                if (cairn_reply_status(r) != 200)
                    fprintf(stderr, "batch %d: %d %s\n", j, cairn_reply_status(r),
                            cairn_reply_error(r));
            }
        cairn_reply_destroy(&r);
    }
    CHECK(ok == PIPE_BATCHES, "%d of %d pipelined batches answered 200", ok,
          PIPE_BATCHES);

    /* Every point of every key, in step order, with its value and time. */
    const int total = PIPE_BATCHES * PIPE_STEPS;
    for (int k = 0; k < PIPE_KEYS; k++) {
        cairn_reply_t *r = s_history(c, run, keys[k], &err);
        const msgpack_object *pts = s_points(r);
        CHECK(pts && (int)pts->via.array.size == total, "%s has %d points, not %d",
              keys[k], pts ? (int)pts->via.array.size : -1, total);
        int wrong = 0;
        for (int i = 0; pts && i < total && i < (int)pts->via.array.size; i++) {
            const msgpack_object *p = &pts->via.array.ptr[i];
            wrong += s_int(cairn_obj_get(p, "step")) != i ||
                     s_num(cairn_obj_get(p, "value")) != s_pipe_value(k, i) ||
                     s_int(cairn_obj_get(p, "timestamp")) != 1700000000000 + i ||
                     !s_is(cairn_obj_get(p, "key"), keys[k]);
        }
        CHECK(wrong == 0, "%s: %d of %d points differ from what was logged", keys[k],
              wrong, total);
        cairn_reply_destroy(&r);
    }
    /* Spot values, spelled out. */
    cairn_reply_t *r = s_history(c, run, "pipe/m7", &err);
    const msgpack_object *pts = s_points(r);
    if (pts && (int)pts->via.array.size == total) {
        CHECK(s_num(cairn_obj_get(&pts->via.array.ptr[0], "value")) == 7000.0 - 0.5,
              "pipe/m7 step 0");
        CHECK(s_num(cairn_obj_get(&pts->via.array.ptr[4321], "value")) ==
                  7000.0 + 4321 * 0.001 - 0.5,
              "pipe/m7 step 4321");
        CHECK(s_int(cairn_obj_get(&pts->via.array.ptr[7999], "step")) == 7999,
              "pipe/m7's last step");
    }
    cairn_reply_destroy(&r);
    r = s_get_run(c, run, &err);
    if (r)
        CHECK(s_num(s_kv(s_run_field(r, "data", "metrics"), "pipe/m3")) ==
                  s_pipe_value(3, total - 1),
              "get_run's latest pipe/m3 is not the last step's");
    cairn_reply_destroy(&r);
    CHECK(cairn_end_run(c, run, "FINISHED", &err) == 0, "end_run: %s", err.msg);
    cairn_batch_destroy(&b);
    free(run);
}

/* ---- artifacts ------------------------------------------------------------------- */

typedef struct prog {
    int calls;
    bool increasing, total_same;
    uint64_t last_done, total;
} prog_t;

static void s_prog(void *arg, uint64_t done, uint64_t total)
{
    prog_t *p = arg;
    if (p->calls == 0) {
        p->increasing = p->total_same = true;
        p->total = total;
    } else {
        if (done <= p->last_done) p->increasing = false;
        if (total != p->total) p->total_same = false;
    }
    p->last_done = done;
    p->calls++;
}

static bool s_write_file(const char *path, const unsigned char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static unsigned char *s_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = buf && len >= 0 ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return buf;
}

/* Entries in dir other than . and .. */
static int s_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_artifacts(cairn_client_t *c, const char *exp, const char *tmp)
{
    cairn_err_t err = {0};
    char *run = NULL;
    CHECK(cairn_create_run(c, exp, "artifacts", NULL, &run, &err) == 0,
          "create_run: %s", err.msg);
    if (!run) return;
    char dir[HARNESS_PATH_MAX], src[HARNESS_PATH_MAX + 16], dst[HARNESS_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/art", tmp);
    CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    snprintf(src, sizeof src, "%s/src.bin", dir);
    snprintf(dst, sizeof dst, "%s/dst.bin", dir);

    /* ~10 MiB of random bytes: three chunks, the last a partial one */
    size_t n = 10u * 1024 * 1024 + 12345;
    unsigned char *data = malloc(n);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; data && i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    CHECK(data && s_write_file(src, data, n), "writing %s", src);

    prog_t up = {0};
    int rc = cairn_log_artifact(c, run, src, "models/m.bin", s_prog, &up, &err);
    CHECK(rc == 0, "cairn_log_artifact: %d %s %s", err.st, err.code, err.msg);
    CHECK(up.calls >= 3 && up.increasing && up.total_same && up.total == n &&
              up.last_done == n,
          "upload progress: %d calls, increasing %d, total %llu, last %llu", up.calls,
          up.increasing, (unsigned long long)up.total,
          (unsigned long long)up.last_done);

    /* NULL artifact path: the file's name; info reports what was stored */
    cairn_artifact_info_t info;
    rc = cairn_log_artifact_ex(c, run, src, NULL, NULL, NULL, &info, &err);
    CHECK(rc == 0 && info.path && !strcmp(info.path, "src.bin") && info.size == n &&
              strlen(info.hash) == CAIRN_ARTIFACT_HASH_HEX,
          "cairn_log_artifact_ex: %d %s (%s)", rc, err.msg,
          info.path ? info.path : "-");
    char hash[CAIRN_ARTIFACT_HASH_HEX + 1];
    memcpy(hash, info.hash, sizeof hash);
    free(info.path);

    prog_t down = {0};
    rc = cairn_download_artifact(c, run, "models/m.bin", dst, s_prog, &down, &err);
    CHECK(rc == 0, "cairn_download_artifact: %d %s %s", err.st, err.code, err.msg);
    CHECK(down.calls >= 3 && down.increasing && down.total_same && down.total == n &&
              down.last_done == n,
          "download progress: %d calls, increasing %d, total %llu, last %llu",
          down.calls, down.increasing, (unsigned long long)down.total,
          (unsigned long long)down.last_done);
    size_t got = 0;
    unsigned char *back = s_read_file(dst, &got);
    CHECK(back && got == n && data && memcmp(back, data, n) == 0,
          "the downloaded bytes differ (%zu of %zu)", got, n);
    free(back);
    rc = cairn_download_artifact_ex(c, run, "src.bin", dst, NULL, NULL, &info, &err);
    CHECK(rc == 0 && info.size == n && !strcmp(info.hash, hash),
          "cairn_download_artifact_ex: %d %s", rc, err.msg);
    free(info.path);
    CHECK(s_count_entries(dir) == 2, "no temporary file left: %d entries",
          s_count_entries(dir));

    /* sizes around the 1 MiB from which a download's temporary file is
     * written with O_DIRECT, and around its 4096-byte blocks and the
     * chunks: every byte arrives, the tail too; then src and dst as they
     * were */
    unsigned char d0 = data ? data[0] : 0;
    const size_t sizes[] = {(1u << 20) - 1, 1u << 20,          (1u << 20) + 1,
                            4u << 20,       (4u << 20) + 4097, (8u << 20) + 4095};
    for (size_t i = 0; data && i < sizeof sizes / sizeof sizes[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "sizes/%zu", sizes[i]);
        data[0] = (unsigned char)i;
        CHECK(s_write_file(src, data, sizes[i]), "writing %s", src);
        rc = cairn_log_artifact(c, run, src, name, NULL, NULL, &err);
        CHECK(rc == 0, "upload of %zu bytes: %s", sizes[i], err.msg);
        rc = cairn_download_artifact(c, run, name, dst, NULL, NULL, &err);
        back = rc == 0 ? s_read_file(dst, &got) : NULL;
        CHECK(back && got == sizes[i] && memcmp(back, data, got) == 0,
              "download of %zu bytes: %d %s (%zu back)", sizes[i], rc, err.msg, got);
        free(back);
    }
    if (data) data[0] = d0;
    CHECK(data && s_write_file(src, data, n), "writing %s", src);
    rc = cairn_download_artifact(c, run, "models/m.bin", dst, NULL, NULL, &err);
    CHECK(rc == 0, "cairn_download_artifact: %s", err.msg);
    CHECK(s_count_entries(dir) == 2, "no temporary file left: %d entries",
          s_count_entries(dir));

    /* an empty file */
    char empty[HARNESS_PATH_MAX + 16];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    CHECK(s_write_file(empty, data, 0), "writing %s", empty);
    rc = cairn_log_artifact(c, run, empty, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "empty upload: %s", err.msg);
    unlink(empty);
    rc = cairn_download_artifact(c, run, "empty", empty, NULL, NULL, &err);
    back = rc == 0 ? s_read_file(empty, &got) : NULL;
    CHECK(back && got == 0, "empty download: %s", err.msg);
    free(back);
    unlink(empty);

    /* a missing local file */
    char absent[HARNESS_PATH_MAX + 16];
    snprintf(absent, sizeof absent, "%s/absent", dir);
    rc = cairn_log_artifact(c, run, absent, NULL, NULL, NULL, &err);
    CHECK(rc == -1 && err.st == 400 && !strcmp(err.code, CAIRN_ERR_LOCAL_FILE) &&
              strstr(err.msg, "absent"),
          "a missing file: %d %d %s %s", rc, err.st, err.code, err.msg);
    /* a directory */
    rc = cairn_log_artifact(c, run, dir, "d", NULL, NULL, &err);
    CHECK(rc == -1 && !strcmp(err.code, CAIRN_ERR_LOCAL_FILE), "a directory: %d %s %s",
          rc, err.code, err.msg);
    /* an unknown run: the server's 404 */
    rc = cairn_log_artifact(c, "feedface", src, NULL, NULL, NULL, &err);
    CHECK(rc == -1 && err.st == 404, "an unknown run: %d %d %s", rc, err.st, err.msg);

    /* an unknown path: 404, and nothing left behind (dst is untouched) */
    prog_t none = {0};
    rc = cairn_download_artifact(c, run, "missing.bin", dst, s_prog, &none, &err);
    CHECK(rc == -1 && err.st == 404 && !strcmp(err.code, "not_found"),
          "an unknown path: %d %d %s %s", rc, err.st, err.code, err.msg);
    CHECK(none.calls == 0, "progress for a failed download: %d", none.calls);
    char fresh[HARNESS_PATH_MAX + 16];
    snprintf(fresh, sizeof fresh, "%s/fresh.bin", dir);
    rc = cairn_download_artifact(c, run, "missing.bin", fresh, NULL, NULL, &err);
    CHECK(rc == -1 && err.st == 404, "an unknown path: %d %d", rc, err.st);
    CHECK(s_count_entries(dir) == 2 && access(fresh, F_OK) != 0,
          "a failed download left files: %d entries", s_count_entries(dir));
    back = s_read_file(dst, &got);
    CHECK(back && got == n, "a failed download touched the destination");
    free(back);
    /* a destination in a directory that does not exist: a local error */
    char nodir[HARNESS_PATH_MAX + 16];
    snprintf(nodir, sizeof nodir, "%s/no/such/f", dir);
    rc = cairn_download_artifact(c, run, "models/m.bin", nodir, NULL, NULL, &err);
    CHECK(rc == -1 && !strcmp(err.code, CAIRN_ERR_LOCAL_IO), "no such dir: %d %s %s",
          rc, err.code, err.msg);
    CHECK(s_count_entries(dir) == 2, "a failed download left files: %d entries",
          s_count_entries(dir));

    unlink(src);
    unlink(dst);
    rmdir(dir);
    free(data);
    CHECK(cairn_end_run(c, run, "FINISHED", &err) == 0, "end_run: %s", err.msg);
    free(run);
}

int main(void)
{
    harness_kernel_t k;
    if (harness_start(&k, TRACKING_SERVICES) != 0) {
        CHECK(false, "cairnd did not start with the storage plugin");
        return harness_summary();
    }
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(k.endpoint, NULL, &err);
    CHECK(c != NULL, "cairn_client_new: %s", err.msg);
    if (c) {
        char *exp = test_experiments(c);
        if (exp) {
            char *run = test_runs(c, exp);
            free(run);
            test_start_run(c);
            test_batch_basics(c, exp);
            test_batch_limits(c, exp);
            test_pipelined(c, exp);
            test_artifacts(c, exp, k.tmp);
        }
        free(exp);
        cairn_client_destroy(&c);
    }
    int rc = harness_stop(&k);
    CHECK(rc == 0, "cairnd exited with %d after SIGTERM", rc);
    if (harness_failed) harness_dump_log(&k);
    harness_cleanup(&k);
    return harness_summary();
}
