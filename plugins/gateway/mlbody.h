/* plugins/gateway/mlbody.h: MLflow's JSON bodies, both ways (mlbody.c).
 * Pure: jansson values in, the same values changed, no I/O. */
#ifndef GW_MLBODY_H
#define GW_MLBODY_H
#include <jansson.h>
#include <stdbool.h>
#include <msgpack.h>
#include <stddef.h>

#include "jsonmp.h"

/* A GET's query arguments, gathered into obj; bad says why one could not be
 * ("" while all could). */
typedef struct gw_query {
    json_t *obj;
    char bad[64];
} gw_query_t;
/* One query argument key=value into the gw_query_t arg (a key given twice
 * becomes an array; MLflow's numeric arguments become numbers, unless
 * past int64). For cairn_http_each_query. */
void gw_mlbody_query_arg(void *arg, const char *key, const char *value);

/* A request body as the verb of MLflow's route (its path after
 * /api/2.0/mlflow/) takes it: proto3's int64 (and, with metric, a
 * metric's value) strings become numbers at any depth; a model version's
 * mlflow-artifacts:/ source becomes runs:/. Not an object: unchanged. */
void gw_mlbody_request(const char *route, bool metric, json_t *body);

/* MLflow's own limits on the route's body: NULL when within them, else
 * msg filled with the sentence (cap bytes). */
const char *gw_mlbody_limits(const char *route, json_t *body, char *msg, size_t cap);

/* The same for a body already packed as msgpack (mp, len bytes). */
const char *gw_mlbody_limits_packed(const char *route, const char *mp, size_t len,
                                    char *msg, size_t cap);

/* gw_mlbody_request's conversions as cairn_json_text_pack's str_member
 * (jsonmp.h), for bodies packed straight from their text (log-batch): a
 * string member key at depth, under "metrics" when metric. */
int gw_mlbody_proto3_member(void *arg, const char *key, size_t klen, const char *s,
                            size_t n, bool metric, int depth, msgpack_packer *pk);

/* A verb's reply as MLflow's server writes it: artifact URIs through this
 * gateway's proxy, no null fields. gw_mlbody_write_opts does the same for
 * cairn_json_write (a reply written straight from msgpack). */
void gw_mlbody_reply(json_t *reply);
extern const cairn_json_write_opts_t gw_mlbody_write_opts;

/* get-download-uri's reply (a new reference): a version whose bytes the
 * registry holds (models:/NAME/VERSION) is downloaded through this
 * gateway's proxy, mlflow-artifacts:/_models/NAME/VERSION (models.c). */
json_t *gw_mlbody_download_uri(json_t *body, json_t *reply);

/* get-latest-versions' reply (a new reference) from get_registered_model's
 * reply and the request's body (its stages). */
json_t *gw_mlbody_latest_versions(json_t *body, json_t *reply);

#endif
