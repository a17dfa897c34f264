/* Loading a model (model.h): the file or folder, its format, the learner's
 * parameters and objective; the trees are flattened by trees.c. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "model_int.h"
#include "yamlmp.h"

static int s_bad(cairn_err_t *err, const char *fmt, const char *what)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, NULL, fmt, what);
}

/* ---- the learner's fields ---------------------------------------------------- */

static const json_t *s_obj(const json_t *o, const char *key, cairn_err_t *err)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_object(v))
        s_bad(err, "the model is malformed: it lacks the object %s", key);
    return json_is_object(v) ? v : NULL;
}

/* A parameter XGBoost stores as a string ("30", "5E-1"), or a number. */
static int s_param(const json_t *o, const char *key, bool need, double *v,
                   cairn_err_t *err)
{
    const json_t *j = json_object_get(o, key);
    if (!j && !need) return 0;
    if (json_is_number(j)) {
        *v = json_number_value(j);
        return 0;
    }
    const char *s = json_string_value(j);
    char *end = NULL;
    if (s) {
        errno = 0;
        *v = strtod(s, &end);
    }
    if (!s || end == s || *end || errno || !isfinite(*v))
        return s_bad(err, "the model's parameter %s is missing or not a number", key);
    return 0;
}

static int s_count(const json_t *o, const char *key, double max, size_t *n,
                   cairn_err_t *err)
{
    double v = 0;
    if (s_param(o, key, true, &v, err) != 0) return -1;
    if (v < 0 || v != floor(v))
        return s_bad(err, "the model's parameter %s is not a count", key);
    if (v > max)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "the model's %s (%.0f) is over the limit of %.0f", key, v,
                             max);
    *n = (size_t)v;
    return 0;
}

/* The objectives we score, their transforms and how XGBoost turns the
 * stored base_score into a margin (ObjFunction::ProbToMargin). */
typedef enum { SM_BASE_AS_IS, SM_BASE_LOGIT, SM_BASE_LOG } sm_base_t;
static const struct {
    const char *name;
    sm_tf_t tf;
    sm_base_t base;
} s_objectives[] = {
    {"binary:logistic", SM_TF_SIGMOID, SM_BASE_LOGIT},
    {"binary:logitraw", SM_TF_IDENTITY, SM_BASE_AS_IS}, /* verified: as is */
    {"reg:logistic", SM_TF_SIGMOID, SM_BASE_LOGIT},
    {"reg:squarederror", SM_TF_IDENTITY, SM_BASE_AS_IS},
    {"reg:absoluteerror", SM_TF_IDENTITY, SM_BASE_AS_IS},
    {"reg:pseudohubererror", SM_TF_IDENTITY, SM_BASE_AS_IS},
    {"count:poisson", SM_TF_EXP, SM_BASE_LOG},
    {"reg:gamma", SM_TF_EXP, SM_BASE_LOG},
    {"reg:tweedie", SM_TF_EXP, SM_BASE_LOG},
    {"multi:softprob", SM_TF_SOFTPROB, SM_BASE_AS_IS},
    {"multi:softmax", SM_TF_SOFTMAX, SM_BASE_AS_IS},
};

static int s_objective(scorer_model_t *m, const json_t *learner, float base,
                       cairn_err_t *err)
{
    const json_t *obj = s_obj(learner, "objective", err);
    const char *name = obj ? json_string_value(json_object_get(obj, "name")) : NULL;
    if (!obj) return -1;
    if (!name) return s_bad(err, "the model's objective has no %s", "name");
    size_t n = sizeof s_objectives / sizeof s_objectives[0];
    size_t i = 0;
    while (i < n && strcmp(s_objectives[i].name, name) != 0) i++;
    if (i == n)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, NULL,
                             "the model's objective %.64s is not supported (the scorer "
                             "takes binary:*, reg:*, count:poisson and multi:soft*)",
                             name);
    snprintf(m->objective, sizeof m->objective, "%s", name);
    m->tf = s_objectives[i].tf;
    /* in float, as XGBoost computes it */
    if (s_objectives[i].base == SM_BASE_LOGIT) {
        if (!(base > 0.0f && base < 1.0f))
            return s_bad(err, "the model's base_score is outside (0, 1) for %s", name);
        m->base_margin = -logf(1.0f / base - 1.0f);
    } else if (s_objectives[i].base == SM_BASE_LOG) {
        if (!(base > 0.0f))
            return s_bad(err, "the model's base_score is not positive for %s", name);
        m->base_margin = logf(base);
    } else {
        m->base_margin = base;
    }
    return 0;
}

/* learner.feature_names / feature_types: absent, empty, or one per feature. */
static int s_names(const json_t *learner, const char *key, size_t nf, char ***out,
                   cairn_err_t *err)
{
    const json_t *a = json_object_get(learner, key);
    if (!a || (json_is_array(a) && json_array_size(a) == 0)) return 0;
    if (!json_is_array(a) || json_array_size(a) != nf)
        return s_bad(err, "the model's %s are not one string per feature", key);
    char **v = calloc(nf, sizeof *v);
    if (!v) return cairn_err_oom(err, "loading a model's feature names");
    *out = v;
    for (size_t i = 0; i < nf; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s) return s_bad(err, "the model's %s are not one string per feature", key);
        v[i] = strdup(s);
        if (!v[i]) return cairn_err_oom(err, "loading a model's feature names");
    }
    return 0;
}

/* ---- the booster ----------------------------------------------------------------- */

/* gbtree's model, or dart's (its gbtree and weight_drop). */
static int s_booster(scorer_model_t *m, const json_t *gb, const json_t **model,
                     const json_t **weights, cairn_err_t *err)
{
    const char *name = json_string_value(json_object_get(gb, "name"));
    if (!name) return s_bad(err, "the model's gradient_booster has no %s", "name");
    snprintf(m->booster, sizeof m->booster, "%.15s", name);
    *weights = NULL;
    if (strcmp(name, "dart") == 0) {
        *weights = json_object_get(gb, "weight_drop");
        if (!json_is_array(*weights))
            return s_bad(err, "the dart model has no %s", "weight_drop");
        gb = s_obj(gb, "gbtree", err);
        if (!gb) return -1;
    } else if (strcmp(name, "gbtree") != 0) {
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, NULL,
            "the model's booster %.32s is not supported (gbtree or dart)", name);
    }
    *model = s_obj(gb, "model", err);
    return *model ? 0 : -1;
}

static int s_trees(scorer_model_t *m, const json_t *model, const json_t *weights,
                   cairn_err_t *err)
{
    const json_t *trees = json_object_get(model, "trees");
    const json_t *info = json_object_get(model, "tree_info");
    if (!json_is_array(trees) || !json_is_array(info))
        return s_bad(err, "the model is malformed: it lacks %s", "trees or tree_info");
    size_t n = json_array_size(trees);
    if (n > SCORER_MAX_TREES)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "the model holds %zu trees, over the limit of %d", n,
                             SCORER_MAX_TREES);
    if (json_array_size(info) != n || (weights && json_array_size(weights) != n))
        return s_bad(err, "the model's %s do not match its trees in number",
                     weights ? "tree_info or weight_drop" : "tree_info");
    m->roots = calloc(n ? n : 1, sizeof *m->roots);
    m->groups = calloc(n ? n : 1, sizeof *m->groups);
    m->depths = calloc(n ? n : 1, sizeof *m->depths);
    if (!m->roots || !m->groups || !m->depths)
        return cairn_err_oom(err, "loading a model's trees");
    for (size_t t = 0; t < n; t++) {
        const json_t *g = json_array_get(info, t);
        json_int_t gi = json_is_integer(g) ? json_integer_value(g) : -1;
        if (gi < 0 || (size_t)gi >= m->n_groups)
            return s_bad(err, "the model's %s names a group it does not have",
                         "tree_info");
        float w = 1.0f;
        if (weights) {
            const json_t *wj = json_array_get(weights, t);
            if (!json_is_number(wj))
                return s_bad(err, "the model's %s is not numbers", "weight_drop");
            w = (float)json_number_value(wj);
        }
        if (scorer_tree_add(m, json_array_get(trees, t), t, (uint32_t)gi, w, err) != 0)
            return -1;
        m->n_trees = t + 1;
    }
    return 0;
}

static int s_learner(scorer_model_t *m, const json_t *root, cairn_err_t *err)
{
    const json_t *learner = s_obj(root, "learner", err);
    const json_t *mp = learner ? s_obj(learner, "learner_model_param", err) : NULL;
    const json_t *gb = mp ? s_obj(learner, "gradient_booster", err) : NULL;
    if (!gb) return -1;
    size_t nclass = 0, ntarget = 1;
    double base = 0.5;
    if (s_count(mp, "num_feature", SCORER_MAX_FEATURES, &m->n_features, err) != 0 ||
        s_count(mp, "num_class", SCORER_MAX_CLASSES, &nclass, err) != 0 ||
        s_param(mp, "base_score", false, &base, err) != 0)
        return -1;
    if (json_object_get(mp, "num_target") &&
        s_count(mp, "num_target", SCORER_MAX_CLASSES, &ntarget, err) != 0)
        return -1;
    if (ntarget > 1)
        return s_bad(err, "the model has %s, which the scorer does not take",
                     "several targets (num_target > 1)");
    m->n_groups = nclass > 1 ? nclass : 1;
    if (s_objective(m, learner, (float)base, err) != 0) return -1;
    bool multi = m->tf == SM_TF_SOFTPROB || m->tf == SM_TF_SOFTMAX;
    if (multi != (nclass > 1))
        return s_bad(err, "the model's num_class does not fit its objective %s",
                     m->objective);
    m->n_outputs = m->tf == SM_TF_SOFTPROB ? m->n_groups : 1;
    if (s_names(learner, "feature_names", m->n_features, &m->feature_names, err) != 0 ||
        s_names(learner, "feature_types", m->n_features, &m->feature_types, err) != 0)
        return -1;
    const json_t *model = NULL, *weights = NULL;
    if (s_booster(m, gb, &model, &weights, err) != 0) return -1;
    return s_trees(m, model, weights, err);
}

/* ---- formats -----------------------------------------------------------------------
 */

/* JSON begins with '{' (after white space); UBJSON with '{' and then a
 * key's length marker, never white space or a quote. */
static bool s_is_json(const unsigned char *p, size_t len)
{
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", p[i]) && p[i]) i++;
    if (i > 0) return true;
    if (len < 2 || p[0] != '{') return false;
    return strchr(" \t\r\n\"}", p[1]) && p[1];
}

/* XGBoost writes NaN (a categorical split's condition) and may write
 * Infinity, which JSON has not: outside strings they become null, which
 * only a categorical split may hold. NULL (no copy needed) when none. */
static char *s_unnan(const char *p, size_t len, size_t *outlen, cairn_err_t *err)
{
    if (!memmem(p, len, "NaN", 3) && !memmem(p, len, "Infinity", 8)) return NULL;
    char *o = malloc(len + len / 3 + 16), *q = o;
    if (!o) {
        cairn_err_oom(err, "reading a JSON model");
        return NULL;
    }
    bool in_str = false;
    for (size_t i = 0; i < len;) {
        char c = p[i];
        size_t skip = 0;
        if (in_str) {
            if (c == '\\' && i + 1 < len)
                *q++ = p[i++];
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (len - i >= 3 && memcmp(p + i, "NaN", 3) == 0) {
            skip = 3;
        } else if (len - i >= 8 && memcmp(p + i, "Infinity", 8) == 0) {
            skip = 8;
        }
        if (skip) {
            if (q > o && q[-1] == '-') q--;
            memcpy(q, "null", 4);
            q += 4;
            i += skip;
            continue;
        }
        *q++ = p[i++];
    }
    *outlen = (size_t)(q - o);
    return o;
}

static json_t *s_json(const char *p, size_t len, cairn_err_t *err)
{
    size_t n = 0;
    err->st = 0;
    char *copy = s_unnan(p, len, &n, err);
    if (!copy && err->st) return NULL;
    json_error_t je;
    json_t *root =
        json_loadb(copy ? copy : p, copy ? n : len, JSON_REJECT_DUPLICATES, &je);
    free(copy);
    if (!root)
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, NULL,
                      "the JSON model is malformed at line %d: %.200s", je.line,
                      je.text);
    return root;
}

int scorer_model_load_mem(const void *bytes, size_t len, scorer_model_t **out,
                          cairn_err_t *err)
{
    *out = NULL;
    if (len > SCORER_MAX_BYTES)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "the model is %zu bytes, over the limit of %u", len,
                             SCORER_MAX_BYTES);
    if (len == 0) return s_bad(err, "the model is %s", "empty");
    json_t *root;
    root = s_is_json(bytes, len) ? s_json(bytes, len, err)
                                 : scorer_ubj_parse(bytes, len, err);
    if (!root) return -1;
    scorer_model_t *m = calloc(1, sizeof *m);
    int rc = m ? s_learner(m, root, err) : cairn_err_oom(err, "loading a model");
    json_decref(root);
    if (rc != 0) {
        scorer_model_destroy(&m);
        return -1;
    }
    *out = m;
    return 0;
}

/* ---- files and folders -------------------------------------------------------------
 */

static int s_read_file(const char *path, unsigned char **buf, size_t *len,
                       cairn_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return cairn_err_set(
            err, e == ENOENT ? CAIRN_ST_NOT_FOUND : CAIRN_ST_BAD_REQUEST, NULL,
            "the model %s cannot be opened: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)SCORER_MAX_BYTES) {
        close(fd);
        if (!S_ISREG(st.st_mode))
            return s_bad(err, "the model %s is not a regular file", path);
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "the model %s is over the limit of %u bytes", path,
                             SCORER_MAX_BYTES);
    }
    size_t n = (size_t)st.st_size, got = 0;
    *buf = malloc(n ? n : 1);
    if (!*buf) {
        close(fd);
        return cairn_err_oom(err, "reading a model");
    }
    while (got < n) {
        ssize_t r = read(fd, *buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    if (got != n) return s_bad(err, "the model %s could not be read whole", path);
    return 0;
}

static int s_load_file(const char *path, scorer_model_t **out, cairn_err_t *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = s_read_file(path, &buf, &len, err);
    if (rc == 0) rc = scorer_model_load_mem(buf, len, out, err);
    free(buf);
    return rc;
}

/* A key's string value in a msgpack map; NULL when absent or not a string. */
static const msgpack_object *s_mp_get(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0)
            return &kv->val;
    }
    return NULL;
}

/* MLmodel's flavors.xgboost.data: the model file's name in the folder. */
static int s_mlmodel_data(const char *mlmodel, char *name, size_t cap, cairn_err_t *err)
{
    unsigned char *text = NULL;
    size_t len = 0;
    if (s_read_file(mlmodel, &text, &len, err) != 0) {
        free(text);
        return -1;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = cairn_yaml_to_msgpack((const char *)text, len, &sb, err);
    free(text);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (rc == 0 &&
        msgpack_unpack_next(&u, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS)
        rc = s_bad(err, "the MLmodel file %s cannot be read", mlmodel);
    const msgpack_object *fl = rc == 0 ? s_mp_get(&u.data, "flavors") : NULL;
    const msgpack_object *xg = fl ? s_mp_get(fl, "xgboost") : NULL;
    const msgpack_object *data = xg ? s_mp_get(xg, "data") : NULL;
    if (rc == 0 && !xg)
        rc = s_bad(err, "the MLmodel file %s has no xgboost flavor", mlmodel);
    else if (rc == 0 && (!data || data->type != MSGPACK_OBJECT_STR ||
                         data->via.str.size == 0 || data->via.str.size >= cap ||
                         memchr(data->via.str.ptr, '/', data->via.str.size) ||
                         memchr(data->via.str.ptr, '\0', data->via.str.size) ||
                         (data->via.str.size <= 2 && data->via.str.ptr[0] == '.')))
        rc = s_bad(err,
                   "the MLmodel file %s names no model file in its folder "
                   "(flavors.xgboost.data)",
                   mlmodel);
    if (rc == 0) {
        memcpy(name, data->via.str.ptr, data->via.str.size);
        name[data->via.str.size] = '\0';
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Whether dir holds one regular file and nothing else (a model registered
 * from a single file keeps its name: bc.json, churn.ubj); its name into
 * name. */
static bool s_only_file(const char *dir, char *name, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    int entries = 0;
    bool regular = false;
    struct dirent *e;
    while ((e = readdir(d)) && entries < 2) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        entries++;
        char p[4200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        regular = stat(p, &st) == 0 && S_ISREG(st.st_mode) && strlen(e->d_name) < cap;
        if (regular) snprintf(name, cap, "%s", e->d_name);
    }
    closedir(d);
    return entries == 1 && regular;
}

/* A folder without MLmodel: exactly one of the model file names, or a
 * single file of any name. */
static int s_only_model(const char *dir, char *name, size_t cap, cairn_err_t *err)
{
    static const char *const names[] = {"model.json", "model.ubj", "model.xgb"};
    int found = 0;
    for (size_t i = 0; i < 3; i++) {
        char p[4200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            snprintf(name, cap, "%s", names[i]);
            found++;
        }
    }
    if (found == 1) return 0;
    if (found == 0 && s_only_file(dir, name, cap)) return 0;
    return s_bad(err,
                 found ? "the folder %s holds more than one model file"
                       : "the folder %s holds no MLmodel, no model.json, model.ubj or "
                         "model.xgb, and not one file alone",
                 dir);
}

int scorer_model_load(const char *path, scorer_model_t **out, cairn_err_t *err)
{
    *out = NULL;
    struct stat st;
    if (!path || strlen(path) > 4000)
        return s_bad(err, "the model's path is %s", "missing or too long");
    if (stat(path, &st) != 0)
        return cairn_err_set(
            err, errno == ENOENT ? CAIRN_ST_NOT_FOUND : CAIRN_ST_BAD_REQUEST, NULL,
            "the model %s cannot be found: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return s_load_file(path, out, err);
    char p[4400], name[256];
    snprintf(p, sizeof p, "%s/MLmodel", path);
    int rc = access(p, F_OK) == 0 ? s_mlmodel_data(p, name, sizeof name, err)
                                  : s_only_model(path, name, sizeof name, err);
    if (rc != 0) return -1;
    snprintf(p, sizeof p, "%s/%s", path, name);
    return s_load_file(p, out, err);
}

void scorer_model_destroy(scorer_model_t **self_p)
{
    if (!self_p || !*self_p) return;
    scorer_model_t *m = *self_p;
    for (size_t i = 0; i < m->n_features; i++) {
        if (m->feature_names) free(m->feature_names[i]);
        if (m->feature_types) free(m->feature_types[i]);
    }
    free(m->feature_names);
    free(m->feature_types);
    free(m->nodes);
    free(m->roots);
    free(m->groups);
    free(m->depths);
    free(m->cats);
    free(m);
    *self_p = NULL;
}

/* ---- accessors
 * ----------------------------------------------------------------------- */

size_t scorer_model_features(const scorer_model_t *m)
{
    return m->n_features;
}
size_t scorer_model_outputs(const scorer_model_t *m)
{
    return m->n_outputs;
}
size_t scorer_model_groups(const scorer_model_t *m)
{
    return m->n_groups;
}
size_t scorer_model_trees(const scorer_model_t *m)
{
    return m->n_trees;
}
size_t scorer_model_nodes(const scorer_model_t *m)
{
    return m->n_nodes;
}
const char *scorer_model_objective(const scorer_model_t *m)
{
    return m->objective;
}
const char *scorer_model_booster(const scorer_model_t *m)
{
    return m->booster;
}

const char *scorer_model_feature_name(const scorer_model_t *m, size_t i)
{
    return m->feature_names && i < m->n_features ? m->feature_names[i] : NULL;
}

const char *scorer_model_feature_type(const scorer_model_t *m, size_t i)
{
    return m->feature_types && i < m->n_features ? m->feature_types[i] : NULL;
}
