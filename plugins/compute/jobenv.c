/* cairn-job-env: what a job's command needs from Cairn before it runs, set
 * up inside the job itself (jobdir.h, JOB_PRELUDE):
 *
 *   cairn-job-env PRELUDE COMMAND [ARG...]
 *
 * reads PRELUDE ("environment=env:NAME:V", "keep=VAR", "secret=VAR=NAME"
 * lines), then, as the job (its CAIRN_ENDPOINT, CAIRN_TOKEN and
 * CAIRN_WORKSPACE: the token is the submitter's, so a job reads only the
 * secrets and environments its submitter may read):
 *   - the environment, through the registry: its env_vars are set, except
 *     those the spec's environment_variables set (keep=); its python, a
 *     venv folder or an interpreter, goes first on PATH (VIRTUAL_ENV for a
 *     venv, CAIRN_PYTHON for either);
 *   - each secret from the vault, as the variable VAR;
 * and runs COMMAND in its place. Secrets never touch the disk: not the
 * jobs database, not the job's files. Anything that fails is said on
 * stderr (the job's log) and the job fails (exit 126). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "cairn/client.h"
#include "cairn/msg.h"
#include "cairn/secrets.h"

#define PRELUDE_MAX (64 * 1024)
#define EXIT_SETUP 126

static int s_fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "cairn-job-env: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return EXIT_SETUP;
}

/* The prelude file, NUL-terminated; NULL when it cannot be read. */
static char *s_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    char *buf = malloc(PRELUDE_MAX + 1);
    ssize_t n = buf ? read(fd, buf, PRELUDE_MAX + 1) : -1;
    close(fd);
    if (n < 0 || n > PRELUDE_MAX) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Whether the prelude says keep=var (the spec set it). */
static bool s_kept(const char *prelude, const char *var, size_t n)
{
    for (const char *p = prelude; (p = strstr(p, "keep=")); p += 5)
        if ((p == prelude || p[-1] == '\n') && !strncmp(p + 5, var, n) &&
            (p[5 + n] == '\n' || p[5 + n] == '\0'))
            return true;
    return false;
}

/* Variables Cairn sets for the job, which no environment overrides. */
static bool s_cairns(const msgpack_object *k)
{
    return (k->via.str.size >= 6 && !memcmp(k->via.str.ptr, "CAIRN_", 6)) ||
           cairn_obj_is_str(k, "CUDA_VISIBLE_DEVICES") ||
           cairn_obj_is_str(k, "CUDA_DEVICE_ORDER");
}

static void s_path_first(const char *dir)
{
    const char *old = getenv("PATH");
    char *path = NULL;
    if (asprintf(&path, "%s%s%s", dir, old && *old ? ":" : "", old ? old : "") >= 0) {
        setenv("PATH", path, 1);
        free(path);
    }
}

/* The environment's python: a venv folder or an interpreter. */
static int s_python(const char *python, const char *ref)
{
    if (!*python) return 0;
    char bin[PATH_MAX + 16];
    struct stat st;
    if (stat(python, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(bin, sizeof bin, "%s/bin", python);
        setenv("VIRTUAL_ENV", python, 1);
        s_path_first(bin);
        snprintf(bin, sizeof bin, "%s/bin/python", python);
        setenv("CAIRN_PYTHON", bin, 1);
        return 0;
    }
    if (access(python, X_OK) != 0)
        return s_fail("%s: its python %s cannot be run here", ref, python);
    snprintf(bin, sizeof bin, "%s", python);
    s_path_first(dirname(bin));
    setenv("CAIRN_PYTHON", python, 1);
    return 0;
}

static int s_environment(cairn_client_t *cl, const char *prelude, const char *ref)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "ref", ref);
    cairn_reply_t *r = NULL;
    cairn_err_t err = {0};
    int rc =
        cairn_client_call(cl, "registry", "resolve", sb.data, sb.size, 30000, &r, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        cairn_reply_destroy(&r);
        return s_fail("environment %s: %s", ref, err.msg);
    }
    const msgpack_object *env = cairn_obj_get(cairn_reply_object(r), "environment");
    const msgpack_object *vars = cairn_obj_get(env, "env_vars");
    for (uint32_t i = 0;
         vars && vars->type == MSGPACK_OBJECT_MAP && i < vars->via.map.size; i++) {
        const msgpack_object *k = &vars->via.map.ptr[i].key,
                             *v = &vars->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR ||
            s_kept(prelude, k->via.str.ptr, k->via.str.size) || s_cairns(k))
            continue;
        char *name = strndup(k->via.str.ptr, k->via.str.size);
        char *value = strndup(v->via.str.ptr, v->via.str.size);
        if (name && value) setenv(name, value, 1);
        free(name);
        free(value);
    }
    const msgpack_object *py = cairn_obj_get(env, "python");
    char python[PATH_MAX] = "";
    if (py && py->type == MSGPACK_OBJECT_STR && py->via.str.size < sizeof python)
        snprintf(python, sizeof python, "%.*s", (int)py->via.str.size, py->via.str.ptr);
    cairn_reply_destroy(&r);
    fprintf(stderr, "cairn-job-env: environment %s%s%s\n", ref,
            *python ? ", python " : "", python);
    return s_python(python, ref);
}

static int s_secret(cairn_client_t *cl, char *line)
{
    char *eq = strchr(line, '=');
    if (!eq || eq == line || !eq[1]) return s_fail("a bad secret line: %s%s", line, "");
    *eq = '\0';
    cairn_secret_t *s = NULL;
    cairn_err_t err = {0};
    if (cairn_secrets_get(cl, eq + 1, &s, &err) != 0)
        return s_fail("secrets.%s: %s", eq + 1, err.msg);
    size_t len = 0;
    const char *v = cairn_secret_value(s, &len);
    if (memchr(v, '\0', len)) {
        cairn_secret_free(&s);
        return s_fail("secrets.%s holds a NUL byte: it cannot be %s", eq + 1,
                      "an environment variable");
    }
    setenv(line, v, 1);
    cairn_secret_free(&s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cairn-job-env PRELUDE COMMAND [ARG...]\n");
        return 2;
    }
    char *prelude = s_read(argv[1]);
    if (!prelude) return s_fail("cannot read %s: %s", argv[1], strerror(errno));
    cairn_err_t err = {0};
    cairn_client_t *cl = cairn_client_new(NULL, NULL, &err);
    if (!cl) {
        free(prelude);
        return s_fail("cannot reach Cairn: %s%s", err.msg, "");
    }
    int rc = 0;
    char *copy = strdup(prelude), *save = NULL;
    for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "environment=", 12))
            rc = s_environment(cl, prelude, line + 12);
        else if (!strncmp(line, "secret=", 7))
            rc = s_secret(cl, line + 7);
    }
    if (copy) explicit_bzero(copy, strlen(copy));
    free(copy);
    free(prelude);
    cairn_client_destroy(&cl);
    if (rc != 0) return rc;
    execvp(argv[2], argv + 2);
    return s_fail("cannot run %s: %s", argv[2], strerror(errno));
}
