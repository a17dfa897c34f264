/* bench_auth — what auth costs a request (issue 13).
 *
 *   bench_auth [--quick] [--json] [--rounds N] [--seconds S] [--window W]
 *              [--points N] [--logins N] [--only LIST] [--cairnd PATH]
 *              [--no-pin] [--strict]
 *
 * Two private cairnds with the same services (`auth` and the storage
 * plugin's `tracking`, inproc): one with `kernel.auth: none`, one with
 * `kernel.auth: auth`, called with its owner.token. With auth on, every request's token
 * is checked against the kernel's cache of the auth service's answer (after the first,
 * which asks the service), so the difference is that check: a BLAKE2b of the token, a
 * cache probe and the grants matched against the verb's permission.
 *
 * Cases, lock-step (one call at a time) for S seconds per sample, or
 * pipelined:
 *   services    sys.services (the kernel answers; no plugin hop)
 *   log_metric  tracking.log_metric to a run of each cairnd
 *   ingest      the C SDK's ingest: log_batch of 10,000 points (20 keys x 500
 *               steps) through cairn_batch_send_async, W batches in flight,
 *               N points per sample -> points/s (as bench_tracking's case 1)
 *   login       on the auth-on cairnd, with the service's default Argon2id
 *               cost: L logins one after another -> p50/p99 ms (target 50
 *               to 500 ms); then lock-step sys.services for S seconds with a
 *               stream of logins running on another client, against the same
 *               without logins, alternating -> the ratio with/without and the
 *               RTT p99 with logins (a login stalling the kernel would show
 *               as an RTT of a whole hash).
 *
 * A third cairnd has auth on and the audit trail too (`kernel.audit:
 * audit`): every log_metric is then a record, grouped to the audit service.
 *
 * Every round samples each case on each cairnd, in an order that turns
 * around every round, and takes the ratios on/off and audit/on within the
 * round; the median of the rounds is the figure, with its CoV. Targets
 * (issue 13): >= 0.90 for each lock-step case, >= 0.95 for ingest. Timings
 * are never asserted: --strict turns a MISS into exit status 3.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cairn/cairn.h"

#define MAX_ROUNDS 20
#define NKEYS 20   /* metric keys per ingest batch */
#define NSTEPS 500 /* steps per key per ingest batch */
#define BATCH_POINTS (NKEYS * NSTEPS)
#define TS0 INT64_C(1700000000000)
#define IO_TIMEOUT_MS 60000
#define MAX_LOGINS 200
#define LOGIN_USER "bench-user"
#define LOGIN_PASSWORD "bench password, not a secret"

typedef struct side {
    const char *name; /* "off" or "on" */
    bench_kernel_t *k;
    cairn_client_t *c;
    char *run_id;
    cairn_batch_t *batch; /* ingest */
} side_t;

typedef struct kase {
    const char *key;
    double rate[3][MAX_ROUNDS]; /* calls/s: [off, on, audit][round] */
    double ratio[MAX_ROUNDS];   /* on / off */
    double audit[MAX_ROUNDS];   /* audit / on */
} kase_t;

/* off: kernel.auth none; on: kernel.auth auth; audit: that and kernel.audit. */
static side_t g_side[3] = {{.name = "off"}, {.name = "on"}, {.name = "audit"}};
#define NSIDES 3
static bench_opts_t g_o = {.rounds = 5, .seconds = 0.5, .window = 8, .pin = true};
static long g_points = 300000; /* ingest points per sample */
static int g_logins = 10;      /* logins timed one after another */
static int g_cli_cpu = -1, g_srv_cpu = -1;
static const char *g_keys[NKEYS] = {"m0",  "m1",  "m2",  "m3",  "m4",  "m5",  "m6",
                                    "m7",  "m8",  "m9",  "m10", "m11", "m12", "m13",
                                    "m14", "m15", "m16", "m17", "m18", "m19"};

static void s_cleanup(bool failed)
{
    for (int i = 0; i < NSIDES; i++) {
        if (failed && g_side[i].k) bench_kernel_print_log(g_side[i].k, stderr);
        cairn_client_destroy(&g_side[i].c);
        cairn_batch_destroy(&g_side[i].batch);
        free(g_side[i].run_id);
        g_side[i].run_id = NULL;
        bench_kernel_destroy(&g_side[i].k);
    }
}

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bench_auth [--quick] [--json] [--rounds N] [--seconds S] [--window "
        "W]\n"
        "                  [--points N] [--logins N] [--only LIST] [--cairnd PATH]\n"
        "                  [--no-pin] [--strict]\n"
        "  --seconds S  seconds per lock-step sample (default 0.5)\n"
        "  --window W   ingest: log_batch requests in flight (default 8)\n"
        "  --points N   ingest: points per sample (default 300000)\n"
        "  --logins N   login: logins timed one after another (default 10)\n"
        "  --only LIST  comma-separated cases: services, log_metric, ingest, "
        "login\n");
}

/* The owner token the auth service wrote into the cairnd's state dir. */
static char *s_owner_token(const bench_kernel_t *k)
{
    char path[4200], buf[512] = "";
    snprintf(path, sizeof path, "%s/state/owner.token", bench_kernel_dir(k));
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) bench_die("cannot read %s", path);
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return strdup(buf);
}

static void s_start(side_t *s, bool auth, bool audit)
{
    cairn_err_t err = {0};
    if (!(s->k = bench_kernel_new(g_o.cairnd, "/tmp/cairn-bench-auth-", &err)))
        bench_die("%s", err.msg);
    /* The same services on every side (sys.services' reply is the same
     * size); only kernel.auth and kernel.audit differ. */
    const char *services =
        "  auth:\n    plugin: auth\n    mode: inproc\n"
        "  audit:\n    plugin: audit\n    mode: inproc\n"
        "  tracking:\n    plugin: storage\n    mode: inproc\n";
    if (auth) bench_kernel_set_auth(s->k, "auth");
    if (audit) bench_kernel_set_audit(s->k, "audit");
    if (bench_kernel_start(s->k, services, g_srv_cpu, &err) != 0)
        bench_die("cairnd (auth %s): %s", s->name, err.msg);
    cairn_client_t *probe = bench_kernel_wait(s->k, 3, &err);
    if (!probe) bench_die("cairnd (auth %s): %s", s->name, err.msg);
    cairn_client_destroy(&probe);
    char *tok = auth ? s_owner_token(s->k) : NULL;
    s->c = cairn_client_new(bench_kernel_endpoint(s->k), auth ? tok : "", &err);
    free(tok);
    if (!s->c) bench_die("client: %s", err.msg);
    char *exp = NULL;
    if (cairn_create_experiment(s->c, "bench-auth", &exp, &err) != 0 ||
        cairn_create_run(s->c, exp, "bench", NULL, &s->run_id, &err) != 0)
        bench_die("auth %s: cannot make a run: %s", s->name, err.msg);
    free(exp);
    if (!(s->batch = cairn_batch_new(s->run_id))) bench_die("cairn_batch_new");
}

/* Take one log_batch reply and require 200. */
static void s_collect(side_t *s)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    if (cairn_client_recv(s->c, IO_TIMEOUT_MS, &r, &err) != 0)
        bench_die("ingest (auth %s): no reply: %d %s", s->name, err.st, err.msg);
    if (cairn_reply_status(r) != CAIRN_ST_OK)
        bench_die("ingest (auth %s): %d %s", s->name, cairn_reply_status(r),
                  cairn_reply_error(r));
    cairn_reply_destroy(&r);
}

/* One ingest sample: npoints in batches of BATCH_POINTS, window in flight;
 * points/s. */
static double s_ingest(side_t *s, long npoints, int64_t *step)
{
    cairn_err_t err = {0};
    long batches = npoints / BATCH_POINTS;
    int inflight = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < batches; i++) {
        for (int st = 0; st < NSTEPS; st++, (*step)++)
            for (int k = 0; k < NKEYS; k++)
                cairn_batch_metric(s->batch, g_keys[k],
                                   (double)((*step * 31 + k) % 1000) / 1000.0, *step,
                                   TS0 + *step);
        if (cairn_batch_send_async(s->c, s->batch, NULL, &err) != 0)
            bench_die("ingest (auth %s): send: %d %s", s->name, err.st, err.msg);
        if (++inflight == g_o.window) {
            s_collect(s);
            inflight--;
        }
    }
    while (inflight-- > 0) s_collect(s);
    return (double)(batches * BATCH_POINTS) / ((double)(bench_now_ns() - t0) / 1e9);
}

/* One sample: for a lock-step case, calls/s for seconds (every reply must be
 * 200); for ingest, points/s over g_points. seconds < 0: a warm-up. */
static double s_sample(side_t *s, const char *key, double seconds, int64_t *step)
{
    bool warm = seconds < 0; /* a short sample whose figure is not kept */
    if (strcmp(key, "ingest") == 0)
        return s_ingest(s, warm ? BATCH_POINTS * (g_o.window + 2) : g_points, step);
    if (warm) seconds = 0.2;
    cairn_err_t err = {0};
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), n = 0;
    bool services = strcmp(key, "services") == 0;
    for (uint64_t now = t0; now < end; now = bench_now_ns(), n++) {
        int rc =
            services
                ? cairn_client_call(s->c, "sys", "services", NULL, 0, 0, NULL, &err)
                : cairn_log_metric(s->c, s->run_id, "loss", 0.5, (*step)++, 0, &err);
        if (rc != 0) bench_die("%s (auth %s): %s", key, s->name, err.msg);
    }
    return (double)n / ((double)(bench_now_ns() - t0) / 1e9);
}

static void s_run_case(kase_t *k)
{
    int64_t step[NSIDES] = {0};
    for (int i = 0; i < NSIDES; i++)
        s_sample(&g_side[i], k->key, -1.0, &step[i]); /* warm */
    for (int r = 0; r < g_o.rounds; r++) {
        for (int j = 0; j < NSIDES; j++) {
            int i = (r % 2) ? NSIDES - 1 - j : j; /* off, on, audit; then back */
            k->rate[i][r] = s_sample(&g_side[i], k->key, g_o.seconds, &step[i]);
        }
        k->ratio[r] = k->rate[1][r] / k->rate[0][r];
        k->audit[r] = k->rate[2][r] / k->rate[1][r];
    }
}

/* ---- login: latency, and what a stream of logins does to other requests --------- */

typedef struct login_stream {
    const char *endpoint;
    atomic_bool stop;
    long done; /* logins answered; read after the join */
    bool failed;
    cairn_err_t err;
    pthread_t thread;
} login_stream_t;

typedef struct login_result {
    double p50, p99; /* ms, one login after another */
    double with[MAX_ROUNDS], without[MAX_ROUNDS], ratio[MAX_ROUNDS]; /* services/s */
    double rtt_with[MAX_ROUNDS], rtt_without[MAX_ROUNDS]; /* services RTT p99, ms */
    double logins_per_s[MAX_ROUNDS];
} login_result_t;

static login_result_t g_login;
static bool g_login_ran;

static int s_login_once(cairn_client_t *c, cairn_err_t *err)
{
    char *tok = NULL;
    if (cairn_auth_login(c, LOGIN_USER, LOGIN_PASSWORD, &tok, err) != 0) return -1;
    explicit_bzero(tok, strlen(tok));
    free(tok);
    return 0;
}

static void *s_login_loop(void *arg)
{
    login_stream_t *L = arg;
    cairn_client_t *c = cairn_client_new(L->endpoint, "", &L->err);
    L->failed = !c;
    while (c && !atomic_load(&L->stop)) {
        if (s_login_once(c, &L->err) != 0) {
            L->failed = true;
            break;
        }
        L->done++;
    }
    cairn_client_destroy(&c);
    return NULL;
}

/* Lock-step sys.services for seconds: calls/s, and the RTT p99 (ms) in
 * *p99. */
static double s_services_rtt(side_t *s, double seconds, double *p99)
{
    cairn_err_t err = {0};
    size_t cap = 4096, n = 0;
    double *rtt = malloc(cap * sizeof *rtt);
    if (!rtt) bench_die("out of memory");
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), now = t0;
    while (now < end) {
        if (cairn_client_call(s->c, "sys", "services", NULL, 0, 0, NULL, &err) != 0)
            bench_die("services (auth %s): %s", s->name, err.msg);
        uint64_t after = bench_now_ns();
        if (n == cap && !(rtt = realloc(rtt, (cap *= 2) * sizeof *rtt)))
            bench_die("out of memory");
        rtt[n++] = (double)(after - now) / 1e6;
        now = after;
    }
    *p99 = bench_pct(rtt, n, 0.99);
    free(rtt);
    return (double)n / ((double)(now - t0) / 1e9);
}

static void s_login_case(side_t *on)
{
    cairn_err_t err = {0};
    login_result_t *L = &g_login;
    if (cairn_auth_create_user(on->c, LOGIN_USER, LOGIN_PASSWORD, &err) != 0)
        bench_die("create_user: %d %s", err.st, err.msg);
    cairn_client_t *anon = cairn_client_new(bench_kernel_endpoint(on->k), "", &err);
    if (!anon || s_login_once(anon, &err) != 0) /* warm */
        bench_die("login: %d %s", err.st, err.msg);
    double ms[MAX_LOGINS];
    for (int i = 0; i < g_logins; i++) {
        uint64_t t0 = bench_now_ns();
        if (s_login_once(anon, &err) != 0) bench_die("login: %d %s", err.st, err.msg);
        ms[i] = (double)(bench_now_ns() - t0) / 1e6;
    }
    cairn_client_destroy(&anon);
    L->p50 = bench_pct(ms, (size_t)g_logins, 0.50);
    L->p99 = bench_pct(ms, (size_t)g_logins, 0.99);
    double p99;
    s_services_rtt(on, 0.2, &p99); /* warm */
    for (int r = 0; r < g_o.rounds; r++) {
        for (int j = 0; j < 2; j++) {
            bool with = (r % 2) ? j == 0 : j == 1; /* without, with; then back */
            if (!with) {
                L->without[r] = s_services_rtt(on, g_o.seconds, &L->rtt_without[r]);
                continue;
            }
            login_stream_t st = {.endpoint = bench_kernel_endpoint(on->k)};
            if (pthread_create(&st.thread, NULL, s_login_loop, &st) != 0)
                bench_die("cannot start the login thread");
            uint64_t t0 = bench_now_ns();
            L->with[r] = s_services_rtt(on, g_o.seconds, &L->rtt_with[r]);
            atomic_store(&st.stop, true);
            pthread_join(st.thread, NULL);
            if (st.failed) bench_die("login stream: %d %s", st.err.st, st.err.msg);
            L->logins_per_s[r] =
                (double)st.done / ((double)(bench_now_ns() - t0) / 1e9);
        }
        L->ratio[r] = L->with[r] / L->without[r];
    }
    g_login_ran = true;
}

static void s_login_report(void)
{
    login_result_t *L = &g_login;
    int n = g_o.rounds;
    double ratio = bench_median(L->ratio, n), cov = bench_cov(L->ratio, n);
    double rtt_with = bench_median(L->rtt_with, n);
    double rtt_without = bench_median(L->rtt_without, n);
    bench_out(
        "\nlogin (Argon2id at the auth service's default cost), %d one after "
        "another:\n  p50 %.1f ms, p99 %.1f ms\n",
        g_logins, L->p50, L->p99);
    bench_out(
        "lock-step sys.services while a stream of logins runs (%.1f logins/s), "
        "against none:\n"
        "  %.0f /s with, %.0f /s without: %.3fx (CoV %.1f%%)%s; RTT p99 %.2f ms "
        "with, %.2f ms without\n",
        bench_median(L->logins_per_s, n), bench_median(L->with, n),
        bench_median(L->without, n), ratio, 100 * cov, cov > 0.10 ? " noisy" : "",
        rtt_with, rtt_without);
    bench_fig("login_p50_ms", L->p50);
    bench_fig("login_p99_ms", L->p99);
    bench_fig("services_with_logins_over_without", ratio);
    bench_fig("services_rtt_p99_ms_with_logins", rtt_with);
    bench_fig("services_rtt_p99_ms_without_logins", rtt_without);
    bench_verdict("login p50", L->p50 >= 50 && L->p50 <= 500, "50-500 ms", "%.0f ms",
                  L->p50);
    bench_verdict("login p99", L->p99 >= 50 && L->p99 <= 500, "50-500 ms", "%.0f ms",
                  L->p99);
    bench_verdict("no stall", rtt_with < 50, "RTT p99 < 50 ms", "%.2f ms", rtt_with);
}

static void s_report(kase_t *ks, int n)
{
    bench_out("\n%-12s %12s %12s %12s %9s %7s %12s %7s\n", "case", "off /s", "on /s",
              "audit /s", "on/off", "CoV", "audit/on", "CoV");
    for (int i = 0; i < n; i++) {
        kase_t *k = &ks[i];
        double off = bench_median(k->rate[0], g_o.rounds);
        double on = bench_median(k->rate[1], g_o.rounds);
        double ratio = bench_median(k->ratio, g_o.rounds);
        double cov = bench_cov(k->ratio, g_o.rounds);
        double aud = bench_median(k->rate[2], g_o.rounds);
        double aratio = bench_median(k->audit, g_o.rounds);
        double acov = bench_cov(k->audit, g_o.rounds);
        bench_out("%-12s %12.0f %12.0f %12.0f %8.3fx %6.1f%% %11.3fx %6.1f%%%s\n",
                  k->key, off, on, aud, ratio, 100 * cov, aratio, 100 * acov,
                  cov > 0.10 || acov > 0.10 ? " noisy" : "");
        bench_figf(aratio, "%s_audit_over_on", k->key);
        bench_figf(off, "%s_off_per_s", k->key);
        bench_figf(on, "%s_on_per_s", k->key);
        bench_figf(ratio, "%s_on_over_off", k->key);
        bool ingest = strcmp(k->key, "ingest") == 0; /* points/s; else calls/s */
        bench_verdict(k->key, ratio >= (ingest ? 0.95 : 0.90),
                      ingest ? ">= 0.95x" : ">= 0.90x", "%.3fx", ratio);
        if (strcmp(k->key, "log_metric") == 0) /* services is a read: not audited */
            bench_verdict("audit", aratio >= 0.90, ">= 0.90x", "%.3fx", aratio);
    }
}

int main(int argc, char **argv)
{
    bool points_set = false, logins_set = false;
    for (int i = 1; i < argc; i++) {
        if (bench_opts_take(&g_o, argc, argv, &i)) continue;
        if (!strcmp(argv[i], "--points") && i + 1 < argc) {
            g_points = atol(argv[++i]);
            points_set = true;
        } else if (!strcmp(argv[i], "--logins") && i + 1 < argc) {
            g_logins = atoi(argv[++i]);
            logins_set = true;
        } else {
            bench_arg_rest("bench_auth", argv[i], s_usage);
        }
    }
    if (g_o.quick) {
        if (!g_o.rounds_set) g_o.rounds = 2;
        if (!g_o.seconds_set) g_o.seconds = 0.2;
        if (!points_set) g_points = 50000;
        if (!logins_set) g_logins = 3;
    }
    if (g_o.rounds < 1 || g_o.rounds > MAX_ROUNDS)
        bench_die("--rounds is from 1 to %d", MAX_ROUNDS);
    if (g_o.window < 1 || g_o.window > 256 || g_points < BATCH_POINTS || g_logins < 1 ||
        g_logins > MAX_LOGINS)
        bench_die("--window 1..256, --points >= %d, --logins 1..%d", BATCH_POINTS,
                  MAX_LOGINS);
    bench_init("bench_auth", s_cleanup);
    bench_text_set(!g_o.json);
    cairn_err_t err = {0};
    if (g_o.pin && bench_pick_cpus(&g_srv_cpu, &g_cli_cpu) &&
        bench_pin(g_cli_cpu, &err) != 0)
        bench_warn("cannot pin: %s", err.msg);
    s_start(&g_side[0], false, false);
    s_start(&g_side[1], true, false);
    s_start(&g_side[2], true, true);
    kase_t ks[] = {{.key = "services"}, {.key = "log_metric"}, {.key = "ingest"}};
    int n = 0;
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (bench_in_list(g_o.only, ks[i].key)) {
            s_run_case(&ks[i]);
            if (n != (int)i) ks[n] = ks[i];
            n++;
        }
    if (bench_in_list(g_o.only, "login")) s_login_case(&g_side[1]);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_auth: %d rounds of %.1f s per lock-step case and side; ingest %ld "
        "points per sample, %d batches of %d in flight; load %s\n",
        g_o.rounds, g_o.seconds, g_points, g_o.window, BATCH_POINTS, load);
    if (n) s_report(ks, n);
    if (g_login_ran) s_login_report();
    bench_verdicts_print(12, 10, 16);
    bench_verdicts_line(g_o.quick);
    if (g_o.json) {
        printf("{\"bench\": \"auth\", \"rounds\": %d, ", g_o.rounds);
        bench_json_report_tail();
    }
    s_cleanup(false);
    bench_out("bench_auth: done\n");
    return g_o.strict && bench_misses() ? 3 : 0;
}
