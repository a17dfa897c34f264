/* The authorization hook (see authz.h). */
#define _GNU_SOURCE
#include "authz.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct authz {
    bool open; /* mode none */
};

authz_t *authz_new(const char *mode, cairn_err_t *err)
{
    if (!mode || strcmp(mode, "none") != 0) {
        cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_CONF,
                      "kernel.auth '%s': token authentication needs the auth plugin, "
                      "which this build does not have yet; set kernel.auth: none "
                      "(loopback only)",
                      mode ? mode : "");
        return NULL;
    }
    authz_t *a = calloc(1, sizeof *a);
    if (!a) {
        cairn_err_oom(err, NULL);
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
        return cairn_err_set(err, CAIRN_ST_UNAUTHENTICATED, CAIRN_E_UNAUTHENTICATED,
                             "no auth service is configured");
    /* Open mode: the single local user owns everything. */
    out->sub = "local";
    out->roles[0] = "Owner";
    out->nroles = 1;
    return 0;
}

int authz_permits(authz_t *self, const authz_principal_t *who, const char *perm,
                  cairn_err_t *err)
{
    /* Open mode: every principal holds every permission. The auth service
     * (issue 13) will map who's roles to their grants here. */
    if (!perm || self->open) return 0;
    return cairn_err_set(err, CAIRN_ST_FORBIDDEN, CAIRN_E_FORBIDDEN,
                         "%s may not use %s", who->sub, perm);
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
