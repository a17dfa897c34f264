/* cairn/jobs.h — command jobs from C (the `jobs` service; docs/JOBS.md).
 *
 * Thin, synchronous wrappers over the service's verbs:
 *
 *     cairn_job_t *job = NULL;
 *     if (cairn_job_submit(client, yaml, strlen(yaml), &job, &err) != 0) ...
 *     printf("%s runs as %s\n", cairn_job_name(job), cairn_job_run_id(job));
 *     uint64_t off = 0;
 *     for (bool done = false; !done;) {      // its log, as it is written
 *         char *text = NULL;
 *         if (cairn_job_logs(client, cairn_job_name(job), &off, &text, &done, &err) !=
 * 0)
 *             ...
 *         fputs(text, stdout);
 *         free(text);
 *     }
 *     cairn_job_wait(client, cairn_job_name(job), 3600000, &job, &err);
 *     strcmp(cairn_job_status(job), "Completed") == 0;
 *     cairn_job_free(&job);
 *
 * Every function returns 0, or -1 with err filled (err may be NULL); a
 * refusal keeps its status and code (400 bad_request naming the spec's
 * field, 404 not_found for an unknown job, 409 conflict for a name taken
 * in the workspace or a job that has already ended). Jobs are per
 * workspace (the client's, cairn_client_set_workspace).
 */
#ifndef CAIRN_JOBS_H
#define CAIRN_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/client.h"
#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_JOBS_SVC "jobs"

/* A job as the service last described it (opaque; cairn_job_free). */
typedef struct cairn_job cairn_job_t;

/* submit_job {spec, base_dir}: spec is a command job's YAML text of len bytes;
 * relative input paths in it are read from the working directory. */
CAIRN_EXPORT int cairn_job_submit(cairn_client_t *client, const char *spec, size_t len,
                                  cairn_job_t **job, cairn_err_t *err);
/* get_job {name}. */
CAIRN_EXPORT int cairn_job_get(cairn_client_t *client, const char *name,
                               cairn_job_t **job, cairn_err_t *err);
/* cancel_job {name}: *job (may be NULL) receives its state after the ask. */
CAIRN_EXPORT int cairn_job_cancel(cairn_client_t *client, const char *name,
                                  cairn_job_t **job, cairn_err_t *err);
/* Poll get_job until the job has ended or timeout_ms have passed (then
 * 504 deadline_exceeded); *job receives its last state. */
CAIRN_EXPORT int cairn_job_wait(cairn_client_t *client, const char *name,
                                uint32_t timeout_ms, cairn_job_t **job,
                                cairn_err_t *err);
/* stream_logs {name, offset}: *text (free() it) the log's next piece from
 * *offset on (as text: whole UTF-8 characters), *offset moved past it;
 * *done once the job has ended and every byte was read. Empty text and
 * not done: nothing new yet (ask again later). */
CAIRN_EXPORT int cairn_job_logs(cairn_client_t *client, const char *name,
                                uint64_t *offset, char **text, bool *done,
                                cairn_err_t *err);

/* The job's fields; strings valid until cairn_job_free ("" when absent). */
CAIRN_EXPORT const char *cairn_job_name(const cairn_job_t *job);
/* "Queued", "Preparing", "Running", "Completed", "Failed", "Canceled",
 * "TimedOut". */
CAIRN_EXPORT const char *cairn_job_status(const cairn_job_t *job);
CAIRN_EXPORT const char *cairn_job_run_id(const cairn_job_t *job);
CAIRN_EXPORT const char *cairn_job_reason(const cairn_job_t *job);
/* Whether the status is one of the four ends. */
CAIRN_EXPORT bool cairn_job_done(const cairn_job_t *job);
/* The exit status once ended (-1 before, or when none was recorded). */
CAIRN_EXPORT int64_t cairn_job_exit_code(const cairn_job_t *job);
/* NULL-safe, safe twice. */
CAIRN_EXPORT void cairn_job_free(cairn_job_t **job);

#ifdef __cplusplus
}
#endif
#endif
