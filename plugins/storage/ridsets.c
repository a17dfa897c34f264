#include "ridsets.h"

#include <stdlib.h>
#include <string.h>

/* nsets bitmaps of words 64-bit words each, in one buffer kept between
 * searches. */
struct ridsets {
    uint64_t *bits;
    size_t cap, nsets, words;
};

ridsets_t *ridsets_new(void)
{
    return calloc(1, sizeof(ridsets_t));
}

void ridsets_free(ridsets_t **self_p)
{
    if (!self_p || !*self_p) return;
    free((*self_p)->bits);
    free(*self_p);
    *self_p = NULL;
}

int ridsets_reset(ridsets_t *self, size_t nsets, int64_t max_rid, cairn_err_t *err)
{
    size_t words = max_rid >= 0 ? (size_t)(max_rid >> 6) + 1 : 0;
    if (nsets && words > SIZE_MAX / sizeof(uint64_t) / nsets)
        return cairn_err_oom(err, "for rid sets");
    size_t need = nsets * words;
    if (need > self->cap) {
        uint64_t *b = realloc(self->bits, need * sizeof *b);
        if (!b) return cairn_err_oom(err, "for rid sets");
        self->bits = b;
        self->cap = need;
    }
    if (need) memset(self->bits, 0, need * sizeof *self->bits);
    self->nsets = nsets;
    self->words = words;
    return 0;
}

uint64_t ridsets_and(ridsets_t *self, size_t dst, const size_t *srcs, size_t n)
{
    if (dst >= self->nsets) return 0;
    uint64_t *out = self->bits + dst * self->words, count = 0;
    for (size_t w = 0; w < self->words; w++) {
        uint64_t v = n ? UINT64_MAX : 0;
        for (size_t i = 0; i < n; i++)
            v &= srcs[i] < self->nsets ? self->bits[srcs[i] * self->words + w] : 0;
        out[w] = v;
        count += (uint64_t)__builtin_popcountll(v);
    }
    return count;
}

/* Reading one candidate by rid (and sorting it in) costs about this many
 * times one step of the walk: 2.4 µs against 0.29 at 1M runs
 * (docs/PERFORMANCE.md). */
#define LIST_COST 8.0

bool ridsets_list_wins(uint64_t ncand, uint64_t nrids, double want)
{
    double walk = ncand ? want * (double)nrids / (double)ncand : 0;
    return (double)ncand * LIST_COST <= walk;
}

/* Set k's words, or NULL when there is no such set. */
static const uint64_t *s_set(const ridsets_t *rs, int64_t k)
{
    return k >= 0 && (uint64_t)k < rs->nsets ? rs->bits + (size_t)k * rs->words : NULL;
}

/* ---- the two functions ---------------------------------------------------- */

static void s_rid_in(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const ridsets_t *rs = sqlite3_user_data(cx);
    const uint64_t *set = s_set(rs, sqlite3_value_int64(argv[0]));
    int64_t rid = sqlite3_value_int64(argv[1]);
    uint64_t w = (uint64_t)rid >> 6;
    sqlite3_result_int(cx,
                       set && rid >= 0 && w < rs->words && (set[w] >> (rid & 63) & 1));
}

/* An aggregate, so the bits are set inside the scan (returning each row to
 * C cost twice as much). */
static void s_rid_fill_step(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    (void)argc;
    ridsets_t *rs = sqlite3_user_data(cx);
    uint64_t *set = (uint64_t *)s_set(rs, sqlite3_value_int64(argv[0]));
    int64_t rid = sqlite3_value_int64(argv[1]);
    uint64_t w = (uint64_t)rid >> 6;
    if (set && rid >= 0 && w < rs->words) set[w] |= (uint64_t)1 << (rid & 63);
}

static void s_rid_fill_final(sqlite3_context *cx)
{
    sqlite3_result_null(cx);
}

/* ---- cairn_rids(K): an eponymous virtual table -------------------------- */

enum { COL_RID, COL_K };

typedef struct rids_vtab {
    sqlite3_vtab base;
    const ridsets_t *rs;
} rids_vtab_t;

typedef struct rids_cursor {
    sqlite3_vtab_cursor base;
    const uint64_t *set; /* NULL: empty */
    int64_t k, rid;      /* rid: the current one; past the end at eof */
} rids_cursor_t;

static int s_connect(sqlite3 *h, void *aux, int argc, const char *const *argv,
                     sqlite3_vtab **out, char **errmsg)
{
    (void)argc, (void)argv, (void)errmsg;
    int rc = sqlite3_declare_vtab(h, "CREATE TABLE x(rid INTEGER, k HIDDEN)");
    if (rc != SQLITE_OK) return rc;
    sqlite3_vtab_config(h, SQLITE_VTAB_DIRECTONLY);
    rids_vtab_t *v = sqlite3_malloc(sizeof *v);
    if (!v) return SQLITE_NOMEM;
    memset(v, 0, sizeof *v);
    v->rs = aux;
    *out = &v->base;
    return SQLITE_OK;
}

static int s_disconnect(sqlite3_vtab *v)
{
    sqlite3_free(v);
    return SQLITE_OK;
}

/* Only usable with K given (k = ?); rids come in ascending order. */
static int s_best_index(sqlite3_vtab *v, sqlite3_index_info *info)
{
    (void)v;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *c = &info->aConstraint[i];
        if (c->iColumn != COL_K || c->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
        if (!c->usable) return SQLITE_CONSTRAINT;
        info->aConstraintUsage[i].argvIndex = 1;
        info->aConstraintUsage[i].omit = 1;
        info->idxNum = 1;
        info->estimatedCost = 1000;
        info->estimatedRows = 1000;
        if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == COL_RID &&
            !info->aOrderBy[0].desc)
            info->orderByConsumed = 1;
        return SQLITE_OK;
    }
    return SQLITE_CONSTRAINT; /* a scan of no set means nothing */
}

static int s_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
    (void)v;
    rids_cursor_t *c = sqlite3_malloc(sizeof *c);
    if (!c) return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    *out = &c->base;
    return SQLITE_OK;
}

static int s_close(sqlite3_vtab_cursor *c)
{
    sqlite3_free(c);
    return SQLITE_OK;
}

static const ridsets_t *s_cursor_sets(const rids_cursor_t *c)
{
    return ((const rids_vtab_t *)c->base.pVtab)->rs;
}

/* Move to the first rid after the current one in the set. */
static int s_next(sqlite3_vtab_cursor *cur)
{
    rids_cursor_t *c = (rids_cursor_t *)cur;
    const ridsets_t *rs = s_cursor_sets(c);
    int64_t end = (int64_t)(rs->words * 64);
    int64_t r = c->rid + 1;
    while (c->set && r < end) {
        uint64_t word = c->set[(uint64_t)r >> 6] >> (r & 63);
        if (word) {
            c->rid = r + __builtin_ctzll(word);
            return SQLITE_OK;
        }
        r = (r | 63) + 1;
    }
    c->rid = end;
    return SQLITE_OK;
}

static int s_filter(sqlite3_vtab_cursor *cur, int idx_num, const char *idx_str,
                    int argc, sqlite3_value **argv)
{
    (void)idx_str;
    rids_cursor_t *c = (rids_cursor_t *)cur;
    c->k = idx_num == 1 && argc == 1 ? sqlite3_value_int64(argv[0]) : -1;
    c->set = s_set(s_cursor_sets(c), c->k);
    c->rid = -1;
    return s_next(cur);
}

static int s_eof(sqlite3_vtab_cursor *cur)
{
    const rids_cursor_t *c = (const rids_cursor_t *)cur;
    return c->rid >= (int64_t)(s_cursor_sets(c)->words * 64);
}

static int s_column(sqlite3_vtab_cursor *cur, sqlite3_context *cx, int col)
{
    const rids_cursor_t *c = (const rids_cursor_t *)cur;
    sqlite3_result_int64(cx, col == COL_K ? c->k : c->rid);
    return SQLITE_OK;
}

static int s_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
    *rowid = ((const rids_cursor_t *)cur)->rid;
    return SQLITE_OK;
}

static const sqlite3_module s_rids_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous only: cairn_rids exists on every connection */
    .xConnect = s_connect,
    .xBestIndex = s_best_index,
    .xDisconnect = s_disconnect,
    .xDestroy = s_disconnect,
    .xOpen = s_open,
    .xClose = s_close,
    .xFilter = s_filter,
    .xNext = s_next,
    .xEof = s_eof,
    .xColumn = s_column,
    .xRowid = s_rowid,
};

int ridsets_register(ridsets_t *self, sqlite3 *h, cairn_err_t *err)
{
    const char *what = NULL;
    if (sqlite3_create_function(h, "cairn_rid_in", 2, SQLITE_UTF8 | SQLITE_DIRECTONLY,
                                self, s_rid_in, NULL, NULL) != SQLITE_OK)
        what = "cairn_rid_in";
    else if (sqlite3_create_function(h, "cairn_rid_fill", 2,
                                     SQLITE_UTF8 | SQLITE_DIRECTONLY, self, NULL,
                                     s_rid_fill_step, s_rid_fill_final) != SQLITE_OK)
        what = "cairn_rid_fill";
    else if (sqlite3_create_module_v2(h, "cairn_rids", &s_rids_module, self, NULL) !=
             SQLITE_OK)
        what = "cairn_rids";
    if (!what) return 0;
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL, "register %s: %s",
                         what, sqlite3_errmsg(h));
}
