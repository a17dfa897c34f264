/* Unit tests of the upload slots' sizing (plugins/storage/upslots.c): the
 * arithmetic, and the cgroup memory limit read from a fake /proc/self/cgroup
 * and cgroup tree (v2, v1, a limit set on an ancestor, "max", none). */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "upslots.h"

#define MIB (1ull << 20)

static char s_dir[256];

static int s_rm(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

/* Write text to s_dir/rel, creating its folders. */
static void s_put(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", s_dir, rel);
    for (char *c = p + strlen(s_dir) + 1; *c; c++)
        if (*c == '/') {
            *c = '\0';
            mkdir(p, 0700);
            *c = '/';
        }
    FILE *f = fopen(p, "w");
    if (!CHECK(f != NULL)) return;
    fputs(text, f);
    fclose(f);
}

static void s_fresh(void)
{
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(s_dir, 0700);
}

static uint64_t s_limit(char *from, size_t cap)
{
    char proc[300], sys[300];
    snprintf(proc, sizeof proc, "%s/cgroup", s_dir);
    snprintf(sys, sizeof sys, "%s/sys", s_dir);
    from[0] = '\0';
    return upslots_cgroup_limit(proc, sys, from, cap);
}

TEST(arithmetic)
{
    /* a quarter of the memory over 9 MiB an upload */
    CHECK_UEQ(upslots_default(8192 * MIB, 20000, 9 * MIB), 227);
    CHECK_UEQ(upslots_default(1024 * MIB, 20000, 9 * MIB), 28);
    /* at most half the open-file limit */
    CHECK_UEQ(upslots_default(131072 * MIB, 1024, 9 * MIB), 512);
    CHECK_UEQ(upslots_default(131072 * MIB, UINT64_MAX, 9 * MIB), 3640);
    /* at least UPSLOTS_MIN */
    CHECK_UEQ(upslots_default(64 * MIB, 20000, 9 * MIB), UPSLOTS_MIN);
    CHECK_UEQ(upslots_default(UINT64_MAX, 20000, 0), UPSLOTS_MIN);
}

TEST(cgroup_v2_ancestor)
{
    char from[256];
    s_fresh();
    s_put("cgroup", "0::/a/b\n");
    s_put("sys/a/b/memory.max", "max\n");
    s_put("sys/a/memory.max", "1073741824\n");
    CHECK_UEQ(s_limit(from, sizeof from), 1024 * MIB);
    CHECK_HAS(from, "/sys/a/memory.max");
    /* the root's own file counts too, and the lowest wins */
    s_put("sys/memory.max", "536870912\n");
    CHECK_UEQ(s_limit(from, sizeof from), 512 * MIB);
    CHECK_HAS(from, "/sys/memory.max");
    /* a namespaced cgroup ("/"): only the root */
    s_put("cgroup", "0::/\n");
    CHECK_UEQ(s_limit(from, sizeof from), 512 * MIB);
}

TEST(cgroup_v1)
{
    char from[256];
    s_fresh();
    s_put("cgroup", "12:cpu,cpuacct:/x\n4:blkio,memory:/p/q\n0::/\n");
    s_put("sys/memory/p/q/memory.limit_in_bytes", "9223372036854771712\n");
    s_put("sys/memory/p/memory.limit_in_bytes", "2147483648\n");
    s_put("sys/memory/memory.limit_in_bytes", "9223372036854771712\n");
    s_put("sys/x/memory.max", "1\n"); /* not the memory hierarchy: ignored */
    CHECK_UEQ(s_limit(from, sizeof from), 2048 * MIB);
    CHECK_HAS(from, "/sys/memory/p/memory.limit_in_bytes");
}

TEST(cgroup_none)
{
    char from[256];
    s_fresh();
    CHECK_UEQ(s_limit(from, sizeof from), UINT64_MAX); /* no proc file */
    s_put("cgroup", "0::/a\n");
    CHECK_UEQ(s_limit(from, sizeof from), UINT64_MAX); /* no limit files */
    s_put("sys/a/memory.max", "max\n");
    s_put("sys/memory.max", "garbage\n");
    CHECK_UEQ(s_limit(from, sizeof from), UINT64_MAX);
    CHECK_STR(from, "");
}

TEST(this_process)
{
    upslots_t sz;
    upslots_size(9 * MIB, &sz);
    CHECK(sz.mem > 0);
    CHECK(sz.nofile > 0);
    CHECK(sz.max >= UPSLOTS_MIN);
    CHECK_UEQ(sz.max, upslots_default(sz.mem, sz.nofile, 9 * MIB));
    CHECK(sz.mem_from[0] != '\0');
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/cairn-test-upslots-%d", (int)getpid());
    RUN(arithmetic);
    RUN(cgroup_v2_ancestor);
    RUN(cgroup_v1);
    RUN(cgroup_none);
    RUN(this_process);
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return unit_report();
}
