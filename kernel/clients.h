/* kernel/clients.h — what each client connection costs the kernel, in bytes.
 *
 * libzmq bounds its queues in messages, and one message may be 64 MiB, so a
 * count bounds nothing. The kernel accounts two things per client (keyed by
 * its frontend routing id) and in total:
 *
 *   queued   request bodies it holds for a busy plugin (broker thread only);
 *   unsent   reply bytes handed to libzmq that have not yet gone out on the
 *            wire: a tracked reply is a message whose free callback (run by
 *            libzmq's I/O thread once the bytes are written) gives them back.
 *
 * A request that would take a client or the kernel past its share is
 * refused 429; a client whose unread replies are past its share gets its
 * next replies dropped (a short 429 instead) and its new requests refused,
 * until it reads again. docs/PROTOCOL.md states the limits.
 */
#ifndef KERNEL_CLIENTS_H
#define KERNEL_CLIENTS_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "cairn/err.h"

/* Replies smaller than this are sent as they are (libzmq's HWM bounds their
 * count); larger ones are sent as tracked messages (a view of the reply
 * that is charged to its client until written; not a copy). */
#define CLIENTS_TRACK_MIN 1024

typedef struct clients clients_t;
typedef struct client client_t;

typedef struct clients_limits {
    uint64_t per_client; /* queued + unsent bytes of one client */
    uint64_t queued;     /* queued bytes of all clients */
    uint64_t unsent;     /* unsent bytes of all clients */
} clients_limits_t;

clients_t *clients_new(const clients_limits_t *limits);
/* Call only after the zmq context is terminated (no callback can run). */
void clients_destroy(clients_t **self_p);

/* The client behind a routing id, made on first use; NULL when out of
 * memory. The entry lives while it holds queued or unsent bytes (so a
 * pointer to it stays valid while the caller holds bytes queued on it),
 * and until the next sweep after that. */
client_t *clients_get(clients_t *t, const void *route, size_t len);

/* 0 when c may send a new request; -1 with a 429 when its unread replies
 * are past its share. */
int clients_may_send(const clients_t *t, const client_t *c, cairn_err_t *err);

/* Account a request body of n bytes the kernel will hold queued: 0, or -1
 * with a 429 naming the limit. clients_unqueue gives the bytes back. */
int clients_queue(clients_t *t, client_t *c, size_t n, cairn_err_t *err);
void clients_unqueue(clients_t *t, client_t *c, size_t n);

/* Make *body (a reply about to be sent to c) a tracked message when it is
 * large: 0 when it may be sent, -1 with a 429 when c or the kernel has too
 * many unsent bytes already (body is then closed and re-initialised empty,
 * and the caller sends the error instead). */
int clients_track_reply(clients_t *t, client_t *c, zmq_msg_t *body, cairn_err_t *err);

/* Free entries that hold nothing and nobody references. */
void clients_sweep(clients_t *t);

/* Totals, for sys.health and tests. */
uint64_t clients_unsent_total(const clients_t *t);
uint64_t clients_queued_total(const clients_t *t);
size_t clients_count(const clients_t *t);

#endif
