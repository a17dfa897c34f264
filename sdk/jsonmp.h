/* sdk/jsonmp.h — JSON and msgpack, both ways, as Cairn shows them to
 * people and takes them from people: the CLI (a body on the command line,
 * a reply printed) and the HTTP gateway (JSON REST for every verb).
 *
 * Conventions (docs/PROTOCOL.md): msgpack binary is {"$bin": "BASE64"} in
 * JSON, and such an object in JSON is packed as binary; ext values are
 * {"$ext": TYPE, "data": "BASE64"}; integers above 2^63-1 are decimal
 * strings; NaN and the infinities are the strings "NaN", "Infinity",
 * "-Infinity"; a map key that is not a string is shown as its JSON; a str
 * that is not UTF-8 is shown as {"$bin": ...}. JSON nested deeper than
 * CAIRN_MSGPACK_MAX_DEPTH is refused (cairnd could not read it).
 *
 * Part of the static library cairn_json (jansson); no ABI of its own. */
#ifndef CAIRN_JSONMP_H
#define CAIRN_JSONMP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <msgpack.h>

#include "cairn/err.h"
#include "cairn/msg.h"

/* Base64 (RFC 4648, with padding). Encode: a NUL-terminated heap string;
 * NULL when out of memory. Decode s (len a multiple of 4, '=' only as
 * padding) into out, which holds len / 4 * 3 bytes; false when s is not
 * base64. */
char *cairn_base64_encode(const unsigned char *p, size_t n);
bool cairn_base64_decode(const char *s, size_t len, unsigned char *out, size_t *outlen);

/* Pack j; 0, or -1 with err: 400 for a {"$bin"} that is not base64 or
 * nesting too deep, 500 when memory runs out. */
int cairn_json_pack(json_t *j, msgpack_packer *pk, cairn_err_t *err);
/* A new JSON value for o; NULL when out of memory. */
json_t *cairn_json_from_msgpack(const msgpack_object *o);

/* json_dumps flags that print every real in j exactly and no longer than
 * needed (0.1, not 0.10000000000000001); pretty: indented. */
size_t cairn_json_dump_flags(const json_t *j, bool pretty);
/* j as compact text (free() it); NULL when out of memory. */
char *cairn_json_dumps_compact(const json_t *j);

#endif
