/* UBJSON to a jansson tree: the subset XGBoost writes (Booster.save_model
 * to .ubj), and the rest of draft 12 that costs nothing: optimized
 * containers ($ type, # count) for arrays and objects, no-op N, char C,
 * high-precision H (as a string). Outside input: every length is checked
 * against the bytes left, and nesting is bounded. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model_int.h"

#define UBJ_MAX_DEPTH 32

typedef struct ubj {
    const unsigned char *p, *end;
    cairn_err_t *err;
} ubj_t;

static int s_bad(ubj_t *u, const char *what)
{
    return cairn_err_set(u->err, CAIRN_ST_BAD_REQUEST, NULL,
                         "the UBJSON model is malformed: %s", what);
}

static int s_take(ubj_t *u, size_t n, const unsigned char **out)
{
    if ((size_t)(u->end - u->p) < n) return s_bad(u, "it ends early");
    *out = u->p;
    u->p += n;
    return 0;
}

static uint64_t s_be(const unsigned char *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | b[i];
    return v;
}

/* An integer of type t ('i', 'U', 'I', 'l', 'L'). */
static int s_int(ubj_t *u, int t, int64_t *v)
{
    const unsigned char *b = NULL;
    size_t n = t == 'i' || t == 'U' ? 1
               : t == 'I'           ? 2
               : t == 'l'           ? 4
               : t == 'L'           ? 8
                                    : 0;
    if (n == 0) return s_bad(u, "a length is not an integer");
    if (s_take(u, n, &b) != 0) return -1;
    uint64_t raw = s_be(b, n);
    if (t == 'U')
        *v = (int64_t)raw;
    else if (n == 1)
        *v = (int8_t)raw;
    else if (n == 2)
        *v = (int16_t)raw;
    else if (n == 4)
        *v = (int32_t)raw;
    else
        *v = (int64_t)raw;
    return 0;
}

static int s_marker(ubj_t *u, int *t)
{
    const unsigned char *b = NULL;
    if (s_take(u, 1, &b) != 0) return -1;
    *t = *b;
    return 0;
}

/* A length: an integer with its own marker, never negative. */
static int s_len(ubj_t *u, size_t *n)
{
    int t;
    int64_t v;
    if (s_marker(u, &t) != 0 || s_int(u, t, &v) != 0) return -1;
    /* every element takes a byte at least ($ types of none are refused) */
    if (v < 0 || (uint64_t)v > (uint64_t)(u->end - u->p))
        return s_bad(u, "a length is negative or past the end");
    *n = (size_t)v;
    return 0;
}

static json_t *s_value(ubj_t *u, int t, int depth);

static json_t *s_string(ubj_t *u)
{
    size_t n;
    const unsigned char *b = NULL;
    if (s_len(u, &n) != 0 || s_take(u, n, &b) != 0) return NULL;
    json_t *s = json_stringn((const char *)b, n);
    if (!s) s_bad(u, "a string is not UTF-8");
    return s;
}

static json_t *s_real(double d)
{
    if (!isfinite(d)) return json_null(); /* as model.c reads JSON's NaN */
    return json_real(d);
}

static json_t *s_scalar(ubj_t *u, int t)
{
    const unsigned char *b = NULL;
    int64_t v;
    switch (t) {
        case 'Z':
            return json_null();
        case 'T':
            return json_true();
        case 'F':
            return json_false();
        case 'i':
        case 'U':
        case 'I':
        case 'l':
        case 'L':
            if (s_int(u, t, &v) != 0) return NULL;
            return json_integer(v);
        case 'd': {
            if (s_take(u, 4, &b) != 0) return NULL;
            uint32_t bits = (uint32_t)s_be(b, 4);
            float f;
            memcpy(&f, &bits, sizeof f);
            return s_real(f);
        }
        case 'D': {
            if (s_take(u, 8, &b) != 0) return NULL;
            uint64_t bits = s_be(b, 8);
            double d;
            memcpy(&d, &bits, sizeof d);
            return s_real(d);
        }
        case 'C':
            if (s_take(u, 1, &b) != 0) return NULL;
            return json_stringn((const char *)b, 1);
        case 'S':
        case 'H':
            return s_string(u);
        default:
            s_bad(u, "an unknown type marker");
            return NULL;
    }
}

/* After '[' or '{': the optional $type and #count. *type 0: none;
 * *count SIZE_MAX: none (the container ends with its closing marker). */
static int s_header(ubj_t *u, int *type, size_t *count)
{
    *type = 0;
    *count = SIZE_MAX;
    if (u->p < u->end && *u->p == '$') {
        u->p++;
        if (s_marker(u, type) != 0) return -1;
        if (strchr("ZTFN[{", *type))
            return s_bad(u, "a $ type of no size or a container");
        if (u->p >= u->end || *u->p != '#')
            return s_bad(u, "a $ type without a # count");
    }
    if (u->p < u->end && *u->p == '#') {
        u->p++;
        if (s_len(u, count) != 0) return -1;
    }
    return 0;
}

/* The next value's marker, skipping no-ops; *t 0 at the closing marker
 * `close` of an uncounted container. */
static int s_next(ubj_t *u, int type, int close, int *t)
{
    if (type) {
        *t = type;
        return 0;
    }
    do {
        if (s_marker(u, t) != 0) return -1;
    } while (*t == 'N');
    if (*t == close) *t = 0;
    return 0;
}

static json_t *s_array(ubj_t *u, int depth)
{
    int type, t;
    size_t count;
    if (s_header(u, &type, &count) != 0) return NULL;
    json_t *a = json_array();
    for (size_t i = 0; a && i < count; i++) {
        if (s_next(u, type, count == SIZE_MAX ? ']' : -1, &t) != 0) break;
        if (t == 0) return a;
        json_t *v = s_value(u, t, depth + 1);
        if (!v) break;
        if (json_array_append_new(a, v) != 0) {
            cairn_err_oom(u->err, "reading a UBJSON model");
            break;
        }
        if (i + 1 == count) return a;
    }
    if (a && count == 0) return a;
    if (!a) cairn_err_oom(u->err, "reading a UBJSON model");
    json_decref(a);
    return NULL;
}

static json_t *s_object(ubj_t *u, int depth)
{
    int type, t;
    size_t count;
    if (s_header(u, &type, &count) != 0) return NULL;
    json_t *o = json_object();
    for (size_t i = 0; o && i < count; i++) {
        if (count == SIZE_MAX) { /* a key, or the closing '}' */
            while (u->p < u->end && *u->p == 'N') u->p++;
            if (u->p < u->end && *u->p == '}') {
                u->p++;
                return o;
            }
        }
        size_t n;
        const unsigned char *k = NULL;
        if (s_len(u, &n) != 0 || s_take(u, n, &k) != 0) break;
        if (s_next(u, type, -1, &t) != 0) break;
        json_t *v = s_value(u, t, depth + 1);
        char key[256];
        if (!v || n >= sizeof key || memchr(k, 0, n)) {
            if (v) s_bad(u, "an object key is too long or holds a NUL");
            json_decref(v);
            break;
        }
        memcpy(key, k, n);
        key[n] = '\0';
        if (json_object_set_new(o, key, v) != 0) {
            s_bad(u, "an object key is not UTF-8");
            break;
        }
        if (i + 1 == count) return o;
    }
    if (o && count == 0) return o;
    if (!o) cairn_err_oom(u->err, "reading a UBJSON model");
    json_decref(o);
    return NULL;
}

static json_t *s_value(ubj_t *u, int t, int depth)
{
    if (depth > UBJ_MAX_DEPTH) {
        s_bad(u, "it is nested too deep");
        return NULL;
    }
    if (t == '[') return s_array(u, depth);
    if (t == '{') return s_object(u, depth);
    return s_scalar(u, t);
}

json_t *scorer_ubj_parse(const unsigned char *p, size_t len, cairn_err_t *err)
{
    ubj_t u = {p, p + len, err};
    int t;
    if (err) err->st = 0;
    if (s_next(&u, 0, -1, &t) != 0) return NULL;
    json_t *v = s_value(&u, t, 0);
    if (!v && err && err->st == 0) /* jansson refused a value (a char not UTF-8) */
        s_bad(&u, "a value cannot be held (a string or char not UTF-8?)");
    if (v && u.p != u.end) {
        json_decref(v);
        s_bad(&u, "bytes follow its value");
        return NULL;
    }
    return v;
}
