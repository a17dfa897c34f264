/* A registered model version's files through MLflow's artifact proxy:
 *
 *   GET /api/2.0/mlflow-artifacts/artifacts/_models/NAME/VERSION/PATH     a file
 *   GET /api/2.0/mlflow-artifacts/artifacts?path=_models/NAME/VERSION[/DIR]  list
 *
 * get-download-uri answers mlflow-artifacts:/_models/NAME/VERSION for a
 * version whose bytes the registry pinned (mlbody.c), and MLflow's client
 * then lists and downloads here: from the registry (list_files,
 * read_file), so a version reads the same whatever happened to its run's
 * files since. Read-only: a version is immutable. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"
#include "gateway.h"

#define PREFIX "/api/2.0/mlflow-artifacts/artifacts"
#define MODELS "_models/"
#define NAME_MAX_BYTES 256
#define LIST_PAGES 100 /* list_files pages of a version read at most */

typedef struct {
    char ref[NAME_MAX_BYTES + 64]; /* model:NAME:VERSION */
    const char *path;              /* what follows VERSION/ ("" for none) */
} model_path_t;

/* NAME/VERSION[/PATH] into a registry reference and the path. */
static bool s_parse(const char *rest, model_path_t *m)
{
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest || (size_t)(slash - rest) > NAME_MAX_BYTES)
        return false;
    const char *v = slash + 1, *end = v;
    while (*end >= '0' && *end <= '9') end++;
    if (end == v || end - v > 9 || (*end && *end != '/')) return false;
    snprintf(m->ref, sizeof m->ref, "model:%.*s:%.*s", (int)(slash - rest), rest,
             (int)(end - v), v);
    m->path = *end ? end + 1 : "";
    return true;
}

/* One page of list_files into files (appended); the next page's token, or
 * NULL at the last (a heap string). */
static char *s_page(gw_req_t *r, const model_path_t *m, const char *token,
                    json_t *files, cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, token ? 3 : 2);
    cairn_pack_kv_text(&pk, "ref", m->ref);
    cairn_pack_cstr(&pk, "max_results");
    msgpack_pack_uint32(&pk, 10000);
    if (token) cairn_pack_kv_text(&pk, "page_token", token);
    cairn_reply_t *reply = NULL;
    char *next = NULL;
    if (gw_call(r, "registry", "list_files", sb.data, sb.size, &reply, err) == 0) {
        json_t *b = gw_reply_body_json(reply);
        json_array_extend(files, json_object_get(b, "files"));
        const char *t = json_string_value(json_object_get(b, "next_page_token"));
        if (t && *t) next = strdup(t);
        json_decref(b);
    }
    cairn_reply_destroy(&reply);
    msgpack_sbuffer_destroy(&sb);
    return next;
}

/* MLflow's list: the direct children of dir, {path, is_dir, file_size}. */
static json_t *s_children(json_t *files, const char *dir)
{
    json_t *out = json_array(), *seen = json_object(), *f;
    size_t i, dl = strlen(dir);
    json_array_foreach(files, i, f)
    {
        const char *p = json_string_value(json_object_get(f, "path"));
        if (!p || (dl && (strncmp(p, dir, dl) != 0 || p[dl] != '/'))) continue;
        const char *rel = dl ? p + dl + 1 : p, *slash = strchr(rel, '/');
        if (!slash) {
            json_array_append_new(
                out, json_pack("{s:s, s:b, s:O}", "path", rel, "is_dir", 0, "file_size",
                               json_object_get(f, "size")));
            continue;
        }
        char *sub = strndup(rel, (size_t)(slash - rel));
        if (sub && !json_object_get(seen, sub)) {
            json_object_set_new(seen, sub, json_true());
            json_array_append_new(out,
                                  json_pack("{s:s, s:b}", "path", sub, "is_dir", 1));
        }
        free(sub);
    }
    json_decref(seen);
    return out;
}

static void s_list(gw_req_t *r, const model_path_t *m)
{
    json_t *files = json_array();
    cairn_err_t err = {0};
    char *token = NULL;
    for (int page = 0; page < LIST_PAGES && files && !err.st; page++) {
        char *next = s_page(r, m, token, files, &err);
        free(token);
        if (!(token = next)) break;
    }
    free(token);
    if (err.st)
        gw_mlflow_error(r, err.st >= 400 ? err.st : 503, err.code, err.msg);
    else if (!files)
        gw_mlflow_error(r, 500, CAIRN_E_OUT_OF_MEMORY, "out of memory");
    else
        gw_reply_json(r, 200, json_pack("{s:o}", "files", s_children(files, m->path)));
    json_decref(files);
}

bool gw_models(gw_req_t *r)
{
    if (strncmp(r->path, PREFIX, sizeof PREFIX - 1) != 0) return false;
    const char *rest = r->path + sizeof PREFIX - 1, *m = r->http->method;
    model_path_t mp;
    if (!*rest || !strcmp(rest, "/")) { /* a list: ours when its path is */
        const char *q = cairn_http_query(r->http, "path");
        if (!q || strncmp(q, MODELS, sizeof MODELS - 1) != 0 || strcmp(m, "GET") != 0)
            return false;
        if (!s_parse(q + sizeof MODELS - 1, &mp))
            gw_mlflow_error(r, 400, CAIRN_E_BAD_REQUEST,
                            "path is _models/NAME/VERSION[/DIR]");
        else
            s_list(r, &mp);
        return true;
    }
    if (strncmp(rest, "/" MODELS, sizeof MODELS) != 0) return false;
    if (strcmp(m, "GET") != 0)
        gw_mlflow_error(r, 405, CAIRN_E_BAD_REQUEST,
                        "a registered model version is immutable: its files are read "
                        "(GET) only");
    else if (!s_parse(rest + sizeof MODELS, &mp) || !*mp.path)
        gw_mlflow_error(r, 404, CAIRN_E_NOT_FOUND,
                        "a version's file is " PREFIX "/_models/NAME/VERSION/PATH");
    else
        gw_download(r, "registry", "read_file", "ref", mp.ref, mp.path, NULL);
    return true;
}
