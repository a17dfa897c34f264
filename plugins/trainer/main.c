/* cairn-train — the `type: train` job (docs/TRAINER.md).
 *
 *     cairn-train [--out DIR] [--format json|ubj] SPECFILE
 *
 * SPECFILE is the whole job spec, as msgpack (the map the jobs plugin was
 * given) or YAML. The trainer keys are read (config.h), the CSV loaded
 * (a data: reference resolved through the registry first), the model
 * trained (trainer.h) and its folder written into DIR (default
 * ./outputs/model). Inside a job ($CAIRN_RUN_ID set; $CAIRN_ENDPOINT,
 * $CAIRN_TOKEN and $CAIRN_WORKSPACE as the client reads them) the params
 * are logged once, each round's metrics as one log_batch, the folder
 * uploaded under the run's `model/`, and, with register_model, a model
 * version made from runs:/RUN_ID/model. Exit 0, or 1 with the error's
 * sentence on stderr (the job's log); 2 for a bad command line. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <msgpack.h>

#include "cairn/client.h"
#include "cairn/msg.h"
#include "cairn/registry.h"
#include "cairn/tracking.h"
#include "card.h"
#include "config.h"
#include "table.h"
#include "trainer.h"
#include "yamlmp.h"

#define SPEC_MAX (4u << 20)

typedef struct job {
    const char *out_dir;
    bool ubj;
    trainer_config_t cfg;
    char *data_path; /* the CSV file to read */
    char *canonical; /* data:NAME:V when data was a reference */
    const char *run_id;
    cairn_client_t *client;
    cairn_batch_t *batch;
} job_t;

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-train [--out DIR] [--format json|ubj] SPECFILE\n"
            "  SPECFILE: a job spec (type: train), msgpack or YAML\n"
            "  --out DIR: where the model folder goes (default ./outputs/model)\n");
}

/* The file's bytes (at most SPEC_MAX) as one msgpack object in u. */
static int s_read_spec(const char *path, msgpack_sbuffer *sb, msgpack_unpacked *u,
                       cairn_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_LOCAL_FILE,
                             "cannot open the spec %s: %s", path, strerror(errno));
    char *buf = malloc(SPEC_MAX + 1);
    size_t n = buf ? fread(buf, 1, SPEC_MAX + 1, f) : 0;
    fclose(f);
    if (!buf) return cairn_err_oom(err, "for the spec");
    int rc = 0;
    unsigned char b0 = n ? (unsigned char)buf[0] : 0;
    if (n > SPEC_MAX) {
        rc = cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                           "the spec %s is larger than %u bytes", path, SPEC_MAX);
    } else if ((b0 & 0xf0) == 0x80 || b0 == 0xde || b0 == 0xdf) { /* a msgpack map */
        msgpack_sbuffer_write(sb, buf, n);
    } else {
        rc = cairn_yaml_to_msgpack(buf, n, sb, err);
    }
    free(buf);
    if (rc != 0) return -1;
    /* Its shape first: a few bytes declaring a huge map must not make
     * msgpack-c allocate gigabytes. */
    if (cairn_msgpack_check(sb->data, sb->size, err) != 0) return -1;
    size_t off = 0;
    if (msgpack_unpack_next(u, sb->data, sb->size, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != sb->size)
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "the spec %s is not one msgpack map", path);
    return 0;
}

/* The one .csv file of a resolved data asset's folder (or the file). */
static int s_csv_in(const char *path, char **out, cairn_err_t *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_FILE,
                             "data: the resolved path %s cannot be read: %s", path,
                             strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return (*out = strdup(path)) ? 0 : cairn_err_oom(err, "for the data's path");
    DIR *d = opendir(path);
    if (!d)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_FILE,
                             "data: cannot list %s: %s", path, strerror(errno));
    int found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".csv") != 0) continue;
        if (found++ == 0 && asprintf(out, "%s/%s", path, e->d_name) < 0) *out = NULL;
    }
    closedir(d);
    if (found == 1 && *out) return 0;
    free(*out);
    *out = NULL;
    return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                         "data: the asset's folder %s holds %d .csv files; the trainer "
                         "reads an asset of exactly one",
                         path, found);
}

static int s_client(job_t *j, cairn_err_t *err)
{
    if (j->client) return 0;
    j->client = cairn_client_new(NULL, NULL, err);
    return j->client ? 0 : -1;
}

static int s_resolve_data(job_t *j, cairn_err_t *err)
{
    if (strncmp(j->cfg.data, "data:", 5) != 0)
        return (j->data_path = strdup(j->cfg.data)) ? 0 : cairn_err_oom(err, "data");
    char *path = NULL;
    if (s_client(j, err) != 0 ||
        cairn_registry_resolve(j->client, j->cfg.data, &j->canonical, NULL, &path,
                               err) != 0)
        return -1;
    if (!path) {
        free(path);
        return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                             "data: %s has no files Cairn stores", j->cfg.data);
    }
    int rc = s_csv_in(path, &j->data_path, err);
    free(path);
    return rc;
}

/* ---- tracking ------------------------------------------------------------------ */

static int s_log_params(job_t *j, cairn_err_t *err)
{
    cairn_batch_t *b = j->batch;
    const trainer_config_t *c = &j->cfg;
    char v[64];
    cairn_batch_param(b, "data", c->data);
    cairn_batch_param(b, "target", c->target);
    cairn_batch_param(b, "task", trainer_task_name(c->task));
    cairn_batch_param(b, "algorithm", trainer_algo_name(c->algo));
    snprintf(v, sizeof v, "%llu", (unsigned long long)c->seed);
    cairn_batch_param(b, "seed", v);
    if (c->folds) {
        snprintf(v, sizeof v, "%d", c->folds);
        cairn_batch_param(b, "validation.folds", v);
    } else {
        snprintf(v, sizeof v, "%g", c->split);
        cairn_batch_param(b, "validation.split", v);
    }
    for (size_t i = 0; i < c->n_hp; i++)
        cairn_batch_param(b, c->hp[i].name, c->hp[i].value);
    if (cairn_batch_send(j->client, b, err) != 0) return -1;
    if (j->canonical &&
        cairn_registry_log_input(j->client, j->run_id, j->canonical, err) != 0)
        return -1;
    return 0;
}

/* Each round: its metrics as one log_batch, step = round. */
static int s_on_round(void *arg, int round, const trainer_metric_t *m, size_t n,
                      cairn_err_t *err)
{
    job_t *j = arg;
    if (!j->batch) return 0;
    for (size_t i = 0; i < n; i++)
        cairn_batch_metric(j->batch, m[i].name, m[i].value, round, 0);
    return cairn_batch_send(j->client, j->batch, err);
}

/* Upload every file of the folder under the run's model/. */
static int s_upload(job_t *j, cairn_err_t *err)
{
    DIR *d = opendir(j->out_dir);
    if (!d)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_LOCAL_FILE,
                             "cannot list %s: %s", j->out_dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char *local = NULL, *remote = NULL;
        if (asprintf(&local, "%s/%s", j->out_dir, e->d_name) < 0) local = NULL;
        if (asprintf(&remote, "model/%s", e->d_name) < 0) remote = NULL;
        if (!local || !remote)
            rc = cairn_err_oom(err, "for a path");
        else
            rc = cairn_log_artifact(j->client, j->run_id, local, remote, NULL, NULL,
                                    err);
        free(local);
        free(remote);
    }
    closedir(d);
    return rc;
}

static int s_register(job_t *j, const trainer_result_t *r, cairn_err_t *err)
{
    const char *name = j->cfg.register_model;
    cairn_err_t e2 = {0};
    if (cairn_registry_create_model(j->client, name, NULL, &e2) != 0 &&
        e2.st != CAIRN_ST_CONFLICT) {
        *err = e2;
        return -1;
    }
    char source[128];
    snprintf(source, sizeof source, "runs:/%s/model", j->run_id);
    bool xgb = strncmp(trainer_result_library(r), "xgboost", 7) == 0;
    cairn_model_version_t *v = NULL;
    /* An XGBoost folder's MLmodel names its flavor and signature. */
    if (cairn_registry_create_version(j->client, name, source, xgb ? NULL : "custom",
                                      &v, err) != 0)
        return -1;
    printf("cairn-train: registered %s version %lld\n", name,
           (long long)cairn_model_version_number(v));
    cairn_model_version_free(&v);
    return 0;
}

/* ---- the job -----------------------------------------------------------------------
 */

static int s_run(job_t *j, const char *spec_path, cairn_err_t *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = s_read_spec(spec_path, &sb, &u, err);
    if (rc == 0) rc = trainer_config_read(&u.data, &j->cfg, err);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) return -1;
    if (j->cfg.register_model[0] && !j->run_id)
        return cairn_err_set(
            err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
            "register_model: needs a run (CAIRN_RUN_ID, set inside a job)");
    if (s_resolve_data(j, err) != 0) return -1;
    if (j->run_id) {
        if (s_client(j, err) != 0) return -1;
        if (!(j->batch = cairn_batch_new(j->run_id)))
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "CAIRN_RUN_ID is not a run id");
        if (s_log_params(j, err) != 0) return -1;
    }
    trainer_table_t *t = trainer_table_load(
        j->data_path,
        &(trainer_table_opts_t){.target = j->cfg.target,
                                .task = j->cfg.task,
                                .categorical = j->cfg.enable_categorical},
        err);
    if (!t) return -1;
    trainer_result_t *r = NULL;
    rc = trainer_train(t, &j->cfg, s_on_round, j, &r, err);
    if (rc == 0) rc = trainer_card_write_dir(j->out_dir, t, &j->cfg, r, j->ubj, err);
    if (rc == 0)
        printf(
            "cairn-train: validation %s %.9g after %d rounds (%zu rows, %zu "
            "features); model in %s\n",
            trainer_result_metric_name(r), trainer_result_metric(r),
            trainer_result_rounds(r), trainer_table_rows(t), trainer_table_features(t),
            j->out_dir);
    if (rc == 0 && j->run_id) rc = s_upload(j, err);
    if (rc == 0 && j->cfg.register_model[0]) rc = s_register(j, r, err);
    trainer_result_destroy(&r);
    trainer_table_destroy(&t);
    return rc;
}

int main(int argc, char **argv)
{
    job_t j = {.out_dir = "outputs/model"};
    const char *spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            j.out_dir = argv[++i];
        } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "json") != 0 && strcmp(f, "ubj") != 0) {
                s_usage(stderr);
                return 2;
            }
            j.ubj = strcmp(f, "ubj") == 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (!spec && argv[i][0] != '-') {
            spec = argv[i];
        } else {
            s_usage(stderr);
            return 2;
        }
    }
    if (!spec) {
        s_usage(stderr);
        return 2;
    }
    const char *run = getenv("CAIRN_RUN_ID");
    j.run_id = run && *run ? run : NULL;
    cairn_err_t err = {0};
    int rc = s_run(&j, spec, &err);
    if (rc != 0) fprintf(stderr, "cairn-train: %s\n", err.msg);
    cairn_batch_destroy(&j.batch);
    cairn_client_destroy(&j.client);
    free(j.data_path);
    free(j.canonical);
    return rc == 0 ? 0 : 1;
}
