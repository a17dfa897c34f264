/* libFuzzer target: a scoring request's body (plugins/scorer/input.h), the
 * bytes any HTTP client of an endpoint sends.
 *
 * The first byte picks the model the body is read for: how many features
 * (1 to 8), whether they have names ("f0", "f1", ...) and whether the body
 * is CSV (bit 4), msgpack (bit 5) or JSON. The rest is the body. It is read into rows
 * or refused with a 400/413 sentence; rows have the model's width, and a cell is finite
 * or NaN.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_scorer_input
 * (tests/fuzz/make_corpus.py). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "input.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static const char *const s_names[] = {"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    ep_features_t f = {.n = (size_t)(data[0] & 7) + 1,
                       .names = data[0] & 8 ? s_names : NULL};
    ep_rows_t rows;
    cairn_err_t err = {0};
    int rc;
    if (data[0] & 16)
        rc = ep_input_read_csv((const char *)data + 1, size - 1, &f, &rows, &err);
    else if (data[0] & 32)
        rc = ep_input_read_msgpack(data + 1, size - 1, &f, &rows, &err);
    else
        rc = ep_input_read((const char *)data + 1, size - 1, &f, &rows, &err);
    if (rc != 0) {
        REQUIRE(err.st == 400 || err.st == 413);
        REQUIRE(err.msg[0]);
        return 0;
    }
    REQUIRE(rows.ncols == f.n && rows.nrows >= 1 && rows.nrows <= EP_ROWS_MAX);
    for (size_t i = 0; i < rows.nrows * rows.ncols; i++)
        REQUIRE(isfinite(rows.v[i]) || isnan(rows.v[i]));
    ep_rows_free(&rows);
    return 0;
}
