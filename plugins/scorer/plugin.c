/* The scorer plugin (service `endpoints`): online endpoints that answer
 * HTTP themselves, each with deployments of registered models scored in
 * this process (model.h), traffic split between them (scorer.h says how
 * the parts fit; docs/ENDPOINTS.md what a client sees). A process in the
 * default conf. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <sys/stat.h>

#include "scorer.h"

#define LOG_TRIM_MS 10000

typedef struct settings {
    const char *listen, *python, *batch_scorer;
    int64_t threads, max_connections, timeout_s, init_timeout_s, metrics_event_s;
    uint64_t max_body;
} settings_t;

#define AT(f) offsetof(settings_t, f)
static const cairn_setting_t scorer_settings[] = {
    {.key = "listen",
     .type = CAIRN_CONF_STR,
     .offset = AT(listen),
     .dflt = "127.0.0.1:7791",
     .help = "HOST:PORT the scoring HTTP server listens on, loopback "
             "($CAIRN_SCORE_HTTP overrides)"},
    {.key = "threads",
     .type = CAIRN_CONF_INT,
     .offset = AT(threads),
     .dflt = "0",
     .help = "HTTP threads scoring at once (0: one per CPU this process may use; "
             "raise it for python deployments with more workers than CPUs)",
     .min = 0,
     .max = 256},
    {.key = "max_connections",
     .type = CAIRN_CONF_INT,
     .offset = AT(max_connections),
     .dflt = "1024",
     .help = "open HTTP connections at most (more are refused)",
     .min = 1,
     .max = 65536},
    {.key = "timeout_s",
     .type = CAIRN_CONF_INT,
     .offset = AT(timeout_s),
     .dflt = "30",
     .help = "an idle HTTP connection is closed after this many seconds (slow clients)",
     .min = 1,
     .max = 3600},
    {.key = "max_body",
     .type = CAIRN_CONF_SIZE,
     .offset = AT(max_body),
     .dflt = "16MiB",
     .help = "a scoring request's body at most (413 beyond)",
     .min = 1024,
     .max = 1 << 30},
    {.key = "python",
     .type = CAIRN_CONF_STR,
     .offset = AT(python),
     .dflt = "/usr/bin/python3",
     .help = "the interpreter of python deployments' scoring scripts"},
    {.key = "init_timeout_s",
     .type = CAIRN_CONF_INT,
     .offset = AT(init_timeout_s),
     .dflt = "120",
     .help = "a scoring script's init() at most, in seconds",
     .min = 1,
     .max = 3600},
    {.key = "metrics_event_s",
     .type = CAIRN_CONF_INT,
     .offset = AT(metrics_event_s),
     .dflt = "10",
     .help = "how often each endpoint that answered publishes endpoints.metrics, in "
             "seconds (0: never)",
     .min = 0,
     .max = 3600},
    {.key = "batch_scorer",
     .type = CAIRN_CONF_PATH,
     .offset = AT(batch_scorer),
     .dflt = "",
     .help = "the program a batch endpoint's job runs (default: cairn-batch-score "
             "beside this process's executable)"},
    {.key = NULL},
};

/* The python workers' driver, compiled in (score_worker.py), written to
 * the state folder for the interpreter to run. */
static const char s_driver[] = {
#include "score_worker_py.inc"
};

static int s_mkdir(const char *dir, cairn_err_t *err)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST) return 0;
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STATE_DIR,
                         "cannot make %s: %s", dir, strerror(errno));
}

/* STATE/endpoints/{code,logs}/ and the driver, for the python flavor. */
static int s_python_setup(scorer_t *sc, const settings_t *set, cairn_err_t *err)
{
    char top[PATH_MAX];
    snprintf(top, sizeof top, "%s/endpoints", cairn_state_dir(sc->ctx));
    snprintf(sc->codes, sizeof sc->codes, "%s/code", top);
    snprintf(sc->logs, sizeof sc->logs, "%s/logs", top);
    snprintf(sc->driver, sizeof sc->driver, "%s/score_worker.py", top);
    snprintf(sc->python, sizeof sc->python, "%s", set->python);
    sc->init_timeout_ms = (int)set->init_timeout_s * 1000;
    if (s_mkdir(top, err) != 0 || s_mkdir(sc->codes, err) != 0 ||
        s_mkdir(sc->logs, err) != 0)
        return -1;
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", sc->driver);
    FILE *f = fopen(tmp, "we");
    bool ok = f && fwrite(s_driver, 1, sizeof s_driver, f) == sizeof s_driver;
    if (f && fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, sc->driver) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STATE_DIR,
                             "cannot write %s: %s", sc->driver, strerror(errno));
    return 0;
}

/* auth.changed: a token revoked, a role unassigned: every cached yes to
 * a token goes. */
static void s_auth_changed(void *arg, const char *topic, const msgpack_object *body)
{
    (void)topic;
    (void)body;
    token_cache_forget(((scorer_t *)arg)->tokens);
}

/* One HTTP thread a CPU by default: more take turns on a core and
 * double the tail latency (bench_scorer_http: p99 15 ms with 4 threads on
 * one core, 0.75 ms with one, at the same throughput). */
static unsigned s_threads(int64_t setting)
{
    if (setting > 0) return (unsigned)setting;
    cpu_set_t cpus;
    int n = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 0;
    return n > 0 ? (unsigned)n : 2;
}

static void scorer_fini(void *state)
{
    scorer_t *sc = state;
    if (!sc) return;
    cairn_httpd_stop(&sc->httpd); /* requests in progress finish first */
    if (sc->trim_timer) cairn_timer_cancel(sc->ctx, sc->trim_timer);
    if (sc->metrics_timer) cairn_timer_cancel(sc->ctx, sc->metrics_timer);
    dep_python_await_free_all(sc);
    routes_free_all(sc);
    dep_pending_free_all(sc);
    token_cache_free(&sc->tokens);
    batch_fini(sc);
    ep_store_close(&sc->store);
    msgpack_sbuffer_destroy(&sc->sb);
    pthread_mutex_destroy(&sc->lock);
    free(sc);
}

static int scorer_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
                             "this host predates typed settings; endpoints needs a "
                             "newer one");
    if (sodium_init() < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "libsodium did not start");
    scorer_t *sc = calloc(1, sizeof *sc);
    if (!sc) return cairn_err_oom(err, NULL);
    sc->ctx = ctx;
    pthread_mutex_init(&sc->lock, NULL);
    msgpack_sbuffer_init(&sc->sb);
    msgpack_packer_init(&sc->pk, &sc->sb, msgpack_sbuffer_write);
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/endpoints.db", cairn_state_dir(ctx));
    const char *env = getenv("CAIRN_SCORE_HTTP");
    cairn_httpd_opts_t http = {.listen = env && *env ? env : set->listen,
                               .max_body = (size_t)set->max_body,
                               .threads = s_threads(set->threads),
                               .max_connections = (unsigned)set->max_connections,
                               .timeout_s = (unsigned)set->timeout_s};
    /* the routes first (the models of the deployments kept), then the server */
    /* the kernel's frontend, as it gives it to its children (token checks) */
    const char *kernel = getenv("CAIRN_ENDPOINT");
    if (!(sc->tokens =
              token_cache_new(kernel && *kernel ? kernel : "tcp://127.0.0.1:7780"))) {
        scorer_fini(sc);
        return cairn_err_oom(err, NULL);
    }
    if (s_python_setup(sc, set, err) != 0 || !(sc->store = ep_store_open(db, err)) ||
        batch_init(sc, set->batch_scorer, err) != 0 || routes_rebuild(sc, err) != 0 ||
        !(sc->httpd = cairn_httpd_start(&http, ep_http_handle, sc, err))) {
        scorer_fini(sc);
        return -1;
    }
    cairn_err_t sub = {0};
    if (cairn_subscribe(ctx, "model.alias_moved", dep_alias_moved, sc, &sub) != 0)
        cairn_log(ctx, CAIRN_LOG_WARN,
                  "endpoints: deployments cannot follow aliases here: %s", sub.msg);
    sub = (cairn_err_t){0};
    if (cairn_subscribe(ctx, "auth.changed", s_auth_changed, sc, &sub) != 0)
        cairn_log(ctx, CAIRN_LOG_WARN,
                  "endpoints: a revoked token may score a token endpoint for up to "
                  "10 s here: %s",
                  sub.msg);
    sc->trim_timer = cairn_timer_add(ctx, LOG_TRIM_MS, LOG_TRIM_MS, dep_logs_trim, sc);
    uint32_t every = (uint32_t)set->metrics_event_s * 1000u;
    if (every)
        sc->metrics_timer = cairn_timer_add(ctx, every, every, ep_metrics_publish, sc);
    snprintf(sc->base_uri, sizeof sc->base_uri, "http://127.0.0.1:%u",
             (unsigned)cairn_httpd_port(sc->httpd));
    cairn_log(ctx, CAIRN_LOG_INFO, "endpoints: scoring at %s/endpoints/NAME/score",
              sc->base_uri);
    *state = sc;
    return 0;
}

#define BODY_MAX 16384

static const cairn_verb_t scorer_verbs[] = {
    {.name = "create_endpoint",
     .handle = ep_create,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help = "{name*, auth_mode (key or token)} -> endpoint {name, scoring_uri, "
             "traffic, mirror, "
             "auth_mode}"},
    {.name = "get_endpoint",
     .handle = ep_get,
     .perm = "endpoints.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{name*} -> endpoint"},
    {.name = "list_endpoints",
     .handle = ep_list,
     .perm = "endpoints.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{} -> endpoints"},
    {.name = "delete_endpoint",
     .handle = ep_delete,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help = "{name*} -> {} (its deployments with it)"},
    {.name = "create_deployment",
     .handle = dep_create,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help =
         "{endpoint*, name*, model* (model:NAME:VERSION or model:NAME@ALIAS), "
         "instance_count, follow_alias, code_configuration {code*, scoring_script*}, "
         "base_dir, request_settings {request_timeout_ms, "
         "max_concurrent_requests_per_instance}} -> deployment (the first takes all "
         "traffic)"},
    {.name = "get_deployment",
     .handle = dep_get,
     .perm = "endpoints.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{endpoint*, name*} -> deployment"},
    {.name = "list_deployments",
     .handle = dep_list,
     .perm = "endpoints.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{endpoint*} -> deployments [as get_deployment], by name"},
    {.name = "get_deployment_logs",
     .handle = dep_logs,
     .perm = "endpoints.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{endpoint*, name*, lines (100)} -> logs (a python deployment's "
             "workers' output, its last lines)"},
    {.name = "delete_deployment",
     .handle = dep_delete,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help = "{endpoint*, name*} -> {} (409 while it takes traffic)"},
    {.name = "update_deployment",
     .handle = dep_update,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help =
         "{endpoint*, name*, model (a new reference), instance_count, follow_alias, "
         "code_configuration, base_dir, request_settings} -> deployment (swapped at "
         "once: no request fails)"},
    {.name = "update_traffic",
     .handle = ep_update_traffic,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{endpoint*, traffic* {DEPLOYMENT: PERCENT}} -> endpoint (sums to 100 or "
             "all 0; applied at once)"},
    {.name = "get_endpoint_metrics",
     .handle = ep_metrics,
     .perm = "endpoints.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help =
         "{endpoint*} -> deployments [{name, requests, errors, latency_ms {p50, p90, "
         "p99}}]"},
    {.name = "update_mirror",
     .handle = ep_update_mirror,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{endpoint*, mirror* {DEPLOYMENT: PERCENT}} -> endpoint (copies of live "
             "requests, 0 to 50% each, answers dropped, counted)"},
    {.name = "check_access",
     .handle = ep_check_access,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{endpoint*} -> {}: whether the caller may score it (auth_mode token: "
             "the scorer asks with the caller's token)"},
    {.name = "get_keys",
     .handle = ep_get_keys,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{endpoint*} -> primary_key, secondary_key"},
    {.name = "regenerate_keys",
     .handle = ep_regenerate_keys,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help = "{endpoint*, key_type (primary or secondary)} -> primary_key, "
             "secondary_key"},
    {.name = "create_batch_endpoint",
     .handle = batch_create,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help = "{name*, model* (a reference), mini_batch_size (10000 rows), "
             "max_concurrency (4), error_threshold (-1: any), max_retries (3)} -> "
             "batch_endpoint"},
    {.name = "get_batch_endpoint",
     .handle = batch_get,
     .perm = "endpoints.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{name*} -> batch_endpoint"},
    {.name = "list_batch_endpoints",
     .handle = batch_list,
     .perm = "endpoints.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = BODY_MAX,
     .help = "{} -> batch_endpoints"},
    {.name = "update_batch_endpoint",
     .handle = batch_update,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help = "{name*, model, mini_batch_size, max_concurrency, error_threshold, "
             "max_retries} -> batch_endpoint (jobs already submitted keep theirs)"},
    {.name = "delete_batch_endpoint",
     .handle = batch_delete,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help = "{name*} -> {} (its jobs run on)"},
    {.name = "invoke_batch",
     .handle = batch_invoke,
     .perm = "endpoints.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = BODY_MAX,
     .help = "{endpoint*, input* (data:NAME:VERSION, data:NAME@ALIAS or a path to a "
             "CSV file or folder), mini_batch_size, max_concurrency, error_threshold, "
             "max_retries, experiment_name, base_dir} -> job (a jobs job running "
             "cairn-batch-score)"},
    {.name = NULL},
};

static const cairn_plugin_t scorer_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "scorer",
    .version = "0.1.0",
    .description =
        "online endpoints: registered models scored over HTTP, traffic "
        "split between deployments",
    .verbs = scorer_verbs,
    .settings = scorer_settings,
    .settings_size = sizeof(settings_t),
    .init = scorer_init,
    .fini = scorer_fini,
    .concurrency = 64,
};
CAIRN_PLUGIN_DEFINE(scorer_plugin)
