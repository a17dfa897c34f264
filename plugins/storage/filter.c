/* plugins/storage/filter.c — MLflow search filters and order_by clauses,
 * compiled to SQLite SQL over the tracking schema (grammar in filter.h).
 *
 * Three small stages:
 *   1. lex:   the text becomes an array of tokens (words, quoted texts,
 *             numbers, operators, punctuation). A lexical error becomes a
 *             T_ERR token that the parser reports only when it reaches it,
 *             so the first problem in reading order is the one reported.
 *   2. parse: recursive descent over the tokens builds a tree of OR/AND
 *             groups and comparison clauses in one node array.
 *   3. emit:  the tree becomes SQL text and bound values, in placeholder
 *             order. Nothing from the filter is ever pasted into the SQL:
 *             keys and values are always bound.
 *
 * SQLite limits what it can prepare: an expression tree at most 1000 deep,
 * and a parser stack of 100 entries (about 75 nested parentheses in a
 * typical search query). So the emitter (a) writes a long AND/OR chain as
 * a balanced tree of short chains, (b) puts a group's most deeply nested
 * child first (AND and OR are commutative in SQL) and (c) leaves an AND
 * group inside an OR chain unparenthesized. The same code measures each
 * group's "shape" while parsing, and a filter whose shape would exceed
 * what SQLite takes is a 400, never a failed prepare later.
 *
 * Nothing here is global or mutable; every path frees what it allocated.
 */
#define _GNU_SOURCE
#include "filter.h"

#include "cairn/msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- limits -------------------------------------------------------------- */

#define FILTER_MAX_LEN (64 * 1024) /* bytes of filter or order_by text */
#define MAX_PAREN_DEPTH 64         /* nested '(' in the filter text */
#define MAX_VALUES 10000           /* values in one filter (SQLite binds) */
#define MAX_NUMBER_LEN 64          /* characters of one number */
#define MAX_LIKE_PATTERN 50000     /* SQLite's SQLITE_MAX_LIKE_PATTERN_LENGTH */
#define FLAT_MAX 8                 /* longest chain written flat (a OR b OR ...) */
#define NEST_MAX 48                /* parser-stack budget, see shape_t */
#define HEIGHT_MAX 500             /* expression-height budget (SQLite: 1000) */
#define CLAUSE_HEIGHT 5            /* a clause's own height, subquery included */
#define SHOW_MAX 40                /* bytes of filter text quoted in a message */

#define MAXI(a, b) ((a) > (b) ? (a) : (b))

/* ---- tokens -------------------------------------------------------------- */

typedef enum {
    T_END,   /* end of the text */
    T_ERR,   /* a lexical error; err says which */
    T_WORD,  /* letters, digits, '_', '.', UTF-8: keywords and identifiers */
    T_STR,   /* 'text', "text" or `text`; the first byte is the quote */
    T_NUM,   /* [+-] digits [. digits] [e [+-] digits] */
    T_OP,    /* a run of < > = ! (validated by the parser) */
    T_LP,    /* ( */
    T_RP,    /* ) */
    T_COMMA, /* , */
} tkind_t;

typedef enum {
    LEX_OK,
    LEX_BAD_CHAR,
    LEX_NUL,
    LEX_UNTERMINATED,
    LEX_BAD_NUMBER
} lexerr_t;

typedef struct tok {
    tkind_t kind;
    lexerr_t err;
    uint32_t pos; /* byte offset of its first byte */
    uint32_t len; /* bytes, quotes included */
} tok_t;

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_word_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_word(unsigned char c)
{
    return is_word_start(c) || is_digit(c) || c == '.';
}

static bool is_op_char(unsigned char c)
{
    return c == '<' || c == '>' || c == '=' || c == '!';
}

/* Whether a number starts at s[i]: a digit, ".5", "-1", "+.5". */
static bool starts_number(const char *s, size_t len, size_t i)
{
    if (s[i] == '+' || s[i] == '-') i++;
    if (i < len && is_digit((unsigned char)s[i])) return true;
    return i + 1 < len && s[i] == '.' && is_digit((unsigned char)s[i + 1]);
}

/* The end of the number at s[i], or 0 when it is malformed (no digits, a
 * bare exponent, or letters/dots glued to it as in "1.2.3" or "1abc"). */
static size_t lex_number(const char *s, size_t len, size_t i)
{
    size_t j = i + (s[i] == '+' || s[i] == '-');
    size_t d0 = j;
    while (j < len && is_digit((unsigned char)s[j])) j++;
    bool digits = j > d0;
    if (j < len && s[j] == '.') {
        size_t f0 = ++j;
        while (j < len && is_digit((unsigned char)s[j])) j++;
        digits = digits || j > f0;
    }
    if (!digits) return 0;
    if (j < len && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < len && (s[k] == '+' || s[k] == '-')) k++;
        size_t e0 = k;
        while (k < len && is_digit((unsigned char)s[k])) k++;
        if (k == e0) return 0;
        j = k;
    }
    if (j < len && is_word((unsigned char)s[j])) return 0;
    return j;
}

/* The end of the quoted text opening at s[i] (past its closing quote). A
 * doubled quote or a backslash before any character does not close it.
 * On error sets *err and returns the offset the error is at. */
static size_t lex_quoted(const char *s, size_t len, size_t i, lexerr_t *err)
{
    char q = s[i];
    for (size_t j = i + 1; j < len; j++) {
        if (s[j] == '\0') {
            *err = LEX_NUL;
            return j;
        }
        if (s[j] == '\\' && j + 1 < len && s[j + 1] != '\0') {
            j++;
        } else if (s[j] == q) {
            if (j + 1 < len && s[j + 1] == q) {
                j++;
                continue;
            }
            return j + 1;
        }
    }
    *err = LEX_UNTERMINATED;
    return i;
}

/* Read one token at or after s[i] into t; returns the offset after it. */
static size_t lex_one(const char *s, size_t len, size_t i, tok_t *t)
{
    while (i < len && is_space((unsigned char)s[i])) i++;
    memset(t, 0, sizeof *t);
    t->pos = (uint32_t)i;
    if (i == len) return i; /* T_END */
    unsigned char c = (unsigned char)s[i];
    size_t j = i + 1;
    if (c == '(' || c == ')' || c == ',') {
        t->kind = c == '(' ? T_LP : c == ')' ? T_RP : T_COMMA;
    } else if (is_op_char(c)) {
        while (j < len && is_op_char((unsigned char)s[j])) j++;
        t->kind = T_OP;
    } else if (c == '\'' || c == '"' || c == '`') {
        lexerr_t e = LEX_OK;
        j = lex_quoted(s, len, i, &e);
        t->kind = e ? T_ERR : T_STR;
        t->err = e;
        if (e == LEX_NUL) t->pos = (uint32_t)j;
    } else if (starts_number(s, len, i)) {
        size_t end = lex_number(s, len, i);
        while (j < len && is_word((unsigned char)s[j])) j++;
        t->kind = end ? T_NUM : T_ERR;
        t->err = end ? LEX_OK : LEX_BAD_NUMBER;
        j = end ? end : j;
    } else if (is_word_start(c)) {
        while (j < len && is_word((unsigned char)s[j])) j++;
        t->kind = T_WORD;
    } else {
        t->kind = T_ERR;
        t->err = c == '\0' ? LEX_NUL : LEX_BAD_CHAR;
    }
    t->len = (uint32_t)(j - t->pos);
    return j;
}

/* ---- the parser's state and its messages ---------------------------------- */

typedef enum { E_METRIC, E_PARAM, E_TAG, E_ATTR } ent_t;
typedef enum { A_STR, A_NUM } atype_t;

typedef struct attr {
    const char *name; /* as written in a filter, matched case-insensitively */
    const char *col;  /* the runs column */
    atype_t type;
    bool nullable;
} attr_t;

/* A piece of the filter text; quote is 0 for raw text, or the quote whose
 * escapes are undone (see unescape) when the value is bound. */
typedef struct slice {
    uint32_t pos, len;
    char quote;
} slice_t;

/* The left-hand side of a clause, or an order_by key. */
typedef struct ident {
    ent_t ent;
    const attr_t *attr; /* E_ATTR */
    slice_t key;        /* E_METRIC, E_PARAM, E_TAG */
    uint32_t pos, end;  /* its span in the text, for messages */
} ident_t;

typedef enum {
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_LIKE,
    OP_NLIKE,
    OP_ILIKE,
    OP_NILIKE,
    OP_IN,
    OP_NIN,
} op_t;

#define OPS_NUMERIC                                                                  \
    ((1u << OP_EQ) | (1u << OP_NE) | (1u << OP_LT) | (1u << OP_LE) | (1u << OP_GT) | \
     (1u << OP_GE))
#define OPS_STRING                                                        \
    ((1u << OP_EQ) | (1u << OP_NE) | (1u << OP_LIKE) | (1u << OP_NLIKE) | \
     (1u << OP_ILIKE) | (1u << OP_NILIKE) | (1u << OP_IN) | (1u << OP_NIN))

static const char *const s_op_name[] = {"=",     "!=",        "<",    "<=",
                                        ">",     ">=",        "LIKE", "NOT LIKE",
                                        "ILIKE", "NOT ILIKE", "IN",   "NOT IN"};
/* ILIKE is LIKE over lower() of both sides (see emit_str_cond). */
static const char *const s_op_sql[] = {"=",    "!=",       "<",    "<=",
                                       ">",    ">=",       "LIKE", "NOT LIKE",
                                       "LIKE", "NOT LIKE", "IN",   "NOT IN"};

/* How deep the emitted SQL nests, in SQLite's terms: nest counts parser-
 * stack entries above a clause ('(' is one, "expr OR" before a later
 * operand two); height counts expression-tree levels. */
typedef struct shape {
    int nest, height;
} shape_t;

typedef enum { N_CLAUSE, N_AND, N_OR } nkind_t;

typedef struct node {
    nkind_t kind;
    int32_t next;     /* next sibling in the parent group, -1 at the end */
    int32_t child, n; /* groups: first child and how many */
    uint32_t pos;     /* its first byte, for messages */
    shape_t shape;    /* groups: of the chain without outer parentheses */
    ident_t id;       /* clauses: left-hand side, operator, values */
    op_t op;
    uint32_t val;  /* token index of the first value; IN lists step by 2 */
    uint32_t nval; /* how many values */
} node_t;

typedef struct parser {
    const char *text;
    size_t len;
    const char *what; /* "filter" or "order_by": leads every message */
    const char *unit; /* "filter" or "clause": "found the end of the ..." */
    tok_t *toks;
    size_t ntok, tcap, at;
    node_t *nodes;
    size_t nnode, ncap;
    size_t nvalues;
    cairn_err_t *err;
} parser_t;

/* Render s[0, n) for a message: at most SHOW_MAX bytes, valid UTF-8 kept,
 * control bytes and invalid UTF-8 as '?', "..." when cut. buf holds
 * SHOW_MAX + 4 bytes. */
#define SHOW_BUF (SHOW_MAX + 4)
static void show(char *buf, const char *s, size_t n)
{
    size_t o = 0, i = 0;
    while (i < n) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t k = cairn_utf8_len(u, n - i);
        if (o + MAXI(k, 1) > SHOW_MAX) break;
        if (k == 0 || (k == 1 && (*u < 0x20 || *u == 0x7F))) {
            buf[o++] = '?';
            i++;
            continue;
        }
        memcpy(buf + o, u, k);
        o += k;
        i += k;
    }
    if (i < n) memcpy(buf + o, "...", 3), o += 3;
    buf[o] = '\0';
}

/* The 1-based character (not byte) position of byte offset pos. */
static size_t char_pos(const char *text, size_t pos)
{
    size_t n = 1;
    for (size_t i = 0; i < pos; i++) n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}

/* Fail with a 400 whose sentence names the position of byte offset pos. */
__attribute__((format(printf, 3, 4))) static int p_fail(parser_t *p, size_t pos,
                                                        const char *fmt, ...)
{
    char what[CAIRN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cairn_err_set(p->err, CAIRN_ST_BAD_REQUEST, NULL, "%s: at position %zu: %s",
                         p->what, char_pos(p->text, pos), what);
}

static int p_oom(parser_t *p)
{
    return cairn_err_set(p->err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                         "%s: out of memory", p->what);
}

static const tok_t *cur(const parser_t *p)
{
    return &p->toks[p->at];
}

static void advance(parser_t *p)
{
    if (cur(p)->kind != T_END && cur(p)->kind != T_ERR) p->at++;
}

/* A token as a message shows it: quoted texts with their own quotes,
 * everything else in single quotes. */
static void show_tok(const parser_t *p, const tok_t *t, char *buf, size_t cap)
{
    char s[SHOW_BUF];
    show(s, p->text + t->pos, t->len);
    snprintf(buf, cap, t->kind == T_STR ? "%s" : "'%s'", s);
}

static int p_lex_fail(parser_t *p, const tok_t *t)
{
    char s[SHOW_BUF];
    switch (t->err) {
        case LEX_NUL:
            return p_fail(p, t->pos, "unexpected NUL byte");
        case LEX_UNTERMINATED:
            return p_fail(p, t->pos, "unterminated quoted text (no closing %c)",
                          p->text[t->pos]);
        case LEX_BAD_NUMBER:
            show(s, p->text + t->pos, t->len);
            return p_fail(p, t->pos, "malformed number '%s'", s);
        default: {
            size_t k = cairn_utf8_len((const unsigned char *)p->text + t->pos,
                                      p->len - t->pos);
            show(s, p->text + t->pos, k ? k : 1);
            return p_fail(p, t->pos, "unexpected character '%s'", s);
        }
    }
}

/* Fail with "expected <expected>, found <the current token>". */
static int p_expected(parser_t *p, const char *expected)
{
    const tok_t *t = cur(p);
    if (t->kind == T_ERR) return p_lex_fail(p, t);
    if (t->kind == T_END)
        return p_fail(p, t->pos, "expected %s, found the end of the %s", expected,
                      p->unit);
    char found[SHOW_BUF + 2];
    show_tok(p, t, found, sizeof found);
    return p_fail(p, t->pos, "expected %s, found %s", expected, found);
}

/* ASCII case-insensitive: is s[0, n) exactly kw? */
static bool kw_eq(const char *s, size_t n, const char *kw)
{
    size_t k = strlen(kw);
    if (n != k) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        char d = kw[i];
        if (d >= 'A' && d <= 'Z') d = (char)(d - 'A' + 'a');
        if (c != d) return false;
    }
    return true;
}

static bool at_kw(const parser_t *p, const char *kw)
{
    const tok_t *t = cur(p);
    return t->kind == T_WORD && kw_eq(p->text + t->pos, t->len, kw);
}

static bool accept_kw(parser_t *p, const char *kw)
{
    if (!at_kw(p, kw)) return false;
    advance(p);
    return true;
}

static bool at_keyword(const parser_t *p)
{
    static const char *const kws[] = {"AND", "OR", "NOT", "IN", "LIKE", "ILIKE"};
    for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++)
        if (at_kw(p, kws[i])) return true;
    return false;
}

static int lex_all(parser_t *p)
{
    size_t i = 0;
    for (;;) {
        if (p->ntok == p->tcap) {
            size_t cap = p->tcap ? p->tcap * 2 : 32;
            tok_t *v = realloc(p->toks, cap * sizeof *v);
            if (!v) return p_oom(p);
            p->toks = v;
            p->tcap = cap;
        }
        tok_t *t = &p->toks[p->ntok++];
        i = lex_one(p->text, p->len, i, t);
        if (t->kind == T_END || t->kind == T_ERR) return 0;
    }
}

static int32_t push_node(parser_t *p, const node_t *n)
{
    if (p->nnode == p->ncap) {
        size_t cap = p->ncap ? p->ncap * 2 : 16;
        node_t *v = realloc(p->nodes, cap * sizeof *v);
        if (!v) return p_oom(p);
        p->nodes = v;
        p->ncap = cap;
    }
    p->nodes[p->nnode] = *n;
    return (int32_t)p->nnode++;
}

/* ---- identifiers ----------------------------------------------------------- */

static const struct {
    const char *name;
    ent_t ent;
} s_prefixes[] = {
    {"metrics", E_METRIC}, {"metric", E_METRIC},   {"params", E_PARAM},
    {"param", E_PARAM},    {"parameter", E_PARAM}, {"tags", E_TAG},
    {"tag", E_TAG},        {"attributes", E_ATTR}, {"attribute", E_ATTR},
    {"attr", E_ATTR},      {"run", E_ATTR},
};

static const attr_t s_attrs[] = {
    {"run_id", "r.run_uuid", A_STR, false},
    {"run_name", "r.name", A_STR, false},
    {"status", "r.status", A_STR, false},
    {"user_id", "r.user_id", A_STR, false},
    {"artifact_uri", "r.artifact_uri", A_STR, false},
    {"lifecycle_stage", "r.lifecycle_stage", A_STR, false},
    {"start_time", "r.start_time", A_NUM, true},
    {"end_time", "r.end_time", A_NUM, true},
    {"created", "r.start_time", A_NUM, true},
    {"run name", "r.name", A_STR, false}, /* MLflow's UI spelling */
};
#define VALID_ATTRS                                                                  \
    "run_id, run_name, status, user_id, artifact_uri, lifecycle_stage, start_time, " \
    "end_time, created"

/* Copy the inside of a quoted text undoing its escapes: a doubled quote, or
 * a backslash before the quote or before a backslash, stands for that
 * character; any other backslash stays (so LIKE patterns keep theirs).
 * dst may be src. Returns the length written. */
static size_t unescape(char *dst, const char *src, size_t n, char q)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < n && (src[i + 1] == q || src[i + 1] == '\\'))
            c = src[++i];
        else if (c == q && i + 1 < n && src[i + 1] == q)
            i++;
        dst[o++] = c;
    }
    return o;
}

static int find_prefix(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof s_prefixes / sizeof s_prefixes[0]; i++)
        if (kw_eq(s, n, s_prefixes[i].name)) return (int)s_prefixes[i].ent;
    return -1;
}

static const attr_t *find_attr(const parser_t *p, const slice_t *name)
{
    char buf[32];
    if (name->len >= sizeof buf) return NULL;
    size_t n = name->len;
    memcpy(buf, p->text + name->pos, n);
    if (name->quote) n = unescape(buf, buf, n, name->quote);
    for (size_t i = 0; i < sizeof s_attrs / sizeof s_attrs[0]; i++)
        if (kw_eq(buf, n, s_attrs[i].name)) return &s_attrs[i];
    return NULL;
}

static int set_attr(parser_t *p, ident_t *id, const slice_t *name)
{
    id->ent = E_ATTR;
    id->attr = find_attr(p, name);
    if (id->attr) return 0;
    char s[SHOW_BUF];
    show(s, p->text + name->pos, name->len);
    return p_fail(p, name->pos,
                  "unknown attribute '%s'; valid attributes are " VALID_ATTRS, s);
}

/* The key after "metrics." when written as "metrics.`a b`" or
 * metrics."a b": the quoted name that follows. */
static int quoted_key(parser_t *p, ident_t *id, slice_t *key)
{
    const tok_t *t = cur(p);
    char q = t->kind == T_STR ? p->text[t->pos] : 0;
    if (q != '"' && q != '`') {
        char s[SHOW_BUF], exp[SHOW_BUF + 32];
        show(s, p->text + id->pos, id->end - id->pos);
        snprintf(exp, sizeof exp, "a key name after '%s'", s);
        return p_expected(p, exp);
    }
    *key = (slice_t){t->pos + 1, t->len - 2, q};
    if (key->len == 0) return p_fail(p, t->pos, "the key name is empty");
    id->end = t->pos + t->len;
    advance(p);
    return 0;
}

/* ident := prefix '.' name | prefix '.' "quoted" | bare attribute name. */
static int parse_ident(parser_t *p, ident_t *id)
{
    const tok_t *t = cur(p);
    if (t->kind != T_WORD || at_keyword(p))
        return p_expected(
            p,
            "an identifier (metrics.<key>, params.<key>, tags.<key> or an "
            "attribute such as status)");
    const char *w = p->text + t->pos;
    const char *dot = memchr(w, '.', t->len);
    char s[SHOW_BUF];
    memset(id, 0, sizeof *id);
    id->pos = t->pos;
    id->end = t->pos + t->len;
    advance(p);
    if (!dot) {
        show(s, w, t->len);
        if (find_prefix(w, t->len) >= 0)
            return p_fail(p, t->pos, "expected '.' and a key name after '%s'", s);
        return set_attr(p, id, &(slice_t){t->pos, t->len, 0});
    }
    size_t plen = (size_t)(dot - w);
    int ent = find_prefix(w, plen);
    if (ent < 0) {
        show(s, w, plen);
        return p_fail(p, t->pos,
                      "unknown entity type '%s'; valid types are metrics, params, tags "
                      "and attributes",
                      s);
    }
    slice_t key = {t->pos + (uint32_t)plen + 1, t->len - (uint32_t)plen - 1, 0};
    if (key.len == 0 && quoted_key(p, id, &key) < 0) return -1;
    if (ent == E_ATTR) return set_attr(p, id, &key);
    id->ent = (ent_t)ent;
    id->key = key;
    return 0;
}

/* ---- clauses ------------------------------------------------------------------ */

static bool is_numeric(const ident_t *id)
{
    return id->ent == E_METRIC || (id->ent == E_ATTR && id->attr->type == A_NUM);
}

/* The identifier as messages show it: "metrics.acc". */
static void show_ident(const parser_t *p, const ident_t *id, char *buf)
{
    show(buf, p->text + id->pos, id->end - id->pos);
}

static int op_from_text(const char *s, size_t n, op_t *op)
{
    static const struct {
        const char *text;
        op_t op;
    } ops[] = {{"=", OP_EQ},  {"!=", OP_NE}, {"<>", OP_NE}, {"<", OP_LT},
               {"<=", OP_LE}, {">", OP_GT},  {">=", OP_GE}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strlen(ops[i].text) == n && memcmp(ops[i].text, s, n) == 0) {
            *op = ops[i].op;
            return 0;
        }
    }
    return -1;
}

/* op := = != <> < <= > >= | LIKE | ILIKE | IN | NOT (LIKE | ILIKE | IN) */
static int parse_op(parser_t *p, const ident_t *id, op_t *op)
{
    const tok_t *t = cur(p);
    bool ok = true;
    if (t->kind == T_OP) {
        ok = op_from_text(p->text + t->pos, t->len, op) == 0;
    } else if (at_kw(p, "LIKE")) {
        *op = OP_LIKE;
    } else if (at_kw(p, "ILIKE")) {
        *op = OP_ILIKE;
    } else if (at_kw(p, "IN")) {
        *op = OP_IN;
    } else if (accept_kw(p, "NOT")) {
        if (at_kw(p, "LIKE"))
            *op = OP_NLIKE;
        else if (at_kw(p, "ILIKE"))
            *op = OP_NILIKE;
        else if (at_kw(p, "IN"))
            *op = OP_NIN;
        else
            return p_expected(p, "LIKE, ILIKE or IN after NOT");
    } else {
        ok = false;
    }
    if (!ok) {
        char s[SHOW_BUF], exp[SHOW_BUF + 40];
        show_ident(p, id, s);
        snprintf(exp, sizeof exp, "a comparison operator after '%s'", s);
        return p_expected(p, exp);
    }
    advance(p);
    return 0;
}

/* Refuse an operator the identifier's kind does not take. */
static int check_op(parser_t *p, const ident_t *id, op_t op, uint32_t pos)
{
    bool numeric = is_numeric(id);
    if ((numeric ? OPS_NUMERIC : OPS_STRING) & (1u << op)) return 0;
    char kind[SHOW_BUF + 16];
    if (id->ent == E_ATTR)
        snprintf(kind, sizeof kind, "attribute '%s'", id->attr->name);
    else
        snprintf(kind, sizeof kind, "%s",
                 id->ent == E_METRIC  ? "metrics"
                 : id->ent == E_PARAM ? "params"
                                      : "tags");
    return p_fail(p, pos, "'%s' is not a valid comparator for %s; use one of %s",
                  s_op_name[op], kind,
                  numeric ? "=, !=, <>, >, >=, <, <="
                          : "=, !=, <>, LIKE, ILIKE, NOT LIKE, NOT ILIKE, IN, NOT IN");
}

/* value := number (metrics, numeric attributes) | 'text' | "text" (others). */
static int parse_value(parser_t *p, const ident_t *id, op_t op)
{
    const tok_t *t = cur(p);
    char s[SHOW_BUF], exp[SHOW_BUF + 40];
    show_ident(p, id, s);
    if (is_numeric(id)) {
        if (t->kind != T_NUM) {
            snprintf(exp, sizeof exp, "a number for %s", s);
            return p_expected(p, exp);
        }
        if (t->len > MAX_NUMBER_LEN)
            return p_fail(p, t->pos, "the number is longer than %d characters",
                          MAX_NUMBER_LEN);
    } else {
        if (t->kind != T_STR || p->text[t->pos] == '`') {
            snprintf(exp, sizeof exp, "a quoted string for %s", s);
            return p_expected(p, exp);
        }
        bool like =
            op == OP_LIKE || op == OP_NLIKE || op == OP_ILIKE || op == OP_NILIKE;
        if (like && t->len - 2 > MAX_LIKE_PATTERN)
            return p_fail(p, t->pos, "the LIKE pattern is longer than %d bytes",
                          MAX_LIKE_PATTERN);
    }
    if (++p->nvalues > MAX_VALUES)
        return p_fail(p, t->pos, "too many values; a filter holds at most %d",
                      MAX_VALUES);
    advance(p);
    return 0;
}

/* '(' value (',' value)* ')' after IN / NOT IN. */
static int parse_in_list(parser_t *p, node_t *c)
{
    if (cur(p)->kind != T_LP) return p_expected(p, "'(' after IN");
    advance(p);
    c->val = (uint32_t)p->at;
    for (c->nval = 1;; c->nval++) {
        if (parse_value(p, &c->id, c->op) < 0) return -1;
        if (cur(p)->kind == T_RP) break;
        if (cur(p)->kind != T_COMMA) return p_expected(p, "',' or ')' in the IN list");
        advance(p);
    }
    advance(p);
    return 0;
}

/* clause := ident op value | ident [NOT] IN '(' value, ... ')' */
static int32_t parse_clause(parser_t *p)
{
    node_t c = {.kind = N_CLAUSE, .next = -1, .child = -1, .pos = cur(p)->pos};
    if (parse_ident(p, &c.id) < 0) return -1;
    uint32_t oppos = cur(p)->pos;
    if (parse_op(p, &c.id, &c.op) < 0 || check_op(p, &c.id, c.op, oppos) < 0) return -1;
    if (c.op == OP_IN || c.op == OP_NIN) {
        if (parse_in_list(p, &c) < 0) return -1;
    } else {
        c.val = (uint32_t)p->at;
        c.nval = 1;
        if (parse_value(p, &c.id, c.op) < 0) return -1;
    }
    c.shape = (shape_t){0, CLAUSE_HEIGHT};
    return push_node(p, &c);
}

/* ---- emitting SQL (also used to measure a group's shape) ------------------- */

typedef struct emitter {
    const parser_t *p;
    sqlbuf_t *out; /* NULL: only measure */
    sql_binds_t *binds;
    filter_sets_t *sets; /* non-NULL: key clauses become rid sets */
    bool conj;           /* reached through AND chains only, from the root */
} emitter_t;

static void put(const emitter_t *e, const char *s)
{
    if (e->out) sqlbuf_add(e->out, s);
}

/* Bind a piece of the text as TEXT, its escapes undone in place. */
static void bind_slice(const emitter_t *e, const slice_t *s)
{
    size_t n0 = e->binds->n;
    sql_binds_text(e->binds, e->p->text + s->pos, s->len);
    if (s->quote && e->binds->n > n0) {
        char *t = e->binds->v[n0].text;
        t[unescape(t, t, s->len, s->quote)] = '\0';
    }
}

static void bind_string(const emitter_t *e, uint32_t tok)
{
    const tok_t *t = &e->p->toks[tok];
    bind_slice(e, &(slice_t){t->pos + 1, t->len - 2, e->p->text[t->pos]});
}

/* Bind a number: INTEGER when it is written as one and fits (so that
 * times compare exactly), else REAL; metrics always REAL. */
static void bind_number(const emitter_t *e, uint32_t tok, bool real)
{
    const tok_t *t = &e->p->toks[tok];
    char buf[MAX_NUMBER_LEN + 1];
    memcpy(buf, e->p->text + t->pos, t->len);
    buf[t->len] = '\0';
    if (!real && !strpbrk(buf, ".eE")) {
        char *end;
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0') {
            sql_binds_int(e->binds, v);
            return;
        }
    }
    sql_binds_real(e->binds, strtod(buf, NULL));
}

/* col op value for strings: = != LIKE NOT LIKE, ILIKE as lower() LIKE
 * lower(), IN lists. */
static void emit_str_cond(const emitter_t *e, const node_t *c, const char *col)
{
    const char *op = s_op_sql[c->op];
    if (c->op == OP_ILIKE || c->op == OP_NILIKE) {
        sqlbuf_addf(e->out, "lower(%s) %s lower(?)", col, op);
    } else if (c->op == OP_IN || c->op == OP_NIN) {
        sqlbuf_addf(e->out, "%s %s (", col, op);
        for (uint32_t i = 0; i < c->nval; i++) put(e, i ? ", ?" : "?");
        put(e, ")");
    } else {
        sqlbuf_addf(e->out, "%s %s ?", col, op);
    }
    for (uint32_t i = 0; i < c->nval; i++) bind_string(e, c->val + 2 * i);
}

static void emit_clause(const emitter_t *e, const node_t *c);

/* A key clause as a rid set (filter.h): its subquery and binds go to a new
 * set, the expression tests membership. */
static void emit_set(const emitter_t *e, const node_t *c)
{
    filter_sets_t *sets = e->sets;
    if (sets->n == sets->cap) {
        size_t cap = sets->cap ? sets->cap * 2 : 4;
        filter_set_t *v = realloc(sets->v, cap * sizeof *v);
        if (!v) {
            sets->oom = true;
            return;
        }
        sets->v = v;
        sets->cap = cap;
    }
    filter_set_t *set = &sets->v[sets->n];
    sqlbuf_init(&set->sql);
    sql_binds_init(&set->binds);
    set->required = e->conj;
    sqlbuf_addf(e->out, "cairn_rid_in(%zu, r.rid)", sets->n++);
    sqlbuf_t whole;
    sqlbuf_init(&whole);
    emitter_t inner = {.p = e->p, .out = &whole, .binds = &set->binds};
    emit_clause(&inner, c);
    /* whole is "r.rid IN (SUBQUERY)": the set is SUBQUERY. */
    static const char head[] = "r.rid IN (";
    if (whole.oom || whole.len < sizeof head ||
        memcmp(whole.data, head, sizeof head - 1))
        sets->oom = true;
    else
        sqlbuf_addn(&set->sql, whole.data + sizeof head - 1, whole.len - sizeof head);
    if (set->sql.oom || set->binds.oom) sets->oom = true;
    sqlbuf_free(&whole);
}

/* A run matches a metric, param or tag clause only when it has the key. */
static void emit_clause(const emitter_t *e, const node_t *c)
{
    const ident_t *id = &c->id;
    if (e->sets && id->ent != E_ATTR) {
        emit_set(e, c);
        return;
    }
    if (id->ent == E_METRIC) {
        /* Folded rows through metric_values, deferred ones through their
         * in-memory mirror (fold.h): each row is in exactly one. */
        const char *op = s_op_sql[c->op];
        sqlbuf_addf(e->out,
                    "r.rid IN (SELECT rid FROM metric_values WHERE key_id = (SELECT "
                    "key_id FROM metric_keys WHERE key = ?) AND value %s ? UNION ALL "
                    "SELECT rid FROM mem.recent WHERE key_id = (SELECT key_id FROM "
                    "metric_keys WHERE key = ?) AND value %s ?)",
                    op, op);
        for (int arm = 0; arm < 2; arm++) {
            bind_slice(e, &id->key);
            bind_number(e, c->val, true);
        }
    } else if (id->ent == E_PARAM || id->ent == E_TAG) {
        sqlbuf_addf(e->out, "r.rid IN (SELECT rid FROM %s WHERE key = ? AND ",
                    id->ent == E_PARAM ? "params" : "tags");
        bind_slice(e, &id->key);
        emit_str_cond(e, c, "value");
        put(e, ")");
    } else if (id->attr->type == A_NUM) {
        sqlbuf_addf(e->out, "%s %s ?", id->attr->col, s_op_sql[c->op]);
        bind_number(e, c->val, false);
    } else {
        emit_str_cond(e, c, id->attr->col);
    }
}

static shape_t emit_chain(const emitter_t *e, int32_t first, int32_t n, nkind_t kind,
                          bool wrap);

/* A group's member, in a chain of kind parent. AND binds tighter than OR,
 * so an AND group in an OR chain needs no parentheses; an OR group in an
 * AND chain does. Returns its shape as placed, from the shape cached in
 * the node (the same numbers emit_chain computes when it writes). */
static shape_t emit_child(const emitter_t *e, int32_t i, nkind_t parent)
{
    const node_t *c = &e->p->nodes[i];
    if (c->kind == N_CLAUSE) {
        if (e->out) emit_clause(e, c);
        return c->shape;
    }
    bool wrap = !(c->kind == N_AND && parent == N_OR);
    emitter_t inner = *e;
    inner.conj = e->conj && c->kind == N_AND;
    if (e->out) emit_chain(&inner, c->child, c->n, c->kind, wrap);
    return (shape_t){c->shape.nest + wrap, c->shape.height};
}

static int32_t nth(const parser_t *p, int32_t i, int32_t k)
{
    while (k-- > 0) i = p->nodes[i].next;
    return i;
}

/* Write n members from first joined by AND/OR: flat when short, else as
 * two parenthesized halves, so that the expression tree stays shallow. */
static shape_t emit_chain(const emitter_t *e, int32_t first, int32_t n, nkind_t kind,
                          bool wrap)
{
    const char *kw = kind == N_OR ? " OR " : " AND ";
    shape_t s = {0, 0};
    if (wrap) put(e, "(");
    if (n > FLAT_MAX) {
        int32_t h = n / 2;
        shape_t a = emit_chain(e, first, h, kind, true);
        put(e, kw);
        shape_t b = emit_chain(e, nth(e->p, first, h), n - h, kind, true);
        s = (shape_t){MAXI(a.nest, b.nest + 2), MAXI(a.height, b.height) + 1};
    } else {
        int32_t c = first;
        for (int32_t i = 0; i < n; i++, c = e->p->nodes[c].next) {
            if (i) put(e, kw);
            shape_t cs = emit_child(e, c, kind);
            s.nest = MAXI(s.nest, cs.nest + (i ? 2 : 0));
            s.height = MAXI(s.height, cs.height + (n - i));
        }
    }
    if (wrap) put(e, ")");
    s.nest += wrap;
    return s;
}

/* ---- groups ------------------------------------------------------------------ */

/* Append member c to group g (last: its last member so far). A
 * parenthesized group of the same kind is spliced in: (a OR (b OR c)) is
 * one chain of three. */
static void group_append(parser_t *p, node_t *g, int32_t *last, int32_t c)
{
    int32_t head = c, n = 1;
    if (p->nodes[c].kind == g->kind) head = p->nodes[c].child, n = p->nodes[c].n;
    if (*last < 0)
        g->child = head;
    else
        p->nodes[*last].next = head;
    *last = nth(p, head, n - 1);
    g->n += n;
}

/* Move the most deeply nested member to the front: the first operand of a
 * chain costs SQLite's parser the least stack. */
static void deepest_first(parser_t *p, node_t *g)
{
    int32_t best = g->child, best_prev = -1, prev = g->child;
    for (int32_t c = p->nodes[g->child].next; c >= 0; prev = c, c = p->nodes[c].next) {
        if (p->nodes[c].shape.nest > p->nodes[best].shape.nest)
            best = c, best_prev = prev;
    }
    if (best_prev < 0) return;
    p->nodes[best_prev].next = p->nodes[best].next;
    p->nodes[best].next = g->child;
    g->child = best;
}

static int32_t parse_group(parser_t *p, int depth, nkind_t kind);

/* factor := '(' expr ')' | clause */
static int32_t parse_factor(parser_t *p, int depth)
{
    if (cur(p)->kind != T_LP) return parse_clause(p);
    if (depth >= MAX_PAREN_DEPTH)
        return p_fail(p, cur(p)->pos, "parentheses nest deeper than %d levels",
                      MAX_PAREN_DEPTH);
    advance(p);
    int32_t g = parse_group(p, depth + 1, N_OR);
    if (g < 0) return -1;
    if (cur(p)->kind != T_RP) return p_expected(p, "AND, OR or ')'");
    advance(p);
    return g;
}

static int32_t parse_member(parser_t *p, int depth, nkind_t kind)
{
    return kind == N_OR ? parse_group(p, depth, N_AND) : parse_factor(p, depth);
}

/* expr := term (OR term)*;  term := factor (AND factor)*. A lone member is
 * returned as it is; two or more make a group node, whose shape must stay
 * within what SQLite can prepare. */
static int32_t parse_group(parser_t *p, int depth, nkind_t kind)
{
    const char *kw = kind == N_OR ? "OR" : "AND";
    uint32_t pos = cur(p)->pos;
    int32_t first = parse_member(p, depth, kind);
    if (first < 0 || !at_kw(p, kw)) return first;
    node_t g = {.kind = kind, .next = -1, .child = -1, .pos = pos};
    int32_t last = -1;
    group_append(p, &g, &last, first);
    while (accept_kw(p, kw)) {
        int32_t c = parse_member(p, depth, kind);
        if (c < 0) return -1;
        group_append(p, &g, &last, c);
    }
    deepest_first(p, &g);
    emitter_t measure = {.p = p};
    g.shape = emit_chain(&measure, g.child, g.n, kind, false);
    if (g.shape.nest + 1 > NEST_MAX || g.shape.height > HEIGHT_MAX)
        return p_fail(
            p, pos,
            "the filter is too complex: its AND/OR groups nest too deeply from "
            "here; simplify the parentheses");
    return push_node(p, &g);
}

/* ---- entry points ------------------------------------------------------------ */

static void parser_init(parser_t *p, const char *text, size_t len, const char *what,
                        const char *unit, cairn_err_t *err)
{
    memset(p, 0, sizeof *p);
    p->text = text ? text : "";
    p->len = text ? len : 0;
    p->what = what;
    p->unit = unit;
    p->err = err;
}

static void parser_free(parser_t *p)
{
    free(p->toks);
    free(p->nodes);
}

static int check_len(parser_t *p)
{
    if (p->len <= FILTER_MAX_LEN) return 0;
    return cairn_err_set(p->err, CAIRN_ST_BAD_REQUEST, NULL,
                         "%s: the text is %zu bytes long; the limit is %d bytes",
                         p->what, p->len, FILTER_MAX_LEN);
}

static void buf_truncate(sqlbuf_t *b, size_t len)
{
    if (!b->data) return;
    b->len = len;
    b->data[len] = '\0';
}

static void binds_truncate(sql_binds_t *b, size_t n)
{
    for (size_t i = n; i < b->n; i++) free(b->v[i].text);
    b->n = n;
}

static int compile_filter(parser_t *p, sqlbuf_t *out, sql_binds_t *binds,
                          filter_sets_t *sets)
{
    if (check_len(p) < 0 || lex_all(p) < 0) return -1;
    if (cur(p)->kind == T_END) {
        sqlbuf_add(out, "1");
        return 0;
    }
    int32_t root = parse_group(p, 0, N_OR);
    if (root < 0) return -1;
    if (cur(p)->kind != T_END) return p_expected(p, "AND, OR or the end of the filter");
    emitter_t e = {.p = p, .out = out, .binds = binds, .sets = sets, .conj = true};
    const node_t *r = &p->nodes[root];
    if (r->kind == N_CLAUSE)
        emit_clause(&e, r);
    else {
        e.conj = r->kind == N_AND;
        emit_chain(&e, r->child, r->n, r->kind, true);
    }
    return 0;
}

void filter_sets_init(filter_sets_t *sets)
{
    memset(sets, 0, sizeof *sets);
}

void filter_sets_free(filter_sets_t *sets)
{
    for (size_t i = 0; i < sets->n; i++) {
        sqlbuf_free(&sets->v[i].sql);
        sql_binds_free(&sets->v[i].binds);
    }
    free(sets->v);
    memset(sets, 0, sizeof *sets);
}

int filter_compile_sets(const char *text, size_t len, sqlbuf_t *out, sql_binds_t *binds,
                        filter_sets_t *sets, cairn_err_t *err)
{
    parser_t p;
    parser_init(&p, text, len, "filter", "filter", err);
    size_t out0 = out->len, binds0 = binds->n;
    int rc = compile_filter(&p, out, binds, sets);
    if (rc == 0 && (out->oom || binds->oom || (sets && sets->oom))) rc = p_oom(&p);
    if (rc < 0) {
        buf_truncate(out, out0);
        binds_truncate(binds, binds0);
    }
    parser_free(&p);
    return rc;
}

int filter_compile(const char *text, size_t len, sqlbuf_t *out, sql_binds_t *binds,
                   cairn_err_t *err)
{
    return filter_compile_sets(text, len, out, binds, NULL, err);
}

/* A metric, param or tag key is a LEFT JOIN o<index> (NULL when the run
 * lacks the key); attributes order on their runs column. NULLs last. */
static void emit_order(const parser_t *p, const ident_t *id, int index, bool desc,
                       sqlbuf_t *joins, sql_binds_t *join_binds, sqlbuf_t *out)
{
    const char *dir = desc ? "DESC" : "ASC";
    if (id->ent == E_ATTR) {
        const attr_t *a = id->attr;
        if (a->nullable)
            sqlbuf_addf(out, "%s IS NULL, %s %s", a->col, a->col, dir);
        else
            sqlbuf_addf(out, "%s %s", a->col, dir);
        return;
    }
    if (id->ent == E_METRIC)
        sqlbuf_addf(joins,
                    " LEFT JOIN latest_metrics o%d ON o%d.rid = r.rid AND o%d.key_id = "
                    "(SELECT key_id FROM metric_keys WHERE key = ?)",
                    index, index, index);
    else
        sqlbuf_addf(joins, " LEFT JOIN %s o%d ON o%d.rid = r.rid AND o%d.key = ?",
                    id->ent == E_PARAM ? "params" : "tags", index, index, index);
    emitter_t je = {.p = p, .out = joins, .binds = join_binds};
    bind_slice(&je, &id->key);
    sqlbuf_addf(out, "o%d.value IS NULL, o%d.value %s", index, index, dir);
}

/* order := ident [ASC | DESC] */
static int compile_order(parser_t *p, int index, sqlbuf_t *joins,
                         sql_binds_t *join_binds, sqlbuf_t *out)
{
    if (index < 0)
        return cairn_err_set(p->err, CAIRN_ST_INTERNAL, NULL,
                             "order_by: negative index");
    if (check_len(p) < 0 || lex_all(p) < 0) return -1;
    ident_t id;
    if (parse_ident(p, &id) < 0) return -1;
    bool desc = false;
    if (!accept_kw(p, "ASC")) desc = accept_kw(p, "DESC");
    if (cur(p)->kind != T_END)
        return p_expected(p, "ASC, DESC or the end of the clause");
    emit_order(p, &id, index, desc, joins, join_binds, out);
    return 0;
}

int filter_compile_order(const char *text, size_t len, int index, sqlbuf_t *joins,
                         sql_binds_t *join_binds, sqlbuf_t *out, cairn_err_t *err)
{
    parser_t p;
    parser_init(&p, text, len, "order_by", "clause", err);
    size_t joins0 = joins->len, binds0 = join_binds->n, out0 = out->len;
    int rc = compile_order(&p, index, joins, join_binds, out);
    if (rc == 0 && (joins->oom || join_binds->oom || out->oom)) rc = p_oom(&p);
    if (rc < 0) {
        buf_truncate(joins, joins0);
        binds_truncate(join_binds, binds0);
        buf_truncate(out, out0);
    }
    parser_free(&p);
    return rc;
}
