/* cairn/err.h — errors as values: a status, a stable code and a sentence.
 *
 * Every fallible Cairn function returns 0 / -1 (or NULL) and fills a
 * cairn_err_t. Statuses carry HTTP's meanings (see docs/PROTOCOL.md); codes
 * are stable snake_case names that clients may switch on.
 */
#ifndef CAIRN_ERR_H
#define CAIRN_ERR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_EXPORT __attribute__((visibility("default")))

enum {
    CAIRN_ST_OK = 200,
    CAIRN_ST_CREATED = 201,
    CAIRN_ST_BAD_REQUEST = 400,
    CAIRN_ST_UNAUTHENTICATED = 401,
    CAIRN_ST_FORBIDDEN = 403,
    CAIRN_ST_NOT_FOUND = 404,
    CAIRN_ST_CONFLICT = 409,
    CAIRN_ST_TOO_LARGE = 413,
    CAIRN_ST_OVERLOADED = 429,
    CAIRN_ST_INTERNAL = 500,
    CAIRN_ST_UNSUPPORTED = 501,
    CAIRN_ST_BAD_GATEWAY = 502, /* a client got a reply it cannot use */
    CAIRN_ST_UNAVAILABLE = 503,
    CAIRN_ST_TIMEOUT = 504,
};

/* Codes: stable snake_case names clients may switch on. This is the whole
 * list (docs/PROTOCOL.md gives each with its status and meaning): use these
 * names, never a literal, and add a new code here and there together. */
/* On the wire, from the kernel or any plugin. */
#define CAIRN_E_BAD_REQUEST "bad_request"         /* 400: the request is malformed */
#define CAIRN_E_TOO_LARGE "too_large"             /* 400 (frame) or 413 (verb limit) */
#define CAIRN_E_UNAUTHENTICATED "unauthenticated" /* 401 */
#define CAIRN_E_FORBIDDEN "forbidden"             /* 403 */
#define CAIRN_E_NOT_FOUND "not_found"             /* 404: no such object */
#define CAIRN_E_NO_SERVICE "no_service"           /* 404: no such service */
#define CAIRN_E_NO_VERB "no_verb"                 /* 404: no such verb */
#define CAIRN_E_CONFLICT "conflict"               /* 409 */
#define CAIRN_E_OVERLOADED "overloaded"           /* 429: retry later */
#define CAIRN_E_INTERNAL "internal"               /* 500 */
#define CAIRN_E_OUT_OF_MEMORY "out_of_memory"     /* 500 */
#define CAIRN_E_STORAGE "storage_error"           /* 500: the database or disk failed */
#define CAIRN_E_CORRUPT "corrupt"         /* 500: stored bytes fail their check */
#define CAIRN_E_UNSUPPORTED "unsupported" /* 501: the host lacks a function */
#define CAIRN_E_UNAVAILABLE "unavailable" /* 503: the service is down or restarting */
#define CAIRN_E_STOPPED "stopped"         /* 503: cairnd is stopping */
#define CAIRN_E_DEADLINE "deadline_exceeded" /* 504 */
/* Local to a program: a client's, cairnd's start-up or a plugin host's
 * (never sent by a server in a reply). */
#define CAIRN_E_BAD_CONF "bad_conf"         /* 400: a conf or a setting is wrong */
#define CAIRN_E_BAD_ENDPOINT "bad_endpoint" /* 400: an endpoint cannot be used */
#define CAIRN_E_BAD_PLUGIN "bad_plugin"     /* 400/409: a plugin .so is refused */
#define CAIRN_E_STATE_DIR "state_dir"       /* 500: the state dir cannot be made */
#define CAIRN_E_INIT_FAILED "init_failed"   /* 500: a plugin's init failed */
#define CAIRN_E_BIND_FAILED "bind_failed"   /* 500: a socket cannot be bound */
#define CAIRN_E_REFUSED "refused"           /* 503: the kernel refused a plugin host */
#define CAIRN_E_BAD_WELCOME "bad_welcome"   /* 400: a plugin host's hello is wrong */
#define CAIRN_E_BAD_REPLY "bad_reply"       /* 502: a client got a malformed reply */
#define CAIRN_E_LOCAL_FILE "local_file"     /* 400: a client's local file is unusable */
#define CAIRN_E_LOCAL_IO "local_io" /* 500: a client's local read/write failed */
#define CAIRN_E_CHANGED "changed"   /* 409: a local file changed while sent */

#define CAIRN_ERR_CODE_MAX 32
#define CAIRN_ERR_MSG_MAX 512

typedef struct cairn_err {
    int st;                        /* status, 0 when no error */
    char code[CAIRN_ERR_CODE_MAX]; /* e.g. "bad_request" */
    char msg[CAIRN_ERR_MSG_MAX];   /* a sentence a person can act on */
} cairn_err_t;

/* The default code for a status ("bad_request" for 400, …). */
CAIRN_EXPORT const char *cairn_err_default_code(int st);

/* Fill err (when not NULL) and return -1, so that callers can write
 * `return cairn_err_set(err, 400, NULL, "field %s ...", name);`.
 * A NULL code takes the status's default code. */
CAIRN_EXPORT int cairn_err_set(cairn_err_t *err, int st, const char *code,
                               const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
CAIRN_EXPORT int cairn_err_vset(cairn_err_t *err, int st, const char *code,
                                const char *fmt, va_list ap);

CAIRN_EXPORT void cairn_err_clear(cairn_err_t *err);

/* The one way to say out of memory: 500 out_of_memory, "out of memory
 * <doing what>". Returns -1. */
CAIRN_EXPORT int cairn_err_oom(cairn_err_t *err, const char *doing);

#ifdef __cplusplus
}
#endif
#endif
