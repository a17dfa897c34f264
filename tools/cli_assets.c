/* cli_assets.c — `cairn envs ...` and `cairn data ...`: the registry's
 * versioned assets (docs/REGISTRY.md, "Environments", "Data assets").
 *
 *   envs create NAME [--python P] [--requirements FILE] [--env K=V]...
 *                    [--description D] [--tag K=V]...
 *   data create NAME PATH [--type T] [--description D] [--tag K=V]...
 *       (PATH: runs:/RUN_ID/PATH, or a local file or folder, uploaded first)
 *   envs|data list [NAME] [--all] [--max N]
 *   envs|data show NAME[:VERSION]          envs|data archive NAME:VERSION
 *
 * Bodies are built here as JSON (cli_call_json); --json prints the replies
 * as they come (a list gathered from every page), else tables. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/registry.h"
#include "cli.h"

#define SVC "registry"
#define REQUIREMENTS_MAX 65536 /* the service's limit */

/* A kind of versioned asset: its prefix, verbs, reply keys and columns. */
typedef struct asset_cli {
    const char *prefix; /* "env" */
    const char *get, *list, *archive;
    const char *one, *many; /* reply keys */
    col_t cols[6];
    size_t ncols;
} asset_cli_t;

static const asset_cli_t ENVS = {"env",
                                 "get_environment",
                                 "list_environments",
                                 "archive_environment",
                                 "environment",
                                 "environments",
                                 {{"NAME", "name", false},
                                  {"VERSION", "version", false},
                                  {"PYTHON", "python", false},
                                  {"ARCHIVED", "archived", false},
                                  {"DESCRIPTION", "description", false}},
                                 5};

static const asset_cli_t DATA = {"data",
                                 "get_data_asset",
                                 "list_data_assets",
                                 "archive_data_asset",
                                 "data_asset",
                                 "data_assets",
                                 {{"NAME", "name", false},
                                  {"VERSION", "version", false},
                                  {"TYPE", "type", false},
                                  {"SIZE", "size", false},
                                  {"ROWS", "rows", false},
                                  {"PATH", "path", false}},
                                 6};

static int s_print(const opts_t *o, json_t *reply, const asset_cli_t *k,
                   const char *key, fail_t *f)
{
    if (o->json) return cli_print_json(reply, false, f);
    json_t *one = json_object_get(reply, key);
    json_t *rows = json_is_array(one) ? json_incref(one) : json_pack("[O]", one);
    int rc = rows ? cli_table(rows, k->cols, k->ncols, f) : cli_oom(f);
    json_decref(rows);
    return rc;
}

/* The --env K=V options as {K: V}. */
static int s_env_vars(const opts_t *o, json_t **out, fail_t *f)
{
    if (!(*out = json_object())) return cli_oom(f);
    for (int i = 0; i < o->nenv; i++) {
        const char *eq = strchr(o->env[i], '=');
        if (!eq || eq == o->env[i])
            return cli_bad_usage(f, "--env wants NAME=VALUE, not '%s'", o->env[i]);
        char *key = strndup(o->env[i], (size_t)(eq - o->env[i]));
        if (!key) return cli_oom(f);
        bool twice = json_object_get(*out, key) != NULL;
        int rc = twice ? 0 : json_object_set_new(*out, key, json_string(eq + 1));
        free(key);
        if (twice) return cli_bad_usage(f, "--env names '%s' twice", o->env[i]);
        if (rc != 0) return cli_oom(f);
    }
    return EXIT_OK;
}

int cli_envs_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    int rc = EXIT_OK;
    json_t *body = json_pack("{s:s}", "name", OPERAND(o, 0)), *v = NULL, *reply = NULL;
    if (!body) return cli_oom(f);
    if (o->python) json_object_set_new(body, "python", json_string(o->python));
    if (o->description)
        json_object_set_new(body, "description", json_string(o->description));
    if (o->requirements) {
        rc = cli_read_text(o->requirements, REQUIREMENTS_MAX, "the requirements' limit",
                           &v, f);
        if (rc == EXIT_OK) json_object_set_new(body, "requirements", v);
    }
    if (rc == EXIT_OK && o->nenv) {
        rc = s_env_vars(o, &v, f);
        if (rc == EXIT_OK)
            json_object_set_new(body, "env_vars", v);
        else
            json_decref(v);
    }
    if (rc == EXIT_OK && o->ntags) {
        v = cli_tags(o, &rc, f);
        if (v) json_object_set_new(body, "tags", v);
    }
    if (rc != EXIT_OK) {
        json_decref(body);
        return rc;
    }
    rc = cli_call_json(c, o, SVC, "create_environment", body, &reply, f);
    if (rc == EXIT_OK) rc = s_print(o, reply, &ENVS, ENVS.one, f);
    json_decref(reply);
    return rc;
}

/* list [NAME]: every page (at most --max rows). */
static int s_list(cairn_client_t *c, const opts_t *o, const asset_cli_t *k, fail_t *f)
{
    json_t *all = json_array();
    if (!all) return cli_oom(f);
    const char *name = NOPERANDS(o) > 0 ? OPERAND(o, 0) : NULL;
    char *token = NULL;
    int rc = EXIT_OK;
    do {
        json_t *body = json_pack("{s:i, s:b}", "max_results", 1000, "include_archived",
                                 o->all),
               *reply = NULL;
        if (body && name) json_object_set_new(body, "name", json_string(name));
        if (body && token) json_object_set_new(body, "page_token", json_string(token));
        free(token);
        token = NULL;
        rc = cli_call_json(c, o, SVC, k->list, body, &reply, f);
        if (rc != EXIT_OK) break;
        json_array_extend(all, json_object_get(reply, k->many));
        const char *next = json_string_value(json_object_get(reply, "next_page_token"));
        if (next && !(token = strdup(next))) rc = cli_oom(f);
        json_decref(reply);
    } while (rc == EXIT_OK && token && (!o->max || json_array_size(all) < o->max));
    free(token);
    while (o->max && json_array_size(all) > o->max)
        json_array_remove(all, json_array_size(all) - 1);
    if (rc == EXIT_OK) {
        json_t *out = json_pack("{s:O}", k->many, all);
        rc = out ? s_print(o, out, k, k->many, f) : cli_oom(f);
        json_decref(out);
    }
    json_decref(all);
    return rc;
}

/* NAME[:VERSION] (a KIND: prefix allowed) as {name, version}; version
 * required for archive. */
static json_t *s_ref_body(const asset_cli_t *k, const char *ref, bool need_version,
                          int *rc, fail_t *f)
{
    size_t pre = strlen(k->prefix);
    if (!strncmp(ref, k->prefix, pre) && ref[pre] == ':') ref += pre + 1;
    const char *colon = strrchr(ref, ':');
    *rc = EXIT_OK;
    if (need_version && (!colon || !colon[1])) {
        *rc = cli_bad_usage(f, "'%s' names no version: NAME:VERSION", ref);
        return NULL;
    }
    json_t *body = colon ? json_pack("{s:s%, s:s}", "name", ref, (size_t)(colon - ref),
                                     "version", colon + 1)
                         : json_pack("{s:s}", "name", ref);
    if (!body) *rc = cli_oom(f);
    return body;
}

static int s_show(cairn_client_t *c, const opts_t *o, const asset_cli_t *k, fail_t *f)
{
    int rc;
    json_t *body = s_ref_body(k, OPERAND(o, 0), false, &rc, f), *reply = NULL;
    if (!body) return rc;
    rc = cli_call_json(c, o, SVC, k->get, body, &reply, f);
    if (rc == EXIT_OK) rc = cli_print_json(reply, !o->json, f);
    json_decref(reply);
    return rc;
}

static int s_archive(cairn_client_t *c, const opts_t *o, const asset_cli_t *k,
                     fail_t *f)
{
    int rc;
    json_t *body = s_ref_body(k, OPERAND(o, 0), true, &rc, f), *reply = NULL;
    if (!body) return rc;
    rc = cli_call_json(c, o, SVC, k->archive, body, &reply, f);
    if (rc == EXIT_OK) rc = s_print(o, reply, k, k->one, f);
    json_decref(reply);
    return rc;
}

int cli_envs_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_list(c, o, &ENVS, f);
}

int cli_envs_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, &ENVS, f);
}

int cli_envs_archive(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_archive(c, o, &ENVS, f);
}

/* data create NAME PATH: a local PATH is uploaded first (its type, unless
 * --type says: uri_folder for a folder, uri_file for a file). */
int cli_data_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    const char *path = OPERAND(o, 1), *type = o->type;
    char *uploaded = NULL;
    struct stat st;
    if (!strstr(path, ":/") && stat(path, &st) == 0) {
        if (!type) type = S_ISDIR(st.st_mode) ? "uri_folder" : "uri_file";
        cairn_err_t err = {0};
        if (cairn_registry_upload(c, path, &uploaded, &err) != 0)
            return cli_fail_sdk(o, &err, f);
        path = uploaded;
    }
    int rc = EXIT_OK;
    json_t *body = json_pack("{s:s, s:s, s:s}", "name", OPERAND(o, 0), "path", path,
                             "type", type ? type : "uri_folder"),
           *reply = NULL;
    free(uploaded);
    if (!body) return cli_oom(f);
    if (o->description)
        json_object_set_new(body, "description", json_string(o->description));
    if (o->ntags) {
        json_t *tags = cli_tags(o, &rc, f);
        if (!tags) {
            json_decref(body);
            return rc;
        }
        json_object_set_new(body, "tags", tags);
    }
    rc = cli_call_json(c, o, SVC, "create_data_asset", body, &reply, f);
    if (rc == EXIT_OK) rc = s_print(o, reply, &DATA, DATA.one, f);
    json_decref(reply);
    return rc;
}

int cli_data_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_list(c, o, &DATA, f);
}

int cli_data_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_show(c, o, &DATA, f);
}

int cli_data_archive(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_archive(c, o, &DATA, f);
}
