/* cairn — the command-line client of cairnd (CAIRN/1, spec/bus-protocol.md).
 *
 * JSON in, JSON out: a request body is parsed with jansson and packed as
 * msgpack; a reply body is unpacked and printed as JSON (pretty for `call`,
 * compact with --json) or, for people, as a table. Every failure travels back
 * to main as a fail_t and is printed once, as "cairn: ...", on stderr; the
 * exit status says which kind of failure it was (see s_usage). */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/client.h"
#include "cairn/msg.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.0.0"
#endif

/* Exit statuses (documented in s_usage). */
enum {
    X_OK = 0,
    X_SERVER = 1,      /* cairnd answered an error, or health is not ok */
    X_USAGE = 2,       /* bad arguments or bad JSON input */
    X_UNREACHABLE = 3, /* no reply from cairnd */
    X_INTERNAL = 4,    /* out of memory, malformed reply, cannot write output */
};

#define MAX_ARGS 8 /* positional arguments: a command and its operands */

typedef struct fail {
    int code;                          /* one of X_* */
    bool hint;                         /* a usage error: point at --help */
    char msg[CAIRN_ERR_MSG_MAX + 256]; /* printed after "cairn: "; may be empty */
} fail_t;

typedef struct opts {
    const char *endpoint; /* resolved: --endpoint, $CAIRN_ENDPOINT or the default */
    const char *token, *ws;
    uint32_t ttl_ms; /* 0: the client's default */
    bool json, help, version;
    int nargs;
    char *args[MAX_ARGS];
} opts_t;

__attribute__((format(printf, 3, 4))) static int s_fail(fail_t *f, int code,
                                                        const char *fmt, ...)
{
    f->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* A usage error in the command line (not in a JSON body): X_USAGE. */
__attribute__((format(printf, 2, 3))) static int s_bad_usage(fail_t *f, const char *fmt,
                                                             ...)
{
    f->code = X_USAGE;
    f->hint = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return X_USAGE;
}

static int s_oom(fail_t *f)
{
    return s_fail(f, X_INTERNAL, "out of memory");
}

/* ---- usage ------------------------------------------------------------- */

static void s_usage(FILE *out)
{
    fputs(
        "usage: cairn [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Talk to cairnd, the Cairn kernel, over CAIRN/1.\n"
        "\n"
        "Commands:\n"
        "  ping                  check that cairnd answers; print its version and\n"
        "                        the round-trip time\n"
        "  services              list the services: plugin, mode, state and verbs\n"
        "  health                the state of every plugin; exits 1 unless all are up\n"
        "  call SVC VERB [JSON]  call a verb with JSON as its body ('-' reads the\n"
        "                        body from stdin; none sends nil) and print the\n"
        "                        reply body as JSON\n"
        "  help                  print this help\n"
        "\n"
        "Options (anywhere on the line; '--' ends them; --opt=VALUE works too):\n"
        "  --endpoint ADDR  where cairnd listens (default: $CAIRN_ENDPOINT, else\n"
        "                   " CAIRN_DEFAULT_ENDPOINT
        ")\n"
        "  --token TOK      bearer token (default: $CAIRN_TOKEN, else none)\n"
        "  --ws WS          workspace (default: the kernel's, 'default')\n"
        "  --ttl MS         how long to wait for a reply, in ms (default 30000)\n"
        "  --json           print the reply body as compact JSON, for scripts\n"
        "  -h, --help       print this help\n"
        "  --version        print the version of this program\n"
        "\n"
        "JSON and msgpack: msgpack binary is shown as {\"$bin\": \"BASE64\"}, and\n"
        "such an object in the input is sent as binary; ext values as\n"
        "{\"$ext\": TYPE, \"data\": \"BASE64\"}; integers above 2^63-1 as decimal\n"
        "strings (they cannot be sent); NaN and infinities as the strings \"NaN\",\n"
        "\"Infinity\", \"-Infinity\"; map keys that are not strings as their JSON.\n"
        "\n"
        "Exit status:\n"
        "  0  success\n"
        "  1  cairnd answered an error (status >= 400, shown on stderr as\n"
        "     \"cairn: CODE (STATUS): message\"), or `health` found a plugin not up\n"
        "  2  usage error, or a JSON body that does not parse\n"
        "  3  cairnd cannot be reached (no reply within the ttl)\n"
        "  4  internal error (out of memory, malformed reply, cannot write output)\n",
        out);
}

/* ---- options ----------------------------------------------------------- */

typedef enum { O_ENDPOINT, O_TOKEN, O_WS, O_TTL, O_JSON, O_HELP, O_VERSION } opt_id_t;

static const struct {
    const char *name;
    bool has_value;
} OPTS[] = {
    [O_ENDPOINT] = {"endpoint", true},
    [O_TOKEN] = {"token", true},
    [O_WS] = {"ws", true},
    [O_TTL] = {"ttl", true},
    [O_JSON] = {"json", false},
    [O_HELP] = {"help", false},
    [O_VERSION] = {"version", false},
};

static int s_parse_ttl(const char *s, uint32_t *out, fail_t *f)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || v == 0 || v > UINT32_MAX)
        return s_bad_usage(f,
                           "--ttl wants milliseconds from 1 to %" PRIu32 ", not '%s'",
                           UINT32_MAX, s);
    *out = (uint32_t)v;
    return X_OK;
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
    }
    return X_OK;
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
            return s_bad_usage(f, "--%s takes no value", OPTS[k].name);
        if (OPTS[k].has_value && !value && *i + 1 < argc) value = argv[++*i];
        if (OPTS[k].has_value && (!value || !*value))
            return s_bad_usage(f, "--%s needs a value", OPTS[k].name);
        return s_set_opt(o, (opt_id_t)k, value, f);
    }
    return s_bad_usage(f, "unknown option '%s'", argv[*i]);
}

static int s_parse_args(int argc, char **argv, opts_t *o, fail_t *f)
{
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = X_OK;
        if (!options_done && strcmp(a, "--") == 0)
            options_done = true;
        else if (!options_done && strcmp(a, "-h") == 0)
            o->help = true;
        else if (!options_done && strncmp(a, "--", 2) == 0)
            rc = s_parse_opt(argc, argv, &i, o, f);
        else if (o->nargs == MAX_ARGS)
            rc = s_bad_usage(f, "too many arguments");
        else
            o->args[o->nargs++] = argv[i];
        if (rc != X_OK) return rc;
    }
    if (!o->endpoint) o->endpoint = getenv("CAIRN_ENDPOINT");
    if (!o->endpoint || !*o->endpoint) o->endpoint = CAIRN_DEFAULT_ENDPOINT;
    return X_OK;
}

/* ---- base64 (RFC 4648, with padding) ----------------------------------- */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A NUL-terminated heap string; NULL when out of memory. */
static char *s_base64_encode(const unsigned char *p, size_t n)
{
    if (n > SIZE_MAX / 2) return NULL;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < n ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? B64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int s_b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Decode s (len a multiple of 4, '=' only as padding) into out, which holds
 * len / 4 * 3 bytes, and its length into *outlen; false when s is not base64. */
static bool s_base64_decode(const char *s, size_t len, unsigned char *out,
                            size_t *outlen)
{
    if (len % 4) return false;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=') : 0;
        uint32_t v = 0;
        for (int k = 0; k < 4 - pad; k++) {
            int d = s_b64_value(s[i + (size_t)k]);
            if (d < 0) return false;
            v = v << 6 | (uint32_t)d;
        }
        v <<= 6 * pad;
        out[n++] = (unsigned char)(v >> 16);
        if (pad < 2) out[n++] = (unsigned char)(v >> 8);
        if (pad < 1) out[n++] = (unsigned char)v;
    }
    *outlen = n;
    return true;
}

/* ---- JSON -> msgpack ----------------------------------------------------- */

static int s_pack_json(json_t *j, msgpack_packer *pk, fail_t *f);

/* An object {"$bin": "BASE64"} (that one key, a string value) is packed
 * as binary; *done says whether j was one. */
static int s_pack_bin_object(json_t *j, msgpack_packer *pk, bool *done, fail_t *f)
{
    json_t *b = json_object_size(j) == 1 ? json_object_get(j, "$bin") : NULL;
    *done = json_is_string(b);
    if (!*done) return X_OK;
    size_t len = json_string_length(b), n = 0;
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (!buf) return s_oom(f);
    int rc = X_OK;
    if (!s_base64_decode(json_string_value(b), len, buf, &n))
        rc = s_fail(f, X_USAGE, "the value of a {\"$bin\": ...} object is not base64");
    else if (msgpack_pack_bin_with_body(pk, buf, n) != 0)
        rc = s_oom(f);
    free(buf);
    return rc;
}

static int s_pack_object(json_t *j, msgpack_packer *pk, fail_t *f)
{
    bool done = false;
    int rc = s_pack_bin_object(j, pk, &done, f);
    if (rc != X_OK || done) return rc;
    if (msgpack_pack_map(pk, json_object_size(j)) != 0) return s_oom(f);
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(j, key, klen, v)
    {
        if (msgpack_pack_str_with_body(pk, key, klen) != 0) return s_oom(f);
        if ((rc = s_pack_json(v, pk, f)) != X_OK) return rc;
    }
    return X_OK;
}

static int s_pack_array(json_t *j, msgpack_packer *pk, fail_t *f)
{
    if (msgpack_pack_array(pk, json_array_size(j)) != 0) return s_oom(f);
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        int rc = s_pack_json(v, pk, f);
        if (rc != X_OK) return rc;
    }
    return X_OK;
}

static int s_pack_json(json_t *j, msgpack_packer *pk, fail_t *f)
{
    int rc = 0;
    switch (json_typeof(j)) {
        case JSON_OBJECT:
            return s_pack_object(j, pk, f);
        case JSON_ARRAY:
            return s_pack_array(j, pk, f);
        case JSON_STRING:
            rc = msgpack_pack_str_with_body(pk, json_string_value(j),
                                            json_string_length(j));
            break;
        case JSON_INTEGER:
            rc = msgpack_pack_int64(pk, json_integer_value(j));
            break;
        case JSON_REAL:
            rc = msgpack_pack_double(pk, json_real_value(j));
            break;
        case JSON_TRUE:
            rc = msgpack_pack_true(pk);
            break;
        case JSON_FALSE:
            rc = msgpack_pack_false(pk);
            break;
        case JSON_NULL:
            rc = msgpack_pack_nil(pk);
            break;
    }
    return rc == 0 ? X_OK : s_oom(f);
}

/* ---- msgpack -> JSON ----------------------------------------------------- */

static json_t *s_to_json(const msgpack_object *o);

/* {tag: v}, stealing v; NULL when out of memory. */
static json_t *s_tagged(const char *tag, json_t *v)
{
    json_t *obj = json_object();
    if (json_object_set_new(obj, tag, v) != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *s_json_bin(const char *p, size_t n)
{
    char *b64 = s_base64_encode((const unsigned char *)p, n);
    json_t *j = b64 ? s_tagged("$bin", json_string(b64)) : NULL;
    free(b64);
    return j;
}

static json_t *s_json_ext(const msgpack_object_ext *e)
{
    char *b64 = s_base64_encode((const unsigned char *)e->ptr, e->size);
    json_t *j = b64 ? json_pack("{s:i, s:s}", "$ext", (int)e->type, "data", b64) : NULL;
    free(b64);
    return j;
}

/* A msgpack str that is not UTF-8 cannot be a JSON string: show its bytes. */
static json_t *s_json_str(const char *p, size_t n)
{
    json_t *j = json_stringn(p ? p : "", n);
    return j ? j : s_json_bin(p, n);
}

static json_t *s_json_uint(uint64_t u)
{
    if (u <= INT64_MAX) return json_integer((json_int_t)u);
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, u);
    return json_string(buf);
}

static json_t *s_json_real(double d)
{
    if (isnan(d)) return json_string("NaN");
    if (isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

/* A float32 becomes the double of its shortest decimal form (0.1f -> 0.1). */
static json_t *s_json_float32(double d)
{
    if (!isfinite(d)) return s_json_real(d);
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, d);
        if ((float)strtod(buf, NULL) == (float)d) break;
    }
    return json_real(strtod(buf, NULL));
}

static json_t *s_json_array(const msgpack_object_array *a)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; arr && i < a->size; i++) {
        if (json_array_append_new(arr, s_to_json(&a->ptr[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static char *s_dumps_compact(const json_t *j);

/* A map key as a JSON string: strings as they are, other keys as their JSON. */
static json_t *s_json_key(const msgpack_object *k)
{
    json_t *j = s_to_json(k);
    if (!j || json_is_string(j)) return j;
    char *text = s_dumps_compact(j);
    json_decref(j);
    json_t *key = text ? json_string(text) : NULL;
    free(text);
    return key;
}

static json_t *s_json_map(const msgpack_object_map *m)
{
    json_t *obj = json_object();
    for (uint32_t i = 0; obj && i < m->size; i++) {
        json_t *k = s_json_key(&m->ptr[i].key);
        json_t *v = s_to_json(&m->ptr[i].val);
        int rc = -1;
        if (k) /* the key was checked as UTF-8 when it became a JSON string */
            rc = json_object_setn_new_nocheck(obj, json_string_value(k),
                                              json_string_length(k), v);
        else
            json_decref(v);
        json_decref(k);
        if (rc != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* A new JSON value for o; NULL when out of memory. */
static json_t *s_to_json(const msgpack_object *o)
{
    switch (o->type) {
        case MSGPACK_OBJECT_NIL:
            return json_null();
        case MSGPACK_OBJECT_BOOLEAN:
            return json_boolean(o->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            return s_json_uint(o->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            return json_integer(o->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
            return s_json_float32(o->via.f64);
        case MSGPACK_OBJECT_FLOAT64:
            return s_json_real(o->via.f64);
        case MSGPACK_OBJECT_STR:
            return s_json_str(o->via.str.ptr, o->via.str.size);
        case MSGPACK_OBJECT_BIN:
            return s_json_bin(o->via.bin.ptr, o->via.bin.size);
        case MSGPACK_OBJECT_EXT:
            return s_json_ext(&o->via.ext);
        case MSGPACK_OBJECT_ARRAY:
            return s_json_array(&o->via.array);
        case MSGPACK_OBJECT_MAP:
            return s_json_map(&o->via.map);
    }
    return NULL;
}

/* ---- JSON output ----------------------------------------------------------- */

/* jansson prints every real with one precision (17 digits by default, which
 * shows 0.1 as 0.10000000000000001). Use the least precision that still
 * reads back every real in j exactly and keeps %g from switching to an
 * exponent for integral values such as 100.0. */
static int s_real_digits(double d)
{
    char buf[40];
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, d);
        if (strtod(buf, NULL) == d) break;
    }
    snprintf(buf, sizeof buf, "%.*e", digits - 1, d);
    long exp10 = strtol(strchr(buf, 'e') + 1, NULL, 10);
    return exp10 >= digits && exp10 < 17 ? (int)exp10 + 1 : digits;
}

static int s_precision(const json_t *j)
{
    int p = 0, q;
    size_t i;
    const char *k;
    const json_t *v;
    switch (json_typeof(j)) {
        case JSON_REAL:
            return s_real_digits(json_real_value(j));
        case JSON_ARRAY:
            json_array_foreach(j, i, v) if ((q = s_precision(v)) > p) p = q;
            return p;
        case JSON_OBJECT:
            json_object_foreach((json_t *)j, k, v) if ((q = s_precision(v)) > p) p = q;
            return p;
        default:
            return 0;
    }
}

static size_t s_dump_flags(const json_t *j, bool pretty)
{
    return JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT) |
           JSON_REAL_PRECISION(s_precision(j));
}

static char *s_dumps_compact(const json_t *j)
{
    return json_dumps(j, s_dump_flags(j, false));
}

static int s_print_json(const json_t *j, bool pretty, fail_t *f)
{
    if (json_dumpf(j, stdout, s_dump_flags(j, pretty)) != 0 || putchar('\n') == EOF)
        return s_fail(f, X_INTERNAL, "cannot write the output");
    return X_OK;
}

/* ---- tables ------------------------------------------------------------------ */

#define MAX_COLS 8 /* columns in a table */

typedef struct col {
    const char *title;
    const char *key;
    bool zero_is_none; /* show 0 as "-" (a pid) */
} col_t;

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
            return s_dumps_compact(v);
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
static int s_table(const json_t *rows, const col_t *cols, size_t ncols, fail_t *f)
{
    size_t nrows = json_array_size(rows), n = nrows * ncols;
    char **cells = calloc(n ? n : 1, sizeof *cells);
    int rc = cells ? X_OK : s_oom(f);
    for (size_t i = 0; rc == X_OK && i < n; i++) {
        cells[i] = s_cell(json_array_get(rows, i / ncols), &cols[i % ncols]);
        if (!cells[i]) rc = s_oom(f);
    }
    if (rc == X_OK) s_print_table(cols, ncols, cells, nrows);
    for (size_t i = 0; cells && i < n; i++) free(cells[i]);
    free(cells);
    return rc;
}

/* ---- talking to cairnd ------------------------------------------------------ */

static int s_connect(const opts_t *o, cairn_client_t **out, fail_t *f)
{
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(o->endpoint, o->token, &err);
    if (!c) return s_fail(f, err.st == 500 ? X_INTERNAL : X_USAGE, "%s", err.msg);
    if (o->ws) cairn_client_set_workspace(c, o->ws);
    cairn_client_set_ttl(c, o->ttl_ms);
    *out = c;
    return X_OK;
}

/* A call that got no reply: the client's own 504 (ttl passed) or 503. */
static int s_fail_local(const opts_t *o, const cairn_err_t *err, fail_t *f)
{
    if (err->st == CAIRN_ST_TIMEOUT)
        return s_fail(f, X_UNREACHABLE,
                      "cannot reach cairnd: no reply within %" PRIu32
                      " ms (is cairnd running at %s?)",
                      o->ttl_ms ? o->ttl_ms : 30000, o->endpoint);
    if (err->st == CAIRN_ST_UNAVAILABLE)
        return s_fail(f, X_UNREACHABLE,
                      "cannot reach cairnd: %s (is cairnd running at %s?)", err->msg,
                      o->endpoint);
    return s_fail(f, X_INTERNAL, "%s (%d): %s", err->code, err->st, err->msg);
}

/* The reply body as JSON (nil when empty), a new reference in *out. */
static int s_body_json(const cairn_reply_t *r, json_t **out, fail_t *f)
{
    size_t len = 0, off = 0;
    const char *buf = cairn_reply_body(r, &len);
    if (len == 0) {
        *out = json_null();
        return X_OK;
    }
    cairn_err_t why;
    if (cairn_msgpack_check(buf, len, &why) != 0)
        return s_fail(f, X_INTERNAL, "the reply body (%zu bytes): %s", len, why.msg);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = X_OK;
    if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        rc = s_fail(
            f, X_INTERNAL,
            "the reply body (%zu bytes) is not one msgpack value that can be decoded",
            len);
    else if (!(*out = s_to_json(&u.data)))
        rc = s_oom(f);
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* Call svc.verb with body (msgpack; NULL for nil) and return the reply
 * body as JSON in *out. A status >= 400 is X_SERVER with the reply's code
 * and sentence. */
static int s_call(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
                  const msgpack_sbuffer *body, json_t **out, fail_t *f)
{
    cairn_err_t err = {0};
    cairn_reply_t *r = NULL;
    int rc = cairn_client_call(c, svc, verb, body ? body->data : NULL,
                               body ? body->size : 0, 0, &r, &err);
    if (rc != 0 && !r) return s_fail_local(o, &err, f);
    if (rc != 0)
        rc = s_fail(f, X_SERVER, "%s (%d): %s", err.code, err.st, err.msg);
    else
        rc = s_body_json(r, out, f);
    cairn_reply_destroy(&r);
    return rc;
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
    int rc = s_call(c, o, "sys", "ping", NULL, &body, f);
    double ms = s_clock_ms() - t0;
    if (rc == X_OK && o->json) rc = s_print_json(body, false, f);
    if (rc == X_OK && !o->json) {
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
        return s_fail(f, X_INTERNAL, "the reply of sys.%s has no '%s' list", verb, key);
    return X_OK;
}

static const col_t SERVICE_COLS[] = {
    {"NAME", "name", false},   {"PLUGIN", "plugin", false}, {"MODE", "mode", false},
    {"STATE", "state", false}, {"VERBS", "verbs", false},
};

static int s_cmd_services(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = NULL;
    const json_t *rows = NULL;
    int rc = s_call(c, o, "sys", "services", NULL, &body, f);
    if (rc == X_OK && o->json) rc = s_print_json(body, false, f);
    if (rc == X_OK && !o->json) rc = s_rows(body, "services", "services", &rows, f);
    if (rc == X_OK && !o->json)
        rc = s_table(rows, SERVICE_COLS, sizeof SERVICE_COLS / sizeof SERVICE_COLS[0],
                     f);
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
    if (ok)
        printf("ok: all %zu plugins up\n", json_array_size(rows));
    else
        printf("NOT OK: %zu of %zu plugins not up\n", down, json_array_size(rows));
}

static int s_cmd_health(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *body = NULL;
    const json_t *rows = NULL;
    int rc = s_call(c, o, "sys", "health", NULL, &body, f);
    if (rc == X_OK && o->json) rc = s_print_json(body, false, f);
    if (rc == X_OK && !o->json) rc = s_rows(body, "plugins", "health", &rows, f);
    if (rc == X_OK && !o->json)
        rc = s_table(rows, HEALTH_COLS, sizeof HEALTH_COLS / sizeof HEALTH_COLS[0], f);
    bool ok = json_is_true(json_object_get(body, "ok"));
    if (rc == X_OK && !o->json) s_print_health_summary(rows, ok);
    if (rc == X_OK && !ok) rc = X_SERVER; /* no message: the output says it */
    json_decref(body);
    return rc;
}

/* Parse a JSON body: text, or stdin when text is "-". */
static int s_parse_body(const char *text, json_t **out, fail_t *f)
{
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES;
    bool from_stdin = strcmp(text, "-") == 0;
    json_error_t e;
    *out = from_stdin ? json_loadf(stdin, flags, &e) : json_loads(text, flags, &e);
    if (*out) return X_OK;
    if (json_error_code(&e) == json_error_out_of_memory) return s_oom(f);
    return s_fail(f, X_USAGE, "bad JSON body (%s) at line %d, column %d (byte %d): %s",
                  from_stdin ? "stdin" : "argument", e.line, e.column, e.position,
                  e.text);
}

static int s_cmd_call(cairn_client_t *c, const opts_t *o, fail_t *f)
{
    json_t *in = NULL, *out = NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bool has_body = o->nargs > 3;
    int rc = has_body ? s_parse_body(o->args[3], &in, f) : X_OK;
    if (rc == X_OK && has_body) rc = s_pack_json(in, &pk, f);
    if (rc == X_OK)
        rc = s_call(c, o, o->args[1], o->args[2], has_body ? &sb : NULL, &out, f);
    if (rc == X_OK) rc = s_print_json(out, !o->json, f);
    json_decref(in);
    json_decref(out);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

typedef int (*cmd_fn)(cairn_client_t *, const opts_t *, fail_t *);

static const struct {
    const char *name;
    int min_operands, max_operands;
    const char *operands; /* for a usage error */
    cmd_fn run;
} CMDS[] = {
    {"ping", 0, 0, "", s_cmd_ping},
    {"services", 0, 0, "", s_cmd_services},
    {"health", 0, 0, "", s_cmd_health},
    {"call", 2, 3, " SVC VERB [JSON]", s_cmd_call},
};

static int s_run_command(const opts_t *o, fail_t *f)
{
    const char *name = o->args[0];
    int operands = o->nargs - 1;
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++) {
        if (strcmp(CMDS[i].name, name) != 0) continue;
        if (operands < CMDS[i].min_operands || operands > CMDS[i].max_operands)
            return s_bad_usage(f, "usage: cairn [OPTIONS] %s%s", name,
                               CMDS[i].operands);
        cairn_client_t *c = NULL;
        int rc = s_connect(o, &c, f);
        if (rc == X_OK) rc = CMDS[i].run(c, o, f);
        cairn_client_destroy(&c);
        return rc;
    }
    return s_bad_usage(f, "unknown command '%s'", name);
}

static int s_main(int argc, char **argv, fail_t *f)
{
    opts_t o = {0};
    int rc = s_parse_args(argc, argv, &o, f);
    if (rc != X_OK) return rc;
    if (o.help || (o.nargs > 0 && strcmp(o.args[0], "help") == 0)) {
        s_usage(stdout);
        return X_OK;
    }
    if (o.version) {
        printf("cairn %s\n", CAIRN_VERSION);
        return X_OK;
    }
    if (o.nargs == 0) return s_bad_usage(f, "no command given");
    return s_run_command(&o, f);
}

int main(int argc, char **argv)
{
    fail_t f = {X_OK, false, ""};
    int rc = s_main(argc, argv, &f);
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == X_OK)
        rc = s_fail(&f, X_INTERNAL, "cannot write the output");
    if (rc != X_OK && f.msg[0]) fprintf(stderr, "cairn: %s\n", f.msg);
    if (rc != X_OK && f.hint) fputs("Try 'cairn --help'.\n", stderr);
    return rc;
}
