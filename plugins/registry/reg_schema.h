/* The registry database's schema: numbered migrations, applied in order
 * by cairn_sqlite_migrate (PRAGMA user_version). Never edit one that
 * shipped; add the next. Shared with the fuzz target of rfilter.c. */
#ifndef CAIRN_REGISTRY_SCHEMA_H
#define CAIRN_REGISTRY_SCHEMA_H

#define REGISTRY_SCHEMA_VERSION 4
extern const char *const registry_migrations[REGISTRY_SCHEMA_VERSION];

#endif
