/* sdk/csv.c — the streaming CSV reader and the table sniffer (csv.h).
 *
 * The reader is a byte-at-a-time state machine whose only memory is the
 * record being read (its bytes, each field followed by a NUL, and the end
 * offset of each field), so a chunk may be cut anywhere; runs of plain
 * bytes inside a field are copied in one go. The sniffer holds the first
 * lines, parses them with a trial reader per candidate delimiter, picks
 * one, then streams everything through one reader, keeping a type per
 * column. */
#define _GNU_SOURCE
#include "csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the reader ---------------------------------------------------------- */

enum {
    S_START, /* at the start of a field */
    S_UNQ,   /* in an unquoted field */
    S_Q,     /* in a quoted field */
    S_QQ,    /* a quote in a quoted field: the end, or the first of "" */
    S_CR,    /* a record ended at CR: an LF now belongs to it */
};

static const unsigned char s_bom[3] = {0xef, 0xbb, 0xbf};

struct cairn_csv {
    cairn_csv_row_fn *fn;
    void *arg;
    char delim;
    int state;
    unsigned bom; /* bytes of a BOM matched at the start */
    bool bom_done, finished, failed;
    bool ragged_ok; /* the sniffer's trial readers: count, do not refuse */
    bool field_quoted;
    char *buf; /* the record: each field's bytes and a NUL */
    size_t len, cap, field_start;
    size_t *ends; /* offset of each completed field's NUL */
    bool *quoted;
    size_t nf, ends_cap;
    cairn_csv_field_t *out;
    size_t out_cap;
    uint64_t line, rec_line, field_line, first_line;
    uint64_t records;
    size_t width; /* fields of the first record */
    cairn_err_t fail;
};

static int s_fail(cairn_csv_t *c, cairn_err_t *err)
{
    if (!c->failed) {
        c->failed = true;
        if (err) c->fail = *err;
    } else if (err) {
        *err = c->fail;
    }
    return -1;
}

static int s_err(cairn_csv_t *c, cairn_err_t *err, int st, const char *code,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int s_err(cairn_csv_t *c, cairn_err_t *err, int st, const char *code,
                 const char *fmt, ...)
{
    cairn_err_t local = {0};
    cairn_err_t *e = err ? err : &local;
    va_list ap;
    va_start(ap, fmt);
    cairn_err_vset(e, st, code, fmt, ap);
    va_end(ap);
    return s_fail(c, e);
}

cairn_csv_t *cairn_csv_new(char delim, cairn_csv_row_fn *fn, void *arg,
                           cairn_err_t *err)
{
    if (delim == '"' || delim == '\r' || delim == '\n' || delim == '\0') {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "a CSV delimiter may not be a quote, a line end or NUL");
        return NULL;
    }
    cairn_csv_t *c = calloc(1, sizeof *c);
    if (!c) {
        cairn_err_oom(err, "for a CSV reader");
        return NULL;
    }
    c->fn = fn;
    c->arg = arg;
    c->delim = delim;
    c->line = c->rec_line = 1;
    return c;
}

void cairn_csv_destroy(cairn_csv_t **self_p)
{
    if (!self_p || !*self_p) return;
    cairn_csv_t *c = *self_p;
    free(c->buf);
    free(c->ends);
    free(c->quoted);
    free(c->out);
    free(c);
    *self_p = NULL;
}

uint64_t cairn_csv_records(const cairn_csv_t *c)
{
    return c->records;
}

size_t cairn_csv_fields(const cairn_csv_t *c)
{
    return c->width;
}

/* Room for n more bytes of the record. */
static int s_room(cairn_csv_t *c, size_t n, cairn_err_t *err)
{
    if (c->len - c->field_start + n > CAIRN_CSV_FIELD_MAX)
        return s_err(c, err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                     "line %llu: field %zu is longer than %u bytes (1 MiB)",
                     (unsigned long long)c->rec_line, c->nf + 1, CAIRN_CSV_FIELD_MAX);
    if (c->len + n + 1 > CAIRN_CSV_ROW_MAX)
        return s_err(c, err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                     "line %llu: the row is longer than %u bytes (64 MiB)",
                     (unsigned long long)c->rec_line, CAIRN_CSV_ROW_MAX);
    if (c->len + n + 1 <= c->cap) return 0;
    size_t cap = c->cap ? c->cap : 256;
    while (cap < c->len + n + 1) cap *= 2;
    char *p = realloc(c->buf, cap);
    if (!p)
        return s_err(c, err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                     "out of memory for a CSV row of %zu bytes", cap);
    c->buf = p;
    c->cap = cap;
    return 0;
}

static int s_append(cairn_csv_t *c, const char *p, size_t n, cairn_err_t *err)
{
    if (s_room(c, n, err) != 0) return -1;
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    return 0;
}

static int s_end_field(cairn_csv_t *c, cairn_err_t *err)
{
    if (c->nf == CAIRN_CSV_COLS_MAX)
        return s_err(c, err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                     "line %llu has more than %d fields",
                     (unsigned long long)c->rec_line, CAIRN_CSV_COLS_MAX);
    if (c->nf == c->ends_cap) {
        size_t cap = c->ends_cap ? c->ends_cap * 2 : 16;
        size_t *e = realloc(c->ends, cap * sizeof *e);
        if (e) c->ends = e;
        bool *q = e ? realloc(c->quoted, cap * sizeof *q) : NULL;
        if (q) c->quoted = q;
        if (!e || !q)
            return s_err(c, err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                         "out of memory for a CSV row of %zu fields", cap);
        c->ends_cap = cap;
    }
    /* The NUL after it: s_room leaves a byte for it (the "+ 1"). */
    if (c->len + 1 > c->cap && s_room(c, 0, err) != 0) return -1;
    c->buf[c->len] = '\0';
    c->ends[c->nf] = c->len;
    c->quoted[c->nf++] = c->field_quoted;
    c->len++;
    c->field_start = c->len;
    c->field_quoted = false;
    return 0;
}

static int s_end_record(cairn_csv_t *c, cairn_err_t *err)
{
    if (!c->width) {
        c->width = c->nf;
        c->first_line = c->rec_line;
    } else if (c->nf != c->width && !c->ragged_ok) {
        return s_err(c, err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                     "line %llu has %zu fields, but line %llu (the first row) has %zu: "
                     "every row of a table has as many",
                     (unsigned long long)c->rec_line, c->nf,
                     (unsigned long long)c->first_line, c->width);
    }
    if (c->out_cap < c->nf) {
        size_t cap = c->out_cap ? c->out_cap : 16;
        while (cap < c->nf) cap *= 2;
        cairn_csv_field_t *o = realloc(c->out, cap * sizeof *o);
        if (!o)
            return s_err(c, err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                         "out of memory for a CSV row of %zu fields", cap);
        c->out = o;
        c->out_cap = cap;
    }
    size_t start = 0;
    for (size_t i = 0; i < c->nf; i++) {
        c->out[i] =
            (cairn_csv_field_t){c->buf + start, c->ends[i] - start, c->quoted[i]};
        start = c->ends[i] + 1;
    }
    c->records++;
    if (c->fn) {
        cairn_err_t local = {0};
        cairn_err_t *e = err ? err : &local;
        if (c->fn(c->arg, c->rec_line, c->out, c->nf, e) != 0) {
            if (!e->st)
                cairn_err_set(e, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                              "line %llu was refused", (unsigned long long)c->rec_line);
            return s_fail(c, e);
        }
    }
    c->len = c->field_start = c->nf = 0;
    return 0;
}

/* A line end outside quotes (ch is CR or LF). */
static int s_line_end(cairn_csv_t *c, char ch, cairn_err_t *err)
{
    if (c->nf || c->state != S_START || c->field_quoted) {
        if (s_end_field(c, err) != 0 || s_end_record(c, err) != 0) return -1;
    } /* else an empty line: skipped */
    c->line++;
    c->rec_line = c->line;
    c->state = ch == '\r' ? S_CR : S_START;
    return 0;
}

static int s_nul(cairn_csv_t *c, cairn_err_t *err)
{
    return s_err(c, err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                 "line %llu holds a NUL byte: the input is not CSV text",
                 (unsigned long long)c->line);
}

/* How many bytes at p are plain in state st (no delimiter, quote, line end
 * or NUL; in quotes only the quote, LF and NUL stop a run). */
static size_t s_plain(const cairn_csv_t *c, const char *p, size_t n, bool in_quotes)
{
    size_t i = 0;
    if (in_quotes) {
        while (i < n && p[i] != '"' && p[i] != '\n' && p[i] != '\0') i++;
    } else {
        while (i < n && p[i] != c->delim && p[i] != '"' && p[i] != '\n' &&
               p[i] != '\r' && p[i] != '\0')
            i++;
    }
    return i;
}

/* One byte (or the run of plain bytes it starts); *used gets how many. */
static int s_step(cairn_csv_t *c, const char *p, size_t n, size_t *used,
                  cairn_err_t *err)
{
    char ch = p[0];
    *used = 1;
    switch (c->state) {
        case S_CR:
            c->state = S_START;
            if (ch == '\n') return 0;
            /* fall through */
        case S_START:
            if (ch == '"') {
                c->field_quoted = true;
                c->field_line = c->line;
                c->state = S_Q;
                return 0;
            }
            if (ch == c->delim) return s_end_field(c, err);
            if (ch == '\n' || ch == '\r') return s_line_end(c, ch, err);
            c->state = S_UNQ;
            /* fall through */
        case S_UNQ:
            if (ch == c->delim) {
                c->state = S_START;
                return s_end_field(c, err);
            }
            if (ch == '\n' || ch == '\r') {
                c->state = S_UNQ;
                return s_line_end(c, ch, err);
            }
            if (ch == '"')
                return s_err(
                    c, err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                    "line %llu: a quote inside an unquoted field (a field that "
                    "holds one is quoted, the quote doubled)",
                    (unsigned long long)c->line);
            if (ch == '\0') return s_nul(c, err);
            *used = s_plain(c, p, n, false);
            return s_append(c, p, *used, err);
        case S_Q:
            if (ch == '"') {
                c->state = S_QQ;
                return 0;
            }
            if (ch == '\0') return s_nul(c, err);
            if (ch == '\n') {
                c->line++;
            } else {
                *used = s_plain(c, p, n, true);
            }
            return s_append(c, p, *used, err);
        case S_QQ:
            if (ch == '"') {
                c->state = S_Q;
                return s_append(c, p, 1, err);
            }
            if (ch == c->delim) {
                c->state = S_START;
                return s_end_field(c, err);
            }
            if (ch == '\n' || ch == '\r') return s_line_end(c, ch, err);
            return s_err(c, err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "line %llu: a quoted field (from line %llu) is followed by "
                         "something other than a delimiter or a line end",
                         (unsigned long long)c->line,
                         (unsigned long long)c->field_line);
    }
    return 0;
}

static int s_run(cairn_csv_t *c, const char *p, size_t n, cairn_err_t *err)
{
    while (n) {
        size_t used;
        if (s_step(c, p, n, &used, err) != 0) return -1;
        p += used;
        n -= used;
    }
    return 0;
}

int cairn_csv_feed(cairn_csv_t *c, const void *buf, size_t len, cairn_err_t *err)
{
    if (c->failed) return s_fail(c, err);
    if (c->finished)
        return s_err(c, err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                     "the CSV input has ended: nothing more can be fed");
    const char *p = buf;
    while (!c->bom_done && len) {
        if ((unsigned char)*p == s_bom[c->bom]) {
            p++;
            len--;
            if (++c->bom == 3) c->bom_done = true;
        } else { /* not a BOM: what matched is data */
            c->bom_done = true;
            if (s_run(c, (const char *)s_bom, c->bom, err) != 0) return -1;
        }
    }
    return s_run(c, p, len, err);
}

int cairn_csv_finish(cairn_csv_t *c, cairn_err_t *err)
{
    if (c->failed) return s_fail(c, err);
    if (c->finished) return 0;
    if (!c->bom_done) {
        c->bom_done = true;
        if (c->bom < 3 && s_run(c, (const char *)s_bom, c->bom, err) != 0) return -1;
    }
    c->finished = true;
    switch (c->state) {
        case S_Q:
            return s_err(
                c, err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "line %llu: a quoted field is not closed by the end of the input",
                (unsigned long long)c->field_line);
        case S_CR:
            return 0;
        case S_START:
            if (!c->nf && !c->field_quoted) return 0;
            /* fall through */
        default:
            if (s_end_field(c, err) != 0 || s_end_record(c, err) != 0) return -1;
            return 0;
    }
}

/* ---- cell types ---------------------------------------------------------- */

const char *cairn_csv_type_name(cairn_csv_type_t t)
{
    switch (t) {
        case CAIRN_CSV_INT:
            return "int";
        case CAIRN_CSV_FLOAT:
            return "float";
        case CAIRN_CSV_BOOL:
            return "bool";
        default:
            return "string";
    }
}

static bool s_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool s_word(const char *p, size_t n, const char *w)
{
    return n == strlen(w) && strncasecmp(p, w, n) == 0;
}

/* [+-]digits within int64: 1; [+-]digits beyond: 2 (a float); else 0. */
static int s_int(const char *p, size_t n)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-')) neg = p[i++] == '-';
    if (i == n) return 0;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    bool over = false;
    for (; i < n; i++) {
        if (!s_digit(p[i])) return 0;
        unsigned d = (unsigned)(p[i] - '0');
        if (!over && (v > (lim - d) / 10)) over = true;
        if (!over) v = v * 10 + d;
    }
    return over ? 2 : 1;
}

static bool s_float(const char *p, size_t n)
{
    size_t i = 0;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    if (s_word(p + i, n - i, "inf") || s_word(p + i, n - i, "infinity") ||
        s_word(p + i, n - i, "nan"))
        return true;
    size_t whole = 0, frac = 0;
    while (i < n && s_digit(p[i])) i++, whole++;
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && s_digit(p[i])) i++, frac++;
    }
    if (!whole && !frac) return false;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        size_t exp = 0;
        while (i < n && s_digit(p[i])) i++, exp++;
        if (!exp) return false;
    }
    return i == n;
}

bool cairn_csv_cell_type(const char *p, size_t n, cairn_csv_type_t *t)
{
    while (n && (*p == ' ' || *p == '\t')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (!n) return false;
    int i = s_int(p, n);
    if (i == 1)
        *t = CAIRN_CSV_INT;
    else if (i == 2 || s_float(p, n))
        *t = CAIRN_CSV_FLOAT;
    else if (s_word(p, n, "true") || s_word(p, n, "false"))
        *t = CAIRN_CSV_BOOL;
    else
        *t = CAIRN_CSV_STRING;
    return true;
}

/* ---- the sniffer --------------------------------------------------------- */

#define T_NONE 0xff /* no non-empty cell yet */

struct cairn_csv_sniff {
    char *pre; /* the first bytes, until the delimiter is chosen */
    size_t pre_len, pre_cap, pre_lines;
    bool pre_inq;
    cairn_csv_t *rd;
    char delim;
    bool finished, done, header;
    size_t ncols;
    /* line 1 */
    bool candidate; /* could be a header */
    char **names;   /* the header's (or generated) names */
    unsigned char *first_type;
    bool *first_null;
    /* every later line */
    unsigned char *type;
    bool *null;
    uint64_t later;
};

cairn_csv_sniff_t *cairn_csv_sniff_new(cairn_err_t *err)
{
    cairn_csv_sniff_t *s = calloc(1, sizeof *s);
    if (!s) cairn_err_oom(err, "for a CSV sniffer");
    return s;
}

static void s_free_names(cairn_csv_sniff_t *s)
{
    if (s->names)
        for (size_t i = 0; i < s->ncols; i++) free(s->names[i]);
    free(s->names);
    s->names = NULL;
}

void cairn_csv_sniff_destroy(cairn_csv_sniff_t **self_p)
{
    if (!self_p || !*self_p) return;
    cairn_csv_sniff_t *s = *self_p;
    free(s->pre);
    cairn_csv_destroy(&s->rd);
    s_free_names(s);
    free(s->first_type);
    free(s->first_null);
    free(s->type);
    free(s->null);
    free(s);
    *self_p = NULL;
}

static unsigned char s_merge(unsigned char a, unsigned char b)
{
    if (a == T_NONE || a == b) return b;
    if (b == T_NONE) return a;
    if ((a == CAIRN_CSV_INT || a == CAIRN_CSV_FLOAT) &&
        (b == CAIRN_CSV_INT || b == CAIRN_CSV_FLOAT))
        return CAIRN_CSV_FLOAT;
    return CAIRN_CSV_STRING;
}

static int s_cmp_field(const void *a, const void *b)
{
    const cairn_csv_field_t *x = *(const cairn_csv_field_t *const *)a;
    const cairn_csv_field_t *y = *(const cairn_csv_field_t *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Whether line 1's cells can name the columns (csv.h): every cell checked
 * first, then distinctness by sorting pointers to them. */
static int s_first(cairn_csv_sniff_t *s, const cairn_csv_field_t *f, size_t n,
                   cairn_err_t *err)
{
    s->ncols = n;
    s->first_type = malloc(n);
    s->first_null = calloc(n, sizeof *s->first_null);
    s->type = malloc(n);
    s->null = calloc(n, sizeof *s->null);
    s->names = calloc(n, sizeof *s->names);
    if (!s->first_type || !s->first_null || !s->type || !s->null || !s->names)
        return cairn_err_oom(err, "for a CSV table's columns");
    memset(s->type, T_NONE, n);
    s->candidate = true;
    for (size_t i = 0; i < n; i++) {
        cairn_csv_type_t t;
        if (cairn_csv_cell_type(f[i].ptr, f[i].len, &t)) {
            s->first_type[i] = (unsigned char)t;
        } else {
            s->first_type[i] = T_NONE;
            s->first_null[i] = true;
        }
        if (s->first_type[i] != CAIRN_CSV_STRING || f[i].len > CAIRN_CSV_NAME_MAX)
            s->candidate = false;
    }
    if (!s->candidate) return 0;
    const cairn_csv_field_t **v = malloc(n * sizeof *v);
    if (!v) return cairn_err_oom(err, "for a CSV table's header");
    for (size_t i = 0; i < n; i++) v[i] = &f[i];
    qsort(v, n, sizeof *v, s_cmp_field);
    for (size_t i = 1; i < n && s->candidate; i++)
        if (s_cmp_field(&v[i - 1], &v[i]) == 0) s->candidate = false;
    free(v);
    for (size_t i = 0; i < n && s->candidate; i++)
        if (!(s->names[i] = strndup(f[i].ptr, f[i].len)))
            return cairn_err_oom(err, "for a CSV table's header");
    return 0;
}

static int s_sniff_row(void *arg, uint64_t line, const cairn_csv_field_t *f, size_t n,
                       cairn_err_t *err)
{
    cairn_csv_sniff_t *s = arg;
    (void)line;
    if (!s->type) return s_first(s, f, n, err);
    for (size_t i = 0; i < n; i++) {
        cairn_csv_type_t t;
        if (cairn_csv_cell_type(f[i].ptr, f[i].len, &t))
            s->type[i] = s_merge(s->type[i], (unsigned char)t);
        else
            s->null[i] = true;
    }
    s->later++;
    return 0;
}

/* A trial of one candidate delimiter over the held lines. */
typedef struct trial {
    uint64_t rows, same; /* records; of them, as wide as the first */
    size_t width;
} trial_t;

static int s_trial_row(void *arg, uint64_t line, const cairn_csv_field_t *f, size_t n,
                       cairn_err_t *err)
{
    trial_t *t = arg;
    (void)line, (void)f, (void)err;
    if (!t->rows) t->width = n;
    t->rows++;
    if (n == t->width) t->same++;
    return 0;
}

static const char s_delims[] = {',', ';', '\t', '|'};
#define NDELIMS (sizeof s_delims / sizeof s_delims[0])

/* Choose the delimiter: of those that read the held lines without a syntax
 * error into rows of 2 fields or more, the one whose rows all have as many,
 * the widest; else the one with the most rows as wide as the first; else
 * the one seen most often outside quotes; else ','. */
static char s_choose(const cairn_csv_sniff_t *s)
{
    trial_t t[NDELIMS];
    int best = -1;
    for (size_t d = 0; d < NDELIMS; d++) {
        memset(&t[d], 0, sizeof t[d]);
        cairn_csv_t *c = cairn_csv_new(s_delims[d], s_trial_row, &t[d], NULL);
        if (!c) continue;
        c->ragged_ok = true;
        int rc = cairn_csv_feed(c, s->pre, s->pre_len, NULL);
        if (rc == 0 && s->finished) rc = cairn_csv_finish(c, NULL);
        cairn_csv_destroy(&c);
        if (rc != 0 || t[d].width < 2) continue;
        if (best < 0) {
            best = (int)d;
            continue;
        }
        const trial_t *b = &t[best];
        bool all = t[d].same == t[d].rows, ball = b->same == b->rows;
        bool better;
        if (all != ball)
            better = all;
        else if (all)
            better = t[d].width > b->width;
        else
            better =
                t[d].same > b->same || (t[d].same == b->same && t[d].width > b->width);
        if (better) best = (int)d;
    }
    if (best >= 0) return s_delims[best];
    size_t count[NDELIMS] = {0};
    bool inq = false;
    for (size_t i = 0; i < s->pre_len; i++) {
        if (s->pre[i] == '"') inq = !inq;
        if (inq) continue;
        for (size_t d = 0; d < NDELIMS; d++)
            if (s->pre[i] == s_delims[d]) count[d]++;
    }
    size_t m = 0;
    for (size_t d = 1; d < NDELIMS; d++)
        if (count[d] > count[m]) m = d;
    return s_delims[m];
}

static int s_decide(cairn_csv_sniff_t *s, cairn_err_t *err)
{
    s->delim = s_choose(s);
    s->rd = cairn_csv_new(s->delim, s_sniff_row, s, err);
    if (!s->rd) return -1;
    int rc = cairn_csv_feed(s->rd, s->pre, s->pre_len, err);
    free(s->pre);
    s->pre = NULL;
    s->pre_len = s->pre_cap = 0;
    return rc;
}

int cairn_csv_sniff_feed(cairn_csv_sniff_t *s, const void *buf, size_t len,
                         cairn_err_t *err)
{
    if (s->rd) return cairn_csv_feed(s->rd, buf, len, err);
    if (s->finished)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the CSV input has ended: nothing more can be fed");
    const char *p = buf;
    size_t i = 0;
    if (s->pre_cap < CAIRN_CSV_SNIFF_BYTES) {
        char *q = realloc(s->pre, CAIRN_CSV_SNIFF_BYTES);
        if (!q) return cairn_err_oom(err, "for a CSV sniffer's first lines");
        s->pre = q;
        s->pre_cap = CAIRN_CSV_SNIFF_BYTES;
    }
    while (i < len) {
        char ch = p[i++];
        s->pre[s->pre_len++] = ch;
        if (ch == '"') s->pre_inq = !s->pre_inq;
        if (ch == '\n' && !s->pre_inq) s->pre_lines++;
        if (s->pre_lines == CAIRN_CSV_SNIFF_LINES ||
            s->pre_len == CAIRN_CSV_SNIFF_BYTES) {
            if (s_decide(s, err) != 0) return -1;
            return cairn_csv_feed(s->rd, p + i, len - i, err);
        }
    }
    return 0;
}

int cairn_csv_sniff_finish(cairn_csv_sniff_t *s, cairn_err_t *err)
{
    if (s->done) return 0;
    s->finished = true;
    if (!s->rd && s_decide(s, err) != 0) return -1;
    if (cairn_csv_finish(s->rd, err) != 0) return -1;
    if (!cairn_csv_records(s->rd))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the input holds no CSV rows");
    s->header = s->candidate;
    if (!s->header) {
        for (size_t i = 0; i < s->ncols; i++) {
            s->type[i] = s_merge(s->type[i], s->first_type[i]);
            s->null[i] = s->null[i] || s->first_null[i];
        }
        for (size_t i = 0; i < s->ncols; i++) {
            char name[32];
            snprintf(name, sizeof name, "col_%zu", i + 1);
            free(s->names[i]);
            if (!(s->names[i] = strdup(name)))
                return cairn_err_oom(err, "for a CSV table's column names");
        }
    }
    for (size_t i = 0; i < s->ncols; i++)
        if (s->type[i] == T_NONE) s->type[i] = CAIRN_CSV_STRING;
    s->done = true;
    return 0;
}

char cairn_csv_sniff_delimiter(const cairn_csv_sniff_t *s)
{
    return s->delim;
}

bool cairn_csv_sniff_header(const cairn_csv_sniff_t *s)
{
    return s->header;
}

uint64_t cairn_csv_sniff_rows(const cairn_csv_sniff_t *s)
{
    return s->header ? s->later : s->later + (s->ncols ? 1 : 0);
}

size_t cairn_csv_sniff_columns(const cairn_csv_sniff_t *s)
{
    return s->ncols;
}

const char *cairn_csv_sniff_name(const cairn_csv_sniff_t *s, size_t i)
{
    return i < s->ncols && s->names ? s->names[i] : NULL;
}

cairn_csv_type_t cairn_csv_sniff_type(const cairn_csv_sniff_t *s, size_t i)
{
    return i < s->ncols ? (cairn_csv_type_t)s->type[i] : CAIRN_CSV_STRING;
}

bool cairn_csv_sniff_nullable(const cairn_csv_sniff_t *s, size_t i)
{
    return i < s->ncols && s->null[i];
}
