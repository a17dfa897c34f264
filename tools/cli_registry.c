/* cli_registry.c — `cairn models ...`: the model registry (docs/REGISTRY.md).
 *
 *   models create NAME [--tag K=V]        models list [--filter F] [--max N]
 *   models register NAME SOURCE           models versions NAME [--max N]
 *   models show REF (NAME, NAME:N, NAME@ALIAS)
 *   models alias NAME ALIAS VERSION       models history NAME ALIAS
 *   models delete NAME                    models download REF DIR
 *   lineage NODE [--dot]                  (run:ID, model:NAME:N, data:..., env:...)
 *
 * A register SOURCE that is a local file or folder is uploaded first
 * (cairn_registry_upload), then registered from the artifact store.
 *
 * Bodies are built here as JSON (cli_call_json); --json prints the replies
 * as they come, else tables. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/registry.h"
#include "cli.h"

#define SVC "registry"

static int s_print(const opts_t *o, json_t *reply, const char *key, const col_t *cols,
                   size_t ncols, fail_t *f)
{
    if (o->json) return cli_print_json(reply, false, f);
    json_t *one = json_object_get(reply, key);
    json_t *rows = json_is_array(one) ? json_incref(one) : json_pack("[O]", one);
    int rc = rows ? cli_table(rows, cols, ncols, f) : cli_oom(f);
    json_decref(rows);
    return rc;
}

static const col_t MODEL_COLS[] = {{"NAME", "name", false},
                                   {"UPDATED", "last_updated_timestamp", false},
                                   {"DESCRIPTION", "description", false}};
static const col_t VERSION_COLS[] = {
    {"NAME", "name", false},     {"VERSION", "version", false},
    {"RUN_ID", "run_id", false}, {"FLAVOR", "flavor", false},
    {"SOURCE", "source", false}, {"CONTENT_HASH", "content_hash", false}};

int cli_models_create(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    int rc = EXIT_OK;
    json_t *tags = cli_tags(o, &rc, f), *reply = NULL;
    if (!tags) return rc;
    rc = cli_call_json(c, o, SVC, "create_registered_model",
                       json_pack("{s:s, s:o}", "name", OPERAND(o, 0), "tags", tags),
                       &reply, f);
    if (rc == EXIT_OK) rc = s_print(o, reply, "registered_model", MODEL_COLS, 3, f);
    json_decref(reply);
    return rc;
}

/* A source the CLI uploads first: an existing local file or folder, not
 * a URI (runs:/, s3://, ...). */
static bool s_local_source(const char *source)
{
    struct stat st;
    return !strstr(source, ":/") && stat(source, &st) == 0;
}

int cli_models_register(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    int rc = EXIT_OK;
    json_t *tags = cli_tags(o, &rc, f), *reply = NULL;
    if (!tags) return rc;
    char *uploaded = NULL;
    const char *source = OPERAND(o, 1);
    cairn_err_t err = {0};
    /* as MLflow's register_model: the model is created when it is new */
    if (cairn_registry_create_model(c, OPERAND(o, 0), NULL, &err) != 0 &&
        err.st != CAIRN_ST_CONFLICT) {
        json_decref(tags);
        return cli_fail_sdk(o, &err, f);
    }
    if (s_local_source(source)) {
        if (cairn_registry_upload(c, source, &uploaded, &err) != 0) {
            json_decref(tags);
            return cli_fail_sdk(o, &err, f);
        }
        source = uploaded;
    }
    rc = cli_call_json(c, o, SVC, "create_model_version",
                       json_pack("{s:s, s:s, s:o}", "name", OPERAND(o, 0), "source",
                                 source, "tags", tags),
                       &reply, f);
    if (rc == EXIT_OK) rc = s_print(o, reply, "model_version", VERSION_COLS, 6, f);
    json_decref(reply);
    free(uploaded);
    return rc;
}

/* models download REF DIR: every file, checked against its hash. */
int cli_models_download(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    cairn_err_t err = {0};
    if (cairn_registry_download(c, OPERAND(o, 0), OPERAND(o, 1), &err) != 0)
        return cli_fail_sdk(o, &err, f);
    if (!o->json) {
        printf("%s\n", OPERAND(o, 1));
        return EXIT_OK;
    }
    json_t *out = json_pack("{s:s, s:s}", "ref", OPERAND(o, 0), "dir", OPERAND(o, 1));
    int rc = out ? cli_print_json(out, false, f) : cli_oom(f);
    json_decref(out);
    return rc;
}

/* Every page of verb's `key` list (at most --max rows). */
static int s_gather(cairn_client_t *c, const opts_t *o, const char *verb,
                    const char *key, const char *filter, json_t **all, fail_t *f)
{
    *all = json_array();
    if (!*all) return cli_oom(f);
    char *token = NULL;
    int rc = EXIT_OK;
    do {
        json_t *body = json_pack("{s:i}", "max_results", 1000), *reply = NULL;
        if (body && filter) json_object_set_new(body, "filter", json_string(filter));
        if (body && token) json_object_set_new(body, "page_token", json_string(token));
        free(token);
        token = NULL;
        rc = cli_call_json(c, o, SVC, verb, body, &reply, f);
        if (rc != EXIT_OK) break;
        json_array_extend(*all, json_object_get(reply, key));
        const char *next = json_string_value(json_object_get(reply, "next_page_token"));
        if (next && !(token = strdup(next))) rc = cli_oom(f);
        json_decref(reply);
    } while (rc == EXIT_OK && token && (!o->max || json_array_size(*all) < o->max));
    free(token);
    while (o->max && json_array_size(*all) > o->max)
        json_array_remove(*all, json_array_size(*all) - 1);
    return rc;
}

static int s_list(cairn_client_t *c, const opts_t *o, const char *verb, const char *key,
                  const char *filter, const col_t *cols, size_t ncols, fail_t *f)
{
    json_t *all = NULL;
    int rc = s_gather(c, o, verb, key, filter, &all, f);
    if (rc == EXIT_OK) {
        json_t *out = json_pack("{s:O}", key, all);
        rc = out ? s_print(o, out, key, cols, ncols, f) : cli_oom(f);
        json_decref(out);
    }
    json_decref(all);
    return rc;
}

int cli_models_list(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    return s_list(c, o, "search_registered_models", "registered_models", o->filter,
                  MODEL_COLS, 3, f);
}

int cli_models_versions(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    const char *name = OPERAND(o, 0);
    if (strchr(name, '\'')) return cli_bad_usage(f, "a model name holds no ' here");
    char filter[512];
    snprintf(filter, sizeof filter, "name = '%s'", name);
    return s_list(c, o, "search_model_versions", "model_versions", filter, VERSION_COLS,
                  6, f);
}

/* show REF: NAME@ALIAS and NAME:VERSION name a version, NAME the model. */
int cli_models_show(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    const char *ref = OPERAND(o, 0), *at = strrchr(ref, '@'),
               *colon = strrchr(ref, ':');
    json_t *body = NULL, *reply = NULL;
    const char *verb = "get_registered_model", *key = "registered_model";
    if (at) {
        body =
            json_pack("{s:s%, s:s}", "name", ref, (size_t)(at - ref), "alias", at + 1);
        verb = "get_model_version_by_alias";
    } else if (colon) {
        body = json_pack("{s:s%, s:s}", "name", ref, (size_t)(colon - ref), "version",
                         colon + 1);
        verb = "get_model_version";
    } else {
        body = json_pack("{s:s}", "name", ref);
    }
    if (at || colon) key = "model_version";
    int rc = cli_call_json(c, o, SVC, verb, body, &reply, f);
    if (rc == EXIT_OK)
        rc = o->json || at || colon ? cli_print_json(reply, !o->json, f)
                                    : s_print(o, reply, key, MODEL_COLS, 3, f);
    json_decref(reply);
    return rc;
}

int cli_models_alias(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, "set_alias",
                           json_pack("{s:s, s:s, s:s}", "name", OPERAND(o, 0), "alias",
                                     OPERAND(o, 1), "version", OPERAND(o, 2)),
                           &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    json_decref(reply);
    return rc;
}

static const col_t HISTORY_COLS[] = {{"VERSION", "version", false},
                                     {"ACTION", "action", false},
                                     {"BY", "set_by", false},
                                     {"AT_MS", "set_at", false}};

int cli_models_history(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(
        c, o, SVC, "get_alias_history",
        json_pack("{s:s, s:s}", "name", OPERAND(o, 0), "alias", OPERAND(o, 1)), &reply,
        f);
    if (rc == EXIT_OK) rc = s_print(o, reply, "history", HISTORY_COLS, 4, f);
    json_decref(reply);
    return rc;
}

int cli_models_delete(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, SVC, "delete_registered_model",
                           json_pack("{s:s}", "name", OPERAND(o, 0)), &reply, f);
    json_decref(reply);
    return rc;
}

/* Print the edges of dir ("up": into node; "down": out of it) from node,
 * indented by depth; each node once (the graph may join again). */
static void s_tree(const json_t *edges, const char *node, bool up, int depth,
                   json_t *seen)
{
    size_t i;
    json_t *e;
    json_array_foreach(edges, i, e)
    {
        const char *from = json_string_value(json_object_get(e, "from"));
        const char *to = json_string_value(json_object_get(e, "to"));
        const char *kind = json_string_value(json_object_get(e, "kind"));
        if (!from || !to || !kind || strcmp(up ? to : from, node) != 0) continue;
        const char *next = up ? from : to;
        bool again = json_object_get(seen, next) != NULL;
        printf("%*s%s %s %s%s\n", 2 * depth, "", up ? "<-" : "->", kind, next,
               again ? " (above)" : "");
        if (again) continue;
        json_object_set_new(seen, next, json_true());
        s_tree(edges, next, up, depth + 1, seen);
    }
}

/* A DOT string literal: quotes and backslashes escaped. */
static void s_dot_id(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

/* The graph in Graphviz's DOT: a node per id, shaped by type, an edge per
 * edge labelled by its kind. */
static void s_dot(const json_t *reply)
{
    static const struct {
        const char *type, *shape;
    } shapes[] = {{"run", "box"},
                  {"model_version", "component"},
                  {"data_asset", "cylinder"},
                  {"environment", "hexagon"},
                  {"endpoint", "doubleoctagon"}};
    size_t i;
    json_t *x;
    printf("digraph lineage {\n  rankdir=LR;\n");
    json_array_foreach(json_object_get(reply, "nodes"), i, x)
    {
        const char *id = json_string_value(json_object_get(x, "id"));
        const char *type = json_string_value(json_object_get(x, "type"));
        if (!id) continue;
        const char *shape = "ellipse";
        for (size_t k = 0; type && k < sizeof shapes / sizeof shapes[0]; k++)
            if (!strcmp(type, shapes[k].type)) shape = shapes[k].shape;
        printf("  ");
        s_dot_id(id);
        printf(" [shape=%s];\n", shape);
    }
    json_array_foreach(json_object_get(reply, "edges"), i, x)
    {
        const char *from = json_string_value(json_object_get(x, "from"));
        const char *to = json_string_value(json_object_get(x, "to"));
        const char *kind = json_string_value(json_object_get(x, "kind"));
        if (!from || !to) continue;
        printf("  ");
        s_dot_id(from);
        printf(" -> ");
        s_dot_id(to);
        printf(" [label=");
        s_dot_id(kind ? kind : "");
        printf("];\n");
    }
    printf("}\n");
}

/* lineage NODE: inputs above (<-), products below (->); --dot: DOT. */
int cli_lineage(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(
        c, o, SVC, "lineage",
        json_pack("{s:s, s:s}", "node", o->args[1], "direction", "both"), &reply, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(reply, false, f);
    if (rc == EXIT_OK && !o->json && o->dot) s_dot(reply);
    if (rc == EXIT_OK && !o->json && !o->dot) {
        const json_t *edges = json_object_get(reply, "edges");
        const json_t *nodes = json_object_get(reply, "nodes");
        const char *start =
            json_string_value(json_object_get(json_array_get(nodes, 0), "id"));
        json_t *seen = json_object();
        if (!seen || !start) {
            rc = seen ? cli_fail(f, EXIT_INTERNAL, "the lineage reply names no node")
                      : cli_oom(f);
        } else {
            printf("%s\n", start);
            json_object_set_new(seen, start, json_true());
            s_tree(edges, start, true, 1, seen);
            json_object_clear(seen);
            json_object_set_new(seen, start, json_true());
            s_tree(edges, start, false, 1, seen);
        }
        json_decref(seen);
    }
    json_decref(reply);
    return rc;
}
