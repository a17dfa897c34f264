/* Unit tests for kernel/authz.c's token cache and kernel/tokens.c's parked
 * requests: what the auth service resolved is checked on the routing path
 * with no bus hop, expires, is forgotten on auth.changed, and a refusal is
 * remembered for a second only. */
#define _GNU_SOURCE
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "cairn/msg.h"
#include "tokens.h"
#include "unit.h"

static const cairn_str_t TOK = {"cairn_secret", 12};
static const cairn_str_t NO_WS = {"", 0};

/* Pack and decode a resolve answer: principal, expires, grants. */
static msgpack_object s_answer(msgpack_zone *z, msgpack_sbuffer *sb, const char *sub,
                               int64_t expires, const char *ws, const char *action,
                               const char *not_action)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cairn_pack_kv_str(&pk, "principal", sub);
    cairn_pack_cstr(&pk, "expires");
    msgpack_pack_int64(&pk, expires);
    cairn_pack_cstr(&pk, "grants");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "ws", ws);
    cairn_pack_kv_str(&pk, "role", "Reader");
    cairn_pack_cstr(&pk, "actions");
    msgpack_pack_array(&pk, 1);
    cairn_pack_cstr(&pk, action);
    cairn_pack_cstr(&pk, "not_actions");
    msgpack_pack_array(&pk, not_action ? 1 : 0);
    if (not_action) cairn_pack_cstr(&pk, not_action);
    msgpack_object o;
    size_t off = 0;
    msgpack_unpack(sb->data, sb->size, &off, z, &o);
    return o;
}

static authz_t *s_authz(void)
{
    cairn_err_t err = {0};
    authz_t *a = authz_new("auth", &err);
    CHECK(a != NULL);
    return a;
}

TEST(modes)
{
    cairn_err_t err = {0};
    authz_t *a = authz_new("none", &err);
    CHECK(a && authz_is_open(a) && authz_service(a) == NULL);
    authz_principal_t who;
    CHECK_EQ(authz_check(a, NO_WS, NO_WS, "tracking.write", &who, &err), 0);
    CHECK_STR(who.sub, "local");
    authz_destroy(&a);
    a = s_authz();
    CHECK(!authz_is_open(a));
    CHECK_STR(authz_service(a), "auth");
    authz_destroy(&a);
    CHECK(authz_new("", &err) == NULL);
    CHECK_EQ(err.st, 400);
}

TEST(no_token)
{
    authz_t *a = s_authz();
    authz_principal_t who;
    cairn_err_t err = {0};
    CHECK_EQ(authz_check(a, NO_WS, NO_WS, NULL, &who, &err), 0); /* public verb */
    CHECK_STR(who.sub, "anonymous");
    CHECK_EQ(authz_check(a, NO_WS, NO_WS, "tracking.read", &who, &err), -1);
    CHECK_EQ(err.st, 401);
    CHECK(authz_resolved(a, NO_WS));
    authz_destroy(&a);
}

TEST(resolved_then_cached)
{
    authz_t *a = s_authz();
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    authz_principal_t who;
    cairn_err_t err = {0};
    CHECK(!authz_resolved(a, TOK));
    CHECK_EQ(authz_check(a, TOK, NO_WS, "tracking.read", &who, &err), AUTHZ_UNRESOLVED);
    unsigned char key[AUTHZ_KEY_BYTES];
    authz_token_key(TOK, key);
    msgpack_object o = s_answer(&z, &sb, "ann", 0, "default", "*.read", NULL);
    CHECK_EQ(authz_learn(a, key, &o, &err), 0);
    CHECK(authz_resolved(a, TOK));
    CHECK_EQ(authz_check(a, TOK, NO_WS, "tracking.read", &who, &err), 0);
    CHECK_STR(who.sub, "ann");
    CHECK(who.nroles == 1 && !strcmp(who.roles[0], "Reader")); /* stamped */
    /* A reader may not write, nor read in another workspace. */
    CHECK_EQ(authz_check(a, TOK, NO_WS, "tracking.write", &who, &err), -1);
    CHECK_EQ(err.st, 403);
    CHECK(strstr(err.msg, "tracking.write") != NULL);
    cairn_str_t other = {"team-b", 6};
    CHECK_EQ(authz_check(a, TOK, other, "tracking.read", &who, &err), -1);
    CHECK_EQ(err.st, 403);
    /* auth.changed: forgotten, so resolved again. */
    authz_forget_all(a);
    CHECK(!authz_resolved(a, TOK));
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
    authz_destroy(&a);
}

TEST(not_actions_and_every_workspace)
{
    authz_t *a = s_authz();
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    authz_principal_t who;
    cairn_err_t err = {0};
    unsigned char key[AUTHZ_KEY_BYTES];
    authz_token_key(TOK, key);
    msgpack_object o = s_answer(&z, &sb, "bob", 0, "*", "*", "secrets.*");
    CHECK_EQ(authz_learn(a, key, &o, &err), 0);
    cairn_str_t ws = {"team-b", 6};
    CHECK_EQ(authz_check(a, TOK, ws, "tracking.admin", &who, &err), 0);
    CHECK_EQ(authz_check(a, TOK, ws, "secrets.read", &who, &err), -1);
    CHECK_EQ(err.st, 403);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
    authz_destroy(&a);
}

TEST(expired_and_refused)
{
    authz_t *a = s_authz();
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    authz_principal_t who;
    cairn_err_t err = {0};
    unsigned char key[AUTHZ_KEY_BYTES];
    authz_token_key(TOK, key);
    msgpack_object o =
        s_answer(&z, &sb, "ann", (int64_t)cairn_wall_ms() - 1, "*", "*", NULL);
    CHECK_EQ(authz_learn(a, key, &o, &err), 0);
    CHECK_EQ(authz_check(a, TOK, NO_WS, "tracking.read", &who, &err), -1);
    CHECK_EQ(err.st, 401);
    CHECK(strstr(err.msg, "expired") != NULL);
    authz_learn_refusal(a, key);
    CHECK(authz_resolved(a, TOK)); /* remembered, for a second */
    CHECK_EQ(authz_check(a, TOK, NO_WS, "tracking.read", &who, &err), -1);
    CHECK_EQ(err.st, 401);
    /* A malformed answer is refused and caches nothing. */
    msgpack_object bad = {.type = MSGPACK_OBJECT_NIL};
    CHECK_EQ(authz_learn(a, key, &bad, &err), -1);
    CHECK_EQ(err.st, 400); /* the field check's status; the broker makes it 503 */
    CHECK(!authz_resolved(a, TOK));
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
    authz_destroy(&a);
}

static void s_frame(zmq_msg_t *m, const char *s)
{
    zmq_msg_init_size(m, strlen(s));
    memcpy(zmq_msg_data(m), s, strlen(s));
}

TEST(parked_in_order_one_lookup_per_token)
{
    tokens_t *t = tokens_new();
    unsigned char k1[AUTHZ_KEY_BYTES], k2[AUTHZ_KEY_BYTES], got[AUTHZ_KEY_BYTES];
    authz_token_key(TOK, k1);
    authz_token_key((cairn_str_t){"other", 5}, k2);
    uint64_t id1 = 0, id2 = 0, id3 = 0;
    cairn_err_t err = {0};
    zmq_msg_t r, h, b;
    s_frame(&r, "route1"), s_frame(&h, "hdr1"), s_frame(&b, "body1");
    CHECK_EQ(tokens_park(t, k1, &r, &h, &b, &id1, &err), 1); /* first: resolve */
    CHECK_EQ(zmq_msg_size(&r), 0);                           /* moved in */
    s_frame(&r, "route2"), s_frame(&h, "hdr2"), s_frame(&b, "body2");
    CHECK_EQ(tokens_park(t, k1, &r, &h, &b, &id2, &err), 0); /* joins it */
    CHECK_EQ(id1, id2);
    s_frame(&r, "route3"), s_frame(&h, "hdr3"), s_frame(&b, "body3");
    CHECK_EQ(tokens_park(t, k2, &r, &h, &b, &id3, &err), 1);
    CHECK(id3 != id1);
    CHECK_EQ(tokens_parked(t), 3);
    parked_t *p = tokens_take(t, id1, got);
    CHECK(memcmp(got, k1, sizeof got) == 0);
    CHECK(p && p->next && !p->next->next);
    CHECK(zmq_msg_size(&p->route) == 6 &&
          !memcmp(zmq_msg_data(&p->route), "route1", 6));
    CHECK(!memcmp(zmq_msg_data(&p->next->body), "body2", 5));
    while (p) {
        parked_t *n = p->next;
        parked_free(p);
        p = n;
    }
    CHECK(tokens_take(t, id1, got) == NULL); /* once */
    CHECK_EQ(tokens_parked(t), 1);
    tokens_destroy(&t); /* frees what still waits */
    CHECK(t == NULL);
}

int main(void)
{
    RUN(modes);
    RUN(no_token);
    RUN(resolved_then_cached);
    RUN(not_actions_and_every_workspace);
    RUN(expired_and_refused);
    RUN(parked_in_order_one_lookup_per_token);
    return unit_report();
}
