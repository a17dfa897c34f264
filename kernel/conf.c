/* The service map parser: YAML (libyaml's document API) into conf_t.
 * Every key comes from a table, so help, defaults and validation agree. */
#define _GNU_SOURCE
#include "conf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef enum { K_STR, K_U32, K_SIZE } kkind_t;

typedef struct kernel_key {
    const char *key;
    kkind_t kind;
    size_t offset;
    const char *dflt;
    const char *help;
} kernel_key_t;

#define KOFF(f) offsetof(conf_t, f)
static const kernel_key_t s_kernel_keys[] = {
    {"endpoint", K_STR, KOFF(endpoint), "tcp://127.0.0.1:7780",
     "where clients connect (the frontend ROUTER); CAIRN_ENDPOINT overrides"},
    {"events", K_STR, KOFF(events), "tcp://127.0.0.1:7781",
     "where the kernel publishes events (a PUB socket)"},
    {"worker_endpoint", K_STR, KOFF(worker_endpoint), "",
     "a tcp:// address where remote plugin hosts connect; empty = none"},
    {"state_dir", K_STR, KOFF(state_dir), "./var",
     "the state directory, made 0700 (relative: to the directory cairnd starts "
     "in); --state and CAIRN_STATE override"},
    {"plugin_dir", K_STR, KOFF(plugin_dir), "",
     "where plugin .so files are found; empty = beside the binaries"},
    {"auth", K_STR, KOFF(auth), NULL,
     "the auth service, or 'none' (then only loopback addresses may be bound)"},
    {"audit", K_STR, KOFF(audit), "none",
     "the audit service that records every mutating and refused request, or "
     "'none'"},
    {"audit_policy", K_STR, KOFF(audit_policy), "refuse",
     "when the audit service does not take records: 'refuse' mutating requests "
     "(503) until it does, or 'log' the failure and go on"},
    {"curve", K_STR, KOFF(curve), "auto",
     "where CurveZMQ is used: 'auto', on every endpoint that is not loopback "
     "(cairnd refuses to bind one without it), or 'always', on every tcp "
     "endpoint, loopback too (docs/TRANSPORT.md)"},
    {"curve_secret_key_file", K_STR, KOFF(curve_secret_key_file), "",
     "the kernel's CurveZMQ secret key, a file of mode 0600 made by `cairn keygen "
     "--out PREFIX` (PREFIX.key; relative: to the state dir); clients need its "
     "PREFIX.pub"},
    {"curve_allowed_keys", K_STR, KOFF(curve_allowed_keys), "",
     "a file listing the public keys (one per line, '#' comments) of the clients "
     "and plugin hosts that may connect over CurveZMQ (relative: to the state "
     "dir); read again when it changes"},
    {"max_frame", K_SIZE, KOFF(max_frame), "64MiB",
     "largest request body accepted; larger ones get 413"},
    {"max_queue", K_U32, KOFF(max_queue), "10000",
     "requests queued per service while its workers are busy; more get 429"},
    {"max_queue_bytes", K_SIZE, KOFF(max_queue_bytes), "1GiB",
     "request bodies the kernel holds queued, all services; more get 429"},
    {"max_client_bytes", K_SIZE, KOFF(max_client_bytes), "256MiB",
     "queued requests plus unread replies of one client connection; past it "
     "its requests get 429 and its replies are dropped until it reads"},
    {"max_unsent_bytes", K_SIZE, KOFF(max_unsent_bytes), "2GiB",
     "replies not yet written to clients, all connections; past it the replies "
     "of clients that do not read are dropped"},
    {"default_ttl_ms", K_U32, KOFF(default_ttl_ms), "30000",
     "deadline of a request whose header has no ttl"},
    {"max_ttl_ms", K_U32, KOFF(max_ttl_ms), "3600000", "the longest ttl honoured"},
    {"heartbeat_ms", K_U32, KOFF(heartbeat_ms), "1000",
     "heartbeat interval between the kernel and its plugins"},
    {"liveness", K_U32, KOFF(liveness), "5",
     "heartbeats missed before a plugin is declared dead"},
    {"init_timeout_ms", K_U32, KOFF(init_timeout_ms), "60000",
     "how long a plugin's init may run (opening, migrating or recovering its "
     "data) before it is declared dead; heartbeats count only after it"},
    {NULL, 0, 0, NULL, NULL},
};

static const char *s_service_keys = "plugin, mode, concurrency, settings";

const char *conf_mode_name(conf_mode_t m)
{
    return m == CONF_INPROC ? "inproc" : m == CONF_PROCESS ? "process" : "remote";
}

void conf_print_help(void)
{
    printf("kernel:\n");
    for (const kernel_key_t *k = s_kernel_keys; k->key; k++)
        printf("  %-16s %s (default: %s)\n", k->key, k->help,
               k->dflt ? (*k->dflt ? k->dflt : "empty") : "required");
    printf(
        "services:\n  NAME:\n    plugin   the plugin name or .so path\n"
        "    mode     inproc | process | remote\n"
        "    concurrency  most requests in flight to one worker (default: the "
        "plugin's)\n"
        "    settings a map of the plugin's own settings\n");
}

/* ---- parsing helpers ------------------------------------------------- */

typedef struct parse {
    yaml_document_t doc;
    const char *source;
    cairn_err_t *err;
} parse_t;

static int s_fail(parse_t *p, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(parse_t *p, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cairn_err_set(p->err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF, "%s:%zu: %s",
                         p->source, n ? n->start_mark.line + 1 : 1, msg);
}

static const char *s_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

int conf_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9') return -1; /* strtoull would take " -1" */
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno) return -1;
    uint64_t mul = 1;
    if (!strcmp(end, "KiB"))
        mul = 1024;
    else if (!strcmp(end, "MiB"))
        mul = 1024 * 1024;
    else if (!strcmp(end, "GiB"))
        mul = 1024ull * 1024 * 1024;
    else if (*end)
        return -1;
    if (v > UINT64_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

int conf_check_endpoint(const char *what, const char *ep, cairn_err_t *err)
{
    if (!ep || strncmp(ep, "ipc://", 6) != 0) return 0;
    size_t n = strlen(ep + 6);
    if (n == 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: the ipc:// address names no path", what);
    if (n > CONF_IPC_PATH_MAX)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: the ipc:// path %s is %zu bytes; a Unix socket path "
                             "holds at most %d (108 with its NUL): use a shorter path",
                             what, ep + 6, n, CONF_IPC_PATH_MAX);
    return 0;
}

static int s_set_kernel_key(parse_t *p, conf_t *c, const kernel_key_t *k,
                            const yaml_node_t *val, const char *text)
{
    char *field = (char *)c + k->offset;
    if (k->kind == K_STR && (!strcmp(k->key, "endpoint") || !strcmp(k->key, "events") ||
                             !strcmp(k->key, "worker_endpoint"))) {
        char what[32];
        snprintf(what, sizeof what, "kernel.%s", k->key);
        cairn_err_t e = {0};
        if (conf_check_endpoint(what, text, &e) != 0)
            return s_fail(p, val, "%s", e.msg);
    }
    if (k->kind == K_STR) {
        char **dst = (char **)field;
        free(*dst);
        if (!(*dst = strdup(text))) return s_fail(p, val, "out of memory");
        return 0;
    }
    uint64_t v;
    if (k->kind == K_SIZE) {
        if (conf_parse_size(text, &v) != 0 || v == 0)
            return s_fail(p, val,
                          "kernel.%s must be a size such as 65536, 64KiB or 16MiB, not "
                          "'%s'",
                          k->key, text);
        *(uint64_t *)field = v;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long u = strtoull(text, &end, 10);
    if (end == text || *end || errno || u == 0 || u > UINT32_MAX || *text == '-')
        return s_fail(p, val, "kernel.%s must be a positive integer, not '%s'", k->key,
                      text);
    *(uint32_t *)field = (uint32_t)u;
    return 0;
}

static int s_kernel(parse_t *p, conf_t *c, const yaml_node_t *map, bool defaults)
{
    if (defaults) {
        yaml_node_t dummy = {0};
        for (const kernel_key_t *k = s_kernel_keys; k->key; k++)
            if (k->dflt && s_set_kernel_key(p, c, k, &dummy, k->dflt) != 0) return -1;
        return 0;
    }
    if (map->type != YAML_MAPPING_NODE)
        return s_fail(p, map, "'kernel' must be a map of settings");
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&p->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(&p->doc, pr->value);
        const char *key = s_scalar(kn), *val = s_scalar(vn);
        const kernel_key_t *k = s_kernel_keys;
        while (k->key && (!key || strcmp(k->key, key) != 0)) k++;
        if (!k->key)
            return s_fail(p, kn,
                          "unknown key '%s' in 'kernel' (known: endpoint, events, "
                          "worker_endpoint, state_dir, plugin_dir, auth, audit, "
                          "audit_policy, curve, curve_secret_key_file, "
                          "curve_allowed_keys, max_frame, "
                          "max_queue_bytes, max_client_bytes, max_unsent_bytes, "
                          "max_queue, default_ttl_ms, max_ttl_ms, heartbeat_ms, "
                          "liveness, init_timeout_ms)",
                          key ? key : "?");
        if (!val) return s_fail(p, vn, "kernel.%s must be a single value", key);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pr; q++)
            if (s_scalar(yaml_document_get_node(&p->doc, q->key)) &&
                !strcmp(s_scalar(yaml_document_get_node(&p->doc, q->key)), key))
                return s_fail(p, kn, "kernel.%s is given twice", key);
        if (s_set_kernel_key(p, c, k, vn, val) != 0) return -1;
    }
    return 0;
}

static bool s_service_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 64 || !(*s >= 'a' && *s <= 'z')) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static int s_settings(parse_t *p, conf_service_t *s, const yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return s_fail(p, map, "services.%s.settings must be a map", s->name);
    if (s->keys) return s_fail(p, map, "services.%s.settings is given twice", s->name);
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    s->keys = calloc(n + 1, sizeof(char *));
    s->vals = calloc(n + 1, sizeof(char *));
    if (!s->keys || !s->vals) return s_fail(p, map, "out of memory");
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&p->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(&p->doc, pr->value);
        const char *key = s_scalar(kn), *val = s_scalar(vn);
        if (!key || !val)
            return s_fail(p, kn, "services.%s.settings values must be single values",
                          s->name);
        for (size_t i = 0; i < s->nsettings; i++)
            if (!strcmp(s->keys[i], key))
                return s_fail(p, kn, "services.%s.settings.%s is given twice", s->name,
                              key);
        s->keys[s->nsettings] = strdup(key);
        s->vals[s->nsettings] = strdup(val);
        if (!s->keys[s->nsettings] || !s->vals[s->nsettings])
            return s_fail(p, kn, "out of memory");
        s->nsettings++;
    }
    return 0;
}

static int s_service(parse_t *p, conf_service_t *s, const yaml_node_t *kn,
                     const yaml_node_t *map)
{
    const char *name = s_scalar(kn);
    s->line = (int)kn->start_mark.line + 1;
    if (!s_service_name_ok(name))
        return s_fail(p, kn,
                      "service name '%s' must be lower-case letters, digits and '_', "
                      "starting with a letter",
                      name ? name : "?");
    if (!(s->name = strdup(name))) return s_fail(p, kn, "out of memory");
    if (map->type != YAML_MAPPING_NODE)
        return s_fail(p, map, "services.%s must be a map (%s)", name, s_service_keys);
    bool has_mode = false;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&p->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&p->doc, pr->value);
        const char *key = s_scalar(k), *val = s_scalar(v);
        if (key && !strcmp(key, "settings")) {
            if (s_settings(p, s, v) != 0) return -1;
            continue;
        }
        if (key && !strcmp(key, "plugin")) {
            if (!val || !*val)
                return s_fail(p, v, "services.%s.plugin must be a name or a path",
                              name);
            free(s->plugin);
            if (!(s->plugin = strdup(val))) return s_fail(p, v, "out of memory");
        } else if (key && !strcmp(key, "mode")) {
            has_mode = true;
            if (val && !strcmp(val, "inproc"))
                s->mode = CONF_INPROC;
            else if (val && !strcmp(val, "process"))
                s->mode = CONF_PROCESS;
            else if (val && !strcmp(val, "remote"))
                s->mode = CONF_REMOTE;
            else
                return s_fail(p, v,
                              "services.%s.mode must be inproc, process or remote, not "
                              "'%s'",
                              name, val ? val : "?");
        } else if (key && !strcmp(key, "concurrency")) {
            char *end;
            errno = 0;
            unsigned long long u = val ? strtoull(val, &end, 10) : 0;
            if (!val || end == val || *end || errno || u == 0 || u > 1000000 ||
                *val == '-')
                return s_fail(p, v,
                              "services.%s.concurrency must be an integer from 1 to "
                              "1000000, not '%s'",
                              name, val ? val : "?");
            s->concurrency = (uint32_t)u;
        } else {
            return s_fail(p, k, "unknown key '%s' in services.%s (known: %s)",
                          key ? key : "?", name, s_service_keys);
        }
    }
    if (!s->plugin) return s_fail(p, map, "services.%s lacks 'plugin'", name);
    if (!has_mode)
        return s_fail(p, map, "services.%s lacks 'mode' (inproc, process or remote)",
                      name);
    return 0;
}

static int s_services(parse_t *p, conf_t *c, const yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return s_fail(p, map, "'services' must be a map of service name to its entry");
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    c->services = calloc(n + 1, sizeof *c->services);
    if (!c->services) return s_fail(p, map, "out of memory");
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&p->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(&p->doc, pr->value);
        conf_service_t *s = &c->services[c->nservices++];
        if (s_service(p, s, kn, vn) != 0) return -1;
        if (!strcmp(s->name, "sys"))
            return s_fail(p, kn, "the service name 'sys' is the kernel's own");
        for (size_t i = 0; i + 1 < c->nservices; i++)
            if (!strcmp(c->services[i].name, s->name))
                return s_fail(p, kn, "the service '%s' is defined twice", s->name);
    }
    return 0;
}

static int s_root(parse_t *p, conf_t *c)
{
    yaml_node_t *root = yaml_document_get_root_node(&p->doc);
    if (!root) return s_fail(p, NULL, "the file is empty");
    if (root->type != YAML_MAPPING_NODE)
        return s_fail(p, root,
                      "the top level must be a map with 'kernel' and 'services'");
    if (s_kernel(p, c, NULL, true) != 0) return -1;
    bool has_kernel = false, has_services = false;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
         pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&p->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(&p->doc, pr->value);
        const char *key = s_scalar(kn);
        int rc;
        if (key && !strcmp(key, "kernel")) {
            rc = has_kernel ? s_fail(p, kn, "'kernel' is given twice")
                            : s_kernel(p, c, vn, false);
            has_kernel = true;
        } else if (key && !strcmp(key, "services")) {
            rc = has_services ? s_fail(p, kn, "'services' is given twice")
                              : s_services(p, c, vn);
            has_services = true;
        } else {
            rc = s_fail(p, kn, "unknown top-level key '%s' (known: kernel, services)",
                        key ? key : "?");
        }
        if (rc != 0) return -1;
    }
    if (!has_kernel || !c->auth)
        return s_fail(p, root,
                      "kernel.auth is required: name the auth service, or say 'none' "
                      "explicitly (then cairnd binds loopback only)");
    if (strcmp(c->audit_policy, "refuse") != 0 && strcmp(c->audit_policy, "log") != 0)
        return s_fail(p, root, "kernel.audit_policy is 'refuse' or 'log', not '%s'",
                      c->audit_policy);
    if (strcmp(c->curve, "auto") != 0 && strcmp(c->curve, "always") != 0)
        return s_fail(p, root, "kernel.curve is 'auto' or 'always', not '%s'",
                      c->curve);
    if (strcmp(c->audit, "none") != 0) {
        bool found = false;
        for (size_t i = 0; i < c->nservices && !found; i++)
            found = strcmp(c->services[i].name, c->audit) == 0;
        if (!found)
            return s_fail(p, root,
                          "kernel.audit names the service '%s', which 'services' does "
                          "not define (or say 'none')",
                          c->audit);
    }
    if (strcmp(c->auth, "none") != 0) {
        bool found = false;
        for (size_t i = 0; i < c->nservices && !found; i++)
            found = strcmp(c->services[i].name, c->auth) == 0;
        if (!found)
            return s_fail(p, root,
                          "kernel.auth names the service '%s', which 'services' does "
                          "not define (or say 'none': loopback only)",
                          c->auth);
    }
    return 0;
}

conf_t *conf_parse(const char *text, size_t len, const char *source, cairn_err_t *err)
{
    conf_t *c = calloc(1, sizeof *c);
    if (!c || !(c->source = strdup(source))) {
        free(c);
        cairn_err_oom(err, NULL);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    parse_t p = {.source = source, .err = err};
    int rc = -1;
    if (!yaml_parser_load(&parser, &p.doc)) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF, "%s:%zu: %s", source,
                      parser.problem_mark.line + 1,
                      parser.problem ? parser.problem : "not valid YAML");
    } else {
        rc = s_root(&p, c);
        yaml_document_delete(&p.doc);
    }
    yaml_parser_delete(&parser);
    if (rc != 0) conf_destroy(&c);
    return c;
}

conf_t *conf_load_file(const char *path, cairn_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "cannot read the conf %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            if (cap > (16u << 20)) break; /* a conf is small; refuse a huge one */
            char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
            if (!nb) break;
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0) break;
        len += n;
    }
    bool ok = feof(f) && !ferror(f);
    fclose(f);
    conf_t *c = NULL;
    if (!ok)
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "cannot read all of %s", path);
    else
        c = conf_parse(buf ? buf : "", len, path, err);
    free(buf);
    return c;
}

void conf_destroy(conf_t **self_p)
{
    if (!self_p || !*self_p) return;
    conf_t *c = *self_p;
    for (size_t i = 0; i < c->nservices; i++) {
        conf_service_t *s = &c->services[i];
        for (size_t j = 0; j < s->nsettings; j++) {
            free(s->keys[j]);
            free(s->vals[j]);
        }
        free(s->keys);
        free(s->vals);
        free(s->name);
        free(s->plugin);
    }
    free(c->services);
    for (const kernel_key_t *k = s_kernel_keys; k->key; k++)
        if (k->kind == K_STR) free(*(char **)((char *)c + k->offset));
    free(c->source);
    free(c);
    *self_p = NULL;
}
