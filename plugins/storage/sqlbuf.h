/* plugins/storage/sqlbuf.h — building SQL text and its bound values. */
#ifndef STORAGE_SQLBUF_H
#define STORAGE_SQLBUF_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sqlbuf {
    char *data;
    size_t len, cap;
    bool oom;
} sqlbuf_t;

void sqlbuf_init(sqlbuf_t *b);
void sqlbuf_free(sqlbuf_t *b);
void sqlbuf_add(sqlbuf_t *b, const char *s);
void sqlbuf_addn(sqlbuf_t *b, const char *s, size_t n);
void sqlbuf_addf(sqlbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

typedef enum { BIND_TEXT, BIND_INT, BIND_REAL } bind_kind_t;

typedef struct sql_bind {
    bind_kind_t kind;
    char *text; /* owned */
    int64_t i;
    double d;
} sql_bind_t;

typedef struct sql_binds {
    sql_bind_t *v;
    size_t n, cap;
    bool oom;
} sql_binds_t;

void sql_binds_init(sql_binds_t *b);
void sql_binds_free(sql_binds_t *b);
void sql_binds_text(sql_binds_t *b, const char *s, size_t n);
void sql_binds_int(sql_binds_t *b, int64_t i);
void sql_binds_real(sql_binds_t *b, double d);
/* Bind all values to stmt starting at parameter index first (1-based);
 * returns the next free index, or -1 on a SQLite error. */
int sql_binds_apply(const sql_binds_t *b, sqlite3_stmt *stmt, int first);

#endif
