/* sdk/realfmt.h — a double as the fewest decimal digits that read back
 * to it exactly, without printf.
 *
 * Why: a search page of 100 runs carries 2,000 metric values, and finding
 * each one's shortest form with snprintf and strtod cost the gateway as
 * much as the search itself. This works in exact integer arithmetic
 * (128 bits): for a candidate number of fraction digits k, the nearest
 * decimal m / 10^k is computed exactly from the double's bits, and it
 * reads back to the double exactly when it lies within half a gap of it.
 * The least such k is found by halving, since a decimal with more digits
 * is never farther.
 *
 * It covers the reals printed without an exponent (1e-4 <= |d| < 1e15)
 * and zero; the caller prints the rest another way. Part of cairn_json. */
#ifndef CAIRN_REALFMT_H
#define CAIRN_REALFMT_H

#include <stddef.h>

#define CAIRN_REALFMT_MAX 40 /* bytes of out, NUL included */

/* Writes d's shortest exact decimal ("0.1", "-12.5", "100.0": a real
 * always has a point) into out and returns its length; returns 0 and
 * writes nothing when d is outside the range above or not finite. */
size_t cairn_real_shortest(double d, char out[CAIRN_REALFMT_MAX]);

#endif
