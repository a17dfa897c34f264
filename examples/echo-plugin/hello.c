/* hello — a third-party Cairn plugin, built outside the Cairn tree against
 * the installed headers (see README.md beside this file).
 *
 *   hello.greet {name*} -> {greeting: "hello, NAME!", by: PRINCIPAL}
 *
 * The setting `punctuation` (default "!") ends every greeting. The plugin
 * keeps all its state in the struct that init returns: no globals other
 * than the one CAIRN_PLUGIN_DEFINE sets, so several instances (two service
 * names loading the same .so) never share anything.
 */
#define _POSIX_C_SOURCE 200809L /* strdup, with -std=c17 */
#define CAIRN_PLUGIN_SOURCE     /* the entry macro and the inline wrappers */
#include <cairn/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELLO_NAME_MAX 128 /* bytes; a longer name is a 400 */
#define HELLO_PUNCT_MAX 8  /* bytes of the punctuation setting */

typedef struct hello {
    cairn_ctx_t *ctx;
    char *punctuation;
} hello_t;

static int hello_init(cairn_ctx_t *ctx, void **state, cairn_err_t *err)
{
    hello_t *h = calloc(1, sizeof *h);
    if (!h) return cairn_err_oom(err, NULL);
    h->ctx = ctx;
    /* cairn_conf gives the conf's value or the table's default; the host
     * has already checked its type against the table below. What the type
     * cannot say, init checks: a failed init keeps the service down, with
     * this sentence as its error in sys.health. */
    const char *punct = cairn_conf(ctx, "punctuation");
    if (strlen(punct) > HELLO_PUNCT_MAX) {
        free(h);
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "setting 'punctuation' is at most %d bytes",
                             HELLO_PUNCT_MAX);
    }
    h->punctuation = strdup(punct);
    if (!h->punctuation) {
        free(h);
        return cairn_err_oom(err, NULL);
    }
    cairn_log(ctx, CAIRN_LOG_INFO, "hello ready as '%s' (punctuation '%s')",
              cairn_service(ctx), h->punctuation);
    *state = h;
    return 0;
}

static void hello_fini(void *state)
{
    hello_t *h = state;
    if (!h) return;
    free(h->punctuation);
    free(h);
}

/* greet {name*}: validate the body first, then answer exactly once. */
static int hello_greet(void *state, cairn_req_t *req, cairn_err_t *err)
{
    hello_t *h = state;
    cairn_str_t name;
    /* A missing, mistyped or too long `name` is a 400 whose sentence names
     * the field; a body that is not a map is one too. */
    if (cairn_field_str(cairn_body(req), "name", true, HELLO_NAME_MAX, &name, err) != 0)
        return -1;
    if (name.len == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "field 'name' must not be empty");

    char greeting[sizeof "hello, " + HELLO_NAME_MAX + HELLO_PUNCT_MAX];
    int n = snprintf(greeting, sizeof greeting, "hello, %.*s%s", (int)name.len,
                     name.ptr, h->punctuation);
    if (n < 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, NULL,
                             "cannot format the greeting");
    if ((size_t)n >= sizeof greeting) n = (int)sizeof greeting - 1;

    const char *by = cairn_principal(req); /* stamped by the kernel */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cairn_pack_cstr(&pk, "greeting");
    cairn_pack_strn(&pk, greeting, (size_t)n);
    cairn_pack_kv_str(&pk, "by", by ? by : "");
    cairn_reply_sbuf(req, CAIRN_ST_OK, &sb);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}

/* The verb table: name, handler, permission, flags, max body, help. */
static const cairn_verb_t hello_verbs[] = {
    {.name = "greet",
     .handle = hello_greet,
     .perm = "hello.read",
     .flags = CAIRN_VERB_IDEMPOTENT,
     .max_body = 4096,
     .help = "greet {name}: reply {greeting, by}"},
    {.name = NULL},
};

/* The settings this plugin takes under services.NAME.settings. */
static const cairn_conf_key_t hello_conf[] = {
    {.key = "punctuation",
     .type = CAIRN_CONF_STR,
     .dflt = "!",
     .help = "what ends every greeting"},
    {.key = NULL},
};

static const cairn_plugin_t hello_plugin = {
    .abi = CAIRN_PLUGIN_ABI,
    .size = sizeof(cairn_plugin_t),
    .name = "hello",
    .version = "1.0.0",
    .description = "an example third-party plugin: greets by name",
    .verbs = hello_verbs,
    .conf = hello_conf,
    .init = hello_init,
    .fini = hello_fini,
    .concurrency = 64,
};

CAIRN_PLUGIN_DEFINE(hello_plugin)
