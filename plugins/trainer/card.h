/* plugins/trainer/card.h — a trained model's folder: the model file, its
 * card (card.json: signature, task, algorithm, hyperparameters, metrics,
 * feature importances, data, rows, seed, library version) and, for
 * XGBoost, an MLflow `MLmodel` file (flavors xgboost and python_function,
 * the signature), so that MLflow tools and the registry read it as an
 * MLflow model. */
#ifndef CAIRN_TRAINER_CARD_H
#define CAIRN_TRAINER_CARD_H

#include "cairn/err.h"
#include "config.h"
#include "table.h"
#include "trainer.h"

/* The model file's name in the folder: model.json, or model.ubj with ubj. */
const char *trainer_card_model_file(const trainer_result_t *r, bool ubj);

/* Write dir/<model file>, dir/card.json and (XGBoost) dir/MLmodel; dir is
 * made when missing. 0, or -1 with err. */
int trainer_card_write_dir(const char *dir, const trainer_table_t *t,
                           const trainer_config_t *c, const trainer_result_t *r,
                           bool ubj, cairn_err_t *err);

#endif
