/* bench_bus — the bus ratio benchmark (issue 2; docs/PERFORMANCE.md).
 *
 *   bench_bus [--quick] [--json] [--rounds N] [--seconds S] [--window W]
 *             [--only LIST] [--cairnd PATH] [--no-pin] [--strict]
 *
 * Six cases, every client on tcp loopback, every body 128 bytes (one msgpack
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
 *   cairnd_inline   as cairnd_inproc, to the verb `echo_inline`, flagged
 *                   CAIRN_VERB_INLINE: the kernel runs it on its own thread
 *                   while the plugin's thread is idle (no thread hop).
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
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "bench_util.h"
#include "cairn/client.h"
#include "cairn/msg.h"

#define BODY_LEN 128
#define MAX_ROUNDS 50
#define IO_TIMEOUT_MS 10000
_Static_assert(MAX_ROUNDS <= BENCH_MAX_ROUNDS, "rounds beyond bench_median's reach");

static unsigned char g_body[BODY_LEN]; /* the request body every case sends */

/* ---- child processes ------------------------------------------------------- */

#define MAX_CHILDREN 8
static pid_t g_children[MAX_CHILDREN];
static int g_nchildren;
static bench_kernel_t *g_kernel;
static int g_srv_cpu = -1, g_cli_cpu = -1; /* --pin: the servers' CPU, the clients' */

static void cleanup(bool failed)
{
    if (failed) bench_kernel_print_log(g_kernel, stderr);
    if (g_kernel) bench_kernel_stop(g_kernel);
    for (int i = 0; i < g_nchildren; i++) bench_reap(g_children[i], SIGKILL);
    g_nchildren = 0;
    /* Orphans (the proxy's worker process) come to us, the subreaper. */
    for (int i = 0; i < 100 && waitpid(-1, NULL, WNOHANG) >= 0; i++) usleep(10000);
    bench_kernel_destroy(&g_kernel);
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
            bench_child_setup(me, g_srv_cpu);
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

typedef struct server_args {
    srv_kind_t kind;
    const char *ipc_path;
} server_args_t;

static void s_serve(int fd, void *arg)
{
    const server_args_t *a = arg;
    server_main(a->kind, fd, a->ipc_path);
}

/* Fork a server; fill ep1/ep2 from the line it writes; pids[0] is the
 * server, pids[1] its worker process (or 0). */
static void start_server(srv_kind_t kind, const char *ipc_path, char *ep1, char *ep2,
                         size_t len, pid_t pids[2])
{
    char buf[600];
    server_args_t args = {kind, ipc_path};
    pid_t pid = bench_fork_server(g_srv_cpu, s_serve, &args, buf, sizeof buf);
    g_children[g_nchildren++] = pid;
    char a[300], b[300];
    int wpid = 0;
    if (sscanf(buf, "%299s %299s %d", a, b, &wpid) != 3)
        bench_die("a server sent '%s'", buf);
    pids[0] = pid;
    pids[1] = (pid_t)wpid;
    snprintf(ep1, len, "%s", a);
    snprintf(ep2, len, "%s", b);
}

/* ---- cairnd ----------------------------------------------------------------- */

static const char SERVICES[] =
    "  echo:\n"
    "    plugin: echo\n"
    "    mode: inproc\n"
    "  echo_proc:\n"
    "    plugin: echo\n"
    "    mode: process\n";

static int64_t s_info_pid(cairn_client_t *c, const char *svc)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    int64_t pid = -1;
    if (cairn_client_call(c, svc, "info", NULL, 0, 5000, &r, &err) != 0)
        bench_die("%s.info: %s", svc, err.msg);
    const msgpack_object *p = cairn_obj_get(cairn_reply_object(r), "pid");
    if (p && p->type == MSGPACK_OBJECT_POSITIVE_INTEGER) pid = (int64_t)p->via.u64;
    cairn_reply_destroy(&r);
    return pid;
}

/* Wait for both services; *host receives the process plugin's pid. */
static cairn_client_t *wait_cairnd(pid_t *host)
{
    cairn_err_t err = {0};
    cairn_client_t *c = bench_kernel_wait(g_kernel, 2, &err);
    if (!c) bench_die("%s", err.msg);
    /* The modes are what the conf says: inproc shares cairnd's pid. */
    pid_t cairnd = bench_kernel_pid(g_kernel);
    if (s_info_pid(c, "echo") != cairnd) bench_die("echo is not running inside cairnd");
    int64_t pp = s_info_pid(c, "echo_proc");
    if (pp <= 0 || pp == cairnd)
        bench_die("echo_proc is not running in its own process");
    *host = (pid_t)pp;
    return c;
}

/* ---- the cases --------------------------------------------------------------- */

typedef enum {
    C_RAW,
    C_PROXY,
    C_CAIRN,
    C_CAIRN_INLINE,
    C_PROXY_IPC,
    C_CAIRN_PROC,
    NCASES
} case_id_t;

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
    const char *svc, *verb;      /* verb: "echo" unless set */
    pid_t pids[2];               /* the server-side processes (0: none) */
    bool skip;                   /* not in --only */
    sample_t s[MAX_ROUNDS];
} bcase_t;

/* CPU time of every thread of a process, ns; 0 for no process, NO_CPU when
 * unreadable. */
#define NO_CPU UINT64_MAX
static uint64_t s_proc_cpu_ns(pid_t pid)
{
    uint64_t ns;
    return bench_proc_cpu_ns(pid, &ns) == 0 ? ns : NO_CPU;
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
    if (!s) bench_die("zmq_socket: %s", zmq_strerror(errno));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    if (zmq_connect(s, ep) != 0) bench_die("connect %s: %s", ep, zmq_strerror(errno));
    g_sockets[g_nsock++] = s;
    return s;
}

static double *g_rtt;
static size_t g_rtt_cap;

static void s_check_reply(const void *data, size_t len, const char *what)
{
    if (len != BODY_LEN || memcmp(data, g_body, BODY_LEN) != 0)
        bench_die("%s: a reply of %zu bytes is not the 128-byte body sent", what, len);
}

static void s_summarize(sample_t *s, size_t n, uint64_t total_ns)
{
    qsort(g_rtt, n, sizeof *g_rtt, bench_cmp_double);
    s->n = n;
    s->p50 = bench_pct_sorted(g_rtt, n, 0.50);
    s->p99 = bench_pct_sorted(g_rtt, n, 0.99);
    s->mean = n ? (double)total_ns / 1e3 / (double)n : NAN;
}

static void lock_raw(bcase_t *c, double secs, sample_t *s)
{
    uint64_t end = bench_now_ns() + (uint64_t)(secs * 1e9), total = 0;
    size_t n = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (n < g_rtt_cap && (n < 10 || bench_now_ns() < end)) {
        uint64_t t0 = bench_now_ns();
        if (zmq_send(c->lock_sock, g_body, BODY_LEN, 0) != BODY_LEN)
            bench_die("%s: send: %s", c->key, zmq_strerror(errno));
        if (zmq_msg_recv(&m, c->lock_sock, 0) < 0)
            bench_die("%s: no reply: %s", c->key, zmq_strerror(errno));
        uint64_t dt = bench_now_ns() - t0;
        s_check_reply(zmq_msg_data(&m), zmq_msg_size(&m), c->key);
        total += dt;
        g_rtt[n++] = (double)dt / 1e3;
    }
    zmq_msg_close(&m);
    s_summarize(s, n, total);
}

static void lock_cairn(bcase_t *c, double secs, sample_t *s)
{
    uint64_t end = bench_now_ns() + (uint64_t)(secs * 1e9), total = 0;
    size_t n = 0;
    while (n < g_rtt_cap && (n < 10 || bench_now_ns() < end)) {
        cairn_reply_t *r = NULL;
        cairn_err_t err = {0};
        uint64_t t0 = bench_now_ns();
        if (cairn_client_call(c->cli, c->svc, c->verb ? c->verb : "echo", g_body,
                              BODY_LEN, 0, &r, &err) != 0)
            bench_die("%s: %s.echo: %d %s", c->key, c->svc, err.st, err.msg);
        uint64_t dt = bench_now_ns() - t0;
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
        bench_die("%s: send: %s", c->key, zmq_strerror(errno));
}

static void s_dealer_recv(bcase_t *c, zmq_msg_t *m)
{
    if (zmq_msg_recv(m, c->pipe_sock, 0) < 0 || zmq_msg_size(m) != 0 ||
        !zmq_msg_more(m))
        bench_die("%s: no reply or no delimiter: %s", c->key, zmq_strerror(errno));
    if (zmq_msg_recv(m, c->pipe_sock, 0) < 0)
        bench_die("%s: no body: %s", c->key, zmq_strerror(errno));
    s_check_reply(zmq_msg_data(m), zmq_msg_size(m), c->key);
}

static void pipe_raw(bcase_t *c, double secs, int window, sample_t *s)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    size_t sent = 0, got = 0;
    bool refill = true;
    for (; sent < (size_t)window; sent++) s_dealer_send(c);
    while (got < sent) {
        s_dealer_recv(c, &m);
        got++;
        /* Check the clock every 16 replies; then drain what is in flight. */
        if (refill && !(got & 15) && bench_now_ns() >= end) refill = false;
        if (refill) {
            s_dealer_send(c);
            sent++;
        }
    }
    uint64_t dt = bench_now_ns() - t0;
    zmq_msg_close(&m);
    s->pn = got;
    s->rps = (double)got / ((double)dt / 1e9);
}

static void pipe_cairn(bcase_t *c, double secs, int window, sample_t *s)
{
    cairn_err_t err = {0};
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    size_t sent = 0, got = 0;
    bool refill = true;
    for (; sent < (size_t)window; sent++)
        if (cairn_client_send(c->cli, c->svc, c->verb ? c->verb : "echo", g_body,
                              BODY_LEN, 0, NULL, &err) != 0)
            bench_die("%s: send: %s", c->key, err.msg);
    while (got < sent) {
        cairn_reply_t *r = NULL;
        if (cairn_client_recv(c->cli, IO_TIMEOUT_MS, &r, &err) != 0)
            bench_die("%s: recv: %d %s", c->key, err.st, err.msg);
        if (cairn_reply_status(r) != 200)
            bench_die("%s: status %d %s", c->key, cairn_reply_status(r),
                      cairn_reply_error(r));
        size_t len;
        const void *b = cairn_reply_body(r, &len);
        s_check_reply(b, len, c->key);
        cairn_reply_destroy(&r);
        got++;
        if (refill && !(got & 15) && bench_now_ns() >= end) refill = false;
        if (refill) {
            if (cairn_client_send(c->cli, c->svc, c->verb ? c->verb : "echo", g_body,
                                  BODY_LEN, 0, NULL, &err) != 0)
                bench_die("%s: send: %s", c->key, err.msg);
            sent++;
        }
    }
    uint64_t dt = bench_now_ns() - t0;
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
    r->med = bench_median(v, rounds);
    r->cv = bench_cov(v, rounds);
    if (!isnan(r->target))
        r->pass = r->what == W_RPS ? r->med >= r->target : r->med <= r->target;
}

/* ", "key": v' for JSON (null when not measured). */
static void jnum(const char *key, double v)
{
    bench_json_num(", ", key, v);
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
        "               cairnd_inline, proxy_ipc, cairnd_process), e.g. under perf; "
        "gates nothing\n"
        "  --no-pin     do not pin (default: servers on one CPU, clients on another)\n"
        "  --strict     exit 3 when a ratio misses its target\n");
}

int main(int argc, char **argv)
{
    /* .seconds: per sample, lock-step and pipelined each; .only: for profiling
     * one path. warmup: per case, once, before the rounds. */
    bench_opts_t o = {.rounds = 7, .seconds = 0.4, .window = 128, .pin = true};
    double warmup = 0.3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bench_opts_take(&o, argc, argv, &i))
            continue;
        else
            bench_arg_rest("bench_bus", a, usage);
    }
    if (o.quick) {
        if (!o.rounds_set) o.rounds = 2;
        if (!o.seconds_set) o.seconds = 0.1;
        warmup = 0.05;
    }
    if (o.rounds < 1 || o.rounds > MAX_ROUNDS || o.seconds <= 0 || o.seconds > 60 ||
        o.window < 1 || o.window > 900) {
        fprintf(stderr,
                "bench_bus: --rounds 1..%d, --seconds (0, 60], --window 1..900\n",
                MAX_ROUNDS);
        return 2;
    }
    bench_init("bench_bus", cleanup);

    /* The body: one msgpack bin of 126 bytes, 128 bytes in all. */
    g_body[0] = 0xc4;
    g_body[1] = BODY_LEN - 2;
    for (int i = 2; i < BODY_LEN; i++) g_body[i] = (unsigned char)('a' + i % 26);

    cairn_err_t err = {0};
    if (!(g_kernel = bench_kernel_new(o.cairnd, "/tmp/cairn-bench-", &err)))
        bench_die("%s", err.msg);
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    /* --pin: servers on the first allowed CPU, this process (the clients) on
     * the second; without two CPUs, nothing is pinned. */
    if (!o.pin || !bench_pick_cpus(&g_srv_cpu, &g_cli_cpu)) o.pin = false;

    /* Servers first: they fork before this process makes a zmq context. */
    char raw_rep[300], raw_router[300], proxy_ep[300], proxy_ipc_ep[300], unused[300];
    char ipc_path[PATH_MAX + 16];
    snprintf(ipc_path, sizeof ipc_path, "%s/proxy.sock", bench_kernel_dir(g_kernel));
    pid_t raw_pids[2], proxy_pids[2], proxy_ipc_pids[2], host_pid = 0;
    start_server(SRV_RAW, NULL, raw_rep, raw_router, sizeof raw_rep, raw_pids);
    start_server(SRV_PROXY_INPROC, NULL, proxy_ep, unused, sizeof proxy_ep, proxy_pids);
    start_server(SRV_PROXY_IPC, ipc_path, proxy_ipc_ep, unused, sizeof proxy_ipc_ep,
                 proxy_ipc_pids);
    uint64_t t_start = bench_now_ns();
    if (bench_kernel_start(g_kernel, SERVICES, g_srv_cpu, &err) != 0)
        bench_die("%s", err.msg);
    /* Before any zmq context: its I/O thread inherits this. */
    if (bench_pin(g_cli_cpu, &err) != 0) bench_warn("%s", err.msg);
    cairn_client_t *cli_inproc = wait_cairnd(&host_pid);
    double startup_ms = (double)(bench_now_ns() - t_start) / 1e6;
    pid_t cairnd_pid = bench_kernel_pid(g_kernel);
    cairn_client_t *cli_proc =
        cairn_client_new(bench_kernel_endpoint(g_kernel), NULL, &err);
    if (!cli_proc) bench_die("%s", err.msg);

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
                            .pids = {cairnd_pid, 0}};
    cs[C_CAIRN_INLINE] = (bcase_t){.key = "cairnd_inline",
                                   .label = "cairnd -> echo_inline, INLINE verb",
                                   .cli = cli_inproc,
                                   .svc = "echo",
                                   .verb = "echo_inline",
                                   .pids = {cairnd_pid, 0}};
    cs[C_PROXY_IPC] = (bcase_t){.key = "proxy_ipc",
                                .label = "zmq_proxy -> ipc worker process",
                                .lock_sock = s_client(ZMQ_REQ, proxy_ipc_ep),
                                .pipe_sock = s_client(ZMQ_DEALER, proxy_ipc_ep),
                                .pids = {proxy_ipc_pids[0], proxy_ipc_pids[1]}};
    cs[C_CAIRN_PROC] = (bcase_t){.key = "cairnd_process",
                                 .label = "cairnd -> echo_proc, process plugin",
                                 .cli = cli_proc,
                                 .svc = "echo_proc",
                                 .pids = {cairnd_pid, host_pid}};

    g_rtt_cap = 2000000;
    if (!(g_rtt = malloc(g_rtt_cap * sizeof *g_rtt))) bench_die("out of memory");

    /* Warm up every path (connections, worker handshakes, caches). */
    sample_t scratch;
    for (int c = 0; c < NCASES; c++) {
        cs[c].skip = !bench_in_list(o.only, cs[c].key);
        if (!cs[c].skip) measure(&cs[c], warmup, o.window, &scratch);
    }

    uint64_t t_bench = bench_now_ns();
    for (int r = 0; r < o.rounds; r++)
        for (int k = 0; k < NCASES; k++) {
            int c = r % 2 ? NCASES - 1 - k : k; /* forward, then reversed */
            if (!cs[c].skip) measure(&cs[c], o.seconds, o.window, &cs[c].s[r]);
        }
    double bench_s = (double)(bench_now_ns() - t_bench) / 1e9;

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
        R("(info) cairnd-inline / raw, lock-step RTT p50", C_CAIRN_INLINE, C_RAW, W_RTT,
          NAN),
        R("(info) cairnd-inline / zmq_proxy, lock-step RTT p50", C_CAIRN_INLINE,
          C_PROXY, W_RTT, NAN),
        R("(info) cairnd-inline / zmq_proxy, pipelined req/s", C_CAIRN_INLINE, C_PROXY,
          W_RPS, NAN),
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

    bench_host_t host;
    bench_host(&host);
    int zmaj, zmin, zpat;
    zmq_version(&zmaj, &zmin, &zpat);

#define MED(f) BENCH_MEDIAN_FIELD(b->s, sample_t, f, o.rounds)
    if (o.json) {
        printf(
            "{\"bench\": \"bus\", \"date\": \"%s\", \"cpus\": %ld, \"kernel\": \"%s\", "
            "\"libzmq\": \"%d.%d.%d\", \"body_bytes\": %d, \"window\": %d, \"rounds\": "
            "%d, "
            "\"seconds_per_sample\": %g, \"quick\": %s, \"server_cpu\": %d, "
            "\"client_cpu\": %d, \"cases\": {",
            host.date, host.ncpu, host.kernel, zmaj, zmin, zpat, BODY_LEN, o.window,
            o.rounds, o.seconds, o.quick ? "true" : "false", g_srv_cpu, g_cli_cpu);
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
            if (!isnan(q->target)) {
                printf(", \"target\": \"%s %.1f\", \"result\": ",
                       q->what == W_RPS ? ">=" : "<=", q->target);
                if (isnan(q->med))
                    printf("null");
                else
                    printf("\"%s\"", bench_pass(q->pass));
            }
            printf("}");
        }
        printf("], \"misses\": %d}\n", misses);
    } else {
        printf(
            "bench_bus: CAIRN/1 bus vs ZeroMQ, %d-byte msgpack body, tcp loopback "
            "clients\n",
            BODY_LEN);
        printf("host: %ld CPUs, Linux %s, libzmq %d.%d.%d, %s\n", host.ncpu,
               host.kernel, zmaj, zmin, zpat, host.date);
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
                snprintf(res, sizeof res, "%s", bench_pass(q->pass));
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
    cleanup(false);
    if (!o.json) printf("bench_bus: done\n");
    return o.strict && misses ? 3 : 0;
}
