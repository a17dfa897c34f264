/* The CSV reader and sniffer (sdk/csv.h): RFC 4180's cases and ours (BOM,
 * CR, empty lines, the limits, errors naming their line), each input read
 * whole, a byte at a time, and cut in two at every byte offset (and in
 * three for the short ones), which must all give the same records or the
 * same error; the sniffer's delimiter, header, names, types and row count,
 * cut the same ways. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "unit.h"

/* ---- rendering what a reader saw ------------------------------------------ */

typedef struct out {
    char *s;
    size_t len, cap;
    int stop_at; /* a record number at which the callback refuses (0: never) */
} out_t;

static void s_put(out_t *o, const char *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n + 1) cap *= 2;
        o->s = realloc(o->s, cap);
        o->cap = cap;
    }
    memcpy(o->s + o->len, p, n);
    o->len += n;
    o->s[o->len] = '\0';
}

static int s_row(void *arg, uint64_t line, const cairn_csv_field_t *f, size_t n,
                 cairn_err_t *err)
{
    out_t *o = arg;
    char head[32];
    int hl = snprintf(head, sizeof head, "%llu:", (unsigned long long)line);
    s_put(o, head, (size_t)hl);
    for (size_t i = 0; i < n; i++) {
        if (f[i].ptr[f[i].len] != '\0') s_put(o, "<no NUL>", 8);
        s_put(o, f[i].quoted ? "{" : "[", 1);
        s_put(o, f[i].ptr, f[i].len);
        s_put(o, f[i].quoted ? "}" : "]", 1);
    }
    s_put(o, "\n", 1);
    if (o->stop_at && --o->stop_at == 0)
        return cairn_err_set(err, 422, "stopped", "the callback stopped at line %llu",
                             (unsigned long long)line);
    return 0;
}

/* Parse in with delim, fed in the pieces cut at cuts[0..ncuts) (ascending),
 * and render the records or the error. The caller frees. */
static char *s_parse_cut(const char *in, size_t len, char delim, const size_t *cuts,
                         size_t ncuts, int stop_at)
{
    out_t o = {.stop_at = stop_at};
    s_put(&o, "", 0);
    cairn_err_t err = {0};
    cairn_csv_t *c = cairn_csv_new(delim, s_row, &o, &err);
    if (!c) return strdup("new failed");
    int rc = 0;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = cairn_csv_feed(c, in + at, end - at, &err);
        at = end;
    }
    if (rc == 0) rc = cairn_csv_finish(c, &err);
    if (rc != 0) {
        char e[700];
        snprintf(e, sizeof e, "ERR %d %s", err.st, err.msg);
        o.len = 0;
        s_put(&o, e, strlen(e));
        /* a failed reader stays failed */
        cairn_err_t again = {0};
        if (cairn_csv_feed(c, "x", 1, &again) == 0 || again.st != err.st ||
            strcmp(again.msg, err.msg) != 0)
            s_put(&o, " (not sticky)", 13);
    }
    cairn_csv_destroy(&c);
    cairn_csv_destroy(&c); /* safe twice */
    return o.s;
}

/* The one result of in, however it is cut. */
static char *s_parse(const char *in, size_t len, char delim)
{
    char *whole = s_parse_cut(in, len, delim, NULL, 0, 0);
    bool same = true;
    for (size_t k = 0; k <= len && same; k++) {
        char *two = s_parse_cut(in, len, delim, &k, 1, 0);
        if (strcmp(two, whole) != 0) {
            fprintf(stderr, "     cut at %zu: got \"%s\", whole \"%s\"\n", k, two,
                    whole);
            same = false;
        }
        free(two);
    }
    if (len <= 64) {
        for (size_t a = 0; a <= len && same; a++)
            for (size_t b = a; b <= len && same; b++) {
                size_t cuts[2] = {a, b};
                char *three = s_parse_cut(in, len, delim, cuts, 2, 0);
                if (strcmp(three, whole) != 0) same = false;
                free(three);
            }
    }
    size_t *bytes = malloc((len + 1) * sizeof *bytes);
    for (size_t i = 0; i < len; i++) bytes[i] = i + 1;
    char *ones = s_parse_cut(in, len, delim, bytes, len ? len - 1 : 0, 0);
    if (strcmp(ones, whole) != 0) same = false;
    free(ones);
    free(bytes);
    CHECK(same);
    return whole;
}

#define EXPECT(in, delim, want)                          \
    do {                                                 \
        char *got_ = s_parse(in, sizeof(in) - 1, delim); \
        CHECK_STR(got_, want);                           \
        free(got_);                                      \
    } while (0)

#define EXPECT_ERR(in, delim, status, part)              \
    do {                                                 \
        char *got_ = s_parse(in, sizeof(in) - 1, delim); \
        char st_[16];                                    \
        snprintf(st_, sizeof st_, "ERR %d ", status);    \
        CHECK(strncmp(got_, st_, strlen(st_)) == 0);     \
        CHECK_HAS(got_, part);                           \
        CHECK(strstr(got_, "not sticky") == NULL);       \
        free(got_);                                      \
    } while (0)

/* ---- the reader ------------------------------------------------------------ */

TEST(plain)
{
    EXPECT("a,b\n1,2\n", ',', "1:[a][b]\n2:[1][2]\n");
    EXPECT("a,b\n1,2", ',', "1:[a][b]\n2:[1][2]\n");
    EXPECT("a,b\r\n1,2\r\n", ',', "1:[a][b]\n2:[1][2]\n");
    EXPECT("a,b\r\n1,2", ',', "1:[a][b]\n2:[1][2]\n");
    EXPECT("a,b\r1,2\r", ',', "1:[a][b]\n2:[1][2]\n");
    EXPECT("a\tb c\n1\t2\n", '\t', "1:[a][b c]\n2:[1][2]\n");
    EXPECT("a;b,c\n1;2\n", ';', "1:[a][b,c]\n2:[1][2]\n");
    EXPECT("a|b\n|\n", '|', "1:[a][b]\n2:[][]\n");
    EXPECT("", ',', "");
    EXPECT("\n", ',', "");
    EXPECT("\r\n\r\n", ',', "");
    EXPECT("x", ',', "1:[x]\n");
    EXPECT(",", ',', "1:[][]\n");
    EXPECT("a,\n,b\n", ',', "1:[a][]\n2:[][b]\n");
    EXPECT(" a , b \n", ',', "1:[ a ][ b ]\n");
}

TEST(quoted)
{
    EXPECT("x,\"a,b\",\"he said \"\"hi\"\"\"\n\"multi\nline\",2,3\n4,5,6", ',',
           "1:[x]{a,b}{he said \"hi\"}\n2:{multi\nline}[2][3]\n4:[4][5][6]\n");
    EXPECT("\"\"\n", ',', "1:{}\n");
    EXPECT("\"\",\"\"", ',', "1:{}{}\n");
    EXPECT("\"\"\"\"\n", ',', "1:{\"}\n");
    EXPECT("\"a\r\nb\",c\r\nd,e\r\n", ',', "1:{a\r\nb}[c]\n3:[d][e]\n");
    EXPECT("\"a\rb\"\n", ',', "1:{a\rb}\n");
    EXPECT("\"a\",\"b\"\r", ',', "1:{a}{b}\n");
    EXPECT("\"x\ny\"", ',', "1:{x\ny}\n");
    EXPECT("\"\n\n\"\nz\n", ',', "1:{\n\n}\n4:[z]\n");
    EXPECT("\"a;b\";c\n", ';', "1:{a;b}[c]\n");
}

TEST(bom_and_blank_lines)
{
    EXPECT(
        "\xef\xbb\xbf"
        "a,b\n1,2\n",
        ',', "1:[a][b]\n2:[1][2]\n");
    EXPECT("\xef\xbb\xbf", ',', "");
    EXPECT("\xef\xbb", ',', "1:[\xef\xbb]\n");
    EXPECT("\xef\xbbx,y", ',', "1:[\xef\xbbx][y]\n");
    EXPECT("\xef,y", ',', "1:[\xef][y]\n");
    EXPECT("\xef\xbb\xbf\xef\xbb\xbf", ',', "1:[\xef\xbb\xbf]\n");
    EXPECT("\xef\xbb\xbf\"q\"", ',', "1:{q}\n");
    EXPECT("\n\na,b\n\n1,2\n\n", ',', "3:[a][b]\n5:[1][2]\n");
    EXPECT("\r\n\r\na\r\n\r\nb", ',', "3:[a]\n5:[b]\n");
}

TEST(errors)
{
    EXPECT_ERR("a,b\n1\n", ',', 400,
               "line 2 has 1 fields, but line 1 (the first row) has 2");
    EXPECT_ERR("a,b\n\n\"x\ny\",2\n1,2,3\n", ',', 400,
               "line 5 has 3 fields, but line 1");
    EXPECT_ERR("a,b\n1,2\nx\"y,3\n", ',', 400,
               "line 3: a quote inside an unquoted field");
    EXPECT_ERR("\"a\"b,c\n", ',', 400,
               "line 1: a quoted field (from line 1) is followed");
    EXPECT_ERR("x\n\"a\nb\"c\n", ',', 400, "line 3: a quoted field (from line 2)");
    EXPECT_ERR("a\n\"abc\ndef", ',', 400,
               "line 2: a quoted field is not closed by the end of the input");
    EXPECT_ERR("a,b\n1,\0", ',', 400, "line 2 holds a NUL byte");
    EXPECT_ERR("\"a\0\"", ',', 400, "line 1 holds a NUL byte");
    cairn_err_t err = {0};
    CHECK(cairn_csv_new('"', s_row, NULL, &err) == NULL);
    CHECK_EQ(err.st, 400);
    CHECK(cairn_csv_new('\n', s_row, NULL, &err) == NULL);
}

TEST(limits)
{
    /* 4096 fields pass, 4097 do not */
    size_t n = 2 * CAIRN_CSV_COLS_MAX + 8;
    char *in = malloc(n);
    size_t len = 0;
    for (int i = 0; i < CAIRN_CSV_COLS_MAX; i++) {
        in[len++] = 'x';
        in[len++] = i + 1 < CAIRN_CSV_COLS_MAX ? ',' : '\n';
    }
    char *got = s_parse_cut(in, len, ',', NULL, 0, 0);
    CHECK(strncmp(got, "1:[x]", 5) == 0);
    free(got);
    in[len - 1] = ',';
    in[len++] = 'y';
    got = s_parse_cut(in, len, ',', NULL, 0, 0);
    CHECK_HAS(got, "ERR 413 line 1 has more than 4096 fields");
    free(got);
    free(in);
    /* a field of 1 MiB passes, one byte more does not, quoted or not */
    size_t big = CAIRN_CSV_FIELD_MAX;
    const char *over = "ERR 413 line 1: field 2 is longer than 1048576 bytes";
    in = malloc(big + 16);
    memset(in, 'z', big + 16);
    memcpy(in, "a,", 2);
    in[2 + big] = '\n';
    got = s_parse_cut(in, big + 3, ',', NULL, 0, 0);
    CHECK(strncmp(got, "1:[a][zzz", 9) == 0 && strlen(got) == big + 8);
    free(got);
    in[2 + big] = 'z';
    in[3 + big] = '\n';
    got = s_parse_cut(in, big + 4, ',', NULL, 0, 0);
    CHECK(strncmp(got, over, strlen(over)) == 0);
    free(got);
    in[2] = '"'; /* "z...z" of big bytes, then of big + 1 */
    in[3 + big] = '"';
    in[4 + big] = '\n';
    got = s_parse_cut(in, big + 5, ',', NULL, 0, 0);
    CHECK(strncmp(got, "1:[a]{zzz", 9) == 0 && strlen(got) == big + 8);
    free(got);
    in[3 + big] = 'z';
    in[4 + big] = '"';
    in[5 + big] = '\n';
    got = s_parse_cut(in, big + 6, ',', NULL, 0, 0);
    CHECK(strncmp(got, over, strlen(over)) == 0);
    free(got);
    free(in);
}

TEST(callback_stops)
{
    const char in[] = "a\nb\nc\n";
    char *got = s_parse_cut(in, 6, ',', NULL, 0, 2);
    CHECK_STR(got, "ERR 422 the callback stopped at line 2");
    free(got);
}

TEST(after_finish)
{
    cairn_err_t err = {0};
    out_t o = {0};
    cairn_csv_t *c = cairn_csv_new(',', s_row, &o, &err);
    CHECK(cairn_csv_feed(c, "a,b\nc,d", 7, &err) == 0);
    CHECK_EQ(cairn_csv_records(c), 1);
    CHECK(cairn_csv_finish(c, &err) == 0);
    CHECK(cairn_csv_finish(c, &err) == 0);
    CHECK_EQ(cairn_csv_records(c), 2);
    CHECK_EQ(cairn_csv_fields(c), 2);
    CHECK(cairn_csv_feed(c, "x", 1, &err) == -1);
    CHECK_HAS(err.msg, "has ended");
    cairn_csv_destroy(&c);
    free(o.s);
    /* no callback: only counted */
    c = cairn_csv_new('|', NULL, NULL, &err);
    CHECK(cairn_csv_feed(c, "a|b\n1|2\n3|4", 11, &err) == 0);
    CHECK(cairn_csv_finish(c, &err) == 0);
    CHECK_EQ(cairn_csv_records(c), 3);
    cairn_csv_destroy(&c);
}

/* ---- cell types ------------------------------------------------------------ */

static const char *s_type(const char *cell)
{
    cairn_csv_type_t t;
    if (!cairn_csv_cell_type(cell, strlen(cell), &t)) return "empty";
    return cairn_csv_type_name(t);
}

TEST(cell_types)
{
    CHECK_STR(s_type(""), "empty");
    CHECK_STR(s_type("  "), "empty");
    CHECK_STR(s_type("0"), "int");
    CHECK_STR(s_type("-12"), "int");
    CHECK_STR(s_type("+7"), "int");
    CHECK_STR(s_type(" 42 "), "int");
    CHECK_STR(s_type("9223372036854775807"), "int");
    CHECK_STR(s_type("-9223372036854775808"), "int");
    CHECK_STR(s_type("9223372036854775808"), "float");
    CHECK_STR(s_type("-9223372036854775809"), "float");
    CHECK_STR(s_type("1.5"), "float");
    CHECK_STR(s_type(".5"), "float");
    CHECK_STR(s_type("5."), "float");
    CHECK_STR(s_type("-1e10"), "float");
    CHECK_STR(s_type("1E+3"), "float");
    CHECK_STR(s_type("inf"), "float");
    CHECK_STR(s_type("-Infinity"), "float");
    CHECK_STR(s_type("NaN"), "float");
    CHECK_STR(s_type("true"), "bool");
    CHECK_STR(s_type("FALSE"), "bool");
    CHECK_STR(s_type("True"), "bool");
    CHECK_STR(s_type("-"), "string");
    CHECK_STR(s_type("."), "string");
    CHECK_STR(s_type("1e"), "string");
    CHECK_STR(s_type("e5"), "string");
    CHECK_STR(s_type("1.2.3"), "string");
    CHECK_STR(s_type("0x10"), "string");
    CHECK_STR(s_type("yes"), "string");
    CHECK_STR(s_type("1 2"), "string");
    CHECK_STR(s_type("infinit"), "string");
}

/* ---- the sniffer ----------------------------------------------------------- */

/* The sniffer's result as one line: "D H rows | name:type[?] ..." or the
 * error. */
static char *s_sniff_cut(const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
    cairn_err_t err = {0};
    cairn_csv_sniff_t *s = cairn_csv_sniff_new(&err);
    out_t o = {0};
    s_put(&o, "", 0);
    int rc = 0;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        rc = cairn_csv_sniff_feed(s, in + at, end - at, &err);
        at = end;
    }
    if (rc == 0) rc = cairn_csv_sniff_finish(s, &err);
    if (rc != 0) {
        char e[700];
        snprintf(e, sizeof e, "ERR %d %s", err.st, err.msg);
        s_put(&o, e, strlen(e));
    } else {
        CHECK(cairn_csv_sniff_finish(s, &err) == 0); /* twice */
        char d = cairn_csv_sniff_delimiter(s);
        char head[64];
        snprintf(head, sizeof head, "%s %s %llu |", d == '\t' ? "TAB" : (char[]){d, 0},
                 cairn_csv_sniff_header(s) ? "header" : "noheader",
                 (unsigned long long)cairn_csv_sniff_rows(s));
        s_put(&o, head, strlen(head));
        for (size_t i = 0; i < cairn_csv_sniff_columns(s); i++) {
            const char *name = cairn_csv_sniff_name(s, i);
            const char *type = cairn_csv_type_name(cairn_csv_sniff_type(s, i));
            s_put(&o, " ", 1);
            s_put(&o, name, strlen(name));
            s_put(&o, ":", 1);
            s_put(&o, type, strlen(type));
            if (cairn_csv_sniff_nullable(s, i)) s_put(&o, "?", 1);
        }
        CHECK(cairn_csv_sniff_name(s, cairn_csv_sniff_columns(s)) == NULL);
    }
    cairn_csv_sniff_destroy(&s);
    cairn_csv_sniff_destroy(&s);
    return o.s;
}

static char *s_sniff(const char *in, size_t len)
{
    char *whole = s_sniff_cut(in, len, NULL, 0);
    bool same = true;
    for (size_t k = 0; k <= len && same; k++) {
        char *two = s_sniff_cut(in, len, &k, 1);
        if (strcmp(two, whole) != 0) {
            fprintf(stderr, "     cut at %zu: got \"%s\", whole \"%s\"\n", k, two,
                    whole);
            same = false;
        }
        free(two);
    }
    CHECK(same);
    return whole;
}

#define SNIFF(in, want)                           \
    do {                                          \
        char *got_ = s_sniff(in, sizeof(in) - 1); \
        CHECK_STR(got_, want);                    \
        free(got_);                               \
    } while (0)

#define SNIFF_ERR(in, part)                       \
    do {                                          \
        char *got_ = s_sniff(in, sizeof(in) - 1); \
        CHECK(strncmp(got_, "ERR ", 4) == 0);     \
        CHECK_HAS(got_, part);                    \
        free(got_);                               \
    } while (0)

TEST(sniff_tables)
{
    SNIFF("id,name,score,ok,note\n1,ann,1.5,true,\n2,bob,2,false,x\n3,,3e2,TRUE,\n",
          ", header 3 | id:int name:string? score:float ok:bool note:string?");
    SNIFF("1,2\n3,4.5\n", ", noheader 2 | col_1:int col_2:float");
    SNIFF("1,\n,x\n", ", noheader 2 | col_1:int? col_2:string?");
    SNIFF("a;b\n1,5;2\n", "; header 1 | a:string b:int");
    SNIFF("a\tb\n1\t2\n3\t\n", "TAB header 2 | a:int b:int?");
    SNIFF("a|b|c\n1|2|3\n", "| header 1 | a:int b:int c:int");
    SNIFF("name,desc\n\"a;b\",\"x|y\"\n\"c\td\",e\n",
          ", header 2 | name:string desc:string");
    SNIFF("x\n1\n2\n", ", header 2 | x:int");
    SNIFF("x\n", ", header 0 | x:string");
    SNIFF("7\n", ", noheader 1 | col_1:int");
    SNIFF("a,a\nb,c\n", ", noheader 2 | col_1:string col_2:string");
    SNIFF("a,\nb,c\n", ", noheader 2 | col_1:string col_2:string?");
    SNIFF("a,1\nb,2\n", ", noheader 2 | col_1:string col_2:int");
    SNIFF("a,true\nb,2\n", ", noheader 2 | col_1:string col_2:string");
    SNIFF("a,b\n,\n,\n", ", header 2 | a:string? b:string?");
    SNIFF("\xef\xbb\xbfk,v\r\n1,2\r\n", ", header 1 | k:int v:int");
    SNIFF("a,b\n1,9223372036854775808\n", ", header 1 | a:int b:float");
    /* both ',' and ';' split every line; ';' more widely */
    SNIFF("a;b,c;d\n1;2,3;4\n", "; header 1 | a:int b,c:string d:int");
    /* a header cell longer than CAIRN_CSV_NAME_MAX makes line 1 data */
    char in[CAIRN_CSV_NAME_MAX + 16];
    memset(in, 'n', sizeof in);
    memcpy(in, "a,", 2);
    memcpy(in + 2 + CAIRN_CSV_NAME_MAX + 1, "\nb,c\n", 5);
    char *got = s_sniff_cut(in, 2 + CAIRN_CSV_NAME_MAX + 1 + 5, NULL, 0);
    CHECK_STR(got, ", noheader 2 | col_1:string col_2:string");
    free(got);
    memcpy(in + 2 + CAIRN_CSV_NAME_MAX, "\nb,c\n", 5);
    got = s_sniff_cut(in, 2 + CAIRN_CSV_NAME_MAX + 5, NULL, 0);
    CHECK(strncmp(got, ", header 1 | a:string nnn", 25) == 0);
    free(got);
}

TEST(sniff_not_tables)
{
    SNIFF_ERR("", "the input holds no CSV rows");
    SNIFF_ERR("\n\n", "the input holds no CSV rows");
    SNIFF_ERR("a,b\n1,2\n3\n", "line 3 has 1 fields, but line 1 (the first row) has 2");
    SNIFF_ERR(
        "\x7f"
        "ELF\x02\x01\x01\0\0\0",
        "NUL byte");
    SNIFF_ERR("a,b\n\"1,2\n", "not closed");
}

/* Many rows: the delimiter is chosen from the first lines, the types and
 * the count come from all of them (a float and an empty cell late). */
TEST(sniff_long)
{
    out_t o = {0};
    s_put(&o, "id;value;label\n", 15);
    for (int i = 0; i < 300; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "%d;%d;\"l;%d\"\n", i, i * 3, i);
        if (i == 250) n = snprintf(line, sizeof line, "%d;2.5;\n", i);
        s_put(&o, line, (size_t)n);
    }
    char *got = s_sniff(o.s, o.len);
    CHECK_STR(got, "; header 300 | id:int value:float label:string?");
    free(got);
    /* a ragged row long after the first lines */
    s_put(&o, "1;2\n", 4);
    got = s_sniff_cut(o.s, o.len, NULL, 0);
    CHECK_HAS(got, "ERR 400 line 302 has 2 fields, but line 1 (the first row) has 3");
    free(got);
    free(o.s);
    /* more than CAIRN_CSV_SNIFF_BYTES in one line: the delimiter by count */
    size_t big = CAIRN_CSV_SNIFF_BYTES + 100;
    char *in = malloc(big);
    for (size_t i = 0; i < big; i++) in[i] = i % 100 == 99 ? '|' : 'v';
    in[big - 1] = '\n';
    got = s_sniff_cut(in, big, NULL, 0);
    CHECK(strncmp(got, "| noheader 1 |", 14) == 0);
    free(got);
    size_t cut = CAIRN_CSV_SNIFF_BYTES - 7;
    got = s_sniff_cut(in, big, &cut, 1);
    CHECK(strncmp(got, "| noheader 1 |", 14) == 0);
    free(got);
    free(in);
}

int main(void)
{
    RUN(plain);
    RUN(quoted);
    RUN(bom_and_blank_lines);
    RUN(errors);
    RUN(limits);
    RUN(callback_stops);
    RUN(after_finish);
    RUN(cell_types);
    RUN(sniff_tables);
    RUN(sniff_not_tables);
    RUN(sniff_long);
    return unit_report();
}
