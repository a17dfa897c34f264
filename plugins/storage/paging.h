/* plugins/storage/paging.h — max_results and page_token, the same way for
 * every list verb. A token is opaque to clients ("c1:" and an offset), and
 * pages are stable because every listing orders by a unique tiebreaker. */
#ifndef STORAGE_PAGING_H
#define STORAGE_PAGING_H

#include <stdint.h>

#include "cairn/msg.h"

typedef struct page {
    uint64_t limit, offset;
} page_t;

/* Read max_results (default dflt, at most max: more is a 400 naming the
 * limit) and page_token (a malformed one is a 400). */
int page_parse(const msgpack_object *body, uint64_t dflt, uint64_t max, page_t *out,
               cairn_err_t *err);
/* Pack "next_page_token" and the token for the page after this one. */
void page_pack_next(msgpack_packer *pk, const page_t *p);

#endif
