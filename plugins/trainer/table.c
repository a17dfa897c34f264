/* A CSV file as a typed table for training (table.h).
 *
 * Cells are stored by column while reading (a float per numeric cell, a
 * category code per categorical one), because the number of rows and of
 * one-hot features is known only at the end; trainer_table_gather lays
 * out the row-major matrix XGBoost takes, for any subset of rows. */
#define _GNU_SOURCE
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv.h"

#define MISSING_CODE UINT32_MAX
#define READ_CHUNK (1u << 20)

/* ---- a set of strings, each with its code (order of first sight) --------- */

typedef struct strset {
    char **str;     /* by code */
    uint32_t *slot; /* hash slots: code + 1, 0 empty */
    size_t n, cap;  /* strings; slots (a power of two) */
} strset_t;

static uint64_t s_hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

static void s_set_free(strset_t *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->str[i]);
    free(s->str);
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* Grow to twice the slots, rehashing. */
static int s_set_grow(strset_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    uint32_t *slot = calloc(cap, sizeof *slot);
    char **str = realloc(s->str, (cap / 2) * sizeof *str);
    if (str) s->str = str;
    if (!slot || !str) {
        free(slot);
        return -1;
    }
    for (size_t i = 0; i < s->n; i++) {
        size_t h = s_hash(s->str[i], strlen(s->str[i])) & (cap - 1);
        while (slot[h]) h = (h + 1) & (cap - 1);
        slot[h] = (uint32_t)i + 1;
    }
    free(s->slot);
    s->slot = slot;
    s->cap = cap;
    return 0;
}

/* The code of p[0, n), added when new; -1 on out of memory. */
static int64_t s_set_code(strset_t *s, const char *p, size_t n)
{
    if ((s->n + 1) * 2 > s->cap && s_set_grow(s) != 0) return -1;
    size_t h = s_hash(p, n) & (s->cap - 1);
    for (; s->slot[h]; h = (h + 1) & (s->cap - 1)) {
        const char *q = s->str[s->slot[h] - 1];
        if (strncmp(q, p, n) == 0 && q[n] == '\0') return s->slot[h] - 1;
    }
    char *copy = strndup(p, n);
    if (!copy) return -1;
    s->str[s->n] = copy;
    s->slot[h] = (uint32_t)s->n + 1;
    return (int64_t)s->n++;
}

/* The code of p[0, n) when present; -1 when not. */
static int64_t s_set_find(const strset_t *s, const char *p, size_t n)
{
    if (!s->cap) return -1;
    for (size_t h = s_hash(p, n) & (s->cap - 1); s->slot[h];
         h = (h + 1) & (s->cap - 1)) {
        const char *q = s->str[s->slot[h] - 1];
        if (strncmp(q, p, n) == 0 && q[n] == '\0') return s->slot[h] - 1;
    }
    return -1;
}

/* ---- the table ------------------------------------------------------------------ */

typedef enum { COL_NUMBER, COL_CATEGORY } col_kind_t;

typedef struct col {
    char *name;
    col_kind_t kind;
    bool saw_int, saw_float, saw_bool, missing;
    bool numbers_stored; /* a non-missing number is stored */
    float *num;          /* COL_NUMBER: a value per row */
    uint32_t *code;      /* COL_CATEGORY: a code per row */
    strset_t cats;
    uint32_t *order; /* code -> rank in byte order (after load) */
    size_t feature;  /* its first feature */
} col_t;

struct trainer_table {
    trainer_table_opts_t opts;
    size_t ncols; /* of the CSV, the target included */
    col_t *cols;
    size_t target;
    size_t rows, cap;
    float *label;
    strset_t classes;
    int passes;
    bool late_category; /* pass 1 turned a column categorical after numbers */
    size_t nfeat;
    char **feat_name; /* owned */
    char *feat_type;
    char **class_sorted; /* borrowed from classes, by class index */
};

/* The loading state: the table being filled, and where the reader is. */
typedef struct loader {
    trainer_table_t *t;
    const char *what; /* the file's name, for errors */
    bool header_done;
} loader_t;

bool trainer_parse_number(const char *p, size_t n, double *out)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    /* The fast path: [+-]digits[.digits][e[+-]digits], at most 19
     * significant digits; exact (Clinger) when the mantissa fits 53 bits
     * and the power of ten is at most 22: one correctly rounded operation,
     * as strtod's result. */
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-')) neg = p[i++] == '-';
    uint64_t m = 0;
    int digits = 0, frac = 0;
    size_t start = i;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
        if (digits < 19) {
            if (m || p[i] != '0') digits++;
            m = m * 10 + (uint64_t)(p[i] - '0');
        } else {
            goto slow;
        }
    bool any = i > start;
    if (i < n && p[i] == '.') {
        size_t fs = ++i;
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            if (digits >= 19) goto slow;
            if (m || p[i] != '0') digits++;
            m = m * 10 + (uint64_t)(p[i] - '0');
            frac++;
        }
        any = any || i > fs;
    }
    if (!any) goto slow;
    int e = 0;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (p[i] == '+' || p[i] == '-')) eneg = p[i++] == '-';
        size_t es = i;
        for (; i < n && p[i] >= '0' && p[i] <= '9' && e < 10000; i++)
            e = e * 10 + (p[i] - '0');
        if (i == es) goto slow;
        if (eneg) e = -e;
    }
    if (i != n) goto slow;
    e -= frac;
    if (m > (1ull << 53) || e < -22 || e > 22) goto slow;
    double d = (double)m;
    d = e < 0 ? d / pow10[-e] : d * pow10[e];
    *out = neg ? -d : d;
    return true;
slow:;
    cairn_csv_type_t ty;
    if (!cairn_csv_cell_type(p, n, &ty) ||
        (ty != CAIRN_CSV_INT && ty != CAIRN_CSV_FLOAT))
        return false;
    *out = strtod(p, NULL);
    return true;
}

static int s_oom(cairn_err_t *err)
{
    return cairn_err_oom(err, "for a training table");
}

/* Room for one more row in every column. */
static int s_grow_rows(trainer_table_t *t, cairn_err_t *err)
{
    if (t->rows < t->cap) return 0;
    if (t->rows >= TRAINER_ROWS_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "the data has more than %u rows", TRAINER_ROWS_MAX);
    size_t cap = t->cap ? t->cap * 2 : 4096;
    for (size_t i = 0; i < t->ncols; i++) {
        col_t *c = &t->cols[i];
        if (i == t->target) continue;
        /* Only the array of the column's kind (s_to_category swaps them). */
        if (c->kind == COL_NUMBER) {
            float *num = realloc(c->num, cap * sizeof *num);
            if (!num) return s_oom(err);
            c->num = num;
        } else {
            uint32_t *code = realloc(c->code, cap * sizeof *code);
            if (!code) return s_oom(err);
            c->code = code;
        }
    }
    float *label = realloc(t->label, cap * sizeof *label);
    if (!label) return s_oom(err);
    t->label = label;
    t->cap = cap;
    return 0;
}

static int s_header(loader_t *l, const cairn_csv_field_t *f, size_t n, cairn_err_t *err)
{
    trainer_table_t *t = l->t;
    if (t->cols) return 0; /* a second pass: already known */
    t->cols = calloc(n, sizeof *t->cols);
    if (!t->cols) return s_oom(err);
    t->ncols = n;
    t->target = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (f[i].len == 0 || f[i].len > CAIRN_CSV_NAME_MAX)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "%s: line 1 must be a header naming every column "
                                 "(1 to %d bytes); column %zu is %zu bytes",
                                 l->what, CAIRN_CSV_NAME_MAX, i + 1, f[i].len);
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->cols[j].name, f[i].ptr) == 0)
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                     "%s: column \"%s\" is named twice in the header",
                                     l->what, f[i].ptr);
        t->cols[i].name = strndup(f[i].ptr, f[i].len);
        if (!t->cols[i].name) return s_oom(err);
        if (strcmp(f[i].ptr, t->opts.target) == 0) t->target = i;
    }
    if (t->target != SIZE_MAX) return 0;
    char some[200] = "";
    for (size_t i = 0; i < n && i < 6; i++) {
        size_t len = strlen(some);
        snprintf(some + len, sizeof some - len, "%s\"%.40s\"", i ? ", " : "",
                 t->cols[i].name);
    }
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "target: column \"%s\" is not in %s (its %zu columns: %s%s)",
                         t->opts.target, l->what, n, some, n > 6 ? ", ..." : "");
}

static int s_label(loader_t *l, uint64_t line, const cairn_csv_field_t *f,
                   cairn_err_t *err)
{
    trainer_table_t *t = l->t;
    if (f->len == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s: line %llu: the target column \"%s\" is empty (every "
                             "row needs a label)",
                             l->what, (unsigned long long)line, t->opts.target);
    if (t->opts.task == TRAINER_REGRESSION) {
        double d;
        /* Finite as a float32 too: 1e39 is a double but no float. */
        if (!trainer_parse_number(f->ptr, f->len, &d) || !isfinite((float)d))
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "%s: line %llu: the target \"%.40s\" is not a finite float32 "
                "number (task: regression)",
                l->what, (unsigned long long)line, f->ptr);
        t->label[t->rows] = (float)d;
        return 0;
    }
    int64_t k = s_set_code(&t->classes, f->ptr, f->len);
    if (k < 0) return s_oom(err);
    if (k >= TRAINER_CLASSES_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "%s: the target column \"%s\" has more than %d classes "
                             "(is it a regression target?)",
                             l->what, t->opts.target, TRAINER_CLASSES_MAX);
    t->label[t->rows] = (float)k; /* remapped to the sorted order at the end */
    return 0;
}

/* A column turns categorical: its cells so far become missing codes, and a
 * second pass reads them again when any was a number. */
static int s_to_category(trainer_table_t *t, col_t *c, cairn_err_t *err)
{
    uint32_t *code = malloc(t->cap * sizeof *code);
    if (!code) return s_oom(err);
    for (size_t r = 0; r < t->rows; r++) code[r] = MISSING_CODE;
    free(c->num);
    c->num = NULL;
    c->code = code;
    c->kind = COL_CATEGORY;
    if (c->numbers_stored) t->late_category = true;
    return 0;
}

static int s_category(loader_t *l, col_t *c, const cairn_csv_field_t *f,
                      cairn_err_t *err)
{
    trainer_table_t *t = l->t;
    int64_t k = s_set_code(&c->cats, f->ptr, f->len);
    if (k < 0) return s_oom(err);
    size_t max = t->opts.max_categories;
    if ((size_t)k >= max)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "%s: column \"%s\" has more than %zu categories (an id or "
                             "free text? leave it out of the data)",
                             l->what, c->name, max);
    c->code[t->rows] = (uint32_t)k;
    return 0;
}

static int s_cell(loader_t *l, uint64_t line, col_t *c, const cairn_csv_field_t *f,
                  cairn_err_t *err)
{
    trainer_table_t *t = l->t;
    if (f->len == 0) {
        c->missing = true;
        if (c->kind == COL_NUMBER)
            c->num[t->rows] = NAN;
        else
            c->code[t->rows] = MISSING_CODE;
        return 0;
    }
    if (c->kind == COL_CATEGORY) return s_category(l, c, f, err);
    double d;
    if (trainer_parse_number(f->ptr, f->len, &d)) {
        if (isinf((float)d)) /* XGBoost refuses an infinity */
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "%s: line %llu: column \"%s\" holds an infinity or a "
                                 "number beyond float32's range (%.20s)",
                                 l->what, (unsigned long long)line, c->name, f->ptr);
        c->num[t->rows] = (float)d;
        c->numbers_stored = true;
        if (memchr(f->ptr, '.', f->len) || memchr(f->ptr, 'e', f->len) ||
            memchr(f->ptr, 'E', f->len) || isnan(d))
            c->saw_float = true;
        else
            c->saw_int = true;
        return 0;
    }
    cairn_csv_type_t ty;
    if (cairn_csv_cell_type(f->ptr, f->len, &ty) && ty == CAIRN_CSV_BOOL) {
        c->num[t->rows] = (f->ptr[strspn(f->ptr, " ")] | 0x20) == 't' ? 1.0f : 0.0f;
        c->numbers_stored = c->saw_bool = true;
        return 0;
    }
    if (s_to_category(t, c, err) != 0) return -1;
    return s_category(l, c, f, err);
}

static int s_row(void *arg, uint64_t line, const cairn_csv_field_t *f, size_t n,
                 cairn_err_t *err)
{
    loader_t *l = arg;
    trainer_table_t *t = l->t;
    if (!l->header_done) {
        l->header_done = true;
        return s_header(l, f, n, err);
    }
    if (s_grow_rows(t, err) != 0) return -1;
    for (size_t i = 0; i < n; i++) {
        int rc = i == t->target ? s_label(l, line, &f[i], err)
                                : s_cell(l, line, &t->cols[i], &f[i], err);
        if (rc != 0) return -1;
    }
    t->rows++;
    return 0;
}

/* ---- after the last pass: orders and features ---------------------------------- */

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ranks of a set's strings in byte order: rank[code]; sorted[rank]. */
static int s_rank(const strset_t *s, uint32_t **rank_out, char ***sorted_out)
{
    char **sorted = malloc((s->n ? s->n : 1) * sizeof *sorted);
    uint32_t *rank = malloc((s->n ? s->n : 1) * sizeof *rank);
    if (!sorted || !rank) {
        free(sorted);
        free(rank);
        return -1;
    }
    memcpy(sorted, s->str, s->n * sizeof *sorted);
    qsort(sorted, s->n, sizeof *sorted, s_cmp_str);
    for (size_t r = 0; r < s->n; r++) {
        int64_t code = s_set_find(s, sorted[r], strlen(sorted[r]));
        rank[code] = (uint32_t)r;
    }
    *rank_out = rank;
    *sorted_out = sorted;
    return 0;
}

typedef struct class_key {
    const char *s;
    double v;
} class_key_t;

static int s_cmp_class(const void *a, const void *b)
{
    const class_key_t *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return strcmp(x->s, y->s);
}

/* Classes in order: numbers by value when every label is a number (or
 * every one a bool: false, true), else byte order; labels remapped. */
static int s_classes(const loader_t *l, trainer_table_t *t, cairn_err_t *err)
{
    size_t k = t->classes.n;
    if (k < 2)
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "%s: the target column \"%s\" has a single class (\"%.40s\"); "
            "classification needs at least two",
            l->what, t->opts.target, t->classes.str[0]);
    class_key_t *keys = calloc(k, sizeof *keys);
    uint32_t *rank = calloc(k, sizeof *rank);
    t->class_sorted = calloc(k, sizeof *t->class_sorted);
    if (!keys || !rank || !t->class_sorted) {
        free(keys);
        free(rank);
        return s_oom(err);
    }
    bool numeric = true, boolean = true;
    for (size_t i = 0; i < k; i++) {
        keys[i].s = t->classes.str[i];
        cairn_csv_type_t ty;
        bool typed = cairn_csv_cell_type(keys[i].s, strlen(keys[i].s), &ty);
        if (!typed || (ty != CAIRN_CSV_INT && ty != CAIRN_CSV_FLOAT)) numeric = false;
        if (!typed || ty != CAIRN_CSV_BOOL) boolean = false;
        if (numeric) keys[i].v = strtod(keys[i].s, NULL);
    }
    for (size_t i = 0; i < k; i++) {
        if (boolean)
            keys[i].v = (keys[i].s[strspn(keys[i].s, " ")] | 0x20) == 't';
        else if (!numeric)
            keys[i].v = 0;
    }
    qsort(keys, k, sizeof *keys, s_cmp_class);
    for (size_t r = 0; r < k; r++) {
        int64_t code = s_set_find(&t->classes, keys[r].s, strlen(keys[r].s));
        rank[code] = (uint32_t)r;
        t->class_sorted[r] = t->classes.str[code];
    }
    for (size_t r = 0; r < t->rows; r++) t->label[r] = (float)rank[(size_t)t->label[r]];
    free(keys);
    free(rank);
    return 0;
}

static int s_feature(trainer_table_t *t, const char *name, const char *value, char type,
                     cairn_err_t *err)
{
    if (t->nfeat >= TRAINER_FEATURES_MAX)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "the data makes more than %d features (one-hot columns "
                             "included)",
                             TRAINER_FEATURES_MAX);
    char *s = NULL;
    if (value ? asprintf(&s, "%s=%s", name, value) < 0 : !(s = strdup(name)))
        return s_oom(err);
    t->feat_name[t->nfeat] = s;
    t->feat_type[t->nfeat++] = type;
    return 0;
}

static int s_features(trainer_table_t *t, cairn_err_t *err)
{
    size_t max = 0;
    for (size_t i = 0; i < t->ncols; i++) {
        col_t *c = &t->cols[i];
        bool onehot = c->kind == COL_CATEGORY && !t->opts.categorical;
        if (i != t->target) max += onehot ? (c->cats.n ? c->cats.n : 1) : 1;
    }
    t->feat_name = calloc(max ? max : 1, sizeof *t->feat_name);
    t->feat_type = calloc(max ? max : 1, 1);
    if (!t->feat_name || !t->feat_type) return s_oom(err);
    for (size_t i = 0; i < t->ncols; i++) {
        col_t *c = &t->cols[i];
        if (i == t->target) continue;
        c->feature = t->nfeat;
        if (c->kind == COL_NUMBER) {
            if (s_feature(t, c->name, NULL, 'q', err) != 0) return -1;
            continue;
        }
        char **sorted;
        if (s_rank(&c->cats, &c->order, &sorted) != 0) return s_oom(err);
        /* The set's strings now in feature order, codes remapped to it (its
         * hash slots are stale from here on: only str[] is read). */
        memcpy(c->cats.str, sorted, c->cats.n * sizeof *sorted);
        free(sorted);
        for (size_t r = 0; r < t->rows; r++)
            if (c->code[r] != MISSING_CODE) c->code[r] = c->order[c->code[r]];
        if (t->opts.categorical) {
            if (s_feature(t, c->name, NULL, 'c', err) != 0) return -1;
            continue;
        }
        for (size_t k = 0; k < c->cats.n; k++)
            if (s_feature(t, c->name, c->cats.str[k], 'q', err) != 0) return -1;
    }
    return 0;
}

/* ---- loading --------------------------------------------------------------------- */

typedef int(feed_fn)(void *src, cairn_csv_t *r, cairn_err_t *err);

/* Reset what a pass stores (the columns' kinds stay, and the header). */
static void s_pass_reset(trainer_table_t *t)
{
    t->rows = 0;
    s_set_free(&t->classes);
    for (size_t i = 0; i < t->ncols; i++) {
        s_set_free(&t->cols[i].cats);
        t->cols[i].numbers_stored = t->cols[i].missing = false;
        t->cols[i].saw_int = t->cols[i].saw_float = t->cols[i].saw_bool = false;
    }
    t->late_category = false;
}

static int s_pass(trainer_table_t *t, const char *what, feed_fn *feed, void *src,
                  cairn_err_t *err)
{
    loader_t l = {.t = t, .what = what};
    cairn_csv_t *r = cairn_csv_new(',', s_row, &l, err);
    if (!r) return -1;
    t->passes++;
    int rc = feed(src, r, err);
    if (rc == 0) rc = cairn_csv_finish(r, err);
    cairn_csv_destroy(&r);
    if (rc != 0) return -1;
    if (!l.header_done)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s: no rows (the file is empty)", what);
    return 0;
}

static trainer_table_t *s_load(const char *what, feed_fn *feed, void *src,
                               const trainer_table_opts_t *o, cairn_err_t *err)
{
    trainer_table_t *t = calloc(1, sizeof *t);
    if (!t) {
        s_oom(err);
        return NULL;
    }
    t->opts = *o;
    if (!t->opts.max_categories) t->opts.max_categories = TRAINER_CATEGORIES_MAX;
    int rc = s_pass(t, what, feed, src, err);
    if (rc == 0 && t->late_category) {
        s_pass_reset(t);
        rc = s_pass(t, what, feed, src, err);
    }
    if (rc == 0 && t->rows == 0)
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "%s: no rows (only a header)", what);
    if (rc == 0 && t->opts.task == TRAINER_CLASSIFICATION)
        rc = s_classes(&(loader_t){.t = t, .what = what}, t, err);
    if (rc == 0) rc = s_features(t, err);
    if (rc != 0) trainer_table_destroy(&t);
    return t;
}

typedef struct mem_src {
    const char *p;
    size_t n;
} mem_src_t;

static int s_feed_mem(void *src, cairn_csv_t *r, cairn_err_t *err)
{
    mem_src_t *m = src;
    return cairn_csv_feed(r, m->p, m->n, err);
}

trainer_table_t *trainer_table_load_mem(const void *buf, size_t len,
                                        const trainer_table_opts_t *o, cairn_err_t *err)
{
    mem_src_t m = {buf, len};
    return s_load("the data", s_feed_mem, &m, o, err);
}

typedef struct file_src {
    int fd;
    const char *path;
    char *buf;
} file_src_t;

static int s_feed_file(void *src, cairn_csv_t *r, cairn_err_t *err)
{
    file_src_t *f = src;
    if (lseek(f->fd, 0, SEEK_SET) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "data: %s cannot be read twice (%s)", f->path,
                             strerror(errno));
    for (;;) {
        ssize_t got = read(f->fd, f->buf, READ_CHUNK);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                                 "data: reading %s: %s", f->path, strerror(errno));
        if (got == 0) return 0;
        if (cairn_csv_feed(r, f->buf, (size_t)got, err) != 0) return -1;
    }
}

trainer_table_t *trainer_table_load(const char *path, const trainer_table_opts_t *o,
                                    cairn_err_t *err)
{
    file_src_t f = {.path = path, .fd = open(path, O_RDONLY | O_CLOEXEC)};
    if (f.fd < 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                      "data: %s cannot be opened: %s", path, strerror(errno));
        return NULL;
    }
    f.buf = malloc(READ_CHUNK);
    trainer_table_t *t = NULL;
    if (!f.buf)
        s_oom(err);
    else
        t = s_load(path, s_feed_file, &f, o, err);
    free(f.buf);
    close(f.fd);
    return t;
}

void trainer_table_destroy(trainer_table_t **self_p)
{
    if (!self_p || !*self_p) return;
    trainer_table_t *t = *self_p;
    for (size_t i = 0; i < t->ncols; i++) {
        col_t *c = &t->cols[i];
        free(c->name);
        free(c->num);
        free(c->code);
        free(c->order);
        s_set_free(&c->cats);
    }
    free(t->cols);
    free(t->label);
    s_set_free(&t->classes);
    for (size_t j = 0; j < t->nfeat; j++) free(t->feat_name[j]);
    free(t->feat_name);
    free(t->feat_type);
    free(t->class_sorted);
    free(t);
    *self_p = NULL;
}

/* ---- getters ------------------------------------------------------------------- */

size_t trainer_table_rows(const trainer_table_t *t)
{
    return t->rows;
}

int trainer_table_passes(const trainer_table_t *t)
{
    return t->passes;
}

size_t trainer_table_features(const trainer_table_t *t)
{
    return t->nfeat;
}

const char *trainer_table_feature_name(const trainer_table_t *t, size_t j)
{
    return t->feat_name[j];
}

char trainer_table_feature_type(const trainer_table_t *t, size_t j)
{
    return t->feat_type[j];
}

const char *const *trainer_table_feature_names(const trainer_table_t *t)
{
    return (const char *const *)t->feat_name;
}

/* Source column i (the target left out) as an index into cols. */
static const col_t *s_col(const trainer_table_t *t, size_t i)
{
    return &t->cols[i < t->target ? i : i + 1];
}

size_t trainer_table_columns(const trainer_table_t *t)
{
    return t->ncols - 1;
}

const char *trainer_table_column_name(const trainer_table_t *t, size_t i)
{
    return s_col(t, i)->name;
}

const char *trainer_table_column_type(const trainer_table_t *t, size_t i)
{
    const col_t *c = s_col(t, i);
    if (c->kind == COL_CATEGORY) return "string";
    if (c->saw_float) return "float";
    if (c->saw_int) return "int";
    if (c->saw_bool) return "bool";
    return "float"; /* only empty cells */
}

bool trainer_table_column_missing(const trainer_table_t *t, size_t i)
{
    return s_col(t, i)->missing;
}

size_t trainer_table_column_categories(const trainer_table_t *t, size_t i)
{
    const col_t *c = s_col(t, i);
    return c->kind == COL_CATEGORY ? c->cats.n : 0;
}

const char *trainer_table_category(const trainer_table_t *t, size_t i, size_t k)
{
    return s_col(t, i)->cats.str[k];
}

size_t trainer_table_classes(const trainer_table_t *t)
{
    return t->opts.task == TRAINER_CLASSIFICATION ? t->classes.n : 0;
}

const char *trainer_table_class(const trainer_table_t *t, size_t k)
{
    return t->class_sorted[k];
}

const float *trainer_table_labels(const trainer_table_t *t)
{
    return t->label;
}

void trainer_table_gather(const trainer_table_t *t, const uint32_t *rows, size_t n,
                          float *x, float *y)
{
    size_t nf = t->nfeat;
    for (size_t i = 0; i < t->ncols; i++) {
        const col_t *c = &t->cols[i];
        if (i == t->target) continue;
        float *out = x + c->feature;
        if (c->kind == COL_NUMBER) {
            for (size_t r = 0; r < n; r++) out[r * nf] = c->num[rows[r]];
        } else if (t->opts.categorical) {
            for (size_t r = 0; r < n; r++) {
                uint32_t k = c->code[rows[r]];
                out[r * nf] = k == MISSING_CODE ? NAN : (float)k;
            }
        } else {
            size_t nk = c->cats.n;
            for (size_t r = 0; r < n; r++) {
                uint32_t k = c->code[rows[r]];
                float fill = k == MISSING_CODE ? NAN : 0.0f;
                for (size_t j = 0; j < nk; j++) out[r * nf + j] = fill;
                if (k != MISSING_CODE) out[r * nf + k] = 1.0f;
            }
        }
    }
    if (y)
        for (size_t r = 0; r < n; r++) y[r] = t->label[rows[r]];
}
