/* What the supervisors wrote, read back (compute.h, jobdir.h), and the
 * queue: each tick, every started job's directory is looked at; a job
 * whose supervisor is gone without an exit record is failed (its process
 * group killed), and one that started before this boot is failed with
 * that reason. Nothing here waits: the files are small and local. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute.h"
#include "jobdir.h"

static const char *const s_names[JOB_NSTATUS] = {
    "Queued", "Preparing", "Running", "Completed", "Failed", "Canceled", "TimedOut"};

const char *job_status_name(job_status_t st)
{
    return st < JOB_NSTATUS ? s_names[st] : NULL;
}

int job_status_parse(const char *s, size_t len)
{
    for (int i = 0; i < JOB_NSTATUS; i++)
        if (strlen(s_names[i]) == len && !memcmp(s_names[i], s, len)) return i;
    return -1;
}

bool job_status_done(job_status_t st)
{
    return st >= JOB_COMPLETED;
}

/* The small file dir/name, NUL-terminated, into buf; false when absent. */
static bool s_read_small(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) return false;
    buf[n] = '\0';
    return true;
}

/* Field 22 of /proc/PID/stat (the start time, in clock ticks since boot);
 * 0 when the process is gone. Read after the last ')': comm may hold any. */
static int64_t s_proc_start(int64_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    /* after ") ": field 3 (state) ... field 22 */
    long long start = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
        if (++field == 22) {
            start = atoll(tok);
            break;
        }
    return start;
}

bool job_shim_alive(const job_t *j)
{
    return j->shim_pid > 0 && j->shim_start > 0 &&
           s_proc_start(j->shim_pid) == j->shim_start;
}

bool job_signal_cancel(const job_t *j)
{
    return job_shim_alive(j) && kill((pid_t)j->shim_pid, SIGTERM) == 0;
}

int job_set_status(compute_t *c, job_t *j, job_status_t st, const char *reason,
                   cairn_err_t *err)
{
    j->status = st;
    snprintf(j->reason, sizeof j->reason, "%s", reason ? reason : "");
    if (job_status_done(st) && !j->ended) j->ended = (int64_t)cairn_wall_ms();
    if (store_update(c->store, j, err) != 0) return -1;
    job_run_mirror(c, j);
    if (job_status_done(st)) {
        job_token_revoke(c, j);
        notify_forget(c->notify, j->seq);
        sysmetrics_forget(c->sysmetrics, j->seq);
        job_log_keep(c, j);
        job_cgroup_remove(c, j);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "workspace", j->ws);
    cairn_pack_kv_str(&pk, "name", j->name);
    cairn_pack_kv_str(&pk, "status", job_status_name(st));
    cairn_pack_kv_str(&pk, "run_id", j->run_id);
    cairn_publish(c->ctx, "jobs.status", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    cairn_log(c->ctx, CAIRN_LOG_INFO, "job %s/%s: %s%s%s", j->ws, j->name,
              job_status_name(st), j->reason[0] ? ": " : "", j->reason);
    return 0;
}

/* A failed job with retries left: queued again (the same run, its log
 * appended to), true; false when none are left. Canceled and timed-out
 * jobs are not retried. */
static bool s_retry(compute_t *c, job_t *j, const char *why)
{
    if (j->attempt >= j->retries) return false;
    j->attempt++;
    char reason[JOB_REASON_MAX];
    snprintf(reason, sizeof reason, "attempt %lld failed (%s); run again",
             (long long)j->attempt, why);
    j->started = j->ended = 0;
    j->exit_code = -1;
    j->shim_pid = j->shim_start = j->pgid = 0;
    job_token_revoke(c, j); /* the next start makes its own */
    j->token_id[0] = '\0';
    cairn_err_t err = {0};
    if (job_set_status(c, j, JOB_QUEUED, reason, &err) != 0) {
        cairn_log(c->ctx, CAIRN_LOG_ERROR, "job %s: %s", j->name, err.msg);
        return false;
    }
    return true;
}

/* The job's spec as stored (checked at submit), read again into s; the
 * caller frees it (s_spec_free) when 0. */
typedef struct stored_spec {
    char *bytes;
    msgpack_unpacked u;
    job_spec_t s;
} stored_spec_t;

static int s_spec_load(compute_t *c, const job_t *j, stored_spec_t *ss,
                       cairn_err_t *err);
static void s_spec_free(stored_spec_t *ss);

/* The ended job's outputs kept (outputs.c): false while that goes on (the
 * job stays Running); a job that succeeded but whose outputs could not be
 * kept fails. */
static bool s_outputs_kept(compute_t *c, job_t *j, bool succeeded, job_status_t *st,
                           char *why, size_t cap)
{
    stored_spec_t ss;
    cairn_err_t err = {0};
    if (s_spec_load(c, j, &ss, &err) != 0) return true; /* checked at submit */
    char failed[JOB_REASON_MAX];
    int rc = job_outputs_keep(c, j, ss.s.outputs, succeeded, failed, sizeof failed);
    s_spec_free(&ss);
    if (rc == 1 && failed[0]) {
        cairn_log(c->ctx, CAIRN_LOG_WARN, "job %s: %s", j->name, failed);
        if (succeeded) {
            *st = JOB_FAILED;
            snprintf(why, cap, "%s", failed);
        }
    }
    return rc == 1;
}

/* What the command wrote in JOB_REASON, after why: its first line's
 * printable bytes, as much as fits. */
static void s_command_reason(const compute_t *c, const job_t *j, char *why, size_t cap)
{
    char path[PATH_MAX + 16], text[JOB_REASON_MAX];
    job_dir(c, j, path, PATH_MAX);
    strcat(path, "/" JOB_REASON);
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    text[strcspn(text, "\r\n")] = '\0';
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    size_t len = strlen(why);
    if (text[0] && len + 3 < cap) snprintf(why + len, cap - len, ": %s", text);
}

/* The exit record: its status, exit code and reason. */
static void s_finish(compute_t *c, job_t *j, const char *rec)
{
    char reason[32] = "";
    long long code = -1, sig = 0, ended = 0;
    const char *p;
    if ((p = strstr(rec, "reason="))) sscanf(p + 7, "%31[a-z]", reason);
    if ((p = strstr(rec, "code="))) code = atoll(p + 5);
    if ((p = strstr(rec, "signal="))) sig = atoll(p + 7);
    if ((p = strstr(rec, "ended_ms="))) ended = atoll(p + 9);
    j->exit_code = code;
    j->ended = ended > 0 ? ended : (int64_t)cairn_wall_ms();
    char why[JOB_REASON_MAX] = "";
    job_status_t st = JOB_FAILED;
    if (!strcmp(reason, "exited") && code == 0) {
        st = JOB_COMPLETED;
    } else if (!strcmp(reason, "exited")) {
        snprintf(why, sizeof why, "the command exited with status %lld", code);
        s_command_reason(c, j, why, sizeof why);
    } else if (!strcmp(reason, "signaled")) {
        snprintf(why, sizeof why, "the command was killed by signal %lld (%s)", sig,
                 strsignal((int)sig));
    } else if (!strcmp(reason, "canceled")) {
        st = JOB_CANCELED;
        snprintf(why, sizeof why, "canceled");
    } else if (!strcmp(reason, "timeout")) {
        st = JOB_TIMED_OUT;
        snprintf(why, sizeof why, "ran past its limits.timeout");
    } else {
        snprintf(why, sizeof why, "the command could not be started (see its log)");
    }
    cairn_err_t err = {0};
    if (st == JOB_FAILED && s_retry(c, j, why)) return;
    if (!s_outputs_kept(c, j, st == JOB_COMPLETED, &st, why, sizeof why)) return;
    if (job_set_status(c, j, st, why, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_ERROR, "job %s: %s", j->name, err.msg);
}

/* Its supervisor's pid file read: Preparing -> Running. */
static void s_started(compute_t *c, job_t *j, const char *rec)
{
    long long pid = 0, start = 0, pgid = 0;
    if (sscanf(rec, "%lld %lld %lld", &pid, &start, &pgid) != 3 || pid <= 0) return;
    j->shim_pid = pid;
    j->shim_start = start;
    j->pgid = pgid;
    cairn_err_t err = {0};
    if (job_set_status(c, j, JOB_RUNNING, NULL, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_ERROR, "job %s: %s", j->name, err.msg);
    if (j->cancel_asked) job_signal_cancel(j);
}

static void s_fail(compute_t *c, job_t *j, const char *why)
{
    if (j->pgid > 1) kill(-(pid_t)j->pgid, SIGKILL); /* nothing of it may run on */
    cairn_err_t err = {0};
    if (job_set_status(c, j, JOB_FAILED, why, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_ERROR, "job %s: %s", j->name, err.msg);
}

static int s_look(void *arg, job_t *j)
{
    compute_t *c = arg;
    char dir[PATH_MAX], rec[256], pid[128];
    job_dir(c, j, dir, sizeof dir);
    notify_watch(c->notify, dir, j->seq); /* a job taken up after a restart */
    if (s_read_small(dir, JOB_EXIT, rec, sizeof rec)) {
        long long pgid; /* ended before it was seen Running: its group, to kill */
        if (j->status == JOB_PREPARING &&
            s_read_small(dir, JOB_SHIM_PID, pid, sizeof pid) &&
            sscanf(pid, "%*d %*d %lld", &pgid) == 1)
            j->pgid = pgid;
        s_finish(c, j, rec);
        return 0;
    }
    if (strcmp(j->boot_id, c->boot_id) != 0) {
        s_fail(c, j, "the machine restarted while the job ran");
        return 0;
    }
    if (j->status == JOB_PREPARING) {
        if (s_read_small(dir, JOB_SHIM_PID, rec, sizeof rec))
            s_started(c, j, rec);
        else if ((int64_t)cairn_wall_ms() - j->started > c->start_timeout_ms)
            s_fail(c, j, "its supervisor (cairn-job-shim) did not start");
        return 0;
    }
    if (!job_shim_alive(j) && !s_read_small(dir, JOB_EXIT, rec, sizeof rec)) {
        char why[128];
        snprintf(why, sizeof why,
                 "its supervisor (pid %lld) died; what was left of the job was killed",
                 (long long)j->shim_pid);
        s_fail(c, j, why);
    }
    return 0;
}

void jobs_watch(compute_t *c)
{
    cairn_err_t err = {0};
    if (store_each(c->store, JOB_PREPARING, s_look, c, &err) != 0 ||
        store_each(c->store, JOB_RUNNING, s_look, c, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_ERROR, "jobs: %s", err.msg);
    jobs_schedule(c);
}

static int s_spec_load(compute_t *c, const job_t *j, stored_spec_t *ss,
                       cairn_err_t *err)
{
    char outputs[PATH_MAX + 16];
    job_outputs_dir(c, j, outputs, sizeof outputs);
    size_t len = 0;
    if (store_spec(c->store, j->seq, &ss->bytes, &len, err) != 0) return -1;
    msgpack_unpacked_init(&ss->u);
    int rc = msgpack_unpack_next(&ss->u, ss->bytes, len, NULL) == MSGPACK_UNPACK_SUCCESS
                 ? job_spec_read(&ss->u.data, outputs, &ss->s, err)
                 : cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                                 "the job's stored spec is not msgpack");
    if (rc != 0) {
        msgpack_unpacked_destroy(&ss->u);
        free(ss->bytes);
    }
    return rc;
}

static void s_spec_free(stored_spec_t *ss)
{
    job_spec_free(&ss->s);
    msgpack_unpacked_destroy(&ss->u);
    free(ss->bytes);
}

static void s_fail_start(compute_t *c, job_t *j, const cairn_err_t *why)
{
    char reason[JOB_REASON_MAX];
    snprintf(reason, sizeof reason, "%s", why->msg);
    cairn_err_t err = {0};
    if (job_set_status(c, j, JOB_FAILED, reason, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_ERROR, "jobs: %s", err.msg);
}

/* A job being started, between its token's request and its answer. */
typedef struct starting {
    inflight_t node; /* first */
    compute_t *c;
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char name[JOB_NAME_MAX + 1];
} starting_t;

static void s_drop_starting(inflight_t *n)
{
    free(n);
}

/* The token came (or none is needed): the job's files are written and its
 * supervisor started, unless the job changed meanwhile. */
static void s_token_ready(void *arg, const cairn_err_t *terr, const char *token,
                          const char *token_id)
{
    starting_t *st = arg;
    compute_t *c = st->c;
    job_t j;
    cairn_err_t err = {0};
    inflight_del(&st->node);
    int found = store_get(c->store, st->ws, st->name, &j, &err);
    free(st);
    if (found != 0 || j.status != JOB_PREPARING) {
        job_t gone = {0};
        snprintf(gone.ws, sizeof gone.ws, "%s", found == 0 ? j.ws : "default");
        snprintf(gone.token_id, sizeof gone.token_id, "%s", token_id);
        job_token_revoke(c, &gone);
        return;
    }
    if (terr) {
        s_fail_start(c, &j, terr);
        return;
    }
    snprintf(j.token_id, sizeof j.token_id, "%s", token_id);
    stored_spec_t ss;
    if ((token_id[0] && store_update(c->store, &j, &err) != 0) ||
        s_spec_load(c, &j, &ss, &err) != 0) {
        s_fail_start(c, &j, &err);
        return;
    }
    int rc = job_launch(c, &j, &ss.s, token, &err);
    s_spec_free(&ss);
    if (rc != 0) s_fail_start(c, &j, &err);
}

/* Start the queued job j: stored Preparing first, before its supervisor
 * exists (a crash between the two leaves a job that fails for want of
 * one, never a second supervisor of the same job); then its token, then
 * its files and its supervisor (s_token_ready). */
static int s_gpus_held(void *arg, job_t *j)
{
    *(uint64_t *)arg |= gpus_parse(j->gpus);
    return 0;
}

/* Pick `want` GPUs that no started job holds, the lowest first, into j;
 * false when too few are free now. */
static bool s_gpus_pick(compute_t *c, job_t *j, uint64_t want, cairn_err_t *err)
{
    j->gpus[0] = '\0';
    if (want == 0) return true;
    uint64_t held = 0, pick = 0;
    if (store_each(c->store, JOB_PREPARING, s_gpus_held, &held, err) != 0 ||
        store_each(c->store, JOB_RUNNING, s_gpus_held, &held, err) != 0)
        return false;
    for (int i = 0; i < gpus_count(c->gpus) && want; i++)
        if (!(held & (1ull << i))) {
            pick |= 1ull << i;
            want--;
        }
    if (want) return false;
    gpus_format(pick, j->gpus, sizeof j->gpus);
    return true;
}

/* Whether j's compute target has a free slot: 0 yes, 2 not now, -1 (400)
 * when it no longer exists. The local machine's own limit is checked by
 * the caller. */
static int s_pool_room(compute_t *c, const job_t *j, cairn_err_t *err)
{
    if (!strcmp(j->compute, "local") || !j->compute[0]) return 0;
    compute_target_t t;
    int rc = store_compute_get(c->store, j->ws, j->compute, &t, err);
    if (rc < 0) return -1;
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "compute: its target '%s' was deleted", j->compute);
    return store_count_busy(c->store, j->ws, j->compute) < t.max_concurrent ? 0 : 2;
}

/* 1: j waits, for GPUs that other jobs hold (or, with gpus_wait, that a
 * job before it waits for: then any GPU at all); 2: it waits for a slot
 * of its compute target. */
static int s_start(compute_t *c, job_t *j, bool gpus_wait, cairn_err_t *err)
{
    stored_spec_t ss;
    if (s_spec_load(c, j, &ss, err) != 0) return -1;
    uint64_t timeout = ss.s.timeout_s, gpus = ss.s.gpus;
    s_spec_free(&ss);
    int pool = s_pool_room(c, j, err);
    if (pool != 0) return pool;
    if (gpus > (uint64_t)gpus_count(c->gpus))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "resources.gpus: the job asks for %llu GPUs; the local "
                             "compute has %d",
                             (unsigned long long)gpus, gpus_count(c->gpus));
    if (gpus && gpus_wait) return 1;
    if (!s_gpus_pick(c, j, gpus, err)) return err->st ? -1 : 1;
    snprintf(j->boot_id, sizeof j->boot_id, "%s", c->boot_id);
    j->started = (int64_t)cairn_wall_ms();
    if (job_set_status(c, j, JOB_PREPARING, NULL, err) != 0) return -1;
    starting_t *st = calloc(1, sizeof *st);
    if (!st) return cairn_err_oom(err, NULL);
    *st = (starting_t){.c = c};
    snprintf(st->ws, sizeof st->ws, "%s", j->ws);
    snprintf(st->name, sizeof st->name, "%s", j->name);
    inflight_add(c, &st->node, s_drop_starting);
    if (job_token_make(c, j, timeout, s_token_ready, st, err) != 0) {
        inflight_del(&st->node);
        free(st);
        return -1;
    }
    return 0;
}

/* Queued jobs looked at per pass: those behind wait for the next one. */
#define SCHEDULE_WINDOW 32

static int64_t s_busy(compute_t *c)
{
    return store_count(c->store, JOB_PREPARING) + store_count(c->store, JOB_RUNNING);
}

/* Start what fits, in the queue's order (priority, then age). A job that
 * waits for GPUs other jobs hold keeps its place: no job behind it takes a
 * GPU before it (so it is never starved), but jobs that need none go by. */
void jobs_schedule(compute_t *c)
{
    if (s_busy(c) >= c->max_concurrent) return;
    job_t *q = malloc(SCHEDULE_WINDOW * sizeof *q);
    cairn_err_t err = {0};
    int n = q ? store_queue(c->store, q, SCHEDULE_WINDOW, &err) : -1;
    if (n < 0)
        cairn_log(c->ctx, CAIRN_LOG_ERROR, "jobs: %s", q ? err.msg : "out of memory");
    bool gpus_wait = false;
    for (int i = 0; i < n && s_busy(c) < c->max_concurrent; i++) {
        err = (cairn_err_t){0};
        int rc = s_start(c, &q[i], gpus_wait, &err);
        if (rc == 1) {
            gpus_wait = true;
        } else if (rc == 2) {
            continue; /* its pool is full; others may go */
        } else if (rc != 0) {
            if (q[i].status == JOB_QUEUED && err.st != CAIRN_ST_BAD_REQUEST)
                break; /* not even stored: try again next tick */
            s_fail_start(c, &q[i], &err);
        }
    }
    free(q);
}
