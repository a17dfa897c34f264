/* The trainer's spec keys (plugins/trainer/config.h): defaults, aliases,
 * hyperparameters checked by algorithm, and every refusal naming its
 * field. Specs are written in YAML and read through sdk/yamlmp.h, as
 * cairn-train reads a YAML spec. */
#include <math.h>
#include <stdlib.h>

#include "config.h"
#include "unit.h"
#include "yamlmp.h"

/* Read the YAML spec into *c: 0, or -1 with err. */
static int s_read(const char *yaml, trainer_config_t *c, cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = cairn_yaml_to_msgpack(yaml, strlen(yaml), &sb, err);
    if (rc == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        msgpack_unpack_next(&u, sb.data, sb.size, NULL);
        rc = trainer_config_read(&u.data, c, err);
        msgpack_unpacked_destroy(&u);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The spec is refused with a sentence starting with want. */
static void s_refused(const char *yaml, const char *want)
{
    trainer_config_t c;
    cairn_err_t err = {0};
    CHECK_EQ(s_read(yaml, &c, &err), -1);
    CHECK_EQ(err.st, 400);
    if (!CHECK(strncmp(err.msg, want, strlen(want)) == 0))
        fprintf(stderr, "     got \"%s\", want \"%s...\"\n", err.msg, want);
}

#define BASE "type: train\ndata: d.csv\ntarget: y\ntask: classification\n"

TEST(defaults_and_other_keys_ignored)
{
    trainer_config_t c;
    cairn_err_t err = {0};
    CHECK_EQ(s_read(BASE "name: j\nresources: {cpus: 2}\nwhatever: 1\n", &c, &err), 0);
    CHECK_STR(c.data, "d.csv");
    CHECK_STR(c.target, "y");
    CHECK_EQ(c.task, TRAINER_CLASSIFICATION);
    CHECK_EQ(c.algo, TRAINER_XGBOOST);
    CHECK_EQ(c.rounds, TRAINER_DEFAULT_ROUNDS);
    CHECK(c.split == TRAINER_DEFAULT_SPLIT);
    CHECK_EQ(c.folds, 0);
    CHECK_EQ(c.seed, 0);
    CHECK_EQ(c.n_hp, 0);
    CHECK_STR(c.register_model, "");
}

TEST(keys)
{
    CHECK(trainer_config_key("data", 4));
    CHECK(trainer_config_key("register_model", 14));
    CHECK(trainer_config_key("validation", 10));
    CHECK(!trainer_config_key("command", 7));
    CHECK(!trainer_config_key("dat", 3));
}

TEST(hyperparameters_and_aliases)
{
    trainer_config_t c;
    cairn_err_t err = {0};
    CHECK_EQ(
        s_read(BASE "hyperparameters:\n  learning_rate: 0.1\n  n_estimators: 50\n"
                    "  max_depth: 4\n  reg_lambda: 2\n  eval_metric: [auc, logloss]\n"
                    "  early_stopping_rounds: 5\n  enable_categorical: true\n"
                    "  objective: multi:softprob\nvalidation: {split: 0.3}\n"
                    "seed: 42\nregister_model: churn\n",
               &c, &err),
        0);
    CHECK_STR(err.msg, "");
    CHECK_STR(trainer_config_hparam(&c, "eta"), "0.10000000000000001");
    CHECK_STR(trainer_config_hparam(&c, "lambda"), "2");
    CHECK_STR(trainer_config_hparam(&c, "max_depth"), "4");
    CHECK_STR(trainer_config_hparam(&c, "eval_metric"), "auc,logloss");
    CHECK(trainer_config_hparam(&c, "learning_rate") == NULL);
    CHECK_EQ(c.rounds, 50);
    CHECK_EQ(c.early_stopping, 5);
    CHECK(c.enable_categorical);
    CHECK_EQ(c.n_metrics, 2);
    CHECK_STR(c.metrics[1], "logloss");
    CHECK_STR(c.objective, "multi:softprob");
    CHECK(fabs(c.split - 0.3) < 1e-12);
    CHECK_EQ(c.seed, 42);
    CHECK_STR(c.register_model, "churn");

    CHECK_EQ(s_read("data: d.csv\ntarget: y\ntask: regression\nalgorithm: linear\n"
                    "hyperparameters: {alpha: 0.5, max_iter: 20, tol: 0.001}\n"
                    "validation: {folds: 5}\n",
                    &c, &err),
             0);
    CHECK_EQ(c.algo, TRAINER_LINEAR);
    CHECK(c.linear_alpha == 0.5);
    CHECK_EQ(c.linear_max_iter, 20);
    CHECK_EQ(c.folds, 5);
}

TEST(refusals_name_the_field)
{
    s_refused("type: train\ntarget: y\ntask: regression\n", "data: is required");
    s_refused("data: d.csv\ntask: regression\n", "target: is required");
    s_refused("data: d.csv\ntarget: y\n", "task: is required");
    s_refused("data: d.csv\ntarget: y\ntask: ranking\n",
              "task: must be \"classification\" or \"regression\"");
    s_refused(BASE "algorithm: forest\n",
              "algorithm: must be \"xgboost\" or \"linear\"");
    s_refused("data: 7\ntarget: y\ntask: regression\n",
              "data: must be a non-empty string");
    s_refused(BASE "validation: {split: 1}\n",
              "validation.split: must be a number > 0 and < 1");
    s_refused(BASE "validation: {split: 0}\n",
              "validation.split: must be a number > 0 and < 1");
    s_refused(BASE "validation: {folds: 1}\n",
              "validation.folds: must be an integer 2..20");
    s_refused(BASE "validation: {split: 0.2, folds: 3}\n",
              "validation: must hold exactly one of split or folds");
    s_refused(BASE "validation: {holdout: 0.2}\n",
              "validation: must hold split or folds");
    s_refused(BASE "validation: 0.2\n", "validation: must be a map");
    s_refused(BASE "hyperparameters: {max_depth: 65}\n",
              "hyperparameters.max_depth: must be an integer 0..64");
    s_refused(BASE "hyperparameters: {max_depth: 2.5}\n",
              "hyperparameters.max_depth: must be an integer 0..64");
    s_refused(BASE "hyperparameters: {eta: -1}\n",
              "hyperparameters.eta: must be a number >= 0");
    s_refused(BASE "hyperparameters: {subsample: 0}\n",
              "hyperparameters.subsample: must be a number > 0 and <= 1");
    s_refused(BASE "hyperparameters: {tree_method: gpu_hist}\n",
              "hyperparameters.tree_method: must be one of: hist approx exact auto");
    s_refused(BASE "hyperparameters: {eval_metric: [auc, nope]}\n",
              "hyperparameters.eval_metric: must be one of:");
    s_refused(BASE "hyperparameters: {C: 1}\n",
              "hyperparameters.C: is not a hyperparameter of algorithm xgboost");
    s_refused(BASE "algorithm: linear\nhyperparameters: {max_depth: 3}\n",
              "hyperparameters.max_depth: is not a hyperparameter of algorithm linear");
    s_refused(BASE "hyperparameters: {eta: 0.1, learning_rate: 0.2}\n",
              "hyperparameters.learning_rate: given twice");
    s_refused(BASE "hyperparameters: {enable_categorical: 1}\n",
              "hyperparameters.enable_categorical: must be true or false");
    s_refused(BASE "hyperparameters: {objective: reg:squarederror}\n",
              "hyperparameters.objective: reg:squarederror is not a classification");
    s_refused(BASE "hyperparameters: 3\n", "hyperparameters: must be a map");
    s_refused(BASE
              "validation: {folds: 3}\nhyperparameters: {early_stopping_rounds: 2}\n",
              "hyperparameters.early_stopping_rounds: needs validation.split");
    s_refused(BASE "seed: -1\n", "seed: must be an integer 0..2147483647");
    s_refused(BASE "seed: 1.5\n", "seed: must be an integer");
    s_refused(BASE "register_model: a@b\n",
              "register_model: a model name may not hold");
    s_refused(BASE "register_model: \"\"\n",
              "register_model: must be a non-empty string");
    s_refused("- 1\n", "a train job's spec must be a map");
}

TEST(bounds)
{
    /* A data path longer than TRAINER_DATA_MAX, and too many hyperparameters. */
    char *yaml = malloc(TRAINER_DATA_MAX + 200);
    int n = snprintf(yaml, 64, "target: y\ntask: regression\ndata: ");
    memset(yaml + n, 'a', TRAINER_DATA_MAX + 1);
    strcpy(yaml + n + TRAINER_DATA_MAX + 1, "\n");
    s_refused(yaml, "data: is 4097 bytes; at most 4096");
    char buf[4096] = BASE "hyperparameters:\n";
    for (int i = 0; i < TRAINER_HP_MAX + 1; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "  k%d: 1\n", i);
    s_refused(buf, "hyperparameters: has 49 entries; at most 48");
    free(yaml);
}

int main(void)
{
    RUN(defaults_and_other_keys_ignored);
    RUN(keys);
    RUN(hyperparameters_and_aliases);
    RUN(refusals_name_the_field);
    RUN(bounds);
    return unit_report();
}
