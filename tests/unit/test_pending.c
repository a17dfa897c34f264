/* Unit tests of the pending-request table (kernel/pending.c): the hash by
 * rid and the min-heap by deadline, checked against a brute-force model
 * through 100k entries added and removed in random order.
 *
 * The seed is printed; CAIRN_TEST_SEED=N replays a run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pending.h"
#include "unit.h"

#define N 100000

/* xorshift64*: deterministic across libcs. */
static uint64_t s_rng;
static uint64_t rnd(void)
{
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 0x2545f4914f6cdd1dULL;
}
static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

/* Deadlines from a mix of ranges: many ties, wide spreads, extremes. */
static uint64_t rnd_deadline(void)
{
    switch (rnd() % 6) {
        case 0:
            return rnd() % 16; /* heavy ties */
        case 1:
            return 1000000 + rnd() % 1000; /* a narrow band */
        case 2:
            return rnd(); /* anything */
        case 3:
            return UINT64_MAX - rnd() % 4; /* the far end */
        case 4:
            return 0;
        default:
            return rnd() % 1000000000ULL;
    }
}

/* The model: what should be in the table. */
typedef struct entry {
    pending_t *p;
    uint64_t rid, deadline;
} entry_t;

static entry_t *s_live; /* dense array of live entries */
static size_t s_nlive;
static size_t *s_pos; /* rid -> its index in s_live (rids are 1, 2, ...) */
static size_t s_pos_cap;

static uint64_t model_min(void)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < s_nlive; i++)
        if (s_live[i].deadline < m) m = s_live[i].deadline;
    return m;
}

static int add_one(pending_table_t *t, uint64_t *last_rid)
{
    uint64_t d = rnd_deadline();
    pending_t *p = pending_add(t, d);
    if (!CHECK(p != NULL)) return -1;
    /* Fresh, increasing, never reused rids; a zeroed entry. */
    if (!CHECK(p->rid > *last_rid)) return -1;
    *last_rid = p->rid;
    CHECK(p->deadline == d);
    CHECK(p->worker == NULL && p->svc == NULL && !p->queued_msgs);
    if (!CHECK(p->rid < s_pos_cap)) return -1;
    s_pos[p->rid] = s_nlive;
    s_live[s_nlive++] = (entry_t){p, p->rid, d};
    return 0;
}

static void remove_at(pending_table_t *t, size_t i)
{
    entry_t e = s_live[i];
    s_live[i] = s_live[--s_nlive];
    if (i < s_nlive) s_pos[s_live[i].rid] = i;
    pending_remove(t, e.p);
    if (!CHECK(pending_find(t, e.rid) == NULL))
        fprintf(stderr, "     rid %ju still found after its removal\n",
                (uintmax_t)e.rid);
}

/* Collect entries through pending_each (heap order). */
typedef struct collect {
    pending_t **v;
    size_t n, cap;
} collect_t;

static void collect_fn(pending_t *p, void *arg)
{
    collect_t *c = arg;
    if (c->n < c->cap) c->v[c->n] = p;
    c->n++;
}

/* The cheap invariants, checked often. */
static int check_cheap(pending_table_t *t)
{
    int f0 = unit_failed_;
    CHECK_UEQ(pending_count(t), s_nlive);
    pending_t *e = pending_earliest(t);
    if (s_nlive == 0) {
        CHECK(e == NULL);
    } else if (CHECK(e != NULL)) {
        uint64_t m = model_min();
        if (!CHECK(e->deadline == m))
            fprintf(stderr, "     earliest %ju, model min %ju (n %zu)\n",
                    (uintmax_t)e->deadline, (uintmax_t)m, s_nlive);
    }
    /* A few random finds. */
    for (int k = 0; k < 8 && s_nlive; k++) {
        entry_t *x = &s_live[rnd_below(s_nlive)];
        if (!CHECK(pending_find(t, x->rid) == x->p)) break;
    }
    return unit_failed_ - f0;
}

/* The full invariants: every live entry found, the heap a heap. */
static int check_full(pending_table_t *t)
{
    int f0 = unit_failed_;
    check_cheap(t);
    size_t lost = 0;
    for (size_t i = 0; i < s_nlive; i++)
        if (pending_find(t, s_live[i].rid) != s_live[i].p) lost++;
    if (!CHECK(lost == 0)) fprintf(stderr, "     %zu live entries not found\n", lost);
    collect_t c = {malloc((s_nlive + 1) * sizeof(pending_t *)), 0, s_nlive + 1};
    if (!CHECK(c.v)) return 1;
    pending_each(t, collect_fn, &c);
    CHECK_UEQ(c.n, s_nlive);
    size_t bad_index = 0, bad_order = 0;
    for (size_t i = 0; i < c.n && i < c.cap; i++) {
        if (c.v[i]->heap_index != i) bad_index++;
        if (i > 0 && c.v[(i - 1) / 2]->deadline > c.v[i]->deadline) bad_order++;
    }
    if (!CHECK(bad_index == 0 && bad_order == 0))
        fprintf(stderr, "     %zu wrong heap_index, %zu parent>child\n", bad_index,
                bad_order);
    free(c.v);
    return unit_failed_ - f0;
}

TEST(empty)
{
    pending_table_t *t = pending_table_new();
    if (!CHECK(t)) return;
    CHECK_UEQ(pending_count(t), 0);
    CHECK(pending_earliest(t) == NULL);
    CHECK(pending_find(t, 0) == NULL);
    CHECK(pending_find(t, 1) == NULL);
    CHECK(pending_find(t, UINT64_MAX) == NULL);
    pending_table_destroy(&t);
    CHECK(t == NULL);
    pending_table_destroy(&t); /* safe twice */
    pending_table_destroy(NULL);
}

TEST(small_by_hand)
{
    pending_table_t *t = pending_table_new();
    if (!CHECK(t)) return;
    pending_t *a = pending_add(t, 300), *b = pending_add(t, 100),
              *c = pending_add(t, 200);
    if (!CHECK(a && b && c)) return;
    CHECK(a->rid != b->rid && b->rid != c->rid && a->rid != c->rid);
    CHECK(a->rid > 0); /* rid 0 is never handed out */
    CHECK(pending_earliest(t) == b);
    CHECK(pending_find(t, c->rid) == c);
    /* Moving deadlines reorders the heap both ways. */
    pending_set_deadline(t, a, 10);
    CHECK(pending_earliest(t) == a);
    pending_set_deadline(t, a, 300);
    CHECK(pending_earliest(t) == b);
    pending_set_deadline(t, b, 100); /* unchanged */
    CHECK(pending_earliest(t) == b);
    uint64_t brid = b->rid;
    pending_remove(t, b);
    CHECK(pending_find(t, brid) == NULL);
    CHECK(pending_earliest(t) == c);
    pending_t *d = pending_add(t, 50);
    CHECK(d->rid > c->rid);
    CHECK(pending_earliest(t) == d);
    pending_remove(t, a); /* not the root */
    CHECK(pending_earliest(t) == d);
    CHECK_UEQ(pending_count(t), 2);
    pending_remove(t, d);
    pending_remove(t, c);
    CHECK_UEQ(pending_count(t), 0);
    CHECK(pending_earliest(t) == NULL);
    pending_table_destroy(&t);
}

TEST(queued_messages_freed)
{
    /* An entry holding queued zmq messages frees them on removal and on
     * table destruction (ASan's leak check watches). */
    pending_table_t *t = pending_table_new();
    if (!CHECK(t)) return;
    for (int i = 0; i < 4; i++) {
        pending_t *p = pending_add(t, (uint64_t)i);
        if (!CHECK(p)) break;
        p->queued_msgs = true;
        CHECK_EQ(zmq_msg_init_size(&p->hdr, 100), 0);
        CHECK_EQ(zmq_msg_init_size(&p->body, 70000), 0); /* not a VSM */
        if (i % 2) pending_remove(t, p);
    }
    pending_table_destroy(&t);
}

TEST(random_100k)
{
    pending_table_t *t = pending_table_new();
    if (!CHECK(t)) return;
    s_live = malloc(2 * N * sizeof *s_live);
    s_nlive = 0;
    s_pos_cap = 4 * N + 2; /* more than every add below */
    s_pos = malloc(s_pos_cap * sizeof *s_pos);
    if (!CHECK(s_live && s_pos)) return;
    uint64_t last_rid = 0;

    /* Phase 1: N adds; cheap checks every 997, a full one at the end. */
    for (size_t i = 0; i < N; i++) {
        if (add_one(t, &last_rid) != 0) goto out;
        if (i % 997 == 0 && check_cheap(t)) goto out;
    }
    if (check_full(t)) goto out;

    /* Phase 2: remove half in random order. */
    for (size_t i = 0; i < N / 2; i++) {
        remove_at(t, rnd_below(s_nlive));
        if (i % 499 == 0 && check_cheap(t)) goto out;
    }
    if (check_full(t)) goto out;

    /* Phase 3: 2N random adds, removes and deadline moves; the earliest is
     * removed an eighth of the time (what expiry does). */
    for (size_t i = 0; i < 2 * N; i++) {
        uint64_t r = rnd() % 8;
        if (s_nlive == 0 || (r < 3 && s_nlive < 2 * N)) {
            if (add_one(t, &last_rid) != 0) goto out;
        } else if (r == 3) {
            /* Move a deadline, earlier or later (a request's ttl changed). */
            entry_t *x = &s_live[rnd_below(s_nlive)];
            x->deadline = rnd_deadline();
            pending_set_deadline(t, x->p, x->deadline);
            if (!CHECK(x->p->deadline == x->deadline)) goto out;
        } else if (r < 5) {
            pending_t *e = pending_earliest(t);
            if (!CHECK(e && e->rid < s_pos_cap)) goto out;
            size_t j = s_pos[e->rid];
            if (!CHECK(j < s_nlive && s_live[j].p == e)) goto out;
            remove_at(t, j);
        } else {
            remove_at(t, rnd_below(s_nlive));
        }
        if (i % 1009 == 0 && check_cheap(t)) goto out;
    }
    if (check_full(t)) goto out;

    /* Phase 4: remove everything in random order. */
    while (s_nlive) {
        remove_at(t, rnd_below(s_nlive));
        if (s_nlive % 4999 == 0 && check_cheap(t)) goto out;
    }
    check_full(t);
    CHECK(pending_earliest(t) == NULL);
    /* Nothing that was ever handed out is still found. */
    size_t found = 0;
    for (uint64_t rid = 0; rid <= last_rid + 10; rid++)
        if (pending_find(t, rid)) found++;
    CHECK_UEQ(found, 0);
out:
    pending_table_destroy(&t);
    free(s_live);
    free(s_pos);
    s_live = NULL;
    s_pos = NULL;
    s_nlive = 0;
}

TEST(heap_drains_in_order)
{
    /* Add N random deadlines, move some, then take the earliest until
     * empty: the deadlines come out sorted, and as many as went in. */
    pending_table_t *t = pending_table_new();
    if (!CHECK(t)) return;
    pending_t **all = malloc(N * sizeof *all);
    if (!CHECK(all)) goto out;
    for (size_t i = 0; i < N; i++)
        if (!CHECK(all[i] = pending_add(t, rnd_deadline()))) {
            free(all);
            goto out;
        }
    /* Then move a third of the deadlines: the heap must stay a heap. */
    for (size_t i = 0; i < N / 3; i++)
        pending_set_deadline(t, all[rnd_below(N)], rnd_deadline());
    free(all);
    uint64_t prev = 0;
    size_t n = 0, unordered = 0;
    pending_t *e;
    while ((e = pending_earliest(t)) != NULL) {
        if (e->deadline < prev) unordered++;
        prev = e->deadline;
        pending_remove(t, e);
        n++;
        if (n > N) break;
    }
    CHECK_UEQ(n, N);
    if (!CHECK(unordered == 0)) fprintf(stderr, "     %zu out of order\n", unordered);
out:
    pending_table_destroy(&t); /* with entries left when it failed */
}

TEST(destroy_with_entries)
{
    pending_table_t *t = pending_table_new();
    if (!CHECK(t)) return;
    for (int i = 0; i < 5000; i++) pending_add(t, rnd_deadline());
    CHECK_UEQ(pending_count(t), 5000);
    pending_table_destroy(&t); /* ASan: no leak */
    CHECK(t == NULL);
}

int main(void)
{
    const char *seed = getenv("CAIRN_TEST_SEED");
    s_rng = seed ? strtoull(seed, NULL, 0) : 0x9e3779b97f4a7c15ULL;
    if (!s_rng) s_rng = 1;
    printf("seed %ju (CAIRN_TEST_SEED replays)\n", (uintmax_t)s_rng);
    RUN(empty);
    RUN(small_by_hand);
    RUN(queued_messages_freed);
    RUN(random_100k);
    RUN(heap_drains_in_order);
    RUN(destroy_with_entries);
    return unit_report();
}
