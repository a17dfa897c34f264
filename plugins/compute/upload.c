/* Local files uploaded to a run's artifacts (compute.h): one after the
 * other, each chunk after chunk (put_artifact, the artifact store hashing
 * and storing each as it comes), one chunk in memory at a time. A job's
 * log (logput.c) and its outputs (outputs.c) go this way. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute.h"

#define CHUNK (4u << 20) /* put_artifact takes at most 8 MiB */
#define TTL_MS 60000

typedef struct upload_file {
    char *local, *remote;
} upload_file_t;

struct job_upload {
    inflight_t node; /* first */
    compute_t *c;
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char run_id[64];
    char label[JOB_NAME_MAX + 64]; /* what is uploaded, for done's messages */
    upload_file_t *files;
    size_t n, cap, cur;
    char upload_id[128];
    int fd;
    uint64_t size, offset;
    char *buf;
    uint64_t bytes; /* all files' */
    job_upload_fn *done;
    void *arg;
};

job_upload_t *job_upload_new(compute_t *c, const char *ws, const char *run_id,
                             const char *label)
{
    job_upload_t *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    *u = (job_upload_t){.c = c, .fd = -1};
    snprintf(u->ws, sizeof u->ws, "%s", ws);
    snprintf(u->run_id, sizeof u->run_id, "%s", run_id);
    snprintf(u->label, sizeof u->label, "%s", label);
    return u;
}

void job_upload_free(job_upload_t **self_p)
{
    job_upload_t *u = *self_p;
    if (!u) return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->files[i].local);
        free(u->files[i].remote);
    }
    free(u->files);
    if (u->fd >= 0) close(u->fd);
    free(u->buf);
    free(u);
    *self_p = NULL;
}

int job_upload_add(job_upload_t *u, const char *local, const char *remote)
{
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 8;
        upload_file_t *f = realloc(u->files, cap * sizeof *f);
        if (!f) return -1;
        u->files = f;
        u->cap = cap;
    }
    upload_file_t *f = &u->files[u->n];
    f->local = strdup(local);
    f->remote = strdup(remote);
    if (!f->local || !f->remote) {
        free(f->local);
        free(f->remote);
        return -1;
    }
    u->n++;
    return 0;
}

size_t job_upload_count(const job_upload_t *u)
{
    return u->n;
}

static void s_drop(inflight_t *n)
{
    job_upload_t *u = (job_upload_t *)n;
    job_upload_free(&u);
}

static void s_end(job_upload_t *u, const char *why)
{
    inflight_del(&u->node);
    u->done(u->arg, u->label, why);
    job_upload_free(&u);
}

static void s_next_file(job_upload_t *u);
static void s_send(job_upload_t *u);

static void s_sent(void *arg, int st, const char *code, const char *msg,
                   const msgpack_object *body)
{
    job_upload_t *u = arg;
    char why[CAIRN_ERR_MSG_MAX + 256];
    if (st == CAIRN_ST_NOT_FOUND && code && !strcmp(code, CAIRN_E_NO_SERVICE)) {
        s_end(u, "this Cairn has no artifact store");
        return;
    }
    if (st >= 400) {
        snprintf(why, sizeof why, "artifacts.put_artifact of %s answered %d: %s",
                 u->files[u->cur].remote, st, msg ? msg : "");
        s_end(u, why);
        return;
    }
    const msgpack_object *id = cairn_obj_get(body, "upload_id");
    if (!u->upload_id[0] && id && id->type == MSGPACK_OBJECT_STR &&
        id->via.str.size < sizeof u->upload_id)
        snprintf(u->upload_id, sizeof u->upload_id, "%.*s", (int)id->via.str.size,
                 id->via.str.ptr);
    if (u->offset < u->size) {
        s_send(u);
        return;
    }
    close(u->fd);
    u->fd = -1;
    u->cur++;
    s_next_file(u);
}

/* The next chunk of the current file (the last: done). */
static void s_send(job_upload_t *u)
{
    size_t n = u->size - u->offset < CHUNK ? (size_t)(u->size - u->offset) : CHUNK;
    ssize_t got = n ? pread(u->fd, u->buf, n, (off_t)u->offset) : 0;
    if (got < 0 || (size_t)got != n) {
        char why[PATH_MAX + 64];
        snprintf(why, sizeof why, "%s could not be read", u->files[u->cur].local);
        s_end(u, why);
        return;
    }
    bool done = u->offset + n >= u->size;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, u->upload_id[0] ? 6 : 5);
    cairn_pack_kv_str(&pk, "run_id", u->run_id);
    cairn_pack_kv_str(&pk, "path", u->files[u->cur].remote);
    cairn_pack_cstr(&pk, "data");
    msgpack_pack_bin_with_body(&pk, u->buf, n);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, u->offset);
    cairn_pack_cstr(&pk, "done");
    if (done)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    if (u->upload_id[0]) cairn_pack_kv_str(&pk, "upload_id", u->upload_id);
    u->offset += n;
    u->bytes += n;
    cairn_err_t err = {0};
    int rc = cairn_call_ws(u->c->ctx, u->ws, "artifacts", "put_artifact", sb.data,
                           sb.size, TTL_MS, s_sent, u, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) s_end(u, err.msg);
}

static void s_next_file(job_upload_t *u)
{
    if (u->cur >= u->n) {
        s_end(u, NULL);
        return;
    }
    const upload_file_t *f = &u->files[u->cur];
    struct stat st;
    u->fd = open(f->local, O_RDONLY | O_CLOEXEC);
    if (u->fd < 0 || fstat(u->fd, &st) != 0) {
        char why[PATH_MAX + 128];
        snprintf(why, sizeof why, "%s could not be read: %s", f->local,
                 strerror(errno));
        s_end(u, why);
        return;
    }
    u->size = (uint64_t)st.st_size;
    u->offset = 0;
    u->upload_id[0] = '\0';
    s_send(u);
}

void job_upload_start(job_upload_t *u, job_upload_fn *done, void *arg)
{
    u->done = done;
    u->arg = arg;
    inflight_add(u->c, &u->node, s_drop);
    if (!(u->buf = malloc(CHUNK))) {
        s_end(u, "out of memory");
        return;
    }
    s_next_file(u);
}
