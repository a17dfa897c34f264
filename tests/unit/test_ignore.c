/* The gitignore matcher (sdk/ignore.h): a table of one ignore
 * file at the root, a path and whether git ignores it (each rule of
 * gitignore(5), and git's quirks, checked against `git check-ignore`),
 * then stacks of files at several levels, and the limits.
 * tests/integration/test_snapshot.py compares whole random trees with git. */
#include <stdlib.h>
#include <string.h>

#include "ignore.h"
#include "unit.h"

typedef struct {
    const char *text, *path;
    int is_dir, ignored;
} case_t;

static const case_t s_cases[] = {
    /* a name at any depth; a file under an ignored directory */
    {"foo", "foo", 0, 1},
    {"foo", "a/b/foo", 0, 1},
    {"foo", "foo/x", 0, 1},
    {"foo", "foobar", 0, 0},
    {"foo", "xfoo", 0, 0},
    /* trailing slash: directories only */
    {"foo/", "foo", 0, 0},
    {"foo/", "foo", 1, 1},
    {"foo/", "a/foo", 1, 1},
    {"foo/", "foo/x", 0, 1},
    {"*/", "x", 1, 1},
    {"*/", "x", 0, 0},
    /* anchored: a leading slash, or one in the middle */
    {"/foo", "foo", 0, 1},
    {"/foo", "a/foo", 0, 0},
    {"a/foo", "a/foo", 0, 1},
    {"a/foo", "b/a/foo", 0, 0},
    {"doc/*.txt", "doc/a.txt", 0, 1},
    {"doc/*.txt", "doc/x/a.txt", 0, 0},
    {"a/b/", "a/b", 1, 1},
    {"a/b/", "a/b", 0, 0},
    /* * and ? never match a slash */
    {"*.o", "x.o", 0, 1},
    {"*.o", "d/e/x.o", 0, 1},
    {"*.o", "x.oo", 0, 0},
    {"*", "a/b", 0, 1},
    {"a*", "a/b", 0, 1},
    {"a/*.o", "a/x.o", 0, 1},
    {"a/*.o", "a/b/x.o", 0, 0},
    {"?.c", "a.c", 0, 1},
    {"?.c", "ab.c", 0, 0},
    {"a?b", "a/b", 0, 0},
    {"x/a?b", "x/a/b", 0, 0},
    {"x/*/z", "x/y/z", 0, 1},
    {"x/*/z", "x/y/w/z", 0, 0},
    /* classes */
    {"[abc].txt", "b.txt", 0, 1},
    {"[abc].txt", "d.txt", 0, 0},
    {"[!abc].txt", "d.txt", 0, 1},
    {"[!abc].txt", "a.txt", 0, 0},
    {"[^b]w", "cw", 0, 1},
    {"[^b]w", "bw", 0, 0},
    {"[a-c]x", "bx", 0, 1},
    {"[a-c]x", "dx", 0, 0},
    {"[a-]x", "-x", 0, 1},
    {"[]a]y", "]y", 0, 1},
    {"[\\]]z", "]z", 0, 1},
    {"[[:digit:]]x", "7x", 0, 1},
    {"[[:digit:]]x", "ax", 0, 0},
    {"x[[:space:]]", "x\t", 0, 1},
    {"x[[:space:]]", "x\v", 0, 0}, /* git's space is ASCII's four */
    {"[[:upper:][:digit:]]q", "Q9q", 0, 0},
    {"[[:upper:][:digit:]]q", "Qq", 0, 1},
    {"[[:]]v", "[]v", 0, 1},
    {"[abc", "[abc", 0, 0},     /* unterminated: matches nothing */
    {"q[[:foo:]]", "qa", 0, 0}, /* unknown class: matches nothing */
    {"a/[b/]c", "a/b/c", 0, 0}, /* a class never matches a slash */
    /* ** */
    {"**/foo", "foo", 0, 1},
    {"**/foo", "a/b/foo", 0, 1},
    {"**/foo/bar", "x/foo/bar", 0, 1},
    {"foo/**", "foo/a", 0, 1},
    {"foo/**", "foo/a/b", 0, 1},
    {"foo/**", "foo", 1, 0},
    {"a/**/b", "a/b", 0, 1},
    {"a/**/b", "a/x/b", 0, 1},
    {"a/**/b", "a/x/y/b", 0, 1},
    {"a/**/b", "ab", 0, 0},
    {"**/*.txt", "a/b/c.txt", 0, 1},
    {"x**y/z", "xq/wy/z", 0, 0}, /* not a whole segment: one star */
    {"a**/b", "ax/y/b", 0, 1},   /* git: after the literal `a`, `**` is whole */
    {"x*a**/b", "xya/q/b", 0, 0},
    /* escapes, comments, spaces */
    {"\\#foo", "#foo", 0, 1},
    {"#foo", "#foo", 0, 0},
    {"\\!bar", "!bar", 0, 1},
    {"a\\*b", "a*b", 0, 1},
    {"a\\*b", "axb", 0, 0},
    {"qux   ", "qux", 0, 1},
    {"baz\\ ", "baz ", 0, 1},
    {"baz\\ ", "baz", 0, 0},
    {"baz\\  ", "baz ", 0, 1},
    {"tab\t", "tab\t", 0, 1}, /* only spaces are trimmed */
    {"foo\\", "foo", 0, 0},   /* a lone final backslash matches nothing */
    /* negation: the last matching rule decides */
    {"*.log\n!keep.log", "a.log", 0, 1},
    {"*.log\n!keep.log", "keep.log", 0, 0},
    {"!keep.log\n*.log", "keep.log", 0, 1},
    {"build/\n!build/keep.txt", "build/keep.txt", 0, 1}, /* the dir stays out */
    {"build/*\n!build/keep.txt", "build/keep.txt", 0, 0},
    {"build/*\n!build/keep.txt", "build/other", 0, 1},
    {"!", "!", 0, 0},
    /* line ends, BOM, NUL */
    {"foo\r\nbar", "foo", 0, 1},
    {"foo\r\nbar", "bar", 0, 1},
    {"\xEF\xBB\xBF"
     "foo",
     "foo", 0, 1},
    {"\n\n  \nfoo\n", "foo", 0, 1},
};

static ignore_rules_t *s_compile(const char *dir, const char *text, size_t len)
{
    cairn_err_t err = {0};
    ignore_rules_t *r = ignore_compile(dir, ".gitignore", text, len, &err);
    if (!CHECK(r != NULL)) fprintf(stderr, "     %s\n", err.msg);
    return r;
}

TEST(table)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const case_t *c = &s_cases[i];
        ignore_rules_t *r = s_compile("", c->text, strlen(c->text));
        if (!r) continue;
        const ignore_rules_t *stack[] = {r};
        bool got = ignore_path_ignored(stack, 1, c->path, c->is_dir);
        if (!CHECK(got == (c->ignored != 0)))
            fprintf(stderr, "     pattern \"%s\", path \"%s\" (%s): got %d\n", c->text,
                    c->path, c->is_dir ? "dir" : "file", got);
        ignore_destroy(&r);
    }
}

TEST(nul_ends_a_line)
{
    static const char text[] = "foo\0bar\nbaz\n";
    ignore_rules_t *r = s_compile("", text, sizeof text - 1);
    if (!r) return;
    const ignore_rules_t *stack[] = {r};
    CHECK(ignore_path_ignored(stack, 1, "foo", false));
    CHECK(ignore_path_ignored(stack, 1, "baz", false));
    CHECK(!ignore_path_ignored(stack, 1, "foobar", false));
    CHECK_EQ(ignore_count(r), 2);
    ignore_destroy(&r);
    ignore_destroy(&r); /* safe twice */
}

TEST(stack)
{
    /* info/exclude, the root's .gitignore and .cairnignore, sub's */
    ignore_rules_t *ex = s_compile("", "secret\nx", 8);
    ignore_rules_t *gi = s_compile("", "*.txt\n!x\n", 9);
    ignore_rules_t *ci = s_compile("", "!notes.txt\ndata/\n", 17);
    ignore_rules_t *sub = s_compile("sub", "!keep.txt\n/foo\na/b\n", 19);
    if (!ex || !gi || !ci || !sub) return;
    CHECK_STR(ignore_dir(sub), "sub");
    const ignore_rules_t *st[] = {ex, gi, ci, sub};
    CHECK(ignore_path_ignored(st, 4, "secret", false));
    CHECK(!ignore_path_ignored(st, 4, "x", false)); /* .gitignore over exclude */
    CHECK(ignore_path_ignored(st, 4, "a.txt", false));
    CHECK(!ignore_path_ignored(st, 4, "notes.txt", false)); /* .cairnignore last */
    CHECK(ignore_path_ignored(st, 4, "data/x.py", false));
    CHECK(ignore_path_ignored(st, 4, "sub/data/x.py", false));
    CHECK(!ignore_path_ignored(st, 4, "sub/keep.txt", false)); /* deeper wins */
    CHECK(ignore_path_ignored(st, 4, "keep.txt", false));
    CHECK(ignore_path_ignored(st, 4, "sub/a.txt", false));
    CHECK(ignore_path_ignored(st, 4, "sub/foo", false)); /* anchored to sub */
    CHECK(!ignore_path_ignored(st, 4, "sub/z/foo", false));
    CHECK(!ignore_path_ignored(st, 4, "foo", false));
    CHECK(ignore_path_ignored(st, 4, "sub/a/b", false));
    CHECK(!ignore_path_ignored(st, 4, "subx/a/b", false)); /* not below sub */
    /* a file's rules ask only of what is below its directory */
    CHECK_EQ(ignore_rules_verdict(sub, "sub", true), IGNORE_NONE);
    CHECK_EQ(ignore_rules_verdict(sub, "sub/keep.txt", false), IGNORE_INCLUDE);
    CHECK_EQ(ignore_stack_verdict(st, 4, "sub/foo", false), IGNORE_EXCLUDE);
    CHECK_EQ(ignore_stack_verdict(st, 4, "README", false), IGNORE_NONE);
    ignore_destroy(&ex);
    ignore_destroy(&gi);
    ignore_destroy(&ci);
    ignore_destroy(&sub);
}

TEST(limits)
{
    cairn_err_t err = {0};
    size_t n = IGNORE_FILE_MAX + 1;
    char *big = malloc(n);
    if (!CHECK(big != NULL)) return;
    memset(big, 'a', n);
    CHECK(ignore_compile("", "a/.gitignore", big, n, &err) == NULL);
    CHECK_EQ(err.st, 413);
    CHECK_HAS(err.msg, "a/.gitignore");
    /* a line too long */
    memset(big, 'b', IGNORE_LINE_MAX + 1);
    cairn_err_clear(&err);
    CHECK(ignore_compile("", ".cairnignore", big, IGNORE_LINE_MAX + 1, &err) == NULL);
    CHECK_EQ(err.st, 400);
    CHECK_HAS(err.msg, ".cairnignore: line 1");
    /* too many rules: "a\n" over and over */
    size_t rules = IGNORE_RULES_MAX + 1;
    for (size_t i = 0; i < rules; i++) memcpy(big + 2 * i, "a\n", 2);
    cairn_err_clear(&err);
    CHECK(ignore_compile("", ".gitignore", big, 2 * rules, &err) == NULL);
    CHECK_EQ(err.st, 413);
    CHECK_HAS(err.msg, "rules");
    /* at the limit it compiles */
    ignore_rules_t *r = ignore_compile("", ".gitignore", big, 2 * (rules - 1), &err);
    CHECK(r != NULL);
    if (r) CHECK_EQ(ignore_count(r), IGNORE_RULES_MAX);
    ignore_destroy(&r);
    free(big);
}

/* A pattern that would take exponential time without git's give-ups. */
TEST(no_blowup)
{
    const char *pat = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    ignore_rules_t *r = s_compile("", pat, strlen(pat));
    if (!r) return;
    char path[201];
    memset(path, 'a', 200);
    path[200] = '\0';
    const ignore_rules_t *st[] = {r};
    CHECK(!ignore_path_ignored(st, 1, path, false));
    ignore_destroy(&r);
}

int main(void)
{
    RUN(table);
    RUN(nul_ends_a_line);
    RUN(stack);
    RUN(limits);
    RUN(no_blowup);
    return unit_report();
}
