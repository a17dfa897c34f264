/* cairn — the command-line client of cairnd (CAIRN/1, docs/PROTOCOL.md).
 *
 * JSON in, JSON out: a request body is parsed with jansson and packed as
 * msgpack; a reply body is unpacked and printed as JSON (pretty for `call`,
 * compact with --json) or, for people, as a table. Every failure travels back
 * to main as a fail_t and is printed once, as "cairn: ...", on stderr; the
 * exit status says which kind of failure it was (see s_usage).
 *
 * This file holds the options, msgpack -> JSON, tables and calls, and the
 * sys commands; failures, base64 and JSON -> msgpack are in cli_json.c,
 * the tracking and artifact commands in cli_tracking.c, and cli.h is what
 * they share. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.0.0"
#endif

/* ---- options ----------------------------------------------------------- */

typedef enum {
    O_ENDPOINT,
    O_TOKEN,
    O_WS,
    O_TTL,
    O_JSON,
    O_HELP,
    O_VERSION,
    O_WORKSPACE,  /* --workspace: the long name of --ws */
    O_SERVER_KEY, /* CurveZMQ: cairnd's public key */
    O_CLIENT_KEY, /* CurveZMQ: this client's secret key */
    /* command options: a command takes those whose bit it names */
    O_ALL,
    O_DELETED,
    O_FILTER,
    O_MAX,
    O_TAG,
    O_NAME,
    O_ORDER_BY,
    O_STATUS,
    O_STEP,
    O_PROGRESS,
    O_OUT,
    O_DOT,
    O_TYPE,
    O_PYTHON,
    O_REQUIREMENTS,
    O_ENV,
    O_DESCRIPTION,
    O_FOLLOW,
    O_STREAM, /* the same as --follow, as `job submit` says it */
    O_EXPERIMENT,
    O_AUTH_MODE,
    O_CODE,
    O_SCRIPT,
    O_DEPLOYMENT,
} opt_id_t;

static const struct {
    const char *name;
    bool has_value;
    unsigned bit; /* CO_*: a command option; 0: global */
} OPTS[] = {
    [O_ENDPOINT] = {"endpoint", true, 0},
    [O_TOKEN] = {"token", true, 0},
    [O_WS] = {"ws", true, 0},
    [O_TTL] = {"ttl", true, 0},
    [O_JSON] = {"json", false, 0},
    [O_HELP] = {"help", false, 0},
    [O_VERSION] = {"version", false, 0},
    [O_WORKSPACE] = {"workspace", true, 0},
    [O_SERVER_KEY] = {"server-key", true, 0},
    [O_CLIENT_KEY] = {"client-key", true, 0},
    [O_ALL] = {"all", false, CO_ALL},
    [O_DELETED] = {"deleted", false, CO_DELETED},
    [O_FILTER] = {"filter", true, CO_FILTER},
    [O_MAX] = {"max", true, CO_MAX},
    [O_TAG] = {"tag", true, CO_TAG},
    [O_NAME] = {"name", true, CO_NAME},
    [O_ORDER_BY] = {"order-by", true, CO_ORDER_BY},
    [O_STATUS] = {"status", true, CO_STATUS},
    [O_STEP] = {"step", true, CO_STEP},
    [O_PROGRESS] = {"progress", false, CO_PROGRESS},
    [O_OUT] = {"out", true, CO_OUT},
    [O_DOT] = {"dot", false, CO_DOT},
    [O_TYPE] = {"type", true, CO_TYPE},
    [O_PYTHON] = {"python", true, CO_PYTHON},
    [O_REQUIREMENTS] = {"requirements", true, CO_REQUIREMENTS},
    [O_ENV] = {"env", true, CO_ENV},
    [O_DESCRIPTION] = {"description", true, CO_DESCRIPTION},
    [O_FOLLOW] = {"follow", false, CO_FOLLOW},
    [O_STREAM] = {"stream", false, CO_FOLLOW},
    [O_EXPERIMENT] = {"experiment", true, CO_EXPERIMENT},
    [O_AUTH_MODE] = {"auth-mode", true, CO_AUTH_MODE},
    [O_CODE] = {"code", true, CO_CODE},
    [O_SCRIPT] = {"scoring-script", true, CO_SCRIPT},
    [O_DEPLOYMENT] = {"deployment", true, CO_DEPLOYMENT},
};

static int s_parse_ttl(const char *s, uint32_t *out, fail_t *f)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || v == 0 || v > UINT32_MAX)
        return cli_bad_usage(f,
                             "--ttl wants milliseconds from 1 to %" PRIu32 ", not '%s'",
                             UINT32_MAX, s);
    *out = (uint32_t)v;
    return EXIT_OK;
}

#define MAX_LIMIT 1000000000000ull /* --max: at most 10^12 */

static int s_parse_max(const char *s, uint64_t *out, fail_t *f)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || v == 0 || v > MAX_LIMIT)
        return cli_bad_usage(f, "--max wants a count from 1 to %llu, not '%s'",
                             MAX_LIMIT, s);
    *out = (uint64_t)v;
    return EXIT_OK;
}

static int s_add_repeat(const char **list, int *n, const char *opt, const char *value,
                        fail_t *f)
{
    if (*n == MAX_REPEAT)
        return cli_bad_usage(f, "--%s is given more than %d times", opt, MAX_REPEAT);
    list[(*n)++] = value;
    return EXIT_OK;
}

static int s_set_opt(opts_t *o, opt_id_t id, const char *value, fail_t *f)
{
    switch (id) {
        case O_ENDPOINT:
            o->endpoint = value;
            break;
        case O_TOKEN:
            o->token = value;
            break;
        case O_WS:
        case O_WORKSPACE:
            o->ws = value;
            break;
        case O_TTL:
            return s_parse_ttl(value, &o->ttl_ms, f);
        case O_JSON:
            o->json = true;
            break;
        case O_HELP:
            o->help = true;
            break;
        case O_VERSION:
            o->version = true;
            break;
        case O_ALL:
            o->all = true;
            break;
        case O_DELETED:
            o->deleted = true;
            break;
        case O_FILTER:
            o->filter = value;
            break;
        case O_MAX:
            return s_parse_max(value, &o->max, f);
        case O_TAG:
            return s_add_repeat(o->tags, &o->ntags, "tag", value, f);
        case O_NAME:
            o->name = value;
            break;
        case O_ORDER_BY:
            return s_add_repeat(o->order_by, &o->norder, "order-by", value, f);
        case O_STATUS:
            o->status = value;
            break;
        case O_STEP:
            o->step = value;
            break;
        case O_PROGRESS:
            o->progress = true;
            break;
        case O_OUT:
            o->out = value;
            break;
        case O_DOT:
            o->dot = true;
            break;
        case O_TYPE:
            o->type = value;
            break;
        case O_SERVER_KEY:
            o->server_key = value;
            break;
        case O_CLIENT_KEY:
            o->client_key = value;
            break;
        case O_PYTHON:
            o->python = value;
            break;
        case O_REQUIREMENTS:
            o->requirements = value;
            break;
        case O_ENV:
            return s_add_repeat(o->env, &o->nenv, "env", value, f);
        case O_DESCRIPTION:
            o->description = value;
            break;
        case O_FOLLOW:
        case O_STREAM:
            break; /* the bit in o->given says it */
        case O_AUTH_MODE:
            o->auth_mode = value;
            break;
        case O_CODE:
            o->code = value;
            break;
        case O_SCRIPT:
            o->script = value;
            break;
        case O_DEPLOYMENT:
            o->deployment = value;
            break;
        case O_EXPERIMENT:
            o->experiment = value;
            break;
    }
    return EXIT_OK;
}

/* argv[*i] is "--name", "--name=VALUE" or "--name VALUE" (consuming argv[*i+1]). */
static int s_parse_opt(int argc, char **argv, int *i, opts_t *o, fail_t *f)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t k = 0; k < sizeof OPTS / sizeof OPTS[0]; k++) {
        if (strlen(OPTS[k].name) != n || strncmp(OPTS[k].name, arg, n) != 0) continue;
        const char *value = eq ? eq + 1 : NULL;
        if (!OPTS[k].has_value && value)
            return cli_bad_usage(f, "--%s takes no value", OPTS[k].name);
        if (OPTS[k].has_value && !value && *i + 1 < argc) value = argv[++*i];
        if (OPTS[k].has_value && (!value || !*value))
            return cli_bad_usage(f, "--%s needs a value", OPTS[k].name);
        bool repeatable = OPTS[k].bit & (CO_TAG | CO_ORDER_BY | CO_ENV);
        if ((o->given & OPTS[k].bit) && !repeatable)
            return cli_bad_usage(f, "--%s is given twice", OPTS[k].name);
        o->given |= OPTS[k].bit;
        return s_set_opt(o, (opt_id_t)k, value, f);
    }
    return cli_bad_usage(f, "unknown option '%s'", argv[*i]);
}

static int s_parse_args(int argc, char **argv, opts_t *o, fail_t *f)
{
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = EXIT_OK;
        if (!options_done && strcmp(a, "--") == 0)
            options_done = true;
        else if (!options_done && strcmp(a, "-h") == 0)
            o->help = true;
        else if (!options_done && strncmp(a, "--", 2) == 0)
            rc = s_parse_opt(argc, argv, &i, o, f);
        else if (o->nargs == MAX_ARGS)
            rc = cli_bad_usage(f, "too many arguments");
        else
            o->args[o->nargs++] = argv[i];
        if (rc != EXIT_OK) return rc;
    }
    if (!o->endpoint) o->endpoint = getenv("CAIRN_ENDPOINT");
    if (!o->endpoint || !*o->endpoint) o->endpoint = CAIRN_DEFAULT_ENDPOINT;
    return EXIT_OK;
}

/* ---- JSON output ----------------------------------------------------------- */

char *cli_dumps_compact(const json_t *j)
{
    return cairn_json_dumps_compact(j);
}

int cli_print_json(const json_t *j, bool pretty, fail_t *f)
{
    if (json_dumpf(j, stdout, cairn_json_dump_flags(j, pretty)) != 0 ||
        putchar('\n') == EOF)
        return cli_fail(f, EXIT_INTERNAL, "cannot write the output");
    return EXIT_OK;
}

/* ---- tables ------------------------------------------------------------------ */

/* Columns are printed as people read them: control characters become spaces. */
static char *s_sanitize(char *s)
{
    for (char *p = s; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    return s;
}

/* The elements of an array, joined by ", " (strings without quotes). */
static char *s_join(const json_t *arr)
{
    size_t i, cap = 1;
    const json_t *v;
    json_array_foreach(arr, i, v) cap +=
        json_is_string(v) ? json_string_length(v) + 2 : 0;
    char *out = calloc(1, cap + 1), *p = out;
    json_array_foreach(arr, i, v)
    {
        if (!out || !json_is_string(v)) continue;
        p += sprintf(p, "%s%s", p == out ? "" : ", ", json_string_value(v));
    }
    return out;
}

/* The text of one cell: a heap string, NULL when out of memory. */
static char *s_cell_text(const json_t *v, const col_t *c)
{
    char buf[32];
    switch (json_typeof(v)) {
        case JSON_STRING:
            return strdup(*json_string_value(v) ? json_string_value(v) : "-");
        case JSON_INTEGER:
            if (c->zero_is_none && json_integer_value(v) == 0) return strdup("-");
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            return strdup(buf);
        case JSON_ARRAY:
            return s_join(v);
        case JSON_TRUE:
            return strdup("true");
        case JSON_FALSE:
            return strdup("false");
        case JSON_NULL:
            return strdup("-");
        default:
            return cli_dumps_compact(v);
    }
}

static char *s_cell(const json_t *row, const col_t *c)
{
    const json_t *v = json_object_get(row, c->key);
    return s_sanitize(v ? s_cell_text(v, c) : strdup("-"));
}

/* Columns wide as their widest cell, counted in UTF-8 characters. */
static size_t s_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void s_print_row(char *const *cells, const size_t *widths, size_t ncols)
{
    for (size_t c = 0; c < ncols; c++) {
        if (c + 1 == ncols) {
            printf("%s\n", cells[c]);
            break;
        }
        printf("%s%*s", cells[c], (int)(widths[c] - s_width(cells[c]) + 2), "");
    }
}

static void s_print_table(const col_t *cols, size_t ncols, char **cells, size_t nrows)
{
    size_t widths[MAX_COLS] = {0};
    char *titles[MAX_COLS];
    for (size_t c = 0; c < ncols; c++) {
        titles[c] = (char *)cols[c].title;
        widths[c] = s_width(titles[c]);
        for (size_t r = 0; r < nrows; r++) {
            size_t w = s_width(cells[r * ncols + c]);
            if (w > widths[c]) widths[c] = w;
        }
    }
    s_print_row(titles, widths, ncols);
    for (size_t r = 0; r < nrows; r++) s_print_row(cells + r * ncols, widths, ncols);
}

/* Print rows (an array of objects) with the given columns. */
int cli_call_json(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
                  json_t *body, json_t **out, fail_t *f)
{
    if (!body) return cli_oom(f);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = cli_pack_json(body, &pk, f);
    json_decref(body);
    if (rc == EXIT_OK) rc = cli_call(c, o, svc, verb, &sb, out, f);
    if (sb.data) sodium_memzero(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

int cli_call_show(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
                  json_t *body, const char *key, fail_t *f)
{
    json_t *reply = NULL;
    int rc = cli_call_json(c, o, svc, verb, body, &reply, f);
    if (rc == EXIT_OK) {
        const json_t *j = key ? json_object_get(reply, key) : reply;
        rc = cli_print_json(o->json || !j ? reply : j, true, f);
    }
    json_decref(reply);
    return rc;
}

int cli_table(const json_t *rows, const col_t *cols, size_t ncols, fail_t *f)
{
    size_t nrows = json_array_size(rows), n = nrows * ncols;
    char **cells = calloc(n ? n : 1, sizeof *cells);
    int rc = cells ? EXIT_OK : cli_oom(f);
    for (size_t i = 0; rc == EXIT_OK && i < n; i++) {
        cells[i] = s_cell(json_array_get(rows, i / ncols), &cols[i % ncols]);
        if (!cells[i]) rc = cli_oom(f);
    }
    if (rc == EXIT_OK) s_print_table(cols, ncols, cells, nrows);
    for (size_t i = 0; cells && i < n; i++) free(cells[i]);
    free(cells);
    return rc;
}

/* ---- talking to cairnd ------------------------------------------------------ */

static int s_connect(const opts_t *o, cairn_client_t **out, fail_t *f)
{
    cairn_err_t err = {0};
    cairn_client_opts_t co = {.endpoint = o->endpoint,
                              .token = o->token,
                              .server_key = o->server_key,
                              .client_key = o->client_key};
    cairn_client_t *c = cairn_client_new_opts(&co, &err);
    if (!c)
        return cli_fail(f, err.st == CAIRN_ST_INTERNAL ? EXIT_INTERNAL : EXIT_USAGE,
                        "%s", err.msg);
    if (o->ws) cairn_client_set_workspace(c, o->ws);
    cairn_client_set_ttl(c, o->ttl_ms);
    *out = c;
    return EXIT_OK;
}

/* A call that got no reply: the client's own 504 (ttl passed) or 503. */
static int s_fail_local(const opts_t *o, const cairn_err_t *err, fail_t *f)
{
    /* A refused CurveZMQ key looks like silence: say where to look. */
    const char *env = getenv("CAIRN_SERVER_KEY");
    bool curve = o->server_key || (env && *env);
    if (err->st == CAIRN_ST_TIMEOUT)
        return cli_fail(f, EXIT_UNREACHABLE,
                        "cannot reach cairnd: no reply within %" PRIu32
                        " ms (is cairnd running at %s?%s)",
                        o->ttl_ms ? o->ttl_ms : 30000, o->endpoint,
                        curve ? " With CurveZMQ: is the server key right, and this "
                                "client's public key in its curve_allowed_keys?"
                              : "");
    if (err->st == CAIRN_ST_UNAVAILABLE)
        return cli_fail(f, EXIT_UNREACHABLE,
                        "cannot reach cairnd: %s (is cairnd running at %s?)", err->msg,
                        o->endpoint);
    return cli_fail(f, EXIT_INTERNAL, "%s (%d): %s", err->code, err->st, err->msg);
}

/* The reply body as JSON (nil when empty), a new reference in *out. */
static int s_body_json(const cairn_reply_t *r, json_t **out, fail_t *f)
{
    size_t len = 0, off = 0;
    const char *buf = cairn_reply_body(r, &len);
    if (len == 0) {
        *out = json_null();
        return EXIT_OK;
    }
    cairn_err_t why;
    if (cairn_msgpack_check_shape(buf, len, &why) != 0)
        return cli_fail(f, EXIT_INTERNAL, "the reply body (%zu byte%s): %s", len,
                        len == 1 ? "" : "s", why.msg);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = EXIT_OK;
    if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        rc = cli_fail(
            f, EXIT_INTERNAL,
            "the reply body (%zu byte%s) is not one msgpack value that can be decoded",
            len, len == 1 ? "" : "s");
    else if (!(*out = cairn_json_from_msgpack(&u.data)))
        rc = cli_oom(f);
    msgpack_unpacked_destroy(&u);
    return rc;
}

int cli_call(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
             const msgpack_sbuffer *body, json_t **out, fail_t *f)
{
    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, svc, verb, body ? body->data : NULL,
                               body ? body->size : 0, 0, &r, &err);
    if (rc != 0 && !r) return s_fail_local(o, &err, f);
    if (rc != 0) {
        rc = cli_fail(f, EXIT_SERVER, "%s (%d): %s", err.code, err.st, err.msg);
        f->st = err.st;
    } else {
        rc = s_body_json(r, out, f);
    }
    cairn_reply_destroy(&r);
    return rc;
}

int cli_fail_sdk(const opts_t *o, const cairn_err_t *err, fail_t *f)
{
    /* The client's own failures (client.h): no reply within the ttl, or the
     * socket failed. A server's 503 or 504 is a refusal like any other. */
    bool local =
        (err->st == CAIRN_ST_TIMEOUT &&
         !strncmp(err->msg, "no reply from the kernel", 24)) ||
        (err->st == CAIRN_ST_UNAVAILABLE && (!strncmp(err->msg, "cannot send", 11) ||
                                             !strncmp(err->msg, "receive failed", 14) ||
                                             !strncmp(err->msg, "poll failed", 11)));
    if (local) return s_fail_local(o, err, f);
    if (!strcmp(err->code, CAIRN_E_BAD_REPLY))
        return cli_fail(f, EXIT_INTERNAL, "%s (%d): %s", err->code, err->st, err->msg);
    int rc = cli_fail(f, EXIT_SERVER, "%s (%d): %s", err->code, err->st, err->msg);
    f->st = err->st;
    return rc;
}

int cli_call_raw(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
                 const msgpack_sbuffer *body, cairn_reply_t **out,
                 const msgpack_object **obj, fail_t *f)
{
    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, svc, verb, body ? body->data : NULL,
                               body ? body->size : 0, 0, &r, &err);
    if (rc != 0 && !r) return s_fail_local(o, &err, f);
    if (rc != 0) {
        rc = cli_fail(f, EXIT_SERVER, "%s (%d): %s", err.code, err.st, err.msg);
        f->st = err.st;
        cairn_reply_destroy(&r);
        return rc;
    }
    *obj = cairn_reply_object(r); /* nil when the body is not one msgpack value */
    if ((*obj)->type != MSGPACK_OBJECT_MAP) {
        cairn_reply_destroy(&r);
        return cli_fail(f, EXIT_INTERNAL, "the reply of %s.%s is not a map", svc, verb);
    }
    *out = r;
    return EXIT_OK;
}

/* ---- commands ---------------------------------------------------------------- */

static double s_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int s_cmd_ping(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = NULL;
    double t0 = s_clock_ms();
    int rc = cli_call(c, o, "sys", "ping", NULL, &body, f);
    double ms = s_clock_ms() - t0;
    if (rc == EXIT_OK && o->json) rc = cli_print_json(body, false, f);
    if (rc == EXIT_OK && !o->json) {
        const char *version = json_string_value(json_object_get(body, "version"));
        printf("pong from cairnd %s (%.1f ms)\n",
               version ? version : "(unknown version)", ms);
    }
    json_decref(body);
    return rc;
}

/* body[key], which must be an array of objects, for a table. */
static int s_rows(const json_t *body, const char *key, const char *verb,
                  const json_t **rows, fail_t *f)
{
    *rows = json_object_get(body, key);
    if (!json_is_array(*rows))
        return cli_fail(f, EXIT_INTERNAL, "the reply of sys.%s has no '%s' list", verb,
                        key);
    return EXIT_OK;
}

static const col_t SERVICE_COLS[] = {
    {"NAME", "name", false},   {"PLUGIN", "plugin", false}, {"MODE", "mode", false},
    {"STATE", "state", false}, {"VERBS", "verbs", false},
};

static int s_cmd_services(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = NULL;
    const json_t *rows = NULL;
    int rc = cli_call(c, o, "sys", "services", NULL, &body, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(body, false, f);
    if (rc == EXIT_OK && !o->json) rc = s_rows(body, "services", "services", &rows, f);
    if (rc == EXIT_OK && !o->json)
        rc = cli_table(rows, SERVICE_COLS, sizeof SERVICE_COLS / sizeof SERVICE_COLS[0],
                       f);
    json_decref(body);
    return rc;
}

/* permissions: every verb's permission and flags, as a Markdown table
 * (docs/PERMISSIONS.md is this output; a test keeps it so). */
static int s_cmd_permissions(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = NULL;
    const json_t *rows = NULL;
    int rc = cli_call(c, o, "sys", "services", NULL, &body, f);
    if (rc == EXIT_OK) rc = s_rows(body, "services", "services", &rows, f);
    if (rc == EXIT_OK) {
        printf("| service | verb | permission | flags |\n| --- | --- | --- | --- |\n");
        size_t i, j;
        const json_t *svc, *verb;
        json_array_foreach(rows, i, svc)
        {
            const char *name = json_string_value(json_object_get(svc, "name"));
            json_array_foreach(json_object_get(svc, "verbs"), j, verb)
            {
                const char *v = json_string_value(verb);
                const char *perm = json_string_value(
                    json_object_get(json_object_get(svc, "perms"), v));
                printf("| %s | %s | %s | ", name ? name : "", v ? v : "",
                       perm && *perm ? perm : "(none)");
                size_t k;
                const json_t *flag;
                json_array_foreach(json_object_get(json_object_get(svc, "flags"), v), k,
                                   flag)
                    printf("%s%s", k ? ", " : "", json_string_value(flag));
                printf(" |\n");
            }
        }
    }
    json_decref(body);
    return rc;
}

static const col_t HEALTH_COLS[] = {
    {"NAME", "name", false},   {"MODE", "mode", false},
    {"STATE", "state", false}, {"RESTARTS", "restarts", false},
    {"PID", "pid", true},      {"INFLIGHT", "inflight", false},
    {"ERROR", "error", false},
};

_Static_assert(sizeof SERVICE_COLS / sizeof SERVICE_COLS[0] <= MAX_COLS, "MAX_COLS");
_Static_assert(sizeof HEALTH_COLS / sizeof HEALTH_COLS[0] <= MAX_COLS, "MAX_COLS");

static void s_print_health_summary(const json_t *rows, bool ok)
{
    size_t i, down = 0;
    const json_t *p;
    json_array_foreach(rows, i, p)
    {
        const char *state = json_string_value(json_object_get(p, "state"));
        if (!state || strcmp(state, "up") != 0) down++;
    }
    size_t n = json_array_size(rows);
    if (ok && n == 1)
        printf("ok: the 1 plugin is up\n");
    else if (ok)
        printf("ok: all %zu plugins up\n", n);
    else
        printf("NOT OK: %zu of %zu plugin%s not up\n", down, n, n == 1 ? "" : "s");
}

static const col_t STATS_COLS[] = {
    {"SERVICE", "service", false}, {"VERB", "verb", false},
    {"COUNT", "count", false},     {"2XX", "count_2xx", false},
    {"4XX", "count_4xx", false},   {"5XX", "count_5xx", false},
    {"504", "count_504", false},   {"MEAN_MS", "mean_ms", false},
};
_Static_assert(sizeof STATS_COLS / sizeof STATS_COLS[0] <= MAX_COLS, "MAX_COLS");

/* stats: sys.metrics, one row per service and verb that counted a
 * request (--json: the whole reply, histograms and processes included). */
static int s_cmd_stats(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = NULL, *table = NULL;
    const json_t *rows = NULL;
    int rc = cli_call(c, o, "sys", "metrics", NULL, &body, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(body, false, f);
    if (rc == EXIT_OK && !o->json) rc = s_rows(body, "services", "metrics", &rows, f);
    if (rc == EXIT_OK && !o->json && !(table = json_array())) rc = cli_oom(f);
    size_t i, j;
    const json_t *svc, *verb;
    json_array_foreach(rc == EXIT_OK && table ? rows : NULL, i, svc)
    {
        json_array_foreach(json_object_get(svc, "verbs"), j, verb)
        {
            json_int_t n = json_integer_value(json_object_get(verb, "count"));
            if (n <= 0 || rc != EXIT_OK) continue;
            char mean[32];
            snprintf(mean, sizeof mean, "%.3f",
                     (double)json_integer_value(json_object_get(verb, "sum_us")) /
                         (double)n / 1000.0);
            json_t *row = json_deep_copy(verb);
            if (!row || json_object_set(row, "service", json_object_get(svc, "name")) ||
                json_object_set_new(row, "mean_ms", json_string(mean)) ||
                json_array_append_new(table, row))
                rc = cli_oom(f);
        }
    }
    if (rc == EXIT_OK && table)
        rc = cli_table(table, STATS_COLS, sizeof STATS_COLS / sizeof STATS_COLS[0], f);
    json_decref(table);
    json_decref(body);
    return rc;
}

static int s_cmd_health(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = NULL;
    const json_t *rows = NULL;
    int rc = cli_call(c, o, "sys", "health", NULL, &body, f);
    if (rc == EXIT_OK && o->json) rc = cli_print_json(body, false, f);
    if (rc == EXIT_OK && !o->json) rc = s_rows(body, "plugins", "health", &rows, f);
    if (rc == EXIT_OK && !o->json)
        rc =
            cli_table(rows, HEALTH_COLS, sizeof HEALTH_COLS / sizeof HEALTH_COLS[0], f);
    bool ok = json_is_true(json_object_get(body, "ok"));
    if (rc == EXIT_OK && !o->json) s_print_health_summary(rows, ok);
    if (rc == EXIT_OK && !ok) rc = EXIT_SERVER; /* no message: the output says it */
    json_decref(body);
    return rc;
}

/* Parse a JSON body: text, or stdin when text is "-". */
static int s_parse_body(const char *text, json_t **out, fail_t *f)
{
    const size_t flags = CLI_JSON_DECODE_FLAGS;
    bool from_stdin = strcmp(text, "-") == 0;
    json_error_t e;
    *out = from_stdin ? json_loadf(stdin, flags, &e) : json_loads(text, flags, &e);
    if (*out) return EXIT_OK;
    if (json_error_code(&e) == json_error_out_of_memory) return cli_oom(f);
    return cli_fail(
        f, EXIT_USAGE, "bad JSON body (%s) at line %d, column %d (byte %d): %s",
        from_stdin ? "stdin" : "argument", e.line, e.column, e.position, e.text);
}

static int s_cmd_call(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *in = NULL, *out = NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bool has_body = o->nargs > 3;
    int rc = has_body ? s_parse_body(o->args[3], &in, f) : EXIT_OK;
    if (rc == EXIT_OK && has_body) rc = cli_pack_json(in, &pk, f);
    if (rc == EXIT_OK)
        rc = cli_call(c, o, o->args[1], o->args[2], has_body ? &sb : NULL, &out, f);
    if (rc == EXIT_OK) rc = cli_print_json(out, !o->json, f);
    json_decref(in);
    json_decref(out);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

/* A command: one word (group NULL) or two ("runs list"). */
typedef struct cmd {
    const char *group, *name;
    int min_operands, max_operands; /* max -1: any number */
    unsigned opts;                  /* the command options (CO_*) it takes */
    const char *operands;           /* for the help and for a usage error */
    const char *what;               /* one line of help */
    cmd_fn run;
} cmd_t;

#define LIST_OPTS (CO_ALL | CO_DELETED | CO_MAX)
#define ARTIFACT_OPTS CO_PROGRESS
#define ENV_OPTS (CO_PYTHON | CO_REQUIREMENTS | CO_ENV | CO_DESCRIPTION | CO_TAG)

static const cmd_t CMDS[] = {
    {NULL, "ping", 0, 0, 0, "", "check that cairnd answers; its version", s_cmd_ping},
    {NULL, "services", 0, 0, 0, "", "services: plugin, mode, state, verbs",
     s_cmd_services},
    {NULL, "permissions", 0, 0, 0, "", "every verb's permission, as Markdown",
     s_cmd_permissions},
    {NULL, "health", 0, 0, 0, "", "plugin states; exit 1 unless all are up",
     s_cmd_health},
    {NULL, "stats", 0, 0, 0, "", "requests, statuses, latency per verb", s_cmd_stats},
    {NULL, "call", 2, 3, 0, " SVC VERB [JSON]", "call a verb, JSON body ('-': stdin)",
     s_cmd_call},
    {"experiments", "list", 0, 0, LIST_OPTS | CO_FILTER, "",
     "the experiments [--filter F] [--max N]", cli_experiments_list},
    {"experiments", "create", 1, 1, CO_TAG, " NAME",
     "create one [--tag K=V]; prints its id", cli_experiments_create},
    {"experiments", "delete", 1, 1, 0, " ID", "delete one (restore undoes it)",
     cli_experiments_delete},
    {"experiments", "restore", 1, 1, 0, " ID", "restore a deleted experiment",
     cli_experiments_restore},
    {"runs", "list", 1, 1, LIST_OPTS, " EXPERIMENT",
     "runs, newest first, latest metrics", cli_runs_list},
    {"runs", "show", 1, 1, 0, " RUN_ID", "info, params, latest metrics, tags",
     cli_runs_show},
    {"runs", "search", 1, -1, LIST_OPTS | CO_FILTER | CO_ORDER_BY, " EXPERIMENT...",
     "runs by --filter F [--order-by O]...", cli_runs_search},
    {"runs", "create", 1, 1, CO_NAME | CO_TAG, " EXPERIMENT",
     "start a run [--name N]; prints its id", cli_runs_create},
    {"runs", "end", 1, 1, CO_STATUS, " RUN_ID", "end a run [--status S]", cli_runs_end},
    {"metrics", "history", 2, 2, CO_MAX, " RUN_ID KEY",
     "a metric's points by step [--max N]", cli_metrics_history},
    {"metrics", "log", 3, 3, CO_STEP, " RUN_ID KEY VALUE",
     "log a metric point [--step S]", cli_metrics_log},
    {"params", "log", 3, 3, 0, " RUN_ID KEY VALUE", "log a param (write-once)",
     cli_params_log},
    {"artifacts", "list", 1, 2, CO_MAX, " RUN_ID [PATH]",
     "files and directories under PATH", cli_artifacts_list},
    {"artifacts", "upload", 2, 3, ARTIFACT_OPTS, " RUN_ID FILE [PATH]",
     "upload FILE ('-': stdin) as PATH", cli_artifacts_upload},
    {"artifacts", "download", 2, 3, ARTIFACT_OPTS, " RUN_ID PATH [FILE]",
     "download, verify its hash ('-': stdout)", cli_artifacts_download},
    {"models", "create", 1, 1, CO_TAG, " NAME", "a registered model [--tag K=V]",
     cli_models_create},
    {"models", "register", 2, 2, CO_TAG, " NAME SOURCE",
     "a version of runs:/... or a local path", cli_models_register},
    {"models", "download", 2, 2, 0, " REF DIR", "a version's files, hash-checked",
     cli_models_download},
    {"models", "list", 0, 0, CO_FILTER | CO_MAX, "", "models [--filter F] [--max N]",
     cli_models_list},
    {"models", "versions", 1, 1, CO_MAX, " NAME", "a model's versions, newest first",
     cli_models_versions},
    {"models", "show", 1, 1, 0, " REF", "NAME, NAME:VERSION or NAME@ALIAS",
     cli_models_show},
    {"models", "alias", 3, 3, 0, " NAME ALIAS VERSION", "point ALIAS at VERSION",
     cli_models_alias},
    {"models", "history", 2, 2, 0, " NAME ALIAS", "every move of ALIAS: who, when",
     cli_models_history},
    {"models", "delete", 1, 1, 0, " NAME", "the model and its versions",
     cli_models_delete},
    {NULL, "lineage", 1, 1, CO_DOT, " NODE", "where it came from, led to [--dot]",
     cli_lineage},
    {"envs", "create", 1, 1, ENV_OPTS, " NAME", "the next version (options below)",
     cli_envs_create},
    {"envs", "list", 0, 1, CO_ALL | CO_MAX, " [NAME]",
     "NAME's versions, or each latest [--all]", cli_envs_list},
    {"envs", "show", 1, 1, 0, " NAME[:VERSION]", "an environment (default: latest)",
     cli_envs_show},
    {"envs", "archive", 1, 1, 0, " NAME:VERSION", "hide it from latest and lists",
     cli_envs_archive},
    {"data", "create", 2, 2, CO_TYPE | CO_DESCRIPTION | CO_TAG, " NAME PATH",
     "the next version of runs:/... or a path", cli_data_create},
    {"data", "list", 0, 1, CO_ALL | CO_MAX, " [NAME]",
     "NAME's versions, or each latest", cli_data_list},
    {"data", "show", 1, 1, 0, " NAME[:VERSION]", "a data asset (default: latest)",
     cli_data_show},
    {"data", "archive", 1, 1, 0, " NAME:VERSION", "hide it from latest and lists",
     cli_data_archive},
    {"job", "submit", 1, 1, CO_FOLLOW, " FILE", "a command job's YAML [--stream]",
     cli_job_submit},
    {"job", "list", 0, 0, CO_STATUS | CO_EXPERIMENT | CO_MAX, "",
     "[--status S] [--experiment E] [--max N]", cli_job_list},
    {"job", "show", 1, 1, 0, " NAME", "a job, every field", cli_job_show},
    {"job", "cancel", 1, 1, 0, " NAME", "stop it (SIGTERM, then SIGKILL)",
     cli_job_cancel},
    {"job", "logs", 1, 1, CO_FOLLOW, " NAME", "its stdout and stderr [--follow]",
     cli_job_logs},
    {"compute", "list", 0, 0, 0, "", "compute targets: slots, CPUs, GPUs",
     cli_compute_list},
    {"compute", "create", 1, 2, 0, " NAME [MAX_CONCURRENT]",
     "a pool with its own limit", cli_compute_create},
    {"compute", "show", 1, 1, 0, " NAME", "a compute target", cli_compute_show},
    {"compute", "delete", 1, 1, 0, " NAME", "remove it (none of its jobs waiting)",
     cli_compute_delete},
    {"endpoint", "create", 1, 1, CO_AUTH_MODE, " NAME",
     "an endpoint (--auth-mode key|token)", cli_endpoint_create},
    {"endpoint", "list", 0, 0, 0, "", "this workspace's endpoints", cli_endpoint_list},
    {"endpoint", "show", 1, 1, 0, " NAME", "its URI, traffic and mirror",
     cli_endpoint_show},
    {"endpoint", "delete", 1, 1, 0, " NAME", "it and its deployments",
     cli_endpoint_delete},
    {"endpoint", "keys", 1, 1, 0, " NAME", "its two keys", cli_endpoint_keys},
    {"endpoint", "metrics", 1, 1, 0, " NAME", "requests, errors, latency",
     cli_endpoint_metrics},
    {"endpoint", "traffic", 2, 17, 0, " NAME DEP=PCT...", "split live traffic",
     cli_endpoint_traffic},
    {"endpoint", "mirror", 1, 17, 0, " NAME [DEP=PCT...]", "copies of live requests",
     cli_endpoint_mirror},
    {"endpoint", "invoke", 1, 2, CO_DEPLOYMENT | CO_TYPE, " NAME [FILE]",
     "score a body (--deployment, --type)", cli_endpoint_invoke},
    {"deployment", "create", 3, 3, CO_CODE | CO_SCRIPT, " ENDPOINT NAME MODEL",
     "deploy (--code, --scoring-script)", cli_deployment_create},
    {"deployment", "update", 2, 3, CO_CODE | CO_SCRIPT, " ENDPOINT NAME [MODEL]",
     "roll a new one in (--code, ...)", cli_deployment_update},
    {"deployment", "logs", 2, 2, CO_MAX, " ENDPOINT NAME",
     "its workers' output (--max N)", cli_deployment_logs},
    {"deployment", "list", 1, 1, 0, " ENDPOINT", "its deployments",
     cli_deployment_list},
    {"deployment", "show", 2, 2, 0, " ENDPOINT NAME", "a deployment",
     cli_deployment_show},
    {"deployment", "delete", 2, 2, 0, " ENDPOINT NAME", "remove it (no traffic left)",
     cli_deployment_delete},
    {"batch", "create", 2, 6, 0, " NAME MODEL [SETTING=N...]", "a batch endpoint",
     cli_batch_create},
    {"batch", "list", 0, 0, 0, "", "this workspace's batch endpoints", cli_batch_list},
    {"batch", "show", 1, 1, 0, " NAME", "its model and job settings", cli_batch_show},
    {"batch", "update", 1, 6, 0, " NAME [MODEL] [SETTING=N...]", "new model, settings",
     cli_batch_update},
    {"batch", "delete", 1, 1, 0, " NAME", "remove it (its jobs run on)",
     cli_batch_delete},
    {"batch", "invoke", 2, 6, CO_EXPERIMENT, " NAME INPUT [SETTING=N...]",
     "score INPUT in a job", cli_batch_invoke},
    {"secrets", "set", 1, 1, 0, " NAME", "the value on stdin", cli_secrets_set},
    {"secrets", "get", 1, 1, 0, " NAME", "print the value", cli_secrets_get},
    {"secrets", "list", 0, 0, 0, "", "names and versions, never values",
     cli_secrets_list},
    {"secrets", "delete", 1, 1, 0, " NAME", "remove it", cli_secrets_delete},
    {"secrets", "rotate-key", 0, 0, 0, "", "re-seal every value, new master key",
     cli_secrets_rotate},
    {"audit", "query", 0, 1, 0, " [JSON]", "records, filtered ({\"principal\": ...})",
     cli_audit_query},
    {"audit", "verify", 0, 0, 0, "", "check the hash chain", cli_audit_verify},
    {"audit", "verify-file", 1, 1, 0, " FILE", "check audit.db offline",
     cli_audit_verify_file},
    {NULL, "whoami", 0, 0, 0, "", "who the token is, and its roles", cli_whoami},
    {NULL, "login", 1, 1, 0, " USER", "password on stdin; saves the token", cli_login},
    {NULL, "logout", 0, 0, 0, "", "remove the saved login token", cli_logout},
    {"users", "create", 1, 1, 0, " USER", "password on stdin", cli_users_create},
    {"users", "delete", 1, 1, 0, " USER", "with its tokens and roles",
     cli_users_delete},
    {"users", "passwd", 1, 1, 0, " USER", "stdin: new password [, old password]",
     cli_users_passwd},
    {"tokens", "list", 0, 0, 0, "", "tokens (no secrets)", cli_tokens_list},
    {"tokens", "create", 1, 2, 0, " NAME [EXPIRES_IN_S]", "prints the secret, once",
     cli_tokens_create},
    {"tokens", "revoke", 1, 1, 0, " TOKEN_ID", "revoke a token", cli_tokens_revoke},
    {"roles", "list", 0, 0, 0, "", "roles and their action patterns", cli_roles_list},
    {"roles", "define", 2, -1, 0, " NAME PATTERN...", "a custom role ('!P': not P)",
     cli_roles_define},
    {"roles", "assign", 2, 3, 0, " PRINCIPAL ROLE [WS]", "no WS: every workspace",
     cli_roles_assign},
    {"roles", "unassign", 2, 3, 0, " PRINCIPAL ROLE [WS]", "undo an assign",
     cli_roles_unassign},
    {"workspaces", "list", 0, 0, 0, "", "the workspaces", cli_workspaces_list},
    {"workspaces", "create", 1, 1, 0, " NAME", "a new workspace",
     cli_workspaces_create},
    {"workspaces", "delete", 1, 1, 0, " NAME", "not default", cli_workspaces_delete},
    {NULL, "keygen", 0, 0, CO_OUT, "", "a CurveZMQ key pair [--out PREFIX]",
     cli_keygen},
};

#define NCMDS (sizeof CMDS / sizeof CMDS[0])

static int s_synopsis(const cmd_t *c, char *buf, size_t size)
{
    return snprintf(buf, size, "%s%s%s%s", c->group ? c->group : "",
                    c->group ? " " : "", c->name, c->operands);
}

/* The help's description column: lines stay within 80 characters. */
#define USAGE_COLUMN 37

static void s_usage(FILE *out)
{
    char syn[80];
    int width = 4; /* "help" */
    for (size_t i = 0; i < NCMDS; i++) {
        int n = s_synopsis(&CMDS[i], syn, sizeof syn);
        if (n > width) width = n;
    }
    if (width > USAGE_COLUMN) width = USAGE_COLUMN; /* longer ones: two lines */
    fputs(
        "usage: cairn [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Talk to cairnd, the Cairn kernel, over CAIRN/1.\n"
        "\n"
        "Commands:\n",
        out);
    for (size_t i = 0; i < NCMDS; i++) {
        if (s_synopsis(&CMDS[i], syn, sizeof syn) > width) {
            fprintf(out, "  %s\n", syn);
            syn[0] = '\0';
        }
        fprintf(out, "  %-*s  %s\n", width, syn, CMDS[i].what);
    }
    fprintf(out, "  %-*s  %s\n", width, "help", "print this help");
    fputs(
        "\n"
        "`call` sends nil when JSON is left out. EXPERIMENT is an experiment's id\n"
        "or name. PATH (upload) defaults to FILE's name, or names a directory when\n"
        "it ends in '/'; FILE (download) defaults to PATH's name in the current\n"
        "directory. Tables are for people; --json prints the replies (lists\n"
        "gathered from every page) for scripts.\n"
        "\n"
        "Options (anywhere on the line; '--' ends them; --opt=VALUE works too):\n"
        "  --endpoint ADDR  where cairnd listens (default: $CAIRN_ENDPOINT, else\n"
        "                   " CAIRN_DEFAULT_ENDPOINT
        ")\n"
        "  --token TOK      bearer token (default: $CAIRN_TOKEN, the token of\n"
        "                   `cairn login`, else ./var/owner.token or $CAIRN_STATE's)\n"
        "  --ws, --workspace WS  workspace (default: 'default')\n"
        "  --ttl MS         how long to wait for a reply, in ms (default 30000)\n"
        "  --server-key KEY cairnd's CurveZMQ public key, or its file, for an\n"
        "                   address that is not loopback (default: $CAIRN_SERVER_KEY)\n"
        "  --client-key KEY this client's CurveZMQ secret key, or its file\n"
        "                   (default: $CAIRN_CLIENT_KEY; docs/TRANSPORT.md)\n"
        "  --json           print the reply body as compact JSON, for scripts\n"
        "  -h, --help       print this help\n"
        "  --version        print the version of this program\n"
        "\n"
        "Command options (only where a command takes them):\n"
        "  --all, --deleted  experiments list, runs list and search: deleted ones "
        "too,\n"
        "                    or only deleted ones\n"
        "  --filter F        experiments: name = 'x', name LIKE 'x%' AND ...;\n"
        "                    runs: MLflow's syntax with OR and parentheses, e.g.\n"
        "                    \"metrics.acc > 0.9 AND params.opt = 'adam'\"\n"
        "  --order-by O      runs search, repeatable: \"metrics.acc DESC\",\n"
        "                    \"attributes.start_time\" (default: newest first)\n"
        "  --max N           lists and history: stop after N (default: all, by pages)\n"
        "  --tag K=V         experiments create, runs create; repeatable\n"
        "  --name N          runs create: the run's name\n"
        "  --status S        runs end: FINISHED (default), FAILED or KILLED\n"
        "  --step S          metrics log: the step (default 0)\n"
        "  --progress        upload, download: progress on stderr even when it is not\n"
        "                    a terminal (a terminal gets it for files over 4 MiB)\n"
        "  --out PREFIX      keygen: write PREFIX.key (secret, mode 0600) and\n"
        "                    PREFIX.pub, print the public key (default: print both)\n"
        "  --dot             lineage: the graph for Graphviz (dot -Tsvg)\n"
        "  --python P        envs create: the interpreter or venv (an absolute path)\n"
        "  --requirements FILE  envs create: its text ('-': stdin), as pip's\n"
        "  --env K=V         envs create: an environment variable; repeatable\n"
        "  --description D   envs create, data create: a description\n"
        "  --type T          data create: uri_file, uri_folder or table (a CSV)\n"
        "\n"
        "JSON and msgpack: msgpack binary is shown as {\"$bin\": \"BASE64\"}, and\n"
        "such an object in the input is sent as binary; ext values as\n"
        "{\"$ext\": TYPE, \"data\": \"BASE64\"}; integers above 2^63-1 as decimal\n"
        "strings (they cannot be sent); NaN and infinities as the strings \"NaN\",\n"
        "\"Infinity\", \"-Infinity\"; map keys that are not strings as their JSON.\n"
        "\n"
        "Exit status:\n"
        "  0  success\n"
        "  1  cairnd answered an error (status >= 400, shown on "
        "stderr as\n"
        "     \"cairn: CODE (STATUS): message\"), or `health` found a plugin not up\n"
        "  2  usage error, a JSON body that does not parse, or a local file that\n"
        "     cannot be read\n"
        "  3  cairnd cannot be reached (no reply within the ttl)\n"
        "  4  internal error (out of memory, malformed reply, cannot write output,\n"
        "     a transfer whose bytes do not match their hash)\n",
        out);
}

/* The subcommands of a group, for a usage error: "list, create, ...". */
static void s_subcommands(const char *group, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NCMDS && n < size; i++)
        if (CMDS[i].group && strcmp(CMDS[i].group, group) == 0)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "",
                                  CMDS[i].name);
}

static const cmd_t *s_find_command(const opts_t *o, fail_t *f)
{
    const char *word = o->args[0], *sub = o->nargs > 1 ? o->args[1] : NULL;
    bool group = false;
    for (size_t i = 0; i < NCMDS; i++) {
        const cmd_t *c = &CMDS[i];
        if (!c->group && strcmp(c->name, word) == 0) return c;
        if (!c->group || strcmp(c->group, word) != 0) continue;
        group = true;
        if (sub && strcmp(c->name, sub) == 0) return c;
    }
    char subs[256];
    if (!group) {
        cli_bad_usage(f, "unknown command '%s'", word);
        return NULL;
    }
    s_subcommands(word, subs, sizeof subs);
    if (!sub)
        cli_bad_usage(f, "'%s' needs a subcommand: %s", word, subs);
    else
        cli_bad_usage(f, "unknown command '%s %s' (%s has: %s)", word, sub, word, subs);
    return NULL;
}

/* Every command option on the line must be one the command takes. */
static int s_check_opts(const cmd_t *c, const opts_t *o, fail_t *f)
{
    for (size_t k = 0; k < sizeof OPTS / sizeof OPTS[0]; k++)
        if ((o->given & OPTS[k].bit) && !(c->opts & OPTS[k].bit))
            return cli_bad_usage(f, "--%s does not apply to 'cairn %s%s%s'",
                                 OPTS[k].name, c->group ? c->group : "",
                                 c->group ? " " : "", c->name);
    if (o->all && o->deleted)
        return cli_bad_usage(f, "--all and --deleted exclude each other");
    return EXIT_OK;
}

static int s_run_command(const opts_t *o, fail_t *f)
{
    const cmd_t *cmd = s_find_command(o, f);
    if (!cmd) return EXIT_USAGE;
    int operands = o->nargs - (cmd->group ? 2 : 1);
    if (operands < cmd->min_operands ||
        (cmd->max_operands >= 0 && operands > cmd->max_operands)) {
        char syn[80];
        s_synopsis(cmd, syn, sizeof syn);
        return cli_bad_usage(f, "usage: cairn [OPTIONS] %s", syn);
    }
    int rc = s_check_opts(cmd, o, f);
    if (rc != EXIT_OK) return rc;
    cairn_client_t *c = NULL;
    if (cmd->run != cli_keygen) rc = s_connect(o, &c, f); /* keygen is local */
    if (rc == EXIT_OK) rc = cmd->run(c, o, f);
    cairn_client_destroy(&c);
    return rc;
}

static int s_main(int argc, char **argv, fail_t *f)
{
    opts_t o = {0};
    int rc = s_parse_args(argc, argv, &o, f);
    if (rc != EXIT_OK) return rc;
    if (o.help || (o.nargs > 0 && strcmp(o.args[0], "help") == 0)) {
        s_usage(stdout);
        return EXIT_OK;
    }
    if (o.version) {
        printf("cairn %s\n", CAIRN_VERSION);
        return EXIT_OK;
    }
    if (o.nargs == 0) return cli_bad_usage(f, "no command given");
    return s_run_command(&o, f);
}

int main(int argc, char **argv)
{
    fail_t f = {.code = EXIT_OK};
    int rc = s_main(argc, argv, &f);
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == EXIT_OK)
        rc = cli_fail(&f, EXIT_INTERNAL, "cannot write the output");
    if (rc != EXIT_OK && f.msg[0]) fprintf(stderr, "cairn: %s\n", f.msg);
    if (rc != EXIT_OK && f.hint) fputs("Try 'cairn --help'.\n", stderr);
    return rc;
}
