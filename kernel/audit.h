/* kernel/audit.h — the kernel's side of the audit trail.
 *
 * With `kernel.audit` naming the audit service, the kernel writes one
 * record for every client request to a mutating verb (once it is answered,
 * with the status the client got) and for every request it refuses with 401
 * or 403: time, principal, workspace, service, verb, status, correlation id
 * and a BLAKE2b-128 digest of the body (never the body: it may hold a
 * secret). Records are grouped on their way to the service: one `append`
 * when 256 wait or the oldest has waited AUDIT_FLUSH_MS, one group in
 * flight at a time. A group the service does not take is sent again (it is
 * never dropped silently); meanwhile, under `audit_policy: refuse` (the
 * default), mutating requests are refused with 503, and under `log` they go
 * on and the failure is logged once.
 */
#ifndef KERNEL_AUDIT_H
#define KERNEL_AUDIT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/msg.h"

#define AUDIT_FLUSH_MS 20
#define AUDIT_STOP_MS 5000 /* at stop, how long the kernel waits for the trail */
#define AUDIT_GROUP_MAX 256
#define AUDIT_PENDING_MAX (64u << 20) /* bytes of records waiting */
#define AUDIT_DIGEST_HEX 33           /* BLAKE2b-128, hex, NUL */

typedef struct kaudit kaudit_t;

/* service NULL or "none": no trail (every call below is then a no-op). */
kaudit_t *kaudit_new(const char *service, bool refuse_on_failure);
void kaudit_destroy(kaudit_t **self_p);
bool kaudit_on(const kaudit_t *self);
const char *kaudit_service(const kaudit_t *self);

/* The digest of a request body, for its record. */
void kaudit_digest(const void *body, size_t len, char hex[AUDIT_DIGEST_HEX]);

/* Add a record (now). -1 when AUDIT_PENDING_MAX bytes already wait. */
int kaudit_add(kaudit_t *self, const char *principal, const char *ws, const char *svc,
               const char *verb, const char *object, const char *cid, int status,
               const char *digest);

/* When a group is due (and none is in flight): its append body into out
 * (cleared first), and true. */
bool kaudit_take(kaudit_t *self, uint64_t now_ms, msgpack_sbuffer *out);
/* How long until a group is due (ms; -1 when none waits). */
long kaudit_wait_ms(const kaudit_t *self, uint64_t now_ms);
/* The answer to the group in flight: ok, or the sentence why not (it is
 * sent again later). */
void kaudit_done(kaudit_t *self, bool ok, const char *why, uint64_t now_ms);

/* Whether a mutating request must be refused now (policy refuse, and the
 * trail is failing or full); why gets the sentence. */
bool kaudit_refusing(const kaudit_t *self, char *why, size_t cap);
/* Records not yet taken by the service (waiting or in flight). */
uint32_t kaudit_unwritten(const kaudit_t *self);
/* Records written to the service, and failures seen (sys.health). */
uint64_t kaudit_written(const kaudit_t *self);
uint64_t kaudit_failures(const kaudit_t *self);

#endif
