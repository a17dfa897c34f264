/* Unit tests of the service map parser (kernel/conf.c): a table of conf
 * texts, each either accepted or refused with a sentence that names the
 * source and the LINE; conf_parse_size; the defaults; the embedded default
 * and the conf files shipped in conf/.
 *
 * Each table case runs in a child process, so that a parser crash on one
 * hostile input shows as that case's failure (with its signal) and the rest
 * still run. Under ASan the child's leak check counts too. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cairn/msg.h"
#include "conf.h"
#include "unit.h"

#define SRC "t.yaml"

typedef enum { OK, FAIL, EITHER } want_t;

typedef struct conf_case {
    int line; /* of this table row, for messages */
    want_t want;
    const char *text;
    const char *err1; /* FAIL: substrings the sentence must hold */
    const char *err2;
} conf_case_t;

#define K "kernel:\n  auth: none\n"
#define SVC_ECHO "services:\n  echo:\n    plugin: echo\n    mode: inproc\n"

static const conf_case_t s_cases[] = {
    /* ---- accepted ---- */
    {__LINE__, OK, K, NULL, NULL},
    {__LINE__, OK, K SVC_ECHO, NULL, NULL},
    {__LINE__, OK, "kernel: {auth: none}\nservices: {}\n", NULL, NULL},
    {__LINE__, OK,
     "{kernel: {auth: none}, services: {echo: {plugin: echo, mode: process}}}", NULL,
     NULL},
    /* A non-loopback endpoint with auth none is the broker's to refuse, not
     * the parser's. */
    {__LINE__, OK, "kernel:\n  endpoint: tcp://0.0.0.0:7780\n  auth: none\n", NULL,
     NULL},
    {__LINE__, OK,
     "kernel:\n  auth: auth\n  worker_endpoint: tcp://10.0.0.1:7790\nservices:\n  "
     "auth:\n    plugin: auth\n    mode: inproc\n",
     NULL, NULL},
    /* kernel.auth must name a service of the conf. */
    {__LINE__, FAIL, "kernel:\n  auth: auth\n", "names the service 'auth'", NULL},
    {__LINE__, OK, K "  max_frame: 1\n  max_queue: 4294967295\n", NULL, NULL},
    {__LINE__, OK, K "  max_frame: 2GiB\n", NULL, NULL},
    {__LINE__, OK,
     K "services:\n  a1_b:\n    plugin: /opt/x/cairn_echo.so\n    mode: remote\n"
       "    settings:\n      greeting: hi\n      allow_crash: 'true'\n",
     NULL, NULL},
    /* An empty settings map, and settings before plugin. */
    {__LINE__, OK,
     K "services:\n  echo:\n    settings: {}\n    mode: inproc\n    plugin: echo\n",
     NULL, NULL},
    /* Anchors and aliases share a node; two services from one entry. */
    {__LINE__, OK, K "services:\n  a: &e {plugin: echo, mode: inproc}\n  b: *e\n", NULL,
     NULL},
    /* Only the first document counts. */
    {__LINE__, OK, "---\n" K "---\nnonsense: [\n", NULL, NULL},
    {__LINE__, OK, "# a comment\n\n" K "# trailing\n", NULL, NULL},

    /* ---- refused, with the line ---- */
    {__LINE__, FAIL, "kernel:\n  auth: none\n  bogus: 1\n",
     SRC ":3: ", "unknown key 'bogus' in 'kernel'"},
    {__LINE__, FAIL, "# one\n# two\n\nkernel:\n  auth: none\n  endpointt: x\n",
     SRC ":6: ", "unknown key 'endpointt'"},
    {__LINE__, FAIL, K "services:\n  echo:\n    plugin: echo\n    mode: thread\n",
     SRC ":6: ", "mode must be inproc, process or remote, not 'thread'"},
    {__LINE__, FAIL, K "services:\n  echo:\n    plugin: echo\n    mode: [inproc]\n",
     SRC ":6: ", "services.echo.mode"},
    {__LINE__, FAIL, "kernel:\n  endpoint: tcp://127.0.0.1:1\n",
     SRC ":1: ", "kernel.auth is required"},
    {__LINE__, FAIL, SVC_ECHO, SRC ":1: ", "kernel.auth is required"},
    {__LINE__, FAIL,
     K "services:\n  echo:\n    plugin: echo\n    mode: inproc\n"
       "  echo:\n    plugin: echo\n    mode: process\n",
     SRC ":7: ", "the service 'echo' is defined twice"},
    {__LINE__, FAIL, K "services:\n  sys:\n    plugin: echo\n    mode: inproc\n",
     SRC ":4: ", "'sys'"},
    {__LINE__, FAIL, "kernel:\n  auth: none\n  max_frame: 12XB\n", SRC ":3: ",
     "kernel.max_frame must be a size such as 65536, 64KiB or 16MiB, not '12XB'"},
    {__LINE__, FAIL, K "  max_frame: 0\n", SRC ":3: ", "kernel.max_frame"},
    {__LINE__, FAIL, K "  max_frame: -1\n", SRC ":3: ", "kernel.max_frame"},
    {__LINE__, FAIL, K "  max_frame: 64 MiB\n", SRC ":3: ", "'64 MiB'"},
    {__LINE__, FAIL, K "  max_frame: 18446744073709551615GiB\n",
     SRC ":3: ", "kernel.max_frame"},
    {__LINE__, FAIL, K "  max_queue: 0\n",
     SRC ":3: ", "kernel.max_queue must be a positive integer, not '0'"},
    {__LINE__, FAIL, K "  max_queue: -5\n", SRC ":3: ", "kernel.max_queue"},
    {__LINE__, FAIL, K "  max_queue: 4294967296\n", SRC ":3: ", "kernel.max_queue"},
    {__LINE__, FAIL, K "  liveness: five\n", SRC ":3: ", "kernel.liveness"},
    {__LINE__, FAIL, K "  heartbeat_ms: 10ms\n", SRC ":3: ", "kernel.heartbeat_ms"},
    {__LINE__, FAIL, K "  default_ttl_ms: 1.5\n", SRC ":3: ", "kernel.default_ttl_ms"},
    {__LINE__, FAIL, K "  endpoint: [a, b]\n",
     SRC ":3: ", "kernel.endpoint must be a single value"},
    {__LINE__, FAIL, K "  state_dir: {a: b}\n", SRC ":3: ", "kernel.state_dir"},
    {__LINE__, FAIL, "kernel: 5\n", SRC ":1: ", "'kernel' must be a map"},
    {__LINE__, FAIL, "kernel:\n", SRC ":1: ", "'kernel' must be a map"},
    {__LINE__, FAIL, "kernel:\n  - auth\n  - none\n",
     SRC ":2: ", "'kernel' must be a map"},
    {__LINE__, FAIL, K "services: [echo]\n", SRC ":3: ", "'services' must be a map"},
    {__LINE__, FAIL, K "services: echo\n", SRC ":3: ", "'services' must be a map"},
    {__LINE__, FAIL, K "services:\n  echo: inproc\n",
     SRC ":4: ", "services.echo must be a map"},
    {__LINE__, FAIL, K "servics:\n  echo: {}\n",
     SRC ":3: ", "unknown top-level key 'servics'"},
    {__LINE__, FAIL, "- kernel\n- services\n", SRC ":1: ", "top level must be a map"},
    {__LINE__, FAIL, "just words\n", SRC ":1: ", "top level must be a map"},
    {__LINE__, FAIL, "", SRC ":1: ", "empty"},
    {__LINE__, FAIL, "# only a comment\n", SRC ":1: ", "empty"},
    /* Services: names, keys, plugin, mode. */
    {__LINE__, FAIL, K "services:\n  Echo:\n    plugin: echo\n    mode: inproc\n",
     SRC ":4: ", "service name 'Echo'"},
    {__LINE__, FAIL, K "services:\n  1echo:\n    plugin: echo\n    mode: inproc\n",
     SRC ":4: ", "service name '1echo'"},
    {__LINE__, FAIL, K "services:\n  my-echo:\n    plugin: echo\n    mode: inproc\n",
     SRC ":4: ", "service name 'my-echo'"},
    {__LINE__, FAIL,
     K "services:\n  "
       "a234567890123456789012345678901234567890123456789012345678901234x:\n"
       "    plugin: echo\n    mode: inproc\n",
     SRC ":4: ", "service name"},
    {__LINE__, FAIL, K "services:\n  echo:\n    mode: inproc\n",
     SRC ":5: ", "services.echo lacks 'plugin'"},
    {__LINE__, FAIL, K "services:\n  echo:\n    plugin: echo\n",
     SRC ":5: ", "services.echo lacks 'mode'"},
    {__LINE__, FAIL, K "services:\n  echo:\n    plugin: ''\n    mode: inproc\n",
     SRC ":5: ", "services.echo.plugin must be a name or a path"},
    {__LINE__, FAIL, K "services:\n  echo:\n    plugin: [a]\n    mode: inproc\n",
     SRC ":5: ", "services.echo.plugin"},
    {__LINE__, FAIL,
     K "services:\n  echo:\n    plugin: echo\n    mode: inproc\n    plugn: x\n",
     SRC ":7: ", "unknown key 'plugn' in services.echo"},
    /* Settings. */
    {__LINE__, FAIL,
     K "services:\n  echo:\n    plugin: echo\n    mode: inproc\n    settings: [a, b]\n",
     SRC ":7: ", "services.echo.settings must be a map"},
    {__LINE__, FAIL,
     K
     "services:\n  echo:\n    plugin: echo\n    mode: inproc\n    settings: greeting\n",
     SRC ":7: ", "services.echo.settings must be a map"},
    {__LINE__, FAIL,
     K "services:\n  echo:\n    plugin: echo\n    mode: inproc\n    settings:\n"
       "      greeting: [a]\n",
     SRC ":8: ", "services.echo.settings values must be single values"},
    {__LINE__, FAIL,
     K "services:\n  echo:\n    plugin: echo\n    mode: inproc\n    settings:\n"
       "      greeting: a\n      greeting: b\n",
     SRC ":9: ", "services.echo.settings.greeting is given twice"},
    /* Not YAML at all: libyaml's own sentence, still with the line. */
    {__LINE__, FAIL, "kernel:\n\tauth: none\n", SRC ":2: ", NULL},
    {__LINE__, FAIL, K "services: [a\n", SRC ":4: ", NULL},
    {__LINE__, FAIL, K "services:\n  echo: {plugin: echo, mode: inproc\n",
     SRC ":5: ", NULL},
    {__LINE__, FAIL, K "  endpoint: \"unterminated\n", SRC ":4: ", NULL},
    {__LINE__, FAIL, K "  state_dir: *nope\n", SRC ":3: ", NULL},
    {__LINE__, FAIL, "kernel:\n  auth: none\n    endpoint: x\n", SRC ":3: ", NULL},

    /* ---- repeated keys: libyaml keeps both, so conf.c must cope ---- */
    /* A second 'services' map would silently replace or merge the first;
     * it must be refused like every other duplicate, at its own line. */
    {__LINE__, FAIL,
     K
     "services:\n  a: {plugin: echo, mode: inproc}\n  b: {plugin: echo, mode: inproc}\n"
     "services:\n  c: {plugin: echo, mode: inproc}\n",
     SRC ":6: ", "services"},
    /* A second 'settings' map in one service, likewise. */
    {__LINE__, FAIL,
     K "services:\n  a:\n    plugin: echo\n    mode: inproc\n"
       "    settings: {x: '1', y: '2'}\n    settings: {z: '3'}\n",
     SRC ":8: ", "settings"},
    /* Repeated scalar keys: either answer, but no crash and no leak. */
    {__LINE__, EITHER,
     "kernel:\n  auth: none\n  auth: auth\n  endpoint: a\n  endpoint: b\n", NULL, NULL},
    {__LINE__, EITHER, "kernel:\n  auth: none\nkernel:\n  auth: none\n", NULL, NULL},
    {__LINE__, EITHER,
     K "services:\n  a:\n    plugin: echo\n    plugin: other\n    mode: inproc\n"
       "    mode: process\n",
     NULL, NULL},
};

/* Run one case in this process; returns the number of failed checks. */
static int run_case(const conf_case_t *c)
{
    int f0 = unit_failed_;
    cairn_err_t e = {0};
    conf_t *conf = conf_parse(c->text, strlen(c->text), SRC, &e);
    if (c->want == OK) {
        if (!CHECK(conf != NULL)) fprintf(stderr, "     refused: %s\n", e.msg);
    } else if (c->want == FAIL) {
        if (!CHECK(conf == NULL)) fprintf(stderr, "     accepted, want a refusal\n");
        if (!conf) {
            CHECK_EQ(e.st, 400);
            CHECK_STR(e.code, "bad_conf");
            CHECK(strncmp(e.msg, SRC ":", strlen(SRC ":")) == 0);
            if (c->err1) CHECK_HAS(e.msg, c->err1);
            if (c->err2) CHECK_HAS(e.msg, c->err2);
        }
    }
    conf_destroy(&conf);
    CHECK(conf == NULL);
    return unit_failed_ - f0;
}

TEST(table)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof *s_cases; i++) {
        const conf_case_t *c = &s_cases[i];
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(!"fork failed");
            return;
        }
        if (pid == 0) exit(run_case(c) ? 1 : 0); /* exit(): LSan runs */
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!CHECK(ok)) {
            if (WIFSIGNALED(status))
                fprintf(stderr,
                        "     case at line %d: the parser crashed (signal %d)\n",
                        c->line, WTERMSIG(status));
            else
                fprintf(stderr,
                        "     case at line %d: exit %d (failed checks, or a "
                        "sanitizer report above)\n",
                        c->line, WEXITSTATUS(status));
        }
    }
}

TEST(parse_size)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t v;
    } t[] = {
        {"65536", 0, 65536},
        {"0", 0, 0},
        {"1", 0, 1},
        {"64KiB", 0, 65536},
        {"16MiB", 0, 16ull << 20},
        {"2GiB", 0, 2ull << 30},
        {"0KiB", 0, 0},
        {"18446744073709551615", 0, UINT64_MAX},
        {"17179869183GiB", 0, 17179869183ull << 30},
        {"17179869184GiB", -1, 0}, /* 2^64: overflow */
        {"18014398509481984KiB", -1, 0},
        {"18446744073709551616", -1, 0}, /* ERANGE */
        {"", -1, 0},
        {"KiB", -1, 0},
        {"12XB", -1, 0},
        {"12K", -1, 0},
        {"12kib", -1, 0},
        {"12KB", -1, 0},
        {"12 KiB", -1, 0},
        {"12KiB ", -1, 0},
        {"1.5MiB", -1, 0},
        {"0x10", -1, 0},
        {"-1", -1, 0},
        {"-0", -1, 0},
        {"abc", -1, 0},
        {"12KiBKiB", -1, 0},
        /* A sign after leading blanks is still a negative number: strtoull
         * would wrap " -1" to 2^64-1. */
        {" -1", -1, 0},
        {"\t-2", -1, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        uint64_t v = 12345;
        int rc = conf_parse_size(t[i].s, &v);
        if (!CHECK(rc == t[i].rc && (rc != 0 || v == t[i].v)))
            fprintf(stderr, "     conf_parse_size(\"%s\") = %d, %ju; want %d, %ju\n",
                    t[i].s, rc, (uintmax_t)v, t[i].rc, (uintmax_t)t[i].v);
    }
}

TEST(defaults)
{
    cairn_err_t e = {0};
    const char *text = "kernel:\n  auth: none\n";
    conf_t *c = conf_parse(text, strlen(text), SRC, &e);
    if (!CHECK(c)) {
        fprintf(stderr, "     %s\n", e.msg);
        return;
    }
    CHECK_STR(c->source, SRC);
    CHECK_STR(c->endpoint, "tcp://127.0.0.1:7780");
    CHECK_STR(c->endpoint, CAIRN_DEFAULT_ENDPOINT);
    CHECK_STR(c->events, "tcp://127.0.0.1:7781");
    CHECK_STR(c->worker_endpoint, "");
    CHECK_STR(c->state_dir, "./var");
    CHECK_STR(c->plugin_dir, "");
    CHECK_STR(c->auth, "none");
    CHECK_UEQ(c->max_frame, 64ull << 20);
    CHECK_UEQ(c->max_queue, 10000);
    CHECK_UEQ(c->default_ttl_ms, 30000);
    CHECK_UEQ(c->max_ttl_ms, 3600000);
    CHECK_UEQ(c->heartbeat_ms, 1000);
    CHECK_UEQ(c->liveness, 5);
    CHECK_UEQ(c->nservices, 0);
    conf_destroy(&c);
    CHECK(c == NULL);
    conf_destroy(&c); /* safe twice */
    conf_destroy(NULL);
}

TEST(values_and_services)
{
    cairn_err_t e = {0};
    const char *text =
        "kernel:\n"
        "  endpoint: tcp://127.0.0.1:9000\n"
        "  events: tcp://127.0.0.1:9001\n"
        "  worker_endpoint: tcp://127.0.0.1:9002\n"
        "  state_dir: /tmp/state\n"
        "  plugin_dir: /opt/plugins\n"
        "  auth: far\n"
        "  max_frame: 1KiB\n"
        "  max_queue: 7\n"
        "  default_ttl_ms: 100\n"
        "  max_ttl_ms: 200\n"
        "  heartbeat_ms: 50\n"
        "  liveness: 3\n"
        "services:\n"
        "  echo:\n"
        "    plugin: echo\n"
        "    mode: inproc\n"
        "  worker2:\n"
        "    plugin: /x/cairn_echo.so\n"
        "    mode: process\n"
        "    settings:\n"
        "      greeting: \"hi there\"\n"
        "      allow_crash: true\n"
        "      n: 12\n"
        "  far:\n"
        "    mode: remote\n"
        "    plugin: echo\n";
    conf_t *c = conf_parse(text, strlen(text), "x.yaml", &e);
    if (!CHECK(c)) {
        fprintf(stderr, "     %s\n", e.msg);
        return;
    }
    CHECK_STR(c->endpoint, "tcp://127.0.0.1:9000");
    CHECK_STR(c->events, "tcp://127.0.0.1:9001");
    CHECK_STR(c->worker_endpoint, "tcp://127.0.0.1:9002");
    CHECK_STR(c->state_dir, "/tmp/state");
    CHECK_STR(c->plugin_dir, "/opt/plugins");
    CHECK_STR(c->auth, "far");
    CHECK_UEQ(c->max_frame, 1024);
    CHECK_UEQ(c->max_queue, 7);
    CHECK_UEQ(c->default_ttl_ms, 100);
    CHECK_UEQ(c->max_ttl_ms, 200);
    CHECK_UEQ(c->heartbeat_ms, 50);
    CHECK_UEQ(c->liveness, 3);
    if (CHECK(c->nservices == 3)) {
        const conf_service_t *s = c->services;
        CHECK_STR(s[0].name, "echo");
        CHECK_STR(s[0].plugin, "echo");
        CHECK_EQ(s[0].mode, CONF_INPROC);
        CHECK_UEQ(s[0].nsettings, 0);
        CHECK_EQ(s[0].line, 15);
        CHECK_STR(s[1].name, "worker2");
        CHECK_STR(s[1].plugin, "/x/cairn_echo.so");
        CHECK_EQ(s[1].mode, CONF_PROCESS);
        CHECK_EQ(s[1].line, 18);
        if (CHECK(s[1].nsettings == 3)) {
            CHECK_STR(s[1].keys[0], "greeting");
            CHECK_STR(s[1].vals[0], "hi there");
            CHECK_STR(s[1].keys[1], "allow_crash");
            CHECK_STR(s[1].vals[1], "true");
            CHECK_STR(s[1].keys[2], "n");
            CHECK_STR(s[1].vals[2], "12");
        }
        CHECK_STR(s[2].name, "far");
        CHECK_EQ(s[2].mode, CONF_REMOTE);
        CHECK_EQ(s[2].line, 25);
    }
    conf_destroy(&c);

    CHECK_STR(conf_mode_name(CONF_INPROC), "inproc");
    CHECK_STR(conf_mode_name(CONF_PROCESS), "process");
    CHECK_STR(conf_mode_name(CONF_REMOTE), "remote");
}

TEST(embedded_default)
{
    cairn_err_t e = {0};
    conf_t *c = conf_parse(conf_embedded_default, strlen(conf_embedded_default),
                           "(embedded default)", &e);
    if (!CHECK(c)) {
        fprintf(stderr, "     %s\n", e.msg);
        return;
    }
    CHECK_STR(c->endpoint, CAIRN_DEFAULT_ENDPOINT);
    CHECK(c->auth != NULL);
    CHECK(c->nservices >= 1);
    bool has_echo = false;
    for (size_t i = 0; i < c->nservices; i++) {
        CHECK(c->services[i].name && c->services[i].plugin);
        if (!strcmp(c->services[i].name, "echo")) has_echo = true;
    }
    CHECK(has_echo);
    conf_destroy(&c);
}

TEST(shipped_files)
{
    /* Every shipped conf/NAME.yaml in the source tree loads, through conf_load_file. */
    const char *src = getenv("CAIRN_SOURCE_DIR");
    if (!src) {
        printf("     (CAIRN_SOURCE_DIR unset: shipped confs not checked)\n");
        return;
    }
    const char *names[] = {"cairn.yaml", "process.yaml", "remote.example.yaml"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/conf/%s", src, names[i]);
        if (access(path, R_OK) != 0) continue;
        cairn_err_t e = {0};
        conf_t *c = conf_load_file(path, &e);
        if (!CHECK(c)) fprintf(stderr, "     %s\n", e.msg);
        if (c) CHECK_STR(c->source, path);
        conf_destroy(&c);
    }
}

TEST(load_file)
{
    char dir[] = "/tmp/cairn-test-conf-XXXXXX";
    if (!CHECK(mkdtemp(dir))) return;
    char path[256];
    snprintf(path, sizeof path, "%s/bad.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!CHECK(f)) return;
    fputs("kernel:\n  auth: none\n\n  nope: 1\n", f);
    fclose(f);
    cairn_err_t e = {0};
    conf_t *c = conf_load_file(path, &e);
    CHECK(c == NULL);
    char want[300];
    snprintf(want, sizeof want, "%s:4: unknown key 'nope'", path);
    CHECK_HAS(e.msg, want);
    conf_destroy(&c);

    f = fopen(path, "w");
    if (!CHECK(f)) return;
    fputs("kernel:\n  auth: none\n", f);
    fclose(f);
    c = conf_load_file(path, &e);
    CHECK(c != NULL);
    conf_destroy(&c);

    /* An empty file. */
    f = fopen(path, "w");
    if (f) fclose(f);
    cairn_err_clear(&e);
    c = conf_load_file(path, &e);
    CHECK(c == NULL);
    CHECK_HAS(e.msg, "empty");
    unlink(path);

    /* A missing file names itself. */
    cairn_err_clear(&e);
    c = conf_load_file(path, &e);
    CHECK(c == NULL);
    CHECK_EQ(e.st, 400);
    CHECK_HAS(e.msg, path);
    /* A directory is not a conf. */
    cairn_err_clear(&e);
    c = conf_load_file(dir, &e);
    CHECK(c == NULL);
    CHECK(e.st != 0);
    conf_destroy(&c);
    rmdir(dir);
}

TEST(not_nul_terminated)
{
    /* conf_parse takes (text, len): bytes past len are not read. */
    const char text[] = "kernel:\n  auth: none\nGARBAGE: [";
    cairn_err_t e = {0};
    conf_t *c = conf_parse(text, strlen("kernel:\n  auth: none\n"), SRC, &e);
    if (!CHECK(c)) fprintf(stderr, "     %s\n", e.msg);
    conf_destroy(&c);
    char *heap = malloc(21);
    if (!CHECK(heap)) return;
    memcpy(heap, "kernel:\n  auth: none\n", 21); /* no NUL */
    c = conf_parse(heap, 21, SRC, &e);
    CHECK(c != NULL);
    conf_destroy(&c);
    free(heap);
}

int main(void)
{
    RUN(table);
    RUN(parse_size);
    RUN(defaults);
    RUN(values_and_services);
    RUN(embedded_default);
    RUN(shipped_files);
    RUN(load_file);
    RUN(not_nul_terminated);
    return unit_report();
}
