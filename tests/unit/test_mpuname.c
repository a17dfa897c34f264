/* Unit tests of a multipart upload's file names and identifiers
 * (plugins/storage/mpuname.c): the names multipart.c writes parse back to
 * their fields; part numbers are 1 .. 10000 written as "%u" and nothing
 * else; num_parts is one such number and a newline; an etag is 64 hex
 * digits, quoted or not, any case, and comes out lowercase; strangers in
 * an upload's directory are MPU_OTHER. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mpuname.h"
#include "unit.h"

#define HEX "3ececd8c0d7e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809102"
/* HEX less its first 8 digits */
#define TAIL "0d7e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809102"

static mpu_kind_t s_kind(const char *name, mpu_name_t *nm)
{
    return mpu_name_parse(name, strlen(name), nm);
}

TEST(names_round_trip)
{
    char buf[MPU_NAME_MAX];
    mpu_name_t nm;
    CHECK_EQ(mpu_name_part(buf, sizeof buf, 7, HEX), 2 + 64);
    CHECK_STR(buf, "7." HEX);
    CHECK_EQ(s_kind(buf, &nm), MPU_PART);
    CHECK_EQ(nm.number, 7);
    CHECK_STR(nm.hex, HEX);
    CHECK(mpu_name_staging(buf, sizeof buf, 10000, "0123456789abcdef") > 0);
    CHECK_STR(buf, "10000.tmp-0123456789abcdef");
    CHECK_EQ(s_kind(buf, &nm), MPU_STAGING);
    CHECK_EQ(nm.number, 10000);
    CHECK_STR(nm.token, "0123456789abcdef");
    CHECK_EQ(s_kind("meta", &nm), MPU_META);
    CHECK_EQ(s_kind("num_parts", &nm), MPU_NUM_PARTS);
    /* what format refuses */
    CHECK_EQ(mpu_name_part(buf, sizeof buf, 0, HEX), -1);
    CHECK_EQ(mpu_name_part(buf, sizeof buf, 10001, HEX), -1);
    CHECK_EQ(mpu_name_part(buf, sizeof buf, 1, "abc"), -1);
    CHECK_EQ(mpu_name_staging(buf, sizeof buf, 1, "0123456789ABCDEF"), -1);
    CHECK_EQ(mpu_name_part(buf, 10, 1, HEX), -1); /* does not fit */
}

TEST(strangers)
{
    mpu_name_t nm;
    static const char *const names[] = {
        "0." HEX,
        "01." HEX,
        "10001." HEX,
        "7." HEX "0",
        "7.3ECECD8C" TAIL,
        "7.tmp-0123",
        "7.tmp-0123456789abcdeg",
        ".",
        "..",
        "7",
        "7.",
        "metadata",
        "-1.tmp-0123456789abcdef",
        "+7." HEX,
        " 7." HEX,
        "",
        ".tmp-ab",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        CHECK_EQ(s_kind(names[i], &nm), MPU_OTHER);
        CHECK_EQ(nm.number, 0);
    }
    /* bytes after a NUL are bytes, not an end */
    CHECK_EQ(mpu_name_parse("meta\0x", 6, &nm), MPU_OTHER);
}

TEST(numbers)
{
    uint32_t v = 0;
    CHECK(mpu_number_parse("1", 1, &v) && v == 1);
    CHECK(mpu_number_parse("10000", 5, &v) && v == 10000);
    static const char *const bad[] = {"0",  "10001", "99999",      "01",
                                      "-1", "+1",    " 1",         "1 ",
                                      "1x", "",      "4294967297", "100000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!mpu_number_parse(bad[i], strlen(bad[i]), &v));
    CHECK(mpu_num_parts_parse("12\n", 3, &v) && v == 12);
    CHECK(!mpu_num_parts_parse("12", 2, &v));
    CHECK(!mpu_num_parts_parse("12\n\n", 4, &v));
    CHECK(!mpu_num_parts_parse("\n", 1, &v));
    CHECK(!mpu_num_parts_parse("0\n", 2, &v));
}

TEST(etags)
{
    char hex[MPU_HEX_LEN + 1];
    CHECK(mpu_etag_parse(HEX, 64, hex));
    CHECK_STR(hex, HEX);
    CHECK(mpu_etag_parse("\"" HEX "\"", 66, hex));
    CHECK_STR(hex, HEX);
    CHECK(mpu_etag_parse("3ECECD8C" TAIL, 64, hex));
    CHECK_STR(hex, HEX);
    CHECK(!mpu_etag_parse("\"" HEX, 65, hex));
    CHECK(!mpu_etag_parse(HEX "\"", 65, hex));
    CHECK(!mpu_etag_parse("W/\"" HEX "\"", 68, hex));
    CHECK(!mpu_etag_parse("\"\"", 2, hex));
    CHECK(!mpu_etag_parse("", 0, hex));
    CHECK(!mpu_etag_parse("g" HEX, 64, hex));
    CHECK(mpu_hex_valid("0123456789abcdef0123456789abcdef", 32, MPU_ID_LEN));
    CHECK(!mpu_hex_valid("0123456789ABCDEF0123456789abcdef", 32, MPU_ID_LEN));
    CHECK(!mpu_hex_valid("0123456789abcdef", 16, MPU_ID_LEN));
}

int main(void)
{
    RUN(names_round_trip);
    RUN(strangers);
    RUN(numbers);
    RUN(etags);
    return unit_report();
}
