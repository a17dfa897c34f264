/* sdk/runtime.h — the worker runtime and the plugin loader (internal to
 * Cairn: linked by cairnd for inproc plugins and by cairn-plugin-host for
 * process and remote ones; one code path for every mode).
 */
#ifndef CAIRN_RUNTIME_H
#define CAIRN_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <zmq.h>

#include "cairn/plugin.h"
#include "wire.h"

/* ---- loader -------------------------------------------------------- */

typedef struct cairn_loaded {
    void *dl;                     /* dlopen handle */
    const cairn_plugin_t *plugin; /* validated descriptor */
} cairn_loaded_t;

/* dlopen(RTLD_NOW|RTLD_LOCAL) the .so at path, call its entry point and
 * check the descriptor: ABI major, size, name (must equal expect_name when
 * that is not NULL), a verb table whose names are unique and well formed.
 * Returns 0, or -1 with a sentence in err. */
CAIRN_EXPORT int cairn_plugin_load(const char *path, const char *expect_name,
                                   cairn_loaded_t *out, cairn_err_t *err);
CAIRN_EXPORT void cairn_plugin_unload(cairn_loaded_t *l);

/* Check string settings against the plugin's conf-key table: unknown keys,
 * bad values, missing required keys. keys/vals have n entries. */
CAIRN_EXPORT int cairn_plugin_check_settings(const cairn_plugin_t *p,
                                             const char *const *keys,
                                             const char *const *vals, size_t n,
                                             cairn_err_t *err);

/* A setting's default, from whichever table the plugin gives; NULL when it
 * has none (or no such setting). */
CAIRN_EXPORT const char *cairn_plugin_setting_default(const cairn_plugin_t *p,
                                                      const char *key);

/* Parse checked settings (cairn_plugin_check_settings first) into out, the
 * plugin's zeroed settings struct of settings_size bytes, defaults for
 * those not given. String fields borrow from vals (or the defaults): the
 * caller keeps them alive as long as out. A no-op for a plugin without a
 * typed table. */
CAIRN_EXPORT int cairn_plugin_fill_settings(const cairn_plugin_t *p,
                                            const char *const *keys,
                                            const char *const *vals, size_t n,
                                            void *out, cairn_err_t *err);

/* The verb table an instance serves: the plugin's own, or for a plugin
 * with roles the one picked by role (or, when role is NULL/empty, by the
 * service name). NULL with err naming the roles when none matches. */
CAIRN_EXPORT const cairn_verb_t *cairn_plugin_verbs_for(const cairn_plugin_t *p,
                                                        const char *service,
                                                        const char *role,
                                                        const char **role_out,
                                                        cairn_err_t *err);

/* The host API table handed to every plugin. */
CAIRN_EXPORT const cairn_api_t *cairn_runtime_api(void);

/* ---- the inline door ------------------------------------------------ */

/* The kernel's side door into an inproc worker. While the worker's thread
 * sleeps in its poll, the broker thread may run a verb flagged
 * CAIRN_VERB_INLINE itself, saving two thread wake-ups per round trip. A
 * mutex hands the instance back and forth: the worker holds it whenever it
 * is not polling; the broker only ever try-locks it, so neither waits on
 * the other for longer than one handler. Owned by the kernel (one per
 * inproc service), outliving the worker thread. */
typedef struct cairn_door cairn_door_t;

CAIRN_EXPORT cairn_door_t *cairn_door_new(void);
CAIRN_EXPORT void cairn_door_free(cairn_door_t **self_p);
/* A random number the worker sends in its HELLO, so the kernel can tell
 * its own thread from a remote worker claiming the same service. */
CAIRN_EXPORT uint64_t cairn_door_nonce(const cairn_door_t *d);

typedef enum cairn_door_rc {
    CAIRN_DOOR_BUSY,     /* the worker is busy or gone: send it as usual */
    CAIRN_DOOR_REPLIED,  /* answered: see the reply */
    CAIRN_DOOR_DEFERRED, /* the handler deferred: a FINAL comes on the socket */
} cairn_door_rc_t;

typedef struct cairn_door_reply {
    int st;
    char code[64];
    char msg[CAIRN_ERR_MSG_MAX];
    char obj[CAIRN_OBJECT_MAX + 1]; /* cairn_set_object's, or "" */
    zmq_msg_t body; /* initialized on CAIRN_DOOR_REPLIED; the caller closes it */
} cairn_door_reply_t;

/* Serve one request on the calling thread if the worker is idle. hdr is
 * the packed request header (as on the wire); body is moved from on any
 * result but CAIRN_DOOR_BUSY. */
CAIRN_EXPORT cairn_door_rc_t cairn_door_try(cairn_door_t *d, const void *hdr,
                                            size_t hdr_len, zmq_msg_t *body,
                                            cairn_door_reply_t *out);

/* ---- runtime ------------------------------------------------------- */

typedef struct cairn_runtime_opts {
    void *zctx;           /* the context to use (inproc needs the kernel's) */
    const char *endpoint; /* the kernel's worker endpoint */
    const char *service;  /* the service name from the conf */
    const char *mode;     /* "inproc", "process" or "remote" (for HELLO) */
    const cairn_plugin_t *plugin;
    atomic_int *stop;      /* set non-zero to make the loop drain and return */
    bool reconnect;        /* re-HELLO when the kernel goes silent (not inproc) */
    const char *state_dir; /* overrides the kernel's (remote hosts); may be NULL */
    cairn_door_t *door;    /* inproc only: the kernel's side door; may be NULL */
    /* CurveZMQ (remote hosts; docs/TRANSPORT.md): the kernel's public key
     * and this host's secret key, each a key or a file holding one, as
     * cairn_curve_client takes them; NULL: none. Used for the worker
     * socket and for the event bus of a tcp:// address. */
    const char *curve_server_key, *curve_client_key;
} cairn_runtime_opts_t;

/* Run the worker loop until DISCONNECT, *stop, or a fatal error.
 * Returns 0 on a clean end, -1 with err otherwise (init failure included). */
CAIRN_EXPORT int cairn_runtime_run(const cairn_runtime_opts_t *opts, cairn_err_t *err);

#endif
