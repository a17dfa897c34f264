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
    CAIRN_ST_UNAVAILABLE = 503,
    CAIRN_ST_TIMEOUT = 504,
};

/* Codes: stable snake_case names clients may switch on, one table of them
 * (docs/PROTOCOL.md lists each with its status and meaning). Use these
 * names, never a literal, so that the table stays the whole list. */
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
#define CAIRN_E_UNAVAILABLE "unavailable" /* 503: the service is down or restarting */
#define CAIRN_E_DEADLINE "deadline_exceeded" /* 504 */
/* Local to a program (never on the wire from a server). */
#define CAIRN_E_BAD_CONF "bad_conf"     /* a conf or a setting is wrong */
#define CAIRN_E_BAD_PLUGIN "bad_plugin" /* a plugin .so is refused */
#define CAIRN_E_BAD_REPLY "bad_reply"   /* a client got a malformed reply */

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
