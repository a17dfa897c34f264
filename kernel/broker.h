/* kernel/broker.h — cairnd's broker: the frontend, routing, deadlines,
 * workers, supervision and events, all driven by one loop on the main
 * thread. */
#ifndef KERNEL_BROKER_H
#define KERNEL_BROKER_H

#include <signal.h>
#include <stdio.h>

#include "cairn/err.h"
#include "conf.h"

typedef struct broker broker_t;

typedef struct broker_opts {
    const conf_t *conf;     /* borrowed; must outlive the broker */
    const char *endpoint;   /* frontend address (conf's unless overridden) */
    const char *state_dir;  /* made if missing */
    const char *bin_dir;    /* where cairn-plugin-host lives */
    const char *plugin_dir; /* where cairn_<name>.so files live */
} broker_opts_t;

/* Bind everything and start the plugins. NULL with err on a fatal error
 * (a bad conf value, an address in use); a bad plugin is not fatal: its
 * service is marked down with the reason. */
broker_t *broker_new(const broker_opts_t *opts, cairn_err_t *err);
/* Serve until *stop becomes non-zero; then drain and stop the plugins. */
int broker_run(broker_t *self, volatile sig_atomic_t *stop);
void broker_destroy(broker_t **self_p);

/* cairnd --check: what broker_new would refuse, found without binding,
 * creating or starting anything (no sockets, no state dir, no pid file):
 * the kernel.auth rule on the addresses, and each service's plugin, loaded,
 * its settings and verb table checked, and unloaded; unlike at start, a
 * plugin that cannot be loaded counts too. Each problem is printed to out
 * on a line of its own; 0 when there are none, else -1. (supervisor.c) */
int supervisor_check(const broker_opts_t *opts, FILE *out);

/* Signal plumbing for the main loop: a signalfd for SIGCHLD, SIGINT and
 * SIGTERM, made before any thread starts so that every thread inherits the
 * blocked mask. */
int broker_signals_init(cairn_err_t *err);

#endif
