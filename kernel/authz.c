/* The authorization hook (see authz.h). */
#define _GNU_SOURCE
#include "authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct authz {
    bool open; /* mode none */
};

authz_t *authz_new(const char *mode, cairn_err_t *err)
{
    if (!mode || strcmp(mode, "none") != 0) {
        cairn_err_set(err, 400, "bad_conf",
                      "kernel.auth '%s': token authentication needs the auth plugin, "
                      "which this build does not have yet; set kernel.auth: none "
                      "(loopback only)",
                      mode ? mode : "");
        return NULL;
    }
    authz_t *a = calloc(1, sizeof *a);
    if (!a) {
        cairn_err_set(err, 500, NULL, "out of memory");
        return NULL;
    }
    a->open = true;
    return a;
}

void authz_destroy(authz_t **self_p)
{
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

bool authz_is_open(const authz_t *self)
{
    return self->open;
}

int authz_check(authz_t *self, cairn_str_t tok, cairn_str_t ws, const char *perm,
                authz_principal_t *out, cairn_err_t *err)
{
    (void)tok;
    (void)ws;
    (void)perm;
    if (!self->open)
        return cairn_err_set(err, 401, "unauthenticated",
                             "no auth service is configured");
    /* Open mode: the single local user owns everything. */
    out->sub = "local";
    out->roles[0] = "Owner";
    out->nroles = 1;
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

bool authz_endpoint_is_loopback(const char *ep)
{
    if (!ep || !*ep) return true;
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9)) return true;
    if (strncmp(ep, "tcp://", 6) != 0) return false;
    const char *host = ep + 6;
    return !strncmp(host, "127.", 4) || !strncmp(host, "localhost:", 10) ||
           !strncmp(host, "[::1]:", 6);
}
