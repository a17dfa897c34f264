/* bench/batch_score.c — batch scoring rows/s against python3-xgboost's
 * predict on the same file, in one run (docs/PERFORMANCE.md):
 *
 *   bench_batch_score [--quick] [--json] [--strict] [--rounds N] [--rows N]
 *                     [--threads N]
 *
 * A seeded CSV is generated (--rows rows: an id column and 20 numeric
 * features, with a header), and a 100-tree binary:logistic model of depth
 * 6 is trained on its first rows by python3-xgboost. Then:
 *
 *   cairn-batch-score, as a batch endpoint's job runs it (the process
 *     started, the model loaded, the file read, cut, parsed and scored on
 *     --threads workers, predictions.csv written), timed from outside;
 *   python3: pandas.read_csv of the same file, xgboost.DMatrix of the
 *     model's columns as float32, Booster.predict (nthread: the machine's
 *     CPUs), timed inside Python with the imports and the model load
 *     excluded and no predictions written.
 *
 * Both as rows/s, the median of --rounds runs each; the ratio cairn /
 * python (target >= 1.0). Every prediction of the last run is checked
 * equal to python's to 1e-6. Both figures are measured in the same run. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

#define NUM_COLS 20
#define MAX_ROUNDS BENCH_MAX_ROUNDS

typedef struct opts {
    bench_opts_t base;
    long rows;
    int threads;
} opts_t;

static char g_dir[PATH_MAX];
static char g_csv[PATH_MAX + 16], g_model[PATH_MAX + 16], g_out[PATH_MAX + 16];

static void s_cleanup(bool failed)
{
    (void)failed;
    if (!g_dir[0]) return;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) bench_warn("could not remove %s", g_dir);
    g_dir[0] = '\0';
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bench_batch_score [--quick] [--json] [--strict] [--rounds N]\n"
            "                         [--rows N] [--threads N]\n"
            "  --rows: rows of the CSV (default 500000; --quick 20000)\n"
            "  --threads: cairn-batch-score's max_concurrency (default: CPUs)\n");
}

/* The CSV: id, f0..f19, values from a seeded stream. */
static void s_generate(long rows)
{
    FILE *f = fopen(g_csv, "w");
    if (!f) bench_die("cannot write %s: %s", g_csv, strerror(errno));
    fputs("id", f);
    for (int c = 0; c < NUM_COLS; c++) fprintf(f, ",f%d", c);
    fputc('\n', f);
    uint64_t st = 42;
    for (long r = 0; r < rows; r++) {
        fprintf(f, "%ld", r);
        for (int c = 0; c < NUM_COLS; c++)
            fprintf(f, ",%.6f", bench_rand_unit(&st) * 4 - 2);
        fputc('\n', f);
    }
    if (fclose(f) != 0) bench_die("cannot write %s: %s", g_csv, strerror(errno));
}

/* Run python3 code (argv[1]: the dir) and read n numbers from its stdout. */
static void s_python(const char *code, int n, double *v, const char *what)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/peer.py", g_dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(code, f) < 0 || fclose(f) != 0) bench_die("cannot write %s", path);
    char cmd[2 * PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", path, g_dir);
    FILE *p = popen(cmd, "r");
    if (!p) bench_die("cannot run python3: %s", strerror(errno));
    int got = 0;
    while (got < n && fscanf(p, "%lf", &v[got]) == 1) got++;
    if (pclose(p) != 0 || got != n)
        bench_die("python3 could not %s (python3-xgboost and python3-pandas?)", what);
}

static const char s_train_py[] =
    "import sys, numpy as np, pandas as pd, xgboost as xgb\n"
    "d = sys.argv[1]\n"
    "x = pd.read_csv(d + '/data.csv', nrows=20000)\n"
    "names = [f'f{i}' for i in range(20)]\n"
    "y = (x['f0'] + x['f1'] * x['f2'] - x['f3'] > 0).astype(int)\n"
    "b = xgb.train({'objective': 'binary:logistic', 'max_depth': 6, 'seed': 1},\n"
    "              xgb.DMatrix(x[names].to_numpy(np.float32), label=y,\n"
    "                          feature_names=names), 100)\n"
    "import os; os.makedirs(d + '/model', exist_ok=True)\n"
    "b.save_model(d + '/model/model.json')\n"
    "print(1)\n";

/* n rounds of read_csv + DMatrix + predict; then the last predictions
 * against cairn-batch-score's: the seconds of each, then the largest
 * difference. */
static const char s_peer_py[] =
    "import sys, time, numpy as np, pandas as pd, xgboost as xgb\n"
    "d = sys.argv[1]\n"
    "b = xgb.Booster(model_file=d + '/model/model.json')\n"
    "names = b.feature_names\n"
    "for _ in range(int(open(d + '/rounds').read())):\n"
    "    t = time.perf_counter()\n"
    "    df = pd.read_csv(d + '/data.csv')\n"
    "    p = b.predict(xgb.DMatrix(df[names].to_numpy(np.float32),\n"
    "                              feature_names=names))\n"
    "    print(time.perf_counter() - t, flush=True)\n"
    "got = pd.read_csv(d + '/out/predictions.csv')\n"
    "ok = len(got) == len(p) and (got['row_id'].to_numpy() == "
    "np.arange(len(p))).all()\n"
    "print(np.abs(got['prediction'].to_numpy() - p).max() if ok else 1e9)\n";

/* One run of cairn-batch-score: its wall time, s. */
static double s_cairn(const opts_t *o)
{
    char exe[PATH_MAX], mb[32], th[32];
    snprintf(exe, sizeof exe, "%s/cairn-batch-score", BENCH_BIN_DIR);
    if (!bench_executable(exe)) bench_die("%s cannot be run: build it first", exe);
    snprintf(mb, sizeof mb, "%d", 10000);
    snprintf(th, sizeof th, "%d", o->threads);
    uint64_t t0 = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0) bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execl(exe, exe, "--model", g_model, "--input", g_csv, "--out", g_out,
              "--mini-batch-size", mb, "--max-concurrency", th, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
    double s = (double)(bench_now_ns() - t0) / 1e9;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_die("cairn-batch-score failed (status %d)", status);
    return s;
}

static void s_args(opts_t *o, int argc, char **argv)
{
    bool rows_set = false;
    for (int i = 1; i < argc; i++) {
        if (bench_opts_take(&o->base, argc, argv, &i)) continue;
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            o->rows = atol(argv[++i]);
            rows_set = true;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            o->threads = atoi(argv[++i]);
        } else {
            bench_arg_rest("bench_batch_score", argv[i], s_usage);
        }
    }
    if (o->base.quick) {
        if (!o->base.rounds_set) o->base.rounds = 1;
        if (!rows_set) o->rows = 20000;
    }
    if (o->base.rounds < 1 || o->base.rounds > MAX_ROUNDS || o->rows < 1000 ||
        o->rows > 100000000 || o->threads < 1 || o->threads > 64)
        bench_die("--rounds 1..%d, --rows 1000..100000000, --threads 1..64",
                  MAX_ROUNDS);
}

static void s_setup(const opts_t *o)
{
    const char *tmp = getenv("CAIRN_BENCH_DIR");
    if (!tmp || !*tmp) tmp = "/var/tmp";
    snprintf(g_dir, sizeof g_dir, "%.200s/cairn-bench-batch-XXXXXX", tmp);
    if (!mkdtemp(g_dir)) bench_die("cannot make a temp dir: %s", strerror(errno));
    snprintf(g_csv, sizeof g_csv, "%s/data.csv", g_dir);
    snprintf(g_model, sizeof g_model, "%s/model", g_dir);
    snprintf(g_out, sizeof g_out, "%s/out", g_dir);
    s_generate(o->rows);
    double one;
    s_python(s_train_py, 1, &one, "train the model");
    char rounds[PATH_MAX + 16];
    snprintf(rounds, sizeof rounds, "%s/rounds", g_dir);
    FILE *f = fopen(rounds, "w");
    if (!f || fprintf(f, "%d\n", o->base.rounds) < 0 || fclose(f) != 0)
        bench_die("cannot write %s", rounds);
}

int main(int argc, char **argv)
{
    bench_init("bench_batch_score", s_cleanup);
    opts_t o = {.base = {.rounds = 5},
                .rows = 500000,
                .threads = (int)sysconf(_SC_NPROCESSORS_ONLN)};
    if (o.threads < 1) o.threads = 1;
    s_args(&o, argc, argv);
    bench_text_set(!o.base.json);
    s_setup(&o);
    bench_host_t host;
    bench_host(&host);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_batch_score: %ld rows x %d features, 100 trees of depth 6; "
        "cairn-batch-score on %d threads, mini-batches of 10000\n"
        "host: %ld CPUs, Linux %s, %s; load average at start %s%s\n",
        o.rows, NUM_COLS, o.threads, host.ncpu, host.kernel, host.date, load,
        o.base.quick ? " (--quick: smoke only)" : "");
    int n = o.base.rounds;
    double tc[MAX_ROUNDS], tp[MAX_ROUNDS + 1];
    for (int i = 0; i < n; i++) tc[i] = s_cairn(&o);
    s_python(s_peer_py, n + 1, tp, "read and predict");
    double diff = tp[n];
    if (!(diff <= 1e-6))
        bench_die("cairn-batch-score's predictions differ from python3-xgboost's by %g",
                  diff);
    double c = (double)o.rows / bench_median(tc, n),
           p = (double)o.rows / bench_median(tp, n);
    double r = c / p;
    bench_out(
        "\nbatch scoring of the file, %d runs each (predictions equal to %.1g)\n"
        "   cairn-batch-score (process, load, read, score, write)  median %8.3f s  "
        "%10.0f rows/s\n"
        "   pandas.read_csv + DMatrix + Booster.predict           median %8.3f s  "
        "%10.0f rows/s\n"
        "   cairn / python: %.2fx\n",
        n, diff, bench_median(tc, n), c, bench_median(tp, n), p, r);
    bench_fig("cairn_rows_per_s", c);
    bench_fig("python_rows_per_s", p);
    bench_fig("cairn_over_python", r);
    bench_verdict("1 batch rows/s >= python3-xgboost", r >= 1.0, ">= 1.00x", "%.2fx",
                  r);
    if (o.base.json) {
        printf(
            "{\"bench\": \"batch_score\", \"date\": \"%s\", \"quick\": %s, \"rows\": "
            "%ld, \"threads\": %d, ",
            host.date, o.base.quick ? "true" : "false", o.rows, o.threads);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(36, 10, 10);
        bench_verdicts_line(o.base.quick);
    }
    int misses = bench_misses();
    s_cleanup(false);
    bench_out("bench_batch_score: done\n");
    return o.base.strict && misses ? 3 : 0;
}
