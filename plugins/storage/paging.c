/* Paging (see paging.h). */
#include "paging.h"

#include <stdio.h>
#include <string.h>

int page_parse(const msgpack_object *body, uint64_t dflt, uint64_t max, page_t *out,
               cairn_err_t *err)
{
    out->limit = dflt;
    out->offset = 0;
    if (cairn_field_uint(body, "max_results", false, &out->limit, err) < 0) return -1;
    if (out->limit == 0 || out->limit > max)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "max_results must be between 1 and %llu, not %llu",
                             (unsigned long long)max, (unsigned long long)out->limit);
    cairn_str_t tok = {NULL, 0};
    if (cairn_field_str(body, "page_token", false, 64, &tok, err) < 0) return -1;
    if (!tok.ptr || tok.len == 0) return 0;
    uint64_t off = 0;
    if (tok.len < 4 || memcmp(tok.ptr, "c1:", 3) != 0) goto bad;
    for (size_t i = 3; i < tok.len; i++) {
        if (tok.ptr[i] < '0' || tok.ptr[i] > '9' || off > UINT64_MAX / 10 - 10)
            goto bad;
        off = off * 10 + (uint64_t)(tok.ptr[i] - '0');
    }
    out->offset = off;
    return 0;
bad:
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "page_token is not one this server gave out: pass back "
                         "next_page_token unchanged");
}

void page_pack_next(msgpack_packer *pk, const page_t *p)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "c1:%llu",
                     (unsigned long long)(p->offset + p->limit));
    cairn_pack_cstr(pk, "next_page_token");
    cairn_pack_strn(pk, buf, (size_t)n);
}
