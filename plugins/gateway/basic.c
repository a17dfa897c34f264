/* HTTP Basic (what MLflow's client sends from MLFLOW_TRACKING_USERNAME and
 * MLFLOW_TRACKING_PASSWORD): the user and password are logged in through
 * auth.login, and the token it gives is cached, keyed by a hash of the
 * pair, so that a password hash (tens of milliseconds by design) is not
 * paid a request. A cached token that the kernel refuses (401: the
 * password changed, the token was revoked or expired) is dropped and the
 * login made again, once (server.c). The cache holds BASIC_SLOTS pairs,
 * each at most BASIC_TTL_MS or the token's own expiry. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "jsonmp.h"

#define BASIC_SLOTS 64
#define BASIC_TTL_MS (10 * 60 * 1000)
#define BASIC_MAX 1024 /* user:password, decoded */

typedef struct {
    unsigned char key[crypto_generichash_BYTES];
    char token[GW_TOKEN_MAX];
    uint64_t until_ms; /* 0: empty */
} basic_slot_t;

static basic_slot_t s_slots[BASIC_SLOTS];
static pthread_mutex_t s_mu = PTHREAD_MUTEX_INITIALIZER;

static void s_key(const char *pair, size_t n,
                  unsigned char key[crypto_generichash_BYTES])
{
    crypto_generichash(key, crypto_generichash_BYTES, (const unsigned char *)pair, n,
                       NULL, 0);
}

static bool s_cached(const unsigned char *key, char *token)
{
    uint64_t now = cairn_wall_ms();
    bool hit = false;
    pthread_mutex_lock(&s_mu);
    for (int i = 0; i < BASIC_SLOTS && !hit; i++)
        if (s_slots[i].until_ms > now &&
            !sodium_memcmp(s_slots[i].key, key, sizeof s_slots[i].key)) {
            snprintf(token, GW_TOKEN_MAX, "%s", s_slots[i].token);
            hit = true;
        }
    pthread_mutex_unlock(&s_mu);
    return hit;
}

static void s_store(const unsigned char *key, const char *token, uint64_t until_ms)
{
    pthread_mutex_lock(&s_mu);
    basic_slot_t *victim = &s_slots[0];
    for (int i = 0; i < BASIC_SLOTS; i++) {
        if (!sodium_memcmp(s_slots[i].key, key, sizeof s_slots[i].key) ||
            s_slots[i].until_ms < victim->until_ms) {
            victim = &s_slots[i];
            if (!sodium_memcmp(s_slots[i].key, key, sizeof s_slots[i].key)) break;
        }
    }
    memcpy(victim->key, key, sizeof victim->key);
    snprintf(victim->token, sizeof victim->token, "%s", token);
    victim->until_ms = until_ms;
    pthread_mutex_unlock(&s_mu);
}

void gw_basic_forget(const gw_req_t *r)
{
    pthread_mutex_lock(&s_mu);
    for (int i = 0; i < BASIC_SLOTS; i++)
        if (!sodium_memcmp(s_slots[i].key, r->basic_key, sizeof s_slots[i].key))
            s_slots[i].until_ms = 0;
    pthread_mutex_unlock(&s_mu);
}

/* auth.login {user, password} -> token (into r->token_buf). */
static int s_login(gw_req_t *r, const char *pair, size_t n, cairn_err_t *err)
{
    const char *colon = memchr(pair, ':', n);
    if (!colon)
        return cairn_err_set(err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                             "HTTP Basic credentials are user:password");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "user");
    cairn_pack_strn(&pk, pair, (size_t)(colon - pair));
    cairn_pack_cstr(&pk, "password");
    cairn_pack_strn(&pk, colon + 1, (size_t)(pair + n - colon - 1));
    cairn_reply_t *reply = NULL;
    const char *was = r->token;
    r->token = ""; /* login needs none */
    r->in_login = true;
    int rc = gw_call(r, "auth", "login", sb.data, sb.size, &reply, err);
    r->in_login = false;
    r->token = was;
    msgpack_sbuffer_destroy(&sb);
    const msgpack_object *b = rc == 0 ? cairn_reply_object(reply) : NULL;
    cairn_str_t token = {"", 0};
    int64_t expires = 0;
    if (rc == 0 &&
        (cairn_field_str(b, "token", true, GW_TOKEN_MAX - 1, &token, err) != 0 ||
         !token.len))
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "auth.login answered no token");
    if (rc == 0) {
        cairn_field_int(b, "expires", false, &expires, err);
        snprintf(r->token_buf, sizeof r->token_buf, "%.*s", (int)token.len, token.ptr);
        uint64_t until = cairn_wall_ms() + BASIC_TTL_MS;
        /* expires: seconds or ms since the epoch; never past it */
        uint64_t exp_ms =
            expires > 100000000000LL ? (uint64_t)expires : (uint64_t)expires * 1000;
        if (expires > 0 && exp_ms < until) until = exp_ms;
        s_store(r->basic_key, r->token_buf, until);
    }
    cairn_reply_destroy(&reply);
    return rc;
}

int gw_basic(gw_req_t *r, const char *b64, bool fresh, cairn_err_t *err)
{
    size_t len = strlen(b64);
    unsigned char pair[BASIC_MAX];
    size_t n = 0;
    if (len > BASIC_MAX / 3 * 4 || !cairn_base64_decode(b64, len, pair, &n))
        return cairn_err_set(err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                             "HTTP Basic credentials are base64 of user:password, at "
                             "most %d bytes",
                             BASIC_MAX / 4 * 3);
    s_key((const char *)pair, n, r->basic_key);
    r->basic = true;
    r->token = r->token_buf;
    int rc = 0;
    r->basic_b64 = b64;
    if (fresh || !s_cached(r->basic_key, r->token_buf))
        rc = s_login(r, (const char *)pair, n, err);
    sodium_memzero(pair, sizeof pair);
    return rc;
}
