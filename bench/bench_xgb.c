/* bench_xgb.h: XGBoost's in-place prediction from a dense float array. */
#include "bench_xgb.h"

#include <stdint.h>
#include <stdio.h>

int bench_xgb_predict(BoosterHandle b, const float *x, size_t n, int nf,
                      const float **out)
{
    static const char cfg[] =
        "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
        "\"iteration_end\": 0, \"strict_shape\": false, "
        "\"missing\": NaN, \"cache_id\": 0}";
    char arr[256];
    snprintf(arr, sizeof arr,
             "{\"data\": [%zu, true], \"shape\": [%zu, %d], \"typestr\": \"<f4\", "
             "\"version\": 3}",
             (size_t)(uintptr_t)x, n, nf);
    const bst_ulong *shape;
    bst_ulong dim;
    return XGBoosterPredictFromDense(b, arr, cfg, NULL, &shape, &dim, out);
}
