/* cli_vault.c — `cairn secrets ...` (the key vault, docs/SECRETS.md) and
 * `cairn audit ...` (the audit trail, docs/AUDIT.md), including the
 * offline check of an audit database file. */
#define _GNU_SOURCE
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "cli.h"

/* secrets set NAME: the value is stdin, whole (a trailing newline dropped),
 * so that it never shows in the process list or the shell's history. */
int cli_secrets_set(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    size_t cap = 64 * 1024 + 2, n = 0;
    char *v = sodium_malloc(cap);
    if (!v) return cli_oom(f);
    size_t got;
    while (n < cap && (got = fread(v + n, 1, cap - n, stdin)) > 0) n += got;
    int rc = EXIT_OK;
    if (n == cap)
        rc = cli_bad_usage(f, "a secret's value is at most 64 KiB");
    else if (n && v[n - 1] == '\n')
        n--;
    json_t *reply = NULL;
    if (rc == EXIT_OK)
        rc = cli_call_json(
            c, o, "secrets", "set_secret",
            json_pack("{s:s, s:s%}", "name", OPERAND(o, 0), "value", v, n), &reply, f);
    sodium_free(v);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    json_decref(reply);
    return rc;
}

/* secrets get NAME: the value on stdout, as stored. */
int cli_secrets_get(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, "secrets", "get_secret",
                           json_pack("{s:s}", "name", OPERAND(o, 0)), &reply, f);
    if (rc == EXIT_OK) {
        const json_t *v = json_object_get(reply, "value");
        if (o->json)
            rc = cli_print_json(reply, false, f);
        else if (json_is_string(v))
            fwrite(json_string_value(v), 1, json_string_length(v), stdout);
        else
            rc = cli_print_json(v, false, f); /* bytes: {"$bin": base64} */
    }
    json_decref(reply);
    return rc;
}

static const col_t SECRET_COLS[] = {{"NAME", "name", false},
                                    {"VERSION", "version", false},
                                    {"UPDATED", "updated", false}};

int cli_secrets_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, "secrets", "list_secrets", json_object(), &reply, f);
    if (rc == EXIT_OK)
        rc = o->json ? cli_print_json(reply, false, f)
                     : cli_table(json_object_get(reply, "secrets"), SECRET_COLS,
                                 sizeof SECRET_COLS / sizeof *SECRET_COLS, f);
    json_decref(reply);
    return rc;
}

int cli_secrets_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, "secrets", "delete_secret",
                           json_pack("{s:s}", "name", OPERAND(o, 0)), &reply, f);
    json_decref(reply);
    return rc;
}

static const col_t AUDIT_COLS[] = {{"SEQ", "seq", false},
                                   {"TIME", "time", false},
                                   {"PRINCIPAL", "principal", false},
                                   {"WS", "ws", false},
                                   {"SVC", "svc", false},
                                   {"VERB", "verb", false},
                                   {"STATUS", "status", false}};

/* audit query [JSON]: the filters as JSON ({"principal": ..., "svc": ...}). */
int cli_audit_query(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = json_object();
    if (NOPERANDS(o) > 0) {
        json_decref(body);
        json_error_t je;
        body = json_loads(OPERAND(o, 0), CLI_JSON_DECODE_FLAGS, &je);
        if (!body) return cli_bad_usage(f, "the filters are not JSON: %s", je.text);
    }
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, "audit", "query", body, &reply, f);
    if (rc == EXIT_OK)
        rc = o->json ? cli_print_json(reply, false, f)
                     : cli_table(json_object_get(reply, "records"), AUDIT_COLS,
                                 sizeof AUDIT_COLS / sizeof *AUDIT_COLS, f);
    json_decref(reply);
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
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, "audit", "verify", json_object(), &reply, f);
    if (rc == EXIT_OK)
        rc = s_verdict(o, json_is_true(json_object_get(reply, "ok")),
                       json_integer_value(json_object_get(reply, "records")),
                       json_integer_value(json_object_get(reply, "first_bad_seq")), f);
    json_decref(reply);
    return rc;
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
