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
 * Artifacts move as msgpack (no base64): an upload reads the file in
 * CAIRN_ARTIFACT_CHUNK pieces, one ahead so that the last piece is known to
 * be the last, and sends each as a put_artifact; a download asks
 * get_artifact for a chunk at a time and writes it to a temporary file
 * beside the destination, renamed into place only when the BLAKE2b-256 of
 * what arrived is the server's. Memory is a few chunks whatever the size.
 *
 * An upload rides out a restart of the artifacts service (the server keeps
 * acknowledged chunks and resumes the upload at the next one): a chunk
 * answered 503 (restarting) or, after the first, not answered within the
 * ttl is sent again,
 * the same chunk at the same offset of the same upload, after 50 ms, then
 * twice as long each time up to 2 s, for at most ART_RETRY_MS (60 s; the
 * environment variable CAIRN_ARTIFACT_RETRY_S, in seconds, overrides it); a
 * 409 whose body says {expected_offset: N} (or, from an older server, whose
 * sentence says "expected offset N") goes on from N (from the chunk in hand,
 * or for a regular file re-read from N); a final chunk answered 404 after
 * a retry is checked against what the server stored at that path (its
 * first copy may have committed before the reply was lost). A download
 * rides it out the same way (get_artifact is idempotent): a get_artifact
 * answered 503 or, once a chunk has arrived, not answered within the ttl is
 * asked for again at the same offset, with the same backoff and budget
 * (s_retry_wait, shared); every reply must still carry the size and hash of
 * the first and follow on at the offset asked for, so a file that changed
 * meanwhile is refused. Either way, past the budget the transfer fails with
 * a sentence that begins "gave up" and says after how many tries and why. */
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

static int s_check_str(const char *s, const char *what, size_t max, bool nonempty,
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

static int s_oom(cairn_err_t *err)
{
    return cairn_err_oom(err, NULL);
}

static int s_check_key(const char *key, size_t *len, cairn_err_t *err)
{
    return s_check_str(key, "the key", CAIRN_MAX_KEY, true, len, err);
}

static int s_check_run_id(const char *run_id, size_t *len, cairn_err_t *err)
{
    return s_check_str(run_id, "run_id", CAIRN_MAX_RUN_ID, true, len, err);
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
static uint64_t s_env_ms(const char *env, uint64_t dflt)
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

#define BACKOFF_MIN_MS 50   /* the first wait before a retry */
#define BACKOFF_MAX_MS 2000 /* the longest wait between retries */

/* The retries of one request (a chunk to put or get, a tracking call)
 * while a service restarts: started before its first try. */
typedef struct retry {
    uint64_t t0, budget_ms; /* the first try; how long it may go on */
    unsigned wait, tries;   /* the next wait; the tries that failed so far */
} retry_t;

static void s_retry_start(retry_t *rt, uint64_t budget_ms)
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
static int s_retry_backoff(retry_t *rt, const char *what, const char *cause,
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

/* A transfer's try failed with err: a 503 (the service restarting) is
 * tried again, and so is a 504 (no reply within the ttl, from the client
 * or the kernel) unless nothing of the transfer was answered yet (first:
 * most likely no cairnd at all, so err is left as it is, at once); then as
 * s_retry_backoff, what given as a printf format and its arguments. */
static int s_retry_wait(retry_t *rt, bool first, cairn_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_retry_wait(retry_t *rt, bool first, cairn_err_t *err, const char *fmt, ...)
{
    if (err->st != CAIRN_ST_UNAVAILABLE && (err->st != CAIRN_ST_TIMEOUT || first))
        return -1;
    char what[CAIRN_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return s_retry_backoff(rt, what,
                           "the artifacts service is restarting or unreachable", err);
}

#define LOG_RETRY_MS 60000 /* the longest a refused-undelivered call is resent */
#define LOG_RETRY_ENV "CAIRN_LOG_RETRY_S"

/* A tracking call, sent again while the kernel refuses it as undelivered
 * (s_retry_backoff, for up to $CAIRN_LOG_RETRY_S, 60 s), as the Python SDK
 * does. Any other failure may have been stored: returned as is. */
static int s_call_tracking(cairn_client_t *client, const char *verb, const void *body,
                           size_t len, cairn_reply_t **r, cairn_err_t *err)
{
    retry_t rt;
    s_retry_start(&rt, s_env_ms(LOG_RETRY_ENV, LOG_RETRY_MS));
    for (;;) {
        *r = NULL;
        if (cairn_client_call(client, CAIRN_TRACKING_SVC, verb, body, len, 0, r, err) ==
            0)
            return 0;
        if (!cairn_reply_undelivered(*r)) return -1; /* maybe stored: the caller's */
        cairn_reply_destroy(r);
        char what[64];
        snprintf(what, sizeof what, "tracking.%s", verb);
        if (s_retry_backoff(&rt, what, "$" LOG_RETRY_ENV, err) != 0) return -1;
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

static int s_check_client(const cairn_client_t *client, cairn_err_t *err)
{
    return client ? 0
                  : cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                  "the client is NULL");
}

int cairn_create_experiment(cairn_client_t *client, const char *name,
                            char **experiment_id, cairn_err_t *err)
{
    if (s_check_client(client, err) != 0 ||
        s_check_str(name, "the experiment name", CAIRN_MAX_NAME, true, NULL, err) != 0)
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
    if (s_check_client(client, err) != 0 ||
        s_check_str(name, "the experiment name", CAIRN_MAX_NAME, true, NULL, err) != 0)
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
    if (s_check_client(client, err) != 0 ||
        s_check_str(experiment_id, "experiment_id", 32, true, NULL, err) != 0 ||
        (run_name && s_check_str(run_name, "the run name", CAIRN_MAX_NAME, false, NULL,
                                 err) != 0) ||
        (parent_run_id && s_check_run_id(parent_run_id, NULL, err) != 0))
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
    if (s_check_run_id(env_run, NULL, err) != 0) {
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
    if (!(*run_id = strdup(env_run))) return s_oom(err);
    return 0;
}

int cairn_start_run(cairn_client_t *client, const char *experiment,
                    const char *run_name, char **run_id, bool *attached,
                    cairn_err_t *err)
{
    if (s_check_client(client, err) != 0) return -1;
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
    if (s_check_client(client, err) != 0 || s_check_run_id(run_id, NULL, err) != 0 ||
        (status && s_check_str(status, "the status", 16, true, NULL, err) != 0))
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
    if (s_check_client(client, err) != 0 || s_check_run_id(run_id, NULL, err) != 0 ||
        s_check_key(key, NULL, err) != 0)
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
    if (s_check_client(client, err) != 0 || s_check_run_id(run_id, NULL, err) != 0 ||
        s_check_key(key, NULL, err) != 0 ||
        s_check_str(value, "the value", max_value, false, NULL, err) != 0)
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
    if (!b || s_check_run_id(run_id, &n, NULL) != 0) return -1;
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
    if (s_check_str(value, "the value", max_value, false, &vlen, &e) != 0)
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

/* ---- artifacts ------------------------------------------------------------------- */

#define CHUNK CAIRN_ARTIFACT_CHUNK
#define HASH_HEX CAIRN_ARTIFACT_HASH_HEX

static int s_sodium(cairn_err_t *err)
{
    return sodium_init() < 0
               ? cairn_err_set(err, CAIRN_ST_INTERNAL, NULL, "libsodium cannot start")
               : 0;
}

static void s_hex(crypto_generichash_state *st, char hex[HASH_HEX + 1])
{
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash_final(st, h, sizeof h);
    sodium_bin2hex(hex, HASH_HEX + 1, h, sizeof h);
}

static const char *s_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A msgpack field of a type; NULL when absent or of another type. */
static const msgpack_object *s_mp(const msgpack_object *map, const char *key,
                                  msgpack_object_type type)
{
    const msgpack_object *v = map ? cairn_obj_get(map, key) : NULL;
    return v && v->type == type ? v : NULL;
}

static bool s_mp_hash(const msgpack_object *map, char out[HASH_HEX + 1])
{
    const msgpack_object *h = s_mp(map, "hash", MSGPACK_OBJECT_STR);
    if (!h || h->via.str.size != HASH_HEX) return false;
    memcpy(out, h->via.str.ptr, HASH_HEX);
    out[HASH_HEX] = '\0';
    return true;
}

/* Call artifacts.verb; *r receives a 2xx reply whose body is a map (*obj).
 * On failure *failed (when not NULL) receives the error reply if one came
 * (its body may say more than the sentence), else NULL. */
static int s_acall_ex(cairn_client_t *client, const char *verb,
                      const msgpack_sbuffer *sb, cairn_reply_t **r,
                      const msgpack_object **obj, cairn_reply_t **failed,
                      cairn_err_t *err)
{
    *r = NULL;
    if (failed) *failed = NULL;
    if (cairn_client_call(client, CAIRN_ARTIFACTS_SVC, verb, sb->data, sb->size, 0, r,
                          err) != 0) {
        if (failed) {
            *failed = *r;
            *r = NULL;
        }
        cairn_reply_destroy(r);
        return -1;
    }
    *obj = cairn_reply_object(*r);
    if (!*obj || (*obj)->type != MSGPACK_OBJECT_MAP) {
        cairn_reply_destroy(r);
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the reply of artifacts.%s is not a map", verb);
    }
    return 0;
}

static int s_acall(cairn_client_t *client, const char *verb, const msgpack_sbuffer *sb,
                   cairn_reply_t **r, const msgpack_object **obj, cairn_err_t *err)
{
    return s_acall_ex(client, verb, sb, r, obj, NULL, err);
}

static int s_check_artifact_args(cairn_client_t *client, const char *run_id,
                                 const char *path, const char *what, cairn_err_t *err)
{
    if (s_check_client(client, err) != 0 || s_check_run_id(run_id, NULL, err) != 0)
        return -1;
    if (path && s_check_str(path, what, 0, true, NULL, err) != 0) return -1;
    return s_sodium(err);
}

/* Read up to n bytes (fewer only at the end of the file). */
static int s_read_full(int fd, unsigned char *buf, size_t n, size_t *got,
                       const char *name, cairn_err_t *err)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, buf + *got, n - *got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                                 "cannot read '%s': %s", name, strerror(errno));
        if (r == 0) break;
        *got += (size_t)r;
    }
    return 0;
}

static int s_write_full(int fd, const char *buf, size_t n, const char *name,
                        cairn_err_t *err)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0)
            return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                                 "cannot write '%s': %s", name, strerror(errno));
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

#define ART_RETRY_MS 60000 /* the longest a chunk is retried (default) */
#define ART_MOVES_MAX 16   /* 409 "expected offset N" followed per chunk */

/* Seconds, a positive number: overrides ART_RETRY_MS (tests use a small one). */
#define ART_RETRY_ENV "CAIRN_ARTIFACT_RETRY_S"

typedef struct upload {
    cairn_client_t *client;
    const char *run_id, *path;
    char upload_id[128];
    uint64_t offset; /* bytes sent and accepted */
    msgpack_sbuffer sb;
    int fd;              /* the source; re-read (pread) only when seekable */
    bool seekable;       /* a regular file: bytes before the chunk in hand */
    unsigned char *back; /* can be read again (into this, on demand) */
    bool lost_done;      /* the last chunk, retried, found no upload: 404 */
    uint64_t lost_size;  /* and the size the file has with it */
    uint64_t retry_ms;   /* the longest a chunk is retried */
    bool has_expected;   /* the last chunk's 409 had a body {expected_offset} */
    uint64_t expected;   /* and its value */
} upload_t;

/* ART_RETRY_MS, or $CAIRN_ARTIFACT_RETRY_S (a positive number of seconds)
 * when it is set and valid. */
static uint64_t s_retry_ms(void)
{
    return s_env_ms(ART_RETRY_ENV, ART_RETRY_MS);
}

/* One put_artifact; upload_id is filled from the first reply. The last
 * chunk's reply (its artifact) is left in *last. */
static int s_put_chunk(upload_t *u, const unsigned char *data, size_t n, bool done,
                       cairn_reply_t **last, cairn_err_t *err)
{
    msgpack_sbuffer_clear(&u->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &u->sb, msgpack_sbuffer_write);
    bool first = !u->upload_id[0];
    int fail = msgpack_pack_map(&pk, first ? 5 : 6);
    cairn_pack_kv_str(&pk, "run_id", u->run_id);
    cairn_pack_kv_str(&pk, "path", u->path);
    cairn_pack_cstr(&pk, "offset");
    fail |= msgpack_pack_uint64(&pk, u->offset);
    cairn_pack_cstr(&pk, "done");
    fail |= done ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    if (!first) cairn_pack_kv_str(&pk, "upload_id", u->upload_id);
    cairn_pack_cstr(&pk, "data");
    fail |= msgpack_pack_bin_with_body(&pk, data, n);
    if (fail) return s_oom(err);
    cairn_reply_t *r = NULL, *failed = NULL;
    const msgpack_object *obj = NULL;
    u->has_expected = false;
    if (s_acall_ex(u->client, "put_artifact", &u->sb, &r, &obj, &failed, err) != 0) {
        /* A 409 says where the server is in its body (older servers only
         * in the sentence: s_expected_offset). */
        const msgpack_object *at =
            failed && cairn_reply_status(failed) == CAIRN_ST_CONFLICT
                ? s_mp(cairn_reply_object(failed), "expected_offset",
                       MSGPACK_OBJECT_POSITIVE_INTEGER)
                : NULL;
        if (at) {
            u->has_expected = true;
            u->expected = at->via.u64;
        }
        cairn_reply_destroy(&failed);
        return -1;
    }
    u->offset += n;
    if (done) {
        *last = r;
        return 0;
    }
    int rc = 0;
    const msgpack_object *id = s_mp(obj, "upload_id", MSGPACK_OBJECT_STR);
    const msgpack_object *next = s_mp(obj, "offset", MSGPACK_OBJECT_POSITIVE_INTEGER);
    if (!id || id->via.str.size == 0 || id->via.str.size >= sizeof u->upload_id)
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the reply of artifacts.put_artifact has no upload_id");
    else if (!first && (id->via.str.size != strlen(u->upload_id) ||
                        memcmp(id->via.str.ptr, u->upload_id, id->via.str.size) != 0))
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "the upload id changed in the middle of the upload");
    else if (!next || next->via.u64 != u->offset)
        rc = cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                           "after %" PRIu64 " bytes the server expects offset %" PRIu64,
                           u->offset, next ? next->via.u64 : 0);
    if (rc == 0 && first) {
        memcpy(u->upload_id, id->via.str.ptr, id->via.str.size);
        u->upload_id[id->via.str.size] = '\0';
    }
    cairn_reply_destroy(&r);
    return rc;
}

/* Where a 409 says the server is: its body's expected_offset, else (an
 * older server) the N of a sentence that says "expected offset N". */
static bool s_expected_offset(const upload_t *u, const cairn_err_t *err, uint64_t *n)
{
    static const char key[] = "expected offset ";
    if (err->st != CAIRN_ST_CONFLICT) return false;
    if (u->has_expected) {
        *n = u->expected;
        return true;
    }
    const char *p = strstr(err->msg, key);
    if (!p) return false;
    p += sizeof key - 1;
    if (*p < '0' || *p > '9') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno) return false;
    *n = v;
    return true;
}

/* One chunk, sent again while the service restarts (503) or does not
 * answer in time (504; s_retry_wait): 0 when it was accepted (u->offset
 * moved on), 1 when the server answered 409 "expected offset N" (*at = N),
 * -1 on any other failure or after u->retry_ms. */
static int s_put_retry(upload_t *u, const unsigned char *data, size_t n, bool done,
                       cairn_reply_t **last, uint64_t *at, cairn_err_t *err)
{
    retry_t rt;
    s_retry_start(&rt, u->retry_ms);
    for (;;) {
        if (s_put_chunk(u, data, n, done, last, err) == 0) return 0;
        if (u->upload_id[0] && s_expected_offset(u, err, at)) return 1;
        if (rt.tries && done && err->st == CAIRN_ST_NOT_FOUND) {
            u->lost_done = true;
            u->lost_size = u->offset + n;
        }
        /* No reply to a first chunk: nothing to resume yet either. */
        if (s_retry_wait(&rt, !u->upload_id[0], err,
                         "the chunk at offset %" PRIu64 " of '%s'", u->offset,
                         u->path) != 0)
            return -1;
    }
}

/* Send the chunk in hand, cur[0, n) at offset u->offset of the file (done:
 * the last), with retries; where the server answers that it holds another
 * length, go on from there: within the chunk, or (a regular file) from
 * bytes read again. */
static int s_send(upload_t *u, const unsigned char *cur, size_t n, bool done,
                  cairn_reply_t **last, cairn_err_t *err)
{
    const uint64_t base = u->offset;
    for (int moves = 0;;) {
        uint64_t p = u->offset, at = 0;
        const unsigned char *src;
        size_t len;
        bool fin = false;
        if (p >= base) { /* from the chunk in hand */
            src = cur + (p - base);
            len = (size_t)(base + n - p);
            fin = done;
            if (len == 0 && !done) return 0;
        } else { /* bytes before it, read again */
            len = base - p < CHUNK ? (size_t)(base - p) : CHUNK;
            if (!u->back && !(u->back = malloc(CHUNK))) return s_oom(err);
            ssize_t r = pread(u->fd, u->back, len, (off_t)p);
            if (r != (ssize_t)len)
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                                     "cannot read the file again from offset %" PRIu64
                                     " (the server lost what followed): %s",
                                     p, r < 0 ? strerror(errno) : "it is shorter");
            src = u->back;
        }
        int rc = s_put_retry(u, src, len, fin, last, &at, err);
        if (rc < 0) return -1;
        if (rc == 0) {
            if (p >= base) return 0;
            continue;
        }
        if (++moves > ART_MOVES_MAX || at > base + n || (at < base && !u->seekable))
            return cairn_err_set(
                err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                "the server holds %" PRIu64
                " bytes of the upload of '%s', which cannot "
                "go on from there (%" PRIu64 " bytes were sent%s)",
                at, u->path, base + n,
                at < base && !u->seekable ? "; the source cannot be read again" : "");
        u->offset = at;
    }
}

/* The last chunk was retried and its upload is gone: did its first copy
 * commit? Then the artifact at the path is the bytes that were sent. */
static int s_check_stored(upload_t *u, const char *hex, cairn_artifact_info_t *info,
                          cairn_err_t *err)
{
    cairn_err_t lost = *err, e2 = {0};
    msgpack_sbuffer_clear(&u->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &u->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "run_id", u->run_id);
    cairn_pack_kv_str(&pk, "path", u->path);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, u->lost_size);
    cairn_pack_cstr(&pk, "length");
    msgpack_pack_uint64(&pk, 0);
    cairn_reply_t *r = NULL;
    const msgpack_object *obj = NULL;
    char hash[HASH_HEX + 1];
    if (s_acall(u->client, "get_artifact", &u->sb, &r, &obj, &e2) != 0) {
        *err = lost;
        return -1;
    }
    const msgpack_object *size = s_mp(obj, "size", MSGPACK_OBJECT_POSITIVE_INTEGER);
    bool same = size && size->via.u64 == u->lost_size && s_mp_hash(obj, hash) &&
                strcmp(hash, hex) == 0;
    cairn_reply_destroy(&r);
    if (!same) {
        *err = lost;
        return -1;
    }
    if (info) {
        if (!(info->path = strdup(u->path))) return s_oom(err);
        info->size = u->lost_size;
        memcpy(info->hash, hash, sizeof hash);
    }
    u->offset = u->lost_size;
    return 0;
}

/* Check the committed artifact against what was sent. */
static int s_upload_check(const upload_t *u, const char *hex, cairn_reply_t *r,
                          cairn_artifact_info_t *info, cairn_err_t *err)
{
    const msgpack_object *a =
        s_mp(cairn_reply_object(r), "artifact", MSGPACK_OBJECT_MAP);
    const msgpack_object *size = s_mp(a, "size", MSGPACK_OBJECT_POSITIVE_INTEGER);
    const msgpack_object *path = s_mp(a, "path", MSGPACK_OBJECT_STR);
    char hash[HASH_HEX + 1];
    if (!a || !size || !path || !s_mp_hash(a, hash))
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "the last reply of artifacts.put_artifact has no artifact "
                             "{path, size, hash}");
    if (size->via.u64 != u->offset || strcmp(hash, hex) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                             "the server stored %" PRIu64
                             " bytes with hash %s, but %" PRIu64
                             " bytes with hash %s were sent",
                             size->via.u64, hash, u->offset, hex);
    if (info) {
        info->path = strndup(path->via.str.ptr, path->via.str.size);
        if (!info->path) return s_oom(err);
        info->size = u->offset;
        memcpy(info->hash, hash, sizeof hash);
    }
    return 0;
}

/* Stream fd to put_artifact, CHUNK bytes a request, reading one chunk ahead
 * so that the last request carries done=true. */
static int s_upload(cairn_client_t *client, const char *run_id, const char *path,
                    int fd, const char *name, cairn_progress_fn *progress, void *arg,
                    cairn_artifact_info_t *info, cairn_err_t *err)
{
    struct stat sbuf;
    if (fstat(fd, &sbuf) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "cannot read '%s': %s", name, strerror(errno));
    if (S_ISDIR(sbuf.st_mode))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "'%s' is a directory; upload its files one by one", name);
    uint64_t total =
        S_ISREG(sbuf.st_mode) ? (uint64_t)sbuf.st_size : CAIRN_SIZE_UNKNOWN;
    upload_t u = {.client = client,
                  .run_id = run_id,
                  .path = path,
                  .fd = fd,
                  .seekable = S_ISREG(sbuf.st_mode),
                  .retry_ms = s_retry_ms()};
    msgpack_sbuffer_init(&u.sb);
    unsigned char *cur = malloc(CHUNK), *next = malloc(CHUNK);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES);
    size_t ncur = 0, nnext = 0;
    cairn_reply_t *last = NULL;
    int rc = cur && next ? s_read_full(fd, cur, CHUNK, &ncur, name, err) : s_oom(err);
    while (rc == 0) {
        nnext = 0;
        if (ncur == CHUNK) rc = s_read_full(fd, next, CHUNK, &nnext, name, err);
        if (rc != 0) break;
        bool done = nnext == 0;
        crypto_generichash_update(&st, cur, ncur);
        rc = s_send(&u, cur, ncur, done, &last, err);
        if (rc != 0 || done) break;
        /* a file that grew past its size: the total is no longer known */
        if (progress)
            progress(arg, u.offset, u.offset < total ? total : CAIRN_SIZE_UNKNOWN);
        unsigned char *t = cur;
        cur = next;
        next = t;
        ncur = nnext;
    }
    free(cur);
    free(next);
    free(u.back);
    char hex[HASH_HEX + 1];
    if (rc == 0) {
        s_hex(&st, hex);
        rc = s_upload_check(&u, hex, last, info, err);
    } else if (u.lost_done) {
        s_hex(&st, hex);
        rc = s_check_stored(&u, hex, info, err);
    }
    msgpack_sbuffer_destroy(&u.sb);
    cairn_reply_destroy(&last);
    if (rc == 0 && progress) progress(arg, u.offset, u.offset);
    return rc;
}

int cairn_log_artifact_ex(cairn_client_t *client, const char *run_id,
                          const char *local_path, const char *artifact_path,
                          cairn_progress_fn *progress, void *arg,
                          cairn_artifact_info_t *info, cairn_err_t *err)
{
    if (info) memset(info, 0, sizeof *info);
    if (s_check_artifact_args(client, run_id, artifact_path, "the artifact path",
                              err) != 0 ||
        s_check_str(local_path, "the local path", 0, true, NULL, err) != 0)
        return -1;
    const char *path = artifact_path ? artifact_path : s_basename(local_path);
    if (!*path)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "'%s' names no file", local_path);
    int fd = open(local_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "cannot open '%s': %s", local_path, strerror(errno));
    int rc = s_upload(client, run_id, path, fd, local_path, progress, arg, info, err);
    close(fd);
    return rc;
}

int cairn_log_artifact(cairn_client_t *client, const char *run_id,
                       const char *local_path, const char *artifact_path,
                       cairn_progress_fn *progress, void *arg, cairn_err_t *err)
{
    return cairn_log_artifact_ex(client, run_id, local_path, artifact_path, progress,
                                 arg, NULL, err);
}

int cairn_log_artifact_fd(cairn_client_t *client, const char *run_id, int fd,
                          const char *artifact_path, cairn_progress_fn *progress,
                          void *arg, cairn_artifact_info_t *info, cairn_err_t *err)
{
    if (info) memset(info, 0, sizeof *info);
    if (s_check_artifact_args(client, run_id, artifact_path, "the artifact path",
                              err) != 0)
        return -1;
    if (!artifact_path)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "uploading a descriptor needs an artifact path");
    char name[32];
    if (fd == STDIN_FILENO)
        snprintf(name, sizeof name, "stdin");
    else
        snprintf(name, sizeof name, "fd %d", fd);
    return s_upload(client, run_id, artifact_path, fd, name, progress, arg, info, err);
}

/* A download: the bytes go to fd (a temporary file beside dest, or the
 * caller's descriptor). */
typedef struct download {
    cairn_client_t *client;
    const char *run_id, *path;
    const char *dest; /* the file it becomes; NULL: the caller's fd */
    char *tmp;        /* the temporary file beside dest, until renamed */
    int fd;
    bool started;      /* a chunk arrived */
    uint64_t retry_ms; /* the longest a chunk is asked for again */
    uint64_t offset, size;
    char hash[HASH_HEX + 1]; /* the server's, from the first reply */
    crypto_generichash_state st;
    msgpack_sbuffer sb;
} download_t;

static int s_open_tmp(download_t *d, cairn_err_t *err)
{
    const char *base = s_basename(d->dest);
    size_t dirlen = (size_t)(base - d->dest);
    if (!*base)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "'%s' names no file", d->dest);
    d->tmp = malloc(strlen(d->dest) + 16);
    if (!d->tmp) return s_oom(err);
    sprintf(d->tmp, "%.*s.%s.XXXXXX", (int)dirlen, d->dest, base);
    d->fd = mkstemp(d->tmp);
    if (d->fd >= 0) (void)fcntl(d->fd, F_SETFD, FD_CLOEXEC);
    if (d->fd < 0) {
        int e = errno;
        free(d->tmp);
        d->tmp = NULL;
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot create a file beside '%s': %s", d->dest,
                             strerror(e));
    }
    return 0;
}

/* Ask for the next chunk and write it. *done says whether it was the last.
 * get_artifact is idempotent: while the service restarts (503) or does not
 * answer in time (504) it is asked for again, the same offset
 * (s_retry_wait); what comes must still be the same blob. */
static int s_get_chunk(download_t *d, bool *done, cairn_err_t *err)
{
    msgpack_sbuffer_clear(&d->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &d->sb, msgpack_sbuffer_write);
    int fail = msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "run_id", d->run_id);
    cairn_pack_kv_str(&pk, "path", d->path);
    cairn_pack_cstr(&pk, "offset");
    fail |= msgpack_pack_uint64(&pk, d->offset);
    cairn_pack_cstr(&pk, "length");
    fail |= msgpack_pack_uint32(&pk, CHUNK);
    if (fail) return s_oom(err);
    cairn_reply_t *r = NULL;
    const msgpack_object *obj = NULL;
    retry_t rt;
    s_retry_start(&rt, d->retry_ms);
    while (s_acall(d->client, "get_artifact", &d->sb, &r, &obj, err) != 0)
        if (s_retry_wait(&rt, !d->started, err,
                         "the download of '%s' at offset %" PRIu64, d->path,
                         d->offset) != 0)
            return -1;
    const msgpack_object *data = s_mp(obj, "data", MSGPACK_OBJECT_BIN);
    const msgpack_object *off = s_mp(obj, "offset", MSGPACK_OBJECT_POSITIVE_INTEGER);
    const msgpack_object *size = s_mp(obj, "size", MSGPACK_OBJECT_POSITIVE_INTEGER);
    const msgpack_object *fin = s_mp(obj, "done", MSGPACK_OBJECT_BOOLEAN);
    char hash[HASH_HEX + 1];
    int rc = 0;
    if (!data || !off || !size || !fin || !s_mp_hash(obj, hash))
        rc = cairn_err_set(
            err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
            "the reply of artifacts.get_artifact lacks data, offset, size, "
            "hash or done");
    else if (d->started && (size->via.u64 != d->size || strcmp(hash, d->hash) != 0))
        rc = cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CHANGED,
                           "'%s' changed while it was being downloaded; try again",
                           d->path);
    else if (off->via.u64 != d->offset || data->via.bin.size > CHUNK ||
             d->offset + data->via.bin.size > size->via.u64 ||
             (!fin->via.boolean && data->via.bin.size == 0) ||
             (fin->via.boolean && d->offset + data->via.bin.size != size->via.u64))
        rc = cairn_err_set(
            err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
            "the reply of artifacts.get_artifact does not follow on: offset %" PRIu64
            ", %" PRIu32 " bytes of %" PRIu64 ", asked for offset %" PRIu64,
            off->via.u64, data->via.bin.size, size->via.u64, d->offset);
    if (rc == 0 && !d->started) {
        d->started = true;
        d->size = size->via.u64;
        memcpy(d->hash, hash, sizeof hash);
        if (d->dest) rc = s_open_tmp(d, err);
    }
    if (rc == 0) {
        crypto_generichash_update(&d->st, (const unsigned char *)data->via.bin.ptr,
                                  data->via.bin.size);
        rc = s_write_full(d->fd, data->via.bin.ptr, data->via.bin.size,
                          d->tmp ? d->tmp : "the output", err);
        d->offset += data->via.bin.size;
        *done = fin->via.boolean;
    }
    cairn_reply_destroy(&r);
    return rc;
}

/* The temporary file becomes dest, with the mode a new file would get. */
static int s_commit(download_t *d, cairn_err_t *err)
{
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(d->fd, 0666 & ~mask) != 0 || fsync(d->fd) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot write '%s': %s", d->tmp, strerror(errno));
    int rc = close(d->fd);
    d->fd = -1;
    if (rc != 0 || rename(d->tmp, d->dest) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_IO,
                             "cannot write '%s': %s", d->dest, strerror(errno));
    free(d->tmp);
    d->tmp = NULL;
    return 0;
}

static int s_download(cairn_client_t *client, const char *run_id,
                      const char *artifact_path, const char *dest, int fd,
                      cairn_progress_fn *progress, void *arg,
                      cairn_artifact_info_t *info, cairn_err_t *err)
{
    download_t d = {.client = client,
                    .run_id = run_id,
                    .path = artifact_path,
                    .dest = dest,
                    .fd = dest ? -1 : fd,
                    .retry_ms = s_retry_ms()};
    crypto_generichash_init(&d.st, NULL, 0, crypto_generichash_BYTES);
    msgpack_sbuffer_init(&d.sb);
    bool done = false;
    int rc = 0;
    while (rc == 0 && !done) {
        rc = s_get_chunk(&d, &done, err);
        if (rc == 0 && progress) progress(arg, d.offset, d.size);
    }
    msgpack_sbuffer_destroy(&d.sb);
    char hex[HASH_HEX + 1];
    if (rc == 0) s_hex(&d.st, hex);
    if (rc == 0 && strcmp(hex, d.hash) != 0)
        rc =
            cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_CORRUPT,
                          "'%s' arrived corrupt: its bytes hash to %s, the server says "
                          "%s%s",
                          d.path, hex, d.hash, d.tmp ? "; nothing was written" : "");
    if (rc == 0 && d.tmp) rc = s_commit(&d, err);
    if (d.tmp) {
        if (d.fd >= 0) close(d.fd);
        unlink(d.tmp);
        free(d.tmp);
    }
    if (rc == 0 && info) {
        info->path = strdup(artifact_path);
        if (!info->path) return s_oom(err);
        info->size = d.size;
        memcpy(info->hash, d.hash, sizeof d.hash);
    }
    return rc;
}

int cairn_download_artifact_ex(cairn_client_t *client, const char *run_id,
                               const char *artifact_path, const char *local_path,
                               cairn_progress_fn *progress, void *arg,
                               cairn_artifact_info_t *info, cairn_err_t *err)
{
    if (info) memset(info, 0, sizeof *info);
    if (s_check_artifact_args(client, run_id, artifact_path, "the artifact path",
                              err) != 0 ||
        s_check_str(artifact_path, "the artifact path", 0, true, NULL, err) != 0 ||
        s_check_str(local_path, "the local path", 0, true, NULL, err) != 0)
        return -1;
    return s_download(client, run_id, artifact_path, local_path, -1, progress, arg,
                      info, err);
}

int cairn_download_artifact(cairn_client_t *client, const char *run_id,
                            const char *artifact_path, const char *local_path,
                            cairn_progress_fn *progress, void *arg, cairn_err_t *err)
{
    return cairn_download_artifact_ex(client, run_id, artifact_path, local_path,
                                      progress, arg, NULL, err);
}

int cairn_download_artifact_fd(cairn_client_t *client, const char *run_id,
                               const char *artifact_path, int fd,
                               cairn_progress_fn *progress, void *arg,
                               cairn_artifact_info_t *info, cairn_err_t *err)
{
    if (info) memset(info, 0, sizeof *info);
    if (s_check_artifact_args(client, run_id, artifact_path, "the artifact path",
                              err) != 0 ||
        s_check_str(artifact_path, "the artifact path", 0, true, NULL, err) != 0)
        return -1;
    if (fd < 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "fd %d is not open", fd);
    return s_download(client, run_id, artifact_path, NULL, fd, progress, arg, info,
                      err);
}
