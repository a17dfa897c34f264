/* plugins/audit/chain.h — the audit trail's hash chain.
 *
 * Record n's hash is BLAKE2b-256(hash of record n-1 ‖ its canonical bytes);
 * record 1 chains from 32 zero bytes. The canonical bytes are each field in
 * a fixed order, every one length-prefixed (8 bytes, big-endian), so that no
 * two different records share them. Shared by the plugin and by
 * `cairn audit verify`, which checks a database file offline.
 */
#ifndef AUDIT_CHAIN_H
#define AUDIT_CHAIN_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_HASH_BYTES 32

typedef struct audit_rec {
    int64_t seq, time, status;
    const char *principal, *ws, *svc, *verb, *object, *cid, *digest;
} audit_rec_t;

/* The hash of r, chained from prev. */
void audit_chain_hash(const unsigned char prev[AUDIT_HASH_BYTES], const audit_rec_t *r,
                      unsigned char out[AUDIT_HASH_BYTES]);

/* Walk every record of db in seq order: *checked counts them, *first_bad
 * gets the seq of the first whose hash (or sequence) does not follow (0 when
 * all do). 0, or -1 with a message in why when the database cannot be read. */
int audit_chain_verify(sqlite3 *db, int64_t *checked, int64_t *first_bad, char *why,
                       size_t why_len);

/* The schema (also what `cairn audit verify` expects of a file). */
#define AUDIT_SCHEMA                                                                                                                                    \
    "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, time INTEGER NOT "                                                                    \
    "NULL, principal TEXT NOT NULL, ws TEXT NOT NULL, svc TEXT NOT NULL, verb TEXT "                                                                    \
    "NOT NULL, object TEXT NOT NULL, status INTEGER NOT NULL, cid TEXT NOT NULL, "                                                                      \
    "digest TEXT NOT NULL, hash BLOB NOT NULL);"                                                                                                        \
    "CREATE INDEX IF NOT EXISTS records_by_principal ON records (principal, seq);" /* times never go back along seq (audit.c), so a time range is a seq \
                                                                                    * range: an index on time would only slow every append */           \
    "DROP INDEX IF EXISTS records_by_time;"

#endif
