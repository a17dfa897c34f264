/* Unit tests for kernel/clients.c: per-client byte accounting. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "clients.h"
#include "unit.h"

#define MIB (1024u * 1024u)

static clients_t *s_table(uint64_t per_client, uint64_t queued, uint64_t unsent)
{
    clients_limits_t lim = {
        .per_client = per_client, .queued = queued, .unsent = unsent};
    return clients_new(&lim);
}

static void s_msg(zmq_msg_t *m, size_t n)
{
    zmq_msg_init_size(m, n);
    memset(zmq_msg_data(m), 'r', n);
}

TEST(one_entry_per_route)
{
    clients_t *t = s_table(MIB, MIB, MIB);
    client_t *a = clients_get(t, "\0A", 2), *b = clients_get(t, "\0B", 2);
    CHECK(a && b && a != b);
    CHECK(clients_get(t, "\0A", 2) == a);
    CHECK_EQ(clients_count(t), 2);
    clients_sweep(t); /* they hold nothing: gone */
    CHECK_EQ(clients_count(t), 0);
    char big[300] = {0};
    CHECK(clients_get(t, big, sizeof big) == NULL); /* past a routing id's size */
    clients_destroy(&t);
    CHECK(t == NULL);
    clients_destroy(&t); /* safe twice */
}

TEST(queue_limits_per_client_and_total)
{
    clients_t *t = s_table(4 * MIB, 6 * MIB, 64 * MIB);
    client_t *a = clients_get(t, "a", 1), *b = clients_get(t, "b", 1);
    cairn_err_t e = {0};
    CHECK_EQ(clients_queue(t, a, 3 * MIB, &e), 0);
    CHECK_EQ(clients_queue(t, a, 2 * MIB, &e), -1); /* a's share is 4 MiB */
    CHECK_EQ(e.st, 429);
    CHECK(strstr(e.msg, "max_client_bytes") != NULL);
    CHECK_EQ(clients_queue(t, b, 3 * MIB, &e), 0);
    CHECK_EQ(clients_queue(t, b, 1, &e), -1); /* the total is 6 MiB */
    CHECK(strstr(e.msg, "max_queue_bytes") != NULL);
    CHECK_EQ(clients_queued_total(t), 6 * MIB);
    clients_sweep(t); /* entries holding bytes stay */
    CHECK_EQ(clients_count(t), 2);
    clients_unqueue(t, a, 3 * MIB);
    clients_unqueue(t, b, 3 * MIB);
    CHECK_EQ(clients_queued_total(t), 0);
    clients_sweep(t);
    CHECK_EQ(clients_count(t), 0);
    clients_destroy(&t);
}

TEST(tracked_replies_are_given_back_when_written)
{
    clients_t *t = s_table(2 * MIB, 64 * MIB, 64 * MIB);
    client_t *a = clients_get(t, "a", 1);
    cairn_err_t e = {0};
    zmq_msg_t small, big[3];
    s_msg(&small, CLIENTS_TRACK_MIN - 1);
    CHECK_EQ(clients_track_reply(t, a, &small, &e), 0); /* small: untracked */
    CHECK_EQ(clients_unsent_total(t), 0);
    zmq_msg_close(&small);
    for (int i = 0; i < 3; i++) s_msg(&big[i], MIB);
    CHECK_EQ(clients_track_reply(t, a, &big[0], &e), 0);
    CHECK_EQ(clients_track_reply(t, a, &big[1], &e), 0);
    CHECK_EQ(clients_unsent_total(t), 2 * MIB);
    CHECK(*(char *)zmq_msg_data(&big[1]) == 'r');         /* the bytes were kept */
    CHECK_EQ(clients_may_send(t, a, &e), 0);              /* at its share, not past */
    CHECK_EQ(clients_track_reply(t, a, &big[2], &e), -1); /* past: dropped */
    CHECK_EQ(e.st, 429);
    CHECK_EQ(zmq_msg_size(&big[2]), 0);
    zmq_msg_close(&big[2]);
    zmq_msg_close(&big[0]); /* what libzmq does once it has written one */
    CHECK_EQ(clients_unsent_total(t), MIB);
    zmq_msg_close(&big[1]);
    CHECK_EQ(clients_unsent_total(t), 0);
    /* One reply larger than the whole share still goes to a client that has
     * nothing unread. */
    zmq_msg_t huge;
    s_msg(&huge, 3 * MIB);
    CHECK_EQ(clients_track_reply(t, a, &huge, &e), 0);
    uint64_t before = clients_unsent_total(t);
    CHECK_EQ(before, 3 * MIB);
    CHECK_EQ(clients_may_send(t, a, &e), -1); /* it must read it first */
    zmq_msg_close(&huge);
    CHECK_EQ(clients_may_send(t, a, &e), 0);
    clients_destroy(&t);
}

TEST(total_unsent_limit)
{
    clients_t *t = s_table(64 * MIB, 64 * MIB, 3 * MIB);
    cairn_err_t e = {0};
    client_t *c[4];
    zmq_msg_t m[4];
    for (int i = 0; i < 4; i++) {
        char r = (char)('a' + i);
        c[i] = clients_get(t, &r, 1);
        s_msg(&m[i], 2 * MIB);
    }
    CHECK_EQ(clients_track_reply(t, c[0], &m[0], &e), 0);
    CHECK_EQ(clients_track_reply(t, c[1], &m[1], &e), 0); /* nothing unread yet */
    zmq_msg_t more;
    s_msg(&more, 2 * MIB);
    CHECK_EQ(clients_track_reply(t, c[0], &more, &e), -1); /* c0 has unread bytes */
    CHECK(strstr(e.msg, "max_unsent_bytes") != NULL);
    zmq_msg_close(&more);
    for (int i = 0; i < 2; i++) zmq_msg_close(&m[i]);
    for (int i = 2; i < 4; i++) zmq_msg_close(&m[i]);
    CHECK_EQ(clients_unsent_total(t), 0);
    clients_destroy(&t);
}

int main(void)
{
    RUN(one_entry_per_route);
    RUN(queue_limits_per_client_and_total);
    RUN(tracked_replies_are_given_back_when_written);
    RUN(total_unsent_limit);
    return unit_report();
}
