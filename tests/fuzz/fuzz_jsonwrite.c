/* libFuzzer target for the gateway's reply writer (sdk/jsonmp.h,
 * cairn_json_write_bytes): a plugin's reply body, read straight from its
 * msgpack bytes into JSON text. For any bytes it must give, byte for
 * byte, what the tree's way gives (nil, as cairn_reply_object makes it,
 * when they are not one valid msgpack value), with and without the
 * gateway's options. Anything else aborts. */
#define _GNU_SOURCE
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/msg.h"
#include "jsonmp.h"

static const char *const keys[] = {"artifact_uri", "artifact_location", NULL};

static void s_check_same(const uint8_t *data, size_t size,
                         const cairn_json_write_opts_t *opts)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj = {.type = MSGPACK_OBJECT_NIL};
    size_t off = 0;
    if (size && (cairn_msgpack_check_shape(data, size, NULL) != 0 ||
                 msgpack_unpack((const char *)data, size, &off, &zone, &obj) !=
                     MSGPACK_UNPACK_SUCCESS))
        obj.type = MSGPACK_OBJECT_NIL;
    size_t n1 = 0, n2 = 0;
    char *want = cairn_json_write(&obj, opts, &n1);
    char *got = cairn_json_write_bytes(data, size, opts, &n2);
    if (!want || !got || n1 != n2 || memcmp(want, got, n1) != 0) {
        fprintf(stderr, "bytes: %.300s\ntree:  %.300s\n", got ? got : "(none)",
                want ? want : "(none)");
        abort();
    }
    free(want);
    free(got);
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    static const cairn_json_write_opts_t opts = {.skip_nil = true,
                                                 .keys = keys,
                                                 .from = "cairn-artifacts:/",
                                                 .to = "mlflow-artifacts:/"};
    s_check_same(data, size, NULL);
    s_check_same(data, size, &opts);
    return 0;
}
