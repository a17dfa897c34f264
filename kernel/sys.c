/* The sys service, served by the kernel itself (docs/PROTOCOL.md, "The sys
 * service"). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker_int.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.0.0"
#endif

static void s_ping(broker_t *b, msgpack_packer *pk)
{
    (void)b;
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "pong");
    msgpack_pack_true(pk);
    cairn_pack_kv_str(pk, "version", CAIRN_VERSION);
}

static void s_services(broker_t *b, msgpack_packer *pk);
static void s_health(broker_t *b, msgpack_packer *pk);
static void s_metrics(broker_t *b, msgpack_packer *pk);

/* The sys service's verbs: a table like any plugin's, so that sys.services
 * lists them with their permissions and flags, and authorization reads
 * them from here, not from the routing code. */
typedef struct sys_verb {
    verb_info_t info;
    void (*serve)(broker_t *b, msgpack_packer *pk);
} sys_verb_t;

#define SYS_OPEN (CAIRN_VERB_PUBLIC | CAIRN_VERB_IDEMPOTENT)
static const sys_verb_t s_verbs[] = {
    {.info = {.name = "ping", .flags = SYS_OPEN}, .serve = s_ping},
    {.info = {.name = "services", .perm = "sys.read", .flags = CAIRN_VERB_IDEMPOTENT},
     .serve = s_services},
    {.info = {.name = "health", .flags = SYS_OPEN}, .serve = s_health},
    {.info = {.name = "metrics", .perm = "sys.read", .flags = CAIRN_VERB_IDEMPOTENT},
     .serve = s_metrics},
};
#define SYS_NVERBS (sizeof s_verbs / sizeof s_verbs[0])

/* "verb": ["mutating", "idempotent", "public", "inline"] (those it has). */
static void s_pack_flags(msgpack_packer *pk, const verb_info_t *v)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{CAIRN_VERB_MUTATING, "mutating"},
                 {CAIRN_VERB_IDEMPOTENT, "idempotent"},
                 {CAIRN_VERB_PUBLIC, "public"},
                 {CAIRN_VERB_INLINE, "inline"}};
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (v->flags & names[i].bit) n++;
    cairn_pack_cstr(pk, v->name);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (v->flags & names[i].bit) cairn_pack_cstr(pk, names[i].name);
}

static void s_services(broker_t *b, msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "services");
    msgpack_pack_array(pk, b->nservices + 1);
    msgpack_pack_map(pk, 7);
    cairn_pack_kv_str(pk, "name", "sys");
    cairn_pack_kv_str(pk, "plugin", "cairnd");
    cairn_pack_kv_str(pk, "mode", "inproc");
    cairn_pack_kv_str(pk, "state", "up");
    cairn_pack_cstr(pk, "verbs");
    msgpack_pack_array(pk, SYS_NVERBS);
    for (size_t i = 0; i < SYS_NVERBS; i++) cairn_pack_cstr(pk, s_verbs[i].info.name);
    cairn_pack_cstr(pk, "perms");
    msgpack_pack_map(pk, SYS_NVERBS);
    for (size_t i = 0; i < SYS_NVERBS; i++)
        cairn_pack_kv_str(pk, s_verbs[i].info.name,
                          s_verbs[i].info.perm ? s_verbs[i].info.perm : "");
    cairn_pack_cstr(pk, "flags");
    msgpack_pack_map(pk, SYS_NVERBS);
    for (size_t i = 0; i < SYS_NVERBS; i++) s_pack_flags(pk, &s_verbs[i].info);
    for (size_t i = 0; i < b->nservices; i++) {
        const service_t *s = &b->services[i];
        msgpack_pack_map(pk, 7);
        cairn_pack_kv_str(pk, "name", s->conf->name);
        cairn_pack_kv_str(pk, "plugin", s->conf->plugin);
        cairn_pack_kv_str(pk, "mode", conf_mode_name(s->conf->mode));
        cairn_pack_kv_str(pk, "state", svc_state_name(s->state));
        cairn_pack_cstr(pk, "verbs");
        msgpack_pack_array(pk, s->nverbs);
        for (size_t j = 0; j < s->nverbs; j++) cairn_pack_cstr(pk, s->verbs[j].name);
        cairn_pack_cstr(pk, "perms");
        msgpack_pack_map(pk, s->nverbs);
        for (size_t j = 0; j < s->nverbs; j++)
            cairn_pack_kv_str(pk, s->verbs[j].name,
                              s->verbs[j].perm ? s->verbs[j].perm : "");
        cairn_pack_cstr(pk, "flags");
        msgpack_pack_map(pk, s->nverbs);
        for (size_t j = 0; j < s->nverbs; j++) s_pack_flags(pk, &s->verbs[j]);
    }
}

static void s_health(broker_t *b, msgpack_packer *pk)
{
    bool ok = true;
    for (size_t i = 0; i < b->nservices; i++)
        if (b->services[i].state != SVC_UP) ok = false;
    msgpack_pack_map(pk, 4);
    cairn_pack_cstr(pk, "ok");
    if (ok)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    cairn_pack_cstr(pk, "pending");
    msgpack_pack_uint64(pk, pending_count(b->pending));
    cairn_pack_cstr(pk, "memory"); /* what clients cost the kernel (clients.h) */
    msgpack_pack_map(pk, 4);
    cairn_pack_cstr(pk, "queued_bytes");
    msgpack_pack_uint64(pk, clients_queued_total(b->clients));
    cairn_pack_cstr(pk, "unsent_bytes");
    msgpack_pack_uint64(pk, clients_unsent_total(b->clients));
    cairn_pack_cstr(pk, "clients");
    msgpack_pack_uint64(pk, clients_count(b->clients));
    cairn_pack_cstr(pk, "replies_dropped");
    msgpack_pack_uint64(pk, b->replies_dropped);
    cairn_pack_cstr(pk, "plugins");
    msgpack_pack_array(pk, b->nservices);
    for (size_t i = 0; i < b->nservices; i++) {
        const service_t *s = &b->services[i];
        uint32_t inflight = 0;
        for (const worker_t *w = s->workers; w; w = w->next) inflight += w->inflight;
        msgpack_pack_map(pk, 8);
        cairn_pack_kv_str(pk, "name", s->conf->name);
        cairn_pack_kv_str(pk, "state", svc_state_name(s->state));
        cairn_pack_cstr(pk, "restarts");
        msgpack_pack_uint32(pk, s->restarts);
        cairn_pack_kv_str(pk, "mode", conf_mode_name(s->conf->mode));
        cairn_pack_cstr(pk, "pid");
        msgpack_pack_int64(pk, s->pid);
        cairn_pack_cstr(pk, "inflight");
        msgpack_pack_uint32(pk, inflight);
        cairn_pack_cstr(pk, "queued");
        msgpack_pack_uint32(pk, s->qlen);
        cairn_pack_kv_str(pk, "error", s->last_error);
    }
}

/* A process's CPU seconds (user + system) and resident bytes, from
 * /proc/<pid>/stat and /proc/<pid>/statm; 0 or -1. */
static int s_proc_usage(pid_t pid, double *cpu_s, uint64_t *rss)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (in parentheses) may hold spaces: fields follow
     * its last ')'; utime and stime are fields 14 and 15 (state is 3). */
    char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                     &utime, &stime) != 2)
        return -1;
    long tck = sysconf(_SC_CLK_TCK);
    *cpu_s = (double)(utime + stime) / (double)(tck > 0 ? tck : 100);
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    if (!(f = fopen(path, "r"))) return -1;
    unsigned long long size = 0, resident = 0;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (got != 2) return -1;
    long psz = sysconf(_SC_PAGESIZE);
    *rss = (uint64_t)resident * (uint64_t)(psz > 0 ? psz : 4096);
    return 0;
}

/* "cpu_seconds": float, "rss_bytes": uint (nil each where pid is not a
 * process of its own that can be read). */
static void s_pack_usage(msgpack_packer *pk, pid_t pid)
{
    double cpu = 0;
    uint64_t rss = 0;
    bool ok = pid > 0 && s_proc_usage(pid, &cpu, &rss) == 0;
    cairn_pack_cstr(pk, "cpu_seconds");
    if (ok)
        msgpack_pack_double(pk, cpu);
    else
        msgpack_pack_nil(pk);
    cairn_pack_cstr(pk, "rss_bytes");
    if (ok)
        msgpack_pack_uint64(pk, rss);
    else
        msgpack_pack_nil(pk);
}

/* "verbs": [{verb, count_2xx, ..., buckets, sum_us, count}, ...]: every row
 * the service has had, the row "" (verbs it does not have) only when it
 * counted something. */
static void s_pack_rows(msgpack_packer *pk, const metrics_t *m)
{
    size_t first = m && m->rows[0].count == 0 ? 1 : 0, n = m ? m->nrows - first : 0;
    cairn_pack_cstr(pk, "verbs");
    msgpack_pack_array(pk, n);
    for (size_t i = first; m && i < m->nrows; i++) {
        const metrics_row_t *r = &m->rows[i];
        uint64_t cum[METRICS_NBUCKETS];
        metrics_cumulative(r, cum);
        msgpack_pack_map(pk, 9);
        cairn_pack_kv_str(pk, "verb", r->verb);
        cairn_pack_cstr(pk, "count_2xx");
        msgpack_pack_uint64(pk, r->count_2xx);
        cairn_pack_cstr(pk, "count_4xx");
        msgpack_pack_uint64(pk, r->count_4xx);
        cairn_pack_cstr(pk, "count_5xx");
        msgpack_pack_uint64(pk, r->count_5xx);
        cairn_pack_cstr(pk, "count_503");
        msgpack_pack_uint64(pk, r->count_503);
        cairn_pack_cstr(pk, "count_504");
        msgpack_pack_uint64(pk, r->count_504);
        cairn_pack_cstr(pk, "buckets");
        msgpack_pack_array(pk, METRICS_NBUCKETS);
        for (size_t j = 0; j < METRICS_NBUCKETS; j++) msgpack_pack_uint64(pk, cum[j]);
        cairn_pack_cstr(pk, "sum_us");
        msgpack_pack_uint64(pk, r->sum_us);
        cairn_pack_cstr(pk, "count");
        msgpack_pack_uint64(pk, r->count);
    }
}

static void s_metrics(broker_t *b, msgpack_packer *pk)
{
    msgpack_pack_map(pk, 3);
    cairn_pack_cstr(pk, "buckets_ms");
    msgpack_pack_array(pk, METRICS_NBOUNDS);
    for (size_t i = 0; i < METRICS_NBOUNDS; i++)
        msgpack_pack_double(pk, (double)metrics_bounds_us[i] / 1000.0);
    cairn_pack_cstr(pk, "services");
    msgpack_pack_array(pk, b->nservices + 1);
    /* sys: served on the kernel's thread, inside cairnd's figures. */
    msgpack_pack_map(pk, 10);
    cairn_pack_kv_str(pk, "name", "sys");
    cairn_pack_kv_str(pk, "mode", "inproc");
    s_pack_rows(pk, b->sys_metrics);
    cairn_pack_kv_str(pk, "state", "up");
    cairn_pack_cstr(pk, "restarts");
    msgpack_pack_uint32(pk, 0);
    cairn_pack_cstr(pk, "inflight");
    msgpack_pack_uint32(pk, 0);
    cairn_pack_cstr(pk, "queued");
    msgpack_pack_uint32(pk, 0);
    cairn_pack_cstr(pk, "pid");
    msgpack_pack_int64(pk, 0);
    s_pack_usage(pk, 0);
    for (size_t i = 0; i < b->nservices; i++) {
        const service_t *s = &b->services[i];
        uint32_t inflight = 0;
        for (const worker_t *w = s->workers; w; w = w->next) inflight += w->inflight;
        msgpack_pack_map(pk, 10);
        cairn_pack_kv_str(pk, "name", s->conf->name);
        cairn_pack_kv_str(pk, "mode", conf_mode_name(s->conf->mode));
        s_pack_rows(pk, s->metrics);
        cairn_pack_kv_str(pk, "state", svc_state_name(s->state));
        cairn_pack_cstr(pk, "restarts");
        msgpack_pack_uint32(pk, s->restarts);
        cairn_pack_cstr(pk, "inflight");
        msgpack_pack_uint32(pk, inflight);
        cairn_pack_cstr(pk, "queued");
        msgpack_pack_uint32(pk, s->qlen);
        cairn_pack_cstr(pk, "pid");
        msgpack_pack_int64(pk, s->pid);
        /* A process-mode plugin's own; an inproc one is in the kernel's. */
        s_pack_usage(pk, s->conf->mode == CONF_PROCESS ? s->pid : 0);
    }
    cairn_pack_cstr(pk, "kernel");
    msgpack_pack_map(pk, 6);
    cairn_pack_cstr(pk, "pid");
    msgpack_pack_int64(pk, getpid());
    s_pack_usage(pk, getpid());
    cairn_pack_cstr(pk, "uptime_s");
    msgpack_pack_double(pk, (double)(metrics_now_us() - b->started_us) / 1e6);
    cairn_pack_cstr(pk, "pending");
    msgpack_pack_uint64(pk, pending_count(b->pending));
    cairn_pack_cstr(pk, "clients");
    msgpack_pack_uint64(pk, clients_count(b->clients));
}

metrics_t *sys_metrics_new(void)
{
    metrics_t *m = metrics_new();
    for (size_t i = 0; m && i < SYS_NVERBS; i++)
        if (metrics_row(m, s_verbs[i].info.name, strlen(s_verbs[i].info.name)) !=
            i + 1) {
            metrics_destroy(&m);
        }
    return m;
}

void sys_count(broker_t *b, cairn_str_t verb, int st, uint64_t t0_us)
{
    uint32_t row = 0;
    for (size_t i = 0; i < SYS_NVERBS && !row; i++)
        if (cairn_str_eq(verb, s_verbs[i].info.name)) row = (uint32_t)i + 1;
    metrics_count(b->sys_metrics, row, st, metrics_now_us() - t0_us);
}

int sys_handle(broker_t *b, cairn_str_t verb, sys_caller_t *caller,
               msgpack_sbuffer *body, cairn_err_t *err)
{
    const sys_verb_t *v = NULL;
    for (size_t i = 0; i < SYS_NVERBS && !v; i++)
        if (cairn_str_eq(verb, s_verbs[i].info.name)) v = &s_verbs[i];
    if (!v)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NO_VERB,
                             "the service 'sys' has no verb '%.*s' (it has ping, "
                             "services, health, metrics)",
                             (int)verb.len, verb.ptr);
    const char *perm = (v->info.flags & CAIRN_VERB_PUBLIC) ? NULL : v->info.perm;
    authz_principal_t who = {.sub = ""};
    int rc = caller->who
                 ? authz_permits(b->authz, caller->who, perm, err)
                 : authz_check(b->authz, caller->tok, caller->ws, perm, &who, err);
    if (rc != 0) {
        caller->refused_sub = caller->who ? caller->who->sub : who.sub ? who.sub : "";
        return -1;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, body, msgpack_sbuffer_write);
    v->serve(b, &pk);
    return 0;
}
