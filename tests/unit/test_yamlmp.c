/* A YAML document as msgpack (sdk/yamlmp.h): the core schema's scalars,
 * nesting, an MLflow MLmodel file, and every refusal (aliases, anchors,
 * duplicate keys, non-string keys, depth, size, two documents, bad YAML). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "yamlmp.h"

/* The document as msgpack-c prints it, or "ERR <status>: <message>". */
static const char *s_conv(const char *text, size_t len)
{
    static char out[4096];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cairn_err_t err = {0};
    if (cairn_yaml_to_msgpack(text, len, &sb, &err) != 0) {
        snprintf(out, sizeof out, "ERR %d: %s", err.st, err.msg);
    } else {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, sb.data, sb.size, &off) != MSGPACK_UNPACK_SUCCESS ||
            off != sb.size)
            snprintf(out, sizeof out, "BAD MSGPACK");
        else
            msgpack_object_print_buffer(out, sizeof out, u.data);
        msgpack_unpacked_destroy(&u);
    }
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static const char *s_y(const char *text)
{
    return s_conv(text, strlen(text));
}

static void test_scalars(void)
{
    unit_current_ = "scalars";
    CHECK_STR(s_y("a: 1\nb: -7\nc: 0x1f\nd: 0o17\ne: 1.5\nf: -2e3\n"),
              "{\"a\"=>1, \"b\"=>-7, \"c\"=>31, \"d\"=>15, \"e\"=>1.500000, "
              "\"f\"=>-2000.000000}");
    CHECK_STR(s_y("a: true\nb: False\nc: null\nd: ~\ne:\nf: yes\ng: on\nh: 010\n"),
              "{\"a\"=>true, \"b\"=>false, \"c\"=>nil, \"d\"=>nil, \"e\"=>nil, "
              "\"f\"=>\"yes\", \"g\"=>\"on\", \"h\"=>10}");
    CHECK_STR(s_y("a: '1'\nb: \"true\"\nc: |\n  x\n  y\n"),
              "{\"a\"=>\"1\", \"b\"=>\"true\", \"c\"=>\"x\ny\n\"}");
    CHECK_STR(s_y("a: 9223372036854775807\nb: 9223372036854775808\nc: "
                  "-9223372036854775808\n"),
              "{\"a\"=>9223372036854775807, \"b\"=>9223372036854775808.000000, "
              "\"c\"=>-9223372036854775808}");
    CHECK_STR(s_y("a: 1.2.3\nb: 12abc\nc: .\nd: 1-2\ne: 1e\n"),
              "{\"a\"=>\"1.2.3\", \"b\"=>\"12abc\", \"c\"=>\".\", \"d\"=>\"1-2\", "
              "\"e\"=>\"1e\"}");
    CHECK_STR(s_y("1: one\ntrue: t\n"), "{\"1\"=>\"one\", \"true\"=>\"t\"}");
    CHECK_STR(s_y(""), "nil");
    CHECK_STR(s_y("# only a comment\n"), "nil");
    CHECK_STR(s_y("just text"), "\"just text\"");
}

static void test_nesting(void)
{
    unit_current_ = "nesting";
    CHECK_STR(s_y("a:\n  b: [1, 2, {c: d}]\n  e: []\n  f: {}\n- \n"),
              "ERR 400: YAML line 5: did not find expected key");
    CHECK_STR(s_y("a:\n  b: [1, 2, {c: d}]\n  e: []\n  f: {}\n"),
              "{\"a\"=>{\"b\"=>[1, 2, {\"c\"=>\"d\"}], \"e\"=>[], \"f\"=>{}}}");
    CHECK_STR(s_y("- a\n- - b\n  - c\n- k: v\n"),
              "[\"a\", [\"b\", \"c\"], {\"k\"=>\"v\"}]");
}

static void test_mlmodel(void)
{
    unit_current_ = "mlmodel";
    const char *doc =
        "artifact_path: model\n"
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.xgboost\n"
        "    python_version: 3.10.12\n"
        "  xgboost:\n"
        "    code: null\n"
        "    data: model.xgb\n"
        "    xgb_version: 2.0.3\n"
        "mlflow_version: 2.9.2\n"
        "signature:\n"
        "  inputs: '[{\"type\": \"double\", \"name\": \"x1\"}]'\n"
        "  outputs: '[{\"type\": \"long\"}]'\n"
        "  params: null\n";
    CHECK_STR(
        s_y(doc),
        "{\"artifact_path\"=>\"model\", \"flavors\"=>{\"python_function\"=>{"
        "\"loader_module\"=>\"mlflow.xgboost\", \"python_version\"=>\"3.10.12\"}, "
        "\"xgboost\"=>{\"code\"=>nil, \"data\"=>\"model.xgb\", "
        "\"xgb_version\"=>\"2.0.3\"}}, \"mlflow_version\"=>\"2.9.2\", "
        "\"signature\"=>{\"inputs\"=>\"[{\"type\": \"double\", \"name\": "
        "\"x1\"}]\", \"outputs\"=>\"[{\"type\": \"long\"}]\", \"params\"=>nil}}");
}

static void test_refusals(void)
{
    unit_current_ = "refusals";
    CHECK_STR(s_y("a: &x 1\nb: *x\n"),
              "ERR 400: YAML line 1: anchors (&name) are not accepted");
    CHECK_STR(s_y("a: 1\na: 2\n"),
              "ERR 400: YAML line 3: a mapping holds the same key twice");
    CHECK_STR(s_y("? [1]\n: v\n"),
              "ERR 400: YAML line 1: a mapping's key must be a string");
    CHECK_STR(s_y("a: 1\n---\nb: 2\n"),
              "ERR 400: YAML line 2: the text holds more than one document");
    CHECK(strncmp(s_y("a: [1, 2\n"), "ERR 400: YAML line ", 19) == 0);
    CHECK(strncmp(s_y("a: \"x\nb"), "ERR 400: YAML line ", 19) == 0);
    CHECK(strncmp(s_y("a: b: c\n"), "ERR 400: YAML line 1", 20) == 0);
    CHECK(strncmp(s_y("\t- x\n"), "ERR 400: YAML line 1", 20) == 0);

    char deep[300];
    size_t n = 0;
    for (int i = 0; i < 25; i++) deep[n++] = '[';
    for (int i = 0; i < 25; i++) deep[n++] = ']';
    deep[n] = '\0';
    CHECK_STR(s_y(deep), "ERR 400: YAML line 1: the document is nested over 24 deep");
    n = 0;
    for (int i = 0; i < 24; i++) deep[n++] = '[';
    for (int i = 0; i < 24; i++) deep[n++] = ']';
    deep[n] = '\0';
    CHECK_STR(s_y(deep) + 40, "]]]]]]]]");

    size_t big = CAIRN_YAML_MAX_BYTES + 1;
    char *b = malloc(big);
    if (CHECK(b)) {
        memset(b, 'a', big);
        CHECK(strncmp(s_conv(b, big), "ERR 413: a YAML document may be at most", 39) ==
              0);
        /* 100001 nodes in a flow sequence: "[0,0,...]" */
        size_t m = 0;
        b[m++] = '[';
        for (int i = 0; i < 100001; i++) {
            b[m++] = '0';
            b[m++] = ',';
        }
        b[m - 1] = ']';
        CHECK(strstr(s_conv(b, m), "over 100000 nodes") != NULL);
        free(b);
    }
    CHECK(strncmp(s_conv("a: \0b", 5), "ERR 400", 7) == 0);
}

int main(void)
{
    test_scalars();
    test_nesting();
    test_mlmodel();
    test_refusals();
    return unit_report();
}
