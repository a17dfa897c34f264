/* Signed download links, for a browser's plain navigation (a link's href,
 * which carries no bearer token):
 *
 *   POST /api/v1/artifacts/download_url {run_id*, path*}
 *        -> {url: "/api/v1/artifacts/download/SEALED/NAME", expires_ms}
 *   GET  /api/v1/artifacts/download/SEALED/NAME   the file, as an attachment
 *
 * The POST is made as the caller, and first reads nothing but the file's
 * size (get_artifact, length 0) as the caller: a missing file or a caller
 * who may not read it is refused there. SEALED holds the caller's token
 * and workspace, the run, the path and the expiry in a box under the
 * gateway's key (seal.c), so the GET makes its bus calls as the caller who
 * asked, through the kernel's usual checks (a token revoked since is
 * refused), whatever credentials the GET itself carries. NAME is for the
 * browser only: the file's name comes from the box. */
#define _GNU_SOURCE
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "gateway.h"

#define URL_PATH "/api/v1/artifacts/download_url"
#define DL_PREFIX "/api/v1/artifacts/download/"
#define URL_MAX (sizeof DL_PREFIX + GW_SEAL_TEXT_MAX + 3 * GW_SEAL_PATH_MAX + 2)

/* The last segment of a path. */
static const char *s_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* RFC 3986's unreserved: what a URL's path segment keeps unencoded. */
static bool s_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~", c));
}

/* {run_id, path} of the body into s; false: answered 400. */
static bool s_target(gw_req_t *r, gw_seal_t *s)
{
    json_t *j =
        json_loadb(r->http->body, r->http->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *run = json_string_value(json_object_get(j, "run_id"));
    const char *path = json_string_value(json_object_get(j, "path"));
    bool ok = run && *run && path && *path && strlen(run) <= GW_SEAL_RUN_MAX &&
              strlen(path) <= GW_SEAL_PATH_MAX;
    if (ok) {
        snprintf(s->run, sizeof s->run, "%s", run);
        snprintf(s->path, sizeof s->path, "%s", path);
    } else {
        gw_reply_error(r, 400, CAIRN_E_BAD_REQUEST,
                       "download_url takes {run_id, path}: a run (up to %d bytes) and "
                       "a file's path in it (up to %d bytes)",
                       GW_SEAL_RUN_MAX, GW_SEAL_PATH_MAX);
    }
    json_decref(j);
    return ok;
}

/* Whether r's caller may read the file: its size alone, read as the
 * caller (no byte of it); false: answered with the refusal. */
static bool s_readable(gw_req_t *r, const gw_seal_t *s)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cairn_pack_kv_text(&pk, "run_id", s->run);
    cairn_pack_kv_text(&pk, "path", s->path);
    cairn_pack_cstr(&pk, "length");
    msgpack_pack_uint32(&pk, 0);
    cairn_reply_t *reply = NULL;
    cairn_err_t err = {0};
    int rc = gw_call(r, "artifacts", "get_artifact", sb.data, sb.size, &reply, &err);
    cairn_reply_destroy(&reply);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0)
        gw_reply_error(r, err.st >= 400 ? err.st : 503,
                       err.code[0] ? err.code : "unavailable", "%s", err.msg);
    return rc == 0;
}

static void s_make_url(gw_req_t *r)
{
    gw_seal_t s = {0};
    if (!s_target(r, &s) || !s_readable(r, &s)) return;
    snprintf(s.token, sizeof s.token, "%s", r->token); /* < GW_TOKEN_MAX bytes */
    snprintf(s.ws, sizeof s.ws, "%s", r->ws);
    s.expires_ms = cairn_wall_ms() + (uint64_t)r->g->url_ttl_s * 1000;
    char url[URL_MAX];
    size_t n = sizeof DL_PREFIX - 1;
    cairn_err_t err = {0};
    memcpy(url, DL_PREFIX, n);
    int rc = gw_seal(r->g->seal_key, &s, url + n, sizeof url - n, &err);
    sodium_memzero(s.token, sizeof s.token);
    if (rc != 0) {
        gw_reply_error(r, err.st, err.code, "%s", err.msg);
        return;
    }
    n += strlen(url + n);
    url[n++] = '/';
    const char *name = s_basename(s.path);
    gw_pct_encode(name, strlen(name), s_unreserved, url, sizeof url, &n);
    gw_reply_json(
        r, 200,
        json_pack("{s:s, s:I}", "url", url, "expires_ms", (json_int_t)s.expires_ms));
}

bool gw_signed_url(gw_req_t *r)
{
    if (strcmp(r->path, URL_PATH) != 0) return false;
    if (strcmp(r->http->method, "POST") != 0)
        gw_reply_error(r, 405, "method_not_allowed",
                       "download_url is called with POST");
    else
        s_make_url(r);
    return true;
}

/* The file of the link's box, streamed as the caller who asked for it. */
static void s_download(gw_req_t *r, const char *sealed, size_t len)
{
    gw_seal_t s;
    cairn_err_t err = {0};
    if (gw_unseal(r->g->seal_key, sealed, len, cairn_wall_ms(), &s, &err) != 0) {
        gw_reply_error(r, err.st, err.code, "%s", err.msg);
        return;
    }
    snprintf(r->token_buf, sizeof r->token_buf, "%s", s.token);
    r->token = r->token_buf; /* gw_download copies it with r */
    snprintf(r->ws, sizeof r->ws, "%s", s.ws);
    gw_download(r, "artifacts", "get_artifact", "run_id", s.run, s.path,
                s_basename(s.path));
    sodium_memzero(&s, sizeof s);
    sodium_memzero(r->token_buf, sizeof r->token_buf);
}

bool gw_signed_download(gw_req_t *r)
{
    const char *p = r->http->path;
    if (strncmp(p, DL_PREFIX, sizeof DL_PREFIX - 1) != 0) return false;
    r->path = p;
    r->token = "";
    cairn_http_peer(r->http, r->peer, sizeof r->peer);
    const char *sealed = p + sizeof DL_PREFIX - 1, *slash = strchr(sealed, '/');
    if (strcmp(r->http->method, "GET") != 0 && strcmp(r->http->method, "HEAD") != 0)
        gw_reply_error(r, 405, "method_not_allowed",
                       "a download link is read with GET");
    else
        s_download(r, sealed, slash ? (size_t)(slash - sealed) : strlen(sealed));
    return true;
}
