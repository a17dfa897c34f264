/* cairn-plugin-host — runs one plugin .so as its own process.
 *
 *   cairn-plugin-host --plugin PATH --service NAME --endpoint ADDR
 *                     [--parent-pid PID] [--mode process|remote] [--state DIR]
 *                     [--server-key KEY] [--key KEY]
 *
 * cairnd starts it for process-mode services (over ipc://, with
 * --parent-pid so that the host dies with its kernel); an operator starts it
 * by hand on another machine for remote ones (over tcp://). The loop is the
 * same worker runtime cairnd uses for inproc plugins.
 *
 * A remote host connecting to a kernel's CurveZMQ endpoint (an address that
 * is not loopback; docs/TRANSPORT.md) needs the kernel's public key
 * (--server-key, else $CAIRN_SERVER_KEY) and its own secret key (--key,
 * else $CAIRN_CLIENT_KEY), each a key or a file holding one; its public
 * key must be in the kernel's curve_allowed_keys.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <sodium.h>

#include "cairn/client.h"

#include "runtime.h"

static atomic_int s_stop;

static void s_on_term(int sig)
{
    (void)sig;
    atomic_store(&s_stop, 1);
}

static int s_usage(void)
{
    fprintf(stderr,
            "usage: cairn-plugin-host --plugin PATH --service NAME --endpoint ADDR "
            "[--parent-pid PID] [--mode process|remote] [--state DIR] "
            "[--server-key KEY] [--key KEY]\n"
            "  --server-key KEY  the kernel's CurveZMQ public key, or its file "
            "(default: $CAIRN_SERVER_KEY)\n"
            "  --key KEY         this host's CurveZMQ secret key, or its file "
            "(default: $CAIRN_CLIENT_KEY)\n");
    return 2;
}

/* The CurveZMQ keys, read once: the flags', else (a remote host only: a
 * process-mode host talks ipc:// to its kernel) the environment's. Both
 * empty: none. -1 with err when one cannot be read or the secret key is
 * missing. */
static int s_curve_keys(const char *mode, const char *server, const char *key,
                        char *server_z85, char *key_z85, cairn_err_t *err)
{
    server_z85[0] = key_z85[0] = '\0';
    bool remote = !strcmp(mode, "remote");
    if (!server && remote) server = getenv("CAIRN_SERVER_KEY");
    if (!key && remote) key = getenv("CAIRN_CLIENT_KEY");
    if (!server || !*server) return 0;
    if (!key || !*key)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_ENDPOINT,
                             "a server key is given, but no key of this host: give "
                             "--key FILE (or CAIRN_CLIENT_KEY; make one with `cairn "
                             "keygen --out PREFIX`)");
    if (cairn_key_load(server, "--server-key", server_z85, err) != 0) return -1;
    return cairn_key_load(key, "--key", key_z85, err);
}

/* Buffers of a MiB and more (artifact chunks, the bus's copies of them)
 * are mapped on their own and unmapped when freed. glibc would otherwise
 * raise its mmap threshold after the first such free and serve later ones
 * from the heap of whichever thread asked, where they stay resident:
 * a host's memory would follow its threads' past peaks. */
static void s_bound_big_buffers(void)
{
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    /* Setting the threshold also fixes the trim threshold at 128 KiB, so
     * that the heap would be given back and faulted in again at every
     * request of a few hundred KiB (a log-batch's body): keep 8 MiB. */
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
}

int main(int argc, char **argv)
{
    const char *plugin = NULL, *service = NULL, *endpoint = NULL, *mode = NULL;
    const char *state = NULL, *server_key = NULL, *key = NULL;
    long parent = 0;
    s_bound_big_buffers();
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--plugin"))
            plugin = argv[i + 1];
        else if (!strcmp(argv[i], "--service"))
            service = argv[i + 1];
        else if (!strcmp(argv[i], "--endpoint"))
            endpoint = argv[i + 1];
        else if (!strcmp(argv[i], "--state"))
            state = argv[i + 1];
        else if (!strcmp(argv[i], "--mode"))
            mode = argv[i + 1];
        else if (!strcmp(argv[i], "--server-key"))
            server_key = argv[i + 1];
        else if (!strcmp(argv[i], "--key"))
            key = argv[i + 1];
        else if (!strcmp(argv[i], "--parent-pid"))
            parent = strtol(argv[i + 1], NULL, 10);
        else
            return s_usage();
    }
    if (!plugin || !service || !endpoint) return s_usage();
    if (!mode) mode = parent ? "process" : "remote";
    if (parent) {
        /* Die with the kernel that started us; it may already be gone. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != (pid_t)parent) return 3;
    }
    /* As cairnd's own (which a process-mode host inherits): what a plugin
     * creates is its owner's only. */
    umask(077);
    struct sigaction sa = {.sa_handler = s_on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    cairn_err_t err = {0};
    char server_z85[CAIRN_KEY_Z85_LEN + 1], key_z85[CAIRN_KEY_Z85_LEN + 1];
    if (s_curve_keys(mode, server_key, key, server_z85, key_z85, &err) != 0) {
        fprintf(stderr, "cairn-plugin-host: %s\n", err.msg);
        return 2;
    }
    bool curve = server_z85[0] != '\0';
    cairn_loaded_t loaded;
    if (cairn_plugin_load(plugin, NULL, &loaded, &err) != 0) {
        fprintf(stderr, "cairn-plugin-host: %s\n", err.msg);
        return 3;
    }
    void *zctx = zmq_ctx_new();
    cairn_runtime_opts_t opts = {.zctx = zctx,
                                 .endpoint = endpoint,
                                 .service = service,
                                 .mode = mode,
                                 .plugin = loaded.plugin,
                                 .stop = &s_stop,
                                 .reconnect = true,
                                 .state_dir = state,
                                 .curve_server_key = curve ? server_z85 : NULL,
                                 .curve_client_key = curve ? key_z85 : NULL};
    int rc = cairn_runtime_run(&opts, &err);
    /* Asked to stop (SIGTERM, as cairnd does when it stops) while saying
     * HELLO again: a normal stop, not a failure. */
    if (rc != 0 && atomic_load(&s_stop) && !strcmp(err.code, CAIRN_E_STOPPED)) rc = 0;
    if (rc != 0) fprintf(stderr, "cairn-plugin-host[%s]: %s\n", service, err.msg);
    zmq_ctx_term(zctx);
    sodium_memzero(key_z85, sizeof key_z85);
    cairn_plugin_unload(&loaded);
    return rc == 0 ? 0 : 1;
}
