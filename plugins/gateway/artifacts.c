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
 * ranges as the client takes them. Both keep a window of requests in
 * flight (GW_WINDOW, on the transfer's own bus client) so that the store
 * works while the HTTP side moves bytes. EXP is not checked (the run names its
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

/* ---- the window of a transfer ------------------------------------------- */

int gw_win_send(gw_window_t *w, gw_req_t *r, const char *svc, const char *verb,
                const void *body, size_t len, uint64_t tag, cairn_err_t *err)
{
    if (w->n >= (w->max > 0 && w->max < GW_WINDOW ? w->max : GW_WINDOW))
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "the gateway's window of requests is full");
    if (!w->c) {
        if (!(w->c = gw_client_new(r, err))) return -1;
        w->ttl_ms = gw_ttl_ms(r);
    }
    uint64_t id = 0;
    if (cairn_client_send(w->c, svc, verb, body, len, w->ttl_ms, &id, err) != 0)
        return -1;
    w->q[w->n].id = id;
    w->q[w->n].due = cairn_now_ms() + w->ttl_ms + 1000; /* the kernel answers 504 */
    w->q[w->n].tag = tag;
    w->q[w->n].r = NULL;
    w->n++;
    return 0;
}

int gw_win_take(gw_window_t *w, cairn_reply_t **reply, uint64_t *tag, cairn_err_t *err)
{
    *reply = NULL;
    if (!w->n)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "the gateway's window of requests is empty");
    while (!w->q[0].r) {
        uint64_t now = cairn_now_ms();
        cairn_reply_t *got = NULL;
        cairn_err_t e = {0};
        if (now >= w->q[0].due ||
            cairn_client_recv(w->c, (int)(w->q[0].due - now), &got, &e) != 0) {
            if (e.st && e.st != CAIRN_ST_TIMEOUT) {
                *err = e;
                return -1;
            }
            return cairn_err_set(err, CAIRN_ST_TIMEOUT, CAIRN_E_DEADLINE,
                                 "no reply from the kernel within %u ms (is cairnd "
                                 "running?)",
                                 w->ttl_ms);
        }
        int i = 0;
        while (i < w->n && w->q[i].id != cairn_reply_id(got)) i++;
        if (i < w->n && !w->q[i].r)
            w->q[i].r = got;
        else
            cairn_reply_destroy(&got); /* of a window dropped */
    }
    *reply = w->q[0].r;
    *tag = w->q[0].tag;
    memmove(w->q, w->q + 1, (size_t)(w->n - 1) * sizeof w->q[0]);
    w->n--;
    int st = cairn_reply_status(*reply);
    if (st < CAIRN_ST_BAD_REQUEST) return 0;
    const char *code = cairn_reply_code(*reply), *msg = cairn_reply_error(*reply);
    return cairn_err_set(err, st, *code ? code : NULL, "%s",
                         *msg ? msg : "request failed");
}

void gw_win_drop(gw_window_t *w)
{
    for (int i = 0; i < w->n; i++) cairn_reply_destroy(&w->q[i].r);
    w->n = 0;
}

void gw_win_free(gw_window_t *w)
{
    gw_win_drop(w);
    cairn_client_destroy(&w->c);
}

/* ---- upload ------------------------------------------------------------- */

/* A put_artifact request is built in place, so that its bytes are copied
 * once: the map starts with data, whose bytes (a bin32) sit at HEAD, and
 * the other fields follow them (TAIL: room for the longest). The first
 * chunk goes alone through gw_call (the store names the upload in its
 * answer); the rest through the upload's window, at most GW_WINDOW in
 * flight, the last (done: the store commits the file) once every other
 * one is acknowledged. The first refusal ends the upload. */
#define HEAD 11 /* fixmap, fixstr "data", bin32 header */
#define TAIL (64 + ID_MAX * 2 + PATH_MAX_BYTES)

typedef struct {
    gw_req_t r;
    char run[ID_MAX], path[PATH_MAX_BYTES + 1];
    char upload_id[ID_MAX];
    char *msg;       /* HEAD + CHUNK + TAIL bytes: the data at HEAD */
    size_t len;      /* data bytes */
    uint64_t sent;   /* bytes sent: the next chunk's offset */
    uint64_t offset; /* bytes the store holds */
    gw_window_t w;   /* the chunks in flight; tag: their bytes */
    cairn_err_t err; /* the first failure: ends the upload */
} upload_t;

bool gw_gather(char *buf, size_t *len, size_t cap, const char **p, size_t *n)
{
    size_t take = cap - *len < *n ? cap - *len : *n;
    memcpy(buf + *len, *p, take);
    *len += take;
    *p += take;
    *n -= take;
    return *len == cap;
}

int gw_tail_write(void *data, const char *buf, size_t len)
{
    gw_tail_t *t = data;
    if (t->len + len > t->cap) return -1;
    memcpy(t->p + t->len, buf, len);
    t->len += len;
    return 0;
}

/* The request of the buffered bytes (done: the last) in u->msg: its size. */
static size_t s_pack_put(upload_t *u, bool done)
{
    unsigned char *h = (unsigned char *)u->msg;
    h[0] = (unsigned char)(0x80 | (u->upload_id[0] ? 6 : 5));
    memcpy(h + 1,
           "\xa4"
           "data",
           5);
    h[6] = 0xc6;
    for (int i = 0; i < 4; i++) h[7 + i] = (unsigned char)(u->len >> (24 - 8 * i));
    gw_tail_t t = {u->msg + HEAD + u->len, 0, TAIL};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t, gw_tail_write);
    cairn_pack_kv_text(&pk, "run_id", u->run);
    cairn_pack_kv_text(&pk, "path", u->path);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, u->sent);
    cairn_pack_cstr(&pk, "done");
    if (done)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    if (u->upload_id[0]) cairn_pack_kv_text(&pk, "upload_id", u->upload_id);
    return HEAD + u->len + t.len;
}

/* The first chunk, alone (done: the only one). */
static int s_put_first(upload_t *u, bool done)
{
    cairn_reply_t *reply = NULL;
    int rc = gw_call(&u->r, "artifacts", "put_artifact", u->msg, s_pack_put(u, done),
                     &reply, &u->err);
    if (rc == 0 && !done) {
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
        u->sent = u->offset = u->len;
        u->len = 0;
    }
    return rc;
}

/* Take the oldest chunk's reply (all: every one's). */
static int s_put_reap(upload_t *u, bool all)
{
    while (u->w.n && (all || u->w.n == GW_WINDOW)) {
        cairn_reply_t *reply = NULL;
        uint64_t n = 0;
        int rc = gw_win_take(&u->w, &reply, &n, &u->err);
        cairn_reply_destroy(&reply);
        if (rc != 0) return -1;
        u->offset += n;
    }
    return 0;
}

/* A chunk after the first into the window (done: the last, once the
 * others are acknowledged, and its own reply too). */
static int s_put(upload_t *u, bool done)
{
    if (s_put_reap(u, done) != 0) return -1;
    if (gw_win_send(&u->w, &u->r, "artifacts", "put_artifact", u->msg,
                    s_pack_put(u, done), u->len, &u->err) != 0)
        return -1;
    u->sent += u->len;
    u->len = 0;
    return done ? s_put_reap(u, true) : 0;
}

static int s_up_data(void *ctx, const char *p, size_t n)
{
    upload_t *u = ctx;
    if (u->err.st) return -1;
    while (n)
        if (gw_gather(u->msg + HEAD, &u->len, CHUNK, &p, &n) &&
            (u->upload_id[0] ? s_put(u, false) : s_put_first(u, false)) != 0)
            return -1;
    return 0;
}

static void s_up_end(void *ctx, const cairn_http_request_t *req,
                     cairn_http_response_t *resp)
{
    (void)req;
    upload_t *u = ctx;
    u->r.resp = resp;
    if (!u->err.st) {
        if (u->upload_id[0])
            s_put(u, true);
        else
            s_put_first(u, true);
    }
    if (u->err.st)
        gw_mlflow_error(&u->r, u->err.st, u->err.code, u->err.msg);
    else
        gw_reply_json(&u->r, 200, json_object());
}

static void s_up_release(void *ctx)
{
    upload_t *u = ctx;
    gw_win_free(&u->w);
    free(u->msg);
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
        !(u->msg = malloc(HEAD + CHUNK + TAIL))) {
        free(u);
        return false; /* not an upload of ours: gathered and answered as usual */
    }
    u->r.http = NULL; /* valid during the headers only */
    *s = (cairn_http_stream_t){
        .ctx = u, .data = s_up_data, .end = s_up_end, .release = s_up_release};
    return true;
}

/* ---- download ----------------------------------------------------------- */

/* The first range alone (it says the size, and a refusal is answered);
 * then, for a file of more than one range, up to GW_WINDOW - 1 of the
 * ranges that follow are asked for while the client takes the one in hand
 * (GW_WINDOW ranges held at most). A position out of that order (none
 * with libmicrohttpd) drops the window and asks from there. */
typedef struct {
    gw_req_t r;
    const char *svc, *verb; /* static strings */
    char key[16], id[ID_MAX + 64], path[PATH_MAX_BYTES + 1];
    cairn_reply_t *cur; /* the range in hand */
    const char *data;   /* its bytes */
    size_t len;
    uint64_t start; /* its offset in the file */
    uint64_t size;
    gw_window_t w;                        /* the ranges asked for; tag: their offsets */
    uint64_t next;                        /* the offset the next one asks for */
    char disposition[GW_DISPOSITION_MAX]; /* "": none (headers borrow it) */
} download_t;

/* {key: id, path, offset, length: CHUNK} into sb. */
static void s_pack_get(const download_t *d, uint64_t offset, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_text(&pk, d->key, d->id);
    cairn_pack_kv_text(&pk, "path", d->path);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, offset);
    cairn_pack_cstr(&pk, "length");
    msgpack_pack_uint32(&pk, CHUNK);
}

/* reply (taken) as the range in hand, at offset. */
static int s_take(download_t *d, cairn_reply_t *reply, uint64_t offset,
                  cairn_err_t *err)
{
    const msgpack_object *b = cairn_reply_object(reply);
    const msgpack_object *data = b ? cairn_obj_get(b, "data") : NULL;
    uint64_t size = 0;
    cairn_reply_destroy(&d->cur);
    d->cur = reply;
    if (!data || data->type != MSGPACK_OBJECT_BIN ||
        cairn_field_uint(b, "size", true, &size, err) != 0) {
        d->len = 0;
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "%s.%s's answer holds no data", d->svc, d->verb);
    }
    d->data = data->via.bin.ptr;
    d->len = data->via.bin.size;
    d->start = offset;
    d->size = size;
    return 0;
}

/* The range at offset, alone, through gw_call. */
static int s_get(download_t *d, uint64_t offset, cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_pack_get(d, offset, &sb);
    cairn_reply_t *reply = NULL;
    int rc = gw_call(&d->r, d->svc, d->verb, sb.data, sb.size, &reply, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        cairn_reply_destroy(&reply);
        return -1;
    }
    return s_take(d, reply, offset, err);
}

/* Ask for the ranges that follow, up to the window's bound. */
static int s_prefetch(download_t *d, cairn_err_t *err)
{
    int rc = 0;
    while (rc == 0 && d->w.n < GW_WINDOW - 1 && d->next < d->size) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        s_pack_get(d, d->next, &sb);
        rc = gw_win_send(&d->w, &d->r, d->svc, d->verb, sb.data, sb.size, d->next, err);
        msgpack_sbuffer_destroy(&sb);
        if (rc == 0) d->next += CHUNK;
    }
    return rc;
}

/* The range at pos in hand: the window's oldest when it is that one. */
static int s_next(download_t *d, uint64_t pos, cairn_err_t *err)
{
    cairn_reply_destroy(&d->cur);
    d->len = 0;
    if (!d->w.c) return s_get(d, pos, err); /* a file of one range */
    if (!d->w.n || d->w.q[0].tag != pos) {
        gw_win_drop(&d->w);
        d->next = pos;
        if (s_prefetch(d, err) != 0) return -1;
    }
    cairn_reply_t *reply = NULL;
    uint64_t at = 0;
    if (gw_win_take(&d->w, &reply, &at, err) != 0) {
        cairn_reply_destroy(&reply);
        return -1;
    }
    if (s_take(d, reply, at, err) != 0) return -1;
    return s_prefetch(d, err);
}

static long s_down_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    download_t *d = ctx;
    if (pos >= d->size) return 0;
    cairn_err_t err = {0};
    if ((!d->cur || pos < d->start || pos >= d->start + d->len) &&
        s_next(d, pos, &err) != 0)
        return -1;
    if (pos < d->start || pos >= d->start + d->len) return -1; /* a short range */
    size_t at = (size_t)(pos - d->start), n = d->len - at < max ? d->len - at : max;
    memcpy(buf, d->data + at, n);
    return (long)n;
}

static void s_down_free(void *ctx)
{
    download_t *d = ctx;
    gw_win_free(&d->w);
    cairn_reply_destroy(&d->cur);
    free(d);
}

/* A refusal before any byte went, in the route's shape. */
static void s_down_refuse(gw_req_t *r, const cairn_err_t *err)
{
    int st = err->st >= 400 ? err->st : 503;
    if (!strncmp(r->path, "/api/v1/", 8))
        gw_reply_error(r, st, err->code[0] ? err->code : "unavailable", "%s", err->msg);
    else
        gw_mlflow_error(r, st, err->code, err->msg);
}

/* The response of d: its type, and as an attachment named filename. */
static void s_down_headers(download_t *d, cairn_http_response_t *resp,
                           const char *filename)
{
    resp->content_type = "application/octet-stream";
    if (!filename) return;
    resp->content_type = gw_mime_type(filename);
    gw_disposition(filename, d->disposition, sizeof d->disposition);
    resp->header = "Content-Disposition";
    resp->header_value = d->disposition; /* d lives until the response is done */
    resp->more[0].name = "X-Content-Type-Options"; /* the type given, never sniffed */
    resp->more[0].value = "nosniff";
    resp->more[1].name = "Cache-Control";
    resp->more[1].value = "no-store";
}

void gw_download(gw_req_t *r, const char *svc, const char *verb, const char *key,
                 const char *id, const char *path, const char *filename)
{
    download_t *d = calloc(1, sizeof *d);
    cairn_err_t err = {0};
    if (!d) {
        s_down_refuse(
            r, &(cairn_err_t){
                   .st = 500, .code = CAIRN_E_OUT_OF_MEMORY, .msg = "out of memory"});
        return;
    }
    d->r = *r;
    d->r.http = NULL;
    d->r.resp = NULL;
    if (r->token == r->token_buf) d->r.token = d->r.token_buf; /* r goes first */
    d->svc = svc;
    d->verb = verb;
    snprintf(d->key, sizeof d->key, "%s", key);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->path, sizeof d->path, "%s", path);
    if (s_get(d, 0, &err) != 0) { /* 404 before any byte goes */
        s_down_free(d);
        s_down_refuse(r, &err);
        return;
    }
    /* more than one range: the next ones are asked for now, on the
     * transfer's own client (none: one at a time, as they are taken) */
    d->next = d->len;
    if (d->len && d->len < d->size && s_prefetch(d, &err) != 0) gw_win_free(&d->w);
    r->resp->status = 200;
    s_down_headers(d, r->resp, filename);
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
        gw_download(r, "artifacts", "get_artifact", "run_id", run, path, NULL);
    } else if (!strcmp(m, "DELETE")) {
        s_delete(r, run, path);
    } else {
        gw_mlflow_error(r, 405, CAIRN_E_BAD_REQUEST,
                        "an artifact is read (GET), written (PUT) or deleted (DELETE)");
    }
    return true;
}
