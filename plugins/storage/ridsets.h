/* Rid sets: bitmaps of run ids that a search fills from its filter's
 * clauses (filter.h) and then reads three ways, from SQL:
 *
 *   cairn_rid_fill(K, rid)  an aggregate putting every rid it sees in set K
 *   cairn_rid_in(K, rid)    true when rid is in set K
 *   cairn_rids(K)           a table of set K's rids, ascending (column rid)
 *
 * A bitmap built by one index scan is several times cheaper than the
 * ephemeral index SQLite builds for r.rid IN (SELECT ...); probing it costs
 * a bit test; and when the sets a filter requires leave few runs, reading
 * those runs by rid beats walking every run in the page's order. The sets
 * stay until the next reset. One per connection, used by one thread. */
#ifndef CAIRN_STORAGE_RIDSETS_H
#define CAIRN_STORAGE_RIDSETS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

typedef struct ridsets ridsets_t;

ridsets_t *ridsets_new(void);
void ridsets_free(ridsets_t **self_p);

/* Register the two functions and the table on h; they use self until h
 * is closed. */
int ridsets_register(ridsets_t *self, sqlite3 *h, cairn_err_t *err);

/* nsets empty sets for rids 0 to max_rid (none when max_rid < 0). */
int ridsets_reset(ridsets_t *self, size_t nsets, int64_t max_rid, cairn_err_t *err);

/* Set dst becomes the intersection of sets srcs[0, n); returns how many
 * rids it holds. */
uint64_t ridsets_and(ridsets_t *self, size_t dst, const size_t *srcs, size_t n);

/* Whether to read ncand candidates by rid and sort them rather than walk
 * the runs (rids 0 to nrids - 1) in a page's order until want of them
 * match, which steps about want * nrids / ncand runs. */
bool ridsets_list_wins(uint64_t ncand, uint64_t nrids, double want);

#endif
