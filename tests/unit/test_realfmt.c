/* A double's shortest exact decimal (sdk/realfmt.h): fixed cases, then
 * random doubles of every magnitude in range, each of which must read
 * back exactly and have no more significant digits than the fewest that
 * printf's %.*g needs to read back. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realfmt.h"
#include "unit.h"

static void s_is(double d, const char *want)
{
    char out[CAIRN_REALFMT_MAX];
    size_t n = cairn_real_shortest(d, out);
    if (!CHECK(n == strlen(want) && strcmp(out, want) == 0))
        fprintf(stderr, "     %.17g: got '%s', want '%s'\n", d, n ? out : "(none)",
                want);
}

static void test_fixed(void)
{
    s_is(0.0, "0.0");
    s_is(-0.0, "-0.0");
    s_is(0.1, "0.1");
    s_is(0.3, "0.3");
    s_is(1.0, "1.0");
    s_is(-1.5, "-1.5");
    s_is(100.0, "100.0");
    s_is(1200.0, "1200.0");
    s_is(0.0001, "0.0001");
    s_is(2.0 / 3.0, "0.6666666666666666");
    s_is(0.1 + 0.2, "0.30000000000000004");
    s_is(123456789012345.0, "123456789012345.0");
    s_is(999999999999999.9, "999999999999999.9");
    s_is(4503599627370496.0 / 8, "562949953421312.0"); /* a power of two */
    s_is(0.000244140625, "0.000244140625");            /* 2^-12 */
    s_is(0.6931471805599453, "0.6931471805599453");
}

static void test_out_of_range(void)
{
    char out[CAIRN_REALFMT_MAX];
    double no[] = {1e15, 1e300, 9.9e-5, 5e-324, -1e20, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        CHECK(cairn_real_shortest(no[i], out) == 0);
}

/* The fewest significant digits with which %.*g reads back to d. */
static int s_printf_digits(double d)
{
    char buf[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, d);
        if (strtod(buf, NULL) == d) return p;
    }
    return 17;
}

static int s_significant(const char *s)
{
    int n = 0, lead = 1, trail = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') continue;
        if (lead && *s == '0') continue;
        lead = 0;
        n++;
        trail = *s == '0' ? trail + 1 : 0;
    }
    return n - trail;
}

static uint64_t s_rand64(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_random(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int done = 0, bad = 0;
    while (done < 300000) {
        uint64_t bits = s_rand64(&x);
        double d;
        if (done % 3 == 0) { /* uniform in [0, 1), as metrics often are */
            d = (double)(bits >> 11) / 9007199254740992.0;
        } else if (done % 3 == 1) { /* any bits in range */
            memcpy(&d, &bits, sizeof d);
        } else { /* short decimals: what people log */
            static const double div[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7};
            d = (double)((int64_t)(bits % 2000001) - 1000000) / div[bits >> 40 & 7];
        }
        char out[CAIRN_REALFMT_MAX];
        size_t n = cairn_real_shortest(d, out);
        double a = fabs(d);
        if (!(a >= 1e-4 && a < 1e15) && d != 0) {
            if (!CHECK(n == 0)) bad++;
            continue;
        }
        done++;
        int want = d == 0 ? 1 : s_printf_digits(d);
        if (!CHECK(n > 0 && n == strlen(out) && strtod(out, NULL) == d &&
                   strchr(out, '.') && s_significant(out) <= want) &&
            ++bad < 10)
            fprintf(stderr, "     %.17g: got '%s', %%g needs %d digits\n", d, out,
                    want);
    }
}

int main(void)
{
    test_fixed();
    test_out_of_range();
    test_random();
    return unit_report();
}
