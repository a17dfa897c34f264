/* The python flavor's verb side (scorer.h): a deployment's
 * code_configuration read and snapshotted, its request_settings read, its
 * workers waited for before it is stored, and its logs.
 *
 *   STATE/endpoints/code/ENDPOINT/DEPLOYMENT/MS/   a code snapshot (one per
 *                        create or update that gave code; kept until the
 *                        deployment goes, for whoever asks what ran)
 *   STATE/endpoints/logs/ENDPOINT.DEPLOYMENT.log    the workers' output */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scorer.h"
#include "snapshot.h"

#define CODE_MAX_BYTES (256ull << 20) /* a deployment's code at most */
#define CODE_MAX_FILES 20000
#define TIMEOUT_MS_MAX 600000
#define PER_INSTANCE_MAX 1000
#define LOG_LINES_MAX 10000
#define LOG_BYTES_MAX (1u << 20)
#define LOG_KEEP_BYTES (16 << 20)
#define POLL_MS 50

static int s_bad(cairn_err_t *err, const char *fmt, const char *what)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, fmt, what);
}

/* code (absolute, or relative to base_dir) as a folder path in out. */
static int s_code_path(const msgpack_object *body, cairn_str_t code, char *out,
                       size_t out_len, cairn_err_t *err)
{
    cairn_str_t base = {"", 0};
    if (cairn_field_str(body, "base_dir", false, PATH_MAX - 1, &base, err) < 0)
        return -1;
    if (code.ptr[0] != '/' && (!base.len || base.ptr[0] != '/'))
        return s_bad(err, "%s",
                     "code_configuration.code must be an absolute path, or base_dir "
                     "(absolute) must say where it is relative to");
    if (code.ptr[0] == '/')
        snprintf(out, out_len, "%.*s", (int)code.len, code.ptr);
    else
        snprintf(out, out_len, "%.*s/%.*s", (int)base.len, base.ptr, (int)code.len,
                 code.ptr);
    struct stat st;
    if (stat(out, &st) != 0 || !S_ISDIR(st.st_mode))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "code_configuration.code: %s is not a folder here", out);
    return 0;
}

/* A scoring script's path: relative, inside its folder, a .py file. */
static int s_script_ok(cairn_str_t s, cairn_err_t *err)
{
    bool ok = s.len > 3 && s.ptr[0] != '/' && !memcmp(s.ptr + s.len - 3, ".py", 3) &&
              !memchr(s.ptr, '\0', s.len);
    for (size_t i = 0; ok && i + 1 < s.len; i++)
        ok = !(s.ptr[i] == '.' && s.ptr[i + 1] == '.');
    if (!ok)
        return s_bad(err, "%s",
                     "code_configuration.scoring_script must be a .py file's path "
                     "inside code (relative, without '..')");
    return 0;
}

/* Snapshot src into sc->codes/ENDPOINT/NAME/MS as d->code. */
static int s_snapshot(scorer_t *sc, const char *src, dep_row_t *d, cairn_err_t *err)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/%s/%s/%lld", sc->codes, d->endpoint, d->name,
                     (long long)cairn_wall_ms());
    if (n < 0 || (size_t)n >= sizeof dir)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "the state folder's path is too long for a code snapshot");
    for (char *p = dir + strlen(sc->codes) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            *p = '/';
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                                 "cannot make %s: %s", dir, strerror(errno));
        }
        *p = '/';
    }
    snapshot_limits_t lim = {.max_files = CODE_MAX_FILES, .max_bytes = CODE_MAX_BYTES};
    snapshot_t *snap = NULL;
    if (snapshot_take(src, dir, &lim, &snap, err) != 0) {
        snapshot_rm_tree(dir);
        return -1;
    }
    snapshot_destroy(&snap);
    snprintf(d->code, sizeof d->code, "%s", dir);
    return 0;
}

static int s_code_configuration(scorer_t *sc, const msgpack_object *body, dep_row_t *d,
                                cairn_err_t *err)
{
    const msgpack_object *cc = NULL;
    int rc = cairn_field_map(body, "code_configuration", false, &cc, err);
    if (rc != 0) return rc < 0 ? -1 : 0;
    cairn_str_t code, script;
    char src[PATH_MAX];
    if (cairn_field_str(cc, "code", true, PATH_MAX - 1, &code, err) != 0 ||
        cairn_field_str(cc, "scoring_script", true, EP_SCRIPT_MAX, &script, err) != 0 ||
        s_script_ok(script, err) != 0 ||
        s_code_path(body, code, src, sizeof src, err) != 0)
        return -1;
    char at[PATH_MAX * 2];
    snprintf(at, sizeof at, "%s/%.*s", src, (int)script.len, script.ptr);
    if (access(at, R_OK) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "code_configuration.scoring_script: %s cannot be read: %s",
                             at, strerror(errno));
    if (s_snapshot(sc, src, d, err) != 0) return -1;
    snprintf(d->script, sizeof d->script, "%.*s", (int)script.len, script.ptr);
    return 0;
}

static int s_request_settings(const msgpack_object *body, dep_row_t *d,
                              cairn_err_t *err)
{
    const msgpack_object *rs = NULL;
    int rc = cairn_field_map(body, "request_settings", false, &rs, err);
    if (rc != 0) return rc < 0 ? -1 : 0;
    uint64_t timeout = 0, per = 0;
    int t = cairn_field_uint(rs, "request_timeout_ms", false, &timeout, err);
    int m =
        cairn_field_uint(rs, "max_concurrent_requests_per_instance", false, &per, err);
    if (t < 0 || m < 0) return -1;
    if (t == 0 && (timeout < 1 || timeout > TIMEOUT_MS_MAX))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "request_settings.request_timeout_ms must be 1 to %d",
                             TIMEOUT_MS_MAX);
    if (m == 0 && per > PER_INSTANCE_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "request_settings.max_concurrent_requests_per_instance "
                             "must be 0 (no limit) to %d",
                             PER_INSTANCE_MAX);
    if (t == 0) d->timeout_ms = (int64_t)timeout;
    if (m == 0) d->max_concurrent = (int64_t)per;
    return 0;
}

int dep_flavor_read(scorer_t *sc, const msgpack_object *body, dep_row_t *d,
                    cairn_err_t *err)
{
    if (!d->timeout_ms) d->timeout_ms = EP_TIMEOUT_MS_DEFAULT;
    if (s_request_settings(body, d, err) != 0) return -1;
    return s_code_configuration(sc, body, d, err);
}

void dep_flavor_pack(scorer_t *sc, msgpack_packer *pk, const dep_row_t *d)
{
    cairn_pack_cstr(pk, "request_settings");
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "request_timeout_ms");
    msgpack_pack_int64(pk, d->timeout_ms);
    cairn_pack_cstr(pk, "max_concurrent_requests_per_instance");
    msgpack_pack_int64(pk, d->max_concurrent);
    cairn_pack_kv_str(pk, "flavor", d->script[0] ? "python" : "xgboost");
    if (!d->script[0]) return;
    cairn_pack_cstr(pk, "code_configuration");
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "scoring_script", d->script);
    cairn_pack_kv_str(pk, "snapshot", d->code);
    int64_t pids[POOL_INSTANCES_MAX];
    int n = 0;
    cairn_err_t err = {0};
    model_entry_t *e = routes_pool_find(sc, d, &err);
    if (e) n = py_pool_pids(routes_entry_pool(e), pids, POOL_INSTANCES_MAX);
    cairn_pack_cstr(pk, "workers");
    msgpack_pack_array(pk, (uint32_t)n);
    for (int i = 0; i < n; i++) msgpack_pack_int64(pk, pids[i]);
    if (e) routes_entry_put(sc, e);
}

int dep_flavor_fields(const dep_row_t *d)
{
    return d->script[0] ? 4 : 2;
}

/* ---- waiting for the workers --------------------------------------------------- */

struct awaiting {
    struct awaiting *next; /* sc->awaiting */
    scorer_t *sc;
    model_entry_t *entry; /* held while waiting */
    uint64_t timer;
    uint64_t deadline_ms;
    dep_ready_fn *done;
    void *arg;
};

static void s_await_drop(scorer_t *sc, awaiting_t *a)
{
    for (awaiting_t **p = &sc->awaiting; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    cairn_timer_cancel(sc->ctx, a->timer);
    routes_entry_put(sc, a->entry);
    free(a);
}

static void s_poll(void *arg)
{
    awaiting_t *a = arg;
    char why[768] = "";
    int r = py_pool_ready(routes_entry_pool(a->entry), why, sizeof why);
    if (r == 0 && cairn_wall_ms() < a->deadline_ms) return;
    if (r == 0)
        snprintf(why, sizeof why, "no worker finished init() within %d ms",
                 a->sc->init_timeout_ms);
    a->done(a->arg, r > 0 ? NULL : why);
    s_await_drop(a->sc, a);
}

int dep_python_await(scorer_t *sc, const dep_row_t *d, dep_ready_fn *done, void *arg,
                     cairn_err_t *err)
{
    awaiting_t *a = calloc(1, sizeof *a);
    if (!a) return cairn_err_oom(err, NULL);
    *a = (awaiting_t){.sc = sc, .done = done, .arg = arg};
    if (!(a->entry = routes_pool_hold(sc, d, err))) {
        free(a);
        return -1;
    }
    a->deadline_ms = cairn_wall_ms() + (uint64_t)sc->init_timeout_ms + 10000u;
    if (!(a->timer = cairn_timer_add(sc->ctx, POLL_MS, POLL_MS, s_poll, a))) {
        routes_entry_put(sc, a->entry);
        free(a);
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "no timer for the deployment's workers");
    }
    a->next = sc->awaiting;
    sc->awaiting = a;
    return 0;
}

void dep_python_await_free_all(scorer_t *sc)
{
    while (sc->awaiting) s_await_drop(sc, sc->awaiting);
}

/* ---- removing, logs ------------------------------------------------------------- */

void dep_flavor_remove(scorer_t *sc, const char *endpoint, const char *name)
{
    char dir[PATH_MAX + 2 * EP_NAME_MAX + 8];
    if (name)
        snprintf(dir, sizeof dir, "%s/%s/%s", sc->codes, endpoint, name);
    else
        snprintf(dir, sizeof dir, "%s/%s", sc->codes, endpoint);
    snapshot_rm_tree(dir);
}

/* The last lines of the file at path, at most LOG_BYTES_MAX bytes of them. */
static char *s_tail(const char *path, uint64_t lines, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        *len = 0;
        return strdup("");
    }
    size_t n = (size_t)st.st_size < LOG_BYTES_MAX ? (size_t)st.st_size : LOG_BYTES_MAX;
    char *buf = malloc(n + 1);
    ssize_t got = buf ? pread(fd, buf, n, st.st_size - (off_t)n) : -1;
    close(fd);
    if (got < 0) {
        free(buf);
        return NULL;
    }
    size_t end = (size_t)got, at = end;
    if (at && buf[at - 1] == '\n') at--;
    uint64_t seen = 0;
    while (at > 0 && !(buf[at - 1] == '\n' && ++seen == lines)) at--;
    memmove(buf, buf + at, end - at);
    *len = end - at;
    buf[*len] = '\0';
    return buf;
}

/* Bytes that are not UTF-8 (a script prints what it likes) as '?', in
 * place: a reply's strings must be valid for every reader. */
static void s_scrub(char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = cairn_utf8_len((const unsigned char *)s + i, n - i);
        if (k) {
            i += k;
        } else {
            s[i++] = '?';
        }
    }
}

/* A deployment's log past LOG_KEEP_BYTES is moved to .log.1 (the one
 * before goes) and started again: the workers write with O_APPEND, so
 * they go on at the start of the emptied file. */
static void s_trim(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || st.st_size < LOG_KEEP_BYTES) return;
    char old[PATH_MAX + 8];
    snprintf(old, sizeof old, "%s.1", path);
    int in = open(path, O_RDWR | O_CLOEXEC);
    int out = in < 0 ? -1 : open(old, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    off_t at = 0;
    while (out >= 0 && at < st.st_size &&
           copy_file_range(in, &at, out, NULL, (size_t)(st.st_size - at), 0) > 0) {
    }
    if (in >= 0 && out >= 0 && ftruncate(in, 0) != 0) {
        /* left as it is: tried again at the next trim */
    }
    if (out >= 0) close(out);
    if (in >= 0) close(in);
}

static int s_trim_dep(void *arg, const dep_row_t *d)
{
    scorer_t *sc = arg;
    if (!d->script[0]) return 0;
    char path[PATH_MAX + 2 * EP_NAME_MAX + 8];
    snprintf(path, sizeof path, "%s/%s.%s.log", sc->logs, d->endpoint, d->name);
    s_trim(path);
    return 0;
}

void dep_logs_trim(void *arg)
{
    scorer_t *sc = arg;
    cairn_err_t err = {0};
    dep_store_each(sc->store, NULL, s_trim_dep, sc, &err);
}

int dep_logs(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    dep_row_t d;
    uint64_t lines = 100;
    if (dep_find(sc, req, &d, err) != 0 ||
        cairn_field_uint(cairn_body(req), "lines", false, &lines, err) < 0)
        return -1;
    if (lines < 1 || lines > LOG_LINES_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "lines must be 1 to %d", LOG_LINES_MAX);
    char path[PATH_MAX + 2 * EP_NAME_MAX + 8];
    snprintf(path, sizeof path, "%s/%s.%s.log", sc->logs, d.endpoint, d.name);
    size_t len = 0;
    char *text = s_tail(path, lines, &len);
    if (!text) return cairn_err_oom(err, NULL);
    s_scrub(text, len);
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "logs");
    msgpack_pack_str_with_body(pk, text, len);
    free(text);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}
