/* Command jobs from C (see cairn/jobs.h). */
#define _POSIX_C_SOURCE 200809L
#include "cairn/jobs.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <limits.h>
#include <time.h>

#include "cairn/msg.h"
#include "svc_call.h"

#define SVC CAIRN_JOBS_SVC
#define POLL_MS 100

struct cairn_job {
    char *name, *status, *run_id, *reason;
    int64_t exit_code;
};

void cairn_job_free(cairn_job_t **job)
{
    if (!job || !*job) return;
    cairn_job_t *j = *job;
    free(j->name);
    free(j->status);
    free(j->run_id);
    free(j->reason);
    free(j);
    *job = NULL;
}

/* A str member of map as a heap string ("" when absent); NULL when out of
 * memory. */
static char *s_dup(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = cairn_obj_get(map, key);
    if (v && v->type == MSGPACK_OBJECT_STR)
        return cairn_str_dup((cairn_str_t){v->via.str.ptr, v->via.str.size});
    return strdup("");
}

/* The reply's {job: {...}} into *job (replacing what it held). */
static int s_job(cairn_reply_t *r, cairn_job_t **job, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(cairn_reply_object(r), "job");
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return cairn_svc_bad_reply(err, SVC, "holds no job");
    cairn_job_t *j = calloc(1, sizeof *j);
    if (!j) return cairn_err_oom(err, NULL);
    j->name = s_dup(o, "name");
    j->status = s_dup(o, "status");
    j->run_id = s_dup(o, "run_id");
    j->reason = s_dup(o, "reason");
    if (!cairn_svc_obj_int(o, "exit_code", &j->exit_code)) j->exit_code = -1;
    if (!j->name || !j->status || !j->run_id || !j->reason) {
        cairn_job_free(&j);
        return cairn_err_oom(err, NULL);
    }
    if (!j->name[0] || !j->status[0]) {
        cairn_job_free(&j);
        return cairn_svc_bad_reply(err, SVC, "names no job or status");
    }
    cairn_job_free(job);
    *job = j;
    return 0;
}

/* verb {name} into *job (job may be NULL: only the call). */
static int s_named(cairn_client_t *client, const char *verb, const char *name,
                   cairn_job_t **job, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err))
        return -1;
    cairn_svc_call_t c;
    cairn_pack_kv_str(cairn_svc_begin(&c, SVC, 1), "name", name);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, verb, &r, err) != 0) return -1;
    int rc = job ? s_job(r, job, err) : 0;
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_job_submit(cairn_client_t *client, const char *spec, size_t len,
                     cairn_job_t **job, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(spec, "spec", err) ||
        cairn_svc_need(job, "job", err))
        return -1;
    /* relative paths in the spec (inputs) are read from here */
    char cwd[PATH_MAX];
    bool have_cwd = getcwd(cwd, sizeof cwd) != NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, have_cwd ? 2 : 1);
    cairn_pack_cstr(pk, "spec");
    cairn_pack_strn(pk, spec, len);
    if (have_cwd) cairn_pack_kv_str(pk, "base_dir", cwd);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "submit_job", &r, err) != 0) return -1;
    int rc = s_job(r, job, err);
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_job_get(cairn_client_t *client, const char *name, cairn_job_t **job,
                  cairn_err_t *err)
{
    if (cairn_svc_need(job, "job", err)) return -1;
    return s_named(client, "get_job", name, job, err);
}

int cairn_job_cancel(cairn_client_t *client, const char *name, cairn_job_t **job,
                     cairn_err_t *err)
{
    return s_named(client, "cancel_job", name, job, err);
}

int cairn_job_wait(cairn_client_t *client, const char *name, uint32_t timeout_ms,
                   cairn_job_t **job, cairn_err_t *err)
{
    if (cairn_svc_need(job, "job", err)) return -1;
    uint64_t end = cairn_now_ms() + timeout_ms;
    for (;;) {
        if (cairn_job_get(client, name, job, err) != 0) return -1;
        if (cairn_job_done(*job)) return 0;
        if (cairn_now_ms() >= end)
            return cairn_err_set(err, CAIRN_ST_TIMEOUT, CAIRN_E_DEADLINE,
                                 "job %s is still %s after %u ms", name, (*job)->status,
                                 timeout_ms);
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int cairn_job_logs(cairn_client_t *client, const char *name, uint64_t *offset,
                   char **text, bool *done, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err) ||
        cairn_svc_need(offset, "offset", err) || cairn_svc_need(text, "text", err) ||
        cairn_svc_need(done, "done", err))
        return -1;
    *text = NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 2);
    cairn_pack_kv_str(pk, "name", name);
    cairn_pack_cstr(pk, "offset");
    msgpack_pack_uint64(pk, *offset);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "stream_logs", &r, err) != 0) return -1;
    const msgpack_object *b = cairn_reply_object(r), *d = cairn_obj_get(b, "data"),
                         *o = cairn_obj_get(b, "offset"), *f = cairn_obj_get(b, "done");
    int rc = 0;
    if (!d || d->type != MSGPACK_OBJECT_STR || !o ||
        o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !f ||
        f->type != MSGPACK_OBJECT_BOOLEAN)
        rc = cairn_svc_bad_reply(err, SVC, "lacks data, offset or done");
    else if (!(*text = cairn_str_dup((cairn_str_t){d->via.str.ptr, d->via.str.size})))
        rc = cairn_err_oom(err, NULL);
    else {
        *offset = o->via.u64;
        *done = f->via.boolean;
    }
    cairn_reply_destroy(&r);
    return rc;
}

const char *cairn_job_name(const cairn_job_t *job)
{
    return job ? job->name : "";
}

const char *cairn_job_status(const cairn_job_t *job)
{
    return job ? job->status : "";
}

const char *cairn_job_run_id(const cairn_job_t *job)
{
    return job ? job->run_id : "";
}

const char *cairn_job_reason(const cairn_job_t *job)
{
    return job ? job->reason : "";
}

bool cairn_job_done(const cairn_job_t *job)
{
    static const char *const ends[] = {"Completed", "Failed", "Canceled", "TimedOut"};
    for (size_t i = 0; job && i < sizeof ends / sizeof ends[0]; i++)
        if (!strcmp(job->status, ends[i])) return true;
    return false;
}

int64_t cairn_job_exit_code(const cairn_job_t *job)
{
    return job ? job->exit_code : -1;
}
