/* MLflow's multipart artifact uploads through the proxy (artifacts.c), as
 * mlflow/store/artifact/http_artifact_repo.py sends them:
 *
 *   POST /api/2.0/mlflow-artifacts/mpu/create/EXP/RUN/artifacts[/DIR]
 *        {path, num_parts} -> {upload_id, credentials: [{url, part_number,
 *        headers}]}
 *   PUT  each credential's url with its headers: a part's bytes; the
 *        answer's ETag header is the part's etag
 *   POST /api/2.0/mlflow-artifacts/mpu/complete/EXP/RUN/artifacts[/DIR]
 *        {path, upload_id, parts: [{part_number, etag, url}]} -> {}
 *   POST /api/2.0/mlflow-artifacts/mpu/abort/EXP/RUN/artifacts[/DIR]
 *        {path, upload_id} -> {}
 *
 * The file is DIR/<the last segment of path> (path is the client's local
 * file, as MLflow's stores take it). A credential's url points back here,
 * http://HOST/api/2.0/mlflow-artifacts/mpu/part/<upload_id>/<N> (HOST: the
 * request's Host header; a workspace as /ws/NAME before it), and its
 * headers carry the request's Authorization, which MLflow's client does not
 * add to a part's PUT by itself: the caller's own credentials, sent back to
 * the caller only.
 *
 * The gateway keeps nothing: the artifact store holds the upload
 * (plugins/storage/multipart.c). A part's PUT is streamed into it in
 * CHUNK-sized upload_part requests as its body arrives, never whole in
 * memory (2 MiB, and the bus's copies of at most PART_WINDOW requests
 * in flight after the first, per part), and
 * answered with the part's SHA-256 as its ETag; a PUT cut
 * short drops its staging file (upload_part cancel), and the client sends
 * the part again. complete asks complete_multipart until it answers done
 * (a large file is put together in the store over several of its
 * deadlines). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "jsonmp.h"

#define MPU "/api/2.0/mlflow-artifacts/mpu/"
/* A part's bytes go to the store in requests of this size. Smaller than
 * the plain PUT's 4 MiB: MLflow sends parts in parallel, each held by a
 * server thread (its buffer and the bus's copy of it). */
#define CHUNK (2u << 20)
/* A part's upload_part requests in flight at most: MLflow sends several
 * parts at once, so a short window already keeps the store busy, and the
 * gateway's memory is that of every part's window together. */
#define PART_WINDOW 2
#define ID_LEN 32
#define PARTS_MAX 10000u
#define PART_MAX (5ull << 30) /* the store's bound too */
#define POLLS_MAX 4096        /* complete's {done: false} answers, at most */

static void s_error(gw_req_t *r, const cairn_err_t *err)
{
    gw_mlflow_error(r, err->st >= 400 ? err->st : 503,
                    err->code[0] ? err->code : CAIRN_E_UNAVAILABLE, err->msg);
}

static bool s_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

/* "<upload_id>/<N>" into id and *number: 0, or -1 with err (404 for an id
 * that cannot be one, 400 for a bad part number). */
static int s_part_path(const char *rest, char id[ID_LEN + 1], uint32_t *number,
                       cairn_err_t *err)
{
    const char *slash = strchr(rest, '/');
    if (!slash || slash - rest != ID_LEN || !s_hex(rest, ID_LEN))
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "a part is PUT to " MPU
                             "part/UPLOAD_ID/PART_NUMBER, "
                             "UPLOAD_ID as create answered it");
    memcpy(id, rest, ID_LEN);
    id[ID_LEN] = '\0';
    const char *num = slash + 1;
    size_t n = strlen(num);
    unsigned long v = 0;
    bool ok = n >= 1 && n <= 5 && num[0] != '0';
    for (size_t i = 0; ok && i < n; i++) {
        ok = num[i] >= '0' && num[i] <= '9';
        v = v * 10 + (unsigned long)(num[i] - '0');
    }
    if (!ok || v < 1 || v > PARTS_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a part number is from 1 to %u, not '%.16s'", PARTS_MAX,
                             num);
    *number = (uint32_t)v;
    return 0;
}

/* ---- a part's PUT ---------------------------------------------------------- */

/* A part's upload_part request is built in place, so that its bytes are
 * copied once: the map starts with data, whose bytes (a bin32) sit at
 * HEAD, and the other fields follow them. */
#define HEAD 11 /* fixmap, fixstr "data", bin32 header */
#define TAIL 256

typedef struct {
    gw_req_t r;
    char id[ID_LEN + 1];
    uint32_t number;
    char part_id[40]; /* the store's name of this PUT, once it has one */
    char *msg;        /* HEAD + CHUNK + TAIL bytes: the data at HEAD */
    size_t len;       /* data bytes */
    uint64_t sent;    /* bytes sent: the next request's offset */
    uint64_t offset;  /* bytes the store holds */
    gw_window_t w;    /* the requests in flight after the first; tag: bytes */
    cairn_err_t err;  /* the first failure: ends the part */
    bool finished;
    char etag[72]; /* the ETag header's value */
} part_t;

/* The request of the buffered bytes in u->msg: its size. */
static size_t s_part_pack(part_t *u, bool done, bool cancel)
{
    size_t dlen = cancel ? 0 : u->len;
    unsigned char *h = (unsigned char *)u->msg;
    h[0] = (unsigned char)(0x80 | (5 + (u->part_id[0] ? 1 : 0) + (cancel ? 1 : 0)));
    memcpy(h + 1,
           "\xa4"
           "data",
           5);
    h[6] = 0xc6;
    for (int i = 0; i < 4; i++) h[7 + i] = (unsigned char)(dlen >> (24 - 8 * i));
    gw_tail_t t = {u->msg + HEAD + dlen, 0, TAIL};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t, gw_tail_write);
    cairn_pack_kv_text(&pk, "upload_id", u->id);
    cairn_pack_cstr(&pk, "part_number");
    msgpack_pack_uint32(&pk, u->number);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, u->sent);
    cairn_pack_cstr(&pk, "done");
    if (done)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    if (u->part_id[0]) cairn_pack_kv_text(&pk, "part_id", u->part_id);
    if (cancel) {
        cairn_pack_cstr(&pk, "cancel");
        msgpack_pack_true(&pk);
    }
    return HEAD + dlen + t.len;
}

/* A reply to the part's request (rc: as gw_call's), its part_id or etag
 * taken; destroys it. */
static int s_part_reply(part_t *u, int rc, cairn_reply_t **reply, bool done,
                        bool cancel, cairn_err_t *err)
{
    const msgpack_object *b = rc == 0 ? cairn_reply_object(*reply) : NULL;
    cairn_str_t v;
    cairn_err_t e = {0};
    if (rc == 0 && !cancel && !done) {
        if (!u->part_id[0] &&
            cairn_field_str(b, "part_id", true, sizeof u->part_id - 1, &v, &e) == 0)
            snprintf(u->part_id, sizeof u->part_id, "%.*s", (int)v.len, v.ptr);
        if (!u->part_id[0])
            rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                               "the artifact store's answer names no part_id");
    } else if (rc == 0 && done) {
        if (cairn_field_str(b, "etag", true, 64, &v, &e) == 0)
            snprintf(u->etag, sizeof u->etag, "\"%.*s\"", (int)v.len, v.ptr);
        else
            rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                               "the artifact store's answer holds no etag");
    }
    cairn_reply_destroy(reply);
    return rc;
}

/* Take the oldest request's reply (all: every one's). */
static int s_part_reap(part_t *u, bool all, cairn_err_t *err)
{
    while (u->w.n && (all || u->w.n == PART_WINDOW)) {
        cairn_reply_t *reply = NULL;
        uint64_t n = 0;
        int rc = gw_win_take(&u->w, &reply, &n, err);
        cairn_reply_destroy(&reply);
        if (rc != 0) return -1;
        u->offset += n;
    }
    return 0;
}

/* One upload_part of the buffered bytes (done: the last; cancel: none, the
 * PUT is dropped). The first goes alone (the store names the PUT in its
 * answer); the rest through the part's window, at most PART_WINDOW in
 * flight, the last (and a cancel) once every other one is answered. */
static int s_part_call(part_t *u, bool done, bool cancel, cairn_err_t *err)
{
    size_t n = cancel ? 0 : u->len;
    cairn_reply_t *reply = NULL;
    int rc;
    if (!u->part_id[0]) {
        rc = gw_call(&u->r, "artifacts", "upload_part", u->msg,
                     s_part_pack(u, done, cancel), &reply, err);
        rc = s_part_reply(u, rc, &reply, done, cancel, err);
        if (rc == 0) u->offset += n;
    } else {
        bool last = done || cancel;
        if (s_part_reap(u, last, err) != 0) return -1;
        if (gw_win_send(&u->w, &u->r, "artifacts", "upload_part", u->msg,
                        s_part_pack(u, done, cancel), n, err) != 0)
            return -1;
        rc = 0;
        if (last) { /* its own reply */
            uint64_t tag = 0;
            rc = gw_win_take(&u->w, &reply, &tag, err);
            rc = s_part_reply(u, rc, &reply, done, cancel, err);
            if (rc == 0) u->offset += tag;
        }
    }
    if (rc == 0) {
        u->sent += n;
        u->len = 0;
    }
    return rc;
}

static int s_part_data(void *ctx, const char *p, size_t n)
{
    part_t *u = ctx;
    if (u->err.st) return -1;
    if (u->sent + u->len + n > PART_MAX) {
        cairn_err_set(&u->err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                      "a part holds at most %llu bytes (5 GiB)",
                      (unsigned long long)PART_MAX);
        return -1;
    }
    while (n)
        if (gw_gather(u->msg + HEAD, &u->len, CHUNK, &p, &n) &&
            s_part_call(u, false, false, &u->err) != 0)
            return -1;
    return 0;
}

static void s_part_end(void *ctx, const cairn_http_request_t *req,
                       cairn_http_response_t *resp)
{
    (void)req;
    part_t *u = ctx;
    u->r.resp = resp;
    if (!u->err.st && s_part_call(u, true, false, &u->err) == 0) u->finished = true;
    if (!u->finished) {
        s_error(&u->r, &u->err);
        return;
    }
    gw_reply_json(&u->r, 200, json_object());
    resp->header = "ETag";
    resp->header_value = u->etag; /* u lives until the response is queued */
}

/* Last, always: a PUT cut short (or refused) drops its staging file in the
 * store now rather than at its idle timeout. */
static void s_part_release(void *ctx)
{
    part_t *u = ctx;
    if (!u->finished && u->part_id[0]) {
        cairn_err_t err = {0};
        u->r.basic = false; /* no login again from here: the headers are gone */
        gw_win_drop(&u->w); /* the cancel follows them on the window's client */
        s_part_call(u, false, true, &err);
    }
    gw_win_free(&u->w);
    free(u->msg);
    free(u);
}

bool gw_mpu_stream(gateway_t *g, const cairn_http_request_t *http,
                   cairn_http_stream_t *s)
{
    if (strcmp(http->method, "PUT") != 0 || !strstr(http->path, MPU "part/"))
        return false;
    part_t *u = calloc(1, sizeof *u);
    if (!u) return false;
    u->r = (gw_req_t){.g = g, .http = http};
    if (!gw_caller(&u->r) || strncmp(u->r.path, MPU "part/", sizeof MPU + 4) != 0) {
        free(u);
        return false; /* not a part: gathered and answered as usual */
    }
    const char *cl = cairn_http_header(http, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > PART_MAX) {
        free(u);
        return false; /* gathered: refused 413 from its Content-Length */
    }
    u->w.max = PART_WINDOW;
    s_part_path(u->r.path + sizeof MPU + 4, u->id, &u->number, &u->err);
    if (!u->err.st && !(u->msg = malloc(HEAD + CHUNK + TAIL)))
        cairn_err_oom(&u->err, NULL);
    /* The token outlives the headers (release may call the store). */
    if (u->r.token != u->r.token_buf) {
        snprintf(u->r.token_buf, sizeof u->r.token_buf, "%s", u->r.token);
        u->r.token = u->r.token_buf;
    }
    u->r.http = NULL; /* valid during the headers only */
    u->r.path = "";
    *s = (cairn_http_stream_t){
        .ctx = u, .data = s_part_data, .end = s_part_end, .release = s_part_release};
    return true;
}

/* ---- create, complete, abort ----------------------------------------------- */

/* The request's JSON body (an object), or NULL answered 400. */
static json_t *s_body(gw_req_t *r)
{
    json_error_t jerr;
    json_t *b =
        json_loadb(r->http->body, r->http->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (json_is_object(b)) return b;
    json_decref(b);
    gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST, "the body is not a JSON object");
    return NULL;
}

/* An integer field, given as a number or (proto3's JSON) as text. */
static bool s_int(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    const char *t = json_string_value(v);
    char *end = NULL;
    if (!t || !*t) return false;
    *out = strtoll(t, &end, 10);
    return !*end;
}

/* The file: DIR/<the last segment of the body's path>. */
static bool s_file(gw_req_t *r, json_t *body, const char *dir, char *out, size_t cap)
{
    const char *local = json_string_value(json_object_get(body, "path"));
    const char *base = local ? local + strlen(local) : NULL;
    while (base && base > local && base[-1] != '/' && base[-1] != '\\') base--;
    if (!base || !*base) {
        gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST,
                        "the field 'path' (the file uploaded) must name a file");
        return false;
    }
    int n = snprintf(out, cap, "%s%s%s", dir, *dir ? "/" : "", base);
    if (n < 0 || (size_t)n >= cap) {
        gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST, "the artifact path is too long");
        return false;
    }
    return true;
}

/* Pack body j and call artifacts.verb: 0 with *reply, else -1 with err. */
static int s_call_err(gw_req_t *r, const char *verb, json_t *j, cairn_reply_t **reply,
                      cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = j ? cairn_json_pack(j, &pk, err) : cairn_err_oom(err, NULL);
    if (rc == 0) rc = gw_call(r, "artifacts", verb, sb.data, sb.size, reply, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) cairn_reply_destroy(reply);
    return rc;
}

/* The same, a failure answered. */
static int s_call(gw_req_t *r, const char *verb, json_t *j, cairn_reply_t **reply)
{
    cairn_err_t err = {0};
    int rc = s_call_err(r, verb, j, reply, &err);
    if (rc != 0) s_error(r, &err);
    return rc;
}

/* The host part of the parts' URLs: the request's Host, if it is sane. */
static void s_host(gw_req_t *r, char *out, size_t cap)
{
    const char *h = cairn_http_header(r->http, "Host");
    bool ok = h && *h && strlen(h) < 256;
    for (const char *p = h; ok && *p; p++)
        ok = *p > 0x20 && *p < 0x7f && *p != '/' && *p != '\\' && *p != '@';
    if (ok)
        snprintf(out, cap, "%s", h);
    else
        snprintf(out, cap, "127.0.0.1:%u", (unsigned)cairn_httpd_port(r->g->httpd));
}

static void s_create(gw_req_t *r, const char *run, const char *dir, json_t *body)
{
    char file[1100];
    long long n = 0;
    if (!s_file(r, body, dir, file, sizeof file)) return;
    if (!s_int(json_object_get(body, "num_parts"), &n) || n < 1 || n > PARTS_MAX) {
        gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST,
                        "the field 'num_parts' must be from 1 to 10000");
        return;
    }
    json_t *j = json_pack("{s:s, s:s, s:I}", "run_id", run, "path", file, "num_parts",
                          (json_int_t)n);
    cairn_reply_t *reply = NULL;
    int rc = s_call(r, "create_multipart", j, &reply);
    json_decref(j);
    if (rc != 0) return;
    cairn_str_t id;
    cairn_err_t err = {0};
    if (cairn_field_str(cairn_reply_object(reply), "upload_id", true, ID_LEN, &id,
                        &err) != 0) {
        cairn_reply_destroy(&reply);
        gw_mlflow_error(r, 502, CAIRN_E_BAD_REPLY,
                        "the artifact store's answer names no upload_id");
        return;
    }
    char host[300], ws[160] = "", upload[ID_LEN + 1];
    snprintf(upload, sizeof upload, "%.*s", (int)id.len, id.ptr);
    cairn_reply_destroy(&reply);
    s_host(r, host, sizeof host);
    if (r->ws[0]) snprintf(ws, sizeof ws, "/ws/%s", r->ws);
    const char *auth = cairn_http_header(r->http, "Authorization");
    json_t *creds = json_array(), *out = json_pack("{s:s}", "upload_id", upload);
    for (long long k = 1; creds && k <= n; k++) {
        char url[512];
        snprintf(url, sizeof url, "http://%s%s" MPU "part/%s/%lld", host, ws, upload,
                 k);
        json_t *h = json_object();
        if (auth && h) json_object_set_new(h, "Authorization", json_string(auth));
        json_array_append_new(
            creds, json_pack("{s:s, s:I, s:o}", "url", url, "part_number",
                             (json_int_t)k, "headers", h ? h : json_object()));
    }
    if (out && creds) json_object_set(out, "credentials", creds);
    json_decref(creds);
    gw_reply_json(r, 200, out);
}

static void s_complete(gw_req_t *r, const char *run, const char *dir, json_t *body)
{
    char file[1100];
    const char *upload = json_string_value(json_object_get(body, "upload_id"));
    json_t *parts = json_object_get(body, "parts"), *p;
    if (!s_file(r, body, dir, file, sizeof file)) return;
    if (!upload || !json_is_array(parts)) {
        gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST,
                        "complete takes upload_id and parts [{part_number, etag}]");
        return;
    }
    json_t *list = json_array();
    size_t i;
    json_array_foreach(parts, i, p)
    {
        long long num = 0;
        const char *etag = json_string_value(json_object_get(p, "etag"));
        if (!s_int(json_object_get(p, "part_number"), &num) || num < 0 || !etag) {
            json_decref(list);
            gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST,
                            "each of parts is {part_number, etag}, as the part's PUT "
                            "answered");
            return;
        }
        json_array_append_new(list, json_pack("{s:I, s:s}", "part_number",
                                              (json_int_t)num, "etag", etag));
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:o}", "run_id", run, "upload_id", upload,
                          "path", file, "parts", list);
    /* The store answers {done: false} while it puts a large file together
     * past one request's deadline: ask again until it is done, as long as
     * it goes forward. A request that timed out (a busy machine) is asked
     * again too: the store goes on without it, and answers the next. */
    uint64_t last = 0;
    int still = 0, k = 0, late = 0;
    for (; k < POLLS_MAX; k++) {
        cairn_reply_t *reply = NULL;
        cairn_err_t err = {0};
        if (s_call_err(r, "complete_multipart", j, &reply, &err) != 0) {
            if (err.st == CAIRN_ST_TIMEOUT && ++late < 3) continue;
            s_error(r, &err);
            break;
        }
        late = 0;
        const msgpack_object *b = cairn_reply_object(reply);
        bool done = true;
        uint64_t composed = 0;
        cairn_err_t e = {0};
        cairn_field_bool(b, "done", false, &done, &e);
        cairn_field_uint(b, "composed", false, &composed, &e);
        cairn_reply_destroy(&reply);
        if (done) {
            gw_reply_json(r, 200, json_object());
            break;
        }
        still = composed > last ? 0 : still + 1;
        last = composed;
        if (still >= 3) {
            gw_mlflow_error(r, 503, CAIRN_E_UNAVAILABLE,
                            "the artifact store makes no headway putting the parts "
                            "together: complete again later");
            break;
        }
    }
    if (k == POLLS_MAX)
        gw_mlflow_error(r, 503, CAIRN_E_UNAVAILABLE,
                        "the artifact store is still putting the parts together: "
                        "complete again later");
    json_decref(j);
}

static void s_abort(gw_req_t *r, const char *run, json_t *body)
{
    const char *upload = json_string_value(json_object_get(body, "upload_id"));
    if (!upload) {
        gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST, "abort takes upload_id");
        return;
    }
    json_t *j = json_pack("{s:s, s:s}", "run_id", run, "upload_id", upload);
    cairn_reply_t *reply = NULL;
    if (s_call(r, "abort_multipart", j, &reply) == 0)
        gw_reply_json(r, 200, json_object());
    cairn_reply_destroy(&reply);
    json_decref(j);
}

bool gw_mpu(gw_req_t *r)
{
    if (strncmp(r->path, MPU, sizeof MPU - 1) != 0) return false;
    const char *rest = r->path + sizeof MPU - 1, *m = r->http->method;
    static const char *const ops[] = {"create/", "complete/", "abort/"};
    size_t op = 0;
    while (op < 3 && strncmp(rest, ops[op], strlen(ops[op])) != 0) op++;
    char run[128], dir[1025];
    if (!strncmp(rest, "part/", 5)) { /* a part not streamed: its path is bad */
        cairn_err_t err = {0};
        char id[ID_LEN + 1];
        uint32_t number = 0;
        if (strcmp(m, "PUT") != 0)
            gw_mlflow_error(r, 405, CAIRN_E_BAD_REQUEST, "a part is sent with PUT");
        else if (s_part_path(rest + 5, id, &number, &err) != 0)
            s_error(r, &err);
        else
            gw_mlflow_error(r, 500, CAIRN_E_INTERNAL, "the part was not streamed");
        return true;
    }
    if (op == 3 || !gw_art_split(rest + strlen(ops[op]), run, dir)) {
        gw_mlflow_error(r, 404, CAIRN_E_NOT_FOUND,
                        "a multipart upload is " MPU
                        "{create,complete,abort}/EXPERIMENT_ID/RUN_ID/artifacts[/DIR]");
        return true;
    }
    if (strcmp(m, "POST") != 0) {
        gw_mlflow_error(r, 405, CAIRN_E_BAD_REQUEST,
                        "a multipart upload's step is a POST");
        return true;
    }
    json_t *body = s_body(r);
    if (!body) return true;
    if (op == 0)
        s_create(r, run, dir, body);
    else if (op == 1)
        s_complete(r, run, dir, body);
    else
        s_abort(r, run, body);
    json_decref(body);
    return true;
}
