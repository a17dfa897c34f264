/* Each job's token (compute.h): made when the job starts, for the
 * principal that submitted it, held to the job's workspace (auth's
 * create_token ws: no auth.write or auth.admin either), expiring after the
 * job's timeout (else a week), revoked when the job ends. It reaches the
 * job as CAIRN_TOKEN in its environment file (0600, in a 0700 directory),
 * never in the jobs database. Without an auth service (kernel.auth: none)
 * there is nothing to make and the job gets none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute.h"

#define AUTH "auth"
#define TTL_MS 30000
#define WEEK_S (7 * 24 * 3600)

typedef struct token_req {
    inflight_t node; /* first */
    compute_t *c;
    job_token_fn *done;
    void *arg;
} token_req_t;

static void s_drop(inflight_t *n)
{
    free(n);
}

static void s_made(void *arg, int st, const char *code, const char *msg,
                   const msgpack_object *body)
{
    token_req_t *t = arg;
    cairn_err_t err = {0};
    char secret[JOB_TOKEN_MAX + 1] = "", id[JOB_TOKEN_ID_MAX + 1] = "";
    const msgpack_object *tok = cairn_obj_get(body, "token");
    const msgpack_object *tid = cairn_obj_get(body, "token_id");
    if (st == CAIRN_ST_NOT_FOUND && code && !strcmp(code, CAIRN_E_NO_SERVICE)) {
        /* no auth service: requests need no token */
    } else if (st >= 400) {
        cairn_err_set(&err, st, code && *code ? code : CAIRN_E_INTERNAL,
                      "the job's token could not be made: auth.create_token answered "
                      "%d: %s",
                      st, msg ? msg : "");
    } else if (!tok || tok->type != MSGPACK_OBJECT_STR ||
               tok->via.str.size > JOB_TOKEN_MAX || !tid ||
               tid->type != MSGPACK_OBJECT_STR ||
               tid->via.str.size > JOB_TOKEN_ID_MAX) {
        cairn_err_set(&err, CAIRN_ST_BAD_GATEWAY, CAIRN_E_BAD_REPLY,
                      "auth.create_token's answer lacks token or token_id");
    } else {
        memcpy(secret, tok->via.str.ptr, tok->via.str.size);
        secret[tok->via.str.size] = '\0';
        memcpy(id, tid->via.str.ptr, tid->via.str.size);
        id[tid->via.str.size] = '\0';
    }
    inflight_del(&t->node);
    t->done(t->arg, err.st ? &err : NULL, secret, id);
    memset(secret, 0, sizeof secret);
    free(t);
}

int job_token_make(compute_t *c, const job_t *j, uint64_t timeout_s, job_token_fn *done,
                   void *arg, cairn_err_t *err)
{
    if (!j->principal[0] || !strcmp(j->principal, "anonymous")) {
        done(arg, NULL, "", ""); /* submitted with no identity: none to lend */
        return 0;
    }
    token_req_t *t = calloc(1, sizeof *t);
    if (!t) return cairn_err_oom(err, NULL);
    *t = (token_req_t){.c = c, .done = done, .arg = arg};
    char name[JOB_NAME_MAX + 8];
    snprintf(name, sizeof name, "job:%s", j->name);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    cairn_pack_kv_str(&pk, "name", name);
    cairn_pack_kv_str(&pk, "owner", j->principal);
    cairn_pack_kv_str(&pk, "ws", j->ws);
    cairn_pack_cstr(&pk, "expires_in");
    msgpack_pack_uint64(&pk, timeout_s ? timeout_s + 3600 : WEEK_S);
    inflight_add(c, &t->node, s_drop);
    int rc = cairn_call_ws(c->ctx, j->ws, AUTH, "create_token", sb.data, sb.size,
                           TTL_MS, s_made, t, err);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        inflight_del(&t->node);
        free(t);
    }
    return rc;
}

static void s_revoked(void *arg, int st, const char *code, const char *msg,
                      const msgpack_object *body)
{
    compute_t *c = arg;
    (void)body;
    if (st >= 400 && st != CAIRN_ST_NOT_FOUND)
        cairn_log(c->ctx, CAIRN_LOG_WARN,
                  "a job's token stays until it expires: %d %s %s", st,
                  code ? code : "", msg ? msg : "");
}

void job_token_revoke(compute_t *c, const job_t *j)
{
    if (!j->token_id[0]) return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cairn_pack_kv_str(&pk, "token_id", j->token_id);
    cairn_err_t err = {0};
    if (cairn_call_ws(c->ctx, j->ws, AUTH, "revoke_token", sb.data, sb.size, TTL_MS,
                      s_revoked, c, &err) != 0)
        cairn_log(c->ctx, CAIRN_LOG_WARN, "a job's token stays until it expires: %s",
                  err.msg);
    msgpack_sbuffer_destroy(&sb);
}
