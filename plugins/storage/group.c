/* The write group (see storage.h): create_run and log_batch requests that
 * arrive together share one SQLite transaction, each inside a savepoint of
 * its own, and are answered after that transaction commits.
 *
 * Why: each commit appends every page it dirtied to the WAL. A run's rows
 * dirty pages at random places in the by-value indexes, so one transaction
 * per request wrote about 250 KB per run; a group of requests shares the
 * pages they have in common and the commit's overhead.
 *
 * Durability is unchanged: no request is answered 200 before the commit
 * that holds its writes (under durability=power that commit fsyncs). */
#include <stdlib.h>
#include <string.h>

#include "storage.h"

/* At most this many requests wait for one commit: it bounds their
 * latency and the replies held in memory. */
#define GROUP_MAX 512

typedef struct held {
    cairn_req_t *req;
    size_t off, len; /* its reply body in wgroup_t.bodies */
} held_t;

struct wgroup {
    bool open;      /* a transaction is open */
    uint64_t timer; /* the commit, once this thread has read its socket */
    held_t *held;
    size_t n, cap;
    msgpack_sbuffer bodies;
};

static void s_group_timer(void *arg)
{
    storage_t *s = arg;
    s->wg->timer = 0;
    storage_group_flush(s);
}

static int s_group_alloc(storage_t *s, cairn_err_t *err)
{
    if (s->wg) return 0;
    s->wg = calloc(1, sizeof *s->wg);
    if (!s->wg) return cairn_err_oom(err, NULL);
    msgpack_sbuffer_init(&s->wg->bodies);
    return 0;
}

int storage_group_begin(storage_t *s, cairn_err_t *err)
{
    if (s_group_alloc(s, err) != 0) return -1;
    wgroup_t *g = s->wg;
    if (g->open && g->n >= GROUP_MAX) storage_group_flush(s);
    if (!g->open) {
        if (db_begin(s->db, err) != 0) return -1;
        g->open = true;
        /* A timer due at once fires after this thread has served what its
         * socket holds (sdk/runtime.c): the requests that came together. */
        if (!g->timer) g->timer = cairn_timer_add(s->ctx, 0, 0, s_group_timer, s);
    }
    if (db_savepoint(s->db, err) != 0) {
        storage_group_flush(s);
        return -1;
    }
    return 0;
}

int storage_group_end(storage_t *s, int rc, cairn_err_t *err)
{
    if (rc == 0 && db_release(s->db, err) == 0) return 0;
    /* This request's writes are undone; those before it stay. If SQLite
     * rolled the whole transaction back (it does on some I/O errors), the
     * group's earlier requests are answered its failure. */
    if (db_rollback_to(s->db) != 0) {
        cairn_err_t gone;
        cairn_err_set(&gone, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                      "the transaction of a group of writes was rolled back: %s",
                      err->msg);
        storage_group_fail(s, &gone);
    }
    return -1;
}

int storage_group_reply(storage_t *s, cairn_req_t *req)
{
    wgroup_t *g = s->wg;
    if (!g || !g->open) return storage_reply_send(s, req, CAIRN_ST_OK);
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        held_t *h = realloc(g->held, cap * sizeof *h);
        if (!h) { /* answer after committing what came before it, now */
            storage_group_flush(s);
            return storage_reply_send(s, req, CAIRN_ST_OK);
        }
        g->held = h;
        g->cap = cap;
    }
    size_t off = g->bodies.size;
    if (msgpack_sbuffer_write(&g->bodies, s->sb.data, s->sb.size) != 0) {
        storage_group_flush(s);
        return storage_reply_send(s, req, CAIRN_ST_OK);
    }
    g->held[g->n++] = (held_t){req, off, s->sb.size};
    cairn_defer(req);
    return 0;
}

/* Answer every held request: 200 with its body, or err. */
static void s_answer(storage_t *s, const cairn_err_t *err)
{
    wgroup_t *g = s->wg;
    for (size_t i = 0; i < g->n; i++) {
        if (err)
            cairn_reply_err(g->held[i].req, err); /* deferred */
        else
            cairn_reply(g->held[i].req, CAIRN_ST_OK, g->bodies.data + g->held[i].off,
                        g->held[i].len);
    }
    g->n = 0;
    msgpack_sbuffer_clear(&g->bodies);
}

int storage_group_flush(storage_t *s)
{
    wgroup_t *g = s->wg;
    if (!g) return 0;
    if (g->timer) {
        cairn_timer_cancel(s->ctx, g->timer);
        g->timer = 0;
    }
    if (!g->open) return 0;
    g->open = false;
    cairn_err_t err = {0};
    int rc = db_commit(s->db, &err);
    s_answer(s, rc == 0 ? NULL : &err);
    return rc;
}

void storage_group_fail(storage_t *s, const cairn_err_t *err)
{
    wgroup_t *g = s->wg;
    if (!g) return;
    if (g->timer) {
        cairn_timer_cancel(s->ctx, g->timer);
        g->timer = 0;
    }
    if (g->open) db_rollback(s->db);
    g->open = false;
    s_answer(s, err);
}

void storage_group_close(storage_t *s)
{
    wgroup_t *g = s->wg;
    if (!g) return;
    storage_group_flush(s);
    free(g->held);
    msgpack_sbuffer_destroy(&g->bodies);
    free(g);
    s->wg = NULL;
}
