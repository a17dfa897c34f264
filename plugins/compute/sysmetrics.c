/* System metrics of running jobs, logged to their runs (compute.h): every
 * `metrics_interval_ms`, the CPU and resident memory of each running job's
 * processes (those of its process group, read from /proc) go to the job's
 * run as `system/cpu_percent` (100 = one CPU busy) and
 * `system/memory_rss_bytes`, with GPUs `system/gpu_utilization_percent`
 * (their mean) and `system/gpu_memory_used_bytes` too: one log_batch a
 * job, the sample's index as the step. Best effort: a sample that cannot
 * be logged is dropped with a warning; the job is never held up for it. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute.h"

#define TTL_MS 30000

typedef struct sample {
    int64_t seq;
    uint64_t cpu_ticks, wall_ms, step;
} sample_t;

struct sysmetrics {
    sample_t *v;
    size_t n, cap;
    uint64_t last_ms;
    long ticks_per_s, page;
};

sysmetrics_t *sysmetrics_new(void)
{
    sysmetrics_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->ticks_per_s = sysconf(_SC_CLK_TCK);
    m->page = sysconf(_SC_PAGESIZE);
    if (m->ticks_per_s <= 0) m->ticks_per_s = 100;
    if (m->page <= 0) m->page = 4096;
    return m;
}

void sysmetrics_free(sysmetrics_t **self_p)
{
    if (!*self_p) return;
    free((*self_p)->v);
    free(*self_p);
    *self_p = NULL;
}

/* CPU ticks (user + system) and resident bytes of every process in group
 * pgid: one pass over /proc. */
static void s_group_usage(const sysmetrics_t *m, int64_t pgid, uint64_t *ticks,
                          uint64_t *rss)
{
    *ticks = *rss = 0;
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0) continue;
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        /* after ") ": state ppid pgrp ... utime(14) stime(15) ... rss(24) */
        char state;
        long long ppid, pgrp, ut, st, rsspages;
        if (!p ||
            sscanf(p + 2,
                   "%c %lld %lld %*s %*s %*s %*s %*s %*s %*s %*s %lld %lld %*s %*s "
                   "%*s %*s %*s %*s %*s %*s %lld",
                   &state, &ppid, &pgrp, &ut, &st, &rsspages) != 6)
            continue;
        if (pgrp != pgid) continue;
        *ticks += (uint64_t)(ut + st);
        *rss += (uint64_t)rsspages * (uint64_t)m->page;
    }
    closedir(d);
}

static sample_t *s_sample_of(sysmetrics_t *m, int64_t seq)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].seq == seq) return &m->v[i];
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        sample_t *v = realloc(m->v, cap * sizeof *v);
        if (!v) return NULL;
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n] = (sample_t){.seq = seq};
    return &m->v[m->n++];
}

void sysmetrics_forget(sysmetrics_t *m, int64_t seq)
{
    for (size_t i = 0; m && i < m->n; i++)
        if (m->v[i].seq == seq) {
            m->v[i] = m->v[--m->n];
            return;
        }
}

static void s_logged(void *arg, int st, const char *code, const char *msg,
                     const msgpack_object *body)
{
    compute_t *c = arg;
    (void)body;
    if (st >= 400)
        cairn_log(c->ctx, CAIRN_LOG_WARN,
                  "a job's system metrics were dropped: %d %s %s", st, code ? code : "",
                  msg ? msg : "");
}

static void s_pack_metric(msgpack_packer *pk, const char *key, double v, uint64_t ts,
                          uint64_t step)
{
    msgpack_pack_map(pk, 4);
    cairn_pack_kv_str(pk, "key", key);
    cairn_pack_cstr(pk, "value");
    msgpack_pack_double(pk, v);
    cairn_pack_cstr(pk, "timestamp");
    msgpack_pack_uint64(pk, ts);
    cairn_pack_cstr(pk, "step");
    msgpack_pack_uint64(pk, step);
}

/* The mean utilisation and the memory in use of the GPUs j holds; false
 * when it holds none, or NVML says nothing of them. */
static bool s_gpu_usage(compute_t *c, const job_t *j, double *util, double *mem)
{
    uint64_t set = gpus_parse(j->gpus);
    int n = 0;
    for (int i = 0; i < GPU_MAX; i++) {
        gpu_info_t g;
        if (!(set & (1ull << i)) || gpus_info(c->gpus, i, &g) != 0 || g.utilization < 0)
            continue;
        *util += g.utilization;
        *mem += (double)g.memory_used_bytes;
        n++;
    }
    if (n) *util /= n;
    return n > 0;
}

static int s_sample(void *arg, job_t *j)
{
    compute_t *c = arg;
    sysmetrics_t *m = c->sysmetrics;
    if (j->pgid <= 1 || !j->run_id[0]) return 0;
    sample_t *s = s_sample_of(m, j->seq);
    if (!s) return 0;
    uint64_t ticks, rss, now = cairn_now_ms();
    s_group_usage(m, j->pgid, &ticks, &rss);
    bool first = s->wall_ms == 0;
    double cpu = first || now <= s->wall_ms || ticks < s->cpu_ticks
                     ? 0
                     : (double)(ticks - s->cpu_ticks) / (double)m->ticks_per_s *
                           1000.0 / (double)(now - s->wall_ms) * 100.0;
    s->cpu_ticks = ticks;
    s->wall_ms = now;
    if (first) return 0; /* a rate needs two samples */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "run_id", j->run_id);
    cairn_pack_cstr(&pk, "metrics");
    double gpu_util = 0, gpu_mem = 0;
    bool gpus = s_gpu_usage(c, j, &gpu_util, &gpu_mem);
    msgpack_pack_array(&pk, gpus ? 4 : 2);
    uint64_t ts = cairn_wall_ms();
    s_pack_metric(&pk, "system/cpu_percent", cpu, ts, s->step);
    s_pack_metric(&pk, "system/memory_rss_bytes", (double)rss, ts, s->step);
    if (gpus) {
        s_pack_metric(&pk, "system/gpu_utilization_percent", gpu_util, ts, s->step);
        s_pack_metric(&pk, "system/gpu_memory_used_bytes", gpu_mem, ts, s->step);
    }
    s->step++;
    cairn_err_t err = {0};
    if (cairn_call_ws(c->ctx, j->ws, "tracking", "log_batch", sb.data, sb.size, TTL_MS,
                      s_logged, c, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_WARN, "a job's system metrics were dropped: %s",
                  err.msg);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

void sysmetrics_tick(compute_t *c)
{
    sysmetrics_t *m = c->sysmetrics;
    uint64_t now = cairn_now_ms();
    if (!m || c->metrics_interval_ms <= 0 ||
        now - m->last_ms < (uint64_t)c->metrics_interval_ms)
        return;
    m->last_ms = now;
    cairn_err_t err = {0};
    if (store_each(c->store, JOB_RUNNING, s_sample, c, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_WARN, "jobs: %s", err.msg);
}
