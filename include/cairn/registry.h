/* cairn/registry.h — the model registry from C (the `registry` service;
 * docs/REGISTRY.md).
 *
 * Thin, synchronous wrappers over the registry's verbs:
 *
 *     cairn_registry_create_model(client, "churn", NULL, &err);
 *     cairn_model_version_t *v = NULL;
 *     cairn_registry_create_version(client, "churn", "runs:/RUN_ID/model",
 *                                   "xgboost", &v, &err);
 *     cairn_registry_set_alias(client, "churn", "champion",
 *                              cairn_model_version_number(v), &err);
 *     cairn_model_version_free(&v);
 *     cairn_registry_get(client, "churn@champion", &v, &err);   // or "churn:3"
 *     puts(cairn_model_version_get(v, "content_hash"));
 *
 *     cairn_environment_t *e = NULL;                // environments
 *     cairn_registry_get_environment(client, "env:py311:2", &e, &err);
 *     puts(cairn_environment_get(e, "python"));
 *     cairn_environment_free(&e);
 *
 * Names are per workspace (the client's, cairn_client_set_workspace). Every
 * function returns 0, or -1 with err filled (err may be NULL); a refusal
 * keeps the server's status and code (404 not_found for an unknown model,
 * version or alias; 409 conflict for a name taken; 400 for a bad field). A
 * reply without what the service promises is 502 bad_reply.
 */
#ifndef CAIRN_REGISTRY_H
#define CAIRN_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/client.h"
#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_REGISTRY_SVC "registry"

/* create_registered_model {name, description (NULL: none)}. */
CAIRN_EXPORT int cairn_registry_create_model(cairn_client_t *client, const char *name,
                                             const char *description, cairn_err_t *err);
/* delete_registered_model {name}: its versions, tags and aliases go too. */
CAIRN_EXPORT int cairn_registry_delete_model(cairn_client_t *client, const char *name,
                                             cairn_err_t *err);

/* A model version as the service answered it (opaque). */
typedef struct cairn_model_version cairn_model_version_t;

/* create_model_version {name, source, flavor (NULL: none)}: the next
 * version of name. A source runs:/RUN_ID/PATH is stored once (its blobs
 * pinned; content_hash set). */
CAIRN_EXPORT int cairn_registry_create_version(cairn_client_t *client, const char *name,
                                               const char *source, const char *flavor,
                                               cairn_model_version_t **out,
                                               cairn_err_t *err);
/* The version a reference names: "NAME@ALIAS" or "NAME:VERSION". */
CAIRN_EXPORT int cairn_registry_get(cairn_client_t *client, const char *ref,
                                    cairn_model_version_t **out, cairn_err_t *err);
/* set_alias {name, alias, version}. */
CAIRN_EXPORT int cairn_registry_set_alias(cairn_client_t *client, const char *name,
                                          const char *alias, int64_t version,
                                          cairn_err_t *err);

CAIRN_EXPORT int64_t cairn_model_version_number(const cairn_model_version_t *v);
/* A text field of the version (name, source, run_id, flavor, signature,
 * description, content_hash, user_id, status); "" when absent. Valid until
 * cairn_model_version_free. */
CAIRN_EXPORT const char *cairn_model_version_get(const cairn_model_version_t *v,
                                                 const char *key);
/* Free and set *v to NULL; NULL-safe, safe twice. */
CAIRN_EXPORT void cairn_model_version_free(cairn_model_version_t **v);

/* Upload a local file or folder into the artifact store, once: a new run
 * of experiment "cairn-uploads" (tag cairn.upload_of: local_path) holds it
 * under its base name. *source receives "runs:/RUN_ID/NAME" (free() it),
 * to register with cairn_registry_create_version. */
CAIRN_EXPORT int cairn_registry_upload(cairn_client_t *client, const char *local_path,
                                       char **source, cairn_err_t *err);
/* Write the files of ref (a model version NAME:VERSION, NAME@ALIAS, or a
 * data asset data:NAME:VERSION) under the folder dst_dir (created): each
 * read with read_file into a temporary file beside its place, checked
 * against its size and hash (500 corrupt otherwise), then renamed. */
CAIRN_EXPORT int cairn_registry_download(cairn_client_t *client, const char *ref,
                                         const char *dst_dir, cairn_err_t *err);

/* ---- data assets, inputs, references -------------------------------------- */

/* create_data_asset {name, type (uri_file, uri_folder, table; NULL: by the
 * path), path, description (NULL: none)}: the next version of data asset
 * name, into *out_version (may be NULL). path is runs:/RUN_ID/PATH, or a
 * local file or folder, uploaded first (cairn_registry_upload). */
CAIRN_EXPORT int cairn_registry_create_data_asset(
    cairn_client_t *client, const char *name, const char *type, const char *path,
    const char *description, int64_t *out_version, cairn_err_t *err);
/* log_input {run_id, input}: run_id read input (data:NAME:VERSION,
 * data:NAME@latest, model:NAME:VERSION, env:NAME:VERSION), an edge of the
 * lineage. */
CAIRN_EXPORT int cairn_registry_log_input(cairn_client_t *client, const char *run_id,
                                          const char *input, cairn_err_t *err);
/* resolve {ref}: *canonical (model:NAME:V, data:NAME:V or env:NAME:V),
 * *kind (model_version, data_asset, environment) and *path (a local
 * read-only folder of its files; NULL when Cairn stores none), each a heap
 * copy to free(), each pointer may be NULL. */
CAIRN_EXPORT int cairn_registry_resolve(cairn_client_t *client, const char *ref,
                                        char **canonical, char **kind, char **path,
                                        cairn_err_t *err);

/* lineage {node, direction ("up", "down", "both"; NULL: both), depth
 * (1..50; 0: the service's 10)}: *out receives the reply, whose body
 * (cairn_reply_object) holds nodes [{id, type}] and edges [{from, to,
 * kind}]; free it with cairn_reply_destroy. */
CAIRN_EXPORT int cairn_registry_lineage(cairn_client_t *client, const char *node,
                                        const char *direction, int depth,
                                        cairn_reply_t **out, cairn_err_t *err);

/* ---- environments (env:NAME:VERSION) -------------------------------------- */

/* An environment version as the service answered it (opaque). */
typedef struct cairn_environment cairn_environment_t;

/* create_environment {name, python, requirements, description} (NULL: none
 * for each but name): the next version of name, into *out_version (may be
 * NULL). */
CAIRN_EXPORT int cairn_registry_create_environment(cairn_client_t *client,
                                                   const char *name, const char *python,
                                                   const char *requirements,
                                                   const char *description,
                                                   int64_t *out_version,
                                                   cairn_err_t *err);
/* The environment a reference names: "env:NAME:VERSION", "NAME:VERSION", or
 * "NAME" / "NAME:latest" (the highest version not archived). */
CAIRN_EXPORT int cairn_registry_get_environment(cairn_client_t *client, const char *ref,
                                                cairn_environment_t **out,
                                                cairn_err_t *err);
CAIRN_EXPORT int64_t cairn_environment_version(const cairn_environment_t *e);
CAIRN_EXPORT bool cairn_environment_archived(const cairn_environment_t *e);
/* A text field (name, python, requirements, description, user_id); "" when
 * absent. Valid until cairn_environment_free. */
CAIRN_EXPORT const char *cairn_environment_get(const cairn_environment_t *e,
                                               const char *key);
/* The value of environment variable var in env_vars; NULL when unset. */
CAIRN_EXPORT const char *cairn_environment_var(const cairn_environment_t *e,
                                               const char *var);
/* Free and set *e to NULL; NULL-safe, safe twice. */
CAIRN_EXPORT void cairn_environment_free(cairn_environment_t **e);

#ifdef __cplusplus
}
#endif
#endif
