/* Per-client byte accounting (clients.h). Everything but the unsent
 * counters is touched by the broker thread only; those are atomics that
 * libzmq's I/O thread decrements when it has written a tracked reply. */
#include "clients.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096 /* chained; tens of thousands of clients stay short */
#define ROUTE_MAX 256
#define MIB (1024.0 * 1024.0)

struct client {
    unsigned char route[ROUTE_MAX];
    size_t route_len;
    uint64_t queued;
    atomic_uint_fast64_t unsent;
    client_t *next;
};

struct clients {
    clients_limits_t lim;
    uint64_t queued;
    atomic_uint_fast64_t unsent;
    size_t count;
    client_t *bucket[BUCKETS];
};

/* One allocation per tracked reply: who it is charged to, and the reply's
 * own message, held (not copied) until libzmq has written it. */
typedef struct tracked {
    clients_t *t;
    client_t *c;
    size_t n;
    zmq_msg_t held;
} tracked_t;

static size_t s_hash(const void *route, size_t len)
{
    const unsigned char *p = route;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return (size_t)(h % BUCKETS);
}

clients_t *clients_new(const clients_limits_t *limits)
{
    clients_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->lim = *limits;
    atomic_init(&t->unsent, 0);
    return t;
}

void clients_destroy(clients_t **self_p)
{
    if (!self_p || !*self_p) return;
    clients_t *t = *self_p;
    for (size_t i = 0; i < BUCKETS; i++)
        while (t->bucket[i]) {
            client_t *c = t->bucket[i];
            t->bucket[i] = c->next;
            free(c);
        }
    free(t);
    *self_p = NULL;
}

client_t *clients_get(clients_t *t, const void *route, size_t len)
{
    if (len > ROUTE_MAX) return NULL;
    size_t h = s_hash(route, len);
    for (client_t *c = t->bucket[h]; c; c = c->next)
        if (c->route_len == len && memcmp(c->route, route, len) == 0) return c;
    client_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    memcpy(c->route, route, len);
    c->route_len = len;
    atomic_init(&c->unsent, 0);
    c->next = t->bucket[h];
    t->bucket[h] = c;
    t->count++;
    return c;
}

int clients_may_send(const clients_t *t, const client_t *c, cairn_err_t *err)
{
    uint64_t unsent = atomic_load(&c->unsent);
    if (unsent <= t->lim.per_client) return 0;
    return cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                         "this connection has %.1f MiB of replies it has not read "
                         "(kernel.max_client_bytes is %.1f MiB); read them first",
                         unsent / MIB, t->lim.per_client / MIB);
}

int clients_queue(clients_t *t, client_t *c, size_t n, cairn_err_t *err)
{
    if (c->queued + atomic_load(&c->unsent) + n > t->lim.per_client)
        return cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                             "this connection already has %.1f MiB queued or unread "
                             "(kernel.max_client_bytes is %.1f MiB); retry later",
                             (c->queued + atomic_load(&c->unsent)) / MIB,
                             t->lim.per_client / MIB);
    if (t->queued + n > t->lim.queued)
        return cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                             "the kernel holds %.1f MiB of queued requests "
                             "(kernel.max_queue_bytes is %.1f MiB); retry later",
                             t->queued / MIB, t->lim.queued / MIB);
    c->queued += n;
    t->queued += n;
    return 0;
}

void clients_unqueue(clients_t *t, client_t *c, size_t n)
{
    c->queued -= n < c->queued ? n : c->queued;
    t->queued -= n < t->queued ? n : t->queued;
}

/* libzmq is done with a tracked reply (written, or dropped). The client's
 * counter is the last thing touched: once it reads zero the broker may
 * free the entry. */
static void s_written(void *data, void *hint)
{
    (void)data;
    tracked_t *m = hint;
    clients_t *t = m->t;
    client_t *c = m->c;
    size_t n = m->n;
    zmq_msg_close(&m->held);
    free(m);
    atomic_fetch_sub(&t->unsent, n);
    atomic_fetch_sub(&c->unsent, n);
}

int clients_track_reply(clients_t *t, client_t *c, zmq_msg_t *body, cairn_err_t *err)
{
    size_t n = zmq_msg_size(body);
    if (n < CLIENTS_TRACK_MIN) return 0;
    uint64_t mine = atomic_load(&c->unsent), all = atomic_load(&t->unsent);
    int rc = 0;
    if (mine + c->queued + n > t->lim.per_client && mine > 0)
        rc = cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                           "the reply (%.1f MiB) was dropped: this connection has "
                           "%.1f MiB of replies it has not read (kernel.max_client_"
                           "bytes is %.1f MiB)",
                           n / MIB, mine / MIB, t->lim.per_client / MIB);
    else if (all + n > t->lim.unsent && mine > 0)
        rc = cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                           "the reply (%.1f MiB) was dropped: clients hold %.1f MiB of "
                           "unread replies (kernel.max_unsent_bytes is %.1f MiB)",
                           n / MIB, all / MIB, t->lim.unsent / MIB);
    tracked_t *m = rc ? NULL : malloc(sizeof *m);
    if (!rc && !m)
        rc = cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                           "out of memory for a %zu-byte reply", n);
    if (rc) {
        zmq_msg_close(body);
        zmq_msg_init(body);
        return -1;
    }
    m->t = t;
    m->c = c;
    m->n = n;
    /* The reply's bytes stay where they are (a 4 MiB artifact chunk is not
     * copied on this thread); the message sent is a view of them whose free
     * callback releases the original. n >= CLIENTS_TRACK_MIN, so the data
     * is never inside the zmq_msg_t itself, which moves here. */
    zmq_msg_init(&m->held);
    zmq_msg_move(&m->held, body);
    if (zmq_msg_init_data(body, zmq_msg_data(&m->held), n, s_written, m) != 0) {
        zmq_msg_close(&m->held);
        free(m);
        zmq_msg_init(body);
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                             "out of memory for a %zu-byte reply", n);
    }
    atomic_fetch_add(&t->unsent, n);
    atomic_fetch_add(&c->unsent, n);
    return 0;
}

void clients_sweep(clients_t *t)
{
    for (size_t i = 0; i < BUCKETS; i++)
        for (client_t **pp = &t->bucket[i]; *pp;) {
            client_t *c = *pp;
            if (c->queued == 0 && atomic_load(&c->unsent) == 0) {
                *pp = c->next;
                free(c);
                t->count--;
            } else {
                pp = &c->next;
            }
        }
}

uint64_t clients_unsent_total(const clients_t *t)
{
    return atomic_load(&t->unsent);
}

uint64_t clients_queued_total(const clients_t *t)
{
    return t->queued;
}

size_t clients_count(const clients_t *t)
{
    return t->count;
}
