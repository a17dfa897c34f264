/* plugins/scorer/model.h — an XGBoost model, loaded once and scored
 * in-process by walking its trees ourselves (docs/SCORER_MODEL.md).
 *
 * A model is read from XGBoost's JSON or UBJSON (told apart by content), an
 * MLflow model folder with the xgboost flavor, or a folder holding one
 * model file (model.json, model.ubj, model.xgb: what cairn-train writes).
 * Its trees are flattened into one array of 16-byte nodes, each node's two
 * children side by side, and predictions equal python xgboost's
 * Booster.predict(DMatrix) to 1e-6: the leaves are summed in float32 in
 * XGBoost's order (the base margin, then tree by tree per output group) and
 * the objective's transform is applied in XGBoost's precision.
 *
 * The model is outside input: every size is bounded (413 past the limits
 * below, 400 for anything malformed, each with a sentence naming what).
 * After load the model is read-only: any number of threads may predict on
 * it at once, and predicting allocates nothing.
 *
 * Part of the static library cairn_scorer_model; no ABI of its own. */
#ifndef CAIRN_SCORER_MODEL_H
#define CAIRN_SCORER_MODEL_H

#include <stddef.h>

#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits on what a model may hold. */
#define SCORER_MAX_BYTES (256u << 20)  /* a model file (413) */
#define SCORER_MAX_TREES 100000        /* trees (413) */
#define SCORER_MAX_NODES (16u << 20)   /* nodes, all trees together (413) */
#define SCORER_MAX_DEPTH 64            /* a tree's depth (400) */
#define SCORER_MAX_FEATURES (1u << 20) /* features (413) */
#define SCORER_MAX_CLASSES 1024        /* num_class (413) */
#define SCORER_MAX_CATEGORY (1u << 24) /* a category's value, as XGBoost's (400) */

typedef struct scorer_model scorer_model_t;

/* Load the model at path (a file or a folder, as above). On failure *out
 * is NULL and err says why: 404 when nothing is there, 400 malformed or
 * unsupported, 413 too large. */
int scorer_model_load(const char *path, scorer_model_t **out, cairn_err_t *err);
/* The same from a model file's bytes (JSON or UBJSON), which are copied
 * from as needed and never kept. */
int scorer_model_load_mem(const void *bytes, size_t len, scorer_model_t **out,
                          cairn_err_t *err);
void scorer_model_destroy(scorer_model_t **self_p);

/* Predict nrows rows of ncols float32 features each (row-major; NaN is a
 * missing value). ncols must be scorer_model_features (400 otherwise).
 * out receives nrows * scorer_model_outputs values: what python xgboost's
 * Booster.predict gives (a probability for the logistic objectives, a row
 * of class probabilities for multi:softprob, the class index for
 * multi:softmax, ...). */
int scorer_model_predict(const scorer_model_t *m, const float *rows, size_t nrows,
                         size_t ncols, float *out, cairn_err_t *err);
/* The untransformed margins (Booster.predict(output_margin=True)):
 * nrows * scorer_model_groups values. */
int scorer_model_margin(const scorer_model_t *m, const float *rows, size_t nrows,
                        size_t ncols, float *out, cairn_err_t *err);

size_t scorer_model_features(const scorer_model_t *m);
/* Values per row from scorer_model_predict: num_class for multi:softprob,
 * else 1. */
size_t scorer_model_outputs(const scorer_model_t *m);
/* Output groups (margins per row): num_class for multi:*, else 1. */
size_t scorer_model_groups(const scorer_model_t *m);
size_t scorer_model_trees(const scorer_model_t *m);
/* Nodes reachable from the trees' roots, all trees together. */
size_t scorer_model_nodes(const scorer_model_t *m);
const char *scorer_model_objective(const scorer_model_t *m); /* "binary:logistic" */
const char *scorer_model_booster(const scorer_model_t *m);   /* "gbtree", "dart" */
/* The i-th feature's name and type ("q", "int", "c", ...) as the model
 * stores them; NULL when the model has none or i is out of range. */
const char *scorer_model_feature_name(const scorer_model_t *m, size_t i);
const char *scorer_model_feature_type(const scorer_model_t *m, size_t i);

#ifdef __cplusplus
}
#endif
#endif
