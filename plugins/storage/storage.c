/* The storage plugin: experiment tracking (role `tracking`) on SQLite, and
 * run artifacts (role `artifacts`, artifacts.c) in a content-addressed store.
 * Verb names and semantics follow MLflow's tracking service; see
 * docs/TRACKING.md for where Cairn differs. */
#define _GNU_SOURCE
#include "storage.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

msgpack_packer *storage_reply_begin(storage_t *s)
{
    msgpack_sbuffer_clear(&s->sb);
    return &s->pk;
}

int storage_reply_send(storage_t *s, cairn_req_t *req, int st)
{
    cairn_reply(req, st, s->sb.data, s->sb.size); /* a failed send is logged there */
    return 0;
}

void storage_pack_text(msgpack_packer *pk, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    cairn_pack_strn(pk, t ? (const char *)t : "",
                    (size_t)sqlite3_column_bytes(st, col));
}

void storage_pack_rows(storage_t *s, msgpack_packer *pk, sqlite3_stmt *st,
                       storage_row_fn *pack_row)
{
    msgpack_sbuffer_clear(&s->rows);
    msgpack_packer rp;
    msgpack_packer_init(&rp, &s->rows, msgpack_sbuffer_write);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        pack_row(&rp, st);
        n++;
    }
    sqlite3_reset(st);
    msgpack_pack_array(pk, n);
    if (s->rows.size) msgpack_sbuffer_write(pk->data, s->rows.data, s->rows.size);
}

void storage_pack_kv_row(msgpack_packer *pk, sqlite3_stmt *st)
{
    msgpack_pack_map(pk, 2);
    cairn_pack_cstr(pk, "key");
    storage_pack_text(pk, st, 0);
    cairn_pack_cstr(pk, "value");
    storage_pack_text(pk, st, 1);
}

void storage_pack_kv_rows(storage_t *s, msgpack_packer *pk, sqlite3_stmt *st)
{
    storage_pack_rows(s, pk, st, storage_pack_kv_row);
}

int storage_err_at(cairn_err_t *err, const char *what, size_t i)
{
    char msg[sizeof err->msg]; /* err->msg is both source and target */
    snprintf(msg, sizeof msg, "%s", err->msg);
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, "%s[%zu]: %s",
                         what, i, msg);
}

int storage_reserve_points(storage_t *s, size_t n, cairn_err_t *err)
{
    if (n <= s->pts_cap) return 0;
    size_t cap = s->pts_cap ? s->pts_cap : 1024;
    while (cap < n) cap *= 2;
    metric_point_t *p = realloc(s->pts, cap * sizeof *p);
    if (!p)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                             "out of memory for %zu points", n);
    s->pts = p;
    s->pts_cap = cap;
    return 0;
}

int storage_field_key(const msgpack_object *o, const char *field, cairn_str_t *out,
                      cairn_err_t *err)
{
    if (cairn_field_str(o, field, true, LIMIT_KEY, out, err) != 0) return -1;
    if (out->len == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field '%s' must not be empty", field);
    return 0;
}

int storage_parse_id(cairn_str_t s, const char *field, int64_t *out, cairn_err_t *err)
{
    int64_t v = 0;
    if (s.len == 0 || s.len > 18) goto bad;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') goto bad;
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = v;
    return 0;
bad:
    return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                         "no experiment has the %s '%.*s'", field,
                         (int)(s.len > 64 ? 64 : s.len), s.ptr);
}

void storage_fresh_add(storage_t *s, int64_t rid)
{
    s->fresh[s->fresh_next++ % STORAGE_FRESH_RUNS] = rid;
}

static int64_t *s_fresh_slot(storage_t *s, int64_t rid)
{
    /* Newest first: a run is usually logged to right after its creation. */
    for (unsigned i = 1; rid > 0 && i <= STORAGE_FRESH_RUNS; i++) {
        int64_t *slot = &s->fresh[(s->fresh_next - i) % STORAGE_FRESH_RUNS];
        if (*slot == rid) return slot;
    }
    return NULL;
}

bool storage_fresh_has(storage_t *s, int64_t rid)
{
    return s_fresh_slot(s, rid) != NULL;
}

void storage_fresh_forget(storage_t *s, int64_t rid)
{
    int64_t *slot = s_fresh_slot(s, rid);
    if (slot) *slot = 0;
}
