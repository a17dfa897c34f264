/* auth_mode token (tokens.h): a request to a token endpoint carries a
 * Cairn token (`Authorization: Bearer TOKEN`, as `cairn login` or
 * auth.create_token gives it). Whether it may score is asked of the
 * kernel itself: this thread calls endpoints.check_access {endpoint} with
 * that token, in the endpoint's workspace, so the kernel's own
 * authorization decides (the verb needs endpoints.write, as get_keys does:
 * whoever may read a key may score). A yes is cached, keyed by the
 * BLAKE2b of the token and the endpoint, for TOKEN_TTL_MS, and forgotten
 * at once when the auth service says something changed (auth.changed: a
 * token revoked, a role unassigned). A no is never cached. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include <msgpack.h>

#include "cairn/client.h"
#include "cairn/msg.h"
#include "tokens.h"

#define TOKEN_MAX 1024
#define TOKEN_TTL_MS 10000
#define SLOTS 1024 /* the cache: direct-mapped, the oldest overwritten */

typedef struct slot {
    unsigned char key[32];
    uint64_t until_ms;
    uint64_t gen; /* sc->auth_gen when cached */
} slot_t;

struct token_cache {
    pthread_mutex_t mu;
    atomic_ullong gen; /* auth.changed events seen */
    char kernel[4096]; /* the kernel's frontend */
    slot_t slot[SLOTS];
};

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

token_cache_t *token_cache_new(const char *kernel_endpoint)
{
    token_cache_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_mutex_init(&t->mu, NULL);
    snprintf(t->kernel, sizeof t->kernel, "%s", kernel_endpoint);
    return t;
}

void token_cache_forget(token_cache_t *t)
{
    atomic_fetch_add(&t->gen, 1);
}

void token_cache_free(token_cache_t **self_p)
{
    token_cache_t *t = *self_p;
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    sodium_memzero(t, sizeof *t);
    free(t);
    *self_p = NULL;
}

static void s_key(const char *token, size_t len, const char *endpoint,
                  unsigned char out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const unsigned char *)endpoint,
                              strlen(endpoint) + 1);
    crypto_generichash_update(&st, (const unsigned char *)token, len);
    crypto_generichash_final(&st, out, 32);
}

static bool s_cached(token_cache_t *t, const unsigned char key[32])
{
    slot_t *s = &t->slot[(key[0] | key[1] << 8) % SLOTS];
    pthread_mutex_lock(&t->mu);
    bool hit = !sodium_memcmp(s->key, key, 32) && s->until_ms > s_now_ms() &&
               s->gen == atomic_load(&t->gen);
    pthread_mutex_unlock(&t->mu);
    return hit;
}

static void s_store(token_cache_t *t, const unsigned char key[32], uint64_t gen)
{
    slot_t *s = &t->slot[(key[0] | key[1] << 8) % SLOTS];
    pthread_mutex_lock(&t->mu);
    memcpy(s->key, key, 32);
    s->until_ms = s_now_ms() + TOKEN_TTL_MS;
    s->gen = gen;
    pthread_mutex_unlock(&t->mu);
}

/* Ask the kernel: 0 may score; -1 with err (401, 403, 404 from the
 * kernel or the verb; 503 when the kernel cannot be reached). */
static int s_ask(token_cache_t *t, const char *ws, const char *endpoint,
                 const char *token, cairn_err_t *err)
{
    cairn_client_t *c = cairn_client_new_opts(
        &(cairn_client_opts_t){
            .endpoint = t->kernel, .token = token, .server_key = "", .workspace = ws},
        err);
    if (!c) return -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "endpoint", endpoint);
    int rc = cairn_client_call(c, "endpoints", "check_access", sb.data, sb.size,
                               TOKEN_TTL_MS, NULL, err);
    msgpack_sbuffer_destroy(&sb);
    cairn_client_destroy(&c);
    return rc;
}

int token_check(token_cache_t *t, const char *ws, const char *endpoint,
                const char *token, cairn_err_t *err)
{
    size_t len = strnlen(token, TOKEN_MAX + 1);
    bool ok = len > 0 && len <= TOKEN_MAX;
    for (size_t i = 0; ok && i < len; i++) ok = token[i] > 0x20 && token[i] < 0x7f;
    if (!ok)
        return cairn_err_set(err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                             "a Cairn token of endpoint %s is needed: Authorization: "
                             "Bearer TOKEN (printable, at most %d bytes)",
                             endpoint, TOKEN_MAX);
    unsigned char key[32];
    s_key(token, len, endpoint, key);
    if (s_cached(t, key)) return 0;
    uint64_t gen = atomic_load(&t->gen); /* before asking: a change meanwhile wins */
    if (s_ask(t, ws, endpoint, token, err) != 0) return -1;
    s_store(t, key, gen);
    return 0;
}
