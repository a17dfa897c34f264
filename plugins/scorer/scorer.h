/* plugins/scorer/scorer.h — the scorer plugin's own parts (service
 * `endpoints`, docs/ENDPOINTS.md).
 *
 *   plugin.c   the descriptor, settings, verb table, init and fini
 *   store.c    endpoints.db: endpoints (with their keys and traffic) and
 *              deployments
 *   routes.c   what the HTTP threads read: an immutable snapshot of every
 *              endpoint and its deployments' loaded models, swapped whole
 *   verbs.c    create_endpoint, get_endpoint, list_endpoints,
 *              delete_endpoint, create_deployment, get_deployment,
 *              delete_deployment, update_deployment, update_traffic, get_keys,
 *              regenerate_keys
 *   http.c     POST /endpoints/NAME/score and GET .../health
 *   input.c    a scoring request's body (Azure ML's and MLflow's JSON
 *              shapes) read into rows of floats (input.h, pure)
 *   batch.c    batch endpoints: create_batch_endpoint, get_, list_,
 *              update_, delete_batch_endpoint, and invoke_batch, which
 *              submits a job to the jobs service running cairn-batch-score
 *              (batch_score.h)
 *   batch_store.c  their rows in endpoints.db
 *
 * The verbs run on the plugin's loop thread and change the database, then
 * build a new routes snapshot and swap it in; the HTTP threads take a
 * reference to the snapshot of the moment, so a change of traffic or of a
 * model is atomic for every request: each sees the old or the new whole. */
#ifndef CAIRN_SCORER_H
#define CAIRN_SCORER_H

#define CAIRN_PLUGIN_SOURCE
#include <linux/limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/plugin.h"
#include "httpd.h"
#include "model.h"
#include "pool.h"
#include "tokens.h"

#define EP_NAME_MAX 32 /* endpoint and deployment names: [a-z0-9-], as Azure's */
#define EP_DEPLOYMENTS_MAX 16
#define EP_KEY_LEN 43 /* 32 random bytes, base64url without padding */
#define EP_REF_MAX 512
#define EP_SCRIPT_MAX 255          /* a scoring script's path in its code folder */
#define EP_TIMEOUT_MS_DEFAULT 5000 /* Azure ML's request_timeout_ms */

typedef struct scorer scorer_t;

/* ---- store.c -------------------------------------------------------------- */

typedef struct ep_row {
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char name[EP_NAME_MAX + 1];
    char auth_mode[8];
    char key1[EP_KEY_LEN + 1], key2[EP_KEY_LEN + 1];
    int64_t created;
} ep_row_t;

typedef struct dep_row {
    char endpoint[EP_NAME_MAX + 1];
    char name[EP_NAME_MAX + 1];
    char model[EP_REF_MAX + 1];     /* as asked: model:NAME@ALIAS */
    char model_ref[EP_REF_MAX + 1]; /* canonical: model:NAME:VERSION */
    char path[PATH_MAX];            /* the registry's folder of its files */
    int64_t instance_count, traffic, created;
    int64_t mirror; /* percent of the live requests copied to it */
    bool follow;    /* model:NAME@ALIAS, rolled to each version the alias moves to */
    /* the python flavor: the code snapshot's folder and the scoring script
     * in it ("" for a model scored in-process) */
    char code[PATH_MAX];
    char script[EP_SCRIPT_MAX + 1];
    int64_t timeout_ms;     /* request_settings.request_timeout_ms */
    int64_t max_concurrent; /* request_settings.max_concurrent_requests; 0: any */
} dep_row_t;

typedef struct ep_store ep_store_t;
ep_store_t *ep_store_open(const char *path, cairn_err_t *err);
void ep_store_close(ep_store_t **self_p);
/* 409 when the name is taken (in any workspace: it is in the URL). */
int ep_store_insert(ep_store_t *s, const ep_row_t *e, cairn_err_t *err);
/* 0 found, 1 not (or another workspace's), -1 error. ws NULL: any. */
int ep_store_get(ep_store_t *s, const char *ws, const char *name, ep_row_t *e,
                 cairn_err_t *err);
int ep_store_delete(ep_store_t *s, const char *name, cairn_err_t *err);
/* The connection, for batch_store.c's statements (the loop thread's). */
sqlite3 *ep_store_db(ep_store_t *s);
int ep_store_set_keys(ep_store_t *s, const ep_row_t *e, cairn_err_t *err);
int ep_store_each(ep_store_t *s, const char *ws,
                  int (*fn)(void *arg, const ep_row_t *e), void *arg, cairn_err_t *err);
int dep_store_insert(ep_store_t *s, const dep_row_t *d, cairn_err_t *err);
int dep_store_get(ep_store_t *s, const char *endpoint, const char *name, dep_row_t *d,
                  cairn_err_t *err);
int dep_store_delete(ep_store_t *s, const char *endpoint, const char *name,
                     cairn_err_t *err);
/* The endpoint's mirror, as dep_store_set_traffic. */
int dep_store_set_mirror(ep_store_t *s, const char *endpoint, const char *const *names,
                         const int64_t *pct, int n, cairn_err_t *err);
/* Its model (model, model_ref, path) and instance_count replaced. */
int dep_store_update(ep_store_t *s, const dep_row_t *d, cairn_err_t *err);
/* Every deployment of endpoint (NULL: of all), by name. */
int dep_store_each(ep_store_t *s, const char *endpoint,
                   int (*fn)(void *arg, const dep_row_t *d), void *arg,
                   cairn_err_t *err);
/* The endpoint's traffic: each deployment's share (absent: 0), in one
 * transaction. */
int dep_store_set_traffic(ep_store_t *s, const char *endpoint, const char *const *names,
                          const int64_t *pct, int n, cairn_err_t *err);

/* ---- routes.c --------------------------------------------------------------- */

/* A deployment's counters, kept across snapshots (routes.c counts the
 * snapshots holding it): requests, errors, and a latency histogram of
 * STATS_BUCKETS buckets, four to each power of two of microseconds. */
#define STATS_BUCKETS 128
typedef struct dep_stats {
    struct dep_stats *next;
    char endpoint[EP_NAME_MAX + 1], name[EP_NAME_MAX + 1];
    int refs;                                 /* under sc->lock */
    atomic_ullong requests, errors, mirrored; /* mirrored: copies it scored */
    atomic_llong inflight;                    /* requests in progress now */
    uint64_t published; /* requests at the last endpoints.metrics event (loop thread) */
    atomic_ullong latency[STATS_BUCKETS];
} dep_stats_t;

/* The bucket of a latency of us microseconds, and a bucket's upper bound. */
int stats_bucket(uint64_t us);
double stats_bucket_top_ms(int b);

typedef struct route_dep {
    char name[EP_NAME_MAX + 1];
    dep_stats_t *stats;
    const scorer_model_t *model; /* shared by snapshots (routes.c counts them) */
    const char *const *names;    /* its features' names; NULL: it has none */
    py_pool_t *pool;             /* the python flavor's workers (model NULL) */
    int64_t traffic, mirror;
    int64_t timeout_ms, max_concurrent;
} route_dep_t;

typedef struct route_ep {
    char name[EP_NAME_MAX + 1];
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char key1[EP_KEY_LEN + 1], key2[EP_KEY_LEN + 1];
    bool key_auth, token_auth;
    route_dep_t dep[EP_DEPLOYMENTS_MAX];
    int ndep;
    int64_t traffic_total;
} route_ep_t;

typedef struct routes {
    atomic_int refs;
    route_ep_t *ep;
    int nep;
} routes_t;

/* A loaded model (or a python deployment's workers), shared between
 * snapshots and freed with the last. */
typedef struct model_entry model_entry_t;
/* The workers of python deployment d: its pool, started now (in the
 * background) or found running, held (routes_entry_put when done). */
model_entry_t *routes_pool_hold(scorer_t *sc, const dep_row_t *d, cairn_err_t *err);
/* The same, only when running: NULL when not. */
model_entry_t *routes_pool_find(scorer_t *sc, const dep_row_t *d, cairn_err_t *err);
py_pool_t *routes_entry_pool(model_entry_t *e);
void routes_entry_put(scorer_t *sc, model_entry_t *e);

/* Build the snapshot of what the store holds now (models loaded once, from
 * the cache) and swap it in. */
int routes_rebuild(scorer_t *sc, cairn_err_t *err);
/* The snapshot of the moment, referenced; routes_release when done. */
routes_t *routes_take(scorer_t *sc);
void routes_release(routes_t *r);
/* The endpoint named name in r, or NULL. */
const route_ep_t *routes_find(const routes_t *r, const char *name);
/* A deployment of e by its traffic (rand in [0, 1)), or NULL when none
 * takes traffic; by name when name is not NULL. */
const route_dep_t *routes_pick(const route_ep_t *e, const char *name, double rand);
void routes_free_all(scorer_t *sc);

/* ---- batch_store.c -------------------------------------------------------------- */

/* A batch endpoint: a model pinned at create (or update) and the defaults
 * of its jobs. */
typedef struct batch_row {
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char name[EP_NAME_MAX + 1];
    char model[EP_REF_MAX + 1];     /* as asked */
    char model_ref[EP_REF_MAX + 1]; /* canonical: model:NAME:VERSION */
    char path[PATH_MAX];            /* the registry's folder of its files */
    int64_t mini_batch_size, max_concurrency, error_threshold, max_retries;
    int64_t created, updated;
} batch_row_t;

typedef struct batch_store batch_store_t;
batch_store_t *batch_store_open(ep_store_t *s, cairn_err_t *err);
void batch_store_close(batch_store_t **self_p);
/* 409 when ws has one of that name. */
int batch_store_insert(batch_store_t *b, const batch_row_t *r, cairn_err_t *err);
/* 0 found, 1 not, -1 error. */
int batch_store_get(batch_store_t *b, const char *ws, const char *name, batch_row_t *r,
                    cairn_err_t *err);
/* Every column but ws, name and created replaced; 404 when gone. */
int batch_store_update(batch_store_t *b, const batch_row_t *r, cairn_err_t *err);
/* 0 deleted, 1 not there, -1 error. */
int batch_store_delete(batch_store_t *b, const char *ws, const char *name,
                       cairn_err_t *err);
int batch_store_each(batch_store_t *b, const char *ws,
                     int (*fn)(void *arg, const batch_row_t *r), void *arg,
                     cairn_err_t *err);

/* ---- the plugin's state ------------------------------------------------------ */

struct scorer {
    cairn_ctx_t *ctx;
    ep_store_t *store;
    cairn_httpd_t *httpd;
    char base_uri[128];   /* http://127.0.0.1:PORT */
    pthread_mutex_t lock; /* guards current and the model cache */
    routes_t *current;
    struct model_entry *models; /* path -> loaded model, refcounted */
    /* the python flavor: the interpreter, the driver (score_worker.py,
     * written to the state folder), where the workers' logs go and the
     * code snapshots are kept, and how long an init() may take */
    char python[PATH_MAX], driver[PATH_MAX], logs[PATH_MAX], codes[PATH_MAX];
    int init_timeout_ms;
    struct awaiting *awaiting; /* deployments waiting for their workers */
    uint64_t trim_timer;       /* the python deployments' logs kept bounded */
    uint64_t metrics_timer;    /* endpoints.metrics events */
    token_cache_t *tokens;     /* auth_mode token: the tokens the kernel said yes to */
    dep_stats_t *stats;        /* each deployment's counters, refcounted */
    struct creating *pending;  /* deployments waiting for the registry */
    batch_store_t *batch;      /* batch endpoints (batch.c) */
    struct batch_wait *batch_pending; /* batch verbs waiting for another service */
    char batch_scorer[PATH_MAX];      /* cairn-batch-score */
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

/* ---- verbs.c ----------------------------------------------------------------- */
int ep_create(void *state, cairn_req_t *req, cairn_err_t *err);
int ep_get(void *state, cairn_req_t *req, cairn_err_t *err);
int ep_list(void *state, cairn_req_t *req, cairn_err_t *err);
int ep_delete(void *state, cairn_req_t *req, cairn_err_t *err);
int ep_get_keys(void *state, cairn_req_t *req, cairn_err_t *err);
int ep_regenerate_keys(void *state, cairn_req_t *req, cairn_err_t *err);
int dep_create(void *state, cairn_req_t *req, cairn_err_t *err);
int dep_get(void *state, cairn_req_t *req, cairn_err_t *err);
int dep_list(void *state, cairn_req_t *req, cairn_err_t *err);
int dep_delete(void *state, cairn_req_t *req, cairn_err_t *err);
int dep_update(void *state, cairn_req_t *req, cairn_err_t *err);
int ep_update_traffic(void *state, cairn_req_t *req, cairn_err_t *err);
int ep_metrics(void *state, cairn_req_t *req, cairn_err_t *err);
/* A timer's: endpoints.metrics {ws, endpoint, deployments [...]} for each
 * endpoint that answered since the last time. */
void ep_metrics_publish(void *arg);
int ep_update_mirror(void *state, cairn_req_t *req, cairn_err_t *err);
/* The registry moved an alias (event model.alias_moved): deployments that
 * follow it roll to its new version. */
void dep_alias_moved(void *arg, const char *topic, const msgpack_object *body);
/* Free the deployments still waiting for the registry (at fini: the
 * runtime drops their calls without calling back). */
void dep_pending_free_all(scorer_t *sc);
/* The request's workspace ("default" when it names none). */
const char *ep_ws(cairn_req_t *req);
/* body[key], a name as Azure's: 3 to 32 of [a-z0-9-], starting with a
 * letter, not ending with '-' (400 otherwise), into out. */
int ep_name_field(const msgpack_object *body, const char *key, char *out,
                  cairn_err_t *err);
/* The plugin's reply buffer, emptied, and its packer. */
msgpack_packer *ep_reply_begin(scorer_t *sc);
/* A new key: 32 random bytes as base64url. */
void ep_new_key(char out[EP_KEY_LEN + 1]);

/* The deployment req's body names (endpoint, name) in req's workspace. */
int dep_find(scorer_t *sc, cairn_req_t *req, dep_row_t *d, cairn_err_t *err);

/* ---- python.c: the python flavor's verb side ----------------------------------- */

/* request_settings and code_configuration of a create or update body into
 * d (the code snapshotted now, under sc->codes). */
int dep_flavor_read(scorer_t *sc, const msgpack_object *body, dep_row_t *d,
                    cairn_err_t *err);
/* d's request_settings, flavor and (python) code_configuration and workers:
 * dep_flavor_fields(d) more key-value pairs of a map being packed. */
void dep_flavor_pack(scorer_t *sc, msgpack_packer *pk, const dep_row_t *d);
int dep_flavor_fields(const dep_row_t *d);
/* The code snapshots of a deployment (name NULL: of every deployment of
 * the endpoint), removed. */
void dep_flavor_remove(scorer_t *sc, const char *endpoint, const char *name);
/* Once the workers of python deployment d answer (a worker has run
 * init()), or cannot: done(arg, NULL) or done(arg, why), on the loop
 * thread. -1 with err when the wait cannot start. */
typedef void(dep_ready_fn)(void *arg, const char *why);
typedef struct awaiting awaiting_t;
int dep_python_await(scorer_t *sc, const dep_row_t *d, dep_ready_fn *done, void *arg,
                     cairn_err_t *err);
void dep_python_await_free_all(scorer_t *sc);
/* get_deployment_logs {endpoint*, name*, lines} -> logs */
int dep_logs(void *state, cairn_req_t *req, cairn_err_t *err);
/* A timer's: each python deployment's log kept under its bound. */
void dep_logs_trim(void *arg);

/* check_access {endpoint*} -> {}: the caller may score (tokens.c asks it
 * with the caller's token; its permission, endpoints.write, decides). */
int ep_check_access(void *state, cairn_req_t *req, cairn_err_t *err);

/* ---- batch.c ----------------------------------------------------------------- */
int batch_create(void *state, cairn_req_t *req, cairn_err_t *err);
int batch_get(void *state, cairn_req_t *req, cairn_err_t *err);
int batch_list(void *state, cairn_req_t *req, cairn_err_t *err);
int batch_update(void *state, cairn_req_t *req, cairn_err_t *err);
int batch_delete(void *state, cairn_req_t *req, cairn_err_t *err);
int batch_invoke(void *state, cairn_req_t *req, cairn_err_t *err);
/* At init: the store's statements and the scorer's path (setting: the
 * batch_scorer setting, "" for cairn-batch-score beside this process's
 * executable). */
int batch_init(scorer_t *sc, const char *setting, cairn_err_t *err);
/* At fini: what waits for another service is dropped, the store closed. */
void batch_fini(scorer_t *sc);

/* ---- http.c ------------------------------------------------------------------ */
void ep_http_handle(void *arg, const cairn_http_request_t *req,
                    cairn_http_response_t *resp);

#endif
