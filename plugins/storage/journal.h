/* plugins/storage/journal.h — the metric journal: an append-only intent log
 * of acknowledged metric points that are not yet in SQLite.
 *
 * log_metric (and a small metrics-only log_batch) appends one record and
 * answers 200; the points reach SQLite later, many calls in one transaction
 * that also records the highest sequence number applied, after which the
 * file is emptied. A record is written with one write() on an O_APPEND
 * descriptor (and, with durability=power, fdatasync'ed before the reply:
 * records written together share one fdatasync), so a 200 survives a
 * crash of the process (and a power loss with fdatasync).
 *
 * The file, `<database>-mj`, is a sequence of records, little-endian:
 *
 *   u32 magic "CMJ1"  u32 payload bytes  u64 seq  u64 tag
 *   payload: i64 rid  u32 n (1 .. JOURNAL_MAX_POINTS)
 *            n × {f64 value, i64 timestamp, i64 step, u8 key bytes, key}
 *   u64 FNV-1a-64 of everything before it (header and payload)
 *
 * seq grows by one per record, across truncations and restarts (the next is
 * one past the larger of the last applied and the last in the file); tag
 * names the database the records belong to (a random number kept in the
 * database), so that a journal left beside another or a restored database
 * is never applied to it. A reader stops at the first record that is
 * short, fails its checksum or is malformed, or whose seq does not grow
 * (or passes INT64_MAX, the database's largest integer): a
 * torn write at the end, or garbage, is cut off and never read as points.
 * A record holds all the points of one request, so a batch is replayed
 * whole or not at all.
 */
#ifndef STORAGE_JOURNAL_H
#define STORAGE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#define JOURNAL_MAGIC 0x314a4d43u /* "CMJ1" as little-endian bytes */
#define JOURNAL_KEY_MAX 250       /* = LIMIT_KEY */
#define JOURNAL_MAX_POINTS 64     /* points in one record */
#define JOURNAL_HEADER_BYTES 24
#define JOURNAL_SUM_BYTES 8
#define JOURNAL_POINT_FIXED 25 /* value, timestamp, step, key length */
#define JOURNAL_MAX_PAYLOAD \
    (12 + JOURNAL_MAX_POINTS * (JOURNAL_POINT_FIXED + JOURNAL_KEY_MAX))
#define JOURNAL_MAX_RECORD \
    (JOURNAL_HEADER_BYTES + JOURNAL_MAX_PAYLOAD + JOURNAL_SUM_BYTES)

/* One point of a record. key is borrowed (from the caller when appending,
 * from the decoded bytes when reading). */
typedef struct journal_point {
    double value;
    int64_t timestamp;
    int64_t step;
    const char *key;
    size_t key_len;
} journal_point_t;

/* One decoded record: the points of one request to one run. */
typedef struct journal_rec {
    uint64_t seq;
    uint64_t tag;
    int64_t rid;
    size_t n;
    journal_point_t pts[JOURNAL_MAX_POINTS];
} journal_rec_t;

/* The bytes a record of these points takes. */
size_t journal_record_size(const journal_point_t *pts, size_t n);
/* Encode a record into out (cap bytes); returns its size, or 0 when n is
 * not 1 .. JOURNAL_MAX_POINTS, a key is empty or longer than
 * JOURNAL_KEY_MAX, or cap is too small. */
size_t journal_encode(uint64_t seq, uint64_t tag, int64_t rid,
                      const journal_point_t *pts, size_t n, void *out, size_t cap);
/* Decode the record at the start of buf: > 0 its size (rec filled, keys
 * pointing into buf); 0 when buf ends inside it (a torn tail when nothing
 * follows); -1 when it is no record (magic, length, checksum, payload). */
long journal_decode(const void *buf, size_t len, journal_rec_t *rec);

typedef struct journal journal_t;

/* Open (creating) the journal file at path and lock it: a second holder
 * (another tracking instance on the same database) gets NULL and a
 * sentence saying so. tag: the database's; sync: fdatasync every append
 * (durability=power). Appends get seq 1 and up until journal_replay or
 * journal_set_next_seq says otherwise. */
journal_t *journal_open(const char *path, uint64_t tag, bool sync, cairn_err_t *err);
/* Close and unlock; safe twice. */
void journal_destroy(journal_t **self_p);

typedef int(journal_rec_fn)(void *arg, const journal_rec_t *rec, cairn_err_t *err);

typedef struct journal_replay_info {
    size_t records;      /* records of this database read, applied or not */
    size_t skipped;      /* of those, with seq <= after_seq */
    uint64_t last_seq;   /* the highest seq read (0: none) */
    uint64_t cut_bytes;  /* bytes past the last good record, cut off */
    bool foreign;        /* records of another database: the file was moved */
    char moved_to[4096]; /* ... here (path + ".orphaned") */
} journal_replay_info_t;

/* Read the file from its start and call fn for each good record of this
 * database whose seq is above after_seq, in order. Reading stops at the
 * first bad record, and the file is cut there; a record of another
 * database stops it too, and then the whole file is moved aside to
 * path + ".orphaned" and an empty one takes its place. Afterwards appends
 * continue at one past max(after_seq, the last seq read). Returns 0, or -1
 * on an I/O error or when fn fails (its error is returned). */
int journal_replay(journal_t *j, uint64_t after_seq, journal_rec_fn *fn, void *arg,
                   journal_replay_info_t *info, cairn_err_t *err);

/* Write one record of n points (1 .. JOURNAL_MAX_POINTS) for run rid with
 * one write() and set *seq to its sequence number; on failure nothing of
 * it stays in the file. With sync (durability=power) the record is not
 * durable until journal_sync: many writes may share one fdatasync (group
 * commit), and nobody may be told "stored" before it. */
int journal_write(journal_t *j, int64_t rid, const journal_point_t *pts, size_t n,
                  uint64_t *seq, cairn_err_t *err);
/* fdatasync what was written since the last sync (none without sync, or
 * when nothing waits). When that fails, every record written since is cut
 * off the file again: their callers must be told they failed. */
int journal_sync(journal_t *j, cairn_err_t *err);
/* Records are written but not yet synced. */
bool journal_unsynced(const journal_t *j);
/* journal_write, then journal_sync. */
int journal_append(journal_t *j, int64_t rid, const journal_point_t *pts, size_t n,
                   uint64_t *seq, cairn_err_t *err);

/* Empty the file, once everything in it is applied. */
int journal_reset(journal_t *j, cairn_err_t *err);

uint64_t journal_next_seq(const journal_t *j);
void journal_set_next_seq(journal_t *j, uint64_t next);
/* Bytes in the file, as this journal wrote or cut them. */
uint64_t journal_size(const journal_t *j);
const char *journal_path(const journal_t *j);

#endif
