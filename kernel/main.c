/* cairnd — the Cairn kernel.
 *
 *   cairnd [--conf PATH] [--state DIR] [--check] [--help] [--help-conf]
 *
 * With no --conf it runs the embedded default service map. The state dir is
 * --state, else $CAIRN_STATE, else the conf's kernel.state_dir (./var); a
 * relative one is taken from the directory cairnd starts in and made
 * absolute at once. $CAIRN_ENDPOINT, when set, overrides the frontend address.
 *
 * cairnd keeps its state private: its umask is 077 from the start, so every
 * file and directory it, its inproc plugins and its plugin processes create
 * (databases, journals, artifacts, sockets, its pid file) is the owner's
 * only. It writes its pid to STATE/cairnd.pid, held locked while it runs and
 * removed when it exits, and refuses to start on a state dir whose pid file
 * a running cairnd holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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
            "  --check       validate the conf and its plugins, then exit (binds and "
            "creates nothing)\n"
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

/* path made absolute against the working directory (not resolved: it may
 * not exist yet). */
static char *s_absolute(const char *path)
{
    if (path[0] == '/') return strdup(path);
    char cwd[PATH_MAX], *out = NULL;
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    while (path[0] == '.' && path[1] == '/') path += 2;
    if (!strcmp(path, ".")) path = "";
    if (asprintf(&out, "%s%s%s", cwd, *path && strcmp(cwd, "/") ? "/" : "", path) < 0)
        return NULL;
    return out;
}

/* mkdir -p, each new directory 0700. */
static int s_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* The state dir, made if missing (0700), as a canonical absolute path;
 * NULL after saying why. */
static char *s_open_state(const char *state)
{
    char *abs = s_absolute(state), *real = NULL;
    if (!abs) {
        fprintf(stderr, "cairnd: cannot make the state dir %s absolute: %s\n", state,
                strerror(errno));
        return NULL;
    }
    struct stat st;
    if (s_mkdirs(abs) != 0 || !(real = realpath(abs, NULL)) || stat(real, &st) != 0) {
        fprintf(stderr, "cairnd: cannot create the state dir %s: %s\n", abs,
                strerror(errno));
        free(abs);
        free(real);
        return NULL;
    }
    free(abs);
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "cairnd: the state dir %s is not a directory\n", real);
        free(real);
        return NULL;
    }
    if (st.st_mode & 077)
        fprintf(stderr,
                "cairnd: warning: the state dir %s is open to other users (mode %04o); "
                "cairnd makes its own files private, but consider: chmod 700 %s\n",
                real, (unsigned)(st.st_mode & 07777), real);
    return real;
}

typedef struct pidfile {
    char *path;
    int fd;
} pidfile_t;

/* Take STATE/cairnd.pid: created 0600, locked (flock) for as long as this
 * cairnd runs, holding its pid. -1 after saying why, e.g. when another
 * cairnd holds it. A file left by a cairnd that died is simply taken. */
static int s_pidfile_take(pidfile_t *pf, const char *state)
{
    if (asprintf(&pf->path, "%s/cairnd.pid", state) < 0) {
        pf->path = NULL;
        fprintf(stderr, "cairnd: out of memory\n");
        return -1;
    }
    for (int tries = 0; tries < 10; tries++) {
        int fd = open(pf->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            fprintf(stderr, "cairnd: cannot create the pid file %s: %s\n", pf->path,
                    strerror(errno));
            break;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            char buf[32] = {0};
            ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
            long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
            close(fd);
            if (pid > 0)
                fprintf(
                    stderr,
                    "cairnd: another cairnd (pid %ld) is running with the state dir "
                    "%s; stop it first (kill %ld), or give this one another state "
                    "dir (--state DIR)\n",
                    pid, state, pid);
            else
                fprintf(stderr,
                        "cairnd: another cairnd is running with the state dir %s (its "
                        "pid file %s is locked); stop it first, or give this one "
                        "another state dir (--state DIR)\n",
                        state, pf->path);
            break;
        }
        /* The file may have been removed by a cairnd that exited between
         * our open and our lock: lock the file that is there now. */
        struct stat a, b;
        if (fstat(fd, &a) != 0 || stat(pf->path, &b) != 0 || a.st_ino != b.st_ino ||
            a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (fchmod(fd, 0600) != 0 || ftruncate(fd, 0) != 0 ||
            pwrite(fd, buf, (size_t)len, 0) != len) {
            fprintf(stderr, "cairnd: cannot write the pid file %s: %s\n", pf->path,
                    strerror(errno));
            unlink(pf->path);
            close(fd);
            break;
        }
        pf->fd = fd;
        return 0;
    }
    free(pf->path);
    pf->path = NULL;
    return -1;
}

static void s_pidfile_drop(pidfile_t *pf)
{
    if (pf->fd >= 0) {
        unlink(pf->path); /* while still locked: nobody else owns it yet */
        close(pf->fd);
        pf->fd = -1;
    }
    free(pf->path);
    pf->path = NULL;
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
    /* Before anything is created: the state is the owner's only. */
    umask(077);
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
    char *plugin_dir = NULL, *state_dir = NULL;
    pidfile_t pidfile = {.fd = -1};
    bool served = false;
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
    if (conf_check_endpoint("CAIRN_ENDPOINT", endpoint, &err) != 0) {
        fprintf(stderr, "cairnd: %s\n", err.msg);
        goto done;
    }
    broker_opts_t opts = {.conf = conf,
                          .endpoint = endpoint,
                          .state_dir = state,
                          .bin_dir = bin_dir,
                          .plugin_dir = plugin_dir};
    if (check) {
        /* Nothing is bound or created: a check may run beside a live cairnd. */
        if (supervisor_check(&opts, stderr) == 0) {
            printf("cairnd: %s is valid (%zu services)\n", conf->source,
                   conf->nservices);
            rc = 0;
        }
        goto done;
    }
    if (broker_signals_init(&err) != 0) {
        fprintf(stderr, "cairnd: %s\n", err.msg);
        goto done;
    }
    if (!(state_dir = s_open_state(state)) || s_pidfile_take(&pidfile, state_dir) != 0)
        goto done;
    opts.state_dir = state_dir;
    if (!(b = broker_new(&opts, &err))) {
        fprintf(stderr, "cairnd: %s\n", err.msg);
        goto done;
    }
    fprintf(stderr, "cairnd %s: serving on %s (state %s, pid %ld, conf %s)\n",
            CAIRN_VERSION, endpoint, state_dir, (long)getpid(), conf->source);
    rc = broker_run(b, &s_stop) == 0 ? 0 : 1;
    fprintf(stderr, "cairnd: stopping\n");
    served = true;
done:
    broker_destroy(&b); /* stops the plugins */
    s_pidfile_drop(&pidfile);
    if (served) fprintf(stderr, "cairnd: stopped\n");
    conf_destroy(&conf);
    free(bin_dir);
    free(plugin_dir);
    free(state_dir);
    return rc;
}
