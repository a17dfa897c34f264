/* libFuzzer target for a job's spec (plugins/compute/spec.c): what
 * submit_job reads from a client, as YAML text (through cairn_yaml, as
 * the verb does) or as msgpack. A spec is read in full or refused with a
 * 400 whose sentence names a field; a read spec has a command of at most
 * JOB_COMMAND_MAX bytes with no NUL, and a valid name when it has one.
 * Anything else aborts.
 *
 * Input: one byte choosing YAML (even) or msgpack (odd), then the bytes. */
#define _GNU_SOURCE
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"
#include "spec.h"
#include "yamlmp.h"

static void s_read(const char *buf, size_t len)
{
    if (cairn_msgpack_check(buf, len, NULL) != 0) return;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, buf, len, NULL) == MSGPACK_UNPACK_SUCCESS) {
        job_spec_t s;
        cairn_err_t err = {0};
        if (job_spec_read(&u.data, NULL, &s, &err) == 0) {
            size_t n = strlen(s.command);
            if (n == 0 || n > JOB_COMMAND_MAX) abort();
            if (s.name.len && !job_name_ok(s.name.ptr, s.name.len)) abort();
            job_spec_free(&s);
        } else if (err.st != CAIRN_ST_BAD_REQUEST || !err.msg[0]) {
            abort();
        }
    }
    msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] % 2) {
        s_read(p, n);
        return 0;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cairn_err_t err = {0};
    if (cairn_yaml_to_msgpack(p, n, &sb, &err) == 0) s_read(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
