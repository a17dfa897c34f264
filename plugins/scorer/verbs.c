/* The endpoints service's verbs (scorer.h; names and reply keys:
 * services.md "endpoints"). Each change is stored, then the routes the
 * HTTP threads read are rebuilt and swapped whole. An endpoint belongs to
 * the workspace that made it (another's is 404), but its name is unique on
 * the machine: it is in the scoring URI. */
#define _GNU_SOURCE
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "scorer.h"
#include "snapshot.h"

#define REGISTRY "registry"
#define TTL_MS 30000

void ep_new_key(char out[EP_KEY_LEN + 1])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, EP_KEY_LEN + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

const char *ep_ws(cairn_req_t *req)
{
    const char *w = cairn_workspace(req);
    return w && *w ? w : "default";
}

/* A name as Azure's: 3 to 32 of [a-z0-9-], starting with a letter, not
 * ending with '-'. */
int ep_name_field(const msgpack_object *body, const char *key, char *out,
                  cairn_err_t *err)
{
    cairn_str_t n;
    if (cairn_field_str(body, key, true, EP_NAME_MAX, &n, err) != 0) return -1;
    bool ok = n.len >= 3 && islower((unsigned char)n.ptr[0]) && n.ptr[n.len - 1] != '-';
    for (size_t i = 0; ok && i < n.len; i++)
        ok = islower((unsigned char)n.ptr[i]) || isdigit((unsigned char)n.ptr[i]) ||
             n.ptr[i] == '-';
    if (!ok)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must be 3 to %d lowercase letters, digits or '-', "
                             "starting with a letter and not ending with '-'",
                             key, EP_NAME_MAX);
    snprintf(out, EP_NAME_MAX + 1, "%.*s", (int)n.len, n.ptr);
    return 0;
}

msgpack_packer *ep_reply_begin(scorer_t *sc)
{
    msgpack_sbuffer_clear(&sc->sb);
    return &sc->pk;
}

/* ---- packing ------------------------------------------------------------------- */

typedef struct pack_deps {
    msgpack_packer *pk;
    int n;
} pack_deps_t;

static int s_count_dep(void *arg, const dep_row_t *d)
{
    (void)d;
    ((pack_deps_t *)arg)->n++;
    return 0;
}

static int s_traffic_kv(void *arg, const dep_row_t *d)
{
    pack_deps_t *p = arg;
    cairn_pack_cstr(p->pk, d->name);
    msgpack_pack_int64(p->pk, d->traffic);
    return 0;
}

static int s_count_mirror(void *arg, const dep_row_t *d)
{
    ((pack_deps_t *)arg)->n += d->mirror > 0;
    return 0;
}

static int s_mirror_kv(void *arg, const dep_row_t *d)
{
    pack_deps_t *p = arg;
    if (d->mirror <= 0) return 0;
    cairn_pack_cstr(p->pk, d->name);
    msgpack_pack_int64(p->pk, d->mirror);
    return 0;
}

static void s_pack_endpoint(scorer_t *sc, msgpack_packer *pk, const ep_row_t *e)
{
    char uri[256];
    snprintf(uri, sizeof uri, "%s/endpoints/%s/score", sc->base_uri, e->name);
    msgpack_pack_map(pk, 6);
    cairn_pack_kv_str(pk, "name", e->name);
    cairn_pack_kv_str(pk, "scoring_uri", uri);
    cairn_pack_kv_str(pk, "auth_mode", e->auth_mode);
    cairn_pack_cstr(pk, "created");
    msgpack_pack_int64(pk, e->created);
    pack_deps_t p = {.pk = pk};
    cairn_err_t err = {0};
    dep_store_each(sc->store, e->name, s_count_dep, &p, &err);
    cairn_pack_cstr(pk, "traffic");
    msgpack_pack_map(pk, (uint32_t)p.n);
    dep_store_each(sc->store, e->name, s_traffic_kv, &p, &err);
    pack_deps_t m = {.pk = pk};
    dep_store_each(sc->store, e->name, s_count_mirror, &m, &err);
    cairn_pack_cstr(pk, "mirror");
    msgpack_pack_map(pk, (uint32_t)m.n);
    dep_store_each(sc->store, e->name, s_mirror_kv, &m, &err);
}

static void s_pack_deployment(scorer_t *sc, msgpack_packer *pk, const dep_row_t *d)
{
    msgpack_pack_map(pk, 8 + (uint32_t)dep_flavor_fields(d));
    dep_flavor_pack(sc, pk, d);
    cairn_pack_cstr(pk, "follow_alias");
    if (d->follow)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    cairn_pack_kv_str(pk, "endpoint", d->endpoint);
    cairn_pack_kv_str(pk, "name", d->name);
    cairn_pack_kv_str(pk, "model", d->model);
    cairn_pack_kv_str(pk, "model_ref", d->model_ref);
    cairn_pack_cstr(pk, "instance_count");
    msgpack_pack_int64(pk, d->instance_count);
    cairn_pack_cstr(pk, "traffic");
    msgpack_pack_int64(pk, d->traffic);
    cairn_pack_cstr(pk, "created");
    msgpack_pack_int64(pk, d->created);
}

static int s_reply_endpoint(scorer_t *sc, cairn_req_t *req, int st, const ep_row_t *e)
{
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "endpoint");
    s_pack_endpoint(sc, pk, e);
    cairn_reply_sbuf(req, st, &sc->sb);
    return 0;
}

/* The endpoint req's body names (key "name" or "endpoint"), in req's
 * workspace; 404 when none. */
static int s_find(scorer_t *sc, cairn_req_t *req, const char *key, ep_row_t *e,
                  cairn_err_t *err)
{
    char name[EP_NAME_MAX + 1];
    if (ep_name_field(cairn_body(req), key, name, err) != 0) return -1;
    int rc = ep_store_get(sc->store, ep_ws(req), name, e, err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "no endpoint named '%s' in this workspace", name);
    return rc;
}

/* ---- endpoints ---------------------------------------------------------------- */

int ep_create(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e = {.created = (int64_t)cairn_wall_ms()};
    cairn_str_t mode = {"key", 3};
    if (ep_name_field(cairn_body(req), "name", e.name, err) != 0 ||
        cairn_field_str(cairn_body(req), "auth_mode", false, 8, &mode, err) < 0)
        return -1;
    cairn_name_object(req, "endpoint", e.name, strlen(e.name));
    if (!cairn_str_eq(mode, "key") && !cairn_str_eq(mode, "token"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "auth_mode must be key or token");
    snprintf(e.ws, sizeof e.ws, "%s", ep_ws(req));
    snprintf(e.auth_mode, sizeof e.auth_mode, "%.*s", (int)mode.len, mode.ptr);
    ep_new_key(e.key1);
    ep_new_key(e.key2);
    if (ep_store_insert(sc->store, &e, err) != 0 || routes_rebuild(sc, err) != 0)
        return -1;
    return s_reply_endpoint(sc, req, CAIRN_ST_CREATED, &e);
}

int ep_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    if (s_find(sc, req, "name", &e, err) != 0) return -1;
    return s_reply_endpoint(sc, req, CAIRN_ST_OK, &e);
}

typedef struct list_ctx {
    scorer_t *sc;
    ep_row_t *v;
    size_t n, cap;
} list_ctx_t;

static int s_collect(void *arg, const ep_row_t *e)
{
    list_ctx_t *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        ep_row_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return 1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
    return 0;
}

int ep_list(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    list_ctx_t l = {.sc = sc};
    if (ep_store_each(sc->store, ep_ws(req), s_collect, &l, err) != 0) {
        free(l.v);
        return -1;
    }
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "endpoints");
    msgpack_pack_array(pk, (uint32_t)l.n);
    for (size_t i = 0; i < l.n; i++) s_pack_endpoint(sc, pk, &l.v[i]);
    free(l.v);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

int ep_delete(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    if (s_find(sc, req, "name", &e, err) != 0) return -1;
    cairn_name_object(req, "endpoint", e.name, strlen(e.name));
    if (ep_store_delete(sc->store, e.name, err) != 0 || routes_rebuild(sc, err) != 0)
        return -1;
    dep_flavor_remove(sc, e.name, NULL);
    msgpack_pack_map(ep_reply_begin(sc), 0);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

int ep_check_access(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    if (s_find(sc, req, "endpoint", &e, err) != 0) return -1;
    msgpack_pack_map(ep_reply_begin(sc), 0);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

static int s_reply_keys(scorer_t *sc, cairn_req_t *req, const ep_row_t *e)
{
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "primary_key", e->key1);
    cairn_pack_kv_str(pk, "secondary_key", e->key2);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

int ep_get_keys(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    if (s_find(sc, req, "endpoint", &e, err) != 0) return -1;
    return s_reply_keys(sc, req, &e);
}

int ep_regenerate_keys(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    cairn_str_t which = {"primary", 7};
    if (s_find(sc, req, "endpoint", &e, err) != 0 ||
        cairn_field_str(cairn_body(req), "key_type", false, 16, &which, err) < 0)
        return -1;
    cairn_name_object(req, "endpoint", e.name, strlen(e.name));
    if (cairn_str_eq(which, "primary"))
        ep_new_key(e.key1);
    else if (cairn_str_eq(which, "secondary"))
        ep_new_key(e.key2);
    else
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "key_type must be primary or secondary");
    if (ep_store_set_keys(sc->store, &e, err) != 0 || routes_rebuild(sc, err) != 0)
        return -1;
    return s_reply_keys(sc, req, &e);
}

/* ---- deployments -------------------------------------------------------------- */

typedef struct creating {
    struct creating *prev, *next; /* sc->pending */
    scorer_t *sc;
    char ws[CAIRN_HDR_NAME_MAX + 1]; /* without a request (an alias moved) */
    cairn_req_t *req;
    dep_row_t d;
    bool first;    /* the endpoint's first deployment: it takes all traffic */
    bool update;   /* update_deployment: a new model for one that exists */
    bool new_code; /* d.code is a snapshot made for this request */
} creating_t;

static void s_pending_add(scorer_t *sc, creating_t *c)
{
    c->next = sc->pending;
    if (c->next) c->next->prev = c;
    sc->pending = c;
}

static void s_pending_del(scorer_t *sc, creating_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        sc->pending = c->next;
    if (c->next) c->next->prev = c->prev;
}

void dep_pending_free_all(scorer_t *sc)
{
    while (sc->pending) {
        creating_t *c = sc->pending;
        s_pending_del(sc, c);
        free(c);
    }
}

static void s_lineage_logged(void *arg, int st, const char *code, const char *msg,
                             const msgpack_object *body)
{
    (void)body;
    scorer_t *sc = arg;
    if (st >= 400 && !(code && !strcmp(code, CAIRN_E_NO_SERVICE)))
        cairn_log(sc->ctx, CAIRN_LOG_WARN, "endpoints: a deployment's lineage: %s",
                  msg ? msg : "refused");
}

/* The registry's lineage: model version -> deployment -> endpoint (best
 * effort: a deployment does not fail for it). */
static void s_log_lineage(creating_t *c)
{
    scorer_t *sc = c->sc;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cairn_pack_kv_str(&pk, "endpoint", c->d.endpoint);
    cairn_pack_kv_str(&pk, "name", c->d.name);
    cairn_pack_kv_str(&pk, "model", c->d.model_ref);
    cairn_err_t err = {0};
    if (cairn_call_ws(sc->ctx, c->req ? ep_ws(c->req) : c->ws, REGISTRY,
                      "log_deployment", sb.data, sb.size, TTL_MS, s_lineage_logged, sc,
                      &err) != 0)
        cairn_log(sc->ctx, CAIRN_LOG_WARN, "endpoints: a deployment's lineage: %s",
                  err.msg);
    msgpack_sbuffer_destroy(&sb);
}

/* The end of a create or update: stored and swapped in, answered (or
 * logged, for an alias that moved); or refused with err, changing nothing
 * (a code snapshot made for it is removed). Frees c. */
static void s_finish(creating_t *c, cairn_err_t *err)
{
    scorer_t *sc = c->sc;
    if (!err->st && !c->update) c->d.traffic = c->first ? 100 : 0;
    if (!err->st &&
        (c->update ? dep_store_update(sc->store, &c->d, err)
                   : dep_store_insert(sc->store, &c->d, err)) == 0 &&
        routes_rebuild(sc, err) == 0) {
        s_log_lineage(c);
        msgpack_packer *pk = ep_reply_begin(sc);
        msgpack_pack_map(pk, 1);
        cairn_pack_cstr(pk, "deployment");
        s_pack_deployment(sc, pk, &c->d);
        if (c->req)
            cairn_reply_sbuf(c->req, c->update ? CAIRN_ST_OK : CAIRN_ST_CREATED,
                             &sc->sb);
        else
            cairn_log(sc->ctx, CAIRN_LOG_INFO,
                      "endpoint %s: deployment %s follows %s to %s", c->d.endpoint,
                      c->d.name, c->d.model, c->d.model_ref);
        free(c);
        return;
    }
    if (c->new_code) snapshot_rm_tree(c->d.code);
    if (c->req)
        cairn_reply_err(c->req, err);
    else
        cairn_log(sc->ctx, CAIRN_LOG_WARN,
                  "endpoint %s: deployment %s stays on %s: %s moved, but: %s",
                  c->d.endpoint, c->d.name, c->d.model_ref, c->d.model, err->msg);
    free(c);
}

/* A python deployment's workers answered (why NULL), or cannot. */
static void s_ready(void *arg, const char *why)
{
    creating_t *c = arg;
    s_pending_del(c->sc, c);
    cairn_err_t err = {0};
    if (why)
        cairn_err_set(&err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "code_configuration: the scoring script did not start: %s", why);
    s_finish(c, &err);
}

/* A model deployment's model, loaded now: one that does not load is
 * refused, never deployed. */
static void s_check_model(const dep_row_t *d, cairn_err_t *err)
{
    scorer_model_t *m = NULL;
    int rc = scorer_model_load(d->path, &m, err);
    if (rc == 0) { /* the health check: one row of missing values scores */
        size_t nf = scorer_model_features(m), no = scorer_model_outputs(m);
        float *row = malloc((nf ? nf : 1) * sizeof *row);
        float *out = malloc((no ? no : 1) * sizeof *out);
        for (size_t i = 0; row && i < nf; i++) row[i] = NAN;
        rc = row && out ? scorer_model_predict(m, row, 1, nf, out, err)
                        : cairn_err_oom(err, NULL);
        free(row);
        free(out);
    }
    if (rc != 0) {
        char why[CAIRN_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "model: %s cannot be served: %s", d->model_ref, why);
    }
    scorer_model_destroy(&m);
}

static void s_resolved(void *arg, int st, const char *code, const char *msg,
                       const msgpack_object *body)
{
    creating_t *c = arg;
    scorer_t *sc = c->sc;
    s_pending_del(sc, c);
    cairn_err_t err = {0};
    cairn_str_t ref, kind, path;
    if (st == CAIRN_ST_NOT_FOUND && code && !strcmp(code, CAIRN_E_NO_SERVICE))
        cairn_err_set(&err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "model: this Cairn has no registry to resolve %s", c->d.model);
    else if (st >= 400)
        cairn_err_set(&err, st < 500 ? st : CAIRN_ST_BAD_GATEWAY,
                      st < 500 ? code : CAIRN_E_BAD_REPLY, "model: %s", msg ? msg : "");
    else if (cairn_field_str(body, "ref", true, EP_REF_MAX, &ref, &err) != 0 ||
             cairn_field_str(body, "kind", true, 64, &kind, &err) != 0)
        err.st = CAIRN_ST_BAD_GATEWAY;
    else if (!cairn_str_eq(kind, "model_version"))
        cairn_err_set(&err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "model: %s is a %.*s, not a model version", c->d.model,
                      (int)kind.len, kind.ptr);
    else if (cairn_field_str(body, "path", true, PATH_MAX - 1, &path, &err) != 0)
        cairn_err_set(&err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "model: %s has no files on this machine", c->d.model);
    if (!err.st) {
        snprintf(c->d.model_ref, sizeof c->d.model_ref, "%.*s", (int)ref.len, ref.ptr);
        snprintf(c->d.path, sizeof c->d.path, "%.*s", (int)path.len, path.ptr);
        if (!c->d.script[0]) {
            s_check_model(&c->d, &err);
        } else if (dep_python_await(sc, &c->d, s_ready, c, &err) == 0) {
            s_pending_add(sc, c); /* until s_ready: freed at fini if never */
            return;
        }
    }
    s_finish(c, &err);
}

static void s_resolve(creating_t *c, cairn_err_t *err);
static int s_follow(const msgpack_object *b, dep_row_t *d, cairn_err_t *err);

int dep_create(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    const msgpack_object *b = cairn_body(req);
    ep_row_t e;
    creating_t *c = calloc(1, sizeof *c);
    if (!c) return cairn_err_oom(err, NULL);
    *c = (creating_t){.sc = sc, .req = req};
    dep_row_t *d = &c->d;
    cairn_str_t model;
    uint64_t instances = 1;
    pack_deps_t count = {0};
    int rc = s_find(sc, req, "endpoint", &e, err);
    if (rc == 0) rc = ep_name_field(b, "name", d->name, err);
    if (rc == 0) rc = cairn_field_str(b, "model", true, EP_REF_MAX, &model, err);
    if (rc == 0 && cairn_field_uint(b, "instance_count", false, &instances, err) < 0)
        rc = -1;
    if (rc == 0 && (instances < 1 || instances > 64))
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "instance_count must be 1 to 64");
    if (rc == 0 && (model.len < 7 || memcmp(model.ptr, "model:", 6)))
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "model must be a reference: model:NAME:VERSION or "
                           "model:NAME@ALIAS");
    dep_row_t old;
    if (rc == 0 && (rc = dep_store_get(sc->store, e.name, d->name, &old, err)) == 0)
        rc =
            cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                          "endpoint '%s' has a deployment named '%s'", e.name, d->name);
    else if (rc == 1)
        rc = dep_store_each(sc->store, e.name, s_count_dep, &count, err);
    if (rc == 0 && count.n >= EP_DEPLOYMENTS_MAX)
        rc = cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                           "endpoint '%s' has %d deployments, the most it may", e.name,
                           EP_DEPLOYMENTS_MAX);
    if (rc != 0) {
        free(c);
        return -1;
    }
    snprintf(d->endpoint, sizeof d->endpoint, "%s", e.name);
    snprintf(d->model, sizeof d->model, "%.*s", (int)model.len, model.ptr);
    d->instance_count = (int64_t)instances;
    d->created = (int64_t)cairn_wall_ms();
    if (s_follow(b, d, err) != 0 || dep_flavor_read(sc, b, d, err) != 0) {
        free(c);
        return -1;
    }
    c->new_code = d->code[0] != '\0';
    c->first = count.n == 0;
    cairn_name_object(req, "deployment", d->name, strlen(d->name));
    s_resolve(c, err);
    return 0;
}

/* Ask the registry for c's model (its answer goes on in s_resolved); the
 * request is deferred from here on. */
static void s_resolve(creating_t *c, cairn_err_t *err)
{
    scorer_t *sc = c->sc;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "ref", c->d.model);
    if (c->req) cairn_defer(c->req);
    s_pending_add(sc, c);
    int rc = cairn_call_ws(sc->ctx, c->req ? ep_ws(c->req) : c->ws, REGISTRY, "resolve",
                           sb.data, sb.size, TTL_MS, s_resolved, c, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        s_pending_del(sc, c);
        if (c->req) cairn_reply_err(c->req, err); /* deferred: answered here */
        free(c);
    }
}

/* follow_alias (a bool, absent: keep): only for a model given by alias. */
static int s_follow(const msgpack_object *b, dep_row_t *d, cairn_err_t *err)
{
    const msgpack_object *f = cairn_obj_get(b, "follow_alias");
    if (!f || f->type == MSGPACK_OBJECT_NIL) {
        if (!strchr(d->model, '@')) d->follow = false;
        return 0;
    }
    if (f->type != MSGPACK_OBJECT_BOOLEAN)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "follow_alias must be true or false");
    if (f->via.boolean && !strchr(d->model, '@'))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "follow_alias needs a model given by alias "
                             "(model:NAME@ALIAS), not %s",
                             d->model);
    d->follow = f->via.boolean;
    return 0;
}

typedef struct moved {
    scorer_t *sc;
    char ws[CAIRN_HDR_NAME_MAX + 1];
    char model[EP_REF_MAX + 1]; /* model:NAME@ALIAS */
    char ref[EP_REF_MAX + 1];   /* model:NAME:VERSION it moved to */
} moved_t;

static int s_roll_if_following(void *arg, const dep_row_t *d)
{
    moved_t *m = arg;
    if (!d->follow || strcmp(d->model, m->model) || !strcmp(d->model_ref, m->ref))
        return 0;
    ep_row_t e;
    cairn_err_t err = {0};
    if (ep_store_get(m->sc->store, m->ws, d->endpoint, &e, &err) != 0) return 0;
    creating_t *c = calloc(1, sizeof *c);
    if (!c) return 0;
    *c = (creating_t){.sc = m->sc, .update = true, .d = *d};
    snprintf(c->ws, sizeof c->ws, "%s", m->ws);
    s_resolve(c, &err);
    return 0;
}

void dep_alias_moved(void *arg, const char *topic, const msgpack_object *body)
{
    (void)topic;
    moved_t m = {.sc = arg};
    cairn_str_t ws, name, alias;
    uint64_t version;
    cairn_err_t err = {0};
    if (cairn_field_str(body, "ws", true, CAIRN_HDR_NAME_MAX, &ws, &err) != 0 ||
        cairn_field_str(body, "name", true, 256, &name, &err) != 0 ||
        cairn_field_str(body, "alias", true, 256, &alias, &err) != 0 ||
        cairn_field_uint(body, "version", true, &version, &err) != 0)
        return;
    snprintf(m.ws, sizeof m.ws, "%.*s", (int)ws.len, ws.ptr);
    snprintf(m.model, sizeof m.model, "model:%.*s@%.*s", (int)name.len, name.ptr,
             (int)alias.len, alias.ptr);
    snprintf(m.ref, sizeof m.ref, "model:%.*s:%llu", (int)name.len, name.ptr,
             (unsigned long long)version);
    dep_store_each(m.sc->store, NULL, s_roll_if_following, &m, &err);
}

static int s_find_dep(scorer_t *sc, cairn_req_t *req, ep_row_t *e, dep_row_t *d,
                      cairn_err_t *err);

int dep_find(scorer_t *sc, cairn_req_t *req, dep_row_t *d, cairn_err_t *err)
{
    ep_row_t e;
    return s_find_dep(sc, req, &e, d, err);
}

static int s_find_dep(scorer_t *sc, cairn_req_t *req, ep_row_t *e, dep_row_t *d,
                      cairn_err_t *err)
{
    char name[EP_NAME_MAX + 1];
    if (s_find(sc, req, "endpoint", e, err) != 0 ||
        ep_name_field(cairn_body(req), "name", name, err) != 0)
        return -1;
    int rc = dep_store_get(sc->store, e->name, name, d, err);
    if (rc == 1)
        return cairn_err_set(err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
                             "endpoint '%s' has no deployment named '%s'", e->name,
                             name);
    return rc;
}

int dep_get(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    dep_row_t d;
    if (s_find_dep(sc, req, &e, &d, err) != 0) return -1;
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "deployment");
    s_pack_deployment(sc, pk, &d);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

typedef struct dep_list {
    dep_row_t v[EP_DEPLOYMENTS_MAX];
    int n;
} dep_list_t;

static int s_collect_dep(void *arg, const dep_row_t *d)
{
    dep_list_t *l = arg;
    if (l->n < EP_DEPLOYMENTS_MAX) l->v[l->n++] = *d;
    return 0;
}

/* list_deployments {endpoint*} -> deployments [as get_deployment], by name. */
int dep_list(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    dep_list_t *l = calloc(1, sizeof *l); /* 16 rows of paths: not on the stack */
    if (!l) return cairn_err_oom(err, NULL);
    if (s_find(sc, req, "endpoint", &e, err) != 0 ||
        dep_store_each(sc->store, e.name, s_collect_dep, l, err) != 0) {
        free(l);
        return -1;
    }
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 1);
    cairn_pack_cstr(pk, "deployments");
    msgpack_pack_array(pk, (uint32_t)l->n);
    for (int i = 0; i < l->n; i++) s_pack_deployment(sc, pk, &l->v[i]);
    free(l);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

int dep_delete(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    dep_row_t d;
    if (s_find_dep(sc, req, &e, &d, err) != 0) return -1;
    cairn_name_object(req, "deployment", d.name, strlen(d.name));
    if (d.traffic > 0)
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "deployment '%s' takes %lld%% of the traffic: move it "
                             "elsewhere first (update_traffic)",
                             d.name, (long long)d.traffic);
    if (dep_store_delete(sc->store, e.name, d.name, err) < 0 ||
        routes_rebuild(sc, err) != 0)
        return -1;
    dep_flavor_remove(sc, e.name, d.name);
    msgpack_pack_map(ep_reply_begin(sc), 0);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

/* A map {deployment: percent} of e's deployments (field `key`), each 0 to
 * max; mirror: the rules of a mirror, else of live traffic (a deployment
 * takes one or the other, never both). */
typedef struct shares {
    char names[EP_DEPLOYMENTS_MAX][EP_NAME_MAX + 1];
    const char *np[EP_DEPLOYMENTS_MAX];
    int64_t pct[EP_DEPLOYMENTS_MAX], sum;
    int n;
} shares_t;

static int s_shares(scorer_t *sc, cairn_req_t *req, const ep_row_t *e, const char *key,
                    int64_t max, bool mirror, shares_t *sh, cairn_err_t *err)
{
    const msgpack_object *t = cairn_obj_get(cairn_body(req), key);
    if (!t || t->type != MSGPACK_OBJECT_MAP || t->via.map.size > EP_DEPLOYMENTS_MAX)
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "%s is required: a map {deployment: percent} of at most %d "
            "entries",
            key, EP_DEPLOYMENTS_MAX);
    *sh = (shares_t){.n = (int)t->via.map.size};
    for (int i = 0; i < sh->n; i++) {
        const msgpack_object *k = &t->via.map.ptr[i].key, *v = &t->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size > EP_NAME_MAX)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "%s: its keys must be deployment names", key);
        snprintf(sh->names[i], sizeof sh->names[i], "%.*s", (int)k->via.str.size,
                 k->via.str.ptr);
        sh->np[i] = sh->names[i];
        dep_row_t d;
        int rc = dep_store_get(sc->store, e->name, sh->names[i], &d, err);
        if (rc < 0) return -1;
        if (rc == 1)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "%s.%s: endpoint '%s' has no such deployment", key,
                                 sh->names[i], e->name);
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > (uint64_t)max)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "%s.%s must be a whole percent, 0 to %lld", key,
                                 sh->names[i], (long long)max);
        sh->pct[i] = (int64_t)v->via.u64;
        sh->sum += sh->pct[i];
        if (sh->pct[i] > 0 && (mirror ? d.traffic : d.mirror) > 0)
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "%s.%s: deployment '%s' takes %s traffic; a deployment "
                "takes live or mirrored traffic, not both",
                key, sh->names[i], sh->names[i], mirror ? "live" : "mirrored");
    }
    return 0;
}

int ep_update_traffic(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    shares_t sh;
    if (s_find(sc, req, "endpoint", &e, err) != 0) return -1;
    cairn_name_object(req, "endpoint", e.name, strlen(e.name));
    if (s_shares(sc, req, &e, "traffic", 100, false, &sh, err) != 0) return -1;
    if (sh.sum != 100 && sh.sum != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "traffic must sum to 100 (or be all 0); it sums to %lld",
                             (long long)sh.sum);
    if (dep_store_set_traffic(sc->store, e.name, sh.np, sh.pct, sh.n, err) != 0 ||
        routes_rebuild(sc, err) != 0)
        return -1;
    return s_reply_endpoint(sc, req, CAIRN_ST_OK, &e);
}

/* update_mirror {endpoint*, mirror* {deployment: percent}}: that share of
 * the live requests is also scored on each (at most 50% each, as Azure's),
 * the answers dropped, their latency and errors counted. */
int ep_update_mirror(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    shares_t sh;
    if (s_find(sc, req, "endpoint", &e, err) != 0) return -1;
    cairn_name_object(req, "endpoint", e.name, strlen(e.name));
    if (s_shares(sc, req, &e, "mirror", 50, true, &sh, err) != 0) return -1;
    if (dep_store_set_mirror(sc->store, e.name, sh.np, sh.pct, sh.n, err) != 0 ||
        routes_rebuild(sc, err) != 0)
        return -1;
    return s_reply_endpoint(sc, req, CAIRN_ST_OK, &e);
}

/* update_deployment {endpoint*, name*, model, instance_count}: the new
 * model is resolved and loaded before anything changes; then the
 * deployment's row and the routes are swapped at once, so requests in
 * flight finish on the old model and the next ones score on the new. */
int dep_update(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    const msgpack_object *b = cairn_body(req);
    ep_row_t e;
    creating_t *c = calloc(1, sizeof *c);
    if (!c) return cairn_err_oom(err, NULL);
    *c = (creating_t){.sc = sc, .req = req, .update = true};
    cairn_str_t model = {0};
    uint64_t instances = 0;
    int rc = s_find_dep(sc, req, &e, &c->d, err);
    if (rc == 0 && cairn_field_str(b, "model", false, EP_REF_MAX, &model, err) < 0)
        rc = -1;
    if (rc == 0 && cairn_field_uint(b, "instance_count", false, &instances, err) < 0)
        rc = -1;
    if (rc == 0 && cairn_obj_get(b, "instance_count") &&
        (instances < 1 || instances > 64))
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "instance_count must be 1 to 64");
    if (rc == 0 && model.len && (model.len < 7 || memcmp(model.ptr, "model:", 6)))
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "model must be a reference: model:NAME:VERSION or "
                           "model:NAME@ALIAS");
    if (rc != 0) {
        free(c);
        return -1;
    }
    if (model.len)
        snprintf(c->d.model, sizeof c->d.model, "%.*s", (int)model.len, model.ptr);
    if (instances) c->d.instance_count = (int64_t)instances;
    char was[sizeof c->d.code];
    snprintf(was, sizeof was, "%s", c->d.code);
    if (s_follow(b, &c->d, err) != 0 || dep_flavor_read(sc, b, &c->d, err) != 0) {
        free(c);
        return -1;
    }
    c->new_code = strcmp(was, c->d.code) != 0;
    cairn_name_object(req, "deployment", c->d.name, strlen(c->d.name));
    s_resolve(c, err);
    return 0;
}

/* The value at quantile q of a histogram (its bucket's top), in ms. */
static double s_quantile(const uint64_t *h, uint64_t n, double q)
{
    if (!n) return 0;
    uint64_t want = (uint64_t)(q * (double)n + 0.5), seen = 0;
    if (want < 1) want = 1;
    for (int b = 0; b < STATS_BUCKETS; b++)
        if ((seen += h[b]) >= want) return stats_bucket_top_ms(b);
    return stats_bucket_top_ms(STATS_BUCKETS - 1);
}

/* get_endpoint_metrics {endpoint*} -> deployments [{name, requests,
 * errors, latency_ms {p50, p90, p99}}]: since each deployment was made (or
 * the plugin started). */
/* re's deployments' counters: [{name, requests, mirrored, errors,
 * latency_ms {p50, p90, p99}}]. */
static void s_pack_stats(msgpack_packer *pk, const route_ep_t *re)
{
    msgpack_pack_array(pk, re ? (uint32_t)re->ndep : 0);
    for (int i = 0; re && i < re->ndep; i++) {
        const dep_stats_t *t = re->dep[i].stats;
        uint64_t h[STATS_BUCKETS], n = 0;
        for (int b = 0; b < STATS_BUCKETS; b++)
            n += h[b] = t ? atomic_load(&t->latency[b]) : 0;
        msgpack_pack_map(pk, 5);
        cairn_pack_kv_str(pk, "name", re->dep[i].name);
        cairn_pack_cstr(pk, "mirrored");
        msgpack_pack_uint64(pk, t ? atomic_load(&t->mirrored) : 0);
        cairn_pack_cstr(pk, "requests");
        msgpack_pack_uint64(pk, t ? atomic_load(&t->requests) : 0);
        cairn_pack_cstr(pk, "errors");
        msgpack_pack_uint64(pk, t ? atomic_load(&t->errors) : 0);
        cairn_pack_cstr(pk, "latency_ms");
        msgpack_pack_map(pk, 3);
        static const char *const qn[] = {"p50", "p90", "p99"};
        static const double qv[] = {0.5, 0.9, 0.99};
        for (int k = 0; k < 3; k++) {
            cairn_pack_cstr(pk, qn[k]);
            msgpack_pack_double(pk, s_quantile(h, n, qv[k]));
        }
    }
}

int ep_metrics(void *state, cairn_req_t *req, cairn_err_t *err)
{
    scorer_t *sc = state;
    ep_row_t e;
    if (s_find(sc, req, "endpoint", &e, err) != 0) return -1;
    routes_t *r = routes_take(sc);
    msgpack_packer *pk = ep_reply_begin(sc);
    msgpack_pack_map(pk, 2);
    cairn_pack_kv_str(pk, "endpoint", e.name);
    cairn_pack_cstr(pk, "deployments");
    s_pack_stats(pk, routes_find(r, e.name));
    routes_release(r);
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sc->sb);
    return 0;
}

/* Whether any of re's deployments answered since the last event (its
 * mark moved on to now). */
static bool s_moved(const route_ep_t *re)
{
    bool moved = false;
    for (int i = 0; i < re->ndep; i++) {
        dep_stats_t *t = re->dep[i].stats;
        uint64_t n = t ? atomic_load(&t->requests) : 0;
        if (t && n != t->published) {
            t->published = n;
            moved = true;
        }
    }
    return moved;
}

void ep_metrics_publish(void *arg)
{
    scorer_t *sc = arg;
    routes_t *r = routes_take(sc);
    for (int i = 0; r && i < r->nep; i++) {
        const route_ep_t *re = &r->ep[i];
        if (!s_moved(re)) continue;
        msgpack_packer *pk = ep_reply_begin(sc);
        msgpack_pack_map(pk, 3);
        cairn_pack_kv_str(pk, "ws", re->ws);
        cairn_pack_kv_str(pk, "endpoint", re->name);
        cairn_pack_cstr(pk, "deployments");
        s_pack_stats(pk, re);
        cairn_publish(sc->ctx, "endpoints.metrics", sc->sb.data, sc->sb.size);
    }
    routes_release(r);
}
