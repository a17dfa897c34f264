/* The C SDK's tracking API (cairn/tracking.h): thin synchronous wrappers over
 * the tracking verbs, and a batch builder that packs log_batch bodies
 * directly, with no allocation per point.
 *
 * A batch keeps three growing buffers of packed entries: metric points,
 * params, tags. The metrics buffer starts with PREFIX_MAX reserved bytes; at
 * send time the body's head (the map header, run_id, "metrics" and the
 * array header, whose counts are only known then) is written right-aligned
 * into that reserve, the params and tags sections are appended after the
 * points, and the body goes out from the reserve's first used byte: the
 * points themselves are never copied again (the socket copies them once).
 *
 * Artifact transfers live in transfer.c. */
#define _POSIX_C_SOURCE 200809L
#include "cairn/tracking.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/msg.h"

#include "tracking_int.h"

/* fixmap + "run_id" + str8 header and the id + "metrics" + array32 header */
#define PREFIX_MAX (1 + 7 + 2 + CAIRN_MAX_RUN_ID + 8 + 5)
/* One packed point, key bytes aside (see s_pack_point). */
#define POINT_MAX_FIXED 64
/* Room kept for the body's head and the params/tags section headers. */
#define BODY_OVERHEAD (PREFIX_MAX + 2 * (1 + 7 + 5))

typedef struct buf {
    unsigned char *data;
    size_t len, cap;
} buf_t;

struct cairn_batch {
    char run_id[CAIRN_MAX_RUN_ID + 1];
    size_t run_len;
    buf_t m;    /* PREFIX_MAX reserved bytes, then packed points */
    buf_t p, t; /* packed params, packed tags */
    size_t nmetrics, nparams, ntags;
    bool failed;     /* an entry was refused since the last clear */
    cairn_err_t err; /* why */
};

/* ---- byte packing ---------------------------------------------------------------- */

static int s_reserve(buf_t *b, size_t more)
{
    if (b->cap - b->len >= more) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline unsigned char *s_be16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return p + 2;
}

static inline unsigned char *s_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return p + 4;
}

static inline unsigned char *s_be64(unsigned char *p, uint64_t v)
{
    p = s_be32(p, (uint32_t)(v >> 32));
    return s_be32(p, (uint32_t)v);
}

/* A msgpack string header (at most 5 bytes). */
static inline unsigned char *s_str_hdr(unsigned char *p, size_t n)
{
    if (n < 32) {
        *p++ = (unsigned char)(0xa0 | n);
    } else if (n < 256) {
        *p++ = 0xd9;
        *p++ = (unsigned char)n;
    } else if (n < 65536) {
        *p++ = 0xda;
        p = s_be16(p, (uint16_t)n);
    } else {
        *p++ = 0xdb;
        p = s_be32(p, (uint32_t)n);
    }
    return p;
}

static inline unsigned char *s_str(unsigned char *p, const char *s, size_t n)
{
    p = s_str_hdr(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* An integer in msgpack's shortest form (at most 9 bytes). */
static inline unsigned char *s_int(unsigned char *p, int64_t v)
{
    if (v >= 0) {
        uint64_t u = (uint64_t)v;
        if (u < 128) {
            *p++ = (unsigned char)u;
        } else if (u < 256) {
            *p++ = 0xcc;
            *p++ = (unsigned char)u;
        } else if (u < 65536) {
            *p++ = 0xcd;
            p = s_be16(p, (uint16_t)u);
        } else if (u <= UINT32_MAX) {
            *p++ = 0xce;
            p = s_be32(p, (uint32_t)u);
        } else {
            *p++ = 0xcf;
            p = s_be64(p, u);
        }
    } else if (v >= -32) {
        *p++ = (unsigned char)(int8_t)v;
    } else if (v >= INT8_MIN) {
        *p++ = 0xd0;
        *p++ = (unsigned char)(int8_t)v;
    } else if (v >= INT16_MIN) {
        *p++ = 0xd1;
        p = s_be16(p, (uint16_t)(int16_t)v);
    } else if (v >= INT32_MIN) {
        *p++ = 0xd2;
        p = s_be32(p, (uint32_t)(int32_t)v);
    } else {
        *p++ = 0xd3;
        p = s_be64(p, (uint64_t)v);
    }
    return p;
}

static inline unsigned char *s_double(unsigned char *p, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    *p++ = 0xcb;
    return s_be64(p, bits);
}

/* An array header (at most 5 bytes). */
static unsigned char *s_array_hdr(unsigned char *p, size_t n)
{
    if (n < 16) {
        *p++ = (unsigned char)(0x90 | n);
    } else if (n < 65536) {
        *p++ = 0xdc;
        p = s_be16(p, (uint16_t)n);
    } else {
        *p++ = 0xdd;
        p = s_be32(p, (uint32_t)n);
    }
    return p;
}

#define LIT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

/* ---- checks ---------------------------------------------------------------------- */

int trk_check_str(const char *s, const char *what, size_t max, bool nonempty,
                  size_t *len, cairn_err_t *err)
{
    if (!s)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must not be NULL", what);
    size_t n = strlen(s);
    if (nonempty && n == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s must not be empty", what);
    if (max && n > max)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "%s '%.40s...' is %zu bytes; the limit is %zu bytes", what,
                             s, n, max);
    if (len) *len = n;
    return 0;
}

int trk_oom(cairn_err_t *err)
{
    return cairn_err_oom(err, NULL);
}

static int s_check_key(const char *key, size_t *len, cairn_err_t *err)
{
    return trk_check_str(key, "the key", CAIRN_MAX_KEY, true, len, err);
}

int trk_check_run_id(const char *run_id, size_t *len, cairn_err_t *err)
{
    return trk_check_str(run_id, "run_id", CAIRN_MAX_RUN_ID, true, len, err);
}

/* ---- synchronous calls ----------------------------------------------------------- */

typedef struct call {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} call_t;

static msgpack_packer *s_call_begin(call_t *c)
{
    msgpack_sbuffer_init(&c->sb);
    msgpack_packer_init(&c->pk, &c->sb, msgpack_sbuffer_write);
    return &c->pk;
}

/* Send the packed body; *reply (when not NULL) receives a 2xx reply. */
static void s_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* $env as a positive number of seconds, in ms; dflt when unset or not that. */
uint64_t trk_env_ms(const char *env, uint64_t dflt)
{
    const char *v = getenv(env);
    if (!v || !*v) return dflt;
    char *end;
    errno = 0;
    double s = strtod(v, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (errno || end == v || *end || !(s > 0) || s > 1e9) /* !(s > 0): NaN too */
        return dflt;
    uint64_t ms = (uint64_t)(s * 1000.0);
    return ms ? ms : 1;
}

void trk_retry_start(retry_t *rt, uint64_t budget_ms)
{
    *rt =
        (retry_t){.t0 = cairn_now_ms(), .budget_ms = budget_ms, .wait = BACKOFF_MIN_MS};
}

/* A failed try that may be tried again (err says why it failed): 0 once it
 * is time to, after 50 ms, then twice as long each time up to 2 s; -1 when
 * the next wait would go past rt->budget_ms, and then err says that it gave
 * up on what, after how many tries and how long, what usually causes it
 * (cause), and why (keeping err's status and code; the CLI shows a
 * sentence that begins "gave up" rather than its own). */
int trk_retry_backoff(retry_t *rt, const char *what, const char *cause,
                      cairn_err_t *err)
{
    uint64_t spent = cairn_now_ms() - rt->t0;
    if (spent + rt->wait > rt->budget_ms) {
        char why[CAIRN_ERR_MSG_MAX], code[CAIRN_ERR_CODE_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        snprintf(code, sizeof code, "%s", err->code);
        return cairn_err_set(err, err->st, code,
                             "gave up on %s after %u tries in %" PRIu64 " s (%s): %s",
                             what, rt->tries + 1, spent / 1000, cause, why);
    }
    s_sleep_ms(rt->wait);
    rt->wait = rt->wait * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rt->wait * 2;
    rt->tries++;
    return 0;
}

#define LOG_RETRY_MS 60000 /* the longest a refused-undelivered call is resent */
#define LOG_RETRY_ENV "CAIRN_LOG_RETRY_S"

/* A tracking call, sent again while the kernel refuses it as undelivered
 * (trk_retry_backoff, for up to $CAIRN_LOG_RETRY_S, 60 s), as the Python SDK
 * does. Any other failure may have been stored: returned as is. */
static int s_call_tracking(cairn_client_t *client, const char *verb, const void *body,
                           size_t len, cairn_reply_t **r, cairn_err_t *err)
{
    retry_t rt;
    trk_retry_start(&rt, trk_env_ms(LOG_RETRY_ENV, LOG_RETRY_MS));
    for (;;) {
        *r = NULL;
        if (cairn_client_call(client, CAIRN_TRACKING_SVC, verb, body, len, 0, r, err) ==
            0)
            return 0;
        if (!cairn_reply_undelivered(*r)) return -1; /* maybe stored: the caller's */
        cairn_reply_destroy(r);
        char what[64];
        snprintf(what, sizeof what, "tracking.%s", verb);
        if (trk_retry_backoff(&rt, what, "$" LOG_RETRY_ENV, err) != 0) return -1;
    }
}

static int s_call_end(cairn_client_t *client, call_t *c, const char *verb,
                      cairn_reply_t **reply, cairn_err_t *err)
{
    cairn_reply_t *r = NULL;
    cairn_err_t local = {0};
    if (!err) err = &local; /* the retry reads the refusal's code and sentence */
    int rc = s_call_tracking(client, verb, c->sb.data, c->sb.size, &r, err);
    msgpack_sbuffer_destroy(&c->sb);
    if (rc == 0 && reply)
        *reply = r;
    else
        cairn_reply_destroy(&r);
    return rc;
}

/* A heap copy of the string at body.k1.k2... (NULL-terminated path). */
static int s_reply_str(cairn_reply_t *r, const char *const *path, char **out,
                       cairn_err_t *err)
{
    const msgpack_object *o = cairn_reply_object(r);
    for (; o && *path; path++) o = cairn_obj_get(o, *path);
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_BAD_REPLY,
                             "the tracking service's reply lacks the string '%s'",
                             path[-1] ? path[-1] : "?");
    *out = cairn_str_dup((cairn_str_t){o->via.str.ptr, o->via.str.size});
    if (!*out) return cairn_err_oom(err, NULL);
    return 0;
}

int trk_check_client(const cairn_client_t *client, cairn_err_t *err)
{
    return client ? 0
                  : cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                  "the client is NULL");
}

int cairn_create_experiment(cairn_client_t *client, const char *name,
                            char **experiment_id, cairn_err_t *err)
{
    if (trk_check_client(client, err) != 0 ||
        trk_check_str(name, "the experiment name", CAIRN_MAX_NAME, true, NULL, err) !=
            0)
        return -1;
    if (!experiment_id)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "experiment_id must not be NULL");
    *experiment_id = NULL;
    call_t c;
    msgpack_packer *pk = s_call_begin(&c);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "name", name);
    cairn_reply_t *r = NULL;
    if (s_call_end(client, &c, "create_experiment", &r, err) != 0) return -1;
    static const char *const path[] = {"experiment_id", NULL};
    int rc = s_reply_str(r, path, experiment_id, err);
    cairn_reply_destroy(&r);
    return rc;
}

int cairn_get_experiment_id(cairn_client_t *client, const char *name,
                            bool create_if_missing, char **experiment_id,
                            cairn_err_t *err)
{
    if (trk_check_client(client, err) != 0 ||
        trk_check_str(name, "the experiment name", CAIRN_MAX_NAME, true, NULL, err) !=
            0)
        return -1;
    if (!experiment_id)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "experiment_id must not be NULL");
    *experiment_id = NULL;
    static const char *const path[] = {"experiment", "experiment_id", NULL};
    /* Look up; create when missing; after losing a creation race, look up
     * again. */
    for (int attempt = 0; attempt < 2; attempt++) {
        call_t c;
        msgpack_packer *pk = s_call_begin(&c);
        msgpack_pack_map(pk, 1);
        cairn_pack_kv_str(pk, "experiment_name", name);
        cairn_reply_t *r = NULL;
        cairn_err_t e = {0};
        if (s_call_end(client, &c, "get_experiment_by_name", &r, &e) == 0) {
            int rc = s_reply_str(r, path, experiment_id, err);
            cairn_reply_destroy(&r);
            return rc;
        }
        if (e.st != CAIRN_ST_NOT_FOUND || !create_if_missing || attempt > 0) {
            if (err) *err = e;
            return -1;
        }
        if (cairn_create_experiment(client, name, experiment_id, &e) == 0) return 0;
        if (e.st != CAIRN_ST_CONFLICT) {
            if (err) *err = e;
            return -1;
        }
    }
    return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "unreachable");
}

int cairn_create_run(cairn_client_t *client, const char *experiment_id,
                     const char *run_name, const char *parent_run_id, char **run_id,
                     cairn_err_t *err)
{
    if (trk_check_client(client, err) != 0 ||
        trk_check_str(experiment_id, "experiment_id", 32, true, NULL, err) != 0 ||
        (run_name && trk_check_str(run_name, "the run name", CAIRN_MAX_NAME, false,
                                   NULL, err) != 0) ||
        (parent_run_id && trk_check_run_id(parent_run_id, NULL, err) != 0))
        return -1;
    if (!run_id)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "run_id must not be NULL");
    *run_id = NULL;
    call_t c;
    msgpack_packer *pk = s_call_begin(&c);
    msgpack_pack_map(pk, 1 + (run_name ? 1 : 0) + (parent_run_id ? 1 : 0));
    cairn_pack_kv_str(pk, "experiment_id", experiment_id);
    if (run_name) cairn_pack_kv_str(pk, "run_name", run_name);
    if (parent_run_id) cairn_pack_kv_str(pk, "parent_run_id", parent_run_id);
    cairn_reply_t *r = NULL;
    if (s_call_end(client, &c, "create_run", &r, err) != 0) return -1;
    static const char *const path[] = {"run", "info", "run_id", NULL};
    int rc = s_reply_str(r, path, run_id, err);
    cairn_reply_destroy(&r);
    return rc;
}

/* A job's run ($CAIRN_RUN_ID): it must exist, so that a wrong variable
 * fails here and not at the first metric. */
static int s_attach_run(cairn_client_t *client, const char *env_run, char **run_id,
                        cairn_err_t *err)
{
    if (trk_check_run_id(env_run, NULL, err) != 0) {
        char why[CAIRN_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "$CAIRN_RUN_ID: %s", why);
    }
    call_t c;
    msgpack_packer *pk = s_call_begin(&c);
    msgpack_pack_map(pk, 1);
    cairn_pack_kv_str(pk, "run_id", env_run);
    cairn_err_t e = {0};
    if (s_call_end(client, &c, "get_run", NULL, &e) != 0)
        return cairn_err_set(err, e.st, e.code, "$CAIRN_RUN_ID names run '%s': %s",
                             env_run, e.msg);
    if (!(*run_id = strdup(env_run))) return trk_oom(err);
    return 0;
}

int cairn_start_run(cairn_client_t *client, const char *experiment,
                    const char *run_name, char **run_id, bool *attached,
                    cairn_err_t *err)
{
    if (trk_check_client(client, err) != 0) return -1;
    if (!run_id)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "run_id must not be NULL");
    *run_id = NULL;
    if (attached) *attached = false;
    const char *env_run = getenv("CAIRN_RUN_ID");
    if (env_run && *env_run) {
        if (s_attach_run(client, env_run, run_id, err) != 0) return -1;
        if (attached) *attached = true;
        return 0;
    }
    if (!experiment) experiment = getenv("CAIRN_EXPERIMENT_NAME");
    if (!experiment || !*experiment) experiment = "Default";
    char *experiment_id = NULL;
    if (cairn_get_experiment_id(client, experiment, true, &experiment_id, err) != 0)
        return -1;
    int rc = cairn_create_run(client, experiment_id, run_name, NULL, run_id, err);
    free(experiment_id);
    return rc;
}

int cairn_end_run(cairn_client_t *client, const char *run_id, const char *status,
                  cairn_err_t *err)
{
    if (trk_check_client(client, err) != 0 ||
        trk_check_run_id(run_id, NULL, err) != 0 ||
        (status && trk_check_str(status, "the status", 16, true, NULL, err) != 0))
        return -1;
    call_t c;
    msgpack_packer *pk = s_call_begin(&c);
    msgpack_pack_map(pk, 3);
    cairn_pack_kv_str(pk, "run_id", run_id);
    cairn_pack_kv_str(pk, "status", status ? status : "FINISHED");
    cairn_pack_cstr(pk, "end_time");
    msgpack_pack_int64(pk, (int64_t)cairn_wall_ms());
    return s_call_end(client, &c, "update_run", NULL, err);
}

int cairn_log_metric(cairn_client_t *client, const char *run_id, const char *key,
                     double value, int64_t step, int64_t timestamp_ms, cairn_err_t *err)
{
    if (trk_check_client(client, err) != 0 ||
        trk_check_run_id(run_id, NULL, err) != 0 || s_check_key(key, NULL, err) != 0)
        return -1;
    call_t c;
    msgpack_packer *pk = s_call_begin(&c);
    msgpack_pack_map(pk, 5);
    cairn_pack_kv_str(pk, "run_id", run_id);
    cairn_pack_kv_str(pk, "key", key);
    cairn_pack_cstr(pk, "value");
    msgpack_pack_double(pk, value);
    cairn_pack_cstr(pk, "timestamp");
    msgpack_pack_int64(pk, timestamp_ms ? timestamp_ms : (int64_t)cairn_wall_ms());
    cairn_pack_cstr(pk, "step");
    msgpack_pack_int64(pk, step);
    return s_call_end(client, &c, "log_metric", NULL, err);
}

static int s_log_kv(cairn_client_t *client, const char *verb, const char *run_id,
                    const char *key, const char *value, size_t max_value,
                    cairn_err_t *err)
{
    if (trk_check_client(client, err) != 0 ||
        trk_check_run_id(run_id, NULL, err) != 0 || s_check_key(key, NULL, err) != 0 ||
        trk_check_str(value, "the value", max_value, false, NULL, err) != 0)
        return -1;
    call_t c;
    msgpack_packer *pk = s_call_begin(&c);
    msgpack_pack_map(pk, 3);
    cairn_pack_kv_str(pk, "run_id", run_id);
    cairn_pack_kv_str(pk, "key", key);
    cairn_pack_kv_str(pk, "value", value);
    return s_call_end(client, &c, verb, NULL, err);
}

int cairn_log_param(cairn_client_t *client, const char *run_id, const char *key,
                    const char *value, cairn_err_t *err)
{
    return s_log_kv(client, "log_param", run_id, key, value, CAIRN_MAX_PARAM_VALUE,
                    err);
}

int cairn_set_tag(cairn_client_t *client, const char *run_id, const char *key,
                  const char *value, cairn_err_t *err)
{
    return s_log_kv(client, "set_tag", run_id, key, value, CAIRN_MAX_TAG_VALUE, err);
}

/* ---- the batch builder ----------------------------------------------------------- */

cairn_batch_t *cairn_batch_new(const char *run_id)
{
    cairn_batch_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    if (cairn_batch_set_run(b, run_id) != 0 || s_reserve(&b->m, 64 * 1024) != 0) {
        cairn_batch_destroy(&b);
        return NULL;
    }
    b->m.len = PREFIX_MAX;
    return b;
}

void cairn_batch_destroy(cairn_batch_t **self_p)
{
    if (!self_p || !*self_p) return;
    cairn_batch_t *b = *self_p;
    free(b->m.data);
    free(b->p.data);
    free(b->t.data);
    free(b);
    *self_p = NULL;
}

int cairn_batch_set_run(cairn_batch_t *b, const char *run_id)
{
    size_t n = 0;
    if (!b || trk_check_run_id(run_id, &n, NULL) != 0) return -1;
    memcpy(b->run_id, run_id, n + 1);
    b->run_len = n;
    return 0;
}

void cairn_batch_clear(cairn_batch_t *b)
{
    if (!b) return;
    b->m.len = PREFIX_MAX;
    b->p.len = b->t.len = 0;
    b->nmetrics = b->nparams = b->ntags = 0;
    b->failed = false;
    cairn_err_clear(&b->err);
}

size_t cairn_batch_size(const cairn_batch_t *b)
{
    return b ? b->nmetrics + b->nparams + b->ntags : 0;
}

size_t cairn_batch_metrics(const cairn_batch_t *b)
{
    return b ? b->nmetrics : 0;
}

const cairn_err_t *cairn_batch_error(const cairn_batch_t *b)
{
    return b && b->failed ? &b->err : NULL;
}

/* Refuse an entry: the batch keeps the first refusal. */
static int s_refuse(cairn_batch_t *b, int st, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_refuse(cairn_batch_t *b, int st, const char *code, const char *fmt, ...)
{
    if (!b->failed) {
        va_list ap;
        va_start(ap, fmt);
        cairn_err_vset(&b->err, st, code, fmt, ap);
        va_end(ap);
        b->failed = true;
    }
    return -1;
}

/* Bytes the body would have with `more` more entry bytes. */
static size_t s_body_bytes(const cairn_batch_t *b, size_t more)
{
    return b->m.len - PREFIX_MAX + b->p.len + b->t.len + BODY_OVERHEAD + more;
}

static int s_check_entry_key(cairn_batch_t *b, const char *what, size_t index,
                             const char *key, size_t *len)
{
    cairn_err_t e;
    if (s_check_key(key, len, &e) == 0) return 0;
    return s_refuse(b, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST, "%s[%zu]: %s", what,
                    index, e.msg);
}

int cairn_batch_metric(cairn_batch_t *b, const char *key, double value, int64_t step,
                       int64_t timestamp_ms)
{
    if (!b) return -1;
    size_t klen;
    if (b->nmetrics >= CAIRN_BATCH_MAX_POINTS)
        return s_refuse(b, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                        "a batch holds at most %d metric points: point %zu was refused "
                        "(send the batch before adding more)",
                        CAIRN_BATCH_MAX_POINTS, b->nmetrics + 1);
    if (s_check_entry_key(b, "metrics", b->nmetrics, key, &klen) != 0) return -1;
    size_t need = POINT_MAX_FIXED + klen;
    if (s_body_bytes(b, need) > CAIRN_BATCH_MAX_BYTES)
        return s_refuse(b, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                        "a batch body is at most %u bytes (the kernel's frame limit)",
                        CAIRN_BATCH_MAX_BYTES);
    if (s_reserve(&b->m, need) != 0)
        return s_refuse(b, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY, "out of memory");
    if (timestamp_ms == 0) timestamp_ms = (int64_t)cairn_wall_ms();
    /* {"key": K, "value": f64, "timestamp": int, "step": int}: at most
     * 1+4+(2+K)+6+9+10+9+5+9 = 55+K bytes. */
    unsigned char *p = b->m.data + b->m.len;
    *p++ = 0x84;
    p = LIT(p, "\xa3key");
    p = s_str(p, key, klen);
    p = LIT(p, "\xa5value");
    p = s_double(p, value);
    p = LIT(p, "\xa9timestamp");
    p = s_int(p, timestamp_ms);
    p = LIT(p, "\xa4step");
    p = s_int(p, step);
    b->m.len = (size_t)(p - b->m.data);
    b->nmetrics++;
    return 0;
}

static int s_batch_kv(cairn_batch_t *b, buf_t *buf, size_t *count, const char *what,
                      size_t max_count, size_t max_value, const char *key,
                      const char *value)
{
    if (!b) return -1;
    size_t klen, vlen;
    if (*count >= max_count)
        return s_refuse(b, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                        "a batch holds at most %zu %s: entry %zu was refused (send the "
                        "batch before adding more)",
                        max_count, what, *count + 1);
    if (s_check_entry_key(b, what, *count, key, &klen) != 0) return -1;
    cairn_err_t e;
    if (trk_check_str(value, "the value", max_value, false, &vlen, &e) != 0)
        return s_refuse(b, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                        "%s[%zu] '%.40s': %s", what, *count, key, e.msg);
    size_t need = 1 + 4 + 5 + klen + 6 + 5 + vlen;
    if (s_body_bytes(b, need) > CAIRN_BATCH_MAX_BYTES)
        return s_refuse(b, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                        "a batch body is at most %u bytes (the kernel's frame limit)",
                        CAIRN_BATCH_MAX_BYTES);
    if (s_reserve(buf, need) != 0)
        return s_refuse(b, CAIRN_ST_INTERNAL, CAIRN_E_OUT_OF_MEMORY, "out of memory");
    unsigned char *p = buf->data + buf->len;
    *p++ = 0x82;
    p = LIT(p, "\xa3key");
    p = s_str(p, key, klen);
    p = LIT(p, "\xa5value");
    p = s_str(p, value, vlen);
    buf->len = (size_t)(p - buf->data);
    (*count)++;
    return 0;
}

int cairn_batch_param(cairn_batch_t *b, const char *key, const char *value)
{
    return b ? s_batch_kv(b, &b->p, &b->nparams, "params", CAIRN_BATCH_MAX_PARAMS,
                          CAIRN_MAX_PARAM_VALUE, key, value)
             : -1;
}

int cairn_batch_tag(cairn_batch_t *b, const char *key, const char *value)
{
    return b ? s_batch_kv(b, &b->t, &b->ntags, "tags", CAIRN_BATCH_MAX_TAGS,
                          CAIRN_MAX_TAG_VALUE, key, value)
             : -1;
}

/* Finish the body in b->m: the head into the reserve, params and tags after
 * the points. The body and its length point into b->m. */
static int s_finish(cairn_batch_t *b, const unsigned char **body, size_t *len,
                    cairn_err_t *err)
{
    size_t extra =
        (b->nparams ? 1 + 6 + 5 + b->p.len : 0) + (b->ntags ? 1 + 4 + 5 + b->t.len : 0);
    if (s_reserve(&b->m, extra) != 0) return cairn_err_oom(err, NULL);
    unsigned char *p = b->m.data + b->m.len;
    if (b->nparams) {
        p = LIT(p, "\xa6params");
        p = s_array_hdr(p, b->nparams);
        memcpy(p, b->p.data, b->p.len);
        p += b->p.len;
    }
    if (b->ntags) {
        p = LIT(p, "\xa4tags");
        p = s_array_hdr(p, b->ntags);
        memcpy(p, b->t.data, b->t.len);
        p += b->t.len;
    }
    size_t end = (size_t)(p - b->m.data);
    unsigned char head[PREFIX_MAX], *h = head;
    *h++ = (unsigned char)(0x80 |
                           (1 + (b->nmetrics > 0) + (b->nparams > 0) + (b->ntags > 0)));
    h = LIT(h, "\xa6run_id");
    h = s_str(h, b->run_id, b->run_len);
    if (b->nmetrics) {
        h = LIT(h, "\xa7metrics");
        h = s_array_hdr(h, b->nmetrics);
    }
    size_t hlen = (size_t)(h - head);
    memcpy(b->m.data + PREFIX_MAX - hlen, head, hlen);
    *body = b->m.data + PREFIX_MAX - hlen;
    *len = end - (PREFIX_MAX - hlen);
    return 0;
}

/* Checks before sending; 1 when there is nothing to send. */
static int s_pre_send(cairn_client_t *client, cairn_batch_t *b, cairn_err_t *err)
{
    if (!client || !b)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the client or the batch is NULL");
    if (b->failed) {
        if (err) *err = b->err;
        cairn_batch_clear(b);
        return -1;
    }
    return cairn_batch_size(b) == 0 ? 1 : 0;
}

static int s_batch_call(cairn_client_t *client, const void *body, size_t len,
                        cairn_err_t *err)
{
    cairn_reply_t *r = NULL;
    cairn_err_t local = {0};
    int rc = s_call_tracking(client, "log_batch", body, len, &r, err ? err : &local);
    cairn_reply_destroy(&r);
    return rc;
}

/* Send a batch, waiting for the reply (id NULL) or not; the batch is then
 * empty either way. Waiting, a refusal as undelivered is sent again
 * (s_call_tracking); not waiting, the caller sees it in the reply. */
static int s_send_batch(cairn_client_t *client, cairn_batch_t *b, uint64_t *id,
                        cairn_err_t *err)
{
    int rc = s_pre_send(client, b, err);
    if (rc != 0) return rc < 0 ? -1 : 0;
    const unsigned char *body = NULL;
    size_t len = 0;
    if (s_finish(b, &body, &len, err) != 0) {
        cairn_batch_clear(b);
        return -1;
    }
    rc = id ? cairn_client_send(client, CAIRN_TRACKING_SVC, "log_batch", body, len, 0,
                                id, err)
            : s_batch_call(client, body, len, err);
    cairn_batch_clear(b);
    return rc;
}

int cairn_batch_send(cairn_client_t *client, cairn_batch_t *b, cairn_err_t *err)
{
    return s_send_batch(client, b, NULL, err);
}

int cairn_batch_send_async(cairn_client_t *client, cairn_batch_t *b, uint64_t *id,
                           cairn_err_t *err)
{
    uint64_t ignored;
    if (id) *id = 0;
    return s_send_batch(client, b, id ? id : &ignored, err);
}
