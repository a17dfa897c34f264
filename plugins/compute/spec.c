/* A command job's spec, read and checked (spec.h). */
#define _GNU_SOURCE
#include "spec.h"

#include <ctype.h>
#include <linux/limits.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 400 "<path>: <why>". */
__attribute__((format(printf, 3, 4))) static int s_bad(cairn_err_t *err,
                                                       const char *path,
                                                       const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, "%s: %s", path,
                         why);
}

static bool s_key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

/* A str of at most max bytes (0: any) into out; absent or nil: 1. */
static int s_text(const msgpack_object *map, const char *key, const char *path,
                  size_t max, cairn_str_t *out, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(map, key);
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 1;
    if (o->type != MSGPACK_OBJECT_STR) return s_bad(err, path, "must be a string");
    if (max && o->via.str.size > max)
        return s_bad(err, path, "is %u bytes; at most %zu", o->via.str.size, max);
    *out = (cairn_str_t){o->via.str.ptr, o->via.str.size};
    return 0;
}

/* A map of str to str (tags), or of env names to str. */
static int s_str_map(const msgpack_object *map, const char *key, bool env_names,
                     const msgpack_object **out, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(map, key);
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 1;
    if (o->type != MSGPACK_OBJECT_MAP) return s_bad(err, key, "must be a map");
    if (o->via.map.size > JOB_MAP_MAX)
        return s_bad(err, key, "has %u entries; at most %d", o->via.map.size,
                     JOB_MAP_MAX);
    size_t vmax = env_names ? JOB_ENV_VALUE_MAX : JOB_TEXT_MAX;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 ||
            k->via.str.size > JOB_TEXT_MAX)
            return s_bad(err, key, "its keys must be strings of 1 to %d bytes",
                         JOB_TEXT_MAX);
        char path[JOB_TEXT_MAX + 64];
        snprintf(path, sizeof path, "%s.%.*s", key, (int)k->via.str.size,
                 k->via.str.ptr);
        if (env_names) {
            const char *s = k->via.str.ptr;
            bool ok = isalpha((unsigned char)s[0]) || s[0] == '_';
            for (uint32_t j = 1; ok && j < k->via.str.size; j++)
                ok = isalnum((unsigned char)s[j]) || s[j] == '_';
            if (!ok)
                return s_bad(err, path,
                             "is not a variable name (letters, digits and _, not "
                             "starting with a digit)");
            if (k->via.str.size > 6 && memcmp(s, "CAIRN_", 6) == 0)
                return s_bad(err, path, "CAIRN_ variables are set by Cairn itself");
            if (s_key_is(k, "CUDA_VISIBLE_DEVICES") || s_key_is(k, "CUDA_DEVICE_ORDER"))
                return s_bad(err, path,
                             "is set by Cairn from resources.gpus (the GPUs the job "
                             "holds)");
        }
        if (v->type != MSGPACK_OBJECT_STR)
            return s_bad(err, path, "must be a string (quote numbers in YAML)");
        if (v->via.str.size > vmax)
            return s_bad(err, path, "is %u bytes; at most %zu", v->via.str.size, vmax);
        if (env_names && memchr(v->via.str.ptr, '\0', v->via.str.size))
            return s_bad(err, path, "holds a NUL byte");
    }
    *out = o;
    return 0;
}

static bool s_str_in(const msgpack_object *o, const char *const *names)
{
    for (; *names; names++)
        if (cairn_obj_is_str(o, *names)) return true;
    return false;
}

static const char *const s_input_types[] = {"uri_folder", "uri_file", NULL};
static const char *const s_input_modes[] = {"ro_mount", "download", "direct", NULL};

/* A file or folder input: {type, path*, mode}. Its path is checked here
 * for shape only; the plugin finds it at submit (verbs.c). */
static int s_input_map(const msgpack_object *v, const char *path, cairn_err_t *err)
{
    char sub[JOB_NAME_MAX + 32];
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key, *x = &v->via.map.ptr[i].val;
        if (s_key_is(k, "type")) {
            if (!s_str_in(x, s_input_types)) {
                snprintf(sub, sizeof sub, "%s.type", path);
                return s_bad(err, sub, "must be uri_folder (the default) or uri_file");
            }
        } else if (s_key_is(k, "mode")) {
            if (!s_str_in(x, s_input_modes)) {
                snprintf(sub, sizeof sub, "%s.mode", path);
                return s_bad(err, sub,
                             "must be ro_mount, download or direct (each reads the "
                             "file where it is)");
            }
        } else if (s_key_is(k, "path")) {
            snprintf(sub, sizeof sub, "%s.path", path);
            if (x->type != MSGPACK_OBJECT_STR || x->via.str.size == 0)
                return s_bad(err, sub, "must be a path or a data: reference");
            if (x->via.str.size > JOB_PATH_MAX)
                return s_bad(err, sub, "is %u bytes; at most %d", x->via.str.size,
                             JOB_PATH_MAX);
            if (memchr(x->via.str.ptr, '\0', x->via.str.size))
                return s_bad(err, sub, "holds a NUL byte");
        } else {
            return s_bad(err, path, "a file or folder input takes type, path and mode");
        }
    }
    cairn_str_t p;
    bool folder;
    if (!job_input_path(v, &p, &folder)) {
        snprintf(sub, sizeof sub, "%s.path", path);
        return s_bad(err, sub, "is required");
    }
    return 0;
}

bool job_input_path(const msgpack_object *v, cairn_str_t *path, bool *folder)
{
    if (!v || v->type != MSGPACK_OBJECT_MAP) return false;
    const msgpack_object *p = cairn_obj_get(v, "path");
    if (!p || p->type != MSGPACK_OBJECT_STR || p->via.str.size == 0) return false;
    *path = (cairn_str_t){p->via.str.ptr, p->via.str.size};
    *folder = !cairn_obj_is_str(cairn_obj_get(v, "type"), "uri_file");
    return true;
}

bool job_output_register(const msgpack_object *v, cairn_str_t *kind, cairn_str_t *name)
{
    const msgpack_object *r =
        v && v->type == MSGPACK_OBJECT_MAP ? cairn_obj_get(v, "register_as") : NULL;
    if (!r || r->type != MSGPACK_OBJECT_STR) return false;
    const char *colon = memchr(r->via.str.ptr, ':', r->via.str.size);
    if (!colon) return false;
    *kind = (cairn_str_t){r->via.str.ptr, (size_t)(colon - r->via.str.ptr)};
    *name = (cairn_str_t){colon + 1, r->via.str.size - kind->len - 1};
    return true;
}

/* outputs: NAME: {type: uri_folder, mode, register_as: model:N | data:N},
 * or NAME with nothing (a folder). */
static int s_outputs(const msgpack_object *map, const msgpack_object **out,
                     cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(map, "outputs");
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 1;
    if (o->type != MSGPACK_OBJECT_MAP) return s_bad(err, "outputs", "must be a map");
    if (o->via.map.size > JOB_OUTPUTS_MAX)
        return s_bad(err, "outputs", "has %u entries; at most %d", o->via.map.size,
                     JOB_OUTPUTS_MAX);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR ||
            !job_name_ok(k->via.str.ptr, k->via.str.size))
            return s_bad(err, "outputs",
                         "its names must be 1 to %d letters, digits, _ or -",
                         JOB_NAME_MAX);
        char path[JOB_NAME_MAX + 32];
        snprintf(path, sizeof path, "outputs.%.*s", (int)k->via.str.size,
                 k->via.str.ptr);
        if (v->type == MSGPACK_OBJECT_NIL) continue;
        if (v->type != MSGPACK_OBJECT_MAP)
            return s_bad(err, path, "must be a map {type: uri_folder, register_as}");
        for (uint32_t j = 0; j < v->via.map.size; j++) {
            const msgpack_object *kk = &v->via.map.ptr[j].key,
                                 *x = &v->via.map.ptr[j].val;
            char sub[JOB_NAME_MAX + 48];
            if (s_key_is(kk, "type")) {
                snprintf(sub, sizeof sub, "%s.type", path);
                if (!cairn_obj_is_str(x, "uri_folder"))
                    return s_bad(err, sub,
                                 "must be uri_folder (a folder the command writes)");
            } else if (s_key_is(kk, "mode")) {
                snprintf(sub, sizeof sub, "%s.mode", path);
                if (!cairn_obj_is_str(x, "rw_mount") && !cairn_obj_is_str(x, "upload"))
                    return s_bad(err, sub,
                                 "must be rw_mount or upload (either way the folder "
                                 "is uploaded when the job ends)");
            } else if (s_key_is(kk, "register_as")) {
                snprintf(sub, sizeof sub, "%s.register_as", path);
                cairn_str_t kind, name;
                if (x->type != MSGPACK_OBJECT_STR ||
                    !job_output_register(v, &kind, &name) ||
                    !(cairn_str_eq(kind, "model") || cairn_str_eq(kind, "data")) ||
                    !job_name_ok(name.ptr, name.len))
                    return s_bad(
                        err, sub,
                        "must be model:NAME or data:NAME (NAME: 1 to %d letters, "
                        "digits, _ or -)",
                        JOB_NAME_MAX);
            } else {
                return s_bad(err, path, "an output takes type, mode and register_as");
            }
        }
    }
    *out = o;
    return 0;
}

/* inputs: literal values (numbers, strings, booleans), files and folders. */
static int s_inputs(const msgpack_object *map, const msgpack_object **out,
                    cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(map, "inputs");
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 1;
    if (o->type != MSGPACK_OBJECT_MAP) return s_bad(err, "inputs", "must be a map");
    if (o->via.map.size > JOB_MAP_MAX)
        return s_bad(err, "inputs", "has %u entries; at most %d", o->via.map.size,
                     JOB_MAP_MAX);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR ||
            !job_name_ok(k->via.str.ptr, k->via.str.size))
            return s_bad(err, "inputs",
                         "its names must be 1 to %d letters, digits, _ or -",
                         JOB_NAME_MAX);
        char path[JOB_NAME_MAX + 16];
        snprintf(path, sizeof path, "inputs.%.*s", (int)k->via.str.size,
                 k->via.str.ptr);
        switch (v->type) {
            case MSGPACK_OBJECT_STR:
                if (v->via.str.size > JOB_TEXT_MAX)
                    return s_bad(err, path, "is %u bytes; at most %d", v->via.str.size,
                                 JOB_TEXT_MAX);
                if (memchr(v->via.str.ptr, '\0', v->via.str.size))
                    return s_bad(err, path, "holds a NUL byte");
                break;
            case MSGPACK_OBJECT_POSITIVE_INTEGER:
            case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            case MSGPACK_OBJECT_FLOAT32:
            case MSGPACK_OBJECT_FLOAT64:
            case MSGPACK_OBJECT_BOOLEAN:
                break;
            case MSGPACK_OBJECT_MAP:
                if (s_input_map(v, path, err) != 0) return -1;
                break;
            default:
                return s_bad(err, path, "must be a number, a string or a boolean");
        }
    }
    *out = o;
    return 0;
}

/* An input's value as the command's text: "0.1", "7", "true", "abc". */
static int s_input_text(const msgpack_object *v, char *buf, size_t cap)
{
    switch (v->type) {
        case MSGPACK_OBJECT_STR:
            return snprintf(buf, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            return snprintf(buf, cap, "%" PRIu64, v->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return snprintf(buf, cap, "%" PRId64, v->via.i64);
        case MSGPACK_OBJECT_BOOLEAN:
            return snprintf(buf, cap, "%s", v->via.boolean ? "true" : "false");
        case MSGPACK_OBJECT_MAP: {
            cairn_str_t path;
            bool folder;
            if (!job_input_path(v, &path, &folder)) return 0;
            return snprintf(buf, cap, "%.*s", (int)path.len, path.ptr);
        }
        default:
            return snprintf(buf, cap, "%.17g", v->via.f64);
    }
}

/* The entry of map (inputs or outputs) named by n bytes at name. */
static const msgpack_object *s_named(const msgpack_object *map, const char *name,
                                     size_t n)
{
    for (uint32_t k = 0; map && k < map->via.map.size; k++) {
        const msgpack_object *key = &map->via.map.ptr[k].key;
        if (key->via.str.size == n && !memcmp(key->via.str.ptr, name, n))
            return &map->via.map.ptr[k].val;
    }
    return NULL;
}

typedef struct refs {
    const msgpack_object *inputs, *outputs;
    const char *outputs_dir; /* NULL: a stand-in */
} refs_t;

/* The value of the reference `inputs.x` or `outputs.y` (the n bytes at
 * ref) into buf: its length, or -1 when it names nothing. */
static int s_ref_value(const refs_t *r, const char *ref, size_t n, char *buf,
                       size_t cap)
{
    if (n > 7 && !memcmp(ref, "inputs.", 7)) {
        const msgpack_object *v = s_named(r->inputs, ref + 7, n - 7);
        return v ? s_input_text(v, buf, cap) : -1;
    }
    if (n > 8 && !memcmp(ref, "outputs.", 8) && s_named(r->outputs, ref + 8, n - 8))
        return snprintf(buf, cap, "%s/%.*s",
                        r->outputs_dir ? r->outputs_dir : "OUTPUTS", (int)(n - 8),
                        ref + 8);
    return -1;
}

/* The command with each ${{inputs.x}} and ${{outputs.y}} replaced. */
static int s_command(const cairn_str_t cmd, const refs_t *refs, char **out,
                     cairn_err_t *err)
{
    size_t cap = cmd.len + 1, n = 0;
    char *s = malloc(cap);
    if (!s) return cairn_err_oom(err, NULL);
    for (size_t i = 0; i < cmd.len;) {
        const char *open = memmem(cmd.ptr + i, cmd.len - i, "${{", 3);
        size_t lit = open ? (size_t)(open - cmd.ptr) - i : cmd.len - i;
        char val[JOB_PATH_MAX + PATH_MAX + 64];
        int vlen = 0;
        size_t skip = lit;
        if (open) {
            const char *close =
                memmem(open, cmd.len - (size_t)(open - cmd.ptr), "}}", 2);
            if (!close) {
                free(s);
                return s_bad(err, "command", "a ${{ is never closed by }}");
            }
            const char *ref = open + 3, *end = close;
            while (ref < end && *ref == ' ') ref++;
            while (end > ref && end[-1] == ' ') end--;
            vlen = s_ref_value(refs, ref, (size_t)(end - ref), val, sizeof val);
            if (vlen < 0) {
                free(s);
                return s_bad(err, "command",
                             "${{%.*s}} names no input or output of this job",
                             (int)(end - ref > 64 ? 64 : end - ref), ref);
            }
            if ((size_t)vlen >= sizeof val) vlen = (int)sizeof val - 1;
            skip = (size_t)(close + 2 - cmd.ptr) - i;
        }
        size_t need = n + lit + (size_t)vlen + 1;
        if (need > JOB_COMMAND_MAX + 1) {
            free(s);
            return s_bad(err, "command", "is more than %d bytes once its inputs are in",
                         JOB_COMMAND_MAX);
        }
        if (need > cap) {
            while (cap < need) cap *= 2;
            char *t = realloc(s, cap);
            if (!t) {
                free(s);
                return cairn_err_oom(err, NULL);
            }
            s = t;
        }
        memcpy(s + n, cmd.ptr + i, lit);
        n += lit;
        memcpy(s + n, val, (size_t)vlen);
        n += (size_t)vlen;
        i += skip;
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

/* A size: bytes as an integer, or "4GiB", "512MiB", "2G", "100k". */
static int s_size(const msgpack_object *o, const char *path, uint64_t *out,
                  cairn_err_t *err)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size > 32)
        return s_bad(err, path, "must be bytes, or a size such as 4GiB or 512MiB");
    char buf[40];
    snprintf(buf, sizeof buf, "%.*s", (int)o->via.str.size, o->via.str.ptr);
    char *end;
    double v = strtod(buf, &end);
    static const struct {
        const char *suffix;
        double mul;
    } units[] = {{"", 1},
                 {"k", 1e3},
                 {"K", 1e3},
                 {"KB", 1e3},
                 {"KiB", 1024.0},
                 {"M", 1e6},
                 {"MB", 1e6},
                 {"MiB", 1048576.0},
                 {"G", 1e9},
                 {"GB", 1e9},
                 {"Gi", 1073741824.0},
                 {"GiB", 1073741824.0},
                 {"T", 1e12},
                 {"TiB", 1099511627776.0}};
    for (size_t i = 0; end != buf && i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix) && isfinite(v) && v >= 0 &&
            v * units[i].mul < 1.8e19) {
            *out = (uint64_t)(v * units[i].mul);
            return 0;
        }
    return s_bad(err, path, "'%s' is not a size such as 4GiB or 512MiB", buf);
}

static int s_resources(const msgpack_object *map, job_spec_t *s, cairn_err_t *err)
{
    const msgpack_object *r = cairn_obj_get(map, "resources");
    if (!r || r->type == MSGPACK_OBJECT_NIL) return 0;
    if (r->type != MSGPACK_OBJECT_MAP) return s_bad(err, "resources", "must be a map");
    for (uint32_t i = 0; i < r->via.map.size; i++) {
        const msgpack_object *k = &r->via.map.ptr[i].key, *v = &r->via.map.ptr[i].val;
        if (s_key_is(k, "cpus")) {
            bool num = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                       v->type == MSGPACK_OBJECT_FLOAT32 ||
                       v->type == MSGPACK_OBJECT_FLOAT64;
            double c = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (double)v->via.u64
                                                                  : v->via.f64;
            if (!num || !(c > 0 && c <= 4096))
                return s_bad(err, "resources.cpus",
                             "must be a number above 0 (at most 4096)");
            s->cpus = c;
        } else if (s_key_is(k, "memory")) {
            if (s_size(v, "resources.memory", &s->memory, err) != 0) return -1;
        } else if (s_key_is(k, "instance_count")) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != 1)
                return s_bad(err, "resources.instance_count",
                             "must be 1: the local compute is one machine (use "
                             "distribution.process_count_per_instance for more "
                             "processes)");
        } else if (s_key_is(k, "gpus")) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > 64)
                return s_bad(err, "resources.gpus",
                             "must be an integer >= 0 (at most 64)");
            s->gpus = v->via.u64;
        } else {
            return s_bad(
                err, "resources",
                "takes cpus, memory, gpus and instance_count; '%.*s' is none of them",
                k->type == MSGPACK_OBJECT_STR
                    ? (int)(k->via.str.size > 64 ? 64 : k->via.str.size)
                    : 1,
                k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : "?");
        }
    }
    return 0;
}

static int s_limits(const msgpack_object *map, job_spec_t *s, cairn_err_t *err)
{
    const msgpack_object *l = cairn_obj_get(map, "limits");
    if (!l || l->type == MSGPACK_OBJECT_NIL) return 0;
    if (l->type != MSGPACK_OBJECT_MAP) return s_bad(err, "limits", "must be a map");
    for (uint32_t i = 0; i < l->via.map.size; i++) {
        const msgpack_object *k = &l->via.map.ptr[i].key, *v = &l->via.map.ptr[i].val;
        if (!s_key_is(k, "timeout"))
            return s_bad(err, "limits", "takes timeout (seconds) only");
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > JOB_TIMEOUT_MAX)
            return s_bad(err, "limits.timeout",
                         "must be whole seconds, 0 (none) to %d (30 days)",
                         JOB_TIMEOUT_MAX);
        s->timeout_s = v->via.u64;
    }
    return 0;
}

/* Whether the n bytes at v name a variable: [A-Za-z_][A-Za-z0-9_]*. */
static bool s_var_name(const char *v, size_t n)
{
    bool ok = n > 0 && (isalpha((unsigned char)v[0]) || v[0] == '_');
    for (size_t j = 1; ok && j < n; j++)
        ok = isalnum((unsigned char)v[j]) || v[j] == '_';
    return ok;
}

/* environment: a reference to a registered environment. */
static int s_environment(const msgpack_object *map, job_spec_t *s, cairn_err_t *err)
{
    const msgpack_object *e = cairn_obj_get(map, "environment");
    if (!e || e->type == MSGPACK_OBJECT_NIL) return 0;
    if (e->type == MSGPACK_OBJECT_MAP)
        return s_bad(err, "environment",
                     "give a registered environment, env:NAME:VERSION (inline "
                     "environments are not run by this Cairn)");
    if (e->type != MSGPACK_OBJECT_STR || e->via.str.size > JOB_TEXT_MAX ||
        e->via.str.size <= 4 || memcmp(e->via.str.ptr, "env:", 4) != 0 ||
        memchr(e->via.str.ptr, '\0', e->via.str.size))
        return s_bad(err, "environment",
                     "must be env:NAME:VERSION or env:NAME@ALIAS (at most %d bytes)",
                     JOB_TEXT_MAX);
    s->environment = (cairn_str_t){e->via.str.ptr, e->via.str.size};
    return 0;
}

void job_secret_at(const job_spec_t *s, uint32_t i, cairn_str_t *var, cairn_str_t *name)
{
    const msgpack_object *o = s->secrets;
    const msgpack_object *k =
        o->type == MSGPACK_OBJECT_MAP ? &o->via.map.ptr[i].key : &o->via.array.ptr[i];
    const msgpack_object *v =
        o->type == MSGPACK_OBJECT_MAP ? &o->via.map.ptr[i].val : k;
    *var = (cairn_str_t){k->via.str.ptr, k->via.str.size};
    *name = (cairn_str_t){v->via.str.ptr, v->via.str.size};
}

/* secrets: [NAME] (each set as the variable NAME) or {VAR: NAME}. */
static int s_secrets(const msgpack_object *map, job_spec_t *s, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(map, "secrets");
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    bool is_map = o->type == MSGPACK_OBJECT_MAP;
    if (!is_map && o->type != MSGPACK_OBJECT_ARRAY)
        return s_bad(
            err, "secrets",
            "must be a list of secret names or a map of variable to secret name");
    uint32_t n = is_map ? o->via.map.size : o->via.array.size;
    if (n > JOB_SECRETS_MAX)
        return s_bad(err, "secrets", "has %u entries; at most %d", n, JOB_SECRETS_MAX);
    s->secrets = o;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k =
            is_map ? &o->via.map.ptr[i].key : &o->via.array.ptr[i];
        const msgpack_object *v = is_map ? &o->via.map.ptr[i].val : k;
        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR)
            return s_bad(err, "secrets", "its names must be strings");
        char path[JOB_TEXT_MAX + 16];
        snprintf(path, sizeof path, "secrets.%.*s",
                 (int)(k->via.str.size > 64 ? 64 : k->via.str.size), k->via.str.ptr);
        if (!s_var_name(k->via.str.ptr, k->via.str.size) ||
            k->via.str.size > JOB_TEXT_MAX)
            return s_bad(err, path,
                         is_map
                             ? "is not a variable name"
                             : "is not a variable name: give a map {VAR: secret-name}");
        if ((k->via.str.size > 6 && !memcmp(k->via.str.ptr, "CAIRN_", 6)) ||
            s_key_is(k, "CUDA_VISIBLE_DEVICES") || s_key_is(k, "PATH"))
            return s_bad(err, path, "is a variable Cairn sets itself");
        if (v->via.str.size == 0 || v->via.str.size > JOB_SECRET_NAME_MAX ||
            memchr(v->via.str.ptr, '\0', v->via.str.size) ||
            memchr(v->via.str.ptr, '\n', v->via.str.size))
            return s_bad(err, path, "names no secret (1 to %d bytes, one line)",
                         JOB_SECRET_NAME_MAX);
    }
    return 0;
}

/* distribution: {type: mpi, process_count_per_instance: N}. */
static int s_distribution(const msgpack_object *map, job_spec_t *s, cairn_err_t *err)
{
    const msgpack_object *d = cairn_obj_get(map, "distribution");
    if (!d || d->type == MSGPACK_OBJECT_NIL) return 0;
    if (d->type != MSGPACK_OBJECT_MAP)
        return s_bad(err, "distribution", "must be a map {type: mpi, ...}");
    const msgpack_object *t = cairn_obj_get(d, "type");
    if (!t || !cairn_obj_is_str(t, "mpi"))
        return s_bad(err, "distribution.type",
                     "must be mpi (Open MPI's mpirun; pytorch and tensorflow are not "
                     "run by this Cairn)");
    s->mpi_ranks = 1;
    for (uint32_t i = 0; i < d->via.map.size; i++) {
        const msgpack_object *k = &d->via.map.ptr[i].key, *v = &d->via.map.ptr[i].val;
        if (s_key_is(k, "type")) continue;
        if (!s_key_is(k, "process_count_per_instance"))
            return s_bad(err, "distribution",
                         "takes type and process_count_per_instance only");
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 < 1 ||
            v->via.u64 > JOB_MPI_RANKS_MAX)
            return s_bad(err, "distribution.process_count_per_instance",
                         "must be an integer from 1 to %d", JOB_MPI_RANKS_MAX);
        s->mpi_ranks = v->via.u64;
    }
    return 0;
}

/* Keys of Azure's command job that this Cairn does not run yet, and keys
 * it takes; anything else is refused as a likely typo. */
static const char *const s_not_yet[] = {"identity", "services", "queue_settings", NULL};
static const char *const s_known[] = {"$schema",
                                      "type",
                                      "name",
                                      "display_name",
                                      "experiment_name",
                                      "description",
                                      "tags",
                                      "command",
                                      "environment_variables",
                                      "inputs",
                                      "outputs",
                                      "compute",
                                      "resources",
                                      "limits",
                                      "priority",
                                      "retries",
                                      "distribution",
                                      "environment",
                                      "secrets",
                                      "code",
                                      NULL};

/* Keys of a command job that a train job (the built-in trainer) has no
 * use for: refused by name rather than ignored. */
static const char *const s_not_train[] = {"command", "inputs",       "outputs",
                                          "code",    "distribution", NULL};

static int s_keys(const msgpack_object *map, bool train, cairn_err_t *err)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return s_bad(err, "spec", "keys must be strings");
        for (const char *const *n = s_not_train; train && *n; n++)
            if (s_key_is(k, *n))
                return s_bad(
                    err, *n,
                    "not a field of a train job (it runs the built-in trainer: "
                    "data, target, task, ...)");
        if (train && trainer_config_key(k->via.str.ptr, k->via.str.size)) continue;
        bool known = false;
        for (const char *const *n = s_known; *n && !known; n++) known = s_key_is(k, *n);
        if (known) continue;
        int len = (int)(k->via.str.size > 64 ? 64 : k->via.str.size);
        for (const char *const *n = s_not_yet; *n; n++)
            if (s_key_is(k, *n))
                return s_bad(err, *n,
                             "not run by this Cairn yet; remove it to run the job "
                             "without it");
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%.*s: not a field of a %s job", len, k->via.str.ptr,
                             train ? "train" : "command");
    }
    return 0;
}

bool job_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > JOB_NAME_MAX || !isalnum((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

static int s_head(const msgpack_object *spec, job_spec_t *s, cairn_err_t *err)
{
    cairn_str_t type = {"command", 7};
    if (s_text(spec, "type", "type", 32, &type, err) < 0) return -1;
    s->train = cairn_str_eq(type, "train");
    if (!s->train && !cairn_str_eq(type, "command"))
        return s_bad(err, "type", "must be command or train");
    if (s_text(spec, "name", "name", JOB_NAME_MAX, &s->name, err) < 0) return -1;
    if (s->name.len && !job_name_ok(s->name.ptr, s->name.len))
        return s_bad(
            err, "name",
            "must be 1 to %d letters, digits, _ or -, starting with a letter or "
            "digit",
            JOB_NAME_MAX);
    s->compute = (cairn_str_t){"local", 5};
    if (s_text(spec, "code", "code", JOB_PATH_MAX, &s->code, err) < 0) return -1;
    if (s->code.len && memchr(s->code.ptr, '\0', s->code.len))
        return s_bad(err, "code", "holds a NUL byte");
    if (s_text(spec, "display_name", "display_name", JOB_TEXT_MAX, &s->display_name,
               err) < 0 ||
        s_text(spec, "experiment_name", "experiment_name", JOB_TEXT_MAX,
               &s->experiment_name, err) < 0 ||
        s_text(spec, "description", "description", JOB_DESCRIPTION_MAX, &s->description,
               err) < 0 ||
        s_text(spec, "compute", "compute", JOB_TEXT_MAX, &s->compute, err) < 0)
        return -1;
    if (s->compute.len > 8 && !memcmp(s->compute.ptr, "azureml:", 8))
        s->compute = (cairn_str_t){s->compute.ptr + 8, s->compute.len - 8};
    if (!job_name_ok(s->compute.ptr, s->compute.len))
        return s_bad(
            err, "compute",
            "'%.*s' names no compute target (local, or one create_compute made)",
            (int)(s->compute.len > 64 ? 64 : s->compute.len), s->compute.ptr);
    const msgpack_object *rt = cairn_obj_get(spec, "retries");
    if (rt && rt->type != MSGPACK_OBJECT_NIL) {
        if (rt->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            rt->via.u64 > JOB_RETRIES_MAX)
            return s_bad(err, "retries", "must be an integer from 0 to %d",
                         JOB_RETRIES_MAX);
        s->retries = rt->via.u64;
    }
    const msgpack_object *p = cairn_obj_get(spec, "priority");
    if (p && p->type != MSGPACK_OBJECT_NIL) {
        bool isint = p->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                     p->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (!isint || p->via.i64 < -JOB_PRIORITY_MAX || p->via.i64 > JOB_PRIORITY_MAX)
            return s_bad(err, "priority", "must be an integer from -%d to %d",
                         JOB_PRIORITY_MAX, JOB_PRIORITY_MAX);
        s->priority = p->via.i64;
    }
    return 0;
}

/* A train job: its trainer keys checked by the trainer's own reader; its
 * command is the trainer's, made at launch (a stand-in here). */
static int s_train(const msgpack_object *spec, job_spec_t *out, cairn_err_t *err)
{
    trainer_config_t *cfg = malloc(sizeof *cfg);
    if (!cfg) return cairn_err_oom(err, NULL);
    int rc = trainer_config_read(spec, cfg, err);
    free(cfg);
    if (rc != 0) return -1;
    if (!(out->command = strdup("cairn-train"))) return cairn_err_oom(err, NULL);
    return 0;
}

int job_spec_read(const msgpack_object *spec, const char *outputs_dir, job_spec_t *out,
                  cairn_err_t *err)
{
    *out = (job_spec_t){.map = spec};
    if (!spec || spec->type != MSGPACK_OBJECT_MAP)
        return s_bad(err, "spec", "must be a map (a command job's YAML)");
    cairn_str_t cmd = {0};
    if (s_head(spec, out, err) != 0 || s_keys(spec, out->train, err) != 0 ||
        s_str_map(spec, "tags", false, &out->tags, err) < 0 ||
        s_str_map(spec, "environment_variables", true, &out->env, err) < 0 ||
        s_inputs(spec, &out->inputs, err) < 0 ||
        s_outputs(spec, &out->outputs, err) < 0 || s_resources(spec, out, err) != 0 ||
        s_limits(spec, out, err) != 0 || s_distribution(spec, out, err) != 0 ||
        s_environment(spec, out, err) != 0 || s_secrets(spec, out, err) != 0)
        return -1;
    if (out->train) return s_train(spec, out, err);
    int rc = s_text(spec, "command", "command", JOB_COMMAND_MAX, &cmd, err);
    if (rc < 0) return -1;
    if (rc == 1 || cmd.len == 0) return s_bad(err, "command", "is required");
    if (memchr(cmd.ptr, '\0', cmd.len))
        return s_bad(err, "command", "holds a NUL byte");
    refs_t refs = {out->inputs, out->outputs, outputs_dir};
    return s_command(cmd, &refs, &out->command, err);
}

void job_spec_free(job_spec_t *s)
{
    free(s->command);
    s->command = NULL;
}
