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

static bool s_has_roles(const cairn_plugin_t *p)
{
    return p->size >= offsetof(cairn_plugin_t, roles) + sizeof(void *) && p->roles;
}

static int s_check_verb_table(const cairn_plugin_t *p, const cairn_verb_t *verbs,
                              cairn_err_t *err)
{
    if (!verbs)
        return cairn_err_set(err, 400, "bad_plugin", "plugin '%s' has no verb table",
                             p->name);
    for (const cairn_verb_t *v = verbs; v->name; v++) {
        if (!s_name_ok(v->name) || strlen(v->name) > 64)
            return cairn_err_set(err, 400, "bad_plugin",
                                 "plugin '%s' has a verb named '%s': verb names are "
                                 "snake_case, at most 64 characters",
                                 p->name, v->name);
        if (!v->handle)
            return cairn_err_set(err, 400, "bad_plugin",
                                 "plugin '%s' verb '%s' has no handler", p->name,
                                 v->name);
        if (!v->perm && !(v->flags & CAIRN_VERB_PUBLIC))
            return cairn_err_set(err, 400, "bad_plugin",
                                 "plugin '%s' verb '%s' declares no permission (set "
                                 "perm, or the PUBLIC flag for a verb without token)",
                                 p->name, v->name);
        for (const cairn_verb_t *w = verbs; w != v; w++)
            if (strcmp(w->name, v->name) == 0)
                return cairn_err_set(err, 409, "bad_plugin",
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
            return cairn_err_set(err, 400, "bad_plugin",
                                 "plugin '%s' has an invalid role name", p->name);
        if (s_check_verb_table(p, r->verbs, err) != 0) return -1;
        for (const cairn_role_t *q = p->roles; q != r; q++)
            if (strcmp(q->name, r->name) == 0)
                return cairn_err_set(err, 409, "bad_plugin",
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
    cairn_err_set(err, 400, "bad_conf",
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
    if (!dl) return cairn_err_set(err, 400, "bad_plugin", "cannot load %s", dlerror());
    cairn_plugin_entry_fn *entry;
    *(void **)&entry = dlsym(dl, CAIRN_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        cairn_err_set(err, 400, "bad_plugin",
                      "%s does not export %s(): is it a Cairn plugin?", path,
                      CAIRN_PLUGIN_ENTRY_SYMBOL);
        goto fail;
    }
    const cairn_plugin_t *p = entry(cairn_runtime_api());
    if (!p) {
        cairn_err_set(err, 400, "bad_plugin",
                      "%s refused this host (its %s() returned NULL: built for "
                      "another host API?)",
                      path, CAIRN_PLUGIN_ENTRY_SYMBOL);
        goto fail;
    }
    if (p->abi != CAIRN_PLUGIN_ABI) {
        cairn_err_set(err, 400, "bad_plugin",
                      "%s was built for plugin ABI %u; this cairnd speaks ABI %d", path,
                      p->abi, CAIRN_PLUGIN_ABI);
        goto fail;
    }
    if (p->size < offsetof(cairn_plugin_t, tick)) {
        cairn_err_set(err, 400, "bad_plugin",
                      "%s has a descriptor of %u bytes, smaller than any ABI %d one",
                      path, p->size, CAIRN_PLUGIN_ABI);
        goto fail;
    }
    if (!s_name_ok(p->name)) {
        cairn_err_set(err, 400, "bad_plugin", "%s has an invalid plugin name", path);
        goto fail;
    }
    if (expect_name && strcmp(expect_name, p->name) != 0) {
        cairn_err_set(err, 400, "bad_plugin",
                      "%s is the plugin '%s', but the conf expects '%s'", path, p->name,
                      expect_name);
        goto fail;
    }
    if (!p->init || !p->fini) {
        cairn_err_set(err, 400, "bad_plugin", "%s lacks init or fini", path);
        goto fail;
    }
    if (s_check_verbs(p, err) != 0) goto fail;
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

static int s_check_value(const cairn_plugin_t *p, const cairn_conf_key_t *k,
                         const char *v, cairn_err_t *err)
{
    char *end = NULL;
    errno = 0;
    switch (k->type) {
        case CAIRN_CONF_INT:
            (void)strtoll(v, &end, 10);
            if (!*v || *end || errno ||
                !(isdigit((unsigned char)v[0]) ||
                  (v[0] == '-' && isdigit((unsigned char)v[1]))))
                return cairn_err_set(
                    err, 400, "bad_conf",
                    "setting '%s' of plugin '%s' must be an integer, not "
                    "'%s'",
                    k->key, p->name, v);
            return 0;
        case CAIRN_CONF_BOOL:
            if (strcmp(v, "true") && strcmp(v, "false"))
                return cairn_err_set(
                    err, 400, "bad_conf",
                    "setting '%s' of plugin '%s' must be true or false, "
                    "not '%s'",
                    k->key, p->name, v);
            return 0;
        case CAIRN_CONF_SIZE:
            (void)strtoull(v, &end, 10);
            if (!isdigit((unsigned char)v[0]) || errno ||
                (*end && strcmp(end, "KiB") && strcmp(end, "MiB") &&
                 strcmp(end, "GiB")))
                return cairn_err_set(
                    err, 400, "bad_conf",
                    "setting '%s' of plugin '%s' must be a size such as "
                    "4096, 64KiB, 16MiB or 2GiB, not '%s'",
                    k->key, p->name, v);
            return 0;
        default:
            return 0;
    }
}

int cairn_plugin_check_settings(const cairn_plugin_t *p, const char *const *keys,
                                const char *const *vals, size_t n, cairn_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        if (s_has_roles(p) && strcmp(keys[i], CAIRN_ROLE_SETTING) == 0) {
            if (!cairn_plugin_verbs_for(p, NULL, vals[i], NULL, err)) return -1;
            continue;
        }
        const cairn_conf_key_t *k = p->conf;
        while (k && k->key && strcmp(k->key, keys[i]) != 0) k++;
        if (!k || !k->key)
            return cairn_err_set(err, 400, "bad_conf",
                                 "plugin '%s' has no setting '%s'", p->name, keys[i]);
        if (s_check_value(p, k, vals[i], err) != 0) return -1;
    }
    for (const cairn_conf_key_t *k = p->conf; k && k->key; k++) {
        if (k->dflt) continue;
        size_t i = 0;
        while (i < n && strcmp(keys[i], k->key) != 0) i++;
        if (i == n)
            return cairn_err_set(err, 400, "bad_conf",
                                 "plugin '%s' needs the setting '%s' (%s)", p->name,
                                 k->key, k->help ? k->help : "no default");
    }
    return 0;
}
