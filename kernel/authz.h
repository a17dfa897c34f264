/* kernel/authz.h — the authorization hook on the routing path.
 *
 * Before a request reaches a plugin the kernel resolves the caller's token
 * to a principal and roles and checks the verb's declared permission; the
 * plugin receives the stamped principal and roles, never the token.
 *
 * Modes: "none" (declared explicitly in the conf: every caller is the local
 * principal with the Owner role, and cairnd refuses to bind anything but
 * loopback), or the name of an auth service (the auth plugin, a later
 * issue) that resolves tokens through the bus with a cache in front.
 */
#ifndef KERNEL_AUTHZ_H
#define KERNEL_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/err.h"
#include "cairn/msg.h"

#define AUTHZ_MAX_ROLES 8

typedef struct authz authz_t;

typedef struct authz_principal {
    const char *sub; /* borrowed from the authz cache */
    const char *roles[AUTHZ_MAX_ROLES];
    int nroles;
} authz_principal_t;

/* mode: "none" or an auth service name (refused until that plugin lands). */
authz_t *authz_new(const char *mode, cairn_err_t *err);
void authz_destroy(authz_t **self_p);
bool authz_is_open(const authz_t *self); /* mode none: loopback only */

/* Resolve the caller and check perm (NULL = public verb). 0, or -1 with a
 * 401 (no or bad token) or 403 (role lacks perm). */
int authz_check(authz_t *self, cairn_str_t tok, cairn_str_t ws, const char *perm,
                authz_principal_t *out, cairn_err_t *err);

/* Whether an already resolved principal (a plugin's, for a nested call) may
 * use perm (NULL = public). 0, or -1 with a 403. */
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
