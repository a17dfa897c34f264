/* Errors as values: see include/cairn/err.h. */
#include "cairn/err.h"

#include <stdio.h>
#include <string.h>

const char *cairn_err_default_code(int st)
{
    switch (st) {
        case CAIRN_ST_BAD_REQUEST:
            return CAIRN_E_BAD_REQUEST;
        case CAIRN_ST_UNAUTHENTICATED:
            return CAIRN_E_UNAUTHENTICATED;
        case CAIRN_ST_FORBIDDEN:
            return CAIRN_E_FORBIDDEN;
        case CAIRN_ST_NOT_FOUND:
            return CAIRN_E_NOT_FOUND;
        case CAIRN_ST_CONFLICT:
            return CAIRN_E_CONFLICT;
        case CAIRN_ST_TOO_LARGE:
            return CAIRN_E_TOO_LARGE;
        case CAIRN_ST_OVERLOADED:
            return CAIRN_E_OVERLOADED;
        case CAIRN_ST_UNSUPPORTED:
            return CAIRN_E_UNSUPPORTED;
        case CAIRN_ST_BAD_GATEWAY:
            return CAIRN_E_BAD_REPLY;
        case CAIRN_ST_UNAVAILABLE:
            return CAIRN_E_UNAVAILABLE;
        case CAIRN_ST_TIMEOUT:
            return CAIRN_E_DEADLINE;
        default:
            return st >= CAIRN_ST_BAD_REQUEST ? CAIRN_E_INTERNAL : "";
    }
}

int cairn_err_vset(cairn_err_t *err, int st, const char *code, const char *fmt,
                   va_list ap)
{
    if (!err) return -1;
    err->st = st;
    snprintf(err->code, sizeof err->code, "%s",
             code ? code : cairn_err_default_code(st));
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int cairn_err_set(cairn_err_t *err, int st, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairn_err_vset(err, st, code, fmt, ap);
    va_end(ap);
    return -1;
}

int cairn_err_oom(cairn_err_t *err, const char *doing)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY,
                         "out of memory%s%s", doing && *doing ? " " : "",
                         doing ? doing : "");
}

void cairn_err_clear(cairn_err_t *err)
{
    if (!err) return;
    err->st = 0;
    err->code[0] = '\0';
    err->msg[0] = '\0';
}
