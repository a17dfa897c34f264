/* plugins/scorer/pool.h — a python deployment's worker processes.
 *
 * instance_count Python processes, each running the deployment's scoring
 * script (Azure ML's init()/run(raw_data) contract) through the driver
 * score_worker.py, each talking to the scorer over a Unix socket of its own
 * (the frames are described there). A supervisor thread starts the
 * workers (all at once, their init()s run side by side), and starts again
 * each one that dies (backing off 0.5 s to 8 s); a request takes an idle worker,
 * waiting for one up to its timeout, and gives it back when answered. A worker that
 * dies under a request is replaced and the request tried once more on another, so that
 * a killed worker loses no request; one that does not answer in time is
 * killed (its process group), the request answered 504.
 *
 * A pool whose every worker failed init() before any was ready has
 * failed: it says why (the traceback's end) and starts nothing more. */
#ifndef CAIRN_SCORER_POOL_H
#define CAIRN_SCORER_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#define POOL_INSTANCES_MAX 64
#define POOL_REPLY_MAX (64u << 20) /* an answer's bytes at most */

typedef struct py_pool py_pool_t;

typedef struct py_pool_opts {
    const char *python;    /* the interpreter */
    const char *driver;    /* score_worker.py */
    const char *code_dir;  /* the workers' working directory, on sys.path */
    const char *script;    /* the scoring script, relative to code_dir */
    const char *model_dir; /* AZUREML_MODEL_DIR */
    const char *log_path;  /* stdout and stderr, appended */
    int instances;         /* 1 to POOL_INSTANCES_MAX */
    int init_timeout_ms;   /* a worker's init() at most */
} py_pool_opts_t;

/* Start the pool (the workers start in the background). */
py_pool_t *py_pool_start(const py_pool_opts_t *o, cairn_err_t *err);
/* Stop every worker (each is asked, then killed after a second) and free
 * the pool. No request may be in flight. */
void py_pool_stop(py_pool_t **self_p);

/* 1 once every worker's first start has ended and one at least has run
 * init() (the deployment may take traffic); 0 before; -1 when the pool
 * failed (why, a sentence, into why). */
int py_pool_ready(py_pool_t *p, char *why, size_t why_len);

/* The answer to one request: *status (the HTTP status) and *out (JSON,
 * malloc'ed, *out_len bytes); or -1 with err (503: no worker free in
 * time, or the pool failed; 504: the script did not answer in time). */
int py_pool_score(py_pool_t *p, const char *content_type, const char *body, size_t len,
                  int timeout_ms, int *status, char **out, size_t *out_len,
                  cairn_err_t *err);

/* The workers' process ids (0: not running now), up to max; how many. */
int py_pool_pids(py_pool_t *p, int64_t *pids, int max);

#endif
