/* kernel/tokens.h — requests waiting for their token to be resolved.
 *
 * With an auth service, the first request that carries a token the kernel
 * has not cached waits here (parked, its frames moved in) while the kernel
 * asks the service once (`resolve`); requests with the same token that
 * arrive meanwhile join it. The answer releases them all, in order: they
 * are routed again (now a cache hit) or refused with the service's error.
 * Bounded: past TOKENS_PARKED_MAX waiting requests a new one is 429.
 */
#ifndef KERNEL_TOKENS_H
#define KERNEL_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "authz.h"
#include "cairn/err.h"
#include "cairn/msg.h"

#define TOKENS_PARKED_MAX 10000

typedef struct parked {
    zmq_msg_t route, hdr, body; /* a client request's frames */
    uint64_t t0_us;             /* when it arrived (for sys.metrics) */
    struct parked *next;
} parked_t;

typedef struct tokens tokens_t;

tokens_t *tokens_new(void);
void tokens_destroy(tokens_t **self_p);

/* Park a request whose token has key (its frames are moved in, leaving
 * them empty; its arrival time is noted in t0_us). 1 when it is the token's first: the
 * caller sends resolve with *id; 0 when it joined a lookup in flight; -1 with a 429
 * when too many wait, or a 500. */
int tokens_park(tokens_t *self, const unsigned char key[AUTHZ_KEY_BYTES],
                zmq_msg_t *route, zmq_msg_t *hdr, zmq_msg_t *body, uint64_t *id,
                cairn_err_t *err);

/* End lookup id: its key and its requests in arrival order (the caller
 * owns them: parked_free each). NULL when there is no such lookup. */
parked_t *tokens_take(tokens_t *self, uint64_t id, unsigned char key[AUTHZ_KEY_BYTES]);
void parked_free(parked_t *p);

/* Requests parked now. */
size_t tokens_parked(const tokens_t *self);

#endif
