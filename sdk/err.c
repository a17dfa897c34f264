/* Errors as values: see include/cairn/err.h. */
#include "cairn/err.h"

#include <stdio.h>
#include <string.h>

const char *cairn_err_default_code(int st)
{
    switch (st) {
        case 400:
            return "bad_request";
        case 401:
            return "unauthenticated";
        case 403:
            return "forbidden";
        case 404:
            return "not_found";
        case 409:
            return "conflict";
        case 413:
            return "too_large";
        case 429:
            return "overloaded";
        case 503:
            return "unavailable";
        case 504:
            return "deadline_exceeded";
        default:
            return st >= 400 ? "internal" : "";
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
