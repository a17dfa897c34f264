/* A job's log kept with its run (compute.h): when the job ends, its
 * stdout and stderr (the file the shim wrote) are uploaded to the run's
 * artifacts as logs/output.log, chunk after chunk (put_artifact, the
 * artifact store hashing and storing each as it comes), one chunk in
 * memory at a time. Best effort: an upload the plugin does not finish (a
 * crash, the artifact service down) leaves the log in the job's directory,
 * where stream_logs still reads it. Without an artifacts service there is
 * nothing to do. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compute.h"
#include "jobdir.h"

#define CHUNK (4u << 20) /* put_artifact takes at most 8 MiB */
#define TTL_MS 60000
#define LOG_PATH "logs/output.log"

typedef struct logput {
    inflight_t node; /* first: a logput_t is its node */
    compute_t *c;
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char run_id[64], name[JOB_NAME_MAX + 1];
    char upload_id[128];
    int fd;
    uint64_t size, offset;
    char *buf;
} logput_t;

static void s_free(logput_t *u)
{
    if (u->fd >= 0) close(u->fd);
    free(u->buf);
    free(u);
}

static void s_drop(inflight_t *n)
{
    s_free((logput_t *)n);
}

static void s_end(logput_t *u, const char *why)
{
    inflight_del(&u->node);
    if (why)
        cairn_log(u->c->ctx, CAIRN_LOG_WARN,
                  "job %s: its log stays in the job's directory only: %s", u->name,
                  why);
    s_free(u);
}

static void s_send(logput_t *u);

static void s_sent(void *arg, int st, const char *code, const char *msg,
                   const msgpack_object *body)
{
    logput_t *u = arg;
    if (st == CAIRN_ST_NOT_FOUND && code && !strcmp(code, CAIRN_E_NO_SERVICE)) {
        s_end(u, NULL); /* no artifact store in this deployment */
        return;
    }
    if (st >= 400) {
        char why[CAIRN_ERR_MSG_MAX + 64];
        snprintf(why, sizeof why, "artifacts.put_artifact answered %d: %s", st,
                 msg ? msg : "");
        s_end(u, why);
        return;
    }
    const msgpack_object *id = cairn_obj_get(body, "upload_id");
    if (!u->upload_id[0] && id && id->type == MSGPACK_OBJECT_STR &&
        id->via.str.size < sizeof u->upload_id)
        snprintf(u->upload_id, sizeof u->upload_id, "%.*s", (int)id->via.str.size,
                 id->via.str.ptr);
    if (u->offset >= u->size) {
        s_end(u, NULL);
        return;
    }
    s_send(u);
}

/* The next chunk (the last: done). */
static void s_send(logput_t *u)
{
    size_t n = u->size - u->offset < CHUNK ? (size_t)(u->size - u->offset) : CHUNK;
    ssize_t got = n ? pread(u->fd, u->buf, n, (off_t)u->offset) : 0;
    if (got < 0 || (size_t)got != n) {
        s_end(u, "the log could not be read");
        return;
    }
    bool done = u->offset + n >= u->size;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, u->upload_id[0] ? 6 : 5);
    cairn_pack_kv_str(&pk, "run_id", u->run_id);
    cairn_pack_kv_str(&pk, "path", LOG_PATH);
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
    cairn_err_t err = {0};
    int rc = cairn_call_ws(u->c->ctx, u->ws, "artifacts", "put_artifact", sb.data,
                           sb.size, TTL_MS, s_sent, u, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) s_end(u, err.msg);
}

void job_log_keep(compute_t *c, const job_t *j)
{
    if (!j->run_id[0] || !j->started) return;
    char dir[PATH_MAX], path[PATH_MAX + 64];
    job_dir(c, j, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, JOB_LOG);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        return; /* nothing was written */
    }
    logput_t *u = calloc(1, sizeof *u);
    char *buf = malloc(CHUNK);
    if (!u || !buf) {
        free(u);
        free(buf);
        close(fd);
        cairn_log(c->ctx, CAIRN_LOG_WARN, "job %s: no memory to keep its log", j->name);
        return;
    }
    *u = (logput_t){.c = c, .fd = fd, .size = (uint64_t)st.st_size, .buf = buf};
    snprintf(u->ws, sizeof u->ws, "%s", j->ws);
    snprintf(u->run_id, sizeof u->run_id, "%s", j->run_id);
    snprintf(u->name, sizeof u->name, "%s", j->name);
    inflight_add(c, &u->node, s_drop);
    s_send(u);
}
