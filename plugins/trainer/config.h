/* plugins/trainer/config.h — a `type: train` job's trainer keys, read and
 * checked (docs/TRAINER.md).
 *
 * The job spec is one msgpack map (YAML converted, or the map submitted);
 * only the eight trainer keys are read here (data, target, task,
 * algorithm, hyperparameters, validation, seed, register_model) and every
 * other key is left to the jobs plugin, which checks the job-level ones.
 * Every refusal is a 400 whose sentence starts with the field's path
 * ("validation.split: must be a number > 0 and < 1"), and hyperparameters
 * are checked by name and type against what the chosen algorithm takes.
 *
 * The result is a fixed-size value: nothing borrowed from the map, nothing
 * to free. Pure (no I/O): the static library cairn_trainer_spec, which the
 * jobs plugin links to refuse a bad spec at submit. */
#ifndef CAIRN_TRAINER_CONFIG_H
#define CAIRN_TRAINER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cairn/err.h"

#define TRAINER_DATA_MAX 4096  /* data: a path or a data: reference */
#define TRAINER_NAME_MAX 256   /* target, register_model */
#define TRAINER_HP_MAX 48      /* hyperparameters given */
#define TRAINER_HP_NAME_MAX 32 /* a hyperparameter's (canonical) name */
#define TRAINER_HP_VALUE_MAX 64
#define TRAINER_METRICS_MAX 4 /* eval_metric: one name or a list */
#define TRAINER_FOLDS_MAX 20
#define TRAINER_ROUNDS_MAX 100000
#define TRAINER_DEFAULT_ROUNDS 100
#define TRAINER_DEFAULT_SPLIT 0.2

typedef enum { TRAINER_CLASSIFICATION = 1, TRAINER_REGRESSION } trainer_task_t;
typedef enum { TRAINER_XGBOOST = 1, TRAINER_LINEAR } trainer_algo_t;

/* A hyperparameter as given: its canonical name (eta for learning_rate,
 * lambda for reg_lambda, ...) and its value as XGBoost's SetParam takes it. */
typedef struct trainer_hparam {
    char name[TRAINER_HP_NAME_MAX];
    char value[TRAINER_HP_VALUE_MAX];
} trainer_hparam_t;

typedef struct trainer_config {
    char data[TRAINER_DATA_MAX + 1];
    char target[TRAINER_NAME_MAX + 1];
    trainer_task_t task;
    trainer_algo_t algo;
    /* Every hyperparameter given, in the spec's order (those below too). */
    size_t n_hp;
    trainer_hparam_t hp[TRAINER_HP_MAX];
    /* validation: folds >= 2 (k-fold), else a held-out fraction split. */
    double split;
    int folds;
    uint64_t seed;                             /* default 0 */
    char register_model[TRAINER_NAME_MAX + 1]; /* "" when not asked */
    /* Read out of hyperparameters (the trainer's own, not booster params). */
    int rounds;              /* num_boost_round / n_estimators (default 100) */
    int early_stopping;      /* early_stopping_rounds; 0: none */
    int nthread;             /* 0: every online CPU */
    bool enable_categorical; /* string columns as XGBoost categoricals */
    char objective[TRAINER_HP_VALUE_MAX];                    /* "": by task */
    size_t n_metrics;                                        /* eval_metric */
    char metrics[TRAINER_METRICS_MAX][TRAINER_HP_VALUE_MAX]; /* "" none */
    double linear_c, linear_alpha, linear_tol;               /* linear: C, alpha, tol */
    int linear_max_iter;
} trainer_config_t;

/* Read the trainer keys of a whole job spec (a map) into *out. 0, or -1
 * with a 400 naming the field. */
int trainer_config_read(const msgpack_object *spec_map, trainer_config_t *out,
                        cairn_err_t *err);

/* k[0, n) is one of the eight trainer keys. */
bool trainer_config_key(const char *k, size_t n);

/* The value of the hyperparameter with this canonical name; NULL when not
 * given. */
const char *trainer_config_hparam(const trainer_config_t *c, const char *name);

/* "classification"/"regression", "xgboost"/"linear". */
const char *trainer_task_name(trainer_task_t t);
const char *trainer_algo_name(trainer_algo_t a);

#endif
