/* snapshot_tool — a job's code snapshot (sdk/snapshot.h) from
 * the command line, for tests/integration/test_snapshot.py:
 *
 *   snapshot_tool take SRC DEST MANIFEST [MAX_FILES MAX_BYTES MAX_PATH]
 *   snapshot_tool git SRC
 *
 * One JSON object on stdout: the snapshot (paths and link targets in hex,
 * since a name may be any bytes) or the git facts; or
 * {"ok": false, "status", "code", "message"}. Exit 0 either way, 2 on a
 * usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

static void s_hex(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) printf("%02x", *p);
    putchar('"');
}

static void s_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static int s_fail(const cairn_err_t *err)
{
    printf("{\"ok\": false, \"status\": %d, \"code\": ", err->st);
    s_str(err->code);
    printf(", \"message\": ");
    s_str(err->msg);
    printf("}\n");
    return 0;
}

static int s_take(int argc, char **argv)
{
    snapshot_limits_t lim = {0};
    if (argc >= 8) {
        lim.max_files = strtoull(argv[5], NULL, 10);
        lim.max_bytes = strtoull(argv[6], NULL, 10);
        lim.max_path = strtoull(argv[7], NULL, 10);
    }
    cairn_err_t err = {0};
    snapshot_t *s;
    if (snapshot_take(argv[2], argv[3], &lim, &s, &err) != 0) return s_fail(&err);
    if (snapshot_write_manifest(s, argv[4], &err) != 0) {
        snapshot_destroy(&s);
        return s_fail(&err);
    }
    printf(
        "{\"ok\": true, \"hash\": \"%s\", \"count\": %zu, \"bytes\": %llu, \"files\": "
        "[",
        snapshot_hash(s), snapshot_count(s),
        (unsigned long long)snapshot_total_bytes(s));
    for (size_t i = 0; i < snapshot_count(s); i++) {
        const snapshot_file_t *f = snapshot_file(s, i);
        printf("%s\n {\"path\": ", i ? "," : "");
        s_hex(f->path);
        printf(", \"size\": %llu, \"sha256\": \"%s\", \"mode\": \"%s\", \"target\": ",
               (unsigned long long)f->size, f->sha256, f->mode);
        if (f->target)
            s_hex(f->target);
        else
            printf("null");
        putchar('}');
    }
    printf("]}\n");
    snapshot_destroy(&s);
    return 0;
}

static int s_git(const char *src)
{
    char commit[SNAPSHOT_COMMIT_MAX];
    bool dirty, in_repo;
    cairn_err_t err = {0};
    if (snapshot_git(src, commit, &dirty, &in_repo, &err) != 0) return s_fail(&err);
    printf("{\"ok\": true, \"in_repo\": %s, \"commit\": \"%s\", \"dirty\": %s}\n",
           in_repo ? "true" : "false", commit, dirty ? "true" : "false");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "take")) return s_take(argc, argv);
    if (argc == 3 && !strcmp(argv[1], "git")) return s_git(argv[2]);
    fprintf(stderr,
            "usage: snapshot_tool take SRC DEST MANIFEST [MAX_FILES MAX_BYTES "
            "MAX_PATH]\n       snapshot_tool git SRC\n");
    return 2;
}
