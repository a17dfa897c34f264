/* A job's outputs kept when it ends (compute.h).
 *
 * Each output `y` is a folder, JOBDIR/outputs/y, that the command writes
 * (${{outputs.y}}). When the command has ended, and before the job's end
 * is recorded, every regular file in it is uploaded to the run's artifacts
 * as outputs/y/PATH (upload.c), and, for a job that succeeded, an output
 * with register_as is registered from there: model:NAME as a new version
 * of model NAME (made when missing), data:NAME as a new version of data
 * asset NAME (uri_folder); both from runs:/RUN_ID/outputs/y, so that the
 * lineage links the run to what it made. The job stays Running meanwhile.
 *
 * The outcome is written to JOBDIR/outputs.done ("ok", or "error=WHY"),
 * so that a plugin that restarts mid-way does it again (an upload to the
 * same paths replaces them), and one that restarts after it does not. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute.h"

#define OUTPUTS_DONE "outputs.done"
#define OUTPUT_FILES_MAX 100000
#define TTL_MS 30000

typedef struct reg {
    char output[JOB_NAME_MAX + 1], kind[8], name[JOB_NAME_MAX + 1];
} reg_t;

typedef struct keeper {
    inflight_t node; /* first */
    compute_t *c;
    int64_t seq;
    char ws[CAIRN_HDR_NAME_MAX + 1], name[JOB_NAME_MAX + 1], run_id[64];
    char dir[PATH_MAX];
    reg_t reg[JOB_OUTPUTS_MAX];
    size_t nreg, cur;
    bool model_made; /* create_registered_model asked for reg[cur] */
} keeper_t;

static void s_drop(inflight_t *n)
{
    free(n);
}

/* The keeper of job seq at work, if any. */
static keeper_t *s_find(compute_t *c, int64_t seq)
{
    for (inflight_t *n = c->inflight.next; n != &c->inflight; n = n->next)
        if (n->drop == s_drop && ((keeper_t *)n)->seq == seq) return (keeper_t *)n;
    return NULL;
}

/* outputs.done written: the job's end can be recorded now. */
static void s_end(keeper_t *k, const char *why)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 48], text[JOB_REASON_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", k->dir, OUTPUTS_DONE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(text, sizeof text, why ? "error=%s\n" : "ok\n", why);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, (size_t)n) == n;
    if (fd >= 0 && close(fd) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0)
        cairn_log(k->c->ctx, CAIRN_LOG_ERROR, "job %s: cannot write %s: %s", k->name,
                  path, strerror(errno));
    inflight_del(&k->node);
    free(k); /* the next look at the job (a tick) records its end */
}

static void s_register_next(keeper_t *k);

static void s_registered(void *arg, int st, const char *code, const char *msg,
                         const msgpack_object *body)
{
    keeper_t *k = arg;
    (void)body;
    reg_t *r = &k->reg[k->cur];
    bool made_model = !strcmp(r->kind, "model") && !k->model_made;
    if (st >= 400 && !(made_model && st == CAIRN_ST_CONFLICT)) {
        char why[JOB_REASON_MAX];
        snprintf(why, sizeof why,
                 "outputs.%s: registering it as %s:%s failed: %d %s%s%s", r->output,
                 r->kind, r->name, st, code ? code : "", msg ? ": " : "",
                 msg ? msg : "");
        s_end(k, why);
        return;
    }
    if (made_model) {
        k->model_made = true; /* now the version */
    } else {
        k->cur++;
        k->model_made = false;
    }
    s_register_next(k);
}

static void s_register_next(keeper_t *k)
{
    if (k->cur >= k->nreg) {
        s_end(k, NULL);
        return;
    }
    const reg_t *r = &k->reg[k->cur];
    char source[256];
    snprintf(source, sizeof source, "runs:/%s/outputs/%s", k->run_id, r->output);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *verb;
    if (!strcmp(r->kind, "data")) {
        verb = "create_data_asset";
        msgpack_pack_map(&pk, 3);
        cairn_pack_kv_str(&pk, "name", r->name);
        cairn_pack_kv_str(&pk, "type", "uri_folder");
        cairn_pack_kv_str(&pk, "path", source);
    } else if (!k->model_made) {
        verb = "create_registered_model";
        msgpack_pack_map(&pk, 1);
        cairn_pack_kv_str(&pk, "name", r->name);
    } else {
        verb = "create_model_version";
        msgpack_pack_map(&pk, 3);
        cairn_pack_kv_str(&pk, "name", r->name);
        cairn_pack_kv_str(&pk, "source", source);
        cairn_pack_kv_str(&pk, "run_id", k->run_id);
    }
    cairn_err_t err = {0};
    int rc = cairn_call_ws(k->c->ctx, k->ws, "registry", verb, sb.data, sb.size, TTL_MS,
                           s_registered, k, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) s_end(k, err.msg);
}

static void s_uploaded(void *arg, const char *label, const char *why)
{
    keeper_t *k = arg;
    (void)label;
    if (why) {
        char text[JOB_REASON_MAX];
        snprintf(text, sizeof text, "outputs: %s", why);
        s_end(k, text);
        return;
    }
    s_register_next(k);
}

/* Every regular file under dir (symbolic links are not followed), to be
 * uploaded as remote/PATH. */
static int s_walk(job_upload_t *u, const char *dir, const char *remote, int depth,
                  char *why, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, cap, "outputs: cannot read %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char local[PATH_MAX], sub[PATH_MAX];
        if (snprintf(local, sizeof local, "%s/%s", dir, e->d_name) >=
                (int)sizeof local ||
            snprintf(sub, sizeof sub, "%s/%s", remote, e->d_name) >= (int)sizeof sub) {
            snprintf(why, cap, "outputs: a path under %s is too long", dir);
            rc = -1;
            break;
        }
        struct stat st;
        if (lstat(local, &st) != 0) continue;
        if (S_ISDIR(st.st_mode) && depth < 64) {
            rc = s_walk(u, local, sub, depth + 1, why, cap);
        } else if (S_ISREG(st.st_mode)) {
            if (job_upload_count(u) >= OUTPUT_FILES_MAX) {
                snprintf(why, cap, "outputs: more than %d files", OUTPUT_FILES_MAX);
                rc = -1;
            } else if (job_upload_add(u, local, sub) != 0) {
                snprintf(why, cap, "outputs: out of memory");
                rc = -1;
            }
        }
    }
    closedir(d);
    return rc;
}

/* Start keeping j's outputs; false when it could not even begin (why). */
static bool s_start(compute_t *c, const job_t *j, const msgpack_object *outputs,
                    bool succeeded, char *why, size_t cap)
{
    keeper_t *k = calloc(1, sizeof *k);
    char label[JOB_NAME_MAX + 32], root[PATH_MAX];
    snprintf(label, sizeof label, "job %s's outputs", j->name);
    job_upload_t *u = job_upload_new(c, j->ws, j->run_id, label);
    if (!k || !u) {
        free(k);
        job_upload_free(&u);
        snprintf(why, cap, "outputs: out of memory");
        return false;
    }
    *k = (keeper_t){.c = c, .seq = j->seq};
    snprintf(k->ws, sizeof k->ws, "%s", j->ws);
    snprintf(k->name, sizeof k->name, "%s", j->name);
    snprintf(k->run_id, sizeof k->run_id, "%s", j->run_id);
    job_dir(c, j, k->dir, sizeof k->dir);
    job_outputs_dir(c, j, root, sizeof root);
    for (uint32_t i = 0; i < outputs->via.map.size; i++) {
        const msgpack_object *key = &outputs->via.map.ptr[i].key;
        char local[PATH_MAX + JOB_NAME_MAX + 2], remote[JOB_NAME_MAX + 16];
        snprintf(local, sizeof local, "%s/%.*s", root, (int)key->via.str.size,
                 key->via.str.ptr);
        snprintf(remote, sizeof remote, "outputs/%.*s", (int)key->via.str.size,
                 key->via.str.ptr);
        if (access(local, F_OK) == 0 && s_walk(u, local, remote, 0, why, cap) != 0) {
            free(k);
            job_upload_free(&u);
            return false;
        }
        cairn_str_t kind, name;
        if (succeeded &&
            job_output_register(&outputs->via.map.ptr[i].val, &kind, &name)) {
            reg_t *r = &k->reg[k->nreg++];
            snprintf(r->output, sizeof r->output, "%.*s", (int)key->via.str.size,
                     key->via.str.ptr);
            snprintf(r->kind, sizeof r->kind, "%.*s", (int)kind.len, kind.ptr);
            snprintf(r->name, sizeof r->name, "%.*s", (int)name.len, name.ptr);
        }
    }
    inflight_add(c, &k->node, s_drop);
    job_upload_start(u, s_uploaded, k);
    return true;
}

/* outputs.done read: 1 (why filled when it says error), 0 when absent. */
static int s_read_done(compute_t *c, const job_t *j, char *why, size_t cap)
{
    char dir[PATH_MAX], path[PATH_MAX + 32], text[JOB_REASON_MAX + 16];
    job_dir(c, j, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, OUTPUTS_DONE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    text[strcspn(text, "\n")] = '\0';
    if (!strncmp(text, "error=", 6)) snprintf(why, cap, "%s", text + 6);
    return 1;
}

int job_outputs_keep(compute_t *c, const job_t *j, const msgpack_object *outputs,
                     bool succeeded, char *why, size_t cap)
{
    why[0] = '\0';
    if (!outputs || !j->run_id[0]) return 1;
    if (s_read_done(c, j, why, cap)) return 1;
    if (s_find(c, j->seq)) return 0; /* at work */
    if (!s_start(c, j, outputs, succeeded, why, cap)) return 1;
    return s_read_done(c, j, why, cap); /* nothing to send: done already */
}
