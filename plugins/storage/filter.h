/* plugins/storage/filter.h — MLflow's search filter and order_by, plus OR
 * and parentheses, compiled to SQL over the tracking schema (schema.sql in
 * db.c). A parse error is a 400 whose sentence names the 1-based character
 * position of the problem.
 *
 * Grammar (case-insensitive keywords):
 *   expr    := term (OR term)*
 *   term    := factor (AND factor)*
 *   factor  := '(' expr ')' | clause
 *   clause  := ident op value | ident [NOT] IN '(' value (',' value)* ')'
 *   ident   := (metrics|metric|params|param|tags|tag|attributes|attribute|attr|run)
 *              '.' name   |  bare attribute name (run_id, run_name, status, ...)
 *   name    := word (with dots: tags.mlflow.runName) | "quoted" | `quoted`
 *   op      := = | != | <> | > | >= | < | <= | LIKE | ILIKE | NOT LIKE | NOT ILIKE
 *   value   := 'string' | "string" | number
 */
#ifndef STORAGE_FILTER_H
#define STORAGE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"
#include "sqlbuf.h"

/* Compile a filter into an SQL boolean expression over the runs table
 * aliased `r`, appending to out and pushing bound values to binds in
 * placeholder order. An empty or all-blank filter appends "1". */
int filter_compile(const char *text, size_t len, sqlbuf_t *out, sql_binds_t *binds,
                   cairn_err_t *err);

/* The same, but each metric, param or tag clause becomes a rid set: the
 * expression tests cairn_rid_in(K, r.rid) (db.h) and sets->v[K] holds the
 * query (SELECT rid ...) and binds of the runs matching the clause. The
 * caller fills set K's bitmap from that query before running the
 * expression: a bitmap built by one index scan is several times cheaper
 * than the ephemeral index SQLite builds for r.rid IN (SELECT ...) (60 ms
 * for 100,000 rids), and probing it costs a bit test. */
typedef struct filter_set {
    sqlbuf_t sql;
    sql_binds_t binds;
    bool required; /* a conjunct of the whole filter: every match is in it */
} filter_set_t;
typedef struct filter_sets {
    filter_set_t *v;
    size_t n, cap;
    bool oom;
} filter_sets_t;
void filter_sets_init(filter_sets_t *sets);
void filter_sets_free(filter_sets_t *sets);
int filter_compile_sets(const char *text, size_t len, sqlbuf_t *out, sql_binds_t *binds,
                        filter_sets_t *sets, cairn_err_t *err);

/* Compile one order_by clause ("metrics.rmse DESC", "params.lr",
 * "attributes.start_time ASC", "start_time") into:
 *   joins: LEFT JOINs it needs (may be appended to), using the alias
 *          `o<index>`;
 *   out:   the ORDER BY term, NULLs last, e.g. "o0.value IS NULL, o0.value DESC".
 * index distinguishes several order_by clauses. */
int filter_compile_order(const char *text, size_t len, int index, sqlbuf_t *joins,
                         sql_binds_t *join_binds, sqlbuf_t *out, cairn_err_t *err);

#endif
