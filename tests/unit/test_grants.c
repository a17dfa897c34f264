/* The action-pattern matcher the kernel and the auth plugin share
 * (sdk/grants.h): the four pattern forms, not_actions winning, and
 * malformed patterns or permissions matching nothing. */
#include "grants.h"
#include "unit.h"

#define N(a) (sizeof(a) / sizeof *(a))

TEST(pattern_forms)
{
    CHECK(cairn_grants_pattern_ok("*"));
    CHECK(cairn_grants_pattern_ok("tracking.*"));
    CHECK(cairn_grants_pattern_ok("*.read"));
    CHECK(cairn_grants_pattern_ok("tracking.write"));
    CHECK(cairn_grants_pattern_ok("data-sets.read_all"));
    CHECK(!cairn_grants_pattern_ok(""));
    CHECK(!cairn_grants_pattern_ok(NULL));
    CHECK(!cairn_grants_pattern_ok("*.*"));
    CHECK(!cairn_grants_pattern_ok("tracking"));
    CHECK(!cairn_grants_pattern_ok("tracking."));
    CHECK(!cairn_grants_pattern_ok(".read"));
    CHECK(!cairn_grants_pattern_ok("a.b.c"));
    CHECK(!cairn_grants_pattern_ok("track*.read"));
    CHECK(!cairn_grants_pattern_ok("tracking.re ad"));
    CHECK(!cairn_grants_pattern_ok("**"));
    char longp[200];
    memset(longp, 'a', sizeof longp);
    longp[60] = '.';
    longp[129] = '\0';
    CHECK(!cairn_grants_pattern_ok(longp));
}

TEST(matching)
{
    CHECK(cairn_grants_match("*", "tracking.write"));
    CHECK(cairn_grants_match("tracking.*", "tracking.write"));
    CHECK(!cairn_grants_match("tracking.*", "registry.write"));
    CHECK(!cairn_grants_match("tracking.*", "trackingx.write"));
    CHECK(cairn_grants_match("*.read", "auth.read"));
    CHECK(!cairn_grants_match("*.read", "auth.readx"));
    CHECK(!cairn_grants_match("*.read", "auth.write"));
    CHECK(cairn_grants_match("auth.admin", "auth.admin"));
    CHECK(!cairn_grants_match("auth.admin", "auth.adm"));
    CHECK(!cairn_grants_match("auth.adm", "auth.admin"));
    /* A malformed permission matches nothing, even "*". */
    CHECK(!cairn_grants_match("*", "tracking"));
    CHECK(!cairn_grants_match("*", "tracking.*"));
    CHECK(!cairn_grants_match("*", ""));
    CHECK(!cairn_grants_match("*", NULL));
    CHECK(!cairn_grants_match("bad pattern", "a.b"));
}

TEST(not_actions_win)
{
    const char *const owner[] = {"*"};
    const char *const ds[] = {"tracking.*", "registry.read", "*.read"};
    const char *const no_admin[] = {"*.admin"};
    const char *const no_tracking_delete[] = {"tracking.delete"};
    CHECK(cairn_grants_permit(owner, N(owner), NULL, 0, "auth.admin"));
    CHECK(!cairn_grants_permit(owner, N(owner), no_admin, N(no_admin), "auth.admin"));
    CHECK(cairn_grants_permit(owner, N(owner), no_admin, N(no_admin), "auth.read"));
    CHECK(cairn_grants_permit(ds, N(ds), NULL, 0, "tracking.write"));
    CHECK(cairn_grants_permit(ds, N(ds), NULL, 0, "jobs.read"));
    CHECK(!cairn_grants_permit(ds, N(ds), NULL, 0, "jobs.write"));
    CHECK(!cairn_grants_permit(ds, N(ds), no_tracking_delete, N(no_tracking_delete),
                               "tracking.delete"));
    CHECK(cairn_grants_permit(ds, N(ds), no_tracking_delete, N(no_tracking_delete),
                              "tracking.write"));
    /* Nothing granted: nothing permitted. */
    CHECK(!cairn_grants_permit(NULL, 0, NULL, 0, "auth.read"));
}

int main(void)
{
    RUN(pattern_forms);
    RUN(matching);
    RUN(not_actions_win);
    return unit_report();
}
