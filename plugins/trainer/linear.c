/* The linear algorithm (trainer_int.h): ridge regression in closed form and
 * L2 logistic regression by Newton's method (one-vs-rest beyond two
 * classes), on features standardised with the training rows' mean and
 * population standard deviation; a missing value is the mean (0 once
 * standardised). The intercept is not penalised. Objectives match
 * scikit-learn's: ridge minimises |y - Xw - b|^2 + alpha |w|^2, logistic
 * minimises C * sum(logloss) + |w|^2 / 2. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "trainer_int.h"

struct linear_model {
    size_t d, k;             /* features; coefficient rows (1, or K for OvR) */
    double *mean, *scale;    /* d each */
    double *coef, *icept;    /* k x d, k */
    char **names, **classes; /* d feature names; class labels (K) or NULL */
    size_t nclasses;
    char objective[16];
};

static void s_model_free(linear_model_t *m)
{
    if (!m) return;
    for (size_t j = 0; m->names && j < m->d; j++) free(m->names[j]);
    for (size_t j = 0; m->classes && j < m->nclasses; j++) free(m->classes[j]);
    free(m->names);
    free(m->classes);
    free(m->mean);
    free(m->scale);
    free(m->coef);
    free(m->icept);
    free(m);
}

void trainer_linear_free(trainer_result_t *r)
{
    s_model_free(r->linear);
    r->linear = NULL;
}

/* Solve A x = b in place (A n x n symmetric positive definite, b -> x) by
 * Cholesky; -1 when A is not positive definite. */
static int s_cholesky_solve(double *a, double *b, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        double s = a[j * n + j];
        for (size_t k = 0; k < j; k++) s -= a[j * n + k] * a[j * n + k];
        if (s <= 0) return -1;
        double l = sqrt(s);
        a[j * n + j] = l;
        for (size_t i = j + 1; i < n; i++) {
            double v = a[i * n + j];
            for (size_t k = 0; k < j; k++) v -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = v / l;
        }
    }
    for (size_t i = 0; i < n; i++) { /* L y = b */
        double v = b[i];
        for (size_t k = 0; k < i; k++) v -= a[i * n + k] * b[k];
        b[i] = v / a[i * n + i];
    }
    for (size_t i = n; i-- > 0;) { /* L^T x = y */
        double v = b[i];
        for (size_t k = i + 1; k < n; k++) v -= a[k * n + i] * b[k];
        b[i] = v / a[i * n + i];
    }
    return 0;
}

/* The standardised design of rows: n x d, missing values 0 (the mean). */
static double *s_design(const trainer_table_t *t, const linear_model_t *m,
                        const uint32_t *rows, size_t n, float *y)
{
    size_t d = m->d;
    float *x = malloc((n ? n : 1) * d * sizeof *x);
    double *z = malloc((n ? n : 1) * d * sizeof *z);
    if (!x || !z) {
        free(x);
        free(z);
        return NULL;
    }
    trainer_table_gather(t, rows, n, x, y);
    for (size_t i = 0; i < n * d; i++) {
        size_t j = i % d;
        z[i] = isnan(x[i]) ? 0.0 : ((double)x[i] - m->mean[j]) / m->scale[j];
    }
    free(x);
    return z;
}

/* Mean and population deviation of each feature over the training rows. */
static int s_scaling(const trainer_table_t *t, linear_model_t *m, const uint32_t *rows,
                     size_t n)
{
    size_t d = m->d;
    float *x = malloc((n ? n : 1) * d * sizeof *x);
    double *cnt = calloc(d, sizeof *cnt);
    if (!x || !cnt) {
        free(x);
        free(cnt);
        return -1;
    }
    trainer_table_gather(t, rows, n, x, NULL);
    for (size_t i = 0; i < n * d; i++)
        if (!isnan(x[i])) m->mean[i % d] += x[i], cnt[i % d] += 1;
    for (size_t j = 0; j < d; j++) m->mean[j] = cnt[j] ? m->mean[j] / cnt[j] : 0;
    for (size_t i = 0; i < n * d; i++)
        if (!isnan(x[i])) {
            double v = x[i] - m->mean[i % d];
            m->scale[i % d] += v * v;
        }
    for (size_t j = 0; j < d; j++) {
        double s = cnt[j] ? sqrt(m->scale[j] / cnt[j]) : 0;
        m->scale[j] = s > 0 ? s : 1.0;
    }
    free(x);
    free(cnt);
    return 0;
}

static int s_ridge(linear_model_t *m, const double *z, const float *y, size_t n,
                   double alpha)
{
    size_t d = m->d;
    double *a = calloc(d * d + d, sizeof *a), *b = a ? a + d * d : NULL;
    if (!a) return -1;
    double ym = 0;
    for (size_t i = 0; i < n; i++) ym += y[i];
    ym /= (double)n;
    double *zm = calloc(d ? d : 1, sizeof *zm);
    if (!zm) {
        free(a);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) zm[j] += z[i * d + j] / (double)n;
    /* Centred normal equations: the intercept takes the means. */
    for (size_t i = 0; i < n; i++) {
        const double *zi = z + i * d;
        double yc = y[i] - ym;
        for (size_t j = 0; j < d; j++) {
            double vj = zi[j] - zm[j];
            b[j] += vj * yc;
            for (size_t k = 0; k <= j; k++) a[j * d + k] += vj * (zi[k] - zm[k]);
        }
    }
    for (size_t j = 0; j < d; j++) {
        a[j * d + j] += alpha;
        for (size_t k = 0; k < j; k++) a[k * d + j] = a[j * d + k];
    }
    if (d && s_cholesky_solve(a, b, d) != 0) {
        free(a);
        free(zm);
        return -1;
    }
    double ic = ym;
    for (size_t j = 0; j < d; j++) {
        m->coef[j] = b[j];
        ic -= b[j] * zm[j];
    }
    m->icept[0] = ic;
    free(a);
    free(zm);
    return 0;
}

/* The penalised objective sum(logloss) + |w|^2 / (2C) at w (d + 1). */
static double s_logistic_loss(const double *w, const double *z, const float *y,
                              size_t n, size_t d, float cls, double inv_c)
{
    double loss = 0;
    for (size_t j = 0; j < d; j++) loss += 0.5 * inv_c * w[j] * w[j];
    for (size_t i = 0; i < n; i++) {
        double s = w[d];
        for (size_t j = 0; j < d; j++) s += w[j] * z[i * d + j];
        /* log(1 + e^-m) for margin m, without overflow */
        double m = y[i] == cls ? s : -s;
        loss += m > 0 ? log1p(exp(-m)) : -m + log1p(exp(m));
    }
    return loss;
}

/* Binary logistic regression of (y == cls) by Newton's method into coef
 * row r: w and the intercept as one vector of d + 1. A step that does not
 * lower the objective is halved (from w = 0 a full step can overshoot when
 * the penalty is weak). */
static int s_logistic(linear_model_t *m, size_t row, const double *z, const float *y,
                      size_t n, float cls, const trainer_config_t *c)
{
    size_t d = m->d, p = d + 1;
    double *w = calloc(p, sizeof *w), *h = malloc(p * p * sizeof *h),
           *g = malloc(p * sizeof *g);
    int rc = -1;
    if (!w || !h || !g) goto done;
    double inv_c = 1.0 / c->linear_c;
    for (int it = 0; it < c->linear_max_iter; it++) {
        memset(h, 0, p * p * sizeof *h);
        for (size_t j = 0; j < d; j++) g[j] = inv_c * w[j], h[j * p + j] = inv_c;
        g[d] = 0;
        for (size_t i = 0; i < n; i++) {
            const double *zi = z + i * d;
            double s = w[d];
            for (size_t j = 0; j < d; j++) s += w[j] * zi[j];
            double pr = 1.0 / (1.0 + exp(-s)), r = pr - (y[i] == cls ? 1.0 : 0.0);
            double wt = pr * (1 - pr);
            for (size_t j = 0; j < p; j++) {
                double vj = j < d ? zi[j] : 1.0;
                g[j] += r * vj;
                for (size_t k = 0; k <= j; k++)
                    h[j * p + k] += wt * vj * (k < d ? zi[k] : 1.0);
            }
        }
        for (size_t j = 0; j < p; j++)
            for (size_t k = 0; k < j; k++) h[k * p + j] = h[j * p + k];
        if (s_cholesky_solve(h, g, p) != 0) goto done;
        double before = s_logistic_loss(w, z, y, n, d, cls, inv_c), scale = 1, step = 0;
        for (int half = 0; half < 30; half++, scale /= 2) {
            for (size_t j = 0; j < p; j++) w[j] -= scale * g[j];
            if (s_logistic_loss(w, z, y, n, d, cls, inv_c) <= before) break;
            for (size_t j = 0; j < p; j++) w[j] += scale * g[j];
        }
        for (size_t j = 0; j < p; j++) step = fmax(step, fabs(scale * g[j]));
        if (step < c->linear_tol) break;
    }
    memcpy(m->coef + row * d, w, d * sizeof *w);
    m->icept[row] = w[d];
    rc = 0;
done:
    free(w);
    free(h);
    free(g);
    return rc;
}

/* Predictions of the model for rows z: k values a row (probabilities, or
 * the value), into out. */
static void s_predict(const linear_model_t *m, const double *z, size_t n, double *out)
{
    size_t d = m->d, k = m->k;
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (size_t r = 0; r < k; r++) {
            double s = m->icept[r];
            for (size_t j = 0; j < d; j++) s += m->coef[r * d + j] * z[i * d + j];
            out[i * k + r] = m->objective[0] == 'r' ? s : 1.0 / (1.0 + exp(-s));
            sum += out[i * k + r];
        }
        if (k > 1)
            for (size_t r = 0; r < k; r++) out[i * k + r] /= sum;
    }
}

/* logloss (binary), mlogloss (OvR) or rmse of the model on rows z, y. */
static double s_metric(const linear_model_t *m, const double *z, const float *y,
                       size_t n)
{
    double *p = malloc((n ? n : 1) * m->k * sizeof *p), acc = 0;
    if (!p) return NAN;
    s_predict(m, z, n, p);
    const double eps = 1e-15;
    for (size_t i = 0; i < n; i++) {
        if (m->objective[0] == 'r') {
            acc += (p[i] - y[i]) * (p[i] - y[i]);
        } else if (m->k == 1) {
            double q = fmin(fmax(p[i], eps), 1 - eps);
            acc -= y[i] > 0.5f ? log(q) : log(1 - q);
        } else {
            acc -= log(fmin(fmax(p[i * m->k + (size_t)y[i]], eps), 1 - eps));
        }
    }
    free(p);
    return m->objective[0] == 'r' ? sqrt(acc / (double)n) : acc / (double)n;
}

static linear_model_t *s_model_new(const trainer_table_t *t, const trainer_config_t *c)
{
    linear_model_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->d = trainer_table_features(t);
    size_t k = trainer_table_classes(t);
    m->k = c->task == TRAINER_REGRESSION || k == 2 ? 1 : k;
    snprintf(m->objective, sizeof m->objective, "%s",
             c->task == TRAINER_REGRESSION ? "ridge"
             : m->k == 1                   ? "logistic"
                                           : "ovr-logistic");
    size_t dd = m->d ? m->d : 1;
    m->mean = calloc(dd, sizeof *m->mean);
    m->scale = calloc(dd, sizeof *m->scale);
    m->coef = calloc(dd * m->k, sizeof *m->coef);
    m->icept = calloc(m->k, sizeof *m->icept);
    m->names = calloc(dd, sizeof *m->names);
    bool ok = m->mean && m->scale && m->coef && m->icept && m->names;
    for (size_t j = 0; ok && j < m->d; j++)
        ok = (m->names[j] = strdup(trainer_table_feature_name(t, j))) != NULL;
    if (ok && k) {
        ok = (m->classes = calloc(k, sizeof *m->classes)) != NULL;
        m->nclasses = k;
        for (size_t j = 0; ok && j < k; j++)
            ok = (m->classes[j] = strdup(trainer_table_class(t, j))) != NULL;
    }
    if (!ok) {
        s_model_free(m);
        return NULL;
    }
    return m;
}

/* Fit one model on rows and, when given, measure it on valid. metrics[0]
 * train, [1] validation. */
static int s_fit(const trainer_table_t *t, const trainer_config_t *c,
                 const trainer_rows_t *rows, linear_model_t **out, double metrics[2],
                 cairn_err_t *err)
{
    linear_model_t *m = s_model_new(t, c);
    float *y = malloc((rows->n_train + rows->n_valid + 1) * sizeof *y);
    double *z = NULL, *zv = NULL;
    int rc = -1;
    if (!m || !y || s_scaling(t, m, rows->train, rows->n_train) != 0 ||
        !(z = s_design(t, m, rows->train, rows->n_train, y))) {
        cairn_err_oom(err, "for a linear model");
        goto done;
    }
    if (m->objective[0] == 'r') {
        rc = s_ridge(m, z, y, rows->n_train, c->linear_alpha);
    } else {
        rc = 0;
        for (size_t r = 0; rc == 0 && r < m->k; r++)
            rc = s_logistic(m, r, z, y, rows->n_train, m->k == 1 ? 1.0f : (float)r, c);
    }
    if (rc != 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "hyperparameters: the linear system is singular (raise %s)",
                      m->objective[0] == 'r' ? "alpha" : "1/C");
        goto done;
    }
    metrics[0] = s_metric(m, z, y, rows->n_train);
    metrics[1] = NAN;
    if (rows->n_valid) {
        float *yv = y + rows->n_train;
        if (!(zv = s_design(t, m, rows->valid, rows->n_valid, yv))) {
            rc = cairn_err_oom(err, "for a linear model");
            goto done;
        }
        metrics[1] = s_metric(m, zv, yv, rows->n_valid);
    }
    *out = m;
    m = NULL;
done:
    s_model_free(m);
    free(y);
    free(z);
    free(zv);
    return rc;
}

int trainer_linear_train(const trainer_table_t *t, const trainer_config_t *c,
                         const trainer_rows_t *folds, size_t nfolds,
                         trainer_round_fn *fn, void *arg, trainer_result_t *r,
                         cairn_err_t *err)
{
    double mean[2] = {0, 0}, v[2];
    for (size_t f = 0; f < nfolds; f++) {
        linear_model_t *m = NULL;
        if (s_fit(t, c, &folds[f], &m, v, err) != 0) return -1;
        mean[0] += v[0] / (double)nfolds;
        mean[1] += v[1] / (double)nfolds;
        if (nfolds == 1)
            r->linear = m;
        else
            s_model_free(m);
    }
    if (nfolds > 1) { /* the final model: every row */
        size_t n = trainer_table_rows(t);
        uint32_t *all = malloc(n * sizeof *all);
        if (!all) return cairn_err_oom(err, "for the final model's rows");
        for (size_t i = 0; i < n; i++) all[i] = (uint32_t)i;
        trainer_rows_t rows = {all, NULL, n, 0};
        int rc = s_fit(t, c, &rows, &r->linear, v, err);
        free(all);
        if (rc != 0) return -1;
    }
    linear_model_t *m = r->linear;
    const char *metric = m->objective[0] == 'r' ? "rmse"
                         : m->k == 1            ? "logloss"
                                                : "mlogloss";
    char names[2][TRAINER_METRIC_NAME_MAX];
    snprintf(names[0], sizeof names[0], "train-%s", metric);
    snprintf(names[1], sizeof names[1], "validation-%s", metric);
    trainer_metric_t ms[2] = {{names[0], mean[0]}, {names[1], mean[1]}};
    trainer_result_set_final(r, ms, 2);
    if (fn && fn(arg, 0, ms, 2, err) != 0) return -1;
    r->rounds = 1;
    snprintf(r->objective, sizeof r->objective, "%s", m->objective);
    snprintf(r->library, sizeof r->library, "cairn-linear 1");
    /* Importance: the largest |coefficient| of a standardised feature. */
    r->imp[0] = calloc(m->d ? m->d : 1, sizeof *r->imp[0]);
    if (!r->imp[0]) return cairn_err_oom(err, "for feature importances");
    r->imp_kind[0] = "abs_coef";
    r->n_imp = 1;
    for (size_t k = 0; k < m->k; k++)
        for (size_t j = 0; j < m->d; j++)
            r->imp[0][j] = fmax(r->imp[0][j], fabs(m->coef[k * m->d + j]));
    return 0;
}

static json_t *s_doubles(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static json_t *s_strings(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

int trainer_linear_save(const trainer_result_t *r, const char *path, cairn_err_t *err)
{
    const linear_model_t *m = r->linear;
    json_t *coef = json_array();
    for (size_t k = 0; coef && k < m->k; k++)
        json_array_append_new(coef, s_doubles(m->coef + k * m->d, m->d));
    json_t *o = json_pack("{s:s, s:i, s:s, s:o, s:o, s:o, s:o, s:o}", "format",
                          "cairn-linear", "version", 1, "objective", m->objective,
                          "features", s_strings(m->names, m->d), "mean",
                          s_doubles(m->mean, m->d), "scale", s_doubles(m->scale, m->d),
                          "coef", coef, "intercept", s_doubles(m->icept, m->k));
    if (o && m->classes)
        json_object_set_new(o, "classes", s_strings(m->classes, m->nclasses));
    int rc = o ? json_dump_file(o, path, JSON_INDENT(1)) : -1;
    json_decref(o);
    if (rc != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "writing the linear model to %s failed", path);
    return 0;
}
