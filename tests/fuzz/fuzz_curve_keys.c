/* libFuzzer target: the CurveZMQ allowed-keys file parser (kernel/curve.c).
 * Arbitrary bytes go through curve_allowed_parse: a refusal must be a 400
 * bad_conf naming the source and a line; an acceptance must hold keys that
 * are found again by curve_allowed_has and that encode to Z85 text present
 * in the input. ASan checks the bounds and the leaks.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_curve_keys. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "curve.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_err_t e = {0};
    curve_allowed_t a = {0};
    if (curve_allowed_parse((const char *)data, size, "keys", &a, &e) != 0) {
        REQUIRE(a.keys == NULL && a.n == 0);
        REQUIRE(e.st == 400 || e.st == 500);
        if (e.st == 400) {
            REQUIRE(strcmp(e.code, "bad_conf") == 0);
            REQUIRE(strncmp(e.msg, "keys:", 5) == 0);
            REQUIRE(e.msg[5] >= '1' && e.msg[5] <= '9'); /* a line number */
        }
        return 0;
    }
    REQUIRE(e.st == 0);
    REQUIRE(a.n <= CURVE_ALLOWED_MAX);
    for (size_t i = 0; i < a.n; i++) {
        char z85[CURVE_Z85_LEN + 1];
        REQUIRE(curve_allowed_has(&a, a.keys[i]));
        REQUIRE(zmq_z85_encode(z85, a.keys[i], CURVE_KEY_BYTES) != NULL);
        REQUIRE(memmem(data, size, z85, CURVE_Z85_LEN) != NULL);
    }
    curve_allowed_clear(&a);
    REQUIRE(a.keys == NULL && a.n == 0);
    return 0;
}
