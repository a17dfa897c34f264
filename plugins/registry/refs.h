/* References (refs.c): how every client and every later plugin (jobs,
 * endpoints) names what the registry holds, parsed in one place; pure, so
 * that the fuzz target fuzz_refs drives it alone.
 *
 *   model versions   NAME:VERSION  NAME@ALIAS  model:NAME:VERSION
 *                    model:NAME@ALIAS  models:/NAME/VERSION  models:/NAME@ALIAS
 *   data assets      data:NAME:VERSION  data:NAME@latest  data:NAME
 *   environments     env:NAME:VERSION  env:NAME@latest  env:NAME */
#ifndef CAIRN_REGISTRY_REFS_H
#define CAIRN_REGISTRY_REFS_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/err.h"
#include "cairn/msg.h"

#define REG_NAME_MAX 256 /* a name, bytes */
#define REG_ALIAS_MAX 64 /* an alias */

typedef enum { REG_REF_MODEL, REG_REF_DATA, REG_REF_ENV } reg_ref_kind_t;
typedef struct reg_ref {
    reg_ref_kind_t kind;
    cairn_str_t name;
    int64_t version;   /* > 0, or 0 with alias or latest */
    cairn_str_t alias; /* models only */
    bool latest;
} reg_ref_t;

/* Parse a reference (slices into ref); 400 naming the forms. */
int reg_ref_parse(cairn_str_t ref, reg_ref_t *out, cairn_err_t *err);

#endif
