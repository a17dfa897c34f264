/* Unit tests of the content-addressed blob store (plugins/storage/cas.c):
 * SHA-256 and BLAKE2b-256 known vectors, streaming = one-shot hashing, put
 * and dedup, the on-disk layout (new blobs under sha256/, legacy BLAKE2b
 * blobs read, verified and removed under cas/), reads at offsets, verify and corruption
 * detection, aborts and the temp sweep, sidecars and resuming a writer after a restart
 * — each through io_uring (when the kernel allows it) and through the pread/pwrite
 * fallback; and O_DIRECT writes (sizes and chunks around the 4096-byte
 * alignment, resumes at unaligned offsets) on a disk directory, on tmpfs
 * when there is one, and with O_DIRECT turned off. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cas.h"
#include "unit.h"

static char s_dir[256];
static bool s_uring;

static int s_rm(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    chmod(p, 0700);
    return remove(p);
}

static void s_rmrf(const char *p)
{
    nftw(p, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static cas_t *s_open_fresh(void)
{
    cairn_err_t err = {0};
    char root[300];
    s_rmrf(s_dir);
    mkdir(s_dir, 0700);
    snprintf(root, sizeof root, "%s/art/nested", s_dir); /* created, parents too */
    cas_t *c = cas_open(root, s_uring, &err);
    if (!CHECK(c != NULL)) fprintf(stderr, "     %s\n", err.msg);
    return c;
}

static int s_count_files(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1) n = -1;
        pclose(f);
    }
    return n;
}

static unsigned char *s_pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    uint64_t x = 0x9e3779b97f4a7c15ULL * (seed + 1);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
    return p;
}

TEST(vectors)
{
    char hex[CAS_HEX_LEN + 1];
    cas_hash_buf(CAIRN_CHASH_BLAKE2B, "", 0, hex);
    CHECK_STR(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    cas_hash_buf(CAIRN_CHASH_BLAKE2B, "abc", 3, hex);
    CHECK_STR(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    cas_hash_buf(CAIRN_CHASH_SHA256, "", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cas_hash_buf(CAIRN_CHASH_SHA256, "abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(cas_hex_valid(hex, strlen(hex)));
    /* the names replies and the index carry */
    cairn_chash_alg_t alg = CAIRN_CHASH_BLAKE2B;
    CHECK_STR(cairn_chash_name(CAIRN_CHASH_SHA256), "sha256");
    CHECK_STR(cairn_chash_name(CAIRN_CHASH_BLAKE2B), "blake2b");
    CHECK(cairn_chash_parse("sha256", 6, &alg) && alg == CAIRN_CHASH_SHA256);
    CHECK(cairn_chash_parse("blake2b", 7, &alg) && alg == CAIRN_CHASH_BLAKE2B);
    CHECK(!cairn_chash_parse("sha25", 5, &alg));
    CHECK(!cairn_chash_parse("sha2566", 7, &alg));
    CHECK(!cairn_chash_parse("SHA256", 6, &alg));
    CHECK(!cairn_chash_parse(NULL, 0, &alg));
    CHECK(!cas_hex_valid("abc", 3));
    CHECK(!cas_hex_valid(
        "0E5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8", 64));
    CHECK(!cas_hex_valid(
        "../../../../etc/passwd/../../../../../../../../../../../../../..x", 64));
}

TEST(put_layout_dedup)
{
    cas_t *c = s_open_fresh();
    if (!c) return;
    cairn_err_t err = {0};
    char hex[CAS_HEX_LEN + 1], hex2[CAS_HEX_LEN + 1], path[512];
    bool dedup = true;
    CHECK_EQ(cas_put(c, "a1", "abc", 3, hex, &dedup, &err), 0);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(!dedup);
    snprintf(path, sizeof path, "%s/sha256/ba/%s", cas_root(c), hex + 2);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size == 3);
    CHECK((sb.st_mode & 0222) == 0); /* blobs are read-only */
    char want[512];
    CHECK_EQ(cas_blob_path(c, CAIRN_CHASH_SHA256, hex, want, sizeof want), 0);
    CHECK_STR(want, path);
    CHECK_EQ(cas_blob_path(c, CAIRN_CHASH_SHA256, "nothex", want, sizeof want), -1);
    /* the same bytes again: one blob, the temp file dropped */
    CHECK_EQ(cas_put(c, "a2", "abc", 3, hex2, &dedup, &err), 0);
    CHECK_STR(hex2, hex);
    CHECK(dedup);
    snprintf(path, sizeof path, "%s/sha256", cas_root(c));
    CHECK_EQ(s_count_files(path), 1);
    snprintf(path, sizeof path, "%s/cas", cas_root(c));
    CHECK_EQ(s_count_files(path), 0);
    snprintf(path, sizeof path, "%s/tmp", cas_root(c));
    CHECK_EQ(s_count_files(path), 0);
    /* empty blob */
    CHECK_EQ(cas_put(c, "a3", "", 0, hex2, &dedup, &err), 0);
    CHECK_STR(hex2, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    bool ok = false;
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, hex2, &ok, NULL, &err), 0);
    CHECK(ok);
    cas_destroy(&c);
    cas_destroy(&c); /* safe twice */
    CHECK(c == NULL);
}

TEST(streaming_matches_one_shot)
{
    cas_t *c = s_open_fresh();
    if (!c) return;
    cairn_err_t err = {0};
    size_t n = (3u << 20) + 12345;
    unsigned char *p = s_pattern(n, 7);
    char one[CAS_HEX_LEN + 1], streamed[CAS_HEX_LEN + 1];
    cas_hash_buf(CAS_ALG_NEW, p, n, one);
    cas_writer_t *w = cas_writer_new(c, "up-1", &err);
    CHECK(w != NULL);
    if (!w) return;
    /* uneven chunk sizes, including an empty one */
    size_t sizes[] = {1, 0, 4095, 1u << 20, 77, 1u << 20};
    size_t off = 0;
    for (size_t i = 0; off < n; i = (i + 1) % 6) {
        size_t k = sizes[i] < n - off ? sizes[i] : n - off;
        CHECK_EQ(cas_writer_write(w, p + off, k, &err), 0);
        off += k;
        CHECK_UEQ(cas_writer_size(w), off);
    }
    uint64_t size = 0;
    bool dedup = true;
    CHECK_EQ(cas_writer_commit(&w, streamed, &size, &dedup, &err), 0);
    CHECK(w == NULL);
    CHECK_STR(streamed, one);
    CHECK_UEQ(size, n);
    CHECK(!dedup);
    /* read back at offsets, across the end */
    int fd = -1;
    uint64_t bsize = 0;
    CHECK_EQ(cas_open_blob(c, CAIRN_CHASH_SHA256, one, &fd, &bsize, &err), 0);
    CHECK_UEQ(bsize, n);
    unsigned char *buf = malloc(1u << 20);
    size_t got = 0;
    CHECK_EQ(cas_pread(c, fd, buf, 1u << 20, 12345, &got, &err), 0);
    CHECK_UEQ(got, 1u << 20);
    CHECK(memcmp(buf, p + 12345, got) == 0);
    CHECK_EQ(cas_pread(c, fd, buf, 1u << 20, n - 10, &got, &err), 0);
    CHECK_UEQ(got, 10);
    CHECK(memcmp(buf, p + n - 10, 10) == 0);
    CHECK_EQ(cas_pread(c, fd, buf, 100, n, &got, &err), 0);
    CHECK_UEQ(got, 0);
    close(fd);
    free(buf);
    bool ok = false;
    char actual[CAS_HEX_LEN + 1];
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, one, &ok, actual, &err), 0);
    CHECK(ok);
    CHECK_STR(actual, one);
    free(p);
    cas_destroy(&c);
}

TEST(corruption_detected)
{
    cas_t *c = s_open_fresh();
    if (!c) return;
    cairn_err_t err = {0};
    size_t n = 100000;
    unsigned char *p = s_pattern(n, 3);
    char hex[CAS_HEX_LEN + 1], actual[CAS_HEX_LEN + 1], path[512];
    CHECK_EQ(cas_put(c, "c1", p, n, hex, NULL, &err), 0);
    CHECK_EQ(cas_blob_path(c, CAIRN_CHASH_SHA256, hex, path, sizeof path), 0);
    /* flip one byte in the middle */
    chmod(path, 0600);
    int fd = open(path, O_WRONLY);
    unsigned char x = p[n / 2] ^ 0x40;
    CHECK(fd >= 0 && pwrite(fd, &x, 1, n / 2) == 1);
    close(fd);
    bool ok = true;
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, hex, &ok, actual, &err), 0);
    CHECK(!ok);
    CHECK(strcmp(actual, hex) != 0);
    /* a blob of the wrong size is replaced by the next put of its bytes */
    CHECK(truncate(path, 10) == 0);
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, hex, &ok, NULL, &err), 0);
    CHECK(!ok);
    bool dedup = true;
    CHECK_EQ(cas_put(c, "c2", p, n, actual, &dedup, &err), 0);
    CHECK(!dedup);
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, hex, &ok, NULL, &err), 0);
    CHECK(ok);
    /* a missing blob is a 404 */
    unlink(path);
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, hex, &ok, NULL, &err), -1);
    CHECK_EQ(err.st, 404);
    int bfd;
    uint64_t bs;
    CHECK_EQ(cas_open_blob(c, CAIRN_CHASH_SHA256, "zz", &bfd, &bs, &err), -1);
    CHECK_EQ(err.st, 500);
    free(p);
    cas_destroy(&c);
}

/* A blob stored before SHA-256: named by its BLAKE2b under cas/, where it
 * is opened, verified (with BLAKE2b) and removed; the same bytes put now
 * are a SHA-256 blob beside it, and neither name reaches the other. */
TEST(legacy_blake2b_blob)
{
    cas_t *c = s_open_fresh();
    if (!c) return;
    cairn_err_t err = {0};
    char b2[CAS_HEX_LEN + 1], s2[CAS_HEX_LEN + 1], path[512];
    cas_hash_buf(CAIRN_CHASH_BLAKE2B, "abc", 3, b2);
    snprintf(path, sizeof path, "%s/cas/%.2s", cas_root(c), b2);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/cas/%.2s/%s", cas_root(c), b2, b2 + 2);
    FILE *f = fopen(path, "w");
    CHECK(f && fwrite("abc", 1, 3, f) == 3);
    if (f) fclose(f);
    char want[512];
    CHECK_EQ(cas_blob_path(c, CAIRN_CHASH_BLAKE2B, b2, want, sizeof want), 0);
    CHECK_STR(want, path);
    int fd = -1;
    uint64_t size = 0;
    CHECK_EQ(cas_open_blob(c, CAIRN_CHASH_BLAKE2B, b2, &fd, &size, &err), 0);
    CHECK_UEQ(size, 3);
    if (fd >= 0) close(fd);
    bool ok = false, dedup = true;
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_BLAKE2B, b2, &ok, NULL, &err), 0);
    CHECK(ok);
    /* the BLAKE2b name is not a SHA-256 blob */
    CHECK_EQ(cas_open_blob(c, CAIRN_CHASH_SHA256, b2, &fd, &size, &err), -1);
    CHECK_EQ(err.st, 404);
    /* the same bytes now: a new SHA-256 blob, not a dedup with the old one */
    cas_writer_t *w = cas_writer_new(c, "l1", &err);
    CHECK(w && cas_writer_alg(w) == CAIRN_CHASH_SHA256);
    if (!w) goto out;
    CHECK_EQ(cas_writer_write(w, "abc", 3, &err), 0);
    CHECK_EQ(cas_writer_commit(&w, s2, NULL, &dedup, &err), 0);
    CHECK(!dedup);
    CHECK(strcmp(s2, b2) != 0);
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, s2, &ok, NULL, &err), 0);
    CHECK(ok);
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_BLAKE2B, s2, &ok, NULL, &err), -1);
    /* each is removed under its own name only */
    uint64_t freed = 9;
    CHECK_EQ(cas_remove(c, CAIRN_CHASH_SHA256, b2, &freed, &err), 0);
    CHECK_UEQ(freed, 0);
    CHECK_EQ(cas_remove(c, CAIRN_CHASH_BLAKE2B, b2, &freed, &err), 0);
    CHECK_UEQ(freed, 3);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, s2, &ok, NULL, &err), 0);
    CHECK(ok);
out:
    cas_destroy(&c);
}

TEST(abort_and_sweep)
{
    cas_t *c = s_open_fresh();
    if (!c) return;
    cairn_err_t err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/tmp", cas_root(c));
    cas_writer_t *w = cas_writer_new(c, "ab-1", &err);
    CHECK(w != NULL);
    CHECK_EQ(cas_writer_write(w, "hello", 5, &err), 0);
    CHECK_EQ(s_count_files(path), 1);
    /* the same name twice is refused */
    CHECK(cas_writer_new(c, "ab-1", &err) == NULL);
    CHECK_EQ(err.st, 409);
    cas_writer_abort(&w);
    CHECK(w == NULL);
    cas_writer_abort(&w); /* safe twice */
    CHECK_EQ(s_count_files(path), 0);
    /* names that could escape tmp/ are refused */
    CHECK(cas_writer_new(c, "../x", &err) == NULL);
    CHECK_EQ(err.st, 400);
    CHECK(cas_writer_new(c, "", &err) == NULL);
    /* a file a writer holds is never swept */
    w = cas_writer_new(c, "left-over", &err);
    CHECK(w != NULL);
    CHECK_EQ(cas_sweep_tmp(c, 0), 0);
    CHECK_EQ(s_count_files(path), 1);
    /* released without a sidecar (a crash): no one can resume it */
    cas_writer_release(&w);
    CHECK(w == NULL);
    cas_writer_release(&w); /* safe twice */
    CHECK_EQ(s_count_files(path), 1);
    CHECK_EQ(cas_sweep_tmp(c, 3600), 1);
    CHECK_EQ(s_count_files(path), 0);
    cas_destroy(&c);
}

/* Set a file's mtime age_s seconds back. */
static void s_age(const cas_t *c, const char *leaf, int age_s)
{
    char path[512];
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= age_s;
    tv[1] = tv[0];
    snprintf(path, sizeof path, "%s/tmp/%s", cas_root(c), leaf);
    CHECK_EQ(utimes(path, tv), 0);
}

static void s_touch(const cas_t *c, const char *leaf)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tmp/%s", cas_root(c), leaf);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) fclose(f);
}

static bool s_tmp_has(const cas_t *c, const char *leaf)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tmp/%s", cas_root(c), leaf);
    return access(path, F_OK) == 0;
}

/* Resuming after a restart: cut to the acknowledged length, rehash in
 * slices, go on; the result is the one-shot hash. */
TEST(resume_rehash)
{
    cas_t *c = s_open_fresh();
    if (!c) return;
    cairn_err_t err = {0};
    size_t n = (3u << 20) + 777, upto = (2u << 20) + 5;
    unsigned char *p = s_pattern(n, 11), junk[100];
    memset(junk, 0xee, sizeof junk);
    char one[CAS_HEX_LEN + 1], got[CAS_HEX_LEN + 1], meta[64], tmp[512];
    snprintf(tmp, sizeof tmp, "%s/tmp", cas_root(c));
    cas_hash_buf(CAS_ALG_NEW, p, n, one);
    cas_writer_t *w = cas_writer_new(c, "rs-1", &err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK_EQ(cas_writer_set_meta(w, "run 7 path a/b", 14, true, &err), 0);
    CHECK_EQ(cas_writer_write(w, p, 4096, &err), 0);
    CHECK_EQ(cas_writer_write(w, p + 4096, upto - 4096, &err), 0);
    CHECK_EQ(cas_writer_sync(w, &err), 0);
    /* a write past the last acknowledged chunk, then the crash */
    CHECK_EQ(cas_writer_write(w, junk, sizeof junk, &err), 0);
    cas_writer_release(&w);
    CHECK_EQ(s_count_files(tmp), 2);
    size_t len = 0;
    int64_t mtime = 0;
    CHECK_EQ(cas_meta_read(c, "rs-1", meta, sizeof meta, &len, &mtime, &err), 0);
    CHECK_SLICE(meta, len, "run 7 path a/b");
    CHECK(mtime > 0);
    CHECK_EQ(cas_meta_read(c, "rs-1", meta, 4, &len, NULL, &err), -1);
    CHECK_EQ(err.st, 500);
    /* a restart finds both files: the sweep keeps a fresh pair */
    CHECK_EQ(cas_sweep_tmp(c, 3600), 0);
    /* more than the file holds: 409, naming its size */
    uint64_t have = 0;
    CHECK(cas_writer_resume(c, "rs-1", upto + sizeof junk + 1, &have, &err) == NULL);
    CHECK_EQ(err.st, 409);
    CHECK_UEQ(have, upto + sizeof junk);
    w = cas_writer_resume(c, "rs-1", upto, &have, &err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK_UEQ(have, upto + sizeof junk);
    CHECK_UEQ(cas_writer_size(w), upto);
    /* held: neither a second resume nor the sweep takes it */
    CHECK(cas_writer_resume(c, "rs-1", 0, NULL, &err) == NULL);
    CHECK_EQ(err.st, 503);
    CHECK_EQ(cas_sweep_tmp(c, 0), 0);
    CHECK_EQ(cas_tmp_remove(c, "rs-1"), 0);
    /* no write before the rehash; the rehash goes in slices */
    CHECK_EQ(cas_writer_write(w, p + upto, 1, &err), -1);
    uint64_t left = 1;
    int steps = 0;
    while (left) {
        CHECK_EQ(cas_writer_rehash(w, 1u << 20, &left, &err), 0);
        if (++steps > 10) break;
    }
    CHECK_EQ(steps, 3);
    CHECK_EQ(cas_writer_rehash(w, 0, &left, &err), 0); /* done: a no-op */
    CHECK_UEQ(left, 0);
    CHECK_EQ(cas_writer_write(w, p + upto, n - upto, &err), 0);
    uint64_t size = 0;
    bool dedup = true;
    CHECK_EQ(cas_writer_commit(&w, got, &size, &dedup, &err), 0);
    CHECK_STR(got, one);
    CHECK_UEQ(size, n);
    CHECK(!dedup);
    CHECK_EQ(s_count_files(tmp), 0); /* the sidecar went with the commit */
    bool ok = false;
    CHECK_EQ(cas_verify(c, CAIRN_CHASH_SHA256, one, &ok, NULL, &err), 0);
    CHECK(ok);

    /* back to an earlier offset (a chunk sent again), rehashed in one go */
    w = cas_writer_new(c, "rs-2", &err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK_EQ(cas_writer_set_meta(w, "x", 1, false, &err), 0);
    CHECK_EQ(cas_writer_write(w, p, n, &err), 0);
    cas_writer_release(&w);
    w = cas_writer_resume(c, "rs-2", 1000, NULL, &err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK_EQ(cas_writer_commit(&w, got, NULL, NULL, &err), -1); /* not rehashed */
    CHECK(w == NULL);
    CHECK_EQ(s_count_files(tmp), 2); /* released, not dropped */
    w = cas_writer_resume(c, "rs-2", 1000, NULL, &err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK_EQ(cas_writer_rehash(w, 0, &left, &err), 0);
    CHECK_UEQ(left, 0);
    CHECK_EQ(cas_writer_write(w, p + 1000, n - 1000, &err), 0);
    CHECK_EQ(cas_writer_commit(&w, got, NULL, &dedup, &err), 0);
    CHECK_STR(got, one);
    CHECK(dedup);
    CHECK_EQ(s_count_files(tmp), 0);

    /* an empty prefix; abort drops both files */
    w = cas_writer_new(c, "rs-3", &err);
    CHECK(w != NULL);
    if (!w) return;
    CHECK_EQ(cas_writer_set_meta(w, "y", 1, false, &err), 0);
    cas_writer_release(&w);
    w = cas_writer_resume(c, "rs-3", 0, NULL, &err);
    CHECK(w != NULL);
    CHECK_EQ(cas_writer_rehash(w, 1, &left, &err), 0);
    CHECK_UEQ(left, 0);
    cas_writer_abort(&w);
    CHECK_EQ(s_count_files(tmp), 0);

    /* missing */
    CHECK(cas_writer_resume(c, "nope", 0, NULL, &err) == NULL);
    CHECK_EQ(err.st, 404);
    CHECK_EQ(cas_meta_read(c, "nope", meta, sizeof meta, &len, NULL, &err), -1);
    CHECK_EQ(err.st, 404);
    CHECK_EQ(cas_meta_read(c, "../x", meta, sizeof meta, &len, NULL, &err), -1);
    CHECK_EQ(err.st, 404);
    free(p);
    cas_destroy(&c);
}

/* The sweep: fresh pairs stay, stale pairs and orphans go, held files
 * stay. */
static void s_count_name(void *arg, const char *name)
{
    (void)name;
    (*(int *)arg)++;
}

/* digest ahead of commit; keep_meta leaves the sidecar to its owner, and
 * cas_meta_alone finds it once the temp file is gone. */
TEST(digest_and_kept_sidecar)
{
    cas_t *c = s_open_fresh();
    if (!c) return;
    cairn_err_t err = {0};
    char want[CAS_HEX_LEN + 1], got[CAS_HEX_LEN + 1], hex[CAS_HEX_LEN + 1];
    cas_hash_buf(CAS_ALG_NEW, "hello world", 11, want);
    cas_writer_t *w = cas_writer_new(c, "up-1", &err);
    CHECK(w != NULL);
    if (!w) goto out;
    CHECK(cas_writer_write(w, "hello ", 6, &err) == 0);
    CHECK(cas_writer_write(w, "world", 5, &err) == 0);
    CHECK(cas_writer_set_meta(w, "m", 1, false, &err) == 0);
    CHECK(cas_writer_digest(w, got, &err) == 0);
    CHECK_STR(got, want);
    CHECK(cas_writer_write(w, "!", 1, &err) != 0); /* final: no more writes */
    cas_writer_keep_meta(w);
    int alone = 0;
    CHECK(cas_meta_alone(c, s_count_name, &alone) == 0); /* temp file still there */
    CHECK(cas_writer_commit(&w, hex, NULL, NULL, &err) == 0);
    CHECK_STR(hex, want);
    char buf[16];
    size_t len = 0;
    int64_t mtime = -1;
    CHECK(cas_meta_read(c, "up-1", buf, sizeof buf, &len, &mtime, &err) == 0);
    CHECK(len == 1 && mtime == 0); /* kept, its temp file gone */
    CHECK(cas_meta_alone(c, s_count_name, &alone) == 1 && alone == 1);
    CHECK(cas_tmp_remove(c, "up-1") == 1);
    alone = 0;
    CHECK(cas_meta_alone(c, s_count_name, &alone) == 0 && alone == 0);
out:
    cas_destroy(&c);
}

TEST(sweep_pairs)
{
    cas_t *c = s_open_fresh();
    if (!c) return;
    cairn_err_t err = {0};
    const char *names[] = {"fresh", "old", "orphan"};
    for (int i = 0; i < 3; i++) {
        cas_writer_t *w = cas_writer_new(c, names[i], &err);
        CHECK(w != NULL);
        if (!w) return;
        CHECK_EQ(cas_writer_write(w, "abc", 3, &err), 0);
        if (i < 2) CHECK_EQ(cas_writer_set_meta(w, "m", 1, false, &err), 0);
        cas_writer_release(&w);
    }
    s_age(c, "old", 7200);
    s_age(c, "fresh.meta", 7200); /* the temp file's age counts */
    s_touch(c, "ghost.meta");     /* a sidecar without its temp file */
    s_touch(c, "x.txt");          /* not ours, young */
    cas_writer_t *held = cas_writer_new(c, "held", &err);
    CHECK(held != NULL);
    CHECK_EQ(cas_sweep_tmp(c, 3600), 4); /* old + old.meta + orphan + ghost.meta */
    CHECK(s_tmp_has(c, "fresh") && s_tmp_has(c, "fresh.meta"));
    CHECK(!s_tmp_has(c, "old") && !s_tmp_has(c, "old.meta"));
    CHECK(!s_tmp_has(c, "orphan") && !s_tmp_has(c, "ghost.meta"));
    CHECK(s_tmp_has(c, "held") && s_tmp_has(c, "x.txt"));
    CHECK_EQ(cas_sweep_tmp(c, 0), 3); /* fresh + fresh.meta + x.txt */
    CHECK(s_tmp_has(c, "held"));
    CHECK_EQ(cas_tmp_remove(c, "held"), 0);
    cas_writer_abort(&held);
    CHECK(!s_tmp_has(c, "held"));
    cas_destroy(&c);
}

/* ---- O_DIRECT writes ------------------------------------------------------ */

#define MiB (1u << 20)

/* Whether a file in dir takes an aligned O_DIRECT write (what the writers
 * will find there). */
static bool s_dir_direct(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/probe-direct", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0600);
    bool ok = fd >= 0;
    void *b = NULL;
    if (ok && posix_memalign(&b, 4096, 4096) == 0) {
        memset(b, 0, 4096);
        ok = pwrite(fd, b, 4096, 0) == 4096;
    }
    free(b);
    if (fd >= 0) close(fd);
    unlink(path);
    return ok;
}

/* A fresh store under dir with O_DIRECT on or off. */
static cas_t *s_open_in(const char *dir, bool direct)
{
    cairn_err_t err = {0};
    char root[300];
    s_rmrf(dir);
    mkdir(dir, 0700);
    snprintf(root, sizeof root, "%s/art", dir);
    cas_t *c = cas_open(root, s_uring, &err);
    if (!CHECK(c != NULL)) fprintf(stderr, "     %s\n", err.msg);
    if (c) cas_set_direct(c, direct);
    return c;
}

/* The temp file name holds exactly p[0, n): its size, and its last bytes
 * (those a staging buffer holds). */
static bool s_tmp_holds(const cas_t *c, const char *name, const unsigned char *p,
                        size_t n)
{
    char path[512];
    unsigned char tail[3 * 4096];
    snprintf(path, sizeof path, "%s/tmp/%s", cas_root(c), name);
    struct stat sb;
    if (stat(path, &sb) != 0 || (size_t)sb.st_size != n) return false;
    size_t k = n < sizeof tail ? n : sizeof tail;
    int fd = open(path, O_RDONLY);
    bool ok = fd >= 0 && pread(fd, tail, k, (off_t)(n - k)) == (ssize_t)k &&
              memcmp(tail, p + n - k, k) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* The blob hex holds exactly p[0, n). */
static bool s_blob_holds(cas_t *c, const char *hex, const unsigned char *p, size_t n)
{
    cairn_err_t err = {0};
    int fd = -1;
    uint64_t size = 0;
    if (cas_open_blob(c, CAS_ALG_NEW, hex, &fd, &size, &err) != 0) return false;
    unsigned char *buf = malloc(n ? n : 1);
    size_t got = 0;
    bool ok = buf && size == n && cas_pread(c, fd, buf, n, 0, &got, &err) == 0 &&
              got == n && memcmp(buf, p, n) == 0;
    free(buf);
    close(fd);
    return ok;
}

/* Write p in the chunks lens[0..k) through writer w (named name), checking
 * after each that the temp file holds all that was written; then commit
 * and check the hash, the size and the bytes. */
static void s_chunks_commit(cas_t *c, cas_writer_t *w, const char *name,
                            const unsigned char *p, size_t from, const size_t *lens,
                            int k, bool want_direct)
{
    cairn_err_t err = {0};
    size_t off = from;
    for (int i = 0; i < k; i++) {
        int rc = cas_writer_write(w, p + off, lens[i], &err);
        if (!CHECK(rc == 0)) fprintf(stderr, "     %s\n", err.msg);
        off += lens[i];
        CHECK_UEQ(cas_writer_size(w), off);
        if (!CHECK(s_tmp_holds(c, name, p, off)))
            fprintf(stderr, "     after %zu bytes (chunk %d)\n", off, i);
    }
    CHECK_EQ(cas_writer_direct(w), want_direct);
    char one[CAS_HEX_LEN + 1], got[CAS_HEX_LEN + 1];
    cas_hash_buf(CAS_ALG_NEW, p, off, one);
    uint64_t size = 0;
    CHECK_EQ(cas_writer_commit(&w, got, &size, NULL, &err), 0);
    CHECK_STR(got, one);
    CHECK_UEQ(size, off);
    CHECK(s_blob_holds(c, one, p, off));
}

/* One store: single writes of sizes around the alignment, odd chunks after
 * a large first one (the staging buffer is then 1 MiB + 4 KiB, so the 8 MiB
 * ones go in pieces), and resumes at an unaligned and an aligned offset. */
static void s_direct_cases(const char *dir, bool direct)
{
    cas_t *c = s_open_in(dir, direct);
    if (!c) return;
    bool can = direct && s_dir_direct(dir);
    printf("  %s, O_DIRECT %s%s\n", dir, direct ? "on" : "off",
           direct && !can ? " (refused here)" : "");
    cairn_err_t err = {0};
    size_t big = 8 * MiB + 4 * MiB + 64 * 1024;
    unsigned char *p = s_pattern(big, 23);
    const size_t singles[] = {0,       1,   4095,        4096,    4097,
                              MiB - 1, MiB, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1};
    char name[32];
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++) {
        snprintf(name, sizeof name, "s-%zu", i);
        p[0] = (unsigned char)i; /* no two the same blob (dedup) */
        cas_writer_t *w = cas_writer_new(c, name, &err);
        if (!CHECK(w != NULL)) continue;
        s_chunks_commit(c, w, name, p, 0, &singles[i], 1, can && singles[i] >= MiB);
    }
    const size_t odd[] = {MiB,  1,           4095,        0, 4097,
                          4096, 3 * MiB + 5, 8 * MiB + 1, 7, 4089};
    p[0] = 0xa5;
    cas_writer_t *w = cas_writer_new(c, "odd", &err);
    if (CHECK(w != NULL))
        s_chunks_commit(c, w, "odd", p, 0, odd, sizeof odd / sizeof odd[0], can);
    /* an unaligned first chunk stays buffered */
    const size_t late[] = {4097, 2 * MiB, 3};
    p[0] = 0x5a;
    w = cas_writer_new(c, "late", &err);
    if (CHECK(w != NULL)) s_chunks_commit(c, w, "late", p, 0, late, 3, false);
    /* resumes: at an unaligned offset (buffered from there) and at an
     * aligned one (direct again) */
    const size_t first[] = {MiB, 3 * MiB + 5}, rest[] = {MiB + 7, 2 * MiB, 1};
    const uint64_t uptos[] = {2 * MiB + 123, 2 * MiB};
    for (int i = 0; i < 2; i++) {
        p[0] = (unsigned char)(0x70 + i);
        snprintf(name, sizeof name, "rs-%d", i);
        w = cas_writer_new(c, name, &err);
        if (!CHECK(w != NULL)) continue;
        CHECK_EQ(cas_writer_set_meta(w, "m", 1, false, &err), 0);
        CHECK_EQ(cas_writer_write(w, p, first[0], &err), 0);
        CHECK_EQ(cas_writer_write(w, p + first[0], first[1], &err), 0);
        CHECK_EQ(cas_writer_direct(w), can);
        cas_writer_release(&w); /* the tail is on file: no flush needed */
        CHECK(s_tmp_holds(c, name, p, first[0] + first[1]));
        w = cas_writer_resume(c, name, uptos[i], NULL, &err);
        if (!CHECK(w != NULL)) continue;
        uint64_t left = 1;
        CHECK_EQ(cas_writer_rehash(w, 0, &left, &err), 0);
        CHECK_UEQ(left, 0);
        s_chunks_commit(c, w, name, p, uptos[i], rest, 3, can && i == 1);
    }
    free(p);
    cas_destroy(&c);
    s_rmrf(dir);
}

TEST(direct_writes)
{
    char dir[300];
    snprintf(dir, sizeof dir, "/var/tmp/cairn-test-cas-%d", (int)getpid());
    s_direct_cases(dir, true);
    s_direct_cases(dir, false);
    struct stat sb;
    if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(dir, sizeof dir, "/dev/shm/cairn-test-cas-%d", (int)getpid());
        s_direct_cases(dir, true);
    }
}

static void s_all(void)
{
    RUN(vectors);
    RUN(put_layout_dedup);
    RUN(streaming_matches_one_shot);
    RUN(corruption_detected);
    RUN(legacy_blake2b_blob);
    RUN(abort_and_sweep);
    RUN(resume_rehash);
    RUN(sweep_pairs);
    RUN(digest_and_kept_sidecar);
    RUN(direct_writes);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/cairn-test-cas-%d", (int)getpid());
    cairn_err_t err = {0};
    s_uring = true;
    cas_t *probe = s_open_fresh();
    if (probe) {
        printf("io_uring: %s%s%s\n", cas_io_mode(probe),
               *cas_io_reason(probe) ? " — " : "", cas_io_reason(probe));
        cas_destroy(&probe);
    }
    (void)err;
    s_all(); /* io_uring (or its fallback when the kernel refuses it) */
    s_uring = false;
    printf("pread/pwrite:\n");
    s_all();
    s_rmrf(s_dir);
    return unit_report();
}
