/* libFuzzer target for the YAML-to-msgpack converter (sdk/yamlmp.c).
 *
 * An accepted document must be exactly one msgpack object that msgpack-c
 * unpacks whole (so a plugin can read it as a body); a refused one must be
 * a 400 or 413 whose sentence names YAML. Anything else aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "yamlmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cairn_err_t err = {0};
    if (cairn_yaml_to_msgpack((const char *)data, size, &sb, &err) == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, sb.data, sb.size, &off) != MSGPACK_UNPACK_SUCCESS ||
            off != sb.size)
            abort();
        msgpack_unpacked_destroy(&u);
    } else if (!((err.st == 400 || err.st == 413) && strstr(err.msg, "YAML"))) {
        abort();
    }
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
