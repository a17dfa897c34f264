/* sdk/svc_call.h — what the service modules of the C SDK (auth.c,
 * secrets.c, audit.c) share: a request body packed into a buffer, one
 * synchronous call, and typed reads of the reply. Private to libcairn
 * (hidden symbols, never installed).
 *
 *     cairn_svc_call_t c;
 *     msgpack_packer *pk = cairn_svc_begin(&c, "secrets", 1);
 *     cairn_pack_kv_str(pk, "name", name);
 *     cairn_reply_t *r = NULL;
 *     if (cairn_svc_end(client, &c, "get_secret", &r, err) != 0) return -1;
 *
 * Errors name the service ("the secrets service's reply lacks ..."): a
 * reply without what the contract promises is 502 bad_reply. */
#ifndef CAIRN_SDK_SVC_CALL_H
#define CAIRN_SDK_SVC_CALL_H

#include <stdint.h>

#include "cairn/client.h"
#include "cairn/err.h"
#include "cairn/msg.h"

typedef struct cairn_svc_call {
    const char *svc;
    msgpack_sbuffer sb;
    msgpack_packer pk;
} cairn_svc_call_t;

/* Start a body: a map of nkeys entries, to be packed through the packer. */
msgpack_packer *cairn_svc_begin(cairn_svc_call_t *c, const char *svc, uint32_t nkeys);

/* Call svc.verb with the body; *reply (when reply is not NULL) receives a
 * reply below 400 (the caller destroys it). The body is wiped (it may hold
 * a password or a secret) and freed whatever happens. */
int cairn_svc_end(cairn_client_t *client, cairn_svc_call_t *c, const char *verb,
                  cairn_reply_t **reply, cairn_err_t *err);

/* -1 with a 400 "<what> must not be NULL" when p is NULL. */
int cairn_svc_need(const void *p, const char *what, cairn_err_t *err);

/* Reads of a reply's top-level keys; 502 bad_reply when the key is absent
 * or of another type. A string is a heap copy (free() it). */
int cairn_svc_str(cairn_reply_t *r, const char *svc, const char *key, char **out,
                  cairn_err_t *err);
int cairn_svc_int(cairn_reply_t *r, const char *svc, const char *key, int64_t *out,
                  cairn_err_t *err);
/* An optional string (a next_page_token): *out a heap copy, or NULL when
 * the key is absent or not a string; -1 only when out of memory. */
int cairn_svc_opt_str(cairn_reply_t *r, const char *key, char **out, cairn_err_t *err);
/* An integer inside any map (a list's row); false when absent or not one. */
bool cairn_svc_obj_int(const msgpack_object *map, const char *key, int64_t *out);
/* 502 bad_reply: "the <svc> service's reply <what>". */
int cairn_svc_bad_reply(cairn_err_t *err, const char *svc, const char *what);

/* Wipe a reply's body (it holds a secret) and destroy it. */
void cairn_svc_reply_wipe(cairn_reply_t **r);

#endif
