/* The scorer's model library (plugins/scorer/model.h) on small models
 * written by hand: a stump, missing values, a categorical split, several
 * classes, a dart weight, UBJSON, and malformed models refused with a 400
 * or 413 naming what is wrong. Predictions against XGBoost itself are
 * integration/test_scorer_model.py's. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "model.h"
#include "unit.h"

/* A stump on feature 0: < 0.5 left (-1), else right (2); missing left. */
#define STUMP                                                            \
    "{\"left_children\":[1,-1,-1],\"right_children\":[2,-1,-1],"         \
    "\"split_indices\":[0,0,0],\"split_conditions\":[0.5,-1.0,2.0],"     \
    "\"default_left\":[1,0,0],\"split_type\":[0,0,0],\"categories\":[]," \
    "\"categories_nodes\":[],\"categories_segments\":[],\"categories_sizes\":[]}"
/* On feature 1, categories {1, 3} right (+10), others left (-10); missing
 * right. */
#define CATTREE                                                             \
    "{\"left_children\":[1,-1,-1],\"right_children\":[2,-1,-1],"            \
    "\"split_indices\":[1,0,0],\"split_conditions\":[0,-10,10],"            \
    "\"default_left\":[0,0,0],\"split_type\":[1,0,0],\"categories\":[1,3]," \
    "\"categories_nodes\":[0],\"categories_segments\":[0],\"categories_sizes\":[2]}"

static char *s_model(const char *obj, const char *base, int nclass, int nfeat,
                     const char *trees, const char *info)
{
    static char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"learner\":{\"feature_names\":[],\"feature_types\":[],"
             "\"gradient_booster\":{\"name\":\"gbtree\",\"model\":{\"trees\":[%s],"
             "\"tree_info\":[%s]}},\"learner_model_param\":{\"base_score\":\"%s\","
             "\"num_class\":\"%d\",\"num_feature\":\"%d\"},"
             "\"objective\":{\"name\":\"%s\"}},\"version\":[1,7,4]}",
             trees, info, base, nclass, nfeat, obj);
    return buf;
}

static scorer_model_t *s_load(const char *text, cairn_err_t *err)
{
    scorer_model_t *m = NULL;
    memset(err, 0, sizeof *err);
    scorer_model_load_mem(text, strlen(text), &m, err);
    return m;
}

static float s_one(const scorer_model_t *m, float a, float b)
{
    float row[2] = {a, b}, out[8] = {0};
    cairn_err_t err;
    scorer_model_predict(m, row, 1, scorer_model_features(m), out, &err);
    return out[0];
}

TEST(stump)
{
    cairn_err_t err;
    scorer_model_t *m =
        s_load(s_model("reg:squarederror", "5E-1", 0, 1, STUMP, "0"), &err);
    if (!CHECK(m)) return;
    CHECK_EQ(scorer_model_features(m), 1);
    CHECK_EQ(scorer_model_outputs(m), 1);
    CHECK_EQ(scorer_model_trees(m), 1);
    CHECK_EQ(scorer_model_nodes(m), 3);
    CHECK_STR(scorer_model_objective(m), "reg:squarederror");
    CHECK_STR(scorer_model_booster(m), "gbtree");
    CHECK(scorer_model_feature_name(m, 0) == NULL);
    CHECK(s_one(m, 0.4f, 0) == 0.5f - 1.0f);
    CHECK(s_one(m, 0.5f, 0) == 2.5f); /* not < threshold: right */
    CHECK(s_one(m, NAN, 0) == -0.5f); /* missing: default left */
    float two[2] = {0.0f, 1.0f}, out[2];
    CHECK(scorer_model_predict(m, two, 1, 2, out, &err) == -1); /* ncols */
    CHECK_EQ(err.st, 400);
    CHECK_HAS(err.msg, "2 features where the model takes 1");
    CHECK(scorer_model_predict(m, two, 2, 1, out, &err) == 0);
    CHECK(out[0] == -0.5f && out[1] == 2.5f);
    scorer_model_destroy(&m);
    scorer_model_destroy(&m);
    CHECK(m == NULL);
}

TEST(logistic_base_and_transform)
{
    cairn_err_t err;
    scorer_model_t *m =
        s_load(s_model("binary:logistic", "5E-1", 0, 1, STUMP, "0"), &err);
    if (!CHECK(m)) return;
    /* base 0.5 is margin 0 */
    CHECK(fabsf(s_one(m, 1.0f, 0) - 1.0f / (1.0f + expf(-2.0f))) < 1e-7f);
    float row = 1.0f, margin;
    CHECK(scorer_model_margin(m, &row, 1, 1, &margin, &err) == 0);
    CHECK(margin == 2.0f);
    scorer_model_destroy(&m);
    m = s_load(s_model("count:poisson", "2", 0, 1, STUMP, "0"), &err);
    if (!CHECK(m)) return;
    CHECK(fabsf(s_one(m, 0.0f, 0) - expf(logf(2.0f) - 1.0f)) < 1e-6f);
    scorer_model_destroy(&m);
}

TEST(categorical_split)
{
    cairn_err_t err;
    scorer_model_t *m =
        s_load(s_model("reg:squarederror", "0", 0, 2, CATTREE, "0"), &err);
    if (!CHECK(m)) return;
    CHECK(s_one(m, 0, 1.0f) == 10.0f);
    CHECK(s_one(m, 0, 3.0f) == 10.0f);
    CHECK(s_one(m, 0, 0.0f) == -10.0f);
    CHECK(s_one(m, 0, 2.0f) == -10.0f);
    CHECK(s_one(m, 0, 99.0f) == -10.0f); /* unseen: left */
    CHECK(s_one(m, 0, -1.0f) == -10.0f);
    CHECK(s_one(m, 0, NAN) == 10.0f); /* missing: default right */
    scorer_model_destroy(&m);
}

TEST(multi_class)
{
    cairn_err_t err;
    char trees[4096];
    snprintf(trees, sizeof trees, "%s,%s,%s", STUMP, STUMP, CATTREE);
    scorer_model_t *m =
        s_load(s_model("multi:softprob", "0.5", 3, 2, trees, "0,1,2"), &err);
    if (!CHECK(m)) return;
    CHECK_EQ(scorer_model_outputs(m), 3);
    CHECK_EQ(scorer_model_groups(m), 3);
    float row[2] = {1.0f, 1.0f}, out[3];
    CHECK(scorer_model_predict(m, row, 1, 2, out, &err) == 0);
    /* margins 2.5, 2.5, 10.5 */
    CHECK(fabsf(out[0] + out[1] + out[2] - 1.0f) < 1e-6f);
    CHECK(out[2] > 0.99f && out[0] == out[1]);
    scorer_model_destroy(&m);
    m = s_load(s_model("multi:softmax", "0.5", 3, 2, trees, "0,1,2"), &err);
    if (!CHECK(m)) return;
    CHECK_EQ(scorer_model_outputs(m), 1);
    CHECK(s_one(m, 1.0f, 1.0f) == 2.0f);
    CHECK(s_one(m, 1.0f, 0.0f) == 0.0f); /* ties: the first */
    scorer_model_destroy(&m);
}

TEST(dart_weights)
{
    const char *text =
        "{\"learner\":{\"gradient_booster\":{\"name\":\"dart\",\"gbtree\":{\"name\":"
        "\"gbtree\",\"model\":{\"trees\":[" STUMP "," STUMP
        "],\"tree_info\":[0,0]}},"
        "\"weight_drop\":[0.5,0.25]},\"learner_model_param\":{\"base_score\":\"0\","
        "\"num_class\":\"0\",\"num_feature\":\"1\"},\"objective\":{\"name\":"
        "\"reg:squarederror\"}}}";
    cairn_err_t err;
    scorer_model_t *m = s_load(text, &err);
    if (!CHECK(m)) return;
    CHECK_STR(scorer_model_booster(m), "dart");
    CHECK(s_one(m, 1.0f, 0) == 2.0f * 0.5f + 2.0f * 0.25f);
    scorer_model_destroy(&m);
}

TEST(ubjson)
{
    /* {"learner": {...}} as UBJSON, a typed float array among it */
    static const unsigned char hdr[] = "{U\x07learner{";
    unsigned char buf[2048];
    size_t n = 0;
#define PUT(s, len) (memcpy(buf + n, (s), (len)), n += (len))
#define PUTS(lit) PUT(lit, sizeof lit - 1)
#define KEY(k) (buf[n++] = 'U', buf[n++] = (unsigned char)strlen(k), PUT(k, strlen(k)))
#define STR(v) (buf[n++] = 'S', KEY(v))
    PUT(hdr, sizeof hdr - 1);
    KEY("learner_model_param");
    buf[n++] = '{';
    KEY("base_score"), STR("0");
    KEY("num_class"), STR("0");
    KEY("num_feature"), STR("1");
    buf[n++] = '}';
    KEY("objective"), buf[n++] = '{', KEY("name"), STR("reg:squarederror"),
                      buf[n++] = '}';
    KEY("gradient_booster"), buf[n++] = '{', KEY("name"), STR("gbtree");
    KEY("model"), buf[n++] = '{', KEY("tree_info"), PUTS("[$l#U\x01\0\0\0\0");
    KEY("trees"), PUTS("[{");
    KEY("left_children"), PUTS("[$l#U\x03\0\0\0\x01\xff\xff\xff\xff\xff\xff\xff\xff");
    KEY("right_children"), PUTS("[$l#U\x03\0\0\0\x02\xff\xff\xff\xff\xff\xff\xff\xff");
    KEY("split_indices"), PUTS("[$l#U\x03\0\0\0\0\0\0\0\0\0\0\0\0");
    /* 0.5, -1, 2 as big-endian float32 */
    KEY("split_conditions"), PUTS("[$d#U\x03\x3f\0\0\0\xbf\x80\0\0\x40\0\0\0");
    KEY("default_left"), PUTS("[$U#U\x03\x01\0\0");
    PUTS("}]}}}}");
    cairn_err_t err = {0};
    scorer_model_t *m = NULL;
    CHECK(scorer_model_load_mem(buf, n, &m, &err) == 0);
    if (!CHECK(m)) {
        fprintf(stderr, "     %s\n", err.msg);
        return;
    }
    CHECK(s_one(m, 0.0f, 0) == -1.0f);
    CHECK(s_one(m, 7.0f, 0) == 2.0f);
    CHECK(s_one(m, NAN, 0) == -1.0f);
    scorer_model_destroy(&m);
    CHECK(scorer_model_load_mem(buf, n - 3, &m, &err) == -1); /* cut short */
    CHECK_EQ(err.st, 400);
    CHECK_HAS(err.msg, "UBJSON");
#undef PUT
#undef PUTS
#undef KEY
#undef STR
}

/* A model refused with st and a sentence holding want. */
static void s_refused(const char *text, int st, const char *want)
{
    cairn_err_t err;
    scorer_model_t *m = s_load(text, &err);
    CHECK(m == NULL);
    CHECK_EQ(err.st, st);
    CHECK_HAS(err.msg, want);
    scorer_model_destroy(&m);
}

TEST(malformed_refused)
{
    s_refused("", 400, "empty");
    s_refused("{\"learner\":", 400, "JSON model is malformed");
    s_refused("{}", 400, "learner");
    s_refused(s_model("rank:pairwise", "0.5", 0, 1, STUMP, "0"), 400,
              "objective rank:pairwise is not supported");
    s_refused(s_model("reg:squarederror", "0.5", 0, 0, STUMP, "0"), 400,
              "feature is past num_feature");
    s_refused(s_model("reg:squarederror", "0.5", 0, 1, STUMP, "1"), 400, "tree_info");
    s_refused(s_model("reg:squarederror", "0.5", 0, 1, STUMP, "0,0"), 400, "tree_info");
    s_refused(s_model("binary:logistic", "1.5", 0, 1, STUMP, "0"), 400, "base_score");
    s_refused(s_model("reg:squarederror", "x", 0, 1, STUMP, "0"), 400, "base_score");
    s_refused(s_model("multi:softprob", "0.5", 0, 1, STUMP, "0"), 400, "num_class");
    s_refused(s_model("reg:squarederror", "0.5", 0, 9999999, STUMP, "0"), 413,
              "num_feature");
    s_refused(s_model("multi:softprob", "0.5", 5000, 1, STUMP, "0"), 413, "num_class");
    /* a cycle: node 1 points back at the root */
    s_refused(s_model("reg:squarederror", "0", 0, 1,
                      "{\"left_children\":[1,0,-1],\"right_children\":[2,2,-1],"
                      "\"split_indices\":[0,0,0],\"split_conditions\":[1,1,1],"
                      "\"default_left\":[0,0,0]}",
                      "0"),
              400, "reached twice");
    s_refused(s_model("reg:squarederror", "0", 0, 1,
                      "{\"left_children\":[1,-1,-1],\"right_children\":[7,-1,-1],"
                      "\"split_indices\":[0,0,0],\"split_conditions\":[1,1,1],"
                      "\"default_left\":[0,0,0]}",
                      "0"),
              400, "out of range");
    s_refused(s_model("reg:squarederror", "0", 0, 1,
                      "{\"left_children\":[1,-1],\"right_children\":[2,-1,-1],"
                      "\"split_indices\":[0,0,0],\"split_conditions\":[1,1,1],"
                      "\"default_left\":[0,0,0]}",
                      "0"),
              400, "unequal lengths");
    s_refused(s_model("reg:squarederror", "0", 0, 2,
                      "{\"left_children\":[1,-1,-1],\"right_children\":[2,-1,-1],"
                      "\"split_indices\":[1,0,0],\"split_conditions\":[0,1,1],"
                      "\"default_left\":[0,0,0],\"split_type\":[1,0,0]}",
                      "0"),
              400, "no categories");
    s_refused(
        s_model("reg:squarederror", "0", 0, 1, "{\"left_children\":[1,-1,-1]}", "0"),
        400, "tree 0 is malformed");
    s_refused("{U\x07learner[$Z#U\x05", 400, "UBJSON");
}

/* A chain 70 deep is refused; 60 deep is scored. */
static char *s_chain(int depth)
{
    size_t n = 2 * (size_t)depth + 1;
    char *t = malloc(n * 40 + 400);
    char *p = t;
    p += sprintf(p, "{\"left_children\":[");
    for (size_t i = 0; i < n; i++)
        p +=
            sprintf(p, "%s%d", i ? "," : "", i % 2 == 0 && i + 1 < n ? (int)i + 1 : -1);
    p += sprintf(p, "],\"right_children\":[");
    for (size_t i = 0; i < n; i++)
        p +=
            sprintf(p, "%s%d", i ? "," : "", i % 2 == 0 && i + 1 < n ? (int)i + 2 : -1);
    p += sprintf(p, "],\"split_indices\":[");
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s0", i ? "," : "");
    p += sprintf(p, "],\"split_conditions\":[");
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s%zu", i ? "," : "", i);
    p += sprintf(p, "],\"default_left\":[");
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s0", i ? "," : "");
    sprintf(p, "]}");
    return t;
}

TEST(depth_bounded)
{
    char *t = s_chain(60);
    cairn_err_t err;
    scorer_model_t *m = s_load(s_model("reg:squarederror", "0", 0, 1, t, "0"), &err);
    CHECK(m != NULL);
    if (m) CHECK(s_one(m, 1000.0f, 0) == 120.0f); /* always right: the last leaf */
    scorer_model_destroy(&m);
    free(t);
    t = s_chain(70);
    s_refused(s_model("reg:squarederror", "0", 0, 1, t, "0"), 400, "deeper");
    free(t);
}

/* 37 trees (two full lockstep groups and a tail), of depths 0 to 2,
 * numerical and categorical, summed in order. */
TEST(many_trees_in_lockstep)
{
    const char *leaf =
        "{\"left_children\":[-1],\"right_children\":[-1],"
        "\"split_indices\":[0],\"split_conditions\":[0.25],"
        "\"default_left\":[0]}";
    const char *deep =
        "{\"left_children\":[1,3,-1,-1,-1],\"right_children\":[2,4,-1,-1,-1],"
        "\"split_indices\":[0,1,0,0,0],\"split_conditions\":[5,0.5,4,1,2],"
        "\"default_left\":[1,0,0,0,0]}";
    const char *empty =
        "{\"left_children\":[1,-1,-1],\"right_children\":[2,-1,-1],"
        "\"split_indices\":[1,0,0],\"split_conditions\":[0,-3,3],"
        "\"default_left\":[0,0,0],\"split_type\":[1,0,0],\"categories\":[],"
        "\"categories_nodes\":[0],\"categories_segments\":[0],"
        "\"categories_sizes\":[0]}";
    static char trees[60000], info[400];
    size_t tn = 0, in = 0;
    const char *kinds[4] = {STUMP, CATTREE, leaf, deep};
    for (int t = 0; t < 37; t++) {
        tn += (size_t)snprintf(trees + tn, sizeof trees - tn, "%s%s", t ? "," : "",
                               t == 36 ? empty : kinds[t % 4]);
        in += (size_t)snprintf(info + in, sizeof info - in, "%s0", t ? "," : "");
    }
    cairn_err_t err;
    scorer_model_t *m =
        s_load(s_model("reg:squarederror", "0", 0, 2, trees, info), &err);
    if (!CHECK(m)) {
        fprintf(stderr, "     %s\n", err.msg);
        return;
    }
    CHECK_EQ(scorer_model_trees(m), 37);
    float rows[3][2] = {{1.0f, 3.0f}, {0.0f, 0.0f}, {NAN, NAN}};
    for (int r = 0; r < 3; r++) {
        float a = rows[r][0], b = rows[r][1], want = 0.0f;
        for (int t = 0; t < 37; t++) {
            float v;
            if (t == 36)
                v = isnan(b) ? 3.0f : -3.0f; /* an empty set: all left */
            else if (t % 4 == 0)
                v = isnan(a) || a < 0.5f ? -1.0f : 2.0f;
            else if (t % 4 == 1)
                v = isnan(b) || b == 1.0f || b == 3.0f ? 10.0f : -10.0f;
            else if (t % 4 == 2)
                v = 0.25f;
            else
                v = !isnan(a) && !(a < 5)     ? 4.0f
                    : (!isnan(b) && b < 0.5f) ? 1.0f
                                              : 2.0f;
            want += v;
        }
        float got = s_one(m, a, b);
        CHECK(got == want);
        if (got != want)
            fprintf(stderr, "     row %d: got %g, want %g\n", r, got, want);
    }
    scorer_model_destroy(&m);
}

/* Four threads predict on one model at once, each getting what one
 * thread alone gets: the model is read-only after load. */
typedef struct {
    const scorer_model_t *m;
    float want[64];
    int bad;
} s_par_t;

static void *s_par(void *arg)
{
    s_par_t *p = arg;
    cairn_err_t err;
    for (int it = 0; it < 2000; it++)
        for (int i = 0; i < 64; i++) {
            float row[2] = {(float)(i % 8) / 4.0f, (float)(i / 8)}, out[3];
            if (scorer_model_predict(p->m, row, 1, 2, out, &err) != 0 ||
                out[0] != p->want[i])
                p->bad++;
        }
    return NULL;
}

TEST(concurrent_predictions)
{
    char trees[4096];
    snprintf(trees, sizeof trees, "%s,%s,%s", STUMP, CATTREE, STUMP);
    cairn_err_t err;
    scorer_model_t *m =
        s_load(s_model("binary:logistic", "0.5", 0, 2, trees, "0,0,0"), &err);
    if (!CHECK(m)) return;
    s_par_t par[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        par[k].m = m;
        par[k].bad = 0;
        for (int i = 0; i < 64; i++)
            par[k].want[i] = s_one(m, (float)(i % 8) / 4.0f, (float)(i / 8));
        CHECK(pthread_create(&th[k], NULL, s_par, &par[k]) == 0);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        CHECK_EQ(par[k].bad, 0);
    }
    scorer_model_destroy(&m);
}

TEST(feature_names_and_types)
{
    char text[8192];
    snprintf(text, sizeof text, "%s",
             s_model("reg:squarederror", "0", 0, 2, CATTREE, "0"));
    char *p = strstr(text, "\"feature_names\":[],\"feature_types\":[]");
    if (!CHECK(p)) return;
    const char *with =
        "\"feature_names\":[\"age\",\"city\"],\"feature_types\":[\"q\",\"c\"]";
    char rest[8192];
    snprintf(rest, sizeof rest, "%s",
             p + strlen("\"feature_names\":[],\"feature_types\":[]"));
    snprintf(p, sizeof text - (size_t)(p - text), "%s%s", with, rest);
    cairn_err_t err;
    scorer_model_t *m = s_load(text, &err);
    if (!CHECK(m)) return;
    CHECK_STR(scorer_model_feature_name(m, 0), "age");
    CHECK_STR(scorer_model_feature_name(m, 1), "city");
    CHECK_STR(scorer_model_feature_type(m, 1), "c");
    CHECK(scorer_model_feature_name(m, 2) == NULL);
    scorer_model_destroy(&m);
}

/* Folders: an MLmodel naming its file, a bare model.json, and MLmodel
 * data that leaves the folder or names nothing, refused. */
TEST(folders)
{
    char dir[] = "/tmp/cairn-scorer-unit-XXXXXX", path[256];
    if (!CHECK(mkdtemp(dir))) return;
    const char *model = s_model("reg:squarederror", "0", 0, 1, STUMP, "0");
    snprintf(path, sizeof path, "%s/model.json", dir);
    FILE *f = fopen(path, "w");
    fputs(model, f);
    fclose(f);
    scorer_model_t *m = NULL;
    cairn_err_t err;
    CHECK(scorer_model_load(dir, &m, &err) == 0); /* the bare folder */
    scorer_model_destroy(&m);
    snprintf(path, sizeof path, "%s/MLmodel", dir);
    const char *cases[][2] = {
        {"flavors:\n  xgboost:\n    data: model.json\n", NULL},
        {"flavors:\n  xgboost:\n    data: ../model.json\n", "names no model file"},
        {"flavors:\n  python_function: {}\n", "has no xgboost flavor"},
        {"flavors:\n  xgboost:\n    data: absent.ubj\n", "cannot be opened"},
        {"flavors: [\n", "line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f = fopen(path, "w");
        fputs(cases[i][0], f);
        fclose(f);
        memset(&err, 0, sizeof err);
        int rc = scorer_model_load(dir, &m, &err);
        if (!cases[i][1]) {
            CHECK(rc == 0 && m);
        } else {
            CHECK(rc == -1 && !m);
            CHECK_HAS(err.msg, cases[i][1]);
        }
        scorer_model_destroy(&m);
    }
    unlink(path);
    snprintf(path, sizeof path, "%s/model.json", dir);
    unlink(path);
    CHECK(scorer_model_load(dir, &m, &err) == -1);
    CHECK_HAS(err.msg, "holds no MLmodel");
    rmdir(dir);
    CHECK(scorer_model_load(dir, &m, &err) == -1);
    CHECK_EQ(err.st, 404);
}

int main(void)
{
    RUN(stump);
    RUN(logistic_base_and_transform);
    RUN(categorical_split);
    RUN(multi_class);
    RUN(dart_weights);
    RUN(ubjson);
    RUN(malformed_refused);
    RUN(depth_bounded);
    RUN(many_trees_in_lockstep);
    RUN(concurrent_predictions);
    RUN(feature_names_and_types);
    RUN(folders);
    return unit_report();
}
