#include "rfilter.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct parser {
    const char *s;
    size_t len, at;
    rfilter_target_t target;
    rfilter_t *out;
    size_t sql_len;
    cairn_err_t *err;
} parser_t;

static int p_fail(parser_t *p, const char *what)
{
    return cairn_err_set(p->err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "filter: %s at position %zu", what, p->at);
}

static void p_space(parser_t *p)
{
    while (p->at < p->len && (p->s[p->at] == ' ' || p->s[p->at] == '\t' ||
                              p->s[p->at] == '\n' || p->s[p->at] == '\r'))
        p->at++;
}

/* A keyword (case-insensitive) followed by a non-word byte. */
static bool p_kw(parser_t *p, const char *kw)
{
    size_t n = strlen(kw);
    p_space(p);
    if (p->len - p->at < n || strncasecmp(p->s + p->at, kw, n) != 0) return false;
    if (p->at + n < p->len) {
        char c = p->s[p->at + n];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '_')
            return false;
    }
    p->at += n;
    return true;
}

static bool p_ch(parser_t *p, char c)
{
    p_space(p);
    if (p->at < p->len && p->s[p->at] == c) {
        p->at++;
        return true;
    }
    return false;
}

static int p_sql(parser_t *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = sizeof p->out->sql - p->sql_len;
    int n = vsnprintf(p->out->sql + p->sql_len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) return p_fail(p, "the filter is too long");
    p->sql_len += (size_t)n;
    return 0;
}

static int p_bind(parser_t *p, cairn_str_t v, bool is_int)
{
    if (p->out->nbinds == RFILTER_MAX_BINDS) return p_fail(p, "too many values");
    bool digits = v.len >= 1 && v.len <= 9;
    for (size_t i = 0; digits && i < v.len; i++)
        digits = v.ptr[i] >= '0' && v.ptr[i] <= '9';
    if (is_int && !digits) return p_fail(p, "a version number is 1 to 9 digits");
    p->out->bind_int[p->out->nbinds] = is_int;
    p->out->binds[p->out->nbinds++] = v;
    return p_sql(p, "?");
}

/* 'value' or "value": the slice between the quotes. */
static int p_value(parser_t *p, cairn_str_t *v)
{
    p_space(p);
    if (p->at >= p->len || (p->s[p->at] != '\'' && p->s[p->at] != '"'))
        return p_fail(p, "expected a quoted value");
    char q = p->s[p->at++];
    size_t start = p->at;
    while (p->at < p->len && p->s[p->at] != q) p->at++;
    if (p->at >= p->len) return p_fail(p, "a quoted value is not closed");
    *v = (cairn_str_t){p->s + start, p->at - start};
    p->at++;
    return 0;
}

typedef enum { F_NAME, F_TAG, F_RUN_ID, F_SOURCE, F_VERSION } field_t;

/* The left-hand side; a tag's key goes to *key. */
static int p_ident(parser_t *p, field_t *f, cairn_str_t *key)
{
    p_space(p);
    size_t start = p->at;
    if (p->len - p->at > 5 && strncasecmp(p->s + p->at, "tags.", 5) == 0) {
        p->at += 5;
        if (p->at < p->len && (p->s[p->at] == '`' || p->s[p->at] == '"')) {
            char q = p->s[p->at++];
            size_t k = p->at;
            while (p->at < p->len && p->s[p->at] != q) p->at++;
            if (p->at >= p->len) return p_fail(p, "a quoted tag key is not closed");
            *key = (cairn_str_t){p->s + k, p->at - k};
            p->at++;
        } else {
            size_t k = p->at;
            while (p->at < p->len && p->s[p->at] != ' ' && p->s[p->at] != '=' &&
                   p->s[p->at] != '!' && p->s[p->at] != '\t')
                p->at++;
            *key = (cairn_str_t){p->s + k, p->at - k};
        }
        if (!key->len) return p_fail(p, "a tag key is empty");
        *f = F_TAG;
        return 0;
    }
    static const struct {
        const char *word;
        field_t f;
        bool versions_only;
    } idents[] = {{"name", F_NAME, false},
                  {"run_id", F_RUN_ID, true},
                  {"source_path", F_SOURCE, true},
                  {"version_number", F_VERSION, true}};
    for (size_t i = 0; i < sizeof idents / sizeof idents[0]; i++)
        if (p_kw(p, idents[i].word)) {
            if (idents[i].versions_only && p->target != RFILTER_VERSIONS) {
                p->at = start;
                return p_fail(p, "models are filtered by name and tags.KEY only");
            }
            *f = idents[i].f;
            return 0;
        }
    return p_fail(p, p->target == RFILTER_VERSIONS
                         ? "expected name, run_id, source_path, version_number or "
                           "tags.KEY"
                         : "expected name or tags.KEY");
}

typedef enum { OP_EQ, OP_NE, OP_LIKE, OP_ILIKE, OP_IN, OP_NIN } op_t;

static int p_op(parser_t *p, op_t *op)
{
    if (p_ch(p, '='))
        *op = OP_EQ;
    else if (p_ch(p, '!')) {
        if (!p_ch(p, '=')) return p_fail(p, "expected != ");
        *op = OP_NE;
    } else if (p_kw(p, "LIKE"))
        *op = OP_LIKE;
    else if (p_kw(p, "ILIKE"))
        *op = OP_ILIKE;
    else if (p_kw(p, "IN"))
        *op = OP_IN;
    else if (p_kw(p, "NOT")) {
        if (!p_kw(p, "IN")) return p_fail(p, "expected IN after NOT");
        *op = OP_NIN;
    } else
        return p_fail(p, "expected =, !=, LIKE, ILIKE, IN or NOT IN");
    return 0;
}

/* col <op> value(s), with the value(s) bound. */
static int p_compare(parser_t *p, const char *col, op_t op, bool is_int)
{
    static const char *const sql_op[] = {"=", "!=", "LIKE", "LIKE", "IN", "NOT IN"};
    if (is_int && (op == OP_LIKE || op == OP_ILIKE))
        return p_fail(p, "version_number takes =, !=, IN or NOT IN");
    if (op == OP_ILIKE) {
        cairn_str_t v;
        if (p_value(p, &v) != 0 || p_sql(p, "lower(%s) LIKE lower(", col) != 0 ||
            p_bind(p, v, false) != 0)
            return -1;
        return p_sql(p, ")");
    }
    if (p_sql(p, "%s %s ", col, sql_op[op]) != 0) return -1;
    if (op != OP_IN && op != OP_NIN) {
        cairn_str_t v;
        return p_value(p, &v) != 0 ? -1 : p_bind(p, v, is_int);
    }
    if (!p_ch(p, '(')) return p_fail(p, "expected ( after IN");
    if (p_sql(p, "(") != 0) return -1;
    for (int i = 0;; i++) {
        cairn_str_t v;
        if ((i && p_sql(p, ", ") != 0) || p_value(p, &v) != 0 ||
            p_bind(p, v, is_int) != 0)
            return -1;
        if (p_ch(p, ')')) break;
        if (!p_ch(p, ',')) return p_fail(p, "expected , or ) in an IN list");
    }
    return p_sql(p, ")");
}

static int p_clause(parser_t *p)
{
    field_t f = F_NAME;
    cairn_str_t key = {"", 0};
    op_t op = OP_EQ;
    if (p_ident(p, &f, &key) != 0 || p_op(p, &op) != 0) return -1;
    bool versions = p->target == RFILTER_VERSIONS;
    switch (f) {
        case F_NAME:
            return p_compare(p, "m.name", op, false);
        case F_RUN_ID:
            return p_compare(p, "v.run_id", op, false);
        case F_SOURCE:
            return p_compare(p, "v.source", op, false);
        case F_VERSION:
            return p_compare(p, "v.version", op, true);
        case F_TAG:
            if (p_sql(p, versions ? "EXISTS (SELECT 1 FROM version_tags t WHERE "
                                    "t.model_id = v.model_id AND t.version = "
                                    "v.version AND t.key = "
                                  : "EXISTS (SELECT 1 FROM model_tags t WHERE "
                                    "t.model_id = m.id AND t.key = ") != 0 ||
                p_bind(p, key, false) != 0 || p_sql(p, " AND ") != 0 ||
                p_compare(p, "t.value", op, false) != 0)
                return -1;
            return p_sql(p, ")");
    }
    return p_fail(p, "unknown field");
}

int rfilter_compile(const char *text, size_t len, rfilter_target_t target,
                    rfilter_t *out, cairn_err_t *err)
{
    parser_t p = {.s = text, .len = len, .target = target, .out = out, .err = err};
    out->nbinds = 0;
    out->sql[0] = '\0';
    if (len > RFILTER_MAX_LEN)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "filter: at most %d bytes", RFILTER_MAX_LEN);
    if (memchr(text, '\0', len))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "filter: a NUL byte is not allowed");
    p_space(&p);
    if (p.at == len) return p_sql(&p, "1");
    for (int n = 0;; n++) {
        if (n == RFILTER_MAX_CLAUSES)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "filter: at most %d clauses", RFILTER_MAX_CLAUSES);
        if ((n && p_sql(&p, " AND ") != 0) || p_sql(&p, "(") != 0 ||
            p_clause(&p) != 0 || p_sql(&p, ")") != 0)
            return -1;
        p_space(&p);
        if (p.at == len) return 0;
        if (!p_kw(&p, "AND"))
            return p_fail(&p, "expected AND or the end of the filter");
    }
}
