/* What the HTTP threads read (scorer.h): an immutable snapshot of every
 * endpoint, its keys and its deployments with their loaded models and
 * traffic. The loop thread builds a new one after each change and swaps
 * it in under the lock; a request takes a reference to the snapshot of
 * the moment and gives it back when answered, so a swap never changes
 * anything under a request in flight. Models are loaded once per folder
 * and shared by the snapshots that use them; the last to let go frees. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scorer.h"

struct model_entry {
    struct model_entry *next;
    char *key; /* a model's folder; a pool's: "py" and what makes it */
    scorer_model_t *model;
    const char **names; /* scorer_model_feature_name's, NULL-free; NULL: none */
    py_pool_t *pool;    /* or a python deployment's workers */
    int refs;           /* snapshots holding it; under sc->lock */
};

/* Its features' names as one array, when it has them all. */
static const char **s_names(const scorer_model_t *m)
{
    size_t n = scorer_model_features(m);
    if (n == 0 || !scorer_model_feature_name(m, 0)) return NULL;
    const char **v = calloc(n, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        if (!(v[i] = scorer_model_feature_name(m, i))) {
            free(v);
            return NULL;
        }
    return v;
}

/* The snapshot's owner, to let go of its models. */
typedef struct routes_owned {
    routes_t r; /* first */
    scorer_t *sc;
    model_entry_t **held;  /* one per deployment */
    dep_stats_t **counted; /* one per deployment */
    int nheld;
} routes_owned_t;

int stats_bucket(uint64_t us)
{
    if (us < 1) return 0;
    int log2 = 63 - __builtin_clzll(us);
    /* four buckets per power of two: the two bits below the top one */
    int sub = log2 >= 2 ? (int)((us >> (log2 - 2)) & 3) : (int)((us << (2 - log2)) & 3);
    int b = 1 + log2 * 4 + sub;
    return b < STATS_BUCKETS ? b : STATS_BUCKETS - 1;
}

double stats_bucket_top_ms(int b)
{
    if (b <= 0) return 0.001;
    int log2 = (b - 1) / 4, sub = (b - 1) % 4;
    return (double)(1ull << log2) * (1.0 + (sub + 1) / 4.0) / 1000.0;
}

/* The counters of endpoint/name: found, or made; counted for a snapshot. */
static dep_stats_t *s_stats(scorer_t *sc, const char *endpoint, const char *name)
{
    pthread_mutex_lock(&sc->lock);
    dep_stats_t *t = sc->stats;
    while (t && (strcmp(t->endpoint, endpoint) || strcmp(t->name, name))) t = t->next;
    if (!t && (t = calloc(1, sizeof *t))) {
        snprintf(t->endpoint, sizeof t->endpoint, "%s", endpoint);
        snprintf(t->name, sizeof t->name, "%s", name);
        t->next = sc->stats;
        sc->stats = t;
    }
    if (t) t->refs++;
    pthread_mutex_unlock(&sc->lock);
    return t;
}

/* Let go of t (sc->lock held): a deployment gone from every snapshot
 * takes its counters with it. */
static void s_stats_put(scorer_t *sc, dep_stats_t *t)
{
    if (--t->refs > 0) return;
    for (dep_stats_t **p = &sc->stats; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    free(t);
}

static py_pool_t *s_model_put(scorer_t *sc, model_entry_t *e);

/* The cached entry of key, counted; NULL when none. */
static model_entry_t *s_cached(scorer_t *sc, const char *key)
{
    pthread_mutex_lock(&sc->lock);
    model_entry_t *e = sc->models;
    while (e && strcmp(e->key, key)) e = e->next;
    if (e) e->refs++;
    pthread_mutex_unlock(&sc->lock);
    return e;
}

static model_entry_t *s_entry_new(scorer_t *sc, const char *key, cairn_err_t *err)
{
    (void)sc;
    model_entry_t *e = calloc(1, sizeof *e);
    if (e && !(e->key = strdup(key))) {
        free(e);
        e = NULL;
    }
    if (!e) cairn_err_oom(err, NULL);
    if (e) e->refs = 1;
    return e;
}

static void s_entry_add(scorer_t *sc, model_entry_t *e)
{
    pthread_mutex_lock(&sc->lock);
    e->next = sc->models;
    sc->models = e;
    pthread_mutex_unlock(&sc->lock);
}

/* The loaded model of path: from the cache, or loaded now (on the loop
 * thread) and cached; counted for the snapshot being built. */
static model_entry_t *s_model(scorer_t *sc, const char *path, cairn_err_t *err)
{
    model_entry_t *e = s_cached(sc, path);
    if (e) return e;
    scorer_model_t *m = NULL;
    if (scorer_model_load(path, &m, err) != 0) return NULL;
    if (!(e = s_entry_new(sc, path, err))) {
        scorer_model_destroy(&m);
        return NULL;
    }
    e->model = m;
    e->names = s_names(m);
    s_entry_add(sc, e);
    return e;
}

/* What makes a python deployment's pool: a change of any starts another. */
static char *s_pool_key(const dep_row_t *d)
{
    char *key = NULL;
    if (asprintf(&key, "py\n%s\n%s\n%s\n%lld", d->code, d->script, d->path,
                 (long long)d->instance_count) < 0)
        return NULL;
    return key;
}

model_entry_t *routes_pool_hold(scorer_t *sc, const dep_row_t *d, cairn_err_t *err)
{
    char *key = s_pool_key(d);
    if (!key) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    model_entry_t *e = s_cached(sc, key);
    if (!e && (e = s_entry_new(sc, key, err))) {
        char log[PATH_MAX + 2 * EP_NAME_MAX + 8];
        snprintf(log, sizeof log, "%s/%s.%s.log", sc->logs, d->endpoint, d->name);
        py_pool_opts_t o = {.python = sc->python,
                            .driver = sc->driver,
                            .code_dir = d->code,
                            .script = d->script,
                            .model_dir = d->path,
                            .log_path = log,
                            .instances = (int)d->instance_count,
                            .init_timeout_ms = sc->init_timeout_ms};
        if (!(e->pool = py_pool_start(&o, err))) {
            free(e->key);
            free(e);
            e = NULL;
        } else {
            s_entry_add(sc, e);
        }
    }
    free(key);
    return e;
}

model_entry_t *routes_pool_find(scorer_t *sc, const dep_row_t *d, cairn_err_t *err)
{
    char *key = s_pool_key(d);
    if (!key) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    model_entry_t *e = s_cached(sc, key);
    free(key);
    return e;
}

py_pool_t *routes_entry_pool(model_entry_t *e)
{
    return e->pool;
}

void routes_entry_put(scorer_t *sc, model_entry_t *e)
{
    pthread_mutex_lock(&sc->lock);
    py_pool_t *stop = s_model_put(sc, e);
    pthread_mutex_unlock(&sc->lock);
    py_pool_stop(&stop);
}

/* Let go of e (sc->lock held). The last to let go of a pool gets it
 * back, to stop once the lock is released (stopping waits for workers). */
static py_pool_t *s_model_put(scorer_t *sc, model_entry_t *e)
{
    if (--e->refs > 0) return NULL;
    for (model_entry_t **p = &sc->models; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    py_pool_t *pool = e->pool;
    scorer_model_destroy(&e->model);
    free(e->names);
    free(e->key);
    free(e);
    return pool;
}

static void s_free(routes_owned_t *o)
{
    /* pools are stopped after the lock is let go: that waits for processes */
    py_pool_t **stop = o->nheld ? calloc((size_t)o->nheld, sizeof *stop) : NULL;
    int nstop = 0;
    pthread_mutex_lock(&o->sc->lock);
    for (int i = 0; i < o->nheld; i++) {
        py_pool_t *p = s_model_put(o->sc, o->held[i]);
        if (p && stop)
            stop[nstop++] = p;
        else if (p) /* no memory for the list: stopped here */
            py_pool_stop(&p);
        if (o->counted[i]) s_stats_put(o->sc, o->counted[i]);
    }
    pthread_mutex_unlock(&o->sc->lock);
    for (int i = 0; i < nstop; i++) py_pool_stop(&stop[i]);
    free(stop);
    free(o->held);
    free(o->counted);
    free(o->r.ep);
    free(o);
}

typedef struct build {
    scorer_t *sc;
    routes_owned_t *o;
    int cap;
    cairn_err_t *err;
    bool failed;
} build_t;

static int s_add_dep(void *arg, const dep_row_t *d)
{
    build_t *b = arg;
    route_ep_t *e = &b->o->r.ep[b->o->r.nep - 1];
    if (e->ndep == EP_DEPLOYMENTS_MAX) return 0;
    model_entry_t *m = d->script[0] ? routes_pool_hold(b->sc, d, b->err)
                                    : s_model(b->sc, d->path, b->err);
    if (!m) {
        /* a model that no longer loads leaves its deployment out, said once */
        cairn_log(b->sc->ctx, CAIRN_LOG_WARN,
                  "endpoint %s: deployment %s takes no traffic: %s", d->endpoint,
                  d->name, b->err->msg);
        *b->err = (cairn_err_t){0};
        return 0;
    }
    b->o->counted[b->o->nheld] = s_stats(b->sc, d->endpoint, d->name);
    b->o->held[b->o->nheld++] = m;
    route_dep_t *r = &e->dep[e->ndep++];
    r->stats = b->o->counted[b->o->nheld - 1];
    snprintf(r->name, sizeof r->name, "%s", d->name);
    r->model = m->model;
    r->names = m->names;
    r->pool = m->pool;
    r->timeout_ms = d->timeout_ms;
    r->max_concurrent = d->max_concurrent;
    r->traffic = d->traffic;
    r->mirror = d->mirror;
    e->traffic_total += d->traffic;
    return 0;
}

static int s_add_ep(void *arg, const ep_row_t *row)
{
    build_t *b = arg;
    routes_owned_t *o = b->o;
    if (o->r.nep == b->cap) {
        int cap = b->cap ? b->cap * 2 : 16;
        route_ep_t *ep = realloc(o->r.ep, (size_t)cap * sizeof *ep);
        model_entry_t **held =
            realloc(o->held, (size_t)cap * EP_DEPLOYMENTS_MAX * sizeof *held);
        if (held) o->held = held;
        dep_stats_t **counted =
            realloc(o->counted, (size_t)cap * EP_DEPLOYMENTS_MAX * sizeof *counted);
        if (ep) o->r.ep = ep;
        if (counted) o->counted = counted;
        if (!ep || !held || !counted) {
            b->failed = true;
            cairn_err_oom(b->err, NULL);
            return 1;
        }
        b->cap = cap;
    }
    route_ep_t *e = &o->r.ep[o->r.nep++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", row->name);
    snprintf(e->key1, sizeof e->key1, "%s", row->key1);
    snprintf(e->key2, sizeof e->key2, "%s", row->key2);
    snprintf(e->ws, sizeof e->ws, "%s", row->ws);
    e->key_auth = !strcmp(row->auth_mode, "key");
    e->token_auth = !strcmp(row->auth_mode, "token");
    if (dep_store_each(b->sc->store, row->name, s_add_dep, b, b->err) != 0) {
        b->failed = true;
        return 1;
    }
    return 0;
}

int routes_rebuild(scorer_t *sc, cairn_err_t *err)
{
    routes_owned_t *o = calloc(1, sizeof *o);
    if (!o) return cairn_err_oom(err, NULL);
    o->sc = sc;
    atomic_init(&o->r.refs, 1);
    build_t b = {.sc = sc, .o = o, .err = err};
    if (ep_store_each(sc->store, NULL, s_add_ep, &b, err) != 0 || b.failed) {
        s_free(o);
        return -1;
    }
    pthread_mutex_lock(&sc->lock);
    routes_t *old = sc->current;
    sc->current = &o->r;
    pthread_mutex_unlock(&sc->lock);
    routes_release(old);
    return 0;
}

routes_t *routes_take(scorer_t *sc)
{
    pthread_mutex_lock(&sc->lock);
    routes_t *r = sc->current;
    if (r) atomic_fetch_add(&r->refs, 1);
    pthread_mutex_unlock(&sc->lock);
    return r;
}

void routes_release(routes_t *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) s_free((routes_owned_t *)r);
}

void routes_free_all(scorer_t *sc)
{
    pthread_mutex_lock(&sc->lock);
    routes_t *r = sc->current;
    sc->current = NULL;
    pthread_mutex_unlock(&sc->lock);
    routes_release(r);
}

const route_ep_t *routes_find(const routes_t *r, const char *name)
{
    for (int i = 0; r && i < r->nep; i++)
        if (!strcmp(r->ep[i].name, name)) return &r->ep[i];
    return NULL;
}

const route_dep_t *routes_pick(const route_ep_t *e, const char *name, double rand)
{
    if (name) {
        for (int i = 0; i < e->ndep; i++)
            if (!strcmp(e->dep[i].name, name)) return &e->dep[i];
        return NULL;
    }
    if (e->traffic_total <= 0) return NULL;
    double at = rand * (double)e->traffic_total, sum = 0;
    for (int i = 0; i < e->ndep; i++) {
        sum += (double)e->dep[i].traffic;
        if (e->dep[i].traffic > 0 && at < sum) return &e->dep[i];
    }
    for (int i = e->ndep - 1; i >= 0; i--) /* rounding at the top end */
        if (e->dep[i].traffic > 0) return &e->dep[i];
    return NULL;
}
