/* bench_durable — log_metric under `durability: power` against fsync floors.
 *
 *   bench_durable [--quick] [--json] [--rounds N] [--seconds S] [--only LIST]
 *                 [--conns N] [--cairnd PATH] [--pin] [--keep] [--strict]
 *
 * One private cairnd whose only service is `tracking` (the storage plugin,
 * inproc, `durability: power`: every acknowledged log_metric is
 * fdatasync'ed before its 200). Its temp dir, and so the database and the
 * metric journal in its state dir, is under $CAIRN_BENCH_DIR, else
 * /var/tmp: never tmpfs, where fdatasync costs nothing (checked with
 * statfs; the bench refuses to run there).
 *
 * For in-flight levels L = 1, 4, 16, 64 (--quick: 1, 16), log_metric calls
 * ({run_id, key, value, step, timestamp}, every step distinct) are kept
 * exactly L in flight for S seconds -> calls/s (replies received within the
 * S seconds), and RTT p50/p99. Beside them, in the same directory, two
 * floors, one call at a time in this process:
 *
 *   fsync floor   write() of a 200-byte record appended to a file, then
 *                 fdatasync() -> calls/s: what any store that syncs once per
 *                 acknowledged call can do at most with one writer.
 *   sqlite FULL   one INSERT of one row per transaction into a WAL database
 *                 with synchronous=FULL (stock SQLite otherwise) -> commits/s.
 *
 * and, for reference, the bus alone: sys.ping lock-step on the same
 * cairnd (the kernel answers it; no plugin, no disk) -> its RTT, which a
 * lock-step log_metric pays on top of its fdatasync (plus the hop to the
 * plugin's thread, where `durability: power` runs log_metric).
 *
 * Every round runs each case once, round-robin, each round starting one
 * case later, so that whatever else the machine does hits all alike; the
 * ratios are taken round by round, then their median. Above L = 1, the
 * ratio vs the fsync floor only exceeds 1 when several acknowledged calls
 * share one fdatasync (group commit).
 *
 * Timings are never asserted: verdicts print PASS or MISS; only --strict
 * turns a MISS into exit status 3. Every reply must be 200 (else exit 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "bench_util.h"
#include "cairn/cairn.h"

#define MAX_ROUNDS 20
#define IO_TIMEOUT_MS 60000
#define TS0 INT64_C(1700000000000)
#define RECORD_BYTES 200 /* the fsync floor's record: about a journal record */
#define MAX_CONNS 64
#define NLEVELS 4
static const int LEVELS[NLEVELS] = {1, 4, 16, 64};
#define F_FSYNC 0  /* case index: the fsync floor */
#define F_SQLITE 1 /* the SQLite FULL floor */
#define F_PING 2   /* the bus: sys.ping lock-step (no plugin, no disk) */
#define NCASES (3 + NLEVELS)
#define LV(l) (3 + (l)) /* the case of level index l */
_Static_assert(MAX_ROUNDS <= BENCH_MAX_ROUNDS, "rounds beyond bench_median's reach");

/* ---- the process, cleanup ------------------------------------------------------ */

static bench_kernel_t *g_kernel;
static bool g_keep;

static void cleanup(bool failed)
{
    if (failed) bench_kernel_print_log(g_kernel, stderr);
    if (g_kernel && g_keep) bench_warn("kept %s", bench_kernel_dir(g_kernel));
    bench_kernel_destroy(&g_kernel);
}

/* ---- latencies ----------------------------------------------------------------- */

typedef struct lats {
    double *v; /* µs */
    size_t n, cap;
} lats_t;

static void lats_add(lats_t *l, double us)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        double *v = realloc(l->v, cap * sizeof *v);
        if (!v) return; /* out of memory: the percentiles use fewer */
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = us;
}

/* One sample of one case. */
typedef struct sample {
    double rate;     /* calls (or commits) per second */
    double p50, p99; /* µs */
} sample_t;

static void s_finish(sample_t *s, lats_t *l, size_t n, double secs)
{
    s->rate = (double)n / secs;
    s->p50 = bench_pct(l->v, l->n, 0.50);
    s->p99 = bench_pct(l->v, l->n, 0.99);
    l->n = 0;
}

/* ---- floors: one call at a time, in this process, in the bench's dir ----------- */

static int g_floor_fd = -1;
static sqlite3 *g_floor_db;
static sqlite3_stmt *g_floor_ins;
static int64_t g_floor_step;
static lats_t g_floor_lat;

static void fsync_floor(double secs, sample_t *s)
{
    static char rec[RECORD_BYTES];
    if (ftruncate(g_floor_fd, 0) != 0 || fdatasync(g_floor_fd) != 0)
        bench_die("fsync floor: truncate: %s", strerror(errno));
    size_t n = 0;
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    while (n < 10 || bench_now_ns() < end) {
        uint64_t a = bench_now_ns();
        snprintf(rec, sizeof rec, "%zu %.17g", n, 1.0 / (double)(n + 1));
        if (write(g_floor_fd, rec, sizeof rec) != (ssize_t)sizeof rec)
            bench_die("fsync floor: write: %s", strerror(errno));
        if (fdatasync(g_floor_fd) != 0)
            bench_die("fsync floor: fdatasync: %s", strerror(errno));
        lats_add(&g_floor_lat, (double)(bench_now_ns() - a) / 1e3);
        n++;
    }
    s_finish(s, &g_floor_lat, n, (double)(bench_now_ns() - t0) / 1e9);
}

static void s_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        bench_die("sqlite: %s: %s", sql, msg ? msg : "?");
}

static void sqlite_floor(double secs, sample_t *s)
{
    size_t n = 0;
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    while (n < 10 || bench_now_ns() < end) {
        uint64_t a = bench_now_ns();
        int64_t step = g_floor_step++;
        sqlite3_bind_int64(g_floor_ins, 1, 1);
        sqlite3_bind_text(g_floor_ins, 2, "durable/loss", -1, SQLITE_STATIC);
        sqlite3_bind_int64(g_floor_ins, 3, step);
        sqlite3_bind_int64(g_floor_ins, 4, TS0 + step);
        sqlite3_bind_double(g_floor_ins, 5, 1.0 / (double)(step + 1));
        if (sqlite3_step(g_floor_ins) != SQLITE_DONE) /* autocommit: one txn */
            bench_die("sqlite FULL floor: insert: %s", sqlite3_errmsg(g_floor_db));
        sqlite3_reset(g_floor_ins);
        lats_add(&g_floor_lat, (double)(bench_now_ns() - a) / 1e3);
        n++;
    }
    s_finish(s, &g_floor_lat, n, (double)(bench_now_ns() - t0) / 1e9);
}

static void ping_sample(cairn_client_t *c, double secs, sample_t *s)
{
    cairn_err_t err = {0};
    size_t n = 0;
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    while (n < 10 || bench_now_ns() < end) {
        uint64_t a = bench_now_ns();
        if (cairn_client_call(c, "sys", "ping", NULL, 0, 0, NULL, &err) != 0)
            bench_die("sys.ping: %d %s", err.st, err.msg);
        lats_add(&g_floor_lat, (double)(bench_now_ns() - a) / 1e3);
        n++;
    }
    s_finish(s, &g_floor_lat, n, (double)(bench_now_ns() - t0) / 1e9);
}

static void floors_open(const char *dir)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/fsync-floor.log", dir);
    g_floor_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (g_floor_fd < 0) bench_die("open %s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/floor-full.db", dir);
    if (sqlite3_open(path, &g_floor_db) != SQLITE_OK)
        bench_die("sqlite3_open %s", path);
    s_sql(g_floor_db, "PRAGMA journal_mode = WAL");
    s_sql(g_floor_db, "PRAGMA synchronous = FULL");
    s_sql(
        g_floor_db,
        "CREATE TABLE metrics (run_id INTEGER NOT NULL, key TEXT NOT NULL, step "
        "INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL, PRIMARY KEY (run_id, key, "
        "step, ts))");
    if (sqlite3_prepare_v2(g_floor_db, "INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", -1,
                           &g_floor_ins, NULL) != SQLITE_OK)
        bench_die("sqlite prepare: %s", sqlite3_errmsg(g_floor_db));
}

static void floors_close(void)
{
    sqlite3_finalize(g_floor_ins);
    sqlite3_close(g_floor_db);
    if (g_floor_fd >= 0) close(g_floor_fd);
    g_floor_fd = -1;
    free(g_floor_lat.v);
}

/* ---- log_metric with L in flight ----------------------------------------------- */

/* L calls in flight are spread over min(L, --conns) connections, each its
 * own cairn_client_t (its own DEALER socket) on its own thread, each keeping
 * L / conns calls pipelined (cairn_client_send/recv). Several connections,
 * not one: a job that logs durably with many calls in flight is most often
 * many processes (ranks, workers), each a client of its own, and the kernel
 * then queues requests from several peers for the plugin, as it would
 * there; pipelining on one socket alone would model one async logger only
 * (--conns 1 measures that). With the default cap of 16, in-flight 64 is 16
 * clients of 4 calls each: 16 threads rather than 64 on a small host. */

typedef struct conn {
    cairn_client_t *c;
    pthread_t thread;
    int depth; /* calls this connection keeps in flight */
    char key[32];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct {
        uint64_t id, sent;
    } slot[MAX_CONNS];
    size_t done; /* replies received within the sample */
    lats_t lat;
    char error[256]; /* set: the connection failed */
} conn_t;

static conn_t g_conns[MAX_CONNS];
static const char *g_run;
static _Atomic int64_t g_step;
static atomic_bool g_stop; /* a connection failed: the others wind down */
static pthread_barrier_t g_go;
static uint64_t g_t0, g_end; /* set before g_go releases the threads */

static int s_send(conn_t *k, int slot, cairn_err_t *err)
{
    int64_t step = atomic_fetch_add(&g_step, 1);
    msgpack_sbuffer_clear(&k->sb);
    msgpack_pack_map(&k->pk, 5);
    cairn_pack_kv_str(&k->pk, "run_id", g_run);
    cairn_pack_kv_str(&k->pk, "key", k->key);
    cairn_pack_cstr(&k->pk, "value");
    msgpack_pack_double(&k->pk, 1.0 / (double)(step + 1));
    cairn_pack_cstr(&k->pk, "step");
    msgpack_pack_int64(&k->pk, step);
    cairn_pack_cstr(&k->pk, "timestamp");
    msgpack_pack_int64(&k->pk, TS0 + step);
    k->slot[slot].sent = bench_now_ns();
    return cairn_client_send(k->c, "tracking", "log_metric", k->sb.data, k->sb.size, 0,
                             &k->slot[slot].id, err);
}

static void *s_conn_main(void *arg)
{
    conn_t *k = arg;
    cairn_err_t err = {0};
    int inflight = 0;
    pthread_barrier_wait(&g_go);
    for (int i = 0; i < k->depth; i++, inflight++)
        if (s_send(k, i, &err) != 0) {
            snprintf(k->error, sizeof k->error, "send: %d %s", err.st, err.msg);
            atomic_store(&g_stop, true);
            break;
        }
    while (inflight > 0) {
        cairn_reply_t *r = NULL;
        if (cairn_client_recv(k->c, IO_TIMEOUT_MS, &r, &err) != 0) {
            snprintf(k->error, sizeof k->error, "no reply: %d %s", err.st, err.msg);
            atomic_store(&g_stop, true);
            return NULL;
        }
        uint64_t now = bench_now_ns();
        inflight--;
        int slot = -1;
        for (int i = 0; i < k->depth && slot < 0; i++)
            if (k->slot[i].id == cairn_reply_id(r)) slot = i;
        int st = cairn_reply_status(r);
        if (slot < 0 || st != 200) {
            if (!k->error[0])
                snprintf(k->error, sizeof k->error, "%s: %d %s",
                         slot < 0 ? "a reply to no call in flight" : "log_metric", st,
                         cairn_reply_error(r));
            atomic_store(&g_stop, true);
        }
        cairn_reply_destroy(&r);
        if (slot < 0 || k->error[0]) continue; /* drain what is in flight */
        if (now <= g_end) {
            k->done++;
            lats_add(&k->lat, (double)(now - k->slot[slot].sent) / 1e3);
        }
        if (now < g_end && !atomic_load(&g_stop)) {
            if (s_send(k, slot, &err) != 0) {
                snprintf(k->error, sizeof k->error, "send: %d %s", err.st, err.msg);
                atomic_store(&g_stop, true);
            } else {
                inflight++;
            }
        }
    }
    return NULL;
}

static lats_t g_all_lat;

static void log_metric_sample(int level, int conns_max, double secs, sample_t *s)
{
    int nconn = level < conns_max ? level : conns_max;
    if (pthread_barrier_init(&g_go, NULL, (unsigned)nconn + 1) != 0)
        bench_die("pthread_barrier_init");
    for (int i = 0; i < nconn; i++) {
        conn_t *k = &g_conns[i];
        /* level / nconn, the remainder to the first ones: exactly level */
        k->depth = level / nconn + (i < level % nconn);
        k->done = 0;
        k->lat.n = 0;
        k->error[0] = '\0';
        if (pthread_create(&k->thread, NULL, s_conn_main, k) != 0)
            bench_die("pthread_create: %s", strerror(errno));
    }
    g_t0 = bench_now_ns();
    g_end = g_t0 + (uint64_t)(secs * 1e9);
    pthread_barrier_wait(&g_go);
    size_t done = 0;
    for (int i = 0; i < nconn; i++) {
        conn_t *k = &g_conns[i];
        pthread_join(k->thread, NULL);
        done += k->done;
        for (size_t j = 0; j < k->lat.n; j++) lats_add(&g_all_lat, k->lat.v[j]);
    }
    pthread_barrier_destroy(&g_go);
    for (int i = 0; i < nconn; i++)
        if (g_conns[i].error[0])
            bench_die("in flight %d, connection %d: %s", level, i, g_conns[i].error);
    s_finish(s, &g_all_lat, done, (double)(g_end - g_t0) / 1e9);
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench_durable [--quick] [--json] [--rounds N] [--seconds S] [--only "
        "LIST]\n"
        "                     [--conns N] [--cairnd PATH] [--pin] [--keep] [--strict]\n"
        "  --quick      a smoke run (CI): in flight 1 and 16, 2 rounds of 0.5 s\n"
        "  --json       print one JSON object instead of the table\n"
        "  --rounds N   round-robin rounds (default 5; quick 2)\n"
        "  --seconds S  seconds per case per round (default 2; quick 0.5)\n"
        "  --only LIST  comma-separated in-flight levels of 1,4,16,64 (the floors "
        "always run)\n"
        "  --conns N    at most N client connections (default 16); 1: all in flight "
        "on one\n"
        "  --cairnd P   the cairnd to start (default: beside this program)\n"
        "  --pin        pin cairnd to one CPU and this process to another (default: "
        "not;\n"
        "               the figures are bound by the disk, not by a CPU)\n"
        "  --keep       keep the temp dir (conf, cairnd.log, state) for a look\n"
        "  --strict     exit 3 when a verdict is MISS\n"
        "The temp dir is made under $CAIRN_BENCH_DIR, else /var/tmp; not on tmpfs.\n");
}

static const char *s_fs_name(long type)
{
    switch (type) {
        case EXT4_SUPER_MAGIC:
            return "ext2/3/4";
        case XFS_SUPER_MAGIC:
            return "xfs";
        case BTRFS_SUPER_MAGIC:
            return "btrfs";
        case OVERLAYFS_SUPER_MAGIC:
            return "overlayfs";
        case NFS_SUPER_MAGIC:
            return "nfs";
        case TMPFS_MAGIC:
            return "tmpfs";
        case RAMFS_MAGIC:
            return "ramfs";
        default:
            return "other";
    }
}

int main(int argc, char **argv)
{
    bench_opts_t o = {.rounds = 5, .seconds = 2.0, .pin = false};
    int conns_max = 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (bench_opts_take(&o, argc, argv, &i))
            continue;
        else if (!strcmp(a, "--keep"))
            g_keep = true;
        else if (!strcmp(a, "--conns") && i + 1 < argc)
            conns_max = atoi(argv[++i]);
        else
            bench_arg_rest("bench_durable", a, usage);
    }
    if (o.quick) {
        if (!o.rounds_set) o.rounds = 2;
        if (!o.seconds_set) o.seconds = 0.5;
    }
    /* The levels: those of --only, else all (--quick: 1 and 16). */
    int levels[NLEVELS], nlevels = 0;
    for (int i = 0; i < NLEVELS; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", LEVELS[i]);
        if (o.only ? bench_in_list(o.only, key)
                   : !o.quick || LEVELS[i] == 1 || LEVELS[i] == 16)
            levels[nlevels++] = LEVELS[i];
    }
    if (o.rounds < 1 || o.rounds > MAX_ROUNDS || o.seconds <= 0 || o.seconds > 60 ||
        conns_max < 1 || conns_max > MAX_CONNS || nlevels == 0) {
        fprintf(
            stderr,
            "bench_durable: --rounds 1..%d, --seconds (0, 60], --conns 1..%d, --only "
            "some of 1,4,16,64\n",
            MAX_ROUNDS, MAX_CONNS);
        return 2;
    }
    bench_text_set(!o.json);
    bench_init("bench_durable", cleanup);

    /* The temp dir: on a real disk (fdatasync on tmpfs returns at once). */
    cairn_err_t err = {0};
    const char *base = getenv("CAIRN_BENCH_DIR");
    if (!base || !*base) base = "/var/tmp";
    if (strlen(base) > 200) bench_die("$CAIRN_BENCH_DIR is too long");
    char tmp_prefix[PATH_MAX];
    snprintf(tmp_prefix, sizeof tmp_prefix, "%s/cairn-bench-durable-", base);
    if (!(g_kernel = bench_kernel_new(o.cairnd, tmp_prefix, &err)))
        bench_die("%s", err.msg);
    if (g_keep) bench_kernel_keep(g_kernel);
    const char *dir = bench_kernel_dir(g_kernel);
    struct statfs sf;
    if (statfs(dir, &sf) != 0) bench_die("statfs %s: %s", dir, strerror(errno));
    /* A smoke run (CI) still runs there: what it checks is that every
     * call is answered 200, not what the figures say. */
    if ((sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC) && !o.quick)
        bench_die(
            "%s is on %s, where fdatasync costs nothing: set CAIRN_BENCH_DIR to a "
            "directory on a disk",
            dir, s_fs_name((long)sf.f_type));

    int srv_cpu = -1, cli_cpu = -1;
    if (!o.pin || !bench_pick_cpus(&srv_cpu, &cli_cpu)) o.pin = false;
    uint64_t t_start = bench_now_ns();
    if (bench_kernel_start(g_kernel,
                           "  tracking:\n"
                           "    plugin: storage\n"
                           "    mode: inproc\n"
                           "    settings:\n"
                           "      durability: power\n",
                           srv_cpu, &err) != 0)
        bench_die("%s", err.msg);
    pid_t cairnd = bench_kernel_pid(g_kernel);
    if (bench_pin(cli_cpu, &err) != 0) bench_warn("%s", err.msg);
    cairn_client_t *c = bench_kernel_wait(g_kernel, 1, &err);
    if (!c)
        bench_die(
            "%s%s", err.msg,
            strcmp(err.code, "cairnd_exited") ? "" : "; is cairn_storage.so built?");
    double startup_ms = (double)(bench_now_ns() - t_start) / 1e6;
    char *exp = NULL, *run = NULL;
    if (cairn_create_experiment(c, "bench-durable", &exp, &err) != 0)
        bench_die("create_experiment: %d %s", err.st, err.msg);
    if (cairn_create_run(c, exp, "durable", NULL, &run, &err) != 0)
        bench_die("create_run: %d %s", err.st, err.msg);
    g_run = run;
    int nconns = levels[nlevels - 1] < conns_max ? levels[nlevels - 1] : conns_max;
    for (int i = 0; i < nconns; i++) {
        conn_t *k = &g_conns[i];
        if (!(k->c = cairn_client_new(bench_kernel_endpoint(g_kernel), NULL, &err)))
            bench_die("client %d: %s", i, err.msg);
        snprintf(k->key, sizeof k->key, "durable/conn%02d", i);
        msgpack_sbuffer_init(&k->sb);
        msgpack_packer_init(&k->pk, &k->sb, msgpack_sbuffer_write);
    }
    floors_open(dir);

    bench_host_t host;
    bench_host(&host);
    char load[64];
    bench_loadavg(load, sizeof load);
    bench_out(
        "bench_durable: tracking.log_metric under durability: power (fdatasync before "
        "each 200)\n"
        "               vs one fdatasync per call and SQLite FULL, same filesystem\n");
    bench_out("host: %ld CPUs, Linux %s, SQLite %s, %s\n", host.ncpu, host.kernel,
              sqlite3_libversion(), host.date);
    bench_out("dir: %s (%s, f_type 0x%lx)\n", dir, s_fs_name((long)sf.f_type),
              (unsigned long)sf.f_type);
    bench_out(
        "method: %d round(s) of %.1f s per case, round-robin (each round starts one "
        "case later),\n"
        "        medians of per-round figures; in flight L over min(L, %d) "
        "connections%s\n",
        o.rounds, o.seconds, conns_max, o.quick ? " (--quick: smoke only)" : "");
    if (o.pin)
        bench_out("pinned: cairnd on CPU %d, this process on CPU %d\n", srv_cpu,
                  cli_cpu);
    else
        bench_out("not pinned\n");
    bench_out("cairnd (pid %d) up in %.0f ms; load average at start %s\n", (int)cairnd,
              startup_ms, load);

    /* The cases: the fsync floor, SQLite FULL, sys.ping, then the levels. */
    int ncases = LV(nlevels);
    static sample_t smp[NCASES][MAX_ROUNDS];
    sample_t warm;
    double wsecs = o.seconds / 4 > 0.1 ? o.seconds / 4 : 0.1;
    fsync_floor(wsecs, &warm);
    sqlite_floor(wsecs, &warm);
    ping_sample(c, wsecs, &warm);
    for (int l = 0; l < nlevels; l++)
        log_metric_sample(levels[l], conns_max, wsecs, &warm);
    for (int r = 0; r < o.rounds; r++)
        for (int j = 0; j < ncases; j++) {
            int cs = (j + r) % ncases;
            if (cs == F_FSYNC)
                fsync_floor(o.seconds, &smp[cs][r]);
            else if (cs == F_SQLITE)
                sqlite_floor(o.seconds, &smp[cs][r]);
            else if (cs == F_PING)
                ping_sample(c, o.seconds, &smp[cs][r]);
            else
                log_metric_sample(levels[cs - LV(0)], conns_max, o.seconds,
                                  &smp[cs][r]);
        }

    /* Medians over the rounds; ratios round by round. */
    double rate[NCASES], cov[NCASES], p50[NCASES], p99[NCASES];
    double vs_fsync[NCASES], vs_fsync_cov[NCASES], vs_sqlite[NCASES],
        vs_sqlite_cov[NCASES];
    for (int cs = 0; cs < ncases; cs++) {
        double v[MAX_ROUNDS], a[MAX_ROUNDS], b[MAX_ROUNDS];
        for (int r = 0; r < o.rounds; r++) {
            v[r] = smp[cs][r].rate;
            a[r] = smp[cs][r].rate / smp[F_FSYNC][r].rate;
            b[r] = smp[cs][r].rate / smp[F_SQLITE][r].rate;
        }
        rate[cs] = bench_median(v, o.rounds);
        cov[cs] = bench_cov(v, o.rounds);
        vs_fsync[cs] = bench_median(a, o.rounds);
        vs_fsync_cov[cs] = bench_cov(a, o.rounds);
        vs_sqlite[cs] = bench_median(b, o.rounds);
        vs_sqlite_cov[cs] = bench_cov(b, o.rounds);
        p50[cs] = BENCH_MEDIAN_FIELD(smp[cs], sample_t, p50, o.rounds);
        p99[cs] = BENCH_MEDIAN_FIELD(smp[cs], sample_t, p99, o.rounds);
    }

    bench_out("\nfloors: one call at a time, this process, the same directory\n");
    bench_out("   %-52s %9.0f /s  CoV %4.1f%%  p50 %7.1f µs  p99 %7.1f µs\n",
              "fsync floor: write() 200 B + fdatasync()", rate[F_FSYNC],
              cov[F_FSYNC] * 100, p50[F_FSYNC], p99[F_FSYNC]);
    bench_out("   %-52s %9.0f /s  CoV %4.1f%%  p50 %7.1f µs  p99 %7.1f µs\n",
              "sqlite FULL: WAL, synchronous=FULL, 1 row per txn", rate[F_SQLITE],
              cov[F_SQLITE] * 100, p50[F_SQLITE], p99[F_SQLITE]);
    if (p50[F_FSYNC] < 50)
        bench_out(
            "   note: fdatasync returned in %.1f µs (p50): this disk, or a cache in "
            "front of it,\n"
            "   does not make it wait; the ratios below say little about durability\n",
            p50[F_FSYNC]);
    bench_out("   %-52s %9.0f /s  CoV %4.1f%%  p50 %7.1f µs  p99 %7.1f µs\n",
              "(info) bus: sys.ping lock-step, no plugin, no disk", rate[F_PING],
              cov[F_PING] * 100, p50[F_PING], p99[F_PING]);
    bench_figf(rate[F_FSYNC], "fsync_floor_per_s");
    bench_figf(p50[F_FSYNC], "fsync_floor_p50_us");
    bench_figf(p99[F_FSYNC], "fsync_floor_p99_us");
    bench_figf(rate[F_SQLITE], "sqlite_full_per_s");
    bench_figf(p50[F_SQLITE], "sqlite_full_p50_us");
    bench_figf(p99[F_SQLITE], "sqlite_full_p99_us");
    bench_figf(rate[F_PING], "ping_per_s");
    bench_figf(p50[F_PING], "ping_p50_us");

    bench_out("\nlog_metric, durability: power, L calls kept in flight\n");
    bench_out("   %9s %6s %11s %6s %10s %10s %15s %15s\n", "in flight", "conns",
              "calls/s", "CoV", "p50 µs", "p99 µs", "x fsync floor", "x sqlite FULL");
    for (int l = 0; l < nlevels; l++) {
        int cs = LV(l), lv = levels[l];
        bench_out(
            "   %9d %6d %11.0f %5.1f%% %10.1f %10.1f %8.2fx %4.1f%% %8.2fx %4.1f%%\n",
            lv, lv < conns_max ? lv : conns_max, rate[cs], cov[cs] * 100, p50[cs],
            p99[cs], vs_fsync[cs], vs_fsync_cov[cs] * 100, vs_sqlite[cs],
            vs_sqlite_cov[cs] * 100);
        bench_figf(rate[cs], "log_metric_inflight%d_per_s", lv);
        bench_figf(p50[cs], "log_metric_inflight%d_p50_us", lv);
        bench_figf(p99[cs], "log_metric_inflight%d_p99_us", lv);
        bench_figf(vs_fsync[cs], "log_metric_inflight%d_vs_fsync", lv);
        bench_figf(vs_sqlite[cs], "log_metric_inflight%d_vs_sqlite_full", lv);
    }
    bench_out("   (the CoV after each ratio is that of the per-round ratios)\n");
    if (levels[0] == 1)
        bench_out(
            "   in flight 1: p50 %.0f µs = fdatasync p50 %.0f + sys.ping p50 %.0f + "
            "%.0f "
            "µs\n   (the hop to the plugin's thread, the journal record, packing)\n",
            p50[LV(0)], p50[F_FSYNC], p50[F_PING],
            p50[LV(0)] - p50[F_FSYNC] - p50[F_PING]);

    for (int l = 0; l < nlevels; l++) {
        int cs = LV(l);
        if (levels[l] == 16)
            bench_verdict("in flight 16 / fsync floor > 1 (group commit)",
                          vs_fsync[cs] > 1.0, "> 1.00", "%.2fx (%.0f vs %.0f/s)",
                          vs_fsync[cs], rate[cs], rate[F_FSYNC]);
        /* One call alone cannot beat a bus round trip plus an fdatasync
         * (both measured in this run): judge what it adds to them. */
        double parts = p50[F_FSYNC] + p50[F_PING];
        if (levels[l] == 1)
            bench_verdict("in flight 1: (fsync + ping) p50 / its p50 >= 0.5",
                          parts / p50[cs] >= 0.5, ">= 0.50", "%.2fx (%.0f vs %.0f µs)",
                          parts / p50[cs], parts, p50[cs]);
    }
    int misses = bench_misses();
    char load_end[64];
    bench_loadavg(load_end, sizeof load_end);
    double total_s = (double)(bench_now_ns() - t_start) / 1e9;
    if (o.json) {
        printf(
            "{\"bench\": \"durable\", \"date\": \"%s\", \"cpus\": %ld, \"kernel\": "
            "\"%s\", \"sqlite\": \"%s\", \"fs\": \"%s\", \"quick\": %s, "
            "\"rounds\": %d, \"seconds_per_sample\": %g, \"conns\": %d, "
            "\"load_start\": \"%s\", "
            "\"load_end\": \"%s\", \"seconds\": %.1f, ",
            host.date, host.ncpu, host.kernel, sqlite3_libversion(),
            s_fs_name((long)sf.f_type), o.quick ? "true" : "false", o.rounds, o.seconds,
            conns_max, load, load_end, total_s);
        bench_json_report_tail();
    } else {
        bench_verdicts_print(52, 28, 10);
        bench_out("ratios: x fsync floor");
        for (int l = 0; l < nlevels; l++)
            bench_out("%s %d: %.2f", l ? "," : "", levels[l], vs_fsync[LV(l)]);
        bench_out("; x sqlite FULL");
        for (int l = 0; l < nlevels; l++)
            bench_out("%s %d: %.2f", l ? "," : "", levels[l], vs_sqlite[LV(l)]);
        bench_out("\n");
        bench_verdicts_line(o.quick);
        bench_out(
            "ran %.0f s; load average at the end %s (the ratios are taken within each "
            "round)\n",
            total_s, load_end);
    }
    fflush(stdout);
    for (int i = 0; i < nconns; i++) {
        cairn_client_destroy(&g_conns[i].c);
        msgpack_sbuffer_destroy(&g_conns[i].sb);
        free(g_conns[i].lat.v);
    }
    free(g_all_lat.v);
    floors_close();
    free(run);
    free(exp);
    cairn_client_destroy(&c);
    cleanup(false);
    if (!o.json) printf("bench_durable: done\n");
    return o.strict && misses ? 3 : 0;
}
