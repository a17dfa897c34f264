/* bench_registry — the registry's ratio benchmark (issue 14).
 *
 *   bench_registry [--quick] [--json] [--rounds N] [--seconds S] [--window W]
 *                  [--versions N] [--queries N] [--size BYTES[K|M|G]]
 *                  [--files N] [--registers R] [--only LIST] [--cairnd PATH]
 *                  [--no-pin] [--strict]
 *
 * One private cairnd with the `registry` plugin inproc, and four cases:
 *
 *   alias    get_model_version_by_alias lock-step (what every scoring
 *            request's rollout asks) against sys.ping lock-step on the same
 *            socket (the kernel answers it itself: the bus floor), S seconds
 *            each, rounds alternating the order -> calls/s and the ratio,
 *            medians over rounds. Target >= 0.8x.
 *   search   N model versions (100 per model) registered through the API,
 *            W in flight; then search_model_versions by name (100 results)
 *            and by run_id (one), Q queries each -> p50/p99 ms. Target
 *            p99 < 50 ms at 100,000 versions.
 *   lineage  over the same versions: each registered with its run
 *            (run -> version), and each run but every tenth declaring the
 *            previous run's version as its input (log_input), so the graph
 *            holds 2N nodes in chains of 10 runs; then lineage up from a
 *            chain's last version at depth 10, Q queries -> p50/p99 ms.
 *            Target p99 < 20 ms at 100,000 versions.
 *   register a folder of --files files, --size bytes in all (default 8 files,
 *            1 GiB; --quick 32 MiB) of random bytes, written under $TMPDIR
 *            (else /tmp) in the kernel's temp dir, uploaded into a run with
 *            cairn_log_artifact one file after another (the peer: what
 *            registering would cost if it copied the bytes), then
 *            registered R times (a new version each) with
 *            create_model_version {name, source: "runs:/RUN/folder"}
 *            (registering pins the blobs, it copies nothing) -> upload
 *            time / median registration time. Target >= 50x. Each
 *            version's content_hash must be "sha256:..." and the artifact
 *            root must hold no new blob after the registrations (else exit
 *            1). This case adds `tracking` and `artifacts` (the storage
 *            plugin, inproc) to the kernel.
 *
 * Timings are never asserted: verdicts print PASS or MISS; --strict turns a
 * MISS into exit status 3. Every reply is checked (else exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "cairn/cairn.h"
#include "cairn/registry.h"
#include "cairn/tracking.h"

#define MAX_ROUNDS 20
#define IO_TIMEOUT_MS 60000
#define PER_MODEL 100
#define MAX_REGISTERS 20

typedef struct opts {
    bench_opts_t base;
    int versions, queries;
    int files, registers; /* register: the folder's files, registrations */
    uint64_t size;        /* register: the folder's bytes */
} opts_t;

static bench_kernel_t *g_kernel;

static void s_cleanup(bool failed)
{
    if (failed) bench_kernel_print_log(g_kernel, stderr);
    bench_kernel_destroy(&g_kernel);
}

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bench_registry [--quick] [--json] [--rounds N] [--seconds S] "
        "[--window W]\n"
        "                      [--versions N] [--queries N] [--only LIST] "
        "[--cairnd PATH] [--no-pin] [--strict]\n"
        "  --versions N  model versions for search (default 100,000; quick 2,000)\n"
        "  --queries N   queries per search kind (default 50; quick 10)\n"
        "  --size BYTES[K|M|G]  register: the folder's size (default 1G; quick "
        "32M)\n"
        "  --files N     register: files in the folder (default 8)\n"
        "  --registers R register: registrations, median taken (default 5; quick "
        "3)\n"
        "  --only LIST   comma-separated cases: alias, search, lineage, register\n");
}

/* ---- requests ------------------------------------------------------------- */

typedef struct body {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} body_t;

static msgpack_packer *s_body(body_t *b)
{
    msgpack_sbuffer_clear(&b->sb);
    return &b->pk;
}

/* One call; its reply must be 200 (else the bench dies naming what). */
static cairn_reply_t *s_call(cairn_client_t *c, const char *svc, const char *verb,
                             const body_t *b)
{
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    if (cairn_client_call(c, svc, verb, b ? b->sb.data : NULL, b ? b->sb.size : 0, 0,
                          &r, &err) != 0)
        bench_die("%s.%s: %d %s", svc, verb, err.st, err.msg);
    if (cairn_reply_status(r) != CAIRN_ST_OK)
        bench_die("%s.%s: %d %s", svc, verb, cairn_reply_status(r),
                  cairn_reply_error(r));
    return r;
}

static void s_model(cairn_client_t *c, body_t *b, const char *name)
{
    msgpack_packer *pk = s_body(b);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "name", name);
    cairn_reply_t *r = s_call(c, "registry", "create_registered_model", b);
    cairn_reply_destroy(&r);
}

/* ---- alias ------------------------------------------------------------------ */

/* Lock-step calls for seconds: calls/s. */
static double s_rate(cairn_client_t *c, body_t *alias, bool ping, double seconds)
{
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), n = 0;
    for (uint64_t now = t0; now < end; now = bench_now_ns(), n++) {
        cairn_reply_t *r =
            ping ? s_call(c, "sys", "ping", NULL)
                 : s_call(c, "registry", "get_model_version_by_alias", alias);
        cairn_reply_destroy(&r);
    }
    return (double)n / ((double)(bench_now_ns() - t0) / 1e9);
}

typedef struct alias_result {
    double alias[MAX_ROUNDS], ping[MAX_ROUNDS], ratio[MAX_ROUNDS];
    double alias_med, ping_med, ratio_med, ratio_cov;
} alias_result_t;

static void case_alias(const opts_t *o, cairn_client_t *c, alias_result_t *res)
{
    body_t b;
    msgpack_sbuffer_init(&b.sb);
    msgpack_packer_init(&b.pk, &b.sb, msgpack_sbuffer_write);
    s_model(c, &b, "bench-alias");
    msgpack_packer *pk = s_body(&b);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "name", "bench-alias");
    cairn_pack_kv_str(pk, "source", "/models/bench");
    cairn_reply_t *r = s_call(c, "registry", "create_model_version", &b);
    cairn_reply_destroy(&r);
    pk = s_body(&b);
    msgpack_pack_map(pk, 3);
    cairn_pack_kv_str(pk, "name", "bench-alias");
    cairn_pack_kv_str(pk, "alias", "champion");
    cairn_pack_cstr(pk, "version");
    msgpack_pack_int(pk, 1);
    r = s_call(c, "registry", "set_alias", &b);
    cairn_reply_destroy(&r);
    pk = s_body(&b);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "name", "bench-alias");
    cairn_pack_kv_str(pk, "alias", "champion");
    s_rate(c, &b, false, 0.2); /* warm both */
    s_rate(c, &b, true, 0.2);
    for (int i = 0; i < o->base.rounds; i++) {
        bool alias_first = i % 2 == 0;
        for (int side = 0; side < 2; side++) {
            bool ping = (side == 0) != alias_first;
            double v = s_rate(c, &b, ping, o->base.seconds);
            if (ping)
                res->ping[i] = v;
            else
                res->alias[i] = v;
        }
        res->ratio[i] = res->alias[i] / res->ping[i];
    }
    res->alias_med = bench_median(res->alias, o->base.rounds);
    res->ping_med = bench_median(res->ping, o->base.rounds);
    res->ratio_med = bench_median(res->ratio, o->base.rounds);
    res->ratio_cov = bench_cov(res->ratio, o->base.rounds);
    msgpack_sbuffer_destroy(&b.sb);
}

/* ---- search ----------------------------------------------------------------- */

typedef struct search_result {
    double populate_s, inputs_s;
    double by_name_p50, by_name_p99, by_run_p50, by_run_p99;
    double lineage_p50, lineage_p99;
} search_result_t;

/* n versions, PER_MODEL a model, window in flight: seconds taken. */
static double s_populate(cairn_client_t *c, int n, int window)
{
    body_t b;
    msgpack_sbuffer_init(&b.sb);
    msgpack_packer_init(&b.pk, &b.sb, msgpack_sbuffer_write);
    char name[32], src[48], run[32];
    for (int m = 0; m * PER_MODEL < n; m++) {
        snprintf(name, sizeof name, "m%d", m);
        s_model(c, &b, name);
    }
    cairn_err_t err = {0};
    int sent = 0, done = 0, inflight = 0;
    uint64_t t0 = bench_now_ns();
    while (done < n) {
        while (inflight < window && sent < n) {
            snprintf(name, sizeof name, "m%d", sent / PER_MODEL);
            snprintf(src, sizeof src, "/models/%d", sent);
            snprintf(run, sizeof run, "r%d", sent);
            msgpack_packer *pk = s_body(&b);
            msgpack_pack_map(pk, 3);
            cairn_pack_kv_str(pk, "name", name);
            cairn_pack_kv_str(pk, "source", src);
            cairn_pack_kv_str(pk, "run_id", run);
            if (cairn_client_send(c, "registry", "create_model_version", b.sb.data,
                                  b.sb.size, 0, NULL, &err) != 0)
                bench_die("populate: send: %s", err.msg);
            sent++;
            inflight++;
        }
        cairn_reply_t *r = NULL;
        if (cairn_client_recv(c, IO_TIMEOUT_MS, &r, &err) != 0)
            bench_die("populate: no reply: %d %s", err.st, err.msg);
        if (cairn_reply_status(r) != CAIRN_ST_OK)
            bench_die("populate: %d %s", cairn_reply_status(r), cairn_reply_error(r));
        cairn_reply_destroy(&r);
        inflight--;
        done++;
    }
    msgpack_sbuffer_destroy(&b.sb);
    return (double)(bench_now_ns() - t0) / 1e9;
}

/* q searches with filter fmt (one %d: a random model or run): p50, p99 ms;
 * each must return want versions. */
static void s_queries(cairn_client_t *c, const char *fmt, int range, int want, int q,
                      double *p50, double *p99)
{
    body_t b;
    msgpack_sbuffer_init(&b.sb);
    msgpack_packer_init(&b.pk, &b.sb, msgpack_sbuffer_write);
    double *lat = malloc(sizeof *lat * (size_t)q);
    if (!lat) bench_die("out of memory");
    char filter[96];
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < q; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        snprintf(filter, sizeof filter, fmt, (int)(x % (uint64_t)range));
        msgpack_packer *pk = s_body(&b);
        msgpack_pack_map(pk, 2);
        cairn_pack_kv_str(pk, "filter", filter);
        cairn_pack_cstr(pk, "max_results");
        msgpack_pack_int(pk, 100);
        uint64_t t0 = bench_now_ns();
        cairn_reply_t *r = s_call(c, "registry", "search_model_versions", &b);
        lat[i] = (double)(bench_now_ns() - t0) / 1e6;
        const msgpack_object *v =
            cairn_obj_get(cairn_reply_object(r), "model_versions");
        if (!v || v->type != MSGPACK_OBJECT_ARRAY || (int)v->via.array.size != want)
            bench_die("search %s: not %d versions", filter, want);
        cairn_reply_destroy(&r);
    }
    *p50 = bench_pct(lat, (size_t)q, 0.5);
    *p99 = bench_pct(lat, (size_t)q, 0.99);
    free(lat);
    msgpack_sbuffer_destroy(&b.sb);
}

/* Run r<i> read the version run r<i-1> produced, within chains of 10. */
static double s_inputs(cairn_client_t *c, int n, int window)
{
    body_t b;
    msgpack_sbuffer_init(&b.sb);
    msgpack_packer_init(&b.pk, &b.sb, msgpack_sbuffer_write);
    char run[32], input[64];
    cairn_err_t err = {0};
    int sent = 0, done = 0, inflight = 0, want = n - (n + 9) / 10;
    uint64_t t0 = bench_now_ns();
    for (int i = 0; done < want;) {
        while (inflight < window && sent < want) {
            while (i % 10 == 0) i++;
            snprintf(run, sizeof run, "r%d", i);
            snprintf(input, sizeof input, "model:m%d:%d", (i - 1) / PER_MODEL,
                     (i - 1) % PER_MODEL + 1);
            msgpack_packer *pk = s_body(&b);
            msgpack_pack_map(pk, 2);
            cairn_pack_kv_str(pk, "run_id", run);
            cairn_pack_kv_str(pk, "input", input);
            if (cairn_client_send(c, "registry", "log_input", b.sb.data, b.sb.size, 0,
                                  NULL, &err) != 0)
                bench_die("log_input: send: %s", err.msg);
            sent++, inflight++, i++;
        }
        cairn_reply_t *r = NULL;
        if (cairn_client_recv(c, IO_TIMEOUT_MS, &r, &err) != 0)
            bench_die("log_input: no reply: %d %s", err.st, err.msg);
        if (cairn_reply_status(r) != CAIRN_ST_OK)
            bench_die("log_input: %d %s", cairn_reply_status(r), cairn_reply_error(r));
        cairn_reply_destroy(&r);
        inflight--, done++;
    }
    msgpack_sbuffer_destroy(&b.sb);
    return (double)(bench_now_ns() - t0) / 1e9;
}

/* q lineage queries up from the last version of random full chains. */
static void s_lineage(cairn_client_t *c, int n, int q, double *p50, double *p99)
{
    body_t b;
    msgpack_sbuffer_init(&b.sb);
    msgpack_packer_init(&b.pk, &b.sb, msgpack_sbuffer_write);
    double *lat = malloc(sizeof *lat * (size_t)q);
    if (!lat) bench_die("out of memory");
    char node[64];
    uint64_t x = 0x2545f4914f6cdd1du;
    for (int k = 0; k < q; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int i = (int)(x % (uint64_t)(n / 10)) * 10 + 9; /* a chain's last run */
        snprintf(node, sizeof node, "model:m%d:%d", i / PER_MODEL, i % PER_MODEL + 1);
        msgpack_packer *pk = s_body(&b);
        msgpack_pack_map(pk, 3);
        cairn_pack_kv_str(pk, "node", node);
        cairn_pack_kv_str(pk, "direction", "up");
        cairn_pack_cstr(pk, "depth");
        msgpack_pack_int(pk, 10);
        uint64_t t0 = bench_now_ns();
        cairn_reply_t *r = s_call(c, "registry", "lineage", &b);
        lat[k] = (double)(bench_now_ns() - t0) / 1e6;
        const msgpack_object *e = cairn_obj_get(cairn_reply_object(r), "edges");
        if (!e || e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 10)
            bench_die("lineage %s: not 10 edges", node);
        cairn_reply_destroy(&r);
    }
    *p50 = bench_pct(lat, (size_t)q, 0.5);
    *p99 = bench_pct(lat, (size_t)q, 0.99);
    free(lat);
    msgpack_sbuffer_destroy(&b.sb);
}

static void case_search(const opts_t *o, cairn_client_t *c, search_result_t *res,
                        bool lineage)
{
    res->populate_s = s_populate(c, o->versions, o->base.window);
    if (lineage) {
        res->inputs_s = s_inputs(c, o->versions, o->base.window);
        s_lineage(c, o->versions, o->queries, &res->lineage_p50, &res->lineage_p99);
    }
    int models = (o->versions + PER_MODEL - 1) / PER_MODEL;
    int last = o->versions - (models - 1) * PER_MODEL; /* the last model's count */
    /* by name: models other than the last hold PER_MODEL versions */
    s_queries(c, "name = 'm%d'", models > 1 ? models - 1 : 1,
              models > 1 ? PER_MODEL : last, o->queries, &res->by_name_p50,
              &res->by_name_p99);
    s_queries(c, "run_id = 'r%d'", o->versions, 1, o->queries, &res->by_run_p50,
              &res->by_run_p99);
}

/* ---- register --------------------------------------------------------------- */

typedef struct register_result {
    double upload_s, register_s[MAX_REGISTERS], register_med_s, ratio;
    long blobs_before, blobs_uploaded, blobs_after;
} register_result_t;

static long g_blobs;

static int s_count_blob(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb, (void)ftw;
    if (flag == FTW_F && strstr(path, "/sha256/")) g_blobs++;
    return 0;
}

/* Files under any sha256/ folder of dir (the artifact root's blobs). */
static long s_blobs(const char *dir)
{
    g_blobs = 0;
    if (nftw(dir, s_count_blob, 16, FTW_PHYS) != 0)
        bench_die("cannot walk %s: %s", dir, strerror(errno));
    return g_blobs;
}

static void case_register(const opts_t *o, cairn_client_t *c, register_result_t *res)
{
    cairn_err_t err = {0};
    const char *dir = bench_kernel_dir(g_kernel);
    char src[PATH_MAX], file[PATH_MAX + 32], path[64];
    snprintf(src, sizeof src, "%s/folder", dir);
    if (mkdir(src, 0700) != 0) bench_die("cannot create %s: %s", src, strerror(errno));
    uint64_t each = o->size / (uint64_t)o->files;
    for (int i = 0; i < o->files; i++) {
        snprintf(file, sizeof file, "%s/part-%03d.bin", src, i);
        bench_make_file(file, i == o->files - 1 ? o->size - each * (uint64_t)i : each,
                        (uint64_t)i + 1, false);
    }
    char *exp = NULL, *run = NULL;
    if (cairn_create_experiment(c, "bench-register", &exp, &err) != 0)
        bench_die("create_experiment: %d %s", err.st, err.msg);
    if (cairn_create_run(c, exp, "register", NULL, &run, &err) != 0)
        bench_die("create_run: %d %s", err.st, err.msg);
    res->blobs_before = s_blobs(dir);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < o->files; i++) {
        snprintf(file, sizeof file, "%s/part-%03d.bin", src, i);
        snprintf(path, sizeof path, "folder/part-%03d.bin", i);
        if (cairn_log_artifact(c, run, file, path, NULL, NULL, &err) != 0)
            bench_die("upload of %s: %d %s", path, err.st, err.msg);
    }
    res->upload_s = (double)(bench_now_ns() - t0) / 1e9;
    res->blobs_uploaded = s_blobs(dir);
    if (res->blobs_uploaded - res->blobs_before != o->files)
        bench_die("the upload of %d files added %ld blobs", o->files,
                  res->blobs_uploaded - res->blobs_before);
    for (int i = 0; i < o->files; i++) { /* the source is no longer needed */
        snprintf(file, sizeof file, "%s/part-%03d.bin", src, i);
        unlink(file);
    }
    rmdir(src);
    if (cairn_registry_create_model(c, "bench-register", NULL, &err) != 0)
        bench_die("create_registered_model: %d %s", err.st, err.msg);
    char source[128];
    snprintf(source, sizeof source, "runs:/%s/folder", run);
    for (int k = 0; k < o->registers; k++) {
        cairn_model_version_t *v = NULL;
        t0 = bench_now_ns();
        if (cairn_registry_create_version(c, "bench-register", source, "custom", &v,
                                          &err) != 0)
            bench_die("create_model_version %s: %d %s", source, err.st, err.msg);
        res->register_s[k] = (double)(bench_now_ns() - t0) / 1e9;
        const char *h = cairn_model_version_get(v, "content_hash");
        if (strncmp(h, "sha256:", 7) != 0 || strlen(h) != 7 + 64)
            bench_die("version %lld: content_hash '%s', not sha256:...",
                      (long long)cairn_model_version_number(v), h);
        if (cairn_model_version_number(v) != k + 1)
            bench_die("registration %d made version %lld", k + 1,
                      (long long)cairn_model_version_number(v));
        cairn_model_version_free(&v);
    }
    res->blobs_after = s_blobs(dir);
    if (res->blobs_after != res->blobs_uploaded)
        bench_die("registering added blobs: %ld before, %ld after", res->blobs_uploaded,
                  res->blobs_after);
    res->register_med_s = bench_median(res->register_s, o->registers);
    res->ratio = res->upload_s / res->register_med_s;
    free(exp);
    free(run);
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    bench_init("bench_registry", s_cleanup);
    opts_t o = {.base = {.rounds = 5, .seconds = 1.0, .window = 64, .pin = true},
                .versions = 100000,
                .queries = 50,
                .files = 8,
                .registers = 5,
                .size = 1ull << 30};
    bool versions_set = false, queries_set = false, size_set = false,
         registers_set = false;
    for (int i = 1; i < argc; i++) {
        if (bench_opts_take(&o.base, argc, argv, &i)) continue;
        if (!strcmp(argv[i], "--versions") && i + 1 < argc) {
            o.versions = atoi(argv[++i]);
            versions_set = true;
        } else if (!strcmp(argv[i], "--queries") && i + 1 < argc) {
            o.queries = atoi(argv[++i]);
            queries_set = true;
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            o.size = bench_parse_size(argv[++i]);
            size_set = true;
        } else if (!strcmp(argv[i], "--files") && i + 1 < argc) {
            o.files = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--registers") && i + 1 < argc) {
            o.registers = atoi(argv[++i]);
            registers_set = true;
        } else {
            bench_arg_rest("bench_registry", argv[i], s_usage);
        }
    }
    if (o.base.quick) {
        if (!o.base.rounds_set) o.base.rounds = 1;
        if (!o.base.seconds_set) o.base.seconds = 0.2;
        if (!versions_set) o.versions = 2000;
        if (!queries_set) o.queries = 10;
        if (!size_set) o.size = 32ull << 20;
        if (!registers_set) o.registers = 3;
    }
    if (o.base.rounds < 1 || o.base.rounds > MAX_ROUNDS || o.versions < PER_MODEL ||
        o.queries < 1 || o.base.window < 1 || o.files < 1 || o.files > 1000 ||
        o.size < (uint64_t)o.files || o.registers < 1 || o.registers > MAX_REGISTERS)
        bench_die(
            "--rounds 1..%d, --versions >= %d, --queries and --window >= 1, "
            "--files 1..1000, --size 1..64G (a byte a file at least), "
            "--registers 1..%d",
            MAX_ROUNDS, PER_MODEL, MAX_REGISTERS);
    bench_text_set(!o.base.json);
    cairn_err_t err = {0};
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    if (strlen(tmp) > 200) bench_die("$TMPDIR is too long");
    char tmp_prefix[PATH_MAX];
    snprintf(tmp_prefix, sizeof tmp_prefix, "%s/cairn-bench-registry-", tmp);
    if (!(g_kernel = bench_kernel_new(o.base.cairnd, tmp_prefix, &err)))
        bench_die("%s", err.msg);
    int srv_cpu = -1, cli_cpu = -1;
    if (o.base.pin && bench_pick_cpus(&srv_cpu, &cli_cpu) &&
        bench_pin(cli_cpu, &err) != 0)
        bench_warn("cannot pin: %s", err.msg);
    /* register needs the run's artifacts: tracking and artifacts too */
    bool run_register = bench_in_list(o.base.only, "register");
    if (bench_kernel_start(
            g_kernel,
            run_register ? "  tracking:\n    plugin: storage\n    mode: inproc\n"
                           "  artifacts:\n    plugin: storage\n    mode: inproc\n"
                           "  registry:\n    plugin: registry\n    mode: inproc\n"
                         : "  registry:\n    plugin: registry\n    mode: inproc\n",
            srv_cpu, &err) != 0)
        bench_die("%s", err.msg);
    cairn_client_t *c = bench_kernel_wait(g_kernel, run_register ? 3 : 1, &err);
    if (!c) bench_die("%s", err.msg);
    cairn_client_set_ttl(c, IO_TIMEOUT_MS);
    bench_host_t host;
    bench_host(&host);
    bench_out(
        "bench_registry: the model registry through cairnd (registry plugin, "
        "inproc%s)\n"
        "host: %ld CPUs, Linux %s, %s%s\n",
        run_register ? "; tracking and artifacts: storage, inproc" : "", host.ncpu,
        host.kernel, host.date, o.base.quick ? " (--quick: smoke only)" : "");
    alias_result_t al = {0};
    search_result_t se = {0};
    register_result_t rg = {0};
    bool run_alias = bench_in_list(o.base.only, "alias");
    bool run_lineage = bench_in_list(o.base.only, "lineage");
    bool run_search = run_lineage || bench_in_list(o.base.only, "search");
    if (run_alias) {
        case_alias(&o, c, &al);
        bench_out(
            "\n1. alias: lock-step, %d round(s) of %.1f s each side, alternating\n"
            "   get_model_version_by_alias %.0f calls/s, sys.ping %.0f calls/s: "
            "%.2fx (CoV %.2f)\n",
            o.base.rounds, o.base.seconds, al.alias_med, al.ping_med, al.ratio_med,
            al.ratio_cov);
        bench_fig("alias_calls_per_s", al.alias_med);
        bench_fig("ping_calls_per_s", al.ping_med);
        bench_fig("alias_vs_ping", al.ratio_med);
        bench_verdict("1 get_model_version_by_alias >= 0.8x sys.ping",
                      al.ratio_med >= 0.8, ">= 0.8x", "%.2fx", al.ratio_med);
    }
    if (run_search) {
        case_search(&o, c, &se, run_lineage);
        bench_out(
            "\n2. search: %d versions (%d a model) registered in %.1f s (%.0f/s, %d in "
            "flight)\n"
            "   search_model_versions name = 'mK' (100 results): p50 %.2f ms, p99 "
            "%.2f ms\n"
            "   search_model_versions run_id = 'rN' (1 result): p50 %.2f ms, p99 "
            "%.2f ms\n",
            o.versions, PER_MODEL, se.populate_s, o.versions / se.populate_s,
            o.base.window, se.by_name_p50, se.by_name_p99, se.by_run_p50,
            se.by_run_p99);
        bench_fig("versions", o.versions);
        bench_fig("populate_versions_per_s", o.versions / se.populate_s);
        bench_fig("search_by_name_p50_ms", se.by_name_p50);
        bench_fig("search_by_name_p99_ms", se.by_name_p99);
        bench_fig("search_by_run_p50_ms", se.by_run_p50);
        bench_fig("search_by_run_p99_ms", se.by_run_p99);
        double worst = se.by_name_p99 > se.by_run_p99 ? se.by_name_p99 : se.by_run_p99;
        bench_verdict("2 search_model_versions p99 < 50 ms", worst < 50.0, "< 50 ms",
                      "%.1f / %.1f ms", se.by_name_p99, se.by_run_p99);
    }
    if (run_lineage) {
        bench_out(
            "\n3. lineage: %d inputs declared in %.1f s; lineage up from a chain's "
            "last version, depth 10 (10 edges) over %d nodes: p50 %.2f ms, p99 "
            "%.2f ms\n",
            o.versions - (o.versions + 9) / 10, se.inputs_s, 2 * o.versions,
            se.lineage_p50, se.lineage_p99);
        bench_fig("lineage_p50_ms", se.lineage_p50);
        bench_fig("lineage_p99_ms", se.lineage_p99);
        bench_verdict("3 lineage depth 10 p99 < 20 ms", se.lineage_p99 < 20.0,
                      "< 20 ms", "%.2f ms", se.lineage_p99);
    }
    if (run_register) {
        case_register(&o, c, &rg);
        bench_out(
            "\n4. register: a folder of %d files, %.1f MiB in all, from a run's "
            "artifacts\n"
            "   upload (cairn_log_artifact, file after file) %.3f s (%.0f MiB/s); "
            "create_model_version runs:/RUN/folder, %d time(s): median %.2f ms: "
            "%.0fx\n"
            "   blobs under the artifact root: %ld before the upload, %ld after "
            "it, %ld after the registrations (none copied)\n",
            o.files, (double)o.size / (1 << 20), rg.upload_s,
            (double)o.size / (1 << 20) / rg.upload_s, o.registers,
            rg.register_med_s * 1e3, rg.ratio, rg.blobs_before, rg.blobs_uploaded,
            rg.blobs_after);
        bench_fig("register_bytes", (double)o.size);
        bench_fig("register_upload_s", rg.upload_s);
        bench_fig("register_median_ms", rg.register_med_s * 1e3);
        bench_fig("upload_vs_register", rg.ratio);
        bench_verdict("4 register a folder >= 50x faster than upload", rg.ratio >= 50.0,
                      ">= 50x", "%.0fx", rg.ratio);
    }
    if (o.base.json) {
        printf(
            "{\"bench\": \"registry\", \"date\": \"%s\", \"quick\": %s, \"versions\": "
            "%d, ",
            host.date, o.base.quick ? "true" : "false", o.versions);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(48, 30, 12);
        bench_verdicts_line(o.base.quick);
    }
    cairn_client_destroy(&c);
    int misses = bench_misses();
    s_cleanup(false);
    bench_out("bench_registry: done\n");
    return o.base.strict && misses ? 3 : 0;
}
