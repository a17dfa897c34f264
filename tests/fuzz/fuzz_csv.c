/* libFuzzer target: the CSV reader and sniffer (sdk/csv.h), which read
 * whatever a user uploads as a data set (sniff_pinned; the trainer and the
 * scorer later).
 *
 * The first byte picks the delimiter (of , ; TAB |) and a cut: the rest is
 * read whole and again in two pieces cut there, which must give the same
 * records (a running hash of every field) or the same error. Every record
 * has as many fields as the first, at most CAIRN_CSV_COLS_MAX, each NUL
 * terminated and at most CAIRN_CSV_FIELD_MAX bytes. The sniffer reads the
 * same bytes whole and cut: the same delimiter, header, columns, types and
 * row count, or the same error; its row count is the reader's records
 * (less a header) when it chose the same delimiter.
 *
 * Build: tools/fuzz.sh (clang, -DCAIRN_FUZZ=ON). Seeds: corpus/fuzz_csv
 * (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

#define REQUIRE(c)                  \
    do {                            \
        if (!(c)) __builtin_trap(); \
    } while (0)

typedef struct seen {
    uint64_t hash, records;
    size_t width;
} seen_t;

static uint64_t s_mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int s_row(void *arg, uint64_t line, const cairn_csv_field_t *f, size_t n,
                 cairn_err_t *err)
{
    seen_t *s = arg;
    (void)err;
    REQUIRE(n >= 1 && n <= CAIRN_CSV_COLS_MAX);
    if (!s->records) s->width = n;
    REQUIRE(n == s->width);
    s->hash = s_mix(s->hash, &line, sizeof line);
    for (size_t i = 0; i < n; i++) {
        REQUIRE(f[i].len <= CAIRN_CSV_FIELD_MAX && f[i].ptr[f[i].len] == '\0');
        s->hash = s_mix(s->hash, f[i].ptr, f[i].len + 1);
        s->hash = s_mix(s->hash, &f[i].quoted, 1);
    }
    s->records++;
    return 0;
}

static int s_read(char delim, const uint8_t *p, size_t n, size_t cut, seen_t *out,
                  cairn_err_t *err)
{
    memset(out, 0, sizeof *out);
    cairn_csv_t *c = cairn_csv_new(delim, s_row, out, err);
    REQUIRE(c);
    int rc = cairn_csv_feed(c, p, cut, err);
    if (rc == 0) rc = cairn_csv_feed(c, p + cut, n - cut, err);
    if (rc == 0) rc = cairn_csv_finish(c, err);
    if (rc == 0) REQUIRE(cairn_csv_records(c) == out->records);
    cairn_csv_destroy(&c);
    REQUIRE(c == NULL);
    return rc;
}

static uint64_t s_sniff(const uint8_t *p, size_t n, size_t cut, char *delim,
                        uint64_t *rows, bool *header, cairn_err_t *err)
{
    cairn_csv_sniff_t *s = cairn_csv_sniff_new(err);
    REQUIRE(s);
    int rc = cairn_csv_sniff_feed(s, p, cut, err);
    if (rc == 0) rc = cairn_csv_sniff_feed(s, p + cut, n - cut, err);
    if (rc == 0) rc = cairn_csv_sniff_finish(s, err);
    uint64_t h = 0;
    if (rc == 0) {
        *delim = cairn_csv_sniff_delimiter(s);
        *rows = cairn_csv_sniff_rows(s);
        *header = cairn_csv_sniff_header(s);
        size_t cols = cairn_csv_sniff_columns(s);
        REQUIRE(cols >= 1 && cols <= CAIRN_CSV_COLS_MAX);
        h = s_mix(1, delim, 1);
        h = s_mix(h, rows, sizeof *rows);
        h = s_mix(h, header, 1);
        for (size_t i = 0; i < cols; i++) {
            const char *name = cairn_csv_sniff_name(s, i);
            REQUIRE(name && *name);
            if (*header) REQUIRE(strlen(name) <= CAIRN_CSV_NAME_MAX);
            cairn_csv_type_t t = cairn_csv_sniff_type(s, i);
            bool null = cairn_csv_sniff_nullable(s, i);
            h = s_mix(h, name, strlen(name) + 1);
            h = s_mix(h, &t, sizeof t);
            h = s_mix(h, &null, 1);
        }
    }
    cairn_csv_sniff_destroy(&s);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char delims[] = {',', ';', '\t', '|'};
    char delim = delims[data[0] & 3];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    size_t cut = n ? (size_t)(data[0] >> 2) * n / 63 : 0;
    if (cut > n) cut = n;

    seen_t a, b;
    cairn_err_t ea = {0}, eb = {0};
    int ra = s_read(delim, p, n, 0, &a, &ea);
    int rb = s_read(delim, p, n, cut, &b, &eb);
    REQUIRE(ra == rb);
    if (ra == 0)
        REQUIRE(a.hash == b.hash && a.records == b.records);
    else
        REQUIRE(ea.st == eb.st && strcmp(ea.msg, eb.msg) == 0 && ea.msg[0]);

    char d1 = 0, d2 = 0;
    uint64_t rows1 = 0, rows2 = 0;
    bool h1 = false, h2 = false;
    cairn_err_t s1 = {0}, s2 = {0};
    uint64_t x1 = s_sniff(p, n, 0, &d1, &rows1, &h1, &s1);
    uint64_t x2 = s_sniff(p, n, cut, &d2, &rows2, &h2, &s2);
    REQUIRE(x1 == x2 && s1.st == s2.st && strcmp(s1.msg, s2.msg) == 0);
    if (!s1.st && d1 == delim) {
        REQUIRE(ra == 0 && rows1 + (h1 ? 1 : 0) == a.records);
    }
    return 0;
}
