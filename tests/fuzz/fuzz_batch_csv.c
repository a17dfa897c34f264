/* libFuzzer target: a batch job's CSV (plugins/scorer/batch_csv.h), the
 * bytes of any file a user points invoke_batch at.
 *
 * The first byte picks the model and the cut: how many features (1 to 4),
 * whether they have names ("a", "b", ...), and the rows of a mini-batch
 * (1 to 8). The rest is the file. It is cut as cairn-batch-score cuts it
 * (one record at a time), the header read, then each mini-batch read; the
 * cut must not depend on where the bytes are split (scanned whole, then
 * byte by byte), a mini-batch read without error holds exactly the rows
 * it was cut to, and a cell is finite or NaN.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_batch_csv
 * (tests/fuzz/make_corpus.py). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch_csv.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

static const char *const s_names[] = {"a", "b", "c", "d"};

/* Records in p, scanned whole and one byte at a time: the same count. */
static size_t s_count(const char *p, size_t n)
{
    batch_cut_t whole = {0}, bytes = {0};
    size_t got, a = 0, b = 0;
    batch_cut_scan(&whole, p, n, (size_t)-1, &got);
    a = got + batch_cut_finish(&whole);
    for (size_t i = 0; i < n; i++) {
        batch_cut_scan(&bytes, p + i, 1, (size_t)-1, &got);
        b += got;
    }
    b += batch_cut_finish(&bytes);
    REQUIRE(a == b);
    return a;
}

/* Cut the next record: its end (from start), 0 when none is left. */
static size_t s_next(batch_cut_t *c, const char *p, size_t n, size_t start, bool *any)
{
    size_t got;
    size_t used = batch_cut_scan(c, p + start, n - start, 1, &got);
    *any = got == 1 || (start + used == n && batch_cut_finish(c) == 1);
    return start + used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t nfeat = (size_t)(data[0] & 3) + 1, mb = (size_t)((data[0] >> 3) & 7) + 1;
    const char *const *names = data[0] & 4 ? s_names : NULL;
    const char *p = (const char *)data + 1;
    size_t n = size - 1, records = s_count(p, n);
    batch_cut_t c = {0};
    bool any;
    size_t end = s_next(&c, p, n, 0, &any);
    cairn_err_t err = {0};
    batch_cols_t *cols =
        any ? batch_cols_new(p, end, nfeat, names, "f.csv", &err) : NULL;
    if (!cols) {
        REQUIRE(!any || ((err.st == 400 || err.st == 413) && err.msg[0]));
        return 0;
    }
    float *rows = malloc(mb * nfeat * sizeof *rows);
    size_t seen = 1;
    for (uint64_t first = 0; end < n;) {
        size_t start = end, k = 0;
        while (k < mb && end < n && (end = s_next(&c, p, n, end, &any), any)) k++;
        if (!k) break;
        seen += k;
        size_t got = 0;
        cairn_err_t e = {0};
        if (batch_parse(cols, p + start, end - start, k, first, rows, &got, &e) == 0) {
            REQUIRE(got == k);
            for (size_t i = 0; i < got * nfeat; i++)
                REQUIRE(isfinite(rows[i]) || isnan(rows[i]));
        } else {
            REQUIRE((e.st == 400 || e.st == 413) && e.msg[0]);
        }
        first += k;
    }
    REQUIRE(seen == records);
    free(rows);
    batch_cols_destroy(&cols);
    return 0;
}
