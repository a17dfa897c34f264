/* plugins/trainer/trainer.h — the trainer's in-process API: train one
 * configuration on a loaded table and get its metric and model.
 *
 * This is the engine: the `type: train` job (cairn-train, main.c) is one
 * caller, and sweeps and AutoML call it many times over one table, so it
 * does no I/O of its own beyond what the caller asks (saving a model):
 *
 *     trainer_config_t cfg;                          // config.h
 *     if (trainer_config_read(spec, &cfg, &err) != 0) ...
 *     trainer_table_t *t = trainer_table_load(path, &(trainer_table_opts_t){
 *         .target = cfg.target, .task = cfg.task,
 *         .categorical = cfg.enable_categorical}, &err);          // table.h
 *     trainer_result_t *r = NULL;
 *     if (trainer_train(t, &cfg, on_round, arg, &r, &err) != 0) ...
 *     printf("%s %g\n", trainer_result_metric_name(r), trainer_result_metric(r));
 *     trainer_result_save(r, "out/model.json", &err);
 *     trainer_result_destroy(&r);
 *
 * A table may be trained on from several threads at once (it is read-only);
 * a result belongs to one thread.
 *
 * Validation (docs/TRAINER.md gives it to reproduce in Python): the rows
 * are permuted by a Fisher-Yates shuffle driven by splitmix64 seeded with
 * the config's seed (trainer_permutation). With `split` s, the first
 * n - round(n*s) rows of the permutation train and the rest validate. With
 * `folds` k, fold f validates the permutation's rows [f*n/k, (f+1)*n/k)
 * and trains on the others (in permutation order); the k models train in
 * lock step, each round reporting the mean over folds, and the final model
 * is then trained on every row (file order) for the same rounds. */
#ifndef CAIRN_TRAINER_H
#define CAIRN_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"
#include "config.h"
#include "table.h"

/* A metric at one round: "train-logloss", "validation-rmse", ... */
typedef struct trainer_metric {
    const char *name;
    double value;
} trainer_metric_t;

/* Called after each boosting round (from 0) with the metrics of the train
 * and validation sets (fold means under k-fold). Return 0 to go on, -1
 * (err set) to stop training with that error. */
typedef int(trainer_round_fn)(void *arg, int round, const trainer_metric_t *m, size_t n,
                              cairn_err_t *err);

typedef struct trainer_result trainer_result_t;

/* Train c on t; fn (may be NULL) gets each round. *out receives the
 * result. 0, or -1 with err: 400 for a config the data cannot take (a
 * binary objective with 3 classes, too few rows for the split), 500 when
 * XGBoost fails (its message). */
int trainer_train(const trainer_table_t *t, const trainer_config_t *c,
                  trainer_round_fn *fn, void *arg, trainer_result_t **out,
                  cairn_err_t *err);
void trainer_result_destroy(trainer_result_t **self_p);

/* The primary metric (XGBoost's last eval metric; linear: logloss,
 * mlogloss or rmse), its final validation value (at the best round under
 * early stopping; the fold mean under k-fold), and whether higher is
 * better (auc, aucpr): what a sweep compares. */
const char *trainer_result_metric_name(const trainer_result_t *r);
double trainer_result_metric(const trainer_result_t *r);
bool trainer_result_higher_better(const trainer_result_t *r);
/* Every final metric ("train-rmse", "validation-rmse", ...). */
size_t trainer_result_metrics(const trainer_result_t *r);
trainer_metric_t trainer_result_metric_at(const trainer_result_t *r, size_t i);
/* Rounds the model holds, and the best one (the last without early
 * stopping). */
int trainer_result_rounds(const trainer_result_t *r);
int trainer_result_best_round(const trainer_result_t *r);
/* The objective used ("binary:logistic", ...; linear: "logistic",
 * "multinomial" or "ridge"). */
const char *trainer_result_objective(const trainer_result_t *r);

/* Feature importances: kinds ("gain" and "weight" for XGBoost; "abs_coef"
 * for linear), each a value per table feature (0 for an unused one). */
size_t trainer_result_importance_kinds(const trainer_result_t *r);
const char *trainer_result_importance_kind(const trainer_result_t *r, size_t k);
const double *trainer_result_importance(const trainer_result_t *r, size_t k);

/* Write the model: XGBoost JSON (.json) or UBJSON (.ubj) by the path's
 * extension, which python3-xgboost loads; linear: JSON (.json only). */
int trainer_result_save(const trainer_result_t *r, const char *path, cairn_err_t *err);

/* "xgboost 1.7.4" or "cairn-linear 1". */
const char *trainer_result_library(const trainer_result_t *r);

/* The CPUs this process may run on (its affinity): the default nthread. */
int trainer_cpus(void);

/* The validation permutation of n rows for seed (see above). */
void trainer_permutation(size_t n, uint64_t seed, uint32_t *perm);
/* Rows held out by a split fraction: round(n * split), at least 1. */
size_t trainer_split_valid_rows(size_t n, double split);

#endif
