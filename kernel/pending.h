/* kernel/pending.h — requests the kernel is waiting on: a table by rid and a
 * min-heap by deadline, so that a reply finds its client in O(1) and an
 * expired request is answered 504 without scanning. */
#ifndef KERNEL_PENDING_H
#define KERNEL_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "cairn/msg.h"

struct service;
struct worker;

#define PENDING_ROUTE_MAX 256
#define PENDING_ID_MAX 256

/* Who waits for the reply: a client, a plugin's nested call, or the kernel
 * itself (resolving a token: tokens.h). */
typedef enum { ORIGIN_CLIENT, ORIGIN_WORKER, ORIGIN_KERNEL } pending_origin_t;

typedef struct pending {
    uint64_t rid;
    uint64_t deadline;
    uint64_t t0_us; /* when it reached the broker (metrics_now_us), for sys.metrics */
    uint32_t mrow;  /* its verb's row in svc->metrics (metrics.h) */
    pending_origin_t origin;
    unsigned char route[PENDING_ROUTE_MAX]; /* the sender's routing id */
    size_t route_len;
    /* How to address the reply: the client's id, or the worker's call id. */
    int id_type; /* CAIRN_ID_* */
    uint64_t id_uint;
    char id_str[PENDING_ID_MAX];
    size_t id_str_len;
    struct service *svc;
    struct worker *worker; /* NULL while queued */
    bool queued_msgs;      /* hdr and body below hold the queued request */
    struct client *client; /* charged qbytes while queued (clients.h) */
    size_t qbytes;
    zmq_msg_t hdr, body;      /* the REQUEST header and body, while queued */
    bool answered;            /* the client got its 504; the worker still holds it */
    struct audit_note *audit; /* a mutating client request's record, until answered */
    struct pending *qnext;    /* the service's queue */
    size_t heap_index;
} pending_t;

typedef struct pending_table pending_table_t;

pending_table_t *pending_table_new(void);
void pending_table_destroy(pending_table_t **self_p);

/* A new entry with a fresh rid, in the table and the heap. */
pending_t *pending_add(pending_table_t *t, uint64_t deadline);
pending_t *pending_find(pending_table_t *t, uint64_t rid);
/* Remove from table and heap and free (closing queued messages). */
void pending_remove(pending_table_t *t, pending_t *p);
/* Move an entry's deadline (keeps the heap in order). */
void pending_set_deadline(pending_table_t *t, pending_t *p, uint64_t deadline);
/* The entry with the earliest deadline, or NULL. */
pending_t *pending_earliest(pending_table_t *t);
size_t pending_count(const pending_table_t *t);
/* Call fn on every entry (fn must not remove). */
void pending_each(pending_table_t *t, void (*fn)(pending_t *, void *), void *arg);

#endif
