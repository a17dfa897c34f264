/* plugins/storage/schema.h — the tracking schema, as numbered migrations.
 * PRAGMA user_version records how many have run; migrations only append.
 *
 * Metric points are not one row each: each (run, key) keeps its points in
 * packed segments of up to SEGMENT_POINTS points (segment.h), so a batch of
 * 10,000 points is a few dozen row writes. latest_metrics keeps the newest
 * point of each (run, key) current on insert, for get_run and search.
 */
#ifndef STORAGE_SCHEMA_H
#define STORAGE_SCHEMA_H

static const char *const storage_migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE experiments ("
    "  experiment_id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  artifact_location TEXT NOT NULL,"
    "  lifecycle_stage TEXT NOT NULL DEFAULT 'active',"
    "  creation_time INTEGER NOT NULL,"
    "  last_update_time INTEGER NOT NULL);"
    "CREATE TABLE experiment_tags ("
    "  experiment_id INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY (experiment_id, key)) WITHOUT ROWID;"
    /* rid is the internal integer key; run_uuid the public run_id. */
    "CREATE TABLE runs ("
    "  rid INTEGER PRIMARY KEY,"
    "  run_uuid TEXT NOT NULL UNIQUE,"
    "  experiment_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  status TEXT NOT NULL DEFAULT 'RUNNING',"
    "  start_time INTEGER,"
    "  end_time INTEGER,"
    "  lifecycle_stage TEXT NOT NULL DEFAULT 'active',"
    "  artifact_uri TEXT NOT NULL,"
    "  parent_rid INTEGER,"
    "  user_id TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time DESC);"
    "CREATE INDEX runs_by_parent ON runs (parent_rid);"
    "CREATE TABLE metric_keys (key_id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);"
    "CREATE TABLE latest_metrics ("
    "  rid INTEGER NOT NULL, key_id INTEGER NOT NULL,"
    "  value REAL, timestamp INTEGER NOT NULL, step INTEGER NOT NULL,"
    "  PRIMARY KEY (rid, key_id)) WITHOUT ROWID;"
    "CREATE INDEX latest_metrics_by_value ON latest_metrics (key_id, value);"
    /* value REAL: NaN is stored as NULL by SQLite; the segments keep the
     * exact bits. */
    "CREATE TABLE metric_segments ("
    "  rid INTEGER NOT NULL, key_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  n INTEGER NOT NULL, step_min INTEGER NOT NULL, step_max INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (rid, key_id, seq));"
    "CREATE TABLE params ("
    "  rid INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY (rid, key)) WITHOUT ROWID;"
    "CREATE INDEX params_by_value ON params (key, value);"
    "CREATE TABLE tags ("
    "  rid INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY (rid, key)) WITHOUT ROWID;"
    "CREATE INDEX tags_by_value ON tags (key, value);",
    /* 2: the artifact index (role `artifacts`): each run's files, by path,
     * naming their content-addressed blob (BLAKE2b-256, hex; see 6). Blobs are
     * shared between rows; by_hash is for a future blob GC. */
    "CREATE TABLE artifacts ("
    "  rid INTEGER NOT NULL, path TEXT NOT NULL, hash TEXT NOT NULL,"
    "  size INTEGER NOT NULL, created INTEGER NOT NULL,"
    "  PRIMARY KEY (rid, path)) WITHOUT ROWID;"
    "CREATE INDEX artifacts_by_hash ON artifacts (hash);",
    /* 3: the metric journal (journal.h): the highest journal sequence number
     * whose points are in the tables (it commits with them, so a replay never
     * applies a point twice), and the tag its records carry, random per
     * database, so that a journal is only ever applied to its own. */
    "CREATE TABLE metric_journal ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  applied_seq INTEGER NOT NULL, tag INTEGER NOT NULL);"
    "INSERT INTO metric_journal (id, applied_seq, tag) VALUES (1, 0, random());",
    /* 4: an experiment's runs newest first, covering the lifecycle stage:
     * search walks this index, and reading each run's row for its stage
     * cost most of the walk (73 of 98 ms CPU over 100,000 of 1,000,000
     * runs). rid is explicit so that (start_time DESC, rid) is the index's
     * own order, the search's tiebreak. */
    "CREATE INDEX runs_by_experiment_time ON runs (experiment_id, start_time DESC, "
    "rid, lifecycle_stage);"
    "DROP INDEX runs_by_experiment;",
    /* 5: workspaces, the tenancy boundary (docs/AUTH.md). An experiment
     * lives in one (the request's ws header); its runs, metrics and
     * artifacts are in its workspace. Names are unique per workspace. The
     * table is rebuilt because SQLite cannot change a UNIQUE constraint;
     * everything made before workspaces belongs to 'default'. */
    "CREATE TABLE experiments_ws ("
    "  experiment_id INTEGER PRIMARY KEY,"
    "  ws TEXT NOT NULL DEFAULT 'default',"
    "  name TEXT NOT NULL,"
    "  artifact_location TEXT NOT NULL,"
    "  lifecycle_stage TEXT NOT NULL DEFAULT 'active',"
    "  creation_time INTEGER NOT NULL,"
    "  last_update_time INTEGER NOT NULL,"
    "  UNIQUE (ws, name));"
    "INSERT INTO experiments_ws (experiment_id, ws, name, artifact_location, "
    "lifecycle_stage, creation_time, last_update_time) SELECT experiment_id, "
    "'default', name, artifact_location, lifecycle_stage, creation_time, "
    "last_update_time FROM experiments;"
    "DROP TABLE experiments;"
    "ALTER TABLE experiments_ws RENAME TO experiments;",
    /* 6: the algorithm of each artifact's blob hash (cas.h). New blobs are
     * named by their SHA-256; every row written before is BLAKE2b-256, and
     * a blob is named by (alg, hash). */
    "ALTER TABLE artifacts ADD COLUMN alg TEXT NOT NULL DEFAULT 'blake2b';",
    /* 7: the value index, folded in behind the writes (fold.h): search by
     * a metric's value reads metric_values (rows up to their key's
     * folded_upto; NaN, stored as NULL, never matches and is left out)
     * and, for newer rows, their in-memory mirror. Every row so far is
     * folded; a key added later starts at the newest run then (db.c,
     * ST_KEY_INSERT). */
    "ALTER TABLE metric_keys ADD COLUMN folded_upto INTEGER NOT NULL DEFAULT 0;"
    "UPDATE metric_keys SET folded_upto = (SELECT coalesce(max(rid), 0) FROM runs);"
    "CREATE TABLE metric_values ("
    "  key_id INTEGER NOT NULL, value REAL NOT NULL, rid INTEGER NOT NULL,"
    "  PRIMARY KEY (key_id, value, rid)) WITHOUT ROWID;"
    "INSERT INTO metric_values SELECT key_id, value, rid FROM latest_metrics WHERE "
    "value IS NOT NULL ORDER BY key_id, value, rid;"
    "DROP INDEX latest_metrics_by_value;",
    /* 8: pins (pins.c): blobs kept for an owner outside the index (a model
     * version of the registry), so that deleting the files that named them
     * frees them no more. A blob goes when neither names it. */
    "CREATE TABLE pins ("
    "  hash TEXT NOT NULL, alg TEXT NOT NULL, owner TEXT NOT NULL,"
    "  PRIMARY KEY (hash, alg, owner)) WITHOUT ROWID;"
    "CREATE INDEX pins_by_owner ON pins (owner);",
    /* 9: runs' inputs, MLflow's datasets (inputs.c): a dataset once per
     * (experiment, name, digest), linked to each run that read it with
     * the input's tags (a packed msgpack array of {key, value}). */
    "CREATE TABLE datasets ("
    "  dataset_id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL, digest TEXT NOT NULL, source_type TEXT NOT NULL,"
    "  source TEXT NOT NULL, schema TEXT, profile TEXT,"
    "  UNIQUE (experiment_id, name, digest));"
    "CREATE TABLE run_inputs ("
    "  rid INTEGER NOT NULL, dataset_id INTEGER NOT NULL, tags BLOB NOT NULL,"
    "  PRIMARY KEY (rid, dataset_id)) WITHOUT ROWID;",
};

#define STORAGE_SCHEMA_VERSION \
    ((int)(sizeof storage_migrations / sizeof storage_migrations[0]))

#endif
