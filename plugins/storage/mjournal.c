/* The metric journal (role `tracking`): log_metric and small log_batch
 * requests are appended to a file (journal.h) and answered at once (under
 * durability=power, after one fdatasync shared by the requests that arrived
 * together); their points wait in memory and reach SQLite in one transaction
 * (logging.c's batch writer) before any other verb runs, from the tick,
 * when MJ_PENDING_MAX points wait, and at fini. Requests handed from the
 * kernel's thread (INLINE) that cannot be journaled at once queue here and
 * are served, in order, on this instance's own thread. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "logging.h"
#include "storage.h"

/* ---- the metric journal ------------------------------------------------------ */

/* A pending point's run and key (its bytes in mjournal_t.keys). */
typedef struct pend_ref {
    int64_t rid;
    uint32_t key_off, key_len;
} pend_ref_t;

typedef struct queued {
    cairn_req_t *req;
    bool batch; /* log_batch; else log_metric */
} queued_t;

typedef struct mjournal {
    journal_t *j;
    metric_point_t *pts; /* pending points, in logging order */
    pend_ref_t *refs;    /* their runs and keys */
    size_t n, cap;
    char *keys; /* key bytes of pending points */
    size_t keys_len, keys_cap;
    uint64_t last_seq; /* the newest pending record's */
    bool failing;      /* the tick's apply failed (logged once) */
    /* log_metric and log_batch requests handed from the kernel's thread
     * (CAIRN_VERB_INLINE) to this instance's own, in arrival order: those
     * that must apply or write SQLite, and every one behind them. */
    queued_t *queue;
    size_t qhead, qlen, qcap;
    uint64_t timer; /* the timer that drains the queue; 0 = none */
    /* durability=power: requests whose records are written but not yet
     * fdatasync'ed, answered together after one fdatasync (group commit)
     * by s_mj_sync: from a timer that fires once this thread has read what
     * its socket holds, and before any apply. */
    cairn_req_t **waiting;
    size_t nwaiting, waitcap;
    size_t mark_n, mark_keys; /* what was pending before the first of them */
    uint64_t mark_seq;
    uint64_t sync_timer; /* 0 = none */
} mjournal_t;

/* Room for n more points with key_bytes of keys; grows only, so that a
 * steady stream of log_metric allocates nothing. */
static int s_mj_reserve(mjournal_t *m, size_t n, size_t key_bytes, cairn_err_t *err)
{
    if (m->n + n > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->n + n) cap *= 2;
        metric_point_t *p = realloc(m->pts, cap * sizeof *p);
        if (p) m->pts = p;
        pend_ref_t *r = p ? realloc(m->refs, cap * sizeof *r) : NULL;
        if (!r) return cairn_err_oom(err, NULL);
        m->refs = r;
        m->cap = cap;
    }
    if (m->keys_len + key_bytes > m->keys_cap) {
        size_t cap = m->keys_cap ? m->keys_cap : 16384;
        while (cap < m->keys_len + key_bytes) cap *= 2;
        char *k = realloc(m->keys, cap);
        if (!k) return cairn_err_oom(err, NULL);
        m->keys = k;
        m->keys_cap = cap;
    }
    return 0;
}

/* Add a record's points (room reserved). */
static void s_mj_push(mjournal_t *m, int64_t rid, const journal_point_t *pts, size_t n,
                      uint64_t seq)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = m->n++;
        m->pts[k] = (metric_point_t){pts[i].step, pts[i].timestamp, pts[i].value};
        /* The same key as the point before (the usual case): share its bytes. */
        const pend_ref_t *prev = k ? &m->refs[k - 1] : NULL;
        if (prev && prev->key_len == pts[i].key_len &&
            memcmp(m->keys + prev->key_off, pts[i].key, pts[i].key_len) == 0) {
            m->refs[k] = (pend_ref_t){rid, prev->key_off, prev->key_len};
            continue;
        }
        memcpy(m->keys + m->keys_len, pts[i].key, pts[i].key_len);
        m->refs[k] = (pend_ref_t){rid, (uint32_t)m->keys_len, (uint32_t)pts[i].key_len};
        m->keys_len += pts[i].key_len;
    }
    m->last_seq = seq;
}

/* Room for one more waiting request (durability=power). */
static int s_mj_reserve_waiter(mjournal_t *m, cairn_err_t *err)
{
    if (m->nwaiting < m->waitcap) return 0;
    size_t cap = m->waitcap ? m->waitcap * 2 : 64;
    cairn_req_t **w = realloc(m->waiting, cap * sizeof *w);
    if (!w) return cairn_err_oom(err, NULL);
    m->waiting = w;
    m->waitcap = cap;
    return 0;
}

/* Journal a few points for run rid: parse as log_batch does, write one
 * record, keep the points pending. Under durability=power the record is
 * not synced yet: s_reply_logged makes the request wait for s_mj_sync. */
int mj_log_journaled(storage_t *s, int64_t rid, cairn_str_t run_id,
                     const msgpack_object *arr, cairn_err_t *err)
{
    mjournal_t *m = s->mj;
    size_t n = arr ? arr->via.array.size : 0, key_bytes = 0;
    journal_point_t jp[JOURNAL_MAX_POINTS];
    int64_t now = (int64_t)cairn_wall_ms();
    for (size_t i = 0; i < n; i++) {
        metric_point_t p;
        cairn_str_t key;
        if (lg_parse_point(&arr->via.array.ptr[i], i, now, &p, &key, err) != 0)
            return -1;
        jp[i] = (journal_point_t){p.value, p.timestamp, p.step, key.ptr, key.len};
        key_bytes += key.len;
    }
    if (n == 0) return 0;
    uint64_t seq;
    /* Reserve before appending: a journaled point is always pending too, so
     * that every verb sees it. */
    if ((m->n + n > MJ_PENDING_MAX && storage_journal_apply(s, err) != 0) ||
        s_mj_reserve(m, n, key_bytes, err) != 0)
        return -1;
    if (!journal_unsynced(m->j)) { /* the first record of a new group */
        m->mark_n = m->n;
        m->mark_keys = m->keys_len;
        m->mark_seq = m->last_seq;
    }
    if (journal_write(m->j, rid, jp, n, &seq, err) != 0) return -1;
    s_mj_push(m, rid, jp, n, seq);
    live_note_points(s, run_id, jp, n);
    return 0;
}

/* One fdatasync for every record written since the last, then the answers
 * of the requests that wrote them: 200, or, when the sync failed, its
 * error (the records are cut from the file, their points from memory). */
static int s_mj_sync(storage_t *s, cairn_err_t *err)
{
    mjournal_t *m = s->mj;
    if (m->sync_timer) {
        cairn_timer_cancel(s->ctx, m->sync_timer);
        m->sync_timer = 0;
    }
    int rc = journal_sync(m->j, err);
    if (rc != 0) {
        /* Nothing was applied since the group began (an apply syncs first),
         * so its points are the tail of the pending ones. */
        m->n = m->mark_n;
        m->keys_len = m->mark_keys;
        m->last_seq = m->mark_seq;
    }
    size_t n = m->nwaiting;
    m->nwaiting = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            lg_reply_ok(s, m->waiting[i]);
        else
            cairn_reply_err(m->waiting[i], err); /* deferred: answered here */
    }
    return rc;
}

static void s_sync_timer(void *arg)
{
    storage_t *s = arg;
    s->mj->sync_timer = 0;
    cairn_err_t err = {0};
    s_mj_sync(s, &err);
}

/* The request wrote an unsynced record (or came behind one): it is
 * answered after the group's fdatasync. A timer due at once fires after
 * this thread has served what its socket holds (sdk/runtime.c), so
 * requests that arrived together share the sync. Without room or a timer
 * the group syncs now. */
int mj_wait(storage_t *s, cairn_req_t *req, cairn_err_t *err)
{
    mjournal_t *m = s->mj;
    if (s_mj_reserve_waiter(m, err) != 0) {
        if (s_mj_sync(s, err) != 0) return -1;
        return lg_reply_ok(s, req);
    }
    m->waiting[m->nwaiting++] = req;
    cairn_defer(req);
    if (!m->sync_timer &&
        !(m->sync_timer = cairn_timer_add(s->ctx, 0, 0, s_sync_timer, s)))
        s_mj_sync(s, err);
    return 0;
}

int storage_journal_apply(storage_t *s, cairn_err_t *err)
{
    storage_group_flush(s); /* its requests are told if it fails; this one not */
    return storage_journal_apply_pending(s, err);
}

int storage_journal_apply_pending(storage_t *s, cairn_err_t *err)
{
    mjournal_t *m = s->mj;
    /* Answer the waiting group first: nothing acknowledged later may be
     * applied before it, and its failure must not roll back applied points. */
    cairn_err_t sync_err = {0}; /* the group's requests are told; this caller is not */
    if (m && m->j && (m->nwaiting || journal_unsynced(m->j))) s_mj_sync(s, &sync_err);
    if (!m || m->n == 0) return 0;
    /* The points go in a transaction of their own, after the write group's. */
    storage_group_flush(s);
    batch_t b = {0};
    int rc = lg_batch_init(&b, m->pts, m->n, err);
    for (size_t i = 0; rc == 0 && i < m->n; i++) {
        const pend_ref_t *r = &m->refs[i];
        key_group_t *g =
            lg_group_for(&b, r->rid, m->keys + r->key_off, r->key_len, err);
        rc = g ? lg_group_add(g, i, err) : -1;
    }
    if (rc == 0) rc = db_begin(s->db, err);
    if (rc == 0) rc = lg_write_metrics(s, &b, err);
    if (rc == 0) {
        sqlite3_stmt *st = db_stmt(s->db, ST_JOURNAL_SET);
        sqlite3_bind_int64(st, 1, (int64_t)m->last_seq);
        rc = db_exec_stmt(s->db, st, err);
    }
    if (rc == 0) rc = db_commit(s->db, err);
    if (rc != 0) db_rollback(s->db);
    lg_batch_free(&b);
    if (rc != 0) return -1;
    m->n = 0;
    m->keys_len = 0;
    if (m->failing) {
        cairn_log(s->ctx, CAIRN_LOG_INFO,
                  "storage: the journaled metric points are applied again");
        m->failing = false;
    }
    /* Should this fail, the applied records stay in the file; replay skips
     * them by their seq. */
    cairn_err_t e = {0};
    if (m->j && journal_reset(m->j, &e) != 0)
        cairn_log(s->ctx, CAIRN_LOG_WARN, "storage: %s", e.msg);
    return 0;
}

void storage_journal_drain(storage_t *s)
{
    mjournal_t *m = s->mj;
    while (m && m->qlen) {
        queued_t q = m->queue[m->qhead++];
        if (--m->qlen == 0) m->qhead = 0;
        cairn_err_t err = {0};
        int rc = q.batch ? lg_log_batch(s, q.req, &err)
                         : lg_log_one(s, q.req, "metrics", &err);
        if (rc != 0) cairn_reply_err(q.req, &err); /* deferred: answered here */
    }
}

static void s_drain_timer(void *arg)
{
    storage_t *s = arg;
    s->mj->timer = 0;
    storage_journal_drain(s);
}

/* Queue a log_metric or log_batch for this instance's thread (it replies
 * from there); false when it cannot be queued and must be served now. */
bool mj_defer(storage_t *s, cairn_req_t *req, bool batch)
{
    mjournal_t *m = s->mj;
    if (m->qhead + m->qlen == m->qcap) {
        if (m->qhead) {
            memmove(m->queue, m->queue + m->qhead, m->qlen * sizeof *m->queue);
            m->qhead = 0;
        } else {
            size_t cap = m->qcap ? m->qcap * 2 : 64;
            queued_t *q = realloc(m->queue, cap * sizeof *q);
            if (!q) return false;
            m->queue = q;
            m->qcap = cap;
        }
    }
    if (!m->timer && !(m->timer = cairn_timer_add(s->ctx, 0, 0, s_drain_timer, s)))
        return false;
    m->queue[m->qhead + m->qlen++] = (queued_t){req, batch};
    cairn_defer(req);
    return true;
}

void storage_journal_tick(storage_t *s)
{
    storage_group_flush(s); /* normally done already, by its timer */
    mjournal_t *m = s->mj;
    if (!m || m->n == 0) return;
    size_t n = m->n;
    cairn_err_t err = {0};
    if (storage_journal_apply(s, &err) != 0 && !m->failing) {
        cairn_log(s->ctx, CAIRN_LOG_ERROR,
                  "storage: %zu journaled metric point(s) cannot be applied (they "
                  "stay journaled; every other verb answers this until it works): %s",
                  n, err.msg);
        m->failing = true;
    }
}

static int s_replay_rec(void *arg, const journal_rec_t *rec, cairn_err_t *err)
{
    storage_t *s = arg;
    size_t key_bytes = 0;
    for (size_t i = 0; i < rec->n; i++) key_bytes += rec->pts[i].key_len;
    if (s_mj_reserve(s->mj, rec->n, key_bytes, err) != 0) return -1;
    s_mj_push(s->mj, rec->rid, rec->pts, rec->n, rec->seq);
    return 0;
}

int storage_journal_open(storage_t *s, const char *db_path, bool power,
                         cairn_err_t *err)
{
    mjournal_t *m = s->mj = calloc(1, sizeof *m);
    if (!m) return cairn_err_oom(err, NULL);
    /* The tracking instance writes nearly all of the WAL: it checkpoints,
     * from a thread of its own (db.h). */
    if (db_checkpointer_start(s->db, err) != 0 || db_fold_start(s->db, err) != 0)
        return -1;
    sqlite3_stmt *st = db_stmt(s->db, ST_JOURNAL_GET);
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_fail(s->db, "read the metric journal's state", err);
        sqlite3_reset(st);
        return -1;
    }
    uint64_t applied = (uint64_t)sqlite3_column_int64(st, 0);
    uint64_t tag = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    char *path = NULL;
    if (asprintf(&path, "%s-mj", db_path) < 0) return cairn_err_oom(err, NULL);
    m->j = journal_open(path, tag, power, err);
    free(path);
    if (!m->j) return -1;
    journal_replay_info_t *info = malloc(sizeof *info);
    if (!info) return cairn_err_oom(err, NULL);
    int rc = journal_replay(m->j, applied, s_replay_rec, s, info, err);
    if (rc == 0 && info->cut_bytes)
        cairn_log(s->ctx, CAIRN_LOG_WARN,
                  "storage: the metric journal %s ended in %llu byte(s) of a torn or "
                  "corrupt record; they are cut off",
                  journal_path(m->j), (unsigned long long)info->cut_bytes);
    if (rc == 0 && info->foreign)
        cairn_log(s->ctx, CAIRN_LOG_WARN,
                  "storage: the metric journal %s holds records of another database; "
                  "it is moved, untouched, to %s",
                  journal_path(m->j), info->moved_to);
    if (rc == 0 && m->n)
        cairn_log(s->ctx, CAIRN_LOG_INFO,
                  "storage: applying %zu metric point(s) from the metric journal %s",
                  m->n, journal_path(m->j));
    free(info);
    /* What replay found is applied now; already-applied records are
     * dropped with the rest of the file. */
    if (rc == 0) rc = storage_journal_apply(s, err);
    if (rc == 0) rc = journal_reset(m->j, err);
    return rc;
}

void storage_journal_close(storage_t *s)
{
    mjournal_t *m = s->mj;
    if (m) storage_journal_drain(s); /* answer what waits */
    storage_group_close(s);          /* commit and answer the write group */
    if (!m) return;
    if (m->timer) cairn_timer_cancel(s->ctx, m->timer);
    cairn_err_t sync_err = {0};
    if (m->j) s_mj_sync(s, &sync_err); /* the group waiting for its fdatasync */
    cairn_err_t err = {0};
    if (m->j && m->n && storage_journal_apply(s, &err) != 0)
        cairn_log(s->ctx, CAIRN_LOG_ERROR,
                  "storage: %zu metric point(s) stay in the journal %s for the next "
                  "start: %s",
                  m->n, journal_path(m->j), err.msg);
    journal_destroy(&m->j);
    free(m->queue);
    free(m->waiting);
    free(m->pts);
    free(m->refs);
    free(m->keys);
    free(m);
    s->mj = NULL;
}

bool mj_unsynced(const storage_t *s)
{
    return s->mj && s->mj->j && journal_unsynced(s->mj->j);
}

bool mj_queued(const storage_t *s)
{
    return s->mj && s->mj->qlen;
}

bool mj_full(const storage_t *s)
{
    return s->mj && s->mj->n >= MJ_PENDING_MAX;
}

/* The points of a log_batch body the journal would take without an apply
 * first (a quick look, not validation: the handler validates); -1 for any
 * other body. */
long mj_quick_points(const storage_t *s, const msgpack_object *body)
{
    const mjournal_t *m = s->mj;
    if (body->type != MSGPACK_OBJECT_MAP) return -1;
    const msgpack_object *metrics = cairn_obj_get(body, "metrics");
    if (cairn_obj_get(body, "params") || cairn_obj_get(body, "tags") ||
        (metrics && metrics->type != MSGPACK_OBJECT_ARRAY) ||
        !lg_journal_takes(metrics, NULL, NULL))
        return -1;
    size_t n = metrics ? metrics->via.array.size : 0;
    return m->n + n > MJ_PENDING_MAX ? -1 : (long)n;
}
