/* Unit tests of the metric journal (plugins/storage/journal.c): records
 * encode and decode exactly (NaN bits, 250-byte keys, 64 points); every
 * truncation and every flipped byte of a record is refused; a file reads
 * back in order across reopenings; a torn or garbage tail is cut and never
 * read as points; replay skips what is applied and sequence numbers go on
 * from there; a seq that does not grow ends the good part; a journal of
 * another database is moved aside untouched; a second opener is refused;
 * a failed write leaves nothing behind; under sync, writes wait for one
 * journal_sync, and a failed sync cuts what it covered. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "unit.h"

#define TAG 0x5eed5eed12345678ull

static char s_dir[256], s_path[300];

static long s_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void s_fresh(void)
{
    unlink(s_path);
    char orphan[340];
    snprintf(orphan, sizeof orphan, "%s.orphaned", s_path);
    unlink(orphan);
}

static journal_t *s_open(uint64_t tag)
{
    cairn_err_t err = {0};
    journal_t *j = journal_open(s_path, tag, false, &err);
    if (!CHECK(j != NULL)) fprintf(stderr, "     %s\n", err.msg);
    return j;
}

/* Point i of record seq: recognisable values. */
static journal_point_t s_point(uint64_t seq, size_t i, char *keybuf)
{
    int n = snprintf(keybuf, 32, "key/%zu", i % 3);
    return (journal_point_t){(double)seq + (double)i / 100.0, (int64_t)(1000 + seq),
                             (int64_t)(seq * 10 + i), keybuf, (size_t)n};
}

static int s_append(journal_t *j, int64_t rid, size_t n, uint64_t *seq)
{
    static char keys[JOURNAL_MAX_POINTS][32];
    journal_point_t pts[JOURNAL_MAX_POINTS];
    uint64_t next = journal_next_seq(j);
    for (size_t i = 0; i < n; i++) pts[i] = s_point(next, i, keys[i]);
    cairn_err_t err = {0};
    int rc = journal_append(j, rid, pts, n, seq, &err);
    if (rc != 0) fprintf(stderr, "     append: %s\n", err.msg);
    return rc;
}

/* What replay handed over, checked against s_point. */
typedef struct seen {
    size_t n;
    uint64_t seqs[64];
    int64_t rids[64];
    int bad;
} seen_t;

static int s_collect(void *arg, const journal_rec_t *rec, cairn_err_t *err)
{
    (void)err;
    seen_t *s = arg;
    if (s->n < 64) {
        s->seqs[s->n] = rec->seq;
        s->rids[s->n] = rec->rid;
    }
    s->n++;
    for (size_t i = 0; i < rec->n; i++) {
        char kb[32];
        journal_point_t want = s_point(rec->seq, i, kb);
        const journal_point_t *p = &rec->pts[i];
        if (p->value != want.value || p->timestamp != want.timestamp ||
            p->step != want.step || p->key_len != want.key_len ||
            memcmp(p->key, want.key, want.key_len) != 0)
            s->bad++;
    }
    return 0;
}

static int s_replay(journal_t *j, uint64_t after, seen_t *seen,
                    journal_replay_info_t *info)
{
    memset(seen, 0, sizeof *seen);
    cairn_err_t err = {0};
    int rc = journal_replay(j, after, s_collect, seen, info, &err);
    if (rc != 0) fprintf(stderr, "     replay: %s\n", err.msg);
    return rc;
}

TEST(encode_decode)
{
    unsigned char buf[JOURNAL_MAX_RECORD];
    char key250[251];
    memset(key250, 'k', 250);
    journal_point_t pts[JOURNAL_MAX_POINTS];
    for (size_t i = 0; i < JOURNAL_MAX_POINTS; i++)
        pts[i] = (journal_point_t){(double)i * -1.5, -(int64_t)i,
                                   INT64_MIN + (int64_t)i, key250, 250};
    pts[1].value = NAN;
    pts[2].value = -INFINITY;
    pts[3].key = "x";
    pts[3].key_len = 1;
    size_t len = journal_encode(7, TAG, -42, pts, JOURNAL_MAX_POINTS, buf, sizeof buf);
    CHECK_UEQ(len, journal_record_size(pts, JOURNAL_MAX_POINTS));
    CHECK(len <= JOURNAL_MAX_RECORD);
    journal_rec_t *rec = malloc(sizeof *rec);
    CHECK_EQ(journal_decode(buf, len, rec), (long)len);
    CHECK_UEQ(rec->seq, 7);
    CHECK_UEQ(rec->tag, TAG);
    CHECK_EQ(rec->rid, -42);
    CHECK_UEQ(rec->n, JOURNAL_MAX_POINTS);
    int same = 1;
    for (size_t i = 0; i < JOURNAL_MAX_POINTS; i++) {
        const journal_point_t *p = &rec->pts[i];
        same &= memcmp(&p->value, &pts[i].value, sizeof p->value) == 0; /* NaN bits */
        same &= p->timestamp == pts[i].timestamp && p->step == pts[i].step;
        same &=
            p->key_len == pts[i].key_len && memcmp(p->key, pts[i].key, p->key_len) == 0;
    }
    CHECK(same);
    /* Followed by more bytes: still just this record. */
    CHECK_EQ(journal_decode(buf, sizeof buf, rec), (long)len);
    /* What encode refuses. */
    CHECK_UEQ(journal_encode(1, TAG, 1, pts, 0, buf, sizeof buf), 0);
    CHECK_UEQ(journal_encode(1, TAG, 1, pts, JOURNAL_MAX_POINTS + 1, buf, sizeof buf),
              0);
    journal_point_t bad = {1, 1, 1, key250, 251};
    CHECK_UEQ(journal_encode(1, TAG, 1, &bad, 1, buf, sizeof buf), 0);
    bad.key_len = 0;
    CHECK_UEQ(journal_encode(1, TAG, 1, &bad, 1, buf, sizeof buf), 0);
    CHECK_UEQ(journal_encode(1, TAG, 1, pts, 1, buf, 100), 0); /* too small */
    free(rec);
}

TEST(every_cut_and_flip_is_refused)
{
    unsigned char buf[512], copy[512];
    journal_point_t pts[3] = {
        {0.5, 10, 1, "loss", 4}, {1.5, 11, 2, "acc", 3}, {NAN, 12, 3, "lr", 2}};
    size_t len = journal_encode(3, TAG, 9, pts, 3, buf, sizeof buf);
    CHECK(len > 0);
    journal_rec_t rec;
    int cut_ok = 1, flip_ok = 1;
    for (size_t k = 0; k < len; k++) cut_ok &= journal_decode(buf, k, &rec) == 0;
    CHECK(cut_ok); /* a torn record is never a record */
    for (size_t k = 0; k < len; k++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, buf, len);
            copy[k] ^= (unsigned char)(1u << bit);
            if (journal_decode(copy, len, &rec) > 0) flip_ok = 0;
        }
    CHECK(flip_ok);
    /* Zeros (a hole after a crash) and a lone magic are no records either. */
    memset(copy, 0, sizeof copy);
    CHECK_EQ(journal_decode(copy, sizeof copy, &rec), -1);
    memcpy(copy, buf, 8);
    CHECK(journal_decode(copy, sizeof copy, &rec) <= 0);
}

TEST(append_and_read_back)
{
    s_fresh();
    journal_t *j = s_open(TAG);
    if (!j) return;
    uint64_t seq = 0;
    CHECK_EQ(s_append(j, 1, 1, &seq), 0);
    CHECK_UEQ(seq, 1);
    CHECK_EQ(s_append(j, 2, 64, &seq), 0);
    CHECK_UEQ(seq, 2);
    CHECK_EQ(s_append(j, 3, 5, &seq), 0);
    CHECK_UEQ(seq, 3);
    CHECK_EQ(s_file_size(s_path), (long)journal_size(j));
    journal_destroy(&j);
    journal_destroy(&j); /* safe twice */
    j = s_open(TAG);
    if (!j) return;
    seen_t seen;
    journal_replay_info_t info;
    CHECK_EQ(s_replay(j, 0, &seen, &info), 0);
    CHECK_UEQ(seen.n, 3);
    CHECK_EQ(seen.bad, 0);
    CHECK_UEQ(seen.seqs[0], 1);
    CHECK_UEQ(seen.seqs[2], 3);
    CHECK_EQ(seen.rids[1], 2);
    CHECK_UEQ(info.records, 3);
    CHECK_UEQ(info.skipped, 0);
    CHECK_UEQ(info.last_seq, 3);
    CHECK_UEQ(info.cut_bytes, 0);
    CHECK(!info.foreign);
    CHECK_UEQ(journal_next_seq(j), 4);
    /* Emptied once applied; sequence numbers go on. */
    cairn_err_t err = {0};
    CHECK_EQ(journal_reset(j, &err), 0);
    CHECK_EQ(s_file_size(s_path), 0);
    CHECK_EQ(s_append(j, 1, 1, &seq), 0);
    CHECK_UEQ(seq, 4);
    journal_destroy(&j);
}

TEST(torn_tail_is_cut)
{
    s_fresh();
    journal_t *j = s_open(TAG);
    if (!j) return;
    uint64_t seq;
    for (int i = 0; i < 3; i++) CHECK_EQ(s_append(j, 7, 2, &seq), 0);
    long full = s_file_size(s_path), two = 0;
    journal_destroy(&j);
    /* Cut the third record at every length: the first two always survive. */
    unsigned char *bytes = malloc((size_t)full);
    int fd = open(s_path, O_RDONLY);
    CHECK(read(fd, bytes, (size_t)full) == full);
    close(fd);
    journal_rec_t rec;
    long r1 = journal_decode(bytes, (size_t)full, &rec);
    long r2 = journal_decode(bytes + r1, (size_t)(full - r1), &rec);
    two = r1 + r2;
    int all_ok = 1;
    for (long cut = two + 1; cut < full; cut++) {
        fd = open(s_path, O_WRONLY | O_TRUNC);
        CHECK(write(fd, bytes, (size_t)cut) == cut);
        close(fd);
        j = s_open(TAG);
        if (!j) break;
        seen_t seen;
        journal_replay_info_t info;
        all_ok &= s_replay(j, 0, &seen, &info) == 0 && seen.n == 2 && seen.bad == 0 &&
                  info.cut_bytes == (uint64_t)(cut - two) &&
                  s_file_size(s_path) == two && journal_next_seq(j) == 3;
        journal_destroy(&j);
    }
    CHECK(all_ok);
    /* After the cut, appends go on where the good records end. */
    j = s_open(TAG);
    if (!j) return;
    seen_t seen;
    journal_replay_info_t info;
    CHECK_EQ(s_replay(j, 0, &seen, &info), 0);
    CHECK_EQ(s_append(j, 7, 2, &seq), 0);
    CHECK_UEQ(seq, 3);
    journal_destroy(&j);
    j = s_open(TAG);
    CHECK_EQ(s_replay(j, 0, &seen, &info), 0);
    CHECK_UEQ(seen.n, 3);
    CHECK_EQ(seen.bad, 0);
    journal_destroy(&j);
    free(bytes);
}

TEST(garbage_tail_is_cut)
{
    s_fresh();
    journal_t *j = s_open(TAG);
    if (!j) return;
    uint64_t seq;
    for (int i = 0; i < 4; i++) CHECK_EQ(s_append(j, 1, 3, &seq), 0);
    long good = s_file_size(s_path);
    journal_destroy(&j);
    /* Garbage that starts like a record, then random bytes. */
    unsigned char junk[300] = {0x43, 0x4d, 0x4a, 0x31, 40, 0, 0, 0};
    srand(7);
    for (size_t i = 8; i < sizeof junk; i++) junk[i] = (unsigned char)rand();
    int fd = open(s_path, O_WRONLY | O_APPEND);
    CHECK(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
    close(fd);
    j = s_open(TAG);
    seen_t seen;
    journal_replay_info_t info;
    CHECK_EQ(s_replay(j, 0, &seen, &info), 0);
    CHECK_UEQ(seen.n, 4);
    CHECK_EQ(seen.bad, 0);
    CHECK_UEQ(info.cut_bytes, sizeof junk);
    CHECK_EQ(s_file_size(s_path), good);
    journal_destroy(&j);
}

TEST(replay_skips_applied)
{
    s_fresh();
    journal_t *j = s_open(TAG);
    if (!j) return;
    uint64_t seq;
    for (int i = 0; i < 5; i++) CHECK_EQ(s_append(j, 3, 1, &seq), 0);
    journal_destroy(&j);
    /* Applied through 3 (a crash between COMMIT and the truncation). */
    j = s_open(TAG);
    seen_t seen;
    journal_replay_info_t info;
    CHECK_EQ(s_replay(j, 3, &seen, &info), 0);
    CHECK_UEQ(seen.n, 2);
    CHECK_UEQ(seen.seqs[0], 4);
    CHECK_UEQ(seen.seqs[1], 5);
    CHECK_UEQ(info.skipped, 3);
    CHECK_UEQ(journal_next_seq(j), 6);
    journal_destroy(&j);
    /* Applied past everything in the file: nothing, and seq goes on from
     * the applied one. */
    j = s_open(TAG);
    CHECK_EQ(s_replay(j, 40, &seen, &info), 0);
    CHECK_UEQ(seen.n, 0);
    CHECK_UEQ(info.skipped, 5);
    CHECK_UEQ(journal_next_seq(j), 41);
    journal_destroy(&j);
    /* An empty or missing file. */
    s_fresh();
    j = s_open(TAG);
    CHECK_EQ(s_replay(j, 9, &seen, &info), 0);
    CHECK_UEQ(info.records, 0);
    CHECK_UEQ(journal_next_seq(j), 10);
    journal_destroy(&j);
}

TEST(seq_must_grow)
{
    s_fresh();
    unsigned char a[256], b[256];
    journal_point_t p = {1, 2, 3, "m", 1};
    size_t la = journal_encode(5, TAG, 1, &p, 1, a, sizeof a);
    size_t lb = journal_encode(5, TAG, 1, &p, 1, b, sizeof b); /* the same seq */
    int fd = open(s_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(write(fd, a, la) == (ssize_t)la);
    CHECK(write(fd, b, lb) == (ssize_t)lb);
    close(fd);
    journal_t *j = s_open(TAG);
    seen_t seen;
    journal_replay_info_t info;
    CHECK_EQ(s_replay(j, 0, &seen, &info), 0);
    CHECK_UEQ(info.records, 1);
    CHECK_UEQ(info.cut_bytes, lb);
    journal_destroy(&j);
}

TEST(foreign_journal_is_moved_aside)
{
    s_fresh();
    journal_t *j = s_open(TAG);
    if (!j) return;
    uint64_t seq;
    for (int i = 0; i < 3; i++) CHECK_EQ(s_append(j, 1, 1, &seq), 0);
    long size = s_file_size(s_path);
    journal_destroy(&j);
    j = s_open(TAG + 1); /* another database's */
    seen_t seen;
    journal_replay_info_t info;
    CHECK_EQ(s_replay(j, 0, &seen, &info), 0);
    CHECK_UEQ(seen.n, 0);
    CHECK(info.foreign);
    CHECK_STR(info.moved_to + strlen(info.moved_to) - 9, ".orphaned");
    CHECK_EQ(s_file_size(info.moved_to), size);
    CHECK_EQ(s_file_size(s_path), 0);
    CHECK_UEQ(journal_next_seq(j), 1);
    CHECK_EQ(s_append(j, 1, 1, &seq), 0); /* the new file works */
    journal_destroy(&j);
    j = s_open(TAG + 1);
    CHECK_EQ(s_replay(j, 0, &seen, &info), 0);
    CHECK_UEQ(seen.n, 1);
    CHECK(!info.foreign);
    journal_destroy(&j);
}

TEST(one_holder)
{
    s_fresh();
    journal_t *j = s_open(TAG);
    if (!j) return;
    cairn_err_t err = {0};
    journal_t *k = journal_open(s_path, TAG, false, &err);
    CHECK(k == NULL);
    CHECK_EQ(err.st, 409);
    CHECK_HAS(err.msg, "another tracking instance");
    journal_destroy(&k);
    journal_destroy(&j);
    k = journal_open(s_path, TAG, true, &err); /* free again (and synced) */
    CHECK(k != NULL);
    uint64_t seq;
    if (k) CHECK_EQ(s_append(k, 1, 2, &seq), 0);
    journal_destroy(&k);
}

TEST(failed_write_leaves_nothing)
{
    /* /dev/full: every write fails with ENOSPC. */
    if (access("/dev/full", W_OK) != 0) return;
    cairn_err_t err = {0};
    journal_t *j = journal_open("/dev/full", TAG, false, &err);
    if (!CHECK(j != NULL)) return;
    uint64_t seq = 99;
    journal_point_t p = {1, 2, 3, "m", 1};
    CHECK_EQ(journal_append(j, 1, &p, 1, &seq, &err), -1);
    CHECK_EQ(err.st, 500);
    CHECK_HAS(err.msg, "failed to");
    CHECK_UEQ(seq, 99);
    CHECK_UEQ(journal_next_seq(j), 1); /* no seq spent */
    CHECK_UEQ(journal_size(j), 0);
    journal_destroy(&j);
}

TEST(writes_share_one_sync)
{
    s_fresh();
    cairn_err_t err = {0};
    journal_t *j = journal_open(s_path, TAG, true, &err);
    if (!CHECK(j != NULL)) return;
    CHECK(!journal_unsynced(j));
    journal_point_t p = {1, 2, 3, "m", 1};
    uint64_t seq = 0;
    for (int i = 0; i < 3; i++) CHECK_EQ(journal_write(j, 1, &p, 1, &seq, &err), 0);
    CHECK_UEQ(seq, 3);
    CHECK(journal_unsynced(j));
    CHECK_EQ(journal_sync(j, &err), 0);
    CHECK(!journal_unsynced(j));
    CHECK_EQ(journal_sync(j, &err), 0); /* nothing waits: nothing to do */
    CHECK_UEQ(journal_size(j), (uint64_t)s_file_size(s_path));
    journal_destroy(&j);
    /* Without sync nothing ever waits. */
    j = s_open(TAG);
    if (!j) return;
    CHECK_EQ(journal_write(j, 1, &p, 1, &seq, &err), 0);
    CHECK(!journal_unsynced(j));
    journal_destroy(&j);
}

TEST(failed_sync_cuts_the_group)
{
    /* fdatasync on a FIFO fails (EINVAL): the records it covered must not
     * stay readable as acknowledged points. */
    char fifo[340];
    snprintf(fifo, sizeof fifo, "%s/fifo", s_dir);
    if (!CHECK(mkfifo(fifo, 0600) == 0)) return;
    cairn_err_t err = {0};
    journal_t *j = journal_open(fifo, TAG, true, &err);
    if (!CHECK(j != NULL)) {
        fprintf(stderr, "     %s\n", err.msg);
        unlink(fifo);
        return;
    }
    journal_point_t p = {1, 2, 3, "m", 1};
    uint64_t seq = 0;
    CHECK_EQ(journal_write(j, 1, &p, 1, &seq, &err), 0);
    CHECK_EQ(journal_write(j, 1, &p, 1, &seq, &err), 0);
    CHECK(journal_size(j) > 0);
    CHECK_EQ(journal_sync(j, &err), -1);
    CHECK_EQ(err.st, 500);
    CHECK_HAS(err.msg, "sync");
    CHECK_UEQ(journal_size(j), 0);
    CHECK(!journal_unsynced(j));
    journal_destroy(&j);
    unlink(fifo);
}

int main(void)
{
    snprintf(s_dir, sizeof s_dir, "%s/cairn-journal-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(s_path, sizeof s_path, "%s/tracking.db-mj", s_dir);
    RUN(encode_decode);
    RUN(every_cut_and_flip_is_refused);
    RUN(append_and_read_back);
    RUN(torn_tail_is_cut);
    RUN(garbage_tail_is_cut);
    RUN(replay_skips_applied);
    RUN(seq_must_grow);
    RUN(foreign_journal_is_moved_aside);
    RUN(one_holder);
    RUN(failed_write_leaves_nothing);
    RUN(writes_share_one_sync);
    RUN(failed_sync_cuts_the_group);
    s_fresh();
    rmdir(s_dir);
    return unit_report();
}
