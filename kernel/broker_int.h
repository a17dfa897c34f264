/* kernel/broker_int.h — the broker's parts, shared by broker.c (routing),
 * supervisor.c (plugin lifecycles) and sys.c (the sys service). */
#ifndef KERNEL_BROKER_INT_H
#define KERNEL_BROKER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "runtime.h"
#include "audit.h"
#include "authz.h"
#include "tokens.h"
#include "broker.h"
#include "clients.h"
#include "curve.h"
#include "metrics.h"
#include "pending.h"

#define WORKER_ID_MAX 256

typedef enum { SVC_DOWN, SVC_STARTING, SVC_UP, SVC_RESTARTING } svc_state_t;

typedef struct verb_info {
    char *name, *perm;
    uint32_t flags, max_body;
    uint32_t mrow; /* the verb's row in its service's metrics (metrics.h) */
} verb_info_t;

typedef struct worker {
    unsigned char id[WORKER_ID_MAX]; /* routing id on the backend */
    size_t id_len;
    struct service *svc;
    uint32_t inflight, concurrency;
    uint64_t last_heard, last_sent;
    uint64_t stalled_since; /* inproc: silent past liveness since then; 0: not */
    bool ready;
    pid_t pid;
    cairn_door_t *door; /* the kernel's own inproc thread: INLINE verbs run here */
    struct worker *next;
} worker_t;

typedef struct service {
    const conf_service_t *conf;
    char *plugin_path;
    svc_state_t state;
    uint32_t restarts;
    char last_error[CAIRN_ERR_MSG_MAX];
    verb_info_t *verbs;
    size_t nverbs;
    metrics_t *metrics; /* counted per verb; kept across restarts (metrics.h) */
    worker_t *workers;
    pending_t *qhead, *qtail; /* requests waiting for a free worker */
    uint32_t qlen;
    msgpack_sbuffer settings; /* packed for WELCOME */
    bool was_up;              /* to tell "up" from "restarted" */
    /* process mode */
    pid_t pid;
    uint64_t next_start, started_at;
    uint32_t backoff_ms;
    /* inproc mode */
    cairn_loaded_t loaded;
    pthread_t thread;
    bool thread_running;
    atomic_int stop;
    cairn_door_t *door; /* shared with the thread's runtime */
    cairn_runtime_opts_t rt_opts;
    struct broker *broker;
} service_t;

struct broker {
    const conf_t *conf;
    char *endpoint, *state_dir, *run_dir, *bin_dir, *plugin_dir;
    char *worker_ipc, *events_ipc;
    char *frontend_ipc; /* the frontend for this host's plugins ($CAIRN_ENDPOINT) */
    void *zctx;
    void *frontend, *backend, *pub;
    int sigfd;
    authz_t *authz;
    curve_t *curve;   /* CurveZMQ on the network endpoints; NULL: none (curve.h) */
    tokens_t *tokens; /* requests waiting for their token (tokens.h) */
    kaudit_t *audit;  /* the audit trail's records on their way (audit.h) */
    msgpack_sbuffer audit_sb; /* reused for the audit group's body */
    pending_table_t *pending;
    clients_t *clients; /* bytes each client costs (clients.h) */
    /* Clients found gone while replying: their queued requests are dropped
     * once the current message is served (not in the middle of it). */
    unsigned char gone[8][PENDING_ROUTE_MAX];
    size_t gone_len[8], ngone;
    uint64_t replies_dropped; /* clients that did not read, or had left */
    service_t *services;
    size_t nservices;
    metrics_t *sys_metrics; /* the sys service's own (sys.c) */
    uint64_t started_us;    /* metrics_now_us at broker_new */
    msgpack_zone zone;      /* reused for every header decode */
    msgpack_sbuffer sb;     /* reused for every header encode */
    uint64_t next_heartbeat;
    uint64_t heartbeat_checked; /* when s_heartbeat last ran (0: never) */
    bool stopping;
};

/* broker.c */
void broker_send_event(broker_t *b, const char *topic, const msgpack_sbuffer *body);
void broker_worker_gone(broker_t *b, worker_t *w, const char *why);
void broker_send_worker(broker_t *b, worker_t *w, cairn_wcmd_t cmd,
                        const msgpack_sbuffer *hdr);
service_t *broker_find_service(broker_t *b, const char *name, size_t len);
const char *svc_state_name(svc_state_t s);

/* supervisor.c */
int supervisor_prepare(broker_t *b, service_t *s, cairn_err_t *err);
/* (supervisor_check is declared in broker.h, for cairnd --check.) */
void supervisor_start_all(broker_t *b);
void supervisor_on_sigchld(broker_t *b);
void supervisor_tick(broker_t *b, uint64_t now);
void supervisor_stop_all(broker_t *b);
void supervisor_release(service_t *s);

/* sys.c: answer a sys verb; fills the reply status and body. */
/* Who asks sys: a client's token and workspace, or a plugin's principal
 * (a nested call). */
typedef struct sys_caller {
    cairn_str_t tok, ws;
    const authz_principal_t *who; /* set for nested calls */
    const char *refused_sub;      /* out, on a 401/403: whom (the cache's), or "" */
} sys_caller_t;

/* Serve a sys verb: 404 when there is none, the verb's permission checked
 * for the caller, the reply body packed into body. 0, or -1 with err. */
int sys_handle(broker_t *b, cairn_str_t verb, sys_caller_t *caller,
               msgpack_sbuffer *body, cairn_err_t *err);
/* Count a sys request answered st, that arrived at t0_us (metrics.h). */
void sys_count(broker_t *b, cairn_str_t verb, int st, uint64_t t0_us);
/* The sys service's metrics rows, one per verb (at broker_new). */
metrics_t *sys_metrics_new(void);

#endif
