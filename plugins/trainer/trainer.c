/* The trainer's in-process API (trainer.h): validation rows, the result,
 * and the choice of algorithm (xgb.c, linear.c). */
#define _GNU_SOURCE
#include "trainer_int.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* splitmix64 (Steele, Lea, Flood): the generator docs/TRAINER.md gives. */
static uint64_t s_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void trainer_permutation(size_t n, uint64_t seed, uint32_t *perm)
{
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    uint64_t state = seed;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(s_splitmix(&state) % i);
        uint32_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
}

size_t trainer_split_valid_rows(size_t n, double split)
{
    size_t v = (size_t)floor((double)n * split + 0.5);
    return v ? v : 1;
}

int trainer_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bool trainer_metric_higher_better(const char *name)
{
    static const char *const up[] = {"auc", "aucpr", "map", "ndcg", "pre"};
    for (size_t i = 0; i < sizeof up / sizeof *up; i++) {
        size_t n = strlen(up[i]);
        if (strncmp(name, up[i], n) == 0 && (name[n] == '\0' || name[n] == '@'))
            return true;
    }
    return false;
}

trainer_result_t *trainer_result_new(trainer_algo_t algo, size_t nfeat)
{
    trainer_result_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->algo = algo;
    r->nfeat = nfeat;
    return r;
}

void trainer_result_set_final(trainer_result_t *r, const trainer_metric_t *m, size_t n)
{
    r->n_final = n < TRAINER_FINAL_MAX ? n : TRAINER_FINAL_MAX;
    const char *primary = NULL;
    for (size_t i = 0; i < r->n_final; i++) {
        snprintf(r->final_name[i], sizeof r->final_name[i], "%s", m[i].name);
        r->final_value[i] = m[i].value;
        if (strncmp(m[i].name, "validation-", 11) == 0 || !primary) {
            primary = m[i].name;
            r->value = m[i].value;
        }
    }
    if (!primary) return;
    const char *dash = strchr(primary, '-');
    snprintf(r->metric, sizeof r->metric, "%s", dash ? dash + 1 : primary);
    r->higher_better = trainer_metric_higher_better(r->metric);
}

/* ---- the rows of each training ---------------------------------------------- */

typedef struct rowsets {
    uint32_t *perm, *buf;
    trainer_rows_t *folds;
    size_t nfolds;
} rowsets_t;

static void s_rowsets_free(rowsets_t *s)
{
    free(s->perm);
    free(s->buf);
    free(s->folds);
}

static int s_rowsets(size_t n, const trainer_config_t *c, rowsets_t *s,
                     cairn_err_t *err)
{
    memset(s, 0, sizeof *s);
    size_t k = c->folds ? (size_t)c->folds : 1;
    if (n < 2 * k)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "validation: the data has %zu rows; %s needs at least %zu",
                             n, c->folds ? "k-fold" : "a split", 2 * k);
    s->perm = malloc(n * sizeof *s->perm);
    s->buf = malloc(n * k * sizeof *s->buf);
    s->folds = calloc(k, sizeof *s->folds);
    if (!s->perm || !s->buf || !s->folds) {
        s_rowsets_free(s);
        return cairn_err_oom(err, "for the validation rows");
    }
    s->nfolds = k;
    trainer_permutation(n, c->seed, s->perm);
    if (!c->folds) {
        size_t nv = trainer_split_valid_rows(n, c->split);
        if (nv >= n) nv = n - 1;
        s->folds[0] = (trainer_rows_t){s->perm, s->perm + (n - nv), n - nv, nv};
        return 0;
    }
    /* Fold f: its validation rows first in its slice of buf, then its
     * train rows, each in permutation order. */
    for (size_t f = 0; f < k; f++) {
        size_t lo = f * n / k, hi = (f + 1) * n / k;
        uint32_t *b = s->buf + f * n;
        memcpy(b, s->perm + lo, (hi - lo) * sizeof *b);
        memcpy(b + (hi - lo), s->perm, lo * sizeof *b);
        memcpy(b + (hi - lo) + lo, s->perm + hi, (n - hi) * sizeof *b);
        s->folds[f] = (trainer_rows_t){b + (hi - lo), b, n - (hi - lo), hi - lo};
    }
    return 0;
}

int trainer_train(const trainer_table_t *t, const trainer_config_t *c,
                  trainer_round_fn *fn, void *arg, trainer_result_t **out,
                  cairn_err_t *err)
{
    *out = NULL;
    if (!trainer_table_features(t))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "data: no columns besides the target \"%s\" to learn from",
                             c->target);
    rowsets_t rs;
    if (s_rowsets(trainer_table_rows(t), c, &rs, err) != 0) return -1;
    trainer_result_t *r = trainer_result_new(c->algo, trainer_table_features(t));
    int rc = -1;
    if (!r) {
        cairn_err_oom(err, "for a training result");
    } else if (c->algo == TRAINER_LINEAR) {
        rc = trainer_linear_train(t, c, rs.folds, rs.nfolds, fn, arg, r, err);
    } else {
        rc = trainer_xgb_train(t, c, rs.folds, rs.nfolds, fn, arg, r, err);
    }
    s_rowsets_free(&rs);
    if (rc != 0) {
        trainer_result_destroy(&r);
        return -1;
    }
    *out = r;
    return 0;
}

void trainer_result_destroy(trainer_result_t **self_p)
{
    if (!self_p || !*self_p) return;
    trainer_result_t *r = *self_p;
    trainer_xgb_free(r);
    trainer_linear_free(r);
    for (size_t k = 0; k < 2; k++) free(r->imp[k]);
    free(r);
    *self_p = NULL;
}

/* ---- getters ------------------------------------------------------------------- */

const char *trainer_result_metric_name(const trainer_result_t *r)
{
    return r->metric;
}

double trainer_result_metric(const trainer_result_t *r)
{
    return r->value;
}

bool trainer_result_higher_better(const trainer_result_t *r)
{
    return r->higher_better;
}

size_t trainer_result_metrics(const trainer_result_t *r)
{
    return r->n_final;
}

trainer_metric_t trainer_result_metric_at(const trainer_result_t *r, size_t i)
{
    return (trainer_metric_t){r->final_name[i], r->final_value[i]};
}

int trainer_result_rounds(const trainer_result_t *r)
{
    return r->rounds;
}

int trainer_result_best_round(const trainer_result_t *r)
{
    return r->best_round;
}

const char *trainer_result_objective(const trainer_result_t *r)
{
    return r->objective;
}

size_t trainer_result_importance_kinds(const trainer_result_t *r)
{
    return r->n_imp;
}

const char *trainer_result_importance_kind(const trainer_result_t *r, size_t k)
{
    return r->imp_kind[k];
}

const double *trainer_result_importance(const trainer_result_t *r, size_t k)
{
    return r->imp[k];
}

const char *trainer_result_library(const trainer_result_t *r)
{
    return r->library;
}

int trainer_result_save(const trainer_result_t *r, const char *path, cairn_err_t *err)
{
    const char *dot = strrchr(path, '.');
    bool json = dot && strcmp(dot, ".json") == 0, ubj = dot && strcmp(dot, ".ubj") == 0;
    if (r->algo == TRAINER_LINEAR) {
        if (!json)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "a linear model is saved as .json, not %s", path);
        return trainer_linear_save(r, path, err);
    }
    if (!json && !ubj)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "an XGBoost model is saved as .json or .ubj, not %s",
                             path);
    return trainer_xgb_save(r, path, err);
}
