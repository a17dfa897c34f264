/* cairn/audit.h — the audit trail from C (the `audit` service;
 * docs/AUDIT.md).
 *
 *     cairn_audit_filter_t f = {.svc = "secrets", .max_results = 100};
 *     cairn_audit_records_t *recs = NULL;
 *     if (cairn_audit_query(client, &f, &recs, &err) != 0) ...
 *     for (size_t i = 0; i < cairn_audit_records_count(recs); i++) {
 *         const cairn_audit_record_t *r = cairn_audit_records_at(recs, i);
 *         printf("%lld %s %s.%s %d\n", (long long)r->seq, r->principal, r->svc,
 *                r->verb, r->status);
 *     }
 *     // more: f.page_token = cairn_audit_records_next_page(recs), query again
 *     cairn_audit_records_destroy(&recs);
 *
 *     cairn_audit_verdict_t v;
 *     if (cairn_audit_verify(client, &v, &err) == 0 && !v.ok)
 *         ... the chain breaks at v.first_bad_seq ...
 *
 * Both need audit.read. Every function returns 0, or -1 with err filled
 * (err may be NULL); a refusal from the server keeps its status and code.
 */
#ifndef CAIRN_AUDIT_H
#define CAIRN_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/client.h"
#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_AUDIT_SVC "audit"

/* What query keeps: every field given narrows it (zero/NULL: not given). */
typedef struct cairn_audit_filter {
    const char *principal, *svc, *verb, *object; /* exact matches */
    int64_t since, until;       /* ms since the epoch: [since, until) */
    uint32_t max_results;       /* 1..1000; 0: the service's 100 */
    const char *page_token;     /* a previous page's next page; NULL: the oldest */
    int min_status, max_status; /* the statuses kept, inclusive (0: any) */
} cairn_audit_filter_t;

/* One record. The strings are borrowed from the list that holds it. */
typedef struct cairn_audit_record {
    int64_t seq, time; /* time: ms since the epoch */
    int status;        /* the status the client got */
    const char *principal, *ws, *svc, *verb, *object;
} cairn_audit_record_t;

/* A page of records, oldest first (opaque). */
typedef struct cairn_audit_records cairn_audit_records_t;

/* query: filter NULL keeps everything (the first 100). */
CAIRN_EXPORT int cairn_audit_query(cairn_client_t *client,
                                   const cairn_audit_filter_t *filter,
                                   cairn_audit_records_t **records, cairn_err_t *err);
CAIRN_EXPORT size_t cairn_audit_records_count(const cairn_audit_records_t *l);
/* Record i (< count), or NULL. */
CAIRN_EXPORT const cairn_audit_record_t *cairn_audit_records_at(
    const cairn_audit_records_t *l, size_t i);
/* The next page's token, or NULL on the last page; borrowed. */
CAIRN_EXPORT const char *cairn_audit_records_next_page(const cairn_audit_records_t *l);
CAIRN_EXPORT void cairn_audit_records_destroy(cairn_audit_records_t **l);

typedef struct cairn_audit_verdict {
    bool ok;               /* the chain holds */
    int64_t records;       /* how many records were checked */
    int64_t first_bad_seq; /* when not ok: the first record edited, moved or missing */
} cairn_audit_verdict_t;

/* verify: the service checks the whole hash chain. */
CAIRN_EXPORT int cairn_audit_verify(cairn_client_t *client, cairn_audit_verdict_t *v,
                                    cairn_err_t *err);

#ifdef __cplusplus
}
#endif
#endif
