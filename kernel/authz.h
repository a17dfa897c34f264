/* kernel/authz.h — the authorization hook on the routing path.
 *
 * Before a request reaches a plugin the kernel resolves the caller's token
 * to a principal and roles and checks the verb's declared permission; the
 * plugin receives the stamped principal and roles, never the token.
 *
 * Modes: "none" (declared explicitly in the conf: every caller is the local
 * principal with the Owner role, and cairnd refuses to bind anything but
 * loopback), or the name of an auth service (the auth plugin) that resolves
 * tokens through the bus (its verb `resolve`) with a cache in front: a
 * token's first request waits for the answer (the broker parks it), every
 * later one is checked here, on the routing thread, with no bus hop. The
 * service's `auth.changed` events empty the cache.
 */
#ifndef KERNEL_AUTHZ_H
#define KERNEL_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/err.h"
#include <msgpack.h>

#include "cairn/msg.h"

#define AUTHZ_MAX_ROLES 8
#define AUTHZ_KEY_BYTES 32        /* a token's cache key: its BLAKE2b-256 */
#define AUTHZ_SUB_MAX 129         /* a principal's name, NUL included */
#define AUTHZ_UNRESOLVED 1        /* authz_check: the token is not cached yet */
#define AUTHZ_RESOLVE_TTL_MS 5000 /* how long the kernel waits for resolve */

typedef struct authz authz_t;

typedef struct authz_principal {
    const char *sub; /* borrowed from the authz cache */
    const char *roles[AUTHZ_MAX_ROLES];
    int nroles;
} authz_principal_t;

/* mode: "none" or the auth service's name. */
authz_t *authz_new(const char *mode, cairn_err_t *err);
void authz_destroy(authz_t **self_p);
bool authz_is_open(const authz_t *self); /* mode none: loopback only */
/* The auth service's name; NULL in mode none. */
const char *authz_service(const authz_t *self);

/* Resolve the caller from the cache and check perm (NULL = public verb) in
 * workspace ws. 0; AUTHZ_UNRESOLVED when the token is not cached (resolve
 * it, then ask again); or -1 with a 401 (no, bad or expired token) or 403
 * (the grants lack perm in ws). out->sub is valid until the cache changes. */
int authz_check(authz_t *self, cairn_str_t tok, cairn_str_t ws, const char *perm,
                authz_principal_t *out, cairn_err_t *err);
/* Whether tok needs no resolving (cached, empty, or mode none). */
bool authz_resolved(authz_t *self, cairn_str_t tok);
/* The cache key of a token. */
void authz_token_key(cairn_str_t tok, unsigned char key[AUTHZ_KEY_BYTES]);
/* Cache the auth service's answer to resolve: {principal, expires, grants
 * [{ws, actions, not_actions}]}. -1 with a 502 when it is malformed. */
int authz_learn(authz_t *self, const unsigned char key[AUTHZ_KEY_BYTES],
                const msgpack_object *reply, cairn_err_t *err);
/* Cache a 401 for the token, for a second. */
void authz_learn_refusal(authz_t *self, const unsigned char key[AUTHZ_KEY_BYTES]);
/* Drop every cached answer (the auth service said something changed). */
void authz_forget_all(authz_t *self);

/* Whether an already resolved principal (a plugin's, for a nested call) may
 * use perm (NULL = public): plugins are trusted, so 0. */
int authz_permits(authz_t *self, const authz_principal_t *who, const char *perm,
                  cairn_err_t *err);

/* The principal a plugin's nested calls carry: "service:<name>". */
void authz_service_principal(const char *svc, authz_principal_t *out, char *buf,
                             size_t buflen);

/* Whether binding endpoint can only ever accept local connections: ipc://,
 * inproc://, or tcp:// whose host is an address or name that resolves to
 * loopback addresses only. Read as libzmq reads it: a "source;address" form,
 * a wildcard, an interface name or another transport is refused. 0, or -1
 * with a 400 saying why (the caller names the conf). Empty means unbound. */
int authz_endpoint_check_loopback(const char *endpoint, cairn_err_t *err);

#endif
