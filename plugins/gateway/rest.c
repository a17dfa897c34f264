/* JSON REST for every verb, and health:
 *
 *   GET  /healthz              sys.ping: 200 {status: "ok", version}, else 503
 *   GET  /readyz               sys.health: 200 when every plugin is up, else 503
 *   GET  /metrics              sys.metrics in Prometheus' text format (prom.c)
 *   GET  /api/v1/              sys.services: services, verbs, permissions, flags
 *   POST /api/v1/artifacts/download_url  a signed download link (signed.c)
 *   POST /api/v1/{svc}/{verb}  the verb with the JSON body (none: {}); its
 *                              reply as JSON, the HTTP status the bus's;
 *                              errors {status, code, error}
 *
 * JSON and msgpack convert as sdk/jsonmp.h says (binary as {"$bin":
 * "BASE64"}, both ways). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "jsonmp.h"

#define NAME_MAX_BYTES 64

/* Call svc.verb with body (msgpack); the reply's JSON under its status, or
 * the error shape. */
static void s_call_reply(gw_req_t *r, const char *svc, const char *verb,
                         const char *body, size_t len)
{
    cairn_reply_t *reply = NULL;
    cairn_err_t err = {0};
    if (gw_call(r, svc, verb, body, len, &reply, &err) != 0) { /* a refusal, or none */
        cairn_reply_destroy(&reply);
        gw_reply_error(r, err.st >= 400 ? err.st : 503,
                       err.code[0] ? err.code : "unavailable", "%s", err.msg);
        return;
    }
    int st = cairn_reply_status(reply);
    if (st >= 400)
        gw_reply_error(r, st, cairn_reply_code(reply), "%s", cairn_reply_error(reply));
    else
        gw_reply_body(r, st, reply, NULL);
    cairn_reply_destroy(&reply);
}

/* /healthz and /readyz: 200 or 503, never the bus's own 4xx. */
static void s_health(gw_req_t *r, bool ready)
{
    cairn_reply_t *reply = NULL;
    cairn_err_t err = {0};
    if (gw_call(r, "sys", ready ? "health" : "ping", NULL, 0, &reply, &err) != 0) {
        cairn_reply_destroy(&reply); /* a refusal's reply (gw_call) */
        gw_reply_json(
            r, 503, json_pack("{s:s, s:s}", "status", "unavailable", "error", err.msg));
        return;
    }
    json_t *body = gw_reply_body_json(reply);
    bool ok = cairn_reply_status(reply) == 200 &&
              (!ready || json_is_true(json_object_get(body, "ok")));
    cairn_reply_destroy(&reply);
    if (!ready) {
        json_t *v = json_incref(json_object_get(body, "version"));
        json_decref(body);
        body =
            json_pack("{s:s, s:o*}", "status", ok ? "ok" : "unavailable", "version", v);
    }
    gw_reply_json(r, ok ? 200 : 503, body);
}

/* {svc}/{verb} into svc and verb; false: answered 404. */
static bool s_svc_verb(gw_req_t *r, const char *rest, char *svc, char *verb)
{
    const char *slash = strchr(rest, '/');
    size_t a = slash ? (size_t)(slash - rest) : 0, b = slash ? strlen(slash + 1) : 0;
    if (!slash || !a || !b || a >= NAME_MAX_BYTES || b >= NAME_MAX_BYTES ||
        strchr(slash + 1, '/')) {
        gw_reply_error(r, 404, "not_found",
                       "a verb's route is /api/v1/SERVICE/VERB, not %s", r->path);
        return false;
    }
    memcpy(svc, rest, a);
    svc[a] = '\0';
    memcpy(verb, slash + 1, b + 1);
    return true;
}

static void s_verb(gw_req_t *r, const char *rest)
{
    char svc[NAME_MAX_BYTES], verb[NAME_MAX_BYTES];
    if (!s_svc_verb(r, rest, svc, verb)) return;
    if (strcmp(r->http->method, "POST") != 0) {
        gw_reply_error(r, 405, "method_not_allowed", "a verb is called with POST");
        return;
    }
    json_error_t jerr;
    json_t *j = r->http->body_len
                    ? json_loadb(r->http->body, r->http->body_len,
                                 JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr)
                    : json_object();
    if (!j) {
        gw_reply_error(r, 400, "bad_request", "the body is not JSON: %s (line %d)",
                       jerr.text, jerr.line);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    cairn_err_t err = {0};
    if (json_is_null(j) || cairn_json_pack(j, &pk, &err) == 0)
        s_call_reply(r, svc, verb, json_is_null(j) ? NULL : sb.data,
                     json_is_null(j) ? 0 : sb.size);
    else
        gw_reply_error(r, err.st, err.code, "%s", err.msg);
    json_decref(j);
    msgpack_sbuffer_destroy(&sb);
}

bool gw_rest(gw_req_t *r)
{
    const char *p = r->path, *m = r->http->method;
    if (!strcmp(p, "/healthz") || !strcmp(p, "/readyz")) {
        if (strcmp(m, "GET") && strcmp(m, "HEAD"))
            gw_reply_error(r, 405, "method_not_allowed", "%s is read with GET", p);
        else
            s_health(r, p[1] == 'r');
        return true;
    }
    if (!strcmp(p, "/metrics")) {
        if (strcmp(m, "GET"))
            gw_reply_error(r, 405, "method_not_allowed", "/metrics is read with GET");
        else
            gw_prometheus(r);
        return true;
    }
    if (!strcmp(p, "/api/v1") || !strcmp(p, "/api/v1/")) {
        s_call_reply(r, "sys", "services", NULL, 0);
        return true;
    }
    if (gw_signed_url(r)) return true; /* before the verbs: not a verb */
    if (!strncmp(p, "/api/v1/", 8)) {
        s_verb(r, p + 8);
        return true;
    }
    return false;
}
