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

#ifdef __cplusplus
}
#endif
#endif
