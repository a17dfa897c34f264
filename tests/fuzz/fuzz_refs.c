/* libFuzzer target for the registry's reference parser
 * (plugins/registry/refs.c).
 *
 * An accepted reference must name a kind, a name of 1..256 bytes without
 * ':' inside the input, and exactly one of a version > 0, an alias (models
 * only) or latest; a refused one must be a 400 whose sentence says what a
 * reference is. Anything else aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "refs.h"

static bool s_inside(cairn_str_t s, const uint8_t *data, size_t size)
{
    const char *lo = (const char *)data;
    return s.ptr >= lo && s.ptr + s.len <= lo + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reg_ref_t ref;
    cairn_err_t err = {0};
    cairn_str_t in = {(const char *)data, size};
    if (reg_ref_parse(in, &ref, &err) != 0) {
        if (err.st != 400 || !strstr(err.msg, "is not a reference")) abort();
        return 0;
    }
    if (ref.kind != REG_REF_MODEL && ref.kind != REG_REF_DATA &&
        ref.kind != REG_REF_ENV)
        abort();
    if (!ref.name.len || ref.name.len > REG_NAME_MAX ||
        !s_inside(ref.name, data, size) || memchr(ref.name.ptr, ':', ref.name.len))
        abort();
    int forms = (ref.version > 0) + (ref.alias.len > 0) + ref.latest;
    if (forms != 1 || ref.version < 0) abort();
    if (ref.alias.len &&
        (ref.kind != REG_REF_MODEL || !s_inside(ref.alias, data, size) ||
         ref.alias.len > REG_ALIAS_MAX))
        abort();
    return 0;
}
