/* sdk/csv.h — a streaming CSV reader and a table sniffer, in bounded
 * memory.
 *
 * The caller feeds the bytes in chunks of any size (a 1 MiB read of a
 * blob, one byte at a time, the whole file): the result never depends on
 * where the chunks are cut. The grammar is RFC 4180's, with these
 * choices:
 *   - a record ends at CRLF, LF or a lone CR; the last record may lack
 *     its line end;
 *   - a field may be quoted ("..."): it may then hold the delimiter, line
 *     ends and a quote written twice (""); a quote inside an unquoted
 *     field, or anything but a delimiter or a line end after a closing
 *     quote, is an error, and so is a quoted field still open at the end;
 *   - a UTF-8 byte-order mark (EF BB BF) at the very start is skipped;
 *   - an empty line (nothing before its line end) is skipped: it is not a
 *     record of one empty field (as pandas reads it);
 *   - a NUL byte is an error (the input is not text);
 *   - every record has as many fields as the first (ragged rows are an
 *     error naming the line), at most CAIRN_CSV_COLS_MAX fields of at most
 *     CAIRN_CSV_FIELD_MAX bytes each, at most CAIRN_CSV_ROW_MAX bytes in
 *     all.
 * Line numbers in errors are physical lines, from 1 (a quoted line end
 * counts), of the line where the record or field in question begins.
 * Errors are 400 bad_request (413 too_large for the limits) with a
 * sentence; once a reader has failed, every later call fails the same way.
 *
 * Two uses:
 *   cairn_csv_t        a reader: a callback receives each record's fields
 *                      (for training and scoring: trainer, scorer);
 *   cairn_csv_sniff_t  a sniffer: the delimiter (, ; TAB |, chosen from the
 *                      first lines), whether line 1 is a header, the
 *                      column names (col_1, col_2, ... without a header),
 *                      each column's type over every row (int, float, bool
 *                      or string, and whether it has empty cells) and the
 *                      number of data rows (storage's sniff_pinned).
 *
 * Part of the static library cairn_csv; no ABI of its own. An object
 * belongs to one thread. */
#ifndef CAIRN_CSV_H
#define CAIRN_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#define CAIRN_CSV_COLS_MAX 4096
#define CAIRN_CSV_FIELD_MAX (1u << 20)
#define CAIRN_CSV_ROW_MAX (64u << 20)
/* A header's cells are at most this long (longer: line 1 is data). */
#define CAIRN_CSV_NAME_MAX 256

/* ---- the reader ---------------------------------------------------------- */

typedef struct cairn_csv cairn_csv_t;

/* A field of the current record: borrowed, valid during the callback. ptr
 * is followed by a NUL (not counted in len). */
typedef struct cairn_csv_field {
    const char *ptr;
    size_t len;
    bool quoted;
} cairn_csv_field_t;

/* Called once per record with its n fields; line is where it begins.
 * Return 0 to go on, -1 (with err set) to stop: the feed or finish that
 * called it returns -1 with that error. */
typedef int(cairn_csv_row_fn)(void *arg, uint64_t line, const cairn_csv_field_t *f,
                              size_t n, cairn_err_t *err);

/* A reader splitting fields at delim (any byte but '"', CR, LF and NUL);
 * NULL on failure (err says why). */
cairn_csv_t *cairn_csv_new(char delim, cairn_csv_row_fn *fn, void *arg,
                           cairn_err_t *err);
void cairn_csv_destroy(cairn_csv_t **self_p);
/* Feed the next len bytes; records they complete are handed over now. */
int cairn_csv_feed(cairn_csv_t *c, const void *buf, size_t len, cairn_err_t *err);
/* The end of the input: the last record (if any) is handed over. */
int cairn_csv_finish(cairn_csv_t *c, cairn_err_t *err);
/* Records handed over so far; fields of each (0 before the first). */
uint64_t cairn_csv_records(const cairn_csv_t *c);
size_t cairn_csv_fields(const cairn_csv_t *c);

/* ---- the sniffer --------------------------------------------------------- */

typedef enum {
    CAIRN_CSV_INT,    /* [+-]digits, within int64 */
    CAIRN_CSV_FLOAT,  /* a decimal number with '.' or an exponent, inf, nan */
    CAIRN_CSV_BOOL,   /* true or false, in any case */
    CAIRN_CSV_STRING, /* anything else, and a column of empty cells only */
} cairn_csv_type_t;

typedef struct cairn_csv_sniff cairn_csv_sniff_t;

/* "int", "float", "bool", "string". */
const char *cairn_csv_type_name(cairn_csv_type_t t);
/* The type of one cell (spaces around it ignored); false for an empty one. */
bool cairn_csv_cell_type(const char *p, size_t n, cairn_csv_type_t *t);

cairn_csv_sniff_t *cairn_csv_sniff_new(cairn_err_t *err);
void cairn_csv_sniff_destroy(cairn_csv_sniff_t **self_p);
/* Feed the next len bytes. The first bytes (up to CAIRN_CSV_SNIFF_LINES
 * lines or CAIRN_CSV_SNIFF_BYTES bytes) are held until the delimiter is
 * chosen. */
#define CAIRN_CSV_SNIFF_LINES 32
#define CAIRN_CSV_SNIFF_BYTES (256u << 10)
int cairn_csv_sniff_feed(cairn_csv_sniff_t *s, const void *buf, size_t len,
                         cairn_err_t *err);
/* The end of the input. An input without a single record is an error
 * ("no rows"). The getters below answer after a successful finish. */
int cairn_csv_sniff_finish(cairn_csv_sniff_t *s, cairn_err_t *err);
char cairn_csv_sniff_delimiter(const cairn_csv_sniff_t *s);
/* Line 1 is a header when its cells are non-empty, distinct, at most
 * CAIRN_CSV_NAME_MAX bytes and none is a number or a bool. */
bool cairn_csv_sniff_header(const cairn_csv_sniff_t *s);
uint64_t cairn_csv_sniff_rows(const cairn_csv_sniff_t *s); /* data rows */
size_t cairn_csv_sniff_columns(const cairn_csv_sniff_t *s);
/* Column i (0-based): its name (borrowed), type and whether a cell is empty. */
const char *cairn_csv_sniff_name(const cairn_csv_sniff_t *s, size_t i);
cairn_csv_type_t cairn_csv_sniff_type(const cairn_csv_sniff_t *s, size_t i);
bool cairn_csv_sniff_nullable(const cairn_csv_sniff_t *s, size_t i);

#endif
