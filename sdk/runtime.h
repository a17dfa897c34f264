/* sdk/runtime.h — the worker runtime and the plugin loader (internal to
 * Cairn: linked by cairnd for inproc plugins and by cairn-plugin-host for
 * process and remote ones; one code path for every mode).
 */
#ifndef CAIRN_RUNTIME_H
#define CAIRN_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>

#include "cairn/plugin.h"

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
} cairn_runtime_opts_t;

/* Run the worker loop until DISCONNECT, *stop, or a fatal error.
 * Returns 0 on a clean end, -1 with err otherwise (init failure included). */
CAIRN_EXPORT int cairn_runtime_run(const cairn_runtime_opts_t *opts, cairn_err_t *err);

#endif
