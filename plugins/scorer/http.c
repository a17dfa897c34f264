/* The scoring side (scorer.h), on the HTTP server's threads:
 *
 *   POST /endpoints/NAME/score    rows in (input.h) -> {"predictions": [...]}
 *   GET  /endpoints/NAME/health   {"status": "Healthy" | "Unhealthy", ...}
 *
 * Authorization: Bearer KEY (the endpoint's primary or secondary key) for
 * key endpoints. The request header cairn-deployment names a deployment to
 * call directly; otherwise one is picked by the endpoint's traffic. The
 * response header cairn-deployment names the one that answered. Errors are
 * JSON {"error": "..."} with a sentence, never a 500 for a bad body. */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "input.h"
#include "scorer.h"

#define PREFIX "/endpoints/"

/* A uniform draw in [0, 1) for the traffic pick and the mirror's share:
 * xorshift64* per thread, seeded once from the system's generator (a
 * getrandom call per request cost more than the tree walk). */
static double s_uniform(void)
{
    static _Thread_local uint64_t state;
    while (!state) randombytes_buf(&state, sizeof state);
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (double)((state * 0x2545F4914F6CDD1Dull) >> 11) / (double)(1ull << 53);
}

static uint64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

typedef struct out {
    char *p;
    size_t n, cap;
    bool oom;
} out_t;

static void s_put(out_t *o, const char *s, size_t n)
{
    if (o->oom) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + n + 1) cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static void s_puts(out_t *o, const char *s)
{
    s_put(o, s, strlen(s));
}

/* A JSON string of s (quotes, backslashes and control bytes escaped). */
static void s_put_str(out_t *o, const char *s)
{
    s_put(o, "\"", 1);
    for (; *s; s++) {
        char esc[8];
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            s_put(o, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            s_put(o, esc, 6);
        } else {
            s_put(o, s, 1);
        }
    }
    s_put(o, "\"", 1);
}

static void s_reply(cairn_http_response_t *resp, int status, out_t *o)
{
    if (o->oom) {
        free(o->p);
        *o = (out_t){0};
        s_puts(o, "{\"error\":\"out of memory\"}");
        status = 503;
    }
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = o->p;
    resp->len = o->n;
}

static __attribute__((format(printf, 3, 4))) void s_error(cairn_http_response_t *resp,
                                                          int status, const char *fmt,
                                                          ...)
{
    char msg[CAIRN_ERR_MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    out_t o = {0};
    s_puts(&o, "{\"error\":");
    s_put_str(&o, msg);
    s_puts(&o, "}");
    s_reply(resp, status, &o);
}

/* Whether the request carries one of e's keys (compared in constant
 * time), or (auth_mode token) a token that may score it: 0, or -1 with
 * the status and sentence in err. */
static int s_authorized(scorer_t *sc, const route_ep_t *e,
                        const cairn_http_request_t *req, cairn_err_t *err)
{
    if (!e->key_auth && !e->token_auth) return 0;
    const char *h = cairn_http_header(req, "Authorization");
    const char *k = h && !strncasecmp(h, "Bearer ", 7) ? h + 7 : NULL;
    if (e->token_auth) {
        if (k) return token_check(sc->tokens, e->ws, e->name, k, err);
        return cairn_err_set(err, 401, CAIRN_E_UNAUTHENTICATED,
                             "a Cairn token is needed for endpoint %s: Authorization: "
                             "Bearer TOKEN",
                             e->name);
    }
    if (k && strlen(k) == EP_KEY_LEN &&
        (sodium_memcmp(k, e->key1, EP_KEY_LEN) == 0 ||
         sodium_memcmp(k, e->key2, EP_KEY_LEN) == 0))
        return 0;
    return cairn_err_set(err, 401, CAIRN_E_UNAUTHENTICATED,
                         "a key of endpoint %s is needed: Authorization: Bearer KEY",
                         e->name);
}

static void s_health(const route_ep_t *e, cairn_http_response_t *resp)
{
    out_t o = {0};
    bool healthy = e->traffic_total > 0;
    s_puts(&o, healthy ? "{\"status\":\"Healthy\",\"deployments\":["
                       : "{\"status\":\"Unhealthy\",\"deployments\":[");
    for (int i = 0; i < e->ndep; i++) {
        char t[64];
        s_puts(&o, i ? ",{\"name\":" : "{\"name\":");
        s_put_str(&o, e->dep[i].name);
        snprintf(t, sizeof t, ",\"traffic\":%lld}", (long long)e->dep[i].traffic);
        s_puts(&o, t);
    }
    s_puts(&o, "]}");
    s_reply(resp, healthy ? 200 : 503, &o);
}

/* {"predictions": [...]}: one value a row, or a list of them per row. */
static void s_predictions(const float *p, size_t nrows, size_t nout, out_t *o)
{
    s_puts(o, "{\"predictions\":[");
    for (size_t r = 0; r < nrows && !o->oom; r++) {
        if (r) s_put(o, ",", 1);
        if (nout > 1) s_put(o, "[", 1);
        for (size_t k = 0; k < nout; k++) {
            char num[32];
            float v = p[r * nout + k];
            int n = isfinite(v)
                        ? snprintf(num, sizeof num, "%s%.9g", k ? "," : "", (double)v)
                        : snprintf(num, sizeof num, "%snull", k ? "," : "");
            s_put(o, num, (size_t)n);
        }
        if (nout > 1) s_put(o, "]", 1);
    }
    s_puts(o, "]}");
}

/* The rows of req's body for model m's features: 0, or -1 with err. */
static int s_rows(const cairn_http_request_t *req, const route_dep_t *d,
                  ep_rows_t *rows, cairn_err_t *err)
{
    const char *ct = cairn_http_header(req, "Content-Type");
    ep_features_t f = {.n = scorer_model_features(d->model), .names = d->names};
    if (ct && !strncasecmp(ct, "text/csv", 8))
        return ep_input_read_csv(req->body, req->body_len, &f, rows, err);
    if (ct && !strncasecmp(ct, "application/msgpack", 19))
        return ep_input_read_msgpack(req->body, req->body_len, &f, rows, err);
    if (ct && strncasecmp(ct, "application/json", 16))
        return cairn_err_set(err, 415, CAIRN_E_BAD_REQUEST,
                             "Content-Type %.100s is not taken here: send "
                             "application/json, application/msgpack or text/csv",
                             ct);
    return ep_input_read(req->body, req->body_len, &f, rows, err);
}

/* The predictions of model deployment d for req: 0 with *o filled, or -1
 * with err (a refused body, or the model's failure). */
static int s_predict(const route_dep_t *d, const cairn_http_request_t *req, out_t *o,
                     cairn_err_t *err)
{
    ep_rows_t rows;
    if (s_rows(req, d, &rows, err) != 0) return -1;
    size_t nout = scorer_model_outputs(d->model);
    float *p = malloc(rows.nrows * nout * sizeof *p);
    int rc = -1;
    if (!p)
        cairn_err_oom(err, NULL);
    else if (scorer_model_predict(d->model, rows.v, rows.nrows, rows.ncols, p, err) ==
             0)
        rc = 0;
    if (rc == 0) s_predictions(p, rows.nrows, nout, o);
    free(p);
    ep_rows_free(&rows);
    return rc;
}

/* The answer of python deployment d's scoring script to req: its status
 * and JSON into *status and *o; or -1 with err. */
static int s_run_script(const route_dep_t *d, const cairn_http_request_t *req,
                        int *status, out_t *o, cairn_err_t *err)
{
    const char *ct = cairn_http_header(req, "Content-Type");
    char *body = NULL;
    size_t len = 0;
    if (py_pool_score(d->pool, ct ? ct : "application/json", req->body, req->body_len,
                      (int)d->timeout_ms, status, &body, &len, err) != 0)
        return -1;
    free(o->p);
    *o = (out_t){.p = body, .n = len, .cap = len + 1};
    return 0;
}

/* d's answer to req, whichever its flavor: 0 with *status and *o, or -1
 * with err. */
static int s_answer(const route_dep_t *d, const cairn_http_request_t *req, int *status,
                    out_t *o, cairn_err_t *err)
{
    *status = 200;
    return d->pool ? s_run_script(d, req, status, o, err) : s_predict(d, req, o, err);
}

/* Copies of a live request: each deployment of e with a mirror share
 * answers the same request that often, its answer dropped and counted
 * (in this thread, after the live answer is made: a copy costs the live
 * request one predict, microseconds a row, or one run of a script). */
static void s_mirror(const route_ep_t *e, const route_dep_t *live,
                     const cairn_http_request_t *req)
{
    for (int i = 0; i < e->ndep; i++) {
        const route_dep_t *m = &e->dep[i];
        if (m == live || m->mirror <= 0 || !m->stats ||
            s_uniform() * 100.0 >= (double)m->mirror)
            continue;
        uint64_t t0 = s_now_us();
        out_t o = {0};
        int status = 0;
        cairn_err_t err = {0};
        bool ok = s_answer(m, req, &status, &o, &err) == 0 && status == 200 && !o.oom;
        free(o.p);
        atomic_fetch_add(&m->stats->requests, 1);
        atomic_fetch_add(&m->stats->mirrored, 1);
        if (!ok) atomic_fetch_add(&m->stats->errors, 1);
        atomic_fetch_add(&m->stats->latency[stats_bucket(s_now_us() - t0)], 1);
    }
}

/* Whether d may take one more request now (request_settings'
 * max_concurrent_requests); counted when it may: s_done gives it back. */
static bool s_admit(const route_dep_t *d)
{
    if (d->max_concurrent <= 0 || !d->stats) return true;
    if (atomic_fetch_add(&d->stats->inflight, 1) < d->max_concurrent) return true;
    atomic_fetch_sub(&d->stats->inflight, 1);
    return false;
}

static void s_done(const route_dep_t *d)
{
    if (d->max_concurrent > 0 && d->stats) atomic_fetch_sub(&d->stats->inflight, 1);
}

/* Score req on a deployment of e; the deployment that answered (or
 * refused the body), NULL when none was picked. */
static const route_dep_t *s_score(const route_ep_t *e, const cairn_http_request_t *req,
                                  cairn_http_response_t *resp)
{
    const char *want = cairn_http_header(req, "cairn-deployment");
    const route_dep_t *d = routes_pick(e, want, s_uniform());
    if (!d) {
        if (want)
            s_error(resp, 404, "endpoint %s has no deployment named '%.100s'", e->name,
                    want);
        else
            s_error(resp, 503, "endpoint %s has no deployment that takes traffic",
                    e->name);
        return NULL;
    }
    if (!s_admit(d)) {
        s_error(resp, 429,
                "deployment %s has %lld requests in progress, its "
                "max_concurrent_requests: retry later",
                d->name, (long long)d->max_concurrent);
        return d;
    }
    out_t o = {0};
    int status = 200;
    cairn_err_t err = {0};
    if (s_answer(d, req, &status, &o, &err) != 0) {
        free(o.p);
        s_error(resp, err.st, "%s", err.msg);
    } else {
        s_reply(resp, status, &o);
        resp->header = "cairn-deployment";
        resp->header_value = d->name; /* borrowed until queued: the snapshot holds it */
        if (status == 200) s_mirror(e, d, req);
    }
    s_done(d);
    return d;
}

/* The request counted for the deployment that took it. */
static void s_count(const route_dep_t *d, const cairn_http_response_t *resp,
                    uint64_t t0_us)
{
    if (!d || !d->stats) return;
    atomic_fetch_add(&d->stats->requests, 1);
    if (resp->status != 200) atomic_fetch_add(&d->stats->errors, 1);
    atomic_fetch_add(&d->stats->latency[stats_bucket(s_now_us() - t0_us)], 1);
}

void ep_http_handle(void *arg, const cairn_http_request_t *req,
                    cairn_http_response_t *resp)
{
    scorer_t *sc = arg;
    uint64_t t0 = s_now_us();
    char name[EP_NAME_MAX + 2];
    const char *rest =
        strncmp(req->path, PREFIX, strlen(PREFIX)) ? NULL : req->path + strlen(PREFIX);
    const char *slash = rest ? strchr(rest, '/') : NULL;
    if (!slash || slash == rest || (size_t)(slash - rest) > EP_NAME_MAX) {
        s_error(resp, 404,
                "no such route: POST /endpoints/NAME/score or GET "
                "/endpoints/NAME/health");
        return;
    }
    snprintf(name, sizeof name, "%.*s", (int)(slash - rest), rest);
    bool score = !strcmp(slash, "/score"), health = !strcmp(slash, "/health");
    if (!score && !health) {
        s_error(resp, 404, "no such route: %s", slash);
        return;
    }
    if (strcmp(req->method, score ? "POST" : "GET")) {
        s_error(resp, 405, "%s takes %s", slash, score ? "POST" : "GET");
        return;
    }
    routes_t *r = routes_take(sc);
    const route_ep_t *e = routes_find(r, name);
    cairn_err_t err = {0};
    if (!e)
        s_error(resp, 404, "no endpoint named '%s'", name);
    else if (s_authorized(sc, e, req, &err) != 0)
        s_error(resp, err.st, "%s", err.msg);
    else if (health)
        s_health(e, resp);
    else
        s_count(s_score(e, req, resp), resp, t0);
    /* the response's header value is the deployment's name in r: copied
     * before r may go */
    if (resp->header_value) {
        static _Thread_local char dep[EP_NAME_MAX + 1];
        snprintf(dep, sizeof dep, "%s", resp->header_value);
        resp->header_value = dep;
    }
    routes_release(r);
}
