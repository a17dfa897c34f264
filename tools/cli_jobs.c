/* cli_jobs.c — `cairn job ...` and `cairn compute list`: the jobs service
 * (docs/JOBS.md).
 *
 *   job submit FILE [--stream]     FILE: a command job's YAML ('-': stdin);
 *                                  --stream follows its log to the end and
 *                                  exits 0 only when it Completed
 *   job list [--status S] [--experiment E] [--max N]
 *   job show NAME    job cancel NAME    job logs NAME [--follow]
 *   compute list
 *
 * Bodies are built as JSON (cli_call_json); --json prints the replies as
 * they come, else tables; a log is printed as it is. */
#define _GNU_SOURCE
#include <errno.h>
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

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int s_get(cairn_client_t *c, const opts_t *o, const char *name, json_t **job,
                 fail_t *f)
{
    return cli_call_json(c, o, SVC, "get_job", json_pack("{s:s}", "name", name), job,
                         f);
}

/* Print name's log from offset on; follow: until the job has ended. */
static int s_logs(cairn_client_t *c, const opts_t *o, const char *name, bool follow,
                  fail_t *f)
{
    json_int_t offset = 0;
    for (;;) {
        json_t *r = NULL;
        int rc = cli_call_json(c, o, SVC, "stream_logs",
                               json_pack("{s:s, s:I}", "name", name, "offset", offset),
                               &r, f);
        if (rc != EXIT_OK) return rc;
        const char *data = json_string_value(json_object_get(r, "data"));
        size_t n = json_string_length(json_object_get(r, "data"));
        json_int_t next = json_integer_value(json_object_get(r, "offset"));
        bool done = json_is_true(json_object_get(r, "done"));
        if (n && fwrite(data, 1, n, stdout) != n)
            rc = cli_fail(f, EXIT_INTERNAL, "cannot write the log");
        fflush(stdout);
        json_decref(r);
        if (rc != EXIT_OK || done || (!follow && next == offset)) return rc;
        if (next == offset) s_sleep_ms(POLL_MS);
        offset = next;
    }
}

int cli_job_submit(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *spec = NULL, *reply = NULL;
    int rc = cli_read_text(OPERAND(o, 0), SPEC_MAX, "a job spec's limit", &spec, f);
    if (rc != EXIT_OK) return rc;
    rc = cli_call_json(c, o, SVC, "submit_job", json_pack("{s:o}", "spec", spec),
                       &reply, f);
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
    rc = s_logs(c, o, name, true, f);
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
    return s_logs(c, o, OPERAND(o, 0), (o->given & CO_FOLLOW) != 0, f);
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
