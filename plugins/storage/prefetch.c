/* Read ahead for downloads (prefetch.h): one thread, PREFETCH_SLOTS slots,
 * one mutex. A slot is FREE, QUEUED (its read not started), READING (the
 * thread reads into it, unlocked), or READY (done: ok or failed). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prefetch.h"

typedef enum { P_FREE, P_QUEUED, P_READING, P_READY } pstate_t;

typedef struct slot {
    pstate_t st;
    const void *key;
    int fd; /* owned while QUEUED or READING */
    uint64_t off;
    size_t len;
    bool ok;
    unsigned char *buf; /* max bytes, allocated at first use */
    uint64_t stamp;     /* when started: the oldest is reused first */
} slot_t;

struct prefetch {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t thread;
    bool stop;
    size_t max;
    uint64_t clock;
    slot_t slot[PREFETCH_SLOTS];
};

/* Read all of s's range (unlocked: the slot is READING, no one else
 * touches it). */
static bool s_read(slot_t *s)
{
    size_t got = 0;
    while (got < s->len) {
        ssize_t r = pread(s->fd, s->buf + got, s->len - got, (off_t)(s->off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += (size_t)r;
    }
    return true;
}

static slot_t *s_queued(prefetch_t *p)
{
    for (int i = 0; i < PREFETCH_SLOTS; i++)
        if (p->slot[i].st == P_QUEUED) return &p->slot[i];
    return NULL;
}

static void *s_run(void *arg)
{
    prefetch_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        slot_t *s;
        while (!p->stop && !(s = s_queued(p))) pthread_cond_wait(&p->work, &p->mu);
        if (p->stop) break;
        s->st = P_READING;
        pthread_mutex_unlock(&p->mu);
        bool ok = s_read(s);
        pthread_mutex_lock(&p->mu);
        close(s->fd);
        s->fd = -1;
        s->ok = ok;
        s->st = P_READY;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

prefetch_t *prefetch_new(size_t max, cairn_err_t *err)
{
    prefetch_t *p = calloc(1, sizeof *p);
    if (!p) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    p->max = max;
    for (int i = 0; i < PREFETCH_SLOTS; i++) p->slot[i].fd = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    int rc = pthread_create(&p->thread, NULL, s_run, p);
    if (rc != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->done);
        free(p);
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                      "the download read-ahead thread did not start: %s", strerror(rc));
        return NULL;
    }
    return p;
}

void prefetch_destroy(prefetch_t **self_p)
{
    prefetch_t *p = *self_p;
    if (!p) return;
    *self_p = NULL;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < PREFETCH_SLOTS; i++) {
        if (p->slot[i].fd >= 0) close(p->slot[i].fd);
        free(p->slot[i].buf);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p);
}

/* The slot for key (p->mu held): its own, a free one, or the oldest that
 * is not being read; NULL when key's own is being read (it goes on). */
static slot_t *s_pick(prefetch_t *p, const void *key)
{
    slot_t *free_slot = NULL, *oldest = NULL;
    for (int i = 0; i < PREFETCH_SLOTS; i++) {
        slot_t *s = &p->slot[i];
        if (s->st != P_FREE && s->key == key) return s->st == P_READING ? NULL : s;
        if (s->st == P_FREE) {
            if (!free_slot) free_slot = s;
        } else if (s->st != P_READING && (!oldest || s->stamp < oldest->stamp)) {
            oldest = s;
        }
    }
    return free_slot ? free_slot : oldest;
}

void prefetch_start(prefetch_t *p, const void *key, int fd, uint64_t off, size_t len)
{
    if (!len || len > p->max) return;
    pthread_mutex_lock(&p->mu);
    slot_t *s = s_pick(p, key);
    if (s && !s->buf) s->buf = malloc(p->max);
    int dup_fd = s && s->buf ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (dup_fd >= 0) {
        if (s->fd >= 0) close(s->fd); /* a queued read given up */
        *s = (slot_t){.st = P_QUEUED,
                      .key = key,
                      .fd = dup_fd,
                      .off = off,
                      .len = len,
                      .buf = s->buf,
                      .stamp = ++p->clock};
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
}

bool prefetch_take(prefetch_t *p, const void *key, uint64_t off, size_t len, void *dst)
{
    bool took = false;
    pthread_mutex_lock(&p->mu);
    slot_t *s = NULL;
    for (int i = 0; i < PREFETCH_SLOTS && !s; i++)
        if (p->slot[i].st != P_FREE && p->slot[i].key == key) s = &p->slot[i];
    if (s && s->off == off && s->len == len) {
        while (s->st != P_READY) pthread_cond_wait(&p->done, &p->mu);
        if (s->ok) {
            memcpy(dst, s->buf, len);
            took = true;
        }
    }
    if (s && s->st == P_READY) s->st = P_FREE; /* used, or not what was asked */
    pthread_mutex_unlock(&p->mu);
    return took;
}
