/* Unit tests for kernel/curve.c: the allowed-keys file parser (comments,
 * '#' lines, trailing comments, one spelling per key, line
 * numbers in refusals) and the rule that says which endpoints want CURVE. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "curve.h"
#include "unit.h"

#define KEY_A "EsUcYFx+LX6ggX8Jf%WM+l[.IHClWvy6GxU0$P+@"
#define KEY_B "cR0z3KN6kl6H1=vrv+@B2ecd=WU1gZ4h}}$>.<3!"

static int s_parse(const char *text, curve_allowed_t *a, cairn_err_t *e)
{
    cairn_err_clear(e);
    return curve_allowed_parse(text, strlen(text), "allowed", a, e);
}

TEST(parses_keys_and_comments)
{
    curve_allowed_t a;
    cairn_err_t e = {0};
    CHECK_EQ(s_parse("# who\n\n  " KEY_A "  # alice\r\n" KEY_B "\n" KEY_A, &a, &e), 0);
    CHECK_EQ(a.n, 3);
    unsigned char bin[CURVE_KEY_BYTES], other[CURVE_KEY_BYTES] = {0};
    zmq_z85_decode(bin, KEY_B);
    CHECK(curve_allowed_has(&a, bin));
    CHECK(!curve_allowed_has(&a, other));
    curve_allowed_clear(&a);
    CHECK_EQ(s_parse("", &a, &e), 0);
    CHECK_EQ(a.n, 0);
    /* '#' is a Z85 character, but never the first of a group (its value,
     * 84 * 85^4, overflows 32 bits): a line starting with it is a comment. */
    CHECK_EQ(s_parse("#BcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN\n", &a, &e), 0);
    CHECK_EQ(a.n, 0);
}

TEST(refusals_name_the_line)
{
    curve_allowed_t a = {0};
    cairn_err_t e = {0};
    const char *bad[] = {
        KEY_A "\nnot a key\n", KEY_A "\n" KEY_B " bob\n", /* a trailer, not a comment */
        "# x\n%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n", /* overflows 32 bits */
        KEY_A "x\n",                                       /* 41 characters */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(s_parse(bad[i], &a, &e), -1);
        CHECK_EQ(e.st, 400);
        CHECK_STR(e.code, "bad_conf");
        CHECK(strncmp(e.msg, "allowed:", 8) == 0);
        CHECK(a.keys == NULL && a.n == 0);
    }
    CHECK_EQ(s_parse(KEY_A "\nnope\n", &a, &e), -1);
    CHECK(strncmp(e.msg, "allowed:2:", 10) == 0);
}

TEST(which_endpoints_want_curve)
{
    conf_t c = {.curve = "auto"};
    CHECK(!curve_wanted(&c, "tcp://127.0.0.1:7780"));
    CHECK(!curve_wanted(&c, ""));
    CHECK(!curve_wanted(&c, NULL));
    CHECK(!curve_wanted(&c, "ipc:///tmp/x.sock"));
    CHECK(curve_wanted(&c, "tcp://0.0.0.0:7780"));
    CHECK(curve_wanted(&c, "tcp://*:7780"));
    CHECK(curve_wanted(&c, "tcp://198.18.0.1:7780"));
    c.curve = "always";
    CHECK(curve_wanted(&c, "tcp://127.0.0.1:7780"));
    CHECK(!curve_wanted(&c, "inproc://x"));
    /* The start rule: a non-loopback endpoint without keys is refused. */
    c.curve = "auto";
    c.source = "c.yaml";
    c.events = "";
    c.worker_endpoint = "tcp://0.0.0.0:7790";
    c.curve_secret_key_file = "";
    c.curve_allowed_keys = "";
    cairn_err_t e = {0};
    CHECK_EQ(curve_check_conf(&c, "tcp://127.0.0.1:7780", &e), -1);
    CHECK(strstr(e.msg, "kernel.worker_endpoint") != NULL);
    c.worker_endpoint = "";
    CHECK_EQ(curve_check_conf(&c, "tcp://127.0.0.1:7780", &e), 0);
}

int main(void)
{
    RUN(parses_keys_and_comments);
    RUN(refusals_name_the_line);
    RUN(which_endpoints_want_curve);
    return unit_report();
}
