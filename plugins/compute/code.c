/* A job's code (compute.h): the spec's `code` folder, snapshotted when the
 * job is submitted (snapshot.h: .gitignore and .cairnignore honoured, each
 * file hashed, one hash for the whole by a canonical manifest), so that
 * the job runs the code as it was then, whatever is edited after.
 *
 *   JOBDIR/code/          the snapshot, never run in: each attempt of the
 *                         job gets a fresh copy of it as JOBDIR/work/ (its
 *                         working directory) when it starts
 *   JOBDIR/code.manifest  the manifest
 *
 * Once the job's run exists, the snapshot goes to the run: its files as
 * artifacts code/PATH (the artifact store keeps blobs by content, so the
 * same code is stored once however many jobs send it) and the manifest as
 * code.manifest, and tags: cairn.code.hash (sha256:HEX), and from git,
 * when the folder is in a work tree, mlflow.source.git.commit,
 * cairn.git.commit and cairn.git.dirty. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "compute.h"
#include "jobdir.h"
#include "snapshot.h"

#define CODE_DIR "code"
#define CODE_MANIFEST "code.manifest"
#define TTL_MS 30000

struct job_code {
    snapshot_t *snap;
    char dir[PATH_MAX]; /* JOBDIR */
    char commit[SNAPSHOT_COMMIT_MAX];
    bool dirty, in_repo;
};

void job_code_free(job_code_t **self_p)
{
    job_code_t *k = *self_p;
    if (!k) return;
    snapshot_destroy(&k->snap);
    free(k);
    *self_p = NULL;
}

void job_code_discard(job_code_t **self_p)
{
    if (*self_p) job_rm_tree((*self_p)->dir);
    job_code_free(self_p);
}

int job_rm_tree(const char *path)
{
    return snapshot_rm_tree(path);
}

static int s_mkdir(const char *path, cairn_err_t *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "cannot create %s: %s", path, strerror(errno));
    return 0;
}

/* The folder the spec names, absolute (a relative one against base_dir). */
static int s_source(const cairn_str_t code, const char *base_dir, char *out,
                    cairn_err_t *err)
{
    char joined[2 * PATH_MAX + 2];
    if (code.ptr[0] == '/')
        snprintf(joined, sizeof joined, "%.*s", (int)code.len, code.ptr);
    else if (base_dir && base_dir[0] == '/')
        snprintf(joined, sizeof joined, "%s/%.*s", base_dir, (int)code.len, code.ptr);
    else
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "code: '%.*s' is relative, and the request has no base_dir "
            "to read it against (give an absolute path)",
            (int)(code.len > 200 ? 200 : code.len), code.ptr);
    struct stat st;
    if (!realpath(joined, out) || stat(out, &st) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "code: %.300s: %s", joined, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "code: %.300s is not a folder", out);
    /* the kernel's own file systems: files that block when read, or never end */
    struct statfs fs;
    if (statfs(out, &fs) == 0 &&
        (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC ||
         fs.f_type == DEBUGFS_MAGIC || fs.f_type == TRACEFS_MAGIC ||
         fs.f_type == CGROUP_SUPER_MAGIC || fs.f_type == CGROUP2_SUPER_MAGIC ||
         fs.f_type == DEVPTS_SUPER_MAGIC || fs.f_type == SECURITYFS_MAGIC))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "code: %.300s is on one of the kernel's own file systems, "
                             "not a folder of code",
                             out);
    return 0;
}

int job_code_take(compute_t *c, const char *ws, const char *name, cairn_str_t code,
                  const char *base_dir, job_code_t **out, cairn_err_t *err)
{
    char src[PATH_MAX], wsdir[PATH_MAX], dest[PATH_MAX + 16], manifest[PATH_MAX + 32];
    if (s_source(code, base_dir, src, err) != 0) return -1;
    job_code_t *k = calloc(1, sizeof *k);
    if (!k) return cairn_err_oom(err, NULL);
    snprintf(wsdir, sizeof wsdir, "%s/%s", c->root, ws);
    snprintf(k->dir, sizeof k->dir, "%s/%s", wsdir, name);
    snprintf(dest, sizeof dest, "%s/%s", k->dir, CODE_DIR);
    snprintf(manifest, sizeof manifest, "%s/%s", k->dir, CODE_MANIFEST);
    job_rm_tree(k->dir); /* what a submit that failed under this name left */
    snapshot_limits_t lim = {.max_bytes = (uint64_t)c->code_max_bytes};
    cairn_err_t e = {0};
    if (s_mkdir(wsdir, err) != 0 || s_mkdir(k->dir, err) != 0 ||
        snapshot_take(src, dest, &lim, &k->snap, &e) != 0 ||
        snapshot_write_manifest(k->snap, manifest, &e) != 0) {
        if (e.st)
            cairn_err_set(err, e.st, e.code, "code: %s", e.msg); /* the field named */
        job_rm_tree(k->dir);
        job_code_free(&k);
        return -1;
    }
    if (snapshot_git(src, k->commit, &k->dirty, &k->in_repo, &e) != 0)
        k->in_repo = false; /* git's facts are a courtesy, never a refusal */
    *out = k;
    return 0;
}

static void s_tags_logged(void *arg, int st, const char *code, const char *msg,
                          const msgpack_object *body)
{
    compute_t *c = arg;
    (void)body;
    if (st >= 400)
        cairn_log(c->ctx, CAIRN_LOG_WARN, "a job's code tags were not set: %d %s %s",
                  st, code ? code : "", msg ? msg : "");
}

static void s_tag(msgpack_packer *pk, const char *key, const char *value)
{
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "key", key);
    cairn_pack_kv_str(pk, "value", value);
}

/* cairn.code.hash and git's facts on the run: one log_batch. */
static void s_tags(compute_t *c, const job_code_t *k, const char *ws,
                   const char *run_id)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "run_id", run_id);
    cairn_pack_cstr(&pk, "tags");
    msgpack_pack_array(&pk, k->in_repo ? 4 : 1);
    char hash[80];
    snprintf(hash, sizeof hash, "sha256:%s", snapshot_hash(k->snap));
    s_tag(&pk, "cairn.code.hash", hash);
    if (k->in_repo) {
        s_tag(&pk, "mlflow.source.git.commit", k->commit);
        s_tag(&pk, "cairn.git.commit", k->commit);
        s_tag(&pk, "cairn.git.dirty", k->dirty ? "true" : "false");
    }
    cairn_err_t err = {0};
    if (cairn_call_ws(c->ctx, ws, "tracking", "log_batch", sb.data, sb.size, TTL_MS,
                      s_tags_logged, c, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_WARN, "a job's code tags were not set: %s",
                  err.msg);
    msgpack_sbuffer_destroy(&sb);
}

static void s_uploaded(void *arg, const char *label, const char *why)
{
    compute_t *c = arg;
    if (why)
        cairn_log(c->ctx, CAIRN_LOG_WARN, "%s stays in the job's directory only: %s",
                  label, why);
}

void job_code_keep(compute_t *c, job_code_t **code_p, const char *ws,
                   const char *run_id, const char *job_name)
{
    job_code_t *k = *code_p;
    *code_p = NULL;
    if (!k) return;
    s_tags(c, k, ws, run_id);
    char label[JOB_NAME_MAX + 32], local[2 * PATH_MAX], remote[PATH_MAX];
    snprintf(label, sizeof label, "job %s's code", job_name);
    job_upload_t *u = job_upload_new(c, ws, run_id, label);
    bool ok = u != NULL;
    for (size_t i = 0; ok && i < snapshot_count(k->snap); i++) {
        const snapshot_file_t *f = snapshot_file(k->snap, i);
        if (f->target) continue; /* a link: in the manifest only */
        snprintf(local, sizeof local, "%s/%s/%s", k->dir, CODE_DIR, f->path);
        snprintf(remote, sizeof remote, "%s/%s", CODE_DIR, f->path);
        ok = job_upload_add(u, local, remote) == 0;
    }
    snprintf(local, sizeof local, "%s/%s", k->dir, CODE_MANIFEST);
    if (ok) ok = job_upload_add(u, local, CODE_MANIFEST) == 0;
    job_code_free(&k);
    if (!ok) {
        job_upload_free(&u);
        cairn_log(c->ctx, CAIRN_LOG_WARN, "%s: out of memory", label);
        return;
    }
    job_upload_start(u, s_uploaded, c);
}

int job_code_workdir(const compute_t *c, const job_t *j, cairn_err_t *err)
{
    char dir[PATH_MAX], code[PATH_MAX + 16], work[PATH_MAX + 16];
    job_dir(c, j, dir, sizeof dir);
    snprintf(code, sizeof code, "%s/%s", dir, CODE_DIR);
    snprintf(work, sizeof work, "%s/%s", dir, JOB_WORK);
    if (access(code, F_OK) != 0) return 0; /* no code: an empty work/ */
    if (job_rm_tree(work) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "cannot clear %s: %s", work, strerror(errno));
    snapshot_t *copy = NULL;
    snapshot_limits_t lim = {.max_bytes = (uint64_t)c->code_max_bytes};
    int rc = snapshot_take(code, work, &lim, &copy, err);
    snapshot_destroy(&copy);
    return rc;
}
