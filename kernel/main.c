/* cairnd — the Cairn kernel.
 *
 *   cairnd [--conf PATH] [--state DIR] [--check] [--help] [--help-conf]
 *
 * With no --conf it runs the embedded default service map. The state dir is
 * --state, else $CAIRN_STATE, else the conf's kernel.state_dir (./var).
 * $CAIRN_ENDPOINT, when set, overrides the frontend address.
 */
#define _GNU_SOURCE
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "conf.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.0.0"
#endif

static volatile sig_atomic_t s_stop;

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: cairnd [--conf PATH] [--state DIR] [--check]\n"
            "  --conf PATH   the service map (default: the embedded one)\n"
            "  --state DIR   the state directory (default: $CAIRN_STATE, else the "
            "conf's kernel.state_dir)\n"
            "  --check       validate the conf and its plugins, then exit\n"
            "  --help-conf   list the conf keys\n"
            "environment: CAIRN_ENDPOINT overrides kernel.endpoint; CAIRN_PLUGIN_DIR "
            "overrides kernel.plugin_dir\n");
}

static char *s_exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return strdup(".");
    buf[n] = '\0';
    return strdup(dirname(buf));
}

#ifndef CAIRN_PLUGIN_RELDIR
#define CAIRN_PLUGIN_RELDIR "lib/cairn/plugins"
#endif

/* Beside the binaries: the install layout first, then the build tree's. */
static char *s_default_plugin_dir(const char *bin_dir)
{
    char *p = NULL;
    if (asprintf(&p, "%s/../%s", bin_dir, CAIRN_PLUGIN_RELDIR) < 0) return NULL;
    if (access(p, F_OK) == 0) return p;
    free(p);
    if (asprintf(&p, "%s/../lib/cairn/plugins", bin_dir) < 0) return NULL;
    return p;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL, *state = NULL;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--conf") && i + 1 < argc)
            conf_path = argv[++i];
        else if (!strcmp(argv[i], "--state") && i + 1 < argc)
            state = argv[++i];
        else if (!strcmp(argv[i], "--check"))
            check = true;
        else if (!strcmp(argv[i], "--help-conf")) {
            conf_print_help();
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("cairnd %s\n", CAIRN_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            s_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "cairnd: unknown argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    cairn_err_t err = {0};
    conf_t *conf =
        conf_path ? conf_load_file(conf_path, &err)
                  : conf_parse(conf_embedded_default, strlen(conf_embedded_default),
                               "(embedded default)", &err);
    if (!conf) {
        fprintf(stderr, "cairnd: %s\n", err.msg);
        return 2;
    }
    if (!state) state = getenv("CAIRN_STATE");
    if (!state || !*state) state = conf->state_dir;
    const char *endpoint = getenv("CAIRN_ENDPOINT");
    if (!endpoint || !*endpoint) endpoint = conf->endpoint;
    char *bin_dir = s_exe_dir();
    char *plugin_dir = NULL;
    const char *pd = getenv("CAIRN_PLUGIN_DIR");
    if (pd && *pd)
        plugin_dir = strdup(pd);
    else if (conf->plugin_dir && *conf->plugin_dir)
        plugin_dir = strdup(conf->plugin_dir);
    else
        plugin_dir = s_default_plugin_dir(bin_dir);
    int rc = 2;
    broker_t *b = NULL;
    if (!bin_dir || !plugin_dir) {
        fprintf(stderr, "cairnd: out of memory\n");
        goto done;
    }
    if (broker_signals_init(&err) != 0) {
        fprintf(stderr, "cairnd: %s\n", err.msg);
        goto done;
    }
    broker_opts_t opts = {.conf = conf,
                          .endpoint = endpoint,
                          .state_dir = state,
                          .bin_dir = bin_dir,
                          .plugin_dir = plugin_dir};
    if (!(b = broker_new(&opts, &err))) {
        fprintf(stderr, "cairnd: %s\n", err.msg);
        goto done;
    }
    if (check) {
        printf("cairnd: %s is valid (%zu services)\n", conf->source, conf->nservices);
        rc = 0;
        goto done;
    }
    fprintf(stderr, "cairnd %s: serving on %s (state %s, conf %s)\n", CAIRN_VERSION,
            endpoint, state, conf->source);
    rc = broker_run(b, &s_stop) == 0 ? 0 : 1;
    fprintf(stderr, "cairnd: stopping\n");
done:
    broker_destroy(&b);
    conf_destroy(&conf);
    free(bin_dir);
    free(plugin_dir);
    return rc;
}
