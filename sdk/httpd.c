/* A small HTTP/1.1 server over libmicrohttpd (httpd.h).
 *
 * libmicrohttpd calls the access handler several times a request: first
 * with the headers (the request's state is made then, and a body declared
 * over the limit is refused at once), then with each piece of the body
 * (appended, up to the limit), then once with none left: the handler runs
 * and the response is queued.
 *
 * A live response's read may have nothing now: its connection is then
 * suspended (MHD_ALLOW_SUSPEND_RESUME; a content reader returning 0 in
 * internal polling would spin) and resumed by cairn_http_live_wake. mu
 * orders the two: a wake before the suspension is remembered (woken) and
 * the read runs again instead. libmicrohttpd must not stop with a
 * connection suspended, so stop resumes them all first (stopping). */
#define _GNU_SOURCE
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_THREADS 4
#define DEFAULT_CONNECTIONS 256
#define DEFAULT_TIMEOUT_S 60
#define TLS_FILE_MAX (1u << 20) /* a PEM file's bytes, at most */

struct cairn_httpd {
    struct MHD_Daemon *d;
    cairn_http_handler_fn *fn;
    cairn_http_stream_pick_fn *pick;
    void *arg;
    size_t max_body;
    uint16_t port;
    char *cert_pem, *key_pem; /* HTTPS: the PEM texts (NULL: plain HTTP) */
    pthread_mutex_t mu;       /* the live responses and their flags */
    cairn_http_live_t *lives; /* those queued, in a list */
    bool stopping;
};

struct cairn_http_live {
    cairn_httpd_t *h;
    struct MHD_Connection *c; /* once queued */
    cairn_http_live_t *prev, *next;
    bool queued, suspended, woken;
};

/* A request's state between libmicrohttpd's calls: its body gathered, or
 * streamed to the handler's stream. */
typedef struct {
    char *buf;
    size_t len, cap;
    bool too_big;
    bool streamed, refused;
    cairn_http_stream_t stream;
} body_t;

const char *cairn_http_header(const cairn_http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *cairn_http_query(const cairn_http_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

void cairn_http_peer(const cairn_http_request_t *req, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (cap) out[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                  out, (socklen_t)cap);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  out, (socklen_t)cap);
}

typedef struct {
    void (*fn)(void *arg, const char *key, const char *value);
    void *arg;
} each_t;

static enum MHD_Result s_each(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    each_t *e = cls;
    e->fn(e->arg, key, value);
    return MHD_YES;
}

void cairn_http_each_query(const cairn_http_request_t *req,
                           void (*fn)(void *arg, const char *key, const char *value),
                           void *arg)
{
    each_t e = {fn, arg};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, s_each, &e);
}

typedef struct {
    long (*read)(void *ctx, uint64_t pos, char *buf, size_t max);
    void (*read_free)(void *ctx);
    void *ctx;
    cairn_http_live_t *live; /* NULL: not a live response */
} reader_t;

cairn_http_live_t *cairn_http_live_new(const cairn_http_request_t *req)
{
    cairn_http_live_t *l = calloc(1, sizeof *l);
    if (l) l->h = req->httpd;
    return l;
}

void cairn_http_live_wake(cairn_http_live_t *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->h->mu);
    if (l->suspended) {
        l->suspended = false;
        MHD_resume_connection(l->c);
    } else {
        l->woken = true;
    }
    pthread_mutex_unlock(&l->h->mu);
}

/* Queued: in the server's list, for stop to find. */
static void s_live_queued(cairn_http_live_t *l, struct MHD_Connection *c)
{
    pthread_mutex_lock(&l->h->mu);
    l->c = c;
    l->queued = true;
    l->next = l->h->lives;
    if (l->next) l->next->prev = l;
    l->h->lives = l;
    pthread_mutex_unlock(&l->h->mu);
}

static void s_live_free(cairn_http_live_t *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->h->mu);
    if (l->queued) {
        if (l->prev)
            l->prev->next = l->next;
        else
            l->h->lives = l->next;
        if (l->next) l->next->prev = l->prev;
    }
    pthread_mutex_unlock(&l->h->mu);
    free(l);
}

/* The read had nothing: suspend the connection (1), read again when a
 * wake came meanwhile (0), or end it when the server stops (-1). */
static int s_live_park(cairn_http_live_t *l)
{
    int rc = 1;
    pthread_mutex_lock(&l->h->mu);
    if (l->h->stopping) {
        rc = -1;
    } else if (l->woken) {
        l->woken = false;
        rc = 0;
    } else {
        l->suspended = true;
        MHD_suspend_connection(l->c);
    }
    pthread_mutex_unlock(&l->h->mu);
    return rc;
}

static ssize_t s_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    reader_t *r = cls;
    for (;;) {
        long n = r->read(r->ctx, pos, buf, max);
        if (n > 0) return (ssize_t)n;
        if (n == 0) return MHD_CONTENT_READER_END_OF_STREAM;
        if (n != CAIRN_HTTP_LATER || !r->live) return MHD_CONTENT_READER_END_WITH_ERROR;
        int park = s_live_park(r->live);
        if (park > 0) return 0; /* resumed by a wake: read again then */
        if (park < 0) return MHD_CONTENT_READER_END_OF_STREAM;
    }
}

static void s_read_free(void *cls)
{
    reader_t *r = cls;
    if (r->read_free) r->read_free(r->ctx);
    s_live_free(r->live); /* after read_free: no wake can come now */
    free(r);
}

/* The response's own headers (header, more[]), after its Content-Type. */
static void s_headers(struct MHD_Response *m, const cairn_http_response_t *resp)
{
    if (!resp) return;
    if (resp->header && resp->header_value)
        MHD_add_response_header(m, resp->header, resp->header_value);
    for (size_t i = 0; i < sizeof resp->more / sizeof resp->more[0]; i++) {
        if (!resp->more[i].name) break;
        if (resp->more[i].value)
            MHD_add_response_header(m, resp->more[i].name, resp->more[i].value);
    }
}

/* A response read piece by piece (resp->read). */
static enum MHD_Result s_queue_reader(struct MHD_Connection *c,
                                      const cairn_http_response_t *resp)
{
    reader_t *r = malloc(sizeof *r);
    if (!r) {
        if (resp->read_free) resp->read_free(resp->read_ctx);
        s_live_free(resp->live);
        return MHD_NO;
    }
    *r = (reader_t){resp->read, resp->read_free, resp->read_ctx, resp->live};
    /* A live response's pieces are small: a small buffer sends each soon. */
    struct MHD_Response *m = MHD_create_response_from_callback(
        resp->size == CAIRN_HTTP_SIZE_UNKNOWN ? MHD_SIZE_UNKNOWN : resp->size,
        resp->live ? 16 << 10 : 1 << 20, s_read, r, s_read_free);
    if (!m) {
        s_read_free(r);
        return MHD_NO;
    }
    if (resp->live) s_live_queued(resp->live, c);
    MHD_add_response_header(
        m, MHD_HTTP_HEADER_CONTENT_TYPE,
        resp->content_type ? resp->content_type : "application/octet-stream");
    s_headers(m, resp);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)resp->status, m);
    MHD_destroy_response(m);
    return ok;
}

static enum MHD_Result s_queue(struct MHD_Connection *c, int status, const char *type,
                               char *body, size_t len,
                               const cairn_http_response_t *resp)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body ? body : (char *)"",
        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    s_headers(r, resp);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Refused before any handler sees the request, so in both error shapes a
 * client of Cairn's may read: {status, code, error} (JSON REST) and
 * {error_code, message} (MLflow's). */
static enum MHD_Result s_too_big(struct MHD_Connection *c, size_t max)
{
    char *msg = NULL;
    int n =
        asprintf(&msg,
                 "{\"status\": 413, \"code\": \"too_large\", \"error\": \"a request "
                 "body may be at most %zu bytes\", \"error_code\": "
                 "\"INVALID_PARAMETER_VALUE\", \"message\": \"a request body may be "
                 "at most %zu bytes\"}",
                 max, max);
    return s_queue(c, 413, "application/json", n < 0 ? NULL : msg,
                   n < 0 ? 0 : (size_t)n, NULL);
}

/* Append a piece of the body, up to the limit (past it: dropped, marked). */
static void s_append(body_t *b, const char *data, size_t n, size_t max)
{
    if (b->too_big || b->len + n > max) {
        b->too_big = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->buf, cap);
        if (!p) {
            b->too_big = true; /* answered 413: the memory is not there */
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version,
                                const char *upload, size_t *upload_size, void **state)
{
    (void)version;
    cairn_httpd_t *h = cls;
    cairn_http_request_t req = {
        .method = method, .path = url, .body = "", .conn = c, .httpd = h};
    if (!*state) { /* the headers: make the request's state */
        body_t *b = calloc(1, sizeof *b);
        if (!b) return MHD_NO;
        b->streamed = h->pick && h->pick(h->arg, &req, &b->stream);
        *state = b;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (!b->streamed && cl && strtoull(cl, NULL, 10) > h->max_body)
            return s_too_big(c, h->max_body);
        return MHD_YES;
    }
    body_t *b = *state;
    if (*upload_size) {
        if (!b->streamed)
            s_append(b, upload, *upload_size, h->max_body);
        else if (!b->refused)
            b->refused = b->stream.data(b->stream.ctx, upload, *upload_size) != 0;
        *upload_size = 0;
        return MHD_YES;
    }
    cairn_http_response_t resp = {.status = 200, .content_type = "application/json"};
    if (b->streamed) {
        b->stream.end(b->stream.ctx, &req, &resp);
    } else {
        if (b->too_big) return s_too_big(c, h->max_body);
        req.body = b->buf ? b->buf : "";
        req.body_len = b->len;
        h->fn(h->arg, &req, &resp);
    }
    if (resp.read) {
        free(resp.body);
        return s_queue_reader(c, &resp);
    }
    s_live_free(resp.live); /* made, then answered otherwise */
    return s_queue(c, resp.status, resp.content_type, resp.body, resp.len, &resp);
}

static void s_completed(void *cls, struct MHD_Connection *c, void **state,
                        enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    body_t *b = *state;
    if (!b) return;
    if (b->streamed && b->stream.release) b->stream.release(b->stream.ctx);
    free(b->buf);
    free(b);
    *state = NULL;
}

/* "HOST:PORT" (HOST IPv4; loopback unless tls) into sa. */
static int s_address(const char *listen, bool tls, struct sockaddr_in *sa,
                     cairn_err_t *err)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char host[64];
    char *end = NULL;
    unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || (size_t)(colon - listen) >= sizeof host || !end || *end ||
        end == colon + 1 || port > 65535)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "an HTTP listener is HOST:PORT, not '%s'",
                             listen ? listen : "");
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "the HTTP listener's host '%s' is not an IPv4 address",
                             host);
    if (!tls && (ntohl(sa->sin_addr.s_addr) >> 24) != 127)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                             "the HTTP listener %s is not a loopback address: a "
                             "listener other hosts reach needs TLS (a tls_cert and "
                             "a tls_key)",
                             listen);
    return 0;
}

/* A PEM file's text (NUL-terminated, heap); a key (secret) must be its
 * owner's only. NULL with err. */
static char *s_read_pem(const char *path, bool secret, cairn_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "cannot read the TLS %s %s: %s", secret ? "key" : "certificate",
                      path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    char *text = NULL;
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > TLS_FILE_MAX)
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "the TLS %s %s is not a file of 1 byte to 1 MiB",
                      secret ? "key" : "certificate", path);
    else if (secret && (st.st_mode & 077))
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "the TLS key %s is open to others (mode %04o): make it its "
                      "owner's only (chmod 600)",
                      path, (unsigned)(st.st_mode & 07777));
    else if (!(text = calloc(1, (size_t)st.st_size + 1)))
        cairn_err_oom(err, "for a TLS file");
    else if (read(fd, text, (size_t)st.st_size) != st.st_size) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "cannot read the TLS file %s whole", path);
        free(text);
        text = NULL;
    }
    close(fd);
    return text;
}

static void s_free_tls(cairn_httpd_t *h)
{
    if (h->key_pem) explicit_bzero(h->key_pem, strlen(h->key_pem));
    free(h->key_pem);
    free(h->cert_pem);
}

/* Read the certificate and key when opts name them (both or neither). */
static int s_tls(cairn_httpd_t *h, const cairn_httpd_opts_t *opts, cairn_err_t *err)
{
    bool cert = opts->tls_cert && *opts->tls_cert,
         key = opts->tls_key && *opts->tls_key;
    if (!cert && !key) return 0;
    if (cert != key)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "HTTPS needs both a tls_cert and a tls_key");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,
                             "this libmicrohttpd was built without TLS");
    if (!(h->cert_pem = s_read_pem(opts->tls_cert, false, err)) ||
        !(h->key_pem = s_read_pem(opts->tls_key, true, err)))
        return -1;
    return 0;
}

cairn_httpd_t *cairn_httpd_start(const cairn_httpd_opts_t *opts,
                                 cairn_http_handler_fn *fn, void *arg, cairn_err_t *err)
{
    struct sockaddr_in sa;
    if (!opts || !fn) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                      "cairn_httpd_start needs options and a handler");
        return NULL;
    }
    bool tls = opts->tls_cert && *opts->tls_cert;
    if (s_address(opts->listen, tls, &sa, err) != 0) return NULL;
    cairn_httpd_t *h = calloc(1, sizeof *h);
    if (!h) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    if (s_tls(h, opts, err) != 0) {
        s_free_tls(h);
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->fn = fn;
    h->pick = opts->stream;
    h->arg = arg;
    h->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    unsigned threads = opts->threads ? opts->threads : DEFAULT_THREADS;
    /* The TLS options come last: without TLS they are an empty list. */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    h->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            (h->cert_pem ? MHD_USE_TLS : 0),
        0, NULL, NULL, s_access, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        opts->max_connections ? opts->max_connections : DEFAULT_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT,
        opts->timeout_s ? opts->timeout_s : DEFAULT_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, h, MHD_OPTION_ARRAY,
        h->cert_pem ? tls_opts : tls_opts + 2, MHD_OPTION_END);
    if (!h->d) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_BIND_FAILED,
                      h->cert_pem ? "cannot listen for HTTPS on %s (is the port "
                                    "taken, or the certificate and key not a pair?)"
                                  : "cannot listen for HTTP on %s (is the port taken?)",
                      opts->listen);
        s_free_tls(h);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : ntohs(sa.sin_port);
    return h;
}

bool cairn_httpd_tls(const cairn_httpd_t *h)
{
    return h && h->cert_pem;
}

uint16_t cairn_httpd_port(const cairn_httpd_t *h)
{
    return h ? h->port : 0;
}

void cairn_httpd_stop(cairn_httpd_t **h)
{
    if (!h || !*h) return;
    pthread_mutex_lock(&(*h)->mu); /* no connection may stay suspended */
    (*h)->stopping = true;
    for (cairn_http_live_t *l = (*h)->lives; l; l = l->next)
        if (l->suspended) {
            l->suspended = false;
            MHD_resume_connection(l->c);
        }
    pthread_mutex_unlock(&(*h)->mu);
    MHD_stop_daemon((*h)->d);
    pthread_mutex_destroy(&(*h)->mu);
    s_free_tls(*h);
    free(*h);
    *h = NULL;
}
