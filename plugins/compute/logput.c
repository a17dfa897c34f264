/* A job's log kept with its run (compute.h): when the job ends, its
 * stdout and stderr (the file the shim wrote) are uploaded to the run's
 * artifacts as logs/output.log (upload.c). Best effort: an upload the
 * plugin does not finish (a crash, the artifact service down) leaves the
 * log in the job's directory, where stream_logs still reads it. Without an
 * artifacts service there is nothing to do. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compute.h"
#include "jobdir.h"

#define LOG_PATH "logs/output.log"

static void s_done(void *arg, const char *label, const char *why)
{
    compute_t *c = arg;
    if (why && !strstr(why, "no artifact store"))
        cairn_log(c->ctx, CAIRN_LOG_WARN, "%s stays in the job's directory only: %s",
                  label, why);
}

void job_log_keep(compute_t *c, const job_t *j)
{
    if (!j->run_id[0] || !j->started) return;
    char dir[PATH_MAX], path[PATH_MAX + 64], label[JOB_NAME_MAX + 16];
    job_dir(c, j, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, JOB_LOG);
    if (access(path, R_OK) != 0) return; /* nothing was written */
    snprintf(label, sizeof label, "job %s's log", j->name);
    job_upload_t *u = job_upload_new(c, j->ws, j->run_id, label);
    if (!u || job_upload_add(u, path, LOG_PATH) != 0) {
        job_upload_free(&u);
        cairn_log(c->ctx, CAIRN_LOG_WARN, "job %s: no memory to keep its log", j->name);
        return;
    }
    job_upload_start(u, s_done, c);
}
