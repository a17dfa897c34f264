/* plugins/compute/spec.h — a command job's spec (Azure ML's command job
 * YAML, ../docs/JOBS.md), read and checked before anything is started.
 *
 * The spec comes as YAML text or as the same map (submit_job's `spec`);
 * either way it is one msgpack map here. Every refusal is a 400 whose
 * sentence starts with the field's path ("resources.gpus: must be an
 * integer >= 0"), so that a person can find the line. Keys this Cairn does
 * not run yet (code, inputs that are files, outputs, environment, secrets,
 * distribution) are refused by name rather than ignored: a job
 * that silently ran without its inputs would be worse than none.
 *
 * Pure: no I/O, no plugin state (fuzz_jobspec feeds it). */
#ifndef CAIRN_COMPUTE_SPEC_H
#define CAIRN_COMPUTE_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cairn/err.h"
#include "cairn/msg.h"
#include "config.h" /* the trainer's keys (plugins/trainer) */

#define JOB_NAME_MAX 64
#define JOB_TEXT_MAX 256         /* display_name, experiment_name, a tag */
#define JOB_DESCRIPTION_MAX 4096 /* description */
#define JOB_COMMAND_MAX 65536    /* the command, before and after ${{...}} */
#define JOB_MAP_MAX 256          /* tags, environment_variables, inputs */
#define JOB_OUTPUTS_MAX 64
#define JOB_DATA_REFS_MAX 17 /* data: inputs (16) and the environment */
#define JOB_SECRETS_MAX 64
#define JOB_SECRET_NAME_MAX 256
#define JOB_PATH_MAX 4096 /* an input's path */
#define JOB_ENV_VALUE_MAX 32768
#define JOB_TIMEOUT_MAX (30 * 24 * 3600) /* limits.timeout, seconds */
#define JOB_PRIORITY_MAX 1000            /* priority: -1000 to 1000 */
#define JOB_RETRIES_MAX 10
#define JOB_MPI_RANKS_MAX 256 /* distribution.process_count_per_instance */

/* The checked spec: slices borrowed from the map it was read from. */
typedef struct job_spec {
    cairn_str_t name; /* empty: the plugin makes one */
    cairn_str_t display_name, experiment_name, description, compute;
    const msgpack_object *tags;    /* a map of str to str, or NULL */
    const msgpack_object *env;     /* environment_variables, or NULL */
    const msgpack_object *inputs;  /* inputs (literals and paths), or NULL */
    const msgpack_object *outputs; /* outputs, or NULL */
    cairn_str_t environment;       /* env:NAME:VERSION (or @ALIAS); empty: none */
    cairn_str_t code;              /* a folder to snapshot; empty: none */
    bool train;                    /* type: train (the built-in trainer) */
    const msgpack_object *map;     /* the whole spec, as read */
    const msgpack_object *secrets; /* [NAME] or {VAR: NAME}, or NULL */
    char *command;                 /* after ${{inputs.x}}: a heap string */
    uint64_t timeout_s;            /* 0: none */
    int64_t priority;              /* higher first; FIFO within one */
    double cpus;                   /* 0: not asked */
    uint64_t memory;               /* bytes; 0: not asked */
    uint64_t gpus;
    uint64_t retries;   /* a failed job runs again up to this many times */
    uint64_t mpi_ranks; /* distribution: mpi: the processes; 0: not MPI */
} job_spec_t;

/* Read spec (a map) into out; 0, or -1 with a 400 naming the field. On
 * success out->command is the caller's (job_spec_free). outputs_dir: where
 * the job's outputs are (${{outputs.y}} becomes outputs_dir/y); NULL
 * before the job has a directory (the names are checked, a stand-in
 * used). */
int job_spec_read(const msgpack_object *spec, const char *outputs_dir, job_spec_t *out,
                  cairn_err_t *err);

/* An input given as a file or a folder: {type: uri_file | uri_folder,
 * path, mode}. Whether v is one; its path and whether it must be a folder
 * (uri_folder, the default). */
bool job_input_path(const msgpack_object *v, cairn_str_t *path, bool *folder);

/* Secret i of s->secrets (i < its size): the variable it is set as, and
 * the secret's name. */
void job_secret_at(const job_spec_t *s, uint32_t i, cairn_str_t *var,
                   cairn_str_t *name);

/* An output's register_as: "model:NAME" or "data:NAME"; false when it has
 * none. kind is "model" or "data", name the rest. */
bool job_output_register(const msgpack_object *v, cairn_str_t *kind, cairn_str_t *name);
void job_spec_free(job_spec_t *s);

/* Whether name is a job name: 1 to JOB_NAME_MAX of [A-Za-z0-9_-], starting
 * with a letter or digit (it names a directory). */
bool job_name_ok(const char *name, size_t len);

#endif
