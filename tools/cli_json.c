/* cli_json.c — the part of the `cairn` CLI that reads outside input
 * without a connection: failures (fail_t) and JSON -> msgpack (a request
 * body given on the command line or stdin; the conversion itself is
 * sdk/jsonmp.c, shared with the HTTP gateway). It is its own file so that
 * the fuzz target tests/fuzz/fuzz_cli_json.c links it as the CLI does. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "jsonmp.h"

/* ---- failures ------------------------------------------------------------ */

int cli_fail(fail_t *f, int code, const char *fmt, ...)
{
    f->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return code;
}

int cli_bad_usage(fail_t *f, const char *fmt, ...)
{
    f->code = EXIT_USAGE;
    f->hint = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_oom(fail_t *f)
{
    return cli_fail(f, EXIT_INTERNAL, "out of memory");
}

/* ---- JSON -> msgpack (sdk/jsonmp.h), failures as the CLI's ------------- */

int cli_pack_json(json_t *j, msgpack_packer *pk, fail_t *f)
{
    cairn_err_t err = {0};
    if (cairn_json_pack(j, pk, &err) == 0) return EXIT_OK;
    return err.st == CAIRN_ST_BAD_REQUEST ? cli_fail(f, EXIT_USAGE, "%s", err.msg)
                                          : cli_oom(f);
}

int cli_read_text(const char *path, size_t max, const char *limit_name, json_t **out,
                  fail_t *f)
{
    FILE *in = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!in) return cli_bad_usage(f, "cannot read '%s': %s", path, strerror(errno));
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, in) : 0;
    bool bad = buf && ferror(in);
    if (in != stdin) fclose(in);
    int rc = EXIT_OK;
    if (!buf)
        rc = cli_oom(f);
    else if (bad)
        rc = cli_bad_usage(f, "cannot read '%s'", path);
    else if (n > max)
        rc = cli_bad_usage(f, "'%s' is over %zu bytes (%s)", path, max, limit_name);
    else if (!(*out = json_stringn(buf, n)))
        rc = cli_bad_usage(f, "'%s' is not UTF-8 text", path);
    free(buf);
    return rc;
}
