/* The authorization hook (see authz.h). */
#define _GNU_SOURCE
#include "authz.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "grants.h"

/* The token cache: direct-mapped by the token's BLAKE2b-256, so that it is
 * bounded (AUTHZ_CACHE_SLOTS answers) with no eviction policy to get wrong;
 * a colliding token replaces the slot and is resolved again when it comes
 * back. Only the hash is kept, never the token. */
#define AUTHZ_CACHE_SLOTS 4096
#define AUTHZ_NEGATIVE_MS 1000 /* a refused token is asked about again after 1 s */
#define AUTHZ_MAX_GRANTS 16
#define AUTHZ_MAX_PATTERNS 64
#define AUTHZ_MAX_WORKSPACES 10000 /* = plugins/auth's AUTH_MAX_WORKSPACES */

typedef struct grant {
    char ws[65];   /* "*" = every workspace */
    char role[65]; /* the role it comes from ("" when the service says none) */
    char **actions, **not_actions;
    size_t nactions, nnot;
} grant_t;

typedef struct entry {
    unsigned char key[AUTHZ_KEY_BYTES];
    bool used, refused;
    uint64_t until_ms; /* wall clock: the token's expiry (0 = never) or, refused, the
                          retry time */
    char sub[AUTHZ_SUB_MAX];
    grant_t grants[AUTHZ_MAX_GRANTS];
    size_t ngrants;
} entry_t;

/* The workspaces that exist, as the latest resolve answer listed them
 * (sorted, for bsearch). Every change to them publishes auth.changed, which
 * empties the cache, so no token is checked against an older list than the
 * answer that let it in. */
typedef char ws_name_t[65];

struct authz {
    bool open;        /* mode none */
    char service[65]; /* mode <service>: the auth service's name */
    entry_t *cache;   /* AUTHZ_CACHE_SLOTS entries */
    ws_name_t *ws;    /* NULL until an answer lists them: then checked */
    size_t nws;
};

authz_t *authz_new(const char *mode, cairn_err_t *err)
{
    if (!mode || !*mode || strlen(mode) > 64) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "kernel.auth must be 'none' (loopback only) or the name of the "
                      "auth service");
        return NULL;
    }
    authz_t *a = calloc(1, sizeof *a);
    if (!a) {
        cairn_err_oom(err, NULL);
        return NULL;
    }
    if (strcmp(mode, "none") == 0) {
        a->open = true;
        return a;
    }
    snprintf(a->service, sizeof a->service, "%s", mode);
    if (!(a->cache = calloc(AUTHZ_CACHE_SLOTS, sizeof *a->cache))) {
        free(a);
        cairn_err_oom(err, "for the token cache");
        return NULL;
    }
    return a;
}

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void s_entry_clear(entry_t *e)
{
    for (size_t i = 0; i < e->ngrants; i++) {
        s_strv_free(e->grants[i].actions, e->grants[i].nactions);
        s_strv_free(e->grants[i].not_actions, e->grants[i].nnot);
    }
    memset(e, 0, sizeof *e);
}

void authz_destroy(authz_t **self_p)
{
    if (!self_p || !*self_p) return;
    authz_t *a = *self_p;
    if (a->cache) {
        for (size_t i = 0; i < AUTHZ_CACHE_SLOTS; i++) s_entry_clear(&a->cache[i]);
        sodium_memzero(a->cache, AUTHZ_CACHE_SLOTS * sizeof *a->cache);
        free(a->cache);
    }
    free(a->ws);
    free(a);
    *self_p = NULL;
}

bool authz_is_open(const authz_t *self)
{
    return self->open;
}

const char *authz_service(const authz_t *self)
{
    return self->open ? NULL : self->service;
}

void authz_token_key(cairn_str_t tok, unsigned char key[AUTHZ_KEY_BYTES])
{
    crypto_generichash(key, AUTHZ_KEY_BYTES, (const unsigned char *)tok.ptr, tok.len,
                       NULL, 0);
}

static entry_t *s_slot(authz_t *self, const unsigned char key[AUTHZ_KEY_BYTES])
{
    uint32_t i;
    memcpy(&i, key, sizeof i);
    return &self->cache[i % AUTHZ_CACHE_SLOTS];
}

/* The cached answer for key, or NULL when there is none (or it is stale). */
static entry_t *s_cached(authz_t *self, const unsigned char key[AUTHZ_KEY_BYTES])
{
    entry_t *e = s_slot(self, key);
    if (!e->used || sodium_memcmp(e->key, key, AUTHZ_KEY_BYTES) != 0) return NULL;
    if (e->refused && cairn_wall_ms() >= e->until_ms) return NULL;
    return e;
}

static bool s_ws_matches(const grant_t *g, cairn_str_t ws)
{
    if (strcmp(g->ws, "*") == 0) return true;
    if (!ws.len) return strcmp(g->ws, "default") == 0;
    return strlen(g->ws) == ws.len && memcmp(g->ws, ws.ptr, ws.len) == 0;
}

static bool s_entry_permits(const entry_t *e, cairn_str_t ws, const char *perm)
{
    for (size_t i = 0; i < e->ngrants; i++) {
        const grant_t *g = &e->grants[i];
        if (s_ws_matches(g, ws) &&
            cairn_grants_permit((const char *const *)g->actions, g->nactions,
                                (const char *const *)g->not_actions, g->nnot, perm))
            return true;
    }
    return false;
}

/* The names of the roles whose grants hold in ws, for plugins'
 * cairn_has_role (borrowed from the cache entry). */
static void s_stamp_roles(const entry_t *e, cairn_str_t ws, authz_principal_t *out)
{
    out->nroles = 0;
    for (size_t i = 0; i < e->ngrants && out->nroles < AUTHZ_MAX_ROLES; i++) {
        const grant_t *g = &e->grants[i];
        bool seen = !g->role[0] || !s_ws_matches(g, ws);
        for (int j = 0; j < out->nroles && !seen; j++)
            seen = strcmp(out->roles[j], g->role) == 0;
        if (!seen) out->roles[out->nroles++] = g->role;
    }
}

static int s_ws_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static bool s_ws_exists(const authz_t *self, cairn_str_t ws)
{
    if (!self->ws || !ws.len) return true; /* not told, or the default one */
    ws_name_t key;
    snprintf(key, sizeof key, "%.*s", (int)ws.len, ws.ptr);
    return strlen(key) == ws.len &&
           bsearch(key, self->ws, self->nws, sizeof *self->ws, s_ws_cmp) != NULL;
}

int authz_check(authz_t *self, cairn_str_t tok, cairn_str_t ws, const char *perm,
                authz_principal_t *out, cairn_err_t *err)
{
    if (self->open) { /* the single local user owns everything */
        out->sub = "local";
        out->roles[0] = "Owner";
        out->nroles = 1;
        return 0;
    }
    if (!tok.len) {
        if (!perm) { /* a public verb (auth.login, sys.ping) */
            out->sub = "anonymous";
            out->nroles = 0;
            return 0;
        }
        return cairn_err_set(err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                             "this verb needs a token (header 'tok'): `cairn login`, "
                             "CAIRN_TOKEN, or the owner.token of the state dir");
    }
    unsigned char key[AUTHZ_KEY_BYTES];
    authz_token_key(tok, key);
    entry_t *e = s_cached(self, key);
    if (!e) {
        cairn_err_set(err, CAIRN_ST_UNAVAILABLE, CAIRN_E_UNAVAILABLE,
                      "the token has not been checked yet; retry");
        return AUTHZ_UNRESOLVED;
    }
    if (e->refused || (e->until_ms && cairn_wall_ms() >= e->until_ms))
        return cairn_err_set(err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                             e->refused ? "the token is not valid (unknown or revoked)"
                                        : "the token has expired");
    out->sub = e->sub;
    s_stamp_roles(e, ws, out);
    if (perm && !s_entry_permits(e, ws, perm))
        return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                             "%s may not use %s in workspace '%.*s'", e->sub, perm,
                             ws.len ? (int)ws.len : 7, ws.len ? ws.ptr : "default");
    /* Only once the grants allow it: a workspace the caller may not use
     * is 403 whether it exists or not, so that its existence does not leak. */
    if (perm && !s_ws_exists(self, ws))
        return cairn_err_set(
            err, CAIRN_ST_NOT_FOUND, CAIRN_E_NOT_FOUND,
            "there is no workspace named '%.*s' (auth.create_workspace "
            "makes one)",
            (int)ws.len, ws.ptr);
    return 0;
}

bool authz_resolved(authz_t *self, cairn_str_t tok)
{
    if (self->open || !tok.len) return true;
    unsigned char key[AUTHZ_KEY_BYTES];
    authz_token_key(tok, key);
    return s_cached(self, key) != NULL;
}

/* An array of strings (at most AUTHZ_MAX_PATTERNS, each < 256 bytes). */
static int s_strv(const msgpack_object *o, char ***out, size_t *n, cairn_err_t *err)
{
    *out = NULL;
    *n = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL) return 0;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > AUTHZ_MAX_PATTERNS)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "resolve: a grant's patterns are not a short list");
    if (o->via.array.size && !(*out = calloc(o->via.array.size, sizeof **out)))
        return cairn_err_oom(err, "for a grant");
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *s = &o->via.array.ptr[i];
        if (s->type != MSGPACK_OBJECT_STR || s->via.str.size > 255 ||
            !((*out)[i] = strndup(s->via.str.ptr, s->via.str.size)))
            return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                                 "resolve: a grant pattern is not a short string");
        (*n)++;
    }
    return 0;
}

static int s_grants(const msgpack_object *arr, entry_t *e, cairn_err_t *err)
{
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY ||
        arr->via.array.size > AUTHZ_MAX_GRANTS)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "resolve: 'grants' must be a list of at most %d",
                             AUTHZ_MAX_GRANTS);
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *g = &arr->via.array.ptr[i];
        grant_t *out = &e->grants[e->ngrants++];
        cairn_str_t ws, role = {"", 0};
        if (cairn_field_str(g, "ws", true, 64, &ws, err) != 0 ||
            cairn_field_str(g, "role", false, 64, &role, err) < 0 ||
            s_strv(cairn_obj_get(g, "actions"), &out->actions, &out->nactions, err) !=
                0 ||
            s_strv(cairn_obj_get(g, "not_actions"), &out->not_actions, &out->nnot,
                   err) != 0)
            return -1;
        snprintf(out->ws, sizeof out->ws, "%.*s", (int)ws.len, ws.ptr);
        snprintf(out->role, sizeof out->role, "%.*s", (int)role.len, role.ptr);
    }
    return 0;
}

/* Replace the workspace list with the answer's (absent: keep the last). */
static int s_learn_workspaces(authz_t *self, const msgpack_object *arr,
                              cairn_err_t *err)
{
    if (!arr) return 0;
    if (arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size > AUTHZ_MAX_WORKSPACES)
        return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                             "resolve: 'workspaces' must be a list of at most %d",
                             AUTHZ_MAX_WORKSPACES);
    uint32_t n = arr->via.array.size;
    ws_name_t *names = calloc(n ? n : 1, sizeof *names);
    if (!names) return cairn_err_oom(err, "for the workspace list");
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
            o->via.str.size >= sizeof *names ||
            memchr(o->via.str.ptr, 0, o->via.str.size)) {
            free(names);
            return cairn_err_set(err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                                 "resolve: workspaces[%u] is not a name", i);
        }
        memcpy(names[i], o->via.str.ptr, o->via.str.size);
    }
    qsort(names, n, sizeof *names, s_ws_cmp);
    free(self->ws);
    self->ws = names;
    self->nws = n;
    return 0;
}

int authz_learn(authz_t *self, const unsigned char key[AUTHZ_KEY_BYTES],
                const msgpack_object *reply, cairn_err_t *err)
{
    if (self->open) return 0;
    if (s_learn_workspaces(self, cairn_obj_get(reply, "workspaces"), err) != 0)
        return -1;
    entry_t *e = s_slot(self, key);
    s_entry_clear(e);
    cairn_str_t sub;
    int64_t expires = 0;
    if (cairn_field_str(reply, "principal", true, AUTHZ_SUB_MAX - 1, &sub, err) != 0 ||
        cairn_field_int(reply, "expires", false, &expires, err) < 0 ||
        s_grants(cairn_obj_get(reply, "grants"), e, err) != 0) {
        s_entry_clear(e);
        return -1;
    }
    memcpy(e->key, key, AUTHZ_KEY_BYTES);
    snprintf(e->sub, sizeof e->sub, "%.*s", (int)sub.len, sub.ptr);
    e->until_ms = expires > 0 ? (uint64_t)expires : 0;
    e->used = true;
    return 0;
}

void authz_learn_refusal(authz_t *self, const unsigned char key[AUTHZ_KEY_BYTES])
{
    if (self->open) return;
    entry_t *e = s_slot(self, key);
    s_entry_clear(e);
    memcpy(e->key, key, AUTHZ_KEY_BYTES);
    e->used = e->refused = true;
    e->until_ms = cairn_wall_ms() + AUTHZ_NEGATIVE_MS;
}

void authz_forget_all(authz_t *self)
{
    if (self->open) return;
    for (size_t i = 0; i < AUTHZ_CACHE_SLOTS; i++) s_entry_clear(&self->cache[i]);
}

int authz_permits(authz_t *self, const authz_principal_t *who, const char *perm,
                  cairn_err_t *err)
{
    (void)self;
    (void)who;
    (void)perm;
    (void)err;
    /* Plugins are trusted code of this deployment: a nested call carries
     * the calling plugin's service principal, which may use any verb (the
     * request that caused it was authorized at the edge). */
    return 0;
}

void authz_service_principal(const char *svc, authz_principal_t *out, char *buf,
                             size_t buflen)
{
    snprintf(buf, buflen, "service:%s", svc);
    out->sub = buf;
    out->roles[0] = "Service";
    out->nroles = 1;
}

static bool s_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* Split "host:port" or "[v6]:port" into host; -1 when it has no port. */
static int s_tcp_host(const char *hp, char *host, size_t cap)
{
    const char *end;
    if (hp[0] == '[') {
        end = strchr(hp, ']');
        if (!end || end[1] != ':') return -1;
        hp++;
    } else {
        end = strrchr(hp, ':');
        if (!end) return -1;
    }
    size_t n = (size_t)(end - hp);
    if (n == 0 || n >= cap) return -1;
    memcpy(host, hp, n);
    host[n] = '\0';
    return 0;
}

int authz_endpoint_check_loopback(const char *ep, cairn_err_t *err)
{
    if (!ep || !*ep || !strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
        return 0;
    if (strncmp(ep, "tcp://", 6) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: only tcp://, ipc:// and inproc:// endpoints may be "
                             "bound",
                             ep);
    if (strchr(ep, ';'))
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
            "%s: libzmq binds the address after ';' (its source;address "
            "form); give one loopback address",
            ep);
    char host[256];
    if (s_tcp_host(ep + 6, host, sizeof host) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: expected tcp://HOST:PORT", ep);
    if (!strcmp(host, "*"))
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: '*' binds every interface; use 127.0.0.1", ep);
    if (if_nametoindex(host) != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: '%s' is a network interface's name, which libzmq "
                             "binds by its addresses; use 127.0.0.1",
                             ep, host);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                             "%s: cannot resolve '%s': %s", ep, host, gai_strerror(rc));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (!s_addr_is_loopback(ai->ai_addr)) {
            freeaddrinfo(res);
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                                 "%s: '%s' is or resolves to an address that is not "
                                 "loopback",
                                 ep, host);
        }
    freeaddrinfo(res);
    return 0;
}
