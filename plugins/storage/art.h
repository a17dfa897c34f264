/* The storage plugin's `artifacts` role, private parts shared by
 * artifacts.c (the index, downloads, listing, recovery) and uploads.c
 * (put_artifact, abort_upload, resuming). Not installed. */
#ifndef CAIRN_STORAGE_ART_H
#define CAIRN_STORAGE_ART_H

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#include "cas.h"
#include "storage.h"

#define ART_CHUNK_MAX (8u << 20)
#define ART_PATH_MAX 1024
/* What an unfinished upload may hold in memory (upslots.h): one chunk of
 * dirty page cache or (O_DIRECT) its staging buffer, and while it is
 * resumed a 1 MiB rehash buffer (cas.c, freed before the first write);
 * its hash state, path and record are small beside them. */
#define ART_UPLOAD_BYTES (ART_CHUNK_MAX + (1u << 20))
_Static_assert(CAS_STAGE_MAX <= ART_UPLOAD_BYTES, "ART_UPLOAD_BYTES");
#define ART_CURSORS 32
#define ART_REHASH_MAX (64u << 20)
#define ART_LIST_DEFAULT 10000
#define ART_LIST_MAX 50000
#define ART_RUN_ID_MAX 64
#define ART_VERIFIES_MAX 16
#define ART_VERIFY_BUF (1u << 20)
#define ART_VERIFY_SLICE (32u << 20) /* hashed per turn of the loop */

/* A sidecar (upmeta.h) holds any run_id and path a request may carry. */
_Static_assert(ART_PATH_MAX == UPMETA_PATH_MAX, "ART_PATH_MAX");
_Static_assert(ART_RUN_ID_MAX == UPMETA_RUN_ID_MAX, "ART_RUN_ID_MAX");

/* A blob, as the index names it: (alg, hash). */
typedef struct art_blob {
    cairn_chash_alg_t alg;
    char hex[CAS_HEX_LEN + 1];
} art_blob_t;

typedef struct upload {
    char id[33];
    char run_id[ART_RUN_ID_MAX + 1];
    int64_t rid;
    char *path;
    /* Whose slot it takes (uploads_per_principal): the principal and the
     * workspace of the request that opened (or resumed) it. */
    char *principal, *ws;
    cas_writer_t *w;
    uint64_t last_ms;
    struct storage *s;
    /* Being resumed (s_resume): the rehash runs, then this chunk. */
    bool resuming, deferred, done;
    cairn_req_t *req;
    const void *data; /* in req's body: valid until its reply */
    size_t dlen;
    uint64_t timer;
    struct upload *next;
} upload_t;

/* A running hash of a sequential download (of the blob (st.alg, hash)). */
typedef struct cursor {
    cairn_chash_t st;
    char hash[CAS_HEX_LEN + 1];
    uint64_t next; /* the offset the next read must start at */
    uint64_t last_ms;
    bool used;
} cursor_t;

/* A verification in progress (verify_artifact). */
typedef struct verify_job {
    cairn_chash_t st;
    storage_t *s;
    cairn_req_t *req; /* deferred */
    int fd;
    uint64_t off, size;
    unsigned char *buf;
    char hash[CAS_HEX_LEN + 1];
    char path[ART_PATH_MAX + 1];
    struct verify_job *next;
} verify_job_t;

typedef struct sniff_job sniff_job_t; /* pinview.c */

struct artifacts {
    cas_t *cas;
    verify_job_t *verifies;
    size_t nverifies;
    sniff_job_t *sniffs; /* sniff_pinned's, deferred */
    size_t nsniffs;
    db_t *db; /* borrowed from the storage_t: its statements (db.h) */
    upload_t *uploads;
    size_t nuploads;
    size_t uploads_max;   /* unfinished uploads held at once, in all */
    size_t per_principal; /* ... per principal and workspace */
    cursor_t *cursors;    /* ART_CURSORS of them, 64-byte aligned */
    uint64_t idle_ms;
    uint64_t timer;
    bool power;      /* durability=power: a chunk is fdatasync'ed before its 200 */
    struct mpu *mpu; /* multipart uploads (multipart.c) */
};

void art_bind_str(sqlite3_stmt *st, int i, const char *p, size_t n);
int art_field_path(const msgpack_object *b, const char *field, bool allow_root,
                   char out[ART_PATH_MAX + 1], size_t *out_len, cairn_err_t *err);
int art_run_live(artifacts_t *a, int64_t rid, const char *run_id, const char *then,
                 cairn_err_t *err);
int art_check_shape(artifacts_t *a, int64_t rid, const char *path, cairn_err_t *err);
/* The algorithm in column i of st's row ("sha256", "blake2b"); false when
 * it names neither. */
bool art_col_alg(sqlite3_stmt *st, int i, cairn_chash_alg_t *alg);
int art_index_put(storage_t *s, int64_t rid, const char *run_id, const char *path,
                  const art_blob_t *blob, uint64_t size, cairn_err_t *err);
/* Free blob if nothing names it any more (no index row, no pin): 1 when
 * it went. */
uint64_t art_blob_unref(storage_t *s, const art_blob_t *blob);

/* Pack n bytes at off of blob (open as fd, size bytes in all) into the
 * reply begun in s as a bin, read straight into the reply buffer, and check
 * them against the blob's hash as get_artifact does (what names it in a
 * corrupt error). The caller closes fd. */
int art_pack_range(storage_t *s, const art_blob_t *blob, const char *what, int fd,
                   uint64_t size, uint64_t off, size_t n, cairn_err_t *err);

/* pins.c: the body's owner* (1 .. PIN_OWNER_MAX bytes) as pins store it,
 * "<ws>/<owner>" in key (*out); raw (may be NULL) gets the body's owner. */
#define PIN_OWNER_MAX 256
#define PIN_KEY_MAX (CAIRN_HDR_NAME_MAX + 1 + PIN_OWNER_MAX)
int art_pin_owner(cairn_req_t *req, char key[PIN_KEY_MAX + 1], cairn_str_t *out,
                  cairn_str_t *raw, cairn_err_t *err);

/* pinview.c: remove the view of owner in workspace ws, if any; drop the
 * sniffs in progress (fini: the runtime answers their requests). */
void art_view_drop(storage_t *s, const char *ws, cairn_str_t owner);
/* Remove what a crash left under views/: builds older than older_than_s
 * (.tmp-*) and views on their way out (*.drop-*); the count removed. */
int art_views_sweep(storage_t *s, uint64_t older_than_s);
void art_sniffs_drop(storage_t *s);

/* uploads.c */
void art_upload_drop(artifacts_t *a, upload_t *u, bool keep);

/* multipart.c: multipart uploads' state, made after the blob store is
 * open; fini is safe after a failed init. */
int art_mpu_init(storage_t *s, cairn_err_t *err);
void art_mpu_fini(storage_t *s);

#endif
