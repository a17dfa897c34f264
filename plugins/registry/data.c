/* Data assets: versioned files, folders and tables (data:NAME:VERSION),
 * stored once in the artifact store and pinned like model versions. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

/* The version a data reference names: its number, or the latest one not
 * archived. 404 when there is none. */
static int s_data_version(registry_t *r, cairn_req_t *req, const reg_ref_t *ref,
                          int64_t *version, char content_hash[REG_HASH_MAX],
                          cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[ref->latest ? Q_DATA_LATEST : Q_DATA_HASH];
    sqlite3_bind_text(st, 1, reg_ws(req), -1, SQLITE_STATIC);
    reg_bind_str(st, 2, ref->name);
    if (!ref->latest) sqlite3_bind_int64(st, 3, ref->version);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int64(st, 0);
        snprintf(content_hash, REG_HASH_MAX, "%s",
                 (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc != SQLITE_DONE) return reg_db_fail(r, "find a data asset", err);
    if (ref->latest)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "data asset '%.*s' has no version that is not archived",
                             (int)ref->name.len, ref->name.ptr);
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "data asset '%.*s' has no version %lld", (int)ref->name.len,
                         ref->name.ptr, (long long)ref->version);
}

int reg_data_target(registry_t *r, cairn_req_t *req, const reg_ref_t *ref,
                    char owner[REG_OWNER_MAX], char name[REG_REF_NAME_MAX],
                    char content_hash[REG_HASH_MAX], cairn_err_t *err)
{
    int64_t version = 0;
    if (s_data_version(r, req, ref, &version, content_hash, err) != 0) return -1;
    reg_data_owner(r, reg_ws(req), ref->name, version, owner, REG_OWNER_MAX);
    snprintf(name, REG_REF_NAME_MAX, "data:%.*s:%lld", (int)ref->name.len,
             ref->name.ptr, (long long)version);
    return 0;
}
