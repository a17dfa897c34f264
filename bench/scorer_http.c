/* bench/scorer_http.c — online scoring over HTTP (issue 17): the scorer
 * plugin (service `endpoints`) against hand-written servers, each figure a
 * ratio against a peer measured in the same run (docs/PERFORMANCE.md,
 * "Online scoring over HTTP (issue 17)").
 *
 *   bench_scorer_http [--quick] [--json] [--strict] [--rounds N] [--seconds S]
 *                     [--only LIST] [--threads N] [--calls N] [--no-pin]
 *                     [--wrk PATH] [--cairnd PATH] [--keep]
 *
 * A binary:logistic model of 100 trees of depth 6 (20 named features) is
 * trained here through XGBoost's C API on seeded rows and saved as JSON.
 * A private cairnd (tracking and artifacts, registry, and the scorer in
 * its own process, as in the default conf) registers it; endpoint `bench`
 * gets deployment `blue` (all traffic) and `green` (none) of it. Beside it,
 * this program starts two peers, each a process of its own (this program
 * again, exec'ed with --peer): libmicrohttpd with sdk/httpd.c's daemon
 * flags and the same thread count as the scorer's, gathering the body as
 * sdk/httpd.c does, and answering
 *   (a) a constant (the HTTP floor);
 *   (b) XGBoosterPredictFromDense on the body's row, parsed by jansson (what
 *       a user would write by hand; nthread 1, OMP_NUM_THREADS=1).
 * Every server is pinned to one CPU, wrk and this program to another (when
 * there are two), and each has one HTTP thread per CPU it may use (--threads
 * overrides; the scorer's default of 4 on one CPU puts its p99 at the
 * scheduler's slices, see docs/PERFORMANCE.md). Load: wrk (-t 1, a Lua script POSTing
 * one single-row body in Azure ML's input_data shape with the endpoint's key; its
 * done() hook prints the counts and latency percentiles in µs, so that no unit is
 * parsed from its text). Cases (--only):
 *
 *   http     requests/s and p50/p99 of (a), (b) and cairn at 1 and 16
 *            connections, the three rotated round by round; per-round
 *            ratios cairn/(b), (b)/(a), cairn/(a) (medians). Targets at 16
 *            connections: cairn >= 1.0x (b), cairn p99 < 2 ms.
 *   inproc   (c) the prediction in a tight loop in this process:
 *            XGBoosterPredictFromDense single-row against the scorer's
 *            evaluator (scorer_model_predict), rows/s each and the ratio.
 *   routing  endpoint `bench` at 16 connections with blue 100% against
 *            blue/green 50/50 (update_traffic between runs, interleaved
 *            round by round); the median ratio; target >= 0.95x (routing
 *            costs < 5%). green's share is checked from the endpoint's
 *            metrics.
 *   cold     create_deployment sent -> the first 200 from the new
 *            deployment (called by the cairn-deployment header, polled);
 *            target < 200 ms; beside it XGBoost's own cold start on the same
 *            file (XGBoosterCreate + XGBoosterLoadModel + the first
 *            predict), and the ratio.
 *
 * Before any load every server's answer is checked on a few rows: cairn's
 * prediction must equal (b)'s and XGBoost's in-process one to 1e-6, (a)'s
 * body its constant; during the load any non-2xx answer or socket error
 * ends the bench (exit status 1). Timings are never asserted: a MISS is
 * printed, and exit status 3 only under --strict.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xgboost/c_api.h>

#include "bench_util.h"
#include "bench_xgb.h"
#include "cairn/cairn.h"
#include "model.h"

#define NF 20           /* features */
#define NCHECK 8        /* rows checked through every server */
#define MAX_ROUNDS 20   /* of a case */
#define TARGET_CONNS 16 /* the concurrent level */
#define MODEL "bench-http"
#define EP "bench"
#define SCORE_PATH "/endpoints/" EP "/score"
#define CONST_REPLY "{\"predictions\":[0.5]}"
#define IO_TIMEOUT_S 10
_Static_assert(MAX_ROUNDS <= BENCH_MAX_ROUNDS, "rounds beyond bench_median's reach");

typedef struct opts {
    bench_opts_t base;
    int threads;     /* the scorer's HTTP threads, and each peer's; 0: one per CPU
                        the servers may use */
    long calls;      /* inproc: single-row predictions of ours per round */
    long train_rows; /* the model's training set */
    const char *wrk; /* wrk's path */
    bool keep;
} opts_t;

/* The three HTTP servers. */
enum { T_CONST, T_XGB, T_CAIRN, NT };
static const char *const g_tname[NT] = {"(a) libmicrohttpd, a constant",
                                        "(b) libmicrohttpd + XGBoost", "cairn scorer"};

static bench_kernel_t *g_kernel;
static bool g_keep;
static pid_t g_pid[NT] = {-1, -1, -1}; /* each server's process */
static uint16_t g_port[NT];
static int g_srv_cpu = -1, g_cli_cpu = -1;
static char g_model[PATH_MAX + 32], g_script[PATH_MAX + 32];
static char g_key[128];
static const char *g_wrk;
static char g_body[1024]; /* the load's body: row 0 */
static float g_rows[NCHECK * NF];

static void cleanup(bool failed)
{
    if (failed) bench_kernel_print_log(g_kernel, stderr);
    bench_reap(g_pid[T_CONST], SIGTERM);
    bench_reap(g_pid[T_XGB], SIGTERM);
    g_pid[T_CONST] = g_pid[T_XGB] = -1;
    if (g_kernel && g_keep) bench_warn("kept %s", bench_kernel_dir(g_kernel));
    bench_kernel_destroy(&g_kernel);
}

static double s_ms(uint64_t t0)
{
    return (double)(bench_now_ns() - t0) / 1e6;
}

#define XGB(call)                                                       \
    do {                                                                \
        if ((call) != 0) bench_die("%s: %s", #call, XGBGetLastError()); \
    } while (0)

/* ---- the peers: this program again, exec'ed with --peer ---------------------- */

/* A request's body, gathered as sdk/httpd.c gathers it. */
typedef struct pbody {
    char *p;
    size_t n, cap;
    bool oom;
} pbody_t;

static BoosterHandle g_peer_booster; /* (b); NULL for (a) */

static void pbody_append(pbody_t *b, const char *data, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* The body's first row, as a user's own server would read it: the
 * features in order from input_data.data[0] (or MLflow's inputs[0]); null
 * is missing. */
static int peer_row(const char *body, size_t len, float *row)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    json_t *in = json_object_get(j, "input_data");
    json_t *r = json_array_get(
        in ? json_object_get(in, "data") : json_object_get(j, "inputs"), 0);
    int rc = json_array_size(r) == NF ? 0 : -1;
    for (size_t k = 0; rc == 0 && k < NF; k++) {
        json_t *v = json_array_get(r, k);
        if (json_is_number(v))
            row[k] = (float)json_number_value(v);
        else if (json_is_null(v))
            row[k] = NAN;
        else
            rc = -1;
    }
    json_decref(j);
    return rc;
}

static enum MHD_Result peer_answer(struct MHD_Connection *c, unsigned status,
                                   const char *text, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, mode);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* (b): parse, predict, answer {"predictions":[x]} as the scorer prints it. */
static enum MHD_Result peer_predict(struct MHD_Connection *c, const pbody_t *b)
{
    float row[NF];
    const float *out;
    if (b->oom || !b->p || peer_row(b->p, b->n, row) != 0)
        return peer_answer(c, 400, "{\"error\":\"bad body\"}", MHD_RESPMEM_PERSISTENT);
    if (bench_xgb_predict(g_peer_booster, row, 1, NF, &out) != 0)
        return peer_answer(c, 500, "{\"error\":\"predict failed\"}",
                           MHD_RESPMEM_PERSISTENT);
    char text[64];
    snprintf(text, sizeof text, "{\"predictions\":[%.9g]}", (double)out[0]);
    return peer_answer(c, 200, text, MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result peer_access(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version,
                                   const char *upload, size_t *upload_size,
                                   void **state)
{
    (void)cls, (void)url, (void)method, (void)version;
    if (!*state) { /* the headers */
        *state = calloc(1, sizeof(pbody_t));
        return *state ? MHD_YES : MHD_NO;
    }
    pbody_t *b = *state;
    if (*upload_size) {
        pbody_append(b, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!g_peer_booster)
        return peer_answer(c, 200, CONST_REPLY, MHD_RESPMEM_PERSISTENT);
    return peer_predict(c, b);
}

static void peer_completed(void *cls, struct MHD_Connection *c, void **state,
                           enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    pbody_t *b = *state;
    if (b) free(b->p);
    free(b);
    *state = NULL;
}

/* --peer const|xgb MODEL THREADS FD: serve on a free loopback port, say it
 * on FD, and serve until killed. sdk/httpd.c's daemon flags and limits
 * (the scorer's max_connections and timeout_s defaults). */
static int peer_main(int argc, char **argv)
{
    if (argc != 6) return 2;
    bool xgb = !strcmp(argv[2], "xgb");
    if (xgb && (XGBoosterCreate(NULL, 0, &g_peer_booster) != 0 ||
                XGBoosterLoadModel(g_peer_booster, argv[3]) != 0 ||
                XGBoosterSetParam(g_peer_booster, "nthread", "1") != 0)) {
        fprintf(stderr, "peer: %s\n", XGBGetLastError());
        return 1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, peer_access,
        NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)atoi(argv[4]), MHD_OPTION_CONNECTION_LIMIT, 1024u,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_NOTIFY_COMPLETED, peer_completed,
        NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info) return 1;
    int fd = atoi(argv[5]);
    dprintf(fd, "%u\n", (unsigned)info->port);
    close(fd);
    for (;;) pause();
}

typedef struct peer_arg {
    const char *kind;
    int threads;
} peer_arg_t;

/* In the forked child (pinned): become the peer. exec, so that no OpenMP
 * or ZeroMQ state of this process is inherited. */
static void peer_exec(int fd, void *arg)
{
    const peer_arg_t *p = arg;
    char threads[16], fds[16];
    snprintf(threads, sizeof threads, "%d", p->threads);
    snprintf(fds, sizeof fds, "%d", fd);
    setenv("OMP_NUM_THREADS", "1", 1);
    execl("/proc/self/exe", "bench_scorer_http", "--peer", p->kind, g_model, threads,
          fds, (char *)NULL);
    fprintf(stderr, "exec /proc/self/exe: %s\n", strerror(errno));
    _exit(127);
}

static void s_start_peer(int t, const char *kind, int threads)
{
    peer_arg_t a = {kind, threads};
    char line[64];
    g_pid[t] = bench_fork_server(g_srv_cpu, peer_exec, &a, line, sizeof line);
    int port = atoi(line);
    if (port <= 0 || port > 65535)
        bench_die("peer %s said '%s', not a port", kind, line);
    g_port[t] = (uint16_t)port;
}

/* ---- the model ------------------------------------------------------------------ */

static void s_feature_name(int k, char *out, size_t cap)
{
    snprintf(out, cap, "f%02d", k);
}

/* 100 trees of depth 6 (hist, seed 1, one thread: the same model every
 * run), with feature names, saved as JSON at g_model. */
static BoosterHandle s_train(long nrows)
{
    size_t n = (size_t)nrows;
    float *x = malloc(sizeof *x * n * NF), *y = malloc(sizeof *y * n);
    if (!x || !y) bench_die("out of memory");
    bench_model_rows(1, n, NF, x, y);
    char names[NF][8];
    const char *np[NF];
    for (int k = 0; k < NF; k++) s_feature_name(k, names[k], sizeof names[k]);
    for (int k = 0; k < NF; k++) np[k] = names[k];
    DMatrixHandle d;
    XGB(XGDMatrixCreateFromMat(x, n, NF, NAN, &d));
    XGB(XGDMatrixSetFloatInfo(d, "label", y, n));
    XGB(XGDMatrixSetStrFeatureInfo(d, "feature_name", np, NF));
    BoosterHandle b;
    XGB(XGBoosterCreate(&d, 1, &b));
    XGB(XGBoosterSetParam(b, "objective", "binary:logistic"));
    XGB(XGBoosterSetParam(b, "max_depth", "6"));
    XGB(XGBoosterSetParam(b, "tree_method", "hist"));
    XGB(XGBoosterSetParam(b, "seed", "1"));
    XGB(XGBoosterSetParam(b, "nthread", "1"));
    for (int i = 0; i < 100; i++) XGB(XGBoosterUpdateOneIter(b, i, d));
    XGB(XGDMatrixFree(d));
    XGB(XGBoosterSaveModel(b, g_model));
    free(x);
    free(y);
    return b;
}

/* A scoring body for one row: Azure ML's input_data shape, the columns by
 * name, each value as the float it is (%.9g), NaN as null. */
static void s_body(const float *row, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "{\"input_data\":{\"columns\":[");
    for (int k = 0; k < NF && n < cap; k++)
        n += (size_t)snprintf(out + n, cap - n, "%s\"f%02d\"", k ? "," : "", k);
    n +=
        (size_t)snprintf(out + n, n < cap ? cap - n : 0, "],\"index\":[0],\"data\":[[");
    for (int k = 0; k < NF && n < cap; k++)
        n += isnan(row[k]) ? (size_t)snprintf(out + n, cap - n, "%snull", k ? "," : "")
                           : (size_t)snprintf(out + n, cap - n, "%s%.9g", k ? "," : "",
                                              (double)row[k]);
    n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "]]}}");
    if (n >= cap) bench_die("a scoring body overflowed");
}

/* ---- a small HTTP client, for the checks and the cold start ------------------- */

typedef struct reply {
    int status;
    char body[1024];
    char dep[64]; /* the cairn-deployment header; "" when none */
} reply_t;

static int s_connect(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

/* The whole response of a Connection: close request, into buf. */
static ssize_t s_read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0 || (got += (size_t)n) == cap - 1) break;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

/* Status, the cairn-deployment header and the body of a response. */
static int s_parse_reply(char *buf, reply_t *out)
{
    char *end = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) || !end) return -1;
    *end = '\0';
    out->status = atoi(buf + 9);
    snprintf(out->body, sizeof out->body, "%s", end + 4);
    const char *h = strcasestr(buf, "\r\ncairn-deployment:");
    out->dep[0] = '\0';
    if (h) sscanf(h + 19, " %63[^\r\n]", out->dep);
    return 0;
}

/* POST body to port's scoring path with the key (and the cairn-deployment
 * header, when dep); 0, or -1 when no response came. */
static int s_post(uint16_t port, const char *dep, const char *body, reply_t *out)
{
    char req[2048], buf[4096];
    int n = snprintf(req, sizeof req,
                     "POST " SCORE_PATH
                     " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nAuthorization: Bearer %s\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n%s",
                     g_key, dep ? "cairn-deployment: " : "", dep ? dep : "",
                     dep ? "\r\n" : "", strlen(body), body);
    int fd = s_connect(port);
    if (fd < 0) return -1;
    bool sent = n > 0 && (size_t)n < sizeof req && write(fd, req, (size_t)n) == n;
    ssize_t got = sent ? s_read_all(fd, buf, sizeof buf) : -1;
    close(fd);
    return got > 0 ? s_parse_reply(buf, out) : -1;
}

/* The one prediction in {"predictions":[x]}; NAN when there is none. */
static double s_prediction(const char *body)
{
    const char *p = strstr(body, "\"predictions\":[");
    return p ? strtod(p + 16, NULL) : NAN;
}

/* ---- wrk ------------------------------------------------------------------------ */

/* The load's script: POST g_body with the key; done() prints one line of
 * counts, and latencies in µs. */
static void s_write_script(void)
{
    snprintf(g_script, sizeof g_script, "%s/load.lua", bench_kernel_dir(g_kernel));
    FILE *f = fopen(g_script, "w");
    if (!f) bench_die("cannot write %s: %s", g_script, strerror(errno));
    fprintf(
        f,
        "wrk.method = \"POST\"\n"
        "wrk.body = [==[%s]==]\n"
        "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
        "wrk.headers[\"Authorization\"] = \"Bearer %s\"\n"
        "function done(s, lat, req)\n"
        "  local e = s.errors\n"
        "  io.write(string.format(\"BENCHWRK %%d %%d %%.1f %%.1f %%.1f %%d %%d %%d "
        "%%d %%d\\n\",\n"
        "    s.requests, s.duration, lat:percentile(50), lat:percentile(90),\n"
        "    lat:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))\n"
        "end\n",
        g_body, g_key);
    if (fclose(f) != 0) bench_die("cannot write %s", g_script);
}

typedef struct load {
    double rate;          /* requests/s */
    double p50, p90, p99; /* ms */
    double cpu_us;        /* the server process' CPU per request */
    double wrk_busy;      /* wrk's CPU time / the run's: near 1, wrk bounds it */
    double requests;
} load_t;

/* Run wrk (pinned to the client CPU) against port; its whole output, and
 * the CPU seconds it used (is the client the bound?). */
static char *s_run_wrk(uint16_t port, int conns, int seconds, double *cpu_s)
{
    int p[2];
    if (pipe(p) != 0) bench_die("pipe: %s", strerror(errno));
    pid_t me = getpid(), pid = fork();
    if (pid < 0) bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        bench_child_setup(me, g_cli_cpu);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        char c[16], d[16], url[96];
        snprintf(c, sizeof c, "-c%d", conns);
        snprintf(d, sizeof d, "-d%ds", seconds);
        snprintf(url, sizeof url, "http://127.0.0.1:%u" SCORE_PATH, (unsigned)port);
        execl(g_wrk, "wrk", "-t1", c, d, "--latency", "-s", g_script, url,
              (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", g_wrk, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t cap = 1 << 16, got = 0;
    char *out = calloc(1, cap);
    if (!out) bench_die("out of memory");
    for (;;) { /* wrk says a few hundred bytes: cap is never reached */
        ssize_t n = read(p[0], out + got, cap - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || (got += (size_t)n) == cap - 1) break;
    }
    close(p[0]);
    int st = 0;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bench_die("wrk failed:\n%s", out);
    *cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
             (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return out;
}

/* One wrk run against server t; a wrong answer or a socket error ends the
 * bench. */
static void s_load(int t, int conns, int seconds, load_t *out)
{
    uint64_t cpu0 = 0, cpu1 = 0;
    bench_proc_cpu_ns(g_pid[t], &cpu0);
    double wrk_cpu = 0;
    char *text = s_run_wrk(g_port[t], conns, seconds, &wrk_cpu);
    bench_proc_cpu_ns(g_pid[t], &cpu1);
    const char *line = strstr(text, "BENCHWRK ");
    double req, dur, p50, p90, p99, e[5];
    if (!line ||
        sscanf(line, "BENCHWRK %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf", &req, &dur,
               &p50, &p90, &p99, &e[0], &e[1], &e[2], &e[3], &e[4]) != 10 ||
        req < 1 || dur <= 0)
        bench_die("%s: no figures from wrk:\n%s", g_tname[t], text);
    if (e[0] + e[1] + e[2] + e[3] + e[4] > 0)
        bench_die(
            "%s, %d connections: errors: connect %.0f, read %.0f, write %.0f, "
            "non-2xx %.0f, timeout %.0f",
            g_tname[t], conns, e[0], e[1], e[2], e[3], e[4]);
    free(text);
    *out = (load_t){.rate = req / (dur / 1e6),
                    .p50 = p50 / 1e3,
                    .p90 = p90 / 1e3,
                    .p99 = p99 / 1e3,
                    .cpu_us = (double)(cpu1 - cpu0) / 1e3 / req,
                    .wrk_busy = wrk_cpu / (dur / 1e6),
                    .requests = req};
}

/* ---- the private cairnd and the endpoint ------------------------------------ */

/* endpoints.VERB with a map of string pairs (k, v, ..., NULL); the reply
 * is the caller's; a refusal ends the bench. */
static cairn_reply_t *s_ep(cairn_client_t *c, const char *verb, ...)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *kv[8];
    int n = 0;
    va_list ap;
    va_start(ap, verb);
    for (const char *k; n < 8 && (k = va_arg(ap, const char *));) {
        kv[n++] = k;
        kv[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    msgpack_pack_map(&pk, (uint32_t)n / 2);
    for (int i = 0; i < n; i += 2) cairn_pack_kv_str(&pk, kv[i], kv[i + 1]);
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    int rc = cairn_client_call(c, "endpoints", verb, sb.data, sb.size, 0, &r, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) bench_die("endpoints.%s: %d %s", verb, err.st, err.msg);
    return r;
}

/* update_traffic: blue and green's shares. */
static void s_traffic(cairn_client_t *c, int blue, int green)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "endpoint", EP);
    cairn_pack_cstr(&pk, "traffic");
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "blue");
    msgpack_pack_int(&pk, blue);
    cairn_pack_cstr(&pk, "green");
    msgpack_pack_int(&pk, green);
    cairn_err_t err = {0};
    int rc = cairn_client_call(c, "endpoints", "update_traffic", sb.data, sb.size, 0,
                               NULL, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) bench_die("update_traffic: %d %s", err.st, err.msg);
}

/* A string field of a reply's map (or of its sub-map sub) into out. */
static void s_reply_str(cairn_reply_t *r, const char *sub, const char *key, char *out,
                        size_t cap)
{
    const msgpack_object *o = cairn_reply_object(r);
    if (sub) o = cairn_obj_get(o, sub);
    cairn_str_t s;
    cairn_err_t err = {0};
    if (cairn_field_str(o, key, true, 0, &s, &err) != 0 || s.len >= cap)
        bench_die("a reply without %s", key);
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
}

/* Register g_model as version 1 of MODEL (uploaded into the artifacts). */
static void s_register(cairn_client_t *c)
{
    cairn_err_t err = {0};
    char *source = NULL;
    cairn_model_version_t *v = NULL;
    if (cairn_registry_upload(c, g_model, &source, &err) != 0 ||
        cairn_registry_create_model(c, MODEL, NULL, &err) != 0 ||
        cairn_registry_create_version(c, MODEL, source, "xgboost", &v, &err) != 0)
        bench_die("registering the model: %d %s", err.st, err.msg);
    if (cairn_model_version_number(v) != 1)
        bench_die("the model is version %lld, not 1",
                  (long long)cairn_model_version_number(v));
    cairn_model_version_free(&v);
    free(source);
}

/* Endpoint EP with blue (all traffic) and green (none); its key and port. */
static void s_endpoint(cairn_client_t *c)
{
    char uri[256];
    cairn_reply_t *r = s_ep(c, "create_endpoint", "name", EP, NULL);
    s_reply_str(r, "endpoint", "scoring_uri", uri, sizeof uri);
    cairn_reply_destroy(&r);
    const char *colon = strrchr(uri, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (port <= 0 || port > 65535) bench_die("scoring_uri %s has no port", uri);
    g_port[T_CAIRN] = (uint16_t)port;
    const char *deps[] = {"blue", "green"};
    for (int i = 0; i < 2; i++) {
        r = s_ep(c, "create_deployment", "endpoint", EP, "name", deps[i], "model",
                 "model:" MODEL ":1", NULL);
        cairn_reply_destroy(&r);
    }
    r = s_ep(c, "get_keys", "endpoint", EP, NULL);
    s_reply_str(r, NULL, "primary_key", g_key, sizeof g_key);
    cairn_reply_destroy(&r);
}

/* The scorer's process (sys.health's pid of `endpoints`). */
static pid_t s_scorer_pid(cairn_client_t *c)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    if (cairn_client_call(c, "sys", "health", NULL, 0, 0, &r, &err) != 0)
        bench_die("sys.health: %d %s", err.st, err.msg);
    const msgpack_object *pl = cairn_obj_get(cairn_reply_object(r), "plugins");
    pid_t pid = -1;
    for (uint32_t i = 0;
         pl && pl->type == MSGPACK_OBJECT_ARRAY && i < pl->via.array.size; i++) {
        const msgpack_object *s = &pl->via.array.ptr[i], *p = cairn_obj_get(s, "pid");
        if (cairn_obj_is_str(cairn_obj_get(s, "name"), "endpoints") && p &&
            p->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            pid = (pid_t)p->via.u64;
    }
    cairn_reply_destroy(&r);
    if (pid <= 0) bench_die("sys.health: no pid for the endpoints process");
    return pid;
}

static cairn_client_t *s_start_cairnd(const opts_t *o)
{
    char services[1024];
    snprintf(services, sizeof services,
             "  tracking:\n    plugin: storage\n    mode: inproc\n"
             "  artifacts:\n    plugin: storage\n    mode: inproc\n"
             "  registry:\n    plugin: registry\n    mode: inproc\n"
             "  endpoints:\n    plugin: scorer\n    mode: process\n"
             "    settings:\n      listen: 127.0.0.1:0\n      threads: %d\n",
             o->threads);
    cairn_err_t err = {0};
    if (bench_kernel_start(g_kernel, services, g_srv_cpu, &err) != 0)
        bench_die("%s", err.msg);
    cairn_client_t *c = bench_kernel_wait(g_kernel, 4, &err);
    if (!c)
        bench_die("%s%s", err.msg,
                  strcmp(err.code, "cairnd_exited")
                      ? ""
                      : "; are cairn_storage, cairn_registry and cairn_scorer built?");
    return c;
}

/* ---- the checks before the load ------------------------------------------------ */

/* Every server on NCHECK rows: (a) its constant; cairn equal to (b) and to
 * XGBoost in this process, to 1e-6, from deployment blue. The largest
 * difference. */
static double s_check_answers(BoosterHandle b)
{
    double worst = 0;
    for (int i = 0; i < NCHECK; i++) {
        char body[1024];
        reply_t ra, rb, rc;
        const float *want;
        s_body(g_rows + i * NF, body, sizeof body);
        if (s_post(g_port[T_CONST], NULL, body, &ra) != 0 || ra.status != 200 ||
            strcmp(ra.body, CONST_REPLY))
            bench_die("(a) answered %d %s", ra.status, ra.body);
        if (s_post(g_port[T_XGB], NULL, body, &rb) != 0 || rb.status != 200)
            bench_die("(b) answered %d %s", rb.status, rb.body);
        if (s_post(g_port[T_CAIRN], NULL, body, &rc) != 0 || rc.status != 200 ||
            strcmp(rc.dep, "blue"))
            bench_die("cairn answered %d %s (deployment '%s')", rc.status, rc.body,
                      rc.dep);
        if (bench_xgb_predict(b, g_rows + i * NF, 1, NF, &want) != 0)
            bench_die("XGBoosterPredictFromDense: %s", XGBGetLastError());
        double pc = s_prediction(rc.body), pb = s_prediction(rb.body);
        double d = fmax(fabs(pc - pb), fabs(pc - (double)want[0]));
        if (!(d <= 1e-6))
            bench_die("row %d: cairn %s, (b) %s, XGBoost %.9g", i, rc.body, rb.body,
                      (double)want[0]);
        worst = fmax(worst, d);
    }
    return worst;
}

/* ---- case http ------------------------------------------------------------------- */

static const int g_levels[2] = {1, TARGET_CONNS};

typedef struct http_res {
    load_t med[2][NT];          /* per level, per server: medians */
    double cb[2], ba[2], ca[2]; /* per-round ratios' medians */
} http_res_t;

static int s_secs(const opts_t *o)
{
    int s = (int)lround(o->base.seconds);
    return s < 1 ? 1 : s;
}

/* One level: the three servers in an order rotated round by round. */
static void http_level(const opts_t *o, int l, http_res_t *res)
{
    load_t s[MAX_ROUNDS][NT];
    double cb[MAX_ROUNDS], ba[MAX_ROUNDS], ca[MAX_ROUNDS];
    int n = o->base.rounds;
    for (int r = 0; r < n; r++) {
        for (int k = 0; k < NT; k++) {
            int t = (k + r) % NT;
            s_load(t, g_levels[l], s_secs(o), &s[r][t]);
        }
        cb[r] = s[r][T_CAIRN].rate / s[r][T_XGB].rate;
        ba[r] = s[r][T_XGB].rate / s[r][T_CONST].rate;
        ca[r] = s[r][T_CAIRN].rate / s[r][T_CONST].rate;
        bench_out("   round %d, %2d conn: (a) %.0f/s, (b) %.0f/s, cairn %.0f/s\n",
                  r + 1, g_levels[l], s[r][T_CONST].rate, s[r][T_XGB].rate,
                  s[r][T_CAIRN].rate);
    }
    for (int t = 0; t < NT; t++) {
#define MED(f) bench_median_at(&s[0][t], sizeof s[0], offsetof(load_t, f), n)
        res->med[l][t] = (load_t){.rate = MED(rate),
                                  .p50 = MED(p50),
                                  .p90 = MED(p90),
                                  .p99 = MED(p99),
                                  .cpu_us = MED(cpu_us),
                                  .wrk_busy = MED(wrk_busy),
                                  .requests = MED(requests)};
#undef MED
    }
    res->cb[l] = bench_median(cb, n);
    res->ba[l] = bench_median(ba, n);
    res->ca[l] = bench_median(ca, n);
}

static void case_http(const opts_t *o, http_res_t *res)
{
    load_t warm;
    for (int t = 0; t < NT; t++) s_load(t, TARGET_CONNS, 1, &warm);
    for (int l = 0; l < 2; l++) http_level(o, l, res);
}

static void http_report(const http_res_t *res)
{
    static const char *const key[NT] = {"const", "xgb", "cairn"};
    for (int l = 0; l < 2; l++) {
        int c = g_levels[l];
        bench_out("   %d connection%s:\n", c, c > 1 ? "s" : "");
        for (int t = 0; t < NT; t++) {
            const load_t *m = &res->med[l][t];
            bench_out(
                "     %-29s %7.0f/s  p50 %6.3f  p90 %6.3f  p99 %6.3f ms  server "
                "%5.1f µs/req  wrk %3.0f%% busy\n",
                g_tname[t], m->rate, m->p50, m->p90, m->p99, m->cpu_us,
                m->wrk_busy * 100);
            bench_figf(m->rate, "http_c%d_%s_per_s", c, key[t]);
            bench_figf(m->p99, "http_c%d_%s_p99_ms", c, key[t]);
            bench_figf(m->cpu_us, "http_c%d_%s_cpu_us", c, key[t]);
        }
        bench_out("     cairn/(b) %.2fx, (b)/(a) %.2fx, cairn/(a) %.2fx\n", res->cb[l],
                  res->ba[l], res->ca[l]);
        bench_figf(res->cb[l], "http_c%d_cairn_vs_xgb", c);
        bench_figf(res->ba[l], "http_c%d_xgb_vs_const", c);
        bench_figf(res->ca[l], "http_c%d_cairn_vs_const", c);
    }
    double p99 = res->med[1][T_CAIRN].p99, floor = res->med[1][T_CONST].p99;
    bench_out("     at %d: cairn's p99 %.2fx (a)'s (the floor's own p99 %.3f ms)\n",
              TARGET_CONNS, p99 / floor, floor);
    bench_figf(p99 / floor, "http_c%d_cairn_p99_vs_const", TARGET_CONNS);
    bench_verdict("1 cairn >= 1.0x (b), 16 conns", res->cb[1] >= 1.0, ">= 1.00x",
                  "%.2fx", res->cb[1]);
    bench_verdict("1 cairn p99 < 2 ms, 16 conns", p99 < 2.0, "< 2 ms", "%.3f ms", p99);
}

/* ---- case inproc ------------------------------------------------------------------
 */

typedef struct inproc_res {
    double xgb_ns, ours_ns, ratio;
} inproc_res_t;

/* calls single-row predictions through XGBoost, row i % NCHECK each; ns a
 * call. */
static double s_loop_xgb(BoosterHandle b, long calls, double *sink)
{
    const float *out;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < calls; i++) {
        if (bench_xgb_predict(b, g_rows + i % NCHECK * NF, 1, NF, &out) != 0)
            bench_die("XGBoosterPredictFromDense: %s", XGBGetLastError());
        *sink += out[0];
    }
    return (double)(bench_now_ns() - t0) / (double)calls;
}

static double s_loop_ours(const scorer_model_t *m, long calls, double *sink)
{
    cairn_err_t err = {0};
    float out;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < calls; i++) {
        if (scorer_model_predict(m, g_rows + i % NCHECK * NF, 1, NF, &out, &err) != 0)
            bench_die("%s", err.msg);
        *sink += out;
    }
    return (double)(bench_now_ns() - t0) / (double)calls;
}

/* XGBoost gets a tenth of the calls: it is some 20x slower a call. */
static void case_inproc(const opts_t *o, BoosterHandle b, const scorer_model_t *m,
                        inproc_res_t *res)
{
    double tx[MAX_ROUNDS], to[MAX_ROUNDS], ratio[MAX_ROUNDS], sink = 0;
    int n = o->base.rounds;
    s_loop_ours(m, o->calls / 10, &sink);
    s_loop_xgb(b, o->calls / 100, &sink);
    for (int r = 0; r < n; r++) {
        tx[r] = s_loop_xgb(b, o->calls / 10, &sink);
        to[r] = s_loop_ours(m, o->calls, &sink);
        ratio[r] = tx[r] / to[r];
    }
    res->xgb_ns = bench_median(tx, n);
    res->ours_ns = bench_median(to, n);
    res->ratio = bench_median(ratio, n);
    if (!isfinite(sink)) bench_die("a prediction was not finite");
}

/* ---- case routing ---------------------------------------------------------------- */

typedef struct routing_res {
    double one, two, ratio, ratio_cov;  /* requests/s */
    double cpu_one, cpu_two, cpu_ratio; /* the scorer's CPU µs a request */
    double green_share;
} routing_res_t;

/* green's requests so far (get_endpoint_metrics). */
static double s_green_requests(cairn_client_t *c)
{
    cairn_reply_t *r = s_ep(c, "get_endpoint_metrics", "endpoint", EP, NULL);
    const msgpack_object *d = cairn_obj_get(cairn_reply_object(r), "deployments");
    double n = -1;
    for (uint32_t i = 0; d && d->type == MSGPACK_OBJECT_ARRAY && i < d->via.array.size;
         i++) {
        const msgpack_object *q = cairn_obj_get(&d->via.array.ptr[i], "requests");
        if (cairn_obj_is_str(cairn_obj_get(&d->via.array.ptr[i], "name"), "green") &&
            q && q->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            n = (double)q->via.u64;
    }
    cairn_reply_destroy(&r);
    if (n < 0) bench_die("get_endpoint_metrics: no requests for green");
    return n;
}

/* One run at the given split: blue 100%, or blue and green 50/50. */
static void s_routing_run(const opts_t *o, cairn_client_t *c, bool both, load_t *l)
{
    s_traffic(c, both ? 50 : 100, both ? 50 : 0);
    s_load(T_CAIRN, TARGET_CONNS, s_secs(o), l);
}

/* Each round one, two, two, one (ABBA: a drift of the host's load over
 * the round falls on both sides alike); the ratio of the round's sums.
 * The CPU per request beside it: other tenants' load moves requests/s far
 * more than it moves the scorer's own CPU time. */
static void case_routing(const opts_t *o, cairn_client_t *c, routing_res_t *res)
{
    double one[MAX_ROUNDS], two[MAX_ROUNDS], ratio[MAX_ROUNDS], split = 0;
    double c1[MAX_ROUNDS], c2[MAX_ROUNDS], cr[MAX_ROUNDS];
    double green0 = s_green_requests(c);
    int n = o->base.rounds;
    for (int r = 0; r < n; r++) {
        load_t l[4];
        for (int k = 0; k < 4; k++) s_routing_run(o, c, k == 1 || k == 2, &l[k]);
        one[r] = (l[0].rate + l[3].rate) / 2;
        two[r] = (l[1].rate + l[2].rate) / 2;
        c1[r] = (l[0].cpu_us + l[3].cpu_us) / 2;
        c2[r] = (l[1].cpu_us + l[2].cpu_us) / 2;
        split += l[1].requests + l[2].requests;
        ratio[r] = two[r] / one[r];
        cr[r] = c1[r] / c2[r];
        bench_out(
            "   round %d: one deployment %.0f/s (%.1f µs CPU), two %.0f/s (%.1f µs): "
            "%.3fx\n",
            r + 1, one[r], c1[r], two[r], c2[r], ratio[r]);
    }
    s_traffic(c, 100, 0);
    res->one = bench_median(one, n);
    res->two = bench_median(two, n);
    res->ratio = bench_median(ratio, n);
    res->ratio_cov = bench_cov(ratio, n);
    res->cpu_one = bench_median(c1, n);
    res->cpu_two = bench_median(c2, n);
    res->cpu_ratio = bench_median(cr, n);
    /* wrk counts the answers it saw; the server also those cut off at the
     * end: the share is a little over green's exact one. */
    res->green_share = (s_green_requests(c) - green0) / split;
    if (res->green_share < 0.3 || res->green_share > 0.7)
        bench_die("green took %.0f%% of the 50/50 requests", res->green_share * 100);
}

/* ---- case cold ------------------------------------------------------------------- */

typedef struct cold_res {
    double reply_ms, first_ms, xgb_ms, ratio;
} cold_res_t;

/* XGBoost's own cold start: a booster from the file, its first prediction. */
static double s_xgb_cold(void)
{
    BoosterHandle h;
    const float *out;
    uint64_t t0 = bench_now_ns();
    XGB(XGBoosterCreate(NULL, 0, &h));
    XGB(XGBoosterLoadModel(h, g_model));
    XGB(XGBoosterSetParam(h, "nthread", "1"));
    XGB(bench_xgb_predict(h, g_rows, 1, NF, &out));
    double ms = s_ms(t0);
    XGB(XGBoosterFree(h));
    return ms;
}

/* create_deployment NAME, then poll scoring on it until it answers 200;
 * the ms to its reply and to the first prediction. The deployment is
 * deleted after (it takes no traffic). */
static void s_cold_one(cairn_client_t *c, const char *name, double want,
                       double *reply_ms, double *first_ms)
{
    reply_t rp = {0};
    uint64_t t0 = bench_now_ns();
    cairn_reply_t *r = s_ep(c, "create_deployment", "endpoint", EP, "name", name,
                            "model", "model:" MODEL ":1", NULL);
    *reply_ms = s_ms(t0);
    cairn_reply_destroy(&r);
    while (s_post(g_port[T_CAIRN], name, g_body, &rp) != 0 || rp.status != 200) {
        if (s_ms(t0) > IO_TIMEOUT_S * 1e3)
            bench_die("deployment %s: no 200 within %d s (%d %s)", name, IO_TIMEOUT_S,
                      rp.status, rp.body);
        usleep(200);
    }
    *first_ms = s_ms(t0);
    if (strcmp(rp.dep, name) || !(fabs(s_prediction(rp.body) - want) <= 1e-6))
        bench_die("deployment %s answered %s from '%s'", name, rp.body, rp.dep);
    r = s_ep(c, "delete_deployment", "endpoint", EP, "name", name, NULL);
    cairn_reply_destroy(&r);
}

static void case_cold(const opts_t *o, cairn_client_t *c, BoosterHandle b,
                      cold_res_t *res)
{
    double rep[MAX_ROUNDS], first[MAX_ROUNDS], xgb[MAX_ROUNDS], ratio[MAX_ROUNDS];
    const float *want;
    if (bench_xgb_predict(b, g_rows, 1, NF, &want) != 0)
        bench_die("XGBoosterPredictFromDense: %s", XGBGetLastError());
    double w = want[0];
    int n = o->base.rounds;
    for (int r = 0; r < n; r++) {
        char name[32];
        snprintf(name, sizeof name, "cold-%d", r + 1);
        s_cold_one(c, name, w, &rep[r], &first[r]);
        xgb[r] = s_xgb_cold();
        ratio[r] = first[r] / xgb[r];
        bench_out(
            "   round %d: create_deployment %.1f ms, first prediction %.1f ms; "
            "XGBoost %.1f ms\n",
            r + 1, rep[r], first[r], xgb[r]);
    }
    res->reply_ms = bench_median(rep, n);
    res->first_ms = bench_median(first, n);
    res->xgb_ms = bench_median(xgb, n);
    res->ratio = bench_median(ratio, n);
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_scorer_http [--quick] [--json] [--strict] [--rounds N] "
            "[--seconds S]\n"
            "                         [--only LIST] [--threads N] [--calls N] "
            "[--no-pin]\n"
            "                         [--wrk PATH] [--cairnd PATH] [--keep]\n"
            "  --quick      a smoke run (CI): 1 s a load, 1 round\n"
            "  --json       print one JSON object instead of the table\n"
            "  --rounds N   rounds of each case (default 3; quick 1)\n"
            "  --seconds S  each wrk run, whole seconds (default 5; quick 1)\n"
            "  --only LIST  some of: http,inproc,routing,cold\n"
            "  --threads N  the scorer's HTTP threads, and each peer's (default: one\n"
            "               per CPU the servers run on, 1 when pinned; the scorer's\n"
            "               own default is one per CPU it may use)\n"
            "  --calls N    inproc: single-row predictions of ours a round (default\n"
            "               200000; quick 2000; XGBoost a tenth)\n"
            "  --no-pin     do not pin the servers and wrk to CPUs of their own\n"
            "  --wrk PATH   the wrk to run (default /usr/bin/wrk)\n"
            "  --cairnd P   the cairnd to start (default: beside this program)\n"
            "  --keep       keep the temp dir (conf, cairnd.log, model, script)\n"
            "  --strict     exit 3 when a verdict is MISS\n"
            "The temp dir is made under $CAIRN_BENCH_DIR, else /var/tmp.\n");
}

static void s_args(opts_t *o, int argc, char **argv)
{
    bool calls_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (bench_opts_take(&o->base, argc, argv, &i))
            continue;
        else if (!strcmp(a, "--keep"))
            o->keep = true;
        else if (!strcmp(a, "--threads") && more)
            o->threads = atoi(argv[++i]);
        else if (!strcmp(a, "--calls") && more)
            o->calls = atol(argv[++i]), calls_set = true;
        else if (!strcmp(a, "--wrk") && more)
            o->wrk = argv[++i];
        else
            bench_arg_rest("bench_scorer_http", a, usage);
    }
    if (o->base.quick) {
        if (!o->base.rounds_set) o->base.rounds = 1;
        if (!o->base.seconds_set) o->base.seconds = 1;
        if (!calls_set) o->calls = 2000;
        o->train_rows = 4000; /* enough for full depth-6 trees */
    }
    if (o->base.rounds < 1 || o->base.rounds > MAX_ROUNDS || o->threads < 0 ||
        o->threads > 256 || o->calls < 100 || o->calls > 100000000 ||
        !(o->base.seconds > 0) || o->base.seconds > 600) {
        fprintf(stderr,
                "bench_scorer_http: --rounds 1..%d, --threads 1..256, --calls "
                "100..1e8, --seconds 1..600\n",
                MAX_ROUNDS);
        exit(2);
    }
}

/* CPUs: servers on one, wrk and this program on another. */
static const char *s_pin(const opts_t *o)
{
    if (!o->base.pin) return "not pinned (--no-pin)";
    if (!bench_pick_cpus(&g_srv_cpu, &g_cli_cpu))
        return "not pinned: this process may run on only one CPU";
    cairn_err_t err = {0};
    if (bench_pin(g_cli_cpu, &err) != 0) bench_die("%s", err.msg);
    static char text[96];
    snprintf(text, sizeof text,
             "servers pinned to CPU %d, wrk and this bench to CPU %d", g_srv_cpu,
             g_cli_cpu);
    return text;
}

/* The CPUs the servers may run on: one pinned, else this process' (HTTP
 * threads beyond them time-share a CPU, and a connection whose thread
 * waits for its turn waits a scheduler slice: milliseconds at p99). */
static int s_server_cpus(void)
{
    cpu_set_t set;
    if (g_srv_cpu >= 0) return 1;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    return CPU_COUNT(&set);
}

/* The temp dir (kernel's), the model trained, the peers and cairnd up. */
static cairn_client_t *s_setup(const opts_t *o, BoosterHandle *b)
{
    cairn_err_t err = {0};
    const char *base = getenv("CAIRN_BENCH_DIR");
    if (!base || !*base) base = "/var/tmp";
    if (strlen(base) > 200) bench_die("$CAIRN_BENCH_DIR is too long");
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s/cairn-bench-scorer-http-", base);
    if (!(g_kernel = bench_kernel_new(o->base.cairnd, prefix, &err)))
        bench_die("%s", err.msg);
    if (g_keep) bench_kernel_keep(g_kernel);
    snprintf(g_model, sizeof g_model, "%s/model.json", bench_kernel_dir(g_kernel));
    *b = s_train(o->train_rows);
    bench_model_rows(2, NCHECK, NF, g_rows, NULL);
    s_body(g_rows, g_body, sizeof g_body);
    s_start_peer(T_CONST, "const", o->threads);
    s_start_peer(T_XGB, "xgb", o->threads);
    cairn_client_t *c = s_start_cairnd(o);
    s_register(c);
    s_endpoint(c);
    g_pid[T_CAIRN] = s_scorer_pid(c);
    s_write_script();
    return c;
}

typedef struct results {
    http_res_t http;
    inproc_res_t inproc;
    routing_res_t routing;
    cold_res_t cold;
    int ncases;
} results_t;

static void s_header(const opts_t *o, const char *pin, const scorer_model_t *m,
                     double worst)
{
    bench_host_t host;
    bench_host(&host);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_scorer_http: single-row scoring over HTTP, the scorer against "
        "libmicrohttpd peers, same run\n"
        "host: %ld CPUs, Linux %s, %s; load average at start %s\n"
        "model: binary:logistic, %zu trees of depth <= 6 (%zu nodes), %d features\n"
        "servers: %d HTTP thread(s) each; scorer pid %d, (a) pid %d, (b) pid %d; %s\n"
        "load: wrk -t1, %d s a run, %d round(s)%s\n",
        host.ncpu, host.kernel, host.date, load, scorer_model_trees(m),
        scorer_model_nodes(m), NF, o->threads, (int)g_pid[T_CAIRN], (int)g_pid[T_CONST],
        (int)g_pid[T_XGB], pin, s_secs(o), o->base.rounds,
        o->base.quick ? " (--quick: smoke only)" : "");
    bench_out(
        "\n0. answers: %d rows through every server; max |cairn - (b)|, |cairn - "
        "XGBoost| = %.3g\n",
        NCHECK, worst);
    bench_fig("max_abs_diff", worst);
}

static void inproc_report(const inproc_res_t *r)
{
    bench_out(
        "\n2. inproc: (c) single-row predictions in a tight loop, this process\n"
        "   XGBoosterPredictFromDense  %10.0f rows/s (%.0f ns)\n"
        "   scorer_model_predict       %10.0f rows/s (%.0f ns)\n"
        "   ours / XGBoost: %.1fx\n",
        1e9 / r->xgb_ns, r->xgb_ns, 1e9 / r->ours_ns, r->ours_ns, r->ratio);
    bench_fig("inproc_xgb_rows_per_s", 1e9 / r->xgb_ns);
    bench_fig("inproc_ours_rows_per_s", 1e9 / r->ours_ns);
    bench_fig("inproc_ours_vs_xgb", r->ratio);
}

static void routing_report(const routing_res_t *r)
{
    bench_out(
        "   medians: one deployment %.0f/s, two %.0f/s: %.3fx (CoV %.1f%%); green "
        "took %.1f%%\n"
        "   scorer CPU a request: one %.1f µs, two %.1f µs: one/two %.3fx\n",
        r->one, r->two, r->ratio, r->ratio_cov * 100, r->green_share * 100, r->cpu_one,
        r->cpu_two, r->cpu_ratio);
    bench_fig("routing_one_per_s", r->one);
    bench_fig("routing_two_per_s", r->two);
    bench_fig("routing_two_vs_one", r->ratio);
    bench_fig("routing_cpu_one_us", r->cpu_one);
    bench_fig("routing_cpu_two_us", r->cpu_two);
    bench_fig("routing_cpu_one_vs_two", r->cpu_ratio);
    bench_fig("routing_green_share", r->green_share);
    bench_verdict("3 two deployments >= 0.95x one", r->ratio >= 0.95, ">= 0.95x",
                  "%.3fx", r->ratio);
}

static void cold_report(const cold_res_t *r)
{
    bench_out(
        "   medians: reply %.1f ms, first prediction %.1f ms; XGBoost create + load + "
        "predict %.1f ms: %.2fx\n",
        r->reply_ms, r->first_ms, r->xgb_ms, r->ratio);
    bench_fig("cold_reply_ms", r->reply_ms);
    bench_fig("cold_first_ms", r->first_ms);
    bench_fig("cold_xgb_ms", r->xgb_ms);
    bench_fig("cold_vs_xgb", r->ratio);
    bench_verdict("4 cold start < 200 ms", r->first_ms < 200, "< 200 ms", "%.1f ms",
                  r->first_ms);
}

static void s_cases(const opts_t *o, cairn_client_t *c, BoosterHandle b,
                    const scorer_model_t *m, results_t *res)
{
    const char *only = o->base.only;
    if (bench_in_list(only, "http")) {
        bench_out("\n1. http: POST one row, wrk -t1 at 1 and %d connections\n",
                  TARGET_CONNS);
        case_http(o, &res->http);
        http_report(&res->http);
        res->ncases++;
    }
    if (bench_in_list(only, "inproc")) {
        case_inproc(o, b, m, &res->inproc);
        inproc_report(&res->inproc);
        res->ncases++;
    }
    if (bench_in_list(only, "routing")) {
        bench_out(
            "\n3. routing: %d connections, blue 100%% vs blue/green 50/50, ABBA "
            "rounds\n",
            TARGET_CONNS);
        case_routing(o, c, &res->routing);
        routing_report(&res->routing);
        res->ncases++;
    }
    if (bench_in_list(only, "cold")) {
        bench_out("\n4. cold: create_deployment sent -> its first prediction\n");
        case_cold(o, c, b, &res->cold);
        cold_report(&res->cold);
        res->ncases++;
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--peer")) return peer_main(argc, argv);
    opts_t o = {.base = {.rounds = 3, .seconds = 5, .pin = true},
                .threads = 0,
                .calls = 200000,
                .train_rows = 20000,
                .wrk = "/usr/bin/wrk"};
    s_args(&o, argc, argv);
    g_keep = o.keep;
    g_wrk = o.wrk;
    bench_text_set(!o.base.json);
    bench_init("bench_scorer_http", cleanup);
    if (!bench_executable(g_wrk)) bench_die("no wrk at %s (apt install wrk)", g_wrk);
    uint64_t t_start = bench_now_ns();
    const char *pin = s_pin(&o);
    if (!o.threads) o.threads = s_server_cpus();
    BoosterHandle b;
    cairn_client_t *c = s_setup(&o, &b);
    scorer_model_t *m = NULL;
    cairn_err_t err = {0};
    if (scorer_model_load(g_model, &m, &err) != 0) bench_die("%s", err.msg);
    double worst = s_check_answers(b);
    s_header(&o, pin, m, worst);
    results_t res = {0};
    s_cases(&o, c, b, m, &res);
    char load[64];
    bench_loadavg(load, sizeof load);
    double total_s = (double)(bench_now_ns() - t_start) / 1e9;
    if (o.base.json) {
        printf(
            "{\"bench\": \"scorer_http\", \"quick\": %s, \"rounds\": %d, "
            "\"threads\": %d, \"cases\": %d, \"seconds\": %.1f, \"load_end\": "
            "\"%s\", ",
            o.base.quick ? "true" : "false", o.base.rounds, o.threads, res.ncases,
            total_s, load);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(34, 10, 10);
        bench_verdicts_line(o.base.quick);
        bench_out("ran %d cases in %.0f s; load average at the end %s\n", res.ncases,
                  total_s, load);
    }
    int misses = bench_misses();
    scorer_model_destroy(&m);
    XGBoosterFree(b);
    cairn_client_destroy(&c);
    cleanup(false);
    if (!o.base.json) printf("bench_scorer_http: done\n");
    return o.base.strict && misses ? 3 : 0;
}
