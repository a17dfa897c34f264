/* gitignore rules, compiled and matched (ignore.h).
 *
 * Why not fnmatch(3): glibc's FNM_PATHNAME has no `**`, its classes
 * follow the locale, and git's matcher has quirks of its own that a
 * snapshot must share to keep what git keeps (a `**` counts as a whole
 * segment at the start of what is left after a literal prefix, `[:space:]`
 * is ASCII's four, a malformed class matches nothing). The matcher below
 * follows git's semantics, including the early give-ups (no match can come
 * from trying a star further once the text ran out, or a single star past a
 * `/`), which keep it from going exponential on patterns like `*a*a*a*b`. */
#include "ignore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned char uchar;

enum {
    R_NEGATIVE = 1, /* `!pattern` */
    R_DIR = 2,      /* `pattern/`: directories only */
    R_BASENAME = 4, /* no `/`: matches a name at any depth */
};

typedef struct rule {
    const char *pat; /* NUL-terminated, in the arena */
    size_t len;
    size_t prefix; /* leading bytes with no glob character */
    unsigned flags;
} rule_t;

struct ignore_rules {
    char *dir;
    size_t dirlen;
    char *arena; /* the file's text, cut into patterns in place */
    rule_t *rules;
    size_t n, cap;
};

/* ---- the matcher ---------------------------------------------------------- */

/* W_GO_ON: s_star matched a star up to a `/` and the caller goes on. */
enum {
    W_MATCH = 0,
    W_NOMATCH = 1,
    W_GO_ON = 2,
    W_ABORT_ALL = -1,
    W_ABORT_TO_STARSTAR = -2
};

static bool s_glob_char(uchar c)
{
    return c == '*' || c == '?' || c == '[' || c == '\\';
}

/* git's character classes: ASCII only, and its own idea of space. */
static int s_named_class(const uchar *name, size_t n, uchar c)
{
    bool up = c >= 'A' && c <= 'Z', low = c >= 'a' && c <= 'z';
    bool digit = c >= '0' && c <= '9';
    bool punct = (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                 (c >= 123 && c <= 126);
    static const struct {
        const char *name;
        int id;
    } names[] = {{"alnum", 0}, {"alpha", 1}, {"blank", 2},  {"cntrl", 3},
                 {"digit", 4}, {"graph", 5}, {"lower", 6},  {"print", 7},
                 {"punct", 8}, {"space", 9}, {"upper", 10}, {"xdigit", 11}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) != n || memcmp(names[i].name, name, n) != 0) continue;
        switch (names[i].id) {
            case 0:
                return up || low || digit;
            case 1:
                return up || low;
            case 2:
                return c == ' ' || c == '\t';
            case 3:
                return c < 32 || c == 127;
            case 4:
                return digit;
            case 5:
                return c > 32 && c < 127;
            case 6:
                return low;
            case 7:
                return c >= 32 && c < 127;
            case 8:
                return punct;
            case 9:
                return c == ' ' || c == '\t' || c == '\n' || c == '\r';
            case 10:
                return up;
            default:
                return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        }
    }
    return -1;
}

/* One `[...]` at *pp (on its `[`) against c: 1 matches, 0 does not, -1
 * malformed (no closing `]`, an unknown `[:name:]`), which git reads as a
 * pattern that matches nothing. *pp is left on the closing `]`. */
static int s_class(const uchar **pp, uchar c)
{
    const uchar *p = *pp + 1;
    bool negated = *p == '!' || *p == '^', matched = false;
    if (negated) p++;
    uchar prev = 0, pc = *p;
    do {
        if (!pc) return -1;
        if (pc == '\\') {
            pc = *++p;
            if (!pc) return -1;
            matched |= c == pc;
        } else if (pc == '-' && prev && p[1] && p[1] != ']') {
            pc = *++p;
            if (pc == '\\') pc = *++p;
            if (!pc) return -1;
            matched |= c >= prev && c <= pc;
            pc = 0; /* a range is not the start of another */
        } else if (pc == '[' && p[1] == ':') {
            const uchar *name = p + 2, *q = name;
            while (*q && *q != ']') q++;
            if (!*q) return -1;
            if (q == name || q[-1] != ':') {
                matched |= c == '['; /* no `:]`: a plain `[` */
            } else {
                int k = s_named_class(name, (size_t)(q - name) - 1, c);
                if (k < 0) return -1;
                matched |= k == 1;
                p = q;
                pc = 0;
            }
        } else {
            matched |= c == pc;
        }
        prev = pc;
        pc = *++p;
    } while (pc != ']');
    *pp = p;
    return matched != negated;
}

static int s_wild(const uchar *p, const uchar *t, const uchar *te, bool path);

/* A run of stars at *pp (p on its first), the rest of the text [t, te). */
static int s_star(const uchar *p, const uchar *pstart, const uchar *t, const uchar *te,
                  bool path, const uchar **p_after, const uchar **t_after)
{
    const uchar *after = p;
    while (*after == '*') after++;
    bool slash = !path; /* whether the stars may match a `/` */
    if (path && after - p >= 2) {
        bool whole =
            (p == pstart || p[-1] == '/') &&
            (!*after || *after == '/' || (after[0] == '\\' && after[1] == '/'));
        /* `**` /: zero segments first, then any number */
        if (whole && *after == '/' && s_wild(after + 1, t, te, path) == W_MATCH)
            return W_MATCH;
        slash = whole;
    }
    p = after;
    if (!*p) {
        if (!slash && memchr(t, '/', (size_t)(te - t))) return W_NOMATCH;
        return W_MATCH;
    }
    if (!slash && *p == '/') { /* one star then `/`: up to the next `/` */
        const uchar *s = memchr(t, '/', (size_t)(te - t));
        if (!s) return W_NOMATCH;
        *p_after = p;
        *t_after = s;
        return W_GO_ON;
    }
    for (; t < te; t++) {
        if (!s_glob_char(*p)) { /* skip to where the literal after the star is */
            while (t < te && (slash || *t != '/') && *t != *p) t++;
            if (t == te || *t != *p) return W_NOMATCH;
        }
        int r = s_wild(p, t, te, path);
        if (r != W_NOMATCH) {
            if (!slash || r != W_ABORT_TO_STARSTAR) return r;
        } else if (!slash && *t == '/') {
            return W_ABORT_TO_STARSTAR;
        }
    }
    return W_ABORT_ALL;
}

/* Pattern p (NUL-terminated) against the text [t, te); path: `*`, `?` and
 * classes do not match `/`. */
static int s_wild(const uchar *p, const uchar *t, const uchar *te, bool path)
{
    const uchar *pstart = p;
    for (; *p; p++, t++) {
        if (t == te && *p != '*') return W_ABORT_ALL;
        uchar c = t < te ? *t : 0;
        switch (*p) {
            case '\\':
                if (!p[1] || c != p[1]) return W_NOMATCH; /* a lone `\` ends nothing */
                p++;
                continue;
            case '?':
                if (path && c == '/') return W_NOMATCH;
                continue;
            case '[': {
                int k = s_class(&p, c);
                if (k < 0) return W_ABORT_ALL;
                if (!k || (path && c == '/')) return W_NOMATCH;
                continue;
            }
            case '*': {
                const uchar *np = NULL, *nt = NULL;
                int r = s_star(p, pstart, t, te, path, &np, &nt);
                if (r != W_GO_ON) return r;
                p = np; /* both on a `/`, which the loop steps over */
                t = nt;
                continue;
            }
            default:
                if (c != *p) return W_NOMATCH;
                continue;
        }
    }
    return t == te ? W_MATCH : W_NOMATCH;
}

/* ---- compiling ------------------------------------------------------------ */

/* git's trim: trailing spaces go, unless the first of them is escaped. */
static size_t s_trim(char *s, size_t n)
{
    size_t keep = n;
    bool in_spaces = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            if (!in_spaces) keep = i;
            in_spaces = true;
        } else if (s[i] == '\\') {
            if (++i == n) return n; /* a final lone `\`: left as it is */
            in_spaces = false;
        } else {
            in_spaces = false;
        }
    }
    if (!in_spaces) keep = n;
    s[keep] = '\0';
    return keep;
}

static int s_add(ignore_rules_t *r, const char *name, char *s, size_t n,
                 cairn_err_t *err)
{
    rule_t ru = {.pat = s, .len = n};
    if (*s == '!') {
        ru.flags |= R_NEGATIVE;
        ru.pat++;
        ru.len--;
    }
    char *p = (char *)ru.pat;
    if (ru.len && p[ru.len - 1] == '/') {
        p[--ru.len] = '\0';
        ru.flags |= R_DIR;
    }
    if (!ru.len) return 0; /* git keeps it, but it can match nothing */
    if (!memchr(p, '/', ru.len)) ru.flags |= R_BASENAME;
    while (ru.prefix < ru.len && !s_glob_char((uchar)p[ru.prefix])) ru.prefix++;
    if (r->n == r->cap) {
        if (r->n == IGNORE_RULES_MAX)
            return cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                                 "%s has more than %d rules (the limit)", name,
                                 IGNORE_RULES_MAX);
        size_t cap = r->cap ? r->cap * 2 : 16;
        if (cap > IGNORE_RULES_MAX) cap = IGNORE_RULES_MAX;
        rule_t *nr = realloc(r->rules, cap * sizeof *nr);
        if (!nr) return cairn_err_oom(err, "compiling an ignore file");
        r->rules = nr;
        r->cap = cap;
    }
    r->rules[r->n++] = ru;
    return 0;
}

/* Cut the arena (len bytes, NUL-terminated) into lines and rules. */
static int s_parse(ignore_rules_t *r, const char *name, size_t len, cairn_err_t *err)
{
    char *a = r->arena;
    size_t at = 0, line = 0;
    if (len >= 3 && memcmp(a, "\xEF\xBB\xBF", 3) == 0) at = 3;
    while (at < len) {
        line++;
        char *nl = memchr(a + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - a) : len, n = end - at;
        char *s = a + at;
        at = end + 1;
        if (n > IGNORE_LINE_MAX)
            return cairn_err_set(err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                                 "%s: line %zu is longer than %d bytes (the limit)",
                                 name, line, IGNORE_LINE_MAX);
        if (!n || s[0] == '#') continue;
        if (s[n - 1] == '\r') n--;
        s[n] = '\0';
        n = strlen(s); /* a NUL ends the line, as in git */
        n = s_trim(s, n);
        if (s_add(r, name, s, n, err) != 0) return -1;
    }
    return 0;
}

ignore_rules_t *ignore_compile(const char *dir, const char *name, const char *text,
                               size_t len, cairn_err_t *err)
{
    if (len > IGNORE_FILE_MAX) {
        cairn_err_set(err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                      "%s is larger than %d bytes (the limit)", name, IGNORE_FILE_MAX);
        return NULL;
    }
    ignore_rules_t *r = calloc(1, sizeof *r);
    size_t dl = strlen(dir);
    while (dl && dir[dl - 1] == '/') dl--;
    if (r) r->dir = malloc(dl + 1);
    if (r) r->arena = malloc(len + 1);
    if (!r || !r->dir || !r->arena) {
        ignore_destroy(&r);
        cairn_err_oom(err, "compiling an ignore file");
        return NULL;
    }
    memcpy(r->dir, dir, dl);
    r->dir[dl] = '\0';
    r->dirlen = dl;
    if (len) memcpy(r->arena, text, len);
    r->arena[len] = '\0';
    if (s_parse(r, name, len, err) != 0) ignore_destroy(&r);
    return r;
}

void ignore_destroy(ignore_rules_t **self_p)
{
    if (!self_p || !*self_p) return;
    ignore_rules_t *r = *self_p;
    free(r->rules);
    free(r->arena);
    free(r->dir);
    free(r);
    *self_p = NULL;
}

size_t ignore_count(const ignore_rules_t *r)
{
    return r->n;
}

const char *ignore_dir(const ignore_rules_t *r)
{
    return r->dir;
}

/* ---- asking --------------------------------------------------------------- */

/* Whether path [0, len) is below r's directory. */
static bool s_below(const ignore_rules_t *r, const char *path, size_t len)
{
    if (!r->dirlen) return len > 0;
    return len > r->dirlen + 1 && path[r->dirlen] == '/' &&
           memcmp(path, r->dir, r->dirlen) == 0;
}

/* An anchored pattern against the path relative to the file's directory:
 * the literal prefix compared first, then the rest matched on its own (so
 * that, as in git, a `**` right after the prefix counts as a whole one). */
static bool s_match_anchored(const rule_t *ru, const char *name, size_t n)
{
    const char *pat = ru->pat;
    size_t plen = ru->len, prefix = ru->prefix;
    if (*pat == '/') {
        pat++;
        plen--;
        prefix--;
    }
    if (prefix > n || memcmp(pat, name, prefix) != 0) return false;
    if (prefix == plen && prefix == n) return true;
    const uchar *t = (const uchar *)name + prefix;
    return s_wild((const uchar *)pat + prefix, t, t + (n - prefix), true) == W_MATCH;
}

static ignore_verdict_t s_verdict(const ignore_rules_t *r, const char *path, size_t len,
                                  bool is_dir)
{
    if (!s_below(r, path, len)) return IGNORE_NONE;
    const char *name = path + (r->dirlen ? r->dirlen + 1 : 0);
    size_t n = len - (size_t)(name - path);
    const char *base = path + len;
    while (base > path && base[-1] != '/') base--;
    for (size_t i = r->n; i-- > 0;) {
        const rule_t *ru = &r->rules[i];
        if ((ru->flags & R_DIR) && !is_dir) continue;
        bool hit;
        if (ru->flags & R_BASENAME)
            hit = s_wild((const uchar *)ru->pat, (const uchar *)base,
                         (const uchar *)path + len, false) == W_MATCH;
        else
            hit = s_match_anchored(ru, name, n);
        if (hit) return ru->flags & R_NEGATIVE ? IGNORE_INCLUDE : IGNORE_EXCLUDE;
    }
    return IGNORE_NONE;
}

ignore_verdict_t ignore_rules_verdict(const ignore_rules_t *r, const char *path,
                                      bool is_dir)
{
    return s_verdict(r, path, strlen(path), is_dir);
}

static ignore_verdict_t s_stack_verdict(const ignore_rules_t *const *stack, size_t n,
                                        const char *path, size_t len, bool is_dir)
{
    for (size_t i = n; i-- > 0;) {
        ignore_verdict_t v = s_verdict(stack[i], path, len, is_dir);
        if (v != IGNORE_NONE) return v;
    }
    return IGNORE_NONE;
}

ignore_verdict_t ignore_stack_verdict(const ignore_rules_t *const *stack, size_t n,
                                      const char *path, bool is_dir)
{
    return s_stack_verdict(stack, n, path, strlen(path), is_dir);
}

bool ignore_path_ignored(const ignore_rules_t *const *stack, size_t n, const char *path,
                         bool is_dir)
{
    size_t len = strlen(path);
    for (size_t i = 0; i < len; i++) /* each directory above, from the top */
        if (path[i] == '/' &&
            s_stack_verdict(stack, n, path, i, true) == IGNORE_EXCLUDE)
            return true;
    return s_stack_verdict(stack, n, path, len, is_dir) == IGNORE_EXCLUDE;
}
