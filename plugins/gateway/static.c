/* Cairn Studio's files (docs/STUDIO.md), served from the ui_dir setting
 * when no other route took the path:
 *
 *   GET /assets/NAME-HASH.js   a file of the bundle: its name changes with
 *                              its content, so it is cached for a year
 *   GET /                      index.html, and so is any other path that
 *   GET /experiments/7 ...     names no file and has no extension: the
 *                              app's own routes, which it draws itself
 *
 * A file's gzip'ed twin (NAME.gz, written by ui/build.mjs) is sent to a
 * client that takes gzip. Only GET and HEAD; a path with a segment that
 * starts with '.' (.., hidden files) is refused, and a file's real path
 * must lie under ui_dir (no symlink out). The API's own prefixes are never
 * answered here, so an unknown API route stays a JSON 404. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway.h"

#define STATIC_MAX (16u << 20) /* a file of the UI, at most (the bundle is ~100 KB) */

static const struct {
    const char *ext, *type;
} s_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
    /* an artifact's, too (signed.c) */
    {".csv", "text/csv; charset=utf-8"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".webp", "image/webp"},
    {".pdf", "application/pdf"},
    {".yaml", "application/yaml"},
    {".yml", "application/yaml"},
    {".gz", "application/gzip"},
    {".zip", "application/zip"},
};

const char *gw_mime_type(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof s_types / sizeof s_types[0]; i++)
            if (!strcasecmp(dot, s_types[i].ext)) return s_types[i].type;
    return "application/octet-stream";
}

/* Paths that belong to the API (answered elsewhere, or a JSON 404). */
static bool s_api_path(const char *p)
{
    static const char *const prefixes[] = {"/api/", "/ajax-api/", "/healthz", "/readyz",
                                           "/metrics"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(p, prefixes[i], strlen(prefixes[i]))) return true;
    return !strcmp(p, "/api");
}

/* No segment may start with '.': this refuses "..", "." and hidden files
 * before the file system is asked anything. */
static bool s_safe(const char *p)
{
    for (const char *s = p; (s = strchr(s, '/')); s++)
        if (s[1] == '.') return false;
    return !strchr(p, '\\');
}

/* Whether the last segment names a file by its extension (an asset, so a
 * missing one is a 404 rather than the app). */
static bool s_has_ext(const char *p)
{
    const char *slash = strrchr(p, '/');
    return strchr(slash ? slash : p, '.') != NULL;
}

/* Read path (under root, checked by its real path) whole; NULL when it is
 * not a regular file there. */
static char *s_read(const char *root, const char *path, struct stat *st)
{
    char real[PATH_MAX];
    size_t n = strlen(root);
    if (!realpath(path, real) || strncmp(real, root, n) || real[n] != '/') return NULL;
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    char *buf = NULL;
    if (fstat(fd, st) == 0 && S_ISREG(st->st_mode) && st->st_size <= STATIC_MAX &&
        (buf = malloc((size_t)st->st_size + 1))) {
        ssize_t got = pread(fd, buf, (size_t)st->st_size, 0);
        if (got != st->st_size) {
            free(buf);
            buf = NULL;
        }
    }
    close(fd);
    return buf;
}

static bool s_takes_gzip(const gw_req_t *r)
{
    const char *ae = cairn_http_header(r->http, "Accept-Encoding");
    return ae && strstr(ae, "gzip");
}

/* Answer the file rel (under ui_dir), or false when there is none. */
static bool s_file(gw_req_t *r, const char *rel)
{
    gateway_t *g = r->g;
    char path[PATH_MAX], root[PATH_MAX];
    struct stat st;
    if (!realpath(g->ui_dir, root)) return false;
    char *body = NULL;
    bool gz = s_takes_gzip(r);
    if (gz && snprintf(path, sizeof path, "%s%s.gz", g->ui_dir, rel) < (int)sizeof path)
        body = s_read(root, path, &st);
    if (!body) {
        gz = false;
        if (snprintf(path, sizeof path, "%s%s", g->ui_dir, rel) >= (int)sizeof path ||
            !(body = s_read(root, path, &st)))
            return false;
    }
    cairn_http_response_t *resp = r->resp;
    bool hashed = !strncmp(rel, "/assets/", 8);
    /* the etag of what is sent (the .gz is another representation); a
     * header's text must outlive this handler, up to the queueing that
     * follows it on this thread */
    static _Thread_local char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx%s\"", (unsigned long long)st.st_mtime,
             (unsigned long long)st.st_size, gz ? "-gz" : "");
    const char *inm = cairn_http_header(r->http, "If-None-Match");
    resp->status = 200;
    resp->content_type = gw_mime_type(rel);
    resp->header = "Cache-Control";
    resp->header_value = hashed ? "public, max-age=31536000, immutable" : "no-cache";
    resp->more[0].name = "ETag";
    resp->more[0].value = etag;
    resp->more[1].name = "Vary";
    resp->more[1].value = "Accept-Encoding";
    resp->more[2].name = gz ? "Content-Encoding" : NULL;
    resp->more[2].value = "gzip";
    if (inm && !strcmp(inm, etag)) {
        free(body);
        resp->status = 304;
        return true;
    }
    resp->body = body;
    resp->len = (size_t)st.st_size; /* libmicrohttpd sends none of it to a HEAD */
    return true;
}

static void s_not_built(gw_req_t *r)
{
    static const char fmt[] =
        "Cairn Studio (the web UI) was not built: there is no index.html in %s. "
        "tools/build.sh builds it when node and npm are installed "
        "(tools/install-deps.sh installs them); the ui_dir setting names another "
        "place.\n";
    char *text = NULL;
    int n = asprintf(&text, fmt, r->g->ui_dir);
    r->resp->status = n < 0 ? 500 : 404;
    r->resp->content_type = "text/plain; charset=utf-8";
    r->resp->body = n < 0 ? NULL : text;
    r->resp->len = n < 0 ? 0 : (size_t)n;
}

bool gw_static(gw_req_t *r)
{
    const char *p = r->path, *m = r->http->method;
    if (!r->g->ui_dir || !r->resp || s_api_path(p)) return false;
    if (strcmp(m, "GET") && strcmp(m, "HEAD")) return false;
    if (!s_safe(p)) {
        gw_reply_error(r, 400, "bad_request",
                       "a path segment may not start with '.': %s", p);
        return true;
    }
    if (strcmp(p, "/") && s_file(r, p)) return true;
    if (strcmp(p, "/") && s_has_ext(p)) {
        gw_reply_error(r, 404, "not_found", "no file %s", p);
        return true;
    }
    if (!s_file(r, "/index.html")) s_not_built(r);
    return true;
}

char *gw_static_dir(const char *setting)
{
    if (setting && *setting) return strdup(setting);
    /* beside the executable, as installed: bin/../share/cairn/ui (the build
     * tree has the same layout) */
    char self[PATH_MAX], dir[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return NULL;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(dir, sizeof dir, "%s/../share/cairn/ui", self);
    return strdup(dir);
}
