/* sdk/snapshot.h — a code snapshot (a job's, a deployment's): a local folder
 * copied and hashed as git would see it (docs/JOBS.md, "Code snapshots").
 *
 * snapshot_take walks src_dir without following any symlink, keeps what
 * the ignore files say to keep (ignore.h: `.gitignore` and `.cairnignore`
 * at every level, `.cairnignore` applying after the `.gitignore` beside
 * it, and the repository's `info/exclude` below both; `.git` is always
 * left out), copies each kept file into dest_dir under the same relative
 * path, hashing it on the way, and names the whole by the SHA-256 of a
 * canonical manifest:
 *
 *     cairn-snapshot 1\n
 *     <mode> <sha256 hex> <path>\n      one line per file, sorted by path bytewise
 *
 * mode is 0644, 0755 (any execute bit) or `link`; a link's sha256 is that
 * of its target's text, and a path's bytes below 0x20, 0x7f and `\` are
 * written `\n`, `\t`, `\\`, `\xHH`. Neither mtimes nor owners nor the walk
 * order nor where the folder lives change the hash.
 *
 * Symlinks are kept as links (their target recorded, recreated in dest,
 * never followed: a link out of the tree copies nothing from there).
 * Other special files (fifos, sockets, devices) are left out, as git
 * leaves them. Empty directories are not part of a snapshot. */
#ifndef CAIRN_SNAPSHOT_H
#define CAIRN_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#define SNAPSHOT_MAX_FILES 100000
#define SNAPSHOT_MAX_BYTES (2ULL << 30) /* 2 GiB */
#define SNAPSHOT_MAX_PATH 1024          /* bytes of a relative path */
#define SNAPSHOT_MAX_DEPTH 64           /* directories deep */
#define SNAPSHOT_GIT_TIMEOUT_MS 10000
#define SNAPSHOT_COMMIT_MAX 65 /* a SHA-1 or SHA-256 commit id, and its NUL */

/* 0 in a field: its default above. */
typedef struct snapshot_limits {
    uint64_t max_files, max_bytes;
    size_t max_path;
} snapshot_limits_t;

typedef struct snapshot snapshot_t;

/* One kept file, in manifest order. */
typedef struct snapshot_file {
    const char *path;   /* relative, `/`-separated */
    uint64_t size;      /* bytes (a link: its target's length) */
    const char *sha256; /* 64 hex digits */
    const char *mode;   /* "0644", "0755" or "link" */
    const char *target; /* a link's target; NULL for a file */
} snapshot_file_t;

/* Copy and hash src_dir into dest_dir (made 0700 if missing; it must be
 * empty). limits may be NULL. 413 with a sentence naming the limit and the
 * file; 400 when src_dir or a file in it cannot be read; 409 when dest_dir
 * is not empty; 500 when dest_dir cannot be written. On failure dest_dir
 * may hold part of the copy: the caller, who chose it, removes it. */
int snapshot_take(const char *src_dir, const char *dest_dir,
                  const snapshot_limits_t *limits, snapshot_t **out, cairn_err_t *err);
void snapshot_destroy(snapshot_t **self_p);

const char *snapshot_hash(const snapshot_t *s); /* 64 hex digits */
size_t snapshot_count(const snapshot_t *s);
uint64_t snapshot_total_bytes(const snapshot_t *s);
/* The i-th file (i < snapshot_count), borrowed from s. */
const snapshot_file_t *snapshot_file(const snapshot_t *s, size_t i);
/* The manifest's bytes (its SHA-256 is the hash), borrowed from s. */
const char *snapshot_manifest(const snapshot_t *s, size_t *len);
/* Write the manifest to path (0600, written beside and renamed). */
int snapshot_write_manifest(const snapshot_t *s, const char *path, cairn_err_t *err);

/* Remove path and everything under it, never following a link: 0 (also
 * when nothing was there), or -1 with errno. */
int snapshot_rm_tree(const char *path);

/* Whether src_dir is inside a git work tree and, if so, its HEAD commit
 * ("" before the first commit) and whether anything under src_dir differs
 * from it (changed, staged or untracked; ignored files do not count).
 * Runs /usr/bin/git (no shell) with SNAPSHOT_GIT_TIMEOUT_MS for it all.
 * No git, or not a repository (a repository git refuses to read, such as
 * another user's outside safe.directory, counts as none): in_repo false
 * and 0. -1 with a 504 when git did not answer in time, a 500 when it
 * failed in a repository. */
int snapshot_git(const char *src_dir, char commit[SNAPSHOT_COMMIT_MAX], bool *dirty,
                 bool *in_repo, cairn_err_t *err);

#endif
