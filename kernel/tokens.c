/* Requests waiting for their token (see tokens.h). */
#include "tokens.h"

#include "metrics.h"

#include <stdlib.h>
#include <string.h>

typedef struct lookup {
    uint64_t id;
    unsigned char key[AUTHZ_KEY_BYTES];
    parked_t *head, *tail;
    struct lookup *next;
} lookup_t;

struct tokens {
    lookup_t *lookups; /* in flight: few (one per new token) */
    uint64_t next_id;
    size_t nparked;
};

tokens_t *tokens_new(void)
{
    return calloc(1, sizeof(tokens_t));
}

void parked_free(parked_t *p)
{
    if (!p) return;
    zmq_msg_close(&p->route);
    zmq_msg_close(&p->hdr);
    zmq_msg_close(&p->body);
    free(p);
}

static void s_free_list(parked_t *p)
{
    while (p) {
        parked_t *next = p->next;
        parked_free(p);
        p = next;
    }
}

void tokens_destroy(tokens_t **self_p)
{
    if (!self_p || !*self_p) return;
    tokens_t *t = *self_p;
    while (t->lookups) {
        lookup_t *l = t->lookups;
        t->lookups = l->next;
        s_free_list(l->head);
        free(l);
    }
    free(t);
    *self_p = NULL;
}

int tokens_park(tokens_t *self, const unsigned char key[AUTHZ_KEY_BYTES],
                zmq_msg_t *route, zmq_msg_t *hdr, zmq_msg_t *body, uint64_t *id,
                cairn_err_t *err)
{
    if (self->nparked >= TOKENS_PARKED_MAX)
        return cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                             "%d requests already wait for their token to be "
                             "checked; retry later",
                             TOKENS_PARKED_MAX);
    lookup_t *l = self->lookups;
    while (l && memcmp(l->key, key, AUTHZ_KEY_BYTES) != 0) l = l->next;
    bool first = !l;
    parked_t *p = calloc(1, sizeof *p);
    if (first && p && !(l = calloc(1, sizeof *l))) {
        free(p);
        p = NULL;
    }
    if (!p) return cairn_err_oom(err, "parking a request");
    if (first) {
        l->id = ++self->next_id;
        memcpy(l->key, key, AUTHZ_KEY_BYTES);
        l->next = self->lookups;
        self->lookups = l;
    }
    zmq_msg_init(&p->route);
    zmq_msg_init(&p->hdr);
    zmq_msg_init(&p->body);
    zmq_msg_move(&p->route, route);
    zmq_msg_move(&p->hdr, hdr);
    zmq_msg_move(&p->body, body);
    p->t0_us = metrics_now_us();
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    self->nparked++;
    *id = l->id;
    return first ? 1 : 0;
}

parked_t *tokens_take(tokens_t *self, uint64_t id, unsigned char key[AUTHZ_KEY_BYTES])
{
    for (lookup_t **pl = &self->lookups; *pl; pl = &(*pl)->next) {
        lookup_t *l = *pl;
        if (l->id != id) continue;
        *pl = l->next;
        memcpy(key, l->key, AUTHZ_KEY_BYTES);
        parked_t *head = l->head;
        for (parked_t *p = head; p; p = p->next) self->nparked--;
        free(l);
        return head;
    }
    return NULL;
}

size_t tokens_parked(const tokens_t *self)
{
    return self->nparked;
}
