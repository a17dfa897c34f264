/* Pending requests: open-addressing hash by rid (linear probing with
 * backward-shift deletion) plus an intrusive binary min-heap by deadline. */
#include "pending.h"

#include <stdlib.h>
#include <string.h>

struct pending_table {
    pending_t **slots;
    size_t cap, count; /* cap is a power of two */
    pending_t **heap;
    size_t heap_cap;
    uint64_t next_rid;
    pending_t *spare; /* freed entries kept for reuse: no malloc per request */
    size_t nspare;
};

#define PENDING_SPARE_MAX 4096

static size_t s_hash(uint64_t rid, size_t cap)
{
    rid ^= rid >> 33;
    rid *= 0xff51afd7ed558ccdULL;
    rid ^= rid >> 33;
    return (size_t)rid & (cap - 1);
}

pending_table_t *pending_table_new(void)
{
    pending_table_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->cap = 1024;
    t->slots = calloc(t->cap, sizeof *t->slots);
    t->heap_cap = 1024;
    t->heap = malloc(t->heap_cap * sizeof *t->heap);
    t->next_rid = 1;
    if (!t->slots || !t->heap) pending_table_destroy(&t);
    return t;
}

static void s_close_entry(pending_t *p)
{
    free(p->audit); /* a record never answered (cairnd stopping) */
    p->audit = NULL;
    if (p->queued_msgs) {
        zmq_msg_close(&p->hdr);
        zmq_msg_close(&p->body);
        p->queued_msgs = false;
    }
}

static void s_free_entry(pending_t *p)
{
    s_close_entry(p);
    free(p);
}

/* Keep a freed entry for the next pending_add, up to a bound. */
static void s_recycle(pending_table_t *t, pending_t *p)
{
    s_close_entry(p);
    if (t->nspare >= PENDING_SPARE_MAX) {
        free(p);
        return;
    }
    p->qnext = t->spare;
    t->spare = p;
    t->nspare++;
}

void pending_table_destroy(pending_table_t **self_p)
{
    if (!self_p || !*self_p) return;
    pending_table_t *t = *self_p;
    for (size_t i = 0; t->slots && i < t->cap; i++)
        if (t->slots[i]) s_free_entry(t->slots[i]);
    while (t->spare) {
        pending_t *p = t->spare;
        t->spare = p->qnext;
        free(p);
    }
    free(t->slots);
    free(t->heap);
    free(t);
    *self_p = NULL;
}

static void s_insert_slot(pending_t **slots, size_t cap, pending_t *p)
{
    size_t i = s_hash(p->rid, cap);
    while (slots[i]) i = (i + 1) & (cap - 1);
    slots[i] = p;
}

static int s_grow(pending_table_t *t)
{
    size_t ncap = t->cap * 2;
    pending_t **ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i]) s_insert_slot(ns, ncap, t->slots[i]);
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

/* ---- heap ----------------------------------------------------------- */

static void s_heap_set(pending_table_t *t, size_t i, pending_t *p)
{
    t->heap[i] = p;
    p->heap_index = i;
}

static void s_heap_up(pending_table_t *t, size_t i)
{
    pending_t *p = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (t->heap[parent]->deadline <= p->deadline) break;
        s_heap_set(t, i, t->heap[parent]);
        i = parent;
    }
    s_heap_set(t, i, p);
}

static void s_heap_down(pending_table_t *t, size_t i)
{
    size_t n = t->count;
    pending_t *p = t->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && t->heap[c + 1]->deadline < t->heap[c]->deadline) c++;
        if (t->heap[c]->deadline >= p->deadline) break;
        s_heap_set(t, i, t->heap[c]);
        i = c;
    }
    s_heap_set(t, i, p);
}

/* ---- public --------------------------------------------------------- */

pending_t *pending_add(pending_table_t *t, uint64_t deadline)
{
    if ((t->count + 1) * 2 > t->cap && s_grow(t) != 0) return NULL;
    if (t->count + 1 > t->heap_cap) {
        pending_t **nh = realloc(t->heap, t->heap_cap * 2 * sizeof *nh);
        if (!nh) return NULL;
        t->heap = nh;
        t->heap_cap *= 2;
    }
    pending_t *p = t->spare;
    if (p) {
        t->spare = p->qnext;
        t->nspare--;
        /* Reset the fixed fields; route and id buffers are overwritten by
         * length, so they need no clearing. */
        memset(p, 0, offsetof(pending_t, route));
        p->route_len = 0;
        p->id_type = 0;
        p->id_uint = 0;
        p->id_str_len = 0;
        p->svc = NULL;
        p->mrow = 0;
        p->worker = NULL;
        p->queued_msgs = false;
        p->answered = false;
        p->audit = NULL;
        p->qnext = NULL;
        p->heap_index = 0;
    } else if (!(p = calloc(1, sizeof *p))) {
        return NULL;
    }
    p->rid = t->next_rid++;
    p->deadline = deadline;
    s_insert_slot(t->slots, t->cap, p);
    s_heap_set(t, t->count, p);
    t->count++;
    s_heap_up(t, t->count - 1);
    return p;
}

pending_t *pending_find(pending_table_t *t, uint64_t rid)
{
    size_t i = s_hash(rid, t->cap);
    while (t->slots[i]) {
        if (t->slots[i]->rid == rid) return t->slots[i];
        i = (i + 1) & (t->cap - 1);
    }
    return NULL;
}

static void s_slot_remove(pending_table_t *t, uint64_t rid)
{
    size_t mask = t->cap - 1, i = s_hash(rid, t->cap);
    while (t->slots[i] && t->slots[i]->rid != rid) i = (i + 1) & mask;
    if (!t->slots[i]) return;
    /* Backward-shift: pull later members of the cluster into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        size_t home = s_hash(t->slots[j]->rid, t->cap);
        bool movable =
            hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = NULL;
}

void pending_remove(pending_table_t *t, pending_t *p)
{
    s_slot_remove(t, p->rid);
    size_t i = p->heap_index;
    t->count--;
    if (i != t->count) {
        pending_t *moved = t->heap[t->count];
        s_heap_set(t, i, moved);
        s_heap_down(t, i);
        s_heap_up(t, moved->heap_index);
    }
    s_recycle(t, p);
}

void pending_set_deadline(pending_table_t *t, pending_t *p, uint64_t deadline)
{
    p->deadline = deadline;
    s_heap_down(t, p->heap_index);
    s_heap_up(t, p->heap_index);
}

pending_t *pending_earliest(pending_table_t *t)
{
    return t->count ? t->heap[0] : NULL;
}

size_t pending_count(const pending_table_t *t)
{
    return t->count;
}

void pending_each(pending_table_t *t, void (*fn)(pending_t *, void *), void *arg)
{
    for (size_t i = 0; i < t->count; i++) fn(t->heap[i], arg);
}
