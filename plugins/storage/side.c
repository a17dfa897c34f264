/* A second, read-only connection on a thread of its own (side.h). */
#include "side.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct side {
    sqlite3 *h;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, stop, busy, done;
    side_fn *fn;
    void *arg;
    int rc;
    cairn_err_t err;
};

static void *s_main(void *p)
{
    side_t *s = p;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && !(s->busy && !s->done)) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) break;
        side_fn *fn = s->fn;
        void *arg = s->arg;
        pthread_mutex_unlock(&s->mu);
        cairn_err_t err = {0};
        int rc = fn(s->h, arg, &err);
        pthread_mutex_lock(&s->mu);
        s->rc = rc;
        s->err = err;
        s->done = true;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int s_fail(side_t *s, const char *what, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                         "the tracking database's second reader failed to %s: %s", what,
                         s->h ? sqlite3_errmsg(s->h) : "out of memory");
}

side_t *side_open(const char *path, ridsets_t *rs, cairn_err_t *err)
{
    side_t *s = calloc(1, sizeof *s);
    if (!s) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc =
        sqlite3_open_v2(path, &s->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        s_fail(s, "open", err);
    } else if (sqlite3_busy_timeout(s->h, 10000),
               sqlite3_exec(
                   s->h,
                   /* as the plugin's connection reads: LIKE is case
                    * sensitive there too */
                   "PRAGMA case_sensitive_like = ON; PRAGMA cache_size = -65536; "
                   "PRAGMA temp_store = MEMORY",
                   NULL, NULL, NULL) != SQLITE_OK) {
        s_fail(s, "configure", err);
    } else if (ridsets_register(rs, s->h, err) == 0) {
        if (pthread_create(&s->thread, NULL, s_main, s) == 0) {
            s->started = true;
            return s;
        }
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                      "cannot start the tracking database's second reader");
    }
    side_close(&s);
    return NULL;
}

void side_close(side_t **self_p)
{
    side_t *s = *self_p;
    if (!s) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    sqlite3_close(s->h);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *self_p = NULL;
}

void side_run(side_t *s, side_fn *fn, void *arg)
{
    pthread_mutex_lock(&s->mu);
    s->fn = fn;
    s->arg = arg;
    s->busy = true;
    s->done = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int side_wait(side_t *s, cairn_err_t *err)
{
    pthread_mutex_lock(&s->mu);
    while (!s->done) pthread_cond_wait(&s->cv, &s->mu);
    s->busy = false;
    int rc = s->rc;
    if (rc != 0 && err) *err = s->err;
    pthread_mutex_unlock(&s->mu);
    return rc;
}
