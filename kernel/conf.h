/* kernel/conf.h — the service map: the kernel's settings and, for every
 * service, its plugin, its run mode and its settings (docs/CONF.md). */
#ifndef KERNEL_CONF_H
#define KERNEL_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

typedef enum { CONF_INPROC, CONF_PROCESS, CONF_REMOTE } conf_mode_t;

typedef struct conf_service {
    char *name;   /* the service name clients use */
    char *plugin; /* a plugin name (cairn_<plugin>.so in plugin_dir) or a path */
    conf_mode_t mode;
    uint32_t concurrency; /* most requests in flight to one worker; 0 = the plugin's */
    char **keys, **vals;  /* settings, strings as written */
    size_t nsettings;
    int line;
} conf_service_t;

typedef struct conf {
    char *source; /* file name, or "(embedded default)" */
    char *endpoint, *events, *worker_endpoint, *state_dir, *plugin_dir, *auth;
    char *audit, *audit_policy; /* the audit service ("none"); refuse | log */
    /* CurveZMQ (docs/TRANSPORT.md): auto | always; the server's secret key
     * file and the allowed public keys file ("" = none) */
    char *curve, *curve_secret_key_file, *curve_allowed_keys;
    uint64_t max_frame;
    uint64_t max_queue_bytes, max_client_bytes, max_unsent_bytes;
    uint32_t max_queue, default_ttl_ms, max_ttl_ms, heartbeat_ms, liveness;
    uint32_t init_timeout_ms; /* a plugin's init, before heartbeats count */
    conf_service_t *services;
    size_t nservices;
} conf_t;

/* Parse YAML text; errors name the source, the line and the problem. */
conf_t *conf_parse(const char *text, size_t len, const char *source, cairn_err_t *err);
conf_t *conf_load_file(const char *path, cairn_err_t *err);
void conf_destroy(conf_t **self_p);

/* Parse "65536", "64KiB", "16MiB", "2GiB"; 0 or -1. */
int conf_parse_size(const char *s, uint64_t *out);

/* The longest path an ipc:// address may hold: a Unix socket's sun_path is
 * 108 bytes with its NUL. */
#define CONF_IPC_PATH_MAX 107
/* 0, or -1 with a 400 bad_conf naming `what` when ep is an ipc:// address
 * whose path is empty or too long to bind or connect. */
int conf_check_endpoint(const char *what, const char *ep, cairn_err_t *err);

const char *conf_mode_name(conf_mode_t m);
/* Print the documented key table (cairnd --help-conf). */
void conf_print_help(void);

/* The embedded default service map (conf/cairn.yaml, compiled in). */
extern const char conf_embedded_default[];

#endif
