/* bench_artifacts — artifact upload and download against `cp` (issue 12).
 *
 *   bench_artifacts [--quick] [--json] [--rounds N] [--size BYTES[K|M|G]]
 *                   [--cairnd PATH] [--pin] [--keep] [--strict]
 *
 * One private cairnd with `tracking` and `artifacts` (the storage plugin,
 * inproc, defaults), its temp dir (and so its state dir, where the blobs
 * go) under $CAIRN_BENCH_DIR, else /var/tmp. A source file of --size bytes
 * (default 1 GiB; --quick 16 MiB) of random bytes is written there. Every
 * round then runs, in this order:
 *
 *   cp up     `cp SRC COPY` then fsync(COPY): the peer of an upload. cairn
 *             fsyncs a blob before it acknowledges it, so the copy is
 *             fsync'ed too (and timed); both end on the same filesystem.
 *   upload    cairn_log_artifact_ex(SRC) into a fresh path, hash-verified
 *             at both ends; the artifact is deleted afterwards (its blob
 *             goes with it), and SRC's first 8 bytes are stamped with the
 *             round, so that every upload writes a new blob.
 *   cp down   `cp SRC COPY` then fsync(COPY): the peer of a download.
 *   download  cairn_download_artifact_ex of an artifact of --size bytes
 *             (uploaded once at the start) to a file in the same dir:
 *             written to a temp file, verified, fsync'ed, renamed.
 *
 * ratio = cp time / cairn time, per round, then the median over rounds
 * (and its CoV); target >= 0.8 both ways. Also cairnd's peak RSS (VmHWM),
 * the CPU time each side spent (cp: the child's; cairn: this process, its
 * ZeroMQ thread included, and cairnd), and the hash floor: one SHA-256
 * pass over the file in this process (sdk/chash.h, as both ends use), which
 * a transfer pays twice (the client and the server each hash every byte);
 * one BLAKE2b-256 pass too, for information (the hash of artifacts stored
 * before SHA-256, and of every transfer before it).
 * The source is in the page cache for both cp and cairn alike (written
 * just before). Timings are never asserted: verdicts print PASS or MISS;
 * --strict turns a MISS into exit status 3. Every transfer must succeed
 * and verify (else exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "chash.h"
#include "cairn/cairn.h"

#define MAX_ROUNDS 20

static bench_kernel_t *g_kernel;
static bool g_keep;

static void cleanup(bool failed)
{
    if (failed) bench_kernel_print_log(g_kernel, stderr);
    if (g_kernel && g_keep) bench_warn("kept %s", bench_kernel_dir(g_kernel));
    bench_kernel_destroy(&g_kernel);
}

/* ---- files ------------------------------------------------------------------ */

/* Stamp the file's first 8 bytes (a new blob each round). */
static void s_stamp(const char *path, uint64_t v)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, &v, sizeof v, 0) != (ssize_t)sizeof v || close(fd) != 0)
        bench_die("cannot stamp %s: %s", path, strerror(errno));
}

/* CPU seconds this process (who RUSAGE_SELF), this thread (RUSAGE_THREAD)
 * or its reaped children (RUSAGE_CHILDREN: the cp runs) have used. */
static double s_cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double s_proc_cpu_s(pid_t pid)
{
    uint64_t ns = 0;
    bench_proc_cpu_ns(pid, &ns);
    return (double)ns / 1e9;
}

/* One pass of alg over the file (in the page cache): CPU seconds of this
 * thread (reading it included), which other load does not inflate. */
static double s_hash_floor(const char *path, cairn_chash_alg_t alg)
{
    enum { BUF = 4 << 20 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char *buf = malloc(BUF), h[CAIRN_CHASH_BYTES];
    if (fd < 0 || !buf || sodium_init() < 0) bench_die("cannot hash %s", path);
    cairn_chash_t st;
    cairn_chash_init(&st, alg);
    double t0 = s_cpu_s(RUSAGE_THREAD);
    ssize_t n;
    while ((n = read(fd, buf, BUF)) > 0) cairn_chash_update(&st, buf, (size_t)n);
    cairn_chash_final(&st, h);
    double s = s_cpu_s(RUSAGE_THREAD) - t0;
    close(fd);
    free(buf);
    return s;
}

/* ---- the cairn side --------------------------------------------------------- */

static double s_upload(cairn_client_t *c, const char *run, const char *src,
                       const char *path, uint64_t size)
{
    cairn_err_t err = {0};
    cairn_artifact_info_t info;
    uint64_t t0 = bench_now_ns();
    if (cairn_log_artifact_ex(c, run, src, path, NULL, NULL, &info, &err) != 0)
        bench_die("upload of %s: %d %s", path, err.st, err.msg);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    if (info.size != size)
        bench_die("upload of %s: %llu bytes stored", path,
                  (unsigned long long)info.size);
    free(info.path);
    return s;
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
    cairn_err_t err = {0};
    if (cairn_client_call(c, CAIRN_ARTIFACTS_SVC, "delete_artifact", sb.data, sb.size,
                          0, NULL, &err) != 0)
        bench_die("delete_artifact %s: %d %s", path, err.st, err.msg);
    msgpack_sbuffer_destroy(&sb);
}

static double s_download(cairn_client_t *c, const char *run, const char *path,
                         const char *dst, uint64_t size)
{
    cairn_err_t err = {0};
    cairn_artifact_info_t info;
    unlink(dst);
    uint64_t t0 = bench_now_ns();
    if (cairn_download_artifact_ex(c, run, path, dst, NULL, NULL, &info, &err) != 0)
        bench_die("download of %s: %d %s", path, err.st, err.msg);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    struct stat sb;
    if (info.size != size || stat(dst, &sb) != 0 || (uint64_t)sb.st_size != size)
        bench_die("download of %s: %llu bytes", path, (unsigned long long)info.size);
    free(info.path);
    unlink(dst);
    return s;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_artifacts [--quick] [--json] [--rounds N] [--size BYTES]\n"
            "                       [--cairnd PATH] [--pin] [--keep] [--strict]\n"
            "  --quick      a smoke run (CI): 16 MiB, 2 rounds\n"
            "  --json       print one JSON object instead of the table\n"
            "  --rounds N   rounds of cp/upload/cp/download (default 5; quick 2)\n"
            "  --size B     the file's size, bytes, with an optional K, M or G "
            "(default 1G)\n"
            "  --cairnd P   the cairnd to start (default: beside this program)\n"
            "  --pin        pin cairnd to one CPU and this process to another\n"
            "  --keep       keep the temp dir (conf, cairnd.log, state) for a look\n"
            "  --strict     exit 3 when a verdict is MISS\n"
            "The temp dir is made under $CAIRN_BENCH_DIR, else /var/tmp.\n");
}

typedef struct sample {
    double cp_up, up, cp_down, down;
    double cpu_cp, cpu_up_cli, cpu_up_srv, cpu_down_cli, cpu_down_srv;
} sample_t;

int main(int argc, char **argv)
{
    bench_opts_t o = {.rounds = 5, .pin = false};
    uint64_t size = 1ull << 30;
    bool size_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bench_opts_take(&o, argc, argv, &i))
            continue;
        else if (!strcmp(a, "--keep"))
            g_keep = true;
        else if (!strcmp(a, "--size") && i + 1 < argc) {
            size = bench_parse_size(argv[++i]);
            size_set = true;
        } else
            bench_arg_rest("bench_artifacts", a, usage);
    }
    if (o.quick) {
        if (!o.rounds_set) o.rounds = 2;
        if (!size_set) size = 16ull << 20;
    }
    if (o.rounds < 1 || o.rounds > MAX_ROUNDS || size == 0) {
        fprintf(stderr, "bench_artifacts: --rounds 1..%d, --size 1..64G\n", MAX_ROUNDS);
        return 2;
    }
    bench_text_set(!o.json);
    bench_init("bench_artifacts", cleanup);

    cairn_err_t err = {0};
    const char *base = getenv("CAIRN_BENCH_DIR");
    if (!base || !*base) base = "/var/tmp";
    if (strlen(base) > 200) bench_die("$CAIRN_BENCH_DIR is too long");
    char tmp_prefix[PATH_MAX];
    snprintf(tmp_prefix, sizeof tmp_prefix, "%s/cairn-bench-artifacts-", base);
    if (!(g_kernel = bench_kernel_new(o.cairnd, tmp_prefix, &err)))
        bench_die("%s", err.msg);
    if (g_keep) bench_kernel_keep(g_kernel);
    const char *dir = bench_kernel_dir(g_kernel);

    int srv_cpu = -1, cli_cpu = -1;
    if (!o.pin || !bench_pick_cpus(&srv_cpu, &cli_cpu)) o.pin = false;
    uint64_t t_start = bench_now_ns();
    if (bench_kernel_start(g_kernel,
                           "  tracking:\n"
                           "    plugin: storage\n"
                           "    mode: inproc\n"
                           "  artifacts:\n"
                           "    plugin: storage\n"
                           "    mode: inproc\n",
                           srv_cpu, &err) != 0)
        bench_die("%s", err.msg);
    pid_t cairnd = bench_kernel_pid(g_kernel);
    if (bench_pin(cli_cpu, &err) != 0) bench_warn("%s", err.msg);
    cairn_client_t *c = bench_kernel_wait(g_kernel, 2, &err);
    if (!c)
        bench_die(
            "%s%s", err.msg,
            strcmp(err.code, "cairnd_exited") ? "" : "; is cairn_storage.so built?");
    cairn_client_set_ttl(c, 120000);
    char *exp = NULL, *run = NULL;
    if (cairn_create_experiment(c, "bench-artifacts", &exp, &err) != 0)
        bench_die("create_experiment: %d %s", err.st, err.msg);
    if (cairn_create_run(c, exp, "artifacts", NULL, &run, &err) != 0)
        bench_die("create_run: %d %s", err.st, err.msg);

    char src[PATH_MAX], copy[PATH_MAX], dst[PATH_MAX];
    snprintf(src, sizeof src, "%s/src.bin", dir);
    snprintf(copy, sizeof copy, "%s/copy.bin", dir);
    snprintf(dst, sizeof dst, "%s/download.bin", dir);
    bench_make_file(src, size, 0, true);
    /* The download's artifact: its own blob (stamped apart from every
     * round's upload), uploaded once. */
    s_stamp(src, UINT64_MAX);
    s_upload(c, run, src, "download/src.bin", size);

    bench_host_t host;
    bench_host(&host);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_artifacts: artifact upload and download vs cp + fsync, same "
        "filesystem\n");
    bench_out("host: %ld CPUs, Linux %s, %s\n", host.ncpu, host.kernel, host.date);
    bench_out("dir: %s; file %.1f MiB; %d round(s)%s\n", dir, (double)size / (1 << 20),
              o.rounds, o.quick ? " (--quick: smoke only)" : "");
    bench_out("%s; load average at start %s\n", o.pin ? "pinned" : "not pinned", load);

    sample_t smp[MAX_ROUNDS];
    double r_up[MAX_ROUNDS], r_down[MAX_ROUNDS];
    for (int r = 0; r < o.rounds; r++) {
        sample_t *s = &smp[r];
        char path[64];
        snprintf(path, sizeof path, "up/round%d.bin", r);
        s_stamp(src, (uint64_t)r);
        double cc = s_cpu_s(RUSAGE_CHILDREN);
        s->cp_up = bench_cp_fsync(src, copy);
        s->cpu_cp = s_cpu_s(RUSAGE_CHILDREN) - cc;
        double cl = s_cpu_s(RUSAGE_SELF), sv = s_proc_cpu_s(cairnd);
        s->up = s_upload(c, run, src, path, size);
        s->cpu_up_cli = s_cpu_s(RUSAGE_SELF) - cl;
        s->cpu_up_srv = s_proc_cpu_s(cairnd) - sv;
        s_delete(c, run, path);
        s->cp_down = bench_cp_fsync(src, copy);
        cl = s_cpu_s(RUSAGE_SELF), sv = s_proc_cpu_s(cairnd);
        s->down = s_download(c, run, "download/src.bin", dst, size);
        s->cpu_down_cli = s_cpu_s(RUSAGE_SELF) - cl;
        s->cpu_down_srv = s_proc_cpu_s(cairnd) - sv;
        r_up[r] = s->cp_up / s->up;
        r_down[r] = s->cp_down / s->down;
        bench_out(
            "round %d: cp %.3f s, upload %.3f s (%.2fx); cp %.3f s, download "
            "%.3f s (%.2fx)\n",
            r + 1, s->cp_up, s->up, r_up[r], s->cp_down, s->down, r_down[r]);
    }
    double up = bench_median(r_up, o.rounds), up_cov = bench_cov(r_up, o.rounds);
    double down = bench_median(r_down, o.rounds),
           down_cov = bench_cov(r_down, o.rounds);
    double t_up = BENCH_MEDIAN_FIELD(smp, sample_t, up, o.rounds);
    double t_down = BENCH_MEDIAN_FIELD(smp, sample_t, down, o.rounds);
    double t_cp = BENCH_MEDIAN_FIELD(smp, sample_t, cp_up, o.rounds);
    double rss = bench_proc_status_mib(cairnd, "VmHWM");
    double mib = (double)size / (1 << 20);
    bench_out(
        "\nmedians: cp %.3f s (%.0f MiB/s), upload %.3f s (%.0f MiB/s), download "
        "%.3f s (%.0f MiB/s)\n",
        t_cp, mib / t_cp, t_up, mib / t_up, t_down, mib / t_down);
    bench_out("upload:   %.2fx cp (CoV %.1f%%)\n", up, up_cov * 100);
    bench_out("download: %.2fx cp (CoV %.1f%%)\n", down, down_cov * 100);
    double gib = (double)size / (1 << 30);
    double cpu_cp = BENCH_MEDIAN_FIELD(smp, sample_t, cpu_cp, o.rounds) / gib;
    double cpu_uc = BENCH_MEDIAN_FIELD(smp, sample_t, cpu_up_cli, o.rounds) / gib;
    double cpu_us = BENCH_MEDIAN_FIELD(smp, sample_t, cpu_up_srv, o.rounds) / gib;
    double cpu_dc = BENCH_MEDIAN_FIELD(smp, sample_t, cpu_down_cli, o.rounds) / gib;
    double cpu_ds = BENCH_MEDIAN_FIELD(smp, sample_t, cpu_down_srv, o.rounds) / gib;
    double hash = s_hash_floor(src, CAIRN_CHASH_SHA256) / gib;
    double b2 = s_hash_floor(src, CAIRN_CHASH_BLAKE2B) / gib;
    bench_out(
        "CPU s per GiB: cp %.2f; upload %.2f client + %.2f cairnd; download %.2f "
        "client + %.2f cairnd\n",
        cpu_cp, cpu_uc, cpu_us, cpu_dc, cpu_ds);
    bench_out(
        "hash floor: one SHA-256 pass %.2f CPU s per GiB (%.0f MiB/s, %s); a transfer "
        "hashes twice, %.2f CPU s per GiB\n",
        hash, 1024 / hash,
        cairn_sha256_accelerated() ? "SHA extensions" : "portable, no SHA extensions",
        2 * hash);
    bench_out(
        "info: one BLAKE2b pass %.2f CPU s per GiB (%.0f MiB/s): artifacts stored "
        "before SHA-256\n",
        b2, 1024 / b2);
    bench_out("cairnd peak RSS: %.1f MiB\n", rss);
    bench_figf(cpu_cp, "cp_cpu_s_per_gib");
    bench_figf(cpu_uc + cpu_us, "upload_cpu_s_per_gib");
    bench_figf(cpu_dc + cpu_ds, "download_cpu_s_per_gib");
    bench_figf(hash, "sha256_s_per_gib");
    bench_figf(b2, "blake2b_s_per_gib");
    bench_figf(up, "upload_vs_cp");
    bench_figf(down, "download_vs_cp");
    bench_figf(t_up, "upload_s");
    bench_figf(t_down, "download_s");
    bench_figf(t_cp, "cp_s");
    bench_figf(rss, "cairnd_peak_rss_mib");
    bench_verdict("upload: cp time / upload time >= 0.8", up >= 0.8, ">= 0.80", "%.2fx",
                  up);
    bench_verdict("download: cp time / download time >= 0.8", down >= 0.8, ">= 0.80",
                  "%.2fx", down);
    int misses = bench_misses();
    double total_s = (double)(bench_now_ns() - t_start) / 1e9;
    if (o.json) {
        printf(
            "{\"bench\": \"artifacts\", \"date\": \"%s\", \"cpus\": %ld, \"kernel\": "
            "\"%s\", \"quick\": %s, \"rounds\": %d, \"size\": %llu, \"seconds\": "
            "%.1f, ",
            host.date, host.ncpu, host.kernel, o.quick ? "true" : "false", o.rounds,
            (unsigned long long)size, total_s);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(44, 10, 10);
        bench_out("ratios: upload %.2f, download %.2f (x cp)\n", up, down);
        bench_verdicts_line(o.quick);
        bench_out("ran %.0f s\n", total_s);
    }
    fflush(stdout);
    unlink(src);
    free(run);
    free(exp);
    cairn_client_destroy(&c);
    cleanup(false);
    if (!o.json) printf("bench_artifacts: done\n");
    return o.strict && misses ? 3 : 0;
}
