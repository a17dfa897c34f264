/* A job's code snapshot (snapshot.h): the walk, the copy, the manifest
 * and the git facts.
 *
 * The walk holds a directory descriptor per level and opens each name
 * relative to it (openat, O_NOFOLLOW), so that no path is ever resolved
 * from the root again: a name swapped for a symlink during the walk is
 * refused by the kernel rather than followed, and paths of any length are
 * only ever one name long to the kernel. Each file is hashed while it is
 * copied (read, hash, write): one read of the source, where copy_file_range
 * would need a second one to hash. */
#define _GNU_SOURCE
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ignore.h"
#include "sha256.h"

#define COPY_BUF (256 * 1024)

typedef struct entry {
    snapshot_file_t pub;
    char *mem; /* the path, its hex digest and a link's target, one block */
} entry_t;

struct snapshot {
    entry_t *files;
    size_t n, cap;
    uint64_t bytes;
    char hash[2 * CAIRN_SHA256_BYTES + 1];
    char *manifest;
    size_t mlen;
};

typedef struct walk {
    snapshot_t *s;
    uint64_t max_files, max_bytes;
    size_t max_path;
    ignore_rules_t **stack; /* the ignore files from the root down */
    size_t nstack, capstack;
    char *path; /* the current directory's relative path */
    size_t plen;
    int depth;
    dev_t dest_dev;
    ino_t dest_ino;
    unsigned char *buf; /* COPY_BUF */
    cairn_err_t *err;
} walk_t;

static void s_hex(const unsigned char *d, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < CAIRN_SHA256_BYTES; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * CAIRN_SHA256_BYTES] = '\0';
}

/* A failure on the source: the user's folder (400) unless the disk failed. */
static int s_src_err(cairn_err_t *err, const char *what, const char *path)
{
    int e = errno;
    bool theirs = e == EACCES || e == EPERM || e == ELOOP || e == ENOENT ||
                  e == ENOTDIR || e == ENAMETOOLONG;
    return cairn_err_set(err, theirs ? CAIRN_ST_BAD_REQUEST : CAIRN_ST_INTERNAL,
                         theirs ? CAIRN_E_BAD_REQUEST : CAIRN_E_STORAGE,
                         "code folder: cannot %s %s: %s", what, path, strerror(e));
}

static int s_dest_err(cairn_err_t *err, const char *what, const char *path)
{
    return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                         "snapshot: cannot %s %s: %s", what, path, strerror(errno));
}

/* ---- the kept files ------------------------------------------------------- */

static int s_add(walk_t *w, const char *path, uint64_t size,
                 const unsigned char *digest, const char *mode, const char *target)
{
    snapshot_t *s = w->s;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        entry_t *nf = realloc(s->files, cap * sizeof *nf);
        if (!nf) return cairn_err_oom(w->err, "listing the snapshot's files");
        s->files = nf;
        s->cap = cap;
    }
    size_t pl = strlen(path), tl = target ? strlen(target) : 0;
    char *mem = malloc(pl + 1 + 2 * CAIRN_SHA256_BYTES + 1 + (target ? tl + 1 : 0));
    if (!mem) return cairn_err_oom(w->err, "listing the snapshot's files");
    memcpy(mem, path, pl + 1);
    s_hex(digest, mem + pl + 1);
    entry_t *e = &s->files[s->n++];
    e->mem = mem;
    e->pub = (snapshot_file_t){.path = mem,
                               .size = size,
                               .sha256 = mem + pl + 1,
                               .mode = mode,
                               .target = NULL};
    if (target) {
        char *t = mem + pl + 1 + 2 * CAIRN_SHA256_BYTES + 1;
        memcpy(t, target, tl + 1);
        e->pub.target = t;
    }
    return 0;
}

/* Room for one more file, and for n more bytes of it. */
static int s_room(walk_t *w, const char *path, uint64_t n, bool new_file)
{
    if (new_file && w->s->n >= w->max_files)
        return cairn_err_set(w->err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "code folder: more than %llu files (the limit); "
                             "%.200s is one too many",
                             (unsigned long long)w->max_files, path);
    if (n > w->max_bytes - w->s->bytes)
        return cairn_err_set(w->err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "code folder: more than %llu bytes (the limit) "
                             "with %.200s",
                             (unsigned long long)w->max_bytes, path);
    w->s->bytes += n;
    return 0;
}

/* ---- copying -------------------------------------------------------------- */

static int s_write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Copy and hash the open file in to out. */
static int s_pump(walk_t *w, int in, int out, const char *path, uint64_t *size,
                  unsigned char *digest)
{
    cairn_sha256_t st;
    cairn_sha256_init(&st);
    *size = 0;
    for (;;) {
        ssize_t k = read(in, w->buf, COPY_BUF);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return s_src_err(w->err, "read", path);
        if (k == 0) break;
        if (s_room(w, path, (uint64_t)k, false) != 0) return -1;
        cairn_sha256_update(&st, w->buf, (size_t)k);
        if (s_write_all(out, w->buf, (size_t)k) != 0)
            return s_dest_err(w->err, "write the copy of", path);
        *size += (uint64_t)k;
    }
    cairn_sha256_final(&st, digest);
    return 0;
}

static int s_copy_file(walk_t *w, int sfd, int dfd, const char *name, const char *path)
{
    int in =
        openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (in < 0) return errno == ENOENT ? 0 : s_src_err(w->err, "open", path);
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) { /* swapped meanwhile */
        close(in);
        return 0;
    }
    if (s_room(w, path, 0, true) != 0) {
        close(in);
        return -1;
    }
    bool exec = (st.st_mode & 0111) != 0;
    int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     exec ? 0700 : 0600);
    if (out < 0) {
        close(in);
        return s_dest_err(w->err, "create the copy of", path);
    }
    uint64_t size;
    unsigned char digest[CAIRN_SHA256_BYTES];
    int rc = s_pump(w, in, out, path, &size, digest);
    close(in);
    if (close(out) != 0 && rc == 0) rc = s_dest_err(w->err, "write the copy of", path);
    if (rc != 0) return -1;
    return s_add(w, path, size, digest, exec ? "0755" : "0644", NULL);
}

/* A link is kept as a link: its target's text hashed, never followed. */
static int s_copy_link(walk_t *w, int sfd, int dfd, const char *name, const char *path)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(sfd, name, target, sizeof target);
    if (n < 0) return errno == ENOENT ? 0 : s_src_err(w->err, "read the link", path);
    if ((size_t)n >= sizeof target) {
        errno = ENAMETOOLONG;
        return s_src_err(w->err, "read the link", path);
    }
    target[n] = '\0';
    if (s_room(w, path, (uint64_t)n, true) != 0) return -1;
    if (symlinkat(target, dfd, name) != 0)
        return s_dest_err(w->err, "create the link", path);
    unsigned char digest[CAIRN_SHA256_BYTES];
    cairn_sha256(digest, target, (size_t)n);
    return s_add(w, path, (uint64_t)n, digest, "link", target);
}

/* ---- ignore files --------------------------------------------------------- */

/* Read name (a regular file, not through a link) under dirfd into a heap
 * buffer of at most max + 1 bytes: 0 read, 1 absent, -1 error. */
static int s_slurp(int dirfd, const char *name, const char *shown, size_t max,
                   char **out, size_t *len, cairn_err_t *err)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP || errno == ENOTDIR
                   ? 1
                   : s_src_err(err, "open", shown);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 1;
    }
    char *buf = malloc(max + 1);
    if (!buf) {
        close(fd);
        return cairn_err_oom(err, "reading an ignore file");
    }
    size_t n = 0;
    while (n < max + 1) {
        ssize_t k = read(fd, buf + n, max + 1 - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            s_src_err(err, "read", shown);
            free(buf);
            close(fd);
            return -1;
        }
        if (k == 0) break;
        n += (size_t)k;
    }
    close(fd);
    *out = buf;
    *len = n;
    return 0;
}

/* Compile dirfd's file name, when there is one, onto the stack; shown
 * names it in sentences (NULL: its path in the folder). */
static int s_push(walk_t *w, int dirfd, const char *name, const char *shown)
{
    char own[PATH_MAX + 32];
    if (!shown) {
        snprintf(own, sizeof own, "%s%s%s", w->path, *w->path ? "/" : "", name);
        shown = own;
    }
    char *text;
    size_t len;
    int rc = s_slurp(dirfd, name, shown, IGNORE_FILE_MAX, &text, &len, w->err);
    if (rc != 0) return rc < 0 ? -1 : 0;
    if (w->nstack == w->capstack) {
        size_t cap = w->capstack ? w->capstack * 2 : 16;
        ignore_rules_t **ns = realloc(w->stack, cap * sizeof *ns);
        if (!ns) {
            free(text);
            return cairn_err_oom(w->err, "reading ignore files");
        }
        w->stack = ns;
        w->capstack = cap;
    }
    ignore_rules_t *r = ignore_compile(w->path, shown, text, len, w->err);
    free(text);
    if (!r) return -1;
    w->stack[w->nstack++] = r;
    return 0;
}

/* An open directory named by a file holding "<key>: <path>" or "<path>"
 * (a worktree's `.git` file, a gitdir's `commondir`), relative to dirfd. */
static int s_open_named(int dirfd, const char *file, const char *key)
{
    char *text;
    size_t len;
    cairn_err_t ignored = {0};
    if (s_slurp(dirfd, file, file, PATH_MAX, &text, &len, &ignored) != 0) return -1;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    text[len] = '\0';
    const char *p = text;
    size_t kl = key ? strlen(key) : 0;
    if (key && (strncmp(p, key, kl) != 0 || p[kl] != ':')) {
        free(text);
        return -1;
    }
    if (key)
        for (p += kl + 1; *p == ' ';) p++;
    int fd = *p ? openat(dirfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(text);
    return fd;
}

/* The repository's info/exclude, when src_dir is a work tree's top: `.git`
 * a directory, or a file naming one (a linked worktree, whose exclude file
 * is in the common directory). */
static int s_info_exclude(walk_t *w, int root)
{
    int gd = openat(root, ".git", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (gd < 0) gd = s_open_named(root, ".git", "gitdir");
    if (gd < 0) return 0;
    int common = s_open_named(gd, "commondir", NULL);
    int base = common >= 0 ? common : gd;
    int info = openat(base, "info", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = info < 0 ? 0 : s_push(w, info, "exclude", ".git/info/exclude");
    if (info >= 0) close(info);
    if (common >= 0) close(common);
    close(gd);
    return rc;
}

/* ---- the walk ------------------------------------------------------------- */

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directory's names but `.`, `..` and `.git`, sorted (so that a limit
 * stops at the same file every time). */
static int s_names(walk_t *w, DIR *d, char ***out, size_t *n)
{
    char **v = NULL;
    size_t cap = 0;
    *n = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strcmp(nm, ".git")) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nv = realloc(v, cap * sizeof *nv);
            if (!nv) goto oom;
            v = nv;
        }
        if (!(v[*n] = strdup(nm))) goto oom;
        (*n)++;
    }
    if (errno) {
        s_src_err(w->err, "list", *w->path ? w->path : ".");
        goto fail;
    }
    if (*n) qsort(v, *n, sizeof *v, s_cmp_names);
    *out = v;
    return 0;
oom:
    cairn_err_oom(w->err, "listing the code folder");
fail:
    for (size_t i = 0; i < *n; i++) free(v[i]);
    free(v);
    return -1;
}

static int s_walk(walk_t *w, int sfd, int dfd);

/* name, a directory of the current one: walked unless it is dest itself;
 * its copy removed again when it kept nothing. */
static int s_enter(walk_t *w, int sfd, int dfd, const char *name, const struct stat *st)
{
    if (st->st_dev == w->dest_dev && st->st_ino == w->dest_ino) return 0;
    if (w->depth >= SNAPSHOT_MAX_DEPTH)
        return cairn_err_set(w->err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                             "code folder: %.200s is more than %d directories deep "
                             "(the limit)",
                             w->path, SNAPSHOT_MAX_DEPTH);
    int cs = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cs < 0) return errno == ENOENT ? 0 : s_src_err(w->err, "open", w->path);
    if (mkdirat(dfd, name, 0700) != 0) {
        close(cs);
        return s_dest_err(w->err, "create", w->path);
    }
    int cd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cd < 0) {
        close(cs);
        return s_dest_err(w->err, "open", w->path);
    }
    size_t before = w->s->n;
    w->depth++;
    int rc = s_walk(w, cs, cd); /* closes cs */
    w->depth--;
    close(cd);
    if (rc == 0 && w->s->n == before) unlinkat(dfd, name, AT_REMOVEDIR);
    return rc;
}

/* One name of the current directory, w->path already extended to it. */
static int s_entry(walk_t *w, int sfd, int dfd, const char *name)
{
    struct stat st;
    if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : s_src_err(w->err, "stat", w->path);
    bool is_dir = S_ISDIR(st.st_mode);
    if (!is_dir && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) return 0;
    const ignore_rules_t *const *stack = (const ignore_rules_t *const *)w->stack;
    if (ignore_stack_verdict(stack, w->nstack, w->path, is_dir) == IGNORE_EXCLUDE)
        return 0;
    if (is_dir) return s_enter(w, sfd, dfd, name, &st);
    if (S_ISLNK(st.st_mode)) return s_copy_link(w, sfd, dfd, name, w->path);
    return s_copy_file(w, sfd, dfd, name, w->path);
}

/* Walk the directory sfd (taken over) into dfd (borrowed), w->path naming
 * it. */
static int s_walk(walk_t *w, int sfd, int dfd)
{
    DIR *d = fdopendir(sfd);
    if (!d) {
        close(sfd);
        return s_src_err(w->err, "list", *w->path ? w->path : ".");
    }
    size_t base = w->plen, pushed = w->nstack;
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    if (s_push(w, sfd, ".gitignore", NULL) != 0 ||
        s_push(w, sfd, ".cairnignore", NULL) != 0 || s_names(w, d, &names, &n) != 0)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t nl = strlen(names[i]), at = base ? base + 1 : 0;
        if (at + nl > w->max_path) {
            rc = cairn_err_set(w->err, CAIRN_ST_TOO_LARGE, CAIRN_E_TOO_LARGE,
                               "code folder: the path of %.200s%s%.100s is longer than "
                               "%zu bytes (the limit)",
                               w->path, base ? "/" : "", names[i], w->max_path);
            break;
        }
        if (base) w->path[base] = '/';
        memcpy(w->path + at, names[i], nl + 1);
        w->plen = at + nl;
        rc = s_entry(w, sfd, dfd, names[i]);
        w->path[base] = '\0';
        w->plen = base;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    while (w->nstack > pushed) ignore_destroy(&w->stack[--w->nstack]);
    closedir(d);
    return rc;
}

/* ---- the manifest --------------------------------------------------------- */

typedef struct text {
    char *p;
    size_t len, cap;
    bool oom;
} text_t;

static void s_put(text_t *t, const char *p, size_t n)
{
    if (t->oom) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1) cap *= 2;
        char *np = realloc(t->p, cap);
        if (!np) {
            t->oom = true;
            return;
        }
        t->p = np;
        t->cap = cap;
    }
    memcpy(t->p + t->len, p, n);
    t->len += n;
    t->p[t->len] = '\0';
}

/* A path on one line: control bytes and `\` escaped, the rest as is. */
static void s_put_path(text_t *t, const char *path)
{
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        char esc[5];
        if (*p == '\\') {
            s_put(t, "\\\\", 2);
        } else if (*p == '\n') {
            s_put(t, "\\n", 2);
        } else if (*p == '\t') {
            s_put(t, "\\t", 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            s_put(t, esc, 4);
        } else {
            s_put(t, (const char *)p, 1);
        }
    }
}

static int s_cmp_files(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->pub.path, ((const entry_t *)b)->pub.path);
}

static int s_finish(snapshot_t *s, cairn_err_t *err)
{
    if (s->n) qsort(s->files, s->n, sizeof *s->files, s_cmp_files);
    text_t t = {0};
    s_put(&t, "cairn-snapshot 1\n", 17);
    for (size_t i = 0; i < s->n; i++) {
        const snapshot_file_t *f = &s->files[i].pub;
        s_put(&t, f->mode, strlen(f->mode));
        s_put(&t, " ", 1);
        s_put(&t, f->sha256, 2 * CAIRN_SHA256_BYTES);
        s_put(&t, " ", 1);
        s_put_path(&t, f->path);
        s_put(&t, "\n", 1);
    }
    if (t.oom) {
        free(t.p);
        return cairn_err_oom(err, "writing the snapshot's manifest");
    }
    s->manifest = t.p;
    s->mlen = t.len;
    unsigned char d[CAIRN_SHA256_BYTES];
    cairn_sha256(d, t.p, t.len);
    s_hex(d, s->hash);
    return 0;
}

/* ---- taking it ------------------------------------------------------------ */

/* dest: made, or found empty; its descriptor. */
static int s_open_dest(const char *dest, cairn_err_t *err)
{
    if (mkdir(dest, 0700) != 0 && errno != EEXIST)
        return s_dest_err(err, "create", dest);
    int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return s_dest_err(err, "open", dest);
    int probe = dup(fd);
    DIR *d = probe < 0 ? NULL : fdopendir(probe);
    if (!d) {
        if (probe >= 0) close(probe);
        close(fd);
        return s_dest_err(err, "list", dest);
    }
    struct dirent *de;
    bool empty = true;
    while (empty && (de = readdir(d)))
        empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
    closedir(d);
    if (!empty) {
        close(fd);
        return cairn_err_set(err, CAIRN_ST_CONFLICT, CAIRN_E_CONFLICT,
                             "snapshot: %s is not empty", dest);
    }
    return fd;
}

static void s_limits(walk_t *w, const snapshot_limits_t *lim)
{
    w->max_files = lim && lim->max_files ? lim->max_files : SNAPSHOT_MAX_FILES;
    w->max_bytes = lim && lim->max_bytes ? lim->max_bytes : SNAPSHOT_MAX_BYTES;
    w->max_path = lim && lim->max_path ? lim->max_path : SNAPSHOT_MAX_PATH;
    if (w->max_path > PATH_MAX - 1) w->max_path = PATH_MAX - 1; /* a name's room */
}

static int s_take(walk_t *w, const char *src, const char *dest)
{
    int root = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return s_src_err(w->err, "open", src);
    int dfd = s_open_dest(dest, w->err);
    if (dfd < 0) {
        close(root);
        return -1;
    }
    struct stat ds, ss;
    if (fstat(dfd, &ds) != 0 || fstat(root, &ss) != 0) {
        close(root);
        close(dfd);
        return s_dest_err(w->err, "stat", dest);
    }
    w->dest_dev = ds.st_dev;
    w->dest_ino = ds.st_ino;
    int rc = 0;
    if (ss.st_dev == ds.st_dev && ss.st_ino == ds.st_ino)
        rc = cairn_err_set(w->err, CAIRN_ST_BAD_REQUEST, CAIRN_E_BAD_REQUEST,
                           "snapshot: %s is the code folder itself", dest);
    if (rc == 0) rc = s_info_exclude(w, root);
    if (rc == 0) {
        rc = s_walk(w, root, dfd); /* takes root */
        root = -1;
    }
    if (root >= 0) close(root);
    close(dfd);
    return rc;
}

int snapshot_take(const char *src_dir, const char *dest_dir,
                  const snapshot_limits_t *limits, snapshot_t **out, cairn_err_t *err)
{
    *out = NULL;
    walk_t w = {.err = err};
    s_limits(&w, limits);
    w.s = calloc(1, sizeof *w.s);
    w.path = calloc(1, w.max_path + 1);
    w.buf = malloc(COPY_BUF);
    int rc = -1;
    if (!w.s || !w.path || !w.buf)
        cairn_err_oom(err, "taking a snapshot");
    else if (s_take(&w, src_dir, dest_dir) == 0)
        rc = s_finish(w.s, err);
    while (w.nstack) ignore_destroy(&w.stack[--w.nstack]);
    free(w.stack);
    free(w.path);
    free(w.buf);
    if (rc == 0)
        *out = w.s;
    else
        snapshot_destroy(&w.s);
    return rc;
}

void snapshot_destroy(snapshot_t **self_p)
{
    if (!self_p || !*self_p) return;
    snapshot_t *s = *self_p;
    for (size_t i = 0; i < s->n; i++) free(s->files[i].mem);
    free(s->files);
    free(s->manifest);
    free(s);
    *self_p = NULL;
}

const char *snapshot_hash(const snapshot_t *s)
{
    return s->hash;
}

size_t snapshot_count(const snapshot_t *s)
{
    return s->n;
}

uint64_t snapshot_total_bytes(const snapshot_t *s)
{
    return s->bytes;
}

const snapshot_file_t *snapshot_file(const snapshot_t *s, size_t i)
{
    return i < s->n ? &s->files[i].pub : NULL;
}

const char *snapshot_manifest(const snapshot_t *s, size_t *len)
{
    if (len) *len = s->mlen;
    return s->manifest;
}

int snapshot_write_manifest(const snapshot_t *s, const char *path, cairn_err_t *err)
{
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_STORAGE,
                             "snapshot: the manifest's path is too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return s_dest_err(err, "create", tmp);
    int rc = s_write_all(fd, (const unsigned char *)s->manifest, s->mlen);
    if (close(fd) != 0) rc = -1;
    if (rc != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return s_dest_err(err, "write", tmp);
    }
    if (rename(tmp, path) != 0) return s_dest_err(err, "rename", tmp);
    return 0;
}

/* ---- git ------------------------------------------------------------------ */

#define GIT_PATH "/usr/bin/git"
#define GIT_OUT_MAX 4096 /* kept of git's output; the rest is read and counted */

extern char **environ;

typedef struct git_run {
    char out[GIT_OUT_MAX + 1];
    size_t kept, total; /* bytes kept in out; bytes git wrote */
    int status;         /* waitpid's */
} git_run_t;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* This process's environment without GIT_* (a GIT_DIR or GIT_WORK_TREE of
 * cairnd's own would point git elsewhere), in C's language. */
static char **s_git_env(void)
{
    size_t n = 0;
    while (environ && environ[n]) n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "GIT_", 4) != 0 &&
            strncmp(environ[i], "LC_ALL=", 7) != 0)
            env[k++] = environ[i];
    env[k] = "LC_ALL=C";
    return env;
}

/* Read the child's stdout until it ends or the deadline passes. */
static bool s_drain(int fd, git_run_t *r, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - s_now_ms();
        if (left <= 0) return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int k = poll(&pfd, 1, (int)left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return k < 0 ? true : false;
        char buf[4096];
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return true;
        size_t room = GIT_OUT_MAX - r->kept,
               take = (size_t)got < room ? (size_t)got : room;
        memcpy(r->out + r->kept, buf, take);
        r->kept += take;
        r->total += (size_t)got;
    }
}

/* Wait for pid until the deadline; on time out kill its process group. */
static bool s_reap(pid_t pid, git_run_t *r, int64_t deadline)
{
    for (;;) {
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        if (w == pid) return true;
        if (w < 0 && errno != EINTR) return true; /* reaped elsewhere */
        if (s_now_ms() >= deadline) break;
        nanosleep(&(struct timespec){.tv_nsec = 5 * 1000 * 1000}, NULL);
    }
    kill(-pid, SIGKILL);
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR) {
    }
    return false;
}

static int s_spawn_actions(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at,
                           int wfd)
{
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGCHLD);
    if (posix_spawn_file_actions_init(fa) != 0) return -1;
    if (posix_spawnattr_init(at) != 0) {
        posix_spawn_file_actions_destroy(fa);
        return -1;
    }
    int rc = 0;
    rc |= posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
    rc |= posix_spawn_file_actions_adddup2(fa, wfd, 1);
    rc |= posix_spawn_file_actions_addopen(fa, 2, "/dev/null", O_WRONLY, 0);
    /* its own process group, so that a time out kills what git started */
    rc |= posix_spawnattr_setflags(
        at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc |= posix_spawnattr_setpgroup(at, 0);
    rc |= posix_spawnattr_setsigmask(at, &none);
    rc |= posix_spawnattr_setsigdefault(at, &dfl);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(fa);
        posix_spawnattr_destroy(at);
        return -1;
    }
    return 0;
}

/* Run git with argv (argv[0] "git"), its stdout into r. 0 ran (r->status
 * says how it ended), 1 no git here, -1 error (a 504 on time out). */
static int s_git(char *const argv[], git_run_t *r, int64_t deadline, cairn_err_t *err)
{
    memset(r, 0, sizeof *r);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "snapshot: cannot make a pipe for git: %s",
                             strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    char **env = s_git_env();
    if (!env || s_spawn_actions(&fa, &at, p[1]) != 0) {
        free(env);
        close(p[0]);
        close(p[1]);
        return cairn_err_oom(err, "starting git");
    }
    pid_t pid;
    int e = posix_spawn(&pid, GIT_PATH, &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    close(p[1]);
    if (e != 0) {
        close(p[0]);
        if (e == ENOENT || e == EACCES) return 1;
        return cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                             "snapshot: cannot start git: %s", strerror(e));
    }
    bool in_time = s_drain(p[0], r, deadline);
    close(p[0]);
    in_time = s_reap(pid, r, in_time ? deadline : 0) && in_time;
    r->out[r->kept] = '\0';
    if (!in_time)
        return cairn_err_set(err, CAIRN_ST_TIMEOUT, CAIRN_E_DEADLINE,
                             "snapshot: git did not answer within %d s (killed)",
                             SNAPSHOT_GIT_TIMEOUT_MS / 1000);
    return 0;
}

static bool s_exited_ok(const git_run_t *r)
{
    return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

/* A commit id: 40 or 64 hex digits, then a newline. */
static bool s_commit_id(const char *s, char out[SNAPSHOT_COMMIT_MAX])
{
    size_t n = strspn(s, "0123456789abcdef");
    if ((n != 40 && n != 64) || (s[n] != '\n' && s[n] != '\0')) return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

int snapshot_git(const char *src_dir, char commit[SNAPSHOT_COMMIT_MAX], bool *dirty,
                 bool *in_repo, cairn_err_t *err)
{
    commit[0] = '\0';
    *dirty = false;
    *in_repo = false;
    int64_t deadline = s_now_ms() + SNAPSHOT_GIT_TIMEOUT_MS;
    char *dir = (char *)src_dir; /* argv's type; git does not write it */
    git_run_t *r = malloc(sizeof *r);
    if (!r) return cairn_err_oom(err, "asking git");
    char *inside[] = {"git", "-C", dir, "rev-parse", "--is-inside-work-tree", NULL};
    int rc = s_git(inside, r, deadline, err);
    if (rc != 0 || !s_exited_ok(r) || strcmp(r->out, "true\n") != 0) {
        free(r);
        return rc < 0 ? -1 : 0; /* no git, or not a work tree */
    }
    *in_repo = true;
    char *head[] = {"git",           "-C", dir, "rev-parse", "--verify", "-q",
                    "HEAD^{commit}", NULL};
    if (s_git(head, r, deadline, err) != 0) goto fail;
    if (s_exited_ok(r) && !s_commit_id(r->out, commit)) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                      "snapshot: git rev-parse HEAD in %s gave no commit id", src_dir);
        goto fail;
    }
    /* no optional locks: asking must not rewrite the index; no fsmonitor:
     * a repository's config must not start a program of its choosing */
    char *status[] = {"git",
                      "--no-optional-locks",
                      "-c",
                      "core.fsmonitor=false",
                      "-C",
                      dir,
                      "status",
                      "--porcelain",
                      "--untracked-files=normal",
                      "--",
                      ".",
                      NULL};
    if (s_git(status, r, deadline, err) != 0) goto fail;
    if (!s_exited_ok(r)) {
        cairn_err_set(err, CAIRN_ST_INTERNAL, CAIRN_E_INTERNAL,
                      "snapshot: git status failed in %s", src_dir);
        goto fail;
    }
    *dirty = r->total > 0;
    free(r);
    return 0;
fail:
    free(r);
    return -1;
}

static int s_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0
                                                                                 : -1;
}

int snapshot_rm_tree(const char *path)
{
    if (access(path, F_OK) != 0) return 0;
    return nftw(path, s_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
