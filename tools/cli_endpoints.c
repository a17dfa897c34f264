/* cli_endpoints.c — `cairn endpoint ...` and `cairn deployment ...`: the
 * endpoints service (docs/ENDPOINTS.md).
 *
 *   endpoint create NAME [--auth-mode token]    endpoint list
 *   endpoint show NAME    endpoint delete NAME    endpoint keys NAME
 *   endpoint metrics NAME    endpoint traffic NAME DEPLOYMENT=PERCENT...
 *   endpoint mirror NAME [DEPLOYMENT=PERCENT...]
 *   endpoint invoke NAME [FILE|-] [--deployment D] [--type CONTENT-TYPE]
 *   deployment create ENDPOINT NAME MODEL [--code DIR --scoring-script F]
 *   deployment update ENDPOINT NAME [MODEL] [--code DIR --scoring-script F]
 *   deployment list ENDPOINT    deployment show ENDPOINT NAME
 *   deployment delete ENDPOINT NAME
 *   deployment logs ENDPOINT NAME [--max LINES]
 *
 * MODEL is a reference (model:NAME:VERSION, model:NAME@ALIAS). Bodies are
 * built as JSON (cli_call_json); --json prints the replies as they come,
 * else tables or the object. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SVC "endpoints"
#define INVOKE_BODY_MAX (64u << 20)
#define INVOKE_TIMEOUT_MS 60000

/* The reply's object under key, printed (or the whole reply with --json). */
static int s_show(cairn_client_t *c, const opts_t *o, const char *verb, json_t *body,
                  const char *key, fail_t *f)
{
    return cli_call_show(c, o, SVC, verb, body, key, f);
}

int cli_endpoint_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, "create_endpoint",
                  json_pack("{s:s,s:s}", "name", OPERAND(o, 0), "auth_mode",
                            o->auth_mode ? o->auth_mode : "key"),
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

/* --code and --scoring-script into body's code_configuration (the folder
 * made absolute here: the plugin reads it, from another directory). */
static int s_code(const opts_t *o, json_t *body, fail_t *f)
{
    if (!o->code && !o->script) return EXIT_OK;
    if (!o->code || !o->script)
        return cli_bad_usage(f, "--code and --scoring-script go together");
    char dir[PATH_MAX];
    if (!realpath(o->code, dir))
        return cli_bad_usage(f, "--code %s: %s", o->code, strerror(errno));
    json_t *cc = json_pack("{s:s,s:s}", "code", dir, "scoring_script", o->script);
    if (!cc || json_object_set_new(body, "code_configuration", cc) != 0)
        return cli_oom(f);
    return EXIT_OK;
}

static int s_deploy(cairn_client_t *c, const opts_t *o, const char *verb, fail_t *f)
{
    json_t *body =
        json_pack("{s:s,s:s}", "endpoint", OPERAND(o, 0), "name", OPERAND(o, 1));
    if (!body) return cli_oom(f);
    int rc = NOPERANDS(o) > 2 &&
                     json_object_set_new(body, "model", json_string(OPERAND(o, 2))) != 0
                 ? cli_oom(f)
                 : s_code(o, body, f);
    if (rc != EXIT_OK) {
        json_decref(body);
        return rc;
    }
    return s_show(c, o, verb, body, "deployment", f);
}

int cli_deployment_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_deploy(c, o, "create_deployment", f);
}

int cli_deployment_update(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_deploy(c, o, "update_deployment", f);
}

int cli_deployment_logs(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(
        c, o, SVC, "get_deployment_logs",
        json_pack("{s:s,s:s,s:I}", "endpoint", OPERAND(o, 0), "name", OPERAND(o, 1),
                  "lines", (json_int_t)(o->max ? o->max : 100)),
        &reply, f);
    if (rc == EXIT_OK && o->json) {
        rc = cli_print_json(reply, true, f);
    } else if (rc == EXIT_OK) {
        const char *logs = json_string_value(json_object_get(reply, "logs"));
        if (logs && fputs(logs, stdout) == EOF)
            rc = cli_fail(f, EXIT_INTERNAL, "cannot write the logs");
    }
    json_decref(reply);
    return rc;
}

/* What authorizes a request to the endpoint in reply (get_endpoint's):
 * "Authorization: Bearer ..." with its primary key, or this CLI's token. */
static int s_bearer(cairn_client_t *c, const opts_t *o, const json_t *ep, char **out,
                    fail_t *f)
{
    const char *mode = json_string_value(json_object_get(ep, "auth_mode"));
    char secret[4096] = "";
    if (mode && !strcmp(mode, "token")) {
        if (o->token)
            snprintf(secret, sizeof secret, "%s", o->token);
        else if (!cairn_token_find(secret, sizeof secret))
            return cli_fail(f, EXIT_USAGE,
                            "a token endpoint needs a token: --token, "
                            "$CAIRN_TOKEN or `cairn login`");
    } else {
        json_t *keys = NULL;
        int rc = cli_call_json(c, o, SVC, "get_keys",
                               json_pack("{s:s}", "endpoint", OPERAND(o, 0)), &keys, f);
        if (rc != EXIT_OK) return rc;
        const char *k = json_string_value(json_object_get(keys, "primary_key"));
        snprintf(secret, sizeof secret, "%s", k ? k : "");
        json_decref(keys);
    }
    int n = asprintf(out, "Authorization: Bearer %s", secret);
    explicit_bzero(secret, sizeof secret);
    return n < 0 ? cli_oom(f) : EXIT_OK;
}

/* POST the body to the scoring URI; the answer on stdout (a status over
 * 299 is EXIT_SERVER, its sentence on stderr). */
static int s_post(const opts_t *o, const char *uri, const char *auth,
                  const json_t *text, fail_t *f)
{
    char ct[256], dep[128];
    snprintf(ct, sizeof ct, "Content-Type: %s", o->type ? o->type : "application/json");
    snprintf(dep, sizeof dep, "cairn-deployment: %s",
             o->deployment ? o->deployment : "");
    const char *headers[] = {auth, ct, o->deployment ? dep : NULL, NULL};
    int status = 0;
    char *answer = NULL;
    size_t alen = 0;
    int rc =
        cli_http_post(uri, headers, json_string_value(text), json_string_length(text),
                      INVOKE_TIMEOUT_MS, &status, &answer, &alen, f);
    if (rc != EXIT_OK) return rc;
    if (status >= 200 && status < 300) {
        if (fwrite(answer, 1, alen, stdout) != alen || fputc('\n', stdout) == EOF)
            rc = cli_fail(f, EXIT_INTERNAL, "cannot write the answer");
    } else {
        rc = cli_fail(f, EXIT_SERVER, "%d: %.*s", status,
                      (int)(alen < 2000 ? alen : 2000), answer);
    }
    free(answer);
    return rc;
}

int cli_endpoint_invoke(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *ep = NULL, *text = NULL;
    char *auth = NULL;
    int rc = cli_call_json(c, o, SVC, "get_endpoint",
                           json_pack("{s:s}", "name", OPERAND(o, 0)), &ep, f);
    const json_t *e = rc == EXIT_OK ? json_object_get(ep, "endpoint") : NULL;
    const char *uri = json_string_value(json_object_get(e, "scoring_uri"));
    if (rc == EXIT_OK && !uri)
        rc = cli_fail(f, EXIT_INTERNAL, "get_endpoint answered no scoring_uri");
    if (rc == EXIT_OK)
        rc = cli_read_text(NOPERANDS(o) > 1 ? OPERAND(o, 1) : "-", INVOKE_BODY_MAX,
                           "a request body's limit here", &text, f);
    if (rc == EXIT_OK) rc = s_bearer(c, o, e, &auth, f);
    if (rc == EXIT_OK) rc = s_post(o, uri, auth, text, f);
    if (auth) explicit_bzero(auth, strlen(auth));
    free(auth);
    json_decref(text);
    json_decref(ep);
    return rc;
}

int cli_deployment_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    static const col_t cols[] = {{"NAME", "name", false},
                                 {"FLAVOR", "flavor", false},
                                 {"MODEL", "model_ref", false},
                                 {"TRAFFIC", "traffic", false},
                                 {"INSTANCES", "instance_count", false}};
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, "list_deployments",
                           json_pack("{s:s}", "endpoint", OPERAND(o, 0)), &reply, f);
    if (rc == EXIT_OK)
        rc = o->json ? cli_print_json(reply, false, f)
                     : cli_table(json_object_get(reply, "deployments"), cols,
                                 sizeof cols / sizeof cols[0], f);
    json_decref(reply);
    return rc;
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
