/* The master keys and sealing (see vault.h). */
#define _GNU_SOURCE
#include "vault.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define KEY_LINE_MAX 96

typedef struct key {
    uint32_t id;
    unsigned char *bytes; /* sodium_malloc'd; NULL when absent */
} key_t_;

struct vault {
    char *path, *next_path; /* NULL paths: the key came from the environment */
    key_t_ cur, next;
};

static void s_key_free(key_t_ *k)
{
    if (k->bytes) sodium_free(k->bytes);
    k->bytes = NULL;
    k->id = 0;
}

static int s_key_alloc(key_t_ *k, cairn_err_t *err)
{
    if (!(k->bytes = sodium_malloc(KEY_BYTES))) return cairn_err_oom(err, "for a key");
    return 0;
}

/* "<id> <64 hex>" into k. */
static int s_key_parse(const char *line, key_t_ *k, const char *where, cairn_err_t *err)
{
    char *end = NULL;
    unsigned long id = strtoul(line, &end, 10);
    size_t bin = 0;
    if (!end || *end != ' ' || id == 0 || id > UINT32_MAX || s_key_alloc(k, err) != 0 ||
        sodium_hex2bin(k->bytes, KEY_BYTES, end + 1, strlen(end + 1), " \n", &bin,
                       NULL) != 0 ||
        bin != KEY_BYTES) {
        s_key_free(k);
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "secrets: %s does not hold '<id> <64 hex characters>'",
                             where);
    }
    k->id = (uint32_t)id;
    return 0;
}

/* Read a key file; 1 when it does not exist. */
static int s_key_read(const char *path, key_t_ *k, cairn_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) return 1;
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "secrets: cannot open %s: %s", path, strerror(errno));
    char *line = sodium_malloc(KEY_LINE_MAX + 1);
    ssize_t n = line ? read(fd, line, KEY_LINE_MAX) : -1;
    close(fd);
    int rc = n > 0 ? (line[n] = '\0', s_key_parse(line, k, path, err))
                   : cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                                   "secrets: cannot read %s", path);
    if (line) sodium_free(line);
    return rc;
}

/* Write k to path (mode 0600, exclusive, synced, its directory too). */
static int s_key_write(const char *path, const key_t_ *k, cairn_err_t *err)
{
    char *line = sodium_malloc(KEY_LINE_MAX + 1);
    if (!line) return cairn_err_oom(err, "for a key");
    int n = snprintf(line, KEY_LINE_MAX, "%u ", k->id);
    sodium_bin2hex(line + n, (size_t)(KEY_LINE_MAX - n), k->bytes, KEY_BYTES);
    size_t len = strlen(line);
    line[len++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, line, len) == (ssize_t)len && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    sodium_free(line);
    if (!ok) {
        if (fd >= 0) unlink(path);
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "secrets: cannot write the key file %s: %s", path,
                             strerror(e));
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int s_key_new(key_t_ *k, uint32_t id, cairn_err_t *err)
{
    if (s_key_alloc(k, err) != 0) return -1;
    crypto_aead_xchacha20poly1305_ietf_keygen(k->bytes);
    k->id = id;
    return 0;
}

static int s_open_env(vault_t *v, const char *hex, const char *env, cairn_err_t *err)
{
    char where[128];
    snprintf(where, sizeof where, "the variable %s", env);
    char *line = sodium_malloc(KEY_LINE_MAX + 8);
    if (!line) return cairn_err_oom(err, "for a key");
    snprintf(line, KEY_LINE_MAX + 8, "1 %.*s", 64, hex);
    int rc = strlen(hex) == 64
                 ? s_key_parse(line, &v->cur, where, err)
                 : cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                 "secrets: %s must hold 64 hex characters", where);
    sodium_free(line);
    return rc;
}

static int s_open_files(vault_t *v, const char *path, cairn_err_t *err)
{
    if (!(v->path = strdup(path)) || asprintf(&v->next_path, "%s.next", path) < 0) {
        v->next_path = NULL;
        return cairn_err_oom(err, NULL);
    }
    int rc = s_key_read(v->path, &v->cur, err);
    if (rc == 1) { /* first start: a new key */
        if (s_key_new(&v->cur, 1, err) != 0 || s_key_write(v->path, &v->cur, err) != 0)
            return -1;
        rc = 0;
    }
    if (rc != 0) return -1;
    /* A rotation cut short: its next key may already seal some values. */
    rc = s_key_read(v->next_path, &v->next, err);
    return rc < 0 ? -1 : 0;
}

vault_t *vault_open(const char *path, const char *env, cairn_err_t *err)
{
    if (sodium_init() < 0) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                      "libsodium cannot start");
        return NULL;
    }
    vault_t *v = calloc(1, sizeof *v);
    if (!v) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    const char *hex = env && *env ? getenv(env) : NULL;
    if ((hex && *hex ? s_open_env(v, hex, env, err) : s_open_files(v, path, err)) !=
        0) {
        vault_close(&v);
        return NULL;
    }
    return v;
}

void vault_close(vault_t **self_p)
{
    if (!self_p || !*self_p) return;
    vault_t *v = *self_p;
    s_key_free(&v->cur);
    s_key_free(&v->next);
    free(v->path);
    free(v->next_path);
    free(v);
    *self_p = NULL;
}

uint32_t vault_key_id(const vault_t *self)
{
    return self->cur.id;
}

static const key_t_ *s_key(const vault_t *self, uint32_t id)
{
    if (self->cur.bytes && self->cur.id == id) return &self->cur;
    if (self->next.bytes && self->next.id == id) return &self->next;
    return NULL;
}

int vault_has_key(const vault_t *self, uint32_t id)
{
    return s_key(self, id) != NULL;
}

int vault_seal(const vault_t *self, uint32_t key_id, const unsigned char *plain,
               size_t n, const char *ad, size_t ad_len, unsigned char *out,
               cairn_err_t *err)
{
    const key_t_ *k = s_key(self, key_id);
    if (!k)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "secrets: no master key %u", key_id);
    randombytes_buf(out, VAULT_NONCE_BYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + VAULT_NONCE_BYTES, &clen, plain, n,
                                               (const unsigned char *)ad, ad_len, NULL,
                                               out, k->bytes);
    return 0;
}

int vault_open_value(const vault_t *self, uint32_t key_id, const unsigned char *sealed,
                     size_t len, const char *ad, size_t ad_len, unsigned char *plain,
                     cairn_err_t *err)
{
    const key_t_ *k = s_key(self, key_id);
    unsigned long long plen = 0;
    if (!k || len < VAULT_NONCE_BYTES + VAULT_TAG_BYTES ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain, &plen, NULL, sealed + VAULT_NONCE_BYTES, len - VAULT_NONCE_BYTES,
            (const unsigned char *)ad, ad_len, sealed, k->bytes) != 0)
        return cairn_err_set(
            err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
            "secrets: a stored value does not open under master key %u "
            "(wrong key, or the database was altered)",
            key_id);
    return 0;
}

int vault_rotate_begin(vault_t *self, uint32_t *next_id, cairn_err_t *err)
{
    if (!self->path)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "the master key comes from the environment: rotate it "
                             "there (and re-seal by exporting and setting the values)");
    s_key_free(&self->next);
    unlink(self->next_path); /* an earlier rotation that never committed */
    if (s_key_new(&self->next, self->cur.id + 1, err) != 0 ||
        s_key_write(self->next_path, &self->next, err) != 0) {
        s_key_free(&self->next);
        return -1;
    }
    *next_id = self->next.id;
    return 0;
}

int vault_rotate_commit(vault_t *self, cairn_err_t *err)
{
    if (rename(self->next_path, self->path) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "secrets: cannot install the new key file: %s",
                             strerror(errno));
    s_key_free(&self->cur);
    self->cur = self->next;
    self->next = (key_t_){0};
    return 0;
}

void vault_rotate_abort(vault_t *self)
{
    s_key_free(&self->next);
    if (self->next_path) unlink(self->next_path);
}
