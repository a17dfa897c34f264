/* bench/scorer_model.c — the scorer's model library against XGBoost's own
 * prediction, in one run (docs/PERFORMANCE.md, "Scorer model"):
 *
 *   bench_scorer_model [--quick] [--json] [--strict] [--rounds N]
 *                      [--trees N] [--depth N] [--calls N]
 *
 * A binary:logistic model (--trees trees of --depth, on a seeded 20-feature
 * set with a few NaNs) is trained through XGBoost's C API here and saved as
 * JSON; scorer_model_load reads it back. Then, over the same rows:
 *
 *   1. single-row predictions in a tight loop (--calls of them, each its
 *      own row): XGBoosterPredictFromDense (nthread 1, "cache_id": 0, the
 *      call a server would make per request) against scorer_model_predict;
 *      ns per prediction, the median of the per-round ratios XGBoost / ours
 *      (target >= 5);
 *   2. one batch of 10,000 rows through each, ns per row (nthread 1).
 * Every prediction of ours is checked against XGBoost's (1e-6). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xgboost/c_api.h>

#include "bench_util.h"
#include "bench_xgb.h"
#include "model.h"

#define NF 20
#define NBATCH 10000
#define MAX_ROUNDS BENCH_MAX_ROUNDS

typedef struct opts {
    bench_opts_t base;
    int trees, depth;
    long calls, rows;
} opts_t;

static char g_dir[PATH_MAX], g_model[PATH_MAX + 16];

static void s_cleanup(bool failed)
{
    (void)failed;
    if (!g_dir[0]) return;
    unlink(g_model);
    rmdir(g_dir);
    g_dir[0] = '\0';
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bench_scorer_model [--quick] [--json] [--strict] [--rounds N] "
            "[--trees N] [--depth N] [--calls N]\n");
}

#define XGB(call)                                                       \
    do {                                                                \
        if ((call) != 0) bench_die("%s: %s", #call, XGBGetLastError()); \
    } while (0)

static BoosterHandle s_train(const opts_t *o)
{
    size_t n = (size_t)o->rows;
    float *x = malloc(sizeof *x * n * NF), *y = malloc(sizeof *y * n);
    if (!x || !y) bench_die("out of memory");
    bench_model_rows(1, n, NF, x, y);
    DMatrixHandle d;
    XGB(XGDMatrixCreateFromMat(x, n, NF, NAN, &d));
    XGB(XGDMatrixSetFloatInfo(d, "label", y, n));
    BoosterHandle b;
    XGB(XGBoosterCreate(&d, 1, &b));
    char depth[16];
    snprintf(depth, sizeof depth, "%d", o->depth);
    XGB(XGBoosterSetParam(b, "objective", "binary:logistic"));
    XGB(XGBoosterSetParam(b, "max_depth", depth));
    XGB(XGBoosterSetParam(b, "tree_method", "hist"));
    XGB(XGBoosterSetParam(b, "seed", "1"));
    for (int i = 0; i < o->trees; i++) XGB(XGBoosterUpdateOneIter(b, i, d));
    XGB(XGBoosterSetParam(b, "nthread", "1"));
    XGB(XGDMatrixFree(d));
    XGB(XGBoosterSaveModel(b, g_model));
    free(x);
    free(y);
    return b;
}

/* XGBoost's in-place prediction of n rows at x: its result, borrowed. */
static const float *s_xgb_predict(BoosterHandle b, const float *x, size_t n)
{
    const float *out;
    XGB(bench_xgb_predict(b, x, n, NF, &out));
    return out;
}

/* 1: calls single-row predictions, row i % nrows each; ns per call. The
 * array interface's text is made per call, as a server would. */
static double s_single_xgb(BoosterHandle b, const float *x, size_t nrows, long calls,
                           double *sink)
{
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < calls; i++)
        *sink += s_xgb_predict(b, x + (size_t)i % nrows * NF, 1)[0];
    return (double)(bench_now_ns() - t0) / (double)calls;
}

static double s_single_ours(const scorer_model_t *m, const float *x, size_t nrows,
                            long calls, double *sink)
{
    cairn_err_t err = {0};
    float out;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < calls; i++) {
        if (scorer_model_predict(m, x + (size_t)i % nrows * NF, 1, NF, &out, &err) != 0)
            bench_die("%s", err.msg);
        *sink += out;
    }
    return (double)(bench_now_ns() - t0) / (double)calls;
}

/* Every row of ours against XGBoost's batch: the largest difference. */
static double s_check(BoosterHandle b, const scorer_model_t *m, const float *x,
                      size_t n, float *ours)
{
    cairn_err_t err = {0};
    if (scorer_model_predict(m, x, n, NF, ours, &err) != 0) bench_die("%s", err.msg);
    const float *want = s_xgb_predict(b, x, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - (double)want[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

static void s_args(opts_t *o, int argc, char **argv)
{
    bool calls_set = false;
    for (int i = 1; i < argc; i++) {
        if (bench_opts_take(&o->base, argc, argv, &i)) continue;
        if (!strcmp(argv[i], "--trees") && i + 1 < argc) {
            o->trees = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--depth") && i + 1 < argc) {
            o->depth = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--calls") && i + 1 < argc) {
            o->calls = atol(argv[++i]);
            calls_set = true;
        } else {
            bench_arg_rest("bench_scorer_model", argv[i], s_usage);
        }
    }
    if (o->base.quick) {
        if (!o->base.rounds_set) o->base.rounds = 1;
        if (!calls_set) o->calls = 2000;
        o->rows = 4000; /* training rows: enough for full depth-6 trees */
    }
    if (o->base.rounds < 1 || o->base.rounds > MAX_ROUNDS || o->trees < 1 ||
        o->trees > 5000 || o->depth < 1 || o->depth > 16 || o->calls < 100 ||
        o->calls > 100000000)
        bench_die("--rounds 1..%d, --trees 1..5000, --depth 1..16, --calls 100..1e8",
                  MAX_ROUNDS);
}

int main(int argc, char **argv)
{
    bench_init("bench_scorer_model", s_cleanup);
    opts_t o = {.base = {.rounds = 5},
                .trees = 100,
                .depth = 6,
                .calls = 200000,
                .rows = 20000};
    s_args(&o, argc, argv);
    bench_text_set(!o.base.json);
    const char *tmp = getenv("CAIRN_BENCH_DIR");
    if (!tmp || !*tmp) tmp = "/var/tmp";
    snprintf(g_dir, sizeof g_dir, "%.200s/cairn-bench-scorer-XXXXXX", tmp);
    if (!mkdtemp(g_dir)) bench_die("cannot make a temp dir: %s", strerror(errno));
    snprintf(g_model, sizeof g_model, "%s/model.json", g_dir);

    BoosterHandle b = s_train(&o);
    scorer_model_t *m = NULL;
    cairn_err_t err = {0};
    if (scorer_model_load(g_model, &m, &err) != 0) bench_die("%s", err.msg);
    float *x = malloc(sizeof *x * NBATCH * NF), *ours = malloc(sizeof *ours * NBATCH);
    if (!x || !ours) bench_die("out of memory");
    bench_model_rows(2, NBATCH, NF, x, NULL);

    bench_host_t host;
    bench_host(&host);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_scorer_model: binary:logistic, %zu trees of depth <= %d (%zu nodes), "
        "%d features, 2%% NaN; XGBoost nthread 1\nhost: %ld CPUs, Linux %s, %s; "
        "load average at start %s%s\n",
        scorer_model_trees(m), o.depth, scorer_model_nodes(m), NF, host.ncpu,
        host.kernel, host.date, load, o.base.quick ? " (--quick: smoke only)" : "");

    double worst = s_check(b, m, x, NBATCH, ours);
    bench_out("\n0. equality: %d rows, max |ours - XGBoost| %.3g\n", NBATCH, worst);
    bench_fig("max_abs_diff", worst);
    bench_verdict("0 predictions equal XGBoost's", worst <= 1e-6, "<= 1e-6", "%.3g",
                  worst);

    int n = o.base.rounds;
    double ta[MAX_ROUNDS], tb[MAX_ROUNDS], ratio[MAX_ROUNDS], sink = 0;
    s_single_ours(m, x, NBATCH, o.calls / 10, &sink); /* warm both */
    s_single_xgb(b, x, NBATCH, o.calls / 100, &sink);
    for (int i = 0; i < n; i++) {
        tb[i] = s_single_xgb(b, x, NBATCH, o.calls / 10, &sink);
        ta[i] = s_single_ours(m, x, NBATCH, o.calls, &sink);
        ratio[i] = tb[i] / ta[i];
    }
    double r1 = bench_median(ratio, n);
    bench_out(
        "\n1. single-row predictions, %d rounds (XGBoost %ld calls, ours %ld)\n"
        "   XGBoosterPredictFromDense     median %10.1f ns/prediction\n"
        "   scorer_model_predict          median %10.1f ns/prediction\n"
        "   XGBoost / ours: median %.1fx\n",
        n, o.calls / 10, o.calls, bench_median(tb, n), bench_median(ta, n), r1);
    bench_fig("single_xgb_ns", bench_median(tb, n));
    bench_fig("single_ours_ns", bench_median(ta, n));
    bench_fig("single_ratio", r1);
    bench_verdict("1 single row >= 5x XGBoost", r1 >= 5.0, ">= 5x", "%.1fx", r1);

    double ba[MAX_ROUNDS], bb[MAX_ROUNDS], br[MAX_ROUNDS];
    for (int i = 0; i < n; i++) {
        uint64_t t0 = bench_now_ns();
        sink += s_xgb_predict(b, x, NBATCH)[0];
        bb[i] = (double)(bench_now_ns() - t0) / NBATCH;
        t0 = bench_now_ns();
        if (scorer_model_predict(m, x, NBATCH, NF, ours, &err) != 0)
            bench_die("%s", err.msg);
        ba[i] = (double)(bench_now_ns() - t0) / NBATCH;
        sink += ours[0];
        br[i] = bb[i] / ba[i];
    }
    double r2 = bench_median(br, n);
    bench_out(
        "\n2. a batch of %d rows, %d rounds, one thread each\n"
        "   XGBoosterPredictFromDense     median %10.1f ns/row\n"
        "   scorer_model_predict          median %10.1f ns/row\n"
        "   XGBoost / ours: median %.2fx\n",
        NBATCH, n, bench_median(bb, n), bench_median(ba, n), r2);
    bench_fig("batch_xgb_ns", bench_median(bb, n));
    bench_fig("batch_ours_ns", bench_median(ba, n));
    bench_fig("batch_ratio", r2);
    bench_verdict("2 batch >= 1x XGBoost", r2 >= 1.0, ">= 1x", "%.2fx", r2);

    if (o.base.json) {
        printf(
            "{\"bench\": \"scorer_model\", \"date\": \"%s\", \"quick\": %s, "
            "\"trees\": %d, \"depth\": %d, \"sink\": %.3f, ",
            host.date, o.base.quick ? "true" : "false", o.trees, o.depth, sink);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(32, 10, 10);
        bench_verdicts_line(o.base.quick);
    }
    int misses = bench_misses();
    scorer_model_destroy(&m);
    XGBoosterFree(b);
    free(x);
    free(ours);
    s_cleanup(false);
    bench_out("bench_scorer_model: done\n");
    return o.base.strict && misses ? 3 : 0;
}
