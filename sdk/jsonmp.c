/* JSON and msgpack, both ways (jsonmp.h). */
#define _POSIX_C_SOURCE 200809L
#include "jsonmp.h"
#include "realfmt.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- base64 (RFC 4648, with padding) ----------------------------------- */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *cairn_base64_encode(const unsigned char *p, size_t n)
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

bool cairn_base64_decode(const char *s, size_t len, unsigned char *out, size_t *outlen)
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

static int s_pack(json_t *j, msgpack_packer *pk, int depth, cairn_err_t *err);

/* An object {"$bin": "BASE64"} (that one key, a string value) is packed
 * as binary; *done says whether j was one. */
static int s_pack_bin_object(json_t *j, msgpack_packer *pk, bool *done,
                             cairn_err_t *err)
{
    json_t *b = json_object_size(j) == 1 ? json_object_get(j, "$bin") : NULL;
    *done = json_is_string(b);
    if (!*done) return 0;
    size_t len = json_string_length(b), n = 0;
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (!buf) return cairn_err_oom(err, NULL);
    int rc = 0;
    if (!cairn_base64_decode(json_string_value(b), len, buf, &n))
        rc = cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "the value of a {\"$bin\": ...} object is not base64");
    else if (msgpack_pack_bin_with_body(pk, buf, n) != 0)
        rc = cairn_err_oom(err, NULL);
    free(buf);
    return rc;
}

/* A map or an array inside depth others: CAIRN/1 takes msgpack nested at
 * most CAIRN_MSGPACK_MAX_DEPTH deep (cairn_msgpack_check, msgpack-c's own
 * limit), so a deeper body could not be read by the server. */
static int s_check_depth(int depth, cairn_err_t *err)
{
    if (depth < CAIRN_MSGPACK_MAX_DEPTH) return 0;
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "the JSON body is nested deeper than %d levels (arrays and "
                         "objects), which cairnd does not take",
                         CAIRN_MSGPACK_MAX_DEPTH);
}

static int s_pack_object(json_t *j, msgpack_packer *pk, int depth, cairn_err_t *err)
{
    bool done = false;
    int rc = s_pack_bin_object(j, pk, &done, err);
    if (rc != 0 || done) return rc;
    if ((rc = s_check_depth(depth, err)) != 0) return rc;
    if (msgpack_pack_map(pk, json_object_size(j)) != 0) return cairn_err_oom(err, NULL);
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(j, key, klen, v)
    {
        if (msgpack_pack_str_with_body(pk, key, klen) != 0)
            return cairn_err_oom(err, NULL);
        if ((rc = s_pack(v, pk, depth + 1, err)) != 0) return rc;
    }
    return 0;
}

static int s_pack_array(json_t *j, msgpack_packer *pk, int depth, cairn_err_t *err)
{
    int rc = s_check_depth(depth, err);
    if (rc != 0) return rc;
    if (msgpack_pack_array(pk, json_array_size(j)) != 0)
        return cairn_err_oom(err, NULL);
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        if ((rc = s_pack(v, pk, depth + 1, err)) != 0) return rc;
    }
    return 0;
}

/* j, inside depth maps and arrays. */
static int s_pack(json_t *j, msgpack_packer *pk, int depth, cairn_err_t *err)
{
    int rc = 0;
    switch (json_typeof(j)) {
        case JSON_OBJECT:
            return s_pack_object(j, pk, depth, err);
        case JSON_ARRAY:
            return s_pack_array(j, pk, depth, err);
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
    return rc == 0 ? 0 : cairn_err_oom(err, NULL);
}

int cairn_json_pack(json_t *j, msgpack_packer *pk, cairn_err_t *err)
{
    return s_pack(j, pk, 0, err);
}

/* ---- JSON text -> msgpack, without a tree --------------------------------- */

#define JT_MAX_MEMBERS 32

typedef struct {
    const char *p, *end;
    msgpack_sbuffer *sb;
    msgpack_packer pk;
    const cairn_json_text_opts_t *o;
    size_t mark_len;
    char *scratch; /* a string with escapes, unescaped */
    size_t scratch_cap;
} jt_t;

static void jt_ws(jt_t *t)
{
    while (t->p < t->end &&
           (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r'))
        t->p++;
}

static bool jt_scratch(jt_t *t, size_t need)
{
    if (need <= t->scratch_cap) return true;
    size_t cap = t->scratch_cap ? t->scratch_cap * 2 : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(t->scratch, cap);
    if (!p) return false;
    t->scratch = p;
    t->scratch_cap = cap;
    return true;
}

/* A string at p (its opening quote): *s and *n its bytes, in the text when
 * it has no escape, else unescaped into scratch (when escapes is true;
 * else it is given up). 0, -1 (memory) or CAIRN_JSON_TEXT_PLAIN. */
static int jt_string(jt_t *t, bool escapes, const char **s, size_t *n)
{
    const char *q = ++t->p;
    while (q < t->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 &&
           (unsigned char)*q < 0x80)
        q++;
    if (q < t->end && *q == '"') {
        *s = t->p;
        *n = (size_t)(q - t->p);
        t->p = q + 1;
        return 0;
    }
    if (q >= t->end || *q != '\\' || !escapes) return CAIRN_JSON_TEXT_PLAIN;
    size_t len = 0;
    for (q = t->p; q < t->end && *q != '"'; q++) {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20 || c >= 0x80) return CAIRN_JSON_TEXT_PLAIN;
        if (c == '\\') {
            if (++q >= t->end) return CAIRN_JSON_TEXT_PLAIN;
            switch (*q) {
                case '"':
                    c = '"';
                    break;
                case '\\':
                    c = '\\';
                    break;
                case '/':
                    c = '/';
                    break;
                case 'b':
                    c = '\b';
                    break;
                case 'f':
                    c = '\f';
                    break;
                case 'n':
                    c = '\n';
                    break;
                case 'r':
                    c = '\r';
                    break;
                case 't':
                    c = '\t';
                    break;
                default:
                    return CAIRN_JSON_TEXT_PLAIN; /* \u, or not JSON */
            }
        }
        if (!jt_scratch(t, len + 1)) return -1;
        t->scratch[len++] = (char)c;
    }
    if (q >= t->end) return CAIRN_JSON_TEXT_PLAIN;
    *s = t->scratch;
    *n = len;
    t->p = q + 1;
    return 0;
}

/* A number as jansson reads one: an integer (int64) without a fraction or
 * an exponent, else a real (a finite double). */
static int jt_number(jt_t *t)
{
    const char *q = t->p;
    bool real = false;
    if (q < t->end && *q == '-') q++;
    if (q < t->end && *q == '0')
        q++;
    else if (q < t->end && *q >= '1' && *q <= '9')
        while (q < t->end && *q >= '0' && *q <= '9') q++;
    else
        return CAIRN_JSON_TEXT_PLAIN;
    if (q < t->end && *q == '.') {
        real = true;
        if (++q >= t->end || *q < '0' || *q > '9') return CAIRN_JSON_TEXT_PLAIN;
        while (q < t->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < t->end && (*q == 'e' || *q == 'E')) {
        real = true;
        q++;
        if (q < t->end && (*q == '+' || *q == '-')) q++;
        if (q >= t->end || *q < '0' || *q > '9') return CAIRN_JSON_TEXT_PLAIN;
        while (q < t->end && *q >= '0' && *q <= '9') q++;
    }
    size_t n = (size_t)(q - t->p);
    if (!real && n <= 18) { /* fits an int64 whatever its digits: no strtoll */
        const char *d = t->p + (*t->p == '-');
        int64_t v = 0;
        for (; d < q; d++) v = v * 10 + (*d - '0');
        if (*t->p == '-') v = -v;
        t->p = q;
        return msgpack_pack_int64(&t->pk, v) == 0 ? 0 : -1;
    }
    char buf[64], *e = NULL;
    if (n >= sizeof buf) return CAIRN_JSON_TEXT_PLAIN;
    memcpy(buf, t->p, n);
    buf[n] = '\0';
    errno = 0;
    int rc;
    if (real) {
        double d = strtod(buf, &e);
        if (*e || !isfinite(d)) return CAIRN_JSON_TEXT_PLAIN;
        rc = msgpack_pack_double(&t->pk, d);
    } else {
        long long v = strtoll(buf, &e, 10);
        if (*e || errno == ERANGE) return CAIRN_JSON_TEXT_PLAIN;
        rc = msgpack_pack_int64(&t->pk, (int64_t)v);
    }
    t->p = q;
    return rc == 0 ? 0 : -1;
}

static bool jt_literal(jt_t *t, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(t->end - t->p) < n || memcmp(t->p, word, n) != 0) return false;
    t->p += n;
    return true;
}

/* A container's header with a 32-bit count, to be set when it closes. */
static int jt_open(jt_t *t, unsigned char tag, size_t *at)
{
    static const char room[5] = {0};
    *at = t->sb->size;
    return msgpack_sbuffer_write(t->sb, room, 5) == 0
               ? (t->sb->data[*at] = (char)tag, 0)
               : -1;
}

static void jt_close(jt_t *t, size_t at, uint32_t n)
{
    unsigned char *h = (unsigned char *)t->sb->data + at + 1;
    h[0] = (unsigned char)(n >> 24);
    h[1] = (unsigned char)(n >> 16);
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
}

static int jt_value(jt_t *t, int depth, bool marked);

static int jt_object(jt_t *t, int depth, bool marked)
{
    if (depth >= CAIRN_MSGPACK_MAX_DEPTH) return CAIRN_JSON_TEXT_PLAIN;
    size_t at;
    if (jt_open(t, 0xdf, &at) != 0) return -1;
    struct {
        const char *p;
        size_t n;
    } keys[JT_MAX_MEMBERS];
    uint32_t n = 0;
    t->p++;
    jt_ws(t);
    if (t->p < t->end && *t->p == '}') {
        t->p++;
        jt_close(t, at, 0);
        return 0;
    }
    for (;;) {
        const char *k;
        size_t kn;
        int rc;
        if (t->p >= t->end || *t->p != '"') return CAIRN_JSON_TEXT_PLAIN;
        if ((rc = jt_string(t, false, &k, &kn)) != 0) return rc;
        if (n == JT_MAX_MEMBERS || (kn && k[0] == '$')) return CAIRN_JSON_TEXT_PLAIN;
        for (uint32_t i = 0; i < n; i++)
            if (keys[i].n == kn && !memcmp(keys[i].p, k, kn))
                return CAIRN_JSON_TEXT_PLAIN;
        keys[n].p = k;
        keys[n++].n = kn;
        jt_ws(t);
        if (t->p >= t->end || *t->p != ':') return CAIRN_JSON_TEXT_PLAIN;
        t->p++;
        jt_ws(t);
        if (msgpack_pack_str_with_body(&t->pk, k, kn) != 0) return -1;
        if (t->p < t->end && *t->p == '"' && t->o && t->o->str_member) {
            const char *s;
            size_t sn;
            if ((rc = jt_string(t, true, &s, &sn)) != 0) return rc;
            rc = t->o->str_member(t->o->arg, k, kn, s, sn, marked, depth, &t->pk);
            if (rc == 0 && msgpack_pack_str_with_body(&t->pk, s, sn) != 0) return -1;
            if (rc < 0 || rc == CAIRN_JSON_TEXT_PLAIN) return rc;
        } else {
            bool m = marked || (t->o && t->o->mark && kn == t->mark_len &&
                                !memcmp(k, t->o->mark, kn));
            if ((rc = jt_value(t, depth + 1, m)) != 0) return rc;
        }
        jt_ws(t);
        if (t->p < t->end && *t->p == ',') {
            t->p++;
            jt_ws(t);
            continue;
        }
        if (t->p < t->end && *t->p == '}') {
            t->p++;
            jt_close(t, at, n);
            return 0;
        }
        return CAIRN_JSON_TEXT_PLAIN;
    }
}

static int jt_array(jt_t *t, int depth, bool marked)
{
    if (depth >= CAIRN_MSGPACK_MAX_DEPTH) return CAIRN_JSON_TEXT_PLAIN;
    size_t at;
    if (jt_open(t, 0xdd, &at) != 0) return -1;
    uint32_t n = 0;
    t->p++;
    jt_ws(t);
    if (t->p < t->end && *t->p == ']') {
        t->p++;
        jt_close(t, at, 0);
        return 0;
    }
    for (;;) {
        int rc = jt_value(t, depth + 1, marked);
        if (rc != 0) return rc;
        if (n == UINT32_MAX) return CAIRN_JSON_TEXT_PLAIN;
        n++;
        jt_ws(t);
        if (t->p < t->end && *t->p == ',') {
            t->p++;
            jt_ws(t);
            continue;
        }
        if (t->p < t->end && *t->p == ']') {
            t->p++;
            jt_close(t, at, n);
            return 0;
        }
        return CAIRN_JSON_TEXT_PLAIN;
    }
}

/* A value at p, inside depth arrays and objects. */
static int jt_value(jt_t *t, int depth, bool marked)
{
    if (t->p >= t->end) return CAIRN_JSON_TEXT_PLAIN;
    switch (*t->p) {
        case '{':
            return jt_object(t, depth, marked);
        case '[':
            return jt_array(t, depth, marked);
        case '"': {
            const char *s;
            size_t n;
            int rc = jt_string(t, true, &s, &n);
            if (rc != 0) return rc;
            return msgpack_pack_str_with_body(&t->pk, s, n) == 0 ? 0 : -1;
        }
        case 't':
            if (!jt_literal(t, "true")) return CAIRN_JSON_TEXT_PLAIN;
            return msgpack_pack_true(&t->pk) == 0 ? 0 : -1;
        case 'f':
            if (!jt_literal(t, "false")) return CAIRN_JSON_TEXT_PLAIN;
            return msgpack_pack_false(&t->pk) == 0 ? 0 : -1;
        case 'n':
            if (!jt_literal(t, "null")) return CAIRN_JSON_TEXT_PLAIN;
            return msgpack_pack_nil(&t->pk) == 0 ? 0 : -1;
        default:
            return jt_number(t);
    }
}

int cairn_json_text_pack(const char *text, size_t len, msgpack_sbuffer *sb,
                         const cairn_json_text_opts_t *opts)
{
    jt_t t = {.p = text, .end = text + len, .sb = sb, .o = opts};
    t.mark_len = opts && opts->mark ? strlen(opts->mark) : 0;
    msgpack_packer_init(&t.pk, sb, msgpack_sbuffer_write);
    size_t start = sb->size;
    jt_ws(&t);
    int rc =
        t.p < t.end && *t.p == '{' ? jt_object(&t, 0, false) : CAIRN_JSON_TEXT_PLAIN;
    if (rc == 0) {
        jt_ws(&t);
        if (t.p != t.end) rc = CAIRN_JSON_TEXT_PLAIN; /* more after the object */
    }
    free(t.scratch);
    if (rc != 0) sb->size = start;
    return rc;
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
    char *b64 = cairn_base64_encode((const unsigned char *)p, n);
    json_t *j = b64 ? s_tagged("$bin", json_string(b64)) : NULL;
    free(b64);
    return j;
}

static json_t *s_json_ext(const msgpack_object_ext *e)
{
    char *b64 = cairn_base64_encode((const unsigned char *)e->ptr, e->size);
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

/* Keys that are not strings become their JSON text, quoted; a key inside
 * such a key is quoted again, and each quoting doubles its backslashes:
 * past KEY_NEST_MAX levels, or KEY_TEXT_MAX bytes, a key is written as a
 * short sentence instead, so that no message can make the text grow
 * exponentially (fuzz_jsonwrite found one taking minutes). */
#define KEY_NEST_MAX 2
#define KEY_TEXT_MAX 4096
static _Thread_local int s_key_nest;

/* A map key as a JSON string: strings as they are, other keys as their JSON. */
static json_t *s_json_key(const msgpack_object *k)
{
    if (k->type != MSGPACK_OBJECT_STR && s_key_nest >= KEY_NEST_MAX)
        return json_string("(a key nested in a key)");
    s_key_nest++;
    json_t *j = s_to_json(k);
    s_key_nest--;
    if (!j || json_is_string(j)) return j;
    char *text = cairn_json_dumps_compact(j);
    json_decref(j);
    json_t *key = NULL;
    if (text && strlen(text) > KEY_TEXT_MAX) {
        char note[64];
        snprintf(note, sizeof note, "(a key of %zu bytes of JSON)", strlen(text));
        key = json_string(note);
    } else if (text) {
        key = json_string(text);
    }
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

json_t *cairn_json_from_msgpack(const msgpack_object *o)
{
    return s_to_json(o);
}

/* ---- JSON text ----------------------------------------------------------- */

/* jansson prints every real with one precision (17 digits by default, which
 * shows 0.1 as 0.10000000000000001). Use the least precision that still
 * reads back every real in j exactly and keeps %g from switching to an
 * exponent for integral values such as 100.0. */
static bool s_reads_back(double d, int digits)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.*g", digits, d);
    return strtod(buf, NULL) == d;
}

static int s_real_digits(double d)
{
    char buf[40];
    int digits = 1, e;
    if (d == 0 || frexp(d, &e) == 0.5 || frexp(d, &e) == -0.5) {
        /* A power of two: the doubles around it are not equally far, so
         * that more digits need not read back when fewer do; look at each. */
        for (; digits < 17; digits++)
            if (s_reads_back(d, digits)) break;
    } else {
        /* Elsewhere, digits that read back stay within half a gap of d, and
         * one more digit is no farther: the least is found by halving
         * (17 always reads back). */
        int hi = 17;
        while (digits < hi) {
            int mid = (digits + hi) / 2;
            if (s_reads_back(d, mid))
                hi = mid;
            else
                digits = mid + 1;
        }
    }
    snprintf(buf, sizeof buf, "%.*e", digits - 1, d);
    long exp10 = strtol(strchr(buf, 'e') + 1, NULL, 10);
    return exp10 >= digits && exp10 < 17 ? (int)exp10 + 1 : digits;
}

/* The digits d needs (s_real_digits), or, when it needs no more than p,
 * p: one %g pass at p (the reals of a reply, 20 metrics of a run, 2,000
 * of a search, mostly need as many digits as the first). Enough when p
 * digits read back exactly and |d| < 10^p: then the least digits are at
 * most p, and so is its exponent plus one. */
static int s_real_need(double d, int p)
{
    static const double pow10[] = {1e0, 1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,
                                   1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17};
    if (p >= 1 && p <= 17 && fabs(d) < pow10[p]) {
        char buf[40];
        snprintf(buf, sizeof buf, "%.*g", p, d);
        if (strtod(buf, NULL) == d) return p;
    }
    return s_real_digits(d);
}

/* The most digits a real of j needs, at least p. */
static int s_precision_at(const json_t *j, int p)
{
    size_t i;
    const char *k;
    const json_t *v;
    int q;
    switch (json_typeof(j)) {
        case JSON_REAL:
            q = s_real_need(json_real_value(j), p);
            return q > p ? q : p;
        case JSON_ARRAY:
            json_array_foreach(j, i, v) p = s_precision_at(v, p);
            return p;
        case JSON_OBJECT:
            json_object_foreach((json_t *)j, k, v) p = s_precision_at(v, p);
            return p;
        default:
            return p;
    }
}

static int s_precision(const json_t *j)
{
    return s_precision_at(j, 0);
}

static size_t s_dump_flags(const json_t *j, bool pretty)
{
    return JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT) |
           JSON_REAL_PRECISION(s_precision(j));
}

size_t cairn_json_dump_flags(const json_t *j, bool pretty)
{
    return s_dump_flags(j, pretty);
}

char *cairn_json_dumps_compact(const json_t *j)
{
    return json_dumps(j, s_dump_flags(j, false));
}

/* ---- msgpack straight to JSON text ------------------------------------- */

typedef struct jw {
    char *p;
    size_t n, cap;
    bool oom;
    int prec; /* the digits the last real needed (s_real_need's hint) */
    const cairn_json_write_opts_t *o;
} jw_t;

/* Room for n more bytes and the final NUL; false when out of memory. */
static bool jw_grow(jw_t *w, size_t n)
{
    if (w->oom) return false;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->n + n + 1) cap *= 2;
    char *p = realloc(w->p, cap);
    if (!p) {
        w->oom = true;
        return false;
    }
    w->p = p;
    w->cap = cap;
    return true;
}

/* The NUL is written once, at the end (cairn_json_write): this is called
 * for every token of a 200 KB reply. */
static inline void jw_put(jw_t *w, const char *s, size_t n)
{
    if (w->n + n + 1 > w->cap && !jw_grow(w, n)) return;
    if (n) memcpy(w->p + w->n, s, n);
    w->n += n;
}

/* An integer's decimal digits, without printf. */
static void jw_uint(jw_t *w, uint64_t v, bool neg)
{
    char buf[24];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg) buf[--i] = '-';
    jw_put(w, buf + i, sizeof buf - i);
}

static void jw_cstr(jw_t *w, const char *s)
{
    jw_put(w, s, strlen(s));
}

/* A JSON string of UTF-8 text s: '"', '\\' and control characters escaped
 * (as jansson does), the rest as it is. */
static void jw_text(jw_t *w, const char *s, size_t n)
{
    if (!s) s = "";
    jw_put(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jw_put(w, s + run, i - run);
        run = i + 1;
        char esc[8];
        const char *e = c == '"'    ? "\\\""
                        : c == '\\' ? "\\\\"
                        : c == '\n' ? "\\n"
                        : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t"
                        : c == '\b' ? "\\b"
                        : c == '\f' ? "\\f"
                                    : NULL;
        if (!e) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            e = esc;
        }
        jw_cstr(w, e);
    }
    jw_put(w, s + run, n - run);
    jw_put(w, "\"", 1);
}

/* {"$bin":"BASE64"}, or {"$ext":TYPE,"data":"BASE64"} for an ext. */
static void jw_b64(jw_t *w, const char *p, size_t n, bool ext, int type)
{
    char *b64 = cairn_base64_encode((const unsigned char *)p, n);
    if (!b64) {
        w->oom = true;
        return;
    }
    char head[32];
    if (ext)
        snprintf(head, sizeof head, "{\"$ext\":%d,\"data\":\"", type);
    else
        snprintf(head, sizeof head, "{\"$bin\":\"");
    jw_cstr(w, head);
    jw_cstr(w, b64);
    jw_cstr(w, "\"}");
    free(b64);
}

/* A real as jansson prints it with enough digits to read back exactly
 * ("1.5", "100.0", "1e+300"); NaN and the infinities as strings. */
static void jw_real(jw_t *w, double d, bool float32)
{
    char buf[40];
    if (isnan(d)) {
        jw_cstr(w, "\"NaN\"");
        return;
    }
    if (isinf(d)) {
        jw_cstr(w, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    if (float32) { /* its shortest decimal form (0.1f -> 0.1) */
        for (int digits = 1; digits <= 9; digits++) {
            snprintf(buf, sizeof buf, "%.*g", digits, d);
            if ((float)strtod(buf, NULL) == (float)d) break;
        }
        d = strtod(buf, NULL);
    }
    char fast[CAIRN_REALFMT_MAX];
    size_t n = cairn_real_shortest(d, fast);
    if (n) { /* most reals: no printf (realfmt.h) */
        jw_put(w, fast, n);
        return;
    }
    w->prec = s_real_need(d, w->prec);
    snprintf(buf, sizeof buf, "%.*g", w->prec, d);
    jw_cstr(w, buf);
    if (!strpbrk(buf, ".eE")) jw_cstr(w, ".0"); /* a real stays a real */
}

static void jw_value(jw_t *w, const msgpack_object *o, const char *key, size_t klen,
                     int depth);

/* A map key: a string as it is, anything else as its JSON text, quoted. */
static void jw_key(jw_t *w, const msgpack_object *k, int depth)
{
    if (k->type == MSGPACK_OBJECT_STR &&
        cairn_utf8_valid(k->via.str.ptr, k->via.str.size)) {
        jw_text(w, k->via.str.ptr, k->via.str.size);
        return;
    }
    (void)depth; /* rare: the tree's way, so that the key reads the same */
    json_t *j = s_json_key(k);
    if (!j) {
        w->oom = true;
        return;
    }
    jw_text(w, json_string_value(j), json_string_length(j));
    json_decref(j);
}

/* A str member: its text, or opts' rewrite of its prefix. */
static void jw_str(jw_t *w, const char *s, size_t n, const char *key, size_t klen)
{
    if (!s) s = ""; /* an empty str may come with no bytes at all */
    if (!cairn_utf8_valid(s, n)) {
        jw_b64(w, s, n, false, 0);
        return;
    }
    const cairn_json_write_opts_t *o = w->o;
    size_t fl = o && o->from ? strlen(o->from) : 0;
    if (fl && key && n >= fl && !memcmp(s, o->from, fl)) {
        for (const char *const *k = o->keys; k && *k; k++) {
            if (strlen(*k) != klen || memcmp(*k, key, klen) != 0) continue;
            size_t tl = strlen(o->to);
            char *t = malloc(tl + n - fl + 1);
            if (!t) {
                w->oom = true;
                return;
            }
            memcpy(t, o->to, tl);
            memcpy(t + tl, s + fl, n - fl);
            jw_text(w, t, tl + n - fl);
            free(t);
            return;
        }
    }
    jw_text(w, s, n);
}

static void jw_value(jw_t *w, const msgpack_object *o, const char *key, size_t klen,
                     int depth)
{
    if (depth > CAIRN_MSGPACK_MAX_DEPTH + 1) { /* past what cairnd reads */
        jw_cstr(w, "null");
        return;
    }
    switch (o->type) {
        case MSGPACK_OBJECT_NIL:
            jw_cstr(w, "null");
            return;
        case MSGPACK_OBJECT_BOOLEAN:
            jw_cstr(w, o->via.boolean ? "true" : "false");
            return;
        case MSGPACK_OBJECT_POSITIVE_INTEGER: {
            bool quoted = o->via.u64 > INT64_MAX; /* past what a JSON reader keeps */
            if (quoted) jw_put(w, "\"", 1);
            jw_uint(w, o->via.u64, false);
            if (quoted) jw_put(w, "\"", 1);
            return;
        }
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            jw_uint(w, 0 - (uint64_t)o->via.i64, true); /* INT64_MIN too */
            return;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            jw_real(w, o->via.f64, o->type == MSGPACK_OBJECT_FLOAT32);
            return;
        case MSGPACK_OBJECT_STR:
            jw_str(w, o->via.str.ptr, o->via.str.size, key, klen);
            return;
        case MSGPACK_OBJECT_BIN:
            jw_b64(w, o->via.bin.ptr, o->via.bin.size, false, 0);
            return;
        case MSGPACK_OBJECT_EXT:
            jw_b64(w, o->via.ext.ptr, o->via.ext.size, true, o->via.ext.type);
            return;
        case MSGPACK_OBJECT_ARRAY:
            jw_put(w, "[", 1);
            for (uint32_t i = 0; i < o->via.array.size; i++) {
                if (i) jw_put(w, ",", 1);
                jw_value(w, &o->via.array.ptr[i], NULL, 0, depth + 1);
            }
            jw_put(w, "]", 1);
            return;
        case MSGPACK_OBJECT_MAP: {
            bool skip_nil = w->o && w->o->skip_nil, first = true;
            jw_put(w, "{", 1);
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                const msgpack_object_kv *kv = &o->via.map.ptr[i];
                if (skip_nil && kv->val.type == MSGPACK_OBJECT_NIL) continue;
                if (!first) jw_put(w, ",", 1);
                first = false;
                jw_key(w, &kv->key, depth);
                jw_put(w, ":", 1);
                bool named = kv->key.type == MSGPACK_OBJECT_STR;
                jw_value(w, &kv->val, named ? kv->key.via.str.ptr : NULL,
                         named ? kv->key.via.str.size : 0, depth + 1);
            }
            jw_put(w, "}", 1);
            return;
        }
    }
    jw_cstr(w, "null");
}

/* ---- msgpack bytes straight to JSON text ------------------------------- */

/* The same text as jw_value, read from the bytes themselves: no check
 * pass, no unpacked tree. Anything rare (an ext, a key that is not a UTF-8
 * str, nesting past jw_value's depth) or malformed gives up (-1), and
 * cairn_json_write_bytes then takes the tree's way, which handles it. */
typedef struct {
    const unsigned char *p;
    size_t n, pos;
} rd_t;

/* The next n bytes, or NULL when fewer are left. */
static const unsigned char *rd_take(rd_t *r, size_t n)
{
    if (r->n - r->pos < n) return NULL;
    const unsigned char *q = r->p + r->pos;
    r->pos += n;
    return q;
}

/* A big-endian unsigned of n bytes (1, 2, 4, 8); false when cut short. */
static bool rd_be(rd_t *r, size_t n, uint64_t *v)
{
    const unsigned char *q = rd_take(r, n);
    if (!q) return false;
    *v = 0;
    for (size_t i = 0; i < n; i++) *v = *v << 8 | q[i];
    return true;
}

/* A str's bytes when the next item is one (its head taken), else false
 * with the position unchanged. */
static bool rd_str(rd_t *r, const char **s, size_t *n)
{
    if (r->pos >= r->n) return false;
    unsigned char c = r->p[r->pos];
    size_t head = c >= 0xa0 && c <= 0xbf ? 1
                  : c == 0xd9            ? 2
                  : c == 0xda            ? 3
                  : c == 0xdb            ? 5
                                         : 0;
    if (!head) return false;
    size_t at = r->pos;
    uint64_t len = c & 0x1f;
    r->pos++;
    const unsigned char *q = NULL;
    if ((head == 1 || rd_be(r, head - 1, &len)) && len == (size_t)len)
        q = rd_take(r, (size_t)len);
    if (!q) {
        r->pos = at;
        return false;
    }
    *s = (const char *)q;
    *n = (size_t)len;
    return true;
}

static int rw_value(jw_t *w, rd_t *r, const char *key, size_t klen, int depth);

/* A container as deep as msgpack-c's stack goes is refused by the shape
 * check (cairn_msgpack_check_shape), and so the tree's way writes {}. */
static int rw_array(jw_t *w, rd_t *r, uint64_t count, int depth)
{
    if (depth >= CAIRN_MSGPACK_MAX_DEPTH) return -1;
    jw_put(w, "[", 1);
    for (uint64_t i = 0; i < count; i++) {
        if (i) jw_put(w, ",", 1);
        if (rw_value(w, r, NULL, 0, depth + 1) != 0) return -1;
    }
    jw_put(w, "]", 1);
    return 0;
}

static int rw_map(jw_t *w, rd_t *r, uint64_t count, int depth)
{
    bool skip_nil = w->o && w->o->skip_nil, first = true;
    if (depth >= CAIRN_MSGPACK_MAX_DEPTH) return -1;
    jw_put(w, "{", 1);
    for (uint64_t i = 0; i < count; i++) {
        const char *k;
        size_t kn;
        if (!rd_str(r, &k, &kn) || !cairn_utf8_valid(k, kn)) return -1;
        if (r->pos >= r->n) return -1;
        if (skip_nil && r->p[r->pos] == 0xc0) {
            r->pos++;
            continue;
        }
        if (!first) jw_put(w, ",", 1);
        first = false;
        jw_text(w, k, kn);
        jw_put(w, ":", 1);
        if (rw_value(w, r, k, kn, depth + 1) != 0) return -1;
    }
    jw_put(w, "}", 1);
    return 0;
}

/* A float32 or float64 (c: 0xca or 0xcb). */
static int rw_real(jw_t *w, rd_t *r, unsigned char c)
{
    uint64_t v;
    if (!rd_be(r, c == 0xca ? 4 : 8, &v)) return -1;
    if (c == 0xca) {
        uint32_t b = (uint32_t)v;
        float f;
        memcpy(&f, &b, sizeof f);
        jw_real(w, (double)f, true);
    } else {
        double d;
        memcpy(&d, &v, sizeof d);
        jw_real(w, d, false);
    }
    return 0;
}

/* A signed integer of n bytes, as msgpack-c reads it (>= 0: positive). */
static int rw_int(jw_t *w, rd_t *r, size_t n)
{
    uint64_t v;
    if (!rd_be(r, n, &v)) return -1;
    int64_t i = n == 1   ? (int8_t)(uint8_t)v
                : n == 2 ? (int16_t)(uint16_t)v
                : n == 4 ? (int32_t)(uint32_t)v
                         : (int64_t)v;
    jw_uint(w, i < 0 ? 0 - (uint64_t)i : (uint64_t)i, i < 0);
    return 0;
}

static int rw_value(jw_t *w, rd_t *r, const char *key, size_t klen, int depth)
{
    const char *s;
    size_t n;
    uint64_t v;
    if (depth > CAIRN_MSGPACK_MAX_DEPTH || w->oom) return -1;
    if (rd_str(r, &s, &n)) {
        jw_str(w, s, n, key, klen);
        return 0;
    }
    const unsigned char *cp = rd_take(r, 1);
    if (!cp) return -1;
    unsigned char c = *cp;
    if (c <= 0x7f) {
        jw_uint(w, c, false);
        return 0;
    }
    if (c >= 0xe0) {
        jw_uint(w, (uint64_t)(0x100 - c), true);
        return 0;
    }
    if (c >= 0x80 && c <= 0x8f) return rw_map(w, r, c & 0x0f, depth);
    if (c >= 0x90 && c <= 0x9f) return rw_array(w, r, c & 0x0f, depth);
    switch (c) {
        case 0xc0:
            jw_put(w, "null", 4);
            return 0;
        case 0xc2:
        case 0xc3:
            jw_cstr(w, c == 0xc3 ? "true" : "false");
            return 0;
        case 0xc4:
        case 0xc5:
        case 0xc6: {
            const unsigned char *q;
            if (!rd_be(r, (size_t)1 << (c - 0xc4), &v) || !(q = rd_take(r, (size_t)v)))
                return -1;
            jw_b64(w, (const char *)q, (size_t)v, false, 0);
            return 0;
        }
        case 0xca:
        case 0xcb:
            return rw_real(w, r, c);
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            if (!rd_be(r, (size_t)1 << (c - 0xcc), &v)) return -1;
            if (v > INT64_MAX) jw_put(w, "\"", 1);
            jw_uint(w, v, false);
            if (v > INT64_MAX) jw_put(w, "\"", 1);
            return 0;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3:
            return rw_int(w, r, (size_t)1 << (c - 0xd0));
        case 0xdc:
        case 0xdd:
            if (!rd_be(r, c == 0xdc ? 2 : 4, &v)) return -1;
            return rw_array(w, r, v, depth);
        case 0xde:
        case 0xdf:
            if (!rd_be(r, c == 0xde ? 2 : 4, &v)) return -1;
            return rw_map(w, r, v, depth);
        default: /* ext, fixext, 0xc1 */
            return -1;
    }
}

char *cairn_json_write_bytes(const void *buf, size_t len,
                             const cairn_json_write_opts_t *opts, size_t *out_len)
{
    const unsigned char *b = buf;
    if (len && !(len == 1 && b[0] == 0xc0)) { /* nil: {} by the tree's way */
        jw_t w = {.o = opts};
        rd_t r = {buf, len, 0};
        if (rw_value(&w, &r, NULL, 0, 0) == 0 && r.pos == len && !w.oom &&
            (w.p || jw_grow(&w, 0))) {
            w.p[w.n] = '\0';
            if (out_len) *out_len = w.n;
            return w.p;
        }
        free(w.p);
    }
    /* the tree's way: what cairn_reply_object would give */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    size_t off = 0;
    if (len && (cairn_msgpack_check_shape(buf, len, NULL) != 0 ||
                msgpack_unpack(buf, len, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS))
        o.type = MSGPACK_OBJECT_NIL;
    char *text = cairn_json_write(&o, opts, out_len);
    msgpack_zone_destroy(&zone);
    return text;
}

char *cairn_json_write(const msgpack_object *o, const cairn_json_write_opts_t *opts,
                       size_t *len)
{
    jw_t w = {.o = opts};
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        jw_cstr(&w, "{}");
    else
        jw_value(&w, o, NULL, 0, 0);
    if (!w.oom && !w.p) jw_grow(&w, 0);
    if (!w.oom) w.p[w.n] = '\0';
    if (w.oom) {
        free(w.p);
        return NULL;
    }
    if (len) *len = w.n;
    return w.p;
}
