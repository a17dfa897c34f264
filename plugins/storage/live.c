/* The run.metrics event (logging.h): which runs took metric points lately,
 * for live charts (the gateway's /api/v1/events).
 *
 * Points are noted once accepted, from their parsed form: a batch's
 * (logging.c's s_log) or a journal record's (mjournal.c), which may be on
 * the kernel's thread (log_metric and log_batch are INLINE): a mutex, a
 * small hash of runs and a few compares.
 * A timer on the loop thread publishes each run noted since its last call
 * once, so a run's event comes at most once a window however fast it logs.
 * Two tables: requests note into one while the timer publishes the
 * other's runs, so ingestion never waits for packing or publishing. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "logging.h"

#define LIVE_RUNS_MAX 4096  /* runs noted in one window; more are dropped, counted */
#define LIVE_SLOTS 8192     /* the hash's slots: a power of two, twice the runs */
#define LIVE_KEYS_MAX 32    /* keys named in one event; more: keys_truncated */
#define LIVE_KEYS_KEEP 1024 /* a run's key bytes kept for the next window */

typedef struct {
    char id[RUN_ID_MAX];
    uint8_t id_len, nkeys;
    bool truncated;
    uint8_t klen[LIVE_KEYS_MAX];
    int64_t step, ts;
    char *keys; /* nkeys keys back to back (klen each) */
    size_t keys_len, keys_cap;
} live_run_t;

typedef struct {
    live_run_t *runs; /* LIVE_RUNS_MAX */
    size_t n;
    uint16_t *slots; /* run index + 1; 0: empty */
} live_table_t;

struct live {
    cairn_ctx_t *ctx;
    pthread_mutex_t mu;
    live_table_t t[2];
    int cur; /* the table requests note into (under mu) */
    uint64_t timer;
    _Atomic uint64_t dropped;
};

static uint32_t s_hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

/* The run's entry in t, made if need be; NULL when t is full. */
static live_run_t *s_entry(live_table_t *t, const char *id, size_t len)
{
    size_t i = s_hash(id, len) & (LIVE_SLOTS - 1);
    for (; t->slots[i]; i = (i + 1) & (LIVE_SLOTS - 1)) {
        live_run_t *r = &t->runs[t->slots[i] - 1];
        if (r->id_len == len && !memcmp(r->id, id, len)) return r;
    }
    if (t->n == LIVE_RUNS_MAX) return NULL;
    live_run_t *r = &t->runs[t->n++];
    t->slots[i] = (uint16_t)t->n;
    memcpy(r->id, id, len);
    r->id_len = (uint8_t)len;
    r->nkeys = 0;
    r->truncated = false;
    r->keys_len = 0;
    r->step = r->ts = INT64_MIN;
    return r;
}

static void s_key(live_run_t *r, const char *k, size_t len)
{
    if (r->truncated || !len || len > UINT8_MAX) return;
    const char *p = r->keys;
    for (unsigned i = 0; i < r->nkeys; p += r->klen[i++])
        if (r->klen[i] == len && !memcmp(p, k, len)) return;
    if (r->nkeys == LIVE_KEYS_MAX) {
        r->truncated = true;
        return;
    }
    if (r->keys_len + len > r->keys_cap) {
        size_t cap = r->keys_cap ? r->keys_cap * 2 : 256;
        while (cap < r->keys_len + len) cap *= 2;
        char *np = realloc(r->keys, cap);
        if (!np) { /* named as truncated rather than fail the request */
            r->truncated = true;
            return;
        }
        r->keys = np;
        r->keys_cap = cap;
    }
    memcpy(r->keys + r->keys_len, k, len);
    r->keys_len += len;
    r->klen[r->nkeys++] = (uint8_t)len;
}

/* The run's entry in the table noted into, its bounds raised to step and
 * ts, with mu held; NULL (mu released, the run counted as dropped) when
 * the table is full. */
static live_run_t *s_note(live_t *l, cairn_str_t run_id, int64_t step, int64_t ts)
{
    pthread_mutex_lock(&l->mu);
    live_run_t *r = s_entry(&l->t[l->cur], run_id.ptr, run_id.len);
    if (!r) {
        pthread_mutex_unlock(&l->mu);
        atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
        return NULL;
    }
    if (step > r->step) r->step = step;
    if (ts > r->ts) r->ts = ts;
    return r;
}

static live_t *s_live(storage_t *s, cairn_str_t run_id, size_t npoints)
{
    live_t *l = s->live;
    return l && npoints && run_id.len && run_id.len <= RUN_ID_MAX ? l : NULL;
}

void live_note_batch(storage_t *s, cairn_str_t run_id, const batch_t *b, size_t npoints)
{
    live_t *l = s_live(s, run_id, npoints);
    if (!l) return;
    int64_t step = INT64_MIN, ts = INT64_MIN;
    for (size_t i = 0; i < npoints; i++) {
        if (b->pts[i].step > step) step = b->pts[i].step;
        if (b->pts[i].timestamp > ts) ts = b->pts[i].timestamp;
    }
    live_run_t *r = s_note(l, run_id, step, ts);
    if (!r) return;
    for (size_t i = 0; i < b->ngroups && !r->truncated; i++)
        s_key(r, b->groups[i].key, b->groups[i].key_len);
    pthread_mutex_unlock(&l->mu);
}

void live_note_points(storage_t *s, cairn_str_t run_id, const journal_point_t *jp,
                      size_t n)
{
    live_t *l = s_live(s, run_id, n);
    if (!l) return;
    int64_t step = INT64_MIN, ts = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        if (jp[i].step > step) step = jp[i].step;
        if (jp[i].timestamp > ts) ts = jp[i].timestamp;
    }
    live_run_t *r = s_note(l, run_id, step, ts);
    if (!r) return;
    for (size_t i = 0; i < n && !r->truncated; i++) s_key(r, jp[i].key, jp[i].key_len);
    pthread_mutex_unlock(&l->mu);
}

static void s_publish(live_t *l, const live_run_t *r, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, r->truncated ? 5 : 4);
    cairn_pack_cstr(&pk, "run_id");
    cairn_pack_strn(&pk, r->id, r->id_len);
    cairn_pack_cstr(&pk, "keys");
    msgpack_pack_array(&pk, r->nkeys);
    const char *p = r->keys;
    for (unsigned i = 0; i < r->nkeys; p += r->klen[i++])
        cairn_pack_strn(&pk, p, r->klen[i]);
    cairn_pack_cstr(&pk, "step");
    msgpack_pack_int64(&pk, r->step);
    cairn_pack_cstr(&pk, "timestamp");
    msgpack_pack_int64(&pk, r->ts);
    if (r->truncated) {
        cairn_pack_cstr(&pk, "keys_truncated");
        msgpack_pack_true(&pk);
    }
    cairn_publish(l->ctx, "run.metrics", sb->data, sb->size);
}

/* The timer: swap the tables, publish the runs of the one noted into. */
static void s_flush(void *arg)
{
    live_t *l = arg;
    pthread_mutex_lock(&l->mu);
    live_table_t *t = &l->t[l->cur];
    if (t->n) l->cur ^= 1;
    pthread_mutex_unlock(&l->mu);
    if (!t->n) return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (size_t i = 0; i < t->n; i++) {
        live_run_t *r = &t->runs[i];
        s_publish(l, r, &sb);
        if (r->keys_cap > LIVE_KEYS_KEEP) { /* a rare wide run: give it back */
            free(r->keys);
            r->keys = NULL;
            r->keys_cap = 0;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    t->n = 0;
    memset(t->slots, 0, LIVE_SLOTS * sizeof *t->slots);
}

int live_open(storage_t *s, uint32_t every_ms, cairn_err_t *err)
{
    if (!every_ms) return 0; /* the event is off */
    live_t *l = calloc(1, sizeof *l);
    if (!l) return cairn_err_oom(err, NULL);
    l->ctx = s->ctx;
    pthread_mutex_init(&l->mu, NULL);
    s->live = l;
    for (int i = 0; i < 2; i++)
        if (!(l->t[i].runs = calloc(LIVE_RUNS_MAX, sizeof *l->t[i].runs)) ||
            !(l->t[i].slots = calloc(LIVE_SLOTS, sizeof *l->t[i].slots)))
            return cairn_err_oom(err, "for the run.metrics event's runs");
    if (!(l->timer = cairn_timer_add(s->ctx, every_ms, every_ms, s_flush, l)))
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "storage: cannot start the run.metrics timer");
    return 0;
}

uint64_t live_dropped(const storage_t *s)
{
    return s->live ? atomic_load_explicit(&s->live->dropped, memory_order_relaxed) : 0;
}

void live_close(storage_t *s)
{
    live_t *l = s->live;
    if (!l) return;
    if (l->timer) cairn_timer_cancel(l->ctx, l->timer);
    for (int i = 0; i < 2; i++) {
        for (size_t j = 0; l->t[i].runs && j < LIVE_RUNS_MAX; j++)
            free(l->t[i].runs[j].keys);
        free(l->t[i].runs);
        free(l->t[i].slots);
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
    s->live = NULL;
}
