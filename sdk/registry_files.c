/* A registry version's files from C (cairn/registry.h): a local file or
 * folder uploaded once into the artifact store, a version's files
 * downloaded and checked against their hashes, data assets, inputs and
 * references resolved. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/msg.h"
#include "cairn/registry.h"
#include "cairn/tracking.h"
#include "chash.h"
#include "svc_call.h"

#define SVC CAIRN_REGISTRY_SVC
#define UPLOADS_EXPERIMENT "cairn-uploads"
#define READ_CHUNK (8u << 20)
#define WALK_DEPTH_MAX 64

/* ---- upload --------------------------------------------------------------- */

/* Upload every regular file under dir (local) as base/REL, depth first. */
static int s_upload_tree(cairn_client_t *client, const char *run_id, const char *dir,
                         const char *base, int depth, size_t *count, cairn_err_t *err)
{
    if (depth > WALK_DEPTH_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "'%s' is nested over %d folders deep", dir,
                             WALK_DEPTH_MAX);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "cannot read the folder '%s': %s", dir, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (rc == 0 && strcmp(nm, ".") && strcmp(nm, "..")) {
            char *local = NULL, *dest = NULL;
            struct stat st;
            if (asprintf(&local, "%s/%s", dir, nm) < 0 ||
                asprintf(&dest, "%s/%s", base, nm) < 0)
                rc = cairn_err_oom(err, NULL);
            else if (stat(local, &st) != 0)
                rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                                   "cannot read '%s': %s", local, strerror(errno));
            else if (S_ISDIR(st.st_mode))
                rc = s_upload_tree(client, run_id, local, dest, depth + 1, count, err);
            else if (S_ISREG(st.st_mode)) {
                rc = cairn_log_artifact(client, run_id, local, dest, NULL, NULL, err);
                (*count)++;
            }
            free(local);
            free(dest);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static const char *s_base(const char *path, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    const char *slash = strrchr(buf, '/');
    return slash && slash[1] ? slash + 1 : buf;
}

int cairn_registry_upload(cairn_client_t *client, const char *local_path, char **source,
                          cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) ||
        cairn_svc_need(local_path, "local_path", err) ||
        cairn_svc_need(source, "source", err))
        return -1;
    *source = NULL;
    struct stat st;
    if (stat(local_path, &st) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "no such file or folder: %s", local_path);
    char buf[4096];
    const char *name = s_base(local_path, buf, sizeof buf);
    char *exp = NULL, *run = NULL;
    size_t count = 0;
    int rc = cairn_get_experiment_id(client, UPLOADS_EXPERIMENT, true, &exp, err);
    if (rc == 0) rc = cairn_create_run(client, exp, "upload", NULL, &run, err);
    if (rc == 0) rc = cairn_set_tag(client, run, "cairn.upload_of", local_path, err);
    if (rc == 0 && S_ISDIR(st.st_mode)) {
        rc = s_upload_tree(client, run, local_path, name, 0, &count, err);
        if (rc == 0 && !count)
            rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                               "the folder '%s' holds no file", local_path);
    } else if (rc == 0) {
        rc = cairn_log_artifact(client, run, local_path, name, NULL, NULL, err);
    }
    if (rc == 0) rc = cairn_end_run(client, run, rc == 0 ? "FINISHED" : "FAILED", err);
    if (rc == 0 && asprintf(source, "runs:/%s/%s", run, name) < 0) {
        *source = NULL;
        rc = cairn_err_oom(err, NULL);
    }
    free(exp);
    free(run);
    return rc;
}

/* ---- download ------------------------------------------------------------- */

/* mkdir -p of path's parent folders below dst (path is relative, checked). */
static int s_make_parents(const char *full, size_t skip, cairn_err_t *err)
{
    char *p = strdup(full);
    if (!p) return cairn_err_oom(err, NULL);
    int rc = 0;
    for (char *s = p + skip; rc == 0 && (s = strchr(s, '/')); s++) {
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                               "cannot create the folder '%s': %s", p, strerror(errno));
        *s = '/';
    }
    free(p);
    return rc;
}

static bool s_safe_path(const char *path)
{
    if (!*path || path[0] == '/') return false;
    for (const char *s = path; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (!n || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += n + (e ? 1 : 0);
    }
    return true;
}

typedef struct {
    const char *path, *hash, *alg;
    uint64_t size;
} file_t;

/* Read one file with read_file into fd, hashing; compare at the end. */
static int s_fetch(cairn_client_t *client, const char *ref, const file_t *f, int fd,
                   cairn_err_t *err)
{
    cairn_chash_alg_t alg;
    if (!strcmp(f->alg, "sha256"))
        alg = CAIRN_CHASH_SHA256;
    else if (!strcmp(f->alg, "blake2b"))
        alg = CAIRN_CHASH_BLAKE2B;
    else
        return cairn_svc_bad_reply(err, SVC, "names an unknown hash algorithm");
    cairn_chash_t h;
    cairn_chash_init(&h, alg);
    uint64_t off = 0;
    for (;;) {
        cairn_svc_call_t c;
        msgpack_packer *pk = cairn_svc_begin(&c, SVC, 4);
        cairn_pack_kv_str(pk, "ref", ref);
        cairn_pack_kv_str(pk, "path", f->path);
        cairn_pack_cstr(pk, "offset");
        msgpack_pack_uint64(pk, off);
        cairn_pack_cstr(pk, "length");
        msgpack_pack_uint32(pk, READ_CHUNK);
        cairn_reply_t *r = NULL;
        if (cairn_svc_end(client, &c, "read_file", &r, err) != 0) return -1;
        const msgpack_object *data = cairn_obj_get(cairn_reply_object(r), "data");
        if (!data || data->type != MSGPACK_OBJECT_BIN) {
            cairn_reply_destroy(&r);
            return cairn_svc_bad_reply(err, SVC, "holds no data");
        }
        size_t n = data->via.bin.size;
        const char *p = data->via.bin.ptr;
        cairn_chash_update(&h, p, n);
        for (size_t done = 0; done < n;) {
            ssize_t w = write(fd, p + done, n - done);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                cairn_reply_destroy(&r);
                return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                                     "cannot write '%s': %s", f->path, strerror(errno));
            }
            done += (size_t)w;
        }
        off += n;
        cairn_reply_destroy(&r);
        if (!n || off >= f->size) break;
    }
    char hex[CAIRN_CHASH_HEX + 1];
    cairn_chash_hex(&h, hex);
    if (off != f->size || strcmp(hex, f->hash))
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "%s: %s does not match its hash after download", ref,
                             f->path);
    return 0;
}

/* One file: into a temporary beside its place, renamed once verified. */
static int s_download_file(cairn_client_t *client, const char *ref, const char *dst,
                           const file_t *f, cairn_err_t *err)
{
    if (!s_safe_path(f->path))
        return cairn_svc_bad_reply(err, SVC, "names an unsafe file path");
    char *full = NULL, *tmp = NULL;
    if (asprintf(&full, "%s/%s", dst, f->path) < 0) return cairn_err_oom(err, NULL);
    if (asprintf(&tmp, "%s.%d.part", full, (int)getpid()) < 0) {
        free(full);
        return cairn_err_oom(err, NULL);
    }
    int rc = s_make_parents(full, strlen(dst) + 1, err), fd = -1;
    if (rc == 0 && (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                           "cannot create '%s': %s", tmp, strerror(errno));
    if (rc == 0) rc = s_fetch(client, ref, f, fd, err);
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                           "cannot write '%s': %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, full) != 0)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                           "cannot rename '%s': %s", tmp, strerror(errno));
    if (rc != 0 && fd >= 0) unlink(tmp);
    free(full);
    free(tmp);
    return rc;
}

/* One page of list_files; *token receives the next page's (or NULL). */
static int s_page(cairn_client_t *client, const char *ref, const char *dst,
                  char **token, size_t *count, cairn_err_t *err)
{
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, *token ? 2 : 1);
    cairn_pack_kv_str(pk, "ref", ref);
    if (*token) cairn_pack_kv_str(pk, "page_token", *token);
    free(*token);
    *token = NULL;
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "list_files", &r, err) != 0) return -1;
    const msgpack_object *body = cairn_reply_object(r);
    const msgpack_object *files = cairn_obj_get(body, "files");
    int rc = 0;
    if (!files || files->type != MSGPACK_OBJECT_ARRAY)
        rc = cairn_svc_bad_reply(err, SVC, "holds no files");
    for (uint32_t i = 0; rc == 0 && i < files->via.array.size; i++) {
        const msgpack_object *o = &files->via.array.ptr[i];
        cairn_str_t path, hash, alg;
        uint64_t size;
        cairn_err_t e = {0};
        if (cairn_field_str(o, "path", true, 4096, &path, &e) != 0 ||
            cairn_field_str(o, "hash", true, 128, &hash, &e) != 0 ||
            cairn_field_str(o, "hash_alg", true, 16, &alg, &e) != 0 ||
            cairn_field_uint(o, "size", true, &size, &e) != 0) {
            rc = cairn_svc_bad_reply(err, SVC, "lists a malformed file");
            break;
        }
        char *p = cairn_str_dup(path), *hh = cairn_str_dup(hash),
             *a = cairn_str_dup(alg);
        if (!p || !hh || !a)
            rc = cairn_err_oom(err, NULL);
        else
            rc = s_download_file(client, ref, dst, &(file_t){p, hh, a, size}, err);
        free(p);
        free(hh);
        free(a);
        (*count)++;
    }
    cairn_str_t next;
    cairn_err_t e = {0};
    if (rc == 0 && cairn_field_str(body, "next_page_token", false, 0, &next, &e) == 0 &&
        next.len && !(*token = cairn_str_dup(next)))
        rc = cairn_err_oom(err, NULL);
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_registry_download(cairn_client_t *client, const char *ref,
                            const char *dst_dir, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(ref, "ref", err) ||
        cairn_svc_need(dst_dir, "dst_dir", err))
        return -1;
    if (mkdir(dst_dir, 0777) != 0 && errno != EEXIST)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot create the folder '%s': %s", dst_dir,
                             strerror(errno));
    char *token = NULL;
    size_t count = 0;
    int rc;
    do rc = s_page(client, ref, dst_dir, &token, &count, err);
    while (rc == 0 && token);
    free(token);
    return rc;
}

/* ---- data assets, inputs, references -------------------------------------- */

int cairn_registry_create_data_asset(cairn_client_t *client, const char *name,
                                     const char *type, const char *path,
                                     const char *description, int64_t *out_version,
                                     cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(name, "name", err) ||
        cairn_svc_need(path, "path", err))
        return -1;
    char *uploaded = NULL;
    struct stat st;
    if (!strstr(path, ":/") && stat(path, &st) == 0) { /* a local file or folder */
        if (!type) type = S_ISDIR(st.st_mode) ? "uri_folder" : "uri_file";
        if (cairn_registry_upload(client, path, &uploaded, err) != 0) return -1;
        path = uploaded;
    }
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, description ? 4 : 3);
    cairn_pack_kv_str(pk, "name", name);
    cairn_pack_kv_str(pk, "type", type ? type : "uri_folder");
    cairn_pack_kv_str(pk, "path", path);
    if (description) cairn_pack_kv_str(pk, "description", description);
    free(uploaded);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "create_data_asset", &r, err) != 0) return -1;
    const msgpack_object *d = cairn_obj_get(cairn_reply_object(r), "data_asset");
    int64_t v = 0;
    int rc = d && cairn_svc_obj_int(d, "version", &v)
                 ? 0
                 : cairn_svc_bad_reply(err, SVC, "lacks a data_asset with its version");
    if (rc == 0 && out_version) *out_version = v;
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_registry_log_input(cairn_client_t *client, const char *run_id,
                             const char *input, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) ||
        cairn_svc_need(run_id, "run_id", err) || cairn_svc_need(input, "input", err))
        return -1;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 2);
    cairn_pack_kv_str(pk, "run_id", run_id);
    cairn_pack_kv_str(pk, "input", input);
    return cairn_svc_end(client, &c, "log_input", NULL, err);
}

/* A string field of map into a heap copy at *out (NULL when absent). */
static int s_take_str(const msgpack_object *map, const char *key, char **out,
                      cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(map, key);
    *out = NULL;
    if (!o || o->type != MSGPACK_OBJECT_STR) return 0;
    if (!(*out = cairn_str_dup((cairn_str_t){o->via.str.ptr, o->via.str.size})))
        return cairn_err_oom(err, NULL);
    return 0;
}

int cairn_registry_resolve(cairn_client_t *client, const char *ref, char **canonical,
                           char **kind, char **path, cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(ref, "ref", err))
        return -1;
    char **outs[] = {canonical, kind, path};
    for (size_t i = 0; i < 3; i++)
        if (outs[i]) *outs[i] = NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 1);
    cairn_pack_kv_str(pk, "ref", ref);
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "resolve", &r, err) != 0) return -1;
    const msgpack_object *body = cairn_reply_object(r);
    static const char *const keys[] = {"ref", "kind", "path"};
    int rc = cairn_obj_get(body, "ref") && cairn_obj_get(body, "kind")
                 ? 0
                 : cairn_svc_bad_reply(err, SVC, "lacks the ref and kind it resolved");
    for (size_t i = 0; rc == 0 && i < 3; i++)
        if (outs[i]) rc = s_take_str(body, keys[i], outs[i], err);
    if (rc != 0)
        for (size_t i = 0; i < 3; i++)
            if (outs[i]) {
                free(*outs[i]);
                *outs[i] = NULL;
            }
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_registry_lineage(cairn_client_t *client, const char *node,
                           const char *direction, int depth, cairn_reply_t **out,
                           cairn_err_t *err)
{
    if (cairn_svc_need(client, "client", err) || cairn_svc_need(node, "node", err) ||
        cairn_svc_need(out, "out", err))
        return -1;
    *out = NULL;
    cairn_svc_call_t c;
    msgpack_packer *pk = cairn_svc_begin(&c, SVC, 1 + !!direction + (depth > 0));
    cairn_pack_kv_str(pk, "node", node);
    if (direction) cairn_pack_kv_str(pk, "direction", direction);
    if (depth > 0) {
        cairn_pack_cstr(pk, "depth");
        msgpack_pack_int(pk, depth);
    }
    cairn_reply_t *r = NULL;
    if (cairn_svc_end(client, &c, "lineage", &r, err) != 0) return -1;
    const msgpack_object *b = cairn_reply_object(r);
    const msgpack_object *nodes = cairn_obj_get(b, "nodes"),
                         *edges = cairn_obj_get(b, "edges");
    if (!nodes || nodes->type != MSGPACK_OBJECT_ARRAY || !edges ||
        edges->type != MSGPACK_OBJECT_ARRAY) {
        cairn_reply_destroy(&r);
        return cairn_svc_bad_reply(err, SVC, "lacks the nodes and edges of a lineage");
    }
    *out = r;
    return 0;
}
