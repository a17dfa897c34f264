/* The C client: a DEALER socket speaking CAIRN/1 (docs/PROTOCOL.md). */
#define _POSIX_C_SOURCE 200809L
#include "cairn/client.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cairn/msg.h"
#include "tracking_int.h"

struct cairn_reply {
    uint64_t id;
    int st;
    char *code, *err;
    char *body; /* in body_msg: a large reply is not copied again */
    size_t body_len;
    zmq_msg_t body_msg;
    msgpack_zone zone;
    bool zone_ready;
    msgpack_object obj;
    bool obj_ready;
    cairn_reply_t *next; /* in the client's stash */
};

#define CLIENT_ABANDONED_MAX 64

struct cairn_client {
    void *zctx;
    void *sock;
    char *token;
    char *ws;
    char *fwd; /* the `fwd` header (cairn_client_set_forwarded), or NULL */
    uint32_t ttl_ms;
    uint64_t next_id;
    cairn_reply_t *stash_head, *stash_tail; /* replies read while waiting for another */
    /* Ids of calls that gave up waiting: their replies, should they come
     * after all, are dropped rather than stashed for ever (a retrying
     * transfer would otherwise pile up chunks). Bounded: when full, a new
     * id takes the place of an old one, round-robin. */
    uint64_t abandoned[CLIENT_ABANDONED_MAX];
    unsigned nabandoned, abandoned_at;
    msgpack_zone zone;   /* reused for reply headers */
    msgpack_sbuffer hdr; /* reused for request headers */
};

int cairn_token_path(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n = xdg && *xdg     ? snprintf(out, cap, "%s/cairn/token", xdg)
            : home && *home ? snprintf(out, cap, "%s/.config/cairn/token", home)
                            : -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

#define SMALL_FILE_MAX 4096 /* token and key files are read only when smaller */

/* Read all of fd (closed here) into buf when it is a regular file of less
 * than SMALL_FILE_MAX bytes: its length, or -1. */
static ssize_t s_read_small(int fd, char buf[SMALL_FILE_MAX + 1])
{
    struct stat st;
    ssize_t n =
        fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < SMALL_FILE_MAX
            ? read(fd, buf, SMALL_FILE_MAX)
            : -1;
    close(fd);
    return n;
}

/* The first line of a small regular file, trimmed; its length or 0. */
static size_t s_read_token(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    char buf[SMALL_FILE_MAX + 1];
    ssize_t n = s_read_small(fd, buf);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *s = buf;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    size_t len = strcspn(s, " \t\r\n");
    if (!len || len >= cap) return 0;
    memcpy(out, s, len);
    out[len] = '\0';
    sodium_memzero(buf, sizeof buf);
    return len;
}

size_t cairn_token_find(char *out, size_t cap)
{
    const char *env = getenv("CAIRN_TOKEN");
    if (env && *env) {
        size_t n = strlen(env);
        if (n >= cap) return 0;
        memcpy(out, env, n + 1);
        return n;
    }
    char path[4096];
    size_t n = 0;
    if (cairn_token_path(path, sizeof path) == 0 && (n = s_read_token(path, out, cap)))
        return n;
    const char *state = getenv("CAIRN_STATE");
    snprintf(path, sizeof path, "%s/owner.token", state && *state ? state : "./var");
    return s_read_token(path, out, cap);
}

/* ---- CurveZMQ keys ------------------------------------------------------ */

/* Whether p[0..n) is one key in Z85, decoded into bin. libzmq's decoder
 * takes a group that overflows 32 bits, so the key is encoded again and
 * compared: a key has one spelling. */
static bool s_z85_key(const char *p, size_t n, unsigned char bin[32])
{
    char text[CAIRN_KEY_Z85_LEN + 1], again[CAIRN_KEY_Z85_LEN + 1];
    if (n != CAIRN_KEY_Z85_LEN || memchr(p, '\0', n)) return false;
    memcpy(text, p, n);
    text[n] = '\0';
    bool ok = zmq_z85_decode(bin, text) && zmq_z85_encode(again, bin, 32) &&
              memcmp(again, text, n) == 0;
    sodium_memzero(text, sizeof text);
    sodium_memzero(again, sizeof again);
    return ok;
}

/* The first word of a small regular file that is a key, into out. */
static int s_key_file(const char *path, const char *what, char *out, cairn_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                             "%s: '%s' is not a key (40 characters of Z85), and it "
                             "cannot be read as a file: %s",
                             what, path, strerror(errno));
    char buf[SMALL_FILE_MAX + 1];
    ssize_t n = s_read_small(fd, buf);
    int rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                           "%s: %s holds no key (40 characters of Z85, as `cairn "
                           "keygen` writes)",
                           what, path);
    unsigned char bin[32];
    for (ssize_t at = 0; n > 0 && at < n;) {
        while (at < n && strchr(" \t\r\n", buf[at])) at++;
        ssize_t w = at;
        while (w < n && !strchr(" \t\r\n", buf[w])) w++;
        if (w > at && s_z85_key(buf + at, (size_t)(w - at), bin)) {
            memcpy(out, buf + at, CAIRN_KEY_Z85_LEN);
            out[CAIRN_KEY_Z85_LEN] = '\0';
            cairn_err_clear(err);
            rc = 0;
            break;
        }
        at = w;
    }
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(bin, sizeof bin);
    return rc;
}

int cairn_key_load(const char *key_or_path, const char *what,
                   char out[CAIRN_KEY_Z85_LEN + 1], cairn_err_t *err)
{
    unsigned char bin[32];
    if (!key_or_path || !*key_or_path)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                             "%s: no key given", what);
    /* A file first: a 40-character path may spell a key in Z85 too
     * ("/tmp/cairn-curve-r8jsjp0n/stranger12.key" does). */
    struct stat st;
    if (stat(key_or_path, &st) == 0) return s_key_file(key_or_path, what, out, err);
    if (s_z85_key(key_or_path, strlen(key_or_path), bin)) {
        sodium_memzero(bin, sizeof bin);
        memcpy(out, key_or_path, CAIRN_KEY_Z85_LEN + 1);
        return 0;
    }
    return s_key_file(key_or_path, what, out, err);
}

int cairn_curve_client(void *zsock, const char *server_key, const char *client_key,
                       cairn_err_t *err)
{
    char server[CAIRN_KEY_Z85_LEN + 1], secret[CAIRN_KEY_Z85_LEN + 1],
        public[CAIRN_KEY_Z85_LEN + 1];
    if (cairn_key_load(server_key, "the server key", server, err) != 0) return -1;
    if (cairn_key_load(client_key, "the client key", secret, err) != 0) return -1;
    int rc = 0;
    if (zmq_curve_public(public, secret) != 0 ||
        zmq_setsockopt(zsock, ZMQ_CURVE_SERVERKEY, server, CAIRN_KEY_Z85_LEN + 1) !=
            0 ||
        zmq_setsockopt(zsock, ZMQ_CURVE_PUBLICKEY, public, CAIRN_KEY_Z85_LEN + 1) !=
            0 ||
        zmq_setsockopt(zsock, ZMQ_CURVE_SECRETKEY, secret, CAIRN_KEY_Z85_LEN + 1) != 0)
        rc =
            cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                          "CurveZMQ cannot be set up: %s (is libzmq built with CURVE?)",
                          zmq_strerror(errno));
    sodium_memzero(secret, sizeof secret);
    return rc;
}

cairn_client_t *cairn_client_new(const char *endpoint, const char *token,
                                 cairn_err_t *err)
{
    cairn_client_opts_t o = {.endpoint = endpoint, .token = token};
    return cairn_client_new_opts(&o, err);
}

/* The CurveZMQ keys of opts, else of the environment; both NULL: none.
 * -1 with err when a server key comes without a client key. */
static int s_curve_keys(const cairn_client_opts_t *o, const char **server,
                        const char **client, cairn_err_t *err)
{
    *server = o->server_key ? o->server_key : getenv("CAIRN_SERVER_KEY");
    *client = o->client_key ? o->client_key : getenv("CAIRN_CLIENT_KEY");
    if (!*server || !**server) {
        *server = *client = NULL;
        return 0;
    }
    if (!*client || !**client)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                             "a server key is given (%s), but no client key: set "
                             "CAIRN_CLIENT_KEY to this client's secret key or its file "
                             "(make one with `cairn keygen`)",
                             o->server_key ? "by the caller" : "CAIRN_SERVER_KEY");
    return 0;
}

cairn_client_t *cairn_client_new_opts(const cairn_client_opts_t *opts, cairn_err_t *err)
{
    static const cairn_client_opts_t none = {0};
    if (!opts) opts = &none;
    const char *endpoint = opts->endpoint, *token = opts->token, *server, *client;
    if (s_curve_keys(opts, &server, &client, err) != 0) return NULL;
    if (!endpoint) endpoint = getenv("CAIRN_ENDPOINT");
    if (!endpoint || !*endpoint) endpoint = CAIRN_DEFAULT_ENDPOINT;
    char found[4096];
    if (!token && cairn_token_find(found, sizeof found)) token = found;
    cairn_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    self->ttl_ms = 30000;
    self->next_id = 1;
    msgpack_zone_init(&self->zone, 4096);
    msgpack_sbuffer_init(&self->hdr);
    self->zctx = zmq_ctx_new();
    self->sock = self->zctx ? zmq_socket(self->zctx, ZMQ_DEALER) : NULL;
    if (!self->sock) goto fail;
    int zero = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (server && cairn_curve_client(self->sock, server, client, err) != 0) {
        sodium_memzero(found, sizeof found);
        cairn_client_destroy(&self);
        return NULL;
    }
    if (zmq_connect(self->sock, endpoint) != 0) goto fail;
    if (token && *token && !(self->token = strdup(token))) goto fail;
    const char *ws = opts->workspace ? opts->workspace : getenv("CAIRN_WORKSPACE");
    if (ws && *ws && !(self->ws = strdup(ws))) goto fail;
    sodium_memzero(found, sizeof found);
    return self;
fail:
    sodium_memzero(found, sizeof found);
    cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                  "cannot connect to '%s': %s", endpoint, zmq_strerror(errno));
    cairn_client_destroy(&self);
    return NULL;
}

void cairn_client_destroy(cairn_client_t **self_p)
{
    if (!self_p || !*self_p) return;
    cairn_client_t *self = *self_p;
    while (self->stash_head) {
        cairn_reply_t *r = self->stash_head;
        self->stash_head = r->next;
        cairn_reply_destroy(&r);
    }
    if (self->sock) zmq_close(self->sock);
    if (self->zctx) zmq_ctx_term(self->zctx);
    msgpack_zone_destroy(&self->zone);
    msgpack_sbuffer_destroy(&self->hdr);
    free(self->token);
    free(self->fwd);
    free(self->ws);
    free(self);
    *self_p = NULL;
}

void cairn_client_set_workspace(cairn_client_t *self, const char *ws)
{
    free(self->ws);
    self->ws = ws ? strdup(ws) : NULL;
}

void cairn_client_set_forwarded(cairn_client_t *self, const char *addr)
{
    if (self->fwd && addr && !strcmp(self->fwd, addr)) return; /* the usual case */
    free(self->fwd);
    self->fwd = addr && *addr ? strdup(addr) : NULL;
}

void cairn_client_set_ttl(cairn_client_t *self, uint32_t ttl_ms)
{
    self->ttl_ms = ttl_ms ? ttl_ms : 30000;
}

/* libcairn's own (sdk/transfer.c keeps requests in flight and waits for
 * them itself): the ttl a call with ttl_ms 0 gets. Not exported. */
uint32_t cairn_client_default_ttl(const cairn_client_t *self)
{
    return self->ttl_ms;
}

static int s_send_frame(void *sock, const void *data, size_t len, int more)
{
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

/* The request's frames but its body; the id it goes under in *rid. */
static int s_send_head(cairn_client_t *self, const char *svc, const char *verb,
                       uint32_t ttl_ms, uint64_t *rid_out)
{
    msgpack_sbuffer *sb = &self->hdr;
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    uint64_t rid = self->next_id++;
    msgpack_pack_map(
        &pk, 4 + (self->token ? 1 : 0) + (self->ws ? 1 : 0) + (self->fwd ? 1 : 0));
    cairn_pack_cstr(&pk, "id");
    msgpack_pack_uint64(&pk, rid);
    cairn_pack_kv_str(&pk, "svc", svc);
    cairn_pack_kv_str(&pk, "verb", verb);
    cairn_pack_cstr(&pk, "ttl");
    msgpack_pack_uint32(&pk, ttl_ms ? ttl_ms : self->ttl_ms);
    if (self->token) cairn_pack_kv_str(&pk, "tok", self->token);
    if (self->ws) cairn_pack_kv_str(&pk, "ws", self->ws);
    if (self->fwd) cairn_pack_kv_str(&pk, "fwd", self->fwd);
    int rc = s_send_frame(self->sock, "", 0, 1);
    if (rc == 0) rc = s_send_frame(self->sock, CAIRN_TAG, strlen(CAIRN_TAG), 1);
    if (rc == 0) rc = s_send_frame(self->sock, sb->data, sb->size, 1);
    *rid_out = rid;
    return rc;
}

int cairn_client_send(cairn_client_t *self, const char *svc, const char *verb,
                      const void *body, size_t len, uint32_t ttl_ms, uint64_t *id,
                      cairn_err_t *err)
{
    uint64_t rid = 0;
    int rc = s_send_head(self, svc, verb, ttl_ms, &rid);
    if (rc == 0) rc = s_send_frame(self->sock, body, body ? len : 0, 0);
    if (rc != 0)
        return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                             "cannot send the request: %s", zmq_strerror(errno));
    if (id) *id = rid;
    return 0;
}

int cairn_client_send_msg(cairn_client_t *self, const char *svc, const char *verb,
                          zmq_msg_t *body, uint64_t *id, cairn_err_t *err)
{
    uint64_t rid = 0;
    int rc = s_send_head(self, svc, verb, 0, &rid);
    if (rc == 0 && zmq_msg_send(body, self->sock, 0) < 0) rc = -1;
    int e = errno;
    zmq_msg_close(body); /* sent: empty now; not sent: let go of its bytes */
    if (rc != 0)
        return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                             "cannot send the request: %s", zmq_strerror(e));
    if (id) *id = rid;
    return 0;
}

static char *s_obj_strdup(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) return NULL;
    cairn_str_t s = {o->via.str.ptr, o->via.str.size};
    return cairn_str_dup(s);
}

/* Read frames until the message ends; the reply keeps the last one.
 * flags apply to the first frame: with ZMQ_DONTWAIT, 1 means none queued. */
static int s_read_reply_flags(cairn_client_t *self, cairn_reply_t **out,
                              cairn_err_t *err, int flags)
{
    zmq_msg_t part[4];
    int nparts = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, nparts ? 0 : flags) < 0) {
            zmq_msg_close(&m);
            if (!nparts && errno == EAGAIN) return 1;
            for (int i = 0; i < nparts; i++) zmq_msg_close(&part[i]);
            return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                                 "receive failed: %s", zmq_strerror(errno));
        }
        more = zmq_msg_more(&m);
        if (nparts < 4)
            part[nparts++] = m;
        else
            zmq_msg_close(&m);
    }
    int rc = -1;
    cairn_reply_t *r = NULL;
    if (nparts < 3 || zmq_msg_size(&part[1]) != strlen(CAIRN_TAG) ||
        memcmp(zmq_msg_data(&part[1]), CAIRN_TAG, strlen(CAIRN_TAG)) != 0) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_BAD_REPLY,
                      "the kernel sent a malformed reply");
        goto done;
    }
    msgpack_zone_clear(&self->zone);
    msgpack_object h;
    size_t off = 0;
    if (cairn_msgpack_check_shape(zmq_msg_data(&part[2]), zmq_msg_size(&part[2]),
                                  NULL) != 0 ||
        msgpack_unpack(zmq_msg_data(&part[2]), zmq_msg_size(&part[2]), &off,
                       &self->zone, &h) != MSGPACK_UNPACK_SUCCESS ||
        h.type != MSGPACK_OBJECT_MAP) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_BAD_REPLY,
                      "the reply header is not a msgpack map");
        goto done;
    }
    r = calloc(1, sizeof *r);
    if (r) zmq_msg_init(&r->body_msg);
    if (!r) goto oom;
    const msgpack_object *v = cairn_obj_get(&h, "id");
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) r->id = v->via.u64;
    v = cairn_obj_get(&h, "st");
    r->st = v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int)v->via.u64 : 500;
    r->code = s_obj_strdup(cairn_obj_get(&h, "code"));
    r->err = s_obj_strdup(cairn_obj_get(&h, "err"));
    if (nparts >= 4 && zmq_msg_size(&part[3]) > 0) {
        r->body_len = zmq_msg_size(&part[3]);
        zmq_msg_move(&r->body_msg, &part[3]);
        r->body = zmq_msg_data(&r->body_msg);
    }
    *out = r;
    r = NULL;
    rc = 0;
    goto done;
oom:
    cairn_err_oom(err, NULL);
done:
    cairn_reply_destroy(&r);
    for (int i = 0; i < nparts; i++) zmq_msg_close(&part[i]);
    return rc;
}

static int s_read_reply(cairn_client_t *self, cairn_reply_t **out, cairn_err_t *err)
{
    return s_read_reply_flags(self, out, err, 0);
}

static void s_abandon(cairn_client_t *self, uint64_t id)
{
    if (self->nabandoned < CLIENT_ABANDONED_MAX) {
        self->abandoned[self->nabandoned++] = id;
        return;
    }
    self->abandoned[self->abandoned_at] = id;
    self->abandoned_at = (self->abandoned_at + 1) % CLIENT_ABANDONED_MAX;
}

/* The reply of a call that gave up: forget the id, and say so. */
static bool s_was_abandoned(cairn_client_t *self, uint64_t id)
{
    for (unsigned i = 0; i < self->nabandoned; i++) {
        if (self->abandoned[i] != id) continue;
        self->abandoned[i] = self->abandoned[--self->nabandoned];
        return true;
    }
    return false;
}

int cairn_client_recv(cairn_client_t *self, int timeout_ms, cairn_reply_t **reply,
                      cairn_err_t *err)
{
    if (self->stash_head) {
        *reply = self->stash_head;
        self->stash_head = (*reply)->next;
        if (!self->stash_head) self->stash_tail = NULL;
        (*reply)->next = NULL;
        return 0;
    }
    uint64_t deadline =
        timeout_ms < 0 ? UINT64_MAX : cairn_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        /* A reply already queued needs no poll (and no syscall). */
        int rc = s_read_reply_flags(self, reply, err, ZMQ_DONTWAIT);
        if (rc == 0 && s_was_abandoned(self, (*reply)->id)) {
            cairn_reply_destroy(reply); /* a call gave up on it */
            continue;
        }
        if (rc <= 0) return rc;
        uint64_t now = cairn_now_ms();
        long wait = timeout_ms < 0 ? -1 : now >= deadline ? 0 : (long)(deadline - now);
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, wait);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0)
            return cairn_err_set(
                err, CAIRN_ST_TIMEOUT, CAIRN_E_DEADLINE,
                "no reply from the kernel within %d ms (is cairnd running?)",
                timeout_ms);
        if (n < 0)
            return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                                 "poll failed: %s", zmq_strerror(errno));
    }
}

static void s_stash(cairn_client_t *self, cairn_reply_t *r)
{
    r->next = NULL;
    if (self->stash_tail)
        self->stash_tail->next = r;
    else
        self->stash_head = r;
    self->stash_tail = r;
}

int cairn_client_call(cairn_client_t *self, const char *svc, const char *verb,
                      const void *body, size_t len, uint32_t ttl_ms,
                      cairn_reply_t **reply, cairn_err_t *err)
{
    if (reply) *reply = NULL;
    uint64_t id;
    if (ttl_ms == 0) ttl_ms = self->ttl_ms;
    if (cairn_client_send(self, svc, verb, body, len, ttl_ms, &id, err) != 0) return -1;
    /* Wait a little past the ttl: the kernel answers 504 itself at the ttl. */
    uint64_t deadline = cairn_now_ms() + ttl_ms + 1000;
    for (;;) {
        uint64_t now = cairn_now_ms();
        if (now >= deadline) {
            s_abandon(self, id);
            return cairn_err_set(err, CAIRN_ST_TIMEOUT, CAIRN_E_DEADLINE,
                                 "no reply from the kernel within %u ms (is cairnd "
                                 "running?)",
                                 ttl_ms);
        }
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, (long)(deadline - now));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                                 "poll failed: %s", zmq_strerror(errno));
        if (n == 0) continue;
        cairn_reply_t *r = NULL;
        if (s_read_reply(self, &r, err) != 0) return -1;
        if (r->id != id) {
            if (s_was_abandoned(self, r->id))
                cairn_reply_destroy(&r);
            else
                s_stash(self, r);
            continue;
        }
        int st = r->st;
        if (st >= CAIRN_ST_BAD_REQUEST)
            cairn_err_set(err, st, r->code && *r->code ? r->code : NULL, "%s",
                          r->err ? r->err : "request failed");
        if (reply)
            *reply = r;
        else
            cairn_reply_destroy(&r);
        return st >= CAIRN_ST_BAD_REQUEST ? -1 : 0;
    }
}

uint64_t cairn_reply_id(const cairn_reply_t *r)
{
    return r->id;
}
int cairn_reply_status(const cairn_reply_t *r)
{
    return r->st;
}
const char *cairn_reply_code(const cairn_reply_t *r)
{
    return r->code ? r->code : "";
}
const char *cairn_reply_error(const cairn_reply_t *r)
{
    return r->err ? r->err : "";
}

const void *cairn_reply_body(const cairn_reply_t *r, size_t *len)
{
    if (len) *len = r->body_len;
    return r->body;
}

bool cairn_reply_undelivered(cairn_reply_t *r)
{
    if (!r || r->st < CAIRN_ST_BAD_REQUEST || !r->body_len) return false;
    const msgpack_object *d = cairn_obj_get(cairn_reply_object(r), "delivered");
    return d && d->type == MSGPACK_OBJECT_BOOLEAN && !d->via.boolean;
}

const msgpack_object *cairn_reply_object(cairn_reply_t *r)
{
    if (r->obj_ready) return &r->obj;
    r->obj.type = MSGPACK_OBJECT_NIL;
    if (r->body_len) {
        if (!r->zone_ready) {
            msgpack_zone_init(&r->zone, 4096);
            r->zone_ready = true;
        }
        size_t off = 0;
        if (cairn_msgpack_check_shape(r->body, r->body_len, NULL) != 0 ||
            msgpack_unpack(r->body, r->body_len, &off, &r->zone, &r->obj) !=
                MSGPACK_UNPACK_SUCCESS)
            r->obj.type = MSGPACK_OBJECT_NIL;
    }
    r->obj_ready = true;
    return &r->obj;
}

void cairn_reply_destroy(cairn_reply_t **self_p)
{
    if (!self_p || !*self_p) return;
    cairn_reply_t *r = *self_p;
    if (r->zone_ready) msgpack_zone_destroy(&r->zone);
    free(r->code);
    free(r->err);
    zmq_msg_close(&r->body_msg);
    free(r);
    *self_p = NULL;
}
