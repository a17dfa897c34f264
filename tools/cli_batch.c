/* cli_batch.c — `cairn batch ...`: batch endpoints (docs/ENDPOINTS.md,
 * "Batch endpoints").
 *
 *   batch create NAME MODEL [SETTING=N...]    batch list    batch show NAME
 *   batch update NAME [MODEL] [SETTING=N...]  batch delete NAME
 *   batch invoke NAME INPUT [SETTING=N...] [--experiment NAME]
 *
 * SETTING is mini_batch_size, max_concurrency, error_threshold or
 * max_retries. INPUT is data:NAME:VERSION, data:NAME@ALIAS, or a CSV file
 * or folder (a relative path is the working directory's). invoke prints
 * the job it started: follow it with `cairn job show|logs`. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define SVC "endpoints"

static const char *const s_settings[] = {"mini_batch_size", "max_concurrency",
                                         "error_threshold", "max_retries", NULL};

/* The reply's object under key, printed (or the whole reply with --json). */
static int s_show(cairn_client_t *c, const opts_t *o, const char *verb, json_t *body,
                  const char *key, fail_t *f)
{
    return cli_call_show(c, o, SVC, verb, body, key, f);
}

/* Operand a as SETTING=N into body; 1 when a is no SETTING=... at all. */
static int s_setting(json_t *body, const char *a, fail_t *f)
{
    const char *eq = strchr(a, '=');
    if (!eq) return 1;
    for (const char *const *s = s_settings; *s; s++) {
        if (strlen(*s) != (size_t)(eq - a) || strncmp(a, *s, (size_t)(eq - a)))
            continue;
        char *end = NULL;
        long long v = strtoll(eq + 1, &end, 10);
        if (end == eq + 1 || *end)
            return cli_fail(f, EXIT_USAGE, "'%s': %s takes a whole number", a, *s);
        json_object_set_new(body, *s, json_integer(v));
        return EXIT_OK;
    }
    return cli_fail(f, EXIT_USAGE,
                    "'%s' is not SETTING=N (mini_batch_size, max_concurrency, "
                    "error_threshold, max_retries)",
                    a);
}

/* Operands from..: SETTING=N each, or (key not NULL) one other operand
 * set as key. */
static int s_operands(const opts_t *o, int from, const char *key, json_t *body,
                      fail_t *f)
{
    bool keyed = false;
    for (int i = from; i < NOPERANDS(o); i++) {
        int rc = s_setting(body, OPERAND(o, i), f);
        if (rc == 1 && key && !keyed) {
            json_object_set_new(body, key, json_string(OPERAND(o, i)));
            keyed = true;
        } else if (rc == 1) {
            return cli_fail(f, EXIT_USAGE, "'%s' is not SETTING=N", OPERAND(o, i));
        } else if (rc != EXIT_OK) {
            return rc;
        }
    }
    return EXIT_OK;
}

static int s_with_settings(cairn_client_t *c, const opts_t *o, const char *verb,
                           json_t *body, int from, const char *key, const char *out,
                           fail_t *f)
{
    if (!body) return cli_oom(f);
    int rc = s_operands(o, from, key, body, f);
    if (rc != EXIT_OK) {
        json_decref(body);
        return rc;
    }
    return s_show(c, o, verb, body, out, f);
}

int cli_batch_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_with_settings(
        c, o, "create_batch_endpoint",
        json_pack("{s:s,s:s}", "name", OPERAND(o, 0), "model", OPERAND(o, 1)), 2, NULL,
        "batch_endpoint", f);
}

int cli_batch_update(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_with_settings(c, o, "update_batch_endpoint",
                           json_pack("{s:s}", "name", OPERAND(o, 0)), 1, "model",
                           "batch_endpoint", f);
}

int cli_batch_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "get_batch_endpoint", json_pack("{s:s}", "name", OPERAND(o, 0)),
                  "batch_endpoint", f);
}

int cli_batch_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "delete_batch_endpoint",
                  json_pack("{s:s}", "name", OPERAND(o, 0)), NULL, f);
}

int cli_batch_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    static const col_t cols[] = {{"NAME", "name", false},
                                 {"MODEL", "model_ref", false},
                                 {"MINI_BATCH", "mini_batch_size", false},
                                 {"CONCURRENCY", "max_concurrency", false}};
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, "list_batch_endpoints", json_object(), &reply, f);
    if (rc == EXIT_OK)
        rc = o->json ? cli_print_json(reply, false, f)
                     : cli_table(json_object_get(reply, "batch_endpoints"), cols,
                                 sizeof cols / sizeof cols[0], f);
    json_decref(reply);
    return rc;
}

/* invoke: prints {"job": ...} whole, so that a script can read its name. */
int cli_batch_invoke(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    const char *input = OPERAND(o, 1);
    json_t *body = json_pack("{s:s,s:s}", "endpoint", OPERAND(o, 0), "input", input);
    char cwd[4096];
    if (body && strncmp(input, "data:", 5) && input[0] != '/') {
        if (!getcwd(cwd, sizeof cwd)) {
            json_decref(body);
            return cli_fail(f, EXIT_USAGE, "cannot read the working directory");
        }
        json_object_set_new(body, "base_dir", json_string(cwd));
    }
    if (body && o->experiment)
        json_object_set_new(body, "experiment_name", json_string(o->experiment));
    return s_with_settings(c, o, "invoke_batch", body, 2, NULL, NULL, f);
}
