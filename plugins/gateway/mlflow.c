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
#include "mlbody.h"

/* A reply MLflow shapes otherwise than the verb: the request's body and
 * the verb's reply in, MLflow's reply out (a new reference). */
typedef json_t *(shape_fn)(json_t *body, json_t *reply);

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
     NULL, NULL, gw_mlbody_latest_versions},
    {"POST", "registered-models/get-latest-versions", "registry",
     "get_registered_model", NULL, NULL, gw_mlbody_latest_versions},
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
     "get_model_version_download_uri", NULL, NULL, gw_mlbody_download_uri},
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

/* log-batch's bodies are large (MLflow's client sends up to 1,000 metrics
 * a request): their JSON text goes straight to msgpack, several times
 * faster than through a jansson tree. false: a body that way does not
 * take, left to s_route's. */
static bool s_log_batch_fast(gw_req_t *r, const route_t *rt)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cairn_json_text_opts_t o = {.str_member = gw_mlbody_proto3_member,
                                .mark = "metrics"};
    int rc = cairn_json_text_pack(r->http->body, r->http->body_len, &sb, &o);
    if (rc == CAIRN_JSON_TEXT_PLAIN) {
        msgpack_sbuffer_destroy(&sb);
        return false;
    }
    cairn_err_t err = {0};
    cairn_reply_t *reply = NULL;
    char msg[256];
    const char *over =
        rc == 0 ? gw_mlbody_limits_packed(rt->path, sb.data, sb.size, msg, sizeof msg)
                : NULL;
    if (rc != 0)
        gw_mlflow_error(r, 500, "out_of_memory", "out of memory");
    else if (over)
        gw_mlflow_error(r, 400, "bad_request", over);
    else if (gw_call(r, rt->svc, rt->verb, sb.data, sb.size, &reply, &err) != 0)
        gw_mlflow_error(r, err.st >= 400 ? err.st : 503, err.code, err.msg);
    else if (cairn_reply_status(reply) >= 400)
        gw_mlflow_error(r, cairn_reply_status(reply), cairn_reply_code(reply),
                        cairn_reply_error(reply));
    else
        gw_reply_body(r, 200, reply, &gw_mlbody_write_opts);
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
        gw_query_t q = {.obj = body = json_object()};
        if (body) cairn_http_each_query(r->http, gw_mlbody_query_arg, &q);
        if (q.bad[0]) {
            gw_mlflow_error(r, 400, "bad_request", q.bad);
            json_decref(body);
            return;
        }
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
    const char *over =
        json_is_object(body)
            ? gw_mlbody_limits(rt->path, body, limit_msg, sizeof limit_msg)
            : NULL;
    if (over) {
        gw_mlflow_error(r, 400, "bad_request", over);
        json_decref(body);
        return;
    }
    gw_mlbody_request(rt->path, !strcmp(rt->verb, "log_metric"), body);
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
    else if (!rt->shape) /* straight to text: a search's 220 KB in a few ms */
        gw_reply_body(r, 200, reply, &gw_mlbody_write_opts);
    else {
        json_t *out = gw_reply_body_json(reply);
        json_t *shaped = out ? rt->shape(body, out) : NULL;
        json_decref(out);
        if (shaped) gw_mlbody_reply(shaped);
        gw_reply_json(r, 200, shaped);
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
