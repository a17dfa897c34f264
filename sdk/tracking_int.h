/* The C SDK's tracking code, private parts shared by tracking.c (the
 * tracking calls, the batch builder) and transfer.c (artifacts). */
#ifndef CAIRN_SDK_TRACKING_INT_H
#define CAIRN_SDK_TRACKING_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "cairn/tracking.h"

#define BACKOFF_MIN_MS 50   /* the first wait before a retry */
#define BACKOFF_MAX_MS 2000 /* the longest wait between retries */

/* The retries of one request (a chunk to put or get, a tracking call)
 * while a service restarts: started before its first try. */
typedef struct retry {
    uint64_t t0, budget_ms; /* the first try; how long it may go on */
    unsigned wait, tries;   /* the next wait; the tries that failed so far */
} retry_t;

int trk_check_str(const char *s, const char *what, size_t max, bool nonempty,
                  size_t *len, cairn_err_t *err);
int trk_oom(cairn_err_t *err);
int trk_check_run_id(const char *run_id, size_t *len, cairn_err_t *err);
int trk_check_client(const cairn_client_t *client, cairn_err_t *err);
uint64_t trk_env_ms(const char *env, uint64_t dflt);
void trk_retry_start(retry_t *rt, uint64_t budget_ms);
int trk_retry_backoff(retry_t *rt, const char *what, const char *cause,
                      cairn_err_t *err);

/* client.c: the ttl a call with ttl_ms 0 gets (transfer.c waits for the
 * replies of requests it keeps in flight itself). */
uint32_t cairn_client_default_ttl(const cairn_client_t *self);

/* client.c: cairn_client_send with the body as a message (zero-copy: one
 * made with zmq_msg_init_data), which is sent or, on failure, closed. */
int cairn_client_send_msg(cairn_client_t *self, const char *svc, const char *verb,
                          zmq_msg_t *body, uint64_t *id, cairn_err_t *err);

#endif
