/* A YAML document as msgpack (yamlmp.h).
 *
 * libyaml's event parser, run twice over the text: msgpack writes a
 * container's size before its items, so the first pass counts the items of
 * every container (in the order they open) and checks the limits, and the
 * second packs. Nothing but the counts and one mapping's keys at a time is
 * held, whatever the document; both are bounded by CAIRN_YAML_MAX_NODES. */
#define _GNU_SOURCE
#include "yamlmp.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

typedef struct {
    const char *text;
    size_t len;
    uint32_t *counts; /* items of container i, in opening order */
    size_t ncont, cap;
    cairn_err_t *err;
} yconv_t;

static int s_bad(cairn_err_t *err, const yaml_mark_t *m, const char *what)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "YAML line %zu: %s", m->line + 1, what);
}

static int s_parse_error(cairn_err_t *err, const yaml_parser_t *p)
{
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "YAML line %zu: %s", p->problem_mark.line + 1,
                         p->problem ? p->problem : "not a YAML document");
}

/* ---- scalars -------------------------------------------------------------- */

static bool s_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

static bool s_digit_of(char c, int base)
{
    if (base == 16) return strchr("0123456789abcdefABCDEF", c) != NULL;
    return c >= '0' && c < (base == 8 ? '8' : ':');
}

static bool s_int(const char *s, size_t n, int64_t *out)
{
    char buf[72];
    if (!n || n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    const char *p = buf;
    bool neg = false;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
        if (neg || buf[0] == '+') return false; /* core schema: unsigned */
        base = p[1] == 'x' ? 16 : 8;
        p += 2;
    }
    if (!*p) return false;
    for (const char *q = p; *q; q++)
        if (!s_digit_of(*q, base)) return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(p, &end, base);
    if (errno || *end) return false;
    if (neg ? v > (unsigned long long)INT64_MAX + 1 : v > (unsigned long long)INT64_MAX)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool s_float(const char *s, size_t n, double *out)
{
    const char *p = s;
    size_t m = n;
    if (m && (*p == '+' || *p == '-')) p++, m--;
    if (s_is(p, m, ".inf")) {
        *out = s[0] == '-' ? -INFINITY : INFINITY;
        return true;
    }
    if (s_is(s, n, ".nan")) {
        *out = NAN;
        return true;
    }
    char buf[128];
    if (!m || n >= sizeof buf) return false;
    bool digit = false;
    for (size_t i = 0; i < m; i++) { /* digits, one '.', an exponent */
        char c = p[i];
        if (c >= '0' && c <= '9')
            digit = true;
        else if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-')
            return false;
    }
    if (!digit) return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    *out = strtod(buf, &end);
    return *end == '\0' && errno != ERANGE;
}

static void s_pack_scalar(msgpack_packer *pk, const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    int64_t i;
    double d;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, v, n);
    } else if (!n || s_is(v, n, "null") || s_is(v, n, "~"))
        msgpack_pack_nil(pk);
    else if (s_is(v, n, "true"))
        msgpack_pack_true(pk);
    else if (s_is(v, n, "false"))
        msgpack_pack_false(pk);
    else if (s_int(v, n, &i))
        msgpack_pack_int64(pk, i);
    else if (s_float(v, n, &d))
        msgpack_pack_double(pk, d);
    else {
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, v, n);
    }
}

/* ---- the two passes ------------------------------------------------------- */

typedef struct {
    size_t cont; /* its index in counts */
    bool mapping;
    uint32_t items; /* nodes seen (a mapping: keys and values) */
    /* pass 2, mappings: the keys seen, to refuse a duplicate */
    char **keys;
    size_t nkeys, kcap;
} frame_t;

static void s_frame_free(frame_t *f)
{
    for (size_t i = 0; i < f->nkeys; i++) free(f->keys[i]);
    free(f->keys);
    f->keys = NULL;
    f->nkeys = f->kcap = 0;
}

static int s_cmp_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A mapping's key (a scalar in key position): remember it. */
static int s_key(yconv_t *c, frame_t *f, const yaml_event_t *ev)
{
    if (f->nkeys == f->kcap) {
        size_t cap = f->kcap ? f->kcap * 2 : 8;
        char **k = realloc(f->keys, cap * sizeof *k);
        if (!k) return cairn_err_oom(c->err, NULL);
        f->keys = k;
        f->kcap = cap;
    }
    if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
        return s_bad(c->err, &ev->start_mark, "a key holds a NUL byte");
    f->keys[f->nkeys] =
        strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
    if (!f->keys[f->nkeys]) return cairn_err_oom(c->err, NULL);
    f->nkeys++;
    return 0;
}

static int s_keys_unique(yconv_t *c, frame_t *f, const yaml_mark_t *m)
{
    if (f->nkeys < 2) return 0; /* and keys may be NULL */
    qsort(f->keys, f->nkeys, sizeof *f->keys, s_cmp_keys);
    for (size_t i = 1; i < f->nkeys; i++)
        if (!strcmp(f->keys[i - 1], f->keys[i]))
            return s_bad(c->err, m, "a mapping holds the same key twice");
    return 0;
}

/* Checks that pass 1 makes of a node in a mapping's key position. */
static int s_key_check(yconv_t *c, const frame_t *top, const yaml_event_t *ev)
{
    if (!top || !top->mapping || top->items % 2) return 0;
    if (ev->type != YAML_SCALAR_EVENT)
        return s_bad(c->err, &ev->start_mark, "a mapping's key must be a string");
    return 0;
}

static int s_grow_counts(yconv_t *c)
{
    if (c->ncont < c->cap) return 0;
    size_t cap = c->cap ? c->cap * 2 : 64;
    uint32_t *n = realloc(c->counts, cap * sizeof *n);
    if (!n) return cairn_err_oom(c->err, NULL);
    c->counts = n;
    c->cap = cap;
    return 0;
}

/* One event of either pass. pk NULL: pass 1 (count, check). */
static int s_event(yconv_t *c, msgpack_packer *pk, frame_t *stack, size_t *depth,
                   size_t *nodes, size_t *cont, const yaml_event_t *ev)
{
    frame_t *top = *depth ? &stack[*depth - 1] : NULL;
    switch (ev->type) {
        case YAML_ALIAS_EVENT:
            return s_bad(c->err, &ev->start_mark, "aliases (*name) are not accepted");
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            const yaml_char_t *anchor =
                ev->type == YAML_SCALAR_EVENT           ? ev->data.scalar.anchor
                : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
                                                        : ev->data.mapping_start.anchor;
            if (anchor)
                return s_bad(c->err, &ev->start_mark,
                             "anchors (&name) are not accepted");
            if (++*nodes > CAIRN_YAML_MAX_NODES)
                return s_bad(c->err, &ev->start_mark,
                             "the document holds over 100000 nodes");
            if (!pk && s_key_check(c, top, ev) != 0) return -1;
            bool is_key = top && top->mapping && top->items % 2 == 0;
            if (top) top->items++;
            if (ev->type == YAML_SCALAR_EVENT) {
                if (pk && is_key && s_key(c, top, ev) != 0) return -1;
                if (pk) {
                    if (is_key) { /* keys are strings, whatever they look like */
                        msgpack_pack_str(pk, ev->data.scalar.length);
                        msgpack_pack_str_body(pk, ev->data.scalar.value,
                                              ev->data.scalar.length);
                    } else
                        s_pack_scalar(pk, ev);
                }
                return 0;
            }
            if (*depth >= CAIRN_YAML_MAX_DEPTH)
                return s_bad(c->err, &ev->start_mark,
                             "the document is nested over 24 deep");
            bool mapping = ev->type == YAML_MAPPING_START_EVENT;
            if (!pk) {
                if (s_grow_counts(c) != 0) return -1;
                c->counts[c->ncont] = 0;
                stack[(*depth)++] = (frame_t){.cont = c->ncont++, .mapping = mapping};
                return 0;
            }
            uint32_t n = c->counts[*cont];
            if (mapping)
                msgpack_pack_map(pk, n / 2);
            else
                msgpack_pack_array(pk, n);
            stack[(*depth)++] = (frame_t){.cont = (*cont)++, .mapping = mapping};
            return 0;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            int rc = 0;
            if (!pk)
                c->counts[top->cont] = top->items;
            else if (top->mapping)
                rc = s_keys_unique(c, top, &ev->start_mark);
            s_frame_free(top);
            (*depth)--;
            return rc;
        }
        default:
            return 0;
    }
}

/* One pass over the text: pass 1 when pk is NULL. */
static int s_pass(yconv_t *c, msgpack_packer *pk)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return cairn_err_oom(c->err, NULL);
    yaml_parser_set_input_string(&p, (const unsigned char *)c->text, c->len);
    frame_t stack[CAIRN_YAML_MAX_DEPTH];
    size_t depth = 0, nodes = 0, cont = 0, docs = 0;
    int rc = 0;
    bool done = false, any = false;
    while (rc == 0 && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = s_parse_error(c->err, &p);
            break;
        }
        if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            rc = s_bad(c->err, &ev.start_mark, "the text holds more than one document");
        else if (ev.type == YAML_STREAM_END_EVENT)
            done = true;
        else {
            if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
                ev.type == YAML_MAPPING_START_EVENT)
                any = true;
            rc = s_event(c, pk, stack, &depth, &nodes, &cont, &ev);
        }
        yaml_event_delete(&ev);
    }
    while (depth) s_frame_free(&stack[--depth]);
    yaml_parser_delete(&p);
    if (rc == 0 && pk && !any) msgpack_pack_nil(pk);
    return rc;
}

int cairn_yaml_to_msgpack(const char *text, size_t len, msgpack_sbuffer *sb,
                          cairn_err_t *err)
{
    if (len > CAIRN_YAML_MAX_BYTES)
        return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "a YAML document may be at most %u bytes; this one is %zu",
                             CAIRN_YAML_MAX_BYTES, len);
    yconv_t c = {.text = text, .len = len, .err = err};
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int rc = s_pass(&c, NULL);
    if (rc == 0) rc = s_pass(&c, &pk);
    free(c.counts);
    return rc;
}
