/* cairn/auth.h — users, tokens, roles and workspaces from C (the `auth`
 * service; docs/AUTH.md).
 *
 * Thin, synchronous wrappers over the auth verbs:
 *
 *     char *token = NULL;
 *     if (cairn_auth_login(client, "ada", password, &token, &err) != 0) ...
 *     cairn_client_t *as_ada = cairn_client_new(NULL, token, &err);
 *     ...
 *     sodium_memzero(token, strlen(token)); free(token);
 *
 * Strings returned through char ** are heap copies: free() them (a token is
 * a secret: wipe it first). Every function returns 0, or -1 with err filled
 * (err may be NULL); a refusal from the server keeps its status and code
 * (401 unauthenticated for a wrong password, 429 overloaded while a user is
 * locked out after repeated wrong passwords).
 */
#ifndef CAIRN_AUTH_H
#define CAIRN_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/client.h"
#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_AUTH_SVC "auth"

/* login {user, password}: *token receives a login token (it expires after
 * the service's login_ttl). */
CAIRN_EXPORT int cairn_auth_login(cairn_client_t *client, const char *user,
                                  const char *password, char **token, cairn_err_t *err);
/* whoami: *user receives the caller's principal; roles (may be NULL)
 * receives a NULL-terminated list of role names, freed with
 * cairn_auth_strv_free. */
CAIRN_EXPORT int cairn_auth_whoami(cairn_client_t *client, char **user, char ***roles,
                                   cairn_err_t *err);
CAIRN_EXPORT void cairn_auth_strv_free(char **v);

/* create_token {name, expires_in}: expires_in seconds, 0 = never. *token
 * receives the secret (shown this once), *token_id (may be NULL) its id. */
CAIRN_EXPORT int cairn_auth_create_token(cairn_client_t *client, const char *name,
                                         uint64_t expires_in, char **token,
                                         char **token_id, cairn_err_t *err);
CAIRN_EXPORT int cairn_auth_revoke_token(cairn_client_t *client, const char *token_id,
                                         cairn_err_t *err);

CAIRN_EXPORT int cairn_auth_create_user(cairn_client_t *client, const char *user,
                                        const char *password, cairn_err_t *err);
CAIRN_EXPORT int cairn_auth_delete_user(cairn_client_t *client, const char *user,
                                        cairn_err_t *err);
/* old_password NULL: an admin setting another user's password. */
CAIRN_EXPORT int cairn_auth_change_password(cairn_client_t *client, const char *user,
                                            const char *password,
                                            const char *old_password, cairn_err_t *err);

CAIRN_EXPORT int cairn_auth_create_workspace(cairn_client_t *client, const char *name,
                                             cairn_err_t *err);
CAIRN_EXPORT int cairn_auth_delete_workspace(cairn_client_t *client, const char *name,
                                             cairn_err_t *err);

/* define_role: a custom role from action patterns (`*`, `svc.*`, `*.read`,
 * `svc.action`); not_actions win over actions (nnot may be 0). */
CAIRN_EXPORT int cairn_auth_define_role(cairn_client_t *client, const char *name,
                                        const char *const *actions, size_t nactions,
                                        const char *const *not_actions, size_t nnot,
                                        cairn_err_t *err);
/* workspace NULL: every workspace. */
CAIRN_EXPORT int cairn_auth_assign_role(cairn_client_t *client, const char *principal,
                                        const char *role, const char *workspace,
                                        cairn_err_t *err);
CAIRN_EXPORT int cairn_auth_unassign_role(cairn_client_t *client, const char *principal,
                                          const char *role, const char *workspace,
                                          cairn_err_t *err);

#ifdef __cplusplus
}
#endif
#endif
