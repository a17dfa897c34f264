/* Batch endpoints (scorer.h; docs/ENDPOINTS.md, "Batch endpoints";
 * invoke_batch's names: services.md "endpoints").
 *
 * A batch endpoint pins a model (resolved by the registry and loaded once,
 * as a deployment's is) and the defaults of its jobs. invoke_batch does no
 * scoring here: it submits a command job to the jobs service that runs
 * cairn-batch-score on the input, so that the work is queued, supervised,
 * canceled, retried, logged and kept with a run like any job; the model's
 * folder and the input are the job's inputs (a data: reference is pinned
 * and linked in the lineage by the jobs service) and the predictions its
 * output folder. The job is submitted on behalf of the caller
 * (on_behalf_of: the jobs service takes it from a plugin only), so it is
 * the caller's: theirs in list_jobs, their token inside it. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch_score.h"
#include "exe_path.h"
#include "scorer.h"

#define REGISTRY "registry"
#define JOBS "jobs"
#define TTL_MS 30000
#define BATCH_SCORER_NAME "cairn-batch-score"
#define CMD_MAX (3 * PATH_MAX + 1024)

/* A verb waiting for another service (the registry, the jobs service). */
typedef struct batch_wait {
    struct batch_wait *prev, *next; /* sc->batch_pending */
    scorer_t *sc;
    cairn_req_t *req;
    batch_row_t row;
    bool update;
} batch_wait_t;

static void s_wait_add(scorer_t *sc, batch_wait_t *w)
{
    w->next = sc->batch_pending;
    if (w->next) w->next->prev = w;
    sc->batch_pending = w;
}

static void s_wait_del(scorer_t *sc, batch_wait_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        sc->batch_pending = w->next;
    if (w->next) w->next->prev = w->prev;
}

/* The job settings a body may give (absent: r's stay). */
static int s_knob(const msgpack_object *b, const char *key, int64_t lo, int64_t hi,
                  const char *unit, int64_t *v, cairn_err_t *err)
{
    int64_t x;
    int rc = cairn_field_int(b, key, false, &x, err);
    if (rc != 0) return rc < 0 ? -1 : 0;
    if (x < lo || x > hi)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must be %lld to %lld%s", key, (long long)lo,
                             (long long)hi, unit);
    *v = x;
    return 0;
}

static int s_knobs(const msgpack_object *b, batch_row_t *r, cairn_err_t *err)
{
    if (s_knob(b, "mini_batch_size", 1, BATCH_MB_ROWS_MAX, " rows", &r->mini_batch_size,
               err) != 0 ||
        s_knob(b, "max_concurrency", 1, BATCH_CONCURRENCY_MAX, " mini-batches at once",
               &r->max_concurrency, err) != 0 ||
        s_knob(b, "error_threshold", -1, INT32_MAX, " failed mini-batches (-1: any)",
               &r->error_threshold, err) != 0 ||
        s_knob(b, "max_retries", 0, BATCH_RETRIES_MAX, "", &r->max_retries, err) != 0)
        return -1;
    return 0;
}

static int s_model_field(const msgpack_object *b, bool required, batch_row_t *r,
                         cairn_err_t *err)
{
    cairn_str_t m;
    int rc = cairn_field_str(b, "model", required, EP_REF_MAX, &m, err);
    if (rc != 0) return rc;
    if (m.len < 7 || memcmp(m.ptr, "model:", 6))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "model must be a reference: model:NAME:VERSION or "
                             "model:NAME@ALIAS");
    snprintf(r->model, sizeof r->model, "%.*s", (int)m.len, m.ptr);
    return 0;
}

static void s_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    cairn_pack_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}

static void s_pack(msgpack_packer *pk, const batch_row_t *r)
{
    msgpack_pack_map(pk, 9);
    cairn_pack_kv_str(pk, "name", r->name);
    cairn_pack_kv_str(pk, "model", r->model);
    cairn_pack_kv_str(pk, "model_ref", r->model_ref);
    s_kv_int(pk, "mini_batch_size", r->mini_batch_size);
    s_kv_int(pk, "max_concurrency", r->max_concurrency);
    s_kv_int(pk, "error_threshold", r->error_threshold);
    s_kv_int(pk, "max_retries", r->max_retries);
    s_kv_int(pk, "created", r->created);
    s_kv_int(pk, "updated", r->updated);
}

static void s_reply_row(scorer_t *sc, cairn_req_t *req, int st, const batch_row_t *r)
{
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "batch_endpoint");
    s_pack(pk, r);
    cairn_reply_sbuf(req, st, &sc->sb);
}

/* The batch endpoint req's body names under key, in req's workspace. */
static int s_find(scorer_t *sc, cairn_req_t *req, const char *key, batch_row_t *r,
                  cairn_err_t *err)
{
    char name[EP_NAME_MAX + 1];
    if (ep_name_field(cairn_body(req), key, name, err) != 0) return -1;
    int rc = batch_store_get(sc->batch, ep_ws(req), name, r, err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no batch endpoint named '%s' in this workspace", name);
    return rc;
}

/* ---- the model, through the registry ------------------------------------------- */

/* The registry's answer for w's model into w->row, the model loaded once
 * to check it can be scored. */
static int s_resolved_row(batch_wait_t *w, int st, const char *code, const char *msg,
                          const msgpack_object *body, cairn_err_t *err)
{
    batch_row_t *r = &w->row;
    cairn_str_t ref, kind, path;
    if (st == CAIRN_ST_NOT_FOUND && code && !strcmp(code, CAIRN_E_NO_SERVICE))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "model: this Cairn has no registry to resolve %s",
                             r->model);
    if (st >= 400)
        return cairn_err_set(err, st < 500 ? st : CAIRN_ST_BAD_GATEWAY,
                             st < 500 ? code : CAIRN_E_BAD_REPLY, "model: %s",
                             msg ? msg : "");
    if (cairn_field_str(body, "ref", true, EP_REF_MAX, &ref, err) != 0 ||
        cairn_field_str(body, "kind", true, 64, &kind, err) != 0) {
        err->st = CAIRN_ST_BAD_GATEWAY;
        return -1;
    }
    if (!cairn_str_eq(kind, "model_version"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "model: %s is a %.*s, not a model version", r->model,
                             (int)kind.len, kind.ptr);
    if (cairn_field_str(body, "path", true, PATH_MAX - 1, &path, err) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "model: %s has no files on this machine", r->model);
    snprintf(r->model_ref, sizeof r->model_ref, "%.*s", (int)ref.len, ref.ptr);
    snprintf(r->path, sizeof r->path, "%.*s", (int)path.len, path.ptr);
    scorer_model_t *m = NULL;
    int rc = scorer_model_load(r->path, &m, err);
    scorer_model_destroy(&m);
    if (rc == 0) return 0;
    char why[CAIRN_ERR_MSG_MAX];
    snprintf(why, sizeof why, "%s", err->msg);
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "model: %s cannot be scored: %s", r->model_ref, why);
}

static void s_resolved(void *arg, int st, const char *code, const char *msg,
                       const msgpack_object *body)
{
    batch_wait_t *w = arg;
    scorer_t *sc = w->sc;
    s_wait_del(sc, w);
    cairn_err_t err = {0};
    if (s_resolved_row(w, st, code, msg, body, &err) == 0 &&
        (w->update ? batch_store_update(sc->batch, &w->row, &err)
                   : batch_store_insert(sc->batch, &w->row, &err)) == 0)
        s_reply_row(sc, w->req, w->update ? CAIRN_ST_OK : CAIRN_ST_CREATED, &w->row);
    else
        cairn_reply_err(w->req, &err);
    free(w);
}

/* Ask another service (the answer goes on in cb, with w); the request is
 * deferred from here on and answered here if the call cannot be made. */
static int s_call(batch_wait_t *w, const char *svc, const char *verb,
                  const msgpack_sbuffer *sb, cairn_result_fn *cb)
{
    scorer_t *sc = w->sc;
    cairn_err_t err = {0};
    cairn_defer(w->req);
    s_wait_add(sc, w);
    if (cairn_call_ws(sc->ctx, ep_ws(w->req), svc, verb, sb->data, sb->size, TTL_MS, cb,
                      w, &err) == 0)
        return 0;
    s_wait_del(sc, w);
    cairn_reply_err(w->req, &err);
    free(w);
    return 0;
}

static int s_resolve(batch_wait_t *w)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "ref", w->row.model);
    int rc = s_call(w, REGISTRY, "resolve", &sb, s_resolved);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- create, get, list, update, delete ------------------------------------------- */

int batch_create(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    const msgpack_object *b = cairn_body(req);
    batch_wait_t *w = calloc(1, sizeof *w);
    if (!w) return cairn_err_oom(err, NULL);
    *w = (batch_wait_t){.sc = sc, .req = req};
    batch_row_t *r = &w->row, old;
    *r = (batch_row_t){.mini_batch_size = 10000,
                       .max_concurrency = 4,
                       .error_threshold = -1,
                       .max_retries = 3,
                       .created = (int64_t)cairn_wall_ms()};
    r->updated = r->created;
    snprintf(r->ws, sizeof r->ws, "%s", ep_ws(req));
    int rc = ep_name_field(b, "name", r->name, err);
    if (rc == 0) rc = s_model_field(b, true, r, err);
    if (rc == 0) rc = s_knobs(b, r, err);
    if (rc == 0 && (rc = batch_store_get(sc->batch, r->ws, r->name, &old, err)) == 0)
        rc = cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                           "a batch endpoint named '%s' exists in this workspace",
                           r->name);
    if (rc != 1) {
        free(w);
        return -1;
    }
    cairn_name_object(req, "batch_endpoint", r->name, strlen(r->name));
    return s_resolve(w);
}

int batch_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    batch_row_t r;
    if (s_find(sc, req, "name", &r, err) != 0) return -1;
    s_reply_row(sc, req, CAIRN_ST_OK, &r);
    return 0;
}

typedef struct lister {
    batch_row_t *v;
    size_t n, cap;
} lister_t;

static int s_collect(void *arg, const batch_row_t *r)
{
    lister_t *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        batch_row_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return 1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *r;
    return 0;
}

int batch_list(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    lister_t l = {0};
    if (batch_store_each(sc->batch, ep_ws(req), s_collect, &l, err) != 0) {
        free(l.v);
        return -1;
    }
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "batch_endpoints");
    msgpack_pack_array(pk, (uint32_t)l.n);
    for (size_t i = 0; i < l.n; i++) s_pack(pk, &l.v[i]);
    free(l.v);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

/* update_batch_endpoint {name*, model, mini_batch_size, max_concurrency,
 * error_threshold, max_retries}: a new model is resolved and loaded before
 * anything changes; jobs already submitted keep the model they were
 * given. */
int batch_update(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    const msgpack_object *b = cairn_body(req);
    batch_wait_t *w = calloc(1, sizeof *w);
    if (!w) return cairn_err_oom(err, NULL);
    *w = (batch_wait_t){.sc = sc, .req = req, .update = true};
    int rc = s_find(sc, req, "name", &w->row, err), model = 1;
    if (rc == 0 && (model = s_model_field(b, false, &w->row, err)) < 0) rc = -1;
    if (rc == 0) rc = s_knobs(b, &w->row, err);
    if (rc != 0) {
        free(w);
        return -1;
    }
    cairn_name_object(req, "batch_endpoint", w->row.name, strlen(w->row.name));
    w->row.updated = (int64_t)cairn_wall_ms();
    if (model == 0) return s_resolve(w);
    rc = batch_store_update(sc->batch, &w->row, err);
    if (rc == 0) s_reply_row(sc, req, CAIRN_ST_OK, &w->row);
    free(w);
    return rc;
}

int batch_delete(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    batch_row_t r;
    if (s_find(sc, req, "name", &r, err) != 0) return -1;
    cairn_name_object(req, "batch_endpoint", r.name, strlen(r.name));
    if (batch_store_delete(sc->batch, r.ws, r.name, err) < 0) return -1;
    msgpack_pack_map(ep_reply_begin(sc), 0);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

/* ---- invoke_batch ---------------------------------------------------------------- */

/* The input: a data reference as it is (the jobs service resolves it: a
 * folder), or a path made absolute against base_dir that must exist. */
typedef struct batch_input_ref {
    char path[PATH_MAX];
    bool folder;
} batch_input_ref_t;

static int s_base_dir(const msgpack_object *b, char *out, cairn_err_t *err)
{
    cairn_str_t d;
    int rc = cairn_field_str(b, "base_dir", false, PATH_MAX - 1, &d, err);
    if (rc < 0) return -1;
    if (rc == 1 || !d.len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "input: a relative path needs base_dir (the folder it is "
                             "relative to, absolute)");
    if (d.ptr[0] != '/' || memchr(d.ptr, '\0', d.len))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "base_dir must be an absolute path");
    snprintf(out, PATH_MAX, "%.*s", (int)d.len, d.ptr);
    return 0;
}

static int s_input(const msgpack_object *b, batch_input_ref_t *in, cairn_err_t *err)
{
    cairn_str_t s;
    if (cairn_field_str(b, "input", true, PATH_MAX - 1, &s, err) != 0) return -1;
    if (!s.len || memchr(s.ptr, '\0', s.len) || memchr(s.ptr, '\'', s.len))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "input must be a data reference or a path (without a "
                             "quote ' or a NUL byte)");
    in->folder = true;
    if (s.len > 5 && !memcmp(s.ptr, "data:", 5)) {
        snprintf(in->path, sizeof in->path, "%.*s", (int)s.len, s.ptr);
        return 0;
    }
    char base[PATH_MAX] = "";
    if (s.ptr[0] != '/' && s_base_dir(b, base, err) != 0) return -1;
    if ((size_t)snprintf(in->path, sizeof in->path, "%s%s%.*s", base, *base ? "/" : "",
                         (int)s.len, s.ptr) >= sizeof in->path)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "input: the path is longer than %d bytes", PATH_MAX - 1);
    struct stat st;
    if (stat(in->path, &st) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "input: %s: %s", in->path, strerror(errno));
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "input: %s is neither a file nor a folder", in->path);
    in->folder = S_ISDIR(st.st_mode);
    return 0;
}

static void s_pack_uri(msgpack_packer *pk, const char *key, const char *path,
                       bool folder)
{
    cairn_pack_cstr(pk, key);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "type", folder ? "uri_folder" : "uri_file");
    cairn_pack_kv_str(pk, "path", path);
}

/* The command: each value single-quoted (none holds a quote). */
static int s_command(scorer_t *sc, const batch_row_t *r, char *out, cairn_err_t *err)
{
    if (strchr(sc->batch_scorer, '\'') || strchr(r->model_ref, '\''))
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "the batch scorer's path or the model's reference holds "
                             "a quote");
    snprintf(out, CMD_MAX,
             "'%s' --endpoint %s --model '${{inputs.model}}' --model-ref '%s' --input "
             "'${{inputs.data}}' --out '${{outputs.predictions}}' --mini-batch-size "
             "%lld --max-concurrency %lld --error-threshold %lld --max-retries %lld",
             sc->batch_scorer, r->name, r->model_ref, (long long)r->mini_batch_size,
             (long long)r->max_concurrency, (long long)r->error_threshold,
             (long long)r->max_retries);
    return 0;
}

/* submit_job's body: {spec, on_behalf_of}. */
static int s_spec(scorer_t *sc, cairn_req_t *req, const batch_row_t *r,
                  const batch_input_ref_t *in, cairn_str_t experiment,
                  msgpack_sbuffer *sb, cairn_err_t *err)
{
    char cmd[CMD_MAX], display[EP_NAME_MAX + 8];
    if (s_command(sc, r, cmd, err) != 0) return -1;
    snprintf(display, sizeof display, "batch %s", r->name);
    const char *who = cairn_principal(req);
    bool behalf = who && *who && strcmp(who, "anonymous");
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, behalf ? 2 : 1);
    if (behalf) cairn_pack_kv_str(&pk, "on_behalf_of", who);
    cairn_pack_cstr(&pk, "spec");
    msgpack_pack_map(&pk, 7);
    cairn_pack_kv_str(&pk, "type", "command");
    cairn_pack_cstr(&pk, "experiment_name");
    if (experiment.len)
        cairn_pack_strn(&pk, experiment.ptr, experiment.len);
    else
        cairn_pack_cstr(&pk, r->name);
    cairn_pack_kv_str(&pk, "display_name", display);
    cairn_pack_kv_str(&pk, "command", cmd);
    cairn_pack_cstr(&pk, "inputs");
    msgpack_pack_map(&pk, 2);
    s_pack_uri(&pk, "model", r->path, true);
    s_pack_uri(&pk, "data", in->path, in->folder);
    cairn_pack_cstr(&pk, "outputs");
    msgpack_pack_map(&pk, 1);
    cairn_pack_cstr(&pk, "predictions");
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "type", "uri_folder");
    cairn_pack_cstr(&pk, "tags");
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "cairn.batch_endpoint", r->name);
    cairn_pack_kv_str(&pk, "cairn.model", r->model_ref);
    return 0;
}

/* The jobs service's answer, passed on: its job, or its refusal with the
 * input named as the caller named it. */
static void s_submitted(void *arg, int st, const char *code, const char *msg,
                        const msgpack_object *body)
{
    batch_wait_t *w = arg;
    scorer_t *sc = w->sc;
    s_wait_del(sc, w);
    static const char field[] = "inputs.data.path: ";
    cairn_err_t err = {0};
    if (st == CAIRN_ST_NOT_FOUND && code && !strcmp(code, CAIRN_E_NO_SERVICE)) {
        cairn_err_set(&err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "invoke_batch runs a job: this Cairn has no jobs service");
        cairn_reply_err(w->req, &err);
    } else if (st >= 400) {
        const char *m = msg ? msg : "";
        bool input = !strncmp(m, field, sizeof field - 1);
        cairn_err_set(&err, st, code && *code ? code : CAIRN_E_INTERNAL, "%s%s",
                      input ? "input: " : "jobs: ", input ? m + sizeof field - 1 : m);
        cairn_reply_err(w->req, &err);
    } else {
        msgpack_packer *pk = ep_reply_begin(sc);
        if (body)
            msgpack_pack_object(pk, *body);
        else
            msgpack_pack_map(pk, 0);
        cairn_reply_sbuf(w->req, st, &sc->sb);
    }
    free(w);
}

/* invoke_batch {endpoint*, input*, mini_batch_size, max_concurrency,
 * error_threshold, max_retries, experiment_name, base_dir} -> job. */
int batch_invoke(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    const msgpack_object *b = cairn_body(req);
    batch_wait_t *w = calloc(1, sizeof *w);
    batch_input_ref_t *in = calloc(1, sizeof *in);
    if (!w || !in) {
        free(w);
        free(in);
        return cairn_err_oom(err, NULL);
    }
    *w = (batch_wait_t){.sc = sc, .req = req};
    cairn_str_t experiment = {0};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = s_find(sc, req, "endpoint", &w->row, err);
    if (rc == 0) rc = s_knobs(b, &w->row, err);
    if (rc == 0) rc = s_input(b, in, err);
    if (rc == 0 &&
        cairn_field_str(b, "experiment_name", false, 256, &experiment, err) < 0)
        rc = -1;
    if (rc == 0 && access(sc->batch_scorer, X_OK) != 0)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                           "the batch scorer %s cannot be run: %s (the endpoints "
                           "setting batch_scorer)",
                           sc->batch_scorer, strerror(errno));
    if (rc == 0) rc = s_spec(sc, req, &w->row, in, experiment, &sb, err);
    free(in);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&sb);
        free(w);
        return -1;
    }
    cairn_name_object(req, "batch_endpoint", w->row.name, strlen(w->row.name));
    rc = s_call(w, JOBS, "submit_job", &sb, s_submitted);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- init and fini ----------------------------------------------------------------
 */

int batch_init(scorer_t *sc, const char *setting, cairn_err_t *err)
{
    if (cairn_sibling_exe(setting, BATCH_SCORER_NAME, sc->batch_scorer,
                          sizeof sc->batch_scorer, err) != 0)
        return -1;
    return (sc->batch = batch_store_open(sc->store, err)) ? 0 : -1;
}

void batch_fini(scorer_t *sc)
{
    while (sc->batch_pending) {
        batch_wait_t *w = sc->batch_pending;
        s_wait_del(sc, w);
        free(w);
    }
    batch_store_close(&sc->batch);
}
