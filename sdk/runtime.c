/* The worker runtime: one loop serves a plugin in every mode.
 *
 *   connect DEALER -> HELLO -> WELCOME -> init -> READY -> serve
 *
 * The loop polls the kernel socket (and an event SUB socket when the plugin
 * subscribed), fires timers and ticks, and sends a heartbeat whenever it has
 * been quiet for a heartbeat interval, so the kernel notices a hung handler
 * as well as a dead process. docs/PROTOCOL.md describes the frames.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>
#include <zmq.h>

#include "cairn/client.h"
#include "runtime.h"

#define RT_MAX_ROLES 16
#define RT_STRBUF 2048 /* ws, sub, cid and roles, each bounded by the kernel */

struct cairn_req {
    cairn_ctx_t *ctx;
    uint64_t rid;
    const cairn_verb_t *verb;
    uint64_t deadline;
    const char *ws, *sub, *cid, *addr;
    const char *roles[RT_MAX_ROLES];
    int nroles;
    char strbuf[RT_STRBUF];
    char obj[CAIRN_OBJECT_MAX + 1]; /* cairn_set_object's, for the audit record */
    char cid_gen[24];
    zmq_msg_t body_msg;
    msgpack_object body;
    msgpack_zone *zone;       /* own zone once deferred */
    cairn_door_reply_t *sink; /* set while served through the door */
    bool replied, deferred;
    cairn_req_t *next_free;
    cairn_req_t *dprev, *dnext; /* the context's deferred list */
};

typedef struct rt_call {
    uint64_t cid;
    cairn_result_fn *cb;
    void *arg;
    struct rt_call *next;
} rt_call_t;

typedef struct rt_sub {
    char *prefix;
    cairn_event_fn *cb;
    void *arg;
    struct rt_sub *next;
} rt_sub_t;

typedef struct rt_timer {
    uint64_t id, due;
    uint32_t repeat;
    cairn_timer_fn *cb;
    void *arg;
    struct rt_timer *next;
} rt_timer_t;

struct cairn_ctx {
    const cairn_runtime_opts_t *opts;
    const cairn_plugin_t *plugin;
    const cairn_verb_t *verbs; /* this instance's table (its role's) */
    uint32_t *dropped;         /* per verb: flags this instance dropped (init) */
    const char *role;
    void *state;
    void *sock, *sub;
    char *events_endpoint;
    char *state_dir;
    uint32_t hb_ms, liveness;
    uint64_t last_sent, last_heard;
    char **conf_keys, **conf_vals;
    size_t nconf;
    void *settings;       /* the plugin's typed settings, filled once before init */
    char **settings_strs; /* the strings its fields point to, owned here */
    size_t nsettings_strs;
    msgpack_zone zone; /* reused for every request header and body */
    cairn_req_t *free_reqs;
    cairn_req_t *deferred; /* awaiting a reply; freed at exit if never answered */
    uint64_t next_cid, next_timer;
    rt_call_t *calls;
    rt_sub_t *subs;
    rt_timer_t *timers;
    bool stopping;
    bool in_door; /* a handler runs on the kernel's thread: hands off the socket */
    bool wake;    /* a door handler added a timer: the poll must wake for it */
    int wake_fd;  /* eventfd the worker polls beside its socket (door only) */
};

struct cairn_door {
    pthread_mutex_t mu; /* held by the worker whenever it is not polling */
    cairn_ctx_t *ctx;   /* NULL until the worker is READY, and after it ends */
    uint64_t nonce;
};

/* ---- sending ------------------------------------------------------- */

static int s_send_cmd(cairn_ctx_t *ctx, cairn_wcmd_t cmd, const msgpack_sbuffer *hdr,
                      const void *body, size_t blen, bool has_body)
{
    unsigned char c = (unsigned char)cmd;
    int rc =
        zmq_send(ctx->sock, CAIRN_WORKER_TAG, strlen(CAIRN_WORKER_TAG), ZMQ_SNDMORE);
    bool more_hdr = hdr != NULL;
    if (rc >= 0) rc = zmq_send(ctx->sock, &c, 1, more_hdr ? ZMQ_SNDMORE : 0);
    if (rc >= 0 && hdr)
        rc = zmq_send(ctx->sock, hdr->data, hdr->size, has_body ? ZMQ_SNDMORE : 0);
    if (rc >= 0 && hdr && has_body) rc = zmq_send(ctx->sock, body, blen, 0);
    ctx->last_sent = cairn_now_ms();
    return rc < 0 ? -1 : 0;
}

/* ---- request API (cairn_api_t) -------------------------------------- */

static const msgpack_object *s_api_body(const cairn_req_t *r)
{
    return &r->body;
}
static const char *s_api_verb(const cairn_req_t *r)
{
    return r->verb->name;
}
static const char *s_api_principal(const cairn_req_t *r)
{
    return r->sub;
}
static const char *s_api_workspace(const cairn_req_t *r)
{
    return r->ws && *r->ws ? r->ws : "default"; /* no ws header: the default one */
}
static const char *s_api_cid(const cairn_req_t *r)
{
    if (!r->cid[0]) /* the kernel sends none when the client gave none */
        snprintf(((cairn_req_t *)r)->cid_gen, sizeof r->cid_gen, "k%llx",
                 (unsigned long long)r->rid);
    return r->cid[0] ? r->cid : r->cid_gen;
}
static uint64_t s_api_deadline(const cairn_req_t *r)
{
    return r->deadline;
}
static cairn_ctx_t *s_api_req_ctx(const cairn_req_t *r)
{
    return r->ctx;
}

static bool s_api_has_role(const cairn_req_t *r, const char *role)
{
    for (int i = 0; i < r->nroles; i++)
        if (strcmp(r->roles[i], role) == 0) return true;
    return false;
}

static void s_deferred_unlink(cairn_req_t *r)
{
    if (r->dprev)
        r->dprev->dnext = r->dnext;
    else if (r->ctx->deferred == r)
        r->ctx->deferred = r->dnext;
    if (r->dnext) r->dnext->dprev = r->dprev;
    r->dprev = r->dnext = NULL;
}

static void s_req_release(cairn_req_t *r)
{
    if (r->deferred) s_deferred_unlink(r);
    zmq_msg_close(&r->body_msg);
    if (r->zone) msgpack_zone_free(r->zone);
    r->zone = NULL;
    r->next_free = r->ctx->free_reqs;
    r->ctx->free_reqs = r;
}

/* A reply given through the door goes back to the kernel's thread by
 * value, never onto the worker's socket (which another thread polls). */
static int s_fill_sink(cairn_door_reply_t *out, int st, const char *code,
                       const char *msg, const char *obj, const void *body, size_t len)
{
    out->st = st;
    snprintf(out->obj, sizeof out->obj, "%s", obj ? obj : "");
    snprintf(out->code, sizeof out->code, "%s", code ? code : "");
    snprintf(out->msg, sizeof out->msg, "%s", msg ? msg : "");
    if (zmq_msg_init_size(&out->body, body ? len : 0) != 0) {
        zmq_msg_init(&out->body);
        out->st = 500;
        snprintf(out->code, sizeof out->code, "internal");
        snprintf(out->msg, sizeof out->msg, "out of memory for a %zu-byte reply", len);
        return -1;
    }
    if (body && len) memcpy(zmq_msg_data(&out->body), body, len);
    return 0;
}

static int s_final(cairn_req_t *r, int st, const char *code, const char *msg,
                   const void *body, size_t len)
{
    if (r->replied) return -1;
    r->replied = true;
    if (r->sink) return s_fill_sink(r->sink, st, code, msg, r->obj, body, len);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    wire_pack_final(&pk, r->rid, st, code, msg, r->obj);
    int rc = s_send_cmd(r->ctx, CAIRN_W_FINAL, &sb, body, body ? len : 0, true);
    msgpack_sbuffer_destroy(&sb);
    if (r->deferred) s_req_release(r);
    return rc;
}

static int s_api_reply(cairn_req_t *r, int st, const void *body, size_t len)
{
    return s_final(r, st, NULL, NULL, body, len);
}

static int s_api_reply_error(cairn_req_t *r, int st, const char *code, const char *msg)
{
    return s_final(r, st < CAIRN_ST_BAD_REQUEST ? 500 : st, code, msg, NULL, 0);
}

static int s_api_reply_error_body(cairn_req_t *r, int st, const char *code,
                                  const char *msg, const void *body, size_t len)
{
    return s_final(r, st < CAIRN_ST_BAD_REQUEST ? 500 : st, code, msg, body,
                   body ? len : 0);
}

static bool s_api_req_inline(const cairn_req_t *r)
{
    return r->sink != NULL; /* its reply goes back through the door */
}

static int s_api_reply_err(cairn_req_t *r, const cairn_err_t *e)
{
    return s_final(r, e->st >= CAIRN_ST_BAD_REQUEST ? e->st : 500, e->code, e->msg,
                   NULL, 0);
}

static void s_api_defer(cairn_req_t *r)
{
    if (r->deferred || r->replied) return;
    /* The shared zone is cleared on the next request: give this body its own. */
    r->zone = msgpack_zone_new(4096);
    size_t off = 0;
    r->body.type = MSGPACK_OBJECT_NIL;
    if (r->zone && zmq_msg_size(&r->body_msg))
        msgpack_unpack(zmq_msg_data(&r->body_msg), zmq_msg_size(&r->body_msg), &off,
                       r->zone, &r->body);
    r->deferred = true;
    r->dprev = NULL;
    r->dnext = r->ctx->deferred;
    if (r->dnext) r->dnext->dprev = r;
    r->ctx->deferred = r;
}

/* ---- context API ----------------------------------------------------- */

static const char *s_api_service(const cairn_ctx_t *ctx)
{
    return ctx->opts->service;
}

static const char *s_api_conf(const cairn_ctx_t *ctx, const char *key)
{
    for (size_t i = 0; i < ctx->nconf; i++)
        if (strcmp(ctx->conf_keys[i], key) == 0) return ctx->conf_vals[i];
    return cairn_plugin_setting_default(ctx->plugin, key);
}

static void s_api_log(cairn_ctx_t *ctx, int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level < 0 || level > CAIRN_LOG_DEBUG) level = CAIRN_LOG_INFO;
    const char *want = getenv("CAIRN_LOG_LEVEL");
    int max = want && strcmp(want, "debug") == 0 ? CAIRN_LOG_DEBUG : CAIRN_LOG_INFO;
    if (level > max) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cairn[%s] %s: %s\n", ctx ? ctx->opts->service : "?", names[level],
            line);
}

static int s_api_call_ws(cairn_ctx_t *ctx, const char *ws, const char *svc,
                         const char *verb, const void *body, size_t len,
                         uint32_t ttl_ms, cairn_result_fn *cb, void *arg,
                         cairn_err_t *err)
{
    if (ctx->in_door)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "cairn_call is not allowed in a verb flagged "
                             "CAIRN_VERB_INLINE (it may run on the kernel's thread)");
    rt_call_t *c = calloc(1, sizeof *c);
    if (!c) return cairn_err_oom(err, NULL);
    c->cid = ++ctx->next_cid;
    c->cb = cb;
    c->arg = arg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    wire_call_t m = {.cid = c->cid,
                     .svc = {svc, strlen(svc)},
                     .verb = {verb, strlen(verb)},
                     .ws = {ws ? ws : "", ws ? strlen(ws) : 0},
                     .ttl = ttl_ms ? ttl_ms : 30000};
    wire_pack_call(&pk, &m);
    int rc = s_send_cmd(ctx, CAIRN_W_CALL, &sb, body, body ? len : 0, true);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        free(c);
        return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                             "cannot reach the kernel");
    }
    c->next = ctx->calls;
    ctx->calls = c;
    return 0;
}

static int s_api_call(cairn_ctx_t *ctx, const char *svc, const char *verb,
                      const void *body, size_t len, uint32_t ttl_ms,
                      cairn_result_fn *cb, void *arg, cairn_err_t *err)
{
    return s_api_call_ws(ctx, NULL, svc, verb, body, len, ttl_ms, cb, arg, err);
}

static int s_api_publish(cairn_ctx_t *ctx, const char *topic, const void *body,
                         size_t len)
{
    if (ctx->in_door) {
        s_api_log(ctx, CAIRN_LOG_ERROR,
                  "cairn_publish is not allowed in a verb flagged CAIRN_VERB_INLINE");
        return -1;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    wire_pack_topic(&pk, topic);
    int rc = s_send_cmd(ctx, CAIRN_W_PUBLISH, &sb, body, body ? len : 0, true);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* A remote host's sockets to a tcp:// address are CurveZMQ clients when it
 * was given keys (the kernel's event bus at a loopback address may be
 * plain; docs/TRANSPORT.md). */
static int s_curve(cairn_ctx_t *ctx, void *sock, const char *ep, cairn_err_t *err)
{
    const cairn_runtime_opts_t *o = ctx->opts;
    if (!o->curve_server_key || strncmp(ep, "tcp://", 6) != 0) return 0;
    return cairn_curve_client(sock, o->curve_server_key, o->curve_client_key, err);
}

static int s_api_subscribe(cairn_ctx_t *ctx, const char *prefix, cairn_event_fn *cb,
                           void *arg, cairn_err_t *err)
{
    if (!ctx->events_endpoint)
        return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                             "the kernel has no event bus");
    if (ctx->in_door)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "cairn_subscribe is not allowed in a verb flagged "
                             "CAIRN_VERB_INLINE");
    if (!ctx->sub) {
        ctx->sub = zmq_socket(ctx->opts->zctx, ZMQ_SUB);
        int zero = 0;
        if (ctx->sub) zmq_setsockopt(ctx->sub, ZMQ_LINGER, &zero, sizeof zero);
        if (ctx->sub && s_curve(ctx, ctx->sub, ctx->events_endpoint, err) != 0)
            return -1;
        if (!ctx->sub || zmq_connect(ctx->sub, ctx->events_endpoint) != 0)
            return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                                 "cannot connect to the event bus %s: %s",
                                 ctx->events_endpoint, zmq_strerror(errno));
    }
    rt_sub_t *s = calloc(1, sizeof *s);
    if (!s || !(s->prefix = strdup(prefix))) {
        free(s);
        return cairn_err_oom(err, NULL);
    }
    zmq_setsockopt(ctx->sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    s->cb = cb;
    s->arg = arg;
    s->next = ctx->subs;
    ctx->subs = s;
    return 0;
}

static uint64_t s_api_timer_add(cairn_ctx_t *ctx, uint32_t after_ms, uint32_t repeat_ms,
                                cairn_timer_fn *cb, void *arg)
{
    rt_timer_t *t = calloc(1, sizeof *t);
    if (!t) return 0;
    t->id = ++ctx->next_timer;
    t->due = cairn_now_ms() + after_ms;
    t->repeat = repeat_ms;
    t->cb = cb;
    t->arg = arg;
    t->next = ctx->timers;
    ctx->timers = t;
    if (ctx->in_door) ctx->wake = true;
    return t->id;
}

static void s_api_timer_cancel(cairn_ctx_t *ctx, uint64_t id)
{
    for (rt_timer_t **p = &ctx->timers; *p; p = &(*p)->next)
        if ((*p)->id == id) {
            rt_timer_t *t = *p;
            *p = t->next;
            free(t);
            return;
        }
}

static const char *s_api_role(const cairn_ctx_t *ctx)
{
    return ctx->role;
}

static const char *s_api_state_dir(const cairn_ctx_t *ctx)
{
    return ctx->state_dir ? ctx->state_dir : ".";
}

static void s_api_verb_drop_flags(cairn_ctx_t *ctx, const char *verb, uint32_t flags)
{
    size_t n = 0;
    while (ctx->verbs && ctx->verbs[n].name) n++;
    if (!ctx->dropped && n && !(ctx->dropped = calloc(n, sizeof *ctx->dropped))) {
        s_api_log(ctx, CAIRN_LOG_ERROR, "out of memory dropping flags of %s", verb);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(ctx->verbs[i].name, verb) == 0) ctx->dropped[i] |= flags;
}

static const void *s_api_settings(const cairn_ctx_t *ctx)
{
    return ctx->settings;
}

static const char *s_api_peer_address(const cairn_req_t *r)
{
    return r->addr ? r->addr : "";
}

static void s_api_set_object(cairn_req_t *r, const char *object)
{
    size_t n = object ? strlen(object) : 0;
    if (!r || r->replied || n > CAIRN_OBJECT_MAX || !cairn_utf8_valid(object, n))
        return;
    memcpy(r->obj, object, n + 1);
}

static const cairn_api_t s_api = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_api_t),
    .body = s_api_body,
    .verb = s_api_verb,
    .principal = s_api_principal,
    .has_role = s_api_has_role,
    .workspace = s_api_workspace,
    .correlation_id = s_api_cid,
    .deadline_ms = s_api_deadline,
    .reply = s_api_reply,
    .reply_error = s_api_reply_error,
    .reply_err = s_api_reply_err,
    .defer = s_api_defer,
    .service = s_api_service,
    .conf = s_api_conf,
    .log = s_api_log,
    .call = s_api_call,
    .publish = s_api_publish,
    .subscribe = s_api_subscribe,
    .timer_add = s_api_timer_add,
    .timer_cancel = s_api_timer_cancel,
    .req_ctx = s_api_req_ctx,
    .role = s_api_role,
    .state_dir = s_api_state_dir,
    .verb_drop_flags = s_api_verb_drop_flags,
    .reply_error_body = s_api_reply_error_body,
    .req_inline = s_api_req_inline,
    .settings = s_api_settings,
    .set_object = s_api_set_object,
    .peer_address = s_api_peer_address,
    .call_ws = s_api_call_ws,
};

const cairn_api_t *cairn_runtime_api(void)
{
    return &s_api;
}

/* ---- receiving ------------------------------------------------------ */

/* A worker message: tag, cmd, header, body (the last two optional). */
typedef struct rt_msg {
    zmq_msg_t part[4];
    int n;
    int cmd;
} rt_msg_t;

static void s_msg_close(rt_msg_t *m)
{
    for (int i = 0; i < m->n; i++) zmq_msg_close(&m->part[i]);
    m->n = 0;
}

/* Receive one message; flags apply to its first frame (ZMQ_DONTWAIT: -1
 * with EAGAIN when none is queued). */
static int s_recv_flags(void *sock, rt_msg_t *m, int flags)
{
    m->n = 0;
    m->cmd = -1;
    int more = 1;
    while (more) {
        zmq_msg_t p;
        zmq_msg_init(&p);
        if (zmq_msg_recv(&p, sock, m->n ? 0 : flags) < 0) {
            zmq_msg_close(&p);
            s_msg_close(m);
            return -1;
        }
        more = zmq_msg_more(&p);
        if (m->n < 4)
            m->part[m->n++] = p;
        else
            zmq_msg_close(&p);
    }
    if (m->n >= 2 && zmq_msg_size(&m->part[0]) == strlen(CAIRN_WORKER_TAG) &&
        memcmp(zmq_msg_data(&m->part[0]), CAIRN_WORKER_TAG, strlen(CAIRN_WORKER_TAG)) ==
            0 &&
        zmq_msg_size(&m->part[1]) == 1)
        m->cmd = *(unsigned char *)zmq_msg_data(&m->part[1]);
    return 0;
}

static int s_recv(void *sock, rt_msg_t *m)
{
    return s_recv_flags(sock, m, 0);
}

static int s_unpack_part(rt_msg_t *m, int i, msgpack_zone *zone, msgpack_object *out)
{
    out->type = MSGPACK_OBJECT_NIL;
    if (m->n <= i || zmq_msg_size(&m->part[i]) == 0) return 0;
    size_t off = 0;
    if (cairn_msgpack_check(zmq_msg_data(&m->part[i]), zmq_msg_size(&m->part[i]),
                            NULL) != 0)
        return -1;
    return msgpack_unpack(zmq_msg_data(&m->part[i]), zmq_msg_size(&m->part[i]), &off,
                          zone, out) == MSGPACK_UNPACK_SUCCESS
               ? 0
               : -1;
}

/* Copy a header string into the request's buffer; NULL when it does not
 * fit (the kernel bounds each one, but a worker trusts no frame's sizes),
 * or holds a NUL (a C string would cut it short). */
static const char *s_req_str(cairn_req_t *r, size_t *used, cairn_str_t s)
{
    if (s.len >= RT_STRBUF - *used || memchr(s.ptr, '\0', s.len)) return NULL;
    char *p = r->strbuf + *used;
    memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    *used += s.len + 1;
    return p;
}

/* Stamp the request's strings from its header; false when one is unfit. */
static bool s_req_strings(cairn_req_t *r, const wire_request_t *m)
{
    size_t used = 0;
    r->ws = s_req_str(r, &used, m->ws);
    r->sub = s_req_str(r, &used, m->sub);
    r->cid = s_req_str(r, &used, m->cid);
    r->addr = s_req_str(r, &used, m->addr);
    if (!r->ws || !r->sub || !r->cid || !r->addr) return false;
    for (int i = 0; i < m->nroles; i++)
        if (!(r->roles[r->nroles++] = s_req_str(r, &used, m->roles[i]))) return false;
    return true;
}

static const cairn_verb_t *s_find_verb(const cairn_verb_t *verbs, cairn_str_t name)
{
    for (const cairn_verb_t *v = verbs; v->name; v++)
        if (cairn_str_eq(name, v->name)) return v;
    return NULL;
}

static int s_unpack_bytes(const void *data, size_t len, msgpack_zone *zone,
                          msgpack_object *out)
{
    size_t off = 0;
    out->type = MSGPACK_OBJECT_NIL;
    if (cairn_msgpack_check(data, len, NULL) != 0) return -1;
    return msgpack_unpack(data, len, &off, zone, out) == MSGPACK_UNPACK_SUCCESS ? 0
                                                                                : -1;
}

/* Serve one request: hdr is its packed header, body (may be NULL) is moved
 * from. With a sink, the reply is handed back instead of sent. */
/* Run the verb's handler. The one place an error reply is sent for a
 * handler: it returns -1 with err filled and the runtime answers err (even
 * after cairn_defer); it returns 0 once it has replied or deferred. */
static void s_handle(cairn_ctx_t *ctx, cairn_req_t *r)
{
    cairn_err_t err = {0};
    if (r->verb->handle(ctx->state, r, &err) == 0) return;
    if (r->replied) {
        s_api_log(ctx, CAIRN_LOG_ERROR, "verb %s failed after it replied: %s",
                  r->verb->name, err.msg);
        return;
    }
    if (err.st < CAIRN_ST_BAD_REQUEST)
        cairn_err_set(&err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                      "the plugin's handler for %s failed without saying why",
                      r->verb->name);
    s_api_reply_err(r, &err);
}

static cairn_door_rc_t s_serve(cairn_ctx_t *ctx, const void *hdr, size_t hdr_len,
                               zmq_msg_t *body, cairn_door_reply_t *sink)
{
    msgpack_zone_clear(&ctx->zone);
    msgpack_object h;
    wire_request_t m;
    cairn_req_t *r = NULL;
    /* A header the runtime cannot read (no rid, mistyped keys) has no
     * reply address: on the socket, the kernel's deadline answers it. */
    bool ok = s_unpack_bytes(hdr, hdr_len, &ctx->zone, &h) == 0 &&
              wire_parse_request(&h, &m) == 0;
    if (ok) {
        r = ctx->free_reqs;
        if (r)
            ctx->free_reqs = r->next_free;
        else
            r = malloc(sizeof *r);
    }
    if (!r) { /* on the socket, the kernel's deadline answers this one */
        if (sink)
            s_fill_sink(sink, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                        "cannot take the request", NULL, NULL, 0);
        return CAIRN_DOOR_REPLIED;
    }
    memset(r, 0, offsetof(cairn_req_t, strbuf));
    r->obj[0] = '\0';
    r->sink = sink;
    r->zone = NULL;
    r->replied = r->deferred = false;
    r->next_free = NULL;
    r->dprev = r->dnext = NULL;
    r->ctx = ctx;
    r->rid = m.rid;
    bool strings_ok = s_req_strings(r, &m);
    r->deadline = cairn_now_ms() + (m.ttl ? m.ttl : 30000);
    zmq_msg_init(&r->body_msg);
    if (body) zmq_msg_move(&r->body_msg, body);
    r->verb = s_find_verb(ctx->verbs, m.verb);
    if (!strings_ok) { /* no handler may see a cut principal, role or id */
        r->ws = r->sub = r->cid = "";
        r->nroles = 0;
        s_final(r, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "the request's header strings (ws, sub, cid, roles) are too long, too "
                "many or hold a NUL",
                NULL, 0);
        s_req_release(r);
        return CAIRN_DOOR_REPLIED;
    }
    if (!r->verb) {
        s_final(r, CAIRN_ST_NOT_FOUND, CAIRN_E_NO_VERB, "this plugin has no such verb",
                NULL, 0);
        s_req_release(r);
        return CAIRN_DOOR_REPLIED;
    }
    size_t off = 0, blen = zmq_msg_size(&r->body_msg);
    r->body.type = MSGPACK_OBJECT_NIL;
    cairn_err_t why = {0};
    if (blen && (cairn_msgpack_check(zmq_msg_data(&r->body_msg), blen, &why) != 0 ||
                 msgpack_unpack(zmq_msg_data(&r->body_msg), blen, &off, &ctx->zone,
                                &r->body) != MSGPACK_UNPACK_SUCCESS)) {
        char msg[CAIRN_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "the body frame: %s",
                 why.st ? why.msg : "not one valid msgpack value");
        s_final(r, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, msg, NULL, 0);
        s_req_release(r);
        return CAIRN_DOOR_REPLIED;
    }
    s_handle(ctx, r);
    if (r->deferred) { /* released when it replies (maybe already) */
        if (r->replied) return CAIRN_DOOR_REPLIED;
        r->sink = NULL; /* its FINAL will go on the socket */
        return CAIRN_DOOR_DEFERRED;
    }
    if (!r->replied) {
        s_api_log(ctx, CAIRN_LOG_ERROR, "verb %s returned without replying",
                  r->verb->name);
        s_final(r, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                "the plugin's handler returned no reply", NULL, 0);
    }
    s_req_release(r);
    return CAIRN_DOOR_REPLIED;
}

static void s_on_request(cairn_ctx_t *ctx, rt_msg_t *m)
{
    if (m->n < 3) return;
    s_serve(ctx, zmq_msg_data(&m->part[2]), zmq_msg_size(&m->part[2]),
            m->n > 3 ? &m->part[3] : NULL, NULL);
}

/* ---- the inline door ------------------------------------------------ */

cairn_door_t *cairn_door_new(void)
{
    cairn_door_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    if (pthread_mutex_init(&d->mu, NULL) != 0) {
        free(d);
        return NULL;
    }
    while (d->nonce == 0)
        if (getrandom(&d->nonce, sizeof d->nonce, 0) != (ssize_t)sizeof d->nonce)
            d->nonce = (uint64_t)cairn_now_ms() ^ ((uint64_t)getpid() << 32) ^
                       (uint64_t)(uintptr_t)d;
    return d;
}

void cairn_door_free(cairn_door_t **self_p)
{
    if (!self_p || !*self_p) return;
    pthread_mutex_destroy(&(*self_p)->mu);
    free(*self_p);
    *self_p = NULL;
}

uint64_t cairn_door_nonce(const cairn_door_t *d)
{
    return d ? d->nonce : 0;
}

cairn_door_rc_t cairn_door_try(cairn_door_t *d, const void *hdr, size_t hdr_len,
                               zmq_msg_t *body, cairn_door_reply_t *out)
{
    if (!d || pthread_mutex_trylock(&d->mu) != 0) return CAIRN_DOOR_BUSY;
    cairn_ctx_t *ctx = d->ctx;
    cairn_door_rc_t rc = CAIRN_DOOR_BUSY;
    if (ctx && !ctx->stopping) {
        ctx->in_door = true;
        rc = s_serve(ctx, hdr, hdr_len, body, out);
        ctx->in_door = false;
        if (ctx->wake) { /* the worker's poll timeout predates the new timer */
            ctx->wake = false;
            uint64_t one = 1;
            if (write(ctx->wake_fd, &one, sizeof one) < 0) { /* already pending */
            }
        }
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* The worker's side of the door's lock. */
static void s_door_hold(cairn_ctx_t *ctx)
{
    if (ctx->opts->door) pthread_mutex_lock(&ctx->opts->door->mu);
}

static void s_door_release(cairn_ctx_t *ctx)
{
    if (ctx->opts->door) pthread_mutex_unlock(&ctx->opts->door->mu);
}

static void s_on_result(cairn_ctx_t *ctx, rt_msg_t *m)
{
    msgpack_zone_clear(&ctx->zone);
    msgpack_object h, body;
    wire_outcome_t res;
    if (s_unpack_part(m, 2, &ctx->zone, &h) != 0 || wire_parse_result(&h, &res) != 0)
        return;
    if (s_unpack_part(m, 3, &ctx->zone, &body) != 0) body.type = MSGPACK_OBJECT_NIL;
    for (rt_call_t **p = &ctx->calls; *p; p = &(*p)->next) {
        if ((*p)->cid != res.id) continue;
        rt_call_t *c = *p;
        *p = c->next;
        char code[64], msg[CAIRN_ERR_MSG_MAX];
        snprintf(code, sizeof code, "%.*s", (int)res.code.len, res.code.ptr);
        snprintf(msg, sizeof msg, "%.*s", (int)res.err.len, res.err.ptr);
        if (c->cb) c->cb(c->arg, res.st, code, msg, &body);
        free(c);
        return;
    }
}

static void s_on_event(cairn_ctx_t *ctx)
{
    rt_msg_t m = {.n = 0};
    int more = 1;
    while (more && m.n < 4) {
        zmq_msg_init(&m.part[m.n]);
        if (zmq_msg_recv(&m.part[m.n], ctx->sub, 0) < 0) {
            zmq_msg_close(&m.part[m.n]);
            break;
        }
        more = zmq_msg_more(&m.part[m.n]);
        m.n++;
    }
    if (m.n >= 2) {
        char topic[256];
        size_t tl = zmq_msg_size(&m.part[0]);
        if (tl >= sizeof topic) tl = sizeof topic - 1;
        memcpy(topic, zmq_msg_data(&m.part[0]), tl);
        topic[tl] = '\0';
        msgpack_zone_clear(&ctx->zone);
        msgpack_object body;
        if (s_unpack_part(&m, 1, &ctx->zone, &body) != 0)
            body.type = MSGPACK_OBJECT_NIL;
        for (rt_sub_t *s = ctx->subs; s; s = s->next)
            if (strncmp(topic, s->prefix, strlen(s->prefix)) == 0)
                s->cb(s->arg, topic, &body);
    }
    s_msg_close(&m);
}

/* ---- handshake ------------------------------------------------------ */

static void s_conf_free(cairn_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nconf; i++) {
        free(ctx->conf_keys[i]);
        free(ctx->conf_vals[i]);
    }
    free(ctx->conf_keys);
    free(ctx->conf_vals);
    ctx->conf_keys = ctx->conf_vals = NULL;
    ctx->nconf = 0;
}

static void s_settings_free(cairn_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nsettings_strs; i++) free(ctx->settings_strs[i]);
    free(ctx->settings_strs);
    free(ctx->settings);
    ctx->settings = NULL;
    ctx->settings_strs = NULL;
    ctx->nsettings_strs = 0;
}

/* Fill the plugin's typed settings struct, once (the instance keeps the
 * settings it was started with across a kernel restart); its strings are
 * copies this context owns. */
static int s_fill_settings(cairn_ctx_t *ctx, cairn_err_t *err)
{
    const cairn_plugin_t *p = ctx->plugin;
    bool typed =
        p->size >= offsetof(cairn_plugin_t, settings_size) + sizeof(uint32_t) &&
        p->settings;
    if (!typed || ctx->settings) return 0;
    size_t n = 0;
    while (p->settings[n].key) n++;
    ctx->settings = calloc(1, p->settings_size ? p->settings_size : 1);
    ctx->settings_strs = calloc(n ? n : 1, sizeof(char *));
    if (!ctx->settings || !ctx->settings_strs) {
        s_settings_free(ctx);
        return cairn_err_oom(err, "for the settings");
    }
    if (cairn_plugin_fill_settings(p, (const char *const *)ctx->conf_keys,
                                   (const char *const *)ctx->conf_vals, ctx->nconf,
                                   ctx->settings, err) != 0) {
        s_settings_free(ctx);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const cairn_setting_t *t = &p->settings[i];
        if (t->type != CAIRN_CONF_STR && t->type != CAIRN_CONF_PATH) continue;
        char **field = (char **)((char *)ctx->settings + t->offset);
        if (!*field) continue;
        char *copy = strdup(*field);
        if (!copy) {
            s_settings_free(ctx);
            return cairn_err_oom(err, "for the settings");
        }
        ctx->settings_strs[ctx->nsettings_strs++] = *field = copy;
    }
    return 0;
}

static char *s_obj_dup(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) return NULL;
    cairn_str_t s = {o->via.str.ptr, o->via.str.size};
    return cairn_str_dup(s);
}

static int s_take_welcome(cairn_ctx_t *ctx, const msgpack_object *h, cairn_err_t *err)
{
    wire_welcome_t m;
    if (wire_parse_welcome(h, &m) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_WELCOME,
                             "the kernel's WELCOME is malformed");
    if (m.hb_ms) ctx->hb_ms = m.hb_ms;
    if (m.liveness) ctx->liveness = m.liveness;
    free(ctx->events_endpoint);
    ctx->events_endpoint = m.events.len ? cairn_str_dup(m.events) : NULL;
    free(ctx->state_dir);
    ctx->state_dir = ctx->opts->state_dir ? strdup(ctx->opts->state_dir)
                     : m.state_dir.len    ? cairn_str_dup(m.state_dir)
                                          : NULL;
    const msgpack_object *set = m.settings_map;
    s_conf_free(ctx);
    if (set && set->type == MSGPACK_OBJECT_MAP && set->via.map.size) {
        size_t n = set->via.map.size;
        ctx->conf_keys = calloc(n, sizeof(char *));
        ctx->conf_vals = calloc(n, sizeof(char *));
        if (!ctx->conf_keys || !ctx->conf_vals) return cairn_err_oom(err, NULL);
        for (size_t i = 0; i < n; i++) {
            char *k = s_obj_dup(&set->via.map.ptr[i].key);
            char *val = s_obj_dup(&set->via.map.ptr[i].val);
            if (!k || !val) {
                free(k);
                free(val);
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                     "settings must map strings to strings");
            }
            ctx->conf_keys[ctx->nconf] = k;
            ctx->conf_vals[ctx->nconf++] = val;
        }
    }
    if (cairn_plugin_check_settings(ctx->plugin, (const char *const *)ctx->conf_keys,
                                    (const char *const *)ctx->conf_vals, ctx->nconf,
                                    err) != 0 ||
        s_fill_settings(ctx, err) != 0)
        return -1;
    ctx->verbs =
        cairn_plugin_verbs_for(ctx->plugin, ctx->opts->service,
                               s_api_conf(ctx, CAIRN_ROLE_SETTING), &ctx->role, err);
    return ctx->verbs ? 0 : -1;
}

static int s_send_hello(cairn_ctx_t *ctx)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *mode = ctx->opts->mode ? ctx->opts->mode : "process";
    const char *version = ctx->plugin->version ? ctx->plugin->version : "";
    wire_hello_t m = {.plugin = {ctx->plugin->name, strlen(ctx->plugin->name)},
                      .svc = {ctx->opts->service, strlen(ctx->opts->service)},
                      .mode = {mode, strlen(mode)},
                      .version = {version, strlen(version)},
                      .abi = CAIRN_PLUGIN_ABI,
                      .pid = (int64_t)getpid(),
                      .door = ctx->opts->door ? ctx->opts->door->nonce : 0};
    wire_pack_hello(&pk, &m);
    int rc = s_send_cmd(ctx, CAIRN_W_HELLO, &sb, NULL, 0, false);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int s_send_ready(cairn_ctx_t *ctx)
{
    const cairn_plugin_t *p = ctx->plugin;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    wire_pack_ready(&pk, ctx->verbs, ctx->dropped,
                    p->concurrency ? p->concurrency : 256);
    int rc = s_send_cmd(ctx, CAIRN_W_READY, &sb, NULL, 0, false);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void s_send_fail(cairn_ctx_t *ctx, const cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    wire_pack_err(&pk, err->msg);
    s_send_cmd(ctx, CAIRN_W_FAIL, &sb, NULL, 0, false);
    msgpack_sbuffer_destroy(&sb);
}

static int s_open_socket(cairn_ctx_t *ctx, cairn_err_t *err)
{
    if (ctx->sock) zmq_close(ctx->sock);
    ctx->sock = zmq_socket(ctx->opts->zctx, ZMQ_DEALER);
    if (!ctx->sock)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "zmq_socket: %s",
                             zmq_strerror(errno));
    int zero = 0, hwm = 0;
    zmq_setsockopt(ctx->sock, ZMQ_LINGER, &zero, sizeof zero);
    /* Flow control is the kernel's concurrency window, not the HWM. */
    zmq_setsockopt(ctx->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(ctx->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (s_curve(ctx, ctx->sock, ctx->opts->endpoint, err) != 0) return -1;
    if (zmq_connect(ctx->sock, ctx->opts->endpoint) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                             "cannot connect to %s: %s", ctx->opts->endpoint,
                             zmq_strerror(errno));
    return 0;
}

/* HELLO until WELCOME arrives (or stop). first: call init after it. */
static int s_handshake(cairn_ctx_t *ctx, bool first, cairn_err_t *err)
{
    uint64_t next_hello = 0;
    while (!atomic_load(ctx->opts->stop)) {
        uint64_t now = cairn_now_ms();
        if (now >= next_hello) {
            s_send_hello(ctx);
            next_hello = now + 1000;
        }
        zmq_pollitem_t it = {ctx->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) <= 0) continue;
        rt_msg_t m;
        if (s_recv(ctx->sock, &m) != 0) continue;
        if (m.cmd == CAIRN_W_DISCONNECT) {
            s_msg_close(&m);
            return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_REFUSED,
                                 "the kernel refused this worker");
        }
        if (m.cmd != CAIRN_W_WELCOME) {
            s_msg_close(&m);
            continue;
        }
        msgpack_zone_clear(&ctx->zone);
        msgpack_object h;
        int rc = s_unpack_part(&m, 2, &ctx->zone, &h);
        if (rc == 0) rc = s_take_welcome(ctx, &h, err);
        s_msg_close(&m);
        if (rc == 0 && first && ctx->plugin->init(ctx, &ctx->state, err) != 0) {
            if (!err->st)
                cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INIT_FAILED,
                              "init failed");
            rc = -1;
        }
        if (rc != 0) {
            s_send_fail(ctx, err);
            return -1;
        }
        ctx->last_heard = cairn_now_ms();
        return s_send_ready(ctx);
    }
    return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_STOPPED,
                         "stopped before the kernel answered");
}

/* ---- the loop ------------------------------------------------------- */

static long s_fire_timers(cairn_ctx_t *ctx, uint64_t now)
{
    long wait = ctx->hb_ms;
    for (rt_timer_t **p = &ctx->timers; *p;) {
        rt_timer_t *t = *p;
        if (t->due <= now) {
            t->cb(t->arg);
            /* The callback may have cancelled or added timers: restart. */
            rt_timer_t **q = &ctx->timers;
            while (*q && *q != t) q = &(*q)->next;
            if (!*q) {
                p = &ctx->timers;
                continue;
            }
            if (t->repeat) {
                t->due = now + t->repeat;
            } else {
                *q = t->next;
                free(t);
                p = &ctx->timers;
                continue;
            }
        }
        if ((long)(t->due - now) < wait) wait = (long)(t->due - now);
        p = &t->next;
    }
    return wait;
}

static void s_ctx_free(cairn_ctx_t *ctx)
{
    /* Requests still deferred at exit: the kernel answers them 503 itself. */
    while (ctx->deferred) s_req_release(ctx->deferred);
    while (ctx->free_reqs) {
        cairn_req_t *r = ctx->free_reqs;
        ctx->free_reqs = r->next_free;
        free(r);
    }
    while (ctx->calls) {
        rt_call_t *c = ctx->calls;
        ctx->calls = c->next;
        free(c);
    }
    while (ctx->subs) {
        rt_sub_t *s = ctx->subs;
        ctx->subs = s->next;
        free(s->prefix);
        free(s);
    }
    while (ctx->timers) {
        rt_timer_t *t = ctx->timers;
        ctx->timers = t->next;
        free(t);
    }
    s_conf_free(ctx);
    s_settings_free(ctx);
    free(ctx->dropped);
    free(ctx->events_endpoint);
    free(ctx->state_dir);
    if (ctx->sub) zmq_close(ctx->sub);
    if (ctx->sock) zmq_close(ctx->sock);
    msgpack_zone_destroy(&ctx->zone);
}

int cairn_runtime_run(const cairn_runtime_opts_t *opts, cairn_err_t *err)
{
    cairn_ctx_t ctx = {.opts = opts,
                       .plugin = opts->plugin,
                       .hb_ms = 1000,
                       .liveness = 5,
                       .wake_fd = -1};
    msgpack_zone_init(&ctx.zone, 64 * 1024);
    s_door_hold(&ctx);
    int rc = 0;
    if (opts->door && (ctx.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        rc =
            cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "eventfd: %s", strerror(errno));
    if (rc == 0) rc = s_open_socket(&ctx, err);
    if (rc == 0) rc = s_handshake(&ctx, true, err);
    bool inited = rc == 0;
    if (inited && opts->door) opts->door->ctx = &ctx;
    uint64_t next_tick = cairn_now_ms() + ctx.plugin->tick_ms;
    uint64_t last_turn = cairn_now_ms();
    while (rc == 0 && !atomic_load(opts->stop)) {
        uint64_t now = cairn_now_ms();
        /* A turn waits at most hb_ms. Far longer means this thread did not
         * run (the process was stopped or paused, or a handler took that
         * long): the kernel's messages still wait unread, so its silence
         * says nothing yet. Its deadline starts again from now. */
        if (now - last_turn > 2 * (uint64_t)ctx.hb_ms) ctx.last_heard = now;
        last_turn = now;
        long wait = s_fire_timers(&ctx, now);
        if (ctx.plugin->tick && ctx.plugin->tick_ms) {
            if (now >= next_tick) {
                ctx.plugin->tick(ctx.state, now);
                next_tick = now + ctx.plugin->tick_ms;
            }
            if ((long)(next_tick - now) < wait) wait = (long)(next_tick - now);
        }
        if (now - ctx.last_sent >= ctx.hb_ms)
            s_send_cmd(&ctx, CAIRN_W_HEARTBEAT, NULL, NULL, 0, false);
        if (now - ctx.last_heard > (uint64_t)ctx.hb_ms * ctx.liveness) {
            if (!opts->reconnect) break; /* the kernel is gone */
            s_api_log(&ctx, CAIRN_LOG_WARN, "the kernel went silent; reconnecting");
            rc = s_open_socket(&ctx, err);
            if (rc == 0) rc = s_handshake(&ctx, false, err);
            continue;
        }
        if (wait > (long)ctx.hb_ms) wait = ctx.hb_ms;
        if (wait < 0) wait = 0;
        /* The kernel socket, then the event socket and the wake fd if any. */
        zmq_pollitem_t items[3] = {{ctx.sock, 0, ZMQ_POLLIN, 0}};
        int nitems = 1, sub_at = -1, wake_at = -1;
        if (ctx.sub)
            items[sub_at = nitems++] = (zmq_pollitem_t){ctx.sub, 0, ZMQ_POLLIN, 0};
        if (ctx.wake_fd >= 0)
            items[wake_at = nitems++] =
                (zmq_pollitem_t){NULL, ctx.wake_fd, ZMQ_POLLIN, 0};
        s_door_release(&ctx); /* the kernel may serve INLINE verbs meanwhile */
        int n = zmq_poll(items, nitems, wait);
        s_door_hold(&ctx);
        if (n < 0 && errno != EINTR) break;
        if (n <= 0) continue;
        uint64_t woke; /* a timer was added: just loop to recompute the wait */
        if (wake_at >= 0 && (items[wake_at].revents & ZMQ_POLLIN) &&
            read(ctx.wake_fd, &woke, sizeof woke) < 0)
            woke = 0;
        if (sub_at >= 0 && (items[sub_at].revents & ZMQ_POLLIN)) s_on_event(&ctx);
        /* Drain what is ready on the kernel socket, a bounded batch at a time. */
        for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN); i++) {
            rt_msg_t m;
            if (s_recv_flags(ctx.sock, &m, ZMQ_DONTWAIT) != 0) break;
            ctx.last_heard = cairn_now_ms();
            if (m.cmd == CAIRN_W_REQUEST)
                s_on_request(&ctx, &m);
            else if (m.cmd == CAIRN_W_RESULT)
                s_on_result(&ctx, &m);
            else if (m.cmd == CAIRN_W_DISCONNECT) {
                s_msg_close(&m);
                if (!opts->reconnect) {
                    atomic_store(opts->stop, 1);
                    break;
                }
                /* The kernel forgot us (it restarted): say HELLO again. */
                rc = s_open_socket(&ctx, err);
                if (rc == 0) rc = s_handshake(&ctx, false, err);
                break;
            }
            s_msg_close(&m);
        }
    }
    ctx.stopping = true;
    if (opts->door) opts->door->ctx = NULL;
    if (inited && ctx.plugin->fini) ctx.plugin->fini(ctx.state);
    if (inited && ctx.sock) s_send_cmd(&ctx, CAIRN_W_DISCONNECT, NULL, NULL, 0, false);
    s_ctx_free(&ctx);
    if (ctx.wake_fd >= 0) close(ctx.wake_fd);
    s_door_release(&ctx);
    return rc;
}
