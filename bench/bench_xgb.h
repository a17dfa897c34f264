/* XGBoost's own prediction, for the benches that hold Cairn's scorer
 * against it (scorer_model.c, scorer_http.c): one copy of the call. */
#ifndef CAIRN_BENCH_XGB_H
#define CAIRN_BENCH_XGB_H

#include <stddef.h>
#include <xgboost/c_api.h>

/* XGBoost's in-place prediction of n dense rows of nf float features at x
 * (NaN: missing; XGBoost requires "missing" in the config), with
 * "cache_id": 0 (1.7.4 aborts without it): 0 with *out (borrowed,
 * thread-local in XGBoost, until this thread's next call), or XGBoost's
 * nonzero status (XGBGetLastError says why). */
int bench_xgb_predict(BoosterHandle b, const float *x, size_t n, int nf,
                      const float **out);

#endif
