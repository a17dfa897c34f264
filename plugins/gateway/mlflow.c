/* MLflow's REST API 2.0 over the tracking, artifacts and registry verbs,
 * under /api/2.0/mlflow/ and /ajax-api/2.0/mlflow/, so that a client with
 * MLFLOW_TRACKING_URI=http://HOST:7790 (or .../ws/NAME) works unchanged.
 *
 * The verbs already take MLflow's field names and answer MLflow's reply
 * shapes (docs/TRACKING.md, docs/REGISTRY.md), so a route is a method, a
 * path and a verb: a GET's query arguments become the body (a key given
 * twice becomes an array; max_results and the like, which MLflow's client
 * sends as text, become numbers), any other method's JSON body is the
 * body. Errors are MLflow's: {error_code, message} with the HTTP status
 * MLflow's server gives that code. docs/MLFLOW.md lists the routes. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "jsonmp.h"

/* A reply MLflow shapes otherwise than the verb: the request's body and
 * the verb's reply in, MLflow's reply out (a new reference). */
typedef json_t *(shape_fn)(json_t *body, json_t *reply);
static shape_fn s_latest_versions;

typedef struct route {
    const char *method, *path, *svc, *verb;
    const char *from, *to; /* a field MLflow names otherwise than the verb */
    shape_fn *shape;       /* NULL: the verb's reply as it is */
} route_t;

/* Routes of MLflow's that Cairn refuses with a sentence rather than a 404. */
static const struct refused {
    const char *path, *why;
} s_refused[] = {
    {"model-versions/transition-stage",
     "model stages are deprecated in MLflow and Cairn has none: use aliases "
     "(registered-models/alias), e.g. 'champion'"},
    {"metrics/get-history-bulk-interval",
     "not supported: ask metrics/get-history per run, or Cairn's "
     "get_metric_history_sampled (POST /api/v1/tracking/get_metric_history_sampled)"},
};

static const route_t s_routes[] = {
    {"POST", "experiments/create", "tracking", "create_experiment", NULL, NULL, NULL},
    {"GET", "experiments/get", "tracking", "get_experiment", NULL, NULL, NULL},
    {"GET", "experiments/get-by-name", "tracking", "get_experiment_by_name", NULL, NULL,
     NULL},
    {"POST", "experiments/search", "tracking", "search_experiments", NULL, NULL, NULL},
    {"GET", "experiments/search", "tracking", "search_experiments", NULL, NULL, NULL},
    {"POST", "experiments/update", "tracking", "update_experiment", NULL, NULL, NULL},
    {"POST", "experiments/delete", "tracking", "delete_experiment", NULL, NULL, NULL},
    {"POST", "experiments/restore", "tracking", "restore_experiment", NULL, NULL, NULL},
    {"POST", "experiments/set-experiment-tag", "tracking", "set_experiment_tag", NULL,
     NULL, NULL},
    {"POST", "experiments/delete-experiment-tag", "tracking", "delete_experiment_tag",
     NULL, NULL, NULL},
    {"POST", "runs/create", "tracking", "create_run", NULL, NULL, NULL},
    {"GET", "runs/get", "tracking", "get_run", NULL, NULL, NULL},
    {"POST", "runs/update", "tracking", "update_run", NULL, NULL, NULL},
    {"POST", "runs/delete", "tracking", "delete_run", NULL, NULL, NULL},
    {"POST", "runs/restore", "tracking", "restore_run", NULL, NULL, NULL},
    {"POST", "runs/log-metric", "tracking", "log_metric", NULL, NULL, NULL},
    {"POST", "runs/log-parameter", "tracking", "log_param", NULL, NULL, NULL},
    {"POST", "runs/set-tag", "tracking", "set_tag", NULL, NULL, NULL},
    {"POST", "runs/delete-tag", "tracking", "delete_tag", NULL, NULL, NULL},
    {"POST", "runs/log-batch", "tracking", "log_batch", NULL, NULL, NULL},
    {"POST", "runs/search", "tracking", "search_runs", NULL, NULL, NULL},
    {"POST", "runs/log-inputs", "tracking", "log_inputs", NULL, NULL, NULL},
    {"POST", "runs/log-model", "tracking", "log_model", NULL, NULL, NULL},
    {"GET", "metrics/get-history", "tracking", "get_metric_history", "metric_key",
     "key", NULL},
    {"GET", "artifacts/list", "artifacts", "list_artifacts", NULL, NULL, NULL},
    {"POST", "registered-models/create", "registry", "create_registered_model", NULL,
     NULL, NULL},
    {"GET", "registered-models/get", "registry", "get_registered_model", NULL, NULL,
     NULL},
    {"GET", "registered-models/search", "registry", "search_registered_models", NULL,
     NULL, NULL},
    {"GET", "registered-models/get-latest-versions", "registry", "get_registered_model",
     NULL, NULL, s_latest_versions},
    {"POST", "registered-models/get-latest-versions", "registry",
     "get_registered_model", NULL, NULL, s_latest_versions},
    {"POST", "registered-models/rename", "registry", "rename_registered_model", NULL,
     NULL, NULL},
    {"PATCH", "registered-models/update", "registry", "update_registered_model", NULL,
     NULL, NULL},
    {"DELETE", "registered-models/delete", "registry", "delete_registered_model", NULL,
     NULL, NULL},
    {"POST", "registered-models/set-tag", "registry", "set_registered_model_tag", NULL,
     NULL, NULL},
    {"DELETE", "registered-models/delete-tag", "registry",
     "delete_registered_model_tag", NULL, NULL, NULL},
    {"POST", "registered-models/alias", "registry", "set_alias", NULL, NULL, NULL},
    {"DELETE", "registered-models/alias", "registry", "delete_alias", NULL, NULL, NULL},
    {"GET", "registered-models/alias", "registry", "get_model_version_by_alias", NULL,
     NULL, NULL},
    {"POST", "model-versions/create", "registry", "create_model_version", NULL, NULL,
     NULL},
    {"GET", "model-versions/get", "registry", "get_model_version", NULL, NULL, NULL},
    {"GET", "model-versions/search", "registry", "search_model_versions", NULL, NULL,
     NULL},
    {"PATCH", "model-versions/update", "registry", "update_model_version", NULL, NULL,
     NULL},
    {"DELETE", "model-versions/delete", "registry", "delete_model_version", NULL, NULL,
     NULL},
    {"POST", "model-versions/set-tag", "registry", "set_model_version_tag", NULL, NULL,
     NULL},
    {"DELETE", "model-versions/delete-tag", "registry", "delete_model_version_tag",
     NULL, NULL, NULL},
    {"GET", "model-versions/get-download-uri", "registry",
     "get_model_version_download_uri", NULL, NULL, NULL},
};
#define NROUTES (sizeof s_routes / sizeof s_routes[0])

/* MLflow's error codes and the statuses its server answers them with. */
static const char *s_error_code(int st, const char *code)
{
    switch (st) {
        case 400:
            return "INVALID_PARAMETER_VALUE";
        case 401:
            return "UNAUTHENTICATED";
        case 403:
            return "PERMISSION_DENIED";
        case 404:
            return code && !strcmp(code, "no_verb") ? "ENDPOINT_NOT_FOUND"
                                                    : "RESOURCE_DOES_NOT_EXIST";
        case 409:
            return "RESOURCE_ALREADY_EXISTS";
        case 413:
            return "INVALID_PARAMETER_VALUE";
        case 429:
            return "REQUEST_LIMIT_EXCEEDED";
        case 503:
        case 504:
            return "TEMPORARILY_UNAVAILABLE";
        default:
            return "INTERNAL_ERROR";
    }
}

static int s_http_status(int st)
{
    switch (st) {
        case 409: /* MLflow answers RESOURCE_ALREADY_EXISTS with 400 */
        case 413:
            return 400;
        case 504:
            return 503;
        default:
            return st;
    }
}

void gw_mlflow_error(gw_req_t *r, int st, const char *code, const char *msg)
{
    gw_reply_json(
        r, s_http_status(st),
        json_pack("{s:s, s:s}", "error_code", s_error_code(st, code), "message", msg));
}

/* Query arguments that MLflow's proto says are numbers. */
static bool s_numeric(const char *key)
{
    static const char *const keys[] = {"max_results", "max_points", "start_time",
                                       "end_time",    "timestamp",  "step",
                                       NULL};
    for (const char *const *k = keys; *k; k++)
        if (!strcmp(*k, key)) return true;
    return false;
}

static void s_query_arg(void *arg, const char *key, const char *value)
{
    json_t *obj = arg;
    if (!value) value = "";
    char *end = NULL;
    long long n = strtoll(value, &end, 10);
    json_t *v =
        s_numeric(key) && *value && !*end ? json_integer(n) : json_string(value);
    if (!v) return;
    json_t *had = json_object_get(obj, key);
    if (!had) {
        json_object_set_new(obj, key, v);
    } else if (json_is_array(had)) {
        json_array_append_new(had, v);
    } else {
        json_t *arr = json_pack("[O, o]", had, v);
        if (arr) json_object_set_new(obj, key, arr);
    }
}

/* proto3's JSON mapping, which MLflow's client writes: int64 fields are
 * strings ("1700000000000"), and so may a metric's double be. Such fields,
 * at any depth (log-batch's metrics), become numbers. */
static bool s_int64_field(const char *key)
{
    static const char *const keys[] = {"timestamp", "step",        "start_time",
                                       "end_time",  "max_results", "max_points",
                                       NULL};
    for (const char *const *k = keys; *k; k++)
        if (!strcmp(*k, key)) return true;
    return false;
}

static void s_numbers(json_t *j, bool metric, int depth)
{
    if (depth > 8) return;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) s_numbers(v, metric, depth + 1);
        return;
    }
    void *tmp;
    json_object_foreach_safe(j, tmp, key, v)
    {
        if (json_is_string(v)) {
            const char *t = json_string_value(v);
            char *end = NULL;
            if (s_int64_field(key)) {
                long long n = strtoll(t, &end, 10);
                if (*t && !*end) json_object_set_new(j, key, json_integer(n));
            } else if (metric && !strcmp(key, "value")) {
                double d = strtod(t, &end);
                json_t *real = *t && !*end ? json_real(d) : NULL; /* NULL: NaN, inf */
                if (real) json_object_set_new(j, key, real);
            }
        } else if (json_is_object(v) || json_is_array(v)) {
            s_numbers(v, metric || !strcmp(key, "metrics"), depth + 1);
        }
    }
}

/* get-latest-versions {name, stages}: the newest version of each stage
 * asked for. Cairn has no stages (aliases instead), so every version is in
 * stage "None": the newest version when stages is empty or names "None",
 * else none. */
static json_t *s_latest_versions(json_t *body, json_t *reply)
{
    json_t *stages = json_object_get(body, "stages"), *v;
    size_t i;
    /* a GET's ?stages=X is one string; a POST's an array */
    bool none = json_is_string(stages) ? !strcasecmp(json_string_value(stages), "None")
                                       : !json_array_size(stages);
    json_array_foreach(stages, i, v)
    {
        if (json_is_string(v) && !strcasecmp(json_string_value(v), "None")) none = true;
    }
    json_t *latest =
        json_object_get(json_object_get(reply, "registered_model"), "latest_versions");
    if (none && json_is_array(latest))
        return json_pack("{s:O}", "model_versions", latest);
    return json_pack("{s:[]}", "model_versions");
}

/* A reply as MLflow's server writes it, at any depth: the store's
 * artifact URIs as MLflow's client reaches them through this gateway's
 * proxy (artifacts.c), cairn-artifacts:/EXP/RUN/artifacts becoming
 * mlflow-artifacts:/EXP/RUN/artifacts; and no null fields (a run's
 * end_time before it ends), which proto3's JSON leaves out. */
static void s_mlflow_reply(json_t *j, int depth)
{
    static const char from[] = "cairn-artifacts:/", to[] = "mlflow-artifacts:/";
    if (depth > 8) return;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) s_mlflow_reply(v, depth + 1);
        return;
    }
    void *tmp;
    json_object_foreach_safe(j, tmp, key, v)
    {
        const char *t = json_string_value(v);
        if (json_is_null(v)) {
            json_object_del(j, key);
        } else if (t &&
                   (!strcmp(key, "artifact_uri") ||
                    !strcmp(key, "artifact_location")) &&
                   !strncmp(t, from, sizeof from - 1)) {
            char *u = NULL;
            if (asprintf(&u, "%s%s", to, t + sizeof from - 1) >= 0) {
                json_string_set(v, u);
                free(u);
            }
        } else if (json_is_object(v) || json_is_array(v)) {
            s_mlflow_reply(v, depth + 1);
        }
    }
}

/* MLflow's own limits on log-batch (mlflow/utils/validation.py), which its
 * clients split their batches by; Cairn's native verb takes far more. NULL
 * when body is within them, else the sentence. */
static const char *s_batch_limits(const route_t *rt, json_t *body, char *msg,
                                  size_t cap)
{
    if (strcmp(rt->path, "runs/log-batch") != 0) return NULL;
    static const struct {
        const char *field;
        size_t max;
    } lim[] = {{"metrics", 1000}, {"params", 100}, {"tags", 100}};
    size_t total = 0;
    for (size_t i = 0; i < 3; i++) {
        size_t n = json_array_size(json_object_get(body, lim[i].field));
        total += n;
        if (n > lim[i].max) {
            snprintf(msg, cap,
                     "A batch logging request can contain at most %zu %s. Got %zu %s. "
                     "(MLflow's limit; Cairn's tracking.log_batch takes more)",
                     lim[i].max, lim[i].field, n, lim[i].field);
            return msg;
        }
    }
    if (total > 1000) {
        snprintf(msg, cap,
                 "A batch logging request can contain at most 1000 metrics, params and "
                 "tags in total. Got %zu",
                 total);
        return msg;
    }
    return NULL;
}

/* A model version's source as MLflow's client sends it for
 * register_model("runs:/RUN/PATH"): the run's artifact URI as this gateway
 * gave it out, mlflow-artifacts:/EXP/RUN/artifacts/PATH. The registry pins
 * the bytes of a runs:/ source only, so it becomes runs:/RUN/PATH. */
static void s_runs_source(const route_t *rt, json_t *body)
{
    static const char from[] = "mlflow-artifacts:/";
    const char *src = json_string_value(json_object_get(body, "source"));
    if (strcmp(rt->path, "model-versions/create") != 0 || !src ||
        strncmp(src, from, sizeof from - 1) != 0)
        return;
    const char *run = strchr(src + sizeof from - 1, '/');
    const char *end = run ? strchr(run + 1, '/') : NULL;
    if (!end || end == run + 1 || strncmp(end, "/artifacts", 10) != 0 ||
        (end[10] && end[10] != '/'))
        return;
    const char *path = end[10] ? end + 11 : "";
    char *runs = NULL;
    if (asprintf(&runs, "runs:/%.*s/%s", (int)(end - run - 1), run + 1, path) >= 0) {
        json_object_set_new(body, "source", json_string(runs));
        free(runs);
    }
}

static void s_route(gw_req_t *r, const route_t *rt)
{
    json_t *body = NULL;
    json_error_t jerr;
    if (!strcmp(rt->method, "GET")) {
        body = json_object();
        if (body) cairn_http_each_query(r->http, s_query_arg, body);
    } else if (r->http->body_len) {
        body =
            json_loadb(r->http->body, r->http->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!body) {
            char msg[256];
            snprintf(msg, sizeof msg, "the body is not a JSON object: %s", jerr.text);
            gw_mlflow_error(r, 400, "bad_request", msg);
            return;
        }
    } else {
        body = json_object();
    }
    char limit_msg[256];
    const char *over = json_is_object(body)
                           ? s_batch_limits(rt, body, limit_msg, sizeof limit_msg)
                           : NULL;
    if (over) {
        gw_mlflow_error(r, 400, "bad_request", over);
        json_decref(body);
        return;
    }
    if (json_is_object(body)) {
        s_numbers(body, !strcmp(rt->verb, "log_metric"), 0);
        s_runs_source(rt, body);
    }
    json_t *renamed =
        rt->from && json_is_object(body) ? json_object_get(body, rt->from) : NULL;
    if (renamed && !json_object_get(body, rt->to)) {
        json_object_set(body, rt->to, renamed);
        json_object_del(body, rt->from);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_err_t err = {0};
    cairn_reply_t *reply = NULL;
    if (!body)
        gw_mlflow_error(r, 500, "out_of_memory", "out of memory");
    else if (cairn_json_pack(body, &pk, &err) != 0)
        gw_mlflow_error(r, err.st, err.code, err.msg);
    else if (gw_call(r, rt->svc, rt->verb, sb.data, sb.size, &reply, &err) != 0)
        gw_mlflow_error(r, err.st >= 400 ? err.st : 503, err.code,
                        err.msg); /* a refusal, or none */
    else if (cairn_reply_status(reply) >= 400)
        gw_mlflow_error(r, cairn_reply_status(reply), cairn_reply_code(reply),
                        cairn_reply_error(reply));
    else {
        json_t *out = gw_reply_body_json(reply);
        if (out && rt->shape) {
            json_t *shaped = rt->shape(body, out);
            json_decref(out);
            out = shaped;
        }
        if (out) s_mlflow_reply(out, 0);
        gw_reply_json(r, 200, out);
    }
    cairn_reply_destroy(&reply);
    json_decref(body);
    msgpack_sbuffer_destroy(&sb);
}

/* The route's path after MLflow's prefix, or NULL. */
static const char *s_mlflow_rest(const char *path)
{
    static const char *const prefixes[] = {"/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"};
    for (size_t i = 0; i < 2; i++)
        if (!strncmp(path, prefixes[i], strlen(prefixes[i])))
            return path + strlen(prefixes[i]);
    return NULL;
}

bool gw_is_mlflow(const char *path)
{
    return s_mlflow_rest(path) != NULL;
}

bool gw_mlflow(gw_req_t *r)
{
    const char *rest = s_mlflow_rest(r->path);
    if (!rest) return false;
    bool path_known = false;
    for (size_t i = 0; i < NROUTES; i++) {
        if (strcmp(s_routes[i].path, rest) != 0) continue;
        path_known = true;
        if (!strcmp(s_routes[i].method, r->http->method)) {
            s_route(r, &s_routes[i]);
            return true;
        }
    }
    for (size_t i = 0; i < sizeof s_refused / sizeof s_refused[0]; i++)
        if (!strcmp(s_refused[i].path, rest)) {
            gw_mlflow_error(r, 400, "bad_request", s_refused[i].why);
            return true;
        }
    char msg[512];
    snprintf(msg, sizeof msg, "%s %s is not a route of this server%s", r->http->method,
             r->path, path_known ? " (another method is)" : "");
    gw_reply_json(
        r, path_known ? 405 : 404,
        json_pack("{s:s, s:s}", "error_code", "ENDPOINT_NOT_FOUND", "message", msg));
    return true;
}
