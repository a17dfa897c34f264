/* plugins/trainer/trainer_int.h — what trainer.c shares with the
 * algorithms (xgb.c, linear.c): the result's fields and the row sets. */
#ifndef CAIRN_TRAINER_INT_H
#define CAIRN_TRAINER_INT_H

#include "trainer.h"

#define TRAINER_FINAL_MAX 16
#define TRAINER_METRIC_NAME_MAX 64

typedef struct linear_model linear_model_t;

struct trainer_result {
    trainer_algo_t algo;
    void *booster; /* XGBoost's BoosterHandle */
    linear_model_t *linear;
    char metric[TRAINER_METRIC_NAME_MAX]; /* the primary metric's name */
    double value;                         /* its final validation value */
    bool higher_better;
    size_t n_final;
    char final_name[TRAINER_FINAL_MAX][TRAINER_METRIC_NAME_MAX];
    double final_value[TRAINER_FINAL_MAX];
    int rounds, best_round;
    char objective[TRAINER_METRIC_NAME_MAX];
    char library[32];
    size_t nfeat, n_imp;
    const char *imp_kind[2];
    double *imp[2];
};

/* The rows of one training: train and validation (n_valid may be 0). */
typedef struct trainer_rows {
    const uint32_t *train, *valid;
    size_t n_train, n_valid;
} trainer_rows_t;

/* A result to fill (calloc'd, algo set); NULL on out of memory. */
trainer_result_t *trainer_result_new(trainer_algo_t algo, size_t nfeat);
/* Keep m[0, n) as the final metrics, the primary one from the last
 * validation metric (or the last of all when there is none). */
void trainer_result_set_final(trainer_result_t *r, const trainer_metric_t *m, size_t n);
/* auc, aucpr, map, ndcg, pre: higher is better. */
bool trainer_metric_higher_better(const char *name);

int trainer_xgb_train(const trainer_table_t *t, const trainer_config_t *c,
                      const trainer_rows_t *folds, size_t nfolds, trainer_round_fn *fn,
                      void *arg, trainer_result_t *r, cairn_err_t *err);
int trainer_xgb_save(const trainer_result_t *r, const char *path, cairn_err_t *err);
void trainer_xgb_free(trainer_result_t *r);

int trainer_linear_train(const trainer_table_t *t, const trainer_config_t *c,
                         const trainer_rows_t *folds, size_t nfolds,
                         trainer_round_fn *fn, void *arg, trainer_result_t *r,
                         cairn_err_t *err);
int trainer_linear_save(const trainer_result_t *r, const char *path, cairn_err_t *err);
void trainer_linear_free(trainer_result_t *r);

#endif
