/* Unit tests of the sidecar of a resumable upload (plugins/storage/upmeta.c):
 * a sidecar formats as upmeta.h documents and parses back to the same
 * values, committed or not, at the edges of every field; every truncation
 * is refused (but the one that is the same upload before its last chunk);
 * malformed lines, numbers written otherwise than upmeta_format writes
 * them, run_ids and paths a request could not carry are refused, by parse
 * and by format; and the path rules artifacts.c applies to a client's
 * path. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "unit.h"
#include "upmeta.h"

#define RUN_ID "5c0f3a9e1b2d4c6f8a0b1c2d3e4f5a6b"
#define HASH "3ececd8c0d7e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809102"

static const char s_open[] =
    "cairn-upload 1\n"
    "rid 42\n"
    "run_id " RUN_ID
    "\n"
    "created 1717171717171\n"
    "path model/weights.bin\n";
static const char s_committed[] =
    "cairn-upload 1\n"
    "rid 42\n"
    "run_id " RUN_ID
    "\n"
    "created 1717171717171\n"
    "path model/weights.bin\n"
    "hash " HASH
    "\n"
    "size 20000000\n";

static upmeta_t s_meta(bool committed)
{
    upmeta_t m;
    memset(&m, 0, sizeof m);
    m.rid = 42;
    m.created = 1717171717171ull;
    snprintf(m.run_id, sizeof m.run_id, "%s", RUN_ID);
    snprintf(m.path, sizeof m.path, "%s", "model/weights.bin");
    m.committed = committed;
    if (committed) {
        snprintf(m.hash, sizeof m.hash, "%s", HASH);
        m.size = 20000000;
    }
    return m;
}

static bool s_parses(const char *text)
{
    upmeta_t m;
    return upmeta_parse(text, strlen(text), &m);
}

/* Format m, parse it back, compare; returns the length (-1: refused). */
static int s_round_trip(const upmeta_t *m)
{
    char buf[CAS_META_MAX];
    upmeta_t back;
    int n = upmeta_format(buf, sizeof buf, m);
    if (!CHECK(n > 0)) return -1;
    CHECK_EQ(strlen(buf), n);
    if (!CHECK(upmeta_parse(buf, (size_t)n, &back))) return n;
    CHECK_EQ(back.rid, m->rid);
    CHECK_UEQ(back.created, m->created);
    CHECK_STR(back.run_id, m->run_id);
    CHECK_STR(back.path, m->path);
    CHECK_EQ(back.committed, m->committed);
    if (m->committed) {
        CHECK_EQ(back.alg, m->alg);
        CHECK_STR(back.hash, m->hash);
        CHECK_UEQ(back.size, m->size);
    }
    return n;
}

TEST(format_as_documented)
{
    char buf[CAS_META_MAX];
    upmeta_t m = s_meta(false);
    CHECK_EQ(upmeta_format(buf, sizeof buf, &m), strlen(s_open));
    CHECK_STR(buf, s_open);
    m = s_meta(true);
    CHECK_EQ(upmeta_format(buf, sizeof buf, &m), strlen(s_committed));
    CHECK_STR(buf, s_committed);
    /* hash and size only when committed */
    m.committed = false;
    CHECK_EQ(upmeta_format(buf, sizeof buf, &m), strlen(s_open));
}

TEST(parse_as_documented)
{
    upmeta_t m;
    if (CHECK(upmeta_parse(s_open, strlen(s_open), &m))) {
        CHECK_EQ(m.rid, 42);
        CHECK_UEQ(m.created, 1717171717171ull);
        CHECK_STR(m.run_id, RUN_ID);
        CHECK_STR(m.path, "model/weights.bin");
        CHECK(!m.committed);
    }
    if (CHECK(upmeta_parse(s_committed, strlen(s_committed), &m))) {
        CHECK(m.committed);
        CHECK_STR(m.hash, HASH);
        CHECK_UEQ(m.size, 20000000);
    }
}

TEST(round_trip_at_the_edges)
{
    upmeta_t m = s_meta(true);
    s_round_trip(&m);
    m.rid = INT64_MAX, m.created = UINT64_MAX, m.size = UINT64_MAX;
    s_round_trip(&m);
    m.rid = INT64_MIN, m.created = 0, m.size = 0;
    s_round_trip(&m);
    m.rid = 0;
    s_round_trip(&m);
    m.rid = -1;
    s_round_trip(&m);
    /* the longest run_id and path, non-ASCII and odd characters */
    memset(m.run_id, 'r', UPMETA_RUN_ID_MAX);
    m.run_id[UPMETA_RUN_ID_MAX] = '\0';
    for (size_t i = 0; i < UPMETA_PATH_MAX; i++) m.path[i] = "ab/\xc3\xa9"[i % 5];
    m.path[UPMETA_PATH_MAX] = '\0';
    m.path[UPMETA_PATH_MAX - 1] = 'z';
    int n = s_round_trip(&m);
    CHECK(n > UPMETA_PATH_MAX);
    snprintf(m.run_id, sizeof m.run_id, "%s", "run with spaces, #and: 'quotes' \\");
    snprintf(m.path, sizeof m.path, "%s",
             "dir with space/...x/.hidden/a..b/\xf0\x9f\x98\x80");
    s_round_trip(&m);
    m.committed = false;
    s_round_trip(&m);
}

/* A committed sidecar names its hash's algorithm: "alg sha256" before the
 * hash; none is BLAKE2b (every sidecar written before SHA-256), and the
 * line is never written (nor taken) for it. */
TEST(alg_line)
{
    static const char sha[] =
        "cairn-upload 1\n"
        "rid 42\n"
        "run_id " RUN_ID
        "\n"
        "created 1717171717171\n"
        "path model/weights.bin\n"
        "alg sha256\n"
        "hash " HASH
        "\n"
        "size 20000000\n";
    char buf[CAS_META_MAX];
    upmeta_t m = s_meta(true);
    CHECK_EQ(m.alg, CAIRN_CHASH_BLAKE2B);
    CHECK_EQ(upmeta_format(buf, sizeof buf, &m), strlen(s_committed));
    m.alg = CAIRN_CHASH_SHA256;
    CHECK_EQ(upmeta_format(buf, sizeof buf, &m), strlen(sha));
    CHECK_STR(buf, sha);
    s_round_trip(&m);
    upmeta_t back;
    CHECK(upmeta_parse(s_committed, strlen(s_committed), &back) &&
          back.alg == CAIRN_CHASH_BLAKE2B);
    CHECK(upmeta_parse(sha, strlen(sha), &back) && back.alg == CAIRN_CHASH_SHA256);
    /* an alg line anywhere else, of another spelling, or alone */
    const char *bad[] = {
        "cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p\nalg blake2b\nhash " HASH
        "\nsize 1\n",
        "cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p\nalg SHA256\nhash " HASH
        "\nsize 1\n",
        "cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p\nalg  sha256\nhash " HASH
        "\nsize 1\n",
        "cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p\nalg sha256\n",
        "cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p\nhash " HASH
        "\nsize 1\nalg sha256\n",
        "cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p\nalg sha256\nalg "
        "sha256\nhash " HASH "\nsize 1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!CHECK(!s_parses(bad[i]))) fprintf(stderr, "     accepted #%zu\n", i);
    /* every truncation of it is refused but the one before its last chunk */
    size_t open = strlen(s_open), full = strlen(sha);
    for (size_t len = 0; len < full; len++) {
        bool ok = upmeta_parse(sha, len, &back);
        if (len == open) {
            CHECK(ok && !back.committed);
            continue;
        }
        if (!CHECK(!ok)) fprintf(stderr, "     accepted the first %zu bytes\n", len);
    }
}

TEST(every_truncation_refused)
{
    upmeta_t m;
    size_t open = strlen(s_open), full = strlen(s_committed);
    for (size_t len = 0; len < full; len++) {
        bool ok = upmeta_parse(s_committed, len, &m);
        /* cut right after the path line: the same upload, not committed */
        if (len == open) {
            CHECK(ok && !m.committed && m.rid == 42);
            continue;
        }
        if (!CHECK(!ok)) fprintf(stderr, "     accepted the first %zu bytes\n", len);
    }
    /* and one byte too many */
    char more[sizeof s_committed + 1];
    memcpy(more, s_committed, full);
    more[full] = '\n';
    CHECK(!upmeta_parse(more, full + 1, &m));
}

/* s_open with the line of key replaced by "key value" (NULL: dropped). */
static bool s_with(const char *key, const char *value, bool committed)
{
    char in[CAS_META_MAX], out[CAS_META_MAX * 2];
    snprintf(in, sizeof in, "%s", committed ? s_committed : s_open);
    size_t o = 0;
    for (char *line = strtok(in, "\n"); line; line = strtok(NULL, "\n")) {
        size_t k = strlen(key);
        if (strncmp(line, key, k) == 0 && line[k] == ' ') {
            if (value)
                o += (size_t)snprintf(out + o, sizeof out - o, "%s %s\n", key, value);
        } else {
            o += (size_t)snprintf(out + o, sizeof out - o, "%s\n", line);
        }
    }
    upmeta_t m;
    return upmeta_parse(out, o, &m);
}

TEST(malformed_lines_refused)
{
    CHECK(s_with("rid", "42", true)); /* the helper itself */
    CHECK(!s_parses(""));
    upmeta_t m;
    CHECK(!upmeta_parse(NULL, 0, &m));
    CHECK(!s_parses("cairn-upload 2\nrid 42\nrun_id r\ncreated 1\npath p\n"));
    CHECK(!s_parses("cairn-upload 1\r\nrid 42\r\nrun_id r\r\ncreated 1\r\npath p\r\n"));
    CHECK(!s_parses("cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p")); /* no \n */
    CHECK(!s_parses("cairn-upload 1\nrun_id r\nrid 42\ncreated 1\npath p\n"));
    CHECK(!s_parses("cairn-upload 1\nrid  42\nrun_id r\ncreated 1\npath p\n"));
    CHECK(!s_parses("cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p\nsize 1\n"));
    CHECK(!s_parses("cairn-upload 1\nrid 42\nrun_id r\ncreated 1\npath p\n\n"));
    CHECK(!s_with("hash", NULL, true));
    CHECK(!s_with("size", NULL, true));
    CHECK(!s_with("created", NULL, false));
    CHECK(!s_with("rid", NULL, false));
}

TEST(numbers_only_as_written)
{
    const char *bad[] = {"",    " 42",  "42 ", "+42", "042", "-0",  "4 2",
                         "42x", "0x2a", "-",   "--1", "1e3", "4\t2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (!CHECK(!s_with("rid", bad[i], false)))
            fprintf(stderr, "     rid '%s'\n", bad[i]);
        if (!CHECK(!s_with("created", bad[i], false)))
            fprintf(stderr, "     created '%s'\n", bad[i]);
        if (!CHECK(!s_with("size", bad[i], true)))
            fprintf(stderr, "     size '%s'\n", bad[i]);
    }
    CHECK(s_with("rid", "0", false));
    CHECK(s_with("rid", "-7", false));
    CHECK(s_with("rid", "9223372036854775807", false));
    CHECK(s_with("rid", "-9223372036854775808", false));
    CHECK(!s_with("rid", "9223372036854775808", false));
    CHECK(!s_with("rid", "-9223372036854775809", false));
    CHECK(!s_with("rid", "99999999999999999999999", false));
    /* unsigned: no sign at all (strtoull read "-1" as 2^64 - 1) */
    CHECK(!s_with("created", "-1", false));
    CHECK(!s_with("size", "-1", true));
    CHECK(s_with("created", "18446744073709551615", false));
    CHECK(!s_with("created", "18446744073709551616", false));
    CHECK(s_with("size", "0", true));
}

TEST(fields_a_request_could_not_carry_refused)
{
    /* run_id: 1 .. 64 bytes, no control characters */
    CHECK(!s_with("run_id", "", false));
    CHECK(!s_with("run_id", "a\tb", false));
    CHECK(!s_with("run_id", "a\rb", false));
    CHECK(!s_with("run_id", "a\x7f", false));
    char id[80];
    memset(id, 'r', 65);
    id[65] = '\0';
    CHECK(!s_with("run_id", id, false));
    id[64] = '\0';
    CHECK(s_with("run_id", id, false));
    /* path: normalized, as s_field_path leaves a client's */
    const char *bad[] = {"",
                         "/etc/passwd",
                         "..",
                         "../x",
                         "a/../../b",
                         "a/..",
                         "a//b",
                         "./a",
                         "a/./b",
                         "a/",
                         ".",
                         "a\x01z",
                         "a\x7fz",
                         "a\x1b[2Jz",
                         "\xff",
                         "\xc0\xaf",
                         "\xed\xa0\x80",
                         "\xf4\x90\x80\x80",
                         "a\rb"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (!CHECK(!s_with("path", bad[i], true)))
            fprintf(stderr, "     path '%s'\n", bad[i]);
    CHECK(s_with("path", "a/..b/...c/b..", true));
    CHECK(s_with("path", "caf\xc3\xa9/\xf0\x9f\x98\x80", true));
    /* a NUL inside a value (the C string would end there) */
    static const char nul[] =
        "cairn-upload 1\nrid 42\nrun_id " RUN_ID "\ncreated 1\npath a\0/../../x\n";
    upmeta_t m;
    CHECK(!upmeta_parse(nul, sizeof nul - 1, &m));
    static const char nul_id[] =
        "cairn-upload 1\nrid 42\nrun_id r\0x\ncreated 1\npath a\n";
    CHECK(!upmeta_parse(nul_id, sizeof nul_id - 1, &m));
    /* hash: 64 lowercase hex digits */
    char hash[80];
    snprintf(hash, sizeof hash, "%s", HASH);
    hash[0] = 'A';
    CHECK(!s_with("hash", hash, true));
    hash[0] = 'g';
    CHECK(!s_with("hash", hash, true));
    CHECK(!s_with("hash", HASH "0", true));
    CHECK(!s_with("hash", &HASH[1], true));
}

TEST(format_refuses_what_parse_would)
{
    char buf[CAS_META_MAX];
    upmeta_t m = s_meta(true);
    upmeta_t bad = m;
    bad.run_id[0] = '\0';
    CHECK_EQ(upmeta_format(buf, sizeof buf, &bad), -1);
    bad = m;
    snprintf(bad.run_id, sizeof bad.run_id, "%s", "a\nrid 1");
    CHECK_EQ(upmeta_format(buf, sizeof buf, &bad), -1);
    bad = m;
    snprintf(bad.path, sizeof bad.path, "%s", "a/../b");
    CHECK_EQ(upmeta_format(buf, sizeof buf, &bad), -1);
    snprintf(bad.path, sizeof bad.path, "%s", "a//b");
    CHECK_EQ(upmeta_format(buf, sizeof buf, &bad), -1);
    snprintf(bad.path, sizeof bad.path, "%s", "a\nhash x");
    CHECK_EQ(upmeta_format(buf, sizeof buf, &bad), -1);
    bad = m;
    bad.hash[3] = 'X';
    CHECK_EQ(upmeta_format(buf, sizeof buf, &bad), -1);
    bad.committed = false; /* the hash is not written then */
    CHECK(upmeta_format(buf, sizeof buf, &bad) > 0);
    /* every cap too small is refused; the exact one (with the NUL) is not */
    size_t full = strlen(s_committed);
    for (size_t cap = 0; cap <= full; cap++)
        if (!CHECK(upmeta_format(buf, cap, &m) == -1))
            fprintf(stderr, "     cap %zu\n", cap);
    CHECK_EQ(upmeta_format(buf, full + 1, &m), full);
}

TEST(path_rules)
{
    char out[64];
    size_t n = 99;
    CHECK_EQ(upmeta_path_norm("a//./b", 6, out, &n), UPMETA_PATH_OK);
    CHECK_SLICE(out, n, "a/b");
    CHECK_EQ(upmeta_path_norm("./a/./b/.", 9, out, &n), UPMETA_PATH_OK);
    CHECK_SLICE(out, n, "a/b");
    CHECK_EQ(upmeta_path_norm("a/b/", 4, out, &n), UPMETA_PATH_OK);
    CHECK_SLICE(out, n, "a/b");
    CHECK_EQ(upmeta_path_norm("", 0, out, &n), UPMETA_PATH_OK);
    CHECK_EQ(n, 0);
    CHECK_EQ(upmeta_path_norm(".//.", 4, out, &n), UPMETA_PATH_OK);
    CHECK_EQ(n, 0);
    CHECK_STR(out, "");
    CHECK_EQ(upmeta_path_norm("/a", 2, out, &n), UPMETA_PATH_ABSOLUTE);
    CHECK_EQ(upmeta_path_norm("a\nb", 3, out, &n), UPMETA_PATH_CONTROL);
    CHECK_EQ(upmeta_path_norm("a\0b", 3, out, &n), UPMETA_PATH_CONTROL);
    CHECK_EQ(upmeta_path_norm("a\x7f", 2, out, &n), UPMETA_PATH_CONTROL);
    CHECK_EQ(upmeta_path_norm("a\xff", 2, out, &n), UPMETA_PATH_UTF8);
    CHECK_EQ(upmeta_path_norm("\xed\xa0\x80", 3, out, &n), UPMETA_PATH_UTF8);
    CHECK_EQ(upmeta_path_norm("\xe2\x82", 2, out, &n), UPMETA_PATH_UTF8);
    CHECK_EQ(upmeta_path_norm("a/../b", 6, out, &n), UPMETA_PATH_DOTDOT);
    CHECK_EQ(upmeta_path_norm("..", 2, out, &n), UPMETA_PATH_DOTDOT);
    CHECK_EQ(upmeta_path_norm("a/..", 4, out, &n), UPMETA_PATH_DOTDOT);
    CHECK_EQ(upmeta_path_norm("a/..b/c..", 9, out, &n), UPMETA_PATH_OK);
    CHECK_SLICE(out, n, "a/..b/c..");
    /* a leading '/' is named before anything else it holds */
    CHECK_EQ(upmeta_path_norm("/../\x01", 5, out, &n), UPMETA_PATH_ABSOLUTE);
    CHECK_EQ(upmeta_path_norm("../\x01", 4, out, &n), UPMETA_PATH_CONTROL);
    CHECK_EQ(upmeta_path_norm("../\xff", 4, out, &n), UPMETA_PATH_UTF8);
}

int main(void)
{
    RUN(format_as_documented);
    RUN(parse_as_documented);
    RUN(round_trip_at_the_edges);
    RUN(alg_line);
    RUN(every_truncation_refused);
    RUN(malformed_lines_refused);
    RUN(numbers_only_as_written);
    RUN(fields_a_request_could_not_carry_refused);
    RUN(format_refuses_what_parse_would);
    RUN(path_rules);
    return unit_report();
}
