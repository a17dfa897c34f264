/* A double's shortest exact decimal, in integer arithmetic (realfmt.h). */
#include "realfmt.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

static const uint64_t P10[20] = {1ull,
                                 10ull,
                                 100ull,
                                 1000ull,
                                 10000ull,
                                 100000ull,
                                 1000000ull,
                                 10000000ull,
                                 100000000ull,
                                 1000000000ull,
                                 10000000000ull,
                                 100000000000ull,
                                 1000000000000ull,
                                 10000000000000ull,
                                 100000000000000ull,
                                 1000000000000000ull,
                                 10000000000000000ull,
                                 100000000000000000ull,
                                 1000000000000000000ull,
                                 10000000000000000000ull};

/* 10^k for 0 <= k <= 22 (past 19, as a product: 10^22 < 2^74). */
static u128 s_pow10(int k)
{
    return k < 20 ? (u128)P10[k] : (u128)P10[19] * P10[k - 19];
}

/* The double f * 2^-s (f of 53 bits, s > 0) and the nearest decimal of k
 * fraction digits (k < 0: a multiple of 10^-k), m / 10^k. */
typedef struct {
    uint64_t f;
    int s;
} real_t;

/* Whether the nearest decimal of k fraction digits reads back to r, and
 * if so that decimal's m. With N / D = r * 10^k exactly, m = round(N / D)
 * is off by |m*D - N| / D; it reads back when it is nearer than half the
 * gap between doubles, 2^-s / 2, which is |m*D - N| < 10^max(k,0) / 2.
 * The gap below a power of two is half the one above. Ties count as
 * misses: one more digit is then printed, never a wrong one. */
static bool s_reads_back(real_t r, int k, uint64_t *m_out)
{
    u128 n, d, q, rem;
    if (k >= 0) {
        n = (u128)r.f * s_pow10(k);
        d = (u128)1 << r.s;
        q = n >> r.s;
        rem = n & (d - 1);
    } else {
        n = r.f;
        d = s_pow10(-k) << r.s;
        q = n / d;
        rem = n % d;
    }
    bool up = 2 * rem >= d, below = !up && rem != 0;
    u128 off = up ? d - rem : rem;
    u128 limit = s_pow10(k > 0 ? k : 0);
    bool pow2 = r.f == (uint64_t)1 << 52;
    if (!(below && pow2 ? 4 * off < limit : 2 * off < limit)) return false;
    *m_out = (uint64_t)(q + up);
    return true;
}

/* The least k in [lo, hi] whose decimal reads back, and its m; -1000 when
 * none does. Fewer fraction digits are never nearer, so halving finds it,
 * except at a power of two, whose uneven gaps are walked one by one. The
 * first two probes are guess (16 significant digits) and one digit fewer:
 * a metric's values mostly need 16 or 17, and then two or three probes
 * settle it instead of five. */
static int s_least_k(real_t r, int lo, int hi, int guess, uint64_t *m)
{
    uint64_t mm;
    if (r.f == (uint64_t)1 << 52) {
        for (int k = lo; k <= hi; k++)
            if (s_reads_back(r, k, m)) return k;
        return -1000;
    }
    int ok_at = -1000, probes[2] = {guess, guess - 1};
    for (int np = 0; lo < hi; np++) {
        int mid = lo + (hi - lo) / 2;
        if (np < 2 && probes[np] >= lo && probes[np] < hi) mid = probes[np];
        if (s_reads_back(r, mid, &mm)) {
            hi = ok_at = mid;
            *m = mm;
        } else {
            lo = mid + 1;
        }
    }
    if (ok_at != hi && !s_reads_back(r, hi, m)) return -1000;
    return hi;
}

/* m / 10^k as text with a point: "0.001", "12.5", "1200.0". */
static size_t s_format(bool neg, uint64_t m, int k, char *out)
{
    char dig[24];
    int nd = 0;
    do {
        dig[nd++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    size_t n = 0;
    if (neg) out[n++] = '-';
    int whole = nd - k; /* digits before the point */
    if (whole <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -whole; i++) out[n++] = '0';
        for (int i = nd - 1; i >= 0; i--) out[n++] = dig[i];
    } else {
        for (int i = nd - 1; i >= nd - whole && i >= 0; i--) out[n++] = dig[i];
        for (int i = nd; i < whole; i++) out[n++] = '0'; /* k < 0 */
        out[n++] = '.';
        if (k <= 0)
            out[n++] = '0';
        else
            for (int i = k - 1; i >= 0; i--) out[n++] = dig[i];
    }
    while (out[n - 1] == '0' && out[n - 2] != '.') n--; /* m rounded up to 10^x */
    out[n] = '\0';
    return n;
}

size_t cairn_real_shortest(double d, char out[CAIRN_REALFMT_MAX])
{
    if (d == 0) {
        bool neg = signbit(d);
        memcpy(out, neg ? "-0.0" : "0.0", neg ? 5 : 4);
        return neg ? 4 : 3;
    }
    double a = fabs(d);
    if (!(a >= 1e-4 && a < 1e15)) return 0; /* NaN fails this too */
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    int biased = (int)(bits >> 52 & 0x7ff);
    real_t r = {(bits & (((uint64_t)1 << 52) - 1)) | (uint64_t)1 << 52, 1075 - biased};
    /* k = digits - 1 - E for the decimal exponent E, which is est or
     * est + 1 for est = floor(e2 * log10(2)) (e2: the binary exponent);
     * look one further each way. 17 significant digits always read back. */
    long e2x = (long)(biased - 1023) * 30103; /* e2 * log10(2) * 10^5 */
    int est = (int)(e2x >= 0 ? e2x / 100000 : -((-e2x + 99999) / 100000));
    static const double p10[] = {1e-4, 1e-3, 1e-2, 1e-1, 1e0,  1e1,  1e2,
                                 1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
                                 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16};
    int lo = -est - 2, hi = 18 - est;
    if (hi > 22) hi = 22;
    int e10 = est + 1 >= -4 && est + 1 <= 16 && a >= p10[est + 1 + 4] ? est + 1 : est;
    uint64_t m = 0;
    int k = s_least_k(r, lo, hi, 15 - e10, &m);
    if (k == -1000) return 0;
    return s_format(d < 0, m, k, out);
}
