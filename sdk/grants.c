/* The action-pattern matcher (see grants.h). */
#include "grants.h"

#include <string.h>

#define PART_MAX 63

/* Whether s[0..n) is a plain name part: 1..PART_MAX of [A-Za-z0-9_-]. */
static bool s_part_ok(const char *s, size_t n)
{
    if (n == 0 || n > PART_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* Split "a.b" at its one dot; false when there is not exactly one. */
static bool s_split(const char *s, size_t *dot)
{
    const char *d = strchr(s, '.');
    if (!d || strchr(d + 1, '.')) return false;
    *dot = (size_t)(d - s);
    return true;
}

static bool s_is_star(const char *s, size_t n)
{
    return n == 1 && s[0] == '*';
}

bool cairn_grants_pattern_ok(const char *pattern)
{
    if (!pattern) return false;
    size_t len = strlen(pattern), dot;
    if (len == 0 || len > CAIRN_GRANT_PATTERN_MAX) return false;
    if (s_is_star(pattern, len)) return true;
    if (!s_split(pattern, &dot)) return false;
    const char *act = pattern + dot + 1;
    size_t alen = len - dot - 1;
    bool svc_star = s_is_star(pattern, dot), act_star = s_is_star(act, alen);
    if (svc_star && act_star) return false; /* "*.*": say "*" */
    return (svc_star || s_part_ok(pattern, dot)) && (act_star || s_part_ok(act, alen));
}

bool cairn_grants_match(const char *pattern, const char *perm)
{
    if (!cairn_grants_pattern_ok(pattern) || !perm) return false;
    size_t plen = strlen(perm), pdot;
    if (!s_split(perm, &pdot) || !s_part_ok(perm, pdot) ||
        !s_part_ok(perm + pdot + 1, plen - pdot - 1))
        return false;
    size_t len = strlen(pattern), dot = 0;
    if (s_is_star(pattern, len)) return true;
    s_split(pattern, &dot); /* cannot fail: the pattern is well formed */
    bool svc =
        s_is_star(pattern, dot) || (dot == pdot && memcmp(pattern, perm, dot) == 0);
    const char *act = pattern + dot + 1;
    size_t alen = len - dot - 1;
    bool action = s_is_star(act, alen) ||
                  (alen == plen - pdot - 1 && memcmp(act, perm + pdot + 1, alen) == 0);
    return svc && action;
}

bool cairn_grants_permit(const char *const *actions, size_t nactions,
                         const char *const *not_actions, size_t nnot, const char *perm)
{
    for (size_t i = 0; i < nnot; i++)
        if (cairn_grants_match(not_actions[i], perm)) return false;
    for (size_t i = 0; i < nactions; i++)
        if (cairn_grants_match(actions[i], perm)) return true;
    return false;
}
