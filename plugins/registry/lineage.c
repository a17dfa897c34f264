/* Lineage: which run produced which model version from which inputs. Edges
 * (src -> dst, kind) are kept per workspace, recorded as things happen: a
 * version registered with a run_id (run -> version, "produced"), a run
 * declaring an input (log_input: input -> run, "input"). `lineage` walks
 * them up (towards inputs), down (towards products) or both, as one
 * recursive query bounded by depth and by LINEAGE_MAX_NODES.
 *
 * Node ids, as clients name them: run:RUN_ID, model:NAME:VERSION (or
 * model:NAME@ALIAS, resolved), data:NAME:VERSION, env:NAME:VERSION,
 * endpoint:NAME. A model version is stored by its model's id
 * (model#ID:VERSION), so that a rename carries its edges; replies name it
 * as it is named now. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

#define NODE_MAX 512
#define LINEAGE_MAX_DEPTH 50
#define LINEAGE_MAX_NODES 10000

int reg_edge_add(registry_t *r, cairn_req_t *req, const char *src, const char *dst,
                 const char *kind, cairn_err_t *err)
{
    sqlite3_stmt *st = r->q[Q_EDGE_PUT];
    sqlite3_bind_text(st, 1, reg_ws(req), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, src, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, dst, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (int64_t)cairn_wall_ms());
    return reg_step_done(r, st, "record a lineage edge", err);
}

void reg_version_node(int64_t model_id, int64_t version, char *out, size_t cap)
{
    snprintf(out, cap, "model#%lld:%lld", (long long)model_id, (long long)version);
}

static int s_bad_node(cairn_err_t *err);

/* A client's node id as stored: model:NAME:VERSION and model:NAME@ALIAS
 * become model#ID:VERSION; the other kinds are checked and kept. */
static int s_node_key(registry_t *r, cairn_req_t *req, cairn_str_t node, char *out,
                      size_t cap, cairn_err_t *err)
{
    static const char *const kinds[] = {"run:", "endpoint:", "deployment:"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t k = strlen(kinds[i]);
        if (node.len > k && !memcmp(node.ptr, kinds[i], k)) {
            if (memchr(node.ptr, '\0', node.len) || node.len >= cap) break;
            snprintf(out, cap, "%.*s", (int)node.len, node.ptr);
            return 0;
        }
    }
    bool data = node.len > 5 && !memcmp(node.ptr, "data:", 5);
    if (data || (node.len > 4 && !memcmp(node.ptr, "env:", 4))) {
        /* the version it names now: latest resolved, each one checked */
        reg_ref_t ref;
        char owner[REG_OWNER_MAX], name[REG_REF_NAME_MAX], hash[REG_HASH_MAX];
        if (reg_ref_parse(node, &ref, err) != 0) return s_bad_node(err);
        int rc = data ? reg_data_target(r, req, &ref, owner, name, hash, err)
                      : reg_env_target(r, req, &ref, name, err);
        if (rc != 0) return -1;
        snprintf(out, cap, "%s", name);
        return 0;
    }
    if (node.len > 6 && !memcmp(node.ptr, "model:", 6)) {
        reg_ref_t ref;
        int64_t id, version;
        if (reg_ref_parse(node, &ref, err) != 0 ||
            reg_ref_model(r, req, &ref, &id, &version, err) != 0)
            return err->st == CAIRN_ST_NOT_FOUND ? -1 : s_bad_node(err);
        reg_version_node(id, version, out, cap);
        return 0;
    }
    return s_bad_node(err);
}

static int s_bad_node(cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "a node is run:RUN_ID, model:NAME:VERSION, model:NAME@ALIAS, "
                         "data:NAME:VERSION, env:NAME:VERSION, endpoint:NAME or "
                         "deployment:ENDPOINT/NAME (at most "
                         "%d bytes)",
                         NODE_MAX - 1);
}

/* A stored node as clients name it (model#ID:V -> model:NAME:V, or as
 * stored when the model is gone) into buf; returns its type. */
static const char *s_node_name(registry_t *r, const char *key, char *buf, size_t cap)
{
    long long id, version;
    if (sscanf(key, "model#%lld:%lld", &id, &version) == 2) {
        sqlite3_stmt *st = r->q[Q_MODEL_NAME_BY_ID];
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(buf, cap, "model:%s:%lld",
                     (const char *)sqlite3_column_text(st, 0), version);
        else
            snprintf(buf, cap, "%s", key);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return "model_version";
    }
    snprintf(buf, cap, "%s", key);
    return !strncmp(key, "run:", 4)           ? "run"
           : !strncmp(key, "data:", 5)        ? "data_asset"
           : !strncmp(key, "env:", 4)         ? "environment"
           : !strncmp(key, "deployment:", 11) ? "deployment"
                                              : "endpoint";
}

static void s_pack_node_id(registry_t *r, msgpack_packer *pk, const char *key)
{
    char buf[REG_NAME_MAX + NODE_MAX];
    s_node_name(r, key, buf, sizeof buf);
    cairn_pack_cstr(pk, buf);
}

/* log_input {run_id*, input* (a node: data:..., model:..., env:...)}. */
int reg_log_input(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t run_id, input;
    char src[NODE_MAX], dst[NODE_MAX];
    if (cairn_field_str(b, "run_id", true, 64, &run_id, err) != 0 ||
        cairn_field_str(b, "input", true, NODE_MAX - 1, &input, err) != 0)
        return -1;
    if (!run_id.len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field 'run_id' must not be empty");
    if (s_node_key(r, req, input, src, sizeof src, err) != 0) return -1;
    if (!strncmp(src, "run:", 4) || !strncmp(src, "endpoint:", 9) ||
        !strncmp(src, "deployment:", 11))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a run's input is a data asset, a model version or an "
                             "environment");
    snprintf(dst, sizeof dst, "run:%.*s", (int)run_id.len, run_id.ptr);
    cairn_name_object(req, "run", run_id.ptr, run_id.len);
    if (reg_edge_add(r, req, src, dst, "input", err) != 0) return -1;
    return reg_reply_empty(r, req);
}

/* log_deployment {endpoint*, name*, model*}: the endpoints service
 * deployed a model version (edges model -> deployment:ENDPOINT/NAME,
 * "deployed", and deployment -> endpoint:ENDPOINT, "serves"). Its
 * permission is endpoints.write: whoever may deploy may say so. */
int reg_log_deployment(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t endpoint, name, model;
    char src[NODE_MAX], dep[NODE_MAX], ep[NODE_MAX];
    if (cairn_field_str(b, "endpoint", true, 64, &endpoint, err) != 0 ||
        cairn_field_str(b, "name", true, 64, &name, err) != 0 ||
        cairn_field_str(b, "model", true, NODE_MAX - 1, &model, err) != 0)
        return -1;
    if (!endpoint.len || !name.len || memchr(endpoint.ptr, '/', endpoint.len) ||
        memchr(endpoint.ptr, '\0', endpoint.len) || memchr(name.ptr, '\0', name.len))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "endpoint and name must be non-empty names");
    if (model.len < 7 || memcmp(model.ptr, "model:", 6))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "model must be model:NAME:VERSION or model:NAME@ALIAS");
    if (s_node_key(r, req, model, src, sizeof src, err) != 0) return -1;
    snprintf(dep, sizeof dep, "deployment:%.*s/%.*s", (int)endpoint.len, endpoint.ptr,
             (int)name.len, name.ptr);
    snprintf(ep, sizeof ep, "endpoint:%.*s", (int)endpoint.len, endpoint.ptr);
    cairn_name_object(req, "deployment", dep + 11, strlen(dep + 11));
    if (reg_edge_add(r, req, src, dep, "deployed", err) != 0 ||
        reg_edge_add(r, req, dep, ep, "serves", err) != 0)
        return -1;
    return reg_reply_empty(r, req);
}

/* The walk's SQL: edges reached from the start within depth, following
 * src -> dst (down) or dst -> src (up). */
static const char *const s_walk_sql[2] = {
    /* down */
    "WITH RECURSIVE walk(src, dst, kind, d) AS ("
    " SELECT src, dst, kind, 1 FROM edges WHERE ws = ?1 AND src = ?2"
    " UNION SELECT e.src, e.dst, e.kind, w.d + 1 FROM edges e JOIN walk w ON e.src = "
    "w.dst WHERE e.ws = ?1 AND w.d < ?3)"
    " SELECT DISTINCT src, dst, kind FROM walk LIMIT ?4",
    /* up */
    "WITH RECURSIVE walk(src, dst, kind, d) AS ("
    " SELECT src, dst, kind, 1 FROM edges WHERE ws = ?1 AND dst = ?2"
    " UNION SELECT e.src, e.dst, e.kind, w.d + 1 FROM edges e JOIN walk w ON e.dst = "
    "w.src WHERE e.ws = ?1 AND w.d < ?3)"
    " SELECT DISTINCT src, dst, kind FROM walk LIMIT ?4",
};

/* The nodes met, in the order met, with a hash index over them (open
 * addressing, slots hold index + 1): a walk meets each node once per edge,
 * and LINEAGE_MAX_NODES edges must not cost their square. */
typedef struct node_set {
    char **v;
    size_t n, cap;
    uint32_t *slot;
    size_t nslots; /* a power of two, at least twice n */
} node_set_t;

static uint64_t s_hash(const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static void s_slot_put(node_set_t *s, size_t i)
{
    size_t mask = s->nslots - 1, j = (size_t)s_hash(s->v[i]) & mask;
    while (s->slot[j]) j = (j + 1) & mask;
    s->slot[j] = (uint32_t)i + 1;
}

static int s_grow(node_set_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    char **v = realloc(s->v, cap * sizeof *v);
    if (!v) return -1;
    s->v = v;
    s->cap = cap;
    uint32_t *slot = calloc(cap * 2, sizeof *slot);
    if (!slot) return -1;
    free(s->slot);
    s->slot = slot;
    s->nslots = cap * 2;
    for (size_t i = 0; i < s->n; i++) s_slot_put(s, i);
    return 0;
}

static int s_node_add(node_set_t *s, const char *key)
{
    if (s->nslots) {
        size_t mask = s->nslots - 1;
        for (size_t j = (size_t)s_hash(key) & mask; s->slot[j]; j = (j + 1) & mask)
            if (!strcmp(s->v[s->slot[j] - 1], key)) return 0;
    }
    if (s->n == s->cap && s_grow(s) != 0) return -1;
    if (!(s->v[s->n] = strdup(key))) return -1;
    s_slot_put(s, s->n++);
    return 0;
}

static void s_nodes_free(node_set_t *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    free(s->slot);
}

/* Walk one direction, packing each edge into ep and its nodes into nodes. */
static int s_walk(registry_t *r, cairn_req_t *req, int up, const char *start,
                  int64_t depth, msgpack_packer *ep, uint32_t *nedges,
                  node_set_t *nodes, cairn_err_t *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(r->db, s_walk_sql[up], -1, &st, NULL) != SQLITE_OK)
        return reg_db_fail(r, "walk the lineage", err);
    sqlite3_bind_text(st, 1, reg_ws(req), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, start, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, depth);
    sqlite3_bind_int64(st, 4, LINEAGE_MAX_NODES);
    int rc, step;
    for (rc = 0; rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW;) {
        const char *src = (const char *)sqlite3_column_text(st, 0);
        const char *dst = (const char *)sqlite3_column_text(st, 1);
        if (s_node_add(nodes, src) != 0 || s_node_add(nodes, dst) != 0) {
            rc = cairn_err_oom(err, NULL);
            break;
        }
        msgpack_pack_map(ep, 3);
        cairn_pack_cstr(ep, "from");
        s_pack_node_id(r, ep, src);
        cairn_pack_cstr(ep, "to");
        s_pack_node_id(r, ep, dst);
        cairn_pack_kv_text(ep, "kind", (const char *)sqlite3_column_text(st, 2));
        (*nedges)++;
    }
    if (rc == 0 && step != SQLITE_DONE) rc = reg_db_fail(r, "walk the lineage", err);
    sqlite3_finalize(st);
    return rc;
}

/* lineage {node*, direction (up, down or both: default), depth (1..50,
 * default 10)} -> nodes [{id, type}], edges [{from, to, kind}]. */
int reg_lineage(void *state, cairn_req_t *req, cairn_err_t *err)
{
    registry_t *r = state;
    const msgpack_object *b = cairn_body(req);
    cairn_str_t node, dir = {"both", 4};
    uint64_t depth = 10;
    char start[NODE_MAX];
    if (cairn_field_str(b, "node", true, NODE_MAX - 1, &node, err) != 0 ||
        cairn_field_str(b, "direction", false, 8, &dir, err) < 0 ||
        cairn_field_uint(b, "depth", false, &depth, err) < 0)
        return -1;
    bool up = cairn_str_eq(dir, "up"), down = cairn_str_eq(dir, "down");
    if (!up && !down && !cairn_str_eq(dir, "both"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "direction is up, down or both");
    if (depth < 1 || depth > LINEAGE_MAX_DEPTH)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "depth is from 1 to %d", LINEAGE_MAX_DEPTH);
    if (s_node_key(r, req, node, start, sizeof start, err) != 0) return -1;
    msgpack_sbuffer edges;
    msgpack_sbuffer_init(&edges);
    msgpack_packer ep;
    msgpack_packer_init(&ep, &edges, msgpack_sbuffer_write);
    node_set_t nodes = {0};
    uint32_t nedges = 0;
    int rc = s_node_add(&nodes, start) == 0 ? 0 : cairn_err_oom(err, NULL);
    if (rc == 0 && !down)
        rc = s_walk(r, req, 1, start, (int64_t)depth, &ep, &nedges, &nodes, err);
    if (rc == 0 && !up)
        rc = s_walk(r, req, 0, start, (int64_t)depth, &ep, &nedges, &nodes, err);
    if (rc == 0) {
        msgpack_packer *pk = reg_reply_begin(r);
        msgpack_pack_map(pk, 2);
        cairn_pack_cstr(pk, "nodes");
        msgpack_pack_array(pk, (uint32_t)nodes.n);
        for (size_t i = 0; i < nodes.n; i++) {
            char buf[REG_NAME_MAX + NODE_MAX];
            const char *type = s_node_name(r, nodes.v[i], buf, sizeof buf);
            msgpack_pack_map(pk, 2);
            cairn_pack_kv_text(pk, "id", buf);
            cairn_pack_kv_str(pk, "type", type);
        }
        cairn_pack_cstr(pk, "edges");
        msgpack_pack_array(pk, nedges);
        msgpack_sbuffer_write(&r->sb, edges.data, edges.size);
    }
    s_nodes_free(&nodes);
    msgpack_sbuffer_destroy(&edges);
    return rc == 0 ? reg_reply(r, req, CAIRN_ST_OK) : -1;
}
