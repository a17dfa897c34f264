/* A python deployment's workers (pool.h). One mutex guards the slots; the
 * socket of a busy worker belongs to the request that took it, so the
 * I/O runs unlocked. Only the thread that marks a worker dead reaps it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#define REAP_MS 200 /* how often idle workers are checked for death */

typedef enum { W_DEAD, W_STARTING, W_IDLE, W_BUSY } wstate_t;

typedef struct worker {
    pid_t pid;
    int fd;
    wstate_t st;
    int failures;        /* starts in a row that failed */
    bool tried;          /* its first start has ended */
    uint64_t restart_ms; /* not before */
} worker_t;

struct py_pool {
    py_pool_opts_t o; /* its strings are copies, owned */
    char **env;       /* the workers' environment, owned */
    pthread_mutex_t mu;
    pthread_cond_t idle_cv; /* a worker became idle, or the pool failed */
    pthread_cond_t sup_cv;  /* a worker died, or stop */
    pthread_t sup;
    bool stopping, ever_ready, failed;
    int first_done; /* workers whose first start has ended */
    char why[768];
    int n;
    worker_t w[];
};

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timespec s_abs(uint64_t ms_from_now)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms_from_now / 1000u);
    ts.tv_nsec += (long)(ms_from_now % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---- frames ----------------------------------------------------------------- */

/* Wait for fd to be ready for events until deadline: 0, or -1 (timeout). */
static int s_wait(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = s_now_ms();
        if (now >= deadline) return -1;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)(deadline - now));
        if (rc > 0) return 0;
        if (rc < 0 && errno != EINTR) return -1;
    }
}

/* 0 sent; -1 the worker is gone; -2 timeout. */
static int s_send_all(int fd, const void *buf, size_t len, uint64_t deadline)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (s_wait(fd, POLLOUT, deadline) != 0) return -2;
        } else {
            return -1;
        }
    }
    return 0;
}

/* 0 read; -1 the worker is gone (or sent nonsense); -2 timeout. */
static int s_recv_all(int fd, void *buf, size_t len, uint64_t deadline)
{
    char *p = buf;
    while (len) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (s_wait(fd, POLLIN, deadline) != 0) return -2;
        } else {
            return -1;
        }
    }
    return 0;
}

static int s_send_frame(int fd, const char *ct, const char *body, size_t len,
                        uint64_t deadline)
{
    size_t ctl = strlen(ct);
    uint32_t n = (uint32_t)(ctl + 1 + len);
    unsigned char head[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 8), (unsigned char)n};
    int rc = s_send_all(fd, head, 4, deadline);
    if (rc == 0) rc = s_send_all(fd, ct, ctl, deadline);
    if (rc == 0) rc = s_send_all(fd, "\n", 1, deadline);
    if (rc == 0) rc = s_send_all(fd, body, len, deadline);
    return rc;
}

/* A frame: *status and the payload after it (malloc'ed, NUL-terminated). */
static int s_recv_frame(int fd, uint64_t deadline, int *status, char **out,
                        size_t *out_len)
{
    unsigned char head[4];
    int rc = s_recv_all(fd, head, 4, deadline);
    if (rc != 0) return rc;
    uint32_t n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
                 (uint32_t)head[2] << 8 | head[3];
    if (n < 3 || n > POOL_REPLY_MAX) return -1;
    char *buf = malloc(n + 1);
    if (!buf) return -1;
    if ((rc = s_recv_all(fd, buf, n, deadline)) != 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *status = (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0');
    memmove(buf, buf + 3, n - 2);
    *out = buf;
    *out_len = n - 3;
    return (*status >= 100 && *status <= 599) ? 0 : (free(buf), -1);
}

/* ---- workers ---------------------------------------------------------------- */

/* Kill w's process group and reap it; its slot is left for the caller. */
static void s_kill(worker_t *w)
{
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->pid > 0) {
        kill(-w->pid, SIGKILL);
        kill(w->pid, SIGKILL);
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    w->pid = 0;
}

static int s_spawn(py_pool_t *p, pid_t *pid, int *fd, char *why, size_t why_len)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, why_len, "socketpair: %s", strerror(errno));
        return -1;
    }
    int child_fd = sv[1] == 3 ? 4 : 3; /* dup2 onto itself would keep CLOEXEC */
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", child_fd);
    char *argv[] = {(char *)p->o.python, (char *)p->o.driver, "--fd", fdarg,
                    "--script",          (char *)p->o.script, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, p->o.log_path,
                                     O_WRONLY | O_APPEND | O_CREAT, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_adddup2(&fa, sv[1], child_fd);
    posix_spawn_file_actions_addchdir_np(&fa, p->o.code_dir);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0); /* its own group: killed whole */
    posix_spawnattr_setflags(
        &at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    int rc = posix_spawn(pid, p->o.python, &fa, &at, argv, p->env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        snprintf(why, why_len, "%s cannot be started: %s", p->o.python, strerror(rc));
        return -1;
    }
    *fd = sv[0];
    return 0;
}

/* Wait for a spawned worker's init() until deadline: 0 ready, or -1 with
 * why (the worker killed). */
static int s_await_init(py_pool_t *p, worker_t *w, uint64_t deadline, char *why,
                        size_t why_len)
{
    int status = 0;
    char *msg = NULL;
    size_t len = 0;
    int rc = s_recv_frame(w->fd, deadline, &status, &msg, &len);
    if (rc == 0 && status == 200) {
        free(msg);
        return 0;
    }
    if (rc == -2)
        snprintf(why, why_len, "init() did not finish within %d ms",
                 p->o.init_timeout_ms);
    else if (rc == 0)
        snprintf(why, why_len, "the scoring script failed to start: %s", msg);
    else
        snprintf(why, why_len,
                 "the worker exited before init() answered (see the deployment's "
                 "logs)");
    free(msg);
    s_kill(w);
    return -1;
}

static uint64_t s_backoff_ms(int failures)
{
    int shift = failures < 6 ? failures : 5;
    return 250u << shift; /* 0.5 s .. 8 s */
}

/* A start of w ended (p->mu held): ok, or failed with why. */
static void s_started(py_pool_t *p, worker_t *w, bool ok, const char *why)
{
    if (!w->tried) {
        w->tried = true;
        p->first_done++;
    }
    if (ok) {
        w->st = W_IDLE;
        w->failures = 0;
        p->ever_ready = true;
        pthread_cond_broadcast(&p->idle_cv);
        return;
    }
    w->st = W_DEAD;
    w->restart_ms = s_now_ms() + s_backoff_ms(++w->failures);
    snprintf(p->why, sizeof p->why, "%s", why);
    if (!p->ever_ready) { /* the script cannot start: say so, once */
        p->failed = true;
        pthread_cond_broadcast(&p->idle_cv);
    }
}

/* Start every dead worker that is due, all at once, and wait for their
 * init()s together (p->mu held; released meanwhile). The next time one
 * is due, in ms from now. */
static uint64_t s_revive(py_pool_t *p)
{
    uint64_t next = REAP_MS, now = s_now_ms();
    worker_t *due[POOL_INSTANCES_MAX];
    int n = 0;
    for (int i = 0; i < p->n && !p->stopping && !p->failed; i++) {
        worker_t *w = &p->w[i];
        if (w->st != W_DEAD) continue;
        if (now < w->restart_ms) {
            if (w->restart_ms - now < next) next = w->restart_ms - now;
            continue;
        }
        w->st = W_STARTING;
        due[n++] = w;
    }
    if (!n) return next;
    char why[POOL_INSTANCES_MAX][sizeof p->why];
    bool ok[POOL_INSTANCES_MAX];
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++)
        ok[i] = s_spawn(p, &due[i]->pid, &due[i]->fd, why[i], sizeof why[i]) == 0;
    uint64_t deadline = s_now_ms() + (uint64_t)p->o.init_timeout_ms;
    for (int i = 0; i < n; i++)
        if (ok[i])
            ok[i] = s_await_init(p, due[i], deadline, why[i], sizeof why[i]) == 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < n; i++) s_started(p, due[i], ok[i], why[i]);
    return next;
}

/* Idle workers that died (killed from outside, or out of memory) are
 * found here rather than by the next request (p->mu held: no request can
 * take one meanwhile). */
static void s_reap_idle(py_pool_t *p)
{
    for (int i = 0; i < p->n; i++) {
        worker_t *w = &p->w[i];
        if (w->st != W_IDLE || waitpid(w->pid, NULL, WNOHANG) != w->pid) continue;
        close(w->fd);
        *w = (worker_t){.fd = -1, .st = W_DEAD, .tried = true};
    }
}

static void *s_supervise(void *arg)
{
    py_pool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        s_reap_idle(p);
        uint64_t next = s_revive(p);
        if (p->stopping) break;
        struct timespec until = s_abs(next);
        pthread_cond_timedwait(&p->sup_cv, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the environment ------------------------------------------------------------ */

static const char *const s_inherit[] = {"PATH",   "HOME",       "LANG", "LC_ALL",
                                        "TMPDIR", "PYTHONPATH", "USER", NULL};

static char *s_kv(const char *k, const char *v)
{
    char *s = NULL;
    return asprintf(&s, "%s=%s", k, v) < 0 ? NULL : s;
}

static char **s_env(const py_pool_opts_t *o)
{
    char **env = calloc(16, sizeof *env);
    int n = 0;
    bool ok = env != NULL;
    for (int i = 0; ok && s_inherit[i]; i++) {
        const char *v = getenv(s_inherit[i]);
        if (v) ok = (env[n++] = s_kv(s_inherit[i], v)) != NULL;
    }
    if (ok) ok = (env[n++] = s_kv("AZUREML_MODEL_DIR", o->model_dir)) != NULL;
    if (ok) ok = (env[n++] = s_kv("CAIRN_MODEL_DIR", o->model_dir)) != NULL;
    /* one thread a worker: instance_count workers share the cores */
    if (ok) ok = (env[n++] = s_kv("OMP_NUM_THREADS", "1")) != NULL;
    if (ok) ok = (env[n++] = s_kv("PYTHONDONTWRITEBYTECODE", "1")) != NULL;
    if (!ok && env) {
        for (int i = 0; i < n; i++) free(env[i]);
        free(env);
        return NULL;
    }
    return env;
}

/* ---- the pool ----------------------------------------------------------------- */

static void s_free(py_pool_t *p)
{
    for (int i = 0; p->env && p->env[i]; i++) free(p->env[i]);
    free(p->env);
    free((char *)p->o.python);
    free((char *)p->o.driver);
    free((char *)p->o.code_dir);
    free((char *)p->o.script);
    free((char *)p->o.model_dir);
    free((char *)p->o.log_path);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->idle_cv);
    pthread_cond_destroy(&p->sup_cv);
    free(p);
}

py_pool_t *py_pool_start(const py_pool_opts_t *o, cairn_err_t *err)
{
    int n = o->instances;
    if (n < 1 || n > POOL_INSTANCES_MAX) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "instance_count must be 1 to %d", POOL_INSTANCES_MAX);
        return NULL;
    }
    py_pool_t *p = calloc(1, sizeof *p + (size_t)n * sizeof(worker_t));
    if (!p) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->idle_cv, &ca);
    pthread_cond_init(&p->sup_cv, &ca);
    pthread_condattr_destroy(&ca);
    p->n = n;
    for (int i = 0; i < n; i++) p->w[i] = (worker_t){.fd = -1, .st = W_DEAD};
    p->o = (py_pool_opts_t){.python = strdup(o->python),
                            .driver = strdup(o->driver),
                            .code_dir = strdup(o->code_dir),
                            .script = strdup(o->script),
                            .model_dir = strdup(o->model_dir),
                            .log_path = strdup(o->log_path),
                            .instances = n,
                            .init_timeout_ms = o->init_timeout_ms};
    p->env = s_env(o);
    if (!p->env || !p->o.python || !p->o.driver || !p->o.code_dir || !p->o.script ||
        !p->o.model_dir || !p->o.log_path) {
        s_free(p);
        cairn_err_oom(err, NULL);
        return NULL;
    }
    int rc = pthread_create(&p->sup, NULL, s_supervise, p);
    if (rc != 0) {
        s_free(p);
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                      "the workers' supervisor did not start: %s", strerror(rc));
        return NULL;
    }
    return p;
}

/* Ask w to leave (its socket closed: the driver's loop ends), then kill
 * it if it has not within a second. */
static void s_retire(worker_t *w)
{
    if (w->pid <= 0) return;
    close(w->fd);
    w->fd = -1;
    kill(-w->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(w->pid, NULL, WNOHANG) == w->pid) {
            w->pid = 0;
            return;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    s_kill(w);
}

void py_pool_stop(py_pool_t **self_p)
{
    py_pool_t *p = *self_p;
    if (!p) return;
    *self_p = NULL;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->sup_cv);
    pthread_cond_broadcast(&p->idle_cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->sup, NULL);
    for (int i = 0; i < p->n; i++) s_retire(&p->w[i]);
    s_free(p);
}

int py_pool_ready(py_pool_t *p, char *why, size_t why_len)
{
    pthread_mutex_lock(&p->mu);
    int r = p->failed ? -1 : p->ever_ready && p->first_done == p->n ? 1 : 0;
    if (r < 0 && why) snprintf(why, why_len, "%s", p->why);
    pthread_mutex_unlock(&p->mu);
    return r;
}

int py_pool_pids(py_pool_t *p, int64_t *pids, int max)
{
    pthread_mutex_lock(&p->mu);
    int n = p->n < max ? p->n : max;
    for (int i = 0; i < n; i++)
        pids[i] = p->w[i].st == W_IDLE || p->w[i].st == W_BUSY ? p->w[i].pid : 0;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* An idle worker, taken (marked busy), waiting until deadline; NULL with
 * err when none comes or the pool cannot give one. */
static worker_t *s_take(py_pool_t *p, uint64_t deadline, cairn_err_t *err)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->failed || p->stopping) {
            cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                          "the deployment's scoring script cannot run: %s", p->why);
            break;
        }
        for (int i = 0; i < p->n; i++)
            if (p->w[i].st == W_IDLE) {
                p->w[i].st = W_BUSY;
                pthread_mutex_unlock(&p->mu);
                return &p->w[i];
            }
        uint64_t now = s_now_ms();
        if (now >= deadline) {
            cairn_err_set(
                err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                "every worker of the deployment stayed busy for the request's "
                "timeout");
            break;
        }
        struct timespec until = s_abs(deadline - now);
        pthread_cond_timedwait(&p->idle_cv, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Give w back: idle, or (dead true) killed and left for the supervisor. */
static void s_give(py_pool_t *p, worker_t *w, bool dead)
{
    if (dead) s_kill(w);
    pthread_mutex_lock(&p->mu);
    if (dead) {
        w->st = W_DEAD;
        w->restart_ms = 0;
        pthread_cond_signal(&p->sup_cv);
    } else {
        w->st = W_IDLE;
        pthread_cond_signal(&p->idle_cv);
    }
    pthread_mutex_unlock(&p->mu);
}

int py_pool_score(py_pool_t *p, const char *content_type, const char *body, size_t len,
                  int timeout_ms, int *status, char **out, size_t *out_len,
                  cairn_err_t *err)
{
    uint64_t deadline = s_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
    for (int attempt = 0; attempt < 2; attempt++) {
        worker_t *w = s_take(p, deadline, err);
        if (!w) return -1;
        int rc = s_send_frame(w->fd, content_type, body, len, deadline);
        if (rc == 0) rc = s_recv_frame(w->fd, deadline, status, out, out_len);
        s_give(p, w, rc != 0);
        if (rc == 0) return 0;
        if (rc == -2)
            return cairn_err_set(err, CAIRN_ST_TIMEOUT, CAIRN_E_DEADLINE,
                                 "the scoring script did not answer within %d ms "
                                 "(request_timeout_ms); its worker was restarted",
                                 timeout_ms);
        /* the worker died under the request: once more, on another */
    }
    return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                         "the scoring script's worker died twice under this request "
                         "(see the deployment's logs)");
}
