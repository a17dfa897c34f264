/* Unit tests of a download's read ahead (plugins/storage/prefetch.c): a
 * range read ahead and taken, byte for byte; a range other than the one
 * asked for, or another key's, not taken (nothing written); a file
 * closed by its owner after the start still read (the descriptor is
 * duplicated); more downloads than slots (the oldest given up); a read
 * past the end of the file failing, not taken. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prefetch.h"
#include "unit.h"

#define SIZE (3u << 20)
#define CHUNK (1u << 20)

static unsigned char s_data[SIZE];

static int s_file(void)
{
    char path[] = "/tmp/cairn-prefetch-XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0)) return -1;
    unlink(path);
    for (size_t i = 0; i < SIZE; i++) s_data[i] = (unsigned char)(i * 131 + (i >> 11));
    CHECK(write(fd, s_data, SIZE) == (ssize_t)SIZE);
    return fd;
}

TEST(take_what_was_read)
{
    cairn_err_t err = {0};
    prefetch_t *p = prefetch_new(CHUNK, &err);
    if (!CHECK(p)) return;
    int fd = s_file();
    unsigned char *dst = malloc(CHUNK);
    int key;
    prefetch_start(p, &key, fd, CHUNK, CHUNK);
    close(fd); /* the read ahead holds its own descriptor */
    memset(dst, 0, CHUNK);
    CHECK(prefetch_take(p, &key, CHUNK, CHUNK, dst));
    CHECK(memcmp(dst, s_data + CHUNK, CHUNK) == 0);
    /* taken once: the slot is free again */
    CHECK(!prefetch_take(p, &key, CHUNK, CHUNK, dst));
    free(dst);
    prefetch_destroy(&p);
    CHECK(p == NULL);
}

TEST(other_ranges_and_keys_are_not_taken)
{
    cairn_err_t err = {0};
    prefetch_t *p = prefetch_new(CHUNK, &err);
    int fd = s_file();
    unsigned char *dst = calloc(1, CHUNK);
    int key, other;
    prefetch_start(p, &key, fd, 0, CHUNK);
    CHECK(!prefetch_take(p, &other, 0, CHUNK, dst));
    CHECK(!prefetch_take(p, &key, 2 * CHUNK, CHUNK, dst));
    CHECK(dst[0] == 0 && dst[CHUNK - 1] == 0); /* nothing written */
    /* the range asked for at first: taken, unless the wrong ask found it
     * finished (it is then given up) */
    if (prefetch_take(p, &key, 0, CHUNK, dst)) CHECK(memcmp(dst, s_data, CHUNK) == 0);
    CHECK(!prefetch_take(p, &key, 0, CHUNK, dst));
    /* past the end of the file: the read fails, nothing taken */
    prefetch_start(p, &key, fd, SIZE - 10, CHUNK);
    CHECK(!prefetch_take(p, &key, SIZE - 10, CHUNK, dst));
    /* larger than a slot: no read ahead */
    prefetch_start(p, &key, fd, 0, CHUNK + 1);
    CHECK(!prefetch_take(p, &key, 0, CHUNK + 1, dst));
    close(fd);
    free(dst);
    prefetch_destroy(&p);
}

TEST(more_downloads_than_slots)
{
    cairn_err_t err = {0};
    prefetch_t *p = prefetch_new(CHUNK, &err);
    int fd = s_file();
    unsigned char *dst = malloc(CHUNK);
    int keys[PREFETCH_SLOTS + 2];
    for (int i = 0; i < PREFETCH_SLOTS + 2; i++)
        prefetch_start(p, &keys[i], fd, (uint64_t)(i % 3) * CHUNK, CHUNK);
    int taken = 0;
    for (int i = 0; i < PREFETCH_SLOTS + 2; i++)
        if (prefetch_take(p, &keys[i], (uint64_t)(i % 3) * CHUNK, CHUNK, dst)) {
            taken++;
            CHECK(memcmp(dst, s_data + (i % 3) * CHUNK, CHUNK) == 0);
        }
    CHECK(taken >= 1 && taken <= PREFETCH_SLOTS);
    CHECK(prefetch_take(p, &keys[PREFETCH_SLOTS + 1], 0, CHUNK, dst) == false);
    close(fd);
    free(dst);
    prefetch_destroy(&p);
}

int main(void)
{
    RUN(take_what_was_read);
    RUN(other_ranges_and_keys_are_not_taken);
    RUN(more_downloads_than_slots);
    return unit_report();
}
