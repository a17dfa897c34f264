/* The gateway's HTTP side as the plugin sees it (server.c): started at
 * init, stopped at fini. Free of the plugin and client headers, which
 * name some functions alike. */
#ifndef CAIRN_GATEWAY_SERVER_H
#define CAIRN_GATEWAY_SERVER_H

#include <msgpack.h>
#include <stdint.h>

#include "cairn/err.h"
#include "httpd.h"

typedef struct gateway gw_server_t;

typedef struct gw_server_opts {
    const char *endpoint; /* the kernel's frontend */
    uint32_t ttl_ms;      /* each bus request's */
    uint32_t url_ttl_s;   /* a signed download link's life (0: 300) */
    const char *ui_dir;   /* Cairn Studio's files; "" or NULL: beside the executable */
    unsigned max_event_streams; /* /api/v1/events streams open at once */
    cairn_httpd_opts_t http;
} gw_server_opts_t;

gw_server_t *gw_server_start(const gw_server_opts_t *o, cairn_err_t *err);
uint16_t gw_server_port(const gw_server_t *g);
/* Where Cairn Studio's files are looked for. */
const char *gw_server_ui_dir(const gw_server_t *g);
const char *gw_server_endpoint(const gw_server_t *g);
/* A bus event for the event streams, and their keep-alive (both on the
 * plugin's loop thread: its subscriptions and timer). */
void gw_server_event(gw_server_t *g, const char *topic, const msgpack_object *body);
void gw_server_keepalive(gw_server_t *g);
void gw_server_stop(gw_server_t **g);

#endif
