/* The gateway's HTTP side (server.h): the server's threads, the bus
 * clients they call through, the dispatch of a request to its routes.
 *
 * Each server thread turns an HTTP request into one bus request made
 * through the kernel's frontend as the caller: `Authorization: Bearer
 * TOKEN` is the request's token, the workspace comes from a /ws/NAME path
 * prefix or the `cairn-workspace` header. A thread keeps one bus client per
 * token it has seen (a few, least recently used out), so keep-alive callers
 * cost no connection a request; they go when the thread does. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "jsonmp.h"
#include "server.h"

#define GW_CLIENTS 8 /* bus clients a thread keeps, one per token */

/* ---- the bus clients of a server thread ---------------------------------- */

typedef struct {
    char token[GW_TOKEN_MAX];
    cairn_client_t *client;
    uint64_t used;
} slot_t;

typedef struct {
    slot_t slot[GW_CLIENTS];
    uint64_t clock;
} thread_clients_t;

static pthread_key_t s_clients;
static pthread_once_t s_clients_once = PTHREAD_ONCE_INIT;

static void s_clients_free(void *p)
{
    thread_clients_t *t = p;
    for (int i = 0; i < GW_CLIENTS; i++) cairn_client_destroy(&t->slot[i].client);
    free(t);
}

static void s_clients_key(void)
{
    pthread_key_create(&s_clients, s_clients_free);
}

/* This thread's client for token (made, or the least recently used one
 * replaced). */
static cairn_client_t *s_client(gateway_t *g, const char *token, cairn_err_t *err)
{
    pthread_once(&s_clients_once, s_clients_key);
    thread_clients_t *t = pthread_getspecific(s_clients);
    if (!t) {
        if (!(t = calloc(1, sizeof *t))) {
            cairn_err_oom(err, NULL);
            return NULL;
        }
        pthread_setspecific(s_clients, t);
    }
    slot_t *lru = &t->slot[0];
    for (int i = 0; i < GW_CLIENTS; i++) {
        slot_t *s = &t->slot[i];
        if (s->client && !strcmp(s->token, token)) {
            s->used = ++t->clock;
            return s->client;
        }
        if (!s->client || s->used < lru->used) lru = s;
    }
    cairn_client_destroy(&lru->client);
    lru->client = cairn_client_new(g->endpoint, token, err);
    if (!lru->client) return NULL;
    snprintf(lru->token, sizeof lru->token, "%s", token);
    lru->used = ++t->clock;
    return lru->client;
}

static int s_call_once(gw_req_t *r, const char *svc, const char *verb, const char *body,
                       size_t len, cairn_reply_t **reply, cairn_err_t *err)
{
    cairn_client_t *c = s_client(r->g, r->token, err);
    if (!c) return -1;
    cairn_client_set_workspace(c, r->ws[0] ? r->ws : NULL);
    cairn_client_set_forwarded(c, r->peer);
    return cairn_client_call(c, svc, verb, body, len, r->g->ttl_ms, reply, err);
}

cairn_client_t *gw_client_new(gw_req_t *r, cairn_err_t *err)
{
    cairn_client_t *c = cairn_client_new(r->g->endpoint, r->token, err);
    if (!c) return NULL;
    cairn_client_set_workspace(c, r->ws[0] ? r->ws : NULL);
    cairn_client_set_forwarded(c, r->peer);
    cairn_client_set_ttl(c, gw_ttl_ms(r));
    return c;
}

uint32_t gw_ttl_ms(const gw_req_t *r)
{
    return r->g->ttl_ms ? r->g->ttl_ms : 30000;
}

int gw_call(gw_req_t *r, const char *svc, const char *verb, const char *body,
            size_t len, cairn_reply_t **reply, cairn_err_t *err)
{
    int rc = s_call_once(r, svc, verb, body, len, reply, err);
    if (rc != 0 && err->st == CAIRN_ST_UNAUTHENTICATED && !r->basic && !*r->token)
        snprintf(
            err->msg, sizeof err->msg,
            "%s.%s needs a token: send 'Authorization: Bearer TOKEN' (a Cairn "
            "token: MLflow's client sends MLFLOW_TRACKING_TOKEN so), or HTTP Basic "
            "user:password",
            svc, verb);
    if (rc == 0 || err->st != CAIRN_ST_UNAUTHENTICATED || !r->basic || r->relogged ||
        r->in_login)
        return rc;
    /* a cached login the kernel no longer takes: log in again, once */
    r->relogged = true;
    cairn_reply_destroy(reply);
    gw_basic_forget(r);
    if (gw_basic(r, r->basic_b64, true, err) != 0) return -1;
    *err = (cairn_err_t){0};
    return s_call_once(r, svc, verb, body, len, reply, err);
}

/* ---- replies ------------------------------------------------------------- */

void gw_reply_json(gw_req_t *r, int status, json_t *j)
{
    if (!r->resp) { /* at a request's headers: answered later, as usual */
        json_decref(j);
        return;
    }
    char *text = j ? json_dumps(j, cairn_json_dump_flags(j, false)) : NULL;
    json_decref(j);
    r->resp->status = text ? status : 500;
    r->resp->body = text;
    r->resp->len = text ? strlen(text) : 0;
}

void gw_reply_error(gw_req_t *r, int status, const char *code, const char *fmt, ...)
{
    char msg[CAIRN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gw_reply_json(
        r, status,
        json_pack("{s:i, s:s, s:s}", "status", status, "code", code, "error", msg));
}

void gw_reply_body(gw_req_t *r, int status, cairn_reply_t *reply,
                   const cairn_json_write_opts_t *opts)
{
    if (!r->resp) return;
    size_t len = 0, n = 0;
    const void *body = cairn_reply_body(reply, &n);
    char *text = cairn_json_write_bytes(body, n, opts, &len); /* no unpacked tree */
    r->resp->status = text ? status : 500;
    r->resp->body = text;
    r->resp->len = text ? len : 0;
}

json_t *gw_reply_body_json(cairn_reply_t *reply)
{
    const msgpack_object *o = cairn_reply_object(reply);
    if (!o || o->type == MSGPACK_OBJECT_NIL) return json_object();
    return cairn_json_from_msgpack(o);
}

/* ---- dispatch ------------------------------------------------------------ */

/* The workspace: /ws/NAME (stripped from the path) or the cairn-workspace
 * header. false: answered. */
static bool s_workspace(gw_req_t *r)
{
    const char *ws = cairn_http_header(r->http, "cairn-workspace");
    r->path = r->http->path;
    if (!strncmp(r->path, "/ws/", 4)) {
        const char *name = r->path + 4, *slash = strchr(name, '/');
        size_t n = slash ? (size_t)(slash - name) : strlen(name);
        if (!n || n >= sizeof r->ws) {
            gw_reply_error(r, 400, "bad_request",
                           "a workspace prefix is /ws/NAME/..., NAME 1 to %zu bytes",
                           sizeof r->ws - 1);
            return false;
        }
        memcpy(r->ws, name, n);
        r->ws[n] = '\0';
        r->path = slash ? slash : "/";
    } else if (ws) {
        if (strlen(ws) >= sizeof r->ws) {
            gw_reply_error(r, 400, "bad_request",
                           "the cairn-workspace header is too long");
            return false;
        }
        snprintf(r->ws, sizeof r->ws, "%s", ws);
    }
    return true;
}

/* A refusal of the caller's credentials, in the route's shape. */
static bool s_refuse(gw_req_t *r, int st, const char *code, const char *msg)
{
    if (gw_is_mlflow(r->path))
        gw_mlflow_error(r, st, code, msg);
    else
        gw_reply_error(r, st, code, "%s", msg);
    return false;
}

/* The caller's token: Bearer, or HTTP Basic logged in. false: answered. */
static bool s_token(gw_req_t *r)
{
    const char *auth = cairn_http_header(r->http, "Authorization");
    r->token = "";
    if (!auth) return true;
    if (!strncasecmp(auth, "Bearer ", 7)) {
        r->token = auth + 7;
        if (strlen(r->token) < GW_TOKEN_MAX) return true;
        return s_refuse(r, 401, "unauthenticated", "the bearer token is too long");
    }
    if (!strncasecmp(auth, "Basic ", 6)) {
        cairn_err_t err = {0};
        if (gw_basic(r, auth + 6, false, &err) == 0) return true;
        return s_refuse(r, err.st >= 400 ? err.st : 401,
                        err.code[0] ? err.code : "unauthenticated", err.msg);
    }
    return s_refuse(r, 401, "unauthenticated",
                    "Authorization takes a bearer token (Bearer TOKEN) or HTTP Basic "
                    "credentials");
}

bool gw_caller(gw_req_t *r)
{
    cairn_http_peer(r->http, r->peer, sizeof r->peer);
    return s_workspace(r) && s_token(r);
}

static void s_handle(void *arg, const cairn_http_request_t *http,
                     cairn_http_response_t *resp)
{
    gw_req_t r = {.g = arg, .http = http, .resp = resp};
    if (gw_signed_download(&r)) return; /* as its link says, not its headers */
    if (!gw_caller(&r)) return;
    /* before rest.c's /api/v1/SVC/VERB, which would take it */
    if (gw_events(&r)) return;
    if (gw_artifacts(&r) || gw_mlflow(&r) || gw_rest(&r) || gw_static(&r)) return;
    gw_reply_error(&r, 404, "not_found", "no route for %s %s", http->method, r.path);
}

/* Which request bodies are streamed: artifact uploads. */
static bool s_stream(void *arg, const cairn_http_request_t *http,
                     cairn_http_stream_t *s)
{
    return gw_artifacts_stream(arg, http, s);
}

gw_server_t *gw_server_start(const gw_server_opts_t *o, cairn_err_t *err)
{
    gateway_t *g = calloc(1, sizeof *g);
    if (!g || !(g->endpoint = strdup(o->endpoint))) {
        free(g);
        cairn_err_oom(err, NULL);
        return NULL;
    }
    g->ttl_ms = o->ttl_ms;
    g->url_ttl_s = o->url_ttl_s ? o->url_ttl_s : 300;
    if (sodium_init() < 0) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                      "gateway: libsodium cannot start");
        free(g->endpoint);
        free(g);
        return NULL;
    }
    randombytes_buf(g->seal_key, sizeof g->seal_key); /* links die with us */
    g->ui_dir = gw_static_dir(o->ui_dir);
    if (!(g->events = gw_events_new(o->max_event_streams))) {
        free(g->ui_dir);
        free(g->endpoint);
        free(g);
        cairn_err_oom(err, NULL);
        return NULL;
    }
    cairn_httpd_opts_t http = o->http;
    http.stream = s_stream;
    g->httpd = cairn_httpd_start(&http, s_handle, g, err);
    if (!g->httpd) {
        gw_events_free(&g->events);
        free(g->ui_dir);
        free(g->endpoint);
        free(g);
        return NULL;
    }
    return g;
}

uint16_t gw_server_port(const gw_server_t *g)
{
    return cairn_httpd_port(g->httpd);
}

const char *gw_server_endpoint(const gw_server_t *g)
{
    return g->endpoint;
}

void gw_server_stop(gw_server_t **g)
{
    if (!g || !*g) return;
    gw_events_close((*g)->events);  /* the streams end, cleanly where they can */
    cairn_httpd_stop(&(*g)->httpd); /* its threads end: their clients go */
    gw_events_free(&(*g)->events);
    sodium_memzero((*g)->seal_key, sizeof(*g)->seal_key);
    free((*g)->endpoint);
    free((*g)->ui_dir);
    free(*g);
    *g = NULL;
}

void gw_server_event(gw_server_t *g, const char *topic, const msgpack_object *body)
{
    gw_events_event(g->events, topic, body);
}

void gw_server_keepalive(gw_server_t *g)
{
    gw_events_keepalive(g->events);
}

const char *gw_server_ui_dir(const gw_server_t *g)
{
    return g->ui_dir ? g->ui_dir : "(none)";
}
