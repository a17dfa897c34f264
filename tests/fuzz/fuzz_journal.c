/* libFuzzer target: the metric journal reader (plugins/storage/journal.c).
 * The journal is a file the next start reads after a crash, so its reader
 * takes arbitrary bytes: a torn write, garbage, another database's file.
 *
 * 1. journal_decode walks the input record by record: an accepted record
 *    lies inside the input, holds 1 .. JOURNAL_MAX_POINTS points whose keys
 *    (1 .. 250 bytes) lie inside it, and encodes back to exactly its bytes.
 * 2. The same bytes as a journal file: journal_replay hands over exactly the
 *    records the walk accepted (those of this database, while seq grows),
 *    cuts the file right after them (or moves it aside at a record of
 *    another database), and appends then go on past the last seq.
 *
 * Both run on the input as it is, and again with every record's checksum
 * made right (the fuzzer cannot forge an FNV-1a-64), so that mutations
 * reach the payload parser too.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_journal
 * (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

/* The tag of the seeds' records (make_corpus.py). */
#define TAG 0x0123456789abcdefull

static char s_path[256], s_orphan[280];
static unsigned char s_re[JOURNAL_MAX_RECORD];

typedef struct walk {
    size_t records;
    uint64_t last_seq;
    size_t good; /* bytes of the records replay must accept */
} walk_t;

static int s_count(void *arg, const journal_rec_t *rec, cairn_err_t *err)
{
    (void)err;
    walk_t *w = arg;
    REQUIRE(rec->tag == TAG && rec->seq > w->last_seq);
    w->records++;
    w->last_seq = rec->seq;
    return 0;
}

static void s_check(const uint8_t *data, size_t size)
{
    /* 1. The decoder. */
    static journal_rec_t rec;
    walk_t want = {0, 0, 0};
    bool stopped = false, foreign = false;
    for (size_t at = 0; at < size;) {
        long r = journal_decode(data + at, size - at, &rec);
        REQUIRE(r >= -1 && (size_t)(r > 0 ? r : 0) <= size - at);
        if (r <= 0) break;
        REQUIRE(rec.n >= 1 && rec.n <= JOURNAL_MAX_POINTS);
        for (size_t i = 0; i < rec.n; i++) {
            const journal_point_t *p = &rec.pts[i];
            REQUIRE(p->key_len >= 1 && p->key_len <= JOURNAL_KEY_MAX);
            REQUIRE((const uint8_t *)p->key > data + at &&
                    (const uint8_t *)p->key + p->key_len <= data + at + (size_t)r);
        }
        size_t len = journal_encode(rec.seq, rec.tag, rec.rid, rec.pts, rec.n, s_re,
                                    sizeof s_re);
        REQUIRE(len == (size_t)r && memcmp(s_re, data + at, len) == 0);
        if (!stopped) {
            if (rec.seq <= want.last_seq || rec.seq > INT64_MAX) {
                stopped = true;
            } else if (rec.tag != TAG) {
                stopped = foreign = true;
            } else {
                want.records++;
                want.last_seq = rec.seq;
                want.good = at + (size_t)r;
            }
        }
        at += (size_t)r;
    }

    /* 2. The file reader. */
    unlink(s_path);
    unlink(s_orphan);
    FILE *f = fopen(s_path, "wb");
    REQUIRE(f && fwrite(data, 1, size, f) == size && fclose(f) == 0);
    cairn_err_t err = {0};
    journal_t *j = journal_open(s_path, TAG, false, &err);
    REQUIRE(j);
    walk_t got = {0, 0, 0};
    journal_replay_info_t info;
    REQUIRE(journal_replay(j, 0, s_count, &got, &info, &err) == 0);
    REQUIRE(got.records == want.records && info.records == want.records);
    REQUIRE(info.last_seq == want.last_seq && info.foreign == foreign);
    struct stat st;
    REQUIRE(stat(s_path, &st) == 0);
    if (foreign) {
        struct stat os;
        REQUIRE(st.st_size == 0 && stat(s_orphan, &os) == 0 &&
                (size_t)os.st_size == size);
    } else {
        REQUIRE((size_t)st.st_size == want.good && info.cut_bytes == size - want.good);
    }
    REQUIRE(journal_next_seq(j) == want.last_seq + 1);
    journal_point_t p = {1.0, 2, 3, "k", 1};
    uint64_t seq = 0;
    REQUIRE(journal_append(j, 1, &p, 1, &seq, &err) == 0);
    REQUIRE(seq == want.last_seq + 1);
    journal_destroy(&j);
    unlink(s_path);
    unlink(s_orphan);
}

static uint64_t s_fnv1a64(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Write the right checksum after each record whose length fits. */
static void s_fix_sums(uint8_t *p, size_t size)
{
    for (size_t at = 0; size - at >= JOURNAL_HEADER_BYTES;) {
        size_t plen = (size_t)p[at + 4] | (size_t)p[at + 5] << 8 |
                      (size_t)p[at + 6] << 16 | (size_t)p[at + 7] << 24;
        size_t body = JOURNAL_HEADER_BYTES + plen;
        if (plen > JOURNAL_MAX_PAYLOAD || size - at < body + JOURNAL_SUM_BYTES) break;
        uint64_t h = s_fnv1a64(p + at, body);
        for (int i = 0; i < 8; i++) p[at + body + (size_t)i] = (uint8_t)(h >> (8 * i));
        at += body + JOURNAL_SUM_BYTES;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_path[0]) {
        snprintf(s_path, sizeof s_path, "%s/fuzz-journal-%d.db-mj",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
        snprintf(s_orphan, sizeof s_orphan, "%s.orphaned", s_path);
    }
    s_check(data, size);
    uint8_t *fixed = malloc(size ? size : 1);
    REQUIRE(fixed);
    memcpy(fixed, data, size);
    s_fix_sums(fixed, size);
    s_check(fixed, size);
    free(fixed);
    return 0;
}
