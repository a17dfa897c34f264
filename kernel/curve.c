/* CurveZMQ on the kernel's network endpoints: the keys, the start rule and
 * the ZAP handler (see curve.h, docs/TRANSPORT.md). */
#define _GNU_SOURCE
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "authz.h"
#include "cairn/msg.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_PARTS_MAX 8 /* RFC 27: 6 frames, CURVE adds one */
#define SECRET_FILE_MAX 4096
#define ALLOWED_FILE_MAX (8u << 20)
#define RECENT_MAX 64 /* refused keys remembered, for the quiet period */

/* ---- keys ------------------------------------------------------------------ */

static bool s_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Decode 40 characters of Z85 into 32 bytes. libzmq's decoder accepts a
 * group whose value overflows 32 bits, so the key is encoded again and
 * compared: only the one spelling of a key is taken. */
static bool s_z85_key(const char *p, size_t n, unsigned char out[CURVE_KEY_BYTES])
{
    char text[CURVE_Z85_LEN + 1], again[CURVE_Z85_LEN + 1];
    if (n != CURVE_Z85_LEN) return false;
    memcpy(text, p, n);
    text[n] = '\0';
    if (memchr(text, '\0', n)) return false;
    if (!zmq_z85_decode(out, text)) return false;
    return zmq_z85_encode(again, out, CURVE_KEY_BYTES) && memcmp(again, text, n) == 0;
}

/* One line of a key file: 1 with the key in out, 0 for a blank line or a
 * comment, -1 for anything else. '#' is a Z85 character, but never the
 * first of a key (as a group's first character it overflows 32 bits), so a
 * line starting with it is a comment. */
static int s_line_key(const char *p, size_t n, unsigned char out[CURVE_KEY_BYTES])
{
    while (n && s_blank(*p)) p++, n--;
    while (n && s_blank(p[n - 1])) n--;
    if (!n) return 0;
    size_t w = 0;
    while (w < n && !s_blank(p[w])) w++;
    if (s_z85_key(p, w, out)) {
        size_t r = w;
        while (r < n && s_blank(p[r])) r++;
        return r == n || p[r] == '#' ? 1 : -1; /* a trailing comment only */
    }
    return p[0] == '#' ? 0 : -1;
}

int curve_allowed_parse(const char *text, size_t len, const char *source,
                        curve_allowed_t *out, cairn_err_t *err)
{
    curve_allowed_t a = {0};
    size_t cap = 0, line = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        unsigned char key[CURVE_KEY_BYTES];
        line++;
        int rc = s_line_key(text + at, n, key);
        at += n + 1;
        if (rc == 0) continue;
        if (rc < 0) {
            curve_allowed_clear(&a);
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                 "%s:%zu: expected a public key (40 characters of "
                                 "Z85, as `cairn keygen` prints), optionally followed "
                                 "by a '#' comment",
                                 source, line);
        }
        if (a.n == CURVE_ALLOWED_MAX) {
            curve_allowed_clear(&a);
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                 "%s:%zu: more than %d keys", source, line,
                                 CURVE_ALLOWED_MAX);
        }
        if (a.n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            void *nk = realloc(a.keys, ncap * sizeof *a.keys);
            if (!nk) {
                curve_allowed_clear(&a);
                return cairn_err_oom(err, "for the allowed keys");
            }
            a.keys = nk;
            cap = ncap;
        }
        memcpy(a.keys[a.n++], key, CURVE_KEY_BYTES);
    }
    *out = a;
    return 0;
}

void curve_allowed_clear(curve_allowed_t *a)
{
    free(a->keys);
    a->keys = NULL;
    a->n = 0;
}

bool curve_allowed_has(const curve_allowed_t *a,
                       const unsigned char key[CURVE_KEY_BYTES])
{
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(a->keys[i], key, CURVE_KEY_BYTES) == 0) return true;
    return false;
}

/* ---- the conf's rule --------------------------------------------------------- */

bool curve_wanted(const conf_t *c, const char *ep)
{
    if (!ep || !*ep || !strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
        return false;
    if (c->curve && !strcmp(c->curve, "always")) return true;
    cairn_err_t why;
    return authz_endpoint_check_loopback(ep, &why) != 0;
}

bool curve_any_wanted(const conf_t *c, const char *endpoint)
{
    return curve_wanted(c, endpoint) || curve_wanted(c, c->events) ||
           curve_wanted(c, c->worker_endpoint);
}

int curve_check_conf(const conf_t *c, const char *endpoint, cairn_err_t *err)
{
    const char *eps[] = {endpoint, c->events, c->worker_endpoint};
    const char *keys[] = {"endpoint", "events", "worker_endpoint"};
    bool keyed = c->curve_secret_key_file && *c->curve_secret_key_file &&
                 c->curve_allowed_keys && *c->curve_allowed_keys;
    for (size_t i = 0; i < 3 && !keyed; i++)
        if (curve_wanted(c, eps[i]))
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                "%s: kernel.%s %s is not a loopback address, and cairnd binds such "
                "an address only with CurveZMQ: set kernel.curve_secret_key_file "
                "and kernel.curve_allowed_keys (make keys with `cairn keygen`; "
                "docs/TRANSPORT.md)",
                c->source, keys[i], eps[i]);
    return 0;
}

/* ---- files -------------------------------------------------------------------- */

/* path, or state_dir/path when it is relative; heap, NULL when out of memory. */
static char *s_path(const char *state_dir, const char *path)
{
    char *out = NULL;
    if (path[0] == '/' || !state_dir) return strdup(path);
    return asprintf(&out, "%s/%s", state_dir, path) < 0 ? NULL : out;
}

/* A whole small regular file into a heap buffer (NUL-terminated); a secret
 * one must be the owner's only. 0, or -1 with a 400 bad_conf naming what. */
static int s_slurp(const char *what, const char *path, size_t max, bool secret,
                   char **out, size_t *len, struct stat *st, cairn_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: cannot read %s: %s", what, path, strerror(errno));
    int rc = -1;
    char *buf = NULL;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || (size_t)st->st_size > max) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "%s: %s is not a regular file of at most %zu bytes", what, path,
                      max);
    } else if (secret && (st->st_mode & 077)) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "%s: the secret key %s may be read by others (mode %04o): chmod "
                      "600 %s",
                      what, path, (unsigned)(st->st_mode & 07777), path);
    } else if (!(buf = malloc((size_t)st->st_size + 1))) {
        cairn_err_oom(err, "reading a key file");
    } else {
        ssize_t n = read(fd, buf, (size_t)st->st_size);
        if (n < 0)
            cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                          "%s: cannot read %s: %s", what, path, strerror(errno));
        else {
            buf[n] = '\0';
            *len = (size_t)n;
            rc = 0;
        }
    }
    close(fd);
    if (rc != 0 && buf) {
        sodium_memzero(buf, (size_t)st->st_size);
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return rc;
}

/* The first key of a key file (the secret key `cairn keygen` writes). */
static int s_read_secret(const char *path, unsigned char key[CURVE_KEY_BYTES],
                         cairn_err_t *err)
{
    char *buf;
    size_t len;
    struct stat st;
    const char *what = "kernel.curve_secret_key_file";
    if (s_slurp(what, path, SECRET_FILE_MAX, true, &buf, &len, &st, err) != 0)
        return -1;
    int found = 0;
    for (size_t at = 0; at < len && found == 0;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (buf + at)) : len - at;
        found = s_line_key(buf + at, n, key);
        at += n + 1;
    }
    sodium_memzero(buf, len);
    free(buf);
    if (found != 1)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: %s holds no secret key (40 characters of Z85, as "
                             "`cairn keygen` writes)",
                             what, path);
    return 0;
}

/* ---- the server ------------------------------------------------------------ */

typedef struct recent {
    unsigned char key[CURVE_KEY_BYTES];
    uint64_t at;
} recent_t;

struct curve {
    unsigned char secret[CURVE_KEY_BYTES];
    bool has_secret;
    char public_z85[CURVE_Z85_LEN + 1];
    char *allowed_path;
    curve_allowed_t allowed;
    struct stat allowed_st; /* the file as last read, to see it change */
    bool reload_failed;     /* said once per change */
    void *zap;
    recent_t recent[RECENT_MAX]; /* refused keys, audited at most once a minute */
    size_t nrecent, recent_at;
    uint64_t refused;
};

static int s_load_allowed(curve_t *self, cairn_err_t *err)
{
    char *buf;
    size_t len;
    struct stat st;
    curve_allowed_t a;
    if (s_slurp("kernel.curve_allowed_keys", self->allowed_path, ALLOWED_FILE_MAX,
                false, &buf, &len, &st, err) != 0)
        return -1;
    int rc = curve_allowed_parse(buf, len, self->allowed_path, &a, err);
    free(buf);
    if (rc != 0) return -1;
    curve_allowed_clear(&self->allowed);
    self->allowed = a;
    self->allowed_st = st;
    return 0;
}

curve_t *curve_new(const conf_t *c, const char *state_dir, cairn_err_t *err)
{
    curve_t *self = calloc(1, sizeof *self);
    char *secret_path = NULL;
    if (!self || !(secret_path = s_path(state_dir, c->curve_secret_key_file)) ||
        !(self->allowed_path = s_path(state_dir, c->curve_allowed_keys))) {
        cairn_err_oom(err, NULL);
        goto fail;
    }
    if (s_read_secret(secret_path, self->secret, err) != 0) goto fail;
    self->has_secret = true;
    unsigned char pub[CURVE_KEY_BYTES];
    crypto_scalarmult_base(pub, self->secret); /* CurveZMQ's keys are X25519's */
    zmq_z85_encode(self->public_z85, pub, sizeof pub);
    if (s_load_allowed(self, err) != 0) goto fail;
    free(secret_path);
    return self;
fail:
    free(secret_path);
    curve_destroy(&self);
    return NULL;
}

void curve_destroy(curve_t **self_p)
{
    if (!self_p || !*self_p) return;
    curve_t *self = *self_p;
    if (self->zap) zmq_close(self->zap);
    sodium_memzero(self->secret, sizeof self->secret);
    curve_allowed_clear(&self->allowed);
    free(self->allowed_path);
    free(self);
    *self_p = NULL;
}

int curve_zap_open(curve_t *self, void *zctx, cairn_err_t *err)
{
    self->zap = zmq_socket(zctx, ZMQ_REP);
    int zero = 0;
    if (self->zap) zmq_setsockopt(self->zap, ZMQ_LINGER, &zero, sizeof zero);
    if (!self->zap || zmq_bind(self->zap, ZAP_ENDPOINT) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_BIND_FAILED,
                             "cannot bind the CurveZMQ key check (ZAP) to %s: %s",
                             ZAP_ENDPOINT, zmq_strerror(errno));
    return 0;
}

void *curve_zap_socket(const curve_t *self)
{
    return self->zap;
}

int curve_server_apply(curve_t *self, void *sock, cairn_err_t *err)
{
    int one = 1;
    if (!self->has_secret || !self->zap)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "CurveZMQ: no secret key or no key check to bind with");
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->secret, sizeof self->secret) !=
            0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "CurveZMQ cannot be set on a socket: %s (is libzmq built "
                             "with CURVE?)",
                             zmq_strerror(errno));
    return 0;
}

void curve_forget_secret(curve_t *self)
{
    if (!self) return;
    sodium_memzero(self->secret, sizeof self->secret);
    self->has_secret = false;
}

const char *curve_public_key(const curve_t *self)
{
    return self->public_z85;
}

uint64_t curve_refused(const curve_t *self)
{
    return self ? self->refused : 0;
}

/* ---- the ZAP handler ---------------------------------------------------------- */

/* Read the allowed keys again when their file changed (a key added or
 * removed takes effect at the next connection, without a restart). A file
 * that no longer parses keeps the keys read before, and is said once. */
static void s_maybe_reload(curve_t *self)
{
    struct stat st;
    const struct stat *o = &self->allowed_st;
    if (stat(self->allowed_path, &st) == 0 && st.st_ino == o->st_ino &&
        st.st_dev == o->st_dev && st.st_size == o->st_size &&
        st.st_mtim.tv_sec == o->st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == o->st_mtim.tv_nsec)
        return;
    cairn_err_t err = {0};
    if (s_load_allowed(self, &err) == 0) {
        fprintf(stderr, "cairnd: CurveZMQ: %s read again (%zu keys)\n",
                self->allowed_path, self->allowed.n);
        self->reload_failed = false;
    } else if (!self->reload_failed) {
        fprintf(stderr, "cairnd: CurveZMQ: %s; the %zu keys read before still hold\n",
                err.msg, self->allowed.n);
        self->reload_failed = true;
    }
}

/* Whether a refusal of key is to be recorded now (not within the quiet
 * period of the last one): a refused client reconnects every 100 ms, and
 * each attempt would be a record. */
static bool s_refusal_news(curve_t *self, const unsigned char *key)
{
    uint64_t now = cairn_now_ms();
    for (size_t i = 0; i < self->nrecent; i++) {
        recent_t *r = &self->recent[i];
        if (memcmp(r->key, key, CURVE_KEY_BYTES) != 0) continue;
        if (now - r->at < CURVE_REFUSAL_QUIET_MS) return false;
        r->at = now;
        return true;
    }
    recent_t *r =
        &self->recent[self->nrecent < RECENT_MAX ? self->nrecent++
                                                 : self->recent_at++ % RECENT_MAX];
    memcpy(r->key, key, CURVE_KEY_BYTES);
    r->at = now;
    return true;
}

static void s_refuse(curve_t *self, kaudit_t *audit, const unsigned char *key,
                     const char *address)
{
    self->refused++;
    if (!s_refusal_news(self, key)) return;
    char z85[CURVE_Z85_LEN + 1], principal[6 + CURVE_Z85_LEN + 1];
    zmq_z85_encode(z85, key, CURVE_KEY_BYTES);
    snprintf(principal, sizeof principal, "curve:%s", z85);
    fprintf(stderr,
            "cairnd: CurveZMQ: refused the key %s from %s (not in %s; refusals of a "
            "key are said once a minute)\n",
            z85, address, self->allowed_path);
    char object[5 + 64];
    snprintf(object, sizeof object, "peer/%s", address);
    if (kaudit_add(audit, principal, "default", "sys", "connect", object, "",
                   CAIRN_ST_UNAUTHENTICATED, "") != 0)
        fprintf(stderr,
                "cairnd: CurveZMQ: the audit trail is full; refusal of %s "
                "not recorded\n",
                z85);
}

/* The text of a frame, NUL-terminated into buf (cut to fit). */
static const char *s_text(zmq_msg_t *m, char *buf, size_t cap)
{
    size_t n = zmq_msg_size(m) < cap - 1 ? zmq_msg_size(m) : cap - 1;
    memcpy(buf, zmq_msg_data(m), n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e) buf[i] = '?';
    return buf;
}

/* Decide one request (RFC 27 frames: version, request id, domain, address,
 * identity, mechanism, credentials...): its status, and a user id. */
static const char *s_decide(curve_t *self, kaudit_t *audit, zmq_msg_t *f, int n,
                            char *user, size_t cap)
{
    char address[64], mech[16];
    user[0] = '\0';
    if (n < 6 || zmq_msg_size(&f[0]) != 3 || memcmp(zmq_msg_data(&f[0]), "1.0", 3) != 0)
        return "500";
    s_text(&f[5], mech, sizeof mech);
    /* NULL comes only from sockets bound without CURVE (ipc, loopback),
     * and only were a ZAP domain set, which the kernel never sets. */
    if (!strcmp(mech, "NULL")) return "200";
    if (strcmp(mech, "CURVE") != 0 || n < 7 || zmq_msg_size(&f[6]) != CURVE_KEY_BYTES)
        return "400";
    const unsigned char *key = zmq_msg_data(&f[6]);
    s_maybe_reload(self);
    if (!curve_allowed_has(&self->allowed, key)) {
        s_refuse(self, audit, key, s_text(&f[3], address, sizeof address));
        return "400";
    }
    char z85[CURVE_Z85_LEN + 1];
    zmq_z85_encode(z85, key, CURVE_KEY_BYTES);
    snprintf(user, cap, "curve:%s", z85);
    return "200";
}

/* Receive one request's frames (at most ZAP_PARTS_MAX kept, each to be
 * closed by the caller); its count, 0 when none waits. */
static int s_recv_request(void *sock, zmq_msg_t *f)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t spare, *m = n < ZAP_PARTS_MAX ? &f[n] : &spare;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, n ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        if (m == &spare)
            zmq_msg_close(m);
        else
            n++;
    }
    return n;
}

void curve_zap_serve(curve_t *self, kaudit_t *audit)
{
    for (int served = 0; self && self->zap && served < 256; served++) {
        zmq_msg_t f[ZAP_PARTS_MAX];
        int n = s_recv_request(self->zap, f);
        if (n == 0) return;
        char user[6 + CURVE_Z85_LEN + 1];
        const char *st = s_decide(self, audit, f, n, user, sizeof user);
        /* A REP socket must answer before it can read again: always reply. */
        const void *rid = n > 1 ? zmq_msg_data(&f[1]) : "";
        size_t rid_len = n > 1 ? zmq_msg_size(&f[1]) : 0;
        const char *text = !strcmp(st, "200") ? "OK" : "key not allowed";
        zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(self->zap, rid, rid_len, ZMQ_SNDMORE);
        zmq_send(self->zap, st, 3, ZMQ_SNDMORE);
        zmq_send(self->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(self->zap, user, strlen(user), ZMQ_SNDMORE);
        zmq_send(self->zap, "", 0, 0);
        for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
    }
}
