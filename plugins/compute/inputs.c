/* A job's file and folder inputs, found at submit (compute.h).
 *
 * An input {type: uri_file | uri_folder, path} names a local path or a
 * data asset (data:NAME:VERSION, data:NAME@ALIAS). Each is found once,
 * when the job is submitted, so that a job runs what it was given even if
 * an alias moves while it waits in the queue:
 *   - a local path is made absolute (a relative one against the request's
 *     base_dir, the folder of the YAML file the CLI or an SDK read) and
 *     must exist, as a folder for uri_folder and a file for uri_file;
 *   - a data reference is resolved by the registry (resolve, a nested
 *     call): its canonical reference is kept for the run's lineage and its
 *     path is the registry's read-only folder of the version's files (for
 *     uri_file, the one file in it).
 * The spec is then stored with those absolute paths in place of what was
 * written, so that ${{inputs.x}} is the path the job reads. The job's
 * `environment` (env:NAME:VERSION or @ALIAS) is resolved the same way and
 * stored as its canonical reference: the job runs in the version it was
 * submitted with. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "compute.h"

#define REGISTRY "registry"
#define TTL_MS 30000
#define DATA_PREFIX "data:"

typedef struct found {
    const msgpack_object *key;     /* the input's name (in u); NULL: environment */
    char field[JOB_NAME_MAX + 16]; /* "inputs.x.path", "environment" */
    char *path;                    /* the absolute path, once found */
    char ref[JOB_TEXT_MAX + 1];    /* a reference as written, then canonical */
    bool folder, data, env;        /* data: a data asset; env: the environment */
    bool top; /* key is the spec's own (a train job's data): its value replaced */
} found_t;

struct job_inputs {
    inflight_t node; /* first */
    compute_t *c;
    char ws[CAIRN_HDR_NAME_MAX + 1];
    msgpack_sbuffer *sb; /* the spec: read, then packed again */
    msgpack_unpacked u;
    found_t *v;
    size_t n, next; /* inputs with a path; the next data reference to ask */
    job_inputs_fn *done;
    void *arg;
};

static __attribute__((format(printf, 3, 4))) int s_bad(cairn_err_t *err,
                                                       const found_t *f,
                                                       const char *fmt, ...)
{
    char why[CAIRN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, "%s: %s",
                         f->field, why);
}

void job_inputs_free(job_inputs_t **self_p)
{
    job_inputs_t *r = *self_p;
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->v[i].path);
    free(r->v);
    msgpack_unpacked_destroy(&r->u);
    free(r);
    *self_p = NULL;
}

static void s_drop(inflight_t *n)
{
    job_inputs_t *r = (job_inputs_t *)n;
    job_inputs_free(&r);
}

size_t job_inputs_refs(const job_inputs_t *r, const char **refs, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; r && i < r->n && k < cap; i++)
        if (r->v[i].data || r->v[i].env) refs[k++] = r->v[i].ref;
    return k;
}

/* A local path, absolute, checked to be what the input's type says. */
static int s_local(const job_inputs_t *r, found_t *f, const char *written,
                   const char *base_dir, cairn_err_t *err)
{
    (void)r;
    char joined[PATH_MAX * 2];
    if (written[0] != '/') {
        if (!base_dir || base_dir[0] != '/')
            return s_bad(
                err, f,
                "'%.200s' is relative, and the request has no base_dir to read "
                "it against (give an absolute path)",
                written);
        snprintf(joined, sizeof joined, "%s/%s", base_dir, written);
    } else {
        snprintf(joined, sizeof joined, "%s", written);
    }
    f->path = realpath(joined, NULL);
    struct stat st;
    if (!f->path || stat(f->path, &st) != 0)
        return s_bad(err, f, "%.300s: %s", joined, strerror(errno));
    if (f->folder && !S_ISDIR(st.st_mode))
        return s_bad(err, f, "%.300s is not a folder (say type: uri_file for a file)",
                     f->path);
    if (!f->folder && !S_ISREG(st.st_mode))
        return s_bad(err, f, "%.300s is not a file (type: uri_file)", f->path);
    return 0;
}

/* The one file in a data asset's folder (a uri_file input). */
static int s_only_file(found_t *f, const char *dir, cairn_err_t *err)
{
    DIR *d = opendir(dir);
    if (!d) return s_bad(err, f, "cannot read %.300s: %s", dir, strerror(errno));
    char *one = NULL;
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, ".."))) {
            files++;
            free(one);
            if (asprintf(&one, "%s/%s", dir, e->d_name) < 0) one = NULL;
        }
    closedir(d);
    struct stat st;
    if (files != 1 || !one || stat(one, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(one);
        return s_bad(err, f, "%s holds %s, not one file (type: uri_file)", f->ref,
                     files > 1 ? "several files" : "no file");
    }
    f->path = one;
    return 0;
}

static void s_finish(job_inputs_t *r, const cairn_err_t *err);
static void s_ask_next(job_inputs_t *r);

static void s_resolved(void *arg, int st, const char *code, const char *msg,
                       const msgpack_object *body)
{
    job_inputs_t *r = arg;
    found_t *f = &r->v[r->next++];
    cairn_err_t err = {0};
    cairn_str_t ref, kind, path;
    if (st == CAIRN_ST_NOT_FOUND && code && !strcmp(code, CAIRN_E_NO_SERVICE))
        s_bad(&err, f, "%s: this Cairn has no registry to resolve it", f->ref);
    else if (st >= 400)
        cairn_err_set(&err, st < 500 ? st : CAIRN_ST_BAD_GATEWAY,
                      st < 500 ? code : CAIRN_E_BAD_REPLY, "%s: %s", f->field,
                      msg ? msg : "");
    else if (cairn_field_str(body, "ref", true, JOB_TEXT_MAX, &ref, &err) != 0 ||
             cairn_field_str(body, "kind", true, 64, &kind, &err) != 0)
        err.st = CAIRN_ST_BAD_GATEWAY;
    else if (!cairn_str_eq(kind, f->env ? "environment" : "data_asset"))
        s_bad(&err, f, "%s is a %.*s, not %s", f->ref, (int)kind.len, kind.ptr,
              f->env ? "an environment" : "a data asset");
    else if (!f->env && cairn_field_str(body, "path", true, PATH_MAX, &path, &err) != 0)
        s_bad(&err, f, "%s has no files on this machine", f->ref);
    if (!err.st && f->env) {
        snprintf(f->ref, sizeof f->ref, "%.*s", (int)ref.len, ref.ptr);
    } else if (!err.st) {
        snprintf(f->ref, sizeof f->ref, "%.*s", (int)ref.len, ref.ptr);
        char dir[PATH_MAX + 1];
        snprintf(dir, sizeof dir, "%.*s", (int)path.len, path.ptr);
        if (f->folder) {
            if (!(f->path = strdup(dir))) cairn_err_oom(&err, NULL);
        } else {
            s_only_file(f, dir, &err);
        }
    }
    if (err.st) {
        s_finish(r, &err);
        return;
    }
    s_ask_next(r);
}

/* The spec again, each input's path replaced by the one found. */
static int s_repack(job_inputs_t *r, cairn_err_t *err)
{
    const msgpack_object *spec = &r->u.data;
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, spec->via.map.size);
    for (uint32_t i = 0; i < spec->via.map.size; i++) {
        const msgpack_object_kv *kv = &spec->via.map.ptr[i];
        msgpack_pack_object(&pk, kv->key);
        const found_t *env = NULL;
        for (size_t x = 0; x < r->n && !env; x++)
            if (r->v[x].env) env = &r->v[x];
        if (env && cairn_obj_is_str(&kv->key, "environment")) {
            cairn_pack_cstr(&pk, env->ref); /* canonical: env:NAME:VERSION */
            continue;
        }
        const found_t *top = NULL;
        for (size_t x = 0; x < r->n && !top; x++)
            if (r->v[x].top && r->v[x].key == &kv->key) top = &r->v[x];
        if (top) {
            cairn_pack_cstr(&pk, top->path);
            continue;
        }
        if (!cairn_obj_is_str(&kv->key, "inputs")) {
            msgpack_pack_object(&pk, kv->val);
            continue;
        }
        msgpack_pack_map(&pk, kv->val.via.map.size);
        for (uint32_t k = 0; k < kv->val.via.map.size; k++) {
            const msgpack_object_kv *in = &kv->val.via.map.ptr[k];
            msgpack_pack_object(&pk, in->key);
            const found_t *f = NULL;
            for (size_t x = 0; x < r->n && !f; x++)
                if (r->v[x].key == &in->key) f = &r->v[x];
            if (!f) {
                msgpack_pack_object(&pk, in->val);
                continue;
            }
            msgpack_pack_map(&pk, in->val.via.map.size);
            for (uint32_t m = 0; m < in->val.via.map.size; m++) {
                msgpack_pack_object(&pk, in->val.via.map.ptr[m].key);
                if (cairn_obj_is_str(&in->val.via.map.ptr[m].key, "path"))
                    cairn_pack_cstr(&pk, f->path);
                else
                    msgpack_pack_object(&pk, in->val.via.map.ptr[m].val);
            }
        }
    }
    if (!out.data) return cairn_err_oom(err, NULL);
    msgpack_sbuffer_destroy(r->sb);
    *r->sb = out; /* the unpacked spec's objects now point nowhere: not read again */
    return 0;
}

static void s_finish(job_inputs_t *r, const cairn_err_t *err)
{
    inflight_del(&r->node);
    cairn_err_t e = {0};
    if (!err && s_repack(r, &e) != 0) err = &e;
    r->done(r->arg, err, r);
}

static void s_ask_next(job_inputs_t *r)
{
    while (r->next < r->n && !r->v[r->next].data && !r->v[r->next].env) r->next++;
    if (r->next == r->n) {
        s_finish(r, NULL);
        return;
    }
    found_t *f = &r->v[r->next];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "ref", f->ref);
    cairn_err_t err = {0};
    int rc = cairn_call_ws(r->c->ctx, r->ws, REGISTRY, "resolve", sb.data, sb.size,
                           TTL_MS, s_resolved, r, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) s_finish(r, &err);
}

/* Each path input into r->v; local ones found now. */
/* The environment, to be resolved (pinned) like a data reference. */
static void s_collect_env(job_inputs_t *r)
{
    const msgpack_object *e = cairn_obj_get(&r->u.data, "environment");
    if (!e || e->type != MSGPACK_OBJECT_STR) return;
    found_t *f = &r->v[r->n++];
    f->env = true;
    snprintf(f->field, sizeof f->field, "environment");
    snprintf(f->ref, sizeof f->ref, "%.*s", (int)e->via.str.size, e->via.str.ptr);
}

/* A train job's data, when a local file: found as a uri_file input is
 * (a data: reference is left to the trainer, which resolves it). */
static int s_collect_train_data(job_inputs_t *r, const char *base_dir, cairn_err_t *err)
{
    const msgpack_object *spec = &r->u.data;
    if (!cairn_obj_is_str(cairn_obj_get(spec, "type"), "train")) return 0;
    for (uint32_t i = 0; i < spec->via.map.size; i++) {
        const msgpack_object_kv *kv = &spec->via.map.ptr[i];
        if (!cairn_obj_is_str(&kv->key, "data") || kv->val.type != MSGPACK_OBJECT_STR ||
            (kv->val.via.str.size >= 5 && !memcmp(kv->val.via.str.ptr, DATA_PREFIX, 5)))
            continue;
        found_t *f = &r->v[r->n++];
        *f = (found_t){.key = &kv->key, .top = true};
        snprintf(f->field, sizeof f->field, "data");
        char written[JOB_PATH_MAX + 1];
        snprintf(written, sizeof written, "%.*s", (int)kv->val.via.str.size,
                 kv->val.via.str.ptr);
        return s_local(r, f, written, base_dir, err);
    }
    return 0;
}

static int s_collect(job_inputs_t *r, const char *base_dir, cairn_err_t *err)
{
    const msgpack_object *in = cairn_obj_get(&r->u.data, "inputs");
    uint32_t n = in && in->type == MSGPACK_OBJECT_MAP ? in->via.map.size : 0;
    if (!(r->v = calloc(n + 3, sizeof *r->v))) return cairn_err_oom(err, NULL);
    s_collect_env(r);
    if (s_collect_train_data(r, base_dir, err) != 0) return -1;
    for (uint32_t i = 0; i < n; i++) {
        cairn_str_t path;
        found_t *f = &r->v[r->n];
        if (!job_input_path(&in->via.map.ptr[i].val, &path, &f->folder)) continue;
        f->key = &in->via.map.ptr[i].key;
        snprintf(f->field, sizeof f->field, "inputs.%.*s.path",
                 (int)f->key->via.str.size, f->key->via.str.ptr);
        r->n++;
        char written[JOB_PATH_MAX + 1];
        snprintf(written, sizeof written, "%.*s", (int)path.len, path.ptr);
        if (!strncmp(written, DATA_PREFIX, strlen(DATA_PREFIX))) {
            if (path.len > JOB_TEXT_MAX)
                return s_bad(err, f, "the reference is too long");
            size_t refs = 0;
            for (size_t x = 0; x + 1 < r->n; x++) refs += r->v[x].data || r->v[x].env;
            if (refs >= JOB_DATA_REFS_MAX)
                return s_bad(err, f, "a job reads at most %d data assets",
                             JOB_DATA_REFS_MAX);
            f->data = true;
            snprintf(f->ref, sizeof f->ref, "%s", written);
        } else if (s_local(r, f, written, base_dir, err) != 0) {
            return -1;
        }
    }
    return 0;
}

int job_inputs_resolve(compute_t *c, const char *ws, msgpack_sbuffer *sb,
                       const char *base_dir, job_inputs_fn *done, void *arg,
                       cairn_err_t *err)
{
    job_inputs_t *r = calloc(1, sizeof *r);
    if (!r) return cairn_err_oom(err, NULL);
    *r = (job_inputs_t){.c = c, .sb = sb, .done = done, .arg = arg};
    snprintf(r->ws, sizeof r->ws, "%s", ws);
    msgpack_unpacked_init(&r->u);
    if (msgpack_unpack_next(&r->u, sb->data, sb->size, NULL) !=
            MSGPACK_UNPACK_SUCCESS ||
        s_collect(r, base_dir, err) != 0) {
        if (!err->st)
            cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                          "spec must be a map");
        job_inputs_free(&r);
        return -1;
    }
    inflight_add(c, &r->node, s_drop);
    s_ask_next(r);
    return 0;
}
