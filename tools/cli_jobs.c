/* cli_jobs.c — `cairn job ...` and `cairn compute list`: the jobs service
 * (docs/JOBS.md).
 *
 *   job submit FILE [--stream]     FILE: a command job's YAML ('-': stdin);
 *                                  --stream follows its log to the end and
 *                                  exits 0 only when it Completed; Ctrl-C
 *                                  asks on the terminal whether to cancel
 *                                  it (without one, it stops following and
 *                                  the job goes on)
 *   job list [--status S] [--experiment E] [--max N]
 *   job show NAME    job cancel NAME    job logs NAME [--follow]
 *   compute list
 *
 * Bodies are built as JSON (cli_call_json); --json prints the replies as
 * they come, else tables; a log is printed as it is. */
#define _GNU_SOURCE
#include <libgen.h>
#include <limits.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define SVC "jobs"
#define SPEC_MAX (4u << 20) /* the service's YAML limit */
#define POLL_MS 250

static const col_t JOB_COLS[] = {{"NAME", "name", false},
                                 {"STATUS", "status", false},
                                 {"EXPERIMENT", "experiment_name", false},
                                 {"RUN", "run_id", false},
                                 {"EXIT", "exit_code", false},
                                 {"REASON", "reason", false}};
#define NJOB_COLS (sizeof JOB_COLS / sizeof JOB_COLS[0])

static int s_print_jobs(const opts_t *o, json_t *reply, const char *key, fail_t *f)
{
    if (o->json) return cli_print_json(reply, false, f);
    json_t *v = json_object_get(reply, key);
    json_t *rows = json_is_array(v) ? json_incref(v) : json_pack("[O]", v);
    int rc = rows ? cli_table(rows, JOB_COLS, NJOB_COLS, f) : cli_oom(f);
    json_decref(rows);
    return rc;
}

/* A string member of o, or dflt. */
static const char *s_str(const json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : dflt;
}

/* Ctrl-C while a submitted job is followed (job submit --stream). */
static volatile sig_atomic_t s_interrupted;

static void s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !s_interrupted) {
    }
}

/* Asked on the terminal: cancel job name? false without a terminal. */
static bool s_ask_cancel(const char *name)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty) return false;
    fprintf(tty, "\ncancel job %s? [y/N] ", name);
    fflush(tty);
    char line[16] = "";
    bool yes = fgets(line, sizeof line, tty) && (line[0] == 'y' || line[0] == 'Y');
    fclose(tty);
    return yes;
}

static int s_get(cairn_client_t *c, const opts_t *o, const char *name, json_t **job,
                 fail_t *f)
{
    return cli_call_json(c, o, SVC, "get_job", json_pack("{s:s}", "name", name), job,
                         f);
}

/* Print name's log from offset on; follow: until the job has ended. */
/* *offset on; stopped (may be NULL): set, and 0 returned, when Ctrl-C
 * came while following. */
static int s_logs(cairn_client_t *c, const opts_t *o, const char *name, bool follow,
                  json_int_t *offset_p, bool *stopped, fail_t *f)
{
    json_int_t zero = 0, *off = offset_p ? offset_p : &zero, offset = *off;
    for (;;) {
        if (stopped && s_interrupted) {
            *stopped = true;
            return EXIT_OK;
        }
        json_t *r = NULL;
        int rc = cli_call_json(c, o, SVC, "stream_logs",
                               json_pack("{s:s, s:I}", "name", name, "offset", offset),
                               &r, f);
        if (rc != EXIT_OK && stopped && s_interrupted) continue; /* the call was cut */
        if (rc != EXIT_OK) return rc;
        const char *data = json_string_value(json_object_get(r, "data"));
        size_t n = json_string_length(json_object_get(r, "data"));
        json_int_t next = json_integer_value(json_object_get(r, "offset"));
        bool done = json_is_true(json_object_get(r, "done"));
        if (n && fwrite(data, 1, n, stdout) != n)
            rc = cli_fail(f, EXIT_INTERNAL, "cannot write the log");
        fflush(stdout);
        json_decref(r);
        *off = next;
        if (rc != EXIT_OK || done || (!follow && next == offset)) return rc;
        if (next == offset) s_sleep_ms(POLL_MS);
        offset = next;
    }
}

/* Follow a submitted job's log to its end; Ctrl-C asks whether to cancel
 * it (then goes on following until it has stopped), else stops following:
 * EXIT_SERVER, the job left running. */
static int s_follow(cairn_client_t *c, const opts_t *o, const char *name, fail_t *f)
{
    struct sigaction sa = {.sa_handler = s_on_sigint}, old;
    sigemptyset(&sa.sa_mask); /* no SA_RESTART: a blocked call returns */
    sigaction(SIGINT, &sa, &old);
    s_interrupted = 0;
    json_int_t offset = 0;
    bool stopped = false;
    int rc = s_logs(c, o, name, true, &offset, &stopped, f);
    if (rc == EXIT_OK && stopped) {
        s_interrupted = 0;
        stopped = false;
        if (s_ask_cancel(name)) {
            json_t *r = NULL;
            rc = cli_call_json(c, o, SVC, "cancel_job",
                               json_pack("{s:s}", "name", name), &r, f);
            json_decref(r);
            if (rc == EXIT_OK) rc = s_logs(c, o, name, true, &offset, &stopped, f);
        } else {
            stopped = true;
        }
    }
    sigaction(SIGINT, &old, NULL);
    if (rc == EXIT_OK && stopped)
        rc = cli_fail(f, EXIT_SERVER,
                      "stopped following job %s, which goes on: `cairn job logs %s "
                      "--follow` follows it, `cairn job cancel %s` stops it",
                      name, name, name);
    return rc;
}

/* Where the spec's relative paths (inputs, code) are read from: the
 * folder of its file, or the working directory for standard input. */
static void s_base_dir(const char *operand, char *out, size_t cap)
{
    char *real = strcmp(operand, "-") ? realpath(operand, NULL) : NULL;
    if (real) {
        snprintf(out, cap, "%s", dirname(real));
        free(real);
    } else if (!getcwd(out, cap)) {
        out[0] = '\0';
    }
}

int cli_job_submit(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *spec = NULL, *reply = NULL;
    int rc = cli_read_text(OPERAND(o, 0), SPEC_MAX, "a job spec's limit", &spec, f);
    if (rc != EXIT_OK) return rc;
    char base[PATH_MAX];
    s_base_dir(OPERAND(o, 0), base, sizeof base);
    rc = cli_call_json(c, o, SVC, "submit_job",
                       json_pack("{s:o,s:s}", "spec", spec, "base_dir", base), &reply,
                       f);
    if (rc != EXIT_OK) return rc;
    const json_t *job = json_object_get(reply, "job");
    char name[128];
    snprintf(name, sizeof name, "%s", s_str(job, "name", ""));
    if (!o->given || !(o->given & CO_FOLLOW)) {
        rc = s_print_jobs(o, reply, "job", f);
        json_decref(reply);
        return rc;
    }
    fprintf(stderr, "job %s: run %s, %s\n", name, s_str(job, "run_id", ""),
            s_str(job, "status", ""));
    json_decref(reply);
    rc = s_follow(c, o, name, f);
    json_t *end = NULL;
    if (rc == EXIT_OK) rc = s_get(c, o, name, &end, f);
    if (rc != EXIT_OK) return rc;
    const json_t *j = json_object_get(end, "job");
    const char *status = s_str(j, "status", "?");
    const char *reason = json_string_value(json_object_get(j, "reason"));
    fprintf(stderr, "job %s: %s%s%s\n", name, status, reason ? ": " : "",
            reason ? reason : "");
    if (strcmp(status, "Completed") != 0)
        rc = cli_fail(f, EXIT_SERVER, "job %s ended %s", name, status);
    json_decref(end);
    return rc;
}

int cli_job_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *all = json_array();
    if (!all) return cli_oom(f);
    const char *token = NULL;
    json_t *reply = NULL;
    int rc = EXIT_OK;
    for (;;) {
        json_t *body = json_object();
        if (!body) {
            rc = cli_oom(f);
            break;
        }
        if (o->status) json_object_set_new(body, "status", json_string(o->status));
        if (o->experiment)
            json_object_set_new(body, "experiment", json_string(o->experiment));
        size_t left = o->max ? (size_t)o->max - json_array_size(all) : 1000;
        json_object_set_new(body, "max_results",
                            json_integer(left < 1000 ? (json_int_t)left : 1000));
        if (token) json_object_set_new(body, "page_token", json_string(token));
        json_decref(reply);
        reply = NULL;
        rc = cli_call_json(c, o, SVC, "list_jobs", body, &reply, f);
        if (rc != EXIT_OK) break;
        json_array_extend(all, json_object_get(reply, "jobs"));
        token = json_string_value(json_object_get(reply, "next_page_token"));
        if (!token || (o->max && json_array_size(all) >= o->max)) break;
    }
    json_decref(reply);
    if (rc == EXIT_OK) {
        json_t *out = json_pack("{s:O}", "jobs", all);
        rc = out ? s_print_jobs(o, out, "jobs", f) : cli_oom(f);
        json_decref(out);
    }
    json_decref(all);
    return rc;
}

int cli_job_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = s_get(c, o, OPERAND(o, 0), &reply, f);
    if (rc == EXIT_OK)
        rc = o->json ? cli_print_json(reply, true, f)
                     : cli_print_json(json_object_get(reply, "job"), true, f);
    json_decref(reply);
    return rc;
}

int cli_job_cancel(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, "cancel_job",
                           json_pack("{s:s}", "name", OPERAND(o, 0)), &reply, f);
    if (rc == EXIT_OK) rc = s_print_jobs(o, reply, "job", f);
    json_decref(reply);
    return rc;
}

int cli_job_logs(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_logs(c, o, OPERAND(o, 0), (o->given & CO_FOLLOW) != 0, NULL, NULL, f);
}

int cli_compute_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    static const col_t cols[] = {
        {"NAME", "name", false},          {"TYPE", "type", false},
        {"RUNNING", "running", false},    {"QUEUED", "queued", false},
        {"MAX", "max_concurrent", false}, {"CPUS", "cpus", false},
        {"GPUS", "gpus", false}};
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, "list_computes", json_object(), &reply, f);
    if (rc == EXIT_OK)
        rc = o->json ? cli_print_json(reply, false, f)
                     : cli_table(json_object_get(reply, "computes"), cols,
                                 sizeof cols / sizeof cols[0], f);
    json_decref(reply);
    return rc;
}

/* `compute show|delete NAME`, `compute create NAME [MAX_CONCURRENT]`: the
 * reply's compute, or nothing for delete. */
static int s_compute_call(cairn_client_t *c, const opts_t *o, const char *verb,
                          json_t *body, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, verb, body, &reply, f);
    if (rc == EXIT_OK && json_object_get(reply, "compute"))
        rc = cli_print_json(o->json ? reply : json_object_get(reply, "compute"), true,
                            f);
    json_decref(reply);
    return rc;
}

int cli_compute_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = json_pack("{s:s}", "name", OPERAND(o, 0));
    if (NOPERANDS(o) > 1) {
        char *end;
        long long n = strtoll(OPERAND(o, 1), &end, 10);
        if (*end || end == OPERAND(o, 1) || n < 1 || n > 1024) {
            json_decref(body);
            return cli_fail(f, EXIT_USAGE, "MAX_CONCURRENT must be 1 to 1024, not '%s'",
                            OPERAND(o, 1));
        }
        json_object_set_new(body, "max_concurrent", json_integer(n));
    }
    return s_compute_call(c, o, "create_compute", body, f);
}

int cli_compute_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_compute_call(c, o, "get_compute",
                          json_pack("{s:s}", "name", OPERAND(o, 0)), f);
}

int cli_compute_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_compute_call(c, o, "delete_compute",
                          json_pack("{s:s}", "name", OPERAND(o, 0)), f);
}
