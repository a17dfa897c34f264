/* The trainer's CSV loader (plugins/trainer/table.h): typed columns,
 * numbers as strtod reads them, missing cells, one-hot and categorical
 * encodings, class labels, the second pass for a late categorical, and
 * each refusal's sentence. */
#include <math.h>
#include <stdlib.h>

#include "table.h"
#include "unit.h"

static trainer_table_t *s_load(const char *csv, const char *target, trainer_task_t task,
                               bool categorical, cairn_err_t *err)
{
    trainer_table_opts_t o = {
        .target = target, .task = task, .categorical = categorical};
    return trainer_table_load_mem(csv, strlen(csv), &o, err);
}

static void s_refused(const char *csv, const char *target, trainer_task_t task, int st,
                      const char *want)
{
    cairn_err_t err = {0};
    trainer_table_t *t = s_load(csv, target, task, false, &err);
    CHECK(t == NULL);
    CHECK_EQ(err.st, st);
    CHECK_HAS(err.msg, want);
    trainer_table_destroy(&t);
}

/* Row r of every feature, gathered. */
static void s_row(const trainer_table_t *t, uint32_t r, float *x, float *y)
{
    trainer_table_gather(t, &r, 1, x, y);
}

TEST(numbers_parse_as_strtod)
{
    const char *cells[] = {"0",
                           "-0",
                           "1.5",
                           "+2.25e3",
                           "123456789012345678",
                           "1e-30",
                           "0.1",
                           "3.14159265358979323846",
                           ".5",
                           "5.",
                           "1E5",
                           "1e400",
                           "nan",
                           "0x10",
                           "00012",
                           "-7e-5"};
    for (size_t i = 0; i < sizeof cells / sizeof *cells; i++) {
        double d = -1;
        bool ok = trainer_parse_number(cells[i], strlen(cells[i]), &d);
        if (strcmp(cells[i], "0x10") == 0) {
            CHECK(!ok); /* not a number in csv.h's grammar */
            continue;
        }
        CHECK(ok);
        double want = strtod(cells[i], NULL);
        if (!CHECK((isnan(want) && isnan(d)) || memcmp(&d, &want, sizeof d) == 0))
            fprintf(stderr, "     %s: got %.17g want %.17g\n", cells[i], d, want);
    }
    double d;
    CHECK(!trainer_parse_number("abc", 3, &d));
    CHECK(!trainer_parse_number("1.2.3", 5, &d));
    CHECK(!trainer_parse_number("-", 1, &d));
    CHECK(!trainer_parse_number("e5", 2, &d));
}

TEST(types_missing_and_one_hot)
{
    cairn_err_t err = {0};
    trainer_table_t *t = s_load(
        "a,color,y,flag\n1.5,red,yes,true\n,blue,no,FALSE\n"
        "3,,yes,\n",
        "y", TRAINER_CLASSIFICATION, false, &err);
    if (!CHECK(t != NULL)) {
        fprintf(stderr, "     %s\n", err.msg);
        return;
    }
    CHECK_EQ(trainer_table_rows(t), 3);
    CHECK_EQ(trainer_table_passes(t), 1);
    CHECK_EQ(trainer_table_columns(t), 3);
    CHECK_STR(trainer_table_column_type(t, 0), "float");
    CHECK_STR(trainer_table_column_type(t, 1), "string");
    CHECK_STR(trainer_table_column_type(t, 2), "bool");
    CHECK(trainer_table_column_missing(t, 0));
    CHECK_EQ(trainer_table_features(t), 4); /* a, color=blue, color=red, flag */
    CHECK_STR(trainer_table_feature_name(t, 1), "color=blue");
    CHECK_STR(trainer_table_feature_name(t, 2), "color=red");
    CHECK_STR(trainer_table_feature_name(t, 3), "flag");
    CHECK_EQ(trainer_table_classes(t), 2);
    CHECK_STR(trainer_table_class(t, 0), "no");
    CHECK_STR(trainer_table_class(t, 1), "yes");
    float x[4], y;
    s_row(t, 0, x, &y);
    CHECK(x[0] == 1.5f && x[1] == 0 && x[2] == 1 && x[3] == 1 && y == 1);
    s_row(t, 1, x, &y);
    CHECK(isnan(x[0]) && x[1] == 1 && x[2] == 0 && x[3] == 0 && y == 0);
    s_row(t, 2, x, &y);
    CHECK(x[0] == 3 && isnan(x[1]) && isnan(x[2]) && isnan(x[3]));
    trainer_table_destroy(&t);
    trainer_table_destroy(&t);
}

TEST(categorical_and_late_category)
{
    cairn_err_t err = {0};
    /* b is numeric for two rows, then text: a second pass reads it again. */
    trainer_table_t *t =
        s_load("b,y\n1,0.5\n2,1.5\nzz,2\n1,3\n", "y", TRAINER_REGRESSION, true, &err);
    if (!CHECK(t != NULL)) return;
    CHECK_EQ(trainer_table_passes(t), 2);
    CHECK_EQ(trainer_table_features(t), 1);
    CHECK_EQ(trainer_table_feature_type(t, 0), 'c');
    CHECK_EQ(trainer_table_column_categories(t, 0), 3);
    CHECK_STR(trainer_table_category(t, 0, 2), "zz");
    float x, y;
    s_row(t, 2, &x, &y);
    CHECK(x == 2 && y == 2);
    s_row(t, 3, &x, &y);
    CHECK(x == 0 && y == 3);
    CHECK_EQ(trainer_table_classes(t), 0);
    trainer_table_destroy(&t);
}

TEST(numeric_labels_sort_numerically)
{
    cairn_err_t err = {0};
    trainer_table_t *t =
        s_load("x,y\n1,10\n2,9\n3,-1\n4,9\n", "y", TRAINER_CLASSIFICATION, false, &err);
    if (!CHECK(t != NULL)) return;
    CHECK_EQ(trainer_table_classes(t), 3);
    CHECK_STR(trainer_table_class(t, 0), "-1");
    CHECK_STR(trainer_table_class(t, 2), "10");
    const float *l = trainer_table_labels(t);
    CHECK(l[0] == 2 && l[1] == 1 && l[2] == 0 && l[3] == 1);
    trainer_table_destroy(&t);
}

TEST(quoted_crlf_bom)
{
    cairn_err_t err = {0};
    trainer_table_t *t =
        s_load("\xef\xbb\xbf\"a\",y\r\n\"1.25\",1\r\n\r\n\"x,y\",2\r\n", "y",
               TRAINER_REGRESSION, false, &err);
    if (!CHECK(t != NULL)) return;
    CHECK_EQ(trainer_table_rows(t), 2);
    CHECK_STR(trainer_table_feature_name(t, 1), "a=x,y");
    trainer_table_destroy(&t);
}

TEST(refusals)
{
    s_refused("a,b\n1,2\n", "y", TRAINER_REGRESSION, 400,
              "target: column \"y\" is not in the data (its 2 columns: \"a\", \"b\")");
    s_refused("a,y\n1,\n", "y", TRAINER_REGRESSION, 400,
              "line 2: the target column \"y\" is empty");
    s_refused("a,y\n1,x\n", "y", TRAINER_REGRESSION, 400, "is not a finite float32");
    s_refused("a,y\n1,k\n2,k\n", "y", TRAINER_CLASSIFICATION, 400,
              "has a single class");
    s_refused("a,y\n", "y", TRAINER_REGRESSION, 400, "no rows");
    s_refused("", "y", TRAINER_REGRESSION, 400, "no rows");
    s_refused("a,a,y\n1,2,3\n", "y", TRAINER_REGRESSION, 400, "named twice");
    s_refused("a,,y\n1,2,3\n", "y", TRAINER_REGRESSION, 400, "must be a header");
    s_refused("a,y\n1,2\n3\n", "y", TRAINER_REGRESSION, 400, "line 3 has 1 fields");
    s_refused("a,y\ninf,2\n", "y", TRAINER_REGRESSION, 400, "holds an infinity");
    s_refused("a,y\n1e39,2\n", "y", TRAINER_REGRESSION, 400, "beyond float32's range");
    s_refused("a,y\n1,2E62\n", "y", TRAINER_REGRESSION, 400, "not a finite float32");
    /* Too many categories for one column. */
    size_t cap = 8 * (TRAINER_CATEGORIES_MAX + 2) + 16;
    char *csv = malloc(cap);
    size_t n = (size_t)snprintf(csv, cap, "c,y\n");
    for (int i = 0; i <= TRAINER_CATEGORIES_MAX; i++)
        n += (size_t)snprintf(csv + n, cap - n, "k%d,1\n", i);
    s_refused(csv, "y", TRAINER_REGRESSION, 413, "more than 1000 categories");
    free(csv);
}

int main(void)
{
    RUN(numbers_parse_as_strtod);
    RUN(types_missing_and_one_hot);
    RUN(categorical_and_late_category);
    RUN(numeric_labels_sort_numerically);
    RUN(quoted_crlf_bom);
    RUN(refusals);
    return unit_report();
}
