/* The gateway plugin's shared state and helpers (private to the plugin).
 *
 * Files: plugin.c (settings, init), server.c (the HTTP server, the bus
 * clients of its threads, a request's dispatch), rest.c (JSON REST for every verb,
 * health), events.c (server-sent events), mlflow.c (MLflow's REST API 2.0 onto
 * the tracking and registry verbs), artifacts.c, mpu.c, models.c (MLflow's
 * artifact proxy), signed.c (signed download links, seal.c their sealed part).
 * The gateway keeps no state of its own (but the key of its signed links,
 * made at its start, and its open event streams): each HTTP request becomes
 * one bus request, made as the HTTP caller (its token, its workspace)
 * through the kernel's frontend like any client. */
#ifndef CAIRN_GATEWAY_H
#define CAIRN_GATEWAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/client.h"
#include "httpd.h"
#include "jsonmp.h"
#include "seal.h"

#define GW_TOKEN_MAX 512 /* a bearer token's bytes, at most */

typedef struct gateway {
    cairn_httpd_t *httpd;
    char *endpoint; /* the kernel's frontend, where the bus calls go */
    uint32_t ttl_ms;
    char *ui_dir;             /* Cairn Studio's files (static.c); NULL: none served */
    struct gw_events *events; /* the event streams (events.c) */
    uint32_t url_ttl_s;       /* a signed download link's life (signed.c) */
    /* the signed links' key: random at start, so a link dies with the process */
    unsigned char seal_key[GW_SEAL_KEY_BYTES];
} gateway_t;

/* One HTTP request on its way: who asks (token, workspace) and the path
 * left once /ws/NAME is taken off. */
typedef struct gw_req {
    gateway_t *g;
    const cairn_http_request_t *http;
    cairn_http_response_t *resp;
    const char *path;
    char ws[128];
    const char *token; /* "" : none */
    char peer[64];     /* the HTTP client's address, forwarded to the kernel */
    /* HTTP Basic (basic.c): the pair's cache key, the token it logged in */
    bool basic, relogged, in_login;
    const char *basic_b64;
    unsigned char basic_key[32];
    char token_buf[GW_TOKEN_MAX];
} gw_req_t;

/* Call svc.verb as the request's caller with a msgpack body: 0 with *reply
 * (free with cairn_reply_destroy); -1 with err when the service refused
 * (err.st: the reply's status, err.code, err.msg; *reply may hold the
 * refusal: destroy it either way) or cairnd did not answer. */
int gw_call(gw_req_t *r, const char *svc, const char *verb, const char *body,
            size_t len, cairn_reply_t **reply, cairn_err_t *err);

/* A bus client of r's caller (its token, workspace, address, the ttl of
 * gw_call) that is a transfer's own for its duration, NULL with err: a
 * window of requests in flight (cairn_client_send / cairn_client_recv)
 * takes every reply of its client, so it cannot share the thread's, which
 * other requests served by the same thread call through meanwhile. */
cairn_client_t *gw_client_new(gw_req_t *r, cairn_err_t *err);
/* The ttl of r's bus requests (ms). */
uint32_t gw_ttl_ms(const gw_req_t *r);

/* artifacts.c: a window of a transfer's requests in flight, on its own
 * client (made at the first send): sent in order, their replies taken in
 * order, oldest first, each matched by its id (one of a dropped window is
 * let go when it comes). */
#define GW_WINDOW 4
typedef struct gw_window {
    cairn_client_t *c;
    uint32_t ttl_ms;
    int max; /* requests in flight at most (1 to GW_WINDOW; 0: GW_WINDOW) */
    int n;
    struct {
        uint64_t id, due, tag; /* tag: the caller's (an offset, a length) */
        cairn_reply_t *r;
    } q[GW_WINDOW];
} gw_window_t;
/* Send svc.verb as r's caller into the window (it has room: n below its
 * max);
 * 0, or -1 with err. */
int gw_win_send(gw_window_t *w, gw_req_t *r, const char *svc, const char *verb,
                const void *body, size_t len, uint64_t tag, cairn_err_t *err);
/* The oldest request's reply, out of the window, as gw_call answers: 0
 * with *reply, -1 with err (*reply: the refusal, if one came; destroy it
 * either way); *tag its tag. */
int gw_win_take(gw_window_t *w, cairn_reply_t **reply, uint64_t *tag, cairn_err_t *err);
/* Forget what is in flight (the client stays); gw_win_free also ends it. */
void gw_win_drop(gw_window_t *w);
void gw_win_free(gw_window_t *w);

/* The response: j as JSON text (stolen), with status. */
void gw_reply_json(gw_req_t *r, int status, json_t *j);
/* {"status", "code", "error"} (the JSON REST error shape). */
void gw_reply_error(gw_req_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The response: a reply's body as JSON text, written straight from its
 * msgpack (cairn_json_write, with opts), with status. */
void gw_reply_body(gw_req_t *r, int status, cairn_reply_t *reply,
                   const cairn_json_write_opts_t *opts);
/* A reply's body as JSON (an empty map for none); NULL when out of memory. */
json_t *gw_reply_body_json(cairn_reply_t *reply);

/* basic.c: the token of HTTP Basic credentials (base64 of user:password):
 * cached, or logged in through auth.login (fresh: never the cache); 401
 * when the login is refused. gw_basic_forget drops r's cached token. */
int gw_basic(gw_req_t *r, const char *b64, bool fresh, cairn_err_t *err);
void gw_basic_forget(const gw_req_t *r);

/* events.c: GET /api/v1/events, server-sent events of runs and jobs, fed
 * by the bus's events (gw_events_event, on the plugin's loop thread) and
 * a keep-alive timer; at most max_streams at once. close ends every
 * stream and takes no new one (before the server stops); free after it
 * stopped. */
typedef struct gw_events gw_events_t;
gw_events_t *gw_events_new(unsigned max_streams);
void gw_events_event(gw_events_t *e, const char *topic, const msgpack_object *body);
void gw_events_keepalive(gw_events_t *e);
void gw_events_close(gw_events_t *e);
void gw_events_free(gw_events_t **e);
bool gw_events(gw_req_t *r);

/* rest.c: /healthz, /readyz, /api/v1/...; mlflow.c: /api/2.0/mlflow/... and
 * /ajax-api/2.0/mlflow/... Each returns true when it took the path. */
bool gw_rest(gw_req_t *r);
bool gw_mlflow(gw_req_t *r);
/* The caller (workspace, token) of r->http; false: answered (or, at a
 * request's headers, to be answered once its body is in). */
bool gw_caller(gw_req_t *r);
/* artifacts.c: MLflow's artifact proxy; uploads are streamed (picked at
 * their headers), the rest routed as usual. */
bool gw_artifacts_stream(gateway_t *g, const cairn_http_request_t *http,
                         cairn_http_stream_t *s);
bool gw_artifacts(gw_req_t *r);
/* A fixed region a msgpack_packer writes into (gw_tail_write its callback),
 * for the fields packed after a chunk's bytes in a request built in place:
 * a write past cap fails. */
typedef struct gw_tail {
    char *p;
    size_t len, cap;
} gw_tail_t;
int gw_tail_write(void *data, const char *buf, size_t len);
/* A streamed body's bytes gathered into a chunk: copy from *p (*n bytes)
 * into buf after its *len bytes, up to cap, advancing both; true when the
 * chunk is full (send it, and start the next at *len = 0). */
bool gw_gather(char *buf, size_t *len, size_t cap, const char **p, size_t *n);
/* A file streamed to r's client in CHUNK ranges of svc.verb {key: id, path,
 * offset, length} -> {data, size}: get_artifact, the registry's read_file.
 * A refusal of the first range is answered in the route's shape (MLflow's,
 * or /api/v1's). filename: NULL, or sent as an attachment of that name,
 * typed by its extension. */
void gw_download(gw_req_t *r, const char *svc, const char *verb, const char *key,
                 const char *id, const char *path, const char *filename);
/* models.c: GET .../artifacts/_models/NAME/VERSION/PATH and the list of
 * ?path=_models/NAME/VERSION[/DIR], from the registry; true when r is one. */
bool gw_models(gw_req_t *r);
/* EXP/RUN/artifacts[/PATH] into run (128 bytes) and path (1025; may be
 * empty). */
bool gw_art_split(const char *rest, char run[128], char path[1025]);
/* mpu.c: MLflow's multipart uploads through the proxy; a part's PUT is
 * streamed (picked at its headers), the rest routed as usual. */
bool gw_mpu_stream(gateway_t *g, const cairn_http_request_t *http,
                   cairn_http_stream_t *s);
bool gw_mpu(gw_req_t *r);
/* signed.c: POST /api/v1/artifacts/download_url (as the caller) and
 * GET /api/v1/artifacts/download/SEALED/NAME (as the link's sealer: taken
 * before the request's own credentials are read). true when r is one. */
bool gw_signed_url(gw_req_t *r);
bool gw_signed_download(gw_req_t *r);
/* prom.c: GET /metrics, sys.metrics in Prometheus' text format. */
void gw_prometheus(gw_req_t *r);
/* static.c: Cairn Studio's files and, for any other path that is not the
 * API's, its index.html (the app's routes); GET and HEAD only. true when
 * it took the path. */
bool gw_static(gw_req_t *r);
/* A file's Content-Type by its name's extension (application/octet-stream
 * for one not known). */
const char *gw_mime_type(const char *path);
/* The UI's directory: the setting, else share/cairn/ui beside the
 * executable's bin/ (malloc'ed; NULL when out of memory). */
char *gw_static_dir(const char *setting);
/* Whether path is one of MLflow's, and an error in MLflow's shape
 * ({error_code, message}, with the status MLflow's server gives it). */
bool gw_is_mlflow(const char *path);
void gw_mlflow_error(gw_req_t *r, int st, const char *code, const char *msg);

#endif
