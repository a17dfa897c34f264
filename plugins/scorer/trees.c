/* The flattened trees (model_int.h): one tree of XGBoost's JSON laid out
 * breadth first, so that a split's two children lie side by side, and the
 * walk that predicts. Sums and transforms follow XGBoost 1.7's CPU
 * predictor in float32, so that predictions equal its own. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_int.h"

/* ---- flattening --------------------------------------------------------------- */

/* One tree's arrays, as XGBoost's JSON names them. */
typedef struct sm_src {
    size_t n, t;
    const json_t *left, *right, *feat, *cond, *dleft, *stype;
    const json_t *cats, *cat_nodes, *cat_segs, *cat_sizes;
} sm_src_t;

static int s_tree_bad(const sm_src_t *s, const char *what, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, NULL,
                         "the model's tree %zu is malformed: %s", s->t, what);
}

static int s_arrays(sm_src_t *s, const json_t *tree, cairn_err_t *err)
{
    if (!json_is_object(tree)) return s_tree_bad(s, "it is not an object", err);
    s->left = json_object_get(tree, "left_children");
    s->right = json_object_get(tree, "right_children");
    s->feat = json_object_get(tree, "split_indices");
    s->cond = json_object_get(tree, "split_conditions");
    s->dleft = json_object_get(tree, "default_left");
    s->stype = json_object_get(tree, "split_type"); /* absent before 1.6: numerical */
    s->n = json_array_size(s->left);
    if (s->n == 0 || json_array_size(s->right) != s->n ||
        json_array_size(s->feat) != s->n || json_array_size(s->cond) != s->n ||
        json_array_size(s->dleft) != s->n ||
        (s->stype && json_array_size(s->stype) != s->n))
        return s_tree_bad(s, "its node arrays are missing, empty or of unequal lengths",
                          err);
    s->cats = json_object_get(tree, "categories");
    s->cat_nodes = json_object_get(tree, "categories_nodes");
    s->cat_segs = json_object_get(tree, "categories_segments");
    s->cat_sizes = json_object_get(tree, "categories_sizes");
    return 0;
}

static bool s_int_at(const json_t *a, size_t i, long long *v)
{
    const json_t *j = json_array_get(a, i);
    if (json_is_integer(j)) {
        *v = json_integer_value(j);
        return true;
    }
    if (json_is_boolean(j)) { /* UBJSON's T/F, for default_left */
        *v = json_is_true(j);
        return true;
    }
    return false;
}

static int s_grow(scorer_model_t *m, size_t nodes, size_t words, cairn_err_t *err)
{
    if (m->n_nodes + nodes > m->cap_nodes) {
        size_t cap = m->cap_nodes ? m->cap_nodes : 1024;
        while (cap < m->n_nodes + nodes) cap *= 2;
        sm_node_t *p = realloc(m->nodes, cap * sizeof *p);
        if (!p) return cairn_err_oom(err, "flattening a model's trees");
        m->nodes = p;
        m->cap_nodes = cap;
    }
    if (m->n_cats + words > m->cap_cats) {
        size_t cap = m->cap_cats ? m->cap_cats : 256;
        while (cap < m->n_cats + words) cap *= 2;
        uint32_t *p = realloc(m->cats, cap * sizeof *p);
        if (!p) return cairn_err_oom(err, "flattening a model's categorical splits");
        m->cats = p;
        m->cap_cats = cap;
    }
    return 0;
}

/* A categorical split at source node i: its categories as a bitset. */
static int s_cat_split(scorer_model_t *m, const sm_src_t *s, size_t i, sm_node_t *nd,
                       cairn_err_t *err)
{
    size_t k = 0, nk = json_array_size(s->cat_nodes);
    long long id = -1, seg = 0, size = 0;
    while (k < nk && (!s_int_at(s->cat_nodes, k, &id) || id != (long long)i)) k++;
    if (k == nk || !s_int_at(s->cat_segs, k, &seg) ||
        !s_int_at(s->cat_sizes, k, &size) || seg < 0 || size < 0 ||
        (size_t)seg + (size_t)size > json_array_size(s->cats))
        return s_tree_bad(s, "a categorical split has no categories", err);
    long long max = -1, c = 0;
    for (long long j = seg; j < seg + size; j++) {
        if (!s_int_at(s->cats, (size_t)j, &c) || c < 0 || c >= SCORER_MAX_CATEGORY)
            return s_tree_bad(s, "a category is not an integer in [0, 2^24)", err);
        if (c > max) max = c;
    }
    size_t words = (size_t)(max + 32) / 32; /* 0 for none */
    if (s_grow(m, 0, words, err) != 0) return -1;
    uint32_t *bits = m->cats + m->n_cats;
    memset(bits, 0, words * sizeof *bits);
    for (long long j = seg; j < seg + size; j++) {
        s_int_at(s->cats, (size_t)j, &c);
        bits[c / 32] |= 1u << (c % 32);
    }
    nd->v.cat = (uint32_t)m->n_cats;
    nd->flags |= SM_CATEGORICAL | (uint32_t)words << SM_CAT_WORDS_SHIFT;
    m->n_cats += words;
    m->has_cats = true;
    return 0;
}

/* Source node i into nd (its children not yet placed). */
static int s_node(scorer_model_t *m, const sm_src_t *s, size_t i, float weight,
                  sm_node_t *nd, cairn_err_t *err)
{
    long long l, r, f, dl = 0, st = 0;
    const json_t *cj = json_array_get(s->cond, i);
    if (!s_int_at(s->left, i, &l) || !s_int_at(s->right, i, &r) ||
        !s_int_at(s->feat, i, &f) || !s_int_at(s->dleft, i, &dl) ||
        (s->stype && !s_int_at(s->stype, i, &st)))
        return s_tree_bad(s, "a node's field is not a number", err);
    /* NaN (null here) only as a categorical split's condition, never used */
    if (!json_is_number(cj) && !(json_is_null(cj) && l != -1 && st == 1))
        return s_tree_bad(s, "a split condition or leaf value is not a number", err);
    float v = (float)json_number_value(cj);
    memset(nd, 0, sizeof *nd);
    if (l == -1) {                       /* a leaf: its value is its split condition */
        nd->left = (uint32_t)m->n_nodes; /* its own index: placed next (s_layout) */
        nd->v.leaf = v * weight; /* as dart's predictor multiplies it, in float */
        return 0;
    }
    if (f < 0 || (size_t)f >= m->n_features)
        return s_tree_bad(s, "a split's feature is past num_feature", err);
    nd->feat = (int32_t)f;
    nd->flags = SM_SPLIT | (dl ? SM_DEFAULT_LEFT : 0);
    if (st == 1) return s_cat_split(m, s, i, nd, err);
    if (st != 0) return s_tree_bad(s, "a split_type is neither 0 nor 1", err);
    nd->v.thr = v;
    return 0;
}

/* Lay the reachable nodes out breadth first from the root: order[k] is
 * the source node at new place k. Each node is reached once (no cycles, no
 * sharing) and no deeper than SCORER_MAX_DEPTH. */
static int s_layout(scorer_model_t *m, const sm_src_t *s, float weight, uint32_t *order,
                    uint8_t *depth, uint8_t *seen, cairn_err_t *err)
{
    size_t base = m->n_nodes, head = 0, tail = 1;
    order[0] = 0;
    depth[0] = 0;
    seen[0] = 1;
    for (; head < tail; head++) {
        sm_node_t nd;
        if (s_node(m, s, order[head], weight, &nd, err) != 0) return -1;
        if (nd.flags & SM_SPLIT) {
            long long l = -1, r = -1;
            s_int_at(s->left, order[head], &l);
            s_int_at(s->right, order[head], &r);
            if (l < 0 || r < 0 || (size_t)l >= s->n || (size_t)r >= s->n || seen[l] ||
                seen[r] || l == r)
                return s_tree_bad(s, "a child is out of range or reached twice", err);
            if (depth[head] >= SCORER_MAX_DEPTH)
                return s_tree_bad(s, "it is deeper than the limit of 64", err);
            if (base + tail + 2 > SCORER_MAX_NODES)
                return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                                     "the model holds over %u nodes", SCORER_MAX_NODES);
            seen[l] = seen[r] = 1;
            nd.left = (uint32_t)(base + tail);
            order[tail] = (uint32_t)l;
            order[tail + 1] = (uint32_t)r;
            depth[tail] = depth[tail + 1] = (uint8_t)(depth[head] + 1);
            if (depth[tail] > m->depths[s->t]) m->depths[s->t] = depth[tail];
            tail += 2;
        }
        if (s_grow(m, 1, 0, err) != 0) return -1;
        m->nodes[m->n_nodes++] = nd;
    }
    return 0;
}

int scorer_tree_add(scorer_model_t *m, const json_t *tree, size_t t, uint32_t group,
                    float weight, cairn_err_t *err)
{
    sm_src_t s = {.t = t};
    if (s_arrays(&s, tree, err) != 0) return -1;
    if (m->n_nodes + s.n > SCORER_MAX_NODES)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "the model holds over %u nodes", SCORER_MAX_NODES);
    uint32_t *order = malloc(s.n * sizeof *order);
    uint8_t *depth = malloc(s.n);
    uint8_t *seen = calloc(s.n, 1);
    int rc =
        order && depth && seen ? 0 : cairn_err_oom(err, "flattening a model's trees");
    m->roots[t] = (uint32_t)m->n_nodes;
    m->groups[t] = group;
    if (rc == 0) rc = s_layout(m, &s, weight, order, depth, seen, err);
    free(order);
    free(depth);
    free(seen);
    return rc;
}

/* ---- the walk
 * ------------------------------------------------------------------------ */

/* XGBoost's categorical decision: a category in the split's set goes right;
 * anything else (unseen, negative, past 2^24) goes left. */
static inline uint32_t s_cat_right(const scorer_model_t *m, const sm_node_t *nd,
                                   float x)
{
    if (!(x >= 0.0f && x < (float)SCORER_MAX_CATEGORY)) return 0;
    uint32_t c = (uint32_t)x, words = nd->flags >> SM_CAT_WORDS_SHIFT;
    if (c / 32 >= words) return 0;
    return (m->cats[nd->v.cat + c / 32] >> (c % 32)) & 1u;
}

/* One step down from node i: its child, or i itself at a leaf. A
 * numerical split is branch-free: NaN fails x < thr, so it goes right
 * unless the split's default is left. */
static inline uint32_t s_step(const scorer_model_t *m, uint32_t i, const float *row,
                              bool cats)
{
    const sm_node_t *nd = &m->nodes[i];
    float x = row[nd->feat];
    uint32_t right;
    if (!cats || !(nd->flags & SM_CATEGORICAL)) {
        uint32_t lt = x < nd->v.thr, nan = x != x;
        right = (lt ^ 1u) & ~(nan & nd->flags);
    } else {
        right = isnan(x) ? !(nd->flags & SM_DEFAULT_LEFT) : s_cat_right(m, nd, x);
    }
    return nd->left + (right & (nd->flags >> 2)); /* a leaf: + 0, to itself */
}

/* Trees walked at once: independent chains of loads, so that one tree's
 * wait on memory overlaps the others' (16 measured best of 1, 4, 8, 16:
 * 3.2, 1.7, 1.5, 1.4 us for 100 trees of depth 6). */
#define SM_LANES 16

/* Trees t .. t + nl - 1 walked in lockstep to the deepest one's depth,
 * their leaves added to their groups in tree order. */
static inline void s_walk(const scorer_model_t *m, const float *row, size_t t, int nl,
                          bool cats, float *acc)
{
    uint32_t at[SM_LANES];
    unsigned depth = 0;
    for (int k = 0; k < nl; k++) {
        at[k] = m->roots[t + k];
        if (m->depths[t + k] > depth) depth = m->depths[t + k];
    }
    for (unsigned d = 0; d < depth; d++)
        for (int k = 0; k < nl; k++) at[k] = s_step(m, at[k], row, cats);
    for (int k = 0; k < nl; k++) acc[m->groups[t + k]] += m->nodes[at[k]].v.leaf;
}

/* One row's margins, in XGBoost's order: the base margin, then each tree's
 * leaf added to its group in float32, tree by tree. A model without
 * categorical splits (cats false) walks without asking. */
static inline void s_rows_margins(const scorer_model_t *m, const float *row, bool cats,
                                  float *acc)
{
    for (size_t g = 0; g < m->n_groups; g++) acc[g] = m->base_margin;
    size_t t = 0;
    for (; t + SM_LANES <= m->n_trees; t += SM_LANES)
        s_walk(m, row, t, SM_LANES, cats, acc);
    if (t < m->n_trees) s_walk(m, row, t, (int)(m->n_trees - t), cats, acc);
}

static void s_margins(const scorer_model_t *m, const float *row, float *acc)
{
    if (m->n_cats)
        s_rows_margins(m, row, true, acc);
    else
        s_rows_margins(m, row, false, acc);
}

/* XGBoost's Softmax (common/math.h): the max, expf of each less it, their
 * sum in double, each divided by the sum as a float. */
static void s_softmax(float *v, size_t n)
{
    float wmax = v[0];
    for (size_t i = 1; i < n; i++) wmax = fmaxf(v[i], wmax);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        v[i] = expf(v[i] - wmax);
        sum += v[i];
    }
    for (size_t i = 0; i < n; i++) v[i] /= (float)sum;
}

static float s_argmax(const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (float)best;
}

static int s_check(const scorer_model_t *m, const float *rows, size_t nrows,
                   size_t ncols, const float *out, cairn_err_t *err)
{
    if (ncols != m->n_features)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, NULL,
                             "a row has %zu features where the model takes %zu", ncols,
                             m->n_features);
    if (nrows && (!rows || !out))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, NULL,
                             "no rows or no output given");
    return 0;
}

int scorer_model_margin(const scorer_model_t *m, const float *rows, size_t nrows,
                        size_t ncols, float *out, cairn_err_t *err)
{
    if (s_check(m, rows, nrows, ncols, out, err) != 0) return -1;
    for (size_t r = 0; r < nrows; r++)
        s_margins(m, rows + r * ncols, out + r * m->n_groups);
    return 0;
}

int scorer_model_predict(const scorer_model_t *m, const float *rows, size_t nrows,
                         size_t ncols, float *out, cairn_err_t *err)
{
    if (s_check(m, rows, nrows, ncols, out, err) != 0) return -1;
    float acc[SCORER_MAX_CLASSES];
    for (size_t r = 0; r < nrows; r++) {
        const float *row = rows + r * ncols;
        float *o = out + r * m->n_outputs;
        s_margins(m, row, acc);
        switch (m->tf) {
            case SM_TF_IDENTITY:
                o[0] = acc[0];
                break;
            case SM_TF_SIGMOID:
                o[0] = 1.0f / (1.0f + expf(-acc[0]));
                break;
            case SM_TF_EXP:
                o[0] = expf(acc[0]);
                break;
            case SM_TF_SOFTPROB:
                s_softmax(acc, m->n_groups);
                memcpy(o, acc, m->n_groups * sizeof *o);
                break;
            case SM_TF_SOFTMAX:
                o[0] = s_argmax(acc, m->n_groups);
                break;
        }
    }
    return 0;
}
