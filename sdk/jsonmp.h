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
/* JSON text straight to msgpack, without a tree: for large plain bodies on
 * a hot path (the gateway's log-batch, 1,000 metrics a request), several
 * times faster than json_loadb and cairn_json_pack.
 *
 * str_member, when set, sees each object member whose value is a string
 * (its key, the string, depth: the arrays and objects around that object)
 * and may pack something else for it: it returns 1 when it packed, 0 to
 * have the string packed, CAIRN_JSON_TEXT_PLAIN to give the text up (see
 * below), -1 when out of memory. marked: the member sits, at any depth,
 * under a member whose key is mark. */
#define CAIRN_JSON_TEXT_PLAIN 2
typedef struct cairn_json_text_opts {
    int (*str_member)(void *arg, const char *key, size_t klen, const char *s, size_t n,
                      bool marked, int depth, msgpack_packer *pk);
    const char *mark;
    void *arg;
} cairn_json_text_opts_t;

/* Append to sb, for text (one JSON object), what cairn_json_pack packs for
 * json_loadb(text, len, JSON_REJECT_DUPLICATES) (maps and arrays with
 * 32-bit counts; the same values). Returns 0 when packed; -1 when out of
 * memory; CAIRN_JSON_TEXT_PLAIN, with sb as it was, when the text is not
 * plain enough for it, for the tree's way to take (and, for bad JSON, to
 * say why): not an object, not JSON, a \u escape or a byte outside ASCII
 * in a string, a key beginning with '$' ({"$bin"}), an object of more than
 * 32 members or with a key given twice or a key with an escape, an
 * integer beyond int64, a real beyond double, nesting deeper than cairnd
 * takes, or str_member gave it up. opts may be NULL. */
int cairn_json_text_pack(const char *text, size_t len, msgpack_sbuffer *sb,
                         const cairn_json_text_opts_t *opts);
/* A new JSON value for o; NULL when out of memory. */
json_t *cairn_json_from_msgpack(const msgpack_object *o);

/* o as compact JSON text, straight from msgpack (no jansson tree; what
 * cairn_json_from_msgpack and json_dumps give, each real with the digits
 * it needs to read back exactly), for large replies. A heap string (free
 * it), its length in *len; NULL when out of memory. nil (no body) is {}.
 * opts (may be NULL): skip_nil leaves out map members whose value is nil;
 * a str member named one of keys (NULL-terminated) that starts with from
 * is written with to instead of from. */
typedef struct cairn_json_write_opts {
    bool skip_nil;
    const char *const *keys;
    const char *from, *to;
} cairn_json_write_opts_t;
char *cairn_json_write(const msgpack_object *o, const cairn_json_write_opts_t *opts,
                       size_t *len);
/* The same for the len msgpack bytes at buf (a reply's body), read in one
 * pass with no tree: bytes that are not one valid msgpack value, or none,
 * give {} as cairn_reply_object's nil would. NULL when out of memory. */
char *cairn_json_write_bytes(const void *buf, size_t len,
                             const cairn_json_write_opts_t *opts, size_t *out_len);

/* json_dumps flags that print every real in j exactly and no longer than
 * needed (0.1, not 0.10000000000000001); pretty: indented. */
size_t cairn_json_dump_flags(const json_t *j, bool pretty);
/* j as compact text (free() it); NULL when out of memory. */
char *cairn_json_dumps_compact(const json_t *j);

#endif
