/* bench_gateway — the HTTP gateway's figures (issue 15), each a ratio
 * against its peer measured in the same run.
 *
 *   bench_gateway [--quick] [--json] [--rounds N] [--seconds S] [--only LIST]
 *                 [--points N] [--runs N] [--queries N] [--size BYTES[K|M|G]]
 *                 [--gateway-mode process|inproc] [--cairnd PATH] [--keep]
 *                 [--strict]
 *
 * One private cairnd: `tracking` and `artifacts` (the storage plugin,
 * inproc) and `gateway` (the gateway plugin, in process mode by default: a
 * cairn-plugin-host of its own, so that its CPU time and RSS are its own;
 * listening on a free loopback port, its bus calls to the kernel's
 * frontend, GW_THREADS server threads). The temp dir (and so the state dir)
 * is made under $CAIRN_BENCH_DIR, else /var/tmp. The HTTP client is this
 * file's own: HTTP/1.1 over keep-alive TCP connections, Content-Length
 * request bodies, Content-Length or chunked replies, lock-step on each
 * connection. Cases (--only):
 *
 *   ingest     MLflow's POST /api/2.0/mlflow/runs/log-batch, 1,000 metrics a
 *              request ({"run_id", "metrics": [{key, value, timestamp,
 *              step}]}, timestamp and step as JSON numbers, as MLflow's
 *              client sends them), over 8 keep-alive connections, each
 *              into a run of its own -> points/s. Peer: the same batches
 *              over the bus (the C SDK's cairn_batch_send_async, 8 in
 *              flight on one client, into 8 runs), as bench_tracking's
 *              ingest. Targets: >= 500,000 points/s and >= 0.15x the bus.
 *              (info) the same with timestamp and step as proto3 JSON
 *              strings ("1700000000000").
 *   get        lock-step GET /api/2.0/mlflow/runs/get?run_id=... on one
 *              keep-alive connection -> requests/s. Peer: a minimal
 *              libmicrohttpd server in this process (the same daemon
 *              flags and thread count as sdk/httpd) answering, to GET on
 *              the same client, the very bytes the gateway answered.
 *              Target >= 0.5x. (info) get_run lock-step over the bus.
 *   search     R runs (--runs; 20 metrics, 10 params each) populated
 *              through the bus (bench/populate.c, as bench_tracking);
 *              then POST /api/2.0/mlflow/runs/search with the filter
 *              metrics.m3 > 0.9 AND params.p2 = 'v7' and max_results 100,
 *              interleaved query by query with search_runs over the bus
 *              with the same filter and max_results; p50/p99 each, the
 *              same runs checked. Target: p99 <= 1.3x the bus's. (info)
 *              top 100 by metrics.m1 DESC.
 *   artifacts  MLflow's artifact proxy: PUT and GET of a --size file
 *              (default 1 GiB) at /api/2.0/mlflow-artifacts/artifacts/EXP/
 *              RUN/artifacts/PATH (the download written to a file and
 *              fsync'ed), against `cp` + fsync of the file on the same
 *              filesystem (bench_artifacts' peer), round by round. Targets:
 *              >= 0.5x cp both ways, and the gateway's RSS growth (its
 *              process' VmHWM over the case, reset through clear_refs, less
 *              its VmRSS before) < 64 MiB.
 *
 * Timings are never asserted: verdicts print PASS or MISS; --strict turns
 * a MISS into exit status 3. Every reply is checked; a wrong one is exit
 * status 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_util.h"
#include "cairn/cairn.h"
#include "populate.h"

#define MAX_ROUNDS 20
#define IO_TIMEOUT_S 120
#define GW_THREADS 8 /* the gateway's server threads (and the peer's) */
#define NCONN 8      /* ingest: HTTP connections, bus batches in flight */
#define NKEYS 20     /* metric keys per ingest batch */
#define NSTEPS 50    /* steps per key per ingest batch */
#define BATCH_POINTS (NKEYS * NSTEPS)
#define TS0 INT64_C(1700000000000)
#define TS_W 13   /* digits of a timestamp in the ingest bodies */
#define STEP_W 10 /* room for a step in the ingest bodies */
#define FILTER "metrics.m3 > 0.9 AND params.p2 = 'v7'"
_Static_assert(MAX_ROUNDS <= BENCH_MAX_ROUNDS, "rounds beyond bench_median's reach");

typedef struct opts {
    bench_opts_t base; /* .rounds, .seconds (per get sample), .only */
    long points;       /* per ingest sample, each side */
    int runs;          /* search population */
    int queries;       /* per search query kind, each side */
    uint64_t size;     /* the artifact */
    const char *mode;  /* the gateway's */
    bool keep;
} opts_t;

static bench_kernel_t *g_kernel;
static bool g_keep;
static pid_t g_cairnd = -1, g_gw = -1;
static uint16_t g_port; /* the gateway's */
static struct MHD_Daemon *g_peer;

static void cleanup(bool failed)
{
    if (failed) bench_kernel_print_log(g_kernel, stderr);
    if (g_peer) MHD_stop_daemon(g_peer);
    g_peer = NULL;
    if (g_kernel && g_keep) bench_warn("kept %s", bench_kernel_dir(g_kernel));
    bench_kernel_destroy(&g_kernel);
}

static double s_secs(uint64_t t0)
{
    return (double)(bench_now_ns() - t0) / 1e9;
}

static uint64_t s_cpu_ns(pid_t pid)
{
    uint64_t ns = 0;
    bench_proc_cpu_ns(pid, &ns);
    return ns;
}

/* ---- the HTTP client ------------------------------------------------------------ */

typedef struct hc {
    int fd;
    uint16_t port;
    char *in; /* received, [off, len) not yet taken */
    size_t off, len, cap;
    char *body; /* the last response's body, NUL-terminated (unless sunk) */
    size_t body_len, body_cap;
    int status;
    char err[256];
} hc_t;

static int hc_fail(hc_t *h, const char *what)
{
    snprintf(h->err, sizeof h->err, "%s: %s", what, errno ? strerror(errno) : "closed");
    return -1;
}

static void hc_close(hc_t *h)
{
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
    h->off = h->len = 0;
}

static void hc_free(hc_t *h)
{
    hc_close(h);
    free(h->in);
    free(h->body);
    h->in = h->body = NULL;
}

static int hc_connect(hc_t *h, uint16_t port)
{
    if (!h->in) {
        h->fd = -1;
        h->cap = 256 << 10;
        if (!(h->in = malloc(h->cap))) return hc_fail(h, "out of memory");
    }
    hc_close(h);
    h->port = port;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    errno = 0;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0 || setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ||
        setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
        setsockopt(h->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) ||
        connect(h->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        hc_fail(h, "connect");
        hc_close(h);
        return -1;
    }
    return 0;
}

static int hc_writev(hc_t *h, struct iovec *iov, int n)
{
    while (n > 0) {
        errno = 0;
        ssize_t w = writev(h->fd, iov, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return hc_fail(h, "send");
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Read more into in (room made by moving or growing it). */
static int hc_fill(hc_t *h)
{
    if (h->off == h->len) h->off = h->len = 0;
    if (h->len == h->cap) {
        if (h->off) {
            memmove(h->in, h->in + h->off, h->len - h->off);
            h->len -= h->off;
            h->off = 0;
        } else {
            char *p = realloc(h->in, h->cap * 2);
            if (!p) return hc_fail(h, "out of memory");
            h->in = p;
            h->cap *= 2;
        }
    }
    for (;;) {
        errno = 0;
        ssize_t n = read(h->fd, h->in + h->len, h->cap - h->len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return hc_fail(h, "receive");
        h->len += (size_t)n;
        return 0;
    }
}

static int hc_append(hc_t *h, const char *p, size_t n)
{
    if (h->body_len + n + 1 > h->body_cap) {
        size_t cap = h->body_cap ? h->body_cap : 64 << 10;
        while (cap < h->body_len + n + 1) cap *= 2;
        char *b = realloc(h->body, cap);
        if (!b) return hc_fail(h, "out of memory");
        h->body = b;
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_len, p, n);
    h->body_len += n;
    h->body[h->body_len] = '\0';
    return 0;
}

/* n bytes of the body: written to sink (a file), or onto body when sink < 0. */
static int hc_take(hc_t *h, uint64_t n, int sink)
{
    while (n > 0) {
        if (h->off == h->len && hc_fill(h) != 0) return -1;
        size_t k = h->len - h->off < n ? h->len - h->off : (size_t)n;
        if (sink >= 0) {
            for (size_t done = 0; done < k;) {
                ssize_t w = write(sink, h->in + h->off + done, k - done);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) return hc_fail(h, "write the body to its file");
                done += (size_t)w;
            }
        } else if (hc_append(h, h->in + h->off, k) != 0) {
            return -1;
        }
        h->off += k;
        n -= k;
    }
    return 0;
}

/* A line (CRLF-ended) from in: its start, its end taken past. */
static char *hc_line(hc_t *h)
{
    for (int i = 0; i < 4096; i++) {
        char *p =
            h->off < h->len ? memmem(h->in + h->off, h->len - h->off, "\r\n", 2) : NULL;
        if (p) {
            char *line = h->in + h->off;
            *p = '\0';
            h->off = (size_t)(p + 2 - h->in);
            return line;
        }
        if (h->len - h->off > 8192 || hc_fill(h) != 0) {
            if (!h->err[0]) snprintf(h->err, sizeof h->err, "a line too long");
            return NULL;
        }
    }
    return NULL;
}

/* The response: status line, headers, body (to sink, or into body). */
static int hc_response(hc_t *h, int sink)
{
    h->body_len = 0;
    if (h->body) h->body[0] = '\0';
    h->err[0] = '\0';
    char *line = hc_line(h);
    if (!line) return -1;
    if (strncmp(line, "HTTP/1.", 7) != 0 || strlen(line) < 12) {
        snprintf(h->err, sizeof h->err, "not a status line: %.60s", line);
        return -1;
    }
    h->status = atoi(line + 9);
    long long clen = -1;
    bool chunked = false, close_after = false;
    for (int i = 0; i < 100; i++) {
        if (!(line = hc_line(h))) return -1;
        if (!*line) break;
        if (!strncasecmp(line, "Content-Length:", 15))
            clen = strtoll(line + 15, NULL, 10);
        else if (!strncasecmp(line, "Transfer-Encoding:", 18))
            chunked = strcasestr(line + 18, "chunked") != NULL;
        else if (!strncasecmp(line, "Connection:", 11))
            close_after = strcasestr(line + 11, "close") != NULL;
    }
    if (chunked) {
        for (;;) {
            if (!(line = hc_line(h))) return -1;
            uint64_t n = strtoull(line, NULL, 16);
            if (!n) {
                while ((line = hc_line(h)) && *line) {
                } /* trailers */
                if (!line) return -1;
                break;
            }
            if (hc_take(h, n, sink) != 0 || !(line = hc_line(h))) return -1;
        }
    } else if (clen > 0 && hc_take(h, (uint64_t)clen, sink) != 0) {
        return -1;
    }
    if (close_after) hc_close(h);
    return 0;
}

/* One request, its body (len bytes, JSON) sent with Content-Length; the
 * response into h (status, body) or its body to sink. Returns the status,
 * or -1 (h->err). A connection the server closed is opened again. */
static int hc_request(hc_t *h, const char *method, const char *target, const char *body,
                      size_t len, int sink)
{
    if (h->fd < 0 && hc_connect(h, h->port) != 0) return -1;
    char head[1024];
    int n = body
                ? snprintf(head, sizeof head,
                           "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                           "application/json\r\nContent-Length: %zu\r\n\r\n",
                           method, target, len)
                : snprintf(head, sizeof head,
                           "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method, target);
    if (n < 0 || (size_t)n >= sizeof head) {
        snprintf(h->err, sizeof h->err, "the request line is too long");
        return -1;
    }
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, body ? len : 0}};
    if (hc_writev(h, iov, body && len ? 2 : 1) != 0 || hc_response(h, sink) != 0)
        return -1;
    return h->status;
}

/* PUT the file at path (size bytes) to target, streamed (sendfile). */
static int hc_put_file(hc_t *h, const char *target, const char *path, uint64_t size)
{
    if (h->fd < 0 && hc_connect(h, h->port) != 0) return -1;
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     "application/octet-stream\r\nContent-Length: %llu\r\n\r\n",
                     target, (unsigned long long)size);
    struct iovec iov[1] = {{head, (size_t)n}};
    if (hc_writev(h, iov, 1) != 0) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hc_fail(h, "open the file");
    off_t off = 0;
    while ((uint64_t)off < size) {
        errno = 0;
        ssize_t w = sendfile(h->fd, fd, &off, (size_t)(size - (uint64_t)off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return hc_fail(h, "send the file");
        }
    }
    close(fd);
    return hc_response(h, -1) != 0 ? -1 : h->status;
}

/* ---- the bus side's small helpers ------------------------------------------------ */

static char *s_new_run(cairn_client_t *c, const char *exp, const char *name)
{
    cairn_err_t err = {0};
    char *id = NULL;
    if (cairn_create_run(c, exp, name, NULL, &id, &err) != 0)
        bench_die("create_run: %d %s", err.st, err.msg);
    return id;
}

static void s_collect_ok(cairn_client_t *c, const char *what)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    if (cairn_client_recv(c, IO_TIMEOUT_S * 1000, &r, &err) != 0)
        bench_die("%s: no reply: %d %s", what, err.st, err.msg);
    if (cairn_reply_status(r) != CAIRN_ST_OK)
        bench_die("%s: %d %s", what, cairn_reply_status(r), cairn_reply_error(r));
    cairn_reply_destroy(&r);
}

/* A call that must answer 200; the reply is the caller's. */
static cairn_reply_t *s_call(cairn_client_t *c, const char *svc, const char *verb,
                             const msgpack_sbuffer *sb)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    if (cairn_client_call(c, svc, verb, sb ? sb->data : NULL, sb ? sb->size : 0, 0, &r,
                          &err) != 0) {
        cairn_reply_destroy(&r);
        bench_die("%s.%s: %d %s", svc, verb, err.st, err.msg);
    }
    return r;
}

/* The gateway's port (its info verb) and its process (sys.health's pid). */
static void s_find_gateway(cairn_client_t *c, bool process)
{
    cairn_reply_t *r = s_call(c, "gateway", "info", NULL);
    const msgpack_object *p = cairn_obj_get(cairn_reply_object(r), "port");
    if (!p || p->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !p->via.u64)
        bench_die("gateway.info: no port");
    g_port = (uint16_t)p->via.u64;
    cairn_reply_destroy(&r);
    g_gw = g_cairnd;
    if (!process) return;
    r = s_call(c, "sys", "health", NULL);
    const msgpack_object *pl = cairn_obj_get(cairn_reply_object(r), "plugins");
    for (uint32_t i = 0;
         pl && pl->type == MSGPACK_OBJECT_ARRAY && i < pl->via.array.size; i++) {
        const msgpack_object *s = &pl->via.array.ptr[i];
        const msgpack_object *pid = cairn_obj_get(s, "pid");
        if (cairn_obj_is_str(cairn_obj_get(s, "name"), "gateway") && pid &&
            pid->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            g_gw = (pid_t)pid->via.u64;
    }
    cairn_reply_destroy(&r);
    if (g_gw == g_cairnd) bench_die("sys.health: no pid for the gateway's process");
}

/* ---- case 1: ingest ---------------------------------------------------------------
 */

static char g_keys[NKEYS][8]; /* m00, m01, ... as the HTTP bodies name them */

static inline double ingest_value(int k, int64_t step)
{
    return (double)(((uint64_t)step * 2654435761u + (uint64_t)k * 40503u) & 0xffff) /
           65536.0;
}

/* v, right-aligned in w bytes at p: spaces before it in a JSON number,
 * zeros in a proto3 string. */
static void s_put_num(char *p, int w, uint64_t v, char pad)
{
    for (int i = w - 1; i >= 0; i--) {
        p[i] = v || i == w - 1 ? (char)('0' + v % 10) : pad;
        v /= 10;
    }
}

typedef struct ing_conn {
    pthread_t th;
    pthread_barrier_t *start;
    const char *run;
    int nreq;
    bool proto3;
    hc_t hc;
    char *body; /* the request's body, its steps and timestamps patched */
    size_t len;
    size_t ts_at[BATCH_POINTS], step_at[BATCH_POINTS];
    char err[300];
} ing_conn_t;

/* The body of a log-batch of BATCH_POINTS metrics into run, with room for
 * each point's timestamp and step. */
static void ing_body(ing_conn_t *w)
{
    size_t cap = 256 + (size_t)BATCH_POINTS * 128;
    free(w->body);
    if (!(w->body = malloc(cap))) bench_die("out of memory");
    const char *q = w->proto3 ? "\"" : "";
    size_t n =
        (size_t)snprintf(w->body, cap, "{\"run_id\": \"%s\", \"metrics\": [", w->run);
    for (int i = 0; i < BATCH_POINTS; i++) {
        n += (size_t)snprintf(
            w->body + n, cap - n,
            "%s{\"key\": \"m%02d\", \"value\": %.17g, \"timestamp\": %s", i ? ", " : "",
            i % NKEYS, ingest_value(i % NKEYS, i / NKEYS), q);
        w->ts_at[i] = n;
        n += (size_t)snprintf(w->body + n, cap - n, "%*s%s, \"step\": %s", TS_W, "", q,
                              q);
        w->step_at[i] = n;
        n += (size_t)snprintf(w->body + n, cap - n, "%*s%s}", STEP_W, "", q);
    }
    n += (size_t)snprintf(w->body + n, cap - n, "]}");
    if (n >= cap) bench_die("an ingest body overflowed");
    w->len = n;
}

static void ing_patch(ing_conn_t *w, int64_t step0)
{
    char pad = w->proto3 ? '0' : ' ';
    for (int i = 0; i < BATCH_POINTS; i++) {
        int64_t step = step0 + i / NKEYS;
        s_put_num(w->body + w->ts_at[i], TS_W, (uint64_t)(TS0 + step), pad);
        s_put_num(w->body + w->step_at[i], STEP_W, (uint64_t)step, pad);
    }
}

static void *ing_thread(void *arg)
{
    ing_conn_t *w = arg;
    pthread_barrier_wait(w->start);
    for (int r = 0; r < w->nreq; r++) {
        ing_patch(w, (int64_t)r * NSTEPS);
        int st = hc_request(&w->hc, "POST", "/api/2.0/mlflow/runs/log-batch", w->body,
                            w->len, -1);
        if (st != 200) {
            if (st < 0)
                snprintf(w->err, sizeof w->err, "log-batch: %s", w->hc.err);
            else
                snprintf(w->err, sizeof w->err, "log-batch: %d %.200s", st, w->hc.body);
            break;
        }
    }
    return NULL;
}

typedef struct ing_sample {
    double pps;
    double gw_ns, srv_ns, cli_ns; /* CPU per point: gateway, cairnd, this process */
} ing_sample_t;

/* npoints over NCONN connections, each into a fresh run. */
static void ingest_http(cairn_client_t *c, const char *exp, long npoints, bool proto3,
                        ing_sample_t *s)
{
    ing_conn_t *w = calloc(NCONN, sizeof *w);
    char *runs[NCONN];
    pthread_barrier_t start;
    if (!w || pthread_barrier_init(&start, NULL, NCONN + 1) != 0)
        bench_die("out of memory");
    int nreq = (int)(npoints / BATCH_POINTS / NCONN);
    if (nreq < 1) nreq = 1;
    for (int i = 0; i < NCONN; i++) {
        runs[i] = s_new_run(c, exp, "http");
        w[i] = (ing_conn_t){
            .start = &start, .run = runs[i], .nreq = nreq, .proto3 = proto3};
        ing_body(&w[i]);
        if (hc_connect(&w[i].hc, g_port) != 0) bench_die("%s", w[i].hc.err);
        if (pthread_create(&w[i].th, NULL, ing_thread, &w[i]) != 0)
            bench_die("pthread_create");
    }
    uint64_t gw0 = s_cpu_ns(g_gw), srv0 = s_cpu_ns(g_cairnd), cli0 = s_cpu_ns(getpid());
    pthread_barrier_wait(&start);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < NCONN; i++) pthread_join(w[i].th, NULL);
    double secs = s_secs(t0);
    double n = (double)nreq * NCONN * BATCH_POINTS;
    s->pps = n / secs;
    s->gw_ns = g_gw == g_cairnd ? NAN : (double)(s_cpu_ns(g_gw) - gw0) / n;
    s->srv_ns = (double)(s_cpu_ns(g_cairnd) - srv0) / n;
    s->cli_ns = (double)(s_cpu_ns(getpid()) - cli0) / n;
    for (int i = 0; i < NCONN; i++) {
        if (w[i].err[0]) bench_die("connection %d: %s", i, w[i].err);
        hc_free(&w[i].hc);
        free(w[i].body);
        free(runs[i]);
    }
    pthread_barrier_destroy(&start);
    free(w);
}

/* The same points over the bus: NCONN batches in flight on one client,
 * round-robin into NCONN fresh runs. */
static void ingest_bus(cairn_client_t *c, const char *exp, long npoints,
                       ing_sample_t *s)
{
    char *runs[NCONN];
    for (int i = 0; i < NCONN; i++) runs[i] = s_new_run(c, exp, "bus");
    cairn_batch_t *b = cairn_batch_new(runs[0]);
    if (!b) bench_die("out of memory");
    int nreq = (int)(npoints / BATCH_POINTS / NCONN);
    if (nreq < 1) nreq = 1;
    long batches = (long)nreq * NCONN;
    cairn_err_t err = {0};
    int inflight = 0;
    uint64_t srv0 = s_cpu_ns(g_cairnd), cli0 = s_cpu_ns(getpid());
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < batches; i++) {
        if (cairn_batch_set_run(b, runs[i % NCONN]) != 0)
            bench_die("cairn_batch_set_run");
        int64_t step0 = (int64_t)(i / NCONN) * NSTEPS;
        for (int st = 0; st < NSTEPS; st++)
            for (int k = 0; k < NKEYS; k++)
                cairn_batch_metric(b, g_keys[k], ingest_value(k, st), step0 + st,
                                   TS0 + step0 + st);
        if (cairn_batch_send_async(c, b, NULL, &err) != 0)
            bench_die("ingest: send: %d %s", err.st, err.msg);
        if (++inflight == NCONN) {
            s_collect_ok(c, "ingest log_batch");
            inflight--;
        }
    }
    while (inflight--) s_collect_ok(c, "ingest log_batch");
    double secs = s_secs(t0);
    double n = (double)batches * BATCH_POINTS;
    s->pps = n / secs;
    s->gw_ns = 0;
    s->srv_ns = (double)(s_cpu_ns(g_cairnd) - srv0) / n;
    s->cli_ns = (double)(s_cpu_ns(getpid()) - cli0) / n;
    cairn_batch_destroy(&b);
    for (int i = 0; i < NCONN; i++) free(runs[i]);
}

typedef struct ing_result {
    double http_pps, bus_pps, ratio, ratio_cov, proto3_pps, proto3_ratio;
    double gw_ns, http_srv_ns, http_cli_ns, bus_srv_ns, bus_cli_ns;
} ing_result_t;

static void case_ingest(const opts_t *o, cairn_client_t *c, const char *exp,
                        ing_result_t *res)
{
    ing_sample_t hs[MAX_ROUNDS], bs[MAX_ROUNDS], ps[MAX_ROUNDS], warm;
    double ratio[MAX_ROUNDS], pratio[MAX_ROUNDS];
    ingest_http(c, exp, BATCH_POINTS * NCONN, false, &warm); /* warm-up, both */
    ingest_bus(c, exp, BATCH_POINTS * NCONN, &warm);
    for (int r = 0; r < o->base.rounds; r++) {
        if (r % 2 == 0) {
            ingest_http(c, exp, o->points, false, &hs[r]);
            ingest_bus(c, exp, o->points, &bs[r]);
            ingest_http(c, exp, o->points, true, &ps[r]);
        } else {
            ingest_http(c, exp, o->points, true, &ps[r]);
            ingest_bus(c, exp, o->points, &bs[r]);
            ingest_http(c, exp, o->points, false, &hs[r]);
        }
        ratio[r] = hs[r].pps / bs[r].pps;
        pratio[r] = ps[r].pps / bs[r].pps;
        bench_out(
            "   round %d: HTTP %.0f points/s, bus %.0f points/s (%.3fx); proto3 "
            "strings %.0f points/s\n",
            r + 1, hs[r].pps, bs[r].pps, ratio[r], ps[r].pps);
    }
#define MED(v, f) BENCH_MEDIAN_FIELD(v, ing_sample_t, f, o->base.rounds)
    res->http_pps = MED(hs, pps);
    res->bus_pps = MED(bs, pps);
    res->proto3_pps = MED(ps, pps);
    res->ratio = bench_median(ratio, o->base.rounds);
    res->ratio_cov = bench_cov(ratio, o->base.rounds);
    res->proto3_ratio = bench_median(pratio, o->base.rounds);
    res->gw_ns = MED(hs, gw_ns);
    res->http_srv_ns = MED(hs, srv_ns);
    res->http_cli_ns = MED(hs, cli_ns);
    res->bus_srv_ns = MED(bs, srv_ns);
    res->bus_cli_ns = MED(bs, cli_ns);
#undef MED
}

/* ---- case 2: lock-step get --------------------------------------------------------
 */

/* The peer: a minimal libmicrohttpd server answering a constant. */
static char *g_peer_body;
static size_t g_peer_len;

static enum MHD_Result peer_access(void *cls, struct MHD_Connection *conn,
                                   const char *url, const char *method,
                                   const char *version, const char *upload,
                                   size_t *upload_size, void **state)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (!*state) { /* the headers */
        *state = &g_peer_len;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(g_peer_len, g_peer_body,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

static uint16_t peer_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    g_peer = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL,
                              NULL, peer_access, NULL, MHD_OPTION_SOCK_ADDR,
                              (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
                              (unsigned)GW_THREADS, MHD_OPTION_END);
    if (!g_peer) bench_die("cannot start the libmicrohttpd peer");
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(g_peer, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port) bench_die("the libmicrohttpd peer has no port");
    return info->port;
}

typedef struct lock_sample {
    double rate, p50, p99;  /* requests/s; µs */
    double gw_cpu, srv_cpu; /* µs of CPU per request: the gateway's, cairnd's */
} lock_sample_t;

static void lock_cpu_begin(uint64_t cpu[2])
{
    cpu[0] = g_gw != g_cairnd ? s_cpu_ns(g_gw) : 0;
    cpu[1] = s_cpu_ns(g_cairnd);
}

static void lock_cpu_end(const uint64_t cpu[2], size_t n, lock_sample_t *s)
{
    s->gw_cpu =
        g_gw != g_cairnd ? (double)(s_cpu_ns(g_gw) - cpu[0]) / 1e3 / (double)n : NAN;
    s->srv_cpu = (double)(s_cpu_ns(g_cairnd) - cpu[1]) / 1e3 / (double)n;
}

static double *g_lat;
static size_t g_lat_cap;

static void s_lat_push(size_t n, double us)
{
    if (n >= g_lat_cap) {
        g_lat_cap = g_lat_cap ? g_lat_cap * 2 : 1 << 16;
        if (!(g_lat = realloc(g_lat, g_lat_cap * sizeof *g_lat)))
            bench_die("out of memory");
    }
    g_lat[n] = us;
}

/* Lock-step GETs of target on h for secs seconds (at least 10): each
 * answer 200 and of want_len bytes. */
static void lock_http(hc_t *h, const char *target, size_t want_len, double secs,
                      lock_sample_t *s)
{
    size_t n = 0;
    uint64_t cpu[2];
    lock_cpu_begin(cpu);
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    for (;;) {
        uint64_t a = bench_now_ns();
        if (n >= 10 && a >= end) break;
        int st = hc_request(h, "GET", target, NULL, 0, -1);
        if (st != 200) bench_die("GET %s: %d %s %.200s", target, st, h->err, h->body);
        if (h->body_len != want_len)
            bench_die("GET %s: %zu bytes, %zu expected", target, h->body_len, want_len);
        s_lat_push(n++, (double)(bench_now_ns() - a) / 1e3);
    }
    s->rate = (double)n / s_secs(t0);
    lock_cpu_end(cpu, n, s);
    qsort(g_lat, n, sizeof *g_lat, bench_cmp_double);
    s->p50 = bench_pct_sorted(g_lat, n, 0.5);
    s->p99 = bench_pct_sorted(g_lat, n, 0.99);
}

static void lock_bus(cairn_client_t *c, const msgpack_sbuffer *body, double secs,
                     lock_sample_t *s)
{
    size_t n = 0;
    uint64_t cpu[2];
    lock_cpu_begin(cpu);
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    for (;;) {
        uint64_t a = bench_now_ns();
        if (n >= 10 && a >= end) break;
        cairn_reply_t *r = s_call(c, "tracking", "get_run", body);
        cairn_reply_destroy(&r);
        s_lat_push(n++, (double)(bench_now_ns() - a) / 1e3);
    }
    s->rate = (double)n / s_secs(t0);
    lock_cpu_end(cpu, n, s);
    qsort(g_lat, n, sizeof *g_lat, bench_cmp_double);
    s->p50 = bench_pct_sorted(g_lat, n, 0.5);
    s->p99 = bench_pct_sorted(g_lat, n, 0.99);
}

typedef struct get_result {
    size_t bytes;
    lock_sample_t gw, peer, bus;
    double ratio, ratio_cov, bus_ratio;
} get_result_t;

static void case_get(const opts_t *o, cairn_client_t *c, const char *exp,
                     get_result_t *res)
{
    /* A run as a training job leaves one: 20 metrics, 10 params. */
    char *run = s_new_run(c, exp, "get");
    cairn_batch_t *b = cairn_batch_new(run);
    cairn_err_t err = {0};
    char key[16], val[16];
    for (int m = 0; m < BENCH_POP_METRICS; m++) {
        snprintf(key, sizeof key, "m%d", m);
        cairn_batch_metric(b, key, ingest_value(m, 7), 7, TS0 + 7);
    }
    for (int p = 0; p < BENCH_POP_PARAMS; p++) {
        snprintf(key, sizeof key, "p%d", p);
        snprintf(val, sizeof val, "v%d", p);
        cairn_batch_param(b, key, val);
    }
    if (!b || cairn_batch_send(c, b, &err) != 0)
        bench_die("log_batch: %d %s", err.st, err.msg);
    cairn_batch_destroy(&b);
    char target[256];
    snprintf(target, sizeof target, "/api/2.0/mlflow/runs/get?run_id=%s", run);
    hc_t gw = {.fd = -1}, peer = {.fd = -1};
    if (hc_connect(&gw, g_port) != 0) bench_die("%s", gw.err);
    int st = hc_request(&gw, "GET", target, NULL, 0, -1);
    if (st != 200 || !strstr(gw.body, run) || !strstr(gw.body, "\"m19\""))
        bench_die("GET %s: %d %s %.300s", target, st, gw.err, gw.body);
    /* The peer answers the very bytes the gateway answered. */
    res->bytes = gw.body_len;
    if (!(g_peer_body = strdup(gw.body))) bench_die("out of memory");
    g_peer_len = gw.body_len;
    if (hc_connect(&peer, peer_start()) != 0) bench_die("%s", peer.err);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "run_id", run);
    lock_sample_t gs[MAX_ROUNDS], ps[MAX_ROUNDS], bs[MAX_ROUNDS], warm;
    double ratio[MAX_ROUNDS], bratio[MAX_ROUNDS];
    double warm_s = o->base.seconds / 4;
    lock_http(&gw, target, g_peer_len, warm_s, &warm);
    lock_http(&peer, "/api/2.0/mlflow/runs/get", g_peer_len, warm_s, &warm);
    lock_bus(c, &sb, warm_s, &warm);
    for (int r = 0; r < o->base.rounds; r++) {
        if (r % 2 == 0) {
            lock_http(&gw, target, g_peer_len, o->base.seconds, &gs[r]);
            lock_http(&peer, target, g_peer_len, o->base.seconds, &ps[r]);
            lock_bus(c, &sb, o->base.seconds, &bs[r]);
        } else {
            lock_bus(c, &sb, o->base.seconds, &bs[r]);
            lock_http(&peer, target, g_peer_len, o->base.seconds, &ps[r]);
            lock_http(&gw, target, g_peer_len, o->base.seconds, &gs[r]);
        }
        ratio[r] = gs[r].rate / ps[r].rate;
        bratio[r] = gs[r].rate / bs[r].rate;
        bench_out(
            "   round %d: gateway %.0f/s, libmicrohttpd %.0f/s (%.3fx); bus get_run "
            "%.0f/s\n",
            r + 1, gs[r].rate, ps[r].rate, ratio[r], bs[r].rate);
    }
#define MED(v, f) BENCH_MEDIAN_FIELD(v, lock_sample_t, f, o->base.rounds)
    res->gw = (lock_sample_t){MED(gs, rate), MED(gs, p50), MED(gs, p99),
                              MED(gs, gw_cpu), MED(gs, srv_cpu)};
    res->peer = (lock_sample_t){MED(ps, rate), MED(ps, p50), MED(ps, p99), NAN, NAN};
    res->bus = (lock_sample_t){MED(bs, rate), MED(bs, p50), MED(bs, p99), NAN,
                               MED(bs, srv_cpu)};
#undef MED
    res->ratio = bench_median(ratio, o->base.rounds);
    res->ratio_cov = bench_cov(ratio, o->base.rounds);
    res->bus_ratio = bench_median(bratio, o->base.rounds);
    msgpack_sbuffer_destroy(&sb);
    hc_free(&gw);
    hc_free(&peer);
    MHD_stop_daemon(g_peer);
    g_peer = NULL;
    free(g_peer_body);
    g_peer_body = NULL;
    free(run);
}

/* ---- case 3: search ---------------------------------------------------------------
 */

typedef struct squery {
    const char *key, *label;
    const char *filter, *order_by; /* NULL: none */
    int max_results;
} squery_t;

static const squery_t g_queries[] = {
    {"filter100", "filter " FILTER ", 100 results", FILTER, NULL, 100},
    {"top100", "(info) top 100 by metrics.m1 DESC, no filter", NULL, "metrics.m1 DESC",
     100},
};
#define NQUERIES ((int)(sizeof g_queries / sizeof g_queries[0]))

/* The runs of a runs/search reply (-1: not an array); the first one's id
 * into first. */
static int s_http_runs(const hc_t *h, char *first, size_t cap)
{
    json_error_t jerr;
    json_t *j = json_loadb(h->body, h->body_len, 0, &jerr);
    json_t *runs = json_object_get(j, "runs");
    int n = json_is_array(runs) ? (int)json_array_size(runs) : runs ? -1 : 0;
    const char *id = json_string_value(
        json_object_get(json_object_get(json_array_get(runs, 0), "info"), "run_id"));
    snprintf(first, cap, "%s", id ? id : "");
    json_decref(j);
    if (!j) bench_die("runs/search: not JSON: %s", jerr.text);
    return n;
}

/* The same of a search_runs reply. */
static int s_bus_runs(cairn_reply_t *r, char *first, size_t cap)
{
    const msgpack_object *runs = cairn_obj_get(cairn_reply_object(r), "runs");
    int n = runs && runs->type == MSGPACK_OBJECT_ARRAY ? (int)runs->via.array.size : 0;
    const msgpack_object *id =
        n ? cairn_obj_get(cairn_obj_get(&runs->via.array.ptr[0], "info"), "run_id")
          : NULL;
    snprintf(first, cap, "%.*s",
             id && id->type == MSGPACK_OBJECT_STR ? (int)id->via.str.size : 0,
             id && id->type == MSGPACK_OBJECT_STR ? id->via.str.ptr : "");
    return n;
}

typedef struct search_result {
    double populate_s, settle_s;
    int nruns[NQUERIES];
    double http_p50[NQUERIES], http_p99[NQUERIES], bus_p50[NQUERIES], bus_p99[NQUERIES];
    double bytes[NQUERIES]; /* the HTTP reply's */
} search_result_t;

static void case_search(const opts_t *o, cairn_client_t *c, search_result_t *res)
{
    cairn_err_t err = {0};
    char *exp = NULL;
    if (cairn_create_experiment(c, "bench-gateway-search", &exp, &err) != 0)
        bench_die("create_experiment: %d %s", err.st, err.msg);
    uint64_t rng = 0x9e3779b97f4a7c15u;
    res->populate_s = bench_populate(c, exp, o->runs, BENCH_POP_WINDOW, g_cairnd, &rng);
    /* The search figures are of a settled store: its folds and checkpoints
     * behind the populate's writes would land on whichever side's query
     * is in flight (bench_tracking waits for the same). */
    res->settle_s = bench_wait_idle(g_cairnd, 120);
    if (res->settle_s < 0)
        bench_die("cairnd stayed busy for 2 minutes after the populate");
    hc_t h = {.fd = -1};
    if (hc_connect(&h, g_port) != 0) bench_die("%s", h.err);
    double *hl = calloc((size_t)o->queries, sizeof *hl);
    double *bl = calloc((size_t)o->queries, sizeof *bl);
    if (!hl || !bl) bench_die("out of memory");
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int qi = 0; qi < NQUERIES; qi++) {
        const squery_t *q = &g_queries[qi];
        /* The same query both ways: MLflow's SearchRuns body, and search_runs'. */
        json_t *jb = json_pack("{s:[s], s:i}", "experiment_ids", exp, "max_results",
                               q->max_results);
        if (q->filter) json_object_set_new(jb, "filter", json_string(q->filter));
        if (q->order_by)
            json_object_set_new(jb, "order_by", json_pack("[s]", q->order_by));
        char *body = json_dumps(jb, JSON_COMPACT);
        json_decref(jb);
        if (!body) bench_die("out of memory");
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 2 + (q->filter ? 1 : 0) + (q->order_by ? 1 : 0));
        cairn_pack_cstr(&pk, "experiment_ids");
        msgpack_pack_array(&pk, 1);
        cairn_pack_cstr(&pk, exp);
        cairn_pack_cstr(&pk, "max_results");
        msgpack_pack_uint32(&pk, (uint32_t)q->max_results);
        if (q->filter) cairn_pack_kv_str(&pk, "filter", q->filter);
        if (q->order_by) {
            cairn_pack_cstr(&pk, "order_by");
            msgpack_pack_array(&pk, 1);
            cairn_pack_cstr(&pk, q->order_by);
        }
        char hfirst[64], bfirst[64];
        for (int i = -2; i < o->queries; i++) { /* two warm-ups */
            bool http_first = i % 2 == 0;
            double ht = 0, bt = 0;
            for (int side = 0; side < 2; side++) {
                uint64_t t0 = bench_now_ns();
                if ((side == 0) == http_first) {
                    int st = hc_request(&h, "POST", "/api/2.0/mlflow/runs/search", body,
                                        strlen(body), -1);
                    ht = (double)(bench_now_ns() - t0) / 1e6;
                    if (st != 200)
                        bench_die("runs/search: %d %s %.200s", st, h.err, h.body);
                } else {
                    cairn_reply_t *r = s_call(c, "tracking", "search_runs", &sb);
                    bt = (double)(bench_now_ns() - t0) / 1e6;
                    res->nruns[qi] = s_bus_runs(r, bfirst, sizeof bfirst);
                    cairn_reply_destroy(&r);
                }
            }
            int hn = s_http_runs(&h, hfirst, sizeof hfirst);
            if (hn != res->nruns[qi] || strcmp(hfirst, bfirst) != 0)
                bench_die("%s: HTTP answered %d runs (first %s), the bus %d (first %s)",
                          q->key, hn, hfirst, res->nruns[qi], bfirst);
            if (i < 0) continue;
            hl[i] = ht;
            bl[i] = bt;
        }
        res->bytes[qi] = (double)h.body_len;
        qsort(hl, (size_t)o->queries, sizeof *hl, bench_cmp_double);
        qsort(bl, (size_t)o->queries, sizeof *bl, bench_cmp_double);
        res->http_p50[qi] = bench_pct_sorted(hl, (size_t)o->queries, 0.5);
        res->http_p99[qi] = bench_pct_sorted(hl, (size_t)o->queries, 0.99);
        res->bus_p50[qi] = bench_pct_sorted(bl, (size_t)o->queries, 0.5);
        res->bus_p99[qi] = bench_pct_sorted(bl, (size_t)o->queries, 0.99);
        free(body);
    }
    msgpack_sbuffer_destroy(&sb);
    free(hl);
    free(bl);
    hc_free(&h);
    free(exp);
}

/* ---- case 4: the artifact proxy ---------------------------------------------------
 */

static void s_stamp(const char *path, uint64_t v)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, &v, sizeof v, 0) != (ssize_t)sizeof v || close(fd) != 0)
        bench_die("cannot stamp %s: %s", path, strerror(errno));
}

/* The artifact's size and first 8 bytes, from the store (get_artifact). */
static void s_check_stored(cairn_client_t *c, const char *run, const char *path,
                           uint64_t size, uint64_t stamp)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "run_id", run);
    cairn_pack_kv_str(&pk, "path", path);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, 0);
    cairn_pack_cstr(&pk, "length");
    msgpack_pack_uint64(&pk, 8);
    cairn_reply_t *r = s_call(c, CAIRN_ARTIFACTS_SVC, "get_artifact", &sb);
    const msgpack_object *o = cairn_reply_object(r);
    const msgpack_object *sz = cairn_obj_get(o, "size"), *d = cairn_obj_get(o, "data");
    uint64_t first = 0;
    if (d && d->type == MSGPACK_OBJECT_BIN && d->via.bin.size == 8)
        memcpy(&first, d->via.bin.ptr, 8);
    if (!sz || sz->type != MSGPACK_OBJECT_POSITIVE_INTEGER || sz->via.u64 != size ||
        first != stamp)
        bench_die("the uploaded %s is not the file sent", path);
    cairn_reply_destroy(&r);
    msgpack_sbuffer_destroy(&sb);
}

static void s_delete(cairn_client_t *c, const char *run, const char *path)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "run_id", run);
    cairn_pack_kv_str(&pk, "path", path);
    cairn_reply_t *r = s_call(c, CAIRN_ARTIFACTS_SVC, "delete_artifact", &sb);
    cairn_reply_destroy(&r);
    msgpack_sbuffer_destroy(&sb);
}

/* a and b hold the same bytes past their first 8 (the stamp); a's stamp is
 * want. */
static void s_same_file(const char *a, const char *b, uint64_t want)
{
    enum { BUF = 4 << 20 };
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
    char *x = malloc(BUF), *y = malloc(BUF);
    if (fa < 0 || fb < 0 || !x || !y) bench_die("cannot compare %s and %s", a, b);
    bool same = true, first = true;
    for (;;) {
        ssize_t n = read(fa, x, BUF),
                m = n > 0 ? read(fb, y, (size_t)n) : read(fb, y, 1);
        if (n != m || n < 0) {
            same = false;
            break;
        }
        if (n == 0) break;
        if (first) {
            uint64_t s;
            memcpy(&s, x, 8);
            same = n >= 8 && s == want;
            memcpy(x, y, 8);
            first = false;
        }
        if (!same || memcmp(x, y, (size_t)n) != 0) {
            same = false;
            break;
        }
    }
    close(fa);
    close(fb);
    free(x);
    free(y);
    if (!same) bench_die("the download %s differs from the file uploaded", a);
}

static double s_upload(hc_t *h, const char *exp, const char *run, const char *path,
                       const char *src, uint64_t size)
{
    char target[512];
    snprintf(target, sizeof target,
             "/api/2.0/mlflow-artifacts/artifacts/%s/%s/artifacts/%s", exp, run, path);
    uint64_t t0 = bench_now_ns();
    int st = hc_put_file(h, target, src, size);
    double s = s_secs(t0);
    if (st != 200) bench_die("PUT %s: %d %s %.200s", target, st, h->err, h->body);
    return s;
}

static double s_download(hc_t *h, const char *exp, const char *run, const char *path,
                         const char *dst, uint64_t size)
{
    char target[512];
    snprintf(target, sizeof target,
             "/api/2.0/mlflow-artifacts/artifacts/%s/%s/artifacts/%s", exp, run, path);
    unlink(dst);
    uint64_t t0 = bench_now_ns();
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) bench_die("cannot create %s: %s", dst, strerror(errno));
    int st = hc_request(h, "GET", target, NULL, 0, fd);
    if (st == 200 && fsync(fd) != 0) bench_die("fsync %s: %s", dst, strerror(errno));
    close(fd);
    double s = s_secs(t0);
    struct stat sb;
    if (st != 200 || stat(dst, &sb) != 0 || (uint64_t)sb.st_size != size)
        bench_die("GET %s: %d %s (%lld bytes of %llu)", target, st, h->err,
                  (long long)(st == 200 ? sb.st_size : -1), (unsigned long long)size);
    return s;
}

/* (info) The same transfers through the C SDK over the bus, as
 * bench_artifacts measures them: what the store and the bus give. */
static double s_sdk_upload(cairn_client_t *c, const char *run, const char *src,
                           const char *path, uint64_t size)
{
    cairn_err_t err = {0};
    cairn_artifact_info_t info;
    uint64_t t0 = bench_now_ns();
    if (cairn_log_artifact_ex(c, run, src, path, NULL, NULL, &info, &err) != 0)
        bench_die("SDK upload of %s: %d %s", path, err.st, err.msg);
    double s = s_secs(t0);
    if (info.size != size) bench_die("SDK upload of %s: a wrong size", path);
    free(info.path);
    return s;
}

static double s_sdk_download(cairn_client_t *c, const char *run, const char *path,
                             const char *dst, uint64_t size)
{
    cairn_err_t err = {0};
    cairn_artifact_info_t info;
    unlink(dst);
    uint64_t t0 = bench_now_ns();
    if (cairn_download_artifact_ex(c, run, path, dst, NULL, NULL, &info, &err) != 0)
        bench_die("SDK download of %s: %d %s", path, err.st, err.msg);
    double s = s_secs(t0);
    if (info.size != size) bench_die("SDK download of %s: a wrong size", path);
    free(info.path);
    unlink(dst);
    return s;
}

typedef struct art_sample {
    double cp_up, up, cp_down, down, sdk_up, sdk_down;
    double gw_up_cpu, gw_down_cpu; /* the gateway's CPU seconds */
} art_sample_t;

typedef struct art_result {
    double up, up_cov, down, down_cov;
    double t_cp, t_up, t_down, gw_up_cpu, gw_down_cpu, sdk_up, sdk_down;
    double rss0, hwm, growth; /* MiB */
    bool hwm_reset;
} art_result_t;

static void case_artifacts(const opts_t *o, cairn_client_t *c, const char *exp,
                           art_result_t *res)
{
    const char *dir = bench_kernel_dir(g_kernel);
    char *run = s_new_run(c, exp, "artifacts");
    char src[PATH_MAX], copy[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof src, "%s/src.bin", dir);
    snprintf(copy, sizeof copy, "%s/copy.bin", dir);
    snprintf(dst, sizeof dst, "%s/download.bin", dir);
    bench_make_file(src, o->size, 0, true);
    hc_t h = {.fd = -1};
    if (hc_connect(&h, g_port) != 0) bench_die("%s", h.err);
    /* The gateway's RSS before, its peak reset (clear_refs 5), then the
     * download's artifact (stamped apart from every round's upload). */
    res->rss0 = bench_proc_status_mib(g_gw, "VmRSS");
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)g_gw);
    FILE *f = fopen(path, "w");
    res->hwm_reset = f && fputs("5", f) >= 0;
    if (f && fclose(f) != 0) res->hwm_reset = false;
    s_stamp(src, UINT64_MAX);
    s_upload(&h, exp, run, "download/src.bin", src, o->size);
    s_check_stored(c, run, "download/src.bin", o->size, UINT64_MAX);
    art_sample_t smp[MAX_ROUNDS];
    double r_up[MAX_ROUNDS], r_down[MAX_ROUNDS];
    for (int r = 0; r < o->base.rounds; r++) {
        art_sample_t *s = &smp[r];
        snprintf(path, sizeof path, "up/round%d.bin", r);
        s_stamp(src, (uint64_t)r);
        s->cp_up = bench_cp_fsync(src, copy);
        uint64_t cpu0 = s_cpu_ns(g_gw);
        s->up = s_upload(&h, exp, run, path, src, o->size);
        s->gw_up_cpu = (double)(s_cpu_ns(g_gw) - cpu0) / 1e9;
        s_check_stored(c, run, path, o->size, (uint64_t)r);
        s_delete(c, run, path);
        s->cp_down = bench_cp_fsync(src, copy);
        cpu0 = s_cpu_ns(g_gw);
        s->down = s_download(&h, exp, run, "download/src.bin", dst, o->size);
        s->gw_down_cpu = (double)(s_cpu_ns(g_gw) - cpu0) / 1e9;
        s_same_file(dst, src, UINT64_MAX);
        unlink(dst);
        snprintf(path, sizeof path, "sdk/round%d.bin", r);
        s->sdk_up = s_sdk_upload(c, run, src, path, o->size);
        s_delete(c, run, path);
        s->sdk_down = s_sdk_download(c, run, "download/src.bin", dst, o->size);
        r_up[r] = s->cp_up / s->up;
        r_down[r] = s->cp_down / s->down;
        bench_out(
            "   round %d: cp %.3f s, PUT %.3f s (%.2fx); cp %.3f s, GET %.3f s "
            "(%.2fx); SDK %.3f s up, %.3f s down; gateway HWM %.1f MiB\n",
            r + 1, s->cp_up, s->up, r_up[r], s->cp_down, s->down, r_down[r], s->sdk_up,
            s->sdk_down, bench_proc_status_mib(g_gw, "VmHWM"));
    }
    res->up = bench_median(r_up, o->base.rounds);
    res->up_cov = bench_cov(r_up, o->base.rounds);
    res->down = bench_median(r_down, o->base.rounds);
    res->down_cov = bench_cov(r_down, o->base.rounds);
#define MED(f) BENCH_MEDIAN_FIELD(smp, art_sample_t, f, o->base.rounds)
    res->t_cp = MED(cp_up);
    res->t_up = MED(up);
    res->t_down = MED(down);
    res->gw_up_cpu = MED(gw_up_cpu);
    res->gw_down_cpu = MED(gw_down_cpu);
    res->sdk_up = MED(sdk_up);
    res->sdk_down = MED(sdk_down);
#undef MED
    res->hwm = bench_proc_status_mib(g_gw, "VmHWM");
    res->growth = res->hwm - res->rss0;
    hc_free(&h);
    unlink(src);
    unlink(copy);
    free(run);
}

/* ---- main -------------------------------------------------------------------------
 */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench_gateway [--quick] [--json] [--rounds N] [--seconds S] [--only "
        "LIST]\n"
        "                     [--points N] [--runs N] [--queries N] [--size BYTES]\n"
        "                     [--gateway-mode process|inproc] [--cairnd PATH] "
        "[--keep]\n"
        "                     [--strict]\n"
        "  --quick      a smoke run (CI): small sizes, 1 round\n"
        "  --json       print one JSON object instead of the table\n"
        "  --rounds N   rounds of each case's pair (default 5; quick 1)\n"
        "  --seconds S  per lock-step get sample (default 2; quick 0.2)\n"
        "  --only LIST  some of: ingest,get,search,artifacts\n"
        "  --points N   log-batch points per ingest sample, each side (default "
        "400000)\n"
        "  --runs N     runs populated for search (default 100000; quick 300)\n"
        "  --queries N  searches per query kind, each side (default 200; quick 10)\n"
        "  --size B     the artifact's size, with an optional K, M or G (default 1G;\n"
        "               quick 16M)\n"
        "  --gateway-mode M  process (default: its RSS and CPU its own) or inproc\n"
        "  --cairnd P   the cairnd to start (default: beside this program)\n"
        "  --keep       keep the temp dir (conf, cairnd.log, state) for a look\n"
        "  --strict     exit 3 when a verdict is MISS\n"
        "The temp dir is made under $CAIRN_BENCH_DIR, else /var/tmp.\n");
}

int main(int argc, char **argv)
{
    opts_t o = {.base = {.rounds = 5, .seconds = 2},
                .points = 400000,
                .runs = 100000,
                .queries = 200,
                .size = 1ull << 30,
                .mode = "process"};
    bool points_set = false, runs_set = false, queries_set = false, size_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (bench_opts_take(&o.base, argc, argv, &i))
            continue;
        else if (!strcmp(a, "--keep"))
            o.keep = true;
        else if (!strcmp(a, "--points") && more)
            o.points = atol(argv[++i]), points_set = true;
        else if (!strcmp(a, "--runs") && more)
            o.runs = atoi(argv[++i]), runs_set = true;
        else if (!strcmp(a, "--queries") && more)
            o.queries = atoi(argv[++i]), queries_set = true;
        else if (!strcmp(a, "--size") && more)
            o.size = bench_parse_size(argv[++i]), size_set = true;
        else if (!strcmp(a, "--gateway-mode") && more)
            o.mode = argv[++i];
        else
            bench_arg_rest("bench_gateway", a, usage);
    }
    if (o.base.quick) {
        if (!o.base.rounds_set) o.base.rounds = 1;
        if (!o.base.seconds_set) o.base.seconds = 0.2;
        if (!points_set) o.points = BATCH_POINTS * NCONN * 2;
        if (!runs_set) o.runs = 300;
        if (!queries_set) o.queries = 10;
        if (!size_set) o.size = 16ull << 20;
    }
    if (o.base.rounds < 1 || o.base.rounds > MAX_ROUNDS || o.size < 8 ||
        o.points < BATCH_POINTS * NCONN || o.runs < 1 || o.queries < 1 ||
        o.queries > 1000000 || !(o.base.seconds > 0) ||
        (strcmp(o.mode, "process") && strcmp(o.mode, "inproc"))) {
        fprintf(stderr,
                "bench_gateway: --rounds 1..%d, --seconds > 0, --points >= %d, --runs "
                ">= 1, "
                "--queries 1..1000000, --size 8..64G, --gateway-mode process|inproc\n",
                MAX_ROUNDS, BATCH_POINTS * NCONN);
        return 2;
    }
    g_keep = o.keep;
    bench_text_set(!o.base.json);
    bench_init("bench_gateway", cleanup);
    for (int k = 0; k < NKEYS; k++) snprintf(g_keys[k], sizeof g_keys[k], "m%02d", k);

    cairn_err_t err = {0};
    const char *base = getenv("CAIRN_BENCH_DIR");
    if (!base || !*base) base = "/var/tmp";
    if (strlen(base) > 200) bench_die("$CAIRN_BENCH_DIR is too long");
    char tmp_prefix[PATH_MAX];
    snprintf(tmp_prefix, sizeof tmp_prefix, "%s/cairn-bench-gateway-", base);
    if (!(g_kernel = bench_kernel_new(o.base.cairnd, tmp_prefix, &err)))
        bench_die("%s", err.msg);
    if (g_keep) bench_kernel_keep(g_kernel);
    char services[1024];
    snprintf(services, sizeof services,
             "  tracking:\n"
             "    plugin: storage\n"
             "    mode: inproc\n"
             "  artifacts:\n"
             "    plugin: storage\n"
             "    mode: inproc\n"
             "  gateway:\n"
             "    plugin: gateway\n"
             "    mode: %s\n"
             "    settings:\n"
             "      listen: 127.0.0.1:0\n"
             "      endpoint: " BENCH_ENDPOINT
             "\n"
             "      threads: %d\n"
             "      max_body: 64MiB\n"
             "      ttl_ms: %d\n",
             o.mode, GW_THREADS, IO_TIMEOUT_S * 1000);
    uint64_t t_start = bench_now_ns();
    if (bench_kernel_start(g_kernel, services, -1, &err) != 0) bench_die("%s", err.msg);
    g_cairnd = bench_kernel_pid(g_kernel);
    cairn_client_t *c = bench_kernel_wait(g_kernel, 3, &err);
    if (!c)
        bench_die("%s%s", err.msg,
                  strcmp(err.code, "cairnd_exited")
                      ? ""
                      : "; are cairn_storage.so and cairn_gateway.so built?");
    cairn_client_set_ttl(c, IO_TIMEOUT_S * 1000);
    s_find_gateway(c, !strcmp(o.mode, "process"));
    char *exp = NULL;
    if (cairn_create_experiment(c, "bench-gateway", &exp, &err) != 0)
        bench_die("create_experiment: %d %s", err.st, err.msg);

    bench_host_t host;
    bench_host(&host);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_gateway: the HTTP gateway (MLflow's REST API) against its peers, "
        "same run\n");
    bench_out("host: %ld CPUs, Linux %s, %s\n", host.ncpu, host.kernel, host.date);
    bench_out(
        "cairnd pid %d; gateway %s (pid %d), port %u, %d threads; %d round(s)%s\n",
        (int)g_cairnd, o.mode, (int)g_gw, (unsigned)g_port, GW_THREADS, o.base.rounds,
        o.base.quick ? " (--quick: smoke only)" : "");
    bench_out("load average at start %s\n", load);

    if (bench_in_list(o.base.only, "ingest")) {
        ing_result_t ir;
        bench_out(
            "\n1. ingest: POST runs/log-batch, %d metrics a request, %d keep-alive "
            "connections, %ld points per sample\n",
            BATCH_POINTS, NCONN, o.points);
        case_ingest(&o, c, exp, &ir);
        bench_out("   %-52s %10.0f points/s (CoV %.1f%%)\n",
                  "HTTP log-batch (JSON numbers)", ir.http_pps, ir.ratio_cov * 100);
        bench_out("   %-52s %10.0f points/s\n", "bus log_batch, 8 in flight (the peer)",
                  ir.bus_pps);
        bench_out("   %-52s %10.0f points/s (%.3fx the bus)\n",
                  "(info) HTTP log-batch, proto3 strings", ir.proto3_pps,
                  ir.proto3_ratio);
        bench_out(
            "   CPU per point: HTTP: gateway %.0f ns, cairnd %.0f ns, client %.0f ns; "
            "bus: cairnd %.0f ns, client %.0f ns\n",
            ir.gw_ns, ir.http_srv_ns, ir.http_cli_ns, ir.bus_srv_ns, ir.bus_cli_ns);
        bench_fig("ingest_http_pps", ir.http_pps);
        bench_fig("ingest_bus_pps", ir.bus_pps);
        bench_fig("ingest_ratio", ir.ratio);
        bench_fig("ingest_proto3_pps", ir.proto3_pps);
        bench_fig("ingest_gateway_cpu_ns_per_point", ir.gw_ns);
        bench_fig("ingest_http_cairnd_cpu_ns_per_point", ir.http_srv_ns);
        bench_fig("ingest_bus_cairnd_cpu_ns_per_point", ir.bus_srv_ns);
        bench_verdict("1 log-batch >= 500,000 points/s", ir.http_pps >= 500000,
                      ">= 500000", "%.0f", ir.http_pps);
        bench_verdict("1 log-batch >= 0.15x the bus", ir.ratio >= 0.15, ">= 0.15x",
                      "%.3fx", ir.ratio);
    }
    if (bench_in_list(o.base.only, "get")) {
        get_result_t gr;
        bench_out(
            "\n2. lock-step GET runs/get on one keep-alive connection, %.1f s a "
            "sample\n",
            o.base.seconds);
        case_get(&o, c, exp, &gr);
        bench_out("   %-52s %9.0f/s  p50 %.1f µs, p99 %.1f µs\n",
                  "gateway GET runs/get", gr.gw.rate, gr.gw.p50, gr.gw.p99);
        bench_out("   %-52s %9.0f/s  p50 %.1f µs, p99 %.1f µs\n",
                  "libmicrohttpd, the same bytes (the peer)", gr.peer.rate, gr.peer.p50,
                  gr.peer.p99);
        bench_out("   %-52s %9.0f/s  p50 %.1f µs, p99 %.1f µs\n",
                  "(info) bus get_run, lock-step", gr.bus.rate, gr.bus.p50, gr.bus.p99);
        bench_out(
            "   CPU per request: gateway GET: gateway %.0f µs, cairnd %.0f µs; bus "
            "get_run: cairnd %.0f µs\n",
            gr.gw.gw_cpu, gr.gw.srv_cpu, gr.bus.srv_cpu);
        bench_fig("get_gateway_cpu_us", gr.gw.gw_cpu);
        bench_out(
            "   reply %zu bytes; gateway %.3fx the peer (CoV %.1f%%), %.3fx the bus\n",
            gr.bytes, gr.ratio, gr.ratio_cov * 100, gr.bus_ratio);
        bench_fig("get_gateway_per_s", gr.gw.rate);
        bench_fig("get_peer_per_s", gr.peer.rate);
        bench_fig("get_bus_per_s", gr.bus.rate);
        bench_fig("get_ratio", gr.ratio);
        bench_fig("get_gateway_p50_us", gr.gw.p50);
        bench_fig("get_peer_p50_us", gr.peer.p50);
        bench_fig("get_bus_p50_us", gr.bus.p50);
        bench_verdict("2 GET runs/get >= 0.5x libmicrohttpd", gr.ratio >= 0.5,
                      ">= 0.50x", "%.3fx", gr.ratio);
    }
    if (bench_in_list(o.base.only, "search")) {
        search_result_t sr;
        bench_out(
            "\n3. search: %d runs x %d metrics x %d params populated over the bus\n",
            o.runs, BENCH_POP_METRICS, BENCH_POP_PARAMS);
        case_search(&o, c, &sr);
        bench_out(
            "   populated in %.1f s (%.0f runs/s), cairnd idle %.1f s later; %d "
            "queries "
            "each, interleaved\n",
            sr.populate_s, o.runs / sr.populate_s, sr.settle_s, o.queries);
        bench_out("   %-48s %5s %9s %9s %9s %9s %7s\n", "query", "runs", "HTTP p50",
                  "HTTP p99", "bus p50", "bus p99", "p99 x");
        for (int q = 0; q < NQUERIES; q++) {
            bench_out("   %-48s %5d %6.2f ms %6.2f ms %6.2f ms %6.2f ms %6.2fx\n",
                      g_queries[q].label, sr.nruns[q], sr.http_p50[q], sr.http_p99[q],
                      sr.bus_p50[q], sr.bus_p99[q], sr.http_p99[q] / sr.bus_p99[q]);
            bench_figf(sr.http_p99[q], "search_%s_http_p99_ms", g_queries[q].key);
            bench_figf(sr.bus_p99[q], "search_%s_bus_p99_ms", g_queries[q].key);
            bench_figf(sr.http_p99[q] / sr.bus_p99[q], "search_%s_p99_ratio",
                       g_queries[q].key);
        }
        bench_out("   HTTP replies: %.0f and %.0f bytes\n", sr.bytes[0], sr.bytes[1]);
        bench_fig("search_populate_s", sr.populate_s);
        double r = sr.http_p99[0] / sr.bus_p99[0];
        bench_verdict("3 runs/search p99 <= 1.3x the bus", r <= 1.3, "<= 1.30x",
                      "%.2fx", r);
    }
    if (bench_in_list(o.base.only, "artifacts")) {
        art_result_t ar;
        bench_out(
            "\n4. artifact proxy: PUT and GET of %.1f MiB vs cp + fsync, same "
            "filesystem (%s)\n",
            (double)o.size / (1 << 20), bench_kernel_dir(g_kernel));
        case_artifacts(&o, c, exp, &ar);
        double mib = (double)o.size / (1 << 20);
        bench_out(
            "   medians: cp %.3f s (%.0f MiB/s), PUT %.3f s (%.0f MiB/s), GET %.3f s "
            "(%.0f MiB/s)\n",
            ar.t_cp, mib / ar.t_cp, ar.t_up, mib / ar.t_up, ar.t_down, mib / ar.t_down);
        bench_out("   upload %.2fx cp (CoV %.1f%%), download %.2fx cp (CoV %.1f%%)\n",
                  ar.up, ar.up_cov * 100, ar.down, ar.down_cov * 100);
        bench_out("   gateway CPU: %.2f s per PUT, %.2f s per GET\n", ar.gw_up_cpu,
                  ar.gw_down_cpu);
        bench_out(
            "   (info) the C SDK over the bus: upload %.3f s (%.2fx cp), "
            "download %.3f s (%.2fx cp)\n",
            ar.sdk_up, ar.t_cp / ar.sdk_up, ar.sdk_down, ar.t_cp / ar.sdk_down);
        bench_fig("artifacts_sdk_upload_s", ar.sdk_up);
        bench_fig("artifacts_sdk_download_s", ar.sdk_down);
        bench_out("   %s RSS: %.1f MiB before, peak %.1f MiB (%s): growth %.1f MiB\n",
                  g_gw == g_cairnd ? "cairnd (the gateway inproc)" : "gateway", ar.rss0,
                  ar.hwm,
                  ar.hwm_reset ? "reset at the case's start" : "since its start",
                  ar.growth);
        bench_fig("artifacts_upload_vs_cp", ar.up);
        bench_fig("artifacts_download_vs_cp", ar.down);
        bench_fig("artifacts_upload_s", ar.t_up);
        bench_fig("artifacts_download_s", ar.t_down);
        bench_fig("artifacts_cp_s", ar.t_cp);
        bench_fig("artifacts_gateway_rss_growth_mib", ar.growth);
        bench_verdict("4 PUT >= 0.5x cp", ar.up >= 0.5, ">= 0.50x", "%.2fx", ar.up);
        bench_verdict("4 GET >= 0.5x cp", ar.down >= 0.5, ">= 0.50x", "%.2fx", ar.down);
        bench_verdict("4 gateway RSS growth < 64 MiB", ar.growth < 64, "< 64 MiB",
                      "%.1f MiB", ar.growth);
    }
    int misses = bench_misses();
    double total_s = s_secs(t_start);
    bench_loadavg(load, sizeof load);
    if (o.base.json) {
        printf(
            "{\"bench\": \"gateway\", \"date\": \"%s\", \"cpus\": %ld, \"kernel\": "
            "\"%s\", \"quick\": %s, \"rounds\": %d, \"mode\": \"%s\", \"seconds\": "
            "%.1f, \"load_end\": \"%s\", ",
            host.date, host.ncpu, host.kernel, o.base.quick ? "true" : "false",
            o.base.rounds, o.mode, total_s, load);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(40, 12, 10);
        bench_verdicts_line(o.base.quick);
        bench_out("ran %.0f s; load average at the end %s\n", total_s, load);
    }
    fflush(stdout);
    free(exp);
    free(g_lat);
    cairn_client_destroy(&c);
    cleanup(false);
    if (!o.base.json) printf("bench_gateway: done\n");
    return o.base.strict && misses ? 3 : 0;
}
