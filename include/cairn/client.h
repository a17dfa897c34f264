/* cairn/client.h — the C client: connect, call, pipeline.
 *
 * One client is one DEALER socket and is not thread safe (one per thread).
 * cairn_client_call is synchronous; cairn_client_send / cairn_client_recv
 * keep many requests in flight and match replies by id.
 */
#ifndef CAIRN_CLIENT_H
#define CAIRN_CLIENT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cairn_client cairn_client_t;
typedef struct cairn_reply cairn_reply_t;

/* endpoint NULL: $CAIRN_ENDPOINT, else tcp://127.0.0.1:7780.
 * token NULL: the first of cairn_token_find's places, else none.
 * The workspace is $CAIRN_WORKSPACE, else none (the kernel's `default`)
 * until cairn_client_set_workspace says otherwise. */
CAIRN_EXPORT cairn_client_t *cairn_client_new(const char *endpoint, const char *token,
                                              cairn_err_t *err);
CAIRN_EXPORT void cairn_client_destroy(cairn_client_t **self_p);

/* ---- CurveZMQ (docs/TRANSPORT.md) ----------------------------------------
 * A cairnd endpoint that is not loopback takes only CurveZMQ clients whose
 * public key its conf allows. A key is 40 characters of Z85 text, as
 * `cairn keygen` writes it; wherever a key is asked for, the key itself or
 * the path of a file holding it may be given. */
#define CAIRN_KEY_Z85_LEN 40

typedef struct cairn_client_opts {
    const char *endpoint; /* NULL: as cairn_client_new */
    const char *token;    /* NULL: as cairn_client_new */
    /* cairnd's public key. NULL: $CAIRN_SERVER_KEY; NULL or "" there too:
     * no CurveZMQ (a loopback cairnd). */
    const char *server_key;
    /* This client's secret key (its public key is derived from it), needed
     * with a server key. NULL: $CAIRN_CLIENT_KEY. */
    const char *client_key;
    /* The `ws` header of every request. NULL: $CAIRN_WORKSPACE, else none
     * (the kernel's `default`); cairn_client_set_workspace changes it. */
    const char *workspace;
} cairn_client_opts_t;

/* cairn_client_new with CurveZMQ keys (opts NULL: all NULL); cairn_client_new(e, t,
 * err) is cairn_client_new_opts(&(cairn_client_opts_t){e, t, NULL, NULL}, err). A key
 * that cannot be read, or a server key without a client key, is a 400 bad_endpoint
 * saying which. */
CAIRN_EXPORT cairn_client_t *cairn_client_new_opts(const cairn_client_opts_t *opts,
                                                   cairn_err_t *err);
/* Read a key: key_or_path names a file whose first word that is a key is
 * taken, or (when no such file exists) is a key itself. Copies its Z85
 * text into out. 0, or -1 with a 400 bad_endpoint naming what (e.g.
 * "CAIRN_SERVER_KEY"). */
CAIRN_EXPORT int cairn_key_load(const char *key_or_path, const char *what,
                                char out[CAIRN_KEY_Z85_LEN + 1], cairn_err_t *err);
/* Make zsock (a ZeroMQ socket, before it connects) a CurveZMQ client of the
 * server whose public key is server_key, with the secret key client_key;
 * each as cairn_key_load takes it. Secrets are wiped after use. 0, or -1
 * with a 400 bad_endpoint. */
CAIRN_EXPORT int cairn_curve_client(void *zsock, const char *server_key,
                                    const char *client_key, cairn_err_t *err);

/* Where a client finds its token when none is given, in this order:
 *   1. $CAIRN_TOKEN;
 *   2. the token `cairn login` saved: $XDG_CONFIG_HOME/cairn/token (else
 *      ~/.config/cairn/token);
 *   3. owner.token of the state dir this process can see: $CAIRN_STATE,
 *      else ./var (cairnd writes it at its first start, mode 0600).
 * Files are read only when they are regular files of at most 4 KiB; the
 * token is the first line, without surrounding white space. Copies it into
 * out (cap bytes) and returns its length, or 0 when none is found. */
CAIRN_EXPORT size_t cairn_token_find(char *out, size_t cap);
/* The file `cairn login` saves its token in (see cairn_token_find); 0, or
 * -1 when no home is known. */
CAIRN_EXPORT int cairn_token_path(char *out, size_t cap);
/* The `ws` header of every later request (NULL: none, i.e. `default`). */
CAIRN_EXPORT void cairn_client_set_workspace(cairn_client_t *self, const char *ws);
/* The `fwd` header of every later request (NULL: none): the network
 * address of the client a proxy acts for (the HTTP gateway: its HTTP
 * caller's). cairnd takes it as the request's client address only from a
 * connection of its own host (ipc or inproc, its owner's), for plugins'
 * throttles and the audit trail; from a tcp client it is ignored. */
CAIRN_EXPORT void cairn_client_set_forwarded(cairn_client_t *self, const char *addr);
/* Default ttl for calls that pass ttl_ms 0 (initially 30000). */
CAIRN_EXPORT void cairn_client_set_ttl(cairn_client_t *self, uint32_t ttl_ms);

/* A synchronous call. body is msgpack bytes (NULL/0 = nil). Returns 0 when
 * the reply's status is below 400. Otherwise -1 with err filled, either from
 * the reply (its st/code/err) or locally (504 when no reply came within the
 * ttl, 503 when the socket failed). *reply (if reply is not NULL) receives
 * the reply whenever one arrived; free it with cairn_reply_destroy. */
CAIRN_EXPORT int cairn_client_call(cairn_client_t *self, const char *svc,
                                   const char *verb, const void *body, size_t len,
                                   uint32_t ttl_ms, cairn_reply_t **reply,
                                   cairn_err_t *err);

/* Pipelining: send without waiting; *id receives the request id. */
CAIRN_EXPORT int cairn_client_send(cairn_client_t *self, const char *svc,
                                   const char *verb, const void *body, size_t len,
                                   uint32_t ttl_ms, uint64_t *id, cairn_err_t *err);
/* Wait up to timeout_ms (-1 = forever) for the next reply to any request.
 * Returns 0 with *reply set, or -1 (err->st 504 on timeout). */
CAIRN_EXPORT int cairn_client_recv(cairn_client_t *self, int timeout_ms,
                                   cairn_reply_t **reply, cairn_err_t *err);

CAIRN_EXPORT uint64_t cairn_reply_id(const cairn_reply_t *r);
CAIRN_EXPORT int cairn_reply_status(const cairn_reply_t *r);
CAIRN_EXPORT const char *cairn_reply_code(const cairn_reply_t *r);  /* "" if none */
CAIRN_EXPORT const char *cairn_reply_error(const cairn_reply_t *r); /* "" if none */
CAIRN_EXPORT const void *cairn_reply_body(const cairn_reply_t *r, size_t *len);
/* The body decoded (nil when empty); valid while the reply lives. */
CAIRN_EXPORT const msgpack_object *cairn_reply_object(cairn_reply_t *r);
/* An error reply whose body says {"delivered": false}: the kernel refused
 * the request before any plugin saw it (the service restarting, its queue
 * full, the deadline passed while queued), so sending it again cannot do
 * anything twice, whatever the verb (docs/PROTOCOL.md). NULL-safe. */
CAIRN_EXPORT bool cairn_reply_undelivered(cairn_reply_t *r);
CAIRN_EXPORT void cairn_reply_destroy(cairn_reply_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
