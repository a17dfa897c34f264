/* sdk/grants.h — the action-pattern matcher shared by the kernel (which
 * authorizes every request against the grants auth.resolve returns) and the
 * auth plugin (which checks its own admin rights and validates role
 * definitions). Private: built into libcairn, never installed.
 *
 * A permission is "<svc>.<action>" (e.g. "tracking.write"). A pattern is
 * one of
 *   *             every permission
 *   svc.*         every action of one service
 *   *.action      one action of every service
 *   svc.action    exactly that permission
 * where svc and action are 1..63 bytes of [A-Za-z0-9_-]. not_actions win:
 * a permission matched by any of them is refused whatever actions say. */
#ifndef CAIRN_SDK_GRANTS_H
#define CAIRN_SDK_GRANTS_H

#include <stdbool.h>
#include <stddef.h>

#include "cairn/err.h"

#define CAIRN_GRANT_PATTERN_MAX 128

/* Whether pattern is one of the four forms above. */
CAIRN_EXPORT bool cairn_grants_pattern_ok(const char *pattern);

/* Whether pattern matches perm (both NUL-terminated). A malformed pattern
 * or perm matches nothing. */
CAIRN_EXPORT bool cairn_grants_match(const char *pattern, const char *perm);

/* Whether some action matches perm and no not_action does. */
CAIRN_EXPORT bool cairn_grants_permit(const char *const *actions, size_t nactions,
                                      const char *const *not_actions, size_t nnot,
                                      const char *perm);

#endif
