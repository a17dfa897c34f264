/* The audit trail's hash chain (see chain.h). */
#include "chain.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void s_u64(crypto_generichash_state *st, uint64_t v)
{
    unsigned char b[8];
    for (int i = 7; i >= 0; i--, v >>= 8) b[i] = (unsigned char)(v & 0xff);
    crypto_generichash_update(st, b, sizeof b);
}

static void s_str(crypto_generichash_state *st, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    s_u64(st, n);
    if (n) crypto_generichash_update(st, (const unsigned char *)s, n);
}

void audit_chain_hash(const unsigned char prev[AUDIT_HASH_BYTES], const audit_rec_t *r,
                      unsigned char out[AUDIT_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_BYTES);
    crypto_generichash_update(&st, prev, AUDIT_HASH_BYTES);
    s_u64(&st, (uint64_t)r->seq);
    s_u64(&st, (uint64_t)r->time);
    s_str(&st, r->principal);
    s_str(&st, r->ws);
    s_str(&st, r->svc);
    s_str(&st, r->verb);
    s_str(&st, r->object);
    s_u64(&st, (uint64_t)r->status);
    s_str(&st, r->cid);
    s_str(&st, r->digest);
    crypto_generichash_final(&st, out, AUDIT_HASH_BYTES);
}

int audit_chain_verify(sqlite3 *db, int64_t *checked, int64_t *first_bad, char *why,
                       size_t why_len)
{
    sqlite3_stmt *st = NULL;
    *checked = *first_bad = 0;
    if (sqlite3_prepare_v2(
            db,
            "SELECT seq, time, principal, ws, svc, verb, object, status, "
            "cid, digest, hash FROM records ORDER BY seq",
            -1, &st, NULL) != SQLITE_OK) {
        snprintf(why, why_len, "cannot read the records: %s", sqlite3_errmsg(db));
        return -1;
    }
    unsigned char prev[AUDIT_HASH_BYTES] = {0}, h[AUDIT_HASH_BYTES];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        audit_rec_t r = {
            .seq = sqlite3_column_int64(st, 0),
            .time = sqlite3_column_int64(st, 1),
            .principal = (const char *)sqlite3_column_text(st, 2),
            .ws = (const char *)sqlite3_column_text(st, 3),
            .svc = (const char *)sqlite3_column_text(st, 4),
            .verb = (const char *)sqlite3_column_text(st, 5),
            .object = (const char *)sqlite3_column_text(st, 6),
            .status = sqlite3_column_int64(st, 7),
            .cid = (const char *)sqlite3_column_text(st, 8),
            .digest = (const char *)sqlite3_column_text(st, 9),
        };
        (*checked)++;
        audit_chain_hash(prev, &r, h);
        const void *stored = sqlite3_column_blob(st, 10);
        bool ok = r.seq == *checked && stored &&
                  sqlite3_column_bytes(st, 10) == AUDIT_HASH_BYTES &&
                  sodium_memcmp(stored, h, AUDIT_HASH_BYTES) == 0;
        if (!ok) {
            *first_bad = r.seq == *checked ? r.seq : *checked;
            break;
        }
        memcpy(prev, h, sizeof prev);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        snprintf(why, why_len, "cannot read the records: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}
