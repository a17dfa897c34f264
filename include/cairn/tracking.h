/* cairn/tracking.h — experiment tracking from C (the `tracking` service).
 *
 * Thin, synchronous wrappers over the tracking verbs (docs/TRACKING.md), and
 * a batch builder for fast metric logging:
 *
 *     cairn_batch_t *b = cairn_batch_new(run_id);
 *     for (int step = 0; step < 500; step++)
 *         for (int k = 0; k < 20; k++)
 *             cairn_batch_metric(b, keys[k], v[k][step], step, 0);
 *     if (cairn_batch_send(client, b, &err) != 0) ...   // one log_batch
 *     cairn_batch_destroy(&b);
 *
 * The builder packs each point straight into a reused buffer, in the shape
 * log_batch takes ({run_id, metrics: [{key, value, timestamp, step}],
 * params: [{key, value}], tags: [{key, value}]}): keys and values are
 * copied, nothing is allocated per point, and the buffer keeps its capacity
 * from one send to the next.
 *
 * Pipelining: cairn_batch_send_async sends without waiting and gives the
 * request id; collect replies with cairn_client_recv (any order; match
 * cairn_reply_id) and check cairn_reply_status (200: the whole batch is
 * committed). Keeping a window of W batches in flight:
 *
 *     if (cairn_batch_send_async(c, b, &id, &err) != 0) ...
 *     if (++inflight == W) {                       // wait for one reply
 *         cairn_reply_t *r;
 *         if (cairn_client_recv(c, 30000, &r, &err) != 0) ...
 *         if (cairn_reply_status(r) != 200) ... cairn_reply_error(r) ...
 *         cairn_reply_destroy(&r);
 *         inflight--;
 *     }
 *
 * Limits are the server's (docs/TRACKING.md) and are enforced here, so that
 * an oversized batch never leaves the process: at most
 * CAIRN_BATCH_MAX_POINTS metric points, CAIRN_BATCH_MAX_PARAMS params and
 * CAIRN_BATCH_MAX_TAGS tags per batch; keys of 1 to CAIRN_MAX_KEY bytes;
 * param values up to CAIRN_MAX_PARAM_VALUE bytes, tag values up to
 * CAIRN_MAX_TAG_VALUE; a body of at most CAIRN_BATCH_MAX_BYTES. An entry
 * that breaks a limit is refused: cairn_batch_metric/param/tag return -1,
 * the batch keeps the error (cairn_batch_error), and the next send refuses
 * the whole batch locally with that error (413 too_large for a count or
 * size, 400 bad_request for a key or value) and empties it, so nothing is
 * ever sent without the refused entry by accident. Check
 * cairn_batch_metrics(b) against CAIRN_BATCH_MAX_POINTS to send before a
 * batch fills.
 *
 * Strings returned through char ** are heap copies: free() them.
 * Every function returns 0, or -1 with err filled (err may be NULL). Like
 * its client, a batch is for one thread.
 */
#ifndef CAIRN_TRACKING_H
#define CAIRN_TRACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/client.h"
#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_TRACKING_SVC "tracking"

/* The server's limits (docs/TRACKING.md). */
#define CAIRN_BATCH_MAX_POINTS 100000
#define CAIRN_BATCH_MAX_PARAMS 10000
#define CAIRN_BATCH_MAX_TAGS 10000
#define CAIRN_BATCH_MAX_BYTES (64u << 20) /* the kernel's default frame limit */
#define CAIRN_MAX_KEY 250
#define CAIRN_MAX_PARAM_VALUE 6000
#define CAIRN_MAX_TAG_VALUE 8000
#define CAIRN_MAX_NAME 500 /* experiment and run names */
#define CAIRN_MAX_RUN_ID 64

/* ---- experiments and runs (synchronous) ------------------------------------------ */

/* create_experiment: *experiment_id receives the new id (409 conflict when
 * the name exists). */
CAIRN_EXPORT int cairn_create_experiment(cairn_client_t *client, const char *name,
                                         char **experiment_id, cairn_err_t *err);

/* The id of the experiment named name (get_experiment_by_name); when it does
 * not exist: 404, or, with create_if_missing, it is created (a concurrent
 * creator is tolerated: the name is looked up again after a 409). */
CAIRN_EXPORT int cairn_get_experiment_id(cairn_client_t *client, const char *name,
                                         bool create_if_missing, char **experiment_id,
                                         cairn_err_t *err);

/* create_run in experiment_id ("0" is Default). run_name NULL: the server
 * names it; parent_run_id NULL: a top-level run (else a nested one; 404 when
 * the parent does not exist). *run_id receives the new run's id. */
CAIRN_EXPORT int cairn_create_run(cairn_client_t *client, const char *experiment_id,
                                  const char *run_name, const char *parent_run_id,
                                  char **run_id, cairn_err_t *err);

/* The run a program logs to, as the Python SDK's start_run picks it. Inside
 * a job ($CAIRN_RUN_ID set) it is the job's run, which must exist; *attached
 * (when not NULL) becomes true: the job, not the program, ends that run.
 * Otherwise a new run in the experiment named experiment (NULL:
 * $CAIRN_EXPERIMENT_NAME, else "Default"; created when missing), named
 * run_name (NULL: the server names it); *attached becomes false and the
 * program ends it with cairn_end_run. *run_id receives its id. */
CAIRN_EXPORT int cairn_start_run(cairn_client_t *client, const char *experiment,
                                 const char *run_name, char **run_id, bool *attached,
                                 cairn_err_t *err);

/* update_run with status (NULL: "FINISHED"; else RUNNING, SCHEDULED,
 * FINISHED, FAILED or KILLED) and end_time now. */
CAIRN_EXPORT int cairn_end_run(cairn_client_t *client, const char *run_id,
                               const char *status, cairn_err_t *err);

/* ---- single entries (synchronous: one round trip each) --------------------------- */

/* One metric point. timestamp_ms: milliseconds since the epoch, 0 = now. */
CAIRN_EXPORT int cairn_log_metric(cairn_client_t *client, const char *run_id,
                                  const char *key, double value, int64_t step,
                                  int64_t timestamp_ms, cairn_err_t *err);
/* Params are write-once: the same value again is fine, another is 409. */
CAIRN_EXPORT int cairn_log_param(cairn_client_t *client, const char *run_id,
                                 const char *key, const char *value, cairn_err_t *err);
/* Tags overwrite. */
CAIRN_EXPORT int cairn_set_tag(cairn_client_t *client, const char *run_id,
                               const char *key, const char *value, cairn_err_t *err);

/* ---- the batch builder ----------------------------------------------------------- */

typedef struct cairn_batch cairn_batch_t;

/* A batch for run_id (copied; at most CAIRN_MAX_RUN_ID bytes). NULL when
 * run_id is NULL, empty or too long, or on out of memory. */
CAIRN_EXPORT cairn_batch_t *cairn_batch_new(const char *run_id);
CAIRN_EXPORT void cairn_batch_destroy(cairn_batch_t **self_p);

/* Point the batch at another run (what it holds goes there too). */
CAIRN_EXPORT int cairn_batch_set_run(cairn_batch_t *b, const char *run_id);

/* Add entries; 0, or -1 when refused (see the limits above). A metric's
 * timestamp_ms is milliseconds since the epoch, 0 = now; NaN and infinities
 * are fine. Keys and values are copied into the batch. */
CAIRN_EXPORT int cairn_batch_metric(cairn_batch_t *b, const char *key, double value,
                                    int64_t step, int64_t timestamp_ms);
CAIRN_EXPORT int cairn_batch_param(cairn_batch_t *b, const char *key,
                                   const char *value);
CAIRN_EXPORT int cairn_batch_tag(cairn_batch_t *b, const char *key, const char *value);

/* Entries waiting: metric points + params + tags; and metric points alone. */
CAIRN_EXPORT size_t cairn_batch_size(const cairn_batch_t *b);
CAIRN_EXPORT size_t cairn_batch_metrics(const cairn_batch_t *b);
/* The error that refused an entry since the batch was last emptied (NULL
 * when none). */
CAIRN_EXPORT const cairn_err_t *cairn_batch_error(const cairn_batch_t *b);
/* Drop what the batch holds (and its error); the buffer is kept. */
CAIRN_EXPORT void cairn_batch_clear(cairn_batch_t *b);

/* Send the batch as one log_batch and wait: 0 when it was committed (all of
 * it), else -1 (none of it: the server stores a batch in one transaction).
 * Either way the batch is then empty and reusable. An empty batch sends
 * nothing and succeeds. */
CAIRN_EXPORT int cairn_batch_send(cairn_client_t *client, cairn_batch_t *b,
                                  cairn_err_t *err);
/* Send without waiting; *id (may be NULL) receives the request id of the
 * reply to collect with cairn_client_recv. The batch is empty and reusable
 * on return (its bytes were handed to the socket). An empty batch sends
 * nothing: 0 with *id set to 0. A batch refused locally sends nothing
 * either: -1. */
CAIRN_EXPORT int cairn_batch_send_async(cairn_client_t *client, cairn_batch_t *b,
                                        uint64_t *id, cairn_err_t *err);

/* ---- artifacts (the `artifacts` service) ----------------------------------------- */

#define CAIRN_ARTIFACTS_SVC "artifacts"
#define CAIRN_ARTIFACT_CHUNK (4u << 20) /* bytes per put_artifact / get_artifact */
#define CAIRN_ARTIFACT_HASH_HEX 64      /* a content hash as lowercase hex */
#define CAIRN_SIZE_UNKNOWN UINT64_MAX   /* a progress total not known yet */

/* Codes of the errors the transfers find themselves (the server's errors
 * keep its own codes):
 *   CAIRN_ERR_LOCAL_FILE (400): the local file cannot be opened or read, is a
 *     directory, or a path names no file;
 *   CAIRN_ERR_LOCAL_IO (500): the local file cannot be created or written;
 *   CAIRN_ERR_BAD_REPLY (502): a reply lacks a field or does not follow on,
 *     or the server is too old to check an upload against (it hashes with
 *     BLAKE2b, not SHA-256: the sentence says so);
 *   CAIRN_ERR_CORRUPT (500): the bytes' hash (or size) is not the server's;
 *   CAIRN_ERR_CHANGED (409): the artifact changed during a download. */
#define CAIRN_ERR_LOCAL_FILE CAIRN_E_LOCAL_FILE /* older name */
#define CAIRN_ERR_LOCAL_IO CAIRN_E_LOCAL_IO     /* older name */
#define CAIRN_ERR_BAD_REPLY CAIRN_E_BAD_REPLY   /* older name */
#define CAIRN_ERR_CORRUPT CAIRN_E_CORRUPT       /* older name */
#define CAIRN_ERR_CHANGED CAIRN_E_CHANGED       /* older name */

/* Progress of a transfer: called after each chunk with the bytes moved so
 * far. total is the size when known, else CAIRN_SIZE_UNKNOWN (an upload
 * from a pipe); the last call of a transfer that succeeds has done ==
 * total. */
typedef void(cairn_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* What a transfer moved: the artifact's path (a heap copy: free() it), its
 * size and its content hash: SHA-256 for every upload; a download's is the
 * server's, BLAKE2b-256 for an artifact stored before SHA-256. */
typedef struct cairn_artifact_info {
    char *path;
    uint64_t size;
    char hash[CAIRN_ARTIFACT_HASH_HEX + 1];
} cairn_artifact_info_t;

/* Upload local_path as artifact_path of run_id (NULL: the file's name), in
 * CAIRN_ARTIFACT_CHUNK-sized put_artifact requests, up to 4 in flight after
 * the first (memory: 6 chunks whatever the file's size). The SHA-256
 * computed while reading must match the hash and size the server replies
 * with: else -1 (CAIRN_ERR_CORRUPT; CAIRN_ERR_BAD_REPLY when the server is
 * too old to name a SHA-256). progress may be NULL. A restart of the
 * artifacts service mid-upload is ridden out: a chunk answered 503, or (after the
 * first) not answered in time, is sent again with backoff for up to 60 s
 * ($CAIRN_ARTIFACT_RETRY_S, in seconds, when set to a positive number),
 * and the server resumes the upload (docs/TRACKING.md); the call blocks
 * meanwhile and fails with a sentence if the service does not come back. A
 * first chunk refused 429 (no upload slot free) is waited for the same way;
 * an upload that fails for good otherwise is aborted on the server
 * (abort_upload), best effort. */
CAIRN_EXPORT int cairn_log_artifact(cairn_client_t *client, const char *run_id,
                                    const char *local_path, const char *artifact_path,
                                    cairn_progress_fn *progress, void *arg,
                                    cairn_err_t *err);
/* The same; *info (may be NULL) receives what was stored (free info->path). */
CAIRN_EXPORT int cairn_log_artifact_ex(cairn_client_t *client, const char *run_id,
                                       const char *local_path,
                                       const char *artifact_path,
                                       cairn_progress_fn *progress, void *arg,
                                       cairn_artifact_info_t *info, cairn_err_t *err);
/* The same from an open descriptor, read to its end (a pipe included);
 * artifact_path is required. */
CAIRN_EXPORT int cairn_log_artifact_fd(cairn_client_t *client, const char *run_id,
                                       int fd, const char *artifact_path,
                                       cairn_progress_fn *progress, void *arg,
                                       cairn_artifact_info_t *info, cairn_err_t *err);

/* Download artifact_path of run_id into local_path, CAIRN_ARTIFACT_CHUNK
 * bytes a get_artifact, up to 4 in flight after the first. The bytes go to a temporary
 * file beside local_path which, when their size and hash are the server's (SHA-256,
 * or BLAKE2b-256 for an artifact stored before it: the first reply says), is
 * fsynced and renamed into place (with the mode a new file gets); on any failure
 * nothing is left behind and local_path is untouched. A restart of the
 * artifacts service mid-download is ridden out as an upload's is: a chunk
 * answered 503, or (after the first) not answered in time, is asked for
 * again, the same offset, with backoff for up to 60 s
 * ($CAIRN_ARTIFACT_RETRY_S); an artifact that changed meanwhile fails
 * (CAIRN_ERR_CHANGED). */
CAIRN_EXPORT int cairn_download_artifact(cairn_client_t *client, const char *run_id,
                                         const char *artifact_path,
                                         const char *local_path,
                                         cairn_progress_fn *progress, void *arg,
                                         cairn_err_t *err);
CAIRN_EXPORT int cairn_download_artifact_ex(cairn_client_t *client, const char *run_id,
                                            const char *artifact_path,
                                            const char *local_path,
                                            cairn_progress_fn *progress, void *arg,
                                            cairn_artifact_info_t *info,
                                            cairn_err_t *err);
/* The same into an open descriptor (stdout, a pipe): the bytes are written
 * as they arrive, so on a failure (-1) some may already have been written. */
CAIRN_EXPORT int cairn_download_artifact_fd(cairn_client_t *client, const char *run_id,
                                            const char *artifact_path, int fd,
                                            cairn_progress_fn *progress, void *arg,
                                            cairn_artifact_info_t *info,
                                            cairn_err_t *err);

#ifdef __cplusplus
}
#endif
#endif
