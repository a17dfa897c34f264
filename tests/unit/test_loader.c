/* Unit tests of the plugin loader (sdk/loader.c): cairn_plugin_load on the
 * built echo plugin and on small broken plugins compiled here at test time
 * (cc -shared -fPIC), and cairn_plugin_check_settings.
 *
 * The broken plugins are written to a temp dir and built with $CC (or cc);
 * only when no compiler exists are those cases skipped, with a message. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "unit.h"

static char s_tmp[] = "/tmp/cairn-test-loader-XXXXXX";

/* ---- the built echo plugin ------------------------------------------------ */

static const char *echo_path(void)
{
    static char path[4096];
    const char *b = getenv("CAIRN_BUILD_DIR");
    if (!b) return NULL;
    snprintf(path, sizeof path, "%s/lib/cairn/plugins/cairn_echo.so", b);
    return path;
}

TEST(load_echo)
{
    const char *path = echo_path();
    if (!path) {
        printf("     SKIP: CAIRN_BUILD_DIR is unset (run through ctest)\n");
        return;
    }
    cairn_loaded_t l;
    cairn_err_t e = {0};
    int rc = cairn_plugin_load(path, "echo", &l, &e);
    if (!CHECK(rc == 0)) {
        fprintf(stderr, "     %s\n", e.msg);
        return;
    }
    CHECK(l.dl != NULL);
    if (CHECK(l.plugin != NULL)) {
        const cairn_plugin_t *p = l.plugin;
        CHECK_STR(p->name, "echo");
        CHECK_UEQ(p->abi, CAIRN_PLUGIN_ABI);
        CHECK(p->size >= offsetof(cairn_plugin_t, tick));
        CHECK(p->init && p->fini);
        bool has_echo = false;
        for (const cairn_verb_t *v = p->verbs; v && v->name; v++)
            if (!strcmp(v->name, "echo")) has_echo = true;
        CHECK(has_echo);

        /* Its settings table, through check_settings. */
        const char *k1[] = {"greeting", "allow_crash"}, *v1[] = {"hi", "true"};
        CHECK_EQ(cairn_plugin_check_settings(p, k1, v1, 2, &e), 0);
        const char *v2[] = {"hi", "maybe"};
        cairn_err_clear(&e);
        CHECK_EQ(cairn_plugin_check_settings(p, k1, v2, 2, &e), -1);
        CHECK_HAS(e.msg, "'allow_crash'");
        CHECK_HAS(e.msg, "'maybe'");
        CHECK_EQ(cairn_plugin_check_settings(p, NULL, NULL, 0, &e), 0);
    }
    cairn_plugin_unload(&l);
    CHECK(l.dl == NULL && l.plugin == NULL);
    cairn_plugin_unload(&l); /* safe twice */
    cairn_plugin_unload(NULL);

    /* No expected name: any valid plugin loads. */
    rc = cairn_plugin_load(path, NULL, &l, &e);
    CHECK_EQ(rc, 0);
    cairn_plugin_unload(&l);
}

TEST(expect_name_mismatch)
{
    const char *path = echo_path();
    if (!path) return;
    cairn_loaded_t l;
    memset(&l, 0x5a, sizeof l);
    cairn_err_t e = {0};
    CHECK_EQ(cairn_plugin_load(path, "tracking", &l, &e), -1);
    CHECK_EQ(e.st, 400);
    CHECK_STR(e.code, "bad_plugin");
    CHECK_HAS(e.msg, path);
    CHECK_HAS(e.msg, "'echo'");
    CHECK_HAS(e.msg, "'tracking'");
    CHECK(l.dl == NULL && l.plugin == NULL); /* cleared on failure */
}

TEST(missing_file)
{
    char path[256];
    snprintf(path, sizeof path, "%s/no_such_plugin.so", s_tmp);
    cairn_loaded_t l;
    cairn_err_t e = {0};
    CHECK_EQ(cairn_plugin_load(path, NULL, &l, &e), -1);
    CHECK_EQ(e.st, 400);
    CHECK_STR(e.code, "bad_plugin");
    CHECK_HAS(e.msg, "cannot load");
    CHECK_HAS(e.msg, path);
    CHECK(l.dl == NULL && l.plugin == NULL);

    /* A file that is not a shared object. */
    snprintf(path, sizeof path, "%s/not_elf.so", s_tmp);
    FILE *f = fopen(path, "w");
    if (!CHECK(f)) return;
    fputs("this is not an ELF file\n", f);
    fclose(f);
    cairn_err_clear(&e);
    CHECK_EQ(cairn_plugin_load(path, NULL, &l, &e), -1);
    CHECK_HAS(e.msg, "not_elf.so");
}

/* ---- broken plugins built at test time ------------------------------------------- */

static const char s_prelude[] =
    "#define CAIRN_PLUGIN_SOURCE\n"
    "#include <stddef.h>\n"
    "#include \"cairn/plugin.h\"\n"
    "#define UNUSED __attribute__((unused))\n"
    "static UNUSED int p_init(cairn_ctx_t *c, void **s, cairn_err_t *e)\n"
    "{ (void)c; (void)e; *s = NULL; return 0; }\n"
    "static UNUSED void p_fini(void *s) { (void)s; }\n"
    "static UNUSED int p_verb(void *s, cairn_req_t *r, cairn_err_t *e) { (void)s; "
    "(void)r; (void)e; return 0; }\n"
    "#define DESC(NAME, ABI, SIZE, VERBS, INIT, FINI) \\\n"
    "    static const cairn_plugin_t desc = { .abi = (ABI), .size = (SIZE), \\\n"
    "        .name = (NAME), .version = \"0\", .verbs = (VERBS), \\\n"
    "        .init = (INIT), .fini = (FINI) }\n"
    "#define RDESC(ROLES) \\\n"
    "    static const cairn_plugin_t desc = { .abi = CAIRN_PLUGIN_ABI, \\\n"
    "        .size = sizeof(cairn_plugin_t), .name = \"t\", .version = \"0\", \\\n"
    "        .init = p_init, .fini = p_fini, .roles = (ROLES) }\n"
    "#define OK_VERBS \\\n"
    "    static const cairn_verb_t verbs[] = { \\\n"
    "        {\"ping\", p_verb, \"t.read\", 0, 0, \"\"}, {NULL, NULL, NULL, 0, 0, "
    "NULL} }\n";

typedef struct bad {
    const char *file; /* the .so's base name */
    const char *body; /* C after the prelude */
    const char *want1, *want2;
    int st;
} bad_t;

static const bad_t s_bad[] = {
    {"no_entry",
     "OK_VERBS;\nDESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, "
     "p_fini);\n"
     "__attribute__((visibility(\"default\"))) const void *not_the_entry(void)\n"
     "{ return &desc; }\n",
     "does not export cairn_plugin_entry", "no_entry.so", 400},
    {"wrong_abi",
     "OK_VERBS;\nDESC(\"t\", CAIRN_PLUGIN_ABI + 1, sizeof(cairn_plugin_t), verbs, "
     "p_init, "
     "p_fini);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "plugin ABI 3", "speaks ABI 2", 400},
    {"null_entry",
     "__attribute__((visibility(\"default\"))) const cairn_plugin_t *\n"
     "cairn_plugin_entry(const cairn_api_t *api) { (void)api; return NULL; }\n",
     "returned NULL", "null_entry.so", 400},
    {"dup_verbs",
     "static const cairn_verb_t verbs[] = {\n"
     "  {\"ping\", p_verb, \"t.read\", 0, 0, \"\"},\n"
     "  {\"pong\", p_verb, \"t.read\", 0, 0, \"\"},\n"
     "  {\"ping\", p_verb, \"t.write\", 0, 0, \"\"},\n"
     "  {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "DESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "verb 'ping' twice", "'t'", 409},
    {"enum_no_choices",
     "OK_VERBS;\ntypedef struct { int mode; } set_t;\n"
     "static const cairn_setting_t set[] = {{.key = \"mode\", .type = CAIRN_CONF_ENUM, "
     ".offset = offsetof(set_t, mode), .dflt = \"a\"}, {.key = NULL}};\n"
     "static const cairn_plugin_t desc = {.abi = CAIRN_PLUGIN_ABI, .size = "
     "sizeof(cairn_plugin_t), .name = \"t\", .version = \"0\", .verbs = verbs, "
     ".init = p_init, .fini = p_fini, .settings = set, .settings_size = "
     "sizeof(set_t)};\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "enum without choices", "'mode'", 400},
    {"field_outside",
     "OK_VERBS;\ntypedef struct { int a; } set_t;\n"
     "static const cairn_setting_t set[] = {{.key = \"n\", .type = CAIRN_CONF_INT, "
     ".offset = 8, .dflt = \"1\"}, {.key = NULL}};\n"
     "static const cairn_plugin_t desc = {.abi = CAIRN_PLUGIN_ABI, .size = "
     "sizeof(cairn_plugin_t), .name = \"t\", .version = \"0\", .verbs = verbs, "
     ".init = p_init, .fini = p_fini, .settings = set, .settings_size = "
     "sizeof(set_t)};\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "outside settings_size", "'n'", 400},
    {"bad_default",
     "OK_VERBS;\ntypedef struct { int64_t n; } set_t;\n"
     "static const cairn_setting_t set[] = {{.key = \"n\", .type = CAIRN_CONF_INT, "
     ".offset = 0, .dflt = \"100\", .min = 1, .max = 10}, {.key = NULL}};\n"
     "static const cairn_plugin_t desc = {.abi = CAIRN_PLUGIN_ABI, .size = "
     "sizeof(cairn_plugin_t), .name = \"t\", .version = \"0\", .verbs = verbs, "
     ".init = p_init, .fini = p_fini, .settings = set, .settings_size = "
     "sizeof(set_t)};\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "from 1 to 10", "'n'", 400},
    {"conf_and_settings",
     "OK_VERBS;\ntypedef struct { int64_t n; } set_t;\n"
     "static const cairn_setting_t set[] = {{.key = \"n\", .type = CAIRN_CONF_INT, "
     ".offset = 0, .dflt = \"1\"}, {.key = NULL}};\n"
     "static const cairn_conf_key_t keys[] = {{.key = \"n\", .type = CAIRN_CONF_INT, "
     ".dflt = \"1\"}, {.key = NULL}};\n"
     "static const cairn_plugin_t desc = {.abi = CAIRN_PLUGIN_ABI, .size = "
     "sizeof(cairn_plugin_t), .name = \"t\", .version = \"0\", .verbs = verbs, "
     ".conf = keys, .init = p_init, .fini = p_fini, .settings = set, .settings_size = "
     "sizeof(set_t)};\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "both conf and settings", "'t'", 400},
    {"no_perm",
     "static const cairn_verb_t verbs[] = {\n"
     "  {\"ping\", p_verb, \"t.read\", 0, 0, \"\"},\n"
     "  {\"open\", p_verb, NULL, CAIRN_VERB_MUTATING, 0, \"\"},\n"
     "  {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "DESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "verb 'open' declares no permission", "PUBLIC", 400},
    {"no_handler",
     "static const cairn_verb_t verbs[] = {\n"
     "  {\"ping\", NULL, \"t.read\", 0, 0, \"\"},\n"
     "  {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "DESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "verb 'ping' has no handler", NULL, 400},
    {"bad_verb_name",
     "static const cairn_verb_t verbs[] = {\n"
     "  {\"Ping-Pong\", p_verb, \"t.read\", 0, 0, \"\"},\n"
     "  {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "DESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "verb named 'Ping-Pong'", "snake_case", 400},
    {"long_verb_name",
     "static const cairn_verb_t verbs[] = {\n"
     "  {\"v1234567890123456789012345678901234567890123456789012345678901234\", "
     "p_verb, \"t.read\", 0, 0, \"\"},\n"
     "  {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "DESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "at most 64 characters", NULL, 400},
    {"no_verbs",
     "DESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), NULL, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "no verb table", NULL, 400},
    {"bad_name",
     "OK_VERBS;\nDESC(\"Bad-Name\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, "
     "p_init, p_fini);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "invalid plugin name", "bad_name.so", 400},
    {"null_name",
     "OK_VERBS;\nDESC(NULL, CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, "
     "p_fini);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "invalid plugin name", NULL, 400},
    {"tiny_size",
     "OK_VERBS;\nDESC(\"t\", CAIRN_PLUGIN_ABI, 8, verbs, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     "descriptor of 8 bytes", NULL, 400},
    {"no_init",
     "OK_VERBS;\nDESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, NULL, "
     "p_fini);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "lacks init or fini", NULL, 400},
    {"no_fini",
     "OK_VERBS;\nDESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, "
     "NULL);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "lacks init or fini", NULL, 400},
    /* Plugins with roles: each role's verb table is checked like the one
     * table of a plain plugin, and role names like plugin names. */
    {"role_bad_name",
     "OK_VERBS;\nstatic const cairn_role_t roles[] = {\n"
     "  {\"tracking\", verbs, \"\"}, {\"Bad-Role\", verbs, \"\"}, {NULL, NULL, "
     "NULL}};\n"
     "RDESC(roles);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "invalid role name", "'t'", 400},
    {"role_dup_verbs",
     "OK_VERBS;\nstatic const cairn_verb_t dup[] = {\n"
     "  {\"put\", p_verb, \"a.write\", 0, 0, \"\"},\n"
     "  {\"put\", p_verb, \"a.write\", 0, 0, \"\"}, {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "static const cairn_role_t roles[] = {\n"
     "  {\"tracking\", verbs, \"\"}, {\"artifacts\", dup, \"\"}, {NULL, NULL, NULL}};\n"
     "RDESC(roles);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "verb 'put' twice", NULL, 409},
    {"role_no_verbs",
     "static const cairn_role_t roles[] = {\n"
     "  {\"tracking\", NULL, \"\"}, {NULL, NULL, NULL}};\n"
     "RDESC(roles);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "no verb table", NULL, 400},
    {"role_no_perm",
     "static const cairn_verb_t open_verbs[] = {\n"
     "  {\"open\", p_verb, NULL, 0, 0, \"\"}, {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "static const cairn_role_t roles[] = {\n"
     "  {\"tracking\", open_verbs, \"\"}, {NULL, NULL, NULL}};\n"
     "RDESC(roles);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "verb 'open' declares no permission", NULL, 400},
    /* Two roles of one name clash like two verbs of one name: the second
     * could never be picked. */
    {"role_dup_names",
     "OK_VERBS;\nstatic const cairn_role_t roles[] = {\n"
     "  {\"tracking\", verbs, \"\"}, {\"tracking\", verbs, \"\"}, {NULL, NULL, "
     "NULL}};\n"
     "RDESC(roles);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     "tracking", NULL, 409},
};

/* Good ones built the same way: they must load, so that the refusals
 * above are about what each one breaks and not about the build. */
static const bad_t s_good[] = {
    {"good",
     "OK_VERBS;\nDESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, "
     "p_fini);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     NULL, NULL, 0},
    /* A PUBLIC verb needs no permission. */
    {"good_public",
     "static const cairn_verb_t verbs[] = {\n"
     "  {\"login\", p_verb, NULL, CAIRN_VERB_PUBLIC, 0, \"\"},\n"
     "  {\"ping_2\", p_verb, \"t.read\", 0, 0, \"\"},\n"
     "  {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "DESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     NULL, NULL, 0},
    /* An older, smaller descriptor (up to concurrency, without what came
     * after) is still ABI 1. */
    {"good_old_size",
     "OK_VERBS;\nDESC(\"t\", CAIRN_PLUGIN_ABI, offsetof(cairn_plugin_t, tick), verbs, "
     "p_init, p_fini);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     NULL, NULL, 0},
    /* An empty verb table is a table. */
    {"good_no_verbs",
     "static const cairn_verb_t verbs[] = {{NULL, NULL, NULL, 0, 0, NULL}};\n"
     "DESC(\"t\", CAIRN_PLUGIN_ABI, sizeof(cairn_plugin_t), verbs, p_init, p_fini);\n"
     "CAIRN_PLUGIN_DEFINE(desc)\n",
     NULL, NULL, 0},
    /* Roles, each with its own table; the same verb name in two roles is
     * fine (they are different services). */
    {"good_roles",
     "OK_VERBS;\nstatic const cairn_verb_t more[] = {\n"
     "  {\"ping\", p_verb, \"a.read\", 0, 0, \"\"},\n"
     "  {\"put\", p_verb, \"a.write\", CAIRN_VERB_MUTATING, 0, \"\"},\n"
     "  {NULL, NULL, NULL, 0, 0, NULL}};\n"
     "static const cairn_role_t roles[] = {\n"
     "  {\"tracking\", verbs, \"\"}, {\"artifacts\", more, \"\"}, {NULL, NULL, "
     "NULL}};\n"
     "RDESC(roles);\nCAIRN_PLUGIN_DEFINE(desc)\n",
     NULL, NULL, 0},
};

static const char *s_cc;

/* The source tree: $CAIRN_SOURCE_DIR (ctest sets it), else from __FILE__. */
static const char *source_dir(void)
{
    static char dir[4096];
    const char *s = getenv("CAIRN_SOURCE_DIR");
    if (s && *s) return s;
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *cut = strstr(dir, "/tests/unit/test_loader.c");
    if (cut)
        *cut = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    return dir;
}

/* Find a C compiler: $CC if it exists, else cc. NULL when there is none. */
static const char *find_cc(void)
{
    const char *cands[] = {getenv("CC"), "cc"};
    for (size_t i = 0; i < 2; i++) {
        const char *cc = cands[i];
        if (!cc || !*cc || strchr(cc, '\'') || strlen(cc) > 200) continue;
        /* $CC may be a command line ("ccache gcc"): look its first word up. */
        char cmd[512];
        snprintf(cmd, sizeof cmd, "command -v %.*s >/dev/null 2>&1",
                 (int)strcspn(cc, " \t"), cc);
        if (system(cmd) == 0) return cc;
    }
    return NULL;
}

/* Write and build one plugin; 0 when built. */
static int build_plugin(const bad_t *b, char *so, size_t so_len)
{
    const char *src_dir = source_dir();
    char c_path[512];
    snprintf(c_path, sizeof c_path, "%s/%s.c", s_tmp, b->file);
    snprintf(so, so_len, "%s/%s.so", s_tmp, b->file);
    FILE *f = fopen(c_path, "w");
    if (!f) return -1;
    fputs(s_prelude, f);
    fputs(b->body, f);
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s -std=c17 -shared -fPIC -fvisibility=hidden -Wall -Werror "
             "-I'%s/include' $(pkg-config --cflags msgpack 2>/dev/null) "
             "-o '%s' '%s' 2>'%s/%s.log'",
             s_cc, src_dir, so, c_path, s_tmp, b->file);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "     building %s failed: %s\n", b->file, cmd);
        char log[512];
        snprintf(log, sizeof log, "cat '%s/%s.log' >&2", s_tmp, b->file);
        if (system(log) != 0) {
        }
    }
    return rc == 0 ? 0 : -1;
}

TEST(broken_plugins_refused)
{
    if (!s_cc) {
        printf(
            "     SKIP: no C compiler (cc or $CC) found: the broken-plugin cases "
            "need one to build their .so files\n");
        return;
    }
    for (size_t i = 0; i < sizeof s_bad / sizeof *s_bad; i++) {
        const bad_t *b = &s_bad[i];
        char so[512];
        if (!CHECK(build_plugin(b, so, sizeof so) == 0)) continue;
        cairn_loaded_t l;
        memset(&l, 0x5a, sizeof l);
        cairn_err_t e = {0};
        int rc = cairn_plugin_load(so, NULL, &l, &e);
        bool ok = rc == -1 && e.st == b->st && strcmp(e.code, "bad_plugin") == 0 &&
                  strstr(e.msg, b->want1) && (!b->want2 || strstr(e.msg, b->want2)) &&
                  l.dl == NULL && l.plugin == NULL;
        if (!CHECK(ok)) {
            fprintf(stderr,
                    "     %s: rc %d, st %d, code '%s', msg '%s'; want %d '%s'%s%s%s\n",
                    b->file, rc, e.st, e.code, e.msg, b->st, b->want1,
                    b->want2 ? " and '" : "", b->want2 ? b->want2 : "",
                    b->want2 ? "'" : "");
            if (rc == 0) cairn_plugin_unload(&l);
        }
    }
}

TEST(good_plugins_load)
{
    if (!s_cc) return;
    for (size_t i = 0; i < sizeof s_good / sizeof *s_good; i++) {
        char so[512];
        if (!CHECK(build_plugin(&s_good[i], so, sizeof so) == 0)) continue;
        cairn_loaded_t l;
        cairn_err_t e = {0};
        int rc = cairn_plugin_load(so, "t", &l, &e);
        if (!CHECK(rc == 0)) {
            fprintf(stderr, "     %s: %s\n", s_good[i].file, e.msg);
            continue;
        }
        CHECK_STR(l.plugin->name, "t");
        cairn_plugin_unload(&l);
    }
}

/* ---- cairn_plugin_check_settings ---------------------------------------------------
 */

static int v_noop(void *s, cairn_req_t *r, cairn_err_t *err)
{
    (void)err; /* this verb cannot fail */
    (void)s;
    (void)r;
    return 0;
}
static int v_init(cairn_ctx_t *c, void **s, cairn_err_t *e)
{
    (void)c;
    (void)e;
    *s = NULL;
    return 0;
}
static void v_fini(void *s)
{
    (void)s;
}

static const cairn_verb_t s_verbs[] = {
    {"ping", v_noop, "t.read", 0, 0, ""},
    {NULL, NULL, NULL, 0, 0, NULL},
};
static const cairn_conf_key_t s_keys[] = {
    {"name", CAIRN_CONF_STR, "x", "a name"},
    {"count", CAIRN_CONF_INT, "1", "how many"},
    {"flag", CAIRN_CONF_BOOL, "false", "on or off"},
    {"limit", CAIRN_CONF_SIZE, "1MiB", "how big"},
    {"dir", CAIRN_CONF_PATH, "/tmp", "where"},
    {"token", CAIRN_CONF_STR, NULL, "the secret to present"},
    {NULL, 0, NULL, NULL},
};
static const cairn_plugin_t s_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "tp",
    .version = "0",
    .verbs = s_verbs,
    .conf = s_keys,
    .init = v_init,
    .fini = v_fini,
};

/* Check {token: t, key: val}; -1 or 0. */
static int check1(const char *key, const char *val, cairn_err_t *e)
{
    const char *keys[] = {"token", key}, *vals[] = {"t", val};
    cairn_err_clear(e);
    return cairn_plugin_check_settings(&s_plugin, keys, vals, 2, e);
}

static void expect_setting(const char *key, const char *val, bool ok, const char *want,
                           int line)
{
    cairn_err_t e;
    int rc = check1(key, val, &e);
    bool good;
    if (ok) {
        good = rc == 0;
    } else {
        char qk[80], qv[200];
        snprintf(qk, sizeof qk, "'%s'", key);
        snprintf(qv, sizeof qv, "'%s'", val);
        good = rc == -1 && e.st == 400 && strcmp(e.code, "bad_conf") == 0 &&
               strstr(e.msg, qk) && strstr(e.msg, "'tp'") && strstr(e.msg, want) &&
               (!*val || strstr(e.msg, qv));
    }
    if (!CHECK(good))
        fprintf(stderr, "     line %d: %s = '%s': rc %d, msg '%s'; want %s%s\n", line,
                key, val, rc, rc ? e.msg : "", ok ? "accepted" : "refused with ",
                ok ? "" : want);
}
#define GOOD(k, v) expect_setting((k), (v), true, NULL, __LINE__)
#define BAD(k, v, want) expect_setting((k), (v), false, (want), __LINE__)

TEST(check_settings_values)
{
    GOOD("name", "anything at all");
    GOOD("name", "");
    GOOD("dir", "/var/lib/x");
    GOOD("count", "0");
    GOOD("count", "42");
    GOOD("count", "-7");
    GOOD("count", "9223372036854775807");
    BAD("count", "abc", "an integer");
    BAD("count", "", "an integer");
    BAD("count", "1.5", "an integer");
    BAD("count", "12x", "an integer");
    BAD("count", "9223372036854775808", "an integer"); /* ERANGE */
    GOOD("flag", "true");
    GOOD("flag", "false");
    BAD("flag", "yes", "true or false");
    BAD("flag", "1", "true or false");
    BAD("flag", "True", "true or false");
    BAD("flag", "", "true or false");
    GOOD("limit", "4096");
    GOOD("limit", "64KiB");
    GOOD("limit", "16MiB");
    GOOD("limit", "2GiB");
    BAD("limit", "12XB", "a size");
    BAD("limit", "", "a size");
    BAD("limit", "1.5MiB", "a size");
    BAD("limit", "64 KiB", "a size");
    BAD("limit", "64kb", "a size");
    BAD("limit", "99999999999999999999", "a size");
    /* The same sizes conf_parse_size refuses for the kernel's own keys:
     * a suffix with no number, and a negative number. */
    BAD("limit", "KiB", "a size");
    BAD("limit", "-1", "a size");
}

TEST(check_settings_keys)
{
    cairn_err_t e = {0};
    /* Unknown key, naming the plugin and the key. */
    CHECK_EQ(check1("bogus", "1", &e), -1);
    CHECK_EQ(e.st, 400);
    CHECK_STR(e.code, "bad_conf");
    CHECK_HAS(e.msg, "'tp'");
    CHECK_HAS(e.msg, "'bogus'");

    /* A required key missing: named, with its help. */
    const char *keys[] = {"name", "count"}, *vals[] = {"a", "2"};
    cairn_err_clear(&e);
    CHECK_EQ(cairn_plugin_check_settings(&s_plugin, keys, vals, 2, &e), -1);
    CHECK_STR(e.code, "bad_conf");
    CHECK_HAS(e.msg, "'token'");
    CHECK_HAS(e.msg, "'tp'");
    CHECK_HAS(e.msg, "the secret to present");
    cairn_err_clear(&e);
    CHECK_EQ(cairn_plugin_check_settings(&s_plugin, NULL, NULL, 0, &e), -1);
    CHECK_HAS(e.msg, "'token'");

    /* Everything given and well formed. */
    const char *k2[] = {"token", "name", "count", "flag", "limit", "dir"};
    const char *v2[] = {"s3cret", "n", "3", "true", "8MiB", "/x"};
    CHECK_EQ(cairn_plugin_check_settings(&s_plugin, k2, v2, 6, &e), 0);

    /* A plugin without a conf table takes no settings. */
    cairn_plugin_t bare = s_plugin;
    bare.conf = NULL;
    CHECK_EQ(cairn_plugin_check_settings(&bare, NULL, NULL, 0, &e), 0);
    const char *k3[] = {"x"}, *v3[] = {"1"};
    cairn_err_clear(&e);
    CHECK_EQ(cairn_plugin_check_settings(&bare, k3, v3, 1, &e), -1);
    CHECK_HAS(e.msg, "'x'");
}

/* ---- roles: cairn_plugin_verbs_for and the role setting ------------------ */

static const cairn_verb_t s_track_verbs[] = {
    {"get_run", v_noop, "tracking.read", 0, 0, ""},
    {NULL, NULL, NULL, 0, 0, NULL},
};
static const cairn_verb_t s_art_verbs[] = {
    {"put", v_noop, "artifacts.write", CAIRN_VERB_MUTATING, 0, ""},
    {NULL, NULL, NULL, 0, 0, NULL},
};
static const cairn_role_t s_roles[] = {
    {"tracking", s_track_verbs, "runs and metrics"},
    {"artifacts", s_art_verbs, "files"},
    {NULL, NULL, NULL},
};

/* Typed settings: checked and parsed from one table, into the struct. */
typedef struct typed {
    const char *name;
    int64_t count;
    bool flag;
    uint64_t limit;
    int mode;
    const char *token;
} typed_t;
static const char *const s_modes[] = {"process", "power", NULL};
static const cairn_setting_t s_typed_rows[] = {
    {.key = "name",
     .type = CAIRN_CONF_STR,
     .offset = offsetof(typed_t, name),
     .dflt = "x"},
    {.key = "count",
     .type = CAIRN_CONF_INT,
     .offset = offsetof(typed_t, count),
     .dflt = "5",
     .min = 1,
     .max = 10},
    {.key = "flag",
     .type = CAIRN_CONF_BOOL,
     .offset = offsetof(typed_t, flag),
     .dflt = "false"},
    {.key = "limit",
     .type = CAIRN_CONF_SIZE,
     .offset = offsetof(typed_t, limit),
     .dflt = "2MiB",
     .min = 1024,
     .max = 1 << 30},
    {.key = "mode",
     .type = CAIRN_CONF_ENUM,
     .offset = offsetof(typed_t, mode),
     .dflt = "process",
     .choices = s_modes},
    {.key = "token", .type = CAIRN_CONF_STR, .offset = offsetof(typed_t, token)},
    {.key = NULL},
};
static const cairn_plugin_t s_typed = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "tt",
    .version = "0",
    .verbs = s_verbs,
    .init = v_init,
    .fini = v_fini,
    .settings = s_typed_rows,
    .settings_size = sizeof(typed_t),
};

TEST(typed_settings)
{
    cairn_err_t e = {0};
    const char *k1[] = {"token", "mode", "flag"}, *v1[] = {"sekrit", "power", "true"};
    CHECK_EQ(cairn_plugin_check_settings(&s_typed, k1, v1, 3, &e), 0);
    typed_t t = {0};
    CHECK_EQ(cairn_plugin_fill_settings(&s_typed, k1, v1, 3, &t, &e), 0);
    CHECK_STR(t.name, "x"); /* defaults for what was not given */
    CHECK_EQ(t.count, 5);
    CHECK_UEQ(t.limit, 2u << 20);
    CHECK_EQ(t.mode, 1); /* power */
    CHECK(t.flag);
    CHECK_STR(t.token, "sekrit");
    CHECK_STR(cairn_plugin_setting_default(&s_typed, "limit"), "2MiB");
    CHECK(cairn_plugin_setting_default(&s_typed, "token") == NULL);
    static const struct {
        const char *key, *val, *want;
    } bad[] = {
        {"count", "11", "from 1 to 10"},        {"count", "0", "from 1 to 10"},
        {"limit", "512", "from 1024"},          {"limit", "2GiB", "from 1024"},
        {"mode", "fast", "process or power"},   {"flag", "yes", "true or false"},
        {"nosuch", "1", "no setting 'nosuch'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *k[] = {"token", bad[i].key}, *v[] = {"t", bad[i].val};
        cairn_err_clear(&e);
        CHECK_EQ(cairn_plugin_check_settings(&s_typed, k, v, 2, &e), -1);
        CHECK_HAS(e.msg, bad[i].want);
    }
    cairn_err_clear(&e);
    CHECK_EQ(cairn_plugin_check_settings(&s_typed, NULL, NULL, 0, &e), -1);
    CHECK_HAS(e.msg, "needs the setting 'token'");
}

TEST(roles_pick_a_table)
{
    cairn_plugin_t rp = s_plugin;
    rp.roles = s_roles;
    rp.verbs = NULL;
    const char *role = "unset";
    cairn_err_t e = {0};

    /* By service name, then by the role setting, which wins. */
    CHECK(cairn_plugin_verbs_for(&rp, "tracking", NULL, &role, &e) == s_track_verbs);
    CHECK_STR(role, "tracking");
    CHECK(cairn_plugin_verbs_for(&rp, "tracking", "artifacts", &role, &e) ==
          s_art_verbs);
    CHECK_STR(role, "artifacts");
    CHECK(cairn_plugin_verbs_for(&rp, "artifacts", "", &role, &e) == s_art_verbs);
    CHECK(cairn_plugin_verbs_for(&rp, "tracking", NULL, NULL, &e) == s_track_verbs);

    /* Neither matches: NULL, naming the roles there are. */
    cairn_err_clear(&e);
    CHECK(cairn_plugin_verbs_for(&rp, "metrics", NULL, &role, &e) == NULL);
    CHECK(role == NULL);
    CHECK_EQ(e.st, 400);
    CHECK_HAS(e.msg, "tracking");
    CHECK_HAS(e.msg, "artifacts");
    CHECK_HAS(e.msg, "role");
    cairn_err_clear(&e);
    CHECK(cairn_plugin_verbs_for(&rp, "tracking", "nope", &role, &e) == NULL);
    CHECK(cairn_plugin_verbs_for(&rp, NULL, NULL, &role, &e) == NULL);

    /* A plugin without roles: its one table, whatever the service. */
    role = "unset";
    CHECK(cairn_plugin_verbs_for(&s_plugin, "anything", "x", &role, &e) == s_verbs);
    CHECK(role == NULL);

    /* A descriptor from before roles existed (its size ends before the
     * roles field) never has them read, whatever lies past its end. */
    cairn_plugin_t old = rp;
    old.size = (uint32_t)offsetof(cairn_plugin_t, roles);
    old.verbs = s_verbs;
    CHECK(cairn_plugin_verbs_for(&old, "tracking", NULL, &role, &e) == s_verbs);
}

TEST(roles_setting)
{
    cairn_plugin_t rp = s_plugin;
    rp.roles = s_roles;
    cairn_err_t e = {0};
    const char *k[] = {"token", "role"}, *v1[] = {"t", "artifacts"},
               *v2[] = {"t", "nope"};
    CHECK_EQ(cairn_plugin_check_settings(&rp, k, v1, 2, &e), 0);
    cairn_err_clear(&e);
    CHECK_EQ(cairn_plugin_check_settings(&rp, k, v2, 2, &e), -1);
    CHECK_EQ(e.st, 400);
    CHECK_HAS(e.msg, "tracking");
    CHECK_HAS(e.msg, "artifacts");
    /* Without roles, 'role' is just an unknown setting. */
    cairn_err_clear(&e);
    CHECK_EQ(cairn_plugin_check_settings(&s_plugin, k, v1, 2, &e), -1);
    CHECK_HAS(e.msg, "'role'");
}

int main(void)
{
    if (!mkdtemp(s_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    s_cc = find_cc();
    RUN(load_echo);
    RUN(expect_name_mismatch);
    RUN(missing_file);
    RUN(broken_plugins_refused);
    RUN(good_plugins_load);
    RUN(check_settings_values);
    RUN(check_settings_keys);
    RUN(typed_settings);
    RUN(roles_pick_a_table);
    RUN(roles_setting);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", s_tmp);
    return unit_report();
}
