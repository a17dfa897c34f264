/* sdk/httpd.h — a small HTTP/1.1 server for the plugins that speak HTTP (the
 * gateway now, the scorer's endpoints next), written once over
 * libmicrohttpd.
 *
 *     cairn_httpd_t *h = cairn_httpd_start(&(cairn_httpd_opts_t){
 *         .listen = "127.0.0.1:7790", .max_body = 32 << 20, .threads = 4},
 *         handle, arg, &err);
 *     ...
 *     cairn_httpd_stop(&h);
 *
 * handle runs on one of the server's threads (threads of them at once), once
 * a request's whole body has arrived, and fills the response; it may block
 * (a bus call). Keep-alive is HTTP/1.1's default. Bounded: a body over
 * max_body is refused 413 from its Content-Length before it is read (or,
 * without one, once it passes the limit: the rest is read and dropped);
 * at most max_connections connections (more are refused at accept); a
 * connection idle timeout_s seconds is closed (slow clients). With
 * tls_cert and tls_key it speaks HTTPS only (GnuTLS, through
 * libmicrohttpd), and may then listen on any address; without them the
 * listener must be a loopback address (an error says so), as the bus
 * needs CurveZMQ off loopback.
 *
 * A live response (server-sent events, a long poll) stays open while its
 * read has nothing to send: read returns CAIRN_HTTP_LATER and the
 * connection waits on no thread (libmicrohttpd suspends it) until
 * cairn_http_live_wake; stopping the server ends every live response.
 *
 * Part of the static library cairn_httpd (libmicrohttpd); no ABI of its own. */
#ifndef CAIRN_HTTPD_H
#define CAIRN_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

typedef struct cairn_httpd cairn_httpd_t;
typedef struct cairn_http_request cairn_http_request_t;
typedef struct cairn_http_response cairn_http_response_t;
typedef struct cairn_http_stream cairn_http_stream_t;
typedef struct cairn_http_live cairn_http_live_t;

/* Whether a request's body is streamed (a large upload) rather than
 * gathered: asked at its headers; true with *s filled to stream it. */
typedef bool(cairn_http_stream_pick_fn)(void *arg, const cairn_http_request_t *req,
                                        cairn_http_stream_t *s);

typedef struct cairn_httpd_opts {
    const char *listen;       /* "HOST:PORT", HOST a loopback address; port 0: any */
    size_t max_body;          /* bytes (0: 1 MiB); a streamed body has no limit here */
    unsigned threads;         /* handler threads (0: 4) */
    unsigned max_connections; /* (0: 256) */
    unsigned timeout_s;       /* idle connection timeout (0: 60) */
    cairn_http_stream_pick_fn *stream; /* NULL: every body gathered */
    /* PEM files, both or neither: HTTPS. The key must be its owner's only
     * (no group or other permission bits), or start refuses it. */
    const char *tls_cert, *tls_key;
} cairn_httpd_opts_t;

struct cairn_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* the URL's path, %-decoded, without the query */
    const char *body;   /* body_len bytes (NUL-terminated for convenience) */
    size_t body_len;
    void *conn;           /* for cairn_http_header / cairn_http_query */
    cairn_httpd_t *httpd; /* the server (for cairn_http_live_new) */
};

#define CAIRN_HTTP_SIZE_UNKNOWN UINT64_MAX
/* What a live response's read returns when it has nothing to send now. */
#define CAIRN_HTTP_LATER (-2L)

struct cairn_http_response {
    int status;               /* default 200 */
    const char *content_type; /* default "application/json" */
    char *body;               /* malloc'ed; the server frees it */
    size_t len;
    /* Or, for a large response, read piece by piece instead of body: read
     * writes up to max bytes at pos into buf and returns how many (0: the
     * end; -1: an error, which cuts the response short); read_free(ctx)
     * runs once the response is done with. size: the total, or
     * CAIRN_HTTP_SIZE_UNKNOWN (sent chunked). */
    long (*read)(void *ctx, uint64_t pos, char *buf, size_t max);
    void (*read_free)(void *ctx);
    void *read_ctx;
    uint64_t size;
    /* With read (size CAIRN_HTTP_SIZE_UNKNOWN): a live response, whose read
     * may also return CAIRN_HTTP_LATER (see cairn_http_live_new). The
     * response's once set, even when the handler then answers otherwise. */
    cairn_http_live_t *live;
    /* One more header (e.g. "ETag"), or NULL: both borrowed until the
     * response is queued, right after the handler (or end) returns. */
    const char *header, *header_value;
    /* Up to three more (a static file's caching and encoding), the same
     * way; a NULL name ends them. */
    struct {
        const char *name, *value;
    } more[3];
};

/* A streamed request body's handlers (see cairn_http_stream_pick_fn). */
struct cairn_http_stream {
    void *ctx;
    /* each piece of the body as it arrives (any size); nonzero: the rest is
     * read and dropped, and end answers */
    int (*data)(void *ctx, const char *p, size_t n);
    /* the body is over (or data refused it): fill the response */
    void (*end)(void *ctx, const cairn_http_request_t *req,
                cairn_http_response_t *resp);
    /* last, always (the request may have been cut short) */
    void (*release)(void *ctx);
};

typedef void(cairn_http_handler_fn)(void *arg, const cairn_http_request_t *req,
                                    cairn_http_response_t *resp);

/* A request header's value (name case-insensitive), or a query argument's
 * (%-decoded); NULL when absent. Valid during the handler. */
const char *cairn_http_header(const cairn_http_request_t *req, const char *name);
const char *cairn_http_query(const cairn_http_request_t *req, const char *name);
/* The client's IP address as text into out (cap bytes; "" when unknown). */
void cairn_http_peer(const cairn_http_request_t *req, char *out, size_t cap);

/* Call fn(arg, key, value) for each query argument, in order (a key given
 * twice comes twice; value NULL for "?flag"). */
void cairn_http_each_query(const cairn_http_request_t *req,
                           void (*fn)(void *arg, const char *key, const char *value),
                           void *arg);

/* A live response's handle, for the handler to put in resp->live (NULL
 * when out of memory). Its read returning CAIRN_HTTP_LATER parks the
 * connection, no thread spent, until cairn_http_live_wake; a wake that
 * comes between the read and the parking is not lost (read runs again).
 * The server frees it after the response's read_free returns. */
cairn_http_live_t *cairn_http_live_new(const cairn_http_request_t *req);
/* Have a live response's read called again soon, from any thread. Only
 * while its read_free has not returned: call it under a lock that
 * read_free takes too. */
void cairn_http_live_wake(cairn_http_live_t *l);

/* Start listening; NULL with err (400 bad_conf for a bad or non-loopback
 * address, 500 when it cannot bind). */
cairn_httpd_t *cairn_httpd_start(const cairn_httpd_opts_t *opts,
                                 cairn_http_handler_fn *fn, void *arg,
                                 cairn_err_t *err);
/* Whether it speaks HTTPS. */
bool cairn_httpd_tls(const cairn_httpd_t *h);
/* The port it listens on (the one chosen, for port 0). */
uint16_t cairn_httpd_port(const cairn_httpd_t *h);
/* Stop (requests in progress finish first; a live response waiting for
 * its wake ends) and free; NULL-safe. */
void cairn_httpd_stop(cairn_httpd_t **h);

#endif
