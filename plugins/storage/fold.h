/* plugins/storage/fold.h — the metric value index, folded in behind the
 * writes.
 *
 * Search by a metric's value (a filter clause, an order_by) needs an index
 * on (key, value). Its entries land at random places, so every run's 20
 * metrics used to dirty 20 pages of it in each commit: 55% of a populate's
 * CPU and 85% of the bytes it wrote at 100,000 runs. Instead, the index is
 * a table of its own, metric_values (key_id, value, rid), holding the rows
 * up to their key's folded_upto (metric_keys); a newer row is kept in
 * latest_metrics and mirrored in an in-memory table, mem.recent, indexed
 * the same way, and search reads both. The tick later folds a key's rows
 * into metric_values in value order, thousands a transaction, each page of
 * it written once.
 *
 * A row of (key, rid) is deferred when rid is past the key's folded_upto,
 * which only grows; mem.recent holds exactly the deferred rows and is
 * rebuilt from latest_metrics when the database is opened (it is memory
 * only: a crash loses nothing, the rows themselves are committed). NaN
 * values (NULL in SQLite) match no comparison and are left out of
 * metric_values. */
#ifndef STORAGE_FOLD_H
#define STORAGE_FOLD_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>

#include "cairn/plugin.h"

typedef struct fold fold_t;

/* Attach the in-memory database `mem` and create mem.recent on h. Every
 * connection that runs the plugin's search SQL needs it (empty, unless
 * fold_start filled it). */
int fold_attach(sqlite3 *h, cairn_err_t *err);

/* Start deferring on h (the tracking instance): learn each key's
 * folded_upto and load the unfolded rows into mem.recent. Without it,
 * every row is written folded. */
int fold_start(sqlite3 *h, fold_t **out, cairn_err_t *err);
void fold_free(fold_t **self_p);

/* Whether a row of (key_id, rid) is deferred. false when f is NULL. */
bool fold_defers(const fold_t *f, int64_t key_id, int64_t rid);
/* A key's folded_upto as read from metric_keys (a key new to this process). */
int fold_learn(fold_t *f, int64_t key_id, int64_t upto, cairn_err_t *err);
/* A row went into mem.recent. */
void fold_noted(fold_t *f);

/* Fold from the tick, outside any transaction. idle: nothing was written
 * since the last tick, so fold everything (within a time budget); else
 * fold one key once mem.recent holds many rows. Returns how many rows it
 * folded, or -1 with err. */
long fold_tick(fold_t *f, sqlite3 *h, bool idle, cairn_err_t *err);

#endif
