/* A job's directory written and its supervisor started (compute.h,
 * jobdir.h). The supervisor is started detached: spawned with --detach, it
 * forks at once, its first process exits (reaped here) and the second
 * makes a session of its own, so that the shim is nobody's child here and
 * outlives this process, the plugin host and cairnd alike. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compute.h"
#include "jobdir.h"

void job_dir(const compute_t *c, const job_t *j, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/%s", c->root, j->ws, j->name);
}

void job_outputs_dir(const compute_t *c, const job_t *j, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/%s/outputs", c->root, j->ws, j->name);
}

static int s_errno(cairn_err_t *err, const char *what, const char *path)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL, "cannot %s %s: %s",
                         what, path, strerror(errno));
}

static int s_mkdir(const char *path, cairn_err_t *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return s_errno(err, "create", path);
    return 0;
}

/* dir/name holds exactly the n bytes at p (written beside and renamed).
 * Not fsynced: a job's files matter only while this boot lasts (a job
 * started before a reboot fails), and three flushes would slow every
 * start by as many disk round trips. */
static int s_write_file(const char *dir, const char *name, const void *p, size_t n,
                        cairn_err_t *err)
{
    char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return s_errno(err, "create", tmp);
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return s_errno(err, "write", tmp);
        }
        b += w;
        n -= (size_t)w;
    }
    if (close(fd) != 0) return s_errno(err, "write", tmp);
    if (rename(tmp, path) != 0) return s_errno(err, "rename", tmp);
    return 0;
}

/* dir/name holds map, packed (a train job's spec for cairn-train). */
static int s_write_map(const char *dir, const char *name, const msgpack_object *map,
                       cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *map);
    int rc = sb.data ? s_write_file(dir, name, sb.data, sb.size, err)
                     : cairn_err_oom(err, NULL);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Variables a job inherits from this process when set here. */
static const char *const s_inherit[] = {"PATH",       "HOME", "LANG",    "LC_ALL",
                                        "TZ",         "USER", "LOGNAME", "TMPDIR",
                                        "PYTHONPATH", NULL};

static void s_env_add(msgpack_sbuffer *sb, const char *k, size_t kn, const char *v,
                      size_t vn)
{
    msgpack_sbuffer_write(sb, k, kn);
    msgpack_sbuffer_write(sb, "=", 1);
    msgpack_sbuffer_write(sb, v, vn);
    msgpack_sbuffer_write(sb, "", 1); /* the NUL that ends the entry */
}

static void s_env_addc(msgpack_sbuffer *sb, const char *k, const char *v)
{
    s_env_add(sb, k, strlen(k), v, strlen(v));
}

/* The job's environment: a few of this process's variables, the spec's,
 * then Cairn's own (which the spec may not set: spec.c refuses CAIRN_*). */
static void s_env(const compute_t *c, const job_t *j, const job_spec_t *spec,
                  const char *token, msgpack_sbuffer *sb)
{
    const msgpack_object *e = spec->env;
    for (const char *const *k = s_inherit; *k; k++) {
        const char *v = getenv(*k);
        bool overridden = false;
        for (uint32_t i = 0; e && i < e->via.map.size && !overridden; i++)
            overridden = cairn_obj_is_str(&e->via.map.ptr[i].key, *k);
        if (v && !overridden) s_env_addc(sb, *k, v);
    }
    if (!getenv("PATH")) s_env_addc(sb, "PATH", "/usr/local/bin:/usr/bin:/bin");
    for (uint32_t i = 0; e && i < e->via.map.size; i++) {
        const msgpack_object *k = &e->via.map.ptr[i].key, *v = &e->via.map.ptr[i].val;
        s_env_add(sb, k->via.str.ptr, k->via.str.size, v->via.str.ptr, v->via.str.size);
    }
    const char *ep = getenv("CAIRN_ENDPOINT");
    if (ep && *ep) s_env_addc(sb, "CAIRN_ENDPOINT", ep);
    s_env_addc(sb, "CAIRN_RUN_ID", j->run_id);
    s_env_addc(sb, "CAIRN_EXPERIMENT_ID", j->experiment_id);
    s_env_addc(sb, "CAIRN_EXPERIMENT_NAME", j->experiment_name);
    s_env_addc(sb, "CAIRN_JOB_NAME", j->name);
    s_env_addc(sb, "CAIRN_WORKSPACE", j->ws);
    char reason[PATH_MAX + 16];
    job_dir(c, j, reason, PATH_MAX);
    strcat(reason, "/" JOB_REASON);
    s_env_addc(sb, "CAIRN_JOB_REASON_FILE", reason);
    if (token && *token) s_env_addc(sb, "CAIRN_TOKEN", token);
    /* A machine with GPUs hands each out to one job at a time: a job sees
     * the ones it holds and no other (none when it asked for none). NVML
     * numbers them in PCI bus order; CUDA does too with this order set. */
    if (gpus_count(c->gpus) > 0 || j->gpus[0]) {
        s_env_addc(sb, "CUDA_DEVICE_ORDER", "PCI_BUS_ID");
        s_env_addc(sb, "CUDA_VISIBLE_DEVICES", j->gpus);
    }
}

/* cpu_list=...: ceil(cpus) of this process's CPUs, starting at a place
 * that moves with the job's number, so that jobs spread over the machine;
 * nothing when the job asked for none or for all. */
static size_t s_cpu_list(const job_t *j, double cpus, char *out, size_t cap)
{
    cpu_set_t mine;
    if (cpus <= 0 || sched_getaffinity(0, sizeof mine, &mine) != 0) return 0;
    int have = CPU_COUNT(&mine), want = (int)cpus + ((double)(int)cpus < cpus ? 1 : 0);
    if (want >= have) return 0;
    int ids[CPU_SETSIZE], n = 0;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &mine)) ids[n++] = i;
    size_t len = (size_t)snprintf(out, cap, "cpu_list=");
    for (int k = 0; k < want && len < cap; k++)
        len += (size_t)snprintf(out + len, cap - len, "%s%d", k ? "," : "",
                                ids[(j->seq + k) % n]);
    if (len < cap) len += (size_t)snprintf(out + len, cap - len, "\n");
    return len < cap ? len : 0;
}

/* s, then the quote that ends it and a NUL, inside a '...' the caller
 * opened: each ' of s as '\''. */
static void s_quoted(msgpack_sbuffer *sb, const char *s)
{
    for (const char *p = s; *p; p++)
        msgpack_sbuffer_write(sb, *p == '\'' ? "'\\''" : p, *p == '\'' ? 4 : 1);
    msgpack_sbuffer_write(sb, "'", 2);
}

/* An MPI job's command: Open MPI's mpirun starting the ranks on this
 * machine, each running the spec's command through the shell, every
 * line of output tagged with its rank ("[1,0]<stdout>:"). NULL without
 * memory; the caller frees it. */
static char *s_mpi_command(const compute_t *c, const job_spec_t *spec)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char head[PATH_MAX + 256];
    int n =
        snprintf(head, sizeof head,
                 "exec '%s' --np %llu --oversubscribe --bind-to none --tag-output%s "
                 "/bin/sh -c '",
                 c->mpirun, (unsigned long long)spec->mpi_ranks,
                 geteuid() == 0 ? " --allow-run-as-root" : "");
    msgpack_sbuffer_write(&sb, head, (size_t)n);
    s_quoted(&sb, spec->command);
    return sb.data;
}

/* The prelude for cairn-job-env (jobdir.h), or "" when the job needs
 * none: its environment, the variables its spec sets (kept over the
 * environment's), its secrets' names. */
static void s_prelude(const job_spec_t *spec, msgpack_sbuffer *sb)
{
    if (!spec->environment.len && !spec->secrets) return;
    char line[JOB_TEXT_MAX + JOB_SECRET_NAME_MAX + 32];
    if (spec->environment.len) {
        int n = snprintf(line, sizeof line, "environment=%.*s\n",
                         (int)spec->environment.len, spec->environment.ptr);
        msgpack_sbuffer_write(sb, line, (size_t)n);
    }
    for (uint32_t i = 0; spec->env && i < spec->env->via.map.size; i++) {
        const msgpack_object *k = &spec->env->via.map.ptr[i].key;
        int n = snprintf(line, sizeof line, "keep=%.*s\n", (int)k->via.str.size,
                         k->via.str.ptr);
        msgpack_sbuffer_write(sb, line, (size_t)n);
    }
    uint32_t ns = !spec->secrets ? 0
                  : spec->secrets->type == MSGPACK_OBJECT_MAP
                      ? spec->secrets->via.map.size
                      : spec->secrets->via.array.size;
    for (uint32_t i = 0; i < ns; i++) {
        cairn_str_t var, name;
        job_secret_at(spec, i, &var, &name);
        int n = snprintf(line, sizeof line, "secret=%.*s=%.*s\n", (int)var.len, var.ptr,
                         (int)name.len, name.ptr);
        msgpack_sbuffer_write(sb, line, (size_t)n);
    }
}

/* cmd run under cairn-job-env (its prelude in dir): "exec 'ENV' 'PRELUDE'
 * /bin/sh -c 'CMD'"; NULL without memory. */
static char *s_env_command(const compute_t *c, const char *dir, const char *cmd)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char head[2 * PATH_MAX + 64];
    int n = snprintf(head, sizeof head, "exec '%s' '%s/%s' /bin/sh -c '", c->jobenv,
                     dir, JOB_PRELUDE);
    msgpack_sbuffer_write(&sb, head, (size_t)n);
    s_quoted(&sb, cmd);
    return sb.data;
}

static int s_write_spec_files(const compute_t *c, const job_t *j,
                              const job_spec_t *spec, const char *token,
                              const char *dir, cairn_err_t *err)
{
    char work[PATH_MAX + 16], limits[4096];
    snprintf(work, sizeof work, "%s/%s", dir, JOB_WORK);
    if (s_mkdir(work, err) != 0) return -1;
    char cgroup[PATH_MAX + 32];
    if (job_cgroup_make(c, j, spec->memory, spec->cpus, cgroup, sizeof cgroup, err) !=
        0)
        return -1;
    int n = snprintf(limits, sizeof limits, "timeout_s=%llu\ngrace_ms=%lld\n",
                     (unsigned long long)spec->timeout_s, (long long)c->grace_ms);
    if (cgroup[0]) { /* its cgroup holds it to both */
        n += snprintf(limits + n, sizeof limits - (size_t)n, "cgroup=%s\n", cgroup);
    } else {
        if (spec->memory)
            n += snprintf(limits + n, sizeof limits - (size_t)n, "memory_bytes=%llu\n",
                          (unsigned long long)spec->memory);
        n += (int)s_cpu_list(j, spec->cpus, limits + n, sizeof limits - (size_t)n);
    }
    msgpack_sbuffer env;
    msgpack_sbuffer_init(&env);
    s_env(c, j, spec, token, &env);
    char *mpi = spec->mpi_ranks ? s_mpi_command(c, spec) : NULL;
    char train[2 * PATH_MAX + 64];
    const char *cmd = mpi ? mpi : spec->command;
    if (spec->train) { /* the built-in trainer, given the whole spec */
        snprintf(train, sizeof train, "exec '%s' '%s/%s'", c->trainer, dir,
                 JOB_TRAIN_SPEC);
        cmd = train;
        if (s_write_map(dir, JOB_TRAIN_SPEC, spec->map, err) != 0) {
            free(mpi);
            msgpack_sbuffer_destroy(&env);
            return -1;
        }
    }
    msgpack_sbuffer prelude;
    msgpack_sbuffer_init(&prelude);
    s_prelude(spec, &prelude);
    char *wrapped = prelude.size ? s_env_command(c, dir, cmd) : NULL;
    if (wrapped) cmd = wrapped;
    int rc = -1;
    if ((spec->mpi_ranks && !mpi) || (prelude.size && !wrapped))
        cairn_err_oom(err, NULL);
    else if ((!prelude.size ||
              s_write_file(dir, JOB_PRELUDE, prelude.data, prelude.size, err) == 0) &&
             s_write_file(dir, JOB_CMD, cmd, strlen(cmd), err) == 0 &&
             s_write_file(dir, JOB_ENV, env.data, env.size, err) == 0 &&
             s_write_file(dir, JOB_LIMITS, limits, (size_t)n, err) == 0)
        rc = 0;
    free(mpi);
    free(wrapped);
    msgpack_sbuffer_destroy(&prelude);
    if (env.data) explicit_bzero(env.data, env.size); /* the token's secret */
    msgpack_sbuffer_destroy(&env);
    return rc;
}

/* Forget what a previous start of a job of this name left (a job name is
 * used once per workspace, but a crash between the files and the row may
 * leave files behind). */
static void s_clear(const char *dir)
{
    static const char *const names[] = {JOB_SHIM_PID, JOB_EXIT, JOB_REASON, NULL};
    char path[PATH_MAX + 64];
    for (const char *const *n = names; *n; n++) {
        snprintf(path, sizeof path, "%s/%s", dir, *n);
        unlink(path);
    }
}

/* Start the shim detached: posix_spawn (a vfork, cheap however large this
 * process is) of `cairn-job-shim --detach`, which forks at once and whose
 * first process exits: reaped here, the shim is left nobody's child. */
static int s_spawn(const compute_t *c, const char *dir, cairn_err_t *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none;
    sigemptyset(&none);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    for (int fd = 0; fd <= 2; fd++)
        posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_RDWR, 0);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    char *const argv[] = {(char *)JOB_SHIM_NAME, (char *)"--detach", (char *)"--dir",
                          (char *)dir, NULL};
    pid_t first;
    int rc = posix_spawn(&first, c->shim, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        errno = rc;
        return s_errno(err, "start the supervisor of", dir);
    }
    int status = 0;
    while (waitpid(first, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "cannot start the supervisor of %s (exit status %d)", dir,
                             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

/* outputs/ and a folder in it for each output, for the command to write. */
static int s_outputs_dirs(const compute_t *c, const job_t *j, const job_spec_t *spec,
                          cairn_err_t *err)
{
    char dir[PATH_MAX], sub[PATH_MAX + JOB_NAME_MAX + 2];
    job_outputs_dir(c, j, dir, sizeof dir);
    if (!spec->outputs) return 0;
    if (s_mkdir(dir, err) != 0) return -1;
    for (uint32_t i = 0; i < spec->outputs->via.map.size; i++) {
        const msgpack_object *k = &spec->outputs->via.map.ptr[i].key;
        snprintf(sub, sizeof sub, "%s/%.*s", dir, (int)k->via.str.size, k->via.str.ptr);
        if (s_mkdir(sub, err) != 0) return -1;
    }
    return 0;
}

int job_launch(compute_t *c, job_t *j, const job_spec_t *spec, const char *token,
               cairn_err_t *err)
{
    char dir[PATH_MAX], wsdir[PATH_MAX];
    snprintf(wsdir, sizeof wsdir, "%s/%s", c->root, j->ws);
    job_dir(c, j, dir, sizeof dir);
    if (s_mkdir(wsdir, err) != 0 || s_mkdir(dir, err) != 0) return -1;
    s_clear(dir);
    if (job_code_workdir(c, j, err) != 0 || s_outputs_dirs(c, j, spec, err) != 0 ||
        s_write_spec_files(c, j, spec, token, dir, err) != 0)
        return -1;
    notify_watch(c->notify, dir, j->seq); /* before the shim can write */
    if (s_spawn(c, dir, err) != 0) return -1;
    notify_started(c);
    return 0;
}
