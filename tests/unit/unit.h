/* tests/unit/unit.h — a tiny assertion kit shared by the C unit tests.
 *
 * Each test_*.c is its own executable: it runs its checks with CHECK*,
 * groups them with TEST(name) { ... } functions run through RUN(name), and
 * ends main with `return unit_report();`, which prints "N passed, N failed"
 * and returns non-zero when anything failed. A failing check prints its
 * file:line, the expression and (for the _EQ/_STR forms) both values, and
 * the test goes on, so that one run shows every failure.
 */
#ifndef CAIRN_TEST_UNIT_H
#define CAIRN_TEST_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int unit_passed_, unit_failed_;
static const char *unit_current_ = "?";

static inline int unit_check_(int ok, const char *file, int line, const char *expr)
{
    if (ok) {
        unit_passed_++;
        return 1;
    }
    unit_failed_++;
    fprintf(stderr, "FAIL %s:%d [%s]: %s\n", file, line, unit_current_, expr);
    return 0;
}

/* Plain truth; returns the truth so callers may guard what follows. */
#define CHECK(expr) unit_check_(!!(expr), __FILE__, __LINE__, #expr)

/* Two integers (any integral type, compared as intmax_t/uintmax_t). */
#define CHECK_EQ(a, b)                                                \
    do {                                                              \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);              \
        if (!unit_check_(a_ == b_, __FILE__, __LINE__, #a " == " #b)) \
            fprintf(stderr, "     got %jd, want %jd\n", a_, b_);      \
    } while (0)

#define CHECK_UEQ(a, b)                                               \
    do {                                                              \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b);           \
        if (!unit_check_(a_ == b_, __FILE__, __LINE__, #a " == " #b)) \
            fprintf(stderr, "     got %ju, want %ju\n", a_, b_);      \
    } while (0)

/* Two C strings, equal. */
#define CHECK_STR(a, b)                                                           \
    do {                                                                          \
        const char *a_ = (a), *b_ = (b);                                          \
        if (!unit_check_(a_ && b_ && strcmp(a_, b_) == 0, __FILE__, __LINE__,     \
                         #a " == " #b))                                           \
            fprintf(stderr, "     got \"%s\", want \"%s\"\n", a_ ? a_ : "(null)", \
                    b_ ? b_ : "(null)");                                          \
    } while (0)

/* A C string containing a substring. */
#define CHECK_HAS(hay, needle)                                                   \
    do {                                                                         \
        const char *h_ = (hay), *n_ = (needle);                                  \
        if (!unit_check_(h_ && n_ && strstr(h_, n_) != NULL, __FILE__, __LINE__, \
                         #hay " contains " #needle))                             \
            fprintf(stderr, "     \"%s\" lacks \"%s\"\n", h_ ? h_ : "(null)",    \
                    n_ ? n_ : "(null)");                                         \
    } while (0)

/* A slice (ptr, len) equal to a C string. */
#define CHECK_SLICE(ptr, len, want)                                                   \
    do {                                                                              \
        const char *p_ = (ptr), *w_ = (want);                                         \
        size_t l_ = (len);                                                            \
        if (!unit_check_(p_ && l_ == strlen(w_) && memcmp(p_, w_, l_) == 0, __FILE__, \
                         __LINE__, #ptr " == " #want))                                \
            fprintf(stderr, "     got \"%.*s\", want \"%s\"\n", p_ ? (int)l_ : 6,     \
                    p_ ? p_ : "(null)", w_);                                          \
    } while (0)

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                        \
    do {                                                                 \
        unit_current_ = #name;                                           \
        int f0_ = unit_failed_;                                          \
        test_##name();                                                   \
        printf("%-4s %s\n", unit_failed_ == f0_ ? "ok" : "FAIL", #name); \
        fflush(stdout);                                                  \
    } while (0)

static inline int unit_report(void)
{
    printf("%d passed, %d failed\n", unit_passed_, unit_failed_);
    return unit_failed_ ? 1 : 0;
}

#endif
