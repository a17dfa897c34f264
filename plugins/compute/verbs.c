/* The jobs service's verbs (compute.h; names and reply keys:
 * shared/spec/services.md, jobs). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute.h"
#include "jobdir.h"
#include "yamlmp.h"

#define LOG_CHUNK_MAX (1u << 20) /* stream_logs: bytes a reply carries */
#define LIST_MAX 1000

/* The request's workspace; it names a directory, so it is checked. */
static int s_ws(cairn_req_t *req, const char **ws, cairn_err_t *err)
{
    const char *w = cairn_workspace(req);
    *ws = w && *w ? w : "default";
    if (!job_name_ok(*ws, strlen(*ws)))
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "workspace '%.64s' cannot hold jobs: its name must be letters, "
            "digits, _ or -",
            *ws);
    return 0;
}

static int s_name(const msgpack_object *b, char *out, cairn_err_t *err)
{
    cairn_str_t n;
    if (cairn_field_str(b, "name", true, JOB_NAME_MAX, &n, err) != 0) return -1;
    if (!job_name_ok(n.ptr, n.len))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "name must be 1 to %d letters, digits, _ or -",
                             JOB_NAME_MAX);
    memcpy(out, n.ptr, n.len);
    out[n.len] = '\0';
    return 0;
}

static void s_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    cairn_pack_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}

/* {name, status, run_id, ...}: what get_job, list_jobs and the others
 * answer for a job. */
static void s_pack_job(msgpack_packer *pk, const job_t *j)
{
    bool done = job_status_done(j->status);
    uint32_t n = 9 + (j->started ? 1 : 0) + (done ? 2 : 0) + (j->reason[0] ? 1 : 0) +
                 (j->cancel_asked && !done ? 1 : 0) + (j->retries ? 2 : 0) +
                 (j->gpus[0] && j->started ? 1 : 0);
    msgpack_pack_map(pk, n);
    cairn_pack_kv_str(pk, "name", j->name);
    cairn_pack_kv_str(pk, "status", job_status_name(j->status));
    cairn_pack_kv_str(pk, "run_id", j->run_id);
    cairn_pack_kv_str(pk, "experiment_id", j->experiment_id);
    cairn_pack_kv_text(pk, "experiment_name", j->experiment_name);
    cairn_pack_kv_text(pk, "display_name", j->display_name);
    cairn_pack_kv_str(pk, "compute", j->compute[0] ? j->compute : "local");
    s_kv_int(pk, "priority", j->priority);
    s_kv_int(pk, "created", j->created);
    if (j->started) s_kv_int(pk, "started", j->started);
    if (done) {
        s_kv_int(pk, "ended", j->ended);
        s_kv_int(pk, "exit_code", j->exit_code);
    }
    if (j->reason[0]) cairn_pack_kv_text(pk, "reason", j->reason);
    if (j->gpus[0] && j->started) cairn_pack_kv_str(pk, "gpus", j->gpus);
    if (j->retries) { /* retries: the spec's; retried: how many times so far */
        s_kv_int(pk, "retries", j->retries);
        s_kv_int(pk, "retried", j->attempt);
    }
    if (j->cancel_asked && !done) {
        cairn_pack_cstr(pk, "cancel_requested");
        msgpack_pack_true(pk);
    }
}

static msgpack_packer *s_begin(compute_t *c)
{
    msgpack_sbuffer_clear(&c->sb);
    return &c->pk;
}

static int s_reply_job(compute_t *c, cairn_req_t *req, int st, const job_t *j)
{
    msgpack_packer *pk = s_begin(c);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "job");
    s_pack_job(pk, j);
    cairn_reply_sbuf(req, st, &c->sb);
    return 0;
}

/* ---- submit_job ------------------------------------------------------------ */

typedef struct submit {
    inflight_t node; /* first */
    compute_t *c;
    cairn_req_t *req;
    job_t job;
    msgpack_sbuffer spec; /* the spec as a msgpack map, as stored */
    char refs[JOB_DATA_REFS_MAX][JOB_TEXT_MAX + 1]; /* data inputs, for lineage */
    size_t nrefs;
    job_code_t *code; /* its code snapshot, to send to the run once made */
} submit_t;

static void s_submit_free(submit_t *s)
{
    job_code_discard(&s->code); /* still here: the submit failed */
    msgpack_sbuffer_destroy(&s->spec);
    free(s);
}

static void s_submit_drop(inflight_t *n)
{
    s_submit_free((submit_t *)n);
}

static void s_input_logged(void *arg, int st, const char *code, const char *msg,
                           const msgpack_object *body)
{
    compute_t *c = arg;
    (void)body;
    if (st >= 400)
        cairn_log(c->ctx, CAIRN_LOG_WARN,
                  "a job's data input is missing from its lineage: registry.log_input "
                  "answered %d %s %s",
                  st, code ? code : "", msg ? msg : "");
}

/* The run read each data input: lineage (best effort). */
static void s_log_inputs(compute_t *c, const submit_t *s)
{
    for (size_t i = 0; i < s->nrefs; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        cairn_pack_kv_str(&pk, "run_id", s->job.run_id);
        cairn_pack_kv_str(&pk, "input", s->refs[i]);
        cairn_err_t err = {0};
        if (cairn_call_ws(c->ctx, s->job.ws, "registry", "log_input", sb.data, sb.size,
                          30000, s_input_logged, c, &err) != 0)
            cairn_log(c->ctx, CAIRN_LOG_WARN, "a job's data input: %s", err.msg);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void s_run_made(void *arg, const cairn_err_t *err, const char *experiment_id,
                       const char *run_id)
{
    submit_t *s = arg;
    compute_t *c = s->c;
    cairn_err_t e = {0};
    inflight_del(&s->node);
    if (err) {
        cairn_reply_err(s->req, err);
    } else {
        snprintf(s->job.experiment_id, sizeof s->job.experiment_id, "%s",
                 experiment_id);
        snprintf(s->job.run_id, sizeof s->job.run_id, "%s", run_id);
        if (store_insert(c->store, &s->job, s->spec.data, s->spec.size, &e) != 0)
            cairn_reply_err(s->req, &e);
        else
            s_reply_job(c, s->req, CAIRN_ST_CREATED, &s->job);
        if (!e.st) {
            s_log_inputs(c, s);
            job_code_keep(c, &s->code, s->job.ws, s->job.run_id, s->job.name);
        }
    }
    bool stored = !err && !e.st;
    s_submit_free(s);
    if (stored) jobs_schedule(c);
}

/* The spec as a msgpack map in sb: YAML text converted, a map packed. */
static int s_spec_bytes(const msgpack_object *spec, msgpack_sbuffer *sb,
                        cairn_err_t *err)
{
    if (spec && spec->type == MSGPACK_OBJECT_STR)
        return cairn_yaml_to_msgpack(spec->via.str.ptr, spec->via.str.size, sb, err);
    if (!spec || spec->type != MSGPACK_OBJECT_MAP)
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "spec is required: a command job's YAML text, or the same as "
            "a map");
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *spec);
    return 0;
}

/* A name for a job submitted without one: job-<12 hex digits>. */
static void s_make_name(char *out, size_t cap)
{
    unsigned char r[6];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, r, sizeof r) != (ssize_t)sizeof r) {
        uint64_t t = cairn_wall_ms() ^ ((uint64_t)getpid() << 20);
        memcpy(r, &t, sizeof r);
    }
    if (fd >= 0) close(fd);
    snprintf(out, cap, "job-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
             r[5]);
}

/* Who the job is for: the caller, or, for a plugin's nested call (the
 * kernel stamps its service principal), the principal it names in
 * on_behalf_of (endpoints' invoke_batch submits its caller's job). Anyone
 * else's on_behalf_of is refused: a user cannot lend a job another's
 * token. */
static int s_principal(cairn_req_t *req, char *out, size_t cap, cairn_err_t *err)
{
    cairn_str_t who;
    int rc = cairn_field_str(cairn_body(req), "on_behalf_of", false,
                             CAIRN_HDR_NAME_MAX * 2, &who, err);
    if (rc < 0) return -1;
    if (rc == 1 || !who.len) {
        snprintf(out, cap, "%s", cairn_principal(req));
        return 0;
    }
    if (!cairn_has_role(req, "Service") || strncmp(cairn_principal(req), "service:", 8))
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "on_behalf_of is for Cairn's plugins only");
    snprintf(out, cap, "%.*s", (int)who.len, who.ptr);
    return 0;
}

/* The checked spec's fields into s->job. */
static int s_fill_job(submit_t *s, const job_spec_t *sp, const char *ws,
                      cairn_err_t *err)
{
    job_t *j = &s->job;
    snprintf(j->ws, sizeof j->ws, "%s", ws);
    if (sp->name.len)
        snprintf(j->name, sizeof j->name, "%.*s", (int)sp->name.len, sp->name.ptr);
    else
        s_make_name(j->name, sizeof j->name);
    if (sp->experiment_name.len)
        snprintf(j->experiment_name, sizeof j->experiment_name, "%.*s",
                 (int)sp->experiment_name.len, sp->experiment_name.ptr);
    else
        snprintf(j->experiment_name, sizeof j->experiment_name, "Default");
    snprintf(j->display_name, sizeof j->display_name, "%.*s",
             (int)(sp->display_name.len ? sp->display_name.len : strlen(j->name)),
             sp->display_name.len ? sp->display_name.ptr : j->name);
    if (s_principal(s->req, j->principal, sizeof j->principal, err) != 0) return -1;
    snprintf(j->compute, sizeof j->compute, "%.*s", (int)sp->compute.len,
             sp->compute.ptr);
    compute_target_t t;
    int found_target = strcmp(j->compute, "local")
                           ? store_compute_get(s->c->store, ws, j->compute, &t, err)
                           : 0;
    if (found_target < 0) return -1;
    if (found_target == 1)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "compute: '%s' is not a compute target in this workspace "
                             "(list_computes lists them; create_compute makes one)",
                             j->compute);
    j->priority = sp->priority;
    j->retries = (int64_t)sp->retries;
    j->status = JOB_QUEUED;
    j->created = (int64_t)cairn_wall_ms();
    job_t old;
    int found = store_get(s->c->store, ws, j->name, &old, err);
    if (found < 0) return -1;
    if (found == 0)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "a job named '%s' exists in this workspace (%s)", j->name,
                             job_status_name(old.status));
    return 0;
}

/* base_dir: where relative input paths are read from (the folder of the
 * YAML file the client read), absolute; "" when not given. */
static int s_base_dir(const msgpack_object *body, char *out, size_t cap,
                      cairn_err_t *err)
{
    cairn_str_t b;
    int rc = cairn_field_str(body, "base_dir", false, cap - 1, &b, err);
    if (rc < 0) return -1;
    if (rc == 1 || b.len == 0) return 0;
    if (b.ptr[0] != '/' || memchr(b.ptr, '\0', b.len))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "base_dir must be an absolute path");
    snprintf(out, cap, "%.*s", (int)b.len, b.ptr);
    return 0;
}

/* The inputs were found (the spec packed again with their paths): the
 * job's run next. */
static void s_inputs_found(void *arg, const cairn_err_t *ierr, job_inputs_t *found)
{
    submit_t *s = arg;
    cairn_err_t err = {0};
    const char *refs[JOB_DATA_REFS_MAX];
    s->nrefs = ierr ? 0 : job_inputs_refs(found, refs, JOB_DATA_REFS_MAX);
    for (size_t i = 0; i < s->nrefs; i++)
        snprintf(s->refs[i], sizeof s->refs[i], "%s", refs[i]);
    if (ierr) err = *ierr;
    job_inputs_free(&found);
    if (!err.st && job_run_create(s->c, s->job.ws, s->job.experiment_name, s->job.name,
                                  s_run_made, s, &err) == 0)
        return;
    inflight_del(&s->node);
    cairn_reply_err(s->req, &err);
    s_submit_free(s);
}

int jobs_submit(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    const char *ws;
    if (s_ws(req, &ws, err) != 0) return -1;
    submit_t *s = calloc(1, sizeof *s);
    if (!s) return cairn_err_oom(err, NULL);
    s->c = c;
    s->req = req;
    msgpack_sbuffer_init(&s->spec);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    job_spec_t sp = {0};
    int rc = s_spec_bytes(cairn_obj_get(cairn_body(req), "spec"), &s->spec, err);
    if (rc == 0 && msgpack_unpack_next(&u, s->spec.data, s->spec.size, NULL) !=
                       MSGPACK_UNPACK_SUCCESS)
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "spec must be a map (a command job's YAML)");
    if (rc == 0) rc = job_spec_read(&u.data, NULL, &sp, err);
    if (rc == 0 && sp.train && access(c->trainer, X_OK) != 0)
        rc = cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "type: train needs the trainer, %s, which cannot be run here", c->trainer);
    if (rc == 0 && sp.mpi_ranks && !c->mpirun[0])
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "distribution: Open MPI's mpirun is not installed on this "
                           "machine (Debian: openmpi-bin; or the jobs setting mpirun)");
    if (rc == 0 && sp.gpus > (uint64_t)gpus_count(c->gpus))
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "resources.gpus: the job asks for %llu GPUs; the local "
                           "compute has %d (list_computes lists them)",
                           (unsigned long long)sp.gpus, gpus_count(c->gpus));
    if (rc == 0) rc = s_fill_job(s, &sp, ws, err);
    char base_dir[PATH_MAX] = "";
    if (rc == 0) rc = s_base_dir(cairn_body(req), base_dir, sizeof base_dir, err);
    if (rc == 0 && sp.code.len)
        rc = job_code_take(c, ws, s->job.name, sp.code, base_dir, &s->code, err);
    job_spec_free(&sp);
    msgpack_unpacked_destroy(&u);
    if (rc == 0) {
        cairn_name_object(req, "job", s->job.name, strlen(s->job.name));
        cairn_defer(req);
        inflight_add(c, &s->node, s_submit_drop);
        if (job_inputs_resolve(c, ws, &s->spec, base_dir, s_inputs_found, s, err) == 0)
            return 0; /* s_inputs_found goes on (it may have already) */
        inflight_del(&s->node);
        cairn_reply_err(req, err); /* deferred: answered here */
        s_submit_free(s);
        return 0;
    }
    s_submit_free(s);
    return -1;
}

/* ---- get_job, cancel_job, list_jobs --------------------------------------- */

/* The job req's body names, in req's workspace; 404 when none. */
static int s_find(compute_t *c, cairn_req_t *req, job_t *j, cairn_err_t *err)
{
    const char *ws;
    char name[JOB_NAME_MAX + 1];
    if (s_ws(req, &ws, err) != 0 || s_name(cairn_body(req), name, err) != 0) return -1;
    int rc = store_get(c->store, ws, name, j, err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no job named '%s' in this workspace", name);
    return rc;
}

int jobs_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    job_t j;
    if (s_find(c, req, &j, err) != 0) return -1;
    return s_reply_job(c, req, CAIRN_ST_OK, &j);
}

int jobs_cancel(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    job_t j;
    if (s_find(c, req, &j, err) != 0) return -1;
    cairn_name_object(req, "job", j.name, strlen(j.name));
    if (job_status_done(j.status))
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "job '%s' has already ended (%s)", j.name,
                             job_status_name(j.status));
    if (j.status == JOB_QUEUED) {
        if (job_set_status(c, &j, JOB_CANCELED, "canceled before it started", err) != 0)
            return -1;
        return s_reply_job(c, req, CAIRN_ST_OK, &j);
    }
    /* Started: its supervisor stops the tree and records the end; a job
     * still Preparing is signaled once its supervisor's pid is known. */
    j.cancel_asked = true;
    if (store_update(c->store, &j, err) != 0) return -1;
    if (j.status == JOB_RUNNING) job_signal_cancel(&j);
    return s_reply_job(c, req, CAIRN_ST_OK, &j);
}

typedef struct lister {
    msgpack_packer *pk;
    uint32_t n, max;
    bool more; /* a row past max was read */
    int64_t last_seq;
} lister_t;

static int s_list_row(void *arg, job_t *j)
{
    lister_t *l = arg;
    if (l->n == l->max) {
        l->more = true;
        return 0;
    }
    s_pack_job(l->pk, j);
    l->n++;
    l->last_seq = j->seq;
    return 0;
}

int jobs_list(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    const msgpack_object *b = cairn_body(req);
    job_query_t q = {.status = -1};
    cairn_str_t status = {0}, exp = {0}, tok = {0};
    uint64_t since = 0, max = 100;
    if (s_ws(req, &q.ws, err) != 0 ||
        cairn_field_str(b, "status", false, 32, &status, err) < 0 ||
        cairn_field_str(b, "experiment", false, JOB_TEXT_MAX, &exp, err) < 0 ||
        cairn_field_uint(b, "since", false, &since, err) < 0 ||
        cairn_field_uint(b, "max_results", false, &max, err) < 0 ||
        cairn_field_str(b, "page_token", false, 32, &tok, err) < 0)
        return -1;
    if (status.len && (q.status = job_status_parse(status.ptr, status.len)) < 0)
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "status must be one of Queued, Preparing, Running, Completed, "
            "Failed, Canceled, TimedOut");
    if (max < 1 || max > LIST_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "max_results must be 1 to %d", LIST_MAX);
    char expbuf[JOB_TEXT_MAX + 1], tokbuf[40];
    if (exp.len) {
        snprintf(expbuf, sizeof expbuf, "%.*s", (int)exp.len, exp.ptr);
        q.experiment = expbuf;
    }
    if (tok.len) {
        snprintf(tokbuf, sizeof tokbuf, "%.*s", (int)tok.len, tok.ptr);
        char *end;
        long long v = strtoll(tokbuf, &end, 10);
        if (*end || v <= 0)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "page_token is not one list_jobs gave");
        q.before = v;
    }
    q.since = (int64_t)(since > INT64_MAX ? INT64_MAX : since);
    q.limit = (int)max + 1;
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rpk;
    msgpack_packer_init(&rpk, &rows, msgpack_sbuffer_write);
    lister_t l = {.pk = &rpk, .max = (uint32_t)max};
    int rc = store_list(c->store, &q, s_list_row, &l, err);
    if (rc == 0) {
        msgpack_packer *pk = s_begin(c);
        msgpack_pack_map(pk, l.more ? 2 : 1);
        cairn_pack_cstr(pk, "jobs");
        msgpack_pack_array(pk, l.n);
        msgpack_sbuffer_write(&c->sb, rows.data, rows.size);
        if (l.more) {
            char next[32];
            snprintf(next, sizeof next, "%lld", (long long)l.last_seq);
            cairn_pack_kv_str(pk, "next_page_token", next);
        }
        cairn_reply_sbuf(req, CAIRN_ST_OK, &c->sb);
    }
    msgpack_sbuffer_destroy(&rows);
    return rc;
}

/* ---- stream_logs ------------------------------------------------------------ */

/* buf[0, n) as text: whole UTF-8 characters (at the end, an unfinished one
 * is left for the next read unless final), any other byte as U+FFFD. The
 * bytes consumed from buf. */
static size_t s_pack_text(msgpack_packer *pk, msgpack_sbuffer *tmp, const char *buf,
                          size_t n, bool final)
{
    size_t i = 0;
    while (i < n) {
        const unsigned char *p = (const unsigned char *)buf + i;
        size_t k = cairn_utf8_len(p, n - i);
        if (k) {
            msgpack_sbuffer_write(tmp, buf + i, k);
            i += k;
            continue;
        }
        /* an unfinished character at the very end: wait for its rest */
        if (!final && n - i < 4 && p[0] >= 0xc2 && p[0] <= 0xf4) break;
        msgpack_sbuffer_write(tmp, "\xef\xbf\xbd", 3);
        i++;
    }
    msgpack_pack_str_with_body(pk, tmp->data, tmp->size);
    return i;
}

int jobs_stream_logs(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    job_t j;
    uint64_t offset = 0, max = LOG_CHUNK_MAX;
    const msgpack_object *b = cairn_body(req);
    if (s_find(c, req, &j, err) != 0 ||
        cairn_field_uint(b, "offset", false, &offset, err) < 0 ||
        cairn_field_uint(b, "max_bytes", false, &max, err) < 0)
        return -1;
    if (max < 1 || max > LOG_CHUNK_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "max_bytes must be 1 to %u", LOG_CHUNK_MAX);
    char dir[PATH_MAX], path[PATH_MAX + 64];
    job_dir(c, &j, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, JOB_LOG);
    bool ended = job_status_done(j.status);
    char *buf = malloc(max);
    if (!buf) return cairn_err_oom(err, NULL);
    ssize_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    uint64_t size = fd >= 0 && fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    if (fd >= 0 && offset < size) got = pread(fd, buf, max, (off_t)offset);
    if (fd >= 0) close(fd);
    if (got < 0) got = 0;
    bool at_end = offset + (uint64_t)got >= size;
    msgpack_sbuffer tmp;
    msgpack_sbuffer_init(&tmp);
    msgpack_packer *pk = s_begin(c);
    msgpack_pack_map(pk, 4);
    cairn_pack_cstr(pk, "data");
    size_t used = s_pack_text(pk, &tmp, buf, (size_t)got, ended && at_end);
    cairn_pack_cstr(pk, "offset");
    msgpack_pack_uint64(pk, offset + used);
    cairn_pack_cstr(pk, "done");
    if (ended && offset + used >= size)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    cairn_pack_kv_str(pk, "status", job_status_name(j.status));
    msgpack_sbuffer_destroy(&tmp);
    free(buf);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &c->sb);
    return 0;
}

/* ---- list_computes ---------------------------------------------------------- */

typedef struct gpu_holders {
    char job[GPU_MAX][JOB_NAME_MAX + 1];
    char ws[GPU_MAX][CAIRN_HDR_NAME_MAX + 1];
} gpu_holders_t;

static int s_gpu_holder(void *arg, job_t *j)
{
    gpu_holders_t *h = arg;
    uint64_t set = gpus_parse(j->gpus);
    for (int i = 0; i < GPU_MAX; i++)
        if (set & (1ull << i)) {
            snprintf(h->job[i], sizeof h->job[i], "%s", j->name);
            snprintf(h->ws[i], sizeof h->ws[i], "%s", j->ws);
        }
    return 0;
}

/* Each GPU now: what NVML says of it, and the job holding it (named only
 * to the job's own workspace). */
static void s_pack_gpus(compute_t *c, msgpack_packer *pk, const char *ws)
{
    gpu_holders_t *h = calloc(1, sizeof *h);
    cairn_err_t err = {0};
    if (h && (store_each(c->store, JOB_PREPARING, s_gpu_holder, h, &err) != 0 ||
              store_each(c->store, JOB_RUNNING, s_gpu_holder, h, &err) != 0))
        cairn_log(c->ctx, CAIRN_LOG_WARN, "jobs: %s", err.msg);
    int n = gpus_count(c->gpus);
    msgpack_pack_array(pk, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        gpu_info_t g;
        gpus_info(c->gpus, i, &g);
        bool held = h && h->job[i][0];
        msgpack_pack_map(pk, 7 + (held ? 1 : 0));
        s_kv_int(pk, "index", i);
        cairn_pack_kv_text(pk, "name", g.name);
        cairn_pack_kv_text(pk, "uuid", g.uuid);
        s_kv_int(pk, "memory_bytes", (int64_t)g.memory_bytes);
        s_kv_int(pk, "memory_used_bytes", (int64_t)g.memory_used_bytes);
        s_kv_int(pk, "utilization_percent", g.utilization);
        cairn_pack_cstr(pk, "free");
        if (held)
            msgpack_pack_false(pk);
        else
            msgpack_pack_true(pk);
        if (held)
            cairn_pack_kv_str(pk, "job",
                              strcmp(h->ws[i], ws) ? "(another workspace)" : h->job[i]);
    }
    free(h);
}

#define COMPUTES_MAX 64 /* compute targets per workspace */

typedef struct targets {
    compute_target_t v[COMPUTES_MAX];
    int n;
} targets_t;

static int s_target_add(void *arg, const compute_target_t *t)
{
    targets_t *ts = arg;
    if (ts->n == COMPUTES_MAX) return 1;
    ts->v[ts->n++] = *t;
    return 0;
}

static void s_pack_target(compute_t *c, msgpack_packer *pk, const compute_target_t *t)
{
    msgpack_pack_map(pk, 7);
    cairn_pack_kv_str(pk, "name", t->name);
    cairn_pack_kv_str(pk, "type", "local");
    cairn_pack_kv_text(pk, "description", t->description);
    s_kv_int(pk, "max_concurrent", t->max_concurrent);
    s_kv_int(pk, "running", store_count_busy(c->store, t->ws, t->name));
    s_kv_int(pk, "queued", store_count_on(c->store, t->ws, t->name, JOB_QUEUED));
    s_kv_int(pk, "created", t->created);
}

/* The machine itself: the target `local`, whose limit every job counts
 * against. */
static void s_pack_local(compute_t *c, msgpack_packer *pk, const char *ws)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    msgpack_pack_map(pk, 12);
    cairn_pack_kv_str(pk, "name", "local");
    cairn_pack_kv_str(pk, "type", "local");
    s_kv_int(pk, "max_concurrent", c->max_concurrent);
    s_kv_int(pk, "running",
             store_count(c->store, JOB_RUNNING) + store_count(c->store, JOB_PREPARING));
    s_kv_int(pk, "queued", store_count(c->store, JOB_QUEUED));
    s_kv_int(pk, "cpus", cpus > 0 ? cpus : 1);
    s_kv_int(pk, "memory_bytes", pages > 0 && page > 0 ? (int64_t)pages * page : 0);
    s_kv_int(pk, "gpus", gpus_count(c->gpus));
    cairn_pack_kv_text(pk, "gpu_source", gpus_source(c->gpus));
    cairn_pack_kv_text(pk, "mpirun", c->mpirun); /* "": no MPI jobs here */
    cairn_pack_cstr(pk, "gpu_devices");
    s_pack_gpus(c, pk, ws);
    /* resources are checked, not yet enforced: say so */
    char limits[2 * PATH_MAX + 512];
    if (c->cgroup_dir[0])
        snprintf(limits, sizeof limits,
                 "cgroups v2 (%s): resources.memory as memory.max, resources.cpus as "
                 "cpu.max; resources.gpus held by one job at a time "
                 "(CUDA_VISIBLE_DEVICES)",
                 c->cgroup_dir);
    else
        snprintf(limits, sizeof limits,
                 "rlimits (%s): resources.memory as the address space (RLIMIT_AS), "
                 "resources.cpus as CPU affinity; resources.gpus held by one job at a "
                 "time (CUDA_VISIBLE_DEVICES)",
                 c->cgroup_why);
    cairn_pack_kv_text(pk, "limits", limits);
}

int jobs_list_computes(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    const char *ws;
    if (s_ws(req, &ws, err) != 0) return -1;
    targets_t *ts = calloc(1, sizeof *ts);
    if (!ts) return cairn_err_oom(err, NULL);
    if (store_compute_each(c->store, ws, s_target_add, ts, err) != 0) {
        free(ts);
        return -1;
    }
    msgpack_packer *pk = s_begin(c);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "computes");
    msgpack_pack_array(pk, (uint32_t)(1 + ts->n));
    s_pack_local(c, pk, ws);
    for (int i = 0; i < ts->n; i++) s_pack_target(c, pk, &ts->v[i]);
    free(ts);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &c->sb);
    return 0;
}

/* ---- create_compute, get_compute, delete_compute --------------------------- */

static int s_reply_target(compute_t *c, cairn_req_t *req, int st,
                          const compute_target_t *t)
{
    msgpack_packer *pk = s_begin(c);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "compute");
    s_pack_target(c, pk, t);
    cairn_reply_sbuf(req, st, &c->sb);
    return 0;
}

/* The target name req's body gives; "local" is the machine's own. */
static int s_target_name(const msgpack_object *body, char *out, cairn_err_t *err)
{
    cairn_str_t n;
    if (cairn_field_str(body, "name", true, JOB_NAME_MAX, &n, err) != 0) return -1;
    if (!job_name_ok(n.ptr, n.len))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "name must be 1 to %d letters, digits, _ or -, starting "
                             "with a letter or digit",
                             JOB_NAME_MAX);
    snprintf(out, JOB_NAME_MAX + 1, "%.*s", (int)n.len, n.ptr);
    return 0;
}

int jobs_create_compute(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    const msgpack_object *body = cairn_body(req);
    compute_target_t t = {.max_concurrent = 1};
    const char *ws;
    cairn_str_t type = {"local", 5}, desc = {"", 0};
    uint64_t maxc = 1;
    if (s_ws(req, &ws, err) != 0 || s_target_name(body, t.name, err) != 0 ||
        cairn_field_str(body, "type", false, 32, &type, err) < 0 ||
        cairn_field_str(body, "description", false, COMPUTE_DESCRIPTION_MAX, &desc,
                        err) < 0 ||
        cairn_field_uint(body, "max_concurrent", false, &maxc, err) < 0)
        return -1;
    cairn_name_object(req, "compute", t.name, strlen(t.name));
    if (!cairn_str_eq(type, "local"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "type must be local (a pool of this machine)");
    if (maxc < 1 || maxc > 1024)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "max_concurrent must be 1 to 1024");
    if (!strcmp(t.name, "local"))
        return cairn_err_set(
            err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
            "local is the machine's own compute (set its limit with the "
            "jobs setting max_concurrent)");
    snprintf(t.ws, sizeof t.ws, "%s", ws);
    snprintf(t.description, sizeof t.description, "%.*s", (int)desc.len, desc.ptr);
    t.max_concurrent = (int64_t)maxc;
    t.created = (int64_t)cairn_wall_ms();
    targets_t *ts = calloc(1, sizeof *ts);
    if (!ts) return cairn_err_oom(err, NULL);
    int rc = store_compute_each(c->store, ws, s_target_add, ts, err);
    int n = ts->n;
    free(ts);
    if (rc != 0) return -1;
    if (n >= COMPUTES_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "this workspace has %d compute targets, the most it may",
                             COMPUTES_MAX);
    if (store_compute_insert(c->store, &t, err) != 0) return -1;
    return s_reply_target(c, req, CAIRN_ST_CREATED, &t);
}

static int s_find_target(compute_t *c, cairn_req_t *req, compute_target_t *t,
                         cairn_err_t *err)
{
    const char *ws;
    char name[JOB_NAME_MAX + 1];
    if (s_ws(req, &ws, err) != 0 || s_target_name(cairn_body(req), name, err) != 0)
        return -1;
    int rc = store_compute_get(c->store, ws, name, t, err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no compute named '%s' in this workspace", name);
    return rc;
}

int jobs_get_compute(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    compute_target_t t;
    if (s_find_target(c, req, &t, err) != 0) return -1;
    return s_reply_target(c, req, CAIRN_ST_OK, &t);
}

int jobs_delete_compute(void *state, cairn_req_t *req, cairn_err_t *err)
{
    compute_t *c = state;
    compute_target_t t;
    if (s_find_target(c, req, &t, err) != 0) return -1;
    cairn_name_object(req, "compute", t.name, strlen(t.name));
    int64_t busy = store_count_busy(c->store, t.ws, t.name),
            queued = store_count_on(c->store, t.ws, t.name, JOB_QUEUED);
    if (busy || queued)
        return cairn_err_set(
            err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
            "compute '%s' has %lld jobs running and %lld queued: cancel "
            "or wait for them first",
            t.name, (long long)busy, (long long)queued);
    if (store_compute_delete(c->store, t.ws, t.name, err) < 0) return -1;
    msgpack_packer *pk = s_begin(c);
    msgpack_pack_map(pk, 0);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &c->sb);
    return 0;
}
