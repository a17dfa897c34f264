/* Versioned assets (assets.c): what environments (envs.c) and data assets
 * share. An asset kind keeps its versions in a table of its own whose rows
 * are (ws, name, version, ...its columns..., archived, user_id, created),
 * primary key (ws, name, version); its tags are in asset_tags under its
 * kind. Versions count 1, 2, 3 ... per (ws, name) and are never deleted,
 * only archived, so max + 1 in the write transaction never reuses one.
 * "latest" is the highest version not archived.
 *
 * A kind supplies its create verb and a function that packs one version;
 * get, list and archive are whole verbs here. */
#ifndef CAIRN_REG_ASSETS_H
#define CAIRN_REG_ASSETS_H

#include "registry.h"

#define REG_ASSET_LIST_DEFAULT 100 /* max_results when absent */

typedef struct reg_asset_kind {
    const char *kind;  /* asset_tags.kind and a reference's prefix: "env" */
    const char *table; /* "environments": a constant, pasted into the SQL */
    const char *noun;  /* in sentences: "environment", "data asset" */
    const char *one;   /* the reply's key for a version: "environment" */
    const char *many;  /* the list's key: "environments" */
} reg_asset_kind_t;

/* Pack version (name, version) of kind as the map a reply holds (404 when
 * absent). The kind's own: it reads its table and calls reg_asset_pack_tags. */
typedef int (*reg_asset_pack_fn)(registry_t *r, msgpack_packer *pk, const char *ws,
                                 const char *name, int64_t version, cairn_err_t *err);

/* A statement prepared once for its SQL text and kept until the plugin's
 * fini (reg_stmts_free); reset it after use (reg_step_done does). NULL with
 * err when it does not prepare. */
sqlite3_stmt *reg_stmt(registry_t *r, const char *sql, cairn_err_t *err);
void reg_stmts_free(registry_t *r);

/* The next version of (ws, name): its highest + 1, 1 for a new name. Call
 * it inside the write transaction (reg_begin) that inserts the version. */
int reg_asset_next_version(registry_t *r, const reg_asset_kind_t *k, const char *ws,
                           cairn_str_t name, int64_t *version, cairn_err_t *err);

/* The body's `tags` (absent: *tags NULL): a map {key: value} of strings, or
 * MLflow's [{key, value}]; at most REG_TAGS_MAX, keys 1..REG_TAG_KEY_MAX
 * bytes, values at most REG_TAG_VALUE_MAX; a key twice is a 400. */
int reg_asset_field_tags(const msgpack_object *b, const msgpack_object **tags,
                         cairn_err_t *err);
/* Store checked tags for a version (in the caller's transaction). */
int reg_asset_tags_put(registry_t *r, const reg_asset_kind_t *k, const char *ws,
                       cairn_str_t name, int64_t version, const msgpack_object *tags,
                       cairn_err_t *err);
/* Pack a version's tags as a map {key: value}, keys in order. */
int reg_asset_pack_tags(registry_t *r, msgpack_packer *pk, const reg_asset_kind_t *k,
                        const char *ws, const char *name, int64_t version,
                        cairn_err_t *err);

/* The body's version argument: an integer from 1, a string of its digits,
 * or "latest" (*out 0). Absent: a 400 when required, else *out 0. */
int reg_asset_field_version(const msgpack_object *b, const char *key, bool required,
                            int64_t *out, cairn_err_t *err);
/* The version want names: want > 0 must exist (archived or not); want 0 is
 * the highest version not archived. 404 with a sentence: no such name, no
 * such version, or every version archived. */
int reg_asset_resolve(registry_t *r, const reg_asset_kind_t *k, const char *ws,
                      cairn_str_t name, int64_t want, int64_t *version,
                      cairn_err_t *err);

/* The verbs:
 *   get      {name*, version (number or "latest"; default latest)} -> {one}
 *   list     {name (its versions, newest first; absent: the latest version
 *            of every name, by name), include_archived, max_results,
 *            page_token} -> {many, next_page_token}
 *   archive  {name*, version*, archived (default true)} -> {one}; publishes
 *            "<one>.archived" / "<one>.unarchived" when it changed. */
int reg_asset_get(registry_t *r, cairn_req_t *req, const reg_asset_kind_t *k,
                  reg_asset_pack_fn pack, cairn_err_t *err);
int reg_asset_list(registry_t *r, cairn_req_t *req, const reg_asset_kind_t *k,
                   reg_asset_pack_fn pack, cairn_err_t *err);
int reg_asset_archive(registry_t *r, cairn_req_t *req, const reg_asset_kind_t *k,
                      reg_asset_pack_fn pack, cairn_err_t *err);
/* Reply {one: version} (what create, get and archive answer). */
int reg_asset_reply(registry_t *r, cairn_req_t *req, const reg_asset_kind_t *k,
                    reg_asset_pack_fn pack, const char *ws, const char *name,
                    int64_t version, cairn_err_t *err);

/* A kind's pack function, in three steps: reg_asset_row finds the row
 * (sql: a SELECT of the kind's own columns then description, archived,
 * user_id, created, with placeholders ws, name, version; 404 naming the
 * kind), reg_asset_pack_head opens the map (REG_ASSET_COMMON_KEYS and nown
 * of the kind's own) with name and version, the kind packs its own, and
 * reg_asset_pack_tail packs the four common columns from col on, resets
 * the statement and packs the tags. */
#define REG_ASSET_COMMON_KEYS                  \
    7 /* name, version, description, archived, \
         user_id, creation_timestamp, tags */
int reg_asset_row(registry_t *r, const reg_asset_kind_t *k, const char *sql,
                  const char *ws, const char *name, int64_t version, sqlite3_stmt **st,
                  cairn_err_t *err);
void reg_asset_pack_head(msgpack_packer *pk, uint32_t nown, const char *name,
                         int64_t version);
int reg_asset_pack_tail(registry_t *r, msgpack_packer *pk, const reg_asset_kind_t *k,
                        sqlite3_stmt *st, int col, const char *ws, const char *name,
                        int64_t version, cairn_err_t *err);

/* The user a new version records: the caller's principal, else "local". */
const char *reg_asset_user(cairn_req_t *req);

#endif
