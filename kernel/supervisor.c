/* Plugin lifecycles: validate each plugin at start, run inproc ones as
 * kernel threads, spawn process ones as cairn-plugin-host children and
 * restart them with backoff when they die. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_int.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define STABLE_AFTER_MS 30000

extern char **environ;

static char *s_plugin_path(const char *plugin_dir, const conf_service_t *c)
{
    char *p = NULL;
    if (strchr(c->plugin, '/')) return strdup(c->plugin);
    if (asprintf(&p, "%s/cairn_%s.so", plugin_dir, c->plugin) < 0) return NULL;
    return p;
}

static void s_pack_settings(service_t *s)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s->settings, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, s->conf->nsettings);
    for (size_t i = 0; i < s->conf->nsettings; i++)
        cairn_pack_kv_str(&pk, s->conf->keys[i], s->conf->vals[i]);
}

/* Load the service's plugin and check its settings and verb table. keep:
 * where to leave the loaded copy (NULL: unload it). -1 with err: a bad
 * setting or verb table is "bad_conf" (a conf error), anything else means
 * the plugin cannot be used. A remote service whose .so is not here is
 * fine: the remote host checks its own copy. */
static int s_validate(const conf_t *conf, const conf_service_t *c, const char *path,
                      cairn_loaded_t *keep, cairn_err_t *err)
{
    if (c->mode == CONF_REMOTE && access(path, R_OK) != 0) return 0;
    cairn_loaded_t l;
    if (cairn_plugin_load(path, strchr(c->plugin, '/') ? NULL : c->plugin, &l, err) !=
        0)
        return -1;
    if (cairn_plugin_check_settings(l.plugin, (const char *const *)c->keys,
                                    (const char *const *)c->vals, c->nsettings,
                                    err) != 0) {
        char msg[CAIRN_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        cairn_plugin_unload(&l);
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s:%d: services.%s: %s", conf->source, c->line, c->name,
                             msg);
    }
    const char *role = NULL;
    for (size_t i = 0; i < c->nsettings; i++)
        if (!strcmp(c->keys[i], CAIRN_ROLE_SETTING)) role = c->vals[i];
    if (!cairn_plugin_verbs_for(l.plugin, c->name, role, NULL, err)) {
        char msg[CAIRN_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        cairn_plugin_unload(&l);
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s:%d: services.%s: %s", conf->source, c->line, c->name,
                             msg);
    }
    if (keep)
        *keep = l;
    else
        cairn_plugin_unload(&l);
    return 0;
}

int supervisor_prepare(broker_t *b, service_t *s, cairn_err_t *err)
{
    const conf_service_t *c = s->conf;
    s_pack_settings(s);
    if (!(s->plugin_path = s_plugin_path(b->plugin_dir, c)))
        return cairn_err_oom(err, NULL);
    /* An inproc service's kernel thread runs this very copy. */
    return s_validate(b->conf, c, s->plugin_path,
                      c->mode == CONF_INPROC ? &s->loaded : NULL, err);
}

int supervisor_check(const broker_opts_t *o, FILE *out)
{
    const conf_t *conf = o->conf;
    int problems = 0;
    cairn_err_t err = {0};
    authz_t *az = authz_new(conf->auth, &err);
    if (!az) {
        fprintf(out, "cairnd: %s\n", err.msg);
        problems++;
    } else {
        /* The rule broker_new applies before it binds anything. */
        const char *eps[] = {o->endpoint, conf->events, conf->worker_endpoint};
        cairn_err_t why;
        for (size_t i = 0; authz_is_open(az) && i < 3; i++)
            if (authz_endpoint_check_loopback(eps[i], &why) != 0) {
                fprintf(out,
                        "cairnd: %s: kernel.auth is 'none', so cairnd binds loopback "
                        "addresses only: %s\n",
                        conf->source, why.msg);
                problems++;
            }
        authz_destroy(&az);
    }
    /* CurveZMQ: the rule broker_new applies next, and the keys it reads. */
    if (curve_check_conf(conf, o->endpoint, &err) != 0) {
        fprintf(out, "cairnd: %s\n", err.msg);
        problems++;
    } else if (curve_any_wanted(conf, o->endpoint)) {
        curve_t *cv = curve_new(conf, o->state_dir, &err);
        if (!cv) {
            fprintf(out, "cairnd: %s\n", err.msg);
            problems++;
        }
        curve_destroy(&cv);
    }
    for (size_t i = 0; i < conf->nservices; i++) {
        const conf_service_t *c = &conf->services[i];
        char *path = s_plugin_path(o->plugin_dir, c);
        cairn_err_clear(&err);
        if (!path) {
            fprintf(out, "cairnd: out of memory\n");
            return -1;
        }
        if (s_validate(conf, c, path, NULL, &err) != 0) {
            if (!strcmp(err.code, CAIRN_E_BAD_CONF))
                fprintf(out, "cairnd: %s\n", err.msg);
            else
                fprintf(out, "cairnd: %s:%d: services.%s: %s\n", conf->source, c->line,
                        c->name, err.msg);
            problems++;
        }
        free(path);
    }
    return problems ? -1 : 0;
}

static void *s_inproc_main(void *arg)
{
    service_t *s = arg;
    cairn_err_t err = {0};
    if (cairn_runtime_run(&s->rt_opts, &err) != 0 && !atomic_load(&s->stop))
        fprintf(stderr, "cairnd: inproc plugin %s stopped: %s\n", s->conf->name,
                err.msg);
    return NULL;
}

static void s_start_inproc(broker_t *b, service_t *s)
{
    atomic_store(&s->stop, 0);
    if (!s->door && !(s->door = cairn_door_new())) {
        snprintf(s->last_error, sizeof s->last_error, "out of memory");
        s->state = SVC_DOWN;
        return;
    }
    s->rt_opts = (cairn_runtime_opts_t){.zctx = b->zctx,
                                        .endpoint = "inproc://cairn.workers",
                                        .service = s->conf->name,
                                        .mode = "inproc",
                                        .plugin = s->loaded.plugin,
                                        .stop = &s->stop,
                                        .reconnect = false,
                                        .door = s->door};
    s->state = SVC_STARTING;
    if (pthread_create(&s->thread, NULL, s_inproc_main, s) != 0) {
        snprintf(s->last_error, sizeof s->last_error, "cannot start a thread");
        s->state = SVC_DOWN;
        return;
    }
    s->thread_running = true;
}

static void s_spawn(broker_t *b, service_t *s)
{
    char host[4096], ppid[32];
    snprintf(host, sizeof host, "%s/cairn-plugin-host", b->bin_dir);
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    char *argv[] = {
        host,         "--plugin",    s->plugin_path, "--service", (char *)s->conf->name,
        "--endpoint", b->worker_ipc, "--parent-pid", ppid,        NULL};
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    int rc = posix_spawn(&pid, host, NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        snprintf(s->last_error, sizeof s->last_error, "cannot start %s: %s", host,
                 strerror(rc));
        s->next_start = cairn_now_ms() + BACKOFF_MAX_MS;
        return;
    }
    s->pid = pid;
    s->started_at = cairn_now_ms();
    if (s->state != SVC_RESTARTING) s->state = SVC_STARTING;
}

void supervisor_start_all(broker_t *b)
{
    for (size_t i = 0; i < b->nservices; i++) {
        service_t *s = &b->services[i];
        if (s->last_error[0]) continue; /* refused at load */
        switch (s->conf->mode) {
            case CONF_INPROC:
                s_start_inproc(b, s);
                break;
            case CONF_PROCESS:
                s->backoff_ms = BACKOFF_MIN_MS;
                s_spawn(b, s);
                break;
            case CONF_REMOTE:
                s->state = SVC_DOWN;
                snprintf(s->last_error, sizeof s->last_error,
                         "waiting for a remote cairn-plugin-host to connect");
                break;
        }
    }
}

void supervisor_on_sigchld(broker_t *b)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < b->nservices; i++) {
            service_t *s = &b->services[i];
            if (s->pid != pid) continue;
            s->pid = 0;
            char why[128];
            if (WIFSIGNALED(status))
                snprintf(why, sizeof why, "its process %d was killed by signal %d",
                         (int)pid, WTERMSIG(status));
            else
                snprintf(why, sizeof why, "its process %d exited with status %d",
                         (int)pid, WEXITSTATUS(status));
            while (s->workers) broker_worker_gone(b, s->workers, why);
            if (b->stopping) {
                s->state = SVC_DOWN;
                break;
            }
            if (!s->last_error[0] || s->state == SVC_UP)
                snprintf(s->last_error, sizeof s->last_error, "%s", why);
            s->state = SVC_RESTARTING;
            s->restarts++;
            uint64_t now = cairn_now_ms();
            /* Back off 200 ms, 400, 800 ... 10 s; a run of 30 s resets it. */
            if (now - s->started_at > STABLE_AFTER_MS || !s->backoff_ms)
                s->backoff_ms = BACKOFF_MIN_MS;
            s->next_start = now + s->backoff_ms;
            fprintf(stderr, "cairnd: service %s: %s; restarting in %u ms\n",
                    s->conf->name, why, s->backoff_ms);
            s->backoff_ms =
                s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
        }
    }
}

void supervisor_tick(broker_t *b, uint64_t now)
{
    if (b->stopping) return;
    for (size_t i = 0; i < b->nservices; i++) {
        service_t *s = &b->services[i];
        if (s->conf->mode == CONF_PROCESS && s->pid == 0 &&
            s->state == SVC_RESTARTING && now >= s->next_start)
            s_spawn(b, s);
    }
}

void supervisor_stop_all(broker_t *b)
{
    b->stopping = true;
    for (size_t i = 0; i < b->nservices; i++) {
        service_t *s = &b->services[i];
        for (worker_t *w = s->workers; w; w = w->next)
            broker_send_worker(b, w, CAIRN_W_DISCONNECT, NULL);
        if (s->thread_running) atomic_store(&s->stop, 1);
        if (s->pid > 0) kill(s->pid, SIGTERM);
    }
    for (size_t i = 0; i < b->nservices; i++) {
        service_t *s = &b->services[i];
        if (s->thread_running) {
            pthread_join(s->thread, NULL);
            s->thread_running = false;
        }
    }
    /* Give children a moment to run fini, then make sure they are gone. */
    uint64_t deadline = cairn_now_ms() + 3000;
    for (size_t i = 0; i < b->nservices; i++) {
        service_t *s = &b->services[i];
        while (s->pid > 0) {
            int status;
            pid_t r = waitpid(s->pid, &status, WNOHANG);
            if (r == s->pid || (r < 0 && errno == ECHILD)) {
                s->pid = 0;
                break;
            }
            if (cairn_now_ms() > deadline) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &status, 0);
                s->pid = 0;
                break;
            }
            usleep(10000);
        }
    }
}

void supervisor_release(service_t *s)
{
    cairn_plugin_unload(&s->loaded);
    cairn_door_free(&s->door); /* its thread has been joined */
}
