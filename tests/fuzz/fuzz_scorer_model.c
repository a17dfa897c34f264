/* libFuzzer target: the scorer's model loader (plugins/scorer/model.h),
 * which reads whatever model a user registers and deploys: XGBoost's JSON
 * or UBJSON, the input here as it would be a file's bytes.
 *
 * A load that succeeds must give a model whose sizes are within the
 * limits; it then predicts one row of NaNs and one of zeros (each value
 * of a softprob row in [0, 1], a softmax class index below num_class),
 * margins too, and a row of the wrong width must be refused. A load that
 * fails must say why (400 or 413, a sentence).
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds:
 * corpus/fuzz_scorer_model (tests/fuzz/make_corpus.py). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_predict(const scorer_model_t *m, float fill)
{
    size_t nf = scorer_model_features(m), no = scorer_model_outputs(m);
    size_t ng = scorer_model_groups(m);
    float *row = malloc((nf + 1) * sizeof *row), *out = malloc(ng * sizeof *out);
    REQUIRE(row && out);
    for (size_t i = 0; i <= nf; i++) row[i] = fill;
    cairn_err_t err = {0};
    REQUIRE(scorer_model_predict(m, row, 1, nf, out, &err) == 0);
    const char *obj = scorer_model_objective(m);
    for (size_t i = 0; i < no; i++) {
        if (strcmp(obj, "multi:softprob") == 0)
            REQUIRE(!(out[i] < 0.0f || out[i] > 1.0f));
        if (strcmp(obj, "multi:softmax") == 0)
            REQUIRE(out[i] >= 0 && out[i] < (float)ng);
    }
    REQUIRE(scorer_model_margin(m, row, 1, nf, out, &err) == 0);
    REQUIRE(scorer_model_predict(m, row, 1, nf + 1, out, &err) == -1 && err.st == 400);
    free(row);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scorer_model_t *m = NULL;
    cairn_err_t err = {0};
    if (scorer_model_load_mem(data, size, &m, &err) != 0) {
        REQUIRE(m == NULL && (err.st == 400 || err.st == 413 || err.st == 500));
        REQUIRE(err.msg[0] != '\0');
        return 0;
    }
    REQUIRE(scorer_model_features(m) <= SCORER_MAX_FEATURES);
    REQUIRE(scorer_model_trees(m) <= SCORER_MAX_TREES);
    REQUIRE(scorer_model_nodes(m) <= SCORER_MAX_NODES);
    REQUIRE(scorer_model_groups(m) >= 1 &&
            scorer_model_groups(m) <= SCORER_MAX_CLASSES);
    for (size_t i = 0; i < scorer_model_features(m); i++) {
        (void)scorer_model_feature_name(m, i);
        (void)scorer_model_feature_type(m, i);
    }
    s_predict(m, NAN);
    s_predict(m, 0.0f);
    scorer_model_destroy(&m);
    REQUIRE(m == NULL);
    return 0;
}
