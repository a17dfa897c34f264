/* test_c_jobs — the C SDK's jobs API (cairn/jobs.h) against a private
 * cairnd with tracking and the jobs plugin (process mode): submit from
 * YAML, the log read as it is written until done, wait, cancel of a long
 * job, and the server's refusals (a spec's field named, an unknown job, a
 * job that has already ended). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/jobs.h"
#include "harness.h"

#define SERVICES                                           \
    "  tracking:\n    plugin: storage\n    mode: inproc\n" \
    "  jobs:\n    plugin: compute\n    mode: process\n"    \
    "    settings:\n      grace_ms: 200\n      metrics_interval_ms: 0\n"

static void s_run_and_read(cairn_client_t *c)
{
    static const char yaml[] =
        "command: for i in 1 2 3; do echo line $i; done; exit 3\n"
        "experiment_name: c-sdk\n";
    cairn_err_t err = {0};
    cairn_job_t *job = NULL;
    CHECK(cairn_job_submit(c, yaml, strlen(yaml), &job, &err) == 0, "submit: %s",
          err.msg);
    if (!job) return;
    char name[128];
    snprintf(name, sizeof name, "%s", cairn_job_name(job));
    CHECK(strlen(cairn_job_run_id(job)) == 32, "run id '%s'", cairn_job_run_id(job));
    char log[256] = "";
    uint64_t off = 0;
    bool done = false;
    uint64_t end = harness_now_ms() + HARNESS_DEADLINE_MS;
    while (!done && harness_now_ms() < end) {
        char *text = NULL;
        if (cairn_job_logs(c, name, &off, &text, &done, &err) != 0) {
            CHECK(false, "logs: %s", err.msg);
            break;
        }
        strncat(log, text, sizeof log - strlen(log) - 1);
        free(text);
    }
    CHECK(done && !strcmp(log, "line 1\nline 2\nline 3\n"), "log '%s'", log);
    CHECK(cairn_job_wait(c, name, HARNESS_DEADLINE_MS, &job, &err) == 0, "wait: %s",
          err.msg);
    CHECK(!strcmp(cairn_job_status(job), "Failed") && cairn_job_exit_code(job) == 3 &&
              strstr(cairn_job_reason(job), "status 3"),
          "%s %lld %s", cairn_job_status(job), (long long)cairn_job_exit_code(job),
          cairn_job_reason(job));
    CHECK(cairn_job_cancel(c, name, NULL, &err) != 0 && err.st == 409,
          "cancel ended: %d", err.st);
    cairn_job_free(&job);
    cairn_job_free(&job); /* safe twice */
}

static void s_cancel(cairn_client_t *c)
{
    static const char yaml[] = "command: sleep 60\n";
    cairn_err_t err = {0};
    cairn_job_t *job = NULL;
    CHECK(cairn_job_submit(c, yaml, strlen(yaml), &job, &err) == 0, "submit: %s",
          err.msg);
    if (!job) return;
    char name[128];
    snprintf(name, sizeof name, "%s", cairn_job_name(job));
    CHECK(cairn_job_cancel(c, name, &job, &err) == 0, "cancel: %s", err.msg);
    CHECK(cairn_job_wait(c, name, HARNESS_DEADLINE_MS, &job, &err) == 0, "wait: %s",
          err.msg);
    CHECK(!strcmp(cairn_job_status(job), "Canceled"), "%s", cairn_job_status(job));
    cairn_job_free(&job);
    /* a short wait on a job that does not end: 504 */
    CHECK(cairn_job_submit(c, yaml, strlen(yaml), &job, &err) == 0, "submit: %s",
          err.msg);
    snprintf(name, sizeof name, "%s", cairn_job_name(job));
    CHECK(cairn_job_wait(c, name, 200, &job, &err) != 0 && err.st == 504, "%d", err.st);
    CHECK(cairn_job_cancel(c, name, NULL, &err) == 0, "cancel: %s", err.msg);
    cairn_job_free(&job);
}

static void s_refusals(cairn_client_t *c)
{
    static const char bad[] = "command: true\nresources:\n  gpus: -1\n";
    cairn_err_t err = {0};
    cairn_job_t *job = NULL;
    CHECK(cairn_job_submit(c, bad, strlen(bad), &job, &err) != 0 && err.st == 400 &&
              strstr(err.msg, "resources.gpus"),
          "%d %s", err.st, err.msg);
    CHECK(!job, "no job on a refusal");
    CHECK(cairn_job_get(c, "no-such-job", &job, &err) != 0 && err.st == 404, "%d",
          err.st);
    CHECK(cairn_job_get(c, NULL, &job, &err) != 0 && err.st == 400, "%d", err.st);
    CHECK(cairn_job_submit(NULL, bad, 1, &job, &err) != 0 && err.st == 400, "%d",
          err.st);
}

int main(void)
{
    harness_kernel_t k;
    if (harness_start(&k, SERVICES) != 0) return 1;
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(k.endpoint, NULL, &err);
    CHECK(c != NULL, "client: %s", err.msg);
    if (c) {
        s_run_and_read(c);
        s_cancel(c);
        s_refusals(c);
    }
    cairn_client_destroy(&c);
    int st = harness_stop(&k);
    CHECK(st == 0, "cairnd exit status %d", st);
    if (harness_failed) harness_dump_log(&k);
    harness_cleanup(&k);
    return harness_summary();
}
