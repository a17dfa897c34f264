/* MLflow's JSON bodies, both ways, as pure functions (no bus, no HTTP):
 * what the gateway's MLflow routes (mlflow.c) do to a request before its
 * verb sees it and to the verb's reply before MLflow's client does. Apart,
 * so that a fuzz target (tests/fuzz/fuzz_mlbody.c) reaches all of it. */
#define _GNU_SOURCE
#include "mlbody.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cairn/msg.h"
#include "jsonmp.h"

/* MLflow's int64 fields (proto3's JSON writes them as strings, and a GET
 * sends them as text): these become numbers, at any depth. */
static bool s_int64_field(const char *key)
{
    static const char *const keys[] = {"timestamp", "step",        "start_time",
                                       "end_time",  "max_results", "max_points",
                                       NULL};
    for (const char *const *k = keys; *k; k++)
        if (!strcmp(*k, key)) return true;
    return false;
}

void gw_mlbody_query_arg(void *arg, const char *key, const char *value)
{
    gw_query_t *q = arg;
    json_t *obj = q->obj;
    if (!value) value = "";
    if (q->bad[0]) return;
    bool key_ok = cairn_utf8_valid(key, strlen(key));
    if (!key_ok || !cairn_utf8_valid(value, strlen(value))) {
        snprintf(q->bad, sizeof q->bad, "a query argument's %s is not UTF-8",
                 key_ok ? "value" : "name");
        return;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    bool number = s_int64_field(key) && *value && !*end && errno != ERANGE;
    json_t *v = number ? json_integer(n) : json_string(value);
    if (!v) return;
    json_t *had = json_object_get(obj, key);
    if (!had) {
        json_object_set_new(obj, key, v);
    } else if (json_is_array(had)) {
        json_array_append_new(had, v);
    } else {
        json_t *arr = json_pack("[O, o]", had, v);
        if (arr) json_object_set_new(obj, key, arr);
    }
}

/* proto3's JSON mapping, which MLflow's client writes: int64 fields are
 * strings ("1700000000000"), and so may a metric's double be. Such fields,
 * at any depth (log-batch's metrics), become numbers. */
static void s_numbers(json_t *j, bool metric, int depth)
{
    if (depth > 8) return;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) s_numbers(v, metric, depth + 1);
        return;
    }
    void *tmp;
    json_object_foreach_safe(j, tmp, key, v)
    {
        if (json_is_string(v)) {
            const char *t = json_string_value(v);
            char *end = NULL;
            if (s_int64_field(key)) {
                errno = 0;
                long long n = strtoll(t, &end, 10);
                /* past int64: left a string, which the verb refuses (400) */
                if (*t && !*end && errno != ERANGE)
                    json_object_set_new(j, key, json_integer(n));
            } else if (metric && !strcmp(key, "value")) {
                double d = strtod(t, &end);
                json_t *real = *t && !*end ? json_real(d) : NULL; /* NULL: NaN, inf */
                if (real) json_object_set_new(j, key, real);
            }
        } else if (json_is_object(v) || json_is_array(v)) {
            s_numbers(v, metric || !strcmp(key, "metrics"), depth + 1);
        }
    }
}

/* get-latest-versions {name, stages}: the newest version of each stage
 * asked for. Cairn has no stages (aliases instead), so every version is in
 * stage "None": the newest version when stages is empty or names "None",
 * else none. */
json_t *gw_mlbody_latest_versions(json_t *body, json_t *reply)
{
    json_t *stages = json_object_get(body, "stages"), *v;
    size_t i;
    /* a GET's ?stages=X is one string; a POST's an array */
    bool none = json_is_string(stages) ? !strcasecmp(json_string_value(stages), "None")
                                       : !json_array_size(stages);
    json_array_foreach(stages, i, v)
    {
        if (json_is_string(v) && !strcasecmp(json_string_value(v), "None")) none = true;
    }
    json_t *latest =
        json_object_get(json_object_get(reply, "registered_model"), "latest_versions");
    if (none && json_is_array(latest))
        return json_pack("{s:O}", "model_versions", latest);
    return json_pack("{s:[]}", "model_versions");
}

/* A reply as MLflow's server writes it, at any depth: the store's
 * artifact URIs as MLflow's client reaches them through this gateway's
 * proxy (artifacts.c), cairn-artifacts:/EXP/RUN/artifacts becoming
 * mlflow-artifacts:/EXP/RUN/artifacts; and no null fields (a run's
 * end_time before it ends), which proto3's JSON leaves out. */
static void s_mlflow_reply(json_t *j, int depth)
{
    static const char from[] = "cairn-artifacts:/", to[] = "mlflow-artifacts:/";
    if (depth > 8) return;
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) s_mlflow_reply(v, depth + 1);
        return;
    }
    void *tmp;
    json_object_foreach_safe(j, tmp, key, v)
    {
        const char *t = json_string_value(v);
        if (json_is_null(v)) {
            json_object_del(j, key);
        } else if (t &&
                   (!strcmp(key, "artifact_uri") ||
                    !strcmp(key, "artifact_location")) &&
                   !strncmp(t, from, sizeof from - 1)) {
            char *u = NULL;
            if (asprintf(&u, "%s%s", to, t + sizeof from - 1) >= 0) {
                json_string_set(v, u);
                free(u);
            }
        } else if (json_is_object(v) || json_is_array(v)) {
            s_mlflow_reply(v, depth + 1);
        }
    }
}

/* MLflow's own limits on log-batch (mlflow/utils/validation.py), which its
 * clients split their batches by; Cairn's native verb takes far more. NULL
 * when body is within them, else the sentence. */
static const struct {
    const char *field;
    size_t max;
} s_batch_max[] = {{"metrics", 1000}, {"params", 100}, {"tags", 100}};

/* MLflow's log-batch limits on the counts of metrics, params and tags. */
static const char *s_batch_limits(const size_t count[3], char *msg, size_t cap)
{
    size_t total = 0;
    for (size_t i = 0; i < 3; i++) {
        size_t n = count[i];
        total += n;
        if (n > s_batch_max[i].max) {
            snprintf(msg, cap,
                     "A batch logging request can contain at most %zu %s. Got %zu %s. "
                     "(MLflow's limit; Cairn's tracking.log_batch takes more)",
                     s_batch_max[i].max, s_batch_max[i].field, n, s_batch_max[i].field);
            return msg;
        }
    }
    if (total > 1000) {
        snprintf(msg, cap,
                 "A batch logging request can contain at most 1000 metrics, params and "
                 "tags in total. Got %zu",
                 total);
        return msg;
    }
    return NULL;
}

const char *gw_mlbody_limits(const char *route, json_t *body, char *msg, size_t cap)
{
    if (strcmp(route, "runs/log-batch") != 0) return NULL;
    size_t count[3];
    for (size_t i = 0; i < 3; i++)
        count[i] = json_array_size(json_object_get(body, s_batch_max[i].field));
    return s_batch_limits(count, msg, cap);
}

const char *gw_mlbody_limits_packed(const char *route, const char *mp, size_t len,
                                    char *msg, size_t cap)
{
    if (strcmp(route, "runs/log-batch") != 0) return NULL;
    size_t count[3] = {0}, off = 0;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, mp, len, &off) == MSGPACK_UNPACK_SUCCESS)
        for (size_t i = 0; i < 3; i++) {
            const msgpack_object *a = cairn_obj_get(&u.data, s_batch_max[i].field);
            count[i] = a && a->type == MSGPACK_OBJECT_ARRAY ? a->via.array.size : 0;
        }
    msgpack_unpacked_destroy(&u);
    return s_batch_limits(count, msg, cap);
}

int gw_mlbody_proto3_member(void *arg, const char *key, size_t klen, const char *s,
                            size_t n, bool metric, int depth, msgpack_packer *pk)
{
    (void)arg;
    char k[16], t[64], *end = NULL;
    if (depth > 8 || !klen || klen >= sizeof k || !strchr("tsemv", key[0])) return 0;
    memcpy(k, key, klen);
    k[klen] = '\0';
    bool i64 = s_int64_field(k), value = metric && !strcmp(k, "value");
    if (!i64 && !value) return 0;
    if (n >= sizeof t) return CAIRN_JSON_TEXT_PLAIN;
    memcpy(t, s, n);
    t[n] = '\0';
    if (i64) {
        errno = 0;
        long long v = strtoll(t, &end, 10);
        if (!*t || *end || errno == ERANGE) return 0;
        return msgpack_pack_int64(pk, v) == 0 ? 1 : -1;
    }
    double d = strtod(t, &end);
    if (!*t || *end || !isfinite(d)) return CAIRN_JSON_TEXT_PLAIN;
    return msgpack_pack_double(pk, d) == 0 ? 1 : -1;
}

/* A model version's source as MLflow's client sends it for
 * register_model("runs:/RUN/PATH"): the run's artifact URI as this gateway
 * gave it out, mlflow-artifacts:/EXP/RUN/artifacts/PATH. The registry pins
 * the bytes of a runs:/ source only, so it becomes runs:/RUN/PATH. */
static void s_runs_source(const char *route, json_t *body)
{
    static const char from[] = "mlflow-artifacts:/";
    const char *src = json_string_value(json_object_get(body, "source"));
    if (strcmp(route, "model-versions/create") != 0 || !src ||
        strncmp(src, from, sizeof from - 1) != 0)
        return;
    const char *run = strchr(src + sizeof from - 1, '/');
    const char *end = run ? strchr(run + 1, '/') : NULL;
    if (!end || end == run + 1 || strncmp(end, "/artifacts", 10) != 0 ||
        (end[10] && end[10] != '/'))
        return;
    const char *path = end[10] ? end + 11 : "";
    char *runs = NULL;
    if (asprintf(&runs, "runs:/%.*s/%s", (int)(end - run - 1), run + 1, path) >= 0) {
        json_object_set_new(body, "source", json_string(runs));
        free(runs);
    }
}

json_t *gw_mlbody_download_uri(json_t *body, json_t *reply)
{
    (void)body;
    static const char models[] = "models:/";
    json_t *out = json_deep_copy(reply);
    const char *uri = json_string_value(json_object_get(reply, "artifact_uri"));
    if (!out || !uri || strncmp(uri, models, sizeof models - 1) != 0) return out;
    const char *rest = uri + sizeof models - 1, *slash = strchr(rest, '/');
    if (!slash || slash == rest || !slash[1] || strchr(slash + 1, '/')) return out;
    char *proxied = NULL;
    if (asprintf(&proxied, "mlflow-artifacts:/_models/%s", rest) >= 0) {
        json_object_set_new(out, "artifact_uri", json_string(proxied));
        free(proxied);
    }
    return out;
}

void gw_mlbody_request(const char *route, bool metric, json_t *body)
{
    if (!json_is_object(body)) return;
    s_numbers(body, metric, 0);
    s_runs_source(route, body);
}

static const char *const s_uri_keys[] = {"artifact_uri", "artifact_location", NULL};
const cairn_json_write_opts_t gw_mlbody_write_opts = {
    .skip_nil = true,
    .keys = s_uri_keys,
    .from = "cairn-artifacts:/",
    .to = "mlflow-artifacts:/",
};

void gw_mlbody_reply(json_t *reply)
{
    s_mlflow_reply(reply, 0);
}
