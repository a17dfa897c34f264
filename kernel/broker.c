/* The broker loop: CAIRN/1 on the frontend, the worker protocol on the
 * backend, deadlines, heartbeats and events. Bodies travel as the zmq
 * message they arrived in; only headers are decoded and re-encoded. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker_int.h"

#define FRAME_MAX_PARTS 6
#define HEADER_MAX (64 * 1024)
#define NAME_MAX_LEN 64
#define WS_MAX_LEN 64
#define ZOMBIE_GRACE_MS (10 * 60 * 1000)

static int s_sigfd = -1;

const char *svc_state_name(svc_state_t s)
{
    switch (s) {
        case SVC_UP:
            return "up";
        case SVC_RESTARTING:
            return "restarting";
        case SVC_STARTING:
            return "starting";
        default:
            return "down";
    }
}

int broker_signals_init(cairn_err_t *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "cannot block signals");
    sigdelset(&set, SIGPIPE);
    s_sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s_sigfd < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "signalfd: %s",
                             strerror(errno));
    return 0;
}

/* ---- small helpers ---------------------------------------------------- */

static void s_sb_reset(broker_t *b)
{
    msgpack_sbuffer_clear(&b->sb);
}

static msgpack_packer s_packer(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return pk;
}

static int s_send_bytes(void *sock, const void *data, size_t len, bool more)
{
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

/* Never block on a client: a full pipe (it does not read) or a routing id
 * that is gone fails at once. */
static int s_send_client(void *sock, const void *data, size_t len, bool more)
{
    int flags = ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0);
    return zmq_send(sock, data, len, flags) < 0 ? -1 : 0;
}

/* Remember a client found gone; its queued requests go after this message. */
static void s_note_gone(broker_t *b, const void *route, size_t len)
{
    if (b->ngone == sizeof b->gone / sizeof b->gone[0] || len > PENDING_ROUTE_MAX)
        return;
    memcpy(b->gone[b->ngone], route, len);
    b->gone_len[b->ngone++] = len;
}

service_t *broker_find_service(broker_t *b, const char *name, size_t len)
{
    for (size_t i = 0; i < b->nservices; i++) {
        const char *n = b->services[i].conf->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) return &b->services[i];
    }
    return NULL;
}

static const verb_info_t *s_find_verb(const service_t *s, cairn_str_t verb)
{
    for (size_t i = 0; i < s->nverbs; i++)
        if (cairn_str_eq(verb, s->verbs[i].name)) return &s->verbs[i];
    return NULL;
}

void broker_send_event(broker_t *b, const char *topic, const msgpack_sbuffer *body)
{
    if (!b->pub) return;
    s_send_bytes(b->pub, topic, strlen(topic), true);
    s_send_bytes(b->pub, body ? body->data : "", body ? body->size : 0, false);
}

/* ---- replies ------------------------------------------------------------ */

static void s_on_resolved(broker_t *b, uint64_t id, int st, const char *code,
                          const char *msg, zmq_msg_t *body);
static void s_on_kernel_reply(broker_t *b, uint64_t id, int st, const char *code,
                              const char *msg, zmq_msg_t *body);

/* A mutating client request's audit record, kept until it is answered. */
typedef struct audit_note {
    char sub[AUTHZ_SUB_MAX], ws[65], svc[65], verb[65], cid[129];
    char digest[AUDIT_DIGEST_HEX];
    char obj[CAIRN_OBJECT_MAX + 1]; /* what the plugin's reply named */
} audit_note_t;
#define AUDIT_CALL_ID UINT64_MAX /* the kernel's one append in flight */

/* Send a client reply. body (may be NULL) is sent and closed. A large body
 * is charged to the client until libzmq has written it; a client with too
 * many unread bytes gets a short 429 instead (clients.h). */
static void s_reply_client(broker_t *b, const void *route, size_t route_len,
                           const cairn_hdr_t *req, int st, const char *code,
                           const char *msg, zmq_msg_t *body)
{
    cairn_err_t why;
    if (body && zmq_msg_size(body) >= CLIENTS_TRACK_MIN) {
        client_t *c = clients_get(b->clients, route, route_len);
        if (!c) {
            cairn_err_oom(&why, "for the reply");
            zmq_msg_close(body);
            zmq_msg_init(body);
        }
        if (!c || clients_track_reply(b->clients, c, body, &why) != 0) {
            b->replies_dropped++;
            st = why.st, code = why.code, msg = why.msg;
        }
    }
    s_sb_reset(b);
    msgpack_packer pk = s_packer(&b->sb);
    cairn_hdr_pack_reply(&pk, req, st, code, msg);
    if (s_send_client(b->frontend, route, route_len, true) != 0) {
        b->replies_dropped++;
        if (errno == EHOSTUNREACH) s_note_gone(b, route, route_len);
    } else if (s_send_client(b->frontend, "", 0, true) == 0 &&
               s_send_client(b->frontend, CAIRN_TAG, strlen(CAIRN_TAG), true) == 0 &&
               s_send_client(b->frontend, b->sb.data, b->sb.size, true) == 0) {
        if (body)
            zmq_msg_send(body, b->frontend, ZMQ_DONTWAIT);
        else
            s_send_client(b->frontend, "", 0, false);
    }
    if (body) zmq_msg_close(body);
}

static void s_pending_hdr(const pending_t *p, cairn_hdr_t *h)
{
    memset(h, 0, sizeof *h);
    h->id_type = p->id_type;
    h->id_uint = p->id_uint;
    h->id_str.ptr = p->id_str;
    h->id_str.len = p->id_str_len;
}

static void s_send_result(broker_t *b, const pending_t *p, int st, const char *code,
                          const char *msg, zmq_msg_t *body)
{
    s_sb_reset(b);
    msgpack_packer pk = s_packer(&b->sb);
    wire_pack_result(&pk, p->id_uint, st, code, msg);
    unsigned char cmd = CAIRN_W_RESULT;
    if (s_send_bytes(b->backend, p->route, p->route_len, true) == 0 &&
        s_send_bytes(b->backend, CAIRN_WORKER_TAG, strlen(CAIRN_WORKER_TAG), true) ==
            0 &&
        s_send_bytes(b->backend, &cmd, 1, true) == 0 &&
        s_send_bytes(b->backend, b->sb.data, b->sb.size, true) == 0) {
        if (body)
            zmq_msg_send(body, b->backend, 0);
        else
            s_send_bytes(b->backend, "", 0, false);
    }
    if (body) zmq_msg_close(body);
}

static void s_answer(broker_t *b, pending_t *p, int st, const char *code,
                     const char *msg, zmq_msg_t *body);

/* Answer the caller but keep the entry (marked answered). */
static void s_finish_keep(broker_t *b, pending_t *p, int st, const char *code,
                          const char *msg)
{
    s_answer(b, p, st, code, msg, NULL);
    p->answered = true;
}

/* Give back the bytes a queued request was charged. */
static void s_unqueue(broker_t *b, pending_t *p)
{
    if (!p->client) return;
    clients_unqueue(b->clients, p->client, p->qbytes);
    p->client = NULL;
    p->qbytes = 0;
}

/* Unlink a queued request from its service's queue. */
static void s_queue_unlink(service_t *s, pending_t *p)
{
    pending_t **pp = &s->qhead, *prev = NULL;
    while (*pp && *pp != p) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (!*pp) return;
    *pp = p->qnext;
    if (s->qtail == p) s->qtail = prev;
    s->qlen--;
}

/* Forget a pending request, giving its worker's window slot back. */
static void s_release(broker_t *b, pending_t *p)
{
    free(p->audit);
    p->audit = NULL;
    if (p->worker && p->worker->inflight) p->worker->inflight--;
    s_unqueue(b, p);
    pending_remove(b->pending, p);
}

/* The object the plugin named for an audited request's record. */
static void s_note_object(pending_t *p, const char *obj, size_t len)
{
    if (p->audit && len <= CAIRN_OBJECT_MAX)
        snprintf(p->audit->obj, sizeof p->audit->obj, "%.*s", (int)len, obj);
}

static void s_answer(broker_t *b, pending_t *p, int st, const char *code,
                     const char *msg, zmq_msg_t *body)
{
    if (p->origin != ORIGIN_KERNEL && p->svc)
        metrics_count(p->svc->metrics, p->mrow, st, metrics_now_us() - p->t0_us);
    if (p->origin == ORIGIN_CLIENT && p->audit) { /* the status the client got */
        audit_note_t *n = p->audit;
        kaudit_add(b->audit, n->sub, n->ws, n->svc, n->verb, n->obj, n->cid, st,
                   n->digest);
        free(n);
        p->audit = NULL;
    }
    if (p->origin == ORIGIN_KERNEL) {
        s_on_kernel_reply(b, p->id_uint, st, code, msg, body);
    } else if (p->origin == ORIGIN_CLIENT) {
        cairn_hdr_t h;
        s_pending_hdr(p, &h);
        s_reply_client(b, p->route, p->route_len, &h, st, code, msg, body);
    } else {
        s_send_result(b, p, st, code, msg, body);
    }
}

/* Answer a pending request (client or nested call) and forget it; an entry
 * already answered (504) is only forgotten. */
static void s_finish(broker_t *b, pending_t *p, int st, const char *code,
                     const char *msg, zmq_msg_t *body)
{
    if (p->answered) {
        if (body) zmq_msg_close(body);
    } else {
        s_answer(b, p, st, code, msg, body);
    }
    s_release(b, p);
}

/* ---- dispatch ---------------------------------------------------------- */

static worker_t *s_pick_worker(service_t *s)
{
    worker_t *best = NULL;
    for (worker_t *w = s->workers; w; w = w->next)
        if (w->ready && w->inflight < w->concurrency &&
            (!best || w->inflight < best->inflight))
            best = w;
    return best;
}

static void s_send_request(broker_t *b, worker_t *w, pending_t *p, zmq_msg_t *hdr,
                           zmq_msg_t *body)
{
    unsigned char cmd = CAIRN_W_REQUEST;
    p->worker = w;
    w->inflight++;
    w->last_sent = cairn_now_ms();
    s_send_bytes(b->backend, w->id, w->id_len, true);
    s_send_bytes(b->backend, CAIRN_WORKER_TAG, strlen(CAIRN_WORKER_TAG), true);
    s_send_bytes(b->backend, &cmd, 1, true);
    zmq_msg_send(hdr, b->backend, ZMQ_SNDMORE);
    zmq_msg_send(body, b->backend, 0);
}

/* Move queued requests to workers with room. */
static void s_drain_queue(broker_t *b, service_t *s)
{
    while (s->qhead) {
        worker_t *w = s_pick_worker(s);
        if (!w) return;
        pending_t *p = s->qhead;
        s->qhead = p->qnext;
        if (!s->qhead) s->qtail = NULL;
        s->qlen--;
        p->queued_msgs = false;
        s_unqueue(b, p);
        s_send_request(b, w, p, &p->hdr, &p->body);
        zmq_msg_close(&p->hdr);
        zmq_msg_close(&p->body);
    }
}

typedef struct route_req {
    pending_origin_t origin;
    const void *route;
    size_t route_len;
    const cairn_hdr_t *hdr; /* id (client) or cid in id_uint (worker) */
    cairn_str_t svc, verb, tok, ws, cid;
    cairn_str_t addr; /* a tcp client's address, else empty */
    uint64_t ttl;
    const authz_principal_t *caller; /* set for nested calls */
    zmq_msg_t *body;
    uint64_t t0_us;     /* when it reached the broker (metrics.h) */
    service_t *counted; /* its service once known: a refusal is counted there */
    uint32_t mrow;      /* and its verb's row */
} route_req_t;

static void s_pack_request_hdr(broker_t *b, pending_t *p, const route_req_t *r,
                               const authz_principal_t *who, uint64_t ttl)
{
    wire_request_t m = {.rid = p->rid,
                        .svc = r->svc,
                        .verb = r->verb,
                        .ws = r->ws,
                        .sub = {who->sub, strlen(who->sub)},
                        .cid = r->cid,
                        .addr = r->addr,
                        .ttl = ttl};
    for (int i = 0; i < who->nroles && i < WIRE_MAX_ROLES; i++)
        m.roles[m.nroles++] = (cairn_str_t){who->roles[i], strlen(who->roles[i])};
    s_sb_reset(b);
    msgpack_packer pk = s_packer(&b->sb);
    wire_pack_request(&pk, &m);
}

/* Answer a request that never became pending; body (may be NULL) is sent
 * and closed. */
static void s_refuse_body(broker_t *b, const route_req_t *r, int st, const char *code,
                          const char *msg, zmq_msg_t *body)
{
    if (r->counted && r->origin != ORIGIN_KERNEL)
        metrics_count(r->counted->metrics, r->mrow, st, metrics_now_us() - r->t0_us);
    if (r->origin == ORIGIN_KERNEL) {
        s_on_kernel_reply(b, r->hdr->id_uint, st, code, msg, body);
    } else if (r->origin == ORIGIN_CLIENT) {
        s_reply_client(b, r->route, r->route_len, r->hdr, st, code, msg, body);
    } else {
        pending_t tmp = {.id_uint = r->hdr->id_uint, .route_len = r->route_len};
        memcpy(tmp.route, r->route, r->route_len);
        s_send_result(b, &tmp, st, code, msg, body);
    }
}

/* Returns -1 (refused), for s_route to `return s_refuse(...)`. */
static int s_refuse(broker_t *b, const route_req_t *r, int st, const char *code,
                    const char *msg)
{
    s_refuse_body(b, r, st, code, msg, NULL);
    return -1;
}

/* The error body {"delivered": false}: no plugin saw the request, so the
 * caller may resend it whatever the verb (PROTOCOL.md). */
static zmq_msg_t *s_undelivered(zmq_msg_t *m)
{
    static const unsigned char packed[] = {0x81, 0xa9, 'd', 'e', 'l', 'i',
                                           'v',  'e',  'r', 'e', 'd', 0xc2};
    zmq_msg_init_size(m, sizeof packed);
    memcpy(zmq_msg_data(m), packed, sizeof packed);
    return m;
}

/* Refuse a request that no plugin saw (503 at routing time, 429). */
static int s_refuse_undelivered(broker_t *b, const route_req_t *r, int st,
                                const char *code, const char *msg)
{
    zmq_msg_t m;
    s_refuse_body(b, r, st, code, msg, s_undelivered(&m));
    return -1;
}

/* Serve an INLINE verb on this thread when the worker is idle (no request
 * of its own in flight, so none can be overtaken). false: send it. */
static bool s_try_door(broker_t *b, worker_t *w, pending_t *p, zmq_msg_t *body)
{
    cairn_door_reply_t out;
    switch (cairn_door_try(w->door, b->sb.data, b->sb.size, body, &out)) {
        case CAIRN_DOOR_BUSY:
            return false;
        case CAIRN_DOOR_DEFERRED: /* its FINAL comes on the socket */
            p->worker = w;
            w->inflight++;
            w->last_sent = cairn_now_ms();
            return true;
        case CAIRN_DOOR_REPLIED:
            break;
    }
    s_note_object(p, out.obj, strlen(out.obj));
    s_finish(b, p, out.st, out.code, out.msg, &out.body);
    return true;
}

/* A mutating client request's record, filled now (its status comes with
 * its answer). NULL when out of memory. */
static audit_note_t *s_audit_note(const route_req_t *r, const authz_principal_t *who)
{
    audit_note_t *n = malloc(sizeof *n);
    if (!n) return NULL;
    n->obj[0] = '\0'; /* named by the plugin's reply, if it names one */
    snprintf(n->sub, sizeof n->sub, "%s", who->sub);
    snprintf(n->ws, sizeof n->ws, "%.*s", (int)r->ws.len, r->ws.ptr);
    snprintf(n->svc, sizeof n->svc, "%.*s", (int)r->svc.len, r->svc.ptr);
    snprintf(n->verb, sizeof n->verb, "%.*s", (int)r->verb.len, r->verb.ptr);
    snprintf(n->cid, sizeof n->cid, "%.*s", (int)r->cid.len, r->cid.ptr);
    kaudit_digest(zmq_msg_data(r->body), zmq_msg_size(r->body), n->digest);
    return n;
}

/* A client request refused at the edge (401, 403) is a record too. */
static void s_audit_refused(broker_t *b, const route_req_t *r, const char *sub, int st)
{
    if (r->origin != ORIGIN_CLIENT || !kaudit_on(b->audit)) return;
    audit_note_t *n = s_audit_note(r, &(authz_principal_t){.sub = sub});
    if (!n) return;
    if (kaudit_add(b->audit, n->sub, n->ws, n->svc, n->verb, "", n->cid, st,
                   n->digest) != 0)
        fprintf(stderr,
                "cairnd: audit: the trail is full; a refusal of %s.%s by %s is "
                "not recorded\n",
                n->svc, n->verb, n->sub);
    free(n);
}

/* Validate, authorize and dispatch (or queue) one request: 0, or -1 when
 * it was refused (and answered so). */
static int s_route(broker_t *b, route_req_t *r)
{
    cairn_err_t err = {0};
    char msg[CAIRN_ERR_MSG_MAX];
    if (r->svc.len > NAME_MAX_LEN || r->verb.len > NAME_MAX_LEN)
        return s_refuse(b, r, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                        "svc and verb are at most 64 characters");
    if (r->ws.len > WS_MAX_LEN)
        return s_refuse(b, r, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                        "ws is at most 64 characters");
    size_t body_len = zmq_msg_size(r->body);
    if (body_len > b->conf->max_frame) {
        snprintf(
            msg, sizeof msg,
            "the body frame is %zu bytes; this kernel accepts at most %llu (kernel."
            "max_frame)",
            body_len, (unsigned long long)b->conf->max_frame);
        /* A frame over the kernel's limit is a malformed request: 400
         * (docs/PROTOCOL.md, "Frames"). */
        return s_refuse(b, r, CAIRN_ST_BAD_REQUEST, CAIRN_E_TOO_LARGE, msg);
    }
    service_t *s = broker_find_service(b, r->svc.ptr, r->svc.len);
    if (!s) {
        snprintf(msg, sizeof msg,
                 "there is no service '%.*s' (sys.services lists them)",
                 (int)r->svc.len, r->svc.ptr);
        return s_refuse(b, r, CAIRN_ST_NOT_FOUND, CAIRN_E_NO_SERVICE, msg);
    }
    const verb_info_t *v = s_find_verb(s, r->verb);
    r->counted = s;
    r->mrow = v ? v->mrow : 0;
    if (s->state != SVC_UP || !s->workers) {
        snprintf(msg, sizeof msg, "the service '%s' is %s%s%s", s->conf->name,
                 svc_state_name(s->state), s->last_error[0] ? ": " : "", s->last_error);
        return s_refuse_undelivered(b, r, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                                    msg);
    }
    if (!v) {
        snprintf(msg, sizeof msg, "the service '%s' has no verb '%.*s'", s->conf->name,
                 (int)r->verb.len, r->verb.ptr);
        return s_refuse(b, r, CAIRN_ST_NOT_FOUND, CAIRN_E_NO_VERB, msg);
    }
    if (v->max_body && body_len > v->max_body) {
        snprintf(msg, sizeof msg, "the body is %zu bytes; %s.%s accepts at most %u",
                 body_len, s->conf->name, v->name, v->max_body);
        return s_refuse(b, r, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE, msg);
    }
    authz_principal_t who_buf = {.sub = "anonymous"}, *who = &who_buf;
    const char *perm = (v->flags & CAIRN_VERB_PUBLIC) ? NULL : v->perm;
    if (r->caller) { /* a nested call: the calling plugin's own principal */
        who = (authz_principal_t *)r->caller;
        if (authz_permits(b->authz, who, perm, &err) != 0)
            return s_refuse(b, r, err.st, err.code, err.msg);
    } else if (authz_check(b->authz, r->tok, r->ws, perm, who, &err) != 0) {
        s_audit_refused(b, r, err.st == CAIRN_ST_FORBIDDEN ? who->sub : "anonymous",
                        err.st);
        return s_refuse(b, r, err.st, err.code, err.msg);
    }
    bool audited = r->origin == ORIGIN_CLIENT && (v->flags & CAIRN_VERB_MUTATING) &&
                   kaudit_on(b->audit);
    if (audited && kaudit_refusing(b->audit, msg, sizeof msg))
        return s_refuse_undelivered(b, r, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                                    msg);
    uint64_t ttl = r->ttl ? r->ttl : b->conf->default_ttl_ms;
    if (ttl > b->conf->max_ttl_ms) ttl = b->conf->max_ttl_ms;
    client_t *c = NULL;
    if (r->origin == ORIGIN_CLIENT) {
        if (!(c = clients_get(b->clients, r->route, r->route_len)))
            return s_refuse(b, r, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                            "out of memory");
        if (clients_may_send(b->clients, c, &err) != 0)
            return s_refuse_undelivered(b, r, err.st, err.code, err.msg);
    }
    worker_t *w = s_pick_worker(s);
    if (!w && s->qlen >= b->conf->max_queue) {
        snprintf(msg, sizeof msg,
                 "the service '%s' is busy: %u requests are queued (kernel.max_queue); "
                 "retry later",
                 s->conf->name, s->qlen);
        return s_refuse_undelivered(b, r, CAIRN_ST_OVERLOADED, CAIRN_E_OVERLOADED, msg);
    }
    audit_note_t *note = audited ? s_audit_note(r, who) : NULL;
    if (audited && !note)
        return s_refuse(b, r, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                        "out of memory for the audit record");
    if (!w && c && clients_queue(b->clients, c, body_len, &err) != 0) {
        free(note);
        return s_refuse_undelivered(b, r, err.st, err.code, err.msg);
    }
    pending_t *p = pending_add(b->pending, cairn_now_ms() + ttl);
    if (!p) {
        free(note);
        if (!w && c) clients_unqueue(b->clients, c, body_len);
        return s_refuse(b, r, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                        "out of memory");
    }
    p->audit = note;
    if (!w && c) {
        p->client = c;
        p->qbytes = body_len;
    }
    p->origin = r->origin;
    p->svc = s;
    p->t0_us = r->t0_us;
    p->mrow = r->mrow;
    p->route_len = r->route_len;
    memcpy(p->route, r->route, r->route_len);
    p->id_type = r->hdr->id_type;
    p->id_uint = r->hdr->id_uint;
    if (r->hdr->id_type == CAIRN_ID_STR) {
        p->id_str_len =
            r->hdr->id_str.len < PENDING_ID_MAX ? r->hdr->id_str.len : PENDING_ID_MAX;
        memcpy(p->id_str, r->hdr->id_str.ptr, p->id_str_len);
    }
    s_pack_request_hdr(b, p, r, who, ttl);
    if (w && w->door && (v->flags & CAIRN_VERB_INLINE) && w->inflight == 0 &&
        zmq_msg_size(r->body) <= CAIRN_INLINE_BODY_MAX && s_try_door(b, w, p, r->body))
        return 0;
    zmq_msg_t hdr;
    zmq_msg_init_size(&hdr, b->sb.size);
    memcpy(zmq_msg_data(&hdr), b->sb.data, b->sb.size);
    if (w) {
        s_send_request(b, w, p, &hdr, r->body);
        zmq_msg_close(&hdr);
        return 0;
    }
    /* Queue: keep the header and the body until a worker has room. */
    p->queued_msgs = true;
    zmq_msg_init(&p->hdr);
    zmq_msg_init(&p->body);
    zmq_msg_move(&p->hdr, &hdr);
    zmq_msg_move(&p->body, r->body);
    zmq_msg_close(&hdr);
    if (s->qtail)
        s->qtail->qnext = p;
    else
        s->qhead = p;
    s->qtail = p;
    s->qlen++;
    return 0;
}

/* ---- frontend -------------------------------------------------------------- */

typedef struct frames {
    zmq_msg_t part[FRAME_MAX_PARTS];
    int n;     /* kept */
    int total; /* received */
} frames_t;

static int s_recv_frames(void *sock, frames_t *f)
{
    f->n = f->total = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            if (f->total == 0) return -1;
            break;
        }
        more = zmq_msg_more(&m);
        f->total++;
        if (f->n < FRAME_MAX_PARTS)
            f->part[f->n++] = m;
        else
            zmq_msg_close(&m);
    }
    return 0;
}

static void s_frames_close(frames_t *f)
{
    for (int i = 0; i < f->n; i++) zmq_msg_close(&f->part[i]);
    f->n = 0;
}

static bool s_frame_is(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

static void s_handle_sys(broker_t *b, zmq_msg_t *route, const cairn_hdr_t *h,
                         zmq_msg_t *req_body, uint64_t t0_us)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    cairn_err_t err = {0};
    sys_caller_t caller = {.tok = h->tok, .ws = h->ws};
    if (sys_handle(b, h->verb, &caller, &body, &err) != 0) {
        if (err.st == CAIRN_ST_UNAUTHENTICATED || err.st == CAIRN_ST_FORBIDDEN) {
            route_req_t r = {.origin = ORIGIN_CLIENT,
                             .svc = h->svc,
                             .verb = h->verb,
                             .ws = h->ws,
                             .cid = h->cid,
                             .body = req_body};
            s_audit_refused(b, &r, caller.refused_sub ? caller.refused_sub : "",
                            err.st);
        }
        sys_count(b, h->verb, err.st, t0_us);
        s_reply_client(b, zmq_msg_data(route), zmq_msg_size(route), h, err.st, err.code,
                       err.msg, NULL);
    } else {
        zmq_msg_t m;
        zmq_msg_init_size(&m, body.size);
        memcpy(zmq_msg_data(&m), body.data, body.size);
        sys_count(b, h->verb, CAIRN_ST_OK, t0_us);
        s_reply_client(b, zmq_msg_data(route), zmq_msg_size(route), h, CAIRN_ST_OK,
                       NULL, NULL, &m);
    }
    msgpack_sbuffer_destroy(&body);
}

/* One of the kernel's own calls (a token's resolve, an audit group), as
 * the principal `kernel`; its answer, or its refusal, comes back through
 * s_on_kernel_reply with id. */
static void s_kernel_call(broker_t *b, const char *svc, const char *verb, uint64_t id,
                          const msgpack_sbuffer *body)
{
    zmq_msg_t m;
    zmq_msg_init_size(&m, body->size);
    memcpy(zmq_msg_data(&m), body->data, body->size);
    cairn_hdr_t call = {.id_type = CAIRN_ID_UINT, .id_uint = id};
    authz_principal_t kernel = {.sub = "kernel", .roles = {"Owner"}, .nroles = 1};
    route_req_t r = {.origin = ORIGIN_KERNEL,
                     .route = "",
                     .hdr = &call,
                     .caller = &kernel,
                     .svc = {svc, strlen(svc)},
                     .verb = {verb, strlen(verb)},
                     .ttl = AUTHZ_RESOLVE_TTL_MS,
                     .body = &m};
    s_route(b, &r);
    if (zmq_msg_size(&m)) sodium_memzero(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
}

/* Park a request until its token is resolved (tokens.h); the first of a
 * token asks the auth service. The frames are moved in. */
static void s_park(broker_t *b, zmq_msg_t *route, zmq_msg_t *hdr, zmq_msg_t *body,
                   const cairn_hdr_t *h)
{
    unsigned char key[AUTHZ_KEY_BYTES];
    authz_token_key(h->tok, key);
    uint64_t id = 0;
    cairn_err_t err = {0};
    int rc = tokens_park(b->tokens, key, route, hdr, body, &id, &err);
    if (rc < 0) {
        s_reply_client(b, zmq_msg_data(route), zmq_msg_size(route), h, err.st, err.code,
                       err.msg, NULL);
        return;
    }
    if (rc == 0) return; /* a lookup of this token is in flight */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk = s_packer(&sb);
    msgpack_pack_map(&pk, 1);
    cairn_pack_cstr(&pk, "token");
    cairn_pack_strn(&pk, h->tok.ptr, h->tok.len);
    s_kernel_call(b, authz_service(b->authz), "resolve", id, &sb);
    sodium_memzero(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* The header's `fwd`: the address a local proxy acts for, at most
 * WIRE_ADDR_MAX bytes of [0-9a-fA-F.:] (an IPv4 or IPv6 address), else "". */
static cairn_str_t s_forwarded(const void *hdr, size_t len, msgpack_zone *zone)
{
    msgpack_object o;
    size_t off = 0;
    if (msgpack_unpack(hdr, len, &off, zone, &o) != MSGPACK_UNPACK_SUCCESS ||
        o.type != MSGPACK_OBJECT_MAP)
        return (cairn_str_t){"", 0};
    const msgpack_object *v = cairn_obj_get(&o, "fwd");
    if (!v || v->type != MSGPACK_OBJECT_STR || !v->via.str.size ||
        v->via.str.size > WIRE_ADDR_MAX)
        return (cairn_str_t){"", 0};
    for (uint32_t i = 0; i < v->via.str.size; i++)
        if (!strchr("0123456789abcdefABCDEF.:", v->via.str.ptr[i]) ||
            !v->via.str.ptr[i])
            return (cairn_str_t){"", 0};
    return (cairn_str_t){v->via.str.ptr, v->via.str.size};
}

/* The address of the client a frame came from, for plugins' throttles
 * (cairn_peer_address): a tcp client's own. An ipc client's (libzmq says
 * "localhost:UID:GID:PID") and an inproc one's ("") are this host's and
 * its owner's (the run dir is 0700), so the address the header's `fwd`
 * names is taken instead, as the HTTP gateway sets it for its caller. */
static cairn_str_t s_peer_address(zmq_msg_t *frame, msgpack_zone *zone)
{
    const char *a = zmq_msg_gets(frame, "Peer-Address");
    size_t n = a ? strlen(a) : 0;
    if (!n || !strncmp(a, "localhost:", 10)) {
        cairn_str_t fwd = s_forwarded(zmq_msg_data(frame), zmq_msg_size(frame), zone);
        if (fwd.len) return fwd;
    }
    return n && n <= WIRE_ADDR_MAX ? (cairn_str_t){a, n} : (cairn_str_t){"", 0};
}

/* A client request whose frames are well formed: decode its header, then
 * serve sys, park it for its token, or route it. */
static void s_client_request(broker_t *b, zmq_msg_t *route_m, zmq_msg_t *hdr_m,
                             zmq_msg_t *body_m, uint64_t t0_us)
{
    const void *route = zmq_msg_data(route_m);
    size_t route_len = zmq_msg_size(route_m);
    cairn_hdr_t h = {0};
    cairn_err_t err = {0};
    msgpack_zone_clear(&b->zone);
    if (cairn_hdr_decode(zmq_msg_data(hdr_m), zmq_msg_size(hdr_m), &b->zone, &h,
                         &err) != 0) {
        s_reply_client(b, route, route_len, &h, err.st, err.code, err.msg, NULL);
        return;
    }
    if (!authz_resolved(b->authz, h.tok)) {
        s_park(b, route_m, hdr_m, body_m, &h);
        return;
    }
    if (cairn_str_eq(h.svc, "sys")) {
        /* Plugins' runtimes check their bodies; the kernel checks its own. */
        size_t blen = zmq_msg_size(body_m);
        cairn_err_t why;
        if (blen > b->conf->max_frame) { /* as s_route says it for the others */
            char msg[CAIRN_ERR_MSG_MAX];
            snprintf(msg, sizeof msg,
                     "the body frame is %zu bytes; this kernel accepts at most %llu "
                     "(kernel.max_frame)",
                     blen, (unsigned long long)b->conf->max_frame);
            s_reply_client(b, route, route_len, &h, CAIRN_ST_BAD_REQUEST,
                           CAIRN_E_TOO_LARGE, msg, NULL);
        } else if (blen && cairn_msgpack_check(zmq_msg_data(body_m), blen, &why) != 0) {
            sys_count(b, h.verb, CAIRN_ST_BAD_REQUEST, t0_us);
            s_reply_client(b, route, route_len, &h, CAIRN_ST_BAD_REQUEST,
                           CAIRN_E_BAD_REQUEST, why.msg, NULL);
        } else {
            s_handle_sys(b, route_m, &h, body_m, t0_us);
        }
        return;
    }
    route_req_t r = {.origin = ORIGIN_CLIENT,
                     .route = route,
                     .route_len = route_len,
                     .hdr = &h,
                     .svc = h.svc,
                     .verb = h.verb,
                     .tok = h.tok,
                     .ws = h.ws,
                     .cid = h.cid,
                     .addr = s_peer_address(hdr_m, &b->zone),
                     .ttl = h.ttl,
                     .body = body_m,
                     .t0_us = t0_us};
    s_route(b, &r);
}

/* An answer to one of the kernel's own calls: the audit group, or a
 * token's resolve. */
static void s_on_kernel_reply(broker_t *b, uint64_t id, int st, const char *code,
                              const char *msg, zmq_msg_t *body)
{
    if (id != AUDIT_CALL_ID) {
        s_on_resolved(b, id, st, code, msg, body);
        return;
    }
    if (body) zmq_msg_close(body);
    char why[CAIRN_ERR_MSG_MAX];
    snprintf(why, sizeof why, "the audit service answered %d %s: %s", st,
             code ? code : "", msg ? msg : "");
    kaudit_done(b->audit, st == CAIRN_ST_OK, why, cairn_now_ms());
}

/* Send the audit group that is due, if one is. */
static void s_audit_flush(broker_t *b, uint64_t now)
{
    if (kaudit_take(b->audit, now, &b->audit_sb))
        s_kernel_call(b, kaudit_service(b->audit), "append", AUDIT_CALL_ID,
                      &b->audit_sb);
}

static int s_on_backend(broker_t *b);

/* At stop, before the plugins stop: hand the records still waiting to the
 * audit service now (not when due) and serve its answers, for at most
 * AUDIT_STOP_MS, so that a clean stop loses none; what is left is reported
 * by kaudit_destroy. */
static void s_audit_drain(broker_t *b)
{
    uint64_t end = cairn_now_ms() + AUDIT_STOP_MS;
    while (kaudit_unwritten(b->audit) && cairn_now_ms() < end) {
        s_audit_flush(b, cairn_now_ms() + AUDIT_STOP_MS); /* due, retry or not */
        zmq_pollitem_t it = {b->backend, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) > 0)
            while (s_on_backend(b)) {
            }
    }
}

/* The auth service's answer for lookup id: cache it, then route the
 * requests that waited for it (or give them its error). */
static void s_on_resolved(broker_t *b, uint64_t id, int st, const char *code,
                          const char *msg, zmq_msg_t *body)
{
    unsigned char key[AUTHZ_KEY_BYTES];
    parked_t *list = tokens_take(b->tokens, id, key);
    cairn_err_t err = {0};
    if (st == CAIRN_ST_OK) {
        msgpack_zone zone;
        msgpack_zone_init(&zone, 2048);
        msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
        size_t off = 0;
        if (!body || msgpack_unpack(zmq_msg_data(body), zmq_msg_size(body), &off, &zone,
                                    &o) != MSGPACK_UNPACK_SUCCESS)
            cairn_err_set(&err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                          "the auth service's answer is not msgpack");
        else if (authz_learn(b->authz, key, &o, &err) != 0)
            cairn_err_set(&err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                          "the auth service's answer cannot be used: %.300s", err.msg);
        msgpack_zone_destroy(&zone);
    } else if (st == CAIRN_ST_UNAUTHENTICATED) {
        authz_learn_refusal(b->authz, key); /* they get the 401 from the cache */
    } else {
        cairn_err_set(&err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                      "the token cannot be checked now: the auth service answered %d "
                      "%s: %.300s",
                      st, code ? code : "", msg ? msg : "");
    }
    if (body) zmq_msg_close(body);
    while (list) {
        parked_t *p = list;
        list = p->next;
        if (!err.st) {
            s_client_request(b, &p->route, &p->hdr, &p->body, p->t0_us);
        } else {
            cairn_hdr_t h = {0};
            cairn_err_t ignored;
            msgpack_zone_clear(&b->zone);
            cairn_hdr_decode(zmq_msg_data(&p->hdr), zmq_msg_size(&p->hdr), &b->zone, &h,
                             &ignored);
            s_reply_client(b, zmq_msg_data(&p->route), zmq_msg_size(&p->route), &h,
                           err.st, err.code, err.msg, NULL);
        }
        parked_free(p);
    }
}

/* Serve one message; 0 when none was waiting. */
static int s_on_frontend(broker_t *b)
{
    frames_t f;
    if (s_recv_frames(b->frontend, &f) != 0) return 0;
    uint64_t t0_us = metrics_now_us();
    const void *route = zmq_msg_data(&f.part[0]);
    size_t route_len = zmq_msg_size(&f.part[0]);
    cairn_hdr_t h = {0};
    cairn_err_t err = {0};
    if (f.total != 5 || zmq_msg_size(&f.part[1]) != 0 ||
        !s_frame_is(&f.part[2], CAIRN_TAG)) {
        /* Try to echo the id when a header is where it belongs. */
        if (f.n >= 4 && zmq_msg_size(&f.part[3]) <= HEADER_MAX) {
            msgpack_zone_clear(&b->zone);
            cairn_hdr_decode(zmq_msg_data(&f.part[3]), zmq_msg_size(&f.part[3]),
                             &b->zone, &h, &err);
        }
        const char *why =
            f.total < 2 || zmq_msg_size(&f.part[1]) != 0
                ? "a request starts with an empty delimiter frame, then CAIRN/1, a "
                  "header and a body"
            : f.total < 3 || !s_frame_is(&f.part[2], CAIRN_TAG)
                ? "the first frame after the delimiter must be CAIRN/1"
                : "a request has exactly three frames after the delimiter: CAIRN/1, a "
                  "header map and a body";
        s_reply_client(b, route, route_len, &h, CAIRN_ST_BAD_REQUEST,
                       CAIRN_E_BAD_REQUEST, why, NULL);
        s_frames_close(&f);
        return 1;
    }
    if (zmq_msg_size(&f.part[3]) > HEADER_MAX) {
        msgpack_zone_clear(&b->zone);
        cairn_hdr_decode(zmq_msg_data(&f.part[3]), zmq_msg_size(&f.part[3]), &b->zone,
                         &h, &err); /* only to echo the id */
        s_reply_client(b, route, route_len, &h, CAIRN_ST_BAD_REQUEST, CAIRN_E_TOO_LARGE,
                       "the header frame is over the 64 KiB limit", NULL);
        s_frames_close(&f);
        return 1;
    }
    s_client_request(b, &f.part[0], &f.part[3], &f.part[4], t0_us);
    s_frames_close(&f);
    return 1;
}

/* ---- backend: the worker protocol -------------------------------------- */

static worker_t *s_find_worker(broker_t *b, const void *id, size_t len)
{
    for (size_t i = 0; i < b->nservices; i++)
        for (worker_t *w = b->services[i].workers; w; w = w->next)
            if (w->id_len == len && memcmp(w->id, id, len) == 0) return w;
    return NULL;
}

void broker_send_worker(broker_t *b, worker_t *w, cairn_wcmd_t cmd,
                        const msgpack_sbuffer *hdr)
{
    unsigned char c = (unsigned char)cmd;
    s_send_bytes(b->backend, w->id, w->id_len, true);
    s_send_bytes(b->backend, CAIRN_WORKER_TAG, strlen(CAIRN_WORKER_TAG), true);
    s_send_bytes(b->backend, &c, 1, hdr != NULL);
    if (hdr) s_send_bytes(b->backend, hdr->data, hdr->size, false);
    w->last_sent = cairn_now_ms();
}

static void s_send_to_route(broker_t *b, const void *id, size_t len, cairn_wcmd_t cmd)
{
    unsigned char c = (unsigned char)cmd;
    s_send_bytes(b->backend, id, len, true);
    s_send_bytes(b->backend, CAIRN_WORKER_TAG, strlen(CAIRN_WORKER_TAG), true);
    s_send_bytes(b->backend, &c, 1, false);
}

static void s_event_service(broker_t *b, const char *topic, const service_t *s,
                            const char *why)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk = s_packer(&sb);
    msgpack_pack_map(&pk, why ? 5 : 4);
    cairn_pack_kv_str(&pk, "service", s->conf->name);
    cairn_pack_kv_str(&pk, "mode", conf_mode_name(s->conf->mode));
    cairn_pack_kv_str(&pk, "state", svc_state_name(s->state));
    cairn_pack_cstr(&pk, "restarts");
    msgpack_pack_uint32(&pk, s->restarts);
    if (why) cairn_pack_kv_str(&pk, "reason", why);
    broker_send_event(b, topic, &sb);
    msgpack_sbuffer_destroy(&sb);
}

typedef struct fail_ctx {
    worker_t *w;
    service_t *s;
    pending_t **list;
    size_t n, cap;
} fail_ctx_t;

static void s_collect(pending_t *p, void *arg)
{
    fail_ctx_t *fc = arg;
    bool mine =
        (fc->w && p->worker == fc->w) || (fc->s && p->svc == fc->s && !p->worker);
    if (!mine) return;
    if (fc->n == fc->cap) {
        size_t ncap = fc->cap ? fc->cap * 2 : 64;
        pending_t **nl = realloc(fc->list, ncap * sizeof *nl);
        if (!nl) return;
        fc->list = nl;
        fc->cap = ncap;
    }
    fc->list[fc->n++] = p;
}

/* Answer 503 to every request held by worker w (and, when the service has no
 * workers left, to its queue): a dead plugin never leaves a client hanging. */
static void s_fail_inflight(broker_t *b, worker_t *w, service_t *queue_of,
                            const char *msg)
{
    fail_ctx_t fc = {.w = w, .s = queue_of};
    pending_each(b->pending, s_collect, &fc);
    for (size_t i = 0; i < fc.n; i++) {
        pending_t *p = fc.list[i];
        /* A request still in the service queue never reached a plugin. */
        zmq_msg_t m;
        zmq_msg_t *body = p->worker ? NULL : s_undelivered(&m);
        p->worker = NULL;
        s_finish(b, p, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE, msg, body);
    }
    free(fc.list);
    if (queue_of) {
        queue_of->qhead = queue_of->qtail = NULL;
        queue_of->qlen = 0;
    }
}

void broker_worker_gone(broker_t *b, worker_t *w, const char *why)
{
    service_t *s = w->svc;
    for (worker_t **pp = &s->workers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    char msg[CAIRN_ERR_MSG_MAX];
    snprintf(msg, sizeof msg,
             "the service '%s' went down while serving this request (%s)",
             s->conf->name, why);
    bool last = s->workers == NULL;
    if (last && s->state == SVC_UP)
        s->state =
            s->conf->mode == CONF_PROCESS && !b->stopping ? SVC_RESTARTING : SVC_DOWN;
    s_fail_inflight(b, w, last ? s : NULL, msg);
    free(w);
    if (last) {
        fprintf(stderr, "cairnd: service %s is %s: %s\n", s->conf->name,
                svc_state_name(s->state), why);
        s_event_service(b, "plugin.down", s, why);
    }
}

/* A slice as a C string in buf (cut to fit); NULL for an empty slice. */
static const char *s_cstr(cairn_str_t v, char *buf, size_t len)
{
    if (!v.len) return NULL;
    snprintf(buf, len, "%.*s", (int)v.len, v.ptr);
    return buf;
}

/* An inproc worker that misses its heartbeats is a handler blocking its
 * thread, not a crash (that would have taken the kernel too), and nothing
 * could restart it: it is kept. Its requests wait (each answered at its
 * deadline meanwhile) and it goes on when the handler returns. */
static void s_stall_begin(worker_t *w, uint64_t now)
{
    if (w->stalled_since) return;
    w->stalled_since = w->last_heard;
    fprintf(stderr,
            "cairnd: service %s has not answered for %llu ms: a handler blocks its "
            "thread (kept; its requests wait)\n",
            w->svc->conf->name, (unsigned long long)(now - w->last_heard));
}

static void s_stall_over(worker_t *w)
{
    fprintf(stderr, "cairnd: service %s answers again after %llu ms\n",
            w->svc->conf->name, (unsigned long long)(w->last_heard - w->stalled_since));
    w->stalled_since = 0;
}

/* A process runs one worker. Its HELLO from a new socket means it gave up
 * on the old one (the kernel went silent: stopped, paused): requests sent
 * there are lost, and no more may follow them before READY comes here. */
static void s_drop_stale_sockets(broker_t *b, worker_t *fresh)
{
    for (worker_t *w = fresh->svc->workers, *next; w; w = next) {
        next = w->next;
        if (w != fresh && w->pid == fresh->pid) {
            fprintf(stderr,
                    "cairnd: service %s: its process reconnected on a new socket\n",
                    w->svc->conf->name);
            broker_worker_gone(b, w, "its process reconnected on a new socket");
        }
    }
}

static void s_on_hello(broker_t *b, const void *id, size_t id_len,
                       const msgpack_object *h)
{
    wire_hello_t m;
    service_t *s = NULL;
    if (wire_parse_hello(h, &m) == 0) s = broker_find_service(b, m.svc.ptr, m.svc.len);
    const char *why = NULL;
    if (!s)
        why = "no such service in the conf";
    else if (!cairn_str_eq(m.mode, conf_mode_name(s->conf->mode)))
        why = "the conf runs this service in another mode";
    else if (s->conf->mode == CONF_PROCESS && (m.pid <= 0 || (pid_t)m.pid != s->pid))
        why = "not the process cairnd started";
    if (why || id_len > WORKER_ID_MAX || b->stopping) {
        fprintf(stderr, "cairnd: refused a worker for '%s': %s\n",
                s ? s->conf->name : "?", why ? why : "shutting down");
        s_send_to_route(b, id, id_len, CAIRN_W_DISCONNECT);
        return;
    }
    worker_t *w = s_find_worker(b, id, id_len);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w) return;
        memcpy(w->id, id, id_len);
        w->id_len = id_len;
        w->svc = s;
        w->next = s->workers;
        s->workers = w;
    }
    w->pid = (pid_t)m.pid;
    if (s->conf->mode == CONF_PROCESS) s_drop_stale_sockets(b, w);
    /* Only the thread this kernel started knows the door's nonce. */
    w->door = s->door && m.door && m.door == cairn_door_nonce(s->door) ? s->door : NULL;
    w->last_heard = cairn_now_ms();
    const char *events = s->conf->mode == CONF_INPROC    ? "inproc://cairn.events"
                         : s->conf->mode == CONF_PROCESS ? b->events_ipc
                                                         : b->conf->events;
    wire_welcome_t wm = {.svc = {s->conf->name, strlen(s->conf->name)},
                         .state_dir = {b->state_dir, strlen(b->state_dir)},
                         .events = {events, strlen(events)},
                         .hb_ms = b->conf->heartbeat_ms,
                         .liveness = b->conf->liveness,
                         .settings = s->settings.data,
                         .settings_len = s->settings.size};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk = s_packer(&sb);
    wire_pack_welcome(&pk, &wm);
    broker_send_worker(b, w, CAIRN_W_WELCOME, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static int s_take_verbs(service_t *s, const msgpack_object *verbs)
{
    size_t n = verbs->via.array.size;
    verb_info_t *vi = calloc(n ? n : 1, sizeof *vi);
    if (!vi) return -1;
    for (size_t i = 0; i < n; i++) {
        wire_verb_t row;
        if (wire_parse_verb(&verbs->via.array.ptr[i], &row) != 0 ||
            row.name.len > NAME_MAX_LEN || !(vi[i].name = cairn_str_dup(row.name))) {
            /* A worker that cannot name its verbs is not let in. */
            for (size_t j = 0; j < i; j++) {
                free(vi[j].name);
                free(vi[j].perm);
            }
            free(vi);
            return -1;
        }
        if (row.perm.len) vi[i].perm = cairn_str_dup(row.perm);
        vi[i].flags = row.flags;
        vi[i].max_body = row.max_body;
        /* Its counters' row, found by name: a restart keeps its counts. */
        vi[i].mrow = metrics_row(s->metrics, row.name.ptr, row.name.len);
    }
    for (size_t i = 0; i < s->nverbs; i++) {
        free(s->verbs[i].name);
        free(s->verbs[i].perm);
    }
    free(s->verbs);
    s->verbs = vi;
    s->nverbs = n;
    return 0;
}

static void s_on_ready(broker_t *b, worker_t *w, const msgpack_object *h)
{
    service_t *s = w->svc;
    const msgpack_object *verbs;
    uint32_t concurrency;
    if (wire_parse_ready(h, &verbs, &concurrency) != 0 || s_take_verbs(s, verbs) != 0) {
        broker_send_worker(b, w, CAIRN_W_DISCONNECT, NULL);
        broker_worker_gone(b, w, "its READY had no valid verb table");
        return;
    }
    w->concurrency = concurrency ? concurrency : 256;
    if (s->conf->concurrency && s->conf->concurrency < w->concurrency)
        w->concurrency = s->conf->concurrency;
    w->ready = true;
    bool restarted = s->was_up;
    s->state = SVC_UP;
    s->was_up = true;
    s->last_error[0] = '\0';
    fprintf(stderr, "cairnd: service %s is up (%s, %zu verb%s)\n", s->conf->name,
            conf_mode_name(s->conf->mode), s->nverbs, s->nverbs == 1 ? "" : "s");
    s_event_service(b, restarted ? "plugin.restarted" : "plugin.up", s, NULL);
    s_drain_queue(b, s);
}

static void s_on_final(broker_t *b, worker_t *w, frames_t *f, const msgpack_object *h)
{
    wire_outcome_t m;
    if (wire_parse_final(h, &m) != 0) return;
    pending_t *p = pending_find(b->pending, m.id);
    if (!p || p->worker != w) return; /* answered already (504) */
    char code[64], err[CAIRN_ERR_MSG_MAX];
    const char *c = s_cstr(m.code, code, sizeof code);
    const char *e = s_cstr(m.err, err, sizeof err);
    int status = m.st;
    zmq_msg_t *body = f->n > 4 ? &f->part[4] : NULL;
    zmq_msg_t empty;
    if (!body) {
        zmq_msg_init(&empty);
        body = &empty;
    }
    s_note_object(p, m.obj.ptr, m.obj.len);
    s_finish(b, p, status, c, e, body);
    s_drain_queue(b, w->svc);
}

static void s_on_call(broker_t *b, worker_t *w, frames_t *f, const msgpack_object *h)
{
    wire_call_t m;
    if (wire_parse_call(h, &m) != 0) return;
    cairn_hdr_t hdr = {.id_type = CAIRN_ID_UINT, .id_uint = m.cid};
    char pbuf[96];
    authz_principal_t who;
    authz_service_principal(w->svc->conf->name, &who, pbuf, sizeof pbuf);
    zmq_msg_t empty;
    zmq_msg_init(&empty);
    uint64_t t0_us = metrics_now_us();
    route_req_t r = {.origin = ORIGIN_WORKER,
                     .route = w->id,
                     .route_len = w->id_len,
                     .hdr = &hdr,
                     .caller = &who,
                     .svc = m.svc,
                     .verb = m.verb,
                     .ws = m.ws,
                     .ttl = m.ttl,
                     .body = f->n > 4 ? &f->part[4] : &empty,
                     .t0_us = t0_us};
    if (cairn_str_eq(r.svc, "sys")) {
        msgpack_sbuffer body;
        msgpack_sbuffer_init(&body);
        cairn_err_t err = {0};
        pending_t tmp = {.id_uint = hdr.id_uint, .route_len = w->id_len};
        memcpy(tmp.route, w->id, w->id_len);
        sys_caller_t caller = {.who = &who};
        if (sys_handle(b, r.verb, &caller, &body, &err) != 0) {
            sys_count(b, r.verb, err.st, t0_us);
            s_send_result(b, &tmp, err.st, err.code, err.msg, NULL);
        } else {
            zmq_msg_t out;
            zmq_msg_init_size(&out, body.size);
            memcpy(zmq_msg_data(&out), body.data, body.size);
            sys_count(b, r.verb, CAIRN_ST_OK, t0_us);
            s_send_result(b, &tmp, CAIRN_ST_OK, NULL, NULL, &out);
        }
        msgpack_sbuffer_destroy(&body);
    } else {
        s_route(b, &r);
    }
    zmq_msg_close(&empty);
}

/* The auth service says an answer changed (a token revoked, a role
 * assigned...): forget every cached one, so that the change holds from the
 * next request on. Only the auth service itself is believed. */
static void s_on_auth_event(broker_t *b, const worker_t *w, cairn_str_t topic)
{
    const char *svc = authz_service(b->authz);
    if (svc && strcmp(w->svc->conf->name, svc) == 0 && topic.len >= 12 &&
        memcmp(topic.ptr, "auth.changed", 12) == 0)
        authz_forget_all(b->authz);
}

/* Serve one message; 0 when none was waiting. */
static int s_on_backend(broker_t *b)
{
    frames_t f;
    if (s_recv_frames(b->backend, &f) != 0) return 0;
    const void *id = zmq_msg_data(&f.part[0]);
    size_t id_len = zmq_msg_size(&f.part[0]);
    if (f.n < 3 || !s_frame_is(&f.part[1], CAIRN_WORKER_TAG) ||
        zmq_msg_size(&f.part[2]) != 1) {
        s_frames_close(&f);
        return 1; /* not a worker: ignore */
    }
    int cmd = *(unsigned char *)zmq_msg_data(&f.part[2]);
    msgpack_object h = {.type = MSGPACK_OBJECT_NIL};
    msgpack_zone_clear(&b->zone);
    if (f.n > 3 && zmq_msg_size(&f.part[3])) {
        size_t off = 0;
        if (cairn_msgpack_check(zmq_msg_data(&f.part[3]), zmq_msg_size(&f.part[3]),
                                NULL) != 0 ||
            msgpack_unpack(zmq_msg_data(&f.part[3]), zmq_msg_size(&f.part[3]), &off,
                           &b->zone, &h) != MSGPACK_UNPACK_SUCCESS)
            h.type = MSGPACK_OBJECT_NIL;
    }
    worker_t *w = s_find_worker(b, id, id_len);
    if (cmd == CAIRN_W_HELLO) {
        s_on_hello(b, id, id_len, &h);
    } else if (!w) {
        /* Unknown (e.g. from before a kernel restart): make it say HELLO. */
        if (cmd != CAIRN_W_DISCONNECT)
            s_send_to_route(b, id, id_len, CAIRN_W_DISCONNECT);
    } else {
        w->last_heard = cairn_now_ms();
        if (w->stalled_since) s_stall_over(w);
        char msg[CAIRN_ERR_MSG_MAX];
        switch (cmd) {
            case CAIRN_W_READY:
                s_on_ready(b, w, &h);
                break;
            case CAIRN_W_FINAL:
                s_on_final(b, w, &f, &h);
                break;
            case CAIRN_W_CALL:
                s_on_call(b, w, &f, &h);
                break;
            case CAIRN_W_PUBLISH: {
                cairn_str_t topic;
                if (wire_parse_topic(&h, &topic) == 0 && topic.len && topic.len < 128 &&
                    f.n > 4) {
                    s_on_auth_event(b, w, topic);
                    s_send_bytes(b->pub, topic.ptr, topic.len, true);
                    zmq_msg_send(&f.part[4], b->pub, 0);
                }
                break;
            }
            case CAIRN_W_FAIL: {
                cairn_str_t why;
                if (wire_parse_err(&h, &why) != 0 || !s_cstr(why, msg, sizeof msg))
                    snprintf(msg, sizeof msg, "init failed");
                snprintf(w->svc->last_error, sizeof w->svc->last_error, "%s", msg);
                fprintf(stderr, "cairnd: service %s failed to start: %s\n",
                        w->svc->conf->name, msg);
                broker_worker_gone(b, w, msg);
                break;
            }
            case CAIRN_W_DISCONNECT:
                broker_worker_gone(b, w, "the plugin disconnected");
                break;
            default:
                break; /* HEARTBEAT: last_heard is enough */
        }
    }
    s_frames_close(&f);
    return 1;
}

/* ---- timers ----------------------------------------------------------------- */

static void s_expire(broker_t *b, uint64_t now)
{
    pending_t *p;
    while ((p = pending_earliest(b->pending)) && p->deadline <= now) {
        if (!p->worker && p->queued_msgs) s_queue_unlink(p->svc, p);
        if (p->answered) { /* the worker never answered: give the slot back */
            s_release(b, p);
            continue;
        }
        char msg[CAIRN_ERR_MSG_MAX];
        snprintf(msg, sizeof msg,
                 "the request's deadline passed before '%s' answered (raise ttl, or "
                 "check the plugin)",
                 p->svc ? p->svc->conf->name : "?");
        if (!p->worker) { /* still queued here: no plugin saw it */
            zmq_msg_t m;
            s_finish(b, p, CAIRN_ST_TIMEOUT, CAIRN_E_DEADLINE, msg, s_undelivered(&m));
            continue;
        }
        /* Answer the client now, but keep counting the request against the
         * worker's window until its late reply arrives (or a long grace). */
        s_finish_keep(b, p, CAIRN_ST_TIMEOUT, CAIRN_E_DEADLINE, msg);
        pending_set_deadline(b->pending, p, now + ZOMBIE_GRACE_MS);
    }
}

static void s_heartbeat(broker_t *b, uint64_t now)
{
    uint64_t dead_after = (uint64_t)b->conf->heartbeat_ms * b->conf->liveness;
    /* This runs every heartbeat_ms / 2. Far later means this thread did
     * not run (the process was stopped, the machine paused or swapped):
     * what the workers sent meanwhile still waits unread, so silence says
     * nothing about them. Their deadlines start again from now. */
    uint64_t stalled = b->heartbeat_checked ? now - b->heartbeat_checked : 0;
    bool restart = stalled > 2 * (uint64_t)b->conf->heartbeat_ms;
    if (restart)
        fprintf(stderr,
                "cairnd: the kernel did not run for %llu ms (stopped or paused); "
                "heartbeat deadlines start again\n",
                (unsigned long long)stalled);
    b->heartbeat_checked = now;
    for (size_t i = 0; i < b->nservices; i++) {
        service_t *s = &b->services[i];
        for (worker_t *w = s->workers, *next; w; w = next) {
            next = w->next;
            if (restart) w->last_heard = now;
            /* Until READY the plugin runs its init, which may take long
             * (migrations, recovery) and answers no heartbeat meanwhile. */
            uint64_t limit = w->ready || b->conf->init_timeout_ms < dead_after
                                 ? dead_after
                                 : b->conf->init_timeout_ms;
            if (now - w->last_heard > limit && w->ready &&
                s->conf->mode == CONF_INPROC) {
                s_stall_begin(w, now);
                continue;
            }
            if (now - w->last_heard > limit) {
                if (s->conf->mode == CONF_PROCESS && s->pid > 0) kill(s->pid, SIGKILL);
                broker_send_worker(b, w, CAIRN_W_DISCONNECT, NULL);
                broker_worker_gone(b, w, "it stopped answering heartbeats");
                continue;
            }
            if (now - w->last_sent >= b->conf->heartbeat_ms)
                broker_send_worker(b, w, CAIRN_W_HEARTBEAT, NULL);
        }
    }
}

static void s_on_signal(broker_t *b, volatile sig_atomic_t *stop)
{
    struct signalfd_siginfo si;
    while (read(b->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            supervisor_on_sigchld(b);
        else
            *stop = 1;
    }
}

typedef struct route_ctx {
    const unsigned char *route;
    size_t len;
    pending_t **list;
    size_t n, cap;
} route_ctx_t;

static void s_collect_queued(pending_t *p, void *arg)
{
    route_ctx_t *rc = arg;
    if (p->origin != ORIGIN_CLIENT || p->worker || !p->queued_msgs ||
        p->route_len != rc->len || memcmp(p->route, rc->route, rc->len) != 0)
        return;
    if (rc->n == rc->cap) {
        size_t ncap = rc->cap ? rc->cap * 2 : 16;
        pending_t **nl = realloc(rc->list, ncap * sizeof *nl);
        if (!nl) return; /* the rest expire at their ttl */
        rc->list = nl;
        rc->cap = ncap;
    }
    rc->list[rc->n++] = p;
}

/* Drop the queued requests of clients found gone: nobody is left to read
 * their replies, so their bodies need not wait for a worker or a ttl. */
static void s_purge_gone(broker_t *b)
{
    for (size_t g = 0; g < b->ngone; g++) {
        route_ctx_t rc = {.route = b->gone[g], .len = b->gone_len[g]};
        pending_each(b->pending, s_collect_queued, &rc);
        for (size_t i = 0; i < rc.n; i++) {
            s_queue_unlink(rc.list[i]->svc, rc.list[i]);
            s_release(b, rc.list[i]);
        }
        free(rc.list);
    }
    b->ngone = 0;
}

int broker_run(broker_t *b, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        uint64_t now = cairn_now_ms();
        s_expire(b, now);
        if (b->ngone) s_purge_gone(b);
        if (now >= b->next_heartbeat) {
            clients_sweep(b->clients);
            s_heartbeat(b, now);
            b->next_heartbeat = now + b->conf->heartbeat_ms / 2;
        }
        supervisor_tick(b, now);
        s_audit_flush(b, now);
        long wait = (long)(b->next_heartbeat - now);
        long audit_wait = kaudit_wait_ms(b->audit, now);
        if (audit_wait >= 0 && audit_wait < wait) wait = audit_wait;
        pending_t *p = pending_earliest(b->pending);
        if (p && (long)(p->deadline - now) < wait) wait = (long)(p->deadline - now);
        if (wait < 0) wait = 0;
        /* The CurveZMQ key check (ZAP) is polled here, last: its refusals
         * are audited on this thread. */
        zmq_pollitem_t items[4] = {
            {b->frontend, 0, ZMQ_POLLIN, 0},
            {b->backend, 0, ZMQ_POLLIN, 0},
            {NULL, b->sigfd, ZMQ_POLLIN, 0},
            {b->curve ? curve_zap_socket(b->curve) : NULL, 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll(items, b->curve ? 4 : 3, wait);
        if (n < 0 && errno != EINTR) return -1;
        if (n <= 0) continue;
        if (items[2].revents & ZMQ_POLLIN) s_on_signal(b, stop);
        if (items[3].revents & ZMQ_POLLIN) curve_zap_serve(b->curve, b->audit);
        /* Serve both sockets in bursts (a receive with ZMQ_DONTWAIT costs no
         * syscall when a message is queued; a zmq_poll per message costs
         * several); the backend first, since its replies free capacity. */
        for (int i = 0; i < 16; i++) {
            int got = 0;
            for (int k = 0; k < 64 && s_on_backend(b); k++) got++;
            for (int k = 0; k < 64 && s_on_frontend(b); k++) got++;
            if (b->ngone) s_purge_gone(b);
            if (!got) break;
        }
    }
    s_audit_drain(b);
    return 0;
}

/* ---- setup and teardown --------------------------------------------------- */

static int s_mkdirs(const char *path, cairn_err_t *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) goto fail;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) goto fail;
    return 0;
fail:
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STATE_DIR,
                         "cannot create %s: %s", buf, strerror(errno));
}

static void *s_socket(broker_t *b, int type, cairn_err_t *err)
{
    void *s = zmq_socket(b->zctx, type);
    if (!s) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "zmq_socket: %s",
                      zmq_strerror(errno));
        return NULL;
    }
    int zero = 0, one = 1;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (type == ZMQ_ROUTER) zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    return s;
}

/* Bind ep; with loopback_only, also check what libzmq actually bound (the
 * conf was checked before, this catches any form that check misreads). */
static int s_bind(void *sock, const char *ep, const char *what, bool loopback_only,
                  cairn_err_t *err)
{
    if (zmq_bind(sock, ep) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_BIND_FAILED,
                             "cannot bind the %s to %s: %s", what, ep,
                             zmq_strerror(errno));
    char bound[512];
    size_t len = sizeof bound;
    if (!loopback_only || zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &len) != 0)
        return 0;
    cairn_err_t why;
    if (authz_endpoint_check_loopback(bound, &why) != 0) {
        zmq_unbind(sock, bound);
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "the %s was bound to %s, which is not loopback; "
                             "kernel.auth is 'none', so it was unbound",
                             what, bound);
    }
    return 0;
}

/* Before ep is bound on sock: make sock a CURVE server when ep wants one.
 * Each socket's CURVE bind is its last: libzmq copies the options into
 * every later listener, so its inproc and ipc binds come first. */
static int s_secure(broker_t *b, void *sock, const char *ep, cairn_err_t *err)
{
    if (!curve_wanted(b->conf, ep)) return 0;
    if (curve_server_apply(b->curve, sock, err) != 0) return -1;
    fprintf(stderr, "cairnd: %s: CurveZMQ, server key %s\n", ep,
            curve_public_key(b->curve));
    return 0;
}

/* Load the keys and start the key check (ZAP) before any socket binds:
 * libzmq lets every key in while no handler is bound. */
static int s_open_curve(broker_t *b, cairn_err_t *err)
{
    if (curve_check_conf(b->conf, b->endpoint, err) != 0) return -1;
    if (!curve_any_wanted(b->conf, b->endpoint)) return 0;
    if (!(b->curve = curve_new(b->conf, b->state_dir, err))) return -1;
    return curve_zap_open(b->curve, b->zctx, err);
}

static int s_open_sockets(broker_t *b, cairn_err_t *err)
{
    const conf_t *c = b->conf;
    bool lo = authz_is_open(b->authz);
    if (lo) {
        const char *eps[] = {b->endpoint, c->events, c->worker_endpoint};
        cairn_err_t why;
        for (size_t i = 0; i < 3; i++)
            if (authz_endpoint_check_loopback(eps[i], &why) != 0)
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                     "%s: kernel.auth is 'none', so cairnd binds "
                                     "loopback addresses only: %s",
                                     c->source, why.msg);
    }
    if (s_open_curve(b, err) != 0) return -1;
    if (!(b->frontend = s_socket(b, ZMQ_ROUTER, err))) return -1;
    int64_t hard = (int64_t)(c->max_frame + c->max_frame / 4 + (1 << 20));
    zmq_setsockopt(b->frontend, ZMQ_MAXMSGSIZE, &hard, sizeof hard);
    /* Counts, not bytes: large replies are bounded in bytes (clients.h);
     * this bounds the small ones a client leaves unread. */
    int hwm = 10000;
    zmq_setsockopt(b->frontend, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->frontend, ZMQ_RCVHWM, &hwm, sizeof hwm);
    /* A private ipc frontend first (before CURVE: see s_secure), for the
     * plugins that are clients of the bus, such as the gateway: the run
     * dir is the owner's only, and no key is needed to reach it. */
    if (s_bind(b->frontend, b->frontend_ipc, "frontend", lo, err) != 0 ||
        s_secure(b, b->frontend, b->endpoint, err) != 0 ||
        s_bind(b->frontend, b->endpoint, "frontend", lo, err) != 0)
        return -1;
    if (!(b->backend = s_socket(b, ZMQ_ROUTER, err))) return -1;
    int zero = 0;
    zmq_setsockopt(b->backend, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(b->backend, ZMQ_RCVHWM, &zero, sizeof zero);
    if (s_bind(b->backend, "inproc://cairn.workers", "worker socket", lo, err) != 0 ||
        s_bind(b->backend, b->worker_ipc, "worker socket", lo, err) != 0)
        return -1;
    if (c->worker_endpoint && *c->worker_endpoint &&
        (s_secure(b, b->backend, c->worker_endpoint, err) != 0 ||
         s_bind(b->backend, c->worker_endpoint, "remote worker socket", lo, err) != 0))
        return -1;
    if (!(b->pub = s_socket(b, ZMQ_PUB, err))) return -1;
    if (s_bind(b->pub, "inproc://cairn.events", "event bus", lo, err) != 0 ||
        s_bind(b->pub, b->events_ipc, "event bus", lo, err) != 0 ||
        (c->events && *c->events &&
         (s_secure(b, b->pub, c->events, err) != 0 ||
          s_bind(b->pub, c->events, "event bus", lo, err) != 0)))
        return -1;
    curve_forget_secret(b->curve); /* every socket has it now */
    return 0;
}

static char *s_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_printf(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

broker_t *broker_new(const broker_opts_t *o, cairn_err_t *err)
{
    broker_t *b = calloc(1, sizeof *b);
    if (!b) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    b->conf = o->conf;
    b->sigfd = s_sigfd;
    msgpack_zone_init(&b->zone, 64 * 1024);
    msgpack_sbuffer_init(&b->sb);
    b->started_us = metrics_now_us();
    if (!(b->sys_metrics = sys_metrics_new())) {
        cairn_err_oom(err, "for the metrics");
        goto fail;
    }
    b->endpoint = strdup(o->endpoint);
    b->state_dir = strdup(o->state_dir);
    b->bin_dir = strdup(o->bin_dir);
    b->plugin_dir = strdup(o->plugin_dir);
    b->run_dir = s_printf("%s/run", o->state_dir);
    if (!b->endpoint || !b->state_dir || !b->bin_dir || !b->plugin_dir || !b->run_dir) {
        cairn_err_oom(err, NULL);
        goto fail;
    }
    if (s_mkdirs(b->run_dir, err) != 0) goto fail;
    /* Plugins get the state dir absolute: a remote or restarted host may
     * not share the kernel's working directory. */
    char *abs_state = realpath(o->state_dir, NULL);
    if (abs_state) {
        free(b->state_dir);
        b->state_dir = abs_state;
    }
    /* ipc paths are limited to ~107 bytes: fall back to /tmp for deep dirs. */
    if (strlen(b->run_dir) > 80) {
        free(b->run_dir);
        b->run_dir = s_printf("/tmp/cairn-%d-%d", (int)getuid(), (int)getpid());
        if (!b->run_dir || s_mkdirs(b->run_dir, err) != 0) goto fail;
    }
    b->worker_ipc = s_printf("ipc://%s/workers.sock", b->run_dir);
    b->events_ipc = s_printf("ipc://%s/events.sock", b->run_dir);
    b->frontend_ipc = s_printf("ipc://%s/frontend.sock", b->run_dir);
    if (!b->worker_ipc || !b->events_ipc || !b->frontend_ipc) {
        cairn_err_oom(err, NULL);
        goto fail;
    }
    if (!(b->authz = authz_new(b->conf->auth, err))) goto fail;
    if (!(b->audit = kaudit_new(b->conf->audit,
                                strcmp(b->conf->audit_policy, "refuse") == 0))) {
        cairn_err_oom(err, "for the audit trail");
        goto fail;
    }
    msgpack_sbuffer_init(&b->audit_sb);
    if (!(b->tokens = tokens_new())) {
        cairn_err_oom(err, "for the token lookups");
        goto fail;
    }
    if (!(b->pending = pending_table_new())) {
        cairn_err_oom(err, NULL);
        goto fail;
    }
    /* Byte limits, capped at a quarter of this machine's memory each. */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t quarter = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / 4 : 0;
    clients_limits_t lim = {.per_client = b->conf->max_client_bytes,
                            .queued = b->conf->max_queue_bytes,
                            .unsent = b->conf->max_unsent_bytes};
    if (quarter && lim.queued > quarter) lim.queued = quarter;
    if (quarter && lim.unsent > quarter) lim.unsent = quarter;
    if (!(b->clients = clients_new(&lim))) {
        cairn_err_oom(err, NULL);
        goto fail;
    }
    if (!(b->zctx = zmq_ctx_new())) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "zmq_ctx_new failed");
        goto fail;
    }
    if (s_open_sockets(b, err) != 0) goto fail;
    /* Before any plugin starts (inproc threads read it, process hosts
     * inherit it): where a plugin that calls the bus finds this kernel. */
    if (setenv("CAIRN_ENDPOINT", b->frontend_ipc, 1) != 0) {
        cairn_err_oom(err, "for the plugins' environment");
        goto fail;
    }
    b->services = calloc(b->conf->nservices + 1, sizeof *b->services);
    if (!b->services) goto fail;
    b->nservices = b->conf->nservices;
    for (size_t i = 0; i < b->nservices; i++) {
        service_t *s = &b->services[i];
        s->conf = &b->conf->services[i];
        s->broker = b;
        msgpack_sbuffer_init(&s->settings);
        if (!(s->metrics = metrics_new())) {
            cairn_err_oom(err, "for the metrics");
            goto fail;
        }
        if (supervisor_prepare(b, s, err) != 0) {
            /* A bad plugin is refused, not fatal; a bad setting is a conf error. */
            if (strcmp(err->code, CAIRN_E_BAD_CONF) == 0) goto fail;
            snprintf(s->last_error, sizeof s->last_error, "%s", err->msg);
            fprintf(stderr, "cairnd: service %s refused: %s\n", s->conf->name,
                    err->msg);
            s->state = SVC_DOWN;
            cairn_err_clear(err);
        }
    }
    supervisor_start_all(b);
    return b;
fail:
    broker_destroy(&b);
    return NULL;
}

void broker_destroy(broker_t **self_p)
{
    if (!self_p || !*self_p) return;
    broker_t *b = *self_p;
    b->stopping = true;
    if (b->services) {
        supervisor_stop_all(b);
        for (size_t i = 0; i < b->nservices; i++) {
            service_t *s = &b->services[i];
            while (s->workers) {
                worker_t *w = s->workers;
                s->workers = w->next;
                free(w);
            }
            for (size_t j = 0; j < s->nverbs; j++) {
                free(s->verbs[j].name);
                free(s->verbs[j].perm);
            }
            free(s->verbs);
            metrics_destroy(&s->metrics);
            msgpack_sbuffer_destroy(&s->settings);
            supervisor_release(s);
            free(s->plugin_path);
        }
    }
    free(b->services);
    metrics_destroy(&b->sys_metrics);
    pending_table_destroy(&b->pending);
    if (b->frontend) zmq_close(b->frontend);
    if (b->backend) zmq_close(b->backend);
    if (b->pub) zmq_close(b->pub);
    curve_destroy(&b->curve); /* its key check's socket, after the others */
    if (b->zctx) zmq_ctx_term(b->zctx);
    clients_destroy(&b->clients); /* after the context: no write callback is left */
    tokens_destroy(&b->tokens);
    kaudit_destroy(&b->audit);
    msgpack_sbuffer_destroy(&b->audit_sb);
    authz_destroy(&b->authz);
    msgpack_zone_destroy(&b->zone);
    msgpack_sbuffer_destroy(&b->sb);
    if (b->run_dir && strncmp(b->run_dir, "/tmp/cairn-", 11) == 0) {
        const char *socks[] = {"workers", "events", "frontend"};
        for (size_t i = 0; i < 3; i++) {
            char *p = s_printf("%s/%s.sock", b->run_dir, socks[i]);
            if (p) unlink(p);
            free(p);
        }
        rmdir(b->run_dir);
    }
    free(b->endpoint);
    free(b->state_dir);
    free(b->run_dir);
    free(b->bin_dir);
    free(b->plugin_dir);
    free(b->worker_ipc);
    free(b->events_ipc);
    free(b->frontend_ipc);
    free(b);
    *self_p = NULL;
}
