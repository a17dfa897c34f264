/* Noticing a job's start and end as they happen (compute.h). The shims
 * write their pid file and exit record by renaming them into the job's
 * directory; an inotify watch on each started job's directory reports
 * those renames, and a short timer reads the events without blocking and
 * looks at the jobs at once. The timer runs only for FAST_FOR_MS after a
 * start or an event (a burst of short jobs stays fast; a ten-hour job
 * costs no wake-ups): past that, the 250 ms tick reads the events. The
 * tick stays the fallback and the only way a dead supervisor is found (no
 * file is written then); without inotify, the tick alone keeps everything
 * correct, only slower. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "compute.h"

#define FAST_MS 2
#define FAST_FOR_MS 2000

struct notify {
    int fd; /* -1: no inotify */
    uint64_t timer, fast_until;
    struct watched {
        int wd;
        int64_t seq;
    } * w;
    size_t n, cap;
};

notify_t *notify_open(void)
{
    notify_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    return n;
}

void notify_close(notify_t **self_p, cairn_ctx_t *ctx)
{
    notify_t *n = *self_p;
    if (!n) return;
    if (n->timer) cairn_timer_cancel(ctx, n->timer);
    if (n->fd >= 0) close(n->fd);
    free(n->w);
    free(n);
    *self_p = NULL;
}

void notify_watch(notify_t *n, const char *dir, int64_t seq)
{
    if (!n || n->fd < 0) return;
    for (size_t i = 0; i < n->n; i++)
        if (n->w[i].seq == seq) return;
    int wd = inotify_add_watch(n->fd, dir, IN_MOVED_TO | IN_ONLYDIR);
    if (wd < 0) return; /* the tick still sees it */
    if (n->n == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 16;
        struct watched *w = realloc(n->w, cap * sizeof *w);
        if (!w) {
            inotify_rm_watch(n->fd, wd);
            return;
        }
        n->w = w;
        n->cap = cap;
    }
    n->w[n->n++] = (struct watched){wd, seq};
}

void notify_forget(notify_t *n, int64_t seq)
{
    if (!n || n->fd < 0) return;
    for (size_t i = 0; i < n->n; i++)
        if (n->w[i].seq == seq) {
            inotify_rm_watch(n->fd, n->w[i].wd);
            n->w[i] = n->w[--n->n];
            return;
        }
}

/* Whether any watched directory got a file since the last call. */
static bool s_drain(notify_t *n)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    for (;;) {
        ssize_t got = read(n->fd, buf, sizeof buf);
        if (got <= 0) return any; /* EAGAIN: nothing more */
        any = true;
    }
}

static void s_stop_fast(compute_t *c)
{
    cairn_timer_cancel(c->ctx, c->notify->timer);
    c->notify->timer = 0;
}

static void s_fast(void *arg)
{
    compute_t *c = arg;
    notify_t *n = c->notify;
    if (s_drain(n)) {
        n->fast_until = cairn_now_ms() + FAST_FOR_MS;
        jobs_watch(c);
    } else if (cairn_now_ms() > n->fast_until) {
        s_stop_fast(c);
    }
}

void notify_started(compute_t *c)
{
    notify_t *n = c->notify;
    if (!n || n->fd < 0) return;
    n->fast_until = cairn_now_ms() + FAST_FOR_MS;
    if (!n->timer) n->timer = cairn_timer_add(c->ctx, FAST_MS, FAST_MS, s_fast, c);
}

bool notify_pending(compute_t *c)
{
    return c->notify && c->notify->fd >= 0 && s_drain(c->notify);
}
