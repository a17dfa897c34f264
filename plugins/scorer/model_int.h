/* The model's inside, shared by the loader (model.c), the UBJSON reader
 * (ubj.c) and the evaluator (trees.c); never installed. */
#ifndef CAIRN_SCORER_MODEL_INT_H
#define CAIRN_SCORER_MODEL_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "model.h"

/* One node, 16 bytes. A split (SM_SPLIT) sends a row to left or left + 1,
 * its two children side by side. A leaf holds its value (a dart tree's
 * weight applied) in v.leaf, feat 0 and left its own index: a step from a
 * leaf stays on it, so that several trees are walked in lockstep, to the
 * deepest one's depth, without a branch on which of them has ended. */
enum { SM_DEFAULT_LEFT = 1u, SM_CATEGORICAL = 2u, SM_SPLIT = 4u };
#define SM_CAT_WORDS_SHIFT 8 /* flags >> 8: a categorical split's bitset words */
typedef struct sm_node {
    int32_t feat;
    union {
        float thr;    /* numerical split: left when value < thr */
        float leaf;   /* leaf */
        uint32_t cat; /* categorical split: its bitset's first word in cats */
    } v;
    uint32_t left;
    uint32_t flags;
} sm_node_t;

/* The objectives' transforms. */
typedef enum sm_tf {
    SM_TF_IDENTITY,
    SM_TF_SIGMOID,
    SM_TF_EXP,
    SM_TF_SOFTPROB,
    SM_TF_SOFTMAX,
} sm_tf_t;

struct scorer_model {
    sm_node_t *nodes;
    size_t n_nodes, cap_nodes;
    uint32_t *roots;  /* per tree, its root's index in nodes */
    uint32_t *groups; /* per tree, its output group (tree_info) */
    uint8_t *depths; /* per tree, its depth (steps from the root to its deepest leaf) */
    size_t n_trees;
    uint32_t *cats; /* the categorical splits' bitsets */
    size_t n_cats, cap_cats;
    bool has_cats; /* some split is categorical (its set may be empty) */
    size_t n_features, n_groups, n_outputs;
    float base_margin;
    sm_tf_t tf;
    char objective[48];
    char booster[16];
    char **feature_names, **feature_types; /* n_features each, or NULL */
};

/* UBJSON (as XGBoost writes it) to a jansson tree; NULL with err (400). */
json_t *scorer_ubj_parse(const unsigned char *p, size_t len, cairn_err_t *err);

/* Flatten one tree (XGBoost's JSON form) into m: nodes, cats, roots,
 * groups[t] = group; weight multiplies its leaves (dart), 1 otherwise. */
int scorer_tree_add(scorer_model_t *m, const json_t *tree, size_t t, uint32_t group,
                    float weight, cairn_err_t *err);

#endif
