/* plugins/compute/compute.h — the jobs plugin's own parts (service `jobs`).
 *
 *   plugin.c   the descriptor, settings, verb table, init and the tick
 *   spec.c     a command job's spec, read and checked (spec.h)
 *   store.c    the jobs table (STATE/jobs/jobs.db), one row per job
 *   launch.c   a job's directory written and its supervisor started
 *   watch.c    what the supervisors wrote, read back: starts, ends, deaths
 *   verbs.c    submit_job, get_job, list_jobs, cancel_job, stream_logs,
 *              list_computes
 *   runs.c     each job's run in tracking (nested calls)
 *   token.c    each job's token, held to its workspace (nested calls)
 *   notify.c   starts and ends noticed as they happen (inotify)
 *   sysmetrics.c  CPU and memory of running jobs, logged to their runs
 *   logput.c   a job's log uploaded to its run's artifacts when it ends
 *   gpu.c      the machine's GPUs, through NVML loaded at run time
 *   cgroup.c   per-job cgroups v2 for resources, where the machine has them
 *   code.c     the job's code, snapshotted at submit (snapshot.c, ignore.c)
 *   inputs.c   file and folder inputs found at submit (data: through the
 *              registry)
 *   outputs.c  outputs uploaded to the run when the job ends, registered
 *
 * A job's life: submit_job checks the spec, makes its run, and stores it
 * Queued; the scheduler (each tick and after each change) starts the
 * queued jobs that fit, by priority then age, each under its own
 * supervisor (cairn-job-shim, jobdir.h) which owns the process group,
 * the log and the exit record on disk. The plugin only reads those files,
 * so that it, or cairnd, may die and come back while jobs run: at init it
 * takes up every job left Preparing or Running where it stands. */
#ifndef CAIRN_COMPUTE_H
#define CAIRN_COMPUTE_H

#define CAIRN_PLUGIN_SOURCE
#include <linux/limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/plugin.h"
#include "spec.h"

typedef enum {
    JOB_QUEUED,
    JOB_PREPARING,
    JOB_RUNNING,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_CANCELED,
    JOB_TIMED_OUT,
    JOB_NSTATUS
} job_status_t;

/* "Queued" ... "TimedOut" (services.md); NULL past the end. */
const char *job_status_name(job_status_t st);
/* The status named by s, or -1. */
int job_status_parse(const char *s, size_t len);
bool job_status_done(job_status_t st);

#define JOB_REASON_MAX 512
#define GPU_MAX 64 /* GPUs of one machine that Cairn hands out */
#define GPU_LIST_MAX (GPU_MAX * 3 + 1)
#define JOB_TOKEN_MAX 128 /* a token's secret */
#define JOB_TOKEN_ID_MAX 64

/* One job's row. */
typedef struct job {
    int64_t seq;
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char name[JOB_NAME_MAX + 1];
    job_status_t status;
    char run_id[64], experiment_id[64];
    char experiment_name[JOB_TEXT_MAX + 1], display_name[JOB_TEXT_MAX + 1];
    char reason[JOB_REASON_MAX];
    char principal[CAIRN_HDR_NAME_MAX * 2 + 1];
    int64_t priority, created, started, ended, exit_code;
    int64_t shim_pid, shim_start, pgid;
    bool cancel_asked;
    char boot_id[40];
    char token_id[JOB_TOKEN_ID_MAX + 1]; /* the job's token ("": none) */
    int64_t retries, attempt;       /* the spec's retries; failed attempts so far */
    char gpus[GPU_LIST_MAX];        /* the GPUs it holds while it runs: "0,2" */
    char compute[JOB_NAME_MAX + 1]; /* its target: "local" or one of ws's pools */
} job_t;

#define COMPUTE_DESCRIPTION_MAX 1024

/* A compute target made by create_compute: a pool of the local machine
 * with its own limit of jobs at once, in one workspace. */
typedef struct compute_target {
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char name[JOB_NAME_MAX + 1];
    char description[COMPUTE_DESCRIPTION_MAX + 1];
    int64_t max_concurrent, created;
} compute_target_t;

/* Work waiting on a nested call's answer. The runtime lets calls still
 * unanswered go when the plugin stops, without calling back: each such
 * context is listed here from its start to its end, and fini drops what
 * is left. */
typedef struct inflight {
    struct inflight *prev, *next;
    void (*drop)(struct inflight *self);
} inflight_t;

typedef struct store store_t;
typedef struct notify notify_t;
typedef struct sysmetrics sysmetrics_t;
typedef struct gpus gpus_t;

typedef struct compute {
    cairn_ctx_t *ctx;
    store_t *store;
    notify_t *notify;
    sysmetrics_t *sysmetrics;
    gpus_t *gpus;
    int64_t metrics_interval_ms;    /* 0: no system metrics */
    char root[PATH_MAX];            /* STATE/jobs */
    char shim[PATH_MAX];            /* the supervisor's executable */
    char mpirun[PATH_MAX];          /* Open MPI's mpirun; "": none here */
    char jobenv[PATH_MAX];          /* cairn-job-env, beside the supervisor */
    char trainer[PATH_MAX];         /* cairn-train (type: train), beside it too */
    int64_t code_max_bytes;         /* a job's code snapshot, at most */
    char cgroup_dir[PATH_MAX];      /* ROOT/cairn-jobs; "": no cgroups (rlimits) */
    char cgroup_why[PATH_MAX + 64]; /* why not, when not */
    char boot_id[40];               /* this boot's (/proc/sys/kernel/random/boot_id) */
    int64_t max_concurrent;         /* jobs Preparing or Running at once */
    int64_t grace_ms;               /* SIGTERM to SIGKILL, on cancel and timeout */
    int64_t start_timeout_ms;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    inflight_t inflight; /* the list's head */
} compute_t;

/* plugin.c: list n (drop frees it, should the plugin stop first); take it
 * off when its work ends. */
void inflight_add(compute_t *c, inflight_t *n, void (*drop)(inflight_t *self));
void inflight_del(inflight_t *n);

/* ---- store.c -------------------------------------------------------------- */
/* power: each submitted job flushed to disk before it is acknowledged. */
store_t *store_open(const char *path, bool power, cairn_err_t *err);
void store_close(store_t **self_p);
/* Insert a new job (its seq filled in); 409 when ws has one of that name. */
int store_insert(store_t *s, job_t *j, const void *spec, size_t spec_len,
                 cairn_err_t *err);
/* 0 found, 1 not found, -1 error. */
int store_get(store_t *s, const char *ws, const char *name, job_t *j, cairn_err_t *err);
/* The spec a job was submitted with (msgpack); the caller frees *spec. */
int store_spec(store_t *s, int64_t seq, char **spec, size_t *len, cairn_err_t *err);
int store_update(store_t *s, const job_t *j, cairn_err_t *err);
/* Call fn for each job of status st (all: st < 0), oldest first. */
int store_each(store_t *s, int st, int (*fn)(void *arg, job_t *j), void *arg,
               cairn_err_t *err);
/* The first max queued jobs, by priority then age, into out: how many,
 * or -1. */
int store_queue(store_t *s, job_t *out, int max, cairn_err_t *err);
int64_t store_count(store_t *s, job_status_t st);
/* Jobs of ws's target compute that are Preparing or Running. */
int64_t store_count_busy(store_t *s, const char *ws, const char *compute);
/* Jobs of ws's target compute in status st. */
int64_t store_count_on(store_t *s, const char *ws, const char *compute,
                       job_status_t st);
/* Compute targets: insert (409 when ws has one of that name), get (0, 1
 * not found, -1), delete (0, 1 not found), each of ws's by name. */
int store_compute_insert(store_t *s, const compute_target_t *t, cairn_err_t *err);
int store_compute_get(store_t *s, const char *ws, const char *name, compute_target_t *t,
                      cairn_err_t *err);
int store_compute_delete(store_t *s, const char *ws, const char *name,
                         cairn_err_t *err);
int store_compute_each(store_t *s, const char *ws,
                       int (*fn)(void *arg, const compute_target_t *t), void *arg,
                       cairn_err_t *err);
/* A page of ws's jobs, newest first, after seq `before` (0: from the
 * newest): status (< 0: any), experiment (NULL: any), created >= since. */
typedef struct job_query {
    const char *ws;
    int status;
    const char *experiment;
    int64_t since, before;
    int limit;
} job_query_t;
int store_list(store_t *s, const job_query_t *q, int (*fn)(void *arg, job_t *j),
               void *arg, cairn_err_t *err);

/* ---- launch.c ------------------------------------------------------------- */
/* The job's directory: root/ws/name. */
void job_dir(const compute_t *c, const job_t *j, char *out, size_t cap);
/* Where its outputs are written: the job's directory's outputs/. */
void job_outputs_dir(const compute_t *c, const job_t *j, char *out, size_t cap);
/* Write the job's files and start its supervisor, detached; the job is
 * then Preparing until the supervisor writes its pid file. token: the
 * job's CAIRN_TOKEN ("": none). */
int job_launch(compute_t *c, job_t *j, const job_spec_t *spec, const char *token,
               cairn_err_t *err);

/* ---- watch.c -------------------------------------------------------------- */
/* Whether j's supervisor runs (its pid, with the start time it had). */
bool job_shim_alive(const job_t *j);
/* Ask the supervisor to stop the job (SIGTERM to it); false when it is
 * gone. */
bool job_signal_cancel(const job_t *j);
/* Read every started job's files: Preparing -> Running, ends recorded,
 * a dead supervisor or a reboot -> Failed. Then start what fits. */
void jobs_watch(compute_t *c);
void jobs_schedule(compute_t *c);
/* The status change of j to st (with reason): stored, mirrored to its run,
 * published as an event. */
int job_set_status(compute_t *c, job_t *j, job_status_t st, const char *reason,
                   cairn_err_t *err);

/* ---- runs.c --------------------------------------------------------------- */
/* The run of a job about to be stored: the experiment (by name, created
 * when missing) and a run named after the job, then done(arg, ...) with
 * the ids, or an error. On the loop thread, through nested calls. */
typedef void(job_run_done_fn)(void *arg, const cairn_err_t *err,
                              const char *experiment_id, const char *run_id);
int job_run_create(compute_t *c, const char *ws, const char *experiment_name,
                   const char *run_name, job_run_done_fn *done, void *arg,
                   cairn_err_t *err);
/* Mirror a status into the job's run (best effort: logged on failure). */
void job_run_mirror(compute_t *c, const job_t *j);

/* ---- token.c -------------------------------------------------------------- */
/* done(arg, err, token, token_id): the token ("" and "" when the job gets
 * none: no auth service, or no principal submitted it), or err. */
typedef void(job_token_fn)(void *arg, const cairn_err_t *err, const char *token,
                           const char *token_id);
int job_token_make(compute_t *c, const job_t *j, uint64_t timeout_s, job_token_fn *done,
                   void *arg, cairn_err_t *err);
/* Revoke j's token, if it has one (best effort: logged on failure). */
void job_token_revoke(compute_t *c, const job_t *j);

/* ---- notify.c ------------------------------------------------------------- */
notify_t *notify_open(void);
void notify_close(notify_t **self_p, cairn_ctx_t *ctx);
/* Watch a started job's directory; forget it once the job has ended. */
void notify_watch(notify_t *n, const char *dir, int64_t seq);
void notify_forget(notify_t *n, int64_t seq);
/* A job was just started: look often for a while. */
void notify_started(compute_t *c);
/* Whether some watched directory changed (the events are consumed). */
bool notify_pending(compute_t *c);

/* ---- sysmetrics.c --------------------------------------------------------- */
sysmetrics_t *sysmetrics_new(void);
void sysmetrics_free(sysmetrics_t **self_p);
/* From the tick: a sample of every running job, when the interval has passed. */
void sysmetrics_tick(compute_t *c);
void sysmetrics_forget(sysmetrics_t *m, int64_t seq);

/* ---- upload.c ------------------------------------------------------------ */
/* Local files uploaded to a run's artifacts, one after the other, through
 * nested put_artifact calls; then done(arg, label, NULL) or done(arg,
 * label, why). The
 * upload frees itself once started (or when the plugin stops first). */
typedef struct job_upload job_upload_t;
typedef void(job_upload_fn)(void *arg, const char *label, const char *why);
/* label: what is uploaded ("job NAME's log"), handed back to done. */
job_upload_t *job_upload_new(compute_t *c, const char *ws, const char *run_id,
                             const char *label);
/* -1 without memory. */
int job_upload_add(job_upload_t *u, const char *local, const char *remote);
size_t job_upload_count(const job_upload_t *u);
void job_upload_start(job_upload_t *u, job_upload_fn *done, void *arg);
/* Only for an upload never started. */
void job_upload_free(job_upload_t **self_p);

/* ---- outputs.c ----------------------------------------------------------- */
/* Keep the ended job j's outputs (the spec's `outputs` map): uploaded to
 * its run, registered when it succeeded. 1: done (or none), its end may be
 * recorded, why set when keeping them failed; 0: at work (look again). */
int job_outputs_keep(compute_t *c, const job_t *j, const msgpack_object *outputs,
                     bool succeeded, char *why, size_t cap);

/* ---- logput.c ------------------------------------------------------------- */
/* Upload the ended job's log to its run's artifacts (logs/output.log);
 * asynchronous, best effort. */
void job_log_keep(compute_t *c, const job_t *j);

/* ---- inputs.c ------------------------------------------------------------ */
/* A job's file and folder inputs, found at submit: local paths made
 * absolute against base_dir and checked, data: references resolved by the
 * registry (nested calls); the spec in *sb (a msgpack map) is then packed
 * again with the paths found, and done(arg, NULL, found) called, or
 * done(arg, err, found). done owns found (job_inputs_free); sb must live
 * until then. */
typedef struct job_inputs job_inputs_t;
typedef void(job_inputs_fn)(void *arg, const cairn_err_t *err, job_inputs_t *found);
int job_inputs_resolve(compute_t *c, const char *ws, msgpack_sbuffer *sb,
                       const char *base_dir, job_inputs_fn *done, void *arg,
                       cairn_err_t *err);
/* The canonical data references found (data:NAME:V), for lineage. */
size_t job_inputs_refs(const job_inputs_t *r, const char **refs, size_t cap);
void job_inputs_free(job_inputs_t **self_p);

/* ---- code.c -------------------------------------------------------------- */
/* A job's code folder snapshotted at submit into its directory (code/),
 * with git's facts; job_code_keep then sends it to the run (artifacts
 * code/..., tags) and frees it; job_code_workdir gives each start a fresh
 * copy as its working directory. */
typedef struct job_code job_code_t;
int job_code_take(compute_t *c, const char *ws, const char *name, cairn_str_t code,
                  const char *base_dir, job_code_t **out, cairn_err_t *err);
void job_code_keep(compute_t *c, job_code_t **code_p, const char *ws,
                   const char *run_id, const char *job_name);
void job_code_free(job_code_t **self_p);
/* A submit that failed: its job's directory removed, then freed. */
void job_code_discard(job_code_t **self_p);
int job_code_workdir(const compute_t *c, const job_t *j, cairn_err_t *err);
/* Remove path and all under it (no link followed); 0 when gone. */
int job_rm_tree(const char *path);

/* ---- cgroup.c ------------------------------------------------------------ */
/* Per-job cgroups v2 under root where it offers memory and cpu; else none
 * (c->cgroup_why says why). */
void cgroups_setup(compute_t *c, const char *root);
/* j's cgroup with memory.max and cpu.max, its path into out ("" when it
 * gets none: no cgroups here, or no resources asked). */
int job_cgroup_make(const compute_t *c, const job_t *j, uint64_t memory, double cpus,
                    char *out, size_t cap, cairn_err_t *err);
void job_cgroup_remove(const compute_t *c, const job_t *j);

/* ---- gpu.c --------------------------------------------------------------- */
typedef struct gpu_info {
    int index;
    char name[96], uuid[96];
    uint64_t memory_bytes, memory_used_bytes;
    int utilization; /* percent busy over NVML's last sample; -1: unknown */
} gpu_info_t;
/* The GPUs NVML finds through library (NULL or "": libnvidia-ml.so.1);
 * none without a driver, which is no error. NULL only without memory. */
gpus_t *gpus_open(const char *library);
void gpus_close(gpus_t **self_p);
int gpus_count(const gpus_t *g);
/* How they were found ("nvml (..., driver 550.54)") or why none were. */
const char *gpus_source(const gpus_t *g);
/* GPU i now (memory in use, utilisation); -1 past the end. */
int gpus_info(const gpus_t *g, int i, gpu_info_t *out);
/* A set of GPU indices (bit i: GPU i) from and to "0,2". */
uint64_t gpus_parse(const char *list);
void gpus_format(uint64_t set, char *out, size_t cap);

/* ---- verbs.c -------------------------------------------------------------- */
int jobs_submit(void *state, cairn_req_t *req, cairn_err_t *err);
int jobs_get(void *state, cairn_req_t *req, cairn_err_t *err);
int jobs_list(void *state, cairn_req_t *req, cairn_err_t *err);
int jobs_cancel(void *state, cairn_req_t *req, cairn_err_t *err);
int jobs_stream_logs(void *state, cairn_req_t *req, cairn_err_t *err);
int jobs_list_computes(void *state, cairn_req_t *req, cairn_err_t *err);
int jobs_create_compute(void *state, cairn_req_t *req, cairn_err_t *err);
int jobs_get_compute(void *state, cairn_req_t *req, cairn_err_t *err);
int jobs_delete_compute(void *state, cairn_req_t *req, cairn_err_t *err);

#endif
