/* cli.h — what the parts of the `cairn` CLI share: options, calls,
 * msgpack -> JSON and tables (tools/cairn.c), failures, base64 and JSON ->
 * msgpack (tools/cli_json.c), and the tracking and artifact commands
 * (tools/cli_tracking.c). */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/client.h"
#include "cairn/msg.h"
#include "jsonmp.h"

/* Exit statuses (documented in the usage text). */
enum {
    EXIT_OK = 0,
    EXIT_SERVER = 1,      /* cairnd answered an error, or health is not ok */
    EXIT_USAGE = 2,       /* bad arguments, bad JSON input, an unreadable local file */
    EXIT_UNREACHABLE = 3, /* no reply from cairnd */
    EXIT_INTERNAL = 4,    /* out of memory, malformed reply, cannot write output */
};

#define MAX_ARGS 32   /* positional arguments: a command and its operands */
#define MAX_REPEAT 64 /* values of a repeatable option (--tag, --order-by) */

typedef struct fail {
    int code;                          /* one of X_* */
    bool hint;                         /* a usage error: point at --help */
    int st;                            /* EXIT_SERVER: the reply's status; else 0 */
    char msg[CAIRN_ERR_MSG_MAX + 256]; /* printed after "cairn: "; may be empty */
} fail_t;

/* Command options, as bits: each command names those it takes. */
enum {
    CO_ALL = 1u << 0,
    CO_DELETED = 1u << 1,
    CO_FILTER = 1u << 2,
    CO_MAX = 1u << 3,
    CO_TAG = 1u << 4,
    CO_NAME = 1u << 5,
    CO_ORDER_BY = 1u << 6,
    CO_STATUS = 1u << 7,
    CO_STEP = 1u << 8,
    CO_PROGRESS = 1u << 9,
    CO_OUT = 1u << 10,
    CO_PYTHON = 1u << 11,
    CO_REQUIREMENTS = 1u << 12,
    CO_ENV = 1u << 13,
    CO_DESCRIPTION = 1u << 14,
    CO_DOT = 1u << 15,
    CO_TYPE = 1u << 16,
    CO_FOLLOW = 1u << 17,     /* --follow, --stream */
    CO_EXPERIMENT = 1u << 18, /* --experiment NAME */
    CO_AUTH_MODE = 1u << 19,  /* --auth-mode key|token */
    CO_CODE = 1u << 20,       /* --code DIR */
    CO_SCRIPT = 1u << 21,     /* --scoring-script FILE */
    CO_DEPLOYMENT = 1u << 22, /* --deployment NAME */
};

typedef struct opts {
    const char *endpoint; /* resolved: --endpoint, $CAIRN_ENDPOINT or the default */
    const char *token, *ws;
    const char *server_key, *client_key; /* CurveZMQ; NULL: the environment's */
    uint32_t ttl_ms;                     /* 0: the client's default */
    bool json, help, version;
    int nargs;
    char *args[MAX_ARGS];
    /* command options */
    unsigned given; /* CO_* bits of those on the line */
    bool all, deleted, progress, dot;
    const char *filter, *name, *status, *step, *out;
    uint64_t max; /* --max; 0: no limit */
    int ntags, norder;
    const char *tags[MAX_REPEAT], *order_by[MAX_REPEAT];
    /* envs create, data create */
    const char *python, *requirements, *description, *type;
    /* job list */
    const char *experiment;
    /* endpoints */
    const char *auth_mode, *code, *script, *deployment;
    int nenv;
    const char *env[MAX_REPEAT];
} opts_t;

__attribute__((format(printf, 3, 4))) int cli_fail(fail_t *f, int code, const char *fmt,
                                                   ...);
/* A usage error in the command line (not in a JSON body): EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int cli_bad_usage(fail_t *f, const char *fmt,
                                                        ...);
int cli_oom(fail_t *f);

/* How a JSON body (the command line's or stdin's) is read: any value, NUL
 * inside strings allowed, a key twice refused. */
#define CLI_JSON_DECODE_FLAGS \
    (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

/* JSON -> msgpack ({"$bin": ...} as binary); EXIT_USAGE when it cannot be
 * sent: a {"$bin": s} whose s is not base64, or arrays and objects nested
 * deeper than CAIRN_MSGPACK_MAX_DEPTH (the most cairnd reads). */
int cli_pack_json(json_t *j, msgpack_packer *pk, fail_t *f);
/* Compact JSON text (heap); NULL when out of memory. */
char *cli_dumps_compact(const json_t *j);
int cli_print_json(const json_t *j, bool pretty, fail_t *f);
/* The text of the local file path ('-': stdin) as a JSON string in *out:
 * at most max bytes (past it: "'PATH' is over MAX bytes (limit_name)"),
 * UTF-8. EXIT_USAGE when it cannot be read or is not UTF-8 text. */
int cli_read_text(const char *path, size_t max, const char *limit_name, json_t **out,
                  fail_t *f);

/* POST body to uri (http://HOST:PORT/PATH) with the extra header lines
 * (NULL-terminated; may be NULL): *status and the answer's body (heap,
 * NUL-terminated, *alen bytes). cli_http.c. */
int cli_http_post(const char *uri, const char *const *headers, const char *body,
                  size_t len, int timeout_ms, int *status, char **answer, size_t *alen,
                  fail_t *f);

/* Call svc.verb with body (msgpack; NULL for nil) and return the reply
 * body as JSON in *out. A status >= 400 is EXIT_SERVER with the reply's code
 * and sentence (f->st holds the status). */
int cli_call(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
             const msgpack_sbuffer *body, json_t **out, fail_t *f);
/* The same, keeping the reply (msgpack, not JSON) in *out for the caller to
 * read with cairn_reply_object and free with cairn_reply_destroy; *obj is
 * its body, checked to be a map. */
int cli_call_raw(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
                 const msgpack_sbuffer *body, cairn_reply_t **out,
                 const msgpack_object **obj, fail_t *f);

/* Call svc.verb with a JSON body, which it steals (NULL: out of memory);
 * the packed body is wiped after (it may hold a password or a secret). */
int cli_call_json(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
                  json_t *body, json_t **out, fail_t *f);
/* cli_call_json, then the reply's object under key printed (the whole
 * reply with --json, or when key is NULL or absent). */
int cli_call_show(cairn_client_t *c, const opts_t *o, const char *svc, const char *verb,
                  json_t *body, const char *key, fail_t *f);

/* A failure of a C SDK function (cairn/secrets.h, cairn/audit.h, ...) as
 * the CLI reports it: no reply from cairnd is EXIT_UNREACHABLE, a reply the
 * SDK cannot use EXIT_INTERNAL, a refusal EXIT_SERVER with its code and
 * sentence (f->st holds the status). */
int cli_fail_sdk(const opts_t *o, const cairn_err_t *err, fail_t *f);

/* A group command's operands: `cairn GROUP NAME OPERAND...`. */
#define OPERAND(o, i) ((o)->args[2 + (i)])
#define NOPERANDS(o) ((o)->nargs - 2)

#define MAX_COLS 10 /* columns in a table */

typedef struct col {
    const char *title;
    const char *key;
    bool zero_is_none; /* show 0 as "-" (a pid) */
} col_t;

/* Print rows (an array of objects) with the given columns. */
int cli_table(const json_t *rows, const col_t *cols, size_t ncols, fail_t *f);

/* The --tag K=V options as [{key, value}]; NULL with *rc set on failure
 * (cli_tracking.c). */
json_t *cli_tags(const opts_t *o, int *rc, fail_t *f);

/* The tracking and artifact commands (cli_tracking.c). */
typedef int (*cmd_fn)(cairn_client_t *, const opts_t *, fail_t *);
int cli_experiments_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_experiments_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_experiments_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_experiments_restore(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_runs_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_runs_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_runs_search(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_runs_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_runs_end(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_metrics_history(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_metrics_log(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_params_log(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_artifacts_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_artifacts_upload(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_artifacts_download(cairn_client_t *c, const opts_t *o, fail_t *f);
/* The model registry's commands (cli_registry.c). */
int cli_models_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_models_register(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_models_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_models_versions(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_models_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_models_alias(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_models_history(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_models_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_models_download(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_lineage(cairn_client_t *c, const opts_t *o, fail_t *f);
/* Environments (cli_assets.c). */
int cli_envs_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_envs_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_envs_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_envs_archive(cairn_client_t *c, const opts_t *o, fail_t *f);
/* Data assets (cli_assets.c). */
int cli_data_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_data_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_data_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_data_archive(cairn_client_t *c, const opts_t *o, fail_t *f);

/* Jobs (cli_jobs.c). */
int cli_job_submit(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_job_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_job_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_job_cancel(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_job_logs(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_compute_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_compute_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_compute_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_compute_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_batch_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_batch_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_batch_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_batch_update(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_batch_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_batch_invoke(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_keys(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_metrics(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_traffic(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_mirror(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_deployment_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_deployment_update(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_deployment_show(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_deployment_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_deployment_logs(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_deployment_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_endpoint_invoke(cairn_client_t *c, const opts_t *o, fail_t *f);

/* The secrets and audit commands (cli_vault.c). */
int cli_secrets_set(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_secrets_get(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_secrets_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_secrets_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_secrets_rotate(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_audit_query(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_audit_verify(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_audit_verify_file(cairn_client_t *c, const opts_t *o, fail_t *f);
/* The auth commands (cli_auth.c). */
int cli_whoami(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_login(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_logout(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_users_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_users_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_users_passwd(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_tokens_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_tokens_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_tokens_revoke(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_roles_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_roles_define(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_roles_assign(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_roles_unassign(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_workspaces_list(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_workspaces_create(cairn_client_t *c, const opts_t *o, fail_t *f);
int cli_workspaces_delete(cairn_client_t *c, const opts_t *o, fail_t *f);
/* cairn keygen: a CurveZMQ key pair (cli_keygen.c); needs no cairnd. */
int cli_keygen(cairn_client_t *c, const opts_t *o, fail_t *f);

#endif
