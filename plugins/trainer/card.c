/* A trained model's folder (card.h). */
#define _GNU_SOURCE
#include "card.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

const char *trainer_card_model_file(const trainer_result_t *r, bool ubj)
{
    if (ubj && strncmp(trainer_result_library(r), "xgboost", 7) == 0)
        return "model.ubj";
    return "model.json";
}

/* mkdir -p. */
static int s_mkdirs(const char *dir, cairn_err_t *err)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "the output folder's path is too long");
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                                     "cannot make the folder %s: %s", p,
                                     strerror(errno));
            if (end) break;
            *s = '/';
        }
    }
    return 0;
}

/* A finite double, or null (JSON has no NaN). */
static json_t *s_num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *s_signature(const trainer_table_t *t, const trainer_config_t *c)
{
    json_t *cols = json_array();
    for (size_t i = 0; i < trainer_table_columns(t); i++) {
        json_t *col =
            json_pack("{s:s, s:s, s:b}", "name", trainer_table_column_name(t, i),
                      "type", trainer_table_column_type(t, i), "missing",
                      trainer_table_column_missing(t, i));
        size_t nk = trainer_table_column_categories(t, i);
        if (col && nk) {
            json_t *cats = json_array();
            for (size_t k = 0; k < nk; k++)
                json_array_append_new(cats,
                                      json_string(trainer_table_category(t, i, k)));
            json_object_set_new(col, "categories", cats);
            json_object_set_new(
                col, "encoding",
                json_string(c->enable_categorical ? "categorical" : "one-hot"));
        }
        json_array_append_new(cols, col);
    }
    json_t *feats = json_array();
    for (size_t j = 0; j < trainer_table_features(t); j++)
        json_array_append_new(
            feats,
            json_pack(
                "{s:s, s:s}", "name", trainer_table_feature_name(t, j), "type",
                trainer_table_feature_type(t, j) == 'c' ? "categorical" : "float"));
    json_t *out =
        json_pack("{s:s, s:s}", "name", c->target, "task", trainer_task_name(c->task));
    if (out && trainer_table_classes(t)) {
        json_t *classes = json_array();
        for (size_t k = 0; k < trainer_table_classes(t); k++)
            json_array_append_new(classes, json_string(trainer_table_class(t, k)));
        json_object_set_new(out, "classes", classes);
    }
    return json_pack("{s:o, s:o, s:o}", "inputs", cols, "features", feats, "output",
                     out);
}

static json_t *s_metrics(const trainer_result_t *r)
{
    json_t *m = json_object();
    for (size_t i = 0; i < trainer_result_metrics(r); i++) {
        trainer_metric_t x = trainer_result_metric_at(r, i);
        json_object_set_new(m, x.name, s_num(x.value));
    }
    return m;
}

static json_t *s_importances(const trainer_table_t *t, const trainer_result_t *r)
{
    json_t *o = json_object();
    for (size_t k = 0; k < trainer_result_importance_kinds(r); k++) {
        json_t *m = json_object();
        const double *v = trainer_result_importance(r, k);
        for (size_t j = 0; j < trainer_table_features(t); j++)
            json_object_set_new(m, trainer_table_feature_name(t, j), s_num(v[j]));
        json_object_set_new(o, trainer_result_importance_kind(r, k), m);
    }
    return o;
}

static json_t *s_card(const trainer_table_t *t, const trainer_config_t *c,
                      const trainer_result_t *r, const char *model_file)
{
    json_t *hp = json_object();
    for (size_t i = 0; i < c->n_hp; i++)
        json_object_set_new(hp, c->hp[i].name, json_string(c->hp[i].value));
    json_t *val = c->folds ? json_pack("{s:i}", "folds", c->folds)
                           : json_pack("{s:f}", "split", c->split);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:{s:s, s:o, s:b, s:i, s:i}, s:o, "
        "s:o,"
        " s:{s:s, s:I}, s:I}",
        "format", "cairn-model-card/1", "model_file", model_file, "task",
        trainer_task_name(c->task), "algorithm", trainer_algo_name(c->algo), "library",
        trainer_result_library(r), "signature", s_signature(t, c), "hyperparameters",
        hp, "validation", val, "result", "metric", trainer_result_metric_name(r),
        "value", s_num(trainer_result_metric(r)), "higher_is_better",
        trainer_result_higher_better(r), "rounds", trainer_result_rounds(r),
        "best_round", trainer_result_best_round(r), "metrics", s_metrics(r),
        "feature_importances", s_importances(t, r), "data", "reference", c->data,
        "rows", (json_int_t)trainer_table_rows(t), "seed", (json_int_t)c->seed);
}

/* A YAML single-quoted scalar: quotes doubled. */
static void s_yaml_quoted(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* MLflow's MLmodel: the xgboost flavor (python_function through
 * mlflow.xgboost) and the signature as MLflow column specs. */
static int s_mlmodel(const char *path, const trainer_table_t *t,
                     const trainer_result_t *r, const char *model_file)
{
    json_t *in = json_array();
    for (size_t j = 0; j < trainer_table_features(t); j++)
        json_array_append_new(
            in, json_pack("{s:s, s:s, s:b}", "type", "float", "name",
                          trainer_table_feature_name(t, j), "required", 1));
    char *ins = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    FILE *f = fopen(path, "w");
    if (!f || !ins) {
        free(ins);
        if (f) fclose(f);
        return -1;
    }
    const char *ver = trainer_result_library(r) + strlen("xgboost ");
    bool ubj = strstr(model_file, ".ubj") != NULL;
    fprintf(f,
            "artifact_path: model\nflavors:\n  python_function:\n    data: %s\n"
            "    loader_module: mlflow.xgboost\n    python_version: 3.11.2\n"
            "  xgboost:\n    code: null\n    data: %s\n"
            "    model_class: xgboost.core.Booster\n    model_format: %s\n"
            "    xgb_version: %s\nsignature:\n  inputs: ",
            model_file, model_file, ubj ? "ubj" : "json", ver);
    s_yaml_quoted(f, ins);
    fprintf(f,
            "\n  outputs: '[{\"type\": \"tensor\", \"tensor-spec\": {\"dtype\": "
            "\"float32\", \"shape\": [-1]}}]'\n");
    free(ins);
    return fclose(f) == 0 ? 0 : -1;
}

int trainer_card_write_dir(const char *dir, const trainer_table_t *t,
                           const trainer_config_t *c, const trainer_result_t *r,
                           bool ubj, cairn_err_t *err)
{
    if (s_mkdirs(dir, err) != 0) return -1;
    const char *mf = trainer_card_model_file(r, ubj);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, mf);
    if (trainer_result_save(r, path, err) != 0) return -1;
    json_t *card = s_card(t, c, r, mf);
    snprintf(path, sizeof path, "%s/card.json", dir);
    int rc = card ? json_dump_file(card, path, JSON_INDENT(2) | JSON_REAL_PRECISION(17))
                  : -1;
    json_decref(card);
    if (rc != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "writing the model card %s failed", path);
    if (strncmp(trainer_result_library(r), "xgboost", 7) != 0) return 0;
    snprintf(path, sizeof path, "%s/MLmodel", dir);
    if (s_mlmodel(path, t, r, mf) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "writing %s failed", path);
    return 0;
}
