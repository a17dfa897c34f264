/* The HTTP gateway plugin (issue 15, first slice): Cairn over HTTP for
 * clients that speak no ZeroMQ (docs/GATEWAY.md). This file is the plugin
 * (settings, init, its one verb); server.c is the HTTP side, a client of
 * the bus like any other, which is why the two are apart (the plugin and
 * client headers name some functions alike). */
#define _GNU_SOURCE
#define CAIRN_PLUGIN_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/plugin.h"
#include "server.h"

typedef struct settings {
    const char *listen, *endpoint, *tls_cert, *tls_key, *ui_dir;
    int64_t threads, max_connections, timeout_s, ttl_ms, max_event_streams,
        download_url_ttl_s;
    uint64_t max_body;
} settings_t;

#define GW_KEEPALIVE_MS 15000 /* an event stream's comment, against idle timeouts */

/* The plugin's state: the HTTP side, and the timer that feeds it. */
typedef struct {
    gw_server_t *g;
    cairn_ctx_t *ctx;
    uint64_t keepalive;
} gw_plugin_t;

#define AT(f) offsetof(settings_t, f)
static const cairn_setting_t gateway_settings[] = {
    {.key = "listen",
     .type = CAIRN_CONF_STR,
     .offset = AT(listen),
     .dflt = "127.0.0.1:7790",
     .help = "HOST:PORT the HTTP server listens on ($CAIRN_HTTP overrides); "
             "loopback unless tls_cert and tls_key are set"},
    {.key = "tls_cert",
     .type = CAIRN_CONF_STR,
     .offset = AT(tls_cert),
     .dflt = "",
     .help = "a PEM certificate (chain) file: with tls_key, HTTPS only"},
    {.key = "tls_key",
     .type = CAIRN_CONF_STR,
     .offset = AT(tls_key),
     .dflt = "",
     .help = "the PEM private key file of tls_cert (mode 0600: its owner's only)"},
    {.key = "endpoint",
     .type = CAIRN_CONF_STR,
     .offset = AT(endpoint),
     .dflt = "",
     .help = "the kernel's frontend the bus calls go to (default $CAIRN_ENDPOINT, "
             "which cairnd sets for its plugins to its private ipc frontend)"},
    {.key = "threads",
     .type = CAIRN_CONF_INT,
     .offset = AT(threads),
     .dflt = "4",
     .help = "HTTP server threads (each serves one request at a time)",
     .min = 1,
     .max = 256},
    {.key = "max_connections",
     .type = CAIRN_CONF_INT,
     .offset = AT(max_connections),
     .dflt = "256",
     .help = "open HTTP connections at most (more are refused)",
     .min = 1,
     .max = 65536},
    {.key = "timeout_s",
     .type = CAIRN_CONF_INT,
     .offset = AT(timeout_s),
     .dflt = "60",
     .help = "an idle HTTP connection is closed after this many seconds",
     .min = 1,
     .max = 86400},
    {.key = "ttl_ms",
     .type = CAIRN_CONF_INT,
     .offset = AT(ttl_ms),
     .dflt = "30000",
     .help = "each bus request's ttl",
     .min = 1,
     .max = 3600000},
    {.key = "download_url_ttl_s",
     .type = CAIRN_CONF_INT,
     .offset = AT(download_url_ttl_s),
     .dflt = "300",
     .help = "a signed download link's life in seconds (POST "
             "/api/v1/artifacts/download_url); every link dies with the gateway too",
     .min = 10,
     .max = 86400},
    {.key = "max_body",
     .type = CAIRN_CONF_SIZE,
     .offset = AT(max_body),
     .dflt = "16MiB",
     .help = "a request body's size at most (413 beyond)",
     .min = 1024,
     .max = 1 << 30},
    {.key = "max_event_streams",
     .type = CAIRN_CONF_INT,
     .offset = AT(max_event_streams),
     .dflt = "64",
     .help = "GET /api/v1/events streams open at once (503 beyond); each holds a "
             "connection (max_connections)",
     .min = 1,
     .max = 65536},
    {.key = "ui_dir",
     .type = CAIRN_CONF_STR,
     .offset = AT(ui_dir),
     .dflt = "",
     .help = "Cairn Studio's built files, served at / (default: share/cairn/ui beside "
             "the executable's bin/, where the build and the install put them)"},
    {.key = NULL},
};

static void gateway_event(void *arg, const char *topic, const msgpack_object *body)
{
    gw_plugin_t *p = arg;
    gw_server_event(p->g, topic, body);
}

static void gateway_keepalive(void *arg)
{
    gw_plugin_t *p = arg;
    gw_server_keepalive(p->g);
}

/* The events the streams carry (events.c), subscribed once; without them
 * a stream still works, with its keep-alives only. */
static void gateway_subscribe(gw_plugin_t *p)
{
    static const char *const topics[] = {"run.", "jobs.status", "auth.changed"};
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        cairn_err_t err = {0};
        if (cairn_subscribe(p->ctx, topics[i], gateway_event, p, &err) != 0)
            cairn_log(p->ctx, CAIRN_LOG_WARN,
                      "gateway: event streams get no %s events here: %s", topics[i],
                      err.msg);
    }
    p->keepalive =
        cairn_timer_add(p->ctx, GW_KEEPALIVE_MS, GW_KEEPALIVE_MS, gateway_keepalive, p);
}

static int gateway_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
                             "gateway: this host predates typed settings");
    const char *ep = *set->endpoint ? set->endpoint : getenv("CAIRN_ENDPOINT");
    const char *env = getenv("CAIRN_HTTP");
    const char *listen = env && *env ? env : set->listen;
    gw_server_opts_t o = {.endpoint = ep && *ep ? ep : "tcp://127.0.0.1:7780",
                          .ttl_ms = (uint32_t)set->ttl_ms,
                          .url_ttl_s = (uint32_t)set->download_url_ttl_s,
                          .ui_dir = set->ui_dir,
                          .max_event_streams = (unsigned)set->max_event_streams,
                          .http = {.listen = listen,
                                   .max_body = (size_t)set->max_body,
                                   .threads = (unsigned)set->threads,
                                   .max_connections = (unsigned)set->max_connections,
                                   .timeout_s = (unsigned)set->timeout_s,
                                   .tls_cert = set->tls_cert,
                                   .tls_key = set->tls_key}};
    gw_plugin_t *p = calloc(1, sizeof *p);
    if (!p) return cairn_err_oom(err, NULL);
    gw_server_t *g = gw_server_start(&o, err);
    if (!g) {
        free(p);
        return -1;
    }
    p->g = g;
    p->ctx = ctx;
    const char *colon = strrchr(listen, ':');
    bool tls = *set->tls_cert;
    cairn_log(ctx, CAIRN_LOG_INFO, "gateway: %s on %s://%.*s:%u, bus calls to %s",
              tls ? "HTTPS" : "HTTP", tls ? "https" : "http",
              (int)(colon ? colon - listen : 0), listen, (unsigned)gw_server_port(g),
              o.endpoint);
    cairn_log(ctx, CAIRN_LOG_INFO, "gateway: Cairn Studio's files from %s",
              gw_server_ui_dir(g));
    gateway_subscribe(p);
    *state = p;
    return 0;
}

static void gateway_fini(void *state)
{
    gw_plugin_t *p = state;
    if (!p) return;
    if (p->keepalive) cairn_timer_cancel(p->ctx, p->keepalive);
    gw_server_stop(&p->g);
    free(p);
}

/* info {} -> {port, endpoint}: where the gateway listens (port 0 in the
 * conf picks one: tests read it here) and where its bus calls go. */
static int gateway_info(void *state, cairn_req_t *req, cairn_err_t *err)
{
    (void)err;
    gw_server_t *g = ((gw_plugin_t *)state)->g;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "port");
    msgpack_pack_uint16(&pk, gw_server_port(g));
    cairn_pack_kv_text(&pk, "endpoint", gw_server_endpoint(g));
    int rc = cairn_reply_sbuf(req, CAIRN_ST_OK, &sb);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static const cairn_verb_t gateway_verbs[] = {
    {.name = "info",
     .handle = gateway_info,
     .perm = "gateway.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .help = "{} -> port (the HTTP server's), endpoint (where its bus calls go)"},
    {.name = NULL},
};

static const cairn_plugin_t gateway_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "gateway",
    .version = "0.1.0",
    .description = "HTTP: JSON REST for every verb, MLflow's REST API, health",
    .verbs = gateway_verbs,
    .settings = gateway_settings,
    .settings_size = sizeof(settings_t),
    .init = gateway_init,
    .fini = gateway_fini,
};

CAIRN_PLUGIN_DEFINE(gateway_plugin)
