/* sdk/grants.h — whether a grant's action patterns permit a permission.
 *
 * Private to Cairn (never installed): the kernel checks each request's
 * permission against the grants the auth service resolved for its token,
 * and the auth plugin validates and reports the same patterns.
 *
 * A permission is "<svc>.<level>" (tracking.write). A pattern is "*", a
 * permission, "<svc>.*" or "*.<level>". not_actions win over actions.
 */
#ifndef CAIRN_GRANTS_H
#define CAIRN_GRANTS_H

#include <stdbool.h>
#include <stddef.h>

/* Whether pattern matches perm. */
bool cairn_grant_match(const char *pattern, const char *perm);

/* Whether some action matches perm and no not_action does. */
bool cairn_grants_permit(const char *const *actions, size_t nactions,
                         const char *const *not_actions, size_t nnot, const char *perm);

#endif
