/* bench/bench_util.c — see bench_util.h. */
#define _GNU_SOURCE
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn/msg.h"

#ifndef BENCH_BIN_DIR
#define BENCH_BIN_DIR ""
#endif

/* ---- the process ------------------------------------------------------------- */

static const char *s_prog = "bench";
static bench_cleanup_fn *s_cleanup;

static void s_at_exit(void)
{
    if (s_cleanup) s_cleanup(false);
}

static void s_on_signal(int sig)
{
    (void)sig;
    if (s_cleanup) s_cleanup(false);
    _exit(130);
}

void bench_init(const char *prog, bench_cleanup_fn *cleanup)
{
    s_prog = prog;
    s_cleanup = cleanup;
    unsetenv("CAIRN_ENDPOINT");
    unsetenv("CAIRN_TOKEN");
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    atexit(s_at_exit);
}

static void s_vwarn(const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", s_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
}

void bench_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vwarn(fmt, ap);
    va_end(ap);
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vwarn(fmt, ap);
    va_end(ap);
    if (s_cleanup) s_cleanup(true);
    exit(1);
}

/* ---- options -------------------------------------------------------------------- */

void bench_arg_rest(const char *prog, const char *arg, bench_usage_fn *usage)
{
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
        usage(stdout);
        exit(0);
    }
    fprintf(stderr, "%s: unknown argument '%s'\n", prog, arg);
    usage(stderr);
    exit(2);
}

bool bench_opts_take(bench_opts_t *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    bool more = *i + 1 < argc;
    if (!strcmp(a, "--quick"))
        o->quick = true;
    else if (!strcmp(a, "--json"))
        o->json = true;
    else if (!strcmp(a, "--strict"))
        o->strict = true;
    else if (!strcmp(a, "--pin"))
        o->pin = true;
    else if (!strcmp(a, "--no-pin"))
        o->pin = false;
    else if (!strcmp(a, "--rounds") && more) {
        o->rounds = atoi(argv[++*i]);
        o->rounds_set = true;
    } else if (!strcmp(a, "--seconds") && more) {
        o->seconds = atof(argv[++*i]);
        o->seconds_set = true;
    } else if (!strcmp(a, "--window") && more)
        o->window = atoi(argv[++*i]);
    else if (!strcmp(a, "--only") && more)
        o->only = argv[++*i];
    else if (!strcmp(a, "--cairnd") && more)
        o->cairnd = argv[++*i];
    else
        return false;
    return true;
}

/* ---- clock and statistics ------------------------------------------------------ */

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_pct_sorted(const double *v, size_t n, double p)
{
    if (!n) return NAN;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

double bench_pct(double *v, size_t n, double p)
{
    if (n) qsort(v, n, sizeof *v, bench_cmp_double);
    return bench_pct_sorted(v, n, p);
}

double bench_median(const double *v, int n)
{
    double tmp[BENCH_MAX_ROUNDS];
    int k = 0;
    for (int i = 0; i < n && k < BENCH_MAX_ROUNDS; i++)
        if (!isnan(v[i])) tmp[k++] = v[i];
    if (!k) return NAN;
    qsort(tmp, (size_t)k, sizeof *tmp, bench_cmp_double);
    return k % 2 ? tmp[k / 2] : (tmp[k / 2 - 1] + tmp[k / 2]) / 2;
}

double bench_cov(const double *v, int n)
{
    double s = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) {
            s += v[i];
            k++;
        }
    if (k < 2) return 0;
    double m = s / k;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) s2 += (v[i] - m) * (v[i] - m);
    return m ? sqrt(s2 / (k - 1)) / fabs(m) : 0;
}

double bench_median_at(const void *base, size_t stride, size_t off, int n)
{
    double v[BENCH_MAX_ROUNDS];
    if (n > BENCH_MAX_ROUNDS) n = BENCH_MAX_ROUNDS;
    for (int i = 0; i < n; i++)
        memcpy(&v[i], (const char *)base + (size_t)i * stride + off, sizeof v[i]);
    return bench_median(v, n);
}

/* ---- small things --------------------------------------------------------------- */

bool bench_in_list(const char *list, const char *key)
{
    if (!list) return true;
    char l[256], k[64];
    snprintf(l, sizeof l, ",%s,", list);
    snprintf(k, sizeof k, ",%s,", key);
    return strstr(l, k) != NULL;
}

bool bench_executable(const char *path)
{
    return access(path, X_OK) == 0;
}

double bench_wait_idle(pid_t pid, double max_s)
{
    uint64_t t0 = bench_now_ns(), before = 0, after = 0;
    bench_proc_cpu_ns(pid, &before);
    while ((double)(bench_now_ns() - t0) / 1e9 < max_s) {
        usleep(250 * 1000);
        if (bench_proc_cpu_ns(pid, &after) != 0) return -1;
        if (after - before < 5 * 1000 * 1000)
            return (double)(bench_now_ns() - t0) / 1e9;
        before = after;
    }
    return -1;
}

int bench_proc_cpu_ns(pid_t pid, uint64_t *ns)
{
    *ns = 0;
    if (pid <= 0) return 0;
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/schedstat", (int)pid,
                 e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long v;
        if (f && fscanf(f, "%llu", &v) == 1)
            *ns += v;
        else
            rc = -1;
        if (f) fclose(f);
    }
    closedir(d);
    return rc;
}

uint64_t bench_proc_wchar(pid_t pid)
{
    if (pid <= 0) return 0;
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %llu", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

double bench_proc_status_mib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    double v = NAN;
    if (!f) return v;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':')
            v = strtod(line + n + 1, NULL) / 1024.0;
    fclose(f);
    return v;
}

double bench_cp_fsync(const char *src, const char *dst)
{
    unlink(dst);
    uint64_t t0 = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0) bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        execlp("cp", "cp", src, dst, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bench_die("cp %s %s failed", src, dst);
    int fd = open(dst, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        bench_die("cannot fsync %s: %s", dst, strerror(errno));
    close(fd);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    unlink(dst);
    return s;
}

void bench_json_num(const char *sep, const char *key, double v)
{
    if (isnan(v) || isinf(v))
        printf("%s\"%s\": null", sep, key);
    else
        printf("%s\"%s\": %.3f", sep, key, v);
}

void bench_host(bench_host_t *h)
{
    struct utsname un;
    memset(h, 0, sizeof *h);
    if (uname(&un) == 0) snprintf(h->kernel, sizeof h->kernel, "%s", un.release);
    h->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    time_t now = time(NULL);
    strftime(h->date, sizeof h->date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
}

/* ---- the report ------------------------------------------------------------------ */

static bool s_text = true;

void bench_text_set(bool on)
{
    s_text = on;
}

void bench_out(const char *fmt, ...)
{
    if (!s_text) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static struct {
    char key[48];
    double v;
} s_figs[BENCH_MAX_FIGS];
static int s_nfigs;

void bench_fig(const char *key, double v)
{
    if (s_nfigs >= BENCH_MAX_FIGS) return;
    snprintf(s_figs[s_nfigs].key, sizeof s_figs[0].key, "%s", key);
    s_figs[s_nfigs++].v = v;
}

void bench_figf(double v, const char *fmt, ...)
{
    char key[sizeof s_figs[0].key];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    bench_fig(key, v);
}

static struct verdict {
    char name[96];
    char measured[64];
    char target[48];
    bool pass;
} s_verdicts[BENCH_MAX_VERDICTS];
static int s_nverdicts;

void bench_verdict(const char *name, bool pass, const char *target, const char *fmt,
                   ...)
{
    if (s_nverdicts >= BENCH_MAX_VERDICTS) return;
    struct verdict *v = &s_verdicts[s_nverdicts++];
    snprintf(v->name, sizeof v->name, "%s", name);
    snprintf(v->target, sizeof v->target, "%s", target);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->measured, sizeof v->measured, fmt, ap);
    va_end(ap);
    v->pass = pass;
}

int bench_misses(void)
{
    int misses = 0;
    for (int i = 0; i < s_nverdicts; i++) misses += !s_verdicts[i].pass;
    return misses;
}

const char *bench_pass(bool pass)
{
    return pass ? "PASS" : "MISS";
}

void bench_verdicts_print(int name_w, int measured_w, int target_w)
{
    bench_out("\n%-*s %-*s %-*s %s\n", name_w, "verdict", measured_w, "measured",
              target_w, "target", "result");
    for (int i = 0; i < s_nverdicts; i++)
        bench_out("%-*s %-*s %-*s %s\n", name_w, s_verdicts[i].name, measured_w,
                  s_verdicts[i].measured, target_w, s_verdicts[i].target,
                  bench_pass(s_verdicts[i].pass));
    bench_out("\n");
}

void bench_verdicts_line(bool quick)
{
    int misses = bench_misses();
    bench_out("verdicts: %d, %d PASS, %d MISS%s\n", s_nverdicts, s_nverdicts - misses,
              misses, quick ? " (--quick: sizes too small to judge)" : "");
}

void bench_json_report_tail(void)
{
    printf("\"figures\": {");
    for (int i = 0; i < s_nfigs; i++)
        bench_json_num(i ? ", " : "", s_figs[i].key, s_figs[i].v);
    printf("}, \"verdicts\": [");
    for (int i = 0; i < s_nverdicts; i++)
        printf(
            "%s{\"name\": \"%s\", \"measured\": \"%s\", \"target\": \"%s\", "
            "\"result\": \"%s\"}",
            i ? ", " : "", s_verdicts[i].name, s_verdicts[i].measured,
            s_verdicts[i].target, bench_pass(s_verdicts[i].pass));
    printf("], \"misses\": %d}\n", bench_misses());
}

void bench_loadavg(char *buf, size_t cap)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a = NAN, b = NAN, c = NAN;
    if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3) a = b = c = NAN;
    if (f) fclose(f);
    snprintf(buf, cap, "%.2f %.2f %.2f", a, b, c);
}

/* ---- processes and CPUs -------------------------------------------------------- */

bool bench_pick_cpus(int *srv, int *cli)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < 2)
        return false;
    int found[2], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &allowed)) found[n++] = c;
    *srv = found[0];
    *cli = found[1];
    return true;
}

int bench_pin(int cpu, cairn_err_t *err)
{
    if (cpu < 0) return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        return cairn_err_set(err, 500, NULL, "cannot pin to CPU %d: %s", cpu,
                             strerror(errno));
    return 0;
}

void bench_child_setup(pid_t parent, int cpu)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    cairn_err_t err = {0};
    if (bench_pin(cpu, &err) != 0) bench_warn("%s", err.msg);
}

pid_t bench_fork_server(int cpu, bench_serve_fn *serve, void *arg, char *line,
                        size_t cap)
{
    int p[2];
    if (pipe(p) != 0) bench_die("pipe: %s", strerror(errno));
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        bench_child_setup(me, cpu);
        close(p[0]);
        serve(p[1], arg);
        _exit(0);
    }
    close(p[1]);
    size_t got = 0;
    struct pollfd pf = {p[0], POLLIN, 0};
    while (got < cap - 1 && !memchr(line, '\n', got)) {
        if (poll(&pf, 1, 10000) <= 0) bench_die("a server process did not start");
        ssize_t n = read(p[0], line + got, cap - 1 - got);
        if (n <= 0) bench_die("a server process exited at start");
        got += (size_t)n;
    }
    close(p[0]);
    line[got] = '\0';
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    return pid;
}

void bench_reap(pid_t pid, int sig)
{
    if (pid <= 0) return;
    kill(pid, sig);
    for (int i = 0; i < 500; i++) { /* at most 5 s, then SIGKILL */
        if (waitpid(pid, NULL, WNOHANG) == pid) return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- a private cairnd ----------------------------------------------------------- */

struct bench_kernel {
    char auth[65];  /* kernel.auth: "none" unless bench_kernel_set_auth */
    char audit[65]; /* kernel.audit: "none" unless bench_kernel_set_audit */
    char cairnd[PATH_MAX];
    char dir[PATH_MAX];
    char log[PATH_MAX + 32]; /* "" until started */
    char endpoint[64];
    pid_t pid;
    bool keep;
};

static int s_find_cairnd(const char *given, char *out, size_t len, cairn_err_t *err)
{
    if (given) {
        snprintf(out, len, "%s", given);
        if (!bench_executable(out))
            return cairn_err_set(err, 400, NULL, "--cairnd %s: not an executable", out);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        const char *dir = dirname(exe);
        snprintf(out, len, "%s/cairnd", dir);
        if (bench_executable(out)) return 0;
        snprintf(out, len, "%s/../bin/cairnd", dir);
        if (bench_executable(out)) return 0;
    }
    snprintf(out, len, "%s/cairnd", BENCH_BIN_DIR);
    if (BENCH_BIN_DIR[0] && bench_executable(out)) return 0;
    return cairn_err_set(
        err, 404, NULL,
        "cannot find cairnd beside this program or in '%s' (use --cairnd PATH)",
        BENCH_BIN_DIR);
}

bench_kernel_t *bench_kernel_new(const char *cairnd, const char *tmp_prefix,
                                 cairn_err_t *err)
{
    bench_kernel_t *self = calloc(1, sizeof *self);
    if (!self) {
        cairn_err_set(err, 500, NULL, "out of memory");
        return NULL;
    }
    self->pid = -1;
    if (s_find_cairnd(cairnd, self->cairnd, sizeof self->cairnd, err) != 0) {
        free(self);
        return NULL;
    }
    snprintf(self->dir, sizeof self->dir, "%sXXXXXX", tmp_prefix);
    if (!mkdtemp(self->dir)) {
        cairn_err_set(err, 500, NULL, "mkdtemp: %s", strerror(errno));
        free(self);
        return NULL;
    }
    return self;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void bench_kernel_destroy(bench_kernel_t **self_p)
{
    bench_kernel_t *self = *self_p;
    if (!self) return;
    bench_kernel_stop(self);
    if (!self->keep) nftw(self->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(self);
    *self_p = NULL;
}

void bench_kernel_keep(bench_kernel_t *self)
{
    self->keep = true;
}

void bench_kernel_set_auth(bench_kernel_t *self, const char *auth)
{
    snprintf(self->auth, sizeof self->auth, "%s", auth);
}

void bench_kernel_set_audit(bench_kernel_t *self, const char *audit)
{
    snprintf(self->audit, sizeof self->audit, "%s", audit);
}

const char *bench_kernel_dir(const bench_kernel_t *self)
{
    return self->dir;
}

const char *bench_kernel_endpoint(const bench_kernel_t *self)
{
    return self->endpoint;
}

pid_t bench_kernel_pid(const bench_kernel_t *self)
{
    return self->pid;
}

static int s_free_port(int *port, cairn_err_t *err)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) != 0) {
        cairn_err_set(err, 503, NULL, "cannot find a free port: %s", strerror(errno));
        if (s >= 0) close(s);
        return -1;
    }
    close(s);
    *port = ntohs(a.sin_port);
    return 0;
}

int bench_kernel_start(bench_kernel_t *self, const char *services, int cpu,
                       cairn_err_t *err)
{
    int port, events;
    if (s_free_port(&port, err) != 0 || s_free_port(&events, err) != 0) return -1;
    snprintf(self->endpoint, sizeof self->endpoint, "tcp://127.0.0.1:%d", port);
    char conf[PATH_MAX + 32], state[PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/cairn.yaml", self->dir);
    snprintf(state, sizeof state, "%s/state", self->dir);
    snprintf(self->log, sizeof self->log, "%s/cairnd.log", self->dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return cairn_err_set(err, 500, NULL, "cannot write %s: %s", conf,
                             strerror(errno));
    fprintf(f,
            "kernel:\n"
            "  endpoint: %s\n"
            "  events: tcp://127.0.0.1:%d\n"
            "  auth: %s\n"
            "  audit: %s\n"
            "services:\n",
            self->endpoint, events, self->auth[0] ? self->auth : "none",
            self->audit[0] ? self->audit : "none");
    for (const char *p = services, *at; *p; p = at + strlen(BENCH_ENDPOINT)) {
        if (!(at = strstr(p, BENCH_ENDPOINT))) {
            fputs(p, f);
            break;
        }
        fprintf(f, "%.*s%s", (int)(at - p), p, self->endpoint);
    }
    if (fclose(f) != 0)
        return cairn_err_set(err, 500, NULL, "cannot write %s: %s", conf,
                             strerror(errno));
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) return cairn_err_set(err, 500, NULL, "fork: %s", strerror(errno));
    if (pid == 0) {
        bench_child_setup(me, cpu);
        int fd = open(self->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        unsetenv("CAIRN_ENDPOINT");
        execl(self->cairnd, self->cairnd, "--conf", conf, "--state", state,
              (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", self->cairnd, strerror(errno));
        _exit(127);
    }
    self->pid = pid;
    return 0;
}

/* sys.health says ok, with nservices services, every one up. */
static bool s_all_up(cairn_client_t *c, uint32_t nservices)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    bool up = false;
    if (cairn_client_call(c, "sys", "health", NULL, 0, 500, &r, &err) == 0) {
        const msgpack_object *o = cairn_reply_object(r);
        const msgpack_object *ok = cairn_obj_get(o, "ok");
        const msgpack_object *pl = cairn_obj_get(o, "plugins");
        if (ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean && pl &&
            pl->type == MSGPACK_OBJECT_ARRAY && pl->via.array.size == nservices) {
            up = true;
            for (uint32_t i = 0; i < pl->via.array.size; i++)
                if (!cairn_obj_is_str(cairn_obj_get(&pl->via.array.ptr[i], "state"),
                                      "up"))
                    up = false;
        }
    }
    cairn_reply_destroy(&r);
    return up;
}

cairn_client_t *bench_kernel_wait(bench_kernel_t *self, uint32_t nservices,
                                  cairn_err_t *err)
{
    if (self->pid <= 0) {
        cairn_err_set(err, 503, NULL, "cairnd is not running");
        return NULL;
    }
    cairn_client_t *c = cairn_client_new(self->endpoint, NULL, err);
    if (!c) return NULL;
    uint64_t end = bench_now_ns() + 30ull * 1000000000u;
    for (;;) {
        int status;
        if (waitpid(self->pid, &status, WNOHANG) == self->pid) {
            self->pid = -1;
            cairn_client_destroy(&c);
            if (WIFEXITED(status))
                cairn_err_set(err, 503, "cairnd_exited",
                              "cairnd exited at start (exit status %d)",
                              WEXITSTATUS(status));
            else
                cairn_err_set(err, 503, "cairnd_exited",
                              "cairnd died at start (signal %d)", WTERMSIG(status));
            return NULL;
        }
        if (s_all_up(c, nservices)) return c;
        if (bench_now_ns() > end) {
            cairn_client_destroy(&c);
            cairn_err_set(err, 504, NULL,
                          "cairnd's services were not all up within 30 s");
            return NULL;
        }
        /* A fresh socket: a lost reply must not be mistaken for the next. */
        cairn_client_destroy(&c);
        usleep(20000);
        if (!(c = cairn_client_new(self->endpoint, NULL, err))) return NULL;
    }
}

void bench_kernel_stop(bench_kernel_t *self)
{
    if (self->pid > 0) bench_reap(self->pid, SIGTERM);
    self->pid = -1;
}

void bench_kernel_print_log(const bench_kernel_t *self, FILE *f)
{
    FILE *in = self && self->log[0] ? fopen(self->log, "r") : NULL;
    if (!in) return;
    char line[512];
    fprintf(f, "---- cairnd log ----\n");
    while (fgets(line, sizeof line, in)) fputs(line, f);
    fclose(in);
}

void bench_make_file(const char *path, uint64_t size, uint64_t seed, bool sync)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) bench_die("cannot create %s: %s", path, strerror(errno));
    enum { BUF = 1 << 20 };
    uint64_t *buf = malloc(BUF),
             x = 0x9E3779B97F4A7C15ull ^ (seed * 0x2545F4914F6CDD1Dull);
    if (!buf) bench_die("out of memory");
    for (uint64_t done = 0; done < size;) {
        for (size_t i = 0; i < BUF / 8; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = x;
        }
        size_t n = size - done < BUF ? (size_t)(size - done) : BUF;
        if (write(fd, buf, n) != (ssize_t)n)
            bench_die("cannot write %s: %s", path, strerror(errno));
        done += n;
    }
    free(buf);
    if ((sync && fsync(fd) != 0) || close(fd) != 0)
        bench_die("cannot write %s: %s", path, strerror(errno));
}

uint64_t bench_parse_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ull << 10;
    if (*end == 'M' || *end == 'm') mul = 1ull << 20;
    if (*end == 'G' || *end == 'g') mul = 1ull << 30;
    if (mul > 1) end++;
    if (errno || end == s || *end || !(v >= 1) ||
        v * (double)mul > (double)(64ull << 30))
        return 0;
    return (uint64_t)(v * (double)mul);
}

uint64_t bench_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double bench_rand_unit(uint64_t *state)
{
    return (double)(bench_rand(state) >> 11) / 9007199254740992.0;
}

void bench_model_rows(uint64_t seed, size_t n, int nf, float *x, float *y)
{
    uint64_t ws = 99; /* the rule's weights: the same for every seed */
    double *w = malloc((size_t)nf * sizeof *w);
    if (!w) bench_die("out of memory");
    for (int j = 0; j < nf; j++) w[j] = bench_rand_unit(&ws) * 2 - 1;
    for (size_t r = 0; r < n; r++) {
        double z = 0;
        for (int j = 0; j < nf; j++) {
            double v = bench_rand_unit(&seed) * 10 - 5;
            x[r * (size_t)nf + (size_t)j] =
                bench_rand_unit(&seed) < 0.02 ? NAN : (float)v;
            z += w[j] * v + (j % 3 == 0 ? 0.3 * v * v - 2.5 : 0);
        }
        if (y) y[r] = z + (bench_rand_unit(&seed) - 0.5) * 6 > 0;
    }
    free(w);
}
