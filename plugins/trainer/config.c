/* A train job's trainer keys, read and checked (config.h). */
#define _GNU_SOURCE
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"

static const char *const s_keys[] = {
    "data",       "target", "task",           "algorithm", "hyperparameters",
    "validation", "seed",   "register_model",
};

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

bool trainer_config_key(const char *k, size_t n)
{
    for (size_t i = 0; i < sizeof s_keys / sizeof *s_keys; i++)
        if (strlen(s_keys[i]) == n && memcmp(s_keys[i], k, n) == 0) return true;
    return false;
}

const char *trainer_task_name(trainer_task_t t)
{
    return t == TRAINER_REGRESSION ? "regression" : "classification";
}

const char *trainer_algo_name(trainer_algo_t a)
{
    return a == TRAINER_LINEAR ? "linear" : "xgboost";
}

const char *trainer_config_hparam(const trainer_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_hp; i++)
        if (strcmp(c->hp[i].name, name) == 0) return c->hp[i].value;
    return NULL;
}

/* ---- the hyperparameter table -------------------------------------------- */

typedef enum { HP_INT, HP_NUM, HP_BOOL, HP_ENUM, HP_METRIC } hp_kind_t;

/* lo/hi bound a number; lo_open makes lo itself refused (> lo, not >=). */
typedef struct hp_def {
    const char *name, *alias; /* alias: another name for the same one */
    trainer_algo_t algo;
    hp_kind_t kind;
    double lo, hi;
    bool lo_open;
    const char *choices; /* HP_ENUM: space-separated */
} hp_def_t;

#define BIG 1e300
static const hp_def_t s_hp[] = {
    {"eta", "learning_rate", TRAINER_XGBOOST, HP_NUM, 0, BIG, false, NULL},
    {"max_depth", NULL, TRAINER_XGBOOST, HP_INT, 0, 64, false, NULL},
    {"min_child_weight", NULL, TRAINER_XGBOOST, HP_NUM, 0, BIG, false, NULL},
    {"subsample", NULL, TRAINER_XGBOOST, HP_NUM, 0, 1, true, NULL},
    {"colsample_bytree", NULL, TRAINER_XGBOOST, HP_NUM, 0, 1, true, NULL},
    {"colsample_bylevel", NULL, TRAINER_XGBOOST, HP_NUM, 0, 1, true, NULL},
    {"colsample_bynode", NULL, TRAINER_XGBOOST, HP_NUM, 0, 1, true, NULL},
    {"lambda", "reg_lambda", TRAINER_XGBOOST, HP_NUM, 0, BIG, false, NULL},
    {"alpha", "reg_alpha", TRAINER_XGBOOST, HP_NUM, 0, BIG, false, NULL},
    {"gamma", "min_split_loss", TRAINER_XGBOOST, HP_NUM, 0, BIG, false, NULL},
    {"max_delta_step", NULL, TRAINER_XGBOOST, HP_NUM, 0, BIG, false, NULL},
    {"scale_pos_weight", NULL, TRAINER_XGBOOST, HP_NUM, 0, BIG, true, NULL},
    {"base_score", NULL, TRAINER_XGBOOST, HP_NUM, -BIG, BIG, false, NULL},
    {"max_leaves", NULL, TRAINER_XGBOOST, HP_INT, 0, 1 << 20, false, NULL},
    {"max_bin", NULL, TRAINER_XGBOOST, HP_INT, 2, 65536, false, NULL},
    {"max_cat_to_onehot", NULL, TRAINER_XGBOOST, HP_INT, 1, 65536, false, NULL},
    {"num_parallel_tree", NULL, TRAINER_XGBOOST, HP_INT, 1, 1000, false, NULL},
    {"tree_method", NULL, TRAINER_XGBOOST, HP_ENUM, 0, 0, false,
     "hist approx exact auto"},
    {"grow_policy", NULL, TRAINER_XGBOOST, HP_ENUM, 0, 0, false, "depthwise lossguide"},
    {"objective", NULL, TRAINER_XGBOOST, HP_ENUM, 0, 0, false,
     "binary:logistic binary:logitraw binary:hinge multi:softprob multi:softmax "
     "reg:squarederror reg:squaredlogerror reg:pseudohubererror reg:absoluteerror "
     "reg:gamma reg:tweedie count:poisson"},
    {"eval_metric", NULL, TRAINER_XGBOOST, HP_METRIC, 0, 0, false,
     "rmse rmsle mae mape mphe logloss error merror mlogloss auc aucpr"},
    {"num_boost_round", "n_estimators", TRAINER_XGBOOST, HP_INT, 1, TRAINER_ROUNDS_MAX,
     false, NULL},
    {"early_stopping_rounds", NULL, TRAINER_XGBOOST, HP_INT, 1, TRAINER_ROUNDS_MAX,
     false, NULL},
    {"nthread", "n_jobs", TRAINER_XGBOOST, HP_INT, 0, 1024, false, NULL},
    {"enable_categorical", NULL, TRAINER_XGBOOST, HP_BOOL, 0, 0, false, NULL},
    {"C", NULL, TRAINER_LINEAR, HP_NUM, 0, BIG, true, NULL},
    {"alpha", NULL, TRAINER_LINEAR, HP_NUM, 0, BIG, false, NULL},
    {"max_iter", NULL, TRAINER_LINEAR, HP_INT, 1, 10000, false, NULL},
    {"tol", NULL, TRAINER_LINEAR, HP_NUM, 0, 1, true, NULL},
};

static bool s_str_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static const hp_def_t *s_hp_find(trainer_algo_t algo, const msgpack_object *k)
{
    for (size_t i = 0; i < sizeof s_hp / sizeof *s_hp; i++) {
        const hp_def_t *d = &s_hp[i];
        if (d->algo != algo) continue;
        if (s_str_is(k, d->name) || (d->alias && s_str_is(k, d->alias))) return d;
    }
    return NULL;
}

/* Is w[0, n) one of the space-separated words of list? */
static bool s_in_list(const char *list, const char *w, size_t n)
{
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, w, n) == 0) return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

/* A number of any msgpack numeric type into *v; false when not a number. */
static bool s_number(const msgpack_object *o, double *v)
{
    switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            *v = (double)o->via.u64;
            return true;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            *v = (double)o->via.i64;
            return true;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            *v = o->via.f64;
            return isfinite(o->via.f64);
        default:
            return false;
    }
}

static int s_hp_number(const hp_def_t *d, const char *path, const msgpack_object *v,
                       trainer_hparam_t *h, cairn_err_t *err)
{
    double x;
    bool ok = s_number(v, &x);
    if (d->kind == HP_INT) {
        if (!ok || x != floor(x) || x < d->lo || x > d->hi)
            return s_bad(err, path, "must be an integer %.0f..%.0f", d->lo, d->hi);
        snprintf(h->value, sizeof h->value, "%.0f", x);
        return 0;
    }
    bool lo_ok = d->lo_open ? x > d->lo : x >= d->lo;
    if (!ok || !lo_ok || x > d->hi) {
        if (d->hi < BIG)
            return s_bad(err, path, "must be a number %s %g and <= %g",
                         d->lo_open ? ">" : ">=", d->lo, d->hi);
        if (d->lo > -BIG)
            return s_bad(err, path, "must be a number %s %g",
                         d->lo_open ? ">" : ">=", d->lo);
        return s_bad(err, path, "must be a finite number");
    }
    snprintf(h->value, sizeof h->value, "%.17g", x);
    return 0;
}

/* One word of an enum (or one metric name) into out. */
static int s_hp_word(const hp_def_t *d, const char *path, const msgpack_object *v,
                     char *out, size_t cap, cairn_err_t *err)
{
    if (v->type != MSGPACK_OBJECT_STR ||
        !s_in_list(d->choices, v->via.str.ptr, v->via.str.size))
        return s_bad(err, path, "must be one of: %s", d->choices);
    snprintf(out, cap, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    return 0;
}

/* eval_metric: a name or a list of at most TRAINER_METRICS_MAX names. */
static int s_hp_metrics(const hp_def_t *d, const char *path, const msgpack_object *v,
                        trainer_config_t *c, trainer_hparam_t *h, cairn_err_t *err)
{
    const msgpack_object *items = v;
    uint32_t n = 1;
    if (v->type == MSGPACK_OBJECT_ARRAY) {
        items = v->via.array.ptr;
        n = v->via.array.size;
        if (n < 1 || n > TRAINER_METRICS_MAX)
            return s_bad(err, path, "must be a metric name or a list of 1 to %d",
                         TRAINER_METRICS_MAX);
    }
    for (uint32_t i = 0; i < n; i++)
        if (s_hp_word(d, path, &items[i], c->metrics[i], sizeof c->metrics[i], err) !=
            0)
            return -1;
    c->n_metrics = n;
    /* The hyperparameter's text: the names joined by commas (for logging). */
    h->value[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strlen(h->value);
        snprintf(h->value + len, sizeof h->value - len, "%s%s", i ? "," : "",
                 c->metrics[i]);
    }
    return 0;
}

/* The trainer's own hyperparameters, kept in fields as well. */
static void s_hp_note(trainer_config_t *c, const trainer_hparam_t *h)
{
    if (strcmp(h->name, "num_boost_round") == 0) c->rounds = atoi(h->value);
    if (strcmp(h->name, "early_stopping_rounds") == 0)
        c->early_stopping = atoi(h->value);
    if (strcmp(h->name, "nthread") == 0) c->nthread = atoi(h->value);
    if (strcmp(h->name, "objective") == 0)
        snprintf(c->objective, sizeof c->objective, "%s", h->value);
    if (c->algo != TRAINER_LINEAR) return;
    if (strcmp(h->name, "C") == 0) c->linear_c = strtod(h->value, NULL);
    if (strcmp(h->name, "alpha") == 0) c->linear_alpha = strtod(h->value, NULL);
    if (strcmp(h->name, "tol") == 0) c->linear_tol = strtod(h->value, NULL);
    if (strcmp(h->name, "max_iter") == 0) c->linear_max_iter = atoi(h->value);
}

static int s_hp_one(trainer_config_t *c, const msgpack_object *k,
                    const msgpack_object *v, cairn_err_t *err)
{
    char path[96];
    if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 || k->via.str.size > 40)
        return s_bad(err, "hyperparameters", "its keys must be names of 1 to 40 bytes");
    snprintf(path, sizeof path, "hyperparameters.%.*s", (int)k->via.str.size,
             k->via.str.ptr);
    const hp_def_t *d = s_hp_find(c->algo, k);
    if (!d)
        return s_bad(err, path,
                     "is not a hyperparameter of algorithm %s (docs/TRAINER.md"
                     " lists them)",
                     trainer_algo_name(c->algo));
    if (trainer_config_hparam(c, d->name))
        return s_bad(err, path, "given twice (%s%s%s are one hyperparameter)", d->name,
                     d->alias ? " and " : "", d->alias ? d->alias : "");
    trainer_hparam_t *h = &c->hp[c->n_hp];
    snprintf(h->name, sizeof h->name, "%s", d->name);
    int rc = 0;
    switch (d->kind) {
        case HP_INT:
        case HP_NUM:
            rc = s_hp_number(d, path, v, h, err);
            break;
        case HP_BOOL:
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return s_bad(err, path, "must be true or false");
            snprintf(h->value, sizeof h->value, "%s",
                     v->via.boolean ? "true" : "false");
            if (strcmp(d->name, "enable_categorical") == 0)
                c->enable_categorical = v->via.boolean;
            break;
        case HP_ENUM:
            rc = s_hp_word(d, path, v, h->value, sizeof h->value, err);
            break;
        case HP_METRIC:
            rc = s_hp_metrics(d, path, v, c, h, err);
            break;
    }
    if (rc != 0) return -1;
    c->n_hp++;
    s_hp_note(c, h);
    return 0;
}

static int s_hparams(const msgpack_object *spec, trainer_config_t *c, cairn_err_t *err)
{
    const msgpack_object *m = cairn_obj_get(spec, "hyperparameters");
    if (!m || m->type == MSGPACK_OBJECT_NIL) return 0;
    if (m->type != MSGPACK_OBJECT_MAP)
        return s_bad(err, "hyperparameters", "must be a map");
    if (m->via.map.size > TRAINER_HP_MAX)
        return s_bad(err, "hyperparameters", "has %u entries; at most %d",
                     m->via.map.size, TRAINER_HP_MAX);
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (s_hp_one(c, &m->via.map.ptr[i].key, &m->via.map.ptr[i].val, err) != 0)
            return -1;
    return 0;
}

/* ---- the other keys -------------------------------------------------------- */

/* A string of 1 to max bytes, without control characters, into out
 * (max + 1 bytes); absent or nil: 1 (or 400 when required). */
static int s_text(const msgpack_object *spec, const char *key, bool required,
                  size_t max, char *out, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(spec, key);
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        if (required) return s_bad(err, key, "is required for a train job");
        return 1;
    }
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0)
        return s_bad(err, key, "must be a non-empty string");
    if (o->via.str.size > max)
        return s_bad(err, key, "is %u bytes; at most %zu", o->via.str.size, max);
    for (uint32_t i = 0; i < o->via.str.size; i++)
        if ((unsigned char)o->via.str.ptr[i] < 0x20 || o->via.str.ptr[i] == 0x7f)
            return s_bad(err, key, "holds a control character");
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return 0;
}

static int s_choice(const msgpack_object *spec, const char *key, const char *a,
                    const char *b, bool required, int *which, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(spec, key);
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        if (required) return s_bad(err, key, "is required for a train job");
        return 1;
    }
    if (s_str_is(o, a))
        *which = 1;
    else if (s_str_is(o, b))
        *which = 2;
    else
        return s_bad(err, key, "must be \"%s\" or \"%s\"", a, b);
    return 0;
}

static int s_validation(const msgpack_object *spec, trainer_config_t *c,
                        cairn_err_t *err)
{
    c->split = TRAINER_DEFAULT_SPLIT;
    const msgpack_object *v = cairn_obj_get(spec, "validation");
    if (!v || v->type == MSGPACK_OBJECT_NIL) return 0;
    if (v->type != MSGPACK_OBJECT_MAP)
        return s_bad(err, "validation", "must be a map with split or folds");
    if (v->via.map.size != 1)
        return s_bad(err, "validation", "must hold exactly one of split or folds");
    const msgpack_object *k = &v->via.map.ptr[0].key, *x = &v->via.map.ptr[0].val;
    double d;
    if (s_str_is(k, "split")) {
        if (!s_number(x, &d) || !(d > 0 && d < 1))
            return s_bad(err, "validation.split", "must be a number > 0 and < 1");
        c->split = d;
        return 0;
    }
    if (s_str_is(k, "folds")) {
        if (!s_number(x, &d) || d != floor(d) || d < 2 || d > TRAINER_FOLDS_MAX)
            return s_bad(err, "validation.folds", "must be an integer 2..%d",
                         TRAINER_FOLDS_MAX);
        c->folds = (int)d;
        c->split = 0;
        return 0;
    }
    return s_bad(err, "validation", "must hold split or folds (and nothing else)");
}

static int s_seed(const msgpack_object *spec, trainer_config_t *c, cairn_err_t *err)
{
    const msgpack_object *o = cairn_obj_get(spec, "seed");
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    /* XGBoost keeps its seed in an int. */
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > INT32_MAX)
        return s_bad(err, "seed", "must be an integer 0..%d", INT32_MAX);
    c->seed = o->via.u64;
    return 0;
}

/* A model name: it goes into references (NAME@ALIAS, NAME:VERSION). */
static int s_model_name(const trainer_config_t *c, cairn_err_t *err)
{
    for (const char *p = c->register_model; *p; p++)
        if (*p == '@' || *p == ':' || *p == '/')
            return s_bad(err, "register_model", "a model name may not hold @, : or /");
    return 0;
}

/* Checks across keys, once everything is read. */
static int s_cross(const trainer_config_t *c, cairn_err_t *err)
{
    if (c->early_stopping && c->folds)
        return s_bad(err, "hyperparameters.early_stopping_rounds",
                     "needs validation.split (the final model of k folds has no "
                     "held-out rows to stop on)");
    const char *o = c->objective;
    if (!*o) return 0;
    bool cls = strncmp(o, "binary:", 7) == 0 || strncmp(o, "multi:", 6) == 0;
    if (cls != (c->task == TRAINER_CLASSIFICATION))
        return s_bad(err, "hyperparameters.objective", "%s is not a %s objective", o,
                     trainer_task_name(c->task));
    return 0;
}

int trainer_config_read(const msgpack_object *spec, trainer_config_t *c,
                        cairn_err_t *err)
{
    memset(c, 0, sizeof *c);
    c->rounds = TRAINER_DEFAULT_ROUNDS;
    c->linear_c = 1.0;
    c->linear_alpha = 1.0;
    c->linear_tol = 1e-6;
    c->linear_max_iter = 100;
    if (!spec || spec->type != MSGPACK_OBJECT_MAP)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a train job's spec must be a map");
    int task = 0, algo = 1;
    if (s_text(spec, "data", true, TRAINER_DATA_MAX, c->data, err) < 0) return -1;
    if (s_text(spec, "target", true, TRAINER_NAME_MAX, c->target, err) < 0) return -1;
    if (s_choice(spec, "task", "classification", "regression", true, &task, err) < 0)
        return -1;
    if (s_choice(spec, "algorithm", "xgboost", "linear", false, &algo, err) < 0)
        return -1;
    c->task = task == 2 ? TRAINER_REGRESSION : TRAINER_CLASSIFICATION;
    c->algo = algo == 2 ? TRAINER_LINEAR : TRAINER_XGBOOST;
    if (s_hparams(spec, c, err) != 0 || s_validation(spec, c, err) != 0 ||
        s_seed(spec, c, err) != 0)
        return -1;
    if (s_text(spec, "register_model", false, TRAINER_NAME_MAX, c->register_model,
               err) < 0 ||
        s_model_name(c, err) != 0)
        return -1;
    return s_cross(c, err);
}
