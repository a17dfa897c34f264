/* sdk/ignore.h — gitignore rules, compiled and matched.
 *
 * A job's code snapshot (snapshot.h) keeps what git would keep: each
 * ignore file (.gitignore, .cairnignore, .git/info/exclude) is compiled
 * into rules with the directory it was found in, and a path is asked of
 * the stack of files from the root down, with git's semantics (gitignore(5)
 * and git's dir.c / wildmatch.c, matched here by a matcher of our own):
 *
 *   - blank lines and lines starting with `#` are skipped; `\#` and `\!`
 *     start a pattern with a literal `#` or `!`; trailing spaces are
 *     trimmed unless escaped (`\ `); a final CR, a UTF-8 BOM and anything
 *     after a NUL byte on a line are dropped;
 *   - `!` re-includes; within a file the last matching rule decides, and a
 *     deeper file decides before a shallower one;
 *   - a trailing `/` matches directories only;
 *   - a pattern with no `/` (but a trailing one) matches a name at any depth
 *     below its file; any other is anchored to its file's directory (a
 *     leading `/` only says so);
 *   - `*` and `?` never match `/`; `[...]` classes with `!`/`^`, ranges,
 *     `\` escapes and `[:alpha:]`-style names (ASCII, as git); `**` as a
 *     whole segment (`**`/, /`**`, /`**`/) matches any number of segments;
 *   - a path under an excluded directory stays excluded, whatever a later
 *     `!` rule says (ignore_path_ignored; a walker that never enters an
 *     excluded directory gets the same from ignore_stack_verdict).
 *
 * Pure: no I/O (fuzz_ignore feeds it). Paths are relative to the snapshot
 * root, `/`-separated, with no leading, trailing or doubled `/`. */
#ifndef CAIRN_IGNORE_H
#define CAIRN_IGNORE_H

#include <stdbool.h>
#include <stddef.h>

#include "cairn/err.h"

#define IGNORE_FILE_MAX (1024 * 1024) /* bytes of one ignore file (413) */
#define IGNORE_LINE_MAX 4096          /* bytes of one line (400) */
#define IGNORE_RULES_MAX 10000        /* rules of one file (413) */

typedef struct ignore_rules ignore_rules_t;

typedef enum {
    IGNORE_NONE = 0,    /* no rule matched the path */
    IGNORE_EXCLUDE = 1, /* the deciding rule excludes it */
    IGNORE_INCLUDE = 2, /* the deciding rule is a `!` rule */
} ignore_verdict_t;

/* Compile the len bytes of text, the ignore file `name` (for sentences,
 * e.g. "a/.gitignore") found in directory dir ("" for the root). NULL with
 * a 413 (file or rule count over the limit) or a 400 (a line too long). */
ignore_rules_t *ignore_compile(const char *dir, const char *name, const char *text,
                               size_t len, cairn_err_t *err);
void ignore_destroy(ignore_rules_t **self_p);

/* Rules kept (blank lines and comments are not rules). */
size_t ignore_count(const ignore_rules_t *r);
/* The directory the file was found in ("" for the root). */
const char *ignore_dir(const ignore_rules_t *r);

/* What one file's rules say of path (under its directory, or NONE). */
ignore_verdict_t ignore_rules_verdict(const ignore_rules_t *r, const char *path,
                                      bool is_dir);

/* What the stack says of path itself: stack[0..n-1], root first (files of
 * one directory in the order they apply: info/exclude, .gitignore,
 * .cairnignore); the last file that has a verdict decides. Directories
 * above path are not asked. */
ignore_verdict_t ignore_stack_verdict(const ignore_rules_t *const *stack, size_t n,
                                      const char *path, bool is_dir);

/* Whether path is ignored: excluded itself, or under a directory that is. */
bool ignore_path_ignored(const ignore_rules_t *const *stack, size_t n, const char *path,
                         bool is_dir);

#endif
