/* The registry database's schema (reg_schema.h). */
#include "reg_schema.h"

/* Numbered migrations (cairn_sqlite_migrate): never edit one that shipped. */
const char *const registry_migrations[REGISTRY_SCHEMA_VERSION] = {
    /* 0 -> 1: models, versions, tags, aliases, history */
    /* AUTOINCREMENT: an id is never reused, so a deleted model's history
     * and lineage never join a new one's. */
    "CREATE TABLE models (id INTEGER PRIMARY KEY AUTOINCREMENT, ws TEXT NOT NULL, "
    "name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', created INTEGER NOT "
    "NULL, updated "
    "INTEGER NOT NULL, next_version INTEGER NOT NULL DEFAULT 1, UNIQUE (ws, name));"
    "CREATE TABLE model_tags (model_id INTEGER NOT NULL, key TEXT NOT NULL, value "
    "TEXT NOT NULL, PRIMARY KEY (model_id, key)) WITHOUT ROWID;"
    "CREATE TABLE versions (model_id INTEGER NOT NULL, version INTEGER NOT NULL, "
    "source TEXT NOT NULL, run_id TEXT NOT NULL DEFAULT '', flavor TEXT NOT NULL "
    "DEFAULT '', signature TEXT NOT NULL DEFAULT '', description TEXT NOT NULL "
    "DEFAULT '', content_hash TEXT NOT NULL DEFAULT '', user_id TEXT NOT NULL "
    "DEFAULT '', created INTEGER NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY "
    "(model_id, version)) WITHOUT ROWID;"
    "CREATE INDEX versions_by_run ON versions (run_id);"
    "CREATE TABLE version_tags (model_id INTEGER NOT NULL, version INTEGER NOT NULL, "
    "key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (model_id, version, key)) "
    "WITHOUT ROWID;"
    "CREATE TABLE aliases (model_id INTEGER NOT NULL, alias TEXT NOT NULL, version "
    "INTEGER NOT NULL, PRIMARY KEY (model_id, alias)) WITHOUT ROWID;"
    "CREATE INDEX aliases_by_version ON aliases (model_id, version);"
    /* Kept when the model goes: rows name it as it was then. */
    "CREATE TABLE history (seq INTEGER PRIMARY KEY, model_id INTEGER NOT NULL, name "
    "TEXT NOT NULL, kind TEXT NOT NULL, alias TEXT NOT NULL DEFAULT '', version "
    "INTEGER, detail TEXT NOT NULL DEFAULT '', by TEXT NOT NULL, at INTEGER NOT "
    "NULL);"
    "CREATE INDEX history_by_alias ON history (model_id, alias, at, seq);",
    /* 1 -> 2: a model's whole history, in order (get_model_history) */
    "CREATE INDEX history_by_model ON history (model_id, seq);",
    /* 2 -> 3: lineage edges (lineage.c), per workspace, walked both ways */
    "CREATE TABLE edges (ws TEXT NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL, kind "
    "TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (ws, src, dst, kind)) WITHOUT "
    "ROWID;"
    "CREATE INDEX edges_by_dst ON edges (ws, dst, src);",
    /* 3 -> 4: what a model or data version holds, file by file (its pin
     * owner's manifest: download, resolve); data asset and environment
     * versions (immutable; archived, never deleted, so a version number is
     * never reused; a data version's bytes are pinned for `owner`, its
     * columns are the msgpack array the sniffer answered); their tags. */
    "CREATE TABLE files (owner TEXT NOT NULL, path TEXT NOT NULL, hash TEXT NOT "
    "NULL, alg TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (owner, path)) "
    "WITHOUT ROWID;"
    "CREATE TABLE data_versions (ws TEXT NOT NULL, name TEXT NOT NULL, version "
    "INTEGER NOT NULL, type TEXT NOT NULL, path TEXT NOT NULL, owner TEXT NOT NULL "
    "DEFAULT '', content_hash TEXT "
    "NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0, files INTEGER NOT NULL "
    "DEFAULT 0, rows INTEGER, columns TEXT NOT NULL DEFAULT '', description TEXT "
    "NOT NULL DEFAULT '', archived INTEGER NOT NULL DEFAULT 0, user_id TEXT NOT NULL "
    "DEFAULT '', created INTEGER NOT NULL, PRIMARY KEY (ws, name, version)) WITHOUT "
    "ROWID;"
    "CREATE TABLE environments (ws TEXT NOT NULL, name TEXT NOT NULL, version "
    "INTEGER NOT NULL, python TEXT NOT NULL DEFAULT '', requirements TEXT NOT NULL "
    "DEFAULT '', env_vars TEXT NOT NULL DEFAULT '', description TEXT NOT NULL "
    "DEFAULT '', archived INTEGER NOT NULL DEFAULT 0, user_id TEXT NOT NULL DEFAULT "
    "'', created INTEGER NOT NULL, PRIMARY KEY (ws, name, version)) WITHOUT ROWID;"
    "CREATE TABLE asset_tags (ws TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT "
    "NULL, version INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
    "PRIMARY KEY (ws, kind, name, version, key)) WITHOUT ROWID;",
};
