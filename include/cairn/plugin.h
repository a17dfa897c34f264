/* cairn/plugin.h — the plugin ABI: what a plugin exports and what the host
 * gives it.
 *
 * A plugin is a shared object that exports one symbol, `cairn_plugin_entry`,
 * which receives the host API table and returns a static descriptor. The
 * same .so runs in a kernel thread (inproc), in a child process that cairnd
 * supervises (process), or in a host started by hand elsewhere (remote):
 * the mode is chosen in the conf service map, never in code.
 *
 * Stability rules (SQLite's and Redis's): both structs begin with
 * {abi, size}; fields and functions are only ever added at the end; a
 * reader treats anything past `size` as absent. A change that cannot follow
 * these rules bumps CAIRN_PLUGIN_ABI, and the host refuses a plugin built
 * for another major version.
 */
#ifndef CAIRN_PLUGIN_H
#define CAIRN_PLUGIN_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"
#include "cairn/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: verb handlers return int and take a cairn_err_t (cairn_verb_fn). */
#define CAIRN_PLUGIN_ABI 2

typedef struct cairn_req cairn_req_t; /* one request, owned by the runtime */
typedef struct cairn_ctx cairn_ctx_t; /* one plugin instance's context */

/* Verb flags. */
#define CAIRN_VERB_MUTATING 0x1u   /* changes state: audited */
#define CAIRN_VERB_IDEMPOTENT 0x2u /* may be retried after a worker dies */
#define CAIRN_VERB_PUBLIC 0x4u     /* needs no token (e.g. auth.login) */
/* Quick and self-contained: answers from the instance's own state in
 * microseconds, never blocks. For an inproc instance that is idle the
 * kernel may run it on its own thread (no thread hop), when the body is at
 * most CAIRN_INLINE_BODY_MAX bytes (a bigger one is not decoded there).
 * Inside it, cairn_call, cairn_publish and cairn_subscribe fail;
 * cairn_defer works (the reply then travels as usual), and
 * cairn_req_inline says so, so that a handler can hand slow work to its own
 * thread. Ignored in process and remote mode. */
#define CAIRN_VERB_INLINE 0x8u
#define CAIRN_INLINE_BODY_MAX 16384u

/* A verb handler. Errors are values here as everywhere: on failure it
 * returns -1 with err filled (`return cairn_err_set(err, CAIRN_ST_NOT_FOUND,
 * CAIRN_E_NOT_FOUND, "...")`) and the runtime sends the error reply, the one
 * place error replies come from. On success it replies (cairn_reply*) and
 * returns 0, or calls cairn_defer(), returns 0 and replies later from a
 * callback. Returning 0 without replying or deferring makes the runtime
 * answer 500. */
typedef int(cairn_verb_fn)(void *state, cairn_req_t *req, cairn_err_t *err);

typedef struct cairn_verb {
    const char *name; /* snake_case, unique within the plugin */
    cairn_verb_fn *handle;
    const char *perm; /* "<svc>.read" ... ; NULL with CAIRN_VERB_PUBLIC */
    uint32_t flags;
    uint32_t max_body; /* bytes; 0 = the kernel's frame limit */
    const char *help;
} cairn_verb_t;

typedef enum cairn_conf_type {
    CAIRN_CONF_STR = 1,
    CAIRN_CONF_INT,
    CAIRN_CONF_BOOL,
    CAIRN_CONF_SIZE, /* bytes, with an optional KiB/MiB/GiB suffix */
    CAIRN_CONF_PATH,
    CAIRN_CONF_ENUM, /* one of a list of names (cairn_setting_t only) */
} cairn_conf_type_t;

typedef struct cairn_conf_key {
    const char *key;
    cairn_conf_type_t type;
    const char *dflt; /* NULL = required */
    const char *help;
} cairn_conf_key_t;

/* A typed setting: the runtime parses it (from the conf's settings, or its
 * default) into the plugin's settings struct before init, at offset, as
 *   STR, PATH   const char *  (valid for the instance's life)
 *   INT         int64_t       (within [min, max] unless both are 0)
 *   SIZE        uint64_t      (bytes; within [min, max] unless both are 0)
 *   BOOL        bool
 *   ENUM        int           (the index of the value in choices)
 * Validation, the sentence for a bad value and `--help` text all come from
 * this one row; a plugin never re-parses its settings. */
typedef struct cairn_setting {
    const char *key;
    cairn_conf_type_t type;
    size_t offset;    /* offsetof(the plugin's settings struct, field) */
    const char *dflt; /* NULL = required */
    const char *help;
    const char *const *choices; /* ENUM: the names, ending with NULL */
    int64_t min, max;
} cairn_setting_t;

/* A role: one of several services a plugin can serve (e.g. the storage
 * plugin serves `tracking` and `artifacts`). */
typedef struct cairn_role {
    const char *name;
    const cairn_verb_t *verbs; /* ends with a row whose name is NULL */
    const char *help;
} cairn_role_t;

/* The reserved setting that picks an instance's role (default: the name
 * of the service it runs as). */
#define CAIRN_ROLE_SETTING "role"

typedef struct cairn_plugin {
    uint32_t abi;  /* CAIRN_PLUGIN_ABI */
    uint32_t size; /* sizeof(cairn_plugin_t) as the plugin was built */
    const char *name;
    const char *version;
    const char *description;
    const cairn_verb_t *verbs;    /* ends with a row whose name is NULL */
    const cairn_conf_key_t *conf; /* ends with a row whose key is NULL; may be NULL */
    /* Called once on the plugin's loop thread; returns 0 or -1 with err. */
    int (*init)(cairn_ctx_t *ctx, void **state, cairn_err_t *err);
    void (*fini)(void *state);
    /* Optional periodic call every tick_ms on the loop thread. */
    void (*tick)(void *state, uint64_t now_ms);
    uint32_t tick_ms;
    uint32_t concurrency; /* most requests in flight at once; 0 = 256 */
    /* Optional (NULL = one service with `verbs`): several services from one
     * plugin; each instance serves the role its `role` setting names, or
     * else the role named like its service. Ends with a NULL name. */
    const cairn_role_t *roles;
    /* Optional (NULL = the untyped `conf` table, or none): typed settings,
     * parsed by the runtime into a zeroed struct of settings_size bytes
     * before init; cairn_settings(ctx) returns it. A plugin gives `conf`
     * or `settings`, not both. */
    const cairn_setting_t *settings; /* ends with a row whose key is NULL */
    uint32_t settings_size;
} cairn_plugin_t;

/* Callbacks for nested calls, events and timers. body is borrowed for the
 * call only. */
typedef void(cairn_result_fn)(void *arg, int st, const char *code, const char *err,
                              const msgpack_object *body);
typedef void(cairn_event_fn)(void *arg, const char *topic, const msgpack_object *body);
typedef void(cairn_timer_fn)(void *arg);

enum { CAIRN_LOG_ERROR = 0, CAIRN_LOG_WARN, CAIRN_LOG_INFO, CAIRN_LOG_DEBUG };

/* The host API: a function table that only grows at its end.
 *
 * Its functions are listed once, below, in ABI order; the struct and the
 * plugin-side accessors (cairn_<name>) are both generated from the lists,
 * so that no accessor can forget to check that the host it runs on has the
 * function: a host built before a function existed passes a shorter table,
 * and the accessor then gives the fallback written beside the function.
 *   F(ret, name, (params), (args), fallback)   a function returning ret
 *   V(name, (params), (args))                  a void function (no-op when absent)
 * log sits between the two lists (it is variadic: cairn_log, below). */
#define CAIRN_API_LIST_1(F, V)                                                        \
    /* --- request access (valid until the reply) --- */                              \
    F(const msgpack_object *, body, (const cairn_req_t *req), (req), NULL)            \
    F(const char *, verb, (const cairn_req_t *req), (req), "")                        \
    /* stamped by the kernel */                                                       \
    F(const char *, principal, (const cairn_req_t *req), (req), "")                   \
    F(bool, has_role, (const cairn_req_t *req, const char *role), (req, role), false) \
    F(const char *, workspace, (const cairn_req_t *req), (req), "default")            \
    F(const char *, correlation_id, (const cairn_req_t *req), (req), "")              \
    /* monotonic, as cairn_now_ms */                                                  \
    F(uint64_t, deadline_ms, (const cairn_req_t *req), (req), cairn_now_ms() + 30000) \
    /* --- replies: exactly one per request --- */                                    \
    F(int, reply, (cairn_req_t * req, int st, const void *body, size_t len),          \
      (req, st, body, len), -1)                                                       \
    F(int, reply_error,                                                               \
      (cairn_req_t * req, int st, const char *code, const char *msg),                 \
      (req, st, code, msg), -1)                                                       \
    F(int, reply_err, (cairn_req_t * req, const cairn_err_t *err), (req, err), -1)    \
    V(defer, (cairn_req_t * req), (req))                                              \
    /* --- context --- */                                                             \
    /* the service name from the conf */                                              \
    F(const char *, service, (const cairn_ctx_t *ctx), (ctx), "")                     \
    /* a setting, or its default */                                                   \
    F(const char *, conf, (const cairn_ctx_t *ctx, const char *key), (ctx, key), NULL)

#define CAIRN_API_LIST_2(F, V)                                                         \
    /* --- nested calls through the kernel (async) --- */                              \
    F(int, call,                                                                       \
      (cairn_ctx_t * ctx, const char *svc, const char *verb, const void *body,         \
       size_t len, uint32_t ttl_ms, cairn_result_fn *cb, void *arg, cairn_err_t *err), \
      (ctx, svc, verb, body, len, ttl_ms, cb, arg, err),                               \
      cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,                    \
                    "this host has no nested calls"))                                  \
    /* --- events --- */                                                               \
    F(int, publish,                                                                    \
      (cairn_ctx_t * ctx, const char *topic, const void *body, size_t len),            \
      (ctx, topic, body, len), -1)                                                     \
    F(int, subscribe,                                                                  \
      (cairn_ctx_t * ctx, const char *prefix, cairn_event_fn *cb, void *arg,           \
       cairn_err_t *err),                                                              \
      (ctx, prefix, cb, arg, err),                                                     \
      cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,                    \
                    "this host has no event bus"))                                     \
    /* --- timers (on the loop thread): an id > 0, or 0 on error --- */                \
    F(uint64_t, timer_add,                                                             \
      (cairn_ctx_t * ctx, uint32_t after_ms, uint32_t repeat_ms, cairn_timer_fn * cb,  \
       void *arg),                                                                     \
      (ctx, after_ms, repeat_ms, cb, arg), 0)                                          \
    V(timer_cancel, (cairn_ctx_t * ctx, uint64_t id), (ctx, id))                       \
    /* --- the context of a request, for deferred work --- */                          \
    F(cairn_ctx_t *, req_ctx, (const cairn_req_t *req), (req), NULL)                   \
    /* --- the role this instance serves (NULL for a one-service plugin) --- */        \
    F(const char *, role, (const cairn_ctx_t *ctx), (ctx), NULL)                       \
    /* --- where this instance keeps its files (the kernel's state dir, or the         \
     *     host's --state for a remote plugin); created if missing --- */              \
    F(const char *, state_dir, (const cairn_ctx_t *ctx), (ctx), ".")                   \
    /* --- from init only: this instance serves verb without these flags (e.g.         \
     *     CAIRN_VERB_INLINE when its settings make the verb slow) --- */              \
    V(verb_drop_flags, (cairn_ctx_t * ctx, const char *verb, uint32_t flags),          \
      (ctx, verb, flags))                                                              \
    /* --- an error reply that also carries a body (msgpack bytes, NULL/0 = nil)       \
     *     for clients that want more than the sentence, e.g. where to resume;         \
     *     st < 400 becomes 500, as for reply_error. An older host sends the           \
     *     error without the body (clients must not require one). --- */               \
    F(int, reply_error_body,                                                           \
      (cairn_req_t * req, int st, const char *code, const char *msg, const void *body, \
       size_t len),                                                                    \
      (req, st, code, msg, body, len), cairn_host_->reply_error(req, st, code, msg))   \
    /* --- true while req is served on the kernel's thread (CAIRN_VERB_INLINE);        \
     *     an older host never does that --- */                                        \
    F(bool, req_inline, (const cairn_req_t *req), (req), false)                        \
    /* --- the instance's typed settings (cairn_plugin_t.settings), filled             \
     *     before init; NULL on a host older than typed settings --- */                \
    F(const void *, settings, (const cairn_ctx_t *ctx), (ctx), NULL)                   \
    /* --- the object a mutating request acted on ("run/<id>", "user/<name>"),         \
     *     for its audit record; at most CAIRN_OBJECT_MAX bytes of UTF-8 (else         \
     *     ignored); before the reply. An older host records none --- */               \
    V(set_object, (cairn_req_t * req, const char *object), (req, object))              \
    /* --- the client's network address ("10.0.0.7"), as ZeroMQ saw the                \
     *     connection: "" for inproc and ipc clients, nested calls, and an older       \
     *     host. For throttles and logs; never proof of identity --- */                \
    F(const char *, peer_address, (const cairn_req_t *req), (req), "")                 \
    /* --- a nested call, as call, in workspace ws (NULL: "default"): for a            \
     *     plugin that acts on the caller's objects in another service, pass           \
     *     workspace(req). An older host answers 501 --- */                            \
    F(int, call_ws,                                                                    \
      (cairn_ctx_t * ctx, const char *ws, const char *svc, const char *verb,           \
       const void *body, size_t len, uint32_t ttl_ms, cairn_result_fn *cb, void *arg,  \
       cairn_err_t *err),                                                              \
      (ctx, ws, svc, verb, body, len, ttl_ms, cb, arg, err),                           \
      cairn_err_set(err, CAIRN_ST_UNSUPPORTED, CAIRN_E_UNSUPPORTED,                    \
                    "this host has no nested calls in a workspace"))

#define CAIRN_OBJECT_MAX 128 /* bytes of cairn_set_object's name */

#define CAIRN_API_FIELD_(ret, name, params, args, fallback) ret(*name) params;
#define CAIRN_API_VFIELD_(name, params, args) void(*name) params;

typedef struct cairn_api {
    uint32_t abi;
    uint32_t size;
    CAIRN_API_LIST_1(CAIRN_API_FIELD_, CAIRN_API_VFIELD_)
    void (*log)(cairn_ctx_t *ctx, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    CAIRN_API_LIST_2(CAIRN_API_FIELD_, CAIRN_API_VFIELD_)
} cairn_api_t;

/* Every host of this ABI has had the functions up to log: CAIRN_PLUGIN_DEFINE
 * refuses a table shorter than that, and cairn_log needs no check. */
#define CAIRN_API_BASE_SIZE (offsetof(cairn_api_t, log) + sizeof(void *))

/* The one exported symbol. */
typedef const cairn_plugin_t *(cairn_plugin_entry_fn)(const cairn_api_t *api);
#define CAIRN_PLUGIN_ENTRY_SYMBOL "cairn_plugin_entry"

/* Plugin side: CAIRN_PLUGIN_DEFINE(desc) defines the entry point and keeps
 * the host API for the inline wrappers below (set once at load, read-only
 * after: the same table serves every instance in the process). */
#ifdef CAIRN_PLUGIN_SOURCE
extern const cairn_api_t *cairn_host_;
#define CAIRN_PLUGIN_DEFINE(desc)                                                    \
    const cairn_api_t *cairn_host_;                                                  \
    __attribute__((visibility("default"))) const cairn_plugin_t *cairn_plugin_entry( \
        const cairn_api_t *api)                                                      \
    {                                                                                \
        if (!api || api->abi != CAIRN_PLUGIN_ABI || api->size < CAIRN_API_BASE_SIZE) \
            return 0;                                                                \
        cairn_host_ = api;                                                           \
        return &(desc);                                                              \
    }

/* Whether the host's table reaches function name. */
#define CAIRN_API_HAS(name) \
    (cairn_host_->size >= offsetof(cairn_api_t, name) + sizeof cairn_host_->name)

/* The accessors: cairn_body(req), cairn_reply(req, ...), cairn_timer_add(ctx,
 * ...), one per host function, each checked. Call these, never
 * cairn_host_->name directly. */
#define CAIRN_API_ACCESSOR_(ret, name, params, args, fallback)            \
    static inline ret cairn_##name params                                 \
    {                                                                     \
        return CAIRN_API_HAS(name) ? cairn_host_->name args : (fallback); \
    }
#define CAIRN_API_VACCESSOR_(name, params, args)         \
    static inline void cairn_##name params               \
    {                                                    \
        if (CAIRN_API_HAS(name)) cairn_host_->name args; \
    }
CAIRN_API_LIST_1(CAIRN_API_ACCESSOR_, CAIRN_API_VACCESSOR_)
CAIRN_API_LIST_2(CAIRN_API_ACCESSOR_, CAIRN_API_VACCESSOR_)
#define cairn_log(ctx, level, ...) cairn_host_->log((ctx), (level), __VA_ARGS__)

static inline int cairn_reply_sbuf(cairn_req_t *r, int st, const msgpack_sbuffer *sb)
{
    return cairn_reply(r, st, sb->data, sb->size);
}
static inline int cairn_reply_error_sbuf(cairn_req_t *r, int st, const char *code,
                                         const char *msg, const msgpack_sbuffer *sb)
{
    return cairn_reply_error_body(r, st, code, msg, sb->data, sb->size);
}
/* cairn_set_object(req, "<kind>/<id>") for id's len bytes; nothing when the
 * name would pass CAIRN_OBJECT_MAX. */
static inline void cairn_name_object(cairn_req_t *req, const char *kind, const char *id,
                                     size_t len)
{
    char obj[CAIRN_OBJECT_MAX + 1];
    size_t k = 0;
    while (kind[k]) k++;
    if (k + 1 + len > CAIRN_OBJECT_MAX) return;
    for (size_t i = 0; i < k; i++) obj[i] = kind[i];
    obj[k] = '/';
    for (size_t i = 0; i < len; i++) obj[k + 1 + i] = id[i];
    obj[k + 1 + len] = '\0';
    cairn_set_object(req, obj);
}
#endif /* CAIRN_PLUGIN_SOURCE */

#ifdef __cplusplus
}
#endif
#endif
