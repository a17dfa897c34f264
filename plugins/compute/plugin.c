/* The compute plugin (service `jobs`): command jobs from YAML on the local
 * machine, each under a supervisor of its own that outlives this plugin
 * and cairnd (compute.h says how the parts fit; jobdir.h what a job's
 * directory holds). A process in the default conf: it runs users' code. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute.h"
#include "exe_path.h"
#include "jobdir.h"
#include "yamlmp.h"

typedef struct settings {
    int64_t max_concurrent;
    int64_t grace_ms;
    int64_t start_timeout_ms;
    const char *shim; /* "" = beside this process's executable */
    int durability;   /* DURABILITY_* */
    int64_t metrics_interval_ms;
    const char *nvml_library;
    const char *mpirun;
    uint64_t code_max_bytes;
    const char *cgroup_root;
} settings_t;

enum { DURABILITY_PROCESS, DURABILITY_POWER };
static const char *const s_durabilities[] = {"process", "power", NULL};

static const cairn_setting_t compute_settings[] = {
    {.key = "max_concurrent",
     .type = CAIRN_CONF_INT,
     .offset = offsetof(settings_t, max_concurrent),
     .dflt = "4",
     .min = 1,
     .max = 1024,
     .help = "jobs running at once on the local compute; the rest wait in the queue"},
    {.key = "grace_ms",
     .type = CAIRN_CONF_INT,
     .offset = offsetof(settings_t, grace_ms),
     .dflt = "10000",
     .min = 0,
     .max = 600000,
     .help = "on cancel and timeout: SIGTERM to the job's processes, SIGKILL this long "
             "after"},
    {.key = "start_timeout_ms",
     .type = CAIRN_CONF_INT,
     .offset = offsetof(settings_t, start_timeout_ms),
     .dflt = "30000",
     .min = 1000,
     .max = 600000,
     .help = "a job whose supervisor has not started after this long fails"},
    {.key = "shim",
     .type = CAIRN_CONF_PATH,
     .offset = offsetof(settings_t, shim),
     .dflt = "",
     .help = "the per-job supervisor (default: cairn-job-shim beside cairnd)"},
    {.key = "metrics_interval_ms",
     .type = CAIRN_CONF_INT,
     .offset = offsetof(settings_t, metrics_interval_ms),
     .dflt = "10000",
     .min = 0,
     .max = 3600000,
     .help = "how often the CPU and memory of each running job are logged to its run "
             "(system/cpu_percent, system/memory_rss_bytes); 0: never"},
    {.key = "nvml_library",
     .type = CAIRN_CONF_STR,
     .offset = offsetof(settings_t, nvml_library),
     .dflt = "libnvidia-ml.so.1",
     .help = "NVIDIA's NVML, loaded at start to find the GPUs (none without a driver: "
             "no error)"},
    {.key = "code_max_bytes",
     .type = CAIRN_CONF_SIZE,
     .offset = offsetof(settings_t, code_max_bytes),
     .dflt = "1GiB",
     .min = 1,
     .max = 68719476736,
     .help = "a job's code folder, at most (413 at submit past it)"},
    {.key = "cgroup_root",
     .type = CAIRN_CONF_PATH,
     .offset = offsetof(settings_t, cgroup_root),
     .dflt = "/sys/fs/cgroup",
     .help = "cgroup v2's mount: with its memory and cpu controllers, each job that "
             "asks for resources gets a cgroup (else rlimits and CPU affinity)"},
    {.key = "mpirun",
     .type = CAIRN_CONF_PATH,
     .offset = offsetof(settings_t, mpirun),
     .dflt = "",
     .help = "Open MPI's mpirun, for jobs with distribution: mpi (default: found on "
             "PATH)"},
    {.key = "durability",
     .type = CAIRN_CONF_ENUM,
     .offset = offsetof(settings_t, durability),
     .dflt = "process",
     .choices = s_durabilities,
     .help = "process: a submitted job survives any crash of Cairn (WAL, "
             "synchronous=NORMAL); power: it survives power loss too (a flush before "
             "submit_job answers)"},
    {.key = NULL},
};

/* The supervisor: the setting, or cairn-job-shim in this executable's
 * directory (cairnd and cairn-plugin-host are installed beside it). */
static int s_find_shim(compute_t *c, const char *setting, cairn_err_t *err)
{
    if (cairn_sibling_exe(setting, JOB_SHIM_NAME, c->shim, sizeof c->shim, err) != 0)
        return -1;
    char shim_dir[PATH_MAX];
    snprintf(shim_dir, sizeof shim_dir, "%s", c->shim);
    snprintf(c->jobenv, sizeof c->jobenv, "%s/%s", dirname(shim_dir), JOB_ENV_NAME);
    snprintf(shim_dir, sizeof shim_dir, "%s", c->shim);
    snprintf(c->trainer, sizeof c->trainer, "%s/%s", dirname(shim_dir), JOB_TRAIN_NAME);
    if (access(c->shim, X_OK) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "the job supervisor %s cannot be run: %s (settings.shim)",
                             c->shim, strerror(errno));
    return 0;
}

/* mpirun: the setting, or the first on PATH; none is no error (MPI jobs
 * are then refused at submit). */
static void s_find_mpirun(compute_t *c, const char *setting)
{
    c->mpirun[0] = '\0';
    if (setting && *setting) {
        if (access(setting, X_OK) == 0)
            snprintf(c->mpirun, sizeof c->mpirun, "%s", setting);
        return;
    }
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s",
             path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char cand[PATH_MAX];
        if (snprintf(cand, sizeof cand, "%s/mpirun", d) >= (int)sizeof cand) continue;
        if (!strchr(cand, '\'') && access(cand, X_OK) == 0) {
            snprintf(c->mpirun, sizeof c->mpirun, "%s", cand);
            return;
        }
    }
}

/* This boot's id: a job started under another one ran before a reboot. */
static void s_boot_id(compute_t *c)
{
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, c->boot_id, sizeof c->boot_id - 1) : -1;
    if (fd >= 0) close(fd);
    c->boot_id[n > 0 ? n : 0] = '\0';
    char *nl = strchr(c->boot_id, '\n');
    if (nl) *nl = '\0';
}

void inflight_add(compute_t *c, inflight_t *n, void (*drop)(inflight_t *self))
{
    n->drop = drop;
    n->prev = &c->inflight;
    n->next = c->inflight.next;
    c->inflight.next->prev = n;
    c->inflight.next = n;
}

void inflight_del(inflight_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static void compute_fini(void *state)
{
    compute_t *c = state;
    if (!c) return;
    while (c->inflight.next && c->inflight.next != &c->inflight) {
        inflight_t *n = c->inflight.next;
        inflight_del(n);
        n->drop(n);
    }
    store_close(&c->store);
    notify_close(&c->notify, c->ctx);
    sysmetrics_free(&c->sysmetrics);
    gpus_close(&c->gpus);
    msgpack_sbuffer_destroy(&c->sb);
    free(c);
}

static int compute_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    const settings_t *set = cairn_settings(ctx);
    if (!set)
        return cairn_err_set(
            err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
            "this host predates typed settings; jobs needs a newer one");
    compute_t *c = calloc(1, sizeof *c);
    if (!c) return cairn_err_oom(err, NULL);
    c->ctx = ctx;
    c->inflight.prev = c->inflight.next = &c->inflight;
    c->max_concurrent = set->max_concurrent;
    c->grace_ms = set->grace_ms;
    c->start_timeout_ms = set->start_timeout_ms;
    c->metrics_interval_ms = set->metrics_interval_ms;
    c->code_max_bytes = (int64_t)set->code_max_bytes;
    msgpack_sbuffer_init(&c->sb);
    msgpack_packer_init(&c->pk, &c->sb, msgpack_sbuffer_write);
    s_boot_id(c);
    s_find_mpirun(c, set->mpirun);
    cgroups_setup(c, set->cgroup_root);
    snprintf(c->root, sizeof c->root, "%s/jobs", cairn_state_dir(ctx));
    char db[PATH_MAX + 16];
    snprintf(db, sizeof db, "%s/jobs.db", c->root);
    int rc = s_find_shim(c, set->shim, err);
    if (rc == 0 && mkdir(c->root, 0700) != 0 && errno != EEXIST)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                           "cannot create %s: %s", c->root, strerror(errno));
    if (rc == 0 &&
        !(c->store = store_open(db, set->durability == DURABILITY_POWER, err)))
        rc = -1;
    if (rc == 0 &&
        (!(c->notify = notify_open()) || !(c->sysmetrics = sysmetrics_new()) ||
         !(c->gpus = gpus_open(set->nvml_library))))
        rc = cairn_err_oom(err, NULL);
    if (rc != 0) {
        compute_fini(c);
        return -1;
    }
    *state = c;
    return 0;
}

/* Every tick: what the supervisors wrote meanwhile, then the queue. The
 * first one takes up the jobs a previous instance left running. */
static void compute_tick(void *state, uint64_t now_ms)
{
    (void)now_ms;
    notify_pending(state); /* events the fast timer left: read here */
    jobs_watch(state);
    sysmetrics_tick(state);
}

#define SPEC_BODY_MAX (CAIRN_YAML_MAX_BYTES + 4096)

static const cairn_verb_t compute_verbs[] = {
    {.name = "submit_job",
     .handle = jobs_submit,
     .perm = "jobs.write",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = SPEC_BODY_MAX,
     .help = "{spec* (a command job's YAML text, or the same as a map)} -> job {name, "
             "status, run_id, ...}"},
    {.name = "get_job",
     .handle = jobs_get,
     .perm = "jobs.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 4096,
     .help = "{name*} -> job {name, status, run_id, reason (when it failed), ...}"},
    {.name = "list_jobs",
     .handle = jobs_list,
     .perm = "jobs.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 4096,
     .help = "{status, experiment, since, max_results, page_token} -> jobs, "
             "next_page_token (newest first)"},
    {.name = "cancel_job",
     .handle = jobs_cancel,
     .perm = "jobs.write",
     .flags = CAIRN_VERB_MUTATING | CAIRN_VERB_IDEMPOTENT,
     .max_body = 4096,
     .help = "{name*} -> job (a queued job is Canceled at once; a running one when its "
             "processes are gone)"},
    {.name = "stream_logs",
     .handle = jobs_stream_logs,
     .perm = "jobs.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 4096,
     .help =
         "{name*, offset, max_bytes} -> data (text), offset (where to ask next), done, "
         "status"},
    {.name = "list_computes",
     .handle = jobs_list_computes,
     .perm = "jobs.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 4096,
     .help = "{} -> computes [{name, type, max_concurrent, running, queued, cpus, "
             "memory_bytes, gpus, gpu_source, gpu_devices, limits}]"},
    {.name = "create_compute",
     .handle = jobs_create_compute,
     .perm = "jobs.admin",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = 4096,
     .help =
         "{name*, type (local), max_concurrent (1..1024, default 1), description} "
         "-> compute: a pool of this machine with its own limit, for jobs' compute"},
    {.name = "get_compute",
     .handle = jobs_get_compute,
     .perm = "jobs.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 4096,
     .help = "{name*} -> compute {name, type, max_concurrent, running, queued, ...}"},
    {.name = "delete_compute",
     .handle = jobs_delete_compute,
     .perm = "jobs.admin",
     .flags = CAIRN_VERB_MUTATING,
     .max_body = 4096,
     .help = "{name*} -> {} (409 while jobs are queued or running on it)"},
    {.name = NULL},
};

static const cairn_plugin_t compute_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "compute",
    .version = "0.1.0",
    .description =
        "command jobs on the local machine, each under a supervisor that "
        "outlives the plugin",
    .verbs = compute_verbs,
    .settings = compute_settings,
    .settings_size = sizeof(settings_t),
    .init = compute_init,
    .fini = compute_fini,
    .tick = compute_tick,
    .tick_ms = 250,
    .concurrency = 64,
};
CAIRN_PLUGIN_DEFINE(compute_plugin)
