/* plugins/storage/side.h — a second, read-only connection to the tracking
 * database, on a thread of its own, so that one search can read in two
 * places at once: while the plugin's thread fills one rid set or packs one
 * part of a page, the side does another (search.c, runpage.c). On a
 * 2-CPU machine a 1000-run page at 1M runs spends about two thirds of its
 * time in such independent B-tree scans.
 *
 * What the side may read: committed tables only. The plugin's thread
 * commits its write group before any search (group.c), and its in-memory
 * metric index (`mem.recent`, fold.h) is on its own connection: a clause
 * that reads it stays there. Both connections see the same committed state
 * while a search runs, since only the plugin's thread writes runs.
 *
 * One job at a time: side_run hands fn over, side_wait returns its result.
 * The rid sets are shared (ridsets.h): a fill on each connection writes
 * a different set's words. */
#ifndef CAIRN_STORAGE_SIDE_H
#define CAIRN_STORAGE_SIDE_H

#include <sqlite3.h>

#include "cairn/err.h"
#include "ridsets.h"

typedef struct side side_t;

/* Open path read-only with rs's functions, and start the thread. */
side_t *side_open(const char *path, ridsets_t *rs, cairn_err_t *err);
void side_close(side_t **self_p);

typedef int(side_fn)(sqlite3 *h, void *arg, cairn_err_t *err);
/* Run fn(h, arg) on the side's thread; side_wait must follow. */
void side_run(side_t *s, side_fn *fn, void *arg);
/* fn's result (0, or -1 with its err). */
int side_wait(side_t *s, cairn_err_t *err);

#endif
