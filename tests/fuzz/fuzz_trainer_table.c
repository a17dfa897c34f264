/* libFuzzer target: the trainer's CSV loader (plugins/trainer/table.h),
 * which reads whatever CSV a user names as a train job's data.
 *
 * The first byte picks the task (bit 0: regression), the encoding (bit 1:
 * XGBoost categoricals, else one-hot) and the target (bit 2: the first
 * header cell, else "y"); the rest is the file. A load that succeeds must
 * give at least one row, features within the bound, class labels in
 * 0..K-1 with K >= 2, and every row gathered without fault; one that
 * fails must say why.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds:
 * corpus/fuzz_trainer_table (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(const trainer_table_t *t, trainer_task_t task)
{
    size_t rows = trainer_table_rows(t), nf = trainer_table_features(t);
    REQUIRE(rows >= 1 && nf <= TRAINER_FEATURES_MAX);
    size_t k = trainer_table_classes(t);
    const float *l = trainer_table_labels(t);
    for (size_t r = 0; r < rows; r++) {
        if (task == TRAINER_CLASSIFICATION)
            REQUIRE(k >= 2 && l[r] >= 0 && l[r] < (float)k);
        else
            REQUIRE(isfinite(l[r]));
    }
    for (size_t i = 0; i < trainer_table_columns(t); i++)
        REQUIRE(trainer_table_column_name(t, i) && trainer_table_column_type(t, i));
    float *x = malloc((nf ? nf : 1) * sizeof *x);
    REQUIRE(x);
    for (uint32_t r = 0; r < rows; r++) {
        float y;
        trainer_table_gather(t, &r, 1, x, &y);
    }
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t flags = data[0];
    const char *csv = (const char *)data + 1;
    size_t len = size - 1;
    char target[65] = "y";
    if (flags & 4) {
        size_t n = 0;
        while (n < len && n < 64 && csv[n] != ',' && csv[n] != '\n' && csv[n] != '\r')
            n++;
        memcpy(target, csv, n);
        target[n] = '\0';
    }
    trainer_table_opts_t o = {
        .target = target,
        .task = (flags & 1) ? TRAINER_REGRESSION : TRAINER_CLASSIFICATION,
        .categorical = (flags & 2) != 0};
    cairn_err_t err = {0};
    trainer_table_t *t = trainer_table_load_mem(csv, len, &o, &err);
    if (!t) {
        REQUIRE(err.st >= 400 && err.msg[0]);
        return 0;
    }
    s_check(t, o.task);
    trainer_table_destroy(&t);
    return 0;
}
