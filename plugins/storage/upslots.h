/* plugins/storage/upslots.h — how many unfinished uploads the artifacts
 * role may hold at once (artifacts.c: uploads_max), sized from the memory
 * this process may use and its open-file limit rather than a constant.
 *
 * An upload between two chunks holds an open temp file (a descriptor), a
 * hash state, its path, and up to one chunk of dirty page cache (cas.c
 * starts the writeback of each chunk and waits for the previous one's);
 * one being resumed also holds a rehash buffer and its deferred chunk. The
 * caller says what that costs (per_upload); the default limit is what a
 * quarter of the memory pays for, at most half of the open-file limit (a
 * process out of descriptors fails everything, its sockets too), and at
 * least UPSLOTS_MIN.
 *
 * The memory is the machine's (sysconf(_SC_PHYS_PAGES)) or, when lower,
 * the limit of this process's cgroup or of one of its ancestors (v2
 * memory.max, v1 memory.limit_in_bytes; "max" is no limit), as a container
 * sees it.
 */
#ifndef STORAGE_UPSLOTS_H
#define STORAGE_UPSLOTS_H

#include <stddef.h>
#include <stdint.h>

#define UPSLOTS_MIN 16

typedef struct upslots {
    uint64_t mem;      /* bytes this process may use */
    char mem_from[96]; /* "physical memory", or the cgroup file that set it */
    uint64_t nofile;   /* the soft open-file limit (UINT64_MAX: none) */
    size_t max;        /* the default uploads_max */
} upslots_t;

/* Measure this process and size the default for per_upload bytes each. */
void upslots_size(uint64_t per_upload, upslots_t *out);

/* The arithmetic alone (unit tests): a quarter of mem over per_upload, at
 * most nofile / 2, at least UPSLOTS_MIN. */
size_t upslots_default(uint64_t mem, uint64_t nofile, uint64_t per_upload);

/* The lowest memory limit of the cgroup named in the file proc_cgroup (the
 * format of /proc/self/cgroup) and of its ancestors, under the cgroup
 * mount sys_root (/sys/fs/cgroup): v2 (a line "0::PATH") reads
 * sys_root/PATH/memory.max, v1 (a line "N:...memory...:PATH")
 * sys_root/memory/PATH/memory.limit_in_bytes, each up to the root.
 * UINT64_MAX when none is set or readable; from (cap bytes) names the file
 * that set it. */
uint64_t upslots_cgroup_limit(const char *proc_cgroup, const char *sys_root, char *from,
                              size_t cap);

#endif
