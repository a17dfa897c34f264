/* bench/bench_util.h — what the ratio benchmarks (bench_bus, bench_tracking,
 * bench_durable) share: the clock and the statistics over rounds, CPU
 * pinning, the exit path (cleanup at exit, on a signal and on a fatal
 * error), the report (text lines, named figures, PASS/MISS verdicts, their
 * table and JSON), and a private cairnd: a temp dir with its conf and state,
 * free loopback ports, started, waited for until sys.health says every
 * service is up, stopped and cleaned away at the end.
 *
 * Fallible functions return 0 / -1 (or NULL) and fill a cairn_err_t; the
 * benches decide what is fatal (bench_die).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cairn/client.h"

/* ---- the process ------------------------------------------------------------- */

/* The bench's cleanup: failed is true when bench_die calls it, before
 * anything is removed (the place to show logs); false at exit and on
 * SIGINT/SIGTERM. It runs more than once and must be idempotent. */
typedef void(bench_cleanup_fn)(bool failed);

/* Once, in main after the arguments: prog names every message; cleanup (may
 * be NULL) runs at exit, on SIGINT/SIGTERM (then exit status 130) and from
 * bench_die. Also ignores SIGPIPE and unsets CAIRN_ENDPOINT and CAIRN_TOKEN,
 * so that no client of the bench talks to another kernel. */
void bench_init(const char *prog, bench_cleanup_fn *cleanup);
/* "prog: message" on stderr. */
void bench_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* bench_warn, cleanup(true), exit status 1. Not for forked children. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- options -------------------------------------------------------------------- */

/* The options every bench takes; its own sit beside them. */
typedef struct bench_opts {
    bool quick, json, strict, pin;
    int rounds;
    double seconds;
    int window;
    const char *only;             /* comma-separated case keys; NULL: all */
    const char *cairnd;           /* NULL: find it (bench_kernel_new) */
    bool rounds_set, seconds_set; /* given: --quick leaves them */
} bench_opts_t;

/* When argv[*i] is --quick, --json, --strict, --pin, --no-pin, --rounds N,
 * --seconds S, --window W, --only LIST or --cairnd PATH: take it into o
 * (with its value, moving *i on) and return true. */
bool bench_opts_take(bench_opts_t *o, int argc, char **argv, int *i);

/* The end of every bench's argument loop, for an argument nothing else
 * took: --help or -h prints usage on stdout and exits 0; anything else is
 * refused, "prog: unknown argument", usage on stderr, exit status 2. */
typedef void(bench_usage_fn)(FILE *out);
void bench_arg_rest(const char *prog, const char *arg, bench_usage_fn *usage)
    __attribute__((noreturn));

/* ---- clock and statistics ------------------------------------------------------ */

/* The most values bench_median and bench_cov look at (the rounds). */
#define BENCH_MAX_ROUNDS 64

uint64_t bench_now_ns(void);                        /* CLOCK_MONOTONIC */
int bench_cmp_double(const void *a, const void *b); /* for qsort */
/* The p-quantile (0..1, nearest rank) of n sorted values; NAN when n is 0. */
double bench_pct_sorted(const double *v, size_t n, double p);
/* The same, sorting v in place first. */
double bench_pct(double *v, size_t n, double p);
/* Median and coefficient of variation of v[0..n), NANs left out; the median
 * of none is NAN, the CoV of fewer than two (or of mean 0) is 0. */
double bench_median(const double *v, int n);
double bench_cov(const double *v, int n);
/* The median of one double field over n structs: the field at byte offset
 * off of base, base + stride, ... */
double bench_median_at(const void *base, size_t stride, size_t off, int n);
#define BENCH_MEDIAN_FIELD(arr, type, field, n) \
    bench_median_at((arr), sizeof(type), offsetof(type, field), (n))

/* ---- small things --------------------------------------------------------------- */

/* key is one of the comma-separated names in list (--only); a NULL list
 * holds every key. */
bool bench_in_list(const char *list, const char *key);
bool bench_executable(const char *path);
/* CPU time of every thread of a process, ns (/proc/PID/task/TID/schedstat);
 * 0 for pid <= 0. *ns receives the threads that could be read; -1 when the
 * process or some thread of it could not be. */
int bench_proc_cpu_ns(pid_t pid, uint64_t *ns);
/* Wait until pid spends under 2% of a CPU over a quarter second (a
 * store that still folds or checkpoints after a populate), for at most
 * max_s seconds; the seconds waited, or -1 when it never settled. */
double bench_wait_idle(pid_t pid, double max_s);
/* Bytes a process passed to write(2)-like calls (/proc/PID/io wchar); 0
 * when unreadable or pid <= 0. */
uint64_t bench_proc_wchar(pid_t pid);
/* A /proc/PID/status field given in kB (field "VmHWM", "VmRSS"), in MiB;
 * NAN when unreadable. */
double bench_proc_status_mib(pid_t pid, const char *field);
/* `cp src dst`, then fsync(dst), timed: seconds (dst removed before and
 * after); bench_die on failure. The peer of a file transfer. */
double bench_cp_fsync(const char *src, const char *dst);
/* On stdout: sep, then "key": v with three decimals, or null when v is not
 * finite. */
void bench_json_num(const char *sep, const char *key, double v);

typedef struct bench_host {
    long ncpu;       /* online */
    char kernel[65]; /* uname release */
    char date[32];   /* now, UTC, ISO 8601 */
} bench_host_t;
void bench_host(bench_host_t *h);

/* ---- the report ------------------------------------------------------------------ */

/* Text lines go to stdout through bench_out, flushed at once (a long run
 * shows its progress); bench_text_set(false) (--json) silences them, so
 * that stdout holds the JSON object alone. On until then. */
void bench_text_set(bool on);
void bench_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Named figures, in order, for the JSON object's "figures"; keys are cut
 * at 47 bytes, and those past BENCH_MAX_FIGS are dropped. */
#define BENCH_MAX_FIGS 96
void bench_fig(const char *key, double v);
void bench_figf(double v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A verdict: what was measured (fmt) against its target, PASS or MISS;
 * never asserted (--strict makes a MISS the exit status). Those past
 * BENCH_MAX_VERDICTS are dropped. */
#define BENCH_MAX_VERDICTS 16
void bench_verdict(const char *name, bool pass, const char *target, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
int bench_misses(void);
const char *bench_pass(bool pass); /* "PASS" or "MISS" */
/* bench_out: the verdict table between blank lines, its first three
 * columns left-aligned in these widths (each bench sizes its own names). */
void bench_verdicts_print(int name_w, int measured_w, int target_w);
/* bench_out: "verdicts: N, P PASS, M MISS", with a note under --quick. */
void bench_verdicts_line(bool quick);
/* On stdout, after the bench's own fields and ", ": the rest of the JSON
 * object, "figures": {...}, "verdicts": [...], "misses": M}, and a newline. */
void bench_json_report_tail(void);

/* /proc/loadavg's three averages, "%.2f %.2f %.2f" (nan when unreadable). */
void bench_loadavg(char *buf, size_t cap);

/* ---- processes and CPUs -------------------------------------------------------- */

/* The first two CPUs this process may run on: *srv for the servers, *cli
 * for the clients. false (and neither set) with fewer than two. */
bool bench_pick_cpus(int *srv, int *cli);
/* Pin the calling thread (and what it later starts) to cpu; cpu < 0: no-op. */
int bench_pin(int cpu, cairn_err_t *err);
/* In a forked child: die with the bench (exit now if it is already gone),
 * default SIGINT/SIGTERM, pin to cpu (a failure is only warned of: a child
 * has no one to return it to). */
void bench_child_setup(pid_t parent, int cpu);
/* Fork a server process: the child (bench_child_setup(this process, cpu))
 * runs serve(fd, arg), which writes one line to fd (say, its endpoints)
 * and then serves until it is killed. The parent reads that line into line
 * (cap bytes, without its newline) within 10 s, else bench_die. Returns the
 * child's pid. Call it before this process makes a ZeroMQ context. */
typedef void(bench_serve_fn)(int fd, void *arg);
pid_t bench_fork_server(int cpu, bench_serve_fn *serve, void *arg, char *line,
                        size_t cap);
/* Send sig to pid and wait for it, at most 5 s, then SIGKILL. pid <= 0: no-op. */
void bench_reap(pid_t pid, int sig);

/* ---- a private cairnd ----------------------------------------------------------- */

typedef struct bench_kernel bench_kernel_t;

/* Find cairnd (the path given, else beside this program, in ../bin, or in
 * BENCH_BIN_DIR) and make the temp dir tmp_prefix + "XXXXXX". */
bench_kernel_t *bench_kernel_new(const char *cairnd, const char *tmp_prefix,
                                 cairn_err_t *err);
/* Stop cairnd and remove the temp dir (unless kept). */
void bench_kernel_destroy(bench_kernel_t **self_p);
/* Leave the temp dir (conf, state, cairnd.log and what the bench put there)
 * when destroyed. */
void bench_kernel_keep(bench_kernel_t *self);
const char *bench_kernel_dir(const bench_kernel_t *self);
/* Before start: kernel.auth (default "none"), e.g. "auth" with an auth
 * service among the services; its owner token is then STATE/owner.token. */
void bench_kernel_set_auth(bench_kernel_t *self, const char *auth);
/* Before start: kernel.audit (default "none"), e.g. "audit" with the audit
 * service among the services. */
void bench_kernel_set_audit(bench_kernel_t *self, const char *audit);

/* Write the conf (kernel endpoint and events on free loopback ports, auth
 * none; services: the YAML lines given, indented under `services:`, each
 * BENCH_ENDPOINT in them replaced by the kernel's endpoint, for a service
 * that calls back into it, such as the gateway) and
 * start cairnd on it, pinned to cpu (< 0: not), its output in the dir's
 * cairnd.log. */
#define BENCH_ENDPOINT "@ENDPOINT@"
int bench_kernel_start(bench_kernel_t *self, const char *services, int cpu,
                       cairn_err_t *err);
/* Wait, at most 30 s, for sys.health to say ok with nservices services, all
 * up; returns a client connected to it. When cairnd exits meanwhile the
 * error's code is "cairnd_exited". */
cairn_client_t *bench_kernel_wait(bench_kernel_t *self, uint32_t nservices,
                                  cairn_err_t *err);
const char *bench_kernel_endpoint(const bench_kernel_t *self);
pid_t bench_kernel_pid(const bench_kernel_t *self); /* -1 when not running */
/* SIGTERM cairnd and wait for it (idempotent); the dir stays. */
void bench_kernel_stop(bench_kernel_t *self);
/* cairnd's log onto f, framed; nothing when there is none. NULL-safe. */
void bench_kernel_print_log(const bench_kernel_t *self, FILE *f);

/* Write size random-looking bytes to path (a xorshift stream from seed:
 * incompressible, cheap; the same seed, the same bytes), fsynced when
 * sync; bench_die on failure. */
void bench_make_file(const char *path, uint64_t size, uint64_t seed, bool sync);

/* splitmix64: the next of a seeded stream of 64-bit values (*state moves
 * on), and the same as a double in [0, 1): data a bench makes up, the same
 * for the same seed. */
uint64_t bench_rand(uint64_t *state);
double bench_rand_unit(uint64_t *state);

/* n rows of nf float features (2% NaN, the rest in [-5, 5)) and, when y is
 * not NULL, their labels: a noisy rule, linear in the features plus a
 * square of every third, so that trees of depth 6 have something to
 * learn. The scorer's benches train and score on these. */
void bench_model_rows(uint64_t seed, size_t n, int nf, float *x, float *y);

/* A size on the command line: bytes, or with a K, M or G suffix (1.5G);
 * 0 when it is not one, under 1 byte or over 64 GiB. */
uint64_t bench_parse_size(const char *s);

#endif
