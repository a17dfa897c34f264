/* bench/trainer.c — the built-in trainer against its peers, in one run
 * (docs/PERFORMANCE.md):
 *
 *   bench_trainer [--quick] [--json] [--strict] [--rounds N] [--rows N]
 *                 [--boost N]
 *
 * A seeded CSV is generated (--rows rows of 20 numeric columns, one
 * categorical column of 8 levels and a binary label), and beside it the
 * same data as XGBoost's own CSV reader takes it (no header, the label
 * first, the categorical one-hot as the trainer encodes it).
 *
 *   1. training: the trainer's table load + trainer_train (--boost rounds,
 *      a 0.2 validation split, train and validation evaluated each round)
 *      against XGBoost's C API alone: XGDMatrixCreateFromFile of the
 *      header-less CSV, the same split (XGDMatrixSliceDMatrix), the same
 *      parameters and rounds; interleaved, the median of the per-round
 *      ratios trainer / direct (target <= 1.05);
 *   2. CSV load: trainer_table_load against python3-pandas' read_csv of
 *      the same file (timed inside Python, its import excluded); the
 *      median ratio pandas / trainer (target >= 1.0).
 * Both figures are ratios of times measured in the same run. */
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
#include "trainer.h"
#include "yamlmp.h"

#define NUM_COLS 20
#define LEVELS 8
#define MAX_ROUNDS BENCH_MAX_ROUNDS

typedef struct opts {
    bench_opts_t base;
    long rows;
    int boost;
} opts_t;

static char g_dir[PATH_MAX];
static char g_csv[PATH_MAX + 16], g_raw[PATH_MAX + 16];

static void s_cleanup(bool failed)
{
    (void)failed;
    if (!g_dir[0]) return;
    unlink(g_csv);
    unlink(g_raw);
    rmdir(g_dir);
    g_dir[0] = '\0';
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bench_trainer [--quick] [--json] [--strict] [--rounds N] "
            "[--rows N] [--boost N]\n");
}

/* Both files: the trainer's (header, categorical as text) and XGBoost's
 * (no header, label first, the categorical one-hot in byte order). */
static void s_generate(long rows)
{
    FILE *a = fopen(g_csv, "w"), *b = fopen(g_raw, "w");
    if (!a || !b) bench_die("cannot write the CSVs in %s: %s", g_dir, strerror(errno));
    for (int j = 0; j < NUM_COLS; j++) fprintf(a, "x%d,", j);
    fprintf(a, "cat,y\n");
    uint64_t s = 12345;
    double w[NUM_COLS];
    for (int j = 0; j < NUM_COLS; j++) w[j] = bench_rand_unit(&s) * 2 - 1;
    for (long r = 0; r < rows; r++) {
        double x[NUM_COLS], z = 0;
        for (int j = 0; j < NUM_COLS; j++) {
            x[j] = bench_rand_unit(&s) * 10 - 5;
            z += w[j] * x[j];
        }
        int cat = (int)(bench_rand(&s) % LEVELS);
        z += cat - 3.5 + (bench_rand_unit(&s) - 0.5) * 4;
        int y = z > 0;
        fprintf(b, "%d", y);
        for (int j = 0; j < NUM_COLS; j++) {
            fprintf(a, "%.6g,", x[j]);
            fprintf(b, ",%.6g", x[j]);
        }
        fprintf(a, "c%d,%d\n", cat, y);
        for (int k = 0; k < LEVELS; k++) fprintf(b, ",%d", k == cat);
        fputc('\n', b);
    }
    if (fclose(a) != 0 || fclose(b) != 0) bench_die("writing the CSVs failed");
}

static void s_config(const opts_t *o, trainer_config_t *c)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "data: %s\ntarget: y\ntask: classification\nseed: 1\n"
             "validation: {split: 0.2}\nhyperparameters: {max_depth: 6, eta: 0.3, "
             "num_boost_round: %d}\n",
             g_csv, o->boost);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cairn_err_t err = {0};
    if (cairn_yaml_to_msgpack(yaml, strlen(yaml), &sb, &err) != 0)
        bench_die("%s", err.msg);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_unpack_next(&u, sb.data, sb.size, NULL);
    if (trainer_config_read(&u.data, c, &err) != 0) bench_die("%s", err.msg);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

/* 1a: the trainer, load included; its final validation metric in *metric. */
static double s_trainer(const trainer_config_t *c, double *metric)
{
    uint64_t t0 = bench_now_ns();
    cairn_err_t err = {0};
    trainer_table_t *t = trainer_table_load(
        g_csv, &(trainer_table_opts_t){.target = "y", .task = c->task}, &err);
    if (!t) bench_die("%s", err.msg);
    trainer_result_t *r = NULL;
    if (trainer_train(t, c, NULL, NULL, &r, &err) != 0) bench_die("%s", err.msg);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    *metric = trainer_result_metric(r);
    trainer_result_destroy(&r);
    trainer_table_destroy(&t);
    return s;
}

#define XGB_OK(call)                                                             \
    do {                                                                         \
        if ((call) != 0) bench_die("xgboost: %s: %s", #call, XGBGetLastError()); \
    } while (0)

/* 1b: XGBoost's C API alone: its CSV reader, the same split and params. */
static double s_direct(const trainer_config_t *c, long rows, double *metric)
{
    uint64_t t0 = bench_now_ns();
    char uri[PATH_MAX + 64];
    snprintf(uri, sizeof uri, "%s?format=csv&label_column=0", g_raw);
    DMatrixHandle all, tr, va;
    XGB_OK(XGDMatrixCreateFromFile(uri, 1, &all));
    uint32_t *perm = malloc((size_t)rows * sizeof *perm);
    int *idx = malloc((size_t)rows * sizeof *idx);
    if (!perm || !idx) bench_die("out of memory");
    trainer_permutation((size_t)rows, c->seed, perm);
    size_t nv = trainer_split_valid_rows((size_t)rows, c->split),
           nt = (size_t)rows - nv;
    for (long i = 0; i < rows; i++) idx[i] = (int)perm[i];
    XGB_OK(XGDMatrixSliceDMatrix(all, idx, nt, &tr));
    XGB_OK(XGDMatrixSliceDMatrix(all, idx + nt, nv, &va));
    DMatrixHandle sets[2] = {tr, va};
    const char *names[2] = {"train", "validation"};
    BoosterHandle b;
    XGB_OK(XGBoosterCreate(sets, 2, &b));
    char nthread[16];
    snprintf(nthread, sizeof nthread, "%d", trainer_cpus());
    XGB_OK(XGBoosterSetParam(b, "objective", "binary:logistic"));
    XGB_OK(XGBoosterSetParam(b, "tree_method", "hist"));
    XGB_OK(XGBoosterSetParam(b, "seed", "1"));
    XGB_OK(XGBoosterSetParam(b, "nthread", nthread));
    XGB_OK(XGBoosterSetParam(b, "max_depth", "6"));
    XGB_OK(XGBoosterSetParam(b, "eta", "0.3"));
    const char *out = "";
    for (int i = 0; i < c->rounds; i++) {
        XGB_OK(XGBoosterUpdateOneIter(b, i, tr));
        XGB_OK(XGBoosterEvalOneIter(b, i, sets, names, 2, &out));
    }
    double s = (double)(bench_now_ns() - t0) / 1e9;
    const char *v = strrchr(out, ':');
    *metric = v ? strtod(v + 1, NULL) : NAN;
    XGBoosterFree(b);
    XGDMatrixFree(tr);
    XGDMatrixFree(va);
    XGDMatrixFree(all);
    free(perm);
    free(idx);
    return s;
}

/* 2a: the trainer's load alone. */
static double s_load(void)
{
    uint64_t t0 = bench_now_ns();
    cairn_err_t err = {0};
    trainer_table_t *t = trainer_table_load(
        g_csv, &(trainer_table_opts_t){.target = "y", .task = TRAINER_CLASSIFICATION},
        &err);
    if (!t) bench_die("%s", err.msg);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    trainer_table_destroy(&t);
    return s;
}

/* 2b: pandas' read_csv of the same file, n times in one Python process
 * (the import excluded): the seconds of each into v. */
static void s_pandas(int n, double *v)
{
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys, time, pandas\n"
             "for _ in range(%d):\n"
             "    t = time.perf_counter(); pandas.read_csv(sys.argv[1]); "
             "print(time.perf_counter() - t)' '%s'",
             n, g_csv);
    FILE *p = popen(cmd, "r");
    if (!p) bench_die("cannot run python3: %s", strerror(errno));
    int got = 0;
    while (got < n && fscanf(p, "%lf", &v[got]) == 1) got++;
    if (pclose(p) != 0 || got != n)
        bench_die(
            "python3-pandas' read_csv did not run (is python3-pandas installed?)");
}

int main(int argc, char **argv)
{
    bench_init("bench_trainer", s_cleanup);
    opts_t o = {.base = {.rounds = 5}, .rows = 200000, .boost = 50};
    bool rows_set = false, boost_set = false;
    for (int i = 1; i < argc; i++) {
        if (bench_opts_take(&o.base, argc, argv, &i)) continue;
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            o.rows = atol(argv[++i]);
            rows_set = true;
        } else if (!strcmp(argv[i], "--boost") && i + 1 < argc) {
            o.boost = atoi(argv[++i]);
            boost_set = true;
        } else {
            bench_arg_rest("bench_trainer", argv[i], s_usage);
        }
    }
    if (o.base.quick) {
        if (!o.base.rounds_set) o.base.rounds = 1;
        if (!rows_set) o.rows = 20000;
        if (!boost_set) o.boost = 10;
    }
    if (o.base.rounds < 1 || o.base.rounds > MAX_ROUNDS || o.rows < 100 ||
        o.rows > 10000000 || o.boost < 1 || o.boost > 10000)
        bench_die("--rounds 1..%d, --rows 100..10000000, --boost 1..10000", MAX_ROUNDS);
    bench_text_set(!o.base.json);
    const char *tmp = getenv("CAIRN_BENCH_DIR");
    if (!tmp || !*tmp) tmp = "/var/tmp";
    snprintf(g_dir, sizeof g_dir, "%.200s/cairn-bench-trainer-XXXXXX", tmp);
    if (!mkdtemp(g_dir)) bench_die("cannot make a temp dir: %s", strerror(errno));
    snprintf(g_csv, sizeof g_csv, "%s/data.csv", g_dir);
    snprintf(g_raw, sizeof g_raw, "%s/raw.csv", g_dir);
    s_generate(o.rows);
    trainer_config_t cfg;
    s_config(&o, &cfg);

    bench_host_t host;
    bench_host(&host);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_trainer: %ld rows x (%d numeric + 1 categorical of %d), %d boosting "
        "rounds, nthread %d\nhost: %ld CPUs, Linux %s, %s; load average at start "
        "%s%s\n",
        o.rows, NUM_COLS, LEVELS, o.boost, trainer_cpus(), host.ncpu, host.kernel,
        host.date, load, o.base.quick ? " (--quick: smoke only)" : "");

    int n = o.base.rounds;
    double ta[MAX_ROUNDS], tb[MAX_ROUNDS], ratio[MAX_ROUNDS], ma = 0, mb = 0;
    for (int i = 0; i < n; i++) { /* interleaved, the order alternating */
        if (i % 2) {
            tb[i] = s_direct(&cfg, o.rows, &mb);
            ta[i] = s_trainer(&cfg, &ma);
        } else {
            ta[i] = s_trainer(&cfg, &ma);
            tb[i] = s_direct(&cfg, o.rows, &mb);
        }
        ratio[i] = ta[i] / tb[i];
    }
    double r1 = bench_median(ratio, n);
    bench_out(
        "\n1. load + train (%d rounds, split 0.2), %d interleaved runs each\n"
        "   trainer (table load + trainer_train)   median %8.3f s   logloss %.6f\n"
        "   XGBoost C API (its CSV reader)          median %8.3f s   logloss %.6f\n"
        "   trainer / direct: median %.3fx\n",
        o.boost, n, bench_median(ta, n), ma, bench_median(tb, n), mb, r1);
    bench_fig("train_trainer_s", bench_median(ta, n));
    bench_fig("train_direct_s", bench_median(tb, n));
    bench_fig("train_ratio", r1);
    bench_verdict("1 trainer <= 1.05x XGBoost C API", r1 <= 1.05, "<= 1.05x", "%.3fx",
                  r1);

    int m = n < 3 ? 3 : n;
    double la[MAX_ROUNDS], lp[MAX_ROUNDS];
    for (int i = 0; i < m; i++) la[i] = s_load();
    s_pandas(m, lp);
    double ours = bench_median(la, m), pandas = bench_median(lp, m);
    double r2 = pandas / ours;
    bench_out(
        "\n2. CSV load, %d each\n"
        "   trainer_table_load                      median %8.3f s\n"
        "   pandas.read_csv                         median %8.3f s\n"
        "   pandas / trainer: %.2fx\n",
        m, ours, pandas, r2);
    bench_fig("load_trainer_s", ours);
    bench_fig("load_pandas_s", pandas);
    bench_fig("load_pandas_over_trainer", r2);
    bench_verdict("2 CSV load >= pandas.read_csv", r2 >= 1.0, ">= 1.00x", "%.2fx", r2);

    if (o.base.json) {
        printf(
            "{\"bench\": \"trainer\", \"date\": \"%s\", \"quick\": %s, \"rows\": %ld, "
            "\"boost\": %d, ",
            host.date, o.base.quick ? "true" : "false", o.rows, o.boost);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(36, 10, 10);
        bench_verdicts_line(o.base.quick);
    }
    int misses = bench_misses();
    s_cleanup(false);
    bench_out("bench_trainer: done\n");
    return o.base.strict && misses ? 3 : 0;
}
