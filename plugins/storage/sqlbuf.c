/* Building SQL text and its bound values (see sqlbuf.h). Allocation
 * failure is sticky (oom) and checked once by the caller. */
#define _GNU_SOURCE
#include "sqlbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sqlbuf_init(sqlbuf_t *b)
{
    memset(b, 0, sizeof *b);
}

void sqlbuf_free(sqlbuf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool s_reserve(sqlbuf_t *b, size_t extra)
{
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void sqlbuf_addn(sqlbuf_t *b, const char *s, size_t n)
{
    if (!s_reserve(b, n)) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sqlbuf_add(sqlbuf_t *b, const char *s)
{
    sqlbuf_addn(b, s, strlen(s));
}

void sqlbuf_addf(sqlbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    sqlbuf_addn(b, s, (size_t)n);
    free(s);
}

void sql_binds_init(sql_binds_t *b)
{
    memset(b, 0, sizeof *b);
}

void sql_binds_free(sql_binds_t *b)
{
    for (size_t i = 0; i < b->n; i++) free(b->v[i].text);
    free(b->v);
    memset(b, 0, sizeof *b);
}

static sql_bind_t *s_push(sql_binds_t *b)
{
    if (b->oom) return NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        sql_bind_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) {
            b->oom = true;
            return NULL;
        }
        b->v = v;
        b->cap = cap;
    }
    sql_bind_t *x = &b->v[b->n++];
    memset(x, 0, sizeof *x);
    return x;
}

void sql_binds_text(sql_binds_t *b, const char *s, size_t n)
{
    sql_bind_t *x = s_push(b);
    if (!x) return;
    x->kind = BIND_TEXT;
    x->text = malloc(n + 1);
    if (!x->text) {
        b->n--;
        b->oom = true;
        return;
    }
    memcpy(x->text, s, n);
    x->text[n] = '\0';
}

void sql_binds_int(sql_binds_t *b, int64_t i)
{
    sql_bind_t *x = s_push(b);
    if (!x) return;
    x->kind = BIND_INT;
    x->i = i;
}

void sql_binds_real(sql_binds_t *b, double d)
{
    sql_bind_t *x = s_push(b);
    if (!x) return;
    x->kind = BIND_REAL;
    x->d = d;
}

int sql_binds_apply(const sql_binds_t *b, sqlite3_stmt *stmt, int first)
{
    int idx = first;
    for (size_t i = 0; i < b->n; i++, idx++) {
        const sql_bind_t *x = &b->v[i];
        int rc = x->kind == BIND_TEXT
                     ? sqlite3_bind_text(stmt, idx, x->text, -1, SQLITE_TRANSIENT)
                 : x->kind == BIND_INT ? sqlite3_bind_int64(stmt, idx, x->i)
                                       : sqlite3_bind_double(stmt, idx, x->d);
        if (rc != SQLITE_OK) return -1;
    }
    return idx;
}
