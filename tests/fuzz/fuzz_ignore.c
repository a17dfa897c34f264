/* libFuzzer target for the gitignore matcher (sdk/ignore.h):
 * what a job's code folder says in its .gitignore and .cairnignore files,
 * and the names in it. An ignore file compiles, or is refused with a 400
 * or a 413 and a sentence; compiled, it answers any path in bounded time,
 * and its answers keep git's rule that nothing under an excluded directory
 * comes back. Anything else aborts.
 *
 * Input: two bytes giving the ignore file's length L (little-endian), its
 * L bytes, then paths one a line (a final `/` marks a directory). The file
 * is compiled at the root and again in directory "a", both on one stack. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ignore.h"

#define PATH_CAP 512

static ignore_rules_t *s_compile(const char *dir, const char *text, size_t len)
{
    cairn_err_t err = {0};
    ignore_rules_t *r = ignore_compile(dir, ".gitignore", text, len, &err);
    if (!r && ((err.st != CAIRN_ST_BAD_REQUEST && err.st != CAIRN_ST_TOO_LARGE) ||
               !err.msg[0]))
        abort();
    return r;
}

/* The path in [p, p+n) as the API wants it: no empty segment, no NUL. */
static size_t s_normalize(const char *p, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < PATH_CAP - 1; i++) {
        if (p[i] == '\0') continue;
        if (p[i] == '/' && (k == 0 || out[k - 1] == '/')) continue;
        out[k++] = p[i];
    }
    while (k && out[k - 1] == '/') k--;
    out[k] = '\0';
    return k;
}

static void s_ask(const ignore_rules_t *const *st, size_t n, const char *path, bool dir)
{
    bool ignored = ignore_path_ignored(st, n, path, dir);
    if (ignore_stack_verdict(st, n, path, dir) == IGNORE_EXCLUDE && !ignored) abort();
    /* under an excluded directory: excluded, whatever its own rules say */
    const char *slash = strrchr(path, '/');
    if (!slash || ignored) return;
    char parent[PATH_CAP];
    memcpy(parent, path, (size_t)(slash - path));
    parent[slash - path] = '\0';
    if (ignore_path_ignored(st, n, parent, true)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1 << 16)) return 0;
    size_t len = (size_t)data[0] | (size_t)data[1] << 8;
    const char *text = (const char *)data + 2, *rest = text;
    if (len > size - 2) len = size - 2;
    rest += len;
    ignore_rules_t *root = s_compile("", text, len), *sub = s_compile("a", text, len);
    if (!root || !sub) {
        ignore_destroy(&root);
        ignore_destroy(&sub);
        return 0;
    }
    const ignore_rules_t *st[] = {root, sub};
    const char *end = (const char *)data + size;
    int asked = 0;
    while (rest < end && asked++ < 64) {
        const char *nl = memchr(rest, '\n', (size_t)(end - rest));
        size_t n = nl ? (size_t)(nl - rest) : (size_t)(end - rest);
        bool dir = n && rest[n - 1] == '/';
        char path[PATH_CAP];
        if (s_normalize(rest, n, path)) s_ask(st, 2, path, dir);
        rest += n + (nl ? 1 : 0);
    }
    ignore_destroy(&root);
    ignore_destroy(&sub);
    return 0;
}
