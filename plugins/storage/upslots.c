/* The default number of upload slots (see upslots.h). */
#define _GNU_SOURCE
#include "upslots.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

size_t upslots_default(uint64_t mem, uint64_t nofile, uint64_t per_upload)
{
    uint64_t n = per_upload ? mem / 4 / per_upload : 0;
    if (n > nofile / 2) n = nofile / 2;
    if (n < UPSLOTS_MIN) n = UPSLOTS_MIN;
    if (n > SIZE_MAX / 2) n = SIZE_MAX / 2;
    return (size_t)n;
}

/* The limit in one file: a number of bytes, or "max" (none). */
static bool s_read_limit(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "re");
    if (!f) return false;
    char buf[64];
    bool ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok) return false;
    if (strncmp(buf, "max", 3) == 0) {
        *out = UINT64_MAX;
        return true;
    }
    char *end = NULL;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || v == 0) return false;
    *out = (uint64_t)v;
    return true;
}

/* The lowest limit in dir/PATH/file and each ancestor up to dir/file. */
static uint64_t s_walk(const char *dir, const char *path, const char *file, char *from,
                       size_t cap)
{
    uint64_t best = UINT64_MAX;
    char p[8400];
    while (*path == '/') path++;
    size_t n = strlen(path);
    while (n && path[n - 1] == '/') n--;
    for (;;) {
        uint64_t v = 0;
        int len = n ? snprintf(p, sizeof p, "%s/%.*s/%s", dir, (int)n, path, file)
                    : snprintf(p, sizeof p, "%s/%s", dir, file);
        if (len > 0 && (size_t)len < sizeof p && s_read_limit(p, &v) && v < best) {
            best = v;
            snprintf(from, cap, "%s", p);
        }
        if (n == 0) break;
        while (n && path[n - 1] != '/') n--; /* up one level */
        while (n && path[n - 1] == '/') n--;
    }
    return best;
}

uint64_t upslots_cgroup_limit(const char *proc_cgroup, const char *sys_root, char *from,
                              size_t cap)
{
    FILE *f = fopen(proc_cgroup, "re");
    if (!f) return UINT64_MAX;
    uint64_t best = UINT64_MAX;
    char line[4096], dir[4200], where[sizeof dir + 64];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c1 = *c2 = '\0'; /* line: the hierarchy's number */
        const char *ctrl = c1 + 1, *path = c2 + 1;
        const char *file = NULL;
        if (strcmp(line, "0") == 0 && *ctrl == '\0') { /* v2 */
            snprintf(dir, sizeof dir, "%s", sys_root);
            file = "memory.max";
        } else { /* v1: the hierarchy whose controllers include memory */
            bool mem = false;
            for (const char *t = ctrl; *t;) {
                size_t k = strcspn(t, ",");
                if (k == 6 && strncmp(t, "memory", 6) == 0) mem = true;
                t += k + (t[k] == ',');
            }
            if (!mem) continue;
            snprintf(dir, sizeof dir, "%s/memory", sys_root);
            file = "memory.limit_in_bytes";
        }
        uint64_t v = s_walk(dir, path, file, where, sizeof where);
        if (v < best) {
            best = v;
            snprintf(from, cap, "%s", where);
        }
    }
    fclose(f);
    return best;
}

void upslots_size(uint64_t per_upload, upslots_t *out)
{
    memset(out, 0, sizeof *out);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    out->mem = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    snprintf(out->mem_from, sizeof out->mem_from, "physical memory");
    char from[sizeof out->mem_from];
    uint64_t cg =
        upslots_cgroup_limit("/proc/self/cgroup", "/sys/fs/cgroup", from, sizeof from);
    if (cg < out->mem) {
        out->mem = cg;
        memcpy(out->mem_from, from, sizeof from);
    }
    struct rlimit rl;
    out->nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                      ? (uint64_t)rl.rlim_cur
                      : UINT64_MAX;
    out->max = upslots_default(out->mem, out->nofile, per_upload);
}
