/* cairn-job-shim: the supervisor of one job (like containerd's shim).
 *
 * The jobs plugin writes a job's spec into its directory and starts
 * `cairn-job-shim --dir JOBDIR` detached; the shim runs the command in a
 * process group of its own, appends its output to the log, stops the tree
 * on SIGTERM (cancel) or at the timeout, and writes the exit record when
 * the command has ended and nothing of its tree is left. Everything it
 * says goes through files (jobdir.h holds the contract), so that the
 * plugin and cairnd may restart at any moment while the job runs on.
 *
 * The shim is single-threaded: signals are blocked and read from a
 * signalfd, the timeout and the grace period come from one timerfd, and
 * both are polled. It is the children's subreaper, so that what the
 * command orphans comes back to it and is killed and reaped too. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jobdir.h"

#define SPEC_MAX (1024 * 1024) /* JOB_CMD and JOB_ENV, each */
#define ENV_MAX 4096           /* entries in JOB_ENV */
#define LIMIT_MAX INT32_MAX    /* timeout_s and grace_ms */
#define GRACE_DEFAULT_MS 10000
#define LOG_PREFIX JOB_SHIM_NAME ": "

typedef struct {
    char *cmd;      /* JOB_CMD, NUL-terminated */
    char *envbuf;   /* JOB_ENV as read */
    char **envp;    /* pointers into envbuf, NULL-terminated */
    long timeout_s; /* 0: none */
    long grace_ms;
    unsigned long long memory_bytes; /* 0: none (RLIMIT_AS) */
    cpu_set_t cpus;                  /* CPU_COUNT 0: any */
    int cgroup_procs; /* the job's cgroup's cgroup.procs, opened; -1: none */
} spec_t;

typedef enum { RUNNING, STOPPING, KILLED } phase_t;

typedef struct {
    int dirfd;
    int logfd;
    int sfd;    /* signalfd */
    int tfd;    /* timerfd: the timeout while RUNNING, the grace while STOPPING */
    pid_t pgid; /* the command's pid and its process group */
    phase_t phase;
    const char *reason; /* "canceled" or "timeout" once stopping, else NULL */
} shim_t;

/* What the child reports through the CLOEXEC pipe when it cannot exec. */
typedef struct {
    int stage; /* 0: entering the work dir, 1: setting up stdio, 2: exec,
                * 3: its memory limit, 4: its CPUs */
    int err;
} child_err_t;

static int s_logfd = -1;

/* ---- diagnostics ---------------------------------------------------------- */

/* One line into the log (stderr before the log is open), in one write so
 * that it does not interleave with the command's output. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char line[1024];
    size_t n = sizeof(LOG_PREFIX) - 1;
    memcpy(line, LOG_PREFIX, n);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) return;
    n += (size_t)m < sizeof(line) - n - 1 ? (size_t)m : sizeof(line) - n - 2;
    line[n++] = '\n';
    ssize_t w = write(s_logfd >= 0 ? s_logfd : STDERR_FILENO, line, n);
    (void)w; /* nowhere left to report a failed report */
}

/* ---- files ---------------------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* NAME written whole: NAME.tmp written, renamed over NAME, so that a
 * reader sees the old file or the new one. durable: NAME.tmp and the
 * directory fsynced too (the exit record, which must survive a power
 * loss; the pid file need not: after a reboot the job fails either way,
 * and its fsync would cost a start a disk flush). */
static int write_atomic(int dirfd, const char *name, const char *buf, size_t len,
                        bool durable)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        say("cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    int rc = write_all(fd, buf, len) == 0 && (!durable || fsync(fd) == 0) ? 0 : -1;
    if (rc < 0) say("cannot write %s: %s", tmp, strerror(errno));
    if (close(fd) < 0 && rc == 0) {
        say("cannot close %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0) {
        say("cannot rename %s to %s: %s", tmp, name, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && durable && fsync(dirfd) < 0) {
        say("cannot fsync the job directory: %s", strerror(errno));
        rc = -1;
    }
    if (rc < 0) unlinkat(dirfd, tmp, 0);
    return rc;
}

/* The whole of NAME into a fresh NUL-terminated buffer of at most max
 * bytes (plus the NUL). */
static char *read_small(int dirfd, const char *name, size_t max, size_t *len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        say("cannot open %s: %s", name, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 2);
    size_t n = 0;
    ssize_t r = 1;
    while (buf && n <= max && r != 0) {
        r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        n += (size_t)r;
    }
    int err = errno;
    close(fd);
    if (!buf || r < 0 || n > max) {
        if (!buf)
            say("cannot read %s: out of memory", name);
        else if (r < 0)
            say("cannot read %s: %s", name, strerror(err));
        else
            say("%s is larger than %zu bytes", name, max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- the spec --------------------------------------------------------------- */

/* JOB_ENV's NUL-ended KEY=VALUE entries as an envp array into the buffer. */
static int parse_env(spec_t *sp, size_t len)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++) count += sp->envbuf[i] == '\0';
    if (len > 0 && sp->envbuf[len - 1] != '\0') {
        say("%s: the last entry is not ended by a NUL byte", JOB_ENV);
        return -1;
    }
    if (count > ENV_MAX) {
        say("%s has more than %d entries", JOB_ENV, ENV_MAX);
        return -1;
    }
    sp->envp = calloc(count + 1, sizeof(char *));
    if (!sp->envp) {
        say("cannot read %s: out of memory", JOB_ENV);
        return -1;
    }
    size_t k = 0;
    for (char *e = sp->envbuf; e < sp->envbuf + len; e += strlen(e) + 1) {
        char *eq = strchr(e, '=');
        if (!eq || eq == e) {
            say("%s: entry %zu is not KEY=VALUE", JOB_ENV, k + 1);
            return -1;
        }
        sp->envp[k++] = e;
    }
    return 0;
}

/* A decimal value in 0..LIMIT_MAX for KEY in JOB_LIMITS. */
static int parse_limit(const char *key, const char *val, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end != '\0' || v < 0 || v > LIMIT_MAX || *val < '0' ||
        *val > '9') {
        say("%s: %s=%s is not a number from 0 to %d", JOB_LIMITS, key, val, LIMIT_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

/* memory_bytes=N: the command's address space, in bytes. */
static int parse_memory(const char *val, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || end == val || *end != '\0' || *val < '0' || *val > '9') {
        say("%s: memory_bytes=%s is not a number of bytes", JOB_LIMITS, val);
        return -1;
    }
    *out = v;
    return 0;
}

/* cpu_list=A,B,...: the CPUs the command may run on. */
static int parse_cpus(char *val, cpu_set_t *out)
{
    CPU_ZERO(out);
    char *save = NULL;
    for (char *tok = strtok_r(val, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (end == tok || *end != '\0' || v < 0 || v >= CPU_SETSIZE) {
            say("%s: cpu_list holds '%s', not a CPU number", JOB_LIMITS, tok);
            return -1;
        }
        CPU_SET((int)v, out);
    }
    return 0;
}

/* "timeout_s=N\ngrace_ms=M\n", and memory_bytes and cpu_list when the job
 * asked for resources; lines of other keys are ignored, so that a newer
 * plugin may add some. */
/* cgroup=PATH: a cgroup (v2) the plugin made for the job, with its
 * limits written; the command joins it before exec, and its whole tree
 * with it. Opened here, so that a path that is not one fails the start. */
static int parse_cgroup(spec_t *sp, const char *path)
{
    char procs[PATH_MAX];
    if (snprintf(procs, sizeof procs, "%s/cgroup.procs", path) >= (int)sizeof procs) {
        say("%s: cgroup=%s is too long", JOB_LIMITS, path);
        return -1;
    }
    /* O_CREAT: a no-op on cgroupfs; the tests' stand-in is a plain folder */
    sp->cgroup_procs = open(procs, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (sp->cgroup_procs < 0) {
        say("cannot open %s: %s", procs, strerror(errno));
        return -1;
    }
    return 0;
}

static int parse_limits(spec_t *sp, char *text)
{
    sp->timeout_s = 0;
    sp->grace_ms = GRACE_DEFAULT_MS;
    sp->memory_bytes = 0;
    CPU_ZERO(&sp->cpus);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = '\0';
        int rc = 0;
        if (strcmp(line, "timeout_s") == 0)
            rc = parse_limit(line, eq + 1, &sp->timeout_s);
        if (strcmp(line, "grace_ms") == 0)
            rc = parse_limit(line, eq + 1, &sp->grace_ms);
        if (strcmp(line, "memory_bytes") == 0)
            rc = parse_memory(eq + 1, &sp->memory_bytes);
        if (strcmp(line, "cpu_list") == 0) rc = parse_cpus(eq + 1, &sp->cpus);
        if (strcmp(line, "cgroup") == 0 && sp->cgroup_procs < 0)
            rc = parse_cgroup(sp, eq + 1);
        if (rc < 0) return -1;
    }
    return 0;
}

static int read_spec(int dirfd, spec_t *sp)
{
    size_t len;
    sp->cmd = read_small(dirfd, JOB_CMD, SPEC_MAX, &len);
    if (!sp->cmd) return -1;
    if (strlen(sp->cmd) != len) {
        say("%s holds a NUL byte", JOB_CMD);
        return -1;
    }
    sp->envbuf = read_small(dirfd, JOB_ENV, SPEC_MAX, &len);
    if (!sp->envbuf || parse_env(sp, len) < 0) return -1;
    char *limits = read_small(dirfd, JOB_LIMITS, 4096, &len);
    if (!limits) return -1;
    int rc = parse_limits(sp, limits);
    free(limits);
    return rc;
}

static void free_spec(spec_t *sp)
{
    free(sp->cmd);
    free(sp->envbuf);
    free(sp->envp);
}

/* ---- the exit record -------------------------------------------------------- */

static int write_exit(int dirfd, const char *reason, int code, int sig)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    char buf[160];
    int n = snprintf(buf, sizeof(buf), "reason=%s\ncode=%d\nsignal=%d\nended_ms=%lld\n",
                     reason, code, sig, ms);
    return write_atomic(dirfd, JOB_EXIT, buf, (size_t)n, true);
}

/* The record for the command's wait status; the stopping reason, if the
 * shim stopped it, wins over how it ended. */
static int write_status(const shim_t *sh, int status)
{
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int code = sig ? 128 + sig : WEXITSTATUS(status);
    const char *reason = sh->reason ? sh->reason : sig ? "signaled" : "exited";
    return write_exit(sh->dirfd, reason, code, sig);
}

/* ---- the pid file ------------------------------------------------------------ */

/* Field 22 of /proc/self/stat; the comm field (2) may hold spaces and
 * parentheses, so the count starts after its last ')'. */
static int read_starttime(unsigned long long *out)
{
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p++;
    /* fields 3..21 are the 19 before the one wanted */
    for (int field = 3; field < 22; field++) {
        p += strspn(p, " ");
        p += strcspn(p, " ");
    }
    char *end;
    errno = 0;
    *out = strtoull(p, &end, 10);
    return errno || end == p ? -1 : 0;
}

static int write_pidfile(const shim_t *sh)
{
    unsigned long long start;
    if (read_starttime(&start) < 0) {
        say("cannot read the start time in /proc/self/stat");
        return -1;
    }
    char buf[96];
    int n =
        snprintf(buf, sizeof(buf), "%d %llu %d\n", (int)getpid(), start, (int)sh->pgid);
    return write_atomic(sh->dirfd, JOB_SHIM_PID, buf, (size_t)n, false);
}

/* waitpid for one child (or -1: any), blocking; signals are blocked, so
 * EINTR is rare, but retried. */
static pid_t reap(pid_t pid, int *status)
{
    pid_t r;
    do r = waitpid(pid, status, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

/* ---- starting the command ---------------------------------------------------- */

/* In the child, after fork: the stage that failed goes to the parent. */
static void child_fail(int pipefd, int stage)
{
    child_err_t ce = {stage, errno};
    ssize_t w = write(pipefd, &ce, sizeof(ce));
    (void)w;
    _exit(127);
}

static void child_exec(const spec_t *sp, int workfd, int logfd, int pipefd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* the starter may have ignored some (Python ignores SIGPIPE) */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL); /* SIG_ERR for KILL, STOP, glibc's own: none to reset */
    setpgid(0, 0);            /* the parent sets it too; either is enough */
    if (fchdir(workfd) < 0) child_fail(pipefd, 0);
    int nullfd = open("/dev/null", O_RDONLY);
    if (nullfd < 0 || dup2(nullfd, STDIN_FILENO) < 0 ||
        dup2(logfd, STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0)
        child_fail(pipefd, 1);
    if (nullfd > STDERR_FILENO) close(nullfd);
    /* resources: its cgroup, rlimits and affinity, inherited by the whole
     * tree */
    if (sp->cgroup_procs >= 0) {
        char pid[24];
        int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        if (write(sp->cgroup_procs, pid, (size_t)n) != n) child_fail(pipefd, 5);
    }
    struct rlimit as = {(rlim_t)sp->memory_bytes, (rlim_t)sp->memory_bytes};
    if (sp->memory_bytes && setrlimit(RLIMIT_AS, &as) < 0) child_fail(pipefd, 3);
    if (CPU_COUNT(&sp->cpus) && sched_setaffinity(0, sizeof sp->cpus, &sp->cpus) < 0)
        child_fail(pipefd, 4);
    char *argv[] = {"sh", "-c", sp->cmd, NULL};
    execve("/bin/sh", argv, sp->envp);
    child_fail(pipefd, 2);
}

/* JOB_WORK, made 0700 if missing, opened for the child's fchdir. */
static int open_work(int dirfd)
{
    if (mkdirat(dirfd, JOB_WORK, 0700) < 0 && errno != EEXIST) {
        say("cannot create %s: %s", JOB_WORK, strerror(errno));
        return -1;
    }
    int fd = openat(dirfd, JOB_WORK, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) say("cannot open %s: %s", JOB_WORK, strerror(errno));
    return fd;
}

/* Forks the command; 0 when it runs, -1 when it could not be started (its
 * child, if any, reaped). */
static int spawn(shim_t *sh, const spec_t *sp, int workfd)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        say("cannot create a pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        say("cannot fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        child_exec(sp, workfd, sh->logfd, pfd[1]);
    }
    close(pfd[1]);
    /* both sides set the group, so that it exists before any kill */
    if (setpgid(pid, pid) < 0 && errno != EACCES && errno != ESRCH)
        say("cannot set the command's process group: %s", strerror(errno));
    sh->pgid = pid;
    child_err_t ce;
    ssize_t n;
    do n = read(pfd[0], &ce, sizeof(ce));
    while (n < 0 && errno == EINTR);
    close(pfd[0]);
    if (n == 0) return 0; /* EOF: the exec closed the pipe */
    static const char *const stages[] = {
        "cannot enter " JOB_WORK,  "cannot set up its stdio", "cannot start /bin/sh",
        "cannot limit its memory", "cannot set its CPUs",     "cannot join its cgroup"};
    if (n == (ssize_t)sizeof(ce) && ce.stage >= 0 && ce.stage <= 5)
        say("%s: %s", stages[ce.stage], strerror(ce.err));
    else
        say("cannot start /bin/sh: the child failed before exec");
    reap(pid, NULL);
    return -1;
}

/* ---- stopping and reaping ----------------------------------------------------- */

static void kill_group(const shim_t *sh, int sig)
{
    if (kill(-sh->pgid, sig) < 0 && errno != ESRCH)
        say("cannot signal the process group %d: %s", (int)sh->pgid, strerror(errno));
}

static int arm_timer(int tfd, long sec, long ms)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = sec + ms / 1000;
    its.it_value.tv_nsec = (ms % 1000) * 1000000L;
    if (timerfd_settime(tfd, 0, &its, NULL) == 0) return 0;
    say("cannot arm the timer: %s", strerror(errno));
    return -1;
}

/* Cancel or timeout: SIGTERM to the group, SIGKILL once the grace is over
 * (at once if there is no grace or no timer for it). */
static void stop(shim_t *sh, const char *reason, long grace_ms)
{
    if (sh->phase != RUNNING) return;
    sh->reason = reason;
    say("stopping the job (%s): SIGTERM to its process group", reason);
    kill_group(sh, SIGTERM);
    sh->phase = STOPPING;
    if (grace_ms > 0 && arm_timer(sh->tfd, 0, grace_ms) == 0) return;
    kill_group(sh, SIGKILL);
    sh->phase = KILLED;
}

static void on_timer(shim_t *sh, long grace_ms)
{
    uint64_t ticks;
    if (read(sh->tfd, &ticks, sizeof(ticks)) < 0) return; /* EAGAIN: disarmed */
    if (sh->phase == RUNNING) {
        stop(sh, "timeout", grace_ms);
    } else if (sh->phase == STOPPING) {
        say("grace period over: SIGKILL to the process group");
        kill_group(sh, SIGKILL);
        sh->phase = KILLED;
    }
}

/* SIGKILL to every child of the shim: as subreaper it inherits what the
 * command orphaned, even outside the command's process group. */
static void kill_children(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
    FILE *f = fopen(path, "re");
    if (!f) return; /* no CONFIG_PROC_CHILDREN: the group kill has to do */
    int pid;
    while (fscanf(f, "%d", &pid) == 1)
        if (pid > 0) kill(pid, SIGKILL); /* ESRCH: gone already */
    fclose(f);
}

/* The command has ended (a zombie still, so that its pid, the group's id,
 * cannot be reused yet): what is left of its tree is killed, the command
 * and every other child reaped. Its wait status is returned. */
static int finish(shim_t *sh)
{
    kill_group(sh, SIGKILL);
    int status = 0;
    if (reap(sh->pgid, &status) < 0)
        say("cannot wait for the command: %s", strerror(errno));
    for (;;) {
        kill_children();
        if (reap(-1, NULL) >= 0) continue;
        if (errno != ECHILD)
            say("cannot wait for the job's processes: %s", strerror(errno));
        break;
    }
    return status;
}

/* Reaps the children that are not the command; 1 once the command has
 * exited (left unreaped for finish), 0 while it runs. */
static int on_sigchld(const shim_t *sh)
{
    for (;;) {
        siginfo_t si = {0};
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
            return errno == ECHILD;
        if (si.si_pid == 0) return 0;
        if (si.si_pid == sh->pgid) return 1;
        waitpid(si.si_pid, NULL, 0); /* an orphan of the job: reaped, ours */
    }
}

/* One signal from the signalfd; 1 once the command has exited. */
static int on_signal(shim_t *sh, long grace_ms)
{
    struct signalfd_siginfo ssi;
    ssize_t n = read(sh->sfd, &ssi, sizeof(ssi));
    if (n != (ssize_t)sizeof(ssi)) return 0;
    if (ssi.ssi_signo == SIGCHLD) return on_sigchld(sh);
    if (ssi.ssi_signo != SIGALRM) stop(sh, "canceled", grace_ms);
    return 0;
}

/* Until the command exits; 0, or -1 if the loop itself failed. */
static int event_loop(shim_t *sh, long grace_ms)
{
    /* a SIGCHLD may have come before the signalfd was read */
    if (on_sigchld(sh)) return 0;
    struct pollfd pfd[2] = {{sh->sfd, POLLIN, 0}, {sh->tfd, POLLIN, 0}};
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) continue;
            say("poll failed: %s", strerror(errno));
            return -1;
        }
        if (pfd[1].revents) on_timer(sh, grace_ms);
        if (pfd[0].revents && on_signal(sh, grace_ms)) return 0;
    }
}

/* ---- setup -------------------------------------------------------------------- */

static int block_signals(sigset_t *set)
{
    sigemptyset(set);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGALRM};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) sigaddset(set, sigs[i]);
    return sigprocmask(SIG_BLOCK, set, NULL);
}

/* stdin, stdout and stderr onto /dev/null: a terminal or pipe the starter
 * left behind may close, and writes to it must not block or kill. */
static int detach_stdio(void)
{
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0) return -1;
    for (int i = 0; i <= STDERR_FILENO; i++)
        if (fd != i && dup2(fd, i) < 0) return -1;
    if (fd > STDERR_FILENO) close(fd);
    return 0;
}

/* 0, 1 and 2 open (on /dev/null if the starter closed them), so that no
 * file of the job lands on them and is then clobbered by detach_stdio. */
static int ensure_stdio(void)
{
    int fd;
    do fd = open("/dev/null", O_RDWR);
    while (fd >= 0 && fd <= STDERR_FILENO);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

/* [--detach] --dir JOBDIR. --detach: the shim forks at once and its first
 * process exits, so that the starter (the plugin) reaps it at once and the
 * shim goes on as nobody's child there. */
static const char *parse_args(int argc, char **argv, bool *detach)
{
    *detach = argc == 4 && strcmp(argv[1], "--detach") == 0;
    if (*detach) {
        argc--;
        argv++;
    }
    if (argc == 3 && strcmp(argv[1], "--dir") == 0 && argv[2][0] == '/') return argv[2];
    fprintf(stderr, "usage: %s [--detach] --dir JOBDIR (an absolute path)\n",
            JOB_SHIM_NAME);
    return NULL;
}

/* Opens the job directory and its log; the shim's own stdio is then left. */
static int open_jobdir(shim_t *sh, const char *dir)
{
    sh->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sh->dirfd < 0) {
        say("cannot open the job directory %s: %s", dir, strerror(errno));
        return -1;
    }
    sh->logfd =
        openat(sh->dirfd, JOB_LOG, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (sh->logfd < 0) {
        say("cannot open %s: %s", JOB_LOG, strerror(errno));
        return -1;
    }
    s_logfd = sh->logfd;
    if (detach_stdio() < 0)
        say("cannot redirect stdio to /dev/null: %s", strerror(errno));
    return 0;
}

static int open_event_fds(shim_t *sh, const sigset_t *set)
{
    sh->sfd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sh->sfd < 0) {
        say("cannot create a signalfd: %s", strerror(errno));
        return -1;
    }
    sh->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (sh->tfd < 0) {
        say("cannot create a timerfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Everything before the fork; -1 leaves the job failed, never started. */
static int prepare(shim_t *sh, spec_t *sp, const char *dir, int *workfd)
{
    sigset_t set;
    if (block_signals(&set) < 0) {
        say("cannot block signals: %s", strerror(errno));
        return -1;
    }
    if (open_jobdir(sh, dir) < 0 || read_spec(sh->dirfd, sp) < 0) return -1;
    if (open_event_fds(sh, &set) < 0) return -1;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        say("cannot become a subreaper (orphans escape): %s", strerror(errno));
    *workfd = open_work(sh->dirfd);
    return *workfd < 0 ? -1 : 0;
}

/* Runs the started command to its end and writes the record; 0 or -1. */
static int supervise(shim_t *sh, const spec_t *sp)
{
    if (write_pidfile(sh) < 0) {
        say("killing the job: its supervisor cannot be found without %s", JOB_SHIM_PID);
        kill_group(sh, SIGKILL);
        finish(sh);
        write_exit(sh->dirfd, "failed", 127, 0);
        return -1;
    }
    if (sp->timeout_s > 0 && arm_timer(sh->tfd, sp->timeout_s, 0) < 0)
        stop(sh, "timeout", 0); /* a timeout that cannot be kept is not ignored */
    if (event_loop(sh, sp->grace_ms) < 0) {
        say("killing the job: the supervisor cannot go on");
        kill_group(sh, SIGKILL);
    }
    int status = finish(sh);
    return write_status(sh, status);
}

static void close_fd(int fd)
{
    if (fd >= 0) close(fd);
}

int main(int argc, char **argv)
{
    /* the starter's descriptors are none of the job's business (an old
     * kernel without close_range leaves them: nothing worse than before) */
    (void)close_range(STDERR_FILENO + 1, ~0U, 0);
    if (ensure_stdio() < 0) return 1;
    bool detach;
    const char *dir = parse_args(argc, argv, &detach);
    if (!dir) return 2;
    if (detach) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "%s: fork: %s\n", JOB_SHIM_NAME, strerror(errno));
            return 1;
        }
        if (pid > 0) _exit(0);
    }
    if (getsid(0) != getpid() && setsid() < 0 && errno != EPERM) {
        fprintf(stderr, "%s: setsid: %s\n", JOB_SHIM_NAME, strerror(errno));
        return 1;
    }
    shim_t sh = {.dirfd = -1, .logfd = -1, .sfd = -1, .tfd = -1, .phase = RUNNING};
    spec_t sp = {.cgroup_procs = -1};
    int workfd = -1;
    int rc = 1;
    if (prepare(&sh, &sp, dir, &workfd) < 0) {
        if (sh.dirfd >= 0) write_exit(sh.dirfd, "failed", 127, 0);
    } else if (spawn(&sh, &sp, workfd) < 0) {
        rc = write_exit(sh.dirfd, "failed", 127, 0) < 0;
    } else {
        close(workfd);
        workfd = -1;
        rc = supervise(&sh, &sp) < 0;
    }
    free_spec(&sp);
    close_fd(workfd);
    close_fd(sh.sfd);
    close_fd(sh.tfd);
    close_fd(sh.logfd);
    close_fd(sh.dirfd);
    return rc;
}
