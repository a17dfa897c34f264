/* Training through XGBoost's C API (trainer_int.h): one booster per fold,
 * trained in lock step, as python-xgboost's train and cv do it, so that
 * the same parameters, seed, rows and float32 data give the same model. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xgboost/c_api.h>

#include "trainer_int.h"

/* Eval sets per booster: train and validation. */
#define EVAL_SETS 2

static int s_xgb_err(cairn_err_t *err, const char *doing)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL, "xgboost: %s: %s",
                         doing, XGBGetLastError());
}

/* One fold: its matrices and booster. */
typedef struct fold {
    DMatrixHandle train, valid;
    BoosterHandle booster;
} fold_t;

static void s_fold_free(fold_t *f)
{
    if (f->booster) XGBoosterFree(f->booster);
    if (f->train) XGDMatrixFree(f->train);
    if (f->valid) XGDMatrixFree(f->valid);
    memset(f, 0, sizeof *f);
}

/* The feature names and types as both a matrix and a booster take them. */
static void s_types(const trainer_table_t *t, char (*types)[2], const char **ptrs)
{
    for (size_t j = 0; j < trainer_table_features(t); j++) {
        types[j][0] = trainer_table_feature_type(t, j);
        types[j][1] = '\0';
        ptrs[j] = types[j];
    }
}

/* Rows rows[0, n) of t as a DMatrix with labels, names and types. */
static int s_dmatrix(const trainer_table_t *t, const uint32_t *rows, size_t n,
                     int nthread, DMatrixHandle *out, cairn_err_t *err)
{
    size_t nf = trainer_table_features(t);
    float *x = malloc(n * nf * sizeof *x), *y = malloc(n * sizeof *y);
    char(*types)[2] = malloc(nf * sizeof *types);
    const char **tp = malloc(nf * sizeof *tp);
    int rc = -1;
    if (!x || !y || !types || !tp) {
        cairn_err_oom(err, "for a training matrix");
        goto done;
    }
    trainer_table_gather(t, rows, n, x, y);
    s_types(t, types, tp);
    if (XGDMatrixCreateFromMat_omp(x, n, nf, NAN, out, nthread) != 0) {
        rc = s_xgb_err(err, "making a matrix");
        goto done;
    }
    const char **names = (const char **)trainer_table_feature_names(t);
    if (XGDMatrixSetFloatInfo(*out, "label", y, n) != 0 ||
        XGDMatrixSetStrFeatureInfo(*out, "feature_name", names, nf) != 0 ||
        XGDMatrixSetStrFeatureInfo(*out, "feature_type", tp, nf) != 0)
        rc = s_xgb_err(err, "labelling a matrix");
    else
        rc = 0;
done:
    free(x);
    free(y);
    free(types);
    free(tp);
    return rc;
}

/* The objective: the config's, else by task and classes. */
static int s_objective(const trainer_table_t *t, const trainer_config_t *c, char *out,
                       size_t cap, cairn_err_t *err)
{
    size_t k = trainer_table_classes(t);
    const char *o = c->objective;
    if (!*o)
        o = c->task == TRAINER_REGRESSION ? "reg:squarederror"
            : k > 2                       ? "multi:softprob"
                                          : "binary:logistic";
    if (k > 2 && strncmp(o, "binary:", 7) == 0)
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "hyperparameters.objective: %s needs 2 classes; the target "
            "has %zu (use multi:softprob)",
            o, k);
    snprintf(out, cap, "%s", o);
    return 0;
}

/* Hyperparameters that are the trainer's, not the booster's. */
static bool s_own(const char *name)
{
    return strcmp(name, "num_boost_round") == 0 ||
           strcmp(name, "early_stopping_rounds") == 0 ||
           strcmp(name, "enable_categorical") == 0 ||
           strcmp(name, "eval_metric") == 0 || strcmp(name, "objective") == 0 ||
           strcmp(name, "nthread") == 0;
}

static int s_params(BoosterHandle b, const trainer_table_t *t,
                    const trainer_config_t *c, const char *objective, int nthread,
                    cairn_err_t *err)
{
    char num[32];
    int rc = XGBoosterSetParam(b, "objective", objective);
    if (rc == 0 && strncmp(objective, "multi:", 6) == 0) {
        snprintf(num, sizeof num, "%zu", trainer_table_classes(t));
        rc = XGBoosterSetParam(b, "num_class", num);
    }
    /* hist unless asked otherwise: fast and deterministic. */
    if (rc == 0 && !trainer_config_hparam(c, "tree_method"))
        rc = XGBoosterSetParam(b, "tree_method", "hist");
    snprintf(num, sizeof num, "%llu", (unsigned long long)c->seed);
    if (rc == 0) rc = XGBoosterSetParam(b, "seed", num);
    snprintf(num, sizeof num, "%d", nthread);
    if (rc == 0) rc = XGBoosterSetParam(b, "nthread", num);
    for (size_t i = 0; rc == 0 && i < c->n_hp; i++)
        if (!s_own(c->hp[i].name))
            rc = XGBoosterSetParam(b, c->hp[i].name, c->hp[i].value);
    for (size_t i = 0; rc == 0 && i < c->n_metrics; i++)
        rc = XGBoosterSetParam(b, "eval_metric", c->metrics[i]);
    return rc == 0 ? 0 : s_xgb_err(err, "setting a parameter");
}

static int s_booster(const trainer_table_t *t, const trainer_config_t *c,
                     const char *objective, int nthread, fold_t *f, cairn_err_t *err)
{
    DMatrixHandle cache[EVAL_SETS] = {f->train, f->valid};
    bst_ulong n = f->valid ? 2 : 1;
    if (XGBoosterCreate(cache, n, &f->booster) != 0)
        return s_xgb_err(err, "making a booster");
    size_t nf = trainer_table_features(t);
    char(*types)[2] = malloc(nf * sizeof *types);
    const char **tp = malloc(nf * sizeof *tp);
    int rc = 0;
    if (!types || !tp) {
        rc = cairn_err_oom(err, "for feature types");
    } else {
        s_types(t, types, tp);
        const char **names = (const char **)trainer_table_feature_names(t);
        if (XGBoosterSetStrFeatureInfo(f->booster, "feature_name", names, nf) != 0 ||
            XGBoosterSetStrFeatureInfo(f->booster, "feature_type", tp, nf) != 0)
            rc = s_xgb_err(err, "naming the features");
    }
    free(types);
    free(tp);
    if (rc != 0) return -1;
    return s_params(f->booster, t, c, objective, nthread, err);
}

/* "[3]\ttrain-logloss:0.1\tvalidation-logloss:0.2" into names/values
 * (at most TRAINER_FINAL_MAX); the count, or -1 when malformed. */
static int s_parse_eval(const char *s, char (*names)[TRAINER_METRIC_NAME_MAX],
                        double *values)
{
    int n = 0;
    for (const char *p = strchr(s, '\t'); p && n < TRAINER_FINAL_MAX;
         p = strchr(p, '\t')) {
        p++;
        const char *colon = strchr(p, ':');
        const char *tab = strchr(p, '\t');
        if (!colon || (tab && colon > tab)) return -1;
        snprintf(names[n], TRAINER_METRIC_NAME_MAX, "%.*s", (int)(colon - p), p);
        values[n++] = strtod(colon + 1, NULL);
    }
    return n;
}

/* The training state across rounds. */
typedef struct run {
    fold_t *folds;
    size_t nfolds;
    char names[TRAINER_FINAL_MAX][TRAINER_METRIC_NAME_MAX];
    double mean[TRAINER_FINAL_MAX], best_mean[TRAINER_FINAL_MAX];
    int nmetrics;
    int best_round;
    double best;
} run_t;

/* One round of every fold: update, evaluate, average into run->mean. */
static int s_round(run_t *run, int i, cairn_err_t *err)
{
    double vals[TRAINER_FINAL_MAX];
    char names[TRAINER_FINAL_MAX][TRAINER_METRIC_NAME_MAX];
    memset(run->mean, 0, sizeof run->mean);
    for (size_t f = 0; f < run->nfolds; f++) {
        fold_t *fd = &run->folds[f];
        if (XGBoosterUpdateOneIter(fd->booster, i, fd->train) != 0)
            return s_xgb_err(err, "a boosting round");
        DMatrixHandle sets[EVAL_SETS] = {fd->train, fd->valid};
        const char *set_names[EVAL_SETS] = {"train", "validation"};
        const char *out;
        if (XGBoosterEvalOneIter(fd->booster, i, sets, set_names, fd->valid ? 2 : 1,
                                 &out) != 0)
            return s_xgb_err(err, "evaluating a round");
        int n = s_parse_eval(out, names, vals);
        if (n < 0 || (f && n != run->nmetrics))
            return cairn_err_set(
                err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                "xgboost: an evaluation the trainer cannot read: %.100s", out);
        if (!f) memcpy(run->names, names, sizeof names);
        run->nmetrics = n;
        for (int m = 0; m < n; m++) run->mean[m] += vals[m] / (double)run->nfolds;
    }
    return 0;
}

static int s_report(run_t *run, int i, trainer_round_fn *fn, void *arg,
                    cairn_err_t *err)
{
    if (!fn) return 0;
    trainer_metric_t m[TRAINER_FINAL_MAX];
    for (int k = 0; k < run->nmetrics; k++)
        m[k] = (trainer_metric_t){run->names[k], run->mean[k]};
    if (fn(arg, i, m, (size_t)run->nmetrics, err) != 0) {
        if (!err || !err->st)
            cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                          "round %d: the round callback stopped training", i);
        return -1;
    }
    return 0;
}

/* Early stopping as python-xgboost's: the last metric of the last set;
 * true when `rounds` rounds passed without a strict improvement. */
static bool s_stop(run_t *run, int i, int rounds)
{
    double v = run->mean[run->nmetrics - 1];
    const char *name = strchr(run->names[run->nmetrics - 1], '-');
    bool up = trainer_metric_higher_better(name ? name + 1 : "");
    if (i == 0 || (up ? v > run->best : v < run->best)) {
        run->best = v;
        run->best_round = i;
        memcpy(run->best_mean, run->mean, sizeof run->mean);
    }
    return rounds && i - run->best_round >= rounds;
}

static void s_final(trainer_result_t *r, run_t *run, bool early)
{
    trainer_metric_t m[TRAINER_FINAL_MAX];
    const double *v = early ? run->best_mean : run->mean;
    for (int k = 0; k < run->nmetrics; k++)
        m[k] = (trainer_metric_t){run->names[k], v[k]};
    trainer_result_set_final(r, m, (size_t)run->nmetrics);
}

/* gain and weight per feature. XGBoost lists the features it used in
 * index order (names from the booster), so one walk maps them. */
static int s_importances(trainer_result_t *r, const trainer_table_t *t,
                         cairn_err_t *err)
{
    static const char *const kinds[] = {"gain", "weight"};
    for (size_t k = 0; k < 2; k++) {
        char cfg[64];
        snprintf(cfg, sizeof cfg, "{\"importance_type\": \"%s\"}", kinds[k]);
        bst_ulong nf = 0, dim = 0;
        const char **names;
        const bst_ulong *shape;
        const float *scores;
        if (XGBoosterFeatureScore(r->booster, cfg, &nf, &names, &dim, &shape,
                                  &scores) != 0)
            return s_xgb_err(err, "feature importances");
        r->imp[k] = calloc(r->nfeat ? r->nfeat : 1, sizeof *r->imp[k]);
        if (!r->imp[k]) return cairn_err_oom(err, "for feature importances");
        r->imp_kind[k] = kinds[k];
        r->n_imp = k + 1;
        size_t j = 0;
        for (bst_ulong i = 0; i < nf; i++) {
            while (j < r->nfeat &&
                   strcmp(trainer_table_feature_name(t, j), names[i]) != 0)
                j++;
            if (j < r->nfeat) r->imp[k][j] = scores[i];
        }
    }
    return 0;
}

static void s_version(trainer_result_t *r)
{
    int major, minor, patch;
    XGBoostVersion(&major, &minor, &patch);
    snprintf(r->library, sizeof r->library, "xgboost %d.%d.%d", major, minor, patch);
}

/* The model all rows make, for k-fold: file order, the same rounds. */
static int s_refit(const trainer_table_t *t, const trainer_config_t *c, int nthread,
                   trainer_result_t *r, cairn_err_t *err)
{
    size_t n = trainer_table_rows(t);
    uint32_t *all = malloc(n * sizeof *all);
    if (!all) return cairn_err_oom(err, "for the final model's rows");
    for (size_t i = 0; i < n; i++) all[i] = (uint32_t)i;
    fold_t f = {0};
    int rc = s_dmatrix(t, all, n, nthread, &f.train, err);
    free(all);
    if (rc == 0) rc = s_booster(t, c, r->objective, nthread, &f, err);
    for (int i = 0; rc == 0 && i < r->rounds; i++)
        if (XGBoosterUpdateOneIter(f.booster, i, f.train) != 0)
            rc = s_xgb_err(err, "a boosting round of the final model");
    if (rc == 0) {
        r->booster = f.booster;
        f.booster = NULL;
    }
    s_fold_free(&f);
    return rc;
}

static int s_train(const trainer_table_t *t, const trainer_config_t *c, run_t *run,
                   trainer_round_fn *fn, void *arg, trainer_result_t *r,
                   cairn_err_t *err)
{
    int i = 0;
    bool stopped = false;
    for (; i < c->rounds && !stopped; i++) {
        if (s_round(run, i, err) != 0 || s_report(run, i, fn, arg, err) != 0) return -1;
        stopped = s_stop(run, i, run->nfolds == 1 ? c->early_stopping : 0);
    }
    r->rounds = i;
    r->best_round = c->early_stopping ? run->best_round : i - 1;
    s_final(r, run, c->early_stopping != 0);
    (void)t;
    return 0;
}

int trainer_xgb_train(const trainer_table_t *t, const trainer_config_t *c,
                      const trainer_rows_t *rows, size_t nfolds, trainer_round_fn *fn,
                      void *arg, trainer_result_t *r, cairn_err_t *err)
{
    int nthread = c->nthread ? c->nthread : trainer_cpus();
    s_version(r);
    if (s_objective(t, c, r->objective, sizeof r->objective, err) != 0) return -1;
    run_t run = {.nfolds = nfolds, .folds = calloc(nfolds, sizeof(fold_t))};
    if (!run.folds) return cairn_err_oom(err, "for the folds");
    int rc = 0;
    for (size_t f = 0; rc == 0 && f < nfolds; f++) {
        rc = s_dmatrix(t, rows[f].train, rows[f].n_train, nthread, &run.folds[f].train,
                       err);
        if (rc == 0)
            rc = s_dmatrix(t, rows[f].valid, rows[f].n_valid, nthread,
                           &run.folds[f].valid, err);
        if (rc == 0) rc = s_booster(t, c, r->objective, nthread, &run.folds[f], err);
    }
    if (rc == 0) rc = s_train(t, c, &run, fn, arg, r, err);
    if (rc == 0 && nfolds == 1) {
        r->booster = run.folds[0].booster;
        run.folds[0].booster = NULL;
        if (c->early_stopping) {
            char v[32];
            snprintf(v, sizeof v, "%d", r->best_round);
            XGBoosterSetAttr(r->booster, "best_iteration", v);
            snprintf(v, sizeof v, "%.17g", r->value);
            XGBoosterSetAttr(r->booster, "best_score", v);
        }
    }
    for (size_t f = 0; f < nfolds; f++) s_fold_free(&run.folds[f]);
    free(run.folds);
    if (rc == 0 && nfolds > 1) rc = s_refit(t, c, nthread, r, err);
    if (rc == 0) rc = s_importances(r, t, err);
    return rc;
}

int trainer_xgb_save(const trainer_result_t *r, const char *path, cairn_err_t *err)
{
    if (XGBoosterSaveModel(r->booster, path) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "xgboost: saving the model to %s: %s", path,
                             XGBGetLastError());
    return 0;
}

void trainer_xgb_free(trainer_result_t *r)
{
    if (r->booster) XGBoosterFree(r->booster);
    r->booster = NULL;
}
