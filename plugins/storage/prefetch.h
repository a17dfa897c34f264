/* plugins/storage/prefetch.h — the next range of a download, read ahead.
 *
 * A download asks get_artifact for one chunk after another. Blobs are
 * written with O_DIRECT, so they are not in the page cache: each chunk's
 * read waits on the device, and the plugin's loop then hashes the chunk
 * (artifacts.c checks every byte it serves) with the device idle. Here a
 * thread of its own reads the chunk that follows each one served, while
 * the loop hashes and sends: the device and the CPU work at once.
 *
 * PREFETCH_SLOTS downloads are read ahead at a time (each slot holds one
 * chunk, allocated when first used); a read ahead that is never asked for
 * is dropped when its slot is wanted for another. The bytes are checked
 * as any read is (the caller hashes what it takes): a prefetch only saves
 * the wait. */
#ifndef CAIRN_STORAGE_PREFETCH_H
#define CAIRN_STORAGE_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#define PREFETCH_SLOTS 4

typedef struct prefetch prefetch_t;

/* max: the largest range asked for (a slot's buffer). */
prefetch_t *prefetch_new(size_t max, cairn_err_t *err);
void prefetch_destroy(prefetch_t **self_p);

/* Read [off, off + len) of fd (duplicated: the caller may close its own)
 * ahead for key (the download's: any pointer naming it). Best effort: no
 * slot, no memory or no descriptor is no read ahead. */
void prefetch_start(prefetch_t *p, const void *key, int fd, uint64_t off, size_t len);

/* When key's read ahead is [off, off + len): wait for it, copy its bytes
 * into dst and return true (the slot is free again). false (dst
 * untouched) when there is none, another range, or the read failed. */
bool prefetch_take(prefetch_t *p, const void *key, uint64_t off, size_t len, void *dst);

#endif
