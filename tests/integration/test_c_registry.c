/* test_c_registry — the C SDK's model registry (cairn/registry.h) against a
 * private cairnd with tracking, artifacts and the registry (inproc): a model
 * created, a version registered from a run's artifacts (stored once:
 * content_hash), another from a path, an alias set and read back by
 * reference, the local checks (NULLs, a malformed reference) and the
 * server's refusals kept (409 for a name taken, 404 for an unknown alias);
 * environments: created, read by reference (latest skips the archived),
 * their env vars, the refusals; files: a local folder uploaded, registered
 * and downloaded, a local CSV as a data asset, a run's input, references
 * resolved to a local folder. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/cairn.h"
#include "harness.h"

#define SERVICES                                            \
    "  tracking:\n    plugin: storage\n    mode: inproc\n"  \
    "  artifacts:\n    plugin: storage\n    mode: inproc\n" \
    "  registry:\n    plugin: registry\n    mode: inproc\n"

/* A run with one artifact, model/w.bin; its id into run_id. */
static void s_run(cairn_client_t *c, char run_id[CAIRN_MAX_RUN_ID + 1])
{
    cairn_err_t err = {0};
    char *exp = NULL, *rid = NULL;
    CHECK(cairn_create_experiment(c, "c-registry", &exp, &err) == 0, "exp: %s",
          err.msg);
    CHECK(exp && cairn_create_run(c, exp, NULL, NULL, &rid, &err) == 0, "run: %s",
          err.msg);
    snprintf(run_id, CAIRN_MAX_RUN_ID + 1, "%s", rid ? rid : "");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    cairn_pack_kv_str(&pk, "run_id", run_id);
    cairn_pack_kv_str(&pk, "path", "model/w.bin");
    cairn_pack_cstr(&pk, "data");
    msgpack_pack_bin(&pk, 7);
    msgpack_pack_bin_body(&pk, "weights", 7);
    cairn_pack_cstr(&pk, "offset");
    msgpack_pack_int(&pk, 0);
    cairn_pack_cstr(&pk, "done");
    msgpack_pack_true(&pk);
    cairn_reply_t *r = NULL;
    CHECK(cairn_client_call(c, "artifacts", "put_artifact", sb.data, sb.size, 0, &r,
                            &err) == 0 &&
              cairn_reply_status(r) == 200,
          "put_artifact: %s", err.msg);
    cairn_reply_destroy(&r);
    msgpack_sbuffer_destroy(&sb);
    free(exp);
    free(rid);
}

/* Environments: versions counted, read back by every form of reference,
 * env vars from a request the SDK does not build, and the refusals. */
static void s_environments(cairn_client_t *c)
{
    cairn_err_t err = {0};
    int64_t v = 0;
    CHECK(cairn_registry_create_environment(c, "py311", "/opt/venvs/py311",
                                            "numpy==2.1\n", "first", &v, &err) == 0 &&
              v == 1,
          "env: %s (version %lld)", err.msg, (long long)v);
    CHECK(cairn_registry_create_environment(c, "py311", NULL, NULL, NULL, &v, &err) ==
                  0 &&
              v == 2,
          "env 2: %s", err.msg);
    CHECK(cairn_registry_create_environment(c, "py311", NULL, NULL, NULL, NULL, &err) ==
              0,
          "env 3 (no out_version): %s", err.msg);
    cairn_environment_t *e = NULL;
    CHECK(cairn_registry_get_environment(c, "env:py311:1", &e, &err) == 0 &&
              cairn_environment_version(e) == 1 &&
              !strcmp(cairn_environment_get(e, "python"), "/opt/venvs/py311") &&
              !strcmp(cairn_environment_get(e, "requirements"), "numpy==2.1\n") &&
              !strcmp(cairn_environment_get(e, "description"), "first") &&
              !strcmp(cairn_environment_get(e, "name"), "py311") &&
              !strcmp(cairn_environment_get(e, "nope"), "") &&
              !cairn_environment_archived(e) && !cairn_environment_var(e, "A"),
          "env:py311:1: %s", err.msg);
    cairn_environment_free(&e);
    cairn_environment_free(&e); /* safe twice */
    CHECK(cairn_registry_get_environment(c, "py311", &e, &err) == 0 &&
              cairn_environment_version(e) == 3,
          "py311 is the latest: %s", err.msg);
    cairn_environment_free(&e);
    CHECK(cairn_registry_get_environment(c, "py311:2", &e, &err) == 0 &&
              cairn_environment_version(e) == 2,
          "py311:2: %s", err.msg);
    cairn_environment_free(&e);
    /* Env vars and archive through the verbs; the SDK reads them back. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cairn_pack_kv_str(&pk, "name", "py311");
    cairn_pack_cstr(&pk, "version");
    msgpack_pack_int(&pk, 3);
    cairn_pack_cstr(&pk, "archived");
    msgpack_pack_true(&pk);
    cairn_reply_t *r = NULL;
    CHECK(cairn_client_call(c, "registry", "archive_environment", sb.data, sb.size, 0,
                            &r, &err) == 0 &&
              cairn_reply_status(r) == 200,
          "archive: %s", err.msg);
    cairn_reply_destroy(&r);
    CHECK(cairn_registry_get_environment(c, "env:py311:latest", &e, &err) == 0 &&
              cairn_environment_version(e) == 2,
          "latest skips the archived: %s", err.msg);
    cairn_environment_free(&e);
    CHECK(cairn_registry_get_environment(c, "py311:3", &e, &err) == 0 &&
              cairn_environment_archived(e),
          "archived by number: %s", err.msg);
    cairn_environment_free(&e);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "name", "vars");
    cairn_pack_cstr(&pk, "env_vars");
    msgpack_pack_map(&pk, 2);
    cairn_pack_kv_str(&pk, "A", "1");
    cairn_pack_kv_str(&pk, "B_C", "");
    CHECK(cairn_client_call(c, "registry", "create_environment", sb.data, sb.size, 0,
                            &r, &err) == 0 &&
              cairn_reply_status(r) == 200,
          "env vars: %s", err.msg);
    cairn_reply_destroy(&r);
    msgpack_sbuffer_destroy(&sb);
    CHECK(
        cairn_registry_get_environment(c, "vars", &e, &err) == 0 &&
            !strcmp(cairn_environment_var(e, "A") ? cairn_environment_var(e, "A") : "-",
                    "1") &&
            cairn_environment_var(e, "B_C") && !*cairn_environment_var(e, "B_C") &&
            !cairn_environment_var(e, "D"),
        "vars: %s", err.msg);
    cairn_environment_free(&e);
    /* Refusals. */
    CHECK(cairn_registry_get_environment(c, "py311:9", &e, &err) != 0 &&
              err.st == 404 && !e,
          "an unknown version is 404, not %d", err.st);
    CHECK(cairn_registry_get_environment(c, "nope", &e, &err) != 0 && err.st == 404,
          "an unknown name is 404, not %d", err.st);
    CHECK(cairn_registry_get_environment(c, "py:x", &e, &err) != 0 && err.st == 400,
          "a bad reference is 400, not %d", err.st);
    CHECK(cairn_registry_create_environment(c, "py311", "python3", NULL, NULL, &v,
                                            &err) != 0 &&
              err.st == 400,
          "a relative python is 400, not %d", err.st);
    CHECK(cairn_registry_create_environment(c, NULL, NULL, NULL, NULL, &v, &err) != 0 &&
              err.st == 400,
          "a NULL name is 400");
    CHECK(cairn_registry_get_environment(c, NULL, &e, &err) != 0 && err.st == 400,
          "a NULL reference is 400");
}

/* Files: a local folder uploaded and registered, downloaded and checked,
 * a data asset from a local CSV (a table), a run's input, references
 * resolved to a local folder. */
static void s_files(cairn_client_t *c, const char *run_id)
{
    cairn_err_t err = {0};
    char dir[] = "/tmp/c-registry-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], *src = NULL;
    snprintf(path, sizeof path, "%s/model", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/model/w.bin", dir);
    FILE *f = fopen(path, "w");
    CHECK(f && fputs("weights-c", f) >= 0 && fclose(f) == 0, "write %s", path);
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK(cairn_registry_upload(c, path, &src, &err) == 0 && src &&
              !strncmp(src, "runs:/", 6),
          "upload: %s", err.msg);
    cairn_model_version_t *v = NULL;
    CHECK(cairn_registry_create_model(c, "local", NULL, &err) == 0 &&
              cairn_registry_create_version(c, "local", src, NULL, &v, &err) == 0,
          "register the upload: %s", err.msg);
    cairn_model_version_free(&v);
    free(src);
    snprintf(path, sizeof path, "%s/out", dir);
    CHECK(cairn_registry_download(c, "local:1", path, &err) == 0, "download: %s",
          err.msg);
    snprintf(path, sizeof path, "%s/out/w.bin", dir);
    char buf[32] = "";
    f = fopen(path, "r");
    CHECK(f && fgets(buf, sizeof buf, f) && !strcmp(buf, "weights-c"),
          "downloaded '%s'", buf);
    if (f) fclose(f);
    CHECK(cairn_registry_download(c, "local:9", path, &err) != 0 && err.st == 404,
          "an unknown version is 404, not %d", err.st);
    /* a data asset: a local CSV, a table */
    snprintf(path, sizeof path, "%s/t.csv", dir);
    f = fopen(path, "w");
    CHECK(f && fputs("a,b\n1,x\n2,y\n", f) >= 0 && fclose(f) == 0, "write %s", path);
    int64_t dv = 0;
    CHECK(cairn_registry_create_data_asset(c, "table", "table", path, "two rows", &dv,
                                           &err) == 0 &&
              dv == 1,
          "data asset: %s", err.msg);
    CHECK(cairn_registry_create_data_asset(c, "table", "table", "/no/such", NULL, &dv,
                                           &err) != 0 &&
              err.st == 400,
          "a path that is neither runs:/ nor local is 400, not %d", err.st);
    CHECK(cairn_registry_log_input(c, run_id, "data:table@latest", &err) == 0,
          "log_input: %s", err.msg);
    CHECK(
        cairn_registry_log_input(c, run_id, "data:table:7", &err) != 0 && err.st == 404,
        "an unknown input is 404, not %d", err.st);
    char *canon = NULL, *kind = NULL, *where = NULL;
    CHECK(cairn_registry_resolve(c, "data:table", &canon, &kind, &where, &err) == 0 &&
              canon && !strcmp(canon, "data:table:1") && kind &&
              !strcmp(kind, "data_asset") && where,
          "resolve: %s", err.msg);
    snprintf(path, sizeof path, "%s/t.csv", where ? where : "");
    f = fopen(path, "r");
    CHECK(f && fgets(buf, sizeof buf, f) && !strcmp(buf, "a,b\n"), "resolved file '%s'",
          path);
    if (f) fclose(f);
    free(canon);
    free(kind);
    free(where);
    CHECK(cairn_registry_create_version(c, "local", "/models/x", NULL, &v, &err) == 0,
          "a path source: %s", err.msg);
    cairn_model_version_free(&v);
    CHECK(cairn_registry_resolve(c, "local:2", &canon, NULL, &where, &err) == 0 &&
              !where && canon && !strcmp(canon, "model:local:2"),
          "a path source has no folder: %s", err.msg);
    free(canon);
    cairn_reply_t *lin = NULL;
    CHECK(cairn_registry_lineage(c, "data:table:1", "down", 1, &lin, &err) == 0 && lin,
          "lineage: %s", err.msg);
    const msgpack_object *edges = cairn_obj_get(cairn_reply_object(lin), "edges");
    CHECK(edges && edges->type == MSGPACK_OBJECT_ARRAY && edges->via.array.size == 1,
          "one edge down from the data: the run that read it");
    cairn_reply_destroy(&lin);
    CHECK(cairn_registry_lineage(c, "nope", NULL, 0, &lin, &err) != 0 &&
              err.st == 400 && !lin,
          "a bad node is 400, not %d", err.st);
    CHECK(cairn_registry_resolve(c, "nope@x", NULL, NULL, NULL, &err) != 0 &&
              err.st == 404,
          "an unknown model is 404, not %d", err.st);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "rm");
}

int main(void)
{
    harness_kernel_t k;
    if (harness_start(&k, SERVICES) != 0) return 1;
    cairn_err_t err = {0};
    cairn_client_t *c = cairn_client_new(k.endpoint, NULL, &err);
    CHECK(c != NULL, "client: %s", err.msg);
    char run_id[CAIRN_MAX_RUN_ID + 1] = "";
    s_run(c, run_id);

    CHECK(cairn_registry_create_model(c, "churn", "who leaves", &err) == 0,
          "create: %s", err.msg);
    CHECK(cairn_registry_create_model(c, "churn", NULL, &err) != 0 && err.st == 409,
          "a name taken is 409, not %d", err.st);
    char source[128];
    snprintf(source, sizeof source, "runs:/%s/model", run_id);
    cairn_model_version_t *v = NULL;
    CHECK(cairn_registry_create_version(c, "churn", source, "xgboost", &v, &err) == 0,
          "version: %s", err.msg);
    CHECK(cairn_model_version_number(v) == 1, "version %lld",
          (long long)cairn_model_version_number(v));
    CHECK(!strncmp(cairn_model_version_get(v, "content_hash"), "sha256:", 7),
          "content_hash '%s'", cairn_model_version_get(v, "content_hash"));
    CHECK(!strcmp(cairn_model_version_get(v, "run_id"), run_id), "run_id '%s'",
          cairn_model_version_get(v, "run_id"));
    CHECK(!strcmp(cairn_model_version_get(v, "nope"), ""), "an unknown key is \"\"");
    cairn_model_version_free(&v);
    cairn_model_version_free(&v); /* safe twice */
    CHECK(cairn_registry_create_version(c, "churn", "/models/2", NULL, &v, &err) == 0 &&
              cairn_model_version_number(v) == 2,
          "second: %s", err.msg);
    cairn_model_version_free(&v);
    CHECK(cairn_registry_set_alias(c, "churn", "champion", 1, &err) == 0, "alias: %s",
          err.msg);
    CHECK(cairn_registry_get(c, "churn@champion", &v, &err) == 0 &&
              cairn_model_version_number(v) == 1 &&
              !strcmp(cairn_model_version_get(v, "flavor"), "xgboost"),
          "by alias: %s", err.msg);
    cairn_model_version_free(&v);
    CHECK(cairn_registry_get(c, "churn:2", &v, &err) == 0 &&
              !strcmp(cairn_model_version_get(v, "source"), "/models/2"),
          "by number: %s", err.msg);
    cairn_model_version_free(&v);
    CHECK(cairn_registry_get(c, "churn@nobody", &v, &err) != 0 && err.st == 404 && !v,
          "an unknown alias is 404, not %d", err.st);
    CHECK(cairn_registry_get(c, "churn", &v, &err) != 0 && err.st == 400,
          "a reference without @ or : is 400, not %d", err.st);
    CHECK(cairn_registry_get(NULL, "churn:1", &v, &err) != 0 && err.st == 400,
          "a NULL client is 400");
    CHECK(cairn_registry_create_version(c, "churn", NULL, NULL, &v, &err) != 0 &&
              err.st == 400,
          "a NULL source is 400");
    CHECK(cairn_registry_delete_model(c, "churn", &err) == 0, "delete: %s", err.msg);
    CHECK(cairn_registry_get(c, "churn:1", &v, &err) != 0 && err.st == 404,
          "a deleted model is 404, not %d", err.st);
    s_environments(c);
    s_files(c, run_id);
    cairn_client_destroy(&c);
    harness_cleanup(&k);
    return harness_summary();
}
