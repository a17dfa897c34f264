/* MLflow's artifact proxy (mlflow-artifacts), over the artifact store:
 *
 *   PUT    /api/2.0/mlflow-artifacts/artifacts/EXP/RUN/artifacts/PATH   upload
 *   GET    /api/2.0/mlflow-artifacts/artifacts/EXP/RUN/artifacts/PATH   download
 *   DELETE /api/2.0/mlflow-artifacts/artifacts/EXP/RUN/artifacts/PATH
 *   GET    /api/2.0/mlflow-artifacts/artifacts?path=EXP/RUN/artifacts/DIR  list
 *
 * Streamed both ways, never a whole file in memory: an upload is gathered
 * into CHUNK-sized put_artifact requests as its body arrives (the store
 * hashes and commits it at the last), a download reads get_artifact
 * ranges as the client takes them. EXP is not checked (the run names its
 * experiment); RUN and PATH name the store's file. Multipart uploads
 * (/api/2.0/mlflow-artifacts/mpu/...) are mpu.c's. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "jsonmp.h"

#define PREFIX "/api/2.0/mlflow-artifacts/artifacts"
#define CHUNK (4u << 20)
#define ID_MAX 128
#define PATH_MAX_BYTES 1024

/* EXP/RUN/artifacts/PATH into run and path (path may be empty). */
bool gw_art_split(const char *rest, char run[ID_MAX], char path[PATH_MAX_BYTES + 1])
{
    const char *exp_end = strchr(rest, '/');
    if (!exp_end || exp_end == rest) return false;
    const char *run_start = exp_end + 1, *run_end = strchr(run_start, '/');
    size_t rl = run_end ? (size_t)(run_end - run_start) : strlen(run_start);
    if (!rl || rl >= ID_MAX) return false;
    memcpy(run, run_start, rl);
    run[rl] = '\0';
    const char *tail = run_end ? run_end + 1 : "";
    if (strncmp(tail, "artifacts", 9) != 0 || (tail[9] && tail[9] != '/')) return false;
    tail += 9;
    if (*tail == '/') tail++;
    if (strlen(tail) > PATH_MAX_BYTES) return false;
    snprintf(path, PATH_MAX_BYTES + 1, "%s", tail);
    return true;
}

/* Pack {run_id, path} plus n more keys' room. */
static void s_pack_target(msgpack_packer *pk, uint32_t nkeys, const char *run,
                          const char *path)
{
    msgpack_pack_map(pk, nkeys);
    cairn_pack_kv_text(pk, "run_id", run);
    cairn_pack_kv_text(pk, "path", path);
}

/* ---- upload ------------------------------------------------------------- */

typedef struct {
    gw_req_t r;
    char run[ID_MAX], path[PATH_MAX_BYTES + 1];
    char upload_id[ID_MAX];
    char *buf;
    size_t len;
    uint64_t offset; /* bytes the store holds */
    cairn_err_t err; /* the first failure: ends the upload */
} upload_t;

/* One put_artifact of the buffered bytes (done: the last). */
static int s_put(upload_t *u, bool done)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_pack_target(&pk, u->upload_id[0] ? 6 : 5, u->run, u->path);
    cairn_pack_cstr(&pk, "data");
    msgpack_pack_bin(&pk, u->len);
    msgpack_pack_bin_body(&pk, u->buf, u->len);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, u->offset);
    cairn_pack_cstr(&pk, "done");
    if (done)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    if (u->upload_id[0]) cairn_pack_kv_text(&pk, "upload_id", u->upload_id);
    cairn_reply_t *reply = NULL;
    int rc =
        gw_call(&u->r, "artifacts", "put_artifact", sb.data, sb.size, &reply, &u->err);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0 && !u->upload_id[0] && !done) {
        cairn_str_t id;
        cairn_err_t e = {0};
        if (cairn_field_str(cairn_reply_object(reply), "upload_id", true, ID_MAX - 1,
                            &id, &e) == 0)
            snprintf(u->upload_id, sizeof u->upload_id, "%.*s", (int)id.len, id.ptr);
        else
            rc = cairn_err_set(&u->err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                               "the artifact store's answer names no upload_id");
    }
    cairn_reply_destroy(&reply);
    if (rc == 0) {
        u->offset += u->len;
        u->len = 0;
    }
    return rc;
}

static int s_up_data(void *ctx, const char *p, size_t n)
{
    upload_t *u = ctx;
    while (n) {
        size_t take = CHUNK - u->len < n ? CHUNK - u->len : n;
        memcpy(u->buf + u->len, p, take);
        u->len += take;
        p += take;
        n -= take;
        if (u->len == CHUNK && s_put(u, false) != 0) return -1;
    }
    return 0;
}

static void s_up_end(void *ctx, const cairn_http_request_t *req,
                     cairn_http_response_t *resp)
{
    (void)req;
    upload_t *u = ctx;
    u->r.resp = resp;
    if (!u->err.st) s_put(u, true);
    if (u->err.st)
        gw_mlflow_error(&u->r, u->err.st, u->err.code, u->err.msg);
    else
        gw_reply_json(&u->r, 200, json_object());
}

static void s_up_release(void *ctx)
{
    upload_t *u = ctx;
    free(u->buf);
    free(u);
}

bool gw_artifacts_stream(gateway_t *g, const cairn_http_request_t *http,
                         cairn_http_stream_t *s)
{
    if (gw_mpu_stream(g, http, s)) return true; /* a part (mpu.c) */
    if (strcmp(http->method, "PUT") != 0) return false;
    upload_t *u = calloc(1, sizeof *u);
    if (!u) return false;
    u->r = (gw_req_t){.g = g, .http = http};
    if (!gw_caller(&u->r) || strncmp(u->r.path, PREFIX "/", sizeof PREFIX) != 0 ||
        !gw_art_split(u->r.path + sizeof PREFIX, u->run, u->path) || !u->path[0] ||
        !(u->buf = malloc(CHUNK))) {
        free(u);
        return false; /* not an upload of ours: gathered and answered as usual */
    }
    u->r.http = NULL; /* valid during the headers only */
    *s = (cairn_http_stream_t){
        .ctx = u, .data = s_up_data, .end = s_up_end, .release = s_up_release};
    return true;
}

/* ---- download ----------------------------------------------------------- */

typedef struct {
    gw_req_t r;
    const char *svc, *verb; /* static strings */
    char key[16], id[ID_MAX + 64], path[PATH_MAX_BYTES + 1];
    char *buf;      /* the range read last */
    size_t len;     /* its bytes */
    uint64_t start; /* its offset in the file */
    uint64_t size;
} download_t;

/* {key: id, path, offset, length: CHUNK} to svc.verb, its data into d->buf. */
static int s_get(download_t *d, uint64_t offset, cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_text(&pk, d->key, d->id);
    cairn_pack_kv_text(&pk, "path", d->path);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, offset);
    cairn_pack_cstr(&pk, "length");
    msgpack_pack_uint32(&pk, CHUNK);
    cairn_reply_t *reply = NULL;
    int rc = gw_call(&d->r, d->svc, d->verb, sb.data, sb.size, &reply, err);
    msgpack_sbuffer_destroy(&sb);
    const msgpack_object *b = rc == 0 ? cairn_reply_object(reply) : NULL;
    const msgpack_object *data = b ? cairn_obj_get(b, "data") : NULL;
    uint64_t size = 0;
    if (rc == 0 && (!data || data->type != MSGPACK_OBJECT_BIN ||
                    cairn_field_uint(b, "size", true, &size, err) != 0))
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "%s.%s's answer holds no data", d->svc, d->verb);
    if (rc == 0) {
        memcpy(d->buf, data->via.bin.ptr, data->via.bin.size);
        d->len = data->via.bin.size;
        d->start = offset;
        d->size = size;
    }
    cairn_reply_destroy(&reply);
    return rc;
}

static long s_down_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    download_t *d = ctx;
    if (pos >= d->size) return 0;
    cairn_err_t err = {0};
    if ((pos < d->start || pos >= d->start + d->len) && s_get(d, pos, &err) != 0)
        return -1;
    size_t at = (size_t)(pos - d->start), n = d->len - at < max ? d->len - at : max;
    memcpy(buf, d->buf + at, n);
    return n ? (long)n : -1;
}

static void s_down_free(void *ctx)
{
    download_t *d = ctx;
    free(d->buf);
    free(d);
}

void gw_download(gw_req_t *r, const char *svc, const char *verb, const char *key,
                 const char *id, const char *path)
{
    download_t *d = calloc(1, sizeof *d);
    cairn_err_t err = {0};
    if (!d || !(d->buf = malloc(CHUNK))) {
        free(d);
        gw_mlflow_error(r, 500, CAIRN_E_OUT_OF_MEMORY, "out of memory");
        return;
    }
    d->r = *r;
    d->r.http = NULL;
    d->r.resp = NULL;
    d->svc = svc;
    d->verb = verb;
    snprintf(d->key, sizeof d->key, "%s", key);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->path, sizeof d->path, "%s", path);
    if (s_get(d, 0, &err) != 0) { /* 404 before any byte goes */
        s_down_free(d);
        gw_mlflow_error(r, err.st >= 400 ? err.st : 503, err.code, err.msg);
        return;
    }
    r->resp->status = 200;
    r->resp->content_type = "application/octet-stream";
    r->resp->read = s_down_read;
    r->resp->read_free = s_down_free;
    r->resp->read_ctx = d;
    r->resp->size = d->size;
}

/* ---- list, delete ------------------------------------------------------- */

static void s_list(gw_req_t *r)
{
    const char *q = cairn_http_query(r->http, "path");
    char run[ID_MAX], dir[PATH_MAX_BYTES + 1];
    if (!q || !gw_art_split(q, run, dir)) {
        gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST,
                        "path is EXPERIMENT_ID/RUN_ID/artifacts[/DIR]");
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_pack_target(&pk, 2, run, dir);
    cairn_reply_t *reply = NULL;
    cairn_err_t err = {0};
    if (gw_call(r, "artifacts", "list_artifacts", sb.data, sb.size, &reply, &err) !=
        0) {
        gw_mlflow_error(r, err.st >= 400 ? err.st : 503, err.code, err.msg);
    } else { /* MLflow's paths are relative to the directory listed */
        json_t *b = gw_reply_body_json(reply), *f;
        size_t i, strip = dir[0] ? strlen(dir) + 1 : 0;
        json_array_foreach(json_object_get(b, "files"), i, f)
        {
            const char *p = json_string_value(json_object_get(f, "path"));
            if (p && strlen(p) > strip)
                json_object_set_new(f, "path", json_string(p + strip));
        }
        json_object_del(b, "root_uri");
        gw_reply_json(r, 200, b);
    }
    cairn_reply_destroy(&reply);
    msgpack_sbuffer_destroy(&sb);
}

static void s_delete(gw_req_t *r, const char *run, const char *path)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_pack_target(&pk, 2, run, path);
    cairn_reply_t *reply = NULL;
    cairn_err_t err = {0};
    if (gw_call(r, "artifacts", "delete_artifact", sb.data, sb.size, &reply, &err) != 0)
        gw_mlflow_error(r, err.st >= 400 ? err.st : 503, err.code, err.msg);
    else
        gw_reply_json(r, 200, json_object());
    cairn_reply_destroy(&reply);
    msgpack_sbuffer_destroy(&sb);
}

bool gw_artifacts(gw_req_t *r)
{
    if (gw_mpu(r)) return true;    /* multipart uploads (mpu.c) */
    if (gw_models(r)) return true; /* registered versions' files (models.c) */
    if (strncmp(r->path, PREFIX, sizeof PREFIX - 1) != 0) return false;
    const char *rest = r->path + sizeof PREFIX - 1, *m = r->http->method;
    char run[ID_MAX], path[PATH_MAX_BYTES + 1];
    if ((!*rest || !strcmp(rest, "/")) && !strcmp(m, "GET")) {
        s_list(r);
    } else if (*rest != '/' || !gw_art_split(rest + 1, run, path) || !path[0]) {
        gw_mlflow_error(r, 404, CAIRN_E_NOT_FOUND,
                        "an artifact is " PREFIX
                        "/EXPERIMENT_ID/RUN_ID/artifacts/PATH");
    } else if (!strcmp(m, "GET")) {
        gw_download(r, "artifacts", "get_artifact", "run_id", run, path);
    } else if (!strcmp(m, "DELETE")) {
        s_delete(r, run, path);
    } else {
        gw_mlflow_error(r, 405, CAIRN_E_BAD_REQUEST,
                        "an artifact is read (GET), written (PUT) or deleted (DELETE)");
    }
    return true;
}
