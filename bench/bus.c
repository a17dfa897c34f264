/* bench_bus — the bus ratio benchmark (issue 2; docs/PERFORMANCE.md).
 *
 *   bench_bus [--quick] [--json] [--rounds N] [--seconds S] [--window W]
 *             [--only LIST] [--cairnd PATH] [--no-pin] [--strict]
 *
 * Five cases, every client on tcp loopback, every body 128 bytes (one msgpack
 * bin value), each measured lock-step (one request at a time: RTT p50/p99)
 * and pipelined (a DEALER with a bounded window of W requests in flight:
 * replies per second; unbounded pipelining would deadlock on the HWM):
 *
 *   raw             REQ -> REP echo (lock-step); DEALER -> ROUTER echo
 *                   (pipelined). The floor: no broker at all.
 *   proxy           REQ/DEALER -> ROUTER [zmq_proxy] DEALER -inproc-> a REP
 *                   echo thread, in one server process: the peer of
 *   cairnd_inproc   the C SDK (cairn_client_call; cairn_client_send/recv) ->
 *                   cairnd -> the echo plugin's `echo` verb, inproc (a kernel
 *                   thread on inproc://).
 *   proxy_ipc       as proxy, but the REP echo worker is its own process on an
 *                   ipc:// backend: the peer of
 *   cairnd_process  as cairnd_inproc, to service `echo_proc` (plugin echo in
 *                   process mode: cairn-plugin-host over ipc://).
 *
 * The servers are forked before this process makes any ZeroMQ context, so
 * each broker has the same threads as its peer (a broker thread, a worker
 * thread or process, libzmq I/O threads). One cairnd serves both plugin
 * modes; it runs from a temp conf on free loopback ports with a temp state
 * dir and is stopped at the end. With two or more CPUs the servers are pinned
 * to one CPU and this process (the clients) to another (--no-pin: not).
 *
 * Rounds alternate the case order (forward, then reversed); every figure is
 * the median over rounds, and every ratio is taken within a round, then its
 * median (and CoV) reported. Beside the timings it reports the CPU time
 * (all threads, from /proc/PID/task/TID/schedstat) per pipelined request,
 * server side and client side: a cost that noise on the machine hardly moves.
 * Timings are never asserted: ratios print PASS or MISS against their
 * targets, and only --strict turns a MISS into exit status 3.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "cairn/client.h"

#ifndef BENCH_BIN_DIR
#define BENCH_BIN_DIR ""
#endif

#define BODY_LEN 128
#define MAX_ROUNDS 50
#define IO_TIMEOUT_MS 10000

/* ---- options, clock, stats ---------------------------------------------- */

typedef struct opts {
    bool quick, json, strict, pin;
    int rounds;
    double seconds; /* per sample: lock-step and pipelined each */
    double warmup;  /* per case, once, before the rounds */
    int window;
    const char *cairnd;
    const char *only; /* comma-separated case keys, for profiling one path */
} opts_t;

static unsigned char g_body[BODY_LEN];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct_sorted(const double *v, size_t n, double p)
{
    if (!n) return NAN;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static double median(const double *v, int n)
{
    double tmp[MAX_ROUNDS];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) tmp[k++] = v[i];
    if (!k) return NAN;
    qsort(tmp, (size_t)k, sizeof *tmp, cmp_double);
    return k % 2 ? tmp[k / 2] : (tmp[k / 2 - 1] + tmp[k / 2]) / 2;
}

static double cov(const double *v, int n)
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

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- child processes ------------------------------------------------------- */

#define MAX_CHILDREN 8
static pid_t g_children[MAX_CHILDREN];
static int g_nchildren;
static pid_t g_cairnd = -1;
static int g_srv_cpu = -1, g_cli_cpu = -1; /* --pin: the servers' CPU, the clients' */

static void s_pin(int cpu)
{
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "bench_bus: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}
static char g_tmp[PATH_MAX];
static char g_log[PATH_MAX + 32];

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void s_reap(pid_t pid, int sig)
{
    if (pid <= 0) return;
    kill(pid, sig);
    for (int i = 0; i < 300; i++) { /* at most 3 s, then SIGKILL */
        if (waitpid(pid, NULL, WNOHANG) == pid) return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void cleanup(void)
{
    if (g_cairnd > 0) s_reap(g_cairnd, SIGTERM);
    g_cairnd = -1;
    for (int i = 0; i < g_nchildren; i++) s_reap(g_children[i], SIGKILL);
    g_nchildren = 0;
    /* Orphans (the proxy's worker process) come to us, the subreaper. */
    for (int i = 0; i < 100 && waitpid(-1, NULL, WNOHANG) >= 0; i++) usleep(10000);
    if (g_tmp[0]) nftw(g_tmp, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    g_tmp[0] = '\0';
}

static void on_signal(int sig)
{
    (void)sig;
    cleanup();
    _exit(130);
}

static void s_print_cairnd_log(void)
{
    FILE *f = g_log[0] ? fopen(g_log, "r") : NULL;
    if (!f) return;
    char line[512];
    fprintf(stderr, "---- cairnd log ----\n");
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fclose(f);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_bus: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    s_print_cairnd_log();
    cleanup();
    exit(1);
}

/* In a forked child: die with the bench (it may already be gone). */
static void s_child_setup(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    s_pin(g_srv_cpu); /* inherited by every thread and exec'd child */
}

/* Echo every message back: works for REP (the envelope is implicit) and
 * ROUTER (the identity frame routes the reply). */
static void echo_loop(void *sock)
{
    for (;;) {
        zmq_msg_t part[8];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sock, 0) < 0) {
                zmq_msg_close(&m);
                if (errno == EINTR) continue;
                for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
                return;
            }
            more = zmq_msg_more(&m);
            if (n < 8)
                part[n++] = m;
            else
                zmq_msg_close(&m);
        }
        for (int i = 0; i < n; i++)
            if (zmq_msg_send(&part[i], sock, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
                zmq_msg_close(&part[i]);
    }
}

static void *echo_thread(void *sock)
{
    echo_loop(sock);
    return NULL;
}

static void *s_sock(void *ctx, int type, const char *ep, bool bind)
{
    void *s = zmq_socket(ctx, type);
    int zero = 0;
    if (!s) return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if ((bind ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0) {
        fprintf(stderr, "bench_bus: %s %s: %s\n", bind ? "bind" : "connect", ep,
                zmq_strerror(errno));
        _exit(2);
    }
    return s;
}

static void s_last_ep(void *s, char *buf, size_t len)
{
    size_t n = len;
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, buf, &n);
}

typedef enum { SRV_RAW, SRV_PROXY_INPROC, SRV_PROXY_IPC } srv_kind_t;

/* The server processes. Each writes its endpoint(s) as one line on fd. */
static void server_main(srv_kind_t kind, int fd, const char *ipc_path)
{
    char ep1[256] = "", ep2[256] = "", line[600];
    pid_t w = 0;
    if (kind == SRV_PROXY_IPC) {
        /* The worker process first, before this one makes a zmq context. */
        pid_t me = getpid();
        w = fork();
        if (w < 0) _exit(2);
        if (w == 0) {
            s_child_setup(me);
            void *ctx = zmq_ctx_new();
            char ep[PATH_MAX + 16];
            snprintf(ep, sizeof ep, "ipc://%s", ipc_path);
            echo_loop(s_sock(ctx, ZMQ_REP, ep, false));
            _exit(0);
        }
    }
    void *ctx = zmq_ctx_new();
    if (kind == SRV_RAW) {
        void *rep = s_sock(ctx, ZMQ_REP, "tcp://127.0.0.1:*", true);
        void *router = s_sock(ctx, ZMQ_ROUTER, "tcp://127.0.0.1:*", true);
        s_last_ep(rep, ep1, sizeof ep1);
        s_last_ep(router, ep2, sizeof ep2);
        pthread_t t;
        if (pthread_create(&t, NULL, echo_thread, router) != 0) _exit(2);
        snprintf(line, sizeof line, "%s %s 0\n", ep1, ep2);
        if (write(fd, line, strlen(line)) < 0) _exit(2);
        close(fd);
        echo_loop(rep);
        _exit(0);
    }
    void *front = s_sock(ctx, ZMQ_ROUTER, "tcp://127.0.0.1:*", true);
    void *back;
    if (kind == SRV_PROXY_INPROC) {
        back = s_sock(ctx, ZMQ_DEALER, "inproc://bench-echo", true);
        void *rep = s_sock(ctx, ZMQ_REP, "inproc://bench-echo", false);
        pthread_t t;
        if (pthread_create(&t, NULL, echo_thread, rep) != 0) _exit(2);
    } else {
        char ep[PATH_MAX + 16];
        snprintf(ep, sizeof ep, "ipc://%s", ipc_path);
        back = s_sock(ctx, ZMQ_DEALER, ep, true);
    }
    s_last_ep(front, ep1, sizeof ep1);
    snprintf(line, sizeof line, "%s - %d\n", ep1, (int)w);
    if (write(fd, line, strlen(line)) < 0) _exit(2);
    close(fd);
    zmq_proxy(front, back, NULL);
    _exit(0);
}

/* Fork a server; fill ep1/ep2 from the line it writes; pids[0] is the
 * server, pids[1] its worker process (or 0). */
static void start_server(srv_kind_t kind, const char *ipc_path, char *ep1, char *ep2,
                         size_t len, pid_t pids[2])
{
    int p[2];
    if (pipe(p) != 0) die("pipe: %s", strerror(errno));
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        s_child_setup(me);
        close(p[0]);
        server_main(kind, p[1], ipc_path);
        _exit(0);
    }
    close(p[1]);
    g_children[g_nchildren++] = pid;
    char buf[600];
    size_t got = 0;
    struct pollfd pf = {p[0], POLLIN, 0};
    while (got < sizeof buf - 1 && !memchr(buf, '\n', got)) {
        if (poll(&pf, 1, IO_TIMEOUT_MS) <= 0) die("a server process did not start");
        ssize_t n = read(p[0], buf + got, sizeof buf - 1 - got);
        if (n <= 0) die("a server process exited at start");
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(p[0]);
    char a[300], b[300];
    int wpid = 0;
    if (sscanf(buf, "%299s %299s %d", a, b, &wpid) != 3) die("a server sent '%s'", buf);
    pids[0] = pid;
    pids[1] = (pid_t)wpid;
    snprintf(ep1, len, "%s", a);
    snprintf(ep2, len, "%s", b);
}

/* ---- cairnd ----------------------------------------------------------------- */

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) != 0)
        die("cannot find a free port: %s", strerror(errno));
    close(s);
    return ntohs(a.sin_port);
}

static bool s_exists(const char *p)
{
    return access(p, X_OK) == 0;
}

static void find_cairnd(const opts_t *o, char *out, size_t len)
{
    if (o->cairnd) {
        snprintf(out, len, "%s", o->cairnd);
        if (!s_exists(out)) die("--cairnd %s: not an executable", out);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        const char *dir = dirname(exe);
        snprintf(out, len, "%s/cairnd", dir);
        if (s_exists(out)) return;
        snprintf(out, len, "%s/../bin/cairnd", dir);
        if (s_exists(out)) return;
    }
    snprintf(out, len, "%s/cairnd", BENCH_BIN_DIR);
    if (BENCH_BIN_DIR[0] && s_exists(out)) return;
    die("cannot find cairnd beside this program or in '%s' (use --cairnd PATH)",
        BENCH_BIN_DIR);
}

static void start_cairnd(const char *cairnd, const char *endpoint, const char *events)
{
    char conf[PATH_MAX + 32], state[PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/cairn.yaml", g_tmp);
    snprintf(state, sizeof state, "%s/state", g_tmp);
    snprintf(g_log, sizeof g_log, "%s/cairnd.log", g_tmp);
    FILE *f = fopen(conf, "w");
    if (!f) die("cannot write %s: %s", conf, strerror(errno));
    fprintf(f,
            "kernel:\n"
            "  endpoint: %s\n"
            "  events: %s\n"
            "  auth: none\n"
            "services:\n"
            "  echo:\n"
            "    plugin: echo\n"
            "    mode: inproc\n"
            "  echo_proc:\n"
            "    plugin: echo\n"
            "    mode: process\n",
            endpoint, events);
    fclose(f);
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        s_child_setup(me);
        int fd = open(g_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        unsetenv("CAIRN_ENDPOINT");
        execl(cairnd, cairnd, "--conf", conf, "--state", state, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", cairnd, strerror(errno));
        _exit(127);
    }
    g_cairnd = pid;
}

static const msgpack_object *s_get(const msgpack_object *o, const char *key)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

/* sys.health says ok and every plugin up. */
static bool s_all_up(cairn_client_t *c)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    bool up = false;
    if (cairn_client_call(c, "sys", "health", NULL, 0, 500, &r, &err) == 0) {
        const msgpack_object *o = cairn_reply_object(r);
        const msgpack_object *ok = s_get(o, "ok"), *pl = s_get(o, "plugins");
        if (ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean && pl &&
            pl->type == MSGPACK_OBJECT_ARRAY && pl->via.array.size == 2) {
            up = true;
            for (uint32_t i = 0; i < pl->via.array.size; i++) {
                const msgpack_object *st = s_get(&pl->via.array.ptr[i], "state");
                if (!st || st->type != MSGPACK_OBJECT_STR || st->via.str.size != 2 ||
                    memcmp(st->via.str.ptr, "up", 2) != 0)
                    up = false;
            }
        }
    }
    cairn_reply_destroy(&r);
    return up;
}

static int64_t s_info_pid(cairn_client_t *c, const char *svc)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    int64_t pid = -1;
    if (cairn_client_call(c, svc, "info", NULL, 0, 5000, &r, &err) != 0)
        die("%s.info: %s", svc, err.msg);
    const msgpack_object *p = s_get(cairn_reply_object(r), "pid");
    if (p && p->type == MSGPACK_OBJECT_POSITIVE_INTEGER) pid = (int64_t)p->via.u64;
    cairn_reply_destroy(&r);
    return pid;
}

/* Wait for both services; *host receives the process plugin's pid. */
static cairn_client_t *wait_cairnd(const char *endpoint, pid_t *host)
{
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(endpoint, NULL, &err);
    if (!c) die("cairn_client_new: %s", err.msg);
    uint64_t end = now_ns() + 30ull * 1000000000u;
    for (;;) {
        int status;
        if (waitpid(g_cairnd, &status, WNOHANG) == g_cairnd) {
            g_cairnd = -1;
            if (WIFEXITED(status))
                die("cairnd exited at start (exit status %d)", WEXITSTATUS(status));
            die("cairnd died at start (signal %d)", WTERMSIG(status));
        }
        if (s_all_up(c)) break;
        if (now_ns() > end) die("cairnd's services were not all up within 30 s");
        /* A fresh socket: a lost reply must not be mistaken for the next. */
        cairn_client_destroy(&c);
        usleep(20000);
        if (!(c = cairn_client_new(endpoint, NULL, &err))) die("%s", err.msg);
    }
    /* The modes are what the conf says: inproc shares cairnd's pid. */
    if (s_info_pid(c, "echo") != g_cairnd) die("echo is not running inside cairnd");
    int64_t pp = s_info_pid(c, "echo_proc");
    if (pp <= 0 || pp == g_cairnd) die("echo_proc is not running in its own process");
    *host = (pid_t)pp;
    return c;
}

/* ---- the cases --------------------------------------------------------------- */

typedef enum { C_RAW, C_PROXY, C_CAIRN, C_PROXY_IPC, C_CAIRN_PROC, NCASES } case_id_t;

typedef struct sample {
    double p50, p99, mean; /* µs */
    size_t n;
    double rps;
    size_t pn;
    /* CPU time per request, µs, all threads: the server side (broker and
     * worker processes) and this process (the client and its I/O thread). */
    double lock_srv_cpu, lock_cli_cpu, pipe_srv_cpu, pipe_cli_cpu;
} sample_t;

typedef struct bcase {
    const char *key, *label;
    void *lock_sock, *pipe_sock; /* raw and proxy */
    cairn_client_t *cli;         /* cairnd */
    const char *svc;
    pid_t pids[2]; /* the server-side processes (0: none) */
    bool skip;     /* not in --only */
    sample_t s[MAX_ROUNDS];
} bcase_t;

/* CPU time of every thread of a process, ns (schedstat); 0 for no process,
 * NO_CPU when unreadable. */
#define NO_CPU UINT64_MAX
static uint64_t s_proc_cpu_ns(pid_t pid)
{
    if (pid <= 0) return 0;
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return NO_CPU;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/schedstat", (int)pid,
                 e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long ns;
        if (!f || fscanf(f, "%llu", &ns) != 1) sum = NO_CPU;
        if (f) fclose(f);
        if (sum == NO_CPU) break;
        sum += ns;
    }
    closedir(d);
    return sum;
}

static uint64_t s_add(uint64_t a, uint64_t b)
{
    return a == NO_CPU || b == NO_CPU ? NO_CPU : a + b;
}

typedef struct cpu_mark {
    uint64_t srv, cli;
} cpu_mark_t;

static cpu_mark_t s_cpu_mark(const bcase_t *c)
{
    return (cpu_mark_t){s_add(s_proc_cpu_ns(c->pids[0]), s_proc_cpu_ns(c->pids[1])),
                        s_proc_cpu_ns(getpid())};
}

/* µs of CPU per request since m, server side and client side. */
static void s_cpu_per_req(const bcase_t *c, cpu_mark_t m, size_t n, double *srv,
                          double *cli)
{
    cpu_mark_t now = s_cpu_mark(c);
    *srv = n && now.srv != NO_CPU && m.srv != NO_CPU
               ? (double)(now.srv - m.srv) / 1e3 / (double)n
               : NAN;
    *cli = n && now.cli != NO_CPU && m.cli != NO_CPU
               ? (double)(now.cli - m.cli) / 1e3 / (double)n
               : NAN;
}

static void *g_zctx;
static void *g_sockets[8];
static int g_nsock;

/* A client socket of this process (raw and proxy cases). */
static void *s_client(int type, const char *ep)
{
    int timeout = IO_TIMEOUT_MS, zero = 0;
    void *s = zmq_socket(g_zctx, type);
    if (!s) die("zmq_socket: %s", zmq_strerror(errno));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if (zmq_connect(s, ep) != 0) die("connect %s: %s", ep, zmq_strerror(errno));
    g_sockets[g_nsock++] = s;
    return s;
}

static double *g_rtt;
static size_t g_rtt_cap;

static void s_check_reply(const void *data, size_t len, const char *what)
{
    if (len != BODY_LEN || memcmp(data, g_body, BODY_LEN) != 0)
        die("%s: a reply of %zu bytes is not the 128-byte body sent", what, len);
}

static void s_summarize(sample_t *s, size_t n, uint64_t total_ns)
{
    qsort(g_rtt, n, sizeof *g_rtt, cmp_double);
    s->n = n;
    s->p50 = pct_sorted(g_rtt, n, 0.50);
    s->p99 = pct_sorted(g_rtt, n, 0.99);
    s->mean = n ? (double)total_ns / 1e3 / (double)n : NAN;
}

static void lock_raw(bcase_t *c, double secs, sample_t *s)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9), total = 0;
    size_t n = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (n < g_rtt_cap && (n < 10 || now_ns() < end)) {
        uint64_t t0 = now_ns();
        if (zmq_send(c->lock_sock, g_body, BODY_LEN, 0) != BODY_LEN)
            die("%s: send: %s", c->key, zmq_strerror(errno));
        if (zmq_msg_recv(&m, c->lock_sock, 0) < 0)
            die("%s: no reply: %s", c->key, zmq_strerror(errno));
        uint64_t dt = now_ns() - t0;
        s_check_reply(zmq_msg_data(&m), zmq_msg_size(&m), c->key);
        total += dt;
        g_rtt[n++] = (double)dt / 1e3;
    }
    zmq_msg_close(&m);
    s_summarize(s, n, total);
}

static void lock_cairn(bcase_t *c, double secs, sample_t *s)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9), total = 0;
    size_t n = 0;
    while (n < g_rtt_cap && (n < 10 || now_ns() < end)) {
        cairn_reply_t *r = NULL;
        cairn_err_t err = {0};
        uint64_t t0 = now_ns();
        if (cairn_client_call(c->cli, c->svc, "echo", g_body, BODY_LEN, 0, &r, &err) !=
            0)
            die("%s: %s.echo: %d %s", c->key, c->svc, err.st, err.msg);
        uint64_t dt = now_ns() - t0;
        size_t len;
        const void *b = cairn_reply_body(r, &len);
        s_check_reply(b, len, c->key);
        cairn_reply_destroy(&r);
        total += dt;
        g_rtt[n++] = (double)dt / 1e3;
    }
    s_summarize(s, n, total);
}

/* DEALER client: an empty delimiter, then the body, as REQ would send. */
static void s_dealer_send(bcase_t *c)
{
    if (zmq_send(c->pipe_sock, "", 0, ZMQ_SNDMORE) != 0 ||
        zmq_send(c->pipe_sock, g_body, BODY_LEN, 0) != BODY_LEN)
        die("%s: send: %s", c->key, zmq_strerror(errno));
}

static void s_dealer_recv(bcase_t *c, zmq_msg_t *m)
{
    if (zmq_msg_recv(m, c->pipe_sock, 0) < 0 || zmq_msg_size(m) != 0 ||
        !zmq_msg_more(m))
        die("%s: no reply or no delimiter: %s", c->key, zmq_strerror(errno));
    if (zmq_msg_recv(m, c->pipe_sock, 0) < 0)
        die("%s: no body: %s", c->key, zmq_strerror(errno));
    s_check_reply(zmq_msg_data(m), zmq_msg_size(m), c->key);
}

static void pipe_raw(bcase_t *c, double secs, int window, sample_t *s)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    size_t sent = 0, got = 0;
    bool refill = true;
    for (; sent < (size_t)window; sent++) s_dealer_send(c);
    while (got < sent) {
        s_dealer_recv(c, &m);
        got++;
        /* Check the clock every 16 replies; then drain what is in flight. */
        if (refill && !(got & 15) && now_ns() >= end) refill = false;
        if (refill) {
            s_dealer_send(c);
            sent++;
        }
    }
    uint64_t dt = now_ns() - t0;
    zmq_msg_close(&m);
    s->pn = got;
    s->rps = (double)got / ((double)dt / 1e9);
}

static void pipe_cairn(bcase_t *c, double secs, int window, sample_t *s)
{
    cairn_err_t err = {0};
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    size_t sent = 0, got = 0;
    bool refill = true;
    for (; sent < (size_t)window; sent++)
        if (cairn_client_send(c->cli, c->svc, "echo", g_body, BODY_LEN, 0, NULL,
                              &err) != 0)
            die("%s: send: %s", c->key, err.msg);
    while (got < sent) {
        cairn_reply_t *r = NULL;
        if (cairn_client_recv(c->cli, IO_TIMEOUT_MS, &r, &err) != 0)
            die("%s: recv: %d %s", c->key, err.st, err.msg);
        if (cairn_reply_status(r) != 200)
            die("%s: status %d %s", c->key, cairn_reply_status(r),
                cairn_reply_error(r));
        size_t len;
        const void *b = cairn_reply_body(r, &len);
        s_check_reply(b, len, c->key);
        cairn_reply_destroy(&r);
        got++;
        if (refill && !(got & 15) && now_ns() >= end) refill = false;
        if (refill) {
            if (cairn_client_send(c->cli, c->svc, "echo", g_body, BODY_LEN, 0, NULL,
                                  &err) != 0)
                die("%s: send: %s", c->key, err.msg);
            sent++;
        }
    }
    uint64_t dt = now_ns() - t0;
    s->pn = got;
    s->rps = (double)got / ((double)dt / 1e9);
}

static void measure(bcase_t *c, double secs, int window, sample_t *s)
{
    cpu_mark_t m = s_cpu_mark(c);
    if (c->cli)
        lock_cairn(c, secs, s);
    else
        lock_raw(c, secs, s);
    s_cpu_per_req(c, m, s->n, &s->lock_srv_cpu, &s->lock_cli_cpu);
    m = s_cpu_mark(c);
    if (c->cli)
        pipe_cairn(c, secs, window, s);
    else
        pipe_raw(c, secs, window, s);
    s_cpu_per_req(c, m, s->pn, &s->pipe_srv_cpu, &s->pipe_cli_cpu);
}

/* ---- ratios and output ---------------------------------------------------------- */

typedef enum { W_RTT, W_RPS, W_CPU } what_t;

typedef struct ratio {
    const char *name;
    case_id_t b, a;
    what_t what;   /* b/a of: lock-step p50 RTT, pipelined req/s, server CPU/req */
    double target; /* NAN: informational */
    double med, cv;
    bool pass;
} ratio_t;

static void compute_ratio(ratio_t *r, const bcase_t *cs, int rounds)
{
    double v[MAX_ROUNDS];
    if (cs[r->a].skip || cs[r->b].skip) {
        r->med = r->cv = NAN;
        return;
    }
    for (int i = 0; i < rounds; i++) {
        const sample_t *b = &cs[r->b].s[i], *a = &cs[r->a].s[i];
        v[i] = r->what == W_RTT   ? b->p50 / a->p50
               : r->what == W_RPS ? b->rps / a->rps
                                  : b->pipe_srv_cpu / a->pipe_srv_cpu;
    }
    r->med = median(v, rounds);
    r->cv = cov(v, rounds);
    if (!isnan(r->target))
        r->pass = r->what == W_RPS ? r->med >= r->target : r->med <= r->target;
}

static double med_field(const bcase_t *c, int rounds, size_t off)
{
    double v[MAX_ROUNDS];
    for (int i = 0; i < rounds; i++)
        v[i] = *(const double *)((const char *)&c->s[i] + off);
    return median(v, rounds);
}

/* ", "key": v' for JSON (null when not measured). */
static void jnum(const char *key, double v)
{
    if (isnan(v) || isinf(v))
        printf(", \"%s\": null", key);
    else
        printf(", \"%s\": %.3f", key, v);
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench_bus [--quick] [--json] [--rounds N] [--seconds S] [--window W]\n"
        "                 [--only LIST] [--cairnd PATH] [--no-pin] [--strict]\n"
        "  --quick      a smoke run of a few seconds (CI)\n"
        "  --json       print one JSON object instead of the table\n"
        "  --rounds N   alternating rounds (default 7; --quick 2)\n"
        "  --seconds S  seconds per sample, lock-step and pipelined each (default "
        "0.4;\n"
        "               --quick 0.1)\n"
        "  --window W   requests in flight when pipelined (default 128)\n"
        "  --cairnd P   the cairnd to start (default: beside this program)\n"
        "  --only LIST  run only these cases (comma-separated: raw, proxy, "
        "cairnd_inproc,\n"
        "               proxy_ipc, cairnd_process), e.g. under perf; gates nothing\n"
        "  --no-pin     do not pin (default: servers on one CPU, clients on another)\n"
        "  --strict     exit 3 when a ratio misses its target\n");
}

int main(int argc, char **argv)
{
    opts_t o = {.rounds = 7, .seconds = 0.4, .warmup = 0.3, .window = 128, .pin = true};
    bool rounds_set = false, secs_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick"))
            o.quick = true;
        else if (!strcmp(a, "--json"))
            o.json = true;
        else if (!strcmp(a, "--strict"))
            o.strict = true;
        else if (!strcmp(a, "--pin"))
            o.pin = true;
        else if (!strcmp(a, "--no-pin"))
            o.pin = false;
        else if (!strcmp(a, "--rounds") && i + 1 < argc) {
            o.rounds = atoi(argv[++i]);
            rounds_set = true;
        } else if (!strcmp(a, "--seconds") && i + 1 < argc) {
            o.seconds = atof(argv[++i]);
            secs_set = true;
        } else if (!strcmp(a, "--window") && i + 1 < argc)
            o.window = atoi(argv[++i]);
        else if (!strcmp(a, "--only") && i + 1 < argc)
            o.only = argv[++i];
        else if (!strcmp(a, "--cairnd") && i + 1 < argc)
            o.cairnd = argv[++i];
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_bus: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o.quick) {
        if (!rounds_set) o.rounds = 2;
        if (!secs_set) o.seconds = 0.1;
        o.warmup = 0.05;
    }
    if (o.rounds < 1 || o.rounds > MAX_ROUNDS || o.seconds <= 0 || o.seconds > 60 ||
        o.window < 1 || o.window > 900) {
        fprintf(stderr,
                "bench_bus: --rounds 1..%d, --seconds (0, 60], --window 1..900\n",
                MAX_ROUNDS);
        return 2;
    }
    unsetenv("CAIRN_ENDPOINT");
    unsetenv("CAIRN_TOKEN");
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* The body: one msgpack bin of 126 bytes, 128 bytes in all. */
    g_body[0] = 0xc4;
    g_body[1] = BODY_LEN - 2;
    for (int i = 2; i < BODY_LEN; i++) g_body[i] = (unsigned char)('a' + i % 26);

    char cairnd[PATH_MAX];
    find_cairnd(&o, cairnd, sizeof cairnd);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/cairn-bench-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        g_tmp[0] = '\0';
        die("mkdtemp: %s", strerror(errno));
    }
    atexit(cleanup);
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    /* --pin: servers on the first allowed CPU, this process (the clients) on
     * the second; without two CPUs, nothing is pinned. */
    cpu_set_t allowed;
    if (o.pin && sched_getaffinity(0, sizeof allowed, &allowed) == 0 &&
        CPU_COUNT(&allowed) >= 2) {
        for (int c = 0; c < CPU_SETSIZE && g_cli_cpu < 0; c++)
            if (CPU_ISSET(c, &allowed)) {
                if (g_srv_cpu < 0)
                    g_srv_cpu = c;
                else
                    g_cli_cpu = c;
            }
    } else {
        o.pin = false;
    }

    /* Servers first: they fork before this process makes a zmq context. */
    char raw_rep[300], raw_router[300], proxy_ep[300], proxy_ipc_ep[300], unused[300];
    char ipc_path[PATH_MAX + 16];
    snprintf(ipc_path, sizeof ipc_path, "%s/proxy.sock", g_tmp);
    pid_t raw_pids[2], proxy_pids[2], proxy_ipc_pids[2], host_pid = 0;
    start_server(SRV_RAW, NULL, raw_rep, raw_router, sizeof raw_rep, raw_pids);
    start_server(SRV_PROXY_INPROC, NULL, proxy_ep, unused, sizeof proxy_ep, proxy_pids);
    start_server(SRV_PROXY_IPC, ipc_path, proxy_ipc_ep, unused, sizeof proxy_ipc_ep,
                 proxy_ipc_pids);
    char endpoint[64], events[64];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", free_port());
    snprintf(events, sizeof events, "tcp://127.0.0.1:%d", free_port());
    uint64_t t_start = now_ns();
    start_cairnd(cairnd, endpoint, events);
    s_pin(g_cli_cpu); /* before any zmq context: its I/O thread inherits this */
    cairn_client_t *cli_inproc = wait_cairnd(endpoint, &host_pid);
    double startup_ms = (double)(now_ns() - t_start) / 1e6;
    cairn_err_t err = {0};
    cairn_client_t *cli_proc = cairn_client_new(endpoint, NULL, &err);
    if (!cli_proc) die("%s", err.msg);

    g_zctx = zmq_ctx_new();
    static bcase_t cs[NCASES];
    cs[C_RAW] = (bcase_t){.key = "raw",
                          .label = "raw zmq REQ/REP echo (floor)",
                          .lock_sock = s_client(ZMQ_REQ, raw_rep),
                          .pipe_sock = s_client(ZMQ_DEALER, raw_router),
                          .pids = {raw_pids[0], raw_pids[1]}};
    cs[C_PROXY] = (bcase_t){.key = "proxy",
                            .label = "zmq_proxy -> inproc worker thread",
                            .lock_sock = s_client(ZMQ_REQ, proxy_ep),
                            .pipe_sock = s_client(ZMQ_DEALER, proxy_ep),
                            .pids = {proxy_pids[0], proxy_pids[1]}};
    cs[C_CAIRN] = (bcase_t){.key = "cairnd_inproc",
                            .label = "cairnd -> echo, inproc plugin",
                            .cli = cli_inproc,
                            .svc = "echo",
                            .pids = {g_cairnd, 0}};
    cs[C_PROXY_IPC] = (bcase_t){.key = "proxy_ipc",
                                .label = "zmq_proxy -> ipc worker process",
                                .lock_sock = s_client(ZMQ_REQ, proxy_ipc_ep),
                                .pipe_sock = s_client(ZMQ_DEALER, proxy_ipc_ep),
                                .pids = {proxy_ipc_pids[0], proxy_ipc_pids[1]}};
    cs[C_CAIRN_PROC] = (bcase_t){.key = "cairnd_process",
                                 .label = "cairnd -> echo_proc, process plugin",
                                 .cli = cli_proc,
                                 .svc = "echo_proc",
                                 .pids = {g_cairnd, host_pid}};

    g_rtt_cap = 2000000;
    if (!(g_rtt = malloc(g_rtt_cap * sizeof *g_rtt))) die("out of memory");

    /* Warm up every path (connections, worker handshakes, caches). */
    sample_t scratch;
    for (int c = 0; c < NCASES; c++) {
        if (o.only) {
            char list[256];
            snprintf(list, sizeof list, ",%s,", o.only);
            char key[64];
            snprintf(key, sizeof key, ",%s,", cs[c].key);
            cs[c].skip = !strstr(list, key);
        }
        if (!cs[c].skip) measure(&cs[c], o.warmup, o.window, &scratch);
    }

    uint64_t t_bench = now_ns();
    for (int r = 0; r < o.rounds; r++)
        for (int k = 0; k < NCASES; k++) {
            int c = r % 2 ? NCASES - 1 - k : k; /* forward, then reversed */
            if (!cs[c].skip) measure(&cs[c], o.seconds, o.window, &cs[c].s[r]);
        }
    double bench_s = (double)(now_ns() - t_bench) / 1e9;

    /* The gated four, then context: the broker hop itself, process mode
     * against the inproc peer, and the server CPU per request (noise hardly
     * moves it: it says where the throughput goes). */
#define R(n, b_, a_, w, t) {.name = n, .b = b_, .a = a_, .what = w, .target = t}
    ratio_t ratios[] = {
        R("cairnd-inproc / zmq_proxy, lock-step RTT p50", C_CAIRN, C_PROXY, W_RTT, 1.2),
        R("cairnd-inproc / zmq_proxy, pipelined req/s", C_CAIRN, C_PROXY, W_RPS, 0.5),
        R("cairnd-process / zmq_proxy(ipc), lock-step RTT p50", C_CAIRN_PROC,
          C_PROXY_IPC, W_RTT, 1.2),
        R("cairnd-process / zmq_proxy(ipc), pipelined req/s", C_CAIRN_PROC, C_PROXY_IPC,
          W_RPS, 0.5),
        R("(info) zmq_proxy / raw, lock-step RTT p50", C_PROXY, C_RAW, W_RTT, NAN),
        R("(info) zmq_proxy / raw, pipelined req/s", C_PROXY, C_RAW, W_RPS, NAN),
        R("(info) cairnd-process / zmq_proxy, lock-step RTT p50", C_CAIRN_PROC, C_PROXY,
          W_RTT, NAN),
        R("(info) cairnd-process / zmq_proxy, pipelined req/s", C_CAIRN_PROC, C_PROXY,
          W_RPS, NAN),
        R("(info) cairnd-inproc / zmq_proxy, server CPU per req", C_CAIRN, C_PROXY,
          W_CPU, NAN),
        R("(info) cairnd-process / zmq_proxy(ipc), server CPU/req", C_CAIRN_PROC,
          C_PROXY_IPC, W_CPU, NAN),
    };
#undef R
    const int nratios = (int)(sizeof ratios / sizeof ratios[0]);
    int misses = 0, gated = 0;
    for (int i = 0; i < nratios; i++) {
        compute_ratio(&ratios[i], cs, o.rounds);
        if (!isnan(ratios[i].target) && !isnan(ratios[i].med)) {
            gated++;
            if (!ratios[i].pass) misses++;
        }
    }

    struct utsname un;
    uname(&un);
    int zmaj, zmin, zpat;
    zmq_version(&zmaj, &zmin, &zpat);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));

#define MED(f) med_field(b, o.rounds, offsetof(sample_t, f))
    if (o.json) {
        printf(
            "{\"bench\": \"bus\", \"date\": \"%s\", \"cpus\": %ld, \"kernel\": \"%s\", "
            "\"libzmq\": \"%d.%d.%d\", \"body_bytes\": %d, \"window\": %d, \"rounds\": "
            "%d, "
            "\"seconds_per_sample\": %g, \"quick\": %s, \"server_cpu\": %d, "
            "\"client_cpu\": %d, \"cases\": {",
            date, ncpu, un.release, zmaj, zmin, zpat, BODY_LEN, o.window, o.rounds,
            o.seconds, o.quick ? "true" : "false", g_srv_cpu, g_cli_cpu);
        bool first = true;
        for (int c = 0; c < NCASES; c++) {
            const bcase_t *b = &cs[c];
            if (b->skip) continue;
            printf("%s\"%s\": {\"label\": \"%s\"", first ? "" : ", ", b->key, b->label);
            first = false;
            jnum("rtt_p50_us", MED(p50));
            jnum("rtt_p99_us", MED(p99));
            jnum("rtt_mean_us", MED(mean));
            jnum("pipelined_rps", MED(rps));
            jnum("lock_server_cpu_us", MED(lock_srv_cpu));
            jnum("lock_client_cpu_us", MED(lock_cli_cpu));
            jnum("pipe_server_cpu_us", MED(pipe_srv_cpu));
            jnum("pipe_client_cpu_us", MED(pipe_cli_cpu));
            printf(", \"rounds\": [");
            for (int r = 0; r < o.rounds; r++) {
                const sample_t *x = &b->s[r];
                printf("%s{\"n\": %zu, \"pn\": %zu", r ? ", " : "", x->n, x->pn);
                jnum("p50", x->p50);
                jnum("p99", x->p99);
                jnum("rps", x->rps);
                jnum("pipe_server_cpu_us", x->pipe_srv_cpu);
                jnum("pipe_client_cpu_us", x->pipe_cli_cpu);
                printf("}");
            }
            printf("]}");
        }
        printf("}, \"ratios\": [");
        for (int i = 0; i < nratios; i++) {
            const ratio_t *q = &ratios[i];
            printf("%s{\"name\": \"%s\"", i ? ", " : "", q->name);
            jnum("median", q->med);
            jnum("cov", q->cv);
            if (!isnan(q->target))
                printf(", \"target\": \"%s %.1f\", \"result\": %s",
                       q->what == W_RPS ? ">=" : "<=", q->target,
                       isnan(q->med) ? "null"
                       : q->pass     ? "\"PASS\""
                                     : "\"MISS\"");
            printf("}");
        }
        printf("], \"misses\": %d}\n", misses);
    } else {
        printf(
            "bench_bus: CAIRN/1 bus vs ZeroMQ, %d-byte msgpack body, tcp loopback "
            "clients\n",
            BODY_LEN);
        printf("host: %ld CPUs, Linux %s, libzmq %d.%d.%d, %s\n", ncpu, un.release,
               zmaj, zmin, zpat, date);
        printf(
            "method: %d rounds in alternating order, %.2f s per sample, window %d; "
            "medians "
            "over rounds%s\n",
            o.rounds, o.seconds, o.window, o.quick ? " (--quick: smoke only)" : "");
        if (o.pin)
            printf(
                "pinned: servers (cairnd, its plugin host, zmq_proxy, echo workers) on "
                "CPU "
                "%d, clients on CPU %d\n",
                g_srv_cpu, g_cli_cpu);
        else
            printf("not pinned\n");
        printf("cairnd up with both services in %.0f ms; measured for %.1f s\n\n",
               startup_ms, bench_s);
        char pipe_hdr[40];
        snprintf(pipe_hdr, sizeof pipe_hdr, "pipelined, window %d", o.window);
        printf("%-36s %-22s  %-30s\n", "", "lock-step RTT, µs", pipe_hdr);
        printf("%-36s %6s %7s %7s  %9s %10s %9s\n", "case", "p50", "p99", "mean",
               "req/s", "srv CPU/req", "cli CPU/req");
        for (int c = 0; c < NCASES; c++) {
            const bcase_t *b = &cs[c];
            if (b->skip) continue;
            printf("%-36s %6.1f %7.1f %7.1f  %9.0f %8.2f µs %6.2f µs\n", b->label,
                   MED(p50), MED(p99), MED(mean), MED(rps), MED(pipe_srv_cpu),
                   MED(pipe_cli_cpu));
        }
        printf("\n%-54s %7s %6s %8s %6s\n", "ratio", "median", "CoV", "target",
               "result");
        for (int i = 0; i < nratios; i++) {
            const ratio_t *q = &ratios[i];
            if (isnan(q->med)) continue; /* --only left a side out */
            char tgt[16] = "", res[8] = "";
            if (!isnan(q->target)) {
                snprintf(tgt, sizeof tgt, "%s %.1f",
                         q->what == W_RPS ? ">=" : "<=", q->target);
                snprintf(res, sizeof res, "%s", q->pass ? "PASS" : "MISS");
            }
            printf("%-54s %7.2f %5.1f%% %8s %6s%s\n", q->name, q->med, q->cv * 100, tgt,
                   res, q->cv > 0.10 ? "  (CoV > 10%: noisy)" : "");
        }
        printf("\nratios: %d gated, %d PASS, %d MISS\n", gated, gated - misses, misses);
    }
#undef MED
    fflush(stdout);

    for (int i = 0; i < g_nsock; i++) zmq_close(g_sockets[i]);
    zmq_ctx_term(g_zctx);
    cairn_client_destroy(&cli_inproc);
    cairn_client_destroy(&cli_proc);
    free(g_rtt);
    cleanup();
    if (!o.json) printf("bench_bus: done\n");
    return o.strict && misses ? 3 : 0;
}
