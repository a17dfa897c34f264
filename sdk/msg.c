/* The CAIRN/1 header codec and msgpack field helpers. */
#define _POSIX_C_SOURCE 200809L
#include "cairn/msg.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool s_key_is(const msgpack_object *k, const char *name, size_t n)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

static int s_hdr_str(const msgpack_object *v, const char *key, size_t max,
                     cairn_str_t *out, cairn_err_t *err)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "header key '%s' must be a string", key);
    if (v->via.str.size > max)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "header key '%s' is %u bytes; at most %zu are accepted",
                             key, v->via.str.size, max);
    if (memchr(v->via.str.ptr, '\0', v->via.str.size))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "header key '%s' must not hold a NUL byte", key);
    out->ptr = v->via.str.ptr;
    out->len = v->via.str.size;
    return 0;
}

/* An unknown key is ignored, but still bounded: a short key whose value,
 * when a string, is short too. (Both are valid UTF-8: checked before.) */
static int s_hdr_extra(const msgpack_object *k, const msgpack_object *v,
                       cairn_err_t *err)
{
    if (k->via.str.size > CAIRN_HDR_KEY_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "a header key is %u bytes; keys are at most %d",
                             k->via.str.size, CAIRN_HDR_KEY_MAX);
    if (v->type == MSGPACK_OBJECT_STR && v->via.str.size > CAIRN_HDR_EXTRA_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "header key '%.*s' holds %u bytes; an unknown key's "
                             "string is at most %d",
                             (int)k->via.str.size, k->via.str.ptr, v->via.str.size,
                             CAIRN_HDR_EXTRA_MAX);
    return 0;
}

static uint64_t s_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* The size of one item's head and payload, and how many child items it
 * opens (for arrays and maps). -1 for a reserved byte. */
static bool s_is_container(unsigned char c)
{
    return (c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf);
}

static int s_item(const unsigned char *p, size_t left, uint64_t *skip,
                  uint64_t *children)
{
    unsigned char c = p[0];
    *children = 0;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return *skip = 1, 0;
    if (c >= 0x80 && c <= 0x8f) return *skip = 1, *children = 2u * (c & 0x0f), 0;
    if (c >= 0x90 && c <= 0x9f) return *skip = 1, *children = c & 0x0f, 0;
    if (c >= 0xa0 && c <= 0xbf) return *skip = 1u + (c & 0x1f), 0;
    static const signed char fixed[] = {
        /* c4..df: head bytes of the length (negative), or total size */
        -1, -2, -4,         /* bin8 bin16 bin32 */
        -1, -2, -4,         /* ext8 ext16 ext32 (+1 type byte) */
        5,  9,              /* float32 float64 */
        2,  3,  5,  9,      /* uint8..64 */
        2,  3,  5,  9,      /* int8..64 */
        3,  4,  6,  10, 18, /* fixext1..16 */
        -1, -2, -4,         /* str8 str16 str32 */
        -2, -4,             /* array16 array32 */
        -2, -4,             /* map16 map32 */
    };
    if (c < 0xc4) return -1; /* 0xc1 is never used */
    int f = fixed[c - 0xc4];
    if (f > 0) return *skip = (uint64_t)f, 0;
    int n = -f;
    if (left < (size_t)n + 1) return *skip = (uint64_t)n + 1, 0; /* truncated: caught */
    uint64_t v = s_be(p + 1, n);
    if (c >= 0xdc && c <= 0xdd) return *skip = 1u + n, *children = v, 0;
    if (c >= 0xde) return *skip = 1u + n, *children = 2 * v, 0;
    *skip = 1u + (uint64_t)n + v + (c >= 0xc7 && c <= 0xc9 ? 1 : 0);
    return 0;
}

size_t cairn_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        k = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k;
}

bool cairn_utf8_valid(const void *s, size_t n)
{
    const unsigned char *p = s;
    size_t i = 0;
    while (i < n) {
        uint64_t word; /* the common case: ASCII, eight bytes at a time */
        if (n - i >= 8 && (memcpy(&word, p + i, 8), !(word & 0x8080808080808080ull))) {
            i += 8;
            continue;
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = cairn_utf8_len(p + i, n - i);
        if (k == 0) return false;
        i += k;
    }
    return true;
}

/* The head size of a str item starting with c, or 0 when c is no str. */
static size_t s_str_head(unsigned char c)
{
    if (c >= 0xa0 && c <= 0xbf) return 1;
    if (c >= 0xd9 && c <= 0xdb) return 1u + (1u << (c - 0xd9));
    return 0;
}

static int s_check(const void *buf, size_t len, bool utf8, cairn_err_t *err)
{
    const unsigned char *p = buf;
    uint64_t stack[CAIRN_MSGPACK_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    stack[0] = 1;
    while (depth >= 0) {
        if (pos >= len)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "not valid msgpack: the value is cut short");
        uint64_t skip, children;
        if (s_item(p + pos, len - pos, &skip, &children) != 0)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "not valid msgpack: reserved byte 0xc1 at offset %zu",
                                 pos);
        if (skip > len - pos)
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "not valid msgpack: an item at offset %zu runs past the end", pos);
        bool container = s_is_container(p[pos]);
        size_t head = utf8 ? s_str_head(p[pos]) : 0;
        if (head && !cairn_utf8_valid(p + pos + head, (size_t)skip - head))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "a string at offset %zu is not valid UTF-8 (send "
                                 "bytes as msgpack bin)",
                                 pos);
        pos += (size_t)skip;
        stack[depth]--;
        /* msgpack-c counts every container, empty ones too, against its
         * stack of 32. */
        if (container && depth == CAIRN_MSGPACK_MAX_DEPTH)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "msgpack nested deeper than %d levels",
                                 CAIRN_MSGPACK_MAX_DEPTH);
        if (children) {
            if (children > len - pos)
                return cairn_err_set(
                    err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                    "not valid msgpack: a container at offset %zu declares "
                    "more items than there are bytes",
                    pos - (size_t)skip);
            stack[++depth] = children;
        }
        while (depth >= 0 && stack[depth] == 0) depth--;
    }
    if (pos != len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "not one msgpack value: %zu bytes follow it", len - pos);
    return 0;
}

int cairn_msgpack_check(const void *buf, size_t len, cairn_err_t *err)
{
    return s_check(buf, len, true, err);
}

int cairn_msgpack_check_shape(const void *buf, size_t len, cairn_err_t *err)
{
    return s_check(buf, len, false, err);
}

int cairn_hdr_decode(const void *buf, size_t len, msgpack_zone *zone, cairn_hdr_t *hdr,
                     cairn_err_t *err)
{
    memset(hdr, 0, sizeof *hdr);
    msgpack_object obj;
    size_t off = 0;
    cairn_err_t why;
    if (cairn_msgpack_check(buf, len, &why) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the header frame: %s", why.msg);
    msgpack_unpack_return rc = msgpack_unpack(buf, len, &off, zone, &obj);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the header frame is not one valid msgpack value");
    if (obj.type != MSGPACK_OBJECT_MAP)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the header frame must be a map");
    const msgpack_object_kv *kv = obj.via.map.ptr;
    /* Read the id first so that later errors can still echo it. */
    for (uint32_t i = 0; i < obj.via.map.size; i++) {
        if (!s_key_is(&kv[i].key, "id", 2)) continue;
        const msgpack_object *v = &kv[i].val;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            hdr->id_type = CAIRN_ID_UINT;
            hdr->id_uint = v->via.u64;
        } else if (v->type == MSGPACK_OBJECT_STR) {
            if (v->via.str.size > CAIRN_HDR_ID_MAX)
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                     "header key 'id' is %u bytes; at most %d are "
                                     "accepted",
                                     v->via.str.size, CAIRN_HDR_ID_MAX);
            hdr->id_type = CAIRN_ID_STR;
            hdr->id_str.ptr = v->via.str.ptr;
            hdr->id_str.len = v->via.str.size;
        } else if (v->type != MSGPACK_OBJECT_NIL) {
            return cairn_err_set(
                err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                "header key 'id' must be an unsigned integer or a string");
        }
    }
    if (obj.via.map.size > CAIRN_HDR_KEYS_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the header has %u keys; at most %d are accepted",
                             obj.via.map.size, CAIRN_HDR_KEYS_MAX);
    for (uint32_t i = 0; i < obj.via.map.size; i++) {
        const msgpack_object *k = &kv[i].key, *v = &kv[i].val;
        int r = 0;
        if (s_key_is(k, "svc", 3))
            r = s_hdr_str(v, "svc", CAIRN_HDR_NAME_MAX, &hdr->svc, err);
        else if (s_key_is(k, "verb", 4))
            r = s_hdr_str(v, "verb", CAIRN_HDR_NAME_MAX, &hdr->verb, err);
        else if (s_key_is(k, "tok", 3))
            r = s_hdr_str(v, "tok", CAIRN_HDR_TOK_MAX, &hdr->tok, err);
        else if (s_key_is(k, "ws", 2))
            r = s_hdr_str(v, "ws", CAIRN_HDR_NAME_MAX, &hdr->ws, err);
        else if (s_key_is(k, "cid", 3))
            r = s_hdr_str(v, "cid", CAIRN_HDR_CID_MAX, &hdr->cid, err);
        else if (s_key_is(k, "id", 2))
            continue; /* read above */
        else if (s_key_is(k, "ttl", 3)) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                     "header key 'ttl' must be an unsigned integer "
                                     "(milliseconds)");
            hdr->ttl = v->via.u64;
        } else if (k->type == MSGPACK_OBJECT_STR)
            r = s_hdr_extra(k, v, err);
        if (r) return r;
    }
    if (!hdr->svc.ptr || hdr->svc.len == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the header lacks 'svc'");
    if (!hdr->verb.ptr || hdr->verb.len == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the header lacks 'verb'");
    return 0;
}

void cairn_hdr_pack_reply(msgpack_packer *pk, const cairn_hdr_t *req, int st,
                          const char *code, const char *msg)
{
    bool failed = st >= CAIRN_ST_BAD_REQUEST;
    msgpack_pack_map(pk, failed ? 4 : 2);
    cairn_pack_cstr(pk, "id");
    if (req && req->id_type == CAIRN_ID_UINT)
        msgpack_pack_uint64(pk, req->id_uint);
    else if (req && req->id_type == CAIRN_ID_STR)
        cairn_pack_strn(pk, req->id_str.ptr, req->id_str.len);
    else
        msgpack_pack_nil(pk);
    cairn_pack_cstr(pk, "st");
    msgpack_pack_uint32(pk, (uint32_t)st);
    if (failed) {
        cairn_pack_kv_text(pk, "err", msg && *msg ? msg : "request failed");
        cairn_pack_kv_text(pk, "code",
                           code && *code ? code : cairn_err_default_code(st));
    }
}

void cairn_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void cairn_pack_cstr(msgpack_packer *pk, const char *s)
{
    cairn_pack_strn(pk, s, strlen(s));
}

void cairn_pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    cairn_pack_cstr(pk, k);
    cairn_pack_cstr(pk, v);
}

void cairn_pack_text(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    if (cairn_utf8_valid(s, n)) {
        cairn_pack_strn(pk, s, n);
        return;
    }
    msgpack_pack_str(pk, n); /* the same length: one '?' per bad byte */
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = cairn_utf8_len(u + i, n - i);
        if (k == 0) {
            msgpack_pack_str_body(pk, "?", 1);
            i++;
        } else {
            msgpack_pack_str_body(pk, s + i, k);
            i += k;
        }
    }
}

void cairn_pack_kv_text(msgpack_packer *pk, const char *k, const char *v)
{
    cairn_pack_cstr(pk, k);
    cairn_pack_text(pk, v);
}

const msgpack_object *cairn_obj_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (s_key_is(&map->via.map.ptr[i].key, key, n)) return &map->via.map.ptr[i].val;
    return NULL;
}

bool cairn_obj_is_str(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && s_key_is(o, s, strlen(s));
}

/* Shared prologue of the typed field getters: 1 = absent and optional. */
static int s_field(const msgpack_object *body, const char *key, bool required,
                   const msgpack_object **v, cairn_err_t *err)
{
    if (body && body->type != MSGPACK_OBJECT_MAP && body->type != MSGPACK_OBJECT_NIL)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the request body must be a map");
    *v = cairn_obj_get(body, key);
    if (*v && (*v)->type == MSGPACK_OBJECT_NIL) *v = NULL;
    if (*v) return 0;
    if (required)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field '%s' is required", key);
    return 1;
}

static int s_wrong_type(const char *key, const char *want, cairn_err_t *err)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "the field '%s' must be %s", key, want);
}

int cairn_field_str(const msgpack_object *body, const char *key, bool required,
                    size_t max_len, cairn_str_t *out, cairn_err_t *err)
{
    const msgpack_object *v;
    int r = s_field(body, key, required, &v, err);
    if (r) return r;
    if (v->type != MSGPACK_OBJECT_STR) return s_wrong_type(key, "a string", err);
    if (max_len && v->via.str.size > max_len)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the field '%s' is %u bytes long; the limit is %zu", key,
                             v->via.str.size, max_len);
    out->ptr = v->via.str.ptr;
    out->len = v->via.str.size;
    return 0;
}

int cairn_field_uint(const msgpack_object *body, const char *key, bool required,
                     uint64_t *out, cairn_err_t *err)
{
    const msgpack_object *v;
    int r = s_field(body, key, required, &v, err);
    if (r) return r;
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return s_wrong_type(key, "a non-negative integer", err);
    *out = v->via.u64;
    return 0;
}

int cairn_field_int(const msgpack_object *body, const char *key, bool required,
                    int64_t *out, cairn_err_t *err)
{
    const msgpack_object *v;
    int r = s_field(body, key, required, &v, err);
    if (r) return r;
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = v->via.i64;
    else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
        *out = (int64_t)v->via.u64;
    else
        return s_wrong_type(key, "an integer", err);
    return 0;
}

int cairn_field_double(const msgpack_object *body, const char *key, bool required,
                       double *out, cairn_err_t *err)
{
    const msgpack_object *v;
    int r = s_field(body, key, required, &v, err);
    if (r) return r;
    switch (v->type) {
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            *out = v->via.f64;
            return 0;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            *out = (double)v->via.u64;
            return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            *out = (double)v->via.i64;
            return 0;
        default:
            return s_wrong_type(key, "a number", err);
    }
}

int cairn_field_bool(const msgpack_object *body, const char *key, bool required,
                     bool *out, cairn_err_t *err)
{
    const msgpack_object *v;
    int r = s_field(body, key, required, &v, err);
    if (r) return r;
    if (v->type != MSGPACK_OBJECT_BOOLEAN) return s_wrong_type(key, "a boolean", err);
    *out = v->via.boolean;
    return 0;
}

int cairn_field_map(const msgpack_object *body, const char *key, bool required,
                    const msgpack_object **out, cairn_err_t *err)
{
    const msgpack_object *v;
    int r = s_field(body, key, required, &v, err);
    if (r) return r;
    if (v->type != MSGPACK_OBJECT_MAP) return s_wrong_type(key, "a map", err);
    *out = v;
    return 0;
}

int cairn_field_array(const msgpack_object *body, const char *key, bool required,
                      const msgpack_object **out, cairn_err_t *err)
{
    const msgpack_object *v;
    int r = s_field(body, key, required, &v, err);
    if (r) return r;
    if (v->type != MSGPACK_OBJECT_ARRAY) return s_wrong_type(key, "an array", err);
    *out = v;
    return 0;
}

char *cairn_str_dup(cairn_str_t s)
{
    char *p = malloc(s.len + 1);
    if (!p) return NULL;
    if (s.len) memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    return p;
}

bool cairn_str_eq(cairn_str_t s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

uint64_t cairn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t cairn_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
