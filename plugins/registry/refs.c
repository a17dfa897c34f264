/* References: how every client and every later plugin (jobs, endpoints)
 * names what the registry holds, parsed in one place.
 *
 *   model versions   NAME:VERSION  NAME@ALIAS  model:NAME:VERSION
 *                    model:NAME@ALIAS  models:/NAME/VERSION  models:/NAME@ALIAS
 *   data assets      data:NAME:VERSION  data:NAME@latest  data:NAME
 *   environments     env:NAME:VERSION  env:NAME@latest  env:NAME
 *
 * Names hold no ':' and no '@' (reg_field_name), so the split is never
 * ambiguous. "latest" is the highest version not archived (data, env) or
 * the highest version (models, where it is also MLflow's alias-free
 * meaning of models:/NAME/latest). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "refs.h"

static bool s_prefix(cairn_str_t *s, const char *pre)
{
    size_t n = strlen(pre);
    if (s->len < n || memcmp(s->ptr, pre, n) != 0) return false;
    s->ptr += n;
    s->len -= n;
    return true;
}

static bool s_number(cairn_str_t s, int64_t *out)
{
    if (!s.len || s.len > 18 || s.ptr[0] == '0') return false;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = v;
    return true;
}

static int s_bad(cairn_str_t ref, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "'%.*s' is not a reference: NAME:VERSION or NAME@ALIAS (a "
                         "model version), data:NAME:VERSION, data:NAME@latest, "
                         "env:NAME:VERSION or env:NAME@latest",
                         (int)(ref.len > 200 ? 200 : ref.len), ref.ptr);
}

int reg_ref_parse(cairn_str_t ref, reg_ref_t *out, cairn_err_t *err)
{
    cairn_str_t s = ref;
    *out = (reg_ref_t){.kind = REG_REF_MODEL};
    char sep_version = ':';
    if (s_prefix(&s, "models:/"))
        sep_version = '/';
    else if (s_prefix(&s, "model:"))
        ;
    else if (s_prefix(&s, "data:"))
        out->kind = REG_REF_DATA;
    else if (s_prefix(&s, "env:"))
        out->kind = REG_REF_ENV;
    if (!s.len || s.len > REG_NAME_MAX + 32 || memchr(s.ptr, '\0', s.len))
        return s_bad(ref, err);
    const char *at = memchr(s.ptr, '@', s.len);
    const char *sep = at ? at : memchr(s.ptr, sep_version, s.len);
    out->name = (cairn_str_t){s.ptr, sep ? (size_t)(sep - s.ptr) : s.len};
    if (!out->name.len || out->name.len > REG_NAME_MAX ||
        memchr(out->name.ptr, ':', out->name.len))
        return s_bad(ref, err);
    cairn_str_t tail = sep ? (cairn_str_t){sep + 1, (size_t)(s.ptr + s.len - sep - 1)}
                           : (cairn_str_t){"", 0};
    if (!sep) { /* data:NAME, env:NAME: the latest */
        if (out->kind == REG_REF_MODEL) return s_bad(ref, err);
        out->latest = true;
        return 0;
    }
    if (cairn_str_eq(tail, "latest")) {
        out->latest = true;
        return 0;
    }
    if (at) {
        if (out->kind != REG_REF_MODEL || !tail.len || tail.len > REG_ALIAS_MAX ||
            memchr(tail.ptr, '@', tail.len) || memchr(tail.ptr, ':', tail.len))
            return s_bad(ref, err);
        out->alias = tail;
        return 0;
    }
    return s_number(tail, &out->version) ? 0 : s_bad(ref, err);
}
