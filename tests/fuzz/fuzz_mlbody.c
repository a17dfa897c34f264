/* libFuzzer target for the gateway's MLflow body translation
 * (plugins/gateway/mlbody.c): what an MLflow client's JSON goes through
 * before a verb sees it, and a verb's reply before the client does.
 *
 * Input: one byte picking the route, then JSON text (a request body, and
 * the same text taken as a reply), or key=value (a GET's query argument).
 * A refusal by the limits must carry a sentence; a translated body must
 * pack as msgpack or be refused with a 400 and a sentence; a shaped reply
 * must hold no null field; get-latest-versions' reply must be
 * {model_versions: [...]}. Anything else aborts. */
#define _GNU_SOURCE
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmp.h"
#include "mlbody.h"

static const char *const routes[] = {
    "runs/log-batch",
    "runs/log-metric",
    "model-versions/create",
    "runs/get",
    "registered-models/get-latest-versions",
    "runs/search",
    "runs/log-inputs",
    "metrics/get-history",
};
#define NROUTES (sizeof routes / sizeof routes[0])

static void s_no_nulls(const json_t *j, int depth)
{
    const char *key;
    json_t *v;
    size_t i;
    if (depth > 8) return; /* the walk stops there, as the shaping does */
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) s_no_nulls(v, depth + 1);
        return;
    }
    json_object_foreach((json_t *)j, key, v)
    {
        if (json_is_null(v)) abort();
        s_no_nulls(v, depth + 1);
    }
}

static void s_request(const char *route, json_t *body)
{
    char msg[256];
    const char *over = gw_mlbody_limits(route, body, msg, sizeof msg);
    if (over && !*over) abort();
    gw_mlbody_request(route, !strcmp(route, "runs/log-metric"), body);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_err_t err = {0};
    if (cairn_json_pack(body, &pk, &err) != 0 && (err.st != 400 || !err.msg[0]) &&
        err.st != 500)
        abort();
    msgpack_sbuffer_destroy(&sb);
}

static void s_reply(json_t *body, json_t *reply)
{
    json_t *uri = gw_mlbody_download_uri(body, reply);
    if (!uri) abort();
    json_decref(uri);
    json_t *latest = gw_mlbody_latest_versions(body, reply);
    if (!latest || !json_is_array(json_object_get(latest, "model_versions"))) abort();
    json_decref(latest);
    gw_mlbody_reply(reply);
    s_no_nulls(reply, 0);
}

static void s_query(const uint8_t *data, size_t size)
{
    const uint8_t *eq = memchr(data, '=', size);
    if (!eq) return;
    char *key = strndup((const char *)data, (size_t)(eq - data));
    char *value = strndup((const char *)eq + 1, size - (size_t)(eq - data) - 1);
    gw_query_t q = {.obj = json_object()};
    if (key && value && q.obj) {
        gw_mlbody_query_arg(&q, key, value);
        gw_mlbody_query_arg(&q, key, value); /* twice: an array */
        bool utf8 = cairn_utf8_valid(key, strlen(key)) &&
                    cairn_utf8_valid(value, strlen(value));
        if (utf8 != !q.bad[0]) abort();
        if (utf8 && json_object_size(q.obj) != 1) abort();
    }
    json_decref(q.obj);
    free(key);
    free(value);
}

/* The text's way (log-batch's): straight to msgpack with MLflow's
 * conversions, then MLflow's limits on what was packed. */
static void s_text_way(const char *route, const uint8_t *data, size_t size)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cairn_json_text_opts_t o = {.str_member = gw_mlbody_proto3_member,
                                .mark = "metrics"};
    int rc = cairn_json_text_pack((const char *)data, size, &sb, &o);
    if (rc != 0 && rc != -1 && rc != CAIRN_JSON_TEXT_PLAIN) abort();
    if (rc == 0) {
        char msg[256];
        const char *over =
            gw_mlbody_limits_packed(route, sb.data, sb.size, msg, sizeof msg);
        if (over && !*over) abort();
    }
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *route = routes[data[0] % NROUTES];
    data++, size--;
    s_query(data, size);
    s_text_way(route, data, size);
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) return 0;
    json_t *reply = json_deep_copy(body);
    s_request(route, body);
    if (reply && json_is_object(reply)) s_reply(body, reply);
    json_decref(reply);
    json_decref(body);
    return 0;
}
