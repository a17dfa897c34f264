/* GET /api/v1/events: server-sent events for Cairn Studio's live views
 * (docs/GATEWAY.md).
 *
 *   GET /api/v1/events?run=ID&run=ID&job=NAME   1 to GW_EVENTS_SUBJECTS subjects
 *
 * Each subject is looked up as the caller first (tracking.get_run,
 * jobs.get_job): a refusal answers as usual, with no stream. Then the
 * stream: `retry`, a `ready` event, and the bus's run.metrics and
 * run.status of its runs and jobs.status of its jobs (in the caller's
 * workspace), one line of JSON each, with a comment every
 * GW_EVENTS_KEEPALIVE_MS. It ends on auth.changed (the client reconnects
 * and is checked again), when the gateway stops, and when a slow client
 * lets GW_EVENTS_BUF_MAX bytes wait.
 *
 * The plugin subscribes once and hands each event here on its loop
 * thread; it is copied into the buffer of every stream it concerns, under
 * mu, and the stream's connection woken (sdk/httpd.h's live responses: a
 * stream with nothing to send holds no server thread). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "jsonmp.h"

#define GW_EVENTS_SUBJECTS 100
#define GW_EVENTS_BUF_MAX (256u << 10) /* a stream's unsent bytes, at most */
#define GW_EVENTS_RUN_MAX 64           /* a run id's bytes */
#define GW_EVENTS_JOB_MAX 128          /* a job name's bytes */

typedef struct gw_stream {
    struct gw_stream *prev, *next;
    gw_events_t *e;
    cairn_http_live_t *live;
    char ws[128]; /* the caller's workspace ("default" for none) */
    char **runs, **jobs;
    size_t nruns, njobs;
    char *buf; /* unsent bytes: buf[off, len) */
    size_t off, len, cap;
    bool ended; /* send what is buffered, then end */
} gw_stream_t;

struct gw_events {
    pthread_mutex_t mu;
    gw_stream_t *streams;
    unsigned n, max;
    bool closed;       /* the gateway stops: no new stream */
    uint64_t auth_gen; /* auth.changed events seen */
};

gw_events_t *gw_events_new(unsigned max_streams)
{
    gw_events_t *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    pthread_mutex_init(&e->mu, NULL);
    e->max = max_streams;
    return e;
}

/* ---- a stream's buffer (under mu) ---------------------------------------- */

static void s_end(gw_stream_t *st)
{
    st->ended = true;
    cairn_http_live_wake(st->live);
}

/* Append n bytes and wake the stream; past the bound it ends instead. */
static void s_push(gw_stream_t *st, const char *p, size_t n)
{
    if (st->ended) return;
    if (st->len - st->off + n > GW_EVENTS_BUF_MAX) {
        s_end(st); /* a slow client: end rather than grow */
        return;
    }
    if (st->off) { /* what was sent makes room first */
        memmove(st->buf, st->buf + st->off, st->len - st->off);
        st->len -= st->off;
        st->off = 0;
    }
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n) cap *= 2;
        char *b = realloc(st->buf, cap);
        if (!b) {
            s_end(st);
            return;
        }
        st->buf = b;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, p, n);
    st->len += n;
    cairn_http_live_wake(st->live);
}

/* ---- the HTTP side: a stream's reads ------------------------------------- */

static long s_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    gw_stream_t *st = ctx;
    pthread_mutex_lock(&st->e->mu);
    long n = st->ended ? 0 : CAIRN_HTTP_LATER;
    if (st->len > st->off) {
        size_t k = st->len - st->off < max ? st->len - st->off : max;
        memcpy(buf, st->buf + st->off, k);
        st->off += k;
        if (st->off == st->len) st->off = st->len = 0;
        n = (long)k;
    }
    pthread_mutex_unlock(&st->e->mu);
    return n;
}

static void s_stream_free(gw_stream_t *st)
{
    for (size_t i = 0; i < st->nruns; i++) free(st->runs[i]);
    for (size_t i = 0; i < st->njobs; i++) free(st->jobs[i]);
    free(st->runs);
    free(st->jobs);
    free(st->buf);
    free(st);
}

/* The response is done with (the client went, the stream ended, the
 * server stops): out of the list, so that no event wakes it again. */
static void s_read_free(void *ctx)
{
    gw_stream_t *st = ctx;
    gw_events_t *e = st->e;
    pthread_mutex_lock(&e->mu);
    if (st->prev)
        st->prev->next = st->next;
    else
        e->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    e->n--;
    pthread_mutex_unlock(&e->mu);
    s_stream_free(st);
}

/* ---- the bus side: events (the plugin's loop thread) ---------------------- */

static bool s_has(char **v, size_t n, const char *p, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i]) == len && !memcmp(v[i], p, len)) return true;
    return false;
}

static bool s_str(const msgpack_object *body, const char *field, const char **p,
                  size_t *len)
{
    const msgpack_object *o = NULL;
    if (body && body->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < body->via.map.size && !o; i++) {
            const msgpack_object *k = &body->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(field) &&
                !memcmp(k->via.str.ptr, field, k->via.str.size))
                o = &body->via.map.ptr[i].val;
        }
    if (!o || o->type != MSGPACK_OBJECT_STR) return false;
    *p = o->via.str.ptr;
    *len = o->via.str.size;
    return true;
}

/* Whether the event concerns st: its run, or its job in its workspace. */
static bool s_wants(const gw_stream_t *st, bool job, const char *id, size_t id_len,
                    const char *ws, size_t ws_len)
{
    if (!job) return s_has(st->runs, st->nruns, id, id_len);
    return strlen(st->ws) == ws_len && !memcmp(st->ws, ws, ws_len) &&
           s_has(st->jobs, st->njobs, id, id_len);
}

void gw_events_event(gw_events_t *e, const char *topic, const msgpack_object *body)
{
    if (!e) return;
    if (!strcmp(topic, "auth.changed")) { /* every stream is checked again */
        pthread_mutex_lock(&e->mu);
        e->auth_gen++;
        for (gw_stream_t *st = e->streams; st; st = st->next) s_end(st);
        pthread_mutex_unlock(&e->mu);
        return;
    }
    bool job = !strcmp(topic, "jobs.status");
    if (!job && strcmp(topic, "run.metrics") && strcmp(topic, "run.status")) return;
    const char *id, *ws = "default";
    size_t id_len, ws_len = 7;
    if (!s_str(body, job ? "name" : "run_id", &id, &id_len)) return;
    if (job) s_str(body, "workspace", &ws, &ws_len);
    char *text = NULL, *json = NULL;
    pthread_mutex_lock(&e->mu);
    for (gw_stream_t *st = e->streams; st; st = st->next) {
        if (st->ended || !s_wants(st, job, id, id_len, ws, ws_len)) continue;
        if (!text) { /* written once, for the first stream it concerns */
            size_t n = 0;
            json = cairn_json_write(body, NULL, &n);
            if (!json || asprintf(&text, "event: %s\ndata: %s\n\n", topic, json) < 0) {
                text = NULL;
                break;
            }
        }
        s_push(st, text, strlen(text));
    }
    pthread_mutex_unlock(&e->mu);
    free(json);
    free(text);
}

void gw_events_keepalive(gw_events_t *e)
{
    static const char ka[] = ": keep-alive\n\n";
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    for (gw_stream_t *st = e->streams; st; st = st->next) s_push(st, ka, sizeof ka - 1);
    pthread_mutex_unlock(&e->mu);
}

void gw_events_close(gw_events_t *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->closed = true;
    for (gw_stream_t *st = e->streams; st; st = st->next) s_end(st);
    pthread_mutex_unlock(&e->mu);
}

void gw_events_free(gw_events_t **e)
{
    if (!e || !*e) return;
    pthread_mutex_destroy(&(*e)->mu); /* the server stopped: no stream is left */
    free(*e);
    *e = NULL;
}

/* ---- GET /api/v1/events -------------------------------------------------- */

typedef struct {
    gw_stream_t *st;
    size_t n; /* subjects named, kept or not */
    const char *bad;
} subjects_t;

static int s_add(char ***v, size_t *n, const char *value)
{
    char **p = realloc(*v, (*n + 1) * sizeof *p);
    if (!p) return -1;
    *v = p;
    if (!(p[*n] = strdup(value))) return -1;
    (*n)++;
    return 0;
}

static void s_subject(void *arg, const char *key, const char *value)
{
    subjects_t *s = arg;
    bool run = !strcmp(key, "run"), job = !strcmp(key, "job");
    if (!run && !job) return;
    if (++s->n > GW_EVENTS_SUBJECTS || s->bad) return;
    size_t len = value ? strlen(value) : 0;
    if (!len || len > (run ? GW_EVENTS_RUN_MAX : GW_EVENTS_JOB_MAX)) {
        s->bad = run ? "a run= is a run id of 1 to 64 bytes"
                     : "a job= is a job name of 1 to 128 bytes";
        return;
    }
    if (run ? s_add(&s->st->runs, &s->st->nruns, value)
            : s_add(&s->st->jobs, &s->st->njobs, value))
        s->bad = "out of memory";
}

/* Look svc.verb {field: value} up as the caller; false: answered. */
static bool s_verify(gw_req_t *r, const char *svc, const char *verb, const char *field,
                     const char *value)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_cstr(&pk, field);
    cairn_pack_cstr(&pk, value);
    cairn_reply_t *reply = NULL;
    cairn_err_t err = {0};
    int rc = gw_call(r, svc, verb, sb.data, sb.size, &reply, &err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0)
        gw_reply_error(r, err.st >= 400 ? err.st : 503,
                       err.code[0] ? err.code : "unavailable", "%s", err.msg);
    else if (cairn_reply_status(reply) >= 400)
        gw_reply_error(r, cairn_reply_status(reply), cairn_reply_code(reply), "%s",
                       cairn_reply_error(reply));
    bool ok = rc == 0 && cairn_reply_status(reply) < 400;
    cairn_reply_destroy(&reply);
    return ok;
}

/* The ready event: the subjects, as JSON. */
static char *s_ready(const gw_stream_t *st)
{
    json_t *runs = json_array(), *jobs = json_array();
    for (size_t i = 0; i < st->nruns; i++)
        json_array_append_new(runs, json_string(st->runs[i]));
    for (size_t i = 0; i < st->njobs; i++)
        json_array_append_new(jobs, json_string(st->jobs[i]));
    json_t *j = json_pack("{s:o, s:o}", "runs", runs, "jobs", jobs);
    char *data = j ? cairn_json_dumps_compact(j) : NULL, *text = NULL;
    json_decref(j);
    if (data && asprintf(&text, "retry: 3000\n\nevent: ready\ndata: %s\n\n", data) < 0)
        text = NULL;
    free(data);
    return text;
}

/* A slot for a new stream (false: over the limit, or the gateway stops);
 * *gen: the auth.changed events seen before its subjects are checked. */
static bool s_reserve(gw_events_t *e, uint64_t *gen)
{
    pthread_mutex_lock(&e->mu);
    bool ok = !e->closed && e->n < e->max;
    if (ok) e->n++;
    *gen = e->auth_gen;
    pthread_mutex_unlock(&e->mu);
    return ok;
}

static void s_unreserve(gw_events_t *e)
{
    pthread_mutex_lock(&e->mu);
    e->n--;
    pthread_mutex_unlock(&e->mu);
}

/* Into the list, its first bytes buffered; false when the gateway stops.
 * An auth.changed while its subjects were checked ends it at once: the
 * client's reconnection is checked again. */
static bool s_open(gw_events_t *e, gw_stream_t *st, char *ready, uint64_t gen)
{
    pthread_mutex_lock(&e->mu);
    bool ok = !e->closed;
    if (ok) {
        st->ended = e->auth_gen != gen;
        st->buf = ready;
        st->len = st->cap = strlen(ready);
        st->next = e->streams;
        if (st->next) st->next->prev = st;
        e->streams = st;
    }
    pthread_mutex_unlock(&e->mu);
    return ok;
}

/* The subjects checked as the caller, then the stream; false: answered
 * (a refusal). */
static bool s_checked(gw_req_t *r, gw_stream_t *st)
{
    subjects_t s = {.st = st};
    cairn_http_each_query(r->http, s_subject, &s);
    if (s.n < 1 || s.n > GW_EVENTS_SUBJECTS) {
        gw_reply_error(r, 400, "bad_request",
                       "an event stream names 1 to %d subjects (run=ID, job=NAME); "
                       "this one names %zu",
                       GW_EVENTS_SUBJECTS, s.n);
        return false;
    }
    if (s.bad) {
        gw_reply_error(r, 400, "bad_request", "%s", s.bad);
        return false;
    }
    for (size_t i = 0; i < st->nruns; i++)
        if (!s_verify(r, "tracking", "get_run", "run_id", st->runs[i])) return false;
    for (size_t i = 0; i < st->njobs; i++)
        if (!s_verify(r, "jobs", "get_job", "name", st->jobs[i])) return false;
    return true;
}

static void s_stream(gw_req_t *r)
{
    gw_events_t *e = r->g->events;
    uint64_t gen;
    if (!s_reserve(e, &gen)) {
        gw_reply_error(r, 503, "unavailable",
                       "the gateway has %u event streams open, its max_event_streams: "
                       "try again later",
                       e->max);
        return;
    }
    cairn_http_response_t *resp = r->resp;
    gw_stream_t *st = calloc(1, sizeof *st);
    char *ready = NULL;
    if (st) {
        st->e = e;
        snprintf(st->ws, sizeof st->ws, "%s", r->ws[0] ? r->ws : "default");
    }
    /* resp->live is the response's once set: freed by the server if the
     * answer is a refusal after all */
    if (!st || !s_checked(r, st) || !(ready = s_ready(st)) ||
        !(resp->live = st->live = cairn_http_live_new(r->http)) ||
        !s_open(e, st, ready, gen)) {
        if (!resp->body) /* not answered yet: out of memory, or stopping */
            gw_reply_error(r, 503, "unavailable",
                           "no event stream now: try again later");
        free(ready);
        if (st) s_stream_free(st);
        s_unreserve(e);
        return;
    }
    resp->status = 200;
    resp->content_type = "text/event-stream";
    resp->read = s_read;
    resp->read_free = s_read_free;
    resp->read_ctx = st;
    resp->size = CAIRN_HTTP_SIZE_UNKNOWN;
    resp->header = "Cache-Control";
    resp->header_value = "no-cache";
    resp->more[0].name = "X-Accel-Buffering"; /* a proxy (nginx) passes each event on */
    resp->more[0].value = "no";
}

bool gw_events(gw_req_t *r)
{
    if (strcmp(r->path, "/api/v1/events") && strcmp(r->path, "/api/v1/events/"))
        return false;
    if (strcmp(r->http->method, "GET"))
        gw_reply_error(r, 405, "method_not_allowed",
                       "/api/v1/events takes GET (a text/event-stream)");
    else
        s_stream(r);
    return true;
}
