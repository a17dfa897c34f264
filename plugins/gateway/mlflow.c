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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "jsonmp.h"

typedef struct route {
    const char *method, *path, *svc, *verb;
    const char *from, *to; /* a field MLflow names otherwise than the verb */
} route_t;

static const route_t s_routes[] = {
    {"POST", "experiments/create", "tracking", "create_experiment", NULL, NULL},
    {"GET", "experiments/get", "tracking", "get_experiment", NULL, NULL},
    {"GET", "experiments/get-by-name", "tracking", "get_experiment_by_name", NULL,
     NULL},
    {"POST", "experiments/search", "tracking", "search_experiments", NULL, NULL},
    {"GET", "experiments/search", "tracking", "search_experiments", NULL, NULL},
    {"POST", "experiments/update", "tracking", "update_experiment", NULL, NULL},
    {"POST", "experiments/delete", "tracking", "delete_experiment", NULL, NULL},
    {"POST", "experiments/restore", "tracking", "restore_experiment", NULL, NULL},
    {"POST", "experiments/set-experiment-tag", "tracking", "set_experiment_tag", NULL,
     NULL},
    {"POST", "runs/create", "tracking", "create_run", NULL, NULL},
    {"GET", "runs/get", "tracking", "get_run", NULL, NULL},
    {"POST", "runs/update", "tracking", "update_run", NULL, NULL},
    {"POST", "runs/delete", "tracking", "delete_run", NULL, NULL},
    {"POST", "runs/restore", "tracking", "restore_run", NULL, NULL},
    {"POST", "runs/log-metric", "tracking", "log_metric", NULL, NULL},
    {"POST", "runs/log-parameter", "tracking", "log_param", NULL, NULL},
    {"POST", "runs/set-tag", "tracking", "set_tag", NULL, NULL},
    {"POST", "runs/delete-tag", "tracking", "delete_tag", NULL, NULL},
    {"POST", "runs/log-batch", "tracking", "log_batch", NULL, NULL},
    {"POST", "runs/search", "tracking", "search_runs", NULL, NULL},
    {"GET", "metrics/get-history", "tracking", "get_metric_history", "metric_key",
     "key"},
    {"GET", "artifacts/list", "artifacts", "list_artifacts", NULL, NULL},
    {"POST", "registered-models/create", "registry", "create_registered_model", NULL,
     NULL},
    {"GET", "registered-models/get", "registry", "get_registered_model", NULL, NULL},
    {"GET", "registered-models/search", "registry", "search_registered_models", NULL,
     NULL},
    {"POST", "registered-models/rename", "registry", "rename_registered_model", NULL,
     NULL},
    {"PATCH", "registered-models/update", "registry", "update_registered_model", NULL,
     NULL},
    {"DELETE", "registered-models/delete", "registry", "delete_registered_model", NULL,
     NULL},
    {"POST", "registered-models/set-tag", "registry", "set_registered_model_tag", NULL,
     NULL},
    {"DELETE", "registered-models/delete-tag", "registry",
     "delete_registered_model_tag", NULL, NULL},
    {"POST", "registered-models/alias", "registry", "set_alias", NULL, NULL},
    {"DELETE", "registered-models/alias", "registry", "delete_alias", NULL, NULL},
    {"GET", "registered-models/alias", "registry", "get_model_version_by_alias", NULL,
     NULL},
    {"POST", "model-versions/create", "registry", "create_model_version", NULL, NULL},
    {"GET", "model-versions/get", "registry", "get_model_version", NULL, NULL},
    {"GET", "model-versions/search", "registry", "search_model_versions", NULL, NULL},
    {"PATCH", "model-versions/update", "registry", "update_model_version", NULL, NULL},
    {"DELETE", "model-versions/delete", "registry", "delete_model_version", NULL, NULL},
    {"POST", "model-versions/set-tag", "registry", "set_model_version_tag", NULL, NULL},
    {"DELETE", "model-versions/delete-tag", "registry", "delete_model_version_tag",
     NULL, NULL},
    {"GET", "model-versions/get-download-uri", "registry",
     "get_model_version_download_uri", NULL, NULL},
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

/* The store's artifact URIs as MLflow's client reaches them through this
 * gateway's proxy (artifacts.c): cairn-artifacts:/EXP/RUN/artifacts
 * becomes mlflow-artifacts:/EXP/RUN/artifacts, at any depth of a reply. */
static void s_artifact_uris(json_t *j, int depth)
{
    static const char from[] = "cairn-artifacts:/", to[] = "mlflow-artifacts:/";
    if (depth > 8) return;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) s_artifact_uris(v, depth + 1);
        return;
    }
    json_object_foreach(j, key, v)
    {
        const char *t = json_string_value(v);
        if (t && (!strcmp(key, "artifact_uri") || !strcmp(key, "artifact_location")) &&
            !strncmp(t, from, sizeof from - 1)) {
            char *u = NULL;
            if (asprintf(&u, "%s%s", to, t + sizeof from - 1) >= 0) {
                json_string_set(v, u);
                free(u);
            }
        } else if (json_is_object(v) || json_is_array(v)) {
            s_artifact_uris(v, depth + 1);
        }
    }
}

/* s_numbers' conversions for cairn_json_text_pack (a string member of an
 * object at depth, under "metrics" when metric). A metric value that is
 * not a finite number gives the text up, to the tree's way. */
static int s_proto3_member(void *arg, const char *key, size_t klen, const char *s,
                           size_t n, bool metric, int depth, msgpack_packer *pk)
{
    (void)arg;
    char k[16], t[64], *end = NULL;
    if (depth > 8 || !klen || klen >= sizeof k || !strchr("tsemv", key[0])) return 0;
    memcpy(k, key, klen);
    k[klen] = '\0';
    bool i64 = s_int64_field(k), value = metric && !strcmp(k, "value");
    if (!i64 && !value) return 0;
    if (n >= sizeof t) return CAIRN_JSON_TEXT_PLAIN;
    memcpy(t, s, n);
    t[n] = '\0';
    if (i64) {
        long long v = strtoll(t, &end, 10);
        if (!*t || *end) return 0;
        return msgpack_pack_int64(pk, v) == 0 ? 1 : -1;
    }
    double d = strtod(t, &end);
    if (!*t || *end || !isfinite(d)) return CAIRN_JSON_TEXT_PLAIN;
    return msgpack_pack_double(pk, d) == 0 ? 1 : -1;
}

/* log-batch's bodies are large (MLflow's client sends up to 1,000 metrics
 * a request): their JSON text goes straight to msgpack, several times
 * faster than through a jansson tree. false: a body that way does not
 * take, left to s_route's. */
static bool s_log_batch_fast(gw_req_t *r, const route_t *rt)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cairn_json_text_opts_t o = {.str_member = s_proto3_member, .mark = "metrics"};
    int rc = cairn_json_text_pack(r->http->body, r->http->body_len, &sb, &o);
    if (rc == CAIRN_JSON_TEXT_PLAIN) {
        msgpack_sbuffer_destroy(&sb);
        return false;
    }
    cairn_err_t err = {0};
    cairn_reply_t *reply = NULL;
    if (rc != 0)
        gw_mlflow_error(r, 500, "out_of_memory", "out of memory");
    else if (gw_call(r, rt->svc, rt->verb, sb.data, sb.size, &reply, &err) != 0)
        gw_mlflow_error(r, err.st >= 400 ? err.st : 503, err.code, err.msg);
    else if (cairn_reply_status(reply) >= 400)
        gw_mlflow_error(r, cairn_reply_status(reply), cairn_reply_code(reply),
                        cairn_reply_error(reply));
    else
        gw_reply_json(r, 200, gw_reply_body_json(reply));
    cairn_reply_destroy(&reply);
    msgpack_sbuffer_destroy(&sb);
    return true;
}

static void s_route(gw_req_t *r, const route_t *rt)
{
    if (!strcmp(rt->verb, "log_batch") && r->http->body_len && s_log_batch_fast(r, rt))
        return;
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
    if (json_is_object(body)) s_numbers(body, !strcmp(rt->verb, "log_metric"), 0);
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
        if (out) s_artifact_uris(out, 0);
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
    char msg[512];
    snprintf(msg, sizeof msg, "%s %s is not a route of this server%s", r->http->method,
             r->path, path_known ? " (another method is)" : "");
    gw_reply_json(
        r, path_known ? 405 : 404,
        json_pack("{s:s, s:s}", "error_code", "ENDPOINT_NOT_FOUND", "message", msg));
    return true;
}
