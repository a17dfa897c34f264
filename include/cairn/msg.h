/* cairn/msg.h — the CAIRN/1 envelope and msgpack helpers.
 *
 * Both sides of the wire, the client side and the worker side (kernel <->
 * plugin runtime), are documented in docs/PROTOCOL.md. Both carry a header map and an
 * opaque body frame that is never re-encoded on its way through the kernel.
 */
#ifndef CAIRN_MSG_H
#define CAIRN_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_TAG "CAIRN/1"         /* client frame 1 */
#define CAIRN_WORKER_TAG "CAIRNW/1" /* worker frame 1 */
#define CAIRN_DEFAULT_ENDPOINT "tcp://127.0.0.1:7780"

/* Worker protocol commands (one byte frame after the tag). */
typedef enum cairn_wcmd {
    CAIRN_W_HELLO = 1,      /* W->K {plugin, svc, abi, pid, version} */
    CAIRN_W_WELCOME = 2,    /* K->W {svc, hb_ms, liveness, settings, events} */
    CAIRN_W_READY = 3,      /* W->K {verbs:[{name,perm,flags,max_body}], concurrency} */
    CAIRN_W_REQUEST = 4,    /* K->W {rid, svc, verb, ws, sub, roles, ttl, cid} + body */
    CAIRN_W_FINAL = 6,      /* W->K {rid, st, code?, err?} + body */
    CAIRN_W_HEARTBEAT = 7,  /* both ways, no header */
    CAIRN_W_DISCONNECT = 8, /* both ways {err?} */
    CAIRN_W_PUBLISH = 9,    /* W->K {topic} + body: republished on the event bus */
    CAIRN_W_CALL = 10,      /* W->K {cid, svc, verb, ws, ttl} + body: nested call */
    CAIRN_W_RESULT = 11,    /* K->W {cid, st, code?, err?} + body */
    CAIRN_W_FAIL = 12,      /* W->K {err}: init failed; the worker exits */
} cairn_wcmd_t;

/* A string slice that points into a message buffer (not NUL-terminated). */
typedef struct cairn_str {
    const char *ptr;
    size_t len;
} cairn_str_t;

/* A client request header, decoded without copying: every slice points
 * into the header frame, which must outlive the struct. */
typedef struct cairn_hdr {
    enum { CAIRN_ID_NONE, CAIRN_ID_UINT, CAIRN_ID_STR } id_type;
    uint64_t id_uint;
    cairn_str_t id_str;
    cairn_str_t svc, verb, tok, ws, cid;
    uint64_t ttl; /* 0 when absent */
} cairn_hdr_t;

/* The byte length of the valid UTF-8 sequence at s (n bytes left: no
 * overlong form, no surrogate, nothing past U+10FFFF), or 0 when s does not
 * start one. */
CAIRN_EXPORT size_t cairn_utf8_len(const unsigned char *s, size_t n);
/* Whether s[0, n) is valid UTF-8 throughout. */
CAIRN_EXPORT bool cairn_utf8_valid(const void *s, size_t n);

/* Check that buf holds exactly one well-formed msgpack value, without
 * allocating: every declared length fits in the bytes left, nesting is at
 * most CAIRN_MSGPACK_MAX_DEPTH (msgpack-c's own limit), and every str is
 * valid UTF-8 (so that no client ever reads back bytes its msgpack library
 * refuses to decode; bin is the type for bytes). Run it before
 * msgpack_unpack on outside input, so that a 5-byte frame declaring a
 * 4-billion-element array cannot make the decoder allocate gigabytes.
 * Returns 0, or -1 with a 400 saying what is wrong. */
#define CAIRN_MSGPACK_MAX_DEPTH 32
CAIRN_EXPORT int cairn_msgpack_check(const void *buf, size_t len, cairn_err_t *err);
/* The same checks but the UTF-8 one: for a client reading a reply, which
 * shows a str of other bytes rather than refuse the whole reply. */
CAIRN_EXPORT int cairn_msgpack_check_shape(const void *buf, size_t len,
                                           cairn_err_t *err);

/* Limits on a request header (docs/PROTOCOL.md): every string the kernel
 * accepts and forwards is bounded, so that no part of the path (kernel,
 * runtime, plugin) copies an unbounded header field. */
#define CAIRN_HDR_NAME_MAX 64    /* svc, verb, ws */
#define CAIRN_HDR_ID_MAX 256     /* a string id */
#define CAIRN_HDR_CID_MAX 128    /* correlation id */
#define CAIRN_HDR_TOK_MAX 4096   /* bearer token */
#define CAIRN_HDR_KEY_MAX 64     /* any key, unknown ones included */
#define CAIRN_HDR_EXTRA_MAX 1024 /* an unknown key's string value */
#define CAIRN_HDR_KEYS_MAX 32    /* keys in one header */

/* Decode a request header map. Unknown keys are ignored (within the limits
 * above); a wrong type or a string past its limit is a 400 naming the key.
 * zone is a caller-owned, reused msgpack zone. */
CAIRN_EXPORT int cairn_hdr_decode(const void *buf, size_t len, msgpack_zone *zone,
                                  cairn_hdr_t *hdr, cairn_err_t *err);

/* Pack a reply header {id, st, err?, code?} for the given request id. */
CAIRN_EXPORT void cairn_hdr_pack_reply(msgpack_packer *pk, const cairn_hdr_t *req,
                                       int st, const char *code, const char *msg);

/* ---- msgpack helpers ------------------------------------------------- */

CAIRN_EXPORT void cairn_pack_cstr(msgpack_packer *pk, const char *s);
CAIRN_EXPORT void cairn_pack_strn(msgpack_packer *pk, const char *s, size_t n);
/* Pack key then a C string value (a map entry). */
CAIRN_EXPORT void cairn_pack_kv_str(msgpack_packer *pk, const char *k, const char *v);

/* Pack a sentence for a person (an error's err or code): any byte that is
 * not part of valid UTF-8 becomes '?', so that a message cut mid-character
 * or quoting a client's bytes never makes a reply undecodable. */
CAIRN_EXPORT void cairn_pack_text(msgpack_packer *pk, const char *s);
CAIRN_EXPORT void cairn_pack_kv_text(msgpack_packer *pk, const char *k, const char *v);

/* Look a key up in a map; NULL when obj is not a map or lacks the key. */
CAIRN_EXPORT const msgpack_object *cairn_obj_get(const msgpack_object *map,
                                                 const char *key);
CAIRN_EXPORT bool cairn_obj_is_str(const msgpack_object *o, const char *s);

/* Typed field access for validating request bodies. Each returns 0 when the
 * field is present and well typed, 1 when it is absent (and not required),
 * and -1 with a 400 naming the field when it is mistyped or a required one
 * is missing. max_len 0 means no length limit; a longer string is a 400
 * whose sentence names the limit. */
CAIRN_EXPORT int cairn_field_str(const msgpack_object *body, const char *key,
                                 bool required, size_t max_len, cairn_str_t *out,
                                 cairn_err_t *err);
CAIRN_EXPORT int cairn_field_uint(const msgpack_object *body, const char *key,
                                  bool required, uint64_t *out, cairn_err_t *err);
CAIRN_EXPORT int cairn_field_int(const msgpack_object *body, const char *key,
                                 bool required, int64_t *out, cairn_err_t *err);
CAIRN_EXPORT int cairn_field_double(const msgpack_object *body, const char *key,
                                    bool required, double *out, cairn_err_t *err);
CAIRN_EXPORT int cairn_field_bool(const msgpack_object *body, const char *key,
                                  bool required, bool *out, cairn_err_t *err);
CAIRN_EXPORT int cairn_field_map(const msgpack_object *body, const char *key,
                                 bool required, const msgpack_object **out,
                                 cairn_err_t *err);
CAIRN_EXPORT int cairn_field_array(const msgpack_object *body, const char *key,
                                   bool required, const msgpack_object **out,
                                   cairn_err_t *err);

/* A heap copy of a slice, NUL-terminated; NULL on allocation failure. */
CAIRN_EXPORT char *cairn_str_dup(cairn_str_t s);
CAIRN_EXPORT bool cairn_str_eq(cairn_str_t s, const char *c);

/* Milliseconds on the monotonic and on the wall clock. */
CAIRN_EXPORT uint64_t cairn_now_ms(void);
CAIRN_EXPORT uint64_t cairn_wall_ms(void);

#ifdef __cplusplus
}
#endif
#endif
