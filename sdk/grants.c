/* Grant patterns (see grants.h). */
#include "grants.h"

#include <string.h>

bool cairn_grant_match(const char *pattern, const char *perm)
{
    if (!pattern || !perm) return false;
    if (strcmp(pattern, "*") == 0 || strcmp(pattern, perm) == 0) return true;
    const char *pdot = strchr(pattern, '.'), *dot = strchr(perm, '.');
    if (!pdot || !dot) return false;
    size_t psvc = (size_t)(pdot - pattern), svc = (size_t)(dot - perm);
    bool svc_ok = (psvc == 1 && pattern[0] == '*') ||
                  (psvc == svc && memcmp(pattern, perm, svc) == 0);
    bool level_ok = strcmp(pdot + 1, "*") == 0 || strcmp(pdot + 1, dot + 1) == 0;
    return svc_ok && level_ok;
}

bool cairn_grants_permit(const char *const *actions, size_t nactions,
                         const char *const *not_actions, size_t nnot, const char *perm)
{
    for (size_t i = 0; i < nnot; i++)
        if (cairn_grant_match(not_actions[i], perm)) return false;
    for (size_t i = 0; i < nactions; i++)
        if (cairn_grant_match(actions[i], perm)) return true;
    return false;
}
