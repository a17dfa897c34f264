/* cairn/secrets.h — the key vault from C (the `secrets` service;
 * docs/SECRETS.md).
 *
 * Thin, synchronous wrappers over the vault's verbs:
 *
 *     if (cairn_secrets_set(client, "db/password", pw, strlen(pw), NULL, &err) != 0)
 *         ...
 *     cairn_secret_t *s = NULL;
 *     if (cairn_secrets_get(client, "db/password", &s, &err) != 0) ...
 *     size_t len;
 *     const char *v = cairn_secret_value(s, &len);   // NUL-terminated too
 *     ...
 *     cairn_secret_free(&s);                           // zeroed, then freed
 *
 * A value read back lives in libsodium's guarded memory (locked, out of
 * core dumps) and is zeroed when freed; the reply that carried it is wiped
 * before it is released, and so is the request that set one. Names are 1 to
 * CAIRN_SECRET_NAME_MAX characters of letters, digits and `. _ - /`, one
 * namespace per workspace (the client's, cairn_client_set_workspace).
 *
 * Every function returns 0, or -1 with err filled (err may be NULL); a
 * refusal from the server keeps its status and code (403 forbidden for a
 * role without secrets.read, 404 not_found for an unknown name, 409
 * conflict when rotating a key taken from the environment). A reply
 * without what the service promises is 502 bad_reply.
 */
#ifndef CAIRN_SECRETS_H
#define CAIRN_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/client.h"
#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_SECRETS_SVC "secrets"
#define CAIRN_SECRET_NAME_MAX 128
#define CAIRN_SECRET_VALUE_MAX (64u * 1024u) /* bytes */

/* set_secret {name, value}: value is len bytes (sent as a str when they are
 * UTF-8, else as bin; more than CAIRN_SECRET_VALUE_MAX is refused here,
 * 413; value may be NULL when len is 0). *version (may be
 * NULL) receives the value's version: 1 when the name is new. */
CAIRN_EXPORT int cairn_secrets_set(cairn_client_t *client, const char *name,
                                   const void *value, size_t len, int64_t *version,
                                   cairn_err_t *err);

/* A value read back (opaque; freed with cairn_secret_free). */
typedef struct cairn_secret cairn_secret_t;

/* get_secret {name}: *secret receives the value. */
CAIRN_EXPORT int cairn_secrets_get(cairn_client_t *client, const char *name,
                                   cairn_secret_t **secret, cairn_err_t *err);
/* The value's bytes (*len, when len is not NULL, their count), followed by
 * a NUL that is not counted; valid until cairn_secret_free. */
CAIRN_EXPORT const char *cairn_secret_value(const cairn_secret_t *s, size_t *len);
/* Whether the bytes are UTF-8 text (the service's str) rather than bin. */
CAIRN_EXPORT bool cairn_secret_is_text(const cairn_secret_t *s);
CAIRN_EXPORT int64_t cairn_secret_version(const cairn_secret_t *s);
/* Zero the value, free it and set *s to NULL; NULL-safe, safe twice. */
CAIRN_EXPORT void cairn_secret_free(cairn_secret_t **s);

/* One row of list_secrets: never a value. Times are ms since the epoch. */
typedef struct cairn_secret_info {
    const char *name;
    int64_t created, updated, version;
} cairn_secret_info_t;

/* A page of names (opaque; destroyed with cairn_secret_list_destroy). */
typedef struct cairn_secret_list cairn_secret_list_t;

/* list_secrets {max_results, page_token}: names in order. max_results 0:
 * the service's default (1000); else 1 to 1000. page_token NULL: the
 * first page; else the previous page's cairn_secret_list_next_page. */
CAIRN_EXPORT int cairn_secrets_list(cairn_client_t *client, uint32_t max_results,
                                    const char *page_token, cairn_secret_list_t **list,
                                    cairn_err_t *err);
CAIRN_EXPORT size_t cairn_secret_list_count(const cairn_secret_list_t *l);
/* Row i (< count); borrowed from the list. */
CAIRN_EXPORT const cairn_secret_info_t *cairn_secret_list_at(
    const cairn_secret_list_t *l, size_t i);
/* The token of the next page, or NULL on the last one; borrowed. */
CAIRN_EXPORT const char *cairn_secret_list_next_page(const cairn_secret_list_t *l);
CAIRN_EXPORT void cairn_secret_list_destroy(cairn_secret_list_t **l);

/* delete_secret {name}: 404 when there is none. */
CAIRN_EXPORT int cairn_secrets_delete(cairn_client_t *client, const char *name,
                                      cairn_err_t *err);

/* rotate_master_key (secrets.admin): every value of every workspace
 * re-sealed under a new master key. *key_id and *resealed (each may be
 * NULL) receive the new key's id and how many values were re-sealed. */
CAIRN_EXPORT int cairn_secrets_rotate_master_key(cairn_client_t *client,
                                                 uint32_t *key_id, int64_t *resealed,
                                                 cairn_err_t *err);

#ifdef __cplusplus
}
#endif
#endif
