/* Loading and checking a plugin .so (see runtime.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static bool s_name_ok(const char *s)
{
    if (!s || !*s || !islower((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

static int s_check_settings_table(const cairn_plugin_t *p, cairn_err_t *err);

static bool s_has_roles(const cairn_plugin_t *p)
{
    return p->size >= offsetof(cairn_plugin_t, roles) + sizeof(void *) && p->roles;
}

static int s_check_verb_table(const cairn_plugin_t *p, const cairn_verb_t *verbs,
                              cairn_err_t *err)
{
    if (!verbs)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                             "plugin '%s' has no verb table", p->name);
    for (const cairn_verb_t *v = verbs; v->name; v++) {
        if (!s_name_ok(v->name) || strlen(v->name) > 64)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                                 "plugin '%s' has a verb named '%s': verb names are "
                                 "snake_case, at most 64 characters",
                                 p->name, v->name);
        if (!v->handle)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                                 "plugin '%s' verb '%s' has no handler", p->name,
                                 v->name);
        if (!v->perm && !(v->flags & CAIRN_VERB_PUBLIC))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                                 "plugin '%s' verb '%s' declares no permission (set "
                                 "perm, or the PUBLIC flag for a verb without token)",
                                 p->name, v->name);
        for (const cairn_verb_t *w = verbs; w != v; w++)
            if (strcmp(w->name, v->name) == 0)
                return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_BAD_PLUGIN,
                                     "plugin '%s' declares the verb '%s' twice",
                                     p->name, v->name);
    }
    return 0;
}

static int s_check_verbs(const cairn_plugin_t *p, cairn_err_t *err)
{
    if (!s_has_roles(p)) return s_check_verb_table(p, p->verbs, err);
    for (const cairn_role_t *r = p->roles; r->name; r++) {
        if (!s_name_ok(r->name))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                                 "plugin '%s' has an invalid role name", p->name);
        if (s_check_verb_table(p, r->verbs, err) != 0) return -1;
        for (const cairn_role_t *q = p->roles; q != r; q++)
            if (strcmp(q->name, r->name) == 0)
                return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_BAD_PLUGIN,
                                     "plugin '%s' declares the role '%s' twice",
                                     p->name, r->name);
    }
    return 0;
}

const cairn_verb_t *cairn_plugin_verbs_for(const cairn_plugin_t *p, const char *service,
                                           const char *role, const char **role_out,
                                           cairn_err_t *err)
{
    if (role_out) *role_out = NULL;
    if (!s_has_roles(p)) return p->verbs;
    const char *want = role && *role ? role : service;
    char names[256] = "";
    for (const cairn_role_t *r = p->roles; r->name; r++) {
        if (want && strcmp(r->name, want) == 0) {
            if (role_out) *role_out = r->name;
            return r->verbs;
        }
        size_t n = strlen(names);
        snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", r->name);
    }
    cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                  "plugin '%s' serves the roles %s; name the service after one, or "
                  "set settings.%s",
                  p->name, names, CAIRN_ROLE_SETTING);
    return NULL;
}

int cairn_plugin_load(const char *path, const char *expect_name, cairn_loaded_t *out,
                      cairn_err_t *err)
{
    memset(out, 0, sizeof *out);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                             "cannot load %s", dlerror());
    cairn_plugin_entry_fn *entry;
    *(void **)&entry = dlsym(dl, CAIRN_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                      "%s does not export %s(): is it a Cairn plugin?", path,
                      CAIRN_PLUGIN_ENTRY_SYMBOL);
        goto fail;
    }
    const cairn_plugin_t *p = entry(cairn_runtime_api());
    if (!p) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                      "%s refused this host (its %s() returned NULL): it was "
                      "likely built for another plugin ABI; this cairnd speaks ABI "
                      "%d: rebuild the plugin against its headers",
                      path, CAIRN_PLUGIN_ENTRY_SYMBOL, CAIRN_PLUGIN_ABI);
        goto fail;
    }
    if (p->abi != CAIRN_PLUGIN_ABI) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                      "%s was built for plugin ABI %u; this cairnd speaks ABI %d", path,
                      p->abi, CAIRN_PLUGIN_ABI);
        goto fail;
    }
    if (p->size < offsetof(cairn_plugin_t, tick)) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                      "%s has a descriptor of %u bytes, smaller than any ABI %d one",
                      path, p->size, CAIRN_PLUGIN_ABI);
        goto fail;
    }
    if (!s_name_ok(p->name)) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                      "%s has an invalid plugin name", path);
        goto fail;
    }
    if (expect_name && strcmp(expect_name, p->name) != 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                      "%s is the plugin '%s', but the conf expects '%s'", path, p->name,
                      expect_name);
        goto fail;
    }
    if (!p->init || !p->fini) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                      "%s lacks init or fini", path);
        goto fail;
    }
    if (s_check_verbs(p, err) != 0 || s_check_settings_table(p, err) != 0) goto fail;
    out->dl = dl;
    out->plugin = p;
    return 0;
fail:
    dlclose(dl);
    return -1;
}

void cairn_plugin_unload(cairn_loaded_t *l)
{
    if (!l || !l->dl) return;
#ifndef CAIRN_SANITIZE
    /* Under ASan keep the object mapped so leak traces keep their symbols. */
    dlclose(l->dl);
#endif
    l->dl = NULL;
    l->plugin = NULL;
}

/* ---- settings: the typed table or the older untyped one ------------------ */

static bool s_has_typed(const cairn_plugin_t *p)
{
    return p->size >= offsetof(cairn_plugin_t, settings_size) + sizeof(uint32_t) &&
           p->settings;
}

/* One setting as both tables describe it. */
typedef struct setting_view {
    const char *key, *dflt, *help;
    cairn_conf_type_t type;
    const cairn_setting_t *typed; /* NULL for a row of `conf` */
} setting_view_t;

/* Setting i of p; its key is NULL past the end. */
static setting_view_t s_setting(const cairn_plugin_t *p, size_t i)
{
    setting_view_t v = {0};
    if (s_has_typed(p)) {
        const cairn_setting_t *t = &p->settings[i];
        v = (setting_view_t){t->key, t->dflt, t->help, t->type, t};
    } else if (p->conf) {
        const cairn_conf_key_t *k = &p->conf[i];
        v = (setting_view_t){k->key, k->dflt, k->help, k->type, NULL};
    }
    return v;
}

static bool s_find_setting(const cairn_plugin_t *p, const char *key,
                           setting_view_t *out)
{
    for (size_t i = 0;; i++) {
        *out = s_setting(p, i);
        if (!out->key) return false;
        if (strcmp(out->key, key) == 0) return true;
    }
}

/* "a, b or c" from a NULL-terminated list. */
static void s_choices(const char *const *c, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; c && c[i] && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s",
                              i == 0     ? ""
                              : c[i + 1] ? ", "
                                         : " or ",
                              c[i]);
}

/* Check value v of setting k; with field, also store the number, bool or
 * enum index there (strings are the caller's to copy). */
static int s_parse_value(const cairn_plugin_t *p, setting_view_t k, const char *v,
                         void *field, cairn_err_t *err)
{
    char *end = NULL;
    errno = 0;
    const cairn_setting_t *t = k.typed;
    bool bounded = t && (t->min || t->max);
    switch (k.type) {
        case CAIRN_CONF_INT: {
            long long n = strtoll(v, &end, 10);
            if (!*v || *end || errno ||
                !(isdigit((unsigned char)v[0]) ||
                  (v[0] == '-' && isdigit((unsigned char)v[1]))))
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                     "setting '%s' of plugin '%s' must be an integer, "
                                     "not '%s'",
                                     k.key, p->name, v);
            if (bounded && (n < t->min || n > t->max))
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                     "setting '%s' of plugin '%s' must be from %lld to "
                                     "%lld, not %lld",
                                     k.key, p->name, (long long)t->min,
                                     (long long)t->max, n);
            if (field) memcpy(field, &(int64_t){n}, sizeof(int64_t));
            return 0;
        }
        case CAIRN_CONF_BOOL:
            if (strcmp(v, "true") && strcmp(v, "false"))
                return cairn_err_set(
                    err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                    "setting '%s' of plugin '%s' must be true or false, "
                    "not '%s'",
                    k.key, p->name, v);
            if (field) memcpy(field, &(bool){v[0] == 't'}, sizeof(bool));
            return 0;
        case CAIRN_CONF_SIZE: {
            unsigned long long n = strtoull(v, &end, 10);
            int shift = !*end                 ? 0
                        : !strcmp(end, "KiB") ? 10
                        : !strcmp(end, "MiB") ? 20
                        : !strcmp(end, "GiB") ? 30
                                              : -1;
            if (!isdigit((unsigned char)v[0]) || errno || shift < 0 ||
                n > (UINT64_MAX >> shift))
                return cairn_err_set(
                    err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                    "setting '%s' of plugin '%s' must be a size such as "
                    "4096, 64KiB, 16MiB or 2GiB, not '%s'",
                    k.key, p->name, v);
            uint64_t bytes = (uint64_t)n << shift;
            if (bounded && (bytes < (uint64_t)t->min || bytes > (uint64_t)t->max))
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                     "setting '%s' of plugin '%s' must be from %lld to "
                                     "%lld bytes, not %llu",
                                     k.key, p->name, (long long)t->min,
                                     (long long)t->max, (unsigned long long)bytes);
            if (field) memcpy(field, &bytes, sizeof bytes);
            return 0;
        }
        case CAIRN_CONF_ENUM:
            for (int i = 0; t && t->choices && t->choices[i]; i++)
                if (strcmp(t->choices[i], v) == 0) {
                    if (field) memcpy(field, &i, sizeof i);
                    return 0;
                }
            {
                char names[256];
                s_choices(t ? t->choices : NULL, names, sizeof names);
                return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                     "setting '%s' of plugin '%s' must be %s, not '%s'",
                                     k.key, p->name, names, v);
            }
        default:
            return 0;
    }
}

/* The C size of a typed setting's field. */
static size_t s_field_size(cairn_conf_type_t t)
{
    switch (t) {
        case CAIRN_CONF_STR:
        case CAIRN_CONF_PATH:
            return sizeof(const char *);
        case CAIRN_CONF_INT:
            return sizeof(int64_t);
        case CAIRN_CONF_SIZE:
            return sizeof(uint64_t);
        case CAIRN_CONF_BOOL:
            return sizeof(bool);
        case CAIRN_CONF_ENUM:
            return sizeof(int);
        default:
            return 0;
    }
}

/* A typed table must describe its struct: known types, fields inside it,
 * enums with choices, defaults that parse, keys given once. */
static int s_check_settings_table(const cairn_plugin_t *p, cairn_err_t *err)
{
    if (!s_has_typed(p)) return 0;
    if (p->conf)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                             "plugin '%s' gives both conf and settings; give one",
                             p->name);
    for (const cairn_setting_t *t = p->settings; t->key; t++) {
        size_t fs = s_field_size(t->type);
        if (!fs || t->offset + fs > p->settings_size)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                                 "plugin '%s' setting '%s': unknown type, or its field "
                                 "lies outside settings_size",
                                 p->name, t->key);
        if (t->type == CAIRN_CONF_ENUM && (!t->choices || !t->choices[0]))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                                 "plugin '%s' setting '%s' is an enum without choices",
                                 p->name, t->key);
        setting_view_t v = {t->key, t->dflt, t->help, t->type, t};
        cairn_err_t why;
        if (t->dflt && s_parse_value(p, v, t->dflt, NULL, &why) != 0)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_PLUGIN,
                                 "plugin '%s' has a default its own table refuses: %s",
                                 p->name, why.msg);
        for (const cairn_setting_t *u = p->settings; u != t; u++)
            if (strcmp(u->key, t->key) == 0)
                return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_BAD_PLUGIN,
                                     "plugin '%s' declares the setting '%s' twice",
                                     p->name, t->key);
    }
    return 0;
}

int cairn_plugin_check_settings(const cairn_plugin_t *p, const char *const *keys,
                                const char *const *vals, size_t n, cairn_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        if (s_has_roles(p) && strcmp(keys[i], CAIRN_ROLE_SETTING) == 0) {
            if (!cairn_plugin_verbs_for(p, NULL, vals[i], NULL, err)) return -1;
            continue;
        }
        setting_view_t k;
        if (!s_find_setting(p, keys[i], &k))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                 "plugin '%s' has no setting '%s'", p->name, keys[i]);
        if (s_parse_value(p, k, vals[i], NULL, err) != 0) return -1;
    }
    for (size_t j = 0;; j++) {
        setting_view_t k = s_setting(p, j);
        if (!k.key) break;
        if (k.dflt) continue;
        size_t i = 0;
        while (i < n && strcmp(keys[i], k.key) != 0) i++;
        if (i == n)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                 "plugin '%s' needs the setting '%s' (%s)", p->name,
                                 k.key, k.help ? k.help : "no default");
    }
    return 0;
}

const char *cairn_plugin_setting_default(const cairn_plugin_t *p, const char *key)
{
    setting_view_t k;
    return s_find_setting(p, key, &k) ? k.dflt : NULL;
}

int cairn_plugin_fill_settings(const cairn_plugin_t *p, const char *const *keys,
                               const char *const *vals, size_t n, void *out,
                               cairn_err_t *err)
{
    if (!s_has_typed(p)) return 0;
    for (const cairn_setting_t *t = p->settings; t->key; t++) {
        const char *v = t->dflt;
        for (size_t i = 0; i < n; i++)
            if (strcmp(keys[i], t->key) == 0) v = vals[i];
        if (!v) continue; /* required and absent: check_settings said so */
        void *field = (char *)out + t->offset;
        if (t->type == CAIRN_CONF_STR || t->type == CAIRN_CONF_PATH) {
            memcpy(field, &v, sizeof v); /* borrowed: the caller keeps vals alive */
            continue;
        }
        setting_view_t k = {t->key, t->dflt, t->help, t->type, t};
        if (s_parse_value(p, k, v, field, err) != 0) return -1;
    }
    return 0;
}
