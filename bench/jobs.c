/* bench_jobs — the jobs service (issue 16) against fork + exec of the same
 * command by this process, measured in the same run.
 *
 *   bench_jobs [--quick] [--json] [--strict] [--rounds N] [--jobs N]
 *              [--cairnd PATH] [--only LIST]
 *
 * Cases (--only):
 *   start   submit-to-running: the time from submit_job to the job's
 *           command running (it writes the wall clock to a file: this
 *           program's --stamp mode), against fork + exec of the same
 *           command (/bin/sh -c, as the shim runs it) to the same stamp;
 *           lock-step, alternating, --rounds x 10 each; p50 and p99.
 *   drain   --jobs trivial jobs (`true`) queued behind as many holders as
 *           the compute has slots, then let go: jobs ended per second until
 *           every one is Completed, against fork + exec + wait of the same
 *           command with as many at once (the slots) by this process.
 *
 * cairnd: tracking (storage, inproc) and jobs (compute, process, as in the
 * embedded default; max_concurrent 4), auth none. Every job is checked
 * Completed. Ratios only: the absolute figures follow the host's load. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "cairn/client.h"
#include "cairn/msg.h"

#define SLOTS 4
#define MAX_ROUNDS 64
#define WAIT_S 120.0

typedef struct opts {
    bench_opts_t base;
    int jobs;
} opts_t;

static bench_kernel_t *g_kernel;
static char g_self[PATH_MAX], g_dir[PATH_MAX];

static void s_cleanup(bool failed)
{
    if (failed && g_kernel) bench_kernel_print_log(g_kernel, stderr);
    bench_kernel_destroy(&g_kernel);
}

static uint64_t s_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --stamp FILE: the wall clock now, in ns, into FILE (written beside and
 * renamed, so that a reader never sees half of it). */
static int s_stamp(const char *path)
{
    char tmp[PATH_MAX + 8], buf[32];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(buf, sizeof buf, "%llu\n", (unsigned long long)s_wall_ns());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, buf, (size_t)n) != n || close(fd) != 0) return 1;
    return rename(tmp, path) == 0 ? 0 : 1;
}

/* The stamp in path once it is there (waiting at most WAIT_S). */
static uint64_t s_wait_stamp(const char *path)
{
    uint64_t end = bench_now_ns() + (uint64_t)(WAIT_S * 1e9);
    while (bench_now_ns() < end) {
        FILE *f = fopen(path, "r");
        unsigned long long v = 0;
        if (f) {
            int got = fscanf(f, "%llu", &v);
            fclose(f);
            if (got == 1) return v;
        }
        struct timespec ts = {0, 100000}; /* 0.1 ms */
        nanosleep(&ts, NULL);
    }
    bench_die("no stamp in %s after %.0f s", path, WAIT_S);
}

static pid_t s_spawn_sh(const char *cmd)
{
    pid_t pid = fork();
    if (pid < 0) bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void s_reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bench_die("a command failed (%d)", st);
}

/* submit_job {spec: {command}}; the job's name into name. */
static void s_submit(cairn_client_t *c, const char *cmd, char *name, size_t cap)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_cstr(&pk, "spec");
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "command", cmd);
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    if (cairn_client_call(c, "jobs", "submit_job", sb.data, sb.size, 0, &r, &err) != 0)
        bench_die("submit_job: %d %s", err.st, err.msg);
    msgpack_sbuffer_destroy(&sb);
    const msgpack_object *n =
        cairn_obj_get(cairn_obj_get(cairn_reply_object(r), "job"), "name");
    if (!n || n->type != MSGPACK_OBJECT_STR || n->via.str.size >= cap)
        bench_die("submit_job answered no job name");
    snprintf(name, cap, "%.*s", (int)n->via.str.size, n->via.str.ptr);
    cairn_reply_destroy(&r);
}

/* list_computes: running + queued of the local compute. */
static int64_t s_busy(cairn_client_t *c)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    if (cairn_client_call(c, "jobs", "list_computes", NULL, 0, 0, &r, &err) != 0)
        bench_die("list_computes: %s", err.msg);
    const msgpack_object *cs = cairn_obj_get(cairn_reply_object(r), "computes");
    if (!cs || cs->type != MSGPACK_OBJECT_ARRAY || cs->via.array.size < 1)
        bench_die("list_computes answered no computes");
    const msgpack_object *run = cairn_obj_get(&cs->via.array.ptr[0], "running");
    const msgpack_object *q = cairn_obj_get(&cs->via.array.ptr[0], "queued");
    int64_t n = (run ? run->via.i64 : 0) + (q ? q->via.i64 : 0);
    cairn_reply_destroy(&r);
    return n;
}

static void s_wait_idle(cairn_client_t *c)
{
    uint64_t end = bench_now_ns() + (uint64_t)(WAIT_S * 1e9);
    while (s_busy(c) > 0) {
        if (bench_now_ns() > end) bench_die("jobs still running after %.0f s", WAIT_S);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

/* How many jobs ended each way (list_jobs, one status): every one must
 * have Completed. */
static int64_t s_count(cairn_client_t *c, const char *status)
{
    int64_t n = 0;
    char token[32] = "";
    for (;;) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, token[0] ? 3 : 2);
        cairn_pack_kv_str(&pk, "status", status);
        cairn_pack_cstr(&pk, "max_results");
        msgpack_pack_uint32(&pk, 1000);
        if (token[0]) cairn_pack_kv_str(&pk, "page_token", token);
        cairn_reply_t *r = NULL;
        cairn_err_t err = {0};
        if (cairn_client_call(c, "jobs", "list_jobs", sb.data, sb.size, 0, &r, &err) !=
            0)
            bench_die("list_jobs: %s", err.msg);
        msgpack_sbuffer_destroy(&sb);
        const msgpack_object *b = cairn_reply_object(r),
                             *jobs = cairn_obj_get(b, "jobs"),
                             *next = cairn_obj_get(b, "next_page_token");
        n += jobs && jobs->type == MSGPACK_OBJECT_ARRAY ? jobs->via.array.size : 0;
        token[0] = '\0';
        if (next && next->type == MSGPACK_OBJECT_STR &&
            next->via.str.size < sizeof token)
            snprintf(token, sizeof token, "%.*s", (int)next->via.str.size,
                     next->via.str.ptr);
        cairn_reply_destroy(&r);
        if (!token[0]) return n;
    }
}

/* ---- case 1: submit to running ------------------------------------------------- */

typedef struct start_result {
    double cairn_p50, cairn_p99, bare_p50, bare_p99;
} start_result_t;

static void case_start(const opts_t *o, cairn_client_t *c, start_result_t *res)
{
    int n = o->base.rounds * 10;
    double *cl = calloc((size_t)n, sizeof *cl), *bl = calloc((size_t)n, sizeof *bl);
    if (!cl || !bl) bench_die("out of memory");
    char stamp[PATH_MAX + 32], cmd[3 * PATH_MAX], name[128];
    for (int i = -2; i < n; i++) { /* two warm-ups */
        for (int side = 0; side < 2; side++) {
            bool cairn_side = (side == 0) == (i % 2 == 0);
            snprintf(stamp, sizeof stamp, "%s/stamp-%d-%d", g_dir, i + 2, side);
            snprintf(cmd, sizeof cmd, "%s --stamp %s", g_self, stamp);
            uint64_t t0 = s_wall_ns();
            pid_t pid = 0;
            if (cairn_side)
                s_submit(c, cmd, name, sizeof name);
            else
                pid = s_spawn_sh(cmd);
            double ms = (double)(s_wait_stamp(stamp) - t0) / 1e6;
            if (pid) s_reap(pid);
            if (cairn_side) s_wait_idle(c);
            if (i >= 0) (cairn_side ? cl : bl)[i] = ms;
        }
    }
    res->cairn_p50 = bench_pct(cl, (size_t)n, 0.5);
    res->cairn_p99 = bench_pct(cl, (size_t)n, 0.99);
    res->bare_p50 = bench_pct(bl, (size_t)n, 0.5);
    res->bare_p99 = bench_pct(bl, (size_t)n, 0.99);
    free(cl);
    free(bl);
}

/* ---- case 2: drain ----------------------------------------------------------- */

typedef struct drain_result {
    double cairn_rate, bare_rate;
} drain_result_t;

static double s_bare_drain(int jobs)
{
    pid_t run[SLOTS] = {0};
    uint64_t t0 = bench_now_ns();
    for (int started = 0, slot = 0; started < jobs;
         started++, slot = (slot + 1) % SLOTS) {
        if (run[slot]) s_reap(run[slot]);
        run[slot] = s_spawn_sh("true");
    }
    for (int s = 0; s < SLOTS; s++)
        if (run[s]) s_reap(run[s]);
    return jobs / ((double)(bench_now_ns() - t0) / 1e9);
}

static void case_drain(const opts_t *o, cairn_client_t *c, drain_result_t *res)
{
    char gate[PATH_MAX + 16], cmd[PATH_MAX + 64], name[128];
    snprintf(gate, sizeof gate, "%s/gate", g_dir);
    snprintf(cmd, sizeof cmd, "while [ ! -e %s ]; do sleep 0.01; done", gate);
    for (int i = 0; i < SLOTS; i++) s_submit(c, cmd, name, sizeof name);
    int64_t before = s_count(c, "Completed");
    for (int i = 0; i < o->jobs; i++) s_submit(c, "true", name, sizeof name);
    uint64_t t0 = bench_now_ns();
    int fd = open(gate, O_WRONLY | O_CREAT, 0600);
    if (fd < 0 || close(fd) != 0) bench_die("cannot create %s", gate);
    s_wait_idle(c);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    int64_t done = s_count(c, "Completed") - before;
    if (done != o->jobs + SLOTS)
        bench_die("%lld of %d jobs Completed", (long long)done, o->jobs + SLOTS);
    res->cairn_rate = o->jobs / s;
    res->bare_rate = s_bare_drain(o->jobs);
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bench_jobs [--quick] [--json] [--strict] [--rounds N] [--jobs N]\n"
            "                  [--cairnd PATH] [--only start,drain]\n"
            "  --rounds N   10 submits and 10 fork+execs a round (default 5; quick 1)\n"
            "  --jobs N     jobs queued for the drain (default 1000; quick 50)\n");
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--stamp")) return s_stamp(argv[2]);
    bench_init("bench_jobs", s_cleanup);
    opts_t o = {.base = {.rounds = 5}, .jobs = 1000};
    bool jobs_set = false;
    for (int i = 1; i < argc; i++) {
        if (bench_opts_take(&o.base, argc, argv, &i)) continue;
        if (!strcmp(argv[i], "--jobs") && i + 1 < argc) {
            o.jobs = atoi(argv[++i]);
            jobs_set = true;
        } else {
            bench_arg_rest("bench_jobs", argv[i], s_usage);
        }
    }
    if (o.base.quick) {
        if (!o.base.rounds_set) o.base.rounds = 1;
        if (!jobs_set) o.jobs = 50;
    }
    if (o.base.rounds < 1 || o.base.rounds > MAX_ROUNDS || o.jobs < 1 ||
        o.jobs > 100000)
        bench_die("--rounds 1..%d, --jobs 1..100000", MAX_ROUNDS);
    bench_text_set(!o.base.json);
    ssize_t sl = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (sl <= 0) bench_die("cannot find this program: %s", strerror(errno));
    g_self[sl] = '\0';
    cairn_err_t err = {0};
    const char *tmp = getenv("CAIRN_BENCH_DIR");
    if (!tmp || !*tmp) tmp = "/var/tmp";
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%.200s/cairn-bench-jobs-", tmp);
    if (!(g_kernel = bench_kernel_new(o.base.cairnd, prefix, &err)))
        bench_die("%s", err.msg);
    snprintf(g_dir, sizeof g_dir, "%s", bench_kernel_dir(g_kernel));
    char services[256];
    snprintf(services, sizeof services,
             "  tracking:\n    plugin: storage\n    mode: inproc\n"
             "  jobs:\n    plugin: compute\n    mode: process\n"
             "    settings:\n      max_concurrent: %d\n",
             SLOTS);
    if (bench_kernel_start(g_kernel, services, -1, &err) != 0) bench_die("%s", err.msg);
    cairn_client_t *c = bench_kernel_wait(g_kernel, 2, &err);
    if (!c) bench_die("%s", err.msg);
    cairn_client_set_ttl(c, 60000);
    bench_host_t host;
    bench_host(&host);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_jobs: the jobs service (compute, process; %d slots) against fork + "
        "exec\nhost: %ld CPUs, Linux %s, %s; load average at start %s%s\n",
        SLOTS, host.ncpu, host.kernel, host.date, load,
        o.base.quick ? " (--quick: smoke only)" : "");
    if (bench_in_list(o.base.only, "start")) {
        start_result_t r;
        case_start(&o, c, &r);
        double ratio = r.cairn_p50 / r.bare_p50;
        bench_out(
            "\n1. submit to running, lock-step, %d each, alternating\n"
            "   submit_job -> the command runs    p50 %7.2f ms  p99 %7.2f ms\n"
            "   fork + exec (the peer)            p50 %7.2f ms  p99 %7.2f ms\n"
            "   %.2fx the peer at p50\n",
            o.base.rounds * 10, r.cairn_p50, r.cairn_p99, r.bare_p50, r.bare_p99,
            ratio);
        bench_fig("start_p50_ms", r.cairn_p50);
        bench_fig("start_p99_ms", r.cairn_p99);
        bench_fig("fork_exec_p50_ms", r.bare_p50);
        bench_fig("start_vs_fork_exec", ratio);
        bench_verdict("1 submit-to-running p50 < 20 ms", r.cairn_p50 < 20.0, "< 20 ms",
                      "%.2f ms", r.cairn_p50);
        bench_verdict("1 submit-to-running <= 2x fork+exec", ratio <= 2.0, "<= 2.00x",
                      "%.2fx", ratio);
    }
    if (bench_in_list(o.base.only, "drain")) {
        drain_result_t r;
        case_drain(&o, c, &r);
        bench_out(
            "\n2. drain: %d queued trivial jobs, %d slots\n"
            "   jobs service                      %8.0f jobs/s\n"
            "   fork + exec + wait (the peer)     %8.0f jobs/s\n"
            "   %.3fx the peer\n",
            o.jobs, SLOTS, r.cairn_rate, r.bare_rate, r.cairn_rate / r.bare_rate);
        bench_fig("drain_jobs_per_s", r.cairn_rate);
        bench_fig("fork_exec_per_s", r.bare_rate);
        bench_fig("drain_vs_fork_exec", r.cairn_rate / r.bare_rate);
        bench_verdict("2 drain >= 200 jobs/s", r.cairn_rate >= 200.0, ">= 200", "%.0f",
                      r.cairn_rate);
    }
    if (o.base.json) {
        printf("{\"bench\": \"jobs\", \"date\": \"%s\", \"quick\": %s, \"jobs\": %d, ",
               host.date, o.base.quick ? "true" : "false", o.jobs);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(40, 12, 10);
        bench_verdicts_line(o.base.quick);
    }
    cairn_client_destroy(&c);
    int misses = bench_misses();
    s_cleanup(false);
    bench_out("bench_jobs: done\n");
    return o.base.strict && misses ? 3 : 0;
}
