/* harness.c — start, wait for and stop a private cairnd (see harness.h). */
#define _GNU_SOURCE
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn/client.h"
#include "cairn/msg.h"

int harness_passed;
int harness_failed;

uint64_t harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void s_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void harness_dump_log(const harness_kernel_t *k)
{
    FILE *f = fopen(k->log, "r");
    if (!f) return;
    fprintf(stderr, "---- cairnd log (%s) ----\n", k->log);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Reap the child if it has exited; true when it is gone. */
static bool s_reaped(harness_kernel_t *k)
{
    if (k->pid <= 0) return true;
    int status;
    pid_t r = waitpid(k->pid, &status, WNOHANG);
    if (r == 0) return false;
    if (r == k->pid) {
        k->exit_status = WIFEXITED(status)     ? WEXITSTATUS(status)
                         : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                               : -1;
    } else {
        k->exit_status = -1; /* ECHILD: someone else reaped it */
    }
    k->pid = 0;
    return true;
}

static int s_write_conf(harness_kernel_t *k, const char *kernel, const char *services)
{
    FILE *f = fopen(k->conf, "w");
    if (!f) return -1;
    fprintf(f,
            "kernel:\n"
            "  endpoint: %s\n"
            "  events: %s\n"
            "%s"
            "services:\n%s",
            k->endpoint, k->events, kernel, services);
    return fclose(f) == 0 ? 0 : -1;
}

static pid_t s_spawn(const harness_kernel_t *k, const char *cairnd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* Child: die with the test, log to the temp dir, run cairnd. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(k->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO) close(fd);
    }
    unsetenv("CAIRN_ENDPOINT");
    unsetenv("CAIRN_STATE");
    char *argv[] = {(char *)cairnd, "--conf",         (char *)k->conf,
                    "--state",      (char *)k->state, NULL};
    execv(cairnd, argv);
    fprintf(stderr, "harness: cannot exec %s: %s\n", cairnd, strerror(errno));
    _exit(127);
}

/* The health body says every plugin is up (and there are want of them). */
static bool s_all_up(cairn_reply_t *r, size_t want)
{
    const msgpack_object *b = cairn_reply_object(r);
    const msgpack_object *pl = cairn_obj_get(b, "plugins");
    if (!pl || pl->type != MSGPACK_OBJECT_ARRAY || pl->via.array.size < want)
        return false;
    for (uint32_t i = 0; i < pl->via.array.size; i++)
        if (!cairn_obj_is_str(cairn_obj_get(&pl->via.array.ptr[i], "state"), "up"))
            return false;
    return true;
}

/* Count the service names in the services text (lines "  NAME:"). */
static size_t s_count_services(const char *services)
{
    size_t n = 0;
    for (const char *l = services; l && *l;) {
        if (l[0] == ' ' && l[1] == ' ' && l[2] != ' ' && l[2] != '\n' && l[2] != '#' &&
            l[2] != '\0')
            n++;
        const char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : NULL;
    }
    return n;
}

static int s_wait_ready(harness_kernel_t *k, size_t nservices)
{
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(k->endpoint, NULL, &err);
    if (!c) {
        fprintf(stderr, "harness: client: %s\n", err.msg);
        return -1;
    }
    uint64_t end = harness_now_ms() + HARNESS_DEADLINE_MS;
    bool pinged = false, up = false;
    while (harness_now_ms() < end) {
        if (s_reaped(k)) {
            fprintf(stderr, "harness: cairnd exited with %d before it was ready\n",
                    k->exit_status);
            break;
        }
        cairn_reply_t *r = NULL;
        if (!pinged) {
            if (cairn_client_call(c, "sys", "ping", NULL, 0, 500, &r, &err) == 0)
                pinged = true;
        } else if (cairn_client_call(c, "sys", "health", NULL, 0, 1000, &r, &err) ==
                       0 &&
                   s_all_up(r, nservices)) {
            up = true;
        }
        cairn_reply_destroy(&r);
        if (up) break;
        s_sleep_ms(20);
    }
    cairn_client_destroy(&c);
    if (!up)
        fprintf(stderr, "harness: cairnd on %s was not ready (%s) within %d ms\n",
                k->endpoint, pinged ? "plugins not all up" : "no ping",
                HARNESS_DEADLINE_MS);
    return up ? 0 : -1;
}

int harness_start(harness_kernel_t *k, const char *services)
{
    return harness_start_kernel(k, NULL, services);
}

int harness_start_kernel(harness_kernel_t *k, const char *kernel, const char *services)
{
    memset(k, 0, sizeof *k);
    if (!services) services = HARNESS_ECHO_INPROC;
    if (!kernel) kernel = HARNESS_KERNEL_DEFAULT;
    const char *build = getenv("CAIRN_BUILD_DIR");
    if (!build || !*build) build = "build";
    char cairnd[HARNESS_PATH_MAX];
    snprintf(cairnd, sizeof cairnd, "%s/bin/cairnd", build);
    if (access(cairnd, X_OK) != 0) {
        fprintf(stderr, "harness: %s is not executable (set CAIRN_BUILD_DIR)\n",
                cairnd);
        return -1;
    }
    k->port = harness_free_port();
    do k->events_port = harness_free_port();
    while (k->events_port == k->port && k->port > 0);
    if (k->port <= 0 || k->events_port <= 0) {
        fprintf(stderr, "harness: no free port: %s\n", strerror(errno));
        return -1;
    }
    snprintf(k->endpoint, sizeof k->endpoint, "tcp://127.0.0.1:%d", k->port);
    snprintf(k->events, sizeof k->events, "tcp://127.0.0.1:%d", k->events_port);
    const char *tmpdir = getenv("TMPDIR");
    if (!tmpdir || !*tmpdir || strlen(tmpdir) > 64) tmpdir = "/tmp";
    snprintf(k->tmp, sizeof k->tmp, "%s/cairn-test-XXXXXX", tmpdir);
    if (!mkdtemp(k->tmp)) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", k->tmp, strerror(errno));
        k->tmp[0] = '\0';
        return -1;
    }
    snprintf(k->conf, sizeof k->conf, "%s/cairn.yaml", k->tmp);
    snprintf(k->state, sizeof k->state, "%s/state", k->tmp);
    snprintf(k->log, sizeof k->log, "%s/cairnd.log", k->tmp);
    if (s_write_conf(k, kernel, services) != 0) {
        fprintf(stderr, "harness: cannot write %s: %s\n", k->conf, strerror(errno));
        harness_cleanup(k);
        return -1;
    }
    fflush(NULL); /* nothing buffered is written twice by the child */
    k->pid = s_spawn(k, cairnd);
    if (k->pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        k->pid = 0;
        harness_cleanup(k);
        return -1;
    }
    if (s_wait_ready(k, s_count_services(services)) != 0) {
        harness_dump_log(k);
        harness_cleanup(k);
        return -1;
    }
    return 0;
}

int harness_stop(harness_kernel_t *k)
{
    if (k->pid <= 0) return k->exit_status;
    if (!s_reaped(k)) {
        kill(k->pid, SIGTERM);
        uint64_t end = harness_now_ms() + HARNESS_DEADLINE_MS;
        while (!s_reaped(k) && harness_now_ms() < end) s_sleep_ms(10);
        if (k->pid > 0) {
            fprintf(stderr,
                    "harness: cairnd (pid %d) ignored SIGTERM for %d ms; killing it\n",
                    (int)k->pid, HARNESS_DEADLINE_MS);
            kill(k->pid, SIGKILL);
            int status;
            waitpid(k->pid, &status, 0);
            k->pid = 0;
            k->exit_status = 128 + SIGKILL;
        }
    }
    return k->exit_status;
}

void harness_cleanup(harness_kernel_t *k)
{
    harness_stop(k);
    if (k->tmp[0]) nftw(k->tmp, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    k->tmp[0] = '\0';
}

int harness_summary(void)
{
    printf("%d passed, %d failed\n", harness_passed, harness_failed);
    fflush(stdout);
    return harness_failed ? 1 : 0;
}
