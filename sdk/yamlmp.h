/* sdk/yamlmp.h — a YAML document as msgpack, for specs written by people
 * (MLflow's MLmodel files today; job, pipeline and endpoint specs next).
 *
 * One YAML document (libyaml) is converted into one msgpack object, so
 * that a plugin reads a spec with the same field helpers (cairn/msg.h) it
 * reads a request's body with, and validates it the same way:
 *
 *     msgpack_sbuffer sb;  msgpack_sbuffer_init(&sb);
 *     if (cairn_yaml_to_msgpack(text, len, &sb, &err) != 0) ...  // 400
 *     msgpack_unpacked u;  msgpack_unpacked_init(&u);
 *     msgpack_unpack_next(&u, sb.data, sb.size, NULL);   // u.data: a map
 *
 * Scalars follow YAML 1.2's core schema where they are plain (unquoted):
 * null, ~ and the empty scalar are nil; true/false (any case) are
 * booleans; decimal, 0x and 0o integers that fit 64 bits are integers;
 * decimal floats, .inf and .nan are floats; everything else, and every
 * quoted or block scalar, is a string (so "on", "yes" and 010 stay text, as
 * YAML 1.2 says and unlike 1.1). Mapping keys must be strings and unique.
 *
 * Outside input: the text may be at most CAIRN_YAML_MAX_BYTES, nested at
 * most CAIRN_YAML_MAX_DEPTH deep (msgpack-c unpacks 32 levels, and a spec travels
 * inside a body), and hold at most CAIRN_YAML_MAX_NODES nodes; anchors and aliases are
 * refused (their expansion is how a small file becomes a huge tree), as are tags other
 * than the core ones and a second document. Each refusal is a 400 whose sentence names
 * the line.
 *
 * Part of the static library cairn_yaml (libyaml); no ABI of its own. */
#ifndef CAIRN_YAMLMP_H
#define CAIRN_YAMLMP_H

#include <stddef.h>

#include <msgpack.h>

#include "cairn/err.h"

#define CAIRN_YAML_MAX_BYTES (4u << 20)
#define CAIRN_YAML_MAX_DEPTH 24
#define CAIRN_YAML_MAX_NODES 100000

/* Append the document in text[0, len) to sb as one msgpack object (an
 * empty document is nil). 0, or -1 with err (400 bad_request, or 500 when
 * memory runs out); sb may then hold a partial object. */
int cairn_yaml_to_msgpack(const char *text, size_t len, msgpack_sbuffer *sb,
                          cairn_err_t *err);

#endif
