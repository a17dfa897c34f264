/* Aliases (champion, challenger ...): a name for one version of a model,
 * moved by set_alias. Every move and deletion is kept in the history with
 * who and when, so get_alias_history answers which version held an alias
 * at any moment. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry.h"

/* Letters, digits, _ and -; not "latest" nor v<digits> (MLflow reserves
 * them for versions). */
static int s_field_alias(const msgpack_object *b, cairn_str_t *alias, cairn_err_t *err)
{
    if (cairn_field_str(b, "alias", true, REG_ALIAS_MAX, alias, err) != 0) return -1;
    bool ok = alias->len > 0,
         digits_after_v =
             alias->len > 1 && (alias->ptr[0] == 'v' || alias->ptr[0] == 'V');
    for (size_t i = 0; ok && i < alias->len; i++) {
        char c = alias->ptr[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (i && !(c >= '0' && c <= '9')) digits_after_v = false;
    }
    if (!ok)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "an alias is 1 to %d letters, digits, _ or -",
                             REG_ALIAS_MAX);
    if (digits_after_v || cairn_str_eq(*alias, "latest"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the alias '%.*s' is reserved (latest and v<number> name "
                             "versions)",
                             (int)alias->len, alias->ptr);
    return 0;
}

int reg_pack_aliases(registry_t *r, msgpack_packer *pk, int64_t model_id,
                     int64_t version, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[version > 0 ? Q_ALIASES_OF_VERSION : Q_ALIASES_OF_MODEL];
    sqlite3_bind_int64(st, 1, model_id);
    if (version > 0) sqlite3_bind_int64(st, 2, version);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *alias = (const char *)sqlite3_column_text(st, 0);
        if (version > 0) {
            cairn_pack_cstr(&rp, alias);
        } else {
            msgpack_pack_map(&rp, 2);
            cairn_pack_kv_text(&rp, "alias", alias);
            cairn_pack_cstr(&rp, "version");
            msgpack_pack_int64(&rp, sqlite3_column_int64(st, 1));
        }
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) {
        msgpack_pack_array(pk, n);
        msgpack_sbuffer_write(pk->data, rows.data, rows.size);
    }
    msgpack_sbuffer_destroy(&rows);
    return rc == SQLITE_DONE ? 0 : reg_db_fail(r, "read aliases", err);
}

/* The version alias points to now: 0 when it points nowhere. */
int reg_alias_version(registry_t *r, int64_t id, cairn_str_t alias, int64_t *version,
                      cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_ALIAS_GET];
    sqlite3_bind_int64(st, 1, id);
    reg_bind_str(st, 2, alias);
    int rc = sqlite3_step(st);
    *version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0
                                                 : reg_db_fail(r, "read an alias", err);
}

static void s_cstr(char *out, size_t cap, cairn_str_t s)
{
    snprintf(out, cap, "%.*s", (int)s.len, s.ptr);
}

int reg_set_alias(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, alias;
    int64_t id, version, was = 0;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        s_field_alias(b, &alias, err) != 0 ||
        reg_field_version(b, "version", &version, err) != 0)
        return -1;
    cairn_name_object(req, "model", name.ptr, name.len);
    char nm[REG_NAME_MAX + 1], al[REG_ALIAS_MAX + 1];
    s_cstr(nm, sizeof nm, name);
    s_cstr(al, sizeof al, alias);
    if (reg_begin(r, err) != 0) return -1;
    int rc = reg_model_find(r, req, name, &id, err);
    if (rc == 0) { /* the version must exist */
        msgpack_sbuffer scratch;
        msgpack_sbuffer_init(&scratch);
        msgpack_packer sp;
        msgpack_packer_init(&sp, &scratch, msgpack_sbuffer_write);
        rc = reg_pack_version(r, &sp, id, nm, version, err);
        msgpack_sbuffer_destroy(&scratch);
    }
    if (rc == 0) rc = reg_alias_version(r, id, alias, &was, err);
    if (rc == 0 && was != version) {
        sqlite3_stmt *st = r->q[Q_ALIAS_PUT];
        sqlite3_bind_int64(st, 1, id);
        reg_bind_str(st, 2, alias);
        sqlite3_bind_int64(st, 3, version);
        rc = reg_step_done(r, st, "set an alias", err);
        if (rc == 0)
            rc =
                reg_history_add(r, req, id, nm, "alias_set", alias, version, NULL, err);
    }
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    if (was != version) reg_publish(r, "model.alias_moved", req, nm, version, al);
    return reg_reply_empty(r, req);
}

int reg_delete_alias(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, alias;
    int64_t id, was = 0;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        s_field_alias(b, &alias, err) != 0)
        return -1;
    cairn_name_object(req, "model", name.ptr, name.len);
    char nm[REG_NAME_MAX + 1];
    s_cstr(nm, sizeof nm, name);
    if (reg_begin(r, err) != 0) return -1;
    int rc = reg_model_find(r, req, name, &id, err);
    if (rc == 0) rc = reg_alias_version(r, id, alias, &was, err);
    if (rc == 0 && !was)
        rc = cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                           "registered model '%s' has no alias '%.*s'", nm,
                           (int)alias.len, alias.ptr);
    if (rc == 0) {
        sqlite3_stmt *st = r->q[Q_ALIAS_DEL];
        sqlite3_bind_int64(st, 1, id);
        reg_bind_str(st, 2, alias);
        rc = reg_step_done(r, st, "delete an alias", err);
    }
    if (rc == 0)
        rc = reg_history_add(r, req, id, nm, "alias_deleted", alias, was, NULL, err);
    if (rc != 0 || reg_commit(r, err) != 0) {
        reg_rollback(r);
        return -1;
    }
    return reg_reply_empty(r, req);
}

/* ---- the cache of get_model_version_by_alias' replies ----------------------
 *
 * What every scoring request's rollout asks, over and over: (workspace,
 * model name, alias) -> the reply's bytes, in ALIAS_CACHE_SLOTS slots
 * (direct-mapped by a hash of the key; a collision replaces). Every commit
 * of a write on the database connection empties it (sqlite3_commit_hook),
 * and so does every rollback; a reply read inside an open transaction is
 * not kept. Every change the registry makes is a committed write on that
 * one connection (the plugin opens no other), so none can leave a stale
 * reply. */
#define ALIAS_CACHE_SLOTS 256
#define ALIAS_CACHE_REPLY_MAX 4096 /* bigger replies (long tags) are not kept */
#define WAL_HDRS 96                /* the WAL index's two 48-byte headers */

typedef struct alias_slot {
    char *key; /* ws NUL name NUL alias, malloc'ed with the reply */
    size_t key_len, len;
    const char *reply; /* after the key */
} alias_slot_t;

typedef struct reg_alias_cache {
    alias_slot_t slot[ALIAS_CACHE_SLOTS];
    size_t used;
    sqlite3_stmt *data_version; /* PRAGMA data_version */
    int64_t seen;               /* its value when the slots were filled */
    /* The WAL index's two header copies (the -shm file's first bytes,
     * mapped read-only; sqlite.org/walformat.html): every commit, by any
     * connection, changes them. NULL: PRAGMA data_version each time. */
    const unsigned char *shm;
    unsigned char hdr[WAL_HDRS];
} reg_alias_cache_t;

static void s_cache_clear(reg_alias_cache_t *c)
{
    if (!c->used) return;
    for (size_t i = 0; i < ALIAS_CACHE_SLOTS; i++) {
        free(c->slot[i].key);
        c->slot[i] = (alias_slot_t){0};
    }
    c->used = 0;
}

static int s_on_commit(void *arg)
{
    s_cache_clear(arg);
    return 0; /* the commit goes on */
}

static void s_on_rollback(void *arg)
{
    s_cache_clear(arg);
}

int reg_alias_cache_open(registry_t *r, cairn_err_t *err)
{
    if (!(r->alias_cache = calloc(1, sizeof *r->alias_cache)))
        return cairn_err_oom(err, NULL);
    if (sqlite3_prepare_v3(r->db, "PRAGMA data_version", -1, SQLITE_PREPARE_PERSISTENT,
                           &r->alias_cache->data_version, NULL) != SQLITE_OK)
        return reg_db_fail(r, "prepare PRAGMA data_version", err);
    /* The connection holds the -shm file open (and its DMS lock) for its
     * life, so no one truncates it while it is mapped. */
    const char *db = sqlite3_db_filename(r->db, "main");
    char shm[4096];
    struct stat st;
    int fd = -1;
    if (db && *db && snprintf(shm, sizeof shm, "%s-shm", db) < (int)sizeof shm &&
        (fd = open(shm, O_RDONLY | O_CLOEXEC)) >= 0 && fstat(fd, &st) == 0 &&
        st.st_size >= WAL_HDRS) {
        void *m = mmap(NULL, WAL_HDRS, PROT_READ, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) r->alias_cache->shm = m;
    }
    if (fd >= 0) close(fd);
    sqlite3_commit_hook(r->db, s_on_commit, r->alias_cache);
    sqlite3_rollback_hook(r->db, s_on_rollback, r->alias_cache);
    return 0;
}

void reg_alias_cache_close(registry_t *r)
{
    if (!r->alias_cache) return;
    if (r->db) {
        sqlite3_commit_hook(r->db, NULL, NULL);
        sqlite3_rollback_hook(r->db, NULL, NULL);
    }
    s_cache_clear(r->alias_cache);
    sqlite3_finalize(r->alias_cache->data_version);
    if (r->alias_cache->shm) munmap((void *)r->alias_cache->shm, WAL_HDRS);
    free(r->alias_cache);
    r->alias_cache = NULL;
}

/* The key (ws NUL name NUL alias) into buf; its length, 0 when too long. */
static size_t s_cache_key(char *buf, size_t cap, const char *ws, cairn_str_t name,
                          cairn_str_t alias)
{
    size_t wl = strlen(ws), n = wl + 1 + name.len + 1 + alias.len;
    if (n > cap) return 0;
    memcpy(buf, ws, wl + 1);
    memcpy(buf + wl + 1, name.ptr, name.len);
    buf[wl + 1 + name.len] = '\0';
    memcpy(buf + wl + 2 + name.len, alias.ptr, alias.len);
    return n;
}

/* Empty the cache when another connection (another process given the same
 * database file) has committed since it was filled: the WAL index's
 * headers change then (and on this connection's commits too); without the
 * -shm file mapped, PRAGMA data_version does (only for other connections:
 * this connection's commits are the hook's). Called before the slots are
 * read or filled, so that a commit after it changes what the next call
 * compares. */
static void s_cache_check(reg_alias_cache_t *c)
{
    if (c->shm) { /* no syscall, no lock: compare the headers */
        unsigned char now[WAL_HDRS];
        atomic_thread_fence(memory_order_acquire);
        memcpy(now, c->shm, WAL_HDRS);
        if (memcmp(now, c->hdr, WAL_HDRS) != 0) {
            s_cache_clear(c);
            memcpy(c->hdr, now, WAL_HDRS);
        }
        return;
    }
    int64_t v = sqlite3_step(c->data_version) == SQLITE_ROW
                    ? sqlite3_column_int64(c->data_version, 0)
                    : -1;
    sqlite3_reset(c->data_version);
    if (v != c->seen || v < 0) s_cache_clear(c);
    c->seen = v;
}

static alias_slot_t *s_cache_slot(reg_alias_cache_t *c, const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
    return &c->slot[h % ALIAS_CACHE_SLOTS];
}

static void s_cache_put(reg_alias_cache_t *c, const char *key, size_t key_len,
                        const char *reply, size_t len)
{
    if (len > ALIAS_CACHE_REPLY_MAX) return;
    alias_slot_t *s = s_cache_slot(c, key, key_len);
    char *mem = malloc(key_len + len);
    if (!mem) return; /* not kept: the next lookup reads the database */
    memcpy(mem, key, key_len);
    memcpy(mem + key_len, reply, len);
    if (s->key)
        free(s->key);
    else
        c->used++;
    *s = (alias_slot_t){
        .key = mem, .key_len = key_len, .len = len, .reply = mem + key_len};
}

/* The lookup in one statement (Q_ALIAS_LOOKUP, one read transaction rather
 * than five: the model, the alias, the version, its tags and its aliases
 * were one statement each, and each statement outside a transaction takes
 * and drops the WAL's read lock), plus the tags' only when the version has
 * some. 1 when it finds no row (no such model or alias: the caller's
 * statements then say which), 0 when replied, -1 on a database error. */
static int s_by_alias_fast(registry_t *r, cairn_req_t *req, cairn_str_t name,
                           cairn_str_t alias, const char *nm, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_ALIAS_LOOKUP];
    sqlite3_bind_text(st, 1, reg_ws(req), -1, SQLITE_STATIC);
    reg_bind_str(st, 2, name);
    reg_bind_str(st, 3, alias);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc == SQLITE_DONE ? 1 : reg_db_fail(r, "read a model version", err);
    }
    int64_t version = sqlite3_column_int64(st, 0), id = sqlite3_column_int64(st, 12);
    bool tags = sqlite3_column_int(st, 11) != 0;
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "model_version");
    reg_pack_version_head(pk, st, nm, version);
    msgpack_sbuffer names;
    msgpack_sbuffer_init(&names);
    msgpack_packer np;
    msgpack_packer_init(&np, &names, msgpack_sbuffer_write);
    uint32_t n = 0;
    do {
        cairn_pack_cstr(&np, (const char *)sqlite3_column_text(st, 10));
        n++;
    } while ((rc = sqlite3_step(st)) == SQLITE_ROW);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        msgpack_sbuffer_destroy(&names);
        return reg_db_fail(r, "read a model version", err);
    }
    cairn_pack_cstr(pk, "tags");
    if (tags) {
        st = r->q[Q_VERSION_TAGS];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, version);
        if (reg_pack_tags(r, pk, st, err) != 0) {
            msgpack_sbuffer_destroy(&names);
            return -1;
        }
    } else {
        msgpack_pack_array(pk, 0);
    }
    cairn_pack_cstr(pk, "aliases");
    msgpack_pack_array(pk, n);
    msgpack_sbuffer_write(pk->data, names.data, names.size);
    msgpack_sbuffer_destroy(&names);
    return reg_reply(r, req, CAIRN_ST_OK);
}

int reg_get_model_version_by_alias(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, alias;
    int64_t id, version = 0;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        s_field_alias(b, &alias, err) != 0)
        return -1;
    char nm[REG_NAME_MAX + 1];
    s_cstr(nm, sizeof nm, name);
    char key[CAIRN_HDR_NAME_MAX + REG_NAME_MAX + REG_ALIAS_MAX + 3];
    size_t key_len = s_cache_key(key, sizeof key, reg_ws(req), name, alias);
    if (key_len) s_cache_check(r->alias_cache);
    alias_slot_t *slot = key_len ? s_cache_slot(r->alias_cache, key, key_len) : NULL;
    if (slot && slot->key && slot->key_len == key_len &&
        !memcmp(slot->key, key, key_len)) {
        msgpack_sbuffer_write(reg_reply_begin(r)->data, slot->reply, slot->len);
        return reg_reply(r, req, CAIRN_ST_OK);
    }
    int fast = s_by_alias_fast(r, req, name, alias, nm, err);
    if (fast == 0 && key_len && sqlite3_get_autocommit(r->db))
        s_cache_put(r->alias_cache, key, key_len, r->sb.data, r->sb.size);
    if (fast <= 0) return fast;
    /* no row: say what is missing */
    if (reg_model_find(r, req, name, &id, err) != 0 ||
        reg_alias_version(r, id, alias, &version, err) != 0)
        return -1;
    if (!version)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "registered model '%s' has no alias '%.*s'", nm,
                             (int)alias.len, alias.ptr);
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "model_version");
    if (reg_pack_version(r, pk, id, nm, version, err) != 0) return -1;
    return reg_reply(r, req, CAIRN_ST_OK);
}

/* With at: the version that held the alias at that moment. */
static int s_history_at(registry_t *r, cairn_req_t *req, int64_t id, const char *nm,
                        cairn_str_t alias, int64_t at, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_HISTORY_AT];
    sqlite3_bind_int64(st, 1, id);
    reg_bind_str(st, 2, alias);
    sqlite3_bind_int64(st, 3, at);
    int rc = sqlite3_step(st);
    bool set = rc == SQLITE_ROW &&
               !strcmp((const char *)sqlite3_column_text(st, 0), "alias_set");
    int64_t version = set ? sqlite3_column_int64(st, 1) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return reg_db_fail(r, "read the history", err);
    if (!set)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no version of '%s' held the alias '%.*s' at %lld", nm,
                             (int)alias.len, alias.ptr, (long long)at);
    msgpack_packer *pk = reg_reply_begin(r);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "model_version");
    if (reg_pack_version(r, pk, id, nm, version, err) != 0) {
        if (err->st == CAIRN_ST_NOT_FOUND)
            cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                          "version %lld of '%s' held the alias '%.*s' then, and has "
                          "been deleted since",
                          (long long)version, nm, (int)alias.len, alias.ptr);
        return -1;
    }
    return reg_reply(r, req, CAIRN_ST_OK);
}

int reg_get_alias_history(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t name, alias;
    int64_t id, at = 0;
    int has_at;
    if (reg_field_name(b, "name", &name, err) != 0 ||
        s_field_alias(b, &alias, err) != 0 ||
        (has_at = cairn_field_int(b, "at", false, &at, err)) < 0 ||
        reg_model_find(r, req, name, &id, err) != 0)
        return -1;
    char nm[REG_NAME_MAX + 1];
    s_cstr(nm, sizeof nm, name);
    if (has_at == 0) return s_history_at(r, req, id, nm, alias, at, err);
    sqlite3_stmt *st = r->q[Q_HISTORY_OF_ALIAS];
    sqlite3_bind_int64(st, 1, id);
    reg_bind_str(st, 2, alias);
    msgpack_sbuffer rows;
    msgpack_sbuffer_init(&rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool set = !strcmp((const char *)sqlite3_column_text(st, 0), "alias_set");
        msgpack_pack_map(&rp, 4);
        cairn_pack_cstr(&rp, "version");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 1));
        cairn_pack_kv_str(&rp, "action", set ? "set" : "deleted");
        cairn_pack_kv_text(&rp, "set_by", (const char *)sqlite3_column_text(st, 2));
        cairn_pack_cstr(&rp, "set_at");
        msgpack_pack_int64(&rp, sqlite3_column_int64(st, 3));
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) {
        msgpack_packer *pk = reg_reply_begin(r);
        msgpack_pack_map(pk, 1);
        cairn_pack_cstr(pk, "history");
        msgpack_pack_array(pk, n);
        msgpack_sbuffer_write(&r->sb, rows.data, rows.size);
    }
    msgpack_sbuffer_destroy(&rows);
    return rc == SQLITE_DONE ? reg_reply(r, req, CAIRN_ST_OK)
                             : reg_db_fail(r, "read the history", err);
}
