/* Per-job cgroups (v2), where the machine has them (compute.h).
 *
 * At start the plugin looks at the cgroup root (the `cgroup_root` setting,
 * /sys/fs/cgroup): when its cgroup.controllers offers both memory and cpu,
 * it makes ROOT/cairn-jobs, turns those controllers on for it and for its
 * children, and from then on a job that asks for resources gets a cgroup
 * of its own, ROOT/cairn-jobs/job-SEQ, with resources.memory as memory.max
 * and resources.cpus as cpu.max (a quota of that many CPUs' time, not a
 * set of CPUs). The supervisor moves the command into it before exec
 * (jobdir.h: cgroup=PATH), so its whole tree is held to them, and the
 * cgroup is removed when the job ends. Anywhere else (cgroup v1, a hybrid
 * without those controllers, no permission) jobs get rlimits and CPU
 * affinity instead, and list_computes says which and why. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute.h"

#define JOBS_GROUP "cairn-jobs"
#define CPU_PERIOD_US 100000

/* Write text to dir/name (a cgroup's control file). O_CREAT changes
 * nothing on cgroupfs, where the file exists or cannot be made, and lets
 * the tests' plain-directory stand-in for it be written. */
static int s_put(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n;
    return close(fd) == 0 && ok ? 0 : -1;
}

/* Whether the space-separated list in dir/name has word. */
static bool s_has(const char *dir, const char *name, const char *word)
{
    char path[PATH_MAX + 64], buf[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    size_t wl = strlen(word);
    for (char *p = buf; (p = strstr(p, word)); p += wl)
        if ((p == buf || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\n' || !p[wl]))
            return true;
    return false;
}

void cgroups_setup(compute_t *c, const char *root)
{
    c->cgroup_dir[0] = '\0';
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", root, JOBS_GROUP);
    if (!s_has(root, "cgroup.controllers", "memory") ||
        !s_has(root, "cgroup.controllers", "cpu")) {
        snprintf(c->cgroup_why, sizeof c->cgroup_why,
                 "no cgroup v2 memory and cpu controllers at %s", root);
        return;
    }
    if ((mkdir(dir, 0755) != 0 && errno != EEXIST) ||
        s_put(root, "cgroup.subtree_control", "+memory +cpu") != 0 ||
        s_put(dir, "cgroup.subtree_control", "+memory +cpu") != 0) {
        snprintf(c->cgroup_why, sizeof c->cgroup_why, "cannot use %s: %s", dir,
                 strerror(errno));
        return;
    }
    snprintf(c->cgroup_dir, sizeof c->cgroup_dir, "%s", dir);
}

static void s_job_group(const compute_t *c, const job_t *j, char *out, size_t cap)
{
    snprintf(out, cap, "%s/job-%lld", c->cgroup_dir, (long long)j->seq);
}

int job_cgroup_make(const compute_t *c, const job_t *j, uint64_t memory, double cpus,
                    char *out, size_t cap, cairn_err_t *err)
{
    out[0] = '\0';
    if (!c->cgroup_dir[0] || (!memory && cpus <= 0)) return 0;
    s_job_group(c, j, out, cap);
    char text[64];
    bool ok = mkdir(out, 0755) == 0 || errno == EEXIST;
    if (ok && memory) {
        snprintf(text, sizeof text, "%llu\n", (unsigned long long)memory);
        ok = s_put(out, "memory.max", text) == 0;
    }
    if (ok && cpus > 0) {
        long long quota = (long long)(cpus * CPU_PERIOD_US + 0.5);
        snprintf(text, sizeof text, "%lld %d\n", quota, CPU_PERIOD_US);
        ok = s_put(out, "cpu.max", text) == 0;
    }
    if (!ok) {
        int e = errno;
        rmdir(out);
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "cannot set up the job's cgroup %s: %s", out, strerror(e));
    }
    return 0;
}

void job_cgroup_remove(const compute_t *c, const job_t *j)
{
    if (!c->cgroup_dir[0]) return;
    char dir[PATH_MAX + 32];
    s_job_group(c, j, dir, sizeof dir);
    rmdir(dir); /* empty once its processes are gone; absent when it had none */
}
