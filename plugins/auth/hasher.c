/* Password hashing off the loop thread. Argon2id costs tens to hundreds of
 * milliseconds of CPU by design; run on the plugin's loop it would hold up
 * every other request (token resolves included) for that long. One worker
 * thread takes jobs from a queue and puts them, done, on a second list; a
 * short repeating timer on the loop thread, armed only while jobs are in
 * flight, collects them and runs their continuations there, so that every
 * reply and every database access stays on the loop thread (the runtime's
 * API is not thread-safe). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define POLL_MS 2

struct hasher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hash_job_t *queue, **queue_tail; /* waiting, oldest first */
    hash_job_t *done;                /* finished, any order */
    size_t queued;
    bool stop;
    unsigned long long ops;
    size_t mem;
};

hash_job_t *hash_job_new(int op, const char *password, size_t len)
{
    hash_job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->op = op;
    j->password = malloc(len + 1);
    if (!j->password) {
        free(j);
        return NULL;
    }
    memcpy(j->password, password, len);
    j->password[len] = '\0';
    j->password_len = len;
    return j;
}

static void s_wipe(char **p, size_t len)
{
    if (*p) sodium_memzero(*p, len);
    free(*p);
    *p = NULL;
}

void hash_job_free(hash_job_t *job)
{
    if (!job) return;
    s_wipe(&job->password, job->password_len);
    s_wipe(&job->next_password, job->next_password_len);
    free(job);
}

static void s_run(hasher_t *h, hash_job_t *j)
{
    if (j->op == HASH_MAKE)
        j->rc =
            crypto_pwhash_str(j->stored, j->password, j->password_len, h->ops, h->mem);
    else
        j->rc = crypto_pwhash_str_verify(j->stored, j->password, j->password_len);
}

static void *s_main(void *arg)
{
    hasher_t *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->queue && !h->stop) pthread_cond_wait(&h->cv, &h->mu);
        if (h->stop) break;
        hash_job_t *j = h->queue;
        h->queue = j->next;
        if (!h->queue) h->queue_tail = &h->queue;
        h->queued--;
        pthread_mutex_unlock(&h->mu);
        s_run(h, j);
        pthread_mutex_lock(&h->mu);
        j->next = h->done;
        h->done = j;
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

hasher_t *hasher_start(uint64_t ops, size_t mem, cairn_err_t *err)
{
    hasher_t *h = calloc(1, sizeof *h);
    if (!h) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    h->queue_tail = &h->queue;
    h->ops = ops;
    h->mem = mem;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(&h->thread, NULL, s_main, h) != 0) {
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        free(h);
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INIT_FAILED,
                      "cannot start the password-hashing thread");
        return NULL;
    }
    return h;
}

static void s_free_list(hash_job_t *j)
{
    while (j) {
        hash_job_t *next = j->next;
        hash_job_free(j);
        j = next;
    }
}

/* Jobs left unanswered here belong to requests the runtime drops as it
 * stops. */
void hasher_stop(hasher_t **self_p)
{
    hasher_t *h = *self_p;
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    s_free_list(h->queue);
    s_free_list(h->done);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    *self_p = NULL;
}

/* The loop thread's side: run the continuations of finished jobs, and
 * disarm once nothing is in flight. */
static void s_collect(void *arg)
{
    auth_t *a = arg;
    hasher_t *h = a->hasher;
    pthread_mutex_lock(&h->mu);
    hash_job_t *done = h->done;
    h->done = NULL;
    pthread_mutex_unlock(&h->mu);
    while (done) {
        hash_job_t *j = done;
        done = j->next;
        j->next = NULL;
        a->in_flight--;
        j->done(a, j); /* may queue a follow-up job (change_password) */
        hash_job_free(j);
    }
    if (a->in_flight == 0 && a->poll_timer) {
        cairn_timer_cancel(a->ctx, a->poll_timer);
        a->poll_timer = 0;
    }
}

int auth_hash(auth_t *a, hash_job_t *job, cairn_err_t *err)
{
    hasher_t *h = a->hasher;
    if (!a->poll_timer &&
        !(a->poll_timer = cairn_timer_add(a->ctx, POLL_MS, POLL_MS, s_collect, a)))
        return cairn_err_oom(err, "arm the password-hashing timer");
    pthread_mutex_lock(&h->mu);
    bool full = h->queued >= (size_t)a->set->hash_queue;
    if (!full) {
        job->next = NULL;
        *h->queue_tail = job;
        h->queue_tail = &job->next;
        h->queued++;
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    if (full)
        return cairn_err_set(err, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED,
                             "too many password checks are waiting; try again shortly");
    a->in_flight++;
    cairn_defer(job->req);
    return 0;
}
