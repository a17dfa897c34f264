/* plugins/secrets/vault.h — the master keys and sealing.
 *
 * A value is sealed with XChaCha20-Poly1305 (libsodium's IETF AEAD) under
 * the current master key, with a fresh random nonce, and with the
 * workspace and name as associated data, so that a sealed value moved to
 * another row fails to open. Keys live in sodium_malloc'd memory (locked,
 * kept out of core dumps, zeroed when freed).
 *
 * Key files: `<path>` holds "<id> <64 hex>\n" for the current key. A
 * rotation writes `<path>.next` (id + 1) first, re-seals every value under
 * it in one transaction, then renames it over `<path>`: a crash anywhere in
 * between leaves every value readable by the key its row names.
 * From the environment (the setting key_env names a variable holding 64 hex
 * characters) the key is id 1 and cannot be rotated in place.
 */
#ifndef SECRETS_VAULT_H
#define SECRETS_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#define VAULT_NONCE_BYTES 24
#define VAULT_TAG_BYTES 16

typedef struct vault vault_t;

/* Load the key (from the variable env when it is set, else the file at
 * path, created with a new random key when missing). */
vault_t *vault_open(const char *path, const char *env, cairn_err_t *err);
void vault_close(vault_t **self_p);
uint32_t vault_key_id(const vault_t *self);
/* Whether key id is held (the current one, or a rotation's next). */
int vault_has_key(const vault_t *self, uint32_t id);

/* Seal n bytes of plain under the current key: out gets nonce ‖ ciphertext
 * ‖ tag (n + VAULT_NONCE_BYTES + VAULT_TAG_BYTES bytes). */
int vault_seal(const vault_t *self, uint32_t key_id, const unsigned char *plain,
               size_t n, const char *ad, size_t ad_len, unsigned char *out,
               cairn_err_t *err);
/* Open what vault_seal made under key_id into plain (len -
 * VAULT_NONCE_BYTES - VAULT_TAG_BYTES bytes); -1 with a 500 when it does
 * not authenticate. */
int vault_open_value(const vault_t *self, uint32_t key_id, const unsigned char *sealed,
                     size_t len, const char *ad, size_t ad_len, unsigned char *plain,
                     cairn_err_t *err);

/* Rotation: make the next key (written to <path>.next, synced), ... */
int vault_rotate_begin(vault_t *self, uint32_t *next_id, cairn_err_t *err);
/* ... then, once every value is sealed under it and committed, make it the
 * current key (rename over <path>); abort drops it instead. */
int vault_rotate_commit(vault_t *self, cairn_err_t *err);
void vault_rotate_abort(vault_t *self);

#endif
