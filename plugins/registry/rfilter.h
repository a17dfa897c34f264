/* MLflow's model registry filter, compiled to an SQL condition.
 *
 *   filter := clause (AND clause)*
 *   clause := ident op 'value' | ident [NOT] IN ('value', ...)
 *   op     := = | != | LIKE | ILIKE
 *   ident  := name | tags.KEY (KEY bare, or in `...` or "...")
 *             and, over versions only: run_id | source_path | version_number
 *
 * Values are quoted with ' or " and cannot hold their own quote (use the
 * other one); a value is a slice of the text, bound, never pasted into the
 * SQL. Over models the SQL names the table `m`; over versions `v` (joined
 * to its model `m`). A bad filter is a 400 naming the position. */
#ifndef CAIRN_REGISTRY_RFILTER_H
#define CAIRN_REGISTRY_RFILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "cairn/err.h"
#include "cairn/msg.h"

#define RFILTER_MAX_LEN 4096
#define RFILTER_MAX_CLAUSES 20
#define RFILTER_MAX_BINDS 128
#define RFILTER_SQL_MAX 16384

typedef enum { RFILTER_MODELS, RFILTER_VERSIONS } rfilter_target_t;

typedef struct rfilter {
    char sql[RFILTER_SQL_MAX]; /* "1" for an empty filter */
    cairn_str_t binds[RFILTER_MAX_BINDS];
    bool bind_int[RFILTER_MAX_BINDS]; /* a version number: bind as an integer */
    int nbinds;
} rfilter_t;

int rfilter_compile(const char *text, size_t len, rfilter_target_t target,
                    rfilter_t *out, cairn_err_t *err);

#endif
