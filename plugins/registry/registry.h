/* The registry plugin's shared state and helpers (private to the plugin).
 *
 * Files: plugin.c (settings, schema, verb table, init), models.c
 * (registered models and their tags), versions.c (model versions and their
 * tags), aliases.c (aliases and the history of every change), rfilter.c
 * (MLflow's registry filter, compiled to SQL), assets.c (versioned assets:
 * environments, envs.c, and data assets, data.c), source.c (a runs:/
 * source pinned), mlmodel.c (an MLflow model's flavor and signature),
 * files.c (a version's manifest, its bytes back), refs.c (references),
 * lineage.c (the graph). One SQLite file of its own,
 * STATE/registry.db; every row carries its workspace. */
#ifndef CAIRN_REGISTRY_H
#define CAIRN_REGISTRY_H

#define CAIRN_PLUGIN_SOURCE
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/msg.h"
#include "cairn/plugin.h"
#include "refs.h"

#define REG_TAG_KEY_MAX 250 /* as MLflow's */
#define REG_TAG_VALUE_MAX 5000
#define REG_TEXT_MAX 65536                   /* description, signature, source */
#define REG_TAGS_MAX 100                     /* tags in one request */
#define REG_PAGE_MAX 1000                    /* max_results */
#define REG_OWNER_MAX 512                    /* a pin owner key (source.c) */
#define REG_REF_NAME_MAX (REG_NAME_MAX + 64) /* model:NAME:VERSION */
#define REG_HASH_MAX 80                      /* "sha256:" and 64 hex */
#define REG_PATH_MAX 1024                    /* a file's path in a version */

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_MODEL_INSERT,
    Q_MODEL_BY_NAME,
    Q_MODEL_TOUCH,
    Q_MODEL_DESCRIBE,
    Q_MODEL_RENAME,
    Q_MODEL_DELETE,
    Q_MODEL_NEXT_VERSION,
    Q_MODEL_TAG_PUT,
    Q_MODEL_TAG_DEL,
    Q_MODEL_TAGS,
    Q_MODEL_TAGS_DROP,
    Q_VERSION_INSERT,
    Q_VERSION_GET,
    Q_VERSION_LATEST,
    Q_VERSION_DESCRIBE,
    Q_VERSION_DELETE,
    Q_VERSIONS_DROP,
    Q_VERSIONS_PINNED,
    Q_VERSION_TAG_PUT,
    Q_VERSION_TAG_DEL,
    Q_VERSION_TAGS,
    Q_VERSION_TAGS_DROP,
    Q_ALIAS_PUT,
    Q_ALIAS_GET,
    Q_ALIAS_DEL,
    Q_ALIASES_OF_MODEL,
    Q_ALIASES_OF_VERSION,
    Q_ALIASES_DROP,
    Q_ALIAS_LOOKUP,
    Q_HISTORY_ADD,
    Q_HISTORY_OF_ALIAS,
    Q_HISTORY_AT,
    Q_HISTORY_OF_MODEL,
    Q_EDGE_PUT,
    Q_MODEL_NAME_BY_ID,
    Q_FILE_PUT,
    Q_FILE_GET,
    Q_FILES_PAGE,
    Q_FILES_DROP,
    Q_FILES_DROP_PREFIX,
    Q_COUNT
};

typedef struct registry {
    cairn_ctx_t *ctx;
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    msgpack_sbuffer sb; /* the reply being built */
    msgpack_packer pk;
    const char *artifacts_svc;           /* the service that pins a runs:/ source */
    struct reg_pending *pending;         /* versions waiting for their pins */
    struct reg_stmt *stmts;              /* statements by SQL text (assets.c) */
    struct reg_alias_cache *alias_cache; /* get_model_version_by_alias' replies */
} registry_t;

/* A request deferred on a nested call: a create_model_version waiting for
 * its source's pins (source.c), a read_file for its bytes (files.c). Its
 * slices point into the request's body, valid until the reply. */
typedef struct reg_pending {
    registry_t *r;
    cairn_req_t *req; /* deferred */
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char name[REG_NAME_MAX + 1];
    int64_t model_id, version;
    cairn_str_t source, text[5];      /* text: source, run_id, flavor, signature,
                                         description */
    cairn_str_t run_id, path;         /* of a runs:/ source */
    char *owned_signature;            /* read from its MLmodel (mlmodel.c) */
    char owner[REG_OWNER_MAX];        /* the pins' owner key */
    struct reg_data_new *data;        /* a create_data_asset's (data.c) */
    msgpack_sbuffer *resolved;        /* resolve's reply so far (resolve.c) */
    char file_path[REG_PATH_MAX + 1]; /* read_file's */
    char file_hash[REG_HASH_MAX], file_alg[16];
    const msgpack_object *tags;
    struct reg_pending *next;
} reg_pending_t;

/* source.c: 0 with the run id and path of a `runs:/RUN_ID/PATH` source, 1
 * for any other source, -1 (400) for a malformed runs:/ one. */
int reg_source_parse(cairn_str_t source, cairn_str_t *run_id, cairn_str_t *path,
                     cairn_err_t *err);
/* Pin the blobs of p's source (a nested call); its answer finishes p
 * (writes the version and replies) and frees it. */
int reg_source_pin(reg_pending_t *p, cairn_err_t *err);
/* mlmodel.c: read the source's MLmodel, if any, into p's missing flavor
 * and signature (a nested call), then reg_source_pin. */
int reg_mlmodel_probe(reg_pending_t *p, cairn_err_t *err);
/* Drop the pins of a version (best effort, asynchronous). */
void reg_unpin(registry_t *r, const char *ws, int64_t model_id, int64_t version);
/* The pinned versions of model_id (version 0: all; else that one): *n
 * counts them all, out keeps the first cap. */
int reg_pinned(registry_t *r, int64_t model_id, int64_t version, int64_t *out,
               size_t cap, size_t *n, cairn_err_t *err);
void reg_pin_owner(registry_t *r, const char *ws, int64_t model_id, int64_t version,
                   char *out, size_t cap);
/* What every version of model_id's owner key starts with. */
void reg_model_owner_prefix(registry_t *r, const char *ws, int64_t model_id, char *out,
                            size_t cap);
/* Pin p's source (p->run_id, p->path) for p->owner (a nested call in
 * p's workspace); done gets pin_artifacts' answer. */
int reg_pin_source(reg_pending_t *p, cairn_result_fn *done, cairn_err_t *err);
/* One entry {path, hash_alg, hash, size} of pin_artifacts' files (502
 * when malformed). */
int reg_file_entry(const msgpack_object *f, cairn_str_t *path, cairn_str_t *alg,
                   cairn_str_t *hash, uint64_t *size, cairn_err_t *err);
/* content_hash ("sha256:" + hex) of pin_artifacts' files. */
int reg_manifest_hash(const msgpack_object *files, char out[REG_HASH_MAX],
                      cairn_err_t *err);
/* Drop owner's pins (best effort, asynchronous). */
void reg_unpin_owner(registry_t *r, const char *ws, const char *owner);
/* Milliseconds left before req's deadline (at least 1): a nested call's ttl. */
uint32_t reg_ttl_left(cairn_req_t *req);
/* versions.c: write p's version with content_hash and its files (the
 * pin's list) and reply; unlink and free a pending one. */
int reg_version_finish(reg_pending_t *p, const char *content_hash,
                       const msgpack_object *files, cairn_err_t *err);
void reg_pending_free(reg_pending_t *p);

/* ---- references (refs.c) ------------------------------------------------- */

/* A model reference's model id and version number (404s: no model, no
 * alias, no version at all; an explicit number is not checked). */
int reg_ref_model(registry_t *r, cairn_req_t *req, const reg_ref_t *ref, int64_t *id,
                  int64_t *version, cairn_err_t *err);
/* data.c: a data reference's pin owner, canonical name (data:NAME:V) and
 * content hash (404 when there is no such version). */
void reg_data_new_free(struct reg_data_new *d);
/* Pack a data asset's / an environment's version as its reply map. */
int reg_pack_data(registry_t *r, msgpack_packer *pk, const char *ws, const char *name,
                  int64_t version, cairn_err_t *err);
int reg_pack_env(registry_t *r, msgpack_packer *pk, const char *ws, const char *name,
                 int64_t version, cairn_err_t *err);
/* envs.c: an environment reference's canonical name (env:NAME:V; 404 when
 * there is no such version). */
int reg_env_target(registry_t *r, cairn_req_t *req, const reg_ref_t *ref,
                   char name[REG_REF_NAME_MAX], cairn_err_t *err);
int reg_data_target(registry_t *r, cairn_req_t *req, const reg_ref_t *ref,
                    char owner[REG_OWNER_MAX], char name[REG_REF_NAME_MAX],
                    char content_hash[REG_HASH_MAX], cairn_err_t *err);

/* ---- files (files.c) ------------------------------------------------------ */

/* Record the manifest (pin_artifacts' files) of owner; in the caller's
 * transaction. */
int reg_files_put(registry_t *r, const char *owner, const msgpack_object *files,
                  cairn_err_t *err);
/* Drop owner's manifest (prefix: of every owner key that starts with it). */
int reg_files_drop(registry_t *r, const char *owner, bool prefix, cairn_err_t *err);

/* ---- helpers (plugin.c) --------------------------------------------------- */

const char *reg_ws(cairn_req_t *req);
int reg_db_fail(registry_t *r, const char *doing, cairn_err_t *err);
/* Step a statement that returns no row (or ignores it), then reset it. */
int reg_step_done(registry_t *r, sqlite3_stmt *st, const char *doing, cairn_err_t *err);
int reg_begin(registry_t *r, cairn_err_t *err);
int reg_commit(registry_t *r, cairn_err_t *err);
void reg_rollback(registry_t *r);
msgpack_packer *reg_reply_begin(registry_t *r);
int reg_reply(registry_t *r, cairn_req_t *req, int st);
/* Defer req and return its body's field key anew (NULL when absent or
 * nil): deferring moves the body's objects out of the runtime's shared
 * zone, so pointers taken before are stale (string slices stay valid:
 * they point into the message's bytes). */
const msgpack_object *reg_defer(cairn_req_t *req, const char *key);
/* 200 with an empty map: what a change with nothing to return answers. */
int reg_reply_empty(registry_t *r, cairn_req_t *req);
void reg_bind_str(sqlite3_stmt *st, int i, cairn_str_t s);

/* The body's `name` (required): non-empty, at most REG_NAME_MAX bytes, no
 * control characters, no ':' or '@' (references use them). */
int reg_field_name(const msgpack_object *b, const char *key, cairn_str_t *out,
                   cairn_err_t *err);
/* The model named by the body's `name` (404 when there is none). */
int reg_model_find(registry_t *r, cairn_req_t *req, cairn_str_t name, int64_t *id,
                   cairn_err_t *err);
/* A version number: an integer, or a string of digits (MLflow's clients
 * send one). */
int reg_field_version(const msgpack_object *b, const char *key, int64_t *out,
                      cairn_err_t *err);
/* Validate `tags` [{key*, value}] (absent: none). */
int reg_field_tags(const msgpack_object *b, const msgpack_object **tags,
                   cairn_err_t *err);
/* Pack the rows of a (key, value) statement as [{key, value}]. */
int reg_pack_tags(registry_t *r, msgpack_packer *pk, sqlite3_stmt *st,
                  cairn_err_t *err);
/* Parse and check a page: max_results (1..REG_PAGE_MAX, default dflt) and
 * page_token (an offset this plugin gave out). */
int reg_page(const msgpack_object *b, uint64_t dflt, uint64_t *limit, uint64_t *offset,
             cairn_err_t *err);
void reg_pack_next_token(msgpack_packer *pk, uint64_t offset);
/* Prepare `head AND (the filter) ORDER BY order LIMIT ? OFFSET ?`, with
 * head's one placeholder bound to ws (rfilter.h: target says which). NULL
 * with err on a bad filter or a database failure. */
sqlite3_stmt *reg_search_prepare(registry_t *r, int target, cairn_str_t filter,
                                 const char *head, const char *order, const char *ws,
                                 uint64_t limit, uint64_t offset, cairn_err_t *err);

/* order_by ["KEY [ASC|DESC]", ...] over cols (at most ncols clauses),
 * as SQL terms into out, then tail (the tiebreakers). */
typedef struct reg_order_col {
    const char *key, *col;
} reg_order_col_t;
int reg_order(const msgpack_object *b, const reg_order_col_t *cols, size_t ncols,
              const char *tail, char *out, size_t cap, cairn_err_t *err);

/* Record a change: kind ("alias_set", "version_created", ...), alias ("" for
 * none), version (0 for none), detail. In the caller's transaction. */
int reg_history_add(registry_t *r, cairn_req_t *req, int64_t model_id, const char *name,
                    const char *kind, cairn_str_t alias, int64_t version,
                    const char *detail, cairn_err_t *err);
/* A tag change or a description as history: detail "key=value" / the key.
 * In the caller's transaction. */
int reg_history_tag(registry_t *r, cairn_req_t *req, int64_t model_id, cairn_str_t name,
                    int64_t version, bool set, cairn_str_t key, cairn_str_t value,
                    cairn_err_t *err);
/* Publish an event {name, version, alias} on the bus (best effort). */
void reg_publish(registry_t *r, const char *topic, cairn_req_t *req, const char *name,
                 int64_t version, const char *alias);

/* ---- the verbs ------------------------------------------------------------ */

int reg_create_registered_model(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_get_registered_model(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_search_registered_models(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_rename_registered_model(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_update_registered_model(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_delete_registered_model(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_set_registered_model_tag(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_delete_registered_model_tag(void *state, cairn_req_t *req, cairn_err_t *err);

int reg_create_model_version(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_get_model_version(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_search_model_versions(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_update_model_version(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_delete_model_version(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_set_model_version_tag(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_delete_model_version_tag(void *state, cairn_req_t *req, cairn_err_t *err);

int reg_set_alias(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_delete_alias(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_get_model_version_by_alias(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_get_alias_history(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_get_model_history(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_log_input(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_log_deployment(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_lineage(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_list_files(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_read_file(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_resolve(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_get_model_version_download_uri(void *state, cairn_req_t *req, cairn_err_t *err);

/* lineage.c: record an edge src -> dst (stored node ids), in the caller's
 * transaction; a model version's stored node id. */
int reg_edge_add(registry_t *r, cairn_req_t *req, const char *src, const char *dst,
                 const char *kind, cairn_err_t *err);
void reg_version_node(int64_t model_id, int64_t version, char *out, size_t cap);
/* aliases.c: the version alias names now (0: none). */
int reg_alias_version(registry_t *r, int64_t model_id, cairn_str_t alias,
                      int64_t *version, cairn_err_t *err);

/* Pack model version (model_id, version) of model `name` as MLflow's
 * model_version map (aliases and tags included); 404 when absent. */
int reg_pack_version(registry_t *r, msgpack_packer *pk, int64_t model_id,
                     const char *name, int64_t version, cairn_err_t *err);
/* The model_version map's 14-entry header and its first 12 entries (name to
 * status), from a row of st whose columns 0..9 are Q_VERSION_GET's; tags
 * and aliases, its last two, are the caller's to pack. */
void reg_pack_version_head(msgpack_packer *pk, sqlite3_stmt *st, const char *name,
                           int64_t version);
/* The cache of get_model_version_by_alias' replies (aliases.c): emptied
 * by every commit of a write on the registry's database connection (its
 * commit hook, set by reg_alias_cache_open), so no change of a model, a
 * version, a tag or an alias outlives its commit in it. */
int reg_alias_cache_open(registry_t *r, cairn_err_t *err);
void reg_alias_cache_close(registry_t *r);
/* Pack the aliases [{alias, version}] of a model, or of one version
 * (version > 0: the alias names only, as MLflow's model_version.aliases). */
int reg_pack_aliases(registry_t *r, msgpack_packer *pk, int64_t model_id,
                     int64_t version, cairn_err_t *err);

/* envs.c: environments, versioned assets (assets.h). */
int reg_create_environment(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_get_environment(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_list_environments(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_archive_environment(void *state, cairn_req_t *req, cairn_err_t *err);

/* data.c: data assets, versioned assets (assets.h). */
int reg_create_data_asset(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_get_data_asset(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_list_data_assets(void *state, cairn_req_t *req, cairn_err_t *err);
int reg_archive_data_asset(void *state, cairn_req_t *req, cairn_err_t *err);

#endif
