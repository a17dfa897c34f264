/* cli_vault.c — `cairn secrets ...` (the key vault, docs/SECRETS.md) and
 * `cairn audit ...` (the audit trail, docs/AUDIT.md), including the
 * offline check of an audit database file. The requests are the C SDK's
 * (cairn/secrets.h, cairn/audit.h): each verb's wire format lives there. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/audit.h"
#include "cairn/secrets.h"
#include "chain.h"
#include "cli.h"

/* secrets set NAME: the value is stdin, whole (a trailing newline dropped),
 * so that it never shows in the process list or the shell's history. */
int cli_secrets_set(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    size_t cap = CAIRN_SECRET_VALUE_MAX + 2, n = 0;
    char *v = sodium_malloc(cap);
    if (!v) return cli_oom(f);
    size_t got;
    while (n < cap && (got = fread(v + n, 1, cap - n, stdin)) > 0) n += got;
    int rc = EXIT_OK;
    if (n == cap)
        rc = cli_bad_usage(f, "a secret's value is at most 64 KiB");
    else if (n && v[n - 1] == '\n')
        n--;
    cairn_err_t err = {0};
    int64_t version = 0;
    if (rc == EXIT_OK && cairn_secrets_set(c, OPERAND(o, 0), v, n, &version, &err) != 0)
        rc = cli_fail_sdk(o, &err, f);
    sodium_free(v);
    if (rc == EXIT_OK && o->json) {
        json_t *j = json_pack("{s:s, s:I}", "name", OPERAND(o, 0), "version",
                              (json_int_t)version);
        rc = j ? cli_print_json(j, false, f) : cli_oom(f);
        json_decref(j);
    }
    return rc;
}

/* The value as JSON: a string, or {"$bin": base64} for bytes. */
static json_t *s_value_json(const cairn_secret_t *s)
{
    size_t len = 0;
    const char *v = cairn_secret_value(s, &len);
    if (cairn_secret_is_text(s)) return json_stringn(v, len);
    char *b64 = cairn_base64_encode((const unsigned char *)v, len);
    json_t *j = b64 ? json_pack("{s:s}", "$bin", b64) : NULL;
    if (b64) sodium_memzero(b64, strlen(b64));
    free(b64);
    return j;
}

/* Wipe the value a JSON value holds (a string, or the base64 in {"$bin"}). */
static void s_wipe_json(json_t *value)
{
    json_t *s = json_is_object(value) ? json_object_get(value, "$bin") : value;
    if (json_is_string(s))
        sodium_memzero((char *)json_string_value(s), json_string_length(s));
}

/* secrets get NAME: the value on stdout, as stored. */
int cli_secrets_get(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    cairn_err_t err = {0};
    cairn_secret_t *s = NULL;
    if (cairn_secrets_get(c, OPERAND(o, 0), &s, &err) != 0)
        return cli_fail_sdk(o, &err, f);
    int rc = EXIT_OK;
    size_t len = 0;
    const char *v = cairn_secret_value(s, &len);
    if (o->json || !cairn_secret_is_text(s)) { /* bytes: {"$bin": base64} */
        json_t *value = s_value_json(s);
        json_t *j = !value    ? NULL
                    : o->json ? json_pack("{s:O, s:I}", "value", value, "version",
                                          (json_int_t)cairn_secret_version(s))
                              : json_incref(value);
        rc = j ? cli_print_json(j, false, f) : cli_oom(f);
        s_wipe_json(value);
        json_decref(j);
        json_decref(value);
    } else if (fwrite(v, 1, len, stdout) != len) {
        rc = cli_fail(f, EXIT_INTERNAL, "cannot write the value to stdout");
    }
    cairn_secret_free(&s);
    return rc;
}

static const col_t SECRET_COLS[] = {{"NAME", "name", false},
                                    {"VERSION", "version", false},
                                    {"UPDATED", "updated", false}};

/* secrets list: every name of the workspace, page after page. */
int cli_secrets_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *rows = json_array();
    if (!rows) return cli_oom(f);
    cairn_err_t err = {0};
    char *token = NULL;
    int rc = EXIT_OK;
    do {
        cairn_secret_list_t *l = NULL;
        if (cairn_secrets_list(c, 0, token, &l, &err) != 0) {
            rc = cli_fail_sdk(o, &err, f);
            break;
        }
        for (size_t i = 0; rc == EXIT_OK && i < cairn_secret_list_count(l); i++) {
            const cairn_secret_info_t *e = cairn_secret_list_at(l, i);
            if (json_array_append_new(
                    rows,
                    json_pack("{s:s, s:I, s:I, s:I}", "name", e->name, "created",
                              (json_int_t)e->created, "updated", (json_int_t)e->updated,
                              "version", (json_int_t)e->version)) != 0)
                rc = cli_oom(f);
        }
        free(token);
        const char *next = cairn_secret_list_next_page(l);
        token = next && rc == EXIT_OK ? strdup(next) : NULL;
        if (next && rc == EXIT_OK && !token) rc = cli_oom(f);
        cairn_secret_list_destroy(&l);
    } while (token);
    if (rc == EXIT_OK && o->json) {
        json_t *j = json_pack("{s:O}", "secrets", rows);
        rc = j ? cli_print_json(j, false, f) : cli_oom(f);
        json_decref(j);
    } else if (rc == EXIT_OK) {
        rc = cli_table(rows, SECRET_COLS, sizeof SECRET_COLS / sizeof *SECRET_COLS, f);
    }
    json_decref(rows);
    return rc;
}

int cli_secrets_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    cairn_err_t err = {0};
    return cairn_secrets_delete(c, OPERAND(o, 0), &err) == 0 ? EXIT_OK
                                                             : cli_fail_sdk(o, &err, f);
}

/* secrets rotate-key: every value re-sealed under a new master key. */
int cli_secrets_rotate(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    cairn_err_t err = {0};
    uint32_t kid = 0;
    int64_t n = 0;
    if (cairn_secrets_rotate_master_key(c, &kid, &n, &err) != 0)
        return cli_fail_sdk(o, &err, f);
    if (!o->json) {
        printf("master key %" PRIu32 " now seals %" PRId64 " value%s\n", kid, n,
               n == 1 ? "" : "s");
        return EXIT_OK;
    }
    json_t *j =
        json_pack("{s:I, s:I}", "key_id", (json_int_t)kid, "resealed", (json_int_t)n);
    int rc = j ? cli_print_json(j, false, f) : cli_oom(f);
    json_decref(j);
    return rc;
}

static const col_t AUDIT_COLS[] = {{"SEQ", "seq", false},
                                   {"TIME", "time", false},
                                   {"PRINCIPAL", "principal", false},
                                   {"WS", "ws", false},
                                   {"SVC", "svc", false},
                                   {"VERB", "verb", false},
                                   {"STATUS", "status", false}};

/* The filters of `audit query` from a JSON object into q (its strings
 * borrowed from j). */
static int s_audit_filter(const json_t *j, cairn_audit_filter_t *q, fail_t *f)
{
    if (!json_is_object(j)) return cli_bad_usage(f, "the filters are a JSON object");
    struct {
        const char *key, **str;
        int64_t *num;
        int *status;
    } keys[] = {{"principal", &q->principal, NULL, NULL},
                {"svc", &q->svc, NULL, NULL},
                {"verb", &q->verb, NULL, NULL},
                {"object", &q->object, NULL, NULL},
                {"page_token", &q->page_token, NULL, NULL},
                {"since", NULL, &q->since, NULL},
                {"until", NULL, &q->until, NULL},
                {"min_status", NULL, NULL, &q->min_status},
                {"max_status", NULL, NULL, &q->max_status},
                {"max_results", NULL, NULL, NULL}};
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)j, key, v)
    {
        size_t i = 0, n = sizeof keys / sizeof *keys;
        while (i < n && strcmp(keys[i].key, key) != 0) i++;
        if (i == n)
            return cli_bad_usage(f,
                                 "unknown filter '%s' (principal, svc, verb, object, "
                                 "since, until, min_status, max_status, max_results, "
                                 "page_token)",
                                 key);
        if (keys[i].str && !json_is_string(v))
            return cli_bad_usage(f, "the filter '%s' is a string", key);
        if (!keys[i].str && !json_is_integer(v))
            return cli_bad_usage(f, "the filter '%s' is an integer", key);
        if (keys[i].str)
            *keys[i].str = json_string_value(v);
        else if (keys[i].num)
            *keys[i].num = json_integer_value(v);
        else if (keys[i].status &&
                 (json_integer_value(v) < 100 || json_integer_value(v) > 999))
            return cli_bad_usage(f, "%s is a status, from 100 to 999", key);
        else if (keys[i].status)
            *keys[i].status = (int)json_integer_value(v);
        else if (json_integer_value(v) < 1 || json_integer_value(v) > UINT32_MAX)
            return cli_bad_usage(f, "max_results is from 1 to 1000");
        else
            q->max_results = (uint32_t)json_integer_value(v);
    }
    return EXIT_OK;
}

static json_t *s_records_json(const cairn_audit_records_t *l)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows && i < cairn_audit_records_count(l); i++) {
        const cairn_audit_record_t *r = cairn_audit_records_at(l, i);
        if (json_array_append_new(
                rows,
                json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:i}", "seq",
                          (json_int_t)r->seq, "time", (json_int_t)r->time, "principal",
                          r->principal, "ws", r->ws, "svc", r->svc, "verb", r->verb,
                          "object", r->object, "status", r->status)) != 0) {
            json_decref(rows);
            return NULL;
        }
    }
    return rows;
}

/* audit query [JSON]: the filters as JSON ({"principal": ..., "svc": ...});
 * one page (--json shows next_page_token when more remain). */
int cli_audit_query(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *filters = NULL;
    if (NOPERANDS(o) > 0) {
        json_error_t je;
        filters = json_loads(OPERAND(o, 0), CLI_JSON_DECODE_FLAGS, &je);
        if (!filters) return cli_bad_usage(f, "the filters are not JSON: %s", je.text);
    }
    cairn_audit_filter_t q = {0};
    int rc = filters ? s_audit_filter(filters, &q, f) : EXIT_OK;
    cairn_audit_records_t *l = NULL;
    cairn_err_t err = {0};
    if (rc == EXIT_OK && cairn_audit_query(c, &q, &l, &err) != 0)
        rc = cli_fail_sdk(o, &err, f);
    json_t *rows = rc == EXIT_OK ? s_records_json(l) : NULL;
    if (rc == EXIT_OK && !rows) rc = cli_oom(f);
    if (rc == EXIT_OK && o->json) {
        const char *next = cairn_audit_records_next_page(l);
        json_t *j =
            next ? json_pack("{s:O, s:s}", "records", rows, "next_page_token", next)
                 : json_pack("{s:O}", "records", rows);
        rc = j ? cli_print_json(j, false, f) : cli_oom(f);
        json_decref(j);
    } else if (rc == EXIT_OK) {
        rc = cli_table(rows, AUDIT_COLS, sizeof AUDIT_COLS / sizeof *AUDIT_COLS, f);
    }
    json_decref(rows);
    cairn_audit_records_destroy(&l);
    json_decref(filters);
    return rc;
}

static int s_verdict(const opts_t *o, bool ok, long long records, long long bad,
                     fail_t *f)
{
    if (o->json) {
        json_t *j = ok ? json_pack("{s:b, s:I}", "ok", 1, "records", records)
                       : json_pack("{s:b, s:I, s:I}", "ok", 0, "records", records,
                                   "first_bad_seq", bad);
        int rc = j ? cli_print_json(j, false, f) : cli_oom(f);
        json_decref(j);
        if (rc != EXIT_OK) return rc;
    } else if (ok) {
        printf("ok: the chain of %lld records holds\n", records);
    }
    return ok ? EXIT_OK
              : cli_fail(f, EXIT_SERVER,
                         "the audit chain is broken at record %lld (%lld checked)", bad,
                         records);
}

int cli_audit_verify(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    cairn_err_t err = {0};
    cairn_audit_verdict_t v;
    if (cairn_audit_verify(c, &v, &err) != 0) return cli_fail_sdk(o, &err, f);
    return s_verdict(o, v.ok, (long long)v.records, (long long)v.first_bad_seq, f);
}

/* audit verify-file FILE: the same check on a database file, read-only,
 * without cairnd (a copy taken off the machine, say). */
int cli_audit_verify_file(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    (void)c;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(OPERAND(o, 0), &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        int rc = cli_fail(f, EXIT_USAGE, "cannot open %s: %s", OPERAND(o, 0),
                          db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    int64_t checked = 0, bad = 0;
    char why[256];
    int rc = audit_chain_verify(db, &checked, &bad, why, sizeof why) == 0
                 ? s_verdict(o, bad == 0, (long long)checked, (long long)bad, f)
                 : cli_fail(f, EXIT_USAGE, "%s: %s", OPERAND(o, 0), why);
    sqlite3_close(db);
    return rc;
}
