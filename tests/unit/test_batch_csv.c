/* A batch job's CSV (plugins/scorer/batch_csv.h): the cut finds the same
 * records as the CSV reader (CRLF, lone CR, quoted line ends, empty lines,
 * no last line end) whole and a byte at a time; the header matched by
 * name, or in order for a model without names; a bad cell or a ragged row
 * named by row and column; and every number read exactly as (float)strtod
 * reads it, over a million random decimals of every shape (the fast path
 * and the fallback). */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_csv.h"
#include "unit.h"

static size_t s_records(const char *p, size_t step)
{
    batch_cut_t c = {0};
    size_t n = strlen(p), total = 0, got;
    for (size_t i = 0; i < n; i += step) {
        size_t len = n - i < step ? n - i : step;
        size_t used = batch_cut_scan(&c, p + i, len, (size_t)-1, &got);
        CHECK_UEQ(used, len);
        total += got;
    }
    return total + batch_cut_finish(&c);
}

TEST(cut)
{
    static const struct {
        const char *text;
        size_t records;
    } cases[] = {
        {"a,b\n1,2\n3,4\n", 3},
        {"a,b\r\n1,2\r\n3,4", 3},
        {"a\r1\r\r2\r", 3},
        {"a\n\n\n1\n", 2},
        {"a,b\n\"1\n2\",3\n4,5\n", 3},
        {"a\n\"x\"\"\ny\"\n", 2},
        {"", 0},
        {"\n\r\n", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_UEQ(s_records(cases[i].text, 1 << 20), cases[i].records);
        CHECK_UEQ(s_records(cases[i].text, 1), cases[i].records);
    }
    /* it stops right after the want-th record */
    batch_cut_t c = {0};
    size_t got;
    CHECK_UEQ(batch_cut_scan(&c, "a\nbb\nccc\n", 9, 2, &got), 5);
    CHECK_UEQ(got, 2);
}

static const char *const s_names[] = {"x", "y"};

TEST(header_and_rows)
{
    cairn_err_t err = {0};
    const char *h = "\xef\xbb\xbfid,y,x\n";
    batch_cols_t *c = batch_cols_new(h, strlen(h), 2, s_names, "in.csv", &err);
    if (!CHECK(c)) return;
    CHECK_UEQ(batch_cols_width(c), 3);
    float v[6];
    size_t n = 0;
    const char *rows = "7,1.5,2\n8,,-3e2\n9,0.25,4\n";
    CHECK_EQ(batch_parse(c, rows, strlen(rows), 3, 10, v, &n, &err), 0);
    CHECK_UEQ(n, 3);
    CHECK(v[0] == 2 && v[1] == 1.5f && v[2] == -300 && isnan(v[3]) && v[4] == 4);
    const char *bad = "7,1,2\n8,abc,2\n";
    CHECK_EQ(batch_parse(c, bad, strlen(bad), 2, 100, v, &n, &err), -1);
    CHECK_HAS(err.msg, "row 101, column 'y': 'abc' is not a number");
    const char *ragged = "7,1\n";
    CHECK_EQ(batch_parse(c, ragged, strlen(ragged), 1, 5, v, &n, &err), -1);
    CHECK_HAS(err.msg, "row 5 has 2 values; the header of in.csv has 3");
    CHECK_EQ(batch_parse(c, rows, strlen(rows), 2, 0, v, &n, &err), -1);
    CHECK_HAS(err.msg, "more than the 2 rows");
    batch_cols_destroy(&c);
    batch_cols_destroy(&c); /* safe twice */
    CHECK(!batch_cols_new("id,x\n", 5, 2, s_names, "in.csv", &err));
    CHECK_HAS(err.msg, "in.csv: the model's feature 'y' is not a column of it");
    CHECK(!batch_cols_new("1,2\n", 4, 2, s_names, "in.csv", &err));
    CHECK_HAS(err.msg, "must be a header");
    CHECK(!batch_cols_new("a,b,c\n", 6, 2, NULL, "in.csv", &err));
    CHECK_HAS(err.msg, "in.csv has 3 columns; the model takes 2 features");
    c = batch_cols_new("p,q\n", 4, 2, NULL, "in.csv", &err);
    CHECK(c);
    batch_cols_destroy(&c);
}

/* A random decimal: sign, digits, point, exponent, in many shapes. */
static void s_decimal(char *out, size_t cap, unsigned *seed)
{
    int n = 0, digits = 1 + rand_r(seed) % 20, point = rand_r(seed) % (digits + 2);
    if (rand_r(seed) % 3 == 0) out[n++] = rand_r(seed) % 2 ? '-' : '+';
    for (int i = 0; i < digits; i++) {
        if (i == point) out[n++] = '.';
        out[n++] =
            (char)('0' + (i == 0 && rand_r(seed) % 4 == 0 ? 0 : rand_r(seed) % 10));
    }
    if (rand_r(seed) % 3 == 0)
        n += snprintf(out + n, cap - (size_t)n, "e%d", rand_r(seed) % 80 - 40);
    out[n] = '\0';
}

TEST(numbers_as_strtod)
{
    cairn_err_t err = {0};
    batch_cols_t *c = batch_cols_new("v\n", 2, 1, NULL, "n.csv", &err);
    if (!CHECK(c)) return;
    unsigned seed = 1;
    int bad = 0;
    for (int i = 0; i < 1000000 && bad < 5; i++) {
        char cell[80], line[82];
        s_decimal(cell, sizeof cell, &seed);
        snprintf(line, sizeof line, "%s\n", cell);
        float v = 0;
        size_t n = 0;
        double want = strtod(cell, NULL);
        if (batch_parse(c, line, strlen(line), 1, 0, &v, &n, &err) != 0) {
            if (fabs(want) <= 3.4028234663852886e38) bad++;
            continue;
        }
        float w = (float)want;
        if (memcmp(&v, &w, sizeof v) != 0 && !(isnan(v) && isnan(w))) {
            fprintf(stderr, "     '%s': got %.9g, want %.9g\n", cell, v, w);
            bad++;
        }
    }
    CHECK_EQ(bad, 0);
    batch_cols_destroy(&c);
}

int main(void)
{
    RUN(cut);
    RUN(header_and_rows);
    RUN(numbers_as_strtod);
    return unit_report();
}
