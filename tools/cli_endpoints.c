/* cli_endpoints.c — `cairn endpoint ...` and `cairn deployment ...`: the
 * endpoints service (docs/ENDPOINTS.md).
 *
 *   endpoint create NAME    endpoint list    endpoint show NAME
 *   endpoint delete NAME    endpoint keys NAME    endpoint metrics NAME
 *   endpoint traffic NAME DEPLOYMENT=PERCENT...
 *   endpoint mirror NAME [DEPLOYMENT=PERCENT...]
 *   deployment create ENDPOINT NAME MODEL    deployment show ENDPOINT NAME
 *   deployment update ENDPOINT NAME MODEL    deployment delete ENDPOINT NAME
 *
 * MODEL is a reference (model:NAME:VERSION, model:NAME@ALIAS). Bodies are
 * built as JSON (cli_call_json); --json prints the replies as they come,
 * else tables or the object. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SVC "endpoints"

/* The reply's object under key, printed (or the whole reply with --json). */
static int s_show(cairn_client_t *c, const opts_t *o, const char *verb, json_t *body,
                  const char *key, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, verb, body, &reply, f);
    if (rc == EXIT_OK) {
        const json_t *j = key ? json_object_get(reply, key) : reply;
        rc = cli_print_json(o->json || !j ? reply : j, true, f);
    }
    json_decref(reply);
    return rc;
}

int cli_endpoint_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "create_endpoint", json_pack("{s:s}", "name", OPERAND(o, 0)),
                  "endpoint", f);
}

int cli_endpoint_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "get_endpoint", json_pack("{s:s}", "name", OPERAND(o, 0)),
                  "endpoint", f);
}

int cli_endpoint_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "delete_endpoint", json_pack("{s:s}", "name", OPERAND(o, 0)),
                  NULL, f);
}

int cli_endpoint_keys(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "get_keys", json_pack("{s:s}", "endpoint", OPERAND(o, 0)), NULL,
                  f);
}

int cli_endpoint_metrics(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "get_endpoint_metrics",
                  json_pack("{s:s}", "endpoint", OPERAND(o, 0)), "deployments", f);
}

int cli_endpoint_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    static const col_t cols[] = {{"NAME", "name", false},
                                 {"AUTH", "auth_mode", false},
                                 {"URI", "scoring_uri", false}};
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, "list_endpoints", json_object(), &reply, f);
    if (rc == EXIT_OK)
        rc = o->json ? cli_print_json(reply, false, f)
                     : cli_table(json_object_get(reply, "endpoints"), cols,
                                 sizeof cols / sizeof cols[0], f);
    json_decref(reply);
    return rc;
}

/* Operands 1.. as {DEPLOYMENT: PERCENT}. */
static int s_shares(const opts_t *o, json_t **out, fail_t *f)
{
    json_t *m = json_object();
    for (int i = 1; i < NOPERANDS(o); i++) {
        const char *a = OPERAND(o, i), *eq = strchr(a, '=');
        char *end = NULL;
        long long pct = eq ? strtoll(eq + 1, &end, 10) : -1;
        if (!eq || eq == a || !end || *end || end == eq + 1 || pct < 0 || pct > 100) {
            json_decref(m);
            return cli_fail(f, EXIT_USAGE, "'%s' is not DEPLOYMENT=PERCENT (0 to 100)",
                            a);
        }
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
        json_object_set_new(m, name, json_integer(pct));
    }
    *out = m;
    return EXIT_OK;
}

static int s_split(cairn_client_t *c, const opts_t *o, const char *verb,
                   const char *key, fail_t *f)
{
    json_t *shares = NULL;
    int rc = s_shares(o, &shares, f);
    if (rc != EXIT_OK) return rc;
    return s_show(c, o, verb,
                  json_pack("{s:s,s:o}", "endpoint", OPERAND(o, 0), key, shares),
                  "endpoint", f);
}

int cli_endpoint_traffic(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_split(c, o, "update_traffic", "traffic", f);
}

int cli_endpoint_mirror(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_split(c, o, "update_mirror", "mirror", f);
}

int cli_deployment_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "create_deployment",
                  json_pack("{s:s,s:s,s:s}", "endpoint", OPERAND(o, 0), "name",
                            OPERAND(o, 1), "model", OPERAND(o, 2)),
                  "deployment", f);
}

int cli_deployment_update(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "update_deployment",
                  json_pack("{s:s,s:s,s:s}", "endpoint", OPERAND(o, 0), "name",
                            OPERAND(o, 1), "model", OPERAND(o, 2)),
                  "deployment", f);
}

int cli_deployment_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(
        c, o, "get_deployment",
        json_pack("{s:s,s:s}", "endpoint", OPERAND(o, 0), "name", OPERAND(o, 1)),
        "deployment", f);
}

int cli_deployment_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(
        c, o, "delete_deployment",
        json_pack("{s:s,s:s}", "endpoint", OPERAND(o, 0), "name", OPERAND(o, 1)), NULL,
        f);
}
